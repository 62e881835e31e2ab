/* fast_malloc.h - included first by each file whose exported functions
 * inline the fast paths of internal.h (cxx.c). Those functions need no
 * frame of their own: they tail-call the slow paths, and gcc shrink-wraps
 * the frame that -fno-omit-frame-pointer asks for into the slow branch
 * only, so no optimize pragma is needed for that.
 */
#ifndef TL_FAST_MALLOC_H
#define TL_FAST_MALLOC_H

#include "internal.h"
#include "memcheck.h"

#endif

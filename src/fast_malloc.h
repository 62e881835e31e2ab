/* fast_malloc.h - included first by each file whose exported functions
 * inline the fast paths of internal.h (cxx.c; api.c sets the same itself):
 * those functions need no frame, since they tail-call the slow paths,
 * whose frames then link straight to the caller's for backtraces.
 */
#ifndef TL_FAST_MALLOC_H
#define TL_FAST_MALLOC_H

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("omit-frame-pointer")
#endif

#include "internal.h"
#include "memcheck.h"

#endif

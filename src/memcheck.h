/* memcheck.h - telling valgrind's memcheck about tlmalloc's blocks, in builds
 * configured with --enable-valgrind (TL_VALGRIND); elsewhere every function
 * here is empty and costs nothing.
 *
 * Normally memcheck replaces the malloc family with its own and tlmalloc
 * does not run at all. With --soname-synonyms=somalloc=nouserintercepts it
 * leaves tlmalloc in place, and these client requests make tlmalloc's blocks
 * heap blocks for memcheck. They sit where blocks are born and die (the
 * fast paths, the thread cache, the uncached small path, large spans, huge
 * mappings), before tlmalloc itself writes into a new block (calloc's
 * clearing, realloc's copy):
 *  - a block handed out is MALLOCLIKE, with its usable size: addressable,
 *    undefined;
 *  - a freed block is FREELIKE (no access), except the two words tlmalloc
 *    keeps in a free small object (I4), which stay accessible so that the
 *    allocator's own list walks are not reported.
 */
#ifndef TL_MEMCHECK_H
#define TL_MEMCHECK_H

#include <stdbool.h>
#include <stddef.h>

#ifdef TL_VALGRIND
#include <valgrind/memcheck.h>

static inline void tli_vg_alloc(void *p, size_t n) { VALGRIND_MALLOCLIKE_BLOCK(p, n, 0, 0); }
static inline void tli_vg_free_small(void *p)
{
    VALGRIND_FREELIKE_BLOCK(p, 0);
    VALGRIND_MAKE_MEM_DEFINED(p, 16);
}
static inline void tli_vg_free(void *p) { VALGRIND_FREELIKE_BLOCK(p, 0); }
static inline void tli_vg_resize(void *p, size_t old_n, size_t new_n)
{
    VALGRIND_RESIZEINPLACE_BLOCK(p, old_n, new_n, 0);
}
static inline void tli_vg_defined(void *p, size_t n) { VALGRIND_MAKE_MEM_DEFINED(p, n); }
#else
static inline void tli_vg_alloc(void *p, size_t n) { (void)p, (void)n; }
static inline void tli_vg_free_small(void *p) { (void)p; }
static inline void tli_vg_free(void *p) { (void)p; }
static inline void tli_vg_resize(void *p, size_t old_n, size_t new_n)
{
    (void)p, (void)old_n, (void)new_n;
}
static inline void tli_vg_defined(void *p, size_t n) { (void)p, (void)n; }
#endif

#endif

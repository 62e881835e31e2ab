/* fast_malloc.h - the malloc fast path, one copy inlined into malloc (api.c)
 * and into operator new (cxx.c), which differ only in what a miss does:
 * size -> class by table, pop the thread cache list of the class, check
 * the decoded link, clear the free words. Anything else (an empty list, a
 * size above the small band, an uninitialised thread, check mode, whose
 * lists stay empty) tail-calls the miss handler with the size and the
 * caller's return address. No lock, no atomic read-modify-write, no call.
 *
 * Include it once per file, before any function: it also sets how that
 * file's fast paths are compiled (no frame pointer).
 */
#ifndef TL_FAST_MALLOC_H
#define TL_FAST_MALLOC_H

#include "internal.h"
#include "memcheck.h"

/* TL_FREE_CHECKS=0 builds a variant without the fast paths' pointer checks
 * (object start, double-free key, free-list link), only so that
 * bench/check-cost.sh can measure what they cost. It is never installed. */
#ifndef TL_FREE_CHECKS
#define TL_FREE_CHECKS 1
#endif

/* The fast paths need no frame: they tail-call the slow paths, whose frames
 * then link straight to the caller's for backtraces. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("omit-frame-pointer")
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define TL_KEEP_FRAME __attribute__((optimize("no-omit-frame-pointer")))
#else
#define TL_KEEP_FRAME
#endif

/* Out of line so that the fast path keeps no registers for it; with a frame
 * of its own, so that the report's backtrace reaches the caller. noipa: the
 * compiler must not see that it never returns, or it calls it from the
 * frameless fast path instead of jumping to it, and the backtrace loses
 * the program's frame. */
TL_NOINLINE TL_KEEP_FRAME __attribute__((noipa, unused)) static void *bad_link(void *p)
{
    tl_report_corruption(p, "malloc", "free-list link overwritten (use after free?)");
    return NULL;
}

/* The return address of the public function: the allocation site that
 * check mode's leak report names (read only on the slow paths). */
#define TL_CALLER ((uintptr_t)__builtin_return_address(0))

typedef void *tl_alloc_miss(size_t size, uintptr_t caller);

/* always_inline: miss must become a direct tail jump, and TL_CALLER the
 * return address of the exported function this is inlined into. */
static inline __attribute__((always_inline)) void *tl_fast_malloc(size_t size, tl_alloc_miss *miss)
{
    unsigned cls;
    if (TL_LIKELY(size <= 1024))
        cls = tl_class_small[(size + 15) >> 4];
    else if (size <= TL_SMALL_MAX)
        cls = tl_class_medium[(size + 127) >> 7];
    else
        return miss(size, TL_CALLER);
    struct tc_bin *bin = &tl_tc.bins[cls];
    void *p = bin->head;
    if (TL_UNLIKELY(!p))
        return miss(size, TL_CALLER);
    void *next = tl_link_get(p);
    if (TL_FREE_CHECKS && TL_UNLIKELY((uintptr_t)next & TL_LINK_BAD_MASK))
        return bad_link(p);
    bin->head = next;
    bin->room++;
    tl_clear_free_words(p);
    tl_vg_alloc(p, tl_classes[cls].size);
    return p;
}

#endif

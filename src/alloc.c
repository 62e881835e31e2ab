/* alloc.c - the allocation paths behind the public functions: choosing the
 * band (small, large, huge), alignment, zeroing, realloc between bands,
 * and the frees and size queries that go through the one validation
 * (validate.c) when the fast path declines.
 */
#include "internal.h"
#include "memcheck.h"

#include <errno.h>
#include <string.h>

/* ---- small objects without a thread cache ------------------------------- */
void *tli_alloc_small_nocache(unsigned cls)
{
    void *p;
    if (tli_central_take(cls, 1, &p) != 1)
        return tli_no_memory();
    tli_clear_free_words(p);
    tli_vg_alloc(p, tli_classes[cls].size);
    return p;
}

void tli_free_small_nocache(void *p, unsigned cls)
{
    tli_vg_free_small(p);
    tli_central_give_one(p, cls);
}

/* ---- bands ----------------------------------------------------------------- */
void *tli_alloc_large(size_t size, size_t alignment)
{
    size_t align_pages = alignment > TL_PAGE_SIZE ? alignment >> TL_PAGE_SHIFT : 1;
    size_t pages = size ? tli_pages_for(size) : 1; /* memalign(a, 0) still gets a block */
    struct span *s = tli_page_heap_alloc(pages, align_pages, SPAN_LARGE, 0);
    if (!s)
        return tli_no_memory();
    tli_vg_alloc((void *)s->start, tli_span_bytes(s));
    return (void *)s->start;
}

static void *alloc_small(size_t size)
{
    void *p = tli_tc_alloc(tli_size_to_class(size));
    return p ? p : tli_no_memory();
}

/* Any size, no alignment beyond 16, no check mode. */
void *tli_alloc(size_t size)
{
    if (TL_LIKELY(size <= TL_SMALL_MAX))
        return alloc_small(size);
    if (size > TL_MAX_REQUEST)
        return tli_no_memory();
    if (size >= tli_conf.huge_threshold)
        return tli_huge_alloc(size, TL_PAGE_SIZE);
    return tli_alloc_large(size, 0);
}

/* The smallest class whose objects are all aligned to alignment (<= a page):
 * its size is a multiple of alignment (spans start on a page). */
static unsigned aligned_class(size_t size, size_t alignment)
{
    size_t need = size > alignment ? size : alignment;
    if (need > TL_SMALL_MAX)
        return 0;
    for (unsigned cls = tli_size_to_class(need); cls < tli_num_classes; cls++)
        if (tli_classes[cls].size % alignment == 0)
            return cls;
    return 0;
}

/* alignment: a power of two. */
void *tli_alloc_aligned(size_t alignment, size_t size)
{
    if (alignment <= TL_ALIGNMENT)
        return tli_alloc(size);
    if (size > TL_MAX_REQUEST || alignment > TL_MAX_REQUEST)
        return tli_no_memory();
    if (alignment <= TL_PAGE_SIZE) {
        unsigned cls = aligned_class(size, alignment);
        if (cls) {
            void *p = tli_tc_alloc(cls);
            return p ? p : tli_no_memory();
        }
    }
    if (size >= tli_conf.huge_threshold || alignment >= tli_conf.huge_threshold)
        return tli_huge_alloc(size, alignment);
    return tli_alloc_large(size, alignment);
}

/* Zeroed memory; pages known to be zero (fresh or given back) are not
 * touched. */
void *tli_alloc_zeroed(size_t size)
{
    if (size <= TL_SMALL_MAX) {
        void *p = alloc_small(size);
        if (p)
            memset(p, 0, tli_classes[tli_size_to_class(size)].size);
        return p;
    }
    void *p = tli_alloc(size);
    if (!p)
        return NULL;
    struct span *s = tli_pagemap_span((uintptr_t)p);
    if (s->state == SPAN_LARGE && !s->clean)
        memset(p, 0, tli_span_bytes(s));
    else
        tli_vg_defined(p, tli_span_bytes(s)); /* zero already, as memcheck should know */
    s->clean = 0;
    return p;
}

/* ---- free, validated (validate.c) ------------------------------------------ */
/* s is p's span, and tli_validate has found p the start of a block in use
 * (a profiler's sample included: it is a large or huge block). */
static void free_span_block(void *p, struct span *s)
{
    switch (s->state) {
    case SPAN_SMALL:
        tli_tc_free(p, s->size_class);
        break;
    case SPAN_LARGE:
        tli_vg_free(p);
        if (TL_UNLIKELY(s->sampled))
            tli_prof_freed(s);
        tli_page_heap_free(s);
        break;
    default:
        tli_vg_free(p);
        if (TL_UNLIKELY(s->sampled))
            tli_prof_freed(s);
        tli_huge_free(s);
        break;
    }
}

void tli_free_checked(void *p, const char *who)
{
    if (!p)
        return;
    struct span *s = tli_lookup(p, who);
    if (s)
        free_span_block(p, s);
}

static size_t span_usable(struct span *s)
{
    return s->state == SPAN_SMALL ? tli_classes[s->size_class].size : tli_span_bytes(s);
}

size_t tli_usable_size(void *p, const char *who)
{
    if (!p)
        return 0;
    struct span *s = tli_lookup(p, who);
    return s ? span_usable(s) : 0;
}

/* ---- the fast paths' miss handlers ---------------------------------------- */
void *tli_alloc_slow(size_t size, uintptr_t caller)
{
    tli_ensure_init();
    if (TL_UNLIKELY(tli_conf.check))
        return tli_check_alloc(size, 0, false, caller);
    return tli_alloc(size);
}

void tli_free_slow(void *p)
{
    if (!p)
        return;
    tli_ensure_init();
    if (tli_tc.tick < 0) {
        tli_tc.tick = TL_TICK;
        tli_tc_tick();
    }
    if (TL_UNLIKELY(tli_conf.check)) /* free jumps here: the return address is its caller's */
        tli_check_free_at(p, "free", (uintptr_t)__builtin_return_address(0));
    else
        tli_free_checked(p, "free");
}

/* The fast path found p to be an object start on a small span of class
 * cls (the page's hot entry, I3), and not its list's head; only the list's
 * room or the tick sent it here. That is all the fast path asks before it
 * pushes, so a class other than 0 goes to the cache with no second look:
 * tli_validate would load the span struct, a cold line, once a batch.
 * Class 0 (no small span there: a large block, a page given back, a racing
 * free), the tick and check mode take the whole slow path. */
void tli_free_slow_room(void *p, size_t cls)
{
    tli_tc.lists.room[cls]++;
    if (TL_LIKELY(cls && tli_tc.tick >= 0 && !tli_conf.check)) {
        tli_tc_free(p, (unsigned)cls);
        return;
    }
    tli_free_slow(p);
}

/* ---- realloc ---------------------------------------------------------------- */
static void *move_block(void *p, size_t old_usable, size_t size)
{
    void *q = tli_alloc(size);
    if (!q)
        return NULL;
    memcpy(q, p, old_usable < size ? old_usable : size);
    tli_free_checked(p, "realloc");
    return q;
}

static void *realloc_large(void *p, struct span *s, size_t size)
{
    if (size <= TL_SMALL_MAX || size >= tli_conf.huge_threshold)
        return move_block(p, tli_span_bytes(s), size);
    size_t pages = tli_pages_for(size), old_size = tli_span_bytes(s);
    if (pages < s->npages) {
        tli_page_heap_shrink(s, pages);
    } else if (pages > s->npages && !tli_page_heap_try_grow(s, pages)) {
        return move_block(p, tli_span_bytes(s), size);
    }
    tli_vg_resize(p, old_size, tli_span_bytes(s));
    return p;
}

/* size > 0, p != NULL, no check mode. */
void *tli_realloc_impl(void *p, size_t size)
{
    if (size > TL_MAX_REQUEST)
        return tli_no_memory();
    struct span *s = tli_lookup(p, "realloc");
    if (!s)
        return NULL;
    switch (s->state) {
    case SPAN_SMALL: {
        size_t usable = tli_classes[s->size_class].size;
        if (size <= usable && size > usable / 2)
            return p;
        if (size <= usable && tli_size_to_class(size) == s->size_class)
            return p;
        return move_block(p, usable, size);
    }
    case SPAN_LARGE:
        return realloc_large(p, s, size);
    default:
        if (size >= tli_conf.huge_threshold / 2)
            return tli_huge_realloc(s, size);
        return move_block(p, tli_span_bytes(s), size);
    }
}

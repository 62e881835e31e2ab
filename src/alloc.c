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
void *tl_alloc_small_nocache(unsigned cls)
{
    void *p;
    if (tl_central_take(cls, 1, &p) != 1)
        return tl_no_memory();
    tl_clear_free_words(p);
    tl_vg_alloc(p, tl_classes[cls].size);
    return p;
}

void tl_free_small_nocache(void *p, unsigned cls)
{
    tl_vg_free_small(p);
    tl_central_give_one(p, cls);
}

/* ---- bands ----------------------------------------------------------------- */
void *tl_alloc_large(size_t size, size_t alignment)
{
    size_t align_pages = alignment > TL_PAGE_SIZE ? alignment >> TL_PAGE_SHIFT : 1;
    size_t pages = size ? tl_pages_for(size) : 1; /* memalign(a, 0) still gets a block */
    struct span *s = tl_page_heap_alloc(pages, align_pages, SPAN_LARGE, 0);
    if (!s)
        return tl_no_memory();
    tl_vg_alloc((void *)s->start, tl_span_bytes(s));
    return (void *)s->start;
}

static void *alloc_small(size_t size)
{
    void *p = tl_tc_alloc(tl_size_to_class(size));
    return p ? p : tl_no_memory();
}

/* Any size, no alignment beyond 16, no check mode. */
void *tl_alloc(size_t size)
{
    if (TL_LIKELY(size <= TL_SMALL_MAX))
        return alloc_small(size);
    if (size > TL_MAX_REQUEST)
        return tl_no_memory();
    if (size >= tl_conf.huge_threshold)
        return tl_huge_alloc(size, TL_PAGE_SIZE);
    return tl_alloc_large(size, 0);
}

/* The smallest class whose objects are all aligned to alignment (<= a page):
 * its size is a multiple of alignment (spans start on a page). */
static unsigned aligned_class(size_t size, size_t alignment)
{
    size_t need = size > alignment ? size : alignment;
    if (need > TL_SMALL_MAX)
        return 0;
    for (unsigned cls = tl_size_to_class(need); cls < tl_num_classes; cls++)
        if (tl_classes[cls].size % alignment == 0)
            return cls;
    return 0;
}

/* alignment: a power of two. */
void *tl_alloc_aligned(size_t alignment, size_t size)
{
    if (alignment <= TL_ALIGNMENT)
        return tl_alloc(size);
    if (size > TL_MAX_REQUEST || alignment > TL_MAX_REQUEST)
        return tl_no_memory();
    if (alignment <= TL_PAGE_SIZE) {
        unsigned cls = aligned_class(size, alignment);
        if (cls) {
            void *p = tl_tc_alloc(cls);
            return p ? p : tl_no_memory();
        }
    }
    if (size >= tl_conf.huge_threshold || alignment >= tl_conf.huge_threshold)
        return tl_huge_alloc(size, alignment);
    return tl_alloc_large(size, alignment);
}

/* Zeroed memory; pages known to be zero (fresh or given back) are not
 * touched. */
void *tl_alloc_zeroed(size_t size)
{
    if (size <= TL_SMALL_MAX) {
        void *p = alloc_small(size);
        if (p)
            memset(p, 0, tl_classes[tl_size_to_class(size)].size);
        return p;
    }
    void *p = tl_alloc(size);
    if (!p)
        return NULL;
    struct span *s = tl_pagemap_span((uintptr_t)p);
    if (s->state == SPAN_LARGE && !s->clean)
        memset(p, 0, tl_span_bytes(s));
    else
        tl_vg_defined(p, tl_span_bytes(s)); /* zero already, as memcheck should know */
    s->clean = 0;
    return p;
}

/* ---- free, validated (validate.c) ------------------------------------------ */
static void free_span_block(void *p, struct span *s)
{
    switch (s->state) {
    case SPAN_SMALL:
        tl_tc_free(p, s->size_class);
        break;
    case SPAN_LARGE:
        tl_vg_free(p);
        tl_page_heap_free(s);
        break;
    default:
        tl_vg_free(p);
        tl_huge_free(s);
        break;
    }
}

void tl_free_checked(void *p, const char *who)
{
    if (!p)
        return;
    struct span *s = tl_lookup(p, who);
    if (s)
        free_span_block(p, s);
}

static size_t span_usable(struct span *s)
{
    return s->state == SPAN_SMALL ? tl_classes[s->size_class].size : tl_span_bytes(s);
}

size_t tl_usable_size(void *p, const char *who)
{
    if (!p)
        return 0;
    struct span *s = tl_lookup(p, who);
    return s ? span_usable(s) : 0;
}

/* ---- the fast paths' miss handlers ---------------------------------------- */
void *tl_alloc_slow(size_t size, uintptr_t caller)
{
    tl_ensure_init();
    if (TL_UNLIKELY(tl_conf.check))
        return tl_check_alloc(size, 0, false, caller);
    return tl_alloc(size);
}

void tl_free_slow(void *p)
{
    if (!p)
        return;
    tl_ensure_init();
    if (tl_tc.tick < 0) {
        tl_tc.tick = TL_TICK;
        tl_tc_tick();
    }
    if (TL_UNLIKELY(tl_conf.check)) /* free jumps here: the return address is its caller's */
        tl_check_free_at(p, "free", (uintptr_t)__builtin_return_address(0));
    else
        tl_free_checked(p, "free");
}

void tl_free_slow_room(void *p, size_t cls)
{
    tl_tc.bins[cls].room++;
    tl_free_slow(p);
}

/* ---- realloc ---------------------------------------------------------------- */
static void *move_block(void *p, size_t old_usable, size_t size)
{
    void *q = tl_alloc(size);
    if (!q)
        return NULL;
    memcpy(q, p, old_usable < size ? old_usable : size);
    tl_free_checked(p, "realloc");
    return q;
}

static void *realloc_large(void *p, struct span *s, size_t size)
{
    if (size <= TL_SMALL_MAX || size >= tl_conf.huge_threshold)
        return move_block(p, tl_span_bytes(s), size);
    size_t pages = tl_pages_for(size), old_size = tl_span_bytes(s);
    if (pages < s->npages) {
        tl_page_heap_shrink(s, pages);
    } else if (pages > s->npages && !tl_page_heap_try_grow(s, pages)) {
        return move_block(p, tl_span_bytes(s), size);
    }
    tl_vg_resize(p, old_size, tl_span_bytes(s));
    return p;
}

/* size > 0, p != NULL, no check mode. */
void *tl_realloc_impl(void *p, size_t size)
{
    if (size > TL_MAX_REQUEST)
        return tl_no_memory();
    struct span *s = tl_lookup(p, "realloc");
    if (!s)
        return NULL;
    switch (s->state) {
    case SPAN_SMALL: {
        size_t usable = tl_classes[s->size_class].size;
        if (size <= usable && size > usable / 2)
            return p;
        if (size <= usable && tl_size_to_class(size) == s->size_class)
            return p;
        return move_block(p, usable, size);
    }
    case SPAN_LARGE:
        return realloc_large(p, s, size);
    default:
        if (size >= tl_conf.huge_threshold / 2)
            return tl_huge_realloc(s, size);
        return move_block(p, tl_span_bytes(s), size);
    }
}

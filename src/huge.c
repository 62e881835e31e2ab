/* huge.c - blocks at or above the huge threshold (256 MiB by default): each
 * its own mapping, unmapped on free, resized with mremap.
 *
 * A huge block's span struct maps only its first page in the pagemap (so
 * free finds it and an interior pointer is reported as foreign); mappings
 * are kept 8 KiB aligned so that page never shares a pagemap entry with
 * another mapping. Span structs come from the page heap's pool, under the
 * page heap lock; the mmap and munmap calls themselves run without a lock.
 */
#include "internal.h"
#include "memcheck.h"

#include <errno.h>
#include <string.h>

static size_t huge_bytes(size_t size) { return tl_round_up(size, TL_PAGE_SIZE); }

/* The starts of the last RECENT_UNMAPS huge blocks freed, so that freeing
 * one again is reported as the double free it is, not as a pointer that
 * was never ours: its pagemap entry is gone with its mapping. A start that
 * a new block reuses leaves the list. Written under the page heap lock,
 * read without it (a report may name the wrong one of two errors, never
 * miss one). */
#define RECENT_UNMAPS 64
static _Atomic uintptr_t recent_unmaps[RECENT_UNMAPS];
static unsigned recent_next TL_GUARDED_BY(tl_page_heap_lock);

static void forget_unmap(uintptr_t start)
{
    for (unsigned i = 0; i < RECENT_UNMAPS; i++)
        if (atomic_load_explicit(&recent_unmaps[i], memory_order_relaxed) == start)
            atomic_store_explicit(&recent_unmaps[i], 0, memory_order_relaxed);
}

bool tl_huge_recently_freed(uintptr_t start)
{
    if (!start) /* an empty entry, never a block's start */
        return false;
    for (unsigned i = 0; i < RECENT_UNMAPS; i++)
        if (atomic_load_explicit(&recent_unmaps[i], memory_order_relaxed) == start)
            return true;
    return false;
}

/* Pages of a huge block the pagemap maps: the first is enough to free it;
 * check mode finds a block from any address in it (its trailer is at the
 * end, its user pointer may be pages in), so there every page is mapped. */
static size_t mapped_pages(size_t npages) { return tl_conf.check ? npages : 1; }

/* glibc's malloc_stats reports the most mappings and mapped bytes at once. */
static void note_peak(void)
{
    tl_stat_raise(&tl_stats.huge_count_max,
                  atomic_load_explicit(&tl_stats.huge_count, memory_order_relaxed));
    tl_stat_raise(&tl_stats.huge_mapped_max,
                  atomic_load_explicit(&tl_stats.huge_mapped, memory_order_relaxed));
}

static struct span *register_block(uintptr_t start, size_t bytes)
{
    TL_ASSERT(!(start & (TL_PAGE_SIZE - 1)) && bytes >= TL_PAGE_SIZE);
    tl_debug_tick();
    if (!tl_pagemap_ensure(start, mapped_pages(bytes >> TL_PAGE_SHIFT) << TL_PAGE_SHIFT))
        return NULL;
    tl_lock_acquire(&tl_page_heap_lock);
    struct span *s = tl_span_new();
    if (s) {
        s->start = start;
        s->npages = bytes >> TL_PAGE_SHIFT;
        s->state = SPAN_HUGE;
        forget_unmap(start);
        tl_pagemap_set_range(start, mapped_pages(s->npages), s, 0);
    }
    tl_lock_release(&tl_page_heap_lock);
    if (s) {
        tl_stat_add(&tl_stats.huge_mapped, bytes);
        tl_stat_add(&tl_stats.huge_count, 1);
        note_peak();
    }
    return s;
}

static void unregister_block(struct span *s)
{
    TL_ASSERT(s->state == SPAN_HUGE && tl_pagemap_span(s->start) == s);
    tl_debug_tick();
    tl_stat_sub(&tl_stats.huge_mapped, s->npages << TL_PAGE_SHIFT);
    tl_stat_sub(&tl_stats.huge_count, 1);
    tl_lock_acquire(&tl_page_heap_lock);
    atomic_store_explicit(&recent_unmaps[recent_next++ % RECENT_UNMAPS], s->start,
                          memory_order_relaxed);
    tl_pagemap_set_range(s->start, mapped_pages(s->npages), NULL, 0);
    tl_span_delete(s);
    tl_lock_release(&tl_page_heap_lock);
}

void *tl_huge_alloc(size_t size, size_t alignment)
{
    if (size > TL_MAX_REQUEST)
        return tl_no_memory();
    size_t bytes = huge_bytes(size ? size : 1);
    if (alignment < TL_PAGE_SIZE)
        alignment = TL_PAGE_SIZE;
    void *p = tl_os_map_aligned(bytes, alignment);
    if (!p)
        return tl_no_memory();
    if (!register_block((uintptr_t)p, bytes)) {
        tl_os_unmap(p, bytes);
        return tl_no_memory();
    }
    tl_stat_add(&tl_stats.huge_allocs, 1);
    tl_vg_alloc(p, bytes);
    return p;
}

void tl_huge_free(struct span *s)
{
    void *p = (void *)s->start;
    size_t bytes = s->npages << TL_PAGE_SHIFT;
    tl_stat_add(&tl_stats.huge_frees, 1);
    unregister_block(s);
    tl_os_unmap(p, bytes);
}

/* Moves a mapping to a new, 8 KiB aligned place of new_bytes: reserve the
 * place, then let mremap move the pages there without copying. */
static void *remap_aligned(void *old, size_t old_bytes, size_t new_bytes)
{
    char *area = tl_os_map(new_bytes + TL_PAGE_SIZE);
    if (!area)
        return NULL;
    uintptr_t target = tl_round_up((uintptr_t)area, TL_PAGE_SIZE);
    if (!tl_os_remap_to(old, old_bytes, new_bytes, (void *)target)) {
        tl_os_unmap(area, new_bytes + TL_PAGE_SIZE);
        return NULL;
    }
    size_t head = target - (uintptr_t)area;
    if (head)
        tl_os_unmap(area, head);
    if (TL_PAGE_SIZE - head)
        tl_os_unmap((char *)target + new_bytes, TL_PAGE_SIZE - head);
    return (void *)target;
}

void *tl_huge_realloc(struct span *s, size_t size)
{
    size_t new_bytes = huge_bytes(size);
    size_t old_bytes = s->npages << TL_PAGE_SHIFT;
    void *old = (void *)s->start;
    if (new_bytes == old_bytes)
        return old;
    int saved = errno;
    void *q = tl_os_remap(old, old_bytes, new_bytes, 0);
    if (!q)
        q = remap_aligned(old, old_bytes, new_bytes);
    errno = saved;
    if (!q)
        return tl_no_memory();
    /* The block moved or changed size: update its span in place. */
    if (!tl_pagemap_ensure((uintptr_t)q, TL_PAGE_SIZE))
        tl_fatal("cannot map pagemap memory for a resized huge block");
    tl_lock_acquire(&tl_page_heap_lock);
    /* mremap gave the old range back before this lock was taken: another
     * thread's new huge block may start there already, with an entry of
     * its own that must stay. Clear the entry only while it is still ours;
     * until then it names a block that no valid pointer reaches. */
    if (tl_pagemap_span(s->start) == s)
        tl_pagemap_set_range(s->start, 1, NULL, 0);
    s->start = (uintptr_t)q;
    s->npages = new_bytes >> TL_PAGE_SHIFT;
    tl_pagemap_set_range(s->start, 1, s, 0);
    tl_lock_release(&tl_page_heap_lock);
    tl_stat_add(&tl_stats.huge_mapped, new_bytes);
    tl_stat_sub(&tl_stats.huge_mapped, old_bytes);
    note_peak();
    if (q == old) {
        tl_vg_resize(q, old_bytes, new_bytes);
    } else {
        tl_vg_free(old);
        tl_vg_alloc(q, new_bytes);
        tl_vg_defined(q, old_bytes < new_bytes ? old_bytes : new_bytes); /* moved contents */
    }
    return q;
}

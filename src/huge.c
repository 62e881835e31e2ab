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

static size_t huge_bytes(size_t size) { return tli_round_up(size, TL_PAGE_SIZE); }

/* The starts of the last RECENT_UNMAPS huge blocks freed, so that freeing
 * one again is reported as the double free it is, not as a pointer that
 * was never ours: its pagemap entry is gone with its mapping. A start that
 * a new block reuses leaves the list. Written under the page heap lock,
 * read without it (a report may name the wrong one of two errors, never
 * miss one). */
#define RECENT_UNMAPS 64
static _Atomic uintptr_t recent_unmaps[RECENT_UNMAPS];
static unsigned recent_next TL_GUARDED_BY(tli_page_heap_lock);

static void forget_unmap(uintptr_t start)
{
    for (unsigned i = 0; i < RECENT_UNMAPS; i++)
        if (atomic_load_explicit(&recent_unmaps[i], memory_order_relaxed) == start)
            atomic_store_explicit(&recent_unmaps[i], 0, memory_order_relaxed);
}

bool tli_huge_recently_freed(uintptr_t start)
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
static size_t mapped_pages(size_t npages) { return tli_conf.check ? npages : 1; }

/* glibc's malloc_stats reports the most mappings and mapped bytes at once. */
static void note_peak(void)
{
    tli_stat_raise(&tli_stats.huge_count_max,
                   atomic_load_explicit(&tli_stats.huge_count, memory_order_relaxed));
    tli_stat_raise(&tli_stats.huge_mapped_max,
                   atomic_load_explicit(&tli_stats.huge_mapped, memory_order_relaxed));
}

static struct span *register_block(uintptr_t start, size_t bytes)
{
    TL_ASSERT(!(start & (TL_PAGE_SIZE - 1)) && bytes >= TL_PAGE_SIZE);
    tli_debug_tick();
    if (!tli_pagemap_ensure(start, mapped_pages(bytes >> TL_PAGE_SHIFT) << TL_PAGE_SHIFT))
        return NULL;
    tli_lock_acquire(&tli_page_heap_lock);
    struct span *s = tli_span_new();
    if (s) {
        s->start = start;
        s->npages = bytes >> TL_PAGE_SHIFT;
        s->state = SPAN_HUGE;
        forget_unmap(start);
        tli_pagemap_set_range(start, mapped_pages(s->npages), s, 0);
    }
    tli_lock_release(&tli_page_heap_lock);
    if (s) {
        tli_stat_add(&tli_stats.huge_mapped, bytes);
        tli_stat_add(&tli_stats.huge_count, 1);
        note_peak();
    }
    return s;
}

static void unregister_block(struct span *s)
{
    TL_ASSERT(s->state == SPAN_HUGE && tli_pagemap_span(s->start) == s);
    tli_debug_tick();
    tli_stat_sub(&tli_stats.huge_mapped, s->npages << TL_PAGE_SHIFT);
    tli_stat_sub(&tli_stats.huge_count, 1);
    tli_lock_acquire(&tli_page_heap_lock);
    atomic_store_explicit(&recent_unmaps[recent_next++ % RECENT_UNMAPS], s->start,
                          memory_order_relaxed);
    tli_pagemap_set_range(s->start, mapped_pages(s->npages), NULL, 0);
    tli_span_delete(s);
    tli_lock_release(&tli_page_heap_lock);
}

void *tli_huge_alloc(size_t size, size_t alignment)
{
    if (size > TL_MAX_REQUEST)
        return tli_no_memory();
    size_t bytes = huge_bytes(size ? size : 1);
    if (alignment < TL_PAGE_SIZE)
        alignment = TL_PAGE_SIZE;
    void *p = tli_os_map_aligned(bytes, alignment);
    if (!p)
        return tli_no_memory();
    if (!register_block((uintptr_t)p, bytes)) {
        tli_os_unmap(p, bytes);
        return tli_no_memory();
    }
    tli_stat_add(&tli_stats.huge_allocs, 1);
    tli_vg_alloc(p, bytes);
    return p;
}

void tli_huge_free(struct span *s)
{
    void *p = (void *)s->start;
    size_t bytes = s->npages << TL_PAGE_SHIFT;
    tli_stat_add(&tli_stats.huge_frees, 1);
    unregister_block(s);
    tli_os_unmap(p, bytes);
}

/* Moves a mapping to a new, 8 KiB aligned place of new_bytes: reserve the
 * place, then let mremap move the pages there without copying. */
static void *remap_aligned(void *old, size_t old_bytes, size_t new_bytes)
{
    char *area = tli_os_map(new_bytes + TL_PAGE_SIZE);
    if (!area)
        return NULL;
    uintptr_t target = tli_round_up((uintptr_t)area, TL_PAGE_SIZE);
    if (!tli_os_remap_to(old, old_bytes, new_bytes, (void *)target)) {
        tli_os_unmap(area, new_bytes + TL_PAGE_SIZE);
        return NULL;
    }
    size_t head = target - (uintptr_t)area;
    if (head)
        tli_os_unmap(area, head);
    if (TL_PAGE_SIZE - head)
        tli_os_unmap((char *)target + new_bytes, TL_PAGE_SIZE - head);
    return (void *)target;
}

void *tli_huge_realloc(struct span *s, size_t size)
{
    size_t new_bytes = huge_bytes(size);
    size_t old_bytes = s->npages << TL_PAGE_SHIFT;
    void *old = (void *)s->start;
    if (new_bytes == old_bytes)
        return old;
    int saved = errno;
    void *q = tli_os_remap(old, old_bytes, new_bytes, 0);
    if (!q)
        q = remap_aligned(old, old_bytes, new_bytes);
    errno = saved;
    if (!q)
        return tli_no_memory();
    /* The block moved or changed size: update its span in place. */
    if (!tli_pagemap_ensure((uintptr_t)q, TL_PAGE_SIZE))
        tli_fatal("cannot map pagemap memory for a resized huge block");
    tli_lock_acquire(&tli_page_heap_lock);
    /* mremap gave the old range back before this lock was taken: another
     * thread's new huge block may start there already, with an entry of
     * its own that must stay. Clear the entry only while it is still ours;
     * until then it names a block that no valid pointer reaches. */
    if (tli_pagemap_span(s->start) == s)
        tli_pagemap_set_range(s->start, 1, NULL, 0);
    s->start = (uintptr_t)q;
    s->npages = new_bytes >> TL_PAGE_SHIFT;
    tli_pagemap_set_range(s->start, 1, s, 0);
    tli_lock_release(&tli_page_heap_lock);
    tli_stat_add(&tli_stats.huge_mapped, new_bytes);
    tli_stat_sub(&tli_stats.huge_mapped, old_bytes);
    note_peak();
    if (q == old) {
        tli_vg_resize(q, old_bytes, new_bytes);
    } else {
        tli_vg_free(old);
        tli_vg_alloc(q, new_bytes);
        tli_vg_defined(q, old_bytes < new_bytes ? old_bytes : new_bytes); /* moved contents */
    }
    return q;
}

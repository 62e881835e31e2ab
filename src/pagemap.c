/* pagemap.c - address -> span, so free() needs no header (invariants I2, I3
 * in internal.h).
 *
 * A two-level radix tree over 48-bit addresses: a static root of 2^17
 * pointers (1 MiB of .bss, touched only where used) to leaves of 2^18 pages
 * (2 GiB of address space each). A leaf holds a 16-byte hot entry (the
 * class, span start and carved limit free reads), a span pointer and a
 * 96-byte span slot per page (30 MiB of address space, of which
 * only the written parts become resident, and the parts that only a
 * unbacked free span's interior used are given back). Leaves are never
 * unmapped, so a reader needs no lock: a root entry goes from NULL to a
 * zeroed leaf once, published with a release store.
 *
 * Lock: pagemap_lock guards leaf creation only (its place in the lock
 * order: docs/DESIGN.md, "Locks"). Entries themselves are written by the
 * holder of the page heap lock, huge spans' included.
 */
#include "internal.h"

#include <stddef.h>

struct pagemap_leaf *tli_pagemap_root[(size_t)1 << TL_PM_ROOT_BITS];
/* Odd start, limit 0: no pointer of a leaf is an object start of it. */
struct span tli_no_span = {.start = 1, .div_limit = 0, .state = SPAN_FREE};
struct tli_lock tli_pagemap_lock = TL_LOCK_INIT;
/* The lowest and highest root entries that have a leaf, so that the heap
 * walk (heapcheck.c) reads no more of the root than is in use: reading the
 * rest of its megabyte of .bss would make it resident. */
_Atomic size_t tli_pagemap_first_leaf = (size_t)1 << TL_PM_ROOT_BITS, tli_pagemap_last_leaf;

static bool ensure_leaf(size_t root_index) TL_EXCLUDES(tli_pagemap_lock)
{
    if (__atomic_load_n(&tli_pagemap_root[root_index], __ATOMIC_ACQUIRE))
        return true;
    tli_lock_acquire(&tli_pagemap_lock);
    bool ok = true;
    if (!tli_pagemap_root[root_index]) {
        struct pagemap_leaf *leaf = tli_os_map(sizeof *leaf);
        if (leaf) {
            /* the slots count as they hold spans (page_heap.c) */
            tli_stat_add(&tli_stats.meta, offsetof(struct pagemap_leaf, slot));
            __atomic_store_n(&tli_pagemap_root[root_index], leaf, __ATOMIC_RELEASE);
            if (root_index < atomic_load(&tli_pagemap_first_leaf))
                atomic_store(&tli_pagemap_first_leaf, root_index);
            if (root_index > atomic_load(&tli_pagemap_last_leaf))
                atomic_store(&tli_pagemap_last_leaf, root_index);
        } else {
            ok = false;
        }
    }
    tli_lock_release(&tli_pagemap_lock);
    return ok;
}

bool tli_pagemap_ensure(uintptr_t start, size_t bytes)
{
    if (bytes == 0 || (start + bytes - 1) >> 48)
        return false;
    const unsigned shift = TL_PAGE_SHIFT + TL_PM_LEAF_BITS;
    for (size_t i = start >> shift; i <= (start + bytes - 1) >> shift; i++)
        if (!ensure_leaf(i))
            return false;
    return true;
}

/* An entry is written only if it changes: the entries of a unbacked free
 * span's interior are zero on pages given back (tli_pagemap_release), and
 * writing a zero there again (a free span's class byte at its new edge,
 * say) would make a page resident for nothing; reading maps the shared
 * zero page, which costs no memory. */
static void set_span(struct pagemap_leaf *leaf, size_t idx, struct span *v)
{
    struct span *old = __atomic_load_n(&leaf->span[idx], __ATOMIC_RELAXED);
    if (!v && (!old || old == &tli_no_span))
        return;
    /* A real span's pointer leaves as tli_no_span, never NULL: a free that
     * read the class before it went finds a span that fails every test. */
    if (!v)
        v = &tli_no_span;
    if (old != v)
        __atomic_store_n(&leaf->span[idx], v, __ATOMIC_RELEASE);
}

/* A small span's page gets its hot entry's start and a limit of 0 before
 * its class (release): with the class's division constants, limit 0
 * admits only the span's first object (a free racing with the span's
 * creation finds no other object start); the central list then sets the
 * carved limit (tli_span_set_carved). */
static void set_class(struct pagemap_leaf *leaf, size_t idx, struct span *v, uint8_t cls)
{
    struct pagemap_hot *h = &leaf->hot[idx];
    if (cls) {
        h->start = v->start;
        __atomic_store_n(&h->div_limit, 0, __ATOMIC_RELAXED);
    }
    if (__atomic_load_n(&h->size_class, __ATOMIC_RELAXED) != cls)
        __atomic_store_n(&h->size_class, cls, __ATOMIC_RELEASE);
}

/* The span's limit goes to each of its pages' hot entries. A span holds
 * fewer than 2^32 objects, so the entry's 32-bit copy is exact. */
void tli_span_set_carved(struct span *s, uint32_t carved)
{
    uint32_t limit = carved ? carved - 1 : 0;
    __atomic_store_n(&s->div_limit, (uint64_t)limit, __ATOMIC_RELAXED);
    uintptr_t a = s->start;
    for (size_t i = 0; i < s->npages; i++, a += TL_PAGE_SIZE)
        __atomic_store_n(&tli_pagemap_leaf(a)->hot[tli_pagemap_index(a)].div_limit, limit,
                         __ATOMIC_RELAXED);
}

/* The order of the two stores is part of I3: a page never has a class
 * without a span. A small span's pointer goes in before its class, and a
 * class goes out before the span pointer. */
void tli_pagemap_set_range(uintptr_t start, size_t npages, struct span *v, uint8_t cls)
    TL_REQUIRES(tli_page_heap_lock)
{
    uintptr_t a = start;
    for (size_t i = 0; i < npages; i++, a += TL_PAGE_SIZE) {
        struct pagemap_leaf *leaf = tli_pagemap_root[a >> (TL_PAGE_SHIFT + TL_PM_LEAF_BITS)];
        size_t idx = tli_pagemap_index(a);
        if (cls) {
            set_span(leaf, idx, v);
            set_class(leaf, idx, v, cls);
        } else {
            set_class(leaf, idx, v, cls);
            set_span(leaf, idx, v);
        }
    }
}

/* Gives back the kernel pages of array elements [i, j) (of size elem from
 * base) widened to whole pages, but only pages that lie wholly inside
 * elements [lo, hi). Widening matters: a span given back a few pages at a
 * time adds only a few slots to a free run each time, never a whole page,
 * and the pages must go when the run around them is long enough. */
static void release_elems(char *base, size_t elem, size_t i, size_t j, size_t lo, size_t hi)
{
    const uintptr_t page = tli_os_page_size();
    uintptr_t a = ((uintptr_t)base + i * elem) & ~(page - 1);
    uintptr_t b = tli_round_up((uintptr_t)base + j * elem, page);
    uintptr_t min = tli_round_up((uintptr_t)base + lo * elem, page);
    uintptr_t max = ((uintptr_t)base + hi * elem) & ~(page - 1);
    if (a < min)
        a = min;
    if (b > max)
        b = max;
    /* If the kernel refuses (locked memory), the pages stay resident and
     * hold what they held: zero entries, written as the span became free
     * (I2), and slots of spans joined away, whose state is SPAN_FREE, as a
     * zeroed slot's is. No reader relies on more, so nothing is undone. */
    if (b > a)
        (void)tli_os_decommit((void *)a, b - a);
}

/* Page heap lock held. The pages [start, end) have just become part of the
 * interior [lo, hi) of a unbacked free span: their entries are all zero
 * (I2) and their slots unused (I5), as are those of the whole interior. A
 * reader racing with an invalid free may read zeros, as it would a moment
 * later anyway. */
void tli_pagemap_release(uintptr_t start, uintptr_t end, uintptr_t lo, uintptr_t hi)
    TL_REQUIRES(tli_page_heap_lock)
{
    const unsigned shift = TL_PAGE_SHIFT + TL_PM_LEAF_BITS;
    while (start < end) {
        uintptr_t leaf_start = (start >> shift) << shift,
                  leaf_end = leaf_start + ((uintptr_t)1 << shift);
        uintptr_t stop = end < leaf_end ? end : leaf_end;
        struct pagemap_leaf *leaf = tli_pagemap_leaf(start);
        size_t i = tli_pagemap_index(start), j = i + ((stop - start) >> TL_PAGE_SHIFT);
        size_t l = lo > leaf_start ? tli_pagemap_index(lo) : 0;
        size_t h = hi < leaf_end ? tli_pagemap_index(hi) : TL_PM_LEAF_SIZE;
        release_elems((char *)leaf->hot, sizeof(struct pagemap_hot), i, j, l, h);
        release_elems((char *)leaf->span, sizeof(struct span *), i, j, l, h);
        release_elems((char *)leaf->slot, sizeof(struct span), i, j, l, h);
        start = stop;
    }
}

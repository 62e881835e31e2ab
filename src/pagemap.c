/* pagemap.c - address -> span, so free() needs no header (invariants I2, I3
 * in internal.h).
 *
 * A two-level radix tree over 48-bit addresses: a static root of 2^17
 * pointers (1 MiB of .bss, touched only where used) to leaves of 2^18 pages
 * (2 GiB of address space each). A leaf holds a class byte, a span pointer
 * and a 96-byte span slot per page (26.25 MiB of address space, of which
 * only the written parts become resident, and the parts that only a
 * returned free span's interior used are given back). Leaves are never
 * unmapped, so a reader needs no lock: a root entry goes from NULL to a
 * zeroed leaf once, published with a release store.
 *
 * Lock: pagemap_lock guards leaf creation only. It nests inside the page
 * heap lock and the huge lock, never the other way. Entries themselves are
 * written by the holder of the page heap lock (or the huge lock for huge
 * spans, whose pages no other span can share).
 */
#include "internal.h"

#include <stddef.h>

struct pagemap_leaf *tl_pagemap_root[(size_t)1 << TL_PM_ROOT_BITS];
struct tl_lock tl_pagemap_lock = TL_LOCK_INIT;

static bool ensure_leaf(size_t root_index)
{
    if (__atomic_load_n(&tl_pagemap_root[root_index], __ATOMIC_ACQUIRE))
        return true;
    tl_lock_acquire(&tl_pagemap_lock);
    bool ok = true;
    if (!tl_pagemap_root[root_index]) {
        struct pagemap_leaf *leaf = tl_os_map(sizeof *leaf);
        if (leaf) {
            /* the slots count as they hold spans (page_heap.c) */
            tl_stat_add(&tl_stats.meta, offsetof(struct pagemap_leaf, slot));
            __atomic_store_n(&tl_pagemap_root[root_index], leaf, __ATOMIC_RELEASE);
        } else {
            ok = false;
        }
    }
    tl_lock_release(&tl_pagemap_lock);
    return ok;
}

bool tl_pagemap_ensure(uintptr_t start, size_t bytes)
{
    if (bytes == 0 || (start + bytes - 1) >> 48)
        return false;
    const unsigned shift = TL_PAGE_SHIFT + TL_PM_LEAF_BITS;
    for (size_t i = start >> shift; i <= (start + bytes - 1) >> shift; i++)
        if (!ensure_leaf(i))
            return false;
    return true;
}

void tl_pagemap_set_range(uintptr_t start, size_t npages, struct span *v, uint8_t cls)
{
    uintptr_t a = start;
    for (size_t i = 0; i < npages; i++, a += TL_PAGE_SIZE) {
        struct pagemap_leaf *leaf = tl_pagemap_root[a >> (TL_PAGE_SHIFT + TL_PM_LEAF_BITS)];
        size_t idx = tl_pagemap_index(a);
        __atomic_store_n(&leaf->span[idx], v, __ATOMIC_RELEASE);
        __atomic_store_n(&leaf->size_class[idx], cls, __ATOMIC_RELAXED);
    }
}

/* Gives back the whole kernel pages of [from, to). */
static void release_bytes(void *from, void *to)
{
    uintptr_t a = tl_round_up((uintptr_t)from, tl_os_page_size());
    uintptr_t b = (uintptr_t)to & ~(tl_os_page_size() - 1);
    if (b > a)
        tl_os_decommit((void *)a, b - a);
}

/* Page heap lock held. The entries of [start, end) are all zero (I2) and
 * their slots unused (I5); a reader racing with an invalid free may read
 * zeros, as it would a moment later anyway. */
void tl_pagemap_release(uintptr_t start, uintptr_t end)
{
    const unsigned shift = TL_PAGE_SHIFT + TL_PM_LEAF_BITS;
    while (start < end) {
        uintptr_t leaf_end = ((start >> shift) + 1) << shift;
        uintptr_t stop = end < leaf_end ? end : leaf_end;
        struct pagemap_leaf *leaf = tl_pagemap_leaf(start);
        size_t i = tl_pagemap_index(start), j = i + ((stop - start) >> TL_PAGE_SHIFT);
        release_bytes(&leaf->size_class[i], &leaf->size_class[j]);
        release_bytes(&leaf->span[i], &leaf->span[j]);
        release_bytes(&leaf->slot[i], &leaf->slot[j]);
        start = stop;
    }
}

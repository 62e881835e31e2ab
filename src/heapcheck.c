/* heapcheck.c - the debug checks: TL_ASSERT's report, and tl_heap_check(),
 * a walk of the whole heap that checks the invariants of internal.h (I1-I6)
 * and that every list and count agrees with every other:
 *  - the pagemap: each page of an in-use span maps to it with the right
 *    class, a free span maps only its first and last page, a huge span its
 *    first (I2, I3); each page heap span's struct is its slot (I5);
 *  - spans: the objects counted out of a small span and those on its free
 *    list add up to those carved; every free span is joined with its free
 *    neighbours of the same kind;
 *  - the page heap's bins and LRU hold exactly the free spans, and the
 *    statistics the bytes they hold;
 *  - each class's partial heap holds exactly its spans with a free or
 *    uncarved object, in heap order; its counts are the sums of its spans';
 *  - every free object (span lists, transfer batches, the calling thread's
 *    cache) is a carved object of its class with its free key (I4), and on
 *    one list only.
 * Other threads' caches are not walked: they change without a lock.
 *
 * Locks: every central list lock in class order, then the page heap lock
 * (the order of docs/DESIGN.md); problems are reported after both are
 * dropped. Nothing here allocates: the walk's bitmaps are mapped directly.
 */
#include "heapcheck.h"

#include <stdlib.h>

#define SEEN_ROOT ((size_t)1 << TL_PM_ROOT_BITS)
#define LEAF_SPAN_SHIFT (TL_PAGE_SHIFT + TL_PM_LEAF_BITS)
#define SEEN_LEAF_BYTES (((size_t)1 << LEAF_SPAN_SHIFT) / TL_ALIGNMENT / 8)

void tli_assert_fail(const char *file, int line, const char *expr)
{
    struct tli_buf b = {.fd = 2};
    tli_buf_str(&b, "tlmalloc: assertion failed: ");
    tli_buf_str(&b, file);
    tli_buf_str(&b, ":");
    tli_buf_u64(&b, (uint64_t)line);
    tli_buf_str(&b, ": ");
    tli_buf_str(&b, expr);
    tli_buf_str(&b, "\n");
    tli_buf_flush(&b);
    abort();
}

void tli_walk_problem(struct tli_heap_walk *w, const char *what, uintptr_t where)
{
    if (w->problems < TL_WALK_RECORDED) {
        w->first[w->problems].what = what;
        w->first[w->problems].where = where;
    }
    w->problems++;
}

/* True if obj was met before; marks it. */
static bool seen_before(struct tli_heap_walk *w, uintptr_t obj)
{
    if (!w->seen)
        return false; /* no memory for the bitmaps: duplicates go unseen */
    size_t r = (obj >> LEAF_SPAN_SHIFT) & (SEEN_ROOT - 1);
    if (!w->seen[r] && !(w->seen[r] = tli_os_map(SEEN_LEAF_BYTES)))
        return false;
    size_t bit = (obj & (((uintptr_t)1 << LEAF_SPAN_SHIFT) - 1)) / TL_ALIGNMENT;
    uint64_t mask = (uint64_t)1 << (bit % 64);
    bool was = w->seen[r][bit / 64] & mask;
    w->seen[r][bit / 64] |= mask;
    return was;
}

void tli_walk_free_object(struct tli_heap_walk *w, void *obj, unsigned cls, bool in_span)
{
    uintptr_t a = (uintptr_t)obj;
    const struct span *s = tli_pagemap_span(a);
    if (!s || s->state != SPAN_SMALL || s->size_class != cls) {
        tli_walk_problem(w, "a free object outside a span of its class", a);
        return;
    }
    size_t size = tli_classes[cls].size;
    if ((a - s->start) % size || (a - s->start) / size >= s->carved) {
        tli_walk_problem(w, "a free object that is not a carved object start (I1)", a);
        return;
    }
    tli_walk_expect(w, tli_key_of(obj) == (in_span ? tli_span_key(obj) : tli_free_key(obj)),
                    in_span ? "an object on a span's list without the span key (I4)"
                            : "a cached or transferred object without the free key (I4)",
                    a);
    tli_walk_expect(w, !seen_before(w, a), "a free object on two lists", a);
}

/* Walks a small span's free list: free objects of its own, as many as
 * carved minus allocated. */
static void check_small(struct tli_heap_walk *w, const struct span *s)
{
    unsigned cls = s->size_class;
    const struct size_class_info *c = &tli_classes[cls];
    if (cls == 0 || cls >= tli_num_classes) {
        tli_walk_problem(w, "a small span without a valid class", s->start);
        return;
    }
    tli_walk_expect(w, s->npages == c->span_pages, "a small span of the wrong length", s->start);
    tli_walk_expect(w, s->allocated <= s->carved && s->carved <= c->objects,
                    "a small span's counts out of range", s->start);
    tli_walk_expect(w, s->allocated > 0, "an empty small span not given back", s->start);
    tli_walk_expect(w, s->div_limit == (s->carved ? s->carved - 1u : 0u),
                    "a small span's carved limit stale", s->start);
    size_t on_list = 0;
    for (void *obj = tli_link_get(&s->free_list); obj; obj = tli_link_get(obj)) {
        if (tli_pagemap_span((uintptr_t)obj) != s || ++on_list > s->carved) {
            tli_walk_problem(w, "a span's free list leaves the span or loops", s->start);
            break;
        }
        tli_walk_free_object(w, obj, cls, true);
    }
    tli_walk_expect(w, on_list + s->allocated == s->carved,
                    "a span's objects out and on its free list do not add up", s->start);
    tli_walk_expect(w, s->on_central == (s->allocated < c->objects),
                    "a span with room is not in its partial heap, or a full one is", s->start);
    w->spans[cls]++;
    w->allocated[cls] += s->allocated;
    w->partial[cls] += s->on_central;
    w->small_bytes += tli_span_bytes(s);
}

/* A span met at its first page. prev: the span that ends right before it. */
static void check_span(struct tli_heap_walk *w, const struct span *s, const struct span *prev)
{
    tli_walk_expect(w, s->npages > 0, "a span of no pages", s->start);
    if (s->state != SPAN_HUGE)
        tli_walk_expect(w, s == tli_pagemap_slot(s->start),
                        "a page heap span's struct is not its first page's slot (I5)", s->start);
    switch (s->state) {
    case SPAN_FREE:
        tli_walk_expect(w, s->in_bin, "a free span in no bin", s->start);
        tli_walk_expect(w, !s->unbacked || s->clean, "an unbacked span not known to be zero",
                        s->start);
        tli_walk_expect(w, !prev || prev->state != SPAN_FREE || prev->unbacked != s->unbacked,
                        "free neighbours of the same kind not joined", s->start);
        w->free_spans[s->unbacked ? 1 : 0]++;
        w->free_bytes[s->unbacked ? 1 : 0] += tli_span_bytes(s);
        break;
    case SPAN_SMALL:
        check_small(w, s);
        break;
    case SPAN_LARGE:
        w->large_bytes += tli_span_bytes(s);
        w->large_spans++;
        break;
    case SPAN_HUGE:
        break;
    default:
        tli_walk_problem(w, "a span in no known state", s->start);
    }
}

/* The entries of page a, inside span s (I2, I3). A small span's pages
 * carry copies of its start and object-start constants in their hot
 * entries, which free reads instead of the span: they must match. */
static void check_page(struct tli_heap_walk *w, const struct span *s, uintptr_t a,
                       const struct span *e, const struct pagemap_hot *h)
{
    unsigned cls = h->size_class;
    bool edge = a == s->start || a == s->start + tli_span_bytes(s) - TL_PAGE_SIZE;
    bool mapped = s->state == SPAN_SMALL || s->state == SPAN_LARGE ||
                  (s->state == SPAN_FREE && edge) || (s->state == SPAN_HUGE && a == s->start);
    tli_walk_expect(w, e == (mapped ? s : NULL), "a page's span entry is wrong (I2)", a);
    tli_walk_expect(w, cls == (s->state == SPAN_SMALL ? s->size_class : 0u),
                    "a page's class entry is wrong (I3)", a);
    if (s->state == SPAN_SMALL)
        tli_walk_expect(w, h->start == s->start && h->div_limit == s->div_limit,
                        "a page's copy of its span's start or carved limit is stale", a);
}

/* Span entries per kernel page of a leaf's span array. */
#define ENTRIES_PER_PAGE (4096 / sizeof(struct span *))

/* Looks at the pages in use by the heap only: reading an entry on a
 * pagemap page that is not resident would make it resident (a zero page
 * here counts in RSS), and the walk must not change what the memory
 * tests measure. Such a page holds only zero entries (never written, or
 * given back with the interior of a unbacked span). For the same reason a
 * free span's interior entries, zero by I2, are not read. */
static void walk_leaf(struct tli_heap_walk *w, size_t r, const struct pagemap_leaf *leaf,
                      uintptr_t *from, const struct span **cur, uintptr_t *cur_end)
{
    uintptr_t base = (uintptr_t)r << LEAF_SPAN_SHIFT,
              end = base + ((uintptr_t)1 << LEAF_SPAN_SHIFT);
    uintptr_t a = *from > base ? *from : base;
    while (a < end) {
        size_t i = tli_pagemap_index(a);
        if (a >= *cur_end && i % ENTRIES_PER_PAGE == 0 && !tli_os_resident(&leaf->span[i])) {
            a += ENTRIES_PER_PAGE << TL_PAGE_SHIFT;
            continue;
        }
        const struct span *e = __atomic_load_n(&leaf->span[i], __ATOMIC_RELAXED);
        const struct pagemap_hot *h = &leaf->hot[i];
        unsigned cls = h->size_class;
        if (e == &tli_no_span)
            e = NULL;
        if (a >= *cur_end && e && e->start == a) {
            check_span(w, e, *cur && *cur_end == a ? *cur : NULL);
            *cur = e;
            *cur_end = a + tli_span_bytes(e);
        }
        uintptr_t next = a + TL_PAGE_SIZE;
        if (a < *cur_end) {
            check_page(w, *cur, a, e, h);
            uintptr_t last = *cur_end - TL_PAGE_SIZE;
            if ((*cur)->state == SPAN_HUGE)
                next = *cur_end;
            else if ((*cur)->state == SPAN_FREE && next < last)
                next = last;
        } else if (e || cls) {
            tli_walk_problem(w, "a page outside every span maps to one (I2, I3)", a);
        }
        a = next;
    }
    *from = a;
}

static void walk_pagemap(struct tli_heap_walk *w)
{
    const struct span *cur = NULL;
    uintptr_t cur_end = 0, from = 0;
    size_t last = atomic_load(&tli_pagemap_last_leaf);
    for (size_t r = atomic_load(&tli_pagemap_first_leaf); r <= last; r++) {
        const struct pagemap_leaf *leaf = __atomic_load_n(&tli_pagemap_root[r], __ATOMIC_ACQUIRE);
        if (leaf)
            walk_leaf(w, r, leaf, &from, &cur, &cur_end);
    }
}

/* The calling thread's cache: its lists hold free objects of their class. */
static void walk_own_cache(struct tli_heap_walk *w)
{
    if (tli_tc.state != TC_ACTIVE)
        return;
    for (unsigned cls = 1; cls < tli_num_classes; cls++) {
        size_t n = 0;
        for (void *obj = tli_tc.lists.head[cls]; obj; obj = tli_link_get(obj)) {
            if (++n > w->spans[cls] * tli_classes[cls].objects) {
                tli_walk_problem(w, "a thread cache list loops", (uintptr_t)obj);
                break;
            }
            tli_walk_free_object(w, obj, cls, false);
        }
        /* room counts down as the list fills: max_len - objects held */
        const struct tc_state *st = tli_tc.st;
        tli_walk_expect(w, !st || (int64_t)n == (int64_t)st->max_len[cls] - tli_tc.lists.room[cls],
                        "a thread cache list's room does not match its length",
                        (uintptr_t)tli_tc.lists.head[cls]);
    }
}

static void print_problems(const struct tli_heap_walk *w)
{
    struct tli_buf b = {.fd = 2};
    for (size_t i = 0; i < w->problems && i < TL_WALK_RECORDED; i++) {
        tli_buf_str(&b, "tlmalloc: heap check: ");
        tli_buf_str(&b, w->first[i].what);
        tli_buf_str(&b, " at ");
        tli_buf_hex(&b, w->first[i].where);
        tli_buf_str(&b, "\n");
    }
    if (w->problems > TL_WALK_RECORDED) {
        tli_buf_str(&b, "tlmalloc: heap check: ");
        tli_buf_u64(&b, w->problems - TL_WALK_RECORDED);
        tli_buf_str(&b, " more problems\n");
    }
    tli_buf_flush(&b);
}

/* Takes every central list lock and the page heap lock, in the order of
 * docs/DESIGN.md; the analysis cannot follow locks taken in a loop. */
static void lock_all(void) TL_NO_LOCK_ANALYSIS
{
    for (unsigned cls = 1; cls < tli_num_classes; cls++)
        tli_lock_acquire(&tli_central_locks[cls]);
    tli_lock_acquire(&tli_page_heap_lock);
}

static void unlock_all(void) TL_NO_LOCK_ANALYSIS
{
    tli_lock_release(&tli_page_heap_lock);
    for (unsigned cls = tli_num_classes; cls-- > 1;)
        tli_lock_release(&tli_central_locks[cls]);
}

/* All locks held (lock_all). */
static void walk_locked(struct tli_heap_walk *w, bool own_cache) TL_NO_LOCK_ANALYSIS
{
    walk_pagemap(w);
    tli_page_heap_check(w);
    for (unsigned cls = 1; cls < tli_num_classes; cls++)
        tli_central_check(w, cls);
    if (own_cache) {
        walk_own_cache(w);
        tli_fork_check(w);
    }
}

static size_t check(bool own_cache)
{
    if (atomic_load_explicit(&tli_init_state, memory_order_acquire) != 2)
        return 0;
    struct tli_heap_walk *w = tli_os_map(sizeof *w);
    if (!w)
        return 0;
    w->seen = tli_os_map(SEEN_ROOT * sizeof *w->seen);
    lock_all();
    walk_locked(w, own_cache);
    unlock_all();
    if (w->seen) {
        for (size_t r = 0; r < SEEN_ROOT; r++)
            if (w->seen[r])
                tli_os_unmap(w->seen[r], SEEN_LEAF_BYTES);
        tli_os_unmap(w->seen, SEEN_ROOT * sizeof *w->seen);
    }
    size_t problems = w->problems;
    if (problems)
        print_problems(w);
    tli_os_unmap(w, sizeof *w);
    return problems;
}

TL_EXPORT size_t tl_heap_check(void) { return check(true); }

#ifdef TL_DEBUG
/* The walk at every debug_check_every-th slow path. The calling thread's
 * cache may be half way through a refill or flush here, so only the shared
 * structures are walked. */
void tli_debug_tick(void)
{
    static _Atomic uint64_t ticks;
    uint64_t every = tli_conf.debug_check_every;
    if (!every || (atomic_fetch_add_explicit(&ticks, 1, memory_order_relaxed) + 1) % every)
        return;
    if (tli_lock_any_held_by_me())
        return;
    if (check(false))
        tli_fatal("the heap check found the problems above");
}
#endif

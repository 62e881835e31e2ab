/* t_layers.c - the allocator's layers tested one by one, below malloc: the
 * size-class tables, the pagemap, the page heap, the partial-span heap of
 * a central list, and the thread-cache budget. tests/test_layers links the
 * allocator's objects directly (-DTL_OVERRIDE=0: the system malloc stays,
 * for Criterion), so these tests call the internal functions of
 * src/internal.h and look at their structures. Each test runs in a process
 * of its own, with a heap of its own, and ends with the whole-heap walk. */
#include "internal.h"
#include "tlmalloc.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE TL_PAGE_SIZE

static void setup(void) { tli_ensure_init(); }

static struct span *take_large(size_t npages)
{
    struct span *s = tli_page_heap_alloc(npages, 1, SPAN_LARGE, 0);
    cr_assert(s, "no span of %zu pages", npages);
    cr_assert_eq(s->npages, npages);
    return s;
}

/* The free span whose first page is at a, or NULL. */
static struct span *free_span_at(uintptr_t a)
{
    struct span *s = tli_pagemap_span(a);
    return s && s->state == SPAN_FREE && s->start == a ? s : NULL;
}

/* ---- size classes --------------------------------------------------------- */
Test(layers, size_class_tables, .init = setup)
{
    cr_assert_gt(tli_num_classes, 2);
    for (unsigned c = 1; c < tli_num_classes; c++) {
        const struct size_class_info *k = &tli_classes[c];
        cr_assert_eq(k->size % TL_ALIGNMENT, 0, "class %u: size %u (I1)", c, k->size);
        if (c > 1)
            cr_assert_gt(k->size, tli_classes[c - 1].size, "class %u: sizes do not rise", c);
        cr_assert_geq(k->objects, 1);
        cr_assert_leq((size_t)k->objects * k->size, (size_t)k->span_pages * PAGE,
                      "class %u: its objects do not fit its span", c);
        cr_assert_gt(((size_t)k->objects + 1) * k->size, (size_t)k->span_pages * PAGE,
                     "class %u: a span has room for one more object", c);
        cr_assert_geq(k->batch, 1);
        /* the exact-division test: multiples of the size and no others */
        for (uint64_t i = 0; i < k->objects; i += 1 + k->objects / 64) {
            uint64_t off = i * k->size;
            cr_assert(tli_divides(k->div_inv, k->div_limit, k->div_shift, off), "class %u, %lu", c,
                      (unsigned long)i);
            cr_assert(k->size == 16 ||
                          !tli_divides(k->div_inv, k->div_limit, k->div_shift, off + 16),
                      "class %u: %lu is not a multiple", c, (unsigned long)(off + 16));
        }
    }
    /* every request maps to the smallest class that holds it */
    for (size_t n = 1; n <= TL_SMALL_MAX; n++) {
        unsigned c = tli_size_to_class(n);
        cr_assert(c > 0 && c < tli_num_classes, "size %zu: class %u", n, c);
        cr_assert_geq(tli_classes[c].size, n, "size %zu: class %u too small", n, c);
        cr_assert(c == 1 || tli_classes[c - 1].size < n, "size %zu: class %u not the smallest", n,
                  c);
    }
    cr_assert_eq(tli_size_to_class(TL_SMALL_MAX + 1), 0);
}

/* ---- pagemap ------------------------------------------------------------------ */
Test(layers, pagemap_maps_and_clears, .init = setup)
{
    size_t bytes = 4 * PAGE;
    char *m = mmap(NULL, bytes + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    uintptr_t a = tli_round_up((uintptr_t)m, PAGE);
    cr_assert_null(tli_pagemap_span(a), "a page never given to the heap maps to a span");
    cr_assert(tli_pagemap_ensure(a, bytes));
    cr_assert(!tli_pagemap_ensure((uintptr_t)1 << 48, PAGE), "an address above 48 bits");
    cr_assert_null(tli_pagemap_leaf((uintptr_t)1 << 48));
    static struct span fake = {.state = SPAN_SMALL, .size_class = 3};
    fake.start = a;
    fake.npages = 4;
    tli_lock_acquire(&tli_page_heap_lock);
    tli_pagemap_set_range(a, 4, &fake, 3);
    tli_lock_release(&tli_page_heap_lock);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(tli_pagemap_span(a + i * PAGE + 100), &fake);
        cr_assert_eq(tli_pagemap_leaf(a)->hot[tli_pagemap_index(a + i * PAGE)].size_class, 3);
    }
    cr_assert_null(tli_pagemap_span(a + 4 * PAGE));
    tli_lock_acquire(&tli_page_heap_lock);
    tli_pagemap_set_range(a, 4, NULL, 0);
    tli_lock_release(&tli_page_heap_lock);
    /* I3: a cleared entry is tli_no_span, read as no span */
    cr_assert_eq(tli_pagemap_leaf(a)->span[tli_pagemap_index(a)], &tli_no_span);
    cr_assert_null(tli_pagemap_span(a));
    cr_assert_eq(tli_pagemap_leaf(a)->hot[tli_pagemap_index(a)].size_class, 0);
    cr_assert_eq(tl_heap_check(), 0);
}

/* ---- page heap ------------------------------------------------------------------ */
Test(layers, page_heap_splits_and_coalesces, .init = setup)
{
    struct span *a = take_large(4), *b = take_large(4), *c = take_large(4);
    /* large spans are cut from the front of the run: each after the last */
    cr_assert_eq(b->start, a->start + 4 * PAGE);
    cr_assert_eq(c->start, b->start + 4 * PAGE);
    struct span *rest = free_span_at(c->start + 4 * PAGE);
    cr_assert(rest, "the rest of the split run is not a free span");
    cr_assert_eq(tl_heap_check(), 0);
    uintptr_t as = a->start, bs = b->start;
    tli_page_heap_free(b);
    struct span *hole = free_span_at(bs);
    cr_assert(hole && hole->npages == 4, "b's pages are not one free span of 4");
    tli_page_heap_free(a);
    struct span *joined = free_span_at(as);
    cr_assert(joined, "a's pages are not a free span");
    cr_assert_eq(joined->npages, 8, "a and the hole after it were not joined");
    cr_assert_null(free_span_at(bs), "the hole still stands on its own");
    cr_assert_eq(tl_heap_check(), 0);
    tli_page_heap_free(c);
    cr_assert_eq(tl_heap_check(), 0);
}

Test(layers, page_heap_best_fit_and_high_small_spans, .init = setup)
{
    struct span *x1 = take_large(3), *sep1 = take_large(1), *x2 = take_large(5),
                *sep2 = take_large(1);
    uintptr_t x1s = x1->start, x2s = x2->start;
    tli_page_heap_free(x2);
    tli_page_heap_free(x1);
    /* holes of 5 and 3 pages: 3 pages take the 3-page hole, exactly */
    struct span *fit = take_large(3);
    cr_assert_eq(fit->start, x1s, "3 pages did not take the 3-page hole");
    struct span *fit5 = take_large(5);
    cr_assert_eq(fit5->start, x2s, "5 pages did not take the 5-page hole");
    /* a small span goes to the top of the highest free run, above them */
    unsigned cls = tli_size_to_class(64);
    struct span *small = tli_page_heap_alloc(tli_classes[cls].span_pages, 1, SPAN_SMALL, cls);
    cr_assert(small);
    cr_assert_gt(small->start, sep2->start, "a small span was not placed high");
    cr_assert_null(free_span_at(small->start + tli_span_bytes(small)),
                   "a small span was not cut from the top of its run");
    tli_page_heap_free(small);
    tli_page_heap_free(fit);
    tli_page_heap_free(fit5);
    tli_page_heap_free(sep1);
    tli_page_heap_free(sep2);
    cr_assert_eq(tl_heap_check(), 0);
}

/* A joined span's age is the page-weighted mean of its parts'. */
Test(layers, page_heap_decay_age_of_joined_spans, .init = setup)
{
    struct span *a = take_large(6), *b = take_large(2), *guard = take_large(1);
    uintptr_t as = a->start;
    tli_page_heap_free(a);
    tli_lock_acquire(&tli_page_heap_lock);
    struct span *fa = free_span_at(as);
    cr_assert(fa);
    uint64_t now = tli_os_now_ms();
    fa->freed_ms = now - 8000; /* free for 8 s */
    tli_lock_release(&tli_page_heap_lock);
    tli_page_heap_free(b); /* freed now, 2 pages beside 6 */
    struct span *j = free_span_at(as);
    cr_assert(j && j->npages == 8);
    uint64_t expect = now - 8000 + 8000 * 2 / 8; /* 6 s old */
    cr_assert(j->freed_ms + 50 >= expect && j->freed_ms <= expect + 1000,
              "joined age %llu, expected about %llu", (unsigned long long)j->freed_ms,
              (unsigned long long)expect);
    tli_page_heap_free(guard);
    cr_assert_eq(tl_heap_check(), 0);
}

/* Giving pages back: the span becomes unbacked, joins its unbacked
 * neighbours, and the pagemap memory its interior used goes back too. */
Test(layers, page_heap_release_gives_back_pagemap_pages, .init = setup)
{
    size_t npages = 8192; /* 64 MiB: 64 KiB of entries, 768 KiB of slots */
    struct span *big = take_large(npages);
    uintptr_t start = big->start;
    struct pagemap_leaf *leaf = tli_pagemap_leaf(start + npages / 2 * PAGE);
    const void *mid_entry = &leaf->span[tli_pagemap_index(start + npages / 2 * PAGE)];
    const void *mid_slot = &leaf->slot[tli_pagemap_index(start + npages / 2 * PAGE)];
    cr_assert(tli_os_resident(mid_entry), "an in-use span's entries are not resident");
    tli_page_heap_free(big);
    cr_assert_geq(tli_page_heap_release(SIZE_MAX, true), npages * PAGE);
    struct span *s = tli_pagemap_span(start);
    cr_assert(s && s->state == SPAN_FREE && s->unbacked && s->clean,
              "the freed span is not unbacked and clean");
    cr_assert_leq(s->start, start);
    cr_assert(!tli_os_resident(mid_entry), "the interior's pagemap entries stayed resident");
    cr_assert(!tli_os_resident(mid_slot), "the interior's slots stayed resident");
    cr_assert_eq(tl_heap_check(), 0);
}

/* Giving back part of a span: when a span is more than 1 MiB larger than
 * what is left to give back, only its back part goes (whole pages); the
 * front stays dirty, keeps its age, and the two are joined again when the
 * front goes too. Before, the whole span went back, and a large block's
 * pages were paid for in page faults at their next use. */
Test(layers, page_heap_release_splits_a_large_span, .init = setup)
{
    /* no giving back at the free (a single-threaded process's) meanwhile */
    __atomic_store_n(&tli_conf.background, TL_BACKGROUND_NEVER, __ATOMIC_RELAXED);
    size_t npages = 512, want = ((size_t)1 << 20) + 3 * PAGE / 2; /* 4 MiB; 1 MiB + 1.5 pages */
    struct span *big = take_large(npages), *guard = take_large(1);
    uintptr_t start = big->start;
    tli_page_heap_free(big);
    size_t dirty = atomic_load(&tli_stats.page_free);
    cr_assert_geq(dirty, npages * PAGE);
    size_t done = tli_page_heap_release(want, true);
    cr_assert_eq(done, ((size_t)1 << 20) + 2 * PAGE, "gave back %zu bytes to shed %zu", done, want);
    cr_assert_eq(atomic_load(&tli_stats.page_free), dirty - done);
    tli_lock_acquire(&tli_page_heap_lock);
    struct span *front = free_span_at(start);
    cr_assert(front && !front->unbacked, "the front part is not a dirty free span");
    cr_assert_eq(front->npages, npages - done / PAGE);
    struct span *back = tli_pagemap_span(start + tli_span_bytes(front));
    cr_assert(back && back->state == SPAN_FREE && back->unbacked, "the back part is not unbacked");
    tli_lock_release(&tli_page_heap_lock);
    cr_assert_eq(tl_heap_check(), 0);
    cr_assert_geq(tli_page_heap_release(SIZE_MAX, true), npages * PAGE - done);
    tli_lock_acquire(&tli_page_heap_lock);
    struct span *all = tli_pagemap_span(start);
    cr_assert(all && all->unbacked && all->start <= start &&
                  all->start + all->npages * PAGE >= start + npages * PAGE,
              "the two parts were not joined again");
    tli_lock_release(&tli_page_heap_lock);
    tli_page_heap_free(guard);
    cr_assert_eq(tl_heap_check(), 0);
}

/* ---- the partial-span heap of a central list ------------------------------------ */
Test(layers, central_refills_from_the_highest_partial_span, .init = setup)
{
    unsigned cls = tli_size_to_class(1024);
    const struct size_class_info *k = &tli_classes[cls];
    size_t total = (size_t)k->objects * 3;
    void **objs = calloc(total, sizeof *objs);
    size_t got = 0;
    while (got < total) {
        void *head;
        unsigned n = tli_central_take(cls, 1, &head);
        cr_assert_eq(n, 1);
        objs[got++] = head;
    }
    /* three full spans; one object of each back, lowest, highest, middle */
    uintptr_t starts[3];
    for (int i = 0; i < 3; i++)
        starts[i] = tli_pagemap_span((uintptr_t)objs[(size_t)i * k->objects])->start;
    uintptr_t lo = starts[0], hi = starts[0];
    for (int i = 1; i < 3; i++) {
        lo = starts[i] < lo ? starts[i] : lo;
        hi = starts[i] > hi ? starts[i] : hi;
    }
    size_t order[3];
    for (int i = 0; i < 3; i++)
        order[starts[i] == lo ? 0 : starts[i] == hi ? 1 : 2] = (size_t)i * k->objects;
    for (int i = 0; i < 3; i++) {
        tli_central_give_one(objs[order[i]], cls);
        objs[order[i]] = NULL;
    }
    cr_assert_eq(tl_heap_check(), 0);
    void *head;
    cr_assert_eq(tli_central_take(cls, 1, &head), 1);
    cr_assert_eq(tli_pagemap_span((uintptr_t)head)->start, hi,
                 "a refill did not come from the highest partial span");
    tli_clear_free_words(head);
    tli_central_give_one(head, cls);
    for (size_t i = 0; i < total; i++)
        if (objs[i]) {
            tli_clear_free_words(objs[i]);
            tli_central_give_one(objs[i], cls);
        }
    cr_assert_eq(tl_heap_check(), 0);
    free(objs);
}

/* ---- the heap walk finds what is wrong ----------------------------------------- */
Test(layers, heap_check_finds_a_miscounted_span, .init = setup)
{
    unsigned cls = tli_size_to_class(256);
    void *head;
    cr_assert_eq(tli_central_take(cls, 1, &head), 1);
    struct span *s = tli_pagemap_span((uintptr_t)head);
    cr_assert_eq(tl_heap_check(), 0);
    tli_lock_acquire(&tli_central_locks[cls]);
    s->allocated++;
    tli_lock_release(&tli_central_locks[cls]);
    cr_assert_gt(tl_heap_check(), 0, "a span counting one object too many went unseen");
    tli_lock_acquire(&tli_central_locks[cls]);
    s->allocated--;
    tli_lock_release(&tli_central_locks[cls]);
    cr_assert_eq(tl_heap_check(), 0);
}

/* Free reads a page's hot entry, not the span: a copy of the span's
 * object-start constants that lags behind the span would let free accept
 * a pointer the span never handed out, or refuse a good one. */
Test(layers, heap_check_finds_a_stale_hot_entry, .init = setup)
{
    unsigned cls = tli_size_to_class(512);
    void *head;
    cr_assert_eq(tli_central_take(cls, 1, &head), 1);
    struct span *s = tli_pagemap_span((uintptr_t)head);
    struct pagemap_hot *h = &tli_pagemap_leaf(s->start)->hot[tli_pagemap_index(s->start)];
    cr_assert_eq(h->start, s->start);
    cr_assert_eq(h->div_limit, s->div_limit);
    cr_assert_eq(tl_heap_check(), 0);
    tli_lock_acquire(&tli_central_locks[cls]);
    h->div_limit++;
    tli_lock_release(&tli_central_locks[cls]);
    cr_assert_gt(tl_heap_check(), 0, "a page's stale carved limit went unseen");
    tli_lock_acquire(&tli_central_locks[cls]);
    h->div_limit--;
    tli_lock_release(&tli_central_locks[cls]);
    cr_assert_eq(tl_heap_check(), 0);
    tli_central_give_one(head, cls);
    cr_assert_eq(tl_heap_check(), 0);
}

Test(layers, heap_check_finds_unjoined_free_neighbours, .init = setup)
{
    struct span *a = take_large(2), *b = take_large(2), *guard = take_large(1);
    uintptr_t as = a->start;
    tli_page_heap_free(a);
    tli_page_heap_free(b);
    cr_assert_eq(tl_heap_check(), 0);
    /* split the joined span by hand into two free spans: as the heap
     * looks when a free forgot to coalesce */
    tli_lock_acquire(&tli_page_heap_lock);
    struct span *j = free_span_at(as);
    cr_assert(j && j->npages == 4);
    j->npages = 2;
    tli_lock_release(&tli_page_heap_lock);
    cr_assert_gt(tl_heap_check(), 0, "a free span not covering its run went unseen");
    tli_lock_acquire(&tli_page_heap_lock);
    j->npages = 4;
    tli_lock_release(&tli_page_heap_lock);
    cr_assert_eq(tl_heap_check(), 0);
    tli_page_heap_free(guard);
}

/* ---- the thread-cache budget ----------------------------------------------------- */
static void *cache_user(void *arg)
{
    size_t *during = arg;
    void *p[512];
    for (int i = 0; i < 512; i++)
        p[i] = tl_malloc(1024);
    for (int i = 0; i < 512; i++)
        tl_free(p[i]);
    *during = atomic_load(&tli_tc_unclaimed);
    return NULL;
}

/* A thread's cache claims cap from the pool as it grows. At its exit the
 * cap stays with the lists kept for the next thread, and the pool gets all
 * of it back when they are released. */
Test(layers, thread_cache_budget_is_claimed_and_returned, .init = setup)
{
    size_t before = atomic_load(&tli_tc_unclaimed), during = 0;
    cr_assert_eq(before, tli_conf.tc_budget, "the pool is not the whole budget at start");
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, cache_user, &during), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_lt(during, before, "a growing cache claimed no cap");
    cr_assert_lt(atomic_load(&tli_tc_unclaimed), before, "the kept lists gave their cap back");
    tli_tc_release_kept(0, true);
    cr_assert_eq(atomic_load(&tli_tc_unclaimed), before, "released kept lists kept cap");
    cr_assert(!tli_tc_any_kept());
    cr_assert_eq(tl_heap_check(), 0);
}

/* A thread that only frees a class keeps one batch in its list, so every
 * flush gives the whole list away without walking it. A scavenge that
 * halved the list from the bottom left room, and the free that had found
 * the list full went on to raise the limit past a batch: from then on each
 * flush walked the batch (detach in xmalloc-test's profile). */
enum { FREE_ONLY_BLOCKS = 16384 };
struct free_only {
    void **blocks;
    unsigned cls;
    uint32_t max_len_seen;
};

static void *free_only_thread(void *arg)
{
    struct free_only *f = arg;
    for (int i = 0; i < FREE_ONLY_BLOCKS; i++) {
        tl_free(f->blocks[i]);
        if (i % 64 == 63)
            usleep(100); /* scavenges run every decay_ms/4 = 1 ms */
        if (tli_tc.st && tli_tc.st->max_len[f->cls] > f->max_len_seen)
            f->max_len_seen = tli_tc.st->max_len[f->cls];
    }
    return NULL;
}

Test(layers, free_only_list_stays_at_one_batch, .init = setup)
{
    __atomic_store_n(&tli_conf.decay_ms, 4, __ATOMIC_RELAXED);
    struct free_only f = {.blocks = calloc(FREE_ONLY_BLOCKS, sizeof(void *)),
                          .cls = tli_size_to_class(64)};
    cr_assert(f.blocks);
    cr_assert(f.cls && tli_classes[f.cls].size == 64, "no class of 64 bytes");
    for (int i = 0; i < FREE_ONLY_BLOCKS; i++)
        cr_assert(f.blocks[i] = tl_malloc(64));
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, free_only_thread, &f), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_expect_leq(f.max_len_seen, tli_classes[f.cls].batch,
                  "a thread that only frees class %u raised its list limit to %u, past its "
                  "batch of %u",
                  f.cls, f.max_len_seen, tli_classes[f.cls].batch);
    free(f.blocks);
    cr_assert_eq(tl_heap_check(), 0);
}

/* The timed scavenge cuts a busy list back to one batch and gives its
 * older half to the spans. A list that ran empty since the last scavenge
 * was refilled from the central list since, so cutting it only makes it
 * refill again: on server -t 8 those refills moved each thread's blocks
 * into other threads' spans. It is left alone until a scavenge finds it
 * has not run empty. */
static uint32_t held_in(unsigned cls)
{
    return (uint32_t)((int32_t)tli_tc.st->max_len[cls] - tli_tc.lists.room[cls]);
}

static void *scavenge_thread(void *arg)
{
    unsigned cls = *(unsigned *)arg, n = 4 * tli_classes[cls].batch;
    void **p = calloc(n, sizeof *p);
    cr_assert(p);
    for (unsigned i = 0; i < n; i++) /* the list runs empty: refills */
        cr_assert(p[i] = tl_malloc(tli_classes[cls].size));
    for (unsigned i = 0; i < n; i++)
        tl_free(p[i]);
    cr_assert(tli_tc.st, "the thread has no cache");
    uint32_t before = held_in(cls), limit = tli_tc.st->max_len[cls];
    cr_assert_gt(before, tli_classes[cls].batch / 2, "too few objects cached to see a halving");
    /* From here, every tick scavenges; none ran before (decay_ms/4 of an
     * hour has not passed since the cache was made, however loaded the
     * machine). */
    __atomic_store_n(&tli_conf.decay_ms, 0, __ATOMIC_RELAXED);
    tli_tc.st->gc_cursor = cls + 1 < tli_num_classes ? cls + 1 : 1; /* not this class */
    tli_tc_tick();
    cr_expect_eq(held_in(cls), before, "a list that ran empty lost objects at the scavenge");
    cr_expect_eq(tli_tc.st->max_len[cls], limit);
    tli_tc.st->gc_cursor = cls + 1 < tli_num_classes ? cls + 1 : 1;
    tli_tc_tick();
    cr_expect_lt(held_in(cls), before, "a list that did not run empty kept all its objects");
    free(p);
    return NULL;
}

Test(layers, scavenge_leaves_a_list_that_ran_empty, .init = setup)
{
    __atomic_store_n(&tli_conf.decay_ms, 3600 * 1000, __ATOMIC_RELAXED);
    unsigned cls = tli_size_to_class(64);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, scavenge_thread, &cls), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(tl_heap_check(), 0);
}

/* ---- the one pointer validation ---------------------------------------------- */
static enum tli_verdict verdict_of(uintptr_t a, struct tli_where *w)
{
    return tli_validate((const void *)a, w);
}

/* A class whose spans end in a tail no object fits in. */
static unsigned class_with_tail(void)
{
    for (unsigned c = 1; c < tli_num_classes; c++) {
        const struct size_class_info *k = &tli_classes[c];
        if ((size_t)k->span_pages * PAGE - (size_t)k->objects * k->size >= TL_ALIGNMENT)
            return c;
    }
    return 0;
}

Test(layers, validate_small_objects, .init = setup)
{
    unsigned cls = class_with_tail();
    cr_assert(cls, "no class leaves a tail in its spans");
    const struct size_class_info *k = &tli_classes[cls];
    void *two[2];
    cr_assert_eq(tli_central_take(cls, 1, &two[0]), 1);
    cr_assert_eq(tli_central_take(cls, 1, &two[1]), 1);
    tli_clear_free_words(two[0]); /* handed out: both words cleared (I4) */
    tli_clear_free_words(two[1]);
    uintptr_t p = (uintptr_t)two[0];
    struct span *s = tli_pagemap_span(p);
    cr_assert(s && s->state == SPAN_SMALL && s->carved < k->objects);
    const struct pagemap_hot *h = &tli_pagemap_leaf(p)->hot[tli_pagemap_index(p)];
    struct tli_where w;

    cr_assert_eq(verdict_of(p, &w), TL_PTR_BLOCK, "the start of a live object");
    cr_assert_eq(w.span, s);
    cr_assert_eq(w.block, p);
    cr_assert(tli_hot_is_object_start(h, cls, p), "the fast path's part refuses a live object");

    cr_assert_eq(verdict_of(p + 16, &w), TL_PTR_INTERIOR, "16 bytes into a live object");
    cr_assert_eq(w.block, p);
    cr_assert(!tli_hot_is_object_start(h, cls, p + 16));

    uintptr_t uncarved = s->start + (uintptr_t)s->carved * k->size;
    cr_assert_eq(verdict_of(uncarved, &w), TL_PTR_NOT_CARVED, "an object not yet carved");
    cr_assert_eq(w.block, uncarved);
    cr_assert(!tli_hot_is_object_start(h, cls, uncarved));

    uintptr_t tail = s->start + (uintptr_t)k->objects * k->size;
    cr_assert_eq(verdict_of(tail, &w), TL_PTR_SPAN_TAIL, "past the last object of a span");
    cr_assert_eq(w.block, 0);
    cr_assert(!tli_hot_is_object_start(h, cls, tail));
    cr_assert_eq(verdict_of(tail + 8, &w), TL_PTR_SPAN_TAIL, "inside the tail");

    /* back in a list: the thread cache key, then the span key (I4) */
    ((uint64_t *)two[1])[1] = tli_free_key(two[1]);
    cr_assert_eq(verdict_of((uintptr_t)two[1], &w), TL_PTR_FREED, "an object with the free key");
    cr_assert_eq(w.span->size_class, cls);
    ((uint64_t *)two[1])[1] = 0;
    tli_central_give_one(two[1], cls);
    cr_assert_eq(verdict_of((uintptr_t)two[1], &w), TL_PTR_FREED, "an object with the span key");
    cr_assert_eq(verdict_of(p, &w), TL_PTR_BLOCK, "its neighbour is still live");
    tli_central_give_one(two[0], cls);
    cr_assert_eq(tl_heap_check(), 0);
}

Test(layers, validate_large_and_free_spans, .init = setup)
{
    struct span *a = take_large(4), *b = take_large(4), *guard = take_large(1);
    uintptr_t as = a->start, bs = b->start;
    struct tli_where w;
    cr_assert_eq(verdict_of(as, &w), TL_PTR_BLOCK, "a large block's start");
    cr_assert_eq(w.span, a);
    cr_assert_eq(verdict_of(as + 2 * PAGE + 48, &w), TL_PTR_INTERIOR, "inside a large block");
    cr_assert_eq(w.block, as);
    /* b between two spans in use: freed, it joins neither */
    tli_page_heap_free(b);
    cr_assert_eq(verdict_of(bs, &w), TL_PTR_FREED, "a free span's start");
    cr_assert_eq(w.block, 0);
    /* a free span maps its last page too (I2) */
    cr_assert_eq(verdict_of(bs + 3 * PAGE + 16, &w), TL_PTR_FREE_MEMORY, "a free span's last page");
    tli_page_heap_free(a);
    tli_page_heap_free(guard);
    cr_assert_eq(tl_heap_check(), 0);
}

Test(layers, validate_foreign_and_huge, .init = setup)
{
    struct tli_where w;
    char *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    uintptr_t never = tli_round_up((uintptr_t)m, PAGE);
    cr_assert_eq(verdict_of(never, &w), TL_PTR_FOREIGN, "a page never ours");
    cr_assert_null(w.span);
    cr_assert_eq(verdict_of((uintptr_t)&w, &w), TL_PTR_FOREIGN, "the stack");
    cr_assert_eq(verdict_of((uintptr_t)1 << 48, &w), TL_PTR_FOREIGN, "above 48 bits");
    cr_assert_eq(verdict_of(0, &w), TL_PTR_FOREIGN, "NULL");

    void *huge = tli_huge_alloc(4 * PAGE, PAGE);
    cr_assert_not_null(huge);
    uintptr_t hs = (uintptr_t)huge;
    cr_assert_eq(verdict_of(hs, &w), TL_PTR_BLOCK, "a huge block's start");
    struct span *s = w.span;
    cr_assert_eq(s->state, SPAN_HUGE);
    cr_assert_eq(verdict_of(hs + 16, &w), TL_PTR_INTERIOR, "inside a huge block's first page");
    /* only a huge block's first page is in the pagemap (I2) */
    cr_assert_eq(verdict_of(hs + 2 * PAGE, &w), TL_PTR_FOREIGN, "a huge block's later page");
    tli_huge_free(s);
    cr_assert_eq(verdict_of(hs, &w), TL_PTR_FREED_HUGE, "a huge block freed");
    cr_assert_null(w.span);
    munmap(m, 2 * PAGE);
    cr_assert_eq(tl_heap_check(), 0);
}

/* ---- the text buffer of reports and profiles (diag.c) ---------------------- */
static size_t read_all(int fd, char *out, size_t cap)
{
    size_t n = 0;
    ssize_t k;
    while (n < cap - 1 && (k = read(fd, out + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    out[n] = 0;
    return n;
}

Test(layers, text_buffer_formats_and_flushes)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct tli_buf b = {.fd = fds[1]};
    tli_buf_num(&b, 42, 6);
    tli_buf_str(&b, "|");
    tli_buf_num(&b, -7, 0);
    tli_buf_str(&b, "|");
    tli_buf_num(&b, INT64_MIN, 0);
    tli_buf_str(&b, "|");
    tli_buf_hex(&b, 0x1f);
    tli_buf_str(&b, "|");
    tli_buf_hex_digits(&b, 0x1f, 8);
    tli_buf_str(&b, "|");
    tli_buf_hex_digits(&b, UINT64_MAX, 8);
    tli_buf_str(&b, "|");
    tli_buf_u64(&b, 0);
    tli_buf_flush(&b);
    cr_assert_eq(b.err, 0);
    cr_assert_eq(b.len, 0);
    char text[256];
    close(fds[1]);
    read_all(fds[0], text, sizeof text);
    close(fds[0]);
    cr_expect_str_eq(text, "    42|-7|-9223372036854775808|0x1f|0x0000001f|0xffffffffffffffff|0");
}

/* More than the buffer holds goes out in order, through flushes on the
 * way; a failed write sets err, and err stays set. */
Test(layers, text_buffer_keeps_its_first_write_error)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct tli_buf b = {.fd = fds[1]};
    static char line[3000];
    for (size_t i = 0; i < sizeof line - 1; i++)
        line[i] = (char)('a' + i % 26);
    tli_buf_str(&b, line);
    tli_buf_flush(&b);
    cr_assert_eq(b.err, 0);
    static char text[4000];
    close(fds[1]);
    cr_expect_eq(read_all(fds[0], text, sizeof text), sizeof line - 1);
    cr_expect_str_eq(text, line);
    close(fds[0]);

    struct tli_buf bad = {.fd = -1};
    tli_buf_str(&bad, "lost");
    tli_buf_flush(&bad);
    cr_expect_eq(bad.err, EIO);
    tli_buf_str(&bad, "also lost");
    tli_buf_flush(&bad);
    cr_expect_eq(bad.err, EIO);
    cr_expect_eq(bad.len, 0);
}

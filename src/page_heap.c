/* page_heap.c - spans of whole pages: taking memory from the OS, splitting,
 * coalescing, giving pages back after they have been free for a while, and
 * the metadata arena that span structs live in.
 *
 * Free spans sit in bins by length: one bin per length up to 128 pages
 * (1 MiB), then one per power of two. Two sets of bins: "dirty" spans (free
 * but resident) and "unbacked" spans (not resident: pages given back with
 * madvise, or never touched since they were mapped; they read as zero). A
 * span whose madvise failed (locked memory) stays dirty (see give_back). Neighbouring free spans of the same
 * set are merged at once. Large spans take the best fit, dirty first, cut
 * from its front; small spans take the highest free span, cut from its top
 * (find_high). Dirty spans also sit on an LRU list in the order they became
 * free; a span free for longer than decay_ms (decay_ms/4 for an island) is
 * given back (tli_page_heap_maybe_decay, run from page heap allocations and
 * frees and from tli_page_heap_tick; not from try_grow, shrink or release).
 *
 * Lock: tli_page_heap_lock guards the bins, the LRU, the span struct free
 * list, the state/page range of every span, and the pagemap entries of
 * non-huge spans (huge spans' entries too: huge.c takes it to write them);
 * its place in the lock order: docs/DESIGN.md, "Locks".
 */
#include "heapcheck.h"
#include "internal.h"

#include <string.h>
#include <sys/single_threaded.h>

struct tli_lock tli_page_heap_lock = TL_LOCK_INIT;

#define EXACT_BINS 128
#define NBINS 160
#define GROW_BYTES ((size_t)64 << 20) /* reserve address space 64 MiB at a time */

struct bin_set {
    struct span *head[NBINS];
    uint64_t nonempty[(NBINS + 63) / 64];
};

static struct bin_set dirty_bins TL_GUARDED_BY(tli_page_heap_lock), unbacked_bins
    TL_GUARDED_BY(tli_page_heap_lock);
static struct span *lru_newest TL_GUARDED_BY(tli_page_heap_lock),
    *lru_oldest TL_GUARDED_BY(tli_page_heap_lock);
static struct span *spare_spans TL_GUARDED_BY(tli_page_heap_lock);
static _Atomic uint64_t next_decay_ms; /* read without the lock by tli_page_heap_tick */
static struct tli_page_heap_counts counts TL_GUARDED_BY(tli_page_heap_lock);

/* ---- metadata arena ----------------------------------------------------- */
/* Lock: meta_lock guards the bump pointer. A leaf lock: nothing is taken
 * while it is held. */
struct tli_lock tli_meta_lock = TL_LOCK_INIT;
static char *meta_cur TL_GUARDED_BY(tli_meta_lock), *meta_end TL_GUARDED_BY(tli_meta_lock);

void *tli_meta_alloc(size_t bytes) TL_EXCLUDES(tli_meta_lock)
{
    bytes = tli_round_up(bytes, 64);
    tli_lock_acquire(&tli_meta_lock);
    if ((size_t)(meta_end - meta_cur) < bytes) {
        size_t chunk = bytes > ((size_t)1 << 20) ? tli_round_up(bytes, 4096) : (size_t)1 << 20;
        char *m = tli_os_map(chunk);
        if (!m) {
            tli_lock_release(&tli_meta_lock);
            return NULL;
        }
        tli_stat_add(&tli_stats.meta, chunk);
        meta_cur = m;
        meta_end = m + chunk;
    }
    void *p = meta_cur;
    meta_cur += bytes;
    tli_lock_release(&tli_meta_lock);
    return p;
}

struct span *tli_span_new(void) TL_REQUIRES(tli_page_heap_lock)
{
    struct span *s = spare_spans;
    if (s)
        spare_spans = s->next;
    else if (!(s = tli_meta_alloc(sizeof *s)))
        return NULL;
    memset(s, 0, sizeof *s);
    return s;
}

void tli_span_delete(struct span *s) TL_REQUIRES(tli_page_heap_lock)
{
    s->next = spare_spans;
    spare_spans = s;
}

/* The struct of a new page heap span starting at start: its pagemap slot
 * (I5), which no other span uses, since none starts there. */
static struct span *span_at(uintptr_t start) TL_REQUIRES(tli_page_heap_lock)
{
    struct span *s = tli_pagemap_slot(start);
    memset(s, 0, sizeof *s);
    s->start = start;
    tli_stat_add(&tli_stats.meta, sizeof *s);
    return s;
}

/* A span's slot is free again: it was joined into the span before it. */
static void slot_done(void) TL_REQUIRES(tli_page_heap_lock)
{
    tli_stat_sub(&tli_stats.meta, sizeof(struct span));
}

/* ---- bins ---------------------------------------------------------------- */
static unsigned bin_of(size_t npages)
{
    if (npages <= EXACT_BINS)
        return (unsigned)npages;
    return EXACT_BINS + 1 + (unsigned)(63 - __builtin_clzll(npages)) - 7;
}

static void bin_insert(struct bin_set *set, struct span *s) TL_REQUIRES(tli_page_heap_lock)
{
    unsigned b = bin_of(s->npages);
    s->prev = NULL;
    s->next = set->head[b];
    if (s->next)
        s->next->prev = s;
    set->head[b] = s;
    set->nonempty[b / 64] |= 1ull << (b % 64);
    s->in_bin = 1;
}

static void bin_remove(struct bin_set *set, struct span *s) TL_REQUIRES(tli_page_heap_lock)
{
    TL_ASSERT(s->in_bin && s->state == SPAN_FREE);
    unsigned b = bin_of(s->npages);
    if (s->prev)
        s->prev->next = s->next;
    else
        set->head[b] = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (!set->head[b])
        set->nonempty[b / 64] &= ~(1ull << (b % 64));
    s->in_bin = 0;
}

static unsigned next_nonempty(const struct bin_set *set, unsigned from)
{
    for (unsigned w = from / 64; w < (NBINS + 63) / 64; w++) {
        uint64_t bits = set->nonempty[w];
        if (w == from / 64)
            bits &= ~0ull << (from % 64);
        if (bits)
            return w * 64 + (unsigned)__builtin_ctzll(bits);
    }
    return NBINS;
}

/* Best fit, and among equals the highest address, looking at no more than
 * FIT_LOOK spans of an exact bin. Chunks are mapped downwards, so the
 * highest addresses are the oldest memory: packing new spans there leaves
 * the rest free in long runs, which give back their pages and pagemap
 * memory whole (taking the newest span of a bin scattered small spans
 * over a freed peak and kept a page of pagemap resident beside each). */
#define FIT_LOOK 16

static bool better_fit(const struct span *s, const struct span *best, size_t npages)
{
    if (s->npages < npages)
        return false;
    return !best || s->npages < best->npages ||
           (s->npages == best->npages && s->start > best->start);
}

static struct span *bin_find(const struct bin_set *set, size_t npages)
{
    for (unsigned b = next_nonempty(set, bin_of(npages)); b < NBINS;
         b = next_nonempty(set, b + 1)) {
        struct span *best = NULL;
        unsigned looked = 0;
        for (struct span *s = set->head[b]; s; s = s->next) {
            if (better_fit(s, best, npages))
                best = s;
            if (b <= EXACT_BINS && ++looked == FIT_LOOK)
                break;
        }
        if (best)
            return best;
    }
    return NULL;
}

/* ---- dirty LRU ----------------------------------------------------------- */
static void lru_push(struct span *s) TL_REQUIRES(tli_page_heap_lock)
{
    s->lru_prev = NULL;
    s->lru_next = lru_newest;
    if (lru_newest)
        lru_newest->lru_prev = s;
    else
        lru_oldest = s;
    lru_newest = s;
}

static void lru_remove(struct span *s) TL_REQUIRES(tli_page_heap_lock)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        lru_newest = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        lru_oldest = s->lru_prev;
    s->lru_next = s->lru_prev = NULL;
}

/* ---- free span bookkeeping ------------------------------------------------ */
static size_t bytes_of(const struct span *s) { return s->npages << TL_PAGE_SHIFT; }

/* Takes a free span out of its bin (and the LRU); stats follow. */
static void unlink_free(struct span *s) TL_REQUIRES(tli_page_heap_lock)
{
    if (s->unbacked) {
        bin_remove(&unbacked_bins, s);
        tli_stat_sub(&tli_stats.unbacked, bytes_of(s));
    } else {
        bin_remove(&dirty_bins, s);
        lru_remove(s);
        tli_stat_sub(&tli_stats.page_free, bytes_of(s));
    }
}

static void link_free(struct span *s) TL_REQUIRES(tli_page_heap_lock)
{
    TL_ASSERT(s->npages > 0 && !(s->start & (TL_PAGE_SIZE - 1)) && !s->in_bin);
    TL_ASSERT(s == tli_pagemap_slot(s->start)); /* I5 */
    s->state = SPAN_FREE;
    s->size_class = 0;
    tli_pagemap_set_range(s->start, 1, s, 0);
    tli_pagemap_set_range(s->start + bytes_of(s) - TL_PAGE_SIZE, 1, s, 0);
    if (s->unbacked) {
        bin_insert(&unbacked_bins, s);
        tli_stat_add(&tli_stats.unbacked, bytes_of(s));
    } else {
        bin_insert(&dirty_bins, s);
        lru_push(s);
        tli_stat_add(&tli_stats.page_free, bytes_of(s));
    }
}

/* Joins free span high onto low (adjacent, both unlinked); high's struct
 * goes. The joined span's age is the page-weighted mean of the two: a large
 * span free for long that gains a few fresh pages still decays on time
 * (keeping the newer age let a trickle of small frees postpone the return
 * of a large neighbour indefinitely). */
static struct span *join(struct span *low, struct span *high) TL_REQUIRES(tli_page_heap_lock)
{
    TL_ASSERT(low->start + bytes_of(low) == high->start);
    TL_ASSERT(low->state == SPAN_FREE && high->state == SPAN_FREE && !low->in_bin &&
              !high->in_bin && low->unbacked == high->unbacked);
    tli_pagemap_set_range(low->start + bytes_of(low) - TL_PAGE_SIZE, 1, NULL, 0);
    tli_pagemap_set_range(high->start, 1, NULL, 0);
    int64_t age_gap = (int64_t)(high->freed_ms - low->freed_ms);
    low->freed_ms +=
        (uint64_t)(age_gap * (int64_t)high->npages / (int64_t)(low->npages + high->npages));
    low->npages += high->npages;
    low->clean &= high->clean;
    slot_done();
    return low;
}

static bool joinable(const struct span *n, const struct span *s)
{
    return n && n->state == SPAN_FREE && n->in_bin && n->unbacked == s->unbacked;
}

/* Merges free span s (not linked) with free neighbours of the same kind. */
static struct span *coalesce(struct span *s) TL_REQUIRES(tli_page_heap_lock)
{
    struct span *prev = tli_pagemap_span(s->start - TL_PAGE_SIZE);
    if (joinable(prev, s) && prev->start + bytes_of(prev) == s->start) {
        unlink_free(prev);
        s = join(prev, s);
    }
    struct span *next = tli_pagemap_span(s->start + bytes_of(s));
    if (joinable(next, s) && next->start == s->start + bytes_of(s)) {
        unlink_free(next);
        s = join(s, next);
    }
    /* Every free span is joined with its free neighbours of its kind. */
    TL_ASSERT(!joinable(tli_pagemap_span(s->start - TL_PAGE_SIZE), s) &&
              !joinable(tli_pagemap_span(s->start + bytes_of(s)), s));
    return s;
}

/* Cuts free span s (unlinked) in two at page `at`: s keeps the first `at`
 * pages, and the rest becomes a new free span, unlinked, which it returns.
 * The one place where a free span is carved: the rest is what s was, so
 * every field that describes free memory is copied here (the rest of an
 * aligned take once got the age 0 and went back at the next look). */
static struct span *cut(struct span *s, size_t at) TL_REQUIRES(tli_page_heap_lock)
{
    TL_ASSERT(at > 0 && at < s->npages && !s->in_bin);
    struct span *rest = span_at(s->start + (at << TL_PAGE_SHIFT));
    rest->npages = s->npages - at;
    rest->unbacked = s->unbacked;
    rest->clean = s->clean;
    rest->freed_ms = s->freed_ms;
    s->npages = at;
    return rest;
}

/* Splits the first npages of free span s (unlinked) into a new span and
 * links the rest back as free. Returns the front part. */
static struct span *split_front(struct span *s, size_t npages) TL_REQUIRES(tli_page_heap_lock)
{
    if (s->npages > npages)
        link_free(cut(s, npages));
    return s;
}

/* Splits the last npages of free span s (unlinked) into a new span and
 * links the front back as free. Returns the back part. Small spans are cut
 * this way: from the top of a run, where the oldest memory is (see
 * map_chunk), so that they pack together above the free space instead of
 * spreading into it. Large spans are cut from the front, which leaves the
 * rest of the run after them for realloc to grow into. */
static struct span *split_back(struct span *s, size_t npages) TL_REQUIRES(tli_page_heap_lock)
{
    if (s->npages == npages)
        return s;
    struct span *back = cut(s, s->npages - npages);
    link_free(s);
    return back;
}

/* ---- growing -------------------------------------------------------------- */
/* A new chunk is asked for right below the last one (mappings grow down on
 * Linux), so that the two join into one free span: after a peak is given
 * back, the pagemap memory that stays resident is a few pages per free
 * span (its first and last entries), so few long spans keep less than
 * many chunk-sized ones (16 separate 64 MiB chunks kept ~400 KiB). */
static uintptr_t last_chunk TL_GUARDED_BY(tli_page_heap_lock);

static void *map_chunk(size_t bytes) TL_REQUIRES(tli_page_heap_lock)
{
    void *m = NULL;
    if (last_chunk > bytes) {
        m = tli_os_map_hint((void *)(last_chunk - bytes), bytes);
        if (m && ((uintptr_t)m & (TL_PAGE_SIZE - 1))) {
            tli_os_unmap(m, bytes);
            m = NULL;
        }
    }
    if (!m)
        m = tli_os_map_aligned(bytes, TL_PAGE_SIZE);
    if (m)
        last_chunk = (uintptr_t)m;
    return m;
}

/* Maps a new chunk of at least npages (and GROW_BYTES) and adds it to the
 * free spans, unbacked. */
static bool grow_from_os(size_t npages) TL_REQUIRES(tli_page_heap_lock)
{
    size_t bytes = npages << TL_PAGE_SHIFT;
    if (bytes < GROW_BYTES)
        bytes = GROW_BYTES;
    void *m = map_chunk(bytes);
    if (!m)
        return false;
    if (!tli_pagemap_ensure((uintptr_t)m, bytes)) {
        tli_os_unmap(m, bytes);
        return false;
    }
    struct span *s = span_at((uintptr_t)m);
    s->npages = bytes >> TL_PAGE_SHIFT;
    s->unbacked = 1; /* not resident yet */
    s->clean = 1;
    tli_stat_add(&tli_stats.mapped, bytes);
    counts.grows++;
    counts.grow_bytes += bytes;
    link_free(coalesce(s));
    return true;
}

static struct span *find(size_t npages) TL_REQUIRES(tli_page_heap_lock)
{
    struct span *s = bin_find(&dirty_bins, npages);
    return s ? s : bin_find(&unbacked_bins, npages);
}

/* For a small span: the free span with the highest address, dirty or
 * unbacked, among the first HIGH_LOOK of each bin that fits. Small spans
 * are cut from the top of it (split_back), so they stay packed at the top
 * of the heap, next to the spans in use, where they share pagemap pages
 * and leave the rest free in long runs. Best fit among dirty spans placed
 * them in whatever page a freed peak had left resident, deep inside the
 * unbacked range, each keeping its own pagemap pages resident. A dirty span
 * still wins when it is the highest (a hole among spans in use). */
#define HIGH_LOOK 4

static void find_high_in(const struct bin_set *set, size_t npages, struct span **best)
{
    for (unsigned b = next_nonempty(set, bin_of(npages)); b < NBINS;
         b = next_nonempty(set, b + 1)) {
        unsigned looked = 0;
        for (struct span *s = set->head[b]; s && looked < HIGH_LOOK; s = s->next, looked++)
            if (s->npages >= npages && (!*best || s->start > (*best)->start))
                *best = s;
    }
}

static struct span *find_high(size_t npages) TL_REQUIRES(tli_page_heap_lock)
{
    struct span *best = NULL;
    find_high_in(&dirty_bins, npages, &best);
    find_high_in(&unbacked_bins, npages, &best);
    return best;
}

/* ---- allocation ------------------------------------------------------------ */
static void note_refault(size_t bytes) TL_REQUIRES(tli_page_heap_lock);

static struct span *take(size_t npages, size_t align_pages, bool small)
    TL_REQUIRES(tli_page_heap_lock)
{
    size_t need = npages + (align_pages > 1 ? align_pages - 1 : 0);
    if (need < npages)
        return NULL;
    bool high = small && align_pages <= 1;
    struct span *s = high ? find_high(need) : find(need);
    if (!s && (!grow_from_os(need) || !(s = high ? find_high(need) : find(need))))
        return NULL;
    TL_ASSERT(s->npages >= need);
    if (s->unbacked)
        note_refault(need << TL_PAGE_SHIFT);
    unlink_free(s);
    tli_pagemap_set_range(s->start + bytes_of(s) - TL_PAGE_SIZE, 1, NULL, 0);
    if (align_pages > 1) {
        size_t align = align_pages << TL_PAGE_SHIFT;
        size_t lead = (tli_round_up(s->start, align) - s->start) >> TL_PAGE_SHIFT;
        if (lead) {
            struct span *front = s;
            s = cut(front, lead);
            link_free(front);
        }
    }
    return high ? split_back(s, npages) : split_front(s, npages);
}

/* The most the page heap had handed out since the last peak epoch. Page
 * heap lock held. */
static size_t out_high TL_GUARDED_BY(tli_page_heap_lock);

/* After a span was handed out: the peaks malloc_info reports, and the
 * count of large blocks. Page heap lock held. */
static void note_peaks(bool large) TL_REQUIRES(tli_page_heap_lock)
{
    size_t small = atomic_load_explicit(&tli_stats.small_spans, memory_order_relaxed);
    size_t other = atomic_load_explicit(&tli_stats.mapped, memory_order_relaxed) - small;
    if (small > counts.small_spans_peak)
        counts.small_spans_peak = small;
    if (other > counts.large_side_peak)
        counts.large_side_peak = other;
    size_t out = tli_page_heap_handed_out();
    if (out > out_high)
        out_high = out;
    counts.large_allocs += large;
}

struct span *tli_page_heap_alloc(size_t npages, size_t align_pages, enum span_state state,
                                 unsigned cls)
{
    TL_ASSERT(npages > 0 && (state == SPAN_SMALL) == (cls != 0));
    tli_debug_tick();
    tli_lock_acquire(&tli_page_heap_lock);
    tli_page_heap_maybe_decay();
    struct span *s = take(npages, align_pages, state == SPAN_SMALL);
    if (s) {
        s->state = (uint8_t)state;
        s->size_class = (uint8_t)cls;
        s->unbacked = 0;
        s->in_bin = 0;
        s->next = s->prev = NULL;
        tli_pagemap_set_range(s->start, s->npages, s, (uint8_t)cls);
        if (state == SPAN_SMALL)
            tli_stat_add(&tli_stats.small_spans, bytes_of(s));
        else
            tli_stat_add(&tli_stats.large_in_use, bytes_of(s));
        note_peaks(state == SPAN_LARGE);
    }
    tli_lock_release(&tli_page_heap_lock);
    if (state == SPAN_LARGE) /* small spans: under a class lock, see refill */
        tli_background_check();
    return s;
}

static void free_locked(struct span *s) TL_REQUIRES(tli_page_heap_lock)
{
    if (s->state == SPAN_SMALL)
        tli_stat_sub(&tli_stats.small_spans, bytes_of(s));
    else
        tli_stat_sub(&tli_stats.large_in_use, bytes_of(s));
    tli_pagemap_set_range(s->start, s->npages, NULL, 0);
    s->state = SPAN_FREE;
    s->unbacked = 0;
    s->clean = 0;
    s->freed_ms = tli_os_now_ms();
    link_free(coalesce(s));
}

/* What the page heap hands out fell by more than all caches may hold since
 * its high point: a peak is being freed now. Bumped here, at the free that
 * crosses, and not at the next look: a program may free its peak in a few
 * milliseconds and then make no call at all, and the threads must see the
 * epoch while they still free (see drain in thread_cache.c). Measured from
 * the high point, not from the dirty bytes at the last timed look: a free
 * slower than 32 MiB per look (decay_ms/8) never crossed, and pages given
 * back at the free (release_eagerly) never count as dirty. Page heap lock
 * held. */
static void check_peak(void) TL_REQUIRES(tli_page_heap_lock)
{
    size_t out = tli_page_heap_handed_out();
    if (out + tli_conf.tc_budget < out_high) {
        atomic_fetch_add_explicit(&tli_peak_epoch, 1, memory_order_relaxed);
        out_high = out;
    }
}

static size_t release_locked(size_t max_bytes, bool all) TL_REQUIRES(tli_page_heap_lock);

/* ---- a single-threaded process: giving back at the free ------------------ *
 * A process that never had a second thread gets no background thread
 * (background.c: it would take glibc's single-thread guarantees away), so
 * nothing runs decay while it makes no call. What it frees past a small
 * budget of dirty pages therefore goes back at the free, oldest first,
 * down to half the budget. The budget starts at EAGER_MIN_BYTES and
 * follows the program: a span given back and taken again within decay_ms
 * (a refault, note_refault) doubles it, and makes it at least twice what
 * was taken, so a program that frees and reallocates large blocks in turn
 * (bench/large -m) soon keeps them dirty, and pays its page faults a few
 * times only; it halves after
 * EAGER_CALM_PERIODS decay periods without a refault. See docs/DESIGN.md
 * ("Returning a peak"). Only with background_thread=auto (the default):
 * =0 asks for no work off the program's calls beyond timed decay, and =1
 * has a thread. All of it is guarded by the page heap lock. */
#define EAGER_MIN_BYTES ((size_t)256 << 10)
#define EAGER_CALM_PERIODS 16
static size_t eager_budget TL_GUARDED_BY(tli_page_heap_lock) = EAGER_MIN_BYTES;
/* last eager release; 0 once a refault has counted */
static uint64_t eager_ms TL_GUARDED_BY(tli_page_heap_lock);
/* the dirty bytes the last eager release started from */
static size_t eager_dirty TL_GUARDED_BY(tli_page_heap_lock);
/* last refault, or last halving of the budget */
static uint64_t refault_ms TL_GUARDED_BY(tli_page_heap_lock);
/* last eager try the kernel refused (locked memory) */
static uint64_t refused_ms TL_GUARDED_BY(tli_page_heap_lock);

/* The eager budget becomes at least twice `bytes` (when that fits). */
static void budget_at_least_twice(size_t bytes) TL_REQUIRES(tli_page_heap_lock)
{
    if (bytes < SIZE_MAX / 4 && eager_budget < 2 * bytes)
        eager_budget = 2 * bytes;
}

static void note_refault(size_t bytes) TL_REQUIRES(tli_page_heap_lock)
{
    if (!eager_ms)
        return;
    uint64_t now = tli_os_now_ms();
    if (now - eager_ms < tli_conf.decay_ms && eager_budget < SIZE_MAX / 4) {
        eager_budget *= 2;
        budget_at_least_twice(bytes);
        budget_at_least_twice(eager_dirty);
    }
    eager_ms = 0;
    refault_ms = now;
}

static void release_eagerly(void) TL_REQUIRES(tli_page_heap_lock)
{
    size_t dirty_bytes = atomic_load_explicit(&tli_stats.page_free, memory_order_relaxed);
    if (TL_LIKELY(dirty_bytes <= eager_budget) || !__libc_single_threaded ||
        __atomic_load_n(&tli_conf.background, __ATOMIC_RELAXED) != TL_BACKGROUND_AUTO)
        return;
    uint64_t now = tli_os_now_ms(), calm = EAGER_CALM_PERIODS * (uint64_t)tli_conf.decay_ms;
    if (refused_ms && now - refused_ms < tli_conf.decay_ms)
        return; /* under mlockall every try fails: once per decay period */
    if (now - refault_ms > calm && eager_budget > EAGER_MIN_BYTES) {
        eager_budget /= 2;
        refault_ms = now;
    }
    eager_dirty = dirty_bytes;
    size_t done = release_locked(dirty_bytes - eager_budget / 2, true);
    refused_ms = done ? 0 : now;
    eager_ms = now;
}

void tli_page_heap_free(struct span *s)
{
    TL_ASSERT(s->state == SPAN_SMALL || s->state == SPAN_LARGE);
    TL_ASSERT(s == tli_pagemap_slot(s->start)); /* I5 */
    tli_debug_tick();
    tli_lock_acquire(&tli_page_heap_lock);
    counts.large_frees += s->state == SPAN_LARGE;
    free_locked(s);
    note_peaks(false); /* the large side grows when a small span comes back */
    check_peak();
    tli_page_heap_maybe_decay();
    release_eagerly();
    tli_lock_release(&tli_page_heap_lock);
}

/* Grows an in-use large span in place into the free span after it. */
bool tli_page_heap_try_grow(struct span *s, size_t new_npages)
{
    bool ok = false;
    tli_lock_acquire(&tli_page_heap_lock);
    struct span *next = tli_pagemap_span(s->start + bytes_of(s));
    if (next && next->state == SPAN_FREE && next->in_bin && next->start == s->start + bytes_of(s) &&
        s->npages + next->npages >= new_npages) {
        size_t extra = new_npages - s->npages;
        if (next->unbacked) /* realloc grows into pages given back */
            note_refault(extra << TL_PAGE_SHIFT);
        unlink_free(next);
        tli_pagemap_set_range(next->start + bytes_of(next) - TL_PAGE_SIZE, 1, NULL, 0);
        split_front(next, extra);
        s->clean = 0;
        s->npages = new_npages;
        tli_pagemap_set_range(next->start, extra, s, 0);
        tli_stat_add(&tli_stats.large_in_use, extra << TL_PAGE_SHIFT);
        slot_done();
        ok = true;
    }
    tli_lock_release(&tli_page_heap_lock);
    return ok;
}

/* Gives the tail of an in-use large span back to the heap. */
void tli_page_heap_shrink(struct span *s, size_t new_npages)
{
    tli_lock_acquire(&tli_page_heap_lock);
    if (new_npages < s->npages) {
        struct span *tail = span_at(s->start + (new_npages << TL_PAGE_SHIFT));
        tail->npages = s->npages - new_npages;
        tail->state = SPAN_LARGE;
        s->npages = new_npages;
        free_locked(tail);
    }
    tli_lock_release(&tli_page_heap_lock);
}

/* ---- giving memory back -------------------------------------------------- */
/* Gives a dirty span's pages back, joins it with unbacked neighbours, and
 * gives back the pagemap memory that only the joined span's interior used:
 * the pages of s, and the boundary pages of s and its neighbours, which
 * were first or last pages until the join. Returns false if the kernel
 * refused (locked memory): s stays dirty, with whatever its pages hold, so
 * calloc clears it. Its age starts again, so it is tried once per decay
 * period, not at every look: under mlockall every try fails. */
static bool give_back(struct span *s) TL_REQUIRES(tli_page_heap_lock)
{
    unlink_free(s);
    if (!tli_os_decommit((void *)s->start, bytes_of(s))) {
        s->freed_ms = tli_os_now_ms();
        link_free(coalesce(s)); /* joined again, if it was split to go back */
        return false;
    }
    uintptr_t lo = s->start - TL_PAGE_SIZE, hi = s->start + bytes_of(s) + TL_PAGE_SIZE;
    s->unbacked = 1;
    s->clean = 1;
    tli_pagemap_set_range(s->start, 1, NULL, 0);
    tli_pagemap_set_range(s->start + bytes_of(s) - TL_PAGE_SIZE, 1, NULL, 0);
    s = coalesce(s);
    link_free(s);
    uintptr_t first = s->start + TL_PAGE_SIZE, last = s->start + bytes_of(s) - TL_PAGE_SIZE;
    tli_pagemap_release(lo > first ? lo : first, hi < last ? hi : last, first, last);
    return true;
}

/* A dirty span with no resident memory on either side: its neighbours are
 * unbacked free spans or unmapped. New small spans are packed at the top,
 * so such an island, left behind in a freed peak, is rarely taken again;
 * and besides its own pages it keeps pages of pagemap resident that no
 * other span uses. It goes back after decay_ms/4 instead of decay_ms.
 * Taken again within that time, it costs nothing; after it, a few page
 * faults. */
static bool island(const struct span *s)
{
    const struct span *prev = tli_pagemap_span(s->start - TL_PAGE_SIZE);
    const struct span *next = tli_pagemap_span(s->start + bytes_of(s));
    return (!prev || (prev->state == SPAN_FREE && prev->unbacked)) &&
           (!next || (next->state == SPAN_FREE && next->unbacked));
}

static uint64_t decay_after(const struct span *s)
{
    return island(s) ? tli_conf.decay_ms / 4 : tli_conf.decay_ms;
}

_Atomic uint32_t tli_peak_epoch;

/* A span more than this larger than what is left to give back is split,
 * and only its back part goes: a large block's span, given back whole
 * past a small excess, is paid for in page faults at its next use
 * (bench/large -m gave back 377 MiB to shed 120 MiB of excess). A smaller
 * overshoot is not worth a span more. */
#define RELEASE_SPLIT_MIN ((size_t)1 << 20)

/* Cuts free dirty span s (linked) so that its last `bytes` (whole pages)
 * are a span of their own, and returns it. Both stay linked, unjoined, the
 * front with its age: only until give_back, which joins them again if the
 * kernel refuses. */
static struct span *split_for_release(struct span *s, size_t bytes) TL_REQUIRES(tli_page_heap_lock)
{
    size_t back_pages = tli_round_up(bytes, TL_PAGE_SIZE) >> TL_PAGE_SHIFT;
    unlink_free(s);
    struct span *back = cut(s, s->npages - back_pages);
    link_free(s);
    link_free(back);
    return back;
}

/* Gives back dirty spans, oldest first: all of them, or those free for at
 * least decay_ms (see island), up to max_bytes; returns the bytes the
 * kernel took. The LRU is in order of freeing, and a joined span's age can
 * be older than its place says, so the whole list is looked at (it holds a
 * few spans: neighbours are always joined), once: a span the kernel refused
 * goes to the newest end, after the last one looked at. The last span
 * given back may be split (split_for_release). Page heap lock held. */
static size_t release_locked(size_t max_bytes, bool all) TL_REQUIRES(tli_page_heap_lock)
{
    uint64_t now = tli_os_now_ms();
    size_t done = 0;
    struct span *s = lru_oldest, *last = lru_newest;
    while (s && done < max_bytes) {
        struct span *newer = s == last ? NULL : s->lru_prev;
        if (all || now - s->freed_ms >= decay_after(s)) {
            size_t rest = max_bytes - done;
            if (bytes_of(s) > rest && bytes_of(s) - rest >= RELEASE_SPLIT_MIN)
                s = split_for_release(s, rest);
            size_t bytes = bytes_of(s);
            /* give_back may join s with unbacked neighbours, never with newer */
            if (give_back(s)) {
                done += bytes;
                counts.releases++;
                counts.release_bytes += bytes;
            }
        }
        s = newer;
    }
    if (done > tli_conf.tc_budget)
        atomic_fetch_add_explicit(&tli_peak_epoch, 1, memory_order_relaxed);
    return done;
}

size_t tli_page_heap_release(size_t max_bytes, bool all)
{
    tli_lock_acquire(&tli_page_heap_lock);
    size_t done = release_locked(max_bytes, all);
    tli_lock_release(&tli_page_heap_lock);
    return done;
}

/* Page heap lock held. Cheap when there is nothing due: one clock read. */
void tli_page_heap_maybe_decay(void) TL_REQUIRES(tli_page_heap_lock)
{
    if (!lru_oldest)
        return;
    uint64_t now = tli_os_now_ms();
    if (now < atomic_load_explicit(&next_decay_ms, memory_order_relaxed))
        return;
    uint64_t step = tli_conf.decay_ms / 8;
    atomic_store_explicit(&next_decay_ms, now + (step < 10 ? 10 : step), memory_order_relaxed);
    release_locked(SIZE_MAX, false);
}

void tli_page_heap_tick(void)
{
    if (tli_os_now_ms() < atomic_load_explicit(&next_decay_ms, memory_order_relaxed))
        return;
    tli_lock_acquire(&tli_page_heap_lock);
    tli_page_heap_maybe_decay();
    tli_lock_release(&tli_page_heap_lock);
}

void tli_page_heap_counts(struct tli_page_heap_counts *c) { *c = counts; }

void tli_page_heap_decay_soon(void)
{
    atomic_store_explicit(&next_decay_ms, 0, memory_order_relaxed);
}

static void add_to_group(struct tli_free_span_group *g, const struct span *s)
{
    size_t bytes = bytes_of(s);
    if (!g->count || bytes < g->min_bytes)
        g->min_bytes = bytes;
    if (bytes > g->max_bytes)
        g->max_bytes = bytes;
    g->count++;
    g->bytes += bytes;
}

/* One group per bin, dirty and unbacked spans together (malloc_info's
 * <sizes>). Page heap lock held. */
unsigned tli_page_heap_free_groups(struct tli_free_span_group *g, unsigned max)
{
    unsigned n = 0;
    for (unsigned b = 0; b < NBINS && n < max; b++) {
        memset(&g[n], 0, sizeof g[n]);
        for (struct span *s = dirty_bins.head[b]; s; s = s->next)
            add_to_group(&g[n], s);
        for (struct span *s = unbacked_bins.head[b]; s; s = s->next)
            add_to_group(&g[n], s);
        n += g[n].count != 0;
    }
    return n;
}

/* ---- the heap walk (heapcheck.c) ------------------------------------------ */
/* The bins and the LRU hold exactly the free spans the pagemap walk found,
 * each in the bin of its length and kind; the statistics match. */
static size_t check_bins(struct tli_heap_walk *w, const struct bin_set *set, bool is_unbacked)
{
    size_t n = 0, limit = w->free_spans[is_unbacked] + 1;
    for (unsigned b = 0; b < NBINS; b++) {
        bool bit = set->nonempty[b / 64] >> (b % 64) & 1;
        tli_walk_expect(w, bit == (set->head[b] != NULL), "a bin's nonempty bit is wrong", b);
        const struct span *prev = NULL;
        for (const struct span *s = set->head[b]; s && n < limit; prev = s, s = s->next, n++) {
            tli_walk_expect(w, s->state == SPAN_FREE && s->in_bin && s->unbacked == is_unbacked,
                            "a bin holds a span that is not free, or of the other kind", s->start);
            tli_walk_expect(w, bin_of(s->npages) == b, "a free span in the wrong bin", s->start);
            tli_walk_expect(w, s->prev == prev, "a bin's back link is wrong", s->start);
            tli_walk_expect(w, tli_pagemap_span(s->start) == s,
                            "a binned span is not in the pagemap (I2)", s->start);
        }
    }
    return n;
}

void tli_page_heap_check(struct tli_heap_walk *w)
{
    tli_walk_expect(w, check_bins(w, &dirty_bins, false) == w->free_spans[0],
                    "the dirty bins do not hold exactly the dirty free spans", 0);
    tli_walk_expect(w, check_bins(w, &unbacked_bins, true) == w->free_spans[1],
                    "the unbacked bins do not hold exactly the unbacked free spans", 0);
    size_t n = 0;
    const struct span *newer = NULL, *s;
    for (s = lru_newest; s && n <= w->free_spans[0]; newer = s, s = s->lru_next, n++) {
        tli_walk_expect(w, s->state == SPAN_FREE && !s->unbacked && s->in_bin,
                        "the LRU holds a span that is not dirty and free", s->start);
        tli_walk_expect(w, s->lru_prev == newer, "an LRU back link is wrong", s->start);
    }
    tli_walk_expect(w, n == w->free_spans[0] && lru_oldest == newer,
                    "the LRU does not hold exactly the dirty free spans", 0);
    tli_walk_expect(w, atomic_load(&tli_stats.page_free) == w->free_bytes[0],
                    "the page_free statistic is not the dirty free bytes", 0);
    tli_walk_expect(w, atomic_load(&tli_stats.unbacked) == w->free_bytes[1],
                    "the unbacked statistic is not the unbacked free bytes", 0);
    tli_walk_expect(w, atomic_load(&tli_stats.small_spans) == w->small_bytes,
                    "the small_spans statistic is not the small spans' bytes", 0);
    tli_walk_expect(w, atomic_load(&tli_stats.large_in_use) == w->large_bytes,
                    "the large_in_use statistic is not the large spans' bytes", 0);
    tli_walk_expect(w, counts.large_allocs - counts.large_frees == w->large_spans,
                    "the large blocks handed out less those freed are not the large spans", 0);
    tli_walk_expect(w, counts.small_spans_peak >= w->small_bytes,
                    "the small spans' peak is below their bytes now", 0);
    /* Giving back at the free (single-threaded processes): the budget only
     * halves while above EAGER_MIN_BYTES, so it stays above half of that. */
    tli_walk_expect(w, eager_budget > EAGER_MIN_BYTES / 2,
                    "the eager release budget is below its floor", eager_budget);
}

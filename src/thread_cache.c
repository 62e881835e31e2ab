/* thread_cache.c - one cache of free objects per thread, per size class.
 *
 * The fast paths (api.c) pop and push a class's list in the calling
 * thread's cache, in static TLS (initial-exec), with no lock and no atomic
 * operation. Everything else is here: refilling an empty list from the
 * central list, flushing a full one, growing and shrinking list limits
 * within a byte budget, and returning the whole cache when the thread ends.
 *
 * Limits. A class's list may hold max_len objects; max_len starts at 0 and
 * grows at each refill (slow start: 2 KiB worth, doubling to a batch, then
 * a batch more each time), up to 1 MiB worth or 8192 objects (less for
 * objects above 4 KiB, see max_len_cap). limit_bytes = sum(max_len * size)
 * <= cap_bytes, and a thread never holds more than its limit. A thread's
 * cap grows in 256 KiB steps taken from the global pool tli_tc_unclaimed
 * (the thread cache budget, 32 MiB by default) up to tc_max (4 MiB), and
 * shrinks back into the pool when its lists shrink (a list that looks idle
 * halves once a lap of the collector, gc_step; idle classes are emptied
 * every decay_ms/4, maybe_scavenge). Caps move
 * only through the pool, so all caches together never hold more than the
 * budget. When the pool is dry, a thread asks another one (round robin) to
 * give back a step: the other thread honours the request at its next slow
 * path or decay tick, halving its lists and returning the cap to the pool,
 * from which the asking thread takes it at its next refill. A thread that
 * never runs again keeps what it holds (no one else may touch its lists),
 * and that is within the budget.
 *
 * Thread exit: a pthread key destructor keeps the thread's lists, with its
 * cap, in its tc_state (kept), for the next thread that starts to adopt as
 * they are: a server that replaces its threads would otherwise walk every
 * cached object at each exit, on lines long gone from the cache, and then
 * refill the same classes in the new thread. At most MAX_KEPT exited
 * caches are kept; one that no thread has adopted after decay_ms/4 goes
 * back to the spans (tli_tc_release_kept, from the background thread or a
 * timed scavenge), and malloc_trim returns them all. Later calls from the
 * exiting thread (other destructors) go straight to the central lists
 * (state TC_DEAD).
 *
 * Lock: tli_registry_lock guards the list of live caches (for stats,
 * requests for cap, fork) and is held while reading another thread's cache, so
 * the cache (in that thread's TLS) cannot vanish meanwhile. Its place in
 * the lock order: docs/DESIGN.md, "Locks".
 */
#include "internal.h"
#include "memcheck.h"

#include <pthread.h>
#include <string.h>

__thread struct thread_cache tli_tc __attribute__((tls_model("initial-exec")));
struct tli_lock tli_registry_lock = TL_LOCK_INIT;
_Atomic size_t tli_tc_unclaimed;

static struct tc_state *registry TL_GUARDED_BY(tli_registry_lock);
static struct tc_state *ask_cursor TL_GUARDED_BY(tli_registry_lock);
/* of exited threads, for reuse: with empty lists, and with lists kept for
 * the next thread (newest first); n_kept counts the latter, read without
 * the lock to skip the lock when there are none. */
static struct tc_state *spare_states TL_GUARDED_BY(tli_registry_lock);
static struct tc_state *kept_states TL_GUARDED_BY(tli_registry_lock);
static _Atomic unsigned n_kept;
/* Exited caches kept at once: enough for a server that replaces a thread
 * per core at a time; they are within the thread cache budget anyway. */
#define MAX_KEPT 16
static pthread_key_t exit_key;
static bool exit_key_made; /* set once, before the allocator is ready */

#define CAP_STEP ((size_t)256 << 10)

static size_t class_size(unsigned cls) { return tli_classes[cls].size; }

/* The longest a class's list may grow: 1 MiB worth (at least two batches)
 * up to 4 KiB objects, 128 KiB worth above, 64 KiB worth from 16 KiB (at
 * least one object). A program that passes through many large classes
 * (strings grown by doubling) otherwise keeps a few idle objects of each
 * (docs/DESIGN.md, "Thread caches"). Objects that large are written by
 * their user anyway, so moving them one or two at a time costs little. */
static uint32_t max_len_cap(unsigned cls)
{
    size_t size = class_size(cls);
    size_t worth = size <= 4096                ? (size_t)1 << 20
                   : size < ((size_t)16 << 10) ? (size_t)128 << 10
                                               : (size_t)64 << 10;
    uint32_t by_bytes = (uint32_t)(worth / size);
    uint32_t floor = size <= 4096 ? 2u * tli_classes[cls].batch : 1;
    uint32_t cap = by_bytes > floor ? by_bytes : floor;
    return cap > 8192 ? 8192 : cap;
}

/* Objects in a class's list. */
static uint32_t held(const struct tc_state *st, unsigned cls)
{
    return (uint32_t)((int32_t)st->max_len[cls] - st->tc->lists.room[cls]);
}

/* ---- registry ---------------------------------------------------------- */
static void registry_add_locked(struct tc_state *st) TL_REQUIRES(tli_registry_lock)
{
    st->reg_prev = NULL;
    st->reg_next = registry;
    if (registry)
        registry->reg_prev = st;
    registry = st;
}

static void registry_remove_locked(struct tc_state *st) TL_REQUIRES(tli_registry_lock)
{
    if (ask_cursor == st)
        ask_cursor = st->reg_next;
    if (st->reg_prev)
        st->reg_prev->reg_next = st->reg_next;
    else
        registry = st->reg_next;
    if (st->reg_next)
        st->reg_next->reg_prev = st->reg_prev;
}

/* An exited thread's state, emptied, waits for reuse. */
static void push_spare_locked(struct tc_state *st) TL_REQUIRES(tli_registry_lock)
{
    st->reg_next = spare_states;
    spare_states = st;
}

/* An exited thread's state, lists kept, waits for the next thread. */
static void push_kept_locked(struct tc_state *st) TL_REQUIRES(tli_registry_lock)
{
    st->reg_next = kept_states;
    kept_states = st;
    atomic_fetch_add_explicit(&n_kept, 1, memory_order_relaxed);
}

/* ---- budget ------------------------------------------------------------ */
static bool take_unclaimed(size_t want)
{
    size_t have = atomic_load_explicit(&tli_tc_unclaimed, memory_order_relaxed);
    while (have >= want)
        if (atomic_compare_exchange_weak_explicit(&tli_tc_unclaimed, &have, have - want,
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    return false;
}

/* Asks another thread, round robin over the registry, to give back want
 * bytes of cap; it does so at its next slow path or tick (honour_request). */
static void ask_for_cap(struct tc_state *self, size_t want)
{
    tli_lock_acquire(&tli_registry_lock);
    for (int tries = 0; registry && tries < 64; tries++) {
        struct tc_state *v = ask_cursor ? ask_cursor : registry;
        ask_cursor = v->reg_next;
        if (v == self || atomic_load_explicit(&v->cap_bytes, memory_order_relaxed) < want)
            continue;
        atomic_fetch_add_explicit(&v->give_back, want, memory_order_relaxed);
        break;
    }
    tli_lock_release(&tli_registry_lock);
}

/* Cap the budget owes: thread_cache_budget was lowered (tl_ctl) by more
 * than the pool held, so the pool stays short of that much until threads
 * give it back (pay_debt). Lock-free, so fork needs nothing for it. */
static _Atomic size_t budget_debt;

/* Cap going back to the pool pays the budget's debt first. */
static void pool_return(size_t bytes)
{
    size_t debt = atomic_load_explicit(&budget_debt, memory_order_relaxed);
    while (debt && bytes) {
        size_t pay = debt < bytes ? debt : bytes;
        if (atomic_compare_exchange_weak_explicit(&budget_debt, &debt, debt - pay,
                                                  memory_order_relaxed, memory_order_relaxed))
            bytes -= pay;
    }
    if (bytes)
        atomic_fetch_add_explicit(&tli_tc_unclaimed, bytes, memory_order_relaxed);
}

/* Takes up to want bytes from the pool; returns how many it took. */
static size_t take_up_to(size_t want)
{
    size_t have = atomic_load_explicit(&tli_tc_unclaimed, memory_order_relaxed);
    for (;;) {
        size_t take = have < want ? have : want;
        if (atomic_compare_exchange_weak_explicit(&tli_tc_unclaimed, &have, have - take,
                                                  memory_order_relaxed, memory_order_relaxed))
            return take;
    }
}

/* tl_ctl("thread_cache_budget"): the pool grows or shrinks by the
 * difference. What the pool cannot give at once becomes debt, which
 * threads pay at their next slow paths (maybe_scavenge). */
void tli_tc_set_budget(size_t bytes)
{
    size_t old = __atomic_exchange_n(&tli_conf.tc_budget, bytes, __ATOMIC_RELAXED);
    if (bytes >= old) {
        pool_return(bytes - old);
        return;
    }
    size_t want = old - bytes, took = take_up_to(want);
    if (took < want)
        atomic_fetch_add_explicit(&budget_debt, want - took, memory_order_relaxed);
}

/* tl_ctl("thread_cache_max"): growth stops at the new cap at once; a
 * thread above it shrinks at its next slow path (maybe_scavenge). */
void tli_tc_set_max(size_t bytes) { __atomic_store_n(&tli_conf.tc_max, bytes, __ATOMIC_RELAXED); }

/* Returns all of a cache's cap to the pool: its lists are empty, or gone. */
static void give_cap_back(struct tc_state *st)
{
    pool_return(atomic_exchange_explicit(&st->cap_bytes, 0, memory_order_relaxed));
}

/* Returns the cap above what the lists may hold to the pool, in whole steps. */
static void release_cap(struct tc_state *st)
{
    size_t cap = atomic_load_explicit(&st->cap_bytes, memory_order_relaxed);
    size_t keep = tli_round_up(st->limit_bytes, CAP_STEP);
    if (cap > keep) {
        atomic_store_explicit(&st->cap_bytes, keep, memory_order_relaxed);
        pool_return(cap - keep);
    }
}

/* Room for bytes more of list limits in this thread's cap? */
static bool reserve(struct tc_state *st, size_t bytes)
{
    size_t cap = atomic_load_explicit(&st->cap_bytes, memory_order_relaxed);
    if (st->limit_bytes + bytes <= cap)
        return true;
    size_t want = tli_round_up(st->limit_bytes + bytes - cap, CAP_STEP);
    if (cap + want > __atomic_load_n(&tli_conf.tc_max, __ATOMIC_RELAXED))
        return false;
    if (!take_unclaimed(want)) {
        ask_for_cap(st, want);
        return false;
    }
    atomic_fetch_add_explicit(&st->cap_bytes, want, memory_order_relaxed);
    return true;
}

/* ---- moving objects ----------------------------------------------------- */
/* A walk of a class's list found obj out of place: its key is not a thread
 * cache list's (I4), so it was handed out while still in the list (a
 * double free) or written after its free; or the list ended early. The
 * list cannot be trusted past it. */
TL_COLD static void bad_list(void *obj)
{
    tli_report_corruption(obj, "free",
                          "double free or corrupted free block, detected when the thread cache "
                          "gave it back");
}

/* The object after obj in a thread cache list, once obj's key says that
 * it is in one (I4): a walk never follows a link the user wrote. */
static void *walk_next(void *obj)
{
    if (TL_UNLIKELY(!obj || tli_key_of(obj) != tli_free_key(obj)))
        bad_list(obj);
    return tli_link_get(obj);
}

/* Detaches n objects from the head of a class's list (n <= held). The
 * whole list needs no walk: its last object's link already ends it. That
 * is every flush of a thread that only frees a class (its list stops at a
 * batch), and there the walk stalled on the lines its frees had just
 * written (a store that missed completes later; a load waits for it).
 * Nothing is followed unchecked: whoever takes the batch checks each key
 * before it follows that object's link (I4). */
static void *detach(struct tc_state *st, unsigned cls, unsigned n)
{
    struct tc_lists *lists = &st->tc->lists;
    void *first = lists->head[cls], *last = first;
    if (n == held(st, cls)) {
        lists->head[cls] = NULL;
    } else {
        for (unsigned i = 1; i < n; i++)
            last = walk_next(last);
        lists->head[cls] = walk_next(last);
        tli_link_set(last, NULL);
    }
    lists->room[cls] += (int32_t)n;
    return first;
}

/* Cuts a list after its first keep objects (at least one) and returns the
 * rest, n objects: those freed longest ago. */
static void *detach_bottom(struct tc_lists *lists, unsigned cls, unsigned keep, unsigned n)
{
    void *last = lists->head[cls];
    for (unsigned i = 1; i < keep; i++)
        last = walk_next(last);
    void *rest = walk_next(last);
    tli_link_set(last, NULL);
    lists->room[cls] += (int32_t)n;
    return rest;
}

/* Sets of classes, a bit each, in two words (used, ran_empty, drain...). */
_Static_assert(TL_MAX_CLASSES <= 128, "a set of classes is two 64-bit words");
static void class_set_add(uint64_t set[2], unsigned cls) { set[cls / 64] |= 1ull << (cls % 64); }
static void class_set_remove(uint64_t set[2], unsigned cls)
{
    set[cls / 64] &= ~(1ull << (cls % 64));
}
static bool class_set_has(const uint64_t set[2], unsigned cls)
{
    return set[cls / 64] & (1ull << (cls % 64));
}
static void class_set_clear(uint64_t set[2]) { set[0] = set[1] = 0; }

static void mark_used(struct tc_state *st, unsigned cls)
{
    class_set_add(st->used, cls);
    class_set_add(st->gc_used, cls);
}
static bool was_used(const struct tc_state *st, unsigned cls)
{
    return class_set_has(st->used, cls);
}

/* A full list's batch goes to the transfer stack, where another thread
 * may be waiting for it. */
static void flush(struct tc_state *st, unsigned cls, unsigned n)
{
    tli_central_give(cls, detach(st, cls, n), n, false);
    mark_used(st, cls);
    st->n_flushes++;
}

/* Objects a list does not need (a lowered limit, an idle class, an exiting
 * thread) go into their spans, which may then go back to the page heap:
 * parked on a transfer stack they would pin their spans for another
 * decay interval. */
static void return_to_spans(struct tc_state *st, unsigned cls, unsigned n)
{
    if (n)
        tli_central_give(cls, detach(st, cls, n), n, true);
}

static void set_max_len(struct tc_state *st, unsigned cls, uint32_t len)
{
    int32_t delta = (int32_t)len - (int32_t)st->max_len[cls];
    st->limit_bytes = st->limit_bytes + (size_t)((int64_t)delta * (int64_t)class_size(cls));
    st->max_len[cls] = len;
    st->tc->lists.room[cls] += delta;
}

/* Lowers a class's limit to len, flushing what is above it. */
static void lower_limit(struct tc_state *st, unsigned cls, uint32_t len)
{
    uint32_t h = held(st, cls);
    if (h > len)
        return_to_spans(st, cls, h - len);
    set_max_len(st, cls, len);
}

/* Halves the lists until their limits fit in target bytes. */
static void shrink_to(struct tc_state *st, size_t target)
{
    while (st->limit_bytes > target) {
        bool changed = false;
        for (unsigned cls = 1; cls < tli_num_classes; cls++) {
            if (st->max_len[cls] == 0)
                continue;
            lower_limit(st, cls, st->max_len[cls] / 2);
            changed = true;
        }
        if (!changed)
            break;
    }
}

/* Another thread asked for cap: shrink by that much and give it back. */
static void honour_request(struct tc_state *st)
{
    if (!atomic_load_explicit(&st->give_back, memory_order_relaxed))
        return;
    size_t want = atomic_exchange_explicit(&st->give_back, 0, memory_order_relaxed);
    size_t cap = atomic_load_explicit(&st->cap_bytes, memory_order_relaxed);
    shrink_to(st, cap > want ? cap - want : 0);
    release_cap(st);
}

static void empty_class(struct tc_state *st, unsigned cls)
{
    return_to_spans(st, cls, held(st, cls));
    set_max_len(st, cls, 0);
}

/* The older half of a list in use (rounded up: a list of one is emptied)
 * goes into its spans. After a peak, the objects a thread keeps cycling
 * through its list are the last ones it freed, from spans all over the
 * freed peak; each such span stays resident for one object. Halving from
 * the bottom at every scavenge lets the list refill from the central
 * list's highest spans instead, at the cost of a refill per class per
 * decay_ms/4. */
static void halve_from_bottom(struct tc_state *st, unsigned cls)
{
    uint32_t h = held(st, cls);
    if (h == 0)
        return;
    unsigned keep = h / 2, n = h - keep;
    struct tc_lists *lists = &st->tc->lists;
    void *old = keep ? detach_bottom(lists, cls, keep, n) : detach(st, cls, n);
    tli_central_give(cls, old, n, true);
}

/* Every decay_ms/4 (so that what they hold is free in the page heap, and
 * decaying, well within decay_ms), lists of classes that needed no refill
 * or flush since the last look are emptied (their memory was idle); lists
 * longer than a batch drop back to one batch (a busy class grows back at
 * the cost of a few refills), and then give their older half to their
 * spans (halve_from_bottom); and batches that sat unused on central
 * transfer stacks go back to their spans: memory comes back while the
 * threads keep running. A list that ran empty since the last look is left
 * as it is: it holds what it refilled since, from the central list, and
 * cutting it made it refill again with batches other threads had flushed
 * (on server -t 8 a quarter of all refills, which spread each thread's
 * blocks over the other threads' pages: docs/DESIGN.md, "Central lists"). */
static void flush_all(struct tc_state *st);

/* A peak is being freed (tli_peak_epoch moved), and what this cache holds
 * came from it, from spans all over the freed range: each keeps its pages
 * resident for an object or two. The cache is emptied into the spans, and
 * until the class's next refill (or the next timed scavenge) its frees go
 * straight to their spans too: the objects a thread frees last would
 * otherwise stay in its cache, and a thread that frees its peak and then
 * waits for work makes no call that could give them back (one thread's
 * cache kept 1-7 MiB of a freed 256 MiB peak resident that way). Checked
 * at every slow path: a peak is often freed in a few milliseconds. */
static void check_peak(struct tc_state *st)
{
    uint32_t epoch = atomic_load_explicit(&tli_peak_epoch, memory_order_relaxed);
    if (TL_LIKELY(epoch == st->peak_epoch))
        return;
    st->peak_epoch = epoch;
    flush_all(st);
    st->drain[0] = st->drain[1] = ~0ull;
    st->drained_bytes = 0;
    /* The batches freed before the epoch moved sit on the central transfer
     * stacks (up to 1 MiB per class): empty them now, not at the next
     * timed decay, which a program that then goes idle never reaches. */
    tli_central_decay_soon();
    tli_central_decay(tli_os_now_ms());
}

/* Draining stops after a whole scavenge interval without a new epoch, and
 * only once the thread has freed more past its cache than two epochs' worth
 * of freed pages (an epoch moves every tc_budget bytes, page_heap.c). The
 * interval alone let a thread that frees slowly (on a loaded machine, the
 * half of a peak whose frees empty no span took longer than an interval)
 * leave drain mode before the end of its peak, and its cache then kept the
 * peak's last objects, each pinning a span: 1-2 MiB for two idle threads.
 * The volume alone would keep a thread that only frees a class on the
 * slow path for good. */
static bool drain_done(const struct tc_state *st)
{
    return st->peak_epoch == st->quiet_epoch && st->drained_bytes > 2 * tli_conf.tc_budget;
}

static bool draining(const struct tc_state *st, unsigned cls)
{
    return class_set_has(st->drain, cls);
}

/* The run-time controls lowered this thread's cap (thread_cache_max) or
 * the budget (which then has a debt): lists shrink, and the cap goes back
 * to the pool. */
static void obey_limits(struct tc_state *st)
{
    size_t max = __atomic_load_n(&tli_conf.tc_max, __ATOMIC_RELAXED);
    /* release_cap keeps whole steps: a cap up to max rounded up is obeyed */
    bool over =
        atomic_load_explicit(&st->cap_bytes, memory_order_relaxed) > tli_round_up(max, CAP_STEP);
    bool debt = atomic_load_explicit(&budget_debt, memory_order_relaxed) != 0;
    if (TL_LIKELY(!over && !debt))
        return;
    shrink_to(st, debt && st->limit_bytes / 2 < max ? st->limit_bytes / 2 : max);
    release_cap(st);
}

static void maybe_scavenge(struct tc_state *st)
{
    honour_request(st);
    obey_limits(st);
    check_peak(st);
    if (++st->slow_calls % 16)
        return; /* the clock is read on every 16th slow path only */
    uint64_t now = tli_os_now_ms();
    if (now - st->scavenged_ms < tli_conf.decay_ms / 4)
        return;
    /* A thread that only frees a class never refills it: its lists come
     * back here (drain_done). */
    if (drain_done(st))
        class_set_clear(st->drain);
    st->quiet_epoch = st->peak_epoch;
    for (unsigned cls = 1; cls < tli_num_classes; cls++) {
        uint32_t len = st->max_len[cls], batch = tli_classes[cls].batch;
        if (len && !was_used(st, cls)) {
            empty_class(st, cls);
            continue;
        }
        if (class_set_has(st->ran_empty, cls))
            continue;
        if (len > batch)
            lower_limit(st, cls, batch);
        halve_from_bottom(st, cls);
    }
    class_set_clear(st->used);
    class_set_clear(st->ran_empty);
    st->scavenged_ms = now;
    release_cap(st);
    tli_tc_release_kept(now, false);
    tli_central_decay(now);
}

static void flush_all(struct tc_state *st)
{
    for (unsigned cls = 1; cls < tli_num_classes; cls++)
        empty_class(st, cls);
}

/* ---- life cycle ---------------------------------------------------------- */
static void cache_exit(void *arg);

/* Stage one of init (init.c), so the key exists before any thread can
 * cache: glibc's pthread_key_create does not allocate. With no key left
 * (a late dlopen() into a program that used them all), threads run
 * uncached: a cache whose thread's exit goes unseen would be lost, and
 * any other key belongs to someone else. */
void tli_tc_init_key(void) { exit_key_made = pthread_key_create(&exit_key, cache_exit) == 0; }

static void cache_init(struct thread_cache *tc)
{
    /* Calls below may re-enter malloc (pthread_setspecific allocates for
     * high key numbers); until the cache is ready, such calls bypass it. */
    tc->state = TC_DEAD;
    if (tli_conf.check || !exit_key_made)
        return; /* check mode sees every malloc and free; no key: see above */
    tli_lock_acquire(&tli_registry_lock);
    struct tc_state *st = kept_states;
    bool adopt = st != NULL;
    if (adopt) {
        kept_states = st->reg_next;
        atomic_fetch_sub_explicit(&n_kept, 1, memory_order_relaxed);
    } else if ((st = spare_states)) {
        spare_states = st->reg_next;
    }
    tli_lock_release(&tli_registry_lock);
    if (!st && !(st = tli_meta_alloc(sizeof *st)))
        return; /* no memory for the cache: run uncached */
    if (adopt) {
        /* lists, limits and cap as the exited thread left them */
        tc->lists = st->kept.lists;
    } else {
        for (unsigned cls = 0; cls < TL_MAX_CLASSES; cls++) {
            tc->lists.head[cls] = NULL;
            tc->lists.room[cls] = 0;
            st->max_len[cls] = 0;
        }
        st->limit_bytes = 0;
        atomic_store_explicit(&st->cap_bytes, 0, memory_order_relaxed);
    }
    class_set_clear(st->used);
    class_set_clear(st->ran_empty);
    class_set_clear(st->gc_used);
    st->gc_cursor = 1;
    st->scavenged_ms = tli_os_now_ms();
    st->peak_epoch = atomic_load_explicit(&tli_peak_epoch, memory_order_relaxed);
    st->quiet_epoch = st->peak_epoch;
    class_set_clear(st->drain);
    st->n_refills = st->n_flushes = st->n_slow_frees = st->n_fast_frees = 0;
    st->tick_base = tc->tick;
    atomic_store_explicit(&st->give_back, 0, memory_order_relaxed);
    bool keyed = pthread_setspecific(exit_key, tc) == 0; /* fails with no memory */
    tli_lock_acquire(&tli_registry_lock);
    if (keyed) {
        st->tc = tc;
        tc->st = st;
        registry_add_locked(st);
        tc->state = TC_ACTIVE;
    } else if (adopt) { /* run uncached; the kept lists stay kept */
        push_kept_locked(st);
    } else { /* the exit would go unseen: run uncached */
        push_spare_locked(st);
    }
    tli_lock_release(&tli_registry_lock);
    if (!keyed)
        memset(&tc->lists, 0, sizeof tc->lists);
}

/* Empties a cache's lists into their spans and gives its cap back. */
static void empty_all(struct tc_state *st)
{
    flush_all(st);
    give_cap_back(st);
}

/* The lists of an exited thread move into its state, for the next thread
 * to adopt (see the top of this file). Registry lock held. */
static bool keep_lists_locked(struct tc_state *st) TL_REQUIRES(tli_registry_lock)
{
    if (!st->limit_bytes || atomic_load_explicit(&n_kept, memory_order_relaxed) >= MAX_KEPT)
        return false;
    st->kept.lists = st->tc->lists;
    st->kept.st = st;
    st->kept.state = TC_DEAD;
    st->tc = &st->kept;
    st->retired_ms = tli_os_now_ms();
    push_kept_locked(st);
    return true;
}

/* The cache of an exiting thread: kept for the next thread, or emptied.
 * The caller has taken it out of the registry; an emptied state goes on
 * the spare list. */
static void retire(struct tc_state *st)
{
    struct thread_cache *tc = st->tc;
    tli_lock_acquire(&tli_registry_lock);
    bool kept = keep_lists_locked(st);
    tli_lock_release(&tli_registry_lock);
    if (!kept)
        empty_all(st);
    tc->state = TC_DEAD;
    tc->st = NULL;
    if (kept)
        return;
    tli_lock_acquire(&tli_registry_lock);
    push_spare_locked(st);
    tli_lock_release(&tli_registry_lock);
}

bool tli_tc_any_kept(void) { return atomic_load_explicit(&n_kept, memory_order_relaxed) != 0; }

/* Kept lists that no new thread adopted within decay_ms/4 (all of them
 * with all) go back to their spans, and their cap to the pool. Under the
 * registry lock, which the central and page heap locks nest inside, so
 * that a fork never finds a state in neither list. */
void tli_tc_release_kept(uint64_t now, bool all)
{
    if (!tli_tc_any_kept())
        return;
    uint64_t wait = __atomic_load_n(&tli_conf.decay_ms, __ATOMIC_RELAXED) / 4;
    tli_lock_acquire(&tli_registry_lock);
    struct tc_state **link = &kept_states;
    while (*link) {
        struct tc_state *st = *link;
        if (!all && now - st->retired_ms < wait) {
            link = &st->reg_next;
            continue;
        }
        *link = st->reg_next;
        atomic_fetch_sub_explicit(&n_kept, 1, memory_order_relaxed);
        empty_all(st);
        push_spare_locked(st);
    }
    tli_lock_release(&tli_registry_lock);
}

/* Frees the fast path made since the tick was last set: it counts down
 * from tick_base, and a free that takes it below 0 leaves for the slow
 * path (counted there, in tli_tc_free). Reads another thread's tick without
 * its cooperation, as tli_tc_counts does. */
__attribute__((no_sanitize("thread"))) static uint64_t fast_frees_pending(const struct tc_state *st)
{
    int32_t tick = st->tc->tick;
    return (uint64_t)(tick < 0 ? st->tick_base : st->tick_base - tick);
}

/* A cache leaves the registry: its counts go to the totals of exited
 * threads, in the same registry lock hold, so that no reader misses or
 * counts them twice. Registry lock held. */
static void fold_counts_locked(struct tc_state *st) TL_REQUIRES(tli_registry_lock)
{
    tli_stat_add(&tli_stats.exited_refills, st->n_refills);
    tli_stat_add(&tli_stats.exited_flushes, st->n_flushes);
    tli_stat_add(&tli_stats.exited_frees,
                 st->n_slow_frees + st->n_fast_frees + fast_frees_pending(st));
    st->n_refills = st->n_flushes = st->n_slow_frees = st->n_fast_frees = 0;
    st->tick_base = st->tc->tick < 0 ? 0 : st->tc->tick;
}

/* Thread exit: the key destructor. */
static void cache_exit(void *arg)
{
    struct thread_cache *tc = arg;
    if (tc != &tli_tc || tc->state != TC_ACTIVE)
        return;
    tc->state = TC_DEAD; /* re-entrant frees during the flush bypass the cache */
    tli_lock_acquire(&tli_registry_lock);
    fold_counts_locked(tc->st);
    registry_remove_locked(tc->st);
    tli_lock_release(&tli_registry_lock);
    retire(tc->st);
}

/* One class per tick, round robin (a lap every 80 ticks, some 80,000
 * frees): a list that looks idle since the last lap - no refill or flush,
 * the same head and the same room - gives half its objects back into
 * their spans, and its limit halves. A thread that moves on from one size
 * to the next (fastpath-sweep: 128 sizes in 0.1 s) otherwise keeps every
 * list it filled until the next timed scavenge, 1.1 MiB there; going to
 * the spans, not the transfer stack, lets their pages serve the next
 * sizes. A list in steady use can look idle (a malloc and a free of the
 * same block in turn); it loses half its objects once a lap, and refills
 * when it needs them. Emptying lists outright slowed larson by half. */
static void gc_step(struct tc_state *st)
{
    unsigned cls = st->gc_cursor;
    st->gc_cursor = cls + 1 < tli_num_classes ? cls + 1 : 1;
    struct tc_lists *lists = &st->tc->lists;
    bool idle = !class_set_has(st->gc_used, cls) && lists->head[cls] == st->gc_head[cls] &&
                lists->room[cls] == st->gc_room[cls];
    unsigned n = (held(st, cls) + 1) / 2;
    if (idle && n) {
        tli_central_give(cls, detach(st, cls, n), n, true);
        set_max_len(st, cls, st->max_len[cls] / 2);
        release_cap(st);
    }
    class_set_remove(st->gc_used, cls);
    st->gc_head[cls] = lists->head[cls];
    st->gc_room[cls] = lists->room[cls];
}

/* Every TL_TICK frees, even when every call hits the cache: a step of the
 * list collector, and decay of idle lists, transfer stacks and free pages
 * on time. */
void tli_tc_tick(void)
{
    struct thread_cache *tc = &tli_tc;
    if (tc->state == TC_ACTIVE) {
        /* The caller has just set the tick back to TL_TICK: the count
         * from tick_base down to 0 were fast-path frees. */
        tc->st->n_fast_frees += (uint64_t)tc->st->tick_base;
        tc->st->tick_base = tc->tick;
        gc_step(tc->st);
        tc->st->slow_calls = 15; /* look at the clock now */
        maybe_scavenge(tc->st);
    }
    tli_page_heap_tick();
}

void tli_tc_flush_self(void)
{
    struct thread_cache *tc = &tli_tc;
    if (tc->state == TC_ACTIVE)
        flush_all(tc->st);
}

/* The cache of a thread that does not exist in a forked child may have been
 * caught in the middle of a fast-path push or pop: its lists are intact
 * (each step leaves them so) but room may be off by one, and an object may
 * be in neither the list nor the program's hands. So the lists are walked
 * by their links, each object checked against the pagemap, never by count;
 * an object lost in flight is leaked, never handed out twice. */
static bool salvageable(void *p, unsigned cls)
{
    uintptr_t a = (uintptr_t)p;
    struct pagemap_leaf *leaf = tli_pagemap_leaf(a);
    return !(a & 15) && leaf && leaf->hot[tli_pagemap_index(a)].size_class == cls &&
           tli_key_of(p) == tli_free_key(p);
}

static void salvage(struct tc_state *st) TL_NO_LOCK_ANALYSIS
{
    for (unsigned cls = 1; cls < tli_num_classes; cls++) {
        void *first = st->tc->lists.head[cls], *last = NULL, *p = first;
        unsigned n = 0;
        while (p && n <= st->max_len[cls] && salvageable(p, cls)) {
            last = p;
            n++;
            p = tli_link_get(p);
        }
        if (n) {
            tli_link_set(last, NULL);
            tli_central_give(cls, first, n, false);
        }
        st->tc->lists.head[cls] = NULL;
        st->tc->lists.room[cls] = 0;
        st->max_len[cls] = 0;
    }
    st->limit_bytes = 0;
    st->tc->state = TC_DEAD;
    st->tc->st = NULL;
    give_cap_back(st);
    push_spare_locked(st);
}

/* In the child after fork (locks reset, one thread): the caches of threads
 * that do not exist here go back to the central lists. No lock analysis
 * here or in salvage: the child has one thread and the registry lock was
 * just reset, so the registry is this thread's alone without the lock. */
void tli_tc_child_after_fork(void) TL_NO_LOCK_ANALYSIS
{
    struct tc_state *st = registry;
    while (st) {
        struct tc_state *next = st->reg_next;
        if (st->tc != &tli_tc) {
            fold_counts_locked(st);
            registry_remove_locked(st);
            salvage(st);
        }
        st = next;
    }
}

/* ---- slow paths ---------------------------------------------------------- */
static bool ready(struct thread_cache *tc)
{
    if (TL_LIKELY(tc->state == TC_ACTIVE))
        return true;
    if (tc->state == TC_UNINIT)
        cache_init(tc);
    return tc->state == TC_ACTIVE;
}

/* Lets a class's list hold more, if the limits allow: 2 KiB worth first (at
 * least 4 objects), then doubling up to a batch, then one batch more each
 * time. A thread that needs a class once (thread churn) then moves a few
 * objects, not a batch of 32, in and out of the central list; and what two
 * threads carve from one span comes in runs of 2 KiB or more, so their
 * blocks rarely share a cache line (docs/DESIGN.md, "Thread caches"). */
static uint32_t first_len(unsigned cls)
{
    uint32_t n = 2048 / class_size(cls);
    return n < 4 ? 4 : n;
}

static void raise_max_len(struct tc_state *st, unsigned cls)
{
    uint32_t batch = tli_classes[cls].batch, len = st->max_len[cls];
    uint32_t next = len >= batch ? len + batch : len == 0 ? first_len(cls) : 2 * len;
    if (len < batch && next > batch)
        next = batch;
    if (next <= max_len_cap(cls) && reserve(st, (size_t)(next - len) * class_size(cls)))
        set_max_len(st, cls, next);
}

static void refill(struct tc_state *st, unsigned cls)
{
    struct tc_lists *lists = &st->tc->lists;
    uint32_t batch = tli_classes[cls].batch;
    raise_max_len(st, cls);
    if (lists->room[cls] <= 0)
        return;
    unsigned want = (uint32_t)lists->room[cls] < batch ? (unsigned)lists->room[cls] : batch;
    void *head;
    unsigned got = tli_central_take(cls, want, &head);
    class_set_remove(st->drain, cls);
    if (got) {
        lists->head[cls] = head;
        lists->room[cls] -= (int32_t)got;
        mark_used(st, cls);
        class_set_add(st->ran_empty, cls);
        st->n_refills++;
    }
    /* Last, with the list whole: starting the thread allocates (glibc's
     * pthread_create callocs the new thread's TLS vector), and an
     * allocation of this class in between found the list still empty,
     * refilled it, and then lost its objects and its room when this
     * refill wrote head and room over it. No lock is held here either
     * (see background.c). */
    tli_background_check();
}

/* Pops an object of class cls from this thread's cache, refilling it from
 * the central list when empty. */
void *tli_tc_alloc(unsigned cls)
{
    struct thread_cache *tc = &tli_tc;
    if (!ready(tc))
        return tli_alloc_small_nocache(cls);
    struct tc_state *st = tc->st;
    struct tc_lists *lists = &tc->lists;
    honour_request(st);
    if (!lists->head[cls]) {
        maybe_scavenge(st);
        refill(st, cls);
        if (!lists->head[cls])
            return tli_alloc_small_nocache(cls);
    }
    void *p = tli_tc_pop(&tli_tc_fs()->lists, cls, lists->head[cls]);
    tli_vg_alloc(p, class_size(cls));
    return p;
}

/* A free found its list full: a full batch goes, or a shorter limit grows.
 * The scavenge just before may have halved the list; then there is room
 * already, and raising the limit would take a thread that only frees past
 * one batch, so that each of its flushes walked the list (see detach). */
static void make_room(struct tc_state *st, unsigned cls)
{
    uint32_t batch = tli_classes[cls].batch;
    if (st->tc->lists.room[cls] > 0)
        return;
    if (held(st, cls) >= batch)
        flush(st, cls, batch); /* a full batch: no lock on the way */
    else
        raise_max_len(st, cls); /* a thread that only frees this class */
}

/* p is a small object of class cls, already validated by the caller. */
void tli_tc_free(void *p, unsigned cls)
{
    struct thread_cache *tc = &tli_tc;
    if (!ready(tc)) {
        tli_stat_add(&tli_stats.small_frees_uncached, 1);
        tli_free_small_nocache(p, cls);
        return;
    }
    struct tc_state *st = tc->st;
    struct tc_lists *lists = &tc->lists;
    if (TL_UNLIKELY(p == lists->head[cls])) { /* its key may have been wiped (I4) */
        tli_report_double_free(p, cls, "free");
        return;
    }
    st->n_slow_frees++;
    tli_vg_free_small(p);
    honour_request(st);
    if (lists->room[cls] <= 0) {
        maybe_scavenge(st);
        if (draining(st, cls)) {
            st->drained_bytes += class_size(cls);
            tli_central_give_one(p, cls);
            return;
        }
        make_room(st, cls);
    }
    if (lists->room[cls] <= 0) { /* no budget for this class */
        tli_central_give_one(p, cls);
        return;
    }
    tli_tc_push(&tli_tc_fs()->lists, cls, p);
}

/* Sum of bytes cached by all threads (and per class when per_class is not
 * NULL). Reads other threads' lists without their cooperation: the figure
 * is a snapshot that may be off by what they did meanwhile. The registry
 * lock keeps every listed cache alive while it is read. */
/* Bytes in one cache's lists, added to per_class. Reads another thread's
 * cache racily: a snapshot, exact for threads that are not running. */
__attribute__((no_sanitize("thread"))) static size_t list_bytes(const struct tc_state *st,
                                                                size_t *per_class)
{
    size_t total = 0;
    for (unsigned cls = 1; cls < tli_num_classes; cls++) {
        /* held(), spelt out so that the racy reads stay in this function,
         * which ThreadSanitizer is told to leave alone. */
        int32_t h = (int32_t)st->max_len[cls] - st->tc->lists.room[cls];
        size_t b = (size_t)(h > 0 ? h : 0) * class_size(cls);
        total += b;
        if (per_class)
            per_class[cls] += b;
    }
    return total;
}

/* Bytes in all thread caches, those kept from exited threads included;
 * threads: the live ones. */
size_t tli_tc_total_bytes(size_t *per_class, unsigned *threads)
{
    size_t total = 0;
    unsigned n = 0;
    tli_lock_acquire(&tli_registry_lock);
    for (struct tc_state *st = registry; st; st = st->reg_next, n++)
        total += list_bytes(st, per_class);
    for (struct tc_state *st = kept_states; st; st = st->reg_next)
        total += list_bytes(st, per_class);
    tli_lock_release(&tli_registry_lock);
    if (threads)
        *threads = n;
    return total;
}

/* Operation counts: live threads' own counters (read without their
 * cooperation, as in tli_tc_total_bytes: a snapshot, exact for threads
 * that are not running) plus those of exited threads and of the rare
 * paths. Frees are small frees here; stats.c adds large and huge. */
__attribute__((no_sanitize("thread"))) void tli_tc_counts(struct tli_tc_counts *c)
{
    c->refills = c->flushes = c->small_frees = 0;
    tli_lock_acquire(&tli_registry_lock);
    for (struct tc_state *st = registry; st; st = st->reg_next) {
        c->refills += st->n_refills;
        c->flushes += st->n_flushes;
        c->small_frees += st->n_slow_frees + st->n_fast_frees + fast_frees_pending(st);
    }
    c->refills += atomic_load_explicit(&tli_stats.exited_refills, memory_order_relaxed);
    c->flushes += atomic_load_explicit(&tli_stats.exited_flushes, memory_order_relaxed);
    c->small_frees += atomic_load_explicit(&tli_stats.exited_frees, memory_order_relaxed) +
                      atomic_load_explicit(&tli_stats.small_frees_uncached, memory_order_relaxed);
    tli_lock_release(&tli_registry_lock);
}

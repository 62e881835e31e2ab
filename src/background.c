/* background.c - the background thread: while the program makes no
 * allocator call, nothing else runs decay, so this thread wakes every
 * decay_ms/4 and does what a thread's tick would do for the shared
 * structures: batches idle on the central transfer stacks go back to their
 * spans (tl_central_decay), and pages free for longer than decay_ms go back
 * to the OS (tl_page_heap_maybe_decay). It never touches a thread's cache:
 * those belong to their threads, without a lock.
 *
 * background_thread=auto (the default) starts it the first time the page
 * heap has handed out more than TL_BACKGROUND_AUTO_BYTES: below that, what
 * an idle program can keep is small, and a program that never gets there
 * never gets a thread. =1 starts it from the library's constructor, =0
 * never.
 *
 * Where it starts. pthread_create allocates, so it is called with no
 * allocator lock held, never from a fork handler, and only from the malloc
 * side: after a page heap allocation of a large block, or a thread cache
 * refill. Not from free: glibc frees a dead thread's TLS while holding its
 * stack cache lock, which pthread_create takes too; it takes no lock of
 * its own around a malloc that pthread_create would need (our attributes
 * are explicit, so not even the default attributes' lock). And only once
 * the constructor has run, which installs the fork handler below from a
 * clean context (pthread_atfork allocates under glibc's atfork lock: from
 * inside a malloc it could deadlock).
 *
 * Fork: the thread does not exist in a child. The child handler only marks
 * it not started, and the child starts its own at its next trigger. The
 * thread takes the allocator's locks one at a time, in their usual order,
 * and never sleeps holding one, so the fork handlers, which take them all,
 * simply wait for it.
 */
#include "internal.h"

#include <pthread.h>
#include <time.h>

/* See the header comment and docs/DESIGN.md ("The background thread"). */
#define TL_BACKGROUND_AUTO_BYTES ((size_t)32 << 20)

enum bg_state { BG_NOT_STARTED = 0, BG_STARTING, BG_RUNNING, BG_NEVER };
_Atomic int tl_background_state;
static _Atomic bool constructed;

/* Sleeps for ms milliseconds. */
static void pause_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Whether a look found anything that decay may give back later. */
static bool anything_pending(void)
{
    return atomic_load_explicit(&tl_stats.page_free, memory_order_relaxed) || tl_central_batches();
}

/* The period is decay_ms/4, as for a thread's own scavenging, so that
 * memory goes back within decay_ms plus a quarter. While there is nothing
 * to give back it doubles, up to decay_ms, so that an idle process with an
 * empty heap wakes twice a second, not eight times; the first look after a
 * peak then comes at most decay_ms after its free, and its memory is back
 * within about 2 * decay_ms. */
static void *background_main(void *arg)
{
    (void)arg;
    uint64_t base = tl_conf.decay_ms / 4 < 10 ? 10 : tl_conf.decay_ms / 4;
    uint64_t longest = tl_conf.decay_ms > base ? tl_conf.decay_ms : base;
    uint64_t period = base;
    for (;;) {
        pause_ms(period);
        tl_central_decay(tl_os_now_ms());
        tl_page_heap_tick();
        period = anything_pending() ? base : period * 2 > longest ? longest : period * 2;
    }
    return NULL;
}

static void child_after_fork(void)
{
    if (atomic_load_explicit(&tl_background_state, memory_order_relaxed) != BG_NEVER)
        atomic_store_explicit(&tl_background_state, BG_NOT_STARTED, memory_order_relaxed);
}

static void start(void)
{
    int expected = BG_NOT_STARTED;
    if (!atomic_compare_exchange_strong_explicit(&tl_background_state, &expected, BG_STARTING,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 << 10);
    bool ok = pthread_create(&t, &attr, background_main, NULL) == 0;
    pthread_attr_destroy(&attr);
    if (!ok)
        tl_warn("could not start the background thread", NULL);
    /* Not retried on failure: each try would cost a failed clone. */
    atomic_store_explicit(&tl_background_state, ok ? BG_RUNNING : BG_NEVER, memory_order_relaxed);
}

static size_t handed_out(void)
{
    return atomic_load_explicit(&tl_stats.small_spans, memory_order_relaxed) +
           atomic_load_explicit(&tl_stats.large_in_use, memory_order_relaxed);
}

/* From the constructor. */
void tl_background_start(void)
{
    if (tl_conf.background == TL_BACKGROUND_NEVER) {
        atomic_store_explicit(&tl_background_state, BG_NEVER, memory_order_relaxed);
        return;
    }
    pthread_atfork(NULL, NULL, child_after_fork);
    atomic_store_explicit(&constructed, true, memory_order_release);
    if (tl_conf.background == TL_BACKGROUND_ALWAYS || handed_out() > TL_BACKGROUND_AUTO_BYTES)
        start();
}

/* Called while tl_background_state is BG_NOT_STARTED, from the malloc side
 * (see above). The lock scan runs only between the crossing of the
 * threshold and the start. */
void tl_background_maybe_start(void)
{
    if (!atomic_load_explicit(&constructed, memory_order_acquire) ||
        handed_out() <= TL_BACKGROUND_AUTO_BYTES || tl_lock_any_held_by_me())
        return;
    start();
}

/* background.c - the background thread: while the program makes no
 * allocator call, nothing else runs decay, so this thread wakes every
 * decay_ms/4 and does what a thread's tick would do for the shared
 * structures: batches idle on the central transfer stacks go back to their
 * spans (tli_central_decay), and pages free for longer than decay_ms go back
 * to the OS (tli_page_heap_maybe_decay). It never touches a thread's cache:
 * those belong to their threads, without a lock.
 *
 * background_thread=auto (the default) starts it the first time the page
 * heap has handed out more than TL_BACKGROUND_AUTO_BYTES in a process that
 * has had a second thread: below that, what an idle program can keep is
 * small, and a program that never gets there never gets a thread. A
 * single-threaded process gets none (auto_due). =1 starts it from the
 * library's constructor, =0 never.
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
 * thread takes the allocator's locks one at a time (docs/DESIGN.md, "Locks"),
 * and never sleeps holding one, so the fork handlers, which take them all,
 * simply wait for it.
 *
 * Run-time control (tl_ctl "background_thread"): the setting changes at
 * once. 0 stops the thread: the state goes RUNNING -> STOPPING, the thread
 * is woken, sees it, ends, and the caller joins it before it returns, so
 * no thread is left. 1 starts it (from the caller, with no allocator lock
 * held), 2 goes back to auto. Every transition is a compare-and-swap of
 * tli_background_state, with no lock, so a fork at any point leaves the
 * child with a consistent state: the child handler makes it NEVER if the
 * setting is 0, else NOT_STARTED. The thread sleeps on a futex word,
 * bg_wake, that a stop or a new decay_ms bumps to wake it.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <sys/single_threaded.h>
#include <time.h>

/* See the header comment and docs/DESIGN.md ("The background thread"). */
#define TL_BACKGROUND_AUTO_BYTES ((size_t)32 << 20)

enum bg_state { BG_NOT_STARTED = 0, BG_STARTING, BG_RUNNING, BG_NEVER, BG_STOPPING };
_Atomic int tli_background_state;
static _Atomic bool constructed;
static pthread_t bg_thread;      /* set before the state becomes RUNNING */
static _Atomic uint32_t bg_wake; /* bumped to wake the thread early */

static int state(void) { return atomic_load(&tli_background_state); }

/* Whether a look found anything that decay may give back later. */
static bool anything_pending(void)
{
    return atomic_load_explicit(&tli_stats.page_free, memory_order_relaxed) ||
           tli_central_batches() || tli_tc_any_kept();
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
    uint64_t period = 0;
    for (;;) {
        /* decay_ms may change at run time (tl_ctl): read at every turn. */
        uint64_t decay = __atomic_load_n(&tli_conf.decay_ms, __ATOMIC_RELAXED);
        uint64_t base = decay / 4 < 10 ? 10 : decay / 4;
        uint64_t longest = decay > base ? decay : base;
        if (period < base || period > longest)
            period = base;
        uint32_t seq = atomic_load(&bg_wake);
        if (state() == BG_STOPPING)
            return NULL;
        tli_os_wait_word(&bg_wake, seq, period);
        if (state() == BG_STOPPING)
            return NULL;
        uint64_t now = tli_os_now_ms();
        tli_tc_release_kept(now, false);
        tli_central_decay(now);
        tli_page_heap_tick();
        period = anything_pending() ? base : period * 2 > longest ? longest : period * 2;
    }
}

static void child_after_fork(void)
{
    bool never = state() == BG_NEVER ||
                 __atomic_load_n(&tli_conf.background, __ATOMIC_RELAXED) == TL_BACKGROUND_NEVER;
    atomic_store(&tli_background_state, never ? BG_NEVER : BG_NOT_STARTED);
}

static void start(void)
{
    int expected = BG_NOT_STARTED;
    if (!atomic_compare_exchange_strong_explicit(&tli_background_state, &expected, BG_STARTING,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 << 10);
    /* Every signal blocked, from its first instruction (a new thread takes
     * its creator's mask): a signal sent to the process must reach one of
     * the program's threads, never this one. A program that blocks SIGTERM
     * to read it from a signalfd or sigwait would otherwise be killed by
     * it, and one waiting in a system call for EINTR would not get it. */
    sigset_t all, callers;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &callers);
    /* Joinable: a stop waits for it to end (tli_background_set). */
    bool ok = pthread_create(&bg_thread, &attr, background_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &callers, NULL);
    pthread_attr_destroy(&attr);
    if (!ok)
        tli_warn("could not start the background thread", NULL);
    /* Not retried by the malloc side on failure: each try would cost a
     * failed clone (tl_ctl may try again). */
    atomic_store_explicit(&tli_background_state, ok ? BG_RUNNING : BG_NEVER, memory_order_release);
}

/* Auto: the process has had a second thread of its own, and the heap has
 * grown past the threshold. A single-threaded process never gets one: it
 * would take away what glibc promises only to single-threaded processes
 * (a fork that is async-signal-safe, unshare(CLONE_NEWUSER), glibc's
 * single-thread shortcuts); its frees give back what decay would
 * (release_eagerly in page_heap.c). */
static bool auto_due(void)
{
    return !__libc_single_threaded && tli_page_heap_handed_out() > TL_BACKGROUND_AUTO_BYTES;
}

/* From the constructor. The fork handler is installed even when the
 * setting is 0: tl_ctl may start the thread later. */
void tli_background_start(void)
{
    pthread_atfork(NULL, NULL, child_after_fork);
    int mode = __atomic_load_n(&tli_conf.background, __ATOMIC_RELAXED);
    if (mode == TL_BACKGROUND_NEVER) {
        int expected = BG_NOT_STARTED;
        atomic_compare_exchange_strong(&tli_background_state, &expected, BG_NEVER);
    }
    atomic_store_explicit(&constructed, true, memory_order_release);
    if (mode == TL_BACKGROUND_ALWAYS || (mode == TL_BACKGROUND_AUTO && auto_due()))
        start();
}

/* Called while tli_background_state is BG_NOT_STARTED, from the malloc side
 * (see above). The lock scan runs only between the crossing of the
 * threshold and the start. */
void tli_background_maybe_start(void)
{
    if (!atomic_load_explicit(&constructed, memory_order_acquire) || !auto_due() ||
        tli_lock_any_held_by_me())
        return;
    start();
}

bool tli_background_running(void) { return state() == BG_RUNNING; }

void tli_background_poke(void)
{
    atomic_fetch_add(&bg_wake, 1);
    tli_os_wake_word(&bg_wake);
}

/* Another caller is starting or stopping the thread: wait for it. */
static void wait_transition(void)
{
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
}

/* Stops the thread, if it runs, and waits for it to end. */
static void stop(void)
{
    for (;;) {
        int s = state();
        if (s == BG_NEVER)
            return;
        if (s == BG_STARTING || s == BG_STOPPING) {
            wait_transition();
            continue;
        }
        if (!atomic_compare_exchange_strong(&tli_background_state, &s,
                                            s == BG_RUNNING ? BG_STOPPING : BG_NEVER))
            continue;
        if (s == BG_RUNNING) {
            tli_background_poke();
            pthread_join(bg_thread, NULL);
            atomic_store(&tli_background_state, BG_NEVER);
        }
        return;
    }
}

/* tl_ctl("background_thread", new): 0 never (stops it now), 1 always
 * (starts it now), 2 auto. No allocator lock may be held (a public
 * entry point). */
int tli_background_set(int mode)
{
    if (mode != TL_BACKGROUND_NEVER && mode != TL_BACKGROUND_ALWAYS && mode != TL_BACKGROUND_AUTO)
        return EINVAL;
    __atomic_store_n(&tli_conf.background, mode, __ATOMIC_RELAXED);
    if (mode == TL_BACKGROUND_NEVER) {
        stop();
        return 0;
    }
    int s;
    while ((s = state()) == BG_STOPPING || s == BG_STARTING)
        wait_transition();
    if (s == BG_NEVER)
        atomic_compare_exchange_strong(&tli_background_state, &s, BG_NOT_STARTED);
    /* Before the constructor, the setting is all: it starts the thread. */
    if (!atomic_load_explicit(&constructed, memory_order_acquire))
        return 0;
    if (mode == TL_BACKGROUND_ALWAYS)
        start();
    else
        tli_background_maybe_start();
    while (state() == BG_STARTING)
        wait_transition();
    return mode == TL_BACKGROUND_ALWAYS && state() != BG_RUNNING ? EAGAIN : 0;
}

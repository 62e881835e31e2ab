/* init.c - one-time initialisation, from whichever call comes first: the
 * dynamic loader's, a constructor's, or a thread's inside pthread_create.
 *
 * Stage one (tables, secrets, options, the thread-exit key) calls nothing
 * that can allocate and then marks the allocator ready; stage two
 * registers the fork handlers (pthread_atfork may allocate itself, which is
 * fine once the allocator is ready).
 *
 * Lock: init_owner, a spin lock whose word is the holder's process id and
 * lock id, guards stage one. It is not known to the fork handlers, which
 * are not installed until stage two: a thread that forks while another
 * runs stage one leaves its child with the lock held by a thread that does
 * not exist there. So a waiter that finds the lock held by another process
 * takes it over in one compare-and-swap and runs stage one again (nothing
 * was allocated before ready). Holder and process are one word, so there
 * is no instant at which the lock is held and the word does not say where.
 */
#include "internal.h"

_Atomic int tli_init_state;
uint64_t tli_secret;
uint64_t tli_link_mul;
uint64_t tli_key_secret;
static _Atomic uint64_t init_owner; /* 0, or pid << 32 | lock id of the holder */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static void make_secrets(void)
{
    uint64_t r[3] = {0, 0, 0};
    if (!tli_os_random(r, sizeof r)) {
        /* The kernel's 16 random bytes for this process. */
        const uint64_t *at_random = tli_os_exec_random();
        if (at_random) {
            r[0] = at_random[0];
            r[1] = at_random[1];
        }
        r[0] ^= mix((uint64_t)(uintptr_t)&r ^ tli_os_now_ms());
        r[1] ^= mix(r[0] + (uint64_t)(uintptr_t)&tli_secret);
        r[2] = mix(r[1] ^ r[0] ^ (uint64_t)(uintptr_t)&tli_link_mul);
    }
    /* A secret with a low bit set never encodes NULL as 0, so a zeroed word
     * is never a valid link; keep the top bits random too. */
    tli_secret = r[0] | 1;
    tli_key_secret = r[1] | 1;
    tli_link_mul = r[2] | 1;
}

/* The allocator is built for 4 KiB kernel pages (configure refuses
 * others); a binary moved to a kernel with other pages stops here, with a
 * message, before it maps anything. */
static void check_page_size(void)
{
    size_t page = tli_os_kernel_page_size();
    if (page && page != tli_os_page_size())
        tli_fatal("this kernel's pages are not 4096 bytes; tlmalloc is built for 4096");
}

static void stage_one(void)
{
    check_page_size();
    tli_size_classes_init();
    make_secrets();
    tli_config_init();
    tli_tc_init_key();
    atomic_store_explicit(&tli_tc_unclaimed, tli_conf.tc_budget, memory_order_relaxed);
    tli_check_init();
    tli_prof_init();
}

static uint64_t init_me(void) { return (uint64_t)(uint32_t)tli_os_getpid() << 32 | tli_self_id(); }

/* Takes the init lock, or takes it over from a stage one that a fork cut
 * off in another process. */
static void take_init_lock(uint64_t me)
{
    uint64_t seen = 0;
    while (!atomic_compare_exchange_weak_explicit(&init_owner, &seen, me, memory_order_acquire,
                                                  memory_order_relaxed)) {
        if (seen && seen >> 32 != me >> 32)
            continue; /* held in another process: seen is the expected value now */
        seen = 0;
        tli_cpu_relax();
    }
}

void tli_init_slow(void)
{
    uint64_t me = init_me();
    if (atomic_load_explicit(&init_owner, memory_order_relaxed) == me)
        tli_fatal("allocation during initialisation");
    take_init_lock(me);
    bool first = atomic_load_explicit(&tli_init_state, memory_order_acquire) != 2;
    if (first) {
        atomic_store_explicit(&tli_init_state, 1, memory_order_relaxed);
        stage_one();
        atomic_store_explicit(&tli_init_state, 2, memory_order_release);
    }
    atomic_store_explicit(&init_owner, 0, memory_order_release);
    if (first) {
        tli_fork_install();
        if (tli_conf.verbose)
            tli_config_report();
    }
}

__attribute__((constructor)) static void tli_constructor(void)
{
    tli_ensure_init();
    tli_check_start();
    tli_prof_start();
    tli_background_start();
}

__attribute__((destructor)) static void tli_destructor(void)
{
    if (atomic_load_explicit(&tli_init_state, memory_order_acquire) == 2) {
#ifdef TL_DEBUG
        /* Every process of a debug build checks its heap as it exits: each
         * Criterion test runs in a process of its own, so this is the walk
         * after every test, in test_linked and test_preload alike. */
        if (tli_conf.debug_check_every && tl_heap_check())
            tli_fatal("the heap check at exit found the problems above");
#endif
        tli_check_leak_report();
        tli_prof_at_exit();
        tli_stats_at_exit();
    }
}

/* init.c - one-time initialisation, from whichever call comes first: the
 * dynamic loader's, a constructor's, or a thread's inside pthread_create.
 *
 * Stage one (tables, secrets, options) calls nothing that can allocate and
 * then marks the allocator ready; stage two registers the thread-exit key
 * and the fork handlers, calls that may allocate themselves, which is fine
 * once the allocator is ready.
 *
 * Lock: init_lock guards stage one; a thread that finds it taken spins
 * until the state says ready. Not used after start, so fork ignores it.
 */
#include "internal.h"

#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

_Atomic int tl_init_state;
uint64_t tl_secret;
uint64_t tl_key_secret;
static struct tl_lock init_lock = TL_LOCK_INIT;

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
    uint64_t r[2] = {0, 0};
    if (syscall(SYS_getrandom, r, sizeof r, GRND_NONBLOCK) != (long)sizeof r) {
        /* The kernel's 16 random bytes for this process. */
        const uint64_t *at_random = (const uint64_t *)getauxval(AT_RANDOM);
        if (at_random) {
            r[0] = at_random[0];
            r[1] = at_random[1];
        }
        r[0] ^= mix((uint64_t)(uintptr_t)&r ^ tl_os_now_ms());
        r[1] ^= mix(r[0] + (uint64_t)(uintptr_t)&tl_secret);
    }
    /* A secret with a low bit set never encodes NULL as 0, so a zeroed word
     * is never a valid link; keep the top bits random too. */
    tl_secret = r[0] | 1;
    tl_key_secret = r[1] | 1;
}

static void stage_one(void)
{
    tl_size_classes_init();
    make_secrets();
    tl_config_init();
    atomic_store_explicit(&tl_tc_unclaimed, tl_conf.tc_budget, memory_order_relaxed);
    tl_check_init();
}

void tl_init_slow(void)
{
    if (tl_lock_held_by_me(&init_lock))
        tl_fatal("allocation during initialisation");
    tl_lock_acquire(&init_lock);
    bool first = atomic_load_explicit(&tl_init_state, memory_order_acquire) == 0;
    if (first) {
        atomic_store_explicit(&tl_init_state, 1, memory_order_relaxed);
        stage_one();
        atomic_store_explicit(&tl_init_state, 2, memory_order_release);
    }
    tl_lock_release(&init_lock);
    if (first) {
        tl_tc_init_key();
        tl_fork_install();
        if (tl_conf.verbose)
            tl_config_report();
    }
}

__attribute__((constructor)) static void tl_constructor(void)
{
    tl_ensure_init();
    tl_background_start();
}

__attribute__((destructor)) static void tl_destructor(void)
{
    if (atomic_load_explicit(&tl_init_state, memory_order_acquire) == 2) {
        tl_check_leak_report();
        tl_stats_at_exit();
    }
}

/* lock.h - the allocator's one lock type: a futex mutex whose word names
 * its owner.
 *
 * The word is 0 when free, else the owner's lock id (tli_self_id), with
 * TL_LOCK_WAITERS set once a thread may be sleeping on it. Taking the lock
 * and recording the owner are one compare-and-swap, and releasing both one
 * exchange: there is no instant at which the lock is held and the word does
 * not say by whom. That is what the fork handlers rely on: fork called from
 * a signal handler that interrupted malloc must tell a lock its own
 * interrupted frame holds (skip it) from one another thread holds (wait),
 * and a signal may land between any two instructions.
 *
 * Why not pthread_mutex_t: it does not say who holds it, it may not be
 * usable before libc is fully initialised, and the fork handlers need to
 * see who waits for what (tli_lock_blocked_on_me).
 */
#ifndef TL_LOCK_H
#define TL_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Lock rules that clang checks (-Wthread-safety, on wherever configure
 * finds the compiler has it): the lock type is a capability, data says
 * which lock guards it (TL_GUARDED_BY), and a function says which locks it
 * needs held (TL_REQUIRES), takes (TL_ACQUIRES) or gives up (TL_RELEASES).
 * Under gcc they are nothing. The order in which locks nest is stated once,
 * in docs/DESIGN.md ("Locks"). */
#if defined(__clang__)
#define TL_TSA(x) __attribute__((x))
#else
#define TL_TSA(x)
#endif
#define TL_CAPABILITY(name) TL_TSA(capability(name))
#define TL_GUARDED_BY(l) TL_TSA(guarded_by(l))
#define TL_PT_GUARDED_BY(l) TL_TSA(pt_guarded_by(l))
#define TL_REQUIRES(...) TL_TSA(requires_capability(__VA_ARGS__))
#define TL_ACQUIRES(...) TL_TSA(acquire_capability(__VA_ARGS__))
#define TL_RELEASES(...) TL_TSA(release_capability(__VA_ARGS__))
#define TL_TRY_ACQUIRES(...) TL_TSA(try_acquire_capability(__VA_ARGS__))
#define TL_EXCLUDES(...) TL_TSA(locks_excluded(__VA_ARGS__))
/* For code whose locking the analysis cannot follow; each use says why. */
#define TL_NO_LOCK_ANALYSIS TL_TSA(no_thread_safety_analysis)

/* Each lock has a cache line of its own: the class locks sit in an array,
 * and two threads working on neighbouring classes would otherwise bounce
 * one line between them (the central lists themselves are 64-byte
 * aligned for the same reason). The few other locks are globals. */
struct TL_CAPABILITY("mutex") tli_lock {
    _Atomic uint32_t word; /* 0 free, else owner id | TL_LOCK_WAITERS */
} __attribute__((aligned(64)));

#define TL_LOCK_INIT                                                                               \
    {                                                                                              \
        0                                                                                          \
    }
#define TL_LOCK_WAITERS 0x80000000u

/* A per-thread lock id: small, never 0, never reused (a 31-bit counter;
 * ids are handed out on a thread's first lock, so 2^31 threads would have
 * to take a lock before one came round again). Kernel thread ids would
 * be reused in a forked child while the parent's thread lives on. */
extern __thread uint32_t tli_lock_id __attribute__((tls_model("initial-exec")));
uint32_t tli_lock_id_assign(void);
static inline uint32_t tli_self_id(void)
{
    uint32_t id = tli_lock_id;
    return __builtin_expect(id != 0, 1) ? id : tli_lock_id_assign();
}

static inline void tli_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

void tli_lock_wait(struct tli_lock *l, uint32_t me);
void tli_lock_wake(struct tli_lock *l);

static inline void tli_lock_acquire(struct tli_lock *l) TL_ACQUIRES(*l) TL_NO_LOCK_ANALYSIS
{
    uint32_t me = tli_self_id(), expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->word, &expected, me, memory_order_acquire,
                                                 memory_order_relaxed))
        tli_lock_wait(l, me);
}

static inline bool tli_lock_try(struct tli_lock *l) TL_TRY_ACQUIRES(true, *l) TL_NO_LOCK_ANALYSIS
{
    uint32_t expected = 0;
    return atomic_compare_exchange_strong_explicit(&l->word, &expected, tli_self_id(),
                                                   memory_order_acquire, memory_order_relaxed);
}

static inline void tli_lock_release(struct tli_lock *l) TL_RELEASES(*l) TL_NO_LOCK_ANALYSIS
{
    if (atomic_exchange_explicit(&l->word, 0, memory_order_release) & TL_LOCK_WAITERS)
        tli_lock_wake(l);
}

/* The id of the thread holding l, 0 if free. */
static inline uint32_t tli_lock_owner(struct tli_lock *l)
{
    return atomic_load_explicit(&l->word, memory_order_relaxed) & ~TL_LOCK_WAITERS;
}

static inline bool tli_lock_held_by_me(struct tli_lock *l)
{
    return tli_lock_owner(l) == tli_self_id();
}

/* After fork, in the child: the lock is free (its holder does not exist). */
static inline void tli_lock_reset(struct tli_lock *l) TL_NO_LOCK_ANALYSIS
{
    atomic_store_explicit(&l->word, 0, memory_order_relaxed);
}

/* The lock the thread with lock id `id` is waiting for in tli_lock_wait, or
 * NULL; a hint (a slot shared by ids equal modulo its table's size says
 * nothing about the others), exact for a thread that stays blocked. */
struct tli_lock *tli_lock_waited_by(uint32_t id);

#endif

/* lock.h - the allocator's one lock type: a futex mutex that remembers its
 * owner thread.
 *
 * Why not pthread_mutex_t: the fork handlers must tell a lock held by the
 * forking thread itself (fork called from a signal handler that interrupted
 * malloc) from one held by another thread, and pthread mutexes do not say.
 * The lock never allocates and works before libc is fully initialised.
 *
 * state: 0 free, 1 held, 2 held with waiters (Drepper, "Futexes are tricky").
 */
#ifndef TL_LOCK_H
#define TL_LOCK_H

#include <stdatomic.h>
#include <stdint.h>

struct tl_lock {
    _Atomic int state;
    _Atomic(uintptr_t) owner; /* tl_self() of the holder, 0 when free */
};

#define TL_LOCK_INIT                                                                               \
    {                                                                                              \
        0, 0                                                                                       \
    }

/* A per-thread identity that costs no system call: the address of a
 * thread-local byte. */
extern __thread char tl_self_marker __attribute__((tls_model("initial-exec")));
static inline uintptr_t tl_self(void) { return (uintptr_t)&tl_self_marker; }

static inline void tl_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

void tl_lock_wait(struct tl_lock *l);
void tl_lock_wake(struct tl_lock *l);

static inline void tl_lock_acquire(struct tl_lock *l)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->state, &expected, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        tl_lock_wait(l);
    atomic_store_explicit(&l->owner, tl_self(), memory_order_relaxed);
}

static inline int tl_lock_try(struct tl_lock *l)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->state, &expected, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        return 0;
    atomic_store_explicit(&l->owner, tl_self(), memory_order_relaxed);
    return 1;
}

static inline void tl_lock_release(struct tl_lock *l)
{
    atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
    if (atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2)
        tl_lock_wake(l);
}

static inline int tl_lock_held_by_me(struct tl_lock *l)
{
    return atomic_load_explicit(&l->state, memory_order_relaxed) != 0 &&
           atomic_load_explicit(&l->owner, memory_order_relaxed) == tl_self();
}

/* After fork, in the child: the lock is free (its holder does not exist). */
static inline void tl_lock_reset(struct tl_lock *l)
{
    atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
    atomic_store_explicit(&l->state, 0, memory_order_relaxed);
}

#endif

/* fork.c - keeping the allocator usable across fork.
 *
 * prepare (before fork): every allocator lock is taken, in the one order
 * all code follows: registry -> check mode -> central lists by class ->
 * page heap -> pagemap -> metadata arena.
 *
 * fork from a signal handler. When the handler interrupted this thread
 * inside the allocator, some locks are held by the interrupted frame
 * (the lock word names the owner, lock.h). Those are skipped: taking them
 * would wait for a frame that cannot run until the handler returns. Every
 * other lock is then taken without blocking on a cycle: if its holder is
 * waiting, directly or through a chain of holders, for a lock the
 * interrupted frame holds, it will not release it before the handler
 * returns, and the lock is left alone (abandoned). Otherwise prepare waits
 * for it as usual.
 *
 * parent (after fork): the locks taken in prepare are released; skipped
 * and abandoned locks are left as they were.
 * child (after fork): the locks taken in prepare are reset to free.
 * Skipped locks stay held, to be released by the interrupted frame when
 * the handler returns: until then the child may call only
 * async-signal-safe functions, which POSIX asks anyway and glibc promises
 * no more. An abandoned lock's holder does not exist in the child, so the
 * lock is reset. Its holder was waiting to take a nested lock, and every
 * nested lock is taken where the outer structure is consistent; what the
 * holder had in hand (objects of a batch being moved) is lost to the
 * child: a leak, never a block handed out twice.
 * With no lock skipped, the caches of threads that do not exist in the
 * child are emptied into the central lists.
 *
 * Nested forks. A signal may land while this thread is itself inside
 * fork, between prepare and parent (Linux restarts a fork interrupted by a
 * signal after the handler ran), and the handler may fork again. glibc
 * runs the handlers of a single-threaded process without its own lock, so
 * the inner prepare, parent and child run inside the outer ones. Each
 * fork therefore keeps its state in its own level of a small stack. The
 * inner fork finds the locks the outer prepare took held by this thread,
 * but not by an allocator frame: the heap is consistent under them. Its
 * parent leaves them to the outer parent, and its child resets them, so
 * that the child may allocate (glibc's tst-mallocfork calls exit there).
 *
 * Forks in several threads at once. glibc (2.34 and later) drops its own
 * atfork lock while it runs each handler, so the prepare, parent and child
 * handlers of forks in different threads run at the same time. Each
 * thread keeps its levels apart (see pool): with one shared stack, a
 * parent handler popped another thread's level, the depth lost updates,
 * and 8 threads forking at once hit "more forks nested" within 2 s.
 */
#include "heapcheck.h"
#include "stack.h"

#include <sys/single_threaded.h>

#include <pthread.h>
#include <sched.h>

#define MAX_LOCKS (TL_MAX_CLASSES + 8)
/* Forks in progress at once in this thread: a fork, one in a handler that
 * interrupted it, and so on. Each nesting needs a signal that is not
 * blocked in the handler before it; four is more than any program uses. */
#define MAX_FORK_DEPTH 4
/* How a fork's prepare left a lock:
 *  TAKEN      it took it;
 *  MINE       an allocator frame of this thread, interrupted by the handler
 *             that forks, holds it: left to that frame, kept in the child;
 *  OUTER      an outer fork's prepare, interrupted by the handler, took it:
 *             the heap is consistent under it, so the child resets it, and
 *             the parent leaves it to the outer fork's parent;
 *  ABANDONED  its holder waits for a MINE lock (see take_or_abandon). */
enum fork_hold { HOLD_TAKEN, HOLD_MINE, HOLD_OUTER, HOLD_ABANDONED };
static struct tli_lock *locks[MAX_LOCKS];
static unsigned nlocks;
/* What one fork did in prepare, for its parent and child handlers. */
struct fork_level {
    enum fork_hold hold[MAX_LOCKS]; /* how prepare left each lock */
    bool skipped_any;               /* some lock was held by the interrupted frame */
    bool classified;                /* hold[] is this fork's (else stale: see prepare) */
    bool took_io_list;              /* prepare took glibc's list of streams */
};
/* The levels live in a shared pool of slots, each claimed by the thread
 * (lock id) whose fork uses it: glibc (2.34 and later) runs the fork
 * handlers without its own lock, so several threads may be between
 * prepare and parent at once, each with its own levels. A thread's levels
 * are listed, innermost last, in its own TLS (my_slots, my_depth), which
 * only it and its signal handlers change; a handler that runs between the
 * write of a slot number and the depth runs to its end and puts both
 * back. FORK_SLOTS bounds the forks in progress in the whole process;
 * more wait for a slot (see claim_slot). */
#define FORK_SLOTS 16
static struct fork_level pool[FORK_SLOTS];
static _Atomic uint32_t slot_owner[FORK_SLOTS]; /* lock id of the claimer, 0 free */
static __thread uint8_t my_slots[MAX_FORK_DEPTH] __attribute__((tls_model("initial-exec")));
static __thread volatile uint8_t my_depth __attribute__((tls_model("initial-exec")));

static void collect(void)
{
    nlocks = 0;
    locks[nlocks++] = &tli_registry_lock;
    locks[nlocks++] = &tli_check_lock;
    locks[nlocks++] = &tli_prof_lock;
    locks[nlocks++] = &tli_stack_lock;
    for (unsigned cls = 1; cls < tli_num_classes; cls++)
        locks[nlocks++] = &tli_central_locks[cls];
    locks[nlocks++] = &tli_page_heap_lock;
    locks[nlocks++] = &tli_pagemap_lock;
    locks[nlocks++] = &tli_meta_lock;
}
bool tli_lock_any_held_by_me(void)
{
    for (unsigned i = 0; i < nlocks; i++)
        if (tli_lock_held_by_me(locks[i]))
            return true;
    return false;
}

static bool held_by_interrupted_frame(const struct fork_level *f, const struct tli_lock *l)
{
    for (unsigned i = 0; i < nlocks; i++)
        if (locks[i] == l)
            return f->hold[i] == HOLD_MINE;
    return false;
}

/* Whether l's holder waits, directly or through other holders, for a lock
 * the interrupted frame holds. A chain longer than the number of locks
 * is a cycle among other threads, which is not ours to break. */
static bool holder_blocked_on_me(const struct fork_level *f, struct tli_lock *l)
{
    for (unsigned hops = 0; hops < MAX_LOCKS; hops++) {
        uint32_t owner = tli_lock_owner(l);
        if (!owner)
            return false;
        struct tli_lock *awaited = tli_lock_waited_by(owner);
        if (!awaited)
            return false;
        if (held_by_interrupted_frame(f, awaited))
            return true;
        l = awaited;
    }
    return false;
}

/* In a handler that interrupted this thread inside the allocator.
 * The fork handlers take and release the locks through the table `locks`,
 * whether held depends on the level's `hold`, which clang's lock analysis
 * cannot follow (TL_NO_LOCK_ANALYSIS); the order they are taken in is the
 * table's, which collect() builds in the order of docs/DESIGN.md. */
static enum fork_hold take_or_abandon(const struct fork_level *f,
                                      struct tli_lock *l) TL_NO_LOCK_ANALYSIS
{
    for (unsigned spins = 0;; spins++) {
        if (tli_lock_try(l))
            return HOLD_TAKEN;
        if (holder_blocked_on_me(f, l))
            return HOLD_ABANDONED;
        if (spins < 100)
            tli_cpu_relax();
        else
            sched_yield();
    }
}

/* glibc's stdio list lock (recursive; exported by libc since 2.2.5). */
extern void _IO_list_lock(void), _IO_list_unlock(void), _IO_list_resetlock(void);

/* A free slot, claimed for this thread. Waits while all are taken, unless
 * this thread holds an allocator lock (a handler that interrupted it in
 * the allocator): the slots' forks may be waiting for that lock. */
static unsigned claim_slot(uint32_t me)
{
    for (unsigned spins = 0;; spins++) {
        for (unsigned i = 0; i < FORK_SLOTS; i++) {
            uint32_t expected = 0;
            if (atomic_load_explicit(&slot_owner[i], memory_order_relaxed) == 0 &&
                atomic_compare_exchange_strong(&slot_owner[i], &expected, me))
                return i;
        }
        if (tli_lock_any_held_by_me())
            tli_fatal("fork: more forks at once than the fork handlers keep");
        if (spins < 100)
            tli_cpu_relax();
        else
            sched_yield();
    }
}

/* A new level for this fork. */
static struct fork_level *level_push(void)
{
    unsigned depth = my_depth;
    if (depth >= MAX_FORK_DEPTH)
        tli_fatal("fork: more forks nested in signal handlers than the fork handlers keep");
    unsigned slot = claim_slot(tli_self_id());
    pool[slot].classified = false;
    my_slots[depth] = (uint8_t)slot;
    atomic_signal_fence(memory_order_seq_cst);
    my_depth = (uint8_t)(depth + 1);
    atomic_signal_fence(memory_order_seq_cst);
    return &pool[slot];
}

/* This thread's innermost fork's level, released once its handler is done
 * with it. */
static struct fork_level *level_top(void)
{
    TL_ASSERT(my_depth > 0 && atomic_load_explicit(&slot_owner[my_slots[my_depth - 1]],
                                                   memory_order_relaxed) == tli_self_id());
    return &pool[my_slots[my_depth - 1]];
}

static void level_pop(void)
{
    TL_ASSERT(my_depth > 0);
    unsigned slot = my_slots[my_depth - 1];
    atomic_signal_fence(memory_order_seq_cst);
    my_depth = (uint8_t)(my_depth - 1);
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&slot_owner[slot], 0, memory_order_release);
}

/* In a child: the slots of forks in progress in the parent's other
 * threads, which do not exist here, are free. */
static void free_others_slots(void)
{
    uint32_t me = tli_self_id();
    for (unsigned i = 0; i < FORK_SLOTS; i++)
        if (atomic_load_explicit(&slot_owner[i], memory_order_relaxed) != me)
            atomic_store_explicit(&slot_owner[i], 0, memory_order_relaxed);
}

/* Whether an outer fork's prepare (a level of this thread below f) took
 * lock i. An outer level not yet classified has taken nothing, and its
 * hold[] may be an older fork's. */
static bool taken_by_outer_fork(const struct fork_level *f, unsigned i)
{
    for (unsigned d = 0; d < my_depth; d++) {
        const struct fork_level *outer = &pool[my_slots[d]];
        if (outer == f)
            break;
        if (outer->classified && outer->hold[i] == HOLD_TAKEN)
            return true;
    }
    return false;
}

/* How prepare finds lock i before it takes anything. */
static enum fork_hold hold_before(const struct fork_level *f, unsigned i)
{
    if (!tli_lock_held_by_me(locks[i]))
        return HOLD_TAKEN;
    return taken_by_outer_fork(f, i) ? HOLD_OUTER : HOLD_MINE;
}

static void prepare(void) TL_NO_LOCK_ANALYSIS
{
    struct fork_level *f = level_push();
    f->skipped_any = false;
    for (unsigned i = 0; i < nlocks; i++) {
        f->hold[i] = hold_before(f, i);
        f->skipped_any |= f->hold[i] == HOLD_MINE;
    }
    atomic_signal_fence(memory_order_seq_cst);
    f->classified = true;
    /* glibc's fork takes its list of streams after the prepare handlers
     * ran; fflush(NULL) holds that list while it waits for a stream whose
     * holder may be in malloc (getline reallocs under the stream's lock),
     * waiting for a lock prepare took. Taken first, the list is one more
     * lock in the one order: list -> ours. Not from a handler that
     * interrupted the allocator: this thread already holds ours. Not in
     * a process that never had a second thread: no other thread can hold
     * a stream there, and glibc's list lock is not async-signal-safe (a
     * fork in a handler that interrupted ours between its lock word and
     * its owner field would wait on this thread for ever). */
    f->took_io_list = !f->skipped_any && !__libc_single_threaded;
    if (f->took_io_list)
        _IO_list_lock();
    for (unsigned i = 0; i < nlocks; i++) {
        if (f->hold[i] == HOLD_MINE || f->hold[i] == HOLD_OUTER)
            continue;
        if (f->skipped_any)
            f->hold[i] = take_or_abandon(f, locks[i]);
        else
            tli_lock_acquire(locks[i]);
    }
}

static void parent(void) TL_NO_LOCK_ANALYSIS
{
    struct fork_level *f = level_top();
    for (unsigned i = nlocks; i-- > 0;)
        if (f->hold[i] == HOLD_TAKEN)
            tli_lock_release(locks[i]);
    if (f->took_io_list)
        _IO_list_unlock();
    level_pop();
}

static void child(void) TL_NO_LOCK_ANALYSIS
{
    struct fork_level *f = level_top();
    if (f->took_io_list) /* glibc resets it itself only after a threaded parent */
        _IO_list_resetlock();
    for (unsigned i = nlocks; i-- > 0;)
        if (f->hold[i] != HOLD_MINE)
            tli_lock_reset(locks[i]);
    if (!f->skipped_any)
        tli_tc_child_after_fork();
    tli_prof_child_after_fork();
    free_others_slots();
    level_pop();
}

void tli_fork_install(void)
{
    collect();
    pthread_atfork(prepare, parent, child);
}

/* The heap walk runs outside fork's handlers, so the calling thread has no
 * level pushed, and no slot of the pool may still name it: a level not
 * popped would keep its slot for good, and FORK_SLOTS of them would make
 * every later fork wait. */
void tli_fork_check(struct tli_heap_walk *w)
{
    tli_walk_expect(w, my_depth == 0, "a fork level left on the calling thread", my_depth);
    uint32_t me = tli_self_id();
    for (unsigned i = 0; i < FORK_SLOTS; i++)
        tli_walk_expect(w, atomic_load_explicit(&slot_owner[i], memory_order_relaxed) != me,
                        "a fork slot still claimed by the calling thread", i);
}

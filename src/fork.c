/* fork.c - keeping the allocator usable across fork.
 *
 * prepare (before fork): every allocator lock is taken, in the one order
 * all code follows: registry -> check mode -> central lists by class ->
 * page heap -> pagemap -> metadata arena. A lock already held by the
 * forking thread itself is skipped: that happens only when fork is called
 * from a signal handler that interrupted malloc in this thread, and taking
 * it would deadlock (glibc's tst-mallocfork2 does exactly this).
 * parent (after fork): the locks taken in prepare are released.
 * child (after fork): they are reset to free (their holder is gone or was
 * us); a lock skipped in prepare stays held, to be released by the
 * interrupted code when the handler returns. Then the caches of threads
 * that do not exist in the child are emptied into the central lists.
 */
#include "internal.h"

#include <pthread.h>

extern struct tl_lock tl_pagemap_lock, tl_meta_lock, tl_check_lock;

#define MAX_LOCKS (TL_MAX_CLASSES + 8)
static struct tl_lock *locks[MAX_LOCKS];
static bool taken[MAX_LOCKS];
static unsigned nlocks;
static bool skipped_any;

static void collect(void)
{
    nlocks = 0;
    locks[nlocks++] = &tl_registry_lock;
    locks[nlocks++] = &tl_check_lock;
    for (unsigned cls = 1; cls < tl_num_classes; cls++)
        locks[nlocks++] = &tl_central_locks[cls];
    locks[nlocks++] = &tl_page_heap_lock;
    locks[nlocks++] = &tl_pagemap_lock;
    locks[nlocks++] = &tl_meta_lock;
}

bool tl_lock_any_held_by_me(void)
{
    for (unsigned i = 0; i < nlocks; i++)
        if (tl_lock_held_by_me(locks[i]))
            return true;
    return false;
}

static void prepare(void)
{
    skipped_any = false;
    for (unsigned i = 0; i < nlocks; i++) {
        taken[i] = !tl_lock_held_by_me(locks[i]);
        if (taken[i])
            tl_lock_acquire(locks[i]);
        else
            skipped_any = true;
    }
}

static void parent(void)
{
    for (unsigned i = nlocks; i-- > 0;)
        if (taken[i])
            tl_lock_release(locks[i]);
}

static void child(void)
{
    for (unsigned i = nlocks; i-- > 0;)
        if (taken[i])
            tl_lock_reset(locks[i]);
    if (!skipped_any)
        tl_tc_child_after_fork();
}

void tl_fork_install(void)
{
    collect();
    pthread_atfork(prepare, parent, child);
}

/* t_fork.c - fork while other threads allocate, and fork from a signal
 * handler that interrupted malloc or free. Children use alarm(20), so a
 * deadlock in a child is a failure, not a hang; the parent is bounded by
 * the Criterion timeout. A child forked in a signal handler allocates only
 * after the handler has returned: that is what POSIX and glibc promise
 * (tests/t_defects.c has the forks whose children leave at once). */
#include <criterion/criterion.h>

#include "workloads.h"

Test(fork, fork_while_threads_allocate, .timeout = 180)
{
    w_reset();
    long errs = w_fork_under_load(4, 50, 1);
    cr_assert_eq(errs, 0, "%ld errors, first: %s", errs, w_first_error);
}

/* The child also allocates from the parent's surviving blocks' size
 * classes and from a new thread; then the parent keeps working. */
Test(fork, parent_heap_intact_after_forks, .timeout = 180)
{
    w_reset();
    enum { N = 2000 };
    static unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc((size_t)i + 1);
        cr_assert_not_null(p[i]);
        fill_pattern(p[i], (size_t)i + 1, (uint64_t)i);
    }
    long errs = w_fork_under_load(2, 20, 0);
    cr_assert_eq(errs, 0, "%ld errors, first: %s", errs, w_first_error);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(check_pattern(p[i], (size_t)i + 1, (uint64_t)i), SIZE_MAX,
                     "block %d changed across forks", i);
        free(p[i]);
    }
}

Test(fork, fork_in_signal_handler_500, .timeout = 400)
{
    w_reset();
    long errs = w_sigfork(500, 100);
    cr_assert_eq(errs, 0, "%ld errors, first: %s", errs, w_first_error);
}

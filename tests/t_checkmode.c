/* t_checkmode.c - check mode (MALLOC_CHECK_ or TLMALLOC_CONF=check=N) does
 * not break correct programs (issue 18, found with glibc's malloc tests):
 *  - no report at exit: the leak report is opt-in (leaks=1), since blocks
 *    still reachable at exit are not leaks;
 *  - realloc within the usable size keeps the block, as glibc does;
 *  - mallinfo counts the quarantine's blocks as free: the program freed them;
 *  - allocation stays fast enough for programs that make millions of calls.
 * Each case runs tests/diag_child in a fresh process (options are read at
 * start), linked and preloaded. */
#include "child.h"

static const char *const check_envs[] = {"MALLOC_CHECK_=1", "MALLOC_CHECK_=2", "MALLOC_CHECK_=3",
                                         "TLMALLOC_CONF=check=1", "TLMALLOC_CONF=check=3"};
#define N_ENVS (sizeof check_envs / sizeof check_envs[0])

Test(checkmode, correct_program_exits_quietly, .timeout = 120)
{
    for (int v = 0; v < CHILD_VARIANTS; v++)
        for (size_t e = 0; e < N_ENVS; e++) {
            const char *env[] = {check_envs[e], NULL};
            struct child_result r;
            char st[64];
            run_child((enum child_variant)v, env, "quiet_exit", NULL, 30, &r);
            cr_expect(exited_ok(r.status), "%s (%s): %s", check_envs[e],
                      variant_name((enum child_variant)v),
                      describe_status(r.status, st, sizeof st));
            cr_expect(has_line(r.out, "name still reachable at exit"), "%s: stdout:\n%s",
                      check_envs[e], r.out);
            cr_expect_eq(r.err_len, 0, "%s (%s): a correct program got a report:\n%s",
                         check_envs[e], variant_name((enum child_variant)v), r.err);
            child_free(&r);
        }
}

Test(checkmode, realloc_within_usable_size_keeps_block, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *env[] = {"TLMALLOC_CONF=check=3", NULL};
        struct child_result r;
        char st[64];
        run_child((enum child_variant)v, env, "realloc_in_place", NULL, 30, &r);
        const char *vn = variant_name((enum child_variant)v);
        cr_expect(exited_ok(r.status), "%s: %s\n%s", vn, describe_status(r.status, st, sizeof st),
                  r.err);
        cr_expect_eq(out_value(r.out, "grow_same", 9), 1, "%s: realloc to the usable size moved",
                     vn);
        cr_expect_eq(out_value(r.out, "shrink_same", 9), 1, "%s: shrinking realloc moved", vn);
        cr_expect_eq(out_value(r.out, "kept", 9), 1, "%s: contents lost", vn);
        cr_expect_eq(out_value(r.out, "moved_kept", 9), 1, "%s: contents lost on a move", vn);
        child_free(&r);
    }
}

Test(checkmode, mallinfo_counts_quarantine_as_free, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *env[] = {"TLMALLOC_CONF=check=3", NULL};
        struct child_result r;
        char st[64];
        run_child((enum child_variant)v, env, "mallinfo_after_free", NULL, 30, &r);
        const char *vn = variant_name((enum child_variant)v);
        cr_assert(exited_ok(r.status), "%s: %s\n%s", vn, describe_status(r.status, st, sizeof st),
                  r.err);
        unsigned long long before = out_value(r.out, "before", 0);
        unsigned long long after = out_value(r.out, "after", ~0ULL);
        cr_expect(after <= before + 64 * 1024,
                  "%s: 4 MiB allocated and freed, yet bytes in use went from %llu to %llu", vn,
                  before, after);
        child_free(&r);
    }
}

/* Before, every checked allocation walked the stack with two system calls
 * per frame: about 25 us, so glibc's too-large test ran for minutes. */
Test(checkmode, allocation_rate, .timeout = 120)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *env[] = {"TLMALLOC_CONF=check=3", NULL};
        struct child_result r;
        char st[64];
        run_child((enum child_variant)v, env, "alloc_rate", NULL, 50, &r);
        const char *vn = variant_name((enum child_variant)v);
        cr_assert(exited_ok(r.status), "%s: %s%s", vn, describe_status(r.status, st, sizeof st),
                  r.timed_out ? " (timed out)" : "");
        unsigned long long ms = out_value(r.out, "ms", ~0ULL);
        cr_expect(ms < 12000, "%s: a million checked malloc/free pairs took %llu ms", vn, ms);
        child_free(&r);
    }
}

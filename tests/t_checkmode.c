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

/* ---- call stacks (leaks=1) ------------------------------------------------ */
/* One group of the leak report: its counts and its stack's lines. */
struct leak_group {
    unsigned long long bytes, blocks;
    char stack[4096]; /* the group's lines, first frame first */
};

/* The groups of the leak report in err; returns how many (at most max). */
static size_t leak_groups(const char *err, struct leak_group *g, size_t max)
{
    char line[1024];
    size_t n = 0;
    for (unsigned k = 0; nth_line(err, k, line, sizeof line); k++) {
        unsigned long long bytes, blocks;
        if (sscanf(line, "    %llu bytes in %llu blocks lost, allocated at", &bytes, &blocks) ==
                2 &&
            n < max) {
            g[n] = (struct leak_group){bytes, blocks, ""};
            n++;
        } else if (strncmp(line, "        by ", 11) || n == 0) {
            continue;
        }
        size_t len = strlen(g[n - 1].stack);
        snprintf(g[n - 1].stack + len, sizeof g[n - 1].stack - len, "%s\n", line);
    }
    return n;
}

/* Leaks through one wrapper from two callers, in a program built -O2
 * without frame pointers: two groups, each naming its caller. Before,
 * the site was the wrapper's one return address: one group, no caller. */
Test(checkmode, leaks_grouped_by_whole_stack_without_frame_pointers, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *env[] = {"TLMALLOC_CONF=check=3,leaks=1", NULL};
        const char *vn = variant_name((enum child_variant)v);
        struct child_result r;
        char st[64];
        run_program("tests/leak_stacks", (enum child_variant)v, env, "wrapper_leaks", NULL, 30, &r);
        cr_expect(exited_ok(r.status) && has_line(r.out, "done"), "%s: %s\n%s", vn,
                  describe_status(r.status, st, sizeof st), r.err);
        cr_expect(strstr(r.err, "tlmalloc: leak report: 800 bytes in 8 blocks definitely lost"),
                  "%s: expected 8 lost blocks of 100 bytes:\n%s", vn, r.err);
        struct leak_group g[8];
        size_t n = leak_groups(r.err, g, 8);
        cr_expect_eq(n, 2, "%s: expected two groups, one per caller:\n%s", vn, r.err);
        int first = -1, second = -1;
        for (size_t i = 0; i < n; i++) {
            bool names_first = strstr(g[i].stack, "(first_leaker+") != NULL;
            bool names_second = strstr(g[i].stack, "(second_leaker+") != NULL;
            cr_expect(strstr(g[i].stack, "(leaky_wrapper+") == strstr(g[i].stack, "("),
                      "%s: a group's first frame is not the wrapper:\n%s", vn, r.err);
            cr_expect(names_first != names_second, "%s: a group names both callers or none:\n%s",
                      vn, r.err);
            if (names_first)
                first = (int)i;
            if (names_second)
                second = (int)i;
        }
        cr_expect(first >= 0 && g[first].bytes == 300 && g[first].blocks == 3,
                  "%s: first_leaker's 3 blocks of 100 bytes are not one group:\n%s", vn, r.err);
        cr_expect(second >= 0 && g[second].bytes == 500 && g[second].blocks == 5,
                  "%s: second_leaker's 5 blocks of 100 bytes are not one group:\n%s", vn, r.err);
        child_free(&r);
    }
}

/* C++ objects leaked with new from make_widget: the report names
 * make_widget and its caller, not an operator new: tlmalloc's (linked,
 * preloaded), or libstdc++'s when libstdc++ is searched first (before,
 * every such leak was one group at _Znwm+0x1c). */
Test(checkmode, cxx_leak_names_the_function_that_said_new, .timeout = 60)
{
    static const struct {
        enum child_variant v;
        const char *preload, *name;
    } runs[] = {{CHILD_LINKED, NULL, "linked"},
                {CHILD_PRELOAD, NULL, "preloaded"},
                {CHILD_LINKED, "LD_PRELOAD=libstdc++.so.6", "linked, libstdc++ preloaded"}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        const char *env[] = {"TLMALLOC_CONF=check=3,leaks=1", runs[k].preload, NULL};
        const char *vn = runs[k].name;
        struct child_result r;
        char st[64];
        run_program("tests/leak_stacks_cxx", runs[k].v, env, "new_leaks", NULL, 30, &r);
        cr_expect(exited_ok(r.status) && has_line(r.out, "done"), "%s: %s\n%s", vn,
                  describe_status(r.status, st, sizeof st), r.err);
        struct leak_group g[8];
        size_t n = leak_groups(r.err, g, 8);
        cr_expect_eq(n, 1, "%s: expected one group of two widgets:\n%s", vn, r.err);
        if (n >= 1) {
            cr_expect(g[0].bytes == 2 * 52 && g[0].blocks == 2, "%s: counts:\n%s", vn, r.err);
            cr_expect(strstr(g[0].stack, "(_Z11make_widgeti+") == strstr(g[0].stack, "("),
                      "%s: the first frame is not make_widget:\n%s", vn, r.err);
            cr_expect(strstr(g[0].stack, "(_Z12leak_widgetsv+"),
                      "%s: the stack does not reach leak_widgets:\n%s", vn, r.err);
            cr_expect(!strstr(r.err, "(_Zn"), "%s: an operator new in the stack:\n%s", vn, r.err);
        }
        child_free(&r);
    }
}

/* Other reports print the allocation's whole stack too: a double free
 * names the wrapper and, on the next line, the function that called it.
 * The backtrace of the second free is the unwinder's too: the
 * frame-pointer walk skipped free_twice (built without frame pointers)
 * and named main. */
Test(checkmode, double_free_report_gives_allocation_stack, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *env[] = {"TLMALLOC_CONF=check=3,leaks=1", NULL};
        const char *vn = variant_name((enum child_variant)v);
        struct child_result r;
        char st[64], ptr[64];
        run_program("tests/leak_stacks", (enum child_variant)v, env, "double_free", NULL, 30, &r);
        cr_expect(aborted(r.status), "%s: %s\n%s", vn, describe_status(r.status, st, sizeof st),
                  r.err);
        snprintf(ptr, sizeof ptr, "tlmalloc: double free of 0x%llx", out_value(r.out, "ptr", 0));
        cr_expect(strstr(r.err, ptr), "%s: no '%s':\n%s", vn, ptr, r.err);
        const char *here = strstr(r.err, "\n    at 0x");
        cr_expect(here && strstr(here, "(free_twice+") < strchr(here + 1, '\n'),
                  "%s: the second free's first frame is not free_twice:\n%s", vn, r.err);
        const char *at = strstr(r.err, "    allocated at 0x");
        const char *eol = at ? strchr(at, '\n') : NULL;
        cr_expect(at && eol && strstr(at, "(leaky_wrapper+") < eol,
                  "%s: the allocation site is not the wrapper:\n%s", vn, r.err);
        cr_expect(eol && !strncmp(eol + 1, "        by 0x", 13) &&
                      strstr(eol, "(free_twice+") < strchr(eol + 1, '\n'),
                  "%s: the wrapper's caller is not the next frame:\n%s", vn, r.err);
        child_free(&r);
    }
}

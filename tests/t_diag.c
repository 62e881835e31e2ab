/* t_diag.c - heap error reports and what follows them, for every error
 * class and every check level (only in test_linked).
 *
 * Each case runs tests/diag_child (linked with tlmalloc, and preloaded
 * into a plain build) in a fresh process with the environment of one
 * level, because the allocator reads it only once, at start:
 *
 *   level            message on stderr   then
 *   no environment   yes                 abort (SIGABRT)
 *   0                no                  the bad call is skipped, the program goes on
 *   1                yes                 the bad call is skipped, the program goes on
 *   2                no                  abort
 *   3                yes                 abort
 *
 * MALLOC_CHECK_=N and TLMALLOC_CONF=check=N must behave the same. The
 * helper prints the pointer it is about to misuse ("ptr 0x...") before the
 * bad call; the first stderr line must then be
 *   tlmalloc: <error> of <that pointer>[ (size class N B)] in <function>()[: <detail>]
 * followed by a backtrace whose first frame is in the program.
 */
#include "child.h"

struct level_cfg {
    const char *env; /* NULL: no environment */
    int level;       /* -1: none given (report and abort) */
};

static const struct level_cfg all_levels[] = {
    {NULL, -1},
    {"MALLOC_CHECK_=0", 0},
    {"MALLOC_CHECK_=1", 1},
    {"MALLOC_CHECK_=2", 2},
    {"MALLOC_CHECK_=3", 3},
    {"TLMALLOC_CONF=check=0", 0},
    {"TLMALLOC_CONF=check=1", 1},
    {"TLMALLOC_CONF=check=2", 2},
    {"TLMALLOC_CONF=check=3", 3},
};
#define NLEVELS (sizeof all_levels / sizeof all_levels[0])

static int level_prints(int level) { return level == -1 || (level & 1); }
static int level_aborts(int level) { return level == -1 || (level & 2); }

struct expect {
    const char *error;  /* "double free", "invalid pointer", ... */
    const char *func;   /* "free", "realloc", "malloc" */
    const char *detail; /* regex for what follows "()", e.g. ": pointer into .*"; "" for nothing */
    int abort_at_exit;  /* the error is found only at exit (no "continued" check on abort) */
    int no_backtrace_check;
    const char *out_line_if_continues; /* an extra stdout line expected when the program goes on */
};

/* Runs one scenario at one level in one build and checks message, pointer,
 * backtrace and exit status together. */
static void check_case(const char *scenario, const char *arg, const char *env_item, int level,
                       enum child_variant v, const struct expect *ex)
{
    const char *env[2] = {env_item, NULL};
    struct child_result r;
    run_child(v, env, scenario, arg, 60, &r);
    char where[512], st[64];
    snprintf(where, sizeof where, "%s%s%s (%s, %s)", scenario, arg ? " " : "", arg ? arg : "",
             env_item ? env_item : "no environment", variant_name(v));
    describe_status(r.status, st, sizeof st);

    cr_expect(!r.timed_out, "%s: timed out", where);
    cr_expect(!strstr(r.out, "error "), "%s: the helper failed: %s", where, r.out);
    unsigned long long ptr = out_value(r.out, "ptr", 0);
    cr_expect(ptr != 0, "%s: the helper printed no pointer before the bad call; stdout:\n%s", where,
              r.out);

    int prints = level_prints(level), aborts = level_aborts(level);
    char first[1024] = "", second[1024] = "";
    nth_line(r.err, 0, first, sizeof first);
    nth_line(r.err, 1, second, sizeof second);
    if (prints) {
        char re[1024];
        snprintf(
            re, sizeof re,
            "^tlmalloc: %s of (0x[0-9a-f]+)( \\(size class [0-9]+ B\\))?( \\([0-9]+ bytes\\))? "
            "in %s\\(\\)%s$",
            ex->error, ex->func, ex->detail);
        regmatch_t m[2];
        cr_expect(matches(first, re, NULL, 0),
                  "%s: first stderr line is\n    '%s'\n  expected the form\n    'tlmalloc: %s of "
                  "0x<ptr> in "
                  "%s()%s'",
                  where, first, ex->error, ex->func, ex->detail);
        /* The pointer, taken from the first "0x" of the line whatever its form. */
        if (matches(first, "^tlmalloc: [a-z ]+ (0x[0-9a-f]+)", m, 2)) {
            unsigned long long reported = strtoull(first + m[1].rm_so, NULL, 16);
            cr_expect_eq(reported, ptr, "%s: report names 0x%llx, the program misused 0x%llx",
                         where, reported, ptr);
        } else {
            cr_expect_fail("%s: no pointer in the first stderr line '%s'", where, first);
        }
        if (!ex->no_backtrace_check)
            cr_expect(!strncmp(second, "    at 0x", 9) && strstr(second, "diag_child_"),
                      "%s: the backtrace does not start in the program that made the bad call:\n%s",
                      where, r.err);
    } else {
        cr_expect_eq(r.err_len, 0, "%s: level %d must print nothing, stderr was:\n%s", where, level,
                     r.err);
    }
    if (aborts) {
        cr_expect(aborted(r.status), "%s: expected SIGABRT, got %s", where, st);
        if (!ex->abort_at_exit)
            cr_expect(!has_line(r.out, "continued"), "%s: the program went on after the bad call",
                      where);
    } else {
        cr_expect(exited_ok(r.status), "%s: expected exit 0, got %s; stderr:\n%s", where, st,
                  r.err);
        cr_expect(has_line(r.out, "continued") && has_line(r.out, "heap ok"),
                  "%s: the program did not go on and use the heap normally; stdout:\n%s", where,
                  r.out);
        if (ex->out_line_if_continues)
            cr_expect(has_line(r.out, ex->out_line_if_continues),
                      "%s: expected '%s' on stdout:\n%s", where, ex->out_line_if_continues, r.out);
    }
    child_free(&r);
}

/* Every level, both builds. */
static void check_all_levels(const char *scenario, const char *arg, const struct expect *ex)
{
    for (int v = 0; v < CHILD_VARIANTS; v++)
        for (size_t i = 0; i < NLEVELS; i++)
            check_case(scenario, arg, all_levels[i].env, all_levels[i].level, (enum child_variant)v,
                       ex);
}

/* Check mode only: levels 1..3 in both spellings, both builds. */
static void check_check_levels(const char *scenario, const char *arg, const char *conf_extra,
                               const struct expect *ex)
{
    for (int v = 0; v < CHILD_VARIANTS; v++)
        for (int level = 1; level <= 3; level++) {
            char e1[128], e2[128];
            snprintf(e1, sizeof e1, "MALLOC_CHECK_=%d", level);
            snprintf(e2, sizeof e2, "TLMALLOC_CONF=check=%d%s", level,
                     conf_extra ? conf_extra : "");
            if (!conf_extra)
                check_case(scenario, arg, e1, level, (enum child_variant)v, ex);
            check_case(scenario, arg, e2, level, (enum child_variant)v, ex);
        }
}

/* ---- always-on checks ------------------------------------------------------ */
Test(diag, double_free_small, .timeout = 120)
{
    struct expect ex = {"double free", "free", "", 0, 0, NULL};
    check_all_levels("double_free_small", NULL, &ex);
}

Test(diag, double_free_large, .timeout = 120)
{
    struct expect ex = {"double free", "free", "", 0, 0, NULL};
    check_all_levels("double_free_large", NULL, &ex);
}

Test(diag, free_of_stack_pointer, .timeout = 120)
{
    struct expect ex = {
        "invalid pointer", "free", ": pointer was not allocated by tlmalloc", 0, 0, NULL};
    check_all_levels("free_stack", NULL, &ex);
}

Test(diag, free_of_global, .timeout = 120)
{
    struct expect ex = {
        "invalid pointer", "free", ": pointer was not allocated by tlmalloc", 0, 0, NULL};
    check_all_levels("free_global", NULL, &ex);
}

Test(diag, free_of_interior_pointer_small, .timeout = 120)
{
    struct expect ex = {
        "invalid pointer", "free", ": pointer into the middle of a block", 0, 0, NULL};
    check_all_levels("free_interior_small", NULL, &ex);
}

Test(diag, free_of_interior_pointer_large, .timeout = 120)
{
    struct expect ex = {
        "invalid pointer", "free", ": pointer into the middle of a block", 0, 0, NULL};
    check_all_levels("free_interior_large", NULL, &ex);
}

/* 80 MiB: a huge block (own mapping), unmapped by the first free. */
/* Its mapping and pagemap entry are gone, but the allocator remembers the
 * last huge blocks it unmapped: a second free is a double free. */
Test(diag, free_of_unmapped_huge_block, .timeout = 120)
{
    struct expect ex = {"double free", "free", "", 0, 0, NULL};
    check_all_levels("free_unmapped_huge", NULL, &ex);
}

/* At levels 0 and 1 realloc of a bad pointer returns NULL. */
Test(diag, realloc_of_invalid_pointer, .timeout = 120)
{
    struct expect ex = {
        "invalid pointer", "realloc", ": pointer was not allocated by tlmalloc", 0, 0,
        "realloc NULL"};
    check_all_levels("realloc_invalid", NULL, &ex);
}

/* A free 48-byte block's first word (its free-list link) overwritten with
 * 0x4141414141414141, then malloc(48) twice: heap corruption, reported and
 * aborted at every error action, because the free list cannot be trusted.
 * Without check mode (no environment, level 0, or an error action set with
 * mallopt(M_CHECK_ACTION)) the block sits in a thread cache list. */
Test(diag, corrupted_free_list_link, .timeout = 120)
{
    struct expect ex = {"heap corruption", "malloc", ": free-list link overwritten.*", 0, 0, NULL};
    static const char *const envs[] = {NULL, "MALLOC_CHECK_=0", "TLMALLOC_CONF=check=0"};
    static const char *const actions[] = {"0", "1", "3"};
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++)
            /* level -1: message and abort, whatever the level says */
            check_case("corrupt_link", NULL, envs[i], -1, (enum child_variant)v, &ex);
        for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
            check_case("corrupt_link", actions[i], NULL, -1, (enum child_variant)v, &ex);
    }
}

/* The same overwrite when the block has gone back from the thread cache to
 * its span's free list (as blocks do when a cache is flushed, trimmed or
 * its thread exits): the next allocations of that size must report the
 * corruption and abort, not follow the link. */
Test(diag, corrupted_span_free_list_link, .timeout = 120)
{
    struct expect ex = {"heap corruption", "malloc", ": .*", 0, 0, NULL};
    static const char *const envs[] = {NULL, "MALLOC_CHECK_=0", "TLMALLOC_CONF=check=0"};
    for (int v = 0; v < CHILD_VARIANTS; v++)
        for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++)
            check_case("corrupt_span_link", NULL, envs[i], -1, (enum child_variant)v, &ex);
}

/* In check mode (levels 1..3) a freed block waits in the quarantine, not
 * in a free list: the same write is a write after free, found when the
 * block leaves the quarantine (here at exit, nothing else being freed),
 * and handled as the level says. */
Test(diag, corrupted_link_in_check_mode_is_write_after_free, .timeout = 120)
{
    struct expect ex = {
        "write after free", "free", ": byte 0 changed after the block was freed", 1, 1,
        "mallocs returned"};
    check_check_levels("corrupt_link", NULL, NULL, &ex);
}

/* The chain of frame pointers leads into a PROT_NONE page (the saved frame
 * pointer of the function making the bad free points there): the report's
 * backtrace must stop at that page and the report go out as usual, where
 * reading the page used to kill the program with SIGSEGV and no message. */
Test(diag, report_with_frame_chain_into_protected_page, .timeout = 120)
{
    struct expect ex = {
        "invalid pointer", "free", ": pointer was not allocated by tlmalloc", 0, 0, NULL};
    check_all_levels("bad_frame_chain", NULL, &ex);
}

/* A SIGABRT handler that makes a bad free: the report's abort runs it, so
 * a second report begins inside the first. It must say so in one line and
 * end the process with SIGABRT, not report again and again until the stack
 * overflows. (Outside check mode: check mode's lock, held through its
 * report, is another matter.) */
Test(diag, nested_report_aborts_at_once, .timeout = 120)
{
    static const char *const envs[] = {NULL, "MALLOC_CHECK_=0"};
    static const char nested[] = "tlmalloc: another error while reporting one; aborting";
    for (int v = 0; v < CHILD_VARIANTS; v++)
        for (size_t e = 0; e < sizeof envs / sizeof envs[0]; e++) {
            const char *env[] = {envs[e], NULL};
            const char *vn = variant_name((enum child_variant)v);
            const char *en = envs[e] ? envs[e] : "no environment";
            struct child_result r;
            /* MALLOC_CHECK_=0 with mallopt's action 3: print and abort, outside check mode */
            run_child((enum child_variant)v, env, "nested_report", envs[e] ? "3" : NULL, 60, &r);
            char st[64], first[1024] = "";
            describe_status(r.status, st, sizeof st);
            nth_line(r.err, 0, first, sizeof first);
            cr_expect(!r.timed_out, "nested_report (%s, %s): timed out", en, vn);
            cr_expect(aborted(r.status), "nested_report (%s, %s): expected SIGABRT, got %s", en, vn,
                      st);
            cr_expect(!strncmp(first, "tlmalloc: invalid pointer of 0x", 31),
                      "nested_report (%s, %s): the first report is missing:\n%s", en, vn, r.err);
            unsigned reports = 0;
            for (const char *s = r.err; (s = strstr(s, "tlmalloc: invalid pointer")); s++)
                reports++;
            cr_expect_eq(reports, 1, "nested_report (%s, %s): %u reports, expected one", en, vn,
                         reports);
            cr_expect(has_line(r.err, nested), "nested_report (%s, %s): no line '%s':\n%.2000s", en,
                      vn, nested, r.err);
            child_free(&r);
        }
}

/* Reports of errors check mode finds under its own lock (a double free;
 * print and go on), 1000 of them, while another thread loads and unloads
 * libm. The loader allocates under its lock, so looking symbols up from
 * under ours deadlocked with it (on the old code the helper's 30 s alarm
 * fired nearly every run). Every report must come out; check mode now
 * writes it after dropping its lock, so a frame may be named by symbol
 * (dladdr) or, under a lock, from /proc/self/maps. */
Test(diag, report_under_lock_during_dlopen_finishes, .timeout = 180)
{
    static const char *const envs[] = {"MALLOC_CHECK_=1", "TLMALLOC_CONF=check=1"};
    for (int v = 0; v < CHILD_VARIANTS; v++)
        for (size_t e = 0; e < sizeof envs / sizeof envs[0]; e++) {
            const char *env[] = {envs[e], NULL};
            const char *vn = variant_name((enum child_variant)v);
            struct child_result r;
            run_child((enum child_variant)v, env, "report_during_dlopen", NULL, 60, &r);
            char st[64], second[1024] = "";
            describe_status(r.status, st, sizeof st);
            nth_line(r.err, 1, second, sizeof second);
            cr_expect(!r.timed_out, "report_during_dlopen (%s, %s): timed out", envs[e], vn);
            cr_expect(exited_ok(r.status),
                      "report_during_dlopen (%s, %s): %s (signal 14: the helper's alarm, a hang)",
                      envs[e], vn, st);
            cr_expect(has_line(r.out, "reports 1000") && has_line(r.out, "heap ok"),
                      "report_during_dlopen (%s, %s): the helper did not finish:\n%s", envs[e], vn,
                      r.out);
            unsigned reports = 0;
            for (const char *s = r.err; (s = strstr(s, "tlmalloc: double free of 0x")); s++)
                reports++;
            cr_expect_eq(reports, 1000, "report_during_dlopen (%s, %s): %u reports, expected 1000",
                         envs[e], vn, reports);
            cr_expect(
                matches(second,
                        "^    at 0x[0-9a-f]+ diag_child_[a-z]+"
                        "(\\+0x[0-9a-f]+| \\([a-z_]+\\+0x[0-9a-f]+\\))$",
                        NULL, 0),
                "report_during_dlopen (%s, %s): the first frame is '%s', expected "
                "'    at 0x<pc> diag_child_<build>+0x<offset>' or '... (<function>+0x<offset>)'",
                envs[e], vn, second);
            child_free(&r);
        }
}

/* ---- check mode ------------------------------------------------------------ */
static const char *const overrun_sizes[] = {"1", "40", "4096", "200000"};

Test(diag_check, overrun_found_by_free, .timeout = 120)
{
    for (size_t i = 0; i < sizeof overrun_sizes / sizeof overrun_sizes[0]; i++) {
        /* The size is in "(N bytes)" before "in free()" (t_heaperrors.c checks it). */
        struct expect ex = {"buffer overrun", "free", ": written past its end", 0, 0, NULL};
        check_check_levels("overrun_free", overrun_sizes[i], NULL, &ex);
    }
}

Test(diag_check, overrun_found_by_realloc, .timeout = 120)
{
    for (size_t i = 0; i < sizeof overrun_sizes / sizeof overrun_sizes[0]; i++) {
        struct expect ex = {"buffer overrun", "realloc", ": written past its end", 0, 0,
                            "realloc NULL"};
        check_check_levels("overrun_realloc", overrun_sizes[i], NULL, &ex);
    }
}

/* The victim is freed, written to, then 20 MiB of other blocks are freed:
 * more than the default 16 MiB quarantine, so it is verified and released. */
Test(diag_check, write_after_free_default_quarantine, .timeout = 120)
{
    struct expect ex = {
        "write after free", "free", ": byte 3 changed after the block was freed", 0, 0, NULL};
    check_check_levels("write_after_free", NULL, NULL, &ex);
}

/* quarantine=64K: the first 1 MiB block freed after the victim pushes it out. */
Test(diag_check, write_after_free_small_quarantine, .timeout = 120)
{
    struct expect ex = {
        "write after free", "free", ": byte 3 changed after the block was freed", 0, 0, NULL};
    check_check_levels("write_after_free", NULL, ",quarantine=64K", &ex);
}

/* In check mode a fresh block reads as 0xbe bytes and calloc's as zero,
 * first use or reuse; and a program without errors prints nothing. */
Test(diag_check, fill_patterns, .timeout = 60)
{
    static const char *const envs[] = {"MALLOC_CHECK_=1", "MALLOC_CHECK_=3",
                                       "TLMALLOC_CONF=check=1"};
    static const char *const sizes[] = {"64", "1", "100", "5000", "100000"};
    for (int v = 0; v < CHILD_VARIANTS; v++)
        for (size_t e = 0; e < sizeof envs / sizeof envs[0]; e++) {
            const char *env[] = {envs[e], NULL};
            struct child_result r;
            run_child((enum child_variant)v, env, "fill", NULL, 30, &r);
            char st[64];
            cr_expect(exited_ok(r.status), "fill (%s, %s): %s", envs[e],
                      variant_name((enum child_variant)v),
                      describe_status(r.status, st, sizeof st));
            cr_expect_eq(r.err_len, 0, "fill (%s, %s): stderr:\n%s", envs[e],
                         variant_name((enum child_variant)v), r.err);
            for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
                char line[64];
                snprintf(line, sizeof line, "malloc %s -1", sizes[i]);
                cr_expect(has_line(r.out, line),
                          "fill (%s, %s): malloc(%s) is not all 0xbe (line 'malloc SIZE <first bad "
                          "offset>'):\n%s",
                          envs[e], variant_name((enum child_variant)v), sizes[i], r.out);
                snprintf(line, sizeof line, "calloc %s -1", sizes[i]);
                cr_expect(has_line(r.out, line),
                          "fill (%s, %s): calloc(%s, 1) is not all zero:\n%s", envs[e],
                          variant_name((enum child_variant)v), sizes[i], r.out);
            }
            child_free(&r);
        }
}

/* Parses "    <bytes> bytes in <n> blocks allocated at 0x... <object> (<fn>+0x..)". */
static int site_line(const char *line, unsigned long long *bytes, unsigned long long *blocks)
{
    return sscanf(line, "    %llu bytes in %llu blocks lost, allocated at 0x", bytes, blocks) == 2;
}

/* 3 blocks of 1000 bytes leaked from leak_three(), one of 700 from
 * leak_one(), their pointers dropped: with leaks=1 the report at exit
 * names both sites as definitely lost, the larger
 * first, with byte and block counts that match. Leaks are grouped by whole
 * call stack: leak_three's calls form one group, or one per call site in
 * main when the compiler unrolls the loop; together they are its 3000
 * bytes. The report is opt-in:
 * MALLOC_CHECK_ and check= alone print none. Leaks never change the exit
 * status. */
Test(diag_check, leak_report_at_exit, .timeout = 60)
{
    static const char *const reporting[] = {
        "TLMALLOC_CONF=leaks=1", "TLMALLOC_CONF=check=1,leaks=1", "TLMALLOC_CONF=check=2,leaks=1",
        "TLMALLOC_CONF=check=3,leaks=yes"};
    static const char *const silent[] = {NULL,
                                         "MALLOC_CHECK_=0",
                                         "MALLOC_CHECK_=1",
                                         "MALLOC_CHECK_=2",
                                         "MALLOC_CHECK_=3",
                                         "TLMALLOC_CONF=check=1",
                                         "TLMALLOC_CONF=check=3",
                                         "TLMALLOC_CONF=check=3,leaks=0"};
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *vn = variant_name((enum child_variant)v);
        for (size_t e = 0; e < sizeof reporting / sizeof reporting[0]; e++) {
            const char *env[] = {reporting[e], NULL};
            struct child_result r;
            run_child((enum child_variant)v, env, "leak", NULL, 30, &r);
            char st[64], line[1024];
            cr_expect(exited_ok(r.status), "leak (%s, %s): %s", reporting[e], vn,
                      describe_status(r.status, st, sizeof st));
            unsigned long long total = 0, nblocks = 0, sum_bytes = 0, sum_blocks = 0;
            int header = 0, three_at = -1, one_at = -1, nsites = 0;
            unsigned long long three_bytes = 0, three_blocks = 0;
            for (unsigned k = 0; nth_line(r.err, k, line, sizeof line); k++) {
                unsigned long long b, n;
                if (sscanf(line, "tlmalloc: leak report: %llu bytes in %llu blocks definitely lost",
                           &total, &nblocks) == 2) {
                    header = 1;
                } else if (header && site_line(line, &b, &n)) {
                    sum_bytes += b;
                    sum_blocks += n;
                    if (strstr(line, "(leak_three+")) {
                        three_bytes += b;
                        three_blocks += n;
                        if (three_at < 0)
                            three_at = nsites;
                    }
                    if (strstr(line, "(leak_one+")) {
                        cr_expect(b == 700 && n == 1, "leak (%s, %s): leak_one's line: '%s'",
                                  reporting[e], vn, line);
                        one_at = nsites;
                    }
                    nsites++;
                }
            }
            cr_expect(three_bytes == 3000 && three_blocks == 3,
                      "leak (%s, %s): leak_three's groups add up to %llu bytes in %llu blocks:\n%s",
                      reporting[e], vn, three_bytes, three_blocks, r.err);
            cr_expect(header, "leak (%s, %s): no 'tlmalloc: leak report:' line; stderr:\n%s",
                      reporting[e], vn, r.err);
            cr_expect(
                three_at >= 0 && one_at >= 0,
                "leak (%s, %s): the report does not name both sites (leak_three, leak_one):\n%s",
                reporting[e], vn, r.err);
            cr_expect(three_at < one_at, "leak (%s, %s): the larger site is not first:\n%s",
                      reporting[e], vn, r.err);
            cr_expect(
                total == sum_bytes && nblocks == sum_blocks,
                "leak (%s, %s): header says %llu bytes in %llu blocks, the sites add up to %llu in "
                "%llu:\n%s",
                reporting[e], vn, total, nblocks, sum_bytes, sum_blocks, r.err);
            cr_expect(
                total == 3700 && nblocks == 4,
                "leak (%s, %s): 3700 bytes in 4 blocks were leaked, the report says %llu in %llu",
                reporting[e], vn, total, nblocks);
            child_free(&r);
        }
        for (size_t e = 0; e < sizeof silent / sizeof silent[0]; e++) {
            const char *env[] = {silent[e], NULL};
            struct child_result r;
            run_child((enum child_variant)v, env, "leak", NULL, 30, &r);
            char st[64];
            cr_expect(exited_ok(r.status), "leak (%s, %s): %s",
                      silent[e] ? silent[e] : "no environment", vn,
                      describe_status(r.status, st, sizeof st));
            cr_expect_eq(r.err_len, 0, "leak (%s, %s): expected no report, stderr:\n%s",
                         silent[e] ? silent[e] : "no environment", vn, r.err);
            child_free(&r);
        }
    }
}

/* ---- huge blocks --------------------------------------------------------------- */
/* realloc moves a huge block with mremap, which frees the old range before
 * realloc has updated the pagemap. Another thread's new huge block can be
 * put there in between; it is valid, and its free must succeed, not be
 * reported as "not allocated by tlmalloc". The helper makes the race happen
 * every round: its own mremap (which tlmalloc calls, the program's symbols
 * being exported) allocates that block as soon as a move has returned.
 * "hits" counts the rounds where the kernel put it at the old address. */
Test(diag, huge_realloc_move_leaves_new_block_at_old_address_valid, .timeout = 120)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *vn = variant_name((enum child_variant)v);
        struct child_result r;
        run_child((enum child_variant)v, NULL, "huge_realloc_moved", NULL, 60, &r);
        char st[64];
        describe_status(r.status, st, sizeof st);
        cr_expect(!r.timed_out, "huge_realloc_moved (%s): timed out", vn);
        cr_expect(exited_ok(r.status), "huge_realloc_moved (%s): %s; stderr:\n%s", vn, st, r.err);
        cr_expect_eq(r.err_len, 0, "huge_realloc_moved (%s): stderr:\n%s", vn, r.err);
        cr_expect(has_line(r.out, "mallopt 1"), "huge_realloc_moved (%s): mallopt failed:\n%s", vn,
                  r.out);
        cr_expect(out_value(r.out, "hits", 0) > 0,
                  "huge_realloc_moved (%s): no block was ever placed at a moved block's old "
                  "address, the race was not exercised:\n%s",
                  vn, r.out);
        child_free(&r);
    }
}

/* ---- fork in a handler that interrupted fork ----------------------------
 * glibc's tst-mallocfork2: a single-threaded program forks in a loop while
 * a timer's handler forks too, so the handler's fork runs between the
 * outer fork's prepare and parent handlers. The handlers kept their state
 * in one static record: the inner fork overwrote it, the outer parent then
 * released none of the locks its prepare took, and the next malloc that
 * needed one waited for ever on its own thread. It runs here, in a fresh
 * process, because only a process that never had a second thread gets
 * glibc's fork without glibc's own lock (which a fork nested in a handler
 * would wait for). */
static void check_fork_nested(const char *arg)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *vn = variant_name((enum child_variant)v);
        struct child_result r;
        run_child((enum child_variant)v, NULL, "fork_nested", arg, 60, &r);
        char st[64];
        describe_status(r.status, st, sizeof st);
        cr_expect(!r.timed_out, "fork_nested %s (%s): hung after %s", arg ? arg : "", vn, r.out);
        cr_expect(exited_ok(r.status), "fork_nested %s (%s): %s; stdout:\n%s\nstderr:\n%s",
                  arg ? arg : "", vn, st, r.out, r.err);
        cr_expect_geq(out_value(r.out, "handler_forks", 0), 20,
                      "fork_nested %s (%s): too few signals to have tested anything:\n%s",
                      arg ? arg : "", vn, r.out);
        child_free(&r);
    }
}

Test(diag, fork_in_handler_during_fork, .timeout = 240) { check_fork_nested(NULL); }

/* The same, with the handler's child allocating: the locks the outer
 * fork's prepare took are held by this thread but by no allocator frame,
 * so the inner fork's child resets them. It kept them, as it keeps those
 * of an interrupted malloc, and its first malloc that needed one waited
 * for ever (glibc's tst-mallocfork in check mode, whose child's exit
 * takes a lock). */
Test(diag, fork_in_handler_during_fork_child_allocates, .timeout = 240)
{
    check_fork_nested("child_allocates");
}

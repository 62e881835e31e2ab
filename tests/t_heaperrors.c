/* t_heaperrors.c - the heap-error suite: every heap error a program can
 * make (overrun, underrun, use after free, double free, invalid free,
 * leak, uninitialised read) and the classic exploitation primitives, each
 * run by tests/heap_errors in a fresh process, in default mode and in
 * check mode, linked and preloaded.
 *
 * What it asserts:
 *  - default mode: no exploitation attempt gets the address it chose or a
 *    block overlapping a live one, and nothing crashes inside the
 *    allocator (a report and an abort are fine; a SIGSEGV is not);
 *  - check mode: each error is reported with the right words and the
 *    pointer, and correct programs (C with threads and stdio, C++ with
 *    threads, iostream and exceptions) get no report at all, leak report
 *    on;
 *  - heaperrors::table writes what each mode really did, scenario by
 *    scenario, to tests/heap-errors-table.md in the build directory:
 *    docs/DESIGN.md's table is that file (tools/heap-errors-table.sh
 *    puts it there).
 */
#include "child.h"

#define PROG "tests/heap_errors"
static const char *const default_env[] = {NULL};
static const char *const check_env[] = {"TLMALLOC_CONF=check=3,leaks=1", NULL};

/* The outcome of one run, in words, for the table and the messages. */
static void outcome(const struct child_result *r, bool correct_program, char *buf, size_t cap)
{
    char first[512] = "";
    nth_line(r->err, 0, first, sizeof first);
    const char *won = strstr(r->out, "won ");
    if (r->timed_out) {
        snprintf(buf, cap, "timed out");
    } else if (WIFSIGNALED(r->status) && WTERMSIG(r->status) != SIGABRT) {
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(r->status),
                 strstr(r->out, "ptr ") ? "after the bad access began" : "before it");
    } else if (won) {
        snprintf(buf, cap, "**EXPLOITED** (%.*s)", (int)strcspn(won + 4, " \n"), won + 4);
    } else if (!strncmp(first, "tlmalloc: leak report: ", 23)) {
        snprintf(buf, cap, "reported: leak (definitely lost), at exit");
    } else if (!strncmp(first, "tlmalloc: ", 10)) {
        const char *kind = first + 10, *of = strstr(kind, " of ");
        const char *when = strstr(first, "found at exit") ? ", at exit" : "";
        snprintf(buf, cap, "reported: %.*s%s", of ? (int)(of - kind) : 40, kind, when);
    } else if (strstr(r->out, "read poisoned")) {
        snprintf(buf, cap, "poisoned read (fill pattern), no report");
    } else if (strstr(r->out, "safe")) {
        snprintf(buf, cap, "not detected; the attack gained nothing");
    } else if (correct_program) {
        snprintf(buf, cap, "no report (correct program)");
    } else {
        snprintf(buf, cap, "not detected");
    }
}

static void run(const char *scenario, const char *const *env, enum child_variant v,
                struct child_result *r)
{
    run_program(PROG, v, env, scenario, NULL, 60, r);
    cr_assert(!strstr(r->out, "error "), "%s (%s): the scenario failed: %s", scenario,
              variant_name(v), r->out);
}

/* The pointer the scenario printed, as the reports print it. */
static void scenario_ptr_text(const struct child_result *r, char *buf, size_t cap)
{
    unsigned long long p = out_value(r->out, "ptr", 0);
    cr_assert(p, "no pointer printed: %s", r->out);
    snprintf(buf, cap, "0x%llx", p);
}

/* ---- default mode: no win, no crash --------------------------------------- */
static const char *const attacks[] = {
    "tcache_poisoning",       "fastbin_dup",         "double_free_wiped_marker",
    "house_of_spirit_stack",  "house_of_spirit_bss", "header_size_overwrite",
    "partial_link_overwrite", "double_free",         "invalid_free_interior",
    "invalid_free_stack",
};
#define N_ATTACKS (sizeof attacks / sizeof attacks[0])

Test(heaperrors, default_mode_gives_no_chosen_or_overlapping_block, .timeout = 300)
{
    for (int v = 0; v < CHILD_VARIANTS; v++)
        for (size_t i = 0; i < N_ATTACKS; i++) {
            struct child_result r;
            char what[128], st[64];
            run(attacks[i], default_env, (enum child_variant)v, &r);
            outcome(&r, false, what, sizeof what);
            describe_status(r.status, st, sizeof st);
            const char *name = variant_name((enum child_variant)v);
            cr_expect(!r.timed_out && (WIFEXITED(r.status) || aborted(r.status)),
                      "%s (%s): %s, a crash inside the allocator?\n%s", attacks[i], name, st,
                      r.err);
            cr_expect(!strstr(r.out, "won "), "%s (%s): %s\nstdout:\n%s", attacks[i], name, what,
                      r.out);
            child_free(&r);
        }
}

/* ---- check mode: each error reported, with the right words ---------------- */
struct expected_report {
    const char *scenario;
    const char *words; /* "buffer overrun of 0x<ptr>": words, then the pointer */
    const char *also;  /* another string the report must hold, or NULL */
};

static const struct expected_report check_reports[] = {
    {"overrun", "buffer overrun", "(24 bytes) in free(): written past its end"},
    {"overrun_never_freed", "buffer overrun", "(24 bytes) found at exit"},
    {"underrun", "buffer underrun", "(24 bytes) in free(): written before its start"},
    {"underrun_then_realloc", "buffer underrun", "(24 bytes) in realloc(): written before"},
    {"underrun_aligned", "buffer underrun", "(100 bytes) in free(): written before its start"},
    {"underrun_never_freed", "buffer underrun", "(40 bytes) found at exit"},
    {"overrun_huge_never_freed", "buffer overrun", "(2097152 bytes) found at exit"},
    {"use_after_free_write", "write after free", "    freed at "},
    {"use_after_free_write_at_exit", "write after free", "(64 bytes) found at exit"},
    {"double_free", "double free", "    freed at "},
    {"invalid_free_interior", "invalid pointer", NULL},
    {"invalid_free_stack", "invalid pointer", NULL},
    {"house_of_spirit_stack", "invalid pointer", NULL},
    {"house_of_spirit_bss", "invalid pointer", NULL},
    {"fastbin_dup", "double free", NULL},
    {"double_free_wiped_marker", "double free", NULL},
    {"header_size_overwrite", "buffer underrun", NULL},
    {"tcache_poisoning", "write after free", NULL},
    {"partial_link_overwrite", "write after free", NULL},
};

Test(heaperrors, check_mode_reports_each_error, .timeout = 300)
{
    for (int v = 0; v < CHILD_VARIANTS; v++)
        for (size_t i = 0; i < sizeof check_reports / sizeof check_reports[0]; i++) {
            const struct expected_report *e = &check_reports[i];
            struct child_result r;
            char ptr[32], want[128], st[64];
            run(e->scenario, check_env, (enum child_variant)v, &r);
            const char *name = variant_name((enum child_variant)v);
            scenario_ptr_text(&r, ptr, sizeof ptr);
            snprintf(want, sizeof want, "tlmalloc: %s of %s", e->words, ptr);
            cr_expect(aborted(r.status), "%s (%s): %s, expected an abort\n%s", e->scenario, name,
                      describe_status(r.status, st, sizeof st), r.err);
            cr_expect(!strncmp(r.err, want, strlen(want)), "%s (%s): expected '%s...', got:\n%s",
                      e->scenario, name, want, r.err);
            if (e->also)
                cr_expect(strstr(r.err, e->also), "%s (%s): no '%s' in:\n%s", e->scenario, name,
                          e->also, r.err);
            cr_expect(!strstr(r.out, "won "), "%s (%s): check mode let it through: %s", e->scenario,
                      name, r.out);
            child_free(&r);
        }
}

/* A block never freed and overrun: found at exit, with its real size and
 * site, before any leak line, and no size read from the smashed trailer. */
Test(heaperrors, overrun_of_live_block_at_exit_before_leak_lines, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct child_result r;
        run("overrun_never_freed", check_env, (enum child_variant)v, &r);
        const char *name = variant_name((enum child_variant)v);
        char second[512] = "";
        nth_line(r.err, 1, second, sizeof second);
        cr_expect(!strncmp(second, "    allocated at 0x", 19) && strstr(second, "heap_errors"),
                  "%s: the allocation site is not the program's:\n%s", name, r.err);
        cr_expect(!strstr(r.err, "leak report"), "%s: a leak line for a global block:\n%s", name,
                  r.err);
        cr_expect(!strstr(r.err, "5858"), "%s: the overrun bytes read as a site or size:\n%s", name,
                  r.err);
        child_free(&r);
    }
}

/* Use after free found at exit names the allocation and the free (with
 * leaks=1 the allocation's whole stack: further frames follow it). */
Test(heaperrors, write_after_free_at_exit_names_both_sites, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct child_result r;
        run("use_after_free_write_at_exit", check_env, (enum child_variant)v, &r);
        const char *name = variant_name((enum child_variant)v);
        char l1[512] = "", l2[512] = "";
        nth_line(r.err, 1, l1, sizeof l1);
        unsigned k = 2;
        while (nth_line(r.err, k, l2, sizeof l2) && !strncmp(l2, "        by ", 11))
            k++;
        cr_expect(strstr(r.err, "found at exit: byte 20 changed after the block was freed"),
                  "%s: %s", name, r.err);
        cr_expect(!strstr(r.err, "in free()"), "%s: labelled as found in free():\n%s", name, r.err);
        cr_expect(!strncmp(l1, "    allocated at 0x", 19) && strstr(l1, "heap_errors"), "%s: %s",
                  name, r.err);
        cr_expect(!strncmp(l2, "    freed at 0x", 15) && strstr(l2, "heap_errors"), "%s: %s", name,
                  r.err);
        child_free(&r);
    }
}

/* Reads of freed and of fresh memory see check mode's fill patterns. */
Test(heaperrors, check_mode_poisons_reads, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct child_result r;
        run("use_after_free_read", check_env, (enum child_variant)v, &r);
        cr_expect(strstr(r.out, "read poisoned 0xdfdfdfdfdfdfdfdf"), "%s", r.out);
        child_free(&r);
        run("uninitialised_read", check_env, (enum child_variant)v, &r);
        cr_expect(strstr(r.out, "read poisoned 0xbebebebebebebebe"), "%s", r.out);
        child_free(&r);
    }
}

/* ---- leaks: only what nothing points to ------------------------------------ */
Test(heaperrors, leak_of_dropped_pointer_is_reported, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct child_result r;
        char st[64];
        run("leak", check_env, (enum child_variant)v, &r);
        const char *name = variant_name((enum child_variant)v);
        cr_expect(exited_ok(r.status), "%s: %s", name, describe_status(r.status, st, sizeof st));
        cr_expect(matches(r.err,
                          "^tlmalloc: leak report: 100 bytes in 1 blocks definitely lost[^\n]*\n"
                          "    100 bytes in 1 blocks lost, allocated at 0x[0-9a-f]+ "
                          "[^\n]*heap_errors[^\n]*\n"
                          "(        by 0x[0-9a-f]+ [^\n]*\n)*$",
                          NULL, 0),
                  "%s: expected one lost block of 100 bytes, got:\n%s", name, r.err);
        child_free(&r);
    }
}

static void expect_quiet(const char *prog, const char *scenario, const char *const *env)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct child_result r;
        char st[64];
        run_program(prog, (enum child_variant)v, env, scenario, NULL, 120, &r);
        const char *name = variant_name((enum child_variant)v);
        cr_expect(exited_ok(r.status), "%s %s (%s, %s): %s\n%s", prog, scenario, env[0], name,
                  describe_status(r.status, st, sizeof st), r.err);
        cr_expect(has_line(r.out, "done"), "%s %s (%s): did not finish: %s", prog, scenario, name,
                  r.out);
        cr_expect_eq(r.err_len, 0, "%s %s (%s, %s): a correct program got a report:\n%s", prog,
                     scenario, env[0], name, r.err);
        child_free(&r);
    }
}

Test(heaperrors, block_kept_in_global_is_not_lost, .timeout = 60)
{
    expect_quiet(PROG, "still_reachable", check_env);
}

/* Check mode keeps every alignment, huge blocks included, and a huge
 * block kept to the end is verified at exit without a report. */
Test(heaperrors, correct_aligned_program_gets_no_report, .timeout = 60)
{
    expect_quiet(PROG, "correct_aligned", check_env);
}

/* glibc's DTVs and stdio buffers, four threads: no report. */
Test(heaperrors, correct_threaded_c_program_gets_no_report, .timeout = 120)
{
    static const char *const envs[][2] = {{"TLMALLOC_CONF=check=3,leaks=1", NULL},
                                          {"MALLOC_CHECK_=3", NULL},
                                          {"TLMALLOC_CONF=check=1,leaks=1", NULL}};
    for (size_t e = 0; e < sizeof envs / sizeof envs[0]; e++)
        expect_quiet(PROG, "correct_threads", envs[e]);
}

/* iostream, exceptions (libstdc++'s emergency pool), threads: no report. */
Test(heaperrors, correct_cxx_program_gets_no_report, .timeout = 120)
{
    expect_quiet("tests/heap_errors_cxx", "correct_cxx", check_env);
}

/* ---- the table ---------------------------------------------------------------- */
Test(heaperrors, table, .timeout = 600)
{
    char path[4096];
    cr_assert(find_in_build("tests", X_OK, path, sizeof path - 32));
    strcat(path, "/heap-errors-table.md");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fprintf(f, "| scenario | default mode | check mode (`check=3,leaks=1`) |\n|---|---|---|\n");
    struct child_result list;
    run_program(PROG, CHILD_LINKED, default_env, "list", NULL, 30, &list);
    /* The scenario list, and the C++ program last. */
    static char names[8192];
    cr_assert_lt(snprintf(names, sizeof names, "%scorrect_cxx\n", list.out), (int)sizeof names);
    for (char *name = strtok(names, "\n"); name; name = strtok(NULL, "\n")) {
        char cell[2][CHILD_VARIANTS][128];
        const char *const *envs[2] = {default_env, check_env};
        bool cxx = !strcmp(name, "correct_cxx");
        bool correct = cxx || !strncmp(name, "correct_", 8) || !strcmp(name, "still_reachable");
        for (int m = 0; m < 2; m++)
            for (int v = 0; v < CHILD_VARIANTS; v++) {
                struct child_result r;
                run_program(cxx ? "tests/heap_errors_cxx" : PROG, (enum child_variant)v, envs[m],
                            name, NULL, 120, &r);
                outcome(&r, correct, cell[m][v], sizeof cell[m][v]);
                child_free(&r);
            }
        fprintf(f, "| %s |", name);
        for (int m = 0; m < 2; m++) {
            /* One cell when both builds agree, else both, named. */
            if (!strcmp(cell[m][0], cell[m][1]))
                fprintf(f, " %s |", cell[m][0]);
            else
                fprintf(f, " linked: %s; preloaded: %s |", cell[m][0], cell[m][1]);
        }
        fprintf(f, "\n");
    }
    child_free(&list);
    cr_assert_eq(fclose(f), 0);
}

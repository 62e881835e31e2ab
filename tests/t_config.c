/* t_config.c - TLMALLOC_CONF, MALLOC_CHECK_ and mallopt (only in
 * test_linked).
 *
 * The options are read once, at start, so each case runs tests/diag_child
 * in a fresh process (see child.h) with verbose=1, which prints the options
 * in force as one line:
 *   tlmalloc: options: huge_threshold=N thread_cache_budget=N ... stats=N
 * A good value is accepted silently and shows there; a bad one prints
 *   tlmalloc: TLMALLOC_CONF: bad value in '<item>' ignored, default kept
 * and an unknown key
 *   tlmalloc: TLMALLOC_CONF: unknown option '<item>' ignored, default kept
 * and the default stays in force.
 */
#include "child.h"
#include "common.h"

/* The options line's fields, in its order, with their defaults. */
enum { HUGE, BUDGET, TCMAX, DECAY, BACKGROUND, CHECK, ACTION, QUARANTINE, STATS, NOPT };
static const char *const opt_names[NOPT] = {
    "huge_threshold", "thread_cache_budget", "thread_cache_max", "decay_ms", "background_thread",
    "check",          "error_action",        "quarantine",       "stats",
};
static const unsigned long long opt_defaults[NOPT] = {
    256ull << 20, 32ull << 20, 4ull << 20, 500, 2, 0, 3, 16ull << 20, 0,
};
#define BACKGROUND_AUTO 2 /* shown as background_thread=auto */

static void options_line(const unsigned long long *v, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "tlmalloc: options:");
    for (int i = 0; i < NOPT && n < cap; i++)
        n += i == BACKGROUND && v[i] == BACKGROUND_AUTO
                 ? (size_t)snprintf(buf + n, cap - n, " %s=auto", opt_names[i])
                 : (size_t)snprintf(buf + n, cap - n, " %s=%llu", opt_names[i], v[i]);
}

/* Runs the noop scenario with TLMALLOC_CONF=conf (and other, if not NULL)
 * in both builds; stderr must be exactly expect_err. */
static void check_conf(const char *conf, const char *other, const char *expect_err)
{
    char item[1024];
    snprintf(item, sizeof item, "TLMALLOC_CONF=%s", conf);
    const char *env[] = {item, other, NULL};
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct child_result r;
        run_child((enum child_variant)v, env, "noop", NULL, 30, &r);
        char st[64];
        cr_expect(exited_ok(r.status), "%s%s%s (%s): %s\nstderr:\n%s", item, other ? " " : "",
                  other ? other : "", variant_name((enum child_variant)v),
                  describe_status(r.status, st, sizeof st), r.err);
        cr_expect_str_eq(r.err, expect_err, "%s%s%s (%s): stderr is\n%s\nexpected\n%s", item,
                         other ? " " : "", other ? other : "", variant_name((enum child_variant)v),
                         r.err, expect_err);
        child_free(&r);
    }
}

struct good {
    const char *item;
    int opt;
    unsigned long long value;
};

/* Every key with a valid value: accepted silently, shown by verbose=1. */
Test(config, valid_values_accepted, .timeout = 120)
{
    static const struct good goods[] = {
        {"huge_threshold=1M", HUGE, 1ull << 20},
        {"huge_threshold=65537", HUGE, 65537},
        {"huge_threshold=2g", HUGE, 2ull << 30},
        {"thread_cache_budget=64M", BUDGET, 64ull << 20},
        {"thread_cache_max=2m", TCMAX, 2ull << 20},
        {"thread_cache_max=100k", TCMAX, 100ull << 10},
        {"decay_ms=2000", DECAY, 2000},
        {"decay_ms=0", DECAY, 0},
        {"background_thread=1", BACKGROUND, 1},
        {"background_thread=yes", BACKGROUND, 1},
        {"background_thread=false", BACKGROUND, 0},
        {"background_thread=auto", BACKGROUND, BACKGROUND_AUTO},
        {"quarantine=1G", QUARANTINE, 1ull << 30},
        {"quarantine=0", QUARANTINE, 0},
        {"stats=0", STATS, 0},
        {"stats=no", STATS, 0},
    };
    for (size_t i = 0; i < sizeof goods / sizeof goods[0]; i++) {
        unsigned long long v[NOPT];
        memcpy(v, opt_defaults, sizeof v);
        v[goods[i].opt] = goods[i].value;
        char conf[256], expect[1024];
        snprintf(conf, sizeof conf, "%s,verbose=1", goods[i].item);
        options_line(v, expect, sizeof expect - 1);
        strcat(expect, "\n");
        check_conf(conf, NULL, expect);
    }
    /* verbose=true alone, and verbose=0 prints nothing. */
    char expect[1024];
    options_line(opt_defaults, expect, sizeof expect - 1);
    strcat(expect, "\n");
    check_conf("verbose=true", NULL, expect);
    check_conf("verbose=0", NULL, "");
    /* check=N sets the check level and the error action. */
    for (int level = 0; level <= 3; level++) {
        unsigned long long v[NOPT];
        memcpy(v, opt_defaults, sizeof v);
        v[CHECK] = (unsigned long long)level;
        v[ACTION] = (unsigned long long)level;
        char conf[64];
        snprintf(conf, sizeof conf, "check=%d,verbose=1", level);
        options_line(v, expect, sizeof expect - 1);
        strcat(expect, "\n");
        check_conf(conf, NULL, expect);
    }
    /* Several at once; a thread cache budget below the per-thread maximum
     * lowers the maximum to it. */
    unsigned long long v[NOPT];
    memcpy(v, opt_defaults, sizeof v);
    v[BUDGET] = 1ull << 20;
    v[TCMAX] = 1ull << 20;
    v[DECAY] = 100;
    options_line(v, expect, sizeof expect - 1);
    strcat(expect, "\n");
    check_conf("thread_cache_budget=1M,decay_ms=100,verbose=1", NULL, expect);
}

/* The options line shows huge_threshold=1048576 for huge_threshold=1M. */
Test(config, verbose_shows_the_value)
{
    char item[] = "TLMALLOC_CONF=huge_threshold=1M,verbose=1";
    const char *env[] = {item, NULL};
    struct child_result r;
    run_child(CHILD_LINKED, env, "noop", NULL, 30, &r);
    cr_expect(strstr(r.err, "tlmalloc: options:") && strstr(r.err, " huge_threshold=1048576 "),
              "verbose=1 output:\n%s", r.err);
    child_free(&r);
}

/* A bad value: one warning naming the item, the default kept. */
Test(config, bad_values_rejected, .timeout = 120)
{
    static const char *const bads[] = {
        "decay_ms=abc",
        "decay_ms=",
        "decay_ms=-5",
        "decay_ms=12ms",
        "huge_threshold=12",
        "huge_threshold=64K",   /* must exceed 64 KiB */
        "huge_threshold=65536", /* the same */
        "huge_threshold=1T",
        "huge_threshold=M",
        "huge_threshold=99999999999999999999",
        "thread_cache_budget=lots",
        "thread_cache_budget=99999999999G",
        "thread_cache_max=4MB",
        "thread_cache_max=-1",
        "background_thread=on",
        "background_thread=2",
        "check=7",
        "check=4",
        "check=-1",
        "check=",
        "quarantine=1x",
        "stats=maybe",
        "stats=JSON",
        "stats=2",
        "verbose=maybe",
    };
    char defaults[1024];
    options_line(opt_defaults, defaults, sizeof defaults - 1);
    strcat(defaults, "\n");
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        char conf[256], expect[2048];
        snprintf(conf, sizeof conf, "%s,verbose=1", bads[i]);
        snprintf(expect, sizeof expect,
                 "tlmalloc: TLMALLOC_CONF: bad value in '%s' ignored, default kept\n%s", bads[i],
                 defaults);
        check_conf(conf, NULL, expect);
    }
}

/* An unknown key (keys are case-sensitive) or an item without '=': one
 * warning, the defaults kept, the other items applied. */
Test(config, unknown_options_rejected, .timeout = 60)
{
    static const char *const unknown[] = {"colour=blue", "HUGE_THRESHOLD=1M", "huge_threshol=1M",
                                          "=5", "check_=1"};
    char defaults[1024];
    options_line(opt_defaults, defaults, sizeof defaults - 1);
    strcat(defaults, "\n");
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        char conf[256], expect[2048];
        snprintf(conf, sizeof conf, "%s,verbose=1", unknown[i]);
        snprintf(expect, sizeof expect,
                 "tlmalloc: TLMALLOC_CONF: unknown option '%s' ignored, default kept\n%s",
                 unknown[i], defaults);
        check_conf(conf, NULL, expect);
    }
    char expect[2048];
    snprintf(expect, sizeof expect,
             "tlmalloc: TLMALLOC_CONF: item without '=' 'bogus' ignored, default kept\n%s",
             defaults);
    check_conf("bogus,verbose=1", NULL, expect);

    /* A bad item among good ones: only it is dropped. */
    unsigned long long v[NOPT];
    memcpy(v, opt_defaults, sizeof v);
    v[HUGE] = 1ull << 20;
    v[DECAY] = 250;
    char line[1024];
    options_line(v, line, sizeof line);
    snprintf(expect, sizeof expect,
             "tlmalloc: TLMALLOC_CONF: bad value in 'decay_ms=abc' ignored, default kept\n"
             "tlmalloc: TLMALLOC_CONF: unknown option 'colour=blue' ignored, default kept\n%s\n",
             line);
    check_conf("decay_ms=abc,huge_threshold=1M,,colour=blue,decay_ms=250,verbose=1", NULL, expect);
}

/* MALLOC_CHECK_ sets the level; TLMALLOC_CONF's check= wins over it; a bad
 * MALLOC_CHECK_ is reported and ignored. */
Test(config, malloc_check_and_precedence, .timeout = 60)
{
    unsigned long long v[NOPT];
    char line[1024], expect[2048];
    memcpy(v, opt_defaults, sizeof v);
    v[CHECK] = 3;
    v[ACTION] = 3;
    options_line(v, line, sizeof line);
    snprintf(expect, sizeof expect, "%s\n", line);
    check_conf("check=3,verbose=1", "MALLOC_CHECK_=1", expect);

    for (int level = 0; level <= 3; level++) {
        char mc[32];
        snprintf(mc, sizeof mc, "MALLOC_CHECK_=%d", level);
        memcpy(v, opt_defaults, sizeof v);
        v[CHECK] = (unsigned long long)level;
        v[ACTION] = (unsigned long long)level;
        options_line(v, line, sizeof line);
        snprintf(expect, sizeof expect, "%s\n", line);
        check_conf("verbose=1", mc, expect);
    }

    options_line(opt_defaults, line, sizeof line);
    snprintf(expect, sizeof expect,
             "tlmalloc: MALLOC_CHECK_ must be 0, 1, 2 or 3; ignored: 9\n%s\n", line);
    check_conf("verbose=1", "MALLOC_CHECK_=9", expect);
}

/* huge_threshold=1M: a 2 MiB block gets its own mapping (huge_count). */
Test(config, huge_threshold_changes_behaviour, .timeout = 60)
{
    const char *with[] = {"TLMALLOC_CONF=huge_threshold=1M", NULL};
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *vn = variant_name((enum child_variant)v);
        struct child_result r;
        run_child((enum child_variant)v, with, "huge_count", NULL, 30, &r);
        cr_expect(exited_ok(r.status) && r.err_len == 0, "huge_count (%s): stderr:\n%s", vn, r.err);
        cr_expect_eq(out_value(r.out, "huge_count", 99), 1,
                     "huge_threshold=1M (%s): a 2 MiB block is not counted as huge:\n%s", vn,
                     r.out);
        cr_expect_eq(out_value(r.out, "huge_bytes", 0), 2 * MiB, "huge_threshold=1M (%s):\n%s", vn,
                     r.out);
        cr_expect_eq(out_value(r.out, "huge_count_after_free", 99), 0,
                     "huge_threshold=1M (%s):\n%s", vn, r.out);
        child_free(&r);

        run_child((enum child_variant)v, NULL, "huge_count", NULL, 30, &r);
        cr_expect_eq(out_value(r.out, "huge_count", 99), 0,
                     "default (%s): a 2 MiB block counted as huge:\n%s", vn, r.out);
        child_free(&r);
    }
}

/* stats=1 prints the text report at exit, stats=json the JSON one. */
Test(config, stats_at_exit, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *vn = variant_name((enum child_variant)v);
        static const char *const text_items[] = {"TLMALLOC_CONF=stats=1",
                                                 "TLMALLOC_CONF=stats=true"};
        for (size_t i = 0; i < 2; i++) {
            const char *env[] = {text_items[i], NULL};
            struct child_result r;
            run_child((enum child_variant)v, env, "noop", NULL, 30, &r);
            cr_expect(exited_ok(r.status), "%s (%s)", text_items[i], vn);
            cr_expect(!strncmp(r.err, "tlmalloc statistics\n", 20) &&
                          strstr(r.err, "in use by the program"),
                      "%s (%s): stderr at exit:\n%s", text_items[i], vn, r.err);
            child_free(&r);
        }
        const char *env[] = {"TLMALLOC_CONF=stats=json", NULL};
        struct child_result r;
        run_child((enum child_variant)v, env, "noop", NULL, 30, &r);
        cr_expect(exited_ok(r.status), "stats=json (%s)", vn);
        cr_expect(r.err_len > 2 && r.err[0] == '{' && !strcmp(r.err + r.err_len - 2, "}\n") &&
                      strstr(r.err, "\"in_use_bytes\": ") && strstr(r.err, "\"huge_count\": "),
                  "stats=json (%s): stderr at exit:\n%s", vn, r.err);
        child_free(&r);
        const char *none[] = {"TLMALLOC_CONF=stats=0", NULL};
        run_child((enum child_variant)v, none, "noop", NULL, 30, &r);
        cr_expect(exited_ok(r.status) && r.err_len == 0, "stats=0 (%s): stderr:\n%s", vn, r.err);
        child_free(&r);
    }
}

/* mallopt(M_MMAP_THRESHOLD, 1 MiB) returns 1 and makes a 2 MiB block huge;
 * unknown parameters return 1 and change nothing. */
Test(config, mallopt_mmap_threshold, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *vn = variant_name((enum child_variant)v);
        struct child_result r;
        run_child((enum child_variant)v, NULL, "mallopt_huge", NULL, 30, &r);
        cr_expect(exited_ok(r.status) && r.err_len == 0, "mallopt_huge (%s): stderr:\n%s", vn,
                  r.err);
        cr_expect_eq(out_value(r.out, "before huge_count", 99), 0, "mallopt (%s):\n%s", vn, r.out);
        cr_expect_eq(out_value(r.out, "mallopt_mmap_threshold", 99), 1,
                     "mallopt(M_MMAP_THRESHOLD, 1 MiB) did not return 1 (%s):\n%s", vn, r.out);
        cr_expect_eq(out_value(r.out, "after huge_count", 99), 1,
                     "after mallopt(M_MMAP_THRESHOLD, 1 MiB) a 2 MiB block is not huge (%s):\n%s",
                     vn, r.out);
        cr_expect_eq(out_value(r.out, "after_free huge_count", 99), 0, "mallopt (%s):\n%s", vn,
                     r.out);
        cr_expect_eq(out_value(r.out, "small_block huge_count", 99), 0,
                     "after mallopt(M_MMAP_THRESHOLD, 1 MiB) a 512 KiB block is huge (%s):\n%s", vn,
                     r.out);
        cr_expect_eq(out_value(r.out, "mallopt_unknown", 99), 1, "mallopt(12345, 1) (%s):\n%s", vn,
                     r.out);
        cr_expect_eq(out_value(r.out, "mallopt_trim_threshold", 99), 1,
                     "mallopt(M_TRIM_THRESHOLD) (%s):\n%s", vn, r.out);
        child_free(&r);
    }
}

/* t_prof.c - the heap profiler (TLMALLOC_CONF=prof=1), through the program
 * users would run: tests/prof_child (three allocation sites of known
 * volume, one in a thread, one through C++ operator new), linked with
 * libtlmalloc and plain (LD_PRELOAD), in fresh processes.
 * Profiles are read by Debian's google-pprof (package google-perftools).
 *
 * Sampling error: with a mean of R bytes between samples, an allocation of
 * s bytes is sampled with probability p = 1 - exp(-s/R) and counts s/p
 * bytes, so N allocations of s bytes are estimated with a standard
 * deviation of s * sqrt(N (1-p) / p). At R = 32 KiB the three sites'
 * relative deviations are 2.6% (48 MB in 2000 B blocks), 3.2% (32 MB in
 * 1000 B) and 4.5% (16 MB in 500 B); each site's estimate must be within
 * 5 of its own deviations (12.9%, 15.9%, 22.6%), a bound a correct
 * sampler exceeds about once in 1.7 million runs per site. At 5 deviations
 * the three sites still cannot change places (41.8 > 37.1 and 26.9 > 19.6
 * MB), so the order is asserted too. Nothing is timed. */
#include "child.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>

#define SAMPLE_RATE 32768.0

struct site {
    const char *name;
    double n, size;
};
static const struct site sites[] = {
    {"site_main", 24000, 2000},
    {"site_thread", 32000, 1000},
    {"site_cxx", 32000, 500},
};

static const char *program(enum child_variant v, const char *base, char *path, size_t cap)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/%s_%s", base, v == CHILD_LINKED ? "linked" : "plain");
    cr_assert(find_in_build(rel, X_OK, path, cap), "cannot find %s: set TL_BUILDDIR", rel);
    return path;
}

static void make_tmpdir(char *dir, size_t cap)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, cap, "%s/tlprof.XXXXXX", t && *t ? t : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_tmpdir(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Runs prog with args under exactly the environment conf (plus
 * LD_PRELOAD for the plain build); returns the exit status, stdout in out. */
static int run_prog(enum child_variant v, const char *prog, const char *conf, const char *args,
                    const char *dir, char *out, size_t cap)
{
    char lib[4096] = "", preload[4200] = "", cmd[16384];
    if (v == CHILD_PRELOAD) {
        cr_assert(find_in_build(".libs/libtlmalloc.so", R_OK, lib, sizeof lib));
        snprintf(preload, sizeof preload, "LD_PRELOAD=%s", lib);
    }
    snprintf(cmd, sizeof cmd, "env -i %s %s '%s' %s >'%s/out' 2>'%s/err'", conf, preload, prog,
             args, dir, dir);
    int status = system(cmd);
    char path[4200];
    snprintf(path, sizeof path, "%s/out", dir);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = 0;
    if (f)
        fclose(f);
    return status;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    fclose(f);
    return buf;
}

/* The output of google-pprof with the given options on a profile. */
static char *pprof(const char *prog, const char *opts, const char *profile, const char *dir)
{
    char cmd[16384], path[4200];
    snprintf(path, sizeof path, "%s/pprof.out", dir);
    snprintf(cmd, sizeof cmd, "google-pprof %s '%s' '%s' >'%s' 2>/dev/null", opts, prog, profile,
             path);
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed: %d", cmd, status);
    return read_file(path);
}

/* The profile files in dir whose names start with prefix; the first's
 * path in first. */
static int count_profiles(const char *dir, const char *prefix, char *first, size_t cap)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, prefix, strlen(prefix)) || len < 5 ||
            strcmp(e->d_name + len - 5, ".heap"))
            continue;
        if (n++ == 0 && first)
            snprintf(first, cap, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    return n;
}

/* The flat entries of pprof --text, in order: "  45.8  50.1%  50.1%  45.8  50.1% site_main". */
static int top_entries(const char *text, char names[][128], double *mb, int max)
{
    const char *line = strstr(text, "Total:");
    int n = 0;
    while (line && n < max && (line = strchr(line, '\n'))) {
        line++;
        double flat, pct, sum, cum, cpct;
        char name[128];
        if (sscanf(line, "%lf %lf%% %lf%% %lf %lf%% %127s", &flat, &pct, &sum, &cum, &cpct, name) !=
            6)
            continue;
        snprintf(names[n], 128, "%s", name);
        mb[n++] = flat;
    }
    return n;
}

static void expect_three_sites(const char *prog, const char *profile, const char *dir,
                               const char *what)
{
    char *text = pprof(prog, "--text", profile, dir);
    cr_assert_not_null(text);
    char names[3][128];
    double mb[3];
    int n = top_entries(text, names, mb, 3);
    cr_assert_eq(n, 3, "%s: fewer than three entries in\n%s", what, text);
    for (int i = 0; i < 3; i++) {
        const struct site *s = &sites[i];
        double p = 1 - exp(-s->size / SAMPLE_RATE);
        double truth = s->n * s->size / 1048576.0; /* pprof's MB are MiB */
        double sd = s->size * sqrt(s->n * (1 - p) / p) / 1048576.0;
        cr_expect_str_eq(names[i], s->name, "%s: entry %d is %s, not %s:\n%s", what, i + 1,
                         names[i], s->name, text);
        /* pprof prints one decimal: allow its rounding too. */
        cr_expect(fabs(mb[i] - truth) <= 5 * sd + 0.05,
                  "%s: %s has %.1f MB, expected %.1f +- %.1f (5 deviations):\n%s", what, s->name,
                  mb[i], truth, 5 * sd, text);
    }
    free(text);
}

Test(prof, three_sites_read_by_pprof_text, .timeout = 300)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        char prog[4096], dir[4096], out[4096], profile[4300];
        program((enum child_variant)v, "prof_child", prog, sizeof prog);
        make_tmpdir(dir, sizeof dir);
        /* Linked: an explicit tl_prof_dump. Preloaded: prof_final at exit. */
        char conf[4400], args[4400];
        if (v == CHILD_LINKED) {
            snprintf(profile, sizeof profile, "%s/explicit.heap", dir);
            snprintf(conf, sizeof conf, "TLMALLOC_CONF=prof=1,prof_sample=32k");
            snprintf(args, sizeof args, "sites '%s'", profile);
        } else {
            snprintf(conf, sizeof conf,
                     "TLMALLOC_CONF=prof=1,prof_sample=32k,prof_final=1,"
                     "prof_prefix=%s/final",
                     dir);
            snprintf(args, sizeof args, "sites");
        }
        int status = run_prog((enum child_variant)v, prog, conf, args, dir, out, sizeof out);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: exit %d, stdout %s",
                  variant_name((enum child_variant)v), status, out);
        if (v == CHILD_PRELOAD)
            cr_assert_eq(count_profiles(dir, "final.", profile, sizeof profile), 1,
                         "prof_final wrote no profile (or several)");
        expect_three_sites(prog, profile, dir, variant_name((enum child_variant)v));
        remove_tmpdir(dir);
    }
}

Test(prof, collapsed_and_svg_output, .timeout = 300)
{
    char prog[4096], dir[4096], out[4096], profile[4300], args[4400];
    program(CHILD_LINKED, "prof_child", prog, sizeof prog);
    make_tmpdir(dir, sizeof dir);
    snprintf(profile, sizeof profile, "%s/p.heap", dir);
    snprintf(args, sizeof args, "sites '%s'", profile);
    int status = run_prog(CHILD_LINKED, prog, "TLMALLOC_CONF=prof=1", args, dir, out, sizeof out);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit %d: %s", status, out);
    char *collapsed = pprof(prog, "--collapsed", profile, dir);
    /* One line per stack: frames from the outermost, joined by ';', then a count. */
    regmatch_t m[1];
    /* pprof adds each function's address: "site_main<0000000000001450>". */
    cr_expect(matches(collapsed, ";site_main(<[0-9a-f]+>)? [0-9]+", m, 1), "--collapsed:\n%s",
              collapsed);
    cr_expect(
        matches(collapsed, "thread_body(<[0-9a-f]+>)?;site_thread(<[0-9a-f]+>)? [0-9]+", m, 1),
        "--collapsed:\n%s", collapsed);
    cr_expect(matches(collapsed, "run_cxx_site(<[0-9a-f]+>)?;site_cxx(<[0-9a-f]+>)? [0-9]+", m, 1),
              "--collapsed:\n%s", collapsed);
    free(collapsed);
    char *svg = pprof(prog, "--svg", profile, dir);
    cr_expect(strstr(svg, "<svg") && strstr(svg, "site_main") && strstr(svg, "site_thread"),
              "--svg gave no graph of the sites:\n%.2000s", svg);
    free(svg);
    remove_tmpdir(dir);
}

Test(prof, api_without_prof_says_enoent, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        char prog[4096], dir[4096], out[4096], args[4400];
        program((enum child_variant)v, "prof_child", prog, sizeof prog);
        make_tmpdir(dir, sizeof dir);
        snprintf(args, sizeof args, "api '%s/never.heap'", dir);
        int status = run_prog((enum child_variant)v, prog, "TLMALLOC_CONF=prof_final=1", args, dir,
                              out, sizeof out);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit %d", status);
        cr_expect_eq(out_value(out, "dump", 99), ENOENT, "%s", out);
        cr_expect_eq(out_value(out, "active", 99), 0, "%s", out);
        cr_expect_eq(out_value(out, "stop", 99), ENOENT, "%s", out);
        cr_expect_eq(out_value(out, "ctl_dump", 99), ENOENT, "%s", out);
        cr_expect_eq(count_profiles(dir, "", NULL, 0), 0, "a profile was written without prof=1");
        remove_tmpdir(dir);
    }
}

Test(prof, api_with_prof, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        char prog[4096], dir[4096], out[4096], args[4400];
        program((enum child_variant)v, "prof_child", prog, sizeof prog);
        make_tmpdir(dir, sizeof dir);
        /* A path in a directory that does not exist: the error is open's. */
        snprintf(args, sizeof args, "api '%s/no/such/dir.heap'", dir);
        int status = run_prog((enum child_variant)v, prog, "TLMALLOC_CONF=prof=1", args, dir, out,
                              sizeof out);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit %d", status);
        cr_expect_eq(out_value(out, "dump", 99), ENOENT, "%s", out);
        cr_expect_eq(out_value(out, "active", 99), 1, "%s", out);
        cr_expect_eq(out_value(out, "stop", 99), 0, "%s", out);
        cr_expect_eq(out_value(out, "active_after_stop", 99), 0, "%s", out);
        cr_expect_eq(out_value(out, "start", 99), 0, "%s", out);
        cr_expect_eq(out_value(out, "active_after_start", 99), 1, "%s", out);
        snprintf(args, sizeof args, "api '%s/ok.heap'", dir);
        run_prog((enum child_variant)v, prog, "TLMALLOC_CONF=prof=1", args, dir, out, sizeof out);
        cr_expect_eq(out_value(out, "dump", 99), 0, "%s", out);
        cr_expect_eq(out_value(out, "ctl_dump", 99), 0, "%s", out);
        /* tl_prof_dump's file and tl_ctl's prof.dump's. */
        for (int k = 0; k < 2; k++) {
            char path[4300];
            snprintf(path, sizeof path, "%s/ok.heap%s", dir, k ? ".ctl" : "");
            char *text = read_file(path);
            cr_assert_not_null(text, "%s was not written", path);
            regmatch_t m[1];
            cr_expect(
                matches(text,
                        "^heap profile: +[0-9]+: +[0-9]+ \\[ +[0-9]+: +[0-9]+\\] @ heapprofile\n",
                        m, 1),
                "header:\n%.300s", text);
            cr_expect(strstr(text, "\nMAPPED_LIBRARIES:\n"), "no maps section");
            free(text);
        }
        remove_tmpdir(dir);
    }
}

/* 64 MB in 64 KiB blocks: about 120 samples, so the estimated volume is
 * 64 MB +- 5.5 MB (one deviation): 8 interval dumps of 8 MB expected,
 * between 4 and 12 at 5 deviations. */
Test(prof, interval_dumps, .timeout = 120)
{
    char prog[4096], dir[4096], out[4096], conf[4400];
    program(CHILD_PRELOAD, "prof_child", prog, sizeof prog);
    make_tmpdir(dir, sizeof dir);
    snprintf(conf, sizeof conf, "TLMALLOC_CONF=prof=1,prof_interval=8M,prof_prefix=%s/iv", dir);
    int status = run_prog(CHILD_PRELOAD, prog, conf, "grow", dir, out, sizeof out);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit %d", status);
    int n = count_profiles(dir, "iv.", NULL, 0);
    cr_expect(n >= 4 && n <= 12, "%d interval dumps for 64 MB at 8 MB", n);
    remove_tmpdir(dir);
}

/* gdump: a dump at each new in-use peak an eighth above the last one
 * dumped; a heap growing to 64 MB gives several. */
Test(prof, gdump_dumps_at_new_peaks, .timeout = 120)
{
    char prog[4096], dir[4096], out[4096], conf[4400], first[4300];
    program(CHILD_LINKED, "prof_child", prog, sizeof prog);
    make_tmpdir(dir, sizeof dir);
    snprintf(conf, sizeof conf, "TLMALLOC_CONF=prof=1,prof_gdump=1,prof_prefix=%s/gd", dir);
    int status = run_prog(CHILD_LINKED, prog, conf, "grow", dir, out, sizeof out);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit %d", status);
    int n = count_profiles(dir, "gd.", first, sizeof first);
    cr_expect(n >= 2, "%d gdump profiles for a heap growing to 64 MB", n);
    remove_tmpdir(dir);
}

/* A sampled block lives alone in a span of its own; a heap error on it is
 * still found and reported, as for any block of its size: prof_sample=1
 * samples every block. */
/* Aborted: by the signal, or as the shell that ran it reports it. */
static int aborted_status(int status)
{
    return (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) ||
           (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGABRT);
}

static char *run_error(enum child_variant v, const char *scenario, int *status)
{
    char prog[4096], dir[4096], out[4096], path[4300];
    program(v, "prof_child", prog, sizeof prog);
    make_tmpdir(dir, sizeof dir);
    *status =
        run_prog(v, prog, "TLMALLOC_CONF=prof=1,prof_sample=1", scenario, dir, out, sizeof out);
    snprintf(path, sizeof path, "%s/err", dir);
    char *err = read_file(path);
    cr_assert_not_null(err);
    remove_tmpdir(dir);
    return err;
}

Test(prof, sampled_block_double_free_reported, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        int status;
        char *err = run_error((enum child_variant)v, "double_free", &status);
        const char *vn = variant_name((enum child_variant)v);
        cr_expect(aborted_status(status), "%s: status %d", vn, status);
        cr_expect(strstr(err, "double free"), "%s: no double free report:\n%s", vn, err);
        free(err);
    }
}

Test(prof, sampled_block_interior_free_reported, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        int status;
        char *err = run_error((enum child_variant)v, "interior", &status);
        const char *vn = variant_name((enum child_variant)v);
        cr_expect(aborted_status(status), "%s: status %d", vn, status);
        cr_expect(strstr(err, "pointer into the middle of a block"),
                  "%s: no interior pointer report:\n%s", vn, err);
        free(err);
    }
}

/* calloc, realloc and the aligned allocators, every block sampled: each
 * still keeps its contract (zeroed, contents moved, aligned). */
Test(prof, sampled_other_calls_keep_their_contract, .timeout = 60)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        char prog[4096], dir[4096], out[4096];
        program((enum child_variant)v, "prof_child", prog, sizeof prog);
        make_tmpdir(dir, sizeof dir);
        int status = run_prog((enum child_variant)v, prog, "TLMALLOC_CONF=prof=1,prof_sample=1",
                              "other_calls", dir, out, sizeof out);
        const char *vn = variant_name((enum child_variant)v);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: exit %d", vn, status);
        static const char *const names[] = {"calloc", "realloc", "posix_memalign", "memalign",
                                            "usable", "huge",    "cxx_news"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            cr_expect_eq(out_value(out, names[i], 99), 1, "%s: %s:\n%s", vn, names[i], out);
        remove_tmpdir(dir);
    }
}

/* prof=1 writes a 5-byte jump over the first 8 bytes of malloc and of the
 * four plain and nothrow operator new entries (api.c, cxx.c). That is safe
 * only if no instruction of the library jumps to bytes 1..7 of an entry:
 * one that did would land in the middle of the jump. The compiler decides
 * that, so each build is checked here: every direct jump or call target
 * in objdump's disassembly against every entry's first 8 bytes. */
struct entry_addr {
    const char *name;
    unsigned long addr;
};

static void read_entries(const char *lib, struct entry_addr *e, size_t n)
{
    char cmd[4200], line[512];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s'", lib);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "cannot run nm");
    while (fgets(line, sizeof line, f)) {
        unsigned long addr;
        char type, name[256];
        if (sscanf(line, "%lx %c %255s", &addr, &type, name) != 3)
            continue;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(name, e[i].name))
                e[i].addr = addr;
    }
    cr_expect_eq(pclose(f), 0, "nm -D failed on %s", lib);
}

/* The jumps and calls of lib whose target lies in bytes 1..7 of an entry. */
static unsigned jumps_into_entries(const char *lib, const struct entry_addr *e, size_t n,
                                   unsigned *direct)
{
    char cmd[4200], line[1024];
    snprintf(cmd, sizeof cmd, "objdump -d --no-show-raw-insn '%s'", lib);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "cannot run objdump");
    unsigned bad = 0;
    *direct = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long at, target;
        char op[32];
        /* "   157f4:\tjne    15800 <tl_malloc+0x10>" */
        if (sscanf(line, " %lx: %31s %lx <", &at, op, &target) != 3 ||
            (op[0] != 'j' && strncmp(op, "call", 4) && strncmp(op, "loop", 4)))
            continue;
        (*direct)++;
        for (size_t i = 0; i < n; i++)
            if (e[i].addr && target > e[i].addr && target < e[i].addr + 8) {
                cr_log_error("%s: %s at %#lx jumps to %s+%lu", lib, op, at, e[i].name,
                             target - e[i].addr);
                bad++;
            }
    }
    cr_expect_eq(pclose(f), 0, "objdump -d failed on %s", lib);
    return bad;
}

Test(prof, nothing_jumps_into_a_patched_entry, .timeout = 120)
{
    static const char *const libs[] = {".libs/libtlmalloc.so", ".libs/libtlmalloc-prefixed.so"};
    for (size_t l = 0; l < sizeof libs / sizeof libs[0]; l++) {
        char lib[4096];
        cr_assert(find_in_build(libs[l], R_OK, lib, sizeof lib), "cannot find %s", libs[l]);
        struct entry_addr e[] = {{"tl_malloc", 0},
                                 {"_Znwm", 0},
                                 {"_Znam", 0},
                                 {"_ZnwmRKSt9nothrow_t", 0},
                                 {"_ZnamRKSt9nothrow_t", 0}};
        size_t n = l == 0 ? sizeof e / sizeof e[0] : 1; /* the prefixed one has no new */
        read_entries(lib, e, n);
        for (size_t i = 0; i < n; i++) {
            cr_expect_neq(e[i].addr, 0, "%s: no symbol %s", lib, e[i].name);
            cr_expect_eq(e[i].addr % 16, 0, "%s: %s at %#lx is not 16-byte aligned", lib, e[i].name,
                         e[i].addr);
        }
        unsigned direct;
        unsigned bad = jumps_into_entries(lib, e, n, &direct);
        cr_expect_gt(direct, 1000, "%s: objdump showed only %u jumps and calls", lib, direct);
        cr_expect_eq(bad, 0, "%s: %u jumps into the first 8 bytes of a patched entry", lib, bad);
    }
}

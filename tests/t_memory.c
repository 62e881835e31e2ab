/* t_memory.c - memory coming back to the OS, and statistics that add up
 * (only in test_linked).
 *
 * The RSS and statistics workloads run in tests/diag_child, a fresh
 * process (linked with tlmalloc, and preloaded into a plain build), so
 * that no other test's memory is counted and options can be set through
 * the environment; see child.h. tl_stats_print and malloc_stats are
 * checked in this process.
 */
#include <pthread.h>

#include "child.h"
#include "common.h"
#include "tlmalloc.h"

static const char *figure_names[] = {
    "in_use_bytes",
    "small_in_use_bytes",
    "large_in_use_bytes",
    "huge_bytes",
    "thread_cache_bytes",
    "central_free_bytes",
    "span_tail_bytes",
    "page_heap_free_bytes",
    "returned_bytes",
    "heap_mapped_bytes",
    "meta_bytes",
    "mapped_bytes",
    "resident_estimate_bytes",
    "threads",
    "huge_count",
};
#define NFIGURES (sizeof figure_names / sizeof figure_names[0])

#define MiBf(x) ((double)(x) / (double)MiB)

/* One run of an RSS scenario in a child of variant v: its RSS before the
 * peak, at the peak, and at after_key. The child must exit cleanly and
 * print all three; r stays for the caller to read, then free. */
struct rss_run {
    const char *variant;
    struct child_result r;
    size_t base, peak, after;
};

static void rss_run_arg(enum child_variant v, const char **env, const char *scenario,
                        const char *arg, const char *after_key, struct rss_run *run)
{
    run->variant = variant_name(v);
    run_child(v, env, scenario, arg, 90, &run->r);
    char st[64];
    cr_assert(exited_ok(run->r.status), "%s (%s): %s\nstdout:\n%s\nstderr:\n%s", scenario,
              run->variant, describe_status(run->r.status, st, sizeof st), run->r.out, run->r.err);
    run->base = out_value(run->r.out, "rss_base", 0);
    run->peak = out_value(run->r.out, "rss_peak", 0);
    run->after = out_value(run->r.out, after_key, 0);
    cr_assert(run->base && run->peak && run->after, "%s (%s): missing figures:\n%s", scenario,
              run->variant, run->r.out);
}

static void rss_run(enum child_variant v, const char **env, const char *scenario,
                    const char *after_key, struct rss_run *run)
{
    rss_run_arg(v, env, scenario, NULL, after_key, run);
}

/* About 256 MiB in small (16..1024 B) and large (64 KiB..4 MiB) blocks,
 * all freed, then malloc_trim(0): RSS falls back to within 1 MiB of what
 * it was before at once - metadata included: the span structs and pagemap
 * entries of the peak (~2 MiB of them here) go back with its pages. With
 * background_thread=0, so that this single-threaded child keeps its freed
 * pages for decay_ms, as a multithreaded one does, and the trim finds them:
 * by default it gives them back at the free (rss_comes_back_when_idle). */
Test(memory, rss_comes_back_after_trim, .timeout = 120)
{
    const char *env[] = {"TLMALLOC_CONF=background_thread=0", NULL};
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct rss_run x;
        rss_run((enum child_variant)v, env, "rss_trim", "rss_after", &x);
        cr_expect_geq(x.peak, x.base + 200 * MiB,
                      "rss_trim (%s): the workload did not reach its peak: %.1f MiB -> %.1f MiB",
                      x.variant, MiBf(x.base), MiBf(x.peak));
        cr_expect(has_line(x.r.out, "trim 1"),
                  "rss_trim (%s): malloc_trim(0) did not return 1:\n%s", x.variant, x.r.out);
        cr_expect_leq(
            x.after, x.base + 1 * MiB,
            "rss_trim (%s): RSS %.1f MiB before, %.1f MiB at the peak, %.1f MiB after free and "
            "malloc_trim(0): more than 1 MiB did not come back",
            x.variant, MiBf(x.base), MiBf(x.peak), MiBf(x.after));
        child_free(&x.r);
    }
}

/* The same without malloc_trim but with decay_ms=200: after 1 s of light
 * allocator activity (64 small malloc/free pairs a millisecond) RSS is
 * within 1 MiB of its level before the peak. */
Test(memory, rss_comes_back_by_decay, .timeout = 120)
{
    const char *env[] = {"TLMALLOC_CONF=decay_ms=200", NULL};
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct rss_run x;
        rss_run((enum child_variant)v, env, "rss_decay", "rss_after_1000ms", &x);
        cr_expect_geq(x.peak, x.base + 200 * MiB,
                      "rss_decay (%s): the workload did not reach its peak", x.variant);
        cr_expect_leq(
            x.after, x.base + 1 * MiB,
            "rss_decay (%s): RSS %.1f MiB before, %.1f MiB at the peak, %.1f MiB 1 s after "
            "freeing everything with decay_ms=200:\n%s",
            x.variant, MiBf(x.base), MiBf(x.peak), MiBf(x.after), x.r.out);
        child_free(&x.r);
    }
}

/* Two threads make a 128 MiB peak, free it, and go on working with 32 live
 * blocks each; with the default decay_ms, RSS comes back within 768 KiB of
 * its level before the peak (measured: 420-570 KiB above it, within a
 * second of the frees on an idle machine). The child watches for up to
 * 10 s after the frees end: at load 12 on two cores, a fixed second after
 * the frees began once found 12 MiB still resident. Before the peak epoch,
 * the caches kept the peak's spans resident for good.
 * What the threads' caches took from the peak, and the objects passing
 * between them through the transfer stacks, came from spans all over the
 * freed range; before the peak epoch and the bottom-halving of lists, they
 * kept 1.2-2.9 MiB resident here. */
Test(memory, rss_comes_back_with_threads_at_work, .timeout = 120)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct rss_run x;
        rss_run((enum child_variant)v, NULL, "rss_decay_threads", "rss_at_work", &x);
        cr_expect_geq(x.peak, x.base + 100 * MiB,
                      "rss_decay_threads (%s): the workload did not reach its peak", x.variant);
        cr_expect_leq(x.after, x.base + 768 * KiB,
                      "rss_decay_threads (%s): RSS %.2f MiB before, %.1f MiB at the peak, still "
                      "%.2f MiB %llu ms after the threads freed it (in %llu ms) and went on "
                      "working",
                      x.variant, MiBf(x.base), MiBf(x.peak), MiBf(x.after),
                      out_value(x.r.out, "at_work_ms", 0), out_value(x.r.out, "free_ms", 0));
        child_free(&x.r);
    }
}

/* One thread makes a 256 MiB peak (small and large blocks), frees it and
 * then makes no allocator call at all; with the default options RSS must
 * come back within 10% (or 1 MiB, whichever is larger) of its level before
 * the peak. The target is 2 s; the child watches for up to 3 s and stops
 * as soon as it is reached. Nothing in the program runs decay then. With
 * one thread, the process gets no background thread, and the frees give
 * the peak back as they go (measured: 0-10 ms after the free); with two,
 * the background thread, started on its own, does (0.5-0.7 s). */
static void check_idle(const char *scenario, const char *arg)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct rss_run x;
        rss_run_arg((enum child_variant)v, NULL, scenario, arg, "rss_idle", &x);
        size_t target = x.base / 10 > MiB ? x.base + x.base / 10 : x.base + MiB;
        unsigned long long ms = out_value(x.r.out, "idle_ms", ~0ull);
        cr_expect_geq(x.peak, x.base + 200 * MiB, "%s (%s): the workload did not reach its peak",
                      scenario, x.variant);
        cr_expect_leq(x.after, target,
                      "%s (%s): RSS %.2f MiB before, %.1f MiB at the peak, still %.2f MiB %llu ms "
                      "after the free with the program idle (target %.2f MiB)",
                      scenario, x.variant, MiBf(x.base), MiBf(x.peak), MiBf(x.after), ms,
                      MiBf(target));
        child_free(&x.r);
    }
}

Test(memory, rss_comes_back_when_idle, .timeout = 120) { check_idle("rss_idle", NULL); }

/* The same with two threads that make the peak (128 MiB each), free it,
 * and block, while the main thread watches without calling the allocator. */
Test(memory, rss_comes_back_when_idle_with_threads, .timeout = 120)
{
    check_idle("rss_idle_threads", NULL);
}

/* The same, with the end of the free slowed down as a loaded machine slows
 * it (pauses of more than two scavenge intervals). The threads' caches
 * used to stop draining at the first interval without a new peak epoch,
 * and then kept the peak's last objects, each pinning its span: 2.0-2.6
 * MiB above the level before the peak, 3 s after the free (measured: now
 * 0.15-0.3 MiB). */
Test(memory, rss_comes_back_when_idle_after_a_slow_free, .timeout = 120)
{
    check_idle("rss_idle_threads", "slow");
}

/* One thread frees about 128 MiB of small blocks. Before the background
 * thread ran the central decay and caches drained during a peak, 28-41 MiB
 * of it stayed free in the central lists (up to 1 MiB per class on the
 * transfer stacks, and the spans their batches pinned) for as long as the
 * program made no call, or only calls that hit its cache (100 malloc+free
 * pairs a second tick once every 10 s). Now, either way, 1 s after the
 * free (twice decay_ms) less than 1 MiB is left there, and 1 s later too. */
static void check_central(const char *arg)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *vn = variant_name((enum child_variant)v);
        struct child_result r;
        run_child((enum child_variant)v, NULL, "central_idle", arg, 60, &r);
        char st[64];
        cr_assert(exited_ok(r.status), "central_idle %s (%s): %s\nstdout:\n%s\nstderr:\n%s", arg,
                  vn, describe_status(r.status, st, sizeof st), r.out, r.err);
        size_t at0 = out_value(r.out, "central_free_0ms", 0),
               at1000 = out_value(r.out, "central_free_1000ms", ~0ull),
               at2000 = out_value(r.out, "central_free_2000ms", ~0ull);
        cr_expect_leq(at1000, 1 * MiB,
                      "central_idle %s (%s): %.1f MiB free in the central lists after the free, "
                      "%.1f MiB still 1 s later:\n%s",
                      arg, vn, MiBf(at0), MiBf(at1000), r.out);
        cr_expect_leq(at2000, 1 * MiB, "central_idle %s (%s): %.1f MiB after 2 s:\n%s", arg, vn,
                      MiBf(at2000), r.out);
        child_free(&r);
    }
}

Test(memory, central_lists_decay_when_idle, .timeout = 120) { check_central("idle"); }

Test(memory, central_lists_decay_under_cache_hits, .timeout = 120) { check_central("100"); }

/* Runs scenario in a fresh process (linked, then preloaded), expects a
 * clean exit, and returns its output through r. */
static void run_clean(enum child_variant v, const char **env, const char *scenario,
                      struct child_result *r)
{
    run_child(v, env, scenario, NULL, 50, r);
    char st[64];
    cr_assert(exited_ok(r->status), "%s (%s): %s\nstdout:\n%s\nstderr:\n%s", scenario,
              variant_name(v), describe_status(r->status, st, sizeof st), r->out, r->err);
}

/* A single-threaded process gets no background thread, however large its
 * heap. A second thread takes away what glibc promises a single-threaded
 * process only: a fork that is async-signal-safe (glibc's tst-mallocfork2
 * hung in glibc's own atfork lock), unshare(CLONE_NEWUSER), and glibc's
 * single-thread shortcuts. The thread used to start once the heap passed
 * 32 MiB. */
Test(memory, single_threaded_process_gets_no_background_thread, .timeout = 120)
{
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct child_result r;
        run_clean((enum child_variant)v, NULL, "single_thread_heap", &r);
        cr_expect_eq(out_value(r.out, "threads", 0), 1,
                     "single_thread_heap (%s): the process has more than its own thread:\n%s",
                     variant_name((enum child_variant)v), r.out);
        cr_expect_eq(out_value(r.out, "single_threaded", 0), 1,
                     "single_thread_heap (%s): glibc no longer counts the process as "
                     "single-threaded:\n%s",
                     variant_name((enum child_variant)v), r.out);
        child_free(&r);
    }
}

/* Without that thread, a single-threaded process gives back at the free
 * what it frees past a small budget. A block freed and taken again in turn
 * must not pay page faults every time: each time pages given back are
 * taken again within decay_ms, the budget doubles. An 8 MiB block, 30
 * rounds: the first free gives it back, and after 10 rounds no free does
 * (measured: 5 releases, all in the first 5 rounds). decay_ms=10000 so
 * that a loaded machine's pauses never age the block past decay_ms. */
Test(memory, single_thread_keeps_a_block_it_takes_again, .timeout = 120)
{
    const char *env[] = {"TLMALLOC_CONF=decay_ms=10000", NULL};
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *vn = variant_name((enum child_variant)v);
        struct child_result r;
        run_clean((enum child_variant)v, env, "eager_reuse", &r);
        unsigned long long first = out_value(r.out, "releases_1", 0),
                           at10 = out_value(r.out, "releases_10", ~0ull),
                           at30 = out_value(r.out, "releases_30", 0);
        cr_expect_geq(first, 1, "eager_reuse (%s): the first free gave nothing back:\n%s", vn,
                      r.out);
        cr_expect_eq(at30, at10,
                     "eager_reuse (%s): frees still gave the block back after 10 "
                     "rounds:\n%s",
                     vn, r.out);
        child_free(&r);
    }
}

struct figures {
    size_t v[NFIGURES];
};

static size_t fig(const struct figures *f, const char *name)
{
    for (size_t i = 0; i < NFIGURES; i++)
        if (!strcmp(figure_names[i], name))
            return f->v[i];
    cr_assert_fail("no figure %s", name);
    return 0;
}

static void read_figures(const char *out, const char *tag, struct figures *f, const char *vn)
{
    for (size_t i = 0; i < NFIGURES; i++) {
        char key[128];
        snprintf(key, sizeof key, "%s %s", tag, figure_names[i]);
        unsigned long long x = out_value(out, key, ~0ull);
        cr_assert_neq(x, ~0ull, "stats_identity (%s): no figure '%s' in:\n%s", vn, key, out);
        f->v[i] = (size_t)x;
    }
}

/* The identities of src/stats.c, exactly (single thread, quiescent):
 *   heap_mapped = small_in_use + large_in_use + thread_cache + central_free
 *                 + span_tail + page_heap_free + returned
 *   in_use = small_in_use + large_in_use + huge
 *   mapped = heap_mapped + huge + meta
 *   resident_estimate = mapped - returned */
static void check_identities(const struct figures *f, const char *tag, const char *vn)
{
    size_t parts = fig(f, "small_in_use_bytes") + fig(f, "large_in_use_bytes") +
                   fig(f, "thread_cache_bytes") + fig(f, "central_free_bytes") +
                   fig(f, "span_tail_bytes") + fig(f, "page_heap_free_bytes") +
                   fig(f, "returned_bytes");
    cr_expect_eq(
        fig(f, "heap_mapped_bytes"), parts,
        "stats_identity (%s, %s): heap_mapped_bytes %zu != small_in_use %zu + large_in_use %zu "
        "+ thread_cache %zu + central_free %zu + span_tail %zu + page_heap_free %zu "
        "+ returned %zu = %zu",
        vn, tag, fig(f, "heap_mapped_bytes"), fig(f, "small_in_use_bytes"),
        fig(f, "large_in_use_bytes"), fig(f, "thread_cache_bytes"), fig(f, "central_free_bytes"),
        fig(f, "span_tail_bytes"), fig(f, "page_heap_free_bytes"), fig(f, "returned_bytes"), parts);
    cr_expect_eq(fig(f, "in_use_bytes"),
                 fig(f, "small_in_use_bytes") + fig(f, "large_in_use_bytes") + fig(f, "huge_bytes"),
                 "stats_identity (%s, %s): in_use_bytes is not small + large + huge", vn, tag);
    cr_expect_eq(fig(f, "mapped_bytes"),
                 fig(f, "heap_mapped_bytes") + fig(f, "huge_bytes") + fig(f, "meta_bytes"),
                 "stats_identity (%s, %s): mapped_bytes is not heap_mapped + huge + meta", vn, tag);
    cr_expect_eq(
        fig(f, "resident_estimate_bytes"), fig(f, "mapped_bytes") - fig(f, "returned_bytes"),
        "stats_identity (%s, %s): resident_estimate_bytes is not mapped - returned", vn, tag);
    cr_expect_eq(fig(f, "threads"), 1,
                 "stats_identity (%s, %s): %zu threads with a cache, expected 1", vn, tag,
                 fig(f, "threads"));
}

/* After a mixed workload (small, large, aligned, calloc, realloc growing
 * and shrinking in place, a huge block moved by mremap, a trim), the
 * figures add up exactly and in_use covers what the program holds; after
 * everything is freed nothing is in use. */
Test(memory, stats_add_up, .timeout = 60)
{
    /* The background thread's TLS block, which libc allocates when it
     * starts, would count as in use; the figures are checked without it. */
    const char *quiet[] = {"TLMALLOC_CONF=background_thread=0", NULL};
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *vn = variant_name((enum child_variant)v);
        struct child_result r;
        run_child((enum child_variant)v, quiet, "stats_identity", NULL, 50, &r);
        char st[64];
        cr_assert(exited_ok(r.status), "stats_identity (%s): %s\nstdout:\n%s\nstderr:\n%s", vn,
                  describe_status(r.status, st, sizeof st), r.out, r.err);
        struct figures live, freed, trimmed;
        read_figures(r.out, "live", &live, vn);
        read_figures(r.out, "freed", &freed, vn);
        read_figures(r.out, "trimmed", &trimmed, vn);
        check_identities(&live, "live", vn);
        check_identities(&freed, "all freed", vn);
        check_identities(&trimmed, "trimmed", vn);

        size_t held = out_value(r.out, "held", 0), held_small = out_value(r.out, "held_small", 0),
               held_large = out_value(r.out, "held_large", 0),
               held_huge = out_value(r.out, "held_huge", 0);
        cr_assert(held && held_small && held_large && held_huge,
                  "stats_identity (%s): missing figures", vn);
        cr_expect_geq(fig(&live, "in_use_bytes"), held,
                      "stats_identity (%s): in_use_bytes %zu < %zu held", vn,
                      fig(&live, "in_use_bytes"), held);
        cr_expect_geq(fig(&live, "small_in_use_bytes"), held_small,
                      "stats_identity (%s): small_in_use_bytes %zu < %zu held in small blocks", vn,
                      fig(&live, "small_in_use_bytes"), held_small);
        cr_expect_geq(fig(&live, "large_in_use_bytes"), held_large,
                      "stats_identity (%s): large_in_use_bytes %zu < %zu held in large blocks", vn,
                      fig(&live, "large_in_use_bytes"), held_large);
        cr_expect_eq(fig(&live, "huge_bytes"), held_huge,
                     "stats_identity (%s): huge_bytes %zu, held %zu", vn, fig(&live, "huge_bytes"),
                     held_huge);
        cr_expect_eq(fig(&live, "huge_count"), 1, "stats_identity (%s): huge_count %zu, 1 held", vn,
                     fig(&live, "huge_count"));

        /* The program holds nothing now. */
        cr_expect_eq(fig(&freed, "huge_count"), 0,
                     "stats_identity (%s): huge_count after freeing all", vn);
        cr_expect_eq(fig(&freed, "huge_bytes"), 0,
                     "stats_identity (%s): huge_bytes after freeing all", vn);
        cr_expect_eq(fig(&freed, "large_in_use_bytes"), 0,
                     "stats_identity (%s): large_in_use_bytes after freeing all", vn);
        cr_expect_eq(fig(&freed, "in_use_bytes"), 0,
                     "stats_identity (%s): the program holds no block, but in_use_bytes = %zu "
                     "(small_in_use_bytes = %zu) before malloc_trim and %zu after it",
                     vn, fig(&freed, "in_use_bytes"), fig(&freed, "small_in_use_bytes"),
                     fig(&trimmed, "in_use_bytes"));
        cr_expect_eq(fig(&trimmed, "in_use_bytes"), 0,
                     "stats_identity (%s): in_use_bytes after trim", vn);
        cr_expect_eq(fig(&trimmed, "page_heap_free_bytes"), 0,
                     "stats_identity (%s): page_heap_free_bytes after malloc_trim(0)", vn);
        cr_expect_eq(fig(&trimmed, "thread_cache_bytes") + fig(&trimmed, "central_free_bytes"), 0,
                     "stats_identity (%s): caches not empty after malloc_trim(0)", vn);
        child_free(&r);
    }
}

/* 16 threads each allocate and free 4 MiB worth of blocks (8 sizes, 64 B
 * to 8 KiB) and then idle: the thread caches together hold at most the
 * budget (thread_cache_budget=8M), whether the threads worked at the same
 * time or one after another. */
static void check_tc_budget(const char *mode)
{
    const char *env[] = {"TLMALLOC_CONF=thread_cache_budget=8M", NULL};
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        const char *vn = variant_name((enum child_variant)v);
        struct child_result r;
        run_child((enum child_variant)v, env, "tc_budget", mode, 50, &r);
        char st[64];
        cr_assert(exited_ok(r.status), "tc_budget %s (%s): %s\nstdout:\n%s\nstderr:\n%s", mode, vn,
                  describe_status(r.status, st, sizeof st), r.out, r.err);
        size_t idle = out_value(r.out, "idle thread_cache_bytes", ~0ull),
               later = out_value(r.out, "idle_later thread_cache_bytes", ~0ull),
               joined = out_value(r.out, "joined thread_cache_bytes", ~0ull),
               threads = out_value(r.out, "idle threads", 0);
        cr_assert(idle != ~0ull && later != ~0ull && joined != ~0ull,
                  "tc_budget (%s): missing figures:\n%s", vn, r.out);
        cr_expect_geq(threads, 16, "tc_budget %s (%s): %zu threads with a cache", mode, vn,
                      threads);
        cr_expect_leq(idle, 8 * MiB,
                      "tc_budget %s (%s): 16 idle threads' caches hold %.1f MiB, budget 8 MiB",
                      mode, vn, MiBf(idle));
        cr_expect_leq(
            later, 8 * MiB,
            "tc_budget %s (%s): 200 ms later the caches still hold %.1f MiB, budget 8 MiB", mode,
            vn, MiBf(later));
        cr_expect_leq(joined, 8 * MiB, "tc_budget %s (%s): after join %.1f MiB", mode, vn,
                      MiBf(joined));
        child_free(&r);
    }
}

Test(memory, thread_cache_budget_threads_at_once, .timeout = 120) { check_tc_budget("conc"); }

Test(memory, thread_cache_budget_threads_one_after_another, .timeout = 120)
{
    check_tc_budget("seq");
}

/* ---- reports ------------------------------------------------------------ */
/* Runs fn(fd) with fd a temporary file and returns what it wrote. */
static char *output_of(void (*fn)(int fd), size_t *len)
{
    char path[] = "/tmp/tlmalloc-test-out-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    fn(fd);
    char *buf = read_back(fd, len);
    cr_assert_not_null(buf, "cannot read back the output");
    return buf;
}

static void print_json(int fd) { tl_stats_print(fd, 1); }
static void print_text(int fd) { tl_stats_print(fd, 0); }
static void print_malloc_stats(int fd)
{
    fflush(stderr);
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    dup2(fd, 2);
    malloc_stats();
    dup2(saved, 2);
    close(saved);
}

/* tl_stats_print(fd, 1): one JSON object on one line ending in "}\n",
 * naming every figure, each with a number. */
Test(memory, stats_json_is_valid)
{
    void *small = malloc(100), *large = malloc(300 * KiB), *huge = malloc(300 * MiB);
    cr_assert(small && large && huge);
    size_t len;
    char *json = output_of(print_json, &len);
    cr_assert_gt(len, 2, "tl_stats_print(fd, 1) wrote nothing");
    cr_expect_eq(json[0], '{', "JSON report starts with '%c'", json[0]);
    cr_expect(len >= 2 && !strcmp(json + len - 2, "}\n"),
              "JSON report does not end with \"}\\n\": '%s'", json + (len > 20 ? len - 20 : 0));
    cr_expect_eq(strchr(json, '\n'), json + len - 1, "JSON report is more than one line");
    for (size_t i = 0; i < NFIGURES; i++) {
        char key[128];
        snprintf(key, sizeof key, "\"%s\": ", figure_names[i]);
        const char *at = strstr(json, key);
        cr_expect_not_null(at, "JSON report lacks %s:\n%s", key, json);
        if (at)
            cr_expect(at[strlen(key)] >= '0' && at[strlen(key)] <= '9',
                      "JSON: %s is not followed by a number", key);
    }
    cr_expect_not_null(strstr(json, "\"classes\": ["), "JSON report lacks the classes array");
    /* Brackets balance and no string is left open. */
    int depth = 0, in_str = 0, ok = 1;
    for (size_t i = 0; i < len; i++) {
        char c = json[i];
        if (in_str) {
            if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']') {
            if (--depth < 0 || (depth == 0 && i != len - 2))
                ok = 0;
        }
    }
    cr_expect(ok && depth == 0 && !in_str, "JSON report does not balance:\n%s", json);
    free(json);

    char *text = output_of(print_text, &len);
    cr_expect_not_null(strstr(text, "in use by the program"), "text report:\n%s", text);
    free(text);
    free(small);
    free(large);
    free(huge);
}

Test(memory, malloc_stats_text)
{
    void *p = malloc(1000);
    cr_assert_not_null(p);
    size_t len;
    char *text = output_of(print_malloc_stats, &len);
    cr_expect_not_null(strstr(text, "in use by the program"),
                       "malloc_stats() printed no 'in use by the program' line:\n%s", text);
    cr_expect_not_null(strstr(text, "tlmalloc statistics"), "malloc_stats() output:\n%s", text);
    free(text);
    free(p);
}

/* A large block is freed, then an aligned block is taken out of its dirty
 * span: the rest of that span ages from the free, so with decay_ms=4000 a
 * look 700 ms later keeps it (it went back at once when the alignment cut
 * gave it the age 0). At most 2 MiB of the 8 (the block and the lead cut
 * off for alignment) may be gone. background_thread=0: this single-threaded
 * child would otherwise give the 8 MiB back at the free. */
Test(memory, aligned_take_keeps_the_age_of_the_rest, .timeout = 60)
{
    const char *env[] = {"TLMALLOC_CONF=decay_ms=4000,background_thread=0", NULL};
    for (int v = 0; v < CHILD_VARIANTS; v++) {
        struct child_result r;
        run_child((enum child_variant)v, env, "aligned_remainder", NULL, 30, &r);
        char st[64];
        const char *name = variant_name((enum child_variant)v);
        cr_assert(exited_ok(r.status), "aligned_remainder (%s): %s\nstdout:\n%s\nstderr:\n%s", name,
                  describe_status(r.status, st, sizeof st), r.out, r.err);
        size_t taken = out_value(r.out, "dirty_after_take", 0),
               after = out_value(r.out, "dirty_after_look", 0);
        cr_assert_geq(taken, 6 * MiB, "aligned_remainder (%s): the freed block is not dirty:\n%s",
                      name, r.out);
        cr_expect_geq(after, 6 * MiB,
                      "aligned_remainder (%s): %.1f MiB dirty after the aligned take, %.1f MiB "
                      "700 ms later with decay_ms=4000: the rest went back early",
                      name, MiBf(taken), MiBf(after));
        child_free(&r);
    }
}

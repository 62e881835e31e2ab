/* t_introspect.c - malloc_info, the operation counters and tl_ctl.
 *
 * Built into both test programs: test_linked (linked with libtlmalloc) and
 * test_preload (tlmalloc preloaded). The tl_ functions are looked up with
 * dlsym, which finds libtlmalloc's in both; malloc_info and mallinfo2 are
 * called by their glibc names, which libtlmalloc replaces. The prefixed
 * library (its own heap beside the system allocator) is dlopen()ed from
 * the build tree for the tests named prefixed_*.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <malloc.h>
#include <unistd.h>

#include "common.h"

typedef int ctl_fn(const char *, void *, size_t *, const void *, size_t);
typedef size_t stat_fn(const char *);
typedef int info_fn(int, FILE *);
typedef void *malloc_fn(size_t);
typedef void free_fn(void *);
typedef void print_fn(int, int);

struct api {
    ctl_fn *ctl;
    stat_fn *stat;
    info_fn *info;
    malloc_fn *malloc;
    free_fn *free;
    print_fn *print;
};

static void *need(void *handle, const char *name)
{
    void *f = dlsym(handle, name);
    cr_assert_not_null(f, "%s is not exported: %s", name, dlerror());
    return f;
}

/* libtlmalloc, linked or preloaded. */
static struct api tlmalloc_api(void)
{
    struct api a = {
        .ctl = (ctl_fn *)need(RTLD_DEFAULT, "tl_ctl"),
        .stat = (stat_fn *)need(RTLD_DEFAULT, "tl_stat"),
        .info = malloc_info,
        .malloc = malloc,
        .free = free,
        .print = (print_fn *)need(RTLD_DEFAULT, "tl_stats_print"),
    };
    Dl_info where;
    cr_assert(dladdr(need(RTLD_DEFAULT, "malloc_info"), &where) && where.dli_fname &&
                  strstr(where.dli_fname, "libtlmalloc"),
              "malloc_info is not tlmalloc's but %s's", where.dli_fname);
    return a;
}

/* libtlmalloc-prefixed from the build tree ($TL_BUILDDIR, as tests/run.sh
 * sets it, else beside this program). */
static struct api prefixed_api(void)
{
    char path[PATH_MAX];
    const char *b = getenv("TL_BUILDDIR");
    snprintf(path, sizeof path, "%s/.libs/libtlmalloc-prefixed.so", b && *b ? b : ".");
    if (access(path, R_OK) != 0) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        cr_assert(n > 0);
        exe[n] = 0;
        *strrchr(exe, '/') = 0;
        snprintf(path, sizeof path, "%s/../.libs/libtlmalloc-prefixed.so", exe);
        if (access(path, R_OK) != 0)
            snprintf(path, sizeof path, "%s/../../.libs/libtlmalloc-prefixed.so", exe);
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(h, "cannot dlopen %s (set TL_BUILDDIR): %s", path, dlerror());
    cr_assert_neq(need(h, "tl_ctl"), dlsym(RTLD_DEFAULT, "tl_ctl"), "not the prefixed library");
    struct api a = {
        .ctl = (ctl_fn *)need(h, "tl_ctl"),
        .stat = (stat_fn *)need(h, "tl_stat"),
        .info = (info_fn *)need(h, "tl_malloc_info"),
        .malloc = (malloc_fn *)need(h, "tl_malloc"),
        .free = (free_fn *)need(h, "tl_free"),
        .print = (print_fn *)need(h, "tl_stats_print"),
    };
    return a;
}

/* ---- malloc_info's XML ----------------------------------------------------- */
static char xml_buf[1 << 20];

/* A stream whose buffer is static, so that writing to it allocates
 * nothing: what malloc_info writes is the heap as it was around the call. */
static FILE *info_stream(void)
{
    static char stream_buf[1 << 16];
    FILE *fp = tmpfile();
    cr_assert_not_null(fp);
    cr_assert_eq(setvbuf(fp, stream_buf, _IOFBF, sizeof stream_buf), 0);
    return fp;
}

/* What was written to fp, into xml_buf; fp is emptied. */
static void read_xml_back(FILE *fp)
{
    cr_assert_eq(fflush(fp), 0);
    long n = ftell(fp);
    cr_assert(n > 0 && (size_t)n < sizeof xml_buf);
    rewind(fp);
    cr_assert_eq(fread(xml_buf, 1, (size_t)n, fp), (size_t)n);
    xml_buf[n] = 0;
    rewind(fp);
    cr_assert_eq(ftruncate(fileno(fp), 0), 0);
}

static void capture_info(const struct api *a)
{
    FILE *fp = info_stream();
    cr_assert_eq(a->info(0, fp), 0);
    read_xml_back(fp);
    fclose(fp);
}

/* Well-formed, as far as this format needs: every element opened is
 * closed in order, attributes are name="value", one root <malloc>. */
static void check_well_formed(const char *x)
{
    char stack[16][32];
    int depth = 0, roots = 0;
    for (const char *p = x; *p; p++) {
        if (*p != '<') {
            cr_assert(*p == '\n' || *p == ' ' || depth > 0, "text outside the root: %.40s", p);
            continue;
        }
        const char *end = strchr(p, '>');
        cr_assert_not_null(end, "unterminated tag: %.40s", p);
        bool closing = p[1] == '/', empty = end[-1] == '/';
        const char *name = p + 1 + closing;
        size_t len = strcspn(name, " />");
        cr_assert(len > 0 && len < 32, "bad element name: %.40s", p);
        if (closing) {
            cr_assert(depth > 0 && strlen(stack[depth - 1]) == len &&
                          !memcmp(stack[depth - 1], name, len),
                      "</%.*s> does not close the open element", (int)len, name);
            depth--;
        } else {
            /* attributes: name="value" pairs */
            for (const char *q = name + len; q < end - empty;) {
                if (*q == ' ') {
                    q++;
                    continue;
                }
                const char *eq = strchr(q, '=');
                cr_assert(eq && eq < end && eq[1] == '"', "bad attribute: %.40s", q);
                const char *close = strchr(eq + 2, '"');
                cr_assert(close && close < end, "unterminated attribute: %.40s", q);
                q = close + 1;
            }
            if (!empty) {
                cr_assert(depth < 16);
                if (depth == 0)
                    roots++;
                memcpy(stack[depth], name, len);
                stack[depth++][len] = 0;
            } else {
                cr_assert(depth > 0, "empty element outside the root");
            }
        }
        p = end;
    }
    cr_assert_eq(depth, 0, "%d elements left open", depth);
    cr_assert_eq(roots, 1);
    cr_assert(!strncmp(x, "<malloc version=\"1\">\n", 21), "no <malloc version=\"1\"> root");
}

/* The value of attribute attr of the first element starting with tag in
 * [from, to); -1 when absent. */
static long long xml_attr(const char *from, const char *to, const char *tag, const char *attr)
{
    const char *p = from;
    while ((p = strstr(p, tag)) && p < to) {
        const char *end = strchr(p, '>');
        char key[40];
        snprintf(key, sizeof key, " %s=\"", attr);
        const char *v = strstr(p, key);
        if (v && v < end)
            return atoll(v + strlen(key));
        p = end;
    }
    return -1;
}

struct heap_part {
    const char *start, *end;
};

static struct heap_part heap_of(const char *x, int nr)
{
    char tag[32];
    snprintf(tag, sizeof tag, "<heap nr=\"%d\">", nr);
    struct heap_part h = {strstr(x, tag), NULL};
    cr_assert_not_null(h.start, "no %s", tag);
    h.end = strstr(h.start, "</heap>");
    cr_assert_not_null(h.end);
    return h;
}

/* The sum of the total (or count) of every <size> of a heap. */
static long long sizes_sum(struct heap_part h, const char *attr)
{
    long long sum = 0;
    char key[40];
    snprintf(key, sizeof key, " %s=\"", attr);
    for (const char *p = h.start; (p = strstr(p, "<size ")) && p < h.end; p++)
        sum += atoll(strstr(p, key) + strlen(key));
    return sum;
}

static bool same_mallinfo(const struct mallinfo2 *a, const struct mallinfo2 *b)
{
    return a->arena == b->arena && a->fordblks == b->fordblks && a->hblks == b->hblks &&
           a->hblkhd == b->hblkhd && a->uordblks == b->uordblks;
}

enum { SMALL_N = 2000 };
static void *small_blocks[SMALL_N];

Test(introspect, malloc_info_xml_matches_mallinfo2_and_tl_stat, .timeout = 120)
{
    struct api a = tlmalloc_api();
    for (int i = 0; i < SMALL_N; i++)
        cr_assert_not_null(small_blocks[i] = malloc(opq(100)));
    for (int i = 0; i < SMALL_N; i += 2)
        free(small_blocks[i]);
    void *large[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_not_null(large[i] = malloc(opq(MiB + 12345)));
        memset(large[i], 1, MiB);
    }
    free(large[1]);
    void *huge = malloc(opq(300 * MiB));
    cr_assert_not_null(huge);
    /* Other threads (the background thread's decay) may move memory
     * between two readings: the figures are compared when mallinfo2 is the
     * same before and after. */
    struct mallinfo2 m1, m2;
    size_t tc, central;
    FILE *fp = info_stream();
    for (int tries = 0;; tries++) {
        cr_assert_lt(tries, 50, "the heap never stood still around malloc_info");
        m1 = mallinfo2();
        tc = a.stat("thread_cache_bytes");
        central = a.stat("central_free_bytes");
        cr_assert_eq(a.info(0, fp), 0);
        m2 = mallinfo2();
        bool still = same_mallinfo(&m1, &m2) && tc == a.stat("thread_cache_bytes") &&
                     central == a.stat("central_free_bytes");
        read_xml_back(fp);
        if (still)
            break;
    }
    fclose(fp);
    const char *x = xml_buf;
    check_well_formed(x);
    struct heap_part h0 = heap_of(x, 0), h1 = heap_of(x, 1);
    const char *top = strstr(x, "</heap>\n<total");
    cr_assert_not_null(top, "no totals after the heaps");
    const char *end = x + strlen(x);
    long long fast = xml_attr(top, end, "<total type=\"fast\"", "size");
    long long rest = xml_attr(top, end, "<total type=\"rest\"", "size");
    cr_assert_eq(fast + rest, (long long)m1.fordblks, "fast %lld + rest %lld != fordblks %zu", fast,
                 rest, m1.fordblks);
    cr_assert_eq(xml_attr(top, end, "<total type=\"mmap\"", "count"), (long long)m1.hblks);
    cr_assert_eq(xml_attr(top, end, "<total type=\"mmap\"", "size"), (long long)m1.hblkhd);
    cr_assert_geq(m1.hblkhd, 300 * MiB);
    cr_assert_eq(xml_attr(top, end, "<system type=\"current\"", "size"), (long long)m1.arena);
    cr_assert_geq(xml_attr(top, end, "<system type=\"max\"", "size"), (long long)m1.arena);
    /* heap 0: the size classes; fast is the thread caches */
    long long fast0 = xml_attr(h0.start, h0.end, "<total type=\"fast\"", "size");
    long long rest0 = xml_attr(h0.start, h0.end, "<total type=\"rest\"", "size");
    cr_assert_eq(fast0, (long long)tc);
    cr_assert_eq(rest0, (long long)central);
    cr_assert_eq(sizes_sum(h0, "total"), fast0 + rest0);
    cr_assert_eq(sizes_sum(h0, "count"),
                 xml_attr(h0.start, h0.end, "<total type=\"fast\"", "count") +
                     xml_attr(h0.start, h0.end, "<total type=\"rest\"", "count"));
    /* the 1000 freed 100-byte blocks are free objects of the 112-byte class */
    cr_assert_geq(xml_attr(h0.start, h0.end, "<size from=\"112\"", "count"), SMALL_N / 2);
    /* heap 1: the page heap; its free spans, the freed large block among them */
    long long rest1 = xml_attr(h1.start, h1.end, "<total type=\"rest\"", "size");
    cr_assert_eq(sizes_sum(h1, "total"), rest1);
    cr_assert_geq(rest1, (long long)MiB);
    cr_assert_eq(xml_attr(h0.start, h0.end, "<system type=\"current\"", "size") +
                     xml_attr(h1.start, h1.end, "<system type=\"current\"", "size"),
                 (long long)m1.arena);
    free(huge);
    free(large[0]);
    free(large[2]);
    for (int i = 1; i < SMALL_N; i += 2)
        free(small_blocks[i]);
}

Test(introspect, malloc_info_rejects_options_as_glibc)
{
    struct api a = tlmalloc_api();
    FILE *fp = tmpfile();
    cr_assert_not_null(fp);
    errno = 0;
    /* glibc 2.36 returns EINVAL itself (its manual says -1 and errno). */
    cr_assert_eq(a.info(1, fp), EINVAL);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(ftell(fp), 0, "malloc_info wrote something for bad options");
    fclose(fp);
}

/* ---- operation counters ---------------------------------------------------- */
static const char *const counter_names[] = {
    "mallocs",
    "frees",
    "small_mallocs",
    "small_frees",
    "large_mallocs",
    "large_frees",
    "huge_mallocs",
    "huge_frees",
    "refills",
    "flushes",
    "page_heap_grows",
    "page_heap_grow_bytes",
    "page_heap_releases",
    "page_heap_release_bytes",
};
enum { NCOUNTERS = sizeof counter_names / sizeof counter_names[0] };
enum {
    C_MALLOCS,
    C_FREES,
    C_SMALL_M,
    C_SMALL_F,
    C_LARGE_M,
    C_LARGE_F,
    C_HUGE_M,
    C_HUGE_F,
    C_REFILLS,
    C_FLUSHES,
    C_GROWS,
    C_GROW_BYTES,
    C_RELEASES,
    C_RELEASE_BYTES
};

static void read_counters(const struct api *a, size_t *v)
{
    for (int i = 0; i < NCOUNTERS; i++) {
        v[i] = a->stat(counter_names[i]);
        cr_assert_neq(v[i], (size_t)-1, "tl_stat(\"%s\") is unknown", counter_names[i]);
    }
}

enum { PAIRS = 100000 };

/* 64 live blocks, each freed and allocated again PAIRS times in all: the
 * fast paths (and the tick, every 1024 frees) do nearly everything. */
static void churn(const struct api *a)
{
    void *volatile slots[64];
    for (int k = 0; k < 64; k++)
        cr_assert_not_null(slots[k] = a->malloc(opq(64)));
    for (long i = 0; i < PAIRS; i++) {
        a->free(slots[i & 63]);
        cr_assert_not_null(slots[i & 63] = a->malloc(opq(64 + (size_t)(i & 7))));
    }
    for (int k = 0; k < 64; k++)
        a->free(slots[k]);
}

/* One run of the pattern: the counters' deltas, exact as they should be,
 * or false. */
static bool counted_churn_once(const struct api *a, size_t *d)
{
    size_t before[NCOUNTERS], after[NCOUNTERS];
    read_counters(a, before);
    churn(a);
    void *large = a->malloc(opq(2 * MiB));
    cr_assert_not_null(large);
    a->free(large);
    void *huge = a->malloc(opq(300 * MiB));
    cr_assert_not_null(huge);
    a->free(huge);
    read_counters(a, after);
    for (int i = 0; i < NCOUNTERS; i++)
        d[i] = after[i] - before[i];
    return d[C_SMALL_M] == PAIRS + 64 && d[C_SMALL_F] == PAIRS + 64 && d[C_LARGE_M] == 1 &&
           d[C_LARGE_F] == 1 && d[C_HUGE_M] == 1 && d[C_HUGE_F] == 1 &&
           d[C_MALLOCS] == PAIRS + 64 + 2 && d[C_FREES] == PAIRS + 64 + 2;
}

/* The counters are global: a test runner's thread that allocates during a
 * run changes them too, so a run may be repeated; a miscount fails every
 * run. */
static void check_counted_churn(const struct api *a)
{
    size_t d[NCOUNTERS];
    for (int run = 0; run < 5; run++)
        if (counted_churn_once(a, d))
            return;
    cr_assert_fail("deltas after %d pairs, a large and a huge block: small mallocs %zu, frees "
                   "%zu; large %zu/%zu; huge %zu/%zu; all %zu/%zu",
                   PAIRS + 64, d[C_SMALL_M], d[C_SMALL_F], d[C_LARGE_M], d[C_LARGE_F], d[C_HUGE_M],
                   d[C_HUGE_F], d[C_MALLOCS], d[C_FREES]);
}

Test(introspect, counters_count_a_known_pattern)
{
    struct api a = tlmalloc_api();
    check_counted_churn(&a);
}

static void *churn_thread(void *arg)
{
    churn(arg);
    return NULL;
}

/* A thread's counts survive its exit; refills and flushes move. */
Test(introspect, counters_count_other_threads_after_exit)
{
    struct api a = tlmalloc_api();
    size_t before[NCOUNTERS], after[NCOUNTERS];
    read_counters(&a, before);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, churn_thread, &a), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_join(t[i], NULL), 0);
    read_counters(&a, after);
    /* glibc's thread start and exit allocate a little of their own */
    size_t frees = after[C_SMALL_F] - before[C_SMALL_F];
    size_t mallocs = after[C_SMALL_M] - before[C_SMALL_M];
    cr_assert_geq(frees, 2 * (PAIRS + 64));
    cr_assert_leq(frees, 2 * (PAIRS + 64) + 64);
    cr_assert_geq(mallocs, 2 * (PAIRS + 64));
    cr_assert_leq(mallocs, 2 * (PAIRS + 64) + 64);
    cr_assert_gt(after[C_REFILLS], before[C_REFILLS]);
    cr_assert_gt(after[C_FLUSHES], before[C_FLUSHES],
                 "a flush after the exit's flush of 64 blocks");
}

Test(introspect, counters_in_json_and_malloc_stats)
{
    struct api a = tlmalloc_api();
    void (*print)(int, int) = (void (*)(int, int))need(RTLD_DEFAULT, "tl_stats_print");
    FILE *fp = tmpfile();
    cr_assert_not_null(fp);
    print(fileno(fp), 1);
    char buf[16384] = {0};
    rewind(fp);
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    cr_assert_gt(n, 0);
    for (int i = 0; i < NCOUNTERS; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\": ", counter_names[i]);
        const char *v = strstr(buf, key);
        cr_assert_not_null(v, "no %s in the JSON statistics", key);
        if (i == C_GROWS || i == C_GROW_BYTES)
            cr_assert_eq((size_t)atoll(v + strlen(key)), a.stat(counter_names[i]));
    }
    fclose(fp);
    /* malloc_stats writes the text report, counters included, to stderr */
    fp = tmpfile();
    int saved = dup(2);
    dup2(fileno(fp), 2);
    malloc_stats();
    dup2(saved, 2);
    close(saved);
    rewind(fp);
    memset(buf, 0, sizeof buf);
    cr_assert_gt(fread(buf, 1, sizeof buf - 1, fp), 0);
    cr_assert_not_null(strstr(buf, "blocks allocated"), "%s", buf);
    cr_assert_not_null(strstr(buf, "thread cache refills"));
    cr_assert_not_null(strstr(buf, "page heap releases"));
    fclose(fp);
}

/* ---- tl_ctl ------------------------------------------------------------------ */
Test(ctl, unknown_names_and_wrong_sizes)
{
    struct api a = tlmalloc_api();
    uint64_t v = 0;
    size_t len = sizeof v;
    cr_assert_eq(a.ctl("no.such.name", &v, &len, NULL, 0), ENOENT);
    cr_assert_eq(a.ctl("", NULL, NULL, NULL, 0), ENOENT);
    cr_assert_eq(a.ctl(NULL, NULL, NULL, NULL, 0), EINVAL);
    uint32_t small = 0;
    len = sizeof small;
    cr_assert_eq(a.ctl("decay_ms", &small, &len, NULL, 0), EINVAL);
    cr_assert_eq(len, sizeof(uint64_t), "the right size is given back");
    cr_assert_eq(a.ctl("decay_ms", NULL, NULL, &small, sizeof small), EINVAL);
    cr_assert_eq(a.ctl("decay_ms", &v, NULL, NULL, 0), EINVAL);
    cr_assert_eq(a.ctl("thread.flush", NULL, NULL, &v, sizeof v), EINVAL);
    len = sizeof v;
    cr_assert_eq(a.ctl("thread.flush", &v, &len, NULL, 0), EINVAL);
    int one = 1;
    cr_assert_eq(a.ctl("background_thread.running", NULL, NULL, &one, sizeof one), EPERM);
    int bad = 7;
    cr_assert_eq(a.ctl("background_thread", NULL, NULL, &bad, sizeof bad), EINVAL);
    /* reading and writing in one call: the old value comes back */
    uint64_t old = 0, set = 777;
    len = sizeof old;
    cr_assert_eq(a.ctl("decay_ms", &old, &len, &set, sizeof set), 0);
    uint64_t now = 0;
    cr_assert_eq(a.ctl("decay_ms", &now, &len, &old, sizeof old), 0);
    cr_assert_eq(now, 777);
}

static uint64_t get_u64(const struct api *a, const char *name)
{
    uint64_t v;
    size_t len = sizeof v;
    cr_assert_eq(a->ctl(name, &v, &len, NULL, 0), 0, "reading %s", name);
    return v;
}

static void set_u64(const struct api *a, const char *name, uint64_t v)
{
    cr_assert_eq(a->ctl(name, NULL, NULL, &v, sizeof v), 0, "writing %s", name);
}

/* decay_ms: with an hour, a freed large block stays resident; set to 0,
 * the next page heap call gives it back. */
static void check_decay(const struct api *a)
{
    set_u64(a, "decay_ms", 3600 * 1000);
    cr_assert_eq(get_u64(a, "decay_ms"), 3600 * 1000);
    void *p = a->malloc(opq(8 * MiB));
    cr_assert_not_null(p);
    memset(p, 1, 8 * MiB);
    a->free(p);
    cr_assert_geq(a->stat("page_heap_free_bytes"), 8 * MiB, "freed at once with an hour's decay");
    size_t released = a->stat("page_heap_release_bytes");
    set_u64(a, "decay_ms", 0);
    void *q = a->malloc(opq(128 * KiB)); /* any page heap call looks at the clock */
    cr_assert_not_null(q);
    a->free(q);
    cr_assert_lt(a->stat("page_heap_free_bytes"), 8 * MiB);
    cr_assert_geq(a->stat("page_heap_release_bytes") - released, 8 * MiB);
    set_u64(a, "decay_ms", 500);
}

Test(ctl, decay_ms)
{
    struct api a = tlmalloc_api();
    check_decay(&a);
}

/* Bytes of objects of size (a class size) in all thread caches, from the
 * JSON statistics. Other threads (the test runner's) use other sizes. */
static size_t class_cached(const struct api *a, size_t size)
{
    static char json[1 << 16];
    FILE *fp = tmpfile();
    cr_assert_not_null(fp);
    a->print(fileno(fp), 1);
    rewind(fp);
    size_t n = fread(json, 1, sizeof json - 1, fp);
    fclose(fp);
    json[n] = 0;
    char key[64];
    snprintf(key, sizeof key, "{\"size\": %zu, ", size);
    const char *c = strstr(json, key);
    if (!c)
        return 0;
    const char *v = strstr(c, "\"thread_cache_bytes\": ");
    cr_assert_not_null(v);
    return (size_t)atoll(v + strlen("\"thread_cache_bytes\": "));
}

static size_t cached_after_freeing(const struct api *a, size_t size, int n)
{
    void **p = calloc((size_t)n, sizeof *p);
    cr_assert_not_null(p);
    for (int i = 0; i < n; i++)
        cr_assert_not_null(p[i] = a->malloc(opq(size)));
    for (int i = 0; i < n; i++)
        a->free(p[i]);
    free(p);
    return a->stat("thread_cache_bytes");
}

/* With decay_ms at an hour while it measures: a timed scavenge in between
 * (decay_ms/4 after the last, 125 ms by default) cuts every list to one
 * batch, and on a loaded machine one came between the frees and the read
 * ("the default keeps more" failed once in about 15 loaded runs, and every
 * time with decay_ms=10). */
Test(ctl, thread_cache_max)
{
    struct api a = tlmalloc_api();
    size_t decay = get_u64(&a, "decay_ms");
    set_u64(&a, "decay_ms", 3600 * 1000);
    size_t max = get_u64(&a, "thread_cache_max");
    cr_assert_gt(cached_after_freeing(&a, 1000, 4000), 512 * KiB, "the default keeps more");
    set_u64(&a, "thread_cache_max", 256 * KiB);
    cr_assert_eq(get_u64(&a, "thread_cache_max"), 256 * KiB);
    size_t cached = cached_after_freeing(&a, 1000, 4000);
    cr_assert_leq(cached, 256 * KiB, "%zu bytes cached above thread_cache_max", cached);
    set_u64(&a, "thread_cache_max", max);
    set_u64(&a, "decay_ms", decay);
}

struct budget_run {
    const struct api *a;
    size_t cached;
};

/* 3000-byte blocks are of the 3072-byte class. */
static void *budget_thread(void *arg)
{
    struct budget_run *r = arg;
    cached_after_freeing(r->a, 3000, 200);
    r->cached = class_cached(r->a, 3072);
    return NULL;
}

static size_t cached_in_new_thread(const struct api *a)
{
    struct budget_run r = {a, 0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, budget_thread, &r), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    return r.cached;
}

Test(ctl, thread_cache_budget)
{
    struct api a = tlmalloc_api();
    size_t budget = get_u64(&a, "thread_cache_budget");
    cr_assert_eq(a.ctl("thread.flush", NULL, NULL, NULL, 0), 0);
    set_u64(&a, "thread_cache_budget", 0);
    cr_assert_eq(get_u64(&a, "thread_cache_budget"), 0);
    cr_assert_eq(cached_in_new_thread(&a), 0, "a thread cached with no budget");
    set_u64(&a, "thread_cache_budget", budget);
    cr_assert_gt(cached_in_new_thread(&a), 0, "no cache once the budget is back");
}

static int task_count(void)
{
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int get_int(const struct api *a, const char *name)
{
    int v;
    size_t len = sizeof v;
    cr_assert_eq(a->ctl(name, &v, &len, NULL, 0), 0, "reading %s", name);
    return v;
}

static int set_int(const struct api *a, const char *name, int v)
{
    return a->ctl(name, NULL, NULL, &v, sizeof v);
}

/* The kernel may list an ended thread for a moment after the join. */
static bool tasks_become(int want)
{
    for (int i = 0; i < 2000; i++) {
        if (task_count() == want)
            return true;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return false;
}

Test(ctl, background_thread, .timeout = 60)
{
    struct api a = tlmalloc_api();
    cr_assert_eq(set_int(&a, "background_thread", 0), 0);
    cr_assert_eq(get_int(&a, "background_thread"), 0);
    cr_assert_eq(get_int(&a, "background_thread.running"), 0);
    int tasks = task_count();
    cr_assert_eq(set_int(&a, "background_thread", 1), 0);
    cr_assert_eq(get_int(&a, "background_thread"), 1);
    cr_assert_eq(get_int(&a, "background_thread.running"), 1);
    cr_assert(tasks_become(tasks + 1), "no new thread");
    /* a child has no background thread, and can start and stop its own */
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        alarm(30);
        int ok = get_int(&a, "background_thread.running") == 0 && task_count() == 1 &&
                 set_int(&a, "background_thread", 1) == 0 &&
                 get_int(&a, "background_thread.running") == 1 && tasks_become(2) &&
                 set_int(&a, "background_thread", 0) == 0 && tasks_become(1);
        _exit(ok ? 0 : 1);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's background thread: %d", st);
    cr_assert_eq(set_int(&a, "background_thread", 0), 0);
    cr_assert_eq(get_int(&a, "background_thread.running"), 0);
    cr_assert(tasks_become(tasks), "the thread did not end");
    cr_assert_eq(set_int(&a, "background_thread", 2), 0);
    cr_assert_eq(get_int(&a, "background_thread"), 2);
}

Test(ctl, thread_flush)
{
    struct api a = tlmalloc_api();
    cached_after_freeing(&a, 3000, 200);
    cr_assert_gt(class_cached(&a, 3072), 0);
    cr_assert_eq(a.ctl("thread.flush", NULL, NULL, NULL, 0), 0);
    cr_assert_eq(class_cached(&a, 3072), 0);
}

static void check_release(const struct api *a)
{
    size_t releases = a->stat("page_heap_releases");
    size_t grows = a->stat("page_heap_grows");
    void *p = a->malloc(opq(200 * MiB));
    cr_assert_not_null(p);
    memset(p, 1, 200 * MiB);
    cr_assert_gt(a->stat("page_heap_grows"), grows, "200 MiB without growing the page heap");
    a->free(p);
    cr_assert_geq(a->stat("page_heap_free_bytes"), 200 * MiB);
    size_t returned = a->stat("returned_bytes");
    cr_assert_eq(a->ctl("release", NULL, NULL, NULL, 0), 0);
    cr_assert_eq(a->stat("page_heap_free_bytes"), 0);
    cr_assert_geq(a->stat("returned_bytes"), returned + 200 * MiB);
    cr_assert_gt(a->stat("page_heap_releases"), releases);
}

Test(ctl, release, .timeout = 60)
{
    struct api a = tlmalloc_api();
    check_release(&a);
}

/* ---- the prefixed library ------------------------------------------------- */
/* The profiler's names in a process started without prof=1 (this one):
 * prof.active reads 0 and cannot be set, prof.dump has nothing to dump.
 * With prof=1 they are tested in fresh processes (t_prof.c). */
Test(ctl, prof_names_without_prof)
{
    struct api a = tlmalloc_api();
    int active = 7;
    size_t len = sizeof active;
    cr_assert_eq(a.ctl("prof.active", &active, &len, NULL, 0), 0);
    cr_assert_eq(active, 0);
    int one = 1;
    cr_assert_eq(a.ctl("prof.active", NULL, NULL, &one, sizeof one), ENOENT);
    cr_assert_eq(a.ctl("prof.dump", NULL, NULL, NULL, 0), ENOENT);
    const char *path = "/nonexistent/never.heap";
    cr_assert_eq(a.ctl("prof.dump", NULL, NULL, &path, sizeof path), ENOENT);
    cr_assert_eq(a.ctl("prof.dump", NULL, NULL, &path, 1), EINVAL);
}

Test(ctl, prefixed_library, .timeout = 60)
{
    struct api a = prefixed_api();
    check_counted_churn(&a);
    check_decay(&a);
    check_release(&a);
    cr_assert_eq(a.ctl("no.such.name", NULL, NULL, NULL, 0), ENOENT);
    cached_after_freeing(&a, 3000, 200);
    cr_assert_gt(class_cached(&a, 3072), 0);
    cr_assert_eq(a.ctl("thread.flush", NULL, NULL, NULL, 0), 0);
    cr_assert_eq(class_cached(&a, 3072), 0);
    capture_info(&a);
    check_well_formed(xml_buf);
    FILE *fp = tmpfile();
    cr_assert_eq(a.info(1, fp), EINVAL);
    fclose(fp);
}

/* ---- exited threads' caches ------------------------------------------------
 * A thread that exits leaves its lists for the next thread to start, which
 * takes them as they are: its first malloc of a class the exited thread
 * cached returns the block that thread freed last (the head of its list),
 * with no walk of the list at the exit and no refill at the start. 3000 B
 * is a class nothing else in these programs uses. */
#define KEPT_SIZE 3000
#define KEPT_N 8

static void *free_eight(void *arg)
{
    void **blocks = arg;
    for (int i = 0; i < KEPT_N; i++)
        blocks[i] = malloc(KEPT_SIZE);
    for (int i = 0; i < KEPT_N; i++)
        free(blocks[i]);
    return NULL;
}

static void *malloc_one(void *arg)
{
    *(void **)arg = malloc(KEPT_SIZE);
    return NULL;
}

static void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
}

/* decay_ms for the length of a test: kept caches go back after a quarter */
static uint64_t set_decay(struct api *a, uint64_t ms)
{
    uint64_t old = 0;
    size_t len = sizeof old;
    cr_assert_eq(a->ctl("decay_ms", &old, &len, &ms, sizeof ms), 0);
    return old;
}

Test(introspect, next_thread_adopts_an_exited_threads_cache)
{
    struct api a = tlmalloc_api();
    uint64_t old = set_decay(&a, 3600 * 1000);
    void *blocks[KEPT_N], *got = NULL;
    run_thread(free_eight, blocks);
    run_thread(malloc_one, &got);
    cr_assert_eq(got, blocks[KEPT_N - 1],
                 "the next thread got %p, not %p, the exited thread's last free", got,
                 blocks[KEPT_N - 1]);
    free(got);
    set_decay(&a, old);
}

/* The kept lists count as thread cache bytes; malloc_trim gives them back,
 * and so does time, when no thread starts to take them. */
Test(introspect, kept_caches_go_back_on_trim_and_in_time)
{
    struct api a = tlmalloc_api();
    uint64_t old = set_decay(&a, 3600 * 1000);
    void *blocks[KEPT_N];
    size_t before = a.stat("thread_cache_bytes");
    run_thread(free_eight, blocks);
    size_t kept = a.stat("thread_cache_bytes");
    cr_assert_geq(kept, before + KEPT_N * KEPT_SIZE, "kept %zu, before %zu", kept, before);
    malloc_trim(0);
    size_t trimmed = a.stat("thread_cache_bytes");
    cr_assert_leq(trimmed + KEPT_N * KEPT_SIZE, kept, "trimmed %zu, kept %zu", trimmed, kept);

    /* the heap is too small here for the background thread to start by
     * itself; time gives memory back through it or a timed scavenge */
    int always = 1, bg_old = 2;
    size_t len = sizeof bg_old;
    cr_assert_eq(a.ctl("background_thread", &bg_old, &len, &always, sizeof always), 0);
    set_decay(&a, 100);
    run_thread(free_eight, blocks);
    kept = a.stat("thread_cache_bytes");
    cr_assert_geq(kept, trimmed + KEPT_N * KEPT_SIZE);
    /* released by the background thread (or a timed scavenge) after 25 ms;
     * 10 s is the limit on a loaded machine, not the expectation */
    size_t now = kept;
    for (int i = 0; i < 1000 && now + KEPT_N * KEPT_SIZE > kept; i++) {
        usleep(10 * 1000);
        now = a.stat("thread_cache_bytes");
    }
    cr_assert_leq(now + KEPT_N * KEPT_SIZE, kept, "still %zu after 10 s, %zu kept", now, kept);
    set_decay(&a, old);
    cr_assert_eq(a.ctl("background_thread", NULL, NULL, &bg_old, sizeof bg_old), 0);
}

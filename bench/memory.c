/* memory: peak RSS, and how much of a large peak goes back once freed.
 *
 *   memory [-t THREADS] [-T TOTAL] [-f SMALLPERCENT] [-w WARMSECONDS]
 *          [-d LIGHTSECONDS] [-x] [-i] [-q]
 *
 * THREADS threads (default 2) first do light work (a few small malloc/free
 * pairs every millisecond, 32 blocks live per thread) for WARMSECONDS
 * (default 0.5): the program's steady state before its peak.  Then they
 * allocate TOTAL bytes between them (default 1 GiB): SMALLPERCENT (default
 * 50) of it in small blocks of 16..512 bytes, the rest in large blocks of
 * 64 KiB..4 MiB, each written to (every page of the large ones).  Then each
 * thread checks and frees its own blocks, and the threads go on with the
 * same light work for LIGHTSECONDS (default 1) before they exit.
 *
 * It prints the resident set size (from /proc/self/statm) at each stage:
 * cold (threads started, nothing allocated), before the peak (after the
 * warm-up: the pre-peak level), at the peak, right after the free, after
 * malloc_trim(0), after the light work, and after the threads have exited;
 * and ru_maxrss.
 * malloc_trim is looked up with dlsym, so it is the preloaded allocator's if
 * it has one and glibc's otherwise; the line says which.  With -x it is not
 * called (trimmed_kib then repeats freed_kib), to see what the allocator
 * gives back on its own during the light work.
 *
 * With -i (idle; implies -x) the threads do no light work after the free:
 * they wait, making no allocator call at all, for LIGHTSECONDS, and the
 * RSS is read then, while they still wait: what the allocator gives back
 * when nothing in the program calls it (a server waiting for work after a
 * burst).  The light_kib figure is that reading.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"

const char *bench_name = "memory";

#define SMALL_MIN 16
#define SMALL_MAX 512
#define LARGE_MIN (64u << 10)
#define LARGE_MAX (4u << 20)

struct worker {
    pthread_t tid;
    int id;
    size_t small_bytes, large_bytes;
    void **small;
    size_t nsmall;
    void **large;
    size_t *large_sz;
    size_t nlarge;
    unsigned long long light_ops;
};

static pthread_barrier_t bar;
static atomic_int stop_warm, stop_light;
static int idle; /* -i: no light work after the free */
static double warm_seconds = 0.5, light_seconds = 1.0;

/* The light work: 32 live blocks of 16..256 bytes, 8 replaced every
 * millisecond, each checked before it is freed. */
struct light {
    void *live[32];
    size_t live_sz[32];
    uint64_t n;
};

static void light_work(struct light *l, bench_rng *rng, atomic_int *stop)
{
    while (!atomic_load(stop)) {
        for (int k = 0; k < 8; k++, l->n++) {
            unsigned j = (unsigned)(l->n % 32);
            if (l->live[j] != NULL) {
                if (!bench_stamp_ok(l->live[j], l->live_sz[j], l->n - 32))
                    bench_fail("light-work block damaged");
                free(l->live[j]);
            }
            l->live_sz[j] = bench_rng_range(rng, 16, 256);
            l->live[j] = bench_xmalloc(l->live_sz[j]);
            bench_stamp(l->live[j], l->live_sz[j], l->n);
        }
        usleep(1000);
    }
}

static uint64_t small_tag(int id, size_t i) { return ((uint64_t)id << 40) | i; }

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    bench_rng rng, light_rng;
    struct light light = {0};

    bench_rng_seed(&light_rng, 5000u + (unsigned)w->id);
    pthread_barrier_wait(&bar); /* main has measured the cold RSS */
    light_work(&light, &light_rng, &stop_warm);
    pthread_barrier_wait(&bar); /* warm-up done */
    pthread_barrier_wait(&bar); /* start */

    /* small blocks: the sizes come again from the same seed at free time */
    size_t cap = w->small_bytes / ((SMALL_MIN + SMALL_MAX) / 2) + 16;
    w->small = bench_xmalloc(cap * sizeof(void *));
    bench_rng_seed(&rng, 1000u + (unsigned)w->id);
    size_t got = 0;
    while (got < w->small_bytes && w->nsmall < cap) {
        size_t sz = bench_rng_range(&rng, SMALL_MIN, SMALL_MAX);
        void *p = bench_xmalloc(sz);
        bench_stamp(p, sz, small_tag(w->id, w->nsmall));
        w->small[w->nsmall++] = p;
        got += sz;
    }
    size_t lcap = w->large_bytes / LARGE_MIN + 16;
    w->large = bench_xmalloc(lcap * sizeof(void *));
    w->large_sz = bench_xmalloc(lcap * sizeof(size_t));
    got = 0;
    while (got < w->large_bytes && w->nlarge < lcap) {
        size_t sz = bench_rng_range(&rng, LARGE_MIN, LARGE_MAX);
        unsigned char *p = bench_xmalloc(sz);
        for (size_t off = 0; off < sz; off += 4096)
            p[off] = (unsigned char)(off >> 12);
        bench_stamp(p, sz, small_tag(w->id, (1u << 30) | w->nlarge));
        w->large[w->nlarge] = p;
        w->large_sz[w->nlarge++] = sz;
        got += sz;
    }

    pthread_barrier_wait(&bar); /* peak reached */
    pthread_barrier_wait(&bar); /* main has measured */

    bench_rng_seed(&rng, 1000u + (unsigned)w->id);
    for (size_t i = 0; i < w->nsmall; i++) {
        size_t sz = bench_rng_range(&rng, SMALL_MIN, SMALL_MAX);
        if (!bench_stamp_ok(w->small[i], sz, small_tag(w->id, i)))
            bench_fail("small block %zu of thread %d damaged", i, w->id);
        free(w->small[i]);
    }
    for (size_t i = 0; i < w->nlarge; i++) {
        unsigned char *p = w->large[i];
        size_t sz = w->large_sz[i];
        if (!bench_stamp_ok(p, sz, small_tag(w->id, (1u << 30) | i)))
            bench_fail("large block %zu of thread %d damaged", i, w->id);
        for (size_t off = 4096; off + 8 < sz; off += 4096)
            if (p[off] != (unsigned char)(off >> 12))
                bench_fail("page %zu of large block %zu damaged", off >> 12, i);
        free(p);
    }
    free(w->small);
    free(w->large);
    free(w->large_sz);

    pthread_barrier_wait(&bar); /* freed */
    pthread_barrier_wait(&bar); /* main has measured and trimmed */

    if (!idle)
        light_work(&light, &light_rng, &stop_light);
    w->light_ops = light.n;

    pthread_barrier_wait(&bar); /* light work (or idle wait) done */
    pthread_barrier_wait(&bar); /* main has measured: exit */
    for (unsigned j = 0; j < 32; j++)
        free(light.live[j]);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: memory [-t THREADS] [-T TOTAL] [-f SMALLPERCENT] "
                    "[-w WARMSECONDS] [-d LIGHTSECONDS] [-x] [-i] [-q]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    int nthreads = 2, quiet = 0, no_trim = 0, c;
    unsigned long long total = 1ULL << 30, small_pct = 50;

    while ((c = getopt(argc, argv, "t:T:f:w:d:xiqh")) != -1) {
        switch (c) {
        case 't':
            nthreads = (int)bench_parse_num("t", optarg);
            break;
        case 'T':
            total = bench_parse_num("T", optarg);
            break;
        case 'f':
            small_pct = bench_parse_num("f", optarg);
            break;
        case 'w':
            warm_seconds = atof(optarg);
            break;
        case 'd':
            light_seconds = atof(optarg);
            break;
        case 'x':
            no_trim = 1;
            break;
        case 'i':
            idle = no_trim = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        default:
            usage();
        }
    }
    if (nthreads < 1 || small_pct > 100 || light_seconds < 0 || warm_seconds < 0)
        usage();

    int (*trim)(size_t) = NULL;
    *(void **)&trim = dlsym(RTLD_DEFAULT, "malloc_trim");
    const char *trim_from = "none";
    Dl_info info;
    if (trim != NULL && dladdr(*(void **)&trim, &info) != 0 && info.dli_fname != NULL) {
        trim_from =
            strrchr(info.dli_fname, '/') ? strrchr(info.dli_fname, '/') + 1 : info.dli_fname;
    }

    struct worker *ws = calloc((size_t)nthreads, sizeof(*ws));
    if (ws == NULL)
        bench_fail("calloc failed");
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        ws[i].id = i;
        ws[i].small_bytes = (size_t)(total * small_pct / 100 / (unsigned)nthreads);
        ws[i].large_bytes = (size_t)(total * (100 - small_pct) / 100 / (unsigned)nthreads);
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0)
            bench_fail("pthread_create failed");
    }
    long cold = bench_rss_kib();
    pthread_barrier_wait(&bar); /* cold measured: warm up */
    usleep((useconds_t)(warm_seconds * 1e6));
    atomic_store(&stop_warm, 1);
    pthread_barrier_wait(&bar); /* warm-up done */
    long before = bench_rss_kib();
    double t0 = bench_now();
    pthread_barrier_wait(&bar); /* start */
    pthread_barrier_wait(&bar); /* peak reached */
    double t_alloc = bench_now() - t0;
    long peak = bench_rss_kib();
    pthread_barrier_wait(&bar); /* measured */
    t0 = bench_now();
    pthread_barrier_wait(&bar); /* freed */
    double t_free = bench_now() - t0;
    long freed = bench_rss_kib();
    if (trim != NULL && !no_trim)
        trim(0);
    long trimmed = bench_rss_kib();
    pthread_barrier_wait(&bar); /* go light */
    usleep((useconds_t)(light_seconds * 1e6));
    atomic_store(&stop_light, 1);
    pthread_barrier_wait(&bar); /* light done */
    /* measured while the threads wait: a thread's exit runs libc code
     * (freeing its resolver and RPC state) not run before, whose pages
     * would count here otherwise */
    long light = bench_rss_kib();
    pthread_barrier_wait(&bar); /* measured: exit */
    unsigned long long light_ops = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(ws[i].tid, NULL);
        light_ops += ws[i].light_ops;
    }
    long exited = bench_rss_kib();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    pthread_barrier_destroy(&bar);
    free(ws);

    printf("memory: threads=%d total_mib=%llu small_pct=%llu cold_kib=%ld before_kib=%ld "
           "peak_kib=%ld freed_kib=%ld trimmed_kib=%ld light_kib=%ld "
           "exited_kib=%ld maxrss_kib=%ld alloc_s=%.3f free_s=%.3f "
           "light_ops=%llu trim_from=%s mode=%s\n",
           nthreads, total >> 20, small_pct, cold, before, peak, freed, trimmed, light, exited,
           ru.ru_maxrss, t_alloc, t_free, light_ops, no_trim ? "not-called" : trim_from,
           idle ? "idle" : "busy");
    if (!quiet) {
        printf("  RSS cold            %8.1f MiB\n", cold / 1024.0);
        printf("  RSS before the peak %8.1f MiB   (after %.1fs light)\n", before / 1024.0,
               warm_seconds);
        printf("  RSS at peak         %8.1f MiB\n", peak / 1024.0);
        printf("  RSS after free      %8.1f MiB\n", freed / 1024.0);
        printf("  RSS after trim      %8.1f MiB   (malloc_trim %s%s)\n", trimmed / 1024.0,
               no_trim ? "not called" : "from ", no_trim ? "" : trim_from);
        printf("  RSS after %.1fs %s %6.1f MiB\n", light_seconds, idle ? "idle " : "light",
               light / 1024.0);
        printf("  RSS after exit      %8.1f MiB\n", exited / 1024.0);
    }
    return 0;
}

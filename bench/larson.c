/* larson: a server-like workload after Larson and Krishnan.
 *
 *   larson [-t THREADS] [-n OPS] [-g GENERATIONS] [-c SLOTS] [-s MIN] [-S MAX]
 *          [-r SEED] [-q]
 *
 * Main allocates SLOTS blocks per thread (random sizes MIN..MAX, default
 * 16..1000 bytes) and starts THREADS threads, each owning one array of
 * blocks.  A thread replaces random slots of its array: it checks and frees
 * the old block and puts a fresh one of random size in its place.  After
 * its share of OPS it starts a new thread, hands it the array and exits; the
 * array passes through GENERATIONS threads in all.  Most frees thus release
 * blocks that an earlier (now finished) thread allocated.  At the end main
 * checks and frees every block.  OPS is the total number of replacements,
 * shared out between threads and generations.
 *
 * Built with -DBENCH_SERVER=1 it is bench/server: the published benchmark's
 * proportions, with a working set that does not fit in the cache. Each
 * thread owns SLOTS blocks (default 5000 of 8..1000 bytes, some 2.5 MB,
 * more than a core's L2) and replaces random slots OPS / (THREADS *
 * GENERATIONS) times per generation before it hands its array to a fresh
 * thread. With the defaults (4 generations) nearly every free releases a
 * block the same thread allocated thousands of operations earlier: its
 * line has left the cache. With many generations (-g 400) most frees
 * release blocks an earlier thread allocated (remote frees). A block is
 * not read before its free there (that would bring its line back into the
 * cache and hide what free costs on cold memory): the stamps are checked
 * when the array is handed on and at the end, so a broken allocator still
 * fails.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <pthread.h>
#include <unistd.h>

#include "bench.h"

#ifndef BENCH_SERVER
#define BENCH_SERVER 0
#endif

const char *bench_name = BENCH_SERVER ? "server" : "larson";

struct lineage {
    int id;
    int gen;
    int generations;
    size_t nslots;
    size_t min, max;
    unsigned long long ops_per_gen;
    void **p;
    size_t *sz;
    uint64_t *tag;
    uint64_t counter;
    unsigned long long ops_done;
    bench_rng rng;
    pthread_t prev; /* the thread to join (previous generation) */
    int have_prev;
    pthread_t last; /* set by the last generation, joined by main */
};

static void check_slot(const struct lineage *L, size_t k)
{
    if (!bench_stamp_ok(L->p[k], L->sz[k], L->tag[k]))
        bench_fail("thread %d gen %d: block in slot %zu (%zu bytes) damaged", L->id, L->gen, k,
                   L->sz[k]);
}

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done_count;

static void *lineage_main(void *arg)
{
    struct lineage *L = arg;
    if (L->have_prev)
        pthread_join(L->prev, NULL);

    for (unsigned long long i = 0; i < L->ops_per_gen; i++) {
        size_t k = (size_t)(bench_rng_next(&L->rng) % L->nslots);
        if (!BENCH_SERVER)
            check_slot(L, k);
        free(L->p[k]);
        size_t n = bench_rng_range(&L->rng, L->min, L->max);
        uint64_t t = ((uint64_t)L->id << 48) | L->counter++;
        void *q = bench_xmalloc(n);
        bench_stamp(q, n, t);
        L->p[k] = q;
        L->sz[k] = n;
        L->tag[k] = t;
    }
    L->ops_done += L->ops_per_gen;
    if (BENCH_SERVER)
        for (size_t k = 0; k < L->nslots; k++)
            check_slot(L, k);

    if (L->gen + 1 < L->generations) {
        pthread_t next;
        L->gen++;
        L->prev = pthread_self();
        L->have_prev = 1;
        if (pthread_create(&next, NULL, lineage_main, L) != 0)
            bench_fail("pthread_create failed (generation %d)", L->gen);
        return NULL; /* the new thread joins us */
    }

    pthread_mutex_lock(&done_lock);
    L->last = pthread_self();
    done_count++;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&done_lock);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [-t THREADS] [-n OPS] [-g GENERATIONS] "
            "[-c SLOTS] [-s MIN] [-S MAX] [-r SEED] [-q]\n",
            bench_name);
    exit(1);
}

int main(int argc, char **argv)
{
    int nthreads = 2, generations = BENCH_SERVER ? 4 : 20, quiet = 0, c;
    unsigned long long ops = BENCH_SERVER ? 8000000ULL : 4000000ULL, seed = 4141;
    size_t nslots = BENCH_SERVER ? 5000 : 1000, min = BENCH_SERVER ? 8 : 16, max = 1000;

    while ((c = getopt(argc, argv, "t:n:g:c:s:S:r:qh")) != -1) {
        switch (c) {
        case 't':
            nthreads = (int)bench_parse_num("t", optarg);
            break;
        case 'n':
            ops = bench_parse_num("n", optarg);
            break;
        case 'g':
            generations = (int)bench_parse_num("g", optarg);
            break;
        case 'c':
            nslots = (size_t)bench_parse_num("c", optarg);
            break;
        case 's':
            min = (size_t)bench_parse_num("s", optarg);
            break;
        case 'S':
            max = (size_t)bench_parse_num("S", optarg);
            break;
        case 'r':
            seed = bench_parse_num("r", optarg);
            break;
        case 'q':
            quiet = 1;
            break;
        default:
            usage();
        }
    }
    if (nthreads < 1 || generations < 1 || nslots < 1 || min < 8 || max < min)
        usage();

    struct lineage *Ls = calloc((size_t)nthreads, sizeof(*Ls));
    if (Ls == NULL)
        bench_fail("calloc failed");
    for (int i = 0; i < nthreads; i++) {
        struct lineage *L = &Ls[i];
        L->id = i;
        L->generations = generations;
        L->nslots = nslots;
        L->min = min;
        L->max = max;
        L->ops_per_gen = ops / ((unsigned long long)nthreads * (unsigned)generations);
        L->p = bench_xmalloc(nslots * sizeof(void *));
        L->sz = bench_xmalloc(nslots * sizeof(size_t));
        L->tag = bench_xmalloc(nslots * sizeof(uint64_t));
        bench_rng_seed(&L->rng, seed + (unsigned)i);
        for (size_t k = 0; k < nslots; k++) {
            L->sz[k] = bench_rng_range(&L->rng, min, max);
            L->tag[k] = ((uint64_t)i << 48) | L->counter++;
            L->p[k] = bench_xmalloc(L->sz[k]);
            bench_stamp(L->p[k], L->sz[k], L->tag[k]);
        }
    }

    double t0 = bench_now();
    for (int i = 0; i < nthreads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, lineage_main, &Ls[i]) != 0)
            bench_fail("pthread_create failed");
    }
    pthread_mutex_lock(&done_lock);
    while (done_count < nthreads)
        pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);
    for (int i = 0; i < nthreads; i++)
        pthread_join(Ls[i].last, NULL);
    double dt = bench_now() - t0;

    uint64_t sum = 0;
    unsigned long long total = 0;
    for (int i = 0; i < nthreads; i++) {
        struct lineage *L = &Ls[i];
        for (size_t k = 0; k < nslots; k++) {
            if (!bench_stamp_ok(L->p[k], L->sz[k], L->tag[k]))
                bench_fail("block in slot %zu of thread %d damaged at the end", k, i);
            sum += L->tag[k] ^ L->sz[k];
            free(L->p[k]);
        }
        total += L->ops_done;
        free(L->p);
        free(L->sz);
        free(L->tag);
    }
    free(Ls);
    if (!quiet)
        printf("%s: threads=%d generations=%d slots=%zu sizes=%zu..%zu "
               "ops=%llu time=%.3fs mops_per_s=%.2f checksum=%016llx\n",
               bench_name, nthreads, generations, nslots, min, max, total, dt,
               (double)total / dt / 1e6, (unsigned long long)sum);
    return 0;
}

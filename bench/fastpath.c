/* fastpath: same-thread malloc/free pairs, the allocator's fast path.
 *
 *   fastpath [-m pairs|sweep|null] [-n PAIRS] [-t THREADS] [-q]
 *
 * pairs (default): a loop keeps 64 blocks live; each step checks and frees
 *   one block and allocates a new one of 64..71 bytes in its place.  The
 *   check is a single word, so the loop stays small (the callgrind count of
 *   instructions per pair uses this mode).
 * sweep: the same loop run in turn for every 8-byte step of sizes from 16 to
 *   1024 bytes (sizes s..s+7 for s = 16, 24, ..., 1016), with a head and
 *   tail stamp on each block.
 * null: the pairs loop with the allocator calls replaced by a fixed block per
 *   slot: what the loop itself costs, to subtract from the pairs count.
 *
 * With -t, each of THREADS threads runs the loop on its own blocks and the
 * PAIRS are shared out between them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <pthread.h>
#include <unistd.h>

#include "bench.h"

const char *bench_name = "fastpath";

#define LIVE 64

enum mode { MODE_PAIRS, MODE_SWEEP, MODE_NULL };

static enum mode mode = MODE_PAIRS;
static unsigned long long pairs_total = 20000000ULL;
static int nthreads = 1;

struct worker {
    pthread_t tid;
    unsigned long long pairs;
    uint64_t checksum;
};

/* noinline so the compiler cannot see through the loop in null mode. */
static __attribute__((noinline)) void *null_block(void *mem, size_t size)
{
    (void)size;
    return mem;
}

static uint64_t run_pairs(unsigned long long n)
{
    void *slot[LIVE];
    uint64_t sum = 0;
    for (unsigned i = 0; i < LIVE; i++) {
        slot[i] = bench_xmalloc(64 + (i & 7));
        *(volatile uint64_t *)slot[i] = (uint64_t)i - LIVE;
    }
    for (unsigned long long i = 0; i < n; i++) {
        unsigned idx = (unsigned)(i & (LIVE - 1));
        void *p = slot[idx];
        if (*(volatile uint64_t *)p != (uint64_t)i - LIVE)
            bench_fail("block %u holds a wrong value at step %llu", idx, i);
        free(p);
        p = malloc(64 + (i & 7));
        if (p == NULL)
            bench_fail("malloc returned NULL");
        *(volatile uint64_t *)p = (uint64_t)i;
        slot[idx] = p;
    }
    for (unsigned i = 0; i < LIVE; i++) {
        sum += *(volatile uint64_t *)slot[i];
        free(slot[i]);
    }
    return sum;
}

static uint64_t run_null(unsigned long long n)
{
    static _Thread_local uint64_t mem[LIVE][10];
    void *slot[LIVE];
    uint64_t sum = 0;
    for (unsigned i = 0; i < LIVE; i++) {
        slot[i] = null_block(mem[i], 64 + (i & 7));
        *(volatile uint64_t *)slot[i] = (uint64_t)i - LIVE;
    }
    for (unsigned long long i = 0; i < n; i++) {
        unsigned idx = (unsigned)(i & (LIVE - 1));
        void *p = slot[idx];
        if (*(volatile uint64_t *)p != (uint64_t)i - LIVE)
            bench_fail("block %u holds a wrong value at step %llu", idx, i);
        p = null_block(mem[idx], 64 + (i & 7));
        *(volatile uint64_t *)p = (uint64_t)i;
        slot[idx] = p;
    }
    for (unsigned i = 0; i < LIVE; i++)
        sum += *(volatile uint64_t *)slot[i];
    return sum;
}

static uint64_t run_sweep(unsigned long long n)
{
    const unsigned nsizes = (1024 - 16) / 8; /* s = 16 .. 1016 */
    unsigned long long per = n / nsizes;
    uint64_t sum = 0;
    if (per < LIVE)
        per = LIVE;
    for (unsigned k = 0; k < nsizes; k++) {
        size_t base = 16 + 8 * (size_t)k;
        void *slot[LIVE];
        size_t sz[LIVE];
        uint64_t tag[LIVE];
        for (unsigned i = 0; i < LIVE; i++) {
            sz[i] = base + (i & 7);
            tag[i] = ((uint64_t)k << 40) | i;
            slot[i] = bench_xmalloc(sz[i]);
            bench_stamp(slot[i], sz[i], tag[i]);
        }
        for (unsigned long long i = 0; i < per; i++) {
            unsigned idx = (unsigned)(i & (LIVE - 1));
            if (!bench_stamp_ok(slot[idx], sz[idx], tag[idx]))
                bench_fail("block of %zu bytes damaged (size step %zu)", sz[idx], base);
            free(slot[idx]);
            sz[idx] = base + ((i >> 6) & 7);
            tag[idx] = ((uint64_t)k << 40) | (i + LIVE);
            slot[idx] = bench_xmalloc(sz[idx]);
            bench_stamp(slot[idx], sz[idx], tag[idx]);
        }
        for (unsigned i = 0; i < LIVE; i++) {
            if (!bench_stamp_ok(slot[i], sz[i], tag[i]))
                bench_fail("block of %zu bytes damaged at the end", sz[i]);
            sum += tag[i];
            free(slot[i]);
        }
    }
    return sum;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    switch (mode) {
    case MODE_PAIRS:
        w->checksum = run_pairs(w->pairs);
        break;
    case MODE_SWEEP:
        w->checksum = run_sweep(w->pairs);
        break;
    case MODE_NULL:
        w->checksum = run_null(w->pairs);
        break;
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: fastpath [-m pairs|sweep|null] [-n PAIRS] [-t THREADS] [-q]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    int quiet = 0, c;
    while ((c = getopt(argc, argv, "m:n:t:qh")) != -1) {
        switch (c) {
        case 'm':
            if (strcmp(optarg, "pairs") == 0)
                mode = MODE_PAIRS;
            else if (strcmp(optarg, "sweep") == 0)
                mode = MODE_SWEEP;
            else if (strcmp(optarg, "null") == 0)
                mode = MODE_NULL;
            else
                usage();
            break;
        case 'n':
            pairs_total = bench_parse_num("n", optarg);
            break;
        case 't':
            nthreads = (int)bench_parse_num("t", optarg);
            break;
        case 'q':
            quiet = 1;
            break;
        default:
            usage();
        }
    }
    if (nthreads < 1 || pairs_total < 1)
        usage();

    struct worker *w = bench_xmalloc(sizeof(*w) * (size_t)nthreads);
    double t0 = bench_now();
    if (nthreads == 1) {
        w[0].pairs = pairs_total;
        worker_main(&w[0]);
    } else {
        for (int i = 0; i < nthreads; i++) {
            w[i].pairs = pairs_total / (unsigned long long)nthreads;
            if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
                bench_fail("pthread_create failed");
        }
        for (int i = 0; i < nthreads; i++)
            pthread_join(w[i].tid, NULL);
    }
    double dt = bench_now() - t0;
    uint64_t sum = 0;
    for (int i = 0; i < nthreads; i++)
        sum += w[i].checksum;
    if (!quiet)
        printf("fastpath: mode=%s threads=%d pairs=%llu time=%.3fs "
               "ns_per_pair=%.2f checksum=%016llx\n",
               mode == MODE_PAIRS   ? "pairs"
               : mode == MODE_SWEEP ? "sweep"
                                    : "null",
               nthreads, pairs_total, dt, dt * 1e9 / (double)pairs_total, (unsigned long long)sum);
    free(w);
    return 0;
}

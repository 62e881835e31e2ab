/* churn: many short-lived threads.
 *
 *   churn [-t WAVE] [-n THREADS] [-k BLOCKS] [-s MIN] [-S MAX] [-r SEED] [-q]
 *
 * Main starts THREADS threads in all (default 20000), WAVE at a time
 * (default 8), and joins each wave before the next.  Every thread allocates
 * BLOCKS blocks (default 64) of random size MIN..MAX (16..1024), checks and
 * frees half of them itself and leaves the other half to main, which checks
 * and frees them after the join: so the allocator sets up and tears down a
 * per-thread state many times, and takes frees of blocks whose thread has
 * gone.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <pthread.h>
#include <unistd.h>

#include "bench.h"

const char *bench_name = "churn";

struct worker {
    pthread_t tid;
    uint64_t seed;
    size_t k, min, max;
    void **left; /* blocks left for main */
    size_t *sz;
    uint64_t *tag;
    size_t nleft;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    bench_rng rng;
    bench_rng_seed(&rng, w->seed);
    void **p = bench_xmalloc(w->k * sizeof(void *));
    size_t *sz = bench_xmalloc(w->k * sizeof(size_t));
    uint64_t *tag = bench_xmalloc(w->k * sizeof(uint64_t));
    for (size_t i = 0; i < w->k; i++) {
        sz[i] = bench_rng_range(&rng, w->min, w->max);
        tag[i] = (w->seed << 16) ^ i;
        p[i] = bench_xmalloc(sz[i]);
        bench_stamp(p[i], sz[i], tag[i]);
    }
    /* free the even ones, leave the odd ones for main */
    size_t n = 0;
    for (size_t i = 0; i < w->k; i++) {
        if (!bench_stamp_ok(p[i], sz[i], tag[i]))
            bench_fail("block of %zu bytes damaged in its own thread", sz[i]);
        if (i % 2 == 0) {
            free(p[i]);
        } else {
            p[n] = p[i];
            sz[n] = sz[i];
            tag[n] = tag[i];
            n++;
        }
    }
    w->left = p;
    w->sz = sz;
    w->tag = tag;
    w->nleft = n;
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: churn [-t WAVE] [-n THREADS] [-k BLOCKS] "
                    "[-s MIN] [-S MAX] [-r SEED] [-q]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    int wave = 8, quiet = 0, c;
    unsigned long long total = 20000, seed = 5;
    size_t k = 64, min = 16, max = 1024;

    while ((c = getopt(argc, argv, "t:n:k:s:S:r:qh")) != -1) {
        switch (c) {
        case 't':
            wave = (int)bench_parse_num("t", optarg);
            break;
        case 'n':
            total = bench_parse_num("n", optarg);
            break;
        case 'k':
            k = (size_t)bench_parse_num("k", optarg);
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
    if (wave < 1 || total < 1 || k < 1 || min < 8 || max < min)
        usage();

    struct worker *ws = calloc((size_t)wave, sizeof(*ws));
    if (ws == NULL)
        bench_fail("calloc failed");
    unsigned long long started = 0, blocks = 0;
    uint64_t sum = 0;
    double t0 = bench_now();
    while (started < total) {
        int n = (total - started) < (unsigned long long)wave ? (int)(total - started) : wave;
        for (int i = 0; i < n; i++) {
            ws[i].seed = seed * 1000003ULL + started + (unsigned)i;
            ws[i].k = k;
            ws[i].min = min;
            ws[i].max = max;
            if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0)
                bench_fail("pthread_create failed after %llu threads", started);
        }
        for (int i = 0; i < n; i++) {
            pthread_join(ws[i].tid, NULL);
            struct worker *w = &ws[i];
            for (size_t j = 0; j < w->nleft; j++) {
                if (!bench_stamp_ok(w->left[j], w->sz[j], w->tag[j]))
                    bench_fail("block of %zu bytes damaged after its thread exited", w->sz[j]);
                sum += w->tag[j] ^ w->sz[j];
                free(w->left[j]);
            }
            blocks += k;
            free(w->left);
            free(w->sz);
            free(w->tag);
        }
        started += (unsigned long long)n;
    }
    double dt = bench_now() - t0;
    free(ws);
    if (!quiet)
        printf("churn: threads=%llu wave=%d blocks=%llu time=%.3fs "
               "us_per_thread=%.2f checksum=%016llx\n",
               total, wave, blocks, dt, dt * 1e6 / (double)total, (unsigned long long)sum);
    return 0;
}

/* falseshare: does the allocator put small objects of different threads on
 * one cache line?  (After the Hoard benchmarks cache-thrash and
 * cache-scratch.)
 *
 *   falseshare [-m active|passive] [-t THREADS] [-n ROUNDS] [-w WRITES]
 *              [-o OBJSIZE] [-q]
 *
 * Each thread repeats ROUNDS/THREADS times: allocate an object of OBJSIZE
 * bytes (default 8), write every byte of it WRITES times, check the bytes,
 * free it.  If two threads' objects share a cache line the writes bounce the
 * line between cores and the run gets slower.
 *
 * active: each thread allocates its own objects from the start.
 * passive: main allocates one object per thread first (so they sit side by
 *   side) and hands one to each thread, which frees it and then runs the
 *   rounds; an allocator that gives a freed block straight back to the
 *   freeing thread hands each thread a slot next to the others'.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <pthread.h>
#include <unistd.h>

#include "bench.h"

const char *bench_name = "falseshare";

struct worker {
    pthread_t tid;
    int id;
    unsigned long long rounds;
    unsigned long long writes;
    size_t objsize;
    void *handed; /* passive mode: main's object, freed first */
    uint64_t sum;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (w->handed != NULL) {
        volatile unsigned char *h = w->handed;
        for (size_t j = 0; j < w->objsize; j++)
            if (h[j] != (unsigned char)(0xA0 + w->id))
                bench_fail("object handed to thread %d damaged", w->id);
        free(w->handed);
    }
    for (unsigned long long r = 0; r < w->rounds; r++) {
        volatile unsigned char *p = bench_xmalloc(w->objsize);
        unsigned char start = (unsigned char)(w->id * 7 + r);
        for (size_t j = 0; j < w->objsize; j++)
            p[j] = start;
        for (unsigned long long k = 0; k < w->writes; k++)
            for (size_t j = 0; j < w->objsize; j++)
                p[j]++;
        unsigned char want = (unsigned char)(start + w->writes);
        for (size_t j = 0; j < w->objsize; j++)
            if (p[j] != want)
                bench_fail("thread %d round %llu: byte %zu is %u, want %u", w->id, r, j, p[j],
                           want);
        w->sum += want;
        free((void *)p);
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: falseshare [-m active|passive] [-t THREADS] "
                    "[-n ROUNDS] [-w WRITES] [-o OBJSIZE] [-q]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    int nthreads = 2, passive = 0, quiet = 0, c;
    unsigned long long rounds = 2000, writes = 10000;
    size_t objsize = 8;

    while ((c = getopt(argc, argv, "m:t:n:w:o:qh")) != -1) {
        switch (c) {
        case 'm':
            if (strcmp(optarg, "active") == 0)
                passive = 0;
            else if (strcmp(optarg, "passive") == 0)
                passive = 1;
            else
                usage();
            break;
        case 't':
            nthreads = (int)bench_parse_num("t", optarg);
            break;
        case 'n':
            rounds = bench_parse_num("n", optarg);
            break;
        case 'w':
            writes = bench_parse_num("w", optarg);
            break;
        case 'o':
            objsize = (size_t)bench_parse_num("o", optarg);
            break;
        case 'q':
            quiet = 1;
            break;
        default:
            usage();
        }
    }
    if (nthreads < 1 || rounds < 1 || objsize < 1)
        usage();

    struct worker *ws = calloc((size_t)nthreads, sizeof(*ws));
    if (ws == NULL)
        bench_fail("calloc failed");
    for (int i = 0; i < nthreads; i++) {
        ws[i].id = i;
        ws[i].rounds = rounds / (unsigned long long)nthreads;
        if (ws[i].rounds == 0)
            ws[i].rounds = 1;
        ws[i].writes = writes;
        ws[i].objsize = objsize;
        if (passive) {
            ws[i].handed = bench_xmalloc(objsize);
            memset(ws[i].handed, 0xA0 + i, objsize);
        }
    }
    double t0 = bench_now();
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0)
            bench_fail("pthread_create failed");
    uint64_t sum = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(ws[i].tid, NULL);
        sum += ws[i].sum;
    }
    double dt = bench_now() - t0;
    free(ws);
    if (!quiet)
        printf("falseshare: mode=%s threads=%d rounds=%llu writes=%llu objsize=%zu "
               "time=%.3fs checksum=%016llx\n",
               passive ? "passive" : "active", nthreads, rounds, writes, objsize, dt,
               (unsigned long long)sum);
    return 0;
}

/* large: large and huge blocks with realloc growth, touching every page.
 *
 *   large [-t THREADS] [-n OPS] [-c SLOTS] [-s MIN] [-S MAX] [-r SEED] [-m] [-q]
 *
 * THREADS threads share SLOTS live blocks (default 8, at least one each).
 * With -m (and one thread) the work runs in the main thread instead, so
 * that the process stays single-threaded, as most command-line programs
 * are: an allocator may treat such a process differently.
 * An op picks one of the thread's slots, checks and frees its block, then
 * allocates a new one of MIN << e .. (MIN << (e+1)) - 1 bytes for a random
 * e (so sizes spread evenly over the powers of two from MIN = 64 KiB up to
 * MAX = 64 MiB), writes a stamp into every 4 KiB page, and grows it with
 * realloc 0..3 times by 1.25x..2x (never past MAX), stamping the new pages
 * and checking the old ones each time.  OPS is the total, shared out between
 * the threads.  An allocator that gives such blocks back to the kernel at
 * once pays a page fault per page on the next use.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <pthread.h>
#include <unistd.h>

#include "bench.h"

const char *bench_name = "large";

#define PAGE 4096

struct blk {
    unsigned char *p;
    size_t size;
    uint64_t tag;
};

struct worker {
    pthread_t tid;
    int id;
    unsigned long long ops;
    size_t nslots, min, max;
    uint64_t seed;
    uint64_t sum;
    unsigned long long bytes;
};

static void stamp_range(struct blk *b, size_t from, size_t to)
{
    /* a word at every page boundary in [from, to), clear of the last word */
    size_t off = (from + PAGE - 1) & ~(size_t)(PAGE - 1);
    for (; off + 16 <= to; off += PAGE) {
        uint64_t v = b->tag ^ off;
        memcpy(b->p + off, &v, 8);
    }
}

static void stamp_end(struct blk *b)
{
    uint64_t v = ~b->tag ^ b->size;
    memcpy(b->p + b->size - 8, &v, 8);
}

static void check_range(const struct blk *b, size_t to, int with_end, const char *when)
{
    for (size_t off = 0; off + 16 <= to; off += PAGE) {
        uint64_t v;
        memcpy(&v, b->p + off, 8);
        if (v != (b->tag ^ off))
            bench_fail("block of %zu bytes: page at offset %zu damaged %s", b->size, off, when);
    }
    if (with_end) {
        uint64_t v;
        memcpy(&v, b->p + b->size - 8, 8);
        if (v != (~b->tag ^ b->size))
            bench_fail("block of %zu bytes: last word damaged %s", b->size, when);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    bench_rng rng;
    bench_rng_seed(&rng, w->seed);
    struct blk *slots = calloc(w->nslots, sizeof(*slots));
    if (slots == NULL)
        bench_fail("calloc failed");
    int steps = 0;
    while ((w->min << (steps + 1)) <= w->max)
        steps++;
    uint64_t counter = 0;

    for (unsigned long long op = 0; op < w->ops; op++) {
        struct blk *b = &slots[bench_rng_next(&rng) % w->nslots];
        if (b->p != NULL) {
            check_range(b, b->size, 1, "before free");
            w->sum += b->tag ^ b->size;
            free(b->p);
        }
        int e = (int)(bench_rng_next(&rng) % (uint64_t)(steps + 1));
        size_t base = w->min << e;
        size_t size = base + (size_t)(bench_rng_next(&rng) % base);
        if (size > w->max)
            size = w->max;
        b->tag = ((uint64_t)w->id << 56) | (counter++ << 8);
        b->size = size;
        b->p = bench_xmalloc(size);
        stamp_range(b, 0, size);
        stamp_end(b);
        w->bytes += size;
        int grows = (int)(bench_rng_next(&rng) % 4);
        for (int g = 0; g < grows && b->size < w->max; g++) {
            size_t old = b->size;
            size_t n = old + old / 4 + (size_t)(bench_rng_next(&rng) % (old * 3 / 4));
            if (n > w->max)
                n = w->max;
            b->p = bench_xrealloc(b->p, n);
            check_range(b, old, 1, "after realloc");
            b->size = n;
            stamp_range(b, 0, n); /* pages already there: one write each */
            stamp_end(b);
            w->bytes += n - old;
        }
    }
    for (size_t k = 0; k < w->nslots; k++) {
        if (slots[k].p != NULL) {
            check_range(&slots[k], slots[k].size, 1, "at the end");
            w->sum += slots[k].tag ^ slots[k].size;
            free(slots[k].p);
        }
    }
    free(slots);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: large [-t THREADS] [-n OPS] [-c SLOTS] [-s MIN] "
                    "[-S MAX] [-r SEED] [-m] [-q]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    int nthreads = 2, quiet = 0, in_main = 0, c;
    unsigned long long ops = 400, seed = 11;
    size_t nslots = 8, min = 64 << 10, max = 64 << 20;

    while ((c = getopt(argc, argv, "t:n:c:s:S:r:mqh")) != -1) {
        switch (c) {
        case 't':
            nthreads = (int)bench_parse_num("t", optarg);
            break;
        case 'n':
            ops = bench_parse_num("n", optarg);
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
        case 'm':
            in_main = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        default:
            usage();
        }
    }
    if (nthreads < 1 || nslots < 1 || min < 64 || max < min || (in_main && nthreads != 1))
        usage();

    struct worker *ws = calloc((size_t)nthreads, sizeof(*ws));
    if (ws == NULL)
        bench_fail("calloc failed");
    double t0 = bench_now();
    for (int i = 0; i < nthreads; i++) {
        ws[i].id = i;
        ws[i].ops = ops / (unsigned long long)nthreads;
        ws[i].nslots = nslots / (size_t)nthreads > 0 ? nslots / (size_t)nthreads : 1;
        ws[i].min = min;
        ws[i].max = max;
        ws[i].seed = seed + (unsigned)i;
        if (in_main)
            worker_main(&ws[i]);
        else if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0)
            bench_fail("pthread_create failed");
    }
    uint64_t sum = 0;
    unsigned long long bytes = 0;
    for (int i = 0; i < nthreads; i++) {
        if (!in_main)
            pthread_join(ws[i].tid, NULL);
        sum += ws[i].sum;
        bytes += ws[i].bytes;
    }
    double dt = bench_now() - t0;
    free(ws);
    if (!quiet)
        printf("large: threads=%d ops=%llu sizes=%zu..%zu touched_mib=%llu "
               "time=%.3fs checksum=%016llx\n",
               nthreads, ops, min, max, bytes >> 20, dt, (unsigned long long)sum);
    return 0;
}

/* prodcons: producer/consumer, every block freed by another thread.
 *
 *   prodcons [-t THREADS] [-n BLOCKS] [-b BATCH] [-s MIN] [-S MAX] [-r SEED] [-q]
 *
 * THREADS/2 producers allocate blocks of random size (MIN..MAX, default
 * 16..512 bytes), stamp them, and pass them in batches of BATCH blocks
 * through a bounded queue (16 batches) to THREADS/2 consumers, which check
 * every block and free it (and the batch, itself a malloc'd block).
 * THREADS=1 is run as one producer and one consumer.  BLOCKS is the total,
 * shared out between the producers.  The sum of tags seen by the consumers
 * must equal the sum made by the producers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <pthread.h>
#include <unistd.h>

#include "bench.h"

const char *bench_name = "prodcons";

#define QCAP 16

struct batch {
    int n;
    void **p;
    size_t *sz;
    uint64_t *tag;
};

struct queue {
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    struct batch *buf[QCAP];
    int head, count;
    int open; /* producers still writing to this queue */
};

struct producer {
    pthread_t tid;
    int id;
    struct queue *q;
    unsigned long long blocks;
    size_t min, max;
    int batch;
    uint64_t seed;
    uint64_t sum;
};

struct consumer {
    pthread_t tid;
    struct queue *q;
    uint64_t sum;
    unsigned long long blocks;
};

static void q_push(struct queue *q, struct batch *b)
{
    pthread_mutex_lock(&q->m);
    while (q->count == QCAP)
        pthread_cond_wait(&q->not_full, &q->m);
    q->buf[(q->head + q->count) % QCAP] = b;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->m);
}

static void q_close(struct queue *q)
{
    pthread_mutex_lock(&q->m);
    q->open--;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->m);
}

static struct batch *q_pop(struct queue *q)
{
    struct batch *b = NULL;
    pthread_mutex_lock(&q->m);
    while (q->count == 0 && q->open > 0)
        pthread_cond_wait(&q->not_empty, &q->m);
    if (q->count > 0) {
        b = q->buf[q->head];
        q->head = (q->head + 1) % QCAP;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->m);
    return b;
}

static void *producer_main(void *arg)
{
    struct producer *P = arg;
    bench_rng rng;
    uint64_t counter = 0;
    bench_rng_seed(&rng, P->seed);
    unsigned long long left = P->blocks;
    while (left > 0) {
        int n = left < (unsigned long long)P->batch ? (int)left : P->batch;
        /* one block holds the batch header and its three arrays */
        size_t hdr =
            sizeof(struct batch) + (size_t)n * (sizeof(void *) + sizeof(size_t) + sizeof(uint64_t));
        struct batch *b = bench_xmalloc(hdr);
        b->n = n;
        b->p = (void **)(b + 1);
        b->sz = (size_t *)(b->p + n);
        b->tag = (uint64_t *)(b->sz + n);
        for (int i = 0; i < n; i++) {
            size_t sz = bench_rng_range(&rng, P->min, P->max);
            uint64_t t = ((uint64_t)P->id << 48) | counter++;
            void *p = bench_xmalloc(sz);
            bench_stamp(p, sz, t);
            b->p[i] = p;
            b->sz[i] = sz;
            b->tag[i] = t;
            P->sum += t ^ sz;
        }
        q_push(P->q, b);
        left -= (unsigned long long)n;
    }
    q_close(P->q);
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct consumer *C = arg;
    struct batch *b;
    while ((b = q_pop(C->q)) != NULL) {
        for (int i = 0; i < b->n; i++) {
            if (!bench_stamp_ok(b->p[i], b->sz[i], b->tag[i]))
                bench_fail("block of %zu bytes (tag %016llx) damaged "
                           "between producer and consumer",
                           b->sz[i], (unsigned long long)b->tag[i]);
            C->sum += b->tag[i] ^ b->sz[i];
            free(b->p[i]);
        }
        C->blocks += (unsigned long long)b->n;
        free(b);
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: prodcons [-t THREADS] [-n BLOCKS] [-b BATCH] "
                    "[-s MIN] [-S MAX] [-r SEED] [-q]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    int nthreads = 2, batch = 64, quiet = 0, c;
    unsigned long long blocks = 4000000ULL, seed = 77;
    size_t min = 16, max = 512;

    while ((c = getopt(argc, argv, "t:n:b:s:S:r:qh")) != -1) {
        switch (c) {
        case 't':
            nthreads = (int)bench_parse_num("t", optarg);
            break;
        case 'n':
            blocks = bench_parse_num("n", optarg);
            break;
        case 'b':
            batch = (int)bench_parse_num("b", optarg);
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
    if (nthreads < 1 || batch < 1 || min < 8 || max < min)
        usage();

    int np = nthreads / 2 > 0 ? nthreads / 2 : 1;
    int nc = nthreads - np > 0 ? nthreads - np : 1;
    struct queue *qs = calloc((size_t)np, sizeof(*qs));
    struct producer *ps = calloc((size_t)np, sizeof(*ps));
    struct consumer *cs = calloc((size_t)nc, sizeof(*cs));
    if (qs == NULL || ps == NULL || cs == NULL)
        bench_fail("calloc failed");
    for (int i = 0; i < np; i++) {
        pthread_mutex_init(&qs[i].m, NULL);
        pthread_cond_init(&qs[i].not_empty, NULL);
        pthread_cond_init(&qs[i].not_full, NULL);
        qs[i].open = 1;
        ps[i].id = i;
        ps[i].q = &qs[i];
        ps[i].blocks = blocks / (unsigned long long)np +
                       ((unsigned long long)i < blocks % (unsigned long long)np);
        ps[i].min = min;
        ps[i].max = max;
        ps[i].batch = batch;
        ps[i].seed = seed + (unsigned)i;
    }
    for (int j = 0; j < nc; j++)
        cs[j].q = &qs[j % np];

    double t0 = bench_now();
    for (int j = 0; j < nc; j++)
        if (pthread_create(&cs[j].tid, NULL, consumer_main, &cs[j]) != 0)
            bench_fail("pthread_create failed");
    for (int i = 0; i < np; i++)
        if (pthread_create(&ps[i].tid, NULL, producer_main, &ps[i]) != 0)
            bench_fail("pthread_create failed");
    for (int i = 0; i < np; i++)
        pthread_join(ps[i].tid, NULL);
    for (int j = 0; j < nc; j++)
        pthread_join(cs[j].tid, NULL);
    double dt = bench_now() - t0;

    uint64_t made = 0, seen = 0;
    unsigned long long freed = 0;
    for (int i = 0; i < np; i++)
        made += ps[i].sum;
    for (int j = 0; j < nc; j++) {
        seen += cs[j].sum;
        freed += cs[j].blocks;
    }
    if (made != seen || freed != blocks)
        bench_fail("consumers saw %llu blocks (sum %016llx), producers made "
                   "%llu (sum %016llx)",
                   freed, (unsigned long long)seen, blocks, (unsigned long long)made);
    for (int i = 0; i < np; i++) {
        pthread_mutex_destroy(&qs[i].m);
        pthread_cond_destroy(&qs[i].not_empty);
        pthread_cond_destroy(&qs[i].not_full);
    }
    free(qs);
    free(ps);
    free(cs);
    if (!quiet)
        printf("prodcons: producers=%d consumers=%d blocks=%llu sizes=%zu..%zu "
               "time=%.3fs mblocks_per_s=%.2f checksum=%016llx\n",
               np, nc, blocks, min, max, dt, (double)blocks / dt / 1e6, (unsigned long long)seen);
    return 0;
}

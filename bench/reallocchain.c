/* reallocchain: strings grown with realloc, mixed sizes.
 *
 *   reallocchain [-t THREADS] [-n CHAINS] [-c SLOTS] [-b MAXBYTEWISE]
 *                [-d MAXDOUBLING] [-r SEED] [-q]
 *
 * Each thread keeps SLOTS strings live and builds CHAINS/THREADS new ones,
 * each replacing (after a full check and free) a random live string.  Half
 * of the chains grow byte by byte (realloc to len+1 per appended byte) up to
 * a random length of 1..MAXBYTEWISE (default 2000) bytes; the other half
 * start at 16 bytes and double (filling each new half) up to a random size
 * of 256 B..MAXDOUBLING (default 64 KiB), and one in four of those is then
 * shrunk to half.  Each byte's value is a function of the string's seed and
 * the byte's position, checked after every move and in full before free.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <pthread.h>
#include <unistd.h>

#include "bench.h"

const char *bench_name = "reallocchain";

struct str {
    unsigned char *p;
    size_t len;
    uint32_t seed;
};

struct worker {
    pthread_t tid;
    int id;
    unsigned long long chains;
    size_t nslots, maxbyte, maxdouble;
    uint64_t seed;
    uint64_t sum;
    unsigned long long reallocs;
};

static inline unsigned char byte_at(uint32_t seed, size_t j)
{
    return (unsigned char)(seed + j * 7 + (j >> 8) * 13);
}

static void fill(struct str *s, size_t from, size_t to)
{
    for (size_t j = from; j < to; j++)
        s->p[j] = byte_at(s->seed, j);
}

static void check(const struct str *s, size_t from, size_t to, const char *when)
{
    for (size_t j = from; j < to; j++)
        if (s->p[j] != byte_at(s->seed, j))
            bench_fail("string of %zu bytes: byte %zu wrong %s", s->len, j, when);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    bench_rng rng;
    bench_rng_seed(&rng, w->seed);
    struct str *slots = calloc(w->nslots, sizeof(*slots));
    if (slots == NULL)
        bench_fail("calloc failed");

    for (unsigned long long c = 0; c < w->chains; c++) {
        struct str *s = &slots[bench_rng_next(&rng) % w->nslots];
        if (s->p != NULL) {
            check(s, 0, s->len, "before free");
            w->sum += s->len;
            free(s->p);
        }
        s->seed = (uint32_t)bench_rng_next(&rng);
        uint64_t kind = bench_rng_next(&rng) % 8;
        if (kind < 4) {
            /* byte by byte */
            size_t target = bench_rng_range(&rng, 1, w->maxbyte);
            s->p = NULL;
            s->len = 0;
            while (s->len < target) {
                s->p = bench_xrealloc(s->p, s->len + 1);
                w->reallocs++;
                if (s->len > 0 && s->p[s->len - 1] != byte_at(s->seed, s->len - 1))
                    bench_fail("realloc to %zu bytes lost the last byte", s->len + 1);
                s->p[s->len] = byte_at(s->seed, s->len);
                s->len++;
            }
            check(s, 0, s->len, "after byte-by-byte growth");
        } else {
            /* doubling */
            size_t target = bench_rng_range(&rng, 256, w->maxdouble);
            s->len = 16;
            s->p = bench_xmalloc(s->len);
            fill(s, 0, s->len);
            while (s->len < target) {
                size_t old = s->len;
                size_t n = old * 2 < target ? old * 2 : target;
                s->p = bench_xrealloc(s->p, n);
                w->reallocs++;
                check(s, old - 8, old, "after a doubling realloc");
                s->len = n;
                fill(s, old, n);
            }
            if (kind == 7) {
                s->len /= 2;
                s->p = bench_xrealloc(s->p, s->len);
                w->reallocs++;
            }
            check(s, 0, s->len, "after doubling growth");
        }
    }
    for (size_t k = 0; k < w->nslots; k++) {
        if (slots[k].p != NULL) {
            check(&slots[k], 0, slots[k].len, "at the end");
            w->sum += slots[k].len;
            free(slots[k].p);
        }
    }
    free(slots);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: reallocchain [-t THREADS] [-n CHAINS] [-c SLOTS] "
                    "[-b MAXBYTEWISE] [-d MAXDOUBLING] [-r SEED] [-q]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    int nthreads = 2, quiet = 0, c;
    unsigned long long chains = 20000, seed = 99;
    size_t nslots = 128, maxbyte = 2000, maxdouble = 64 << 10;

    while ((c = getopt(argc, argv, "t:n:c:b:d:r:qh")) != -1) {
        switch (c) {
        case 't':
            nthreads = (int)bench_parse_num("t", optarg);
            break;
        case 'n':
            chains = bench_parse_num("n", optarg);
            break;
        case 'c':
            nslots = (size_t)bench_parse_num("c", optarg);
            break;
        case 'b':
            maxbyte = (size_t)bench_parse_num("b", optarg);
            break;
        case 'd':
            maxdouble = (size_t)bench_parse_num("d", optarg);
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
    if (nthreads < 1 || nslots < 1 || maxbyte < 1 || maxdouble < 256)
        usage();

    struct worker *ws = calloc((size_t)nthreads, sizeof(*ws));
    if (ws == NULL)
        bench_fail("calloc failed");
    double t0 = bench_now();
    for (int i = 0; i < nthreads; i++) {
        ws[i].id = i;
        ws[i].chains = chains / (unsigned long long)nthreads;
        ws[i].nslots = nslots;
        ws[i].maxbyte = maxbyte;
        ws[i].maxdouble = maxdouble;
        ws[i].seed = seed + (unsigned)i;
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0)
            bench_fail("pthread_create failed");
    }
    uint64_t sum = 0;
    unsigned long long reallocs = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(ws[i].tid, NULL);
        sum += ws[i].sum;
        reallocs += ws[i].reallocs;
    }
    double dt = bench_now() - t0;
    free(ws);
    if (!quiet)
        printf("reallocchain: threads=%d chains=%llu reallocs=%llu time=%.3fs "
               "checksum=%016llx\n",
               nthreads, chains, reallocs, dt, (unsigned long long)sum);
    return 0;
}

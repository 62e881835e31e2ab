/* Shared helpers for the tlmalloc benchmark workloads.
 *
 * Every workload uses only the standard malloc API, so any allocator can be
 * put under it with LD_PRELOAD.  Every block carries a payload that is
 * checked before the block is freed; a mismatch ends the program with a
 * message and exit status 2, so a broken allocator cannot win a benchmark.
 */
#ifndef TL_BENCH_H
#define TL_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_FAIL_STATUS 2

/* Print a message about a failed check and stop. */
#define bench_fail(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "%s: CHECK FAILED: ", bench_name);                                         \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        exit(BENCH_FAIL_STATUS);                                                                   \
    } while (0)

/* Each workload defines this (its own name, for messages). */
extern const char *bench_name;

static inline void *bench_xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "%s: malloc(%zu) returned NULL\n", bench_name, n);
        exit(BENCH_FAIL_STATUS);
    }
    return p;
}

static inline void *bench_xrealloc(void *old, size_t n)
{
    void *p = realloc(old, n);
    if (p == NULL) {
        fprintf(stderr, "%s: realloc(%zu) returned NULL\n", bench_name, n);
        exit(BENCH_FAIL_STATUS);
    }
    return p;
}

/* xorshift64*: small, fast, good enough to pick sizes and slots. */
typedef struct {
    uint64_t s;
} bench_rng;

static inline void bench_rng_seed(bench_rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    if (r->s == 0)
        r->s = 1;
}

static inline uint64_t bench_rng_next(bench_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [lo, hi]. */
static inline size_t bench_rng_range(bench_rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)(bench_rng_next(r) % (uint64_t)(hi - lo + 1));
}

static inline uint64_t bench_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Stamp a block of `size` bytes (size >= 8) with `tag`: the first word and
 * the last word (which may overlap the first for blocks under 16 bytes)
 * carry values derived from the tag and the size.  Blocks of up to 64 bytes
 * are filled completely, so a block that overlaps a neighbour is caught. */
static inline void bench_stamp(void *p, size_t size, uint64_t tag)
{
    unsigned char *c = p;
    uint64_t head = bench_mix(tag) ^ size;
    uint64_t tail = ~head;
    if (size <= 64)
        memset(c, (int)(tag & 0xff), size);
    memcpy(c, &head, 8);
    memcpy(c + size - 8, &tail, 8);
    if (size < 16)
        memcpy(c, &head, 8); /* head wins where they overlap */
}

/* Returns 1 if the stamp is intact. */
static inline int bench_stamp_ok(const void *p, size_t size, uint64_t tag)
{
    const unsigned char *c = p;
    uint64_t head = bench_mix(tag) ^ size;
    uint64_t tail = ~head;
    uint64_t h, t;
    memcpy(&h, c, 8);
    if (h != head)
        return 0;
    if (size >= 16) {
        memcpy(&t, c + size - 8, 8);
        if (t != tail)
            return 0;
        if (size <= 64) {
            for (size_t i = 8; i < size - 8; i++)
                if (c[i] != (unsigned char)(tag & 0xff))
                    return 0;
        }
    }
    return 1;
}

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Resident set size of this process in KiB, from /proc/self/statm. */
static inline long bench_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    if (resident < 0)
        return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Parse a positive count with an optional k/m/g suffix (powers of 1000 for
 * counts, e.g. "2m" = 2000000) or K/M/G (powers of 1024, for byte sizes). */
static inline unsigned long long bench_parse_num(const char *opt, const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    switch (*end) {
    case 'k':
        v *= 1000ULL;
        end++;
        break;
    case 'm':
        v *= 1000000ULL;
        end++;
        break;
    case 'g':
        v *= 1000000000ULL;
        end++;
        break;
    case 'K':
        v <<= 10;
        end++;
        break;
    case 'M':
        v <<= 20;
        end++;
        break;
    case 'G':
        v <<= 30;
        end++;
        break;
    default:
        break;
    }
    if (end == s || *end != '\0') {
        fprintf(stderr, "%s: bad value '%s' for -%s\n", bench_name, s, opt);
        exit(1);
    }
    return v;
}

#endif

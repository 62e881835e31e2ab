/* common.h - helpers shared by the tlmalloc test files.
 *
 * The general test files only use the standard malloc family, so the same
 * sources run in two binaries: test_linked (linked with libtlmalloc) and
 * test_preload (plain program, tlmalloc injected with LD_PRELOAD).
 *
 * Compile with -DTL_BASELINE_GLIBC to run the general tests against the
 * system allocator alone (used to prove the tests themselves are right):
 * functions glibc does not have are then skipped instead of failed.
 */
#ifndef TL_TESTS_COMMON_H
#define TL_TESTS_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Functions of the malloc family that the system headers do not declare.
 * They are weak so that the test binaries still link against a C library
 * that lacks them; each test asserts the address is not NULL before use. */
#define TL_WEAK __attribute__((weak, visibility("default")))
extern void cfree(void *p) TL_WEAK;
extern void free_sized(void *p, size_t size) TL_WEAK;
extern void free_aligned_sized(void *p, size_t alignment, size_t size) TL_WEAK;
extern void *__libc_malloc(size_t size) TL_WEAK;
extern void __libc_free(void *p) TL_WEAK;
extern void *__libc_calloc(size_t n, size_t size) TL_WEAK;
extern void *__libc_realloc(void *p, size_t size) TL_WEAK;
extern void *__libc_memalign(size_t alignment, size_t size) TL_WEAK;
extern void *__libc_valloc(size_t size) TL_WEAK;
extern void *__libc_pvalloc(size_t size) TL_WEAK;
extern int __posix_memalign(void **memptr, size_t alignment, size_t size) TL_WEAK;

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* Hides a value from the optimiser so that calls such as malloc(SIZE_MAX)
 * are really made and do not draw compile-time size warnings. */
static inline size_t opq(size_t x)
{
    __asm__ volatile("" : "+r"(x));
    return x;
}

static inline void *opq_ptr(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* Installs a plain signal handler (SA_RESTART, nothing masked). */
#include <signal.h>
static inline int set_handler(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

/* splitmix64: small, good-enough pseudo-random generator. */
static inline uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

typedef struct {
    uint64_t s;
} rng_t;

static inline uint64_t rng_next(rng_t *r)
{
    r->s += 0x9E3779B97F4A7C15ull;
    return mix64(r->s);
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* Pattern: byte i of a block with seed s is byte (i % 8) of the 64-bit
 * word pattern_word(s, i / 8). Any prefix of a filled block can therefore
 * be checked with the same seed, which is what realloc checks need. */
static inline uint64_t pattern_word(uint64_t seed, size_t k)
{
    uint64_t v = seed * 0x2545F4914F6CDD1Dull + (uint64_t)k * 0x9E3779B97F4A7C15ull;
    return v ^ (v >> 29) ^ 0x5555555555555555ull;
}

static inline void fill_pattern_from(void *p, size_t from, size_t n, uint64_t seed)
{
    unsigned char *b = p;
    size_t i = from;
    while (i < n && (i & 7)) {
        b[i] = (unsigned char)(pattern_word(seed, i >> 3) >> (8 * (i & 7)));
        i++;
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w = pattern_word(seed, i >> 3);
        memcpy(b + i, &w, 8);
    }
    for (; i < n; i++)
        b[i] = (unsigned char)(pattern_word(seed, i >> 3) >> (8 * (i & 7)));
}

static inline void fill_pattern(void *p, size_t n, uint64_t seed)
{
    fill_pattern_from(p, 0, n, seed);
}

/* Returns the offset of the first byte in [from, n) that does not match,
 * or SIZE_MAX when all match. */
static inline size_t check_pattern_from(const void *p, size_t from, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    size_t i = from;
    while (i < n && (i & 7)) {
        if (b[i] != (unsigned char)(pattern_word(seed, i >> 3) >> (8 * (i & 7))))
            return i;
        i++;
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w = pattern_word(seed, i >> 3), got;
        memcpy(&got, b + i, 8);
        if (got != w) {
            for (size_t j = 0; j < 8; j++)
                if (b[i + j] != (unsigned char)(w >> (8 * j)))
                    return i + j;
        }
    }
    for (; i < n; i++)
        if (b[i] != (unsigned char)(pattern_word(seed, i >> 3) >> (8 * (i & 7))))
            return i;
    return SIZE_MAX;
}

static inline size_t check_pattern(const void *p, size_t n, uint64_t seed)
{
    return check_pattern_from(p, 0, n, seed);
}

/* Returns the offset of the first non-zero byte, or SIZE_MAX. */
static inline size_t check_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (w)
            break;
    }
    for (; i < n; i++)
        if (b[i])
            return i;
    return SIZE_MAX;
}

static inline int is_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static inline size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Resident set size of this process in bytes (from /proc/self/statm). */
static inline size_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (size_t)resident * page_size();
}

/* The size sweep: every size 0..1100, then for every power of two 2^k from
 * 2 KiB up to 64 MiB the sizes 2^k-1, 2^k, 2^k+1 and 2^k*(1+j/8) +-1 for
 * j = 1..7, then a few sizes up to 300 MiB. Returns the number of sizes
 * written to out (which must hold at least SWEEP_MAX entries). */
#define SWEEP_MAX 2048
static inline size_t size_sweep(size_t *out, size_t max_size)
{
    size_t n = 0;
    for (size_t s = 0; s <= 1100; s++)
        out[n++] = s;
    for (unsigned k = 11; k <= 26; k++) {
        size_t base = (size_t)1 << k;
        for (unsigned j = 0; j < 8; j++) {
            size_t m = base + j * (base / 8);
            out[n++] = m - 1;
            out[n++] = m;
            out[n++] = m + 1;
        }
    }
    static const size_t big[] = {
        (128u << 20) - 1, 128u << 20, (128u << 20) + 1, 192u << 20,
        (256u << 20) - 1, 256u << 20, (256u << 20) + 1, 300u << 20,
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        out[n++] = big[i];
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (out[i] <= max_size)
            out[kept++] = out[i];
    return kept;
}

/* Touches one byte per page of [p, p+n) and the last byte, writing and
 * reading back; returns 0 on success. Used on blocks too large to fill. */
static inline int touch_pages(void *p, size_t n, unsigned char v)
{
    volatile unsigned char *b = p;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i += 4096)
        b[i] = v;
    b[n - 1] = v;
    for (size_t i = 0; i < n; i += 4096)
        if (b[i] != v)
            return -1;
    return b[n - 1] == v ? 0 : -1;
}

static inline size_t next_pow2(size_t x)
{
    size_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

/* Everything written to fd (a regular file), NUL-terminated, in a block
 * the caller frees; closes fd. NULL on failure. */
static inline char *read_back(int fd, size_t *len)
{
    off_t end = lseek(fd, 0, SEEK_END);
    char *buf = end < 0 ? NULL : calloc(1, (size_t)end + 1);
    if (buf && pread(fd, buf, (size_t)end, 0) != end) {
        free(buf);
        buf = NULL;
    }
    close(fd);
    *len = buf ? (size_t)end : 0;
    return buf;
}

#endif /* TL_TESTS_COMMON_H */

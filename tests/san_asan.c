/* san_asan.c - AddressSanitizer/UBSan program: the allocator sources built
 * with -fsanitize=address,undefined, driven through every tl_ function.
 * ASan checks the allocator's own memory accesses (its metadata, its
 * copies and clears); the blocks it hands out are plain mapped memory. */
#include "san_common.h"

enum { SLOTS = 2048 };

static long stress(uint64_t seed, long ops)
{
    static struct {
        unsigned char *p;
        size_t len;
        size_t align;
        uint64_t id;
    } s[SLOTS];
    memset(s, 0, sizeof s);
    rng_t r = {seed};
    uint64_t next_id = 1;
    for (long op = 0; op < ops; op++) {
        unsigned i = (unsigned)(rng_next(&r) % SLOTS);
        unsigned kind = (unsigned)(rng_next(&r) % 100);
        size_t n = rng_next(&r) % 64 == 0 ? rng_range(&r, 4096, 3 * MiB) : rng_range(&r, 0, 3000);
        if (s[i].p) {
            if (check_pattern(s[i].p, s[i].len, s[i].id) != SIZE_MAX)
                w_fail("block id %llu corrupted", (unsigned long long)s[i].id);
            if (kind < 35) {
                unsigned char *q =
                    kind < 30 ? tl_realloc(s[i].p, n) : tl_reallocarray(s[i].p, n, 1);
                if (n == 0) {
                    s[i].p = NULL;
                    continue;
                }
                if (!q) {
                    w_fail("tl_realloc to %zu failed", n);
                    continue;
                }
                size_t keep = s[i].len < n ? s[i].len : n;
                if (check_pattern(q, keep, s[i].id) != SIZE_MAX)
                    w_fail("tl_realloc %zu -> %zu lost data", s[i].len, n);
                fill_pattern_from(q, keep, n, s[i].id);
                s[i].p = q;
                s[i].len = n;
            } else if (kind < 45) {
                if (s[i].align > 16)
                    tl_free_aligned_sized(s[i].p, s[i].align, s[i].len);
                else
                    tl_free_sized(s[i].p, s[i].len);
                s[i].p = NULL;
            } else {
                tl_free(s[i].p);
                s[i].p = NULL;
            }
            continue;
        }
        unsigned char *p;
        size_t align = 16;
        if (kind < 40) {
            p = tl_malloc(n);
        } else if (kind < 55) {
            p = tl_calloc(n, 1);
            if (p && check_zero(p, n) != SIZE_MAX)
                w_fail("tl_calloc(%zu) memory not zero", n);
        } else if (kind < 65) {
            align = (size_t)1 << rng_range(&r, 4, 14);
            p = tl_memalign(align, n);
        } else if (kind < 75) {
            align = (size_t)1 << rng_range(&r, 4, 14);
            p = tl_aligned_alloc(align, n);
        } else if (kind < 85) {
            align = (size_t)1 << rng_range(&r, 4, 12);
            void *q = NULL;
            if (tl_posix_memalign(&q, align, n) != 0)
                w_fail("tl_posix_memalign(%zu, %zu) failed", align, n);
            p = q;
        } else if (kind < 90) {
            align = 4096;
            p = tl_valloc(n);
        } else if (kind < 93) {
            align = 4096;
            p = tl_pvalloc(n);
        } else {
            p = tl_realloc(NULL, n);
        }
        if (!p) {
            w_fail("allocation of %zu bytes (kind %u) failed", n, kind);
            continue;
        }
        if (!is_aligned(p, align) || !is_aligned(p, 16))
            w_fail("%p not %zu-aligned", (void *)p, align);
        if (tl_malloc_usable_size(p) < n)
            w_fail("usable size %zu < %zu", tl_malloc_usable_size(p), n);
        s[i].p = p;
        s[i].len = n;
        s[i].align = align;
        s[i].id = next_id++;
        fill_pattern(p, n, s[i].id);
        if ((op & 4095) == 0) {
            tl_thread_flush();
            int rc = tl_malloc_trim(0);
            if (rc != 0 && rc != 1)
                w_fail("tl_malloc_trim returned %d", rc);
        }
    }
    for (unsigned i = 0; i < SLOTS; i++)
        if (s[i].p) {
            if (check_pattern(s[i].p, s[i].len, s[i].id) != SIZE_MAX)
                w_fail("block id %llu corrupted at the end", (unsigned long long)s[i].id);
            tl_free(s[i].p);
        }
    return atomic_load(&w_errors);
}

static long impossible_sizes(void)
{
    size_t huge[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1,
                     (size_t)1 << 60};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        if (tl_malloc(opq(huge[i])) || errno != ENOMEM)
            w_fail("tl_malloc(%zu) did not fail with ENOMEM", huge[i]);
        errno = 0;
        if (tl_memalign(64, opq(huge[i])) || errno != ENOMEM)
            w_fail("tl_memalign(64, %zu) did not fail with ENOMEM", huge[i]);
        errno = 0;
        if (tl_aligned_alloc(4096, opq(huge[i])) || errno != ENOMEM)
            w_fail("tl_aligned_alloc(4096, %zu) did not fail with ENOMEM", huge[i]);
    }
    errno = 0;
    if (tl_calloc(opq(SIZE_MAX / 2 + 1), 2) || errno != ENOMEM)
        w_fail("tl_calloc overflow did not fail with ENOMEM");
    unsigned char *p = tl_malloc(300);
    if (!p)
        return w_fail("tl_malloc(300) failed"), atomic_load(&w_errors);
    fill_pattern(p, 300, 5);
    errno = 0;
    if (tl_realloc(p, opq(SIZE_MAX)) || errno != ENOMEM)
        w_fail("tl_realloc(p, SIZE_MAX) did not fail with ENOMEM");
    if (tl_reallocarray(p, opq(SIZE_MAX), 2))
        w_fail("tl_reallocarray overflow succeeded");
    if (check_pattern(p, 300, 5) != SIZE_MAX)
        w_fail("old block changed by a failed tl_realloc");
    tl_free(p);
    return atomic_load(&w_errors);
}

static long sweep_sizes(void)
{
    static size_t sizes[SWEEP_MAX];
    size_t n = size_sweep(sizes, 64 * MiB);
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = tl_malloc(sizes[i]);
        if (!p) {
            w_fail("tl_malloc(%zu) failed", sizes[i]);
            continue;
        }
        size_t u = tl_malloc_usable_size(p);
        if (u < sizes[i] || !is_aligned(p, 16))
            w_fail("tl_malloc(%zu): usable %zu, address %p", sizes[i], u, (void *)p);
        if (u <= 4 * MiB)
            memset(p, 0xAB, u);
        else
            touch_pages(p, u, 0xAB);
        tl_free(p);
    }
    for (size_t a = 8; a <= 16 * MiB; a <<= 1) {
        size_t sz[] = {1, a - 1, a, a + 1, 3 * a};
        for (int k = 0; k < 5; k++) {
            void *p = tl_aligned_alloc(a, sz[k]);
            if (!p || !is_aligned(p, a))
                w_fail("tl_aligned_alloc(%zu, %zu) = %p", a, sz[k], p);
            else
                touch_pages(p, sz[k], 1);
            tl_free(p);
        }
    }
    return atomic_load(&w_errors);
}

int main(void)
{
    struct churn_result res;
    SAN_CHECK("asan_impossible_sizes", impossible_sizes());
    SAN_CHECK("asan_size_sweep_and_alignment", sweep_sizes());
    SAN_CHECK("asan_stress_100k", stress(1, 100000));
    SAN_CHECK("asan_stress_100k_seed2", stress(2, 100000));
    SAN_CHECK("asan_ring_8_threads", w_ring(8, 40000));
    SAN_CHECK("asan_one_producer_many_consumers", w_one_to_many(4, 20000));
    SAN_CHECK("asan_thread_churn", w_churn(300, 8, 100, 0, &res));
    SAN_CHECK("asan_fork_under_load", w_fork_under_load(2, 5, 0));
    return san_finish("asan");
}

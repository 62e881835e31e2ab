/* t_realloc.c - realloc keeps contents across every size band. */
#include <criterion/criterion.h>

#include "common.h"

/* Resizes p from old to n bytes, checks that the first min(old, n) bytes
 * survived, and fills the whole new block with the pattern. */
static unsigned char *resize_checked(unsigned char *p, size_t old, size_t n, uint64_t seed)
{
    unsigned char *q = realloc(p, opq(n));
    cr_assert_not_null(q, "realloc from %zu to %zu bytes returned NULL", old, n);
    cr_assert(is_aligned(q, 16), "realloc to %zu = %p is not 16-byte aligned", n, q);
    cr_assert_geq(malloc_usable_size(q), n);
    size_t keep = old < n ? old : n;
    size_t bad = check_pattern(q, keep, seed);
    cr_assert_eq(bad, SIZE_MAX, "realloc from %zu to %zu lost byte %zu", old, n, bad);
    fill_pattern_from(q, keep, n, seed);
    return q;
}

Test(realloc, contents_across_every_band, .timeout = 120)
{
    static const size_t chain[] = {
        1,
        8,
        24,
        100,
        1000,
        4000,
        16 * KiB,
        100 * KiB,
        256 * KiB,
        MiB,
        3 * MiB,
        80 * MiB,
        200 * MiB,
        300 * MiB,
        400 * MiB,
        270 * MiB,
        150 * MiB,
        70 * MiB,
        8 * MiB,
        100 * KiB,
        20000,
        1500,
        100,
        17,
        1,
        300,
        100 * KiB + 1,
        80 * MiB + 1,
        300 * MiB + 1,
        13,
    };
    unsigned char *p = malloc(chain[0]);
    cr_assert_not_null(p);
    fill_pattern(p, chain[0], 5);
    for (size_t i = 1; i < sizeof chain / sizeof chain[0]; i++)
        p = resize_checked(p, chain[i - 1], chain[i], 5);
    free(p);
}

/* Grows one byte at a time through the small sizes and by small steps
 * through the page band, the sizes at which blocks change size class. */
Test(realloc, grow_and_shrink_in_small_steps, .timeout = 120)
{
    unsigned char *p = NULL;
    size_t old = 0;
    for (size_t n = 1; n <= 4096; n++) {
        p = old ? resize_checked(p, old, n, 11) : NULL;
        if (!old) {
            p = malloc(n);
            cr_assert_not_null(p);
            fill_pattern(p, n, 11);
        }
        old = n;
    }
    for (size_t n = 4096 + 256; n <= 600 * KiB; n += 4096 - 16)
        p = resize_checked(p, old, n, 11), old = n;
    for (size_t n = old; n > 64; n = n * 7 / 8)
        p = resize_checked(p, old, n, 11), old = n;
    free(p);
}

/* Many chains of reallocs to random sizes, with several blocks alive at
 * once so that in-place growth meets occupied neighbours. */
Test(realloc, random_growth_chains, .timeout = 180)
{
    enum { LIVE = 64, STEPS = 40000 };
    unsigned char *p[LIVE] = {0};
    size_t len[LIVE] = {0};
    rng_t r = {7};
    for (int step = 0; step < STEPS; step++) {
        int i = (int)rng_range(&r, 0, LIVE - 1);
        uint64_t seed = 1000 + (uint64_t)i;
        size_t n;
        uint64_t pick = rng_next(&r) % 1000;
        if (pick < 700)
            n = rng_range(&r, 1, 1024);
        else if (pick < 950)
            n = rng_range(&r, 1025, 64 * KiB);
        else if (pick < 997)
            n = rng_range(&r, 64 * KiB, 2 * MiB);
        else
            n = rng_range(&r, 2 * MiB, 24 * MiB);
        if (!p[i]) {
            p[i] = realloc(NULL, opq(n));
            cr_assert_not_null(p[i]);
            fill_pattern(p[i], n, seed);
        } else if (pick % 50 == 0) {
            cr_assert_eq(check_pattern(p[i], len[i], seed), SIZE_MAX,
                         "block corrupted before free");
            free(p[i]);
            p[i] = NULL;
            n = 0;
        } else {
            p[i] = resize_checked(p[i], len[i], n, seed);
        }
        len[i] = n;
    }
    for (int i = 0; i < LIVE; i++) {
        if (p[i])
            cr_assert_eq(check_pattern(p[i], len[i], 1000 + (uint64_t)i), SIZE_MAX);
        free(p[i]);
    }
}

Test(realloc, null_pointer_is_malloc)
{
    size_t sizes[] = {0, 1, 16, 1000, 100 * KiB, 10 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = realloc(NULL, opq(sizes[i]));
        cr_assert_not_null(p, "realloc(NULL, %zu) returned NULL", sizes[i]);
        cr_assert(is_aligned(p, 16));
        cr_assert_geq(malloc_usable_size(p), sizes[i]);
        fill_pattern(p, sizes[i], i);
        cr_assert_eq(check_pattern(p, sizes[i], i), SIZE_MAX);
        free(p);
    }
}

/* glibc: realloc(p, 0) frees p and returns NULL. */
Test(realloc, zero_size_frees_and_returns_null)
{
    size_t sizes[] = {1, 100, 5000, 300 * KiB, 40 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int rep = 0; rep < 50; rep++) {
            void *p = malloc(opq(sizes[i]));
            cr_assert_not_null(p);
            memset(p, 0x5A, sizes[i]);
            void *q = realloc(p, opq(0));
            cr_assert_null(q, "realloc(%zu-byte block, 0) returned %p, expected NULL", sizes[i], q);
            if (sizes[i] > MiB)
                break;
        }
    }
    /* The freed blocks are really reusable: the heap keeps working. */
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(opq(100));
        cr_assert_not_null(p);
        free(p);
    }
}

Test(realloc, failed_realloc_keeps_old_block)
{
    size_t n = 4096;
    unsigned char *p = malloc(n);
    cr_assert_not_null(p);
    fill_pattern(p, n, 3);
    errno = 0;
    void *q = realloc(opq_ptr(p), opq(SIZE_MAX / 2));
    cr_assert_null(q);
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(check_pattern(p, n, 3), SIZE_MAX, "old block changed by a failed realloc");
    /* Still a valid block. */
    cr_assert_geq(malloc_usable_size(p), n);
    p = resize_checked(p, n, 3 * n, 3);
    free(p);
}

/* Shrinking in place must not lose data and growing right back works. */
Test(realloc, shrink_then_grow_back)
{
    static const size_t big[] = {2000, 70 * KiB, 3 * MiB, 40 * MiB};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        size_t n = big[i];
        unsigned char *p = malloc(n);
        cr_assert_not_null(p);
        fill_pattern(p, n, 90 + i);
        p = resize_checked(p, n, n / 3, 90 + i);
        p = resize_checked(p, n / 3, n / 3 - 1, 90 + i);
        p = resize_checked(p, n / 3 - 1, n, 90 + i);
        p = resize_checked(p, n, n + 1, 90 + i);
        free(p);
    }
}

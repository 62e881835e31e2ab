/* t_limits.c - impossible sizes: every function returns NULL (or an error
 * code) with errno ENOMEM, and a failed resize leaves the old block alone. */
#include <criterion/criterion.h>

#include "common.h"

static const size_t huge_ks[] = {0,
                                 1,
                                 2,
                                 7,
                                 8,
                                 15,
                                 16,
                                 17,
                                 31,
                                 32,
                                 63,
                                 64,
                                 4095,
                                 4096,
                                 4097,
                                 65535,
                                 65536,
                                 (size_t)1 << 20,
                                 (size_t)1 << 30};

#define EXPECT_ENOMEM_NULL(expr, what, ...)                                                        \
    do {                                                                                           \
        errno = 0;                                                                                 \
        void *res_ = (expr);                                                                       \
        int err_ = errno;                                                                          \
        cr_assert_null(res_, what " returned %p, expected NULL", __VA_ARGS__, res_);               \
        cr_assert_eq(err_, ENOMEM, what " set errno to %d (%s), expected ENOMEM", __VA_ARGS__,     \
                     err_, strerror(err_));                                                        \
    } while (0)

Test(limits, malloc_size_max)
{
    EXPECT_ENOMEM_NULL(malloc(opq(SIZE_MAX)), "malloc(SIZE_MAX)%s", "");
    for (size_t i = 0; i < sizeof huge_ks / sizeof huge_ks[0]; i++) {
        size_t s = SIZE_MAX - huge_ks[i];
        EXPECT_ENOMEM_NULL(malloc(opq(s)), "malloc(SIZE_MAX-%zu)", huge_ks[i]);
    }
}

Test(limits, malloc_above_ptrdiff_max)
{
    size_t big = (size_t)PTRDIFF_MAX + 1;
    EXPECT_ENOMEM_NULL(malloc(opq(big)), "malloc(PTRDIFF_MAX+1 = %zu)", big);
    EXPECT_ENOMEM_NULL(malloc(opq((size_t)PTRDIFF_MAX)), "malloc(PTRDIFF_MAX = %zu)",
                       (size_t)PTRDIFF_MAX);
    EXPECT_ENOMEM_NULL(malloc(opq(big + 4096)), "malloc(%zu)", big + 4096);
    /* Larger than the whole address space but far below PTRDIFF_MAX. */
    EXPECT_ENOMEM_NULL(malloc(opq((size_t)1 << 60)), "malloc(2^60 = %zu)", (size_t)1 << 60);
    /* The allocator still works afterwards. */
    void *p = malloc(100);
    cr_assert_not_null(p);
    free(p);
}

Test(limits, calloc_overflow)
{
    static const size_t pairs[][2] = {
        {SIZE_MAX, 2},
        {2, SIZE_MAX},
        {SIZE_MAX, SIZE_MAX},
        {(SIZE_MAX / 2) + 1, 2},
        {(size_t)1 << 32, (size_t)1 << 32},
        {((size_t)1 << 32) + 1, ((size_t)1 << 32) - 1},
        {SIZE_MAX / 16 + 1, 16},
        {65536, ((size_t)1 << 48) + 1},
        {(size_t)PTRDIFF_MAX, 2},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t n = pairs[i][0], m = pairs[i][1];
        EXPECT_ENOMEM_NULL(calloc(opq(n), opq(m)), "calloc(%zu, %zu)", n, m);
    }
    /* Products that do not overflow but cannot be satisfied. */
    EXPECT_ENOMEM_NULL(calloc(opq(1), opq(SIZE_MAX)), "calloc(1, SIZE_MAX)%s", "");
    EXPECT_ENOMEM_NULL(calloc(opq((size_t)1 << 31), opq((size_t)1 << 31)), "calloc(2^31, 2^31)%s",
                       "");
}

Test(limits, reallocarray_overflow_keeps_block)
{
    size_t n = 1000;
    unsigned char *p = malloc(n);
    cr_assert_not_null(p);
    fill_pattern(p, n, 77);
    static const size_t pairs[][2] = {
        {SIZE_MAX, 2},
        {(size_t)1 << 32, (size_t)1 << 32},
        {SIZE_MAX / 8 + 1, 8},
        {3, SIZE_MAX / 2},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        void *q = reallocarray(opq_ptr(p), opq(pairs[i][0]), opq(pairs[i][1]));
        int err = errno;
        cr_assert_null(q, "reallocarray(p, %zu, %zu) succeeded", pairs[i][0], pairs[i][1]);
        cr_assert_eq(err, ENOMEM, "reallocarray overflow set errno %d, expected ENOMEM", err);
        cr_assert_eq(check_pattern(p, n, 77), SIZE_MAX, "old block changed by failed reallocarray");
    }
    /* A valid reallocarray still works on the same block. */
    unsigned char *q = reallocarray(p, opq(500), opq(4));
    cr_assert_not_null(q);
    cr_assert_eq(check_pattern(q, n, 77), SIZE_MAX);
    free(q);
}

Test(limits, realloc_huge_keeps_block)
{
    static const size_t olds[] = {1, 100, 5000, 300 * 1024, 20 * 1024 * 1024};
    for (size_t i = 0; i < sizeof olds / sizeof olds[0]; i++) {
        size_t n = olds[i];
        unsigned char *p = malloc(n);
        cr_assert_not_null(p);
        fill_pattern(p, n, 1000 + i);
        size_t targets[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1, (size_t)1 << 60};
        for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
            errno = 0;
            void *q = realloc(opq_ptr(p), opq(targets[t]));
            int err = errno;
            cr_assert_null(q, "realloc(%zu-byte block, %zu) succeeded", n, targets[t]);
            cr_assert_eq(err, ENOMEM, "failed realloc set errno %d, expected ENOMEM", err);
            cr_assert_eq(check_pattern(p, n, 1000 + i), SIZE_MAX,
                         "%zu-byte block changed by failed realloc", n);
        }
        /* The old block is still a valid block: it can grow and be freed. */
        unsigned char *q = realloc(p, n * 2);
        cr_assert_not_null(q);
        cr_assert_eq(check_pattern(q, n, 1000 + i), SIZE_MAX);
        free(q);
    }
}

Test(limits, aligned_functions_huge_size)
{
    static const size_t aligns[] = {16, 64, 4096, 1 << 20};
    static const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX - (1 << 20),
                                   (size_t)PTRDIFF_MAX + 1, (size_t)1 << 60};
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t al = aligns[a], sz = sizes[s];
            EXPECT_ENOMEM_NULL(memalign(opq(al), opq(sz)), "memalign(%zu, %zu)", al, sz);
            EXPECT_ENOMEM_NULL(aligned_alloc(opq(al), opq(sz)), "aligned_alloc(%zu, %zu)", al, sz);
            void *mp = (void *)0x1234;
            int rc = posix_memalign(&mp, opq(al), opq(sz));
            cr_assert_eq(rc, ENOMEM, "posix_memalign(%zu, %zu) returned %d, expected ENOMEM", al,
                         sz, rc);
            cr_assert_eq(mp, (void *)0x1234, "posix_memalign changed *memptr on failure");
        }
    }
    EXPECT_ENOMEM_NULL(valloc(opq(SIZE_MAX)), "valloc(SIZE_MAX)%s", "");
    EXPECT_ENOMEM_NULL(valloc(opq(SIZE_MAX - 4096)), "valloc(SIZE_MAX-4096)%s", "");
    EXPECT_ENOMEM_NULL(pvalloc(opq(SIZE_MAX)), "pvalloc(SIZE_MAX)%s", "");
    EXPECT_ENOMEM_NULL(pvalloc(opq(SIZE_MAX - 4096)), "pvalloc(SIZE_MAX-4096)%s", "");
}

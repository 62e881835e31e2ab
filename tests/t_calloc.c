/* t_calloc.c - calloc memory is zero, also when it reuses dirty blocks. */
#include <criterion/criterion.h>

#include "common.h"

/* Dirties blocks of size s with 0xAA, frees them, then callocs the same
 * size and checks every byte is zero; in two orders: one block at a time,
 * and a batch freed together then taken back. */
static void dirty_then_calloc(size_t s, int rounds, int batch)
{
    void *held[64];
    for (int round = 0; round < rounds; round++) {
        void *p = malloc(opq(s));
        cr_assert_not_null(p, "malloc(%zu) returned NULL", s);
        memset(p, 0xAA, malloc_usable_size(p));
        free(p);
        /* Alternate the (n, size) split: calloc(s, 1) and calloc(1, s) and
         * a split in between. */
        void *c;
        if (round % 3 == 0)
            c = calloc(opq(1), opq(s));
        else if (round % 3 == 1)
            c = calloc(opq(s), opq(1));
        else
            c = (s % 8 == 0) ? calloc(opq(s / 8), opq(8)) : calloc(opq(1), opq(s));
        cr_assert_not_null(c, "calloc for %zu bytes returned NULL", s);
        size_t bad = check_zero(c, s);
        cr_assert_eq(bad, SIZE_MAX, "calloc(%zu bytes), round %d: byte %zu is 0x%02x, not zero", s,
                     round, bad, bad == SIZE_MAX ? 0 : ((unsigned char *)c)[bad]);
        memset(c, 0xAA, s);
        free(c);
    }
    for (int b = 0; b < batch; b++) {
        held[b] = malloc(opq(s));
        cr_assert_not_null(held[b]);
        memset(held[b], 0xAA, malloc_usable_size(held[b]));
    }
    for (int b = 0; b < batch; b++)
        free(held[b]);
    for (int b = 0; b < batch; b++) {
        held[b] = calloc(opq(1), opq(s));
        cr_assert_not_null(held[b]);
        size_t bad = check_zero(held[b], s);
        cr_assert_eq(bad, SIZE_MAX,
                     "calloc(1, %zu) after a batch of dirty frees: byte %zu not zero", s, bad);
    }
    for (int b = 0; b < batch; b++)
        free(held[b]);
}

Test(calloc, small_sizes_zero)
{
    for (size_t s = 1; s <= 1100; s += (s < 64 ? 1 : 13))
        dirty_then_calloc(s, 30, 64);
    dirty_then_calloc(2048, 200, 64);
    dirty_then_calloc(4000, 200, 64);
}

Test(calloc, page_sizes_zero, .timeout = 120)
{
    static const size_t sizes[] = {8 * KiB,       32 * KiB + 16, 64 * KiB,   100 * KiB,
                                   256 * KiB - 1, MiB,           2 * MiB + 8};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        dirty_then_calloc(sizes[i], 40, 16);
}

Test(calloc, huge_sizes_zero, .timeout = 120)
{
    static const size_t sizes[] = {8 * MiB, 33 * MiB + 16, 64 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        dirty_then_calloc(sizes[i], 6, 3);
}

/* A calloc that follows a realloc shrink of a dirty block (the tail of the
 * old block may be handed out again). */
Test(calloc, after_shrink_zero)
{
    for (int i = 0; i < 200; i++) {
        size_t big = 1000 + (size_t)i * 97;
        unsigned char *p = malloc(big);
        cr_assert_not_null(p);
        memset(p, 0xAA, big);
        p = realloc(p, big / 4);
        cr_assert_not_null(p);
        unsigned char *c = calloc(1, big / 2);
        cr_assert_not_null(c);
        cr_assert_eq(check_zero(c, big / 2), SIZE_MAX, "calloc(1, %zu) not zero after a shrink",
                     big / 2);
        free(c);
        free(p);
    }
}

Test(calloc, zero_count_or_size_non_null)
{
    void *a = calloc(opq(0), opq(16));
    void *b = calloc(opq(16), opq(0));
    void *c = calloc(opq(0), opq(0));
    cr_assert_not_null(a, "calloc(0, 16) returned NULL");
    cr_assert_not_null(b, "calloc(16, 0) returned NULL");
    cr_assert_not_null(c, "calloc(0, 0) returned NULL");
    cr_assert(a != b && b != c && a != c, "calloc with zero size returned the same pointer twice");
    free(a);
    free(b);
    free(c);
}

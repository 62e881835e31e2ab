/* t_align.c - alignment of every result, malloc(0), free(NULL) and
 * malloc_usable_size. */
#include <criterion/criterion.h>

#include "common.h"

/* Every block is 16-byte aligned, also for sizes 1..8, across the whole
 * sweep of size-class boundaries up to 300 MiB. Small sizes are taken
 * several times in a row because successive blocks of a size class sit at
 * different offsets of their span. */
Test(align, malloc_16_bytes_every_size, .timeout = 180)
{
    static size_t sizes[SWEEP_MAX];
    size_t n = size_sweep(sizes, SIZE_MAX);
    enum { REPS = 8 };
    for (size_t i = 0; i < n; i++) {
        size_t s = sizes[i];
        void *held[REPS];
        int reps = s <= 65536 ? REPS : 1;
        for (int r = 0; r < reps; r++) {
            void *p = malloc(opq(s));
            cr_assert_not_null(p, "malloc(%zu) returned NULL", s);
            cr_assert(is_aligned(p, 16), "malloc(%zu) = %p is not 16-byte aligned", s, p);
            if (s) {
                ((volatile char *)p)[0] = 1;
                ((volatile char *)p)[s - 1] = 2;
            }
            held[r] = p;
        }
        for (int r = 0; r < reps; r++)
            free(held[r]);
    }
}

Test(align, calloc_and_realloc_16_bytes, .timeout = 180)
{
    static size_t sizes[SWEEP_MAX];
    size_t n = size_sweep(sizes, 4 * MiB);
    void *r = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t s = sizes[i];
        void *c = calloc(1, opq(s));
        cr_assert_not_null(c, "calloc(1, %zu) returned NULL", s);
        cr_assert(is_aligned(c, 16), "calloc(1, %zu) = %p is not 16-byte aligned", s, c);
        free(c);
        if (s == 0)
            continue;
        r = realloc(r, opq(s));
        cr_assert_not_null(r, "realloc to %zu returned NULL", s);
        cr_assert(is_aligned(r, 16), "realloc to %zu = %p is not 16-byte aligned", s, r);
    }
    /* And back down. */
    for (size_t i = n; i-- > 1;) {
        r = realloc(r, opq(sizes[i]));
        cr_assert_not_null(r);
        cr_assert(is_aligned(r, 16), "realloc down to %zu = %p is not 16-byte aligned", sizes[i],
                  r);
    }
    free(r);
}

Test(align, malloc_zero_unique_non_null)
{
    enum { N = 2000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(opq(0));
        cr_assert_not_null(p[i], "malloc(0) returned NULL (call %d)", i);
        cr_assert(is_aligned(p[i], 16));
    }
    /* All distinct: sort the addresses and compare neighbours. */
    static void *q[N];
    memcpy(q, p, sizeof q);
    for (int i = 1; i < N; i++) {
        void *v = q[i];
        int j = i - 1;
        while (j >= 0 && (uintptr_t)q[j] > (uintptr_t)v) {
            q[j + 1] = q[j];
            j--;
        }
        q[j + 1] = v;
    }
    for (int i = 1; i < N; i++)
        cr_assert_neq(q[i], q[i - 1], "malloc(0) returned %p twice", q[i]);
    for (int i = 0; i < N; i++)
        free(p[i]);
}

Test(align, free_null_is_safe)
{
    free(NULL);
    free(opq_ptr(NULL));
    void *p = malloc(10);
    cr_assert_not_null(p);
    free(p);
}

Test(align, usable_size_null_is_zero)
{
    cr_assert_eq(malloc_usable_size(NULL), 0);
    cr_assert_eq(malloc_usable_size(opq_ptr(NULL)), 0);
}

/* malloc_usable_size(p) >= request and every one of those bytes can be
 * written without touching any other block: three blocks of one size are
 * filled with their own patterns over their whole usable size, then checked. */
Test(align, usable_size_all_bytes_writable, .timeout = 180)
{
    static size_t sizes[SWEEP_MAX];
    size_t n = size_sweep(sizes, 64 * MiB);
    for (size_t i = 0; i < n; i++) {
        size_t s = sizes[i];
        void *a = malloc(opq(s)), *b = malloc(opq(s)), *c = malloc(opq(s));
        cr_assert(a && b && c, "malloc(%zu) returned NULL", s);
        size_t ua = malloc_usable_size(a), ub = malloc_usable_size(b), uc = malloc_usable_size(c);
        cr_assert_geq(ua, s, "malloc_usable_size(malloc(%zu)) = %zu", s, ua);
        cr_assert_geq(ub, s, "malloc_usable_size(malloc(%zu)) = %zu", s, ub);
        cr_assert_geq(uc, s, "malloc_usable_size(malloc(%zu)) = %zu", s, uc);
        cr_assert_lt(ub, 2 * s + 4096 + (s >> 1), "usable size %zu is absurd for %zu", ub, s);
        /* Neighbours: filled completely up to 256 KiB, otherwise in their
         * first and last 64 KiB, where a neighbour's overflow would land. */
        int full = s <= 256 * KiB;
        size_t edge = 64 * KiB;
        uint64_t sa = 2 * i + 1, sb = 2 * i + 2, sc = 2 * i + 3;
        if (full) {
            fill_pattern(a, ua, sa);
            fill_pattern(c, uc, sc);
        } else {
            fill_pattern(a, edge, sa);
            fill_pattern_from(a, ua - edge, ua, sa);
            fill_pattern(c, edge, sc);
            fill_pattern_from(c, uc - edge, uc, sc);
        }
        fill_pattern(b, ub, sb);
        size_t bad = check_pattern(b, ub, sb);
        cr_assert_eq(bad, SIZE_MAX, "size %zu: byte %zu of the block reads back wrong", s, bad);
        if (full) {
            bad = check_pattern(a, ua, sa);
            cr_assert_eq(bad, SIZE_MAX, "size %zu: neighbour block corrupted at %zu", s, bad);
            bad = check_pattern(c, uc, sc);
            cr_assert_eq(bad, SIZE_MAX, "size %zu: neighbour block corrupted at %zu", s, bad);
        } else {
            cr_assert_eq(check_pattern(a, edge, sa), SIZE_MAX, "size %zu: neighbour corrupted", s);
            cr_assert_eq(check_pattern_from(a, ua - edge, ua, sa), SIZE_MAX,
                         "size %zu: neighbour corrupted", s);
            cr_assert_eq(check_pattern(c, edge, sc), SIZE_MAX, "size %zu: neighbour corrupted", s);
            cr_assert_eq(check_pattern_from(c, uc - edge, uc, sc), SIZE_MAX,
                         "size %zu: neighbour corrupted", s);
        }
        free(a);
        free(b);
        free(c);
    }
}

/* Many live blocks of mixed small sizes, each written over its whole usable
 * size, then all checked: catches blocks of a size class that overlap. */
Test(align, many_live_small_blocks_do_not_overlap, .timeout = 120)
{
    enum { N = 20000 };
    static void *p[N];
    static size_t u[N];
    rng_t r = {42};
    for (int i = 0; i < N; i++) {
        size_t s = rng_range(&r, 0, i % 16 ? 512 : 16384);
        p[i] = malloc(opq(s));
        cr_assert_not_null(p[i]);
        u[i] = malloc_usable_size(p[i]);
        cr_assert_geq(u[i], s);
        fill_pattern(p[i], u[i], (uint64_t)i);
    }
    for (int i = 0; i < N; i++) {
        size_t bad = check_pattern(p[i], u[i], (uint64_t)i);
        cr_assert_eq(bad, SIZE_MAX, "block %d (%p, usable %zu) overwritten at %zu", i, p[i], u[i],
                     bad);
    }
    for (int i = 0; i < N; i++)
        free(p[i]);
}

/* t_memalign.c - posix_memalign, aligned_alloc, memalign, valloc, pvalloc. */
#include <criterion/criterion.h>

#include "common.h"

#define MAX_ALIGN (64 * MiB)

/* Writes a block of n bytes: every byte when small, one byte per page
 * otherwise. Returns 0 when the bytes read back. */
static int write_block(void *p, size_t n, uint64_t seed)
{
    if (n <= MiB) {
        fill_pattern(p, n, seed);
        return check_pattern(p, n, seed) == SIZE_MAX ? 0 : -1;
    }
    return touch_pages(p, n, (unsigned char)seed);
}

Test(posix_memalign, einval_for_bad_alignment)
{
    static const size_t bad[] = {0,
                                 1,
                                 2,
                                 3,
                                 4,
                                 5,
                                 6,
                                 7,
                                 12,
                                 24,
                                 40,
                                 48,
                                 96,
                                 100,
                                 1000,
                                 3000,
                                 4097,
                                 12288,
                                 (1 << 20) + 16,
                                 SIZE_MAX,
                                 SIZE_MAX / 2,
                                 3 * MiB};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *mp = (void *)0xdeadbeef;
        int rc = posix_memalign(&mp, opq(bad[i]), opq(64));
        cr_assert_eq(rc, EINVAL, "posix_memalign(alignment %zu) returned %d, expected EINVAL",
                     bad[i], rc);
        cr_assert_eq(mp, (void *)0xdeadbeef,
                     "posix_memalign(alignment %zu) changed *memptr on failure", bad[i]);
    }
}

Test(posix_memalign, enomem_for_impossible_size)
{
    void *mp = (void *)0xdeadbeef;
    int rc = posix_memalign(&mp, opq(64), opq(SIZE_MAX - 128));
    cr_assert_eq(rc, ENOMEM, "returned %d, expected ENOMEM", rc);
    cr_assert_eq(mp, (void *)0xdeadbeef, "*memptr changed on failure");
    rc = posix_memalign(&mp, opq(4096), opq((size_t)1 << 62));
    cr_assert_eq(rc, ENOMEM, "returned %d, expected ENOMEM", rc);
    cr_assert_eq(mp, (void *)0xdeadbeef, "*memptr changed on failure");
}

Test(posix_memalign, every_power_of_two_alignment, .timeout = 120)
{
    for (size_t a = sizeof(void *); a <= MAX_ALIGN; a <<= 1) {
        size_t sizes[] = {0, 1, a - 1, a, a + 1, 3 * a, 100};
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t s = sizes[k];
            void *p = NULL;
            int rc = posix_memalign(&p, opq(a), opq(s));
            cr_assert_eq(rc, 0, "posix_memalign(%zu, %zu) returned %d", a, s, rc);
            cr_assert_not_null(p, "posix_memalign(%zu, %zu) gave NULL", a, s);
            cr_assert(is_aligned(p, a), "posix_memalign(%zu, %zu) = %p misaligned", a, s, p);
            cr_assert_geq(malloc_usable_size(p), s);
            cr_assert_eq(write_block(p, s, a + k), 0, "posix_memalign(%zu, %zu) block not writable",
                         a, s);
            free(p);
        }
    }
}

typedef void *(*align_fn)(size_t, size_t);

static void check_aligned_fn(align_fn fn, const char *name)
{
    for (size_t a = 8; a <= MAX_ALIGN; a <<= 1) {
        size_t sizes[] = {1, a - 1, a, a + 1, 3 * a};
        /* Several at once, so that the allocator has to place them apart. */
        void *held[5];
        for (size_t k = 0; k < 5; k++) {
            size_t s = sizes[k];
            errno = 0;
            void *p = fn(opq(a), opq(s));
            cr_assert_not_null(p, "%s(%zu, %zu) returned NULL (errno %d)", name, a, s, errno);
            cr_assert(is_aligned(p, a), "%s(%zu, %zu) = %p is not aligned", name, a, s, p);
            cr_assert(is_aligned(p, 16), "%s(%zu, %zu) = %p is not 16-byte aligned", name, a, s, p);
            cr_assert_geq(malloc_usable_size(p), s, "%s(%zu, %zu): usable size %zu", name, a, s,
                          malloc_usable_size(p));
            cr_assert_eq(write_block(p, s, a * 7 + k), 0, "%s(%zu, %zu) block not writable", name,
                         a, s);
            held[k] = p;
        }
        for (size_t k = 0; k < 5; k++)
            if (sizes[k] <= MiB)
                cr_assert_eq(check_pattern(held[k], sizes[k], a * 7 + k), SIZE_MAX,
                             "%s(%zu, %zu) block overwritten by a later block", name, a, sizes[k]);
        for (size_t k = 0; k < 5; k++)
            free(held[k]);
    }
}

Test(aligned_alloc, every_power_of_two_alignment, .timeout = 120)
{
    check_aligned_fn(aligned_alloc, "aligned_alloc");
}

Test(memalign, every_power_of_two_alignment, .timeout = 120)
{
    check_aligned_fn(memalign, "memalign");
}

/* Many small aligned blocks live at once (the case where allocators that
 * carve aligned blocks out of size classes get it wrong). */
Test(aligned_alloc, many_small_aligned_live_blocks)
{
    enum { N = 256 };
    for (size_t a = 16; a <= 8192; a <<= 1) {
        void *p[N];
        for (int i = 0; i < N; i++) {
            size_t s = (i % 3 == 0) ? a : (size_t)(i * 37 % 700 + 1);
            p[i] = aligned_alloc(opq(a), opq(s));
            cr_assert_not_null(p[i]);
            cr_assert(is_aligned(p[i], a), "aligned_alloc(%zu, %zu) = %p", a, s, p[i]);
            fill_pattern(p[i], s, a + (uint64_t)i);
        }
        for (int i = 0; i < N; i++) {
            size_t s = (i % 3 == 0) ? a : (size_t)(i * 37 % 700 + 1);
            cr_assert_eq(check_pattern(p[i], s, a + (uint64_t)i), SIZE_MAX,
                         "aligned block %d (alignment %zu) overwritten", i, a);
            free(p[i]);
        }
    }
}

/* C17 (DR 460) and glibc 2.38: aligned_alloc with an alignment that is not
 * a power of two fails with EINVAL. (glibc 2.36 rounds it up instead.) */
Test(aligned_alloc, einval_for_non_power_of_two)
{
    static const size_t bad[] = {3, 24, 48, 100, 1000, 4097, 3 * MiB, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = aligned_alloc(opq(bad[i]), opq(64));
        int err = errno;
        cr_assert_null(p, "aligned_alloc(%zu, 64) = %p, expected NULL", bad[i], p);
        cr_assert_eq(err, EINVAL, "aligned_alloc(%zu, 64) set errno %d, expected EINVAL", bad[i],
                     err);
    }
    errno = 0;
    void *p = aligned_alloc(opq(0), opq(64));
    int err = errno;
    cr_assert_null(p, "aligned_alloc(0, 64) = %p, expected NULL", p);
    cr_assert_eq(err, EINVAL, "aligned_alloc(0, 64) set errno %d, expected EINVAL", err);
}

/* memalign rounds an alignment that is not a power of two up to the next
 * power of two (glibc behaviour); alignments below 16 give 16. */
Test(memalign, rounds_non_power_of_two_up)
{
    static const size_t odd[] = {
        3, 5, 12, 17, 24, 33, 48, 100, 129, 1000, 3000, 4097, 5000, 12288, (1 << 20) + 1, 3 * MiB};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        size_t a = odd[i], want = next_pow2(a);
        for (size_t s = 1; s <= 2 * want + 1; s += want / 2 + 1) {
            void *p = memalign(opq(a), opq(s));
            cr_assert_not_null(p, "memalign(%zu, %zu) returned NULL", a, s);
            cr_assert(is_aligned(p, want), "memalign(%zu, %zu) = %p is not %zu-aligned", a, s, p,
                      want);
            cr_assert(is_aligned(p, 16));
            cr_assert_eq(write_block(p, s, a + s), 0);
            free(p);
        }
    }
    for (size_t a = 0; a <= 16; a++) {
        void *p = memalign(opq(a), opq(40));
        cr_assert_not_null(p, "memalign(%zu, 40) returned NULL", a);
        cr_assert(is_aligned(p, 16), "memalign(%zu, 40) = %p is not 16-byte aligned", a, p);
        free(p);
    }
}

Test(valloc, page_aligned)
{
    size_t pg = page_size();
    size_t sizes[] = {0, 1, 100, pg - 1, pg, pg + 1, 5000, 3 * pg, 100 * KiB, MiB, 10 * MiB};
    void *held[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = valloc(opq(sizes[i]));
        cr_assert_not_null(p, "valloc(%zu) returned NULL", sizes[i]);
        cr_assert(is_aligned(p, pg), "valloc(%zu) = %p is not page aligned", sizes[i], p);
        cr_assert_geq(malloc_usable_size(p), sizes[i]);
        cr_assert_eq(write_block(p, sizes[i], i), 0);
        held[i] = p;
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        free(held[i]);
}

Test(pvalloc, rounds_up_to_page)
{
    size_t pg = page_size();
    size_t sizes[] = {1,    100,        pg - 1,        pg,      pg + 1,
                      5000, 3 * pg + 7, 100 * KiB + 1, MiB + 1, 10 * MiB + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t s = sizes[i], rounded = (s + pg - 1) / pg * pg;
        void *p = pvalloc(opq(s));
        cr_assert_not_null(p, "pvalloc(%zu) returned NULL", s);
        cr_assert(is_aligned(p, pg), "pvalloc(%zu) = %p is not page aligned", s, p);
        cr_assert_geq(malloc_usable_size(p), rounded, "pvalloc(%zu): usable %zu < %zu", s,
                      malloc_usable_size(p), rounded);
        cr_assert_eq(write_block(p, rounded, i), 0, "pvalloc(%zu): rounded size not writable", s);
        free(p);
    }
}

Test(pvalloc, zero_gives_a_page)
{
    size_t pg = page_size();
    void *p = pvalloc(opq(0));
    cr_assert_not_null(p, "pvalloc(0) returned NULL");
    cr_assert(is_aligned(p, pg), "pvalloc(0) = %p is not page aligned", p);
    cr_assert_geq(malloc_usable_size(p), pg, "pvalloc(0): usable size %zu, expected a page",
                  malloc_usable_size(p));
    cr_assert_eq(write_block(p, pg, 9), 0);
    free(p);
}

/* t_compat.c - the extra entry points: cfree, free_sized,
 * free_aligned_sized, the __libc_ aliases, malloc_trim, malloc_stats,
 * mallinfo2 and mallopt. */
#include <criterion/criterion.h>

#include "common.h"

/* Under -DTL_BASELINE_GLIBC (the check of the tests against glibc 2.36)
 * functions glibc does not export are skipped instead of failed. */
#ifdef TL_BASELINE_GLIBC
#define REQUIRE_FN(fn)                                                                             \
    do {                                                                                           \
        if (!(fn))                                                                                 \
            cr_skip_test(#fn " is not exported by the system C library");                          \
    } while (0)
#else
#define REQUIRE_FN(fn) cr_assert_not_null((void *)(fn), #fn " is not exported")
#endif

Test(compat, cfree_frees)
{
    REQUIRE_FN(cfree);
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(opq((size_t)(i % 300) * 7 + 1));
        cr_assert_not_null(p);
        cfree(p);
    }
    cfree(NULL);
}

Test(compat, free_sized_frees)
{
    REQUIRE_FN(free_sized);
    static const size_t sizes[] = {1, 8, 16, 100, 1000, 4096, 70000, 300 * KiB, 5 * MiB, 40 * MiB};
    for (int rep = 0; rep < 20; rep++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *p = malloc(opq(sizes[i]));
            cr_assert_not_null(p);
            p[0] = 1;
            p[sizes[i] - 1] = 2;
            free_sized(p, sizes[i]);
        }
        /* Blocks from calloc and realloc too, with the size last asked for. */
        void *c = calloc(opq(10), opq(30));
        cr_assert_not_null(c);
        free_sized(c, 300);
        void *r = malloc(opq(50));
        cr_assert_not_null(r);
        r = realloc(r, opq(5000));
        cr_assert_not_null(r);
        free_sized(r, 5000);
    }
    free_sized(NULL, 0);
    /* The freed memory is reused normally. */
    void *p = malloc(100);
    cr_assert_not_null(p);
    free(p);
}

Test(compat, free_aligned_sized_frees)
{
    REQUIRE_FN(free_aligned_sized);
    for (size_t a = 16; a <= 4 * MiB; a <<= 1) {
        size_t sizes[] = {a, 3 * a, a * 2};
        for (size_t k = 0; k < 3; k++) {
            void *p = aligned_alloc(opq(a), opq(sizes[k]));
            cr_assert_not_null(p);
            cr_assert(is_aligned(p, a));
            memset(p, 0x11, sizes[k]);
            free_aligned_sized(p, a, sizes[k]);
        }
    }
    free_aligned_sized(NULL, 64, 0);
}

/* The __libc_ aliases work and their blocks are the same heap as malloc's:
 * each is freed by the other family. */
Test(compat, libc_aliases_interoperate)
{
    REQUIRE_FN(__libc_malloc);
    REQUIRE_FN(__libc_free);
    REQUIRE_FN(__libc_calloc);
    REQUIRE_FN(__libc_realloc);
    REQUIRE_FN(__libc_memalign);
    REQUIRE_FN(__libc_valloc);
    REQUIRE_FN(__libc_pvalloc);
    size_t pg = page_size();
    for (int rep = 0; rep < 50; rep++) {
        size_t s = rep % 10 == 9 ? 200 * KiB : (size_t)rep * 40 + 1;
        unsigned char *a = __libc_malloc(opq(s));
        cr_assert_not_null(a);
        cr_assert(is_aligned(a, 16));
        fill_pattern(a, s, 1);
        a = realloc(a, s * 2);
        cr_assert_not_null(a);
        cr_assert_eq(check_pattern(a, s, 1), SIZE_MAX);
        free(a);

        unsigned char *b = malloc(opq(s));
        cr_assert_not_null(b);
        fill_pattern(b, s, 2);
        b = __libc_realloc(b, opq(s * 3));
        cr_assert_not_null(b);
        cr_assert_eq(check_pattern(b, s, 2), SIZE_MAX, "__libc_realloc lost the contents");
        __libc_free(b);

        unsigned char *c = __libc_calloc(opq(s), opq(1));
        cr_assert_not_null(c);
        cr_assert_eq(check_zero(c, s), SIZE_MAX, "__libc_calloc memory not zero");
        free(c);

        void *d = __libc_memalign(opq(256), opq(s));
        cr_assert_not_null(d);
        cr_assert(is_aligned(d, 256));
        free(d);

        void *e = __libc_valloc(opq(s));
        cr_assert_not_null(e);
        cr_assert(is_aligned(e, pg));
        free(e);

        void *f = __libc_pvalloc(opq(s));
        cr_assert_not_null(f);
        cr_assert(is_aligned(f, pg));
        cr_assert_geq(malloc_usable_size(f), (s + pg - 1) / pg * pg);
        __libc_free(f);

        void *g = memalign(64, s);
        cr_assert_not_null(g);
        __libc_free(g);
    }
    __libc_free(NULL);
}

Test(compat, posix_memalign_alias)
{
    REQUIRE_FN(__posix_memalign);
    void *p = (void *)0x77;
    cr_assert_eq(__posix_memalign(&p, opq(3), 10), EINVAL);
    cr_assert_eq(p, (void *)0x77);
    for (size_t a = 8; a <= MiB; a <<= 1) {
        p = NULL;
        cr_assert_eq(__posix_memalign(&p, opq(a), opq(a + 5)), 0);
        cr_assert_not_null(p);
        cr_assert(is_aligned(p, a));
        memset(p, 0x33, a + 5);
        free(p);
    }
}

Test(compat, malloc_trim_returns_0_or_1)
{
    enum { N = 4000 };
    static void *p[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            p[i] = malloc(opq((size_t)(i % 50 + 1) * 100));
            cr_assert_not_null(p[i]);
            memset(p[i], 1, (size_t)(i % 50 + 1) * 100);
        }
        void *big = malloc(opq(50 * MiB));
        cr_assert_not_null(big);
        memset(big, 2, 50 * MiB);
        free(big);
        for (int i = 0; i < N; i += 2)
            free(p[i]);
        int rc = malloc_trim(opq(0));
        cr_assert(rc == 0 || rc == 1, "malloc_trim(0) returned %d", rc);
        /* The surviving blocks are intact and the heap keeps working. */
        for (int i = 1; i < N; i += 2) {
            unsigned char *b = p[i];
            cr_assert(b[0] == 1 && b[(size_t)(i % 50 + 1) * 100 - 1] == 1,
                      "block damaged by malloc_trim");
            free(b);
        }
        rc = malloc_trim(opq(64 * KiB));
        cr_assert(rc == 0 || rc == 1, "malloc_trim(64 KiB) returned %d", rc);
        for (int i = 0; i < N; i++) {
            p[i] = malloc(opq((size_t)(i % 70 + 1) * 64));
            cr_assert_not_null(p[i], "malloc after malloc_trim failed");
            memset(p[i], 3, (size_t)(i % 70 + 1) * 64);
        }
        for (int i = 0; i < N; i++)
            free(p[i]);
    }
}

/* Runs fn with file descriptor 2 redirected to a temporary file and returns
 * what was written (stdio's stderr is flushed too). */
static char *capture_stderr(void (*fn)(void), size_t *len)
{
    char path[] = "/tmp/tlmalloc-test-stderr-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *buf = read_back(fd, len);
    cr_assert_not_null(buf, "cannot read back the captured stderr");
    return buf;
}

static void call_malloc_stats(void) { malloc_stats(); }

Test(compat, malloc_stats_prints_to_stderr)
{
    void *p = malloc(12345);
    cr_assert_not_null(p);
    size_t len;
    char *out = capture_stderr(call_malloc_stats, &len);
    cr_assert_gt(len, 0, "malloc_stats() wrote nothing to stderr");
    free(out);
    free(p);
}

/* glibc's lines come first, as programs and glibc's tests read them; a
 * block of 300 MiB is an own mapping in both (above tlmalloc's default
 * huge_threshold and glibc's mmap threshold), counted in "max mmap
 * regions". */
Test(compat, malloc_stats_has_glibcs_lines)
{
    void *big = malloc(opq(300 * MiB));
    cr_assert_not_null(big);
    size_t len;
    char *out = capture_stderr(call_malloc_stats, &len);
    free(big);
    const char *lines[] = {"Arena 0:\nsystem bytes     = ", "in use bytes     = ",
                           "Total (incl. mmap):\nsystem bytes     = ", "max mmap bytes   = "};
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        cr_assert_not_null(strstr(out, lines[i]), "no \"%s\" in malloc_stats:\n%s", lines[i], out);
    const char *regions = strstr(out, "max mmap regions = ");
    cr_assert_not_null(regions, "no max mmap regions line:\n%s", out);
    cr_assert_geq(atol(regions + strlen("max mmap regions = ")), 1, "%s", out);
    free(out);
}

/* As in glibc, uordblks is what is in use in the heap proper: blocks in
 * own mappings (300 MiB, as above) count in hblkhd only, so uordblks + hblkhd is what the
 * program holds. tlmalloc counted them in both. */
Test(compat, mallinfo2_counts_own_mappings_once)
{
    struct mallinfo2 before = mallinfo2();
    void *big = malloc(opq(300 * MiB));
    cr_assert_not_null(big);
    struct mallinfo2 with = mallinfo2();
    free(big);
    cr_assert_geq(with.hblkhd, before.hblkhd + 300 * MiB, "hblkhd %zu -> %zu", before.hblkhd,
                  with.hblkhd);
    cr_assert_lt(with.uordblks, before.uordblks + 8 * MiB,
                 "uordblks %zu -> %zu: the 300 MiB block counted in it as well as in hblkhd",
                 before.uordblks, with.uordblks);
}

Test(compat, mallinfo2_plausible, .timeout = 60)
{
    enum { BLOCK = 64, COUNT = (10 * 1024 * 1024) / BLOCK };
    void **p = malloc(COUNT * sizeof *p);
    cr_assert_not_null(p);
    struct mallinfo2 before = mallinfo2();
    for (size_t i = 0; i < COUNT; i++) {
        p[i] = malloc(opq(BLOCK));
        cr_assert_not_null(p[i]);
        memset(p[i], 0x42, BLOCK);
    }
    size_t held = (size_t)COUNT * BLOCK;
    struct mallinfo2 mi = mallinfo2();
    cr_assert_geq(mi.uordblks, held, "mallinfo2().uordblks = %zu while %zu bytes are live",
                  mi.uordblks, held);
    cr_assert_lt(mi.uordblks, 8 * held + 256 * MiB, "mallinfo2().uordblks = %zu is absurd",
                 mi.uordblks);
    cr_assert_geq(mi.uordblks, before.uordblks + held / 2,
                  "mallinfo2().uordblks grew by %zd only after allocating %zu bytes",
                  (ssize_t)(mi.uordblks - before.uordblks), held);
    for (size_t i = 0; i < COUNT; i++)
        free(p[i]);
    struct mallinfo2 after = mallinfo2();
    cr_assert_leq(after.uordblks + held / 2, mi.uordblks,
                  "mallinfo2().uordblks went from %zu to %zu only after freeing %zu bytes",
                  mi.uordblks, after.uordblks, held);
    free(p);
}

Test(compat, mallopt_known_and_unknown)
{
    cr_assert_eq(mallopt(M_MMAP_THRESHOLD, 256 * 1024), 1,
                 "mallopt(M_MMAP_THRESHOLD) did not return 1");
    cr_assert_eq(mallopt(M_TRIM_THRESHOLD, 1024 * 1024), 1,
                 "mallopt(M_TRIM_THRESHOLD) did not return 1");
    cr_assert_eq(mallopt(M_ARENA_MAX, 4), 1, "mallopt(M_ARENA_MAX) did not return 1");
    cr_assert_eq(mallopt(opq(12345), 1), 1, "mallopt(12345) did not return 1");
    /* Allocation is unaffected. */
    for (size_t s = 1; s < 4 * MiB; s = s * 3 + 1) {
        void *p = malloc(s);
        cr_assert_not_null(p);
        memset(p, 0, s);
        free(p);
    }
}

/* t_stress.c - a long random sequence of malloc, calloc, realloc, memalign,
 * aligned_alloc, posix_memalign and free, every block carrying a pattern
 * derived from its id and checked before it is resized or freed. */
#include <criterion/criterion.h>

#include "common.h"

enum { SLOTS = 4096 };

struct slot {
    unsigned char *p;
    size_t len;
    uint64_t id;
};

static size_t pick_size(rng_t *r)
{
    uint64_t k = rng_next(r) % 10000;
    if (k < 6000)
        return rng_range(r, 0, 256);
    if (k < 9000)
        return rng_range(r, 257, 4096);
    if (k < 9900)
        return rng_range(r, 4097, 128 * KiB);
    if (k < 9995)
        return rng_range(r, 128 * KiB, 2 * MiB);
    return rng_range(r, 2 * MiB, 16 * MiB);
}

static void verify(struct slot *s, const char *when)
{
    size_t bad = check_pattern(s->p, s->len, s->id);
    cr_assert_eq(bad, SIZE_MAX, "block id %llu (%p, %zu bytes) corrupted at byte %zu before %s",
                 (unsigned long long)s->id, (void *)s->p, s->len, bad, when);
}

static void run_stress(uint64_t seed, long ops)
{
    static struct slot slots[SLOTS];
    memset(slots, 0, sizeof slots);
    rng_t r = {seed};
    uint64_t next_id = seed << 32;
    for (long op = 0; op < ops; op++) {
        struct slot *s = &slots[rng_next(&r) % SLOTS];
        unsigned kind = (unsigned)(rng_next(&r) % 100);
        if (s->p) {
            verify(s, kind < 40 ? "realloc" : "free");
            if (kind < 40) {
                size_t n = pick_size(&r);
                unsigned char *q = realloc(s->p, opq(n));
                if (n == 0) {
                    /* glibc behaviour: the block is freed, NULL returned. */
                    cr_assert_null(q);
                    s->p = NULL;
                    continue;
                }
                cr_assert_not_null(q, "realloc to %zu failed", n);
                cr_assert(is_aligned(q, 16));
                size_t keep = s->len < n ? s->len : n;
                size_t bad = check_pattern(q, keep, s->id);
                cr_assert_eq(bad, SIZE_MAX, "realloc %zu -> %zu lost byte %zu", s->len, n, bad);
                fill_pattern_from(q, keep, n, s->id);
                s->p = q;
                s->len = n;
            } else {
                free(s->p);
                s->p = NULL;
            }
            continue;
        }
        size_t n = pick_size(&r);
        unsigned char *p;
        size_t align = 16;
        if (kind < 45) {
            p = malloc(opq(n));
        } else if (kind < 65) {
            size_t m = 1 + rng_next(&r) % 8;
            n = n / m;
            p = calloc(opq(n), opq(m));
            n *= m;
            cr_assert_not_null(p, "calloc(%zu, %zu) failed", n / m, m);
            cr_assert_eq(check_zero(p, n), SIZE_MAX, "calloc memory of %zu bytes not zero", n);
        } else if (kind < 75) {
            align = (size_t)1 << rng_range(&r, 3, 13);
            p = memalign(opq(align), opq(n));
        } else if (kind < 85) {
            align = (size_t)1 << rng_range(&r, 3, 16);
            p = aligned_alloc(opq(align), opq(n));
        } else if (kind < 95) {
            align = (size_t)1 << rng_range(&r, 3, 12);
            void *q = NULL;
            cr_assert_eq(posix_memalign(&q, opq(align), opq(n)), 0);
            p = q;
        } else {
            p = realloc(NULL, opq(n));
        }
        cr_assert_not_null(p, "allocation of %zu bytes (kind %u) failed", n, kind);
        cr_assert(is_aligned(p, align), "%p not %zu-aligned", (void *)p, align);
        cr_assert(is_aligned(p, 16));
        cr_assert_geq(malloc_usable_size(p), n);
        s->p = p;
        s->len = n;
        s->id = next_id++;
        fill_pattern(p, n, s->id);
    }
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p) {
            verify(&slots[i], "final free");
            free(slots[i].p);
        }
    }
}

Test(stress, random_ops_100k, .timeout = 180) { run_stress(1, 100000); }

Test(stress, random_ops_100k_other_seed, .timeout = 180) { run_stress(2, 100000); }

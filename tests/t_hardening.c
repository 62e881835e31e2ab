/* t_hardening.c - what a heap attacker with one read of uninitialised or
 * freed memory must not learn. A freed block's first word is its free-list
 * link (encoded) and its second its free key; malloc hands neither out, and
 * the link's key depends on the block's address, so one leaked link gives
 * no key for any other list. */
#include <criterion/criterion.h>

#include "common.h"

/* Blocks handed out again after a free, from the thread cache and from
 * the central lists, for every small size band. */
Test(hardening, free_words_never_reach_the_user)
{
    enum { N = 200 };
    static unsigned char *p[N];
    for (size_t size = 16; size <= 64 * KiB; size = size < 1024 ? size + 16 : size * 2) {
        for (int i = 0; i < N; i++) {
            p[i] = malloc(size);
            cr_assert_not_null(p[i]);
            memset(p[i], 0xA5, size);
        }
        for (int i = 0; i < N; i++)
            free(p[i]);
        malloc_trim(0); /* the next ones come back through the central lists too */
        for (int i = 0; i < N; i++) {
            p[i] = malloc(size);
            uint64_t w[2];
            memcpy(w, p[i], sizeof w);
            cr_assert(w[0] == 0 && w[1] == 0,
                      "malloc(%zu) returned %p with its free words 0x%016llx 0x%016llx", size,
                      (void *)p[i], (unsigned long long)w[0], (unsigned long long)w[1]);
        }
        for (int i = 0; i < N; i++)
            free(p[i]);
    }
}

/* The key of a link word, as a use-after-free read sees it: the word XOR
 * the address it encodes. Blocks freed in turn into one list link each to
 * the one freed before. */
Test(hardening, link_keys_differ_from_slot_to_slot)
{
    enum { N = 16 };
    void *b[N];
    for (int i = 0; i < N; i++)
        b[i] = malloc(64);
    for (int i = 0; i < N; i++)
        free(b[i]);
    uint64_t keys[N];
    int distinct = 0;
    for (int i = 1; i < N; i++) {
        uint64_t word;
        memcpy(&word, opq_ptr(b[i]), sizeof word); /* a read after free, on purpose */
        keys[i] = word ^ (uint64_t)(uintptr_t)b[i - 1];
        distinct += keys[i] != keys[1];
    }
    cr_assert_geq(distinct, N - 3, "%d of %d link keys differ from the first: one leak gives all",
                  distinct, N - 2);
}

/* ---- reports use the right words ------------------------------------------ */
#include "bad_free.h"

static void usable_size_of_freed_block(void *unused)
{
    (void)unused;
    void *p = malloc(48);
    free(p);
    fprintf(stderr, "freed %p\n", p);
    fprintf(stderr, "size %zu\n", malloc_usable_size(opq_ptr(p)));
}

Test(hardening, usable_size_of_freed_block_is_not_a_double_free, .timeout = 60)
{
    struct report r = run_bad_free(usable_size_of_freed_block, NULL);
    assert_reported(&r, "already freed", scenario_ptr(&r, "freed"));
    cr_assert(!strstr(r.text, "double free"), "called a double free: %s", r.text);
}

/* A huge block's mapping goes on free, and its pagemap entry with it. */
static void double_free_of_huge_block(void *unused)
{
    (void)unused;
    if (mallopt(M_MMAP_THRESHOLD, 1 << 20) != 1)
        _exit(5);
    void *p = malloc(2 << 20);
    fprintf(stderr, "huge %p\n", p);
    free(p);
    free(opq_ptr(p));
    fprintf(stderr, "continued\n");
}

Test(hardening, double_free_of_unmapped_huge_block_is_a_double_free, .timeout = 60)
{
    struct report r = run_bad_free(double_free_of_huge_block, NULL);
    assert_reported(&r, "double free", scenario_ptr(&r, "huge"));
}

/* ---- double frees after a use-after-free write over the free key ----------
 * free only stores a freed block's key; malloc checks it when it takes the
 * block again, and the first hand-out clears it. A second free after the
 * key was wiped must still never give the block out twice. Each scenario
 * prints the blocks malloc returns; the child must abort with a report
 * naming the block before any two of them are the same. */
static void report_duplicates(void **got, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (got[i] == got[j])
                fprintf(stderr, "handed out twice: %p\n", got[i]);
}

/* Freed twice with another free between: the list is a, b, a. */
static void wiped_key_then_double_free(void *unused)
{
    (void)unused;
    char *a = malloc(48), *b = malloc(48);
    free(a);
    free(b);
    fprintf(stderr, "wiped %p\n", (void *)a);
    memset(opq_ptr(a + 8), 0, 8); /* bytes 8..15 of the freed block */
    free(opq_ptr(a));
    void *got[3];
    for (int i = 0; i < 3; i++) {
        got[i] = malloc(48);
        fprintf(stderr, "got %p\n", got[i]);
        report_duplicates(got, i + 1);
    }
}

Test(hardening, double_free_after_wiped_key_is_caught_before_reuse, .timeout = 60)
{
    struct report r = run_bad_free(wiped_key_then_double_free, NULL);
    cr_assert(!strstr(r.text, "handed out twice"), "%s", r.text);
    assert_reported(&r, "double free", scenario_ptr(&r, "wiped"));
}

/* Freed twice in a row: the block is its list's head, found by free. */
static void wiped_key_then_free_again(void *unused)
{
    (void)unused;
    char *a = malloc(48);
    free(a);
    fprintf(stderr, "wiped %p\n", (void *)a);
    memset(opq_ptr(a + 8), 0, 8);
    free(opq_ptr(a));
    void *got[2] = {malloc(48), malloc(48)};
    report_duplicates(got, 2);
}

Test(hardening, free_again_after_wiped_key_is_a_double_free, .timeout = 60)
{
    struct report r = run_bad_free(wiped_key_then_free_again, NULL);
    cr_assert(!strstr(r.text, "handed out twice"), "%s", r.text);
    assert_reported(&r, "double free", scenario_ptr(&r, "wiped"));
}

/* The block went back into its span (malloc_trim empties the thread cache)
 * before its key was wiped and it was freed again: it is then in its span's
 * list and in the thread cache at once. */
static void wiped_key_in_span_then_double_free(void *unused)
{
    (void)unused;
    enum { N = 400 };
    static void *got[N];
    char *a = malloc(48), *keep = malloc(48); /* keeps the span in use */
    free(a);
    malloc_trim(0);
    fprintf(stderr, "wiped %p\n", (void *)a);
    memset(opq_ptr(a + 8), 0, 8);
    free(opq_ptr(a));
    for (int i = 0; i < N; i++) {
        got[i] = malloc(48);
        report_duplicates(got, i + 1);
    }
    fprintf(stderr, "continued %p\n", (void *)keep);
}

Test(hardening, double_free_of_block_in_its_span_after_wiped_key, .timeout = 60)
{
    struct report r = run_bad_free(wiped_key_in_span_then_double_free, NULL);
    cr_assert(!strstr(r.text, "handed out twice"), "%s", r.text);
    assert_reported(&r, "double free", scenario_ptr(&r, "wiped"));
}

/* A live block's address with bits above 47 set (a tagged pointer, or a
 * stray high bit) finds the block's own page once the pagemap masks it to
 * 48 bits. free must still refuse it: cached, malloc would hand out an
 * address that faults, or whose user frees the block a second time. The
 * free fast path sees it because its object-start test takes the offset
 * from the span's start in all 64 bits. */
static void free_tagged(void *bit)
{
    void *keep = malloc(48);
    char *a = malloc(48);
    void *tagged = (void *)((uintptr_t)a | ((uintptr_t)1 << (uintptr_t)bit));
    fprintf(stderr, "tagged %p\n", tagged);
    free(opq_ptr(tagged));
    void *got = malloc(48);
    if (got == tagged)
        fprintf(stderr, "handed out %p\n", got);
    free(keep);
}

Test(hardening, free_of_a_live_block_with_high_bits_set_is_refused, .timeout = 60)
{
    for (uintptr_t bit = 48; bit < 64; bit += 8) {
        struct report r = run_bad_free(free_tagged, (void *)bit);
        cr_assert(!strstr(r.text, "handed out"), "bit %lu: %s", (unsigned long)bit, r.text);
        assert_reported(&r, "invalid pointer", scenario_ptr(&r, "tagged"));
    }
}

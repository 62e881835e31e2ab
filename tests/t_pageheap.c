/* t_pageheap.c - regression tests of the page heap and the OS primitives
 * under it: what the metadata says must be what the kernel did. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "common.h"

/* tl_stat, found at run time so that the preloaded build runs this too
 * (and the check of the tests against glibc skips what needs it). */
static size_t stat_of(const char *name)
{
    size_t (*tl_stat)(const char *);
    *(void **)&tl_stat = dlsym(RTLD_DEFAULT, "tl_stat");
#ifdef TL_BASELINE_GLIBC
    if (!tl_stat)
        cr_skip_test("tl_stat is not exported by the system C library");
#endif
    cr_assert_not_null(tl_stat, "tl_stat not found: tlmalloc is not loaded");
    size_t v = tl_stat(name);
    cr_assert_neq(v, (size_t)-1, "tl_stat does not know %s", name);
    return v;
}

static size_t count_not(const unsigned char *p, size_t n, unsigned char v)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += p[i] != v;
    return bad;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0)
        ;
}

/* Enough frees for the thread cache's tick, which looks whether free
 * pages are due to go back (TL_TICK is 1024). */
static void tick_frees(void)
{
    for (int i = 0; i < 3000; i++) {
        void *volatile p = malloc(opq(16));
        free(p);
    }
}

/* ---- memory the kernel refuses to take back ----------------------------- */
/* madvise(MADV_DONTNEED) fails with EINVAL on locked pages, and the pages
 * keep their contents. Locking all memory needs CAP_IPC_LOCK or a high
 * enough RLIMIT_MEMLOCK; MCL_ONFAULT keeps the lock from making the whole
 * heap (and the pagemap) resident at once. */
static void lock_all_or_skip(void)
{
    const int flags = MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT;
    if (mlockall(flags) == 0)
        return;
    struct rlimit lim = {RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_MEMLOCK, &lim) == 0 && mlockall(flags) == 0)
        return;
    cr_skip_test("mlockall failed (%s) and RLIMIT_MEMLOCK cannot be raised: this test needs "
                 "root or CAP_IPC_LOCK",
                 strerror(errno));
}

/* A freed 1 MiB block full of 0xAB whose pages could not be given back. */
static void free_filled_block(void)
{
    unsigned char *p = malloc(opq(MiB));
    cr_assert_not_null(p);
    memset(p, 0xAB, MiB);
    free(p);
}

static void expect_calloc_zero(const char *after)
{
    unsigned char *q = calloc(1, opq(MiB));
    cr_assert_not_null(q);
    size_t bad = count_not(q, MiB, 0);
    cr_expect_eq(bad, 0, "calloc(1, 1 MiB) after %s: %zu bytes are not zero", after, bad);
    free(q);
}

/* Trimming under mlockall: nothing can go back, so calloc must clear. */
Test(pageheap, calloc_zero_after_trim_under_mlockall)
{
    lock_all_or_skip();
    free_filled_block();
    malloc_trim(0);
    expect_calloc_zero("a free and malloc_trim(0) under mlockall");
}

/* The same through decay: the block is older than decay_ms (500 ms). */
Test(pageheap, calloc_zero_after_decay_under_mlockall)
{
    lock_all_or_skip();
    free_filled_block();
    sleep_ms(800);
    tick_frees();
    expect_calloc_zero("a free and 800 ms of decay under mlockall");
}

/* The locked 1 MiB freed is counted as free and resident, not returned. */
static void expect_counted_resident(size_t returned_before)
{
    size_t returned_after = stat_of("returned_bytes"), dirty = stat_of("page_heap_free_bytes");
    cr_expect_lt(returned_after, returned_before + MiB,
                 "returned_bytes grew from %zu to %zu though every page is locked", returned_before,
                 returned_after);
    cr_expect_geq(dirty, MiB, "page_heap_free_bytes is %zu: the locked 1 MiB is not counted",
                  dirty);
}

/* Pages that stayed resident are not counted as returned, and a trim that
 * returned nothing says so. */
Test(pageheap, stats_count_pages_that_failed_to_go_back_as_resident)
{
    lock_all_or_skip();
    free_filled_block();
    size_t returned = stat_of("returned_bytes");
    int trimmed = malloc_trim(0);
    expect_counted_resident(returned);
    cr_expect_eq(trimmed, 0, "malloc_trim(0) returned 1 though no page could go back");
}

/* The same after decay instead of a trim. */
Test(pageheap, stats_after_decay_under_mlockall)
{
    lock_all_or_skip();
    free_filled_block();
    size_t returned = stat_of("returned_bytes");
    sleep_ms(800);
    tick_frees();
    expect_counted_resident(returned);
}

/* A program may mlock() a block and free it still locked: the other way
 * madvise fails. Needs only 1 MiB of RLIMIT_MEMLOCK (8 MiB by default). */
Test(pageheap, calloc_zero_after_freeing_a_locked_block)
{
    unsigned char *p = malloc(opq(MiB));
    cr_assert_not_null(p);
    memset(p, 0xAB, MiB);
    if (mlock(p, MiB) != 0)
        cr_skip_test("mlock of 1 MiB failed (%s): RLIMIT_MEMLOCK is too low", strerror(errno));
    free(p);
    malloc_trim(0);
    expect_calloc_zero("freeing an mlock()ed block and malloc_trim(0)");
}

/* ---- pagemap store order (white box) ------------------------------------ *
 * The order of the pagemap's stores is what a free racing with a span's
 * change can see, and no black-box test makes such a race happen on
 * demand. So pagemap.c is compiled into this program on its own, over a
 * leaf whose class and span pages are read-only: each store then faults,
 * and the handler logs which array it was and lets the store through. */
#include <signal.h>

#pragma GCC visibility push(hidden)
#include "../src/pagemap.c"

__thread uint32_t tli_lock_id __attribute__((tls_model("initial-exec")));
uint32_t tli_lock_id_assign(void) { return tli_lock_id = 1; }
struct tli_counters tli_stats;

void *tli_os_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

bool tli_os_decommit(void *p, size_t size) { return madvise(p, size, MADV_DONTNEED) == 0; }

size_t tli_os_page_size(void) { return 4096; }

/* One thread: the pagemap's lock is never contended. */
void tli_lock_wait(struct tli_lock *l, uint32_t me)
{
    (void)l;
    (void)me;
}

void tli_lock_wake(struct tli_lock *l) { (void)l; }
#pragma GCC visibility pop

static uintptr_t order_pages[2]; /* [0] the class byte's page, [1] the span pointer's */
static volatile sig_atomic_t order_log[4], order_len;

static void order_fault(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    uintptr_t page = (uintptr_t)si->si_addr & ~(uintptr_t)4095;
    int which = page == order_pages[0] ? 0 : page == order_pages[1] ? 1 : -1;
    if (which < 0 || order_len == 4)
        abort(); /* a fault this test did not set up */
    order_log[order_len++] = which;
    mprotect((void *)page, 4096, PROT_READ | PROT_WRITE);
}

/* Runs tli_pagemap_set_range(a, 1, v, cls) with both pages read-only and
 * returns the stores' order as "class,span" or "span,class". */
static const char *store_order(uintptr_t a, struct span *v, uint8_t cls)
{
    order_len = 0;
    for (int i = 0; i < 2; i++)
        cr_assert_eq(mprotect((void *)order_pages[i], 4096, PROT_READ), 0);
    tli_pagemap_set_range(a, 1, v, cls);
    cr_assert_eq(order_len, 2, "%d stores instead of 2", (int)order_len);
    return order_log[0] == 0 ? "class,span" : "span,class";
}

/* Setting a small span: the span pointer, then the class byte, so that a
 * reader who sees the class finds the span. Clearing: the class byte
 * first, so that a reader who finds no span sees class 0 (I3). */
Test(pageheap, pagemap_store_order)
{
    struct sigaction sa = {.sa_sigaction = order_fault, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
    uintptr_t a = ((uintptr_t)1 << 40) + 12345 * TL_PAGE_SIZE;
    cr_assert(tli_pagemap_ensure(a, TL_PAGE_SIZE));
    struct pagemap_leaf *leaf = tli_pagemap_leaf(a);
    size_t i = tli_pagemap_index(a);
    order_pages[0] = (uintptr_t)&leaf->hot[i].size_class & ~(uintptr_t)4095;
    order_pages[1] = (uintptr_t)&leaf->span[i] & ~(uintptr_t)4095;
    struct span *s = tli_pagemap_slot(a);
    const char *set = store_order(a, s, 7);
    cr_expect_str_eq(set, "span,class", "setting a small span: the stores went %s", set);
    const char *clear = store_order(a, NULL, 0);
    cr_expect_str_eq(clear, "class,span", "clearing a small span: the stores went %s", clear);
}

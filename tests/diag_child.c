/* diag_child.c - the helper program of t_diag.c, t_memory.c and t_config.c.
 *
 * The allocator reads its environment (MALLOC_CHECK_, TLMALLOC_CONF) once,
 * when it starts, so a test that needs other options runs this program
 * with execve() and the environment it wants. It is built twice:
 *   tests/diag_child_linked  linked with libtlmalloc
 *   tests/diag_child_plain   not linked; run with LD_PRELOAD=libtlmalloc.so
 *
 * Usage: diag_child SCENARIO [ARG]. Scenarios write their results to
 * stdout, one "key value" per line, with write(2) (stdio would allocate a
 * buffer, which check mode would then report as a leak):
 *   "ptr 0x..."      the pointer about to be misused (printed first)
 *   "continued"      the program went on after the bad call
 *   "error ..."      the helper itself failed (exit status 3)
 * The tl_ functions (tl_stat, tl_stats_print) are found with dlsym, so
 * that both builds use the same source.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/single_threaded.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* Hides a pointer or size from the optimiser (and from the compiler's
 * warnings about freeing non-heap or freed memory, which is the point). */
static inline void *opq_ptr(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static inline size_t opq(size_t x)
{
    __asm__ volatile("" : "+r"(x));
    return x;
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    for (char *s = buf; n > 0;) {
        ssize_t w = write(1, s, (size_t)n);
        if (w <= 0)
            break;
        s += w;
        n -= (int)w;
    }
}

static void fail(const char *what) __attribute__((noreturn));
static void fail(const char *what)
{
    out("error %s", what);
    _exit(3);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(opq(n));
    if (!p)
        fail("malloc returned NULL");
    return p;
}

static void show_ptr(const void *p) { out("ptr %p", p); }

/* After a bad call that was ignored or only reported: the heap still works. */
static void go_on(void)
{
    out("continued");
    void *keep[256];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 256; i++) {
            size_t n = (size_t)(i * 37 % 3000) + 1 + (i % 16 == 0 ? 150 * KiB : 0);
            keep[i] = xmalloc(n);
            memset(keep[i], i, n);
        }
        for (int i = 0; i < 256; i++)
            free(keep[i]);
    }
    out("heap ok");
}

/* ---- tl_ functions, looked up at run time ------------------------------ */
static size_t (*p_tl_stat)(const char *);
static void (*p_tl_stats_print)(int, int);

static void find_tl(void)
{
    *(void **)&p_tl_stat = dlsym(RTLD_DEFAULT, "tl_stat");
    *(void **)&p_tl_stats_print = dlsym(RTLD_DEFAULT, "tl_stats_print");
    if (!p_tl_stat || !p_tl_stats_print)
        fail("tl_stat or tl_stats_print not found: tlmalloc is not loaded");
}

static size_t stat_of(const char *name)
{
    size_t v = p_tl_stat(name);
    if (v == (size_t)-1) {
        out("error unknown figure %s", name);
        _exit(3);
    }
    return v;
}

/* Reads a small file of /proc into buf (size bytes), without stdio; the
 * text ends with a zero. */
static void read_proc(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        fail("cannot open /proc file");
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        fail("cannot read /proc file");
    buf[n] = 0;
}

/* Resident set size from /proc/self/statm. */
static size_t rss_bytes(void)
{
    char buf[256];
    read_proc("/proc/self/statm", buf, sizeof buf);
    char *s = buf;
    strtoul(s, &s, 10);
    unsigned long resident = strtoul(s, NULL, 10);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static _Thread_local uint64_t rng_state = 12345; /* each thread its own */
static uint64_t rng_next(void)
{
    uint64_t x = (rng_state += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
static size_t rng_range(size_t lo, size_t hi) { return lo + (size_t)(rng_next() % (hi - lo + 1)); }

/* ---- heap errors (t_diag.c) ----------------------------------------------- */
static char global_block[64];

static int double_free_small(void)
{
    char *p = xmalloc(48);
    memset(p, 1, 48);
    show_ptr(p);
    free(p);
    free(opq_ptr(p));
    go_on();
    return 0;
}

static int double_free_large(void)
{
    char *p = xmalloc(200 * KiB);
    memset(p, 1, 200 * KiB);
    show_ptr(p);
    free(p);
    free(opq_ptr(p));
    go_on();
    return 0;
}

static int free_stack(void)
{
    char buf[64];
    memset(buf, 1, sizeof buf);
    show_ptr(buf);
    free(opq_ptr(buf));
    go_on();
    return buf[0] == 1 ? 0 : 4;
}

static int free_global(void)
{
    show_ptr(global_block);
    free(opq_ptr(global_block));
    go_on();
    return 0;
}

static int free_interior_small(void)
{
    char *p = xmalloc(100);
    memset(p, 1, 100);
    show_ptr(p + 16);
    free(opq_ptr(p + 16));
    go_on();
    free(p);
    return 0;
}

static int free_interior_large(void)
{
    char *p = xmalloc(200 * KiB);
    memset(p, 1, 200 * KiB);
    show_ptr(p + 8192);
    free(opq_ptr(p + 8192));
    go_on();
    free(p);
    return 0;
}

static int free_unmapped_huge(void)
{
    char *p = xmalloc(300 * MiB); /* above the default huge threshold, 256 MiB */
    p[0] = 1;
    show_ptr(p);
    free(p);
    free(opq_ptr(p));
    go_on();
    return 0;
}

static int realloc_invalid(void)
{
    char buf[64];
    memset(buf, 1, sizeof buf);
    show_ptr(buf);
    void *r = realloc(opq_ptr(buf), opq(100));
    out("realloc %s", r ? "non-null" : "NULL");
    go_on();
    return 0;
}

/* Free a 48-byte block, overwrite its first word (the free-list link while
 * it sits in a thread cache), then allocate twice. ARG, when given, is an
 * error action set first with mallopt(M_CHECK_ACTION, ARG). */
static int corrupt_link(const char *arg)
{
    if (arg)
        out("mallopt %d", mallopt(M_CHECK_ACTION, atoi(arg)));
    char *p = xmalloc(48);
    memset(p, 1, 48);
    show_ptr(p);
    free(p);
    uint64_t junk = 0x4141414141414141ull;
    memcpy(opq_ptr(p), &junk, 8);
    void *a = malloc(opq(48));
    void *b = malloc(opq(48));
    out("mallocs returned");
    go_on();
    (void)a;
    (void)b;
    return 0;
}

/* The same overwrite, but of a block that went back from the thread cache
 * to its span's free list (malloc_trim flushes the cache; another block
 * keeps the span in use), then 1000 allocations of its size. */
static int corrupt_span_link(void)
{
    char *keep = xmalloc(48);
    char *p = xmalloc(48);
    memset(p, 1, 48);
    show_ptr(p);
    free(p);
    out("trim %d", malloc_trim(0));
    uint64_t junk = 0x4141414141414141ull;
    memcpy(opq_ptr(p), &junk, 8);
    for (int i = 0; i < 1000; i++) {
        volatile char *q = malloc(opq(48));
        if (q)
            q[0] = 1;
    }
    out("mallocs returned");
    go_on();
    free(keep);
    return 0;
}

/* An invalid free reported while the chain of frame pointers leads into a
 * PROT_NONE page: the report's backtrace must stop there, not fault. The
 * bad call runs in a thread whose stack lies just below such a page, from
 * a function that points its saved frame pointer at it meanwhile. */
enum { BAD_CHAIN_STACK = 256 * 1024 };
static char *bad_chain_guard;

__attribute__((noinline)) static void free_under_bad_chain(void *p)
{
    volatile uintptr_t *frame = __builtin_frame_address(0);
    uintptr_t saved = frame[0];
    frame[0] = (uintptr_t)bad_chain_guard + 64;
    free(opq_ptr(p));
    frame[0] = saved;
}

static void *bad_chain_thread(void *arg)
{
    (void)arg;
    show_ptr(global_block);
    free_under_bad_chain(global_block);
    __asm__ volatile(""); /* not a tail call: the caller's frame stays */
    return NULL;
}

static int bad_frame_chain(void)
{
    char *area = mmap(NULL, BAD_CHAIN_STACK + 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED)
        fail("mmap of the thread's stack failed");
    bad_chain_guard = area + BAD_CHAIN_STACK;
    if (mprotect(bad_chain_guard, 4096, PROT_NONE))
        fail("mprotect of the guard page failed");
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) || pthread_attr_setstack(&attr, area, BAD_CHAIN_STACK) ||
        pthread_create(&t, &attr, bad_chain_thread, NULL) || pthread_join(t, NULL))
        fail("cannot run the thread with its own stack");
    go_on();
    return 0;
}

/* A second heap error while the first is being reported: a SIGABRT handler
 * that makes a bad free, so that the report's abort runs it. The nested
 * report must say so in one line and end the process at once. ARG, when
 * given, is an error action set first with mallopt(M_CHECK_ACTION, ARG). */
static void bad_free_on_abort(int sig)
{
    (void)sig;
    free(opq_ptr(global_block + 16));
}

static int nested_report(const char *arg)
{
    if (arg)
        out("mallopt %d", mallopt(M_CHECK_ACTION, atoi(arg)));
    struct sigaction sa = {.sa_handler = bad_free_on_abort};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGABRT, &sa, NULL))
        fail("sigaction failed");
    show_ptr(global_block);
    free(opq_ptr(global_block));
    go_on();
    return 0;
}

/* Reports made with an allocator lock held (check mode's double free is
 * found under its lock) while another thread loads and unloads a library:
 * the loader allocates under its own lock, so a reporter that asks the
 * loader to name frames while holding an allocator lock can deadlock with
 * it. ARG: the number of reports. Run with MALLOC_CHECK_=1 (print and go
 * on); an alarm ends a hang. */
static atomic_int dl_stop;
static atomic_int dl_cycles;

static void *dlopen_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&dl_stop)) {
        void *h = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
        if (!h)
            fail("dlopen of libm.so.6 failed");
        if (dlclose(h))
            fail("dlclose failed");
        atomic_fetch_add(&dl_cycles, 1);
    }
    return NULL;
}

static int report_during_dlopen(const char *arg)
{
    int reports = arg ? atoi(arg) : 1000;
    alarm(30);
    pthread_t t;
    if (pthread_create(&t, NULL, dlopen_loop, NULL))
        fail("pthread_create failed");
    while (atomic_load(&dl_cycles) == 0)
        sched_yield();
    for (int i = 0; i < reports; i++) {
        char *p = xmalloc(48);
        if (i == 0)
            show_ptr(p);
        free(p);
        free(opq_ptr(p)); /* reported under check mode's lock */
    }
    atomic_store(&dl_stop, 1);
    pthread_join(t, NULL);
    out("reports %d", reports);
    out("dlopen_cycles %d", atomic_load(&dl_cycles));
    go_on();
    return 0;
}

/* Check mode: one byte written past the end of a block of ARG bytes, found
 * by free (or realloc). */
static int overrun(const char *arg, int use_realloc)
{
    size_t size = arg ? strtoul(arg, NULL, 10) : 40;
    char *p = xmalloc(size);
    memset(p, 1, size);
    show_ptr(p);
    ((volatile char *)opq_ptr(p))[size] = 'x';
    if (use_realloc) {
        void *q = realloc(p, opq(size * 2));
        out("realloc %s", q ? "non-null" : "NULL");
    } else {
        free(p);
    }
    go_on();
    return 0;
}

/* Check mode: a byte written into a freed block, found when the block
 * leaves the quarantine: 20 MiB of other blocks are freed after it, more
 * than the default 16 MiB bound. */
static int write_after_free(void)
{
    enum { OTHERS = 20 };
    char *others[OTHERS];
    char *victim = xmalloc(100);
    memset(victim, 1, 100);
    for (int i = 0; i < OTHERS; i++) {
        others[i] = xmalloc(MiB);
        memset(others[i], 2, MiB);
    }
    show_ptr(victim);
    free(victim);
    ((volatile char *)opq_ptr(victim))[3] = 0x55;
    for (int i = 0; i < OTHERS; i++)
        free(others[i]);
    go_on();
    return 0;
}

/* Offset of the first byte of p[0..n) that is not v, or -1. */
static long first_not(const void *p, size_t n, unsigned char v)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v)
            return (long)i;
    return -1;
}

/* Check mode's fill patterns: fresh blocks read 0xbe, calloc's zero. */
static int fill(void)
{
    static const size_t sizes[] = {64, 1, 100, 5000, 100000};
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            unsigned char *p = xmalloc(n);
            out("malloc %zu %ld", n, first_not(p, n, 0xbe));
            memset(p, 0x11, n);
            free(p);
            unsigned char *c = calloc(opq(n), 1);
            if (!c)
                fail("calloc returned NULL");
            out("calloc %zu %ld", n, first_not(c, n, 0));
            memset(c, 0x22, n);
            free(c);
        }
    return 0;
}

/* Check mode's leak report: 3 blocks of 1000 bytes from leak_three, one of
 * 700 bytes from leak_one, whose pointers are then dropped (a block a
 * global still points to is reachable, not lost); everything else is
 * freed. */
static void *volatile leaked[4];

/* Overwrites the dead stack below the caller's frame, where printing the
 * pointers left copies: the leak scan at exit is conservative, and would
 * take them for live pointers. */
static __attribute__((noinline)) void scrub_stack(void)
{
    volatile char dead[32 * 1024];
    memset((char *)dead, 0, sizeof dead);
    __asm__ volatile("" : : "r"(dead) : "memory");
}

__attribute__((noinline)) void leak_three(int i)
{
    leaked[i] = malloc(opq(1000));
    __asm__ volatile("");
}

__attribute__((noinline)) void leak_one(void)
{
    leaked[3] = malloc(opq(700));
    __asm__ volatile("");
}

static int leak(void)
{
    for (int i = 0; i < 3; i++)
        leak_three(i);
    leak_one();
    void *p = xmalloc(5000);
    free(p);
    out("leaked %p %p %p %p", leaked[0], leaked[1], leaked[2], leaked[3]);
    for (int i = 0; i < 4; i++)
        leaked[i] = NULL;
    scrub_stack();
    return 0;
}

/* ---- memory coming back (t_memory.c) -------------------------------------- */
/* About 256 MiB: half in small blocks (16..1024 B), half in large ones
 * (64 KiB..4 MiB), interleaved, every byte written; then all freed. */
struct peak {
    char **small, **large;
    size_t nsmall, nlarge, max_small;
};

static void peak_alloc(struct peak *pk)
{
    /* About 258,000 small blocks and 64 large ones are expected. */
    size_t max_small = 512 * 1024, max_large = 128 * MiB / (64 * KiB) + 1;
    pk->small = malloc(max_small * sizeof(char *));
    pk->large = malloc(max_large * sizeof(char *));
    if (!pk->small || !pk->large)
        fail("malloc of the pointer arrays failed");
    memset(pk->small, 0, max_small * sizeof(char *));
    memset(pk->large, 0, max_large * sizeof(char *));
    pk->nsmall = pk->nlarge = 0;
    pk->max_small = max_small;
}

static void peak_fill_half(struct peak *pk, size_t budget)
{
    size_t small_bytes = 0, large_bytes = 0;
    while (small_bytes < budget || large_bytes < budget) {
        int want_small = large_bytes >= budget || (small_bytes < budget && rng_next() % 64 != 0);
        if (want_small) {
            if (pk->nsmall == pk->max_small)
                fail("too many small blocks");
            size_t n = rng_range(16, 1024);
            char *p = xmalloc(n);
            memset(p, 0x5a, n);
            pk->small[pk->nsmall++] = p;
            small_bytes += n;
        } else {
            size_t n = rng_range(64 * KiB, 4 * MiB);
            char *p = xmalloc(n);
            memset(p, 0x5b, n);
            pk->large[pk->nlarge++] = p;
            large_bytes += n;
        }
    }
}

static void peak_fill(struct peak *pk) { peak_fill_half(pk, 128 * MiB); }

static void peak_free(struct peak *pk)
{
    /* Every other block first, then the rest: spans empty out late. */
    for (size_t i = 0; i < pk->nsmall; i += 2)
        free(pk->small[i]);
    for (size_t i = 0; i < pk->nlarge; i += 2)
        free(pk->large[i]);
    for (size_t i = 1; i < pk->nsmall; i += 2)
        free(pk->small[i]);
    for (size_t i = 1; i < pk->nlarge; i += 2)
        free(pk->large[i]);
}

static void warm_up(void)
{
    for (int i = 0; i < 1000; i++) {
        void *volatile p = malloc(opq((size_t)(i % 64) * 16 + 16));
        free(p);
    }
}

static int rss_trim(void)
{
    struct peak pk;
    peak_alloc(&pk);
    warm_up();
    out("rss_base %zu", rss_bytes());
    peak_fill(&pk);
    out("rss_peak %zu", rss_bytes());
    peak_free(&pk);
    out("rss_freed %zu", rss_bytes());
    out("trim %d", malloc_trim(0));
    out("rss_after %zu", rss_bytes());
    return 0;
}

/* Light activity: 64 small malloc/free pairs per millisecond. */
static void light_activity(uint64_t ms)
{
    uint64_t end = now_ms() + ms;
    struct timespec pause = {0, 1000000};
    while (now_ms() < end) {
        for (int i = 0; i < 64; i++) {
            void *volatile p = malloc(opq((size_t)(i % 8) * 16 + 16));
            if (!p)
                fail("malloc returned NULL");
            ((volatile char *)p)[0] = 1;
            free(p);
        }
        nanosleep(&pause, NULL);
    }
}

static int rss_decay(void)
{
    struct peak pk;
    peak_alloc(&pk);
    warm_up();
    out("rss_base %zu", rss_bytes());
    peak_fill(&pk);
    out("rss_peak %zu", rss_bytes());
    peak_free(&pk);
    out("rss_freed %zu", rss_bytes());
    for (int step = 1; step <= 4; step++) {
        light_activity(250);
        out("rss_after_%dms %zu", step * 250, rss_bytes());
    }
    return 0;
}

/* Reads RSS every 50 ms, without calling the allocator, until it is at
 * most target or limit_ms have passed: returns it, and in *ms how long
 * that took. */
static size_t rss_watch(size_t target, uint64_t limit_ms, uint64_t *ms)
{
    struct timespec pause = {0, 50 * 1000000};
    uint64_t start = now_ms();
    size_t rss = rss_bytes();
    while (rss > target && now_ms() - start < limit_ms) {
        nanosleep(&pause, NULL);
        rss = rss_bytes();
    }
    *ms = now_ms() - start;
    return rss;
}

/* The same with the peak made and freed by two threads, which go on with
 * light activity afterwards (the main thread measures meanwhile): what
 * their caches took from the peak must not keep it resident. */
struct decay_worker {
    pthread_t tid;
    struct peak pk;
};
static pthread_barrier_t dw_bar;
static volatile int dw_stop;
static pthread_mutex_t dw_mu = PTHREAD_MUTEX_INITIALIZER;

static int dw_stopped(void)
{
    pthread_mutex_lock(&dw_mu);
    int s = dw_stop;
    pthread_mutex_unlock(&dw_mu);
    return s;
}

/* Light work that keeps blocks: 32 live blocks of 16..256 B, 8 of them
 * replaced every millisecond, until told to stop or for ms. */
static void light_live(void **live, uint64_t ms, int until_stopped)
{
    uint64_t end = now_ms() + ms;
    struct timespec pause = {0, 1000000};
    for (unsigned n = 0; until_stopped ? !dw_stopped() : now_ms() < end;) {
        for (int k = 0; k < 8; k++, n++) {
            free(live[n % 32]);
            live[n % 32] = xmalloc(rng_range(16, 256));
            ((volatile char *)live[n % 32])[0] = 1;
        }
        nanosleep(&pause, NULL);
    }
}

static void *decay_worker_main(void *arg)
{
    struct decay_worker *w = arg;
    void *live[32] = {0};
    peak_alloc(&w->pk);
    light_live(live, 200, 0);
    pthread_barrier_wait(&dw_bar); /* warmed up: main measures */
    pthread_barrier_wait(&dw_bar);
    peak_fill_half(&w->pk, 64 * MiB);
    pthread_barrier_wait(&dw_bar); /* peak: main measures */
    pthread_barrier_wait(&dw_bar);
    peak_free(&w->pk);
    pthread_barrier_wait(&dw_bar); /* freed: main watches */
    light_live(live, 0, 1);
    for (int i = 0; i < 32; i++)
        free(live[i]);
    return NULL;
}

static int rss_decay_threads(void)
{
    struct decay_worker w[2];
    pthread_barrier_init(&dw_bar, NULL, 3);
    for (int i = 0; i < 2; i++)
        if (pthread_create(&w[i].tid, NULL, decay_worker_main, &w[i]) != 0)
            fail("pthread_create failed");
    pthread_barrier_wait(&dw_bar);
    size_t base = rss_bytes();
    out("rss_base %zu", base);
    pthread_barrier_wait(&dw_bar);
    pthread_barrier_wait(&dw_bar);
    out("rss_peak %zu", rss_bytes());
    uint64_t start = now_ms();
    pthread_barrier_wait(&dw_bar);
    pthread_barrier_wait(&dw_bar);
    out("free_ms %llu", (unsigned long long)(now_ms() - start));
    /* The background thread returns the pages within about a second on an
     * idle machine; the long watch is for a loaded one. */
    uint64_t ms;
    out("rss_at_work %zu", rss_watch(base + 768 * KiB, 10000, &ms));
    out("at_work_ms %llu", (unsigned long long)ms);
    pthread_mutex_lock(&dw_mu);
    dw_stop = 1;
    pthread_mutex_unlock(&dw_mu);
    for (int i = 0; i < 2; i++)
        pthread_join(w[i].tid, NULL);
    return 0;
}

static const char *const figure_names[] = {
    "in_use_bytes",
    "small_in_use_bytes",
    "large_in_use_bytes",
    "huge_bytes",
    "thread_cache_bytes",
    "central_free_bytes",
    "span_tail_bytes",
    "page_heap_free_bytes",
    "returned_bytes",
    "heap_mapped_bytes",
    "meta_bytes",
    "mapped_bytes",
    "resident_estimate_bytes",
    "threads",
    "huge_count",
};

static void print_figures(const char *tag)
{
    for (size_t i = 0; i < sizeof figure_names / sizeof figure_names[0]; i++)
        out("%s %s %zu", tag, figure_names[i], stat_of(figure_names[i]));
}

/* A mixed workload touching every path that changes the page heap's
 * figures (splits, in-place growth and shrinking, aligned leads, huge
 * blocks and their mremap, calloc, trim), then the figures, quiescent. */
static int stats_identity(void)
{
    find_tl();
    enum { NSMALL = 6000, NLARGE = 60 };
    static char *small[NSMALL], *large[NLARGE];
    size_t held = 0, held_small = 0, held_large = 0;
    for (int i = 0; i < NSMALL; i++) {
        size_t n = rng_range(1, i % 10 == 0 ? 60000 : 1500);
        small[i] = xmalloc(n);
        memset(small[i], 1, n);
    }
    for (int i = 0; i < NLARGE; i++) {
        size_t n = rng_range(65 * KiB, 3 * MiB);
        switch (i % 4) {
        case 0:
            large[i] = xmalloc(n);
            break;
        case 1:
            large[i] = memalign(opq(64 * KiB), n);
            break;
        case 2:
            if (posix_memalign((void **)&large[i], opq(MiB), n))
                large[i] = NULL;
            break;
        default:
            large[i] = calloc(opq(n), 1);
            break;
        }
        if (!large[i])
            fail("large allocation failed");
        memset(large[i], 2, n);
    }
    /* In-place growth, shrinking and moves of large blocks. */
    for (int i = 0; i < NLARGE; i += 3) {
        large[i] = realloc(large[i], opq(malloc_usable_size(large[i]) + 100 * KiB));
        if (!large[i])
            fail("realloc grow failed");
        large[i] = realloc(large[i], opq(malloc_usable_size(large[i]) / 3 + 70 * KiB));
        if (!large[i])
            fail("realloc shrink failed");
    }
    char *huge = xmalloc(270 * MiB); /* huge: the default threshold is 256 MiB */
    memset(huge, 3, MiB);
    huge = realloc(huge, opq(300 * MiB));
    if (!huge)
        fail("realloc of the huge block failed");
    char *huge2 = xmalloc(280 * MiB);
    free(huge2);
    /* Free half, trim, allocate again, free some more. */
    for (int i = 0; i < NSMALL; i += 2)
        free(small[i]), small[i] = NULL;
    for (int i = 0; i < NLARGE; i += 2)
        free(large[i]), large[i] = NULL;
    out("trim %d", malloc_trim(0));
    for (int i = 0; i < NSMALL; i += 4) {
        small[i] = xmalloc(rng_range(1, 3000));
        memset(small[i], 4, 16);
    }
    for (int i = 0; i < NLARGE; i += 4) {
        large[i] = xmalloc(rng_range(65 * KiB, 2 * MiB));
        memset(large[i], 4, 16);
    }
    for (int i = 1; i < NSMALL; i += 6)
        free(small[i]), small[i] = NULL;
    for (int i = 0; i < NSMALL; i++)
        if (small[i])
            held_small += malloc_usable_size(small[i]);
    for (int i = 0; i < NLARGE; i++)
        if (large[i])
            held_large += malloc_usable_size(large[i]);
    held = held_small + held_large + malloc_usable_size(huge);
    out("held %zu", held);
    out("held_small %zu", held_small);
    out("held_large %zu", held_large);
    out("held_huge %zu", malloc_usable_size(huge));
    print_figures("live");
    /* Everything freed: only what the program itself still holds (nothing
     * here) stays in use. */
    for (int i = 0; i < NSMALL; i++)
        free(small[i]);
    for (int i = 0; i < NLARGE; i++)
        free(large[i]);
    free(huge);
    print_figures("freed");
    out("trim %d", malloc_trim(0));
    print_figures("trimmed");
    return 0;
}

/* 16 threads each allocate and free 4 MiB worth of blocks of 8 sizes, then
 * idle while the main thread reads thread_cache_bytes. ARG "seq": the
 * threads work one after another (each idles once done); otherwise all at
 * once. */
enum { TC_THREADS = 16 };
static pthread_mutex_t tc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tc_cv = PTHREAD_COND_INITIALIZER;
static int tc_turn, tc_done, tc_release, tc_seq;

static void *tc_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&tc_mu);
    while (tc_seq && tc_turn != id)
        pthread_cond_wait(&tc_cv, &tc_mu);
    pthread_mutex_unlock(&tc_mu);

    static const size_t sizes[] = {64, 128, 256, 512, 1024, 2048, 4096, 8192};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    size_t per_size = 4 * MiB / NS;
    size_t total = 0;
    for (size_t k = 0; k < NS; k++)
        total += per_size / sizes[k];
    void **p = malloc(total * sizeof *p);
    if (!p)
        fail("malloc of the pointer array failed");
    size_t n = 0;
    for (size_t k = 0; k < NS; k++)
        for (size_t i = 0; i < per_size / sizes[k]; i++) {
            p[n] = xmalloc(sizes[k]);
            memset(p[n], 1, 16);
            n++;
        }
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    free(p);

    pthread_mutex_lock(&tc_mu);
    tc_done++;
    tc_turn++;
    pthread_cond_broadcast(&tc_cv);
    while (!tc_release)
        pthread_cond_wait(&tc_cv, &tc_mu);
    pthread_mutex_unlock(&tc_mu);
    return NULL;
}

static int tc_budget(const char *arg)
{
    find_tl();
    tc_seq = arg && !strcmp(arg, "seq");
    pthread_t t[TC_THREADS];
    for (int i = 0; i < TC_THREADS; i++)
        if (pthread_create(&t[i], NULL, tc_worker, (void *)(intptr_t)i))
            fail("pthread_create failed");
    pthread_mutex_lock(&tc_mu);
    while (tc_done < TC_THREADS)
        pthread_cond_wait(&tc_cv, &tc_mu);
    pthread_mutex_unlock(&tc_mu);
    out("idle thread_cache_bytes %zu", stat_of("thread_cache_bytes"));
    out("idle threads %zu", stat_of("threads"));
    struct timespec pause = {0, 200 * 1000000};
    nanosleep(&pause, NULL);
    out("idle_later thread_cache_bytes %zu", stat_of("thread_cache_bytes"));
    pthread_mutex_lock(&tc_mu);
    tc_release = 1;
    pthread_cond_broadcast(&tc_cv);
    pthread_mutex_unlock(&tc_mu);
    for (int i = 0; i < TC_THREADS; i++)
        pthread_join(t[i], NULL);
    out("joined thread_cache_bytes %zu", stat_of("thread_cache_bytes"));
    return 0;
}

/* ---- huge blocks moved by realloc (t_diag.c) ------------------------------- */
/* The program's own mremap: the program's symbols are exported, so every
 * caller in the process reaches this one, tlmalloc included. It makes the
 * system call and then, when a hook is armed and the call moved a mapping,
 * runs the hook once, at the moment the old range has just become free. */
static void (*volatile mremap_hook)(void *old);

void *mremap(void *old, size_t old_size, size_t new_size, int flags, ...)
{
    void *target = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        target = va_arg(ap, void *);
        va_end(ap);
    }
    long r = syscall(SYS_mremap, old, old_size, new_size, flags, target);
    if (r == -1)
        return MAP_FAILED;
    void (*hook)(void *) = mremap_hook;
    if (hook && (void *)r != old) {
        mremap_hook = NULL;
        hook(old);
    }
    return (void *)r;
}

/* What another thread's allocation does when it runs between the move of
 * a huge block and the end of its realloc: a huge block of the same size,
 * for which the kernel picks the hole the move has just left. Volatile:
 * the compiler takes realloc for a leaf function, which cannot write it. */
static char *volatile race_block;
static void allocate_in_the_hole(void *old)
{
    (void)old;
    race_block = xmalloc(512 * KiB);
    race_block[0] = 2;
}

/* A 512 KiB huge block (huge threshold lowered to 256 KiB) grown to 1 MiB:
 * the kernel places mappings top down, so the range above the block is
 * taken and mremap moves it. Another huge block is allocated as soon as
 * the old range is free, then freed after realloc has returned. Rounds
 * where the kernel put that block at the old address ("hits") are the
 * race; the block is valid and its free must succeed. */
static int huge_realloc_moved(void)
{
    out("mallopt %d", mallopt(M_MMAP_THRESHOLD, 256 * 1024));
    int hits = 0, moves = 0;
    for (int round = 0; round < 200 && hits < 20; round++) {
        char *p = xmalloc(512 * KiB);
        memset(p, 1, 4096);
        race_block = NULL;
        mremap_hook = allocate_in_the_hole;
        char *q = realloc(p, opq(MiB));
        mremap_hook = NULL;
        if (!q || q[4095] != 1)
            fail("realloc of a huge block failed or lost its contents");
        moves += q != p;
        hits += race_block == p;
        free(q);
        if (race_block)
            free(race_block);
    }
    out("moves %d", moves);
    out("hits %d", hits);
    return 0;
}

/* ---- options (t_config.c) --------------------------------------------------- */
/* A 2 MiB block: huge (own mapping) or not? */
static int huge_count(void)
{
    find_tl();
    size_t before = stat_of("huge_count");
    char *p = xmalloc(2 * MiB);
    memset(p, 1, 4096);
    out("huge_count %zu", stat_of("huge_count") - before);
    out("huge_bytes %zu", stat_of("huge_bytes"));
    free(p);
    out("huge_count_after_free %zu", stat_of("huge_count") - before);
    return 0;
}

static int mallopt_huge(void)
{
    find_tl();
    char *p = xmalloc(2 * MiB);
    out("before huge_count %zu", stat_of("huge_count"));
    free(p);
    out("mallopt_mmap_threshold %d", mallopt(M_MMAP_THRESHOLD, 1 << 20));
    p = xmalloc(2 * MiB);
    memset(p, 1, 4096);
    out("after huge_count %zu", stat_of("huge_count"));
    free(p);
    out("after_free huge_count %zu", stat_of("huge_count"));
    p = xmalloc(512 * KiB);
    out("small_block huge_count %zu", stat_of("huge_count"));
    free(p);
    out("mallopt_unknown %d", mallopt(12345, 1));
    out("mallopt_trim_threshold %d", mallopt(M_TRIM_THRESHOLD, 1 << 20));
    return 0;
}

/* Allocates and frees a little; prints nothing of its own. */
static int noop(void)
{
    for (int i = 0; i < 100; i++) {
        void *p = xmalloc((size_t)i * 50 + 1);
        free(p);
    }
    return 0;
}

/* An 8 MiB block is freed, then a 1 MiB block aligned to 1 MiB is taken out
 * of its dirty span; 700 ms later a look at the page heap (from the thread
 * cache's tick) decides what has aged past decay_ms. Prints the dirty bytes
 * before and after that look. */
static int aligned_remainder(void)
{
    find_tl();
    warm_up();
    char *p = xmalloc(8 * MiB);
    memset(p, 1, 8 * MiB);
    free(p);
    void *q;
    if (posix_memalign(&q, MiB, MiB) != 0)
        fail("posix_memalign(1 MiB, 1 MiB) failed");
    out("dirty_after_take %zu", stat_of("page_heap_free_bytes"));
    struct timespec pause = {0, 700000000};
    while (nanosleep(&pause, &pause) != 0)
        ;
    for (int i = 0; i < 3000; i++) { /* more than one tick: 1024 frees */
        void *volatile s = xmalloc(16);
        free(s);
    }
    out("dirty_after_look %zu", stat_of("page_heap_free_bytes"));
    free(q);
    return 0;
}

/* ---- check mode and correct programs (t_checkmode.c) ----------------------- */
/* A correct program: stdio's buffers and a block reachable from a global
 * are still allocated at exit, as in most programs. */
static char *kept_name;

static int quiet_exit(void)
{
    kept_name = strdup("still reachable at exit");
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        while (getline(&line, &cap, f) > 0)
            ;
        fclose(f);
    }
    free(line);
    printf("name %s\n", kept_name);
    return 0;
}

/* Resizing within the usable size keeps the block, growing past it moves
 * it with its contents. */
static int realloc_in_place(void)
{
    char *p = xmalloc(3);
    memcpy(p, "abc", 3);
    size_t usable = malloc_usable_size(p);
    char *q = realloc(p, usable);
    out("grow_same %d", q == p);
    char *r = realloc(q, 1);
    out("shrink_same %d", r == q);
    out("kept %d", r && r[0] == 'a');
    char *s = realloc(r, 5000);
    out("moved_kept %d", s && s[0] == 'a');
    free(s);
    return 0;
}

/* mallinfo2's bytes in use, before and after 4 MiB allocated and freed. */
static int mallinfo_after_free(void)
{
    enum { N = 4096 };
    static void *blocks[N];
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < N; i++)
        blocks[i] = xmalloc(1000);
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    out("before %zu", before);
    out("after %zu", mallinfo2().uordblks);
    return 0;
}

/* A million small allocations and frees: milliseconds taken. */
static int alloc_rate(void)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 1000000; i++) {
        void *p = xmalloc((size_t)(i & 63) + 1);
        free(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    out("ms %ld", (long)((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000));
    return 0;
}

/* ---- an idle program after its peak (t_memory.c) -------------------------- */
/* Reads RSS every 50 ms, for up to 3 s, without calling the allocator, and
 * stops as soon as it is back within 10% (or 1 MiB, whichever is larger)
 * of base: prints the RSS then and how long after the free it came. */
static void idle_watch(size_t base)
{
    size_t target = base / 10 > MiB ? base + base / 10 : base + MiB;
    uint64_t ms;
    out("rss_idle %zu", rss_watch(target, 3000, &ms));
    out("idle_ms %llu", (unsigned long long)ms);
}

/* One thread: about 256 MiB of small and large blocks, all freed, then no
 * allocator call at all. */
static int rss_idle(void)
{
    struct peak pk;
    peak_alloc(&pk);
    warm_up();
    size_t base = rss_bytes();
    out("rss_base %zu", base);
    peak_fill(&pk);
    out("rss_peak %zu", rss_bytes());
    peak_free(&pk);
    idle_watch(base);
    return 0;
}

/* Two threads make the peak (128 MiB each), free it, and block on a
 * barrier; the main thread, which does not call the allocator either,
 * watches RSS. */
static pthread_barrier_t idle_bar;

static int idle_slow_free; /* ARG "slow": see peak_free_slowly */

/* peak_free, with the end of it slowed down the way a loaded machine slows
 * it: most of the peak freed, then twice a pause of more than two scavenge
 * intervals (decay_ms/4 with the default decay_ms of 1000), each followed
 * by a part of what is left. */
static void peak_free_slowly(struct peak *pk)
{
    struct timespec pause = {0, 600 * 1000000};
    size_t n = pk->nsmall, cut1 = n - n / 10, cut2 = n - n / 20;
    for (size_t i = 0; i < n; i += 2)
        free(pk->small[i]);
    for (size_t i = 0; i < pk->nlarge; i++)
        free(pk->large[i]);
    for (size_t i = 1; i < n; i += 2) {
        if (i == (cut1 | 1) || i == (cut2 | 1))
            nanosleep(&pause, NULL);
        free(pk->small[i]);
    }
}

static void *idle_worker(void *arg)
{
    struct peak *pk = arg;
    peak_alloc(pk);
    warm_up();
    pthread_barrier_wait(&idle_bar); /* warmed up: main measures */
    pthread_barrier_wait(&idle_bar);
    peak_fill_half(pk, 64 * MiB);
    pthread_barrier_wait(&idle_bar); /* peak: main measures */
    pthread_barrier_wait(&idle_bar);
    if (idle_slow_free)
        peak_free_slowly(pk);
    else
        peak_free(pk);
    pthread_barrier_wait(&idle_bar); /* freed: now idle */
    pthread_barrier_wait(&idle_bar); /* main has watched: exit */
    return NULL;
}

static int rss_idle_threads(const char *arg)
{
    idle_slow_free = arg && !strcmp(arg, "slow");
    pthread_t t[2];
    struct peak pk[2];
    pthread_barrier_init(&idle_bar, NULL, 3);
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, idle_worker, &pk[i]) != 0)
            fail("pthread_create failed");
    pthread_barrier_wait(&idle_bar);
    size_t base = rss_bytes();
    out("rss_base %zu", base);
    pthread_barrier_wait(&idle_bar);
    pthread_barrier_wait(&idle_bar);
    out("rss_peak %zu", rss_bytes());
    pthread_barrier_wait(&idle_bar);
    pthread_barrier_wait(&idle_bar);
    idle_watch(base);
    pthread_barrier_wait(&idle_bar);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return 0;
}

/* ---- a single-threaded process (t_memory.c) ------------------------------ */
/* The "Threads:" line of /proc/self/status. */
static int threads_now(void)
{
    char buf[4096];
    read_proc("/proc/self/status", buf, sizeof buf);
    const char *line = strstr(buf, "\nThreads:");
    if (!line)
        fail("no Threads: line in /proc/self/status");
    return atoi(line + strlen("\nThreads:"));
}

/* One thread takes its heap well past 32 MiB (where background_thread=auto
 * starts the thread in a multithreaded process) with large and small
 * blocks, frees it, takes it again and frees it; then prints how many
 * threads the process has and whether glibc still counts it as
 * single-threaded. */
static int single_thread_heap(void)
{
    enum { NBIG = 64 };
    char *big[NBIG];
    struct peak pk;
    peak_alloc(&pk);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < NBIG; i++) {
            big[i] = xmalloc(MiB);
            memset(big[i], round + 1, MiB);
        }
        pk.nsmall = pk.nlarge = 0;
        peak_fill_half(&pk, 16 * MiB);
        peak_free(&pk);
        for (int i = 0; i < NBIG; i++)
            free(big[i]);
    }
    out("threads %d", threads_now());
    out("single_threaded %d", (int)__libc_single_threaded);
    return 0;
}

/* One thread frees an 8 MiB block and takes one again, ROUNDS times: the
 * first frees give it back to the kernel at once (nothing else would,
 * while a single-threaded program is idle), and each time it is taken
 * again within decay_ms the budget of dirty pages kept at the free
 * doubles, until the block stays. Prints page_heap_releases after the
 * first round, after round 10, and at the end. */
static int eager_reuse(void)
{
    find_tl();
    warm_up();
    enum { ROUNDS = 30 };
    for (int round = 1; round <= ROUNDS; round++) {
        char *p = xmalloc(8 * MiB);
        memset(p, round, 8 * MiB);
        free(p);
        if (round == 1 || round == 10 || round == ROUNDS)
            out("releases_%d %zu", round, stat_of("page_heap_releases"));
    }
    out("dirty_end %zu", stat_of("page_heap_free_bytes"));
    return 0;
}

/* One thread allocates about 128 MiB in small blocks (16..1024 B) and frees
 * them; then, for 2 s, it either makes no allocator call (ARG "idle") or
 * ARG malloc+free pairs of one size a second. Prints central_free_bytes
 * and thread_cache_bytes right after the free and every 250 ms. */
static int central_idle(const char *arg)
{
    find_tl();
    unsigned rate = arg && strcmp(arg, "idle") ? (unsigned)atoi(arg) : 0;
    struct peak pk;
    peak_alloc(&pk);
    warm_up();
    size_t bytes = 0;
    while (bytes < 128 * MiB) {
        if (pk.nsmall == pk.max_small)
            fail("too many small blocks");
        size_t n = rng_range(16, 1024);
        char *p = xmalloc(n);
        memset(p, 0x5a, n);
        pk.small[pk.nsmall++] = p;
        bytes += n;
    }
    peak_free(&pk);
    out("central_free_0ms %zu", stat_of("central_free_bytes"));
    uint64_t start = now_ms(), next = start;
    for (int step = 1; step <= 8; step++) {
        while (now_ms() < start + (uint64_t)step * 250) {
            if (!rate) {
                struct timespec pause = {0, 10 * 1000000};
                nanosleep(&pause, NULL);
                continue;
            }
            void *volatile p = xmalloc(48);
            free(p);
            next += 1000 / rate ? 1000 / rate : 1;
            uint64_t now = now_ms();
            if (next > now) {
                struct timespec pause = {0, (long)(next - now) * 1000000};
                nanosleep(&pause, NULL);
            }
        }
        out("central_free_%dms %zu", step * 250, stat_of("central_free_bytes"));
        out("thread_cache_%dms %zu", step * 250, stat_of("thread_cache_bytes"));
    }
    return 0;
}

/* A fork in a signal handler that interrupted this thread's own fork
 * (glibc's tst-mallocfork2). Linux restarts a fork interrupted by a signal
 * once the handler has run, so the handler's fork runs between the outer
 * fork's prepare and parent handlers; glibc runs them without a lock of
 * its own only in a single-threaded process, which this program is. A
 * profiling timer's handler forks while the program forks, frees and
 * mallocs in a loop: 3,000 forks, or fewer when 20 s have passed (a loaded
 * machine), with a line "progress N" every 500. Prints "forks N" and
 * "handler_forks N".
 * With ARG "child_allocates" the program's malloc and free run with the
 * timer's signal blocked, so the handler interrupts only fork and waitpid,
 * never the allocator; then its child may allocate, and does (glibc's
 * tst-mallocfork: its handler's child calls exit). */
static volatile sig_atomic_t nf_bad, nf_handler_forks;
static int nf_child_allocates;

static void nf_handler(int sig)
{
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0) {
        if (nf_child_allocates) {
            void *large = malloc(100000), *small = malloc(40);
            free(small);
            free(large);
        }
        _exit(0);
    }
    int st = 0;
    if (pid < 0 || TEMP_FAILURE_RETRY(waitpid(pid, &st, 0)) != pid || !WIFEXITED(st) ||
        WEXITSTATUS(st) != 0)
        nf_bad = 1;
    nf_handler_forks++;
    errno = saved;
}

static int fork_nested(const char *arg)
{
    nf_child_allocates = arg && !strcmp(arg, "child_allocates");
    sigset_t prof;
    sigemptyset(&prof);
    sigaddset(&prof, SIGPROF);
    struct sigaction sa = {.sa_handler = nf_handler, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPROF, &sa, NULL) != 0)
        fail("sigaction failed");
    struct itimerval every_ms = {{0, 1000}, {0, 1000}}, stop = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &every_ms, NULL);
    void *held[64] = {0};
    int forks = 0;
    uint64_t start = now_ms();
    for (; forks < 3000 && !nf_bad && now_ms() - start < 20000; forks++) {
        if (forks % 500 == 0)
            out("progress %d", forks);
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        int st = 0;
        if (pid < 0 || TEMP_FAILURE_RETRY(waitpid(pid, &st, 0)) != pid || !WIFEXITED(st))
            nf_bad = 1;
        if (nf_child_allocates)
            sigprocmask(SIG_BLOCK, &prof, NULL);
        for (int k = 0; k < 4; k++) {
            size_t slot = rng_range(0, 63);
            free(held[slot]);
            held[slot] = xmalloc(rng_range(16, 70000));
        }
        if (nf_child_allocates)
            sigprocmask(SIG_UNBLOCK, &prof, NULL);
    }
    setitimer(ITIMER_PROF, &stop, NULL);
    for (int k = 0; k < 64; k++)
        free(held[k]);
    out("forks %d", forks);
    out("handler_forks %d", (int)nf_handler_forks);
    if (nf_bad)
        fail("a fork or its child failed");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        out("error usage: diag_child SCENARIO [ARG]");
        return 2;
    }
    const char *s = argv[1], *arg = argc > 2 ? argv[2] : NULL;
    if (!strcmp(s, "double_free_small"))
        return double_free_small();
    if (!strcmp(s, "double_free_large"))
        return double_free_large();
    if (!strcmp(s, "free_stack"))
        return free_stack();
    if (!strcmp(s, "free_global"))
        return free_global();
    if (!strcmp(s, "free_interior_small"))
        return free_interior_small();
    if (!strcmp(s, "free_interior_large"))
        return free_interior_large();
    if (!strcmp(s, "free_unmapped_huge"))
        return free_unmapped_huge();
    if (!strcmp(s, "realloc_invalid"))
        return realloc_invalid();
    if (!strcmp(s, "corrupt_link"))
        return corrupt_link(arg);
    if (!strcmp(s, "corrupt_span_link"))
        return corrupt_span_link();
    if (!strcmp(s, "bad_frame_chain"))
        return bad_frame_chain();
    if (!strcmp(s, "nested_report"))
        return nested_report(arg);
    if (!strcmp(s, "report_during_dlopen"))
        return report_during_dlopen(arg);
    if (!strcmp(s, "overrun_free"))
        return overrun(arg, 0);
    if (!strcmp(s, "overrun_realloc"))
        return overrun(arg, 1);
    if (!strcmp(s, "write_after_free"))
        return write_after_free();
    if (!strcmp(s, "fill"))
        return fill();
    if (!strcmp(s, "leak"))
        return leak();
    if (!strcmp(s, "rss_trim"))
        return rss_trim();
    if (!strcmp(s, "rss_decay"))
        return rss_decay();
    if (!strcmp(s, "rss_decay_threads"))
        return rss_decay_threads();
    if (!strcmp(s, "stats_identity"))
        return stats_identity();
    if (!strcmp(s, "tc_budget"))
        return tc_budget(arg);
    if (!strcmp(s, "huge_count"))
        return huge_count();
    if (!strcmp(s, "mallopt_huge"))
        return mallopt_huge();
    if (!strcmp(s, "huge_realloc_moved"))
        return huge_realloc_moved();
    if (!strcmp(s, "noop"))
        return noop();
    if (!strcmp(s, "aligned_remainder"))
        return aligned_remainder();
    if (!strcmp(s, "quiet_exit"))
        return quiet_exit();
    if (!strcmp(s, "realloc_in_place"))
        return realloc_in_place();
    if (!strcmp(s, "mallinfo_after_free"))
        return mallinfo_after_free();
    if (!strcmp(s, "alloc_rate"))
        return alloc_rate();
    if (!strcmp(s, "rss_idle"))
        return rss_idle();
    if (!strcmp(s, "rss_idle_threads"))
        return rss_idle_threads(arg);
    if (!strcmp(s, "central_idle"))
        return central_idle(arg);
    if (!strcmp(s, "fork_nested"))
        return fork_nested(arg);
    if (!strcmp(s, "single_thread_heap"))
        return single_thread_heap();
    if (!strcmp(s, "eager_reuse"))
        return eager_reuse();
    out("error unknown scenario %s", s);
    return 2;
}

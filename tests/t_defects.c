/* t_defects.c - regression tests for defects found from outside: lock
 * ownership and fork from a signal handler, double frees of blocks parked
 * on a transfer stack, frees into span tails and uncarved objects, and the
 * prefixed library's thread key and dlclose. Each test failed before its
 * fix. */
#include <criterion/criterion.h>

#include "bad_free.h"
#include "common.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

/* ---- fork from a signal handler that interrupted malloc ------------------
 * Worker threads loop over malloc, free and malloc_trim(0), which between
 * them take every allocator lock. The main thread sends one worker a
 * signal every 200 us; its handler forks, and the child leaves at once
 * with _exit (only async-signal-safe calls are promised in a child forked
 * from a handler). The parent must never deadlock: neither on a lock its
 * own interrupted frame holds, nor on a lock another worker holds while
 * that worker waits for one the interrupted frame holds. A hang is caught
 * by the test's timeout. */
static atomic_int hf_stop, hf_forked, hf_bad;

static void hf_handler(int sig)
{
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0) {
        atomic_fetch_add(&hf_bad, 1);
    } else {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            atomic_fetch_add(&hf_bad, 1);
        atomic_fetch_add(&hf_forked, 1);
    }
    errno = saved;
}

static void *hf_worker(void *arg)
{
    uint64_t r = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
    void *held[16] = {0};
    for (unsigned i = 0; !atomic_load_explicit(&hf_stop, memory_order_relaxed); i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned k = (unsigned)(r >> 60);
        free(held[k]);
        size_t n = (size_t)(r >> 24) % 2048 + 1;
        held[k] = malloc(n);
        if (held[k])
            memset(held[k], (int)i, n < 64 ? n : 64);
        malloc_trim(0);
    }
    for (unsigned k = 0; k < 16; k++)
        free(held[k]);
    return NULL;
}

static void fork_from_handler(int workers, int forks)
{
    cr_assert_eq(set_handler(SIGUSR1, hf_handler), 0);
    pthread_t th[4];
    for (int t = 0; t < workers; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, hf_worker, (void *)(uintptr_t)(t + 1)), 0);
    struct timespec gap = {0, 200 * 1000};
    while (atomic_load(&hf_forked) + atomic_load(&hf_bad) < forks) {
        pthread_kill(th[0], SIGUSR1);
        nanosleep(&gap, NULL);
    }
    atomic_store(&hf_stop, 1);
    for (int t = 0; t < workers; t++)
        pthread_join(th[t], NULL);
    cr_assert_eq(atomic_load(&hf_bad), 0, "%d forks or children failed", atomic_load(&hf_bad));
}

/* The interrupted frame holds a lock: fork must not wait for it. */
Test(defects, fork_in_handler_of_malloc_loop, .timeout = 400) { fork_from_handler(1, 300); }

/* Another thread holds a lock the handler's fork needs, and may itself be
 * waiting for one the interrupted frame holds. */
Test(defects, fork_in_handler_with_second_allocating_thread, .timeout = 400)
{
    fork_from_handler(2, 300);
}

/* ---- heap errors that were accepted -------------------------------------
 * Each scenario runs in a forked child (tests/bad_free.h): the child must
 * die of SIGABRT with a report naming the pointer. */
/* A thread frees 33 blocks of 48 B: the first 32 fill its list, the 33rd
 * flushes them as one batch to the central transfer stack, headed by the
 * 32nd block. That block is then freed again. */
static void *free_all_then_head_again(void *arg)
{
    void **blocks = arg;
    for (int i = 0; i < 33; i++)
        free(blocks[i]);
    free(opq_ptr(blocks[31]));
    return NULL;
}

static void *malloc_48(void *arg)
{
    *(void **)arg = malloc(48);
    return NULL;
}

static void double_free_of_batch_head(void *unused)
{
    (void)unused;
    static void *blocks[33];
    for (int i = 0; i < 33; i++)
        blocks[i] = malloc(48);
    fprintf(stderr, "head %p\n", blocks[31]);
    pthread_t t;
    pthread_create(&t, NULL, free_all_then_head_again, blocks);
    pthread_join(t, NULL);
    /* Unreported, the block would now be handed out twice. free does not
     * read the block, so the second free is found when the batch is taken:
     * enough mallocs to empty this thread's cache and refill it. */
    static void *again[96];
    for (int i = 0; i < 96; i++)
        again[i] = malloc(48);
    /* The thread's list, which also holds the block, is kept at its exit
     * for the next thread to start: that thread's first malloc pops it. */
    void *adopted = NULL;
    pthread_create(&t, NULL, malloc_48, &adopted);
    pthread_join(t, NULL);
    fprintf(stderr, "continued: %p %p %p\n", again[0], again[95], adopted);
}

Test(defects, double_free_of_transfer_batch_head_is_reported, .timeout = 60)
{
    struct report r = run_bad_free(double_free_of_batch_head, NULL);
    assert_reported(&r, "double free", scenario_ptr(&r, "head"));
}

/* A 48 B class span is one 8 KiB page holding 170 objects; its last 32
 * bytes (from offset 8160) are a tail no object covers. */
static void free_span_tail(void *unused)
{
    (void)unused;
    char *p = malloc(48);
    char *tail = (char *)((uintptr_t)p & ~(uintptr_t)8191) + 170 * 48;
    fprintf(stderr, "tail %p\n", (void *)tail);
    free(opq_ptr(tail));
    fprintf(stderr, "continued\n");
}

Test(defects, free_into_span_tail_is_reported, .timeout = 60)
{
    struct report r = run_bad_free(free_span_tail, NULL);
    assert_reported(&r, "invalid pointer", scenario_ptr(&r, "tail"));
}

/* Four blocks of 3328 B (17 objects to a 7-page span, a class nothing
 * else here uses): the first refill carves four objects, in order, from
 * a new span. The object two past the highest has not been carved. */
static void free_uncarved_object(void *unused)
{
    (void)unused;
    char *b[4], *hi = NULL;
    for (int i = 0; i < 4; i++) {
        b[i] = malloc(3300);
        if (b[i] > hi)
            hi = b[i];
    }
    char *never = hi + 2 * 3328;
    fprintf(stderr, "never %p\n", (void *)never);
    free(opq_ptr(never));
    fprintf(stderr, "continued\n");
}

Test(defects, free_of_never_allocated_object_is_reported, .timeout = 60)
{
    struct report r = run_bad_free(free_uncarved_object, NULL);
    assert_reported(&r, "invalid pointer", scenario_ptr(&r, "never"));
}

/* ---- the prefixed library, dlopen()ed late --------------------------------
 * libtlmalloc-prefixed is found in the build tree: $TL_BUILDDIR/.libs (as
 * tests/run.sh sets it), else beside this program's own build directory. */
#include <dlfcn.h>
#include <limits.h>

static void prefixed_path(char *path, size_t cap)
{
    const char *b = getenv("TL_BUILDDIR");
    if (b && *b) {
        snprintf(path, cap, "%s/.libs/libtlmalloc-prefixed.so", b);
        if (access(path, R_OK) == 0)
            return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = 0;
    *strrchr(exe, '/') = 0;
    static const char *const ups[] = {"/..", "/../.."};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, cap, "%s%s/.libs/libtlmalloc-prefixed.so", exe, ups[i]);
        if (access(path, R_OK) == 0)
            return;
    }
    cr_assert_fail("cannot find libtlmalloc-prefixed.so: set TL_BUILDDIR");
}

struct prefixed {
    void *handle;
    void *(*malloc)(size_t);
    void (*free)(void *);
};

static int prefixed_open(struct prefixed *px, const char *path)
{
    px->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!px->handle)
        return 0;
    px->malloc = (void *(*)(size_t))dlsym(px->handle, "tl_malloc");
    px->free = (void (*)(void *))dlsym(px->handle, "tl_free");
    return px->malloc && px->free;
}

/* Runs fn in a forked child (so that exhausting keys or a crash stays
 * there) and returns its wait status. */
static int in_child(int (*fn)(const char *), const char *path)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        alarm(60);
        _exit(fn(path));
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return st;
}

/* Keys exhausted: tlmalloc must not use a key it does not own. */
static pthread_key_t ke_keys[PTHREAD_KEYS_MAX];
static atomic_int ke_foreign_values;

static void ke_destructor(void *value)
{
    if (value && value != (void *)&ke_keys)
        atomic_fetch_add(&ke_foreign_values, 1);
}

static void *ke_thread(void *arg)
{
    struct prefixed *px = arg;
    for (unsigned k = 0; k < 4; k++) /* key 0..3: whoever owns them */
        if (pthread_getspecific(k) != NULL)
            return (void *)1;
    for (int i = 0; i < 100; i++)
        px->free(px->malloc((size_t)i * 8 + 1));
    for (unsigned k = 0; k < 4; k++)
        if (pthread_getspecific(k) != NULL)
            return (void *)2; /* tlmalloc wrote into a key it does not own */
    return NULL;
}

static int keys_exhausted(const char *path)
{
    int made = 0;
    while (made < PTHREAD_KEYS_MAX && pthread_key_create(&ke_keys[made], ke_destructor) == 0)
        made++;
    struct prefixed px;
    if (!prefixed_open(&px, path))
        return 10;
    pthread_t t;
    void *res = (void *)9;
    if (pthread_create(&t, NULL, ke_thread, &px) != 0 || pthread_join(t, &res) != 0)
        return 11;
    if (res)
        return 20 + (int)(intptr_t)res;
    return atomic_load(&ke_foreign_values) ? 30 : 0;
}

Test(defects, prefixed_library_with_no_thread_key_left, .timeout = 120)
{
    char path[PATH_MAX];
    prefixed_path(path, sizeof path);
    int st = in_child(keys_exhausted, path);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "child status 0x%x (exit 21/22: tlmalloc used a pthread key it did not create; "
              "30: another component's destructor got tlmalloc's value)",
              st);
}

/* dlclose while a thread that used the library still runs; the thread then
 * exits. And open/close cycles must not each leave address space behind. */
static atomic_int dc_go;

static void *dc_thread(void *arg)
{
    struct prefixed *px = arg;
    px->free(px->malloc(100));
    while (!atomic_load(&dc_go))
        sched_yield();
    return NULL;
}

static size_t vm_size_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static int close_while_thread_lives(const char *path)
{
    size_t before = 0;
    for (int cycle = 0; cycle < 8; cycle++) {
        struct prefixed px;
        if (!prefixed_open(&px, path))
            return 10;
        pthread_t t;
        atomic_store(&dc_go, 0);
        if (pthread_create(&t, NULL, dc_thread, &px) != 0)
            return 11;
        dlclose(px.handle);
        atomic_store(&dc_go, 1);
        pthread_join(t, NULL); /* the thread's exit runs tlmalloc's key destructor */
        if (cycle == 1)
            before = vm_size_kib();
    }
    /* Six more cycles: no more than 16 MiB of address space more. */
    return vm_size_kib() - before > 16 * 1024 ? 20 : 0;
}

Test(defects, prefixed_library_dlclose_with_live_thread, .timeout = 120)
{
    char path[PATH_MAX];
    prefixed_path(path, sizeof path);
    int st = in_child(close_while_thread_lives, path);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "child status 0x%x (signal %d; exit 20: each open/close cycle leaks address space)",
              st, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* ---- found by glibc's own malloc tests ------------------------------------
 * (a fork in a handler that interrupted fork: t_diag.c, which runs it in a
 * fresh single-threaded process) */

/* The background thread must never take a signal sent to the process. A
 * program that blocks SIGUSR1 to collect it with sigwait (or a signalfd)
 * was killed by it once the background thread had started: the thread
 * had every signal unblocked, so the kernel delivered it there, to the
 * default action. */
static int signal_reaches_the_program(const char *unused)
{
    (void)unused;
    int (*ctl)(const char *, void *, size_t *, const void *, size_t) =
        (int (*)(const char *, void *, size_t *, const void *, size_t))dlsym(RTLD_DEFAULT,
                                                                             "tl_ctl");
    if (!ctl)
        return 77; /* not tlmalloc: no background thread */
    int on = 1, running = 0;
    size_t len = sizeof running;
    if (ctl("background_thread", NULL, NULL, &on, sizeof on) != 0 ||
        ctl("background_thread.running", &running, &len, NULL, 0) != 0 || !running)
        return 5;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    for (int i = 0; i < 20; i++) {
        struct timespec asleep = {0, 10 * 1000 * 1000}; /* the thread waits for work */
        nanosleep(&asleep, NULL);
        kill(getpid(), SIGUSR1);
        struct timespec wait = {5, 0};
        if (sigtimedwait(&usr1, NULL, &wait) != SIGUSR1)
            return 6;
    }
    return 0;
}

Test(defects, background_thread_takes_no_signal, .timeout = 120)
{
    int st = in_child(signal_reaches_the_program, NULL);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
        cr_skip_test("no background thread (not tlmalloc)");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "child status 0x%x (signal %d: the process died of a SIGUSR1 it had blocked; exit "
              "5: the background thread did not start, 6: the signal never came)",
              st, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The background thread starts from a thread cache refill, and starting
 * it allocates: glibc's pthread_create callocs the new thread's TLS vector.
 * When that calloc was of the class being refilled, it found the list
 * still empty and refilled it, and the outer refill then wrote its head
 * and room over it: objects were lost and the room went wrong, and a later
 * flush walked past the end of the list (sort --parallel=2 under tlmalloc:
 * "heap corruption of 0x0 ... when the thread cache gave it back"). One
 * child per size from 16 to 1024 bytes: each becomes multithreaded, takes
 * its heap past the thread's 32 MiB threshold with blocks of that size
 * alone, and frees them. */
static void *no_work(void *unused) { return unused; }

static int grow_with_one_size(const char *arg)
{
    pthread_t t; /* auto starts the thread only in a multithreaded process */
    if (pthread_create(&t, NULL, no_work, NULL) != 0 || pthread_join(t, NULL) != 0)
        return 3;
    size_t size = strtoul(arg, NULL, 10), n = ((size_t)40 << 20) / size;
    void **blocks = malloc(n * sizeof *blocks);
    if (!blocks)
        return 2;
    for (size_t i = 0; i < n; i++)
        if (!(blocks[i] = malloc(size)))
            return 2;
    for (size_t i = 0; i < n; i++)
        free(blocks[i]);
    free(blocks);
    return 0;
}

Test(defects, background_thread_started_by_a_refill, .timeout = 300)
{
    for (unsigned size = 16; size <= 1024; size += 16) {
        char arg[16];
        snprintf(arg, sizeof arg, "%u", size);
        int st = in_child(grow_with_one_size, arg);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "blocks of %u bytes: child status 0x%x (signal %d)", size, st,
                  WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    }
}

/* malloc_stats is not a cancellation point, as glibc's is not
 * (tst-malloc-stats-cancellation): a thread with a cancellation pending
 * prints the whole report and is cancelled at its next cancellation
 * point. It wrote with write(), which acted on the cancellation before
 * one byte was out. */
static pthread_barrier_t sc_gate;

static void *stats_with_cancel_pending(void *unused)
{
    (void)unused;
    pthread_barrier_wait(&sc_gate);
    malloc_stats();
    pthread_testcancel();
    return NULL;
}

Test(defects, malloc_stats_with_cancellation_pending, .timeout = 60)
{
    char path[] = "/tmp/tlmalloc-test-stats-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    int saved = dup(2);
    dup2(fd, 2);
    pthread_barrier_init(&sc_gate, NULL, 2);
    pthread_t t;
    void *ret = NULL;
    bool made = pthread_create(&t, NULL, stats_with_cancel_pending, NULL) == 0;
    if (made) {
        pthread_cancel(t);
        pthread_barrier_wait(&sc_gate);
        pthread_join(t, &ret);
    }
    dup2(saved, 2);
    close(saved);
    cr_assert(made);
    size_t len;
    char *out = read_back(fd, &len);
    cr_assert_eq(ret, PTHREAD_CANCELED, "the thread was not cancelled");
    cr_assert_not_null(strstr(out, "max mmap bytes"),
                       "malloc_stats was cut short by the pending cancellation:\n%s", out);
    free(out);
}

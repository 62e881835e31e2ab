/* t_defects.c - regression tests for defects found from outside: lock
 * ownership and fork from a signal handler, double frees of blocks parked
 * on a transfer stack, frees into span tails and uncarved objects, and the
 * prefixed library's thread key and dlclose. Each test failed before its
 * fix. */
#include <criterion/criterion.h>

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
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = hf_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
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
Test(defects, fork_in_handler_of_malloc_loop, .timeout = 150) { fork_from_handler(1, 600); }

/* Another thread holds a lock the handler's fork needs, and may itself be
 * waiting for one the interrupted frame holds. */
Test(defects, fork_in_handler_with_second_allocating_thread, .timeout = 150)
{
    fork_from_handler(2, 600);
}

/* ---- heap errors that were accepted -------------------------------------
 * Each scenario runs in a forked child whose stderr comes back through a
 * pipe: the child must die of SIGABRT with a report naming the pointer. */
struct report {
    int status;
    char text[4096];
};

static struct report run_bad_free(void (*scenario)(void *), void *arg)
{
    struct report r = {0};
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        scenario(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (len < sizeof r.text - 1 && (n = read(fds[0], r.text + len, sizeof r.text - 1 - len)) > 0)
        len += (size_t)n;
    r.text[len] = 0;
    close(fds[0]);
    cr_assert_eq(waitpid(pid, &r.status, 0), pid);
    return r;
}

static void assert_reported(const struct report *r, const char *what, const void *p)
{
    char ptr[32];
    snprintf(ptr, sizeof ptr, "%p", p);
    cr_assert(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT,
              "no abort for %s of %s; status 0x%x; stderr: %s", what, ptr, r->status, r->text);
    cr_assert(strstr(r->text, what) && strstr(r->text, ptr), "report does not name %s and %s: %s",
              what, ptr, r->text);
}

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

static void double_free_of_batch_head(void *out)
{
    static void *blocks[33];
    for (int i = 0; i < 33; i++)
        blocks[i] = malloc(48);
    *(void **)out = blocks[31];
    pthread_t t;
    pthread_create(&t, NULL, free_all_then_head_again, blocks);
    pthread_join(t, NULL);
    /* Unreported, the block would now be handed out twice. */
    void *a = malloc(48), *b = malloc(48);
    fprintf(stderr, "continued: %p %p\n", a, b);
}

Test(defects, double_free_of_transfer_batch_head_is_reported, .timeout = 60)
{
    void *p = NULL;
    struct report r = run_bad_free(double_free_of_batch_head, &p);
    char *at = strstr(r.text, "double free of ");
    cr_assert(at, "no double-free report; status 0x%x; stderr: %s", r.status, r.text);
    void *named = NULL;
    sscanf(at, "double free of %p", &named);
    cr_assert(named != NULL);
    assert_reported(&r, "double free", named);
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
    void *tail = NULL;
    char *at = strstr(r.text, "tail ");
    cr_assert(at, "scenario did not start: %s", r.text);
    sscanf(at, "tail %p", &tail);
    assert_reported(&r, "invalid pointer", tail);
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
    void *never = NULL;
    char *at = strstr(r.text, "never ");
    cr_assert(at, "scenario did not start: %s", r.text);
    sscanf(at, "never %p", &never);
    assert_reported(&r, "invalid pointer", never);
}

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

/* workloads.h - multi-threaded and fork workloads, shared by the Criterion
 * tests (t_threads.c, t_fork.c), which use the malloc family, and by the
 * sanitizer programs (san_tsan.c, san_asan.c), which define W_MALLOC and
 * friends to the tl_ functions of the prefixed build.
 *
 * Every workload returns the number of errors it found and leaves a
 * description of the first one in w_first_error. */
#ifndef TL_TESTS_WORKLOADS_H
#define TL_TESTS_WORKLOADS_H

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include "common.h"

#ifndef W_MALLOC
#define W_MALLOC malloc
#define W_FREE free
#define W_CALLOC calloc
#define W_REALLOC realloc
#define W_MEMALIGN memalign
#define W_USABLE malloc_usable_size
#endif

/* Workload entry points: not every including file uses all of them. */
#define W_FN static __attribute__((unused))

static atomic_long w_errors;
static char w_first_error[512];
static pthread_mutex_t w_err_mu = PTHREAD_MUTEX_INITIALIZER;

static void w_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void w_fail(const char *fmt, ...)
{
    if (atomic_fetch_add(&w_errors, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        pthread_mutex_lock(&w_err_mu);
        vsnprintf(w_first_error, sizeof w_first_error, fmt, ap);
        pthread_mutex_unlock(&w_err_mu);
        va_end(ap);
    }
}

static void w_reset(void)
{
    atomic_store(&w_errors, 0);
    w_first_error[0] = 0;
}

/* ---- blocks that travel between threads ------------------------------
 * The block is its own queue node: a header with the link, the size and
 * the seed, then the pattern over the rest of the block. */
struct wblock {
    struct wblock *next;
    size_t size;
    uint64_t seed;
    uint64_t check; /* size ^ seed ^ constant: detects a damaged header */
};

#define WB_HDR sizeof(struct wblock)
#define WB_MAGIC 0xC0FFEE1234ABCDEFull

static size_t w_pick_size(rng_t *r)
{
    uint64_t k = rng_next(r) % 1024;
    if (k < 900)
        return rng_range(r, WB_HDR, 1024);
    if (k < 1010)
        return rng_range(r, 1025, 16 * KiB);
    if (k < 1023)
        return rng_range(r, 16 * KiB, 256 * KiB);
    return rng_range(r, 256 * KiB, 2 * MiB);
}

static struct wblock *w_make(rng_t *r, uint64_t seed)
{
    size_t n = w_pick_size(r);
    struct wblock *b;
    unsigned kind = (unsigned)(rng_next(r) % 16);
    if (kind == 0)
        b = W_CALLOC(1, n);
    else if (kind == 1)
        b = W_MEMALIGN((size_t)64 << (rng_next(r) % 6), n);
    else
        b = W_MALLOC(n);
    if (!b) {
        w_fail("allocation of %zu bytes failed", n);
        return NULL;
    }
    if (((uintptr_t)b & 15) != 0)
        w_fail("block %p of %zu bytes is not 16-byte aligned", (void *)b, n);
    b->next = NULL;
    b->size = n;
    b->seed = seed;
    b->check = n ^ seed ^ WB_MAGIC;
    fill_pattern((unsigned char *)b + WB_HDR, n - WB_HDR, seed);
    return b;
}

/* Checks and frees a block; returns 0 if it was intact. */
static int w_check_free(struct wblock *b)
{
    int bad = 0;
    if (b->check != (b->size ^ b->seed ^ WB_MAGIC)) {
        w_fail("block %p: header damaged", (void *)b);
        return 1; /* do not free: the size is unknown */
    }
    size_t off = check_pattern((unsigned char *)b + WB_HDR, b->size - WB_HDR, b->seed);
    if (off != SIZE_MAX) {
        w_fail("block %p (%zu bytes, seed %llu) corrupted at byte %zu on the freeing thread",
               (void *)b, b->size, (unsigned long long)b->seed, off + WB_HDR);
        bad = 1;
    }
    if (W_USABLE(b) < b->size) {
        w_fail("block %p: usable size %zu < %zu", (void *)b, (size_t)W_USABLE(b), b->size);
        bad = 1;
    }
    W_FREE(b);
    return bad;
}

/* A locked queue of blocks, bounded by cap (0: unbounded). */
struct wqueue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct wblock *head, *tail;
    size_t count, cap;
    int closed;
};

static void wq_init(struct wqueue *q, size_t cap)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->head = q->tail = NULL;
    q->count = 0;
    q->cap = cap;
    q->closed = 0;
}

static void wq_destroy(struct wqueue *q)
{
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

/* Returns 1 if pushed, 0 if the queue is full. */
static int wq_try_push(struct wqueue *q, struct wblock *b)
{
    pthread_mutex_lock(&q->mu);
    if (q->cap && q->count >= q->cap) {
        pthread_mutex_unlock(&q->mu);
        return 0;
    }
    b->next = NULL;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->count++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 1;
}

/* Takes the whole content of the queue. With wait_ms > 0 it waits that
 * long for something to arrive (or for the queue to be closed). */
static struct wblock *wq_take_all(struct wqueue *q, int wait_ms)
{
    pthread_mutex_lock(&q->mu);
    if (!q->head && wait_ms > 0 && !q->closed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)wait_ms * 1000000L;
        while (ts.tv_nsec >= 1000000000L) {
            ts.tv_nsec -= 1000000000L;
            ts.tv_sec++;
        }
        pthread_cond_timedwait(&q->cv, &q->mu, &ts);
    }
    struct wblock *b = q->head;
    q->head = q->tail = NULL;
    q->count = 0;
    pthread_mutex_unlock(&q->mu);
    return b;
}

static size_t w_drain_list(struct wblock *b)
{
    size_t n = 0;
    while (b) {
        struct wblock *next = b->next;
        w_check_free(b);
        b = next;
        n++;
    }
    return n;
}

/* ---- ring: thread t allocates and sends to thread t+1, which checks and
 * frees. Bounded queues; a thread whose target is full drains its own
 * queue meanwhile, which keeps the ring free of deadlock. */
struct ring_ctx {
    struct wqueue *q;
    int nthreads;
    long per_thread;
};

struct ring_arg {
    struct ring_ctx *ctx;
    int t;
};

static void *ring_thread(void *argp)
{
    struct ring_arg *a = argp;
    struct ring_ctx *c = a->ctx;
    struct wqueue *own = &c->q[a->t], *target = &c->q[(a->t + 1) % c->nthreads];
    rng_t r = {(uint64_t)a->t * 7919 + 1};
    long received = 0;
    for (long i = 0; i < c->per_thread; i++) {
        struct wblock *b = w_make(&r, ((uint64_t)a->t << 40) | (uint64_t)i);
        if (!b)
            return NULL;
        while (!wq_try_push(target, b)) {
            size_t got = w_drain_list(wq_take_all(own, 1));
            received += (long)got;
        }
        if ((i & 7) == 0)
            received += (long)w_drain_list(wq_take_all(own, 0));
    }
    while (received < c->per_thread)
        received += (long)w_drain_list(wq_take_all(own, 20));
    return NULL;
}

W_FN long w_ring(int nthreads, long total_blocks)
{
    struct ring_ctx c;
    c.nthreads = nthreads;
    c.per_thread = total_blocks / nthreads;
    c.q = calloc((size_t)nthreads, sizeof *c.q);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    struct ring_arg *args = calloc((size_t)nthreads, sizeof *args);
    if (!c.q || !th || !args) {
        w_fail("out of memory for the ring bookkeeping");
        return atomic_load(&w_errors);
    }
    for (int t = 0; t < nthreads; t++)
        wq_init(&c.q[t], 64);
    for (int t = 0; t < nthreads; t++) {
        args[t].ctx = &c;
        args[t].t = t;
        if (pthread_create(&th[t], NULL, ring_thread, &args[t]) != 0)
            w_fail("pthread_create failed for ring thread %d", t);
    }
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < nthreads; t++) {
        if (c.q[t].head)
            w_fail("ring queue %d not empty at the end", t);
        wq_destroy(&c.q[t]);
    }
    free(c.q);
    free(th);
    free(args);
    return atomic_load(&w_errors);
}

/* ---- many producers, one consumer (the calling thread) ----------------- */
struct m2o_arg {
    struct wqueue *q;
    int t;
    long count;
};

static void *m2o_producer(void *argp)
{
    struct m2o_arg *a = argp;
    rng_t r = {(uint64_t)a->t * 104729 + 3};
    for (long i = 0; i < a->count; i++) {
        struct wblock *b = w_make(&r, ((uint64_t)(a->t + 1000) << 40) | (uint64_t)i);
        if (!b)
            return NULL;
        while (!wq_try_push(a->q, b))
            sched_yield();
    }
    return NULL;
}

W_FN long w_many_to_one(int producers, long per_producer)
{
    struct wqueue q;
    wq_init(&q, 4096);
    pthread_t th[64];
    struct m2o_arg args[64];
    if (producers > 64)
        producers = 64;
    for (int t = 0; t < producers; t++) {
        args[t] = (struct m2o_arg){&q, t, per_producer};
        pthread_create(&th[t], NULL, m2o_producer, &args[t]);
    }
    long want = producers * per_producer, got = 0;
    time_t start = time(NULL);
    while (got < want && time(NULL) - start < 600)
        got += (long)w_drain_list(wq_take_all(&q, 10));
    for (int t = 0; t < producers; t++)
        pthread_join(th[t], NULL);
    got += (long)w_drain_list(wq_take_all(&q, 0));
    if (got != want)
        w_fail("many-to-one: received %ld blocks of %ld", got, want);
    wq_destroy(&q);
    return atomic_load(&w_errors);
}

/* ---- one producer (the calling thread), many consumers ----------------- */
struct o2m_arg {
    struct wqueue *q;
    atomic_long *freed;
};

static void *o2m_consumer(void *argp)
{
    struct o2m_arg *a = argp;
    for (;;) {
        struct wblock *b = wq_take_all(a->q, 10);
        if (!b) {
            pthread_mutex_lock(&a->q->mu);
            int closed = a->q->closed && !a->q->head;
            pthread_mutex_unlock(&a->q->mu);
            if (closed)
                return NULL;
            continue;
        }
        atomic_fetch_add(a->freed, (long)w_drain_list(b));
    }
}

W_FN long w_one_to_many(int consumers, long blocks)
{
    enum { MAXC = 64 };
    struct wqueue q[MAXC];
    pthread_t th[MAXC];
    struct o2m_arg args[MAXC];
    atomic_long freed = 0;
    if (consumers > MAXC)
        consumers = MAXC;
    for (int t = 0; t < consumers; t++) {
        wq_init(&q[t], 256);
        args[t] = (struct o2m_arg){&q[t], &freed};
        pthread_create(&th[t], NULL, o2m_consumer, &args[t]);
    }
    rng_t r = {99};
    for (long i = 0; i < blocks; i++) {
        struct wblock *b = w_make(&r, ((uint64_t)7 << 56) | (uint64_t)i);
        if (!b)
            break;
        while (!wq_try_push(&q[i % consumers], b))
            sched_yield();
    }
    for (int t = 0; t < consumers; t++) {
        pthread_mutex_lock(&q[t].mu);
        q[t].closed = 1;
        pthread_cond_broadcast(&q[t].cv);
        pthread_mutex_unlock(&q[t].mu);
    }
    for (int t = 0; t < consumers; t++) {
        pthread_join(th[t], NULL);
        wq_destroy(&q[t]);
    }
    if (atomic_load(&freed) != blocks)
        w_fail("one-to-many: %ld blocks freed of %ld", atomic_load(&freed), blocks);
    return atomic_load(&w_errors);
}

/* ---- thread churn ------------------------------------------------------
 * Many short-lived threads, each allocating and freeing; some leave blocks
 * for the main thread to free, some are detached, some end with
 * pthread_exit and some are cancelled. */
#define CHURN_LEFT_MAX 16

struct churn_arg {
    int index;
    int mode; /* 0 normal, 1 leave blocks, 2 pthread_exit, 3 cancelled, 4 detached */
    atomic_int ready;
    struct wblock *left[CHURN_LEFT_MAX];
    int nleft;
};

static atomic_long churn_detached_done;

static void churn_work(struct churn_arg *a, rng_t *r)
{
    struct wblock *held[48];
    int n = 0;
    for (int i = 0; i < 48; i++) {
        held[n] = w_make(r, ((uint64_t)a->index << 20) | (uint64_t)i);
        if (held[n])
            n++;
    }
    /* A few reallocs: exercises the per-thread cache with resizes too. */
    for (int i = 0; i < 4; i++) {
        unsigned char *p = W_MALLOC(100);
        if (!p) {
            w_fail("malloc in churn thread failed");
            break;
        }
        fill_pattern(p, 100, (uint64_t)i);
        unsigned char *q = W_REALLOC(p, 5000 + (size_t)i * 1000);
        if (!q || check_pattern(q, 100, (uint64_t)i) != SIZE_MAX)
            w_fail("realloc in churn thread lost data");
        W_FREE(q);
    }
    for (int i = 0; i < n; i++) {
        if (a->mode == 1 && a->nleft < CHURN_LEFT_MAX && (i % 3) == 0)
            a->left[a->nleft++] = held[i];
        else
            w_check_free(held[i]);
    }
}

static void churn_cleanup(void *p)
{
    struct wblock **held = p;
    for (int i = 0; i < 8; i++)
        if (held[i])
            w_check_free(held[i]);
}

static void *churn_thread(void *argp)
{
    struct churn_arg *a = argp;
    rng_t r = {(uint64_t)a->index * 31 + 17};
    if (a->mode == 3) {
        struct wblock *held[8] = {0};
        pthread_cleanup_push(churn_cleanup, held);
        for (int i = 0; i < 8; i++)
            held[i] = w_make(&r, ((uint64_t)a->index << 20) | (uint64_t)i);
        atomic_store(&a->ready, 1);
        for (;;) {
            pthread_testcancel();
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        pthread_cleanup_pop(1);
        return NULL;
    }
    churn_work(a, &r);
    if (a->mode == 2)
        pthread_exit((void *)(intptr_t)(a->index + 1));
    if (a->mode == 4) {
        free(a); /* detached threads own their argument */
        atomic_fetch_add(&churn_detached_done, 1);
    }
    return NULL;
}

struct churn_result {
    size_t rss_after_warmup, rss_after_all;
};

/* Runs `threads` threads in waves of `wave`; measures RSS after `warmup`
 * threads and at the end. with_cancel = 0 leaves out the cancelled ones. */
W_FN long w_churn(int threads, int wave, int warmup, int with_cancel, struct churn_result *res)
{
    struct churn_arg *args = calloc((size_t)wave, sizeof *args);
    pthread_t *th = calloc((size_t)wave, sizeof *th);
    long detached = 0;
    atomic_store(&churn_detached_done, 0);
    res->rss_after_warmup = res->rss_after_all = 0;
    if (!args || !th) {
        w_fail("out of memory for churn bookkeeping");
        return atomic_load(&w_errors);
    }
    for (int base = 0; base < threads; base += wave) {
        int count = threads - base < wave ? threads - base : wave;
        int joinable[1024];
        for (int k = 0; k < count; k++) {
            int idx = base + k;
            int mode = idx % 10 < 5 ? 0 : idx % 10 - 4; /* 1..5 */
            if (mode == 5)
                mode = 0;
            if (mode == 3 && !with_cancel)
                mode = 0;
            joinable[k] = 0;
            if (mode == 4) {
                struct churn_arg *a = calloc(1, sizeof *a);
                if (!a) {
                    w_fail("calloc failed");
                    continue;
                }
                a->index = idx;
                a->mode = 4;
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                pthread_t t;
                if (pthread_create(&t, &attr, churn_thread, a) != 0) {
                    w_fail("pthread_create (detached) failed at thread %d", idx);
                    free(a);
                } else {
                    detached++;
                }
                pthread_attr_destroy(&attr);
                continue;
            }
            memset(&args[k], 0, sizeof args[k]);
            args[k].index = idx;
            args[k].mode = mode;
            if (pthread_create(&th[k], NULL, churn_thread, &args[k]) != 0) {
                w_fail("pthread_create failed at thread %d", idx);
                continue;
            }
            joinable[k] = 1;
        }
        for (int k = 0; k < count; k++) {
            if (!joinable[k])
                continue;
            if (args[k].mode == 3) {
                while (!atomic_load(&args[k].ready))
                    sched_yield();
                pthread_cancel(th[k]);
            }
            void *ret = NULL;
            pthread_join(th[k], &ret);
            if (args[k].mode == 3 && ret != PTHREAD_CANCELED)
                w_fail("thread %d was not cancelled", args[k].index);
            if (args[k].mode == 2 && ret != (void *)(intptr_t)(args[k].index + 1))
                w_fail("thread %d: pthread_exit value lost", args[k].index);
            for (int i = 0; i < args[k].nleft; i++)
                w_check_free(args[k].left[i]);
        }
        if (!res->rss_after_warmup && base + count >= warmup) {
            while (atomic_load(&churn_detached_done) < detached)
                sched_yield();
            res->rss_after_warmup = rss_bytes();
        }
    }
    time_t start = time(NULL);
    while (atomic_load(&churn_detached_done) < detached && time(NULL) - start < 120)
        sched_yield();
    if (atomic_load(&churn_detached_done) != detached)
        w_fail("only %ld of %ld detached threads finished", atomic_load(&churn_detached_done),
               detached);
    res->rss_after_all = rss_bytes();
    free(args);
    free(th);
    return atomic_load(&w_errors);
}

/* ---- fork while other threads allocate ---------------------------------
 * Worker threads allocate and free in a loop; the caller forks `forks`
 * times. Each child checks a block made before the fork, allocates and
 * frees a lot (optionally from a new thread too) and exits with 0 when all
 * went well; alarm(20) turns a deadlock in the child into a failure. */
static atomic_int fork_stop;

static void *fork_worker(void *argp)
{
    rng_t r = {(uint64_t)(intptr_t)argp};
    struct wblock *held[64] = {0};
    unsigned long n = 0;
    while (!atomic_load(&fork_stop)) {
        unsigned i = (unsigned)(rng_next(&r) % 64);
        if (held[i])
            w_check_free(held[i]);
        held[i] = w_make(&r, n++);
    }
    for (int i = 0; i < 64; i++)
        if (held[i])
            w_check_free(held[i]);
    return NULL;
}

static void *fork_child_thread(void *argp)
{
    rng_t r = {5};
    (void)argp;
    for (int i = 0; i < 2000; i++) {
        struct wblock *b = w_make(&r, (uint64_t)i);
        if (!b || w_check_free(b))
            return (void *)1;
    }
    return NULL;
}

static int fork_child_body(struct wblock *pre, int child_threads)
{
    rng_t r = {77};
    if (w_check_free(pre))
        _exit(3);
    struct wblock *held[128] = {0};
    for (int i = 0; i < 5000; i++) {
        unsigned k = (unsigned)(rng_next(&r) % 128);
        if (held[k] && w_check_free(held[k]))
            _exit(4);
        held[k] = w_make(&r, (uint64_t)i);
        if (!held[k])
            _exit(5);
    }
    for (int k = 0; k < 128; k++)
        if (held[k] && w_check_free(held[k]))
            _exit(4);
    if (child_threads) {
        pthread_t t;
        void *ret = (void *)1;
        if (pthread_create(&t, NULL, fork_child_thread, NULL) != 0)
            _exit(6);
        pthread_join(t, &ret);
        if (ret != NULL)
            _exit(7);
    }
    return 0;
}

W_FN long w_fork_under_load(int workers, int forks, int child_threads)
{
    pthread_t th[16];
    if (workers > 16)
        workers = 16;
    atomic_store(&fork_stop, 0);
    for (int t = 0; t < workers; t++)
        pthread_create(&th[t], NULL, fork_worker, (void *)(intptr_t)(t + 1));
    rng_t r = {3};
    for (int f = 0; f < forks; f++) {
        /* Let the workers get into their loops between forks. */
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        struct wblock *pre = w_make(&r, (uint64_t)f);
        if (!pre)
            break;
        pid_t pid = fork();
        if (pid < 0) {
            w_fail("fork %d failed: %s", f, strerror(errno));
            w_check_free(pre);
            break;
        }
        if (pid == 0) {
            alarm(20);
            fork_child_body(pre, child_threads);
            _exit(0);
        }
        w_check_free(pre);
        int st = 0;
        if (waitpid(pid, &st, 0) != pid)
            w_fail("waitpid failed for fork %d", f);
        else if (WIFSIGNALED(st))
            w_fail("child of fork %d killed by signal %d%s", f, WTERMSIG(st),
                   WTERMSIG(st) == SIGALRM ? " (deadlock: alarm fired)" : "");
        else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            w_fail("child of fork %d exited with status %d", f, WEXITSTATUS(st));
    }
    atomic_store(&fork_stop, 1);
    for (int t = 0; t < workers; t++)
        pthread_join(th[t], NULL);
    return atomic_load(&w_errors);
}

/* ---- fork from a signal handler ----------------------------------------
 * A sender thread signals the calling thread while it allocates and frees
 * in a loop; the handler forks. What is promised is what POSIX and glibc
 * promise: fork never deadlocks, and the child may allocate once the
 * handler has returned (inside the handler, only async-signal-safe calls:
 * the interrupted malloc may hold a lock until the handler returns). So
 * the child's handler only raises a flag; the child's loop, back outside
 * the handler, allocates and frees a little and exits. The sender waits
 * for each handler to finish before the next signal, so a fork slower than
 * the signal interval (a loaded machine) cannot keep the parent in its
 * handler for good. */
static atomic_int sf_forked, sf_fork_failed, sf_handled;
static volatile sig_atomic_t sf_in_child;
static atomic_int sf_stop;
static pthread_t sf_target_thread;

static void sf_handler(int sig)
{
    int saved = errno;
    (void)sig;
    pid_t pid = fork();
    if (pid == 0)
        sf_in_child = 1;
    else if (pid > 0)
        atomic_fetch_add(&sf_forked, 1);
    else
        atomic_fetch_add(&sf_fork_failed, 1);
    atomic_fetch_add(&sf_handled, 1);
    errno = saved;
}

/* In the child, outside the handler. */
static void sf_child_work(void)
{
    signal(SIGUSR2, SIG_IGN);
    alarm(20);
    for (int i = 0; i < 1000; i++) {
        size_t n = (size_t)(i * 37 % 5000) + 1;
        unsigned char *p = W_MALLOC(n);
        if (!p)
            _exit(2);
        fill_pattern(p, n, (uint64_t)i);
        if (check_pattern(p, n, (uint64_t)i) != SIZE_MAX)
            _exit(3);
        W_FREE(p);
    }
    _exit(0);
}

static void *sf_sender(void *arg)
{
    long interval_us = (long)(intptr_t)arg;
    struct timespec gap = {0, interval_us * 1000};
    while (!atomic_load(&sf_stop)) {
        int before = atomic_load(&sf_handled);
        pthread_kill(sf_target_thread, SIGUSR2);
        /* Wait for the handler (bounded: the signal may be merged with a
         * pending one). */
        for (int i = 0; i < 100000 && atomic_load(&sf_handled) == before && !atomic_load(&sf_stop);
             i++)
            sched_yield();
        nanosleep(&gap, NULL);
    }
    return NULL;
}

static void sf_check_status(int st, long *bad_children)
{
    if (WIFSIGNALED(st) || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if ((*bad_children)++ == 0) {
            if (WIFSIGNALED(st))
                w_fail("a child forked in the signal handler was killed by signal %d%s",
                       WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (deadlock: alarm fired)" : "");
            else
                w_fail("a child forked in the signal handler exited with status %d",
                       WEXITSTATUS(st));
        } else {
            atomic_fetch_add(&w_errors, 1);
        }
    }
}

static void sf_reap(long *reaped, long *bad_children, int options)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, options)) > 0) {
        (*reaped)++;
        sf_check_status(st, bad_children);
        if (options == 0 && *reaped >= atomic_load(&sf_forked))
            break;
    }
}

W_FN long w_sigfork(int forks, long interval_us)
{
    set_handler(SIGUSR2, sf_handler);
    atomic_store(&sf_forked, 0);
    atomic_store(&sf_fork_failed, 0);
    atomic_store(&sf_stop, 0);
    sf_target_thread = pthread_self();
    pthread_t sender;
    if (pthread_create(&sender, NULL, sf_sender, (void *)(intptr_t)interval_us) != 0) {
        w_fail("cannot start the signal sender");
        return atomic_load(&w_errors);
    }

    rng_t r = {1234};
    void *held[32] = {0};
    long reaped = 0, bad_children = 0;
    time_t start = time(NULL);
    while (atomic_load(&sf_forked) + atomic_load(&sf_fork_failed) < forks &&
           time(NULL) - start < 300) {
        for (int i = 0; i < 200; i++) {
            unsigned k = (unsigned)(rng_next(&r) % 32);
            W_FREE(held[k]);
            size_t n =
                rng_next(&r) % 8 == 0 ? rng_range(&r, 1025, 300 * KiB) : rng_range(&r, 1, 1024);
            held[k] = (rng_next(&r) & 1) ? W_MALLOC(n) : W_CALLOC(1, n);
            if (sf_in_child)
                sf_child_work();
            if (!held[k])
                w_fail("allocation in the interrupted loop failed");
        }
        sf_reap(&reaped, &bad_children, WNOHANG);
    }
    atomic_store(&sf_stop, 1);
    pthread_join(sender, NULL);
    signal(SIGUSR2, SIG_DFL);
    if (sf_in_child) /* forked by a signal that came during the join */
        sf_child_work();
    sf_reap(&reaped, &bad_children, 0);
    for (int k = 0; k < 32; k++)
        W_FREE(held[k]);
    if (atomic_load(&sf_fork_failed))
        w_fail("%d forks in the signal handler failed", atomic_load(&sf_fork_failed));
    if (atomic_load(&sf_forked) < forks)
        w_fail("only %d of %d forks happened", atomic_load(&sf_forked), forks);
    if (bad_children)
        w_fail("%ld children failed", bad_children);
    return atomic_load(&w_errors);
}

#endif /* TL_TESTS_WORKLOADS_H */

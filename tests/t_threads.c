/* t_threads.c - many threads with cross-thread frees, and thread churn.
 * Every block is checked by the thread that frees it. */
#include <criterion/criterion.h>

#include "workloads.h"

#define RING_TEST(n)                                                                               \
    Test(threads, ring_cross_free_##n##_threads, .timeout = 180)                                   \
    {                                                                                              \
        w_reset();                                                                                 \
        long errs = w_ring(n, 200000);                                                             \
        cr_assert_eq(errs, 0, "%ld errors, first: %s", errs, w_first_error);                       \
    }

RING_TEST(8)
RING_TEST(16)
RING_TEST(32)
RING_TEST(64)

Test(threads, many_producers_one_consumer, .timeout = 180)
{
    w_reset();
    long errs = w_many_to_one(16, 10000);
    cr_assert_eq(errs, 0, "%ld errors, first: %s", errs, w_first_error);
}

Test(threads, one_producer_many_consumers, .timeout = 180)
{
    w_reset();
    long errs = w_one_to_many(16, 150000);
    cr_assert_eq(errs, 0, "%ld errors, first: %s", errs, w_first_error);
}

/* 10,000 short-lived threads: normal, leaving blocks for main to free,
 * pthread_exit, cancelled, detached. The thread caches of dead threads
 * must not pile up: RSS at the end may not exceed RSS after the first
 * 500 threads by more than 64 MiB. */
Test(threads, churn_10000_threads, .timeout = 240)
{
    w_reset();
    struct churn_result res;
    long errs = w_churn(10000, 16, 500, 1, &res);
    cr_assert_eq(errs, 0, "%ld errors, first: %s", errs, w_first_error);
    cr_assert_gt(res.rss_after_warmup, 0);
    cr_log_info("RSS after 500 threads: %zu KiB, after 10000: %zu KiB", res.rss_after_warmup / 1024,
                res.rss_after_all / 1024);
    cr_assert_leq(res.rss_after_all, res.rss_after_warmup + 64 * MiB,
                  "RSS grew from %zu KiB after 500 threads to %zu KiB after 10000",
                  res.rss_after_warmup / 1024, res.rss_after_all / 1024);
}

/* Threads that allocate a lot and exit while holding nothing: the memory
 * they cached must be reusable by later threads (RSS stays bounded when
 * every thread touches fresh blocks). */
struct big_arg {
    int index;
};

static void *big_thread(void *argp)
{
    struct big_arg *a = argp;
    void *p[256];
    for (int i = 0; i < 256; i++) {
        p[i] = malloc(opq((size_t)(i % 64 + 1) * 256));
        if (!p[i]) {
            w_fail("malloc failed in thread %d", a->index);
            return NULL;
        }
        memset(p[i], a->index & 0xff, (size_t)(i % 64 + 1) * 256);
    }
    for (int i = 0; i < 256; i++)
        free(p[i]);
    return NULL;
}

Test(threads, exiting_threads_release_caches, .timeout = 180)
{
    w_reset();
    size_t rss_warm = 0;
    for (int i = 0; i < 3000; i++) {
        pthread_t t;
        struct big_arg a = {i};
        cr_assert_eq(pthread_create(&t, NULL, big_thread, &a), 0);
        pthread_join(t, NULL);
        if (i == 199)
            rss_warm = rss_bytes();
    }
    size_t rss_end = rss_bytes();
    cr_assert_eq(atomic_load(&w_errors), 0, "%s", w_first_error);
    cr_assert_leq(rss_end, rss_warm + 64 * MiB,
                  "RSS grew from %zu KiB to %zu KiB over 2800 threads", rss_warm / 1024,
                  rss_end / 1024);
}

/* san_tsan.c - ThreadSanitizer program: tl_malloc/tl_free from many
 * threads with cross-thread frees, thread churn, fork under load, and the
 * statistics functions running next to allocating threads. Built by
 * run.sh from the allocator sources with -fsanitize=thread. */
#include "san_common.h"

static atomic_int stats_stop;

static void *stats_thread(void *arg)
{
    int fd = open("/dev/null", O_WRONLY);
    (void)arg;
    long n = 0;
    while (!atomic_load(&stats_stop)) {
        size_t v = tl_stat("in_use_bytes");
        size_t m = tl_stat("mapped_bytes");
        if (v == (size_t)-1 || m == (size_t)-1)
            w_fail("tl_stat returned (size_t)-1 for a documented name");
        if ((n & 15) == 0)
            tl_stats_print(fd, (int)(n & 16));
        if ((n & 63) == 0) {
            int rc = tl_malloc_trim(0);
            if (rc != 0 && rc != 1)
                w_fail("tl_malloc_trim returned %d", rc);
        }
        n++;
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
    close(fd);
    return NULL;
}

static long ring_with_stats(int n, long blocks)
{
    pthread_t t;
    atomic_store(&stats_stop, 0);
    pthread_create(&t, NULL, stats_thread, NULL);
    long e = w_ring(n, blocks);
    atomic_store(&stats_stop, 1);
    pthread_join(t, NULL);
    return e + atomic_load(&w_errors) - e;
}

static void *flush_worker(void *arg)
{
    rng_t r = {(uint64_t)(intptr_t)arg};
    for (int round = 0; round < 300; round++) {
        struct wblock *b[32];
        for (int i = 0; i < 32; i++)
            b[i] = w_make(&r, (uint64_t)i);
        if (round & 1)
            tl_thread_flush();
        for (int i = 0; i < 32; i++)
            if (b[i])
                w_check_free(b[i]);
        tl_thread_flush();
    }
    return NULL;
}

static long flush_threads(int n)
{
    pthread_t t[16];
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, flush_worker, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    return atomic_load(&w_errors);
}

int main(void)
{
    struct churn_result res;
    SAN_CHECK("tsan_ring_8_threads", w_ring(8, 20000));
    SAN_CHECK("tsan_ring_16_threads", w_ring(16, 20000));
    SAN_CHECK("tsan_ring_32_threads", w_ring(32, 20000));
    SAN_CHECK("tsan_ring_64_threads", w_ring(64, 20000));
    SAN_CHECK("tsan_many_producers_one_consumer", w_many_to_one(8, 2000));
    SAN_CHECK("tsan_one_producer_many_consumers", w_one_to_many(8, 15000));
    SAN_CHECK("tsan_ring_with_stats_and_trim", ring_with_stats(8, 15000));
    SAN_CHECK("tsan_thread_flush", flush_threads(8));
    SAN_CHECK("tsan_thread_churn", w_churn(400, 8, 100, 0, &res));
    SAN_CHECK("tsan_fork_under_load", w_fork_under_load(4, 10, 0));
    return san_finish("tsan");
}

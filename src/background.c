/* background.c - the optional background thread (background_thread=1):
 * while the program is idle, nothing else runs the page heap's decay, so
 * this thread wakes every decay_ms/4 and gives back the pages that have
 * been free for longer than decay_ms. Off by default: most programs call
 * the allocator often enough to decay on their own.
 *
 * Started from the library's constructor (libc is ready by then), never
 * from inside a malloc call. Not restarted in a child after fork.
 */
#include "internal.h"

#include <pthread.h>
#include <time.h>

static void *background_main(void *arg)
{
    (void)arg;
    uint64_t period = tl_conf.decay_ms / 4;
    if (period < 10)
        period = 10;
    struct timespec ts = {(time_t)(period / 1000), (long)(period % 1000) * 1000000L};
    for (;;) {
        nanosleep(&ts, NULL);
        tl_lock_acquire(&tl_page_heap_lock);
        tl_page_heap_maybe_decay();
        tl_lock_release(&tl_page_heap_lock);
    }
    return NULL;
}

void tl_background_start(void)
{
    if (!tl_conf.background)
        return;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 << 10);
    if (pthread_create(&t, &attr, background_main, NULL) != 0)
        tl_warn("could not start the background thread", NULL);
    pthread_attr_destroy(&attr);
}

/* san_common.h - a tiny harness for the sanitizer programs (san_tsan.c,
 * san_asan.c). They are built by run.sh from the allocator sources with
 * -DTL_OVERRIDE=0, so tl_ functions are tlmalloc and malloc stays the
 * sanitizer's. Each check prints "PASS name" or "FAIL name: reason". */
#ifndef TL_TESTS_SAN_COMMON_H
#define TL_TESTS_SAN_COMMON_H

#ifndef SAN_USE_SYSTEM_MALLOC
#include "tlmalloc.h"
#define W_MALLOC tl_malloc
#define W_FREE tl_free
#define W_CALLOC tl_calloc
#define W_REALLOC tl_realloc
#define W_MEMALIGN tl_memalign
#define W_USABLE tl_malloc_usable_size
#else
/* Only used to check the harness itself against the system allocator. */
#define tl_malloc malloc
#define tl_free free
#define tl_calloc calloc
#define tl_realloc realloc
#define tl_reallocarray reallocarray
#define tl_memalign memalign
#define tl_aligned_alloc aligned_alloc
#define tl_posix_memalign posix_memalign
#define tl_valloc valloc
#define tl_pvalloc pvalloc
#define tl_malloc_usable_size malloc_usable_size
#define tl_malloc_trim malloc_trim
#define tl_free_sized(p, s) free(p)
#define tl_free_aligned_sized(p, a, s) free(p)
#define tl_thread_flush() ((void)0)
#define tl_stats_print(fd, json) ((void)0)
#define tl_stat(name) ((size_t)1)
#endif

#include "workloads.h"

static int san_passed, san_failed;

static void san_report(const char *name, long errs)
{
    if (errs == 0) {
        printf("PASS %s\n", name);
        san_passed++;
    } else {
        printf("FAIL %s: %ld errors, first: %s\n", name, errs, w_first_error);
        san_failed++;
    }
    fflush(stdout);
}

#define SAN_CHECK(name, expr)                                                                      \
    do {                                                                                           \
        w_reset();                                                                                 \
        long e_ = (expr);                                                                          \
        san_report(name, e_);                                                                      \
    } while (0)

static int san_finish(const char *prog)
{
    printf("%s: %d passed, %d failed\n", prog, san_passed, san_failed);
    return san_failed ? 1 : 0;
}

#endif /* TL_TESTS_SAN_COMMON_H */

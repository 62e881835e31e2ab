/* tlmalloc.h - public interface of tlmalloc, a thread-caching allocator.
 *
 * Two ways to use it:
 *  - libtlmalloc (.so/.a) exports the whole malloc family (malloc, free,
 *    calloc, ...), so LD_PRELOAD=libtlmalloc.so or linking it replaces the
 *    system allocator. The tl_ functions below are exported too.
 *  - libtlmalloc-prefixed (.so/.a) exports only the tl_ functions and leaves
 *    the system allocator alone, for a program that wants to call tlmalloc
 *    explicitly next to malloc.
 * Blocks from tl_ functions are freed with tl_ functions; in libtlmalloc
 * they are the same heap as malloc's.
 */
#ifndef TLMALLOC_H
#define TLMALLOC_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TLMALLOC_VERSION_MAJOR 0
#define TLMALLOC_VERSION_MINOR 1
#define TLMALLOC_VERSION_PATCH 0
#define TLMALLOC_VERSION "0.1.0"

#if defined(__GNUC__)
#define TL_MALLOC_ATTR(...) __attribute__((malloc, warn_unused_result, __VA_ARGS__))
#else
#define TL_MALLOC_ATTR(...)
#endif

void *tl_malloc(size_t size) TL_MALLOC_ATTR(alloc_size(1));
void *tl_calloc(size_t n, size_t size) TL_MALLOC_ATTR(alloc_size(1, 2));
void *tl_realloc(void *ptr, size_t size) __attribute__((warn_unused_result, alloc_size(2)));
void *tl_reallocarray(void *ptr, size_t n, size_t size)
    __attribute__((warn_unused_result, alloc_size(2, 3)));
void tl_free(void *ptr);
void tl_free_sized(void *ptr, size_t size);
void tl_free_aligned_sized(void *ptr, size_t alignment, size_t size);
void *tl_memalign(size_t alignment, size_t size) TL_MALLOC_ATTR(alloc_size(2));
void *tl_aligned_alloc(size_t alignment, size_t size) TL_MALLOC_ATTR(alloc_size(2));
int tl_posix_memalign(void **memptr, size_t alignment, size_t size);
void *tl_valloc(size_t size) TL_MALLOC_ATTR(alloc_size(1));
void *tl_pvalloc(size_t size) TL_MALLOC_ATTR(alloc_size(1));
size_t tl_malloc_usable_size(void *ptr);

/* Gives cached and free memory back to the OS; returns 1 if any was given back. */
int tl_malloc_trim(size_t pad);
/* Flushes the calling thread's cache into the central lists. */
void tl_thread_flush(void);

/* Statistics. tl_stats_print writes a human-readable report (or JSON when
 * json != 0) to the file descriptor fd with write(2); tl_stat returns one
 * figure by name ("in_use_bytes", "mapped_bytes", ...; see tlmalloc(3)),
 * or (size_t)-1 for an unknown name. */
void tl_stats_print(int fd, int json);
size_t tl_stat(const char *name);

/* glibc's malloc_info: the heap as XML on fp (see tlmalloc(3) for what
 * each element holds). options must be 0, else EINVAL is returned. */
int tl_malloc_info(int options, FILE *fp);

/* Reads and changes settings at run time, and runs actions, by name (see
 * tlmalloc(3) for the names and their types). When oldp is not NULL, the
 * current value is copied there and *oldlenp must be its size; when newp
 * is not NULL, newlen must be the size of the new value. Returns 0, or
 * ENOENT for an unknown name, EINVAL for a wrong size or value (*oldlenp
 * is then set to the right size), EPERM for writing a read-only name, or
 * an error of the action. */
int tl_ctl(const char *name, void *oldp, size_t *oldlenp, const void *newp, size_t newlen);

/* The heap profiler (TLMALLOC_CONF=prof=1; see tlmalloc(3)): writes a heap
 * profile in the gperftools text format, which google-pprof reads, to
 * path, or when path is NULL to <prof_prefix>.<pid>.<seq>.heap. Returns 0
 * or an errno value: ENOENT when the process was not started with prof=1,
 * EBUSY while another dump runs, or the error of opening or writing the
 * file. tl_ctl's "prof.active" starts and stops sampling, "prof.dump"
 * dumps. */
int tl_prof_dump(const char *path);

/* Walks the whole heap and checks its invariants (every span, free list,
 * bin and count; the calling thread's cache, not other threads'); writes
 * each problem found to stderr and returns how many. Takes the allocator's
 * locks: slow, for tests and debugging. */
size_t tl_heap_check(void);

#ifdef __cplusplus
}
#endif

#endif /* TLMALLOC_H */

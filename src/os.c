/* os.c - the platform primitives: mappings, time, output. Nothing here
 * allocates; everything is a thin wrapper over a system call. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__thread char tl_self_marker __attribute__((tls_model("initial-exec")));

void *tl_os_map(size_t size)
{
    int saved = errno;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

/* Maps size bytes at hint if that range is free, elsewhere if not. */
void *tl_os_map_hint(void *hint, size_t size)
{
    int saved = errno;
    void *p = mmap(hint, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

/* Maps size bytes aligned to alignment (a power of two >= the kernel page)
 * by mapping more and unmapping the ends. An end that cannot be unmapped
 * (splitting a mapping can hit the kernel's limit on their number) would
 * stay mapped after the block is freed, unaccounted for: the whole mapping
 * goes instead, which never needs a split. */
void *tl_os_map_aligned(size_t size, size_t alignment)
{
    if (alignment <= tl_os_page_size())
        return tl_os_map(size);
    if (size + alignment < size)
        return NULL;
    char *p = tl_os_map(size + alignment);
    if (!p)
        return NULL;
    uintptr_t a = tl_round_up((uintptr_t)p, alignment);
    size_t head = a - (uintptr_t)p, tail = alignment - head;
    if (head && !tl_os_unmap(p, head)) {
        tl_os_unmap(p, size + alignment);
        return NULL;
    }
    if (tail && !tl_os_unmap((char *)a + size, tail)) {
        tl_os_unmap((void *)a, size + tail);
        return NULL;
    }
    return (void *)a;
}

bool tl_os_unmap(void *p, size_t size)
{
    int saved = errno;
    int rc = munmap(p, size);
    errno = saved;
    return rc == 0;
}

/* MADV_DONTNEED fails with EINVAL on locked memory, and so does every
 * other advice that drops pages (MADV_FREE too). Mapping fresh pages over
 * the range with MAP_FIXED would zero it, but under mlockall they are
 * locked and resident at once: no memory comes back, and a failed MAP_FIXED
 * leaves a hole in the heap. So a refusal is reported, not worked around. */
bool tl_os_decommit(void *p, size_t size)
{
    int saved = errno;
    int rc = madvise(p, size, MADV_DONTNEED);
    errno = saved;
    return rc == 0;
}

void *tl_os_remap(void *p, size_t old_size, size_t new_size, int may_move)
{
    int saved = errno;
    void *q = mremap(p, old_size, new_size, may_move ? MREMAP_MAYMOVE : 0);
    errno = saved;
    return q == MAP_FAILED ? NULL : q;
}

uint64_t tl_os_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

size_t tl_os_page_size(void) { return 4096; }

bool tl_os_write(int fd, const char *s, size_t n)
{
    int saved = errno;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        s += w;
        n -= (size_t)w;
    }
    errno = saved;
    return n == 0;
}

/* Reads up to cap-1 bytes of a small file (in /proc) into buf; returns the
 * length or -1. */
long tl_os_read_file(const char *path, char *buf, size_t cap)
{
    int saved = errno;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    long total = -1;
    if (fd >= 0) {
        total = 0;
        while ((size_t)total + 1 < cap) {
            ssize_t r = read(fd, buf + total, cap - 1 - (size_t)total);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            total += r;
        }
        buf[total] = 0;
        close(fd);
    }
    errno = saved;
    return total;
}

int tl_os_getpid(void) { return (int)syscall(SYS_getpid); }

void tl_lock_wait(struct tl_lock *l)
{
    int saved = errno;
    /* Spin briefly: critical sections are short. */
    for (int i = 0; i < 100; i++) {
        int expected = 0;
        if (atomic_compare_exchange_weak_explicit(&l->state, &expected, 1, memory_order_acquire,
                                                  memory_order_relaxed)) {
            errno = saved;
            return;
        }
        tl_cpu_relax();
    }
    while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) != 0)
        syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
    errno = saved;
}

void tl_lock_wake(struct tl_lock *l)
{
    int saved = errno;
    syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

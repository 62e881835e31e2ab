/* os.c - the platform primitives: mappings, time, output. Nothing here
 * allocates; everything is a thin wrapper over a system call. */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void *tli_os_map(size_t size)
{
    int saved = errno;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

/* Maps size bytes at hint if that range is free, elsewhere if not. */
void *tli_os_map_hint(void *hint, size_t size)
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
void *tli_os_map_aligned(size_t size, size_t alignment)
{
    if (alignment <= tli_os_page_size())
        return tli_os_map(size);
    if (size + alignment < size)
        return NULL;
    char *p = tli_os_map(size + alignment);
    if (!p)
        return NULL;
    uintptr_t a = tli_round_up((uintptr_t)p, alignment);
    size_t head = a - (uintptr_t)p, tail = alignment - head;
    if (head && !tli_os_unmap(p, head)) {
        tli_os_unmap(p, size + alignment);
        return NULL;
    }
    if (tail && !tli_os_unmap((char *)a + size, tail)) {
        tli_os_unmap((void *)a, size + tail);
        return NULL;
    }
    return (void *)a;
}

bool tli_os_unmap(void *p, size_t size)
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
bool tli_os_decommit(void *p, size_t size)
{
    int saved = errno;
    int rc = madvise(p, size, MADV_DONTNEED);
    errno = saved;
    return rc == 0;
}

void *tli_os_remap(void *p, size_t old_size, size_t new_size, int may_move)
{
    int saved = errno;
    void *q = mremap(p, old_size, new_size, may_move ? MREMAP_MAYMOVE : 0);
    errno = saved;
    return q == MAP_FAILED ? NULL : q;
}

bool tli_os_remap_to(void *p, size_t old_size, size_t new_size, void *target)
{
    int saved = errno;
    void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    errno = saved;
    return q == target;
}

uint64_t tli_os_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

size_t tli_os_page_size(void) { return 4096; }

size_t tli_os_kernel_page_size(void) { return (size_t)getauxval(AT_PAGESZ); }

bool tli_os_random(void *buf, size_t n)
{
    int saved = errno;
    long got = syscall(SYS_getrandom, buf, n, GRND_NONBLOCK);
    errno = saved;
    return got == (long)n;
}

const void *tli_os_exec_random(void) { return (const void *)getauxval(AT_RANDOM); }

/* Where process_vm_readv is not allowed (seccomp, some containers), a pipe
 * does the same check: the kernel checks the pages' protection (mincore
 * would not: it succeeds on a PROT_NONE page, and reading it then faults). */
static bool copy_via_pipe(const void *p, void *out, size_t n)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return false;
    bool ok = write(fds[1], p, n) == (ssize_t)n && read(fds[0], out, n) == (ssize_t)n;
    close(fds[0]);
    close(fds[1]);
    return ok;
}

bool tli_os_read_words(const void *p, void *out, size_t n)
{
    int saved = errno;
    struct iovec local = {out, n}, remote = {(void *)p, n};
    ssize_t got = process_vm_readv(tli_os_getpid(), &local, 1, &remote, 1, 0);
    bool ok = got == (ssize_t)n || (got < 0 && errno != EFAULT && copy_via_pipe(p, out, n));
    errno = saved;
    return ok;
}

bool tli_os_resident(const void *p)
{
    int saved = errno;
    unsigned char v = 0;
    uintptr_t page = (uintptr_t)p & ~(uintptr_t)(tli_os_page_size() - 1);
    bool ok = mincore((void *)page, tli_os_page_size(), &v) == 0 && (v & 1);
    errno = saved;
    return ok;
}

bool tli_os_symbol_of(uintptr_t pc, struct tli_os_symbol *out)
{
    Dl_info info;
    if (!dladdr((void *)pc, &info) || !info.dli_fname)
        return false;
    out->file = info.dli_fname;
    out->file_base = (uintptr_t)info.dli_fbase;
    out->name = info.dli_sname;
    out->name_addr = (uintptr_t)info.dli_saddr;
    return true;
}

/* The loaded object whose file name contains the wanted text. */
struct object_search {
    const char *want, *path;
};

static int object_named(struct dl_phdr_info *info, size_t len, void *arg)
{
    (void)len;
    struct object_search *search = arg;
    if (!info->dlpi_name || !strstr(info->dlpi_name, search->want))
        return 0;
    search->path = info->dlpi_name;
    return 1;
}

/* dlopen with RTLD_NOLOAD only names an object already there; dlsym with
 * its handle searches that object and its dependencies, never a preloaded
 * library that interposes the same names. A name it lacks leaves an error
 * message allocated: dlerror() twice frees it. */
unsigned tli_os_function_ranges(const char *object, const char *const *names, unsigned n,
                                struct tli_os_range *out)
{
    int saved = errno;
    struct object_search search = {object, NULL};
    void *handle = NULL;
    if (dl_iterate_phdr(object_named, &search) && search.path && *search.path)
        handle = dlopen(search.path, RTLD_LAZY | RTLD_NOLOAD);
    unsigned found = 0;
    bool failed = !handle;
    for (unsigned i = 0; handle && i < n; i++) {
        void *f = dlsym(handle, names[i]);
        Dl_info info;
        const ElfW(Sym) *sym = NULL;
        failed |= !f;
        if (f && dladdr1(f, &info, (void **)&sym, RTLD_DL_SYMENT) && sym && sym->st_size)
            out[found++] = (struct tli_os_range){(uintptr_t)f, (uintptr_t)f + sym->st_size};
    }
    if (handle)
        dlclose(handle);
    if (failed) {
        (void)dlerror();
        (void)dlerror();
    }
    errno = saved;
    return found;
}

/* The system call itself, not libc's write(): that is a cancellation
 * point, and a report or malloc_stats must not end a thread that has a
 * cancellation pending (glibc writes its own with write_nocancel). */
bool tli_os_write(int fd, const char *s, size_t n)
{
    int saved = errno;
    while (n > 0) {
        ssize_t w = syscall(SYS_write, fd, s, n);
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
long tli_os_read_file(const char *path, char *buf, size_t cap)
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

int tli_os_getpid(void) { return (int)syscall(SYS_getpid); }

int tli_os_open_read(const char *path)
{
    int saved = errno;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    errno = saved;
    return fd;
}

long tli_os_read(int fd, void *buf, size_t n)
{
    int saved = errno;
    ssize_t r;
    do
        r = read(fd, buf, n);
    while (r < 0 && errno == EINTR);
    errno = saved;
    return (long)r;
}

int tli_os_pagemap_open(void)
{
    int saved = errno;
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    errno = saved;
    return fd;
}

/* One 64-bit entry a page: bit 63 present, bit 62 swapped. */
bool tli_os_pages_touched(int fd, uintptr_t start, size_t npages, bool *touched)
{
    enum { BATCH = 512 };
    uint64_t entries[BATCH];
    int saved = errno;
    size_t page = tli_os_page_size();
    for (size_t done = 0; done < npages;) {
        size_t n = npages - done < BATCH ? npages - done : BATCH;
        off_t at = (off_t)((start / page + done) * sizeof entries[0]);
        ssize_t r = pread(fd, entries, n * sizeof entries[0], at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t)(n * sizeof entries[0])) {
            errno = saved;
            return false;
        }
        for (size_t i = 0; i < n; i++)
            touched[done + i] = (entries[i] >> 62) != 0;
        done += n;
    }
    errno = saved;
    return true;
}

void tli_os_close(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
}

int tli_os_create(const char *path)
{
    int saved = errno, fd;
    do
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        fd = -errno;
    errno = saved;
    return fd;
}

/* The page is made writable and executable at once: another thread may be
 * running other code on it. Restored to read and execute after (if that
 * fails, the code is patched all the same; the page merely stays
 * writable). */
enum tli_patch tli_os_patch_code(void *p, uint64_t word)
{
    int saved = errno;
    size_t page = tli_os_page_size();
    void *start = (void *)((uintptr_t)p & ~(uintptr_t)(page - 1));
    size_t len = (uintptr_t)p + 8 - (uintptr_t)start > page ? 2 * page : page;
    enum tli_patch done = TLI_PATCH_REFUSED;
    if (mprotect(start, len, PROT_READ | PROT_WRITE | PROT_EXEC) == 0) {
#if defined(__x86_64__)
        /* An aligned 8-byte mov is one atomic store on x86-64. Written out,
         * not __atomic_store_n: ThreadSanitizer instruments that, and its
         * shadow of code pages does not exist (the store faulted). */
        __asm__ volatile("movq %1, %0" : "=m"(*(uint64_t *)p) : "r"(word) : "memory");
#else
        __atomic_store_n((uint64_t *)p, word, __ATOMIC_SEQ_CST);
#endif
        done =
            mprotect(start, len, PROT_READ | PROT_EXEC) == 0 ? TLI_PATCH_DONE : TLI_PATCH_WRITABLE;
    }
    errno = saved;
    return done;
}

/* ---- locks (lock.h) ------------------------------------------------------ */
__thread uint32_t tli_lock_id __attribute__((tls_model("initial-exec")));
static _Atomic uint32_t last_lock_id;

/* A signal handler that runs between the counter and the store takes an id
 * of its own and releases every lock it takes before it returns, so the
 * id stored last is the thread's from then on. */
uint32_t tli_lock_id_assign(void)
{
    uint32_t id;
    do
        id = (atomic_fetch_add_explicit(&last_lock_id, 1, memory_order_relaxed) + 1) &
             ~TL_LOCK_WAITERS;
    while (id == 0);
    tli_lock_id = id;
    return id;
}

/* What each waiting thread waits for, by lock id modulo the table's size,
 * for the fork handlers (fork.c): a thread blocked on a lock that the
 * forking thread's interrupted frame holds will never release what it
 * holds itself. A waiter writes its record before it sleeps and clears it
 * once it has the lock; it rewrites it every REPUBLISH_NS while it waits, so
 * a record overwritten by another id in the same slot comes back. */
#define WAIT_SLOTS 1024
#define REPUBLISH_NS 50000000L
struct wait_record {
    _Atomic uint32_t id;
    _Atomic(struct tli_lock *) lock;
};
static struct wait_record waits[WAIT_SLOTS];

static void wait_publish(struct wait_record *r, uint32_t me, struct tli_lock *l)
{
    atomic_store_explicit(&r->lock, l, memory_order_relaxed);
    atomic_store_explicit(&r->id, me, memory_order_release);
}

struct tli_lock *tli_lock_waited_by(uint32_t id)
{
    struct wait_record *r = &waits[id % WAIT_SLOTS];
    if (atomic_load_explicit(&r->id, memory_order_acquire) != id)
        return NULL;
    struct tli_lock *l = atomic_load_explicit(&r->lock, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&r->id, memory_order_relaxed) == id ? l : NULL;
}

/* Takes l with the waiters bit set: this thread waited, so others may
 * wait too, and the release must wake one. */
static bool take_contended(struct tli_lock *l, uint32_t me)
{
    uint32_t cur = atomic_load_explicit(&l->word, memory_order_relaxed);
    while (cur == 0)
        if (atomic_compare_exchange_weak_explicit(&l->word, &cur, me | TL_LOCK_WAITERS,
                                                  memory_order_acquire, memory_order_relaxed))
            return true;
    if (!(cur & TL_LOCK_WAITERS) &&
        !atomic_compare_exchange_strong_explicit(&l->word, &cur, cur | TL_LOCK_WAITERS,
                                                 memory_order_relaxed, memory_order_relaxed))
        return false; /* changed meanwhile: look again */
    struct timespec t = {0, REPUBLISH_NS};
    syscall(SYS_futex, &l->word, FUTEX_WAIT_PRIVATE, cur | TL_LOCK_WAITERS, &t, NULL, 0);
    return false;
}

void tli_lock_wait(struct tli_lock *l, uint32_t me)
{
    int saved = errno;
    struct wait_record *r = &waits[me % WAIT_SLOTS];
    wait_publish(r, me, l);
    /* Spin briefly: critical sections are short. */
    for (int i = 0; i < 100; i++) {
        uint32_t expected = 0;
        if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->word, &expected, me, memory_order_acquire,
                                                  memory_order_relaxed))
            goto done;
        tli_cpu_relax();
    }
    while (!take_contended(l, me))
        wait_publish(r, me, l);
done:
    if (atomic_load_explicit(&r->id, memory_order_relaxed) == me)
        atomic_store_explicit(&r->id, 0, memory_order_relaxed);
    errno = saved;
}

void tli_lock_wake(struct tli_lock *l)
{
    int saved = errno;
    syscall(SYS_futex, &l->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

void tli_os_wait_word(_Atomic uint32_t *word, uint32_t expected, uint64_t ms)
{
    int saved = errno;
    struct timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, &t, NULL, 0);
    errno = saved;
}

void tli_os_wake_word(_Atomic uint32_t *word)
{
    int saved = errno;
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
    errno = saved;
}

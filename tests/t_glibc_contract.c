/* t_glibc_contract.c - errno and return values exactly as glibc 2.36 leaves
 * them, on the failing paths and the successful ones, found by running
 * glibc's own malloc tests against tlmalloc (issue 18):
 *  - a failing posix_memalign returns ENOMEM and errno is ENOMEM as well
 *    (glibc's inner allocation sets it and nothing restores it);
 *  - a rejected alignment returns EINVAL and leaves errno alone;
 *  - a successful call never changes errno;
 *  - when the address space runs out (not only for impossible sizes) every
 *    function fails with ENOMEM and a failed realloc keeps the old block;
 *  - mallopt(M_MMAP_THRESHOLD) accepts what glibc accepts.
 */
#include <criterion/criterion.h>
#include <sys/resource.h>

#include "common.h"

#define SENTINEL 4242 /* an errno value no allocator sets */

static const size_t impossible[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX,
                                    (size_t)1 << 60};
static const size_t alignments[] = {8, 16, 32, 64, 4096, (size_t)1 << 16, (size_t)1 << 21};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

Test(glibc_contract, posix_memalign_failure_sets_errno)
{
    for (size_t i = 0; i < N_OF(alignments); i++)
        for (size_t j = 0; j < N_OF(impossible); j++) {
            void *p = &p; /* must stay as it is */
            errno = 0;
            int rc = posix_memalign(&p, alignments[i], opq(impossible[j]));
            int err = errno;
            cr_assert_eq(rc, ENOMEM, "posix_memalign(%zu, %zu) returned %d", alignments[i],
                         impossible[j], rc);
            cr_assert_eq(err, ENOMEM, "posix_memalign(%zu, %zu) left errno %d (%s), not ENOMEM",
                         alignments[i], impossible[j], err, strerror(err));
            cr_assert_eq(p, (void *)&p, "posix_memalign changed *memptr on failure");
        }
}

Test(glibc_contract, posix_memalign_einval_keeps_errno)
{
    static const size_t bad[] = {0, 1, 2, 4, 12, 24, 48, 100, 4095, SIZE_MAX};
    for (size_t i = 0; i < N_OF(bad); i++) {
        void *p = &p;
        errno = SENTINEL;
        int rc = posix_memalign(&p, opq(bad[i]), 64);
        int err = errno;
        cr_assert_eq(rc, EINVAL, "posix_memalign(%zu, 64) returned %d", bad[i], rc);
        cr_assert_eq(err, SENTINEL, "posix_memalign(%zu, 64) changed errno to %d", bad[i], err);
        cr_assert_eq(p, (void *)&p);
    }
}

/* Every call below succeeds; errno must come out as it went in. */
static void churn_keeps_errno(size_t size)
{
    errno = SENTINEL;
    void *a = malloc(opq(size));
    void *b = calloc(opq(size), 1);
    void *c = memalign(64, opq(size));
    void *d = aligned_alloc(4096, opq(size));
    void *e = valloc(opq(size));
    void *f = pvalloc(opq(size));
    void *g = NULL;
    int rc = posix_memalign(&g, 256, opq(size));
    a = realloc(a, opq(size * 2 + 1));
    b = reallocarray(b, opq(size + 1), 3);
    c = realloc(c, opq(size / 2 + 1));
    int err = errno;
    cr_assert(a && b && c && d && e && f && g && rc == 0, "an allocation of %zu failed", size);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    free(f);
    free(g);
    cr_assert_eq(err, SENTINEL, "allocations of %zu bytes changed errno to %d (%s)", size, err,
                 strerror(err));
    cr_assert_eq(errno, SENTINEL, "freeing blocks of %zu bytes changed errno to %d", size, errno);
}

Test(glibc_contract, success_keeps_errno)
{
    static const size_t sizes[] = {0, 1, 24, 1000, 5000, 70000, 1 << 20, 300 << 20};
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < N_OF(sizes); i++)
            churn_keeps_errno(sizes[i]);
    errno = SENTINEL;
    free(NULL);
    cr_assert_eq(malloc_usable_size(NULL), 0);
    cr_assert_eq(errno, SENTINEL);
}

#define EXPECT_OOM(expr, what)                                                                     \
    do {                                                                                           \
        errno = 0;                                                                                 \
        void *res_ = (expr);                                                                       \
        int err_ = errno;                                                                          \
        cr_assert_null(res_, "%s succeeded under the address-space limit", what);                  \
        cr_assert_eq(err_, ENOMEM, "%s set errno %d (%s), expected ENOMEM", what, err_,            \
                     strerror(err_));                                                              \
    } while (0)

/* A real shortage, not an impossible size: the sizes below are ordinary,
 * the address space is what runs out (Criterion runs each test in a
 * process of its own, so the limit stays here). */
Test(glibc_contract, address_space_exhausted)
{
    size_t big = (size_t)512 << 20;
    char *old = malloc(100);
    cr_assert_not_null(old);
    memset(old, 'x', 100);
    struct rlimit lim;
    cr_assert_eq(getrlimit(RLIMIT_AS, &lim), 0);
    /* What is mapped now plus a little: far less than `big`. */
    long vm_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%ld", &vm_pages), 1);
    fclose(f);
    lim.rlim_cur = (rlim_t)vm_pages * (rlim_t)page_size() + ((rlim_t)64 << 20);
    cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);

    EXPECT_OOM(malloc(opq(big)), "malloc(512 MiB)");
    EXPECT_OOM(calloc(opq(big), 1), "calloc(512 MiB)");
    EXPECT_OOM(memalign(4096, opq(big)), "memalign(4096, 512 MiB)");
    EXPECT_OOM(aligned_alloc(64, opq(big)), "aligned_alloc(64, 512 MiB)");
    EXPECT_OOM(valloc(opq(big)), "valloc(512 MiB)");
    EXPECT_OOM(pvalloc(opq(big)), "pvalloc(512 MiB)");
    EXPECT_OOM(reallocarray(NULL, opq(big), 1), "reallocarray(NULL, 512 MiB, 1)");
    EXPECT_OOM(realloc(old, opq(big)), "realloc(old, 512 MiB)");
    for (int i = 0; i < 100; i++)
        cr_assert_eq(old[i], 'x', "a failed realloc changed the old block");

    void *p = &p;
    errno = 0;
    int rc = posix_memalign(&p, 128, opq(big));
    int err = errno;
    cr_assert_eq(rc, ENOMEM, "posix_memalign(128, 512 MiB) returned %d", rc);
    cr_assert_eq(err, ENOMEM, "posix_memalign left errno %d (%s), not ENOMEM", err, strerror(err));
    cr_assert_eq(p, (void *)&p);
    free(old);
}

/* glibc 2.36's mallopt returns 1 for every parameter and value except
 * M_MXFAST above its largest fast size (160 bytes); a program that checks the
 * answer must not see tlmalloc refuse what glibc accepts. Thresholds below
 * tlmalloc's smallest huge size still work: blocks of every size below. */
Test(glibc_contract, mallopt_answers_as_glibc)
{
    static const int thresholds[] = {0, 1, 4096, 64 * 1024, 128 * 1024, 1 << 20, 64 << 20, -1};
    for (size_t i = 0; i < N_OF(thresholds); i++)
        cr_assert_eq(mallopt(M_MMAP_THRESHOLD, thresholds[i]), 1,
                     "mallopt(M_MMAP_THRESHOLD, %d) refused", thresholds[i]);
    cr_assert_eq(mallopt(M_CHECK_ACTION, 7), 1, "mallopt(M_CHECK_ACTION, 7) refused");
    cr_assert_eq(mallopt(M_MXFAST, 0), 1);
    cr_assert_eq(mallopt(M_MXFAST, 160), 1);
    cr_assert_eq(mallopt(M_MXFAST, 161), 0, "mallopt(M_MXFAST, 161) accepted");
    cr_assert_eq(mallopt(M_MMAP_THRESHOLD, 64 * 1024), 1);
    for (size_t size = 1000; size < ((size_t)4 << 20); size = size * 3 + 1) {
        char *p = malloc(size);
        cr_assert_not_null(p);
        memset(p, 1, size);
        p = realloc(p, size * 2);
        cr_assert_not_null(p);
        cr_assert_eq(p[size - 1], 1);
        free(p);
        p = memalign(65536, size);
        cr_assert(p && is_aligned(p, 65536));
        free(p);
    }
}

/* ---- fork while threads use stdio ------------------------------------------
 * Readers getline() a long line, which reallocs under the stream's lock; a
 * flusher calls fflush(NULL), which holds glibc's list of streams and waits
 * for each stream's lock; other threads fork. glibc's fork takes the
 * stream list's lock after the allocator's fork handlers have taken the
 * allocator's locks, so the three could wait on each other for good. The
 * threads run for two seconds (the readers can starve the flusher of a
 * stream's lock, with any allocator, so the forks cannot be counted to an
 * end while the readers run); a deadlock is caught by the timeout. */
#include <pthread.h>
#include <sys/wait.h>

enum { IO_FORKERS = 4, IO_READERS = 8 };
static atomic_int io_stop;
static char io_path[64];

static void *line_reader(void *arg)
{
    (void)arg;
    FILE *f = fopen(io_path, "r");
    if (!f)
        return (void *)1;
    while (!atomic_load(&io_stop)) {
        rewind(f);
        char *line = NULL;
        size_t cap = 0;
        if (getline(&line, &cap, f) < 0) {
            free(line);
            fclose(f);
            return (void *)2;
        }
        free(line);
    }
    fclose(f);
    return NULL;
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!atomic_load(&io_stop))
        fflush(NULL);
    return NULL;
}

static void *forker(void *arg)
{
    (void)arg;
    while (!atomic_load(&io_stop)) {
        pid_t pid = fork();
        if (pid < 0)
            return (void *)3;
        if (pid == 0) {
            free(malloc(100));
            _exit(0);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return (void *)4;
    }
    return NULL;
}

static void write_long_line(void)
{
    strcpy(io_path, "/tmp/tlmalloc-line.XXXXXX");
    int fd = mkstemp(io_path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 500 * 1000; i++)
        fputc('x', f);
    fputc('\n', f);
    cr_assert_eq(fclose(f), 0);
}

Test(glibc_contract, fork_while_threads_read_lines_and_flush_streams, .timeout = 300)
{
    write_long_line();
    pthread_t forkers[IO_FORKERS], readers[IO_READERS], flush;
    for (int i = 0; i < IO_READERS; i++)
        cr_assert_eq(pthread_create(&readers[i], NULL, line_reader, NULL), 0);
    cr_assert_eq(pthread_create(&flush, NULL, flusher, NULL), 0);
    for (int i = 0; i < IO_FORKERS; i++)
        cr_assert_eq(pthread_create(&forkers[i], NULL, forker, NULL), 0);
    struct timespec run = {2, 0};
    nanosleep(&run, NULL);
    atomic_store(&io_stop, 1);
    void *res;
    int bad = 0;
    for (int i = 0; i < IO_FORKERS; i++) {
        pthread_join(forkers[i], &res);
        bad += res != NULL;
    }
    pthread_join(flush, NULL);
    for (int i = 0; i < IO_READERS; i++) {
        pthread_join(readers[i], &res);
        bad += res != NULL;
    }
    unlink(io_path);
    cr_assert_eq(bad, 0, "%d threads failed", bad);
}

/* ---- forks in many threads at once ------------------------------------------
 * glibc (2.34 and later) drops its own atfork lock while it runs each fork
 * handler, so the handlers of forks in different threads run at the same
 * time. Ours kept their state in one stack for the whole process: a parent
 * handler popped another thread's level and the depth lost updates, and
 * with 8 threads forking at once (2 more allocating) the process aborted
 * with "more forks nested in signal handlers" within 2 s, 5 runs of 5
 * (glibc's tst-malloc-fork-deadlock: 1 run in 10). */
enum { MANY_FORKERS = 8, ALLOCATORS = 2 };

static void *allocating(void *arg)
{
    (void)arg;
    while (!atomic_load(&io_stop)) {
        char *p = malloc(50000);
        if (!p)
            return (void *)5;
        memset(p, 1, 100);
        free(p);
        free(malloc(40));
    }
    return NULL;
}

Test(glibc_contract, forks_in_many_threads_at_once, .timeout = 120)
{
    atomic_store(&io_stop, 0);
    pthread_t threads[MANY_FORKERS + ALLOCATORS];
    for (int i = 0; i < MANY_FORKERS + ALLOCATORS; i++)
        cr_assert_eq(
            pthread_create(&threads[i], NULL, i < MANY_FORKERS ? forker : allocating, NULL), 0);
    struct timespec run = {2, 0};
    nanosleep(&run, NULL);
    atomic_store(&io_stop, 1);
    int bad = 0;
    for (int i = 0; i < MANY_FORKERS + ALLOCATORS; i++) {
        void *res;
        pthread_join(threads[i], &res);
        bad += res != NULL;
    }
    cr_assert_eq(bad, 0, "%d threads failed", bad);
}

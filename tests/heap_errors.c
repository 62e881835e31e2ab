/* heap_errors.c - the scenario program of the heap-error suite
 * (t_heaperrors.c, tools/heap-errors-table.sh): one heap error or one
 * classic exploitation primitive per run, in a fresh process, so that the
 * allocator's options (default or check mode) are those of the test.
 *
 * Usage: heap_errors SCENARIO. Built twice, like diag_child: linked with
 * libtlmalloc (heap_errors_linked) and plain, to run with LD_PRELOAD.
 * Results go to stdout with write(2), one per line:
 *   "ptr 0x..."           the pointer about to be misused
 *   "won chosen 0x..."    malloc returned the address the attacker chose
 *   "won overlap 0x..."   malloc returned a block overlapping a live one
 *   "safe"                the attempt ended with neither
 *   "read poisoned|zero|stale 0x<word>"  what a read of freed or
 *                         uninitialised memory saw
 *   "done"                the scenario ran to its end
 * The suite tells the outcome from these, the exit status and stderr.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void *opq_ptr(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n > (int)sizeof buf - 2)
        return;
    buf[n++] = '\n';
    if (write(1, buf, (size_t)n) != n)
        _exit(3);
}

static char *xmalloc(size_t n)
{
    char *p = malloc(n);
    if (!p) {
        out("error malloc returned NULL");
        _exit(3);
    }
    return p;
}

/* ---- what an attacker gets back --------------------------------------- */
/* Live blocks of the scenario, to tell an overlapping result. */
static struct {
    uintptr_t lo, hi;
} live[16];
static int nlive;

static void keep(void *p, size_t n)
{
    if (nlive < 16)
        live[nlive++].lo = (uintptr_t)p, live[nlive - 1].hi = (uintptr_t)p + n;
}

/* Judges a block malloc(n) returned: the chosen address, or one that
 * overlaps a live block, is a win for the attacker. */
static int judge(void *q, size_t n, const void *chosen)
{
    uintptr_t a = (uintptr_t)q;
    if (q && chosen && (uintptr_t)chosen >= a && (uintptr_t)chosen < a + n) {
        out("won chosen %p", q);
        return 1;
    }
    for (int i = 0; q && i < nlive; i++)
        if (a < live[i].hi && live[i].lo < a + n) {
            out("won overlap %p", q);
            return 1;
        }
    if (q)
        keep(q, n);
    return 0;
}

/* Several allocations of the class n, each judged. */
static void take(size_t n, int count, const void *chosen)
{
    int won = 0;
    for (int i = 0; i < count; i++)
        won |= judge(malloc(n), n, chosen);
    if (!won)
        out("safe");
}

static void read_word(const void *p, unsigned char fill)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    uint64_t poison;
    memset(&poison, fill, sizeof poison);
    out("read %s 0x%016llx",
        w == poison ? "poisoned"
        : w         ? "stale"
                    : "zero",
        (unsigned long long)w);
}

/* ---- heap errors ---------------------------------------------------------- */
static void overrun(void)
{
    char *p = xmalloc(24);
    out("ptr %p", (void *)p);
    memset(opq_ptr(p), 'X', 32); /* 8 bytes past the end */
    free(p);
}

static void overrun_never_freed(void)
{
    static char *kept;
    kept = xmalloc(24);
    out("ptr %p", (void *)kept);
    memset(opq_ptr(kept), 'X', 40); /* 16 bytes past the end */
}

static void underrun(void)
{
    char *p = xmalloc(24);
    out("ptr %p", (void *)p);
    ((char *)opq_ptr(p))[-1] = 'X';
    free(p);
}

static void underrun_then_realloc(void)
{
    char *p = xmalloc(24);
    out("ptr %p", (void *)p);
    ((char *)opq_ptr(p))[-3] = 'X';
    p = realloc(p, 4000);
    free(p);
}

static void underrun_aligned(void)
{
    void *v;
    if (posix_memalign(&v, 256, 100) != 0 || ((uintptr_t)v & 255)) {
        out("error posix_memalign(256) gave %p", v);
        _exit(3);
    }
    out("ptr %p", v);
    ((char *)opq_ptr(v))[-1] = 'X';
    free(v);
}

static void underrun_never_freed(void)
{
    static char *kept;
    kept = xmalloc(40);
    out("ptr %p", (void *)kept);
    ((char *)opq_ptr(kept))[-16] = 'X'; /* the first byte before the block's front canary */
}

/* Huge blocks (above a 1 MiB threshold) are their own mappings. */
static void huge_from_1mib(void)
{
    if (mallopt(M_MMAP_THRESHOLD, 1 << 20) != 1) {
        out("error mallopt(M_MMAP_THRESHOLD) refused");
        _exit(3);
    }
}

static void overrun_huge_never_freed(void)
{
    static void *kept;
    huge_from_1mib();
    if (posix_memalign(&kept, 8192, 2 << 20) != 0)
        _exit(3);
    out("ptr %p", kept);
    memset(opq_ptr(kept), 'X', (2 << 20) + 16);
}

static void use_after_free_read(void)
{
    char *p = xmalloc(64);
    memset(p, 'A', 64);
    free(p);
    out("ptr %p", (void *)p);
    read_word((char *)opq_ptr(p) + 16, 0xdf); /* past the free-list words */
}

static void use_after_free_write(void)
{
    char *p = xmalloc(64);
    free(p);
    out("ptr %p", (void *)p);
    ((char *)opq_ptr(p))[20] = 'X';
    /* Much freeing afterwards: the quarantine lets the block go. */
    for (int i = 0; i < 600; i++)
        free(xmalloc(64 * 1024 - 200));
}

static void use_after_free_write_at_exit(void)
{
    char *p = xmalloc(64);
    free(p);
    out("ptr %p", (void *)p);
    ((char *)opq_ptr(p))[20] = 'X';
}

static void double_free(void)
{
    char *p = xmalloc(64);
    out("ptr %p", (void *)p);
    free(p);
    free(opq_ptr(p));
    take(64, 2, NULL);
}

static void invalid_free_interior(void)
{
    char *p = xmalloc(64);
    keep(p, 64);
    out("ptr %p", (void *)(p + 16));
    free(opq_ptr(p + 16));
    take(48, 4, NULL);
}

static void invalid_free_stack(void)
{
    _Alignas(16) char on_stack[64];
    out("ptr %p", (void *)on_stack);
    free(opq_ptr(on_stack));
    take(64, 4, on_stack);
}

/* Overwrites the dead stack below the caller's frame: a conservative scan
 * would take a stale copy of a dropped pointer left there (by printf, say)
 * for a live one, and this test is about the scan, not about what the
 * compiler happened to leave behind. */
static __attribute__((noinline)) void scrub_stack(void)
{
    volatile char dead[32 * 1024];
    memset((char *)dead, 0, sizeof dead);
    __asm__ volatile("" : : "r"(dead) : "memory");
}

static __attribute__((noinline)) void drop_a_block(void)
{
    char *p = xmalloc(100);
    memset(p, 0, 100);
    out("ptr %p", (void *)p);
    p = NULL; /* the only pointer is gone */
}

static void leak(void)
{
    drop_a_block();
    scrub_stack();
}

static char *kept_in_global;
static void still_reachable(void)
{
    kept_in_global = xmalloc(100);
    memset(kept_in_global, 0, 100);
    out("ptr %p", (void *)kept_in_global);
}

static void uninitialised_read(void)
{
    char *p = xmalloc(64);
    memset(p, 'A', 64);
    free(p);
    p = xmalloc(64);
    out("ptr %p", (void *)p);
    read_word(p, 0xbe);
    free(p);
}

/* ---- exploitation primitives ------------------------------------------- */
static _Alignas(64) char target_bss[256];

/* tcache poisoning: one read of a freed block's link word and the block
 * it links to give that slot's key; the forged link names the target. */
static void tcache_poisoning(void)
{
    char *a = xmalloc(64), *b = xmalloc(64);
    keep(a, 64);
    keep(b, 64);
    nlive = 0; /* both are freed below */
    free(a);
    free(b);
    uint64_t word, key;
    memcpy(&word, opq_ptr(b), 8);
    key = word ^ (uint64_t)(uintptr_t)a; /* the key, if the link is a ^ key */
    uint64_t forged = (uint64_t)(uintptr_t)target_bss ^ key;
    out("ptr %p", (void *)b);
    memcpy(opq_ptr(b), &forged, 8);
    take(64, 3, target_bss);
}

/* fastbin dup: free a, free b, free a; then three mallocs give a twice. */
static void fastbin_dup(void)
{
    char *a = xmalloc(64), *b = xmalloc(64);
    out("ptr %p", (void *)a);
    free(a);
    free(b);
    free(opq_ptr(a));
    take(64, 3, NULL);
}

/* double free after wiping the free marker (bytes 8..15) with a
 * use-after-free write; then two mallocs. */
static void double_free_wiped_marker(void)
{
    char *a = xmalloc(64);
    out("ptr %p", (void *)a);
    free(a);
    memset((char *)opq_ptr(a) + 8, 0, 8);
    free(opq_ptr(a));
    take(64, 2, NULL);
}

/* house of spirit: free a fake block on the stack, then get it back. */
static void house_of_spirit_stack(void)
{
    _Alignas(64) uint64_t fake[16] = {0};
    fake[1] = 0x51; /* a glibc-style size field before the "user" part */
    void *p = &fake[2];
    out("ptr %p", p);
    free(opq_ptr(p));
    take(64, 4, p);
}

static void house_of_spirit_bss(void)
{
    void *p = target_bss + 16;
    ((uint64_t *)target_bss)[1] = 0x51;
    out("ptr %p", p);
    free(opq_ptr(p));
    take(64, 4, p);
}

/* header size overwrite: glibc keeps a block's size in the word before
 * it; tlmalloc keeps none there. Enlarge "it", free, ask for the larger
 * size: an overlap with the block after would be the win. */
static void header_size_overwrite(void)
{
    char *a = xmalloc(24), *b = xmalloc(24), *c = xmalloc(24);
    keep(a, 24);
    keep(c, 24);
    out("ptr %p", (void *)b);
    ((uint64_t *)opq_ptr(b))[-1] = 0x101; /* "size 256, previous in use" */
    free(b);
    take(240, 3, NULL);
}

/* partial link overwrite: the low byte of a freed block's link. */
static void partial_link_overwrite(void)
{
    char *x = xmalloc(64), *a = xmalloc(64), *l = xmalloc(64);
    keep(l, 64);
    free(x);
    free(a);
    out("ptr %p", (void *)a);
    ((unsigned char *)opq_ptr(a))[0] ^= 0x40;
    take(64, 3, NULL);
}

/* ---- correct programs ------------------------------------------------------- */
static void *worker(void *arg)
{
    char *blocks[64];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 64; i++) {
            blocks[i] = xmalloc((size_t)(i * 97 % 2000) + 1);
            memset(blocks[i], i, (size_t)(i * 97 % 2000) + 1);
        }
        for (int i = 0; i < 64; i++)
            free(blocks[i]);
    }
    char *aligned;
    if (posix_memalign((void **)&aligned, 256, 1000) == 0)
        free(aligned);
    char *r = realloc(NULL, 10);
    r = realloc(r, 5000);
    free(r);
    printf("thread %ld\n", (long)(intptr_t)arg); /* stdio from threads */
    return arg;
}

/* Every alignment with small, large and huge sizes, resized and freed;
 * one huge aligned block kept in a global until exit. */
static void *kept_aligned;
static void correct_aligned(void)
{
    static const size_t aligns[] = {16, 32, 64, 256, 4096, 8192, 65536, 1 << 21};
    static const size_t sizes[] = {0, 1, 24, 1000, 70000, 2 << 20};
    huge_from_1mib();
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++)
        for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
            void *p;
            if (posix_memalign(&p, aligns[i], sizes[j]) != 0 || ((uintptr_t)p & (aligns[i] - 1)) ||
                malloc_usable_size(p) < sizes[j]) {
                out("error posix_memalign(%zu, %zu) gave %p", aligns[i], sizes[j], p);
                _exit(3);
            }
            memset(p, 1, sizes[j]);
            p = realloc(p, sizes[j] + 100);
            free(p);
        }
    if (posix_memalign(&kept_aligned, 1 << 21, 3 << 20) != 0)
        _exit(3);
    memset(kept_aligned, 2, 3 << 20);
}

static void correct_threads(void)
{
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
            _exit(3);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    fflush(stdout);
    fprintf(stderr, "%s", "");
}

static const struct {
    const char *name;
    void (*run)(void);
} scenarios[] = {
    {"overrun", overrun},
    {"overrun_never_freed", overrun_never_freed},
    {"underrun", underrun},
    {"underrun_then_realloc", underrun_then_realloc},
    {"underrun_aligned", underrun_aligned},
    {"underrun_never_freed", underrun_never_freed},
    {"overrun_huge_never_freed", overrun_huge_never_freed},
    {"use_after_free_read", use_after_free_read},
    {"use_after_free_write", use_after_free_write},
    {"use_after_free_write_at_exit", use_after_free_write_at_exit},
    {"double_free", double_free},
    {"invalid_free_interior", invalid_free_interior},
    {"invalid_free_stack", invalid_free_stack},
    {"leak", leak},
    {"still_reachable", still_reachable},
    {"uninitialised_read", uninitialised_read},
    {"tcache_poisoning", tcache_poisoning},
    {"fastbin_dup", fastbin_dup},
    {"double_free_wiped_marker", double_free_wiped_marker},
    {"house_of_spirit_stack", house_of_spirit_stack},
    {"house_of_spirit_bss", house_of_spirit_bss},
    {"header_size_overwrite", header_size_overwrite},
    {"partial_link_overwrite", partial_link_overwrite},
    {"correct_aligned", correct_aligned},
    {"correct_threads", correct_threads},
};

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "list")) {
        for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
            out("%s", scenarios[i].name);
        return 0;
    }
    for (size_t i = 0; argc == 2 && i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (!strcmp(argv[1], scenarios[i].name)) {
            scenarios[i].run();
            out("done");
            return 0;
        }
    out("error usage: heap_errors SCENARIO|list");
    return 2;
}

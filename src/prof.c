/* prof.c - the sampling heap profiler (TLMALLOC_CONF=prof=1).
 *
 * Sampling: each thread counts down the bytes it allocates from a draw of
 * an exponential distribution of mean prof_sample (512 KiB); the
 * allocation that takes the count below zero is sampled, and a new count
 * drawn. So every byte is a sample point with the same probability, and an
 * allocation of s bytes is sampled with probability 1 - exp(-s/rate); its
 * record counts 1/(1 - exp(-s/rate)) objects of s bytes, an unbiased
 * estimate (Horvitz-Thompson) of what the unsampled allocations there were.
 * malloc and operator new count in variants of their fast paths, which
 * initialisation installs by writing a jump over the first bytes of each
 * entry (api.c, cxx.c); with prof=0 the fast paths are the ones without
 * the count, and the only test left is a predictable branch on
 * tli_prof_enabled in calloc, realloc and the aligned allocators, none of
 * which is a fast path.
 *
 * A sampled block gets a span of its own (a large or huge block, whatever
 * its size): span->sampled says so and span->free_list points to its
 * record. Free reaches it by the slow path it takes for any large block,
 * and so through the one validation (validate.c) before free_span_block
 * (alloc.c) calls tli_prof_freed: a double free or an interior pointer of
 * a sampled block is reported as that of any large block, and the fast
 * path never looks. A sample costs the rest of a page at most: 8 KiB per
 * 512 KiB sampled on average, 1.6%.
 *
 * Records (stack, size, estimated objects) come from the metadata arena
 * and are recycled through a free list. Traces are the stack depot's
 * (stack.c, shared with check mode); each trace's figures are kept here,
 * by the depot's number of the trace, in a table of leaves made on first
 * use. Lock: tli_prof_lock guards the records, the figures and the totals.
 * It is taken with no other allocator lock held; inside it only the
 * metadata lock (DESIGN.md, "Locks"). Dumps copy the figures under it,
 * then write with no lock held.
 */
#include "internal.h"
#include "stack.h"
#include "tlmalloc.h"

#include <string.h>

/* Guards the records, the figures of each trace and the totals; taken with
 * no other allocator lock held (DESIGN.md, "Locks"). */
struct tli_lock tli_prof_lock = TL_LOCK_INIT;
bool tli_prof_enabled; /* written once, in stage one of initialisation */

static __thread uint64_t rng_state __attribute__((tls_model("initial-exec")));
static _Atomic int prof_active;
static _Atomic int dumping;       /* one dump at a time */
static _Atomic uint64_t dump_seq; /* prefix.PID.SEQ.heap */

struct record {
    uint32_t stack; /* the depot's number of the trace */
    size_t size;
    double objs; /* estimated objects this sample stands for */
    struct record *next_free;
};
static struct record *free_records TL_GUARDED_BY(tli_prof_lock);

/* A trace's figures: unbiased estimates of objects and bytes in use and
 * allocated since start. */
struct figures {
    double inuse_objs, inuse_bytes, alloc_objs, alloc_bytes;
};
/* By depot number: leaves of FIG_LEAF, made on first use (the depot has at
 * most FIG_ROOT * FIG_LEAF entries). */
#define FIG_LEAF 512
#define FIG_ROOT 2048
static struct figures *fig_leaves[FIG_ROOT] TL_GUARDED_BY(tli_prof_lock);
static struct figures total TL_GUARDED_BY(tli_prof_lock);
static double next_interval_dump TL_GUARDED_BY(tli_prof_lock);
static double gdump_peak TL_GUARDED_BY(tli_prof_lock);
/* ---- an exponential draw without libm ----------------------------------- */
static uint64_t next_random(void)
{
    if (!rng_state)
        rng_state = (tli_secret ^ (uint64_t)(uintptr_t)&rng_state) * 0x9e3779b97f4a7c15ULL | 1;
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* ln(x) for x in (0, 1]: x = m * 2^e with m in [1, 2), and ln(m) by the
 * series of atanh: with t = (m-1)/(m+1) < 1/3, 2(t + t^3/3 + ... + t^9/9)
 * is within 2e-6 of ln(m), far below the sampling noise. */
static double log_unit(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & ((1ULL << 52) - 1)) | (1023ULL << 52);
    double m;
    memcpy(&m, &bits, sizeof m);
    double t = (m - 1) / (m + 1), t2 = t * t;
    double s = t * (1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 / 9))));
    return 2 * s + e * 0.6931471805599453;
}

/* exp(-x) for x >= 0: 2^-k * exp(-r) with r = x - k ln 2 in [0, ln 2). */
static double exp_neg(double x)
{
    if (x > 700)
        return 0;
    int k = (int)(x / 0.6931471805599453);
    double r = x - k * 0.6931471805599453, term = 1, sum = 1;
    for (int i = 1; i < 14; i++) {
        term *= -r / i;
        sum += term;
    }
    uint64_t bits = (uint64_t)(1023 - k) << 52; /* 2^-k, k < 1010 */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return sum * scale;
}

static int64_t draw(void)
{
    /* u in (0, 1]: 53 random bits, never 0. */
    double u = (double)((next_random() >> 11) + 1) * (1.0 / 9007199254740992.0);
    double bytes = -log_unit(u) * (double)tli_conf.prof_sample;
    return bytes > 4e18 ? INT64_MAX / 2 : (int64_t)bytes;
}

/* ---- records ------------------------------------------------------------- */
static struct record *record_new(void) TL_REQUIRES(tli_prof_lock)
{
    if (!free_records) {
        enum { CHUNK = 64 };
        struct record *r = tli_meta_alloc(CHUNK * sizeof *r);
        if (!r)
            return NULL;
        for (int i = 0; i < CHUNK; i++) {
            r[i].next_free = free_records;
            free_records = &r[i];
        }
    }
    struct record *r = free_records;
    free_records = r->next_free;
    return r;
}

/* The figures of trace id, their leaf made if new; NULL without memory. */
static struct figures *figures_of(uint32_t id) TL_REQUIRES(tli_prof_lock)
{
    struct figures **leaf = &fig_leaves[id / FIG_LEAF];
    if (!*leaf && !(*leaf = tli_meta_alloc(FIG_LEAF * sizeof **leaf)))
        return NULL;
    return &(*leaf)[id % FIG_LEAF];
}

static void add(struct figures *f, double objs, double bytes, bool alloc)
{
    f->inuse_objs += objs;
    f->inuse_bytes += bytes;
    if (alloc) {
        f->alloc_objs += objs;
        f->alloc_bytes += bytes;
    }
}

/* A trace's leaf exists once a sample of it was recorded. */
static void account(struct figures *f, double objs, double bytes, bool alloc)
    TL_REQUIRES(tli_prof_lock)
{
    add(f, objs, bytes, alloc);
    add(&total, objs, bytes, alloc);
}

/* ---- dumps --------------------------------------------------------------- */
static void dump_auto(void);

/* Which automatic dumps this sample calls for; lock held. */
static bool dump_due(void) TL_REQUIRES(tli_prof_lock)
{
    bool due = false;
    if (tli_conf.prof_interval && total.alloc_bytes >= next_interval_dump) {
        next_interval_dump = total.alloc_bytes + (double)tli_conf.prof_interval;
        due = true;
    }
    /* A new in-use peak, by at least an eighth (and a sample's mean) over
     * the last one dumped: a heap that grows steadily gets a dump per
     * eighth of growth, not one per sample. */
    if (tli_conf.prof_gdump && total.inuse_bytes > gdump_peak) {
        double step = gdump_peak / 8;
        if (step < (double)tli_conf.prof_sample)
            step = (double)tli_conf.prof_sample;
        if (total.inuse_bytes >= gdump_peak + step || gdump_peak == 0) {
            gdump_peak = total.inuse_bytes;
            due = true;
        }
    }
    return due;
}

/* ---- sampling ------------------------------------------------------------ */
/* The block of a sample: alone in its span (a large or huge block). */
static void *sample_block(size_t size, size_t alignment, bool zero)
{
    if (size > TL_MAX_REQUEST || alignment > TL_MAX_REQUEST)
        return tli_no_memory();
    void *p;
    if (size >= tli_conf.huge_threshold || alignment >= tli_conf.huge_threshold)
        p = tli_huge_alloc(size, alignment > TL_PAGE_SIZE ? alignment : TL_PAGE_SIZE);
    else
        p = tli_alloc_large(size, alignment > TL_ALIGNMENT ? alignment : 0);
    if (!p)
        return NULL;
    struct span *s = tli_pagemap_span((uintptr_t)p);
    if (zero && s->state == SPAN_LARGE && !s->clean)
        memset(p, 0, tli_span_bytes(s));
    else if (zero)
        tli_vg_defined(p, tli_span_bytes(s)); /* zero already, as memcheck should know */
    s->clean = 0;
    return p;
}

/* The trace of the allocation, or when none can be captured (a nested
 * capture) the one return address known. */
static const struct tli_stack *trace(uintptr_t caller)
{
    uintptr_t pcs[TL_STACK_MAX];
    unsigned n = tli_stack_capture(pcs, TL_STACK_MAX);
    if (n == 0 && caller) {
        pcs[0] = caller;
        n = 1;
    }
    return n ? tli_stack_intern(pcs, n) : NULL;
}

void *tli_prof_sample(size_t size, size_t alignment, bool zero, uintptr_t caller)
{
    const struct tli_stack *st = trace(caller);
    void *p = sample_block(size, alignment, zero);
    if (!p || !st)
        return p;
    double sz = size ? (double)size : 1;
    double objs = 1 / (1 - exp_neg(sz / (double)tli_conf.prof_sample));
    bool due = false;
    tli_lock_acquire(&tli_prof_lock);
    struct record *r = record_new();
    struct figures *f = r ? figures_of(st->id) : NULL;
    if (f) {
        *r = (struct record){st->id, size, objs, NULL};
        account(f, objs, objs * (double)size, true);
        struct span *s = tli_pagemap_span((uintptr_t)p);
        s->free_list = (uint64_t)(uintptr_t)r;
        s->sampled = 1;
        due = dump_due();
    } else if (r) {
        r->next_free = free_records;
        free_records = r;
    }
    tli_lock_release(&tli_prof_lock);
    if (due)
        dump_auto();
    return p;
}

void tli_prof_freed(struct span *s)
{
    struct record *r = (struct record *)(uintptr_t)s->free_list;
    s->sampled = 0;
    s->free_list = 0;
    tli_lock_acquire(&tli_prof_lock);
    account(figures_of(r->stack), -r->objs, -r->objs * (double)r->size, false);
    r->next_free = free_records;
    free_records = r;
    tli_lock_release(&tli_prof_lock);
}

/* What the allocation of size would have been without the profiler. */
static void *plain_alloc(size_t size, size_t alignment, bool zero)
{
    if (zero)
        return tli_alloc_zeroed(size);
    return alignment > TL_ALIGNMENT ? tli_alloc_aligned(alignment, size) : tli_alloc(size);
}

/* tli_tc.prof_left has gone below zero: a new count, and whether this
 * allocation is the sample (not for a thread's first allocation, which
 * only starts its count: the distribution has no memory, so the first
 * count may as well start there). */
bool tli_prof_take_sample(size_t size)
{
    if (TL_UNLIKELY(!tli_prof_enabled)) {
        tli_tc.prof_left = INT64_MAX; /* this process does not profile */
        return false;
    }
    bool first = !rng_state;
    int64_t left = draw();
    if (first) {
        left -= (int64_t)(size > INT64_MAX / 2 ? INT64_MAX / 2 : size);
        tli_tc.prof_left = left;
        if (left >= 0)
            return false;
        left = draw();
    }
    tli_tc.prof_left = left;
    return atomic_load_explicit(&prof_active, memory_order_relaxed) != 0;
}

/* Reached by a tail jump from malloc's profiling entry (api.c), which
 * keeps no frame: the return address is malloc's caller. */
TL_NOINLINE void *tli_prof_sample_malloc(size_t size)
{
    uintptr_t caller = TL_CALLER;
    tli_ensure_init();
    int saved = errno;
    void *p = tli_prof_take_sample(size) ? tli_prof_sample(size, 0, false, caller) : NULL;
    if (p)
        return p;
    /* A sample that found no pages still gets the block a malloc would,
     * and errno as it would leave it. */
    errno = saved;
    return tli_alloc_slow(size, caller);
}

bool tli_prof_count(size_t size)
{
    int64_t s = size > INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)size;
    tli_tc.prof_left -= s;
    return TL_UNLIKELY(tli_tc.prof_left < 0) && tli_prof_take_sample(size);
}

void *tli_prof_count_alloc(size_t size, size_t alignment, bool zero)
{
    int saved = errno;
    void *p = tli_prof_count(size) ? tli_prof_sample(size, alignment, zero, 0) : NULL;
    if (p)
        return p;
    errno = saved;
    return plain_alloc(size, alignment, zero);
}

/* realloc of a block p, size > 0: a realloc counts its size; if it is
 * sampled, the block moves to its own span (after the validation any
 * realloc makes, tli_usable_size's). */
void *tli_prof_count_realloc(void *p, size_t size)
{
    if (!tli_prof_count(size))
        return tli_realloc_impl(p, size);
    if (size > TL_MAX_REQUEST)
        return tli_no_memory();
    size_t old = tli_usable_size(p, "realloc");
    if (!old)
        return NULL; /* reported */
    int saved = errno;
    void *q = tli_prof_sample(size, 0, false, 0);
    if (!q) {
        errno = saved;
        return tli_realloc_impl(p, size); /* as without the sample */
    }
    memcpy(q, p, old < size ? old : size);
    tli_free_checked(p, "realloc");
    return q;
}

/* ---- writing a profile --------------------------------------------------- */
static int64_t rounded(double x) { return x <= 0 ? 0 : (int64_t)(x + 0.5); }

/* "inuse_objs: inuse_bytes [alloc_objs: alloc_bytes] @" */
static void out_counts(struct tli_buf *o, const struct figures *f)
{
    tli_buf_num(o, rounded(f->inuse_objs), 6);
    tli_buf_str(o, ": ");
    tli_buf_num(o, rounded(f->inuse_bytes), 8);
    tli_buf_str(o, " [");
    tli_buf_num(o, rounded(f->alloc_objs), 6);
    tli_buf_str(o, ": ");
    tli_buf_num(o, rounded(f->alloc_bytes), 8);
    tli_buf_str(o, "] @");
}

struct row {
    uint32_t stack;
    struct figures f;
};

static void out_maps(struct tli_buf *o)
{
    tli_buf_str(o, "\nMAPPED_LIBRARIES:\n");
    tli_buf_flush(o);
    int fd = tli_os_open_read("/proc/self/maps");
    if (fd < 0)
        return;
    long n;
    while ((n = tli_os_read(fd, o->data, sizeof o->data)) > 0) {
        o->len = (size_t)n;
        tli_buf_flush(o);
    }
    tli_os_close(fd);
}

/* The rows of every trace ever sampled and the totals, copied under the
 * lock into a mapping of *bytes; *nrows set. NULL without memory. */
static struct row *snapshot(size_t *nrows, size_t *bytes, struct figures *totals)
    TL_EXCLUDES(tli_prof_lock)
{
    uint32_t n = tli_stack_count();
    *bytes = tli_round_up(((size_t)n + 1) * sizeof(struct row), 4096);
    struct row *rows = tli_os_map(*bytes);
    if (!rows)
        return NULL;
    size_t k = 0;
    tli_lock_acquire(&tli_prof_lock);
    for (uint32_t id = 0; id < n; id++) {
        const struct figures *leaf = fig_leaves[id / FIG_LEAF];
        if (leaf && leaf[id % FIG_LEAF].alloc_objs > 0)
            rows[k++] = (struct row){id, leaf[id % FIG_LEAF]};
    }
    *totals = total;
    tli_lock_release(&tli_prof_lock);
    *nrows = k;
    return rows;
}

static void out_row(struct tli_buf *o, const struct row *r)
{
    const struct tli_stack *st = tli_stack_get(r->stack);
    if (!st)
        return;
    out_counts(o, &r->f);
    for (uint32_t d = 0; d < st->depth; d++) {
        tli_buf_str(o, " ");
        tli_buf_hex_digits(o, st->pcs[d], 8);
    }
    tli_buf_str(o, "\n");
}

/* The gperftools heap profile text format, which google-pprof reads:
 *   heap profile: <totals> @ heapprofile
 *   <inuse objs>: <inuse bytes> [<alloc objs>: <alloc bytes>] @ 0x.. 0x..
 *   (blank line) MAPPED_LIBRARIES: and /proc/self/maps
 * The figures are already unbiased estimates. No lock held. */
static int write_profile(int fd)
{
    size_t nrows, map_bytes;
    struct figures totals;
    struct row *rows = snapshot(&nrows, &map_bytes, &totals);
    if (!rows)
        return ENOMEM;
    struct tli_buf *o = tli_os_map(sizeof *o);
    if (!o) {
        tli_os_unmap(rows, map_bytes);
        return ENOMEM;
    }
    o->fd = fd;
    tli_buf_str(o, "heap profile: ");
    out_counts(o, &totals);
    tli_buf_str(o, " heapprofile\n");
    for (size_t i = 0; i < nrows; i++)
        out_row(o, &rows[i]);
    out_maps(o);
    tli_buf_flush(o);
    int err = o->err;
    tli_os_unmap(o, sizeof *o);
    tli_os_unmap(rows, map_bytes);
    return err;
}

static int dump_to(const char *path)
{
    int fd = tli_os_create(path);
    if (fd < 0)
        return -fd;
    int err = write_profile(fd);
    tli_os_close(fd);
    return err;
}

/* prefix.PID.SEQ.heap */
static void auto_name(char *name, size_t cap)
{
    struct tli_buf o = {.fd = -1};
    tli_buf_str(&o, tli_conf.prof_prefix);
    tli_buf_str(&o, ".");
    tli_buf_num(&o, tli_os_getpid(), 0);
    tli_buf_str(&o, ".");
    tli_buf_num(&o, (int64_t)atomic_fetch_add(&dump_seq, 1), 0);
    tli_buf_str(&o, ".heap");
    size_t n = o.len < cap - 1 ? o.len : cap - 1;
    memcpy(name, o.data, n);
    name[n] = 0;
}

static int dump_named(const char *path)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&dumping, &expected, 1))
        return EBUSY;
    char name[512];
    if (!path) {
        auto_name(name, sizeof name);
        path = name;
    }
    int saved = errno;
    int err = dump_to(path);
    errno = saved;
    atomic_store(&dumping, 0);
    return err;
}

static void dump_auto(void) { (void)dump_named(NULL); }

/* ---- life cycle and the public functions ---------------------------------- */
static enum tli_patch install_entries(void)
{
    enum tli_patch worst = tli_prof_install_entry();
#if TL_OVERRIDE
    enum tli_patch cxx = tli_prof_install_cxx_entries();
    if (cxx > worst)
        worst = cxx;
#endif
    return worst;
}

void tli_prof_init(void)
{
    tli_prof_enabled = tli_conf.prof && !tli_conf.check;
    if (tli_conf.prof && tli_conf.check)
        tli_warn("prof=1 is ignored in check mode", NULL);
    else if (tli_prof_enabled)
        switch (install_entries()) {
        case TLI_PATCH_DONE:
            break;
        case TLI_PATCH_WRITABLE:
            tli_warn("prof=1: a code page of malloc or operator new stayed writable after its "
                     "profiling entry was installed (mprotect refused)",
                     NULL);
            break;
        case TLI_PATCH_REFUSED:
            tli_warn("prof=1: the profiling entries of malloc and operator new could not be "
                     "installed (code pages not writable); only calloc, realloc and the "
                     "aligned allocators are sampled",
                     NULL);
            break;
        }
    atomic_store(&prof_active, tli_prof_enabled);
    tli_lock_acquire(&tli_prof_lock);
    next_interval_dump = (double)tli_conf.prof_interval;
    tli_lock_release(&tli_prof_lock);
}

/* From the constructor, outside any allocator call: libstdc++'s operator
 * new found and the unwinder's one-time set-up done (stack.c). */
void tli_prof_start(void)
{
    if (tli_prof_enabled)
        tli_stack_start();
}

void tli_prof_at_exit(void)
{
    if (tli_prof_enabled && tli_conf.prof_final)
        dump_auto();
}

void tli_prof_child_after_fork(void) { atomic_store(&dumping, 0); }

TL_EXPORT int tl_prof_dump(const char *path)
{
    tli_ensure_init();
    if (!tli_prof_enabled)
        return ENOENT;
    return dump_named(path);
}

int tli_prof_set_active(int active)
{
    if (!tli_prof_enabled)
        return ENOENT;
    atomic_store(&prof_active, active != 0);
    return 0;
}

int tli_prof_is_active(void) { return tli_prof_enabled && atomic_load(&prof_active); }

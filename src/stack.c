/* stack.c - call stacks for check mode and the heap profiler: capturing the caller's return
 * addresses without frame pointers, and the stack depot, a table of unique
 * traces that allocations refer to by number.
 *
 * Capture: libgcc's _Unwind_Backtrace, which reads the DWARF call frame
 * information every object carries on x86-64 (-fasynchronous-unwind-tables
 * is the default), so code built with -fomit-frame-pointer unwinds. The
 * libgcc_s of GCC 12 finds a pc's unwind table with glibc's
 * _dl_find_object (glibc 2.35 and later), which takes no lock and does not
 * allocate; it takes a mutex and may call malloc only for frames
 * registered at run time with __register_frame_info (JIT compilers).
 * docs/DESIGN.md compares it with libunwind and a frame-pointer walk.
 * The leading frames left out are tlmalloc's own and libstdc++'s operator
 * new (found once at start, see tli_stack_start), so that a trace begins in
 * the program's function that allocated.
 * Recursion: a thread that is inside a capture and reaches the allocator
 * again (a registered-frame unwinder's malloc, or a signal handler that
 * allocates) gets no trace: the nested capture returns 0 frames at once,
 * and its caller records the one return address it knows instead.
 *
 * Depot: an open hash of traces; entries come from the metadata arena and
 * are never freed, so an entry's number stays valid for the life of the
 * process and its frames never change once published. Lock: tli_stack_lock
 * guards the hash chains and the making of entries; it is taken with no
 * other allocator lock held and takes only the metadata lock inside (see
 * DESIGN.md, "Locks"). tli_stack_get reads without it: an entry is stored
 * in the table of numbers, and then its number published with release,
 * only once it is complete.
 */
#include "stack.h"

#include <errno.h>
#include <string.h>
#include <unwind.h>

struct tli_lock tli_stack_lock = TL_LOCK_INIT;

static __thread bool in_capture __attribute__((tls_model("initial-exec")));

/* ---- libstdc++'s operator new -------------------------------------------- */
/* They call malloc, and a trace is more useful from the program's frame
 * that said new. Written once by tli_stack_start, before any capture. */
#define MAX_NEW 8
static struct tli_os_range new_fns[MAX_NEW];
static unsigned n_new;

static bool is_operator_new(uintptr_t pc)
{
    for (unsigned i = 0; i < n_new; i++)
        if (pc >= new_fns[i].lo && pc < new_fns[i].hi)
            return true;
    return false;
}

void tli_stack_start(void)
{
    static const char *const names[MAX_NEW] = {"_Znwm",
                                               "_Znam",
                                               "_ZnwmRKSt9nothrow_t",
                                               "_ZnamRKSt9nothrow_t",
                                               "_ZnwmSt11align_val_t",
                                               "_ZnamSt11align_val_t",
                                               "_ZnwmSt11align_val_tRKSt9nothrow_t",
                                               "_ZnamSt11align_val_tRKSt9nothrow_t"};
    n_new = tli_os_function_ranges("libstdc++", names, MAX_NEW, new_fns);
    /* The unwinder's one-time set-up (libgcc's pthread_once, the lazy
     * binding of _Unwind_Backtrace) here rather than inside a malloc. */
    uintptr_t pcs[2];
    (void)tli_stack_capture(pcs, 2);
}

/* ---- capture ------------------------------------------------------------- */
struct capture {
    uintptr_t *pcs;
    unsigned max, n;
    bool skipping; /* still in tlmalloc's own leading frames */
};

static _Unwind_Reason_Code one_frame(struct _Unwind_Context *ctx, void *arg)
{
    struct capture *c = arg;
    uintptr_t pc = (uintptr_t)_Unwind_GetIP(ctx);
    if (!pc)
        return _URC_END_OF_STACK;
    if (c->skipping && (tli_in_self(pc) || is_operator_new(pc)))
        return _URC_NO_REASON;
    c->skipping = false;
    c->pcs[c->n++] = pc;
    return c->n < c->max ? _URC_NO_REASON : _URC_END_OF_STACK;
}

unsigned tli_stack_capture(uintptr_t *pcs, unsigned max)
{
    if (in_capture || max == 0)
        return 0;
    in_capture = true;
    int saved = errno;
    struct capture c = {pcs, max > TL_STACK_MAX ? TL_STACK_MAX : max, 0, true};
    _Unwind_Backtrace(one_frame, &c);
    errno = saved;
    in_capture = false;
    return c.n;
}

/* ---- the depot ------------------------------------------------------------ */
#define DEPOT_BUCKETS 16384
/* Entries by number: a root of leaves of LEAF_SLOTS, each leaf made when
 * the first number in it is given; at most ROOT_SLOTS * LEAF_SLOTS
 * entries (a million distinct traces), then intern says NULL. */
#define LEAF_SLOTS 512
#define ROOT_SLOTS 2048

static struct tli_stack **buckets TL_GUARDED_BY(tli_stack_lock); /* made on first use */
static const struct tli_stack **by_id[ROOT_SLOTS];               /* written under the lock */
static _Atomic uint32_t n_published;                             /* entries numbered so far */

static uint64_t hash_of(const uintptr_t *pcs, unsigned n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    for (unsigned i = 0; i < n; i++) {
        h ^= pcs[i];
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    return h;
}

static struct tli_stack *find(uint64_t h, const uintptr_t *pcs, unsigned n)
    TL_REQUIRES(tli_stack_lock)
{
    for (struct tli_stack *e = buckets[h % DEPOT_BUCKETS]; e; e = e->chain)
        if (e->hash == h && e->depth == n && !memcmp(e->pcs, pcs, n * sizeof *pcs))
            return e;
    return NULL;
}

/* A new entry, numbered and published; NULL without room or memory. */
static struct tli_stack *make(uint64_t h, const uintptr_t *pcs, unsigned n)
    TL_REQUIRES(tli_stack_lock)
{
    uint32_t id = atomic_load_explicit(&n_published, memory_order_relaxed);
    if (id >= ROOT_SLOTS * LEAF_SLOTS)
        return NULL;
    const struct tli_stack ***leaf = &by_id[id / LEAF_SLOTS];
    if (!*leaf && !(*leaf = tli_meta_alloc(LEAF_SLOTS * sizeof **leaf)))
        return NULL;
    struct tli_stack *e = tli_meta_alloc(sizeof *e + n * sizeof *pcs);
    if (!e)
        return NULL;
    *e = (struct tli_stack){buckets[h % DEPOT_BUCKETS], h, id, n};
    memcpy(e->pcs, pcs, n * sizeof *pcs);
    buckets[h % DEPOT_BUCKETS] = e;
    (*leaf)[id % LEAF_SLOTS] = e;
    atomic_store_explicit(&n_published, id + 1, memory_order_release);
    return e;
}

const struct tli_stack *tli_stack_intern(const uintptr_t *pcs, unsigned n)
    TL_EXCLUDES(tli_stack_lock)
{
    if (n > TL_STACK_MAX)
        n = TL_STACK_MAX;
    uint64_t h = hash_of(pcs, n);
    tli_lock_acquire(&tli_stack_lock);
    if (!buckets)
        buckets = tli_meta_alloc(DEPOT_BUCKETS * sizeof *buckets);
    struct tli_stack *e = NULL;
    if (buckets && !(e = find(h, pcs, n)))
        e = make(h, pcs, n);
    tli_lock_release(&tli_stack_lock);
    return e;
}

const struct tli_stack *tli_stack_get(uint32_t id)
{
    if (id >= atomic_load_explicit(&n_published, memory_order_acquire))
        return NULL;
    return by_id[id / LEAF_SLOTS][id % LEAF_SLOTS];
}

uint32_t tli_stack_count(void) { return atomic_load_explicit(&n_published, memory_order_acquire); }

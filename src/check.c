/* check.c - check mode (MALLOC_CHECK_=1..3 or TLMALLOC_CONF=check=1..3):
 * catches overruns, reads of uninitialised memory, writes after free,
 * double frees and leaks, at the price of speed (thread caches are off).
 *
 * A checked block is an ordinary block of at least size + 41 bytes whose
 * last 40 bytes hold a trailer:
 *     [ user bytes | canary (>= 1 byte) | trailer: size^key, site, block, next, prev ]
 * - on allocation the user bytes are filled with 0xbe (calloc: zero) and
 *   the gap after them with the canary 0xca;
 * - on free and realloc the trailer and canary are verified (an overrun
 *   shows as a changed canary), the block is filled with 0xdf and put in a
 *   quarantine of quarantine_bytes (16 MiB by default), first in first out;
 *   when it leaves the quarantine the 0xdf fill is verified (a changed byte
 *   is a write through a dangling pointer) and the block is really freed;
 * - a freed block's trailer says so, so a second free of it is a double
 *   free even while it waits in quarantine;
 * - live blocks are linked through their trailers, so at exit the leak
 *   report (leaks=1 only) groups them by allocation site, largest first.
 *
 * Lock: tl_check_lock guards the live list and the quarantine. Order:
 * registry -> check -> central lists -> page heap. Fork: taken in prepare.
 */
#include "internal.h"

#include <link.h>
#include <stdlib.h>
#include <string.h>

struct tl_lock tl_check_lock = TL_LOCK_INIT;

#define FILL_ALLOC 0xbe
#define FILL_CANARY 0xca
#define FILL_FREED 0xdf
#define FREED_MARK 0x46524545444f4e45ULL /* "FREEDONE" */

struct trailer {
    uint64_t size_key;           /* size ^ key_of(block); FREED_MARK ^ key once freed */
    uintptr_t site;              /* return address of the allocation */
    void *block;                 /* the block's start */
    struct trailer *next, *prev; /* live list, or quarantine (next only) */
};

static struct trailer live = {0, 0, NULL, &live, &live};
static struct trailer *quarantine_head, *quarantine_tail;
static size_t quarantine_bytes;
static uint64_t check_key;

void tl_check_init(void) { check_key = tl_key_secret * 0x9e3779b97f4a7c15ULL; }

static uint64_t key_of(void *p) { return (uint64_t)(uintptr_t)p * 0x100000001b3ULL ^ check_key; }

static size_t raw_usable(void *p) { return tl_usable_size(p, "free"); }

static struct trailer *trailer_of(void *p, size_t usable)
{
    return (struct trailer *)((char *)p + usable - sizeof(struct trailer));
}

/* ---- reports ------------------------------------------------------------- */
/* "tlmalloc: <what> of <p> in <who>()[: <before><n><after>]" */
static void report(void *p, const char *who, const char *what, const char *before, uint64_t n,
                   const char *after)
{
    struct tl_buf b = {.fd = 2};
    tl_buf_str(&b, "tlmalloc: ");
    tl_buf_str(&b, what);
    tl_buf_str(&b, " of ");
    tl_buf_hex(&b, (uintptr_t)p);
    tl_buf_str(&b, " in ");
    tl_buf_str(&b, who);
    tl_buf_str(&b, "()");
    if (before) {
        tl_buf_str(&b, ": ");
        tl_buf_str(&b, before);
        tl_buf_u64(&b, n);
        tl_buf_str(&b, after);
    }
    tl_buf_str(&b, "\n");
    if (tl_conf.error_action & 1) {
        tl_put_backtrace(&b);
        tl_buf_flush(&b);
    }
    if (tl_conf.error_action & 2)
        abort();
}

/* ---- the live list ---------------------------------------------------------- */
static void live_add(struct trailer *t)
{
    t->next = live.next;
    t->prev = &live;
    live.next->prev = t;
    live.next = t;
}

static void live_remove(struct trailer *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
}

/* ---- allocation ---------------------------------------------------------------- */
/* The address range of the object holding tlmalloc's code, found once:
 * telling our own frames from the caller's then costs two compares, where
 * dladdr searches symbol tables (check mode's allocation rate matters:
 * glibc's tests make millions of calls). */
static uintptr_t self_lo, self_hi;
static _Atomic int self_known; /* 0 not yet, 1 found, 2 not found */

static int find_self(struct dl_phdr_info *info, size_t len, void *arg)
{
    (void)len;
    uintptr_t me = (uintptr_t)arg, lo = UINTPTR_MAX, hi = 0;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (start < lo)
            lo = start;
        if (start + ph->p_memsz > hi)
            hi = start + ph->p_memsz;
    }
    if (me < lo || me >= hi)
        return 0;
    self_lo = lo;
    self_hi = hi;
    return 1;
}

static bool in_self(uintptr_t pc)
{
    int known = atomic_load_explicit(&self_known, memory_order_acquire);
    if (!known) {
        /* Racing threads find the same range: storing it twice is harmless. */
        known = dl_iterate_phdr(find_self, (void *)(uintptr_t)&tl_check_alloc) ? 1 : 2;
        atomic_store_explicit(&self_known, known, memory_order_release);
    }
    return known == 1 ? pc >= self_lo && pc < self_hi : tl_in_self(pc);
}

/* The allocation site: the caller's return address the public function
 * passed, else (when that lies in tlmalloc, as for a call through
 * reallocarray) the first frame outside tlmalloc. */
static uintptr_t call_site(uintptr_t caller)
{
    if (caller && !in_self(caller))
        return caller;
    uintptr_t pcs[6];
    unsigned n = tl_backtrace(pcs, 6, 0);
    for (unsigned i = 0; i < n; i++)
        if (!in_self(pcs[i]))
            return pcs[i];
    return n ? pcs[n - 1] : 0;
}

/* Lays out a checked block of `size` user bytes in p: fill (or zero) the
 * user bytes from `from`, canary up to the trailer, the size. */
static struct trailer *format_block(void *p, size_t from, size_t size, bool zero)
{
    struct trailer *t = trailer_of(p, raw_usable(p));
    if (size > from)
        memset((char *)p + from, zero ? 0 : FILL_ALLOC, size - from);
    memset((char *)p + size, FILL_CANARY, (size_t)((char *)t - (char *)p) - size);
    t->size_key = size ^ key_of(p);
    return t;
}

/* The family that allocated a block (enum tl_family) rides in the top two
 * bits of its site: return addresses are user-space, below 2^47. */
#define SITE_FAMILY_SHIFT 62
#define SITE_MASK (((uintptr_t)1 << SITE_FAMILY_SHIFT) - 1)

static void *check_alloc(size_t size, size_t alignment, bool zero, uintptr_t caller,
                         enum tl_family family)
{
    size_t inner;
    if (__builtin_add_overflow(size, sizeof(struct trailer) + 1, &inner)) {
        return tl_no_memory();
    }
    void *p = alignment > TL_ALIGNMENT ? tl_alloc_aligned(alignment, inner) : tl_alloc(inner);
    if (!p)
        return NULL;
    struct trailer *t = format_block(p, 0, size, zero);
    t->site = call_site(caller) | (uintptr_t)family << SITE_FAMILY_SHIFT;
    t->block = p;
    tl_lock_acquire(&tl_check_lock);
    live_add(t);
    tl_lock_release(&tl_check_lock);
    return p;
}

void *tl_check_alloc(size_t size, size_t alignment, bool zero, uintptr_t caller)
{
    return check_alloc(size, alignment, zero, caller, TL_FAMILY_MALLOC);
}

void *tl_check_alloc_family(size_t size, size_t alignment, enum tl_family family, uintptr_t caller)
{
    return check_alloc(size, alignment, false, caller, family);
}

/* The verified size of a live checked block, or SIZE_MAX after a report. */
static size_t verify(void *p, const char *who)
{
    if (!tl_lookup(p, who))
        return SIZE_MAX;
    size_t usable = raw_usable(p);
    struct trailer *t = trailer_of(p, usable);
    size_t room = usable - sizeof(struct trailer);
    if ((t->size_key ^ key_of(p)) == FREED_MARK) {
        report(p, who, "double free", NULL, 0, NULL);
        return SIZE_MAX;
    }
    size_t size = t->size_key ^ key_of(p);
    if (size >= room) {
        report(p, who, "heap corruption", "block trailer overwritten (overrun?), size field ", size,
               "");
        return SIZE_MAX;
    }
    const unsigned char *c = (const unsigned char *)p + size;
    for (size_t i = 0; i < room - size; i++)
        if (c[i] != FILL_CANARY) {
            report(p, who, "buffer overrun", "written past the end of its ", size, " bytes");
            return SIZE_MAX;
        }
    return size;
}

/* Releases the oldest quarantined blocks beyond the bound. Lock held. */
static void evict(size_t bound)
{
    while (quarantine_head && quarantine_bytes > bound) {
        struct trailer *t = quarantine_head;
        quarantine_head = t->next;
        if (!quarantine_head)
            quarantine_tail = NULL;
        void *p = t->block;
        size_t span = (size_t)((char *)t - (char *)p);
        /* Atomic stores: tl_check_quarantined reads without the lock. */
        __atomic_store_n(&quarantine_bytes, quarantine_bytes - (span + sizeof *t),
                         __ATOMIC_RELAXED);
        const unsigned char *c = p;
        for (size_t i = 0; i < span; i++)
            if (c[i] != FILL_FREED) {
                report(p, "free", "write after free", "byte ", i,
                       " changed after the block was freed");
                break;
            }
        tl_free_checked(p, "free");
    }
}

/* A block freed by another family than the one that allocated it, or by a
 * sized delete with another size: what the report needs, gathered under
 * the lock and reported after it (so that both sites get symbol names). */
struct mismatch {
    enum tl_family allocated_by;
    size_t size, passed; /* passed: a sized delete's size, else 0 */
    uintptr_t site;
};

static const char *const family_alloc_name[] = {"malloc", "operator new", "operator new []"};
static const char *const family_free_name[] = {"free", "operator delete", "operator delete []"};

static TL_COLD void report_mismatch(void *p, const char *who, enum tl_family freed_by,
                                    const struct mismatch *m, uintptr_t caller)
{
    struct tl_buf b = {.fd = 2};
    tl_buf_str(&b, "tlmalloc: ");
    if (m->allocated_by != freed_by) {
        tl_buf_str(&b, "alloc-dealloc mismatch (");
        tl_buf_str(&b, family_alloc_name[m->allocated_by]);
        tl_buf_str(&b, " vs ");
        tl_buf_str(&b, who);
    } else {
        tl_buf_str(&b, "new-delete size mismatch (");
        tl_buf_u64(&b, m->size);
        tl_buf_str(&b, " bytes allocated, ");
        tl_buf_u64(&b, m->passed);
        tl_buf_str(&b, " passed to sized delete");
    }
    tl_buf_str(&b, ") of ");
    tl_buf_hex(&b, (uintptr_t)p);
    tl_buf_str(&b, " in ");
    tl_buf_str(&b, who);
    tl_buf_str(&b, "()\n    allocated by ");
    tl_buf_str(&b, family_alloc_name[m->allocated_by]);
    tl_buf_str(&b, " at ");
    tl_put_frame(&b, m->site);
    tl_buf_str(&b, "    freed by ");
    tl_buf_str(&b, who);
    tl_buf_str(&b, " at ");
    tl_put_frame(&b, call_site(caller));
    if (tl_conf.error_action & 1) {
        tl_put_backtrace(&b);
        tl_buf_flush(&b);
    }
    if (tl_conf.error_action & 2)
        abort();
}

/* Frees p as `family` (with `passed` bytes from a sized delete, or 0), or
 * returns false with *m filled in when that does not match the block. */
static bool check_free(void *p, const char *who, enum tl_family family, size_t passed,
                       struct mismatch *m)
{
    tl_lock_acquire(&tl_check_lock);
    size_t size = verify(p, who);
    if (size != SIZE_MAX) {
        struct trailer *t = trailer_of(p, raw_usable(p));
        enum tl_family by = (enum tl_family)(t->site >> SITE_FAMILY_SHIFT);
        if (by != family || (passed && passed != size)) {
            *m = (struct mismatch){by, size, passed, t->site & SITE_MASK};
            tl_lock_release(&tl_check_lock);
            return false;
        }
    }
    if (size != SIZE_MAX) {
        size_t usable = raw_usable(p);
        struct trailer *t = trailer_of(p, usable);
        live_remove(t);
        memset(p, FILL_FREED, (size_t)((char *)t - (char *)p));
        t->size_key = FREED_MARK ^ key_of(p);
        t->next = NULL;
        if (quarantine_tail)
            quarantine_tail->next = t;
        else
            quarantine_head = t;
        quarantine_tail = t;
        __atomic_store_n(&quarantine_bytes, quarantine_bytes + usable, __ATOMIC_RELAXED);
        evict(tl_conf.quarantine_bytes);
    }
    tl_lock_release(&tl_check_lock);
    return true;
}

/* A mismatch the error action lets the program go on from frees the block
 * as what it is: every family shares one heap here. */
void tl_check_free_family(void *p, enum tl_family family, size_t size, uintptr_t caller)
{
    struct mismatch m;
    if (!p || check_free(p, family_free_name[family], family, size, &m))
        return;
    report_mismatch(p, family_free_name[family], family, &m, caller);
    check_free(p, family_free_name[family], m.allocated_by, 0, &m);
}

void tl_check_free(void *p, const char *who)
{
    struct mismatch m;
    if (!p || check_free(p, who, TL_FAMILY_MALLOC, 0, &m))
        return;
    report_mismatch(p, who, TL_FAMILY_MALLOC, &m, 0);
    check_free(p, who, m.allocated_by, 0, &m);
}

/* A new size that still leaves room for a canary byte keeps the block
 * where it is, as glibc keeps a block resized within its usable size
 * (programs rely on it: realloc to malloc_usable_size never moves). */
void *tl_check_realloc(void *p, size_t size, uintptr_t caller)
{
    tl_lock_acquire(&tl_check_lock);
    size_t old = verify(p, "realloc");
    bool in_place = old != SIZE_MAX && size < raw_usable(p) - sizeof(struct trailer);
    if (in_place)
        format_block(p, old, size, false);
    tl_lock_release(&tl_check_lock);
    if (old == SIZE_MAX)
        return NULL;
    if (in_place)
        return p;
    void *q = tl_check_alloc(size, 0, false, caller);
    if (!q)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    tl_check_free(p, "realloc");
    return q;
}

/* Freed bytes held back from reuse: free to the program, though not yet to
 * tlmalloc (mallinfo counts them as free). */
size_t tl_check_quarantined(void) { return __atomic_load_n(&quarantine_bytes, __ATOMIC_RELAXED); }

size_t tl_check_usable_size(void *p)
{
    tl_lock_acquire(&tl_check_lock);
    size_t size = verify(p, "malloc_usable_size");
    tl_lock_release(&tl_check_lock);
    return size == SIZE_MAX ? 0 : size;
}

/* ---- leak report ----------------------------------------------------------------- */
struct site_total {
    uintptr_t site;
    size_t blocks, bytes;
};

void tl_check_leak_report(void)
{
    if (!tl_conf.check)
        return;
    /* Blocks still in quarantine are verified now: a write after free
     * into one of them would otherwise go unseen. */
    tl_lock_acquire(&tl_check_lock);
    evict(0);
    tl_lock_release(&tl_check_lock);
    /* Opt-in only (leaks=1): tlmalloc cannot tell a block still reachable
     * at exit (stdio's buffers, a program's globals) from a lost one, so a
     * report by default would accuse correct programs, and MALLOC_CHECK_,
     * which test harnesses set for every process, must not print one. */
    if (!tl_conf.leak_report)
        return;
    enum { MAX_SITES = 4096 };
    struct site_total *sites = tl_os_map(MAX_SITES * sizeof *sites);
    if (!sites)
        return;
    size_t nsites = 0, blocks = 0, bytes = 0;
    tl_lock_acquire(&tl_check_lock);
    for (struct trailer *t = live.next; t != &live; t = t->next) {
        size_t size = t->size_key ^ key_of(t->block);
        blocks++;
        bytes += size;
        size_t i = 0;
        while (i < nsites && sites[i].site != (t->site & SITE_MASK))
            i++;
        if (i == nsites && nsites < MAX_SITES)
            sites[nsites++] = (struct site_total){t->site & SITE_MASK, 0, 0};
        if (i < nsites) {
            sites[i].blocks++;
            sites[i].bytes += size;
        }
    }
    tl_lock_release(&tl_check_lock);
    /* Largest first (insertion sort: sites are few). */
    for (size_t i = 1; i < nsites; i++)
        for (size_t j = i; j > 0 && sites[j].bytes > sites[j - 1].bytes; j--) {
            struct site_total tmp = sites[j];
            sites[j] = sites[j - 1];
            sites[j - 1] = tmp;
        }
    struct tl_buf b = {.fd = 2};
    if (blocks) {
        tl_buf_str(&b, "tlmalloc: leak report: ");
        tl_buf_u64(&b, bytes);
        tl_buf_str(&b, " bytes in ");
        tl_buf_u64(&b, blocks);
        tl_buf_str(&b, " blocks still allocated at exit\n");
    }
    for (size_t i = 0; i < nsites && i < 20; i++) {
        tl_buf_str(&b, "    ");
        tl_buf_u64(&b, sites[i].bytes);
        tl_buf_str(&b, " bytes in ");
        tl_buf_u64(&b, sites[i].blocks);
        tl_buf_str(&b, " blocks allocated at ");
        tl_put_frame(&b, sites[i].site);
    }
    tl_buf_flush(&b);
    tl_os_unmap(sites, MAX_SITES * sizeof *sites);
}

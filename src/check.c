/* check.c - check mode (MALLOC_CHECK_=1..3 or TLMALLOC_CONF=check=1..3):
 * catches overruns, underruns, reads of uninitialised memory, writes after
 * free, double frees and leaks, at the price of speed (thread caches are
 * off).
 *
 * A checked block is an ordinary block (its start: raw) laid out as
 *     [ front redzone | front word | canary word | user bytes | canary (>= 1 byte) | trailer ]
 *     raw               p - 16      p - 8         p
 * - the front is 16 bytes, or `alignment` bytes for an aligned request (so
 *   p keeps the alignment); all of it is canary 0xca except the front
 *   word, size ^ key_of(p): a write before p (an underrun) changes one of
 *   them, and the front word still gives the size when an overrun has
 *   destroyed the trailer;
 * - the trailer (64 bytes, at the end of the raw block) begins with a
 *   canary word, so a short overrun leaves the fields after it intact: the
 *   allocation and free sites, the size, a seal over them that says whether
 *   the block is live or freed, the user pointer, and the list links;
 * - on allocation the user bytes are filled with 0xbe (calloc: zero);
 * - on free and realloc both canaries, the front word and the seal are
 *   verified, the user bytes and the tail canary are filled with 0xdf and
 *   the block waits in a quarantine of quarantine_bytes (16 MiB by
 *   default), first in first out; when it leaves, the fill, the front and
 *   the trailer are verified (a change is a write through a dangling
 *   pointer) and the block is really freed;
 * - a freed block's seal says so, so a second free of it is a double free
 *   even while it waits in quarantine;
 * - at exit the quarantine is verified, then every live block (an overrun
 *   of a block never freed is reported there, before any leak line), then
 *   with leaks=1 a conservative scan (leak_scan.c) finds the live blocks
 *   nothing points to any more, and only those are reported as lost,
 *   grouped by call stack.
 * Allocation sites: with leaks=1, each allocation's call stack (up to
 * CHECK_FRAMES frames, found without frame pointers: stack.c), which the
 * leak report groups by and every report prints frame by frame; without
 * it, one return address. Free sites are one return address.
 * Reports are written after tli_check_lock is dropped.
 *
 * The raw block of a pointer is found from the pagemap, never from bytes
 * the program could have overwritten; the trailer then says whether the
 * pointer is that block's user pointer.
 *
 * Lock: tli_check_lock guards the live list and the quarantine; its place
 * in the lock order: docs/DESIGN.md, "Locks".
 */
#include "stack.h"

#include <link.h>
#include <stdlib.h>
#include <string.h>

struct tli_lock tli_check_lock = TL_LOCK_INIT;

#define FILL_ALLOC 0xbe
#define FILL_CANARY 0xca
#define FILL_FREED 0xdf
#define CANARY_WORD 0xcacacacacacacacaULL
#define LIVE_MARK 0x4c495645424c4f4bULL  /* "LIVEBLOK" */
#define FREED_MARK 0x46524545444f4e45ULL /* "FREEDONE" */
#define FRONT 16                         /* front word + canary word */

struct trailer {
    uint64_t guard;              /* CANARY_WORD: a short overrun stops here */
    uintptr_t free_site;         /* where it was freed; 0 while live */
    uintptr_t site;              /* return address of the allocation */
    uint64_t size;               /* user bytes */
    uint64_t seal;               /* LIVE_MARK or FREED_MARK ^ seal_of(user, size, site) */
    void *user;                  /* the pointer handed out */
    struct trailer *next, *prev; /* live list, or quarantine (next only) */
};
_Static_assert(sizeof(struct trailer) % 16 == 0, "the trailer keeps the block's alignment");

static struct trailer live TL_GUARDED_BY(tli_check_lock) = {0, 0, 0, 0, 0, NULL, &live, &live};
static size_t live_count TL_GUARDED_BY(tli_check_lock);
static struct trailer *quarantine_head TL_GUARDED_BY(tli_check_lock),
    *quarantine_tail TL_GUARDED_BY(tli_check_lock);
static size_t quarantine_bytes TL_GUARDED_BY(tli_check_lock);
static uint64_t check_key;

void tli_check_init(void) { check_key = tli_key_secret * 0x9e3779b97f4a7c15ULL; }

static uint64_t key_of(const void *p)
{
    return (uint64_t)(uintptr_t)p * 0x100000001b3ULL ^ check_key;
}

static uint64_t seal_of(const void *user, uint64_t size, uintptr_t site)
{
    return key_of(user) ^ size * 0x9e3779b97f4a7c15ULL ^ (uint64_t)site * 0xc2b2ae3d27d4eb4fULL;
}

static uint64_t *front_word(void *p) { return (uint64_t *)((char *)p - FRONT); }

/* ---- block geometry, from the pagemap ------------------------------------ */
struct block {
    char *raw;         /* the allocator's block */
    size_t usable;     /* its usable size */
    struct trailer *t; /* at its end */
};

/* The block holding the address tli_validate placed in w (an object of a
 * small span or a large or huge block), or false. */
static bool block_of(const struct tli_where *w, struct block *b)
{
    if (!w->block)
        return false;
    const struct span *s = w->span;
    b->raw = (char *)w->block;
    b->usable = s->state == SPAN_SMALL ? tli_classes[s->size_class].size : tli_span_bytes(s);
    if (b->usable < FRONT + sizeof(struct trailer) + 1)
        return false;
    b->t = (struct trailer *)(b->raw + b->usable - sizeof(struct trailer));
    return true;
}

/* The block holding address a (in use, small, large or huge), or false. */
static bool block_at(uintptr_t a, struct block *b)
{
    struct tli_where w;
    tli_validate((const void *)a, &w);
    return block_of(&w, b);
}

/* A huge block's mapping began at a and is gone with its free. */
static bool huge_freed_at(uintptr_t a)
{
    struct tli_where w;
    return tli_validate((const void *)a, &w) == TL_PTR_FREED_HUGE;
}

/* Is t the trailer of a block (read from the pagemap, not from t)? */
static bool trailer_plausible(const struct trailer *t)
{
    struct block b;
    return t == &live || (!((uintptr_t)t & 7) && block_at((uintptr_t)t, &b) && b.t == t);
}

/* The size the front word at p gives, if it is a plausible one. */
static bool front_size(void *p, const struct block *b, size_t *size)
{
    size_t s = *front_word(p) ^ key_of(p);
    if (s >= (size_t)((char *)b->t - (char *)p))
        return false;
    *size = s;
    return true;
}

static size_t room_of(void *p, const struct block *b) { return (size_t)((char *)b->t - (char *)p); }

/* First changed byte of [from, from + n) against fill, or -1. Word by
 * word where it can: huge blocks are verified whole on free. */
static long first_changed(const void *from, size_t n, unsigned char fill)
{
    const unsigned char *c = from;
    uint64_t word = 0x0101010101010101ULL * fill;
    size_t i = 0;
    for (; i < n && ((uintptr_t)(c + i) & 7); i++)
        if (c[i] != fill)
            return (long)i;
    for (; i + 8 <= n && *(const uint64_t *)(c + i) == word; i += 8)
        ;
    for (; i < n; i++)
        if (c[i] != fill)
            return (long)i;
    return -1;
}

/* Are the front canary bytes (all of the front but the front word) intact? */
static bool front_canary_intact(void *p, const struct block *b)
{
    size_t pad = (size_t)((char *)p - b->raw) - FRONT;
    return first_changed(b->raw, pad, FILL_CANARY) < 0 && ((uint64_t *)p)[-1] == CANARY_WORD;
}

/* ---- problems: found under the lock, reported after it ---------------- */
struct problem {
    const char *what;   /* NULL: none */
    const char *detail; /* may be NULL */
    void *p;
    size_t size; /* SIZE_MAX: unknown */
    uintptr_t site, free_site;
    long byte; /* >= 0: the first changed byte, named in the detail */
};

static void put_problem(struct tli_buf *b, const struct problem *pr, const char *who)
{
    tli_buf_str(b, "tlmalloc: ");
    tli_buf_str(b, pr->what);
    tli_buf_str(b, " of ");
    tli_buf_hex(b, (uintptr_t)pr->p);
    if (pr->size != SIZE_MAX) {
        tli_buf_str(b, " (");
        tli_buf_u64(b, pr->size);
        tli_buf_str(b, " bytes)");
    }
    if (who) {
        tli_buf_str(b, " in ");
        tli_buf_str(b, who);
        tli_buf_str(b, "()");
    } else {
        tli_buf_str(b, " found at exit");
    }
    if (pr->detail) {
        tli_buf_str(b, ": ");
        if (pr->byte >= 0) {
            tli_buf_str(b, "byte ");
            tli_buf_u64(b, (uint64_t)pr->byte);
            tli_buf_str(b, " ");
        }
        tli_buf_str(b, pr->detail);
    }
    tli_buf_str(b, "\n");
}

static void put_site(struct tli_buf *b, const char *prefix, uintptr_t site);

/* The frames of the call that found an error, from the unwinder, so that
 * code built without frame pointers is named right (the frame-pointer walk
 * skips such frames and names their callers); that walk only if the
 * unwinder gives nothing. No allocator lock held. */
static void put_backtrace_here(struct tli_buf *b)
{
    uintptr_t pcs[10];
    unsigned n = tli_stack_capture(pcs, 10);
    if (n == 0) {
        tli_put_backtrace(b);
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        tli_buf_str(b, "    at ");
        tli_put_frame(b, pcs[i]);
    }
}

/* What check mode knows of the block: where it was allocated and freed. */
static void put_sites(struct tli_buf *b, const struct problem *pr)
{
    if (pr->site)
        put_site(b, "    allocated at ", pr->site);
    if (pr->free_site)
        put_site(b, "    freed at ", pr->free_site);
}

/* who: the function the error was found in, or NULL: found at exit (no
 * backtrace: it would show only the exit handlers). Lock not held. */
static void print_problem(const struct problem *pr, const char *who)
{
    struct tli_buf b = {.fd = 2};
    if (tli_conf.error_action & 1) {
        put_problem(&b, pr, who);
        if (who)
            put_backtrace_here(&b);
        put_sites(&b, pr);
        tli_buf_flush(&b);
    }
}

static void report_problem(const struct problem *pr, const char *who)
{
    print_problem(pr, who);
    if (tli_conf.error_action & 2)
        abort();
}

/* ---- the live list ---------------------------------------------------------- */
static void live_add(struct trailer *t) TL_REQUIRES(tli_check_lock)
{
    t->next = live.next;
    t->prev = &live;
    live.next->prev = t;
    live.next = t;
    live_count++;
}

static void live_remove(struct trailer *t) TL_REQUIRES(tli_check_lock)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
    live_count--;
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
        known = dl_iterate_phdr(find_self, (void *)(uintptr_t)&tli_check_alloc) ? 1 : 2;
        atomic_store_explicit(&self_known, known, memory_order_release);
    }
    return known == 1 ? pc >= self_lo && pc < self_hi : tli_in_self(pc);
}

/* The allocation site: the caller's return address the public function
 * passed, else (when that lies in tlmalloc, as for a call through
 * reallocarray) the first frame outside tlmalloc. */
static uintptr_t call_site(uintptr_t caller)
{
    if (caller && !in_self(caller))
        return caller;
    uintptr_t pcs[6];
    unsigned n = tli_backtrace(pcs, 6, 0);
    for (unsigned i = 0; i < n; i++)
        if (!in_self(pcs[i]))
            return pcs[i];
    return n ? pcs[n - 1] : 0;
}

/* Lays out a checked block of `size` user bytes at p in b: fill (or zero)
 * the user bytes from `from`, the tail canary, the seal. The front is laid
 * out once, by new_block. */
static void format_block(void *p, const struct block *b, size_t from, size_t size, bool zero,
                         uintptr_t site)
{
    struct trailer *t = b->t;
    if (size > from)
        memset((char *)p + from, zero ? 0 : FILL_ALLOC, size - from);
    memset((char *)p + size, FILL_CANARY, room_of(p, b) - size);
    *front_word(p) = size ^ key_of(p);
    t->guard = CANARY_WORD;
    t->free_site = 0;
    t->site = site;
    t->size = size;
    t->user = p;
    t->seal = LIVE_MARK ^ seal_of(p, size, site);
}

/* The family that allocated a block (enum tli_family) rides in the top two
 * bits of its site: return addresses are user-space, below 2^47. Reports
 * and the leak report see the site without them. */
#define SITE_FAMILY_SHIFT 62
#define SITE_MASK (((uintptr_t)1 << SITE_FAMILY_SHIFT) - 1)

static enum tli_family family_of(uintptr_t site)
{
    return (enum tli_family)(site >> SITE_FAMILY_SHIFT);
}

/* With the leak report on, a site is the allocation's whole call stack:
 * bit 61 set and the number of its depot entry (stack.c) below it. A
 * number, not a pointer: a site read from a damaged block can name no
 * entry, but never make a report read wild memory. */
#define SITE_STACK ((uintptr_t)1 << 61)

/* Frames recorded per allocation with the leak report on: enough to tell
 * apart the callers of a common wrapper (a program's xmalloc, a container's
 * allocate under a C++ class), and to reach main in most programs. Depth
 * costs time: each frame is a search of its object's unwind table. Without
 * the leak report, one frame: check mode's users without leaks=1
 * (MALLOC_CHECK_ in glibc's tests) make millions of calls, and unwinding
 * costs several times what the rest of a checked malloc/free pair does. */
#define CHECK_FRAMES 16

/* The allocation site to record: with leaks=1 the call stack from the
 * unwinder, without tlmalloc's frames (no frame pointers needed); else,
 * or when the unwinder gives nothing (a capture already running in this
 * thread), the one frame call_site finds. No allocator lock held. */
static uintptr_t alloc_site(uintptr_t caller)
{
    if (!tli_conf.leak_report)
        return call_site(caller);
    uintptr_t pcs[CHECK_FRAMES];
    unsigned n = tli_stack_capture(pcs, CHECK_FRAMES);
    if (n == 0) {
        pcs[0] = call_site(caller);
        n = 1;
    }
    const struct tli_stack *stack = tli_stack_intern(pcs, n);
    return stack ? SITE_STACK | stack->id : pcs[0];
}

/* With leaks=1, call stacks are recorded: tli_stack_start's set-up is done
 * here, from the constructor, outside any allocator call. */
void tli_check_start(void)
{
    if (tli_conf.check && tli_conf.leak_report)
        tli_stack_start();
}

/* A site (family bits or not) as report lines: prefix and its first frame,
 * then each further frame of its stack after "        by ". No allocator
 * lock held (symbols are looked up). */
static void put_site(struct tli_buf *b, const char *prefix, uintptr_t site)
{
    site &= SITE_MASK;
    tli_buf_str(b, prefix);
    if (!(site & SITE_STACK)) {
        tli_put_frame(b, site);
        return;
    }
    const struct tli_stack *stack = tli_stack_get((uint32_t)(site & ~SITE_STACK));
    if (!stack) {
        tli_buf_str(b, "an unknown site\n");
        return;
    }
    for (uint32_t d = 0; d < stack->depth; d++) {
        if (d)
            tli_buf_str(b, "        by ");
        tli_put_frame(b, stack->pcs[d]);
    }
}

static void *new_block(void *raw, size_t front, size_t size, bool zero, uintptr_t site)
{
    char *p = (char *)raw + front;
    struct block b;
    if (!block_at((uintptr_t)p, &b) || b.raw != raw)
        tli_fatal("check mode: a new block is not where the pagemap says");
    memset(raw, FILL_CANARY, front);
    format_block(p, &b, 0, size, zero, site);
    tli_lock_acquire(&tli_check_lock);
    live_add(b.t);
    tli_lock_release(&tli_check_lock);
    return p;
}

static void *check_alloc(size_t size, size_t alignment, bool zero, uintptr_t caller,
                         enum tli_family family)
{
    /* The front keeps p aligned: alignment bytes before it, at least 16. */
    size_t front = alignment > FRONT ? alignment : FRONT;
    size_t inner;
    if (__builtin_add_overflow(size, front + sizeof(struct trailer) + 1, &inner))
        return tli_no_memory();
    void *raw = alignment > TL_ALIGNMENT ? tli_alloc_aligned(alignment, inner) : tli_alloc(inner);
    if (!raw)
        return NULL;
    return new_block(raw, front, size, zero,
                     alloc_site(caller) | (uintptr_t)family << SITE_FAMILY_SHIFT);
}

void *tli_check_alloc(size_t size, size_t alignment, bool zero, uintptr_t caller)
{
    return check_alloc(size, alignment, zero, caller, TL_FAMILY_MALLOC);
}

void *tli_check_alloc_family(size_t size, size_t alignment, enum tli_family family,
                             uintptr_t caller)
{
    return check_alloc(size, alignment, false, caller, family);
}

/* ---- verification ---------------------------------------------------------- */
enum verdict {
    V_OK,      /* a live checked block, intact */
    V_PROBLEM, /* *pr says what is wrong */
    V_FOREIGN  /* not in any span of ours: tli_lookup says what it is */
};

static void set_problem(struct problem *pr, const char *what, const char *detail, void *p,
                        size_t size, uintptr_t site)
{
    *pr = (struct problem){what, detail, p, size, site & SITE_MASK, 0, -1};
}

/* A trailer whose seal holds: the size and site can be believed. */
static bool trailer_state(void *p, const struct trailer *t, size_t room, uint64_t *state)
{
    if (t->user != p || t->size >= room)
        return false;
    *state = t->seal ^ seal_of(p, t->size, t->site);
    return *state == LIVE_MARK || *state == FREED_MARK;
}

/* The damage a live block p (trailer sealed live) shows, if any. */
static bool live_damage(void *p, const struct block *b, struct problem *pr)
{
    const struct trailer *t = b->t;
    size_t fsize;
    if (!front_size(p, b, &fsize) || fsize != t->size || !front_canary_intact(p, b)) {
        set_problem(pr, "buffer underrun", "written before its start", p, t->size, t->site);
        return true;
    }
    if (t->guard != CANARY_WORD ||
        first_changed((char *)p + t->size, room_of(p, b) - t->size, FILL_CANARY) >= 0) {
        set_problem(pr, "buffer overrun", "written past its end", p, t->size, t->site);
        return true;
    }
    return false;
}

/* Checks p before free, realloc or malloc_usable_size. Lock held. */
static enum verdict verify(void *p, struct block *b, struct problem *pr) TL_REQUIRES(tli_check_lock)
{
    uintptr_t a = (uintptr_t)p;
    struct tli_where w;
    enum tli_verdict v = tli_validate(p, &w);
    if (v == TL_PTR_FOREIGN || v == TL_PTR_FREED_HUGE) {
        /* A huge block's mapping goes on free: a second free finds no span.
         * Its mapping began at p - 16, or at p - alignment (a page, or more:
         * the page boundary below p is then tried). */
        uintptr_t page_below = (a - 1) & ~(uintptr_t)(TL_PAGE_SIZE - 1);
        if (a > FRONT && (huge_freed_at(a - FRONT) || huge_freed_at(page_below))) {
            set_problem(pr, "double free", NULL, p, SIZE_MAX, 0);
            return V_PROBLEM;
        }
        return V_FOREIGN;
    }
    /* The user's pointer lies FRONT or more into the allocator's block. */
    if ((a & 15) || !block_of(&w, b) || a < (uintptr_t)b->raw + FRONT) {
        set_problem(pr, "invalid pointer", "pointer into the middle of a block", p, SIZE_MAX, 0);
        return V_PROBLEM;
    }
    const struct trailer *t = b->t;
    size_t room = room_of(p, b), fsize;
    uint64_t state;
    if (trailer_state(p, t, room, &state)) {
        if (state == FREED_MARK) {
            set_problem(pr, "double free", NULL, p, t->size, t->site);
            pr->free_site = t->free_site;
            return V_PROBLEM;
        }
        return live_damage(p, b, pr) ? V_PROBLEM : V_OK;
    }
    /* The trailer does not name p: p is not a block, or an overrun has
     * written over the trailer. The front word tells them apart. */
    if (front_size(p, b, &fsize) && front_canary_intact(p, b))
        set_problem(pr, "buffer overrun", "written past its end, over the block's trailer", p,
                    fsize, 0);
    else if (t->user == p)
        set_problem(pr, "heap corruption", "the block's front and trailer are both overwritten", p,
                    SIZE_MAX, 0);
    else
        set_problem(pr, "invalid pointer", "pointer into the middle of a block", p, SIZE_MAX, 0);
    return V_PROBLEM;
}

/* After the lock is dropped: the report of a verdict. */
static void report_verdict(enum verdict v, const struct problem *pr, void *p, const char *who)
{
    if (v == V_PROBLEM)
        report_problem(pr, who);
    else if (v == V_FOREIGN)
        tli_lookup(p, who); /* reports it (not ours, or a huge block freed before) */
}

/* ---- quarantine -------------------------------------------------------------- */
/* The damage a quarantined block shows, if any: a write after free. */
static bool freed_damage(const struct block *b, struct problem *pr)
{
    const struct trailer *t = b->t;
    void *p = t->user;
    uint64_t state = 0;
    if ((uintptr_t)p < (uintptr_t)b->raw + FRONT || (uintptr_t)p >= (uintptr_t)t ||
        ((uintptr_t)p & 15) || !trailer_state(p, t, room_of(p, b), &state) || state != FREED_MARK) {
        set_problem(pr, "write after free", "the freed block's trailer was overwritten",
                    b->raw + FRONT, SIZE_MAX, 0);
        return true;
    }
    set_problem(pr, "write after free", NULL, p, t->size, t->site);
    pr->free_site = t->free_site;
    size_t fsize;
    if (t->guard != CANARY_WORD || !front_size(p, b, &fsize) || fsize != t->size ||
        !front_canary_intact(p, b)) {
        pr->detail = "the bytes around the freed block changed";
        return true;
    }
    pr->byte = first_changed(p, room_of(p, b), FILL_FREED);
    pr->detail = "changed after the block was freed";
    return pr->byte >= 0;
}

/* Releases the oldest quarantined blocks beyond the bound; the first
 * damaged one goes to *pr. Lock held. */
static void evict(size_t bound, struct problem *pr) TL_REQUIRES(tli_check_lock)
{
    while (quarantine_head && quarantine_bytes > bound) {
        struct trailer *t = quarantine_head;
        struct block b = {0};
        if (!trailer_plausible(t)) { /* cannot happen: the links live in trailers we wrote */
            quarantine_head = quarantine_tail = NULL;
            __atomic_store_n(&quarantine_bytes, 0, __ATOMIC_RELAXED);
            break;
        }
        block_at((uintptr_t)t, &b);
        quarantine_head = t->next;
        if (!quarantine_head || !trailer_plausible(quarantine_head))
            quarantine_head = quarantine_tail = NULL;
        /* Atomic stores: tli_check_quarantined reads without the lock. */
        size_t left = quarantine_bytes > b.usable ? quarantine_bytes - b.usable : 0;
        __atomic_store_n(&quarantine_bytes, left, __ATOMIC_RELAXED);
        struct problem found;
        if (freed_damage(&b, &found) && !pr->what)
            *pr = found;
        tli_free_checked(b.raw, "free");
    }
}

static void quarantine_add(void *p, const struct block *b, uintptr_t free_site)
    TL_REQUIRES(tli_check_lock)
{
    struct trailer *t = b->t;
    live_remove(t);
    memset(p, FILL_FREED, room_of(p, b));
    t->free_site = free_site;
    t->seal = FREED_MARK ^ seal_of(p, t->size, t->site);
    t->next = NULL;
    if (quarantine_tail)
        quarantine_tail->next = t;
    else
        quarantine_head = t;
    quarantine_tail = t;
    __atomic_store_n(&quarantine_bytes, quarantine_bytes + b->usable, __ATOMIC_RELAXED);
}

/* A block found damaged is not freed (its neighbours' bytes may be
 * wrong too); it leaves the live list if its links can be believed, so
 * that the exit check does not report it twice. */
static void drop_damaged(void *p, const struct block *b) TL_REQUIRES(tli_check_lock)
{
    uint64_t state;
    if (b->t && trailer_state(p, b->t, room_of(p, b), &state) && state == LIVE_MARK &&
        trailer_plausible(b->t->next) && trailer_plausible(b->t->prev))
        live_remove(b->t);
}

/* A block freed by another family than the one that allocated it, or by a
 * sized delete with another size: what the report needs, gathered under
 * the lock and reported after it (so that both sites get symbol names). */
struct mismatch {
    enum tli_family allocated_by;
    size_t size, passed; /* passed: a sized delete's size, else 0 */
    uintptr_t site;
};

static const char *const family_alloc_name[] = {"malloc", "operator new", "operator new []"};
static const char *const family_free_name[] = {"free", "operator delete", "operator delete []"};

static TL_COLD void report_mismatch(void *p, const char *who, enum tli_family freed_by,
                                    const struct mismatch *m, uintptr_t free_site)
{
    struct tli_buf b = {.fd = 2};
    tli_buf_str(&b, "tlmalloc: ");
    if (m->allocated_by != freed_by) {
        tli_buf_str(&b, "alloc-dealloc mismatch (");
        tli_buf_str(&b, family_alloc_name[m->allocated_by]);
        tli_buf_str(&b, " vs ");
        tli_buf_str(&b, who);
    } else {
        tli_buf_str(&b, "new-delete size mismatch (");
        tli_buf_u64(&b, m->size);
        tli_buf_str(&b, " bytes allocated, ");
        tli_buf_u64(&b, m->passed);
        tli_buf_str(&b, " passed to sized delete");
    }
    tli_buf_str(&b, ") of ");
    tli_buf_hex(&b, (uintptr_t)p);
    tli_buf_str(&b, " in ");
    tli_buf_str(&b, who);
    tli_buf_str(&b, "()\n    allocated by ");
    tli_buf_str(&b, family_alloc_name[m->allocated_by]);
    put_site(&b, " at ", m->site);
    tli_buf_str(&b, "    freed by ");
    tli_buf_str(&b, who);
    put_site(&b, " at ", free_site);
    if (tli_conf.error_action & 1) {
        put_backtrace_here(&b);
        tli_buf_flush(&b);
    }
    if (tli_conf.error_action & 2)
        abort();
}

/* Frees p as `family` (with `passed` bytes from a sized delete, or 0), or
 * returns false with *m filled in, freeing nothing, when that does not
 * match the block. */
static bool free_at(void *p, const char *who, uintptr_t free_site, enum tli_family family,
                    size_t passed, struct mismatch *m)
{
    struct block b = {0}; /* b.t stays NULL if p is in no block */
    struct problem pr = {0}, evicted = {0};
    tli_lock_acquire(&tli_check_lock);
    enum verdict v = verify(p, &b, &pr);
    if (v == V_OK) {
        enum tli_family by = family_of(b.t->site);
        if (by != family || (passed && passed != b.t->size)) {
            *m = (struct mismatch){by, b.t->size, passed, b.t->site & SITE_MASK};
            tli_lock_release(&tli_check_lock);
            return false;
        }
        quarantine_add(p, &b, free_site);
        evict(tli_conf.quarantine_bytes, &evicted);
    } else if (v == V_PROBLEM) {
        drop_damaged(p, &b);
    }
    tli_lock_release(&tli_check_lock);
    report_verdict(v, &pr, p, who);
    if (evicted.what)
        report_problem(&evicted, "free");
    return true;
}

/* A mismatch the error action lets the program go on from frees the block
 * as what it is: every family shares one heap here. */
static void free_as(void *p, const char *who, uintptr_t free_site, enum tli_family family,
                    size_t passed)
{
    struct mismatch m;
    if (free_at(p, who, free_site, family, passed, &m))
        return;
    report_mismatch(p, who, family, &m, free_site);
    free_at(p, who, free_site, m.allocated_by, 0, &m);
}

void tli_check_free_family(void *p, enum tli_family family, size_t size, uintptr_t caller)
{
    if (p)
        free_as(p, family_free_name[family], call_site(caller), family, size);
}

void tli_check_free_at(void *p, const char *who, uintptr_t caller)
{
    if (p)
        free_as(p, who, call_site(caller), TL_FAMILY_MALLOC, 0);
}

void tli_check_free(void *p, const char *who) { tli_check_free_at(p, who, 0); }

/* A new size that still leaves room for a canary byte keeps the block
 * where it is, as glibc keeps a block resized within its usable size
 * (programs rely on it: realloc to malloc_usable_size never moves). */
void *tli_check_realloc(void *p, size_t size, uintptr_t caller)
{
    struct block b;
    struct problem pr = {0};
    tli_lock_acquire(&tli_check_lock);
    enum verdict v = verify(p, &b, &pr);
    size_t old = v == V_OK ? b.t->size : 0;
    bool in_place = v == V_OK && size < room_of(p, &b);
    if (in_place)
        format_block(p, &b, old, size, false, b.t->site);
    tli_lock_release(&tli_check_lock);
    if (v != V_OK) {
        report_verdict(v, &pr, p, "realloc");
        return NULL;
    }
    if (in_place)
        return p;
    void *q = tli_check_alloc(size, 0, false, caller);
    if (!q)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    free_as(p, "realloc", call_site(caller), TL_FAMILY_MALLOC, 0);
    return q;
}

/* Freed bytes held back from reuse: free to the program, though not yet to
 * tlmalloc (mallinfo counts them as free). */
size_t tli_check_quarantined(void) { return __atomic_load_n(&quarantine_bytes, __ATOMIC_RELAXED); }

size_t tli_check_usable_size(void *p)
{
    struct block b;
    struct problem pr = {0};
    tli_lock_acquire(&tli_check_lock);
    enum verdict v = verify(p, &b, &pr);
    size_t size = v == V_OK ? b.t->size : 0;
    tli_lock_release(&tli_check_lock);
    if (v == V_PROBLEM && !strcmp(pr.what, "double free"))
        pr.what = "already freed block"; /* not a free: the pointer is free */
    report_verdict(v, &pr, p, "malloc_usable_size");
    return size;
}

/* ---- at exit ------------------------------------------------------------------ */
/* The user pointer of a live block whose trailer may be overwritten: the
 * trailer's if it lies in the block, else the first front that verifies. */
static void *user_of(const struct block *b)
{
    const struct trailer *t = b->t;
    uintptr_t a = (uintptr_t)t->user;
    if (a >= (uintptr_t)b->raw + FRONT && a < (uintptr_t)t && !(a & 15))
        return t->user;
    size_t size;
    for (size_t front = FRONT; front < b->usable - sizeof *t; front *= 2)
        if (front_size(b->raw + front, b, &size) && front_canary_intact(b->raw + front, b))
            return b->raw + front;
    return b->raw + FRONT;
}

/* One live block at exit: its entry for the leak scan, and its damage
 * (a block never freed is verified here or never). */
static void visit_live(struct trailer *t, struct tli_scan_block *e, struct problem *pr)
{
    struct block b = {0};
    block_at((uintptr_t)t, &b); /* trailer_plausible said it is there */
    void *p = user_of(&b);
    uint64_t state;
    size_t fsize;
    *e = (struct tli_scan_block){(uintptr_t)p, 0, 0, TL_SCAN_DAMAGED};
    pr->what = NULL;
    if (trailer_state(p, t, room_of(p, &b), &state) && state == LIVE_MARK) {
        if (!live_damage(p, &b, pr))
            *e = (struct tli_scan_block){(uintptr_t)p, t->size, t->site & SITE_MASK, TL_SCAN_LIVE};
    } else if (front_size(p, &b, &fsize) && front_canary_intact(p, &b)) {
        set_problem(pr, "buffer overrun", "written past its end, over the block's trailer", p,
                    fsize, 0);
    } else {
        set_problem(pr, "heap corruption", "the block's front and trailer are both overwritten", p,
                    SIZE_MAX, 0);
    }
}

/* Walks the live list forwards, and if a damaged trailer breaks it,
 * backwards from its other end up to the break. Lock held. */
static size_t collect_live(struct tli_scan_block *blocks, struct problem *probs, size_t cap,
                           size_t *nprobs) TL_REQUIRES(tli_check_lock)
{
    size_t n = 0;
    struct trailer *t = live.next, *last = &live;
    for (; t != &live && n < cap && trailer_plausible(t); last = t, t = t->next) {
        visit_live(t, &blocks[n], &probs[*nprobs]);
        *nprobs += probs[*nprobs].what != NULL;
        n++;
    }
    if (t == &live)
        return n;
    for (t = live.prev; t != &live && t != last && n < cap && trailer_plausible(t); t = t->prev) {
        visit_live(t, &blocks[n], &probs[*nprobs]);
        *nprobs += probs[*nprobs].what != NULL;
        n++;
    }
    return n;
}

struct site_total {
    uintptr_t site;
    size_t blocks, bytes;
};

/* Groups the lost blocks by allocation site (with leaks=1, the whole call
 * stack: one depot entry per distinct stack), largest first (the array of
 * blocks is reused: it is not needed after). Returns the number of sites. */
static size_t group_lost(struct tli_scan_block *blocks, size_t n, struct site_total *sites,
                         size_t max_sites)
{
    size_t nsites = 0;
    for (size_t k = 0; k < n; k++) {
        if (blocks[k].state != TL_SCAN_LIVE)
            continue;
        size_t i = 0;
        while (i < nsites && sites[i].site != blocks[k].site)
            i++;
        if (i == nsites && nsites < max_sites)
            sites[nsites++] = (struct site_total){blocks[k].site, 0, 0};
        if (i < nsites) {
            sites[i].blocks++;
            sites[i].bytes += blocks[k].size;
        }
    }
    for (size_t i = 1; i < nsites; i++) /* insertion sort: sites are few */
        for (size_t j = i; j > 0 && sites[j].bytes > sites[j - 1].bytes; j--) {
            struct site_total tmp = sites[j];
            sites[j] = sites[j - 1];
            sites[j - 1] = tmp;
        }
    return nsites;
}

static void put_leaks(struct tli_scan_block *blocks, size_t n, struct site_total *sites,
                      size_t max_sites)
{
    size_t lost = 0, lost_bytes = 0, kept = 0, kept_bytes = 0;
    for (size_t k = 0; k < n; k++) {
        if (blocks[k].state == TL_SCAN_LIVE) {
            lost++;
            lost_bytes += blocks[k].size;
        } else if (blocks[k].state == TL_SCAN_REACHED) {
            kept++;
            kept_bytes += blocks[k].size;
        }
    }
    if (!lost)
        return; /* blocks still reachable are not leaks */
    size_t nsites = group_lost(blocks, n, sites, max_sites);
    struct tli_buf b = {.fd = 2};
    tli_buf_str(&b, "tlmalloc: leak report: ");
    tli_buf_u64(&b, lost_bytes);
    tli_buf_str(&b, " bytes in ");
    tli_buf_u64(&b, lost);
    tli_buf_str(&b, " blocks definitely lost (nothing points to them); ");
    tli_buf_u64(&b, kept_bytes);
    tli_buf_str(&b, " bytes in ");
    tli_buf_u64(&b, kept);
    tli_buf_str(&b, " blocks still reachable\n");
    for (size_t i = 0; i < nsites && i < 20; i++) {
        tli_buf_str(&b, "    ");
        tli_buf_u64(&b, sites[i].bytes);
        tli_buf_str(&b, " bytes in ");
        tli_buf_u64(&b, sites[i].blocks);
        put_site(&b, " blocks lost, allocated at ", sites[i].site);
    }
    tli_buf_flush(&b);
}

/* At exit: the quarantine and every live block are verified (reported
 * before any leak line); with leaks=1 the live blocks nothing points to
 * any more are reported as lost. */
void tli_check_leak_report(void)
{
    if (!tli_conf.check)
        return;
    enum { MAX_SITES = 4096 };
    uintptr_t stack_from = (uintptr_t)__builtin_frame_address(0);
    struct problem evicted = {0};
    tli_lock_acquire(&tli_check_lock);
    evict(0, &evicted);
    size_t cap = live_count + 1;
    size_t bytes = cap * (sizeof(struct tli_scan_block) + sizeof(struct problem)) +
                   MAX_SITES * sizeof(struct site_total);
    char *area = tli_os_map(bytes);
    size_t n = 0, nprobs = 0;
    struct tli_scan_block *blocks = (struct tli_scan_block *)area;
    struct problem *probs = (struct problem *)(blocks + cap);
    struct site_total *sites = (struct site_total *)(probs + cap);
    if (area) {
        n = collect_live(blocks, probs, cap, &nprobs);
        if (tli_conf.leak_report)
            tli_leak_scan(blocks, n, stack_from, area, bytes);
    }
    tli_lock_release(&tli_check_lock);
    /* Errors first, all of them, then one abort. */
    if (evicted.what)
        print_problem(&evicted, NULL);
    for (size_t i = 0; i < nprobs; i++)
        print_problem(&probs[i], NULL);
    if (tli_conf.leak_report && area)
        put_leaks(blocks, n, sites, MAX_SITES);
    if (area)
        tli_os_unmap(area, bytes);
    if ((evicted.what || nprobs) && (tli_conf.error_action & 2))
        abort();
}

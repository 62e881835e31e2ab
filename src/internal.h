/* internal.h - the metadata of tlmalloc and the invariants every layer relies
 * on. Read this before any .c file.
 *
 * Address space
 *  - A "page" here is TL_PAGE_SIZE (8 KiB), two kernel pages. Spans start
 *    and end on page boundaries.
 *  - Memory comes in three bands by request size:
 *      small  (<= TL_SMALL_MAX, 64 KiB): rounded up to a size class; objects
 *             of one class are carved from a span; cached per thread;
 *      large  (< huge threshold, 256 MiB by default): a span of whole pages
 *             from the page heap;
 *      huge   (> huge threshold): its own mmap, unmapped on free.
 *
 * Invariants
 *  I1 Every block handed to a user is 16-byte aligned, and so is every
 *     class size; object k of a small span starts at span->start + k*size.
 *  I2 pagemap: every page of an in-use small or large span maps to its
 *     span; a huge span maps its first page only (every page in check
 *     mode, which finds a block from any address in it); a free span maps
 *     only its first and last page (for coalescing); other pages map to no
 *     span: NULL, or tli_no_span where a span's pointer was before (see
 *     I3). A pointer whose page maps to no span is
 *     not ours; tli_pagemap_span() reads both as NULL.
 *  I3 The pagemap's class of a page (its hot entry's size_class) is the
 *     span's size class when the span is small and in use, else 0. Class 0
 *     is never a real class, and its thread cache list never has a head or
 *     room, so the fast paths need no other test to leave for the slow
 *     path. A page never has a class without a span pointer and its
 *     hot entry's start and limit: setting a small span stores the
 *     pointer, the start and limit, then the class (release); clearing
 *     stores class 0, then the pointer. The free fast path loads the class
 *     with acquire and then reads only the hot entry (one line of the
 *     heap's) and its class's division constants (tli_class_div, written
 *     once at init). A free racing with the span's last free (a double
 *     free or a free of a block in use elsewhere) may read a newer span's
 *     start and limit; as with the span
 *     pointer that free read before this layout, it is not always caught.
 *     A cleared span pointer is tli_no_span, which fails every object-start
 *     test; tli_pagemap_span() reads it as NULL.
 *  I4 A free object's first word is the encoded link to the next free
 *     object (tli_link_set: keyed by the word's own address); its second
 *     word is a key that says where the object is: tli_free_key(p) in a
 *     thread cache list or a transfer batch, tli_span_key(p) in its span's
 *     free list. Both words are zero once the block is handed out
 *     (tli_clear_free_words). Every object is at least 16 bytes, so both
 *     words exist. The key is checked where the object is taken off a
 *     list - the pop of malloc's fast path, every walk of a list - not
 *     where it is pushed: free only stores it, so that the free fast path
 *     reads no line of the block (a block freed long ago is out of the
 *     cache, and a load that misses stalls free; a store does not). A block
 *     pushed twice is thus found when one of its two places is taken: the
 *     first hand-out clears the key, so the second pop finds it wrong, and
 *     a UAF write over the key is found the same way. Hand-outs clear it;
 *     list walks follow a link only after checking its key, so they never
 *     follow a link the user wrote. Each move between the two kinds of
 *     list checks one key and writes the other, so a block cannot enter
 *     its span's list twice. What free still sees at once costs no cold
 *     line: a block that is already its list's head (free(p); free(p)),
 *     and, on the slow path, a block carrying either key.
 *  I5 A span's metadata (struct span) never lives inside the span. A page
 *     heap span's struct is the pagemap slot of its first page: a slot is
 *     in use exactly while a span starts on that page, so splitting needs
 *     no allocation and joining frees nothing, and the slots of pages deep
 *     inside an unbacked free span are given back to the OS with its pages
 *     (a 1 GiB peak otherwise leaves ~9 MiB of span structs resident).
 *     Huge spans' structs come from a pool in the metadata arena. Slots and
 *     pool structs are never unmapped, so a stale pointer reads a zeroed or
 *     reused struct, never a fault.
 *  I6 Only the page heap lock's holder changes a span's page range or state
 *     free<->in use; only the central list lock's holder of a small span's
 *     class changes that span's object lists and counts.
 */
#ifndef TL_INTERNAL_H
#define TL_INTERNAL_H

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "memcheck.h"
#include "os.h"

/* Everything declared from here on is internal to the library: the
 * compiler may address it directly instead of through the GOT. */
#pragma GCC visibility push(hidden)

#define TL_EXPORT __attribute__((visibility("default")))
#define TL_LIKELY(x) __builtin_expect(!!(x), 1)
#define TL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TL_NOINLINE __attribute__((noinline))
#define TL_COLD __attribute__((cold, noinline))
/* noipa: callers must not learn from the body (that it never returns, say);
 * gcc only, clang has no such attribute. */
#if defined(__clang__)
#define TL_NOIPA __attribute__((noinline))
#else
#define TL_NOIPA __attribute__((noipa))
#endif

/* ---- geometry ---------------------------------------------------------- */
#define TL_PAGE_SHIFT 13
#define TL_PAGE_SIZE ((size_t)1 << TL_PAGE_SHIFT)
#define TL_ALIGNMENT 16
#define TL_SMALL_MAX ((size_t)64 << 10)
#define TL_MAX_CLASSES 81 /* 80 classes and the unused class 0 */
/* Requests above this cannot be satisfied (glibc's limit too). */
#define TL_MAX_REQUEST ((size_t)PTRDIFF_MAX - ((size_t)1 << 26))

/* The answer to a request that cannot be met: NULL with errno ENOMEM. */
static inline void *tli_no_memory(void)
{
    errno = ENOMEM;
    return NULL;
}

static inline size_t tli_round_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
static inline size_t tli_pages_for(size_t bytes)
{
    return (bytes + TL_PAGE_SIZE - 1) >> TL_PAGE_SHIFT;
}

/* ---- locks -------------------------------------------------------------- *
 * What each guards: the comment at its definition. The order in which they
 * nest: docs/DESIGN.md, "Locks". */
extern struct tli_lock tli_page_heap_lock;
extern struct tli_lock tli_pagemap_lock;
extern struct tli_lock tli_meta_lock;
extern struct tli_lock tli_central_locks[TL_MAX_CLASSES];
extern struct tli_lock tli_registry_lock;
extern struct tli_lock tli_check_lock;
extern struct tli_lock tli_prof_lock;

/* ---- debug checks (heapcheck.c) ----------------------------------------- *
 * TL_ASSERT(e): an invariant of this file that the code at hand relies on;
 * TL_ASSERT_SLOW(e): one that walks a whole structure. Both are checked in
 * debug builds (./configure --enable-debug) only, and never on the fast
 * paths. A failure is reported with write(2), naming file, line and
 * expression, and aborts. */
#ifdef TL_DEBUG
TL_COLD _Noreturn void tli_assert_fail(const char *file, int line, const char *expr);
#define TL_ASSERT(e) (TL_LIKELY(e) ? (void)0 : tli_assert_fail(__FILE__, __LINE__, #e))
#define TL_ASSERT_SLOW(e) TL_ASSERT(e)
/* Every debug_check_every-th slow path runs the whole-heap walk; no lock
 * held. */
void tli_debug_tick(void);
#else
#define TL_ASSERT(e) ((void)sizeof(e))
#define TL_ASSERT_SLOW(e) ((void)sizeof(e))
static inline void tli_debug_tick(void) {}
#endif
/* The whole-heap walk: every invariant checked, each problem reported on
 * stderr; returns how many it found. Takes every lock but the registry's
 * and the check lock, so none may be held. */
TL_EXPORT size_t tl_heap_check(void);

/* ---- size classes (size_class.c) ------------------------------------- */
struct size_class_info { /* 32 bytes: one shift to index */
    uint32_t size;       /* object size, a multiple of 16 */
    uint16_t span_pages; /* pages in one span of this class */
    uint16_t batch;      /* objects moved at once between thread and central */
    uint32_t objects;    /* objects per span */
    uint32_t div_shift;  /* exact-division test for size: see tli_divides */
    uint64_t div_inv;
    uint64_t div_limit;
};
extern struct size_class_info tli_classes[TL_MAX_CLASSES];
extern unsigned tli_num_classes; /* classes are 1..tli_num_classes-1 */
/* Class of a size: indexed by the size itself up to 1024 bytes, and by
 * (size+127)>>7 in the second table up to TL_SMALL_MAX. 0 until init.
 * The first is a byte per size, not per 16 bytes, so that malloc's fast
 * path indexes it without rounding the size first: two instructions for
 * 960 bytes (DESIGN.md, "Size classes"). */
extern uint8_t tli_class_small[1024 + 1];
extern uint8_t tli_class_medium[(64 << 10) / 128 + 1];

static inline unsigned tli_size_to_class(size_t size)
{
    if (TL_LIKELY(size <= 1024))
        return tli_class_small[size];
    if (size <= TL_SMALL_MAX)
        return tli_class_medium[(size + 127) >> 7];
    return 0;
}
void tli_size_classes_init(void);

/* Each class's exact-division constants (tli_divides), as the object-start
 * tests read them (free's on the hot entry, tli_is_object_start on the
 * span): by class, with one base address for both. Class 0's admit only offset 0
 * of a page that has no small span; its list never has room (I3). Written
 * once at init. */
struct tli_class_div {
    uint64_t inv[TL_MAX_CLASSES];
    uint8_t shift[TL_MAX_CLASSES];
};
extern struct tli_class_div tli_class_div;

/* offset is a multiple of the size whose constants these are: the
 * divisibility test of Granlund and Montgomery (one multiply, one rotate). */
static inline bool tli_divides(uint64_t inv, uint64_t limit, unsigned shift, uint64_t offset)
{
    uint64_t x = offset * inv;
    x = (x >> shift) | (x << ((64 - shift) & 63));
    return x <= limit;
}

/* offset is a multiple of class cls's size, at most limit times: the
 * object-start test of a span (tli_is_object_start) and of a page's hot
 * entry (tli_hot_is_object_start), with the class's constants. */
static inline bool tli_class_divides(unsigned cls, uint64_t limit, uint64_t offset)
{
    return tli_divides(tli_class_div.inv[cls], limit, tli_class_div.shift[cls], offset);
}

/* ---- spans --------------------------------------------------------------- */
enum span_state { SPAN_FREE = 0, SPAN_SMALL, SPAN_LARGE, SPAN_HUGE };

struct span {
    /* The first 32 bytes hold what the object-start test reads of a span
     * (tli_is_object_start: the slow path's validation and the central
     * list's walks; the free fast path reads the page's hot entry
     * instead); the class's division constants come from tli_class_div.
     * A page heap span's struct sits in a 96-byte pagemap slot (I5), at
     * offset 0 or 32 of a cache line, so they never straddle two lines. */
    uintptr_t start;    /* first byte; page aligned */
    uint64_t div_limit; /* small: the highest object index carved (tli_span_set_carved) */
    uint8_t state;      /* enum span_state */
    uint8_t size_class; /* small spans only */
    uint8_t clean;      /* free or large: every byte is known to be zero */
    uint8_t unbacked;   /* free: not resident: given back to the OS, or never touched */
    uint8_t in_bin;     /* free: on a page heap bin list */
    uint8_t on_central; /* small: in its central list's partial heap */
    uint8_t sampled;    /* large or huge: a profiler's sample; free_list holds its record */
    size_t npages;      /* length in pages (huge: bytes mapped >> page shift) */
    uint32_t allocated; /* small: objects out of the span (caches or users) */
    uint32_t carved;    /* small: objects taken from the never-used tail */
    uint64_t free_list; /* small: encoded list of its free objects; sampled:
                           the profiler's record (prof.c) */
    /* Free: bin list. Small: the central list's heap of partial spans
     * (pairing heap, highest address on top): next sibling, and prev, the
     * left sibling or, for a first child, the parent. */
    struct span *next, *prev;
    union {
        struct span *lru_next;   /* free and dirty: decay order */
        struct span *heap_child; /* small, partial: first child in the heap */
    };
    struct span *lru_prev;
    uint64_t freed_ms; /* free: when it last became free */
    uint8_t pad[8];    /* to the 96-byte slot (I5) */
};
/* The layout promises the free fast path and the pagemap rely on. */
_Static_assert(sizeof(struct span) == 96, "a span is one 96-byte pagemap slot (I5)");
_Static_assert(offsetof(struct span, size_class) < 32 && offsetof(struct span, div_limit) < 32,
               "the object-start test reads one line of a span");

/* Bytes a span covers: for a large or huge block, what the user may use. */
static inline size_t tli_span_bytes(const struct span *s) { return s->npages << TL_PAGE_SHIFT; }

/* p is the start of an object of small span s that has been carved, so
 * never a pointer into the span's tail or to an object not yet handed out.
 * For a multiple of the size, the divisibility test's value is the
 * quotient (the object's index), so bounding the index costs nothing: the
 * span's limit is the highest index carved, not the class's. Read without
 * the class lock: it only grows while the span is in use. */
static inline bool tli_is_object_start(const struct span *s, uintptr_t p)
{
    return tli_class_divides(s->size_class, __atomic_load_n(&s->div_limit, __ATOMIC_RELAXED),
                             p - s->start);
}

/* Class lock held: objects [0, carved) of s may be freed (carved 0 still
 * admits object 0, carved next under the same lock hold). Sets the span's
 * limit and its pages' copies (pagemap.c). */
void tli_span_set_carved(struct span *s, uint32_t carved);

/* ---- pagemap (pagemap.c) ----------------------------------------------- *
 * A two-level radix tree over the 48-bit address space: 17 bits of root,
 * 18 bits of leaf, 13 bits of page offset. Leaves are mapped on demand. */
#define TL_PM_LEAF_BITS 18
#define TL_PM_ROOT_BITS (48 - TL_PAGE_SHIFT - TL_PM_LEAF_BITS)
#define TL_PM_LEAF_SIZE ((size_t)1 << TL_PM_LEAF_BITS)
/* What the free fast path needs of a page, in one 16-byte entry (four to
 * a cache line): the class (I3) and, for a page of a small span, a copy of
 * the span's start and carved limit. The class's own division constants
 * come from tli_class_div, indexed by the class just read: a line every
 * free of any class shares, so it stays in the cache, while the hot
 * entries cover the whole heap, 32 KiB of it per line. On a heap larger
 * than the cache this line is free's one metadata miss, and half the
 * entry size is twice the heap per line (DESIGN.md, "The free fast path's
 * lines"). */
struct pagemap_hot {
    uintptr_t start;    /* small: the span's first byte */
    uint32_t div_limit; /* small: the span's highest object index carved */
    uint8_t size_class; /* I3: the span's class when small and in use, else 0 */
    uint8_t pad[3];
};
_Static_assert(sizeof(struct pagemap_hot) == 16, "a page's hot entry is 16 bytes");
struct pagemap_leaf {
    struct pagemap_hot hot[TL_PM_LEAF_SIZE]; /* I3 */
    struct span *span[TL_PM_LEAF_SIZE];      /* I2 */
    struct span slot[TL_PM_LEAF_SIZE];       /* I5: the struct of a span starting at the page */
};
_Static_assert(offsetof(struct pagemap_leaf, slot) % 32 == 0 && sizeof(struct span) % 32 == 0,
               "every slot starts at offset 0 or 32 of a cache line, so a span's first 32 "
               "bytes never straddle two lines");

extern struct pagemap_leaf *tli_pagemap_root[(size_t)1 << TL_PM_ROOT_BITS];
/* Written under the pagemap lock: the range of root entries with leaves. */
extern _Atomic size_t tli_pagemap_first_leaf, tli_pagemap_last_leaf;

static inline struct pagemap_leaf *tli_pagemap_leaf(uintptr_t a)
{
    if (TL_UNLIKELY(a >> 48))
        return NULL;
    return tli_pagemap_root[a >> (TL_PAGE_SHIFT + TL_PM_LEAF_BITS)];
}
static inline size_t tli_pagemap_index(uintptr_t a)
{
    return (a >> TL_PAGE_SHIFT) & (TL_PM_LEAF_SIZE - 1);
}
/* Where a span's pages were mapped and no span is now, the entry is
 * tli_no_span, not NULL (see I3); both read as "no span" here. */
extern struct span tli_no_span;
static inline struct span *tli_pagemap_span(uintptr_t a)
{
    struct pagemap_leaf *leaf = tli_pagemap_leaf(a);
    struct span *s =
        leaf ? __atomic_load_n(&leaf->span[tli_pagemap_index(a)], __ATOMIC_ACQUIRE) : NULL;
    return s == &tli_no_span ? NULL : s;
}
bool tli_pagemap_ensure(uintptr_t start, size_t bytes); /* maps leaves */
/* Page heap lock held: it guards the entries of every span. */
void tli_pagemap_set_range(uintptr_t start, size_t npages, struct span *v, uint8_t cls)
    TL_REQUIRES(tli_page_heap_lock);
/* The slot for the struct of a page heap span starting at page a (I5); the
 * leaf must exist. */
static inline struct span *tli_pagemap_slot(uintptr_t a)
{
    return &tli_pagemap_leaf(a)->slot[tli_pagemap_index(a)];
}
/* Gives back the pagemap memory around the entries and slots of the pages
 * [start, end) that holds nothing but entries and slots of pages in
 * [lo, hi): the interior of an unbacked free span (not its first or last
 * page), of which [start, end) has just become part. */
void tli_pagemap_release(uintptr_t start, uintptr_t end, uintptr_t lo, uintptr_t hi)
    TL_REQUIRES(tli_page_heap_lock);

/* ---- pointer validation (validate.c) ----------------------------------- *
 * Every path that takes a pointer from the user classifies it here, and
 * nowhere else: free (the fast path its cheap part, tli_hot_is_object_start,
 * inline; the slow path all of it), realloc, malloc_usable_size,
 * free_sized and free_aligned_sized, and check mode's look-up of the block
 * holding its user pointer. */
enum tli_verdict {
    TL_PTR_BLOCK,       /* the start of a block in use: the one good answer */
    TL_PTR_FOREIGN,     /* on no page of a span of ours */
    TL_PTR_FREED_HUGE,  /* the start of a huge block freed lately (its mapping is gone) */
    TL_PTR_INTERIOR,    /* inside a block (or object) of a span in use, past its start */
    TL_PTR_SPAN_TAIL,   /* in a small span's tail, past its last object */
    TL_PTR_NOT_CARVED,  /* the start of an object its span has never handed out */
    TL_PTR_FREED,       /* the start of a free block: a small object on a free list
                           (its key says so, I4) or a free span */
    TL_PTR_FREE_MEMORY, /* inside a free span, past its start */
};
/* Where the pointer is, as far as the verdict says: the span (NULL for
 * TL_PTR_FOREIGN and TL_PTR_FREED_HUGE) and, when it is in an object of a
 * small span or in a large or huge block, that object's or block's start
 * (else 0: foreign, a span's tail, free memory or a free span's start). */
struct tli_where {
    struct span *span;
    uintptr_t block;
};
/* Reads the pagemap, the span and, for the start of a small object, its
 * free key (I4); takes no lock. A racing free may change the answer, as
 * I3 says; it never faults (I5). */
enum tli_verdict tli_validate(const void *p, struct tli_where *w);
/* The report of a verdict other than TL_PTR_BLOCK, in the words of
 * diag.c's reports: who is the public function ("free", "realloc", ...). */
TL_COLD void tli_report_pointer(void *p, enum tli_verdict v, const struct tli_where *w,
                                const char *who);
/* The cheap part of tli_validate, the only part the free fast path makes:
 * p is the start of an object carved from the small span of its page, by
 * the page's hot entry (I3). The same test as tli_is_object_start, on the
 * copy of the span's constants free reads anyway. Any other answer sends
 * free to the slow path, whose tli_validate says what p is. */
static inline bool tli_hot_is_object_start(const struct pagemap_hot *h, size_t cls, uintptr_t p)
{
    return tli_class_divides((unsigned)cls, __atomic_load_n(&h->div_limit, __ATOMIC_RELAXED),
                             p - h->start);
}

/* ---- safe-linking and the free key (I4) -------------------------------- *
 * The one codec of free-list links. A link is stored XORed with a key that
 * depends on the word's own address (its slot): slot * tli_link_mul ^
 * tli_secret, two secrets and a multiply. One leaked link word and the
 * pointer it encodes give one equation in the two secrets, so they do not
 * give the key of any other slot; a key that is the same for every slot
 * (or linear in the slot, as glibc's pos >> 12) would. A slot is 16-byte
 * aligned and tli_secret odd, so NULL never encodes as 0. */
extern uint64_t tli_secret;     /* per process, random, odd */
extern uint64_t tli_link_mul;   /* per process, random, odd */
extern uint64_t tli_key_secret; /* the free key's */
static inline uint64_t tli_link_key(const void *slot)
{
    return ((uint64_t)(uintptr_t)slot * tli_link_mul) ^ tli_secret;
}
/* Writes next, encoded, into the link word at slot. */
static inline void tli_link_set(void *slot, const void *next)
{
    *(uint64_t *)slot = (uint64_t)(uintptr_t)next ^ tli_link_key(slot);
}
/* The link word at slot, decoded (not yet validated). */
static inline void *tli_link_get(const void *slot)
{
    return (void *)(uintptr_t)(*(const uint64_t *)slot ^ tli_link_key(slot));
}
/* The key of a free object (I4), from the slot's link key, which the fast
 * paths compute anyway: one more XOR. */
static inline uint64_t tli_free_key(const void *p) { return tli_link_key(p) ^ tli_key_secret; }
static inline uint64_t tli_span_key(const void *p) { return tli_free_key(p) ^ 1; }
static inline uint64_t tli_key_of(const void *p) { return ((const uint64_t *)p)[1]; }

/* Handing a block out: neither word of the free object (I4) reaches the
 * user, so an uninitialised read learns no link and no key. One 16-byte
 * store. */
typedef uint64_t tli_two_words __attribute__((vector_size(16), may_alias));
static inline void tli_clear_free_words(void *p) { *(tli_two_words *)p = (tli_two_words){0, 0}; }
/* A decoded link that is not a 16-byte aligned user-space address was
 * written by someone else: the heap is corrupted. */
#define TL_LINK_BAD_MASK 0xFFFF80000000000FULL

/* ---- metadata arena (page_heap.c) -------------------------------------- */
/* Structs for huge spans (page heap spans use pagemap slots, I5). */
struct span *tli_span_new(void) TL_REQUIRES(tli_page_heap_lock);
void tli_span_delete(struct span *s) TL_REQUIRES(tli_page_heap_lock);
void *tli_meta_alloc(size_t bytes) TL_EXCLUDES(tli_meta_lock); /* zeroed, never freed */

/* ---- page heap (page_heap.c) ------------------------------------------- */
struct span *tli_page_heap_alloc(size_t npages, size_t align_pages, enum span_state state,
                                 unsigned cls) TL_EXCLUDES(tli_page_heap_lock);
void tli_page_heap_free(struct span *s) TL_EXCLUDES(tli_page_heap_lock);
bool tli_page_heap_try_grow(struct span *s, size_t new_npages)
    TL_EXCLUDES(tli_page_heap_lock); /* in place */
void tli_page_heap_shrink(struct span *s, size_t new_npages) TL_EXCLUDES(tli_page_heap_lock);
size_t tli_page_heap_release(size_t max_bytes, bool all)
    TL_EXCLUDES(tli_page_heap_lock); /* give dirty pages back */
void tli_page_heap_maybe_decay(void) TL_REQUIRES(tli_page_heap_lock);
void tli_page_heap_tick(void) TL_EXCLUDES(tli_page_heap_lock); /* decay if due */
/* heapcheck.c's look at the bins and the LRU; page heap lock held. */
struct tli_heap_walk;
void tli_page_heap_check(struct tli_heap_walk *w) TL_REQUIRES(tli_page_heap_lock);
/* Bumped when more than all thread caches may hold together
 * (thread_cache_budget) is freed into the page heap between two decay
 * looks, or given back in one: the program has just left a peak. */
extern _Atomic uint32_t tli_peak_epoch;
/* Counters kept by the page heap. */
struct tli_page_heap_counts {
    uint64_t large_allocs, large_frees; /* large blocks handed out and freed */
    uint64_t grows, grow_bytes;         /* chunks mapped from the OS */
    uint64_t releases, release_bytes;   /* free spans whose pages went back */
    size_t small_spans_peak;            /* highest small_spans seen */
    size_t large_side_peak;             /* highest mapped - small_spans seen */
};
void tli_page_heap_counts(struct tli_page_heap_counts *c) TL_REQUIRES(tli_page_heap_lock);
/* Free spans, grouped by the page heap's bins: fills up to max groups,
 * smallest spans first, and returns how many. */
struct tli_free_span_group {
    size_t count, bytes, min_bytes, max_bytes;
};
unsigned tli_page_heap_free_groups(struct tli_free_span_group *g, unsigned max)
    TL_REQUIRES(tli_page_heap_lock);
/* decay_ms changed: the next look at the clock decays at once. */
void tli_page_heap_decay_soon(void);

/* ---- central lists (central_list.c) ------------------------------------ */
/* Takes up to n objects of class cls; returns how many, chained in *head
 * (encoded links, last link NULL). */
unsigned tli_central_take(unsigned cls, unsigned n, void **head);
/* Gives back n objects chained from head (encoded links). */
void tli_central_give(unsigned cls, void *head, unsigned n, bool to_spans);
void tli_central_give_one(void *p, unsigned cls);
void tli_central_drain_all(void);
void tli_central_decay(uint64_t now);
size_t tli_central_batches(void); /* batches on all transfer stacks */
size_t tli_central_free_bytes(unsigned cls);
size_t tli_central_span_bytes(unsigned cls);
size_t tli_central_out_bytes(unsigned cls);
void tli_central_decay_soon(void); /* decay_ms changed */
/* heapcheck.c's look at class cls's partial heap, transfer stack and
 * counts (the spans themselves were seen in the pagemap walk). */
void tli_central_check(struct tli_heap_walk *w, unsigned cls) TL_REQUIRES(tli_central_locks[cls]);

/* ---- thread cache (thread_cache.c) ------------------------------------- */
/* Two arrays, not an array of head-room pairs: the fast paths reach
 * head[cls] and room[cls] with the class as a scaled index, with no
 * multiply of their own (8 and 4 are x86-64 index scales, 16 is not). */
struct tc_lists {
    void *head[TL_MAX_CLASSES];   /* free objects of each class, encoded links */
    int32_t room[TL_MAX_CLASSES]; /* frees that fit before a flush: max_len - objects held */
};
/* In static TLS, only what the fast paths touch (about 1 KiB, small
 * enough for a dlopen()ed copy to find room in glibc's static TLS surplus). */
struct thread_cache {
    struct tc_lists lists;
    struct tc_state *st; /* the rest; NULL until first use */
    int32_t tick;        /* frees until the next decay check */
    uint8_t state;       /* enum tc_mode */
    /* The heap profiler's count (prof.c): bytes the thread may still
     * allocate before its next sample. Here, beside the lists, so that
     * the profiling entries of malloc and operator new (prof=1) find it
     * from the address the fast path loads anyway. Never copied with the
     * lists of an exited thread. */
    int64_t prof_left;
};
/* glibc keeps 1664 bytes of static TLS for libraries dlopen()ed later
 * (TLS_STATIC_SURPLUS): the prefixed library's cache must fit there, beside
 * the lock id and what other late libraries take. */
_Static_assert(sizeof(struct thread_cache) <= 1344, "the thread cache must fit static TLS");

/* Frees between two looks at the clock for decay (a look costs ~20 ns). */
#define TL_TICK 1024
/* The cold part of a thread's cache, in the metadata arena, recycled when
 * the thread exits. */
struct tc_state {
    struct thread_cache *tc;          /* the TLS part it belongs to */
    uint32_t max_len[TL_MAX_CLASSES]; /* list length limit per class */
    size_t limit_bytes;               /* sum of max_len[c]*size[c] */
    _Atomic size_t cap_bytes;         /* what limit_bytes may reach */
    _Atomic size_t give_back;         /* cap other threads asked this one to return */
    struct tc_state *reg_next, *reg_prev;
    uint64_t scavenged_ms;           /* last look for idle lists */
    uint32_t slow_calls;             /* slow paths taken, to space out clock reads */
    uint64_t used[2];                /* classes refilled or flushed since then */
    uint64_t ran_empty[2];           /* classes refilled since then: lists that ran empty */
    uint64_t gc_used[2];             /* classes refilled or flushed since gc_cursor passed */
    uint32_t gc_cursor;              /* the class the next tick looks at */
    uint32_t peak_epoch;             /* tli_peak_epoch last seen */
    uint64_t drain[2];               /* classes whose frees skip the cache (a peak) */
    uint32_t quiet_epoch;            /* tli_peak_epoch at the last timed scavenge */
    size_t drained_bytes;            /* freed past the cache since peak_epoch moved */
    void *gc_head[TL_MAX_CLASSES];   /* each list's head when gc_cursor passed */
    int32_t gc_room[TL_MAX_CLASSES]; /* and its room */
    /* Operation counters, written by the owner on slow paths only, read
     * racily by stats under the registry lock (see tli_tc_counts). */
    uint64_t n_refills;    /* refills that took objects from a central list */
    uint64_t n_flushes;    /* full batches flushed to a central list */
    uint64_t n_slow_frees; /* small frees that reached tli_tc_free */
    uint64_t n_fast_frees; /* frees done by the fast path, counted at each tick */
    int32_t tick_base;     /* the value tc->tick was last set to */
    /* After its thread exited: its lists, kept for the next thread to
     * start (tc then points here), and when it exited. */
    struct thread_cache kept;
    uint64_t retired_ms;
};
enum tc_mode { TC_UNINIT = 0, TC_ACTIVE, TC_DEAD };
extern __thread struct thread_cache tli_tc __attribute__((tls_model("initial-exec")));
/* The fast paths address the cache through %fs with the variable's offset
 * from the thread pointer (one load from the GOT), instead of first
 * adding the thread pointer, loaded from %fs:0, to that offset: one
 * instruction less on each path. gcc and clang fold &tli_tc minus the
 * thread pointer to the bare offset. __seg_fs is a GNU C extension that
 * gcc only accepts outside strict ISO mode, hence -std=gnu11 (DESIGN.md,
 * "Thread caches"). Elsewhere TL_TC_SEG is empty and tli_tc_fs() is &tli_tc. */
#if defined(__x86_64__) && defined(__SEG_FS) && !defined(__STRICT_ANSI__)
#define TL_TC_SEG __seg_fs
static inline struct thread_cache TL_TC_SEG *tli_tc_fs(void)
{
    return (struct thread_cache TL_TC_SEG *)((uintptr_t)&tli_tc -
                                             (uintptr_t)__builtin_thread_pointer());
}
#else
#define TL_TC_SEG
static inline struct thread_cache *tli_tc_fs(void) { return &tli_tc; }
#endif
void *tli_tc_alloc(unsigned cls);
void tli_tc_free(void *p, unsigned cls);
void tli_tc_flush_self(void);
void tli_tc_tick(void);
void tli_tc_child_after_fork(void);
void tli_tc_init_key(void);
size_t tli_tc_total_bytes(size_t *per_class, unsigned *threads) TL_EXCLUDES(tli_registry_lock);
/* Operation counts of all threads, those that exited included. */
struct tli_tc_counts {
    uint64_t refills, flushes, small_frees;
};
void tli_tc_counts(struct tli_tc_counts *c);
/* Run-time control (tl_ctl): the new budget and per-thread cap of the
 * thread caches, applied through the pool. */
void tli_tc_set_budget(size_t bytes);
void tli_tc_set_max(size_t bytes);
void tli_tc_release_kept(uint64_t now, bool all) TL_EXCLUDES(tli_registry_lock);
bool tli_tc_any_kept(void);
extern _Atomic size_t tli_tc_unclaimed;

/* ---- allocation paths (alloc.c, huge.c) -------------------------------- */
/* The fast paths' miss handlers (api.c); caller as for tli_check_alloc. */
void *tli_alloc_slow(size_t size, uintptr_t caller);
void tli_free_slow(void *p);
/* tli_free_slow after the fast path took room in p's class's list. */
void tli_free_slow_room(void *p, size_t cls);
/* Which allocation functions a block came from, or which free it. */
enum tli_family { TL_FAMILY_MALLOC = 0, TL_FAMILY_NEW, TL_FAMILY_NEW_ARRAY };
/* operator delete's miss handlers (cxx.c): tli_free_slow and
 * tli_free_slow_room, except that check mode learns which delete freed p
 * and the size a sized delete passed (0 for the other forms). */
void tli_delete_slow(void *p, enum tli_family family, size_t size);
void tli_delete_slow_room(void *p, size_t cls, enum tli_family family, size_t size);
void *tli_alloc_small_nocache(unsigned cls);
void tli_free_small_nocache(void *p, unsigned cls);
void *tli_alloc_large(size_t size, size_t alignment);
void *tli_alloc(size_t size); /* any size; NULL + ENOMEM */
void *tli_alloc_aligned(size_t alignment, size_t size);
void *tli_alloc_zeroed(size_t size);
void *tli_realloc_impl(void *p, size_t size);
void tli_free_checked(void *p, const char *who); /* validates, then frees */
size_t tli_usable_size(void *p, const char *who);
/* The span of p when tli_validate finds it the start of a block in use;
 * else NULL, after the report (validate.c). */
struct span *tli_lookup(void *p, const char *who);
void *tli_huge_alloc(size_t size, size_t alignment);
void tli_huge_free(struct span *s);
bool tli_huge_recently_freed(uintptr_t start); /* a huge block began there */
void *tli_huge_realloc(struct span *s, size_t size);

/* ---- the fast paths (api.c; cxx.c's operators use them too) ------------ *
 * malloc: size -> class by table, pop the thread cache list of the class.
 * free:   pagemap -> class and span, check the pointer is an object start
 *         and not the list's head, push onto the thread cache list.
 * Anything unusual leaves for the slow paths (alloc.c). Neither takes a
 * lock, makes an atomic read-modify-write or calls a function; they are
 * inlined into every public entry point. */

#define TL_ALWAYS_INLINE inline __attribute__((always_inline))

/* Cold ends of a pop that found the list damaged: both report and abort
 * (api.c). Out of line so that the fast path keeps no registers for them. */
void *tli_pop_bad_key(void *p);
void *tli_pop_bad_link(void *p);

/* Pops the head of a non-empty thread cache list (I4): its key must say
 * it is in a thread cache list, and its link must be plausible, before it
 * becomes the new head. The key and the link share the line the pop
 * loads anyway. The block is handed out with both words cleared. */
static TL_ALWAYS_INLINE void *tli_tc_pop(struct tc_lists TL_TC_SEG *lists, unsigned cls, void *p)
{
    uint64_t link_key = tli_link_key(p);
    if (TL_UNLIKELY(tli_key_of(p) != (link_key ^ tli_key_secret)))
        return tli_pop_bad_key(p);
    void *next = (void *)(uintptr_t)(*(uint64_t *)p ^ link_key);
    if (TL_UNLIKELY((uintptr_t)next & TL_LINK_BAD_MASK))
        return tli_pop_bad_link(p);
    lists->head[cls] = next;
    /* The next pop reads next's line: start fetching it now, so that
     * a list refilled with objects last written by another core, or
     * long ago, does not wait for each line in turn (DESIGN.md,
     * "Thread caches"). A prefetch of NULL does not fault. */
    __builtin_prefetch(next);
    lists->room[cls]++;
    tli_clear_free_words(p);
    return p;
}

/* Pushes p onto a list whose room the caller has already taken: stores
 * only, no load of p's line. */
static TL_ALWAYS_INLINE void tli_tc_push_counted(struct tc_lists TL_TC_SEG *lists, unsigned cls,
                                                 void *p)
{
    uint64_t link_key = tli_link_key(p);
    ((uint64_t *)p)[0] = (uint64_t)(uintptr_t)lists->head[cls] ^ link_key;
    ((uint64_t *)p)[1] = link_key ^ tli_key_secret;
    lists->head[cls] = p;
}

/* --lists->room[cls] < 0, as one read-modify-write: gcc computes the
 * address into a register first when the flags are used (one instruction
 * more on free's fast path). */
static TL_ALWAYS_INLINE bool tli_room_take(struct tc_lists TL_TC_SEG *lists, size_t cls)
{
#if defined(__x86_64__) && defined(__SEG_FS) && !defined(__STRICT_ANSI__) &&                       \
    defined(__GCC_ASM_FLAG_OUTPUTS__)
    bool negative;
    __asm__ __volatile__(
        "subl $1, %%fs:%c[off](%[base],%[cls],4)"
        : "=@ccs"(negative)
        : [base] "r"((uintptr_t)lists), [cls] "r"(cls), [off] "i"(offsetof(struct tc_lists, room))
        : "memory");
    return negative;
#else
    return --lists->room[cls] < 0;
#endif
}

/* Pushes p onto a list with room. */
static TL_ALWAYS_INLINE void tli_tc_push(struct tc_lists TL_TC_SEG *lists, unsigned cls, void *p)
{
    tli_tc_push_counted(lists, cls, p);
    lists->room[cls]--;
}

/* Always inlined: the slow path passes the return address of the public
 * function it is inlined into (the allocation site check mode's leak
 * report names), read only there. */
#define TL_CALLER ((uintptr_t)__builtin_return_address(0))

/* What a miss does differs between malloc (tli_alloc_slow) and each operator
 * new (cxx.c); always inlined, the handler becomes a direct tail jump. */
typedef void *tli_alloc_miss(size_t size, uintptr_t caller);

static TL_ALWAYS_INLINE void *tli_fast_malloc(size_t size, tli_alloc_miss *miss)
{
    unsigned cls;
    if (TL_LIKELY(size <= 1024))
        cls = tli_class_small[size];
    else if (size <= TL_SMALL_MAX)
        cls = tli_class_medium[(size + 127) >> 7];
    else
        return miss(size, TL_CALLER);
    struct tc_lists TL_TC_SEG *lists = &tli_tc_fs()->lists;
    void *p = lists->head[cls];
    if (TL_UNLIKELY(!p))
        return miss(size, TL_CALLER);
    p = tli_tc_pop(lists, cls, p);
    tli_vg_alloc(p, tli_classes[cls].size);
    return p;
}

/* free, and each operator delete (family and size: see tli_delete_slow):
 * always inlined with a constant family, so that each keeps only its own
 * miss handlers, as direct tail jumps. Check mode's blocks never pass the
 * object-start test on a small span, and its lists never have room, so
 * the misses see every checked block. */
static TL_ALWAYS_INLINE void tli_fast_free_as(void *p, enum tli_family family, size_t size)
{
    uintptr_t a = (uintptr_t)p;
    /* An address above 48 bits lands, masked, in some leaf: its offset
     * from that leaf's span is then 2^48 or more, never an object's, so
     * the object-start test sends it to the slow path, which reports it. */
    size_t root = (a >> (TL_PAGE_SHIFT + TL_PM_LEAF_BITS)) & (((size_t)1 << TL_PM_ROOT_BITS) - 1);
    struct pagemap_leaf *leaf = tli_pagemap_root[root];
    if (TL_UNLIKELY(!leaf))
        goto slow;
    size_t i = tli_pagemap_index(a);
    /* I3: acquire, so that the fields below are this class's or newer.
     * Class 0 (no small span in use here: a large block, a page given
     * back, a racing free) needs no test of its own: class 0's list never has room
     * (I3), so it leaves below by slow_room, which gives the room back. */
    const struct pagemap_hot *h = &leaf->hot[i];
    size_t cls = __atomic_load_n(&h->size_class, __ATOMIC_ACQUIRE);
    if (TL_UNLIKELY(!tli_hot_is_object_start(h, cls, a)))
        goto slow;
    struct tc_lists TL_TC_SEG *lists = &tli_tc_fs()->lists;
    /* free(p); free(p): found here, at no cost in lines (I4). */
    if (TL_UNLIKELY(p == lists->head[cls]))
        goto slow;
    /* Room taken first, given back if the free goes slow: one
     * read-modify-write instead of a load, a test and a store. */
    if (TL_UNLIKELY(tli_room_take(lists, cls)))
        goto slow_room;
    if (TL_UNLIKELY(--tli_tc_fs()->tick < 0))
        goto slow_room;
    tli_vg_free_small(p);
    tli_tc_push_counted(lists, cls, p);
    return;
slow_room:
    if (family == TL_FAMILY_MALLOC)
        tli_free_slow_room(p, cls);
    else
        tli_delete_slow_room(p, cls, family, size);
    return;
slow:
    if (family == TL_FAMILY_MALLOC)
        tli_free_slow(p);
    else
        tli_delete_slow(p, family, size);
}

static TL_ALWAYS_INLINE void tli_fast_free(void *p) { tli_fast_free_as(p, TL_FAMILY_MALLOC, 0); }

/* ---- check mode (check.c) --------------------------------------------- */
/* caller: the return address of the public function (the allocation site
 * the leak report names), or 0 to find it by walking the stack. */
void *tli_check_alloc(size_t size, size_t alignment, bool zero, uintptr_t caller);
void tli_check_free(void *p, const char *who);
/* caller: the return address of the public function (the free site that
 * reports of a write after free or a double free name), or 0. */
void tli_check_free_at(void *p, const char *who, uintptr_t caller);
void *tli_check_realloc(void *p, size_t size, uintptr_t caller);
size_t tli_check_quarantined(void); /* freed bytes held in the quarantine */
size_t tli_check_usable_size(void *p);
void tli_check_init(void);
void tli_check_start(void);       /* from the constructor: leaks=1's call stacks (stack.c) */
void tli_check_leak_report(void); /* verifies live blocks at exit; leaks=1: reports lost ones */
/* The conservative reachability scan at exit (leak_scan.c). */
struct tli_scan_block {
    uintptr_t user; /* the pointer handed out */
    size_t size;
    uintptr_t site;
    uint8_t state; /* TL_SCAN_* */
};
enum { TL_SCAN_LIVE = 0, TL_SCAN_REACHED, TL_SCAN_DAMAGED };
/* Sorts blocks by address and marks those reachable from the roots; skip
 * is the caller's memory (it holds the blocks' addresses). Check lock held. */
void tli_leak_scan(struct tli_scan_block *blocks, size_t n, uintptr_t stack_from, const void *skip,
                   size_t skip_len);

/* ---- configuration (config.c) ------------------------------------------ */
struct tli_config {
    size_t huge_threshold;   /* bytes; above: own mmap */
    size_t tc_budget;        /* all thread caches together */
    size_t tc_max;           /* one thread's cache */
    uint64_t decay_ms;       /* free dirty pages age this long before return */
    int check;               /* check mode: canaries, poison, quarantine */
    int leak_report;         /* leaks=1: check mode's leak report at exit (opt-in) */
    int error_action;        /* MALLOC_CHECK_ levels: 0 ignore, 1 print, 2 abort,
                                    3 print and abort (default) */
    size_t quarantine_bytes; /* check mode: freed bytes held back from reuse */
    int stats_at_exit;       /* 0 no, 1 text, 2 json */
    int verbose;
    int background;             /* TL_BACKGROUND_*: the background decay thread */
    uint64_t debug_check_every; /* debug builds: slow paths between heap walks, 0 never */
    int prof;                   /* the heap profiler samples allocations */
    size_t prof_sample;         /* mean bytes between samples */
    int prof_final;             /* dump a profile at exit */
    size_t prof_interval;       /* dump every so many bytes allocated; 0 never */
    int prof_gdump;             /* dump when the in-use peak grows */
    char prof_prefix[256];      /* dump file names: prefix.PID.SEQ.heap */
};
enum { TL_BACKGROUND_NEVER = 0, TL_BACKGROUND_ALWAYS = 1, TL_BACKGROUND_AUTO = 2 };
extern struct tli_config tli_conf;
void tli_config_init(void);
void tli_config_report(void);
void tli_background_start(void); /* from the constructor */
/* 0 while the background thread may still have to start: then the malloc
 * side calls tli_background_maybe_start, with no allocator lock held. */
extern _Atomic int tli_background_state;
void tli_background_maybe_start(void);
/* tl_ctl: the setting (TL_BACKGROUND_*), applied at once: 0 stops the
 * thread and waits for it to end, 1 starts it. 0 or an errno value. */
int tli_background_set(int mode);
bool tli_background_running(void);
void tli_background_poke(void); /* decay_ms changed: wake it to re-read */
static inline void tli_background_check(void)
{
    if (TL_UNLIKELY(!atomic_load_explicit(&tli_background_state, memory_order_relaxed)))
        tli_background_maybe_start();
}
bool tli_parse_size(const char *s, size_t len, size_t *out);

/* ---- init (init.c) ------------------------------------------------------ */
extern _Atomic int tli_init_state; /* 0 none, 1 running, 2 done */
void tli_init_slow(void);
static inline void tli_ensure_init(void)
{
    if (TL_UNLIKELY(atomic_load_explicit(&tli_init_state, memory_order_acquire) != 2))
        tli_init_slow();
}

/* ---- statistics (stats.c) ----------------------------------------------- */
struct tli_counters {
    _Atomic size_t mapped;       /* bytes obtained from the OS for the page heap */
    _Atomic size_t unbacked;     /* of those, free and not resident: given back or never used */
    _Atomic size_t page_free;    /* free in the page heap and resident (dirty) */
    _Atomic size_t large_in_use; /* bytes of in-use large spans */
    _Atomic size_t small_spans;  /* bytes of spans given to central lists */
    _Atomic size_t huge_mapped;  /* bytes of huge mappings */
    _Atomic size_t huge_count;
    _Atomic size_t huge_mapped_max, huge_count_max; /* their highest values (malloc_stats) */
    _Atomic size_t meta;                            /* metadata arena bytes */
    /* Operation counters of the rare paths, and those of exited threads
     * (stats.c defines what each counts). */
    _Atomic size_t small_frees_uncached; /* small frees by threads without a cache */
    _Atomic size_t huge_allocs, huge_frees;
    _Atomic size_t exited_refills, exited_flushes, exited_frees;
};
extern struct tli_counters tli_stats;
static inline void tli_stat_add(_Atomic size_t *c, size_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}
/* Raises *c to v if v is higher: for the high-water marks. */
static inline void tli_stat_raise(_Atomic size_t *c, size_t v)
{
    size_t cur = atomic_load_explicit(c, memory_order_relaxed);
    while (cur < v && !atomic_compare_exchange_weak_explicit(c, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}
static inline void tli_stat_sub(_Atomic size_t *c, size_t v)
{
    atomic_fetch_sub_explicit(c, v, memory_order_relaxed);
}
/* Bytes of spans the page heap has handed out (small spans and large
 * blocks): the peak epoch and the background thread's threshold. */
static inline size_t tli_page_heap_handed_out(void)
{
    return atomic_load_explicit(&tli_stats.small_spans, memory_order_relaxed) +
           atomic_load_explicit(&tli_stats.large_in_use, memory_order_relaxed);
}
void tli_stats_at_exit(void);
void tli_malloc_stats(int fd); /* glibc's lines, then tlmalloc's report */
void tli_stats_mallinfo(size_t *arena, size_t *hblks, size_t *hblkhd, size_t *uordblks,
                        size_t *fordblks, size_t *keepcost);

/* ---- C++ allocation functions (cxx.c) ---------------------------------- *
 * Which family allocated a block, or which one frees it; check mode keeps
 * it per block and reports a mismatched pair. */
void *tli_check_alloc_family(size_t size, size_t alignment, enum tli_family family,
                             uintptr_t caller);
/* size: what a sized delete passed, 0 for the other forms. */
void tli_check_free_family(void *p, enum tli_family family, size_t size, uintptr_t caller);
void tli_free_direct(void *p); /* tl_free, bound inside the library */

/* ---- diagnostics (diag.c) ---------------------------------------------- */
/* Text built without stdio, written to fd whenever data fills. After a
 * write fails, nothing more is written and err holds EIO. */
struct tli_buf {
    int fd;
    int err; /* 0, or EIO after the first failed write */
    size_t len;
    char data[1024];
};
void tli_buf_bytes(struct tli_buf *b, const char *s, size_t n);
void tli_buf_str(struct tli_buf *b, const char *s);
void tli_buf_u64(struct tli_buf *b, uint64_t v);
/* v right-aligned in width columns, as printf's %<width>lld */
void tli_buf_num(struct tli_buf *b, int64_t v, int width);
void tli_buf_hex(struct tli_buf *b, uint64_t v); /* "0x1f" */
/* "0x" and at least min_digits digits, as printf's 0x%0<min_digits>lx */
void tli_buf_hex_digits(struct tli_buf *b, uint64_t v, int min_digits);
uintptr_t tli_parse_hex(const char **s); /* hex digits at *s; *s moves past them */
void tli_buf_flush(struct tli_buf *b);
void tli_buf_size(struct tli_buf *b, uint64_t bytes); /* "12.5 MiB" */
/* Reports of errors the error action may let the program go on from
 * return; corruption and fatal errors never do. */
TL_COLD void tli_report_invalid_free(void *p, const char *who, const char *what);
TL_COLD _Noreturn void tli_report_corruption(void *p, const char *who, const char *what);
TL_COLD void tli_report_double_free(void *p, unsigned cls, const char *who);
TL_COLD _Noreturn void tli_fatal(const char *msg);
void tli_warn(const char *msg, const char *detail);
unsigned tli_backtrace(uintptr_t *pcs, unsigned max, unsigned skip);
void tli_put_backtrace(struct tli_buf *b);
bool tli_in_self(uintptr_t pc); /* pc lies in the object holding tlmalloc's code */
/* "0x.. lib (sym+0x..)", or "0x.. lib+0x.." (offset in the file) when the
 * symbol cannot be looked up safely. */
void tli_put_frame(struct tli_buf *b, uintptr_t pc);

/* ---- heap profiler (prof.c) ---------------------------------------------- */
/* The entries' own addresses, not the PLT's or another object's that
 * interposes them: hidden aliases. */
#if defined(__clang__)
#define TL_ENTRY_ALIAS(hidden_name, name)                                                          \
    extern __typeof__(name) hidden_name __attribute__((alias(#name), visibility("hidden")))
#else
#define TL_ENTRY_ALIAS(hidden_name, name)                                                          \
    extern __typeof__(name) hidden_name                                                            \
        __attribute__((alias(#name), copy(name), visibility("hidden")))
#endif

/* tli_tc.prof_left: bytes the thread may still allocate before its next
 * sample, less what it has allocated since: the profiling entries of
 * malloc and operator new (api.c, cxx.c) subtract each size and sample
 * when it goes below zero. */
/* Set at initialisation when prof=1 (and check mode is off): then calloc,
 * realloc and the aligned allocators count their sizes too. */
extern bool tli_prof_enabled;
/* tli_tc.prof_left went below zero: a new count is drawn, and true if this
 * allocation of size is the sample. */
bool tli_prof_take_sample(size_t size) TL_EXCLUDES(tli_prof_lock);
/* The sample's block, alone in a span of its own, recorded with the
 * caller's stack (caller: the return address to record when no stack can
 * be captured, or 0); NULL + ENOMEM on failure. */
void *tli_prof_sample(size_t size, size_t alignment, bool zero, uintptr_t caller)
    TL_EXCLUDES(tli_prof_lock);
/* malloc's profiling entry, when tli_tc.prof_left < 0; it jumps here, so that
 * the return address here is malloc's caller. */
void *tli_prof_sample_malloc(size_t size) TL_EXCLUDES(tli_prof_lock);
/* Subtracts size (at most INT64_MAX / 2) from the thread's count; true if
 * this allocation is the sample. For the entries that are not fast paths. */
bool tli_prof_count(size_t size) TL_EXCLUDES(tli_prof_lock);
/* The fast entries' count (malloc's and operator new's profiling entries):
 * in unsigned arithmetic, so that a size above INT64_MAX wraps (and fails
 * later as any such request) instead of overflowing; true when it went
 * below zero (then tli_prof_take_sample decides). */
static TL_ALWAYS_INLINE bool tli_prof_count_down(size_t size)
{
    int64_t left = (int64_t)((uint64_t)tli_tc_fs()->prof_left - size);
    tli_tc_fs()->prof_left = left;
    return left < 0;
}
/* calloc, realloc(NULL, n) and the aligned allocators with prof=1. */
void *tli_prof_count_alloc(size_t size, size_t alignment, bool zero) TL_EXCLUDES(tli_prof_lock);
void *tli_prof_count_realloc(void *p, size_t size) TL_EXCLUDES(tli_prof_lock);
/* A sampled block is the only block of its span: span->sampled is set and
 * span->free_list holds its record. Called by the validated free
 * (alloc.c) before the span is freed. */
void tli_prof_freed(struct span *s) TL_EXCLUDES(tli_prof_lock);
void tli_prof_init(void);    /* stage one of initialisation: no allocation */
void tli_prof_start(void);   /* from the constructor: the unwinder's set-up */
void tli_prof_at_exit(void); /* prof_final */
void tli_prof_child_after_fork(void);
int tli_prof_set_active(int active); /* tl_ctl's prof.active: 0 or ENOENT */
int tli_prof_is_active(void);
/* api.c: malloc's profiling entry installed; cxx.c: operator new's (the
 * worst of the four). */
enum tli_patch tli_prof_install_entry(void);
enum tli_patch tli_prof_install_cxx_entries(void);
/* api.c: a jump to target written over entry's first bytes (x86-64; entry
 * 16-byte aligned, no jump into its first 8 bytes). */
enum tli_patch tli_redirect_entry(void *entry, const void *target);

/* ---- fork (fork.c) ------------------------------------------------------- */
void tli_fork_install(void);
/* The calling thread holds an allocator lock (a signal handler that
 * interrupted the allocator, or a report made under a lock). */
bool tli_lock_any_held_by_me(void);

#pragma GCC visibility pop
#endif

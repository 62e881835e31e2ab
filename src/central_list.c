/* central_list.c - the central free lists, one per size class, shared by all
 * threads. Thread caches refill from here and flush to here in batches.
 *
 * Two stages per class:
 *  - transfer: a stack of full batches (batch = tli_classes[c].batch objects
 *    chained by their encoded links), an array of their first objects in
 *    the metadata arena. Flushing threads push and refilling threads pop a
 *    whole batch under the class lock: one lock per batch, so the
 *    producer/consumer pattern - one thread frees what another allocated -
 *    costs the freeing side an uncontended lock every 32 frees. The array
 *    is outside the objects so that every object of a batch keeps both its
 *    words as I4 has them: a stack linked through the objects needs a third
 *    word in the first one, and when that was its second word (the free
 *    key's), a double free of a batch's first object went unseen and the
 *    block was later handed out twice.
 *  - spans: partial spans of the class (some objects free), in a heap by
 *    address; batches are cut from the highest when the transfer stack is
 *    empty, and objects return to them when it is full. A span whose
 *    objects all came back goes back to the page heap.
 *
 * Lock: tli_central_locks[c] guards the partial heap of class c, the object
 * lists and counts of its spans, and its transfer stack; its place in the
 * lock order: docs/DESIGN.md, "Locks". (The fields of struct central_list
 * carry no TL_GUARDED_BY: clang cannot name "the lock of the same index".)
 */
#include "heapcheck.h"
#include "internal.h"
#include "memcheck.h"

struct tli_lock tli_central_locks[TL_MAX_CLASSES];

struct central_list {
    void **transfer;                   /* first objects of full batches; NULL until needed */
    _Atomic uint32_t transfer_batches; /* on the stack (read without the lock by stats) */
    uint32_t low_batches;              /* fewest batches on the stack since the last decay */
    struct span *partial;              /* heap of spans with free or uncarved objects */
    size_t span_objects;               /* capacity of all spans of this class */
    size_t allocated;                  /* objects out of spans (transfer, caches, users) */
} __attribute__((aligned(64)));

static struct central_list central[TL_MAX_CLASSES];

/* Transfer stack bound per class: 1 MiB worth of batches (at least 4) for
 * objects up to 4 KiB; 128 KiB worth above, and none from 16 KiB (spans of
 * one or two objects): such a batch sitting on the stack pins whole spans
 * that the page heap could give to any other size, and moving them through
 * the span lists costs little beside writing 16 KiB or more (docs/DESIGN.md,
 * "Central lists", has the measurement behind the bounds). */
static uint32_t transfer_cap(unsigned cls)
{
    const struct size_class_info *c = &tli_classes[cls];
    if (c->size >= (16u << 10))
        return 0;
    if (c->size > 4096) {
        uint32_t cap = (uint32_t)(((size_t)128 << 10) / ((size_t)c->batch * c->size));
        return cap < 1 ? 1 : cap;
    }
    uint32_t cap = (uint32_t)(((size_t)1 << 20) / ((size_t)c->batch * c->size));
    return cap < 4 ? 4 : cap;
}

/* ---- partial spans -------------------------------------------------------- *
 * A class's partial spans form a pairing heap ordered by address, highest
 * on top, and objects are cut from the top span. Chunks are mapped
 * downwards and small spans are cut from the top of free runs, so the
 * highest spans are the oldest: a program that goes back to light work
 * after a peak keeps using the spans it used before the peak, and the
 * peak's spans drain and go back to the page heap. (Cutting from the span
 * freed last, as a stack does, spread the light work over spans scattered
 * through the freed peak: each kept a page and its pagemap pages resident.)
 * Insertion is O(1), removal O(log n) amortised, so a freed peak of
 * thousands of partial spans costs no more than a list. */
static struct span *heap_meld(struct span *a, struct span *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (a->start < b->start) {
        struct span *t = a;
        a = b;
        b = t;
    }
    b->prev = a;
    b->next = a->heap_child;
    if (a->heap_child)
        a->heap_child->prev = b;
    a->heap_child = b;
    return a;
}

/* Melds a list of siblings into one heap: pairs left to right, then the
 * pairs right to left (the two-pass rule that gives the amortised bound). */
static struct span *heap_combine(struct span *first)
{
    struct span *pairs = NULL;
    while (first) {
        struct span *a = first, *b = a->next;
        first = b ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b)
            b->next = b->prev = NULL;
        struct span *m = heap_meld(a, b);
        m->next = pairs;
        pairs = m;
    }
    struct span *root = NULL;
    while (pairs) {
        struct span *m = pairs;
        pairs = m->next;
        m->next = NULL;
        root = heap_meld(root, m);
    }
    return root;
}

static void partial_remove(struct central_list *cl, struct span *s)
{
    struct span *sub = heap_combine(s->heap_child);
    if (s == cl->partial) {
        cl->partial = sub;
    } else {
        if (s->prev->heap_child == s)
            s->prev->heap_child = s->next;
        else
            s->prev->next = s->next;
        if (s->next)
            s->next->prev = s->prev;
        cl->partial = heap_meld(cl->partial, sub);
    }
    s->next = s->prev = s->heap_child = NULL;
    s->on_central = 0;
}

static void partial_push(struct central_list *cl, struct span *s)
{
    s->next = s->prev = s->heap_child = NULL;
    cl->partial = heap_meld(cl->partial, s);
    s->on_central = 1;
}

static struct span *new_span(unsigned cls) TL_REQUIRES(tli_central_locks[cls])
{
    struct span *s = tli_page_heap_alloc(tli_classes[cls].span_pages, 1, SPAN_SMALL, cls);
    if (s) {
        tli_span_set_carved(s, 0);
        /* May have been a freed large block, which memcheck sees as no-access. */
        tli_vg_defined((void *)s->start, s->npages << TL_PAGE_SHIFT);
        s->allocated = 0;
        s->carved = 0;
        tli_link_set(&s->free_list, NULL);
        central[cls].span_objects += tli_classes[cls].objects;
    }
    return s;
}

/* A list walk found obj out of place (I4): its key is not the one of the
 * list it is on, so it was freed twice or written after its free. The
 * lists cannot be trusted past it; this aborts, under the class lock as
 * the link checks do. */
TL_COLD static void bad_block(void *obj, const char *who, const char *when)
{
    tli_report_corruption(obj, who, when);
}
#define FOUND_BY_MALLOC "double free or corrupted free block, detected when malloc reused it"
#define FOUND_BY_FREE "double free or corrupted free block, detected when it went back to its span"

/* The object after obj in a chain of thread cache or transfer objects. */
static void *chain_next(void *obj, const char *who, const char *when)
{
    if (TL_UNLIKELY(!obj || tli_key_of(obj) != tli_free_key(obj)))
        bad_block(obj, who, when);
    return tli_link_get(obj);
}

/* A span whose count says that all its objects are back: its free list
 * must hold exactly the carved objects, each once, each with its span key
 * (I4). A block freed twice after it went back to its span entered the
 * list twice and made the count one short: without this walk the span's
 * pages would be reused under a block still in use. Its cost is a walk
 * of the span's objects when the span goes back to the page heap. */
static void check_span_list(const struct span *s)
{
    uint32_t n = 0;
    for (void *obj = tli_link_get(&s->free_list); obj; obj = tli_link_get(obj)) {
        if (TL_UNLIKELY(++n > s->carved || !tli_is_object_start(s, (uintptr_t)obj) ||
                        tli_key_of(obj) != tli_span_key(obj)))
            bad_block(obj, "free", FOUND_BY_FREE);
    }
    if (TL_UNLIKELY(n != s->carved))
        bad_block((void *)s->start, "free", FOUND_BY_FREE);
}

/* Objects on a chain, counting no further than max (a loop). For
 * TL_ASSERT_SLOW, which uses it in debug builds only. */
__attribute__((unused)) static size_t chain_length(void *head, size_t max)
{
    size_t n = 0;
    for (void *p = head; p && n < max; p = tli_link_get(p))
        n++;
    return n;
}

/* A span free-list link is NULL or an object of that span. */
static bool link_in_span(const struct span *s, const void *next)
{
    return !next || tli_is_object_start(s, (uintptr_t)next);
}

/* Cuts up to n objects out of spans into a chain. Class lock held. */
static unsigned take_from_spans(unsigned cls, unsigned n, void **head)
    TL_REQUIRES(tli_central_locks[cls])
{
    struct central_list *cl = &central[cls];
    const struct size_class_info *c = &tli_classes[cls];
    void *chain = NULL;
    unsigned got = 0;
    while (got < n) {
        struct span *s = cl->partial;
        if (!s) {
            if (!(s = new_span(cls)))
                break;
            partial_push(cl, s);
        }
        TL_ASSERT(s->state == SPAN_SMALL && s->size_class == cls && s->on_central);
        while (got < n) {
            void *obj = tli_link_get(&s->free_list);
            if (obj) {
                if (TL_UNLIKELY(tli_key_of(obj) != tli_span_key(obj)))
                    bad_block(obj, "malloc", FOUND_BY_MALLOC);
                void *next = tli_link_get(obj);
                if (TL_UNLIKELY(!link_in_span(s, next)))
                    tli_report_corruption(obj, "malloc",
                                          "free-list link overwritten (use after free?)");
                tli_link_set(&s->free_list, next);
            } else if (s->carved < c->objects) {
                obj = (void *)(s->start + (size_t)s->carved++ * c->size);
            } else {
                break;
            }
            tli_link_set(obj, chain);
            ((uint64_t *)obj)[1] = tli_free_key(obj);
            chain = obj;
            TL_ASSERT(s->allocated < s->carved);
            s->allocated++;
            got++;
        }
        tli_span_set_carved(s, s->carved);
        if (!tli_link_get(&s->free_list) && s->carved == c->objects)
            partial_remove(cl, s);
    }
    cl->allocated += got;
    *head = chain;
    return got;
}

/* Returns a chain of objects to their spans. Class lock held. */
static void give_to_spans(unsigned cls, void *head, unsigned n) TL_REQUIRES(tli_central_locks[cls])
{
    struct central_list *cl = &central[cls];
    for (unsigned i = 0; i < n && head; i++) {
        void *obj = head;
        struct span *s = tli_pagemap_span((uintptr_t)obj);
        if (TL_UNLIKELY(!s || s->state != SPAN_SMALL || s->size_class != cls))
            tli_report_corruption(obj, "free", "free-list link points outside its size class");
        head = chain_next(obj, "free", FOUND_BY_FREE);
        TL_ASSERT(s->allocated > 0 && tli_is_object_start(s, (uintptr_t)obj));
        tli_link_set(obj, tli_link_get(&s->free_list));
        ((uint64_t *)obj)[1] = tli_span_key(obj);
        tli_link_set(&s->free_list, obj);
        s->allocated--;
        cl->allocated--;
        if (s->allocated == 0) {
            check_span_list(s);
            if (s->on_central)
                partial_remove(cl, s);
            cl->span_objects -= tli_classes[cls].objects;
            tli_page_heap_free(s);
        } else if (!s->on_central) {
            partial_push(cl, s);
        }
    }
}

/* ---- transfer stage ------------------------------------------------------ */
/* Class lock held. */
static void *pop_batch(unsigned cls) TL_REQUIRES(tli_central_locks[cls])
{
    struct central_list *cl = &central[cls];
    uint32_t n = atomic_load_explicit(&cl->transfer_batches, memory_order_relaxed);
    if (!n)
        return NULL;
    TL_ASSERT(cl->transfer && n <= transfer_cap(cls));
    atomic_store_explicit(&cl->transfer_batches, n - 1, memory_order_relaxed);
    if (n - 1 < cl->low_batches)
        cl->low_batches = n - 1;
    return cl->transfer[n - 1];
}

/* Class lock held. The stack's array is made on the first push. */
static bool push_batch(unsigned cls, void *head) TL_REQUIRES(tli_central_locks[cls])
{
    struct central_list *cl = &central[cls];
    uint32_t n = atomic_load_explicit(&cl->transfer_batches, memory_order_relaxed);
    if (n >= transfer_cap(cls))
        return false;
    if (!cl->transfer && !(cl->transfer = tli_meta_alloc(transfer_cap(cls) * sizeof(void *))))
        return false;
    TL_ASSERT_SLOW(chain_length(head, tli_classes[cls].batch + 1) == tli_classes[cls].batch);
    cl->transfer[n] = head;
    atomic_store_explicit(&cl->transfer_batches, n + 1, memory_order_relaxed);
    return true;
}

unsigned tli_central_take(unsigned cls, unsigned n, void **head)
{
    unsigned batch_n = tli_classes[cls].batch, got = n;
    TL_ASSERT(cls > 0 && cls < tli_num_classes && n > 0);
    tli_debug_tick();
    tli_lock_acquire(&tli_central_locks[cls]);
    void *batch = pop_batch(cls);
    if (batch) {
        /* Whole batches are what others freed: use them first, or they
         * would pin their spans. Less than a batch wanted (a list still
         * growing): the rest goes back to its spans. */
        *head = batch;
        if (n < batch_n) {
            void *last = batch;
            for (unsigned i = 1; i < n; i++)
                last = chain_next(last, "malloc", FOUND_BY_MALLOC);
            give_to_spans(cls, chain_next(last, "malloc", FOUND_BY_MALLOC), batch_n - n);
            tli_link_set(last, NULL);
        }
    } else {
        got = take_from_spans(cls, n, head);
    }
    tli_lock_release(&tli_central_locks[cls]);
    return got;
}

/* Gives a chain of n objects back: a full batch onto the transfer stack
 * while it has room, anything else into the spans. With
 * to_spans, always into the spans: for objects a thread found idle, which
 * another thread is not waiting for, and whose spans may then go back to
 * the page heap for any size. */
void tli_central_give(unsigned cls, void *head, unsigned n, bool to_spans)
{
    TL_ASSERT(cls > 0 && cls < tli_num_classes && head && n > 0);
    tli_debug_tick();
    tli_lock_acquire(&tli_central_locks[cls]);
    if (to_spans || n != tli_classes[cls].batch || !push_batch(cls, head))
        give_to_spans(cls, head, n);
    tli_lock_release(&tli_central_locks[cls]);
}

/* Gives back one freed object (I4: a free object carries its free key). */
void tli_central_give_one(void *p, unsigned cls)
{
    tli_link_set(p, NULL);
    ((uint64_t *)p)[1] = tli_free_key(p);
    tli_central_give(cls, p, 1, false);
}

/* Empties a class's transfer stack into its spans. Class lock held. */
static void drain(unsigned cls) TL_REQUIRES(tli_central_locks[cls])
{
    void *batch;
    while ((batch = pop_batch(cls)))
        give_to_spans(cls, batch, tli_classes[cls].batch);
    central[cls].low_batches = 0;
}

/* Empties every transfer stack into the spans (malloc_trim). */
void tli_central_drain_all(void)
{
    for (unsigned cls = 1; cls < tli_num_classes; cls++) {
        tli_lock_acquire(&tli_central_locks[cls]);
        drain(cls);
        tli_lock_release(&tli_central_locks[cls]);
    }
}

/* Once every decay_ms/4 (whichever thread comes first): the batches that sat
 * on a transfer stack through the whole interval - as many as its low-water
 * mark - go back into their spans, so that the spans they pin can go back
 * to the page heap. Batches in use come and go above the mark. After a
 * peak (tli_peak_epoch), all of them go: those in use hold objects of the
 * freed peak too, which would otherwise pass from thread to thread. */
static _Atomic uint64_t next_ms; /* when tli_central_decay runs next */

void tli_central_decay_soon(void) { atomic_store_explicit(&next_ms, 0, memory_order_relaxed); }

void tli_central_decay(uint64_t now)
{
    static _Atomic uint32_t seen_epoch;
    uint64_t due = atomic_load_explicit(&next_ms, memory_order_relaxed);
    if (now < due ||
        !atomic_compare_exchange_strong_explicit(
            &next_ms, &due, now + __atomic_load_n(&tli_conf.decay_ms, __ATOMIC_RELAXED) / 4,
            memory_order_relaxed, memory_order_relaxed))
        return;
    uint32_t epoch = atomic_load_explicit(&tli_peak_epoch, memory_order_relaxed);
    bool after_peak = atomic_exchange_explicit(&seen_epoch, epoch, memory_order_relaxed) != epoch;
    for (unsigned cls = 1; cls < tli_num_classes; cls++) {
        struct central_list *cl = &central[cls];
        if (!atomic_load_explicit(&cl->transfer_batches, memory_order_relaxed))
            continue;
        tli_lock_acquire(&tli_central_locks[cls]);
        if (after_peak)
            drain(cls);
        for (uint32_t n = cl->low_batches; n > 0; n--) {
            void *batch = pop_batch(cls);
            if (!batch)
                break;
            give_to_spans(cls, batch, tli_classes[cls].batch);
        }
        cl->low_batches = atomic_load_explicit(&cl->transfer_batches, memory_order_relaxed);
        tli_lock_release(&tli_central_locks[cls]);
    }
}

/* Batches on all transfer stacks, read without the locks: the background
 * thread's hint that decay has something left to do. */
size_t tli_central_batches(void)
{
    size_t n = 0;
    for (unsigned cls = 1; cls < tli_num_classes; cls++)
        n += atomic_load_explicit(&central[cls].transfer_batches, memory_order_relaxed);
    return n;
}

/* Bytes of free objects held centrally: transfer batches plus the free and
 * uncarved objects of spans. Approximate while other threads run. */
size_t tli_central_free_bytes(unsigned cls)
{
    const struct central_list *cl = &central[cls];
    size_t batches = atomic_load_explicit(&cl->transfer_batches, memory_order_relaxed);
    size_t span_free = cl->span_objects - cl->allocated;
    return (span_free + batches * tli_classes[cls].batch) * tli_classes[cls].size;
}

size_t tli_central_span_bytes(unsigned cls)
{
    return central[cls].span_objects * tli_classes[cls].size;
}

/* Bytes of objects out of the central list: in thread caches or in use. */
size_t tli_central_out_bytes(unsigned cls)
{
    const struct central_list *cl = &central[cls];
    size_t batches = atomic_load_explicit(&cl->transfer_batches, memory_order_relaxed);
    return (cl->allocated - batches * tli_classes[cls].batch) * tli_classes[cls].size;
}

/* ---- the heap walk (heapcheck.c) ------------------------------------------ */
/* The partial heap holds exactly the spans with room that the pagemap walk
 * found, in heap order; the transfer batches are whole batches of free
 * objects; the counts are the spans' sums. */
/* The parent of heap node s (prev is the left sibling, or for a first child
 * the parent), NULL for the root. */
static const struct span *heap_parent(const struct span *s)
{
    while (s->prev && s->prev->heap_child != s)
        s = s->prev;
    return s->prev;
}

/* Visits the heap in preorder without recursion (a heap built by rising
 * addresses is one long chain of first children). */
static size_t check_heap(struct tli_heap_walk *w, unsigned cls, const struct span *root,
                         size_t limit)
{
    size_t n = 0;
    const struct span *s = root;
    while (s && n < limit) {
        n++;
        tli_walk_expect(w, s->state == SPAN_SMALL && s->size_class == cls && s->on_central,
                        "a partial heap holds a span not of its class or not marked", s->start);
        const struct span *child = s->heap_child;
        if (child) {
            tli_walk_expect(w, child->prev == s && child->start < s->start,
                            "a partial heap out of order, or a parent link wrong", child->start);
            s = child;
            continue;
        }
        while (s && s != root && !s->next)
            s = heap_parent(s);
        if (!s || s == root)
            break;
        const struct span *parent = heap_parent(s);
        tli_walk_expect(w, s->next->prev == s && parent && s->next->start < parent->start,
                        "a partial heap out of order, or a sibling link wrong", s->next->start);
        s = s->next;
    }
    return n;
}

void tli_central_check(struct tli_heap_walk *w, unsigned cls)
{
    const struct central_list *cl = &central[cls];
    const struct size_class_info *c = &tli_classes[cls];
    tli_walk_expect(
        w, tli_class_div.inv[cls] == c->div_inv && tli_class_div.shift[cls] == c->div_shift,
        "a class's object-start constants differ from its size class", cls);
    tli_walk_expect(w, !cl->partial || !cl->partial->prev, "a partial heap's root has a parent",
                    cls);
    tli_walk_expect(w, check_heap(w, cls, cl->partial, w->partial[cls] + 1) == w->partial[cls],
                    "a partial heap does not hold exactly its class's spans with room", cls);
    tli_walk_expect(w, cl->allocated == w->allocated[cls],
                    "a central list's objects out are not its spans' sum", cls);
    tli_walk_expect(w, cl->span_objects == w->spans[cls] * c->objects,
                    "a central list's capacity is not its spans' sum", cls);
    uint32_t batches = atomic_load_explicit(&cl->transfer_batches, memory_order_relaxed);
    tli_walk_expect(w, batches <= transfer_cap(cls) && cl->low_batches <= batches,
                    "a transfer stack's counts out of range", cls);
    for (uint32_t i = 0; i < batches; i++) {
        void *obj = cl->transfer[i];
        for (unsigned k = 0; k < c->batch; k++, obj = tli_link_get(obj)) {
            if (!obj) {
                tli_walk_problem(w, "a transfer batch is short", (uintptr_t)cl->transfer[i]);
                break;
            }
            tli_walk_free_object(w, obj, cls, false);
        }
        if (obj)
            tli_walk_problem(w, "a transfer batch is long", (uintptr_t)cl->transfer[i]);
    }
}

/* heapcheck.h - the state of one whole-heap walk (heapcheck.c), shared with
 * the layers whose private structures it looks at (page_heap.c,
 * central_list.c). */
#ifndef TL_HEAPCHECK_H
#define TL_HEAPCHECK_H

#include "internal.h"

#define TL_WALK_RECORDED 8

struct tli_heap_walk {
    size_t problems;
    struct {
        const char *what;
        uintptr_t where;
    } first[TL_WALK_RECORDED]; /* reported once the locks are dropped */
    /* What the pagemap walk found, for the layers to compare with their own
     * lists and counts. Index [1]: unbacked free spans, [0]: dirty. */
    size_t free_spans[2], free_bytes[2];
    size_t small_bytes, large_bytes;
    size_t large_spans;               /* in use, for the page heap's counts */
    size_t spans[TL_MAX_CLASSES];     /* small spans of each class */
    size_t allocated[TL_MAX_CLASSES]; /* their objects out */
    size_t partial[TL_MAX_CLASSES];   /* of them, in the partial heap */
    /* One bit per 16 bytes of each pagemap leaf's range: a free object
     * already met on some list. Mapped as needed, unmapped at the end. */
    uint64_t **seen;
};

void tli_walk_problem(struct tli_heap_walk *w, const char *what, uintptr_t where);
static inline void tli_walk_expect(struct tli_heap_walk *w, bool ok, const char *what,
                                   uintptr_t where)
{
    if (!ok)
        tli_walk_problem(w, what, where);
}
/* obj is on a free list of class cls (its span's when in_span, else a
 * transfer batch or a thread cache): it must be a carved object of a small
 * span of that class, carry the key of the kind of list it is on (I4:
 * tli_span_key on a span's list, tli_free_key on the others), and be on no
 * other list. */
void tli_walk_free_object(struct tli_heap_walk *w, void *obj, unsigned cls, bool in_span);
/* The calling thread's fork levels (fork.c): none outside fork's
 * handlers, and no slot of the pool claimed in its name. */
void tli_fork_check(struct tli_heap_walk *w);

#endif

/* validate.c - the one classification of a pointer the user hands back
 * (internal.h, "pointer validation"), and the report of each verdict.
 *
 * The free fast path makes only its cheap part (tli_hot_is_object_start);
 * whatever that refuses comes here through the slow path, as do realloc,
 * malloc_usable_size and check mode. The verdict reads the pagemap (I2,
 * I3), the span and, for an object start, the object's free key (I4): a
 * pointer never makes the allocator follow a link or touch a lock.
 */
#include "internal.h"
#include "memcheck.h"

#include <string.h>

/* p lies in small span s: which object, and in what state. The span's
 * objects fill [start, start + objects * size); past them is its tail.
 * Object starts are bounded by the span's carved limit (tli_is_object_start),
 * which only grows while the span is in use. */
static enum tli_verdict small_verdict(const struct span *s, uintptr_t a, struct tli_where *w)
{
    if (TL_LIKELY(tli_is_object_start(s, a))) {
        w->block = a;
        tli_vg_defined((uint64_t *)a + 1, 8); /* the key check reads the user's word */
        if (TL_UNLIKELY(tli_key_of((const void *)a) == tli_free_key((const void *)a) ||
                        tli_key_of((const void *)a) == tli_span_key((const void *)a)))
            return TL_PTR_FREED;
        return TL_PTR_BLOCK;
    }
    const struct size_class_info *c = &tli_classes[s->size_class];
    if (TL_UNLIKELY(!c->size)) /* a racing free made the span free meanwhile (I3) */
        return TL_PTR_FREE_MEMORY;
    size_t off = a - s->start, index = off / c->size;
    if (index >= c->objects)
        return TL_PTR_SPAN_TAIL;
    w->block = s->start + index * c->size;
    return a != w->block ? TL_PTR_INTERIOR : TL_PTR_NOT_CARVED;
}

enum tli_verdict tli_validate(const void *p, struct tli_where *w)
{
    uintptr_t a = (uintptr_t)p;
    /* One load, tested before use: a racing free may clear the entry (I3).
     * Acquire: the fields set before the span was published are seen. */
    struct span *s = tli_pagemap_span(a);
    *w = (struct tli_where){s, 0};
    if (!s) /* a huge block's only mapped page goes with its mapping */
        return tli_huge_recently_freed(a) ? TL_PTR_FREED_HUGE : TL_PTR_FOREIGN;
    switch (s->state) {
    case SPAN_SMALL:
        return small_verdict(s, a, w);
    case SPAN_LARGE:
    case SPAN_HUGE:
        w->block = s->start;
        return a == s->start ? TL_PTR_BLOCK : TL_PTR_INTERIOR;
    default:
        return a == s->start ? TL_PTR_FREED : TL_PTR_FREE_MEMORY;
    }
}

/* p is a block already free: freeing it again is a double free; asking
 * its size or resizing it is a use after free. */
static void report_freed(void *p, unsigned cls, const char *who)
{
    if (!strcmp(who, "free"))
        tli_report_double_free(p, cls, who);
    else
        tli_report_invalid_free(p, who, "pointer to a block already freed (use after free?)");
}

void tli_report_pointer(void *p, enum tli_verdict v, const struct tli_where *w, const char *who)
{
    switch (v) {
    case TL_PTR_BLOCK:
        break;
    case TL_PTR_FOREIGN:
        tli_report_invalid_free(p, who, "pointer was not allocated by tlmalloc");
        break;
    case TL_PTR_FREED_HUGE:
        report_freed(p, 0, who);
        break;
    case TL_PTR_INTERIOR:
        tli_report_invalid_free(p, who, "pointer into the middle of a block");
        break;
    case TL_PTR_SPAN_TAIL:
        tli_report_invalid_free(p, who, "pointer into the tail of a span, past its last block");
        break;
    case TL_PTR_NOT_CARVED:
        tli_report_invalid_free(p, who, "pointer to a block never handed out");
        break;
    case TL_PTR_FREED:
        report_freed(p, w->block ? w->span->size_class : 0, who);
        break;
    case TL_PTR_FREE_MEMORY:
        tli_report_invalid_free(p, who, "pointer into free memory");
        break;
    }
}

struct span *tli_lookup(void *p, const char *who)
{
    struct tli_where w;
    enum tli_verdict v = tli_validate(p, &w);
    if (TL_LIKELY(v == TL_PTR_BLOCK))
        return w.span;
    tli_report_pointer(p, v, &w, who);
    return NULL;
}

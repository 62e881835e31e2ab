/* stack.h - call stacks for check mode and the heap profiler (stack.c):
 * capture without frame pointers, and the depot of unique traces they are
 * kept in. */
#ifndef TL_STACK_H
#define TL_STACK_H

#include "internal.h"

/* The deepest trace the depot keeps (the profiler's traces; check mode
 * records fewer). */
#define TL_STACK_MAX 64

/* A unique trace in the depot: never freed, never changed once published. */
struct tli_stack {
    struct tli_stack *chain; /* hash chain, under tli_stack_lock */
    uint64_t hash;
    uint32_t id;     /* its number: tli_stack_get(id) gives it back */
    uint32_t depth;  /* frames in pcs */
    uintptr_t pcs[]; /* return addresses, innermost first */
};

/* Guards the depot's hash chains and the making of entries; its place in
 * the lock order: docs/DESIGN.md, "Locks". */
extern struct tli_lock tli_stack_lock;

/* Up to max (<= TL_STACK_MAX) return addresses of the caller, innermost
 * first, without the leading frames that are tlmalloc's own or libstdc++'s
 * operator new. 0 when this thread is already inside a capture (a signal
 * handler, or an unwinder that called malloc). Call with no allocator lock
 * held: the unwinder may take its own. Neither allocates nor reads frame
 * pointers. */
unsigned tli_stack_capture(uintptr_t *pcs, unsigned max);

/* The depot's entry for the trace, made if new; NULL when the depot is
 * full or metadata memory ran out. Takes tli_stack_lock. */
const struct tli_stack *tli_stack_intern(const uintptr_t *pcs, unsigned n)
    TL_EXCLUDES(tli_stack_lock);

/* The entry numbered id, or NULL if there is none. No lock. */
const struct tli_stack *tli_stack_get(uint32_t id);

/* How many entries have been numbered: ids 0 .. count-1. No lock. */
uint32_t tli_stack_count(void);

/* From the constructor, with no allocator lock held, when check mode or
 * the profiler records stacks: finds libstdc++'s operator new functions
 * and does the unwinder's one-time set-up (so that none of it happens
 * inside malloc). */
void tli_stack_start(void);

#endif

/* cxx.c - the replaceable C++ allocation and deallocation functions of
 * C++17/C++20, under their Itanium ABI (mangled) names, in the LD_PRELOAD
 * library only: the prefixed library leaves the system allocator alone,
 * and operator new is part of it for a C++ program.
 *
 *  new, new[]:       plain, nothrow, align_val_t, align_val_t + nothrow
 *  delete, delete[]: plain, sized, align_val_t, sized + align_val_t,
 *                    nothrow, align_val_t + nothrow
 *
 * operator new(size) is malloc's fast path (internal.h) with its own
 * miss handler. On failure the throwing forms call the installed
 * new_handler and try again, then throw std::bad_alloc; the nothrow forms
 * return NULL. The library stays C and does not need libstdc++: it reaches
 * std::get_new_handler and std::__throw_bad_alloc through weak references,
 * which a C++ program (the only kind that calls operator new) resolves.
 * docs/DESIGN.md ("C++ allocation functions") says why, and what happens
 * without them.
 *
 * Every delete form frees through free's fast path; in check mode they
 * tell check.c which family frees and the size a sized delete passed, so
 * that a mismatched pair is reported.
 */
#include "internal.h"
#include "memcheck.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*tli_new_handler)(void);
/* From libstdc++, when the process has it: weak, so that a plain C program
 * linked with or preloading tlmalloc does not start needing it. */
extern tli_new_handler _ZSt15get_new_handlerv(void) __attribute__((weak));
extern _Noreturn void _ZSt17__throw_bad_allocv(void) __attribute__((weak));

#if TL_OVERRIDE

/* What std::bad_alloc would say, when nobody can throw it. */
static TL_COLD _Noreturn void throw_bad_alloc(void)
{
    if (_ZSt17__throw_bad_allocv)
        _ZSt17__throw_bad_allocv();
    tli_fatal("operator new: out of memory, and no C++ runtime in the process to throw "
              "std::bad_alloc");
}

static tli_new_handler current_new_handler(void)
{
    return _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
}

/* One attempt, NULL on failure; check mode records the family. */
static void *try_alloc(size_t size, size_t alignment, enum tli_family family, uintptr_t caller)
{
    tli_ensure_init();
    if (TL_UNLIKELY(tli_conf.check))
        return tli_check_alloc_family(size, alignment, family, caller);
    return alignment > TL_ALIGNMENT ? tli_alloc_aligned(alignment, size) : tli_alloc(size);
}

/* The standard's loop: while allocation fails, call the new_handler, which
 * frees memory, installs another handler, or throws; with none, throw.
 * The handler runs with no allocator lock held. */
static TL_NOINLINE void *new_slow(size_t size, size_t alignment, enum tli_family family,
                                  uintptr_t caller)
{
    for (;;) {
        void *p = try_alloc(size, alignment, family, caller);
        if (TL_LIKELY(p != NULL))
            return p;
        tli_new_handler handler = current_new_handler();
        if (!handler)
            throw_bad_alloc();
        handler();
    }
}

/* The nothrow forms try once and return NULL. They do not call the
 * new_handler: one that throws std::bad_alloc (as the standard allows)
 * would let the exception out of a noexcept function, since C cannot catch
 * it (see DESIGN.md). */
static void *nothrow_slow(size_t size, size_t alignment, enum tli_family family, uintptr_t caller)
{
    return try_alloc(size, alignment, family, caller);
}

static void *new_miss(size_t size, uintptr_t caller)
{
    return new_slow(size, 0, TL_FAMILY_NEW, caller);
}
static void *new_array_miss(size_t size, uintptr_t caller)
{
    return new_slow(size, 0, TL_FAMILY_NEW_ARRAY, caller);
}
static void *nothrow_miss(size_t size, uintptr_t caller)
{
    return nothrow_slow(size, 0, TL_FAMILY_NEW, caller);
}
static void *nothrow_array_miss(size_t size, uintptr_t caller)
{
    return nothrow_slow(size, 0, TL_FAMILY_NEW_ARRAY, caller);
}

/* ---- new ------------------------------------------------------------------------ *
 * Aligned to 16 bytes: with prof=1 the profiler writes a jump to a counting
 * variant (below) over the first 8 bytes of each, in one atomic store (see
 * api.c's malloc). */
#define TL_NEW_ENTRY TL_EXPORT __attribute__((aligned(16)))
TL_NEW_ENTRY void *_Znwm(size_t size) { return tli_fast_malloc(size, new_miss); }
TL_NEW_ENTRY void *_Znam(size_t size) { return tli_fast_malloc(size, new_array_miss); }

/* std::nothrow_t is an empty class: passed by reference, never read. */
TL_NEW_ENTRY void *_ZnwmRKSt9nothrow_t(size_t size, const void *nothrow)
{
    (void)nothrow;
    return tli_fast_malloc(size, nothrow_miss);
}
TL_NEW_ENTRY void *_ZnamRKSt9nothrow_t(size_t size, const void *nothrow)
{
    (void)nothrow;
    return tli_fast_malloc(size, nothrow_array_miss);
}

/* ---- the profiler's counting variants (prof=1) ----------------------------------- *
 * Each subtracts the size from the thread's sampling count, as malloc's
 * does (api.c); a sample gets its block from prof.c, and a sample that
 * fails goes the ordinary way, through the miss handler (the new_handler
 * and bad_alloc of the throwing forms). */
/* Reached by a tail jump from the counting variant, which keeps no frame:
 * the return address is operator new's caller. */
static TL_NOIPA void *sampled_new(size_t size, tli_alloc_miss *miss)
{
    uintptr_t caller = TL_CALLER;
    tli_ensure_init();
    if (tli_prof_take_sample(size)) {
        void *p = tli_prof_sample(size, 0, false, caller);
        if (p)
            return p;
    }
    return miss(size, caller);
}

static TL_ALWAYS_INLINE void *prof_new_common(size_t size, tli_alloc_miss *miss)
{
    if (TL_UNLIKELY(tli_prof_count_down(size)))
        return sampled_new(size, miss);
    return tli_fast_malloc(size, miss);
}

static void *prof_new(size_t size) { return prof_new_common(size, new_miss); }
static void *prof_new_array(size_t size) { return prof_new_common(size, new_array_miss); }
static void *prof_new_nothrow(size_t size, const void *nothrow)
{
    (void)nothrow;
    return prof_new_common(size, nothrow_miss);
}
static void *prof_new_array_nothrow(size_t size, const void *nothrow)
{
    (void)nothrow;
    return prof_new_common(size, nothrow_array_miss);
}

TL_ENTRY_ALIAS(tli_new_entry, _Znwm);
TL_ENTRY_ALIAS(tli_new_array_entry, _Znam);
TL_ENTRY_ALIAS(tli_new_nothrow_entry, _ZnwmRKSt9nothrow_t);
TL_ENTRY_ALIAS(tli_new_array_nothrow_entry, _ZnamRKSt9nothrow_t);

enum tli_patch tli_prof_install_cxx_entries(void)
{
    static const struct {
        void *entry;
        const void *target;
    } entries[] = {
        {(void *)(uintptr_t)&tli_new_entry, (const void *)&prof_new},
        {(void *)(uintptr_t)&tli_new_array_entry, (const void *)&prof_new_array},
        {(void *)(uintptr_t)&tli_new_nothrow_entry, (const void *)&prof_new_nothrow},
        {(void *)(uintptr_t)&tli_new_array_nothrow_entry, (const void *)&prof_new_array_nothrow},
    };
    enum tli_patch worst = TLI_PATCH_DONE;
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++) {
        enum tli_patch r = tli_redirect_entry(entries[i].entry, entries[i].target);
        if (r > worst)
            worst = r;
    }
    return worst;
}

/* std::align_val_t is a size_t; the standard requires a power of two (an
 * alignment that is not one fails, as aligned_alloc's would). */
static void *aligned_new(size_t size, size_t alignment, enum tli_family family, bool nothrow,
                         uintptr_t caller)
{
    if (TL_UNLIKELY(!alignment || (alignment & (alignment - 1))))
        size = SIZE_MAX; /* fails below, through the usual failure path */
    /* prof=1: counted as malloc's entry counts (false until initialised,
     * and the first allocation only starts a thread's count anyway). */
    if (TL_UNLIKELY(tli_prof_enabled)) {
        if (tli_prof_count(size)) {
            void *p = tli_prof_sample(size, alignment, false, caller);
            if (p)
                return p;
        }
    }
    return nothrow ? nothrow_slow(size, alignment, family, caller)
                   : new_slow(size, alignment, family, caller);
}

TL_EXPORT void *_ZnwmSt11align_val_t(size_t size, size_t alignment)
{
    return aligned_new(size, alignment, TL_FAMILY_NEW, false, TL_CALLER);
}
TL_EXPORT void *_ZnamSt11align_val_t(size_t size, size_t alignment)
{
    return aligned_new(size, alignment, TL_FAMILY_NEW_ARRAY, false, TL_CALLER);
}
TL_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t alignment,
                                                   const void *nothrow)
{
    (void)nothrow;
    return aligned_new(size, alignment, TL_FAMILY_NEW, true, TL_CALLER);
}
TL_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t alignment,
                                                   const void *nothrow)
{
    (void)nothrow;
    return aligned_new(size, alignment, TL_FAMILY_NEW_ARRAY, true, TL_CALLER);
}

/* ---- delete ----------------------------------------------------------------------- */
/* Every form is free's fast path (internal.h) with misses of its own.
 * Outside check mode the size and alignment are not needed (the pagemap
 * knows the block), and trusting a size instead of the pagemap would let a
 * wrong one put a block on another class's list. In check mode the misses
 * see every checked block, and tell check.c which family frees it. The
 * fast path reaches them by a tail jump: the return address is the
 * caller's, the site a report names. */
TL_NOINLINE TL_NOIPA void tli_delete_slow(void *p, enum tli_family family, size_t size)
{
    if (TL_LIKELY(!tli_conf.check)) {
        tli_free_slow(p);
        return;
    }
    tli_check_free_family(p, family, size, (uintptr_t)__builtin_return_address(0));
}

TL_NOINLINE TL_NOIPA void tli_delete_slow_room(void *p, size_t cls, enum tli_family family,
                                               size_t size)
{
    if (TL_LIKELY(!tli_conf.check)) {
        tli_free_slow_room(p, cls);
        return;
    }
    tli_tc.lists.room[cls]++;
    tli_check_free_family(p, family, size, (uintptr_t)__builtin_return_address(0));
}

static inline __attribute__((always_inline)) void cxx_delete(void *p, enum tli_family family,
                                                             size_t size)
{
    tli_fast_free_as(p, family, size);
}

#define TL_DELETE_FORMS(plain, sized, aligned, sized_aligned, nothrow, aligned_nothrow, family)    \
    TL_EXPORT void plain(void *p) { cxx_delete(p, family, 0); }                                    \
    TL_EXPORT void sized(void *p, size_t size) { cxx_delete(p, family, size); }                    \
    TL_EXPORT void aligned(void *p, size_t alignment)                                              \
    {                                                                                              \
        (void)alignment;                                                                           \
        cxx_delete(p, family, 0);                                                                  \
    }                                                                                              \
    TL_EXPORT void sized_aligned(void *p, size_t size, size_t alignment)                           \
    {                                                                                              \
        (void)alignment;                                                                           \
        cxx_delete(p, family, size);                                                               \
    }                                                                                              \
    TL_EXPORT void nothrow(void *p, const void *tag)                                               \
    {                                                                                              \
        (void)tag;                                                                                 \
        cxx_delete(p, family, 0);                                                                  \
    }                                                                                              \
    TL_EXPORT void aligned_nothrow(void *p, size_t alignment, const void *tag)                     \
    {                                                                                              \
        (void)alignment;                                                                           \
        (void)tag;                                                                                 \
        cxx_delete(p, family, 0);                                                                  \
    }

TL_DELETE_FORMS(_ZdlPv, _ZdlPvm, _ZdlPvSt11align_val_t, _ZdlPvmSt11align_val_t,
                _ZdlPvRKSt9nothrow_t, _ZdlPvSt11align_val_tRKSt9nothrow_t, TL_FAMILY_NEW)
TL_DELETE_FORMS(_ZdaPv, _ZdaPvm, _ZdaPvSt11align_val_t, _ZdaPvmSt11align_val_t,
                _ZdaPvRKSt9nothrow_t, _ZdaPvSt11align_val_tRKSt9nothrow_t, TL_FAMILY_NEW_ARRAY)

#endif

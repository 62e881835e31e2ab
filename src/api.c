/* api.c - the exported functions: the malloc family (when built with
 * TL_OVERRIDE=1, replacing the system allocator) and the tl_ API.
 *
 * The two fast paths (internal.h) are inlined into malloc and free.
 * Anything unusual - an empty or full list, a large block, a bad pointer,
 * an uninitialised allocator or thread, check mode, and every TL_TICK-th
 * free (the decay clock) - leaves for the slow paths in alloc.c. Neither fast path takes a lock, makes an atomic
 * read-modify-write or calls a function.
 *
 * Contract details follow glibc 2.36 on x86-64 (see README.md): 16-byte
 * alignment for every size, NULL with errno ENOMEM for impossible sizes,
 * realloc(p, 0) frees p and returns NULL, memalign rounds a non-power-of-two
 * alignment up; aligned_alloc follows C17 (and glibc 2.38) and refuses a
 * non-power-of-two alignment with EINVAL.
 */
#include "internal.h"
#include "memcheck.h"
#include "tlmalloc.h"

#include <errno.h>
#include <string.h>

/* Out of line so that the fast path keeps no registers for them; with a
 * frame of their own, so that the report's backtrace reaches the caller.
 * noipa: the compiler must not see that they never return, or it calls
 * them from the frameless fast path instead of jumping to them, and the
 * backtrace loses the program's frame. */
TL_NOINLINE TL_NOIPA void *tli_pop_bad_link(void *p)
{
    tli_report_corruption(p, "malloc", "free-list link overwritten (use after free?)");
    return NULL;
}

/* A block whose key is wrong when malloc takes it was freed twice (and
 * handed out meanwhile, which cleared the key), or written after its free. */
TL_NOINLINE TL_NOIPA void *tli_pop_bad_key(void *p)
{
    tli_report_corruption(p, "malloc",
                          "double free or corrupted free block, detected when malloc reused it");
    return NULL;
}

static inline void *fast_malloc(size_t size) { return tli_fast_malloc(size, tli_alloc_slow); }
static inline void fast_free(void *p) { tli_fast_free(p); }

static void *einval(void)
{
    errno = EINVAL;
    return NULL;
}

static bool mul_overflows(size_t n, size_t m, size_t *total)
{
    return __builtin_mul_overflow(n, m, total);
}

static bool is_power_of_two(size_t a) { return a && !(a & (a - 1)); }

/* ---- malloc, with and without the profiler's count ----------------------- *
 * With prof=0, malloc is the fast path alone: the profiler costs it
 * nothing. With prof=1, initialisation (which runs before the allocator
 * hands out its first block) writes a jump to prof_malloc over the first
 * bytes of tl_malloc, whose code every malloc alias shares; prof_malloc
 * subtracts the size from the thread's sampling count and leaves for
 * prof.c when it goes below zero: with the jump, three instructions more
 * (the count is in the thread cache's TLS block, whose address the fast
 * path loads anyway; the sample's path is a tail jump, so that the entry
 * needs no frame of its own, see tli_prof_sample_malloc). cxx.c does the same for operator new.
 * Why a patched entry and not an IFUNC: an IFUNC malloc in a preloaded
 * library is bound while libc is relocated, before the library itself,
 * and the loader then warns on every program start ("Relink ... for IFUNC
 * symbol malloc"). */
static void *prof_malloc(size_t size)
{
    if (TL_UNLIKELY(tli_prof_count_down(size)))
        return tli_prof_sample_malloc(size); /* a jump: reads no return address here */
    return fast_malloc(size);
}

/* Aligned so that the jump written over its first 8 bytes is one atomic
 * store: a thread running the entry meanwhile sees the old bytes or the
 * new ones. */
TL_EXPORT __attribute__((aligned(16))) void *tl_malloc(size_t size) { return fast_malloc(size); }
TL_ENTRY_ALIAS(tli_malloc_entry, tl_malloc);

/* Writes a jump to target over the first 5 bytes of entry (a function
 * aligned to 16 bytes, into whose first 8 bytes no code jumps: checked on
 * each build by prof/nothing_jumps_into_a_patched_entry). */
enum tli_patch tli_redirect_entry(void *entry, const void *target)
{
#if defined(__x86_64__)
    unsigned char *at = entry;
    intptr_t rel = (intptr_t)(uintptr_t)target - (intptr_t)(uintptr_t)(at + 5);
    if (rel != (int32_t)rel || ((uintptr_t)at & 7))
        return TLI_PATCH_REFUSED;
    uint64_t word;
    memcpy(&word, at, sizeof word);
    unsigned char jump[5] = {0xe9};
    int32_t rel32 = (int32_t)rel;
    memcpy(jump + 1, &rel32, 4);
    memcpy(&word, jump, 5); /* x86-64 is little-endian: the low 5 bytes */
    return tli_os_patch_code(at, word);
#else
    (void)entry;
    (void)target;
    return TLI_PATCH_REFUSED;
#endif
}

enum tli_patch tli_prof_install_entry(void)
{
    return tli_redirect_entry((void *)(uintptr_t)&tli_malloc_entry, (const void *)&prof_malloc);
}

/* ---- the tl_ API ------------------------------------------------------------ */

TL_EXPORT void tl_free(void *p) { fast_free(p); }

TL_EXPORT void *tl_calloc(size_t n, size_t size)
{
    size_t total;
    if (mul_overflows(n, size, &total))
        return tli_no_memory();
    tli_ensure_init();
    if (TL_UNLIKELY(tli_conf.check))
        return tli_check_alloc(total, 0, true, TL_CALLER);
    if (TL_UNLIKELY(tli_prof_enabled))
        return tli_prof_count_alloc(total, 0, true);
    return tli_alloc_zeroed(total);
}

TL_EXPORT void *tl_realloc(void *p, size_t size)
{
    if (!p)
        return TL_UNLIKELY(tli_prof_enabled) ? tli_prof_count_alloc(size, 0, false)
                                             : fast_malloc(size);
    if (size == 0) {
        fast_free(p);
        return NULL;
    }
    tli_ensure_init();
    if (TL_UNLIKELY(tli_conf.check))
        return tli_check_realloc(p, size, TL_CALLER);
    if (TL_UNLIKELY(tli_prof_enabled))
        return tli_prof_count_realloc(p, size);
    return tli_realloc_impl(p, size);
}

TL_EXPORT void *tl_reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (mul_overflows(n, size, &total))
        return tli_no_memory();
    return tl_realloc(p, total);
}

static void *aligned(size_t alignment, size_t size, uintptr_t caller)
{
    tli_ensure_init();
    if (TL_UNLIKELY(tli_conf.check))
        return tli_check_alloc(size, alignment, false, caller);
    if (TL_UNLIKELY(tli_prof_enabled))
        return tli_prof_count_alloc(size, alignment, false);
    return tli_alloc_aligned(alignment, size);
}

/* An aligned allocator's request that needs no more than malloc's
 * alignment (the profiler counts it as malloc's profiling entry would). */
static void *unaligned(size_t size)
{
    if (TL_UNLIKELY(tli_prof_enabled))
        return tli_prof_count_alloc(size, 0, false);
    return fast_malloc(size);
}

/* glibc's memalign: small alignments need nothing, others round up to a
 * power of two. */
TL_EXPORT void *tl_memalign(size_t alignment, size_t size)
{
    if (alignment <= TL_ALIGNMENT)
        return unaligned(size);
    if (alignment > SIZE_MAX / 2 + 1)
        return einval();
    if (!is_power_of_two(alignment))
        alignment = (size_t)1 << (64 - __builtin_clzll(alignment));
    return aligned(alignment, size, TL_CALLER);
}

TL_EXPORT void *tl_aligned_alloc(size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment))
        return einval();
    return tl_memalign(alignment, size);
}

TL_EXPORT int tl_posix_memalign(void **memptr, size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment) || alignment % sizeof(void *))
        return EINVAL;
    /* A failure leaves errno ENOMEM, as glibc's does: its inner allocation
     * sets errno and nothing restores it (programs check both). */
    void *p = alignment <= TL_ALIGNMENT ? unaligned(size) : aligned(alignment, size, TL_CALLER);
    if (!p)
        return ENOMEM;
    *memptr = p;
    return 0;
}

TL_EXPORT void *tl_valloc(size_t size) { return aligned(tli_os_page_size(), size, TL_CALLER); }

TL_EXPORT void *tl_pvalloc(size_t size)
{
    size_t page = tli_os_page_size();
    if (size > SIZE_MAX - page)
        return tli_no_memory();
    return aligned(page, size ? tli_round_up(size, page) : page, TL_CALLER);
}

TL_EXPORT size_t tl_malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    tli_ensure_init();
    if (TL_UNLIKELY(tli_conf.check))
        return tli_check_usable_size(p);
    return tli_usable_size(p, "malloc_usable_size");
}

TL_EXPORT void tl_free_sized(void *p, size_t size)
{
    (void)size;
    fast_free(p);
}

TL_EXPORT void tl_free_aligned_sized(void *p, size_t alignment, size_t size)
{
    (void)alignment;
    (void)size;
    fast_free(p);
}

TL_EXPORT void tl_thread_flush(void)
{
    tli_ensure_init();
    tli_tc_flush_self();
}

TL_EXPORT int tl_malloc_trim(size_t pad)
{
    (void)pad;
    tli_ensure_init();
    tli_tc_flush_self();
    tli_tc_release_kept(0, true);
    tli_central_drain_all();
    size_t released = tli_page_heap_release(SIZE_MAX, true);
    return released > 0;
}

/* ---- the malloc family ------------------------------------------------------- */
#if TL_OVERRIDE
#if defined(__clang__)
#define TL_ALIAS(name, target) TL_EXPORT __typeof__(target) name __attribute__((alias(#target)))
#else
#define TL_ALIAS(name, target)                                                                     \
    TL_EXPORT __typeof__(target) name __attribute__((alias(#target), copy(target)))
#endif

TL_ALIAS(malloc, tl_malloc);
TL_ALIAS(free, tl_free);
TL_ALIAS(cfree, tl_free);
TL_ALIAS(calloc, tl_calloc);
TL_ALIAS(realloc, tl_realloc);
TL_ALIAS(reallocarray, tl_reallocarray);
TL_ALIAS(memalign, tl_memalign);
TL_ALIAS(aligned_alloc, tl_aligned_alloc);
TL_ALIAS(posix_memalign, tl_posix_memalign);
TL_ALIAS(valloc, tl_valloc);
TL_ALIAS(pvalloc, tl_pvalloc);
TL_ALIAS(malloc_usable_size, tl_malloc_usable_size);
TL_ALIAS(free_sized, tl_free_sized);
TL_ALIAS(free_aligned_sized, tl_free_aligned_sized);
TL_ALIAS(malloc_trim, tl_malloc_trim);
TL_ALIAS(__libc_malloc, tl_malloc);
TL_ALIAS(__libc_free, tl_free);
TL_ALIAS(__libc_calloc, tl_calloc);
TL_ALIAS(__libc_realloc, tl_realloc);
TL_ALIAS(__libc_memalign, tl_memalign);
TL_ALIAS(__libc_valloc, tl_valloc);
TL_ALIAS(__libc_pvalloc, tl_pvalloc);
TL_ALIAS(__posix_memalign, tl_posix_memalign);

/* operator delete (cxx.c) jumps here straight, not through the PLT. */
extern __typeof__(tl_free) tli_free_direct __attribute__((alias("tl_free"), visibility("hidden")));

TL_EXPORT void malloc_stats(void) { tli_malloc_stats(2); }

TL_EXPORT int malloc_info(int options, FILE *fp) { return tl_malloc_info(options, fp); }

/* The layouts of glibc's <malloc.h>, declared here so that its prototypes
 * (with their attributes) do not clash with the aliases above. */
struct tli_mallinfo2 {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct tli_mallinfo {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

TL_EXPORT struct tli_mallinfo2 mallinfo2(void)
{
    struct tli_mallinfo2 m = {0};
    tli_ensure_init();
    tli_stats_mallinfo(&m.arena, &m.hblks, &m.hblkhd, &m.uordblks, &m.fordblks, &m.keepcost);
    m.ordblks = 1;
    return m;
}

static int clamp_int(size_t v) { return v > INT32_MAX ? INT32_MAX : (int)v; }

TL_EXPORT struct tli_mallinfo mallinfo(void)
{
    struct tli_mallinfo2 m2 = mallinfo2();
    struct tli_mallinfo m = {
        .arena = clamp_int(m2.arena),
        .ordblks = clamp_int(m2.ordblks),
        .hblks = clamp_int(m2.hblks),
        .hblkhd = clamp_int(m2.hblkhd),
        .uordblks = clamp_int(m2.uordblks),
        .fordblks = clamp_int(m2.fordblks),
        .keepcost = clamp_int(m2.keepcost),
    };
    return m;
}

/* glibc's parameter numbers (<malloc.h>). */
#define TL_M_MXFAST 1
#define TL_M_MMAP_THRESHOLD (-3)
#define TL_M_CHECK_ACTION (-5)
/* glibc's largest fast-bin size on x86-64 (80 * sizeof(size_t) / 4). */
#define TL_MAX_FAST_SIZE 160

/* The answers are glibc 2.36's: 1 for every parameter and value, except
 * M_MXFAST above its largest fast size. Parameters with a meaning here
 * are applied when the value makes sense for tlmalloc, the rest are
 * accepted and ignored. A threshold at or below the small band makes every
 * block above the small band huge (small blocks are never mapped alone);
 * a negative one (a huge size_t to glibc: never map) is ignored. */
TL_EXPORT int mallopt(int param, int value)
{
    tli_ensure_init();
    switch (param) {
    case TL_M_MXFAST:
        return (size_t)value <= TL_MAX_FAST_SIZE;
    case TL_M_MMAP_THRESHOLD:
        if (value >= 0) {
            size_t t = (size_t)value <= TL_SMALL_MAX ? TL_SMALL_MAX + 1 : (size_t)value;
            __atomic_store_n(&tli_conf.huge_threshold, t, __ATOMIC_RELAXED);
        }
        return 1;
    case TL_M_CHECK_ACTION:
        if (value >= 0 && value <= 3)
            __atomic_store_n(&tli_conf.error_action, value, __ATOMIC_RELAXED);
        return 1;
    default:
        return 1;
    }
}
#endif

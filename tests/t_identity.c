/* t_identity.c - the first tests of each binary: is tlmalloc really the
 * allocator in this process? If the library was not loaded (a failed
 * LD_PRELOAD only prints a warning) every other test would silently test
 * the system allocator instead. The suite is named "a_identity" so that
 * Criterion, which orders suites by name, runs it first. */
#include <dlfcn.h>
#include <criterion/criterion.h>

#include "common.h"

static void *library_base_of(const char *sym, const char **fname)
{
    void *addr = dlsym(RTLD_DEFAULT, sym);
    Dl_info info;
    *fname = NULL;
    if (!addr || !dladdr(addr, &info))
        return NULL;
    *fname = info.dli_fname;
    return info.dli_fbase;
}

Test(a_identity, tlmalloc_is_the_allocator)
{
    cr_assert_not_null(dlsym(RTLD_DEFAULT, "tl_malloc"),
                       "tl_malloc is not visible: tlmalloc is not loaded in this process");
    const char *tl_file, *malloc_file;
    void *tl_base = library_base_of("tl_malloc", &tl_file);
    void *malloc_base = library_base_of("malloc", &malloc_file);
    cr_assert_not_null(tl_base);
    cr_assert_not_null(malloc_base, "malloc cannot be resolved with dlsym");
    cr_assert(strstr(malloc_file, "tlmalloc") != NULL, "malloc resolves to %s, not to tlmalloc",
              malloc_file);
    cr_assert_eq(malloc_base, tl_base, "malloc comes from %s but tl_malloc from %s", malloc_file,
                 tl_file);
}

/* Every function of the malloc family must come from tlmalloc: one left to
 * the C library would mix two heaps (e.g. glibc's reallocarray on a
 * tlmalloc block). */
Test(a_identity, whole_malloc_family_from_tlmalloc)
{
    static const char *const names[] = {
        "malloc",
        "free",
        "calloc",
        "realloc",
        "reallocarray",
        "memalign",
        "aligned_alloc",
        "posix_memalign",
        "valloc",
        "pvalloc",
        "malloc_usable_size",
        "malloc_trim",
        "malloc_stats",
        "mallinfo2",
        "mallopt",
        "cfree",
        "free_sized",
        "free_aligned_sized",
        "__libc_malloc",
        "__libc_free",
        "__libc_calloc",
        "__libc_realloc",
        "__libc_memalign",
        "__libc_valloc",
        "__libc_pvalloc",
        "__posix_memalign",
    };
    const char *tl_file, *file;
    void *tl_base = library_base_of("tl_malloc", &tl_file);
    cr_assert_not_null(tl_base, "tl_malloc is not visible");
    int bad = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *base = library_base_of(names[i], &file);
        if (base != tl_base) {
            cr_log_error("%s comes from %s, not from tlmalloc (%s)", names[i],
                         file ? file : "nowhere", tl_file);
            bad++;
        }
    }
    cr_assert_eq(bad, 0, "%d malloc-family functions do not come from tlmalloc", bad);
}

/* The calls made by this very binary (through the PLT) reach tlmalloc:
 * a block from malloc is known to tl_malloc_usable_size. */
Test(a_identity, calls_reach_tlmalloc)
{
    size_t (*tl_usable)(void *) = (size_t(*)(void *))dlsym(RTLD_DEFAULT, "tl_malloc_usable_size");
    cr_assert_not_null(tl_usable, "tl_malloc_usable_size is not visible");
    void *p = malloc(opq(100));
    cr_assert_not_null(p);
    cr_assert_geq(tl_usable(p), 100, "a malloc block is unknown to tlmalloc");
    cr_assert_eq(tl_usable(p), malloc_usable_size(p));
    free(p);
}

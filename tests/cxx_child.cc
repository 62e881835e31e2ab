// cxx_child.cc - scenarios of tests/t_cxx.cc that need a process of their
// own: an address-space limit, or check mode (options are read at start).
// Built twice (tests/local.mk): linked with libtlmalloc, and plain, run
// with LD_PRELOAD. Usage: cxx_child SCENARIO. Prints "key value" lines;
// exits 0 when the scenario ran to its end.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/resource.h>

// The sites a mismatch report must name (exported: -export-dynamic).
extern "C" __attribute__((noinline)) void *cxx_alloc_site(int family, size_t size)
{
    switch (family) {
    case 0:
        return malloc(size);
    case 1:
        return ::operator new(size);
    default:
        return ::operator new[](size);
    }
}

extern "C" __attribute__((noinline)) void cxx_free_site(int how, void *p, size_t size)
{
    switch (how) {
    case 0:
        free(p);
        break;
    case 1:
        ::operator delete(p);
        break;
    case 2:
        ::operator delete[](p);
        break;
    default:
        ::operator delete(p, size);
        break;
    }
}

// Address space: what is mapped now plus room MiB more.
static void limit_address_space(size_t room_mib)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f || fscanf(f, "%lu", &pages) != 1)
        exit(3);
    fclose(f);
    rlim_t bytes = (rlim_t)pages * 4096 + (rlim_t)room_mib * 1024 * 1024;
    struct rlimit rl = {bytes, bytes};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        exit(4);
}

static int handler_calls;
static void *reserve;

// Gives the reserve back, then lets the next failure throw.
static void release_reserve()
{
    handler_calls++;
    ::operator delete[](reserve);
    reserve = nullptr;
    std::set_new_handler(nullptr);
}

int main(int argc, char **argv)
{
    const char *s = argc > 1 ? argv[1] : "";
    if (!strcmp(s, "bad_alloc_under_limit")) {
        limit_address_space(64);
        void *volatile q = ::operator new(256u << 20, std::nothrow);
        printf("nothrow_null %d\n", q == nullptr);
        try {
            void *volatile p = ::operator new(256u << 20);
            printf("threw 0 %p\n", p);
        } catch (const std::bad_alloc &) {
            printf("threw 1\n");
        }
        try {
            void *volatile p = ::operator new[](256u << 20, std::align_val_t(4096));
            printf("aligned_threw 0 %p\n", p);
        } catch (const std::bad_alloc &) {
            printf("aligned_threw 1\n");
        }
        return 0;
    }
    if (!strcmp(s, "handler_frees_reserve")) {
        // A 48 MiB reserve, then everything else the limit allows in 8 MiB
        // blocks: a 40 MiB request fails until the handler frees the
        // reserve, whose pages the page heap keeps for the retry.
        limit_address_space(160);
        reserve = ::operator new[](48u << 20);
        for (int i = 0; i < 64 && ::operator new(8u << 20, std::nothrow); i++)
            ;
        std::set_new_handler(release_reserve);
        try {
            char *volatile p = static_cast<char *>(::operator new(40u << 20));
            p[0] = 1;
            printf("succeeded 1\n");
        } catch (const std::bad_alloc &) {
            printf("succeeded 0\n");
        }
        printf("handler_calls %d\n", handler_calls);
        return 0;
    }
    // Check mode: allocate with one family, free with another.
    static const struct {
        const char *name;
        int family, how;
        size_t size, passed;
    } pairs[] = {
        {"new_free", 1, 0, 48, 0},      {"new_array_delete", 2, 1, 48, 0},
        {"malloc_delete", 0, 1, 48, 0}, {"sized_wrong", 1, 3, 48, 32},
        {"sized_right", 1, 3, 48, 48},  {"new_array_delete_array", 2, 2, 48, 0},
        {"malloc_free", 0, 0, 48, 0},   {"new_delete", 1, 1, 48, 0},
    };
    for (const auto &pr : pairs)
        if (!strcmp(s, pr.name)) {
            void *p = cxx_alloc_site(pr.family, pr.size);
            printf("ptr %p\n", p);
            fflush(stdout);
            cxx_free_site(pr.how, p, pr.passed);
            printf("done 1\n");
            return 0;
        }
    fprintf(stderr, "cxx_child: unknown scenario %s\n", s);
    return 2;
}

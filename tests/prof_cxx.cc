// prof_cxx.cc - the heap profiler test's allocation site through C++
// operator new (see prof_child.c).
#include <cstddef>
#include <cstdint>
#include <new>

extern "C" {
__attribute__((noinline)) void *site_cxx(std::size_t size)
{
    char *p = new char[size];
    p[0] = 3;
    return p;
}

// An aligned new (its own entry, counted as calloc's) and a nothrow new:
// 1 if each block has its alignment and survives a write and its delete.
int cxx_other_news_ok(void)
{
    struct alignas(256) wide {
        char bytes[1000];
    };
    wide *w = new wide;
    char *n = new (std::nothrow) char[300];
    int ok = ((std::uintptr_t)w & 255) == 0 && n != nullptr;
    w->bytes[999] = 1;
    n[299] = 1;
    delete w;
    delete[] n;
    return ok;
}

void run_cxx_site(void **keep, int n, std::size_t size)
{
    for (int i = 0; i < n; i++)
        keep[i] = site_cxx(size);
}
}

// prof_cxx.cc - the heap profiler test's allocation site through C++
// operator new (see prof_child.c).
#include <cstddef>

extern "C" {
__attribute__((noinline)) void *site_cxx(std::size_t size)
{
    char *p = new char[size];
    p[0] = 3;
    return p;
}

void run_cxx_site(void **keep, int n, std::size_t size)
{
    for (int i = 0; i < n; i++)
        keep[i] = site_cxx(size);
}
}

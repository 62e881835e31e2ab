// cxxpairs: the loop whose instructions bench/cxx.sh counts with callgrind:
// 64 blocks stay live; each iteration deletes one and allocates one of
// 64..71 bytes in its place with ::operator new (as tests/fastpath_loop
// does with malloc and free). Usage: cxxpairs ITERATIONS [SIZED]: with
// SIZED 1 the blocks are freed with sized delete.
#include <cstdlib>
#include <new>
int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int sized = argc > 2 ? atoi(argv[2]) : 0;
    void *volatile slots[64];
    for (unsigned k = 0; k < 64; k++)
        slots[k] = ::operator new(64 + (k & 7));
    if (sized)
        for (long i = 0; i < n; i++) {
            unsigned k = (unsigned)i & 63;
            ::operator delete(slots[k], 64 + (k & 7));
            slots[k] = ::operator new(64 + (k & 7));
        }
    else
        for (long i = 0; i < n; i++) {
            unsigned k = (unsigned)i & 63;
            ::operator delete(slots[k]);
            slots[k] = ::operator new(64 + (k & 7));
        }
    for (unsigned k = 0; k < 64; k++)
        ::operator delete(slots[k]);
    return 0;
}

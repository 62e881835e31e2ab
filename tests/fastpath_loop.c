/* fastpath_loop.c - the loop whose instructions tests/run.sh counts with
 * callgrind (section "check mode off costs nothing").
 *
 * 64 blocks stay live; each iteration frees one and allocates one of
 * 64..71 bytes in its place (slot k always gets 64 + k % 8 bytes, so
 * every pair is served by the thread cache's fast paths once warm).
 * Usage: fastpath_loop ITERATIONS. Built without tlmalloc; run with
 * LD_PRELOAD=libtlmalloc.so.
 */
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    void *volatile slots[64];
    for (unsigned k = 0; k < 64; k++)
        if (!(slots[k] = malloc(64 + (k & 7))))
            return 1;
    for (long i = 0; i < n; i++) {
        unsigned k = (unsigned)i & 63;
        free(slots[k]);
        if (!(slots[k] = malloc(64 + (k & 7))))
            return 1;
    }
    for (unsigned k = 0; k < 64; k++)
        free(slots[k]);
    return 0;
}

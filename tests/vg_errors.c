/* vg_errors - run under valgrind's memcheck with tlmalloc itself in place
 * (a --enable-valgrind build, --soname-synonyms=somalloc=nouserintercepts):
 * one read after free and one leak, which memcheck must report, and
 * ordinary work (every band, realloc, calloc), which it must not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile keep;

int main(void)
{
    char *leak = malloc(100); /* lost: keep points elsewhere later */
    keep = leak;
    memset(leak, 1, 100);
    keep = NULL;

    char *p = malloc(64);
    memset(p, 2, 64);
    free(p);
    volatile char after_free = p[32]; /* invalid read: p was freed */
    (void)after_free;

    /* Ordinary work that must stay clean. */
    for (size_t n = 1; n < (8u << 20); n = n * 3 + 1) {
        char *a = malloc(n), *z = calloc(1, n);
        memset(a, 3, n);
        for (size_t i = 0; i < n; i += 4096)
            if (z[i])
                return 1;
        a = realloc(a, n * 2 + 1);
        memset(a + n, 4, n + 1);
        free(a);
        free(z);
    }
    puts("vg_errors done");
    return 0;
}

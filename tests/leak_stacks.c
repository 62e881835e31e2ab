/* leak_stacks.c - the helper of checkmode's call-stack tests (t_checkmode.c):
 * leaks that only a whole call stack tells apart. Built -O2
 * -fomit-frame-pointer (tests/local.mk), the way most programs are, so
 * that only an unwinder reading the call frame information finds the
 * callers; symbols exported, so that reports can name them.
 *
 *   wrapper_leaks   3 blocks of 100 bytes leaked by first_leaker and 5 by
 *                   second_leaker, all through one wrapper function
 *   double_free     a block allocated through the wrapper, freed twice
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loop counts the compiler cannot see: the loops stay loops, one call
 * site each. */
static volatile int three = 3, five = 5;

__attribute__((noinline)) void *leaky_wrapper(size_t n)
{
    void *p = malloc(n);
    if (p)
        memset(p, 1, n); /* not a tail call: the wrapper keeps its frame */
    return p;
}

__attribute__((noinline)) void first_leaker(void)
{
    for (int i = 0; i < three; i++) {
        void *volatile p = leaky_wrapper(100);
        (void)p;
    }
}

__attribute__((noinline)) void second_leaker(void)
{
    for (int i = 0; i < five; i++) {
        void *volatile p = leaky_wrapper(100);
        (void)p;
    }
}

/* Writes over the dead frames below main, where the leaked pointers were:
 * the leak scan must not find them there. */
__attribute__((noinline)) void scrub_stack(void)
{
    volatile char junk[16384];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = 0;
}

__attribute__((noinline)) void free_twice(void)
{
    void *p = leaky_wrapper(64);
    printf("ptr %p\n", p);
    fflush(stdout);
    free(p);
    free(p);
    printf("freed twice\n"); /* not a tail call: free_twice keeps its frame */
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "wrapper_leaks")) {
        first_leaker();
        second_leaker();
        scrub_stack();
    } else if (argc == 2 && !strcmp(argv[1], "double_free")) {
        free_twice();
    } else {
        printf("error usage: leak_stacks wrapper_leaks|double_free\n");
        return 2;
    }
    printf("done\n");
    return 0;
}

/* t_defects.c - regression tests for defects found from outside: lock
 * ownership and fork from a signal handler, double frees of blocks parked
 * on a transfer stack, frees into span tails and uncarved objects, and the
 * prefixed library's thread key and dlclose. Each test failed before its
 * fix. */
#include <criterion/criterion.h>

#include "common.h"

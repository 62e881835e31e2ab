/* t_pageheap.c - regression tests of the page heap and the OS primitives
 * under it: what the metadata says must be what the kernel did. */
#include <criterion/criterion.h>

#include "common.h"

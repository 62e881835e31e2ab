/* size_class_table - prints tlmalloc's size class table as Markdown, with the
 * worst-case waste of each class (docs/DESIGN.md carries its output).
 *   rounding waste: a request one byte above the previous class, rounded
 *                   up to this class, wastes (size - prev - 1) / (prev + 1);
 *   span tail:      bytes of the span that no object can use;
 *   worst total:    both together, relative to the bytes requested, for a
 *                   span full of worst-case requests.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

/* size_class.c reports an impossible table through this. */
void tli_fatal(const char *msg)
{
    fprintf(stderr, "size_class_table: %s\n", msg);
    exit(1);
}

int main(void)
{
    tli_size_classes_init();
    printf("| class | size (B) | span (pages) | objects/span | batch | rounding waste | span tail "
           "| worst total |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    double worst_above_128 = 0;
    for (unsigned c = 1; c < tli_num_classes; c++) {
        const struct size_class_info *k = &tli_classes[c];
        unsigned prev = c > 1 ? tli_classes[c - 1].size : 0;
        double rounding = (double)(k->size - prev - 1) / (prev + 1);
        size_t span = (size_t)k->span_pages << TL_PAGE_SHIFT;
        size_t tail = span - (size_t)k->objects * k->size;
        double requested = (double)k->objects * (prev + 1);
        double total = (span - requested) / requested;
        if (k->size > 128 && rounding > worst_above_128)
            worst_above_128 = rounding;
        printf("| %u | %u | %u | %u | %u | %.1f%% | %zu B (%.1f%%) | %.1f%% |\n", c, k->size,
               k->span_pages, k->objects, k->batch, 100 * rounding, tail, 100.0 * tail / span,
               100 * total);
    }
    printf("\nClasses: %u. Worst rounding waste above 128 B: %.1f%%.\n", tli_num_classes - 1,
           100 * worst_above_128);
    return 0;
}

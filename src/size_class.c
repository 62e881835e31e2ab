/* size_class.c - the table of size classes and the size -> class maps.
 *
 * Classes: 16 to 128 bytes in steps of 16 (8 classes), then 8 classes per
 * doubling up to 64 KiB, each step an eighth of the lower power of two:
 * 144, 160, ..., 256, 288, ..., 512, 576, ..., 64 KiB. 80 classes.
 *
 * Waste. A request of size r in class c with previous class p wastes at most
 * (c - p - 1) / (p + 1) of itself. Up to 128 bytes the 16-byte step (forced by
 * 16-byte alignment) costs up to 47% (17 -> 32); above 128 bytes the eighth-
 * of-a-power step bounds it by 12.4% (129 -> 144, 32769 -> 36864). The span
 * of a class is the smallest run of 8 KiB pages that holds enough objects
 * and leaves a tail of at most 1/64 of the span unused (1/8 from 16 KiB,
 * see span_pages_for);
 * docs/DESIGN.md lists the table with both wastes (tools/size_class_table
 * prints it).
 *
 * Batch: objects moved at once between a thread cache and its central list,
 * 64 KiB worth, at least 2 and at most 32 objects: few lock round trips for
 * small objects without a thread hoarding megabytes of large ones. A thread
 * cache list holds up to two batches between flushes, and a producer's and
 * a consumer's lists both do, so the cap bounds what a producer-consumer
 * pair keeps idle (docs/DESIGN.md, "Size classes", has the figures).
 */
#include "internal.h"

struct size_class_info tli_classes[TL_MAX_CLASSES];
unsigned tli_num_classes;
uint8_t tli_class_small[1024 + 1];
uint8_t tli_class_medium[(64 << 10) / 128 + 1];

/* Inverse of an odd d modulo 2^64, by Newton's iteration. */
static uint64_t inverse_mod_2_64(uint64_t d)
{
    uint64_t x = d; /* correct to 3 bits */
    for (int i = 0; i < 5; i++)
        x *= 2 - d * x;
    return x;
}

/* Class 0: inverse 1, shift 0, so that with a limit of 0 only offset 0
 * passes (internal.h). */
struct tli_class_div tli_class_div = {.inv = {1}};

static void set_division(struct size_class_info *c)
{
    uint64_t d = c->size;
    unsigned shift = (unsigned)__builtin_ctzll(d);
    c->div_shift = shift;
    c->div_inv = inverse_mod_2_64(d >> shift);
    c->div_limit = UINT64_MAX / d;
}

/* The span of a class: enough pages for 8 objects (1 above 8 KiB), then the
 * first length that leaves at most 1/64 of the span unused (1/8 from 16 KiB
 * objects); failing that within 8 more pages, the length with the smallest
 * unused tail. From 16 KiB, most classes so get one object per span: a
 * span of two with one object in use holds the other idle for that class
 * alone, while a free one-object span goes back to the page heap for any
 * size. The tail costs at most 12.5% (28 KiB objects in 32 KiB spans);
 * with rounding, at most 25% (a 32 KiB + 1 request in a 36 KiB object of a
 * 40 KiB span). */
static uint32_t span_pages_for(uint32_t size)
{
    size_t min_objects = size <= TL_PAGE_SIZE ? 8 : 1;
    size_t first = tli_pages_for(size * min_objects), best = first;
    size_t tail_share = size >= ((size_t)16 << 10) ? 8 : 64;
    for (size_t pages = first; pages <= first + 8; pages++) {
        size_t bytes = pages << TL_PAGE_SHIFT, tail = bytes % size;
        if (tail <= bytes / tail_share)
            return (uint32_t)pages;
        size_t best_bytes = best << TL_PAGE_SHIFT;
        if (tail * best_bytes < (best_bytes % size) * bytes)
            best = pages;
    }
    return (uint32_t)best;
}

static uint32_t batch_for(uint32_t size)
{
    uint32_t b = (uint32_t)((64 << 10) / size);
    return b < 2 ? 2 : b > 32 ? 32 : b;
}

static void add_class(uint32_t size)
{
    struct size_class_info *c = &tli_classes[tli_num_classes++];
    c->size = size;
    c->span_pages = (uint16_t)span_pages_for(size);
    c->objects = (uint32_t)((c->span_pages << TL_PAGE_SHIFT) / size);
    c->batch = (uint16_t)batch_for(size);
    set_division(c);
    tli_class_div.inv[tli_num_classes - 1] = c->div_inv;
    tli_class_div.shift[tli_num_classes - 1] = (uint8_t)c->div_shift;
}

void tli_size_classes_init(void)
{
    tli_num_classes = 1; /* class 0 means "not a small object" */
    for (uint32_t s = 16; s <= 128; s += 16)
        add_class(s);
    for (uint32_t base = 128; base < TL_SMALL_MAX; base *= 2)
        for (uint32_t s = base + base / 8; s <= 2 * base; s += base / 8)
            add_class(s);

    if (tli_num_classes > TL_MAX_CLASSES)
        tli_fatal("size class table larger than TL_MAX_CLASSES");
    unsigned cls = 1;
    for (size_t size = 0; size < sizeof tli_class_small; size++) {
        while (tli_classes[cls].size < size)
            cls++;
        tli_class_small[size] = (uint8_t)cls;
    }
    cls = 1;
    for (size_t i = 0; i < sizeof tli_class_medium; i++) {
        size_t size = i * 128;
        while (tli_classes[cls].size < size)
            cls++;
        tli_class_medium[i] = (uint8_t)cls;
    }
}

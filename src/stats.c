/* stats.c - figures about the heap: the report of malloc_stats() and
 * tl_stats_print() (text or JSON), tl_stat(name), mallinfo2(), and the
 * report at exit (TLMALLOC_CONF=stats=1 or stats=json).
 *
 * The page heap's memory adds up exactly:
 *   heap_mapped = small_spans + large_in_use + page_heap_free + returned
 * and small_spans = small_in_use + thread_cache + central_free + span_tail
 * (span_tail: the ends of small spans too short for one more object).
 * Figures read while other threads run are a snapshot, each exact as of a
 * moment, not all of the same moment.
 */
#include "internal.h"
#include "tlmalloc.h"

#include <string.h>

struct tl_counters tl_stats;

struct snapshot {
    size_t heap_mapped, small_spans, large_in_use, page_heap_free, returned;
    size_t thread_cache, central_free, small_in_use, span_tail, huge, huge_count, meta, in_use;
    size_t mapped, resident_estimate, threads;
    size_t tc_class[TL_MAX_CLASSES], central_class[TL_MAX_CLASSES], span_class[TL_MAX_CLASSES];
};

static size_t load(_Atomic size_t *c) { return atomic_load_explicit(c, memory_order_relaxed); }

static void take_snapshot(struct snapshot *s)
{
    memset(s, 0, sizeof *s);
    unsigned threads = 0;
    s->thread_cache = tl_tc_total_bytes(s->tc_class, &threads);
    s->threads = threads;
    size_t out = 0, span_object_bytes = 0;
    for (unsigned cls = 1; cls < tl_num_classes; cls++) {
        tl_lock_acquire(&tl_central_locks[cls]);
        s->central_class[cls] = tl_central_free_bytes(cls);
        s->span_class[cls] = tl_central_span_bytes(cls);
        out += tl_central_out_bytes(cls);
        tl_lock_release(&tl_central_locks[cls]);
        s->central_free += s->central_class[cls];
        span_object_bytes += s->span_class[cls];
    }
    tl_lock_acquire(&tl_page_heap_lock);
    s->heap_mapped = load(&tl_stats.mapped);
    s->small_spans = load(&tl_stats.small_spans);
    s->large_in_use = load(&tl_stats.large_in_use);
    s->page_heap_free = load(&tl_stats.page_free);
    s->returned = load(&tl_stats.returned);
    tl_lock_release(&tl_page_heap_lock);
    s->huge = load(&tl_stats.huge_mapped);
    s->huge_count = load(&tl_stats.huge_count);
    s->meta = load(&tl_stats.meta);
    s->small_in_use = out > s->thread_cache ? out - s->thread_cache : 0;
    s->span_tail = s->small_spans > span_object_bytes ? s->small_spans - span_object_bytes : 0;
    s->in_use = s->small_in_use + s->large_in_use + s->huge;
    s->mapped = s->heap_mapped + s->huge + s->meta;
    s->resident_estimate = s->mapped - s->returned;
}

struct figure {
    const char *name;
    size_t offset;
    const char *label;
};

#define FIG(field, label)                                                                          \
    {                                                                                              \
#field "_bytes", offsetof(struct snapshot, field), label                                   \
    }
static const struct figure figures[] = {
    FIG(in_use, "in use by the program"),
    FIG(small_in_use, "  small blocks"),
    FIG(large_in_use, "  large blocks"),
    FIG(huge, "  huge blocks (own mappings)"),
    FIG(thread_cache, "free in thread caches"),
    FIG(central_free, "free in central lists"),
    FIG(span_tail, "span tails (too short for an object)"),
    FIG(page_heap_free, "free in the page heap (resident)"),
    FIG(returned, "returned to the OS (not resident)"),
    FIG(heap_mapped, "page heap mapped"),
    FIG(meta, "metadata"),
    FIG(mapped, "mapped in all"),
    FIG(resident_estimate, "resident at most"),
};

static size_t field(const struct snapshot *s, size_t offset)
{
    return *(const size_t *)((const char *)s + offset);
}

static void print_text(struct tl_buf *b, const struct snapshot *s)
{
    tl_buf_str(b, "tlmalloc statistics\n");
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
        tl_buf_str(b, "  ");
        tl_buf_str(b, figures[i].label);
        /* At least one space, even after a label as long as the column. */
        tl_buf_str(b, " ");
        for (size_t pad = strlen(figures[i].label) + 1; pad < 36; pad++)
            tl_buf_str(b, " ");
        tl_buf_size(b, field(s, figures[i].offset));
        tl_buf_str(b, "\n");
    }
    tl_buf_str(b, "  threads with a cache                ");
    tl_buf_u64(b, s->threads);
    tl_buf_str(b, "\n  huge mappings                       ");
    tl_buf_u64(b, s->huge_count);
    tl_buf_str(b, "\n  size class: spans / central free / thread caches\n");
    for (unsigned cls = 1; cls < tl_num_classes; cls++) {
        if (!s->span_class[cls] && !s->tc_class[cls])
            continue;
        tl_buf_str(b, "    ");
        tl_buf_u64(b, tl_classes[cls].size);
        tl_buf_str(b, " B: ");
        tl_buf_size(b, s->span_class[cls]);
        tl_buf_str(b, " / ");
        tl_buf_size(b, s->central_class[cls]);
        tl_buf_str(b, " / ");
        tl_buf_size(b, s->tc_class[cls]);
        tl_buf_str(b, "\n");
    }
}

static void print_json(struct tl_buf *b, const struct snapshot *s)
{
    tl_buf_str(b, "{");
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
        tl_buf_str(b, i ? ", \"" : "\"");
        tl_buf_str(b, figures[i].name);
        tl_buf_str(b, "\": ");
        tl_buf_u64(b, field(s, figures[i].offset));
    }
    tl_buf_str(b, ", \"threads\": ");
    tl_buf_u64(b, s->threads);
    tl_buf_str(b, ", \"huge_count\": ");
    tl_buf_u64(b, s->huge_count);
    tl_buf_str(b, ", \"classes\": [");
    bool first = true;
    for (unsigned cls = 1; cls < tl_num_classes; cls++) {
        if (!s->span_class[cls] && !s->tc_class[cls])
            continue;
        tl_buf_str(b, first ? "{\"size\": " : ", {\"size\": ");
        first = false;
        tl_buf_u64(b, tl_classes[cls].size);
        tl_buf_str(b, ", \"span_bytes\": ");
        tl_buf_u64(b, s->span_class[cls]);
        tl_buf_str(b, ", \"central_free_bytes\": ");
        tl_buf_u64(b, s->central_class[cls]);
        tl_buf_str(b, ", \"thread_cache_bytes\": ");
        tl_buf_u64(b, s->tc_class[cls]);
        tl_buf_str(b, "}");
    }
    tl_buf_str(b, "]}\n");
}

TL_EXPORT void tl_stats_print(int fd, int json)
{
    tl_ensure_init();
    struct snapshot s;
    take_snapshot(&s);
    struct tl_buf b = {.fd = fd};
    if (json)
        print_json(&b, &s);
    else
        print_text(&b, &s);
    tl_buf_flush(&b);
}

TL_EXPORT size_t tl_stat(const char *name)
{
    tl_ensure_init();
    struct snapshot s;
    take_snapshot(&s);
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        if (!strcmp(name, figures[i].name))
            return field(&s, figures[i].offset);
    if (!strcmp(name, "threads"))
        return s.threads;
    if (!strcmp(name, "huge_count"))
        return s.huge_count;
    return (size_t)-1;
}

/* mallinfo2's fields, in glibc's meaning as far as they carry over. */
void tl_stats_mallinfo(size_t *arena, size_t *hblks, size_t *hblkhd, size_t *uordblks,
                       size_t *fordblks, size_t *keepcost)
{
    struct snapshot s;
    take_snapshot(&s);
    *arena = s.heap_mapped;
    *hblks = s.huge_count;
    *hblkhd = s.huge;
    /* Check mode's quarantine holds blocks the program has freed: glibc's
     * mallinfo counts freed memory as free, and so does this. */
    size_t held = tl_conf.check ? tl_check_quarantined() : 0;
    if (held > s.in_use)
        held = s.in_use;
    *uordblks = s.in_use - held;
    *fordblks = s.thread_cache + s.central_free + s.page_heap_free + s.returned + held;
    *keepcost = s.returned;
}

void tl_stats_at_exit(void)
{
    if (tl_conf.stats_at_exit)
        tl_stats_print(2, tl_conf.stats_at_exit == 2);
}

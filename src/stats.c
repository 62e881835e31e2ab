/* stats.c - figures about the heap: the report of malloc_stats() and
 * tl_stats_print() (text or JSON), tl_stat(name), mallinfo2(),
 * malloc_info() (glibc's XML), and the report at exit
 * (TLMALLOC_CONF=stats=1 or stats=json).
 *
 * The page heap's memory adds up exactly:
 *   heap_mapped = small_spans + large_in_use + page_heap_free + returned
 * and small_spans = small_in_use + thread_cache + central_free + span_tail
 * (span_tail: the ends of small spans too short for one more object).
 * Figures read while other threads run are a snapshot, each exact as of a
 * moment, not all of the same moment.
 *
 * Operation counters cost the fast paths nothing: they are counted on slow
 * paths, under locks already held or in the thread's own cold state, and
 * the rest is derived.
 *  - frees: small frees that reach a slow path are counted there; those
 *    of the fast path are counted by the decay tick, which the fast path
 *    already counts down once per free (a thread's count since its last
 *    tick is read from the tick itself); large and huge frees are slow.
 *  - mallocs: no count can be derived for the malloc fast path alone (a
 *    thread cache's content changes by refills + frees - mallocs -
 *    flushes: one equation, two unknowns). But every small object out of
 *    the central lists and not in a cache is live, so small mallocs =
 *    small frees + live small objects, exact when the threads are still.
 *    A block counts as allocated by any call that hands one out (malloc,
 *    calloc, the aligned forms, a realloc that moves) and as freed by any
 *    that takes one back (free, a realloc that moves or frees); a realloc
 *    in place counts as neither. In check mode a freed block counts as
 *    freed when it leaves the quarantine.
 *  - remote frees (a free by a thread other than the allocating one) are
 *    not counted: tlmalloc records no owner, and such a free is a local
 *    free into the freeing thread's cache.
 */
#include "internal.h"
#include "tlmalloc.h"

#include <stdio.h>
#include <string.h>

struct tli_counters tli_stats;

struct snapshot {
    size_t heap_mapped, small_spans, large_in_use, page_heap_free, returned;
    size_t thread_cache, central_free, small_in_use, span_tail, huge, huge_count, meta, in_use;
    size_t mapped, resident_estimate, threads;
    size_t tc_class[TL_MAX_CLASSES], central_class[TL_MAX_CLASSES], span_class[TL_MAX_CLASSES];
    /* operation counters (see the header comment) */
    size_t mallocs, frees, small_mallocs, small_frees, large_mallocs, large_frees;
    size_t huge_mallocs, huge_frees, refills, flushes;
    size_t grows, grow_bytes, releases, release_bytes;
    size_t small_spans_peak, large_side_peak;
};

/* Free spans of the page heap by bin, for malloc_info. */
#define MAX_GROUPS 160
struct span_groups {
    unsigned n;
    struct tli_free_span_group g[MAX_GROUPS];
};

static void add_counts(struct snapshot *s, size_t small_live, const struct tli_page_heap_counts *ph)
{
    struct tli_tc_counts tc;
    tli_tc_counts(&tc);
    s->refills = tc.refills;
    s->flushes = tc.flushes;
    s->small_frees = tc.small_frees;
    s->small_mallocs = tc.small_frees + small_live;
    s->large_mallocs = ph->large_allocs;
    s->large_frees = ph->large_frees;
    s->huge_mallocs = atomic_load_explicit(&tli_stats.huge_allocs, memory_order_relaxed);
    s->huge_frees = atomic_load_explicit(&tli_stats.huge_frees, memory_order_relaxed);
    s->mallocs = s->small_mallocs + s->large_mallocs + s->huge_mallocs;
    s->frees = s->small_frees + s->large_frees + s->huge_frees;
    s->grows = ph->grows;
    s->grow_bytes = ph->grow_bytes;
    s->releases = ph->releases;
    s->release_bytes = ph->release_bytes;
    s->small_spans_peak = ph->small_spans_peak;
    s->large_side_peak = ph->large_side_peak;
}

static size_t load(_Atomic size_t *c) { return atomic_load_explicit(c, memory_order_relaxed); }

/* groups: NULL, or where the page heap's free spans go (malloc_info). */
static void take_snapshot(struct snapshot *s, struct span_groups *groups)
{
    memset(s, 0, sizeof *s);
    unsigned threads = 0;
    s->thread_cache = tli_tc_total_bytes(s->tc_class, &threads);
    s->threads = threads;
    size_t out = 0, span_object_bytes = 0, small_live = 0;
    for (unsigned cls = 1; cls < tli_num_classes; cls++) {
        tli_lock_acquire(&tli_central_locks[cls]);
        s->central_class[cls] = tli_central_free_bytes(cls);
        s->span_class[cls] = tli_central_span_bytes(cls);
        size_t class_out = tli_central_out_bytes(cls);
        tli_lock_release(&tli_central_locks[cls]);
        out += class_out;
        if (class_out > s->tc_class[cls])
            small_live += (class_out - s->tc_class[cls]) / tli_classes[cls].size;
        s->central_free += s->central_class[cls];
        span_object_bytes += s->span_class[cls];
    }
    struct tli_page_heap_counts ph;
    tli_lock_acquire(&tli_page_heap_lock);
    s->heap_mapped = load(&tli_stats.mapped);
    s->small_spans = load(&tli_stats.small_spans);
    s->large_in_use = load(&tli_stats.large_in_use);
    s->page_heap_free = load(&tli_stats.page_free);
    s->returned = load(&tli_stats.unbacked);
    tli_page_heap_counts(&ph);
    if (groups)
        groups->n = tli_page_heap_free_groups(groups->g, MAX_GROUPS);
    tli_lock_release(&tli_page_heap_lock);
    add_counts(s, small_live, &ph);
    s->huge = load(&tli_stats.huge_mapped);
    s->huge_count = load(&tli_stats.huge_count);
    s->meta = load(&tli_stats.meta);
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

/* Operation counters, under their own names. */
#define COUNT(field, name, label)                                                                  \
    {                                                                                              \
        name, offsetof(struct snapshot, field), label                                              \
    }
static const struct figure counters[] = {
    COUNT(mallocs, "mallocs", "blocks allocated"),
    COUNT(frees, "frees", "blocks freed"),
    COUNT(small_mallocs, "small_mallocs", "  small allocated"),
    COUNT(small_frees, "small_frees", "  small freed"),
    COUNT(large_mallocs, "large_mallocs", "  large allocated"),
    COUNT(large_frees, "large_frees", "  large freed"),
    COUNT(huge_mallocs, "huge_mallocs", "  huge allocated"),
    COUNT(huge_frees, "huge_frees", "  huge freed"),
    COUNT(refills, "refills", "thread cache refills"),
    COUNT(flushes, "flushes", "thread cache flushes"),
    COUNT(grows, "page_heap_grows", "page heap grows"),
    COUNT(grow_bytes, "page_heap_grow_bytes", "  bytes mapped"),
    COUNT(releases, "page_heap_releases", "page heap releases"),
    COUNT(release_bytes, "page_heap_release_bytes", "  bytes given back"),
};
#define NFIGURES (sizeof figures / sizeof figures[0])
#define NCOUNTERS (sizeof counters / sizeof counters[0])

static size_t field(const struct snapshot *s, size_t offset)
{
    return *(const size_t *)((const char *)s + offset);
}

/* A label and the padding that lines values up. */
static void put_label(struct tli_buf *b, const char *label)
{
    tli_buf_str(b, "  ");
    tli_buf_str(b, label);
    /* At least one space, even after a label as long as the column. */
    tli_buf_str(b, " ");
    for (size_t pad = strlen(label) + 1; pad < 36; pad++)
        tli_buf_str(b, " ");
}

static void print_text(struct tli_buf *b, const struct snapshot *s)
{
    tli_buf_str(b, "tlmalloc statistics\n");
    for (size_t i = 0; i < NFIGURES; i++) {
        put_label(b, figures[i].label);
        tli_buf_size(b, field(s, figures[i].offset));
        tli_buf_str(b, "\n");
    }
    for (size_t i = 0; i < NCOUNTERS; i++) {
        put_label(b, counters[i].label);
        tli_buf_u64(b, field(s, counters[i].offset));
        tli_buf_str(b, "\n");
    }
    tli_buf_str(b, "  threads with a cache                ");
    tli_buf_u64(b, s->threads);
    tli_buf_str(b, "\n  huge mappings                       ");
    tli_buf_u64(b, s->huge_count);
    tli_buf_str(b, "\n  size class: spans / central free / thread caches\n");
    for (unsigned cls = 1; cls < tli_num_classes; cls++) {
        if (!s->span_class[cls] && !s->tc_class[cls])
            continue;
        tli_buf_str(b, "    ");
        tli_buf_u64(b, tli_classes[cls].size);
        tli_buf_str(b, " B: ");
        tli_buf_size(b, s->span_class[cls]);
        tli_buf_str(b, " / ");
        tli_buf_size(b, s->central_class[cls]);
        tli_buf_str(b, " / ");
        tli_buf_size(b, s->tc_class[cls]);
        tli_buf_str(b, "\n");
    }
}

static void print_json(struct tli_buf *b, const struct snapshot *s)
{
    tli_buf_str(b, "{");
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
        tli_buf_str(b, i ? ", \"" : "\"");
        tli_buf_str(b, figures[i].name);
        tli_buf_str(b, "\": ");
        tli_buf_u64(b, field(s, figures[i].offset));
    }
    tli_buf_str(b, ", \"threads\": ");
    tli_buf_u64(b, s->threads);
    tli_buf_str(b, ", \"huge_count\": ");
    tli_buf_u64(b, s->huge_count);
    for (size_t i = 0; i < NCOUNTERS; i++) {
        tli_buf_str(b, ", \"");
        tli_buf_str(b, counters[i].name);
        tli_buf_str(b, "\": ");
        tli_buf_u64(b, field(s, counters[i].offset));
    }
    tli_buf_str(b, ", \"classes\": [");
    bool first = true;
    for (unsigned cls = 1; cls < tli_num_classes; cls++) {
        if (!s->span_class[cls] && !s->tc_class[cls])
            continue;
        tli_buf_str(b, first ? "{\"size\": " : ", {\"size\": ");
        first = false;
        tli_buf_u64(b, tli_classes[cls].size);
        tli_buf_str(b, ", \"span_bytes\": ");
        tli_buf_u64(b, s->span_class[cls]);
        tli_buf_str(b, ", \"central_free_bytes\": ");
        tli_buf_u64(b, s->central_class[cls]);
        tli_buf_str(b, ", \"thread_cache_bytes\": ");
        tli_buf_u64(b, s->tc_class[cls]);
        tli_buf_str(b, "}");
    }
    tli_buf_str(b, "]}\n");
}

TL_EXPORT void tl_stats_print(int fd, int json)
{
    tli_ensure_init();
    struct snapshot s;
    take_snapshot(&s, NULL);
    struct tli_buf b = {.fd = fd};
    if (json)
        print_json(&b, &s);
    else
        print_text(&b, &s);
    tli_buf_flush(&b);
}

/* One of glibc's malloc_stats lines: the label, then the figure right
 * aligned in ten columns, as glibc's "%10u". */
static void put_glibc_line(struct tli_buf *b, const char *label, size_t v)
{
    unsigned digits = 1;
    for (size_t rest = v / 10; rest; rest /= 10)
        digits++;
    tli_buf_str(b, label);
    for (; digits < 10; digits++)
        tli_buf_str(b, " ");
    tli_buf_u64(b, v);
    tli_buf_str(b, "\n");
}

/* malloc_stats: glibc's lines first, the whole heap as its one arena with
 * mallinfo2's figures, so that whatever reads them finds them; then
 * tlmalloc's own report. */
void tli_malloc_stats(int fd)
{
    tli_ensure_init();
    size_t arena, hblks, hblkhd, uordblks, fordblks, keepcost;
    tli_stats_mallinfo(&arena, &hblks, &hblkhd, &uordblks, &fordblks, &keepcost);
    struct tli_buf b = {.fd = fd};
    tli_buf_str(&b, "Arena 0:\n");
    put_glibc_line(&b, "system bytes     = ", arena);
    put_glibc_line(&b, "in use bytes     = ", uordblks);
    tli_buf_str(&b, "Total (incl. mmap):\n");
    put_glibc_line(&b, "system bytes     = ", arena + hblkhd);
    put_glibc_line(&b, "in use bytes     = ", uordblks + hblkhd);
    put_glibc_line(&b, "max mmap regions = ", atomic_load(&tli_stats.huge_count_max));
    put_glibc_line(&b, "max mmap bytes   = ", atomic_load(&tli_stats.huge_mapped_max));
    tli_buf_flush(&b);
    tl_stats_print(fd, 0);
}

TL_EXPORT size_t tl_stat(const char *name)
{
    tli_ensure_init();
    struct snapshot s;
    take_snapshot(&s, NULL);
    for (size_t i = 0; i < NFIGURES; i++)
        if (!strcmp(name, figures[i].name))
            return field(&s, figures[i].offset);
    for (size_t i = 0; i < NCOUNTERS; i++)
        if (!strcmp(name, counters[i].name))
            return field(&s, counters[i].offset);
    if (!strcmp(name, "threads"))
        return s.threads;
    if (!strcmp(name, "huge_count"))
        return s.huge_count;
    return (size_t)-1;
}

/* Check mode's quarantine holds blocks the program has freed: glibc's
 * mallinfo counts freed memory as free, and so does this. */
static size_t quarantined(const struct snapshot *s)
{
    size_t held = tli_conf.check ? tli_check_quarantined() : 0;
    return held > s->in_use ? s->in_use : held;
}

/* mallinfo2's fields, in glibc's meaning as far as they carry over. */
void tli_stats_mallinfo(size_t *arena, size_t *hblks, size_t *hblkhd, size_t *uordblks,
                        size_t *fordblks, size_t *keepcost)
{
    struct snapshot s;
    take_snapshot(&s, NULL);
    *arena = s.heap_mapped;
    *hblks = s.huge_count;
    *hblkhd = s.huge;
    size_t held = quarantined(&s);
    /* glibc's uordblks is the arenas' part: mmapped chunks are in hblkhd
     * only, so that uordblks + hblkhd is what the program holds. */
    *uordblks = s.in_use - s.huge - held;
    *fordblks = s.thread_cache + s.central_free + s.page_heap_free + s.returned + held;
    *keepcost = s.returned;
}

void tli_stats_at_exit(void)
{
    if (tli_conf.stats_at_exit)
        tl_stats_print(2, tli_conf.stats_at_exit == 2);
}

/* ---- malloc_info ------------------------------------------------------- *
 * glibc's XML, with one <heap> per part of tlmalloc's heap that frees
 * blocks in its own way (glibc has one per arena):
 *  heap 0, the size classes: <sizes> has one <size> per class holding
 *    free objects (thread caches and central lists), from = to = the class
 *    size; "fast" is what the thread caches hold (glibc's fast bins are
 *    its cache of small blocks), "rest" the central lists (and check
 *    mode's quarantine); "system" is the bytes of small spans.
 *  heap 1, the page heap: <sizes> has the free spans, grouped by the page
 *    heap's bins (from, to: the smallest and largest span), resident or
 *    given back alike; "rest" is their total; "system" is the page heap's
 *    mapping less the small spans.
 *  The totals add both heaps up; "mmap" is the huge blocks (own mappings),
 *  as glibc's mmapped chunks. So the "fast" and "rest" sizes add up to
 *  mallinfo2's fordblks, "mmap" gives hblks and hblkhd, and the total
 *  "system current" is its arena. The page heap never unmaps, so its
 *  "max" is its current size; a heap's "max" is the highest seen.
 * The snapshot is taken into this frame under the usual locks, and
 * written with stdio only after every lock is released: the stream may
 * allocate. */
struct info_heap {
    size_t fast_count, fast_bytes, rest_count, rest_bytes, current, max;
};

static void info_system(FILE *fp, size_t current, size_t max)
{
    fprintf(fp, "<system type=\"current\" size=\"%zu\"/>\n", current);
    fprintf(fp, "<system type=\"max\" size=\"%zu\"/>\n", max);
    fprintf(fp, "<aspace type=\"total\" size=\"%zu\"/>\n", current);
    fprintf(fp, "<aspace type=\"mprotect\" size=\"%zu\"/>\n", current);
}

static void info_totals(FILE *fp, const struct info_heap *h)
{
    fprintf(fp, "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n", h->fast_count,
            h->fast_bytes);
    fprintf(fp, "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n", h->rest_count,
            h->rest_bytes);
}

static void info_size(FILE *fp, size_t from, size_t to, size_t total, size_t count)
{
    fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n", from, to, total,
            count);
}

static void info_classes(FILE *fp, const struct snapshot *s, struct info_heap *h)
{
    fprintf(fp, "<heap nr=\"0\">\n<sizes>\n");
    for (unsigned cls = 1; cls < tli_num_classes; cls++) {
        size_t size = tli_classes[cls].size, bytes = s->tc_class[cls] + s->central_class[cls];
        if (bytes)
            info_size(fp, size, size, bytes, bytes / size);
        h->fast_count += s->tc_class[cls] / size;
        h->rest_count += s->central_class[cls] / size;
    }
    h->fast_bytes = s->thread_cache;
    h->rest_bytes = s->central_free + quarantined(s);
    h->current = s->small_spans;
    h->max = s->small_spans_peak > h->current ? s->small_spans_peak : h->current;
    fprintf(fp, "</sizes>\n");
    info_totals(fp, h);
    info_system(fp, h->current, h->max);
    fprintf(fp, "</heap>\n");
}

static void info_page_heap(FILE *fp, const struct snapshot *s, const struct span_groups *groups,
                           struct info_heap *h)
{
    fprintf(fp, "<heap nr=\"1\">\n<sizes>\n");
    for (unsigned i = 0; i < groups->n; i++) {
        const struct tli_free_span_group *g = &groups->g[i];
        info_size(fp, g->min_bytes, g->max_bytes, g->bytes, g->count);
        h->rest_count += g->count;
    }
    h->rest_bytes = s->page_heap_free + s->returned;
    h->current = s->heap_mapped - s->small_spans;
    h->max = s->large_side_peak > h->current ? s->large_side_peak : h->current;
    fprintf(fp, "</sizes>\n");
    info_totals(fp, h);
    info_system(fp, h->current, h->max);
    fprintf(fp, "</heap>\n");
}

TL_EXPORT int tl_malloc_info(int options, FILE *fp)
{
    /* glibc 2.36 returns EINVAL (not -1) and leaves errno alone; errno is
     * set as well, for programs that follow the manual page. */
    if (options != 0) {
        errno = EINVAL;
        return EINVAL;
    }
    tli_ensure_init();
    struct snapshot s;
    struct span_groups groups;
    take_snapshot(&s, &groups);
    struct info_heap classes = {0}, pages = {0};
    fprintf(fp, "<malloc version=\"1\">\n");
    info_classes(fp, &s, &classes);
    info_page_heap(fp, &s, &groups, &pages);
    struct info_heap all = {
        .fast_count = classes.fast_count + pages.fast_count,
        .fast_bytes = classes.fast_bytes + pages.fast_bytes,
        .rest_count = classes.rest_count + pages.rest_count,
        .rest_bytes = classes.rest_bytes + pages.rest_bytes,
    };
    info_totals(fp, &all);
    fprintf(fp, "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n", s.huge_count, s.huge);
    info_system(fp, s.heap_mapped, s.heap_mapped);
    fprintf(fp, "</malloc>\n");
    return 0;
}

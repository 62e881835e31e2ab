/* leak_scan.c - at exit, with leaks=1: which live blocks can the program
 * still reach? A conservative scan, the way LeakSanitizer and valgrind's
 * "definitely lost" work: an aligned word that points into a live block
 * (at any of its bytes: glibc keeps pointers into the middle of its DTVs)
 * makes that block reachable, and the words of a reachable block are
 * looked at in turn.
 *
 * Roots: every private writable mapping in /proc/self/maps (read with
 * read(2), no loader lock), less the pages of tlmalloc's spans: the data
 * and bss of every loaded object, every thread's stack and static TLS
 * (this thread's from the caller's frame up, not the frames of the scan),
 * the loader's own memory, tlmalloc's metadata (which holds no pointer a
 * program gave out). Pages of spans are looked at only as parts of
 * reached blocks, so a block that only a lost block points to is lost too.
 * A stale copy of a pointer (a dead thread's cached stack) can make a lost
 * block look reachable; never the other way round: a block is reported
 * only when no word anywhere points into it.
 *
 * Runs with tli_check_lock held (the blocks cannot be freed meanwhile); the
 * memory it needs comes from tli_os_map.
 */
#include "internal.h"

#include <string.h>

/* Heapsort by user address (no qsort: glibc's may allocate). */
static void sift(struct tli_scan_block *a, size_t root, size_t n)
{
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && a[child + 1].user > a[child].user)
            child++;
        if (a[root].user >= a[child].user)
            return;
        struct tli_scan_block tmp = a[root];
        a[root] = a[child];
        a[child] = tmp;
    }
}

static void sort_blocks(struct tli_scan_block *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(a, i, n);
    for (size_t end = n; end-- > 1;) {
        struct tli_scan_block tmp = a[0];
        a[0] = a[end];
        a[end] = tmp;
        sift(a, 0, end);
    }
}

struct scan {
    struct tli_scan_block *blocks;
    size_t n;
    uint32_t *work; /* indices of reached blocks not yet looked at */
    size_t nwork;
    int pagemap; /* /proc/self/pagemap, or -1: every page is read */
};

/* The live block (not damaged) that w points into, or SIZE_MAX. */
static size_t find(const struct scan *sc, uintptr_t w)
{
    size_t lo = 0, hi = sc->n;
    while (lo < hi) { /* the first block starting after w */
        size_t mid = lo + (hi - lo) / 2;
        if (sc->blocks[mid].user <= w)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!lo)
        return SIZE_MAX;
    const struct tli_scan_block *b = &sc->blocks[lo - 1];
    size_t len = b->size ? b->size : 1;
    return w - b->user < len && b->state == TL_SCAN_LIVE ? lo - 1 : SIZE_MAX;
}

/* Reads any word of the process, the sanitizers' own memory included:
 * their checks on these reads would fault or report (a TSan build with
 * check mode's leak report died in __tsan_read8 here). */
__attribute__((no_sanitize("thread", "address"))) static void
scan_words(struct scan *sc, uintptr_t from, uintptr_t to)
{
    for (uintptr_t a = (from + 7) & ~(uintptr_t)7; a + 8 <= to; a += 8) {
        size_t k = find(sc, *(const uintptr_t *)a);
        if (k != SIZE_MAX) {
            sc->blocks[k].state = TL_SCAN_REACHED;
            sc->work[sc->nwork++] = (uint32_t)k;
        }
    }
}

static void scan_reached(struct scan *sc)
{
    while (sc->nwork) {
        const struct tli_scan_block *b = &sc->blocks[sc->work[--sc->nwork]];
        scan_words(sc, b->user, b->user + b->size);
    }
}

/* A root mapping, page by page, less the pages of tlmalloc's spans, the
 * scan's own memory [skip_lo, skip_hi), and pages never touched (they
 * read as zero; reading them would fault in memory, a whole huge page
 * where transparent huge pages are on). */
static void scan_mapping(struct scan *sc, uintptr_t start, uintptr_t end, uintptr_t skip_lo,
                         uintptr_t skip_hi)
{
    enum { BATCH = 512 };
    bool touched[BATCH];
    size_t page = tli_os_page_size();
    for (uintptr_t batch = start; batch < end; batch += BATCH * page) {
        size_t n = (end - batch) / page < BATCH ? (end - batch) / page : BATCH;
        bool known = sc->pagemap >= 0 && tli_os_pages_touched(sc->pagemap, batch, n, touched);
        for (size_t i = 0; i < n; i++) {
            uintptr_t a = batch + i * page;
            if ((known && !touched[i]) || (a >= skip_lo && a < skip_hi) || tli_pagemap_span(a))
                continue;
            scan_words(sc, a, a + page);
            scan_reached(sc);
        }
    }
}

/* One line "start-end perms offset dev inode [path]": a root if private
 * and writable (and not a device). */
static void scan_line(struct scan *sc, const char *line, uintptr_t stack_from, uintptr_t skip_lo,
                      uintptr_t skip_hi)
{
    const char *s = line;
    uintptr_t start = tli_parse_hex(&s);
    if (*s++ != '-')
        return;
    uintptr_t end = tli_parse_hex(&s);
    if (*s++ != ' ' || s[0] != 'r' || s[1] != 'w' || s[3] != 'p')
        return;
    if (strstr(s, " /dev/"))
        return;
    if (stack_from >= start && stack_from < end) { /* this thread: the caller's frames up */
        size_t page = tli_os_page_size();
        uintptr_t up = (stack_from + page - 1) & ~(uintptr_t)(page - 1);
        scan_words(sc, stack_from, up);
        scan_reached(sc);
        start = up;
    }
    scan_mapping(sc, start, end, skip_lo, skip_hi);
}

/* /proc/self/maps, whole, into memory of its own; NULL if it cannot be read. */
static char *read_maps(size_t *cap)
{
    for (*cap = (size_t)1 << 20; *cap <= ((size_t)1 << 26); *cap *= 4) {
        char *buf = tli_os_map(*cap);
        if (!buf)
            return NULL;
        long len = tli_os_read_file("/proc/self/maps", buf, *cap);
        if (len >= 0 && (size_t)len + 1 < *cap)
            return buf;
        tli_os_unmap(buf, *cap);
    }
    return NULL;
}

void tli_leak_scan(struct tli_scan_block *blocks, size_t n, uintptr_t stack_from, const void *skip,
                   size_t skip_len)
{
    if (!n)
        return; /* nothing to find: no walk of the mappings (a TSan process
                   has terabytes of them) */
    sort_blocks(blocks, n);
    size_t maps_cap, work_bytes = (n + 1) * sizeof(uint32_t);
    uint32_t *work = tli_os_map(work_bytes);
    char *maps = work ? read_maps(&maps_cap) : NULL;
    if (!maps) {
        /* Nothing can be told apart: every block counts as reachable. */
        for (size_t k = 0; k < n; k++)
            if (blocks[k].state == TL_SCAN_LIVE)
                blocks[k].state = TL_SCAN_REACHED;
        if (work)
            tli_os_unmap(work, work_bytes);
        return;
    }
    struct scan sc = {blocks, n, work, 0, tli_os_pagemap_open()};
    /* The caller's memory is skipped: it holds every block's address. */
    uintptr_t skip_lo = (uintptr_t)skip, skip_hi = skip_lo + skip_len;
    for (char *line = maps, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = 0;
        scan_line(&sc, line, stack_from, skip_lo, skip_hi);
    }
    if (sc.pagemap >= 0)
        tli_os_close(sc.pagemap);
    tli_os_unmap(maps, maps_cap);
    tli_os_unmap(work, work_bytes);
}

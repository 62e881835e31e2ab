/* t_tlapi.c - the tl_ interface of tlmalloc (only in test_linked). */
#include <criterion/criterion.h>
#include <pthread.h>

#include "common.h"
#include "tlmalloc.h"

Test(tlapi, tl_functions_like_malloc_family)
{
    for (size_t s = 0; s < 300000; s = s * 2 + 7) {
        unsigned char *p = tl_malloc(opq(s));
        cr_assert_not_null(p, "tl_malloc(%zu) returned NULL", s);
        cr_assert(is_aligned(p, 16));
        cr_assert_geq(tl_malloc_usable_size(p), s);
        fill_pattern(p, s, s);
        p = tl_realloc(p, opq(s * 3 + 1));
        cr_assert_not_null(p);
        cr_assert_eq(check_pattern(p, s, s), SIZE_MAX, "tl_realloc lost data");
        tl_free(p);
        unsigned char *c = tl_calloc(opq(s + 1), opq(3));
        cr_assert_not_null(c);
        cr_assert_eq(check_zero(c, (s + 1) * 3), SIZE_MAX);
        c = tl_reallocarray(c, opq(s + 1), opq(5));
        cr_assert_not_null(c);
        tl_free(c);
    }
    cr_assert_eq(tl_malloc_usable_size(NULL), 0);
    tl_free(NULL);
    void *z = tl_malloc(opq(0));
    cr_assert_not_null(z);
    tl_free(z);
    cr_assert_null(tl_realloc(tl_malloc(10), opq(0)),
                   "tl_realloc(p, 0) should free and return NULL");
}

Test(tlapi, tl_impossible_sizes)
{
    errno = 0;
    cr_assert_null(tl_malloc(opq(SIZE_MAX)));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(tl_calloc(opq(SIZE_MAX), opq(2)));
    cr_assert_eq(errno, ENOMEM);
    void *p = tl_malloc(100);
    cr_assert_not_null(p);
    memset(p, 0x21, 100);
    errno = 0;
    cr_assert_null(tl_realloc(p, opq(SIZE_MAX)));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(tl_reallocarray(p, opq(SIZE_MAX), opq(4)));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(((unsigned char *)p)[99], 0x21);
    tl_free(p);
    void *mp = (void *)0x99;
    cr_assert_eq(tl_posix_memalign(&mp, opq(24), 8), EINVAL);
    cr_assert_eq(tl_posix_memalign(&mp, opq(64), opq(SIZE_MAX)), ENOMEM);
    cr_assert_eq(mp, (void *)0x99);
    errno = 0;
    cr_assert_null(tl_aligned_alloc(opq(24), 64));
    cr_assert_eq(errno, EINVAL);
}

Test(tlapi, tl_aligned_functions)
{
    size_t pg = page_size();
    for (size_t a = 8; a <= 4 * MiB; a <<= 1) {
        void *p = tl_memalign(opq(a), opq(a + 1));
        cr_assert_not_null(p);
        cr_assert(is_aligned(p, a));
        tl_free(p);
        p = tl_aligned_alloc(opq(a), opq(a));
        cr_assert_not_null(p);
        cr_assert(is_aligned(p, a));
        tl_free_aligned_sized(p, a, a);
        void *q = NULL;
        cr_assert_eq(tl_posix_memalign(&q, opq(a), opq(3 * a)), 0);
        cr_assert(is_aligned(q, a));
        tl_free(q);
    }
    void *v = tl_valloc(opq(100));
    cr_assert_not_null(v);
    cr_assert(is_aligned(v, pg));
    tl_free(v);
    void *pv = tl_pvalloc(opq(pg + 1));
    cr_assert_not_null(pv);
    cr_assert(is_aligned(pv, pg));
    cr_assert_geq(tl_malloc_usable_size(pv), 2 * pg);
    tl_free(pv);
    void *s = tl_malloc(opq(777));
    cr_assert_not_null(s);
    tl_free_sized(s, 777);
}

/* In libtlmalloc the tl_ functions and the malloc family share one heap. */
Test(tlapi, tl_and_malloc_share_the_heap)
{
    for (int i = 0; i < 1000; i++) {
        size_t s = (size_t)(i * 131 % 9000) + 1;
        unsigned char *a = tl_malloc(s);
        cr_assert_not_null(a);
        fill_pattern(a, s, (uint64_t)i);
        a = realloc(a, s + 100);
        cr_assert_not_null(a);
        cr_assert_eq(check_pattern(a, s, (uint64_t)i), SIZE_MAX);
        cr_assert_eq(malloc_usable_size(a), tl_malloc_usable_size(a));
        free(a);
        unsigned char *b = malloc(s);
        cr_assert_not_null(b);
        b = tl_realloc(b, s * 2);
        cr_assert_not_null(b);
        tl_free(b);
    }
}

Test(tlapi, tl_stat_values)
{
    enum { N = 1000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = tl_malloc(4096);
        cr_assert_not_null(p[i]);
        memset(p[i], 1, 4096);
    }
    void *big = tl_malloc(opq(20 * MiB));
    cr_assert_not_null(big);
    memset(big, 2, 20 * MiB);
    size_t mapped = tl_stat("mapped_bytes");
    size_t in_use = tl_stat("in_use_bytes");
    cr_assert_neq(mapped, (size_t)-1, "tl_stat(\"mapped_bytes\") is unknown");
    cr_assert_gt(mapped, 0, "tl_stat(\"mapped_bytes\") is 0 after allocating");
    cr_assert_geq(mapped, 20 * MiB + N * 4096, "mapped_bytes %zu < bytes held", mapped);
    cr_assert_neq(in_use, (size_t)-1, "tl_stat(\"in_use_bytes\") is unknown");
    cr_assert_geq(in_use, 20 * MiB + N * 4096, "in_use_bytes %zu < bytes held", in_use);
    cr_assert_eq(tl_stat("no_such_stat"), (size_t)-1);
    cr_assert_eq(tl_stat(""), (size_t)-1);
    for (int i = 0; i < N; i++)
        tl_free(p[i]);
    tl_free(big);
}

static void *flush_thread(void *arg)
{
    (void)arg;
    for (int round = 0; round < 200; round++) {
        void *p[64];
        for (int i = 0; i < 64; i++) {
            p[i] = tl_malloc((size_t)(i + 1) * 24);
            if (!p[i])
                return (void *)1;
        }
        tl_thread_flush();
        for (int i = 0; i < 64; i++)
            tl_free(p[i]);
        tl_thread_flush();
    }
    return NULL;
}

Test(tlapi, tl_thread_flush_safe, .timeout = 60)
{
    tl_thread_flush(); /* before this thread allocated anything */
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, flush_thread, NULL), 0);
    for (int i = 0; i < 8; i++) {
        void *ret = (void *)1;
        pthread_join(t[i], &ret);
        cr_assert_null(ret);
    }
    void *p = tl_malloc(100);
    cr_assert_not_null(p);
    tl_thread_flush();
    tl_free(p);
    tl_thread_flush();
    int rc = tl_malloc_trim(0);
    cr_assert(rc == 0 || rc == 1);
}

struct reader {
    int fd;
    char *buf;
    size_t len, cap;
};

static void *read_all(void *argp)
{
    struct reader *r = argp;
    for (;;) {
        if (r->len + 4096 > r->cap) {
            r->cap = r->cap * 2 + 65536;
            r->buf = realloc(r->buf, r->cap);
            if (!r->buf)
                return NULL;
        }
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    r->buf[r->len] = 0;
    return NULL;
}

/* Runs tl_stats_print(write end of a pipe, json), reads the other end from
 * a thread (the report may exceed a pipe's buffer). */
static char *stats_output(int json, size_t *len)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    struct reader r = {fds[0], NULL, 0, 0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, read_all, &r), 0);
    tl_stats_print(fds[1], json);
    close(fds[1]);
    pthread_join(t, NULL);
    close(fds[0]);
    cr_assert_not_null(r.buf);
    *len = r.len;
    return r.buf;
}

Test(tlapi, tl_stats_print_text_and_json)
{
    void *p = tl_malloc(5000);
    cr_assert_not_null(p);
    size_t len;
    char *text = stats_output(0, &len);
    cr_assert_gt(len, 0, "tl_stats_print(fd, 0) wrote nothing");
    free(text);

    char *json = stats_output(1, &len);
    cr_assert_gt(len, 0, "tl_stats_print(fd, 1) wrote nothing");
    cr_assert_eq(json[0], '{', "JSON report starts with '%c', not '{'", json[0]);
    size_t end = len;
    while (end > 0 && (json[end - 1] == '\n' || json[end - 1] == ' ' || json[end - 1] == '\r' ||
                       json[end - 1] == '\t'))
        end--;
    cr_assert(end > 0 && json[end - 1] == '}', "JSON report does not end with '}'");
    /* Brackets balance outside strings. */
    int depth = 0, in_str = 0, min_depth = 1;
    for (size_t i = 0; i < end; i++) {
        char ch = json[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
            continue;
        }
        if (ch == '"')
            in_str = 1;
        else if (ch == '{' || ch == '[')
            depth++;
        else if (ch == '}' || ch == ']') {
            depth--;
            if (i + 1 < end && depth < min_depth)
                min_depth = depth;
        }
    }
    cr_assert_eq(depth, 0, "JSON report brackets do not balance");
    cr_assert_eq(in_str, 0, "JSON report ends inside a string");
    cr_assert_geq(min_depth, 1, "JSON report is more than one object");
    free(json);
    tl_free(p);
}

/* Every line of the text report that carries a figure is a label and a
 * figure apart: the figures table pads each label to a column, the two
 * counts and the size class lines have their own spacing. So on each line
 * the first digit (where the figure starts; no label has a digit) must
 * follow whitespace, whatever the label's length. */
Test(tlapi, tl_stats_print_text_labels_apart_from_figures)
{
    void *p = tl_malloc(5000);
    cr_assert_not_null(p);
    size_t len;
    char *text = stats_output(0, &len);
    cr_assert_gt(len, 0, "tl_stats_print(fd, 0) wrote nothing");
    int with_figure = 0;
    for (char *line = text, *next; *line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : line + strlen(line);
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        size_t d = strcspn(line, "0123456789");
        if (d >= n)
            continue; /* a heading */
        with_figure++;
        cr_expect(d > 0 && (line[d - 1] == ' ' || line[d - 1] == '\t'),
                  "no whitespace between label and figure: \"%.*s\"", (int)n, line);
    }
    /* The figures table, the thread and mapping counts, and at least the
     * class of the 5000-byte block. */
    cr_expect_geq(with_figure, 16, "only %d lines with a figure in:\n%s", with_figure, text);
    free(text);
    tl_free(p);
}

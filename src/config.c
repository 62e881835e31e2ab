/* config.c - options, read once at initialisation from the environment:
 *   TLMALLOC_CONF="key=value,key=value"  (see README.md and tlmalloc(3))
 *   MALLOC_CHECK_=0..3                    (glibc's meaning: check mode and
 *                                          error action, never the leak report)
 * The environment is read from `environ` when libc has set it up, else from
 * /proc/self/environ (the first malloc may come from the dynamic loader,
 * before libc's initialisation). Nothing here allocates; a bad key or value
 * is reported with write(2) and the default is kept.
 */
#include "internal.h"

#include <string.h>

extern char **environ;

struct tli_config tli_conf = {
    .huge_threshold = (size_t)256 << 20,
    .tc_budget = (size_t)32 << 20,
    .tc_max = (size_t)4 << 20,
    .decay_ms = 500,
    .check = 0,
    .error_action = 3,
    .quarantine_bytes = (size_t)16 << 20,
    .leak_report = 0,
    .stats_at_exit = 0,
    .verbose = 0,
    .background = TL_BACKGROUND_AUTO,
    .debug_check_every = 1024,
    .prof = 0,
    .prof_sample = (size_t)512 << 10,
    .prof_final = 0,
    .prof_interval = 0,
    .prof_gdump = 0,
    .prof_prefix = "tlmalloc.prof",
};

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* "4096", "64k", "32M", "1g" (binary units, either case). */
bool tli_parse_size(const char *s, size_t len, size_t *out)
{
    unsigned shift = 0;
    if (len > 0) {
        switch (s[len - 1]) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            break;
        }
    }
    if (shift)
        len--;
    uint64_t v;
    if (!parse_u64(s, len, &v) || v > (UINT64_MAX >> shift))
        return false;
    *out = (size_t)(v << shift);
    return true;
}

static bool parse_bool(const char *s, size_t len, int *out)
{
    if ((len == 1 && s[0] == '1') || (len == 4 && !memcmp(s, "true", 4)) ||
        (len == 3 && !memcmp(s, "yes", 3))) {
        *out = 1;
        return true;
    }
    if ((len == 1 && s[0] == '0') || (len == 5 && !memcmp(s, "false", 5)) ||
        (len == 2 && !memcmp(s, "no", 2))) {
        *out = 0;
        return true;
    }
    return false;
}

static bool set_check(const char *v, size_t len)
{
    uint64_t level;
    if (!parse_u64(v, len, &level) || level > 3)
        return false;
    tli_conf.error_action = (int)level;
    tli_conf.check = level != 0;
    return true;
}

static bool key_is(const char *k, size_t klen, const char *name)
{
    return strlen(name) == klen && !memcmp(k, name, klen);
}

/* The heap profiler's options (prof.c); false if the key or value is bad. */
static bool apply_prof(const char *k, size_t klen, const char *v, size_t vlen, bool *known)
{
    size_t n;
    int b;
    if (key_is(k, klen, "prof") || key_is(k, klen, "prof_final") || key_is(k, klen, "prof_gdump")) {
        if (!parse_bool(v, vlen, &b))
            return false;
        int *field = key_is(k, klen, "prof")         ? &tli_conf.prof
                     : key_is(k, klen, "prof_final") ? &tli_conf.prof_final
                                                     : &tli_conf.prof_gdump;
        *field = b;
    } else if (key_is(k, klen, "prof_sample")) {
        if (!tli_parse_size(v, vlen, &n) || n == 0 || n > ((size_t)1 << 40))
            return false;
        tli_conf.prof_sample = n;
    } else if (key_is(k, klen, "prof_interval")) {
        if (!tli_parse_size(v, vlen, &n))
            return false;
        tli_conf.prof_interval = n;
    } else if (key_is(k, klen, "prof_prefix")) {
        if (vlen == 0 || vlen >= sizeof tli_conf.prof_prefix)
            return false;
        memcpy(tli_conf.prof_prefix, v, vlen);
        tli_conf.prof_prefix[vlen] = 0;
    } else {
        *known = false;
        return false;
    }
    return true;
}

/* Applies one key=value; false if the key or the value is bad. */
static bool apply(const char *k, size_t klen, const char *v, size_t vlen, bool *known)
{
    size_t n;
    int b;
    *known = true;
    if (key_is(k, klen, "huge_threshold")) {
        if (!tli_parse_size(v, vlen, &n) || n <= TL_SMALL_MAX)
            return false;
        tli_conf.huge_threshold = n;
    } else if (key_is(k, klen, "thread_cache_budget")) {
        if (!tli_parse_size(v, vlen, &n))
            return false;
        tli_conf.tc_budget = n;
    } else if (key_is(k, klen, "thread_cache_max")) {
        if (!tli_parse_size(v, vlen, &n))
            return false;
        tli_conf.tc_max = n;
    } else if (key_is(k, klen, "decay_ms")) {
        uint64_t ms;
        if (!parse_u64(v, vlen, &ms))
            return false;
        tli_conf.decay_ms = ms;
    } else if (key_is(k, klen, "debug_check_every")) {
        uint64_t every; /* read in every build, used in debug builds */
        if (!parse_u64(v, vlen, &every))
            return false;
        tli_conf.debug_check_every = every;
    } else if (key_is(k, klen, "quarantine")) {
        if (!tli_parse_size(v, vlen, &n))
            return false;
        tli_conf.quarantine_bytes = n;
    } else if (key_is(k, klen, "check")) {
        return set_check(v, vlen);
    } else if (key_is(k, klen, "leaks")) {
        if (!parse_bool(v, vlen, &b))
            return false;
        tli_conf.leak_report = b;
    } else if (key_is(k, klen, "stats")) {
        if (vlen == 4 && !memcmp(v, "json", 4))
            tli_conf.stats_at_exit = 2;
        else if (parse_bool(v, vlen, &b))
            tli_conf.stats_at_exit = b;
        else
            return false;
    } else if (key_is(k, klen, "verbose")) {
        if (!parse_bool(v, vlen, &b))
            return false;
        tli_conf.verbose = b;
    } else if (key_is(k, klen, "background_thread")) {
        if (vlen == 4 && !memcmp(v, "auto", 4))
            tli_conf.background = TL_BACKGROUND_AUTO;
        else if (parse_bool(v, vlen, &b))
            tli_conf.background = b;
        else
            return false;
    } else {
        return apply_prof(k, klen, v, vlen, known);
    }
    return true;
}

static void warn_item(const char *what, const char *item, size_t len)
{
    struct tli_buf b = {.fd = 2};
    tli_buf_str(&b, "tlmalloc: TLMALLOC_CONF: ");
    tli_buf_str(&b, what);
    tli_buf_str(&b, " '");
    for (size_t i = 0; i < len && b.len < sizeof b.data - 64; i++)
        b.data[b.len++] = item[i];
    tli_buf_str(&b, "' ignored, default kept\n");
    tli_buf_flush(&b);
}

static void parse_conf(const char *s)
{
    while (*s) {
        const char *item = s;
        while (*s && *s != ',')
            s++;
        size_t len = (size_t)(s - item);
        if (*s == ',')
            s++;
        if (len == 0)
            continue;
        const char *eq = memchr(item, '=', len);
        if (!eq) {
            warn_item("item without '='", item, len);
            continue;
        }
        bool known;
        size_t klen = (size_t)(eq - item);
        if (!apply(item, klen, eq + 1, len - klen - 1, &known))
            warn_item(known ? "bad value in" : "unknown option", item, len);
    }
}

static void apply_env(const char *entry)
{
    if (!strncmp(entry, "TLMALLOC_CONF=", 14)) {
        parse_conf(entry + 14);
    } else if (!strncmp(entry, "MALLOC_CHECK_=", 14)) {
        const char *v = entry + 14;
        if (!set_check(v, strlen(v)))
            tli_warn("MALLOC_CHECK_ must be 0, 1, 2 or 3; ignored", v);
    }
}

/* MALLOC_CHECK_ first, so that TLMALLOC_CONF's check= wins. */
static void scan_environ(char **env)
{
    for (char **e = env; *e; e++)
        if (!strncmp(*e, "MALLOC_CHECK_=", 14))
            apply_env(*e);
    for (char **e = env; *e; e++)
        if (!strncmp(*e, "TLMALLOC_CONF=", 14))
            apply_env(*e);
}

static void scan_proc(void)
{
    size_t cap = (size_t)256 << 10;
    char *buf = tli_os_map(cap);
    if (!buf)
        return;
    long n = tli_os_read_file("/proc/self/environ", buf, cap);
    for (int pass = 0; pass < 2 && n > 0; pass++)
        for (long i = 0; i < n; i += (long)strlen(buf + i) + 1)
            if (!strncmp(buf + i, pass ? "TLMALLOC_CONF=" : "MALLOC_CHECK_=", 14))
                apply_env(buf + i);
    tli_os_unmap(buf, cap);
}

void tli_config_init(void)
{
    if (environ)
        scan_environ(environ);
    else
        scan_proc();
    /* The leak report needs check mode's list of live blocks. */
    if (tli_conf.leak_report && !tli_conf.check)
        tli_conf.check = 1;
    if (tli_conf.tc_max > tli_conf.tc_budget)
        tli_conf.tc_max = tli_conf.tc_budget;
}

static void report_size(struct tli_buf *b, const char *name, uint64_t v)
{
    tli_buf_str(b, name);
    tli_buf_u64(b, v);
}

/* verbose=1: the options in force, once, at start. */
void tli_config_report(void)
{
    struct tli_buf b = {.fd = 2};
    tli_buf_str(&b, "tlmalloc: options:");
    report_size(&b, " huge_threshold=", tli_conf.huge_threshold);
    report_size(&b, " thread_cache_budget=", tli_conf.tc_budget);
    report_size(&b, " thread_cache_max=", tli_conf.tc_max);
    report_size(&b, " decay_ms=", tli_conf.decay_ms);
    if (tli_conf.background == TL_BACKGROUND_AUTO)
        tli_buf_str(&b, " background_thread=auto");
    else
        report_size(&b, " background_thread=", (uint64_t)tli_conf.background);
    report_size(&b, " check=", (uint64_t)(tli_conf.check ? tli_conf.error_action : 0));
    report_size(&b, " error_action=", (uint64_t)tli_conf.error_action);
    report_size(&b, " quarantine=", tli_conf.quarantine_bytes);
    report_size(&b, " stats=", (uint64_t)tli_conf.stats_at_exit);
    if (tli_conf.prof) { /* prof=0 adds nothing, as before the profiler */
        tli_buf_str(&b, " prof=1");
        report_size(&b, " prof_sample=", tli_conf.prof_sample);
        report_size(&b, " prof_final=", (uint64_t)tli_conf.prof_final);
        report_size(&b, " prof_interval=", tli_conf.prof_interval);
        report_size(&b, " prof_gdump=", (uint64_t)tli_conf.prof_gdump);
        tli_buf_str(&b, " prof_prefix=");
        tli_buf_str(&b, tli_conf.prof_prefix);
    }
    tli_buf_str(&b, "\n");
    tli_buf_flush(&b);
}

/* diag.c - diagnostics: formatting without stdio, the one-line reports of
 * heap errors with a short backtrace, and what happens next (the error
 * action: MALLOC_CHECK_'s 0 ignore, 1 print, 2 abort, 3 print and abort).
 *
 * Every report is written with write(2) to stderr; nothing here allocates.
 * "Ignore" and "print" skip the bad operation (the block is not freed
 * twice), so continuing never corrupts the heap.
 */
#include "internal.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

void tli_buf_flush(struct tli_buf *b)
{
    if (b->len && !b->err && !tli_os_write(b->fd, b->data, b->len))
        b->err = EIO;
    b->len = 0;
}

void tli_buf_bytes(struct tli_buf *b, const char *s, size_t n)
{
    while (n > 0) {
        if (b->len == sizeof b->data)
            tli_buf_flush(b);
        size_t k = sizeof b->data - b->len;
        if (k > n)
            k = n;
        memcpy(b->data + b->len, s, k);
        b->len += k;
        s += k;
        n -= k;
    }
}

void tli_buf_str(struct tli_buf *b, const char *s) { tli_buf_bytes(b, s, strlen(s)); }

void tli_buf_num(struct tli_buf *b, int64_t v, int width)
{
    char tmp[24];
    int i = sizeof tmp;
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    for (int pad = width - ((int)sizeof tmp - i); pad > 0; pad--)
        tli_buf_bytes(b, " ", 1);
    tli_buf_bytes(b, tmp + i, sizeof tmp - (size_t)i);
}

void tli_buf_u64(struct tli_buf *b, uint64_t v)
{
    char tmp[24];
    int i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    tli_buf_bytes(b, tmp + i, sizeof tmp - (size_t)i);
}

void tli_buf_hex_digits(struct tli_buf *b, uint64_t v, int min_digits)
{
    char tmp[18];
    int i = sizeof tmp;
    do {
        tmp[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (i > 2 && (int)sizeof tmp - i < min_digits)
        tmp[--i] = '0';
    tmp[--i] = 'x';
    tmp[--i] = '0';
    tli_buf_bytes(b, tmp + i, sizeof tmp - (size_t)i);
}

void tli_buf_hex(struct tli_buf *b, uint64_t v) { tli_buf_hex_digits(b, v, 1); }

/* "512 B", "12.5 KiB", "3.0 MiB", "1.2 GiB" */
void tli_buf_size(struct tli_buf *b, uint64_t bytes)
{
    static const char *units[] = {" B", " KiB", " MiB", " GiB", " TiB"};
    unsigned u = 0;
    uint64_t scaled10 = bytes * 10;
    while (bytes >= 1024 && u < 4) {
        scaled10 = bytes * 10 / 1024;
        bytes /= 1024;
        u++;
    }
    tli_buf_u64(b, u ? scaled10 / 10 : bytes);
    if (u) {
        char frac[2] = {(char)('0' + scaled10 % 10), 0};
        tli_buf_str(b, ".");
        tli_buf_str(b, frac);
    }
    tli_buf_str(b, units[u]);
}

/* ---- backtrace ------------------------------------------------------------ */
/* Return addresses by walking frame pointers, copying each frame only if
 * it can be read (code built without frame pointers ends the walk). */
unsigned tli_backtrace(uintptr_t *pcs, unsigned max, unsigned skip)
{
    uintptr_t *fp = __builtin_frame_address(0);
    unsigned n = 0;
    for (unsigned depth = 0; fp && n < max && depth < 64; depth++) {
        uintptr_t frame[2]; /* the caller's frame pointer, the return address */
        if (((uintptr_t)fp & 7) || !tli_os_read_words(fp, frame, sizeof frame))
            break;
        uintptr_t pc = frame[1];
        uintptr_t *next = (uintptr_t *)frame[0];
        if (pc < 4096)
            break;
        if (depth >= skip)
            pcs[n++] = pc;
        if (next <= fp || (uintptr_t)next - (uintptr_t)fp > ((uintptr_t)1 << 24))
            break;
        fp = next;
    }
    return n;
}

/* The ELF header of the object that holds this code, placed by the linker. */
extern const ElfW(Ehdr) __ehdr_start __attribute__((visibility("hidden")));

/* Is pc in the object that holds tlmalloc's code? Answered from that
 * object's program headers: dladdr would take the loader's lock. */
bool tli_in_self(uintptr_t pc)
{
    const ElfW(Ehdr) *eh = &__ehdr_start;
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)((const char *)eh + eh->e_phoff);
    uintptr_t bias = 0;
    bool first = true;
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        if (first) /* it maps file offset 0, where the header is */
            bias = (uintptr_t)eh - (ph[i].p_vaddr - ph[i].p_offset);
        first = false;
        uintptr_t start = bias + ph[i].p_vaddr;
        if (pc >= start && pc - start < ph[i].p_memsz)
            return true;
    }
    return false;
}

/* " name (sym+0x..)" or " name+0x.." from the loader's tables. */
static bool put_symbol(struct tli_buf *b, uintptr_t pc)
{
    struct tli_os_symbol info;
    if (!tli_os_symbol_of(pc, &info))
        return false;
    const char *name = strrchr(info.file, '/');
    tli_buf_str(b, " ");
    tli_buf_str(b, name ? name + 1 : info.file);
    if (info.name) {
        tli_buf_str(b, " (");
        tli_buf_str(b, info.name);
        tli_buf_str(b, "+");
        tli_buf_hex(b, pc - info.name_addr);
        tli_buf_str(b, ")");
    } else {
        tli_buf_str(b, "+");
        tli_buf_hex(b, pc - info.file_base);
    }
    return true;
}

/* Reads lower-case hex digits at *s (as /proc/self/maps writes them),
 * leaving *s at the first other character. */
uintptr_t tli_parse_hex(const char **s)
{
    uintptr_t v = 0;
    for (;; (*s)++) {
        char c = **s;
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                            : 16;
        if (d == 16)
            return v;
        v = v << 4 | d;
    }
}

static const char *next_field(const char *s)
{
    while (*s && *s != ' ')
        s++;
    while (*s == ' ')
        s++;
    return s;
}

/* One line of /proc/self/maps, "start-end perms offset dev inode path":
 * if it holds pc, puts " name+0x<offset in the file>" and says so. */
static bool put_if_mapped(struct tli_buf *b, const char *line, uintptr_t pc)
{
    const char *s = line;
    uintptr_t start = tli_parse_hex(&s);
    if (*s++ != '-')
        return false;
    uintptr_t end = tli_parse_hex(&s);
    if (pc < start || pc >= end)
        return false;
    s = next_field(next_field(s)); /* past perms */
    uintptr_t offset = tli_parse_hex(&s);
    const char *path = next_field(next_field(next_field(s))); /* past dev, inode */
    if (*path == '/') {
        tli_buf_str(b, " ");
        tli_buf_str(b, strrchr(path, '/') + 1);
        tli_buf_str(b, "+");
        tli_buf_hex(b, pc - start + offset);
    }
    return true;
}

/* " name+0x.." from /proc/self/maps, read with open and read: neither
 * allocates nor waits for the loader. */
static void put_mapping(struct tli_buf *b, uintptr_t pc)
{
    int fd = tli_os_open_read("/proc/self/maps");
    char buf[1024];
    size_t len = 0;
    bool found = false;
    while (fd >= 0 && !found) {
        long n = tli_os_read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = 0;
        char *line = buf, *nl;
        while (!found && (nl = strchr(line, '\n'))) {
            *nl = 0;
            found = put_if_mapped(b, line, pc);
            line = nl + 1;
        }
        len -= (size_t)(line - buf);
        memmove(buf, line, len);
        if (len == sizeof buf - 1) /* a line longer than the buffer: not one of ours */
            len = 0;
    }
    if (fd >= 0)
        tli_os_close(fd);
}

/* Symbols are looked up only when this thread holds no allocator lock:
 * the loader allocates under its own lock, so a thread in dlopen may be
 * waiting for ours while we would wait for the loader's. */
void tli_put_frame(struct tli_buf *b, uintptr_t pc)
{
    tli_buf_hex(b, pc);
    if (tli_lock_any_held_by_me() || !put_symbol(b, pc))
        put_mapping(b, pc);
    tli_buf_str(b, "\n");
}

/* The caller's frames, without tlmalloc's own leading ones (unless all are
 * ours, as when tlmalloc is linked statically into the program). */
void tli_put_backtrace(struct tli_buf *b)
{
    uintptr_t pcs[16];
    unsigned n = tli_backtrace(pcs, 16, 0), first = 0;
    while (first < n && tli_in_self(pcs[first]))
        first++;
    if (first == n)
        first = 0;
    for (unsigned i = first; i < n && i < first + 10; i++) {
        tli_buf_str(b, "    at ");
        tli_put_frame(b, pcs[i]);
    }
}

/* ---- reports ----------------------------------------------------------------- */
/* Set while this thread writes a report: a second report begun meanwhile
 * (a fault in the reporter, or a signal handler run by its abort that
 * misuses the heap again) would otherwise re-enter it without end. */
static __thread bool reporting __attribute__((tls_model("initial-exec")));

/* Ends the process with SIGABRT without running a handler for it: the
 * handler may be what brought us back here. */
static _Noreturn void abort_at_once(void)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t abrt;
    sigemptyset(&abrt);
    sigaddset(&abrt, SIGABRT);
    if (sigemptyset(&dfl.sa_mask) == 0 && sigaction(SIGABRT, &dfl, NULL) == 0 &&
        sigprocmask(SIG_UNBLOCK, &abrt, NULL) == 0)
        raise(SIGABRT);
    _exit(127);
}

static void begin_report(void)
{
    static const char nested[] = "tlmalloc: another error while reporting one; aborting\n";
    if (reporting) {
        tli_os_write(2, nested, sizeof nested - 1);
        abort_at_once();
    }
    reporting = true;
}

static void end_report(void) { reporting = false; }

static void act(struct tli_buf *b)
{
    int action = tli_conf.error_action;
    if (action & 1) {
        tli_put_backtrace(b);
        tli_buf_flush(b);
    }
    if (action & 2)
        abort();
}

static void report_bad_pointer(void *p, const char *kind, const char *who, const char *detail,
                               unsigned cls)
{
    begin_report();
    struct tli_buf b = {.fd = 2};
    tli_buf_str(&b, "tlmalloc: ");
    tli_buf_str(&b, kind);
    tli_buf_str(&b, " of ");
    tli_buf_hex(&b, (uintptr_t)p);
    if (cls) {
        tli_buf_str(&b, " (size class ");
        tli_buf_u64(&b, tli_classes[cls].size);
        tli_buf_str(&b, " B)");
    }
    tli_buf_str(&b, " in ");
    tli_buf_str(&b, who);
    tli_buf_str(&b, "()");
    if (detail) {
        tli_buf_str(&b, ": ");
        tli_buf_str(&b, detail);
    }
    tli_buf_str(&b, "\n");
    act(&b);
    end_report();
}

void tli_report_invalid_free(void *p, const char *who, const char *what)
{
    report_bad_pointer(p, "invalid pointer", who, what, 0);
}

void tli_report_double_free(void *p, unsigned cls, const char *who)
{
    report_bad_pointer(p, "double free", who, NULL, cls);
}

/* Corruption cannot be ignored: the free lists are no longer trustworthy. */
void tli_report_corruption(void *p, const char *who, const char *what)
{
    begin_report();
    struct tli_buf b = {.fd = 2};
    tli_buf_str(&b, "tlmalloc: heap corruption of ");
    tli_buf_hex(&b, (uintptr_t)p);
    tli_buf_str(&b, " in ");
    tli_buf_str(&b, who);
    tli_buf_str(&b, "(): ");
    tli_buf_str(&b, what);
    tli_buf_str(&b, "\n");
    tli_put_backtrace(&b);
    tli_buf_flush(&b);
    abort();
}

void tli_fatal(const char *msg)
{
    begin_report();
    struct tli_buf b = {.fd = 2};
    tli_buf_str(&b, "tlmalloc: fatal: ");
    tli_buf_str(&b, msg);
    tli_buf_str(&b, "\n");
    tli_buf_flush(&b);
    abort();
}

void tli_warn(const char *msg, const char *detail)
{
    struct tli_buf b = {.fd = 2};
    tli_buf_str(&b, "tlmalloc: ");
    tli_buf_str(&b, msg);
    if (detail) {
        tli_buf_str(&b, ": ");
        tli_buf_str(&b, detail);
    }
    tli_buf_str(&b, "\n");
    tli_buf_flush(&b);
}

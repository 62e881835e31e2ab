/* child.h - running tests/diag_child in a fresh process with a chosen
 * environment, for t_diag.c, t_memory.c and t_config.c.
 *
 * tlmalloc reads MALLOC_CHECK_ and TLMALLOC_CONF once, when it starts, so
 * a test that needs other options runs the helper program with execve()
 * and an environment of its own, capturing its stdout and stderr through
 * pipes and its exit status through waitpid (not Criterion's .signal or
 * .exit_code, so that message and status are checked together).
 *
 * The helper comes in two builds (see tests/local.mk):
 *   CHILD_LINKED   tests/diag_child_linked, linked with libtlmalloc
 *   CHILD_PRELOAD  tests/diag_child_plain, run with LD_PRELOAD=libtlmalloc.so
 * They are found under $TL_BUILDDIR (tests/run.sh sets it), else next to
 * this test program (which libtool may have put in tests/.libs).
 */
#ifndef TL_TESTS_CHILD_H
#define TL_TESTS_CHILD_H

#include <criterion/criterion.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum child_variant { CHILD_LINKED, CHILD_PRELOAD };
#define CHILD_VARIANTS 2

static inline const char *variant_name(enum child_variant v)
{
    return v == CHILD_LINKED ? "linked" : "preloaded";
}

struct child_result {
    int status; /* from waitpid */
    int timed_out;
    char *out, *err; /* NUL-terminated */
    size_t out_len, err_len;
};

static inline int file_exists(const char *path, int mode) { return access(path, mode) == 0; }

/* Finds name (relative to the build directory) and writes its path. */
static inline int find_in_build(const char *rel, int mode, char *path, size_t cap)
{
    const char *b = getenv("TL_BUILDDIR");
    if (b && *b) {
        snprintf(path, cap, "%s/%s", b, rel);
        if (file_exists(path, mode))
            return 1;
    }
    /* This program is <build>/tests/test_linked or <build>/tests/.libs/... */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return 0;
    *slash = 0;
    static const char *const ups[] = {"/..", "/../..", "/../../.."};
    for (size_t i = 0; i < sizeof ups / sizeof ups[0]; i++) {
        snprintf(path, cap, "%s%s/%s", exe, ups[i], rel);
        if (file_exists(path, mode))
            return 1;
    }
    return 0;
}

/* The helper program of a variant: "<prog>_linked" or "<prog>_plain". */
static inline void child_paths_of(const char *prog, enum child_variant v, char *helper, char *lib,
                                  size_t cap)
{
    char rel[256];
    snprintf(rel, sizeof rel, "%s_%s", prog, v == CHILD_LINKED ? "linked" : "plain");
    cr_assert(find_in_build(rel, X_OK, helper, cap),
              "cannot find %s: set TL_BUILDDIR to the build directory", rel);
    lib[0] = 0;
    if (v == CHILD_PRELOAD)
        cr_assert(find_in_build(".libs/libtlmalloc.so", R_OK, lib, cap),
                  "cannot find .libs/libtlmalloc.so: set TL_BUILDDIR to the build directory");
}

static inline void child_free(struct child_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

static inline void append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2 + 4096;
        *buf = realloc(*buf, *cap);
        cr_assert_not_null(*buf);
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = 0;
}

/* Runs the helper program prog (tests/diag_child, tests/heap_errors...)
 * with argv {scenario, arg} and exactly the environment env
 * (NULL-terminated; LD_PRELOAD is added for CHILD_PRELOAD). The child is
 * killed after timeout_s seconds. */
static inline void run_program(const char *prog, enum child_variant v, const char *const *env,
                               const char *scenario, const char *arg, int timeout_s,
                               struct child_result *r)
{
    char helper[4096], lib[4096], preload[4200];
    child_paths_of(prog, v, helper, lib, sizeof helper);
    memset(r, 0, sizeof *r);

    const char *envp[16];
    size_t ne = 0;
    for (size_t i = 0; env && env[i] && ne < 14; i++)
        envp[ne++] = env[i];
    if (v == CHILD_PRELOAD) {
        snprintf(preload, sizeof preload, "LD_PRELOAD=%s", lib);
        envp[ne++] = preload;
    }
    envp[ne] = NULL;
    const char *argv[] = {helper, scenario, arg, NULL};

    int po[2], pe[2];
    cr_assert_eq(pipe(po), 0);
    cr_assert_eq(pipe(pe), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core); /* aborts are expected: no core files */
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        close(po[1]);
        close(pe[1]);
        execve(helper, (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    size_t ocap = 0, ecap = 0;
    append(&r->out, &r->out_len, &ocap, "", 0);
    append(&r->err, &r->err_len, &ecap, "", 0);
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (open_fds > 0) {
        int rc = poll(fds, 2, 200);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!r->timed_out && now.tv_sec - start.tv_sec >= timeout_s) {
            r->timed_out = 1;
            kill(pid, SIGKILL);
        }
        if (rc <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[8192];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                if (i == 0)
                    append(&r->out, &r->out_len, &ocap, buf, (size_t)n);
                else
                    append(&r->err, &r->err_len, &ecap, buf, (size_t)n);
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    cr_assert_eq(waitpid(pid, &r->status, 0), pid);
}

static inline void run_child(enum child_variant v, const char *const *env, const char *scenario,
                             const char *arg, int timeout_s, struct child_result *r)
{
    run_program("tests/diag_child", v, env, scenario, arg, timeout_s, r);
}

/* "exit 0", "signal 6 (Aborted)", ... */
static inline const char *describe_status(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "status 0x%x", status);
    return buf;
}

static inline int exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
static inline int aborted(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT; }

/* Copies line k (0-based) of text into buf; returns 0 if there is none. */
static inline int nth_line(const char *text, unsigned k, char *buf, size_t cap)
{
    const char *s = text;
    for (unsigned i = 0; i < k; i++) {
        s = strchr(s, '\n');
        if (!s)
            return 0;
        s++;
    }
    if (!*s)
        return 0;
    const char *e = strchr(s, '\n');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
    return 1;
}

/* The value of the stdout line "key value" (or "tag key value" with key
 * "tag key"), or def if there is none. */
static inline unsigned long long out_value(const char *out, const char *key, unsigned long long def)
{
    size_t kl = strlen(key);
    for (const char *s = out; s && *s;) {
        if (!strncmp(s, key, kl) && s[kl] == ' ')
            return strtoull(s + kl + 1, NULL, 0);
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    return def;
}

static inline int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *s = text; s && *s;) {
        if (!strncmp(s, line, n) && (s[n] == '\n' || s[n] == 0))
            return 1;
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    return 0;
}

/* Does the whole of s match the extended regular expression re? */
static inline int matches(const char *s, const char *re, regmatch_t *m, size_t nm)
{
    regex_t rx;
    cr_assert_eq(regcomp(&rx, re, REG_EXTENDED | (m ? 0 : REG_NOSUB)), 0, "bad regex %s", re);
    int ok = regexec(&rx, s, m ? nm : 0, m, 0) == 0;
    regfree(&rx);
    return ok;
}

#endif /* TL_TESTS_CHILD_H */

/* bad_free.h - runs a heap-error scenario in a forked child whose stderr
 * comes back through a pipe, for t_defects.c and t_hardening.c; the child
 * must die of SIGABRT with a report naming the pointer. */
#ifndef TL_TESTS_BAD_FREE_H
#define TL_TESTS_BAD_FREE_H

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct report {
    int status;
    char text[4096];
};

static inline struct report run_bad_free(void (*scenario)(void *), void *arg)
{
    struct report r = {0};
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        scenario(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (len < sizeof r.text - 1 && (n = read(fds[0], r.text + len, sizeof r.text - 1 - len)) > 0)
        len += (size_t)n;
    r.text[len] = 0;
    close(fds[0]);
    cr_assert_eq(waitpid(pid, &r.status, 0), pid);
    return r;
}

static inline void assert_reported(const struct report *r, const char *what, const void *p)
{
    char ptr[32];
    snprintf(ptr, sizeof ptr, "%p", p);
    cr_assert(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT,
              "no abort for %s of %s; status 0x%x; stderr: %s", what, ptr, r->status, r->text);
    cr_assert(strstr(r->text, what) && strstr(r->text, ptr), "report does not name %s and %s: %s",
              what, ptr, r->text);
}

/* The pointer a scenario printed as "TAG %p" before misusing it. */
static inline void *scenario_ptr(const struct report *r, const char *tag)
{
    char want[32];
    snprintf(want, sizeof want, "%s %%p", tag);
    const char *at = strstr(r->text, tag);
    void *p = NULL;
    cr_assert(at && sscanf(at, want, &p) == 1, "scenario did not start: %s", r->text);
    return p;
}

#endif

/* maxrss: run a command and report its peak resident set size.
 *
 *   maxrss [-p PRELOAD] [-o FILE] COMMAND [ARG...]
 *
 * Runs COMMAND (with LD_PRELOAD=PRELOAD in its environment only, if -p is
 * given), waits for it, and writes one line
 *     maxrss_kib=N wall_s=S status=X
 * to FILE (default: standard error), where N is ru_maxrss of the child from
 * getrusage(RUSAGE_CHILDREN).  The command's standard output goes to
 * /dev/null unless -v is given.  Exits with the command's exit status, or
 * 128 + the signal that killed it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *preload = NULL, *out = NULL;
    int verbose = 0, c;
    while ((c = getopt(argc, argv, "+p:o:v")) != -1) {
        switch (c) {
        case 'p':
            preload = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'v':
            verbose = 1;
            break;
        default:
            fprintf(stderr, "usage: maxrss [-p PRELOAD] [-o FILE] [-v] COMMAND [ARG...]\n");
            return 1;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "maxrss: no command\n");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("maxrss: fork");
        return 1;
    }
    if (pid == 0) {
        if (preload != NULL && *preload != '\0')
            setenv("LD_PRELOAD", preload, 1);
        if (!verbose) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) {
                dup2(fd, 1);
                close(fd);
            }
        }
        execvp(argv[optind], argv + optind);
        fprintf(stderr, "maxrss: cannot run %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        ;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    FILE *f = out != NULL ? fopen(out, "w") : stderr;
    if (f == NULL) {
        perror("maxrss: output file");
        f = stderr;
    }
    fprintf(f, "maxrss_kib=%ld wall_s=%.4f status=%d\n", ru.ru_maxrss, wall, code);
    if (f != stderr)
        fclose(f);
    return code;
}

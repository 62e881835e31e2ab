/* prof_child.c - the program of the heap profiler's tests (t_prof.c): three
 * allocation sites of known volume, kept live until a profile is dumped:
 *   site_main    in the main thread, malloc:         24000 x 2000 B = 48 MB
 *   site_thread  in another thread, malloc:          32000 x 1000 B = 32 MB
 *   site_cxx     through C++ operator new (prof_cxx.cc): 32000 x 500 B = 16 MB
 * Built linked with libtlmalloc and plain (run with LD_PRELOAD); the tl_
 * functions are looked up at run time, so both builds share this source.
 *   prof_child sites [PATH]  allocate, then tl_prof_dump(PATH) if PATH is
 *                            given (else the profile comes from prof_final)
 *   prof_child api PATH      prints tl_prof_dump(PATH)'s result, tl_ctl's
 *                            prof.active before and after writing 0 and 1
 *                            to it, and prof.dump's result for PATH.ctl
 *   prof_child grow          allocates 64 MB in 64 KiB blocks, keeping them
 *                            (for prof_interval and prof_gdump)
 *   prof_child double_free   frees a block twice (run with prof_sample=1,
 *                            which samples every block): reported as any
 *   prof_child interior      frees a pointer into a block: reported as any
 *   prof_child other_calls   calloc, realloc, posix_memalign, memalign,
 *                            huge sizes, C++ aligned and nothrow new with
 *                            every block sampled: prints whether each
 *                            block is usable and zeroed where it must be */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAIN_N 24000
#define MAIN_SIZE 2000
#define THREAD_N 32000
#define THREAD_SIZE 1000

void *site_cxx(size_t size); /* prof_cxx.cc */
void run_cxx_site(void **keep, int n, size_t size);
int cxx_other_news_ok(void);

static void *main_blocks[MAIN_N], *thread_blocks[THREAD_N], *cxx_blocks[32000];

/* noinline, and the block is written after the call: the call to malloc is
 * not a tail call, so the function has a frame of its own in the trace. */
__attribute__((noinline)) void *site_main(size_t size)
{
    char *p = malloc(size);
    if (p)
        p[0] = 1;
    return p;
}

__attribute__((noinline)) void *site_thread(size_t size)
{
    char *p = malloc(size);
    if (p)
        p[0] = 2;
    return p;
}

static void *thread_body(void *arg)
{
    (void)arg;
    for (int i = 0; i < THREAD_N; i++)
        thread_blocks[i] = site_thread(THREAD_SIZE);
    return NULL;
}

static void *lookup(const char *name)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    if (!f) {
        fprintf(stderr, "prof_child: %s not found (is tlmalloc loaded?)\n", name);
        exit(3);
    }
    return f;
}

static int sites(const char *path)
{
    pthread_t t;
    if (pthread_create(&t, NULL, thread_body, NULL) != 0)
        return 2;
    for (int i = 0; i < MAIN_N; i++)
        main_blocks[i] = site_main(MAIN_SIZE);
    pthread_join(t, NULL);
    run_cxx_site(cxx_blocks, 32000, 500);
    if (path) {
        int (*dump)(const char *) = (int (*)(const char *))lookup("tl_prof_dump");
        int err = dump(path);
        printf("dump %d\n", err);
        return err != 0;
    }
    printf("allocated\n");
    return 0;
}

typedef int ctl_fn(const char *, void *, size_t *, const void *, size_t);

static int active(ctl_fn *ctl)
{
    int v = -1;
    size_t len = sizeof v;
    int err = ctl("prof.active", &v, &len, NULL, 0);
    return err ? -err : v;
}

static int api(const char *path)
{
    int (*dump)(const char *) = (int (*)(const char *))lookup("tl_prof_dump");
    ctl_fn *ctl = (ctl_fn *)lookup("tl_ctl");
    int off = 0, on = 1;
    printf("dump %d\n", dump(path));
    printf("active %d\n", active(ctl));
    printf("stop %d\n", ctl("prof.active", NULL, NULL, &off, sizeof off));
    printf("active_after_stop %d\n", active(ctl));
    printf("start %d\n", ctl("prof.active", NULL, NULL, &on, sizeof on));
    printf("active_after_start %d\n", active(ctl));
    char ctl_path[4200];
    snprintf(ctl_path, sizeof ctl_path, "%s.ctl", path);
    const char *p = ctl_path;
    printf("ctl_dump %d\n", ctl("prof.dump", NULL, NULL, &p, sizeof p));
    return 0;
}

/* A block of 100 bytes: with prof_sample=1 every block is a sample. */
static int double_free(void)
{
    char *volatile p = site_main(100);
    free(p);
    printf("freed once\n");
    free(p);
    printf("freed twice, not reported\n");
    return 0;
}

static int interior(void)
{
    char *volatile p = site_main(100);
    free(p + 16);
    printf("interior free not reported\n");
    return 0;
}

static int zeroed(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static int other_calls(void)
{
    /* Dirty pages first, so that calloc's zeroing is tested, not the OS's. */
    for (int i = 0; i < 64; i++) {
        unsigned char *d = malloc(3000);
        memset(d, 0xa5, 3000);
        free(d);
    }
    unsigned char *c = calloc(10, 300);
    printf("calloc %d\n", c && zeroed(c, 3000));
    unsigned char *r = realloc(NULL, 200);
    memset(r, 7, 200);
    r = realloc(r, 5000);
    printf("realloc %d\n", r && r[0] == 7 && r[199] == 7);
    void *pm = NULL;
    int err = posix_memalign(&pm, 256, 1000);
    printf("posix_memalign %d\n", !err && pm && ((uintptr_t)pm & 255) == 0);
    void *m = memalign(4096, 100);
    printf("memalign %d\n", m && ((uintptr_t)m & 4095) == 0);
    printf("usable %d\n", malloc_usable_size(c) >= 3000 && malloc_usable_size(r) >= 5000);
    /* Sizes past INT64_MAX through the counting entry: NULL and ENOMEM. */
    size_t huge_sizes[] = {(size_t)1 << 63, SIZE_MAX, SIZE_MAX / 2 + 2};
    int huge_ok = 1;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        void *h = malloc(huge_sizes[i]);
        huge_ok &= h == NULL && errno == ENOMEM;
        free(h);
    }
    printf("huge %d\n", huge_ok);
    printf("cxx_news %d\n", cxx_other_news_ok());
    free(c);
    free(r);
    free(pm);
    free(m);
    return 0;
}

static void *grown[1024];

static int grow(void)
{
    for (int i = 0; i < 1024; i++)
        grown[i] = site_main(64 << 10);
    printf("grown\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "sites"))
        return sites(argc > 2 ? argv[2] : NULL);
    if (argc >= 3 && !strcmp(argv[1], "api"))
        return api(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "grow"))
        return grow();
    if (argc >= 2 && !strcmp(argv[1], "double_free"))
        return double_free();
    if (argc >= 2 && !strcmp(argv[1], "interior"))
        return interior();
    if (argc >= 2 && !strcmp(argv[1], "other_calls"))
        return other_calls();
    fprintf(stderr, "usage: prof_child sites [PATH] | api PATH | grow | double_free | interior | "
                    "other_calls\n");
    return 2;
}

/* ctl.c - tl_ctl(name, oldp, oldlenp, newp, newlen): settings read and
 * changed at run time, and actions, by name, in the manner of jemalloc's
 * mallctl (sizes passed beside the pointers, so that a caller built
 * against another version gets EINVAL, not a short or long copy).
 *
 * Every name is one line of the table below: its value's size, a reader
 * and a writer. An action (a writer that runs on every call, with NULL
 * when no value is given) has size 0 when it takes no value. Adding a
 * name means writing its reader or writer and one line of the table.
 *
 * Nothing here holds an allocator lock while calling into the layers that
 * apply a change; each takes its own locks (or none: the thread cache
 * limits and the background thread's state change by atomic operations
 * alone, so a fork at any point leaves the child consistent).
 */
#include "internal.h"
#include "tlmalloc.h"

#include <string.h>

struct ctl_entry {
    const char *name;
    size_t size;                /* of the value read or written; 0: none */
    int (*get)(void *out);      /* NULL: nothing to read */
    int (*set)(const void *in); /* NULL: read-only */
    bool action;                /* set runs on every call, with NULL if no value is given */
};

#define CTL_VALUE(name, type, get, set)                                                            \
    {                                                                                              \
        name, sizeof(type), get, set, false                                                        \
    }
#define CTL_READ_ONLY(name, type, get)                                                             \
    {                                                                                              \
        name, sizeof(type), get, NULL, false                                                       \
    }
#define CTL_ACTION(name, size, run)                                                                \
    {                                                                                              \
        name, size, NULL, run, true                                                                \
    }

/* ---- decay_ms (uint64_t) ------------------------------------------------- */
static int decay_get(void *out)
{
    uint64_t v = __atomic_load_n(&tli_conf.decay_ms, __ATOMIC_RELAXED);
    memcpy(out, &v, sizeof v);
    return 0;
}

/* The clocks that were set by the old value are moved forward, so that a
 * shorter decay takes effect at the next look, not after the old period. */
static int decay_set(const void *in)
{
    uint64_t v;
    memcpy(&v, in, sizeof v);
    __atomic_store_n(&tli_conf.decay_ms, v, __ATOMIC_RELAXED);
    tli_page_heap_decay_soon();
    tli_central_decay_soon();
    tli_background_poke();
    return 0;
}

/* ---- thread_cache_max, thread_cache_budget (size_t) ---------------------- */
static int tc_max_get(void *out)
{
    size_t v = __atomic_load_n(&tli_conf.tc_max, __ATOMIC_RELAXED);
    memcpy(out, &v, sizeof v);
    return 0;
}

static int tc_max_set(const void *in)
{
    size_t v;
    memcpy(&v, in, sizeof v);
    tli_tc_set_max(v);
    return 0;
}

static int tc_budget_get(void *out)
{
    size_t v = __atomic_load_n(&tli_conf.tc_budget, __ATOMIC_RELAXED);
    memcpy(out, &v, sizeof v);
    return 0;
}

static int tc_budget_set(const void *in)
{
    size_t v;
    memcpy(&v, in, sizeof v);
    tli_tc_set_budget(v);
    return 0;
}

/* ---- background_thread (int: 0 never, 1 always, 2 auto) ------------------ */
static int bg_get(void *out)
{
    int v = __atomic_load_n(&tli_conf.background, __ATOMIC_RELAXED);
    memcpy(out, &v, sizeof v);
    return 0;
}

static int bg_set(const void *in)
{
    int v;
    memcpy(&v, in, sizeof v);
    return tli_background_set(v);
}

static int bg_running_get(void *out)
{
    int v = tli_background_running();
    memcpy(out, &v, sizeof v);
    return 0;
}

/* ---- actions --------------------------------------------------------------- */
static int thread_flush(const void *in)
{
    (void)in;
    tli_tc_flush_self();
    return 0;
}

/* What malloc_trim does: the calling thread's cache, the central lists'
 * transfer stacks, then every free page of the page heap, back. */
static int release_all(const void *in)
{
    (void)in;
    tli_tc_flush_self();
    tli_tc_release_kept(0, true);
    tli_central_drain_all();
    tli_page_heap_release(SIZE_MAX, true);
    return 0;
}

/* ---- the heap profiler (prof=1) ---------------------------------------- */
/* prof.active (int): whether it samples; ENOENT to write without prof=1. */
static int prof_active_get(void *out)
{
    int v = tli_prof_is_active();
    memcpy(out, &v, sizeof v);
    return 0;
}

static int prof_active_set(const void *in)
{
    int v;
    memcpy(&v, in, sizeof v);
    return tli_prof_set_active(v);
}

/* prof.dump (const char *, optional): tl_prof_dump's file, or without a
 * value the automatic name. */
static int prof_dump(const void *in)
{
    const char *path = NULL;
    if (in)
        memcpy(&path, in, sizeof path);
    return tl_prof_dump(path);
}

static const struct ctl_entry table[] = {
    CTL_VALUE("decay_ms", uint64_t, decay_get, decay_set),
    CTL_VALUE("thread_cache_max", size_t, tc_max_get, tc_max_set),
    CTL_VALUE("thread_cache_budget", size_t, tc_budget_get, tc_budget_set),
    CTL_VALUE("background_thread", int, bg_get, bg_set),
    CTL_READ_ONLY("background_thread.running", int, bg_running_get),
    CTL_ACTION("thread.flush", 0, thread_flush),
    CTL_ACTION("release", 0, release_all),
    CTL_VALUE("prof.active", int, prof_active_get, prof_active_set),
    CTL_ACTION("prof.dump", sizeof(const char *), prof_dump),
};

static const struct ctl_entry *find(const char *name)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(name, table[i].name))
            return &table[i];
    return NULL;
}

/* Whether the call's sizes fit the entry; if not, the size to use goes to
 * *oldlenp (when given). */
static int check_sizes(const struct ctl_entry *e, void *oldp, size_t *oldlenp, const void *newp,
                       size_t newlen)
{
    if (oldp || oldlenp) {
        size_t want = e->get ? e->size : 0;
        if (!oldp || !oldlenp || !e->get || *oldlenp != want) {
            if (oldlenp)
                *oldlenp = want;
            return EINVAL;
        }
    }
    if (newp) {
        if (!e->set)
            return EPERM;
        if (e->size == 0 || newlen != e->size)
            return EINVAL;
    } else if (newlen) {
        return EINVAL;
    }
    return 0;
}

TL_EXPORT int tl_ctl(const char *name, void *oldp, size_t *oldlenp, const void *newp, size_t newlen)
{
    if (!name)
        return EINVAL;
    tli_ensure_init();
    const struct ctl_entry *e = find(name);
    if (!e)
        return ENOENT;
    int err = check_sizes(e, oldp, oldlenp, newp, newlen);
    if (err)
        return err;
    if (oldp && (err = e->get(oldp)))
        return err;
    if (newp || e->action)
        return e->set(newp);
    return 0;
}

// t_cxx.cc - tlmalloc's C++ allocation functions (src/cxx.c), in two
// builds (tests/local.mk): test_cxx_linked, linked with libtlmalloc, and
// test_cxx_preload, run with LD_PRELOAD=.libs/libtlmalloc.so.
//  - every replaceable new and delete is tlmalloc's;
//  - every form works: alignment, nothrow's NULL, sized delete, exceptions;
//  - new_handler and bad_alloc, under an address-space limit (cxx_child);
//  - check mode names mismatched pairs and both sites (cxx_child).
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <new>
#include <string>
#include <vector>

static const char *const cxx_symbols[] = {
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv",
    "_ZdaPv",
    "_ZdlPvm",
    "_ZdaPvm",
    "_ZdlPvSt11align_val_t",
    "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t",
    "_ZdaPvmSt11align_val_t",
    "_ZdlPvRKSt9nothrow_t",
    "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

Test(cxx, every_operator_is_tlmallocs)
{
    for (const char *name : cxx_symbols) {
        void *f = dlsym(RTLD_DEFAULT, name);
        cr_assert_not_null(f, "%s not found", name);
        Dl_info info;
        cr_assert(dladdr(f, &info) && info.dli_fname, "%s: no object", name);
        cr_expect(strstr(info.dli_fname, "libtlmalloc") != nullptr, "%s comes from %s", name,
                  info.dli_fname);
    }
}

// The block is usable for all its bytes and is one of the heap's (its
// usable size covers the request).
static void fill_and_check(void *p, size_t size)
{
    cr_assert_not_null(p);
    memset(p, 0x5a, size);
    cr_expect_geq(malloc_usable_size(p), size);
}

Test(cxx, plain_and_nothrow_forms)
{
    static const size_t sizes[] = {0, 1, 16, 64, 100, 1024, 1025, 4096, 65536, 65537, 1 << 20};
    for (size_t size : sizes) {
        void *p = ::operator new(size);
        fill_and_check(p, size);
        ::operator delete(p);
        p = ::operator new[](size);
        fill_and_check(p, size);
        ::operator delete[](p);
        p = ::operator new(size, std::nothrow);
        fill_and_check(p, size);
        ::operator delete(p, std::nothrow);
        p = ::operator new[](size, std::nothrow);
        fill_and_check(p, size);
        ::operator delete[](p, std::nothrow);
    }
}

Test(cxx, sized_delete_frees)
{
    // Many blocks of many sizes, freed with their sizes, twice over: the
    // second round reuses what the first freed.
    std::vector<std::pair<void *, size_t>> blocks;
    for (int round = 0; round < 2; round++) {
        for (size_t size = 1; size < 70000; size = size * 5 / 4 + 1)
            for (int k = 0; k < 20; k++) {
                void *p = k & 1 ? ::operator new[](size) : ::operator new(size);
                fill_and_check(p, size);
                blocks.emplace_back(p, size);
            }
        for (size_t i = 0; i < blocks.size(); i++) {
            if (i & 1)
                ::operator delete[](blocks[i].first, blocks[i].second);
            else
                ::operator delete(blocks[i].first, blocks[i].second);
        }
        blocks.clear();
    }
    // A new expression with a complete type deletes with its size.
    struct node {
        char bytes[40];
    };
    for (int i = 0; i < 1000; i++) {
        node *volatile n = new node(); // volatile: the pair must not be folded away
        delete n;
    }
}

// A sized delete with a wrong size (undefined behaviour, but a real bug
// class) must not make the heap hand out overlapping blocks: the size is
// never trusted outside check mode.
Test(cxx, wrong_size_in_sized_delete_hands_out_no_block_twice)
{
    static const size_t small = 48, big = 4096;
    void *freed[64];
    for (void *&p : freed)
        p = ::operator new(small);
    for (void *p : freed)
        ::operator delete(p, big); // the wrong size
    // Every live block gets its own bytes: no two of them overlap.
    std::vector<std::pair<char *, size_t>> live;
    live.reserve(256);
    for (int i = 0; i < 256; i++) {
        size_t size = i & 1 ? big : small;
        char *p = static_cast<char *>(::operator new(size));
        memset(p, i & 0xff, size);
        live.emplace_back(p, size);
    }
    for (size_t i = 0; i < live.size(); i++) {
        const char *p = live[i].first;
        for (size_t k = 0; k < live[i].second; k++)
            cr_assert_eq((unsigned char)p[k], i & 0xff, "block %zu overwritten at byte %zu", i, k);
    }
    for (auto &b : live)
        ::operator delete(b.first, b.second);
}

Test(cxx, aligned_forms_are_aligned)
{
    static const size_t aligns[] = {1, 8, 16, 32, 64, 128, 256, 4096, 8192, 65536, 1 << 21};
    static const size_t sizes[] = {1, 24, 100, 5000, 70000};
    for (size_t al : aligns)
        for (size_t size : sizes) {
            std::align_val_t a{al};
            void *p[4] = {::operator new(size, a), ::operator new[](size, a),
                          ::operator new(size, a, std::nothrow),
                          ::operator new[](size, a, std::nothrow)};
            for (void *q : p) {
                fill_and_check(q, size);
                cr_expect_eq((uintptr_t)q % al, 0, "%p: alignment %zu, size %zu", q, al, size);
            }
            ::operator delete(p[0], a);
            ::operator delete[](p[1], size, a);
            ::operator delete(p[2], a, std::nothrow);
            ::operator delete[](p[3], a, std::nothrow);
        }
    // The sized and aligned form of delete, and an over-aligned type.
    struct alignas(256) wide {
        char bytes[300];
    };
    for (int i = 0; i < 100; i++) {
        wide *w = new wide();
        cr_expect_eq((uintptr_t)w % 256, 0);
        delete w;
        wide *v = new wide[3];
        cr_expect_eq((uintptr_t)v % 256, 0);
        delete[] v;
    }
}

Test(cxx, delete_of_null_does_nothing)
{
    ::operator delete(nullptr);
    ::operator delete[](nullptr);
    ::operator delete(nullptr, 16);
    ::operator delete(nullptr, std::align_val_t(64));
    ::operator delete[](nullptr, 16, std::align_val_t(64));
    ::operator delete(nullptr, std::nothrow);
}

static const size_t huge_request = SIZE_MAX / 2;

Test(cxx, nothrow_returns_null_on_impossible_sizes)
{
    cr_expect_null(::operator new(huge_request, std::nothrow));
    cr_expect_null(::operator new[](huge_request, std::nothrow));
    cr_expect_null(::operator new(huge_request, std::align_val_t(64), std::nothrow));
    cr_expect_null(::operator new[](huge_request, std::align_val_t(4096), std::nothrow));
    cr_expect_null(::operator new(SIZE_MAX, std::nothrow));
}

// Calls the throwing form of each new with an impossible size.
static int throws_bad_alloc(int form)
{
    try {
        void *volatile p;
        switch (form) {
        case 0:
            p = ::operator new(huge_request);
            break;
        case 1:
            p = ::operator new[](huge_request);
            break;
        case 2:
            p = ::operator new(huge_request, std::align_val_t(64));
            break;
        default:
            p = ::operator new[](huge_request, std::align_val_t(4096));
            break;
        }
        (void)p;
    } catch (const std::bad_alloc &) {
        return 1;
    }
    return 0;
}

Test(cxx, throwing_forms_throw_bad_alloc)
{
    for (int form = 0; form < 4; form++)
        cr_expect(throws_bad_alloc(form), "form %d did not throw", form);
}

static int handler_calls;
static void count_then_give_up()
{
    if (++handler_calls == 3)
        std::set_new_handler(nullptr);
}

Test(cxx, new_handler_is_called_until_removed)
{
    for (int form = 0; form < 4; form++) {
        handler_calls = 0;
        std::set_new_handler(count_then_give_up);
        cr_expect(throws_bad_alloc(form), "form %d did not throw", form);
        cr_expect_eq(handler_calls, 3, "form %d: handler called %d times", form, handler_calls);
    }
    // The nothrow forms do not call it (see DESIGN.md).
    handler_calls = 0;
    std::set_new_handler(count_then_give_up);
    cr_expect_null(::operator new(huge_request, std::nothrow));
    cr_expect_eq(handler_calls, 0);
    std::set_new_handler(nullptr);
}

struct handler_error {
};
static void throw_own() { throw handler_error(); }

Test(cxx, exception_from_new_handler_reaches_caller)
{
    std::set_new_handler(throw_own);
    int caught = 0;
    try {
        void *volatile p = ::operator new(huge_request);
        (void)p;
    } catch (const handler_error &) {
        caught = 1;
    }
    std::set_new_handler(nullptr);
    cr_expect(caught);
}

Test(cxx, library_types_churn)
{
    std::vector<std::string> v;
    for (int i = 0; i < 20000; i++) {
        v.push_back(std::string(i % 200, 'a' + i % 26));
        if (i % 3 == 0)
            v.erase(v.begin() + (i * 7919) % v.size());
    }
    for (const std::string &s : v)
        cr_assert(s.empty() || s[0] >= 'a');
}

// ---- scenarios in a child process ------------------------------------------------
struct child_out {
    int status;
    std::string out, err;
};

static std::string build_path(const char *rel)
{
    const char *b = getenv("TL_BUILDDIR");
    std::string dir = b && *b ? b : ".";
    return dir + "/" + rel;
}

// Runs tests/cxx_child SCENARIO: linked if this program is the linked
// build, else plain with LD_PRELOAD inherited, with env added.
static child_out run_child(const char *scenario, const char *env)
{
    bool linked = dlsym(RTLD_DEFAULT, "tl_malloc") && !getenv("LD_PRELOAD");
    std::string helper = build_path(linked ? "tests/cxx_child_linked" : "tests/cxx_child_plain");
    cr_assert(access(helper.c_str(), X_OK) == 0, "cannot run %s: set TL_BUILDDIR", helper.c_str());
    int po[2], pe[2];
    cr_assert_eq(pipe(po), 0);
    cr_assert_eq(pipe(pe), 0);
    fflush(nullptr);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        if (env)
            putenv(const_cast<char *>(env));
        execl(helper.c_str(), helper.c_str(), scenario, (char *)nullptr);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    child_out r;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    for (int open_fds = 2; open_fds > 0;) {
        if (poll(fds, 2, -1) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                (i ? r.err : r.out).append(buf, (size_t)n);
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    cr_assert_eq(waitpid(pid, &r.status, 0), pid);
    return r;
}

static bool has(const std::string &text, const std::string &s)
{
    return text.find(s) != std::string::npos;
}

static bool exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

Test(cxx, bad_alloc_under_address_space_limit, .timeout = 60)
{
    child_out r = run_child("bad_alloc_under_limit", nullptr);
    cr_assert(exited_ok(r.status), "status 0x%x\n%s", r.status, r.err.c_str());
    cr_expect(has(r.out, "nothrow_null 1\n"), "%s", r.out.c_str());
    cr_expect(has(r.out, "threw 1\n"), "%s", r.out.c_str());
    cr_expect(has(r.out, "aligned_threw 1\n"), "%s", r.out.c_str());
}

Test(cxx, new_handler_frees_memory_then_new_succeeds, .timeout = 60)
{
    child_out r = run_child("handler_frees_reserve", nullptr);
    cr_assert(exited_ok(r.status), "status 0x%x\n%s", r.status, r.err.c_str());
    cr_expect(has(r.out, "handler_calls 1\n"), "%s", r.out.c_str());
    cr_expect(has(r.out, "succeeded 1\n"), "%s", r.out.c_str());
}

// check=1: print and go on, so the child ends and both sites are named.
static void expect_report(const char *scenario, const char *what, const char *freer)
{
    child_out r = run_child(scenario, "TLMALLOC_CONF=check=1");
    cr_assert(exited_ok(r.status), "%s: status 0x%x\n%s", scenario, r.status, r.err.c_str());
    cr_expect(has(r.out, "done 1\n"), "%s: %s", scenario, r.out.c_str());
    size_t at = r.out.find("ptr ");
    cr_assert(at != std::string::npos);
    std::string ptr = r.out.substr(at + 4, r.out.find('\n', at) - at - 4);
    std::string head = std::string("tlmalloc: ") + what + " of " + ptr + " in " + freer + "()\n";
    cr_expect(has(r.err, head), "%s: expected \"%s\" in:\n%s", scenario, head.c_str(),
              r.err.c_str());
    cr_expect(has(r.err, "cxx_alloc_site+0x"), "%s: allocation site not named:\n%s", scenario,
              r.err.c_str());
    cr_expect(has(r.err, "freed by " + std::string(freer) + " at ") &&
                  has(r.err, "cxx_free_site+0x"),
              "%s: freeing site not named:\n%s", scenario, r.err.c_str());
}

Test(cxx, check_mode_new_freed_with_free, .timeout = 60)
{
    expect_report("new_free", "alloc-dealloc mismatch (operator new vs free)", "free");
}

Test(cxx, check_mode_new_array_freed_with_delete, .timeout = 60)
{
    expect_report("new_array_delete", "alloc-dealloc mismatch (operator new [] vs operator delete)",
                  "operator delete");
}

Test(cxx, check_mode_malloc_freed_with_delete, .timeout = 60)
{
    expect_report("malloc_delete", "alloc-dealloc mismatch (malloc vs operator delete)",
                  "operator delete");
}

Test(cxx, check_mode_sized_delete_with_wrong_size, .timeout = 60)
{
    expect_report("sized_wrong",
                  "new-delete size mismatch (48 bytes allocated, 32 passed to sized delete)",
                  "operator delete");
}

Test(cxx, check_mode_matched_pairs_are_quiet, .timeout = 60)
{
    static const char *const ok[] = {"sized_right", "new_array_delete_array", "malloc_free",
                                     "new_delete"};
    for (const char *s : ok) {
        child_out r = run_child(s, "TLMALLOC_CONF=check=3");
        cr_expect(exited_ok(r.status), "%s: status 0x%x\n%s", s, r.status, r.err.c_str());
        cr_expect(r.err.empty(), "%s: report for a matched pair:\n%s", s, r.err.c_str());
    }
}

Test(cxx, check_mode_mismatch_aborts_by_default, .timeout = 60)
{
    child_out r = run_child("new_free", "TLMALLOC_CONF=check=3");
    cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT, "status 0x%x", r.status);
    cr_expect(has(r.err, "alloc-dealloc mismatch (operator new vs free)"), "%s", r.err.c_str());
}

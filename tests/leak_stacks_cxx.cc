// leak_stacks_cxx.cc - the C++ helper of checkmode's call-stack tests
// (t_checkmode.c): objects leaked with new from make_widget. Built -O2
// -fomit-frame-pointer, symbols exported (tests/local.mk). The report must
// name make_widget, never an operator new: tlmalloc's own, or libstdc++'s
// when libstdc++ comes first in the search order (LD_PRELOAD).
#include <cstdio>
#include <cstring>

struct widget {
    char name[48];
    int id;
};

// A loop count the compiler cannot see: one call site.
static volatile int two = 2;

__attribute__((noinline)) widget *make_widget(int id)
{
    widget *w = new widget;
    std::memset(w->name, 'w', sizeof w->name);
    w->id = id;
    return w;
}

__attribute__((noinline)) void leak_widgets()
{
    for (int i = 0; i < two; i++) {
        widget *volatile w = make_widget(i);
        (void)w;
    }
}

__attribute__((noinline)) void scrub_stack()
{
    volatile char junk[16384];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = 0;
}

int main(int argc, char **argv)
{
    if (argc != 2 || std::strcmp(argv[1], "new_leaks") != 0) {
        std::printf("error usage: leak_stacks_cxx new_leaks\n");
        return 2;
    }
    leak_widgets();
    scrub_stack();
    std::printf("done\n");
    return 0;
}

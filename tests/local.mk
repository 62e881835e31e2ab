# tests/local.mk - tlmalloc's tests, included by the top-level Makefile.am.
#
# `make check` builds the two Criterion programs (and the helper programs
# some tests run) and runs tests/run.sh,
# which runs them (test_preload under LD_PRELOAD), the smoke tests with
# real programs, and the ThreadSanitizer and AddressSanitizer programs it
# builds itself from the allocator sources. See tests/run.sh.

EXTRA_DIST += tests/run.sh tests/smoke.sh tests/install.sh tests/san_common.h tests/san_tsan.c tests/san_asan.c \
	tests/tsan.supp tests/check-all.sh tests/vg_errors.c

if ENABLE_TESTS

# The tests are built with the project's strict flags, plus -fno-builtin so
# that the compiler does not remove or fold the allocation calls under test.
TESTS_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -fno-builtin \
	-fno-omit-frame-pointer -I$(top_srcdir)/include $(CRITERION_CFLAGS)

# The general tests use only the malloc family; both programs run them.
tests_general_sources = \
	tests/common.h tests/workloads.h tests/bad_free.h \
	tests/t_identity.c tests/t_align.c tests/t_limits.c tests/t_memalign.c \
	tests/t_realloc.c tests/t_calloc.c tests/t_compat.c tests/t_stress.c \
	tests/t_threads.c tests/t_fork.c tests/t_defects.c tests/t_pageheap.c tests/t_hardening.c \
	tests/t_glibc_contract.c

check_PROGRAMS += tests/test_linked tests/test_preload

# Linked with libtlmalloc; adds the tests of the tl_ interface, and those
# that run tests/diag_child in fresh processes with their own environment
# (heap error reports, memory coming back, options).
tests_test_linked_SOURCES = $(tests_general_sources) tests/t_tlapi.c tests/t_introspect.c \
	tests/child.h tests/t_diag.c tests/t_memory.c tests/t_config.c tests/t_checkmode.c \
	tests/t_heaperrors.c tests/t_prof.c
tests_test_linked_CFLAGS = $(TESTS_CFLAGS)
tests_test_linked_LDADD = libtlmalloc.la $(CRITERION_LIBS) $(PTHREAD_LIBS) -ldl -lm

# Not linked with tlmalloc: run with LD_PRELOAD=.libs/libtlmalloc.so.
tests_test_preload_SOURCES = $(tests_general_sources) tests/t_introspect.c
tests_test_preload_CFLAGS = $(TESTS_CFLAGS)
tests_test_preload_LDADD = $(CRITERION_LIBS) $(PTHREAD_LIBS) -ldl

# The layers below malloc, tested one by one (t_layers.c): the allocator's
# objects linked in directly, with its flags and -DTL_OVERRIDE=0, so that the
# tests reach the internal functions and the system malloc serves Criterion.
check_PROGRAMS += tests/test_layers
tests_test_layers_SOURCES = tests/t_layers.c $(tl_sources)
tests_test_layers_CFLAGS = $(TL_CFLAGS) -DTL_OVERRIDE=0 $(CRITERION_CFLAGS)
tests_test_layers_LDADD = $(CRITERION_LIBS) $(PTHREAD_LIBS) -ldl

# The helper program of t_diag.c, t_memory.c and t_config.c, in two builds:
# linked with libtlmalloc (-no-install: found through its rpath, no
# libtool wrapper script), and plain, to run with LD_PRELOAD. Symbols are
# exported so that the allocator's reports can name the program's functions.
check_PROGRAMS += tests/diag_child_linked tests/diag_child_plain
tests_diag_child_linked_SOURCES = tests/diag_child.c
tests_diag_child_linked_CFLAGS = $(TESTS_CFLAGS)
tests_diag_child_linked_LDFLAGS = -no-install -export-dynamic
tests_diag_child_linked_LDADD = libtlmalloc.la $(PTHREAD_LIBS) -ldl
tests_diag_child_plain_SOURCES = tests/diag_child.c
tests_diag_child_plain_CFLAGS = $(TESTS_CFLAGS)
tests_diag_child_plain_LDFLAGS = -export-dynamic
tests_diag_child_plain_LDADD = $(PTHREAD_LIBS) -ldl

# The scenario programs of the heap-error suite (t_heaperrors.c), in the
# same two builds: one heap error or exploitation primitive per run, and a
# correct multithreaded C++ program.
check_PROGRAMS += tests/heap_errors_linked tests/heap_errors_plain \
	tests/heap_errors_cxx_linked tests/heap_errors_cxx_plain
tests_heap_errors_linked_SOURCES = tests/heap_errors.c
tests_heap_errors_linked_CFLAGS = $(TESTS_CFLAGS)
tests_heap_errors_linked_LDFLAGS = -no-install
tests_heap_errors_linked_LDADD = libtlmalloc.la $(PTHREAD_LIBS)
tests_heap_errors_plain_SOURCES = tests/heap_errors.c
tests_heap_errors_plain_CFLAGS = $(TESTS_CFLAGS)
tests_heap_errors_plain_LDADD = $(PTHREAD_LIBS)
HEAP_ERRORS_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -O2 -g -pthread
tests_heap_errors_cxx_linked_SOURCES = tests/heap_errors_cxx.cc
tests_heap_errors_cxx_linked_CXXFLAGS = $(HEAP_ERRORS_CXXFLAGS)
tests_heap_errors_cxx_linked_LDFLAGS = -no-install
tests_heap_errors_cxx_linked_LDADD = libtlmalloc.la $(PTHREAD_LIBS)
tests_heap_errors_cxx_plain_SOURCES = tests/heap_errors_cxx.cc
tests_heap_errors_cxx_plain_CXXFLAGS = $(HEAP_ERRORS_CXXFLAGS)
# Written by heaperrors::table each run (tools/heap-errors-table.sh reads it).
CLEANFILES += tests/heap-errors-table.md
tests_heap_errors_cxx_plain_LDADD = $(PTHREAD_LIBS)

# The helpers of checkmode's call-stack tests (t_checkmode.c), linked and
# plain: built the way most programs are, -O2 without frame pointers, so
# that only an unwinder reading the call frame information finds the
# callers; symbols exported so that reports can name them.
LEAK_STACKS_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -fno-builtin \
	-fomit-frame-pointer
LEAK_STACKS_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -O2 -g -fomit-frame-pointer
check_PROGRAMS += tests/leak_stacks_linked tests/leak_stacks_plain \
	tests/leak_stacks_cxx_linked tests/leak_stacks_cxx_plain
tests_leak_stacks_linked_SOURCES = tests/leak_stacks.c
tests_leak_stacks_linked_CFLAGS = $(LEAK_STACKS_CFLAGS)
tests_leak_stacks_linked_LDFLAGS = -no-install -export-dynamic
tests_leak_stacks_linked_LDADD = libtlmalloc.la
tests_leak_stacks_plain_SOURCES = tests/leak_stacks.c
tests_leak_stacks_plain_CFLAGS = $(LEAK_STACKS_CFLAGS)
tests_leak_stacks_plain_LDFLAGS = -export-dynamic
tests_leak_stacks_cxx_linked_SOURCES = tests/leak_stacks_cxx.cc
tests_leak_stacks_cxx_linked_CXXFLAGS = $(LEAK_STACKS_CXXFLAGS)
tests_leak_stacks_cxx_linked_LDFLAGS = -no-install -export-dynamic
tests_leak_stacks_cxx_linked_LDADD = libtlmalloc.la
tests_leak_stacks_cxx_plain_SOURCES = tests/leak_stacks_cxx.cc
tests_leak_stacks_cxx_plain_CXXFLAGS = $(LEAK_STACKS_CXXFLAGS)
tests_leak_stacks_cxx_plain_LDFLAGS = -export-dynamic

# The heap profiler's program (t_prof.c): three allocation sites, one in a
# thread and one through C++ operator new, linked and plain (LD_PRELOAD).
PROF_CHILD_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -O2 -g -fno-omit-frame-pointer
check_PROGRAMS += tests/prof_child_linked tests/prof_child_plain
tests_prof_child_linked_SOURCES = tests/prof_child.c tests/prof_cxx.cc
tests_prof_child_linked_CFLAGS = $(TESTS_CFLAGS)
tests_prof_child_linked_CXXFLAGS = $(PROF_CHILD_CXXFLAGS)
tests_prof_child_linked_LDFLAGS = -no-install
tests_prof_child_linked_LDADD = libtlmalloc.la $(PTHREAD_LIBS) -ldl
tests_prof_child_plain_SOURCES = tests/prof_child.c tests/prof_cxx.cc
tests_prof_child_plain_CFLAGS = $(TESTS_CFLAGS)
tests_prof_child_plain_CXXFLAGS = $(PROF_CHILD_CXXFLAGS)
tests_prof_child_plain_LDADD = $(PTHREAD_LIBS) -ldl

# The fast-path loop whose instructions tests/run.sh counts with callgrind
# (run with LD_PRELOAD=libtlmalloc.so).
check_PROGRAMS += tests/fastpath_loop
tests_fastpath_loop_SOURCES = tests/fastpath_loop.c
tests_fastpath_loop_CFLAGS = $(TESTS_CFLAGS)

# The C++ allocation functions (src/cxx.c), tested from C++ (built only for
# the tests): test_cxx_linked (linked with libtlmalloc) and test_cxx_preload
# (run with LD_PRELOAD), and the helper both run in child processes, in the
# same two builds (symbols exported so that reports name its functions).
TESTS_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -O2 -g -fno-omit-frame-pointer \
	-I$(top_srcdir)/include $(CRITERION_CFLAGS)
check_PROGRAMS += tests/test_cxx_linked tests/test_cxx_preload \
	tests/cxx_child_linked tests/cxx_child_plain
tests_test_cxx_linked_SOURCES = tests/t_cxx.cc
tests_test_cxx_linked_CXXFLAGS = $(TESTS_CXXFLAGS)
tests_test_cxx_linked_LDADD = libtlmalloc.la $(CRITERION_LIBS) $(PTHREAD_LIBS) -ldl
tests_test_cxx_preload_SOURCES = tests/t_cxx.cc
tests_test_cxx_preload_CXXFLAGS = $(TESTS_CXXFLAGS)
tests_test_cxx_preload_LDADD = $(CRITERION_LIBS) $(PTHREAD_LIBS) -ldl
tests_cxx_child_linked_SOURCES = tests/cxx_child.cc
# No sibling calls: the functions a report must name keep their frames.
CXX_CHILD_FLAGS = $(TESTS_CXXFLAGS) -fno-optimize-sibling-calls
tests_cxx_child_linked_CXXFLAGS = $(CXX_CHILD_FLAGS)
tests_cxx_child_linked_LDFLAGS = -no-install -export-dynamic
tests_cxx_child_linked_LDADD = libtlmalloc.la
tests_cxx_child_plain_SOURCES = tests/cxx_child.cc
tests_cxx_child_plain_CXXFLAGS = $(CXX_CHILD_FLAGS)
tests_cxx_child_plain_LDFLAGS = -export-dynamic

# Every test program, built and not run (check-all's debug part runs the
# suites itself): a list kept by hand there missed each new child program.
check-programs: $(check_PROGRAMS) libtlmalloc.la

check-local: $(check_PROGRAMS) libtlmalloc.la
	TL_SRCDIR='$(abs_top_srcdir)' TL_BUILDDIR='$(abs_top_builddir)' \
	  $(SHELL) '$(abs_top_srcdir)/tests/run.sh'

endif

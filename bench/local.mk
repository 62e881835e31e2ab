# Benchmarks (included from the top-level Makefile.am).
#
# The workload programs use only the standard malloc API and are NOT linked
# to tlmalloc: bench/run.sh puts each allocator under them with LD_PRELOAD.
# They are EXTRA_PROGRAMS, so a plain `make` does not build them; `make bench`
# and `make bench-quick` do, and then run bench/run.sh.  They are built with
# plain flags (not TL_CFLAGS, which is meant for the library).

bench_programs = \
	bench/fastpath bench/larson bench/server bench/prodcons bench/falseshare \
	bench/reallocchain bench/churn bench/large bench/memory bench/maxrss bench/cxxmap

EXTRA_PROGRAMS += $(bench_programs)
CLEANFILES += $(bench_programs)

BENCH_CFLAGS = -O2 -pthread
BENCH_LDADD = -ldl

bench_fastpath_SOURCES = bench/fastpath.c bench/bench.h
bench_fastpath_CFLAGS = $(BENCH_CFLAGS)
bench_fastpath_LDADD = $(BENCH_LDADD)
bench_larson_SOURCES = bench/larson.c bench/bench.h
bench_larson_CFLAGS = $(BENCH_CFLAGS)
bench_larson_LDADD = $(BENCH_LDADD)
bench_server_SOURCES = bench/larson.c bench/bench.h
bench_server_CFLAGS = $(BENCH_CFLAGS) -DBENCH_SERVER=1
bench_server_LDADD = $(BENCH_LDADD)
bench_prodcons_SOURCES = bench/prodcons.c bench/bench.h
bench_prodcons_CFLAGS = $(BENCH_CFLAGS)
bench_prodcons_LDADD = $(BENCH_LDADD)
bench_falseshare_SOURCES = bench/falseshare.c bench/bench.h
bench_falseshare_CFLAGS = $(BENCH_CFLAGS)
bench_falseshare_LDADD = $(BENCH_LDADD)
bench_reallocchain_SOURCES = bench/reallocchain.c bench/bench.h
bench_reallocchain_CFLAGS = $(BENCH_CFLAGS)
bench_reallocchain_LDADD = $(BENCH_LDADD)
bench_churn_SOURCES = bench/churn.c bench/bench.h
bench_churn_CFLAGS = $(BENCH_CFLAGS)
bench_churn_LDADD = $(BENCH_LDADD)
bench_large_SOURCES = bench/large.c bench/bench.h
bench_large_CFLAGS = $(BENCH_CFLAGS)
bench_large_LDADD = $(BENCH_LDADD)
bench_memory_SOURCES = bench/memory.c bench/bench.h
bench_memory_CFLAGS = $(BENCH_CFLAGS)
bench_memory_LDADD = $(BENCH_LDADD)
bench_maxrss_SOURCES = bench/maxrss.c
bench_maxrss_CFLAGS = $(BENCH_CFLAGS)
# The C++ workload: operator new and delete (std::map and std::string).
bench_cxxmap_SOURCES = bench/cxxmap.cc
bench_cxxmap_CXXFLAGS = -std=c++17 -O2 -pthread
bench_cxxmap_LDFLAGS = -pthread

EXTRA_DIST += bench/run.sh bench/main-job.sh bench/report.py bench/README.md bench/check-cost.sh bench/cxx.sh bench/cxxpairs.cc \
	bench/prof-cost.sh \
	bench/RESULTS.md bench/results/latest.md bench/results/ratios.png

# The results (latest.md, ratios.png) go to the source tree's bench/results,
# unless BENCH_OUT says otherwise.  BENCH_ARGS passes more options to run.sh.
BENCH_OUT = $(abs_top_srcdir)/bench/results
BENCH_RUN = $(SHELL) $(top_srcdir)/bench/run.sh \
	--bin-dir $(abs_top_builddir)/bench \
	--lib $(abs_top_builddir)/.libs/libtlmalloc.so \
	--out $(BENCH_OUT)

bench: libtlmalloc.la $(bench_programs)
	$(BENCH_RUN) $(BENCH_ARGS)

bench-quick: libtlmalloc.la $(bench_programs)
	$(BENCH_RUN) --quick $(BENCH_ARGS)

bench-main-job: libtlmalloc.la $(bench_programs)
	$(SHELL) $(top_srcdir)/bench/main-job.sh \
	--bin-dir $(abs_top_builddir)/bench \
	--lib $(abs_top_builddir)/.libs/libtlmalloc.so $(BENCH_ARGS)

# What the always-on pointer checks cost on the fast path.
bench-check-cost:
	bash $(top_srcdir)/bench/check-cost.sh

# The C++ operators: tlmalloc's against libstdc++'s into tlmalloc's malloc,
# and the peers (instructions per new+delete pair, and bench/cxxmap).
bench-cxx: libtlmalloc.la bench/cxxmap
	bash $(top_srcdir)/bench/cxx.sh --lib $(abs_top_builddir)/.libs/libtlmalloc.so \
	  --bin $(abs_top_builddir)/bench/cxxmap

# What the heap profiler costs: prof=0 against prof=1 (default rate).
bench-prof-cost: libtlmalloc.la
	bash $(top_srcdir)/bench/prof-cost.sh

.PHONY: bench bench-quick bench-main-job bench-check-cost bench-cxx bench-prof-cost

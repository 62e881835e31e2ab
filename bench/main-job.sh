#!/usr/bin/env bash
# The main job: tlmalloc preloaded under the synthetic multithreaded
# workloads of bench/ (not real programs: those are `make bench-clients`),
# side by side with glibc (and jemalloc, tcmalloc, mimalloc when installed).
#
#   bench/main-job.sh [--lib PATH] [--bin-dir DIR] [--allocators a,b,..]
#
# Runs larson (a server simulation, mostly local frees), server (the same
# with a working set larger than the cache, so that frees meet cold lines)
# and prodcons (every block freed by another thread) at 2 and 8 threads,
# each sized to take at least a second, in 5 interleaved rounds; counts
# instructions per malloc+free pair with callgrind; then prints the machine
# and the versions compared, the medians, the ratios to tlmalloc, peak RSS,
# and the workloads where tlmalloc loses.  Takes 6-8 minutes.
#
# It builds nothing of the library: it uses $TLMALLOC_LIB or
# ../.libs/libtlmalloc.so next to this folder (or --lib).  The workload
# programs are taken from --bin-dir, or compiled with gcc into
# bench/results/tmp/bin.  If tlmalloc is missing it runs the others and says
# so.  Exit status: 0, or 3 when an allocator failed a workload's checks.
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$BENCH_DIR/run.sh" --main-job "$@"

#!/usr/bin/env bash
# The main job: a short, real multithreaded workload with tlmalloc preloaded,
# side by side with glibc (and jemalloc, tcmalloc, mimalloc when installed).
#
#   bench/main-job.sh [--lib PATH] [--bin-dir DIR] [--allocators a,b,..]
#
# Runs larson, server (cache-cold) and prodcons at 2 and 8 threads (8 interleaved rounds each) and
# counts instructions per malloc+free pair with callgrind, then prints the
# medians, the ratios to tlmalloc and peak RSS.  Takes 1-2 minutes.
#
# It builds nothing of the library: it uses $TLMALLOC_LIB or
# ../.libs/libtlmalloc.so next to this folder (or --lib).  The workload
# programs are taken from --bin-dir, or compiled with gcc into
# bench/results/tmp/bin.  If tlmalloc is missing it runs the others and says
# so.  Exit status: 0, or 3 when an allocator failed a workload's checks.
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$BENCH_DIR/run.sh" --main-job "$@"

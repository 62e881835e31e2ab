#!/bin/sh
# Installs, from Debian's archive, everything tlmalloc's build, tests,
# benchmarks and client checks use. Run as root; safe to run again.
set -e
export DEBIAN_FRONTEND=noninteractive
PACKAGES="build-essential autoconf automake libtool pkg-config
  libcriterion-dev liburcu-dev
  valgrind clang libclang-rt-14-dev
  python3 sqlite3 memcached redis-server redis-tools
  hyperfine gnuplot-nox time procps
  libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "install-deps: installing$missing"
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
fi
# The servers are started by the client checks themselves, on free ports.
for s in memcached redis-server; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$s" >/dev/null 2>&1 || true; fi
done
echo "install-deps: all packages present"

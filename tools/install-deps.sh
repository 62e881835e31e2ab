#!/bin/sh
# Installs, from Debian's archive, everything tlmalloc's build, tests,
# benchmarks and client checks use. Run as root; safe to run again.
set -e
export DEBIAN_FRONTEND=noninteractive
PACKAGES="build-essential autoconf automake libtool pkg-config
  libcriterion-dev
  valgrind clang libclang-rt-14-dev
  python3 sqlite3 memcached redis-server redis-tools
  hyperfine gnuplot-nox time procps
  libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0
  google-perftools graphviz"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Another apt or dpkg (unattended-upgrades, a second install) may hold the
# package locks: wait for it rather than fail. apt-get install waits for
# dpkg's locks with DPkg::Lock::Timeout; apt-get update's lock on the package
# lists is not covered by that option (apt 2.6), so update is retried while
# its error is that lock, for as long as the same timeout.
lock_wait=600
apt_update() {
  waited=0
  err=$(mktemp)
  while ! LC_ALL=C apt-get -o DPkg::Lock::Timeout=$lock_wait update -q 2>"$err"; do
    if grep -q 'Could not get lock' "$err" && [ "$waited" -lt "$lock_wait" ]; then
      [ "$waited" -gt 0 ] || echo "install-deps: waiting for another apt to release its lock: $(grep -m1 'Could not get lock' "$err")"
      sleep 5
      waited=$((waited + 5))
    else
      cat "$err" >&2
      rm -f "$err"
      return 1
    fi
  done
  cat "$err" >&2
  rm -f "$err"
}
if [ -n "$missing" ]; then
  echo "install-deps: installing$missing"
  apt_update
  # shellcheck disable=SC2086
  apt-get -o DPkg::Lock::Timeout=$lock_wait install -y -q --no-install-recommends $missing
fi
# The servers are started by the client checks themselves, on free ports.
for s in memcached redis-server; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$s" >/dev/null 2>&1 || true; fi
done
echo "install-deps: all packages present"

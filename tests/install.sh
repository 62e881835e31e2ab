#!/bin/sh
# install.sh - `make install` into a DESTDIR under the build tree, then:
#  - pkg-config finds both .pc files there, and the flags of
#    tlmalloc-prefixed build a program that calls the tl_ functions and
#    runs against the installed library, with the system malloc in place;
#  - every tl_ function of include/tlmalloc.h has a manual page that
#    sources tlmalloc(3): `man -w NAME` finds it with MANPATH (without
#    man-db installed, the page's file and its .so line are checked).
#
# Usage: tests/install.sh [BUILDDIR [SRCDIR]]  (tests/run.sh runs it)
# Prints "PASS name" / "FAIL name: reason" lines and "install: N passed,
# N failed"; exits non-zero if a check failed.
set -u

builddir=$(cd "${1:-${TL_BUILDDIR:-.}}" && pwd)
srcdir=$(cd "${2:-${TL_SRCDIR:-$(dirname "$0")/..}}" && pwd)

passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
finish() {
    echo "install: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

dest=$(mktemp -d "$builddir/install-check.XXXXXX")
trap 'rm -rf "$dest"' EXIT INT TERM

if ! make -C "$builddir" install DESTDIR="$dest" >"$dest.log" 2>&1; then
    fail make_install "$(tail -n 20 "$dest.log")"
    rm -f "$dest.log"
    finish
fi
rm -f "$dest.log"
pass make_install

# ---- pkg-config ----------------------------------------------------------
if ! command -v pkg-config >/dev/null 2>&1; then
    fail pkg_config "pkg-config is not installed (tools/install-deps.sh installs it)"
    finish
fi
libdir=$(PKG_CONFIG_PATH="$builddir" pkg-config --variable=libdir tlmalloc-prefixed)
pcdir=$dest$libdir/pkgconfig
if [ -n "$libdir" ] && [ -f "$pcdir/tlmalloc-prefixed.pc" ] && [ -f "$pcdir/tlmalloc.pc" ]; then
    pass pc_files_installed
else
    fail pc_files_installed "no tlmalloc-prefixed.pc and tlmalloc.pc in $pcdir"
fi
# The sysroot puts DESTDIR in front of the .pc file's own paths.
flags=$(PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$dest" pkg-config --cflags --libs tlmalloc-prefixed)
case $flags in
*-ltlmalloc-prefixed*) pass pkg_config_flags ;;
*) fail pkg_config_flags "pkg-config --cflags --libs tlmalloc-prefixed: '$flags'" ;;
esac
cat >"$dest/prog.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tlmalloc.h>

int main(void)
{
    char *p = tl_malloc(100);
    if (!p)
        return 1;
    strcpy(p, "tlmalloc");
    size_t decay, len = sizeof decay;
    if (tl_ctl("decay_ms", &decay, &len, NULL, 0) != 0)
        return 2;
    if (tl_ctl("no.such.name", NULL, NULL, NULL, 0) == 0)
        return 3;
    Dl_info mine, sys;
    if (!dladdr((void *)tl_malloc, &mine) || !dladdr((void *)malloc, &sys) ||
        !strstr(mine.dli_fname, "libtlmalloc-prefixed") || strstr(sys.dli_fname, "tlmalloc"))
        return 4;
    tl_free(p);
    printf("ok %s\n", mine.dli_fname);
    return 0;
}
EOF
# shellcheck disable=SC2086
if ${CC:-cc} -o "$dest/prog" "$dest/prog.c" $flags -Wl,-rpath,"$dest$libdir" -ldl \
    >"$dest/cc.log" 2>&1; then
    out=$("$dest/prog" 2>&1)
    case $out in
    "ok $dest$libdir/"*) pass pkg_config_builds_and_runs ;;
    *) fail pkg_config_builds_and_runs "the program printed '$out' (status $?)" ;;
    esac
else
    fail pkg_config_builds_and_runs "$(head -c 600 "$dest/cc.log")"
fi

# ---- manual pages --------------------------------------------------------
page=$(find "$dest" -name tlmalloc.3 | head -n 1)
if [ -z "$page" ]; then
    fail man_pages "tlmalloc.3 was not installed"
    finish
fi
mandir=$(dirname "$(dirname "$page")")
names=$(sed -n 's/.*[ *]\(tl_[a-z0-9_]*\)(.*/\1/p' "$srcdir/include/tlmalloc.h" | sort -u)
missing=""
for n in $names; do
    f=$mandir/man3/$n.3
    if command -v man >/dev/null 2>&1; then
        # man-db follows the .so line and names the page it leads to
        found=$(MANPATH="$mandir" man -w "$n" 2>/dev/null)
        [ "$found" = "$f" ] || [ "$found" = "$mandir/man3/tlmalloc.3" ] || missing="$missing $n"
    fi
    grep -qx '\.so man3/tlmalloc\.3' "$f" 2>/dev/null || missing="$missing $n"
done
if [ -z "$names" ]; then
    fail man_every_tl_name "no tl_ function found in $srcdir/include/tlmalloc.h"
elif [ -z "$missing" ]; then
    pass "man_every_tl_name ($(echo "$names" | wc -l) names)"
else
    fail man_every_tl_name "no page sourcing tlmalloc(3) for:$missing"
fi
if command -v man >/dev/null 2>&1 && command -v groff >/dev/null 2>&1; then
    if MANPATH="$mandir" MANWIDTH=80 man -P cat tl_ctl 2>/dev/null | grep -q 'thread_cache_budget'; then
        pass man_tl_ctl_shows_tlmalloc_3
    else
        fail man_tl_ctl_shows_tlmalloc_3 "man tl_ctl does not show tlmalloc(3)'s text"
    fi
fi
finish

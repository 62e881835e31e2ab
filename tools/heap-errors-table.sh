#!/bin/sh
# heap-errors-table.sh - puts the table of the heap-error suite, as the
# last run of `tests/test_linked --filter 'heaperrors/table'` wrote it to
# BUILDDIR/tests/heap-errors-table.md, into docs/DESIGN.md between the
# heap-errors-table markers. Usage: tools/heap-errors-table.sh [BUILDDIR]
set -eu
srcdir=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-$srcdir}
table=$builddir/tests/heap-errors-table.md
design=$srcdir/docs/DESIGN.md
[ -s "$table" ] || { echo "heap-errors-table: no $table; run the heaperrors tests first" >&2; exit 1; }
tmp=$design.tmp.$$
awk -v table="$table" '
    /<!-- heap-errors-table begin -->/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
    /<!-- heap-errors-table end -->/ { skip = 0 }
    !skip { print }
' "$design" > "$tmp"
mv "$tmp" "$design"
echo "heap-errors-table: $design updated from $table"

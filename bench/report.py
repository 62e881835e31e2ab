#!/usr/bin/env python3
"""Tables for the tlmalloc benchmarks, from the work folder of bench/run.sh.

  report.py progress WORK CONFIG   one line of medians for one configuration
  report.py console WORK           print the tables
  report.py write WORK OUT         print the tables, write OUT/latest.md and
                                   WORK/ratios.gp (a gnuplot script that draws
                                   OUT/ratios.png from WORK/ratios.dat)

Standard library only.
"""
import glob
import json
import math
import os
import statistics
import sys


def read_tsv(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    rows.append(line.split("\t"))
    return rows


def read_meta(work):
    meta = {}
    path = os.path.join(work, "meta.env")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    return meta


class Data:
    def __init__(self, work):
        self.work = work
        self.meta = read_meta(work)
        self.allocs = [r[0] for r in read_tsv(os.path.join(work, "allocators.tsv"))]
        self.libs = {r[0]: r[1] for r in read_tsv(os.path.join(work, "allocators.tsv"))}
        self.configs = read_tsv(os.path.join(work, "configs.tsv"))  # id, w, t, cmd
        self.status = {}
        self.rss = {}
        for r in read_tsv(os.path.join(work, "checks.tsv")):
            cid, a, rss, st = r[0], r[1], r[2], r[3]
            if rss and rss != "0":
                self.rss[(cid, a)] = int(rss)
            if (cid, a) not in self.status or st != "ok":
                self.status[(cid, a)] = st
        self.times = {}
        self.cpu = {}  # user+system seconds, one mean per hyperfine call
        for path in glob.glob(os.path.join(work, "hf", "*.json")):
            cid = os.path.basename(path).split(".r")[0]
            try:
                with open(path) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue
            for res in doc.get("results", []):
                self.times.setdefault((cid, res["command"]), []).extend(res.get("times", []))
                if "user" in res and "system" in res:
                    self.cpu.setdefault((cid, res["command"]), []).append(res["user"] + res["system"])
        self.notes = []
        npath = os.path.join(work, "notes.txt")
        if os.path.exists(npath):
            with open(npath) as f:
                self.notes = [l.strip() for l in f if l.strip()]
        self.ref = "tlmalloc" if "tlmalloc" in self.allocs else ("glibc" if "glibc" in self.allocs else (self.allocs[0] if self.allocs else None))

    def ok(self, cid, a):
        return self.status.get((cid, a), "ok") == "ok" and (cid, a) in self.times

    def median(self, cid, a):
        if not self.ok(cid, a):
            return None
        return statistics.median(self.times[(cid, a)])

    def spread(self, cid, a):
        """Half the interquartile range relative to the median (None if < 4 runs)."""
        t = self.times.get((cid, a))
        if not t or len(t) < 4:
            return None
        m = statistics.median(t)
        q = statistics.quantiles(t, n=4)
        return (q[2] - q[0]) / 2 / m if m > 0 else None

    def cpu_median(self, cid, a):
        if not self.ok(cid, a) or (cid, a) not in self.cpu:
            return None
        return statistics.median(self.cpu[(cid, a)])

    def ratio(self, cid, a, cpu=False):
        f = self.cpu_median if cpu else self.median
        m, r = f(cid, a), f(cid, self.ref)
        if m is None or r is None or r <= 0:
            return None
        return m / r

    def geomean(self, a, threads=None, cpu=False):
        vals = []
        for c in self.configs:
            if threads is not None and int(c[2]) not in threads:
                continue
            r = self.ratio(c[0], a, cpu)
            if r is not None and r > 0:
                vals.append(math.log(r))
        if not vals:
            return None
        return math.exp(sum(vals) / len(vals)), len(vals)

    def callgrind(self):
        rows = {}
        for r in read_tsv(os.path.join(self.work, "callgrind.tsv")):
            a = r[0]
            try:
                n1, i1, n2, i2 = int(r[1]), int(r[2]), int(r[3]), int(r[4])
                rows[a] = (i2 - i1) / (n2 - n1)
            except (ValueError, IndexError):
                rows[a] = None
        return rows

    def memory(self):
        rows = []
        for r in read_tsv(os.path.join(self.work, "memory.tsv")):
            a, line = r[0], r[1]
            kv = {}
            if line.startswith("FAIL"):
                kv["fail"] = line
            else:
                for tok in line.split():
                    if "=" in tok:
                        k, v = tok.split("=", 1)
                        kv[k] = v
            rows.append((a, kv))
        return rows


def fmt_time(s):
    if s is None:
        return "-"
    if s >= 10:
        return "%.1f" % s
    if s >= 1:
        return "%.2f" % s
    return "%.3f" % s


def fmt_ratio(r):
    return "-" if r is None else "%.2f" % r


def mib(kib):
    try:
        return "%.1f" % (int(kib) / 1024.0)
    except (TypeError, ValueError):
        return "-"


def text_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    out = []
    line = "  ".join(str(h).ljust(w) if i == 0 else str(h).rjust(w) for i, (h, w) in enumerate(zip(header, widths)))
    out.append(line)
    out.append("-" * len(line))
    for r in rows:
        out.append("  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def md_table(header, rows, align_first_left=True):
    out = ["| " + " | ".join(header) + " |"]
    out.append("|" + "|".join([":---" if (i == 0 and align_first_left) else "---:" for i in range(len(header))]) + "|")
    for r in rows:
        out.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(out)


def cell_time(d, cid, a, md):
    st = d.status.get((cid, a), "ok")
    if st != "ok":
        return "FAIL"
    m = d.median(cid, a)
    if m is None:
        return "-"
    s = fmt_time(m)
    sp = d.spread(cid, a)
    if sp is not None and sp >= 0.10:
        s += " ±%d%%" % round(sp * 100)
    if md:
        best = min((d.median(cid, b) for b in d.allocs if d.median(cid, b) is not None), default=None)
        if best is not None and m == best and len(d.allocs) > 1:
            s = "**" + s + "**"
    return s


def tables(d, md):
    """Returns a list of (title, header, rows)."""
    out = []
    allocs = d.allocs
    label = lambda c: c[0]
    if not d.configs:
        return out + memory_and_callgrind_tables(d)
    # medians
    rows = [[label(c)] + [cell_time(d, c[0], a, md) for a in allocs] for c in d.configs]
    out.append(("Median wall time (seconds; ±: half the interquartile range, shown when 10%% or more%s)" % ("; fastest in bold" if md else ""),
                ["workload"] + allocs, rows))
    # ratios
    others = [a for a in allocs]
    rows = [[label(c)] + [fmt_ratio(d.ratio(c[0], a)) if d.status.get((c[0], a), "ok") == "ok" else "FAIL" for a in others]
            for c in d.configs]
    g = [d.geomean(a) for a in others]
    rows.append(["geometric mean"] + [fmt_ratio(x[0]) if x else "-" for x in g])
    gm = [d.geomean(a, threads={2, 8}) for a in others]
    if any(gm):
        rows.append(["geomean, 2 and 8 threads"] + [fmt_ratio(x[0]) if x else "-" for x in gm])
    out.append(("Time relative to %s (above 1: %s is faster)" % (d.ref, d.ref), ["workload"] + others, rows))
    # CPU time
    if d.cpu:
        rows = [[label(c)] + [fmt_ratio(d.ratio(c[0], a, cpu=True)) if d.status.get((c[0], a), "ok") == "ok" else "FAIL"
                              for a in others] for c in d.configs]
        g = [d.geomean(a, cpu=True) for a in others]
        rows.append(["geometric mean"] + [fmt_ratio(x[0]) if x else "-" for x in g])
        out.append(("CPU time (user+system) relative to %s: less sensitive than wall time to other jobs on the "
                    "machine, blind to time spent waiting" % d.ref, ["workload"] + others, rows))
    # peak RSS
    rows = [[label(c)] + [mib(d.rss.get((c[0], a))) for a in allocs] for c in d.configs]
    out.append(("Peak RSS (MiB, ru_maxrss of one checked run)", ["workload"] + allocs, rows))
    return out + memory_and_callgrind_tables(d)


def memory_and_callgrind_tables(d):
    out = []
    allocs = d.allocs
    # callgrind
    cg = d.callgrind()
    if cg:
        loop = cg.get("null")
        rows = []
        for a in allocs:
            if a in cg:
                v = cg[a]
                rows.append([a, "-" if v is None else "%.1f" % v,
                             "-" if (v is None or loop is None) else "%.1f" % (v - loop)])
        if loop is not None:
            rows.append(["(the loop alone)", "%.1f" % loop, "0"])
        out.append(("Instructions per malloc+free pair (callgrind, fastpath pairs mode, 64..71 bytes; "
                    "difference of two runs, so start-up cancels out)",
                    ["allocator", "per pair", "minus the loop"], rows))
    # memory
    mem = d.memory()
    if mem:
        rows = []
        for a, kv in mem:
            if "fail" in kv:
                rows.append([a, "FAIL"] + ["-"] * 9)
                continue
            notrim = kv.get("trim_from") == "not-called"
            idle = kv.get("mode") == "idle"
            try:
                over = "%+.0f%%" % (100.0 * (float(kv["light_kib"]) / float(kv["before_kib"]) - 1))
            except (KeyError, ValueError, ZeroDivisionError):
                over = "-"
            rows.append([a + (" (idle 2 s)" if idle else " (no trim)" if notrim else ""), mib(kv.get("cold_kib")), mib(kv.get("before_kib")),
                         mib(kv.get("peak_kib")), mib(kv.get("freed_kib")),
                         "-" if notrim else mib(kv.get("trimmed_kib")), mib(kv.get("light_kib")), over,
                         mib(kv.get("exited_kib")), kv.get("alloc_s", "-"), kv.get("trim_from", "-")])
        out.append(("memory workload: RSS in MiB (2 threads: 0.5 s of light work, then 1 GiB in small and "
                    "large blocks, freed, then 1 s of light work; 'no trim' rows skip malloc_trim; 'idle' "
                    "rows skip it too and make no allocator call for 2 s after the free; "
                    "'vs before' compares the RSS after the light work (or idle wait) with the pre-peak level)",
                    ["allocator", "cold", "before peak", "peak", "after free", "after trim", "after light / idle",
                     "vs before", "threads exited", "alloc s", "malloc_trim from"], rows))
    return out


def failures(d):
    lines = []
    for (cid, a), st in sorted(d.status.items()):
        if st != "ok":
            lines.append("%s under %s: %s" % (cid, a, st))
    for a, kv in d.memory():
        if "fail" in kv:
            lines.append("memory under %s: %s" % (a, kv["fail"]))
    return lines


def machine_lines(d):
    """What the run was: when, where, and which versions it compared."""
    m = d.meta
    lines = ["date: %s" % m.get("date", "?"),
             "CPUs (nproc): %s; model: %s" % (m.get("nproc", "?"), m.get("cpu", "?")),
             "memory: %s" % m.get("memory", "?"),
             "kernel: %s" % m.get("kernel", "?"),
             "glibc: %s" % m.get("glibc", "?")]
    pk = ", ".join("%s %s" % (k[4:], v) for k, v in sorted(m.items()) if k.startswith("pkg_"))
    lines.append("allocator packages: %s" % (pk or "none found by dpkg"))
    lines.append("hyperfine: %s" % m.get("hyperfine", "?"))
    if "tlmalloc" in d.allocs:
        lines.append("tlmalloc: %s%s%s" % (d.libs.get("tlmalloc", "?"),
                                          (" (revision %s)" % m["tlmalloc_rev"]) if m.get("tlmalloc_rev") else "",
                                          ("; built %s" % m["tlmalloc_build"]) if m.get("tlmalloc_build") else ""))
    else:
        lines.append("tlmalloc: **not measured** (library not found); ratios are to %s" % d.ref)
    return lines


def losses(d, cpu=False):
    """The workloads where some allocator beat the reference, worst first:
    (workload, fastest other allocator, its time over the reference's)."""
    if d.ref is None:
        return []
    out = []
    for c in d.configs:
        best = None
        for a in d.allocs:
            r = d.ratio(c[0], a, cpu) if a != d.ref else None
            # below half a per cent is a tie, not a loss
            if r is not None and r < 0.995 and (best is None or r < best[1]):
                best = (a, r)
        if best:
            out.append((c[0], best[0], best[1]))
    return sorted(out, key=lambda x: x[2])


def loss_lines(d):
    """The losses, said as plainly as the wins: one line per workload."""
    lines = []
    for cpu, what in ((False, "wall time"), (True, "CPU time")):
        if cpu and not d.cpu:
            continue
        lost = losses(d, cpu)
        n = sum(1 for c in d.configs if d.median(c[0], d.ref) is not None)
        lines.append("%s: %s is beaten on %d of %d workloads%s" % (what, d.ref, len(lost), n, ":" if lost else "."))
        for cid, a, r in lost:
            lines.append("  %s: %s is %.0f%% faster (%s takes %.2fx its time)" % (cid, a, (1 / r - 1) * 100, d.ref, 1 / r))
    return lines


def short_runs(d, floor=1.0):
    """Workloads whose fastest allocator took less than floor seconds."""
    out = []
    for c in d.configs:
        ms = [d.median(c[0], a) for a in d.allocs if d.median(c[0], a) is not None]
        if ms and min(ms) < floor:
            out.append("%s (%.2f s)" % (c[0], min(ms)))
    return out


def print_console(d):
    print()
    print("Run of %s mode: %s round(s) of %s run(s) per allocator, interleaved" %
          (d.meta.get("mode", "?"), d.meta.get("rounds", "?"), d.meta.get("runs", "?")))
    for l in machine_lines(d):
        print("  " + l)
    for c in d.configs:
        print("  %s: %s" % (c[0], c[3]))
    for title, header, rows in tables(d, md=False):
        print()
        print(title)
        print(text_table(header, rows))
    print()
    print("Where %s loses (the fastest other allocator on each such workload)" % d.ref)
    for l in loss_lines(d):
        print(l)
    sr = short_runs(d)
    if sr:
        print("note: runs shorter than 1 s, where start-up and noise weigh more: " + ", ".join(sr))
    fl = failures(d)
    if fl or d.notes:
        print()
    for n in d.notes:
        print(n)
    for l in fl:
        print("FAIL: " + l)


def write_md(d, out):
    m = d.meta
    lines = ["# tlmalloc benchmarks: latest run", ""]
    lines.append("Written by `bench/run.sh` (%s mode: %s round(s) of %s run(s) per allocator, allocators interleaved "
                 "round by round; the median of all runs is shown)." % (m.get("mode", "?"), m.get("rounds", "?"), m.get("runs", "?")))
    lines.append("")
    lines.append("## Machine")
    lines.append("")
    lines.extend("- " + l for l in machine_lines(d))
    lines.append("")
    lines.append("Workloads and their arguments:")
    lines.append("")
    for c in d.configs:
        lines.append("- `%s`: `%s`" % (c[0], c[3]))
    lines.append("")
    lines.append("This is a virtual machine: timings move by 10% or more between runs; compare allocators within this "
                 "run, by the ratios.")
    for title, header, rows in tables(d, md=True):
        lines.append("")
        lines.append("## " + title)
        lines.append("")
        lines.append(md_table(header, rows))
    lines.append("")
    lines.append("## Where %s loses" % d.ref)
    for l in loss_lines(d):
        lines.extend(["- " + l.strip()] if l.startswith("  ") else ["", l, ""])
    lines.append("")
    lines.append("![time relative to %s](ratios.png)" % d.ref)
    fl = failures(d)
    if fl or d.notes:
        lines.append("")
        lines.append("## Notes and failures")
        lines.append("")
        for n in d.notes:
            lines.append("- " + n)
        for l in fl:
            lines.append("- FAIL: " + l)
    lines.append("")
    with open(os.path.join(out, "latest.md"), "w") as f:
        f.write("\n".join(lines))


def write_chart(d, out):
    others = [a for a in d.allocs if a != d.ref]
    dat = os.path.join(d.work, "ratios.dat")
    with open(dat, "w") as f:
        f.write("# config " + " ".join(others) + "\n")
        for c in d.configs:
            vals = []
            for a in others:
                r = d.ratio(c[0], a)
                vals.append("%.4f" % r if r is not None else "NaN")
            f.write("%s %s\n" % (c[0], " ".join(vals)))
    png = os.path.join(out, "ratios.png")
    k = max(1, len(others))
    width = 0.8 / k
    tics = ", ".join("'%s' %d" % (c[0], i) for i, c in enumerate(d.configs))
    gp = [
        "set terminal pngcairo size 1500,650 font 'sans,10'",
        "set output '%s'" % png,
        "set title 'Wall time of each allocator relative to %s (medians; above 1: %s is faster)'" % (d.ref, d.ref),
        "set style fill solid 0.85 border -1",
        "set logscale y 2",
        "set yrange [0.125:8]",
        "set ytics ('1/8' 0.125, '1/4' 0.25, '1/2' 0.5, '1' 1, '2' 2, '4' 4, '8' 8)",
        "set grid ytics",
        "set xrange [-0.6:%f]" % (len(d.configs) - 0.4),
        "set xtics (%s) rotate by -40 scale 0 font 'sans,9'" % tics,
        "set key top left",
        "set datafile missing 'NaN'",
        "set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb 'black' front",
        "set bmargin 8",
    ]
    if others:
        plots = []
        for i, a in enumerate(others):
            off = (i - (k - 1) / 2.0) * width
            # boxxyerror: x y xlow xhigh ylow yhigh -- bars grow from 1
            plots.append("'%s' using ($0+%.4f):(1):($0+%.4f):($0+%.4f):(1):%d with boxxyerror title '%s'"
                         % (dat, off, off - width / 2, off + width / 2, i + 2, a))
        gp.append("plot " + ", \\\n     ".join(plots))
    else:
        gp.append("set label 'only one allocator was measured' at graph 0.4, graph 0.5")
        gp.append("plot 1 notitle")
    with open(os.path.join(d.work, "ratios.gp"), "w") as f:
        f.write("\n".join(gp) + "\n")


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 1
    cmd, work = argv[1], argv[2]
    d = Data(work)
    if cmd == "progress":
        cid = argv[3]
        parts = []
        for a in d.allocs:
            st = d.status.get((cid, a), "ok")
            if st != "ok":
                parts.append("%s FAIL" % a)
            else:
                m = d.median(cid, a)
                r = d.ratio(cid, a)
                parts.append("%s %ss%s" % (a, fmt_time(m), (" (x%.2f)" % r) if (r is not None and a != d.ref) else ""))
        print(", ".join(parts))
        return 0
    if cmd == "console":
        print_console(d)
        return 0
    if cmd == "write":
        out = argv[3]
        os.makedirs(out, exist_ok=True)
        print_console(d)
        write_md(d, out)
        write_chart(d, out)
        return 0
    sys.stderr.write(__doc__)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

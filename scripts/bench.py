#!/usr/bin/env python3
"""The driver of scripts/bench (which builds, checks the options and runs this
with them as arguments): boots the guests, runs the benchmarks, writes the
results directory. See docs/benchmarking.md."""
import base64, gzip, json, math, os, re, signal, subprocess, sys, threading, time

(out, elf, hvctl, imgs, kernel, hvargs, modes, timeout,
 iterations, mmio_iterations, replot) = sys.argv[1:]
timeout = int(timeout)
modes = [m for m in modes.split(",") if m]

KINDS = ["vmmcall", "cpuid", "io", "mmio", "rdtsc"]
WHAT = {
    "vmmcall": "VMMCALL PING",
    "cpuid": "CPUID 0x40000000",
    "io": "in al,0xE9",
    "mmio": "MMIO read (NPF)",
    "rdtsc": "RDTSC pair (no exit)",
}
# The founders' targets, in icount ticks (median).
TARGETS = {"vmmcall": 100, "cpuid": 120, "io": 300}
MATURE = "~2,500-2,900"
READY = "CERTIVISOR-GUEST-READY"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The guest image: the standard initramfs plus an appended cpio archive that
# holds /bin/hvctl. Linux unpacks concatenated archives in order, and a later
# file replaces an earlier one, so guest-images/out/ stays untouched.
# ---------------------------------------------------------------------------
def cpio_entry(ino, name, mode, data=b""):
    name_b = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 2 if mode & 0o040000 else 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0]
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
    pad = lambda n: b"\0" * ((4 - n % 4) % 4)
    return hdr + name_b + pad(len(hdr) + len(name_b)) + data + pad(len(data))


def bench_initramfs():
    base = open(os.path.join(imgs, "initramfs.cpio"), "rb").read()
    base += b"\0" * ((512 - len(base) % 512) % 512)
    overlay = (cpio_entry(900001, "bin", 0o040755)
               + cpio_entry(900002, "bin/hvctl", 0o100755, open(hvctl, "rb").read())
               + cpio_entry(0, "TRAILER!!!", 0))
    path = os.path.join(out, "initramfs-bench.cpio")
    with open(path, "wb") as f:
        f.write(base + overlay)
    return path


# ---------------------------------------------------------------------------
# One QEMU run driven over the serial console.
# ---------------------------------------------------------------------------
class Timeout(Exception):
    pass


class Guest:
    def __init__(self, mode, initrd):
        kimg = os.path.join(imgs, "bzImage" if kernel == "bzimage" else "vmlinux")
        cmdline = open(os.path.join(imgs, "cmdline.txt")).read().strip()
        esc = lambda s: s.replace(",", ",,")
        args = ["qemu-system-x86_64", "-machine", "q35", "-cpu", "qemu64,+svm,+npt", "-m", "1G",
                "-display", "none", "-no-reboot", "-monitor", "none", "-serial", "stdio",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-kernel", elf, "-append", hvargs,
                "-initrd", f"{esc(kimg)} {esc(cmdline)},{esc(initrd)}"]
        if mode == "icount":
            args += ["-icount", "shift=0,sleep=off"]
        self.cmd = args
        self.logf = open(os.path.join(out, f"serial-{mode}.log"), "wb")
        self.buf = bytearray()
        self.seen = 0
        self.eof = False
        self.cv = threading.Condition()
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        while True:
            data = self.proc.stdout.read1(65536)
            if not data:
                break
            self.logf.write(data)
            self.logf.flush()
            with self.cv:
                self.buf += data.replace(b"\r", b"")  # the tty sends CR LF
                self.cv.notify_all()
        with self.cv:
            self.eof = True
            self.cv.notify_all()

    def expect(self, needle, secs):
        """Output up to and including `needle`, after what was consumed."""
        deadline = time.monotonic() + secs
        nb = needle.encode()
        with self.cv:
            while True:
                pos = self.buf.find(nb, self.seen)
                if pos >= 0:
                    text = self.buf[self.seen:pos + len(nb)]
                    self.seen = pos + len(nb)
                    return text.decode("utf-8", "replace")
                if self.eof:
                    raise Timeout(f"QEMU exited (status {self.proc.wait()}) before {needle!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(f"no {needle!r} within {secs} s")
                self.cv.wait(min(left, 1.0))

    def send(self, text):
        # In small pieces: the guest's UART has a 16-byte receive FIFO.
        data = text.encode()
        for i in range(0, len(data), 8):
            self.proc.stdin.write(data[i:i + 8])
            self.proc.stdin.flush()
            time.sleep(0.01)

    def run(self, cmd, secs, tag):
        """Runs a shell command; returns (its output, its exit status)."""
        # The split quotes keep the echoed command line from matching.
        self.send(f"echo @@B\"\"EGIN-{tag}; {cmd}; echo @@E\"\"ND-{tag} rc=$?\n")
        # The shell echoes and starts the command at once; a guest that
        # does not has stopped taking input (don't wait the long timeout).
        self.expect(f"@@BEGIN-{tag}\n", min(secs, 120))
        text = self.expect(f"@@END-{tag} rc=", secs)
        rc_line = self.expect("\n", 30)
        # Type nothing before the next prompt: ash's line editor drops
        # input that arrives while it starts up.
        self.expect("# ", 60)
        try:
            rc = int(rc_line.strip())
        except ValueError:
            rc = None
        return text[: -len(f"@@END-{tag} rc=")], rc

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self.logf.close()


BENCH_RE = re.compile(r"^BENCH (\S+) min=(\d+) median=(\d+) p99=(\d+) n=(\d+)", re.M)
HIST_RE = re.compile(r"^HIST (\S+)((?: \d+:\d+)*)", re.M)
B64_RE = re.compile(r"^[A-Za-z0-9+/=]+$")


def run_mode(mode, initrd):
    res = {"mode": mode, "bench": {}, "hist": {}, "samples": None, "error": None}
    g = Guest(mode, initrd)
    t0 = time.monotonic()
    try:
        log(f"{mode}: booting ({' '.join(g.cmd)})")
        g.expect(READY, timeout)
        g.expect("# ", timeout)
        res["boot_s"] = round(time.monotonic() - t0, 1)
        log(f"{mode}: shell after {res['boot_s']} s; running hvctl")
        text, rc = g.run("hvctl version && hvctl info", timeout, "info")
        open(os.path.join(out, f"info-{mode}.txt"), "w").write(text)
        if rc != 0:
            raise RuntimeError(f"hvctl version/info failed (status {rc}):\n{text}")
        opts = ""
        if iterations:
            opts += f" --iterations {iterations}"
        if mmio_iterations:
            opts += f" --mmio-iterations {mmio_iterations}"
        t1 = time.monotonic()
        text, rc = g.run(f"hvctl bench{opts} --histogram /tmp/h.txt", timeout, "bench")
        res["bench_s"] = round(time.monotonic() - t1, 1)
        open(os.path.join(out, f"bench-{mode}.txt"), "w").write(text)
        log(f"{mode}: hvctl bench took {res['bench_s']} s (status {rc})")
        for k, mn, med, p99, n in BENCH_RE.findall(text):
            res["bench"][k] = {"min": int(mn), "median": int(med), "p99": int(p99), "n": int(n)}
        for k, rest in HIST_RE.findall(text):
            res["hist"][k] = {int(b): int(c) for b, c in (p.split(":") for p in rest.split())}
        text, rc = g.run("hvctl stats", timeout, "stats")
        open(os.path.join(out, f"stats-{mode}.txt"), "w").write(text)
        text, rc = g.run("gzip -c /tmp/h.txt | base64", timeout, "samples")
        try:
            blob = "".join(l.strip() for l in text.splitlines() if B64_RE.match(l.strip()))
            raw = gzip.decompress(base64.b64decode(blob)).decode()
            open(os.path.join(out, f"samples-{mode}.txt"), "w").write(raw)
            samples = {}
            for line in raw.splitlines():
                k, c = line.split()
                samples.setdefault(k, []).append(int(c))
            res["samples"] = samples
        except Exception as e:  # the HIST lines still give the histogram
            log(f"{mode}: could not recover the raw samples ({e}); using hvctl's HIST lines")
        g.send("reboot -f\n")
        try:
            g.proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    except (Timeout, RuntimeError, OSError) as e:
        res["error"] = str(e)
        log(f"{mode}: FAILED: {e} (serial log: {g.logf.name})")
    finally:
        g.stop()
    return res


# ---------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------
def table(results):
    by = {r["mode"]: r for r in results}
    cols = [m for m in ("icount", "tcg") if m in by]
    lines = ["Certivisor exit round trips, TSC cycles (icount: 1 tick = 1 guest instruction)", ""]
    head = f"{'kind':<8} {'what':<21}"
    for m in cols:
        head += f" | {m + ' min':>11} {'median':>8} {'p99':>8}"
    head += f" | {'target (icount median)':<24} | mature HV"
    lines += [head, "-" * len(head)]
    for k in KINDS:
        row = f"{k:<8} {WHAT[k]:<21}"
        for m in cols:
            b = by[m]["bench"].get(k)
            row += (f" | {b['min']:>11} {b['median']:>8} {b['p99']:>8}" if b
                    else f" | {'-':>11} {'-':>8} {'-':>8}")
        t = TARGETS.get(k)
        verdict = ""
        if t is not None:
            b = by.get("icount", {}).get("bench", {}).get(k)
            verdict = f"<= {t}" + ("" if not b else (" met" if b["median"] <= t else " MISSED"))
        row += f" | {verdict:<24} | {MATURE if t else ''}"
        lines.append(row)
    lines += ["",
              "Every number includes the timing sequence itself; the rdtsc row measures it.",
              f"A mature hypervisor needs {MATURE} ticks per exit on the same emulated CPU.",
              "Targets are for icount ticks only; plain-TCG cycles follow the host's wall clock."]
    for r in results:
        if r["error"]:
            lines.append(f"{r['mode']}: FAILED: {r['error']}")
    return "\n".join(lines) + "\n"


def buckets_of(r):
    """{kind: {log2 bucket: count}} from the raw samples, else hvctl's HIST."""
    if r["samples"]:
        h = {}
        for k, v in r["samples"].items():
            d = h.setdefault(k, {})
            for c in v:
                b = 0 if c < 2 else c.bit_length() - 1
                d[b] = d.get(b, 0) + 1
        return h
    return r["hist"]


COLORS = {"vmmcall": "#1f77b4", "cpuid": "#ff7f0e", "io": "#2ca02c", "mmio": "#d62728", "rdtsc": "#7f7f7f"}


def human(n):
    for div, suf in ((1 << 30, "G"), (1 << 20, "M"), (1 << 10, "k")):
        if n >= div:
            return f"{n // div}{suf}"
    return str(n)


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg(results):
    W, PH, ML, MR, MT, MB = 1000, 330, 70, 250, 40, 60
    panels = [r for r in results if buckets_of(r)]
    H = 50 + PH * max(1, len(panels))
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="16">'
         'Certivisor exit round trips: log2 histogram of TSC cycles per sample</text>']
    if not panels:
        o.append(f'<text x="{W / 2}" y="60" text-anchor="middle">no data</text>')
    for pi, r in enumerate(panels):
        h = buckets_of(r)
        kinds = [k for k in KINDS if k in h] + sorted(k for k in h if k not in KINDS)
        bs = [b for k in kinds for b in h[k]]
        lo, hi = min(bs), max(bs)
        nb = hi - lo + 1
        cmax = max(c for k in kinds for c in h[k].values())
        top = 10 ** (int(math.log10(cmax)) + 1)  # a decade above the tallest bar
        y0 = 50 + pi * PH
        px, pw, py, ph = ML, W - ML - MR, y0 + MT, PH - MT - MB
        ylog = lambda c: py + ph - ph * (math.log10(c) - math.log10(0.5)) / (math.log10(top) - math.log10(0.5))
        title = ("-icount shift=0,sleep=off (1 tick = 1 instruction)" if r["mode"] == "icount"
                 else "plain TCG (TSC from the host clock)")
        o.append(f'<text x="{px}" y="{y0 + 24}" font-size="14" font-weight="bold">{esc(r["mode"])}: {esc(title)}</text>')
        o.append(f'<rect x="{px}" y="{py}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
        # y axis: decades
        d = 1
        while d <= top:
            y = ylog(d)
            o.append(f'<line x1="{px}" y1="{y:.1f}" x2="{px + pw}" y2="{y:.1f}" stroke="#ddd"/>')
            o.append(f'<text x="{px - 6}" y="{y + 4:.1f}" text-anchor="end">{d}</text>')
            d *= 10
        o.append(f'<text transform="translate({px - 50},{py + ph / 2}) rotate(-90)" '
                 'text-anchor="middle">samples (log scale)</text>')
        # x axis: one slot per bucket, one bar per kind in each slot
        slot = pw / nb
        bw = slot * 0.8 / len(kinds)
        step = max(1, math.ceil((nb + 1) / 14))  # keep the labels apart
        for i in range(nb + 1):
            x = px + i * slot
            o.append(f'<line x1="{x:.1f}" y1="{py + ph}" x2="{x:.1f}" y2="{py + ph + 5}" stroke="#444"/>')
            if i % step == 0:
                o.append(f'<text x="{x:.1f}" y="{py + ph + 18}" text-anchor="middle">{human(1 << (lo + i))}</text>')
        o.append(f'<text x="{px + pw / 2}" y="{py + ph + 38}" text-anchor="middle">'
                 'TSC cycles (bucket b = [2^b, 2^(b+1)); tick labels are bucket edges)</text>')
        for ki, k in enumerate(kinds):
            for b, c in sorted(h[k].items()):
                if c <= 0:
                    continue
                x = px + (b - lo) * slot + slot * 0.1 + ki * bw
                y = ylog(c)
                o.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bw - 1, 1):.1f}" height="{py + ph - y:.1f}" '
                         f'fill="{COLORS.get(k, "#9467bd")}"><title>{esc(k)}: {c} samples in '
                         f'[{1 << b}, {1 << (b + 1)}) cycles</title></rect>')
        # targets (icount only): dashed lines at their cycle counts
        if r["mode"] == "icount":
            for k, t in TARGETS.items():
                if k not in kinds:
                    continue
                x = px + (math.log2(t) - lo) * slot
                if px <= x <= px + pw:
                    o.append(f'<line x1="{x:.1f}" y1="{py}" x2="{x:.1f}" y2="{py + ph}" '
                             f'stroke="{COLORS[k]}" stroke-dasharray="4,3"><title>{k} target: '
                             f'median &lt;= {t} ticks</title></line>')
        # legend: medians, and the targets (dashed lines, icount only)
        for ki, k in enumerate(kinds):
            ly = py + 4 + ki * 20
            med = r["bench"].get(k, {}).get("median")
            o.append(f'<rect x="{px + pw + 12}" y="{ly}" width="12" height="12" fill="{COLORS.get(k, "#9467bd")}"/>')
            o.append(f'<text x="{px + pw + 30}" y="{ly + 10}">{esc(k)}'
                     f'{f" median {med}" if med is not None else ""}'
                     f'{f" (target {TARGETS[k]})" if r["mode"] == "icount" and k in TARGETS else ""}</text>')
        if r["mode"] == "icount":
            ly = py + 4 + len(kinds) * 20
            o.append(f'<line x1="{px + pw + 12}" y1="{ly + 6}" x2="{px + pw + 24}" y2="{ly + 6}" '
                     'stroke="#444" stroke-dasharray="4,3"/>')
            o.append(f'<text x="{px + pw + 30}" y="{ly + 10}">target for the median</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def load(mode_result):
    """An earlier run's result, with its raw samples if they were saved."""
    r = dict(mode_result)
    r["hist"] = {k: {int(b): c for b, c in v.items()} for k, v in r.get("hist", {}).items()}
    r["samples"] = None
    path = os.path.join(out, f"samples-{r['mode']}.txt")
    if os.path.exists(path):
        r["samples"] = {}
        for line in open(path):
            k, c = line.split()
            r["samples"].setdefault(k, []).append(int(c))
    return r


def on_signal(sig, frame):
    raise KeyboardInterrupt


if replot == "1":
    old = json.load(open(os.path.join(out, "summary.json")))
    kernel, hvargs = old.get("kernel", kernel), old.get("hv_args", hvargs)
    results = [load(r) for r in old["modes"]]
else:
    initrd = bench_initramfs()
    results = []
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for m in modes:
            results.append(run_mode(m, initrd))
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)

summary = table(results)
print()
print(summary, end="")
open(os.path.join(out, "summary.txt"), "w").write(summary)
json.dump({"kernel": kernel, "hv_args": hvargs,
           "targets_icount": TARGETS, "mature_hypervisor_ticks": MATURE,
           "modes": [{k: v for k, v in r.items() if k != "samples"} for r in results]},
          open(os.path.join(out, "summary.json"), "w"), indent=1, sort_keys=True)
open(os.path.join(out, "histogram.svg"), "w").write(svg(results))
print(f"\nbench: wrote {out}/summary.txt, summary.json, histogram.svg and the raw data")
sys.exit(0 if any(r["bench"] for r in results) else 1)

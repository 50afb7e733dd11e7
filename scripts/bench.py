#!/usr/bin/env python3
"""The driver of scripts/bench (which builds, checks the options and runs this
with them as arguments): boots the guests, runs the benchmarks, writes the
results directory. See docs/benchmarking.md."""
import base64, gzip, json, math, os, re, signal, subprocess, sys, threading, time

(out, elf, hvctl, imgs, kernel, hvargs, modes, timeout,
 iterations, mmio_iterations, replot, vs_kvm, cpus, smp32, ipi_iterations, ipi_only) = sys.argv[1:]
timeout = int(timeout)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
modes = [m for m in modes.split(",") if m]
vs_kvm = vs_kvm == "1"
cpus = [c for c in cpus.split(",") if c]
ipi_only = ipi_only == "1"

# The kinds of `hvctl bench`, named as common VM-exit microbenchmarks name
# them (mov_cr8 is not among them: hvctl runs at CPL 3, where it faults).
KINDS = ["cpuid", "vmcall", "port_read", "port_write", "mmio_read", "mmio_write", "rdtsc"]
WHAT = {
    "cpuid": "CPUID 0x40000000",
    "vmcall": "VMMCALL PING",
    "port_read": "in al,0xE9",
    "port_write": "out 0x80,al",
    "mmio_read": "MMIO read (NPF)",
    "mmio_write": "MMIO write (NPF)",
    "rdtsc": "RDTSC pair (no exit)",
}
# The founders' targets (issue 14), in icount ticks (median).
TARGETS = {"vmcall": 100, "cpuid": 120, "port_read": 300, "mmio_read": 800}
MATURE = "~2,500-2,900"
READY = "CERTIVISOR-GUEST-READY"
DEFAULT_CPU = "qemu64"
HV_NAME = {"certivisor": "Certivisor", "kvm": "KVM"}


def qemu_cpu(model):
    """The -cpu argument: qemu64 lacks SVM and nested paging unless asked."""
    return "qemu64,+svm,+npt" if model == DEFAULT_CPU else model


def bochs_model(cpu):
    """The Bochs CPU model of a `bochs-MODEL` entry of --cpus, else None."""
    return cpu[len("bochs-"):] if cpu.startswith("bochs-") else None


def machine_name(cpu):
    model = bochs_model(cpu)
    return f"Bochs {model}" if model else qemu_cpu(cpu)


def run_tag(hv, cpu, mode):
    """The name of a run's files: its mode, after the CPU model unless it is
    the default and after "kvm" for KVM (so icount, EPYC-Rome-tcg,
    kvm-icount, kvm-EPYC-Rome-icount)."""
    return "-".join(([hv] if hv != "certivisor" else []) + ([cpu] if cpu != DEFAULT_CPU else []) + [mode])


def run_label(r):
    return f"{HV_NAME[r['hv']]} on {machine_name(r['cpu'])}, {r['mode']}"


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


def tsc_khz(mode):
    """The guest TSC's rate in kHz: under icount it ticks once per ns; under
    plain TCG it is the host's. The KVM L1 kernel is told (tsc_early_khz)
    because KVM runs no vCPU while its TSC rate is unknown, and under plain
    TCG the kernel's calibration against the PIT fails (QEMU's vCPU thread is
    too slow for the PIT's few milliseconds; docs/guest-images.md)."""
    if mode == "icount":
        return 1_000_000
    for line in open("/proc/cpuinfo"):
        if line.startswith("cpu MHz"):
            return int(float(line.split(":")[1]) * 1000)
    raise RuntimeError("no 'cpu MHz' in /proc/cpuinfo for the KVM L1 kernel's tsc_early_khz")


def bochs_command(model, initrd):
    """Certivisor with Linux as its guest on Bochs: a GRUB ISO (multiboot2)
    holding the same kernel, command line and initramfs as the QEMU runs,
    booted by scripts/run-bochs with COM1 on its standard input and output."""
    kimg = os.path.join(imgs, "bzImage" if kernel == "bzimage" else "vmlinux")
    cmdline = open(os.path.join(imgs, "cmdline.txt")).read().strip()
    iso = os.path.join(out, f"bochs-{model}.iso")
    subprocess.run([os.path.join(root, "scripts", "mkiso"), "--kernel", elf, "--output", iso, "--cmdline", hvargs,
                    "--module", kimg, f"{os.path.basename(kimg)} {cmdline}",
                    "--module", initrd, os.path.basename(initrd)], check=True)
    return [os.path.join(root, "scripts", "run-bochs"), model, iso]


def qemu_command(hv, cpu, mode, initrd):
    """Certivisor with Linux as its guest, or Linux with KVM (the L1 image of
    guest-images/build-kvm-l1) directly on QEMU: the same machine either way."""
    if bochs_model(cpu):
        return bochs_command(bochs_model(cpu), initrd)
    kimg = os.path.join(imgs, "bzImage" if kernel == "bzimage" else "vmlinux")
    args = ["qemu-system-x86_64", "-machine", "q35", "-cpu", qemu_cpu(cpu), "-m", "1G",
            "-display", "none", "-no-reboot", "-monitor", "none", "-serial", "stdio"]
    if hv == "certivisor":
        cmdline = open(os.path.join(imgs, "cmdline.txt")).read().strip()
        esc = lambda s: s.replace(",", ",,")
        args += ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                 "-kernel", elf, "-append", hvargs,
                 "-initrd", f"{esc(kimg)} {esc(cmdline)},{esc(initrd)}"]
    else:
        cmdline = open(os.path.join(imgs, "kvm-l1", "cmdline.txt")).read().strip()
        cmdline += f" tsc_early_khz={tsc_khz(mode)}"
        args += ["-kernel", kimg, "-append", cmdline, "-initrd", os.path.join(imgs, "kvm-l1", "initramfs.cpio")]
    if mode == "icount":
        args += ["-icount", "shift=0,sleep=off"]
    return args


class Guest:
    def __init__(self, tag, cmd):
        self.cmd = cmd
        self.logf = open(os.path.join(out, f"serial-{tag}.log"), "wb")
        self.buf = bytearray()
        self.seen = 0
        self.eof = False
        self.cv = threading.Condition()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
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
        # Under the hypervisor each guest line starts with "vmN| " (its
        # console's prefix); the commands' output is read without it.
        return GUEST_PREFIX.sub("", text[: -len(f"@@END-{tag} rc=")]), rc

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


GUEST_PREFIX = re.compile(r"^vm\d+\| ", re.M)
BENCH_RE = re.compile(r"^BENCH (\S+) min=(\d+) median=(\d+) p99=(\d+) n=(\d+)", re.M)
HIST_RE = re.compile(r"^HIST (\S+)((?: \d+:\d+)*)", re.M)
B64_RE = re.compile(r"^[A-Za-z0-9+/=]+$")


# What the L1 kernel offers KVM: /dev/kvm, the SVM features it found, and
# kvm_amd's parameters. The status is that of the /dev/kvm test.
KVM_INFO = ("uname -r; ls -l /dev/kvm; grep -m1 '^flags' /proc/cpuinfo; "
            "grep . /sys/module/kvm_amd/parameters/*; dmesg | grep -i -E 'kvm|svm'; test -c /dev/kvm")
# The tool in each guest and what it is asked first.
TOOL = {"certivisor": ("hvctl bench", "hvctl version && hvctl info"), "kvm": ("kvmbench", KVM_INFO)}


def run_one(hv, cpu, mode, initrd):
    tag = run_tag(hv, cpu, mode)
    res = {"hv": hv, "cpu": cpu, "mode": mode, "tag": tag, "bench": {}, "hist": {}, "samples": None, "error": None}
    bench_cmd, info_cmd = TOOL[hv]
    g = Guest(tag, qemu_command(hv, cpu, mode, initrd))
    t0 = time.monotonic()
    try:
        log(f"{tag}: booting ({' '.join(g.cmd)})")
        g.expect(READY, timeout)
        g.expect("# ", timeout)
        res["boot_s"] = round(time.monotonic() - t0, 1)
        log(f"{tag}: shell after {res['boot_s']} s; running {bench_cmd.split()[0]}")
        text, rc = g.run(info_cmd, timeout, "info")
        open(os.path.join(out, f"info-{tag}.txt"), "w").write(text)
        if rc != 0:
            raise RuntimeError(f"{info_cmd!r} failed (status {rc}):\n{text}")
        opts = ""
        if iterations:
            opts += f" --iterations {iterations}"
        if mmio_iterations:
            opts += f" --mmio-iterations {mmio_iterations}"
        t1 = time.monotonic()
        text, rc = g.run(f"{bench_cmd}{opts} --histogram /tmp/h.txt", timeout, "bench")
        res["bench_s"] = round(time.monotonic() - t1, 1)
        open(os.path.join(out, f"bench-{tag}.txt"), "w").write(text)
        log(f"{tag}: {bench_cmd} took {res['bench_s']} s (status {rc})")
        for k, mn, med, p99, n in BENCH_RE.findall(text):
            res["bench"][k] = {"min": int(mn), "median": int(med), "p99": int(p99), "n": int(n)}
        for k, rest in HIST_RE.findall(text):
            res["hist"][k] = {int(b): int(c) for b, c in (p.split(":") for p in rest.split())}
        if hv == "certivisor":
            text, rc = g.run("hvctl stats", timeout, "stats")
            open(os.path.join(out, f"stats-{tag}.txt"), "w").write(text)
        text, rc = g.run("gzip -c /tmp/h.txt | base64", timeout, "samples")
        try:
            blob = "".join(l.strip() for l in text.splitlines() if B64_RE.match(l.strip()))
            raw = gzip.decompress(base64.b64decode(blob)).decode()
            open(os.path.join(out, f"samples-{tag}.txt"), "w").write(raw)
            res["samples"] = parse_samples(raw.splitlines())
        except Exception as e:  # the HIST lines still give the histogram
            log(f"{tag}: could not recover the raw samples ({e}); using the HIST lines")
        g.send("reboot -f\n")
        try:
            g.proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    except (Timeout, RuntimeError, OSError) as e:
        res["error"] = str(e)
        log(f"{tag}: FAILED: {e} (serial log: {g.logf.name})")
    finally:
        g.stop()
    return res


def parse_samples(lines):
    """{kind: [cycles, ...]} from `kind cycles` lines."""
    samples = {}
    for line in lines:
        k, c = line.split()
        samples.setdefault(k, []).append(int(c))
    return samples


# ---------------------------------------------------------------------------
# IPI round trips: the test guest smp32 in mode=ipibench, two vCPUs of one VM
# (tests/guests/smp32.S). Its own boots, under icount (or on Bochs), after
# the Linux runs; no shell, the guest prints its lines and resets.
# ---------------------------------------------------------------------------
IPI_KINDS = ["ipi", "ipi_halted"]
IPI_WHAT = {"ipi": "to a spinning vCPU", "ipi_halted": "to a halted vCPU"}
IPI_RE = re.compile(r"smp32: bench (\S+) n=(\d+) min=(\d+) median=(\d+) p99=(\d+) max=(\d+)")
IPI_PASS = "PASS smp32 ipibench"
# Where the two vCPUs run: host CPUs of their own, or both on host CPU 0.
IPI_PLACES = {"spread": ("", "two host CPUs"), "pinned": ("hv.cpu=0", "one host CPU (pinned)")}


def ipi_command(cpu, module_args):
    """Certivisor with smp32 as its one VM of two vCPUs, on a machine of two
    CPUs: QEMU under icount (-smp 2), or Bochs (cpu: count=2)."""
    args = f"hv.vcpus=2 {module_args}"
    model = bochs_model(cpu)
    if model:
        iso = os.path.join(out, f"ipi-bochs-{model}.iso")
        subprocess.run([os.path.join(root, "scripts", "mkiso"), "--kernel", elf, "--output", iso, "--cmdline",
                        hvargs, "--module", smp32, f"{os.path.basename(smp32)} {args}"], check=True)
        return [os.path.join(root, "scripts", "run-bochs"), model, iso, "2"]
    return ["qemu-system-x86_64", "-machine", "q35", "-cpu", qemu_cpu(cpu), "-m", "1G", "-smp", "2",
            "-display", "none", "-no-reboot", "-monitor", "none", "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel", elf, "-append", hvargs, "-initrd", f"{smp32} {args}".replace(",", ",,"),
            "-icount", "shift=0,sleep=off"]


def run_ipi(cpu, place, n):
    """One boot of smp32 in mode=ipibench with `n` round trips per variant,
    the vCPUs placed as `place` says; the result has {kind: {n, min, median,
    p99, max}} in `ipi`, or an error."""
    pin, where = IPI_PLACES[place]
    tag = "ipi-" + ("pinned-" if place == "pinned" else "") + run_tag("certivisor", cpu, "icount")
    res = {"cpu": cpu, "mode": "icount", "place": place, "where": where, "tag": tag, "ipi": {}, "error": None}
    g = Guest(tag, ipi_command(cpu, f"{pin} mode=ipibench iterations={n}".strip()))
    t0 = time.monotonic()
    try:
        log(f"{tag}: {n} IPI round trips per variant, vCPUs on {where} ({' '.join(g.cmd)})")
        try:
            g.expect(IPI_PASS, timeout)
        except Timeout as e:
            fail = re.search(r"FAIL smp32: [^\n]*", g.buf.decode("utf-8", "replace"))
            raise RuntimeError(fail.group(0) if fail else str(e))
        text = g.buf.decode("utf-8", "replace")
        for k, n_, mn, med, p99, mx in IPI_RE.findall(text):
            res["ipi"][k] = {"n": int(n_), "min": int(mn), "median": int(med), "p99": int(p99), "max": int(mx)}
        missing = [k for k in IPI_KINDS if k not in res["ipi"]]
        if missing:
            raise RuntimeError(f"no line for {', '.join(missing)} before {IPI_PASS!r}")
        res["run_s"] = round(time.monotonic() - t0, 1)
        log(f"{tag}: took {res['run_s']} s")
        # The hypervisor's exit counts follow the reset: keep them in the log.
        try:
            g.proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    except (Timeout, RuntimeError, OSError, subprocess.CalledProcessError) as e:
        res["error"] = str(e)
        log(f"{tag}: FAILED: {e} (serial log: {g.logf.name})")
    finally:
        g.stop()
    return res


def ipi_table(runs):
    """The IPI round trips of every run, one row per run and variant."""
    lines = ["IPI round trips between the two vCPUs of one VM (smp32 mode=ipibench), TSC cycles",
             "(QEMU icount: 1 tick per instruction of either host CPU, which run in turn;",
             " Bochs: 1 tick per instruction of each host CPU, which run side by side)", ""]
    head = f"{'machine':<22} {'vCPUs on':<21} {'kind':<11} {'what':<19} {'n':>6} {'min':>9} {'median':>9} {'p99':>9}"
    lines += [head, "-" * len(head)]
    for r in runs:
        for k in IPI_KINDS:
            b = r["ipi"].get(k)
            nums = (f"{b['n']:>6} {b['min']:>9} {b['median']:>9} {b['p99']:>9}" if b
                    else f"{'-':>6} {'-':>9} {'-':>9} {'-':>9}")
            lines.append(f"{machine_name(r['cpu']):<22} {r['where']:<21} {k:<11} {IPI_WHAT[k]:<19} {nums}")
    lines += ["", "Each sample: the BSP's ICR write, the other vCPU's handler (EOI, ICR write back),",
              "the BSP's handler (EOI); pinned, the vCPU switches wait for the 1 ms time slice."]
    for r in runs:
        if r["error"]:
            lines.append(f"{r['tag']}: FAILED: {r['error']}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------
def table(results, cpu):
    """Certivisor's runs on one CPU model, next to the targets."""
    results = [r for r in results if r["hv"] == "certivisor" and r["cpu"] == cpu]
    by = {r["mode"]: r for r in results}
    cols = [m for m in ("icount", "tcg") if m in by]
    on = "" if cpu == DEFAULT_CPU else f" on {machine_name(cpu)}"
    lines = [f"Certivisor exit round trips{on}, TSC cycles (icount: 1 tick = 1 guest instruction)", ""]
    head = f"{'kind':<10} {'what':<21}"
    for m in cols:
        head += f" | {m + ' min':>11} {'median':>8} {'p99':>8}"
    head += f" | {'target (icount median)':<24} | mature HV"
    lines += [head, "-" * len(head)]
    for k in KINDS:
        row = f"{k:<10} {WHAT[k]:<21}"
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
            lines.append(f"{r['tag']}: FAILED: {r['error']}")
    return "\n".join(lines) + "\n"


# The rows of the side-by-side table, named as common vmexit microbenchmarks
# name them, with the kind of hvctl and of kvmbench that each compares.
# Certivisor's kernel answers PING, CPUID and the debug port's read; the
# MMIO information device is served by its VMM, inside the hypervisor: its
# one number stands in both MMIO read rows (marked *). Writes are measured
# on Certivisor only. hvctl runs at CPL 3, where mov cr8 faults.
VS_ROWS = [
    ("cpuid", "cpuid", "cpuid"),
    ("vmcall", "vmcall", "vmcall"),
    ("port read, in-kernel", "port_read", "port_read"),
    ("port read, userspace", None, "port_read_user"),
    ("port write, VMM", "port_write", None),
    ("MMIO read, in-kernel", "mmio_read", "mmio_read"),
    ("MMIO read, userspace", "mmio_read", "mmio_read_user"),
    ("MMIO write, VMM", "mmio_write", None),
    ("mov cr8", None, "mov_cr8"),
    ("rdtsc pair, no exit", "rdtsc", "rdtsc"),
]
NO_EXIT = {"mov cr8", "rdtsc pair, no exit"}
VS_PATHS = """\
What serves each exit (docs/benchmarking.md):
  cpuid       Certivisor: CPUID 0x40000000, answered in the world switch (kernel).
              KVM: CPUID 0x40000000 from the vCPU's CPUID table, in the kernel.
  vmcall      Certivisor: VMMCALL PING (RAX=1), answered in the world switch (kernel).
              KVM: VMMCALL KVM_HC_VAPIC_POLL_IRQ (RAX=1), answered 0 in the kernel.
  port read   Certivisor: in al,0xE9, a constant the VMM declared, answered in the world switch.
              KVM in-kernel: in al,0x21, the in-kernel PIC's mask register.
              KVM userspace: in al,0xE9, KVM_EXIT_IO answered by kvmbench.
  port write  Certivisor: out 0x80,al, the VMM's board (POST port). Not measured on KVM.
  MMIO read   Certivisor: the information device at 0xFEBFF000: nested page fault,
              instruction fetch and decode, the VMM's device model.
              KVM in-kernel: the IOAPIC's data window 0xFEC00010 (KVM's IOAPIC).
              KVM userspace: 0xFEBFF000, KVM_EXIT_MMIO answered by kvmbench.
  MMIO write  Certivisor: the information device's SCRATCH register, the VMM. Not measured on KVM.
  mov cr8     KVM only (hvctl runs at CPL 3): no exit while no interrupt is pending.
  *           Certivisor serves MMIO in its VMM only: the same number as the row above.
"""


def comparison(results):
    """Medians of Certivisor and KVM side by side, per CPU model and mode;
    returns (the text, the same numbers for summary.json)."""
    by = {(r["hv"], r["cpu"], r["mode"]): r["bench"] for r in results}
    lines = ["Certivisor vs. KVM: median TSC cycles per round trip, the same instruction sequence",
             "(icount: 1 tick = 1 guest instruction; KVM/CV is how many times the cycles KVM takes)", ""]
    data = {}
    for cpu in dict.fromkeys(r["cpu"] for r in results):
        cols = [m for m in ("icount", "tcg") if ("kvm", cpu, m) in by]
        head = f"{qemu_cpu(cpu):<21}"
        for m in cols:
            head += f" | {m + ': Certivisor':>18} {'KVM':>8} {'KVM/CV':>7}"
        lines += [head, "-" * len(head)]
        for name, cv_kind, kvm_kind in VS_ROWS:
            row = f"{name:<21}"
            for m in cols:
                cv = by.get(("certivisor", cpu, m), {}).get(cv_kind or "", {}).get("median")
                kv = by[("kvm", cpu, m)].get(kvm_kind or "", {}).get("median")
                shared = cv is not None and name.endswith("userspace")
                ratio = kv / cv if cv and kv is not None and name not in NO_EXIT else None
                row += (f" | {'-' if cv is None else str(cv) + ('*' if shared else ''):>18}"
                        f" {'-' if kv is None else kv:>8} {'-' if ratio is None else f'{ratio:.2f}x':>7}")
                data.setdefault(cpu, {}).setdefault(m, {})[name] = {
                    "certivisor": cv, "kvm": kv, "kvm_over_certivisor": None if ratio is None else round(ratio, 3)}
            lines.append(row)
        lines.append("")
    lines.append(VS_PATHS.rstrip())
    for r in results:
        if r["error"] and r["hv"] == "kvm":
            lines.append(f"{r['tag']}: FAILED: {r['error']}")
    return "\n".join(lines) + "\n", data


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


COLORS = {"vmcall": "#1f77b4", "cpuid": "#ff7f0e", "port_read": "#2ca02c", "port_write": "#98df8a",
          "mmio_read": "#d62728", "mmio_write": "#ff9896", "rdtsc": "#7f7f7f",
          # kvmbench's userspace kinds: darker than the in-kernel ones of the same name
          "port_read_user": "#1a6b1a", "mmio_read_user": "#8c1516", "mov_cr8": "#9467bd"}
# The order of the bars in a bucket.
KIND_ORDER = ["vmcall", "cpuid", "port_read", "port_read_user", "port_write", "mmio_read", "mmio_read_user",
              "mmio_write", "mov_cr8", "rdtsc"]


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
         f'{"Certivisor and KVM" if vs_kvm else "Certivisor"} exit round trips: '
         'log2 histogram of TSC cycles per sample</text>']
    if not panels:
        o.append(f'<text x="{W / 2}" y="60" text-anchor="middle">no data</text>')
    for pi, r in enumerate(panels):
        h = buckets_of(r)
        kinds = [k for k in KIND_ORDER if k in h] + sorted(k for k in h if k not in KIND_ORDER)
        targets = r["mode"] == "icount" and r["hv"] == "certivisor"
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
        o.append(f'<text x="{px}" y="{y0 + 24}" font-size="14" font-weight="bold">{esc(r["tag"])}: {esc(title)}</text>')
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
        # targets (Certivisor under icount only): dashed lines at their cycle counts
        if targets:
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
                     f'{f" (target {TARGETS[k]})" if targets and k in TARGETS else ""}</text>')
        if targets:
            ly = py + 4 + len(kinds) * 20
            o.append(f'<line x1="{px + pw + 12}" y1="{ly + 6}" x2="{px + pw + 24}" y2="{ly + 6}" '
                     'stroke="#444" stroke-dasharray="4,3"/>')
            o.append(f'<text x="{px + pw + 30}" y="{ly + 10}">target for the median</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def load(mode_result):
    """An earlier run's result, with its raw samples if they were saved.
    Runs from before --vs-kvm were Certivisor's on qemu64, named by mode."""
    r = {"hv": "certivisor", "cpu": DEFAULT_CPU, **mode_result}
    r.setdefault("tag", r["mode"])
    r["hist"] = {k: {int(b): c for b, c in v.items()} for k, v in r.get("hist", {}).items()}
    r["samples"] = None
    path = os.path.join(out, f"samples-{r['tag']}.txt")
    if os.path.exists(path):
        r["samples"] = parse_samples(open(path))
    return r


def on_signal(sig, frame):
    raise KeyboardInterrupt


if replot == "1":
    old = json.load(open(os.path.join(out, "summary.json")))
    kernel, hvargs = old.get("kernel", kernel), old.get("hv_args", hvargs)
    vs_kvm = old.get("vs_kvm", False)
    results = [load(r) for r in old["modes"]]
    ipi_runs = old.get("ipi", [])
else:
    initrd = None if ipi_only else bench_initramfs()
    results = []
    ipi_runs = []
    signal.signal(signal.SIGTERM, on_signal)
    try:
        # Per CPU model and mode, Certivisor and then KVM: under plain TCG
        # the two runs see the host in nearly the same state.
        for cpu in [] if ipi_only else cpus:
            for m in modes:
                # Bochs's time always follows executed instructions (its TSC
                # ticks once per instruction): its one run is the icount
                # run. It has no KVM to compare with.
                if bochs_model(cpu) and m != "icount":
                    log(f"{cpu}: no {m} run (Bochs is always deterministic: see its icount run)")
                    continue
                for hv in ["certivisor"] + (["kvm"] if vs_kvm and not bochs_model(cpu) else []):
                    results.append(run_one(hv, cpu, m, initrd))
        # The IPI round trips: deterministic runs only (icount, Bochs).
        if ipi_iterations and "icount" in modes:
            n = int(ipi_iterations)
            for cpu in cpus:
                ipi_runs.append(run_ipi(cpu, "spread", n))
                if not bochs_model(cpu):
                    ipi_runs.append(run_ipi(cpu, "pinned", n))
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)

summary = "\n".join(table(results, cpu) for cpu in dict.fromkeys(r["cpu"] for r in results if r["hv"] == "certivisor"))
vs = {}
if vs_kvm:
    text, vs = comparison(results)
    summary += "\n" + text
if ipi_runs:
    summary += "\n" + ipi_table(ipi_runs)
print()
print(summary, end="")
open(os.path.join(out, "summary.txt"), "w").write(summary)
json.dump({"kernel": kernel, "hv_args": hvargs,
           "targets_icount": TARGETS, "mature_hypervisor_ticks": MATURE, "vs_kvm": vs_kvm, "comparison": vs,
           "modes": [{k: v for k, v in r.items() if k != "samples"} for r in results], "ipi": ipi_runs},
          open(os.path.join(out, "summary.json"), "w"), indent=1, sort_keys=True)
open(os.path.join(out, "histogram.svg"), "w").write(svg(results))
print(f"\nbench: wrote {out}/summary.txt, summary.json, histogram.svg and the raw data")
sys.exit(0 if any(r["bench"] for r in results) or any(r["ipi"] for r in ipi_runs) else 1)

//! The userland stress load of issue 9, driven from the host.
//!
//! [`run`] boots the Linux guest, under the hypervisor or directly on QEMU,
//! starts `certivisor-stress` (guest-images/rootfs-extra/bin) in its shell,
//! types a numbered line every [`TYPE_EVERY`] while the load runs, stops the
//! load, and checks what the guest and its console did. `tests/stress.rs`
//! runs it for a few minutes, `scripts/stress` (the `stress` binary) for as
//! long as asked. docs/stress.md describes the load and every check.
use crate::{kernel, linux_images, Qemu, Session, EXIT_SUCCESS};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the host types a line.
pub const TYPE_EVERY: Duration = Duration::from_secs(2);
/// Boot to the guest's readiness marker (the emulator may share the host
/// with another one).
const BOOT_LIMIT: Duration = Duration::from_secs(600);
/// A shell prompt, the load's start marker, the answer to a command.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);
/// The console flood never pauses this long while the load runs: a longer
/// silence is a hang.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// A typed line is echoed within this.
const ECHO_LIMIT: Duration = Duration::from_secs(120);
/// From `stress-stop` to the load's end marker (the loops finish their
/// round, then the kernel log is read).
const END_LIMIT: Duration = Duration::from_secs(300);
/// From `reboot -f` to QEMU's exit.
const STOP_LIMIT: Duration = Duration::from_secs(60);
/// Serial lines shown when a run fails.
const TAIL_LINES: usize = 40;

/// The text of every flood line after its number; the same as in
/// guest-images/rootfs-extra/bin/certivisor-stress.
const FLOOD_TEXT: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// How the guest is booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boot {
    /// Under Certivisor: the PVH vmlinux and the initramfs as multiboot modules.
    Hypervisor,
    /// On QEMU itself, without the hypervisor: the baseline.
    Direct,
}

/// How QEMU keeps time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// `-icount shift=0,sleep=off`: guest time counts instructions.
    Icount,
    /// Plain TCG: guest time follows the host's clock.
    Tcg,
}

/// One run of the load.
pub struct Config {
    pub boot: Boot,
    pub timing: Timing,
    /// How long the load runs, in host time from the guest's start marker.
    pub load: Duration,
    /// The serial log, written as it arrives.
    pub log: PathBuf,
    /// Print a progress line on stderr this often; None: never.
    pub progress: Option<Duration>,
}

impl Config {
    /// `hv-icount`, `hv-tcg`, `direct-icount` or `direct-tcg`.
    pub fn label(&self) -> String {
        let boot = match self.boot {
            Boot::Hypervisor => "hv",
            Boot::Direct => "direct",
        };
        let timing = match self.timing {
            Timing::Icount => "icount",
            Timing::Tcg => "tcg",
        };
        format!("{boot}-{timing}")
    }
}

/// One check and how it went.
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// What a run showed.
pub struct Outcome {
    pub label: String,
    pub checks: Vec<Check>,
    /// Host time for the whole run, boot included.
    pub wall: Duration,
    /// The guest's `STRESS-SUMMARY` line, if it printed one.
    pub summary: Option<String>,
    pub log: PathBuf,
    /// The last lines of the serial log.
    pub tail: String,
}

impl Outcome {
    /// True if every check passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        writeln!(f, "stress {}: {verdict} after {}", self.label, clock(self.wall))?;
        for c in &self.checks {
            writeln!(f, "  [{}] {}: {}", if c.passed { "ok" } else { "FAIL" }, c.name, c.detail)?;
        }
        if let Some(s) = &self.summary {
            writeln!(f, "  guest: {s}")?;
        }
        writeln!(f, "  serial log: {}", self.log.display())?;
        if !self.passed() {
            writeln!(f, "  its last {TAIL_LINES} lines:")?;
            for line in self.tail.lines() {
                writeln!(f, "  | {line}")?;
            }
        }
        Ok(())
    }
}

/// `m:ss`, or `h:mm:ss` from an hour on.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Boots the guest, runs the load for `cfg.load`, and checks it.
pub fn run(cfg: &Config) -> Outcome {
    let mut d = Driver::boot(cfg);
    // A step that fails has recorded why; the checks after it cannot run.
    let _ = d.drive();
    let tail = d.tail();
    Outcome {
        label: cfg.label(),
        checks: d.checks,
        wall: d.started.elapsed(),
        summary: d.seen.summary,
        log: cfg.log.clone(),
        tail,
    }
}

/// The numbered line the host types `n`-th (from 1): `stress-line N PAYLOAD
/// CRC`, where CRC is the CRC-32 of "N PAYLOAD" in 8 hex digits (what busybox
/// `crc32` prints). Payloads differ in length (16 to 79 characters) and text.
pub fn typed_line(n: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let len = 16 + (next() % 64) as usize;
    let payload: String = (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char).collect();
    let crc = crc32(format!("{n} {payload}").as_bytes());
    format!("stress-line {n} {payload} {crc:08x}")
}

/// zlib's CRC-32 (reflected polynomial 0xEDB88320), as busybox `crc32` prints it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Why the driver stopped early: the failed check is already recorded.
struct Stopped;

struct Driver<'a> {
    cfg: &'a Config,
    s: Session,
    started: Instant,
    checks: Vec<Check>,
    seen: Seen,
    /// Byte offset up to which the console has been split into lines.
    scanned: usize,
    /// The unfinished last line.
    partial: Vec<u8>,
    /// Lines typed so far, each with when it was typed.
    typed: Vec<(String, Instant)>,
    last_output: Instant,
}

impl<'a> Driver<'a> {
    fn boot(cfg: &'a Config) -> Self {
        let img = linux_images();
        let qemu = match cfg.boot {
            Boot::Hypervisor => Qemu::new()
                .cpu("qemu64,+svm,+npt")
                .kernel(&kernel(), "log=info")
                .modules(&[(&img.vmlinux, &img.cmdline), (&img.initramfs, "")]),
            // The guest gets the same 256 MiB it gets under the hypervisor
            // (a later -m overrides Qemu::new's).
            Boot::Direct => Qemu::new()
                .cpu("qemu64")
                .arg("-m")
                .arg("256M")
                .kernel(&img.vmlinux, &img.cmdline)
                .modules(&[(&img.initramfs, "")]),
        };
        let qemu = match cfg.timing {
            Timing::Icount => qemu.icount(),
            Timing::Tcg => qemu,
        };
        if let Some(dir) = cfg.log.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        let now = Instant::now();
        Driver {
            cfg,
            s: qemu.log_to(&cfg.log).spawn(),
            started: now,
            checks: Vec::new(),
            seen: Seen::default(),
            scanned: 0,
            partial: Vec::new(),
            typed: Vec::new(),
            last_output: now,
        }
    }

    fn check(&mut self, name: &'static str, passed: bool, detail: String) -> Result<(), Stopped> {
        self.checks.push(Check { name, passed, detail });
        if passed {
            Ok(())
        } else {
            Err(Stopped)
        }
    }

    /// Waits for `needle`, or records the failed check `name`.
    fn expect(&mut self, name: &'static str, needle: &str, limit: Duration) -> Result<(), Stopped> {
        let t = Instant::now();
        if self.s.try_expect(needle, limit).is_some() {
            return self.check(name, true, format!("{needle:?} after {}", clock(t.elapsed())));
        }
        let why = match self.s.exited() {
            Some(st) => format!("QEMU exited ({st})"),
            None => format!("not within {}", clock(limit)),
        };
        self.check(name, false, format!("expected {needle:?}: {why}"))
    }

    fn drive(&mut self) -> Result<(), Stopped> {
        self.expect("the guest boots", "CERTIVISOR-GUEST-READY", BOOT_LIMIT)?;
        self.expect("the shell prompts", "# ", COMMAND_LIMIT)?;
        // The guest's own limit is a backstop: the host ends the load.
        let guest_limit = self.cfg.load.as_secs() * 2 + 600;
        let _ = self.s.try_send(&format!("certivisor-stress {guest_limit}\n"));
        self.expect("the load starts", "STRESS-START", COMMAND_LIMIT)?;
        self.scanned = self.s.consumed();
        // The rest of the start marker's line is not a line of its own.
        self.seen.skip_line = true;
        self.last_output = Instant::now();
        let load_wall = self.load()?;
        self.finish_load()?;
        self.judge(load_wall)?;
        let _ = self.s.try_send("echo alive-$((6*7))\n");
        self.expect("the shell still answers", "alive-42", COMMAND_LIMIT)?;
        self.stop()
    }

    /// Runs the load for `cfg.load`, typing lines, and returns how long it
    /// ran in host time.
    fn load(&mut self) -> Result<Duration, Stopped> {
        let start = Instant::now();
        let mut next_line = start;
        let mut next_progress = self.cfg.progress.map(|p| start + p);
        while start.elapsed() < self.cfg.load {
            let now = Instant::now();
            if now >= next_line {
                let line = typed_line(self.typed.len() as u64 + 1);
                if self.s.try_send(&format!("{line}\n")).is_err() {
                    return Err(self.lost(start, "QEMU no longer reads its input".into()));
                }
                self.typed.push((line, now));
                next_line += TYPE_EVERY;
            }
            self.poll(next_line.saturating_duration_since(Instant::now()));
            if let Some(st) = self.s.exited() {
                return Err(self.lost(start, format!("QEMU exited ({st})")));
            }
            if self.last_output.elapsed() >= SILENCE_LIMIT {
                let why = format!("no serial output for {} s", SILENCE_LIMIT.as_secs());
                return Err(self.lost(start, why));
            }
            let echoed = self.seen.rx.len();
            if let Some((line, at)) = self.typed.get(echoed) {
                if at.elapsed() >= ECHO_LIMIT {
                    let why =
                        format!("typed line {} ({line:?}) not echoed within {} s", echoed + 1, ECHO_LIMIT.as_secs());
                    return Err(self.lost(start, why));
                }
            }
            if let Some(end) = &self.seen.end {
                let why = format!("the load ended on its own before stress-stop: {end}");
                return Err(self.lost(start, why));
            }
            if next_progress.is_some_and(|t| Instant::now() >= t) {
                eprintln!("{}", self.progress(start));
                next_progress = self.cfg.progress.map(|p| Instant::now() + p);
            }
        }
        let wall = start.elapsed();
        if self.s.try_send("stress-stop\n").is_err() {
            return Err(self.lost(start, "QEMU no longer reads its input".into()));
        }
        self.check("the guest keeps running under the load", true, format!("{} of load", clock(wall)))?;
        Ok(wall)
    }

    /// Records the hang (or exit) `why`, `start` being when the load began.
    fn lost(&mut self, start: Instant, why: String) -> Stopped {
        let detail = format!("{why}, {} into the load; {}", clock(start.elapsed()), self.counts());
        self.checks.push(Check { name: "the guest keeps running under the load", passed: false, detail });
        Stopped
    }

    /// Waits for the load's end marker after `stress-stop`.
    fn finish_load(&mut self) -> Result<(), Stopped> {
        let t = Instant::now();
        let waiting =
            |d: &Self| d.seen.end.is_none() && t.elapsed() < END_LIMIT && d.last_output.elapsed() < SILENCE_LIMIT;
        while waiting(self) && self.s.exited().is_none() {
            self.poll(Duration::from_secs(1));
        }
        let detail = match (&self.seen.end, self.s.exited()) {
            (Some(_), _) => format!("STRESS-END after {}", clock(t.elapsed())),
            (None, Some(st)) => format!("expected STRESS-END: QEMU exited ({st})"),
            (None, None) => {
                format!("expected STRESS-END; stress-stop was typed {} ago; {}", clock(t.elapsed()), self.counts())
            }
        };
        self.check("the load stops when told", self.seen.end.is_some(), detail)
    }

    /// Checks what the load printed. Every check runs; the run stops after
    /// them if one failed.
    fn judge(&mut self, load_wall: Duration) -> Result<(), Stopped> {
        let results = vec![
            ("every typed line came back intact and in order", self.echo_check()),
            ("every loop made progress", self.progress_check()),
            ("the kernel log is clean", self.dmesg_check()),
            ("the console output is intact", self.console_check()),
            ("the guest's verdict", self.verdict_check()),
        ];
        let mut ok = true;
        for (name, r) in results {
            ok &= r.is_ok();
            self.checks.push(Check { name, passed: r.is_ok(), detail: r.unwrap_or_else(|e| e) });
        }
        if self.cfg.timing == Timing::Tcg {
            // Without icount, guest time is host time: a guest clock that
            // falls behind means lost timer interrupts or a stolen TSC.
            let r = self.clock_check(load_wall);
            ok &= r.is_ok();
            let passed = r.is_ok();
            self.checks.push(Check {
                name: "the guest clock keeps up with the host's",
                passed,
                detail: r.unwrap_or_else(|e| e),
            });
        }
        if ok {
            Ok(())
        } else {
            Err(Stopped)
        }
    }

    fn echo_check(&self) -> Result<String, String> {
        let (typed, rx) = (&self.typed, &self.seen.rx);
        for (i, ((line, _), echoed)) in typed.iter().zip(rx).enumerate() {
            let want = format!("ok {line}");
            if *echoed != want {
                return Err(format!("line {}: expected \"STRESS-RX {want}\", saw \"STRESS-RX {echoed}\"", i + 1));
            }
        }
        if typed.len() != rx.len() {
            return Err(format!("typed {} lines, {} came back", typed.len(), rx.len()));
        }
        Ok(format!("{} of {} lines", rx.len(), typed.len()))
    }

    fn progress_check(&self) -> Result<String, String> {
        let Some(line) = &self.seen.summary else {
            return Err("expected a STRESS-SUMMARY line, saw none".into());
        };
        let v = summary_fields(line);
        let get = |k: &str| v.get(k).copied();
        let mut wrong = Vec::new();
        for k in ["fork_true", "fork_ls_cat", "fork_sh", "churn_rounds", "flood_lines"] {
            if get(k).unwrap_or(0) == 0 {
                wrong.push(format!("{k}: expected > 0, saw {:?}", get(k)));
            }
        }
        for k in ["churn_failed", "lines_bad"] {
            if get(k) != Some(0) {
                wrong.push(format!("{k}: expected 0, saw {:?}", get(k)));
            }
        }
        if !line.split_whitespace().any(|kv| kv == "ended=stop") {
            wrong.push("expected ended=stop (the host's stress-stop ended the load)".to_string());
        }
        if get("lines_rx") != Some(self.typed.len() as u64) {
            wrong.push(format!("lines_rx: expected {} (typed), saw {:?}", self.typed.len(), get("lines_rx")));
        }
        if wrong.is_empty() {
            Ok(format!(
                "fork loops {}/{}/{}, {} MiB churned, {} flood lines",
                v["fork_true"],
                v["fork_ls_cat"],
                v["fork_sh"],
                get("churn_mib").unwrap_or(0),
                v["flood_lines"]
            ))
        } else {
            Err(wrong.join("; "))
        }
    }

    fn dmesg_check(&self) -> Result<String, String> {
        match self.seen.dmesg.as_slice() {
            [only] if only == "clean" => Ok("no Oops, BUG, lockup, stall, hung task or unchecked MSR".into()),
            [] => Err("expected STRESS-DMESG clean, saw no STRESS-DMESG line".into()),
            hits => Err(format!("expected STRESS-DMESG clean, saw:\n      {}", hits.join("\n      "))),
        }
    }

    fn console_check(&self) -> Result<String, String> {
        let s = &self.seen;
        let mut wrong = Vec::new();
        if s.flood_lines == 0 {
            wrong.push("expected STRESS-FLOOD lines, saw none".to_string());
        }
        if !s.flood_broken.is_empty() {
            wrong.push(format!(
                "{} flood lines broken or out of order, first: {}",
                s.flood_broken_count,
                s.flood_broken.join(" | ")
            ));
        }
        if !s.errors.is_empty() {
            wrong.push(format!("the load reported: {}", s.errors.join(" | ")));
        }
        if !s.other.is_empty() {
            wrong.push(format!("{} unexpected lines, first: {}", s.other_count, s.other.join(" | ")));
        }
        if wrong.is_empty() {
            Ok(format!("{} flood lines, numbered without gaps, and nothing else", s.flood_lines))
        } else {
            Err(wrong.join("; "))
        }
    }

    fn verdict_check(&self) -> Result<String, String> {
        match self.seen.end.as_deref() {
            Some("pass") => Ok("STRESS-END pass".into()),
            other => Err(format!("expected STRESS-END pass, saw {other:?}")),
        }
    }

    /// Without icount the guest's clock follows the host's, if it gets its
    /// timer ticks: its clocksource is the TSC, or, when the guest could not
    /// calibrate the TSC (docs/guest-images.md), `refined-jiffies`, which
    /// counts ticks. A busy host delays ticks too (a direct boot on a host at
    /// load 6 kept 47 % of host time), so the bar is low: a quarter.
    fn clock_check(&self, load_wall: Duration) -> Result<String, String> {
        let summary = self.seen.summary.as_deref().unwrap_or_default();
        let guest = summary_fields(summary).get("seconds").copied();
        let source = summary.split_whitespace().find_map(|kv| kv.strip_prefix("clocksource=")).unwrap_or("?");
        let host = load_wall.as_secs();
        match guest {
            Some(g) if g * 4 >= host => Ok(format!("{g} s of guest time ({source}) in {host} s of host time")),
            Some(g) => Err(format!(
                "expected at least {} s of guest time in {host} s of host time, saw {g} s ({source})",
                host / 4
            )),
            None => Err("the summary has no seconds=".into()),
        }
    }

    /// Ends the guest with `reboot -f` and checks that QEMU exits as it should.
    fn stop(&mut self) -> Result<(), Stopped> {
        let _ = self.s.try_send("reboot -f\n");
        if self.cfg.boot == Boot::Hypervisor {
            self.expect("the VM stops cleanly", "vm0: stopped cleanly", STOP_LIMIT)?;
        }
        let want = match self.cfg.boot {
            Boot::Hypervisor => EXIT_SUCCESS,
            Boot::Direct => 0,
        };
        let status = self.s.wait(STOP_LIMIT);
        self.check("QEMU exits", status == Some(want), format!("expected status {want}, saw {status:?}"))
    }

    /// Splits new console output into lines, waiting up to `wait` for some.
    fn poll(&mut self, wait: Duration) {
        let new = self.s.output_after(self.scanned, wait);
        if new.is_empty() {
            return;
        }
        self.last_output = Instant::now();
        self.scanned += new.len();
        self.partial.extend_from_slice(&new);
        let Some(last_nl) = self.partial.iter().rposition(|&b| b == b'\n') else { return };
        let rest = self.partial.split_off(last_nl + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        for line in String::from_utf8_lossy(&done).lines() {
            self.seen.feed(crate::guest_line(line.trim_end_matches('\r')));
        }
    }

    fn counts(&self) -> String {
        let last_flood = self.seen.flood_last.map_or("none".into(), |n| n.to_string());
        format!(
            "{} lines typed, {} echoed, last flood line {last_flood}, last output {} ago",
            self.typed.len(),
            self.seen.rx.len(),
            clock(self.last_output.elapsed())
        )
    }

    fn progress(&self, start: Instant) -> String {
        format!(
            "stress {}: {} of {} load: {}, serial log {:.1} MB",
            self.cfg.label(),
            clock(start.elapsed()),
            clock(self.cfg.load),
            self.counts(),
            self.s.output_len() as f64 / 1e6
        )
    }

    fn tail(&self) -> String {
        let out = self.s.output();
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].iter().map(|l| printable(l)).collect::<Vec<_>>().join("\n")
    }
}

/// `key=value` pairs of a `STRESS-SUMMARY` line with numeric values.
fn summary_fields(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// What the console said while the load ran, sorted by marker.
#[derive(Default)]
struct Seen {
    /// Skip the next line (the tail of a line that was partly consumed).
    skip_line: bool,
    /// Each `STRESS-RX` line, without the marker.
    rx: Vec<String>,
    flood_lines: u64,
    flood_last: Option<u64>,
    /// The first few flood lines that were not the next one, whole.
    flood_broken: Vec<String>,
    flood_broken_count: u64,
    /// `STRESS-ERROR` lines.
    errors: Vec<String>,
    /// The first few lines that carried no marker (kernel messages,
    /// hypervisor log lines, mangled output).
    other: Vec<String>,
    other_count: u64,
    summary: Option<String>,
    /// `clean`, or each hit.
    dmesg: Vec<String>,
    /// `pass` or `fail`.
    end: Option<String>,
}

const KEEP: usize = 5;

impl Seen {
    fn feed(&mut self, line: &str) {
        if std::mem::take(&mut self.skip_line) || self.end.is_some() {
            return;
        }
        if let Some(rest) = line.strip_prefix("STRESS-FLOOD ") {
            self.flood(line, rest);
        } else if let Some(rest) = line.strip_prefix("STRESS-RX ") {
            self.rx.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("STRESS-SUMMARY ") {
            self.summary = Some(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("STRESS-DMESG-HIT ") {
            self.dmesg.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("STRESS-DMESG ") {
            self.dmesg.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("STRESS-END ") {
            self.end = Some(rest.to_string());
        } else if line.starts_with("STRESS-ERROR") {
            keep(&mut self.errors, line);
        } else {
            self.other_count += 1;
            keep(&mut self.other, line);
        }
    }

    fn flood(&mut self, line: &str, rest: &str) {
        self.flood_lines += 1;
        let n = rest.split_once(' ').filter(|(_, text)| *text == FLOOD_TEXT).and_then(|(n, _)| n.parse::<u64>().ok());
        let in_order = match (n, self.flood_last) {
            (Some(n), Some(last)) => n == last + 1,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !in_order {
            self.flood_broken_count += 1;
            keep(&mut self.flood_broken, line);
        }
        if n.is_some() {
            self.flood_last = n;
        }
    }
}

fn keep(list: &mut Vec<String>, line: &str) {
    if list.len() < KEEP {
        list.push(printable(line));
    }
}

/// `line` with control characters escaped, so that a report does not
/// drive the terminal (the guest's line editor sends ESC [ 6 n).
fn printable(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_control() && c != '\t' { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib_and_busybox() {
        // busybox `printf '1 abc' | crc32` and Python's zlib.crc32 print 303451c5.
        assert_eq!(crc32(b"1 abc"), 0x3034_51c5);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the CRC-32 check value");
    }

    #[test]
    fn typed_lines_are_numbered_and_carry_their_crc() {
        for n in [1, 2, 99, 1000] {
            let line = typed_line(n);
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 4, "{line}");
            assert_eq!(parts[0], "stress-line");
            assert_eq!(parts[1], n.to_string());
            assert!((16..80).contains(&parts[2].len()), "{line}");
            assert_eq!(parts[3], format!("{:08x}", crc32(format!("{n} {}", parts[2]).as_bytes())));
        }
        assert_ne!(typed_line(1), typed_line(2));
    }

    #[test]
    fn flood_lines_must_follow_each_other_whole() {
        let mut s = Seen::default();
        for n in [7, 8, 9] {
            s.feed(&format!("STRESS-FLOOD {n} {FLOOD_TEXT}"));
        }
        assert_eq!((s.flood_lines, s.flood_broken_count), (3, 0));
        s.feed(&format!("STRESS-FLOOD 11 {FLOOD_TEXT}"));
        s.feed("STRESS-FLOOD 12 abcdef[  12.3] BUG: soft lockup");
        assert_eq!(s.flood_broken_count, 2, "a gap and a mangled line: {:?}", s.flood_broken);
    }

    #[test]
    fn lines_without_a_marker_are_kept_as_unexpected() {
        let mut s = Seen { skip_line: true, ..Seen::default() };
        s.feed(" seconds=1000");
        s.feed("STRESS-RX ok stress-line 1 abc 303451c5");
        s.feed("[  123.4] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!");
        s.feed("\u{1b}[6n");
        s.feed("STRESS-END fail");
        s.feed("guest:~# ");
        assert_eq!(s.rx, ["ok stress-line 1 abc 303451c5"]);
        assert_eq!(s.other_count, 2, "{:?}", s.other);
        assert_eq!(s.other[1], "\\u{1b}[6n", "control characters are escaped");
        assert_eq!(s.end.as_deref(), Some("fail"));
    }

    #[test]
    fn summary_fields_parse_the_numbers() {
        let v = summary_fields("seconds=40 fork_true=2133 churn_mib=2250 lines_bad=0");
        assert_eq!((v["seconds"], v["fork_true"], v["churn_mib"], v["lines_bad"]), (40, 2133, 2250, 0));
    }

    #[test]
    fn clock_shows_minutes_and_hours() {
        assert_eq!(clock(Duration::from_secs(83)), "1:23");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }
}

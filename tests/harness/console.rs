//! The serial console of a running emulator, shared by the QEMU and the
//! Bochs harness: the bytes arrive on a reader thread as the emulator sends
//! them, `expect` waits for text, `send` types on the line, and dropping the
//! session always kills the emulator (on success, on failure, on panic).
use crate::{EXIT_FAILURE, EXIT_SUCCESS, EXIT_UNSUPPORTED};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where a run's status comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusFrom {
    /// The emulator's exit status (QEMU's isa-debug-exit device).
    ExitCode,
    /// The hypervisor's last serial line, `exit: <status>` (Bochs has no
    /// exit device and never ends by itself).
    ExitLine,
}

/// The status an `exit:` line stands for, in QEMU's numbering, so that a
/// test asserts the same status on every emulator.
pub(crate) fn status_from_exit_line(serial: &str) -> Option<i32> {
    serial.lines().find_map(|l| match l.trim_end_matches('\r') {
        "exit: success" => Some(EXIT_SUCCESS),
        "exit: failure" => Some(EXIT_FAILURE),
        "exit: unsupported" => Some(EXIT_UNSUPPORTED),
        _ => None,
    })
}

/// What a run left behind.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status, or under Bochs the status of the `exit:` line;
    /// None if the run was killed at the timeout.
    pub status: Option<i32>,
    pub serial: String,
}

impl Outcome {
    /// Panics, showing the whole serial log, unless the run ended with `code`.
    pub fn assert_status(&self, code: i32) -> &Self {
        assert_eq!(
            self.status,
            Some(code),
            "expected exit status {code}, saw {:?}; serial log:\n{}",
            self.status,
            self.serial
        );
        self
    }

    /// Panics, showing the whole serial log, unless it contains `needle`.
    pub fn assert_contains(&self, needle: &str) -> &Self {
        assert!(self.serial.contains(needle), "expected {needle:?} in the serial log:\n{}", self.serial);
        self
    }

    pub fn assert_lacks(&self, needle: &str) -> &Self {
        assert!(!self.serial.contains(needle), "did not expect {needle:?} in the serial log:\n{}", self.serial);
        self
    }

    /// Panics unless `vm`'s exit-count line (`vm0: exits: io=46 cpuid=3
    /// ...`, which leaves out kinds that did not occur) has each of
    /// `counts`; other kinds on the line are not checked.
    pub fn assert_exit_counts(&self, vm: &str, counts: &[(&str, u64)]) -> &Self {
        let prefix = format!("{vm}: exits: ");
        let line = self.line(&prefix).unwrap_or("");
        let seen = self.values(&prefix);
        for &(kind, want) in counts {
            let got = seen.iter().find(|(k, _)| *k == kind).map_or(0, |&(_, n)| n.parse().unwrap_or(u64::MAX));
            assert_eq!(got, want, "{vm}: expected {kind}={want}, saw the line {line:?}; serial log:\n{}", self.serial);
        }
        self
    }

    /// Panics, showing the whole serial log, unless `needles` occur in this
    /// order (each searched for after the end of the one before).
    pub fn assert_in_order(&self, needles: &[&str]) -> &Self {
        let mut from = 0;
        for (i, needle) in needles.iter().enumerate() {
            match self.serial[from..].find(needle) {
                Some(at) => from += at + needle.len(),
                None => panic!(
                    "expected {needle:?} after {:?}; serial log:\n{}",
                    needles[..i].last().copied().unwrap_or("the start"),
                    self.serial
                ),
            }
        }
        self
    }

    /// The `key=value` words after `prefix` on the first line that has it
    /// (`vm0: exits: io=46 cpuid=3` gives `[("io", "46"), ("cpuid", "3")]`
    /// for the prefix `vm0: exits: `). Panics, showing the serial log, if
    /// no line has `prefix`.
    pub fn values(&self, prefix: &str) -> Vec<(&str, &str)> {
        let line =
            self.line(prefix).unwrap_or_else(|| panic!("no {prefix:?} line in the serial log:\n{}", self.serial));
        line[line.find(prefix).unwrap() + prefix.len()..].split_whitespace().filter_map(|w| w.split_once('=')).collect()
    }

    /// The first line containing `needle`.
    pub fn line(&self, needle: &str) -> Option<&str> {
        self.serial.lines().find(|l| l.contains(needle))
    }
}

/// A running emulator and its serial line. Dropping it kills the emulator.
pub struct Session {
    child: Child,
    input: Option<Box<dyn Write + Send>>,
    out: Arc<(Mutex<Vec<u8>>, Condvar)>,
    /// How far `expect` has consumed the output.
    seen: usize,
    /// Text that ends any wait with a failure (see `fail_on`).
    fail_markers: Vec<String>,
    status_from: StatusFrom,
    /// The emulator's working files (Bochs: bochsrc, ISO, logs), removed
    /// with the session.
    scratch: Option<PathBuf>,
    started: Instant,
}

impl Session {
    /// Watches `child`, whose serial output arrives on `output` and whose
    /// serial input, if any, is `input`. With `log`, the output also goes to
    /// that file as it arrives, so that a run that is killed leaves its log.
    pub(crate) fn new(
        child: Child,
        mut output: impl Read + Send + 'static,
        input: Option<Box<dyn Write + Send>>,
        status_from: StatusFrom,
        scratch: Option<PathBuf>,
        log: Option<&Path>,
    ) -> Session {
        let out = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = out.clone();
        let mut log = log.map(|p| {
            std::fs::File::create(p).unwrap_or_else(|e| panic!("cannot create the serial log {}: {e}", p.display()))
        });
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Some(f) = log.as_mut() {
                    let _ = f.write_all(&buf[..n]);
                }
                let (lock, cv) = &*sink;
                lock.lock().unwrap().extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        // The hypervisor's last line: nothing a test waits for comes after it.
        let fail_markers = vec!["\nexit: ".to_string()];
        Session { child, input, out, seen: 0, fail_markers, status_from, scratch, started: Instant::now() }
    }

    /// Makes `expect` fail as soon as `marker` appears before what it waits
    /// for (a guest's "Kernel panic"), instead of at its timeout. The
    /// hypervisor's `exit:` line is always such a marker.
    pub fn fail_on(&mut self, marker: &str) {
        self.fail_markers.push(marker.to_string());
    }

    /// Everything the serial line carried so far, with its CRs dropped.
    pub fn output(&self) -> String {
        let raw = self.out.0.lock().unwrap();
        String::from_utf8_lossy(&raw).replace('\r', "")
    }

    /// Waits until `needle` appears after what earlier calls consumed, and
    /// returns the output in between. Panics with the log at the timeout or
    /// when a fail marker comes first.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        match self.wait_for(needle, timeout) {
            Ok(text) => text,
            Err(why) => {
                let all = self.output();
                let _ = self.child.kill();
                panic!("{why}; serial log:\n{all}{}", self.emulator_log());
            }
        }
    }

    /// Like [`Session::expect`], but returns None at the timeout or at a
    /// fail marker, leaving the emulator running and the consumed position
    /// where it was.
    pub fn try_expect(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_for(needle, timeout).ok()
    }

    /// `needle`'s text, or why it did not come. Each byte is scanned about
    /// once however long the wait and however much output arrives (a
    /// guest's console flood would otherwise make this quadratic).
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.out;
        let mut raw = lock.lock().unwrap();
        let longest = self.fail_markers.iter().map(String::len).max().unwrap_or(0).max(needle.len());
        // A marker may begin with the newline that ended the last match.
        let mut from = self.seen.saturating_sub(1);
        loop {
            let found = find(&raw[from..], needle.as_bytes()).map(|p| from + p).filter(|&p| p >= self.seen);
            let failed =
                self.fail_markers.iter().filter_map(|m| find(&raw[from..], m.as_bytes()).map(|p| (from + p, m))).min();
            match (found, failed) {
                (found, Some((at, marker))) if found.is_none_or(|p| at < p) => {
                    return Err(format!("saw {:?} while waiting for {needle:?}", marker.trim()));
                }
                (Some(pos), _) => {
                    let upto = pos + needle.len();
                    let text = String::from_utf8_lossy(&raw[self.seen..upto]).replace('\r', "");
                    self.seen = upto;
                    return Ok(text);
                }
                (None, _) if Instant::now() >= deadline => {
                    return Err(format!("timed out after {timeout:?} waiting for {needle:?}"));
                }
                (None, _) => {
                    // A match may straddle what has arrived and what comes next.
                    from = raw.len().saturating_sub(longest).max(from);
                    raw = cv.wait_timeout(raw, deadline.saturating_duration_since(Instant::now())).unwrap().0;
                }
            }
        }
    }

    /// How far [`Session::expect`] has consumed the output, in bytes.
    pub fn consumed(&self) -> usize {
        self.seen
    }

    /// How many bytes the serial line has carried so far.
    pub fn output_len(&self) -> usize {
        self.out.0.lock().unwrap().len()
    }

    /// The raw output after byte `from`, waiting up to `timeout` for some to
    /// arrive; empty if none did.
    pub fn output_after(&self, from: usize, timeout: Duration) -> Vec<u8> {
        let (lock, cv) = &*self.out;
        let raw = lock.lock().unwrap();
        let (raw, _) = cv.wait_timeout_while(raw, timeout, |raw| raw.len() <= from).unwrap();
        raw.get(from..).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// The emulator's exit status if it has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Types `text` on the serial line.
    pub fn send(&mut self, text: &str) {
        self.try_send(text).unwrap_or_else(|e| panic!("cannot type {text:?} into the emulator: {e}"));
    }

    /// Types `text` on the serial line; fails if the emulator no longer
    /// reads it.
    pub fn try_send(&mut self, text: &str) -> std::io::Result<()> {
        let input = self.input.as_mut().expect("this session has no serial input");
        input.write_all(text.as_bytes())?;
        input.flush()
    }

    /// Waits for the run to end and returns its status (see
    /// [`Outcome::status`]); at the timeout kills the emulator and returns
    /// None. A Bochs run ends at the `exit:` line, and Bochs is killed then.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.status_from == StatusFrom::ExitLine {
                if let Some(code) = status_from_exit_line(&self.output()) {
                    self.stop();
                    return Some(code);
                }
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the reader thread drain what is left.
                std::thread::sleep(Duration::from_millis(50));
                return match self.status_from {
                    StatusFrom::ExitCode => st.code(),
                    StatusFrom::ExitLine => {
                        eprintln!("the emulator ended by itself ({st}){}", self.emulator_log());
                        status_from_exit_line(&self.output())
                    }
                };
            }
            if Instant::now() >= deadline {
                self.stop();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs to the end (or `timeout`) and returns what happened.
    pub(crate) fn finish(mut self, timeout: Duration) -> Outcome {
        let status = self.wait(timeout);
        Outcome { status, serial: self.output() }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The end of the emulator's own log, for failure messages.
    fn emulator_log(&self) -> String {
        let Some(dir) = &self.scratch else { return String::new() };
        let text = std::fs::read_to_string(dir.join(crate::bochs::LOG)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("\nthe last lines of {}:\n{}", dir.join(crate::bochs::LOG).display(), tail.join("\n"))
    }
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
        // Shown for failed tests, and for all with --nocapture.
        eprintln!("the emulator ran for {:.1} s", self.started.elapsed().as_secs_f64());
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_line_maps_to_the_qemu_status() {
        assert_eq!(status_from_exit_line("[INFO ] all guests have stopped\r\nexit: success\r\n"), Some(EXIT_SUCCESS));
        assert_eq!(status_from_exit_line("FATAL: boom\nexit: failure\n"), Some(EXIT_FAILURE));
        assert_eq!(status_from_exit_line("exit: unsupported"), Some(EXIT_UNSUPPORTED));
    }

    #[test]
    fn exit_line_must_be_a_whole_line() {
        assert_eq!(status_from_exit_line("[INFO ] vm0: console: exit: success\n"), None);
        assert_eq!(status_from_exit_line("exit: successful\n"), None);
        assert_eq!(status_from_exit_line(""), None);
    }

    /// A session on canned serial output, with `sleep` standing in for the
    /// emulator.
    fn canned(serial: &'static [u8]) -> Session {
        let child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        Session::new(child, serial, None, StatusFrom::ExitLine, None, None)
    }

    #[test]
    fn expect_returns_the_output_up_to_each_needle_in_turn() {
        let mut s = canned(b"boot\r\n# uname\r\n6.1\r\n# ");
        assert_eq!(s.expect("# ", Duration::from_secs(5)), "boot\n# ");
        assert_eq!(s.expect("# ", Duration::from_secs(5)), "uname\n6.1\n# ");
    }

    #[test]
    #[should_panic(expected = "saw \"exit:\" while waiting for \"READY\"")]
    fn expect_fails_at_the_exit_line_instead_of_waiting_for_the_timeout() {
        canned(b"[INFO ] vm0: stopped\r\nexit: failure\r\n").expect("READY", Duration::from_secs(60));
    }

    #[test]
    #[should_panic(expected = "saw \"Kernel panic\" while waiting for \"# \"")]
    fn expect_fails_at_a_marker_the_test_names() {
        let mut s = canned(b"Kernel panic - not syncing\r\n# ");
        s.fail_on("Kernel panic");
        s.expect("# ", Duration::from_secs(60));
    }

    #[test]
    fn a_bochs_run_ends_with_the_status_of_its_exit_line() {
        let mut s = canned(b"[INFO ] all guests have stopped\r\nexit: success\r\n");
        assert_eq!(s.wait(Duration::from_secs(5)), Some(EXIT_SUCCESS));
    }

    #[test]
    fn exit_counts_are_read_per_kind() {
        let out = Outcome { status: None, serial: "vm0: exits: io=46 cpuid=3 hlt=1\n".into() };
        out.assert_exit_counts("vm0", &[("cpuid", 3), ("io", 46), ("npf", 0)]);
    }

    #[test]
    fn lines_in_order_pass() {
        let out = Outcome { status: None, serial: "vm0: set\nvm1: set\nvm0: kept\n".into() };
        out.assert_in_order(&["vm0: set", "vm1: set", "vm0: kept"]);
    }

    #[test]
    #[should_panic(expected = "expected \"vm1: set\" after \"vm0: kept\"")]
    fn a_line_out_of_order_is_named_with_the_one_it_should_follow() {
        let out = Outcome { status: None, serial: "vm0: set\nvm1: set\nvm0: kept\n".into() };
        out.assert_in_order(&["vm0: set", "vm0: kept", "vm1: set"]);
    }

    #[test]
    #[should_panic(expected = "expected hlt=2")]
    fn a_wrong_exit_count_is_named() {
        let out = Outcome { status: None, serial: "vm0: exits: io=46 cpuid=3 hlt=1\n".into() };
        out.assert_exit_counts("vm0", &[("hlt", 2)]);
    }
}

//! The serial console of a running emulator, shared by the QEMU and the
//! Bochs harness: the bytes arrive on a reader thread as the emulator sends
//! them, `expect` waits for text, `send` types on the line, and dropping the
//! session always kills the emulator (on success, on failure, on panic).
use crate::{EXIT_FAILURE, EXIT_SUCCESS, EXIT_UNSUPPORTED};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Child;
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
pub fn status_from_exit_line(serial: &str) -> Option<i32> {
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
        let line =
            self.line(&prefix).unwrap_or_else(|| panic!("no {prefix:?} line in the serial log:\n{}", self.serial));
        let seen: Vec<(&str, u64)> = line[line.find(&prefix).unwrap() + prefix.len()..]
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k, v.parse().unwrap_or(u64::MAX)))
            .collect();
        for &(kind, want) in counts {
            let got = seen.iter().find(|(k, _)| *k == kind).map_or(0, |&(_, n)| n);
            assert_eq!(got, want, "{vm}: expected {kind}={want}, saw the line {line:?}; serial log:\n{}", self.serial);
        }
        self
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
    status_from: StatusFrom,
    /// The emulator's working files (Bochs: bochsrc, ISO, logs), removed
    /// with the session.
    scratch: Option<PathBuf>,
}

impl Session {
    /// Watches `child`, whose serial output arrives on `output` and whose
    /// serial input, if any, is `input`.
    pub(crate) fn new(
        child: Child,
        mut output: impl Read + Send + 'static,
        input: Option<Box<dyn Write + Send>>,
        status_from: StatusFrom,
        scratch: Option<PathBuf>,
    ) -> Session {
        let out = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let (lock, cv) = &*sink;
                lock.lock().unwrap().extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        Session { child, input, out, seen: 0, status_from, scratch }
    }

    /// Everything the serial line carried so far, with its CRs dropped.
    pub fn output(&self) -> String {
        let raw = self.out.0.lock().unwrap();
        String::from_utf8_lossy(&raw).replace('\r', "")
    }

    /// Waits until `needle` appears after what earlier calls consumed, and
    /// returns the output in between. Panics with the log on timeout.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.out;
        let mut raw = lock.lock().unwrap();
        loop {
            let text = String::from_utf8_lossy(&raw[self.seen..]).into_owned();
            if let Some(pos) = text.find(needle) {
                let upto = pos + needle.len();
                self.seen += text[..upto].len();
                return text[..upto].replace('\r', "");
            }
            let now = Instant::now();
            if now >= deadline {
                let all = String::from_utf8_lossy(&raw).replace('\r', "");
                drop(raw);
                let _ = self.child.kill();
                panic!("timed out after {timeout:?} waiting for {needle:?}; serial log:\n{all}{}", self.emulator_log());
            }
            raw = cv.wait_timeout(raw, deadline - now).unwrap().0;
        }
    }

    /// Types `text` on the serial line.
    pub fn send(&mut self, text: &str) {
        let input = self.input.as_mut().expect("this session has no serial input");
        input.write_all(text.as_bytes()).unwrap();
        input.flush().unwrap();
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

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
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

    #[test]
    fn exit_counts_are_read_per_kind() {
        let out = Outcome { status: None, serial: "vm0: exits: io=46 cpuid=3 hlt=1\n".into() };
        out.assert_exit_counts("vm0", &[("cpuid", 3), ("io", 46), ("npf", 0)]);
    }

    #[test]
    #[should_panic(expected = "expected hlt=2")]
    fn a_wrong_exit_count_is_named() {
        let out = Outcome { status: None, serial: "vm0: exits: io=46 cpuid=3 hlt=1\n".into() };
        out.assert_exit_counts("vm0", &[("hlt", 2)]);
    }
}

//! The QEMU harness shared by the integration tests.
//!
//! Each test builds what it boots (once per test binary), starts QEMU with a
//! hard timeout, reads the serial output as it arrives, and always kills its
//! QEMU: on success, on failure and on panic (the guard's `Drop`).
pub mod stress_load;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// QEMU's exit status for each status the hypervisor reports through the
/// debug-exit device: `(value << 1) | 1`.
pub const EXIT_SUCCESS: i32 = 33;
pub const EXIT_FAILURE: i32 = 35;
pub const EXIT_UNSUPPORTED: i32 = 37;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn run_checked(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed with {status}");
}

/// Builds the hypervisor image (release, with symbols) once per process.
/// A separate target directory keeps this build out of the way of the
/// `cargo test` that runs us.
pub fn kernel() -> PathBuf {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            let target = root().join("target/kernel");
            run_checked(
                Command::new(env!("CARGO"))
                    .current_dir(root())
                    .args(["build", "--release", "-p", "hypervisor"])
                    .env("CARGO_TARGET_DIR", &target),
            );
            target.join("x86_64-unknown-linux-gnu/release/hypervisor")
        })
        .clone()
}

/// Builds a GRUB rescue ISO that boots `kernel` through multiboot2.
pub fn iso(kernel: &Path, name: &str, cmdline: &str) -> PathBuf {
    let out = root().join("target/iso").join(format!("{name}.iso"));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    run_checked(
        Command::new(root().join("scripts/mkiso"))
            .arg("--kernel")
            .arg(kernel)
            .arg("--cmdline")
            .arg(cmdline)
            .arg("--output")
            .arg(&out),
    );
    out
}

/// What a QEMU run left behind.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status, or None if it was killed at the timeout.
    pub status: Option<i32>,
    pub serial: String,
}

impl Outcome {
    /// Panics, showing the whole serial log, unless QEMU exited with `code`.
    pub fn assert_status(&self, code: i32) -> &Self {
        assert_eq!(
            self.status,
            Some(code),
            "expected QEMU exit status {code}, saw {:?}; serial log:\n{}",
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

    /// The first line containing `needle`.
    pub fn line(&self, needle: &str) -> Option<&str> {
        self.serial.lines().find(|l| l.contains(needle))
    }
}

/// A QEMU command line under construction.
pub struct Qemu {
    cmd: Command,
    timeout: Duration,
    /// A file that receives the serial output as it arrives.
    log: Option<PathBuf>,
}

impl Qemu {
    /// The machine every test uses: q35, SVM with nested paging, 1 GiB,
    /// the debug-exit device, serial on stdio.
    pub fn new() -> Qemu {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "q35", "-m", "1G", "-display", "none", "-no-reboot", "-monitor", "none"]).args([
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-serial",
            "stdio",
        ]);
        Qemu { cmd, timeout: Duration::from_secs(120), log: None }
    }

    pub fn cpu(mut self, model: &str) -> Self {
        self.cmd.args(["-cpu", model]);
        self
    }

    /// Boot `kernel` through multiboot v1 (QEMU's `-kernel`).
    pub fn kernel(mut self, kernel: &Path, cmdline: &str) -> Self {
        self.cmd.arg("-kernel").arg(kernel).arg("-append").arg(cmdline);
        self
    }

    /// Multiboot modules for `-kernel`: each is a path and its command line.
    pub fn modules(mut self, modules: &[(&Path, &str)]) -> Self {
        let list: Vec<String> = modules
            .iter()
            .map(|(p, args)| {
                let s = if args.is_empty() { p.display().to_string() } else { format!("{} {}", p.display(), args) };
                s.replace(',', ",,")
            })
            .collect();
        self.cmd.arg("-initrd").arg(list.join(","));
        self
    }

    pub fn cdrom(mut self, iso: &Path) -> Self {
        self.cmd.arg("-cdrom").arg(iso).args(["-boot", "d"]);
        self
    }

    /// Deterministic timing: guest TSC ticks count instructions.
    pub fn icount(mut self) -> Self {
        self.cmd.args(["-icount", "shift=0,sleep=off"]);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.cmd.arg(a);
        self
    }

    /// Also writes the serial output to `path` as it arrives, so that a run
    /// that is killed still leaves its log.
    pub fn log_to(mut self, path: &Path) -> Self {
        self.log = Some(path.to_path_buf());
        self
    }

    /// Runs to completion (or the timeout) and returns what happened.
    pub fn run(self) -> Outcome {
        let timeout = self.timeout;
        let mut s = self.spawn();
        let status = s.wait(timeout);
        Outcome { status, serial: s.output() }
    }

    /// Starts QEMU for an interactive session.
    pub fn spawn(mut self) -> Session {
        let mut child = self
            .cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start qemu-system-x86_64 (run scripts/test, which installs it)");
        let out = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        let mut log = self.log.as_ref().map(|p| {
            std::fs::File::create(p).unwrap_or_else(|e| panic!("cannot create the serial log {}: {e}", p.display()))
        });
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
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
        let stdin = child.stdin.take();
        Session { child, stdin, out, seen: 0 }
    }
}

impl Default for Qemu {
    fn default() -> Self {
        Self::new()
    }
}

/// A running QEMU. Dropping it kills QEMU.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<(Mutex<Vec<u8>>, Condvar)>,
    /// How far `expect` has consumed the output.
    seen: usize,
}

impl Session {
    /// Everything QEMU printed so far, with the serial port's CRs dropped.
    pub fn output(&self) -> String {
        let raw = self.out.0.lock().unwrap();
        String::from_utf8_lossy(&raw).replace('\r', "")
    }

    /// Waits until `needle` appears after what earlier calls consumed, and
    /// returns the output in between. Panics with the log on timeout.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        match self.try_expect(needle, timeout) {
            Some(text) => text,
            None => {
                let all = self.output();
                let _ = self.child.kill();
                panic!("timed out after {timeout:?} waiting for {needle:?}; serial log:\n{all}");
            }
        }
    }

    /// Like [`Session::expect`], but returns None at the timeout (leaving
    /// QEMU running and the consumed position where it was).
    pub fn try_expect(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let needle = needle.as_bytes();
        let (lock, cv) = &*self.out;
        let mut raw = lock.lock().unwrap();
        if needle.is_empty() {
            return Some(String::new());
        }
        // Where the search resumes: each byte is scanned about once, however
        // long the wait and however much output arrives meanwhile.
        let mut from = self.seen;
        loop {
            if let Some(pos) = raw[from..].windows(needle.len()).position(|w| w == needle) {
                let upto = from + pos + needle.len();
                let text = String::from_utf8_lossy(&raw[self.seen..upto]).replace('\r', "");
                self.seen = upto;
                return Some(text);
            }
            // A match may straddle what has arrived and what comes next.
            from = raw.len().saturating_sub(needle.len().saturating_sub(1)).max(from);
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            raw = cv.wait_timeout(raw, deadline - now).unwrap().0;
        }
    }

    /// How many bytes QEMU has printed so far.
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

    /// QEMU's exit status if it has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Types `text` on the serial line.
    pub fn send(&mut self, text: &str) {
        self.try_send(text).unwrap_or_else(|e| panic!("cannot type {text:?} into QEMU: {e}"));
    }

    /// Types `text` on the serial line; fails if QEMU no longer reads it.
    pub fn try_send(&mut self, text: &str) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        stdin.write_all(text.as_bytes())?;
        stdin.flush()
    }

    /// How far [`Session::expect`] has consumed the output, in bytes.
    pub fn consumed(&self) -> usize {
        self.seen
    }

    /// Waits for QEMU to exit; kills it at the timeout and returns None.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the pipe.
                std::thread::sleep(Duration::from_millis(50));
                return code(st);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn code(st: ExitStatus) -> Option<i32> {
    st.code()
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the small test guests in `tests/guests/` once per process.
pub fn test_guests() -> PathBuf {
    static GUESTS: OnceLock<PathBuf> = OnceLock::new();
    GUESTS
        .get_or_init(|| {
            let out = root().join("target/guests");
            run_checked(Command::new(root().join("tests/guests/build")).arg(&out));
            out
        })
        .clone()
}

/// The Linux guest built from Debian's packages by `guest-images/build`.
pub struct LinuxImages {
    pub bzimage: PathBuf,
    pub vmlinux: PathBuf,
    pub initramfs: PathBuf,
    /// The recommended guest command line.
    pub cmdline: String,
    /// What `uname -r` prints in the guest.
    pub release: String,
}

/// Builds (or reuses the cached) Linux guest images once per process.
pub fn linux_images() -> LinuxImages {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| run_checked(&mut Command::new(root().join("guest-images/build"))));
    let out = root().join("guest-images/out");
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")).trim().to_string();
    let version = read("kernel-version");
    // "linux-image-6.1.0-56-amd64 6.1.192-2": the release is the package
    // name without its prefix.
    let release = version.split_whitespace().next().unwrap().trim_start_matches("linux-image-").to_string();
    LinuxImages {
        bzimage: out.join("bzImage"),
        vmlinux: out.join("vmlinux"),
        initramfs: out.join("initramfs.cpio"),
        cmdline: read("cmdline.txt"),
        release,
    }
}

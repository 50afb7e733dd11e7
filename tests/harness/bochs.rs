//! Bochs 2.7: the second SVM implementation. The hypervisor boots from a
//! GRUB ISO (Bochs cannot load a multiboot kernel itself), COM1 is a TCP
//! connection to the harness, and since Bochs never exits by itself the run
//! ends at the hypervisor's `exit:` line (see `StatusFrom::ExitLine`).
//!
//! Each run gets a scratch directory under target/bochs with its bochsrc
//! (from scripts/bochsrc.template), ISO and Bochs's own log; the session
//! removes it when it ends.
use crate::console::{Outcome, Session, StatusFrom};
use crate::{iso, root};
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Bochs's own log, in the scratch directory.
pub(crate) const LOG: &str = "bochs.log";
const TEMPLATE: &str = include_str!("../../scripts/bochsrc.template");

/// A Bochs machine under construction.
pub struct Bochs {
    model: String,
    kernel: Option<(PathBuf, String)>,
    modules: Vec<(PathBuf, String)>,
    cpus: u32,
    timeout: Duration,
}

impl Bochs {
    /// The machine of scripts/bochsrc.template with `cpu: model=<model>`.
    pub fn new(model: &str) -> Bochs {
        Bochs {
            model: model.to_string(),
            kernel: None,
            modules: Vec::new(),
            cpus: 1,
            timeout: Duration::from_secs(300),
        }
    }

    /// `n` CPUs of the model (1 without it).
    pub fn cpus(mut self, n: u32) -> Self {
        self.cpus = n;
        self
    }

    /// The hypervisor image and its command line; GRUB boots it through
    /// multiboot2.
    pub fn kernel(mut self, kernel: &Path, cmdline: &str) -> Self {
        self.kernel = Some((kernel.to_path_buf(), cmdline.to_string()));
        self
    }

    /// Multiboot modules: each is a path and its command line (after the
    /// module's name, as with QEMU's `-initrd`).
    pub fn modules(mut self, modules: &[(&Path, &str)]) -> Self {
        self.modules = modules.iter().map(|(p, a)| (p.to_path_buf(), a.to_string())).collect();
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Runs to the hypervisor's `exit:` line (or the timeout). A Bochs that
    /// dies within seconds of its start, before the machine prints a byte,
    /// is started again, up to twice: Bochs aborts while it sets itself up
    /// when it loses a race with another Bochs starting at the same moment
    /// (seen once in a full suite: SIGABRT after its serial port's set-up,
    /// 0.1 s in). A run that printed anything, or ran longer, counts as it
    /// is.
    pub fn run(self) -> Outcome {
        const EARLY: Duration = Duration::from_secs(10);
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let out = self.start().finish(self.timeout);
            let died_at_start = out.status.is_none() && out.serial.is_empty() && started.elapsed() < EARLY;
            if !died_at_start || attempt == 3 {
                return out;
            }
            eprintln!("Bochs ended before the machine printed anything (attempt {attempt} of 3); starting it again");
            attempt += 1;
        }
    }

    /// Starts Bochs for an interactive session.
    pub fn spawn(self) -> Session {
        self.start()
    }

    fn start(&self) -> Session {
        let scratch = scratch_dir();
        let (kernel, cmdline) = self.kernel.as_ref().expect("Bochs::kernel was not given");
        let modules: Vec<(&Path, &str)> = self.modules.iter().map(|(p, a)| (p.as_path(), a.as_str())).collect();
        iso(kernel, &scratch.join("hypervisor.iso"), cmdline, &modules);

        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot listen for Bochs's COM1");
        let port = listener.local_addr().unwrap().port();
        std::fs::write(scratch.join("bochsrc"), bochsrc(&self.model, self.cpus, port)).unwrap();
        std::fs::write(scratch.join("cont"), "c\n").unwrap();
        let out = std::fs::File::create(scratch.join("bochs.out")).unwrap();
        let child = Command::new("bochs")
            .args(["-q", "-f", "bochsrc", "-rc", "cont"])
            .current_dir(&scratch)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start bochs (run scripts/test, which installs it)");
        let (child, serial) = accept_com1(child, &listener, &scratch);
        let input = serial.try_clone().unwrap();
        Session::new(child, serial, Some(Box::new(input)), StatusFrom::ExitLine, Some(scratch), None)
    }
}

/// scripts/bochsrc.template for `cpus` CPUs of `model`, COM1 connecting
/// to `port`.
fn bochsrc(model: &str, cpus: u32, port: u16) -> String {
    TEMPLATE
        .replace("@MODEL@", model)
        .replace("@CPUS@", &cpus.to_string())
        .replace("@ISO@", "hypervisor.iso")
        .replace("@SERIAL_MODE@", "socket-client")
        .replace("@SERIAL_PORT@", &port.to_string())
        .replace("@LOG@", LOG)
}

/// A fresh directory for one run.
fn scratch_dir() -> PathBuf {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir = root().join("target/bochs").join(format!("{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits for Bochs to connect its COM1 (it does so while setting up its
/// devices, before the first instruction). Kills Bochs before panicking.
fn accept_com1(mut child: Child, listener: &TcpListener, scratch: &Path) -> (Child, TcpStream) {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let why = match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return (child, stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => match child.try_wait().unwrap() {
                Some(st) => format!("Bochs ended ({st}) before connecting COM1"),
                None if Instant::now() >= deadline => "Bochs did not connect COM1 within 60 s".to_string(),
                None => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
            Err(e) => format!("accept: {e}"),
        };
        let _ = child.kill();
        let _ = child.wait();
        let said = std::fs::read_to_string(scratch.join("bochs.out")).unwrap_or_default();
        panic!("{why}; Bochs printed:\n{said}");
    }
}

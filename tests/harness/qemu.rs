//! QEMU: the machine every QEMU test uses, its serial console on stdio, and
//! its exit status from the isa-debug-exit device.
use crate::console::{Outcome, Session, StatusFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

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

    /// `n` host CPUs (QEMU's `-smp`; 1 without it).
    pub fn smp(mut self, n: u32) -> Self {
        self.cmd.args(["-smp", &n.to_string()]);
        self
    }

    /// Boot `kernel` through multiboot v1 (QEMU's `-kernel`).
    pub fn kernel(mut self, kernel: &Path, cmdline: &str) -> Self {
        self.cmd.arg("-kernel").arg(kernel).arg("-append").arg(cmdline);
        self
    }

    /// Multiboot modules for `-kernel`: each is a path and its command line.
    /// No modules, no `-initrd`.
    pub fn modules(mut self, modules: &[(&Path, &str)]) -> Self {
        if modules.is_empty() {
            return self;
        }
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
        self.spawn().finish(timeout)
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
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().map(|s| Box::new(s) as Box<dyn std::io::Write + Send>);
        Session::new(child, stdout, stdin, StatusFrom::ExitCode, None, self.log.as_deref())
    }
}

impl Default for Qemu {
    fn default() -> Self {
        Self::new()
    }
}

//! The SVM implementations the tests run on, and one way to boot the
//! hypervisor on any of them, so that a test's body is written once and run
//! per implementation.
use crate::bochs::Bochs;
use crate::console::{Outcome, Session};
use crate::kernel;
use crate::qemu::Qemu;
use std::path::Path;
use std::time::Duration;

/// An SVM implementation: an emulator and its CPU model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Svm {
    /// QEMU 7.2's TCG with this `-cpu`.
    Qemu(&'static str),
    /// Bochs 2.7 with this `cpu: model=`.
    Bochs(&'static str),
}

/// QEMU's default model with SVM and nested paging: no NRIPS, no decode
/// assists, no clean bits, no flush-by-ASID.
pub const QEMU64: Svm = Svm::Qemu("qemu64,+svm,+npt");
/// A Zen 2 server model: the CPUID a Linux guest sees on a recent AMD host.
pub const QEMU_EPYC_ROME: Svm = Svm::Qemu("EPYC-Rome,+svm,+npt");
/// Everything TCG can emulate.
pub const QEMU_MAX: Svm = Svm::Qemu("max");
/// Zen: NP, NRIPS, flush-by-ASID, XSAVE.
pub const BOCHS_RYZEN: Svm = Svm::Bochs("ryzen");
/// Bulldozer: NP, NRIPS, flush-by-ASID, XSAVE.
pub const BOCHS_ZAMBEZI: Svm = Svm::Bochs("zambezi");
/// K10: NP only.
pub const BOCHS_PHENOM: Svm = Svm::Bochs("phenom_8650_toliman");

impl Svm {
    /// The hypervisor (`kernel()`) with `cmdline` and `modules`, booted
    /// through multiboot v1 on QEMU (`-kernel`) and through a GRUB ISO
    /// (multiboot2) on Bochs.
    pub fn machine(self, cmdline: &str, modules: &[(&Path, &str)]) -> Machine {
        match self {
            Svm::Qemu(cpu) => Machine::Qemu(Qemu::new().cpu(cpu).kernel(&kernel(), cmdline).modules(modules)),
            Svm::Bochs(model) => Machine::Bochs(Bochs::new(model).kernel(&kernel(), cmdline).modules(modules)),
        }
    }

    /// `t` stretched by how much slower this implementation runs than QEMU's
    /// TCG on the same work: the wait limits of a test written for QEMU.
    pub fn patience(self, t: Duration) -> Duration {
        match self {
            Svm::Qemu(_) => t,
            Svm::Bochs(_) => t * BOCHS_SLOWDOWN,
        }
    }
}

/// The stretch of QEMU's wait limits for Bochs. Measured (docs/testing.md):
/// the Linux PVH boot and shell take ~4 s on QEMU and ~40 s on Bochs, while
/// the limits written for QEMU allow ~300 s; twice that still leaves Bochs
/// 15 times its need, and a hung run costs at most 10 minutes.
const BOCHS_SLOWDOWN: u32 = 2;

/// A machine on one implementation, ready to start.
pub enum Machine {
    Qemu(Qemu),
    Bochs(Bochs),
}

impl Machine {
    /// Deterministic timing: QEMU's `-icount`. A Bochs machine always is
    /// (`clock: sync=none`).
    pub fn icount(self) -> Self {
        match self {
            Machine::Qemu(q) => Machine::Qemu(q.icount()),
            bochs => bochs,
        }
    }

    /// `n` host CPUs: QEMU's `-smp`, Bochs's `cpu: count=`.
    pub fn cpus(self, n: u32) -> Self {
        match self {
            Machine::Qemu(q) => Machine::Qemu(q.smp(n)),
            Machine::Bochs(b) => Machine::Bochs(b.cpus(n)),
        }
    }

    pub fn timeout(self, t: Duration) -> Self {
        match self {
            Machine::Qemu(q) => Machine::Qemu(q.timeout(t)),
            Machine::Bochs(b) => Machine::Bochs(b.timeout(t)),
        }
    }

    pub fn run(self) -> Outcome {
        match self {
            Machine::Qemu(q) => q.run(),
            Machine::Bochs(b) => b.run(),
        }
    }

    pub fn spawn(self) -> Session {
        match self {
            Machine::Qemu(q) => q.spawn(),
            Machine::Bochs(b) => b.spawn(),
        }
    }
}

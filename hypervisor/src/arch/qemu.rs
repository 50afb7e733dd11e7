//! Leaving the emulator with a status: the `exit:` line on the serial port,
//! then QEMU's isa-debug-exit device.
//!
//! `scripts/run` and the tests start QEMU with
//! `-device isa-debug-exit,iobase=0xf4,iosize=0x04`; a write of `v` makes
//! QEMU exit with status `(v << 1) | 1`. On other machines (Bochs, hardware)
//! nothing listens at port 0xF4 and the caller halts afterwards; there the
//! `exit: <status>` line, always the last thing the hypervisor prints, is what
//! a watcher of the serial log (the Bochs test harness, `scripts/run --bochs`)
//! ends the run on.
use super::port::Port;
use core::fmt::Write;

/// The statuses the hypervisor leaves QEMU with, as QEMU reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitStatus {
    /// Every VM finished cleanly: QEMU exits with 33.
    Success = 0x10,
    /// A host failure (exception, panic): QEMU exits with 35.
    Failure = 0x11,
    /// The CPU cannot run the hypervisor (no SVM, no NPT...): QEMU exits with 37.
    Unsupported = 0x12,
}

impl ExitStatus {
    /// The word on the final `exit:` line.
    pub fn name(self) -> &'static str {
        match self {
            ExitStatus::Success => "success",
            ExitStatus::Failure => "failure",
            ExitStatus::Unsupported => "unsupported",
        }
    }
}

pub fn exit(status: ExitStatus) {
    // Unlocked: the failure path may run while the logger's lock is held.
    let _ = writeln!(super::RawSerial, "exit: {}", status.name());
    // SAFETY: port 0xF4 is either QEMU's debug-exit device or unused.
    let port = unsafe { Port::<u32>::new(0xF4) };
    port.write(status as u32);
}

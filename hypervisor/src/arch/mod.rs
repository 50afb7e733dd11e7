//! arch: the trusted base.
//!
//! Every `unsafe` block of the kernel lives under this module and carries a
//! `SAFETY:` comment; the layers above see only safe, typed wrappers. The
//! module builds on the host too (its pure parts are tested there), but only
//! the kernel binary executes it.
use core::fmt::{self, Write};

pub mod acpi;
mod claims;
pub mod context;
pub mod cpu;
pub mod debugreg;
pub mod frames;
pub mod gdt;
pub mod idt;
pub mod lapic;
pub mod lend;
pub mod paging;
pub mod phys;
pub mod port;
pub mod qemu;
pub mod serial;
#[cfg(test)]
pub mod sim;
pub mod smp;
pub mod svm;
pub mod vmspace;
pub mod xsave;

/// A `fmt::Write` sink on COM1 that takes no lock: for the last words of a
/// dying kernel, when the logger's lock may be held by the code that died.
pub struct RawSerial;

impl Write for RawSerial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        serial::write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Reports a fatal host error, leaves QEMU with a failure status when under
/// QEMU, and stops the CPU.
pub fn fatal(args: fmt::Arguments<'_>) -> ! {
    let _ = writeln!(RawSerial, "\nFATAL: {args}");
    qemu::exit(qemu::ExitStatus::Failure);
    cpu::halt_forever()
}

/// Sets up this CPU's descriptor tables and exception handlers.
pub fn init_cpu(cpu: usize) {
    // SAFETY: called once per CPU at boot, boot CPU first, with its index.
    unsafe {
        gdt::init(cpu);
        idt::init(cpu == 0);
    }
    cpu::set_current(cpu);
}

//! arch: the trusted base.
//!
//! Every `unsafe` block of the kernel lives under this module and carries a
//! `SAFETY:` comment; the layers above see only safe, typed wrappers. The
//! module builds on the host too (its pure parts are tested there), but only
//! the kernel binary executes it.
use core::fmt::{self, Write};

pub mod acpi;
pub mod context;
pub mod cpu;
pub mod frames;
pub mod gdt;
pub mod idt;
pub mod lapic;
pub mod phys;
pub mod port;
pub mod qemu;
pub mod serial;
pub mod svm;

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

unsafe extern "C" {
    static mut boot_stack: u64;
}

const STACK_CANARY: u64 = 0x57AC_C0DE_57AC_C0DE;

fn stack_bottom() -> *mut u64 {
    core::ptr::addr_of_mut!(boot_stack)
}

/// Plants the canary at the bottom of the boot stack.
pub fn plant_stack_canary() {
    // SAFETY: the lowest word of the boot stack is never reached unless the
    // stack overflowed; writing it is writing our own .bss.
    unsafe { stack_bottom().write_volatile(STACK_CANARY) };
}

/// Stops with a report if the boot stack overflowed into its last word.
pub fn check_stack() {
    // SAFETY: reading our own .bss word.
    if unsafe { stack_bottom().read_volatile() } != STACK_CANARY {
        fatal(format_args!("kernel stack overflow (boot stack canary overwritten)"));
    }
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

//! The kernel image: boot assembly, the runtime glue, and `kmain`.
//!
//! Everything else lives in the `hypervisor` library, which also builds and
//! tests on the host.
#![no_std]
#![no_main]
#![forbid(unsafe_op_in_unsafe_fn)]

#[path = "arch/rt.rs"]
mod rt;

core::arch::global_asm!(include_str!("arch/boot.S"), options(att_syntax));
core::arch::global_asm!(include_str!("arch/ap_boot.S"), options(att_syntax));

/// Called by `boot.S` in long mode with the loader's magic and information
/// address.
#[unsafe(no_mangle)]
extern "C" fn kmain(magic: u32, info: u32) -> ! {
    hypervisor::kernel::boot(magic, u64::from(info))
}

//! The syscall layer: the only door into the kernel for the VMM.
//!
//! The names follow CertiKOS. Every call names the object it acts on by a
//! handle (a VM or a vCPU) and checks that the calling process owns it, so
//! the VMM could move to ring 3 without changing. A hostile or buggy caller
//! gets a [`SysError`], never a panic.
//!
//! | call | what |
//! |---|---|
//! | [`sys_vm_create`], [`sys_vcpu_create`], [`sys_vm_destroy`] | VM objects, with frames from the caller's container |
//! | [`sys_npt_map`], [`sys_npt_unmap`] | guest RAM: frames from the caller's container, mapped with the largest pages that fit |
//! | [`sys_guest_read`], [`sys_guest_write`] | copy to and from guest RAM by guest-physical address |
//! | [`sys_run`] | enter the guest until an exit or the caller's deadline; enforces the time slice |
//! | [`sys_get_exit_reason`], [`sys_get_exit_io_port`], [`sys_get_exit_io_width`], [`sys_get_exit_io_rep`], [`sys_get_exit_io_str`], [`sys_get_exit_io_write`], [`sys_get_exit_io_neip`], [`sys_get_exit_fault_addr`] | the last exit's details |
//! | [`sys_inject`], [`sys_check_shadow`], [`sys_check_pending_event`], [`sys_check_pending_interrupt`] | event injection (external interrupts through V_IRQ, which waits for the guest's interrupt window itself) |
//! | [`sys_complete_instruction`], [`sys_get_next_rip`] | finishing an intercepted instruction (RIP, interrupt shadow, single-step) |
//! | [`sys_reg_get`], [`sys_reg_set`], [`sys_seg_get`], [`sys_seg_set`] | guest registers |
//! | [`sys_set_io_intercept`], [`sys_set_exception_intercept`] | what traps |
//! | [`sys_cpuid`] | the guest's CPUID, from its VM's CPU model (`vm::cpuid`) |
//! | [`sys_write_cr4`], [`sys_xsetbv`] | the guest's CR4 and XCR0 writes, checked as the CPU checks them |
mod door;
mod fast;
mod granted;
mod ipc;
pub mod time;
mod vmobj;

pub use door::Kernel;
pub use granted::*;
pub use ipc::*;
pub use sysabi::{ExitReason, GuestFault, NextRipSource, Reg, SegReg, SysError, SysResult, VmExit};
pub use time::NEVER;
pub use vmobj::*;

/// The hypercall ABI version guests see in CPUID 0x4000_0001.
pub const HYPERCALL_VERSION: u32 = hvabi::ABI_VERSION;

//! The syscall layer: the only door into the kernel for the VMM.
//!
//! [`Kernel`] implements `sysabi::Sys`, the interface the VMM crate is
//! written against; each of its methods works out the calling process from
//! the current thread (`Caller::current`) and calls the function below
//! that does the work. Every call names the object it acts on by a handle
//! and checks that the calling process owns it, acting under one lock of the
//! object's slot, so the VMM could move to ring 3 without changing. A hostile
//! or buggy caller gets a [`SysError`], never a panic.
//!
//! | call | what |
//! |---|---|
//! | [`sys_vm_create`], [`sys_vcpu_create`], [`sys_vm_destroy`] | VM objects, with frames from the caller's container |
//! | [`sys_npt_map`] | guest RAM: frames from the caller's container, mapped with the largest pages that fit |
//! | [`sys_guest_read`], [`sys_guest_write`] | copy to and from guest RAM by guest-physical address |
//! | [`sys_run`] | enter the guest until an exit or the caller's deadline; the fast path; the time slice |
//! | [`sys_inject`], [`sys_check_pending_interrupt`], [`sys_withdraw_interrupt`] | event injection (external interrupts through V_IRQ, which waits for the guest's interrupt window itself; a posted one not yet taken can be taken back) |
//! | [`sys_complete_instruction`], [`sys_get_next_rip`] | finishing an intercepted instruction (RIP, interrupt shadow, single-step) |
//! | [`sys_reg_get`], [`sys_reg_set`], [`sys_seg_get`], [`sys_seg_set`] | guest registers |
//! | [`sys_set_io_intercept`], [`sys_set_exception_intercept`], [`sys_set_iret_intercept`] | what traps |
//! | [`sys_cpuid`] | the guest's CPUID, from its VM's CPU model (`vm::cpuid`) |
//! | [`sys_write_cr4`], [`sys_xsetbv`] | the guest's CR4 and XCR0 writes, checked as the CPU checks them |
//! | [`sys_get_stats`], [`sys_reset_stats`], [`sys_get_paths`], [`sys_vcpu_info`] | statistics and identity of a vCPU |
//! | [`sys_now_ns`], [`sys_guest_tsc`], [`sys_tsc_hz`] | the granted clock |
//! | [`sys_yield`], [`sys_idle_until`], [`sys_cpu_usage`] | the granted share of the CPU, and what the process used of it (`account`) |
//! | [`sys_fork_join`], [`sys_vcpu_kick`], [`sys_vcpu_halt`] | a thread per vCPU, on the CPUs asked for; a kick that ends a vCPU's run or halt from another thread (`kick`) |
//! | [`sys_console_write`], [`sys_console_read`] | the granted console |
//! | [`sys_chan_send`], [`sys_chan_recv`] | channels between VMs' processes |
//! | [`sys_net_info`], [`sys_net_send`], [`sys_net_recv`] | the granted port of the switch between VMs (`switch`) |
//!
//! [`grant_process`] gives a new process its console, clock, CPU share and
//! switch port;
//! [`end_process`] takes back everything a process had (its VMs, grants,
//! channels, pid and quota). Host tests of every call: `tests/`.
mod account;
pub mod console;
mod constant_mmio;
mod door;
mod fast;
mod granted;
mod ipc;
mod kick;
mod net;
mod switch;
#[cfg(test)]
mod tests;
pub mod time;
mod vcpus;
mod vmobj;

pub use door::Kernel;
pub use granted::*;
pub use ipc::*;
pub use kick::sys_vcpu_kick;
pub use net::*;
pub use sysabi::{ExitReason, GuestFault, NextRipSource, Reg, SegReg, SysError, SysResult, VmExit};
pub use time::NEVER;
pub use vcpus::*;
pub use vmobj::*;

/// The hypercall ABI version guests see in CPUID 0x4000_0001.
pub const HYPERCALL_VERSION: u32 = hvabi::ABI_VERSION;

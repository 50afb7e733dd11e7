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
mod fast;
mod ipc;
pub mod time;
mod vmobj;

pub use crate::vm::cr::GuestFault;
pub use crate::vm::{ExitReason, NextRipSource, Reg, SegReg, VmExit};
pub use ipc::*;
pub use time::NEVER;
pub use vmobj::*;

/// The hypercall ABI version guests see in CPUID 0x4000_0001.
pub const HYPERCALL_VERSION: u32 = hvabi::ABI_VERSION;

/// Why a system call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysError {
    /// The handle names no live object.
    NoSuchObject,
    /// The object belongs to another process.
    NotOwner,
    /// The caller's container has no quota left for the frames this needs.
    OutOfQuota,
    /// Physical memory ran out.
    OutOfMemory,
    /// Every slot of this kind of object is in use.
    NoSlot,
    /// An argument is out of range or misaligned.
    BadArgument,
    /// A guest-physical range is not backed by the VM's RAM.
    BadGuestAddress,
    /// An event is already queued for injection.
    Busy,
    /// There was no exit yet, or the last exit was of another kind.
    NoExit,
    /// The channel is full (send) or empty (receive).
    WouldBlock,
    /// A message or buffer size is out of bounds.
    TooBig,
}

impl core::fmt::Display for SysError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SysError::NoSuchObject => "no such object",
            SysError::NotOwner => "object belongs to another process",
            SysError::OutOfQuota => "out of quota",
            SysError::OutOfMemory => "out of physical memory",
            SysError::NoSlot => "no free slot",
            SysError::BadArgument => "bad argument",
            SysError::BadGuestAddress => "guest-physical address outside the VM's memory",
            SysError::Busy => "an event is already pending",
            SysError::NoExit => "no such exit information",
            SysError::WouldBlock => "the channel is full or empty",
            SysError::TooBig => "message or buffer size out of bounds",
        })
    }
}

pub type SysResult<T> = Result<T, SysError>;

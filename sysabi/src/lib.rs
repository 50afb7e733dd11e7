//! The kernel's interface: what the VMM (and any other process) may ask of
//! the kernel, and nothing of how the kernel does it.
//!
//! This crate plays for the VMM the role `hvabi` plays for guests: handles,
//! the guest registers, the typed VM exit, the exit statistics, errors, the
//! declared virtual CPU, and the [`Sys`] trait that gathers the calls. The
//! kernel (`hypervisor`) implements `Sys`; the VMM (`vmm`) uses only this
//! crate, so Cargo's dependency graph enforces the layering: the VMM cannot
//! name the kernel's internals. Host tests of the VMM implement `Sys` with
//! scripted exits.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod cpuid;
mod error;
pub mod exit;
mod handles;
pub mod net;
mod regs;
pub mod stats;
mod sys;

pub use cpuid::CpuidResult;
pub use error::{GuestFault, SysError, SysResult};
pub use exit::{ExitReason, RawExit, VmExit};
pub use handles::{ClockHandle, ConsoleHandle, Grants, SchedHandle, VcpuHandle, VmHandle};
pub use net::{GuestSpan, MacAddr, NetHandle, NetPortInfo, NetStats};
pub use regs::{rax_after_in, NextRipSource, Reg, SegReg};
pub use stats::{CpuUsage, ExitStats, PathStats, ReasonStats};
pub use sys::{CodeAtRip, Sys, ThreadCpu, VcpuInfo};

/// "No deadline", for [`Sys::run`].
pub const NEVER: u64 = u64::MAX;

//! Typed AMD SVM data structures: the virtual machine control block (VMCB)
//! and the permission maps it points at, following the AMD64 Architecture
//! Programmer's Manual, volume 2, chapter 15 and appendices B and C.
//!
//! This is a pure data-and-logic crate. It never executes an SVM
//! instruction and touches no hardware, so all of it is tested on the host
//! with `cargo test -p vmcb`; the hypervisor's `vm` layer places these
//! structures in physical pages and runs VMRUN on them. Its one `unsafe`
//! item is [`ControlArea::bind_host_memory`], a contract without unsafe
//! code inside: the VMCB's host-physical pointers are set only by a caller
//! that owns what they point at, so a VMCB built through the safe interface
//! never lets a guest reach host memory, ports or MSRs directly.
//!
//! What is here:
//!
//! - [`Vmcb`] = [`ControlArea`] (0x000..0x400) + [`StateSaveArea`]
//!   (0x400..0x1000), every field at its architectural offset, each offset
//!   pinned by a compile-time `offset_of!` assertion, the 4 KiB size and
//!   alignment too. Reserved bytes are private and zero.
//! - Intercept vectors: [`CrSet`], [`DrSet`], [`ExceptionIntercepts`],
//!   [`InterceptMisc1`], [`InterceptMisc2`], [`InterceptMisc3`].
//! - [`ExitCode`]: every code of table C-1, with the rule for 32-bit
//!   EXITCODE writers (QEMU TCG) described on the [`exit_code`] module.
//! - EXITINFO decoders: [`IoioInfo`], [`NestedPageFault`],
//!   [`MsrExitKind`], [`ExceptionExit`], [`CrAccessInfo`],
//!   [`DrAccessInfo`], [`TaskSwitchInfo`].
//! - [`EventInj`] for EVENTINJ and EXITINTINFO.
//! - Control words: [`TlbControl`], [`CleanBits`], [`IntControl`],
//!   [`InterruptState`], [`NestedControl`], [`VirtExtensions`],
//!   [`ErapControl`].
//! - [`Iopm`] (12 KiB) and [`Msrpm`] (8 KiB) permission maps.
//! - [`check_vmrun_state`]: the guest-state checks of VMRUN (§15.5.1), in
//!   software, naming the field that fails.
//! - Save-area helpers: [`Efer`], [`Segment`], [`SegmentAttributes`].
//!
//! Principles: every hardware field has a type; a value the hardware might
//! hand back that this crate does not understand is kept, not dropped
//! (flags types retain unknown bits, [`ExitCode::Unknown`] keeps the raw
//! code); decoders return typed errors and never panic.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod control;
mod controls;
mod efer;
mod event;
pub mod exit_code;
mod exit_info;
mod intercept;
mod iopm;
mod msrpm;
mod save;
mod segment;
mod vmcb;

pub use check::{check_vmrun_state, StateError, StateLimits};
pub use control::{ControlArea, ALWAYS_INTERCEPTED_MISC1, ALWAYS_INTERCEPTED_MISC2, CONTROL_AREA_SIZE};
pub use controls::{CleanBits, ErapControl, IntControl, InterruptState, NestedControl, TlbControl, VirtExtensions};
pub use efer::Efer;
pub use event::{EventInj, EventType, ExitIntInfo};
pub use exit_code::ExitCode;
pub use exit_info::{
    exception_has_error_code, AddressSize, CrAccessInfo, DrAccessInfo, ExceptionExit, ExitInfoError, IoAccessSize,
    IoDirection, IoioInfo, MsrExitKind, NestedPageFault, NpfErrorCode, NpfStage, SegmentRegister, TaskSwitchInfo,
    TaskSwitchReason,
};
pub use intercept::{CrSet, DrSet, ExceptionIntercepts, InterceptMisc1, InterceptMisc2, InterceptMisc3};
pub use iopm::{Iopm, IOPM_SIZE};
pub use msrpm::{MsrAccess, MsrOutsideMsrpm, Msrpm, MSRPM_SIZE};
pub use save::{StateSaveArea, STATE_SAVE_AREA_SIZE};
pub use segment::{Segment, SegmentAttributes};
pub use vmcb::{Vmcb, VMCB_SIZE};

//! Certivisor: a type-1 hypervisor for AMD SVM with nested paging.
//!
//! The kernel is a stack of layers in the manner of CertiKOS. Each layer has
//! a narrow interface and, beside its implementation, an executable `spec`
//! that the layer above relies on; host tests check the implementation
//! against the spec (see `docs/layers.md`).
//!
//! | layer    | module      | may use `unsafe` |
//! |----------|-------------|------------------|
//! | arch     | [`arch`]    | yes: the trusted base, every block carries a `SAFETY:` note; imports no layer above |
//! | mm       | [`mm`]      | no |
//! | sync     | [`sync`]    | no (atomics only) |
//! | thread   | [`thread`]  | no |
//! | proc     | [`proc`]    | no |
//! | vm       | [`vm`]      | no |
//! | syscall  | [`syscall`] | no: the door, `sysabi::Sys` implemented by [`syscall::Kernel`] |
//!
//! Beside the stack: [`boot`] parses the boot information (multiboot2,
//! command line, guest modules), [`kernel`] is init (it brings the layers
//! up in order, then starts the VMM, the `vmm` crate, in one process per
//! VM), [`selftest`] checks the layers at boot, and [`logger`] writes the
//! log to the serial port. The library builds for the host too: host tests
//! run everything above `arch` on the simulated machine of `arch::sim`
//! (`testkit` sets up the kernel's global instances over it); only the
//! kernel binary (`main.rs`) needs a CPU. `docs/architecture.md` has the
//! crate graph.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod arch;
#[deny(unsafe_code)]
pub mod boot;
#[deny(unsafe_code)]
pub mod kernel;
#[deny(unsafe_code)]
pub mod logger;
#[deny(unsafe_code)]
pub mod mm;
#[deny(unsafe_code)]
pub mod proc;
#[deny(unsafe_code)]
pub mod selftest;
#[deny(unsafe_code)]
pub mod smptest;
#[deny(unsafe_code)]
pub mod sync;
#[deny(unsafe_code)]
pub mod syscall;
#[cfg(test)]
#[deny(unsafe_code)]
mod testkit;
#[deny(unsafe_code)]
pub mod thread;
#[deny(unsafe_code)]
pub mod vm;

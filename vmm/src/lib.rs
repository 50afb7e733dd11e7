//! The VMM: guest loaders, device models, the exit loop and the hypercall
//! service.
//!
//! It uses the kernel only through [`sysabi::Sys`], and depends on no
//! crate of the kernel's: Cargo keeps it from reaching past that door. The
//! kernel runs it in a process of its own per VM (`hypervisor`'s init);
//! host tests run it against a scripted `Sys`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
pub mod bus;
pub mod dev;
pub mod guestlog;
pub mod guestmem;
pub mod hcbuf;
pub mod hvdev;
pub mod hypercall;
pub mod launch;
pub mod loader;
pub mod msr;
pub mod vcpu;
pub mod virtio;

#[cfg(test)]
mod proptest_cases;

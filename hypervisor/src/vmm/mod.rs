//! The VMM: guest loaders, device models and the exit loop. It uses the
//! syscall layer only.
pub mod dev;
pub mod guestmem;
pub mod hvdev;
pub mod hypercall;
pub mod launch;
pub mod loader;
pub mod msr;
pub mod vcpu;

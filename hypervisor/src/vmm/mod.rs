//! The VMM: guest loaders, device models and the exit loop. It uses the
//! syscall layer only.
pub mod dev;
pub mod loader;

//! The VMM: guest loaders, device models and the exit loop. It uses the
//! syscall layer only.
pub mod decode;
pub mod dev;
pub mod loader;
pub mod mem;

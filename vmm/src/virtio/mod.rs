//! virtio 1.x devices (modern, non-legacy) on the virtio-mmio transport.
//!
//! - [`chain`]: the descriptor-chain walker, pure and host-tested against
//!   hostile tables;
//! - [`queue`]: a split virtqueue (available and used rings, event index);
//! - [`device`]: the [`VirtioDevice`] trait a device model implements;
//! - [`mmio`]: the register window, status state machine and interrupt of
//!   one device ([`MmioTransport`]).
//!
//! docs/virtio.md says why virtio-mmio described by the ACPI DSDT, and how
//! a new device plugs in.
pub mod blk;
pub mod chain;
pub mod console;
pub mod device;
#[cfg(test)]
mod device_tests;
pub mod mmio;
pub mod net;
pub mod queue;
pub mod slots;
#[cfg(test)]
mod tests;

pub use chain::{DescChain, Segment};
pub use device::{VirtioDevice, MAX_QUEUES};
pub use mmio::MmioTransport;
pub use queue::{QueueError, Virtqueue};

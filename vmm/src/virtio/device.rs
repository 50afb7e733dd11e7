//! What a virtio device model implements: its identity, its feature bits
//! and configuration space, and the service of its queues. The transport
//! ([`super::mmio::MmioTransport`]) does everything else: feature
//! negotiation, the status state machine, queue setup, notifications,
//! interrupts, reset, and DEVICE_NEEDS_RESET when a queue goes wrong.
use super::queue::{QueueError, Virtqueue};
use guest_x86::mem::GuestMemory;

/// Queues a device may have (virtio-net's receive, transmit and control
/// queues fit).
pub const MAX_QUEUES: usize = 4;

/// A virtio device behind a transport.
pub trait VirtioDevice {
    /// The virtio device ID (§5: 1 network, 2 block, 3 console).
    fn device_id(&self) -> u32;

    /// A short name for log lines ("virtio-blk").
    fn kind(&self) -> &'static str;

    /// The device-specific feature bits offered. The transport adds
    /// VIRTIO_F_VERSION_1 and VIRTIO_F_EVENT_IDX itself.
    fn features(&self) -> u64;

    /// The largest size of each queue; the slice's length is the number of
    /// queues (at most [`MAX_QUEUES`]).
    fn queue_max_sizes(&self) -> &'static [u16];

    /// Reads `data.len()` bytes of the configuration space at `offset`;
    /// bytes past its end read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);

    /// The driver wrote the configuration space. Most devices ignore it.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    /// The driver set DRIVER_OK having accepted `features` (all bits,
    /// transport ones included).
    fn activate(&mut self, _features: u64) {}

    /// The driver reset the device (status 0): back to the state before
    /// the driver first saw it. What a device keeps across a reset (a
    /// disk's contents) it says in its own documentation.
    fn reset(&mut self);

    /// Queue `index` was notified by the driver, or the host has work for
    /// it: pop its chains and push them used. The transport decides on the
    /// interrupt afterwards. `Err` puts the device into DEVICE_NEEDS_RESET.
    fn serve(&mut self, index: usize, queues: &mut [Virtqueue], mem: &mut dyn GuestMemory) -> Result<(), QueueError>;
}

//! virtio-net (device ID 1, virtio 1.x §5.1): the VM's NIC on the
//! hypervisor's switch (docs/network.md).
//!
//! Features: `VIRTIO_NET_F_MAC` (the configuration space holds the MAC the
//! hypervisor gave the VM's port), plus the transport's `VERSION_1` and
//! `EVENT_IDX`. Nothing else: no checksum or segmentation offloads, no
//! mergeable receive buffers, no control queue, no link status. So the
//! driver checksums every frame itself, sends frames of at most 1514
//! bytes, and posts receive buffers that each hold a whole frame.
//!
//! Queue 0 receives, queue 1 transmits. Every buffer starts with the
//! 12-byte `virtio_net_hdr` (with `VERSION_1` it has `num_buffers`,
//! §5.1.6). On transmit the header is skipped (no offload asks anything of
//! it) and the rest of the chain goes to the switch as guest-physical
//! spans; the chain is used with length 0. On receive the kernel scatters
//! the next frame after the header, and the device writes the header (all
//! zero but `num_buffers` = 1) and uses the chain with 12 + the frame's
//! length. The frames themselves never pass through the VMM: the kernel
//! copies them between guest RAM and the switch ([`NetPort`]).
use super::chain::{DescChain, Segment};
use super::device::VirtioDevice;
use super::queue::{QueueError, Virtqueue};
use arrayvec::ArrayVec;
use guest_x86::mem::GuestMemory;
use sysabi::net::{GuestSpan, MacAddr, MAX_FRAME, MAX_SPANS};
use sysabi::{NetHandle, Sys, SysResult, VmHandle};

/// The receive queue.
pub const RX: usize = 0;
/// The transmit queue.
pub const TX: usize = 1;
/// VIRTIO_NET_F_MAC: the device has a MAC address in its configuration.
pub const F_MAC: u64 = 1 << 5;
/// `virtio_net_hdr` with `num_buffers` (§5.1.6): 12 bytes.
pub const HDR_LEN: usize = 12;
/// The smallest receive chain used: a header and the longest frame (the
/// 1526 bytes of §5.1.6.3.1 without VLAN tags). Linux posts 12 + 1518.
pub const RX_CHAIN_MIN: usize = HDR_LEN + MAX_FRAME;
const QUEUE_SIZES: &[u16] = &[256, 256];

/// The VM's port on the switch, as the device uses it.
pub trait NetPort {
    /// Sends the frame `frame` holds in guest RAM.
    fn send(&mut self, mem: &dyn GuestMemory, frame: &[GuestSpan]) -> SysResult<()>;
    /// Writes the next frame for the VM into `into`: its length, or `None`.
    fn recv(&mut self, mem: &mut dyn GuestMemory, into: &[GuestSpan]) -> SysResult<Option<usize>>;
}

/// The VM's port through the kernel's calls: the kernel copies the frames
/// between guest RAM and the switch itself, so `mem` is not used.
pub struct SwitchPort<'a, S: Sys> {
    pub sys: &'a S,
    pub port: NetHandle,
    pub vm: VmHandle,
}

impl<S: Sys> NetPort for SwitchPort<'_, S> {
    fn send(&mut self, _mem: &dyn GuestMemory, frame: &[GuestSpan]) -> SysResult<()> {
        self.sys.net_send(self.port, self.vm, frame)
    }

    fn recv(&mut self, _mem: &mut dyn GuestMemory, into: &[GuestSpan]) -> SysResult<Option<usize>> {
        self.sys.net_recv(self.port, self.vm, into)
    }
}

/// What the device dropped on its side of the switch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicStats {
    /// Transmit chains the switch refused (shorter than an Ethernet
    /// header, longer than 1514 bytes, more than 16 buffers): used, not sent.
    pub tx_refused: u64,
    /// Receive chains too short for a whole frame: used empty.
    pub rx_short_chains: u64,
}

pub struct VirtioNet {
    mac: MacAddr,
    /// The driver notified the transmit queue.
    tx_kicked: bool,
    /// A receive chain taken from the queue while no frame was waiting.
    rx_chain: Option<DescChain>,
    pub stats: NicStats,
}

/// The spans of `segments` after their first `skip` bytes, at most
/// [`MAX_SPANS`]; `None` if there are more.
fn spans_after(segments: &[Segment], skip: usize) -> Option<ArrayVec<GuestSpan, MAX_SPANS>> {
    let mut spans = ArrayVec::new();
    let mut skip = skip as u64;
    for s in segments {
        let cut = skip.min(u64::from(s.len));
        skip -= cut;
        if cut < u64::from(s.len) {
            spans.try_push(GuestSpan { gpa: s.addr + cut, len: s.len - cut as u32 }).ok()?;
        }
    }
    Some(spans)
}

/// Writes `bytes` at the start of `segments`, in order.
fn write_across(mem: &mut dyn GuestMemory, segments: &[Segment], bytes: &[u8]) -> Result<(), QueueError> {
    let mut at = 0;
    for s in segments {
        let n = (s.len as usize).min(bytes.len() - at);
        mem.write(s.addr, &bytes[at..at + n]).map_err(|_| QueueError::Device("receive header outside RAM"))?;
        at += n;
    }
    Ok(())
}

impl VirtioNet {
    pub fn new(mac: MacAddr) -> Self {
        VirtioNet { mac, tx_kicked: false, rx_chain: None, stats: NicStats::default() }
    }

    /// Moves frames: every chain of the transmit queue to the switch once
    /// the driver notified it, then frames from the switch into receive
    /// chains while both last.
    pub fn pump(
        &mut self,
        queues: &mut [Virtqueue],
        mem: &mut dyn GuestMemory,
        port: &mut impl NetPort,
    ) -> Result<(), QueueError> {
        if core::mem::take(&mut self.tx_kicked) {
            self.transmit(&mut queues[TX], mem, port)?;
        }
        self.receive(&mut queues[RX], mem, port)
    }

    fn transmit(
        &mut self,
        q: &mut Virtqueue,
        mem: &mut dyn GuestMemory,
        port: &mut impl NetPort,
    ) -> Result<(), QueueError> {
        while let Some(chain) = q.pop(mem)? {
            let sent = spans_after(chain.readable(), HDR_LEN).map(|spans| port.send(mem, &spans));
            if !matches!(sent, Some(Ok(()))) {
                self.stats.tx_refused += 1;
            }
            q.push_used(mem, chain.head, 0)?;
        }
        Ok(())
    }

    fn receive(
        &mut self,
        q: &mut Virtqueue,
        mem: &mut dyn GuestMemory,
        port: &mut impl NetPort,
    ) -> Result<(), QueueError> {
        if !q.ready {
            return Ok(());
        }
        loop {
            let chain = match self.rx_chain.take() {
                Some(c) => c,
                None => match q.pop(mem)? {
                    Some(c) => c,
                    None => return Ok(()),
                },
            };
            let spans = spans_after(chain.writable(), HDR_LEN)
                .filter(|s| s.iter().map(|s| s.len as usize).sum::<usize>() >= MAX_FRAME);
            let Some(spans) = spans else {
                self.stats.rx_short_chains += 1;
                q.push_used(mem, chain.head, 0)?;
                continue;
            };
            match port.recv(mem, &spans) {
                Ok(Some(len)) => {
                    let mut hdr = [0u8; HDR_LEN];
                    hdr[10..].copy_from_slice(&1u16.to_le_bytes()); // num_buffers
                    write_across(mem, chain.writable(), &hdr)?;
                    q.push_used(mem, chain.head, (HDR_LEN + len) as u32)?;
                }
                // Nothing waiting (or the kernel would not take the spans
                // now): keep the chain for the next look.
                Ok(None) | Err(_) => {
                    self.rx_chain = Some(chain);
                    return Ok(());
                }
            }
        }
    }
}

impl VirtioDevice for VirtioNet {
    fn device_id(&self) -> u32 {
        1
    }

    fn kind(&self) -> &'static str {
        "virtio-net"
    }

    fn features(&self) -> u64 {
        F_MAC
    }

    fn queue_max_sizes(&self) -> &'static [u16] {
        QUEUE_SIZES
    }

    /// `struct virtio_net_config` (§5.1.4): the MAC, then fields this
    /// device does not offer (status, queue pairs, MTU), which read as 0.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset.checked_add(i as u64).and_then(|o| self.mac.get(o as usize)).copied().unwrap_or(0);
        }
    }

    fn reset(&mut self) {
        self.tx_kicked = false;
        self.rx_chain = None;
    }

    /// A notification only marks the queue: the frames move in [`Self::pump`],
    /// which the VMM runs with the VM's port right after the exit.
    fn serve(&mut self, index: usize, _queues: &mut [Virtqueue], _mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        if index == TX {
            self.tx_kicked = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

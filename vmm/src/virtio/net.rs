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
/// The most buffers a receive chain's header may lie in, and its frame.
/// Linux puts both in one buffer.
const RX_HEADER_PIECES: usize = 2;
const RX_FRAME_PIECES: usize = 4;
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
    /// Receive chains too short for a whole frame, or in more pieces than
    /// the device keeps (2 for the header, 4 for the frame): used empty.
    pub rx_unusable_chains: u64,
}

pub struct VirtioNet {
    mac: MacAddr,
    /// The driver notified the transmit queue.
    tx_kicked: bool,
    /// The driver notified a queue (new frames to send, or new receive
    /// buffers) since the last [`Self::pump`].
    notified: bool,
    /// A receive chain taken from the queue while no frame was waiting.
    rx_chain: Option<RxChain>,
    pub stats: NicStats,
}

/// A receive chain, as the device keeps it until a frame comes: where its
/// header goes and where the frame goes. (Not the walked chain itself: the
/// board and its devices live on a VMM thread's stack, and a walked chain
/// has room for 256 buffers.)
#[derive(Debug)]
struct RxChain {
    head: u16,
    header: ArrayVec<GuestSpan, RX_HEADER_PIECES>,
    frame: ArrayVec<GuestSpan, RX_FRAME_PIECES>,
}

impl RxChain {
    /// `chain`'s writable buffers split into the header's and the frame's,
    /// if they hold a whole header and at least [`MAX_FRAME`] bytes after
    /// it, in few enough pieces.
    fn of(chain: &DescChain) -> Option<RxChain> {
        let header = spans(chain.writable(), 0, HDR_LEN)?;
        let frame = spans(chain.writable(), HDR_LEN, usize::MAX)?;
        let bytes = |s: &[GuestSpan]| s.iter().map(|s| s.len as usize).sum::<usize>();
        let whole = bytes(&header) == HDR_LEN && bytes(&frame) >= MAX_FRAME;
        whole.then_some(RxChain { head: chain.head, header, frame })
    }
}

/// The spans of `segments` that cover their bytes `from..from + len` (or
/// up to their end), in order; `None` if that takes more than `N`.
fn spans<const N: usize>(segments: &[Segment], from: usize, len: usize) -> Option<ArrayVec<GuestSpan, N>> {
    let mut out = ArrayVec::new();
    let (mut at, end) = (0usize, from.saturating_add(len));
    for s in segments {
        let (lo, hi) = (at.max(from), (at + s.len as usize).min(end));
        if lo < hi {
            out.try_push(GuestSpan { gpa: s.addr + (lo - at) as u64, len: (hi - lo) as u32 }).ok()?;
        }
        at += s.len as usize;
    }
    Some(out)
}

impl VirtioNet {
    pub fn new(mac: MacAddr) -> Self {
        VirtioNet { mac, tx_kicked: false, notified: false, rx_chain: None, stats: NicStats::default() }
    }

    /// Moves frames: every chain of the transmit queue to the switch once
    /// the driver notified it, then frames from the switch into receive
    /// chains while both last.
    /// The driver notified a queue since the last [`Self::pump`].
    pub fn notified(&self) -> bool {
        self.notified
    }

    pub fn pump(
        &mut self,
        queues: &mut [Virtqueue],
        mem: &mut dyn GuestMemory,
        port: &mut impl NetPort,
    ) -> Result<(), QueueError> {
        self.notified = false;
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
            let sent = spans::<MAX_SPANS>(chain.readable(), HDR_LEN, usize::MAX).map(|s| port.send(mem, &s));
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
            let rx = match self.rx_chain.take() {
                Some(rx) => rx,
                None => {
                    let Some(chain) = q.pop(mem)? else { return Ok(()) };
                    let Some(rx) = RxChain::of(&chain) else {
                        self.stats.rx_unusable_chains += 1;
                        q.push_used(mem, chain.head, 0)?;
                        continue;
                    };
                    rx
                }
            };
            match port.recv(mem, &rx.frame) {
                Ok(Some(len)) => {
                    // All zero (no offload) but num_buffers, which is 1.
                    let mut hdr = [0u8; HDR_LEN];
                    hdr[10..].copy_from_slice(&1u16.to_le_bytes());
                    let mut at = 0;
                    for s in &rx.header {
                        let piece = &hdr[at..at + s.len as usize];
                        mem.write(s.gpa, piece).map_err(|_| QueueError::Device("receive header outside RAM"))?;
                        at += piece.len();
                    }
                    q.push_used(mem, rx.head, (HDR_LEN + len) as u32)?;
                }
                // Nothing waiting (or the kernel would not take the spans
                // now): keep the chain for the next look.
                Ok(None) | Err(_) => {
                    self.rx_chain = Some(rx);
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
        self.notified = false;
        self.rx_chain = None;
    }

    /// A notification only marks the queue: the frames move in [`Self::pump`],
    /// which the VMM runs with the VM's port right after the exit.
    fn serve(&mut self, index: usize, _queues: &mut [Virtqueue], _mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        if index == TX {
            self.tx_kicked = true;
        }
        self.notified = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! The Ethernet switch between VMs: one port per process, each with a MAC
//! address the hypervisor assigned ([`mac_of`]).
//!
//! **Forwarding.** A frame whose destination is a unicast MAC goes to the
//! one port with that MAC, never back to its sender; with no such port it
//! is dropped (`tx_no_port`). A broadcast or multicast frame (the
//! destination's group bit, bit 0 of its first byte) floods to every other
//! open port. MACs are assigned, not learned, so unknown unicast never
//! floods. A frame whose source MAC is not its port's is dropped
//! (`tx_spoofed`): a guest cannot pose as another VM.
//!
//! **Queues and fairness.** Each port has a receive queue of `D` frames.
//! The sender never blocks: a frame for a full queue is dropped and counted
//! at the destination (`rx_dropped_full`). And one sender may hold at most
//! [`Switch::SHARE`] (half) of a destination's queue: past it, its frames
//! for that destination are dropped (`rx_dropped_share`). So a VM that
//! floods fills at most half of each other port's queue, and the other
//! half stays for everyone else's frames, however fast the flooder sends.
//! A sender's frames count against its share until the destination takes
//! them, also after the sender's port closed.
//!
//! [`Switch`] is the pure state, tested on the host against the executable
//! spec in `spec` (`switch/tests.rs`); the kernel keeps one behind a lock
//! (`net.rs`).
use crate::proc::Pid;
use sysabi::net::{MacAddr, NetPortInfo, NetStats, MAX_FRAME, MIN_FRAME};
use sysabi::{SysError, SysResult};

#[cfg(test)]
pub mod spec;
#[cfg(test)]
mod tests;

/// The MAC address of port `port`: 52:54:00:12:34:NN, with NN the port's
/// number. 52:54:00 is the locally administered prefix QEMU and KVM give
/// their guests' NICs (bit 1 of the first byte set: not a vendor's
/// address; bit 0 clear: unicast).
pub const fn mac_of(port: usize) -> MacAddr {
    [0x52, 0x54, 0x00, 0x12, 0x34, port as u8]
}

/// A broadcast or multicast destination: the group bit is set.
pub fn is_group(mac: &MacAddr) -> bool {
    mac[0] & 1 != 0
}

/// The destination and source MACs of a frame of at least [`MIN_FRAME`]
/// bytes.
fn addresses(frame: &[u8]) -> (MacAddr, MacAddr) {
    let mut dst = [0; 6];
    let mut src = [0; 6];
    dst.copy_from_slice(&frame[..6]);
    src.copy_from_slice(&frame[6..12]);
    (dst, src)
}

/// A frame waiting in a receive queue, and the port that sent it.
#[derive(Clone, Copy)]
struct Queued {
    from: u8,
    len: u16,
    data: [u8; MAX_FRAME],
}

impl Queued {
    const EMPTY: Queued = Queued { from: 0, len: 0, data: [0; MAX_FRAME] };

    fn bytes(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }
}

/// One port: its owner (none while it is closed), its receive queue (a
/// ring of `D` frames) and how many frames of that queue each sender holds.
/// A port is opened and closed in place: its queue is never built on the
/// stack (the kernel's queues are far larger than a kernel stack).
struct Port<const P: usize, const D: usize> {
    owner: Option<Pid>,
    queue: [Queued; D],
    head: usize,
    len: usize,
    held: [u16; P],
    stats: NetStats,
}

impl<const P: usize, const D: usize> Port<P, D> {
    const CLOSED: Self =
        Port { owner: None, queue: [Queued::EMPTY; D], head: 0, len: 0, held: [0; P], stats: NetStats::ZERO };

    /// Opens (or closes, with `None`) the port, with an empty queue.
    fn reset(&mut self, owner: Option<Pid>) {
        self.owner = owner;
        self.head = 0;
        self.len = 0;
        self.held = [0; P];
        self.stats = NetStats::default();
    }

    fn push(&mut self, from: usize, frame: &[u8]) {
        let slot = &mut self.queue[(self.head + self.len) % D];
        slot.from = from as u8;
        slot.len = frame.len() as u16;
        slot.data[..frame.len()].copy_from_slice(frame);
        self.len += 1;
        self.held[from] += 1;
    }

    fn front(&self) -> Option<&Queued> {
        (self.len > 0).then(|| &self.queue[self.head])
    }

    fn pop(&mut self) {
        let from = usize::from(self.queue[self.head].from);
        self.held[from] -= 1;
        self.head = (self.head + 1) % D;
        self.len -= 1;
    }
}

/// The switch: `P` ports, each with a receive queue of `D` frames.
pub struct Switch<const P: usize, const D: usize> {
    ports: [Port<P, D>; P],
}

impl<const P: usize, const D: usize> Switch<P, D> {
    /// The most frames one sender may hold in one destination's queue.
    pub const SHARE: usize = D / 2;

    const CHECKS: () = {
        assert!(P <= 256, "a queued frame names its sender in a byte, and a MAC its port");
        assert!(D >= 2 && D <= u16::MAX as usize);
    };

    pub const fn new() -> Self {
        let () = Self::CHECKS;
        Switch { ports: [const { Port::CLOSED }; P] }
    }

    /// Opens the lowest free port for `owner`: its number.
    pub fn open(&mut self, owner: Pid) -> SysResult<usize> {
        let n = self.ports.iter().position(|p| p.owner.is_none()).ok_or(SysError::NoSlot)?;
        self.ports[n].reset(Some(owner));
        Ok(n)
    }

    /// Closes every port `owner` has; the frames queued for them are
    /// dropped.
    pub fn close_all(&mut self, owner: Pid) {
        for p in self.ports.iter_mut().filter(|p| p.owner == Some(owner)) {
            p.reset(None);
        }
    }

    /// Port `port`, if `caller` owns it.
    fn owned(&mut self, caller: Pid, port: usize) -> SysResult<&mut Port<P, D>> {
        let p = self.ports.get_mut(port).ok_or(SysError::NoSuchObject)?;
        match p.owner {
            None => Err(SysError::NoSuchObject),
            Some(o) if o != caller => Err(SysError::NotOwner),
            Some(_) => Ok(p),
        }
    }

    /// `caller` owns port `port`.
    pub fn check(&mut self, caller: Pid, port: usize) -> SysResult<()> {
        self.owned(caller, port).map(drop)
    }

    /// The port's MAC address and counters.
    pub fn info(&mut self, caller: Pid, port: usize) -> SysResult<NetPortInfo> {
        let stats = self.owned(caller, port)?.stats;
        Ok(NetPortInfo { mac: mac_of(port), stats })
    }

    /// Sends `frame` from port `port` (see the module's rules). A frame
    /// shorter than an Ethernet header is a bad argument, one longer than
    /// [`MAX_FRAME`] too big; a frame the switch drops is counted, not
    /// refused.
    pub fn send(&mut self, caller: Pid, port: usize, frame: &[u8]) -> SysResult<()> {
        let from = self.owned(caller, port)?;
        if frame.len() > MAX_FRAME {
            return Err(SysError::TooBig);
        }
        if frame.len() < MIN_FRAME {
            return Err(SysError::BadArgument);
        }
        let (dst, src) = addresses(frame);
        if src != mac_of(port) {
            from.stats.tx_spoofed += 1;
            return Ok(());
        }
        from.stats.tx_frames += 1;
        if is_group(&dst) {
            for to in (0..P).filter(|&to| to != port) {
                self.deliver(port, to, frame);
            }
        } else if let Some(to) = (0..P).find(|&to| to != port && mac_of(to) == dst && self.ports[to].owner.is_some()) {
            self.deliver(port, to, frame);
        } else {
            self.ports[port].stats.tx_no_port += 1;
        }
        Ok(())
    }

    /// Queues a copy of `frame` from port `from` for port `to`, if `to` is
    /// open, has room, and `from` has not used up its share of it.
    fn deliver(&mut self, from: usize, to: usize, frame: &[u8]) {
        let p = &mut self.ports[to];
        if p.owner.is_none() {
            return;
        }
        if p.len == D {
            p.stats.rx_dropped_full += 1;
        } else if usize::from(p.held[from]) >= Self::SHARE {
            p.stats.rx_dropped_share += 1;
        } else {
            p.push(from, frame);
        }
    }

    /// Hands the next frame queued for port `port` to `take`, and dequeues
    /// it if `take` succeeds: its length. `None` if none is waiting; an
    /// error from `take` leaves the frame queued.
    pub fn recv(
        &mut self,
        caller: Pid,
        port: usize,
        take: impl FnOnce(&[u8]) -> SysResult<()>,
    ) -> SysResult<Option<usize>> {
        let p = self.owned(caller, port)?;
        let Some(frame) = p.front() else { return Ok(None) };
        let len = frame.bytes().len();
        take(frame.bytes())?;
        p.pop();
        p.stats.rx_frames += 1;
        Ok(Some(len))
    }
}

impl<const P: usize, const D: usize> Default for Switch<P, D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const P: usize, const D: usize> Switch<P, D> {
    /// Frames waiting for each port (0 for a closed one).
    pub fn queue_lengths(&self) -> [usize; P] {
        core::array::from_fn(|n| self.ports[n].len)
    }

    /// The owners of the ports that hold more frames than `before` (from
    /// [`queue_lengths`](Self::queue_lengths)) says: those a send reached.
    pub fn reached_since<'a>(&'a self, before: &'a [usize; P]) -> impl Iterator<Item = Pid> + 'a {
        let more = self.ports.iter().zip(before).filter(|(p, &b)| p.len > b);
        more.filter_map(|(p, _)| p.owner)
    }
}

#[cfg(test)]
impl<const P: usize, const D: usize> Switch<P, D> {
    /// Frames waiting for port `port` (0 for a closed port).
    pub fn queued(&self, port: usize) -> usize {
        self.ports.get(port).map_or(0, |p| p.len)
    }

    /// The switch's state as the spec holds it. Panics if a port's share
    /// counts disagree with its queue.
    pub fn abstraction(&self) -> std::collections::BTreeMap<usize, spec::PortSpec> {
        let mut open = std::collections::BTreeMap::new();
        for (n, p) in self.ports.iter().enumerate() {
            let Some(owner) = p.owner else { continue };
            let queue: std::collections::VecDeque<(usize, std::vec::Vec<u8>)> = (0..p.len)
                .map(|i| &p.queue[(p.head + i) % D])
                .map(|q| (usize::from(q.from), q.bytes().to_vec()))
                .collect();
            for (from, held) in p.held.iter().enumerate() {
                let counted = queue.iter().filter(|(s, _)| *s == from).count();
                assert_eq!(usize::from(*held), counted, "port {n}: frames held by sender {from}");
            }
            open.insert(n, spec::PortSpec { owner, queue, stats: p.stats });
        }
        open
    }
}

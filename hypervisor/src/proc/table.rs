//! The process and channel tables: pure state, no blocking.
use super::{ProcError, CHAN_CAPACITY, MAX_CHANNELS, MAX_PROCS, MSG_SIZE};
use crate::mm::{ContainerId, Mm};
use crate::thread::Chan;
use arrayvec::ArrayVec;
use core::fmt;

/// A process id: the index of its slot.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Pid(u16);

impl Pid {
    /// The root process, created by [`super::init`].
    pub const ROOT: Pid = Pid(0);
    pub const fn from_index(i: usize) -> Pid {
        Pid(i as u16)
    }
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// A channel id: the index of its slot.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ChanId(u16);

impl ChanId {
    pub const fn from_index(i: usize) -> ChanId {
        ChanId(i as u16)
    }
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Copy)]
struct Process {
    used: bool,
    parent: Pid,
    container: ContainerId,
}

const NO_PROCESS: Process = Process { used: false, parent: Pid(0), container: ContainerId::ROOT };

struct Channel {
    used: bool,
    sender: Pid,
    receiver: Pid,
    /// Ring buffer: `len` messages from `head`.
    head: usize,
    len: usize,
    sizes: [u16; CHAN_CAPACITY],
    data: [[u8; MSG_SIZE]; CHAN_CAPACITY],
}

const NO_CHANNEL: Channel = Channel {
    used: false,
    sender: Pid(0),
    receiver: Pid(0),
    head: 0,
    len: 0,
    sizes: [0; CHAN_CAPACITY],
    data: [[0; MSG_SIZE]; CHAN_CAPACITY],
};

/// Processes and channels.
pub struct ProcTable {
    procs: [Process; MAX_PROCS],
    chans: [Channel; MAX_CHANNELS],
}

impl Default for ProcTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcTable {
    /// No processes, no channels.
    pub const fn new() -> Self {
        ProcTable { procs: [NO_PROCESS; MAX_PROCS], chans: [NO_CHANNEL; MAX_CHANNELS] }
    }

    /// Forgets everything and makes the root process over `container`.
    pub fn init_root(&mut self, container: ContainerId) -> Pid {
        self.procs = [NO_PROCESS; MAX_PROCS];
        for c in self.chans.iter_mut() {
            c.used = false;
        }
        self.procs[0] = Process { used: true, parent: Pid::ROOT, container };
        Pid::ROOT
    }

    fn proc(&self, pid: Pid) -> Result<&Process, ProcError> {
        match self.procs.get(pid.index()) {
            Some(p) if p.used => Ok(p),
            _ => Err(ProcError::NoSuchProcess),
        }
    }

    fn chan(&self, c: ChanId) -> Result<&Channel, ProcError> {
        match self.chans.get(c.index()) {
            Some(ch) if ch.used => Ok(ch),
            _ => Err(ProcError::NoSuchChannel),
        }
    }

    /// Whether `pid` names a process.
    pub fn exists(&self, pid: Pid) -> bool {
        self.proc(pid).is_ok()
    }

    /// Creates a child of `parent` whose container gets `quota` frames of
    /// the parent container's quota (via `mm.split`); lowest free pid.
    pub fn create<const W: usize>(&mut self, mm: &mut Mm<W>, parent: Pid, quota: u64) -> Result<Pid, ProcError> {
        let parent_container = self.proc(parent)?.container;
        // Find the slot first, so that a full table costs no quota.
        let slot = self.procs.iter().position(|p| !p.used).ok_or(ProcError::TooManyProcesses)?;
        let container = mm.split(parent_container, quota).map_err(ProcError::Mm)?;
        self.procs[slot] = Process { used: true, parent, container };
        Ok(Pid(slot as u16))
    }

    /// Ends `pid`: its container goes back to the parent's (`mm.destroy`),
    /// the channels it is an end of are closed with their messages, and
    /// its pid becomes free. Returns the closed channels, whose sleepers
    /// the caller wakes. The caller has made sure that no thread of `pid`
    /// is left and that no kernel object names it any more.
    ///
    /// Errors (nothing changed): `NoSuchProcess`; `InUse` for the root and
    /// a process with children; `Mm(InUse)` while its container holds
    /// frames.
    pub fn destroy<const W: usize>(
        &mut self,
        mm: &mut Mm<W>,
        pid: Pid,
    ) -> Result<ArrayVec<ChanId, MAX_CHANNELS>, ProcError> {
        let p = *self.proc(pid)?;
        if pid == Pid::ROOT || self.pids().any(|q| q != pid && self.procs[q.index()].parent == pid) {
            return Err(ProcError::InUse);
        }
        mm.destroy(p.container).map_err(ProcError::Mm)?;
        let mut closed = ArrayVec::new();
        for (i, c) in self.chans.iter_mut().enumerate() {
            if c.used && (c.sender == pid || c.receiver == pid) {
                c.used = false;
                closed.push(ChanId(i as u16));
            }
        }
        self.procs[pid.index()] = NO_PROCESS;
        Ok(closed)
    }

    /// The process's container.
    pub fn container(&self, pid: Pid) -> Result<ContainerId, ProcError> {
        Ok(self.proc(pid)?.container)
    }

    /// The process's parent (the root is its own parent).
    pub fn parent(&self, pid: Pid) -> Result<Pid, ProcError> {
        Ok(self.proc(pid)?.parent)
    }

    /// Pids of existing processes, in increasing order.
    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.procs.iter().enumerate().filter(|(_, p)| p.used).map(|(i, _)| Pid(i as u16))
    }

    /// Opens an empty channel from `sender` to `receiver` (lowest free id).
    pub fn chan_create(&mut self, sender: Pid, receiver: Pid) -> Result<ChanId, ProcError> {
        self.proc(sender)?;
        self.proc(receiver)?;
        let slot = self.chans.iter().position(|c| !c.used).ok_or(ProcError::TooManyChannels)?;
        let c = &mut self.chans[slot];
        c.used = true;
        c.sender = sender;
        c.receiver = receiver;
        c.head = 0;
        c.len = 0;
        Ok(ChanId(slot as u16))
    }

    /// `(sender, receiver)` of a channel.
    pub fn endpoints(&self, c: ChanId) -> Result<(Pid, Pid), ProcError> {
        let ch = self.chan(c)?;
        Ok((ch.sender, ch.receiver))
    }

    /// Messages queued on a channel.
    pub fn pending(&self, c: ChanId) -> Result<usize, ProcError> {
        Ok(self.chan(c)?.len)
    }

    /// Ids of open channels, in increasing order.
    pub fn chan_ids(&self) -> impl Iterator<Item = ChanId> + '_ {
        self.chans.iter().enumerate().filter(|(_, c)| c.used).map(|(i, _)| ChanId(i as u16))
    }

    /// The messages queued on a channel, oldest first (for diagnostics).
    pub fn queued(&self, c: ChanId) -> Result<impl Iterator<Item = &[u8]> + '_, ProcError> {
        let ch = self.chan(c)?;
        Ok((0..ch.len).map(move |k| {
            let i = (ch.head + k) % CHAN_CAPACITY;
            &ch.data[i][..ch.sizes[i] as usize]
        }))
    }

    /// Appends a message; fails with `Full` when the channel holds
    /// [`CHAN_CAPACITY`] messages.
    pub fn try_send(&mut self, c: ChanId, from: Pid, msg: &[u8]) -> Result<(), ProcError> {
        let ch = self.chan(c)?;
        if ch.sender != from {
            return Err(ProcError::NotSender);
        }
        if msg.len() > MSG_SIZE {
            return Err(ProcError::TooLong);
        }
        if ch.len == CHAN_CAPACITY {
            return Err(ProcError::Full);
        }
        let ch = &mut self.chans[c.index()];
        let i = (ch.head + ch.len) % CHAN_CAPACITY;
        ch.data[i][..msg.len()].copy_from_slice(msg);
        ch.sizes[i] = msg.len() as u16;
        ch.len += 1;
        Ok(())
    }

    /// Takes the oldest message into `buf` and returns its length; fails
    /// with `Empty` when there is none.
    pub fn try_recv(&mut self, c: ChanId, to: Pid, buf: &mut [u8]) -> Result<usize, ProcError> {
        let ch = self.chan(c)?;
        if ch.receiver != to {
            return Err(ProcError::NotReceiver);
        }
        if ch.len == 0 {
            return Err(ProcError::Empty);
        }
        let n = ch.sizes[ch.head] as usize;
        if buf.len() < n {
            return Err(ProcError::BufferTooSmall { needed: n });
        }
        let ch = &mut self.chans[c.index()];
        buf[..n].copy_from_slice(&ch.data[ch.head][..n]);
        ch.head = (ch.head + 1) % CHAN_CAPACITY;
        ch.len -= 1;
        Ok(n)
    }

    /// The thread-layer channel that receivers of `c` sleep on. Derived
    /// from the slot's address, so it is unique among all tables.
    pub fn data_chan(&self, c: ChanId) -> Chan {
        Chan(self.slot_addr(c))
    }

    /// The thread-layer channel that senders to a full `c` sleep on.
    pub fn space_chan(&self, c: ChanId) -> Chan {
        Chan(self.slot_addr(c) + 1)
    }

    fn slot_addr(&self, c: ChanId) -> u64 {
        let base = &self.chans as *const _ as u64;
        base + (c.index() * core::mem::size_of::<Channel>()) as u64
    }
}

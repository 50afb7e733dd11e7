//! Executable specification of processes and channels.
use super::{ProcError, CHAN_CAPACITY, MAX_CHANNELS, MAX_PROCS, MSG_SIZE};
use crate::mm::spec::MmSpec;
use std::collections::{BTreeMap, VecDeque};
use std::vec::Vec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    pub parent: usize,
    pub container: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChanEntry {
    pub sender: usize,
    pub receiver: usize,
    pub msgs: VecDeque<Vec<u8>>,
}

/// Processes, channels, and the containers below them (mm's spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcSpec {
    pub procs: BTreeMap<usize, ProcEntry>,
    pub chans: BTreeMap<usize, ChanEntry>,
    pub mm: MmSpec,
}

impl ProcSpec {
    /// The root process (pid 0) over the root container.
    pub fn new(mm: MmSpec) -> Self {
        let mut procs = BTreeMap::new();
        procs.insert(0, ProcEntry { parent: 0, container: 0 });
        ProcSpec { procs, chans: BTreeMap::new(), mm }
    }

    pub fn create(&mut self, parent: usize, quota: u64) -> Result<usize, ProcError> {
        let pc = self.procs.get(&parent).ok_or(ProcError::NoSuchProcess)?.container;
        let pid = (0..MAX_PROCS).find(|p| !self.procs.contains_key(p)).ok_or(ProcError::TooManyProcesses)?;
        let container = self.mm.split(pc, quota).map_err(ProcError::Mm)?;
        self.procs.insert(pid, ProcEntry { parent, container });
        Ok(pid)
    }

    /// Removes a childless process other than the root, its container
    /// (which must be empty) and the channels it is an end of.
    pub fn destroy(&mut self, pid: usize) -> Result<(), ProcError> {
        let p = self.procs.get(&pid).ok_or(ProcError::NoSuchProcess)?;
        if pid == 0 || self.procs.iter().any(|(q, e)| *q != pid && e.parent == pid) {
            return Err(ProcError::InUse);
        }
        self.mm.destroy(p.container).map_err(ProcError::Mm)?;
        self.chans.retain(|_, c| c.sender != pid && c.receiver != pid);
        self.procs.remove(&pid);
        Ok(())
    }

    pub fn chan_create(&mut self, sender: usize, receiver: usize) -> Result<usize, ProcError> {
        if !self.procs.contains_key(&sender) || !self.procs.contains_key(&receiver) {
            return Err(ProcError::NoSuchProcess);
        }
        let id = (0..MAX_CHANNELS).find(|c| !self.chans.contains_key(c)).ok_or(ProcError::TooManyChannels)?;
        self.chans.insert(id, ChanEntry { sender, receiver, msgs: VecDeque::new() });
        Ok(id)
    }

    pub fn try_send(&mut self, c: usize, from: usize, msg: &[u8]) -> Result<(), ProcError> {
        let ch = self.chans.get_mut(&c).ok_or(ProcError::NoSuchChannel)?;
        if ch.sender != from {
            return Err(ProcError::NotSender);
        }
        if msg.len() > MSG_SIZE {
            return Err(ProcError::TooLong);
        }
        if ch.msgs.len() == CHAN_CAPACITY {
            return Err(ProcError::Full);
        }
        ch.msgs.push_back(msg.to_vec());
        Ok(())
    }

    /// Receives into a buffer of `buf_len` bytes: the message, if it fits.
    pub fn try_recv(&mut self, c: usize, to: usize, buf_len: usize) -> Result<Vec<u8>, ProcError> {
        let ch = self.chans.get_mut(&c).ok_or(ProcError::NoSuchChannel)?;
        if ch.receiver != to {
            return Err(ProcError::NotReceiver);
        }
        let needed = ch.msgs.front().ok_or(ProcError::Empty)?.len();
        if buf_len < needed {
            return Err(ProcError::BufferTooSmall { needed });
        }
        Ok(ch.msgs.pop_front().unwrap())
    }
}

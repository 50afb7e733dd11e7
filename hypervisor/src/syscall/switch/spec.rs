//! The switch's executable spec: plain collections, each call a state
//! transition. Ports are numbered as the switch numbers them (the lowest
//! free one opens), and each port's queue lists (sender, frame) in order.
use super::{is_group, mac_of};
use crate::proc::Pid;
use std::collections::{BTreeMap, VecDeque};
use std::vec::Vec;
use sysabi::net::{MacAddr, NetPortInfo, NetStats, MAX_FRAME, MIN_FRAME};
use sysabi::{SysError, SysResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub owner: Pid,
    pub queue: VecDeque<(usize, Vec<u8>)>,
    pub stats: NetStats,
}

#[derive(Debug, Clone)]
pub struct SwitchSpec {
    pub ports: usize,
    pub depth: usize,
    pub open: BTreeMap<usize, PortSpec>,
}

impl SwitchSpec {
    pub fn new(ports: usize, depth: usize) -> Self {
        SwitchSpec { ports, depth, open: BTreeMap::new() }
    }

    pub fn open(&mut self, owner: Pid) -> SysResult<usize> {
        let n = (0..self.ports).find(|n| !self.open.contains_key(n)).ok_or(SysError::NoSlot)?;
        self.open.insert(n, PortSpec { owner, queue: VecDeque::new(), stats: NetStats::default() });
        Ok(n)
    }

    pub fn close_all(&mut self, owner: Pid) {
        self.open.retain(|_, p| p.owner != owner);
    }

    fn owned(&mut self, caller: Pid, port: usize) -> SysResult<&mut PortSpec> {
        match self.open.get_mut(&port) {
            None => Err(SysError::NoSuchObject),
            Some(p) if p.owner != caller => Err(SysError::NotOwner),
            Some(p) => Ok(p),
        }
    }

    pub fn info(&mut self, caller: Pid, port: usize) -> SysResult<NetPortInfo> {
        Ok(NetPortInfo { mac: mac_of(port), stats: self.owned(caller, port)?.stats })
    }

    pub fn send(&mut self, caller: Pid, port: usize, frame: &[u8]) -> SysResult<()> {
        let from = self.owned(caller, port)?;
        if frame.len() > MAX_FRAME {
            return Err(SysError::TooBig);
        }
        if frame.len() < MIN_FRAME {
            return Err(SysError::BadArgument);
        }
        let dst: MacAddr = frame[..6].try_into().unwrap();
        if frame[6..12] != mac_of(port) {
            from.stats.tx_spoofed += 1;
            return Ok(());
        }
        from.stats.tx_frames += 1;
        let targets: Vec<usize> = if is_group(&dst) {
            self.open.keys().copied().filter(|&to| to != port).collect()
        } else {
            self.open.keys().copied().filter(|&to| to != port && mac_of(to) == dst).collect()
        };
        if targets.is_empty() && !is_group(&dst) {
            self.open.get_mut(&port).unwrap().stats.tx_no_port += 1;
        }
        let (depth, share) = (self.depth, self.depth / 2);
        for to in targets {
            let p = self.open.get_mut(&to).unwrap();
            if p.queue.len() == depth {
                p.stats.rx_dropped_full += 1;
            } else if p.queue.iter().filter(|(s, _)| *s == port).count() >= share {
                p.stats.rx_dropped_share += 1;
            } else {
                p.queue.push_back((port, frame.to_vec()));
            }
        }
        Ok(())
    }

    /// The next frame for `port`, if it fits in `room` bytes (else
    /// `TooBig`, and it stays queued).
    pub fn recv(&mut self, caller: Pid, port: usize, room: usize) -> SysResult<Option<Vec<u8>>> {
        let p = self.owned(caller, port)?;
        match p.queue.front() {
            None => Ok(None),
            Some((_, f)) if f.len() > room => Err(SysError::TooBig),
            Some(_) => {
                p.stats.rx_frames += 1;
                Ok(p.queue.pop_front().map(|(_, f)| f))
            }
        }
    }
}

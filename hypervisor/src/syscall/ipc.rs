//! Channels between VMs' processes, and giving up the CPU.
//!
//! A VM names its peer by VM id (the id INFO reports). The channel from one
//! process to another is created on first use through the proc layer and
//! then reused; messages are bounded ([`crate::proc::MSG_SIZE`]) and
//! buffered ([`crate::proc::CHAN_CAPACITY`]). These calls never block.
use super::vmobj::{vm_owner, Caller};
use super::{SysError, SysResult};
use crate::proc::{self, ChanId, ProcError, MAX_PROCS};
use crate::sync::Lock;

/// A hypercall message fits a channel message (hvabi's limit is the proc
/// layer's).
const _: () = assert!(hvabi::MAX_MESSAGE == crate::proc::MSG_SIZE);

/// The channel from process i to process j, once created.
static CHANNELS: Lock<[[Option<ChanId>; MAX_PROCS]; MAX_PROCS]> = Lock::new([[None; MAX_PROCS]; MAX_PROCS]);

fn channel(from: proc::Pid, to: proc::Pid) -> SysResult<ChanId> {
    let mut t = CHANNELS.lock();
    let slot = t.get_mut(from.index()).and_then(|r| r.get_mut(to.index())).ok_or(SysError::BadArgument)?;
    if let Some(c) = *slot {
        return Ok(c);
    }
    let c = proc::chan_create(from, to).map_err(|e| match e {
        ProcError::TooManyChannels => SysError::NoSlot,
        _ => SysError::NoSuchObject,
    })?;
    *slot = Some(c);
    Ok(c)
}

/// Forgets the channels to and from `pid`, which `proc::proc_destroy`
/// closes: the next process with its pid must create its own, not send on
/// a slot the proc layer may have given to another pair.
pub(super) fn forget_channels(pid: proc::Pid) {
    let mut t = CHANNELS.lock();
    for (i, row) in t.iter_mut().enumerate() {
        for (j, chan) in row.iter_mut().enumerate() {
            if i == pid.index() || j == pid.index() {
                *chan = None;
            }
        }
    }
}

fn map(e: ProcError) -> SysError {
    match e {
        ProcError::Full | ProcError::Empty => SysError::WouldBlock,
        ProcError::TooLong | ProcError::BufferTooSmall { .. } => SysError::TooBig,
        _ => SysError::NoSuchObject,
    }
}

/// Queues `msg` for the process that owns VM `peer`.
pub fn sys_chan_send(caller: Caller, peer: u32, msg: &[u8]) -> SysResult<()> {
    let to = vm_owner(peer)?;
    proc::try_send(channel(caller.pid(), to)?, caller.pid(), msg).map_err(map)
}

/// Takes the next message from the process that owns VM `peer`.
pub fn sys_chan_recv(caller: Caller, peer: u32, buf: &mut [u8]) -> SysResult<usize> {
    let from = vm_owner(peer)?;
    proc::try_recv(channel(from, caller.pid())?, caller.pid(), buf).map_err(map)
}

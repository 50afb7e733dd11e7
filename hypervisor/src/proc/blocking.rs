//! Channel operations that block, and thread spawning into a process.
//!
//! The channel's state is checked under the process table's lock; to
//! block, a thread passes that lock's guard to `Threads::sleep`, which
//! releases it only after taking the scheduler lock, so a wakeup cannot be
//! lost between the check and the sleep. Lock order: process table, then
//! scheduler (and process table, then mm, in `proc_create`).
use super::{ChanId, Pid, ProcError, ProcTable};
use crate::sync::Lock;
use crate::thread::{Placement, Threads, Tid};

/// `try_send`, then wake receivers sleeping on the channel.
pub fn try_send_on(
    procs: &Lock<ProcTable>,
    threads: &Threads,
    chan: ChanId,
    from: Pid,
    msg: &[u8],
) -> Result<(), ProcError> {
    let mut t = procs.lock();
    t.try_send(chan, from, msg)?;
    threads.wakeup(t.data_chan(chan));
    Ok(())
}

/// `try_recv`, then wake senders sleeping on the channel.
pub fn try_recv_on(
    procs: &Lock<ProcTable>,
    threads: &Threads,
    chan: ChanId,
    to: Pid,
    buf: &mut [u8],
) -> Result<usize, ProcError> {
    let mut t = procs.lock();
    let n = t.try_recv(chan, to, buf)?;
    threads.wakeup(t.space_chan(chan));
    Ok(n)
}

/// Sends `msg`, sleeping while the channel is full. Fails like
/// `try_send` except for `Full`, or with `Thread(NothingToRun)` when it
/// would sleep with no other thread to run (a deadlock on one CPU).
pub fn send_on(
    procs: &Lock<ProcTable>,
    threads: &Threads,
    chan: ChanId,
    from: Pid,
    msg: &[u8],
) -> Result<(), ProcError> {
    loop {
        let mut t = procs.lock();
        match t.try_send(chan, from, msg) {
            Ok(()) => {
                threads.wakeup(t.data_chan(chan));
                return Ok(());
            }
            Err(ProcError::Full) => {
                let space = t.space_chan(chan);
                threads.sleep(space, t).map_err(ProcError::Thread)?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Receives into `buf`, sleeping while the channel is empty. Fails like
/// `try_recv` except for `Empty`, or with `Thread(NothingToRun)`.
pub fn recv_on(
    procs: &Lock<ProcTable>,
    threads: &Threads,
    chan: ChanId,
    to: Pid,
    buf: &mut [u8],
) -> Result<usize, ProcError> {
    loop {
        let mut t = procs.lock();
        match t.try_recv(chan, to, buf) {
            Ok(n) => {
                threads.wakeup(t.space_chan(chan));
                return Ok(n);
            }
            Err(ProcError::Empty) => {
                let data = t.data_chan(chan);
                threads.sleep(data, t).map_err(ProcError::Thread)?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Starts a thread of process `pid` (the thread's owner tag is the pid) on
/// the CPU `placement` names.
pub fn spawn_in(
    procs: &Lock<ProcTable>,
    threads: &'static Threads,
    pid: Pid,
    entry: fn(usize),
    arg: usize,
    placement: Placement,
) -> Result<Tid, ProcError> {
    let t = procs.lock();
    if !t.exists(pid) {
        return Err(ProcError::NoSuchProcess);
    }
    threads.spawn_on(entry, arg, pid.index() as u32, placement).map_err(ProcError::Thread)
}

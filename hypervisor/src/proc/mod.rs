//! proc: processes and the channels between them.
//!
//! A process is a container of memory (from the mm layer), the threads it
//! runs (thread-layer threads tagged with its pid). [`ProcTable::create`]
//! makes a child process whose container is carved out of the parent's
//! with `mm::split`, so a process can never use more memory than its
//! parent gave it. [`ProcTable::destroy`] ends a process whose threads are
//! gone and whose frames are freed: its quota returns to the parent, its
//! channels close, and its pid can be given again.
//!
//! A channel carries fixed-size messages (up to [`MSG_SIZE`] bytes) from
//! one sender process to one receiver process through a bounded FIFO of
//! [`CHAN_CAPACITY`] messages. `try_send`/`try_recv` never block and fail
//! with `Full`/`Empty` (hypercalls use these); [`send`]/[`recv`] block via
//! the thread layer's `sleep`/`wakeup`.
//!
//! Spec (`spec`, host tests only): processes as a map pid → (parent, container), channels
//! as a map id → (sender, receiver, `VecDeque` of messages).
//!
//! Relies on: mm (containers: `split`), thread (`spawn_owned`, `sleep`,
//! `wakeup`) and sync (`Lock`). No heap: fixed tables.
mod blocking;
#[cfg(test)]
pub mod spec;
mod table;
#[cfg(test)]
mod tests;

pub use blocking::{recv_on, send_on, spawn_in, try_recv_on, try_send_on};
pub use table::{ChanId, Pid, ProcTable};

use crate::mm::{self, ContainerId, MmError};
use crate::sync::Lock;
use crate::thread::{self, ThreadError, Tid};
use arrayvec::ArrayVec;
use core::fmt;

/// Processes at once.
pub const MAX_PROCS: usize = 16;
/// Channels at once.
pub const MAX_CHANNELS: usize = 16;
/// The largest message, in bytes.
pub const MSG_SIZE: usize = 256;
/// Messages a channel buffers.
pub const CHAN_CAPACITY: usize = 8;

/// Why a process or channel operation was refused. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcError {
    NoSuchProcess,
    TooManyProcesses,
    NoSuchChannel,
    TooManyChannels,
    /// The caller is not the channel's sender.
    NotSender,
    /// The caller is not the channel's receiver.
    NotReceiver,
    /// A message longer than [`MSG_SIZE`].
    TooLong,
    /// `try_send` on a full channel.
    Full,
    /// `try_recv` on an empty channel.
    Empty,
    /// The receive buffer is shorter than the next message (of `needed`
    /// bytes), which stays queued.
    BufferTooSmall {
        needed: usize,
    },
    /// The mm layer refused (e.g. `OutOfQuota` for the child's quota).
    Mm(MmError),
    /// The thread layer refused (e.g. `NothingToRun` for a blocking call
    /// that would wait forever on one CPU).
    Thread(ThreadError),
    /// [`init`] has not run (or `mm::init` had not when it did).
    NotInitialised,
    /// [`init`] ran twice.
    AlreadyInitialised,
    /// `destroy` of the root, of a process with children, or of one whose
    /// threads still run.
    InUse,
}

impl fmt::Display for ProcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcError::NoSuchProcess => f.write_str("no such process"),
            ProcError::TooManyProcesses => f.write_str("process table full"),
            ProcError::NoSuchChannel => f.write_str("no such channel"),
            ProcError::TooManyChannels => f.write_str("channel table full"),
            ProcError::NotSender => f.write_str("not the channel's sender"),
            ProcError::NotReceiver => f.write_str("not the channel's receiver"),
            ProcError::TooLong => write!(f, "message longer than {MSG_SIZE} bytes"),
            ProcError::Full => f.write_str("channel full"),
            ProcError::Empty => f.write_str("channel empty"),
            ProcError::BufferTooSmall { needed } => {
                write!(f, "buffer too small ({needed} bytes needed)")
            }
            ProcError::Mm(e) => write!(f, "mm: {e}"),
            ProcError::Thread(e) => write!(f, "thread: {e}"),
            ProcError::NotInitialised => f.write_str("proc layer not initialised"),
            ProcError::AlreadyInitialised => f.write_str("proc layer already initialised"),
            ProcError::InUse => f.write_str("process is the root, has children or still runs threads"),
        }
    }
}

static PROCS: Lock<ProcTable> = Lock::new(ProcTable::new());

/// The kernel's process table.
pub fn global() -> &'static Lock<ProcTable> {
    &PROCS
}

/// Boot: creates the root process (pid 0) over the root container. Call
/// after `mm::init` and `thread::init`; the boot thread belongs to it.
pub fn init() -> Result<Pid, ProcError> {
    if !mm::is_initialised() {
        return Err(ProcError::NotInitialised);
    }
    let mut t = PROCS.lock();
    if t.exists(Pid::ROOT) {
        return Err(ProcError::AlreadyInitialised);
    }
    Ok(t.init_root(ContainerId::ROOT))
}

/// Creates a child of `parent` with `quota` frames of the parent's quota.
pub fn proc_create(parent: Pid, quota: u64) -> Result<Pid, ProcError> {
    let mut t = PROCS.lock();
    let mut m = mm::global().lock();
    t.create(&mut m, parent, quota)
}

/// The container a process's memory comes from.
pub fn container_of(pid: Pid) -> Result<ContainerId, ProcError> {
    PROCS.lock().container(pid)
}

/// Opens a channel from `sender` to `receiver`.
pub fn chan_create(sender: Pid, receiver: Pid) -> Result<ChanId, ProcError> {
    PROCS.lock().chan_create(sender, receiver)
}

/// Non-blocking send; wakes a receiver blocked on the channel.
pub fn try_send(chan: ChanId, from: Pid, msg: &[u8]) -> Result<(), ProcError> {
    try_send_on(&PROCS, thread::global(), chan, from, msg)
}

/// Non-blocking receive into `buf`; returns the message length and wakes
/// a sender blocked on the full channel.
pub fn try_recv(chan: ChanId, to: Pid, buf: &mut [u8]) -> Result<usize, ProcError> {
    try_recv_on(&PROCS, thread::global(), chan, to, buf)
}

/// Sends, sleeping while the channel is full.
pub fn send(chan: ChanId, from: Pid, msg: &[u8]) -> Result<(), ProcError> {
    send_on(&PROCS, thread::global(), chan, from, msg)
}

/// Receives, sleeping while the channel is empty.
pub fn recv(chan: ChanId, to: Pid, buf: &mut [u8]) -> Result<usize, ProcError> {
    recv_on(&PROCS, thread::global(), chan, to, buf)
}

/// Ends process `pid` (see [`ProcTable::destroy`]) once its threads are
/// gone, and wakes any thread sleeping on one of its closed channels (it
/// then sees `NoSuchChannel`).
pub fn proc_destroy(pid: Pid) -> Result<(), ProcError> {
    let mut t = PROCS.lock();
    if thread_count(pid) != 0 {
        return Err(ProcError::InUse);
    }
    let closed = t.destroy(&mut mm::global().lock(), pid)?;
    let wake: ArrayVec<[thread::Chan; 2], MAX_CHANNELS> =
        closed.iter().map(|&c| [t.data_chan(c), t.space_chan(c)]).collect();
    drop(t);
    for c in wake.iter().flatten() {
        thread::wakeup(*c);
    }
    Ok(())
}

/// Live threads of process `pid`.
pub fn thread_count(pid: Pid) -> usize {
    thread::global().scheduler().count_owned(pid.index() as u32)
}

/// Starts a thread of process `pid` running `entry(arg)` on the caller's
/// CPU.
pub fn spawn(pid: Pid, entry: fn(usize), arg: usize) -> Result<Tid, ProcError> {
    spawn_on(pid, entry, arg, thread::Placement::Caller)
}

/// [`spawn`] on the CPU `placement` names.
pub fn spawn_on(pid: Pid, entry: fn(usize), arg: usize, placement: thread::Placement) -> Result<Tid, ProcError> {
    spawn_in(&PROCS, thread::global(), pid, entry, arg, placement)
}

//! thread: kernel threads with cooperative scheduling.
//!
//! Layers inside, bottom-up, each with a spec in `spec` (host tests only):
//!
//! 1. [`queue`]: intrusive doubly linked thread queues over a fixed TCB
//!    pool (CertiKOS's `tdqueue`). Spec: a `VecDeque` per queue.
//! 2. [`Scheduler`]: TCBs, the ready queue, sleep queues by channel and the
//!    current thread of each CPU, as pure state transitions (`spawn`,
//!    `yield_now`, `sleep`, `wakeup`, `exit`) that return the switch to
//!    make. Spec: (current per CPU, ready queue, sleepers by channel,
//!    thread states).
//! 3. [`Threads`]: the scheduler behind the sync layer's lock, plus one
//!    [`Context`](crate::arch::context::Context) with its own stack per
//!    TCB; this is what switches stacks. See its module for the lock
//!    protocol around a switch.
//!
//! Scheduling is cooperative: a thread runs until it yields, sleeps or
//! exits. Each CPU has its own ready queue and, once it schedules for
//! good, an idle thread that halts it when nothing is ready. A thread
//! belongs to one CPU from its spawn ([`Placement`]) and never moves; a
//! CPU that makes a thread ready on another CPU kicks it ([`set_kick`]).
//! One lock covers all the queues: a switch touches the scheduler once,
//! briefly, and the CPUs rarely meet there (docs/layers.md).
//!
//! Relies on: sync ([`Lock`](crate::sync::Lock)) and arch's context switch.
#[cfg(test)]
mod loom_tests;
pub mod queue;
mod sched;
#[cfg(test)]
pub mod spec;
#[cfg(test)]
mod tests;
mod threads;

pub use sched::{bucket, CpuSet, Scheduler, Switch, ThreadState};
pub use threads::Threads;

use crate::arch::context::ContextError;
use core::fmt;

/// Thread control blocks in the pool, i.e. threads at once (all CPUs).
pub const MAX_THREADS: usize = 32;
/// CPUs the per-CPU tables have room for: arch's (descriptor tables,
/// stacks), the one constant every layer uses.
pub const MAX_CPUS: usize = crate::arch::gdt::MAX_CPUS;
/// Sleep queues; channels are hashed onto them.
pub const SLEEP_BUCKETS: usize = 16;
/// Each thread's stack.
pub use crate::arch::context::STACK_SIZE;

/// A thread id: the index of its TCB.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Tid(pub(crate) u16);

impl Tid {
    pub const fn index(self) -> usize {
        self.0 as usize
    }
    /// The id with TCB index `i` (no check that it exists).
    pub const fn from_index(i: usize) -> Tid {
        Tid(i as u16)
    }
}

impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// A CPU, by its index in the per-CPU tables (0 = the boot CPU).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CpuId(pub usize);

/// What a sleeping thread waits for; any agreed number (an object's
/// address, or an id with a tag in the high bits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Chan(pub u64);

/// Why a thread operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadError {
    /// All TCBs are in use.
    NoFreeThread,
    /// The CPU has no current thread (it was never attached).
    NoCurrentThread,
    /// `attach` on a CPU that already has a current thread.
    CpuBusy,
    /// A CPU index beyond [`MAX_CPUS`].
    BadCpu,
    /// `sleep`/`exit` with no other ready thread to run.
    NothingToRun,
    /// The context layer refused (the caller is not the thread it claims).
    Context(ContextError),
    /// [`init`] was called twice for a CPU.
    AlreadyInitialised,
}

impl fmt::Display for ThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadError::NoFreeThread => f.write_str("no free thread control block"),
            ThreadError::NoCurrentThread => f.write_str("no current thread on this CPU"),
            ThreadError::CpuBusy => f.write_str("CPU already has a current thread"),
            ThreadError::BadCpu => f.write_str("CPU index out of range"),
            ThreadError::NothingToRun => f.write_str("no other thread is ready"),
            ThreadError::Context(e) => write!(f, "context refused: {e:?}"),
            ThreadError::AlreadyInitialised => f.write_str("thread layer already initialised"),
        }
    }
}

/// Which CPU a new thread belongs to (for its whole life).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The CPU of the thread that spawns it.
    Caller,
    /// This CPU (pinned by the caller).
    Cpu(CpuId),
    /// The online CPU with the fewest threads (other than idle threads).
    LeastLoaded,
}

static THREADS: Threads = Threads::new();
static CPU_ID_SOURCE: spin::Once<fn() -> CpuId> = spin::Once::new();
static KICK: spin::Once<fn(CpuId)> = spin::Once::new();

/// Installs the function that makes another CPU look at its ready queue
/// (an IPI that ends its HLT). Until then nothing is kicked, which is
/// right while only the boot CPU schedules.
pub fn set_kick(f: fn(CpuId)) {
    KICK.call_once(|| f);
}

/// Kicks every CPU of `cpus` but `me`.
fn kick(cpus: CpuSet, me: CpuId) {
    if let Some(f) = KICK.get() {
        (0..MAX_CPUS).filter(|&c| cpus & (1 << c) != 0 && c != me.0).for_each(|c| f(CpuId(c)));
    }
}

/// Kicks `cpu` (an IPI that ends its HLT or its guest's run), if a kick
/// function is installed.
pub fn kick_cpu(cpu: CpuId) {
    if let Some(f) = KICK.get() {
        f(cpu)
    }
}

/// The kernel's thread pool.
pub fn global() -> &'static Threads {
    &THREADS
}

/// Installs the function that tells which CPU the caller runs on (e.g.
/// from the per-CPU area). Until then every flow that is not a spawned
/// thread counts as CPU 0, which is right while only the boot CPU runs.
/// Spawned threads do not need it: they are found by their stack.
pub fn set_cpu_id_source(f: fn() -> CpuId) {
    CPU_ID_SOURCE.call_once(|| f);
}

fn cpu_id() -> CpuId {
    CPU_ID_SOURCE.get().map_or(CpuId(0), |f| f())
}

/// Boot, once per CPU: the calling flow (the CPU's boot flow) becomes a
/// thread, the current thread of `cpu`. Call after `mm::init` and before
/// any other thread function on that CPU.
pub fn init(cpu: CpuId) -> Result<Tid, ThreadError> {
    match THREADS.attach_current(cpu) {
        Err(ThreadError::CpuBusy) => Err(ThreadError::AlreadyInitialised),
        r => r,
    }
}

/// Whether `cpu` has a current thread (i.e. [`init`] ran for it).
pub fn is_initialised(cpu: CpuId) -> bool {
    THREADS.scheduler().current(cpu).is_ok()
}

/// [`Threads::spawn`] on the kernel's pool.
pub fn spawn(entry: fn(usize), arg: usize) -> Result<Tid, ThreadError> {
    THREADS.spawn(entry, arg)
}

/// [`Threads::spawn_on`] on the kernel's pool, owned by `owner`.
pub fn spawn_on(entry: fn(usize), arg: usize, owner: u32, placement: Placement) -> Result<Tid, ThreadError> {
    THREADS.spawn_on(entry, arg, owner, placement)
}

/// [`Threads::spawn_idle`] on the kernel's pool.
pub fn spawn_idle(cpu: CpuId) -> Result<Tid, ThreadError> {
    THREADS.spawn_idle(cpu)
}

/// [`Threads::run_as_idle`] on the kernel's pool: the caller becomes its
/// CPU's idle thread. Returns only on error.
pub fn run_as_idle() -> ThreadError {
    THREADS.run_as_idle()
}

/// [`Threads::kick_owner`] on the kernel's pool.
pub fn kick_owner(owner: u32) {
    THREADS.kick_owner(owner)
}

/// [`Threads::yield_now`] on the kernel's pool.
pub fn yield_now() -> Result<(), ThreadError> {
    THREADS.yield_now()
}

/// [`Threads::yield_to_others`] on the kernel's pool: `Ok(false)` when no
/// other thread was ready (nothing happened), `Ok(true)` when one ran.
pub fn yield_to_others() -> Result<bool, ThreadError> {
    THREADS.yield_to_others()
}

/// [`Threads::sleep`] on the kernel's pool.
pub fn sleep<G>(chan: Chan, guard: G) -> Result<(), ThreadError> {
    THREADS.sleep(chan, guard)
}

/// [`Threads::wakeup`] on the kernel's pool.
pub fn wakeup(chan: Chan) -> usize {
    THREADS.wakeup(chan)
}

/// [`Threads::exit`] on the kernel's pool: ends the calling thread.
/// Returns only if the caller is not a thread.
pub fn exit() -> ThreadError {
    THREADS.exit()
}

/// The calling thread.
pub fn current() -> Option<Tid> {
    THREADS.current()
}

/// The owner tag (the proc layer's pid) of the calling thread, without a
/// lock: what the syscall layer asks on every call.
pub fn current_owner() -> Option<u32> {
    THREADS.running_owner(cpu_id())
}

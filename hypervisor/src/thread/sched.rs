//! The scheduler's state and transitions, without any context switching.
//!
//! [`Scheduler`] is pure bookkeeping: thread control blocks, a ready queue
//! per CPU, hashed sleep queues, and the current and idle thread of each
//! CPU. A thread belongs to one CPU for its life (chosen at spawn): it is
//! queued there and runs only there, so a vCPU's VMCB, ASID and TLB
//! entries never move between CPUs. Its operations decide *which* switch
//! to make and return it as `(from, to)`; [`super::Threads`] makes the
//! switch. Keeping the decision separate lets the refinement tests run it
//! against [`super::spec::SchedSpec`] without switching stacks.
use super::queue::{QueueError, QueueSet};
use super::{Chan, CpuId, ThreadError, Tid, MAX_CPUS, MAX_THREADS, SLEEP_BUCKETS};

/// Ready queue `c` is CPU `c`'s; sleep bucket `b` is queue `MAX_CPUS + b`.
const SLEEP_BASE: usize = MAX_CPUS;
const QUEUES: usize = MAX_CPUS + SLEEP_BUCKETS;

/// Where a thread is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadState {
    /// The TCB is unused.
    Free,
    /// On its CPU's ready queue.
    Ready,
    /// The current thread of a CPU.
    Running(CpuId),
    /// Waiting for a [`wakeup`](Scheduler::wakeup) on the channel.
    Sleeping(Chan),
    /// A CPU's idle thread while another thread runs there: on no queue,
    /// it runs when its CPU has nothing ready.
    Idle,
}

#[derive(Clone, Copy)]
struct Tcb {
    state: ThreadState,
    entry: Option<fn(usize)>,
    arg: usize,
    owner: u32,
    /// The CPU the thread runs on: it is queued there and never moves.
    cpu: CpuId,
}

const FREE_TCB: Tcb = Tcb { state: ThreadState::Free, entry: None, arg: 0, owner: 0, cpu: CpuId(0) };

/// A switch the caller must make: save `from`, resume `to`.
pub type Switch = (Tid, Tid);

/// CPUs as a bit set (bit `c` for CPU `c`).
pub type CpuSet = u32;

/// Thread control blocks, per-CPU ready queues, sleep queues, and each
/// CPU's current and idle thread.
pub struct Scheduler {
    tcbs: [Tcb; MAX_THREADS],
    queues: QueueSet<MAX_THREADS, QUEUES>,
    current: [Option<Tid>; MAX_CPUS],
    idle: [Option<Tid>; MAX_CPUS],
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

/// The sleep bucket of a channel (Fibonacci hashing: addresses and small
/// integers both spread well).
pub fn bucket(chan: Chan) -> usize {
    (chan.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize % SLEEP_BUCKETS
}

fn expect_queue_ok<T>(r: Result<T, QueueError>) -> T {
    // The scheduler keeps queue membership in step with thread states, so
    // queue errors here would be scheduler bugs.
    match r {
        Ok(v) => v,
        Err(e) => panic!("scheduler queue invariant broken: {e:?}"),
    }
}

impl Scheduler {
    /// No threads, no current threads.
    pub const fn new() -> Self {
        Scheduler {
            tcbs: [FREE_TCB; MAX_THREADS],
            queues: QueueSet::new(),
            current: [None; MAX_CPUS],
            idle: [None; MAX_CPUS],
        }
    }

    fn free_tcb(&self) -> Result<Tid, ThreadError> {
        self.tcbs
            .iter()
            .position(|t| t.state == ThreadState::Free)
            .map(|i| Tid(i as u16))
            .ok_or(ThreadError::NoFreeThread)
    }

    fn check_cpu(cpu: CpuId) -> Result<(), ThreadError> {
        if cpu.0 < MAX_CPUS {
            Ok(())
        } else {
            Err(ThreadError::BadCpu)
        }
    }

    /// The current thread of `cpu`.
    pub fn current(&self, cpu: CpuId) -> Result<Tid, ThreadError> {
        self.current.get(cpu.0).ok_or(ThreadError::BadCpu)?.ok_or(ThreadError::NoCurrentThread)
    }

    /// The idle thread of `cpu`, if it has one.
    pub fn idle(&self, cpu: CpuId) -> Option<Tid> {
        *self.idle.get(cpu.0)?
    }

    /// The state of `tid` (Free for an unknown thread).
    pub fn state(&self, tid: Tid) -> ThreadState {
        self.tcbs.get(tid.index()).map_or(ThreadState::Free, |t| t.state)
    }

    /// The owner tag given at spawn (the proc layer's process id).
    pub fn owner(&self, tid: Tid) -> Option<u32> {
        let t = self.tcbs.get(tid.index())?;
        (t.state != ThreadState::Free).then_some(t.owner)
    }

    /// The CPU a live thread runs on.
    pub fn cpu_of(&self, tid: Tid) -> Option<CpuId> {
        let t = self.tcbs.get(tid.index())?;
        (t.state != ThreadState::Free).then_some(t.cpu)
    }

    /// The entry point and argument given at spawn.
    pub fn entry(&self, tid: Tid) -> Option<(fn(usize), usize)> {
        let t = self.tcbs.get(tid.index())?;
        Some((t.entry?, t.arg))
    }

    /// Threads that are not Free.
    pub fn live_threads(&self) -> usize {
        self.tcbs.iter().filter(|t| t.state != ThreadState::Free).count()
    }

    /// Live threads whose owner tag is `owner`.
    pub fn count_owned(&self, owner: u32) -> usize {
        self.tcbs.iter().filter(|t| t.state != ThreadState::Free && t.owner == owner).count()
    }

    /// The CPUs of the live threads whose owner tag is `owner`.
    pub fn cpus_of_owner(&self, owner: u32) -> CpuSet {
        let mine = self.tcbs.iter().filter(|t| t.state != ThreadState::Free && t.owner == owner);
        mine.fold(0, |m, t| m | 1 << t.cpu.0)
    }

    /// Threads on `cpu`'s ready queue, front first.
    pub fn ready(&self, cpu: CpuId) -> impl Iterator<Item = Tid> + '_ {
        let q = if cpu.0 < MAX_CPUS { Some(cpu.0) } else { None };
        q.into_iter().flat_map(move |q| self.queues.iter(q).map(|t| Tid(t as u16)))
    }

    /// Sleeping threads in sleep order within each bucket: `(tid, chan)`.
    pub fn sleepers(&self) -> impl Iterator<Item = (Tid, Chan)> + '_ {
        (0..SLEEP_BUCKETS).flat_map(move |b| {
            self.queues.iter(SLEEP_BASE + b).map(move |t| match self.tcbs[t].state {
                ThreadState::Sleeping(c) => (Tid(t as u16), c),
                _ => panic!("non-sleeper on a sleep queue"),
            })
        })
    }

    /// The CPUs that schedule threads: those with a current or an idle
    /// thread.
    pub fn online(&self) -> CpuSet {
        (0..MAX_CPUS).filter(|&c| self.current[c].is_some() || self.idle[c].is_some()).fold(0, |m, c| m | 1 << c)
    }

    /// The online CPU with the fewest live threads of processes (owner
    /// tag other than 0, the root's: the kernel's own threads, such as a
    /// boot flow that mostly sleeps, and the idle threads do not count);
    /// the lowest index of those tied, and CPU 0 when none is online.
    pub fn least_loaded(&self) -> CpuId {
        let online = self.online();
        let load = |c: usize| {
            self.tcbs.iter().filter(|t| t.state != ThreadState::Free && t.cpu.0 == c && t.owner != 0).count()
        };
        (0..MAX_CPUS).filter(|&c| online & (1 << c) != 0).min_by_key(|&c| (load(c), c)).map_or(CpuId(0), CpuId)
    }

    /// The flow already running on `cpu` becomes a thread (its current).
    pub fn attach(&mut self, cpu: CpuId, owner: u32) -> Result<Tid, ThreadError> {
        match self.current.get(cpu.0) {
            None => return Err(ThreadError::BadCpu),
            Some(Some(_)) => return Err(ThreadError::CpuBusy),
            Some(None) => {}
        }
        let tid = self.free_tcb()?;
        self.tcbs[tid.index()] = Tcb { state: ThreadState::Running(cpu), entry: None, arg: 0, owner, cpu };
        self.current[cpu.0] = Some(tid);
        Ok(tid)
    }

    /// The current thread of `cpu` stops being a thread; the CPU has none
    /// (and no idle thread, if that was it).
    pub fn detach(&mut self, cpu: CpuId) -> Result<Tid, ThreadError> {
        let tid = self.current(cpu)?;
        self.tcbs[tid.index()] = FREE_TCB;
        self.current[cpu.0] = None;
        if self.idle[cpu.0] == Some(tid) {
            self.idle[cpu.0] = None;
        }
        Ok(tid)
    }

    /// A new Ready thread on `cpu` that will run `entry(arg)`; lowest free
    /// TCB.
    pub fn spawn(&mut self, entry: fn(usize), arg: usize, owner: u32, cpu: CpuId) -> Result<Tid, ThreadError> {
        Self::check_cpu(cpu)?;
        let tid = self.free_tcb()?;
        self.tcbs[tid.index()] = Tcb { state: ThreadState::Ready, entry: Some(entry), arg, owner, cpu };
        expect_queue_ok(self.queues.enqueue(cpu.0, tid.index()));
        Ok(tid)
    }

    /// A new thread, `cpu`'s idle thread (it has no entry: the thread layer
    /// runs its idle loop): it runs whenever nothing else is ready there.
    /// Refused with `CpuBusy` if the CPU has one.
    pub fn spawn_idle(&mut self, cpu: CpuId) -> Result<Tid, ThreadError> {
        Self::check_cpu(cpu)?;
        if self.idle[cpu.0].is_some() {
            return Err(ThreadError::CpuBusy);
        }
        let tid = self.free_tcb()?;
        self.tcbs[tid.index()] = Tcb { state: ThreadState::Idle, entry: None, arg: 0, owner: 0, cpu };
        self.idle[cpu.0] = Some(tid);
        Ok(tid)
    }

    /// The current thread of `cpu` becomes its idle thread. Refused with
    /// `CpuBusy` if the CPU has one.
    pub fn become_idle(&mut self, cpu: CpuId) -> Result<Tid, ThreadError> {
        let tid = self.current(cpu)?;
        if self.idle[cpu.0].is_some() {
            return Err(ThreadError::CpuBusy);
        }
        self.idle[cpu.0] = Some(tid);
        Ok(tid)
    }

    /// Undoes a [`spawn`](Self::spawn) or [`spawn_idle`](Self::spawn_idle)
    /// whose thread never ran.
    pub fn unspawn(&mut self, tid: Tid) {
        let Some(t) = self.tcbs.get(tid.index()).copied() else { return };
        match t.state {
            ThreadState::Ready => expect_queue_ok(self.queues.remove(t.cpu.0, tid.index())),
            ThreadState::Idle => self.idle[t.cpu.0] = None,
            _ => return,
        }
        self.tcbs[tid.index()] = FREE_TCB;
    }

    /// Makes the first ready thread of `cpu` current there, or its idle
    /// thread if none is ready; `None` when it has neither.
    fn run_next(&mut self, cpu: CpuId) -> Option<Tid> {
        let to = match self.queues.dequeue(cpu.0) {
            Ok(t) => Tid(t as u16),
            Err(_) => self.idle[cpu.0].filter(|&t| self.tcbs[t.index()].state == ThreadState::Idle)?,
        };
        self.tcbs[to.index()].state = ThreadState::Running(cpu);
        self.current[cpu.0] = Some(to);
        Some(to)
    }

    /// Where `from`, which stops running, waits: an idle thread goes back
    /// to Idle, any other thread to the back of its CPU's ready queue.
    fn requeue(&mut self, from: Tid) {
        let t = self.tcbs[from.index()];
        if self.idle[t.cpu.0] == Some(from) {
            self.tcbs[from.index()].state = ThreadState::Idle;
        } else {
            self.tcbs[from.index()].state = ThreadState::Ready;
            expect_queue_ok(self.queues.enqueue(t.cpu.0, from.index()));
        }
    }

    /// The current thread of `cpu` goes to the back of its ready queue (an
    /// idle thread back to Idle) and the first ready thread of `cpu` runs.
    /// `None` (nothing changes) when no other thread is ready there: a
    /// yield never switches to the idle thread.
    pub fn yield_now(&mut self, cpu: CpuId) -> Result<Option<Switch>, ThreadError> {
        let from = self.current(cpu)?;
        if self.queues.is_empty(cpu.0) {
            return Ok(None);
        }
        let to = self.run_next(cpu).expect("a ready thread was queued");
        self.requeue(from);
        Ok(Some((from, to)))
    }

    /// The current thread of `cpu` sleeps on `chan` and the first ready
    /// thread of `cpu` runs, or its idle thread. Refused with
    /// `NothingToRun` (nothing changes) when the CPU has neither, or when
    /// the caller is the idle thread, which never blocks.
    pub fn sleep(&mut self, cpu: CpuId, chan: Chan) -> Result<Switch, ThreadError> {
        let from = self.current(cpu)?;
        if self.idle[cpu.0] == Some(from) {
            return Err(ThreadError::NothingToRun);
        }
        let to = self.run_next(cpu).ok_or(ThreadError::NothingToRun)?;
        self.tcbs[from.index()].state = ThreadState::Sleeping(chan);
        expect_queue_ok(self.queues.enqueue(SLEEP_BASE + bucket(chan), from.index()));
        Ok((from, to))
    }

    /// Makes every thread sleeping on `chan` ready on its CPU, in the order
    /// they went to sleep. Returns how many woke and the CPUs they are on.
    pub fn wakeup(&mut self, chan: Chan) -> (usize, CpuSet) {
        let q = SLEEP_BASE + bucket(chan);
        let mut woken = 0;
        let mut cpus = 0;
        // Rotate the bucket once: sleepers on `chan` move to their ready
        // queues, the others go back in their original order.
        for _ in 0..self.queues.len(q) {
            let t = expect_queue_ok(self.queues.dequeue(q));
            if self.tcbs[t].state == ThreadState::Sleeping(chan) {
                let cpu = self.tcbs[t].cpu;
                self.tcbs[t].state = ThreadState::Ready;
                expect_queue_ok(self.queues.enqueue(cpu.0, t));
                woken += 1;
                cpus |= 1 << cpu.0;
            } else {
                expect_queue_ok(self.queues.enqueue(q, t));
            }
        }
        (woken, cpus)
    }

    /// The current thread of `cpu` ends (its TCB is free again) and the
    /// first ready thread of `cpu` runs, or its idle thread. Refused with
    /// `NothingToRun` when the CPU has neither, or when the caller is the
    /// idle thread.
    pub fn exit(&mut self, cpu: CpuId) -> Result<Switch, ThreadError> {
        let from = self.current(cpu)?;
        if self.idle[cpu.0] == Some(from) {
            return Err(ThreadError::NothingToRun);
        }
        let to = self.run_next(cpu).ok_or(ThreadError::NothingToRun)?;
        self.tcbs[from.index()] = FREE_TCB;
        Ok((from, to))
    }
}

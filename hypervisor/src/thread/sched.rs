//! The scheduler's state and transitions, without any context switching.
//!
//! [`Scheduler`] is pure bookkeeping: thread control blocks, the ready
//! queue, hashed sleep queues and the current thread of each CPU. Its
//! operations decide *which* switch to make and return it as
//! `(from, to)`; [`super::Threads`] makes the switch. Keeping the decision
//! separate lets the refinement tests run it against
//! [`super::spec::SchedSpec`] without switching stacks.
use super::queue::{QueueError, QueueSet};
use super::{Chan, CpuId, ThreadError, Tid, MAX_CPUS, MAX_THREADS, SLEEP_BUCKETS};

/// The ready queue's number in the queue set; sleep bucket `b` is `1 + b`.
const READY: usize = 0;
const QUEUES: usize = 1 + SLEEP_BUCKETS;

/// Where a thread is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadState {
    /// The TCB is unused.
    Free,
    /// On the ready queue.
    Ready,
    /// The current thread of a CPU.
    Running(CpuId),
    /// Waiting for a [`wakeup`](Scheduler::wakeup) on the channel.
    Sleeping(Chan),
}

#[derive(Clone, Copy)]
struct Tcb {
    state: ThreadState,
    entry: Option<fn(usize)>,
    arg: usize,
    owner: u32,
}

const FREE_TCB: Tcb = Tcb { state: ThreadState::Free, entry: None, arg: 0, owner: 0 };

/// A switch the caller must make: save `from`, resume `to`.
pub type Switch = (Tid, Tid);

/// Thread control blocks, queues and per-CPU current threads.
pub struct Scheduler {
    tcbs: [Tcb; MAX_THREADS],
    queues: QueueSet<MAX_THREADS, QUEUES>,
    current: [Option<Tid>; MAX_CPUS],
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
        Scheduler { tcbs: [FREE_TCB; MAX_THREADS], queues: QueueSet::new(), current: [None; MAX_CPUS] }
    }

    fn free_tcb(&self) -> Result<Tid, ThreadError> {
        self.tcbs
            .iter()
            .position(|t| t.state == ThreadState::Free)
            .map(|i| Tid(i as u16))
            .ok_or(ThreadError::NoFreeThread)
    }

    /// The current thread of `cpu`.
    pub fn current(&self, cpu: CpuId) -> Result<Tid, ThreadError> {
        self.current.get(cpu.0).ok_or(ThreadError::BadCpu)?.ok_or(ThreadError::NoCurrentThread)
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

    /// Threads on the ready queue, front first.
    pub fn ready(&self) -> impl Iterator<Item = Tid> + '_ {
        self.queues.iter(READY).map(|t| Tid(t as u16))
    }

    /// Sleeping threads in sleep order within each bucket: `(tid, chan)`.
    pub fn sleepers(&self) -> impl Iterator<Item = (Tid, Chan)> + '_ {
        (0..SLEEP_BUCKETS).flat_map(move |b| {
            self.queues.iter(1 + b).map(move |t| match self.tcbs[t].state {
                ThreadState::Sleeping(c) => (Tid(t as u16), c),
                _ => panic!("non-sleeper on a sleep queue"),
            })
        })
    }

    /// The flow already running on `cpu` becomes a thread (its current).
    pub fn attach(&mut self, cpu: CpuId, owner: u32) -> Result<Tid, ThreadError> {
        match self.current.get(cpu.0) {
            None => return Err(ThreadError::BadCpu),
            Some(Some(_)) => return Err(ThreadError::CpuBusy),
            Some(None) => {}
        }
        let tid = self.free_tcb()?;
        self.tcbs[tid.index()] = Tcb { state: ThreadState::Running(cpu), entry: None, arg: 0, owner };
        self.current[cpu.0] = Some(tid);
        Ok(tid)
    }

    /// The current thread of `cpu` stops being a thread; the CPU has none.
    pub fn detach(&mut self, cpu: CpuId) -> Result<Tid, ThreadError> {
        let tid = self.current(cpu)?;
        self.tcbs[tid.index()] = FREE_TCB;
        self.current[cpu.0] = None;
        Ok(tid)
    }

    /// A new Ready thread that will run `entry(arg)`; lowest free TCB.
    pub fn spawn(&mut self, entry: fn(usize), arg: usize, owner: u32) -> Result<Tid, ThreadError> {
        let tid = self.free_tcb()?;
        self.tcbs[tid.index()] = Tcb { state: ThreadState::Ready, entry: Some(entry), arg, owner };
        expect_queue_ok(self.queues.enqueue(READY, tid.index()));
        Ok(tid)
    }

    /// Undoes a [`spawn`](Self::spawn) whose thread never ran.
    pub fn unspawn(&mut self, tid: Tid) {
        if self.state(tid) == ThreadState::Ready {
            expect_queue_ok(self.queues.remove(READY, tid.index()));
            self.tcbs[tid.index()] = FREE_TCB;
        }
    }

    /// Makes the first ready thread current on `cpu`.
    fn run_next(&mut self, cpu: CpuId) -> Tid {
        let to = Tid(expect_queue_ok(self.queues.dequeue(READY)) as u16);
        self.tcbs[to.index()].state = ThreadState::Running(cpu);
        self.current[cpu.0] = Some(to);
        to
    }

    /// The current thread of `cpu` goes to the back of the ready queue and
    /// the first ready thread runs. `None` (nothing changes) when no other
    /// thread is ready.
    pub fn yield_now(&mut self, cpu: CpuId) -> Result<Option<Switch>, ThreadError> {
        let from = self.current(cpu)?;
        if self.queues.is_empty(READY) {
            return Ok(None);
        }
        let to = self.run_next(cpu);
        self.tcbs[from.index()].state = ThreadState::Ready;
        expect_queue_ok(self.queues.enqueue(READY, from.index()));
        Ok(Some((from, to)))
    }

    /// The current thread of `cpu` sleeps on `chan` and the first ready
    /// thread runs. Refused with `NothingToRun` (nothing changes) when no
    /// thread is ready: with cooperative scheduling and no idle thread, the
    /// CPU would have nothing to do.
    pub fn sleep(&mut self, cpu: CpuId, chan: Chan) -> Result<Switch, ThreadError> {
        let from = self.current(cpu)?;
        if self.queues.is_empty(READY) {
            return Err(ThreadError::NothingToRun);
        }
        let to = self.run_next(cpu);
        self.tcbs[from.index()].state = ThreadState::Sleeping(chan);
        expect_queue_ok(self.queues.enqueue(1 + bucket(chan), from.index()));
        Ok((from, to))
    }

    /// Makes every thread sleeping on `chan` ready, in the order they went
    /// to sleep. Returns how many woke.
    pub fn wakeup(&mut self, chan: Chan) -> usize {
        let q = 1 + bucket(chan);
        let mut woken = 0;
        // Rotate the bucket once: sleepers on `chan` move to the ready
        // queue, the others go back in their original order.
        for _ in 0..self.queues.len(q) {
            let t = expect_queue_ok(self.queues.dequeue(q));
            if self.tcbs[t].state == ThreadState::Sleeping(chan) {
                self.tcbs[t].state = ThreadState::Ready;
                expect_queue_ok(self.queues.enqueue(READY, t));
                woken += 1;
            } else {
                expect_queue_ok(self.queues.enqueue(q, t));
            }
        }
        woken
    }

    /// The current thread of `cpu` ends (its TCB is free again) and the
    /// first ready thread runs. Refused with `NothingToRun` when no thread
    /// is ready.
    pub fn exit(&mut self, cpu: CpuId) -> Result<Switch, ThreadError> {
        let from = self.current(cpu)?;
        if self.queues.is_empty(READY) {
            return Err(ThreadError::NothingToRun);
        }
        let to = self.run_next(cpu);
        self.tcbs[from.index()] = FREE_TCB;
        Ok((from, to))
    }
}

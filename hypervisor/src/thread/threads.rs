//! Threads that really run: the scheduler behind a lock, plus contexts.
//!
//! # Lock protocol around a switch
//! The scheduler state sits behind the sync layer's [`Lock`]. No guard is
//! ever held across a context switch. Every switching operation:
//!
//! 1. takes the scheduler lock;
//! 2. marks the current thread's context outgoing
//!    ([`Context::begin_switch`] / [`Context::begin_exit`]), so that no
//!    other CPU can resume it before its registers are saved, even though
//!    step 3 may put it on the ready queue;
//! 3. lets the [`Scheduler`] pick the next thread and update the queues;
//! 4. drops the guard;
//! 5. switches. The resumed thread returns from its own step 5 with no
//!    lock held, so there is nothing to release on that side.
//!
//! `sleep` takes the caller's guard of the lock that protects the sleep
//! condition and drops it only after step 1, so a `wakeup` (which takes the
//! scheduler lock) cannot slip in between the condition check and the
//! sleep: the lost-wakeup race is closed. Lock order: condition lock, then
//! the scheduler lock.
use super::sched::{Scheduler, ThreadState};
use super::{kick, Chan, CpuId, Placement, ThreadError, Tid, MAX_CPUS, MAX_THREADS};
use crate::arch::context::Context;
use crate::sync::{Lock, LockGuard};
use core::sync::atomic::{AtomicU32, Ordering};

/// A pool of threads with their stacks and a scheduler.
///
/// The kernel has one, [`super::global`]; tests make their own in statics.
pub struct Threads {
    sched: Lock<Scheduler>,
    contexts: [Context; MAX_THREADS],
    /// Per CPU, the owner tag + 1 of the thread it runs (0: none), written
    /// under the scheduler lock whenever the CPU's current thread changes,
    /// so that the syscall layer finds its caller's process without a lock.
    running_owner: [AtomicU32; MAX_CPUS],
}

impl Default for Threads {
    fn default() -> Self {
        Self::new()
    }
}

/// First code of every spawned thread, on its own stack: its entry, or
/// the idle loop for an idle thread (which has none).
fn thread_main(threads: &'static Threads, tid: usize) -> ! {
    let entry = threads.sched.lock().entry(Tid(tid as u16));
    let e = match entry {
        Some((entry, arg)) => {
            entry(arg);
            threads.exit()
        }
        None => idle_loop(threads),
    };
    panic!("thread {tid} could not go on: {e:?}");
}

/// A CPU's idle thread: runs what is ready on the CPU, and halts until the
/// next interrupt when nothing is. Returns only on error.
fn idle_loop(threads: &Threads) -> ThreadError {
    loop {
        match threads.yield_to_others() {
            Ok(true) => {}
            Ok(false) => crate::arch::cpu::wait_for_interrupt(),
            Err(e) => return e,
        }
    }
}

impl Threads {
    /// No threads; usable in a `static` (it lives in .bss).
    pub const fn new() -> Self {
        Threads {
            sched: Lock::new(Scheduler::new()),
            contexts: [const { Context::new() }; MAX_THREADS],
            running_owner: [const { AtomicU32::new(0) }; MAX_CPUS],
        }
    }

    /// Records that `cpu` now runs `tid` (or nothing), for
    /// [`running_owner`](Self::running_owner). Called under the scheduler
    /// lock.
    fn note_running(&self, s: &Scheduler, cpu: CpuId, tid: Option<Tid>) {
        let tag = tid.and_then(|t| s.owner(t)).map_or(0, |o| o + 1);
        if let Some(slot) = self.running_owner.get(cpu.0) {
            slot.store(tag, Ordering::Relaxed);
        }
    }

    /// The owner tag of the thread `cpu` runs, without taking the lock; the
    /// caller must run on `cpu` (then the value is its own thread's).
    pub fn running_owner(&self, cpu: CpuId) -> Option<u32> {
        let tag = self.running_owner.get(cpu.0)?.load(Ordering::Relaxed);
        tag.checked_sub(1)
    }

    /// The scheduler state, locked (for inspection; do not switch with it).
    pub fn scheduler(&self) -> LockGuard<'_, Scheduler> {
        self.sched.lock()
    }

    /// The CPU the caller runs on: a spawned thread is found by its stack
    /// and its TCB; an adopted flow (a CPU's boot flow) asks the CPU id
    /// source (see [`super::set_cpu_id_source`]).
    fn cpu_of_caller(&self, s: &Scheduler) -> CpuId {
        for (i, c) in self.contexts.iter().enumerate() {
            if c.stack_contains_current() {
                if let ThreadState::Running(cpu) = s.state(Tid(i as u16)) {
                    return cpu;
                }
            }
        }
        super::cpu_id()
    }

    /// The calling thread.
    pub fn current(&self) -> Option<Tid> {
        let s = self.sched.lock();
        s.current(self.cpu_of_caller(&s)).ok()
    }

    /// Turns the calling flow (e.g. the boot flow of `cpu`) into a thread,
    /// the current thread of `cpu`.
    pub fn attach_current(&self, cpu: CpuId) -> Result<Tid, ThreadError> {
        let mut s = self.sched.lock();
        let tid = s.attach(cpu, 0)?;
        if let Err(e) = self.contexts[tid.index()].adopt_current() {
            let _ = s.detach(cpu);
            return Err(ThreadError::Context(e));
        }
        self.note_running(&s, cpu, Some(tid));
        Ok(tid)
    }

    /// Undoes [`attach_current`](Self::attach_current) for the calling flow:
    /// it stops being a thread. Refused for spawned threads, which `exit`.
    pub fn detach_current(&self) -> Result<Tid, ThreadError> {
        let mut s = self.sched.lock();
        let cpu = self.cpu_of_caller(&s);
        let tid = s.current(cpu)?;
        self.contexts[tid.index()].leave().map_err(ThreadError::Context)?;
        let detached = s.detach(cpu)?;
        self.note_running(&s, cpu, None);
        Ok(detached)
    }

    /// Starts a thread running `entry(arg)` on the caller's CPU; it is
    /// ready at once and runs when scheduled. When `entry` returns the
    /// thread exits.
    pub fn spawn(&'static self, entry: fn(usize), arg: usize) -> Result<Tid, ThreadError> {
        self.spawn_owned(entry, arg, 0)
    }

    /// [`spawn`](Self::spawn) with an owner tag (the proc layer's pid).
    pub fn spawn_owned(&'static self, entry: fn(usize), arg: usize, owner: u32) -> Result<Tid, ThreadError> {
        self.spawn_on(entry, arg, owner, Placement::Caller)
    }

    /// [`spawn_owned`](Self::spawn_owned) on the CPU `placement` names.
    pub fn spawn_on(
        &'static self,
        entry: fn(usize),
        arg: usize,
        owner: u32,
        placement: Placement,
    ) -> Result<Tid, ThreadError> {
        let mut s = self.sched.lock();
        let me = self.cpu_of_caller(&s);
        let cpu = match placement {
            Placement::Caller => me,
            Placement::Cpu(c) => c,
            Placement::LeastLoaded => s.least_loaded(),
        };
        let tid = s.spawn(entry, arg, owner, cpu)?;
        // Still under the lock: no CPU can pick the thread before its
        // context is ready.
        if let Err(e) = self.contexts[tid.index()].prepare(thread_main, self, tid.index()) {
            s.unspawn(tid);
            return Err(ThreadError::Context(e));
        }
        drop(s);
        kick(1 << cpu.0, me);
        Ok(tid)
    }

    /// Makes the calling flow, the current thread of its CPU, that CPU's
    /// idle thread, and runs the idle loop for good: whatever is ready on
    /// the CPU runs, and when nothing is, the CPU halts until an interrupt
    /// (its timer, or a kick from a CPU that made a thread ready here).
    pub fn run_as_idle(&self) -> ThreadError {
        {
            let mut s = self.sched.lock();
            let cpu = self.cpu_of_caller(&s);
            if let Err(e) = s.become_idle(cpu) {
                return e;
            }
        }
        idle_loop(self)
    }

    /// Gives `cpu` an idle thread, which runs whenever nothing else is
    /// ready there (see [`run_as_idle`](Self::run_as_idle)).
    pub fn spawn_idle(&'static self, cpu: CpuId) -> Result<Tid, ThreadError> {
        let mut s = self.sched.lock();
        let tid = s.spawn_idle(cpu)?;
        if let Err(e) = self.contexts[tid.index()].prepare(thread_main, self, tid.index()) {
            s.unspawn(tid);
            return Err(ThreadError::Context(e));
        }
        Ok(tid)
    }

    /// Lets the next ready thread run; returns when this thread is
    /// scheduled again (at once if no other thread is ready).
    pub fn yield_now(&self) -> Result<(), ThreadError> {
        self.yield_to_others().map(|_| ())
    }

    /// Like [`yield_now`](Self::yield_now), and says whether another
    /// thread ran: `Ok(false)` when none was ready and nothing happened.
    pub fn yield_to_others(&self) -> Result<bool, ThreadError> {
        let (out, to) = {
            let mut s = self.sched.lock();
            let cpu = self.cpu_of_caller(&s);
            let cur = s.current(cpu)?;
            let out = self.contexts[cur.index()].begin_switch().map_err(ThreadError::Context)?;
            match s.yield_now(cpu)? {
                None => return Ok(false), // `out` drops: the switch is cancelled
                Some((_, to)) => {
                    self.note_running(&s, cpu, Some(to));
                    (out, to)
                }
            }
        };
        out.switch_to(&self.contexts[to.index()])
            .map_err(|e| panic!("scheduler and contexts disagree: cannot resume ready thread {to}: {e:?}"))?;
        Ok(true)
    }

    /// Sleeps on `chan` until a [`wakeup`](Self::wakeup) on it. `guard`
    /// (typically the guard of the lock under which the caller checked its
    /// sleep condition) is dropped after the scheduler lock is taken; pass
    /// `()` if there is none. Always re-check the condition on return.
    ///
    /// Errors (without sleeping; `guard` is dropped all the same):
    /// `NothingToRun` when no other thread is ready, `NoCurrentThread`.
    pub fn sleep<G>(&self, chan: Chan, guard: G) -> Result<(), ThreadError> {
        let (out, to) = {
            let mut s = self.sched.lock();
            drop(guard);
            let cpu = self.cpu_of_caller(&s);
            let cur = s.current(cpu)?;
            let out = self.contexts[cur.index()].begin_switch().map_err(ThreadError::Context)?;
            let (_, to) = s.sleep(cpu, chan)?;
            self.note_running(&s, cpu, Some(to));
            (out, to)
        };
        out.switch_to(&self.contexts[to.index()])
            .map_err(|e| panic!("scheduler and contexts disagree: cannot resume ready thread {to}: {e:?}"))
    }

    /// Kicks every other CPU that runs a thread owned by `owner`: a thread
    /// that halts its CPU waiting for an event looks again.
    pub fn kick_owner(&self, owner: u32) {
        let (cpus, me) = {
            let s = self.sched.lock();
            (s.cpus_of_owner(owner), self.cpu_of_caller(&s))
        };
        kick(cpus, me);
    }

    /// Makes all threads sleeping on `chan` ready; returns how many. Each
    /// other CPU that got one is kicked, in case it halts.
    pub fn wakeup(&self, chan: Chan) -> usize {
        let (woken, cpus, me) = {
            let mut s = self.sched.lock();
            let (woken, cpus) = s.wakeup(chan);
            (woken, cpus, self.cpu_of_caller(&s))
        };
        kick(cpus, me);
        woken
    }

    /// Ends the calling thread. Returns only on error (the caller is not a
    /// thread of this pool). While no other thread is ready it waits (on
    /// one CPU with cooperative scheduling, that is a deadlock, reported in
    /// the log).
    pub fn exit(&self) -> ThreadError {
        let mut warned = false;
        loop {
            let (ex, to) = {
                let mut s = self.sched.lock();
                let cpu = self.cpu_of_caller(&s);
                let cur = match s.current(cpu) {
                    Ok(t) => t,
                    Err(e) => return e,
                };
                let ex = match self.contexts[cur.index()].begin_exit() {
                    Ok(ex) => ex,
                    Err(e) => return ThreadError::Context(e),
                };
                match s.exit(cpu) {
                    Ok((_, to)) => {
                        self.note_running(&s, cpu, Some(to));
                        (ex, to)
                    }
                    Err(ThreadError::NothingToRun) => {
                        if !warned {
                            log::warn!("thread {cur} cannot exit: no other thread is ready; waiting");
                            warned = true;
                        }
                        drop(ex);
                        drop(s);
                        core::hint::spin_loop();
                        continue;
                    }
                    Err(e) => return e,
                }
            };
            let e = ex.exit_to(&self.contexts[to.index()]);
            panic!("scheduler and contexts disagree: cannot resume ready thread {to}: {e:?}");
        }
    }

    /// The state of `tid`.
    pub fn state(&self, tid: Tid) -> ThreadState {
        self.sched.lock().state(tid)
    }

    /// The owner tag of a live thread.
    pub fn owner(&self, tid: Tid) -> Option<u32> {
        self.sched.lock().owner(tid)
    }
}

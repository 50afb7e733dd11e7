//! Model checks, with loom, of how a halted CPU learns that another CPU
//! made a thread ready for it.
//!
//! The scheduler and its lock are the kernel's own code (the lock on
//! loom's atomics). The CPU's side is the idle loop of `Threads`: look at
//! the CPU's ready queue under the lock, and when nothing is ready, halt
//! with `sti; hlt`. The other CPU's side is `Threads::wakeup` and
//! `spawn_on`: change the queues under the lock, drop it, and kick every
//! CPU the change made work for. The local APIC's request register is a
//! latch: an interrupt that arrives while the CPU still runs (IF is 0
//! there) stays pending and ends the next HLT at once. The model is that
//! latch as a flag the kick sets and the HLT takes.
use super::{Chan, CpuId, CpuSet, Scheduler, Tid};
use crate::sync::{Lock, LoomAtomics};
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;
use std::boxed::Box;

const CPUS: usize = 2;
const CHAN: Chan = Chan(0x1D1E);

struct Machine {
    sched: Lock<Box<Scheduler>, LoomAtomics>,
    /// Per CPU: an interrupt is pending.
    pending: [AtomicBool; CPUS],
}

impl Machine {
    fn new(sched: Box<Scheduler>) -> Arc<Machine> {
        Arc::new(Machine {
            sched: Lock::with_atomics(sched),
            pending: [AtomicBool::new(false), AtomicBool::new(false)],
        })
    }

    /// CPU `cpu`'s idle loop until it switches to a thread, which it
    /// returns.
    fn idle_until_a_thread_runs(&self, cpu: usize) -> Tid {
        loop {
            let switch = self.sched.lock().yield_now(CpuId(cpu)).expect("the idle thread is current");
            if let Some((_, to)) = switch {
                return to;
            }
            // sti; hlt: wait until an interrupt is pending, then take it (one kick at a time here).
            while !self.pending[cpu].load(SeqCst) {
                loom::thread::yield_now();
            }
            self.pending[cpu].store(false, SeqCst);
        }
    }

    /// The kick of every CPU in `cpus` but `me`.
    fn kick(&self, cpus: CpuSet, me: usize) {
        for c in (0..CPUS).filter(|&c| cpus & (1 << c) != 0 && c != me) {
            self.pending[c].store(true, SeqCst);
        }
    }
}

fn nop(_: usize) {}

/// Every interleaving up to 3 preemptions; the spin loops (the ticket
/// lock's, the HLT's) make many branches. The HLT waits with a load, not a
/// swap: loom may order an unsynchronised store after any number of a
/// spinning thread's read-modify-writes, and would report a spin of swaps
/// as endless.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(1);
    b.max_branches = 10_000_000;
    b.check(f);
}

/// CPU 0 runs a flow; CPU 1's idle thread is current, and `sleeper`, a
/// thread of CPU 1, sleeps on [`CHAN`].
fn cpu1_idle_with_a_sleeper() -> (Box<Scheduler>, Tid) {
    let mut s = Box::new(Scheduler::new());
    s.attach(CpuId(0), 0).unwrap();
    s.attach(CpuId(1), 0).unwrap();
    s.become_idle(CpuId(1)).unwrap();
    let sleeper = s.spawn(nop, 0, 1, CpuId(1)).unwrap();
    assert_eq!(s.yield_now(CpuId(1)).unwrap().map(|(_, to)| to), Some(sleeper), "the idle thread runs the new thread");
    let idle = s.sleep(CpuId(1), CHAN).unwrap().1;
    assert_eq!(s.idle(CpuId(1)), Some(idle), "the sleeper's CPU goes back to its idle thread");
    (s, sleeper)
}

#[test]
fn a_halting_cpu_always_runs_the_thread_another_cpu_wakes_for_it() {
    model(|| {
        let (s, sleeper) = cpu1_idle_with_a_sleeper();
        let m = Machine::new(s);
        let cpu1 = {
            let m = m.clone();
            loom::thread::spawn(move || m.idle_until_a_thread_runs(1))
        };
        let (woken, cpus) = m.sched.lock().wakeup(CHAN);
        m.kick(cpus, 0);
        assert_eq!((woken, cpus), (1, 0b10), "one sleeper woken, on CPU 1");
        assert_eq!(cpu1.join().unwrap(), sleeper, "CPU 1 left its HLT and ran the woken thread");
    });
}

#[test]
fn a_halting_cpu_always_runs_a_thread_spawned_for_it_from_another_cpu() {
    model(|| {
        let (s, _) = cpu1_idle_with_a_sleeper();
        let m = Machine::new(s);
        let cpu1 = {
            let m = m.clone();
            loom::thread::spawn(move || m.idle_until_a_thread_runs(1))
        };
        let t = m.sched.lock().spawn(nop, 0, 2, CpuId(1)).unwrap();
        m.kick(1 << 1, 0);
        assert_eq!(cpu1.join().unwrap(), t, "CPU 1 left its HLT and ran the new thread");
    });
}

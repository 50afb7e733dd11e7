//! Model checks of the kernel's lock code with loom.
//!
//! These instantiate the same `Lock`/`TicketLock` as the kernel, on
//! [`LoomAtomics`](super::atomics::LoomAtomics) instead of `core` atomics;
//! loom then runs every interleaving (up to a preemption bound) under the
//! C11 memory model. They run in a plain `cargo test`.
use super::atomics::LoomAtomics;
use super::Lock;
use loom::sync::atomic::{AtomicU32, Ordering::Relaxed};
use loom::sync::Arc;
use std::vec::Vec;

type LoomLock<T> = Lock<T, LoomAtomics>;

struct Shared {
    lock: LoomLock<Vec<u32>>,
    /// Incremented non-atomically (load, then store) inside the critical
    /// section: a lost update means two parties were inside at once, or
    /// that the lock's orderings failed to publish the previous update.
    counter: AtomicU32,
}

fn shared(start: u32) -> Arc<Shared> {
    Arc::new(Shared { lock: LoomLock::starting_at(Vec::new(), start), counter: AtomicU32::new(0) })
}

/// One critical section: log the ticket and bump the counter by hand.
fn critical_section(s: &Shared) {
    let mut g = s.lock.lock();
    let t = g.ticket();
    g.push(t);
    let v = s.counter.load(Relaxed);
    s.counter.store(v + 1, Relaxed);
}

/// Runs `threads` parties (the model's main thread included), each entering
/// once, and checks mutual exclusion (no lost update) and FIFO order (the
/// critical sections ran in ticket order starting at `start`).
fn check(threads: u32, start: u32, preemptions: usize) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    // Each spin iteration is a branch; allow long waits behind two others.
    b.max_branches = 100_000;
    b.check(move || {
        let s = shared(start);
        let handles: Vec<_> = (1..threads)
            .map(|_| {
                let s = s.clone();
                loom::thread::spawn(move || critical_section(&s))
            })
            .collect();
        critical_section(&s);
        for h in handles {
            h.join().unwrap();
        }
        let seen = s.counter.load(Relaxed);
        assert_eq!(seen, threads, "mutual exclusion: expected {threads} increments, saw {seen}");
        let log = s.lock.lock().clone();
        let expected: Vec<u32> = (0..threads).map(|i| start.wrapping_add(i)).collect();
        assert_eq!(log, expected, "FIFO: critical sections must run in ticket order");
    });
}

#[test]
fn loom_two_threads_mutual_exclusion_and_fifo() {
    check(2, 0, 3);
}

#[test]
fn loom_three_threads_mutual_exclusion_and_fifo() {
    check(3, 0, 1);
}

#[test]
fn loom_three_threads_counters_wrap_from_max_minus_one() {
    // Tickets MAX-1, MAX, 0: the last one is numerically smallest.
    check(3, u32::MAX - 1, 1);
}

#[test]
fn loom_try_lock_never_enters_while_held() {
    loom::model(|| {
        let s = shared(u32::MAX);
        let s2 = s.clone();
        let h = loom::thread::spawn(move || {
            if let Some(mut g) = s2.lock.try_lock() {
                let t = g.ticket();
                g.push(t);
                let v = s2.counter.load(Relaxed);
                s2.counter.store(v + 1, Relaxed);
                true
            } else {
                false
            }
        });
        critical_section(&s);
        let entered = h.join().unwrap();
        let want = 1 + u32::from(entered);
        let seen = s.counter.load(Relaxed);
        assert_eq!(seen, want, "expected {want} increments, saw {seen}");
    });
}

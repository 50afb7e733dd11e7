//! Lending a borrowed closure to other threads for the length of one call:
//! the mechanism under `Sys::fork_join`.
//!
//! [`fork_join`] runs `body(0)` on the caller and `body(i)` on `extra` new
//! threads that `spawn` makes. A new thread gets only a number (its entry's
//! `usize`): the address of a [`Lender`] on the caller's stack with the
//! body's index in its low bits. Turning that number back into a reference
//! is the one unsafe step ([`loan_entry`]). It is sound because
//! [`fork_join`] does not return, so neither the `Lender` nor the closure
//! it borrows goes away, until every thread it made has counted itself off
//! (`out` back to 0), and a thread touches the `Lender` only before that.
//! The wait is a loop on `out` here, so it holds whatever the `wait`
//! callback does; the callbacks only make the wait a sleep.
//!
//! If a thread cannot be made, no body runs: the threads made so far wait
//! at a gate until every spawn is done, and then run their body (all were
//! made) or end without it (one was not).
use core::sync::atomic::{AtomicU32, Ordering};

/// The body every thread of one [`fork_join`] runs, with its index.
pub type Body<'a> = dyn Fn(usize) + Sync + 'a;

/// Sleeps on channel `chan` while the condition holds. The condition must
/// be checked, and the sleep begun, under the lock that [`Wake`] takes.
pub type Wait = fn(chan: u64, still: &dyn Fn() -> bool);
/// Runs `update` under the lock [`Wait`] checks its condition under, then
/// wakes every sleeper of `chan`.
pub type Wake = fn(chan: u64, update: &dyn Fn());

/// More threads than this per call are refused: the index must fit in the
/// low bits of the `Lender`'s address.
pub const MAX_EXTRA: usize = 63;

const GATED: u32 = 0;
const GO: u32 = 1;
const CANCELLED: u32 = 2;

/// What the threads of one [`fork_join`] share, on the caller's stack.
#[repr(align(64))]
struct Lender<'a> {
    body: &'a Body<'a>,
    /// GATED until every spawn is done, then GO or CANCELLED.
    gate: AtomicU32,
    /// Threads made and not yet counted off.
    out: AtomicU32,
    wait: Wait,
    wake: Wake,
}

impl Lender<'_> {
    fn chan(&self) -> u64 {
        self as *const Self as u64
    }
}

/// Runs `body(0)` here and `body(i)`, `i` in `1..=extra`, on threads that
/// `spawn(i, entry, arg)` makes (each must call `entry(arg)` once on a new
/// thread, or fail). Returns when every body has returned and every thread
/// made has let go of `body`; the first spawn error, if any, with no body
/// run. More than [`MAX_EXTRA`] threads: `too_many`, nothing run.
pub fn fork_join<E>(
    body: &Body<'_>,
    extra: usize,
    mut spawn: impl FnMut(usize, fn(usize), usize) -> Result<(), E>,
    wait: Wait,
    wake: Wake,
    too_many: E,
) -> Result<(), E> {
    if extra > MAX_EXTRA {
        return Err(too_many);
    }
    let lender = Lender { body, gate: AtomicU32::new(GATED), out: AtomicU32::new(0), wait, wake };
    let chan = lender.chan();
    let mut result = Ok(());
    for i in 1..=extra {
        // Counted before the thread can count itself off.
        lender.out.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = spawn(i, loan_entry, chan as usize | i) {
            lender.out.fetch_sub(1, Ordering::SeqCst);
            result = Err(e);
            break;
        }
    }
    let open = if result.is_ok() { GO } else { CANCELLED };
    wake(chan, &|| lender.gate.store(open, Ordering::SeqCst));
    if open == GO {
        body(0);
    }
    while lender.out.load(Ordering::SeqCst) != 0 {
        wait(chan, &|| lender.out.load(Ordering::SeqCst) != 0);
    }
    result
}

/// A thread of [`fork_join`]: waits at the gate, runs its body if the gate
/// opened, and counts itself off.
fn loan_entry(arg: usize) {
    let index = arg & MAX_EXTRA;
    let addr = arg & !MAX_EXTRA;
    // Only fork_join passes this entry to a thread, with the address of its Lender, and it stays in fork_join
    // until `out` is 0; the decrement in `wake` below is this thread's last use of the Lender.
    // SAFETY: as above: the Lender and the body it borrows live until this thread has counted itself off.
    let lender = unsafe { &*(addr as *const Lender<'_>) };
    let chan = lender.chan();
    while lender.gate.load(Ordering::SeqCst) == GATED {
        (lender.wait)(chan, &|| lender.gate.load(Ordering::SeqCst) == GATED);
    }
    if lender.gate.load(Ordering::SeqCst) == GO {
        (lender.body)(index);
    }
    let wake = lender.wake;
    wake(chan, &|| {
        lender.out.fetch_sub(1, Ordering::SeqCst);
    });
}

#[cfg(test)]
mod tests {
    //! The mechanism on host threads, with a condition variable for the
    //! sleep and a counter of threads made.
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Condvar, Mutex};
    use std::vec::Vec;

    static LOCK: Mutex<()> = Mutex::new(());
    static CV: Condvar = Condvar::new();

    fn wait(_chan: u64, still: &dyn Fn() -> bool) {
        let g = LOCK.lock().unwrap();
        if still() {
            drop(CV.wait(g).unwrap());
        }
    }

    fn wake(_chan: u64, update: &dyn Fn()) {
        let g = LOCK.lock().unwrap();
        update();
        drop(g);
        CV.notify_all();
    }

    fn std_spawn(_: usize, entry: fn(usize), arg: usize) -> Result<(), &'static str> {
        std::thread::spawn(move || entry(arg));
        Ok(())
    }

    #[test]
    fn every_body_runs_once_at_the_same_time_and_the_call_waits_for_all() {
        let ran: Vec<AtomicUsize> = (0..5).map(|_| AtomicUsize::new(0)).collect();
        let inside = AtomicUsize::new(0);
        let body = |i: usize| {
            ran[i].fetch_add(1, Ordering::SeqCst);
            inside.fetch_add(1, Ordering::SeqCst);
            // Every body waits for all five to be inside: they run at once.
            while inside.load(Ordering::SeqCst) < 5 {
                std::thread::yield_now();
            }
        };
        fork_join(&body, 4, std_spawn, wait, wake, "too many").expect("fork_join");
        let seen: Vec<usize> = ran.iter().map(|r| r.load(Ordering::SeqCst)).collect();
        assert_eq!(seen, [1; 5], "runs per body index: expected one each, saw {seen:?}");
    }

    #[test]
    fn a_failed_spawn_runs_no_body_and_returns_after_the_made_threads_end() {
        let ran = AtomicUsize::new(0);
        let ended = std::sync::Arc::new(AtomicUsize::new(0));
        let body = |_| {
            ran.fetch_add(1, Ordering::SeqCst);
        };
        let e2 = ended.clone();
        let spawn = move |i: usize, entry: fn(usize), arg: usize| {
            if i == 3 {
                return Err("no thread");
            }
            let e = e2.clone();
            std::thread::spawn(move || {
                entry(arg);
                e.fetch_add(1, Ordering::SeqCst);
            });
            Ok(())
        };
        let r = fork_join(&body, 4, spawn, wait, wake, "too many");
        assert_eq!(r, Err("no thread"), "the spawn error comes back");
        assert_eq!(ran.load(Ordering::SeqCst), 0, "bodies run: expected none");
        // The two threads made have counted themselves off; they end now.
        while ended.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
    }

    #[test]
    fn more_threads_than_the_index_bits_hold_are_refused_before_any_spawn() {
        let body = |_| panic!("no body may run");
        let spawn = |_: usize, _: fn(usize), _: usize| -> Result<(), &'static str> { panic!("no spawn may happen") };
        assert_eq!(fork_join(&body, MAX_EXTRA + 1, spawn, wait, wake, "too many"), Err("too many"));
    }
}

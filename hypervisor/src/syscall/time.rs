//! Time: the host clock, each CPU's one-shot timer, and the time slices of
//! the threads that run guests.
//!
//! One timer per CPU serves two masters: the scheduler, which ends a
//! thread's slice, and the VMM, whose device models (PIT, RTC) have the
//! next moment at which the guest is owed an interrupt. Before every VMRUN,
//! the fast path included, the timer is armed at the earlier of the two, so
//! a guest that never exits by itself still gets its timer ticks and still
//! gives up the CPU at the end of its slice. The timer interrupt only forces
//! the #VMEXIT; what happens then is decided by comparing the clock with
//! the two deadlines, so a lost or early interrupt can delay nothing.

/// How long a thread runs a guest before another ready thread gets the CPU.
pub const SLICE_NS: u64 = 1_000_000;
/// The shortest slice a vCPU in debt gets (see [`CpuTime::entry`]), so that
/// it still makes progress.
pub const MIN_SLICE_NS: u64 = SLICE_NS / 10;

/// No deadline.
pub const NEVER: u64 = u64::MAX;

/// Who runs a slice: the vCPU (its handle), whose thread is the only one
/// that enters it.
pub type Runner = u16;

/// One CPU's slice and timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTime {
    /// The vCPU whose slice is running here, and when that slice ends.
    slice_owner: Option<Runner>,
    slice_end_ns: u64,
    /// The slice's owner woke another vCPU that may wait for this CPU: the
    /// slice ends at its next entry ([`CpuTime::hand_over`]).
    handing_over: bool,
    /// When the one-shot timer was last armed to fire ([`NEVER`]: not armed,
    /// or fired since).
    armed_ns: u64,
    /// The CPU's count of timer interrupts taken, as last told
    /// ([`CpuTime::timer_interrupts`]).
    seen_interrupts: u64,
}

/// What to do before the next VMRUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Enter the guest; the host timer must fire at `arm_ns` (`None`: it
    /// already will).
    Run { arm_ns: Option<u64> },
    /// The caller's deadline has come: return to it.
    Deadline,
    /// The thread's slice is over: give other threads the CPU.
    SliceOver,
}

impl CpuTime {
    pub const fn new() -> Self {
        CpuTime { slice_owner: None, slice_end_ns: 0, handing_over: false, armed_ns: NEVER, seen_interrupts: 0 }
    }

    /// Decides, at time `now`, whether vCPU `me` may enter its guest until
    /// `deadline_ns`, and when the timer must fire if so. A vCPU that finds
    /// no slice of its own running starts one.
    ///
    /// The slice ends at the first entry after its end, so the exit being
    /// handled then (a long one: 4 KiB of console text) runs past it. `debt`
    /// is the vCPU's: the time its slices ran over, which its next slices
    /// are cut by (down to [`MIN_SLICE_NS`]), so that a guest whose exits
    /// are slow gets no more of the CPU than one whose exits are fast.
    pub fn entry(&mut self, me: Runner, now: u64, deadline_ns: u64, debt: &mut u64) -> Entry {
        if self.slice_owner == Some(me) && self.handing_over {
            self.end_slice();
            return Entry::SliceOver;
        }
        if self.slice_owner == Some(me) && now >= self.slice_end_ns {
            self.end_slice();
            *debt = debt.saturating_add(now - self.slice_end_ns);
            return Entry::SliceOver;
        }
        if now >= deadline_ns {
            return Entry::Deadline;
        }
        if self.slice_owner != Some(me) {
            let cut = (*debt).min(SLICE_NS - MIN_SLICE_NS);
            *debt -= cut;
            self.slice_owner = Some(me);
            self.slice_end_ns = now.saturating_add(SLICE_NS - cut);
        }
        Entry::Run { arm_ns: self.arm(self.slice_end_ns.min(deadline_ns), now) }
    }

    /// The thread running here gives up the CPU (it yields or idles): its
    /// slice ends, so that the time it is away is not taken for running
    /// over when it comes back.
    pub fn end_slice(&mut self) {
        self.slice_owner = None;
        self.handing_over = false;
    }

    /// The running slice's owner kicked a vCPU whose thread neither runs
    /// its guest nor halts: that thread may be ready on this CPU, waiting
    /// for the slice to end (two vCPUs of a VM pinned to one CPU, one
    /// sending the other an IPI). The slice ends at the owner's next entry,
    /// without counting as running over, so the woken vCPU runs now rather
    /// than up to a slice later. Nothing happens if no slice runs here.
    pub fn hand_over(&mut self) {
        self.handing_over = self.slice_owner.is_some();
    }

    /// The CPU has taken `count` timer interrupts so far. If that moved,
    /// the one-shot timer has fired and is armed no more, whatever the
    /// clock says: the local APIC's count and the TSC that `now` comes from
    /// are different clocks, and a timer may fire a little before the
    /// instant it was armed for.
    pub fn timer_interrupts(&mut self, count: u64) {
        if count != self.seen_interrupts {
            self.seen_interrupts = count;
            self.armed_ns = NEVER;
        }
    }

    /// The time the timer must be armed for to fire at `at`, or `None` if
    /// it is armed for exactly that already and has not fired yet (no
    /// timer interrupt was told since, and the clock reads earlier).
    pub fn arm(&mut self, at: u64, now: u64) -> Option<u64> {
        if at == self.armed_ns && now < at {
            return None;
        }
        self.armed_ns = at;
        Some(at)
    }
}

impl Default for CpuTime {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Runner = 1;
    const B: Runner = 2;

    #[test]
    fn a_thread_runs_to_the_end_of_its_slice_then_yields() {
        let mut t = CpuTime::new();
        let mut a = 0;
        assert_eq!(t.entry(A, 0, NEVER, &mut a), Entry::Run { arm_ns: Some(SLICE_NS) });
        assert_eq!(t.entry(A, SLICE_NS / 2, NEVER, &mut a), Entry::Run { arm_ns: None }, "armed already");
        assert_eq!(t.entry(A, SLICE_NS, NEVER, &mut a), Entry::SliceOver);
        // Back after the yield (nobody else ran): a fresh slice.
        assert_eq!(t.entry(A, SLICE_NS + 5, NEVER, &mut a), Entry::Run { arm_ns: Some(2 * SLICE_NS + 5) });
    }

    #[test]
    fn a_slice_handed_over_ends_at_the_next_entry_without_debt() {
        let mut t = CpuTime::new();
        let (mut a, mut b) = (0, 0);
        t.hand_over();
        assert_eq!(t.entry(A, 0, NEVER, &mut a), Entry::Run { arm_ns: Some(SLICE_NS) }, "no slice ran to hand over");
        t.hand_over();
        assert_eq!(t.entry(A, 10, NEVER, &mut a), Entry::SliceOver, "handed over before its end");
        assert_eq!(a, 0, "handing over is not running over");
        assert_eq!(t.entry(B, 20, NEVER, &mut b), Entry::Run { arm_ns: Some(20 + SLICE_NS) }, "B starts a full slice");
        assert_eq!(t.entry(B, 30, NEVER, &mut b), Entry::Run { arm_ns: None }, "the hand-over was A's, spent");
    }

    #[test]
    fn the_timer_fires_at_the_earlier_of_slice_end_and_deadline() {
        let mut t = CpuTime::new();
        let mut a = 0;
        assert_eq!(t.entry(A, 0, 300, &mut a), Entry::Run { arm_ns: Some(300) });
        assert_eq!(t.entry(A, 300, 300, &mut a), Entry::Deadline);
        // The VMM's next deadline lies beyond the slice: the slice decides.
        assert_eq!(t.entry(A, 310, 5 * SLICE_NS, &mut a), Entry::Run { arm_ns: Some(SLICE_NS) });
    }

    #[test]
    fn a_fired_timer_is_armed_again_for_the_same_deadline() {
        let mut t = CpuTime::new();
        assert_eq!(t.arm(100, 0), Some(100));
        assert_eq!(t.arm(100, 50), None);
        // At 100 it has fired: arming for 100 again must write the timer.
        assert_eq!(t.arm(100, 100), Some(100));
    }

    #[test]
    fn a_timer_that_fired_early_is_armed_again_for_the_same_deadline() {
        let mut t = CpuTime::new();
        t.timer_interrupts(7);
        assert_eq!(t.arm(100, 0), Some(100));
        t.timer_interrupts(7);
        assert_eq!(t.arm(100, 40), None, "no interrupt since: still armed");
        // The interrupt came at 98 by this clock: a halt until 100 must
        // arm the timer again, or it sleeps until some other interrupt.
        t.timer_interrupts(8);
        assert_eq!(t.arm(100, 98), Some(100));
        assert_eq!(t.arm(100, 99), None);
    }

    #[test]
    fn another_thread_gets_its_own_slice() {
        let mut t = CpuTime::new();
        let (mut a, mut b) = (0, 0);
        t.entry(A, 0, NEVER, &mut a);
        assert_eq!(t.entry(B, 10, NEVER, &mut b), Entry::Run { arm_ns: Some(10 + SLICE_NS) });
        // A comes back later: its old slice is gone, it starts a new one.
        assert_eq!(t.entry(A, 2 * SLICE_NS, NEVER, &mut a), Entry::Run { arm_ns: Some(3 * SLICE_NS) });
    }

    #[test]
    fn the_slice_ends_even_when_the_deadline_has_passed_too() {
        let mut t = CpuTime::new();
        let mut a = 0;
        t.entry(A, 0, NEVER, &mut a);
        assert_eq!(t.entry(A, SLICE_NS, 10, &mut a), Entry::SliceOver);
        assert_eq!(t.entry(A, SLICE_NS, 10, &mut a), Entry::Deadline);
    }

    #[test]
    fn a_slice_that_ran_over_cuts_the_next_one_by_as_much() {
        let mut t = CpuTime::new();
        let mut a = 0;
        t.entry(A, 0, NEVER, &mut a);
        // A long exit was being handled when the slice ended.
        assert_eq!(t.entry(A, SLICE_NS + 300_000, NEVER, &mut a), Entry::SliceOver);
        assert_eq!(a, 300_000, "the overrun is owed");
        let back = 5 * SLICE_NS;
        assert_eq!(t.entry(A, back, NEVER, &mut a), Entry::Run { arm_ns: Some(back + SLICE_NS - 300_000) });
        assert_eq!(a, 0, "repaid");
    }

    #[test]
    fn a_debt_longer_than_a_slice_is_repaid_over_several_each_at_least_the_minimum() {
        let mut t = CpuTime::new();
        let mut a = 2 * SLICE_NS;
        let mut now = 0;
        let mut lengths = Vec::new();
        for _ in 0..4 {
            let Entry::Run { arm_ns: Some(end) } = t.entry(A, now, NEVER, &mut a) else { panic!("A runs") };
            lengths.push(end - now);
            now = end;
            assert_eq!(t.entry(A, now, NEVER, &mut a), Entry::SliceOver);
        }
        let cut = SLICE_NS - MIN_SLICE_NS;
        assert_eq!(lengths, [MIN_SLICE_NS, MIN_SLICE_NS, SLICE_NS - (2 * SLICE_NS - 2 * cut), SLICE_NS]);
    }

    #[test]
    fn a_slice_given_up_owes_nothing_for_the_time_away() {
        let mut t = CpuTime::new();
        let mut a = 0;
        t.entry(A, 0, NEVER, &mut a);
        t.end_slice(); // the guest halted; the VMM idles
        let back = 10 * SLICE_NS;
        assert_eq!(t.entry(A, back, NEVER, &mut a), Entry::Run { arm_ns: Some(back + SLICE_NS) });
        assert_eq!(a, 0);
    }

    #[test]
    fn one_vcpus_debt_leaves_anothers_slice_whole() {
        let mut t = CpuTime::new();
        let (mut a, mut b) = (0, 0);
        t.entry(A, 0, NEVER, &mut a);
        assert_eq!(t.entry(A, SLICE_NS + 400_000, NEVER, &mut a), Entry::SliceOver);
        let now = SLICE_NS + 400_001;
        assert_eq!(t.entry(B, now, NEVER, &mut b), Entry::Run { arm_ns: Some(now + SLICE_NS) });
        assert_eq!((a, b), (400_000, 0));
    }
}

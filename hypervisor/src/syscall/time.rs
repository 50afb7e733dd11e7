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
    /// When the one-shot timer was last armed to fire ([`NEVER`]: not armed).
    armed_ns: u64,
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
        CpuTime { slice_owner: None, slice_end_ns: 0, armed_ns: NEVER }
    }

    /// Decides, at time `now`, whether vCPU `me` may enter its guest until
    /// `deadline_ns`, and when the timer must fire if so. A vCPU that finds
    /// no slice of its own running starts one.
    pub fn entry(&mut self, me: Runner, now: u64, deadline_ns: u64) -> Entry {
        if self.slice_owner == Some(me) && now >= self.slice_end_ns {
            self.slice_owner = None;
            return Entry::SliceOver;
        }
        if now >= deadline_ns {
            return Entry::Deadline;
        }
        if self.slice_owner != Some(me) {
            self.slice_owner = Some(me);
            self.slice_end_ns = now.saturating_add(SLICE_NS);
        }
        Entry::Run { arm_ns: self.arm(self.slice_end_ns.min(deadline_ns), now) }
    }

    /// The time the timer must be armed for to fire at `at`, or `None` if
    /// it is armed for exactly that already and has not fired yet.
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
        assert_eq!(t.entry(A, 0, NEVER), Entry::Run { arm_ns: Some(SLICE_NS) });
        assert_eq!(t.entry(A, SLICE_NS / 2, NEVER), Entry::Run { arm_ns: None }, "armed already");
        assert_eq!(t.entry(A, SLICE_NS, NEVER), Entry::SliceOver);
        // Back after the yield (nobody else ran): a fresh slice.
        assert_eq!(t.entry(A, SLICE_NS + 5, NEVER), Entry::Run { arm_ns: Some(2 * SLICE_NS + 5) });
    }

    #[test]
    fn the_timer_fires_at_the_earlier_of_slice_end_and_deadline() {
        let mut t = CpuTime::new();
        assert_eq!(t.entry(A, 0, 300), Entry::Run { arm_ns: Some(300) });
        assert_eq!(t.entry(A, 300, 300), Entry::Deadline);
        // The VMM's next deadline lies beyond the slice: the slice decides.
        assert_eq!(t.entry(A, 310, 5 * SLICE_NS), Entry::Run { arm_ns: Some(SLICE_NS) });
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
    fn another_thread_gets_its_own_slice() {
        let mut t = CpuTime::new();
        t.entry(A, 0, NEVER);
        assert_eq!(t.entry(B, 10, NEVER), Entry::Run { arm_ns: Some(10 + SLICE_NS) });
        // A comes back later: its old slice is gone, it starts a new one.
        assert_eq!(t.entry(A, 2 * SLICE_NS, NEVER), Entry::Run { arm_ns: Some(3 * SLICE_NS) });
    }

    #[test]
    fn the_slice_ends_even_when_the_deadline_has_passed_too() {
        let mut t = CpuTime::new();
        t.entry(A, 0, NEVER);
        assert_eq!(t.entry(A, SLICE_NS, 10), Entry::SliceOver);
        assert_eq!(t.entry(A, SLICE_NS, 10), Entry::Deadline);
    }
}

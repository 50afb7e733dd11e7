//! The host log lines a guest can cause, rate-limited per VM.
//!
//! The host's log (its serial console) is shared by every VM, and some of
//! its lines are written because a guest did something: an MSR access the
//! VMM refuses, text through the console-write hypercall or the debug port.
//! A guest that does those in a loop would otherwise fill the log (and keep
//! the CPU busy writing it) for everyone. So each VM's such lines draw on a
//! token bucket, its [`LineBudget`]: [`BURST_LINES`] lines at once, refilled
//! at [`LINES_PER_SECOND`] of host time. A line over budget is counted and
//! dropped. As soon as the budget has a line again, "vmN: K log lines
//! suppressed" is logged (at the VM's next exit, [`report_lifted`], or
//! before the next line let through, whichever comes first), and so is the
//! VM's stop ([`report_suppressed`]) if lines were dropped since.
//! docs/security.md ("Logging") says why and what a guest can still cause.
//!
//! Lines below the log level that is on are not written and cost nothing.
use log::Level;

/// Lines a VM may log at once, with a full budget.
pub const BURST_LINES: u64 = 200;
/// Lines per second a VM may log for as long as it likes.
pub const LINES_PER_SECOND: u64 = 20;
/// The host time one line costs.
const NS_PER_LINE: u64 = 1_000_000_000 / LINES_PER_SECOND;

/// One VM's token bucket of log lines, kept as the host time it has in
/// hand (one line costs [`NS_PER_LINE`]), so that refilling is one
/// subtraction.
#[derive(Clone, Debug)]
pub struct LineBudget {
    /// Host time in hand, at most [`BURST_LINES`] lines' worth.
    credit_ns: u64,
    /// When the credit was last brought up to date.
    at_ns: u64,
    /// Lines dropped since the last line let through.
    suppressed: u64,
}

impl LineBudget {
    /// A full budget.
    pub const fn new() -> Self {
        LineBudget { credit_ns: BURST_LINES * NS_PER_LINE, at_ns: 0, suppressed: 0 }
    }

    /// Asks for one line at host time `now_ns`. `Some(n)`: log it, after
    /// saying that `n` lines were suppressed before it if `n > 0`. `None`:
    /// drop it (it is counted). A time earlier than one already seen is
    /// taken as that one.
    pub fn admit(&mut self, now_ns: u64) -> Option<u64> {
        if !self.take_line(now_ns) {
            self.suppressed += 1;
            return None;
        }
        Some(core::mem::take(&mut self.suppressed))
    }

    /// After lines were dropped, at host time `now_ns`: once the budget
    /// has a line again, spends it on the count of the dropped lines and
    /// returns it. `None` while the limit holds, or if nothing was dropped.
    pub fn lifted(&mut self, now_ns: u64) -> Option<u64> {
        if self.suppressed == 0 || !self.take_line(now_ns) {
            return None;
        }
        Some(core::mem::take(&mut self.suppressed))
    }

    /// Brings the credit up to `now_ns` and takes one line's worth of it,
    /// if there is that much.
    fn take_line(&mut self, now_ns: u64) -> bool {
        let elapsed = now_ns.saturating_sub(self.at_ns);
        self.at_ns = self.at_ns.max(now_ns);
        self.credit_ns = self.credit_ns.saturating_add(elapsed).min(BURST_LINES * NS_PER_LINE);
        if self.credit_ns < NS_PER_LINE {
            return false;
        }
        self.credit_ns -= NS_PER_LINE;
        true
    }

    /// Takes the count of lines dropped since the last line let through.
    pub fn take_suppressed(&mut self) -> u64 {
        core::mem::take(&mut self.suppressed)
    }
}

impl Default for LineBudget {
    fn default() -> Self {
        Self::new()
    }
}

/// Logs "`name`: `args`" at `level`, a line the guest caused, if `budget`
/// lets it through at host time `now_ns`.
pub fn log_line(budget: &mut LineBudget, now_ns: u64, name: &str, level: Level, args: core::fmt::Arguments<'_>) {
    if level > log::max_level() {
        return;
    }
    if let Some(dropped) = budget.admit(now_ns) {
        if dropped > 0 {
            log::warn!("{name}: {dropped} log lines suppressed");
        }
        log::log!(level, "{name}: {args}");
    }
}

/// At the VM's stop: says how many lines were dropped since the last one
/// logged, if any were.
pub fn report_suppressed(budget: &mut LineBudget, name: &str) {
    let dropped = budget.take_suppressed();
    if dropped > 0 {
        log::warn!("{name}: {dropped} log lines suppressed");
    }
}

/// At host time `now_ns`: says how many lines were dropped, if any were
/// and the limit has lifted (the budget has a line for it).
pub fn report_lifted(budget: &mut LineBudget, now_ns: u64, name: &str) {
    if let Some(dropped) = budget.lifted(now_ns) {
        log::warn!("{name}: {dropped} log lines suppressed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// Asks for `n` lines at `now`; returns (let through, the suppressed
    /// counts they carried).
    fn ask(b: &mut LineBudget, n: u64, now: u64) -> (u64, Vec<u64>) {
        let verdicts: Vec<u64> = (0..n).filter_map(|_| b.admit(now)).collect();
        (verdicts.len() as u64, verdicts.into_iter().filter(|&d| d > 0).collect())
    }

    #[test]
    fn a_full_budget_lets_a_burst_through_and_drops_the_rest() {
        let mut b = LineBudget::new();
        assert_eq!(ask(&mut b, 1000, SEC), (BURST_LINES, vec![]));
        assert_eq!(b.take_suppressed(), 1000 - BURST_LINES);
        assert_eq!(b.take_suppressed(), 0, "taken once");
    }

    #[test]
    fn the_first_line_after_a_flood_carries_the_count_of_dropped_lines() {
        let mut b = LineBudget::new();
        ask(&mut b, BURST_LINES + 12345, SEC);
        // One line's worth of time later, one line goes through, with the count.
        assert_eq!(b.admit(SEC + NS_PER_LINE), Some(12345));
        assert_eq!(b.admit(SEC + NS_PER_LINE), None);
        assert_eq!(b.take_suppressed(), 1);
    }

    #[test]
    fn a_sustained_flood_gets_the_refill_rate_only() {
        let mut b = LineBudget::new();
        // 10 s of 10,000 lines a second, asked every millisecond.
        let mut through = 0;
        for ms in 0..10_000u64 {
            through += ask(&mut b, 10, ms * 1_000_000).0;
        }
        let expected = BURST_LINES + 10 * LINES_PER_SECOND;
        assert!(through.abs_diff(expected) <= 1, "expected about {expected} lines, seen {through}");
    }

    #[test]
    fn an_idle_vm_gets_back_its_whole_burst_and_no_more() {
        let mut b = LineBudget::new();
        ask(&mut b, BURST_LINES, 0);
        assert_eq!(b.admit(0), None);
        b.take_suppressed();
        assert_eq!(ask(&mut b, 10 * BURST_LINES, 3600 * SEC), (BURST_LINES, vec![]), "an hour idle");
    }

    #[test]
    fn the_count_is_given_once_as_soon_as_the_limit_lifts() {
        let mut b = LineBudget::new();
        assert_eq!(b.lifted(SEC), None, "nothing dropped");
        ask(&mut b, BURST_LINES + 7, SEC);
        assert_eq!(b.lifted(SEC + NS_PER_LINE - 1), None, "the limit holds");
        assert_eq!(b.lifted(SEC + NS_PER_LINE), Some(7));
        assert_eq!(b.lifted(SEC + 10 * NS_PER_LINE), None, "given once");
        assert_eq!(b.admit(SEC + 10 * NS_PER_LINE), Some(0), "the next line carries no count");
    }

    #[test]
    fn time_going_back_gives_no_credit() {
        let mut b = LineBudget::new();
        ask(&mut b, BURST_LINES, 100 * SEC);
        assert_eq!(b.admit(50 * SEC), None);
        assert_eq!(b.admit(100 * SEC), None, "the time already seen: still nothing in hand");
        assert_eq!(b.admit(100 * SEC + NS_PER_LINE), Some(2));
    }
}

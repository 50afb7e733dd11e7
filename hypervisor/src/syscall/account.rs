//! CPU accounting: how long each process held a CPU, and how much of that
//! its guests ran.
//!
//! Each CPU has a [`Meter`] that charges the process it runs. A process's
//! thread gives the CPU away only inside the syscall layer (at the end of
//! its slice in `sys_run`, in `sys_yield`, when it idles), and the layer
//! stops the meter there and starts it again when the thread is back
//! ([`off_cpu`]). Every call through the door also starts the meter for
//! its caller if it is not running for it yet ([`charge_caller`]: one load
//! and compare when it is), which covers a thread's first call. So the
//! whole time between two switches is charged to the process whose thread
//! ran, whatever it did: the guest, the VMM, the kernel's calls and fast
//! path, the host interrupts taken meanwhile. Time a thread waits for the
//! CPU, or idles with the CPU halted, is charged to nobody.
//!
//! Guest time is added by `sys_run` from the vm layer's count of cycles in
//! guest mode; the VMM's time is the rest of the process's total.
//!
//! The meter of a CPU is written only by that CPU; the ledger's entries are
//! added to by the CPU that runs the process and read by anyone.
use crate::proc::{Pid, MAX_PROCS};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use sysabi::CpuUsage;

/// Per process: the time charged to it so far, its guest cycles, and when
/// it was created.
pub struct Ledger {
    total_ns: [AtomicU64; MAX_PROCS],
    guest_cycles: [AtomicU64; MAX_PROCS],
    created_ns: [AtomicU64; MAX_PROCS],
}

impl Ledger {
    pub const fn new() -> Self {
        Ledger {
            total_ns: [const { AtomicU64::new(0) }; MAX_PROCS],
            guest_cycles: [const { AtomicU64::new(0) }; MAX_PROCS],
            created_ns: [const { AtomicU64::new(0) }; MAX_PROCS],
        }
    }

    /// A new process `pid`, created at `now`: nothing charged yet.
    pub fn open(&self, pid: Pid, now: u64) {
        let i = pid.index();
        self.total_ns[i].store(0, Ordering::Relaxed);
        self.guest_cycles[i].store(0, Ordering::Relaxed);
        self.created_ns[i].store(now, Ordering::Relaxed);
    }

    /// Charges `pid` for `[since, now)`, or for the part of it after the
    /// process was created: a meter may still be open since before, for an
    /// ended process that had the same pid.
    fn charge(&self, pid: usize, since: u64, now: u64) {
        self.total_ns[pid].fetch_add(self.charged_part(pid, since, now), Ordering::Relaxed);
    }

    fn charged_part(&self, pid: usize, since: u64, now: u64) -> u64 {
        now.saturating_sub(since.max(self.created_ns[pid].load(Ordering::Relaxed)))
    }

    /// `pid`'s guests ran for `cycles` TSC cycles.
    pub fn add_guest_cycles(&self, pid: Pid, cycles: u64) {
        self.guest_cycles[pid.index()].fetch_add(cycles, Ordering::Relaxed);
    }

    /// `pid`'s use of the CPU at `now`, with the interval `meter` has open
    /// for it; guest cycles become nanoseconds through `cycles_to_ns`.
    pub fn usage(&self, pid: Pid, meter: &Meter, now: u64, cycles_to_ns: impl Fn(u64) -> u64) -> CpuUsage {
        let i = pid.index();
        let open = meter.open_since(pid).map_or(0, |since| self.charged_part(i, since, now));
        let total = self.total_ns[i].load(Ordering::Relaxed) + open;
        let guest = cycles_to_ns(self.guest_cycles[i].load(Ordering::Relaxed));
        CpuUsage {
            guest_ns: guest.min(total),
            vmm_ns: total.saturating_sub(guest),
            elapsed_ns: now.saturating_sub(self.created_ns[i].load(Ordering::Relaxed)),
        }
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

/// One CPU's meter: the process it charges (pid + 1, 0 for none) and since
/// when.
pub struct Meter {
    charging: AtomicU32,
    since_ns: AtomicU64,
}

impl Meter {
    pub const fn new() -> Self {
        Meter { charging: AtomicU32::new(0), since_ns: AtomicU64::new(0) }
    }

    fn tag(pid: Pid) -> u32 {
        pid.index() as u32 + 1
    }

    /// The meter runs for `pid` already.
    pub fn is_charging(&self, pid: Pid) -> bool {
        self.charging.load(Ordering::Relaxed) == Self::tag(pid)
    }

    /// Charges `pid` from `now` on. An interval left open for another
    /// process (whose thread ended without giving the CPU away through the
    /// syscall layer) is closed uncharged: what ran since is not known to
    /// be that process's.
    pub fn start(&self, pid: Pid, now: u64) {
        if !self.is_charging(pid) {
            self.since_ns.store(now, Ordering::Relaxed);
            self.charging.store(Self::tag(pid), Ordering::Relaxed);
        }
    }

    /// Ends the open interval at `now` and charges it to its process.
    pub fn stop(&self, now: u64, ledger: &Ledger) {
        let tag = self.charging.swap(0, Ordering::Relaxed);
        if let Some(pid) = (tag as usize).checked_sub(1) {
            ledger.charge(pid, self.since_ns.load(Ordering::Relaxed), now);
        }
    }

    /// When the open interval started, if it is open for `pid`.
    fn open_since(&self, pid: Pid) -> Option<u64> {
        self.is_charging(pid).then(|| self.since_ns.load(Ordering::Relaxed))
    }
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}

static LEDGER: Ledger = Ledger::new();
static METERS: [Meter; crate::arch::gdt::MAX_CPUS] = [const { Meter::new() }; crate::arch::gdt::MAX_CPUS];

fn meter() -> &'static Meter {
    &METERS[crate::arch::cpu::current()]
}

/// A new process: its lifetime starts now, with nothing charged.
pub fn open_process(pid: Pid) {
    LEDGER.open(pid, crate::arch::lapic::now_ns());
}

/// Called at every call through the door: charges the CPU to `pid` from
/// now on unless it is charged to it already.
pub fn charge_caller(pid: Pid) {
    let m = meter();
    if !m.is_charging(pid) {
        m.start(pid, crate::arch::lapic::now_ns());
    }
}

/// Runs `give_away` (a yield or an idle wait) with `pid`'s meter stopped,
/// and charges `pid` again from when its thread is back.
pub fn off_cpu<T>(pid: Pid, give_away: impl FnOnce() -> T) -> T {
    meter().stop(crate::arch::lapic::now_ns(), &LEDGER);
    let r = give_away();
    // The thread may be back on another CPU: start that CPU's meter.
    meter().start(pid, crate::arch::lapic::now_ns());
    r
}

/// `pid`'s guests ran for `cycles` TSC cycles.
pub fn add_guest_cycles(pid: Pid, cycles: u64) {
    LEDGER.add_guest_cycles(pid, cycles);
}

/// `pid`'s use of the CPU so far.
pub fn usage(pid: Pid) -> CpuUsage {
    LEDGER.usage(pid, meter(), crate::arch::lapic::now_ns(), crate::arch::lapic::tsc_to_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Pid = Pid::from_index(1);
    const B: Pid = Pid::from_index(2);

    /// Guest cycles are nanoseconds in these tests.
    fn same(c: u64) -> u64 {
        c
    }

    #[test]
    fn time_between_start_and_stop_is_charged_to_the_running_process() {
        let (l, m) = (Ledger::new(), Meter::new());
        l.open(A, 100);
        m.start(A, 150);
        m.start(A, 170); // a later call finds the meter running: no restart
        m.stop(400, &l);
        let u = l.usage(A, &m, 1000, same);
        assert_eq!((u.guest_ns, u.vmm_ns, u.elapsed_ns), (0, 250, 900), "seen {u:?}");
    }

    #[test]
    fn the_open_interval_counts_for_its_process_only() {
        let (l, m) = (Ledger::new(), Meter::new());
        l.open(A, 0);
        l.open(B, 0);
        m.start(A, 10);
        assert_eq!(l.usage(A, &m, 60, same).vmm_ns, 50);
        assert_eq!(l.usage(B, &m, 60, same).vmm_ns, 0);
    }

    #[test]
    fn two_processes_taking_turns_are_each_charged_their_own_turns() {
        let (l, m) = (Ledger::new(), Meter::new());
        l.open(A, 0);
        l.open(B, 0);
        for turn in 0..10u64 {
            let (p, at) = (if turn % 2 == 0 { A } else { B }, turn * 1000);
            m.start(p, at + 5); // the switch itself (5 ns) is nobody's
            m.stop(at + 1000, &l);
        }
        let (a, b) = (l.usage(A, &m, 10_000, same), l.usage(B, &m, 10_000, same));
        assert_eq!((a.total_ns(), b.total_ns()), (4975, 4975), "A {a:?} B {b:?}");
        assert_eq!(a.share_permille(), 497);
    }

    #[test]
    fn guest_time_is_split_off_the_total() {
        let (l, m) = (Ledger::new(), Meter::new());
        l.open(A, 0);
        m.start(A, 0);
        l.add_guest_cycles(A, 3000);
        m.stop(4000, &l);
        let u = l.usage(A, &m, 4000, |c| c / 3);
        assert_eq!((u.guest_ns, u.vmm_ns), (1000, 3000), "cycles are converted: seen {u:?}");
    }

    #[test]
    fn an_interval_left_open_by_an_ended_thread_is_charged_to_nobody() {
        let (l, m) = (Ledger::new(), Meter::new());
        l.open(A, 0);
        l.open(B, 0);
        m.start(A, 0);
        m.stop(100, &l);
        m.start(A, 200); // A's last call; then its thread ends
        m.start(B, 900); // B's first call on this CPU
        m.stop(1000, &l);
        assert_eq!(l.usage(A, &m, 1000, same).total_ns(), 100);
        assert_eq!(l.usage(B, &m, 1000, same).total_ns(), 100);
    }

    #[test]
    fn a_meter_left_open_for_an_ended_process_charges_its_successor_from_creation_only() {
        let (l, m) = (Ledger::new(), Meter::new());
        l.open(A, 0);
        m.start(A, 100); // A's last call; its thread ends, the meter stays open
        l.open(A, 1000); // a new process gets the same pid
        m.start(A, 1200); // its first call finds the meter running for A
        assert_eq!(l.usage(A, &m, 1500, same).total_ns(), 500, "open interval");
        m.stop(2000, &l);
        assert_eq!(l.usage(A, &m, 2000, same).total_ns(), 1000, "closed interval");
    }

    #[test]
    fn a_new_process_in_a_reused_slot_starts_from_nothing() {
        let (l, m) = (Ledger::new(), Meter::new());
        l.open(A, 0);
        m.start(A, 0);
        l.add_guest_cycles(A, 50);
        m.stop(100, &l);
        l.open(A, 500);
        let u = l.usage(A, &m, 600, same);
        assert_eq!((u.guest_ns, u.vmm_ns, u.elapsed_ns), (0, 0, 100), "seen {u:?}");
    }
}

//! Per-vCPU exit statistics: for each exit reason, how many exits and how
//! many TSC cycles the hypervisor spent on them, from the #VMEXIT to the
//! next VMRUN of the same vCPU.
//!
//! An exit is counted when it happens; its handling time is added when the
//! vCPU next enters the guest, so the last exit of a vCPU that stopped for
//! good is counted but has no time (the histogram then sums to one less than
//! the count). Exits the kernel's world switch answers in place, without
//! leaving the guest's context, are counted and not timed
//! ([`ExitStats::count_many`]).
//!
//! Only the vCPU's own thread updates its statistics (inside `Vcpu::run`),
//! so the hot path takes no lock of its own.
use super::ExitReason;

/// log2 buckets: bucket i counts handling times in [2^i, 2^(i+1)) cycles.
pub const BUCKETS: usize = hvabi::stats::BUCKETS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasonStats {
    pub count: u64,
    /// Exits whose handling time is known (the histogram's sum).
    pub timed: u64,
    pub total: u64,
    pub min: u64,
    pub max: u64,
    pub histogram: [u64; BUCKETS],
}

impl ReasonStats {
    const EMPTY: ReasonStats = ReasonStats { count: 0, timed: 0, total: 0, min: 0, max: 0, histogram: [0; BUCKETS] };

    fn record_time(&mut self, cycles: u64) {
        self.min = if self.timed == 0 { cycles } else { self.min.min(cycles) };
        self.timed += 1;
        self.max = self.max.max(cycles);
        self.total = self.total.saturating_add(cycles);
        self.histogram[bucket(cycles)] += 1;
    }
}

/// The log2 bucket of `cycles` (0 and 1 both land in bucket 0).
pub fn bucket(cycles: u64) -> usize {
    let b = 63 - (cycles | 1).leading_zeros() as usize;
    b.min(BUCKETS - 1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStats {
    pub reasons: [ReasonStats; ExitReason::COUNT],
}

impl ExitStats {
    pub const fn new() -> Self {
        ExitStats { reasons: [ReasonStats::EMPTY; ExitReason::COUNT] }
    }

    /// Counts an exit as it happens.
    pub fn count(&mut self, reason: ExitReason) {
        self.reasons[reason as usize].count += 1;
    }

    /// Counts `n` exits whose handling time is not measured (those the
    /// world switch answers in place).
    pub fn count_many(&mut self, reason: ExitReason, n: u64) {
        self.reasons[reason as usize].count += n;
    }

    /// Adds the handling time of an exit counted earlier.
    pub fn record_time(&mut self, reason: ExitReason, cycles: u64) {
        self.reasons[reason as usize].record_time(cycles);
    }

    pub fn get(&self, reason: ExitReason) -> &ReasonStats {
        &self.reasons[reason as usize]
    }
}

/// "io=12 cpuid=3 ...": the reasons with at least one exit, in order.
impl core::fmt::Display for ExitStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut first = true;
        for r in ExitReason::ALL {
            let n = self.get(r).count;
            if n != 0 {
                write!(f, "{}{}={}", if first { "" } else { " " }, r.name(), n)?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

impl Default for ExitStats {
    fn default() -> Self {
        Self::new()
    }
}

/// How a vCPU's exits were served: where the next RIP came from, and how
/// its TLB entries were kept from going stale. They show which path ran on
/// which CPU (NRIPS and flush-by-ASID exist on some CPUs only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Instructions completed with the VMCB's next_rip (NRIPS).
    pub nrips: u64,
    /// Port I/O completed with EXITINFO2.
    pub io_exitinfo: u64,
    /// Instructions completed by decoding them from guest memory.
    pub decoded: u64,
    /// Single-step traps raised for completed instructions.
    pub single_steps: u64,
    /// Stale TLB entries flushed by ASID (TLB_CONTROL 3).
    pub asid_flushes: u64,
    /// Fresh ASIDs taken (first run, another CPU, or no flush-by-ASID).
    pub new_asids: u64,
    /// Whole-TLB flushes at a new ASID generation.
    pub full_flushes: u64,
    /// External interrupts moved from V_IRQ to EVENTINJ (CPUs that do not
    /// deliver V_IRQ to an open window).
    pub eventinj_irqs: u64,
    /// Times the CPU was seen skipping a posted interrupt it had to take.
    pub virq_missed: u64,
}

/// "next-rip: nrips=3 io=40 decoded=0, single-step=0, tlb: asid-flush=1
/// new-asid=1 full-flush=0, irq: eventinj=0 virq-missed=0".
impl core::fmt::Display for PathStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "next-rip: nrips={} io={} decoded={}, single-step={}, tlb: asid-flush={} new-asid={} full-flush={}, \
             irq: eventinj={} virq-missed={}",
            self.nrips,
            self.io_exitinfo,
            self.decoded,
            self.single_steps,
            self.asid_flushes,
            self.new_asids,
            self.full_flushes,
            self.eventinj_irqs,
            self.virq_missed
        )
    }
}

/// A process's use of the CPU since it was created: the time its guests
/// ran and the time the CPU spent on its behalf outside them (its VMM, the
/// kernel calls it made, the kernel's fast path on its exits). Time the
/// process spent waiting for the CPU or idle (halted) is in neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuUsage {
    /// In guest mode: VMRUN to #VMEXIT, with the world switch.
    pub guest_ns: u64,
    /// On the CPU outside guest mode.
    pub vmm_ns: u64,
    /// Since the process was created (and given its share of the CPU).
    pub elapsed_ns: u64,
}

impl CpuUsage {
    /// Guest and VMM time together.
    pub fn total_ns(&self) -> u64 {
        self.guest_ns.saturating_add(self.vmm_ns)
    }

    /// The part of its lifetime the process held a CPU, in thousandths.
    pub fn share_permille(&self) -> u64 {
        if self.elapsed_ns == 0 {
            return 0;
        }
        (u128::from(self.total_ns()) * 1000 / u128::from(self.elapsed_ns)) as u64
    }
}

/// "guest=51234us vmm=312us elapsed=104000us share=49.5%" (microseconds,
/// rounded down; the share of the lifetime spent on a CPU).
impl core::fmt::Display for CpuUsage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let share = self.share_permille();
        write!(
            f,
            "guest={}us vmm={}us elapsed={}us share={}.{}%",
            self.guest_ns / 1000,
            self.vmm_ns / 1000,
            self.elapsed_ns / 1000,
            share / 10,
            share % 10
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log2() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(2), 1);
        assert_eq!(bucket(3), 1);
        assert_eq!(bucket(1024), 10);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn record_tracks_count_total_min_max_and_histogram() {
        let mut s = ExitStats::new();
        for c in [100, 50, 3000] {
            s.count(ExitReason::Cpuid);
            s.record_time(ExitReason::Cpuid, c);
        }
        s.count(ExitReason::Cpuid);
        let r = s.get(ExitReason::Cpuid);
        assert_eq!((r.count, r.total, r.min, r.max), (4, 3150, 50, 3000), "the open exit is counted, untimed");
        assert_eq!(r.histogram[bucket(100)], 1);
        assert_eq!(r.histogram.iter().sum::<u64>(), 3);
        assert_eq!(s.get(ExitReason::Io).count, 0);
    }

    #[test]
    fn cpu_usage_line_gives_microseconds_and_the_share_of_the_lifetime() {
        let u = CpuUsage { guest_ns: 51_234_999, vmm_ns: 312_000, elapsed_ns: 104_000_000 };
        assert_eq!(u.total_ns(), 51_546_999);
        assert_eq!(u.share_permille(), 495);
        assert_eq!(u.to_string(), "guest=51234us vmm=312us elapsed=104000us share=49.5%");
        assert_eq!(CpuUsage::default().share_permille(), 0, "no lifetime yet: no share, no division by zero");
    }
}

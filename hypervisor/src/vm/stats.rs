//! Per-vCPU exit statistics: for each exit reason, how many exits and how
//! many TSC cycles the hypervisor spent on them, from the #VMEXIT to the
//! next VMRUN of the same vCPU.
//!
//! Only the vCPU's own thread updates its statistics (inside `Vcpu::run`),
//! so the hot path takes no lock of its own.
use super::ExitReason;

/// log2 buckets: bucket i counts handling times in [2^i, 2^(i+1)) cycles.
pub const BUCKETS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasonStats {
    pub count: u64,
    pub total: u64,
    pub min: u64,
    pub max: u64,
    pub histogram: [u64; BUCKETS],
}

impl ReasonStats {
    const EMPTY: ReasonStats = ReasonStats { count: 0, total: 0, min: 0, max: 0, histogram: [0; BUCKETS] };

    fn record(&mut self, cycles: u64) {
        self.min = if self.count == 0 { cycles } else { self.min.min(cycles) };
        self.max = self.max.max(cycles);
        self.count += 1;
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

    pub fn record(&mut self, reason: ExitReason, cycles: u64) {
        self.reasons[reason as usize].record(cycles);
    }

    pub fn get(&self, reason: ExitReason) -> &ReasonStats {
        &self.reasons[reason as usize]
    }
}

impl Default for ExitStats {
    fn default() -> Self {
        Self::new()
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
            s.record(ExitReason::Cpuid, c);
        }
        let r = s.get(ExitReason::Cpuid);
        assert_eq!((r.count, r.total, r.min, r.max), (3, 3150, 50, 3000));
        assert_eq!(r.histogram[bucket(100)], 1);
        assert_eq!(r.histogram.iter().sum::<u64>(), 3);
        assert_eq!(s.get(ExitReason::Io).count, 0);
    }
}

//! Sample statistics of exit benchmarks (pure; tested on the host).
//!
//! Percentiles use the nearest-rank method: the p-th percentile of n sorted
//! samples is the sample at rank ceil(p/100 * n) (1-based). Every reported
//! value is therefore a cycle count that was actually measured, and the
//! median of an even number of samples is the lower of the middle two.

/// What `hvctl bench` reports for one kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

/// The nearest-rank `pct`-th percentile (0 < pct <= 100) of sorted samples.
pub fn percentile(sorted: &[u64], pct: u32) -> Option<u64> {
    if sorted.is_empty() || pct == 0 || pct > 100 {
        return None;
    }
    let n = sorted.len();
    // ceil(pct * n / 100), at least 1.
    let rank = (pct as usize * n).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// Summarises samples (in any order); None if there are none.
pub fn summarize(samples: &[u64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    let total: u128 = s.iter().map(|&x| u128::from(x)).sum();
    Some(Summary {
        n: s.len(),
        min: s[0],
        median: percentile(&s, 50)?,
        p99: percentile(&s, 99)?,
        max: s[s.len() - 1],
        mean: total as f64 / s.len() as f64,
    })
}

/// The log2 bucket of a cycle count, as in STATS: bucket i holds
/// [2^i, 2^(i+1)); bucket 0 also holds 0 and 1.
pub fn log2_bucket(cycles: u64) -> u32 {
    if cycles < 2 {
        0
    } else {
        63 - cycles.leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_no_summary() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn one_sample_is_every_statistic() {
        let s = summarize(&[71]).unwrap();
        assert_eq!((s.n, s.min, s.median, s.p99, s.max), (1, 71, 71, 71, 71));
        assert_eq!(s.mean, 71.0);
    }

    #[test]
    fn median_of_even_count_is_the_lower_middle_sample() {
        let s = summarize(&[4, 1, 3, 2]).unwrap();
        assert_eq!(s.median, 2);
        assert_eq!(s.mean, 2.5);
        let s = summarize(&[5, 1, 3]).unwrap();
        assert_eq!(s.median, 3);
    }

    #[test]
    fn p99_of_a_hundred_samples_is_the_99th_smallest() {
        let v: Vec<u64> = (1..=100).rev().collect();
        let s = summarize(&v).unwrap();
        assert_eq!((s.min, s.median, s.p99, s.max), (1, 50, 99, 100));
    }

    #[test]
    fn p99_catches_a_one_percent_tail() {
        // 9,900 fast samples and 100 slow ones: p99 is still fast, the
        // 101st slow one would tip it.
        let mut v = vec![70u64; 9_900];
        v.extend(std::iter::repeat_n(5_000u64, 100));
        assert_eq!(summarize(&v).unwrap().p99, 70);
        v.push(5_000);
        assert_eq!(summarize(&v).unwrap().p99, 5_000);
    }

    #[test]
    fn percentile_bounds() {
        let v = [10, 20, 30];
        assert_eq!(percentile(&v, 100), Some(30));
        assert_eq!(percentile(&v, 1), Some(10));
        assert_eq!(percentile(&v, 0), None);
        assert_eq!(percentile(&v, 101), None);
    }

    #[test]
    fn mean_does_not_overflow_on_huge_samples() {
        let s = summarize(&[u64::MAX, u64::MAX]).unwrap();
        assert_eq!(s.mean, u64::MAX as f64);
    }

    #[test]
    fn log2_buckets_match_the_stats_histogram() {
        assert_eq!(log2_bucket(0), 0);
        assert_eq!(log2_bucket(1), 0);
        assert_eq!(log2_bucket(2), 1);
        assert_eq!(log2_bucket(3), 1);
        assert_eq!(log2_bucket(64), 6);
        assert_eq!(log2_bucket(127), 6);
        assert_eq!(log2_bucket(128), 7);
        assert_eq!(log2_bucket(u64::MAX), 63);
    }
}

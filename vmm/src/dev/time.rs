//! Conversions between guest nanoseconds and the ticks of the board's clocks.
//!
//! Every timer in the board is a pure function of the guest time the VMM
//! passes in, so the counts a guest reads are exact whatever the gaps between
//! its reads. The arithmetic is done in `u128`, so it neither overflows nor
//! drifts for any `u64` time.

/// Nanoseconds in one second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// The ticks of a `hz` clock that have completed by guest time `ns`
/// (tick 0 starts at time 0).
pub fn ticks_at(ns: u64, hz: u64) -> u64 {
    let ticks = u128::from(ns) * u128::from(hz) / u128::from(NS_PER_SEC);
    // `hz` is at most a few MHz, so the quotient always fits.
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// The first guest time at which `ticks_at(time, hz) >= tick`, saturated at
/// `u64::MAX`.
pub fn time_of_tick(tick: u64, hz: u64) -> u64 {
    let ns = (u128::from(tick) * u128::from(NS_PER_SEC)).div_ceil(u128::from(hz));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_tick_is_the_first_instant_of_that_tick() {
        for hz in [1_193_182u64, 32_768, 1] {
            for tick in [0u64, 1, 2, 3, 1000, 1_193_181, 1_193_182, 123_456_789] {
                let t = time_of_tick(tick, hz);
                assert!(ticks_at(t, hz) >= tick, "hz {hz} tick {tick} t {t}");
                if t > 0 {
                    assert!(ticks_at(t - 1, hz) < tick, "hz {hz} tick {tick} t {t}");
                }
            }
        }
    }

    #[test]
    fn ticks_at_does_not_overflow_at_the_end_of_time() {
        // 584 years of nanoseconds in PIT clocks, computed without saturating.
        assert_eq!(ticks_at(u64::MAX, 1_193_182), 22_010_322_987_356_910);
        assert_eq!(time_of_tick(u64::MAX, 1), u64::MAX);
    }
}

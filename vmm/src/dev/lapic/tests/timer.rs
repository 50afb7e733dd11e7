//! The timer: one-shot, periodic, TSC-deadline, divide configuration.
use super::*;

const VECTOR: u8 = 0xEC;
const ONE_SHOT: u32 = VECTOR as u32;
const PERIODIC: u32 = VECTOR as u32 | TIMER_PERIODIC;
const DEADLINE: u32 = VECTOR as u32 | TIMER_TSC_DEADLINE;
/// Divide configuration for a divisor of 1.
const DIVIDE_BY_1: u32 = 0xB;

/// A timer in `lvt` mode dividing by 1, loaded with `count` at time 0.
fn started(lvt: u32, count: u32) -> Lapic {
    let mut l = enabled(0);
    write(&mut l, LVT_TIMER, lvt);
    write(&mut l, TIMER_DIVIDE, DIVIDE_BY_1);
    write_at(&mut l, TIMER_INITIAL, count, 0);
    l
}

/// Takes and retires the timer interrupt if it is pending at `now`.
fn fired(l: &mut Lapic, now: u64) -> bool {
    l.advance(now);
    let got = l.acknowledge();
    if got.is_some() {
        assert_eq!(got, Some(VECTOR));
        write_at(l, EOI, 0, now);
    }
    got.is_some()
}

#[test]
fn divide_configuration_selects_divisors_1_to_128() {
    for (config, divisor) in [(0x0, 2), (0x1, 4), (0x2, 8), (0x3, 16), (0x8, 32), (0x9, 64), (0xA, 128), (0xB, 1)] {
        let mut l = enabled(0);
        write(&mut l, TIMER_DIVIDE, config | 0xF4);
        assert_eq!(read(&mut l, TIMER_DIVIDE), config, "only bits 0, 1 and 3 are kept");
        write_at(&mut l, TIMER_INITIAL, 1000, 0);
        let seen = read_at(&mut l, TIMER_CURRENT, 10 * divisor);
        assert_eq!(seen, 990, "divide config {config:#x}: 10 ticks of {divisor} ns");
        assert_eq!(l.timer.expiry_ns(), Some(1000 * divisor));
    }
}

#[test]
fn one_shot_counts_down_to_zero_and_fires_once() {
    let mut l = started(ONE_SHOT, 100);
    assert_eq!(l.next_deadline_ns(), Some(100));
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 0), 100);
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 99), 1);
    assert!(!fired(&mut l, 99));
    assert!(fired(&mut l, 100));
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 100), 0);
    assert_eq!(l.next_deadline_ns(), None);
    assert!(!fired(&mut l, 10_000), "one-shot fires once");
    assert_eq!(read(&mut l, TIMER_INITIAL), 100, "initial count kept");
}

#[test]
fn one_shot_rearms_on_each_initial_count_write_and_stops_on_zero() {
    let mut l = started(ONE_SHOT, 100);
    assert!(fired(&mut l, 150));
    write_at(&mut l, TIMER_INITIAL, 50, 200);
    assert_eq!(l.next_deadline_ns(), Some(250));
    write_at(&mut l, TIMER_INITIAL, 100, 220);
    assert_eq!(l.next_deadline_ns(), Some(320), "a write restarts the count");
    assert!(!fired(&mut l, 250));
    assert!(fired(&mut l, 320));
    write_at(&mut l, TIMER_INITIAL, 100, 400);
    write_at(&mut l, TIMER_INITIAL, 0, 450);
    assert_eq!(l.next_deadline_ns(), None);
    assert!(!fired(&mut l, 1000));
}

#[test]
fn periodic_fires_once_per_period_over_time() {
    let mut l = started(PERIODIC, 1000);
    let mut count = 0;
    for now in (0..=10_000).step_by(250) {
        count += u32::from(fired(&mut l, now));
        let next = l.next_deadline_ns().unwrap();
        assert!(next > now, "next deadline {next} after now {now}");
    }
    assert_eq!(count, 10, "periods ending at 1000, 2000, … 10000");
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 10_250), 750);
}

#[test]
fn periodic_expiries_missed_together_make_one_interrupt_and_keep_the_phase() {
    let mut l = started(PERIODIC, 1000);
    assert!(fired(&mut l, 3500));
    assert!(!fired(&mut l, 3999));
    assert_eq!(l.next_deadline_ns(), Some(4000));
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 3500), 500);
}

#[test]
fn a_masked_timer_counts_without_interrupting_and_has_no_deadline() {
    let mut l = started(PERIODIC | LVT_MASKED, 1000);
    assert_eq!(l.next_deadline_ns(), None);
    assert!(!fired(&mut l, 2500));
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 2500), 500);
    write_at(&mut l, LVT_TIMER, PERIODIC, 2500);
    assert_eq!(l.next_deadline_ns(), Some(3000), "unmasked: same phase");
    assert!(fired(&mut l, 3000));
}

#[test]
fn changing_the_divisor_mid_count_keeps_the_current_count() {
    let mut l = started(ONE_SHOT, 1000);
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 400), 600);
    write_at(&mut l, TIMER_DIVIDE, 0x0, 400);
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 400), 600);
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 600), 500, "now two ns per tick");
    assert_eq!(l.next_deadline_ns(), Some(1600));
}

#[test]
fn switching_between_one_shot_and_periodic_keeps_the_count_running() {
    let mut l = started(ONE_SHOT, 1000);
    write_at(&mut l, LVT_TIMER, PERIODIC, 300);
    assert!(fired(&mut l, 1000));
    assert_eq!(l.next_deadline_ns(), Some(2000), "periodic after the switch");
    write_at(&mut l, LVT_TIMER, ONE_SHOT, 1500);
    assert!(fired(&mut l, 2000));
    assert_eq!(l.next_deadline_ns(), None, "one-shot after the switch");
}

#[test]
fn the_reserved_timer_mode_stops_the_timer() {
    let mut l = started(ONE_SHOT, 1000);
    write_at(&mut l, LVT_TIMER, ONE_SHOT | TIMER_MODE_MASK, 10);
    assert_eq!(l.next_deadline_ns(), None);
    write_at(&mut l, TIMER_INITIAL, 100, 20);
    assert!(!fired(&mut l, 5000));
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 30), 0);
}

#[test]
fn a_timer_with_an_illegal_vector_sets_receive_illegal_vector() {
    let mut l = started(0x05, 10);
    l.advance(10);
    assert_eq!(l.pending(), None);
    write(&mut l, ESR, 0);
    assert_eq!(read(&mut l, ESR), esr::RECEIVE_ILLEGAL_VECTOR);
}

/// The guest TSC runs at 2 GHz and read 5000 at time 1000 ns.
fn clock_at(now: u64) -> TscClock {
    TscClock { tsc: 5000 + 2 * (now - 1000), hz: 2_000_000_000 }
}

fn deadline_timer() -> Lapic {
    let mut l = enabled(0);
    write(&mut l, LVT_TIMER, DEADLINE);
    l
}

#[test]
fn tsc_deadline_fires_when_the_guest_tsc_reaches_it_and_then_reads_zero() {
    let mut l = deadline_timer();
    l.write_tsc_deadline_msr(7000, 1000, clock_at(1000));
    assert_eq!(l.tsc_deadline_msr(1000), 7000);
    assert_eq!(l.next_deadline_ns(), Some(2000), "2000 TSC ticks at 2 GHz");
    assert!(!fired(&mut l, 1999));
    assert!(fired(&mut l, 2000));
    assert_eq!(l.tsc_deadline_msr(2000), 0, "disarmed after firing");
    assert_eq!(l.next_deadline_ns(), None);
}

#[test]
fn tsc_deadline_in_the_past_fires_at_once() {
    let mut l = deadline_timer();
    l.write_tsc_deadline_msr(10, 1000, clock_at(1000));
    assert_eq!(l.acknowledge(), Some(VECTOR));
    assert_eq!(l.tsc_deadline_msr(1000), 0);
}

#[test]
fn tsc_deadline_zero_disarms_and_a_rewrite_rearms() {
    let mut l = deadline_timer();
    l.write_tsc_deadline_msr(7000, 1000, clock_at(1000));
    l.write_tsc_deadline_msr(0, 1200, clock_at(1200));
    assert_eq!(l.next_deadline_ns(), None);
    assert!(!fired(&mut l, 5000));
    l.write_tsc_deadline_msr(15_000, 5000, clock_at(5000));
    assert_eq!(l.next_deadline_ns(), Some(6000));
    l.write_tsc_deadline_msr(14_000, 5000, clock_at(5000));
    assert_eq!(l.next_deadline_ns(), Some(5500), "the latest write wins");
}

#[test]
fn tsc_deadline_mode_ignores_the_initial_count_and_reads_current_count_zero() {
    let mut l = deadline_timer();
    write_at(&mut l, TIMER_INITIAL, 1000, 0);
    assert_eq!(read(&mut l, TIMER_INITIAL), 0);
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 1), 0);
    assert_eq!(l.next_deadline_ns(), None);
}

#[test]
fn the_deadline_msr_is_ignored_and_reads_zero_outside_tsc_deadline_mode() {
    let mut l = started(ONE_SHOT, 2000);
    l.write_tsc_deadline_msr(7000, 1000, clock_at(1000));
    assert_eq!(l.tsc_deadline_msr(1000), 0);
    assert_eq!(l.next_deadline_ns(), Some(2000), "the count is untouched");
}

#[test]
fn entering_or_leaving_tsc_deadline_mode_disarms_the_timer() {
    let mut l = started(ONE_SHOT, 1000);
    write_at(&mut l, LVT_TIMER, DEADLINE, 100);
    assert_eq!(read(&mut l, TIMER_INITIAL), 0, "initial count cleared");
    assert_eq!(l.next_deadline_ns(), None);
    l.write_tsc_deadline_msr(9000, 1000, clock_at(1000));
    write_at(&mut l, LVT_TIMER, ONE_SHOT, 1100);
    assert_eq!(l.next_deadline_ns(), None);
    write_at(&mut l, LVT_TIMER, DEADLINE, 1200);
    assert_eq!(l.tsc_deadline_msr(1200), 0, "the deadline did not survive");
}

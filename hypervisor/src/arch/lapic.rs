//! The host's local APIC (xAPIC MMIO) and its timer, the legacy PICs, and
//! TSC calibration against the PIT.
//!
//! The LAPIC timer is the host's only interrupt source: it forces a
//! #VMEXIT(INTR) when a guest's time slice ends or a device model has a
//! deadline, and wakes the CPU from HLT. The interrupt itself only ends the
//! guest's run; the syscall layer compares the clock with its deadlines to
//! decide what to do (see `syscall::time`). Interrupts reach the host only inside the world switch
//! and `wait_for_interrupt`, never in Rust code (see docs/build.md).
use super::port::Port;
use core::sync::atomic::{AtomicU64, Ordering};

pub const TIMER_VECTOR: u8 = 0x20;
pub const SPURIOUS_VECTOR: u8 = 0xFF;
/// The IPI that makes a CPU look at its ready queue: taken like the timer
/// (it ends a HLT or a guest's run) and otherwise only acknowledged.
pub const KICK_VECTOR: u8 = 0x21;

const LAPIC_BASE: u64 = 0xFEE0_0000;
const REG_ID: u64 = 0x20;
const REG_EOI: u64 = 0xB0;
const REG_SVR: u64 = 0xF0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3E0;
const LVT_MASKED: u32 = 1 << 16;
const REG_ICR_LOW: u64 = 0x300;
const REG_ICR_HIGH: u64 = 0x310;
/// ICR: delivery status (send pending).
const ICR_PENDING: u32 = 1 << 12;
/// ICR delivery modes with the level bits (Intel SDM vol. 3, 11.6.1; AMD
/// APM vol. 2, 16.5): INIT asserted and de-asserted (level-triggered), and
/// startup.
const ICR_INIT_ASSERT: u32 = 0xC500;
const ICR_INIT_DEASSERT: u32 = 0x8500;
const ICR_STARTUP: u32 = 0x4600;
/// Fixed delivery, edge-triggered (the vector in bits 7:0).
const ICR_FIXED: u32 = 0x4000;

fn read(reg: u64) -> u32 {
    // SAFETY: the LAPIC page is identity-mapped uncached by boot.S; reading
    // these registers has no side effects.
    unsafe { core::ptr::read_volatile((LAPIC_BASE + reg) as *const u32) }
}

fn write(reg: u64, v: u32) {
    // SAFETY: as for `read`; the registers written here are the timer's, the
    // EOI, the SVR and the ICR, which only this module drives.
    unsafe { core::ptr::write_volatile((LAPIC_BASE + reg) as *mut u32, v) }
}

/// This CPU's local APIC id.
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Sends an IPI with ICR value `low` to the CPU with APIC id `apic_id`,
/// then waits until the local APIC has sent it.
fn send_ipi(apic_id: u32, low: u32) {
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, low);
    while read(REG_ICR_LOW) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
}

/// INIT (asserted, then de-asserted for the CPUs that need it): the CPU
/// `apic_id` resets and waits for a startup IPI.
pub fn send_init(apic_id: u32) {
    send_ipi(apic_id, ICR_INIT_ASSERT);
    send_ipi(apic_id, ICR_INIT_DEASSERT);
}

/// A fixed interrupt with `vector` to the CPU with APIC id `apic_id`.
pub fn send_fixed(apic_id: u32, vector: u8) {
    send_ipi(apic_id, ICR_FIXED | u32::from(vector));
}

/// A startup IPI: a CPU waiting after INIT starts in real mode at
/// `vector << 12`.
pub fn send_startup(apic_id: u32, vector: u8) {
    send_ipi(apic_id, ICR_STARTUP | u32::from(vector));
}

/// TSC ticks per second, measured at boot.
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// LAPIC timer ticks (divide by 1) per second, measured at boot.
static LAPIC_HZ: AtomicU64 = AtomicU64::new(0);

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds per TSC tick as a 32.32 fixed-point factor, set at
/// calibration, so that the hot path multiplies instead of dividing.
static NS_PER_TICK_32_32: AtomicU64 = AtomicU64::new(1 << 32);

/// Nanoseconds since the TSC started, from the calibrated frequency.
#[cfg(not(test))]
pub fn now_ns() -> u64 {
    tsc_to_ns(super::cpu::rdtsc())
}

/// Nanoseconds in `ticks` TSC ticks, at the calibrated frequency.
pub fn tsc_to_ns(ticks: u64) -> u64 {
    let f = NS_PER_TICK_32_32.load(Ordering::Relaxed);
    ((u128::from(ticks) * u128::from(f)) >> 32) as u64
}

/// In host tests: the simulated clock.
#[cfg(test)]
pub fn now_ns() -> u64 {
    super::sim::now_ns()
}

/// Masks both legacy 8259s: the firmware may have left them delivering
/// IRQ0 on vector 8, which would look like a double fault.
fn mask_legacy_pic() {
    // SAFETY: the host's PICs are ours; the guest only sees emulated ones.
    let (cmd1, data1, cmd2, data2) =
        unsafe { (Port::<u8>::new(0x20), Port::<u8>::new(0x21), Port::<u8>::new(0xA0), Port::<u8>::new(0xA1)) };
    // ICW1-4: remap to 0xF0/0xF8 (out of the way), then mask everything.
    cmd1.write(0x11);
    cmd2.write(0x11);
    data1.write(0xF0);
    data2.write(0xF8);
    data1.write(4);
    data2.write(2);
    data1.write(1);
    data2.write(1);
    data1.write(0xFF);
    data2.write(0xFF);
}

/// How many calibration rounds are taken; the result is their median.
const CALIBRATION_ROUNDS: usize = 3;
const PIT_HZ: u64 = 1_193_182;
/// A round ends once its estimate is this good (parts per million)...
const GOOD_ENOUGH_PPM: u64 = 200;
/// ...or after this many PIT ticks (50 ms; the counter holds 55 ms).
const ROUND_MAX_PIT_TICKS: u16 = 59_659;
/// Samples closer than this to the anchor (10 ms) are not used: the PIT's
/// own resolution (0.84 µs) would dominate.
const ROUND_MIN_PIT_TICKS: u16 = 11_932;

/// PIT channel 2 and the LAPIC timer, read together between two TSC
/// readings: both were sampled somewhere in `[tsc_before, tsc_after]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub tsc_before: u64,
    pub tsc_after: u64,
    /// PIT channel 2's count (counting down).
    pub pit: u16,
    /// The LAPIC timer's current count (counting down).
    pub lapic: u32,
}

/// Frequencies measured between two samples, and how far off they may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub tsc_hz: u64,
    pub lapic_hz: u64,
    /// The bound on the relative error, in parts per million: the two
    /// samples' TSC brackets and one PIT tick, over the interval.
    pub error_ppm: u64,
}

/// The TSC and LAPIC-timer frequencies from sample `a` to the later `b`,
/// or `None` if the PIT moved less than `ROUND_MIN_PIT_TICKS`.
///
/// An emulator can take a long, varying time to answer one port access
/// (QEMU's TCG waits for its I/O lock, which a loaded host holds for
/// milliseconds), so waiting for the count to run out and reading the TSC
/// then measures the emulator, not the clock: plain TCG once gave 4,144
/// MHz for a 2,596 MHz TSC that way. Bracketing each reading with the TSC
/// bounds the error of every estimate instead, and a round keeps the best.
pub fn estimate(a: &Sample, b: &Sample) -> Option<Estimate> {
    let pit_ticks = a.pit.wrapping_sub(b.pit);
    if pit_ticks < ROUND_MIN_PIT_TICKS {
        return None;
    }
    let mid = |s: &Sample| s.tsc_before / 2 + s.tsc_after / 2;
    let tsc_ticks = mid(b).checked_sub(mid(a)).filter(|&t| t > 0)?;
    let lapic_ticks = u64::from(a.lapic.wrapping_sub(b.lapic));
    let pit = u64::from(pit_ticks);
    let width = (a.tsc_after - a.tsc_before) / 2 + (b.tsc_after - b.tsc_before) / 2;
    let error_ppm = width.saturating_mul(1_000_000) / tsc_ticks + 1_000_000 / pit;
    Some(Estimate {
        tsc_hz: (u128::from(tsc_ticks) * u128::from(PIT_HZ) / u128::from(pit)) as u64,
        lapic_hz: (u128::from(lapic_ticks) * u128::from(PIT_HZ) / u128::from(pit)) as u64,
        error_ppm,
    })
}

/// One sample: latch PIT channel 2 and read the LAPIC timer between two
/// TSC readings, then read out the latched count.
fn sample(ch2: &Port<u8>, mode: &Port<u8>) -> Sample {
    let tsc_before = super::cpu::rdtsc();
    mode.write(0b1000_0000); // counter latch, channel 2
    let lapic = read(REG_TIMER_CURRENT);
    let tsc_after = super::cpu::rdtsc();
    let lo = ch2.read();
    let hi = ch2.read();
    Sample { tsc_before, tsc_after, pit: u16::from_le_bytes([lo, hi]), lapic }
}

/// One calibration round: PIT channel 2 counts down from 0xFFFF (mode 0)
/// and the LAPIC timer from u32::MAX; the anchor is the tightest of the
/// first few samples, and the round keeps the best estimate against it.
fn calibration_round() -> Option<Estimate> {
    // SAFETY: the host's PIT and port 0x61 are ours.
    let (ch2, mode, ctl) = unsafe { (Port::<u8>::new(0x42), Port::<u8>::new(0x43), Port::<u8>::new(0x61)) };
    // Gate on, speaker off; channel 2, lobyte/hibyte, mode 0, count 0xFFFF.
    ctl.write((ctl.read() & !0x02) | 0x01);
    mode.write(0b1011_0000);
    ch2.write(0xFF);
    ch2.write(0xFF);
    write(REG_TIMER_INITIAL, u32::MAX);
    let width = |s: &Sample| s.tsc_after - s.tsc_before;
    let mut anchor = sample(&ch2, &mode);
    for _ in 0..8 {
        let s = sample(&ch2, &mode);
        if width(&s) < width(&anchor) {
            anchor = s;
        }
    }
    let mut best: Option<Estimate> = None;
    // Bounded even if the PIT never moves (no PIT at all).
    for _ in 0..10_000_000u32 {
        let s = sample(&ch2, &mode);
        if let Some(e) = estimate(&anchor, &s) {
            if best.is_none_or(|b| e.error_ppm < b.error_ppm) {
                best = Some(e);
            }
        }
        let done = best.is_some_and(|b| b.error_ppm <= GOOD_ENOUGH_PPM);
        if done || anchor.pit.wrapping_sub(s.pit) >= ROUND_MAX_PIT_TICKS {
            break;
        }
    }
    write(REG_TIMER_INITIAL, 0);
    best
}

/// The TSC and LAPIC-timer frequencies (Hz), and the spread of the rounds
/// in parts per 10,000: the median of several rounds, so that one round
/// disturbed beyond its own error bound (an emulator descheduled, an SMI)
/// does not decide.
fn calibrate() -> (u64, u64, u64) {
    let mut rounds = [Estimate { tsc_hz: 0, lapic_hz: 0, error_ppm: 0 }; CALIBRATION_ROUNDS];
    let mut n = 0;
    for _ in 0..CALIBRATION_ROUNDS {
        if let Some(e) = calibration_round() {
            rounds[n] = e;
            n += 1;
        }
    }
    if n == 0 {
        // No PIT to measure against: assume 1 GHz rather than stop.
        return (1_000_000_000, 1_000_000_000, 0);
    }
    let rounds = &mut rounds[..n];
    rounds.sort_unstable_by_key(|e| e.tsc_hz);
    let median = rounds[n / 2];
    let spread = (rounds[n - 1].tsc_hz - rounds[0].tsc_hz) * 10_000 / median.tsc_hz.max(1);
    (median.tsc_hz.max(1), median.lapic_hz.max(1), spread)
}

/// How far apart the calibration rounds were, in parts per 10,000 of the
/// TSC frequency (0 on a deterministic emulator).
pub fn calibration_spread() -> u64 {
    CALIBRATION_SPREAD.load(Ordering::Relaxed)
}

static CALIBRATION_SPREAD: AtomicU64 = AtomicU64::new(0);

/// Enables this CPU's LAPIC with its timer masked; the boot CPU also
/// masks the legacy PICs and calibrates the TSC and the timer.
pub fn init(boot_cpu: bool) {
    if boot_cpu {
        mask_legacy_pic();
    }
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    // Every CPU counts at the rate the boot CPU measured: its bus clock
    // divided by 1 (the register's reset value divides by 2).
    write(REG_TIMER_DIVIDE, 0b1011);
    if boot_cpu {
        let (tsc, lapic, spread) = calibrate();
        TSC_HZ.store(tsc, Ordering::Relaxed);
        NS_PER_TICK_32_32.store(((1_000_000_000u128 << 32) / u128::from(tsc)) as u64, Ordering::Relaxed);
        LAPIC_HZ.store(lapic, Ordering::Relaxed);
        CALIBRATION_SPREAD.store(spread, Ordering::Relaxed);
    }
}

/// Arms the one-shot timer to fire at `deadline_ns` (nanoseconds since
/// boot; at least one tick from now, at most as far as the counter reaches).
#[cfg(not(test))]
pub fn arm_timer_at_ns(deadline_ns: u64) {
    let ns = deadline_ns.saturating_sub(now_ns());
    let hz = LAPIC_HZ.load(Ordering::Relaxed);
    let ticks = (u128::from(ns) * u128::from(hz) / 1_000_000_000).clamp(1, u128::from(u32::MAX)) as u32;
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR)); // one-shot, unmasked
    write(REG_TIMER_INITIAL, ticks);
}

/// In host tests: the simulated timer.
#[cfg(test)]
pub fn arm_timer_at_ns(deadline_ns: u64) {
    super::sim::arm_timer(deadline_ns)
}

/// Timer interrupts taken on each CPU so far.
static TIMER_INTERRUPTS: [AtomicU64; super::gdt::MAX_CPUS] = [const { AtomicU64::new(0) }; super::gdt::MAX_CPUS];

/// How many timer interrupts `cpu` has taken: a change since the last look
/// says the clock must be looked at (a deadline may have come).
#[cfg(not(test))]
pub fn timer_interrupts(cpu: usize) -> u64 {
    TIMER_INTERRUPTS[cpu].load(Ordering::Relaxed)
}

/// In host tests: the simulated timer's.
#[cfg(test)]
pub fn timer_interrupts(_cpu: usize) -> u64 {
    super::sim::timer_interrupts()
}

/// Called by the interrupt stubs in `exceptions.S`, with IF=0.
#[unsafe(no_mangle)]
extern "C" fn irq_dispatch(vector: u64) {
    match vector as u8 {
        SPURIOUS_VECTOR => {} // no EOI for the spurious vector
        TIMER_VECTOR => {
            TIMER_INTERRUPTS[super::cpu::current()].fetch_add(1, Ordering::Relaxed);
            write(REG_EOI, 0);
        }
        _ => write(REG_EOI, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample `ms` after the start on a 2 GHz TSC with a 100 MHz LAPIC
    /// timer, read within `width` TSC ticks.
    fn at(ms: u64, width: u64) -> Sample {
        let tsc = 2_000_000 * ms;
        Sample {
            tsc_before: tsc,
            tsc_after: tsc + width,
            pit: 0xFFFF - (PIT_HZ * ms / 1000) as u16,
            lapic: u32::MAX - (100_000 * ms) as u32,
        }
    }

    #[test]
    fn tight_samples_give_the_frequencies_with_a_small_error_bound() {
        let e = estimate(&at(0, 200), &at(40, 200)).unwrap();
        assert!((1_999_000_000..=2_001_000_000).contains(&e.tsc_hz), "{e:?}");
        assert!((99_900_000..=100_100_000).contains(&e.lapic_hz), "{e:?}");
        assert!(e.error_ppm < GOOD_ENOUGH_PPM, "{e:?}");
    }

    #[test]
    fn a_slow_port_access_shows_in_the_error_bound() {
        // 2 ms spent inside one reading: the estimate is honest about it.
        let e = estimate(&at(0, 200), &at(40, 4_000_000)).unwrap();
        assert!(e.error_ppm > 20_000, "{e:?}");
    }

    #[test]
    fn samples_too_close_together_give_no_estimate() {
        assert_eq!(estimate(&at(0, 100), &at(5, 100)), None);
    }
}

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

const LAPIC_BASE: u64 = 0xFEE0_0000;
const REG_EOI: u64 = 0xB0;
const REG_SVR: u64 = 0xF0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3E0;
const LVT_MASKED: u32 = 1 << 16;

fn read(reg: u64) -> u32 {
    // SAFETY: the LAPIC page is identity-mapped uncached by boot.S; reading
    // these registers has no side effects.
    unsafe { core::ptr::read_volatile((LAPIC_BASE + reg) as *const u32) }
}

fn write(reg: u64, v: u32) {
    // SAFETY: as for `read`; the registers written here are the timer's, the
    // EOI and the SVR, which only this module drives.
    unsafe { core::ptr::write_volatile((LAPIC_BASE + reg) as *mut u32, v) }
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
pub fn now_ns() -> u64 {
    let f = NS_PER_TICK_32_32.load(Ordering::Relaxed);
    ((u128::from(super::cpu::rdtsc()) * u128::from(f)) >> 32) as u64
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

/// How many timed rounds calibration takes the median of.
const CALIBRATION_ROUNDS: usize = 5;
const PIT_HZ: u64 = 1_193_182;

/// Counts TSC and LAPIC-timer ticks while PIT channel 2 counts down
/// `pit_ticks` (at most 0xFFFF), in one-shot mode gated through port 0x61.
fn measure(pit_ticks: u16) -> (u64, u64) {
    // SAFETY: the host's PIT and port 0x61 are ours.
    let (ch2, mode, ctl) = unsafe { (Port::<u8>::new(0x42), Port::<u8>::new(0x43), Port::<u8>::new(0x61)) };
    // Gate on, speaker off; channel 2, lobyte/hibyte, mode 0 (one-shot).
    ctl.write((ctl.read() & !0x02) | 0x01);
    mode.write(0b1011_0000);
    ch2.write(pit_ticks as u8);
    ch2.write((pit_ticks >> 8) as u8);
    // Restart the count by toggling the gate.
    let v = ctl.read() & !0x01;
    ctl.write(v);
    ctl.write(v | 0x01);
    write(REG_TIMER_INITIAL, u32::MAX);
    let t0 = super::cpu::rdtsc();
    let mut spins = 0u64;
    // OUT2 goes high when the count reaches zero.
    while ctl.read() & 0x20 == 0 && spins < 100_000_000 {
        spins += 1;
    }
    let t1 = super::cpu::rdtsc();
    let lapic_ticks = u64::from(u32::MAX - read(REG_TIMER_CURRENT));
    write(REG_TIMER_INITIAL, 0);
    (t1 - t0, lapic_ticks)
}

/// The TSC and LAPIC-timer frequencies (Hz), measured against the PIT.
///
/// One round can be far off on an emulator: the first pass through the
/// polling loop is translated while the PIT runs on (QEMU's TCG once
/// measured 4,049 MHz for a 2,607 MHz TSC that way), and the host may
/// deschedule the emulator in the middle of any round. So a short warm-up
/// round is thrown away, and the result is the median of several rounds,
/// which ignores up to two outliers.
fn calibrate() -> (u64, u64, u64) {
    write(REG_TIMER_DIVIDE, 0b1011); // divide by 1
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    const ROUND_TICKS: u16 = (PIT_HZ / 200) as u16; // 5 ms
    let _ = measure(ROUND_TICKS / 5);
    let mut tsc = [0u64; CALIBRATION_ROUNDS];
    let mut lapic = [0u64; CALIBRATION_ROUNDS];
    for i in 0..CALIBRATION_ROUNDS {
        let (t, l) = measure(ROUND_TICKS);
        tsc[i] = t * PIT_HZ / u64::from(ROUND_TICKS);
        lapic[i] = l * PIT_HZ / u64::from(ROUND_TICKS);
    }
    tsc.sort_unstable();
    lapic.sort_unstable();
    let median = tsc[CALIBRATION_ROUNDS / 2].max(1);
    // The spread of the rounds around the median, in parts per 10,000.
    let spread = (tsc[CALIBRATION_ROUNDS - 1] - tsc[0]) * 10_000 / median;
    (median, lapic[CALIBRATION_ROUNDS / 2].max(1), spread)
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
pub fn arm_timer_at_ns(deadline_ns: u64) {
    let ns = deadline_ns.saturating_sub(now_ns());
    let hz = LAPIC_HZ.load(Ordering::Relaxed);
    let ticks = (u128::from(ns) * u128::from(hz) / 1_000_000_000).clamp(1, u128::from(u32::MAX)) as u32;
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR)); // one-shot, unmasked
    write(REG_TIMER_INITIAL, ticks);
}

/// Timer interrupts taken on each CPU so far.
static TIMER_INTERRUPTS: [AtomicU64; super::gdt::MAX_CPUS] = [const { AtomicU64::new(0) }; super::gdt::MAX_CPUS];

/// How many timer interrupts `cpu` has taken: a change since the last look
/// says the clock must be looked at (a deadline may have come).
pub fn timer_interrupts(cpu: usize) -> u64 {
    TIMER_INTERRUPTS[cpu].load(Ordering::Relaxed)
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

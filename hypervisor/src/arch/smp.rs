//! Starting the application processors (APs): the trampoline and the
//! INIT-SIPI-SIPI sequence.
//!
//! The boot CPU starts one AP at a time. It copies the trampoline
//! (`ap_boot.S`) to a free page below 1 MiB, writes into the copy the boot
//! CPU's control registers, a stack and the CPU's index, and sends the AP
//! an INIT IPI, then up to two startup IPIs naming that page (the universal
//! start-up algorithm of the Intel MultiProcessor Specification 1.4, B.4,
//! which AMD CPUs follow: 10 ms after INIT, 200 µs between the SIPIs). The
//! AP reaches `ap_rust_entry` in long mode on its own stack, loads its own
//! GDT, TSS and IDT, says it arrived, and runs the kernel's AP code.
use super::gdt::MAX_CPUS;
use super::phys::PAGE;
use core::sync::atomic::{AtomicU32, Ordering};

/// Each CPU's local APIC id + 1, by CPU index (0: not started).
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

/// Records that CPU `cpu` has local APIC id `apic_id` (the boot CPU's at
/// boot, each AP's when it starts).
fn record(cpu: usize, apic_id: u32) {
    if let Some(slot) = APIC_IDS.get(cpu) {
        slot.store(apic_id + 1, Ordering::SeqCst);
    }
}

/// Records the boot CPU's APIC id: CPU 0.
pub fn record_boot_cpu(apic_id: u32) {
    record(0, apic_id);
}

/// Makes CPU `cpu` look at its ready queue: an IPI that ends its HLT (or
/// its guest's run). Nothing for a CPU that was never started.
pub fn kick(cpu: usize) {
    let id = APIC_IDS.get(cpu).map_or(0, |s| s.load(Ordering::SeqCst));
    if id != 0 {
        super::lapic::send_fixed(id - 1, super::lapic::KICK_VECTOR);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// The CPU index is 0 (the boot CPU) or not below `MAX_CPUS`.
    BadIndex(usize),
    /// The trampoline page is not a page-aligned address below 1 MiB
    /// outside the video range, or the trampoline does not fit in it.
    BadPage(u64),
    /// The boot CPU's page tables lie above 4 GiB, out of the 32-bit
    /// reach of the real-mode code.
    PageTablesTooHigh(u64),
    /// The AP did not arrive within [`ARRIVAL_TIMEOUT_NS`] of its second SIPI.
    NoAnswer { apic_id: u32 },
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::BadIndex(i) => write!(f, "CPU index {i} is not an AP's (1..{MAX_CPUS})"),
            StartError::BadPage(p) => write!(f, "trampoline page {p:#x} is not a free page below 1 MiB"),
            StartError::PageTablesTooHigh(cr3) => write!(f, "host page tables at {cr3:#x} are above 4 GiB"),
            StartError::NoAnswer { apic_id } => {
                write!(f, "the CPU with APIC id {apic_id} did not answer INIT-SIPI-SIPI")
            }
        }
    }
}

/// Whether `page` can hold the trampoline: a page of conventional memory
/// (below 640 KiB: above it lie video memory and ROMs) that a SIPI can name
/// (its vector is `page >> 12`), other than page 0 (the real-mode
/// interrupt table and the BIOS data), and large enough for the code.
pub fn valid_trampoline_page(page: u64, trampoline_len: u64) -> bool {
    page.is_multiple_of(PAGE) && page != 0 && page < 0xA_0000 && trampoline_len <= PAGE
}

#[cfg(not(test))]
mod hw {
    use super::*;
    use crate::arch::{cpu, lapic};
    use core::sync::atomic::AtomicUsize;

    /// Bytes of stack each AP runs its boot flow on.
    const AP_STACK_SIZE: usize = 64 * 1024;
    /// How long the boot CPU waits for an AP to arrive after its last SIPI.
    const ARRIVAL_TIMEOUT_NS: u64 = 100_000_000;

    #[repr(C, align(4096))]
    struct ApStack([u8; AP_STACK_SIZE]);

    /// The APs' boot stacks, one per CPU index 1.. (the boot CPU has boot.S's).
    static mut AP_STACKS: [ApStack; MAX_CPUS - 1] = [const { ApStack([0; AP_STACK_SIZE]) }; MAX_CPUS - 1];

    /// The index of the AP that last reached `ap_rust_entry` (0: none yet).
    static ARRIVED: AtomicUsize = AtomicUsize::new(0);

    /// The kernel's code for an AP, given its CPU index; it never returns.
    static AP_MAIN: spin::Once<fn(usize) -> !> = spin::Once::new();

    /// When each SIPI is sent, relative to the INIT (MultiProcessor
    /// Specification 1.4, B.4: 10 ms, then 200 µs).
    const SIPI_DELAYS_NS: [u64; 2] = [10_000_000, 10_200_000];

    unsafe extern "C" {
        static ap_trampoline_start: u8;
        static ap_trampoline_end: u8;
        static ap_gdt_ptr: u8;
        static ap_far_jump: u8;
        static ap_cr0: u8;
        static ap_cr3: u8;
        static ap_cr4: u8;
        static ap_efer: u8;
        static ap_stack_top: u8;
        static ap_cpu: u8;
        static ap_entry: u8;
        static ap_gdt_offset: u64;
        static ap_long_mode_offset: u64;
    }

    /// The trampoline's bytes in the image.
    fn trampoline() -> &'static [u8] {
        let start = core::ptr::addr_of!(ap_trampoline_start);
        let end = core::ptr::addr_of!(ap_trampoline_end) as usize;
        // SAFETY: both symbols bound the trampoline in the image's read-only data (ap_boot.S), end after start.
        unsafe { core::slice::from_raw_parts(start, end - start as usize) }
    }

    /// The offset of data word `sym` inside the trampoline.
    fn offset_of(sym: *const u8) -> usize {
        sym as usize - core::ptr::addr_of!(ap_trampoline_start) as usize
    }

    /// Copies the trampoline to `page` and fills its data for CPU `cpu`.
    fn install(page: u64, cpu_index: usize, cr3: u64) {
        let code = trampoline();
        let stack_top = {
            // SAFETY: only the address of this CPU's stack is taken; the AP is the stack's one user.
            let stack = unsafe { core::ptr::addr_of!(AP_STACKS[cpu_index - 1]) };
            stack as u64 + AP_STACK_SIZE as u64
        };
        // SAFETY: the offsets come from ap_boot.S's own labels (constants the assembler computed).
        let (gdt_off, long_off) = unsafe { (ap_gdt_offset, ap_long_mode_offset) };
        let cr4 = cpu::read_cr4() & !guest_x86::regs::cr4::PCIDE;
        // SAFETY: EFER exists on every long-mode CPU. LMA is set by the CPU itself when it activates long mode,
        // and SVME is set by svm::enable once the AP has its save area.
        let efer = unsafe { cpu::rdmsr(cpu::msr::EFER) } & !(guest_x86::regs::efer::LMA | guest_x86::regs::efer::SVME);
        let words: [(*const u8, u64); 7] = [
            (core::ptr::addr_of!(ap_cr0), cpu::read_cr0()),
            (core::ptr::addr_of!(ap_cr3), cr3),
            (core::ptr::addr_of!(ap_cr4), cr4),
            (core::ptr::addr_of!(ap_efer), efer),
            (core::ptr::addr_of!(ap_stack_top), stack_top),
            (core::ptr::addr_of!(ap_cpu), cpu_index as u64),
            (core::ptr::addr_of!(ap_entry), ap_rust_entry as extern "C" fn(usize) -> ! as usize as u64),
        ];
        // The caller checked that `page` is a free page below 1 MiB (valid_trampoline_page and the boot
        // information's ranges); the identity map covers it and nothing else uses it while APs start.
        // SAFETY: as above; the writes stay inside the page: the trampoline fits (checked), and every offset is
        // inside the trampoline.
        unsafe {
            let dst = page as *mut u8;
            core::ptr::copy_nonoverlapping(code.as_ptr(), dst, code.len());
            // The GDT pointer's base and the far jump's offset: linear addresses inside the copy.
            core::ptr::write_unaligned(
                dst.add(offset_of(core::ptr::addr_of!(ap_gdt_ptr)) + 2) as *mut u32,
                (page + gdt_off) as u32,
            );
            core::ptr::write_unaligned(
                dst.add(offset_of(core::ptr::addr_of!(ap_far_jump))) as *mut u32,
                (page + long_off) as u32,
            );
            for (sym, value) in words {
                core::ptr::write_unaligned(dst.add(offset_of(sym)) as *mut u64, value);
            }
        }
        // The AP reads the copy through its own (cold) caches: make the stores visible first.
        core::sync::atomic::fence(Ordering::SeqCst);
    }

    fn wait_until_ns(deadline: u64) {
        while lapic::now_ns() < deadline {
            core::hint::spin_loop();
        }
    }

    /// Starts the AP with local APIC id `apic_id` as CPU `cpu_index`,
    /// through the trampoline at `page`; returns once it runs its own code.
    /// `main` is the kernel's code for every AP.
    pub fn start_ap(cpu_index: usize, apic_id: u32, page: u64, main: fn(usize) -> !) -> Result<(), StartError> {
        if cpu_index == 0 || cpu_index >= MAX_CPUS {
            return Err(StartError::BadIndex(cpu_index));
        }
        if !valid_trampoline_page(page, trampoline().len() as u64) {
            return Err(StartError::BadPage(page));
        }
        let cr3 = cpu::read_cr3();
        if cr3 >= super::super::phys::IDENTITY_LIMIT {
            return Err(StartError::PageTablesTooHigh(cr3));
        }
        AP_MAIN.call_once(|| main);
        record(cpu_index, apic_id);
        install(page, cpu_index, cr3);
        ARRIVED.store(0, Ordering::SeqCst);
        let t0 = lapic::now_ns();
        lapic::send_init(apic_id);
        for delay in SIPI_DELAYS_NS {
            wait_until_ns(t0 + delay);
            if ARRIVED.load(Ordering::SeqCst) == cpu_index {
                return Ok(());
            }
            lapic::send_startup(apic_id, (page >> 12) as u8);
        }
        let deadline = lapic::now_ns() + ARRIVAL_TIMEOUT_NS;
        while lapic::now_ns() < deadline {
            if ARRIVED.load(Ordering::SeqCst) == cpu_index {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(StartError::NoAnswer { apic_id })
    }

    /// Where the trampoline lands in long mode, on the AP's own stack.
    extern "C" fn ap_rust_entry(cpu_index: usize) -> ! {
        crate::arch::init_cpu(cpu_index);
        ARRIVED.store(cpu_index, Ordering::SeqCst);
        match AP_MAIN.get() {
            Some(main) => main(cpu_index),
            None => cpu::halt_forever(),
        }
    }
}

#[cfg(not(test))]
pub use hw::start_ap;

/// In host tests: the simulated machine has one CPU, so no AP answers.
#[cfg(test)]
pub fn start_ap(_cpu_index: usize, apic_id: u32, _page: u64, _main: fn(usize) -> !) -> Result<(), StartError> {
    Err(StartError::NoAnswer { apic_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trampoline_page_is_aligned_below_1_mib_and_outside_video_memory() {
        for (page, ok) in [
            (0x8000, true),
            (0x1000, true),
            (0x9_F000, true),
            (0, false),
            (0x8010, false),
            (0xA_0000, false),
            (0xC_0000, false),
            (0x10_0000, false),
        ] {
            assert_eq!(valid_trampoline_page(page, 200), ok, "page {page:#x}");
        }
        assert!(!valid_trampoline_page(0x8000, PAGE + 1), "a trampoline larger than a page");
    }
}

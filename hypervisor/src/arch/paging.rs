//! The hypervisor's own page tables, built by the `npt` engine's host
//! flavor once mm is up, replacing the boot identity map.
//!
//! The layout is the same identity map of the first 4 GiB, with two
//! differences: the LAPIC/IOAPIC/firmware range is mapped uncached and not
//! executable, and the lowest page of the boot stack is left unmapped, so
//! that a stack overflow faults at once (and is reported) instead of
//! silently running into `.data`.
use super::cpu::{msr, rdmsr, wrmsr};
use super::frames::{PoolId, TableFrames};
use super::phys::PAGE;
use npt::{HostPageTable, HostPhysAddr, HostVirtAddr, PageSize, Perms};

const UNCACHED_FROM: u64 = 0xFE00_0000;
const TOP: u64 = super::phys::IDENTITY_LIMIT;

unsafe extern "C" {
    static boot_stack: u8;
}

/// The unmapped guard page at the bottom of the boot stack.
pub fn stack_guard_page() -> u64 {
    core::ptr::addr_of!(boot_stack) as u64
}

/// Builds the host page tables from `pool`'s frames and switches to them.
/// `nx`: the CPU has no-execute pages (EFER.NXE is then set).
pub fn init(pool: PoolId, nx: bool, gb_pages: bool) -> Result<(), npt::NptError> {
    let mut frames = TableFrames::new(pool);
    let max = if gb_pages { PageSize::Size1G } else { PageSize::Size2M };
    let mut pt = HostPageTable::with_max_page_size(&mut frames, max)?;
    let guard = stack_guard_page();
    let data = if nx { Perms::RW } else { Perms::RWX };
    let mut map = |pt: &mut HostPageTable, start: u64, end: u64, perms: Perms| {
        pt.map_range(&mut frames, HostVirtAddr(start), HostPhysAddr(start), end - start, perms)
            // Mapping into an empty table leaves nothing stale.
            .map(|flush| flush.apply(|_| {}))
    };
    map(&mut pt, 0, guard, Perms::RWX)?;
    map(&mut pt, guard + PAGE, UNCACHED_FROM, Perms::RWX)?;
    map(&mut pt, UNCACHED_FROM, TOP, data | Perms::UNCACHED)?;
    if nx {
        // SAFETY: NXE only gives meaning to bit 63 of page-table entries; the boot tables never set
        // it, and the new ones set it only where nothing executes.
        unsafe { wrmsr(msr::EFER, rdmsr(msr::EFER) | guest_x86::regs::efer::NXE) };
    }
    let root = pt.root().addr().0;
    // SAFETY: the new tables map every address the kernel uses as before (identity, first 4 GiB: image,
    // stacks, frames, modules, LAPIC), minus one stack page touched only if the stack overflows.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) };
    // The tables live for the kernel's life: `pt` is dropped without
    // `destroy`, so their frames stay allocated in the container.
    Ok(())
}

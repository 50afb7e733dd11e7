//! ACPI discovery: the RSDP and the MADT, through the `acpi` crate.
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use arrayvec::ArrayVec;
use core::ptr::NonNull;

/// The identity map is the mapping: physical address == virtual address,
/// for memory that arch's record lets the kernel read ([`super::claims`]).
#[derive(Clone, Copy)]
struct IdentityHandler;

impl AcpiHandler for IdentityHandler {
    unsafe fn map_physical_region<T>(&self, physical_address: usize, size: usize) -> PhysicalMapping<Self, T> {
        // The pages become shared for the kernel's life (as the boot
        // information is): no run owns them now or ever will. Firmware keeps
        // its tables in memory the loader reports as reserved, so a table in
        // memory the kernel handed out, in the image or beyond the identity
        // map is corrupt beyond use, and stopping is the only option (this
        // interface cannot fail).
        let pa = physical_address as u64;
        let end = pa.checked_add(size as u64).map(|e| e.next_multiple_of(super::phys::PAGE));
        let start = pa - pa % super::phys::PAGE;
        let shared = pa != 0 && end.is_some_and(|end| super::claims::map().share(start, end));
        assert!(shared, "ACPI table at {physical_address:#x} ({size} bytes) is not in memory the kernel may read");
        let virt = NonNull::new(super::phys::ptr(pa).cast::<T>()).expect("a shared range is never at address 0");
        // SAFETY: `[pa, pa + size)` is below the identity map's limit and shared from now on (checked above): no
        // run owns it nor ever will, it is not the image, and the kernel never writes shared ranges.
        unsafe { PhysicalMapping::new(physical_address, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// What the platform's ACPI tables say about CPUs and interrupt controllers.
#[derive(Debug, Clone, Default)]
pub struct Platform {
    pub rsdp: u64,
    /// Enabled (or online-capable) local APICs, by APIC ID.
    pub cpus: ArrayVec<u32, 64>,
    pub lapic_addr: u64,
    /// (id, MMIO address, first GSI) of each IOAPIC.
    pub ioapics: ArrayVec<(u8, u64, u32), 8>,
}

/// The RSDP's signature, at a 16-byte boundary.
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";

/// Where a PC BIOS leaves the RSDP (ACPI 6.5, §5.2.5.1): at a 16-byte
/// boundary in the first KiB of the EBDA (whose segment is the word at
/// 0x40E), or in 0xE0000-0xFFFFF. The first candidate whose ACPI 1.0 part
/// (20 bytes) sums to zero; the `acpi` crate checks the rest. Read by copy
/// ([`super::phys::read`]): the crate's own search maps a range that runs
/// past 1 MiB, into the hypervisor image.
fn find_rsdp_in_bios_areas() -> Option<u64> {
    let mut ebda_segment = [0u8; 2];
    let ebda = super::phys::read(0x40E, &mut ebda_segment).then(|| u64::from(u16::from_le_bytes(ebda_segment)) << 4);
    let areas =
        [ebda.filter(|start| (0x500..0xA_0000).contains(start)).map(|s| (s, s + 1024)), Some((0xE_0000, 0x10_0000))];
    let mut chunk = [0u8; 4096];
    for (start, end) in areas.into_iter().flatten() {
        let mut at = start;
        while at < end {
            let len = (end - at).min(chunk.len() as u64) as usize;
            if super::phys::read(at, &mut chunk[..len]) {
                for off in (0..len.saturating_sub(19)).step_by(16) {
                    let candidate = &chunk[off..off + 20];
                    let sum = candidate.iter().fold(0u8, |a, &b| a.wrapping_add(b));
                    if candidate.starts_with(RSDP_SIGNATURE) && sum == 0 {
                        return Some(at + off as u64);
                    }
                }
            }
            // The next chunk starts 16 bytes early: the candidate at the
            // last boundary of this one did not fit in it.
            at += if at + (len as u64) < end { len as u64 - 16 } else { len as u64 };
        }
    }
    None
}

/// Reads the MADT. `rsdp` is the loader's copy if it passed one; otherwise
/// the BIOS areas are searched.
pub fn discover(rsdp: Option<u64>) -> Result<Platform, acpi::AcpiError> {
    let addr = rsdp.or_else(find_rsdp_in_bios_areas).ok_or(acpi::AcpiError::NoValidRsdp)?;
    // SAFETY: the crate reads tables only through `IdentityHandler`, which maps only shared memory inside the
    // identity map (or stops); it validates signatures and checksums before trusting a table.
    let tables = unsafe { AcpiTables::from_rsdp(IdentityHandler, addr as usize)? };
    let madt = tables.find_table::<Madt>()?;
    let mut p = Platform { rsdp: 0, lapic_addr: u64::from(madt.get().local_apic_address), ..Default::default() };
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) => {
                let flags = e.flags;
                if flags & 0b11 != 0 {
                    let _ = p.cpus.try_push(u32::from(e.apic_id));
                }
            }
            MadtEntry::LocalX2Apic(e) => {
                let flags = e.flags;
                if flags & 0b11 != 0 {
                    let _ = p.cpus.try_push(e.x2apic_id);
                }
            }
            MadtEntry::IoApic(e) => {
                let _ =
                    p.ioapics.try_push((e.io_apic_id, u64::from(e.io_apic_address), e.global_system_interrupt_base));
            }
            MadtEntry::LocalApicAddressOverride(e) => p.lapic_addr = e.local_apic_address,
            _ => {}
        }
    }
    p.rsdp = rsdp.unwrap_or(0);
    Ok(p)
}

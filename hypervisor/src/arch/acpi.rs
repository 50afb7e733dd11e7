//! ACPI discovery: the RSDP and the MADT, through the `acpi` crate.
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use arrayvec::ArrayVec;
use core::ptr::NonNull;

/// The identity map is the mapping: physical address == virtual address.
#[derive(Clone, Copy)]
struct IdentityHandler;

impl AcpiHandler for IdentityHandler {
    unsafe fn map_physical_region<T>(&self, physical_address: usize, size: usize) -> PhysicalMapping<Self, T> {
        // Firmware never places a table at address 0; a table that claims
        // to be there is corrupt beyond use, and stopping is the only option.
        let virt = NonNull::new(physical_address as *mut T).expect("ACPI table at physical address 0");
        // SAFETY: the boot identity map covers the first 4 GiB, where
        // firmware places ACPI tables; `virt` is that identity address.
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

/// Reads the MADT. `rsdp` is the loader's copy if it passed one; otherwise
/// the BIOS areas are searched.
pub fn discover(rsdp: Option<u64>) -> Result<Platform, acpi::AcpiError> {
    // SAFETY: both paths read only firmware memory inside the identity map;
    // the crate validates signatures and checksums before trusting a table.
    let tables = unsafe {
        match rsdp {
            Some(addr) => AcpiTables::from_rsdp(IdentityHandler, addr as usize)?,
            None => AcpiTables::search_for_rsdp_bios(IdentityHandler)?,
        }
    };
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

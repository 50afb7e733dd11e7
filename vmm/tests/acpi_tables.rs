//! The loader's ACPI tables parsed back by an independent parser, the
//! `acpi` crate: what it finds must be the platform the device models
//! emulate. The tables are written into a host buffer standing in for
//! guest RAM; the crate's "physical addresses" are offsets into it.
use acpi::address::AddressSpace;
use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use core::ptr::NonNull;
use guest_x86::mem::VecMemory;
use vmm::dev::acpi_pm::{PM1A_CNT_BLK, PM1A_EVT_BLK, SCI_IRQ};
use vmm::dev::sysctl::PORT_RESET_CONTROL;
use vmm::dev::{ioapic, lapic};
use vmm::loader::{write_acpi_tables, AcpiConfig, MemLayout};

/// Guest RAM as the parser sees it: physical address = offset into `base`.
#[derive(Clone, Copy)]
struct RamHandler {
    base: *mut u8,
    len: usize,
}

impl AcpiHandler for RamHandler {
    // SAFETY: the trait's contract: the crate asks only for ranges it
    // found through the RSDP; each is checked against the buffer here.
    unsafe fn map_physical_region<T>(&self, physical_address: usize, size: usize) -> PhysicalMapping<Self, T> {
        assert!(physical_address + size <= self.len, "table at {physical_address:#x}+{size:#x} outside RAM");
        // SAFETY: the range was checked to lie inside the buffer, which
        // outlives the parse (the test keeps it alive until the end).
        let virt = NonNull::new(unsafe { self.base.add(physical_address) } as *mut T).unwrap();
        // SAFETY: `virt` maps `size` readable bytes at `physical_address`.
        unsafe { PhysicalMapping::new(physical_address, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

fn tables_for(vcpus: u8) -> VecMemory {
    let layout = MemLayout::new(16 << 20);
    let mut mem = VecMemory::new(layout.ram_size as usize);
    let rsdp = write_acpi_tables(&mut mem, &layout, &AcpiConfig { vcpus, ioapic_id: vcpus, virtio_slots: 0 }).unwrap();
    assert_eq!(rsdp, 0xF_0000);
    mem
}

fn parse(mem: &mut VecMemory) -> AcpiTables<RamHandler> {
    let handler = RamHandler { base: mem.0.as_mut_ptr(), len: mem.0.len() };
    // SAFETY: the handler maps only inside `mem`, which outlives the tables
    // (each test drops the tables before the buffer).
    unsafe { AcpiTables::search_for_rsdp_bios(handler) }.expect("the BIOS-area scan finds a valid RSDP")
}

#[test]
fn the_acpi_crate_finds_the_rsdp_by_scanning_the_bios_area_and_revision_2() {
    let mut mem = tables_for(1);
    let tables = parse(&mut mem);
    assert_eq!(tables.revision(), 2, "RSDP revision");
}

#[test]
fn the_acpi_crate_reads_one_local_apic_per_vcpu_the_io_apic_and_the_overrides_from_the_madt() {
    let mut mem = tables_for(2);
    let tables = parse(&mut mem);
    let madt = tables.find_table::<Madt>().expect("MADT");
    assert_eq!(u64::from(madt.get().local_apic_address), lapic::DEFAULT_BASE);
    assert!(madt.get().supports_8259(), "PCAT_COMPAT");
    let (mut cpus, mut ioapics, mut overrides, mut nmis) = (vec![], vec![], vec![], vec![]);
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) => cpus.push((e.processor_id, e.apic_id, { e.flags })),
            MadtEntry::IoApic(e) => {
                ioapics.push((e.io_apic_id, { e.io_apic_address }, { e.global_system_interrupt_base }))
            }
            MadtEntry::InterruptSourceOverride(e) => {
                overrides.push((e.irq, { e.global_system_interrupt }, { e.flags }))
            }
            MadtEntry::LocalApicNmi(e) => nmis.push((e.processor_id, e.nmi_line)),
            other => panic!("unexpected MADT entry {other:?}"),
        }
    }
    assert_eq!(cpus, [(0, 0, 1), (1, 1, 1)], "(UID, APIC ID, flags) per vCPU");
    assert_eq!(ioapics, [(2, ioapic::DEFAULT_BASE as u32, 0)], "(ID, address, GSI base)");
    assert_eq!(overrides, [(0, 2, 0), (9, 9, 0b1101)], "(IRQ, GSI, flags): timer to GSI 2, SCI level high");
    assert_eq!(nmis, [(0xFF, 1)], "LINT1 NMI on all processors");
}

#[test]
fn the_acpi_crate_reads_the_pm1a_blocks_the_reset_register_and_the_dsdt_from_the_fadt() {
    let mut mem = tables_for(1);
    let tables = parse(&mut mem);
    let fadt = tables.find_table::<Fadt>().expect("FADT");
    let evt = fadt.pm1a_event_block().unwrap();
    assert_eq!((evt.address_space, evt.address), (AddressSpace::SystemIo, u64::from(PM1A_EVT_BLK)));
    let cnt = fadt.pm1a_control_block().unwrap();
    assert_eq!((cnt.address_space, cnt.address), (AddressSpace::SystemIo, u64::from(PM1A_CNT_BLK)));
    assert!({ fadt.flags }.supports_system_reset_via_fadt(), "RESET_REG_SUP");
    let reset = fadt.reset_register().unwrap();
    assert_eq!((reset.address_space, reset.address), (AddressSpace::SystemIo, u64::from(PORT_RESET_CONTROL)));
    assert_eq!({ fadt.sci_interrupt }, u16::from(SCI_IRQ));
    assert!(fadt.pm_timer_block().unwrap().is_none(), "no PM timer");
    let dsdt = tables.dsdt().expect("DSDT");
    assert_eq!(dsdt.length, 17, "the _S5 package's AML");
}

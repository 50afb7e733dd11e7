//! Host tests of the ACPI tables' layout, lengths and checksums. The
//! parse-back by an independent parser (the `acpi` crate) is in
//! `vmm/tests/acpi_tables.rs`: it needs `unsafe` to map tables.
use super::tables::*;
use super::*;
use crate::loader::layout::{e820_map, E820Type};
use crate::loader::testutil::{bytes, u32_at, u64_at};
use guest_x86::mem::VecMemory;

const CONFIG: AcpiConfig = AcpiConfig { vcpus: 4, ioapic_id: 4, virtio_slots: 0 };

fn written(config: &AcpiConfig) -> (VecMemory, Plan) {
    let layout = MemLayout::new(16 << 20);
    let mut mem = VecMemory::new(layout.ram_size as usize);
    let rsdp = write_acpi_tables(&mut mem, &layout, config).expect("tables written");
    let plan = Plan::new(config.vcpus, config.virtio_slots);
    assert_eq!(rsdp, plan.rsdp);
    (mem, plan)
}

fn sum(mem: &VecMemory, at: u64, len: u64) -> u8 {
    bytes(mem, at, len as usize).iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

#[test]
fn rsdp_has_revision_2_the_xsdt_address_and_both_checksums_right() {
    let (mem, plan) = written(&CONFIG);
    assert_eq!(plan.rsdp, 0xF_0000);
    assert_eq!(bytes(&mem, plan.rsdp, 8), b"RSD PTR ");
    assert_eq!(bytes(&mem, plan.rsdp + 9, 6), OEM_ID);
    assert_eq!(bytes(&mem, plan.rsdp + 15, 1), [2]);
    assert_eq!(u32_at(&mem, plan.rsdp + 20), RSDP_LEN as u32);
    assert_eq!(u64_at(&mem, plan.rsdp + 24), plan.xsdt);
    assert_eq!(sum(&mem, plan.rsdp, RSDP_V1_LEN), 0, "ACPI 1.0 checksum");
    assert_eq!(sum(&mem, plan.rsdp, RSDP_LEN), 0, "extended checksum");
}

#[test]
fn every_table_has_its_signature_length_and_a_zero_sum() {
    let (mem, plan) = written(&CONFIG);
    for (at, signature, len) in [
        (plan.xsdt, b"XSDT", HEADER_LEN + 16),
        (plan.fadt, b"FACP", FADT_LEN),
        (plan.madt, b"APIC", madt_len(CONFIG.vcpus)),
        (plan.dsdt, b"DSDT", HEADER_LEN + DSDT_AML.len() as u64),
    ] {
        let name = core::str::from_utf8(signature).unwrap();
        assert_eq!(bytes(&mem, at, 4), signature);
        assert_eq!(u64::from(u32_at(&mem, at + 4)), len, "{name} length");
        assert_eq!(sum(&mem, at, len), 0, "{name} checksum");
        assert_eq!(bytes(&mem, at + 10, 6), OEM_ID, "{name} OEM ID");
    }
    assert_eq!(bytes(&mem, plan.facs, 4), b"FACS");
    assert_eq!(u32_at(&mem, plan.facs + 4), 64);
}

#[test]
fn xsdt_lists_the_fadt_and_the_madt() {
    let (mem, plan) = written(&CONFIG);
    assert_eq!(u64_at(&mem, plan.xsdt + HEADER_LEN), plan.fadt);
    assert_eq!(u64_at(&mem, plan.xsdt + HEADER_LEN + 8), plan.madt);
}

#[test]
fn fadt_points_at_the_dsdt_in_both_widths_and_at_the_facs_in_one() {
    let (mem, plan) = written(&CONFIG);
    assert_eq!(u64::from(u32_at(&mem, plan.fadt + 36)), plan.facs, "FIRMWARE_CTRL");
    assert_eq!(u64::from(u32_at(&mem, plan.fadt + 40)), plan.dsdt);
    // ACPI 6.0 §5.2.9: X_FIRMWARE_CTRL must be zero when FIRMWARE_CTRL is not.
    assert_eq!(u64_at(&mem, plan.fadt + 132), 0, "X_FIRMWARE_CTRL");
    assert_eq!(u64_at(&mem, plan.fadt + 140), plan.dsdt);
    assert_eq!(plan.facs % 64, 0, "FACS 64-byte aligned");
}

#[test]
fn dsdt_aml_names_s5_with_the_sleep_type_the_pm_block_powers_off_on() {
    let (mem, plan) = written(&CONFIG);
    let aml = bytes(&mem, plan.dsdt + HEADER_LEN, DSDT_AML.len());
    assert_eq!(aml[0], 0x08, "NameOp");
    assert_eq!(&aml[1..6], b"\\_S5_");
    assert_eq!(aml[6], 0x12, "PackageOp");
    assert_eq!(usize::from(aml[7]), aml.len() - 7, "PkgLength covers the rest of the block");
    assert_eq!(aml[8], 4, "NumElements");
    let elements: Vec<_> = aml[9..].chunks(2).map(|c| (c[0], c[1])).collect();
    let s5 = crate::dev::acpi_pm::SLP_TYP_S5 as u8;
    assert_eq!(elements, [(0x0A, s5), (0x0A, s5), (0x0A, 0), (0x0A, 0)], "BytePrefix constants");
}

#[test]
fn tables_for_1_to_64_vcpus_lie_in_reserved_memory_below_1_mib() {
    for vcpus in [1, 2, 16, MAX_VCPUS] {
        let (_, plan) = written(&AcpiConfig { vcpus, ioapic_id: 0, virtio_slots: 0 });
        assert!(plan.end <= 0x10_0000, "{vcpus} vCPUs: tables end at {:#x}", plan.end);
        let (map, n) = e820_map(&MemLayout::default());
        let reserved =
            map[..n].iter().any(|e| e.kind == E820Type::Reserved && e.addr <= plan.rsdp && plan.end <= e.end());
        assert!(reserved, "{vcpus} vCPUs: [{:#x}, {:#x}) reserved in e820", plan.rsdp, plan.end);
    }
}

#[test]
fn madt_for_n_vcpus_has_n_local_apics_with_ids_0_to_n() {
    let (mem, plan) = written(&AcpiConfig { vcpus: 3, ioapic_id: 3, virtio_slots: 0 });
    let first = plan.madt + HEADER_LEN + 8;
    for cpu in 0..3u64 {
        let entry = bytes(&mem, first + 8 * cpu, 8);
        assert_eq!(entry, [0, 8, cpu as u8, cpu as u8, 1, 0, 0, 0], "vCPU {cpu}");
    }
    assert_eq!(bytes(&mem, first + 24, 4), [1, 12, 3, 0], "then the I/O APIC");
}

#[test]
fn no_vcpu_or_more_than_64_are_refused() {
    let layout = MemLayout::new(16 << 20);
    let mut mem = VecMemory::new(layout.ram_size as usize);
    for vcpus in [0, MAX_VCPUS + 1] {
        assert_eq!(
            write_acpi_tables(&mut mem, &layout, &AcpiConfig { vcpus, ioapic_id: 0, virtio_slots: 0 }),
            Err(LoadError::BadVcpuCount { count: vcpus, max: MAX_VCPUS })
        );
    }
}

#[test]
fn memory_smaller_than_the_layout_is_refused() {
    let mut mem = VecMemory::new(1 << 20);
    assert_eq!(
        write_acpi_tables(&mut mem, &MemLayout::new(16 << 20), &CONFIG),
        Err(LoadError::GuestMemoryTooSmall { memory_size: 1 << 20, ram_size: 16 << 20 })
    );
}

#[test]
fn rewriting_the_tables_for_fewer_vcpus_leaves_no_stale_bytes() {
    let layout = MemLayout::new(16 << 20);
    let mut mem = VecMemory::new(layout.ram_size as usize);
    write_acpi_tables(&mut mem, &layout, &AcpiConfig { vcpus: MAX_VCPUS, ioapic_id: 0, virtio_slots: 0 }).unwrap();
    write_acpi_tables(&mut mem, &layout, &AcpiConfig { vcpus: 1, ioapic_id: 0, virtio_slots: 0 }).unwrap();
    let plan = Plan::new(1, 0);
    assert!(bytes(&mem, plan.end, (0x10_0000 - plan.end) as usize).iter().all(|&b| b == 0));
}

#[test]
fn dsdt_lists_exactly_the_virtio_slots_in_use_with_a_right_checksum() {
    for slots in [0u8, 1, 3, 8] {
        let (mem, plan) = written(&AcpiConfig { virtio_slots: slots, ..CONFIG });
        let len = dsdt_len(slots);
        assert_eq!(u64::from(u32_at(&mem, plan.dsdt + 4)), len, "{slots} slots: DSDT length");
        assert_eq!(sum(&mem, plan.dsdt, len), 0, "{slots} slots: DSDT checksum");
        assert!(plan.fadt >= plan.dsdt + len, "the FADT follows the DSDT");
        let aml = bytes(&mem, plan.dsdt + HEADER_LEN, (len - HEADER_LEN) as usize);
        let hids = aml.windows(8).filter(|w| w == b"LNRO0005").count();
        assert_eq!(hids, usize::from(slots), "{slots} slots: LNRO0005 devices");
        if slots == 0 {
            assert_eq!(aml, DSDT_AML, "no virtio: only \\_S5");
        }
    }
}

#[test]
fn dsdt_scope_and_device_package_lengths_cover_their_bytes() {
    let (mem, plan) = written(&AcpiConfig { virtio_slots: 2, ..CONFIG });
    let scope = plan.dsdt + HEADER_LEN + DSDT_AML.len() as u64;
    let aml = bytes(&mem, scope, (dsdt_len(2) - HEADER_LEN) as usize - DSDT_AML.len());
    assert_eq!(aml[0], 0x10, "ScopeOp");
    let pkg = usize::from(aml[1] & 0x0F) | (usize::from(aml[2]) << 4);
    assert_eq!((aml[1] >> 6, pkg), (1, aml.len() - 1), "two-byte PkgLength: all after the opcode");
    assert_eq!(&aml[3..8], b"\\_SB_");
    let first = &aml[8..8 + VIRTIO_DEVICE_AML_LEN];
    assert_eq!(&first[..2], [0x5B, 0x82], "DeviceOp");
    assert_eq!(usize::from(first[2]), VIRTIO_DEVICE_AML_LEN - 2, "device PkgLength");
    assert_eq!(&first[3..7], b"VIO0");
    assert_eq!(&aml[8 + VIRTIO_DEVICE_AML_LEN + 3..8 + VIRTIO_DEVICE_AML_LEN + 7], b"VIO1");
}

#[test]
fn a_virtio_device_crs_holds_its_window_and_a_level_high_gsi() {
    let aml = virtio_device_aml(3, 0xFEB0_3000, 19);
    let crs = &aml[VIRTIO_DEVICE_AML_LEN - 23..];
    assert_eq!(&crs[..4], [0x86, 9, 0, 1], "Memory32Fixed, read-write");
    assert_eq!(u32::from_le_bytes(crs[4..8].try_into().unwrap()), 0xFEB0_3000);
    assert_eq!(u32::from_le_bytes(crs[8..12].try_into().unwrap()), 0x1000);
    assert_eq!(&crs[12..17], [0x89, 6, 0, 0x01, 1], "Extended Interrupt: consumer, level, high, exclusive, one");
    assert_eq!(u32::from_le_bytes(crs[17..21].try_into().unwrap()), 19);
    assert_eq!(&crs[21..], [0x79, 0], "end tag");
    assert_eq!(aml[VIRTIO_DEVICE_AML_LEN - 23 - 4..VIRTIO_DEVICE_AML_LEN - 23], [0x11, 26, 0x0A, 23]);
}

#[test]
fn more_virtio_slots_than_the_board_has_are_refused() {
    let layout = MemLayout::new(16 << 20);
    let mut mem = VecMemory::new(layout.ram_size as usize);
    let config = AcpiConfig { virtio_slots: 9, ..CONFIG };
    assert_eq!(write_acpi_tables(&mut mem, &layout, &config), Err(LoadError::BadVirtioSlots { count: 9 }));
}

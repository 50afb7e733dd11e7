//! The RSDP's address in the boot information of each protocol.
use super::images::{bzimage, mb_elf, pvh_vmlinux, BzOpts};
use crate::loader::bzimage::zp;
use crate::loader::elf::Class;
use crate::loader::layout::BOOT_INFO_ADDR;
use crate::loader::pvh::si;
use crate::loader::testutil::u64_at;
use crate::loader::{load, set_acpi_rsdp, write_acpi_tables, AcpiConfig, ImageKind, MemLayout};
use guest_x86::mem::VecMemory;

fn loaded(image: &[u8]) -> (VecMemory, ImageKind) {
    let layout = MemLayout::new(64 << 20);
    let mut mem = VecMemory::new(layout.ram_size as usize);
    let (kind, _) = load(&mut mem, &layout, image, None, b"console=ttyS0").expect("image loads");
    let rsdp = write_acpi_tables(&mut mem, &layout, &AcpiConfig { vcpus: 2, ioapic_id: 2, virtio_slots: 0 }).unwrap();
    set_acpi_rsdp(&mut mem, kind, rsdp).unwrap();
    (mem, kind)
}

#[test]
fn bzimage_boot_params_carry_the_rsdp_address() {
    let (mem, kind) = loaded(&bzimage(&BzOpts::default()));
    assert_eq!(kind, ImageKind::BzImage);
    assert_eq!(u64_at(&mem, BOOT_INFO_ADDR + zp::ACPI_RSDP_ADDR), 0xF_0000);
}

#[test]
fn pvh_start_info_carries_the_rsdp_address() {
    let (mem, kind) = loaded(&pvh_vmlinux());
    assert_eq!(kind, ImageKind::Pvh);
    assert_eq!(u64_at(&mem, BOOT_INFO_ADDR + si::RSDP_PADDR), 0xF_0000);
}

#[test]
fn multiboot_info_is_left_alone_and_the_rsdp_is_in_the_bios_area() {
    let layout = MemLayout::new(64 << 20);
    let mut mem = VecMemory::new(layout.ram_size as usize);
    let image = mb_elf(Class::Elf32);
    load(&mut mem, &layout, &image, None, b"").unwrap();
    let before = mem.0[BOOT_INFO_ADDR as usize..][..0x1000].to_vec();
    set_acpi_rsdp(&mut mem, ImageKind::Multiboot, 0xF_0000).unwrap();
    assert_eq!(mem.0[BOOT_INFO_ADDR as usize..][..0x1000], before[..]);
}

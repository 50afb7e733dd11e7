//! PVH: segments at p_paddr, hvm_start_info, module list, memory map and
//! the 32-bit entry state.

use super::images::{pvh_elf_with, pvh_vmlinux, PVH_DATA, PVH_END, PVH_ENTRY, PVH_TEXT};
use super::{assert_flat_protected32, assert_gdt_backs_state, assert_memmap_matches_e820, MIB};
use crate::loader::elf::build::{elf, note, Seg};
use crate::loader::elf::Class;
use crate::loader::layout::{BOOT_INFO_ADDR, MEMMAP_ADDR, MODLIST_ADDR, STRINGS_ADDR};
use crate::loader::pvh::{pvh_entry, si};
use crate::loader::testutil::{bytes, c_string, pattern, u32_at, u64_at, SparseMemory};
use crate::loader::{load_pvh, EntryState, LoadError, MemLayout};
use guest_x86::mem::VecMemory;

const SI: u64 = BOOT_INFO_ADDR;

fn load(image: &[u8], initrd: Option<&[u8]>, cmdline: &[u8]) -> (VecMemory, Result<EntryState, LoadError>) {
    let mut mem = VecMemory::new(32 * MIB as usize);
    let r = load_pvh(&mut mem, &MemLayout::new(32 * MIB), image, initrd, cmdline);
    (mem, r)
}

#[test]
fn segments_land_at_physical_addresses_with_bss_zeroed() {
    let mut mem = VecMemory::new(32 * MIB as usize);
    mem.0[PVH_TEXT as usize..PVH_END as usize].fill(0xEE);
    load_pvh(&mut mem, &MemLayout::new(32 * MIB), &pvh_vmlinux(), None, b"").unwrap();
    assert_eq!(bytes(&mem, PVH_TEXT, 0x2000), pattern(0x2000, 1));
    assert_eq!(bytes(&mem, PVH_TEXT + 0x2000, 0x1000), vec![0; 0x1000]);
    assert_eq!(bytes(&mem, PVH_DATA, 0x800), pattern(0x800, 2));
    assert_eq!(bytes(&mem, PVH_DATA + 0x800, 0x800), vec![0; 0x800]);
}

#[test]
fn entry_state_is_flat_protected_mode_at_note_entry_with_ebx_start_info() {
    let (mem, r) = load(&pvh_vmlinux(), None, b"");
    let s = r.unwrap();
    assert_flat_protected32(&s);
    assert_eq!(s.rip, PVH_ENTRY);
    assert_eq!(s.rbx, SI);
    assert_gdt_backs_state(&mem, &s);
}

#[test]
fn start_info_fields_describe_cmdline_initrd_and_memmap() {
    let initrd = pattern(0x1800, 8);
    let (mem, r) = load(&pvh_vmlinux(), Some(&initrd), b"console=ttyS0");
    r.unwrap();
    assert_eq!(u32_at(&mem, SI + si::MAGIC), 0x336E_C578);
    assert_eq!(u32_at(&mem, SI + si::VERSION), 1);
    assert_eq!(u32_at(&mem, SI + si::FLAGS), 0);
    assert_eq!(u32_at(&mem, SI + si::NR_MODULES), 1);
    assert_eq!(u64_at(&mem, SI + si::MODLIST_PADDR), MODLIST_ADDR);
    assert_eq!(u64_at(&mem, SI + si::CMDLINE_PADDR), STRINGS_ADDR);
    assert_eq!(u64_at(&mem, SI + si::RSDP_PADDR), 0);
    assert_eq!(u64_at(&mem, SI + si::MEMMAP_PADDR), MEMMAP_ADDR);
    assert_eq!(c_string(&mem, STRINGS_ADDR), b"console=ttyS0");

    let initrd_addr = 32 * MIB - 0x2000;
    assert_eq!(u64_at(&mem, MODLIST_ADDR), initrd_addr);
    assert_eq!(u64_at(&mem, MODLIST_ADDR + 8), 0x1800);
    assert_eq!(u64_at(&mem, MODLIST_ADDR + 16), 0, "module cmdline_paddr");
    assert_eq!(u64_at(&mem, MODLIST_ADDR + 24), 0, "reserved");
    assert_eq!(bytes(&mem, initrd_addr, initrd.len()), initrd);

    let entries = u32_at(&mem, SI + si::MEMMAP_ENTRIES) as u64;
    assert_memmap_matches_e820(&mem, &MemLayout::new(32 * MIB), MEMMAP_ADDR, entries, 24, 0);
    for i in 0..entries {
        assert_eq!(u32_at(&mem, MEMMAP_ADDR + 24 * i + 20), 0, "reserved field");
    }
}

#[test]
fn without_initrd_there_are_no_modules() {
    let (mem, r) = load(&pvh_vmlinux(), None, b"");
    r.unwrap();
    assert_eq!(u32_at(&mem, SI + si::NR_MODULES), 0);
    assert_eq!(u64_at(&mem, SI + si::MODLIST_PADDR), 0);
    assert_eq!(c_string(&mem, STRINGS_ADDR), b"");
}

#[test]
fn four_byte_note_descriptor_and_elf32_kernels_work() {
    for class in [Class::Elf32, Class::Elf64] {
        let image = pvh_elf_with(class, &(PVH_ENTRY as u32).to_le_bytes());
        assert_eq!(pvh_entry(&image), Ok(PVH_ENTRY));
        let (_, r) = load(&image, None, b"");
        assert_eq!(r.unwrap().rip, PVH_ENTRY);
    }
}

#[test]
fn three_gib_guest_gets_initrd_at_top_and_full_memmap() {
    let ram = 3 << 30;
    let mut mem = SparseMemory::new(ram);
    let layout = MemLayout::new(ram);
    load_pvh(&mut mem, &layout, &pvh_vmlinux(), Some(&[1, 2, 3]), b"").unwrap();
    assert_eq!(u64_at(&mem, MODLIST_ADDR), ram - 0x1000);
    let entries = u32_at(&mem, SI + si::MEMMAP_ENTRIES) as u64;
    assert_memmap_matches_e820(&mem, &layout, MEMMAP_ADDR, entries, 24, 0);
}

// --- Errors ---

#[test]
fn elf_without_pvh_note_is_rejected() {
    let text = pattern(0x100, 1);
    let notes = note(b"Xen\0", 6, b"linux\0");
    let (image, _) = elf(Class::Elf64, PVH_TEXT, &[Seg::load(PVH_TEXT, &text, 0x100), Seg::note(&notes)], &[]);
    assert_eq!(load(&image, None, b"").1, Err(LoadError::NoPvhNote));
}

#[test]
fn pvh_note_owned_by_another_vendor_does_not_count() {
    let text = pattern(0x100, 1);
    let notes = note(b"Xe\0", 18, &PVH_ENTRY.to_le_bytes());
    let (image, _) = elf(Class::Elf64, PVH_TEXT, &[Seg::load(PVH_TEXT, &text, 0x100), Seg::note(&notes)], &[]);
    assert_eq!(pvh_entry(&image), Err(LoadError::NoPvhNote));
}

#[test]
fn pvh_note_with_odd_descriptor_size_is_rejected() {
    let image = pvh_elf_with(Class::Elf64, &[0; 6]);
    assert_eq!(load(&image, None, b"").1, Err(LoadError::BadPvhNote { descsz: 6 }));
}

#[test]
fn pvh_entry_above_4gib_is_rejected() {
    let image = pvh_elf_with(Class::Elf64, &0x1_0000_0000u64.to_le_bytes());
    assert_eq!(load(&image, None, b"").1, Err(LoadError::EntryAbove4G { entry: 0x1_0000_0000 }));
}

#[test]
fn pvh_entry_outside_loaded_segments_is_rejected() {
    let image = pvh_elf_with(Class::Elf64, &0x200_0000u64.to_le_bytes());
    assert_eq!(load(&image, None, b"").1, Err(LoadError::EntryOutsideImage { entry: 0x200_0000 }));
}

#[test]
fn segment_beyond_ram_is_out_of_range() {
    let mut mem = VecMemory::new(16 * MIB as usize);
    assert_eq!(
        load_pvh(&mut mem, &MemLayout::new(16 * MIB), &pvh_vmlinux(), None, b""),
        Err(LoadError::SegmentOutOfRange { index: 0, paddr: PVH_TEXT, memsz: 0x3000 })
    );
}

#[test]
fn initrd_larger_than_free_ram_is_rejected() {
    let initrd = vec![0u8; (32 * MIB - PVH_END) as usize + 1];
    assert_eq!(
        load(&pvh_vmlinux(), Some(&initrd), b"").1,
        Err(LoadError::InitrdTooLarge { size: 32 * MIB - PVH_END + 1, available: 32 * MIB - PVH_END })
    );
}

#[test]
fn non_x86_elf_is_rejected() {
    let mut image = pvh_vmlinux();
    image[18] = 183; // EM_AARCH64
    assert!(matches!(load(&image, None, b"").1, Err(LoadError::BadElfHeader { .. })));
}

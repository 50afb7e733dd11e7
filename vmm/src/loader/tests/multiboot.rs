//! Multiboot v1: ELF32, ELF64 and a.out-kludge kernels, the MBI, modules,
//! mmap, the entry state, and every refusal.

use super::images::{
    aout_fields, mb_aout, mb_aout_with, mb_elf, mb_header, AOUT_BSS_END, AOUT_ENTRY, AOUT_FILE_LEN, AOUT_LOAD, MB_DATA,
    MB_END, MB_ENTRY, MB_TEXT,
};
use super::{assert_flat_protected32, assert_gdt_backs_state, assert_memmap_matches_e820, MIB};
use crate::loader::elf::build::{elf, Seg};
use crate::loader::elf::Class;
use crate::loader::layout::{BOOT_INFO_ADDR, MEMMAP_ADDR, MODLIST_ADDR};
use crate::loader::multiboot::{find_header, mbi, MAX_MODULES};
use crate::loader::testutil::{bytes, c_string, pattern, u32_at};
use crate::loader::{load_multiboot, EntryState, LoadError, MemLayout, Module};
use guest_x86::mem::VecMemory;

const MBI: u64 = BOOT_INFO_ADDR;

fn load(image: &[u8], cmdline: &[u8], modules: &[Module<'_>]) -> (VecMemory, Result<EntryState, LoadError>) {
    let mut mem = VecMemory::new(16 * MIB as usize);
    let r = load_multiboot(&mut mem, &MemLayout::new(16 * MIB), image, cmdline, modules);
    (mem, r)
}

#[test]
fn elf32_and_elf64_segments_land_at_paddr_with_bss_zeroed() {
    for class in [Class::Elf32, Class::Elf64] {
        let mut mem = VecMemory::new(16 * MIB as usize);
        mem.0[MB_TEXT as usize..MB_END as usize].fill(0xEE);
        let s = load_multiboot(&mut mem, &MemLayout::new(16 * MIB), &mb_elf(class), b"", &[]).unwrap();
        assert_eq!(bytes(&mem, MB_TEXT, 0x1800), pattern(0x1800, 3), "{class:?}");
        assert_eq!(bytes(&mem, MB_TEXT + 0x1800, 0x800), vec![0; 0x800]);
        assert_eq!(bytes(&mem, MB_DATA, 0x100), pattern(0x100, 4));
        assert_eq!(bytes(&mem, MB_DATA + 0x100, 0xF00), vec![0; 0xF00]);
        assert_eq!(s.rip, MB_ENTRY);
    }
}

#[test]
fn entry_state_has_multiboot_magic_in_eax_and_mbi_in_ebx() {
    let (mem, r) = load(&mb_elf(Class::Elf32), b"", &[]);
    let s = r.unwrap();
    assert_flat_protected32(&s);
    assert_eq!(s.rax, 0x2BAD_B002);
    assert_eq!(s.rbx, MBI);
    assert_gdt_backs_state(&mem, &s);
}

#[test]
fn elf64_entry_linked_high_is_translated_to_its_physical_address() {
    let text = pattern(0x100, 1);
    let mut seg = Seg::load(0x20_0000, &text, 0x100);
    seg.vaddr = 0xFFFF_FFFF_8020_0000;
    let (image, _) = elf(Class::Elf64, 0xFFFF_FFFF_8020_0040, &[seg], &mb_header(0, None));
    let (_, r) = load(&image, b"", &[]);
    assert_eq!(r.unwrap().rip, 0x20_0040);
}

#[test]
fn aout_kludge_loads_file_at_load_addr_and_zeroes_bss() {
    let image = mb_aout();
    let mut mem = VecMemory::new(16 * MIB as usize);
    mem.0[AOUT_LOAD as usize..AOUT_BSS_END as usize].fill(0xEE);
    let s = load_multiboot(&mut mem, &MemLayout::new(16 * MIB), &image, b"", &[]).unwrap();
    assert_eq!(bytes(&mem, AOUT_LOAD as u64, AOUT_FILE_LEN), image);
    let bss = (AOUT_BSS_END - AOUT_LOAD) as usize - AOUT_FILE_LEN;
    assert_eq!(bytes(&mem, (AOUT_LOAD as usize + AOUT_FILE_LEN) as u64, bss), vec![0; bss]);
    assert_eq!(s.rip, AOUT_ENTRY as u64);
}

#[test]
fn aout_kludge_with_zero_end_fields_loads_to_end_of_file_without_bss() {
    let mut f = aout_fields();
    f[2] = 0;
    f[3] = 0;
    let image = mb_aout_with(f);
    let (mem, r) = load(&image, b"", &[]);
    r.unwrap();
    assert_eq!(bytes(&mem, AOUT_LOAD as u64, AOUT_FILE_LEN), image);
}

#[test]
fn aout_kludge_takes_precedence_over_elf_headers() {
    // An ELF64 (which QEMU only boots with the kludge) whose program header
    // says 0x200000 but whose kludge loads the whole file at 0x300000.
    let text = pattern(0x100, 1);
    let header_probe = elf(Class::Elf64, 0, &[Seg::load(0x20_0000, &text, 0x100)], &[0; 32]);
    let header_offset = header_probe.1 as u32;
    let len = header_probe.0.len() as u32;
    let base = 0x30_0000u32;
    let kludge = [base + header_offset, base, base + len, base + len + 0x1000, base + len - 8];
    let (image, _) = elf(Class::Elf64, 0, &[Seg::load(0x20_0000, &text, 0x100)], &mb_header(0x1_0000, Some(kludge)));
    let (mem, r) = load(&image, b"", &[]);
    assert_eq!(r.unwrap().rip, (base + len - 8) as u64);
    assert_eq!(bytes(&mem, base as u64, image.len()), image);
    assert_eq!(bytes(&mem, 0x20_0000, 0x100), vec![0; 0x100]);
}

#[test]
fn mbi_reports_memory_cmdline_modules_mmap_and_loader_name() {
    let (mem, r) = load(&mb_elf(Class::Elf32), b"/kernel arg=1", &[]);
    r.unwrap();
    assert_eq!(u32_at(&mem, MBI + mbi::FLAGS), 0x24D, "mem, cmdline, mods, mmap, name");
    assert_eq!(u32_at(&mem, MBI + mbi::MEM_LOWER), 512);
    assert_eq!(u32_at(&mem, MBI + mbi::MEM_UPPER), 15 * 1024);
    let cmdline = u32_at(&mem, MBI + mbi::CMDLINE) as u64;
    assert_eq!(c_string(&mem, cmdline), b"/kernel arg=1");
    let name = u32_at(&mem, MBI + mbi::BOOT_LOADER_NAME) as u64;
    assert_eq!(c_string(&mem, name), b"Certivisor");
    assert_eq!(u32_at(&mem, MBI + mbi::MODS_COUNT), 0);
    assert_eq!(u32_at(&mem, MBI + mbi::MMAP_ADDR) as u64, MEMMAP_ADDR);
    let len = u32_at(&mem, MBI + mbi::MMAP_LENGTH) as u64;
    assert_eq!(len % 24, 0);
    assert_memmap_matches_e820(&mem, &MemLayout::new(16 * MIB), MEMMAP_ADDR, len / 24, 24, 4);
    for i in 0..len / 24 {
        assert_eq!(u32_at(&mem, MEMMAP_ADDR + 24 * i), 20, "mmap entry size field");
    }
}

#[test]
fn modules_are_page_aligned_after_the_kernel_with_their_command_lines() {
    let a = pattern(0x1801, 10);
    let b = pattern(0x10, 11);
    let mods = [
        Module { data: &a, cmdline: b"initrd.img" },
        Module { data: &[], cmdline: b"" },
        Module { data: &b, cmdline: b"mod b" },
    ];
    let (mem, r) = load(&mb_elf(Class::Elf64), b"", &mods);
    r.unwrap();
    assert_eq!(u32_at(&mem, MBI + mbi::MODS_COUNT), 3);
    assert_eq!(u32_at(&mem, MBI + mbi::MODS_ADDR) as u64, MODLIST_ADDR);
    let entry = |i: u64, f: u64| u32_at(&mem, MODLIST_ADDR + 16 * i + 4 * f) as u64;
    assert_eq!((entry(0, 0), entry(0, 1)), (MB_END, MB_END + 0x1801));
    assert_eq!((entry(1, 0), entry(1, 1)), (MB_END + 0x2000, MB_END + 0x2000));
    assert_eq!((entry(2, 0), entry(2, 1)), (MB_END + 0x2000, MB_END + 0x2010));
    assert_eq!(c_string(&mem, entry(0, 2)), b"initrd.img");
    assert_eq!(c_string(&mem, entry(1, 2)), b"");
    assert_eq!(c_string(&mem, entry(2, 2)), b"mod b");
    assert_eq!(entry(0, 3), 0);
    assert_eq!(bytes(&mem, MB_END, a.len()), a);
    assert_eq!(bytes(&mem, MB_END + 0x2000, b.len()), b);
}

#[test]
fn header_anywhere_aligned_in_first_8_kib_is_found() {
    let mut image = vec![0u8; 0x3000];
    let h = mb_header(0x1_0000, Some([0x10_1FE0, 0x10_0000, 0x10_3000, 0, 0x10_0000]));
    image[0x1FE0..0x1FE0 + h.len()].copy_from_slice(&h);
    assert_eq!(find_header(&image).unwrap().offset, 0x1FE0);
    let (_, r) = load(&image, b"", &[]);
    assert_eq!(r.unwrap().rip, 0x10_0000);
}

// --- Errors ---

#[test]
fn image_without_header_is_rejected() {
    let (_, r) = load(&[0u8; 0x4000], b"", &[]);
    assert_eq!(r, Err(LoadError::NoMultibootHeader));
}

#[test]
fn header_past_8_kib_or_misaligned_is_not_found() {
    let h = mb_header(0, None);
    for at in [0x2000usize, 0x1FF6, 0x102] {
        let mut image = vec![0u8; 0x3000];
        image[at..at + h.len()].copy_from_slice(&h);
        assert_eq!(find_header(&image), Err(LoadError::NoMultibootHeader), "at {at:#x}");
    }
}

#[test]
fn header_with_bad_checksum_is_rejected() {
    let mut image = mb_elf(Class::Elf32);
    let at = find_header(&image).unwrap().offset as usize;
    let checksum = u32::from_le_bytes(image[at + 8..at + 12].try_into().unwrap());
    image[at + 8..at + 12].copy_from_slice(&checksum.wrapping_add(1).to_le_bytes());
    assert_eq!(find_header(&image), Err(LoadError::BadMultibootChecksum { offset: at as u64, sum: 1 }));
}

#[test]
fn unsupported_required_flags_are_rejected() {
    let mut image = vec![0u8; 0x100];
    image[..12].copy_from_slice(&mb_header(0x8, None));
    assert_eq!(find_header(&image), Err(LoadError::UnsupportedMultibootFlags { flags: 0x8 }));
    // Video mode (bit 2) and optional bits (16-31 besides the kludge) pass.
    image[..12].copy_from_slice(&mb_header(0x0002_0007, None));
    assert!(find_header(&image).is_ok());
}

#[test]
fn raw_binary_without_aout_kludge_is_rejected() {
    let mut image = vec![0u8; 0x100];
    image[..12].copy_from_slice(&mb_header(0x3, None));
    assert_eq!(load(&image, b"", &[]).1, Err(LoadError::NotElfNorAout));
}

#[test]
fn inconsistent_aout_kludge_fields_are_rejected() {
    let base = aout_fields();
    let cases: [([u32; 5], &str); 5] = [
        ([AOUT_LOAD - 0x100, AOUT_LOAD, base[2], base[3], base[4]], "load_addr is above header_addr"),
        (
            [AOUT_LOAD + 0x100, AOUT_LOAD, base[2], base[3], base[4]],
            "load_addr would start before the beginning of the file",
        ),
        ([base[0], base[1], AOUT_LOAD - 1, base[3], base[4]], "load_end_addr is below load_addr"),
        ([base[0], base[1], base[2], base[2] - 1, base[4]], "bss_end_addr is below load_end_addr"),
        ([base[0], base[1], base[2], base[3], base[2]], "entry_addr is outside [load_addr, load_end_addr)"),
    ];
    for (fields, reason) in cases {
        assert_eq!(load(&mb_aout_with(fields), b"", &[]).1, Err(LoadError::AoutKludgeInconsistent { reason }));
    }
}

#[test]
fn aout_load_end_past_end_of_file_is_truncated() {
    let mut f = aout_fields();
    f[2] += 0x10;
    assert!(matches!(load(&mb_aout_with(f), b"", &[]).1, Err(LoadError::Truncated { .. })));
}

#[test]
fn aout_kernel_reaching_past_ram_does_not_fit() {
    let mut f = aout_fields();
    f[3] = 0x100_1000;
    assert_eq!(
        load(&mb_aout_with(f), b"", &[]).1,
        Err(LoadError::KernelDoesNotFit { addr: AOUT_LOAD as u64, size: 0xF0_1000, ram_size: 16 * MIB })
    );
}

#[test]
fn elf64_entry_at_or_above_4gib_is_rejected() {
    let text = pattern(0x10, 1);
    let (image, _) = elf(Class::Elf64, 0x1_0000_0000, &[Seg::load(0x1_0000_0000, &text, 0x10)], &mb_header(0, None));
    assert_eq!(load(&image, b"", &[]).1, Err(LoadError::EntryAbove4G { entry: 0x1_0000_0000 }));
}

#[test]
fn too_many_modules_are_rejected() {
    let mods = vec![Module { data: &[], cmdline: b"" }; MAX_MODULES + 1];
    assert_eq!(
        load(&mb_elf(Class::Elf32), b"", &mods).1,
        Err(LoadError::TooManyModules { count: MAX_MODULES + 1, max: MAX_MODULES })
    );
}

#[test]
fn module_past_end_of_ram_does_not_fit() {
    let big = vec![0u8; (16 * MIB - MB_END) as usize + 1];
    let mods = [Module { data: &big, cmdline: b"" }];
    assert_eq!(
        load(&mb_elf(Class::Elf32), b"", &mods).1,
        Err(LoadError::ModuleDoesNotFit { index: 0, addr: MB_END, size: big.len() as u64 })
    );
}

#[test]
fn module_command_line_with_nul_is_rejected() {
    let mods = [Module { data: &[1], cmdline: b"a\0" }];
    assert_eq!(load(&mb_elf(Class::Elf32), b"", &mods).1, Err(LoadError::CmdlineContainsNul { offset: 1 }));
}

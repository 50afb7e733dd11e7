//! bzImage: where the kernel, zero page, command line and initrd land, and
//! every way a setup header can be refused.

use super::images::{bzimage, BzOpts, BZ_PAYLOAD_SEED};
use super::{assert_gdt_backs_state, MIB};
use crate::loader::bzimage::{hdr, zp, SetupHeader};
use crate::loader::entry::flat;
use crate::loader::layout::{e820_map, BOOT_INFO_ADDR, PML4_ADDR, STRINGS_ADDR};
use crate::loader::testutil::{bytes, c_string, pattern, u16_at, u32_at, u64_at, SparseMemory};
use crate::loader::{load_bzimage, CpuMode, LoadError, MemLayout};
use guest_x86::mem::VecMemory;

const ZP: u64 = BOOT_INFO_ADDR;

fn load_default(
    ram: u64,
    o: &BzOpts,
    initrd: Option<&[u8]>,
    cmdline: &[u8],
) -> (VecMemory, Result<crate::loader::EntryState, LoadError>) {
    let mut mem = VecMemory::new(ram as usize);
    let r = load_bzimage(&mut mem, &MemLayout::new(ram), &bzimage(o), initrd, cmdline);
    (mem, r)
}

#[test]
fn payload_lands_at_pref_address_and_entry_is_64bit_entry() {
    let o = BzOpts::default();
    let (mem, r) = load_default(32 * MIB, &o, None, b"console=ttyS0");
    let s = r.unwrap();
    assert_eq!(bytes(&mem, 0x100_0000, o.payload_len), pattern(o.payload_len, BZ_PAYLOAD_SEED));
    assert_eq!(s.rip, 0x100_0200);
    assert_eq!(s.rsi, ZP);
    assert_eq!(s.mode, CpuMode::Long64);
    assert_eq!(s.cr0, 0x8000_0011);
    assert_eq!(s.cr3, PML4_ADDR);
    assert_eq!(s.cr4, 0x20);
    assert_eq!(s.efer, 0x500);
    assert_eq!(s.rflags, 0x2, "interrupts disabled");
    assert_eq!(s.code, flat::CODE64);
    assert_eq!((s.code.selector, s.code.attrib), (0x10, 0xA9B));
    assert_eq!((s.data.selector, s.data.attrib), (0x18, 0xC93));
    assert_gdt_backs_state(&mem, &s);
}

#[test]
fn zero_page_holds_the_setup_header_with_loader_fields_filled_in() {
    let o = BzOpts::default();
    let image = bzimage(&o);
    let (mem, r) = load_default(32 * MIB, &o, None, b"");
    r.unwrap();
    let zp_hdr = bytes(&mem, ZP + 0x1F1, 0x26C - 0x1F1);
    let mut expected = image[0x1F1..0x26C].to_vec();
    let patched = [
        (hdr::TYPE_OF_LOADER, 1),
        (hdr::LOADFLAGS, 1),
        (hdr::CODE32_START, 4),
        (hdr::RAMDISK_IMAGE, 8),
        (hdr::HEAP_END_PTR, 2),
        (hdr::CMD_LINE_PTR, 4),
    ];
    for (at, len) in patched {
        let at = (at - 0x1F1) as usize;
        expected[at..at + len].copy_from_slice(&zp_hdr[at..at + len]);
    }
    assert_eq!(zp_hdr, expected, "unpatched header bytes are copied verbatim");
    assert_eq!(u16_at(&mem, ZP + 0x1FE), 0xAA55);
    assert_eq!(&bytes(&mem, ZP + 0x202, 4), b"HdrS");
    assert_eq!(bytes(&mem, ZP + hdr::TYPE_OF_LOADER, 1), [0xFF]);
    assert_eq!(bytes(&mem, ZP + hdr::LOADFLAGS, 1), [0x81], "LOADED_HIGH|CAN_USE_HEAP");
    assert_eq!(u16_at(&mem, ZP + hdr::HEAP_END_PTR), 0xFE00);
    assert_eq!(u32_at(&mem, ZP + hdr::CODE32_START), 0x100_0000);
    assert_eq!(bytes(&mem, ZP + 0x26C, 0x290 - 0x26C), vec![0; 0x290 - 0x26C]);
    assert_eq!(bytes(&mem, ZP, 0x1E8), vec![0; 0x1E8], "fields before e820_entries are zero");
}

#[test]
fn command_line_is_nul_terminated_at_cmd_line_ptr() {
    let (mem, r) = load_default(32 * MIB, &BzOpts::default(), None, b"console=ttyS0 quiet");
    r.unwrap();
    let ptr = u32_at(&mem, ZP + 0x228) as u64;
    assert_eq!(ptr, STRINGS_ADDR);
    assert_eq!(u32_at(&mem, ZP + zp::EXT_CMD_LINE_PTR), 0);
    assert_eq!(c_string(&mem, ptr), b"console=ttyS0 quiet");
}

#[test]
fn initrd_lands_page_aligned_at_top_of_ram() {
    let initrd = pattern(0x1234, 9);
    let (mem, r) = load_default(32 * MIB, &BzOpts::default(), Some(&initrd), b"");
    r.unwrap();
    let addr = 32 * MIB - 0x2000;
    assert_eq!(u32_at(&mem, ZP + 0x218) as u64, addr);
    assert_eq!(u32_at(&mem, ZP + 0x21C), 0x1234);
    assert_eq!(u32_at(&mem, ZP + zp::EXT_RAMDISK_IMAGE), 0);
    assert_eq!(u32_at(&mem, ZP + zp::EXT_RAMDISK_SIZE), 0);
    assert_eq!(bytes(&mem, addr, initrd.len()), initrd);
}

#[test]
fn initrd_ends_at_or_below_initrd_addr_max() {
    let o = BzOpts { initrd_addr_max: 0x17F_FFFF, ..BzOpts::default() };
    let initrd = pattern(0x3000, 1);
    let (mem, r) = load_default(32 * MIB, &o, Some(&initrd), b"");
    r.unwrap();
    assert_eq!(u32_at(&mem, ZP + 0x218), 0x180_0000 - 0x3000);
}

#[test]
fn no_initrd_leaves_ramdisk_fields_zero() {
    for initrd in [None, Some(&[][..])] {
        let (mem, r) = load_default(32 * MIB, &BzOpts::default(), initrd, b"");
        r.unwrap();
        assert_eq!(u32_at(&mem, ZP + 0x218), 0);
        assert_eq!(u32_at(&mem, ZP + 0x21C), 0);
    }
}

#[test]
fn e820_table_in_zero_page_matches_layout() {
    let (mem, r) = load_default(32 * MIB, &BzOpts::default(), None, b"");
    r.unwrap();
    let (map, n) = e820_map(&MemLayout::new(32 * MIB));
    assert_eq!(bytes(&mem, ZP + 0x1E8, 1), [n as u8]);
    for (i, e) in map[..n].iter().enumerate() {
        let at = ZP + 0x2D0 + 20 * i as u64;
        assert_eq!(u64_at(&mem, at), e.addr, "entry {i} addr");
        assert_eq!(u64_at(&mem, at + 8), e.size, "entry {i} size");
        assert_eq!(u32_at(&mem, at + 16), e.kind as u32, "entry {i} type");
    }
    assert_eq!(u64_at(&mem, ZP + 0x2D0 + 20 * n as u64), 0);
}

#[test]
fn relocatable_kernel_that_misses_pref_address_goes_to_aligned_1mib() {
    // 16 MiB of RAM: pref_address 16 MiB does not fit, 2 MiB does.
    let o = BzOpts::default();
    let (mem, r) = load_default(16 * MIB, &o, None, b"");
    let s = r.unwrap();
    assert_eq!(s.rip, 0x20_0200);
    assert_eq!(u32_at(&mem, ZP + hdr::CODE32_START), 0x20_0000);
    assert_eq!(bytes(&mem, 0x20_0000, o.payload_len), pattern(o.payload_len, BZ_PAYLOAD_SEED));
}

#[test]
fn setup_sects_zero_means_four() {
    let o = BzOpts { setup_sects_field: 0, setup_sects: 4, ..BzOpts::default() };
    let (mem, r) = load_default(32 * MIB, &o, None, b"");
    r.unwrap();
    assert_eq!(bytes(&mem, 0x100_0000, o.payload_len), pattern(o.payload_len, BZ_PAYLOAD_SEED));
    let h = SetupHeader::parse(&bzimage(&o)).unwrap();
    assert_eq!(h.setup_size, 5 * 512);
}

#[test]
fn setup_size_follows_setup_sects() {
    let o = BzOpts { setup_sects_field: 30, setup_sects: 30, ..BzOpts::default() };
    let (mem, r) = load_default(32 * MIB, &o, None, b"");
    r.unwrap();
    assert_eq!(bytes(&mem, 0x100_0000, o.payload_len), pattern(o.payload_len, BZ_PAYLOAD_SEED));
}

#[test]
fn three_gib_guest_puts_initrd_below_2gib_initrd_addr_max() {
    let ram = 3 << 30;
    let mut mem = SparseMemory::new(ram);
    let initrd = pattern(0x10_0000, 7);
    let s = load_bzimage(&mut mem, &MemLayout::new(ram), &bzimage(&BzOpts::default()), Some(&initrd), b"x").unwrap();
    assert_eq!(s.rip, 0x100_0200);
    assert_eq!(u32_at(&mem, ZP + 0x218), 0x8000_0000 - 0x10_0000);
    assert_eq!(bytes(&mem, 0x8000_0000 - 0x10_0000, 16), initrd[..16]);
    let (map, n) = e820_map(&MemLayout::new(ram));
    assert_eq!(u64_at(&mem, ZP + 0x2D0 + 20 * (n as u64 - 1) + 8), map[n - 1].size);
}

// --- Errors ---

fn load_err(o: &BzOpts) -> LoadError {
    load_default(32 * MIB, o, None, b"").1.unwrap_err()
}

#[test]
fn bad_boot_flag_is_rejected() {
    let mut k = bzimage(&BzOpts::default());
    k[0x1FE] = 0;
    let mut mem = VecMemory::new(32 * MIB as usize);
    assert_eq!(
        load_bzimage(&mut mem, &MemLayout::new(32 * MIB), &k, None, b""),
        Err(LoadError::BadBootFlag { found: 0xAA00 })
    );
}

#[test]
fn bad_hdrs_magic_is_rejected() {
    let mut k = bzimage(&BzOpts::default());
    k[0x205] = b's';
    assert_eq!(SetupHeader::parse(&k), Err(LoadError::BadSetupHeaderMagic { found: 0x7372_6448 }));
}

#[test]
fn protocol_older_than_2_12_is_rejected() {
    let e = load_err(&BzOpts { version: 0x020B, ..BzOpts::default() });
    assert_eq!(e, LoadError::UnsupportedProtocolVersion { version: 0x020B, minimum: 0x020C });
}

#[test]
fn implausible_setup_header_length_is_rejected() {
    for jump_len in [0x00, 0x65, 0x8F] {
        let e = load_err(&BzOpts { jump_len, ..BzOpts::default() });
        assert_eq!(e, LoadError::BadSetupHeaderLength { end: 0x202 + jump_len as u64 });
    }
}

#[test]
fn zimage_without_loaded_high_is_rejected() {
    let e = load_err(&BzOpts { loadflags: 0, ..BzOpts::default() });
    assert_eq!(e, LoadError::NotLoadedHigh);
}

#[test]
fn kernel_without_xlf_kernel_64_is_rejected() {
    let e = load_err(&BzOpts { xloadflags: 0x0002, ..BzOpts::default() });
    assert_eq!(e, LoadError::No64BitEntry);
}

#[test]
fn non_relocatable_kernel_that_misses_pref_address_is_rejected() {
    let o = BzOpts { relocatable: false, ..BzOpts::default() };
    assert_eq!(
        load_default(16 * MIB, &o, None, b"").1,
        Err(LoadError::KernelDoesNotFit { addr: 0x100_0000, size: 0x10_0000, ram_size: 16 * MIB })
    );
    let low = BzOpts { pref_address: 0x1_0000, ..o };
    assert_eq!(load_default(16 * MIB, &low, None, b"").1, Err(LoadError::NotRelocatable { pref_address: 0x1_0000 }));
}

#[test]
fn non_power_of_two_kernel_alignment_is_rejected_when_relocating() {
    let o = BzOpts { kernel_alignment: 0x30_0000, ..BzOpts::default() };
    assert_eq!(load_default(16 * MIB, &o, None, b"").1, Err(LoadError::BadKernelAlignment { alignment: 0x30_0000 }));
}

#[test]
fn kernel_larger_than_ram_does_not_fit() {
    let o = BzOpts { init_size: 0x200_0000, ..BzOpts::default() };
    assert_eq!(
        load_default(32 * MIB, &o, None, b"").1,
        Err(LoadError::KernelDoesNotFit { addr: 0x20_0000, size: 0x200_0000, ram_size: 32 * MIB })
    );
}

#[test]
fn payload_shorter_than_syssize_is_truncated() {
    let mut k = bzimage(&BzOpts::default());
    k.truncate(k.len() - 16);
    let mut mem = VecMemory::new(32 * MIB as usize);
    assert_eq!(
        load_bzimage(&mut mem, &MemLayout::new(32 * MIB), &k, None, b""),
        Err(LoadError::Truncated {
            what: "protected-mode kernel",
            offset: 5 * 512,
            len: 0x3000,
            image_len: 5 * 512 + 0x3000 - 16
        })
    );
}

#[test]
fn image_cut_inside_setup_header_is_truncated() {
    let k = bzimage(&BzOpts::default());
    assert!(matches!(SetupHeader::parse(&k[..0x250]), Err(LoadError::Truncated { what: "setup header", .. })));
}

#[test]
fn command_line_longer_than_cmdline_size_is_rejected() {
    let o = BzOpts { cmdline_size: 10, ..BzOpts::default() };
    assert_eq!(load_default(32 * MIB, &o, None, b"0123456789A").1, Err(LoadError::CmdlineTooLong { len: 11, max: 10 }));
    assert!(load_default(32 * MIB, &o, None, b"0123456789").1.is_ok());
}

#[test]
fn command_line_with_nul_is_rejected() {
    assert_eq!(
        load_default(32 * MIB, &BzOpts::default(), None, b"a\0b").1,
        Err(LoadError::CmdlineContainsNul { offset: 1 })
    );
}

#[test]
fn initrd_that_would_overlap_kernel_is_too_large() {
    // Kernel occupies [16 MiB, 17 MiB); 32 MiB RAM leaves 15 MiB above it.
    let initrd = vec![0u8; 15 * MIB as usize + 1];
    assert_eq!(
        load_default(32 * MIB, &BzOpts::default(), Some(&initrd), b"").1,
        Err(LoadError::InitrdTooLarge { size: 15 * MIB + 1, available: 15 * MIB })
    );
}

#[test]
fn bad_layout_or_small_memory_is_rejected_before_parsing() {
    let k = bzimage(&BzOpts::default());
    let mut mem = VecMemory::new(16 * MIB as usize);
    assert_eq!(
        load_bzimage(&mut mem, &MemLayout::new(32 * MIB), &k, None, b""),
        Err(LoadError::GuestMemoryTooSmall { memory_size: 16 * MIB, ram_size: 32 * MIB })
    );
    assert_eq!(
        load_bzimage(&mut mem, &MemLayout::new(MIB), &k, None, b""),
        Err(LoadError::BadRamSize { ram_size: MIB })
    );
}

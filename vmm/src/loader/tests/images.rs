//! Synthetic kernel images for the tests.

use super::super::elf::build::{elf, note, Seg};
use super::super::elf::Class;
use super::super::multiboot::MULTIBOOT_HEADER_MAGIC;
use super::super::testutil::pattern;

/// Knobs of a fake bzImage.
#[derive(Debug, Clone)]
pub struct BzOpts {
    /// The setup_sects field as written.
    pub setup_sects_field: u8,
    /// How many setup sectors the file really has.
    pub setup_sects: usize,
    pub jump_len: u8,
    pub version: u16,
    pub loadflags: u8,
    pub xloadflags: u16,
    pub relocatable: bool,
    pub kernel_alignment: u32,
    pub pref_address: u64,
    pub init_size: u32,
    pub cmdline_size: u32,
    pub initrd_addr_max: u32,
    pub payload_len: usize,
}

impl Default for BzOpts {
    fn default() -> Self {
        BzOpts {
            setup_sects_field: 4,
            setup_sects: 4,
            jump_len: 0x6A,
            version: 0x020F,
            loadflags: 0x01,
            xloadflags: 0x0003,
            relocatable: true,
            kernel_alignment: 0x20_0000,
            pref_address: 0x100_0000,
            init_size: 0x10_0000,
            cmdline_size: 2047,
            initrd_addr_max: 0x7FFF_FFFF,
            payload_len: 0x3000,
        }
    }
}

pub const BZ_PAYLOAD_SEED: u8 = 0x5A;

/// A bzImage whose setup area is filled with 0xCC apart from the header,
/// followed by a patterned protected-mode payload.
pub fn bzimage(o: &BzOpts) -> Vec<u8> {
    let setup_size = (o.setup_sects + 1) * 512;
    let mut k = vec![0xCCu8; setup_size];
    k[0x1F1..0x290].fill(0);
    k[0x1F1] = o.setup_sects_field;
    k[0x1F4..0x1F8].copy_from_slice(&((o.payload_len / 16) as u32).to_le_bytes());
    k[0x1FA..0x1FC].copy_from_slice(&0xFFFFu16.to_le_bytes());
    k[0x1FE..0x200].copy_from_slice(&0xAA55u16.to_le_bytes());
    k[0x200] = 0xEB;
    k[0x201] = o.jump_len;
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k[0x206..0x208].copy_from_slice(&o.version.to_le_bytes());
    k[0x211] = o.loadflags;
    k[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
    k[0x22C..0x230].copy_from_slice(&o.initrd_addr_max.to_le_bytes());
    k[0x230..0x234].copy_from_slice(&o.kernel_alignment.to_le_bytes());
    k[0x234] = o.relocatable as u8;
    k[0x235] = 21;
    k[0x236..0x238].copy_from_slice(&o.xloadflags.to_le_bytes());
    k[0x238..0x23C].copy_from_slice(&o.cmdline_size.to_le_bytes());
    k[0x258..0x260].copy_from_slice(&o.pref_address.to_le_bytes());
    k[0x260..0x264].copy_from_slice(&o.init_size.to_le_bytes());
    k[0x264..0x268].copy_from_slice(&0x190u32.to_le_bytes());
    k.extend(pattern(o.payload_len, BZ_PAYLOAD_SEED));
    k
}

/// Where the fake vmlinux's segments go, and its entry.
pub const PVH_TEXT: u64 = 0x100_0000;
pub const PVH_DATA: u64 = 0x100_4000;
pub const PVH_ENTRY: u64 = 0x100_0100;
pub const PVH_END: u64 = 0x100_5000;

/// A vmlinux-like ELF: text linked high but loaded at 16 MiB with a bss
/// tail, a data segment, and a PT_NOTE segment with unrelated notes around
/// the PVH entry note (whose descriptor is `entry_desc`).
pub fn pvh_elf_with(class: Class, entry_desc: &[u8]) -> Vec<u8> {
    let text = pattern(0x2000, 1);
    let data = pattern(0x800, 2);
    let mut notes = note(b"GNU\0", 3, &[0xAB; 20]);
    notes.extend(note(b"Xen\0", 6, b"linux\0"));
    notes.extend(note(b"Xen\0", 18, entry_desc));
    notes.extend(note(b"Linux\0", 18, &[1, 2, 3, 4]));
    let mut t = Seg::load(PVH_TEXT, &text, 0x3000);
    t.vaddr = if class == Class::Elf64 { 0xFFFF_FFFF_8100_0000 } else { 0xC100_0000 };
    let segs = [t, Seg::load(PVH_DATA, &data, 0x1000), Seg::note(&notes)];
    elf(class, t_entry(class), &segs, &[]).0
}

fn t_entry(class: Class) -> u64 {
    match class {
        Class::Elf64 => 0xFFFF_FFFF_8100_0000,
        Class::Elf32 => 0xC100_0000,
    }
}

pub fn pvh_vmlinux() -> Vec<u8> {
    pvh_elf_with(Class::Elf64, &PVH_ENTRY.to_le_bytes())
}

/// A multiboot header with the given flags (and a.out fields when bit 16
/// is set).
pub fn mb_header(flags: u32, aout: Option<[u32; 5]>) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(MULTIBOOT_HEADER_MAGIC.to_le_bytes());
    h.extend(flags.to_le_bytes());
    h.extend(0u32.wrapping_sub(MULTIBOOT_HEADER_MAGIC).wrapping_sub(flags).to_le_bytes());
    for f in aout.into_iter().flatten() {
        h.extend(f.to_le_bytes());
    }
    h
}

pub const MB_TEXT: u64 = 0x10_0000;
pub const MB_DATA: u64 = 0x10_3000;
pub const MB_ENTRY: u64 = 0x10_0010;
pub const MB_END: u64 = 0x10_4000;

/// A multiboot ELF kernel: text (with a bss tail) and data segments, the
/// header right after the program headers.
pub fn mb_elf(class: Class) -> Vec<u8> {
    let text = pattern(0x1800, 3);
    let data = pattern(0x100, 4);
    let segs = [Seg::load(MB_TEXT, &text, 0x2000), Seg::load(MB_DATA, &data, 0x1000)];
    elf(class, MB_ENTRY, &segs, &mb_header(0x3, None)).0
}

/// The a.out kludge image: the file is loaded whole at 0x100000, the header
/// sits at file offset 0x20, bss runs to 0x103000, entry at 0x100100.
pub const AOUT_LOAD: u32 = 0x10_0000;
pub const AOUT_FILE_LEN: usize = 0x1000;
pub const AOUT_BSS_END: u32 = 0x10_3000;
pub const AOUT_ENTRY: u32 = 0x10_0100;

pub fn aout_fields() -> [u32; 5] {
    [AOUT_LOAD + 0x20, AOUT_LOAD, AOUT_LOAD + AOUT_FILE_LEN as u32, AOUT_BSS_END, AOUT_ENTRY]
}

pub fn mb_aout_with(fields: [u32; 5]) -> Vec<u8> {
    let mut f = pattern(AOUT_FILE_LEN, 5);
    let h = mb_header(0x1_0003, Some(fields));
    f[0x20..0x20 + h.len()].copy_from_slice(&h);
    f
}

pub fn mb_aout() -> Vec<u8> {
    mb_aout_with(aout_fields())
}

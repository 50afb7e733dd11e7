//! Host tests of the loaders against synthetic images (and the real Debian
//! kernel when `guest-images/out` has been built).

mod acpi;
mod aout_model;
mod bzimage;
mod bzimage_model;
mod detect;
mod elf_model;
mod errors;
mod fuzz;
mod images;
mod multiboot;
mod pvh;
mod real_images;

use super::entry::flat;
use super::layout::{e820_map, MemLayout};
use super::testutil::{u32_at, u64_at};
use super::EntryState;
use guest_x86::mem::GuestMemory;

pub const MIB: u64 = 1 << 20;

/// Checks that the GDT in guest memory holds the descriptors of the
/// state's CS, DS and TR at their selectors.
pub fn assert_gdt_backs_state(mem: &impl GuestMemory, s: &EntryState) {
    for seg in [s.code, s.data, s.tr] {
        let at = s.gdtr.base + seg.selector as u64;
        assert!(seg.selector as u64 + 7 <= s.gdtr.limit as u64);
        assert_eq!(u64_at(mem, at), seg.to_descriptor(), "GDT entry {:#x}", seg.selector);
    }
}

/// Checks the common flat 32-bit entry state (PVH, multiboot).
pub fn assert_flat_protected32(s: &EntryState) {
    assert_eq!(s.mode, super::CpuMode::Protected32);
    assert_eq!(s.cr0, 0x11, "CR0: PE and ET only");
    assert_eq!((s.cr3, s.cr4, s.efer), (0, 0, 0));
    assert_eq!(s.rflags & (1 << 9), 0, "IF clear");
    assert_eq!(s.rflags & (1 << 17), 0, "VM clear");
    assert_eq!(s.code, flat::CODE32);
    assert_eq!((s.code.selector, s.code.attrib), (0x10, 0xC9B));
    assert_eq!((s.data.selector, s.data.attrib), (0x18, 0xC93));
    assert_eq!((s.code.base, s.code.limit), (0, 0xFFFF_FFFF));
    assert_eq!((s.data.base, s.data.limit), (0, 0xFFFF_FFFF));
    assert_eq!((s.tr.base, s.tr.limit, s.tr.attrib), (0, 0x67, 0x8B));
}

/// Checks a memory map written as `count` records of `stride` bytes
/// (address at `+addr_at`, then size, then type) against the e820 map.
pub fn assert_memmap_matches_e820(
    mem: &impl GuestMemory,
    layout: &MemLayout,
    table: u64,
    count: u64,
    stride: u64,
    addr_at: u64,
) {
    let (map, n) = e820_map(layout);
    assert_eq!(count, n as u64, "memory map entry count");
    for (i, e) in map[..n].iter().enumerate() {
        let at = table + stride * i as u64 + addr_at;
        assert_eq!(
            (u64_at(mem, at), u64_at(mem, at + 8), u32_at(mem, at + 16)),
            (e.addr, e.size, e.kind as u32),
            "memory map entry {i}"
        );
    }
}

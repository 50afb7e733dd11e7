//! PVH loader for an uncompressed kernel ELF (Linux's `vmlinux`), after
//! Xen's `arch-x86/hvm/start_info.h` ABI and its PVH boot convention.
//!
//! The kernel names its 32-bit entry point in an ELF note (owner "Xen",
//! type XEN_ELFNOTE_PHYS32_ENTRY). The loader copies the PT_LOAD segments
//! to their physical addresses, builds `hvm_start_info` (version 1, with
//! the e820 map as its memory map and the initrd as module 0) and enters
//! in flat 32-bit protected mode with EBX pointing at it.

use super::bytes::{u32_at, u64_at};
use super::elf::{contains_paddr, load_segments, Elf};
use super::entry::EntryState;
use super::error::LoadError;
use super::layout::{
    clear_boot_area, e820_map, place_initrd, MemLayout, StringArea, BOOT_INFO_ADDR, MEMMAP_ADDR, MODLIST_ADDR,
};
use guest_x86::mem::GuestMemory;

/// Note type of the PVH 32-bit physical entry point.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// Note owner, with its NUL as stored in the note.
pub const XEN_NOTE_NAME: &[u8] = b"Xen\0";
/// `hvm_start_info.magic`.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336E_C578;
/// The structure version written (1: has the memory map fields).
pub const HVM_START_INFO_VERSION: u32 = 1;

/// Offsets in `hvm_start_info`.
pub mod si {
    pub const MAGIC: u64 = 0x00;
    pub const VERSION: u64 = 0x04;
    pub const FLAGS: u64 = 0x08;
    pub const NR_MODULES: u64 = 0x0C;
    pub const MODLIST_PADDR: u64 = 0x10;
    pub const CMDLINE_PADDR: u64 = 0x18;
    pub const RSDP_PADDR: u64 = 0x20;
    pub const MEMMAP_PADDR: u64 = 0x28;
    pub const MEMMAP_ENTRIES: u64 = 0x30;
    pub const SIZE: usize = 0x38;
    /// `hvm_modlist_entry`: paddr, size, cmdline_paddr, reserved.
    pub const MODLIST_ENTRY_SIZE: u64 = 32;
    /// `hvm_memmap_table_entry`: addr, size, type, reserved.
    pub const MEMMAP_ENTRY_SIZE: u64 = 24;
}

/// The physical entry point named by the image's PVH note.
pub fn pvh_entry(image: &[u8]) -> Result<u64, LoadError> {
    let elf = Elf::parse(image)?;
    elf.check_x86_machine()?;
    note_entry(&elf)
}

fn note_entry(elf: &Elf<'_>) -> Result<u64, LoadError> {
    let desc = elf.find_note(XEN_NOTE_NAME, XEN_ELFNOTE_PHYS32_ENTRY)?.ok_or(LoadError::NoPvhNote)?;
    let entry = match desc.len() {
        4 => u32_at(desc, 0, "PVH note")? as u64,
        8 => u64_at(desc, 0, "PVH note")?,
        n => return Err(LoadError::BadPvhNote { descsz: n as u32 }),
    };
    if entry > u32::MAX as u64 {
        return Err(LoadError::EntryAbove4G { entry });
    }
    Ok(entry)
}

/// Loads an ELF kernel through its PVH entry, with an optional initrd (as
/// module 0) and command line. Returns the 32-bit entry state with EBX =
/// the `hvm_start_info` address. On error guest memory may be partly
/// written.
pub fn load_pvh<M: GuestMemory + ?Sized>(
    mem: &mut M,
    layout: &MemLayout,
    kernel: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &[u8],
) -> Result<EntryState, LoadError> {
    layout.check_memory(mem)?;
    let elf = Elf::parse(kernel)?;
    elf.check_x86_machine()?;
    let entry = note_entry(&elf)?;

    clear_boot_area(mem)?;
    let cmdline_addr = StringArea::new().push(mem, cmdline, u64::MAX)?;
    let extent = load_segments(&elf, mem, layout)?;
    if !contains_paddr(&elf, entry)? {
        return Err(LoadError::EntryOutsideImage { entry });
    }

    let mut info = [0u8; si::SIZE];
    let mut put = |at: u64, bytes: &[u8]| info[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    put(si::MAGIC, &XEN_HVM_START_MAGIC_VALUE.to_le_bytes());
    put(si::VERSION, &HVM_START_INFO_VERSION.to_le_bytes());
    put(si::FLAGS, &0u32.to_le_bytes());
    put(si::CMDLINE_PADDR, &cmdline_addr.to_le_bytes());
    put(si::RSDP_PADDR, &0u64.to_le_bytes());

    if let Some(initrd) = initrd.filter(|i| !i.is_empty()) {
        let size = initrd.len() as u64;
        let addr = place_initrd(layout, size, extent.end, u64::MAX)?;
        mem.write(addr, initrd)?;
        mem.write_u64(MODLIST_ADDR, addr)?;
        mem.write_u64(MODLIST_ADDR + 8, size)?;
        mem.write_u64(MODLIST_ADDR + 16, 0)?;
        mem.write_u64(MODLIST_ADDR + 24, 0)?;
        put(si::NR_MODULES, &1u32.to_le_bytes());
        put(si::MODLIST_PADDR, &MODLIST_ADDR.to_le_bytes());
    }

    let (map, n) = e820_map(layout);
    for (i, e) in map[..n].iter().enumerate() {
        let at = MEMMAP_ADDR + si::MEMMAP_ENTRY_SIZE * i as u64;
        mem.write_u64(at, e.addr)?;
        mem.write_u64(at + 8, e.size)?;
        mem.write_u32(at + 16, e.kind as u32)?;
        mem.write_u32(at + 20, 0)?;
    }
    put(si::MEMMAP_PADDR, &MEMMAP_ADDR.to_le_bytes());
    put(si::MEMMAP_ENTRIES, &(n as u32).to_le_bytes());
    mem.write(BOOT_INFO_ADDR, &info)?;

    let mut state = EntryState::protected32(entry);
    state.rbx = BOOT_INFO_ADDR;
    state.write_gdt(mem)?;
    Ok(state)
}

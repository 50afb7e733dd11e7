//! Multiboot (version 0.6.96) kernel loader, loading images the way QEMU's
//! `-kernel` does: by the a.out kludge address fields when the header has
//! flag bit 16, otherwise by the ELF32 or ELF64 program headers (physical
//! addresses). Modules are placed page-aligned after the kernel.

use super::bytes::{align_up, slice, u32_at};
use super::elf::{is_elf, load_segments, physical_entry, Elf, Extent};
use super::entry::EntryState;
use super::error::LoadError;
use super::layout::{
    clear_boot_area, e820_map, is_usable, MemLayout, StringArea, BOOT_AREA_START, BOOT_INFO_ADDR, HIGH_MEM_START,
    MEMMAP_ADDR, MODLIST_ADDR, MODLIST_SIZE,
};
use guest_x86::mem::GuestMemory;

/// Magic of the header in the OS image.
pub const MULTIBOOT_HEADER_MAGIC: u32 = 0x1BAD_B002;
/// Magic the loader leaves in EAX.
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// The header must lie entirely in the image's first 8 KiB.
pub const HEADER_SEARCH_LIMIT: usize = 8192;

/// Header flag: align modules on 4 KiB boundaries (always done).
pub const HF_PAGE_ALIGN: u32 = 1 << 0;
/// Header flag: provide mem_* fields (always done).
pub const HF_MEMORY_INFO: u32 = 1 << 1;
/// Header flag: video mode table requested. Accepted, and ignored: the
/// guest stays in text mode, which the specification allows.
pub const HF_VIDEO_MODE: u32 = 1 << 2;
/// Header flag: the a.out kludge address fields are valid.
pub const HF_AOUT_KLUDGE: u32 = 1 << 16;
/// Bits 0-15 are requirements; these are the ones this loader meets.
const HF_REQUIRED_SUPPORTED: u32 = HF_PAGE_ALIGN | HF_MEMORY_INFO | HF_VIDEO_MODE;

/// MBI flags.
pub const MBI_MEMORY: u32 = 1 << 0;
pub const MBI_CMDLINE: u32 = 1 << 2;
pub const MBI_MODS: u32 = 1 << 3;
pub const MBI_MMAP: u32 = 1 << 6;
pub const MBI_LOADER_NAME: u32 = 1 << 9;

/// Offsets in the multiboot information structure.
pub mod mbi {
    pub const FLAGS: u64 = 0;
    pub const MEM_LOWER: u64 = 4;
    pub const MEM_UPPER: u64 = 8;
    pub const CMDLINE: u64 = 16;
    pub const MODS_COUNT: u64 = 20;
    pub const MODS_ADDR: u64 = 24;
    pub const MMAP_LENGTH: u64 = 44;
    pub const MMAP_ADDR: u64 = 48;
    pub const BOOT_LOADER_NAME: u64 = 64;
    /// Through the VBE and framebuffer fields, all left zero.
    pub const SIZE: usize = 116;
    /// A module entry: mod_start, mod_end, string, reserved.
    pub const MODULE_ENTRY_SIZE: u64 = 16;
    /// An mmap entry: size (of the rest, 20), base_addr, length, type.
    pub const MMAP_ENTRY_SIZE: u64 = 24;
}

/// The name put in `boot_loader_name`.
pub const BOOT_LOADER_NAME: &[u8] = b"Certivisor";
/// How many modules fit in the module list page.
pub const MAX_MODULES: usize = (MODLIST_SIZE / mbi::MODULE_ENTRY_SIZE) as usize;

/// A boot module: its contents and its command line (no NUL).
#[derive(Debug, Clone, Copy)]
pub struct Module<'a> {
    pub data: &'a [u8],
    pub cmdline: &'a [u8],
}

/// The a.out kludge address fields (header offsets 12-28).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AoutKludge {
    pub header_addr: u32,
    pub load_addr: u32,
    pub load_end_addr: u32,
    pub bss_end_addr: u32,
    pub entry_addr: u32,
}

/// A multiboot header found in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultibootHeader {
    /// File offset of the magic.
    pub offset: u64,
    pub flags: u32,
    /// Present when flag bit 16 is set.
    pub aout: Option<AoutKludge>,
}

/// Finds the first valid multiboot header: 4-byte aligned, within the
/// first 8 KiB, with a checksum that makes magic + flags + checksum zero.
pub fn find_header(image: &[u8]) -> Result<MultibootHeader, LoadError> {
    let limit = image.len().min(HEADER_SEARCH_LIMIT) as u64;
    let mut bad_checksum = None;
    let mut offset = 0u64;
    while offset + 12 <= limit {
        let what = "multiboot header";
        if u32_at(image, offset, what)? == MULTIBOOT_HEADER_MAGIC {
            let flags = u32_at(image, offset + 4, what)?;
            let checksum = u32_at(image, offset + 8, what)?;
            let sum = MULTIBOOT_HEADER_MAGIC.wrapping_add(flags).wrapping_add(checksum);
            if sum == 0 {
                return parse_header(image, offset, flags);
            }
            bad_checksum.get_or_insert(LoadError::BadMultibootChecksum { offset, sum });
        }
        offset += 4;
    }
    Err(bad_checksum.unwrap_or(LoadError::NoMultibootHeader))
}

fn parse_header(image: &[u8], offset: u64, flags: u32) -> Result<MultibootHeader, LoadError> {
    let unsupported = flags & 0xFFFF & !HF_REQUIRED_SUPPORTED;
    if unsupported != 0 {
        return Err(LoadError::UnsupportedMultibootFlags { flags });
    }
    let aout = if flags & HF_AOUT_KLUDGE != 0 {
        let what = "multiboot a.out kludge fields";
        if offset + 32 > HEADER_SEARCH_LIMIT as u64 {
            return Err(LoadError::AoutKludgeInconsistent { reason: "header extends past the first 8 KiB" });
        }
        let field = |i: u64| u32_at(image, offset + 12 + 4 * i, what);
        Some(AoutKludge {
            header_addr: field(0)?,
            load_addr: field(1)?,
            load_end_addr: field(2)?,
            bss_end_addr: field(3)?,
            entry_addr: field(4)?,
        })
    } else {
        None
    };
    Ok(MultibootHeader { offset, flags, aout })
}

/// Loads text+data and zeroes bss as the a.out kludge fields say. Returns
/// the kernel's extent and entry point.
fn load_aout<M: GuestMemory + ?Sized>(
    mem: &mut M,
    layout: &MemLayout,
    image: &[u8],
    header_offset: u64,
    k: &AoutKludge,
) -> Result<(Extent, u64), LoadError> {
    let bad = |reason| LoadError::AoutKludgeInconsistent { reason };
    let (header_addr, load_addr) = (k.header_addr as u64, k.load_addr as u64);
    if load_addr > header_addr {
        return Err(bad("load_addr is above header_addr"));
    }
    let load_offset = header_offset
        .checked_sub(header_addr - load_addr)
        .ok_or(bad("load_addr would start before the beginning of the file"))?;
    // The bytes from load_offset to the end of the file (checks that
    // load_offset is inside the file).
    let rest = image.len() as u64 - slice(image, 0, load_offset, "a.out kludge text+data")?.len() as u64;
    let load_end = match k.load_end_addr {
        0 => load_addr + rest,
        end if (end as u64) < load_addr => return Err(bad("load_end_addr is below load_addr")),
        end => end as u64,
    };
    let text = slice(image, load_offset, load_end - load_addr, "a.out kludge text+data")?;
    let bss_end = match k.bss_end_addr {
        0 => load_end,
        end if (end as u64) < load_end => return Err(bad("bss_end_addr is below load_end_addr")),
        end => end as u64,
    };
    let entry = k.entry_addr as u64;
    if !(load_addr..load_end).contains(&entry) {
        return Err(bad("entry_addr is outside [load_addr, load_end_addr)"));
    }
    let size = bss_end - load_addr;
    if !is_usable(layout, load_addr, size) {
        return Err(LoadError::KernelDoesNotFit { addr: load_addr, size, ram_size: layout.ram_size });
    }
    mem.write(load_addr, text)?;
    mem.zero(load_end, bss_end - load_end)?;
    Ok((Extent { start: load_addr, end: bss_end }, entry))
}

/// Loads an ELF32 or ELF64 kernel by its program headers. Returns its
/// extent and physical entry point, which must be below 4 GiB.
fn load_elf<M: GuestMemory + ?Sized>(
    mem: &mut M,
    layout: &MemLayout,
    image: &[u8],
) -> Result<(Extent, u64), LoadError> {
    let elf = Elf::parse(image)?;
    elf.check_x86_machine()?;
    let entry = physical_entry(&elf)?;
    if entry > u32::MAX as u64 {
        return Err(LoadError::EntryAbove4G { entry });
    }
    let extent = load_segments(&elf, mem, layout)?;
    Ok((extent, entry))
}

/// Loads a multiboot kernel with its command line and modules, builds the
/// multiboot information structure, and returns the 32-bit entry state
/// (EAX = 0x2BADB002, EBX = the MBI). On error guest memory may be partly
/// written.
pub fn load_multiboot<M: GuestMemory + ?Sized>(
    mem: &mut M,
    layout: &MemLayout,
    image: &[u8],
    cmdline: &[u8],
    modules: &[Module<'_>],
) -> Result<EntryState, LoadError> {
    layout.check_memory(mem)?;
    let header = find_header(image)?;
    if modules.len() > MAX_MODULES {
        return Err(LoadError::TooManyModules { count: modules.len(), max: MAX_MODULES });
    }

    clear_boot_area(mem)?;
    let mut strings = StringArea::new();
    let cmdline_addr = strings.push(mem, cmdline, u64::MAX)?;
    let name_addr = strings.push(mem, BOOT_LOADER_NAME, u64::MAX)?;

    let (kernel, entry) = match (&header.aout, is_elf(image)) {
        (Some(k), _) => load_aout(mem, layout, image, header.offset, k)?,
        (None, true) => load_elf(mem, layout, image)?,
        (None, false) => return Err(LoadError::NotElfNorAout),
    };

    let mut next = align_up(kernel.end.max(HIGH_MEM_START), 0x1000).unwrap_or(u64::MAX);
    for (index, m) in modules.iter().enumerate() {
        let size = m.data.len() as u64;
        let does_not_fit = LoadError::ModuleDoesNotFit { index, addr: next, size };
        let end = next.checked_add(size).ok_or(does_not_fit)?;
        if !is_usable(layout, next, size) {
            return Err(does_not_fit);
        }
        let string = strings.push(mem, m.cmdline, u64::MAX)?;
        mem.write(next, m.data)?;
        let at = MODLIST_ADDR + mbi::MODULE_ENTRY_SIZE * index as u64;
        mem.write_u32(at, next as u32)?;
        mem.write_u32(at + 4, end as u32)?;
        mem.write_u32(at + 8, string as u32)?;
        mem.write_u32(at + 12, 0)?;
        next = align_up(end, 0x1000).unwrap_or(u64::MAX);
    }

    let (map, n) = e820_map(layout);
    for (i, e) in map[..n].iter().enumerate() {
        let at = MEMMAP_ADDR + mbi::MMAP_ENTRY_SIZE * i as u64;
        mem.write_u32(at, (mbi::MMAP_ENTRY_SIZE - 4) as u32)?;
        mem.write_u64(at + 4, e.addr)?;
        mem.write_u64(at + 12, e.size)?;
        mem.write_u32(at + 20, e.kind as u32)?;
    }

    let mut info = [0u8; mbi::SIZE];
    let mut put = |at: u64, v: u64| info[at as usize..at as usize + 4].copy_from_slice(&(v as u32).to_le_bytes());
    put(mbi::FLAGS, (MBI_MEMORY | MBI_CMDLINE | MBI_MODS | MBI_MMAP | MBI_LOADER_NAME) as u64);
    put(mbi::MEM_LOWER, BOOT_AREA_START / 1024);
    put(mbi::MEM_UPPER, (layout.ram_size - HIGH_MEM_START) / 1024);
    put(mbi::CMDLINE, cmdline_addr);
    put(mbi::MODS_COUNT, modules.len() as u64);
    put(mbi::MODS_ADDR, MODLIST_ADDR);
    put(mbi::MMAP_LENGTH, mbi::MMAP_ENTRY_SIZE * n as u64);
    put(mbi::MMAP_ADDR, MEMMAP_ADDR);
    put(mbi::BOOT_LOADER_NAME, name_addr);
    mem.write(BOOT_INFO_ADDR, &info)?;

    let mut state = EntryState::protected32(entry);
    state.rax = MULTIBOOT_BOOTLOADER_MAGIC as u64;
    state.rbx = BOOT_INFO_ADDR;
    state.write_gdt(mem)?;
    Ok(state)
}

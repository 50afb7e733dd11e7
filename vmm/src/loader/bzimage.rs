//! Linux bzImage loader, after the x86 boot protocol
//! (Documentation/arch/x86/boot.rst), entering the kernel at its 64-bit
//! entry point.
//!
//! The real-mode setup code is not used: only the protected-mode kernel is
//! copied, to its preferred address if it fits there and otherwise (when it
//! is relocatable) to the first `kernel_alignment` boundary above 1 MiB. The
//! zero page gets a copy of the setup header with the loader's fields
//! filled in, the e820 map, and pointers to the command line and initrd.

use super::bytes::{align_up, slice, u16_at, u32_at, u64_at, u8_at};
use super::entry::{write_identity_map, EntryState};
use super::error::LoadError;
use super::layout::{
    clear_boot_area, e820_map, is_usable, place_initrd, MemLayout, StringArea, BOOT_INFO_ADDR, HIGH_MEM_START,
};
use guest_x86::mem::GuestMemory;

/// Offsets of setup-header fields, both in the image and in `boot_params`.
pub mod hdr {
    pub const SETUP_SECTS: u64 = 0x1F1;
    pub const SYSSIZE: u64 = 0x1F4;
    pub const BOOT_FLAG: u64 = 0x1FE;
    /// The second byte of the jump instruction gives the header length.
    pub const JUMP_OFFSET: u64 = 0x201;
    pub const HEADER: u64 = 0x202;
    pub const VERSION: u64 = 0x206;
    pub const TYPE_OF_LOADER: u64 = 0x210;
    pub const LOADFLAGS: u64 = 0x211;
    pub const CODE32_START: u64 = 0x214;
    pub const RAMDISK_IMAGE: u64 = 0x218;
    pub const RAMDISK_SIZE: u64 = 0x21C;
    pub const HEAP_END_PTR: u64 = 0x224;
    pub const CMD_LINE_PTR: u64 = 0x228;
    pub const INITRD_ADDR_MAX: u64 = 0x22C;
    pub const KERNEL_ALIGNMENT: u64 = 0x230;
    pub const RELOCATABLE_KERNEL: u64 = 0x234;
    pub const XLOADFLAGS: u64 = 0x236;
    pub const CMDLINE_SIZE: u64 = 0x238;
    pub const PREF_ADDRESS: u64 = 0x258;
    pub const INIT_SIZE: u64 = 0x260;
}

/// Offsets of `boot_params` fields outside the setup header.
pub mod zp {
    /// The RSDP's address (read by Linux since 4.20, whatever the setup
    /// header's version).
    pub const ACPI_RSDP_ADDR: u64 = 0x070;
    pub const EXT_RAMDISK_IMAGE: u64 = 0x0C0;
    pub const EXT_RAMDISK_SIZE: u64 = 0x0C4;
    pub const EXT_CMD_LINE_PTR: u64 = 0x0C8;
    pub const E820_ENTRIES: u64 = 0x1E8;
    pub const E820_TABLE: u64 = 0x2D0;
    pub const E820_TABLE_MAX: usize = 128;
    pub const SIZE: usize = 0x1000;
}

/// "HdrS", little-endian.
pub const HDRS_MAGIC: u32 = 0x5372_6448;
pub const BOOT_FLAG_MAGIC: u16 = 0xAA55;
/// 2.12: the first version with xloadflags (and so XLF_KERNEL_64).
pub const MIN_PROTOCOL_VERSION: u16 = 0x020C;
/// loadflags: the protected-mode code is loaded at 0x100000.
pub const LOADED_HIGH: u8 = 1 << 0;
/// loadflags: heap_end_ptr is valid.
pub const CAN_USE_HEAP: u8 = 1 << 7;
/// xloadflags: the kernel has the 64-bit entry point at +0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// The loader type for "undefined/other".
pub const TYPE_OF_LOADER_UNDEFINED: u8 = 0xFF;
/// Offset of the 64-bit entry point from the load address.
pub const ENTRY_64_OFFSET: u64 = 0x200;
/// heap_end_ptr as conventional loaders set it (end of a 64 KiB real-mode
/// segment, minus 0x200). Unused on the 64-bit path.
const HEAP_END: u16 = 0xFE00;
/// The setup header's end must lie in [HEADER_MIN_END, HEADER_MAX_END]:
/// 2.12 fields run to 0x268, and `boot_params` has room up to 0x290.
const HEADER_MIN_END: u64 = 0x268;
const HEADER_MAX_END: u64 = 0x290;

/// The setup-header fields the loader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupHeader {
    /// Size of the real-mode part (boot sector + setup), in bytes.
    pub setup_size: u64,
    /// Size of the protected-mode part, from syssize (0 if unset).
    pub syssize_bytes: u64,
    pub version: u16,
    /// Offset just past the setup header.
    pub header_end: u64,
    pub loadflags: u8,
    pub initrd_addr_max: u32,
    pub kernel_alignment: u32,
    pub relocatable: bool,
    pub xloadflags: u16,
    pub cmdline_size: u32,
    pub pref_address: u64,
    pub init_size: u32,
}

impl SetupHeader {
    /// Reads and checks the setup header of a bzImage.
    pub fn parse(kernel: &[u8]) -> Result<Self, LoadError> {
        let what = "setup header";
        let boot_flag = u16_at(kernel, hdr::BOOT_FLAG, "boot sector")?;
        if boot_flag != BOOT_FLAG_MAGIC {
            return Err(LoadError::BadBootFlag { found: boot_flag });
        }
        let magic = u32_at(kernel, hdr::HEADER, what)?;
        if magic != HDRS_MAGIC {
            return Err(LoadError::BadSetupHeaderMagic { found: magic });
        }
        let version = u16_at(kernel, hdr::VERSION, what)?;
        if version < MIN_PROTOCOL_VERSION {
            return Err(LoadError::UnsupportedProtocolVersion { version, minimum: MIN_PROTOCOL_VERSION });
        }
        let header_end = 0x202 + u8_at(kernel, hdr::JUMP_OFFSET, what)? as u64;
        if !(HEADER_MIN_END..=HEADER_MAX_END).contains(&header_end) {
            return Err(LoadError::BadSetupHeaderLength { end: header_end });
        }
        slice(kernel, hdr::SETUP_SECTS, header_end - hdr::SETUP_SECTS, what)?;
        let loadflags = u8_at(kernel, hdr::LOADFLAGS, what)?;
        if loadflags & LOADED_HIGH == 0 {
            return Err(LoadError::NotLoadedHigh);
        }
        let xloadflags = u16_at(kernel, hdr::XLOADFLAGS, what)?;
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(LoadError::No64BitEntry);
        }
        let setup_sects = match u8_at(kernel, hdr::SETUP_SECTS, what)? {
            0 => 4,
            n => n as u64,
        };
        Ok(SetupHeader {
            setup_size: (setup_sects + 1) * 512,
            syssize_bytes: u32_at(kernel, hdr::SYSSIZE, what)? as u64 * 16,
            version,
            header_end,
            loadflags,
            initrd_addr_max: u32_at(kernel, hdr::INITRD_ADDR_MAX, what)?,
            kernel_alignment: u32_at(kernel, hdr::KERNEL_ALIGNMENT, what)?,
            relocatable: u8_at(kernel, hdr::RELOCATABLE_KERNEL, what)? != 0,
            xloadflags,
            cmdline_size: u32_at(kernel, hdr::CMDLINE_SIZE, what)?,
            pref_address: u64_at(kernel, hdr::PREF_ADDRESS, what)?,
            init_size: u32_at(kernel, hdr::INIT_SIZE, what)?,
        })
    }

    /// The protected-mode kernel: `syssize` paragraphs after the setup code
    /// (the rest of the file if syssize is 0).
    pub fn protected_mode_kernel<'a>(&self, kernel: &'a [u8]) -> Result<&'a [u8], LoadError> {
        let len = match self.syssize_bytes {
            0 => (kernel.len() as u64).saturating_sub(self.setup_size).max(1),
            n => n,
        };
        slice(kernel, self.setup_size, len, "protected-mode kernel")
    }

    /// Chooses where the protected-mode kernel goes: `need` bytes must be
    /// usable RAM from there.
    fn load_address(&self, layout: &MemLayout, need: u64) -> Result<u64, LoadError> {
        let fits = |addr: u64| addr >= HIGH_MEM_START && is_usable(layout, addr, need);
        let pref = self.pref_address;
        if fits(pref) {
            return Ok(pref);
        }
        let does_not_fit = |addr| LoadError::KernelDoesNotFit { addr, size: need, ram_size: layout.ram_size };
        if !self.relocatable {
            return Err(if pref >= HIGH_MEM_START {
                does_not_fit(pref)
            } else {
                LoadError::NotRelocatable { pref_address: pref }
            });
        }
        let alignment = self.kernel_alignment;
        if !alignment.is_power_of_two() {
            return Err(LoadError::BadKernelAlignment { alignment });
        }
        let addr = align_up(HIGH_MEM_START, (alignment as u64).max(0x1000)).ok_or(does_not_fit(HIGH_MEM_START))?;
        if fits(addr) {
            Ok(addr)
        } else {
            Err(does_not_fit(addr))
        }
    }
}

/// Loads a bzImage, its initrd and command line, and returns the 64-bit
/// entry state: long mode on an identity map of the low 4 GiB, RSI = the
/// zero page. On error guest memory may be partly written.
pub fn load_bzimage<M: GuestMemory + ?Sized>(
    mem: &mut M,
    layout: &MemLayout,
    kernel: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &[u8],
) -> Result<EntryState, LoadError> {
    layout.check_memory(mem)?;
    let h = SetupHeader::parse(kernel)?;
    let payload = h.protected_mode_kernel(kernel)?;
    let need = (h.init_size as u64).max(payload.len() as u64);
    let load_addr = h.load_address(layout, need)?;
    let initrd = initrd.filter(|i| !i.is_empty());
    let initrd_addr = match initrd {
        Some(i) => place_initrd(layout, i.len() as u64, load_addr + need, h.initrd_addr_max as u64 + 1)?,
        None => 0,
    };

    clear_boot_area(mem)?;
    let cmdline_addr = StringArea::new().push(mem, cmdline, h.cmdline_size as u64)?;
    mem.write(load_addr, payload)?;
    if let Some(i) = initrd {
        mem.write(initrd_addr, i)?;
    }

    let mut page = [0u8; zp::SIZE];
    let header = &kernel[hdr::SETUP_SECTS as usize..h.header_end as usize];
    page[hdr::SETUP_SECTS as usize..h.header_end as usize].copy_from_slice(header);
    let initrd_size = initrd.map_or(0, |i| i.len() as u64);
    let put32 = |page: &mut [u8; zp::SIZE], at: u64, v: u64| {
        page[at as usize..at as usize + 4].copy_from_slice(&(v as u32).to_le_bytes());
    };
    page[hdr::TYPE_OF_LOADER as usize] = TYPE_OF_LOADER_UNDEFINED;
    page[hdr::LOADFLAGS as usize] |= CAN_USE_HEAP;
    page[hdr::HEAP_END_PTR as usize..][..2].copy_from_slice(&HEAP_END.to_le_bytes());
    put32(&mut page, hdr::CODE32_START, load_addr);
    put32(&mut page, hdr::CMD_LINE_PTR, cmdline_addr);
    put32(&mut page, zp::EXT_CMD_LINE_PTR, cmdline_addr >> 32);
    put32(&mut page, hdr::RAMDISK_IMAGE, initrd_addr);
    put32(&mut page, zp::EXT_RAMDISK_IMAGE, initrd_addr >> 32);
    put32(&mut page, hdr::RAMDISK_SIZE, initrd_size);
    put32(&mut page, zp::EXT_RAMDISK_SIZE, initrd_size >> 32);
    let (map, n) = e820_map(layout);
    page[zp::E820_ENTRIES as usize] = n.min(zp::E820_TABLE_MAX) as u8;
    for (i, e) in map[..n].iter().take(zp::E820_TABLE_MAX).enumerate() {
        let at = zp::E820_TABLE as usize + 20 * i;
        page[at..at + 8].copy_from_slice(&e.addr.to_le_bytes());
        page[at + 8..at + 16].copy_from_slice(&e.size.to_le_bytes());
        page[at + 16..at + 20].copy_from_slice(&(e.kind as u32).to_le_bytes());
    }
    mem.write(BOOT_INFO_ADDR, &page)?;

    write_identity_map(mem)?;
    let mut state = EntryState::long64(load_addr + ENTRY_64_OFFSET);
    state.rsi = BOOT_INFO_ADDR;
    state.write_gdt(mem)?;
    Ok(state)
}

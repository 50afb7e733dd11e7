//! Guest loaders: put a kernel image, its initrd or modules and its command
//! line into guest RAM, build the boot information its protocol expects,
//! and say in which CPU state to enter it.
//!
//! Three protocols are supported:
//!
//! | image | loader | entry |
//! |---|---|---|
//! | Linux bzImage (boot protocol ≥ 2.12, XLF_KERNEL_64) | [`load_bzimage`] | 64-bit, paging on, RSI = zero page |
//! | ELF with a PVH note (Linux `vmlinux`) | [`load_pvh`] | 32-bit flat, paging off, EBX = `hvm_start_info` |
//! | Multiboot v1 kernel (a.out kludge, ELF32 or ELF64) | [`load_multiboot`] | 32-bit flat, paging off, EAX = 0x2BADB002, EBX = MBI |
//!
//! [`detect`] tells the formats apart and [`load`] dispatches on it.
//!
//! The loaders are pure: they touch guest RAM only through
//! [`GuestMemory`], never panic on malformed input (every read of the
//! image is bounds checked, all address arithmetic is checked), and return
//! a typed [`LoadError`]. They run unchanged in host tests against
//! `VecMemory`. The result is an [`EntryState`] that the VMM copies into
//! the VMCB. On error, guest memory may have been partly written and the
//! VM must not be started.
//!
//! # Guest-physical layout
//!
//! RAM runs from 0 to `ram_size` (2 MiB ..= 3.5 GiB, page aligned; the
//! default is 256 MiB). The loader's own structures live in a *boot area*
//! in conventional memory, which the e820 map marks reserved so that no
//! guest takes it for free RAM before it has read its boot information:
//!
//! | GPA | contents | e820 |
//! |---|---|---|
//! | `0x00000..0x80000` | free (real-mode IVT/BDA left zero) | usable |
//! | `0x80000` | GDT: null, -, 0x10 code, 0x18 data, 0x20 TSS (16 bytes) | reserved |
//! | `0x81000` | PML4 of the identity map (bzImage only) | reserved |
//! | `0x82000` | PDPT | reserved |
//! | `0x83000..0x87000` | 4 page directories, 2 MiB pages, identity-map [0, 4 GiB) | reserved |
//! | `0x87000` | `boot_params` / `hvm_start_info` / multiboot info | reserved |
//! | `0x88000` | PVH memmap table / multiboot mmap | reserved |
//! | `0x89000` | PVH module list / multiboot module list (≤ 256 modules) | reserved |
//! | `0x8A000..0x9A000` | NUL-terminated strings: command line, boot loader name, module command lines | reserved |
//! | `0x9FC00..0xA0000` | EBDA (empty) | reserved |
//! | `0xA0000..0xF0000` | legacy hole (VGA, option ROMs) | absent |
//! | `0xF0000..0x100000` | BIOS area: the ACPI RSDP and tables ([`acpi`]), when written | reserved |
//! | `0x100000..ram_size` | kernel, then initrd or modules | usable |
//!
//! - **bzImage:** the protected-mode kernel goes to `pref_address` if
//!   `[pref_address, + max(init_size, payload))` is usable RAM, else (when
//!   relocatable) to 1 MiB rounded up to `kernel_alignment`. The initrd goes
//!   page aligned at the top of RAM, below `min(ram_size, initrd_addr_max +
//!   1)` and above the kernel's `init_size` area.
//! - **PVH:** PT_LOAD segments go to their `p_paddr`; the initrd goes page
//!   aligned at the top of RAM, above the highest segment.
//! - **Multiboot:** the kernel goes where its a.out kludge fields or ELF
//!   `p_paddr`s say; modules follow it page aligned (from 1 MiB at least).
//!
//! Everything stays below 4 GiB, so the `ext_*` high halves are zero. RAM
//! above 4 GiB is not supported yet; [0xE000_0000, 4 GiB) is left for MMIO.

pub mod acpi;
mod bytes;
pub mod bzimage;
pub mod cmdline;
mod elf;
pub mod entry;
mod error;
pub mod layout;
pub mod multiboot;
pub mod pvh;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use acpi::{write_acpi_tables, AcpiConfig};
pub use bzimage::load_bzimage;
pub use cmdline::linux_cmdline;
pub use entry::{CpuMode, EntryState, Segment, TableRegister};
pub use error::LoadError;
pub use layout::{e820_map, E820Entry, E820Type, MemLayout, E820_MAX_ENTRIES};
pub use multiboot::{load_multiboot, Module};
pub use pvh::load_pvh;

use guest_x86::mem::GuestMemory;

/// The kinds of image the loaders understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// Linux bzImage: boot sector flag 0xAA55 and setup header "HdrS".
    BzImage,
    /// ELF with a XEN_ELFNOTE_PHYS32_ENTRY note.
    Pvh,
    /// An image with a multiboot v1 header magic in its first 8 KiB.
    Multiboot,
}

/// Guesses an image's format from its signatures, without validating it
/// fully (the loader reports what is wrong). A bzImage is recognised
/// first, then an ELF with a PVH note (preferred over a multiboot header in
/// the same ELF), then a multiboot header.
pub fn detect(image: &[u8]) -> Option<ImageKind> {
    let u16_at = |at| bytes::u16_at(image, at, "");
    let u32_at = |at| bytes::u32_at(image, at, "");
    if u16_at(bzimage::hdr::BOOT_FLAG) == Ok(bzimage::BOOT_FLAG_MAGIC)
        && u32_at(bzimage::hdr::HEADER) == Ok(bzimage::HDRS_MAGIC)
    {
        return Some(ImageKind::BzImage);
    }
    if let Ok(e) = elf::Elf::parse(image) {
        let note = e.find_note(pvh::XEN_NOTE_NAME, pvh::XEN_ELFNOTE_PHYS32_ENTRY);
        if matches!(note, Ok(Some(_))) {
            return Some(ImageKind::Pvh);
        }
    }
    match multiboot::find_header(image) {
        Ok(_)
        | Err(LoadError::BadMultibootChecksum { .. })
        | Err(LoadError::UnsupportedMultibootFlags { .. })
        | Err(LoadError::AoutKludgeInconsistent { .. })
        | Err(LoadError::Truncated { .. }) => Some(ImageKind::Multiboot),
        Err(_) => None,
    }
}

/// Detects the image's format and loads it. For a multiboot kernel the
/// initrd, if any, becomes module 0 with an empty command line.
pub fn load<M: GuestMemory + ?Sized>(
    mem: &mut M,
    layout: &MemLayout,
    image: &[u8],
    initrd: Option<Module<'_>>,
    cmdline: &[u8],
) -> Result<(ImageKind, EntryState), LoadError> {
    let kind = detect(image).ok_or(LoadError::UnknownImageFormat)?;
    let data = initrd.map(|m| m.data);
    let state = match kind {
        ImageKind::BzImage => load_bzimage(mem, layout, image, data, cmdline)?,
        ImageKind::Pvh => load_pvh(mem, layout, image, data, cmdline)?,
        // A multiboot kernel gets the initrd as its module 0, with the
        // module's own command line.
        ImageKind::Multiboot => load_multiboot(mem, layout, image, cmdline, initrd.as_slice())?,
    };
    Ok((kind, state))
}

/// Hands the guest the RSDP's address through the boot information the
/// loader of `kind` built in guest memory: `boot_params.acpi_rsdp_addr`
/// for a bzImage, `hvm_start_info.rsdp_paddr` for PVH. Multiboot v1 has no
/// such field; a multiboot kernel finds the RSDP by scanning the BIOS area,
/// as the others could. Call it after the image's loader.
pub fn set_acpi_rsdp<M: GuestMemory + ?Sized>(mem: &mut M, kind: ImageKind, rsdp: u64) -> Result<(), LoadError> {
    let field = match kind {
        ImageKind::BzImage => bzimage::zp::ACPI_RSDP_ADDR,
        ImageKind::Pvh => pvh::si::RSDP_PADDR,
        ImageKind::Multiboot => return Ok(()),
    };
    mem.write_u64(layout::BOOT_INFO_ADDR + field, rsdp)?;
    Ok(())
}

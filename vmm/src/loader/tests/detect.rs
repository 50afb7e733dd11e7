//! Format detection and the dispatching `load`.

use super::images::{bzimage, mb_aout, mb_elf, pvh_vmlinux, BzOpts};
use super::MIB;
use crate::loader::elf::build::{elf, note, Seg};
use crate::loader::elf::Class;
use crate::loader::layout::MODLIST_ADDR;
use crate::loader::multiboot::mbi;
use crate::loader::testutil::{bytes, u32_at};
use crate::loader::{detect, load, CpuMode, ImageKind, LoadError, MemLayout};
use guest_x86::mem::VecMemory;

use super::images::mb_header;

#[test]
fn detect_recognises_each_format() {
    assert_eq!(detect(&bzimage(&BzOpts::default())), Some(ImageKind::BzImage));
    assert_eq!(detect(&pvh_vmlinux()), Some(ImageKind::Pvh));
    assert_eq!(detect(&mb_elf(Class::Elf32)), Some(ImageKind::Multiboot));
    assert_eq!(detect(&mb_elf(Class::Elf64)), Some(ImageKind::Multiboot));
    assert_eq!(detect(&mb_aout()), Some(ImageKind::Multiboot));
}

#[test]
fn detect_rejects_unknown_and_tiny_images() {
    assert_eq!(detect(&[]), None);
    assert_eq!(detect(b"\x7fELF"), None);
    assert_eq!(detect(&[0u8; 0x1000]), None);
    let (plain_elf, _) = elf(Class::Elf64, 0x10_0000, &[Seg::load(0x10_0000, b"x", 1)], &[]);
    assert_eq!(detect(&plain_elf), None);
}

#[test]
fn detect_prefers_pvh_note_over_multiboot_header_in_the_same_elf() {
    let text = [0u8; 0x10];
    let notes = note(b"Xen\0", 18, &0x10_0000u32.to_le_bytes());
    let (image, _) =
        elf(Class::Elf64, 0x10_0000, &[Seg::load(0x10_0000, &text, 0x10), Seg::note(&notes)], &mb_header(0, None));
    assert_eq!(detect(&image), Some(ImageKind::Pvh));
}

#[test]
fn detect_still_names_a_broken_bzimage_so_load_can_say_why() {
    let image = bzimage(&BzOpts { version: 0x0200, ..BzOpts::default() });
    assert_eq!(detect(&image), Some(ImageKind::BzImage));
    let mut mem = VecMemory::new(32 * MIB as usize);
    assert!(matches!(
        load(&mut mem, &MemLayout::new(32 * MIB), &image, None, b""),
        Err(LoadError::UnsupportedProtocolVersion { .. })
    ));
}

#[test]
fn load_dispatches_on_the_detected_kind() {
    let layout = MemLayout::new(32 * MIB);
    let mut mem = VecMemory::new(32 * MIB as usize);
    let (kind, s) = load(&mut mem, &layout, &bzimage(&BzOpts::default()), None, b"").unwrap();
    assert_eq!((kind, s.mode), (ImageKind::BzImage, CpuMode::Long64));
    let (kind, s) = load(&mut mem, &layout, &pvh_vmlinux(), None, b"").unwrap();
    assert_eq!((kind, s.mode), (ImageKind::Pvh, CpuMode::Protected32));
    let (kind, s) = load(&mut mem, &layout, &mb_aout(), None, b"").unwrap();
    assert_eq!((kind, s.rax), (ImageKind::Multiboot, 0x2BAD_B002));
    assert_eq!(load(&mut mem, &layout, &[0u8; 64], None, b""), Err(LoadError::UnknownImageFormat));
}

#[test]
fn load_passes_initrd_to_multiboot_kernel_as_module_zero() {
    let layout = MemLayout::new(32 * MIB);
    let mut mem = VecMemory::new(32 * MIB as usize);
    let (_, s) = load(
        &mut mem,
        &layout,
        &mb_elf(Class::Elf32),
        Some(crate::loader::Module { data: b"INITRD", cmdline: b"" }),
        b"",
    )
    .unwrap();
    assert_eq!(u32_at(&mem, s.rbx + mbi::MODS_COUNT), 1);
    let start = u32_at(&mem, MODLIST_ADDR) as u64;
    assert_eq!(bytes(&mem, start, 6), b"INITRD");
}

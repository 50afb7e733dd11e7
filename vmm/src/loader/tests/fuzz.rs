//! Property tests: arbitrary, truncated or corrupted images never make a
//! loader panic, and a truncated image is always refused.

use crate::proptest_cases::cases;
use proptest::prelude::*;

use super::images::{bzimage, mb_aout, mb_elf, pvh_vmlinux, BzOpts};
use super::MIB;
use crate::loader::elf::Class;
use crate::loader::testutil::SparseMemory;
use crate::loader::{detect, load, load_bzimage, load_multiboot, load_pvh, LoadError, MemLayout, Module};

const RAM: u64 = 32 * MIB;

/// Runs `detect`, `load` and each loader on `image`; returns the results of
/// the bzImage, PVH and multiboot loaders, in that order.
fn run_all(image: &[u8]) -> [Result<(), LoadError>; 3] {
    let layout = MemLayout::new(RAM);
    let _ = detect(image);
    let mut mem = SparseMemory::new(RAM);
    let _ = load(&mut mem, &layout, image, Some(crate::loader::Module { data: b"initrd", cmdline: b"" }), b"cmd");
    let module = [Module { data: b"module", cmdline: b"m" }];
    [
        load_bzimage(&mut SparseMemory::new(RAM), &layout, image, Some(b"rd"), b"c").map(drop),
        load_pvh(&mut SparseMemory::new(RAM), &layout, image, Some(b"rd"), b"c").map(drop),
        load_multiboot(&mut SparseMemory::new(RAM), &layout, image, b"c", &module).map(drop),
    ]
}

fn valid_images() -> Vec<(usize, Vec<u8>)> {
    vec![
        (0, bzimage(&BzOpts::default())),
        (1, pvh_vmlinux()),
        (2, mb_elf(Class::Elf32)),
        (2, mb_elf(Class::Elf64)),
        (2, mb_aout()),
    ]
}

#[test]
fn valid_images_load_with_their_own_loader() {
    for (kind, image) in valid_images() {
        assert_eq!(run_all(&image)[kind], Ok(()), "image kind {kind}");
    }
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn random_bytes_never_panic(image in proptest::collection::vec(any::<u8>(), 0..0x3000)) {
        let _ = run_all(&image);
    }

    #[test]
    fn every_truncation_of_a_valid_image_is_refused(which in 0usize..5, cut in any::<prop::sample::Index>()) {
        let (kind, image) = valid_images().swap_remove(which);
        let cut = cut.index(image.len());
        let results = run_all(&image[..cut]);
        prop_assert!(results[kind].is_err(), "cut at {cut:#x} of image {which} loaded");
    }

    #[test]
    fn corrupted_headers_never_panic(
        which in 0usize..5,
        edits in proptest::collection::vec((0usize..0x400, any::<u8>()), 1..8),
    ) {
        let (_, mut image) = valid_images().swap_remove(which);
        for (at, v) in edits {
            let at = at % image.len();
            image[at] = v;
        }
        let _ = run_all(&image);
    }

    #[test]
    fn corrupted_header_words_never_panic(
        which in 0usize..5,
        edits in proptest::collection::vec((0usize..0x100, prop_oneof![
            Just(0u64), Just(u64::MAX), Just(0x8000_0000_0000_0000), Just(0xFFFF_FFFF),
            Just(0x1000), any::<u64>()]), 1..4),
    ) {
        // Overwrite aligned 8-byte words: big offsets, sizes and addresses.
        let (_, mut image) = valid_images().swap_remove(which);
        for (word, v) in edits {
            let at = (word * 8) % (image.len() - 8);
            image[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        let _ = run_all(&image);
    }

    #[test]
    fn random_tail_after_valid_headers_never_panics(
        which in 0usize..5,
        keep in 0usize..0x300,
        tail in proptest::collection::vec(any::<u8>(), 0..0x800),
    ) {
        let (_, image) = valid_images().swap_remove(which);
        let mut image = image[..keep.min(image.len())].to_vec();
        image.extend(tail);
        let _ = run_all(&image);
    }
}

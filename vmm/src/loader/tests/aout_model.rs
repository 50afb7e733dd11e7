//! The multiboot loader's a.out kludge (Multiboot 0.6.96 §3.1.3) against a
//! model of its address fields: random header, load, load-end, bss-end and
//! entry addresses around a valid image. The image loads exactly when the
//! fields are consistent (load_addr at or below header_addr and inside the
//! file, load_end_addr 0 or at or above load_addr and inside the file,
//! bss_end_addr 0 or at or above the load end, the entry inside the loaded
//! bytes) and the kernel lies in one RAM range; it then holds the file's
//! bytes from the load offset, a zeroed bss, and enters at entry_addr.
use proptest::prelude::*;

use super::images::{aout_fields, mb_aout_with, AOUT_FILE_LEN};
use super::MIB;
use crate::loader::layout::{BOOT_AREA_START, HIGH_MEM_START};
use crate::loader::testutil::{bytes, SparseMemory};
use crate::loader::{load_multiboot, LoadError, MemLayout};
use crate::proptest_cases::cases;

const RAM: u64 = 32 * MIB;
/// Where the test image's header sits in its file.
const HEADER_OFFSET: u64 = 0x20;

/// The loaded range `[load, load_end)`, bss end and entry the fields give,
/// or `None` when they must be refused.
fn model(fields: [u32; 5]) -> Option<(u64, u64, u64, u64)> {
    let [header, load, load_end, bss_end, entry] = fields.map(u64::from);
    let file = AOUT_FILE_LEN as u64;
    if load > header || header - load > HEADER_OFFSET {
        return None;
    }
    let offset = HEADER_OFFSET - (header - load);
    let load_end = match load_end {
        0 => load + (file - offset),
        end if end < load || end - load > file - offset => return None,
        end => end,
    };
    let bss_end = match bss_end {
        0 => load_end,
        end if end < load_end => return None,
        end => end,
    };
    if !(load..load_end).contains(&entry) {
        return None;
    }
    // One RAM range of the e820 map: below the boot area, or from 1 MiB.
    let in_ram = bss_end <= BOOT_AREA_START || (load >= HIGH_MEM_START && bss_end <= RAM);
    in_ram.then_some((offset, load, load_end, bss_end))
}

/// Fields around the valid image's: each a small step from a base, or any.
fn fields() -> impl Strategy<Value = [u32; 5]> {
    let base = prop_oneof![
        4 => Just(aout_fields()[1]),
        1 => Just(0x1000u32),
        1 => Just(BOOT_AREA_START as u32 - 0x800),
        1 => Just(RAM as u32 - 0x800),
        1 => any::<u32>(),
    ];
    let step = |lo: i32, hi: i32| prop_oneof![8 => lo..hi, 1 => any::<i32>()];
    // The entry a few bytes from the load address, or right at the load end.
    let entry = prop_oneof![step(-8, 0x1010).prop_map(|d| (false, d)), (-2i32..2).prop_map(|d| (true, d))];
    let load_end = prop_oneof![Just(None), step(-8, 0x1010).prop_map(Some)];
    (base, step(-8, 0x28), load_end, step(-8, 0x4000), any::<bool>(), entry).prop_map(
        |(load, dh, de, db, no_bss, (from_end, dentry))| {
            let load_end = de.map_or(0, |d| load.wrapping_add_signed(d));
            // With load_end_addr 0 the load runs to the end of the file.
            let file_rest = (AOUT_FILE_LEN as u64 - HEADER_OFFSET) as u32;
            let after = if load_end == 0 { load.wrapping_add(file_rest) } else { load_end };
            let bss_end = if no_bss { 0 } else { after.wrapping_add_signed(db) };
            let entry = if from_end { after } else { load }.wrapping_add_signed(dentry);
            [load.wrapping_add_signed(dh), load, load_end, bss_end, entry]
        },
    )
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn aout_kludge_loads_as_its_fields_say_or_is_refused(fields in fields()) {
        let image = mb_aout_with(fields);
        let mut mem = SparseMemory::new(RAM);
        let result = load_multiboot(&mut mem, &MemLayout::new(RAM), &image, b"", &[]);
        match (model(fields), result) {
            (None, Err(LoadError::AoutKludgeInconsistent { .. } | LoadError::KernelDoesNotFit { .. })) => {}
            // A load end past the file is read as a truncated image.
            (None, Err(LoadError::Truncated { .. })) => {}
            (Some((offset, load, load_end, bss_end)), Ok(state)) => {
                prop_assert_eq!(state.rip, u64::from(fields[4]));
                let text = &image[offset as usize..][..(load_end - load) as usize];
                prop_assert!(bytes(&mem, load, text.len()) == text, "text+data differ");
                prop_assert!(bytes(&mem, load_end, (bss_end - load_end) as usize).iter().all(|&b| b == 0));
            }
            (expected, seen) => {
                return Err(TestCaseError::fail(format!("fields {fields:x?}: model {expected:x?}, loader {seen:?}")));
            }
        }
    }
}

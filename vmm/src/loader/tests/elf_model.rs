//! The ELF segment loader (through PVH, which loads nothing else from the
//! image) against a model: random PT_LOAD segments, some placed outside
//! usable RAM, some overlapping. The image loads exactly when every
//! segment lies inside one RAM range of the e820 map (below the boot area,
//! or from 1 MiB to the end of RAM), and then guest memory holds each
//! segment's bytes and zeroed tail, later segments over earlier ones, with
//! the command line and initrd where the start info says.
use std::collections::BTreeMap;

use guest_x86::mem::GuestMemory;
use proptest::prelude::*;

use super::MIB;
use crate::loader::elf::build::{elf, note, Seg};
use crate::loader::elf::Class;
use crate::loader::layout::{BOOT_AREA_START, BOOT_INFO_ADDR, HIGH_MEM_START};
use crate::loader::pvh::{si, XEN_ELFNOTE_PHYS32_ENTRY, XEN_NOTE_NAME};
use crate::loader::testutil::{bytes, c_string, u32_at, u64_at, SparseMemory};
use crate::loader::{load_pvh, LoadError, MemLayout};
use crate::proptest_cases::cases;

const RAM: u64 = 16 * MIB;

#[derive(Debug, Clone)]
struct Segment {
    paddr: u64,
    data: Vec<u8>,
    bss: u64,
}

impl Segment {
    fn memsz(&self) -> u64 {
        self.data.len() as u64 + self.bss
    }
}

/// Where a segment starts: mostly where RAM is (often in one small window,
/// so that segments overlap), sometimes straddling the boot area, the PC
/// hole or the end of RAM.
fn paddr() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => HIGH_MEM_START..RAM - 0x1000,
        3 => HIGH_MEM_START..HIGH_MEM_START + 0x2000,
        2 => 0..BOOT_AREA_START,
        1 => BOOT_AREA_START - 0x800..HIGH_MEM_START + 0x800,
        1 => RAM - 0x1000..RAM + 0x1000,
    ]
}

fn segment() -> impl Strategy<Value = Segment> {
    (paddr(), prop::collection::vec(any::<u8>(), 0..0x600), 1u64..0x1000).prop_map(|(paddr, data, bss)| Segment {
        paddr,
        data,
        bss,
    })
}

/// The e820 map's RAM ranges, as the layout documents them.
fn in_ram(s: &Segment) -> bool {
    let end = s.paddr + s.memsz();
    end <= BOOT_AREA_START || (s.paddr >= HIGH_MEM_START && end <= RAM)
}

/// Each byte the segments cover, in file order, later ones winning.
fn model(segs: &[Segment]) -> BTreeMap<u64, u8> {
    let mut m = BTreeMap::new();
    for s in segs {
        for i in 0..s.memsz() {
            m.insert(s.paddr + i, s.data.get(i as usize).copied().unwrap_or(0));
        }
    }
    m
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn pvh_loads_every_segment_as_its_header_says_or_refuses_the_image(
        segs in prop::collection::vec(segment(), 1..4),
        class in prop_oneof![Just(Class::Elf32), Just(Class::Elf64)],
        initrd in prop::collection::vec(any::<u8>(), 1..0x200),
        cmdline in prop::collection::vec(1u8..=255, 0..64),
    ) {
        // The entry is the first segment's first byte, so it is always inside.
        let entry = segs[0].paddr;
        let notes = note(XEN_NOTE_NAME, XEN_ELFNOTE_PHYS32_ENTRY, &(entry as u32).to_le_bytes());
        let mut headers: Vec<Seg<'_>> = segs.iter().map(|s| Seg::load(s.paddr, &s.data, s.memsz())).collect();
        headers.push(Seg::note(&notes));
        let (image, _) = elf(class, entry, &headers, &[]);

        let mut mem = SparseMemory::new(RAM);
        // Stale bytes where the segments go, so that a bss left unzeroed shows.
        for s in segs.iter().filter(|s| s.paddr + s.memsz() <= RAM) {
            mem.write(s.paddr, &vec![0xEE; s.memsz() as usize]).unwrap();
        }
        let result = load_pvh(&mut mem, &MemLayout::new(RAM), &image, Some(&initrd), &cmdline);
        let first_outside = segs.iter().position(|s| !in_ram(s));
        let state = match (result, first_outside) {
            (Err(LoadError::SegmentOutOfRange { index, .. }), Some(i)) => {
                prop_assert_eq!(index, i, "the first segment outside RAM is named");
                return Ok(());
            }
            // The initrd goes above the highest segment; it may not fit.
            (Err(LoadError::InitrdTooLarge { .. }), None) => {
                let end = segs.iter().map(|s| s.paddr + s.memsz()).max().unwrap().max(HIGH_MEM_START);
                prop_assert!(end.next_multiple_of(0x1000) + initrd.len() as u64 > RAM, "the initrd fitted");
                return Ok(());
            }
            (Ok(state), None) => state,
            (r, outside) => return Err(TestCaseError::fail(format!("{r:?} with segment {outside:?} outside RAM"))),
        };
        prop_assert_eq!(state.rip, entry);
        for (&gpa, &byte) in &model(&segs) {
            let seen = bytes(&mem, gpa, 1)[0];
            prop_assert_eq!(seen, byte, "byte at {:#x}", gpa);
        }
        prop_assert_eq!(c_string(&mem, u64_at(&mem, BOOT_INFO_ADDR + si::CMDLINE_PADDR)), cmdline);
        prop_assert_eq!(u32_at(&mem, BOOT_INFO_ADDR + si::NR_MODULES), 1);
        let modlist = u64_at(&mem, BOOT_INFO_ADDR + si::MODLIST_PADDR);
        let (at, size) = (u64_at(&mem, modlist), u64_at(&mem, modlist + 8));
        prop_assert_eq!(bytes(&mem, at, size as usize), initrd);
    }
}

//! Unit tests of the page-table engine through its public API: splitting,
//! page sizes, the U bit, caching bits, flush tokens, errors, and frames.

#![deny(unused_must_use)]

mod common;

use common::{walk, walk_shape};
use npt::sim::SimMemory;
use npt::{
    FlavorKind, FlushScope, GuestPhysAddr, HostPageTable, HostPhysAddr, HostVirtAddr, NestedPageTable, NptError,
    PageSize, Perms, TlbFlush,
};

const K4: u64 = 4 << 10;
const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;

fn gpa(a: u64) -> GuestPhysAddr {
    GuestPhysAddr(a)
}

fn hpa(a: u64) -> HostPhysAddr {
    HostPhysAddr(a)
}

/// A nested table and its memory.
fn nested() -> (SimMemory, NestedPageTable) {
    let mut mem = SimMemory::new();
    let npt = NestedPageTable::new(&mut mem).expect("root table");
    (mem, npt)
}

/// Consumes a token that must be empty.
fn expect_no_flush<A: npt::InputAddr>(flush: TlbFlush<A>, what: &str) {
    assert_eq!(flush.into_scope(), None, "{what}: expected no flush");
}

/// Consumes a token that must be the range `start..start + len`.
fn expect_range_flush(flush: TlbFlush, start: u64, len: u64, what: &str) {
    assert_eq!(
        flush.into_scope(),
        Some(FlushScope::Range { start: gpa(start), len }),
        "{what}: expected a flush of {start:#x}+{len:#x}"
    );
}

#[test]
fn example_from_crate_docs_runs() -> Result<(), NptError> {
    let (mut mem, mut npt) = nested();
    npt.map_range(&mut mem, gpa(0), hpa(0x400_0000), 6 << 20, Perms::RWX)?
        .apply(|_| unreachable!("mapping unmapped space leaves nothing stale"));
    let (h, perms, size) = npt.translate(&mem, gpa(0x20_1234)).unwrap();
    assert_eq!((h, size), (hpa(0x420_1234), PageSize::Size2M));
    assert!(perms.contains(Perms::USER), "nested leaves always carry U");
    let flush = npt.protect(&mut mem, gpa(0x20_1000), PageSize::Size4K, Perms::RX)?;
    let mut flushed = None;
    flush.apply(|scope| flushed = Some(scope));
    assert_eq!(flushed, Some(FlushScope::Range { start: gpa(M2), len: M2 }));
    npt.destroy(&mut mem).apply(|_| {});
    assert_eq!(mem.frames_in_use(), 0, "frames left after destroy");
    Ok(())
}

#[test]
fn partial_protect_splits_2m_page_and_keeps_every_other_translation() {
    let (mut mem, mut npt) = nested();
    expect_no_flush(npt.map(&mut mem, gpa(M2), hpa(8 * M2), PageSize::Size2M, Perms::RWX).unwrap(), "map");
    let before = walk(&mem, npt.root().addr(), FlavorKind::Nested).pages;

    let flush = npt.protect(&mut mem, gpa(M2 + 5 * K4), PageSize::Size4K, Perms::READ).unwrap();
    expect_range_flush(flush, M2, M2, "split by protect");

    let after = walk(&mem, npt.root().addr(), FlavorKind::Nested);
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    assert_eq!(after.leaves.len(), 512, "expected 512 4K leaves after the split");
    assert!(after.leaves.iter().all(|l| l.size == PageSize::Size4K));
    for (page, &(frame, perms)) in &before {
        let seen = after.pages[page];
        let expected = if *page == M2 + 5 * K4 { (frame, Perms::READ | Perms::USER) } else { (frame, perms) };
        assert_eq!(seen, expected, "page {page:#x}: expected {expected:x?}, seen {seen:x?}");
    }
    assert_eq!(
        npt.translate(&mem, gpa(M2 + 5 * K4 + 7)),
        Some((hpa(8 * M2 + 5 * K4 + 7), Perms::READ | Perms::USER, PageSize::Size4K))
    );
}

#[test]
fn unmap_inside_1g_page_splits_twice_and_keeps_the_rest() {
    let (mut mem, mut npt) = nested();
    expect_no_flush(npt.map(&mut mem, gpa(G1), hpa(3 * G1), PageSize::Size1G, Perms::RW).unwrap(), "map");
    let tables = mem.frames_in_use();
    let flush = npt.unmap(&mut mem, gpa(G1 + 3 * M2 + K4), PageSize::Size4K).unwrap();
    expect_range_flush(flush, G1, G1, "two splits by unmap");
    assert_eq!(mem.frames_in_use(), tables + 2, "expected one PD and one PT more");
    assert_eq!(npt.translate(&mem, gpa(G1 + 3 * M2 + K4)), None);
    assert_eq!(
        npt.translate(&mem, gpa(G1 + 3 * M2)).map(|t| (t.0, t.2)),
        Some((hpa(3 * G1 + 3 * M2), PageSize::Size4K))
    );
    assert_eq!(
        npt.translate(&mem, gpa(G1 + 4 * M2 + 9)).map(|t| (t.0, t.2)),
        Some((hpa(3 * G1 + 4 * M2 + 9), PageSize::Size2M))
    );
    let shape = walk_shape(&mem, npt.root().addr(), FlavorKind::Nested);
    assert_eq!(shape.leaves.len(), 511 + 511, "511 2M leaves and 511 4K leaves");
}

#[test]
fn map_1g_page_translates_with_1g_size() {
    let (mut mem, mut npt) = nested();
    expect_no_flush(npt.map(&mut mem, gpa(2 * G1), hpa(5 * G1), PageSize::Size1G, Perms::RWX).unwrap(), "map");
    for offset in [0, 1, K4, M2 + 17, G1 - 1] {
        assert_eq!(
            npt.translate(&mem, gpa(2 * G1 + offset)),
            Some((hpa(5 * G1 + offset), Perms::RWX | Perms::USER, PageSize::Size1G)),
            "offset {offset:#x}"
        );
    }
    assert_eq!(npt.translate(&mem, gpa(3 * G1)), None);
    assert_eq!(npt.translate(&mem, gpa(2 * G1 - 1)), None);
    assert_eq!(mem.frames_in_use(), 2, "expected only the PML4 and one PDPT");
}

#[test]
fn nested_flavor_sets_user_bit_at_every_level() {
    let (mut mem, mut npt) = nested();
    // Ask for no USER: the nested flavor adds it.
    let _ = npt.map(&mut mem, gpa(0x1234_5000), hpa(0x7000), PageSize::Size4K, Perms::READ).unwrap().into_scope();
    let _ = npt.map(&mut mem, gpa(4 * G1), hpa(0), PageSize::Size1G, Perms::RW).unwrap().into_scope();
    let _ = npt.map(&mut mem, gpa(8 * G1), hpa(M2), PageSize::Size2M, Perms::RW).unwrap().into_scope();

    let a = 0x1234_5000u64;
    let mut table = npt.root().addr();
    for level in (1..=4u32).rev() {
        let index = ((a >> (12 + 9 * (level - 1))) & 511) as usize;
        let raw = common::raw_entry(&mem, table, index);
        // Table entries also allow writes; the read-only leaf does not.
        let expected = if level == 1 { 0b101 } else { 0b111 };
        assert_eq!(raw & 0b111, expected, "level {level}: expected P, U (and R/W above the leaf) in {raw:#x}");
        table = HostPhysAddr(raw & 0x000f_ffff_ffff_f000);
    }
    let walked = walk(&mem, npt.root().addr(), FlavorKind::Nested);
    assert!(walked.problems.is_empty(), "{:?}", walked.problems);
    assert!(walked.leaves.iter().all(|l| l.raw & 0b100 != 0), "a leaf lacks U");
    assert_eq!(npt.translate(&mem, gpa(a)).unwrap().1, Perms::READ | Perms::USER);
}

#[test]
fn host_flavor_sets_user_bit_only_on_user_leaves() {
    let mut mem = SimMemory::new();
    let mut host = HostPageTable::new(&mut mem).unwrap();
    let _ = host.map(&mut mem, HostVirtAddr(0x1000), hpa(0x1000), PageSize::Size4K, Perms::RW).unwrap().into_scope();
    let _ = host
        .map(&mut mem, HostVirtAddr(0x2000), hpa(0x2000), PageSize::Size4K, Perms::RW | Perms::USER)
        .unwrap()
        .into_scope();
    let walked = walk(&mem, host.root().addr(), FlavorKind::Host);
    assert!(walked.problems.is_empty(), "{:?}", walked.problems);
    let user: Vec<(u64, bool)> = walked.leaves.iter().map(|l| (l.addr, l.raw & 0b100 != 0)).collect();
    assert_eq!(user, vec![(0x1000, false), (0x2000, true)], "(address, U) of each leaf");
    assert_eq!(host.translate(&mem, HostVirtAddr(0x1008)).unwrap().1, Perms::RW);
}

#[test]
fn host_flavor_maps_upper_canonical_half_and_refuses_the_hole() {
    let mut mem = SimMemory::new();
    let mut host = HostPageTable::new(&mut mem).unwrap();
    let top = HostVirtAddr(0xffff_ffff_c000_0000);
    let _ = host.map(&mut mem, top, hpa(0), PageSize::Size1G, Perms::RX).unwrap().into_scope();
    assert_eq!(host.translate(&mem, HostVirtAddr(u64::MAX)), Some((hpa(G1 - 1), Perms::RX, PageSize::Size1G)));
    let mut seen = vec![];
    host.for_each_mapping(&mem, |va, pa, size, _| seen.push((va, pa, size)));
    assert_eq!(seen, vec![(top, hpa(0), PageSize::Size1G)]);
    assert_eq!(
        host.map(&mut mem, HostVirtAddr(0x0000_8000_0000_0000), hpa(0), PageSize::Size4K, Perms::READ),
        Err(NptError::AddressTooLarge),
        "non-canonical address"
    );
    assert_eq!(
        host.map(&mut mem, HostVirtAddr(0x0000_7fff_ffff_f000), hpa(0), PageSize::Size4K, Perms::READ)
            .map(TlbFlush::into_scope),
        Ok(None),
        "last page of the lower half"
    );
    let flush = host.unmap(&mut mem, top, PageSize::Size1G).unwrap();
    assert_eq!(flush.into_scope(), Some(FlushScope::Range { start: top, len: G1 }));
    host.destroy(&mut mem).apply(|_| {});
    assert_eq!(mem.frames_in_use(), 0);
}

#[test]
fn uncached_perms_set_pcd_and_pwt_and_missing_execute_sets_nx() {
    let (mut mem, mut npt) = nested();
    let mmio = Perms::RW | Perms::UNCACHED;
    let _ = npt.map(&mut mem, gpa(0xfee0_0000), hpa(0xfee0_0000), PageSize::Size4K, mmio).unwrap().into_scope();
    let leaf = walk(&mem, npt.root().addr(), FlavorKind::Nested).leaves[0];
    assert_eq!(leaf.raw & 0b1_1000, 0b1_1000, "expected PCD and PWT in {:#x}", leaf.raw);
    assert_ne!(leaf.raw & (1 << 63), 0, "expected NX in {:#x}", leaf.raw);
    assert_eq!(npt.translate(&mem, gpa(0xfee0_0000)).unwrap().1, mmio | Perms::USER);
}

#[test]
fn map_into_unmapped_space_needs_no_flush() {
    let (mut mem, mut npt) = nested();
    expect_no_flush(npt.map(&mut mem, gpa(0), hpa(0), PageSize::Size4K, Perms::RW).unwrap(), "map 4K");
    expect_no_flush(npt.map(&mut mem, gpa(M2), hpa(0), PageSize::Size2M, Perms::RW).unwrap(), "map 2M");
    expect_no_flush(npt.map_range(&mut mem, gpa(G1), hpa(0), G1 + M2 + K4, Perms::RW).unwrap(), "map_range");
}

#[test]
fn unmap_flushes_the_unmapped_range() {
    let (mut mem, mut npt) = nested();
    let _ = npt.map_range(&mut mem, gpa(0), hpa(0), 4 * M2, Perms::RW).unwrap().into_scope();
    expect_range_flush(npt.unmap(&mut mem, gpa(M2), PageSize::Size2M).unwrap(), M2, M2, "unmap 2M");
    assert_eq!(npt.translate(&mem, gpa(M2)), None);
    assert!(npt.translate(&mem, gpa(0)).is_some() && npt.translate(&mem, gpa(2 * M2)).is_some());
}

#[test]
fn protect_flushes_only_when_rights_shrink_or_caching_changes() {
    let (mut mem, mut npt) = nested();
    let _ = npt.map(&mut mem, gpa(0), hpa(0), PageSize::Size2M, Perms::READ).unwrap().into_scope();
    expect_no_flush(npt.protect(&mut mem, gpa(0), PageSize::Size2M, Perms::RW).unwrap(), "adding WRITE");
    expect_no_flush(npt.protect(&mut mem, gpa(0), PageSize::Size2M, Perms::RWX).unwrap(), "adding EXECUTE");
    expect_no_flush(npt.protect(&mut mem, gpa(0), PageSize::Size2M, Perms::RWX).unwrap(), "no change");
    expect_range_flush(npt.protect(&mut mem, gpa(0), PageSize::Size2M, Perms::RX).unwrap(), 0, M2, "removing WRITE");
    expect_range_flush(
        npt.protect(&mut mem, gpa(0), PageSize::Size2M, Perms::RX | Perms::CACHE_DISABLE).unwrap(),
        0,
        M2,
        "changing caching",
    );
}

#[test]
fn protect_adding_rights_to_part_of_a_large_page_flushes_for_the_split() {
    let (mut mem, mut npt) = nested();
    let _ = npt.map(&mut mem, gpa(0), hpa(0), PageSize::Size2M, Perms::READ).unwrap().into_scope();
    expect_range_flush(npt.protect(&mut mem, gpa(K4), PageSize::Size4K, Perms::RW).unwrap(), 0, M2, "split");
    // Already split: adding rights to another page is flush-free.
    expect_no_flush(npt.protect(&mut mem, gpa(2 * K4), PageSize::Size4K, Perms::RW).unwrap(), "no split");
}

#[test]
fn remap_flushes_changed_translations_only() {
    let (mut mem, mut npt) = nested();
    let _ = npt.map(&mut mem, gpa(0), hpa(0), PageSize::Size4K, Perms::RW).unwrap().into_scope();
    expect_no_flush(npt.remap(&mut mem, gpa(0), hpa(0), PageSize::Size4K, Perms::RW).unwrap(), "same mapping");
    expect_no_flush(npt.remap(&mut mem, gpa(K4), hpa(0), PageSize::Size4K, Perms::RW).unwrap(), "unmapped slot");
    expect_range_flush(npt.remap(&mut mem, gpa(0), hpa(K4), PageSize::Size4K, Perms::RW).unwrap(), 0, K4, "new frame");
    assert_eq!(npt.translate(&mem, gpa(0)).unwrap().0, hpa(K4));
    // A 2M remap over the two 4K pages replaces both, inside the existing table.
    expect_range_flush(
        npt.remap(&mut mem, gpa(0), hpa(M2), PageSize::Size2M, Perms::READ).unwrap(),
        0,
        2 * K4,
        "2M over 4K",
    );
    assert_eq!(npt.translate(&mem, gpa(M2 - 1)).unwrap().0, hpa(2 * M2 - 1));
}

#[test]
fn map_range_uses_the_largest_pages_alignment_allows() {
    let (mut mem, mut npt) = nested();
    // From 1G - 4K to 2G + 2M + 4K: a 4K page, a 1G page, a 2M page and a
    // 4K page.
    let start = G1 - K4;
    let len = K4 + G1 + M2 + K4;
    expect_no_flush(npt.map_range(&mut mem, gpa(start), hpa(7 * G1 - K4), len, Perms::RW).unwrap(), "map_range");
    let shape = walk_shape(&mem, npt.root().addr(), FlavorKind::Nested);
    let sizes: Vec<(u64, PageSize)> = shape.leaves.iter().map(|l| (l.addr, l.size)).collect();
    assert_eq!(
        sizes,
        vec![
            (G1 - K4, PageSize::Size4K),
            (G1, PageSize::Size1G),
            (2 * G1, PageSize::Size2M),
            (2 * G1 + M2, PageSize::Size4K),
        ]
    );
    assert_eq!(npt.translate(&mem, gpa(2 * G1 + M2 + 5)).unwrap().0, hpa(8 * G1 + M2 + 5));
}

#[test]
fn map_range_with_incongruent_addresses_falls_back_to_4k_pages() {
    let (mut mem, mut npt) = nested();
    // GPA 2M-aligned, HPA only 4K-aligned: no large page can be used.
    let _ = npt.map_range(&mut mem, gpa(M2), hpa(K4), M2, Perms::RW).unwrap().into_scope();
    let shape = walk_shape(&mem, npt.root().addr(), FlavorKind::Nested);
    assert_eq!(shape.leaves.len(), 512);
    assert!(shape.leaves.iter().all(|l| l.size == PageSize::Size4K));
}

#[test]
fn max_page_size_2m_creates_no_1g_pages() {
    let mut mem = SimMemory::new();
    let mut npt = NestedPageTable::with_max_page_size(&mut mem, PageSize::Size2M).unwrap();
    assert_eq!(npt.map(&mut mem, gpa(0), hpa(0), PageSize::Size1G, Perms::RW), Err(NptError::UnsupportedPageSize));
    let _ = npt.map_range(&mut mem, gpa(0), hpa(0), 2 * G1, Perms::RW).unwrap().into_scope();
    let shape = walk_shape(&mem, npt.root().addr(), FlavorKind::Nested);
    assert_eq!(shape.leaves.len(), 1024);
    assert!(shape.leaves.iter().all(|l| l.size == PageSize::Size2M));
}

#[test]
fn out_of_frames_is_an_error_that_changes_nothing() {
    let mut mem = SimMemory::with_budget(3);
    let mut npt = NestedPageTable::new(&mut mem).unwrap();
    // A 4K map needs PDPT, PD and PT: three more frames than the root.
    assert_eq!(npt.map(&mut mem, gpa(0), hpa(0), PageSize::Size4K, Perms::RW), Err(NptError::OutOfFrames));
    assert_eq!(mem.frames_in_use(), 1, "reserved frames must be given back");
    assert_eq!(npt.translate(&mem, gpa(0)), None);
    // A 1G map needs only the PDPT.
    let _ = npt.map(&mut mem, gpa(0), hpa(0), PageSize::Size1G, Perms::RW).unwrap().into_scope();
    // Splitting it for a 4K unmap needs two tables; only one is left.
    let before = walk(&mem, npt.root().addr(), FlavorKind::Nested).pages;
    assert_eq!(npt.unmap(&mut mem, gpa(K4), PageSize::Size4K), Err(NptError::OutOfFrames));
    let after = walk(&mem, npt.root().addr(), FlavorKind::Nested);
    assert!(common::diff(&before, &after.pages).is_none(), "{}", common::diff(&before, &after.pages).unwrap());
    assert_eq!(after.leaves.len(), 1, "the 1G page must stay whole");
    assert_eq!(mem.frames_in_use(), 2);
    mem.set_budget(None);
    let _ = npt.unmap(&mut mem, gpa(K4), PageSize::Size4K).unwrap().into_scope();
    assert_eq!(mem.frames_in_use(), 4);
}

#[test]
fn bad_requests_get_typed_errors() {
    let (mut mem, mut npt) = nested();
    let _ = npt.map(&mut mem, gpa(0), hpa(0), PageSize::Size2M, Perms::RW).unwrap().into_scope();
    let cases: Vec<(&str, Result<TlbFlush, NptError>, NptError)> = vec![
        ("gpa misaligned", npt.map(&mut mem, gpa(K4), hpa(0), PageSize::Size2M, Perms::RW), NptError::Misaligned),
        ("hpa misaligned", npt.map(&mut mem, gpa(M2), hpa(K4), PageSize::Size2M, Perms::RW), NptError::Misaligned),
        (
            "gpa above 2^48",
            npt.map(&mut mem, gpa(1 << 48), hpa(0), PageSize::Size4K, Perms::RW),
            NptError::AddressTooLarge,
        ),
        (
            "gpa ends above 2^48",
            npt.map(&mut mem, gpa((1 << 48) - M2), hpa(0), PageSize::Size1G, Perms::RW),
            NptError::Misaligned,
        ),
        (
            "hpa above 2^52",
            npt.map(&mut mem, gpa(M2), hpa(1 << 52), PageSize::Size2M, Perms::RW),
            NptError::AddressTooLarge,
        ),
        ("no READ", npt.map(&mut mem, gpa(M2), hpa(0), PageSize::Size2M, Perms::WRITE), NptError::InvalidPerms),
        (
            "unknown bit",
            npt.map(&mut mem, gpa(M2), hpa(0), PageSize::Size2M, Perms::from_bits_retain(0x81)),
            NptError::InvalidPerms,
        ),
        ("overlap", npt.map(&mut mem, gpa(K4), hpa(0), PageSize::Size4K, Perms::RW), NptError::AlreadyMapped),
        ("overlap by larger", npt.map(&mut mem, gpa(0), hpa(0), PageSize::Size1G, Perms::RW), NptError::AlreadyMapped),
        ("range overlap", npt.map_range(&mut mem, gpa(M2 - K4), hpa(0), 2 * K4, Perms::RW), NptError::AlreadyMapped),
        ("range length", npt.map_range(&mut mem, gpa(M2), hpa(0), 100, Perms::RW), NptError::Misaligned),
        ("unmap hole", npt.unmap(&mut mem, gpa(M2), PageSize::Size4K), NptError::NotMapped),
        ("unmap partly mapped", npt.unmap(&mut mem, gpa(0), PageSize::Size1G), NptError::NotMapped),
        ("protect hole", npt.protect(&mut mem, gpa(M2), PageSize::Size4K, Perms::RW), NptError::NotMapped),
        ("protect no READ", npt.protect(&mut mem, gpa(0), PageSize::Size4K, Perms::empty()), NptError::InvalidPerms),
    ];
    for (what, seen, expected) in cases {
        assert_eq!(seen, Err(expected), "{what}: expected {expected:?}, seen {seen:?}");
    }
    assert_eq!(npt.translate(&mem, gpa(1 << 48)), None);
    assert_eq!(npt.translate(&mem, gpa(u64::MAX)), None);
}

#[test]
fn emptied_tables_stay_and_are_reused() {
    let (mut mem, mut npt) = nested();
    let _ = npt.map(&mut mem, gpa(M2), hpa(0), PageSize::Size4K, Perms::RW).unwrap().into_scope();
    let frames = mem.frames_in_use();
    let _ = npt.unmap(&mut mem, gpa(M2), PageSize::Size4K).unwrap().into_scope();
    assert_eq!(mem.frames_in_use(), frames, "unmap frees no table");
    // A 2M map over the emptied PT fills it with 4K pages instead.
    expect_no_flush(npt.map(&mut mem, gpa(M2), hpa(M2), PageSize::Size2M, Perms::RW).unwrap(), "map over empty PT");
    assert_eq!(mem.frames_in_use(), frames, "no new table");
    assert_eq!(
        npt.translate(&mem, gpa(M2 + 3 * K4 + 1)),
        Some((hpa(M2 + 3 * K4 + 1), Perms::RW | Perms::USER, PageSize::Size4K))
    );
    assert_eq!(npt.table_count(&mem), frames);
}

#[test]
fn destroy_frees_every_table_and_asks_for_a_full_flush() {
    let (mut mem, mut npt) = nested();
    let _ = npt.map_range(&mut mem, gpa(G1 - K4), hpa(0), G1 + 2 * M2, Perms::RW).unwrap().into_scope();
    let _ = npt.map(&mut mem, gpa(1 << 47), hpa(0), PageSize::Size4K, Perms::RW).unwrap().into_scope();
    let _ = npt.unmap(&mut mem, gpa(G1 + K4), PageSize::Size4K).unwrap().into_scope();
    assert_eq!(npt.table_count(&mem), mem.frames_in_use());
    assert!(mem.frames_in_use() > 5);
    assert_eq!(npt.destroy(&mut mem).into_scope(), Some(FlushScope::All));
    assert_eq!(mem.frames_in_use(), 0, "expected 0 frames after destroy");
}

#[test]
fn flush_tokens_merge_into_the_smallest_covering_range() {
    let (mut mem, mut npt) = nested();
    let _ = npt.map_range(&mut mem, gpa(0), hpa(0), 8 * K4, Perms::RW).unwrap().into_scope();
    let a = npt.unmap(&mut mem, gpa(K4), PageSize::Size4K).unwrap();
    let b = npt.unmap(&mut mem, gpa(5 * K4), PageSize::Size4K).unwrap();
    let merged = a.merge(b).merge(TlbFlush::none());
    assert!(merged.covers(gpa(K4)) && merged.covers(gpa(6 * K4 - 1)));
    assert!(!merged.covers(gpa(0)) && !merged.covers(gpa(6 * K4)));
    expect_range_flush(merged, K4, 5 * K4, "merged");
    let all = npt.destroy(&mut mem);
    assert_eq!(all.merge(TlbFlush::none()).into_scope(), Some(FlushScope::All));
}

#[test]
fn read_execute_leaf_has_exactly_present_user_and_frame_bits() {
    let (mut mem, mut npt) = nested();
    let _ = npt.map(&mut mem, gpa(0), hpa(0xabc_d000), PageSize::Size4K, Perms::RX).unwrap().into_scope();
    let leaf = walk(&mem, npt.root().addr(), FlavorKind::Nested).leaves[0];
    assert_eq!(leaf.raw, 0xabc_d000 | 0b101, "expected P|U and the frame, NX clear");
}

#[test]
fn address_helpers_align_and_print_hex() {
    let a = GuestPhysAddr(0x1234_5678);
    assert_eq!(a.align_down(K4), GuestPhysAddr(0x1234_5000));
    assert_eq!(a.align_up(M2), Some(GuestPhysAddr(0x1240_0000)));
    assert_eq!(HostPhysAddr(u64::MAX).align_up(K4), None);
    assert!(GuestPhysAddr(M2).is_aligned(M2) && !a.is_aligned(K4));
    assert_eq!(a.offset(8), Some(GuestPhysAddr(0x1234_5680)));
    assert_eq!(HostPhysAddr(u64::MAX).offset(1), None);
    assert_eq!(a.page_offset(PageSize::Size2M), 0x14_5678);
    assert_eq!(format!("{a:?}"), "GuestPhysAddr(0x12345678)");
    assert_eq!(format!("{:?}", HostPhysAddr(0x1000)), "HostPhysAddr(0x1000)");
    assert_eq!(PageSize::Size1G.smaller(), Some(PageSize::Size2M));
    assert_eq!(PageSize::LARGEST_FIRST.map(PageSize::bytes), [G1, M2, K4]);
}

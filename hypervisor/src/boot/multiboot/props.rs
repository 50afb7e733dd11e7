//! Property tests of the multiboot v1 parser: whatever the boot loader
//! left in memory, [`parse_v1`] ends after a bounded number of reads, keeps
//! at most what its tables hold, says what it dropped in
//! [`BootInfo::problems`], and reads what a well-formed structure says.
use super::*;
use crate::boot::{MAX_CMDLINE, MAX_MODULES, MAX_REGIONS};
use proptest::prelude::*;
use std::cell::Cell;
use std::collections::BTreeMap;

/// The case count: `n`, or `PROPTEST_CASES` when set (the long run).
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n))
}

const MBI: u64 = 0x9000;

/// Physical memory for the parser: bytes written by the test, and below
/// `limit` every other byte readable as noise from `seed`; it counts reads.
struct Memory {
    bytes: BTreeMap<u64, u8>,
    seed: u64,
    limit: u64,
    reads: Cell<u64>,
}

impl Memory {
    fn new(seed: u64, limit: u64) -> Self {
        Memory { bytes: BTreeMap::new(), seed, limit, reads: Cell::new(0) }
    }
    fn put(&mut self, pa: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            self.bytes.insert(pa + i as u64, *b);
        }
    }
    fn noise(&self, pa: u64) -> u8 {
        let x = (pa ^ self.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x >> 56) as u8
    }
}

impl PhysRead for Memory {
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        self.reads.set(self.reads.get() + 1);
        for (i, b) in buf.iter_mut().enumerate() {
            let at = pa + i as u64;
            match self.bytes.get(&at) {
                Some(v) => *b = *v,
                None if at < self.limit => *b = self.noise(at),
                None => return false,
            }
        }
        true
    }
}

/// The most reads a parse may take: the header, the hypervisor's line and
/// each kept module's entry and line (byte by byte, one past the limit),
/// and each kept memory-map entry.
const MAX_READS: u64 =
    1 + (MAX_CMDLINE as u64 + 1) + MAX_MODULES as u64 * (1 + MAX_CMDLINE as u64 + 1) + MAX_REGIONS as u64;

/// Nothing refused is lost: each module whose line did not arrive whole
/// has a problem that names it.
fn every_refused_line_is_reported(info: &BootInfo) -> Result<(), TestCaseError> {
    for (i, m) in info.modules.iter().enumerate() {
        let named = info.problems.iter().any(|p| match *p {
            BootProblem::CmdlineTooLong { module }
            | BootProblem::NotUtf8 { module, .. }
            | BootProblem::Unterminated { module } => module == Some(i),
            _ => false,
        });
        prop_assert!(m.cmdline_whole || named, "module {i} refused without a word: {:?}", info.problems);
    }
    Ok(())
}

fn header(flags: u32, fields: &[(usize, u32)]) -> [u8; 88] {
    let mut h = [0u8; 88];
    h[0..4].copy_from_slice(&flags.to_le_bytes());
    for &(off, v) in fields {
        h[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    h
}

fn module_entry(start: u32, end: u32, line_at: u32) -> Vec<u8> {
    [start, end, line_at, 0].iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn map_entry(size: u32, base: u64, len: u64, kind: u32) -> Vec<u8> {
    let mut e = size.to_le_bytes().to_vec();
    e.extend(base.to_le_bytes());
    e.extend(len.to_le_bytes());
    e.extend(kind.to_le_bytes());
    e.resize(4 + size as usize, 0xEE);
    e
}

fn word() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), 0u32..0x2_0000, Just(u32::MAX), Just(u32::MAX - 15)]
}

proptest! {
    #![proptest_config(cases(512))]

    /// Random flags, counts, lengths and addresses over memory that is
    /// readable up to a random limit and noise everywhere else.
    #[test]
    fn v1_on_noise_is_bounded_and_reports_what_it_dropped(
        seed in any::<u64>(),
        limit in prop_oneof![Just(0u64), 0u64..0x10_0000, Just(1u64 << 32), Just(1u64 << 40)],
        flags in any::<u32>(),
        fields in prop::collection::vec((1usize..22, word()), 0..12),
    ) {
        let mut mem = Memory::new(seed, limit);
        let fields: Vec<(usize, u32)> = fields.into_iter().map(|(i, v)| (i * 4, v)).collect();
        let hdr = header(flags, &fields);
        mem.put(MBI, &hdr);
        let info = parse_v1(&mem, MBI).expect("the header itself is readable");
        prop_assert!(mem.reads.get() <= MAX_READS, "{} reads, at most {MAX_READS}", mem.reads.get());
        prop_assert!(info.modules.len() <= MAX_MODULES && info.regions.len() <= MAX_REGIONS);
        prop_assert_eq!(info.info_range.0, MBI);
        prop_assert!(info.info_range.1 >= MBI + 88);
        let count = u32::from_le_bytes(hdr[20..24].try_into().unwrap()) as usize;
        if flags & (1 << 3) != 0 && count > MAX_MODULES {
            prop_assert!(info.problems.contains(&BootProblem::TooManyModules { given: count }), "{:?}", info.problems);
        }
        if flags & (1 << 3) == 0 {
            prop_assert!(info.modules.is_empty());
        }
        every_refused_line_is_reported(&info)?;
    }

    /// A well-formed module list reads back as written, up to the limit.
    #[test]
    fn v1_module_list_reads_back_and_extra_modules_are_reported(
        modules in prop::collection::vec((any::<u32>(), any::<u32>(), "[ -~]{0,40}"), 0..40),
        list_at in 0x1_0000u32..0x20_0000,
    ) {
        let mut mem = Memory::new(0, 0);
        let list_at = list_at & !15;
        mem.put(MBI, &header(1 << 3, &[(20, modules.len() as u32), (24, list_at)]));
        for (i, (start, end, line)) in modules.iter().enumerate() {
            let line_at = 0x100_0000 + 0x100 * i as u32;
            mem.put(u64::from(list_at) + 16 * i as u64, &module_entry(*start, *end, line_at));
            mem.put(u64::from(line_at), line.as_bytes());
            mem.put(u64::from(line_at) + line.len() as u64, &[0]);
        }
        let info = parse_v1(&mem, MBI).unwrap();
        let kept = modules.len().min(MAX_MODULES);
        prop_assert_eq!(info.modules.len(), kept);
        for (m, (start, end, line)) in info.modules.iter().zip(&modules) {
            prop_assert_eq!((m.start, m.end), (u64::from(*start), u64::from(*end)));
            prop_assert_eq!(m.cmdline.as_str(), line.as_str());
            prop_assert!(m.cmdline_whole);
        }
        let expected: Vec<BootProblem> =
            if modules.len() > MAX_MODULES { vec![BootProblem::TooManyModules { given: modules.len() }] } else { vec![] };
        prop_assert_eq!(info.problems.as_slice(), expected.as_slice());
        let list_end = u64::from(list_at) + 16 * kept as u64;
        prop_assert_eq!(info.info_range.1, (MBI + 88).max(list_end));
    }

    /// A well-formed memory map (entries of any size field ≥ 20) reads back
    /// as written, up to the limit; a map cut inside an entry keeps the
    /// whole entries before the cut and reports the cut one.
    #[test]
    fn v1_memory_map_reads_back_and_a_cut_entry_is_reported(
        entries in prop::collection::vec((0u32..12, any::<u64>(), any::<u64>(), 0u32..8), 0..80),
        cut in 0u32..24,
    ) {
        let mut mem = Memory::new(0, 0);
        let mut map = Vec::new();
        let mut ends = Vec::new();
        for &(extra, base, len, kind) in &entries {
            map.extend(map_entry(20 + extra, base, len, kind));
            ends.push(map.len() as u64);
        }
        let len = (map.len() as u32).saturating_sub(if entries.is_empty() { 0 } else { cut });
        mem.put(0xC000, &map);
        mem.put(MBI, &header(1 << 6, &[(44, len), (48, 0xC000)]));
        let info = parse_v1(&mem, MBI).unwrap();
        let whole = ends.iter().filter(|&&e| e <= u64::from(len)).count();
        let kept = whole.min(MAX_REGIONS);
        prop_assert_eq!(info.regions.len(), kept);
        for (r, &(_, base, len, kind)) in info.regions.iter().zip(&entries) {
            prop_assert_eq!((r.start, r.len, r.kind), (base, len, mb1_kind(kind)));
        }
        // Where the walk stops: it goes on while 4 more bytes are left.
        let read_to = if kept == 0 { 0 } else { ends[kept - 1] };
        let mut expected = Vec::new();
        if read_to + 4 <= u64::from(len) {
            expected.push(if kept == MAX_REGIONS {
                BootProblem::TooManyRegions { given: len as usize / 24 }
            } else {
                BootProblem::Unreadable { what: "a memory-map entry" }
            });
        }
        prop_assert_eq!(info.problems.as_slice(), expected.as_slice());
        prop_assert_eq!(info.info_range.1, (MBI + 88).max(0xC000 + read_to));
    }
}

/// One multiboot2 tag: type, size, payload, padded to 8 bytes.
fn tag(typ: u32, payload: &[u8]) -> Vec<u8> {
    let mut t = typ.to_le_bytes().to_vec();
    t.extend((8 + payload.len() as u32).to_le_bytes());
    t.extend(payload);
    t.resize(t.len().next_multiple_of(8), 0);
    t
}

/// A multiboot2 information structure with a command line, modules and a
/// memory map, as 8-byte words.
fn mb2(cmdline: &str, modules: &[(u32, u32, String)], regions: &[(u64, u64, u32)]) -> Vec<u64> {
    let mut tags = vec![tag(1, &[cmdline.as_bytes(), &[0]].concat())];
    for (start, end, line) in modules {
        tags.push(tag(3, &[&start.to_le_bytes()[..], &end.to_le_bytes(), line.as_bytes(), &[0]].concat()));
    }
    let mut map = 24u32.to_le_bytes().to_vec();
    map.extend(0u32.to_le_bytes());
    for (base, len, kind) in regions {
        map.extend(base.to_le_bytes());
        map.extend(len.to_le_bytes());
        map.extend(kind.to_le_bytes());
        map.extend(0u32.to_le_bytes());
    }
    tags.push(tag(6, &map));
    mb2_of(&tags)
}

/// A multiboot2 information structure of the given tags and an end tag.
fn mb2_of(tags: &[Vec<u8>]) -> Vec<u64> {
    let mut body = tags.concat();
    body.extend(tag(0, &[]));
    let mut bytes = (8 + body.len() as u32).to_le_bytes().to_vec();
    bytes.extend(0u32.to_le_bytes());
    bytes.extend(body);
    bytes.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn check_bounds(info: &BootInfo, words: usize) -> Result<(), TestCaseError> {
    prop_assert!(info.modules.len() <= MAX_MODULES && info.regions.len() <= MAX_REGIONS);
    let (start, end) = info.info_range;
    prop_assert!(start < end && end - start <= 8 * words as u64, "{:#x?} for {} bytes", info.info_range, 8 * words);
    Ok(())
}

proptest! {
    #![proptest_config(cases(512))]

    /// A structure the crate accepts reads back as written, up to the
    /// limits, with the extra modules and regions reported.
    #[test]
    fn v2_reads_back_and_extra_modules_and_regions_are_reported(
        cmdline in "[ -~]{0,60}",
        modules in prop::collection::vec((any::<u32>(), any::<u32>(), "[ -~]{0,20}"), 0..24),
        regions in prop::collection::vec((any::<u64>(), any::<u64>(), 0u32..8), 0..80),
    ) {
        let mut words = mb2(&cmdline, &modules, &regions);
        let n = words.len();
        let mbi = crate::arch::phys::multiboot2_from_buffer(&mut words).expect("a well-formed structure loads");
        let info = from_v2(&mbi);
        check_bounds(&info, n)?;
        prop_assert_eq!(info.cmdline.as_str(), cmdline.as_str());
        prop_assert_eq!(info.modules.len(), modules.len().min(MAX_MODULES));
        for (m, (start, end, line)) in info.modules.iter().zip(&modules) {
            prop_assert_eq!((m.start, m.end, m.cmdline.as_str()), (u64::from(*start), u64::from(*end), line.as_str()));
        }
        prop_assert_eq!(info.regions.len(), regions.len().min(MAX_REGIONS));
        for (r, &(base, len, kind)) in info.regions.iter().zip(&regions) {
            prop_assert_eq!((r.start, r.len, r.kind), (base, len, mb1_kind(kind)));
        }
        prop_assert_eq!(
            info.problems.contains(&BootProblem::TooManyModules { given: modules.len() }),
            modules.len() > MAX_MODULES
        );
        prop_assert_eq!(
            info.problems.contains(&BootProblem::TooManyRegions { given: regions.len() }),
            regions.len() > MAX_REGIONS
        );
    }

    /// Bytes changed anywhere in a well-formed structure: the crate refuses
    /// it or the conversion stays inside the buffer and the tables.
    #[test]
    fn v2_corrupted_structures_never_panic_and_stay_bounded(
        modules in prop::collection::vec((any::<u32>(), any::<u32>(), "[ -~]{0,8}"), 0..20),
        regions in prop::collection::vec((any::<u64>(), any::<u64>(), 0u32..8), 0..70),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
    ) {
        let mut words = mb2("log=debug", &modules, &regions);
        let n = words.len();
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        for (at, v) in edits {
            let at = at.index(bytes.len());
            bytes[at] = v;
        }
        for (w, c) in words.iter_mut().zip(bytes.chunks(8)) {
            *w = u64::from_le_bytes(c.try_into().unwrap());
        }
        if let Some(mbi) = crate::arch::phys::multiboot2_from_buffer(&mut words) {
            let info = from_v2(&mbi);
            check_bounds(&info, n)?;
            every_refused_line_is_reported(&info)?;
        }
    }

    /// Random words: the crate refuses them or the conversion stays bounded.
    #[test]
    fn v2_random_words_never_panic(mut words in prop::collection::vec(any::<u64>(), 1..200)) {
        let n = words.len();
        if let Some(mbi) = crate::arch::phys::multiboot2_from_buffer(&mut words) {
            check_bounds(&from_v2(&mbi), n)?;
        }
    }
}

// Regressions: the bugs the properties above found, each as the smallest
// input that showed it.

/// A loader's module count was the loop bound: 2^32 - 1 entries (and their
/// lines) were read, and 64 GiB past the list reserved as boot information.
#[test]
fn v1_huge_module_count_reads_only_the_kept_entries_and_reserves_only_them() {
    let mut mem = Memory::new(7, 1 << 32);
    mem.put(MBI, &header(1 << 3, &[(20, u32::MAX), (24, 0x1_0000)]));
    let info = parse_v1(&mem, MBI).unwrap();
    assert_eq!(info.modules.len(), MAX_MODULES);
    assert!(mem.reads.get() <= MAX_READS, "{} reads, at most {MAX_READS}", mem.reads.get());
    assert_eq!(info.info_range, (MBI, 0x1_0000 + 16 * MAX_MODULES as u64), "the range kept is the list read");
    assert!(info.problems.contains(&BootProblem::TooManyModules { given: u32::MAX as usize }), "{:?}", info.problems);
}

/// Once the region table was full the memory map was still walked to its
/// end, one read per entry, however long the loader said it was.
#[test]
fn v1_memory_map_past_the_table_is_not_walked() {
    let mut mem = Memory::new(0, 0);
    let entries = MAX_REGIONS + 36;
    let map: Vec<u8> = (0..entries).flat_map(|i| map_entry(20, i as u64 * 0x1000, 0x1000, 1)).collect();
    mem.put(0xC000, &map);
    mem.put(MBI, &header(1 << 6, &[(44, map.len() as u32), (48, 0xC000)]));
    let info = parse_v1(&mem, MBI).unwrap();
    assert_eq!(info.regions.len(), MAX_REGIONS);
    assert_eq!(mem.reads.get(), 1 + MAX_REGIONS as u64, "the header and the entries kept");
    assert_eq!(info.problems.as_slice(), &[BootProblem::TooManyRegions { given: entries }]);
    assert_eq!(info.info_range.1, 0xC000 + 24 * MAX_REGIONS as u64);
}

/// An entry that ran past the end of the map (the map cut inside it, or
/// its size field larger than what was left) was read from the bytes
/// after the map and kept as a region.
#[test]
fn v1_memory_map_entry_running_past_the_map_end_is_reported_not_read() {
    for (len, second_size) in [(24 + 6, 20), (48, 40)] {
        let mut mem = Memory::new(3, 0x10_0000);
        let mut map = map_entry(20, 0, 0x9FC00, 1);
        map.extend(map_entry(second_size, 0x10_0000, 0x100_0000, 1));
        mem.put(0xC000, &map);
        mem.put(MBI, &header(1 << 6, &[(44, len), (48, 0xC000)]));
        let info = parse_v1(&mem, MBI).unwrap();
        assert_eq!(
            info.regions.as_slice(),
            &[MemRegion { start: 0, len: 0x9FC00, kind: MemKind::Usable }],
            "map of {len} bytes"
        );
        assert_eq!(info.problems.as_slice(), &[BootProblem::Unreadable { what: "a memory-map entry" }]);
    }
}

/// With more than eight problems the list was full and the last entry was
/// overwritten: bad lines on the kept modules hid that modules were dropped.
#[test]
fn v1_too_many_modules_is_reported_when_every_kept_line_is_bad() {
    let mut mem = Memory::new(0, 0);
    let given = MAX_MODULES + 2;
    mem.put(MBI, &header((1 << 3) | (1 << 6), &[(20, given as u32), (24, 0x1_0000), (44, 24), (48, 0xC000)]));
    for i in 0..given {
        let line_at = 0x2_0000 + 0x100 * i as u32;
        mem.put(0x1_0000 + 16 * i as u64, &module_entry(0, 0, line_at));
        mem.put(u64::from(line_at), b"\xff\0");
    }
    mem.put(0xC000, &[&4u32.to_le_bytes()[..], &[0; 20]].concat());
    let info = parse_v1(&mem, MBI).unwrap();
    assert!(info.problems.contains(&BootProblem::TooManyModules { given }), "{:?}", info.problems);
    assert!(info.problems.contains(&BootProblem::Unreadable { what: "a memory-map entry" }), "{:?}", info.problems);
    for i in 0..MAX_MODULES {
        assert!(info.problems.contains(&BootProblem::NotUtf8 { module: Some(i), offset: 0 }), "module {i}");
    }
}

/// The multiboot2 crate asserts that a memory-map tag's entries are 24
/// bytes and fill it exactly: another entry size (or a size field that
/// cuts an entry) panicked, which at boot stops the CPU.
#[test]
fn v2_memory_map_tag_with_a_bad_entry_size_is_skipped_not_a_panic() {
    let modules = [(0x20_0000, 0x30_0000, "linux".to_string())];
    let mut words = mb2("log=debug", &modules, &[(0, 0x9FC00, 1), (0x10_0000, 0x1000_0000, 1)]);
    // The map tag's payload starts with entry_size.
    let map = words.iter().position(|w| *w as u32 == 6).unwrap();
    words[map + 1] = (words[map + 1] & !0xFFFF_FFFF) | 20;
    let mbi = crate::arch::phys::multiboot2_from_buffer(&mut words).expect("the crate loads it");
    let info = from_v2(&mbi);
    assert!(info.regions.is_empty(), "{:?}", info.regions);
    assert_eq!(info.problems.as_slice(), &[BootProblem::MalformedTag { typ: 6, size: 16 + 48 }]);
    assert_eq!((info.cmdline.as_str(), info.modules.len()), ("log=debug", 1), "the other tags are still read");
}

/// A module tag too short for its start and end fields, or a memory map
/// whose size cuts an entry, made the crate's cast assert.
#[test]
fn v2_tag_too_short_for_its_type_is_skipped_not_a_panic() {
    let module = tag(3, &[&0x20_0000u32.to_le_bytes()[..], &0x30_0000u32.to_le_bytes(), b"linux\0"].concat());
    let map = tag(6, &[&24u32.to_le_bytes()[..], &[0; 4], &map_entry(24, 0, 0x9FC00, 1)[4..]].concat());
    let short_module = tag(3, &[1, 2, 3, 4]);
    let cut_map = tag(6, &[&24u32.to_le_bytes()[..], &[0; 4], &[0xAB; 20]].concat());
    for (tags, bad) in [([&short_module, &map], (3, 12)), ([&module, &cut_map], (6, 36))] {
        let mut words = mb2_of(&tags.map(|t| t.clone()));
        let mbi = crate::arch::phys::multiboot2_from_buffer(&mut words).expect("the crate loads it");
        let info = from_v2(&mbi);
        assert_eq!(info.problems.as_slice(), &[BootProblem::MalformedTag { typ: bad.0, size: bad.1 }]);
        assert_eq!(info.modules.len(), usize::from(bad.0 != 3), "tag {bad:?}");
        assert_eq!(info.regions.len(), usize::from(bad.0 != 6), "tag {bad:?}");
    }
}

/// The crate's string accessor gives an error for a module line that runs
/// to the end of its tag without a NUL, which was read as an empty line,
/// taken whole: the VM would have run with a command line it was not given.
#[test]
fn v2_module_line_without_its_nul_is_refused_not_emptied() {
    let cut = tag(3, &[&0x20_0000u32.to_le_bytes()[..], &0x30_0000u32.to_le_bytes(), b"linux root=/dev/vd"].concat());
    // The tag's size ends at the line; the padding after it is not part of it.
    let mut words = mb2_of(&[cut]);
    let mbi = crate::arch::phys::multiboot2_from_buffer(&mut words).expect("the crate loads it");
    let info = from_v2(&mbi);
    assert_eq!(info.modules.len(), 1);
    assert_eq!(info.modules[0].cmdline.as_str(), "linux root=/dev/vd");
    assert!(!info.modules[0].cmdline_whole, "a cut line is not taken whole");
    assert_eq!(info.problems.as_slice(), &[BootProblem::Unterminated { module: Some(0) }]);
}

/// A v1 line that ran into unreadable memory before its NUL was kept as
/// far as it went and taken whole.
#[test]
fn v1_module_line_running_into_unreadable_memory_is_refused() {
    let mut mem = Memory::new(0, 0);
    mem.put(MBI, &header(1 << 3, &[(20, 1), (24, 0x1_0000)]));
    mem.put(0x1_0000, &module_entry(0x20_0000, 0x30_0000, 0x2_0000));
    mem.put(0x2_0000, b"linux root=/dev/vd");
    let info = parse_v1(&mem, MBI).unwrap();
    assert_eq!(info.modules[0].cmdline.as_str(), "linux root=/dev/vd");
    assert!(!info.modules[0].cmdline_whole, "a cut line is not taken whole");
    assert_eq!(info.problems.as_slice(), &[BootProblem::Unterminated { module: Some(0) }]);
}

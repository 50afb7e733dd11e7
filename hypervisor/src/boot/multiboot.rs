//! Multiboot v1 and multiboot2 information, parsed into [`BootInfo`].
//!
//! Version 1 is parsed here by hand from physical memory, read through a
//! [`PhysRead`] so that the parser is tested on the host against fake memory.
//! Version 2 goes through the `multiboot2` crate.
use super::{BootInfo, BootProblem, CmdlineText, Loader, MemKind, MemRegion};

pub const MB1_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
pub const MB2_BOOTLOADER_MAGIC: u32 = 0x36D7_6289;

pub use crate::arch::phys::PhysRead;

/// Why the boot information could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    /// EAX did not hold a multiboot magic value.
    UnknownMagic(u32),
    /// The information structure could not be read at this address.
    Unreadable(u64),
    /// The multiboot2 crate rejected the structure.
    Malformed,
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootInfoError::UnknownMagic(m) => write!(f, "unknown boot loader magic {m:#010x}"),
            BootInfoError::Unreadable(a) => write!(f, "boot information at {a:#x} is unreadable"),
            BootInfoError::Malformed => write!(f, "malformed multiboot2 information"),
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from(u32_at(b, off)) | (u64::from(u32_at(b, off + 4)) << 32)
}

/// Reads the NUL-terminated command line at `pa`: at most
/// [`MAX_CMDLINE`](super::MAX_CMDLINE) bytes (a longer one is marked
/// `too_long`), bytes that are not UTF-8 read as `?`; a line that runs into
/// unreadable memory before its NUL is marked `unterminated`.
fn c_string(mem: &impl PhysRead, pa: u64) -> CmdlineText {
    let mut buf = [0u8; super::MAX_CMDLINE];
    // Byte-wise up to the NUL: a string may end right before unreadable memory.
    let mut len = 0;
    let mut b = [0u8];
    let mut readable = true;
    while len < buf.len() {
        readable = mem.read(pa + len as u64, &mut b);
        if !readable || b[0] == 0 {
            break;
        }
        buf[len] = b[0];
        len += 1;
    }
    let mut text = CmdlineText::from_bytes(&buf[..len]);
    if len == buf.len() && mem.read(pa + len as u64, &mut b) && b[0] != 0 {
        text.too_long = true;
    }
    text.unterminated = !readable;
    text
}

/// A multiboot2 string, the bytes of its tag after the fixed fields: read
/// as v1's lines are, and marked `unterminated` when the tag ends before
/// its NUL.
fn v2_line(bytes: &[u8]) -> CmdlineText {
    let mut text = CmdlineText::from_bytes(bytes);
    text.unterminated = !bytes.contains(&0);
    text
}

fn mb1_kind(t: u32) -> MemKind {
    match t {
        1 => MemKind::Usable,
        3 => MemKind::AcpiReclaimable,
        4 => MemKind::AcpiNvs,
        5 => MemKind::Defective,
        _ => MemKind::Reserved,
    }
}

/// Parses a multiboot v1 information structure at `mbi`.
pub fn parse_v1(mem: &impl PhysRead, mbi: u64) -> Result<BootInfo, BootInfoError> {
    let mut hdr = [0u8; 88];
    if !mem.read(mbi, &mut hdr) {
        return Err(BootInfoError::Unreadable(mbi));
    }
    let mut info = BootInfo::new(Loader::Multiboot1);
    let mut end = mbi + hdr.len() as u64;
    let flags = u32_at(&hdr, 0);

    if flags & (1 << 2) != 0 {
        info.set_cmdline(&c_string(mem, u64::from(u32_at(&hdr, 16))));
    }
    if flags & (1 << 3) != 0 {
        let count = u32_at(&hdr, 20);
        let addr = u64::from(u32_at(&hdr, 24));
        // Entries past the ones kept are neither read nor reserved: the
        // loop is bounded by the table size, not by the loader's count.
        let taken = u64::from(count).min(super::MAX_MODULES as u64);
        let mut read = 0;
        while read < taken {
            let mut m = [0u8; 16];
            if !mem.read(addr + read * 16, &mut m) {
                info.report(BootProblem::Unreadable { what: "the module list" });
                break;
            }
            let text = c_string(mem, u64::from(u32_at(&m, 8)));
            info.push_module(u64::from(u32_at(&m, 0)), u64::from(u32_at(&m, 4)), &text, count as usize);
            read += 1;
        }
        if u64::from(count) > taken {
            info.report(BootProblem::TooManyModules { given: count as usize });
        }
        end = end.max(addr + read * 16);
    }
    if flags & (1 << 6) != 0 {
        let len = u64::from(u32_at(&hdr, 44));
        let addr = u64::from(u32_at(&hdr, 48));
        // Each entry: size (u32, not counting itself), base (u64), length (u64), type (u32).
        let mut off = 0;
        let given = (len / 24) as usize;
        while off + 4 <= len {
            if info.regions.is_full() {
                info.report(BootProblem::TooManyRegions { given });
                break;
            }
            // Every entry has at least 24 bytes, all inside the map.
            let mut e = [0u8; 24];
            if off + 24 > len {
                info.report(BootProblem::Unreadable { what: "a memory-map entry" });
                break;
            }
            if !mem.read(addr + off, &mut e) {
                info.report(BootProblem::Unreadable { what: "the memory map" });
                break;
            }
            let size = u64::from(u32_at(&e, 0));
            if size < 20 || off + 4 + size > len {
                info.report(BootProblem::Unreadable { what: "a memory-map entry" });
                break;
            }
            let r = MemRegion { start: u64_at(&e, 4), len: u64_at(&e, 12), kind: mb1_kind(u32_at(&e, 20)) };
            info.push_region(r, given);
            off += size + 4;
        }
        end = end.max(addr + off);
    } else if flags & (1 << 0) != 0 {
        // Only mem_lower/mem_upper (KiB): conventional and extended memory.
        info.push_region(MemRegion { start: 0, len: u64::from(u32_at(&hdr, 4)) * 1024, kind: MemKind::Usable }, 2);
        info.push_region(
            MemRegion { start: 1 << 20, len: u64::from(u32_at(&hdr, 8)) * 1024, kind: MemKind::Usable },
            2,
        );
    }
    info.info_range = (mbi, end);
    Ok(info)
}

type V2Tag = multiboot2::DynSizedStructure<multiboot2::TagHeader>;

/// Whether a multiboot2 tag's size fits the type the kernel reads it as.
/// The crate's typed views assert this (a panic, which stops the CPU at
/// boot), so each tag is checked here before it is cast: a module or
/// command line needs its fixed fields, a memory map whole 24-byte entries
/// of the size it declares, an RSDP tag its table (the crate's typed RSDP
/// views are 32 and 48 bytes, tag sizes rounded up to 8).
fn v2_tag_fits(tag: &V2Tag) -> bool {
    use multiboot2::{MaybeDynSized, TagType};
    let size = tag.header().size as usize;
    let fixed = |min: usize, view: usize| size >= min && size.next_multiple_of(8) == view;
    match TagType::from(tag.header().typ) {
        TagType::Module => size >= multiboot2::ModuleTag::BASE_SIZE,
        TagType::Mmap => {
            let base = multiboot2::MemoryMapTag::BASE_SIZE;
            let entry = size_of::<multiboot2::MemoryArea>();
            size >= base
                && (size - base).is_multiple_of(entry)
                && tag.payload().get(..4) == Some(&(entry as u32).to_le_bytes()[..])
        }
        TagType::AcpiV1 => fixed(multiboot2::RsdpV1Tag::BASE_SIZE, size_of::<multiboot2::RsdpV1Tag>()),
        TagType::AcpiV2 => fixed(multiboot2::RsdpV2Tag::BASE_SIZE, size_of::<multiboot2::RsdpV2Tag>()),
        _ => true,
    }
}

/// Converts the multiboot2 crate's view into [`BootInfo`]: the first
/// command line and memory map, every module, the RSDP (version 2 before
/// 1). A tag whose size does not fit its type is reported and skipped.
/// Lines and module addresses are read from the tags' bytes (the crate's
/// string accessors give nothing for a line without its NUL).
pub fn from_v2(mbi: &multiboot2::BootInformation<'_>) -> BootInfo {
    use multiboot2::TagType;
    let mut info = BootInfo::new(Loader::Multiboot2);
    if let Some(bad) = mbi.tags().find(|t| !v2_tag_fits(t)) {
        info.report(BootProblem::MalformedTag { typ: bad.header().typ.get(), size: bad.header().size });
    }
    let of = |typ: TagType| mbi.tags().filter(move |t| t.header().typ == typ && v2_tag_fits(t));
    if let Some(t) = of(TagType::Cmdline).next() {
        info.set_cmdline(&v2_line(t.payload()));
    }
    if let Some(t) = of(TagType::Mmap).next() {
        let areas = t.cast::<multiboot2::MemoryMapTag>().memory_areas();
        for a in areas {
            let kind = mb1_kind(u32::from(a.typ()));
            info.push_region(MemRegion { start: a.start_address(), len: a.size(), kind }, areas.len());
        }
    }
    let given = of(TagType::Module).count();
    for t in of(TagType::Module) {
        // mod_start, mod_end, then the line (the tag fits: 8 bytes or more).
        let (fields, line) = t.payload().split_at(8);
        let text = v2_line(line);
        info.push_module(u64::from(u32_at(fields, 0)), u64::from(u32_at(fields, 4)), &text, given);
    }
    if let Some(t) = of(TagType::AcpiV2).next().or_else(|| of(TagType::AcpiV1).next()) {
        info.rsdp = Some(t.header() as *const _ as u64 + 8);
    }
    info.info_range = (mbi.start_address() as u64, mbi.end_address() as u64);
    info
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Sparse fake physical memory.
    #[derive(Default)]
    struct FakeMem(BTreeMap<u64, u8>);

    impl FakeMem {
        fn put(&mut self, pa: u64, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                self.0.insert(pa + i as u64, *b);
            }
        }
    }

    impl PhysRead for FakeMem {
        fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
            for (i, b) in buf.iter_mut().enumerate() {
                match self.0.get(&(pa + i as u64)) {
                    Some(v) => *b = *v,
                    None => return false,
                }
            }
            true
        }
    }

    fn mbi(flags: u32, fields: &[(usize, u32)]) -> [u8; 88] {
        let mut h = [0u8; 88];
        h[0..4].copy_from_slice(&flags.to_le_bytes());
        for &(off, v) in fields {
            h[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
        h
    }

    #[test]
    fn v1_cmdline_modules_and_memory_map_are_parsed() {
        let mut m = FakeMem::default();
        m.put(
            0x9000,
            &mbi((1 << 2) | (1 << 3) | (1 << 6), &[(16, 0xA000), (20, 2), (24, 0xB000), (44, 48), (48, 0xC000)]),
        );
        m.put(0xA000, b"/boot/hv log=debug\0");
        let mut mods = Vec::new();
        for (s, e, c) in [(0x20_0000u32, 0x30_0000u32, 0xA100u32), (0x30_0000, 0x30_1000, 0xA200)] {
            mods.extend_from_slice(&s.to_le_bytes());
            mods.extend_from_slice(&e.to_le_bytes());
            mods.extend_from_slice(&c.to_le_bytes());
            mods.extend_from_slice(&0u32.to_le_bytes());
        }
        m.put(0xB000, &mods);
        m.put(0xA100, b"bzImage\0");
        m.put(0xA200, b"initrd\0");
        let mut map = Vec::new();
        for (base, len, typ) in [(0u64, 0x9FC00u64, 1u32), (0x10_0000, 0x1FF0_0000, 1)] {
            map.extend_from_slice(&20u32.to_le_bytes());
            map.extend_from_slice(&base.to_le_bytes());
            map.extend_from_slice(&len.to_le_bytes());
            map.extend_from_slice(&typ.to_le_bytes());
        }
        m.put(0xC000, &map);

        let info = parse_v1(&m, 0x9000).unwrap();
        assert_eq!(info.cmdline.as_str(), "/boot/hv log=debug");
        assert_eq!(info.modules.len(), 2);
        assert_eq!(info.modules[0].start, 0x20_0000);
        assert_eq!(info.modules[0].cmdline.as_str(), "bzImage");
        assert_eq!(info.modules[1].cmdline.as_str(), "initrd");
        assert_eq!(info.regions.len(), 2);
        assert_eq!(info.regions[1], MemRegion { start: 0x10_0000, len: 0x1FF0_0000, kind: MemKind::Usable });
        assert_eq!(info.usable_bytes(), 0x9FC00 + 0x1FF0_0000);
        assert!(info.problems.is_empty());
    }

    #[test]
    fn v1_unreadable_structure_is_an_error_not_a_panic() {
        let m = FakeMem::default();
        assert_eq!(parse_v1(&m, 0x9000).unwrap_err(), BootInfoError::Unreadable(0x9000));
    }

    #[test]
    fn v1_memory_map_entry_with_bad_size_stops_the_walk() {
        let mut m = FakeMem::default();
        m.put(0x9000, &mbi(1 << 6, &[(44, 48), (48, 0xC000)]));
        let mut e = Vec::new();
        e.extend_from_slice(&4u32.to_le_bytes());
        e.extend_from_slice(&[0u8; 44]);
        m.put(0xC000, &e);
        let info = parse_v1(&m, 0x9000).unwrap();
        assert!(info.regions.is_empty());
        assert_eq!(info.problems.as_slice(), &[BootProblem::Unreadable { what: "a memory-map entry" }]);
    }

    #[test]
    fn v1_without_map_falls_back_to_mem_lower_and_upper() {
        let mut m = FakeMem::default();
        m.put(0x9000, &mbi(1, &[(4, 639), (8, 130048)]));
        let info = parse_v1(&m, 0x9000).unwrap();
        assert_eq!(info.regions[1].len, 130048 * 1024);
    }

    /// A v1 structure with the given module command lines (module i at
    /// 0x10_0000 * (i + 1), its line at 0xA000 + 0x1000 * i).
    fn with_modules(lines: &[&[u8]]) -> FakeMem {
        let mut m = FakeMem::default();
        m.put(0x9000, &mbi(1 << 3, &[(20, lines.len() as u32), (24, 0x8000)]));
        for (i, line) in lines.iter().enumerate() {
            let at = 0xA000 + 0x1000 * i as u32;
            let start = 0x10_0000 * (i as u32 + 1);
            let mut e = Vec::new();
            for v in [start, start + 0x1000, at, 0] {
                e.extend_from_slice(&v.to_le_bytes());
            }
            m.put(0x8000 + 16 * i as u64, &e);
            m.put(u64::from(at), line);
            m.put(u64::from(at) + line.len() as u64, &[0]);
        }
        m
    }

    #[test]
    fn v1_module_line_longer_than_the_limit_is_kept_whole_or_marked() {
        let exact = vec![b'a'; crate::boot::MAX_CMDLINE];
        let long = vec![b'b'; crate::boot::MAX_CMDLINE + 1];
        let info = parse_v1(&with_modules(&[&exact, &long]), 0x9000).unwrap();
        assert!(info.modules[0].cmdline_whole);
        assert_eq!(info.modules[0].cmdline.len(), crate::boot::MAX_CMDLINE);
        assert!(!info.modules[1].cmdline_whole);
        assert_eq!(info.problems.as_slice(), &[BootProblem::CmdlineTooLong { module: Some(1) }]);
    }

    #[test]
    fn v1_module_line_that_is_not_utf8_is_reported_with_its_offset() {
        let info = parse_v1(&with_modules(&[b"linux root=\xff", b"initrd \xe2\x82"]), 0x9000).unwrap();
        assert_eq!(info.modules[0].cmdline.as_str(), "linux root=?");
        assert_eq!(info.modules[1].cmdline.as_str(), "initrd ?");
        assert!(!info.modules[0].cmdline_whole && !info.modules[1].cmdline_whole);
        assert_eq!(
            info.problems.as_slice(),
            &[
                BootProblem::NotUtf8 { module: Some(0), offset: 11 },
                BootProblem::NotUtf8 { module: Some(1), offset: 7 }
            ]
        );
    }

    #[test]
    fn v1_more_modules_than_the_limit_keeps_the_first_and_says_how_many() {
        let names: Vec<Vec<u8>> = (0..crate::boot::MAX_MODULES + 3).map(|i| format!("m{i}").into_bytes()).collect();
        let lines: Vec<&[u8]> = names.iter().map(|n| n.as_slice()).collect();
        let info = parse_v1(&with_modules(&lines), 0x9000).unwrap();
        assert_eq!(info.modules.len(), crate::boot::MAX_MODULES);
        assert_eq!(info.modules[0].cmdline.as_str(), "m0");
        assert_eq!(info.problems.as_slice(), &[BootProblem::TooManyModules { given: crate::boot::MAX_MODULES + 3 }]);
        let said = format!("{}", info.problems[0]);
        assert!(
            said.contains(&format!("modules {} to {}", crate::boot::MAX_MODULES, crate::boot::MAX_MODULES + 2)),
            "{said}"
        );
    }

    #[test]
    fn v1_hypervisor_line_too_long_keeps_the_start() {
        let mut m = FakeMem::default();
        m.put(0x9000, &mbi(1 << 2, &[(16, 0xA000)]));
        let mut line = b"log=debug ".to_vec();
        line.resize(crate::boot::MAX_CMDLINE + 50, b'x');
        line.push(0);
        m.put(0xA000, &line);
        let info = parse_v1(&m, 0x9000).unwrap();
        assert!(info.cmdline.starts_with("log=debug "));
        assert_eq!(info.problems.as_slice(), &[BootProblem::CmdlineTooLong { module: None }]);
    }

    #[test]
    fn v2_lines_carry_the_same_verdicts_as_v1() {
        assert_eq!(v2_line(b"quiet\0\0\0").text.as_str(), "quiet");
        assert!(v2_line(b"quiet\0").is_whole());
        let long = [vec![b'y'; crate::boot::MAX_CMDLINE + 1], vec![0]].concat();
        assert!(v2_line(&long).too_long);
        let bad = v2_line(b"ab\xffc\0");
        assert_eq!((bad.text.as_str(), bad.bad_utf8), ("ab?c", Some(2)));
        let cut = v2_line(b"root=/dev/vd");
        assert_eq!((cut.text.as_str(), cut.unterminated, cut.is_whole()), ("root=/dev/vd", true, false));
    }
}

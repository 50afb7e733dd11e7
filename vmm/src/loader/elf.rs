//! Just enough ELF (32- and 64-bit, little-endian) to load executables by
//! physical address and read their notes, parsed in place.

use super::bytes::{slice, u16_at, u32_at, u64_at, u8_at};
use super::error::LoadError;
use super::layout::{is_usable, MemLayout};
use guest_x86::mem::GuestMemory;

pub(super) const EM_386: u16 = 3;
pub(super) const EM_X86_64: u16 = 62;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
pub(super) const PT_LOAD: u32 = 1;
pub(super) const PT_NOTE: u32 = 4;
/// e_phnum value meaning "the real count is elsewhere"; not supported.
const PN_XNUM: u16 = 0xFFFF;

/// Whether `image` starts with the ELF magic.
pub(super) fn is_elf(image: &[u8]) -> bool {
    image.starts_with(b"\x7fELF")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    Elf32,
    Elf64,
}

/// A parsed ELF file header over the image bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Elf<'a> {
    pub data: &'a [u8],
    pub class: Class,
    pub machine: u16,
    pub entry: u64,
    phoff: u64,
    phentsize: u64,
    pub phnum: usize,
}

/// One program header, widened to 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProgramHeader {
    pub p_type: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

impl<'a> Elf<'a> {
    /// Parses and checks the file header and that the program header table
    /// lies inside the file.
    pub fn parse(data: &'a [u8]) -> Result<Self, LoadError> {
        let bad = |reason| LoadError::BadElfHeader { reason };
        if !is_elf(data) {
            return Err(bad("no ELF magic"));
        }
        let class = match u8_at(data, 4, "ELF identification")? {
            1 => Class::Elf32,
            2 => Class::Elf64,
            _ => return Err(bad("EI_CLASS is neither ELFCLASS32 nor ELFCLASS64")),
        };
        if u8_at(data, 5, "ELF identification")? != 1 {
            return Err(bad("not little-endian (EI_DATA != ELFDATA2LSB)"));
        }
        if u8_at(data, 6, "ELF identification")? != 1 {
            return Err(bad("EI_VERSION is not EV_CURRENT"));
        }
        let e_type = u16_at(data, 16, "ELF header")?;
        if e_type != ET_EXEC && e_type != ET_DYN {
            return Err(bad("not an executable (e_type is neither ET_EXEC nor ET_DYN)"));
        }
        let machine = u16_at(data, 18, "ELF header")?;
        let (entry, phoff, phentsize, phnum, min_phentsize) = match class {
            Class::Elf32 => (
                u32_at(data, 0x18, "ELF header")? as u64,
                u32_at(data, 0x1C, "ELF header")? as u64,
                u16_at(data, 0x2A, "ELF header")?,
                u16_at(data, 0x2C, "ELF header")?,
                32,
            ),
            Class::Elf64 => (
                u64_at(data, 0x18, "ELF header")?,
                u64_at(data, 0x20, "ELF header")?,
                u16_at(data, 0x36, "ELF header")?,
                u16_at(data, 0x38, "ELF header")?,
                56,
            ),
        };
        if phnum == PN_XNUM {
            return Err(bad("extended program header count (PN_XNUM) is not supported"));
        }
        if phnum == 0 {
            return Err(bad("no program headers"));
        }
        if phentsize < min_phentsize {
            return Err(bad("e_phentsize is smaller than a program header"));
        }
        let table_len = phentsize as u64 * phnum as u64;
        slice(data, phoff, table_len, "ELF program header table")?;
        Ok(Elf { data, class, machine, entry, phoff, phentsize: phentsize as u64, phnum: phnum as usize })
    }

    /// Checks `e_machine` against the accepted architecture for the class:
    /// EM_386 for ELF32, EM_X86_64 for ELF64.
    pub fn check_x86_machine(&self) -> Result<(), LoadError> {
        let ok = match self.class {
            Class::Elf32 => self.machine == EM_386,
            Class::Elf64 => self.machine == EM_X86_64,
        };
        if ok {
            Ok(())
        } else {
            Err(LoadError::BadElfHeader { reason: "e_machine is not EM_386 (ELF32) or EM_X86_64 (ELF64)" })
        }
    }

    /// Program header `index` (< `phnum`).
    pub fn program_header(&self, index: usize) -> Result<ProgramHeader, LoadError> {
        let at = self.phoff + self.phentsize * index as u64;
        let d = self.data;
        let what = "ELF program header";
        Ok(match self.class {
            Class::Elf32 => ProgramHeader {
                p_type: u32_at(d, at, what)?,
                offset: u32_at(d, at + 4, what)? as u64,
                vaddr: u32_at(d, at + 8, what)? as u64,
                paddr: u32_at(d, at + 12, what)? as u64,
                filesz: u32_at(d, at + 16, what)? as u64,
                memsz: u32_at(d, at + 20, what)? as u64,
                align: u32_at(d, at + 28, what)? as u64,
            },
            Class::Elf64 => ProgramHeader {
                p_type: u32_at(d, at, what)?,
                offset: u64_at(d, at + 8, what)?,
                vaddr: u64_at(d, at + 16, what)?,
                paddr: u64_at(d, at + 24, what)?,
                filesz: u64_at(d, at + 32, what)?,
                memsz: u64_at(d, at + 40, what)?,
                align: u64_at(d, at + 48, what)?,
            },
        })
    }

    /// The file bytes of segment `index`.
    pub fn segment_bytes(&self, index: usize, ph: &ProgramHeader) -> Result<&'a [u8], LoadError> {
        slice(self.data, ph.offset, ph.filesz, "ELF segment contents").map_err(|e| match e {
            LoadError::Truncated { .. } if ph.offset.checked_add(ph.filesz).is_none() => {
                LoadError::BadSegment { index, reason: "p_offset + p_filesz overflows" }
            }
            e => e,
        })
    }

    /// Finds the first note with owner `name` and type `n_type` in the
    /// PT_NOTE segments and returns its descriptor.
    pub fn find_note(&self, name: &[u8], n_type: u32) -> Result<Option<&'a [u8]>, LoadError> {
        for index in 0..self.phnum {
            let ph = self.program_header(index)?;
            if ph.p_type != PT_NOTE {
                continue;
            }
            let notes = self.segment_bytes(index, &ph)?;
            if let Some(desc) = find_note_in(notes, index, ph.align, name, n_type)? {
                return Ok(Some(desc));
            }
        }
        Ok(None)
    }

    /// The PT_LOAD segments with bytes in memory, checked and in file order.
    /// Calls `f` for each after checking that its contents are in the file
    /// and `filesz <= memsz`.
    pub fn for_each_load<F>(&self, mut f: F) -> Result<(), LoadError>
    where
        F: FnMut(usize, &ProgramHeader, &'a [u8]) -> Result<(), LoadError>,
    {
        for index in 0..self.phnum {
            let ph = self.program_header(index)?;
            if ph.p_type != PT_LOAD || ph.memsz == 0 {
                continue;
            }
            if ph.filesz > ph.memsz {
                return Err(LoadError::BadSegment { index, reason: "p_filesz is larger than p_memsz" });
            }
            let bytes = self.segment_bytes(index, &ph)?;
            f(index, &ph, bytes)?;
        }
        Ok(())
    }
}

/// Scans one PT_NOTE segment's bytes. Note entries are aligned to 4 bytes,
/// or 8 when the segment says so.
fn find_note_in<'a>(
    notes: &'a [u8],
    segment: usize,
    p_align: u64,
    name: &[u8],
    n_type: u32,
) -> Result<Option<&'a [u8]>, LoadError> {
    let align: u64 = if p_align == 8 { 8 } else { 4 };
    let pad = |x: u64| x.checked_add(align - 1).map(|v| v & !(align - 1));
    let len = notes.len() as u64;
    let mut off = 0u64;
    while off < len {
        let bad = LoadError::BadNote { segment, offset: off };
        if len - off < 12 {
            return Err(bad);
        }
        let namesz = u32_at(notes, off, "note")? as u64;
        let descsz = u32_at(notes, off + 4, "note")? as u64;
        let t = u32_at(notes, off + 8, "note")?;
        let name_at = off + 12;
        let desc_at = pad(name_at + namesz).ok_or(bad)?;
        let next = desc_at.checked_add(descsz).and_then(pad).ok_or(bad)?;
        if desc_at.checked_add(descsz).is_none_or(|end| end > len) || name_at + namesz > len {
            return Err(bad);
        }
        let note_name = &notes[name_at as usize..(name_at + namesz) as usize];
        if t == n_type && note_name == name {
            return Ok(Some(&notes[desc_at as usize..(desc_at + descsz) as usize]));
        }
        off = next;
    }
    Ok(None)
}

/// Where a loaded image lies in guest-physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Extent {
    pub start: u64,
    pub end: u64,
}

/// Checks that every loadable segment lies in usable RAM, then copies the
/// segments to their physical addresses and zeroes their bss. Returns the
/// extent covering all of them.
pub(super) fn load_segments<M: GuestMemory + ?Sized>(
    elf: &Elf<'_>,
    mem: &mut M,
    layout: &MemLayout,
) -> Result<Extent, LoadError> {
    let mut extent: Option<Extent> = None;
    elf.for_each_load(|index, ph, _| {
        if !is_usable(layout, ph.paddr, ph.memsz) {
            return Err(LoadError::SegmentOutOfRange { index, paddr: ph.paddr, memsz: ph.memsz });
        }
        let end = ph.paddr + ph.memsz;
        extent = Some(match extent {
            None => Extent { start: ph.paddr, end },
            Some(e) => Extent { start: e.start.min(ph.paddr), end: e.end.max(end) },
        });
        Ok(())
    })?;
    let extent = extent.ok_or(LoadError::NoLoadableSegments)?;
    elf.for_each_load(|_, ph, bytes| {
        mem.write(ph.paddr, bytes)?;
        mem.zero(ph.paddr + ph.filesz, ph.memsz - ph.filesz)?;
        Ok(())
    })?;
    Ok(extent)
}

/// Whether guest-physical `addr` lies inside a loadable segment.
pub(super) fn contains_paddr(elf: &Elf<'_>, addr: u64) -> Result<bool, LoadError> {
    let mut found = false;
    elf.for_each_load(|_, ph, _| {
        found |= addr >= ph.paddr && addr - ph.paddr < ph.memsz;
        Ok(())
    })?;
    Ok(found)
}

/// Translates the ELF entry point to a physical address: if it falls in a
/// PT_LOAD segment's virtual range, it is moved by that segment's
/// (paddr - vaddr); otherwise it must already be a physical address inside
/// a segment.
pub(super) fn physical_entry(elf: &Elf<'_>) -> Result<u64, LoadError> {
    let entry = elf.entry;
    let mut found = None;
    elf.for_each_load(|_, ph, _| {
        if found.is_none() && entry >= ph.vaddr && entry - ph.vaddr < ph.memsz {
            found = ph.paddr.checked_add(entry - ph.vaddr);
        }
        Ok(())
    })?;
    match found {
        Some(paddr) => Ok(paddr),
        None if contains_paddr(elf, entry)? => Ok(entry),
        None => Err(LoadError::EntryOutsideImage { entry }),
    }
}

#[cfg(test)]
pub(super) mod build {
    //! Builds small ELF files for tests.

    use super::*;

    pub struct Seg<'a> {
        pub p_type: u32,
        pub vaddr: u64,
        pub paddr: u64,
        pub data: &'a [u8],
        pub memsz: u64,
        pub align: u64,
    }

    impl<'a> Seg<'a> {
        pub fn load(paddr: u64, data: &'a [u8], memsz: u64) -> Self {
            Seg { p_type: PT_LOAD, vaddr: paddr, paddr, data, memsz, align: 0x1000 }
        }
        pub fn note(data: &'a [u8]) -> Self {
            Seg { p_type: PT_NOTE, vaddr: 0, paddr: 0, data, memsz: 0, align: 4 }
        }
    }

    /// One note entry with 4-byte padding.
    pub fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&n_type.to_le_bytes());
        v.extend_from_slice(name);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    /// An ELF executable with the given segments. `prefix` bytes (for
    /// example a multiboot header) are placed right after the program
    /// headers, before the segment contents; returns the image and the file
    /// offset of the prefix.
    pub fn elf(class: Class, entry: u64, segs: &[Seg<'_>], prefix: &[u8]) -> (Vec<u8>, usize) {
        let (ehsize, phentsize, machine) = match class {
            Class::Elf32 => (52usize, 32usize, EM_386),
            Class::Elf64 => (64, 56, EM_X86_64),
        };
        let mut f = vec![0u8; ehsize];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = if class == Class::Elf32 { 1 } else { 2 };
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        let phoff = ehsize;
        let prefix_at = phoff + phentsize * segs.len();
        let mut data_at = prefix_at + prefix.len();
        let mut offsets = Vec::new();
        for s in segs {
            data_at = data_at.next_multiple_of(16);
            offsets.push(data_at);
            data_at += s.data.len();
        }
        match class {
            Class::Elf32 => {
                f[0x18..0x1C].copy_from_slice(&(entry as u32).to_le_bytes());
                f[0x1C..0x20].copy_from_slice(&(phoff as u32).to_le_bytes());
                f[0x28..0x2A].copy_from_slice(&(ehsize as u16).to_le_bytes());
                f[0x2A..0x2C].copy_from_slice(&(phentsize as u16).to_le_bytes());
                f[0x2C..0x2E].copy_from_slice(&(segs.len() as u16).to_le_bytes());
            }
            Class::Elf64 => {
                f[0x18..0x20].copy_from_slice(&entry.to_le_bytes());
                f[0x20..0x28].copy_from_slice(&(phoff as u64).to_le_bytes());
                f[0x34..0x36].copy_from_slice(&(ehsize as u16).to_le_bytes());
                f[0x36..0x38].copy_from_slice(&(phentsize as u16).to_le_bytes());
                f[0x38..0x3A].copy_from_slice(&(segs.len() as u16).to_le_bytes());
            }
        }
        for (s, &off) in segs.iter().zip(&offsets) {
            let mut ph = vec![0u8; phentsize];
            let put32 = |ph: &mut Vec<u8>, at: usize, v: u64| ph[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
            let put64 = |ph: &mut Vec<u8>, at: usize, v: u64| ph[at..at + 8].copy_from_slice(&v.to_le_bytes());
            let memsz = s.memsz.max(s.data.len() as u64);
            put32(&mut ph, 0, s.p_type as u64);
            match class {
                Class::Elf32 => {
                    put32(&mut ph, 4, off as u64);
                    put32(&mut ph, 8, s.vaddr);
                    put32(&mut ph, 12, s.paddr);
                    put32(&mut ph, 16, s.data.len() as u64);
                    put32(&mut ph, 20, memsz);
                    put32(&mut ph, 24, 7);
                    put32(&mut ph, 28, s.align);
                }
                Class::Elf64 => {
                    put32(&mut ph, 4, 7);
                    put64(&mut ph, 8, off as u64);
                    put64(&mut ph, 16, s.vaddr);
                    put64(&mut ph, 24, s.paddr);
                    put64(&mut ph, 32, s.data.len() as u64);
                    put64(&mut ph, 40, memsz);
                    put64(&mut ph, 48, s.align);
                }
            }
            f.extend_from_slice(&ph);
        }
        f.extend_from_slice(prefix);
        for (s, &off) in segs.iter().zip(&offsets) {
            f.resize(off, 0);
            f.extend_from_slice(s.data);
        }
        (f, prefix_at)
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use guest_x86::mem::VecMemory;

    #[test]
    fn parses_elf32_and_elf64_headers_and_segments() {
        for class in [Class::Elf32, Class::Elf64] {
            let (img, _) = elf(class, 0x10_0010, &[Seg::load(0x10_0000, b"abcd", 8)], &[]);
            let e = Elf::parse(&img).unwrap();
            assert_eq!(e.class, class);
            assert_eq!(e.entry, 0x10_0010);
            assert_eq!(e.phnum, 1);
            e.check_x86_machine().unwrap();
            let ph = e.program_header(0).unwrap();
            assert_eq!((ph.p_type, ph.paddr, ph.filesz, ph.memsz), (PT_LOAD, 0x10_0000, 4, 8));
            assert_eq!(e.segment_bytes(0, &ph).unwrap(), b"abcd");
        }
    }

    #[test]
    fn rejects_bad_identification_fields() {
        let (img, _) = elf(Class::Elf64, 0, &[Seg::load(0x10_0000, b"x", 1)], &[]);
        let cases: [(usize, u8, &str); 5] = [
            (0, 0, "no ELF magic"),
            (4, 3, "EI_CLASS is neither ELFCLASS32 nor ELFCLASS64"),
            (5, 2, "not little-endian (EI_DATA != ELFDATA2LSB)"),
            (6, 0, "EI_VERSION is not EV_CURRENT"),
            (16, 1, "not an executable (e_type is neither ET_EXEC nor ET_DYN)"),
        ];
        for (at, value, reason) in cases {
            let mut bad = img.clone();
            bad[at] = value;
            assert_eq!(Elf::parse(&bad).unwrap_err(), LoadError::BadElfHeader { reason });
        }
    }

    #[test]
    fn rejects_program_header_table_outside_file() {
        let (mut img, _) = elf(Class::Elf64, 0, &[Seg::load(0x10_0000, b"x", 1)], &[]);
        img[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(Elf::parse(&img), Err(LoadError::Truncated { .. })));
    }

    #[test]
    fn rejects_zero_or_extended_program_header_count() {
        let (mut img, _) = elf(Class::Elf32, 0, &[Seg::load(0x10_0000, b"x", 1)], &[]);
        img[0x2C..0x2E].copy_from_slice(&0u16.to_le_bytes());
        assert!(matches!(Elf::parse(&img), Err(LoadError::BadElfHeader { .. })));
        img[0x2C..0x2E].copy_from_slice(&0xFFFFu16.to_le_bytes());
        assert!(matches!(Elf::parse(&img), Err(LoadError::BadElfHeader { .. })));
    }

    #[test]
    fn wrong_machine_for_class_is_rejected() {
        let (mut img, _) = elf(Class::Elf64, 0, &[Seg::load(0x10_0000, b"x", 1)], &[]);
        img[18..20].copy_from_slice(&EM_386.to_le_bytes());
        let e = Elf::parse(&img).unwrap();
        assert!(matches!(e.check_x86_machine(), Err(LoadError::BadElfHeader { .. })));
    }

    #[test]
    fn finds_note_by_owner_and_type_skipping_others() {
        let mut notes = note(b"GNU\0", 18, &[9; 20]);
        notes.extend(note(b"Xen\0", 5, b"xen-3.0\0"));
        notes.extend(note(b"Xen\0", 18, &0x1234u32.to_le_bytes()));
        let (img, _) = elf(Class::Elf64, 0, &[Seg::load(0x10_0000, b"x", 1), Seg::note(&notes)], &[]);
        let e = Elf::parse(&img).unwrap();
        assert_eq!(e.find_note(b"Xen\0", 18).unwrap(), Some(&0x1234u32.to_le_bytes()[..]));
        assert_eq!(e.find_note(b"Xen\0", 99).unwrap(), None);
    }

    #[test]
    fn note_running_past_its_segment_is_an_error() {
        let mut notes = note(b"Xen\0", 18, &[1, 2, 3, 4]);
        notes[4..8].copy_from_slice(&100u32.to_le_bytes());
        let (img, _) = elf(Class::Elf64, 0, &[Seg::note(&notes)], &[]);
        let e = Elf::parse(&img).unwrap();
        assert_eq!(e.find_note(b"Xen\0", 18), Err(LoadError::BadNote { segment: 0, offset: 0 }));
    }

    #[test]
    fn loads_segments_at_paddr_and_zeroes_bss() {
        let mut mem = VecMemory::new(0x40_0000);
        mem.0[0x20_0004..0x20_0010].fill(0xEE);
        let mut seg = Seg::load(0x20_0000, b"text", 0x10);
        seg.vaddr = 0xFFFF_FFFF_8000_0000;
        let (img, _) = elf(Class::Elf64, 0xFFFF_FFFF_8000_0002, &[seg], &[]);
        let e = Elf::parse(&img).unwrap();
        let ext = load_segments(&e, &mut mem, &MemLayout::new(0x40_0000)).unwrap();
        assert_eq!(ext, Extent { start: 0x20_0000, end: 0x20_0010 });
        assert_eq!(&mem.0[0x20_0000..0x20_0004], b"text");
        assert!(mem.0[0x20_0004..0x20_0010].iter().all(|&b| b == 0));
        assert_eq!(physical_entry(&e), Ok(0x20_0002));
    }

    #[test]
    fn segment_in_a_hole_or_beyond_ram_is_out_of_range() {
        let layout = MemLayout::new(0x40_0000);
        for paddr in [0xA_0000u64, 0x3F_FFFC, u64::MAX - 2] {
            let (img, _) = elf(Class::Elf64, 0, &[Seg::load(paddr, b"12345678", 8)], &[]);
            let e = Elf::parse(&img).unwrap();
            let mut mem = VecMemory::new(0x40_0000);
            assert_eq!(
                load_segments(&e, &mut mem, &layout),
                Err(LoadError::SegmentOutOfRange { index: 0, paddr, memsz: 8 })
            );
        }
    }

    #[test]
    fn filesz_larger_than_memsz_is_a_bad_segment() {
        let (mut img, _) = elf(Class::Elf32, 0, &[Seg::load(0x10_0000, b"abcd", 4)], &[]);
        // ELF32 p_memsz of program header 0 is at 52 + 20.
        img[72..76].copy_from_slice(&2u32.to_le_bytes());
        let e = Elf::parse(&img).unwrap();
        let mut mem = VecMemory::new(0x40_0000);
        assert_eq!(
            load_segments(&e, &mut mem, &MemLayout::new(0x40_0000)),
            Err(LoadError::BadSegment { index: 0, reason: "p_filesz is larger than p_memsz" })
        );
    }

    #[test]
    fn elf_without_load_segments_has_nothing_to_load() {
        let (img, _) = elf(Class::Elf64, 0, &[Seg::note(&note(b"a\0", 1, b""))], &[]);
        let e = Elf::parse(&img).unwrap();
        let mut mem = VecMemory::new(0x40_0000);
        assert_eq!(load_segments(&e, &mut mem, &MemLayout::new(0x40_0000)), Err(LoadError::NoLoadableSegments));
    }

    #[test]
    fn entry_outside_every_segment_is_rejected() {
        let (img, _) = elf(Class::Elf32, 0x50_0000, &[Seg::load(0x10_0000, b"ab", 2)], &[]);
        let e = Elf::parse(&img).unwrap();
        assert_eq!(physical_entry(&e), Err(LoadError::EntryOutsideImage { entry: 0x50_0000 }));
    }
}

//! The guest-physical memory layout shared by all loaders: where RAM is,
//! the e820 map that describes it, and where loader structures go.
//!
//! See the table in the [module documentation](super) for the picture.

use super::bytes::{align_down, align_up};
use super::error::LoadError;
use guest_x86::mem::GuestMemory;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Start of the loader's boot area: GDT, page tables, boot information,
/// memory maps, module lists and command lines. Reserved in the e820 map.
pub const BOOT_AREA_START: u64 = 0x8_0000;
/// The GDT (one page; six descriptors used).
pub const GDT_ADDR: u64 = 0x8_0000;
/// PML4 of the identity map (64-bit entry only).
pub const PML4_ADDR: u64 = 0x8_1000;
/// The one PDPT of the identity map.
pub const PDPT_ADDR: u64 = 0x8_2000;
/// Four page directories of 2 MiB pages, covering [0, 4 GiB).
pub const PD_ADDR: u64 = 0x8_3000;
/// How many page directories (1 GiB each) the identity map has.
pub const IDENTITY_MAP_GIB: u64 = 4;
/// Linux `boot_params` (zero page), PVH `hvm_start_info`, or the multiboot
/// information structure.
pub const BOOT_INFO_ADDR: u64 = 0x8_7000;
/// PVH memory map table or multiboot mmap buffer.
pub const MEMMAP_ADDR: u64 = 0x8_8000;
/// PVH module list or multiboot module list.
pub const MODLIST_ADDR: u64 = 0x8_9000;
/// Size of the module list page.
pub const MODLIST_SIZE: u64 = 0x1000;
/// NUL-terminated strings: the kernel command line, then module command
/// lines and the boot loader name.
pub const STRINGS_ADDR: u64 = 0x8_A000;
/// Size of the string area.
pub const STRINGS_SIZE: u64 = 0x1_0000;
/// End of the boot area, where the (empty) EBDA begins.
pub const BOOT_AREA_END: u64 = 0x9_FC00;
/// Extended BIOS data area, reserved as on a PC.
pub const EBDA_START: u64 = 0x9_FC00;
/// End of conventional memory; [0xA0000, 0xF0000) is a hole (VGA, ROMs).
pub const LOW_MEM_END: u64 = 0xA_0000;
/// The system BIOS area, reserved as on a PC.
pub const BIOS_START: u64 = 0xF_0000;
/// The ACPI tables (RSDP first) fill the start of the BIOS area.
pub const ACPI_AREA_START: u64 = BIOS_START;
/// End of the area the ACPI tables may use: the end of the BIOS area.
pub const ACPI_AREA_END: u64 = HIGH_MEM_START;
/// Start of RAM above 1 MiB.
pub const HIGH_MEM_START: u64 = 0x10_0000;

/// Smallest RAM size the loaders accept (enough for the boot area and a
/// tiny kernel; Linux wants far more).
pub const MIN_RAM_SIZE: u64 = 2 * MIB;
/// Largest RAM size: RAM stays below the 32-bit MMIO hole
/// [0xE000_0000, 4 GiB) (PCI, IOAPIC, LAPIC). RAM above 4 GiB is not
/// supported yet.
pub const MAX_RAM_SIZE: u64 = 0xE000_0000;

/// The VM's RAM: `ram_size` bytes from guest-physical address 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemLayout {
    pub ram_size: u64,
}

impl Default for MemLayout {
    /// 256 MiB.
    fn default() -> Self {
        MemLayout { ram_size: 256 * MIB }
    }
}

impl MemLayout {
    pub const fn new(ram_size: u64) -> Self {
        MemLayout { ram_size }
    }

    /// Checks that the layout is one the loaders support.
    pub fn validate(&self) -> Result<(), LoadError> {
        let r = self.ram_size;
        if !(MIN_RAM_SIZE..=MAX_RAM_SIZE).contains(&r) || !r.is_multiple_of(0x1000) {
            return Err(LoadError::BadRamSize { ram_size: r });
        }
        Ok(())
    }

    /// Checks the layout and that `mem` backs all of it.
    pub(super) fn check_memory<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<(), LoadError> {
        self.validate()?;
        if mem.size() < self.ram_size {
            return Err(LoadError::GuestMemoryTooSmall { memory_size: mem.size(), ram_size: self.ram_size });
        }
        Ok(())
    }
}

/// The type of an e820 range (the same numbers serve PVH's memmap and
/// multiboot's mmap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    Ram = 1,
    Reserved = 2,
}

/// One range of the BIOS-style memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: E820Type,
}

impl E820Entry {
    pub const fn end(&self) -> u64 {
        self.addr + self.size
    }
}

/// Capacity of the array returned by [`e820_map`].
pub const E820_MAX_ENTRIES: usize = 8;

/// The memory map every loader hands to its guest, sorted by address. The
/// first `n` entries of the array are valid. `layout` should satisfy
/// [`MemLayout::validate`]; if RAM ends at or below 1 MiB the high-memory
/// entry is left out.
pub fn e820_map(layout: &MemLayout) -> ([E820Entry; E820_MAX_ENTRIES], usize) {
    let entry = |addr: u64, end: u64, kind| E820Entry { addr, size: end - addr, kind };
    let mut map = [entry(0, 0, E820Type::Reserved); E820_MAX_ENTRIES];
    map[0] = entry(0, BOOT_AREA_START, E820Type::Ram);
    map[1] = entry(BOOT_AREA_START, BOOT_AREA_END, E820Type::Reserved);
    map[2] = entry(EBDA_START, LOW_MEM_END, E820Type::Reserved);
    map[3] = entry(BIOS_START, HIGH_MEM_START, E820Type::Reserved);
    let mut n = 4;
    if layout.ram_size > HIGH_MEM_START {
        map[n] = entry(HIGH_MEM_START, layout.ram_size, E820Type::Ram);
        n += 1;
    }
    (map, n)
}

/// Whether `[addr, addr + len)` lies inside one usable (RAM) e820 range.
pub(super) fn is_usable(layout: &MemLayout, addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let (map, n) = e820_map(layout);
    map[..n].iter().any(|e| e.kind == E820Type::Ram && e.addr <= addr && end <= e.end())
}

/// Where to put an initrd of `size` bytes: page aligned, as high as
/// possible, ending at or below `top`, starting at or above `floor` (the end
/// of the kernel). Returns its address.
pub(super) fn place_initrd(layout: &MemLayout, size: u64, floor: u64, top: u64) -> Result<u64, LoadError> {
    let top = top.min(layout.ram_size);
    let floor = align_up(floor.max(HIGH_MEM_START), 0x1000).unwrap_or(u64::MAX);
    let available = top.saturating_sub(floor);
    let too_large = LoadError::InitrdTooLarge { size, available };
    let start = align_down(top.checked_sub(size).ok_or(too_large)?, 0x1000);
    if start < floor || !is_usable(layout, start, size) {
        return Err(too_large);
    }
    Ok(start)
}

/// Appends NUL-terminated strings to the boot area's string region.
pub(super) struct StringArea {
    next: u64,
}

impl StringArea {
    pub(super) fn new() -> Self {
        StringArea { next: STRINGS_ADDR }
    }

    /// Bytes still free, including room for a terminator.
    pub(super) fn remaining(&self) -> u64 {
        STRINGS_ADDR + STRINGS_SIZE - self.next
    }

    /// Copies `s` and a terminating NUL into guest memory and returns the
    /// string's address. `s` must not contain NUL, and must be at most
    /// `max_len` bytes (and fit in the area).
    pub(super) fn push<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        s: &[u8],
        max_len: u64,
    ) -> Result<u64, LoadError> {
        if let Some(offset) = s.iter().position(|&b| b == 0) {
            return Err(LoadError::CmdlineContainsNul { offset: offset as u64 });
        }
        let max = max_len.min(self.remaining().saturating_sub(1));
        let len = s.len() as u64;
        if len > max {
            return Err(LoadError::CmdlineTooLong { len, max });
        }
        let addr = self.next;
        mem.write(addr, s)?;
        mem.write(addr + len, &[0])?;
        self.next = addr + len + 1;
        Ok(addr)
    }
}

/// Zeroes the whole boot area, so that no stale bytes leak into the
/// structures built there.
pub(super) fn clear_boot_area<M: GuestMemory + ?Sized>(mem: &mut M) -> Result<(), LoadError> {
    mem.zero(BOOT_AREA_START, BOOT_AREA_END - BOOT_AREA_START)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_x86::mem::VecMemory;

    fn ranges(layout: &MemLayout) -> Vec<(u64, u64, E820Type)> {
        let (map, n) = e820_map(layout);
        map[..n].iter().map(|e| (e.addr, e.end(), e.kind)).collect()
    }

    #[test]
    fn e820_map_for_256_mib_has_pc_holes_and_reserved_boot_area() {
        use E820Type::*;
        assert_eq!(
            ranges(&MemLayout::default()),
            vec![
                (0, 0x8_0000, Ram),
                (0x8_0000, 0x9_FC00, Reserved),
                (0x9_FC00, 0xA_0000, Reserved),
                (0xF_0000, 0x10_0000, Reserved),
                (0x10_0000, 0x1000_0000, Ram),
            ]
        );
    }

    #[test]
    fn e820_map_high_ram_ends_at_ram_size_from_16_mib_to_3_5_gib() {
        for ram in [16 * MIB, 3 * 1024 * MIB, MAX_RAM_SIZE] {
            let layout = MemLayout::new(ram);
            assert_eq!(layout.validate(), Ok(()));
            let r = ranges(&layout);
            assert_eq!(r.last(), Some(&(HIGH_MEM_START, ram, E820Type::Ram)));
        }
    }

    #[test]
    fn e820_map_is_sorted_and_disjoint() {
        let (map, n) = e820_map(&MemLayout::default());
        for w in map[..n].windows(2) {
            assert!(w[0].end() <= w[1].addr, "{:?} overlaps {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn boot_area_structures_lie_inside_the_reserved_boot_area() {
        let pd_end = PD_ADDR + IDENTITY_MAP_GIB * 0x1000;
        assert!(pd_end <= BOOT_INFO_ADDR);
        for (start, end) in [
            (GDT_ADDR, PML4_ADDR),
            (PML4_ADDR, PDPT_ADDR),
            (PDPT_ADDR, PD_ADDR),
            (PD_ADDR, pd_end),
            (BOOT_INFO_ADDR, MEMMAP_ADDR),
            (MEMMAP_ADDR, MODLIST_ADDR),
            (MODLIST_ADDR, MODLIST_ADDR + MODLIST_SIZE),
            (STRINGS_ADDR, STRINGS_ADDR + STRINGS_SIZE),
        ] {
            assert!(start < end);
            assert!(BOOT_AREA_START <= start && end <= BOOT_AREA_END);
            assert!(!is_usable(&MemLayout::default(), start, end - start));
        }
    }

    #[test]
    fn ram_sizes_outside_the_supported_range_are_rejected() {
        for ram in [0, MIB, MIN_RAM_SIZE - 0x1000, MAX_RAM_SIZE + 0x1000, 16 * MIB + 1] {
            assert_eq!(MemLayout::new(ram).validate(), Err(LoadError::BadRamSize { ram_size: ram }));
        }
    }

    #[test]
    fn memory_smaller_than_layout_is_rejected() {
        let mem = VecMemory::new(4 * MIB as usize);
        assert_eq!(
            MemLayout::new(8 * MIB).check_memory(&mem),
            Err(LoadError::GuestMemoryTooSmall { memory_size: 4 * MIB, ram_size: 8 * MIB })
        );
    }

    #[test]
    fn usable_ranges_exclude_holes_and_wraparound() {
        let l = MemLayout::new(16 * MIB);
        assert!(is_usable(&l, 0x1000, 0x1000));
        assert!(is_usable(&l, HIGH_MEM_START, 15 * MIB));
        assert!(!is_usable(&l, HIGH_MEM_START, 15 * MIB + 1));
        assert!(!is_usable(&l, 0x7_F000, 0x2000));
        assert!(!is_usable(&l, LOW_MEM_END, 0x1000));
        assert!(!is_usable(&l, u64::MAX - 1, 4));
    }

    #[test]
    fn initrd_goes_page_aligned_at_top_below_limit() {
        let l = MemLayout::new(16 * MIB);
        assert_eq!(place_initrd(&l, 0x1800, 0x20_0000, u64::MAX), Ok(16 * MIB - 0x2000));
        assert_eq!(place_initrd(&l, 0x1000, 0x20_0000, 8 * MIB), Ok(8 * MIB - 0x1000));
        assert_eq!(
            place_initrd(&l, 15 * MIB, 2 * MIB, u64::MAX),
            Err(LoadError::InitrdTooLarge { size: 15 * MIB, available: 14 * MIB })
        );
        assert!(place_initrd(&l, u64::MAX, 0, u64::MAX).is_err());
    }

    #[test]
    fn string_area_appends_nul_terminated_strings() {
        let mut mem = VecMemory::new(MIB as usize);
        let mut s = StringArea::new();
        let a = s.push(&mut mem, b"abc", 100).unwrap();
        let b = s.push(&mut mem, b"", 100).unwrap();
        assert_eq!(a, STRINGS_ADDR);
        assert_eq!(b, STRINGS_ADDR + 4);
        assert_eq!(&mem.0[a as usize..a as usize + 5], b"abc\0\0");
    }

    #[test]
    fn string_area_rejects_nul_and_overlong_strings() {
        let mut mem = VecMemory::new(MIB as usize);
        let mut s = StringArea::new();
        assert_eq!(s.push(&mut mem, b"a\0b", 100), Err(LoadError::CmdlineContainsNul { offset: 1 }));
        assert_eq!(s.push(&mut mem, b"abcd", 3), Err(LoadError::CmdlineTooLong { len: 4, max: 3 }));
        let big = vec![b'x'; STRINGS_SIZE as usize];
        assert_eq!(
            s.push(&mut mem, &big, u64::MAX),
            Err(LoadError::CmdlineTooLong { len: STRINGS_SIZE, max: STRINGS_SIZE - 1 })
        );
    }
}

//! The bits of a long-mode page-table entry (AMD APM vol. 2, section 5.3).
//!
//! Table entries (pointing to the next level) always carry P, R/W and U, so
//! that the leaf alone decides what is allowed: the effective rights of a
//! translation are the intersection over all levels.

use crate::{HostPhysAddr, Perms};

pub(crate) const PRESENT: u64 = 1 << 0;
pub(crate) const WRITABLE: u64 = 1 << 1;
pub(crate) const USER: u64 = 1 << 2;
pub(crate) const WRITE_THROUGH: u64 = 1 << 3;
pub(crate) const CACHE_DISABLE: u64 = 1 << 4;
/// PS: the entry maps a page (levels 2 and 3 only; at level 1 this is PAT).
pub(crate) const PAGE_SIZE: u64 = 1 << 7;
pub(crate) const NO_EXECUTE: u64 = 1 << 63;
/// Bits 12..52: the address of a 4 KiB frame.
pub(crate) const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Entries per table.
pub(crate) const ENTRIES: usize = 512;
/// Levels of the walk; level 4 is the PML4, level 1 the PT.
pub(crate) const LEVELS: u8 = 4;

/// log2 of the bytes one entry at `level` covers.
pub(crate) const fn shift(level: u8) -> u32 {
    12 + 9 * (level as u32 - 1)
}

/// Bytes one entry at `level` covers.
pub(crate) const fn span(level: u8) -> u64 {
    1 << shift(level)
}

/// Which entry of a level-`level` table covers `addr`.
pub(crate) const fn index(addr: u64, level: u8) -> usize {
    ((addr >> shift(level)) & (ENTRIES as u64 - 1)) as usize
}

/// A decoded entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Entry {
    /// Not present.
    Empty,
    /// Points to the next-level table.
    Table(HostPhysAddr),
    /// Maps a page starting at `hpa`.
    Leaf { hpa: u64, perms: Perms },
}

/// Decodes an entry of a level-`level` table. Accessed and dirty bits are
/// ignored.
pub(crate) fn decode(raw: u64, level: u8) -> Entry {
    if raw & PRESENT == 0 {
        return Entry::Empty;
    }
    let is_leaf = level == 1 || ((level == 2 || level == 3) && raw & PAGE_SIZE != 0);
    if !is_leaf {
        return Entry::Table(HostPhysAddr(raw & ADDR_MASK));
    }
    let mut perms = Perms::READ;
    perms.set(Perms::WRITE, raw & WRITABLE != 0);
    perms.set(Perms::USER, raw & USER != 0);
    perms.set(Perms::WRITE_THROUGH, raw & WRITE_THROUGH != 0);
    perms.set(Perms::CACHE_DISABLE, raw & CACHE_DISABLE != 0);
    perms.set(Perms::EXECUTE, raw & NO_EXECUTE == 0);
    Entry::Leaf { hpa: raw & ADDR_MASK & !(span(level) - 1), perms }
}

/// An entry pointing to the table at `table`.
pub(crate) const fn table(table: HostPhysAddr) -> u64 {
    (table.0 & ADDR_MASK) | PRESENT | WRITABLE | USER
}

/// A leaf at `level` mapping the page at `hpa` with `perms` (already
/// normalized for the flavor: `USER` decides the U bit).
pub(crate) fn leaf(hpa: u64, perms: Perms, level: u8) -> u64 {
    let mut raw = (hpa & ADDR_MASK) | PRESENT;
    if perms.contains(Perms::WRITE) {
        raw |= WRITABLE;
    }
    if perms.contains(Perms::USER) {
        raw |= USER;
    }
    if perms.contains(Perms::WRITE_THROUGH) {
        raw |= WRITE_THROUGH;
    }
    if perms.contains(Perms::CACHE_DISABLE) {
        raw |= CACHE_DISABLE;
    }
    if !perms.contains(Perms::EXECUTE) {
        raw |= NO_EXECUTE;
    }
    if level > 1 {
        raw |= PAGE_SIZE;
    }
    raw
}

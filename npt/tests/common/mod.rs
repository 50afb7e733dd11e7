//! Helpers shared by the integration tests: an independent reading of the
//! tables (the abstraction function of the refinement tests) and checks of
//! their shape.
//!
//! The walker decodes entries from the bit layout in the AMD APM itself, not
//! with the crate's decoder, so a decoding bug cannot hide behind itself.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use npt::{FlavorKind, HostPhysAddr, PageSize, Perms, TableMemory};

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Entry `index` of the table at `table`, read straight from memory.
pub fn raw_entry<M: TableMemory>(mem: &M, table: HostPhysAddr, index: usize) -> u64 {
    mem.read_entry(table, index)
}

/// A leaf found by the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub addr: u64,
    pub hpa: u64,
    pub size: PageSize,
    pub perms: Perms,
    /// The raw entry.
    pub raw: u64,
}

/// What a full walk of a table finds.
#[derive(Debug, Default)]
pub struct Walked {
    /// Every mapped 4 KiB page: address → (frame, permissions).
    pub pages: BTreeMap<u64, (u64, Perms)>,
    /// Every table frame reached, the root included.
    pub tables: BTreeSet<HostPhysAddr>,
    /// Every leaf.
    pub leaves: Vec<Leaf>,
    /// Entries breaking the format's or the flavor's rules.
    pub problems: Vec<String>,
}

/// Walks the table at `root` as the CPU would.
pub fn walk<M: TableMemory>(mem: &M, root: HostPhysAddr, flavor: FlavorKind) -> Walked {
    let mut walked = Walked::default();
    walk_table(mem, root, 4, 0, flavor, true, &mut walked);
    walked
}

/// Like [`walk`], without expanding leaves into pages (cheap with 1 GiB pages).
pub fn walk_shape<M: TableMemory>(mem: &M, root: HostPhysAddr, flavor: FlavorKind) -> Walked {
    let mut walked = Walked::default();
    walk_table(mem, root, 4, 0, flavor, false, &mut walked);
    walked
}

fn walk_table<M: TableMemory>(
    mem: &M,
    table: HostPhysAddr,
    level: u32,
    base: u64,
    flavor: FlavorKind,
    expand: bool,
    walked: &mut Walked,
) {
    if !walked.tables.insert(table) {
        walked.problems.push(format!("table {table:?} reached twice"));
        return;
    }
    let span = 1u64 << (12 + 9 * (level - 1));
    for i in 0..512 {
        let raw = mem.read_entry(table, i);
        if raw & P == 0 {
            if raw != 0 {
                walked.problems.push(format!("non-present entry {raw:#x} is not zero"));
            }
            continue;
        }
        let mut addr = base + i as u64 * span;
        if flavor == FlavorKind::Host && addr >= 1 << 47 {
            addr |= 0xffff_0000_0000_0000;
        }
        let is_leaf = level == 1 || (level <= 3 && raw & PS != 0);
        if level == 4 && raw & PS != 0 {
            walked.problems.push(format!("PML4 entry {i} has PS set"));
        }
        if !is_leaf {
            if raw & (RW | US) != RW | US {
                walked.problems.push(format!("table entry {raw:#x} at level {level} lacks R/W or U"));
            }
            walk_table(mem, HostPhysAddr(raw & ADDR), level - 1, base + i as u64 * span, flavor, expand, walked);
            continue;
        }
        let hpa = raw & ADDR;
        if !hpa.is_multiple_of(span) {
            walked.problems.push(format!("leaf {raw:#x} at level {level} has a misaligned frame"));
        }
        if flavor == FlavorKind::Nested && raw & US == 0 {
            walked.problems.push(format!("nested leaf {raw:#x} lacks U"));
        }
        let mut perms = Perms::READ;
        perms.set(Perms::WRITE, raw & RW != 0);
        perms.set(Perms::USER, raw & US != 0);
        perms.set(Perms::WRITE_THROUGH, raw & PWT != 0);
        perms.set(Perms::CACHE_DISABLE, raw & PCD != 0);
        perms.set(Perms::EXECUTE, raw & NX == 0);
        let size = match level {
            1 => PageSize::Size4K,
            2 => PageSize::Size2M,
            _ => PageSize::Size1G,
        };
        walked.leaves.push(Leaf { addr, hpa, size, perms, raw });
        if expand {
            for k in 0..span / 4096 {
                walked.pages.insert(addr + k * 4096, (hpa + k * 4096, perms));
            }
        }
    }
}

/// Describes how two page maps differ, or `None` if they are equal.
pub fn diff(expected: &BTreeMap<u64, (u64, Perms)>, seen: &BTreeMap<u64, (u64, Perms)>) -> Option<String> {
    if expected == seen {
        return None;
    }
    let mut lines = vec![format!("expected {} pages, seen {}", expected.len(), seen.len())];
    let keys: BTreeSet<u64> = expected.keys().chain(seen.keys()).copied().collect();
    for key in keys {
        let (e, s) = (expected.get(&key), seen.get(&key));
        if e != s {
            lines.push(format!("page {key:#x}: expected {e:x?}, seen {s:x?}"));
            if lines.len() > 8 {
                lines.push("...".into());
                break;
            }
        }
    }
    Some(lines.join("\n"))
}

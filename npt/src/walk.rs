//! The walks behind every operation.
//!
//! A changing operation is one recursive pass over the tables ([`Walk`]),
//! run twice: first as a dry run that writes nothing and counts the tables
//! the change needs, then, once that many frames are reserved, for real.
//! Both runs take the same decisions, because the dry run sees the tables it
//! would create as virtual nodes ([`Node::Fresh`], [`Node::Split`]) whose
//! entries read as the real ones would. So the real run never runs out of
//! frames, and an operation either completes or changes nothing.

use crate::entry::{self, Entry, ENTRIES, LEVELS};
use crate::{FrameSource, HostPhysAddr, NptError, PageSize, Perms, TableMemory};

/// The highest physical address bit plus one (MAXPHYADDR of long mode).
pub(crate) const PHYS_LIMIT: u64 = 1 << 52;

/// What an operation does to every page of its range.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// Map the range starting at `start` to `hpa..` with `perms`.
    Map { start: u64, hpa: u64, perms: Perms },
    /// Remove the mappings of the range.
    Unmap,
    /// Keep each page's address, set its permissions to `perms`.
    Protect { perms: Perms },
}

impl Op {
    /// The host-physical address a `Map` gives to `addr`.
    fn hpa_at(self, addr: u64) -> u64 {
        match self {
            Op::Map { start, hpa, .. } => hpa + (addr - start),
            Op::Unmap | Op::Protect { .. } => 0,
        }
    }

    /// What the op makes of a page now mapped to `hpa` with `perms`.
    fn apply_to(self, addr: u64, hpa: u64) -> Option<(u64, Perms)> {
        match self {
            Op::Map { perms: new, .. } => Some((self.hpa_at(addr), new)),
            Op::Unmap => None,
            Op::Protect { perms: new } => Some((hpa, new)),
        }
    }
}

/// Whether replacing the translation `old` by `new` can leave a TLB entry
/// that allows more than the table does: anything but adding rights to a
/// page that keeps its frame and caching.
pub(crate) fn needs_flush(old: (u64, Perms), new: Option<(u64, Perms)>) -> bool {
    match new {
        None => true,
        Some((hpa, perms)) => {
            hpa != old.0 || !perms.rights().contains(old.1.rights()) || perms.caching() != old.1.caching()
        }
    }
}

/// Checks a frame from the frame source.
pub(crate) fn frame_ok(frame: HostPhysAddr) -> bool {
    frame.is_aligned(PageSize::Size4K.bytes()) && frame.0 < PHYS_LIMIT
}

/// Frames set aside for one operation, kept as a list threaded through
/// entry 0 of each frame (as `next | 1`, so 0 ends the list). Needs no heap.
pub(crate) struct Reserve {
    head: Option<HostPhysAddr>,
    len: usize,
}

impl Reserve {
    /// `count` frames, or all given back and an error.
    pub(crate) fn take_from<B: FrameSource + TableMemory>(mem: &mut B, count: usize) -> Result<Reserve, NptError> {
        let mut reserve = Reserve { head: None, len: 0 };
        while reserve.len < count {
            let error = match mem.alloc_table() {
                Some(frame) if frame_ok(frame) => {
                    reserve.push(mem, frame);
                    continue;
                }
                Some(frame) => {
                    mem.free_table(frame);
                    NptError::BadFrame
                }
                None => NptError::OutOfFrames,
            };
            reserve.give_back(mem);
            return Err(error);
        }
        Ok(reserve)
    }

    fn push<M: TableMemory>(&mut self, mem: &mut M, frame: HostPhysAddr) {
        let link = self.head.map_or(0, |next| next.0 | 1);
        mem.write_entry(frame, 0, link);
        self.head = Some(frame);
        self.len += 1;
    }

    /// A zeroed frame from the reserve.
    fn pop<M: TableMemory>(&mut self, mem: &mut M) -> Option<HostPhysAddr> {
        let frame = self.head?;
        let link = mem.read_entry(frame, 0);
        mem.write_entry(frame, 0, 0);
        self.head = (link & 1 == 1).then_some(HostPhysAddr(link & !1));
        self.len -= 1;
        Some(frame)
    }

    /// Frees whatever is left.
    pub(crate) fn give_back<B: FrameSource + TableMemory>(mut self, mem: &mut B) {
        while let Some(frame) = self.pop(mem) {
            mem.free_table(frame);
        }
    }
}

/// A table as one run of a walk sees it.
#[derive(Clone, Copy, Debug)]
enum Node {
    /// A table in memory.
    Real(HostPhysAddr),
    /// Dry run: a new, empty table.
    Fresh,
    /// Dry run: the table a split of the page at `hpa` would create; its
    /// entries map consecutive smaller pages with the same `perms`.
    Split { hpa: u64, perms: Perms },
}

/// One run of a changing operation over `root`.
pub(crate) struct Walk<'m, B> {
    mem: &'m mut B,
    /// Dry run: count tables, write nothing.
    dry_run: bool,
    /// The highest level at which leaves may be created (3 allows 1 GiB).
    max_leaf_level: u8,
    /// Dry run: how many tables the change needs.
    pub(crate) tables_needed: usize,
    /// Real run: where new tables come from.
    reserve: Reserve,
    /// Real run: the smallest range holding every stale translation,
    /// as `(start, last byte)`.
    pub(crate) stale: Option<(u64, u64)>,
}

impl<'m, B: FrameSource + TableMemory> Walk<'m, B> {
    /// A dry run.
    pub(crate) fn dry(mem: &'m mut B, max_page: PageSize) -> Self {
        Self::new(mem, true, max_page, Reserve { head: None, len: 0 })
    }

    /// A real run that takes new tables from `reserve`.
    pub(crate) fn real(mem: &'m mut B, max_page: PageSize, reserve: Reserve) -> Self {
        Self::new(mem, false, max_page, reserve)
    }

    fn new(mem: &'m mut B, dry_run: bool, max_page: PageSize, reserve: Reserve) -> Self {
        Walk { mem, dry_run, max_leaf_level: max_page.level(), tables_needed: 0, reserve, stale: None }
    }

    /// Applies `op` to `start..end` (a nonempty range below 2^48).
    pub(crate) fn run(&mut self, root: HostPhysAddr, start: u64, end: u64, op: Op) {
        self.visit(Node::Real(root), LEVELS, start, end, op);
    }

    /// Hands back the frames the run did not use (none, if the dry run
    /// counted right).
    pub(crate) fn finish(self) -> Option<(u64, u64)> {
        debug_assert_eq!(self.reserve.len, 0, "npt: dry run over-counted tables");
        self.reserve.give_back(self.mem);
        self.stale
    }

    /// Applies `op` to the part `start..end` of the level-`level` table
    /// `node`.
    fn visit(&mut self, node: Node, level: u8, start: u64, end: u64, op: Op) {
        let span = entry::span(level);
        let first = entry::index(start, level);
        let last = entry::index(end - 1, level);
        let first_base = start & !(span - 1);
        for i in first..=last {
            let base = first_base + (i - first) as u64 * span;
            let from = start.max(base);
            let to = end.min(base + span);
            let whole = from == base && to == base + span;
            match self.entry(node, level, i) {
                Entry::Table(table) => self.visit(Node::Real(table), level - 1, from, to, op),
                Entry::Empty => {
                    if let Op::Map { perms, .. } = op {
                        if whole && self.leaf_fits(level, base, op) {
                            self.write(node, i, entry::leaf(op.hpa_at(base), perms, level));
                        } else {
                            let child = self.new_table(node, i);
                            self.visit(child, level - 1, from, to, op);
                        }
                    }
                }
                Entry::Leaf { hpa, perms } => {
                    if whole && self.leaf_fits(level, base, op) {
                        let new = op.apply_to(base, hpa);
                        if new != Some((hpa, perms)) {
                            let raw = new.map_or(0, |(h, p)| entry::leaf(h, p, level));
                            self.write(node, i, raw);
                            if needs_flush((hpa, perms), new) {
                                self.stale(base, span);
                            }
                        }
                    } else if op.apply_to(from, hpa + (from - base)) != Some((hpa + (from - base), perms)) {
                        // Only part of this page changes: split it, then
                        // change the smaller pages.
                        let child = self.split(node, i, level, hpa, perms);
                        self.stale(base, span);
                        self.visit(child, level - 1, from, to, op);
                    }
                }
            }
        }
    }

    /// Whether `op` may put a leaf in an entry at `level` covering `base..`.
    fn leaf_fits(&self, level: u8, base: u64, op: Op) -> bool {
        match op {
            Op::Map { .. } => level <= self.max_leaf_level && op.hpa_at(base).is_multiple_of(entry::span(level)),
            // These only meet leaves that exist already.
            Op::Unmap | Op::Protect { .. } => true,
        }
    }

    fn entry(&self, node: Node, level: u8, i: usize) -> Entry {
        match node {
            Node::Real(table) => entry::decode(self.mem.read_entry(table, i), level),
            Node::Fresh => Entry::Empty,
            Node::Split { hpa, perms } => Entry::Leaf { hpa: hpa + i as u64 * entry::span(level), perms },
        }
    }

    fn write(&mut self, node: Node, i: usize, raw: u64) {
        if let (false, Node::Real(table)) = (self.dry_run, node) {
            self.mem.write_entry(table, i, raw);
        }
    }

    fn stale(&mut self, base: u64, span: u64) {
        let last = base + (span - 1);
        self.stale = Some(match self.stale {
            None => (base, last),
            Some((s, l)) => (s.min(base), l.max(last)),
        });
    }

    /// A frame from the reserve.
    fn frame(&mut self) -> HostPhysAddr {
        match self.reserve.pop(self.mem) {
            Some(frame) => frame,
            // The dry run takes the same path as this run, so it counted
            // every table this run creates.
            None => unreachable!("npt: dry run under-counted tables"),
        }
    }

    /// Puts a new empty table into entry `i` of `node`.
    fn new_table(&mut self, node: Node, i: usize) -> Node {
        if self.dry_run {
            self.tables_needed += 1;
            return Node::Fresh;
        }
        let table = self.frame();
        self.write(node, i, entry::table(table));
        Node::Real(table)
    }

    /// Replaces the leaf in entry `i` of the level-`level` table `node` by a
    /// table of 512 smaller leaves with the same translations.
    fn split(&mut self, node: Node, i: usize, level: u8, hpa: u64, perms: Perms) -> Node {
        if self.dry_run {
            self.tables_needed += 1;
            return Node::Split { hpa, perms };
        }
        let table = self.frame();
        let child_span = entry::span(level - 1);
        for j in 0..ENTRIES {
            let raw = entry::leaf(hpa + j as u64 * child_span, perms, level - 1);
            self.mem.write_entry(table, j, raw);
        }
        // Link the filled table last, so a walker never sees it half built.
        self.write(node, i, entry::table(table));
        Node::Real(table)
    }
}

/// Whether some page of `start..end` is mapped, and whether all are.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Coverage {
    pub(crate) any: bool,
    pub(crate) all: bool,
}

/// Which pages of `start..end` the level-`level` table at `table` maps.
pub(crate) fn coverage<M: TableMemory>(mem: &M, table: HostPhysAddr, level: u8, start: u64, end: u64) -> Coverage {
    let span = entry::span(level);
    let first = entry::index(start, level);
    let last = entry::index(end - 1, level);
    let first_base = start & !(span - 1);
    let mut seen = Coverage { any: false, all: true };
    for i in first..=last {
        let base = first_base + (i - first) as u64 * span;
        match entry::decode(mem.read_entry(table, i), level) {
            Entry::Empty => seen.all = false,
            Entry::Leaf { .. } => seen.any = true,
            Entry::Table(child) => {
                let below = coverage(mem, child, level - 1, start.max(base), end.min(base + span));
                seen.any |= below.any;
                seen.all &= below.all;
            }
        }
    }
    seen
}

/// The leaf translating `addr` (below 2^48): its page's frame, its
/// permissions and its level.
pub(crate) fn lookup<M: TableMemory>(mem: &M, root: HostPhysAddr, addr: u64) -> Option<(u64, Perms, u8)> {
    let mut table = root;
    for level in (1..=LEVELS).rev() {
        match entry::decode(mem.read_entry(table, entry::index(addr, level)), level) {
            Entry::Empty => return None,
            Entry::Table(child) => table = child,
            Entry::Leaf { hpa, perms } => return Some((hpa, perms, level)),
        }
    }
    None
}

/// Calls `visit(address, frame, level, perms)` for every leaf under the
/// level-`level` table at `table`, which covers addresses from `base`.
pub(crate) fn for_each_leaf<M: TableMemory>(
    mem: &M,
    table: HostPhysAddr,
    level: u8,
    base: u64,
    visit: &mut dyn FnMut(u64, u64, u8, Perms),
) {
    for i in 0..ENTRIES {
        let at = base + i as u64 * entry::span(level);
        match entry::decode(mem.read_entry(table, i), level) {
            Entry::Empty => {}
            Entry::Leaf { hpa, perms } => visit(at, hpa, level, perms),
            Entry::Table(child) => for_each_leaf(mem, child, level - 1, at, visit),
        }
    }
}

/// Calls `visit` for the level-`level` table at `table` and every table
/// below it, children before parents.
pub(crate) fn for_each_table<M: TableMemory>(
    mem: &M,
    table: HostPhysAddr,
    level: u8,
    visit: &mut dyn FnMut(HostPhysAddr),
) {
    if level > 1 {
        for i in 0..ENTRIES {
            if let Entry::Table(child) = entry::decode(mem.read_entry(table, i), level) {
                for_each_table(mem, child, level - 1, visit);
            }
        }
    }
    visit(table);
}

/// Frees the level-`level` table at `table` and every table below it.
pub(crate) fn free_tables<B: FrameSource + TableMemory>(mem: &mut B, table: HostPhysAddr, level: u8) {
    if level > 1 {
        for i in 0..ENTRIES {
            if let Entry::Table(child) = entry::decode(mem.read_entry(table, i), level) {
                free_tables(mem, child, level - 1);
            }
        }
    }
    mem.free_table(table);
}

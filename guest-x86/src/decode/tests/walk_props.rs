//! The page walker against a model, in each paging mode: random paging
//! trees (every page size the mode has, each entry with random P, R/W,
//! U/S, NX and reserved bits) are written into guest memory, and [`walk`]
//! must give what the tree itself says for any address and access: the
//! page and its offset, or the #PF error code the APM's rules give (AMD APM
//! vol. 2 §5.2–5.3, §5.6, §8.4.2), or #GP for a non-canonical address.
//! [`walk_and_mark`] must give the same answer and change nothing but
//! accessed and dirty bits.
use crate::decode::walk::{
    walk, walk_and_mark, AccessKind, AccessOp, PageFault, PagingState, PfErrorCode, Translation, WalkError,
};
use crate::mem::{GuestMemory, VecMemory};
use crate::regs::{cr0, cr4, efer};
use proptest::prelude::*;

use super::cases;

/// The guest's physical-address width in every test here.
const PHYS_BITS: u8 = 40;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;

/// The paging modes, by their tables' shapes (the table in walk.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Two levels of 4-byte entries; 4 MiB pages with CR4.PSE (always on here).
    Bits32,
    /// A four-entry PDPT without rights, then two levels; 2 MiB pages.
    Pae,
    /// Four levels; 2 MiB and 1 GiB pages.
    Long4,
}

impl Mode {
    fn levels(self) -> u32 {
        match self {
            Mode::Bits32 => 2,
            Mode::Pae => 3,
            Mode::Long4 => 4,
        }
    }

    /// Position of level `depth`'s index (0 = the root table).
    fn shift(self, depth: u32) -> u32 {
        match self {
            Mode::Bits32 => 22 - 10 * depth,
            Mode::Pae => 30 - 9 * depth,
            Mode::Long4 => 39 - 9 * depth,
        }
    }

    fn index_mask(self, depth: u32) -> u64 {
        match (self, depth) {
            (Mode::Bits32, _) => 1023,
            (Mode::Pae, 0) => 3,
            _ => 511,
        }
    }

    fn entry_bytes(self) -> u64 {
        if self == Mode::Bits32 {
            4
        } else {
            8
        }
    }

    /// Whether an entry at `depth` may map a page: the last level, or a
    /// large page.
    fn may_be_leaf(self, depth: u32) -> bool {
        depth + 1 == self.levels() || matches!((self, depth), (Mode::Bits32, 0) | (Mode::Pae, 1) | (Mode::Long4, 1 | 2))
    }

    /// PAE's PDPTEs carry no R/W, U/S or NX: those bits are reserved there.
    fn has_rights(self, depth: u32) -> bool {
        !(self == Mode::Pae && depth == 0)
    }

    /// A bit that is reserved in an entry at `depth` of this mode (for a
    /// 4 MiB page, bit 21; 32-bit page tables and directories have none).
    fn reserved_bit(self, depth: u32, leaf: bool) -> Option<u64> {
        match self {
            Mode::Bits32 if depth == 0 && leaf => Some(1 << 21),
            Mode::Bits32 => None,
            // Bits 51:40 with 40 physical-address bits.
            Mode::Pae | Mode::Long4 => Some(1 << 51),
        }
    }

    /// The highest physical address a leaf's frame may have.
    fn frame_limit(self) -> u64 {
        if self == Mode::Bits32 {
            1 << 32
        } else {
            1 << PHYS_BITS
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Flags {
    present: bool,
    write: bool,
    user: bool,
    nx: bool,
    reserved: bool,
}

#[derive(Debug, Clone)]
enum Node {
    /// A page at a frame aligned to its size.
    Leaf { frame: u64 },
    /// A table: its entries by index; the others are zero.
    Table(Vec<(u64, Entry)>),
}

#[derive(Debug, Clone)]
struct Entry {
    flags: Flags,
    node: Node,
}

/// Random flags for an entry at `depth`, within what the mode can encode.
fn flags(mode: Mode, depth: u32, leaf: bool) -> impl Strategy<Value = Flags> {
    let rights = mode.has_rights(depth);
    let has_nx = mode != Mode::Bits32 && rights;
    let has_reserved = mode.reserved_bit(depth, leaf).is_some();
    (prop::bool::weighted(0.9), prop::bool::weighted(0.7), prop::bool::weighted(0.7), prop::bool::weighted(0.3))
        .prop_flat_map(move |(present, write, user, nx)| {
            prop::bool::weighted(0.05).prop_map(move |reserved| Flags {
                present,
                write: write && rights,
                user: user && rights,
                nx: nx && has_nx,
                reserved: reserved && has_reserved,
            })
        })
}

/// Indices the trees use: both ends of each table, so that high-half
/// (long mode) and high 32-bit addresses appear.
fn index(mode: Mode, depth: u32) -> impl Strategy<Value = u64> {
    let last = mode.index_mask(depth);
    prop::sample::select(vec![0, 1, 2, last / 2, last / 2 + 1, last]).prop_map(move |i| i & last)
}

/// An entry at `depth`: the long-mode PML4 and the PAE PDPT point at
/// tables only, the last level holds 4 KiB pages, the others either.
fn entry(mode: Mode, depth: u32) -> BoxedStrategy<Entry> {
    let page = 1u64 << mode.shift(depth);
    let leaf = (0..mode.frame_limit() / page).prop_map(move |n| Node::Leaf { frame: n * page });
    let is_last = depth + 1 == mode.levels();
    let node = match (is_last, mode.may_be_leaf(depth)) {
        (true, _) => leaf.boxed(),
        (false, false) => table(mode, depth + 1).boxed(),
        (false, true) => prop_oneof![leaf, table(mode, depth + 1)].boxed(),
    };
    node.prop_flat_map(move |node| {
        let leaf = matches!(node, Node::Leaf { .. });
        flags(mode, depth, leaf).prop_map(move |flags| Entry { flags, node: node.clone() })
    })
    .boxed()
}

fn table(mode: Mode, depth: u32) -> BoxedStrategy<Node> {
    prop::collection::vec((index(mode, depth), entry(mode, depth)), 0..3).prop_map(Node::Table).boxed()
}

/// Writes the table `node` of level `depth` into `mem`, one fresh page per
/// table from `*next`; returns its address.
fn build(mem: &mut VecMemory, mode: Mode, node: &Node, depth: u32, next: &mut u64) -> u64 {
    let Node::Table(entries) = node else { unreachable!("a table level holds a table") };
    let at = *next;
    *next += 0x1000;
    for (index, e) in entries {
        let leaf = matches!(e.node, Node::Leaf { .. });
        let target = match &e.node {
            // Every leaf above the last level is a large page: PS.
            Node::Leaf { frame } if depth + 1 < mode.levels() => frame | PS,
            Node::Leaf { frame } => *frame,
            table => build(mem, mode, table, depth + 1, next),
        };
        let f = e.flags;
        let bit = |on: bool, b: u64| if on { b } else { 0 };
        let reserved = mode.reserved_bit(depth, leaf).unwrap_or(0);
        let word =
            target | bit(f.present, 1) | bit(f.write, 2) | bit(f.user, 4) | bit(f.nx, NX) | bit(f.reserved, reserved);
        let gpa = at + index * mode.entry_bytes();
        match mode {
            Mode::Bits32 => mem.write_u32(gpa, word as u32).unwrap(),
            _ => mem.write_u64(gpa, word).unwrap(),
        }
    }
    at
}

/// The walk the tree itself gives, by the APM's rules.
fn model(mode: Mode, root: &Node, cpu: &PagingState, gva: u64, access: AccessKind) -> Result<Translation, WalkError> {
    let gva = if mode == Mode::Long4 {
        let top = (gva as i64) >> 47;
        if top != 0 && top != -1 {
            return Err(WalkError::NonCanonical { gva });
        }
        gva
    } else {
        // Linear addresses outside long mode are 32 bits wide.
        gva & 0xFFFF_FFFF
    };
    let nxe = cpu.efer & efer::NXE != 0;
    let smep = cpu.cr4 & cr4::SMEP != 0;
    // The I/D bit: fetches report it where NX is in force (PAE tables) or SMEP.
    let nx_in_force = mode != Mode::Bits32 && nxe;
    let mut code = PfErrorCode::empty();
    code.set(PfErrorCode::WRITE, access.op == AccessOp::Write);
    code.set(PfErrorCode::USER, access.user);
    code.set(PfErrorCode::FETCH, access.op == AccessOp::Fetch && (nx_in_force || smep));
    let fault = |extra: PfErrorCode| Err(WalkError::PageFault(PageFault { error_code: code | extra, addr: gva }));
    let (mut write, mut user, mut nx) = (true, true, false);
    let mut node = root;
    for depth in 0..mode.levels() {
        let Node::Table(entries) = node else { unreachable!("a table level holds a table") };
        let index = (gva >> mode.shift(depth)) & mode.index_mask(depth);
        // The last entry written at an index is the one in memory.
        let Some((_, e)) = entries.iter().rev().find(|(i, _)| *i == index) else {
            return fault(PfErrorCode::empty());
        };
        if !e.flags.present {
            return fault(PfErrorCode::empty());
        }
        let leaf = matches!(e.node, Node::Leaf { .. });
        let gig_without_gbpages = mode == Mode::Long4 && depth == 1 && leaf && !cpu.gbpages;
        if e.flags.reserved || (e.flags.nx && !nxe) || gig_without_gbpages {
            return fault(PfErrorCode::PRESENT | PfErrorCode::RSVD);
        }
        if mode.has_rights(depth) {
            write &= e.flags.write;
            user &= e.flags.user;
            nx |= e.flags.nx;
        }
        if let Node::Leaf { frame } = e.node {
            let allowed = match access.op {
                _ if access.user && !user => false,
                AccessOp::Read => true,
                AccessOp::Write => write || (!access.user && cpu.cr0 & cr0::WP == 0),
                // NX with EFER.NXE, or SMEP on a supervisor fetch from a user page.
                AccessOp::Fetch => !(nx && nxe || smep && !access.user && user),
            };
            if !allowed {
                return fault(PfErrorCode::PRESENT);
            }
            let page_size = 1u64 << mode.shift(depth);
            return Ok(Translation { gpa: frame | (gva & (page_size - 1)), page_size });
        }
        node = &e.node;
    }
    unreachable!("the last level holds leaves only")
}

/// An address that follows the tree: at each level the index of the entry
/// `picks` selects, the other bits from `bits`; in long mode sign-extended
/// from bit 47 to a canonical address, otherwise 32 bits.
fn address_in(mode: Mode, root: &Node, picks: [usize; 4], bits: u64) -> u64 {
    let mut gva = bits;
    let mut node = root;
    for (depth, pick) in (0..mode.levels()).zip(picks) {
        let Node::Table(entries) = node else { break };
        let Some((index, e)) = entries.get(pick % entries.len().max(1)) else { break };
        let at = mode.shift(depth);
        gva = (gva & !(mode.index_mask(depth) << at)) | index << at;
        node = &e.node;
    }
    match mode {
        Mode::Long4 => ((gva << 16) as i64 >> 16) as u64,
        _ => gva & 0xFFFF_FFFF,
    }
}

fn access() -> impl Strategy<Value = AccessKind> {
    let op = prop_oneof![Just(AccessOp::Read), Just(AccessOp::Write), Just(AccessOp::Fetch)];
    (op, any::<bool>()).prop_map(|(op, user)| AccessKind { op, user })
}

/// The mode's registers with CR0.WP, EFER.NXE, CR4.SMEP and 1 GiB pages
/// each on or off.
fn registers(mode: Mode, root: u64) -> impl Strategy<Value = PagingState> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(move |(wp, nxe, smep, gbpages)| {
        let on = |b: bool, v: u64| if b { v } else { 0 };
        let (paging_cr4, long) = match mode {
            Mode::Bits32 => (cr4::PSE, 0),
            Mode::Pae => (cr4::PAE, 0),
            Mode::Long4 => (cr4::PAE, efer::LMA | efer::LME),
        };
        PagingState {
            cr0: cr0::PE | cr0::PG | on(wp, cr0::WP),
            cr3: root,
            cr4: paging_cr4 | on(smep, cr4::SMEP),
            efer: long | on(nxe, efer::NXE),
            phys_addr_bits: PHYS_BITS,
            gbpages,
        }
    })
}

/// A mode, a tree for it and its registers.
fn machine() -> impl Strategy<Value = (Mode, Node, PagingState)> {
    prop_oneof![Just(Mode::Bits32), Just(Mode::Pae), Just(Mode::Long4)]
        .prop_flat_map(|mode| (Just(mode), table(mode, 0), registers(mode, ROOT)))
}

/// Room for every table a tree can have: 1 + 3 + 9 + 27 pages.
const TABLE_RAM: usize = 41 * 0x1000;
const ROOT: u64 = 0x1000;

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn walk_agrees_with_the_tree_it_reads_in_every_mode(
        (mode, root, cpu) in machine(),
        addresses in prop::collection::vec(
            (prop::array::uniform4(any::<usize>()), any::<u64>(), prop::bool::weighted(0.1)), 1..16),
        access in access(),
    ) {
        let mut mem = VecMemory::new(TABLE_RAM + 0x1000);
        build(&mut mem, mode, &root, 0, &mut ROOT.clone());
        for (picks, bits, raw) in addresses {
            // Mostly addresses the tree maps, sometimes any (non-canonical) one.
            let gva = if raw { bits } else { address_in(mode, &root, picks, bits) };
            let expected = model(mode, &root, &cpu, gva, access);
            let seen = walk(&mem, &cpu, gva, access);
            prop_assert_eq!(seen, expected, "{:?} gva {:#x}, {:?}", mode, gva, access);
            // The marking walk answers the same, and its marks change no answer.
            let before = mem.0.clone();
            prop_assert_eq!(walk_and_mark(&mut mem, &cpu, gva, access), expected);
            prop_assert_eq!(walk(&mem, &cpu, gva, access), expected);
            prop_assert!(only_accessed_and_dirty_set(&before, &mem.0), "marking changed more than A and D bits");
        }
    }

    #[test]
    fn marking_on_random_tables_answers_as_the_walk_and_sets_only_accessed_and_dirty(
        ram in prop::collection::vec(any::<u64>(), 0..2048),
        cr0 in any::<u64>(), cr3 in prop_oneof![any::<u64>(), 0u64..0x4000], cr4 in any::<u64>(),
        efer in any::<u64>(), phys_addr_bits in any::<u8>(), gbpages in any::<bool>(),
        gva in any::<u64>(), access in access(),
    ) {
        let mut mem = VecMemory(ram.iter().flat_map(|w| w.to_le_bytes()).collect());
        let cpu = PagingState { cr0, cr3, cr4, efer, phys_addr_bits, gbpages };
        let before = mem.0.clone();
        let walked = walk(&mem, &cpu, gva, access);
        prop_assert_eq!(walk_and_mark(&mut mem, &cpu, gva, access), walked);
        prop_assert!(only_accessed_and_dirty_set(&before, &mem.0), "marking changed more than A and D bits");
        if walked.is_err() {
            prop_assert!(before == mem.0, "a refused walk marked an entry");
        }
    }
}

/// Every changed byte only gained bit 5 (accessed) or 6 (dirty).
fn only_accessed_and_dirty_set(before: &[u8], after: &[u8]) -> bool {
    before.iter().zip(after).all(|(&b, &a)| a & !b & !0x60 == 0 && b & !a == 0)
}

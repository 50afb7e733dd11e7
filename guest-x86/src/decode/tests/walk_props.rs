//! The long-mode page walker against a model: random paging trees (4 KiB,
//! 2 MiB and 1 GiB leaves, each entry with random P, R/W, U/S, NX and
//! reserved bits) are written into guest memory, and [`walk`] must give
//! what the tree itself says for any address and access: the page and its
//! offset, or the #PF error code the APM's rules give (AMD APM vol. 2
//! §5.3, §5.6, §8.4.2), or #GP for a non-canonical address. [`walk_and_mark`]
//! must give the same answer and change nothing but accessed and dirty bits.
use crate::decode::walk::{
    walk, walk_and_mark, AccessKind, AccessOp, PageFault, PagingState, PfErrorCode, Translation, WalkError,
};
use crate::mem::{GuestMemory, VecMemory};
use crate::regs::{cr0, cr4, efer};
use proptest::prelude::*;

use super::cases;

/// A reserved bit of every long-mode entry when the guest has 40 physical
/// address bits.
const RESERVED_BIT: u64 = 1 << 51;
const PHYS_BITS: u8 = 40;

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
    /// A page at a 4 KiB, 2 MiB or 1 GiB aligned frame.
    Leaf { frame: u64 },
    /// A table: its entries by index; the others are zero.
    Table(Vec<(u64, Entry)>),
}

#[derive(Debug, Clone)]
struct Entry {
    flags: Flags,
    node: Node,
}

fn flags() -> impl Strategy<Value = Flags> {
    (prop::bool::weighted(0.9), prop::bool::weighted(0.7), prop::bool::weighted(0.7), prop::bool::weighted(0.3))
        .prop_flat_map(|(present, write, user, nx)| {
            prop::bool::weighted(0.05).prop_map(move |reserved| Flags { present, write, user, nx, reserved })
        })
}

/// Indices the trees use: both ends, so that high-half addresses appear.
fn index() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![0u64, 1, 2, 255, 256, 511])
}

/// Shift of the address bits that index level `depth` (0 = PML4).
fn shift(depth: u32) -> u32 {
    39 - 9 * depth
}

/// An entry of level `depth`: the PML4 points at tables only, the PT holds
/// 4 KiB pages, the levels between either.
fn entry(depth: u32) -> BoxedStrategy<Entry> {
    let page = 1u64 << shift(depth);
    let leaf = (0u64..(1 << (PHYS_BITS as u32 - shift(depth)))).prop_map(move |n| Node::Leaf { frame: n * page });
    let node = match depth {
        3 => leaf.boxed(),
        0 => table(depth + 1).boxed(),
        _ => prop_oneof![leaf, table(depth + 1)].boxed(),
    };
    (flags(), node).prop_map(|(flags, node)| Entry { flags, node }).boxed()
}

fn table(depth: u32) -> BoxedStrategy<Node> {
    prop::collection::vec((index(), entry(depth)), 0..3).prop_map(Node::Table).boxed()
}

/// Writes the table `node` of level `depth` into `mem`, one fresh page per
/// table from `*next`; returns its address.
fn build(mem: &mut VecMemory, node: &Node, depth: u32, next: &mut u64) -> u64 {
    let Node::Table(entries) = node else { unreachable!("a table level holds a table") };
    let at = *next;
    *next += 0x1000;
    for (index, e) in entries {
        let target = match &e.node {
            // Every leaf above the PT is a large page: PS.
            Node::Leaf { frame } if depth < 3 => frame | 1 << 7,
            Node::Leaf { frame } => *frame,
            table => build(mem, table, depth + 1, next),
        };
        let f = e.flags;
        let bit = |on: bool, b: u64| if on { b } else { 0 };
        let word = target
            | bit(f.present, 1)
            | bit(f.write, 2)
            | bit(f.user, 4)
            | bit(f.nx, 1 << 63)
            | bit(f.reserved, RESERVED_BIT);
        mem.write_u64(at + index * 8, word).unwrap();
    }
    at
}

/// The walk the tree itself gives, by the APM's rules.
fn model(root: &Node, cpu: &PagingState, gva: u64, access: AccessKind) -> Result<Translation, WalkError> {
    let top = (gva as i64) >> 47;
    if top != 0 && top != -1 {
        return Err(WalkError::NonCanonical { gva });
    }
    let nxe = cpu.efer & efer::NXE != 0;
    let smep = cpu.cr4 & cr4::SMEP != 0;
    let mut code = PfErrorCode::empty();
    code.set(PfErrorCode::WRITE, access.op == AccessOp::Write);
    code.set(PfErrorCode::USER, access.user);
    code.set(PfErrorCode::FETCH, access.op == AccessOp::Fetch && (nxe || smep));
    let fault = |extra: PfErrorCode| Err(WalkError::PageFault(PageFault { error_code: code | extra, addr: gva }));
    let (mut write, mut user, mut nx) = (true, true, false);
    let mut node = root;
    for depth in 0..4 {
        let Node::Table(entries) = node else { unreachable!("a table level holds a table") };
        let index = (gva >> shift(depth)) & 511;
        // The last entry written at an index is the one in memory.
        let Some((_, e)) = entries.iter().rev().find(|(i, _)| *i == index) else {
            return fault(PfErrorCode::empty());
        };
        if !e.flags.present {
            return fault(PfErrorCode::empty());
        }
        let gig_without_gbpages = depth == 1 && matches!(e.node, Node::Leaf { .. }) && !cpu.gbpages;
        if e.flags.reserved || (e.flags.nx && !nxe) || gig_without_gbpages {
            return fault(PfErrorCode::PRESENT | PfErrorCode::RSVD);
        }
        write &= e.flags.write;
        user &= e.flags.user;
        nx |= e.flags.nx;
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
            let page_size = 1u64 << shift(depth);
            return Ok(Translation { gpa: frame | (gva & (page_size - 1)), page_size });
        }
        node = &e.node;
    }
    unreachable!("the PT holds leaves only")
}

/// An address that follows the tree: at each level the index of the entry
/// `picks` selects, the other bits of `bits` below bit 48; sign-extended to
/// a canonical address.
fn address_in(root: &Node, picks: [usize; 4], bits: u64) -> u64 {
    let mut gva = bits & ((1 << 48) - 1);
    let mut node = root;
    for (depth, pick) in picks.into_iter().enumerate() {
        let Node::Table(entries) = node else { break };
        let Some((index, e)) = entries.get(pick % entries.len().max(1)) else { break };
        let at = shift(depth as u32);
        gva = (gva & !(511 << at)) | index << at;
        node = &e.node;
    }
    ((gva << 16) as i64 >> 16) as u64
}

fn access() -> impl Strategy<Value = AccessKind> {
    let op = prop_oneof![Just(AccessOp::Read), Just(AccessOp::Write), Just(AccessOp::Fetch)];
    (op, any::<bool>()).prop_map(|(op, user)| AccessKind { op, user })
}

/// Long mode with CR0.WP, EFER.NXE, CR4.SMEP and 1 GiB pages each on or off.
fn long_mode(root: u64) -> impl Strategy<Value = PagingState> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(move |(wp, nxe, smep, gbpages)| {
        let on = |b: bool, v: u64| if b { v } else { 0 };
        PagingState {
            cr0: cr0::PE | cr0::PG | on(wp, cr0::WP),
            cr3: root,
            cr4: cr4::PAE | on(smep, cr4::SMEP),
            efer: efer::LMA | efer::LME | on(nxe, efer::NXE),
            phys_addr_bits: PHYS_BITS,
            gbpages,
        }
    })
}

/// Room for every table a tree can have: 1 + 3 + 9 + 27 pages.
const TABLE_RAM: usize = 41 * 0x1000;
const ROOT: u64 = 0x1000;

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn long_mode_walk_agrees_with_the_tree_it_reads(
        root in table(0),
        cpu in long_mode(ROOT),
        addresses in prop::collection::vec((prop::array::uniform4(any::<usize>()), any::<u64>(), prop::bool::weighted(0.1)), 1..16),
        access in access(),
    ) {
        let mut mem = VecMemory::new(TABLE_RAM + 0x1000);
        build(&mut mem, &root, 0, &mut ROOT.clone());
        for (picks, bits, raw) in addresses {
            // Mostly addresses the tree maps, sometimes any (non-canonical) one.
            let gva = if raw { bits } else { address_in(&root, picks, bits) };
            let expected = model(&root, &cpu, gva, access);
            let seen = walk(&mem, &cpu, gva, access);
            prop_assert_eq!(seen, expected, "gva {:#x}, {:?}", gva, access);
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

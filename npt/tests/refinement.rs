//! Refinement tests: random operation sequences run on a [`PageTable`] over
//! simulated memory with a frame budget, and on the spec ([`npt::spec`]).
//!
//! After every step:
//! - both returned the same result; where the implementation ran out of
//!   frames, a frame allocation really failed, the spec would have
//!   succeeded, and the state is unchanged;
//! - the returned flush token covers every page the spec says may be stale,
//!   and `map`/`map_range` return no flush;
//! - the abstraction of the tables (an independent walk, expanded to 4 KiB
//!   pages) equals the spec's state, and the tables keep the format's and
//!   the flavor's rules;
//! - the frames in use are exactly the tables reachable from the root;
//!
//! and at the end `destroy` leaves no frame in use.

#![deny(unused_must_use)]

mod common;

use npt::sim::SimMemory;
use npt::spec::{Spec, SpecResult, Stale};
use npt::{Flavor, FlushScope, Host, HostPhysAddr, InputAddr, Nested, NptError, PageSize, PageTable, Perms, TlbFlush};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const K4: u64 = 4 << 10;
const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;

/// Where an operation applies.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// This raw address.
    At(u64),
    /// `pages` 4 KiB pages past the start of an earlier successful mapping
    /// (the `pick`th, modulo their number), aligned down to the operation's
    /// page size: mostly mapped space.
    Recent { pick: usize, pages: u64 },
}

/// One generated step.
#[derive(Clone, Copy, Debug)]
enum Step {
    Map {
        addr: u64,
        hpa: u64,
        size: PageSize,
        perms: Perms,
    },
    Remap {
        target: Target,
        hpa: u64,
        size: PageSize,
        perms: Perms,
    },
    Unmap {
        target: Target,
        size: PageSize,
    },
    Protect {
        target: Target,
        size: PageSize,
        perms: Perms,
    },
    MapRange {
        addr: u64,
        hpa: u64,
        len: u64,
        perms: Perms,
    },
    Translate {
        target: Target,
    },
    /// Changes the most frames the memory holds at a time.
    Budget(Option<usize>),
}

/// A changing operation with its addresses resolved.
#[derive(Clone, Copy, Debug)]
enum Op {
    Map { addr: u64, hpa: u64, size: PageSize, perms: Perms },
    Remap { addr: u64, hpa: u64, size: PageSize, perms: Perms },
    Unmap { addr: u64, size: PageSize },
    Protect { addr: u64, size: PageSize, perms: Perms },
    MapRange { addr: u64, hpa: u64, len: u64, perms: Perms },
}

impl Op {
    /// Where a successful op put a mapping, for later `Target::Recent`s.
    fn mapped_at(self) -> Option<u64> {
        match self {
            Op::Map { addr, .. } | Op::Remap { addr, .. } | Op::MapRange { addr, .. } => Some(addr),
            Op::Unmap { .. } | Op::Protect { .. } => None,
        }
    }

    /// Whether the op only maps unmapped space, so must not ask for a flush.
    fn maps_fresh(self) -> bool {
        matches!(self, Op::Map { .. } | Op::MapRange { .. })
    }

    fn on_table<F: Flavor>(self, table: &mut PageTable<F>, mem: &mut SimMemory) -> Result<TlbFlush<F::Addr>, NptError> {
        let at = F::Addr::from_raw;
        match self {
            Op::Map { addr, hpa, size, perms } => table.map(mem, at(addr), HostPhysAddr(hpa), size, perms),
            Op::Remap { addr, hpa, size, perms } => table.remap(mem, at(addr), HostPhysAddr(hpa), size, perms),
            Op::Unmap { addr, size } => table.unmap(mem, at(addr), size),
            Op::Protect { addr, size, perms } => table.protect(mem, at(addr), size, perms),
            Op::MapRange { addr, hpa, len, perms } => table.map_range(mem, at(addr), HostPhysAddr(hpa), len, perms),
        }
    }

    fn on_spec<F: Flavor>(self, spec: &mut Spec<F>) -> SpecResult {
        let at = F::Addr::from_raw;
        match self {
            Op::Map { addr, hpa, size, perms } => spec.map(at(addr), HostPhysAddr(hpa), size, perms),
            Op::Remap { addr, hpa, size, perms } => spec.remap(at(addr), HostPhysAddr(hpa), size, perms),
            Op::Unmap { addr, size } => spec.unmap(at(addr), size),
            Op::Protect { addr, size, perms } => spec.protect(at(addr), size, perms),
            Op::MapRange { addr, hpa, len, perms } => spec.map_range(at(addr), HostPhysAddr(hpa), len, perms),
        }
    }
}

fn page_size() -> impl Strategy<Value = PageSize> {
    prop_oneof![
        12 => Just(PageSize::Size4K),
        6 => Just(PageSize::Size2M),
        1 => Just(PageSize::Size1G),
    ]
}

fn perms() -> impl Strategy<Value = Perms> {
    prop_oneof![
        20 => (0u8..64).prop_map(|bits| Perms::from_bits_truncate(bits) | Perms::READ),
        1 => (0u8..64).prop_map(|bits| Perms::from_bits_truncate(bits) - Perms::READ),
        1 => Just(Perms::from_bits_retain(0x41)),
    ]
}

/// (weight, base) pairs: mostly low addresses, so that steps collide; some
/// at the top of the space and some just beyond it.
const NESTED_BASES: &[(u32, u64)] = &[(12, 0), (3, G1), (1, (1 << 48) - G1), (1, 1 << 48)];
const HOST_BASES: &[(u32, u64)] = &[
    (6, 0),
    (2, G1),
    (1, 0x0000_7fff_c000_0000),
    (1, 0x0000_8000_0000_0000),
    (4, 0xffff_8000_0000_0000),
    (2, 0xffff_ffff_c000_0000),
];
const HPA_BASES: &[(u32, u64)] = &[(6, 0), (2, G1), (2, 2 * G1 + M2), (1, (1 << 52) - G1), (1, 1 << 52)];

/// An address near one of `bases`: usually page aligned, sometimes 2 MiB
/// or 1 GiB aligned, rarely not even 4 KiB aligned.
fn address(bases: &'static [(u32, u64)]) -> impl Strategy<Value = u64> {
    let bases: Vec<(u32, Just<u64>)> = bases.iter().map(|&(w, b)| (w, Just(b))).collect();
    (
        prop::strategy::Union::new_weighted(bases),
        prop_oneof![4 => 0u64..3, 1 => Just(511u64)],
        prop_oneof![3 => Just(0u64), 3 => 0u64..4, 1 => Just(511u64)],
        prop_oneof![30 => Just(0u64), 1 => Just(0x800u64)],
    )
        .prop_map(|(base, m2, k4, misalign)| base.wrapping_add(m2 * M2 + k4 * K4 + misalign))
}

fn target(bases: &'static [(u32, u64)]) -> impl Strategy<Value = Target> {
    prop_oneof![
        address(bases).prop_map(Target::At),
        (any::<usize>(), prop_oneof![3 => Just(0u64), 2 => 0u64..1024])
            .prop_map(|(pick, pages)| Target::Recent { pick, pages }),
    ]
}

/// A length for `map_range`.
fn length() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => (0u64..40).prop_map(|n| n * K4),
        4 => (0u64..3, 0u64..20).prop_map(|(m, k)| m * M2 + k * K4),
        2 => Just(G1 + M2 + K4),
        1 => Just(0x800u64),
    ]
}

fn step(bases: &'static [(u32, u64)]) -> impl Strategy<Value = Step> {
    let hpa = || address(HPA_BASES);
    prop_oneof![
        8 => (address(bases), hpa(), page_size(), perms())
            .prop_map(|(addr, hpa, size, perms)| Step::Map { addr, hpa, size, perms }),
        3 => (target(bases), hpa(), page_size(), perms())
            .prop_map(|(target, hpa, size, perms)| Step::Remap { target, hpa, size, perms }),
        5 => (target(bases), page_size()).prop_map(|(target, size)| Step::Unmap { target, size }),
        5 => (target(bases), page_size(), perms())
            .prop_map(|(target, size, perms)| Step::Protect { target, size, perms }),
        4 => (address(bases), hpa(), length(), perms())
            .prop_map(|(addr, hpa, len, perms)| Step::MapRange { addr, hpa, len, perms }),
        3 => target(bases).prop_map(|target| Step::Translate { target }),
        2 => prop_oneof![Just(None), (1usize..24).prop_map(Some)].prop_map(Step::Budget),
    ]
}

/// A whole test case: the table's largest page, the first budget, the steps.
fn case(bases: &'static [(u32, u64)], steps: usize) -> impl Strategy<Value = (PageSize, Option<usize>, Vec<Step>)> {
    (
        prop_oneof![3 => Just(PageSize::Size1G), 1 => Just(PageSize::Size2M)],
        prop_oneof![Just(None), (2usize..16).prop_map(Some)],
        prop::collection::vec(step(bases), 1..steps),
    )
}

/// The raw address `target` names, for an operation on pages of `size`.
fn resolve(target: Target, recent: &[u64], size: PageSize) -> u64 {
    match target {
        Target::At(addr) => addr,
        Target::Recent { .. } if recent.is_empty() => 0,
        Target::Recent { pick, pages } => {
            let addr = recent[pick % recent.len()].wrapping_add(pages * K4);
            addr & !(size.bytes() - 1)
        }
    }
}

/// Checks the token against the stale pages the spec reports.
fn check_flush<A: InputAddr>(
    flush: TlbFlush<A>,
    stale: Option<Stale>,
    must_be_empty: bool,
) -> Result<(), TestCaseError> {
    let scope = flush.scope();
    if must_be_empty {
        prop_assert!(scope.is_none(), "expected no flush, seen {:?}", scope);
    }
    if let Some(stale) = stale {
        for page in [stale.first_page, stale.last_page] {
            prop_assert!(
                flush.covers(A::from_raw(page)),
                "expected a flush covering {:#x}..={:#x}, seen {:?}",
                stale.first_page,
                stale.last_page,
                scope
            );
        }
    }
    let _ = flush.into_scope();
    Ok(())
}

/// Checks one changing operation against the spec.
fn check_op<F: Flavor>(
    op: Op,
    table: &mut PageTable<F>,
    spec: &mut Spec<F>,
    mem: &mut SimMemory,
) -> Result<bool, TestCaseError> {
    let failed_before = mem.failed_allocations();
    match op.on_table(table, mem) {
        Err(NptError::OutOfFrames) => {
            // Allowed only where the spec succeeds; the state stays.
            let expected = op.on_spec(&mut spec.clone());
            prop_assert!(expected.is_ok(), "expected {:?}, seen OutOfFrames", expected);
            prop_assert!(mem.failed_allocations() > failed_before, "OutOfFrames without a failed allocation");
            Ok(false)
        }
        Err(seen) => {
            let expected = op.on_spec(spec);
            prop_assert_eq!(expected, Err(seen), "expected (left) vs seen (right)");
            Ok(false)
        }
        Ok(flush) => match op.on_spec(spec) {
            Ok(stale) => {
                check_flush(flush, stale, op.maps_fresh())?;
                Ok(true)
            }
            Err(e) => {
                let _ = flush.into_scope();
                Err(TestCaseError::fail(format!("expected {e:?}, seen Ok")))
            }
        },
    }
}

/// Checks the abstraction relation and the table invariants.
fn check_state<F: Flavor>(
    table: &PageTable<F>,
    spec: &Spec<F>,
    mem: &SimMemory,
    max_page: PageSize,
) -> Result<(), TestCaseError> {
    let walked = common::walk(mem, table.root().addr(), F::KIND);
    if let Some(diff) = common::diff(spec.pages(), &walked.pages) {
        return Err(TestCaseError::fail(format!("abstraction differs from spec:\n{diff}")));
    }
    prop_assert!(walked.problems.is_empty(), "malformed tables: {:?}", walked.problems);
    if let Some(leaf) = walked.leaves.iter().find(|l| l.size > max_page) {
        return Err(TestCaseError::fail(format!("leaf {leaf:x?} above {max_page:?}")));
    }
    prop_assert_eq!(&mem.allocated(), &walked.tables, "frames in use (left) vs tables reachable (right)");
    Ok(())
}

/// Runs one case on flavor `F`.
fn run<F: Flavor>(max_page: PageSize, budget: Option<usize>, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut mem = SimMemory::new();
    mem.set_budget(budget);
    let mut table = match PageTable::<F>::with_max_page_size(&mut mem, max_page) {
        Ok(table) => table,
        Err(e) => return Err(TestCaseError::fail(format!("root allocation: {e:?}"))),
    };
    let mut spec = Spec::<F>::with_max_page_size(max_page);
    let mut recent: Vec<u64> = vec![];

    for (n, &step) in steps.iter().enumerate() {
        let context = |e: TestCaseError| TestCaseError::fail(format!("step {n}: {step:x?}: {e}"));
        let op = match step {
            Step::Map { addr, hpa, size, perms } => Some(Op::Map { addr, hpa, size, perms }),
            Step::Remap { target, hpa, size, perms } => {
                Some(Op::Remap { addr: resolve(target, &recent, size), hpa, size, perms })
            }
            Step::Unmap { target, size } => Some(Op::Unmap { addr: resolve(target, &recent, size), size }),
            Step::Protect { target, size, perms } => {
                Some(Op::Protect { addr: resolve(target, &recent, size), size, perms })
            }
            Step::MapRange { addr, hpa, len, perms } => Some(Op::MapRange { addr, hpa, len, perms }),
            Step::Translate { target } => {
                let addr = F::Addr::from_raw(resolve(target, &recent, PageSize::Size4K));
                let seen = table.translate(&mem, addr);
                let expected = spec.translate(addr);
                prop_assert_eq!(expected, seen.map(|(h, p, _)| (h, p)), "step {}: {:x?}", n, step);
                None
            }
            Step::Budget(budget) => {
                mem.set_budget(budget);
                None
            }
        };
        if let Some(op) = op {
            let done = check_op(op, &mut table, &mut spec, &mut mem).map_err(context)?;
            if done {
                recent.extend(op.mapped_at());
            }
        }
        check_state(&table, &spec, &mem, max_page).map_err(context)?;
    }

    prop_assert_eq!(table.destroy(&mut mem).into_scope(), Some(FlushScope::All));
    prop_assert_eq!(mem.frames_in_use(), 0, "frames in use after destroy");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nested_table_refines_spec((max_page, budget, steps) in case(NESTED_BASES, 48)) {
        run::<Nested>(max_page, budget, &steps)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn host_table_refines_spec((max_page, budget, steps) in case(HOST_BASES, 32)) {
        run::<Host>(max_page, budget, &steps)?;
    }
}

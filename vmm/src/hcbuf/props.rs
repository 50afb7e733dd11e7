//! [`translate`] against a model that walks the caller's tables once per
//! byte, in order: the buffer is reached, refused and marked exactly as the
//! caller's own byte-by-byte access would be, and a translated buffer reads
//! and writes the bytes the model names.
use super::*;
use crate::proptest_cases::cases;
use guest_x86::mem::VecMemory;
use guest_x86::regs::{cr0, cr4, efer};
use proptest::prelude::*;

const RAM: usize = 0x20_0000;
/// The long-mode tables: PML4, PDPT, PD, PT, one page each.
const PML4: u64 = 0x1000;
/// Linear address of the first page the PT maps (PD slot 2).
const BASE: u64 = 0x40_0000;
/// Leaf pages the tests vary; the PT maps nothing past them.
const PAGES: usize = 8;

/// One paging-structure entry's flags: P, R/W, U/S, NX.
fn flags() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => Just(0b111u64),
        1 => Just(0b101),
        1 => Just(0b011),
        1 => Just(0b000),
        1 => Just(1 | (1 << 63)),
        1 => Just(0b111 | (1 << 51)), // a reserved bit
    ]
}

/// A leaf frame: a distinct RAM frame, or one past RAM.
fn frame(page: usize) -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => Just(0x10_0000 + page as u64 * 0x3000),
        1 => Just(RAM as u64 + page as u64 * 0x1000),
    ]
}

#[derive(Debug, Clone)]
struct Machine {
    upper: [u64; 3],
    leaves: Vec<(u64, u64)>,
    wp: bool,
    nxe: bool,
}

fn machine() -> impl Strategy<Value = Machine> {
    let leaves: Vec<_> = (0..PAGES).map(|i| (frame(i), flags())).collect();
    (prop::array::uniform3(prop_oneof![4 => Just(0b111u64), 1 => flags()]), leaves, any::<bool>(), any::<bool>())
        .prop_map(|(upper, leaves, wp, nxe)| Machine { upper, leaves, wp, nxe })
}

impl Machine {
    fn build(&self, user: bool) -> (VecMemory, Rights) {
        let mut mem = VecMemory::new(RAM);
        for (level, flags) in self.upper.iter().enumerate() {
            let table = PML4 + level as u64 * 0x1000;
            let slot = if level == 2 { 2 } else { 0 };
            mem.write_u64(table + slot * 8, (table + 0x1000) | flags).unwrap();
        }
        for (i, (frame, flags)) in self.leaves.iter().enumerate() {
            mem.write_u64(PML4 + 0x3000 + i as u64 * 8, frame | flags).unwrap();
        }
        let paging = PagingState {
            cr0: cr0::PG | cr0::PE | if self.wp { cr0::WP } else { 0 },
            cr3: PML4,
            cr4: cr4::PAE,
            efer: efer::LMA | efer::LME | if self.nxe { efer::NXE } else { 0 },
            phys_addr_bits: 40,
            gbpages: false,
        };
        (mem, Rights { paging, user })
    }
}

/// Each byte's guest-physical address, walking (and marking) once per
/// byte in order; the first byte that cannot be reached gives the refusal.
fn model(mem: &mut VecMemory, rights: &Rights, lin: u64, len: usize, write: bool) -> Result<Vec<u64>, Refusal> {
    let access = if write { AccessKind::write(rights.user) } else { AccessKind::read(rights.user) };
    let mut gpas = Vec::with_capacity(len);
    for i in 0..len as u64 {
        let gpa = match walk_and_mark(mem, &rights.paging, lin.wrapping_add(i), access) {
            Ok(t) => t.gpa,
            Err(WalkError::PageFault(pf)) => return Err(Refusal::Fault(GuestFault::Page(pf))),
            Err(WalkError::NonCanonical { .. }) => return Err(Refusal::Fault(GuestFault::GeneralProtection)),
            Err(WalkError::BadGpa { .. } | WalkError::UnsupportedPaging) => return Err(Refusal::NotRam),
        };
        if gpa >= mem.size() {
            return Err(Refusal::NotRam);
        }
        gpas.push(gpa);
    }
    Ok(gpas)
}

/// The span's bytes, one guest-physical address each.
fn bytes_of(span: &Span) -> Vec<u64> {
    span.pieces[..span.count].iter().flat_map(|&(gpa, n)| gpa..gpa + n as u64).collect()
}

/// Linear addresses around the mapped pages, both ends included.
fn linear() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => (BASE - 0x100)..(BASE + PAGES as u64 * 0x1000 + 0x100),
        1 => Just(0x7FFF_FFFF_F800u64), // runs into the non-canonical hole
        1 => any::<u64>(),
    ]
}

fn length() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0usize..=64, 2 => 0usize..=MAX_BUF, 1 => Just(MAX_BUF)]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn translate_agrees_with_walking_each_byte(
        m in machine(), user in any::<bool>(), lin in linear(), len in length(), write in any::<bool>(),
    ) {
        let (mut mem, rights) = m.build(user);
        let mut model_mem = VecMemory(mem.0.clone());
        let expected = model(&mut model_mem, &rights, lin, len, write);
        let seen = translate(&mut mem, &rights, lin, len, write);
        prop_assert_eq!(seen.map(|s| bytes_of(&s)), expected.clone(), "lin {:#x} len {}", lin, len);
        // A refused buffer still marked the pages before the refused one,
        // as the caller's own access would have.
        prop_assert!(mem.0 == model_mem.0, "accessed and dirty bits differ from the per-byte walk");
    }

    #[test]
    fn a_translated_buffer_writes_and_reads_the_bytes_it_names(
        m in machine(), lin in linear(), data in prop::collection::vec(any::<u8>(), 0..=MAX_BUF),
    ) {
        let (mut mem, rights) = m.build(false);
        let Ok(span) = translate(&mut mem, &rights, lin, data.len(), true) else { return Ok(()) };
        let gpas = bytes_of(&span);
        prop_assert_eq!(gpas.len(), data.len());
        let mut expected = mem.0.clone();
        for (&gpa, &b) in gpas.iter().zip(&data) {
            expected[gpa as usize] = b;
        }
        span.write(&mut mem, &data).unwrap();
        prop_assert!(mem.0 == expected, "the write went elsewhere than the span's bytes");
        let mut back = vec![0u8; data.len()];
        span.read(&mem, &mut back).unwrap();
        let want: Vec<u8> = gpas.iter().map(|&g| expected[g as usize]).collect();
        prop_assert_eq!(back, want);
    }

    #[test]
    fn translate_never_panics_on_any_tables_or_registers(
        ram in prop::collection::vec(any::<u64>(), 0..1024),
        cr0 in any::<u64>(), cr3 in prop_oneof![any::<u64>(), 0u64..0x2000], cr4 in any::<u64>(),
        efer in any::<u64>(), phys_addr_bits in any::<u8>(), gbpages in any::<bool>(),
        user in any::<bool>(), lin in any::<u64>(), len in length(), write in any::<bool>(),
    ) {
        let mut mem = VecMemory(ram.iter().flat_map(|w| w.to_le_bytes()).collect());
        let rights = Rights { paging: PagingState { cr0, cr3, cr4, efer, phys_addr_bits, gbpages }, user };
        if let Ok(span) = translate(&mut mem, &rights, lin, len, write) {
            prop_assert_eq!(span.len(), len);
            for &(gpa, n) in &span.pieces[..span.count] {
                prop_assert!(gpa + n as u64 <= mem.size(), "piece {gpa:#x}+{n} outside RAM");
                prop_assert!(n == 0 || gpa / PAGE == (gpa + n as u64 - 1) / PAGE, "piece {gpa:#x}+{n} crosses a page");
            }
        }
    }
}

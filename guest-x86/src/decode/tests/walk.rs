//! The page walker on hand-built tables, one group per paging mode.

use crate::decode::walk::{
    translate, walk, walk_and_mark, AccessKind, PageFault, PagingState, PfErrorCode, Translation, WalkError, WalkLimits,
};
use crate::mem::{GuestMemory, VecMemory};
use crate::regs::{cr0, cr4, efer};

const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;

const READ: AccessKind = AccessKind::read(false);
const WRITE: AccessKind = AccessKind::write(false);
const FETCH: AccessKind = AccessKind::fetch(false);
const UREAD: AccessKind = AccessKind::read(true);
const UWRITE: AccessKind = AccessKind::write(true);

fn pf(code: PfErrorCode, addr: u64) -> Result<u64, WalkError> {
    Err(WalkError::PageFault(PageFault { error_code: code, addr }))
}

fn set64(mem: &mut VecMemory, gpa: u64, v: u64) {
    mem.write_u64(gpa, v).unwrap();
}

fn set32(mem: &mut VecMemory, gpa: u64, v: u32) {
    mem.write_u32(gpa, v).unwrap();
}

// ---------------------------------------------------------------- long mode

const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const PT: u64 = 0x4000;
/// PML4 index 3, PDPT index 5, PD index 7, PT index 9, offset 0x123.
const GVA: u64 = (3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0x123;

fn long_state() -> PagingState {
    PagingState {
        cr0: cr0::PE | cr0::PG | cr0::WP,
        cr3: PML4,
        cr4: cr4::PAE,
        efer: efer::LMA | efer::NXE | (1 << 8),
        phys_addr_bits: 40,
        gbpages: true,
    }
}

/// Tables mapping GVA to frame 0xABCD000 with `leaf` flags, every upper
/// level P|RW|US.
fn long_tables(leaf: u64) -> VecMemory {
    let mut mem = VecMemory::new(0x10_0000);
    set64(&mut mem, PML4 + 3 * 8, PDPT | P | RW | US);
    set64(&mut mem, PDPT + 5 * 8, PD | P | RW | US);
    set64(&mut mem, PD + 7 * 8, PT | P | RW | US);
    set64(&mut mem, PT + 9 * 8, 0x0ABC_D000 | leaf);
    mem
}

#[test]
fn long_mode_maps_a_4k_page() {
    let mem = long_tables(P | RW | US);
    let got = walk(&mem, &long_state(), GVA, READ);
    assert_eq!(got, Ok(Translation { gpa: 0x0ABC_D123, page_size: 4096 }));
    assert_eq!(translate(&mem, &long_state(), GVA, UWRITE), Ok(0x0ABC_D123));
}

#[test]
fn long_mode_maps_a_2m_page() {
    let mut mem = long_tables(P);
    set64(&mut mem, PD + 7 * 8, 0x4000_0000 | P | RW | PS);
    let got = walk(&mem, &long_state(), GVA, WRITE);
    assert_eq!(got, Ok(Translation { gpa: 0x4000_0000 | (GVA & 0x1F_FFFF), page_size: 2 << 20 }));
}

#[test]
fn long_mode_maps_a_1g_page() {
    let mut mem = long_tables(P);
    set64(&mut mem, PDPT + 5 * 8, 0xC0_0000_0000 | P | RW | PS);
    let got = walk(&mem, &long_state(), GVA, READ);
    assert_eq!(got, Ok(Translation { gpa: 0xC0_0000_0000 | (GVA & 0x3FFF_FFFF), page_size: 1 << 30 }));
}

#[test]
fn long_mode_1g_page_without_gbpages_is_a_reserved_bit_fault() {
    let mut mem = long_tables(P);
    set64(&mut mem, PDPT + 5 * 8, 0xC000_0000 | P | RW | PS);
    let cpu = PagingState { gbpages: false, ..long_state() };
    let rsvd = PfErrorCode::PRESENT | PfErrorCode::RSVD;
    assert_eq!(translate(&mem, &cpu, GVA, READ), pf(rsvd, GVA));
}

#[test]
fn long_mode_reserved_bits_fault_at_every_level() {
    let rsvd = PfErrorCode::PRESENT | PfErrorCode::RSVD;
    let cpu = long_state();
    // A physical-address bit above the guest's 40.
    let mut mem = long_tables(P | (1 << 45));
    assert_eq!(translate(&mem, &cpu, GVA, READ), pf(rsvd, GVA));
    // PS in a PML4E.
    mem = long_tables(P);
    set64(&mut mem, PML4 + 3 * 8, PDPT | P | PS);
    assert_eq!(translate(&mem, &cpu, GVA, READ), pf(rsvd, GVA));
    // Bit 13 of a 2 MiB PDE lies below the page's alignment.
    mem = long_tables(P);
    set64(&mut mem, PD + 7 * 8, 0x4000_0000 | (1 << 13) | P | PS);
    assert_eq!(translate(&mem, &cpu, GVA, READ), pf(rsvd, GVA));
    // NX while EFER.NXE=0; the fault also reports the write.
    mem = long_tables(P | RW | NX);
    let no_nxe = PagingState { efer: efer::LMA, ..cpu };
    let code = rsvd | PfErrorCode::WRITE;
    assert_eq!(translate(&mem, &no_nxe, GVA, WRITE), pf(code, GVA));
    // Bits 62:52 are free for software in long mode.
    mem = long_tables(P | (0x7FF << 52));
    assert_eq!(translate(&mem, &cpu, GVA, READ), Ok(0x0ABC_D123));
}

#[test]
fn long_mode_not_present_reports_the_access() {
    let mem = long_tables(0);
    let cpu = long_state();
    assert_eq!(translate(&mem, &cpu, GVA, READ), pf(PfErrorCode::empty(), GVA));
    let uw = PfErrorCode::WRITE | PfErrorCode::USER;
    assert_eq!(translate(&mem, &cpu, GVA, UWRITE), pf(uw, GVA));
    // Not present at the top: PML4 slot 4 is empty.
    let other = GVA + (1 << 39);
    assert_eq!(translate(&mem, &cpu, other, FETCH), pf(PfErrorCode::FETCH, other));
}

#[test]
fn write_to_read_only_page_faults_for_supervisor_only_with_wp() {
    let mem = long_tables(P | US);
    let wp = long_state();
    let no_wp = PagingState { cr0: cr0::PE | cr0::PG, ..wp };
    let sup = PfErrorCode::PRESENT | PfErrorCode::WRITE;
    assert_eq!(translate(&mem, &wp, GVA, WRITE), pf(sup, GVA));
    assert_eq!(translate(&mem, &no_wp, GVA, WRITE), Ok(0x0ABC_D123));
    let user = sup | PfErrorCode::USER;
    assert_eq!(translate(&mem, &no_wp, GVA, UWRITE), pf(user, GVA));
    assert_eq!(translate(&mem, &no_wp, GVA, UREAD), Ok(0x0ABC_D123));
}

#[test]
fn read_only_upper_level_makes_the_page_read_only() {
    let mut mem = long_tables(P | RW | US);
    set64(&mut mem, PDPT + 5 * 8, PD | P | US);
    let code = PfErrorCode::PRESENT | PfErrorCode::WRITE;
    assert_eq!(translate(&mem, &long_state(), GVA, WRITE), pf(code, GVA));
}

#[test]
fn user_access_to_supervisor_page_faults() {
    let mut mem = long_tables(P | RW | US);
    // U/S clear in the PML4E only.
    set64(&mut mem, PML4 + 3 * 8, PDPT | P | RW);
    let cpu = long_state();
    let code = PfErrorCode::PRESENT | PfErrorCode::USER;
    assert_eq!(translate(&mem, &cpu, GVA, UREAD), pf(code, GVA));
    assert_eq!(translate(&mem, &cpu, GVA, READ), Ok(0x0ABC_D123));
}

#[test]
fn fetch_from_no_execute_page_faults_with_nxe() {
    let mut mem = long_tables(P | RW);
    set64(&mut mem, PD + 7 * 8, PT | P | RW | NX);
    let cpu = long_state();
    let code = PfErrorCode::PRESENT | PfErrorCode::FETCH;
    assert_eq!(translate(&mem, &cpu, GVA, FETCH), pf(code, GVA));
    assert_eq!(translate(&mem, &cpu, GVA, READ), Ok(0x0ABC_D123));
}

#[test]
fn smep_stops_supervisor_fetch_from_user_page() {
    let mem = long_tables(P | US);
    let cpu = PagingState { cr4: cr4::PAE | cr4::SMEP, ..long_state() };
    let code = PfErrorCode::PRESENT | PfErrorCode::FETCH;
    assert_eq!(translate(&mem, &cpu, GVA, FETCH), pf(code, GVA));
    assert_eq!(translate(&mem, &cpu, GVA, AccessKind::fetch(true)), Ok(0x0ABC_D123));
}

#[test]
fn non_canonical_address_is_not_a_page_fault() {
    let mem = long_tables(P);
    let gva = 0x0000_8000_0000_0000;
    assert_eq!(translate(&mem, &long_state(), gva, READ), Err(WalkError::NonCanonical { gva }));
}

#[test]
fn high_half_canonical_address_uses_pml4_slot_511() {
    let mut mem = long_tables(P);
    set64(&mut mem, PML4 + 511 * 8, PDPT | P | RW);
    set64(&mut mem, PDPT + 510 * 8, 0x8000_0000 | P | RW | PS);
    let gva = 0xFFFF_FFFF_8000_1234;
    assert_eq!(translate(&mem, &long_state(), gva, READ), Ok(0x8000_1234));
}

#[test]
fn table_outside_ram_is_a_bad_gpa() {
    let mut mem = long_tables(P);
    set64(&mut mem, PDPT + 5 * 8, 0x1000_0000 | P | RW);
    assert_eq!(translate(&mem, &long_state(), GVA, READ), Err(WalkError::BadGpa { gpa: 0x1000_0000 + 7 * 8 }));
    let cpu = PagingState { cr3: 0xF000_0000, ..long_state() };
    assert!(matches!(translate(&mem, &cpu, GVA, READ), Err(WalkError::BadGpa { .. })));
}

#[test]
fn five_level_paging_is_unsupported() {
    let mem = long_tables(P);
    let cpu = PagingState { cr4: cr4::PAE | cr4::LA57, ..long_state() };
    assert_eq!(translate(&mem, &cpu, GVA, READ), Err(WalkError::UnsupportedPaging));
}

// ------------------------------------------------------------- 32-bit paging

fn bits32_state(cr4: u64) -> PagingState {
    PagingState {
        cr0: cr0::PE | cr0::PG | cr0::WP,
        cr3: 0x1000,
        cr4,
        efer: efer::NXE,
        phys_addr_bits: 40,
        gbpages: false,
    }
}

#[test]
fn bits32_maps_a_4k_page_and_ignores_high_gva_bits() {
    let mut mem = VecMemory::new(0x10_0000);
    // 0x1234_5678: PDE 0x48, PTE 0x345, offset 0x678.
    set32(&mut mem, 0x1000 + 0x48 * 4, 0x2000 | 7);
    set32(&mut mem, 0x2000 + 0x345 * 4, 0x00AB_C000 | 7);
    let cpu = bits32_state(0);
    assert_eq!(translate(&mem, &cpu, 0x1234_5678, READ), Ok(0xABC678));
    assert_eq!(translate(&mem, &cpu, 0xFFFF_FFFF_1234_5678, READ), Ok(0xABC678));
}

#[test]
fn bits32_maps_a_4m_page_with_pse_36_high_bits() {
    let mut mem = VecMemory::new(0x10_0000);
    set32(&mut mem, 0x1000 + 0x48 * 4, 0x0080_0000 | (0x3 << 13) | PS as u32 | 3);
    let cpu = bits32_state(cr4::PSE);
    let got = walk(&mem, &cpu, 0x1234_5678, WRITE);
    assert_eq!(got, Ok(Translation { gpa: 0x3_0080_0000 | (0x1234_5678 & 0x3F_FFFF), page_size: 4 << 20 }));
}

#[test]
fn bits32_ps_is_ignored_without_cr4_pse() {
    let mut mem = VecMemory::new(0x10_0000);
    set32(&mut mem, 0x1000 + 0x48 * 4, 0x2000 | PS as u32 | 7);
    set32(&mut mem, 0x2000 + 0x345 * 4, 0x00AB_C000 | 7);
    assert_eq!(translate(&mem, &bits32_state(0), 0x1234_5678, READ), Ok(0xABC678));
}

#[test]
fn bits32_4m_page_reserved_bits_fault() {
    let mut mem = VecMemory::new(0x10_0000);
    set32(&mut mem, 0x1000 + 0x48 * 4, 0x0080_0000 | (1 << 21) | PS as u32 | 3);
    let rsvd = PfErrorCode::PRESENT | PfErrorCode::RSVD;
    let cpu = bits32_state(cr4::PSE);
    assert_eq!(translate(&mem, &cpu, 0x1234_5678, READ), pf(rsvd, 0x1234_5678));
    // PSE-36 bits beyond a 36-bit physical address space.
    set32(&mut mem, 0x1000 + 0x48 * 4, 0x0080_0000 | (0x10 << 13) | PS as u32 | 3);
    let narrow = PagingState { phys_addr_bits: 36, ..cpu };
    assert_eq!(translate(&mem, &narrow, 0x1234_5678, READ), pf(rsvd, 0x1234_5678));
}

#[test]
fn bits32_fetch_fault_has_no_fetch_bit_without_pae_or_smep() {
    let mem = VecMemory::new(0x10_0000);
    let cpu = bits32_state(0);
    assert_eq!(translate(&mem, &cpu, 0x1234_5678, FETCH), pf(PfErrorCode::empty(), 0x1234_5678));
    let smep = bits32_state(cr4::SMEP);
    assert_eq!(translate(&mem, &smep, 0x1234_5678, FETCH), pf(PfErrorCode::FETCH, 0x1234_5678));
}

// ----------------------------------------------------------------- PAE paging

fn pae_state() -> PagingState {
    PagingState {
        cr0: cr0::PE | cr0::PG | cr0::WP,
        // 32-byte aligned, not page aligned.
        cr3: 0x1020,
        cr4: cr4::PAE,
        efer: efer::NXE,
        phys_addr_bits: 40,
        gbpages: false,
    }
}

/// 0xC123_4567: PDPT 3, PD 9, PT 0x34, offset 0x567.
const PAE_GVA: u64 = 0xC123_4567;

fn pae_tables() -> VecMemory {
    let mut mem = VecMemory::new(0x10_0000);
    set64(&mut mem, 0x1020 + 3 * 8, 0x2000 | P);
    set64(&mut mem, 0x2000 + 9 * 8, 0x3000 | P | RW);
    set64(&mut mem, 0x3000 + 0x34 * 8, 0x1_2345_6000 | P | RW | NX);
    mem
}

#[test]
fn pae_maps_a_4k_page_above_4g() {
    let mem = pae_tables();
    assert_eq!(translate(&mem, &pae_state(), PAE_GVA, WRITE), Ok(0x1_2345_6567));
}

#[test]
fn pae_maps_a_2m_page() {
    let mut mem = pae_tables();
    set64(&mut mem, 0x2000 + 9 * 8, 0x0060_0000 | P | PS);
    let got = walk(&mem, &pae_state(), PAE_GVA, READ);
    assert_eq!(got, Ok(Translation { gpa: 0x0060_0000 | (PAE_GVA & 0x1F_FFFF), page_size: 2 << 20 }));
}

#[test]
fn pae_pdpte_rights_bits_are_reserved() {
    let mut mem = pae_tables();
    set64(&mut mem, 0x1020 + 3 * 8, 0x2000 | P | RW);
    let rsvd = PfErrorCode::PRESENT | PfErrorCode::RSVD;
    assert_eq!(translate(&mem, &pae_state(), PAE_GVA, READ), pf(rsvd, PAE_GVA));
}

#[test]
fn pae_bits_62_to_52_are_reserved() {
    let mut mem = pae_tables();
    set64(&mut mem, 0x3000 + 0x34 * 8, 0x6000 | P | (1 << 60));
    let rsvd = PfErrorCode::PRESENT | PfErrorCode::RSVD;
    assert_eq!(translate(&mem, &pae_state(), PAE_GVA, READ), pf(rsvd, PAE_GVA));
}

#[test]
fn pae_no_execute_page_fault_sets_the_fetch_bit() {
    let mem = pae_tables();
    let code = PfErrorCode::PRESENT | PfErrorCode::FETCH;
    assert_eq!(translate(&mem, &pae_state(), PAE_GVA, FETCH), pf(code, PAE_GVA));
}

#[test]
fn pae_not_present_pdpte_faults() {
    let mem = pae_tables();
    let gva = 0x4000_0000;
    assert_eq!(translate(&mem, &pae_state(), gva, UREAD), pf(PfErrorCode::USER, gva));
}

// ------------------------------------------------------------------ no paging

#[test]
fn without_paging_addresses_are_identity_mapped_in_32_bits() {
    let mem = VecMemory::new(0x1000);
    let cpu = PagingState { cr0: cr0::PE, cr3: 0, cr4: 0, efer: 0, phys_addr_bits: 40, gbpages: false };
    assert_eq!(translate(&mem, &cpu, 0xFEE0_0030, WRITE), Ok(0xFEE0_0030));
    assert_eq!(translate(&mem, &cpu, 0x1_0000_1234, READ), Ok(0x1234));
}

#[test]
fn long_mode_without_pae_is_unsupported() {
    let mem = VecMemory::new(0x1000);
    let cpu = PagingState { cr4: 0, ..long_state() };
    assert_eq!(translate(&mem, &cpu, 0, READ), Err(WalkError::UnsupportedPaging));
}

// ------------------------------------------------------ accessed and dirty

const A: u64 = 1 << 5;
const D: u64 = 1 << 6;

fn long_entries(mem: &VecMemory) -> [u64; 4] {
    [PML4 + 3 * 8, PDPT + 5 * 8, PD + 7 * 8, PT + 9 * 8].map(|gpa| mem.read_u64(gpa).unwrap())
}

#[test]
fn a_marked_read_sets_accessed_on_every_level_and_dirty_nowhere() {
    let mut mem = long_tables(P | RW | US);
    let before = long_entries(&mem);
    assert_eq!(walk_and_mark(&mut mem, &long_state(), GVA, UREAD).map(|t| t.gpa), Ok(0x0ABC_D123));
    let after = long_entries(&mem);
    for (b, a) in before.iter().zip(after) {
        assert_eq!(a, b | A, "entry {b:#x} became {a:#x}");
    }
}

#[test]
fn a_marked_write_also_sets_dirty_in_the_leaf_only() {
    let mut mem = long_tables(P | RW | US);
    let before = long_entries(&mem);
    walk_and_mark(&mut mem, &long_state(), GVA, UWRITE).unwrap();
    let after = long_entries(&mem);
    assert_eq!(after[..3], before[..3].iter().map(|e| e | A).collect::<Vec<_>>()[..]);
    assert_eq!(after[3], before[3] | A | D);
}

#[test]
fn a_marked_write_to_a_2m_page_dirties_the_pde() {
    let mut mem = long_tables(P);
    set64(&mut mem, PD + 7 * 8, 0x4000_0000 | P | RW | PS);
    walk_and_mark(&mut mem, &long_state(), GVA, WRITE).unwrap();
    assert_eq!(mem.read_u64(PD + 7 * 8).unwrap(), 0x4000_0000 | P | RW | PS | A | D);
}

#[test]
fn a_faulting_marked_walk_changes_nothing() {
    let mut mem = long_tables(P | US);
    let before = mem.0.clone();
    let got = walk_and_mark(&mut mem, &long_state(), GVA, UWRITE);
    let code = PfErrorCode::PRESENT | PfErrorCode::WRITE | PfErrorCode::USER;
    assert_eq!(got.map(|t| t.gpa), pf(code, GVA));
    assert!(mem.0 == before, "a refused access must not set A or D");
}

#[test]
fn a_marked_pae_walk_leaves_the_pdpte_alone() {
    let mut mem = pae_tables();
    walk_and_mark(&mut mem, &pae_state(), PAE_GVA, WRITE).unwrap();
    assert_eq!(mem.read_u64(0x1020 + 3 * 8).unwrap(), 0x2000 | P, "PAE PDPTEs have no A bit");
    assert_eq!(mem.read_u64(0x2000 + 9 * 8).unwrap(), 0x3000 | P | RW | A);
    assert_eq!(mem.read_u64(0x3000 + 0x34 * 8).unwrap(), 0x1_2345_6000 | P | RW | NX | A | D);
}

#[test]
fn a_marked_32_bit_walk_sets_bits_in_4_byte_entries() {
    let mut mem = VecMemory::new(0x10_0000);
    // 0x0040_1234: PD index 1, PT index 1.
    set32(&mut mem, 0x1000 + 4, 0x2000 | (P | RW) as u32);
    set32(&mut mem, 0x2000 + 4, 0x7000 | (P | RW) as u32);
    set32(&mut mem, 0x2000 + 8, 0xDEAD_B000);
    let got = walk_and_mark(&mut mem, &bits32_state(0), 0x0040_1234, WRITE).map(|t| t.gpa);
    assert_eq!(got, Ok(0x7234));
    assert_eq!(mem.read_u32(0x1000 + 4).unwrap(), 0x2000 | (P | RW | A) as u32);
    assert_eq!(mem.read_u32(0x2000 + 4).unwrap(), 0x7000 | (P | RW | A | D) as u32);
    assert_eq!(mem.read_u32(0x2000 + 8).unwrap(), 0xDEAD_B000, "the next entry is untouched");
}

/// A CPUID that answers `max_ext` at 8000_0000h, `width` in 8000_0008h EAX
/// and `edx` in 8000_0001h EDX.
fn ext_cpuid(max_ext: u32, width: u32, edx: u32) -> impl Fn(u32, u32) -> [u32; 4] {
    move |leaf, _| match leaf {
        0x8000_0000 => [max_ext, 0, 0, 0],
        0x8000_0001 if max_ext >= leaf => [0, 0, 0, edx],
        0x8000_0008 if max_ext >= leaf => [width, 0, 0, 0],
        _ => [0; 4],
    }
}

#[test]
fn walk_limits_come_from_the_width_and_the_1g_page_bit_the_guest_sees() {
    let seen = WalkLimits::from_cpuid(ext_cpuid(0x8000_0008, 0x3028, 1 << 26));
    assert_eq!(seen, WalkLimits { phys_addr_bits: 40, gbpages: true }, "width 40 (EAX 7:0), PDPE1GB set");
    let seen = WalkLimits::from_cpuid(ext_cpuid(0x8000_0008, 0x30, 0));
    assert_eq!(seen, WalkLimits { phys_addr_bits: 48, gbpages: false }, "no PDPE1GB");
    let seen = WalkLimits::from_cpuid(ext_cpuid(0x8000_0001, 0x30, 1 << 26));
    assert_eq!(seen, WalkLimits { phys_addr_bits: 36, gbpages: true }, "no leaf 8000_0008h: 36 bits");
    let seen = WalkLimits::from_cpuid(ext_cpuid(0, 0x30, 1 << 26));
    assert_eq!(seen, WalkLimits { phys_addr_bits: 36, gbpages: false }, "no extended leaves at all");
}

#[test]
fn walk_limits_give_the_paging_state_their_width_and_1g_pages() {
    let limits = WalkLimits { phys_addr_bits: 39, gbpages: true };
    let seen = limits.paging(cr0::PG | cr0::PE, 0x1000, cr4::PAE, efer::LME | efer::LMA);
    let expected = PagingState {
        cr0: cr0::PG | cr0::PE,
        cr3: 0x1000,
        cr4: cr4::PAE,
        efer: efer::LME | efer::LMA,
        phys_addr_bits: 39,
        gbpages: true,
    };
    assert_eq!(seen, expected);
}

//! Instruction fetch across pages, faults and the end of RAM.

use crate::decode::fetch::{fetch, Fetched};
use crate::decode::insn::{decode, CpuMode, DecodeError, InsnKind, MAX_INSN_LEN};
use crate::decode::walk::{PageFault, PagingState, PfErrorCode, WalkError};
use crate::mem::{GuestMemory, VecMemory};
use crate::regs::{cr0, cr4, efer};

const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const PT: u64 = 0x4000;

fn long_state() -> PagingState {
    PagingState {
        cr0: cr0::PE | cr0::PG,
        cr3: PML4,
        cr4: cr4::PAE,
        efer: efer::LMA | efer::NXE,
        phys_addr_bits: 40,
        gbpages: false,
    }
}

/// Maps the first 2 MiB of linear space with 4 KiB pages: page `i` maps
/// to `frame(i)`, or is not present when `frame(i)` is `None`.
fn tables(frame: impl Fn(u64) -> Option<u64>) -> VecMemory {
    let mut mem = VecMemory::new(0x20_0000);
    mem.write_u64(PML4, PDPT | 3).unwrap();
    mem.write_u64(PDPT, PD | 3).unwrap();
    mem.write_u64(PD, PT | 3).unwrap();
    for i in 0..512 {
        if let Some(f) = frame(i) {
            mem.write_u64(PT + i * 8, f | 3).unwrap();
        }
    }
    mem
}

#[test]
fn fetch_straddling_two_pages_reads_each_frame() {
    // Linear page 0x10 maps to frame 0x50000, page 0x11 to 0x30000.
    let mut mem = tables(|i| match i {
        0x10 => Some(0x5_0000),
        0x11 => Some(0x3_0000),
        _ => None,
    });
    // movl $0x12345678,0x10(%rax): c7 40 10 78 56 34 12, split 3 + 4.
    mem.write(0x5_0FFD, &[0xc7, 0x40, 0x10]).unwrap();
    mem.write(0x3_0000, &[0x78, 0x56, 0x34, 0x12]).unwrap();
    let mut buf = [0; MAX_INSN_LEN];
    let got = fetch(&mem, &long_state(), CpuMode::Bits64, 0, 0x10FFD, false, &mut buf);
    assert_eq!(got, Ok(Fetched { len: 15, stop: None }));
    assert_eq!(buf[..7], [0xc7, 0x40, 0x10, 0x78, 0x56, 0x34, 0x12]);
    let insn = decode(&buf, CpuMode::Bits64).unwrap();
    assert_eq!(insn.len, 7);
    assert!(matches!(insn.kind, InsnKind::Mem(_)));
}

#[test]
fn fault_on_the_second_page_stops_the_fetch_and_is_kept() {
    let mut mem = tables(|i| (i == 0x10).then_some(0x5_0000));
    mem.write(0x5_0FFE, &[0x8b, 0x05]).unwrap();
    let mut buf = [0; MAX_INSN_LEN];
    let got = fetch(&mem, &long_state(), CpuMode::Bits64, 0, 0x10FFE, false, &mut buf);
    let fault = WalkError::PageFault(PageFault { error_code: PfErrorCode::FETCH, addr: 0x11000 });
    assert_eq!(got, Ok(Fetched { len: 2, stop: Some(fault) }));
    // The instruction needs the missing bytes: the VMM injects `fault`.
    assert_eq!(decode(&buf[..2], CpuMode::Bits64), Err(DecodeError::Truncated));
}

#[test]
fn fault_on_the_first_byte_is_an_error() {
    let mem = tables(|_| None);
    let mut buf = [0; MAX_INSN_LEN];
    let got = fetch(&mem, &long_state(), CpuMode::Bits64, 0, 0x10000, true, &mut buf);
    let code = PfErrorCode::FETCH | PfErrorCode::USER;
    assert_eq!(got, Err(WalkError::PageFault(PageFault { error_code: code, addr: 0x10000 })));
}

#[test]
fn fetch_stops_at_the_end_of_ram() {
    let no_paging = PagingState { cr0: 0, cr3: 0, cr4: 0, efer: 0, phys_addr_bits: 40, gbpages: false };
    let mut mem = VecMemory::new(0x1_0000);
    mem.write(0xFFFC, &[0xf4, 0x90, 0x90, 0x90]).unwrap();
    let mut buf = [0; MAX_INSN_LEN];
    // Real mode, CS base 0xF000 (selector 0x0F00), IP 0x0FFC.
    let got = fetch(&mem, &no_paging, CpuMode::Bits16, 0xF000, 0x0FFC, false, &mut buf);
    assert_eq!(got, Ok(Fetched { len: 4, stop: Some(WalkError::BadGpa { gpa: 0x1_0000 }) }));
    assert_eq!(buf[0], 0xf4);
    let outside = fetch(&mem, &no_paging, CpuMode::Bits16, 0xF000, 0x1000, false, &mut buf);
    assert_eq!(outside, Err(WalkError::BadGpa { gpa: 0x1_0000 }));
}

#[test]
fn cs_base_counts_outside_64_bit_mode_only() {
    let mut mem = tables(|i| Some(i << 12));
    mem.write(0x1_5000, &[0x0f, 0xa2]).unwrap();
    mem.write(0x1_4000, &[0xf4]).unwrap();
    let cpu = long_state();
    let mut buf = [0; MAX_INSN_LEN];
    fetch(&mem, &cpu, CpuMode::Bits32, 0x1000, 0x1_4000, false, &mut buf).unwrap();
    assert_eq!(buf[..2], [0x0f, 0xa2], "compatibility mode adds CS.base");
    fetch(&mem, &cpu, CpuMode::Bits64, 0x1000, 0x1_4000, false, &mut buf).unwrap();
    assert_eq!(buf[0], 0xf4, "64-bit mode ignores CS.base");
}

#[test]
fn linear_address_wraps_at_4g_outside_64_bit_mode() {
    // 32-bit paging: the last page of the 4 GiB space at frame 0x5000,
    // page 0 at frame 0x6000.
    let mut mem = VecMemory::new(0x10_0000);
    let cpu = PagingState { cr0: cr0::PE | cr0::PG, cr3: 0x1000, cr4: 0, efer: 0, phys_addr_bits: 40, gbpages: false };
    mem.write_u32(0x1000 + 0x3FF * 4, 0x2000 | 3).unwrap();
    mem.write_u32(0x2000 + 0x3FF * 4, 0x5000 | 3).unwrap();
    mem.write_u32(0x1000, 0x3000 | 3).unwrap();
    mem.write_u32(0x3000, 0x6000 | 3).unwrap();
    mem.write(0x5FFF, &[0x0f]).unwrap();
    mem.write(0x6000, &[0x31]).unwrap();
    let mut buf = [0; MAX_INSN_LEN];
    let got = fetch(&mem, &cpu, CpuMode::Bits32, 0xFFFF_F000, 0xFFF, false, &mut buf);
    assert_eq!(got.map(|f| f.len), Ok(15));
    assert_eq!(buf[..2], [0x0f, 0x31]);
}

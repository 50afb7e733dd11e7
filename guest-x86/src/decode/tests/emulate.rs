//! Replaying decoded instructions against a fake device.

use super::FakeRegs;
use crate::decode::emulate::{emulate_mmio, read_reg, write_reg, Access};
use crate::decode::insn::{decode, CpuMode, InsnKind, Reg};
use crate::regs::rflags;

/// Decodes `bytes` (one memory instruction), runs it with a device that
/// answers every read with `device_value`, and returns the accesses.
fn run(bytes: &[u8], mode: CpuMode, regs: &mut FakeRegs, device_value: u64) -> Vec<Access> {
    let insn = decode(bytes, mode).unwrap();
    let InsnKind::Mem(mi) = insn.kind else { panic!("{bytes:02x?} is not a memory instruction: {insn:?}") };
    let mut log = Vec::new();
    emulate_mmio(&mi, regs, &mut |a| {
        log.push(a);
        device_value
    });
    log
}

fn status(regs: &FakeRegs) -> u64 {
    regs.rflags & rflags::STATUS
}

const RAX: usize = 0;
const RCX: usize = 1;
const RDX: usize = 2;
const RDI: usize = 7;

#[test]
fn store_of_ah_writes_bits_15_to_8() {
    let mut regs = FakeRegs::new();
    regs.gpr[RAX] = 0x1234;
    // mov %ah,(%rbx)
    let log = run(&[0x88, 0x23], CpuMode::Bits64, &mut regs, 0);
    assert_eq!(log, [Access::Write { size: 1, value: 0x12 }]);
}

#[test]
fn store_of_immediate_truncates_to_the_operand() {
    let mut regs = FakeRegs::new();
    // movl $0xdeadbeef,0x4(%rax)
    let log = run(&[0xc7, 0x40, 0x04, 0xef, 0xbe, 0xad, 0xde], CpuMode::Bits64, &mut regs, 0);
    assert_eq!(log, [Access::Write { size: 4, value: 0xdead_beef }]);
    // movq $-1,(%rax)
    let log = run(&[0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff], CpuMode::Bits64, &mut regs, 0);
    assert_eq!(log, [Access::Write { size: 8, value: u64::MAX }]);
}

#[test]
fn load_32_bits_clears_the_upper_half_but_16_and_8_keep_it() {
    let mut regs = FakeRegs::new();
    regs.gpr[RAX] = 0xFFFF_FFFF_FFFF_FFFF;
    // mov 0x12345678(%rip),%eax; the device returns more bits than asked.
    let log = run(&[0x8b, 0x05, 0x78, 0x56, 0x34, 0x12], CpuMode::Bits64, &mut regs, 0xAAAA_1234_5678);
    assert_eq!(log, [Access::Read { size: 4 }]);
    assert_eq!(regs.gpr[RAX], 0x1234_5678);
    regs.gpr[RDX] = 0xFFFF_FFFF_FFFF_FFFF;
    // mov 0x100(%rbp),%dx
    run(&[0x66, 0x8b, 0x95, 0x00, 0x01, 0x00, 0x00], CpuMode::Bits64, &mut regs, 0xBEEF);
    assert_eq!(regs.gpr[RDX], 0xFFFF_FFFF_FFFF_BEEF);
    // mov (%si),%dh
    run(&[0x8a, 0x34], CpuMode::Bits16, &mut regs, 0x42);
    assert_eq!(regs.gpr[RDX], 0xFFFF_FFFF_FFFF_42EF);
}

#[test]
fn movzx_and_movsx_extend_to_the_destination() {
    let mut regs = FakeRegs::new();
    regs.gpr[RCX] = u64::MAX;
    // movzbl (%rax),%ecx
    run(&[0x0f, 0xb6, 0x08], CpuMode::Bits64, &mut regs, 0x80);
    assert_eq!(regs.gpr[RCX], 0x80);
    // movsbq 0x3(%rsi),%rdi
    run(&[0x48, 0x0f, 0xbe, 0x7e, 0x03], CpuMode::Bits64, &mut regs, 0x80);
    assert_eq!(regs.gpr[RDI], 0xFFFF_FFFF_FFFF_FF80);
    // movswl (%rax),%edx
    run(&[0x0f, 0xbf, 0x10], CpuMode::Bits64, &mut regs, 0x8000);
    assert_eq!(regs.gpr[RDX], 0xFFFF_8000);
    // movsbw (%rax),%ax keeps bits 63:16
    regs.gpr[RAX] = 0x1111_2222_3333_4444;
    run(&[0x66, 0x0f, 0xbe, 0x00], CpuMode::Bits64, &mut regs, 0xFE);
    assert_eq!(regs.gpr[RAX], 0x1111_2222_3333_FFFE);
}

#[test]
fn add_to_memory_carries_and_sets_zero_parity_and_adjust() {
    let mut regs = FakeRegs::new();
    regs.gpr[RAX] = 1;
    // add %eax,(%rdx) with [mem] = 0xFFFFFFFF
    let log = run(&[0x01, 0x02], CpuMode::Bits64, &mut regs, 0xFFFF_FFFF);
    assert_eq!(log, [Access::Read { size: 4 }, Access::Write { size: 4, value: 0 }]);
    assert_eq!(status(&regs), rflags::CF | rflags::PF | rflags::AF | rflags::ZF);
    assert_eq!(regs.rflags & !rflags::STATUS, 0x202, "other flags kept");
}

#[test]
fn add_signed_overflow_sets_of_and_sf() {
    let mut regs = FakeRegs::new();
    // addl $-1,(%ecx) with [mem] = 0x80000000: 0x80000000 + 0xFFFFFFFF
    // = 0x7FFFFFFF, with a carry and a signed overflow.
    let log = run(&[0x83, 0x01, 0xff], CpuMode::Bits32, &mut regs, 0x8000_0000);
    assert_eq!(log[1], Access::Write { size: 4, value: 0x7FFF_FFFF });
    assert_eq!(status(&regs), rflags::CF | rflags::OF | rflags::PF);
}

#[test]
fn cmp_sets_flags_and_writes_nothing() {
    let mut regs = FakeRegs::new();
    // cmpb $0x80,(%di) with [mem] = 0x7F: 127 - (-128) overflows.
    let log = run(&[0x80, 0x3d, 0x80], CpuMode::Bits16, &mut regs, 0x7F);
    assert_eq!(log, [Access::Read { size: 1 }]);
    assert_eq!(status(&regs), rflags::CF | rflags::SF | rflags::OF | rflags::PF);
    // cmp (%rdx),%ah with AH = 5, [mem] = 5: equal.
    regs.gpr[RAX] = 0x0500;
    run(&[0x3a, 0x22], CpuMode::Bits64, &mut regs, 5);
    assert_eq!(status(&regs), rflags::ZF | rflags::PF);
    assert_eq!(regs.gpr[RAX], 0x0500);
}

#[test]
fn sub_from_memory_borrows() {
    let mut regs = FakeRegs::new();
    // subq $0x1000,0x8(%rdx) with [mem] = 0x10
    let log = run(&[0x48, 0x81, 0x6a, 0x08, 0x00, 0x10, 0x00, 0x00], CpuMode::Bits64, &mut regs, 0x10);
    assert_eq!(log[1], Access::Write { size: 8, value: 0x10u64.wrapping_sub(0x1000) });
    // The low byte 0x10 has one bit set: odd parity, PF clear.
    assert_eq!(status(&regs), rflags::CF | rflags::SF);
}

#[test]
fn logic_ops_clear_cf_and_of() {
    let mut regs = FakeRegs::new();
    regs.rflags |= rflags::CF | rflags::OF | rflags::AF;
    // andl $0x7f,(%rdx) with [mem] = 0xF0
    let log = run(&[0x83, 0x22, 0x7f], CpuMode::Bits64, &mut regs, 0xF0);
    assert_eq!(log[1], Access::Write { size: 4, value: 0x70 });
    assert_eq!(status(&regs), 0, "0x70 has three bits set: odd parity");
    // or (%rdx),%ecx: ECX |= [mem], upper half cleared.
    regs.gpr[RCX] = 0xFFFF_FFFF_0000_0001;
    run(&[0x0b, 0x0a], CpuMode::Bits64, &mut regs, 0x8000_0000);
    assert_eq!(regs.gpr[RCX], 0x8000_0001);
    assert_eq!(status(&regs), rflags::SF);
    // xorb $0x80,(%rdx) with [mem] = 0x80 gives zero.
    let log = run(&[0x80, 0x32, 0x80], CpuMode::Bits64, &mut regs, 0x80);
    assert_eq!(log[1], Access::Write { size: 1, value: 0 });
    assert_eq!(status(&regs), rflags::ZF | rflags::PF);
}

#[test]
fn adc_and_sbb_use_the_carry() {
    let mut regs = FakeRegs::new();
    regs.rflags |= rflags::CF;
    regs.gpr[8] = 0;
    // adc %r8,(%rdx) with [mem] = u64::MAX and CF=1
    let log = run(&[0x4c, 0x11, 0x02], CpuMode::Bits64, &mut regs, u64::MAX);
    assert_eq!(log[1], Access::Write { size: 8, value: 0 });
    assert_eq!(status(&regs), rflags::CF | rflags::ZF | rflags::PF | rflags::AF);
    // sbb (%rdx),%bl with BL = 0, [mem] = 0, CF=1: 0 - 0 - 1 = 0xFF.
    regs.gpr[3] = 0xAB00;
    run(&[0x1a, 0x1a], CpuMode::Bits64, &mut regs, 0);
    assert_eq!(regs.gpr[3], 0xABFF);
    assert_eq!(status(&regs), rflags::CF | rflags::SF | rflags::PF | rflags::AF);
}

#[test]
fn test_sets_flags_without_writing() {
    let mut regs = FakeRegs::new();
    // testl $0x80000000,(%rdx)
    let log = run(&[0xf7, 0x02, 0x00, 0x00, 0x00, 0x80], CpuMode::Bits64, &mut regs, 0x8000_0001);
    assert_eq!(log, [Access::Read { size: 4 }]);
    assert_eq!(status(&regs), rflags::SF | rflags::PF);
    // testb $0x1,(%rdx) with bit 0 clear
    run(&[0xf6, 0x02, 0x01], CpuMode::Bits64, &mut regs, 0xFE);
    assert_eq!(status(&regs), rflags::ZF | rflags::PF);
}

#[test]
fn xchg_reads_then_writes_and_swaps() {
    let mut regs = FakeRegs::new();
    regs.gpr[RAX] = 0xFFFF_FFFF_1111_1111;
    // xchg %eax,(%rdx)
    let log = run(&[0x87, 0x02], CpuMode::Bits64, &mut regs, 0x2222_2222);
    assert_eq!(log, [Access::Read { size: 4 }, Access::Write { size: 4, value: 0x1111_1111 }]);
    assert_eq!(regs.gpr[RAX], 0x2222_2222);
}

#[test]
fn bit_ops_set_cf_from_the_old_bit() {
    let mut regs = FakeRegs::new();
    // lock btsl $0x3,(%rdx) with bit 3 clear
    let log = run(&[0xf0, 0x0f, 0xba, 0x2a, 0x03], CpuMode::Bits64, &mut regs, 0x1);
    assert_eq!(log[1], Access::Write { size: 4, value: 0x9 });
    assert_eq!(status(&regs), 0);
    // btr %rcx,(%rdx) with RCX = 64 + 5: bit 5 of the accessed quadword.
    regs.gpr[RCX] = 69;
    let log = run(&[0x48, 0x0f, 0xb3, 0x0a], CpuMode::Bits64, &mut regs, 0x20);
    assert_eq!(log[1], Access::Write { size: 8, value: 0 });
    assert_eq!(status(&regs), rflags::CF);
    // bt %eax,(%rdx) only reads.
    regs.gpr[RAX] = 1;
    let log = run(&[0x0f, 0xa3, 0x02], CpuMode::Bits64, &mut regs, 0x1);
    assert_eq!(log, [Access::Read { size: 4 }]);
    assert_eq!(status(&regs), 0);
}

#[test]
fn moffs_load_into_rax() {
    let mut regs = FakeRegs::new();
    // movabs 0x1122334455667788,%eax
    let bytes = [0xa1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11];
    run(&bytes, CpuMode::Bits64, &mut regs, 0xFEE0_0000);
    assert_eq!(regs.gpr[RAX], 0xFEE0_0000);
}

#[test]
fn register_helpers_follow_byte_register_rules() {
    let mut regs = FakeRegs::new();
    regs.gpr[RAX] = 0x1122_3344_5566_7788;
    let ah = Reg { num: 0, high_byte: true };
    assert_eq!(read_reg(&regs, ah, 1), 0x77);
    write_reg(&mut regs, ah, 1, 0xAB);
    assert_eq!(regs.gpr[RAX], 0x1122_3344_5566_AB88);
    write_reg(&mut regs, Reg::gpr(6), 1, 0xCD); // SIL
    assert_eq!(regs.gpr[6], 0xCD);
    write_reg(&mut regs, Reg::gpr(0), 4, 0xFFFF_FFFF_0000_0001);
    assert_eq!(regs.gpr[RAX], 1);
}

//! The decoder on real encodings (from GNU `as`, checked with `objdump -d`).

use crate::decode::insn::{
    decode, AddrSize, AluOp, BitOp, CpuMode, DecodeError, Extend, Insn, InsnKind, IoInsn, IoPort, MemInsn, MemOp,
    MemOperand, Reg, RegOrMem, Segment, Src, StringInsn, StringOp, SvmInsn, SvmOp, SysInsn,
};
use crate::decode::tests::FakeRegs;
use AddrSize::{A16, A32, A64};
use CpuMode::{Bits16, Bits32, Bits64};

fn mem(addr_size: AddrSize) -> MemOperand {
    MemOperand { seg: Segment::Ds, base: None, index: None, scale: 1, disp: 0, rip_relative: false, addr_size }
}

/// Builders for the expected memory operands.
trait Build {
    fn base(self, r: u8) -> Self;
    fn index(self, r: u8, scale: u8) -> Self;
    fn disp(self, d: i64) -> Self;
    fn seg(self, s: Segment) -> Self;
    fn rip(self) -> Self;
}

impl Build for MemOperand {
    fn base(mut self, r: u8) -> Self {
        self.base = Some(r);
        self
    }
    fn index(mut self, r: u8, scale: u8) -> Self {
        self.index = Some(r);
        self.scale = scale;
        self
    }
    fn disp(mut self, d: i64) -> Self {
        self.disp = d;
        self
    }
    fn seg(mut self, s: Segment) -> Self {
        self.seg = s;
        self
    }
    fn rip(mut self) -> Self {
        self.rip_relative = true;
        self
    }
}

fn r(n: u8) -> Reg {
    Reg::gpr(n)
}
fn hb(n: u8) -> Reg {
    Reg { num: n, high_byte: true }
}
fn sr(n: u8) -> Src {
    Src::Reg(r(n))
}
fn imm(v: i64) -> Src {
    Src::Imm(v as u64)
}
fn m(op: MemOp, mem: MemOperand, size: u8) -> InsnKind {
    InsnKind::Mem(MemInsn { op, mem, size, lock: false })
}
fn locked(k: InsnKind) -> InsnKind {
    match k {
        InsnKind::Mem(mi) => InsnKind::Mem(MemInsn { lock: true, ..mi }),
        other => other,
    }
}
fn store(src: Src) -> MemOp {
    MemOp::Store { src }
}
fn load(dst: Reg, size: u8) -> MemOp {
    MemOp::Load { dst, dst_size: size, ext: Extend::None }
}
fn load_ext(dst: Reg, dst_size: u8, ext: Extend) -> MemOp {
    MemOp::Load { dst, dst_size, ext }
}
fn to_mem(op: AluOp, src: Src) -> MemOp {
    MemOp::AluToMem { op, src }
}
fn to_reg(op: AluOp, dst: Reg) -> MemOp {
    MemOp::AluToReg { op, dst }
}
fn bit(op: BitOp, offset: Src) -> MemOp {
    MemOp::Bit { op, offset }
}
fn string(op: StringOp, size: u8, rep: bool, addr_size: AddrSize) -> InsnKind {
    InsnKind::String(StringInsn { op, size, rep, addr_size, seg: Segment::Ds })
}
fn io(port: IoPort, size: u8, out: bool) -> InsnKind {
    InsnKind::Io(IoInsn { port, size, out })
}
fn svm(op: SvmOp, addr_size: AddrSize) -> InsnKind {
    InsnKind::Svm(SvmInsn { op, addr_size })
}
fn sys(s: SysInsn) -> InsnKind {
    InsnKind::Sys(s)
}

const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RBX: u8 = 3;
const RSP: u8 = 4;
const RBP: u8 = 5;
const RSI: u8 = 6;
const RDI: u8 = 7;

/// One instruction: its bytes, what `as` was given, and the expected decode.
struct Case {
    mode: CpuMode,
    bytes: &'static [u8],
    asm: &'static str,
    want: InsnKind,
}

fn case(mode: CpuMode, bytes: &'static [u8], asm: &'static str, want: InsnKind) -> Case {
    Case { mode, bytes, asm, want }
}

#[rustfmt::skip]
fn cases_64() -> Vec<Case> {
    let a = || mem(A64);
    let ss = Segment::Ss;
    vec![
        case(Bits64, &[0x89, 0x03], "mov %eax,(%rbx)", m(store(sr(RAX)), a().base(RBX), 4)),
        case(Bits64, &[0x88, 0x03], "mov %al,(%rbx)", m(store(sr(RAX)), a().base(RBX), 1)),
        case(Bits64, &[0x88, 0x23], "mov %ah,(%rbx)", m(store(Src::Reg(hb(RAX))), a().base(RBX), 1)),
        case(Bits64, &[0x40, 0x88, 0x37], "mov %sil,(%rdi)", m(store(sr(RSI)), a().base(RDI), 1)),
        case(Bits64, &[0x4c, 0x89, 0x48, 0x10], "mov %r9,0x10(%rax)", m(store(sr(9)), a().base(RAX).disp(0x10), 8)),
        case(Bits64, &[0x47, 0x89, 0x54, 0xa3, 0xf8], "mov %r10d,-0x8(%r11,%r12,4)",
            m(store(sr(10)), a().base(11).index(12, 4).disp(-8), 4)),
        case(Bits64, &[0x8b, 0x05, 0x78, 0x56, 0x34, 0x12], "mov 0x12345678(%rip),%eax",
            m(load(r(RAX), 4), a().rip().disp(0x1234_5678), 4)),
        case(Bits64, &[0x8b, 0x0c, 0x24], "mov (%rsp),%ecx", m(load(r(RCX), 4), a().base(RSP).seg(ss), 4)),
        case(Bits64, &[0x66, 0x8b, 0x95, 0x00, 0x01, 0x00, 0x00], "mov 0x100(%rbp),%dx",
            m(load(r(RDX), 2), a().base(RBP).disp(0x100).seg(ss), 2)),
        case(Bits64, &[0x41, 0x8b, 0x45, 0x00], "mov 0x0(%r13),%eax", m(load(r(RAX), 4), a().base(13), 4)),
        case(Bits64, &[0x41, 0x8b, 0x04, 0x24], "mov (%r12),%eax", m(load(r(RAX), 4), a().base(12), 4)),
        case(Bits64, &[0x8b, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00], "mov 0x1000,%eax",
            m(load(r(RAX), 4), a().disp(0x1000), 4)),
        case(Bits64, &[0x89, 0x04, 0xc8], "mov %eax,(%rax,%rcx,8)", m(store(sr(RAX)), a().base(RAX).index(RCX, 8), 4)),
        case(Bits64, &[0x42, 0x8a, 0x1c, 0x75, 0x10, 0x00, 0x00, 0x00], "mov 0x10(,%r14,2),%bl",
            m(load(r(RBX), 1), a().index(14, 2).disp(0x10), 1)),
        case(Bits64, &[0x44, 0x8a, 0x38], "mov (%rax),%r15b", m(load(r(15), 1), a().base(RAX), 1)),
        case(Bits64, &[0xc6, 0x00, 0x12], "movb $0x12,(%rax)", m(store(imm(0x12)), a().base(RAX), 1)),
        case(Bits64, &[0x66, 0xc7, 0x00, 0x34, 0x12], "movw $0x1234,(%rax)", m(store(imm(0x1234)), a().base(RAX), 2)),
        case(Bits64, &[0xc7, 0x40, 0x04, 0xef, 0xbe, 0xad, 0xde], "movl $0xdeadbeef,0x4(%rax)",
            m(store(imm(0xdead_beef_u32 as i32 as i64)), a().base(RAX).disp(4), 4)),
        case(Bits64, &[0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff], "movq $-1,(%rax)", m(store(imm(-1)), a().base(RAX), 8)),
        case(Bits64, &[0xc7, 0x05, 0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00], "movl $0x1,0x10(%rip)",
            m(store(imm(1)), a().rip().disp(0x10), 4)),
        case(Bits64, &[0xa1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11], "movabs 0x1122334455667788,%eax",
            m(load(r(RAX), 4), a().disp(0x1122_3344_5566_7788), 4)),
        case(Bits64, &[0xa2, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11], "movabs %al,0x1122334455667788",
            m(store(sr(RAX)), a().disp(0x1122_3344_5566_7788), 1)),
        case(Bits64, &[0x48, 0xa3, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11], "movabs %rax,0x1122334455667788",
            m(store(sr(RAX)), a().disp(0x1122_3344_5566_7788), 8)),
        case(Bits64, &[0x0f, 0xb6, 0x08], "movzbl (%rax),%ecx", m(load_ext(r(RCX), 4, Extend::Zero), a().base(RAX), 1)),
        case(Bits64, &[0x4c, 0x0f, 0xb7, 0x00], "movzwq (%rax),%r8", m(load_ext(r(8), 8, Extend::Zero), a().base(RAX), 2)),
        case(Bits64, &[0x66, 0x0f, 0xbe, 0x00], "movsbw (%rax),%ax", m(load_ext(r(RAX), 2, Extend::Sign), a().base(RAX), 1)),
        case(Bits64, &[0x0f, 0xbf, 0x10], "movswl (%rax),%edx", m(load_ext(r(RDX), 4, Extend::Sign), a().base(RAX), 2)),
        case(Bits64, &[0x48, 0x0f, 0xbe, 0x7e, 0x03], "movsbq 0x3(%rsi),%rdi",
            m(load_ext(r(RDI), 8, Extend::Sign), a().base(RSI).disp(3), 1)),
        // The destination is a 32-bit register: 5 is EBP, not CH.
        case(Bits64, &[0x0f, 0xb6, 0x28], "movzbl (%rax),%ebp", m(load_ext(r(RBP), 4, Extend::Zero), a().base(RAX), 1)),
        case(Bits64, &[0x01, 0x02], "add %eax,(%rdx)", m(to_mem(AluOp::Add, sr(RAX)), a().base(RDX), 4)),
        case(Bits64, &[0x0b, 0x0a], "or (%rdx),%ecx", m(to_reg(AluOp::Or, r(RCX)), a().base(RDX), 4)),
        case(Bits64, &[0x4c, 0x11, 0x02], "adc %r8,(%rdx)", m(to_mem(AluOp::Adc, sr(8)), a().base(RDX), 8)),
        case(Bits64, &[0x1a, 0x1a], "sbb (%rdx),%bl", m(to_reg(AluOp::Sbb, r(RBX)), a().base(RDX), 1)),
        case(Bits64, &[0x83, 0x22, 0x7f], "andl $0x7f,(%rdx)", m(to_mem(AluOp::And, imm(0x7f)), a().base(RDX), 4)),
        case(Bits64, &[0x80, 0x32, 0x80], "xorb $0x80,(%rdx)", m(to_mem(AluOp::Xor, imm(-0x80)), a().base(RDX), 1)),
        case(Bits64, &[0x48, 0x81, 0x6a, 0x08, 0x00, 0x10, 0x00, 0x00], "subq $0x1000,0x8(%rdx)",
            m(to_mem(AluOp::Sub, imm(0x1000)), a().base(RDX).disp(8), 8)),
        case(Bits64, &[0x83, 0x3a, 0x00], "cmpl $0x0,(%rdx)", m(to_mem(AluOp::Cmp, imm(0)), a().base(RDX), 4)),
        case(Bits64, &[0x66, 0x81, 0x3a, 0x34, 0x12], "cmpw $0x1234,(%rdx)", m(to_mem(AluOp::Cmp, imm(0x1234)), a().base(RDX), 2)),
        case(Bits64, &[0x3a, 0x22], "cmp (%rdx),%ah", m(to_reg(AluOp::Cmp, hb(RAX)), a().base(RDX), 1)),
        case(Bits64, &[0x85, 0x02], "test %eax,(%rdx)", m(MemOp::Test { src: sr(RAX) }, a().base(RDX), 4)),
        case(Bits64, &[0xf6, 0x02, 0x01], "testb $0x1,(%rdx)", m(MemOp::Test { src: imm(1) }, a().base(RDX), 1)),
        case(Bits64, &[0xf7, 0x02, 0x00, 0x00, 0x00, 0x80], "testl $0x80000000,(%rdx)",
            m(MemOp::Test { src: imm(i64::from(i32::MIN)) }, a().base(RDX), 4)),
        case(Bits64, &[0x48, 0xf7, 0x02, 0xfe, 0xff, 0xff, 0xff], "testq $-2,(%rdx)",
            m(MemOp::Test { src: imm(-2) }, a().base(RDX), 8)),
        case(Bits64, &[0x87, 0x02], "xchg %eax,(%rdx)", m(MemOp::Xchg { reg: r(RAX) }, a().base(RDX), 4)),
        case(Bits64, &[0x86, 0x0a], "xchg %cl,(%rdx)", m(MemOp::Xchg { reg: r(RCX) }, a().base(RDX), 1)),
        case(Bits64, &[0xf0, 0x83, 0x0a, 0x01], "lock orl $0x1,(%rdx)",
            locked(m(to_mem(AluOp::Or, imm(1)), a().base(RDX), 4))),
        case(Bits64, &[0xf0, 0x48, 0x01, 0x02], "lock add %rax,(%rdx)",
            locked(m(to_mem(AluOp::Add, sr(RAX)), a().base(RDX), 8))),
        case(Bits64, &[0x0f, 0xa3, 0x02], "bt %eax,(%rdx)", m(bit(BitOp::Bt, sr(RAX)), a().base(RDX), 4)),
        case(Bits64, &[0x0f, 0xba, 0x22, 0x05], "btl $0x5,(%rdx)", m(bit(BitOp::Bt, imm(5)), a().base(RDX), 4)),
        case(Bits64, &[0xf0, 0x0f, 0xba, 0x2a, 0x03], "lock btsl $0x3,(%rdx)",
            locked(m(bit(BitOp::Bts, imm(3)), a().base(RDX), 4))),
        case(Bits64, &[0x48, 0x0f, 0xb3, 0x0a], "btr %rcx,(%rdx)", m(bit(BitOp::Btr, sr(RCX)), a().base(RDX), 8)),
        case(Bits64, &[0x66, 0x0f, 0xba, 0x3a, 0x0f], "btcw $0xf,(%rdx)", m(bit(BitOp::Btc, imm(15)), a().base(RDX), 2)),
        case(Bits64, &[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00], "mov %fs:0x28,%rax",
            m(load(r(RAX), 8), a().disp(0x28).seg(Segment::Fs), 8)),
        case(Bits64, &[0x65, 0x8b, 0x00], "mov %gs:(%rax),%eax", m(load(r(RAX), 4), a().base(RAX).seg(Segment::Gs), 4)),
        case(Bits64, &[0x67, 0x8b, 0x08], "mov (%eax),%ecx", m(load(r(RCX), 4), mem(A32).base(RAX), 4)),
        case(Bits64, &[0x67, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00], "mov 0x10(%eip),%eax",
            m(load(r(RAX), 4), mem(A32).rip().disp(0x10), 4)),
        case(Bits64, &[0x3e, 0x89, 0x45, 0x00], "ds mov %eax,0x0(%rbp)", m(store(sr(RAX)), a().base(RBP), 4)),
        case(Bits64, &[0x36, 0x8b, 0x00], "ss mov (%rax),%eax", m(load(r(RAX), 4), a().base(RAX).seg(ss), 4)),
        // A legacy prefix after REX cancels the REX; REX.W beats 66.
        case(Bits64, &[0x48, 0x66, 0x89, 0x03], "rex.W data16 mov %ax,(%rbx)", m(store(sr(RAX)), a().base(RBX), 2)),
        case(Bits64, &[0x66, 0x48, 0x89, 0x03], "data16 mov %rax,(%rbx)", m(store(sr(RAX)), a().base(RBX), 8)),
        // String, I/O and system instructions.
        case(Bits64, &[0xf3, 0xa4], "rep movsb", string(StringOp::Movs, 1, true, A64)),
        case(Bits64, &[0xf3, 0x48, 0xab], "rep stos %rax", string(StringOp::Stos, 8, true, A64)),
        case(Bits64, &[0xa5], "movsl", string(StringOp::Movs, 4, false, A64)),
        case(Bits64, &[0xac], "lods %al", string(StringOp::Lods, 1, false, A64)),
        case(Bits64, &[0x6c], "insb", string(StringOp::Ins, 1, false, A64)),
        case(Bits64, &[0x66, 0xf3, 0x6f], "rep outsw", string(StringOp::Outs, 2, true, A64)),
        case(Bits64, &[0xe4, 0x60], "in $0x60,%al", io(IoPort::Imm(0x60), 1, false)),
        case(Bits64, &[0xed], "in (%dx),%eax", io(IoPort::Dx, 4, false)),
        case(Bits64, &[0xe6, 0x80], "out %al,$0x80", io(IoPort::Imm(0x80), 1, true)),
        case(Bits64, &[0x66, 0xef], "out %ax,(%dx)", io(IoPort::Dx, 2, true)),
        case(Bits64, &[0xf4], "hlt", sys(SysInsn::Hlt)),
        case(Bits64, &[0x0f, 0xa2], "cpuid", sys(SysInsn::Cpuid)),
        case(Bits64, &[0x0f, 0x32], "rdmsr", sys(SysInsn::Rdmsr)),
        case(Bits64, &[0x0f, 0x30], "wrmsr", sys(SysInsn::Wrmsr)),
        case(Bits64, &[0x0f, 0x31], "rdtsc", sys(SysInsn::Rdtsc)),
        case(Bits64, &[0x0f, 0x01, 0xf9], "rdtscp", sys(SysInsn::Rdtscp)),
        case(Bits64, &[0x0f, 0x33], "rdpmc", sys(SysInsn::Rdpmc)),
        case(Bits64, &[0xcc], "int3", sys(SysInsn::Int3)),
        case(Bits64, &[0xcd, 0x80], "int $0x80", sys(SysInsn::Int { vector: 0x80 })),
        case(Bits64, &[0x48, 0xcf], "iretq", sys(SysInsn::Iret { size: 8 })),
        case(Bits64, &[0xcf], "iretl", sys(SysInsn::Iret { size: 4 })),
        case(Bits64, &[0x66, 0xcf], "iretw", sys(SysInsn::Iret { size: 2 })),
        case(Bits64, &[0x9c], "pushfq", sys(SysInsn::Pushf { size: 8 })),
        case(Bits64, &[0x9d], "popfq", sys(SysInsn::Popf { size: 8 })),
        case(Bits64, &[0x66, 0x9c], "pushfw", sys(SysInsn::Pushf { size: 2 })),
        case(Bits64, &[0x66, 0x48, 0x9c], "data16 rex.W pushfq", sys(SysInsn::Pushf { size: 8 })),
        case(Bits64, &[0xf3, 0x90], "pause", sys(SysInsn::Pause)),
        case(Bits64, &[0x90], "nop", sys(SysInsn::Nop)),
        case(Bits64, &[0xfa], "cli", sys(SysInsn::Cli)),
        case(Bits64, &[0xfb], "sti", sys(SysInsn::Sti)),
        case(Bits64, &[0x0f, 0x01, 0xd8], "vmrun", svm(SvmOp::Vmrun, A64)),
        case(Bits64, &[0x0f, 0x01, 0xd9], "vmmcall", svm(SvmOp::Vmmcall, A64)),
        case(Bits64, &[0xf3, 0x0f, 0x01, 0xd9], "vmgexit (vmmcall outside SEV-ES)", svm(SvmOp::Vmmcall, A64)),
        case(Bits64, &[0x0f, 0x01, 0xda], "vmload", svm(SvmOp::Vmload, A64)),
        case(Bits64, &[0x0f, 0x01, 0xdb], "vmsave", svm(SvmOp::Vmsave, A64)),
        case(Bits64, &[0x0f, 0x01, 0xdc], "stgi", svm(SvmOp::Stgi, A64)),
        case(Bits64, &[0x0f, 0x01, 0xdd], "clgi", svm(SvmOp::Clgi, A64)),
        case(Bits64, &[0x0f, 0x01, 0xde], "skinit", svm(SvmOp::Skinit, A64)),
        case(Bits64, &[0x0f, 0x01, 0xdf], "invlpga", svm(SvmOp::Invlpga, A64)),
        case(Bits64, &[0x67, 0x0f, 0x01, 0xd8], "addr32 vmrun", svm(SvmOp::Vmrun, A32)),
        case(Bits64, &[0x0f, 0x20, 0xc0], "mov %cr0,%rax", sys(SysInsn::MovFromCr { cr: 0, gpr: RAX })),
        case(Bits64, &[0x0f, 0x22, 0xd8], "mov %rax,%cr3", sys(SysInsn::MovToCr { cr: 3, gpr: RAX })),
        case(Bits64, &[0x45, 0x0f, 0x22, 0xc0], "mov %r8,%cr8", sys(SysInsn::MovToCr { cr: 8, gpr: 8 })),
        case(Bits64, &[0x41, 0x0f, 0x20, 0xe1], "mov %cr4,%r9", sys(SysInsn::MovFromCr { cr: 4, gpr: 9 })),
        case(Bits64, &[0x0f, 0x21, 0xf8], "mov %db7,%rax", sys(SysInsn::MovFromDr { dr: 7, gpr: RAX })),
        case(Bits64, &[0x0f, 0x23, 0xf0], "mov %rax,%db6", sys(SysInsn::MovToDr { dr: 6, gpr: RAX })),
        case(Bits64, &[0x0f, 0x01, 0x38], "invlpg (%rax)", sys(SysInsn::Invlpg { mem: a().base(RAX) })),
        case(Bits64, &[0x0f, 0x01, 0x3d, 0x10, 0x00, 0x00, 0x00], "invlpg 0x10(%rip)",
            sys(SysInsn::Invlpg { mem: a().rip().disp(0x10) })),
        case(Bits64, &[0x0f, 0x01, 0xf0], "lmsw %ax", sys(SysInsn::Lmsw { src: RegOrMem::Reg(RAX) })),
        case(Bits64, &[0x0f, 0x01, 0x33], "lmsw (%rbx)", sys(SysInsn::Lmsw { src: RegOrMem::Mem(a().base(RBX)) })),
        case(Bits64, &[0x0f, 0x01, 0xe0], "smsw %eax", sys(SysInsn::Smsw { dst: RegOrMem::Reg(RAX), size: 4 })),
        case(Bits64, &[0x0f, 0x01, 0x23], "smsw (%rbx)", sys(SysInsn::Smsw { dst: RegOrMem::Mem(a().base(RBX)), size: 2 })),
        case(Bits64, &[0x0f, 0x01, 0xd1], "xsetbv", sys(SysInsn::Xsetbv)),
        case(Bits64, &[0x0f, 0x01, 0xd0], "xgetbv", sys(SysInsn::Xgetbv)),
        case(Bits64, &[0x0f, 0x01, 0xc8], "monitor", sys(SysInsn::Monitor)),
        case(Bits64, &[0x0f, 0x01, 0xc9], "mwait", sys(SysInsn::Mwait)),
        case(Bits64, &[0x0f, 0x09], "wbinvd", sys(SysInsn::Wbinvd)),
        case(Bits64, &[0x0f, 0x08], "invd", sys(SysInsn::Invd)),
        case(Bits64, &[0x0f, 0x06], "clts", sys(SysInsn::Clts)),
        case(Bits64, &[0x0f, 0x01, 0xf8], "swapgs", sys(SysInsn::Swapgs)),
        case(Bits64, &[0x0f, 0x0b], "ud2", sys(SysInsn::Ud2)),
        case(Bits64, &[0x0f, 0xaa], "rsm", sys(SysInsn::Rsm)),
        case(Bits64, &[0xf1], "int1", sys(SysInsn::Int1)),
        // Fifteen bytes exactly: two CS overrides, FS (the last one wins), REX.W.
        case(Bits64, &[0x2e, 0x2e, 0x64, 0x48, 0xc7, 0x84, 0x24, 0x44, 0x33, 0x22, 0x11, 0x78, 0x56, 0x34, 0x12],
            "cs cs movq $0x12345678,%fs:0x11223344(%rsp)",
            m(store(imm(0x1234_5678)), a().base(RSP).disp(0x1122_3344).seg(Segment::Fs), 8)),
    ]
}

#[rustfmt::skip]
fn cases_32() -> Vec<Case> {
    let a = || mem(A32);
    let ss = Segment::Ss;
    vec![
        case(Bits32, &[0x89, 0x03], "mov %eax,(%ebx)", m(store(sr(RAX)), a().base(RBX), 4)),
        case(Bits32, &[0xa1, 0x78, 0x56, 0x34, 0x12], "mov 0x12345678,%eax", m(load(r(RAX), 4), a().disp(0x1234_5678), 4)),
        case(Bits32, &[0x8b, 0x45, 0x10], "mov 0x10(%ebp),%eax", m(load(r(RAX), 4), a().base(RBP).disp(0x10).seg(ss), 4)),
        case(Bits32, &[0x8b, 0x04, 0x24], "mov (%esp),%eax", m(load(r(RAX), 4), a().base(RSP).seg(ss), 4)),
        // mod=00 r/m=101 is an absolute disp32 outside 64-bit mode.
        case(Bits32, &[0x8b, 0x0d, 0x00, 0x10, 0x00, 0x00], "mov 0x1000,%ecx", m(load(r(RCX), 4), a().disp(0x1000), 4)),
        case(Bits32, &[0x66, 0x89, 0x07], "mov %ax,(%edi)", m(store(sr(RAX)), a().base(RDI), 2)),
        case(Bits32, &[0x67, 0x8b, 0x00], "mov (%bx,%si),%eax", m(load(r(RAX), 4), mem(A16).base(RBX).index(RSI, 1), 4)),
        case(Bits32, &[0x88, 0x26], "mov %ah,(%esi)", m(store(Src::Reg(hb(RAX))), a().base(RSI), 1)),
        case(Bits32, &[0x0f, 0xb6, 0x54, 0x58, 0x04], "movzbl 0x4(%eax,%ebx,2),%edx",
            m(load_ext(r(RDX), 4, Extend::Zero), a().base(RAX).index(RBX, 2).disp(4), 1)),
        case(Bits32, &[0x0f, 0xbe, 0x00], "movsbl (%eax),%eax", m(load_ext(r(RAX), 4, Extend::Sign), a().base(RAX), 1)),
        case(Bits32, &[0x83, 0x01, 0xff], "addl $0xffffffff,(%ecx)", m(to_mem(AluOp::Add, imm(-1)), a().base(RCX), 4)),
        case(Bits32, &[0xf0, 0x87, 0x01], "lock xchg %eax,(%ecx)", locked(m(MemOp::Xchg { reg: r(RAX) }, a().base(RCX), 4))),
        case(Bits32, &[0x26, 0xc7, 0x40, 0x10, 0x78, 0x56, 0x34, 0x12], "movl $0x12345678,%es:0x10(%eax)",
            m(store(imm(0x1234_5678)), a().base(RAX).disp(0x10).seg(Segment::Es), 4)),
        // 82 is an alias of 80 outside 64-bit mode (hand-written: `as` never emits it).
        case(Bits32, &[0x82, 0x00, 0x01], "addb $0x1,(%eax)", m(to_mem(AluOp::Add, imm(1)), a().base(RAX), 1)),
        case(Bits32, &[0xcf], "iret", sys(SysInsn::Iret { size: 4 })),
        case(Bits32, &[0x9c], "pushf", sys(SysInsn::Pushf { size: 4 })),
        case(Bits32, &[0x0f, 0x20, 0xc0], "mov %cr0,%eax", sys(SysInsn::MovFromCr { cr: 0, gpr: RAX })),
        case(Bits32, &[0xf0, 0x0f, 0x20, 0xc0], "mov %cr8,%eax (AMD LOCK form)", sys(SysInsn::MovFromCr { cr: 8, gpr: RAX })),
        case(Bits32, &[0xf3, 0xab], "rep stos %eax", string(StringOp::Stos, 4, true, A32)),
        case(Bits32, &[0xe5, 0x71], "in $0x71,%eax", io(IoPort::Imm(0x71), 4, false)),
        case(Bits32, &[0xce], "into", sys(SysInsn::Into)),
        case(Bits32, &[0x0f, 0x01, 0xd8], "vmrun", svm(SvmOp::Vmrun, A32)),
        case(Bits32, &[0x0f, 0xba, 0x20, 0x1f], "btl $0x1f,(%eax)", m(bit(BitOp::Bt, imm(31)), a().base(RAX), 4)),
    ]
}

#[rustfmt::skip]
fn cases_16() -> Vec<Case> {
    let a = || mem(A16);
    let ss = Segment::Ss;
    vec![
        case(Bits16, &[0x89, 0x00], "mov %ax,(%bx,%si)", m(store(sr(RAX)), a().base(RBX).index(RSI, 1), 2)),
        case(Bits16, &[0x8b, 0x46, 0x10], "mov 0x10(%bp),%ax", m(load(r(RAX), 2), a().base(RBP).disp(0x10).seg(ss), 2)),
        case(Bits16, &[0xa1, 0x34, 0x12], "mov 0x1234,%ax", m(load(r(RAX), 2), a().disp(0x1234), 2)),
        case(Bits16, &[0xa2, 0x34, 0x12], "mov %al,0x1234", m(store(sr(RAX)), a().disp(0x1234), 1)),
        case(Bits16, &[0xc7, 0x45, 0x02, 0x34, 0x12], "movw $0x1234,0x2(%di)", m(store(imm(0x1234)), a().base(RDI).disp(2), 2)),
        case(Bits16, &[0x66, 0x89, 0x07], "mov %eax,(%bx)", m(store(sr(RAX)), a().base(RBX), 4)),
        case(Bits16, &[0x67, 0x8b, 0x00], "mov (%eax),%ax", m(load(r(RAX), 2), mem(A32).base(RAX), 2)),
        case(Bits16, &[0x8a, 0x89, 0x78, 0x56], "mov 0x5678(%bx,%di),%cl",
            m(load(r(RCX), 1), a().base(RBX).index(RDI, 1).disp(0x5678), 1)),
        case(Bits16, &[0x8b, 0x46, 0x00], "mov 0x0(%bp),%ax", m(load(r(RAX), 2), a().base(RBP).seg(ss), 2)),
        case(Bits16, &[0x8b, 0x0e, 0x34, 0x12], "mov 0x1234,%cx", m(load(r(RCX), 2), a().disp(0x1234), 2)),
        case(Bits16, &[0x8a, 0x34], "mov (%si),%dh", m(load(hb(RDX), 1), a().base(RSI), 1)),
        case(Bits16, &[0x36, 0x8b, 0x07], "mov %ss:(%bx),%ax", m(load(r(RAX), 2), a().base(RBX).seg(ss), 2)),
        case(Bits16, &[0x64, 0x8b, 0x03], "mov %fs:(%bp,%di),%ax",
            m(load(r(RAX), 2), a().base(RBP).index(RDI, 1).seg(Segment::Fs), 2)),
        case(Bits16, &[0xcf], "iret", sys(SysInsn::Iret { size: 2 })),
        case(Bits16, &[0x9c], "pushf", sys(SysInsn::Pushf { size: 2 })),
        case(Bits16, &[0xa4], "movsb", string(StringOp::Movs, 1, false, A16)),
        case(Bits16, &[0xe6, 0x80], "out %al,$0x80", io(IoPort::Imm(0x80), 1, true)),
        case(Bits16, &[0xed], "in (%dx),%ax", io(IoPort::Dx, 2, false)),
        case(Bits16, &[0x80, 0x3d, 0x80], "cmpb $0x80,(%di)", m(to_mem(AluOp::Cmp, imm(-0x80)), a().base(RDI), 1)),
        case(Bits16, &[0x0f, 0xb6, 0x07], "movzbw (%bx),%ax", m(load_ext(r(RAX), 2, Extend::Zero), a().base(RBX), 1)),
    ]
}

fn check(c: &Case, bytes: &[u8]) {
    let want = Insn { len: c.bytes.len() as u8, kind: c.want };
    let got = decode(bytes, c.mode);
    assert_eq!(got, Ok(want), "{:?} {:02x?} ({})", c.mode, bytes, c.asm);
}

#[test]
fn decodes_as_encodings_in_64_bit_mode() {
    for c in cases_64() {
        check(&c, c.bytes);
    }
}

#[test]
fn decodes_as_encodings_in_32_bit_mode() {
    for c in cases_32() {
        check(&c, c.bytes);
    }
}

#[test]
fn decodes_as_encodings_in_16_bit_mode() {
    for c in cases_16() {
        check(&c, c.bytes);
    }
}

#[test]
fn bytes_after_the_instruction_do_not_change_its_decode() {
    for c in cases_64().iter().chain(&cases_32()).chain(&cases_16()) {
        let mut padded = [0xCC; 20];
        padded[..c.bytes.len()].copy_from_slice(c.bytes);
        check(c, &padded);
    }
}

#[test]
fn every_shorter_prefix_of_an_encoding_is_truncated() {
    for c in cases_64().iter().chain(&cases_32()).chain(&cases_16()) {
        for n in 0..c.bytes.len() {
            let got = decode(&c.bytes[..n], c.mode);
            assert_eq!(got, Err(DecodeError::Truncated), "{} cut to {n} bytes", c.asm);
        }
    }
}

#[test]
fn sixteen_byte_instruction_is_too_long() {
    // The 15-byte case above with one more CS override.
    let bytes = [0x2e, 0x2e, 0x2e, 0x64, 0x48, 0xc7, 0x84, 0x24, 0x44, 0x33, 0x22, 0x11, 0x78, 0x56, 0x34, 0x12];
    assert_eq!(decode(&bytes, Bits64), Err(DecodeError::TooLong));
    assert_eq!(decode(&[0x66; 15], Bits64), Err(DecodeError::TooLong));
    assert_eq!(decode(&[0x66; 14], Bits64), Err(DecodeError::Truncated));
}

#[test]
fn lock_on_non_lockable_or_register_form_is_undefined() {
    let undefined: &[(&[u8], &str)] = &[
        (&[0xf0, 0x8b, 0x00], "lock mov (%rax),%eax"),
        (&[0xf0, 0x89, 0x00], "lock mov %eax,(%rax)"),
        (&[0xf0, 0x39, 0x00], "lock cmp %eax,(%rax)"),
        (&[0xf0, 0x85, 0x00], "lock test %eax,(%rax)"),
        (&[0xf0, 0x0f, 0xa3, 0x00], "lock bt %eax,(%rax)"),
        (&[0xf0, 0x01, 0xc0], "lock add %eax,%eax"),
        (&[0xf0, 0xf4], "lock hlt"),
        (&[0xf0, 0x0f, 0x22, 0xd8], "lock mov %rax,%cr3"),
    ];
    for (bytes, asm) in undefined {
        assert_eq!(decode(bytes, Bits64), Err(DecodeError::Undefined), "{asm}");
    }
}

#[test]
fn encodings_removed_from_64_bit_mode_are_undefined() {
    assert_eq!(decode(&[0x82, 0x00, 0x01], Bits64), Err(DecodeError::Undefined));
    assert_eq!(decode(&[0xce], Bits64), Err(DecodeError::Undefined));
    assert_eq!(decode(&[0x0f, 0x01, 0xf8], Bits32), Err(DecodeError::Undefined));
}

#[test]
fn invalid_control_and_debug_registers_are_undefined() {
    // mov %cr1,%rax; mov %rax,%cr5; mov %dr0,%rax with REX.R (DR8).
    assert_eq!(decode(&[0x0f, 0x20, 0xc8], Bits64), Err(DecodeError::Undefined));
    assert_eq!(decode(&[0x0f, 0x22, 0xe8], Bits64), Err(DecodeError::Undefined));
    assert_eq!(decode(&[0x44, 0x0f, 0x21, 0xc0], Bits64), Err(DecodeError::Undefined));
}

#[test]
fn unsupported_reports_the_opcode_bytes() {
    let unsupported: &[(CpuMode, &[u8], &[u8], &str)] = &[
        (Bits64, &[0x89, 0xc3], &[0x89], "mov %eax,%ebx (no memory operand)"),
        (Bits64, &[0x0f, 0x05], &[0x0f, 0x05], "syscall"),
        (Bits64, &[0x66, 0x0f, 0x38, 0x00, 0xc1], &[0x0f, 0x38, 0x00], "pshufb"),
        (Bits64, &[0xc5, 0xf8, 0x77], &[0xc5], "vzeroupper"),
        (Bits32, &[0x40], &[0x40], "inc %eax (REX only in 64-bit mode)"),
        (Bits64, &[0xf3, 0x0f, 0xb8, 0x00], &[0x0f, 0xb8], "popcnt (%rax),%eax"),
        (Bits64, &[0xf3, 0x0f, 0x09], &[0x0f, 0x09], "wbnoinvd"),
        (Bits64, &[0xf2, 0x0f, 0x01, 0xd9], &[0x0f, 0x01, 0xd9], "repnz vmmcall"),
        (Bits64, &[0xf3, 0x0f, 0x01, 0xd8], &[0x0f, 0x01, 0xd8], "repz vmrun"),
        (Bits64, &[0x41, 0x90], &[0x90], "xchg %eax,%r8d"),
        (Bits64, &[0x0f, 0x01, 0xd5], &[0x0f, 0x01, 0xd5], "xend"),
        (Bits64, &[0x0f, 0x01, 0x10], &[0x0f, 0x01], "lgdt (%rax)"),
        (Bits64, &[0xff, 0x00], &[0xff], "incl (%rax)"),
        (Bits64, &[0xc7, 0x08, 0, 0, 0, 0], &[0xc7], "c7 /1 is not MOV"),
    ];
    for (mode, bytes, opcode, asm) in unsupported {
        match decode(bytes, *mode) {
            Err(DecodeError::Unsupported { opcode: got }) => {
                assert_eq!(got.as_slice(), *opcode, "{asm}")
            }
            other => panic!("{asm}: expected Unsupported, got {other:?}"),
        }
    }
}

#[test]
fn cpu_mode_follows_cr0_efer_rflags_and_cs() {
    const PE: u64 = 1;
    const LMA: u64 = 1 << 10;
    const VM: u64 = 1 << 17;
    assert_eq!(CpuMode::from_state(0, 0, 0, false, true), Bits16, "real mode");
    assert_eq!(CpuMode::from_state(PE, 0, VM, false, true), Bits16, "virtual-8086");
    assert_eq!(CpuMode::from_state(PE, 0, 0, false, false), Bits16, "16-bit segment");
    assert_eq!(CpuMode::from_state(PE, 0, 0, false, true), Bits32, "32-bit segment");
    assert_eq!(CpuMode::from_state(PE, LMA, 0, false, true), Bits32, "compatibility");
    assert_eq!(CpuMode::from_state(PE, LMA, 0, true, false), Bits64, "64-bit");
    assert_eq!(CpuMode::from_state(PE, 0, 0, true, true), Bits32, "CS.L without LMA");
}

#[test]
fn rip_relative_offset_counts_from_the_next_instruction() {
    // movl $0x1,0x10(%rip) at 0x1000: 10 bytes long, the immediate included.
    let insn = decode(&[0xc7, 0x05, 0x10, 0, 0, 0, 0x01, 0, 0, 0], Bits64).unwrap();
    let InsnKind::Mem(mi) = insn.kind else { panic!("not a memory instruction: {insn:?}") };
    let next = 0x1000 + u64::from(insn.len);
    assert_eq!(mi.mem.offset(&FakeRegs::new(), next), 0x101A);
}

#[test]
fn effective_address_wraps_at_the_address_size() {
    let mut regs = FakeRegs::new();
    regs.gpr[RBX as usize] = 0xFFFF;
    regs.gpr[RSI as usize] = 0x0002;
    // mov 0x5678(%bx,%di),%cl with BX=0xFFFF, DI=2: wraps to 0x5679.
    regs.gpr[RDI as usize] = 2;
    let insn = decode(&[0x8a, 0x89, 0x78, 0x56], Bits16).unwrap();
    let InsnKind::Mem(mi) = insn.kind else { panic!() };
    assert_eq!(mi.mem.offset(&regs, 0), 0x5679);
    // mov -0x8(%r11,%r12,4),%r10d: a full 64-bit sum.
    regs.gpr[11] = 0x1000;
    regs.gpr[12] = 0x10;
    let insn = decode(&[0x47, 0x89, 0x54, 0xa3, 0xf8], Bits64).unwrap();
    let InsnKind::Mem(mi) = insn.kind else { panic!() };
    assert_eq!(mi.mem.offset(&regs, 0), 0x1000 + 0x40 - 8);
}

#[test]
fn linear_address_ignores_ds_base_but_not_fs_in_64_bit_mode() {
    let base = |s: Segment| match s {
        Segment::Fs => 0x7000_0000_0000,
        _ => 0x1_0000,
    };
    let regs = FakeRegs::new();
    let fs = decode(&[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0], Bits64).unwrap();
    let InsnKind::Mem(fs) = fs.kind else { panic!() };
    assert_eq!(fs.mem.linear(&regs, 0, Bits64, base), 0x7000_0000_0028);
    let ds = decode(&[0x8b, 0x04, 0x25, 0x00, 0x10, 0, 0], Bits64).unwrap();
    let InsnKind::Mem(ds) = ds.kind else { panic!() };
    assert_eq!(ds.mem.linear(&regs, 0, Bits64, base), 0x1000);
    let real = decode(&[0x8b, 0x0e, 0x34, 0x12], Bits16).unwrap();
    let InsnKind::Mem(real) = real.kind else { panic!() };
    assert_eq!(real.mem.linear(&regs, 0, Bits16, base), 0x1_1234);
}

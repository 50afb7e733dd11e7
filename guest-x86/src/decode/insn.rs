//! x86 instruction decoder for the instructions that exit to the VMM.
//!
//! QEMU's SVM has neither NRIPS nor decode assists, so on an exit the VMM
//! only has the guest's RIP. [`decode`] turns the bytes there into an
//! instruction length and a typed [`InsnKind`]:
//!
//! - [`InsnKind::Mem`]: one memory access that [`super::emulate_mmio`] can
//!   replay against a device (MOV, MOVZX/MOVSX, the ALU group, TEST, XCHG
//!   and the BT family);
//! - [`InsnKind::String`]: MOVS/STOS/LODS/INS/OUTS, which the VMM handles
//!   or refuses itself;
//! - [`InsnKind::Io`], [`InsnKind::Svm`] and [`InsnKind::Sys`]: intercepted
//!   instructions, decoded mostly for their length and operands.
//!
//! Anything else is [`DecodeError::Unsupported`]: a short, explicit list is
//! safer than a large table nobody tests. Encodings follow the AMD APM
//! vol. 3 (§1 and appendix A) and the Intel SDM vol. 2 (ch. 2 and
//! appendix A). The decoder reads only the bytes it is given and never
//! panics; every failure is a [`DecodeError`].

use super::emulate::GprAccess;

/// The architectural limit: a longer instruction raises #GP.
pub const MAX_INSN_LEN: usize = 15;

/// The default operand and address size of the code being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMode {
    /// Real mode, virtual-8086 mode, or a 16-bit code segment.
    Bits16,
    /// A 32-bit code segment, in protected or compatibility mode.
    Bits32,
    /// 64-bit mode: EFER.LMA=1 and CS.L=1.
    Bits64,
}

impl CpuMode {
    /// The mode from the guest's saved state: CR0.PE, EFER.LMA, RFLAGS.VM
    /// and the L and D bits of its CS descriptor.
    pub fn from_state(cr0: u64, efer: u64, rflags: u64, cs_l: bool, cs_d: bool) -> CpuMode {
        use crate::regs::{cr0, efer, rflags};
        if efer & efer::LMA != 0 && cs_l {
            CpuMode::Bits64
        } else if cr0 & cr0::PE == 0 || rflags & rflags::VM != 0 || !cs_d {
            CpuMode::Bits16
        } else {
            CpuMode::Bits32
        }
    }
}

/// Width of an effective address; the sum wraps at this width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrSize {
    A16,
    A32,
    A64,
}

impl AddrSize {
    pub fn mask(self) -> u64 {
        match self {
            AddrSize::A16 => 0xFFFF,
            AddrSize::A32 => 0xFFFF_FFFF,
            AddrSize::A64 => u64::MAX,
        }
    }
}

/// A segment register, numbered as in the ModRM `sreg` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Es = 0,
    Cs = 1,
    Ss = 2,
    Ds = 3,
    Fs = 4,
    Gs = 5,
}

/// A general-purpose register operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg {
    /// 0 = RAX … 15 = R15.
    pub num: u8,
    /// Bits 15:8 of register `num` (0–3): AH, CH, DH or BH. Only byte
    /// operands without a REX prefix name these.
    pub high_byte: bool,
}

impl Reg {
    pub const fn gpr(num: u8) -> Reg {
        Reg { num, high_byte: false }
    }
}

/// A memory operand: `seg:[base + index * scale + disp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemOperand {
    /// The segment after overrides. In 64-bit mode only FS and GS have a
    /// base; [`MemOperand::linear`] applies that rule.
    pub seg: Segment,
    pub base: Option<u8>,
    pub index: Option<u8>,
    /// 1, 2, 4 or 8.
    pub scale: u8,
    /// Sign-extended displacement, or the absolute offset of a `moffs` form.
    pub disp: i64,
    /// Relative to the next instruction's RIP (64-bit mode, ModRM mod=00
    /// r/m=101).
    pub rip_relative: bool,
    pub addr_size: AddrSize,
}

impl MemOperand {
    /// The effective address (segment offset). `next_rip` is the RIP after
    /// this instruction (`rip + insn.len`); only RIP-relative forms use it.
    pub fn offset(&self, regs: &impl GprAccess, next_rip: u64) -> u64 {
        let mut ea = self.disp as u64;
        if self.rip_relative {
            ea = ea.wrapping_add(next_rip);
        }
        if let Some(base) = self.base {
            ea = ea.wrapping_add(regs.gpr(base));
        }
        if let Some(index) = self.index {
            ea = ea.wrapping_add(regs.gpr(index).wrapping_mul(u64::from(self.scale)));
        }
        ea & self.addr_size.mask()
    }

    /// The linear address: the segment's base (from `seg_base`) plus
    /// [`offset`](Self::offset). In 64-bit mode ES, CS, SS and DS count as
    /// base 0; outside it the sum wraps at 4 GiB. Limits are not checked.
    pub fn linear(
        &self,
        regs: &impl GprAccess,
        next_rip: u64,
        mode: CpuMode,
        seg_base: impl Fn(Segment) -> u64,
    ) -> u64 {
        let offset = self.offset(regs, next_rip);
        match mode {
            CpuMode::Bits64 => match self.seg {
                Segment::Fs | Segment::Gs => seg_base(self.seg).wrapping_add(offset),
                _ => offset,
            },
            _ => seg_base(self.seg).wrapping_add(offset) & 0xFFFF_FFFF,
        }
    }
}

/// A register or an immediate source operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Src {
    Reg(Reg),
    /// Sign-extended to 64 bits; the emulator truncates it to the operand.
    Imm(u64),
}

/// The eight ALU operations of opcodes 00–3F and group 1 (80–83), in
/// encoding order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AluOp {
    Add,
    Or,
    Adc,
    Sbb,
    And,
    Sub,
    Xor,
    Cmp,
}

impl AluOp {
    fn from_bits(n: u8) -> AluOp {
        match n & 7 {
            0 => AluOp::Add,
            1 => AluOp::Or,
            2 => AluOp::Adc,
            3 => AluOp::Sbb,
            4 => AluOp::And,
            5 => AluOp::Sub,
            6 => AluOp::Xor,
            _ => AluOp::Cmp,
        }
    }
}

/// How a load widens its value into the destination register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extend {
    /// MOV: the destination has the access's size.
    None,
    /// MOVZX.
    Zero,
    /// MOVSX.
    Sign,
}

/// BT, BTS, BTR and BTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    Bt,
    Bts,
    Btr,
    Btc,
}

/// What an instruction with one memory operand does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemOp {
    /// `dst = [mem]`, widened to `dst_size` bytes: MOV 8A/8B/A0/A1,
    /// MOVZX, MOVSX.
    Load { dst: Reg, dst_size: u8, ext: Extend },
    /// `[mem] = src`: MOV 88/89/A2/A3/C6/C7.
    Store { src: Src },
    /// `[mem] = [mem] op src`, setting flags; CMP writes nothing back.
    AluToMem { op: AluOp, src: Src },
    /// `dst = dst op [mem]`, setting flags; CMP writes nothing back.
    AluToReg { op: AluOp, dst: Reg },
    /// Flags from `[mem] & src`.
    Test { src: Src },
    /// Swap `[mem]` and `reg` (always atomic on hardware).
    Xchg { reg: Reg },
    /// Test (and set, reset, complement) a bit of `[mem]`. The bit number
    /// is taken modulo the operand width: for a register `offset` the
    /// CPU has already added the whole-word part to the faulting address.
    Bit { op: BitOp, offset: Src },
}

impl MemOp {
    /// Whether a LOCK prefix is legal (otherwise it raises #UD).
    fn lockable(&self) -> bool {
        match self {
            MemOp::AluToMem { op, .. } => *op != AluOp::Cmp,
            MemOp::Xchg { .. } => true,
            MemOp::Bit { op, .. } => *op != BitOp::Bt,
            _ => false,
        }
    }
}

/// An instruction that makes one data access through a memory operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInsn {
    pub op: MemOp,
    pub mem: MemOperand,
    /// Bytes accessed at `mem`: 1, 2, 4 or 8. Also the width of the ALU
    /// operation and of register sources.
    pub size: u8,
    /// A LOCK prefix was present (only on lockable operations).
    pub lock: bool,
}

/// The string instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringOp {
    /// `ES:[rDI] = seg:[rSI]`.
    Movs,
    /// `ES:[rDI] = rAX`.
    Stos,
    /// `rAX = seg:[rSI]`.
    Lods,
    /// `ES:[rDI] = port DX`.
    Ins,
    /// `port DX = seg:[rSI]`.
    Outs,
}

/// A string instruction, for the VMM to emulate or refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringInsn {
    pub op: StringOp,
    /// Element size in bytes.
    pub size: u8,
    /// An F2 or F3 prefix: repeat rCX times.
    pub rep: bool,
    /// Width of rSI, rDI and rCX.
    pub addr_size: AddrSize,
    /// Segment of the rSI operand (DS unless overridden); rDI always uses ES.
    pub seg: Segment,
}

/// The port of an IN or OUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoPort {
    Imm(u8),
    Dx,
}

/// IN or OUT with the accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoInsn {
    pub port: IoPort,
    /// 1, 2 or 4 bytes.
    pub size: u8,
    /// OUT rather than IN.
    pub out: bool,
}

/// The SVM instructions, 0F 01 D8–DF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvmOp {
    Vmrun,
    Vmmcall,
    Vmload,
    Vmsave,
    Stgi,
    Clgi,
    Skinit,
    Invlpga,
}

/// An SVM instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvmInsn {
    pub op: SvmOp,
    /// Width of rAX as an address (VMRUN, VMLOAD, VMSAVE, INVLPGA).
    pub addr_size: AddrSize,
}

/// A register or memory operand of a system instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegOrMem {
    Reg(u8),
    Mem(MemOperand),
}

/// Other instructions a VMM intercepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysInsn {
    Hlt,
    Nop,
    Pause,
    Cpuid,
    Rdmsr,
    Wrmsr,
    Rdtsc,
    Rdtscp,
    Rdpmc,
    Int3,
    /// INT1 / ICEBP (F1).
    Int1,
    Int {
        vector: u8,
    },
    Into,
    /// IRET with its operand size (2, 4 or 8).
    Iret {
        size: u8,
    },
    Pushf {
        size: u8,
    },
    Popf {
        size: u8,
    },
    Cli,
    Sti,
    Clts,
    Invd,
    Wbinvd,
    Ud2,
    Rsm,
    Monitor,
    Mwait,
    Xgetbv,
    Xsetbv,
    Swapgs,
    /// `MOV CRn, gpr`. LOCK MOV CR0 is AMD's alternate encoding of CR8.
    MovToCr {
        cr: u8,
        gpr: u8,
    },
    MovFromCr {
        cr: u8,
        gpr: u8,
    },
    /// `MOV DRn, gpr`. DR4/DR5 are reported as encoded.
    MovToDr {
        dr: u8,
        gpr: u8,
    },
    MovFromDr {
        dr: u8,
        gpr: u8,
    },
    /// Load the low 4 bits of CR0 from a 16-bit operand.
    Lmsw {
        src: RegOrMem,
    },
    /// Store CR0's low bits; `size` matters only for a register destination.
    Smsw {
        dst: RegOrMem,
        size: u8,
    },
    Invlpg {
        mem: MemOperand,
    },
}

/// What a decoded instruction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsnKind {
    Mem(MemInsn),
    String(StringInsn),
    Io(IoInsn),
    Svm(SvmInsn),
    Sys(SysInsn),
}

/// A decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Bytes, prefixes included: advance RIP by this much. At most 15.
    pub len: u8,
    pub kind: InsnKind,
}

/// Up to three opcode bytes (escapes included; for 0F 01 register forms,
/// the ModRM byte too), for error reports.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Opcode {
    pub bytes: [u8; 3],
    pub len: u8,
}

impl Opcode {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(3)]
    }
}

impl core::fmt::Debug for Opcode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Opcode(")?;
        for (i, b) in self.as_slice().iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{b:02X}")?;
        }
        write!(f, ")")
    }
}

/// Why [`decode`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes ended before the instruction did: fetch more (or, if the
    /// fetch stopped at a fault, deliver that fault).
    Truncated,
    /// The instruction runs past 15 bytes: the guest would take #GP.
    TooLong,
    /// The encoding raises #UD: LOCK on a non-lockable instruction or a
    /// register operand, an invalid control or debug register, an opcode
    /// that 64-bit mode removed.
    Undefined,
    /// Possibly valid, but not an instruction this decoder handles
    /// (including register-only forms of the memory instructions).
    Unsupported { opcode: Opcode },
}

/// Decodes the instruction at the start of `bytes` (at most the first 15
/// are looked at) in `mode`.
pub fn decode(bytes: &[u8], mode: CpuMode) -> Result<Insn, DecodeError> {
    let mut d = Decoder { bytes, pos: 0, mode, p: Prefixes::default(), opcode: Opcode { bytes: [0; 3], len: 0 } };
    let kind = d.insn()?;
    let lock_ok = match &kind {
        InsnKind::Mem(m) => m.op.lockable(),
        InsnKind::Sys(SysInsn::MovToCr { .. } | SysInsn::MovFromCr { .. }) => true,
        _ => false,
    };
    if d.p.lock && !lock_ok {
        return Err(DecodeError::Undefined);
    }
    Ok(Insn {
        // `byte()` never moves past MAX_INSN_LEN.
        len: d.pos as u8,
        kind,
    })
}

/// The legacy and REX prefixes in front of the opcode.
#[derive(Debug, Clone, Copy, Default)]
struct Prefixes {
    /// 66.
    opsize: bool,
    /// 67.
    addrsize: bool,
    /// 2E/36/3E/26/64/65, the last one wins.
    seg: Option<Segment>,
    /// F2 or F3.
    rep: Option<u8>,
    /// F0.
    lock: bool,
    /// The REX byte directly before the opcode, 0 if none.
    rex: u8,
}

impl Prefixes {
    fn rex_w(&self) -> bool {
        self.rex & 8 != 0
    }
    /// REX.R, REX.X and REX.B as the value to OR into a register number.
    fn rex_r(&self) -> u8 {
        (self.rex & 4) << 1
    }
    fn rex_x(&self) -> u8 {
        (self.rex & 2) << 2
    }
    fn rex_b(&self) -> u8 {
        (self.rex & 1) << 3
    }
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    mode: CpuMode,
    p: Prefixes,
    opcode: Opcode,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        if self.pos >= MAX_INSN_LEN {
            return Err(DecodeError::TooLong);
        }
        let b = *self.bytes.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// An `n`-byte little-endian immediate, zero-extended.
    fn imm(&mut self, n: u8) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.byte()?) << (8 * i);
        }
        Ok(v)
    }

    /// An `n`-byte immediate, sign-extended to 64 bits.
    fn imm_sext(&mut self, n: u8) -> Result<u64, DecodeError> {
        let v = self.imm(n)?;
        let shift = 64 - 8 * u32::from(n);
        Ok((((v << shift) as i64) >> shift) as u64)
    }

    /// An `iz` immediate: 2 bytes for 16-bit operands, else 4 bytes,
    /// sign-extended.
    fn imm_z(&mut self, size: u8) -> Result<u64, DecodeError> {
        self.imm_sext(if size == 2 { 2 } else { 4 })
    }

    fn push_opcode(&mut self, b: u8) {
        if let Some(slot) = self.opcode.bytes.get_mut(usize::from(self.opcode.len)) {
            *slot = b;
            self.opcode.len += 1;
        }
    }

    fn unsupported(&self) -> DecodeError {
        DecodeError::Unsupported { opcode: self.opcode }
    }

    /// Operand size in bytes for a full-size (`v`) operand.
    fn opsize(&self) -> u8 {
        if self.p.rex_w() {
            8
        } else {
            self.opsize_no_w()
        }
    }

    /// Operand size of instructions that ignore REX.W (2 or 4).
    fn opsize_no_w(&self) -> u8 {
        match (self.mode, self.p.opsize) {
            (CpuMode::Bits16, false) | (CpuMode::Bits32 | CpuMode::Bits64, true) => 2,
            _ => 4,
        }
    }

    fn size(&self, byte_op: bool) -> u8 {
        if byte_op {
            1
        } else {
            self.opsize()
        }
    }

    fn addr_size(&self) -> AddrSize {
        match (self.mode, self.p.addrsize) {
            (CpuMode::Bits16, false) | (CpuMode::Bits32, true) => AddrSize::A16,
            (CpuMode::Bits16, true) | (CpuMode::Bits32, false) | (CpuMode::Bits64, true) => AddrSize::A32,
            (CpuMode::Bits64, false) => AddrSize::A64,
        }
    }

    /// The register named by a 4-bit number, for an operand of `size`.
    fn reg(&self, num: u8, size: u8) -> Reg {
        if size == 1 && self.p.rex == 0 && (4..8).contains(&num) {
            Reg { num: num - 4, high_byte: true }
        } else {
            Reg { num, high_byte: false }
        }
    }

    /// Reads prefixes up to and including the first opcode byte.
    fn prefixes(&mut self) -> Result<u8, DecodeError> {
        loop {
            let b = self.byte()?;
            let seg = match b {
                0x26 => Some(Segment::Es),
                0x2E => Some(Segment::Cs),
                0x36 => Some(Segment::Ss),
                0x3E => Some(Segment::Ds),
                0x64 => Some(Segment::Fs),
                0x65 => Some(Segment::Gs),
                _ => None,
            };
            match b {
                _ if seg.is_some() => self.p.seg = seg,
                0x66 => self.p.opsize = true,
                0x67 => self.p.addrsize = true,
                0xF0 => self.p.lock = true,
                0xF2 | 0xF3 => self.p.rep = Some(b),
                0x40..=0x4F if self.mode == CpuMode::Bits64 => {
                    self.p.rex = b;
                    continue;
                }
                _ => return Ok(b),
            }
            // A REX prefix counts only directly before the opcode.
            self.p.rex = 0;
        }
    }

    fn insn(&mut self) -> Result<InsnKind, DecodeError> {
        let op = self.prefixes()?;
        self.push_opcode(op);
        if op == 0x0F {
            self.two_byte()
        } else {
            self.one_byte(op)
        }
    }

    fn mem(&self, op: MemOp, mem: MemOperand, size: u8) -> Result<InsnKind, DecodeError> {
        Ok(InsnKind::Mem(MemInsn { op, mem, size, lock: self.p.lock }))
    }

    fn sys(&self, s: SysInsn) -> Result<InsnKind, DecodeError> {
        Ok(InsnKind::Sys(s))
    }

    fn one_byte(&mut self, op: u8) -> Result<InsnKind, DecodeError> {
        let mode64 = self.mode == CpuMode::Bits64;
        match op {
            // ALU Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev.
            0x00..=0x3F if op & 7 < 4 => {
                let m = self.mem_modrm()?;
                let size = self.size(op & 1 == 0);
                let reg = self.reg(m.reg, size);
                let alu = AluOp::from_bits(op >> 3);
                let mop = if op & 2 != 0 {
                    MemOp::AluToReg { op: alu, dst: reg }
                } else {
                    MemOp::AluToMem { op: alu, src: Src::Reg(reg) }
                };
                self.mem(mop, m.mem, size)
            }
            // Group 1: ALU Eb,ib / Ev,iz / Eb,ib (not in 64-bit mode) / Ev,ib.
            0x82 if mode64 => Err(DecodeError::Undefined),
            0x80..=0x83 => {
                let m = self.mem_modrm()?;
                let size = self.size(op & 1 == 0);
                let imm = if op == 0x81 { self.imm_z(size)? } else { self.imm_sext(1)? };
                let mop = MemOp::AluToMem { op: AluOp::from_bits(m.digit), src: Src::Imm(imm) };
                self.mem(mop, m.mem, size)
            }
            // TEST, XCHG and MOV between a register and memory.
            0x84..=0x8B => {
                let m = self.mem_modrm()?;
                let size = self.size(op & 1 == 0);
                let reg = self.reg(m.reg, size);
                let mop = match op {
                    0x84 | 0x85 => MemOp::Test { src: Src::Reg(reg) },
                    0x86 | 0x87 => MemOp::Xchg { reg },
                    0x88 | 0x89 => MemOp::Store { src: Src::Reg(reg) },
                    _ => MemOp::Load { dst: reg, dst_size: size, ext: Extend::None },
                };
                self.mem(mop, m.mem, size)
            }
            // MOV with a direct offset: AL/rAX and moffs.
            0xA0..=0xA3 => {
                let addr_size = self.addr_size();
                let disp = match addr_size {
                    AddrSize::A16 => self.imm(2)?,
                    AddrSize::A32 => self.imm(4)?,
                    AddrSize::A64 => self.imm(8)?,
                };
                let mem = MemOperand {
                    seg: self.p.seg.unwrap_or(Segment::Ds),
                    base: None,
                    index: None,
                    scale: 1,
                    disp: disp as i64,
                    rip_relative: false,
                    addr_size,
                };
                let size = self.size(op & 1 == 0);
                let acc = Reg::gpr(0);
                let mop = if op & 2 == 0 {
                    MemOp::Load { dst: acc, dst_size: size, ext: Extend::None }
                } else {
                    MemOp::Store { src: Src::Reg(acc) }
                };
                self.mem(mop, mem, size)
            }
            // MOV Eb,ib / Ev,iz.
            0xC6 | 0xC7 => {
                let m = self.mem_modrm()?;
                if m.digit != 0 {
                    return Err(self.unsupported());
                }
                let size = self.size(op == 0xC6);
                let imm = if op == 0xC6 { self.imm_sext(1)? } else { self.imm_z(size)? };
                self.mem(MemOp::Store { src: Src::Imm(imm) }, m.mem, size)
            }
            // Group 3 /0: TEST Eb,ib / Ev,iz.
            0xF6 | 0xF7 => {
                let m = self.mem_modrm()?;
                if m.digit != 0 {
                    return Err(self.unsupported());
                }
                let size = self.size(op == 0xF6);
                let imm = if op == 0xF6 { self.imm_sext(1)? } else { self.imm_z(size)? };
                self.mem(MemOp::Test { src: Src::Imm(imm) }, m.mem, size)
            }
            0x6C..=0x6F | 0xA4 | 0xA5 | 0xAA..=0xAD => {
                let op_kind = match op {
                    0x6C | 0x6D => StringOp::Ins,
                    0x6E | 0x6F => StringOp::Outs,
                    0xA4 | 0xA5 => StringOp::Movs,
                    0xAA | 0xAB => StringOp::Stos,
                    _ => StringOp::Lods,
                };
                let size = match (op & 1, op_kind) {
                    (0, _) => 1,
                    (_, StringOp::Ins | StringOp::Outs) => self.opsize_no_w(),
                    _ => self.opsize(),
                };
                Ok(InsnKind::String(StringInsn {
                    op: op_kind,
                    size,
                    rep: self.p.rep.is_some(),
                    addr_size: self.addr_size(),
                    seg: self.p.seg.unwrap_or(Segment::Ds),
                }))
            }
            0xE4..=0xE7 | 0xEC..=0xEF => {
                let port = if op & 8 == 0 { IoPort::Imm(self.byte()?) } else { IoPort::Dx };
                let size = if op & 1 == 0 { 1 } else { self.opsize_no_w() };
                Ok(InsnKind::Io(IoInsn { port, size, out: op & 2 != 0 }))
            }
            // 90 is NOP (F3 90 PAUSE) unless REX.B makes it XCHG R8, rAX.
            0x90 if self.p.rex_b() != 0 => Err(self.unsupported()),
            0x90 if self.p.rep == Some(0xF3) => self.sys(SysInsn::Pause),
            0x90 => self.sys(SysInsn::Nop),
            0x9C | 0x9D => {
                // 64 bits by default in 64-bit mode; REX.W beats 66 there.
                let size = match (self.mode, self.p.opsize) {
                    (CpuMode::Bits64, true) if !self.p.rex_w() => 2,
                    (CpuMode::Bits64, _) => 8,
                    _ => self.opsize_no_w(),
                };
                self.sys(if op == 0x9C { SysInsn::Pushf { size } } else { SysInsn::Popf { size } })
            }
            0xCC => self.sys(SysInsn::Int3),
            0xCD => {
                let vector = self.byte()?;
                self.sys(SysInsn::Int { vector })
            }
            0xCE if mode64 => Err(DecodeError::Undefined),
            0xCE => self.sys(SysInsn::Into),
            0xCF => {
                let size = self.opsize();
                self.sys(SysInsn::Iret { size })
            }
            0xF1 => self.sys(SysInsn::Int1),
            0xF4 => self.sys(SysInsn::Hlt),
            0xFA => self.sys(SysInsn::Cli),
            0xFB => self.sys(SysInsn::Sti),
            _ => Err(self.unsupported()),
        }
    }

    fn two_byte(&mut self) -> Result<InsnKind, DecodeError> {
        let op = self.byte()?;
        self.push_opcode(op);
        if matches!(op, 0x38 | 0x3A) {
            let op3 = self.byte()?;
            self.push_opcode(op3);
            return Err(self.unsupported());
        }
        // F2/F3 select other instructions in much of the 0F map
        // (WBNOINVD, POPCNT, …); none of ours takes them but VMGEXIT's
        // F3 on 0F 01 D9, which group7 checks.
        if self.p.rep.is_some() && op != 0x01 {
            return Err(self.unsupported());
        }
        match op {
            0x01 => self.group7(),
            0x06 => self.sys(SysInsn::Clts),
            0x08 => self.sys(SysInsn::Invd),
            0x09 => self.sys(SysInsn::Wbinvd),
            0x0B => self.sys(SysInsn::Ud2),
            0x20..=0x23 => self.mov_cr_dr(op),
            0x30 => self.sys(SysInsn::Wrmsr),
            0x31 => self.sys(SysInsn::Rdtsc),
            0x32 => self.sys(SysInsn::Rdmsr),
            0x33 => self.sys(SysInsn::Rdpmc),
            0xA2 => self.sys(SysInsn::Cpuid),
            0xAA => self.sys(SysInsn::Rsm),
            // BT/BTS/BTR/BTC Ev,Gv.
            0xA3 | 0xAB | 0xB3 | 0xBB => {
                let m = self.mem_modrm()?;
                let size = self.opsize();
                let bit = match op {
                    0xA3 => BitOp::Bt,
                    0xAB => BitOp::Bts,
                    0xB3 => BitOp::Btr,
                    _ => BitOp::Btc,
                };
                let offset = Src::Reg(self.reg(m.reg, size));
                self.mem(MemOp::Bit { op: bit, offset }, m.mem, size)
            }
            // Group 8: BT/BTS/BTR/BTC Ev,ib.
            0xBA => {
                let m = self.mem_modrm()?;
                let bit = match m.digit {
                    4 => BitOp::Bt,
                    5 => BitOp::Bts,
                    6 => BitOp::Btr,
                    7 => BitOp::Btc,
                    _ => return Err(self.unsupported()),
                };
                let offset = Src::Imm(self.imm(1)?);
                self.mem(MemOp::Bit { op: bit, offset }, m.mem, self.opsize())
            }
            // MOVZX/MOVSX Gv, Eb/Ew.
            0xB6 | 0xB7 | 0xBE | 0xBF => {
                let m = self.mem_modrm()?;
                let dst_size = self.opsize();
                let ext = if op & 8 == 0 { Extend::Zero } else { Extend::Sign };
                let size = if op & 1 == 0 { 1 } else { 2 };
                let mop = MemOp::Load { dst: self.reg(m.reg, dst_size), dst_size, ext };
                self.mem(mop, m.mem, size)
            }
            _ => Err(self.unsupported()),
        }
    }

    /// 0F 01: the SVM instructions and other system instructions.
    fn group7(&mut self) -> Result<InsnKind, DecodeError> {
        let modrm = self.byte()?;
        let digit = (modrm >> 3) & 7;
        if modrm >> 6 != 3 {
            let mem = self.mem_operand(modrm)?;
            return match digit {
                4 => self.sys(SysInsn::Smsw { dst: RegOrMem::Mem(mem), size: 2 }),
                6 => self.sys(SysInsn::Lmsw { src: RegOrMem::Mem(mem) }),
                7 => self.sys(SysInsn::Invlpg { mem }),
                _ => Err(self.unsupported()),
            };
        }
        self.push_opcode(modrm);
        // F3 0F 01 D9 is VMGEXIT, which a guest that is not SEV-ES runs as
        // VMMCALL (QEMU's TCG and Bochs both exit with the VMMCALL code).
        match self.p.rep {
            None => {}
            Some(0xF3) if modrm == 0xD9 => {}
            Some(_) => return Err(self.unsupported()),
        }
        let rm = (modrm & 7) | self.p.rex_b();
        let svm = |op| Ok(InsnKind::Svm(SvmInsn { op, addr_size: self.addr_size() }));
        match modrm {
            0xC8 => self.sys(SysInsn::Monitor),
            0xC9 => self.sys(SysInsn::Mwait),
            0xD0 => self.sys(SysInsn::Xgetbv),
            0xD1 => self.sys(SysInsn::Xsetbv),
            0xD8 => svm(SvmOp::Vmrun),
            0xD9 => svm(SvmOp::Vmmcall),
            0xDA => svm(SvmOp::Vmload),
            0xDB => svm(SvmOp::Vmsave),
            0xDC => svm(SvmOp::Stgi),
            0xDD => svm(SvmOp::Clgi),
            0xDE => svm(SvmOp::Skinit),
            0xDF => svm(SvmOp::Invlpga),
            0xF8 if self.mode == CpuMode::Bits64 => self.sys(SysInsn::Swapgs),
            0xF8 => Err(DecodeError::Undefined),
            0xF9 => self.sys(SysInsn::Rdtscp),
            _ if digit == 4 => self.sys(SysInsn::Smsw { dst: RegOrMem::Reg(rm), size: self.opsize() }),
            _ if digit == 6 => self.sys(SysInsn::Lmsw { src: RegOrMem::Reg(rm) }),
            _ => Err(self.unsupported()),
        }
    }

    /// 0F 20–23: MOV to and from control and debug registers. The ModRM
    /// mod field is ignored: the operand is always a register.
    fn mov_cr_dr(&mut self, op: u8) -> Result<InsnKind, DecodeError> {
        let modrm = self.byte()?;
        let gpr = (modrm & 7) | self.p.rex_b();
        let num = ((modrm >> 3) & 7) | self.p.rex_r();
        if op & 1 == 0 {
            let cr = match (self.p.lock, num) {
                (true, 0) => 8,
                (true, _) => return Err(DecodeError::Undefined),
                (false, n) => n,
            };
            if !matches!(cr, 0 | 2 | 3 | 4 | 8) {
                return Err(DecodeError::Undefined);
            }
            self.sys(if op == 0x20 { SysInsn::MovFromCr { cr, gpr } } else { SysInsn::MovToCr { cr, gpr } })
        } else {
            if num > 7 {
                return Err(DecodeError::Undefined);
            }
            self.sys(if op == 0x21 { SysInsn::MovFromDr { dr: num, gpr } } else { SysInsn::MovToDr { dr: num, gpr } })
        }
    }

    /// A ModRM byte whose r/m must name memory.
    fn mem_modrm(&mut self) -> Result<ModRm, DecodeError> {
        let modrm = self.byte()?;
        if modrm >> 6 == 3 {
            // A register form: valid, but it touches no memory.
            return Err(if self.p.lock { DecodeError::Undefined } else { self.unsupported() });
        }
        let mem = self.mem_operand(modrm)?;
        Ok(ModRm { digit: (modrm >> 3) & 7, reg: ((modrm >> 3) & 7) | self.p.rex_r(), mem })
    }

    /// The memory operand of `modrm` (mod ≠ 3), reading any SIB and
    /// displacement bytes.
    fn mem_operand(&mut self, modrm: u8) -> Result<MemOperand, DecodeError> {
        let md = modrm >> 6;
        let rm = modrm & 7;
        let addr_size = self.addr_size();
        let mut m =
            MemOperand { seg: Segment::Ds, base: None, index: None, scale: 1, disp: 0, rip_relative: false, addr_size };
        if addr_size == AddrSize::A16 {
            // Register numbers: BX=3, BP=5, SI=6, DI=7.
            let (base, index) = match rm {
                0 => (Some(3), Some(6)),
                1 => (Some(3), Some(7)),
                2 => (Some(5), Some(6)),
                3 => (Some(5), Some(7)),
                4 => (None, Some(6)),
                5 => (None, Some(7)),
                6 if md == 0 => (None, None),
                6 => (Some(5), None),
                _ => (Some(3), None),
            };
            // SI and DI alone are index-free bases; keep one shape for all.
            (m.base, m.index) = match (base, index) {
                (None, Some(i)) => (Some(i), None),
                other => other,
            };
            m.disp = match (md, rm) {
                (0, 6) | (2, _) => self.imm_sext(2)?,
                (1, _) => self.imm_sext(1)?,
                _ => 0,
            } as i64;
            if m.base == Some(5) {
                m.seg = Segment::Ss;
            }
        } else {
            let mut no_base = false;
            if rm == 4 {
                let sib = self.byte()?;
                let index = ((sib >> 3) & 7) | self.p.rex_x();
                m.index = (index != 4).then_some(index);
                m.scale = 1 << (sib >> 6);
                if sib & 7 == 5 && md == 0 {
                    no_base = true;
                } else {
                    m.base = Some((sib & 7) | self.p.rex_b());
                }
            } else if rm == 5 && md == 0 {
                no_base = true;
                m.rip_relative = self.mode == CpuMode::Bits64;
            } else {
                m.base = Some(rm | self.p.rex_b());
            }
            m.disp = match md {
                1 => self.imm_sext(1)?,
                2 => self.imm_sext(4)?,
                _ if no_base => self.imm_sext(4)?,
                _ => 0,
            } as i64;
            if matches!(m.base, Some(4 | 5)) {
                m.seg = Segment::Ss;
            }
        }
        if let Some(seg) = self.p.seg {
            m.seg = seg;
        }
        Ok(m)
    }
}

/// A decoded ModRM with a memory r/m.
struct ModRm {
    /// The reg field alone: a group's operation number.
    digit: u8,
    /// The reg field with REX.R: a register number.
    reg: u8,
    mem: MemOperand,
}

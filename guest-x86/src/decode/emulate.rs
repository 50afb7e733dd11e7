//! Replays a decoded memory instruction against an MMIO device.
//!
//! [`emulate_mmio`] does what the CPU would have done, with the device in
//! place of memory: it reads and writes guest registers through
//! [`GprAccess`] and the device through one callback that sees each
//! [`Access`] in program order (a read before the write of a
//! read-modify-write). Register writes follow the architecture: 8- and
//! 16-bit writes keep the other bits, 32-bit writes clear bits 63:32 (as
//! 64-bit mode requires; outside it those bits are undefined, so clearing
//! them is also correct), and AH/CH/DH/BH are bits 15:8. Arithmetic sets
//! CF, PF, AF, ZF, SF and OF as the APM vol. 3 lists for each instruction;
//! the flags it calls undefined are cleared (logic ops' AF) or left alone
//! (BTx's OF/SF/AF/PF).
//!
//! The caller advances RIP by the instruction's length afterwards. A LOCK
//! prefix changes nothing here: the device model sees the accesses one
//! after the other, so atomicity is whatever the VMM's device lock gives.

use super::insn::{AluOp, BitOp, Extend, MemInsn, MemOp, Reg, Src};
use crate::regs::rflags;

/// The guest's general-purpose registers and RFLAGS.
pub trait GprAccess {
    /// Register `n`: 0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP, 5 = RBP,
    /// 6 = RSI, 7 = RDI, 8–15 = R8–R15.
    fn gpr(&self, n: u8) -> u64;
    fn set_gpr(&mut self, n: u8, v: u64);
    fn rflags(&self) -> u64;
    fn set_rflags(&mut self, v: u64);
}

/// One device access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read `size` bytes; the callback returns the value (bits above
    /// `size` are ignored).
    Read { size: u8 },
    /// Write the low `size` bytes of `value`; the callback's return value
    /// is ignored.
    Write { size: u8, value: u64 },
}

/// Performs `insn`, with `mmio` standing in for the memory operand. The
/// access address is the one the exit reported; `mmio` is called with the
/// size and, for writes, the value.
pub fn emulate_mmio(insn: &MemInsn, regs: &mut impl GprAccess, mmio: &mut impl FnMut(Access) -> u64) {
    // The decoder only makes 1, 2, 4 and 8; anything else counts as 8.
    let size = match insn.size {
        1 | 2 | 4 => insn.size,
        _ => 8,
    };
    let mut read = || mmio(Access::Read { size }) & size_mask(size);
    match insn.op {
        MemOp::Load { dst, dst_size, ext } => {
            let v = read();
            let v = match ext {
                Extend::Sign => sign_extend(v, size),
                Extend::None | Extend::Zero => v,
            };
            write_reg(regs, dst, dst_size, v);
        }
        MemOp::Store { src } => {
            let value = src_value(regs, src, size);
            mmio(Access::Write { size, value });
        }
        MemOp::AluToMem { op, src } => {
            let a = read();
            let b = src_value(regs, src, size);
            let (r, flags) = alu(op, size, a, b, regs.rflags() & rflags::CF != 0);
            set_status(regs, rflags::STATUS, flags);
            if op != AluOp::Cmp {
                mmio(Access::Write { size, value: r });
            }
        }
        MemOp::AluToReg { op, dst } => {
            let b = read();
            let a = read_reg(regs, dst, size);
            let (r, flags) = alu(op, size, a, b, regs.rflags() & rflags::CF != 0);
            set_status(regs, rflags::STATUS, flags);
            if op != AluOp::Cmp {
                write_reg(regs, dst, size, r);
            }
        }
        MemOp::Test { src } => {
            let a = read();
            let b = src_value(regs, src, size);
            let (_, flags) = alu(AluOp::And, size, a, b, false);
            set_status(regs, rflags::STATUS, flags);
        }
        MemOp::Xchg { reg } => {
            let old = read();
            let value = read_reg(regs, reg, size);
            mmio(Access::Write { size, value });
            write_reg(regs, reg, size, old);
        }
        MemOp::Bit { op, offset } => {
            let bit = src_value(regs, offset, size) % (u64::from(size) * 8);
            let v = read();
            let cf = if (v >> bit) & 1 != 0 { rflags::CF } else { 0 };
            set_status(regs, rflags::CF, cf);
            let new = match op {
                BitOp::Bt => return,
                BitOp::Bts => v | (1 << bit),
                BitOp::Btr => v & !(1 << bit),
                BitOp::Btc => v ^ (1 << bit),
            };
            mmio(Access::Write { size, value: new });
        }
    }
}

/// The low `size` bytes set, for an operand of 1, 2, 4 or 8 bytes (any
/// other size counts as 8).
pub fn size_mask(size: u8) -> u64 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        4 => 0xFFFF_FFFF,
        _ => u64::MAX,
    }
}

fn sign_extend(v: u64, size: u8) -> u64 {
    let shift = 64 - 8 * u32::from(size.clamp(1, 8));
    (((v << shift) as i64) >> shift) as u64
}

fn src_value(regs: &impl GprAccess, src: Src, size: u8) -> u64 {
    match src {
        Src::Reg(r) => read_reg(regs, r, size),
        Src::Imm(v) => v & size_mask(size),
    }
}

/// Reads `size` bytes of register `r`.
pub fn read_reg(regs: &impl GprAccess, r: Reg, size: u8) -> u64 {
    if r.high_byte {
        (regs.gpr(r.num) >> 8) & 0xFF
    } else {
        regs.gpr(r.num) & size_mask(size)
    }
}

/// Writes `size` bytes of register `r` as an instruction would: a 32-bit
/// write clears bits 63:32, narrower writes keep the other bits.
pub fn write_reg(regs: &mut impl GprAccess, r: Reg, size: u8, v: u64) {
    let old = regs.gpr(r.num);
    let new = if r.high_byte {
        (old & !0xFF00) | ((v & 0xFF) << 8)
    } else {
        match size {
            1 | 2 => (old & !size_mask(size)) | (v & size_mask(size)),
            4 => v & 0xFFFF_FFFF,
            _ => v,
        }
    };
    regs.set_gpr(r.num, new);
}

fn set_status(regs: &mut impl GprAccess, which: u64, flags: u64) {
    let rflags = regs.rflags();
    regs.set_rflags((rflags & !which) | (flags & which));
}

/// `a op b` at `size` bytes, with the status flags it produces.
fn alu(op: AluOp, size: u8, a: u64, b: u64, carry_in: bool) -> (u64, u64) {
    let m = size_mask(size);
    let (a, b) = (a & m, b & m);
    let sign = 1u64 << (u32::from(size) * 8 - 1);
    let c = u128::from(carry_in && matches!(op, AluOp::Adc | AluOp::Sbb));
    let (r, cf, of) = match op {
        AluOp::Add | AluOp::Adc => {
            let wide = u128::from(a) + u128::from(b) + c;
            let r = wide as u64 & m;
            let cf = wide > u128::from(m);
            (r, cf, (a ^ r) & (b ^ r) & sign != 0)
        }
        AluOp::Sub | AluOp::Sbb | AluOp::Cmp => {
            let r = a.wrapping_sub(b).wrapping_sub(c as u64) & m;
            let cf = u128::from(a) < u128::from(b) + c;
            (r, cf, (a ^ b) & (a ^ r) & sign != 0)
        }
        AluOp::And => (a & b, false, false),
        AluOp::Or => (a | b, false, false),
        AluOp::Xor => (a ^ b, false, false),
    };
    let mut flags = 0;
    if cf {
        flags |= rflags::CF;
    }
    if of {
        flags |= rflags::OF;
    }
    if !matches!(op, AluOp::And | AluOp::Or | AluOp::Xor) && (a ^ b ^ r) & 0x10 != 0 {
        flags |= rflags::AF;
    }
    if r == 0 {
        flags |= rflags::ZF;
    }
    if r & sign != 0 {
        flags |= rflags::SF;
    }
    if (r as u8).count_ones().is_multiple_of(2) {
        flags |= rflags::PF;
    }
    (r, flags)
}

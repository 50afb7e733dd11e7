//! The decoder against an encoder: MOV between a register and memory
//! (88, 89, 8A, 8B) with every ModRM and SIB form, displacements, REX,
//! operand- and address-size prefixes and segment overrides is encoded
//! from its fields by the tables of the Intel SDM vol. 2 (tables 2-2 and
//! 2-3, §2.2.1) and must decode back to the same fields and length,
//! whatever bytes follow.
use proptest::prelude::*;

use super::cases;
use crate::decode::insn::{
    decode, AddrSize, CpuMode, Extend, Insn, InsnKind, MemInsn, MemOp, MemOperand, Reg, Segment, Src,
};

#[derive(Debug, Clone)]
struct Mov {
    mode: CpuMode,
    opcode: u8,
    operand_size_prefix: bool,
    /// 64-bit mode only: 0x67 makes addresses 32-bit.
    address_size_prefix: bool,
    seg: Option<(u8, Segment)>,
    rex: Option<u8>,
    modrm: u8,
    sib: u8,
    disp: [u8; 4],
}

fn mov() -> impl Strategy<Value = Mov> {
    let seg = prop::sample::select(vec![
        None,
        Some((0x26, Segment::Es)),
        Some((0x2E, Segment::Cs)),
        Some((0x36, Segment::Ss)),
        Some((0x3E, Segment::Ds)),
        Some((0x64, Segment::Fs)),
        Some((0x65, Segment::Gs)),
    ]);
    (
        any::<bool>(),
        prop::sample::select(vec![0x88u8, 0x89, 0x8A, 0x8B]),
        (any::<bool>(), any::<bool>(), seg),
        prop::option::of(0x40u8..=0x4F),
        // mod 0..=2: a memory operand.
        (0u8..3, 0u8..8, 0u8..8).prop_map(|(md, reg, rm)| md << 6 | reg << 3 | rm),
        any::<u8>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(long, opcode, (p66, p67, seg), rex, modrm, sib, disp)| Mov {
            mode: if long { CpuMode::Bits64 } else { CpuMode::Bits32 },
            opcode,
            operand_size_prefix: p66,
            address_size_prefix: p67 && long,
            seg,
            rex: rex.filter(|_| long),
            modrm,
            sib,
            disp,
        })
}

impl Mov {
    /// The bytes, and what they must decode to.
    fn encode(&self) -> (Vec<u8>, Insn) {
        let rex = self.rex.unwrap_or(0);
        let (w, r, x, b) = (rex & 8 != 0, (rex & 4) << 1, (rex & 2) << 2, (rex & 1) << 3);
        let mut bytes = Vec::new();
        bytes.extend(self.seg.map(|s| s.0));
        bytes.extend(self.operand_size_prefix.then_some(0x66));
        bytes.extend(self.address_size_prefix.then_some(0x67));
        bytes.extend(self.rex);
        bytes.extend([self.opcode, self.modrm]);
        let (md, reg, rm) = (self.modrm >> 6, (self.modrm >> 3) & 7, self.modrm & 7);

        let addr_size = match (self.mode, self.address_size_prefix) {
            (CpuMode::Bits64, false) => AddrSize::A64,
            _ => AddrSize::A32,
        };
        let mut mem =
            MemOperand { seg: Segment::Ds, base: None, index: None, scale: 1, disp: 0, rip_relative: false, addr_size };
        // Table 2-3 and its REX extension: the SIB byte's index 100 is
        // "none" only without REX.X; base 101 with mod 00 is disp32 alone.
        let mut disp32_alone = false;
        if rm == 4 {
            bytes.push(self.sib);
            let (scale, index, base) = (self.sib >> 6, ((self.sib >> 3) & 7) | x, self.sib & 7);
            mem.scale = 1 << scale;
            mem.index = (index != 4).then_some(index);
            if base == 5 && md == 0 {
                disp32_alone = true;
            } else {
                mem.base = Some(base | b);
            }
        } else if rm == 5 && md == 0 {
            // Table 2-2: disp32, which 64-bit mode makes RIP-relative.
            disp32_alone = true;
            mem.rip_relative = self.mode == CpuMode::Bits64;
        } else {
            mem.base = Some(rm | b);
        }
        let disp_len = match md {
            1 => 1,
            2 => 4,
            _ if disp32_alone => 4,
            _ => 0,
        };
        bytes.extend(&self.disp[..disp_len]);
        mem.disp = match disp_len {
            1 => i64::from(self.disp[0] as i8),
            4 => i64::from(i32::from_le_bytes(self.disp)),
            _ => 0,
        };
        // rSP and rBP as a base address the stack (SDM vol. 1 §3.7.4).
        mem.seg = match (self.seg, mem.base) {
            (Some((_, s)), _) => s,
            (None, Some(4 | 5)) => Segment::Ss,
            _ => Segment::Ds,
        };

        let size = match self.opcode {
            0x88 | 0x8A => 1,
            _ if w => 8,
            _ if self.operand_size_prefix => 2,
            _ => 4,
        };
        // Byte registers 4-7 without any REX prefix are AH, CH, DH, BH.
        let reg = match reg | r {
            n @ 4..=7 if size == 1 && self.rex.is_none() => Reg { num: n - 4, high_byte: true },
            n => Reg::gpr(n),
        };
        let op = match self.opcode {
            0x88 | 0x89 => MemOp::Store { src: Src::Reg(reg) },
            _ => MemOp::Load { dst: reg, dst_size: size, ext: Extend::None },
        };
        let kind = InsnKind::Mem(MemInsn { op, mem, size, lock: false });
        (bytes.clone(), Insn { len: bytes.len() as u8, kind })
    }
}

proptest! {
    #![proptest_config(cases(2_000))]

    #[test]
    fn mov_decodes_to_the_fields_it_was_encoded_from(m in mov(), tail in prop::collection::vec(any::<u8>(), 0..8)) {
        let (mut bytes, expected) = m.encode();
        bytes.extend(tail);
        prop_assert_eq!(decode(&bytes, m.mode), Ok(expected), "bytes {:02x?}", bytes);
    }
}

//! The fast path's answer to a load from an MMIO register the VMM declared
//! constant (`Vm::declare_constant_mmio`): on the nested-page-fault exit
//! the kernel puts the declared value into the load's register and
//! completes the instruction, without returning to the VMM. The rule
//! (docs/exit-path.md, "Which exits the kernel answers"): only a read of a
//! non-present page at its final translation, with no event in delivery
//! (`VmExit::Npf`, not `NpfInDelivery`), not single-stepping, by an
//! instruction that decodes to a plain MOV or MOVZX into a 32- or 64-bit
//! general register from exactly the faulting address and a declared
//! size. Everything else goes to the VMM.
//!
//! Finding the instruction costs no page walk and no decode in the steady
//! state: its bytes come through the fast path's remembered translation of
//! the code page ([`fast::code_bytes`]), and the last decode is kept per
//! vCPU with the bytes and mode it came from ([`LoadMemo`]), so a loop that
//! reads the register again finds it there.
use super::fast::{self, CodeCache};
use crate::vm::{NextRipSource, Reg, SegReg, Vcpu, Vm};
use guest_x86::decode::insn::{Extend, MemInsn, MemOp, Segment};
use guest_x86::decode::{decode, emulate_mmio, CpuMode, GprAccess, InsnKind, MAX_INSN_LEN};
use guest_x86::regs::rflags;
use vmcb::{NestedPageFault, NpfErrorCode};

/// The last instruction the fast path decoded for a load, with exactly
/// what it was decoded from: decoding is a function of the bytes and the
/// mode alone, so the same bytes in the same mode decode the same.
#[derive(Debug, Clone, Copy)]
pub struct LoadMemo {
    mode: CpuMode,
    /// The 16 bytes at RIP (zero after the fetched ones), compared as one
    /// number: equal bytes decode the same, whatever the length.
    bytes: u128,
    insn: MemInsn,
    len: u8,
}

/// Bytes fetched at RIP: up to [`MAX_INSN_LEN`] that may be an instruction,
/// and one more when the page has it.
const FETCH: usize = 16;

/// The guest's general registers and RFLAGS in its vCPU, for the emulator.
struct VcpuGprs<'a>(&'a mut Vcpu);

impl GprAccess for VcpuGprs<'_> {
    fn gpr(&self, n: u8) -> u64 {
        Reg::gpr(n).map_or(0, |r| self.0.reg(r))
    }
    fn set_gpr(&mut self, n: u8, v: u64) {
        if let Some(r) = Reg::gpr(n) {
            self.0.set_reg(r, v);
        }
    }
    fn rflags(&self) -> u64 {
        self.0.reg(Reg::Rflags)
    }
    fn set_rflags(&mut self, v: u64) {
        self.0.set_reg(Reg::Rflags, v);
    }
}

fn seg_reg(s: Segment) -> SegReg {
    match s {
        Segment::Es => SegReg::Es,
        Segment::Cs => SegReg::Cs,
        Segment::Ss => SegReg::Ss,
        Segment::Ds => SegReg::Ds,
        Segment::Fs => SegReg::Fs,
        Segment::Gs => SegReg::Gs,
    }
}

/// The fault is a data read of a page the nested page table does not map,
/// at the final translation (not a guest page-table access).
fn is_plain_read(npf: &NestedPageFault) -> bool {
    let reject = NpfErrorCode::PRESENT | NpfErrorCode::WRITE | NpfErrorCode::RESERVED_BIT | NpfErrorCode::EXECUTE;
    !npf.error.intersects(reject) && npf.error.contains(NpfErrorCode::FINAL_TRANSLATION)
}

/// A plain load into a whole 32- or 64-bit register: MOV of the
/// register's size, or MOVZX. (A byte or word destination merges, a MOVSX
/// sign-extends: the VMM does those.)
fn is_plain_load(m: &MemInsn) -> bool {
    match m.op {
        MemOp::Load { dst, dst_size, ext } => {
            !m.lock
                && !dst.high_byte
                && matches!(dst_size, 4 | 8)
                && (ext == Extend::Zero || (ext == Extend::None && dst_size == m.size))
        }
        _ => false,
    }
}

/// The RIP after an instruction of `len` bytes at `rip`, as code of `mode`
/// wraps it.
fn rip_after(rip: u64, mode: CpuMode, len: u8) -> u64 {
    let next = rip.wrapping_add(u64::from(len));
    match mode {
        CpuMode::Bits64 => next,
        CpuMode::Bits32 => next & 0xFFFF_FFFF,
        CpuMode::Bits16 => next & 0xFFFF,
    }
}

/// The load at the guest's RIP (from `memo` when its bytes are the ones
/// there now) and its length; `None` for anything but a plain load.
fn load_at_rip(
    v: &Vcpu,
    vm: &Vm,
    cache: &mut CodeCache,
    memo: &mut Option<LoadMemo>,
    mode: CpuMode,
) -> Option<(MemInsn, u8)> {
    let (bytes, fetched) = match fast::code_bytes::<FETCH>(v, cache, vm) {
        Some((bytes, _)) => (bytes, MAX_INSN_LEN),
        // Near the end of the code page: the whole fetch, with its walks.
        None => {
            let code = fast::code_at_rip(v, vm)?;
            let mut bytes = [0; FETCH];
            bytes[..MAX_INSN_LEN].copy_from_slice(&code.bytes);
            (bytes, usize::from(code.len).min(MAX_INSN_LEN))
        }
    };
    let key = u128::from_le_bytes(bytes);
    if let Some(m) = memo.filter(|m| m.bytes == key && m.mode == mode) {
        return Some((m.insn, m.len));
    }
    let insn = decode(&bytes[..fetched], mode).ok()?;
    let InsnKind::Mem(m) = insn.kind else {
        return None;
    };
    if !is_plain_load(&m) {
        return None;
    }
    *memo = Some(LoadMemo { mode, bytes: key, insn: m, len: insn.len });
    Some((m, insn.len))
}

/// Answers a nested page fault that is a plain load of a declared constant
/// MMIO register: true if it did (the register holds the value and the
/// instruction is complete), false to send the exit to the VMM.
pub fn read(v: &mut Vcpu, vm: &Vm, cache: &mut CodeCache, memo: &mut Option<LoadMemo>, npf: &NestedPageFault) -> bool {
    // The fault's own bits first: a write (the commonest other MMIO exit)
    // goes to the VMM after one test.
    if !is_plain_read(npf) {
        return false;
    }
    let declared = vm.constant_mmio();
    if !declared.covers(npf.gpa) || v.reg(Reg::Rflags) & rflags::TF != 0 {
        return false;
    }
    let cs = v.seg(SegReg::Cs).attributes();
    let mode = CpuMode::from_state(v.reg(Reg::Cr0), v.reg(Reg::Efer), v.reg(Reg::Rflags), cs.long(), cs.default_big());
    let Some((m, len)) = load_at_rip(v, vm, cache, memo, mode) else {
        return false;
    };
    let Some(value) = declared.answer(npf.gpa, m.size) else {
        return false;
    };
    let rip = v.reg(Reg::Rip);
    let next = rip_after(rip, mode, len);
    // The access is exactly `size` bytes at the faulting address: it has
    // the address's offset in its page and stays in that page (linear and
    // guest-physical addresses share the offset in the page).
    let mut regs = VcpuGprs(v);
    let linear = m.mem.linear(&regs, next, mode, |s| regs.0.seg(seg_reg(s)).base);
    let page = crate::arch::phys::PAGE;
    if linear % page != npf.gpa % page || linear % page + u64::from(m.size) > page {
        return false;
    }
    emulate_mmio(&m, &mut regs, &mut |_| value);
    // NPF is not an instruction intercept: the CPU saves no next RIP for
    // it (docs/exit-path.md), so the decoded length moves RIP.
    v.complete_instruction(next, NextRipSource::Decoded);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem_insn(bytes: &[u8]) -> MemInsn {
        match decode(bytes, CpuMode::Bits64).map(|i| i.kind) {
            Ok(InsnKind::Mem(m)) => m,
            other => panic!("{bytes:02x?}: expected a memory instruction, seen {other:?}"),
        }
    }

    #[test]
    fn only_whole_register_movs_and_movzx_are_plain_loads() {
        let plain = [
            (&[0x8B, 0x04, 0x25, 0x00, 0xF0, 0xBF, 0xFE][..], "mov eax, [abs]"),
            (&[0x48, 0x8B, 0x07][..], "mov rax, [rdi]"),
            (&[0x0F, 0xB6, 0x07][..], "movzx eax, byte [rdi]"),
            (&[0x48, 0x0F, 0xB7, 0x07][..], "movzx rax, word [rdi]"),
        ];
        for (bytes, what) in plain {
            assert!(is_plain_load(&mem_insn(bytes)), "{what}: expected a plain load, seen not");
        }
        let others = [
            (&[0x8A, 0x07][..], "mov al, [rdi] (merges)"),
            (&[0x66, 0x8B, 0x07][..], "mov ax, [rdi] (merges)"),
            (&[0x0F, 0xBE, 0x07][..], "movsx eax, byte [rdi]"),
            (&[0x89, 0x07][..], "mov [rdi], eax"),
            (&[0x03, 0x07][..], "add eax, [rdi]"),
            (&[0x87, 0x07][..], "xchg [rdi], eax"),
        ];
        for (bytes, what) in others {
            assert!(!is_plain_load(&mem_insn(bytes)), "{what}: expected no plain load, seen one");
        }
    }

    #[test]
    fn only_a_final_not_present_data_read_is_a_plain_read() {
        let fault = |bits: u64| NestedPageFault::from_exitinfo(bits, 0xFEBF_F000);
        let (user, fin) = (NpfErrorCode::USER.bits(), NpfErrorCode::FINAL_TRANSLATION.bits());
        assert!(is_plain_read(&fault(user | fin)), "a read of a missing page");
        let not = [
            (NpfErrorCode::WRITE.bits(), "a write"),
            (NpfErrorCode::EXECUTE.bits(), "a fetch"),
            (NpfErrorCode::PRESENT.bits(), "a protection fault"),
            (NpfErrorCode::RESERVED_BIT.bits(), "a reserved bit"),
        ];
        for (bit, what) in not {
            assert!(!is_plain_read(&fault(user | fin | bit)), "{what}: expected no plain read, seen one");
        }
        assert!(!is_plain_read(&fault(user)), "a guest page-table access (not the final translation)");
    }
}

//! The fast path: exits the kernel answers itself, inside `sys_run`,
//! because they need no device model. CPUID (from the VM's CPU model),
//! the PING hypercall and declared constant port reads (loads of declared
//! constant MMIO registers are `super::constant_mmio`, which reads the
//! code at RIP through this module's [`CodeCache`]).
//!
//! The intercepted instruction's length comes from NRIPS where the CPU has
//! it. Without NRIPS (QEMU's TCG) the fast path checks that the canonical
//! encoding (`0F A2`, `0F 01 D9`) is at RIP and takes its length; anything
//! else (a prefix, a page it cannot read) goes to the VMM, which decodes the
//! instruction fully. To find RIP's bytes it walks the guest's page tables
//! once per code page and remembers the translation for (CR3, page); a
//! remembered translation is used only when the bytes it leads to are the
//! expected instruction, so a stale entry can at worst send the exit to
//! the VMM's slow path. The walk obeys the VM's [`WalkLimits`] (the
//! physical-address width and 1 GiB pages its CPUID states), as the VMM's
//! walks do. The bytes are read in place from the RAM chunk the last lookup
//! found ([`VmSpace::read_array`]).
//!
//! [`WalkLimits`]: guest_x86::decode::WalkLimits
//! [`VmSpace::read_array`]: crate::arch::vmspace::VmSpace::read_array
use crate::arch::phys::PAGE;
use crate::arch::svm::InPlaceInsn;
use crate::arch::vmspace::ChunkHint;
use crate::vm::cpuid::{CpuModel, CpuidResult};
use crate::vm::{NextRipSource, Reg, SegReg, Vcpu, Vm};
use guest_x86::decode::{fetch, translate, AccessKind, CpuMode, MAX_INSN_LEN};
use guest_x86::regs::{cr0, efer};
use sysabi::CodeAtRip;
use vmcb::{IoDirection, IoioInfo};

const CPUID: [u8; 2] = [0x0F, 0xA2];
const VMMCALL: [u8; 3] = [0x0F, 0x01, 0xD9];
const PING: u64 = hvabi::nr::PING;

/// What the fast path remembers of the guest's code between exits.
#[derive(Debug, Clone, Copy, Default)]
pub struct CodeCache {
    /// The last translation of a code page.
    page: Option<CodePage>,
    /// The RAM chunk that held the last instruction read.
    chunk: ChunkHint,
}

/// A remembered translation of the guest's code page.
#[derive(Debug, Clone, Copy)]
struct CodePage {
    cr3: u64,
    linear: u64,
    gpa: u64,
}

fn is_64bit(v: &Vcpu) -> bool {
    v.reg(Reg::Efer) & efer::LMA != 0 && v.seg(SegReg::Cs).attributes().long()
}

/// The RIP after the intercepted instruction, if it is `insn`, and where
/// that came from. Without NRIPS, in 64-bit mode, the world switch is told
/// where the bytes were, so that it answers the next exit at this RIP
/// itself (`InPlace`); bytes that are not `insn` make it forget.
fn next_rip<const N: usize>(
    v: &mut Vcpu,
    cache: &mut CodeCache,
    vm: &Vm,
    nrips: bool,
    insn: &[u8; N],
    which: InPlaceInsn,
) -> Option<(u64, NextRipSource)> {
    if nrips {
        return Some((v.next_rip_raw(), NextRipSource::Nrips));
    }
    let (rip, long) = (v.reg(Reg::Rip), is_64bit(v));
    let Some((bytes, at)) = code_bytes::<N>(v, cache, vm) else {
        v.forget_in_place_site(which);
        return None;
    };
    // Byte by byte: two or three compares, where a slice compare calls memcmp.
    if bytes.iter().zip(insn).any(|(seen, want)| seen != want) {
        cache.forget_page();
        v.forget_in_place_site(which);
        return None;
    }
    if long {
        v.remember_in_place_site(which, rip, at);
    }
    let next = rip.wrapping_add(N as u64);
    Some((if long { next } else { next & 0xFFFF_FFFF }, NextRipSource::Decoded))
}

/// The `N` bytes at the guest's RIP and the host address they were read
/// at, if they lie in one page of RAM: through the remembered translation
/// of RIP's page (walking the guest's page tables when it is not the one
/// remembered). The caller checks what the bytes are; bytes that are not
/// what it expects should drop the translation ([`CodeCache::forget_page`]).
pub(super) fn code_bytes<const N: usize>(v: &Vcpu, cache: &mut CodeCache, vm: &Vm) -> Option<([u8; N], u64)> {
    let rip = v.reg(Reg::Rip);
    let linear = if is_64bit(v) { rip } else { v.seg(SegReg::Cs).base.wrapping_add(rip) & 0xFFFF_FFFF };
    let offset = linear % PAGE;
    if offset + N as u64 > PAGE {
        return None;
    }
    let page = linear - offset;
    let cr0 = v.reg(Reg::Cr0);
    let cr3 = v.reg(Reg::Cr3);
    let gpa_page = if cr0 & cr0::PG == 0 {
        page
    } else {
        match cache.page {
            Some(c) if c.cr3 == cr3 && c.linear == page => c.gpa,
            _ => {
                let paging = vm.walk_limits.paging(cr0, cr3, v.reg(Reg::Cr4), v.reg(Reg::Efer));
                let user = v.reg(Reg::Cpl) == 3;
                let gpa = translate(vm.ram(), &paging, page, AccessKind::fetch(user)).ok()?;
                cache.page = Some(CodePage { cr3, linear: page, gpa });
                gpa
            }
        }
    };
    vm.ram().read_array::<N>(gpa_page + offset, &mut cache.chunk)
}

impl CodeCache {
    /// Drops the remembered translation of the code page.
    pub(super) fn forget_page(&mut self) {
        self.page = None;
    }
}

/// The host CPU's CPUID.
pub fn host_cpuid(leaf: u32, sub: u32) -> CpuidResult {
    let [eax, ebx, ecx, edx] = crate::arch::cpu::cpuid(leaf, sub);
    CpuidResult { eax, ebx, ecx, edx }
}

/// The CPU model of a new VM on this host.
pub fn cpu_model() -> CpuModel {
    CpuModel::new(&host_cpuid, crate::arch::xsave::host_xcr0(), super::HYPERCALL_VERSION)
}

/// What CPUID(`leaf`, `sub`) returns to vCPU `index` of a VM of model `m`.
pub fn guest_cpuid(m: &CpuModel, v: &Vcpu, index: u16, leaf: u32, sub: u32) -> CpuidResult {
    m.answer(leaf, sub, &v.cpuid_view(u32::from(index)))
}

/// CPUID, answered from the VM's model. An answer that depends on the
/// leaf and subleaf alone is handed to the world switch, which gives it
/// again itself while the guest asks for the same leaf (`InPlace`).
pub fn cpuid(v: &mut Vcpu, vm: &Vm, cache: &mut CodeCache, nrips: bool, index: u16) -> bool {
    let Some((next, from)) = next_rip(v, cache, vm, nrips, &CPUID, InPlaceInsn::Cpuid) else {
        return false;
    };
    let (leaf, sub) = (v.reg(Reg::Rax) as u32, v.reg(Reg::Rcx) as u32);
    let r = guest_cpuid(&vm.cpuid, v, index, leaf, sub);
    if !CpuModel::depends_on_state(leaf, sub) {
        v.remember_in_place_cpuid(leaf, sub, [r.eax, r.ebx, r.ecx, r.edx]);
    }
    v.set_reg(Reg::Rax, u64::from(r.eax));
    v.set_reg(Reg::Rbx, u64::from(r.ebx));
    v.set_reg(Reg::Rcx, u64::from(r.ecx));
    v.set_reg(Reg::Rdx, u64::from(r.edx));
    v.complete_instruction(next, from);
    true
}

/// The PING hypercall: RAX = 0, nothing else changes.
pub fn ping(v: &mut Vcpu, vm: &Vm, cache: &mut CodeCache, nrips: bool) -> bool {
    let nr = if is_64bit(v) { v.reg(Reg::Rax) } else { v.reg(Reg::Rax) & 0xFFFF_FFFF };
    if nr != PING {
        return false;
    }
    let Some((next, from)) = next_rip(v, cache, vm, nrips, &VMMCALL, InPlaceInsn::Ping) else {
        return false;
    };
    v.set_reg(Reg::Rax, 0);
    v.complete_instruction(next, from);
    true
}

/// An IN from a port the VMM declared constant (`Vm::declare_constant_port`),
/// where the world switch left it to us (outside 64-bit mode, or
/// single-stepping): the declared value goes into RAX and the instruction
/// completes at EXITINFO2's next RIP.
pub fn constant_port_read(v: &mut Vcpu, vm: &Vm, io: &IoioInfo, next_rip: u64) -> bool {
    if io.direction != IoDirection::In || io.string {
        return false;
    }
    let size = io.size.bytes();
    let Some(value) = vm.constant_port(io.port, size) else {
        return false;
    };
    let Some(rax) = sysabi::rax_after_in(v.reg(Reg::Rax), size, value) else {
        return false;
    };
    v.set_reg(Reg::Rax, rax);
    v.complete_instruction(next_rip, NextRipSource::IoExitInfo);
    true
}

/// The instruction bytes at the guest's RIP, for the VMM's decoder: fetched
/// as the CPU fetches code, with the VM's walk limits, reading the guest's
/// page tables in place rather than through one call per read.
pub fn code_at_rip(v: &Vcpu, vm: &Vm) -> Option<CodeAtRip> {
    let (cr0, efer, rip) = (v.reg(Reg::Cr0), v.reg(Reg::Efer), v.reg(Reg::Rip));
    let cs = v.seg(SegReg::Cs);
    let a = cs.attributes();
    let mode = CpuMode::from_state(cr0, efer, v.reg(Reg::Rflags), a.long(), a.default_big());
    let paging = vm.walk_limits.paging(cr0, v.reg(Reg::Cr3), v.reg(Reg::Cr4), efer);
    let mut bytes = [0; MAX_INSN_LEN];
    let fetched = fetch(vm.ram(), &paging, mode, cs.base, rip, v.reg(Reg::Cpl) == 3, &mut bytes).ok()?;
    let bits = match mode {
        CpuMode::Bits16 => 16,
        CpuMode::Bits32 => 32,
        CpuMode::Bits64 => 64,
    };
    Some(CodeAtRip { rip, bits, len: fetched.len as u8, bytes })
}

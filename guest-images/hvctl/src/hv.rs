//! The instructions that talk to the hypervisor: CPUID, VMMCALL, port I/O,
//! MMIO reads and the RDTSC-timed round trips of `hvctl bench`.
//!
//! All inline assembly of the tool lives here. VMMCALL is only ever issued
//! through [`Hypervisor`], which exists only after the CPUID signature check
//! passed: on another hypervisor (or none) VMMCALL may raise #UD.

use crate::abi;
use core::arch::asm;

/// CPUID with a subleaf; returns EAX, EBX, ECX, EDX.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: CPUID is available on every x86-64 CPU, reads no memory and writes only the named registers. RBX cannot
    // be an asm operand (LLVM reserves it), so it is saved in a scratch register and swapped back.
    unsafe {
        asm!(
            "mov {save:r}, rbx",
            "cpuid",
            "xchg {save:r}, rbx",
            save = out(reg) b,
            inout("eax") leaf => a,
            inout("ecx") subleaf => c,
            out("edx") d,
            options(nostack, nomem, preserves_flags),
        );
    }
    [a, b, c, d]
}

/// What CPUID says about the hypervisor we run under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// CPUID.1:ECX bit 31 is clear: no hypervisor (or one that hides).
    NoHypervisor,
    /// Some other hypervisor, with its 12-byte signature.
    Other(String),
    /// Certivisor: the highest hypervisor leaf and the ABI version from
    /// leaf 0x4000_0001.
    Certivisor { max_leaf: u32, abi_version: u32 },
}

/// Reads the hypervisor CPUID leaves.
pub fn presence() -> Presence {
    if cpuid(1, 0)[2] & (1 << 31) == 0 {
        return Presence::NoHypervisor;
    }
    let [max_leaf, b, c, d] = cpuid(abi::LEAF_SIGNATURE, 0);
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&b.to_le_bytes());
    sig[4..8].copy_from_slice(&c.to_le_bytes());
    sig[8..12].copy_from_slice(&d.to_le_bytes());
    if &sig != abi::SIGNATURE {
        let shown: String = sig.iter().map(|&c| if c.is_ascii_graphic() { c as char } else { '.' }).collect();
        return Presence::Other(shown);
    }
    let abi_version = if max_leaf >= abi::LEAF_ABI { cpuid(abi::LEAF_ABI, 0)[0] } else { 0 };
    Presence::Certivisor { max_leaf, abi_version }
}

/// Proof that CPUID showed the Certivisor signature, so VMMCALL is safe.
#[derive(Debug, Clone, Copy)]
pub struct Hypervisor {
    /// The ABI version from CPUID 0x4000_0001.
    pub cpuid_abi_version: u32,
}

impl Hypervisor {
    /// Some(..) only under Certivisor.
    pub fn detect() -> Result<Hypervisor, Presence> {
        match presence() {
            Presence::Certivisor { abi_version, .. } => Ok(Hypervisor { cpuid_abi_version: abi_version }),
            other => Err(other),
        }
    }

    /// VMMCALL with RAX = `nr` and the arguments in RBX, RCX, RDX, RSI;
    /// returns RAX as a signed result (negative errno on error).
    pub fn call(&self, nr: u64, args: [u64; 4]) -> i64 {
        let ret: u64;
        // RBX is reserved by LLVM, so the first argument travels in a scratch register and is swapped into RBX
        // around the call (and the caller's RBX back). The ABI preserves every register but RAX; RCX, RDX and RSI
        // are still declared clobbered so that a hypervisor bug cannot corrupt this program. A buffer the call reads
        // or writes is memory of this program whose address is an argument; the asm may touch it (no `nomem`).
        // SAFETY: `self` proves CPUID showed the Certivisor signature, whose ABI defines VMMCALL; the hypervisor
        // reaches a buffer only with this process's own rights.
        unsafe {
            asm!(
                "xchg {a0}, rbx",
                "vmmcall",
                "xchg {a0}, rbx",
                a0 = inout(reg) args[0] => _,
                inout("rax") nr => ret,
                inout("rcx") args[1] => _,
                inout("rdx") args[2] => _,
                inout("rsi") args[3] => _,
                options(nostack),
            );
        }
        ret as i64
    }

    pub fn call0(&self, nr: u64) -> i64 {
        self.call(nr, [0; 4])
    }
}

/// Reads a byte from an I/O port. The caller must have I/O permission for
/// the port (ioperm), or the kernel sends SIGSEGV.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: a port read touches no memory of this program; without
    // permission it faults (#GP → SIGSEGV), which is not undefined behaviour.
    unsafe { asm!("in al, dx", out("al") v, in("dx") port, options(nostack, nomem, preserves_flags)) };
    v
}

/// A 32-bit load with exactly one `mov` (what the hypervisor's MMIO
/// emulator decodes).
///
/// # Safety
/// `p` must be valid for a 4-byte read.
pub unsafe fn mmio_read32(p: *const u32) -> u32 {
    let v: u32;
    // SAFETY: the caller guarantees `p` is readable.
    unsafe {
        asm!("mov {v:e}, dword ptr [{p}]", p = in(reg) p, v = out(reg) v, options(nostack, readonly, preserves_flags))
    };
    v
}

// ---------------------------------------------------------------------------
// Timed round trips.
//
// Every measurement is one asm block of the same shape:
//
//     lfence; rdtsc; lfence      start stamp: earlier work is done, later
//     shl rdx,32; or rax,rdx     work has not begun
//     mov t0, rax
//     <the operation>
//     lfence; rdtsc              end stamp: the operation has completed
//     shl rdx,32; or rax,rdx
//
// so the numbers include the same fixed overhead, which the `rdtsc` kind
// (an empty operation) measures. RDTSCP is not used: the qemu64 CPU model
// does not have it.
// ---------------------------------------------------------------------------

/// One VMMCALL PING round trip, in TSC cycles.
pub fn time_vmmcall_ping(_hv: &Hypervisor) -> u64 {
    let (t0, t1): (u64, u64);
    // SAFETY: `_hv` proves VMMCALL is defined. PING reads only RAX and returns in RAX; RBX is saved and restored
    // outside the timed window in case a broken hypervisor changes it.
    unsafe {
        asm!(
            "mov {save}, rbx",
            "lfence", "rdtsc", "lfence",
            "shl rdx, 32", "or rax, rdx", "mov {t0}, rax",
            "mov eax, {ping}",
            "vmmcall",
            "lfence", "rdtsc",
            "shl rdx, 32", "or rax, rdx",
            "mov rbx, {save}",
            ping = const abi::nr::PING,
            save = out(reg) _,
            t0 = out(reg) t0,
            out("rax") t1, out("rdx") _, out("rcx") _, out("rsi") _,
            options(nostack),
        );
    }
    t1.wrapping_sub(t0)
}

/// One CPUID leaf 0x4000_0000 round trip (always intercepted).
pub fn time_cpuid() -> u64 {
    let (t0, t1): (u64, u64);
    // SAFETY: CPUID writes only EAX..EDX; RBX is saved and restored.
    unsafe {
        asm!(
            "mov {save}, rbx",
            "lfence", "rdtsc", "lfence",
            "shl rdx, 32", "or rax, rdx", "mov {t0}, rax",
            "mov eax, {leaf}", "xor ecx, ecx",
            "cpuid",
            "lfence", "rdtsc",
            "shl rdx, 32", "or rax, rdx",
            "mov rbx, {save}",
            leaf = const abi::LEAF_SIGNATURE,
            save = out(reg) _,
            t0 = out(reg) t0,
            out("rax") t1, out("rdx") _, out("rcx") _,
            options(nostack, nomem),
        );
    }
    t1.wrapping_sub(t0)
}

/// One `in al, 0xE9` round trip. Needs ioperm for port 0xE9.
pub fn time_io_e9() -> u64 {
    let (t0, t1): (u64, u64);
    // SAFETY: a port read changes only AL; without permission it faults
    // with SIGSEGV, not undefined behaviour.
    unsafe {
        asm!(
            "lfence", "rdtsc", "lfence",
            "shl rdx, 32", "or rax, rdx", "mov {t0}, rax",
            "in al, 0xE9",
            "lfence", "rdtsc",
            "shl rdx, 32", "or rax, rdx",
            t0 = out(reg) t0,
            out("rax") t1, out("rdx") _,
            options(nostack, nomem),
        );
    }
    t1.wrapping_sub(t0)
}

/// One `out 0x80, al` round trip. Needs ioperm for port 0x80.
pub fn time_out_post() -> u64 {
    let (t0, t1): (u64, u64);
    // SAFETY: a port write changes no register; without permission it
    // faults with SIGSEGV, not undefined behaviour.
    unsafe {
        asm!(
            "lfence", "rdtsc", "lfence",
            "shl rdx, 32", "or rax, rdx", "mov {t0}, rax",
            "out 0x80, al",
            "lfence", "rdtsc",
            "shl rdx, 32", "or rax, rdx",
            t0 = out(reg) t0,
            out("rax") t1, out("rdx") _,
            options(nostack, nomem),
        );
    }
    t1.wrapping_sub(t0)
}

/// What `time_mmio_write32` writes.
pub const MMIO_WRITE_VALUE: u32 = 0x5CA7_C11E;

/// One 32-bit MMIO write round trip, of [`MMIO_WRITE_VALUE`].
///
/// # Safety
/// `p` must be valid for a 4-byte write.
pub unsafe fn time_mmio_write32(p: *mut u32) -> u64 {
    let (t0, t1): (u64, u64);
    // SAFETY: the caller guarantees `p` is writable.
    unsafe {
        asm!(
            "lfence", "rdtsc", "lfence",
            "shl rdx, 32", "or rax, rdx", "mov {t0}, rax",
            "mov dword ptr [{p}], {v:e}",
            "lfence", "rdtsc",
            "shl rdx, 32", "or rax, rdx",
            p = in(reg) p,
            v = in(reg) MMIO_WRITE_VALUE,
            t0 = out(reg) t0,
            out("rax") t1, out("rdx") _,
            options(nostack),
        );
    }
    t1.wrapping_sub(t0)
}

/// One 32-bit MMIO read round trip.
///
/// # Safety
/// `p` must be valid for a 4-byte read.
pub unsafe fn time_mmio_read32(p: *const u32) -> u64 {
    let (t0, t1): (u64, u64);
    // SAFETY: the caller guarantees `p` is readable.
    unsafe {
        asm!(
            "lfence", "rdtsc", "lfence",
            "shl rdx, 32", "or rax, rdx", "mov {t0}, rax",
            "mov {v:e}, dword ptr [{p}]",
            "lfence", "rdtsc",
            "shl rdx, 32", "or rax, rdx",
            p = in(reg) p,
            v = out(reg) _,
            t0 = out(reg) t0,
            out("rax") t1, out("rdx") _,
            options(nostack, readonly),
        );
    }
    t1.wrapping_sub(t0)
}

/// Two timestamps with nothing between them: the overhead every other
/// measurement includes.
pub fn time_rdtsc_pair() -> u64 {
    let (t0, t1): (u64, u64);
    // SAFETY: RDTSC writes only EDX:EAX (user-mode RDTSC is enabled on
    // Linux unless a seccomp/prctl policy turned it off, which faults).
    unsafe {
        asm!(
            "lfence", "rdtsc", "lfence",
            "shl rdx, 32", "or rax, rdx", "mov {t0}, rax",
            "lfence", "rdtsc",
            "shl rdx, 32", "or rax, rdx",
            t0 = out(reg) t0,
            out("rax") t1, out("rdx") _,
            options(nostack, nomem),
        );
    }
    t1.wrapping_sub(t0)
}

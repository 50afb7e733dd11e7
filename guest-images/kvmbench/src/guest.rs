//! The guest kvmbench runs: a few hundred bytes of 64-bit code at CPL 0
//! with identity-mapped memory, that times the same round trips as
//! `hvctl bench` with the same instruction sequence (guest-images/hvctl/src/hv.rs):
//!
//! ```text
//! lfence; rdtsc; lfence; shl rdx,32; or rax,rdx; mov r8,rax     start stamp
//! <the operation>
//! lfence; rdtsc; shl rdx,32; or rax,rdx                         end stamp
//! ```
//!
//! and stores each difference in its memory. Each kind has two entries: a
//! probe that does the operation once (kvmbench checks the registers it
//! leaves), and the timed loop. Both end with `out 0xF0, al`, which KVM
//! returns to userspace as KVM_EXIT_IO: nothing in the kernel claims port
//! 0xF0.
//!
//! At entry: RDI = the sample buffer, RSI = the number of samples (> 0),
//! RBX = the MMIO address of the MMIO kinds, R9 = 0 (what `mov cr8` writes),
//! interrupts off.

use crate::kinds::KvmKind;
use crate::kvm_abi::{Segment, Sregs};
use benchkit::Kind;

/// The port the guest writes when it is done.
pub const DONE_PORT: u16 = 0xF0;

// The code is data here: kvmbench copies the bytes between the two global
// labels into guest memory. It only jumps within itself, so it runs at any
// address. The table at the start holds, per kind in `KvmKind::ALL` order,
// the offsets of its probe and of its loop.
core::arch::global_asm!(
    ".pushsection .rodata.kvmbench_guest, \"a\"",
    ".balign 16",
    ".globl kvmbench_guest_start",
    ".hidden kvmbench_guest_start",
    "kvmbench_guest_start:",
    ".long kvmbench_vmmcall_probe - kvmbench_guest_start, kvmbench_vmmcall_loop - kvmbench_guest_start",
    ".long kvmbench_cpuid_probe - kvmbench_guest_start, kvmbench_cpuid_loop - kvmbench_guest_start",
    ".long kvmbench_io_kernel_probe - kvmbench_guest_start, kvmbench_io_kernel_loop - kvmbench_guest_start",
    ".long kvmbench_io_user_probe - kvmbench_guest_start, kvmbench_io_user_loop - kvmbench_guest_start",
    ".long kvmbench_mmio_kernel_probe - kvmbench_guest_start, kvmbench_mmio_kernel_loop - kvmbench_guest_start",
    ".long kvmbench_mmio_user_probe - kvmbench_guest_start, kvmbench_mmio_user_loop - kvmbench_guest_start",
    ".long kvmbench_mov_cr8_probe - kvmbench_guest_start, kvmbench_mov_cr8_loop - kvmbench_guest_start",
    ".long kvmbench_rdtsc_probe - kvmbench_guest_start, kvmbench_rdtsc_loop - kvmbench_guest_start",
    // Start stamp (label 2 is the loop head).
    ".macro KVMBENCH_START",
    "2:",
    "lfence",
    "rdtsc",
    "lfence",
    "shl rdx, 32",
    "or rax, rdx",
    "mov r8, rax",
    ".endm",
    // End stamp, store the sample, next round, and done.
    ".macro KVMBENCH_END",
    "lfence",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "sub rax, r8",
    "mov qword ptr [rdi], rax",
    "add rdi, 8",
    "dec rsi",
    "jnz 2b",
    "KVMBENCH_DONE",
    ".endm",
    ".macro KVMBENCH_DONE",
    "3:",
    "out 0xF0, al",
    "jmp 3b",
    ".endm",
    // VMMCALL with RAX = 1: KVM_HC_VAPIC_POLL_IRQ, which KVM answers in the
    // kernel with 0 (like Certivisor's PING = 1 on its fast path).
    "kvmbench_vmmcall_probe:",
    "mov eax, 1",
    "vmmcall",
    "KVMBENCH_DONE",
    "kvmbench_vmmcall_loop:",
    "KVMBENCH_START",
    "mov eax, 1",
    "vmmcall",
    "KVMBENCH_END",
    // CPUID 0x4000_0000: KVM's signature leaf.
    "kvmbench_cpuid_probe:",
    "mov eax, 0x40000000",
    "xor ecx, ecx",
    "cpuid",
    "KVMBENCH_DONE",
    "kvmbench_cpuid_loop:",
    "KVMBENCH_START",
    "mov eax, 0x40000000",
    "xor ecx, ecx",
    "cpuid",
    "KVMBENCH_END",
    // The master PIC's interrupt mask (port 0x21): KVM's in-kernel PIC.
    "kvmbench_io_kernel_probe:",
    "in al, 0x21",
    "KVMBENCH_DONE",
    "kvmbench_io_kernel_loop:",
    "KVMBENCH_START",
    "in al, 0x21",
    "KVMBENCH_END",
    // Port 0xE9, which nothing in the kernel claims: KVM_EXIT_IO.
    "kvmbench_io_user_probe:",
    "in al, 0xE9",
    "KVMBENCH_DONE",
    "kvmbench_io_user_loop:",
    "KVMBENCH_START",
    "in al, 0xE9",
    "KVMBENCH_END",
    // The IOAPIC's data window at RBX = 0xFEC0_0010, after selecting the
    // version register (IOREGSEL = 1, 16 bytes below): KVM's in-kernel IOAPIC.
    "kvmbench_mmio_kernel_probe:",
    "mov dword ptr [rbx - 16], 1",
    "mov ecx, dword ptr [rbx]",
    "KVMBENCH_DONE",
    "kvmbench_mmio_kernel_loop:",
    "mov dword ptr [rbx - 16], 1",
    "KVMBENCH_START",
    "mov ecx, dword ptr [rbx]",
    "KVMBENCH_END",
    // An address with no memory and no in-kernel device: KVM_EXIT_MMIO.
    "kvmbench_mmio_user_probe:",
    "mov ecx, dword ptr [rbx]",
    "KVMBENCH_DONE",
    "kvmbench_mmio_user_loop:",
    "KVMBENCH_START",
    "mov ecx, dword ptr [rbx]",
    "KVMBENCH_END",
    // The task priority: KVM lets the CPU take it in V_TPR unless an
    // interrupt is pending.
    "kvmbench_mov_cr8_probe:",
    "mov cr8, r9",
    "KVMBENCH_DONE",
    "kvmbench_mov_cr8_loop:",
    "KVMBENCH_START",
    "mov cr8, r9",
    "KVMBENCH_END",
    // Nothing: the timing sequence's own cost.
    "kvmbench_rdtsc_probe:",
    "KVMBENCH_DONE",
    "kvmbench_rdtsc_loop:",
    "KVMBENCH_START",
    "KVMBENCH_END",
    ".globl kvmbench_guest_end",
    ".hidden kvmbench_guest_end",
    "kvmbench_guest_end:",
    ".popsection",
);

extern "C" {
    static kvmbench_guest_start: u8;
    static kvmbench_guest_end: u8;
}

/// The guest code's bytes.
pub fn code() -> &'static [u8] {
    let start = &raw const kvmbench_guest_start;
    let end = &raw const kvmbench_guest_end;
    // Both labels are in the one read-only section the global_asm above emits.
    // SAFETY: start precedes end; the bytes between are initialised static data.
    unsafe { std::slice::from_raw_parts(start, end.offset_from(start) as usize) }
}

/// Where a kind's probe and loop start, as offsets into [`code`].
pub fn entries(kind: KvmKind) -> (u64, u64) {
    let i = KvmKind::ALL.iter().position(|&k| k == kind).expect("every kind is in ALL");
    let word = |j: usize| {
        let b = &code()[j * 4..j * 4 + 4];
        u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    (word(2 * i), word(2 * i + 1))
}

// ---------------------------------------------------------------------------
// Guest-physical memory layout (identity-mapped).
// ---------------------------------------------------------------------------

pub const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
/// 2 MiB pages for guest memory, from 0.
const PD_LOW: u64 = 0x3000;
/// 2 MiB pages, uncached, for the fourth GiB: the IOAPIC and the userspace
/// MMIO address.
const PD_TOP: u64 = 0x4000;
pub const CODE: u64 = 0x1_0000;
pub const SAMPLES: u64 = 0x10_0000;

const LARGE_PAGE: u64 = 2 << 20;
const TOP_GIB: u64 = 3 << 30;
const P: u64 = 1;
const RW: u64 = 1 << 1;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const PS: u64 = 1 << 7;

/// Guest memory for the code and `samples` samples: whole 2 MiB pages, at
/// most 1 GiB (one page directory).
pub fn memory_size(samples: usize) -> Option<usize> {
    let bytes = SAMPLES.checked_add((samples as u64).checked_mul(8)?)?;
    let size = bytes.div_ceil(LARGE_PAGE) * LARGE_PAGE;
    (size <= 1 << 30).then_some(size as usize)
}

/// The page tables as (guest-physical address, entry) pairs: memory
/// identity-mapped from 0 for `mem_size` bytes, and the fourth GiB
/// identity-mapped uncached.
pub fn page_table_entries(mem_size: usize) -> Vec<(u64, u64)> {
    let mut e = vec![(PML4, PDPT | P | RW), (PDPT, PD_LOW | P | RW), (PDPT + 3 * 8, PD_TOP | P | RW)];
    for i in 0..(mem_size as u64).div_ceil(LARGE_PAGE) {
        e.push((PD_LOW + i * 8, (i * LARGE_PAGE) | P | RW | PS));
    }
    for i in 0..512 {
        e.push((PD_TOP + i * 8, (TOP_GIB + i * LARGE_PAGE) | P | RW | PS | PCD | PWT));
    }
    e
}

/// 64-bit mode at CPL 0 with paging from [`PML4`] (flat segments; no GDT
/// or IDT in memory: the guest loads no segment and takes no interrupt).
pub fn long_mode(mut s: Sregs) -> Sregs {
    let data = Segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector: 0x10,
        type_: 3, // read/write, accessed
        present: 1,
        s: 1,
        db: 1,
        g: 1,
        ..Segment::default()
    };
    s.cs = Segment { selector: 0x8, type_: 11, db: 0, l: 1, ..data }; // execute/read, accessed, 64-bit
    (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data);
    s.cr3 = PML4;
    s.cr4 = 1 << 5; // PAE
    s.cr0 = (1 << 31) | (1 << 16) | (1 << 5) | (1 << 4) | (1 << 1) | 1; // PG WP NE ET MP PE
    s.efer = (1 << 10) | (1 << 8); // LMA LME
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Walks the tables like the CPU (4-level, 2 MiB pages only).
    fn translate(tables: &HashMap<u64, u64>, va: u64) -> Option<u64> {
        let mut table = PML4;
        for level in [39, 30, 21] {
            let e = *tables.get(&(table + ((va >> level) & 511) * 8))?;
            if e & P == 0 {
                return None;
            }
            if level == 21 {
                assert_ne!(e & PS, 0, "the PD entries map 2 MiB pages");
                return Some((e & !0x1F_FFFF & ((1 << 52) - 1)) | (va & 0x1F_FFFF));
            }
            table = e & !0xFFF;
        }
        None
    }

    #[test]
    fn every_kind_has_probe_and_loop_entries_inside_the_code() {
        let len = code().len() as u64;
        let table_end = KvmKind::ALL.len() as u64 * 8;
        for &k in KvmKind::ALL {
            let (probe, lp) = entries(k);
            assert!(
                table_end <= probe && probe < lp && lp < len,
                "{}: probe {probe:#x} loop {lp:#x} code {len:#x}",
                k.name()
            );
        }
    }

    #[test]
    fn loops_use_the_timing_sequence_of_hvctl() {
        // lfence; rdtsc; lfence; shl rdx,32; or rax,rdx; mov r8,rax
        let start = [
            0x0F, 0xAE, 0xE8, 0x0F, 0x31, 0x0F, 0xAE, 0xE8, 0x48, 0xC1, 0xE2, 0x20, 0x48, 0x09, 0xD0, 0x49, 0x89, 0xC0,
        ];
        let (_, lp) = entries(KvmKind::Rdtsc);
        let c = &code()[lp as usize..];
        assert_eq!(c[..start.len()], start, "start stamp");
        // lfence; rdtsc; shl rdx,32; or rax,rdx right after it: nothing timed.
        assert_eq!(
            c[start.len()..start.len() + 12],
            [0x0F, 0xAE, 0xE8, 0x0F, 0x31, 0x48, 0xC1, 0xE2, 0x20, 0x48, 0x09, 0xD0]
        );
        // VMMCALL is 0F 01 D9, right after mov eax,1 (B8 01 00 00 00).
        let (_, lp) = entries(KvmKind::Vmmcall);
        assert_eq!(code()[lp as usize + start.len()..][..8], [0xB8, 1, 0, 0, 0, 0x0F, 0x01, 0xD9]);
    }

    #[test]
    fn page_tables_map_memory_and_the_device_pages_identically() {
        let mem = memory_size(10_200).unwrap();
        assert_eq!(mem, 2 << 20);
        let t: HashMap<u64, u64> = page_table_entries(mem).into_iter().collect();
        for va in [CODE, SAMPLES, SAMPLES + 10_200 * 8, mem as u64 - 1, 0xFEC0_0010, 0xFEBF_F000] {
            assert_eq!(translate(&t, va), Some(va), "{va:#x}");
        }
        assert_eq!(translate(&t, mem as u64), None, "nothing beyond guest memory");
        assert_eq!(translate(&t, 1 << 30), None, "the second GiB is not mapped");
        let top = t[&(PD_TOP + 511 * 8)];
        assert_eq!(top & (PCD | PWT), PCD | PWT, "device pages are uncached");
        assert!(t.keys().all(|&a| a < CODE), "the tables stay below the code");
    }

    #[test]
    fn memory_size_is_whole_large_pages_up_to_a_gib() {
        assert_eq!(memory_size(0), Some(2 << 20));
        assert_eq!(memory_size(((2 << 20) - SAMPLES as usize) / 8 + 1), Some(4 << 20));
        assert_eq!(memory_size(200_000_000), None);
    }

    #[test]
    fn long_mode_has_a_64_bit_code_segment_and_paging() {
        let s = long_mode(Sregs::default());
        assert_eq!((s.cs.l, s.cs.db, s.cs.type_, s.cs.present, s.cs.s), (1, 0, 11, 1, 1));
        assert_eq!(s.efer & 0x500, 0x500);
        assert_eq!(s.cr0 & 0x8000_0001, 0x8000_0001);
        assert_eq!(s.cr4 & 0x20, 0x20);
        assert_eq!(s.cr3, PML4);
    }
}

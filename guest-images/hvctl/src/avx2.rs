//! `hvctl avx2`: checks that the guest can use AVX2 and that the hypervisor
//! keeps the guest's YMM registers across exits (its XSAVE world switch).
//!
//! 1. AVX2 is usable when CPUID shows AVX (leaf 1 ECX bit 28) and AVX2
//!    (leaf 7 EBX bit 5), the OS enabled XSAVE (OSXSAVE, leaf 1 ECX bit 27)
//!    and XCR0 (XGETBV) enables SSE and AVX state. Otherwise the command
//!    says which of these is missing and exits with status 3.
//! 2. A dot product computed with AVX2 instructions must equal the scalar
//!    one.
//! 3. Each round loads YMM0-15 with known values, causes three exits the
//!    hypervisor handles in different places (VMMCALL PING and CPUID in the
//!    kernel's fast path, a port read of 0xE9 in the VMM, whose Rust code
//!    uses the XMM registers), and stores YMM0-15 again: every register must
//!    come back unchanged, upper halves included.

use crate::hv::{self, Hypervisor};
use core::arch::asm;
use core::arch::x86_64::*;

/// Why AVX2 cannot be used here, if it cannot.
pub fn unusable_because(max_leaf: u32, leaf1_ecx: u32, leaf7_ebx: u32, xcr0: Option<u64>) -> Option<String> {
    const OSXSAVE: u32 = 1 << 27;
    const AVX: u32 = 1 << 28;
    const AVX2: u32 = 1 << 5;
    const SSE_AND_AVX_STATE: u64 = 0b110;
    if leaf1_ecx & AVX == 0 {
        return Some("CPUID.1:ECX.AVX[bit 28] is clear".into());
    }
    if max_leaf < 7 || leaf7_ebx & AVX2 == 0 {
        return Some("CPUID.7.0:EBX.AVX2[bit 5] is clear".into());
    }
    if leaf1_ecx & OSXSAVE == 0 {
        return Some("CPUID.1:ECX.OSXSAVE[bit 27] is clear (the OS did not enable XSAVE)".into());
    }
    match xcr0 {
        Some(x) if x & SSE_AND_AVX_STATE == SSE_AND_AVX_STATE => None,
        Some(x) => Some(format!("XCR0 is {x:#x}: SSE and AVX state (bits 1 and 2) are not both enabled")),
        None => Some("XCR0 could not be read".into()),
    }
}

/// XCR0, read with XGETBV. Only call when CPUID shows OSXSAVE.
fn xgetbv0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: with CR4.OSXSAVE set (CPUID.1:ECX.OSXSAVE), XGETBV with ECX=0
    // reads XCR0 and writes only EDX:EAX.
    unsafe { asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The scalar dot product the AVX2 one must equal.
pub fn dot_scalar(a: &[i32], b: &[i32]) -> i64 {
    a.iter().zip(b).map(|(&x, &y)| i64::from(x) * i64::from(y)).sum()
}

/// Dot product with AVX2: 8 lanes of 32 x 32 -> 64-bit products
/// (`vpmuldq` on the even lanes, then on the odd ones shifted down).
///
/// # Safety
/// The CPU and OS must support AVX2 (see [`unusable_because`]).
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[i32], b: &[i32]) -> i64 {
    let n = a.len().min(b.len()) / 8 * 8;
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i < n {
        // SAFETY: i + 8 <= n <= len of both slices; loadu allows any alignment.
        let (x, y) = unsafe {
            (
                _mm256_loadu_si256(a.as_ptr().add(i) as *const __m256i),
                _mm256_loadu_si256(b.as_ptr().add(i) as *const __m256i),
            )
        };
        let even = _mm256_mul_epi32(x, y);
        let odd = _mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(y, 32));
        acc = _mm256_add_epi64(acc, _mm256_add_epi64(even, odd));
        i += 8;
    }
    let mut lanes = [0i64; 4];
    // SAFETY: `lanes` is 32 bytes; storeu allows any alignment.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc) };
    lanes.iter().sum::<i64>() + dot_scalar(&a[n..], &b[n..])
}

/// 16 YMM registers of 32 bytes.
type YmmFile = [[u64; 4]; 16];

/// The values of round `round`: distinct in every register and every
/// 64-bit lane, and different from one round to the next.
pub fn pattern(round: u64) -> YmmFile {
    let mut f = [[0u64; 4]; 16];
    for (r, reg) in f.iter_mut().enumerate() {
        for (l, lane) in reg.iter_mut().enumerate() {
            let x = (round << 8) | ((r as u64) << 4) | l as u64;
            *lane = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_0000_5A5A_0000;
        }
    }
    f
}

/// Loads YMM0-15 from `input`, issues VMMCALL PING, CPUID and `in al, 0xE9`
/// (three exits), and stores YMM0-15 into `output`.
///
/// # Safety
/// AVX must be usable (`_hv` proves VMMCALL is defined), and this process
/// must have I/O permission for port 0xE9.
#[target_feature(enable = "avx2")]
unsafe fn exits_with_ymm_loaded(_hv: &Hypervisor, input: &YmmFile, output: &mut YmmFile) {
    // SAFETY: the caller guarantees the preconditions; the block reads
    // `input`, writes `output`, and declares every register it changes.
    unsafe {
        asm!(
            "vmovdqu ymm0, [{i} + 0*32]",
            "vmovdqu ymm1, [{i} + 1*32]",
            "vmovdqu ymm2, [{i} + 2*32]",
            "vmovdqu ymm3, [{i} + 3*32]",
            "vmovdqu ymm4, [{i} + 4*32]",
            "vmovdqu ymm5, [{i} + 5*32]",
            "vmovdqu ymm6, [{i} + 6*32]",
            "vmovdqu ymm7, [{i} + 7*32]",
            "vmovdqu ymm8, [{i} + 8*32]",
            "vmovdqu ymm9, [{i} + 9*32]",
            "vmovdqu ymm10, [{i} + 10*32]",
            "vmovdqu ymm11, [{i} + 11*32]",
            "vmovdqu ymm12, [{i} + 12*32]",
            "vmovdqu ymm13, [{i} + 13*32]",
            "vmovdqu ymm14, [{i} + 14*32]",
            "vmovdqu ymm15, [{i} + 15*32]",
            "mov {save}, rbx",
            "mov eax, {ping}",
            "vmmcall",
            "mov eax, {leaf}",
            "xor ecx, ecx",
            "cpuid",
            "in al, 0xE9",
            "mov rbx, {save}",
            "vmovdqu [{o} + 0*32], ymm0",
            "vmovdqu [{o} + 1*32], ymm1",
            "vmovdqu [{o} + 2*32], ymm2",
            "vmovdqu [{o} + 3*32], ymm3",
            "vmovdqu [{o} + 4*32], ymm4",
            "vmovdqu [{o} + 5*32], ymm5",
            "vmovdqu [{o} + 6*32], ymm6",
            "vmovdqu [{o} + 7*32], ymm7",
            "vmovdqu [{o} + 8*32], ymm8",
            "vmovdqu [{o} + 9*32], ymm9",
            "vmovdqu [{o} + 10*32], ymm10",
            "vmovdqu [{o} + 11*32], ymm11",
            "vmovdqu [{o} + 12*32], ymm12",
            "vmovdqu [{o} + 13*32], ymm13",
            "vmovdqu [{o} + 14*32], ymm14",
            "vmovdqu [{o} + 15*32], ymm15",
            i = in(reg) input.as_ptr(),
            o = in(reg) output.as_mut_ptr(),
            save = out(reg) _,
            ping = const crate::abi::nr::PING,
            leaf = const crate::abi::LEAF_SIGNATURE,
            out("rax") _, out("rcx") _, out("rdx") _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack),
        );
    }
}

/// The first register that differs: (register, expected, seen).
pub fn first_difference(want: &YmmFile, seen: &YmmFile) -> Option<(usize, [u64; 4], [u64; 4])> {
    want.iter().zip(seen).enumerate().find(|(_, (w, s))| w != s).map(|(r, (w, s))| (r, *w, *s))
}

fn hex256(v: [u64; 4]) -> String {
    format!("{:016x}_{:016x}_{:016x}_{:016x}", v[3], v[2], v[1], v[0])
}

/// Runs the checks; Ok(status) or a failure message.
pub fn run(hv: &Hypervisor, rounds: usize) -> Result<i32, String> {
    let [max_leaf, ..] = hv::cpuid(0, 0);
    let leaf1_ecx = hv::cpuid(1, 0)[2];
    let leaf7_ebx = if max_leaf >= 7 { hv::cpuid(7, 0)[1] } else { 0 };
    let xcr0 = (leaf1_ecx & (1 << 27) != 0).then(xgetbv0);
    if let Some(why) = unusable_because(max_leaf, leaf1_ecx, leaf7_ebx, xcr0) {
        println!("avx2: absent: {why}");
        return Ok(crate::EXIT_ABSENT);
    }
    println!("avx2: usable (XCR0 {:#x})", xcr0.unwrap_or(0));

    let a: Vec<i32> = (0..1003).map(|i| (i * 7919 % 20011) - 10000).collect();
    let b: Vec<i32> = (0..1003).map(|i| (i * 104_729 % 30011) - 15000).collect();
    // SAFETY: unusable_because() found AVX2 usable.
    let (vector, scalar) = (unsafe { dot_avx2(&a, &b) }, dot_scalar(&a, &b));
    if vector != scalar {
        return Err(format!("avx2: dot product {vector} with AVX2, {scalar} without"));
    }
    println!("avx2: dot product of {} elements: {vector}, as computed without AVX2", a.len());

    crate::phys::allow_port(0xE9).map_err(|e| format!("avx2: {e}"))?;
    for round in 0..rounds as u64 {
        let want = pattern(round);
        let mut seen = [[0u64; 4]; 16];
        // SAFETY: AVX is usable (checked above), `hv` proves VMMCALL is
        // defined, and allow_port gave us port 0xE9.
        unsafe { exits_with_ymm_loaded(hv, &want, &mut seen) };
        if let Some((r, w, s)) = first_difference(&want, &seen) {
            return Err(format!(
                "avx2: YMM{r} changed across VMMCALL, CPUID and port I/O exits in round {round}: expected {}, saw {}",
                hex256(w),
                hex256(s)
            ));
        }
    }
    println!("avx2: YMM0-15 kept across {rounds} rounds of VMMCALL, CPUID and port I/O exits");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVX: u32 = 1 << 28;
    const OSXSAVE: u32 = 1 << 27;

    #[test]
    fn avx2_needs_cpuid_osxsave_and_xcr0() {
        assert_eq!(unusable_because(0xD, AVX | OSXSAVE, 1 << 5, Some(7)), None);
        assert!(unusable_because(0xD, OSXSAVE, 1 << 5, Some(7)).unwrap().contains("AVX[bit 28]"));
        assert!(unusable_because(0xD, AVX | OSXSAVE, 0, Some(7)).unwrap().contains("AVX2"));
        assert!(unusable_because(6, AVX | OSXSAVE, 1 << 5, Some(7)).unwrap().contains("AVX2"));
        assert!(unusable_because(0xD, AVX, 1 << 5, None).unwrap().contains("OSXSAVE"));
        assert!(unusable_because(0xD, AVX | OSXSAVE, 1 << 5, Some(3)).unwrap().contains("XCR0 is 0x3"));
    }

    #[test]
    fn patterns_differ_by_register_lane_and_round() {
        let p = pattern(0);
        let mut all: Vec<u64> = p.iter().flatten().copied().collect();
        all.extend(pattern(1).iter().flatten());
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "every lane of two rounds is distinct");
    }

    #[test]
    fn first_difference_names_the_register() {
        let want = pattern(3);
        let mut seen = want;
        assert_eq!(first_difference(&want, &seen), None);
        seen[9][3] ^= 1;
        assert_eq!(first_difference(&want, &seen), Some((9, want[9], seen[9])));
    }

    #[test]
    fn avx2_dot_product_matches_scalar_where_the_host_has_avx2() {
        let a: Vec<i32> = (0..37).map(|i| i * 1000 - 20000).collect();
        let b: Vec<i32> = (0..37).map(|i| 31 - i * 3).collect();
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: checked just above.
            assert_eq!(unsafe { dot_avx2(&a, &b) }, dot_scalar(&a, &b));
        }
        assert_eq!(dot_scalar(&[1, 2, 3], &[4, 5, 6]), 32);
    }
}

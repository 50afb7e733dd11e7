//! Extended processor state (XSAVE): which state components the host
//! enables in XCR0 and switches for its guests, and the save area.
//!
//! `boot.S` turns on CR4.OSXSAVE with XCR0 = x87|SSE when CPUID.1:ECX.XSAVE
//! is set; [`init`] then widens XCR0 to every component a guest may use
//! ([`switched_components`]): x87, SSE, AVX and, when the CPU has all three
//! of them, AVX-512's opmask, ZMM_Hi256 and Hi16_ZMM. The host's own code
//! needs only x87|SSE; the wider XCR0 lets the world switch skip XSETBV
//! whenever the guest enabled the same components (what Linux does). The
//! area holds them in the standard (non-compacted) format, whose offsets the
//! CPU reports in CPUID leaf 0xD (Intel SDM vol. 1, §13.4; AMD APM vol. 2,
//! §11.5).
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use guest_x86::regs::xcr0::{AVX, AVX512, SSE, X87};

/// Every component the world switch knows how to switch.
pub const SWITCHABLE: u64 = X87 | SSE | AVX | AVX512;

/// The legacy FXSAVE region plus the 64-byte XSAVE header.
pub const LEGACY_AND_HEADER: u32 = 512 + 64;
/// Bytes reserved per vCPU for its extended state: enough for x87, SSE,
/// AVX and AVX-512 at the offsets every AMD and Intel CPU with AVX-512
/// reports (Hi16_ZMM ends at 2688). A CPU whose layout does not fit loses
/// the components that do not fit ([`switched_components`]).
pub const AREA_CAPACITY: usize = 2688;

/// Where the CPU puts state component `i` in the standard format:
/// CPUID(0xD, i) EAX = size, EBX = offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Component {
    pub size: u32,
    pub offset: u32,
}

/// Bytes of a standard-format area holding the components in `xcr0`
/// (components 0 and 1 live in the legacy region).
pub fn area_size(xcr0: u64, layout: impl Fn(u32) -> Component) -> u32 {
    (2..64)
        .filter(|i| xcr0 & (1 << i) != 0)
        .map(|i| {
            let c = layout(i);
            c.offset.saturating_add(c.size)
        })
        .fold(LEGACY_AND_HEADER, u32::max)
}

/// The components the host switches for guests, given the ones the CPU
/// supports (CPUID(0xD, 0) EDX:EAX) and their layout: x87|SSE, AVX if
/// supported, AVX-512 if all three of its components are, each only if the
/// area still fits in [`AREA_CAPACITY`]. Zero when `supported` lacks x87 or
/// SSE (no usable XSAVE).
pub fn switched_components(supported: u64, layout: impl Fn(u32) -> Component) -> u64 {
    if supported & (X87 | SSE) != X87 | SSE {
        return 0;
    }
    let mut xcr0 = X87 | SSE;
    for extra in [AVX, AVX512] {
        let wanted = xcr0 | extra;
        if supported & extra == extra && area_size(wanted, &layout) as usize <= AREA_CAPACITY {
            xcr0 = wanted;
        } else {
            break;
        }
    }
    xcr0
}

/// An XCR0 that XSETBV accepts on a CPU supporting the components in
/// `supported`: x87 set, AVX only with SSE, AVX-512's three components all
/// together and only with AVX, nothing outside `supported` (Intel SDM vol. 1,
/// §13.3; APM vol. 4, XSETBV).
pub fn valid_xcr0(xcr0: u64, supported: u64) -> bool {
    xcr0 & X87 != 0
        && xcr0 & !supported == 0
        && (xcr0 & AVX == 0 || xcr0 & SSE != 0)
        && (xcr0 & AVX512 == 0 || (xcr0 & AVX512 == AVX512 && xcr0 & AVX != 0))
}

/// The XCR0 the host runs with; 0 when the CPU has no XSAVE (the world
/// switch then uses FXSAVE/FXRSTOR).
static HOST_XCR0: AtomicU64 = AtomicU64::new(0);

/// The CPU saves and restores the x87 error pointers (FIP, FDP, FOP) only
/// when an exception is pending: AMD before XSAVEERPTR (CPUID 0x8000_0008
/// EBX bit 2).
static X87_POINTER_FIX: AtomicBool = AtomicBool::new(false);

/// True on a CPU whose FXRSTOR/XRSTOR keep the previous x87 error pointers.
pub fn needs_x87_pointer_fix() -> bool {
    X87_POINTER_FIX.load(Ordering::Relaxed)
}

/// The host's XCR0 (0: XSAVE is not used).
pub fn host_xcr0() -> u64 {
    HOST_XCR0.load(Ordering::Relaxed)
}

fn host_layout(i: u32) -> Component {
    let [size, offset, _, _] = super::cpu::cpuid(0xD, i);
    Component { size, offset }
}

/// Widens this CPU's XCR0 to [`switched_components`] and records it, and
/// whether the world switch must fix the x87 error pointers. Call once per
/// CPU after `boot.S` enabled CR4.OSXSAVE; on a CPU without XSAVE it records
/// XCR0 0. Returns the XCR0 now in force.
pub fn init() -> u64 {
    // SVM hosts are AMD (or Hygon) CPUs: the fix is needed unless the CPU
    // says it saves the pointers always.
    let has_xsaveerptr =
        super::cpu::cpuid(0x8000_0000, 0)[0] >= 0x8000_0008 && super::cpu::cpuid(0x8000_0008, 0)[1] & (1 << 2) != 0;
    X87_POINTER_FIX.store(!has_xsaveerptr, Ordering::Relaxed);
    if super::cpu::read_cr4() & guest_x86::regs::cr4::OSXSAVE == 0 {
        return 0;
    }
    let [eax, _, _, edx] = super::cpu::cpuid(0xD, 0);
    let xcr0 = switched_components(u64::from(eax) | (u64::from(edx) << 32), host_layout);
    if xcr0 != 0 {
        xsetbv(xcr0);
    }
    HOST_XCR0.store(xcr0, Ordering::Relaxed);
    xcr0
}

/// An application processor's XCR0: the one [`init`] chose on the boot
/// CPU (the CPUs are alike), written where CR4.OSXSAVE is set.
pub fn init_ap() {
    let xcr0 = host_xcr0();
    if xcr0 != 0 && super::cpu::read_cr4() & guest_x86::regs::cr4::OSXSAVE != 0 {
        xsetbv(xcr0);
    }
}

/// Bytes of this CPU's save area the host's XCR0 uses.
pub fn host_area_size() -> u32 {
    area_size(host_xcr0(), host_layout)
}

fn xsetbv(xcr0: u64) {
    // SAFETY: CR4.OSXSAVE is set and `xcr0` comes from switched_components, so it holds x87 and SSE, only components
    // the CPU supports, and AVX-512's three bits together: a valid XCR0. The host's code uses only x87/SSE state.
    unsafe {
        core::arch::asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32,
            options(nomem, nostack, preserves_flags))
    };
}

/// One vCPU's extended state, in the standard XSAVE format (or just the
/// legacy FXSAVE region on a CPU without XSAVE). 64-byte aligned, as XSAVE
/// requires.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct XsaveArea([u8; AREA_CAPACITY]);

impl XsaveArea {
    /// The state after RESET: FCW 0x037F, MXCSR 0x1F80, an empty XSAVE
    /// header (every component in its initial state, standard format).
    pub const fn reset() -> XsaveArea {
        let mut a = [0u8; AREA_CAPACITY];
        a[0] = 0x7F; // FCW = 0x037F
        a[1] = 0x03;
        a[24] = 0x80; // MXCSR = 0x1F80
        a[25] = 0x1F;
        a[28] = 0xFF; // MXCSR_MASK = 0xFFFF (the bits we allow)
        a[29] = 0xFF;
        XsaveArea(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard-format layout of AMD Zen 4 (and Intel's, minus MPX).
    fn zen4(i: u32) -> Component {
        match i {
            2 => Component { size: 256, offset: 576 },
            5 => Component { size: 64, offset: 1088 },
            6 => Component { size: 512, offset: 1152 },
            7 => Component { size: 1024, offset: 1664 },
            9 => Component { size: 8, offset: 2688 },
            _ => Component::default(),
        }
    }

    #[test]
    fn area_size_is_the_end_of_the_last_enabled_component() {
        assert_eq!(area_size(X87 | SSE, zen4), 576);
        assert_eq!(area_size(X87 | SSE | AVX, zen4), 832);
        assert_eq!(area_size(SWITCHABLE, zen4), 2688);
        assert_eq!(area_size(SWITCHABLE | (1 << 9), zen4), 2696);
    }

    #[test]
    fn switched_components_take_avx512_whole_and_never_pkru() {
        assert_eq!(switched_components(0x2E7, zen4), SWITCHABLE, "PKRU (bit 9) is not switched");
        assert_eq!(switched_components(0x7, zen4), X87 | SSE | AVX);
        assert_eq!(switched_components(0x67, zen4), X87 | SSE | AVX, "AVX-512 without Hi16_ZMM is left out");
        assert_eq!(switched_components(0x3, zen4), X87 | SSE);
        assert_eq!(switched_components(0x1, zen4), 0, "XSAVE without SSE state is not used");
        assert_eq!(switched_components(0xE3, zen4), X87 | SSE, "AVX-512 needs AVX");
    }

    #[test]
    fn components_that_do_not_fit_the_area_are_left_out() {
        let far = |i| if i == 7 { Component { size: 1024, offset: 4096 } } else { zen4(i) };
        assert_eq!(switched_components(0xE7, far), X87 | SSE | AVX);
        let nonsense = |_| Component { size: u32::MAX, offset: u32::MAX };
        assert_eq!(switched_components(u64::MAX, nonsense), X87 | SSE);
    }

    #[test]
    fn valid_xcr0_follows_the_xsetbv_rules() {
        let all = SWITCHABLE;
        for ok in [X87, X87 | SSE, X87 | SSE | AVX, X87 | SSE | AVX | AVX512, X87 | AVX512 | AVX | SSE] {
            assert!(valid_xcr0(ok, all), "{ok:#x} should be accepted");
        }
        for bad in [0, SSE, X87 | AVX, X87 | SSE | (1 << 5), X87 | SSE | AVX | (0b011 << 5), X87 | SSE | AVX512] {
            assert!(!valid_xcr0(bad, all), "{bad:#x} should be refused");
        }
        assert!(!valid_xcr0(X87 | SSE | AVX, X87 | SSE), "a component the CPU lacks");
        assert!(!valid_xcr0(X87 | (1 << 9), all), "PKRU is not among the switched components");
        assert!(!valid_xcr0(X87, 0), "no XSAVE at all");
    }

    #[test]
    fn reset_area_has_the_power_on_control_words_and_an_empty_header() {
        let a = XsaveArea::reset();
        assert_eq!(u16::from_le_bytes([a.0[0], a.0[1]]), 0x037F);
        assert_eq!(u32::from_le_bytes([a.0[24], a.0[25], a.0[26], a.0[27]]), 0x1F80);
        assert!(a.0[512..576].iter().all(|&b| b == 0), "XSTATE_BV and XCOMP_BV must start at 0");
        assert_eq!(core::mem::align_of::<XsaveArea>(), 64);
    }
}

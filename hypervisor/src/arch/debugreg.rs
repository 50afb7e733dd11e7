//! The breakpoint address registers DR0–DR3 and the debug control register
//! DR7 (AMD APM vol. 2, §13.1.1).
//!
//! VMRUN and #VMEXIT switch DR6 and DR7 through the VMCB but leave DR0–DR3
//! alone, so the vm layer switches those itself. The host never arms a
//! breakpoint: its DR7 keeps its reset value (0x400, nothing enabled), and
//! #VMEXIT disables every breakpoint in the host's DR7 (APM vol. 2, §15.6).
//! So whatever DR0–DR3 hold while the host runs, no breakpoint fires.
use core::arch::asm;

/// Reads DR0–DR3. In host tests: the simulated CPU's (`arch::sim`).
#[cfg(not(test))]
pub fn read_dr0_3() -> [u64; 4] {
    let (a, b, c, d): (u64, u64, u64, u64);
    // SAFETY: reading the debug registers at CPL 0 has no side effects.
    unsafe {
        asm!(
            "mov {}, dr0",
            "mov {}, dr1",
            "mov {}, dr2",
            "mov {}, dr3",
            out(reg) a, out(reg) b, out(reg) c, out(reg) d,
            options(nomem, nostack, preserves_flags)
        )
    };
    [a, b, c, d]
}

/// Writes DR0–DR3. In host tests: the simulated CPU's (`arch::sim`).
#[cfg(not(test))]
pub fn write_dr0_3(v: &[u64; 4]) {
    // SAFETY: DR0–DR3 only hold breakpoint addresses; any value is accepted in 64-bit mode, and none fires while the
    // host's DR7 enables no breakpoint (see the module header).
    unsafe {
        asm!(
            "mov dr0, {}",
            "mov dr1, {}",
            "mov dr2, {}",
            "mov dr3, {}",
            in(reg) v[0], in(reg) v[1], in(reg) v[2], in(reg) v[3],
            options(nomem, nostack, preserves_flags)
        )
    };
}

#[cfg(test)]
pub fn read_dr0_3() -> [u64; 4] {
    super::sim::dr0_3()
}

#[cfg(test)]
pub fn write_dr0_3(v: &[u64; 4]) {
    super::sim::set_dr0_3(*v)
}

/// Reads DR7.
pub fn read_dr7() -> u64 {
    let v;
    // SAFETY: reading DR7 at CPL 0 has no side effects (the host never sets DR7.GD).
    unsafe { asm!("mov {}, dr7", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

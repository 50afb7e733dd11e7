//! The guest's debug registers.
//!
//! DR6 and DR7 live in the VMCB's state save area: VMRUN loads them and
//! #VMEXIT saves them, so each vCPU has its own (RESET values 0xFFFF_0FF0
//! and 0x400, set by `Vcpu::new`). DR0–DR3, the breakpoint addresses, are
//! in no VMCB field, and neither VMRUN nor #VMEXIT touches them (AMD APM
//! vol. 2, §15.5.1 lists what VMRUN loads). Left alone they would be one
//! set shared by every guest and the host: 256 bits any VM could write and
//! the next one read.
//!
//! So the vm layer switches them, lazily, the way KVM does:
//! - a vCPU starts with DR0–DR3 = 0 (RESET) kept here, and with every
//!   access that reaches them intercepted: reads and writes of DR0–DR3,
//!   writes of DR7 (which arms them) and of DR5 (DR7's alias while CR4.DE
//!   is clear; the intercept bit is that of the register the instruction
//!   names). Nothing is loaded around VMRUN: an exit costs a test;
//! - such an access exits (before the instruction has any effect), and
//!   from then on the vCPU's DR0–DR3 are loaded before VMRUN and saved
//!   after #VMEXIT, the host's put back, and its intercepts are off. The
//!   instruction is not completed but run again, now on the CPU with the
//!   guest's registers in place: the CPU makes every check itself (CPL,
//!   #UD for DR4/DR5 with CR4.DE set, #GP for DR6/DR7 bits 63:32, DR7.GD),
//!   on every implementation alike, so nothing is decoded or emulated;
//! - after each exit a vCPU whose DR7 arms no breakpoint goes back to the
//!   intercepts, its values kept here; one whose DR7 arms a breakpoint
//!   keeps them loaded, since its breakpoints must fire. A DR7 that the VMM
//!   writes and that arms a breakpoint loads them too.
//!
//! Linux clears DR0–DR3 and DR7 once per CPU at boot and then leaves them
//! alone unless something sets a hardware breakpoint: one extra exit, after
//! which its exits pay nothing for the debug registers.
use vmcb::{DrSet, ExitCode};

/// DR6 and DR7 after RESET (AMD APM vol. 2, §13.1.1.5, §13.1.1.6).
pub const DR6_RESET: u64 = 0xFFFF_0FF0;
pub const DR7_RESET: u64 = 0x400;
/// DR7's local and global enables of breakpoints 0–3 (L0, G0 ... L3, G3).
pub const DR7_ENABLES: u64 = 0xFF;

/// The debug register reads intercepted while the guest's DR0–DR3 are not
/// in the CPU.
pub const READS_INTERCEPTED: DrSet = DrSet::DR0.union(DrSet::DR1).union(DrSet::DR2).union(DrSet::DR3);
/// The writes intercepted then: DR0–DR3, DR7 and its alias DR5.
pub const WRITES_INTERCEPTED: DrSet = READS_INTERCEPTED.union(DrSet::DR5).union(DrSet::DR7);

/// `dr7` enables at least one breakpoint.
pub fn arms_breakpoint(dr7: u64) -> bool {
    dr7 & DR7_ENABLES != 0
}

/// The exit is an intercepted MOV from or to a debug register.
pub fn is_access(code: ExitCode) -> bool {
    matches!(code, ExitCode::DrRead(_) | ExitCode::DrWrite(_))
}

/// One vCPU's DR0–DR3, and whether they are in the CPU while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestDebug {
    /// The guest's DR0–DR3 as of its last exit.
    dr: [u64; 4],
    /// Loaded around VMRUN, with no debug register intercepted.
    loaded: bool,
}

impl GuestDebug {
    /// DR0–DR3 after RESET, intercepted.
    pub const fn new() -> Self {
        GuestDebug { dr: [0; 4], loaded: false }
    }

    /// The debug register intercepts for the current state: (reads, writes).
    pub fn intercepts(&self) -> (DrSet, DrSet) {
        if self.loaded {
            (DrSet::empty(), DrSet::empty())
        } else {
            (READS_INTERCEPTED, WRITES_INTERCEPTED)
        }
    }

    /// The guest touched DR0–DR3 (an intercepted access): they are loaded
    /// from the next VMRUN on. True if the intercepts change.
    pub fn accessed(&mut self) -> bool {
        let changed = !self.loaded;
        self.loaded = true;
        changed
    }

    /// The VMM wrote `dr7`. True if the intercepts change.
    pub fn dr7_written(&mut self, dr7: u64) -> bool {
        arms_breakpoint(dr7) && self.accessed()
    }

    /// Before VMRUN: loaded registers go into the CPU. True if they did,
    /// and [`GuestDebug::after_run`] must follow the #VMEXIT.
    pub fn before_run(&self) -> bool {
        if self.loaded {
            crate::arch::debugreg::write_dr0_3(&self.dr);
        }
        self.loaded
    }

    /// After the #VMEXIT of a run that [`GuestDebug::before_run`] loaded:
    /// keeps what the guest left in the CPU's DR0–DR3, puts the host's
    /// `host` back, and, unless the guest's DR7 `dr7` arms a breakpoint,
    /// goes back to the intercepts. True if the intercepts change.
    pub fn after_run(&mut self, host: &[u64; 4], dr7: u64) -> bool {
        self.dr = crate::arch::debugreg::read_dr0_3();
        crate::arch::debugreg::write_dr0_3(host);
        self.loaded = arms_breakpoint(dr7);
        !self.loaded
    }
}

impl Default for GuestDebug {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::sim;

    const SET: [u64; 4] = [0x1000, 0xFFFF_8000_0000_2000, 0x3000, 0x4000];
    const OTHER: [u64; 4] = [0xA, 0xB, 0xC, 0xFFFF_FFFF_FFFF_FFF0];
    const HOST: [u64; 4] = [0x11, 0x22, 0x33, 0x44];
    const ARMED: u64 = DR7_RESET | 0x2;

    /// One run of `d` on the simulated CPU, whose DR0–DR3 hold `HOST`: the
    /// guest finds DR0–DR3, writes `writes` (if any) and exits with `dr7`.
    /// What it found, and whether the intercepts changed after the exit.
    fn run(d: &mut GuestDebug, writes: Option<[u64; 4]>, dr7: u64) -> ([u64; 4], bool) {
        sim::set_dr0_3(HOST);
        let loaded = d.before_run();
        let found = sim::dr0_3();
        if let Some(w) = writes {
            assert!(loaded, "a guest without its registers loaded cannot write them: it exits first");
            sim::set_dr0_3(w);
        }
        let changed = loaded && d.after_run(&HOST, dr7);
        assert_eq!(sim::dr0_3(), HOST, "the host's DR0-DR3 after every run");
        (found, changed)
    }

    /// The DRs whose access exits, as (reads, writes) register numbers.
    fn intercepted(d: &GuestDebug) -> (Vec<u8>, Vec<u8>) {
        let (r, w) = d.intercepts();
        let numbers = |s: DrSet| (0u8..16).filter(|&n| s.contains(DrSet::from_bits_retain(1 << n))).collect();
        (numbers(r), numbers(w))
    }

    #[test]
    fn a_new_vcpu_has_zero_breakpoints_and_intercepts_every_path_to_them() {
        let d = GuestDebug::new();
        assert_eq!(&d.dr, &[0; 4]);
        assert!(!d.loaded);
        // DR4 and DR6 (status) and reads of DR5/DR7 need no exit: DR6 and
        // DR7 are in the VMCB. A write of DR5 is one of DR7 (CR4.DE clear).
        assert_eq!(intercepted(&d), (vec![0, 1, 2, 3], vec![0, 1, 2, 3, 5, 7]));
    }

    #[test]
    fn the_reset_values_of_dr6_and_dr7_arm_nothing() {
        assert!(!arms_breakpoint(DR7_RESET));
        assert_eq!(DR6_RESET >> 32, 0, "DR6[63:32] must be zero for VMRUN");
        assert_eq!(DR7_RESET >> 32, 0, "DR7[63:32] must be zero for VMRUN");
    }

    #[test]
    fn an_intercepted_access_loads_the_registers_and_drops_the_intercepts() {
        let mut d = GuestDebug::new();
        assert!(d.accessed(), "the first access changes the intercepts");
        assert!(d.loaded);
        assert_eq!(intercepted(&d), (vec![], vec![]));
        assert!(!d.accessed(), "already loaded: no change");
    }

    #[test]
    fn unarmed_registers_go_back_to_intercepts_after_the_next_exit_keeping_their_values() {
        let mut d = GuestDebug::new();
        d.accessed();
        let (found, changed) = run(&mut d, Some(SET), DR7_RESET);
        assert_eq!(found, [0; 4], "RESET values");
        assert!(changed);
        assert!(!d.loaded);
        assert_eq!(&d.dr, &SET);
        assert_eq!(intercepted(&d).1, vec![0, 1, 2, 3, 5, 7]);
        d.accessed();
        assert_eq!(run(&mut d, None, DR7_RESET).0, SET, "the kept values come back");
    }

    #[test]
    fn armed_registers_stay_loaded_across_exits() {
        for enable in 0..8 {
            let dr7 = DR7_RESET | 1 << enable;
            let mut d = GuestDebug::new();
            d.accessed();
            assert!(!run(&mut d, Some(SET), dr7).1, "DR7 {dr7:#x}");
            assert!(d.loaded, "DR7 {dr7:#x} arms a breakpoint");
            assert_eq!(run(&mut d, None, dr7).0, SET, "DR7 {dr7:#x}: loaded again for the next run");
            assert!(run(&mut d, None, DR7_RESET).1, "disarmed: back to intercepts");
        }
    }

    #[test]
    fn a_vcpu_without_its_registers_loaded_leaves_the_cpus_alone() {
        sim::set_dr0_3(HOST);
        assert!(!GuestDebug::new().before_run());
        assert_eq!(sim::dr0_3(), HOST);
    }

    #[test]
    fn two_vcpus_taking_turns_on_one_cpu_each_find_only_their_own_registers() {
        let (mut a, mut b) = (GuestDebug::new(), GuestDebug::new());
        a.accessed();
        assert_eq!(run(&mut a, Some(SET), ARMED).0, [0; 4], "a: RESET values");
        // b has not touched its registers: its run loads nothing, and its
        // first access exits and gets it its own zeros, not a's values.
        assert_eq!(run(&mut b, None, DR7_RESET), (HOST, false));
        b.accessed();
        assert_eq!(run(&mut b, Some(OTHER), DR7_RESET).0, [0; 4], "b: RESET values");
        assert_eq!(run(&mut a, None, ARMED).0, SET, "a: armed, still loaded");
        assert_eq!(run(&mut a, None, DR7_RESET).0, SET, "a: disarmed on this exit");
        b.accessed();
        assert_eq!(run(&mut b, None, DR7_RESET).0, OTHER, "b: its own values");
        a.accessed();
        assert_eq!(run(&mut a, None, DR7_RESET).0, SET, "a: its own values");
    }

    #[test]
    fn dr7_bits_other_than_the_enables_arm_nothing() {
        // LE, GE, GD, and the type and length fields of all four.
        for dr7 in [DR7_RESET | 0x300, DR7_RESET | 1 << 13, DR7_RESET | 0xFFFF_0000] {
            let mut d = GuestDebug::new();
            assert!(!d.dr7_written(dr7), "DR7 {dr7:#x}");
            assert!(!d.loaded);
        }
    }

    #[test]
    fn a_vmm_write_of_an_armed_dr7_loads_the_registers() {
        let mut d = GuestDebug::new();
        assert!(d.dr7_written(DR7_RESET | 0x2));
        assert!(d.loaded);
        assert!(!d.dr7_written(DR7_RESET | 0x2), "already loaded: no change");
    }

    #[test]
    fn only_debug_register_exits_are_accesses() {
        assert!(is_access(ExitCode::DrRead(4)));
        assert!(is_access(ExitCode::DrWrite(15)));
        assert!(!is_access(ExitCode::CrWrite(4)));
        assert!(!is_access(ExitCode::Exception(1)), "#DB is an exception, not an access");
    }
}

//! Host tests for the decode path. The instruction bytes were produced
//! once with GNU `as` and checked against `objdump -d`; they are embedded
//! here so the tests need no tools at run time.

mod emulate;
mod fetch;
mod insn;
mod mov_model;
mod objdump_lengths;
mod props;
mod walk;
mod walk_props;

use super::emulate::GprAccess;

/// The case count of the property tests: `n`, or `PROPTEST_CASES` when
/// set (the long run).
fn cases(n: u32) -> proptest::prelude::ProptestConfig {
    let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    proptest::prelude::ProptestConfig::with_cases(n)
}

/// Sixteen GPRs and RFLAGS, standing in for a vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FakeRegs {
    pub gpr: [u64; 16],
    pub rflags: u64,
}

impl FakeRegs {
    pub fn new() -> Self {
        // Bit 1 of RFLAGS always reads as 1; IF (bit 9) set like a kernel.
        FakeRegs { gpr: [0; 16], rflags: 0x202 }
    }
}

impl GprAccess for FakeRegs {
    fn gpr(&self, n: u8) -> u64 {
        self.gpr[usize::from(n & 15)]
    }
    fn set_gpr(&mut self, n: u8, v: u64) {
        self.gpr[usize::from(n & 15)] = v;
    }
    fn rflags(&self) -> u64 {
        self.rflags
    }
    fn set_rflags(&mut self, v: u64) {
        self.rflags = v;
    }
}

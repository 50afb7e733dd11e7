//! Instruction decoding and emulation for exits that carry no decode
//! information.
//!
//! QEMU's SVM offers neither NRIPS nor decode assists (DESIGN.md §4), so on
//! a nested page fault in an MMIO region, or on any intercepted
//! instruction, the VMM has to find out for itself what the guest was
//! doing. This module is that path, in four steps that each test on the
//! host:
//!
//! 1. [`walk`]: translate the guest's linear RIP through the guest's own
//!    page tables ([`translate`]);
//! 2. [`fetch`]: read up to 15 instruction bytes at CS:RIP, page by page
//!    ([`fetch()`]);
//! 3. [`insn`]: decode them into a length and a typed operation
//!    ([`decode`]);
//! 4. [`emulate`]: replay a memory instruction against a device model
//!    ([`emulate_mmio`]).
//!
//! A typical MMIO exit:
//!
//! ```ignore
//! let f = fetch(&mem, &paging, mode, cs_base, rip, cpl == 3, &mut buf)?;
//! let insn = decode(&buf[..f.len], mode)?;
//! if let InsnKind::Mem(m) = insn.kind {
//!     emulate_mmio(&m, &mut regs, &mut |a| device.access(fault_gpa, a));
//!     rip += u64::from(insn.len);
//! }
//! ```
//!
//! Everything here is safe Rust, allocates nothing, and turns hostile
//! guest data into typed errors rather than panics.

pub mod emulate;
pub mod fetch;
pub mod insn;
pub mod walk;

pub use emulate::{emulate_mmio, Access, GprAccess};
pub use fetch::{fetch, Fetched};
pub use insn::{decode, CpuMode, DecodeError, Insn, InsnKind, MAX_INSN_LEN};
pub use walk::{translate, AccessKind, PageFault, PagingState, PfErrorCode, WalkError};

#[cfg(test)]
mod tests;

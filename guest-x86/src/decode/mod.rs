//! Instruction decoding and emulation for exits that carry no decode
//! information.
//!
//! QEMU's SVM offers neither NRIPS nor decode assists (docs/testing.md), so on
//! a nested page fault in an MMIO region, or on any intercepted
//! instruction, the VMM has to find out for itself what the guest was
//! doing. This module is that path, in four steps that each test on the
//! host:
//!
//! 1. [`walk`](mod@walk): translate the guest's linear RIP through the
//!    guest's own page tables ([`translate`]);
//! 2. [`fetch`](mod@fetch): read up to 15 instruction bytes at CS:RIP,
//!    page by page ([`fetch()`](fn@fetch));
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
//!
//! Design notes:
//! - [`fetch()`](fn@fetch) returns [`Fetched`] rather than a bare length:
//!   when a later page faults, the bytes before it may still hold the whole
//!   instruction, so the fault is kept beside the length and delivered only
//!   if [`decode`] then reports [`DecodeError::Truncated`], as the CPU would.
//! - The emulator never learns the guest-physical address: the VMM has it
//!   from the exit (EXITINFO2) and closes over it in the device callback.
//!   Bit offsets of BT/BTS/BTR/BTC are taken modulo the operand width,
//!   because the CPU already folded the rest into that address.
//! - The decoder lists what it knows and refuses the rest
//!   ([`DecodeError::Unsupported`]). Not handled: SSE/AVX and VEX/EVEX
//!   forms, CMPXCHG/XADD, INC/DEC/NOT/NEG on memory, the undocumented F6/F7
//!   /1 TEST alias, F2/F3 on 0F-map opcodes, LGDT/LIDT/SGDT/SIDT and 0F 00.
//! - Not checked: segment limits and types, alignment checks, SMAP and
//!   protection keys; the walker never sets accessed/dirty bits (see
//!   [`walk`](mod@walk)).

pub mod emulate;
pub mod fetch;
pub mod insn;
pub mod walk;

pub use emulate::{emulate_mmio, size_mask, Access, GprAccess};
pub use fetch::{fetch, Fetched};
pub use insn::{decode, CpuMode, DecodeError, Insn, InsnKind, MAX_INSN_LEN};
pub use walk::{translate, walk_and_mark, AccessKind, PageFault, PagingState, PfErrorCode, WalkError, WalkLimits};

#[cfg(test)]
mod tests;

//! Pure x86 knowledge shared by the code that handles VM exits: guest
//! memory access by guest-physical address, the guest page-table walker,
//! the instruction decoder and MMIO emulator, and the architectural bits of
//! CR0, CR4, EFER, RFLAGS and XCR0 ([`regs`], the one definition the whole
//! workspace uses). Nothing here holds state
//! or touches hardware, so the kernel's fast path and the VMM use the same
//! code, and all of it is tested on the host.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
pub mod decode;
pub mod mem;
pub mod regs;

//! Pure x86 knowledge shared by the layers that handle exits: guest memory
//! access by guest-physical address, the guest page-table walker, and the
//! instruction decoder and MMIO emulator. Nothing here holds state or
//! touches hardware, so the syscall layer's fast path and the VMM use the
//! same code, and all of it is tested on the host.
pub mod decode;
pub mod mem;

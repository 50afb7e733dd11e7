//! Device models of the guest platform: the legacy PC devices a Linux guest
//! touches when it boots (see `docs/` and DESIGN §4).
//!
//! Everything here is pure logic in safe Rust: no hardware access and no
//! heap. The VMM feeds the [`Board`] the guest's port accesses, the guest
//! time (nanoseconds, derived from the TSC) and the bytes typed on the host
//! console; it takes back interrupt vectors to inject, bytes to print, timer
//! deadlines and reset requests. Each device is tested on the host.
//!
//! | device | ports | IRQ | module |
//! |---|---|---|---|
//! | 8259A PIC pair, ELCR | 0x20–0x21, 0xA0–0xA1, 0x4D0–0x4D1 | — | [`pic`] |
//! | 8254 PIT | 0x40–0x43 | 0 | [`pit`] |
//! | i8042 keyboard controller (nothing attached) | 0x60, 0x64 | 1, 12 | [`kbc`] |
//! | NMI status and control (gate 2, OUT2, refresh) | 0x61 | — | [`board`] |
//! | MC146818 RTC and CMOS RAM | 0x70–0x71 | 8 | [`rtc`] |
//! | POST code (ignored) | 0x80 | — | [`board`] |
//! | system control port A (fast reset, A20) | 0x92 | — | [`board`] |
//! | 16550A UART, COM1 | 0x3F8–0x3FF | 4 | [`uart`] |
//! | PCI configuration mechanism #1, host bridge 00:00.0 | 0xCF8–0xCFF | — | [`pci`] |
//! | PIIX reset control | 0xCF9 (byte) | — | [`board`] |
//!
//! Every other port reads all ones and ignores writes; the board counts such
//! accesses so that the VMM can report them.
#![forbid(unsafe_code)]

pub mod acpi_pm;
pub mod apic_bus;
pub mod board;
pub mod ioapic;
pub mod isa_irq;
pub mod kbc;
pub mod lapic;
pub mod pci;
pub mod pic;
pub mod pit;
mod queue;
pub mod rtc;
pub mod time;
pub mod uart;

pub use board::{Board, BoardConfig, BoardEvent, UnassignedPort};

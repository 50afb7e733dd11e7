//! Device models of the guest platform: the legacy PC devices a Linux guest
//! touches when it boots, and the hypervisor's own debug devices.
//!
//! Everything here is pure logic in safe Rust: no hardware access and no
//! heap. Each device sits on the port or MMIO bus ([`crate::bus`]) at the
//! ranges [`board`] wires it to. The VMM feeds the [`Board`] the guest's
//! port and MMIO accesses, the guest time (nanoseconds, derived from the
//! TSC) and the bytes typed on the host console; it takes back interrupt
//! vectors to inject, bytes to print, timer deadlines and reset requests.
//! Each device is tested on the host.
//!
//! | device | ports / addresses | IRQ | module |
//! |---|---|---|---|
//! | 8259A PIC pair, ELCR | 0x20–0x21, 0xA0–0xA1, 0x4D0–0x4D1 | — | [`pic`] |
//! | 8254 PIT, NMI status and control (gate 2, OUT2, refresh) | 0x40–0x43, 0x61 | 0 | [`pit`], [`systimer`] |
//! | i8042 keyboard controller (nothing attached) | 0x60, 0x64 | 1, 12 | [`kbc`] |
//! | MC146818 RTC and CMOS RAM | 0x70–0x71 | 8 | [`rtc`] |
//! | POST code (ignored) | 0x80 | — | [`sysctl`] |
//! | system control port A (fast reset, A20) | 0x92 | — | [`sysctl`] |
//! | debug console | 0xE9 | — | [`crate::hvdev`] |
//! | 16550A UART, COM1 | 0x3F8–0x3FF | 4 | [`uart`] |
//! | PCI configuration mechanism #1, host bridge 00:00.0 | 0xCF8–0xCFF | — | [`pci`], [`sysctl`] |
//! | PIIX reset control | 0xCF9 (byte) | — | [`sysctl`] |
//! | information device (MMIO) | 0xFEBF_F000 | — | [`crate::hvdev`] |
//! | ACPI PM1a event and control blocks | 0x600–0x605 | 9 (SCI) | [`acpi_pm`] |
//! | I/O APIC, 24 pins (MMIO) | 0xFEC0_0000 | (takes 0–15) | [`ioapic`], [`apics`], [`isa_irq`] |
//! | local APIC of vCPU 0, xAPIC (MMIO) | 0xFEE0_0000 | — | [`lapic`], [`apics`] |
//!
//! Every other port reads all ones and ignores writes; the port bus counts
//! such accesses so that the VMM can report them.
#![forbid(unsafe_code)]

pub mod acpi_pm;
pub mod apic_bus;
pub mod apics;
pub mod board;
pub mod ioapic;
pub mod isa_irq;
pub mod kbc;
pub mod lapic;
pub mod pci;
pub mod pic;
pub mod pit;
pub(crate) mod queue;
pub mod rtc;
pub mod sysctl;
pub mod systimer;
pub mod time;
pub mod uart;

pub use crate::bus::{BoardEvent, UnassignedPort};
pub use board::{Board, BoardConfig};

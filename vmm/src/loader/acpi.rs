//! ACPI tables for Linux guests (ACPI 6.0): an RSDP (revision 2) and an
//! XSDT, a MADT, a FADT with its FACS and DSDT, in the BIOS area.
//!
//! The tables describe the platform the board and the interrupt models of
//! `crate::dev` emulate:
//!
//! - **MADT:** one local APIC per vCPU (APIC ID and ACPI processor UID =
//!   the vCPU index), the local APIC page at 0xFEE00000, one I/O APIC at
//!   0xFEC00000 with GSI base 0, the interrupt source overrides of
//!   [`isa_irq::OVERRIDES`] (IRQ 0 → GSI 2; the SCI, IRQ 9, level and
//!   active high), LINT1 as NMI on every processor, and PCAT_COMPAT (there
//!   is an 8259 pair, which Linux masks when it moves to the I/O APIC).
//! - **FADT:** the PM1a event and control blocks of [`acpi_pm`], SCI on
//!   IRQ 9, no SMI command port (always in ACPI mode), no PM timer, the
//!   reset register (port 0xCF9, value 6, which `dev::sysctl` already treats
//!   as a PIIX reset), the RTC century byte at CMOS 0x32, and
//!   IAPC_BOOT_ARCH saying legacy devices and an 8042 exist and no VGA.
//! - **DSDT:** `Name (\_S5, Package () { 5, 5, 0, 0 })`, the sleep
//!   type Linux writes to PM1a_CNT to power off, and, for each virtio slot
//!   in use, a `LNRO0005` device under `\_SB` with its window and GSI
//!   (docs/virtio.md).
//! - **FACS:** empty, as the FADT of a non-hardware-reduced platform needs
//!   one.
//!
//! The RSDP sits at the start of the BIOS area (0xF0000), where Linux's
//! scan of 0xE0000–0xFFFFF finds it; [`set_acpi_rsdp`](super::set_acpi_rsdp)
//! also hands its address over through the boot protocol. The BIOS area is
//! reserved in the e820 map.
//!
//! The tables are written by hand: `acpi_tables` (rust-vmm) builds them in
//! `Vec`s and needs an allocator, which the VMM does not have.
//!
//! [`isa_irq::OVERRIDES`]: crate::dev::isa_irq::OVERRIDES
//! [`acpi_pm`]: crate::dev::acpi_pm

mod tables;
#[cfg(test)]
mod tests;

use super::error::LoadError;
use super::layout::{MemLayout, ACPI_AREA_END, ACPI_AREA_START};
use guest_x86::mem::GuestMemory;
use tables::Plan;

/// The most vCPUs the MADT describes (one local APIC entry each, with 8-bit
/// APIC IDs).
pub const MAX_VCPUS: u8 = 64;

/// Where the RSDP goes.
pub const RSDP_ADDR: u64 = ACPI_AREA_START;

/// What the tables describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiConfig {
    /// vCPUs 0..vcpus, each with the APIC ID of its index; vCPU 0 is the
    /// bootstrap processor.
    pub vcpus: u8,
    /// The I/O APIC's ID (its ID register must say the same).
    pub ioapic_id: u8,
    /// virtio-mmio slots in use, `0..virtio_slots` (`crate::virtio::slots`);
    /// the DSDT lists exactly these.
    pub virtio_slots: u8,
}

/// Writes the ACPI tables into the BIOS area of guest memory and returns
/// the RSDP's address.
pub fn write_acpi_tables<M: GuestMemory + ?Sized>(
    mem: &mut M,
    layout: &MemLayout,
    config: &AcpiConfig,
) -> Result<u64, LoadError> {
    layout.check_memory(mem)?;
    if !(1..=MAX_VCPUS).contains(&config.vcpus) {
        return Err(LoadError::BadVcpuCount { count: config.vcpus, max: MAX_VCPUS });
    }
    if usize::from(config.virtio_slots) > crate::virtio::slots::SLOTS {
        return Err(LoadError::BadVirtioSlots { count: config.virtio_slots });
    }
    let plan = Plan::new(config.vcpus, config.virtio_slots);
    mem.zero(ACPI_AREA_START, ACPI_AREA_END - ACPI_AREA_START)?;
    tables::write_facs(mem, plan.facs)?;
    tables::write_dsdt(mem, plan.dsdt, config.virtio_slots)?;
    tables::write_fadt(mem, &plan)?;
    tables::write_madt(mem, plan.madt, config)?;
    tables::write_xsdt(mem, &plan)?;
    tables::write_rsdp(mem, plan.rsdp, plan.xsdt)?;
    Ok(plan.rsdp)
}

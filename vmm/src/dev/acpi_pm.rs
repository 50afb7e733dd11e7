//! The ACPI fixed-hardware registers the FADT points at (ACPI 6.0 §4.8):
//! the PM1a event block (status and enable) at 0x600 and the PM1a control
//! block at 0x604, the ports QEMU's PIIX4 and ICH9 use.
//!
//! What a Linux guest does with them: at boot it finds SCI_EN set (the
//! FADT has no SMI command port, so the machine is always in ACPI mode),
//! clears the status bits and enables the power-button event; on
//! `poweroff` it writes the `\_S5` sleep type from the DSDT with SLP_EN to
//! PM1a_CNT, which this model turns into a power-off request. A press of
//! the (fixed-feature) power button sets PWRBTN_STS and, once the guest
//! enabled it, raises the SCI on ISA IRQ 9, so the host can ask the guest
//! to shut down cleanly.
//!
//! Left out: the PM timer (optional since ACPI 5.0A; the FADT says there is
//! none), GPE blocks, the sleep states other than S5 (the DSDT offers only
//! `\_S5`), and the wake status.

use crate::bus::{BoardEvent, BusDevice, Ctx, Range};

/// The PM1a event block: PM1_STS at +0, PM1_EN at +2.
pub const PM1A_EVT_BLK: u16 = 0x600;
pub const PM1_EVT_LEN: u8 = 4;
/// The PM1a control block.
pub const PM1A_CNT_BLK: u16 = 0x604;
pub const PM1_CNT_LEN: u8 = 2;
/// The first port of the block and how many ports it answers.
pub const PM_BASE: u16 = PM1A_EVT_BLK;
pub const PM_PORTS: u16 = 6;
/// The ports on the bus.
pub const PM_RANGE: Range = Range::new(PM_BASE as u64, PM_PORTS as u64);
/// The ISA IRQ of the system control interrupt (the FADT's SCI_INT).
pub const SCI_IRQ: u8 = 9;
/// The SLP_TYP value of S5, soft off: what PM1a_CNT takes and what the
/// DSDT's `\_S5` package says.
pub const SLP_TYP_S5: u16 = 5;

/// PM1_STS and PM1_EN bits: a status bit and its enable share a position.
pub mod event {
    pub const GBL: u16 = 1 << 5;
    pub const PWRBTN: u16 = 1 << 8;
    pub const SLPBTN: u16 = 1 << 9;
    pub const RTC: u16 = 1 << 10;
    /// The events an enable bit exists for here (no PM timer, no bus
    /// master status).
    pub const ALL: u16 = GBL | PWRBTN | SLPBTN | RTC;
}

/// PM1_CNT bits.
pub mod control {
    pub const SCI_EN: u16 = 1 << 0;
    pub const BM_RLD: u16 = 1 << 1;
    /// Write-only: releases the global lock to firmware (there is none).
    pub const GBL_RLS: u16 = 1 << 2;
    pub const SLP_TYP_SHIFT: u16 = 10;
    pub const SLP_TYP: u16 = 7 << SLP_TYP_SHIFT;
    /// Write-only: enters the sleep state SLP_TYP names.
    pub const SLP_EN: u16 = 1 << 13;
}

/// The PM1a event and control registers.
#[derive(Clone, Debug)]
pub struct AcpiPm {
    status: u16,
    enable: u16,
    control: u16,
    power_off: bool,
}

impl Default for AcpiPm {
    fn default() -> Self {
        Self::new()
    }
}

impl AcpiPm {
    /// After reset: in ACPI mode, nothing pending, nothing enabled.
    pub const fn new() -> Self {
        AcpiPm { status: 0, enable: 0, control: control::SCI_EN, power_off: false }
    }

    /// A guest read of `data.len()` bytes at `offset` from [`PM_BASE`].
    pub fn read(&self, offset: u16, data: &mut [u8]) {
        for (at, byte) in (offset..).zip(data.iter_mut()) {
            let register = match at & !1 {
                0 => self.status,
                2 => self.enable,
                4 => self.control,
                _ => 0xFFFF,
            };
            *byte = register.to_le_bytes()[usize::from(at & 1)];
        }
    }

    /// A guest write at `offset` from [`PM_BASE`], byte by byte as the ISA
    /// bus splits it: status bits are cleared by writing ones, SLP_EN with
    /// the S5 sleep type asks for power-off.
    pub fn write(&mut self, offset: u16, data: &[u8]) {
        for (at, &byte) in (offset..).zip(data) {
            let shift = 8 * (at & 1);
            let value = u16::from(byte) << shift;
            let lane = 0xFF << shift;
            match at & !1 {
                0 => self.status &= !value,
                2 => self.enable = (self.enable & !lane) | (value & event::ALL),
                4 => self.write_control(value, lane),
                _ => {}
            }
        }
    }

    fn write_control(&mut self, value: u16, lane: u16) {
        let kept = control::BM_RLD | control::SLP_TYP;
        self.control = (self.control & !(lane & kept)) | (value & lane & kept);
        let sleep_type = (self.control & control::SLP_TYP) >> control::SLP_TYP_SHIFT;
        if value & control::SLP_EN != 0 && sleep_type == SLP_TYP_S5 {
            self.power_off = true;
        }
    }

    /// The SCI line (active high, level): an enabled event is pending.
    pub fn sci_level(&self) -> bool {
        self.control & control::SCI_EN != 0 && self.status & self.enable & event::ALL != 0
    }

    /// The power button was pressed: sets PWRBTN_STS.
    pub fn press_power_button(&mut self) {
        self.status |= event::PWRBTN;
    }

    /// Whether the guest has asked to enter S5 (soft off).
    pub fn power_off_requested(&self) -> bool {
        self.power_off
    }
}

/// On the port bus the block drives the SCI line and turns an S5 request
/// into a power-off.
impl BusDevice for AcpiPm {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8], _cx: &mut Ctx) {
        AcpiPm::read(self, offset as u16, data);
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        AcpiPm::write(self, offset as u16, data);
        cx.set_irq(SCI_IRQ, self.sci_level());
        if self.power_off_requested() {
            cx.request(BoardEvent::PowerOff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read16(pm: &AcpiPm, offset: u16) -> u16 {
        let mut b = [0u8; 2];
        pm.read(offset, &mut b);
        u16::from_le_bytes(b)
    }

    fn write16(pm: &mut AcpiPm, offset: u16, value: u16) {
        pm.write(offset, &value.to_le_bytes());
    }

    #[test]
    fn starts_in_acpi_mode_with_nothing_pending_or_enabled() {
        let pm = AcpiPm::new();
        assert_eq!(read16(&pm, 0), 0);
        assert_eq!(read16(&pm, 2), 0);
        assert_eq!(read16(&pm, 4), control::SCI_EN);
        assert!(!pm.sci_level());
    }

    #[test]
    fn slp_en_with_the_s5_type_requests_power_off_as_linux_writes_it() {
        let mut pm = AcpiPm::new();
        // ACPICA writes the sleep type first, then adds SLP_EN.
        let typ = SLP_TYP_S5 << control::SLP_TYP_SHIFT | control::SCI_EN;
        write16(&mut pm, 4, typ);
        assert!(!pm.power_off_requested(), "sleep type alone does nothing");
        write16(&mut pm, 4, typ | control::SLP_EN);
        assert!(pm.power_off_requested());
        assert_eq!(read16(&pm, 4), typ, "SLP_EN reads as 0");
    }

    #[test]
    fn slp_en_with_another_sleep_type_is_ignored() {
        let mut pm = AcpiPm::new();
        for typ in (0..8).filter(|&t| t != SLP_TYP_S5) {
            write16(&mut pm, 4, typ << control::SLP_TYP_SHIFT | control::SLP_EN);
            assert!(!pm.power_off_requested(), "SLP_TYP {typ}");
        }
    }

    #[test]
    fn a_byte_write_of_the_high_control_byte_also_powers_off() {
        let mut pm = AcpiPm::new();
        pm.write(5, &[((SLP_TYP_S5 << control::SLP_TYP_SHIFT | control::SLP_EN) >> 8) as u8]);
        assert!(pm.power_off_requested());
    }

    #[test]
    fn sci_en_is_read_only_and_gbl_rls_reads_zero() {
        let mut pm = AcpiPm::new();
        write16(&mut pm, 4, control::GBL_RLS | control::BM_RLD);
        assert_eq!(read16(&pm, 4), control::SCI_EN | control::BM_RLD);
    }

    #[test]
    fn power_button_raises_sci_once_enabled_until_its_status_is_cleared() {
        let mut pm = AcpiPm::new();
        pm.press_power_button();
        assert_eq!(read16(&pm, 0), event::PWRBTN);
        assert!(!pm.sci_level(), "not enabled yet");
        write16(&mut pm, 2, event::PWRBTN);
        assert!(pm.sci_level());
        write16(&mut pm, 0, event::GBL);
        assert!(pm.sci_level(), "writing another bit clears nothing else");
        write16(&mut pm, 0, event::PWRBTN);
        assert!(!pm.sci_level());
        assert_eq!(read16(&pm, 0), 0);
    }

    #[test]
    fn enable_keeps_only_the_defined_event_bits() {
        let mut pm = AcpiPm::new();
        write16(&mut pm, 2, 0xFFFF);
        assert_eq!(read16(&pm, 2), event::ALL);
    }

    #[test]
    fn ports_past_the_control_block_read_all_ones() {
        let pm = AcpiPm::new();
        assert_eq!(read16(&pm, 6), 0xFFFF);
    }
}

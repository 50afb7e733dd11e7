//! The guest platform: every device of the board, wired to the port and MMIO
//! buses in one place (`wire`).
//!
//! The VMM hands each port access to [`Board::io_read`] or
//! [`Board::io_write`] and each MMIO access to [`Board::mmio_read`] or
//! [`Board::mmio_write`], with the current guest time; the buses find the
//! device. Multi-byte port accesses to 8-bit devices are split into byte
//! accesses at consecutive ports, as the ISA bus does; only the PCI address
//! register (a dword at 0xCF8) is wider than a byte.
//!
//! Before and after every access the board brings the interrupt lines up to
//! date: the timers (PIT, RTC) are advanced to the guest time, and the lines
//! the devices drive are handed to the PIC. The VMM then asks
//! [`Board::pending_vector`] whether to inject and calls
//! [`Board::acknowledge`] when it does. Guest time only moves forward: a
//! time earlier than one already seen is taken as that one.

use super::acpi_pm::{AcpiPm, PM_RANGE, SCI_IRQ};
use super::apic_bus::CpuSet;
use super::apics::{Apics, APIC_PAGES};
use super::kbc::{Kbc, KBC_PORTS};
use super::lapic::{GeneralProtection, LapicEvents, TscClock};
use super::pic::{DualPic, PIC_PORTS};
use super::rtc::{Rtc, RTC_PORTS};
use super::sysctl::{ConfigPorts, PostCode, SystemControlA, CONFIG_PORTS, PORT_POST, PORT_SYSTEM_CONTROL_A};
use super::systimer::{SystemTimer, PIT_PORTS, PORT_NMI_STATUS_CONTROL};
use super::uart::{Uart, COM1_IRQ, COM1_PORTS};
use crate::bus::{BoardEvent, BusError, Buses, Ctx, Mapping, MmioBus, Range, UnassignedPort, Wiring};
use crate::guestlog;
use crate::hvdev::{DebugPort, InfoDevice, DEBUG_PORTS, INFO_MMIO};
use crate::virtio::slots::VirtioBus;
use guest_x86::mem::GuestMemory;

/// What the board is built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardConfig {
    /// The wall-clock time (seconds since the Unix epoch, UTC) the RTC shows
    /// at guest time 0.
    pub rtc_epoch_seconds: u64,
    /// Bytes of guest RAM, for the CMOS memory-size bytes.
    pub ram_size: u64,
    /// vCPUs, each with its local APIC (1 to
    /// [`MAX_VCPUS`](super::apics::MAX_VCPUS)).
    pub vcpus: usize,
}

/// Every device of the board. The buses reach each through the function
/// `wire` registers for it.
pub struct Devices<'a> {
    pub pic: DualPic,
    pub timer: SystemTimer,
    pub rtc: Rtc,
    pub uart: Uart,
    pub kbc: Kbc,
    pub config: ConfigPorts,
    pub port92: SystemControlA,
    pub post: PostCode,
    pub debug: DebugPort<'a>,
    pub info: InfoDevice,
    pub pm: AcpiPm,
    pub apics: Apics,
    /// The virtio-mmio slots in use (`crate::virtio::slots`).
    pub virtio: VirtioBus<'a>,
}

/// Where each device sits on the buses: one line per device.
/// `virtio` holds the windows of the virtio slots in use.
fn wire(w: &mut Wiring<'_, Devices<'_>>, virtio: &[Range]) -> Result<(), BusError> {
    w.ports(&PIC_PORTS, |d| &mut d.pic)?;
    w.ports(&[PIT_PORTS, Range::port(PORT_NMI_STATUS_CONTROL)], |d| &mut d.timer)?;
    w.ports(&KBC_PORTS, |d| &mut d.kbc)?;
    w.ports(&[RTC_PORTS], |d| &mut d.rtc)?;
    w.ports(&[Range::port(PORT_POST)], |d| &mut d.post)?;
    w.ports(&[Range::port(PORT_SYSTEM_CONTROL_A)], |d| &mut d.port92)?;
    w.ports(&[DEBUG_PORTS], |d| &mut d.debug)?;
    w.ports(&[COM1_PORTS], |d| &mut d.uart)?;
    w.ports(&[CONFIG_PORTS], |d| &mut d.config)?;
    w.ports(&[PM_RANGE], |d| &mut d.pm)?;
    w.mmio(&[INFO_MMIO], |d| &mut d.info)?;
    w.mmio(&APIC_PAGES, |d| &mut d.apics)?;
    if !virtio.is_empty() {
        w.mmio(virtio, |d| &mut d.virtio)?;
    }
    Ok(())
}

/// An MMIO device's range, found by [`Board::mmio_device`].
pub type MmioDevice<'a> = Mapping<Devices<'a>>;

/// The guest's platform.
pub struct Board<'a> {
    /// The VM's name, which its log lines start with.
    name: &'a str,
    devices: Devices<'a>,
    buses: Buses<Devices<'a>>,
    /// The latest guest time seen, and the lines and requests of the devices.
    cx: Ctx,
    /// The guest time the timers were last brought up to (u64::MAX: never).
    timers_at: u64,
    /// The line levels the interrupt controllers were last given.
    controller_lines: u32,
    /// The last answer of `next_deadline_ns` (outer `None`: not known), good
    /// until that deadline passes or the guest touches a timer or the PIC.
    deadline: Option<Option<u64>>,
}

impl<'a> Board<'a> {
    /// A board in its power-on state, as firmware would leave it: PIC
    /// vectors 0x08/0x70 with every line masked, the PIT's counter 0 at
    /// 18.2 Hz, the UART idle, the RTC showing `config.rtc_epoch_seconds`.
    /// The debug console's lines are logged as `name`'s.
    pub fn new(config: BoardConfig, name: &'a str) -> Result<Self, BusError> {
        Self::with_virtio(config, name, VirtioBus::new(name, config.ram_size))
    }

    /// A board as [`Board::new`] makes it, with the virtio devices of
    /// `virtio` in their slots.
    pub fn with_virtio(config: BoardConfig, name: &'a str, virtio: VirtioBus<'a>) -> Result<Self, BusError> {
        let windows = virtio.windows();
        let mut devices = Devices {
            pic: DualPic::new(),
            timer: SystemTimer::new(),
            rtc: Rtc::new(config.rtc_epoch_seconds, config.ram_size),
            uart: Uart::new(),
            kbc: Kbc::new(),
            config: ConfigPorts::new(),
            port92: SystemControlA::new(),
            post: PostCode,
            debug: DebugPort::new(name),
            info: InfoDevice::default(),
            pm: AcpiPm::new(),
            apics: Apics::new(config.vcpus),
            virtio,
        };
        let mut buses = Buses::new();
        wire(&mut Wiring::new(&mut devices, &mut buses), &windows)?;
        Ok(Board { name, devices, buses, cx: Ctx::new(), timers_at: u64::MAX, controller_lines: 0, deadline: None })
    }

    /// A guest `in` of `size` bytes (1, 2 or 4; anything else is taken as 1)
    /// from `port` at guest time `now_ns`. Bytes no device answers read 0xFF.
    pub fn io_read(&mut self, port: u16, size: u8, now_ns: u64) -> u32 {
        self.update(now_ns);
        let mut data = [0u8; 4];
        self.buses.ports.read(&mut self.devices, port, &mut data[..access_width(size)], &mut self.cx);
        self.sync();
        u32::from_le_bytes(data)
    }

    /// A guest `out` of the low `size` bytes (1, 2 or 4; anything else is
    /// taken as 1) of `value` to `port` at guest time `now_ns`. Bytes no
    /// device answers are dropped.
    pub fn io_write(&mut self, port: u16, size: u8, value: u32, now_ns: u64) {
        self.update(now_ns);
        let data = value.to_le_bytes();
        self.buses.ports.write(&mut self.devices, port, &data[..access_width(size)], &mut self.cx);
        self.sync();
    }

    /// The MMIO device whose range holds `gpa`, if any.
    pub fn mmio_device(&self, gpa: u64) -> Option<MmioDevice<'a>> {
        self.buses.mmio.find(gpa)
    }

    /// A read of `size` bytes (1, 2, 4 or 8) at `gpa` in `device`'s range.
    pub fn mmio_read(&mut self, device: MmioDevice<'a>, gpa: u64, size: u8, now_ns: u64) -> u64 {
        self.update(now_ns);
        let mut data = [0u8; 8];
        MmioBus::read(device, &mut self.devices, gpa, &mut data[..mmio_width(size)], &mut self.cx);
        self.sync();
        u64::from_le_bytes(data)
    }

    /// A write of the low `size` bytes (1, 2, 4 or 8) of `value` at `gpa`
    /// in `device`'s range.
    pub fn mmio_write(&mut self, device: MmioDevice<'a>, gpa: u64, size: u8, value: u64, now_ns: u64) {
        self.update(now_ns);
        let data = value.to_le_bytes();
        MmioBus::write(device, &mut self.devices, gpa, &data[..mmio_width(size)], &mut self.cx);
        self.sync();
    }

    /// Advances the timers to `now_ns` and updates the interrupt lines. Call
    /// it before [`Board::pending_vector`] when no access brought the board
    /// up to date.
    pub fn update(&mut self, now_ns: u64) {
        self.cx.now_ns = self.cx.now_ns.max(now_ns);
        self.sync();
    }

    /// The guest time at which the next timer interrupt (PIT IRQ 0, RTC
    /// IRQ 8, the local APIC timer) will be requested, so the VMM can wake a halted vCPU; `None`
    /// if no unmasked timer will fire without further programming. Always
    /// later than `now_ns`.
    pub fn next_deadline_ns(&mut self, now_ns: u64) -> Option<u64> {
        // The VMM asks at every exit; the answer changes only when the
        // deadline passes or the guest reprograms a timer or a mask.
        if self.cx.take_timers_changed() {
            self.deadline = None;
        }
        if let Some(known) = self.deadline {
            if known.is_none_or(|t| t > self.cx.now_ns.max(now_ns)) {
                return known;
            }
        }
        self.update(now_ns);
        let now = self.cx.now_ns;
        let mut deadline: Option<u64> = None;
        for timer in self.buses.timers() {
            if let Some(irq) = timer(&mut self.devices).next_irq(now) {
                let masked = irq.line.is_some_and(|line| self.devices.apics.isa_irq_masked(&self.devices.pic, line));
                if !masked {
                    deadline = Some(deadline.map_or(irq.at_ns, |t| t.min(irq.at_ns)));
                }
            }
        }
        // A deadline past the end of representable time is no deadline.
        let deadline = deadline.filter(|&t| t > now);
        self.deadline = Some(deadline);
        deadline
    }

    /// The vector the vCPU would take now: its local APIC's, or the PIC
    /// pair's while the local APIC passes the PIC on.
    pub fn pending_vector(&self) -> Option<u8> {
        self.devices.apics.pending_vector(&self.devices.pic)
    }

    /// The guest took `vector`, posted when it was
    /// [`pending_vector`](Self::pending_vector): its controller takes it into service now,
    /// even if another vector became pending since (another vCPU's IPI or
    /// device access). Returns the vector taken into service.
    pub fn acknowledge_taken(&mut self, vector: u8) -> Option<u8> {
        self.devices.apics.acknowledge_taken(&mut self.devices.pic, vector)
    }

    /// The CPU's interrupt acknowledge, as the tests make it: takes the
    /// pending interrupt into service and returns its vector.
    #[cfg(test)]
    pub fn acknowledge(&mut self) -> Option<u8> {
        let vector = self.pending_vector()?;
        self.acknowledge_taken(vector)
    }

    /// Takes the local APIC's interrupts that bypass its IRR (NMI, INIT,
    /// start-up, SMI, ExtINT).
    pub fn take_apic_events(&mut self) -> LapicEvents {
        self.devices.apics.take_events()
    }

    /// The selected vCPU's local APIC has events for
    /// [`take_apic_events`](Self::take_apic_events).
    pub fn has_apic_events(&self) -> bool {
        self.devices.apics.lapic().has_events()
    }

    /// The following calls are vCPU `cpu`'s: its local APIC answers at the
    /// APIC page and MSRs, takes its interrupts and gives its timer's
    /// deadline. The VMM selects its vCPU each time it takes the board.
    #[inline]
    pub fn select_cpu(&mut self, cpu: usize) {
        if self.devices.apics.select(cpu) {
            // The deadline known is the other vCPU's.
            self.deadline = None;
        }
    }

    /// The vCPUs (never the selected one) that got an interrupt or event
    /// from the accesses since the last call: the VMM kicks them.
    #[inline]
    pub fn take_kicks(&mut self) -> CpuSet {
        self.devices.apics.take_kicks()
    }

    /// INIT of the selected vCPU: its local APIC goes back to its power-up
    /// registers (SDM §10.4.7.3).
    pub fn init_lapic(&mut self) {
        self.devices.apics.lapic_mut().init_reset();
        self.cx.timers_changed();
    }

    /// How many vCPUs the board has.
    pub fn vcpus(&self) -> usize {
        self.devices.apics.vcpus()
    }

    /// The selected local APIC's TPR.
    pub fn tpr(&self) -> u8 {
        self.devices.apics.lapic().tpr()
    }

    /// MOV to CR8: the selected local APIC's TPR becomes `class` << 4
    /// (`class` is at most 15).
    pub fn write_cr8(&mut self, class: u8) {
        self.devices.apics.lapic_mut().set_tpr(class << 4);
    }

    /// RDMSR IA32_APIC_BASE.
    pub fn apic_base_msr(&self) -> u64 {
        self.devices.apics.apic_base_msr()
    }

    /// RDMSR IA32_TSC_DEADLINE at guest time `now_ns`.
    pub fn tsc_deadline_msr(&mut self, now_ns: u64) -> u64 {
        self.update(now_ns);
        self.devices.apics.lapic_mut().tsc_deadline_msr(self.cx.now_ns)
    }

    /// WRMSR IA32_TSC_DEADLINE at guest time `now_ns`, when the guest's TSC
    /// is `clock`: arms (or disarms) the local APIC timer in TSC-deadline
    /// mode.
    pub fn write_tsc_deadline_msr(&mut self, value: u64, now_ns: u64, clock: TscClock) {
        self.update(now_ns);
        self.devices.apics.lapic_mut().write_tsc_deadline_msr(value, self.cx.now_ns, clock);
        self.cx.timers_changed();
        self.sync();
    }

    /// WRMSR IA32_APIC_BASE; `Err` is the #GP the guest gets.
    pub fn write_apic_base_msr(&mut self, value: u64) -> Result<(), GeneralProtection> {
        let done = self.devices.apics.write_apic_base_msr(value);
        self.cx.timers_changed();
        self.sync();
        done
    }

    /// Offers a byte typed on the host console to COM1. Returns false if the
    /// UART cannot take it now; the VMM keeps it and offers it again later.
    pub fn uart_receive(&mut self, byte: u8) -> bool {
        let taken = self.devices.uart.receive(byte);
        self.cx.set_irq(COM1_IRQ, self.devices.uart.irq_level());
        self.sync();
        taken
    }

    /// The guest sent COM1 bytes that [`Board::drain_output`] has not taken.
    pub fn has_output(&self) -> bool {
        self.devices.uart.output_len() != 0
    }

    /// Hands every byte the guest sent to COM1 to `sink`, oldest first.
    pub fn drain_output(&mut self, sink: impl FnMut(u8)) {
        self.devices.uart.drain_output(sink);
        self.cx.set_irq(COM1_IRQ, self.devices.uart.irq_level());
        self.sync();
    }

    /// A virtio queue was notified and waits for [`Board::serve_virtio`].
    #[inline]
    pub fn virtio_pending(&self) -> bool {
        self.devices.virtio.has_pending()
    }

    /// Serves the virtio queues notified since the last call: the device
    /// work of a QueueNotify write, done right after its exit.
    pub fn serve_virtio(&mut self, mem: &mut dyn GuestMemory) {
        self.devices.virtio.serve_pending(mem, &mut self.cx);
        self.sync();
    }

    /// Moves frames between the virtio NIC and the VM's switch port
    /// (`virtio::net`).
    pub fn pump_net(&mut self, mem: &mut dyn GuestMemory, port: &mut impl crate::virtio::net::NetPort) {
        if self.devices.virtio.has_net() {
            self.devices.virtio.pump_net(mem, &mut self.cx, port);
            self.sync();
        }
    }

    /// The guest notified its NIC since the NIC was last pumped.
    pub fn net_notified(&self) -> bool {
        self.devices.virtio.net_notified()
    }

    /// The VM has a virtio console.
    pub fn has_virtio_console(&self) -> bool {
        self.devices.virtio.has_console()
    }

    /// Offers typed bytes (from `next`) to the virtio console; returns the
    /// one it had no room for.
    pub fn virtio_console_receive(
        &mut self,
        mem: &mut dyn GuestMemory,
        next: impl FnMut() -> Option<u8>,
    ) -> Option<u8> {
        let held = self.devices.virtio.console_receive(mem, &mut self.cx, next);
        self.sync();
        held
    }

    /// The guest sent virtio-console bytes not taken yet.
    pub fn has_virtio_console_output(&self) -> bool {
        self.devices.virtio.console_has_output()
    }

    /// Hands the virtio console's output to `sink`, oldest first.
    pub fn drain_virtio_console(&mut self, mem: &mut dyn GuestMemory, sink: impl FnMut(&[u8])) {
        self.devices.virtio.drain_console(mem, &mut self.cx, sink);
        self.sync();
    }

    /// The host pressed the ACPI power button: the guest sees PWRBTN_STS
    /// and, if it enabled the event, the SCI.
    pub fn press_power_button(&mut self) {
        self.devices.pm.press_power_button();
        self.cx.set_irq(SCI_IRQ, self.devices.pm.sci_level());
        self.sync();
    }

    /// Takes the pending reset or power-off request, if any.
    pub fn take_event(&mut self) -> Option<BoardEvent> {
        self.cx.take_event()
    }

    /// Logs "`name`: `args`" at `level`, a line the guest caused (at guest
    /// time `now_ns`), if the VM's budget of log lines, which its devices
    /// share, lets it through (`guestlog`).
    pub fn log_guest_line(&mut self, level: log::Level, now_ns: u64, args: core::fmt::Arguments<'_>) {
        self.cx.now_ns = self.cx.now_ns.max(now_ns);
        guestlog::log_line(&mut self.cx.log_budget, self.cx.now_ns, self.name, level, args);
    }

    /// At the VM's stop: logs how many of the guest's lines were dropped
    /// since the last one logged, if any were.
    pub fn report_suppressed_log_lines(&mut self) {
        guestlog::report_suppressed(&mut self.cx.log_budget, self.name);
    }

    /// Logs how many of the guest's lines were dropped, if any were and
    /// the limit has lifted at guest time `now_ns`.
    pub fn report_lifted_log_limit(&mut self, now_ns: u64) {
        self.cx.now_ns = self.cx.now_ns.max(now_ns);
        guestlog::report_lifted(&mut self.cx.log_budget, self.cx.now_ns, self.name);
    }

    /// Accesses to ports no device answers, in total.
    pub fn unassigned_accesses(&self) -> u64 {
        self.buses.ports.unassigned_accesses()
    }

    /// The first distinct unassigned ports touched, with their access
    /// counts. A multi-byte access counts once, at its first unassigned
    /// byte.
    pub fn unassigned_ports(&self) -> &[UnassignedPort] {
        self.buses.ports.unassigned_ports()
    }

    /// Brings the timers up to the latest guest time if it moved, and hands
    /// the lines that changed to the PIC. Both are rare within one exit:
    /// what runs every time is two compares.
    #[inline]
    fn sync(&mut self) {
        if self.timers_at != self.cx.now_ns {
            self.advance_timers();
        }
        if self.cx.lines() != self.controller_lines || self.cx.has_pulses() {
            self.deliver_lines();
        }
    }

    #[inline(never)]
    fn advance_timers(&mut self) {
        self.buses.advance_timers(&mut self.devices, &mut self.cx);
        self.timers_at = self.cx.now_ns;
    }

    /// Hands the lines that changed to both interrupt controllers, the PIC
    /// pair and the I/O APIC.
    #[inline(never)]
    fn deliver_lines(&mut self) {
        let pulses = self.cx.take_pulses();
        let lines = self.cx.lines();
        let mut changed = (lines ^ self.controller_lines) | pulses;
        let (pic, apics) = (&mut self.devices.pic, &mut self.devices.apics);
        while changed != 0 {
            let irq = changed.trailing_zeros() as u8;
            changed &= changed - 1;
            if pulses & (1 << irq) != 0 {
                // One edge for however many the line made since the last look.
                apics.set_isa_irq(pic, irq, false);
                apics.set_isa_irq(pic, irq, true);
            }
            apics.set_isa_irq(pic, irq, lines & (1 << irq) != 0);
        }
        self.controller_lines = lines;
    }
}

/// Bytes in a port access of `size`.
fn access_width(size: u8) -> usize {
    match size {
        2 => 2,
        4 => 4,
        _ => 1,
    }
}

/// Bytes in an MMIO access of `size`.
fn mmio_width(size: u8) -> usize {
    match size {
        1 | 2 | 4 => usize::from(size),
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::pit::PIT_HZ;
    use crate::dev::time::{ticks_at, time_of_tick};
    use crate::hvdev::{MAGIC, MMIO_BASE};
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn board() -> Board<'static> {
        Board::new(BoardConfig { rtc_epoch_seconds: 1_709_214_330, ram_size: 512 << 20, vcpus: 1 }, "test")
            .expect("the board's devices are wired without overlaps")
    }

    fn outb(b: &mut Board, port: u16, value: u8, now: u64) {
        b.io_write(port, 1, u32::from(value), now);
    }

    fn inb(b: &mut Board, port: u16, now: u64) -> u8 {
        b.io_read(port, 1, now) as u8
    }

    /// Linux's init_8259A with vectors 0x30/0x38, everything unmasked.
    fn init_pic(b: &mut Board) {
        for (port, value) in [
            (0x21, 0xFF),
            (0x20, 0x11),
            (0x21, 0x30),
            (0x21, 0x04),
            (0x21, 0x01),
            (0xA0, 0x11),
            (0xA1, 0x38),
            (0xA1, 0x02),
            (0xA1, 0x01),
            (0x21, 0x00),
            (0xA1, 0x00),
        ] {
            outb(b, port, value, 0);
        }
    }

    #[test]
    fn unassigned_ports_read_all_ones_by_size_and_are_counted() {
        let mut b = board();
        assert_eq!(b.io_read(0x2E, 1, 0), 0xFF);
        assert_eq!(b.io_read(0x2E, 2, 0), 0xFFFF);
        assert_eq!(b.io_read(0x2E, 4, 0), 0xFFFF_FFFF);
        b.io_write(0x2E, 1, 0x55, 0);
        assert_eq!(b.io_read(0x2E, 1, 0), 0xFF, "writes are dropped");
        for port in [0x2F, 0x4E, 0x4F, 0x2E9, 0x2F9, 0x3E9] {
            assert_eq!(inb(&mut b, port, 0), 0xFF, "port {port:#x}");
        }
        assert_eq!(b.unassigned_accesses(), 11);
        assert_eq!(b.unassigned_ports()[0], UnassignedPort { port: 0x2E, count: 5 });
        assert_eq!(b.unassigned_ports().len(), 7);
    }

    #[test]
    fn assigned_ports_are_not_counted() {
        let mut b = board();
        for port in [0x20, 0x21, 0x40, 0x43, 0x60, 0x61, 0x64, 0x70, 0x71, 0x80, 0x3F8, 0x3FF, 0xCFC] {
            b.io_read(port, 1, 0);
        }
        outb(&mut b, 0x80, 0x12, 0);
        b.io_write(0xCFB, 1, 0x01, 0);
        assert_eq!(b.unassigned_accesses(), 0);
    }

    #[test]
    fn info_device_and_apic_pages_answer_through_the_mmio_bus() {
        let mut b = board();
        let info = b.mmio_device(MMIO_BASE + 8).expect("the info device is on the MMIO bus");
        assert_eq!(b.mmio_read(info, MMIO_BASE, 4, 0), u64::from(MAGIC));
        b.mmio_write(info, MMIO_BASE + 8, 8, 0x1122_3344_5566_7788, 0);
        assert_eq!(b.mmio_read(info, MMIO_BASE + 8, 2, 0), 0x7788);
        let ioapic = b.mmio_device(0xFEC0_0010).expect("the I/O APIC is on the MMIO bus");
        b.mmio_write(ioapic, 0xFEC0_0000, 4, 1, 0);
        assert_eq!(b.mmio_read(ioapic, 0xFEC0_0010, 4, 0), 0x0017_0020, "I/O APIC version: 24 pins, 0x20");
        let lapic = b.mmio_device(0xFEE0_0030).expect("the local APIC is on the MMIO bus");
        assert_eq!(b.mmio_read(lapic, 0xFEE0_0030, 4, 0), 0x0005_0014, "local APIC version");
        for gpa in [0, MMIO_BASE - 1, 0xFEC0_1000, 0xFEE0_1000] {
            assert!(b.mmio_device(gpa).is_none(), "{gpa:#x} must be no device");
        }
    }

    #[test]
    fn debug_port_reads_e9_and_is_an_8_bit_port() {
        let mut b = board();
        assert_eq!(b.io_read(0xE9, 1, 0), 0xE9);
        b.io_write(0xE9, 1, u32::from(b'x'), 0);
        assert_eq!(b.unassigned_accesses(), 0);
        // A word covers 0xE9 and 0xEA, which nobody answers.
        assert_eq!(b.io_read(0xE9, 2, 0), 0xFFE9);
        assert_eq!(b.unassigned_ports(), &[UnassignedPort { port: 0xEA, count: 1 }]);
    }

    #[test]
    fn pci_config_through_the_board_by_dword_word_and_byte() {
        let mut b = board();
        // Linux's pci_check_type1.
        outb(&mut b, 0xCFB, 0x01, 0);
        let saved = b.io_read(0xCF8, 4, 0);
        b.io_write(0xCF8, 4, 0x8000_0000, 0);
        assert_eq!(b.io_read(0xCF8, 4, 0), 0x8000_0000);
        b.io_write(0xCF8, 4, saved, 0);
        b.io_write(0xCF8, 4, 0x8000_0000, 0);
        assert_eq!(b.io_read(0xCFC, 4, 0), 0x1237_8086);
        assert_eq!(b.io_read(0xCFE, 2, 0), 0x1237);
        assert_eq!(b.io_read(0xCFD, 1, 0), 0x80);
        b.io_write(0xCF8, 4, 0x8000_0808, 0); // device 1
        assert_eq!(b.io_read(0xCFC, 4, 0), 0xFFFF_FFFF);
        assert_eq!(b.io_read(0xCF8, 2, 0), 0xFFFF, "only dwords reach the address");
        assert_eq!(b.io_read(0xCF8, 4, 0), 0x8000_0808);
    }

    #[test]
    fn reset_requests_from_cf9_i8042_and_port_92() {
        let mut b = board();
        assert_eq!(b.take_event(), None);
        outb(&mut b, 0xCF9, 0x02, 0);
        assert_eq!(b.take_event(), None, "SYS_RST alone only selects the kind");
        assert_eq!(inb(&mut b, 0xCF9, 0), 0x02);
        outb(&mut b, 0xCF9, 0x06, 0);
        assert_eq!(b.take_event(), Some(BoardEvent::Reset));
        assert_eq!(b.take_event(), None);
        outb(&mut b, 0xCF9, 0x0E, 0);
        assert_eq!(b.take_event(), Some(BoardEvent::Reset));
        outb(&mut b, 0x64, 0xFE, 0);
        assert_eq!(b.take_event(), Some(BoardEvent::Reset));
        outb(&mut b, 0x92, 0x03, 0);
        assert_eq!(b.take_event(), Some(BoardEvent::Reset));
        assert_eq!(inb(&mut b, 0x92, 0), 0x02);
        // A word write over 0xCF8 is not a reset-control access.
        b.io_write(0xCF8, 2, 0x0600, 0);
        assert_eq!(b.take_event(), None);
    }

    #[test]
    fn pit_periodic_irq0_reaches_the_pic_and_is_not_duplicated_after_a_gap() {
        let mut b = board();
        init_pic(&mut b);
        // Linux's periodic clockevent: mode 2, LATCH for HZ=1000.
        outb(&mut b, 0x43, 0x34, 0);
        outb(&mut b, 0x40, (1193u16 & 0xFF) as u8, 0);
        outb(&mut b, 0x40, (1193u16 >> 8) as u8, 0);
        b.update(MS / 2);
        assert_eq!(b.pending_vector(), None);
        let deadline = b.next_deadline_ns(MS / 2).unwrap();
        assert_eq!(deadline, time_of_tick(1 + 1193, PIT_HZ));
        b.update(deadline);
        assert_eq!(b.pending_vector(), Some(0x30));
        assert_eq!(b.acknowledge(), Some(0x30));
        outb(&mut b, 0x20, 0x20, deadline);
        // The guest halts for a second: one request, not a thousand.
        b.update(deadline + 1000 * MS);
        assert_eq!(b.acknowledge(), Some(0x30));
        outb(&mut b, 0x20, 0x20, deadline + 1000 * MS);
        assert_eq!(b.pending_vector(), None);
        let next = b.next_deadline_ns(deadline + 1000 * MS).unwrap();
        assert!(next > deadline + 1000 * MS && next <= deadline + 1001 * MS);
    }

    #[test]
    fn masked_irq0_sets_no_deadline_but_its_request_waits_in_irr() {
        let mut b = board();
        init_pic(&mut b);
        outb(&mut b, 0x21, 0x01, 0);
        outb(&mut b, 0x43, 0x34, 0);
        outb(&mut b, 0x40, 100, 0);
        outb(&mut b, 0x40, 0, 0);
        assert_eq!(b.next_deadline_ns(0), None);
        b.update(MS);
        assert_eq!(b.pending_vector(), None);
        assert_eq!(b.next_deadline_ns(MS), None, "the kept answer");
        outb(&mut b, 0x21, 0x00, MS);
        assert_eq!(b.pending_vector(), Some(0x30));
        // The mask write drops the kept answer: the PIT's next edge counts now.
        let period = time_of_tick(100, PIT_HZ);
        let next = b.next_deadline_ns(MS).expect("IRQ 0 is unmasked");
        assert!(next > MS && next <= MS + period, "deadline {next} after {MS} with period {period}");
    }

    #[test]
    fn port61_bit5_follows_channel2_one_shot_like_pit_calibrate_tsc() {
        let mut b = board();
        let latch: u16 = 11932; // 10 ms
        let t0 = 7 * MS;
        let p61 = inb(&mut b, 0x61, t0);
        outb(&mut b, 0x61, (p61 & !0x02) | 0x01, t0);
        outb(&mut b, 0x43, 0xB0, t0);
        outb(&mut b, 0x42, latch as u8, t0);
        outb(&mut b, 0x42, (latch >> 8) as u8, t0);
        let written = ticks_at(t0, PIT_HZ);
        let high_at = time_of_tick(written + 1 + u64::from(latch), PIT_HZ);
        assert_eq!(inb(&mut b, 0x61, high_at - 1) & 0x20, 0);
        assert_eq!(inb(&mut b, 0x61, high_at) & 0x20, 0x20);
        assert_eq!(inb(&mut b, 0x61, high_at) & 0x0F, 0x01, "gate on, speaker off");
    }

    #[test]
    fn port61_refresh_bit_toggles_with_time() {
        let mut b = board();
        let mut seen = [false; 2];
        let mut t = 0;
        while t < 100_000 {
            seen[usize::from(inb(&mut b, 0x61, t) & 0x10 != 0)] = true;
            t += 1_000;
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn uart_interrupt_reaches_irq4_and_output_reaches_the_vmm() {
        let mut b = board();
        init_pic(&mut b);
        outb(&mut b, 0x3FC, 0x08, 0); // OUT2
        outb(&mut b, 0x3F9, 0x02, 0); // ETBEI
        assert_eq!(b.pending_vector(), Some(0x34));
        assert_eq!(b.acknowledge(), Some(0x34));
        assert_eq!(inb(&mut b, 0x3FA, 0) & 0x0F, 0x02);
        for byte in b"ok\n" {
            outb(&mut b, 0x3F8, *byte, 0);
        }
        let mut out = Vec::new();
        b.drain_output(|byte| out.push(byte));
        assert_eq!(out, b"ok\n");
        outb(&mut b, 0x3F9, 0x01, 0); // receive interrupts only
        outb(&mut b, 0x20, 0x20, 0);
        assert!(b.uart_receive(b'k'));
        assert_eq!(b.acknowledge(), Some(0x34));
        assert_eq!(inb(&mut b, 0x3F8, 0), b'k');
    }

    #[test]
    fn word_access_to_a_byte_device_reads_consecutive_registers() {
        let mut b = board();
        outb(&mut b, 0x3FB, 0x03, 0);
        outb(&mut b, 0x3FC, 0x0B, 0);
        assert_eq!(b.io_read(0x3FB, 2, 0), 0x0B03);
        // The dword straddles COM1's last port and an unassigned one.
        assert_eq!(b.io_read(0x3FF, 4, 0) >> 8, 0x00FF_FFFF);
        assert_eq!(b.unassigned_ports(), &[UnassignedPort { port: 0x400, count: 1 }]);
    }

    #[test]
    fn rtc_reads_through_the_board_and_time_never_goes_back() {
        let mut b = board();
        outb(&mut b, 0x70, 0x00, 5 * 1_000 * MS);
        assert_eq!(inb(&mut b, 0x71, 5 * 1_000 * MS), 0x35);
        // An earlier time is taken as the latest one seen.
        outb(&mut b, 0x70, 0x00, 0);
        assert_eq!(inb(&mut b, 0x71, 0), 0x35);
    }

    #[test]
    fn rtc_update_interrupt_reaches_irq8_through_the_slave() {
        let mut b = board();
        init_pic(&mut b);
        outb(&mut b, 0x21, 0x01, 0); // keep the PIT's 18.2 Hz out of the way
        outb(&mut b, 0x70, 0x0B, 0);
        outb(&mut b, 0x71, 0x12, 0); // UIE, 24 h
        let deadline = b.next_deadline_ns(0).unwrap();
        assert_eq!(deadline, 1_000 * MS);
        b.update(deadline);
        assert_eq!(b.acknowledge(), Some(0x38));
    }

    #[test]
    fn i8042_probe_sequence_finishes_without_waiting() {
        let mut b = board();
        // i8042_flush: nothing to flush.
        assert_eq!(inb(&mut b, 0x64, 0) & 0x01, 0);
        // Self-test.
        outb(&mut b, 0x64, 0xAA, 0);
        assert_eq!(inb(&mut b, 0x64, 0) & 0x03, 0x01);
        assert_eq!(inb(&mut b, 0x60, 0), 0x55);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Read { port: u16, size: u8, dt: u64 },
        Write { port: u16, size: u8, value: u32, dt: u64 },
        Update { dt: u64 },
        Deadline { dt: u64 },
        Acknowledge,
        Receive(u8),
        Drain,
    }

    fn interesting_port() -> impl Strategy<Value = u16> {
        prop_oneof![
            prop::sample::select(vec![
                0x20u16, 0x21, 0xA0, 0xA1, 0x4D0, 0x4D1, 0x40, 0x41, 0x42, 0x43, 0x60, 0x61, 0x64, 0x70, 0x71, 0x80,
                0x92, 0xCF8, 0xCF9, 0xCFA, 0xCFB, 0xCFC, 0xCFD, 0xCFE, 0xCFF, 0x3F8, 0x3F9, 0x3FA, 0x3FB, 0x3FC, 0x3FD,
                0x3FE, 0x3FF,
            ]),
            any::<u16>(),
        ]
    }

    fn time_step() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0u64), 0u64..2_000, 0u64..10_000_000, 0u64..100_000_000_000, Just(u64::MAX / 4),]
    }

    fn op() -> impl Strategy<Value = Op> {
        let size = prop::sample::select(vec![1u8, 2, 4, 0, 3]);
        prop_oneof![
            (interesting_port(), size.clone(), time_step()).prop_map(|(port, size, dt)| Op::Read { port, size, dt }),
            (interesting_port(), size, any::<u32>(), time_step()).prop_map(|(port, size, value, dt)| Op::Write {
                port,
                size,
                value,
                dt
            }),
            time_step().prop_map(|dt| Op::Update { dt }),
            time_step().prop_map(|dt| Op::Deadline { dt }),
            Just(Op::Acknowledge),
            any::<u8>().prop_map(Op::Receive),
            Just(Op::Drain),
        ]
    }

    proptest! {
        #[test]
        fn random_port_traffic_never_panics_and_reads_fit_their_size(
            ops in prop::collection::vec(op(), 1..300)
        ) {
            let mut b = board();
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Read { port, size, dt } => {
                        now = now.saturating_add(dt);
                        let value = b.io_read(port, size, now);
                        let bits = 8 * access_width(size) as u32;
                        prop_assert!(bits == 32 || value >> bits == 0, "{value:#x} from a {size}-byte read");
                    }
                    Op::Write { port, size, value, dt } => {
                        now = now.saturating_add(dt);
                        b.io_write(port, size, value, now);
                    }
                    Op::Update { dt } => {
                        now = now.saturating_add(dt);
                        b.update(now);
                    }
                    Op::Deadline { dt } => {
                        now = now.saturating_add(dt);
                        if let Some(deadline) = b.next_deadline_ns(now) {
                            prop_assert!(deadline > now, "deadline {deadline} at {now}");
                        }
                    }
                    Op::Acknowledge => {
                        let pending = b.pending_vector();
                        prop_assert_eq!(b.acknowledge(), pending);
                    }
                    Op::Receive(byte) => {
                        b.uart_receive(byte);
                    }
                    Op::Drain => b.drain_output(|_| {}),
                }
                b.take_event();
            }
        }
    }
}

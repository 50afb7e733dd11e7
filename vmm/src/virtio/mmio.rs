//! The virtio-mmio transport, version 2 (virtio 1.x §4.2.2): a 4 KiB
//! register window per device, with one interrupt line.
//!
//! | offset | register | access |
//! |---|---|---|
//! | 0x000 | MagicValue `"virt"` | R |
//! | 0x004 | Version (2) | R |
//! | 0x008 | DeviceID | R |
//! | 0x00C | VendorID ([`VENDOR_ID`]) | R |
//! | 0x010 | DeviceFeatures (32 bits, selected by 0x014) | R |
//! | 0x014 | DeviceFeaturesSel | W |
//! | 0x020 | DriverFeatures (32 bits, selected by 0x024) | W |
//! | 0x024 | DriverFeaturesSel | W |
//! | 0x030 | QueueSel | W |
//! | 0x034 | QueueNumMax (0: no such queue) | R |
//! | 0x038 | QueueNum | W |
//! | 0x044 | QueueReady | RW |
//! | 0x050 | QueueNotify | W |
//! | 0x060 | InterruptStatus (bit 0 used buffer, bit 1 configuration change) | R |
//! | 0x064 | InterruptACK | W |
//! | 0x070 | Status | RW |
//! | 0x080/0x084 | QueueDescLow/High | W |
//! | 0x090/0x094 | QueueDriverLow/High | W |
//! | 0x0A0/0x0A4 | QueueDeviceLow/High | W |
//! | 0x0FC | ConfigGeneration | R |
//! | 0x100.. | device configuration space | RW |
//!
//! Registers below 0x100 take 32-bit accesses only (§4.2.2.2); other
//! widths read 0 and are ignored. Write-only registers read 0; unknown
//! offsets read 0 and ignore writes.
//!
//! The transport keeps the status state machine of §3.1: FEATURES_OK
//! sticks only if the driver accepted VIRTIO_F_VERSION_1 and no bit the
//! device did not offer; DRIVER_OK only after FEATURES_OK; writing 0
//! resets the device. Feature writes after FEATURES_OK, and queue setup
//! writes to a ready queue, are ignored. A queue made ready with a bad
//! setup, or any [`QueueError`] while serving one, puts the device into
//! DEVICE_NEEDS_RESET (status bit 64) with a configuration-change
//! interrupt and one log line; the device then serves nothing until the
//! driver resets it. The VM runs on.
//!
//! A notification (a write to QueueNotify) is only recorded here: the
//! device cannot reach guest memory from a register access. The board
//! serves recorded notifications right after the exit that made them
//! ([`MmioTransport::serve_pending`]), so one notification costs one exit.
use super::device::{VirtioDevice, MAX_QUEUES};
use super::queue::{QueueError, Virtqueue};
use crate::bus::Ctx;
use crate::guestlog;
use guest_x86::mem::GuestMemory;
use log::Level;

/// "virt", little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// The transport version: 2, the modern (non-legacy) one.
pub const VERSION: u32 = 2;
/// The vendor ID the devices report: "CVSR".
pub const VENDOR_ID: u32 = u32::from_le_bytes(*b"CVSR");
/// Bytes in a device's register window.
pub const WINDOW: u64 = 0x1000;
/// Where the configuration space starts in the window.
pub const CONFIG_OFFSET: u64 = 0x100;

/// Register offsets.
pub mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00C;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0A0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0A4;
    pub const CONFIG_GENERATION: u64 = 0x0FC;
}

/// Device status bits (§2.1).
pub mod status {
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    pub const FAILED: u8 = 128;
}

/// InterruptStatus bits.
pub mod irq {
    /// The device used a buffer.
    pub const USED_BUFFER: u32 = 1;
    /// The configuration changed (or the device needs a reset).
    pub const CONFIG_CHANGE: u32 = 2;
}

/// Transport feature bits (§6).
pub mod feature {
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    pub const VERSION_1: u64 = 1 << 32;
}

/// One virtio device on its register window and interrupt line.
pub struct MmioTransport<D> {
    pub device: D,
    /// The window's guest-physical base (for log lines).
    base: u64,
    /// The interrupt line (an I/O APIC pin).
    line: u8,
    /// Bytes of guest RAM, which the queues' areas must lie in.
    ram: u64,
    queues: [Virtqueue; MAX_QUEUES],
    status: u8,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    interrupt_status: u32,
    config_generation: u32,
    /// Queues notified and not served yet, bit `n` for queue `n`.
    pending: u32,
}

impl<D: VirtioDevice> MmioTransport<D> {
    /// `device` at the window at `base`, interrupting on `line`, in a VM of
    /// `ram` bytes of RAM.
    pub fn new(device: D, base: u64, line: u8, ram: u64) -> Self {
        let mut queues = [Virtqueue::new(0); MAX_QUEUES];
        for (q, &max) in queues.iter_mut().zip(device.queue_max_sizes()) {
            *q = Virtqueue::new(max);
        }
        MmioTransport {
            device,
            base,
            line,
            ram,
            queues,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
            config_generation: 0,
            pending: 0,
        }
    }

    /// The interrupt line.
    pub fn line(&self) -> u8 {
        self.line
    }

    /// The window's base address.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The device status register.
    pub fn status(&self) -> u8 {
        self.status
    }

    /// Every feature bit offered: the device's and the transport's.
    pub fn offered_features(&self) -> u64 {
        self.device.features() | feature::VERSION_1 | feature::RING_EVENT_IDX
    }

    /// The features the driver accepted (meaningful once FEATURES_OK).
    pub fn negotiated_features(&self) -> u64 {
        self.driver_features
    }

    /// The device is live: DRIVER_OK, not failed, not waiting for a reset.
    pub fn is_live(&self) -> bool {
        self.status & (status::DRIVER_OK | status::FAILED | status::DEVICE_NEEDS_RESET) == status::DRIVER_OK
    }

    /// Queues notified and not yet served.
    pub fn has_pending(&self) -> bool {
        self.pending != 0
    }

    /// Queue `index` (for tests and for devices' host-side work).
    pub fn queue(&self, index: usize) -> Option<&Virtqueue> {
        self.queues.get(index)
    }

    fn selected_queue(&mut self) -> Option<&mut Virtqueue> {
        let n = self.device.queue_max_sizes().len();
        let sel = self.queue_sel as usize;
        if sel < n {
            self.queues.get_mut(sel)
        } else {
            None
        }
    }

    /// A register or configuration-space read.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= CONFIG_OFFSET {
            self.device.read_config(offset - CONFIG_OFFSET, data);
            return;
        }
        if data.len() != 4 {
            return;
        }
        let value = match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.device.device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size)),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => u32::from(self.status),
            reg::CONFIG_GENERATION => self.config_generation,
            _ => 0,
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    /// A register or configuration-space write. `vm` names the VM in log
    /// lines; the interrupt line is driven in `cx`.
    pub fn write(&mut self, offset: u64, data: &[u8], cx: &mut Ctx, vm: &str) {
        if offset >= CONFIG_OFFSET {
            self.device.write_config(offset - CONFIG_OFFSET, data);
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return;
        };
        let value = u32::from_le_bytes(bytes);
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => self.write_driver_features(value),
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NOTIFY => {
                if self.is_live() && (value as usize) < self.device.queue_max_sizes().len() {
                    self.pending |= 1 << value;
                }
            }
            reg::INTERRUPT_ACK => self.interrupt_status &= !value,
            reg::STATUS => self.write_status(value as u8),
            reg::QUEUE_READY => self.write_queue_ready(value, cx, vm),
            _ => self.write_queue_setup(offset, value),
        }
        self.drive_line(cx);
    }

    fn write_driver_features(&mut self, value: u32) {
        if self.status & status::FEATURES_OK != 0 {
            return;
        }
        let v = u64::from(value);
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xFFFF_FFFF) | v,
            1 => self.driver_features = (self.driver_features & 0xFFFF_FFFF) | (v << 32),
            _ => {}
        }
    }

    /// QueueNum and the areas' addresses, for a queue that is not ready.
    fn write_queue_setup(&mut self, offset: u64, value: u32) {
        let Some(q) = self.selected_queue().filter(|q| !q.ready) else {
            return;
        };
        let v = u64::from(value);
        let low = |old: u64| (old & !0xFFFF_FFFF) | v;
        let high = |old: u64| (old & 0xFFFF_FFFF) | (v << 32);
        match offset {
            reg::QUEUE_NUM => q.size = value.min(u32::from(u16::MAX)) as u16,
            reg::QUEUE_DESC_LOW => q.desc = low(q.desc),
            reg::QUEUE_DESC_HIGH => q.desc = high(q.desc),
            reg::QUEUE_DRIVER_LOW => q.driver = low(q.driver),
            reg::QUEUE_DRIVER_HIGH => q.driver = high(q.driver),
            reg::QUEUE_DEVICE_LOW => q.device = low(q.device),
            reg::QUEUE_DEVICE_HIGH => q.device = high(q.device),
            _ => {}
        }
    }

    fn write_queue_ready(&mut self, value: u32, cx: &mut Ctx, vm: &str) {
        let (ram, event_idx) = (self.ram, self.driver_features & feature::RING_EVENT_IDX != 0);
        let sel = self.queue_sel;
        let Some(q) = self.selected_queue() else {
            return;
        };
        if value == 0 {
            // The driver takes the queue back (Linux does on removal).
            q.unready();
            return;
        }
        if q.ready {
            return;
        }
        match q.validate(ram) {
            Ok(()) => {
                q.ready = true;
                q.event_idx = event_idx;
            }
            Err(why) => self.fail(sel as usize, QueueError::Setup(why), cx, vm),
        }
    }

    fn write_status(&mut self, value: u8) {
        if value == 0 {
            self.reset();
            return;
        }
        // The driver cannot set or clear DEVICE_NEEDS_RESET.
        let mut new = (value & !status::DEVICE_NEEDS_RESET) | (self.status & status::DEVICE_NEEDS_RESET);
        let newly = new & !self.status;
        if newly & status::FEATURES_OK != 0 && !self.features_acceptable() {
            new &= !status::FEATURES_OK;
        }
        if new & status::DRIVER_OK != 0 && new & status::FEATURES_OK == 0 {
            new &= !status::DRIVER_OK;
        }
        let activate = new & !self.status & status::DRIVER_OK != 0;
        self.status = new;
        if activate {
            self.device.activate(self.driver_features);
        }
    }

    /// The driver's features are a subset of the offer and include
    /// VIRTIO_F_VERSION_1 (this is a modern-only device, §6.1).
    fn features_acceptable(&self) -> bool {
        self.driver_features & !self.offered_features() == 0 && self.driver_features & feature::VERSION_1 != 0
    }

    /// The device reset: status 0, every queue forgotten, no interrupt.
    pub fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt_status = 0;
        self.pending = 0;
    }

    /// Serves the queues notified since the last call, then raises the
    /// used-buffer interrupt if a queue's driver wants one.
    pub fn serve_pending(&mut self, mem: &mut dyn GuestMemory, cx: &mut Ctx, vm: &str) {
        let mut pending = core::mem::take(&mut self.pending);
        while pending != 0 {
            let index = pending.trailing_zeros() as usize;
            pending &= pending - 1;
            self.run(index, mem, cx, vm, |dev, index, queues, mem| dev.serve(index, queues, mem));
        }
    }

    /// Runs `work` on the device and its queues for queue `index` (a
    /// notification, or host-side work such as received input), then
    /// decides on the interrupt. Nothing runs unless the device is live; a
    /// `QueueError` puts it into DEVICE_NEEDS_RESET.
    pub fn run(
        &mut self,
        index: usize,
        mem: &mut dyn GuestMemory,
        cx: &mut Ctx,
        vm: &str,
        work: impl FnOnce(&mut D, usize, &mut [Virtqueue], &mut dyn GuestMemory) -> Result<(), QueueError>,
    ) {
        if !self.is_live() {
            return;
        }
        let n = self.device.queue_max_sizes().len();
        let queues = &mut self.queues[..n];
        let mut outcome = work(&mut self.device, index, queues, mem);
        for q in queues.iter_mut().filter(|q| q.ready) {
            match q.needs_interrupt(mem) {
                Ok(true) => self.interrupt_status |= irq::USED_BUFFER,
                Ok(false) => {}
                Err(e) => outcome = outcome.and(Err(e)),
            }
        }
        if let Err(e) = outcome {
            self.fail(index, e, cx, vm);
        }
        self.drive_line(cx);
    }

    /// DEVICE_NEEDS_RESET: the device stops serving, the driver hears of it
    /// through a configuration-change interrupt, and the host log gets one
    /// line (within the VM's budget).
    fn fail(&mut self, queue: usize, e: QueueError, cx: &mut Ctx, vm: &str) {
        if self.status & status::DEVICE_NEEDS_RESET == 0 {
            let what =
                format_args!("{} at {:#x} queue {queue}: {e}; device needs reset", self.device.kind(), self.base);
            guestlog::log_line(&mut cx.log_budget, cx.now_ns, vm, Level::Warn, what);
        }
        self.status |= status::DEVICE_NEEDS_RESET;
        self.interrupt_status |= irq::CONFIG_CHANGE;
        self.config_generation = self.config_generation.wrapping_add(1);
        self.pending = 0;
        self.drive_line(cx);
    }

    /// The device changed its configuration space (a resized disk, a
    /// link state): the driver hears of it by interrupt.
    pub fn config_changed(&mut self, cx: &mut Ctx) {
        self.config_generation = self.config_generation.wrapping_add(1);
        self.interrupt_status |= irq::CONFIG_CHANGE;
        self.drive_line(cx);
    }

    /// The line is high while an interrupt is unacknowledged (level
    /// triggered).
    fn drive_line(&self, cx: &mut Ctx) {
        cx.set_irq(self.line, self.interrupt_status != 0);
    }
}

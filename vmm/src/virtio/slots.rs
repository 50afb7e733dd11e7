//! The board's virtio devices: up to [`SLOTS`] virtio-mmio windows, slot
//! `n` at [`MMIO_BASE`] + `n` × 4 KiB interrupting on I/O APIC pin
//! [`FIRST_GSI`] + `n`, all one device on the MMIO bus ([`VirtioBus`]).
//! The ACPI DSDT lists the slots in use, and only those
//! (`loader::acpi`).
use super::blk::Blk;
use super::console::{Console, RECEIVEQ, TRANSMITQ};
use super::device::VirtioDevice;
use super::mmio::{MmioTransport, WINDOW};
use super::net::{NetPort, VirtioNet};
use super::queue::{QueueError, Virtqueue};
use crate::bus::{BusDevice, Ctx, Range};
use arrayvec::ArrayVec;
use guest_x86::mem::GuestMemory;

/// The first slot's register window.
pub const MMIO_BASE: u64 = 0xFEB0_0000;
/// Slots: one per I/O APIC pin above the ISA ones.
pub const SLOTS: usize = 8;
/// Slot 0's interrupt line (GSI, I/O APIC pin); slot `n` has `FIRST_GSI + n`.
pub const FIRST_GSI: u8 = 16;

/// Slot `slot`'s register window.
pub const fn window(slot: usize) -> Range {
    Range::new(MMIO_BASE + slot as u64 * WINDOW, WINDOW)
}

/// Slot `slot`'s interrupt line.
pub const fn gsi(slot: usize) -> u8 {
    FIRST_GSI + slot as u8
}

/// The device models a slot can hold.
pub enum Model<'a> {
    Blk(Blk<'a>),
    Console(Console),
    Net(VirtioNet),
}

impl Model<'_> {
    fn device(&self) -> &dyn VirtioDevice {
        match self {
            Model::Blk(d) => d,
            Model::Console(d) => d,
            Model::Net(d) => d,
        }
    }

    fn device_mut(&mut self) -> &mut dyn VirtioDevice {
        match self {
            Model::Blk(d) => d,
            Model::Console(d) => d,
            Model::Net(d) => d,
        }
    }
}

impl VirtioDevice for Model<'_> {
    fn device_id(&self) -> u32 {
        self.device().device_id()
    }
    fn kind(&self) -> &'static str {
        self.device().kind()
    }
    fn features(&self) -> u64 {
        self.device().features()
    }
    fn queue_max_sizes(&self) -> &'static [u16] {
        self.device().queue_max_sizes()
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        self.device().read_config(offset, data)
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        self.device_mut().write_config(offset, data)
    }
    fn activate(&mut self, features: u64) {
        self.device_mut().activate(features)
    }
    fn reset(&mut self) {
        self.device_mut().reset()
    }
    fn serve(&mut self, index: usize, queues: &mut [Virtqueue], mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        self.device_mut().serve(index, queues, mem)
    }
}

/// Every slot is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotsFull;

/// The slots in use, in order.
pub struct VirtioBus<'a> {
    vm: &'a str,
    ram: u64,
    slots: ArrayVec<MmioTransport<Model<'a>>, SLOTS>,
}

impl<'a> VirtioBus<'a> {
    /// No devices yet, for VM `vm` (its log lines) of `ram` bytes of RAM.
    pub fn new(vm: &'a str, ram: u64) -> Self {
        VirtioBus { vm, ram, slots: ArrayVec::new() }
    }

    /// Puts `model` in the next slot, if one is free.
    pub fn add(&mut self, model: Model<'a>) -> Result<(), SlotsFull> {
        let slot = self.slots.len();
        if slot == SLOTS {
            return Err(SlotsFull);
        }
        self.slots.push(MmioTransport::new(model, window(slot).base, gsi(slot), self.ram));
        Ok(())
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The windows of the slots in use, for the MMIO bus.
    pub fn windows(&self) -> ArrayVec<Range, SLOTS> {
        (0..self.slots.len()).map(window).collect()
    }

    /// The transport of slot `slot`.
    pub fn slot(&self, slot: usize) -> Option<&MmioTransport<Model<'a>>> {
        self.slots.get(slot)
    }

    fn slot_of(&mut self, base: u64) -> Option<&mut MmioTransport<Model<'a>>> {
        let slot = base.checked_sub(MMIO_BASE)? / WINDOW;
        self.slots.get_mut(slot as usize)
    }

    /// A device was notified and waits for service.
    pub fn has_pending(&self) -> bool {
        self.slots.iter().any(|t| t.has_pending())
    }

    /// Serves every notified queue (after the exit that notified).
    pub fn serve_pending(&mut self, mem: &mut dyn GuestMemory, cx: &mut Ctx) {
        for t in &mut self.slots {
            if t.has_pending() {
                t.serve_pending(mem, cx, self.vm);
            }
        }
    }

    /// The first console, if the VM has one.
    fn console(&mut self) -> Option<&mut MmioTransport<Model<'a>>> {
        self.slots.iter_mut().find(|t| matches!(t.device, Model::Console(_)))
    }

    /// The VM has a virtio console.
    pub fn has_console(&self) -> bool {
        self.slots.iter().any(|t| matches!(t.device, Model::Console(_)))
    }

    /// Offers typed bytes to the console's driver: as many as it takes
    /// now (`next` is asked until it returns `None` or the console's
    /// buffer is full), then fills its receive buffers. Returns the byte
    /// it had no room for, if any. Nothing is taken while the driver is not
    /// live.
    pub fn console_receive(
        &mut self,
        mem: &mut dyn GuestMemory,
        cx: &mut Ctx,
        mut next: impl FnMut() -> Option<u8>,
    ) -> Option<u8> {
        let vm = self.vm;
        let t = self.console().filter(|t| t.is_live())?;
        let mut held = None;
        if let Model::Console(c) = &mut t.device {
            while let Some(b) = next() {
                if !c.receive(b) {
                    held = Some(b);
                    break;
                }
            }
        }
        t.run(RECEIVEQ, mem, cx, vm, |dev, index, queues, mem| dev.serve(index, queues, mem));
        held
    }

    /// The console's driver may have new receive buffers for input that
    /// waits: serve its receive queue if so.
    pub fn console_has_input(&self) -> bool {
        self.slots.iter().any(|t| matches!(&t.device, Model::Console(c) if c.input_len() > 0))
    }

    /// Moves frames between the NIC and the VM's switch port: the
    /// transmit queue if the driver notified it, then frames waiting for
    /// receive buffers; the interrupt follows as the driver wants it.
    pub fn pump_net(&mut self, mem: &mut dyn GuestMemory, cx: &mut Ctx, port: &mut impl NetPort) {
        let vm = self.vm;
        for t in self.slots.iter_mut().filter(|t| matches!(t.device, Model::Net(_))) {
            t.run(super::net::RX, mem, cx, vm, |dev, _, queues, mem| match dev {
                Model::Net(n) => n.pump(queues, mem, port),
                _ => Ok(()),
            });
        }
    }

    /// The driver notified a queue of a NIC since its last pump.
    pub fn net_notified(&self) -> bool {
        self.slots.iter().any(|t| matches!(&t.device, Model::Net(n) if n.notified()))
    }

    /// The VM has a virtio NIC.
    pub fn has_net(&self) -> bool {
        self.slots.iter().any(|t| matches!(t.device, Model::Net(_)))
    }

    /// The guest sent console output not yet taken.
    pub fn console_has_output(&self) -> bool {
        self.slots.iter().any(|t| matches!(&t.device, Model::Console(c) if c.has_output()))
    }

    /// Hands the console's output to `sink` and gives its transmit
    /// buffers back.
    pub fn drain_console(&mut self, mem: &mut dyn GuestMemory, cx: &mut Ctx, mut sink: impl FnMut(&[u8])) {
        let vm = self.vm;
        let Some(t) = self.console() else {
            return;
        };
        t.run(TRANSMITQ, mem, cx, vm, |dev, index, queues, mem| match (dev, queues.get_mut(index)) {
            (Model::Console(c), Some(q)) => c.drain_output(q, mem, &mut sink),
            _ => Ok(()),
        });
    }
}

impl BusDevice for VirtioBus<'_> {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8], _cx: &mut Ctx) {
        match self.slot_of(base) {
            Some(t) => t.read(offset, data),
            None => data.fill(0xFF),
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        let vm = self.vm;
        if let Some(t) = self.slot_of(base) {
            t.write(offset, data, cx, vm);
        }
    }
}

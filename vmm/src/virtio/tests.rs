//! Host tests of the transport, the split ring and the chain walker.
use super::chain::{desc_flags, walk, ChainError, DESC_SIZE, QUEUE_MAX};
use super::mmio::{feature, irq, reg, status, MmioTransport, CONFIG_OFFSET, MAGIC, VENDOR_ID};
use super::queue::{need_event, QueueError, Virtqueue};
use super::VirtioDevice;
use crate::bus::Ctx;
use core::cell::RefCell;
use guest_x86::mem::{GuestMemory, MemError, VecMemory};
use proptest::prelude::*;

const RAM: u64 = 1 << 20;
const LINE: u8 = 16;
const DESC: u64 = 0x1_0000;
const DRIVER: u64 = 0x2_0000;
const DEVICE: u64 = 0x3_0000;

/// A device of one queue that copies each chain's readable bytes into its
/// writable buffers, for transport tests.
struct Echo {
    resets: u32,
    activated: Option<u64>,
}

impl VirtioDevice for Echo {
    fn device_id(&self) -> u32 {
        0x7E57
    }
    fn kind(&self) -> &'static str {
        "echo"
    }
    fn features(&self) -> u64 {
        1 << 3
    }
    fn queue_max_sizes(&self) -> &'static [u16] {
        &[8]
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = 0xC0u8.wrapping_add(offset as u8 + i as u8);
        }
    }
    fn activate(&mut self, features: u64) {
        self.activated = Some(features);
    }
    fn reset(&mut self) {
        self.resets += 1;
        self.activated = None;
    }
    fn serve(&mut self, index: usize, queues: &mut [Virtqueue], mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        let q = &mut queues[index];
        while let Some(chain) = q.pop(mem)? {
            let mut data = Vec::new();
            for s in chain.readable() {
                let mut buf = vec![0; s.len as usize];
                mem.read(s.addr, &mut buf).map_err(|_| QueueError::Device("read"))?;
                data.extend(buf);
            }
            let mut written = 0usize;
            for s in chain.writable() {
                let n = (s.len as usize).min(data.len() - written);
                mem.write(s.addr, &data[written..written + n]).map_err(|_| QueueError::Device("write"))?;
                written += n;
            }
            q.push_used(mem, chain.head, written as u32)?;
        }
        Ok(())
    }
}

fn transport() -> MmioTransport<Echo> {
    MmioTransport::new(Echo { resets: 0, activated: None }, 0xFEB0_0000, LINE, RAM)
}

fn rd(t: &mut MmioTransport<Echo>, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(offset, &mut b);
    u32::from_le_bytes(b)
}

fn wr(t: &mut MmioTransport<Echo>, cx: &mut Ctx, offset: u64, value: u32) {
    t.write(offset, &value.to_le_bytes(), cx, "vmT");
}

/// Linux's probe up to DRIVER_OK, accepting `features`, with queue 0 at
/// DESC/DRIVER/DEVICE of `size` entries.
fn bring_up(t: &mut MmioTransport<Echo>, cx: &mut Ctx, features: u64, size: u32) {
    wr(t, cx, reg::STATUS, 0);
    wr(t, cx, reg::STATUS, u32::from(status::ACKNOWLEDGE));
    wr(t, cx, reg::STATUS, u32::from(status::ACKNOWLEDGE | status::DRIVER));
    wr(t, cx, reg::DRIVER_FEATURES_SEL, 0);
    wr(t, cx, reg::DRIVER_FEATURES, features as u32);
    wr(t, cx, reg::DRIVER_FEATURES_SEL, 1);
    wr(t, cx, reg::DRIVER_FEATURES, (features >> 32) as u32);
    wr(t, cx, reg::STATUS, u32::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK));
    wr(t, cx, reg::QUEUE_SEL, 0);
    wr(t, cx, reg::QUEUE_NUM, size);
    wr(t, cx, reg::QUEUE_DESC_LOW, DESC as u32);
    wr(t, cx, reg::QUEUE_DESC_HIGH, 0);
    wr(t, cx, reg::QUEUE_DRIVER_LOW, DRIVER as u32);
    wr(t, cx, reg::QUEUE_DRIVER_HIGH, 0);
    wr(t, cx, reg::QUEUE_DEVICE_LOW, DEVICE as u32);
    wr(t, cx, reg::QUEUE_DEVICE_HIGH, 0);
    wr(t, cx, reg::QUEUE_READY, 1);
    wr(t, cx, reg::STATUS, u32::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK));
}

const ALL: u64 = feature::VERSION_1 | feature::RING_EVENT_IDX;

fn put_desc(mem: &mut VecMemory, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let at = table + u64::from(i) * DESC_SIZE;
    mem.write_u64(at, addr).unwrap();
    mem.write_u32(at + 8, len).unwrap();
    mem.write(at + 12, &flags.to_le_bytes()).unwrap();
    mem.write(at + 14, &next.to_le_bytes()).unwrap();
}

/// Makes chain `head` available as the driver's `n`-th buffer (n from 0).
fn offer(mem: &mut VecMemory, size: u16, n: u16, head: u16) {
    mem.write(DRIVER + 4 + 2 * u64::from(n % size), &head.to_le_bytes()).unwrap();
    mem.write(DRIVER + 2, &(n + 1).to_le_bytes()).unwrap();
}

fn u16_at(mem: &VecMemory, gpa: u64) -> u16 {
    let mut b = [0u8; 2];
    mem.read(gpa, &mut b).unwrap();
    u16::from_le_bytes(b)
}

#[test]
fn identity_registers_read_as_virtio_mmio_version_2() {
    let mut t = transport();
    assert_eq!(rd(&mut t, reg::MAGIC), MAGIC);
    assert_eq!(rd(&mut t, reg::VERSION), 2);
    assert_eq!(rd(&mut t, reg::DEVICE_ID), 0x7E57);
    assert_eq!(rd(&mut t, reg::VENDOR_ID), VENDOR_ID);
    let mut two = [0xFFu8; 2];
    t.read(reg::MAGIC, &mut two);
    assert_eq!(two, [0, 0], "registers take 32-bit reads only");
    let mut cfg = [0u8; 2];
    t.read(CONFIG_OFFSET + 4, &mut cfg);
    assert_eq!(cfg, [0xC4, 0xC5], "configuration space at 0x100, any width");
}

#[test]
fn device_features_show_the_device_bits_and_version_1_and_event_idx() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    wr(&mut t, &mut cx, reg::DEVICE_FEATURES_SEL, 0);
    assert_eq!(rd(&mut t, reg::DEVICE_FEATURES), (1 << 3) | (1 << 29));
    wr(&mut t, &mut cx, reg::DEVICE_FEATURES_SEL, 1);
    assert_eq!(rd(&mut t, reg::DEVICE_FEATURES), 1, "VERSION_1 is bit 32");
    wr(&mut t, &mut cx, reg::DEVICE_FEATURES_SEL, 2);
    assert_eq!(rd(&mut t, reg::DEVICE_FEATURES), 0);
}

#[test]
fn features_ok_sticks_only_for_a_subset_of_the_offer_with_version_1() {
    for (accepted, sticks) in [
        (ALL | (1 << 3), true),
        (feature::VERSION_1, true),
        (feature::RING_EVENT_IDX, false), // a legacy driver
        (ALL | (1 << 5), false),          // a bit not offered
    ] {
        let (mut t, mut cx) = (transport(), Ctx::new());
        bring_up(&mut t, &mut cx, accepted, 8);
        let seen = rd(&mut t, reg::STATUS) as u8;
        assert_eq!(seen & status::FEATURES_OK != 0, sticks, "features {accepted:#x}: status {seen:#x}");
        assert_eq!(seen & status::DRIVER_OK != 0, sticks, "DRIVER_OK needs FEATURES_OK: status {seen:#x}");
        assert_eq!(t.device.activated, sticks.then_some(accepted), "activation");
    }
}

#[test]
fn feature_writes_after_features_ok_are_ignored() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    bring_up(&mut t, &mut cx, ALL, 8);
    wr(&mut t, &mut cx, reg::DRIVER_FEATURES_SEL, 0);
    wr(&mut t, &mut cx, reg::DRIVER_FEATURES, 0);
    assert_eq!(t.negotiated_features(), ALL);
}

#[test]
fn the_driver_cannot_set_or_clear_device_needs_reset() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    wr(&mut t, &mut cx, reg::STATUS, u32::from(status::ACKNOWLEDGE | status::DEVICE_NEEDS_RESET));
    assert_eq!(rd(&mut t, reg::STATUS) as u8, status::ACKNOWLEDGE);
}

#[test]
fn queue_registers_show_the_selected_queue_and_nothing_past_the_last() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    assert_eq!(rd(&mut t, reg::QUEUE_NUM_MAX), 8);
    assert_eq!(rd(&mut t, reg::QUEUE_READY), 0);
    wr(&mut t, &mut cx, reg::QUEUE_SEL, 1);
    assert_eq!(rd(&mut t, reg::QUEUE_NUM_MAX), 0, "queue 1 does not exist");
    wr(&mut t, &mut cx, reg::QUEUE_READY, 1);
    assert_eq!(rd(&mut t, reg::QUEUE_READY), 0);
}

#[test]
fn a_good_queue_setup_becomes_ready_with_the_negotiated_event_index() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    bring_up(&mut t, &mut cx, ALL, 8);
    assert_eq!(rd(&mut t, reg::QUEUE_READY), 1);
    let q = t.queue(0).unwrap();
    assert_eq!((q.size, q.desc, q.driver, q.device, q.event_idx), (8, DESC, DRIVER, DEVICE, true));
    assert!(t.is_live());
}

#[test]
fn a_bad_queue_setup_puts_the_device_into_needs_reset_with_a_config_interrupt() {
    let cases: [(&str, u32, u64); 5] = [
        ("size above the maximum", 16, DESC),
        ("size not a power of two", 6, DESC),
        ("size zero", 0, DESC),
        ("descriptor table misaligned", 8, DESC + 8),
        ("descriptor table outside RAM", 8, RAM - 64),
    ];
    for (what, size, desc) in cases {
        let (mut t, mut cx) = (transport(), Ctx::new());
        wr(&mut t, &mut cx, reg::QUEUE_NUM, size);
        wr(&mut t, &mut cx, reg::QUEUE_DESC_LOW, desc as u32);
        wr(&mut t, &mut cx, reg::QUEUE_DRIVER_LOW, DRIVER as u32);
        wr(&mut t, &mut cx, reg::QUEUE_DEVICE_LOW, DEVICE as u32);
        wr(&mut t, &mut cx, reg::QUEUE_READY, 1);
        assert_eq!(rd(&mut t, reg::QUEUE_READY), 0, "{what}: queue stays unready");
        assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0, "{what}: status {:#x}", t.status());
        assert_eq!(rd(&mut t, reg::INTERRUPT_STATUS), irq::CONFIG_CHANGE, "{what}");
        assert_eq!(cx.lines() & (1 << LINE), 1 << LINE, "{what}: line raised");
    }
}

#[test]
fn setup_writes_to_a_ready_queue_are_ignored_until_it_is_unready() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    bring_up(&mut t, &mut cx, ALL, 8);
    wr(&mut t, &mut cx, reg::QUEUE_DESC_LOW, 0x4000);
    assert_eq!(t.queue(0).unwrap().desc, DESC);
    wr(&mut t, &mut cx, reg::QUEUE_READY, 0);
    assert_eq!(rd(&mut t, reg::QUEUE_READY), 0);
    wr(&mut t, &mut cx, reg::QUEUE_DESC_LOW, 0x4000);
    assert_eq!(t.queue(0).unwrap().desc, 0x4000);
}

#[test]
fn writing_status_zero_resets_device_queues_features_and_interrupt() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    let mut mem = VecMemory::new(RAM as usize);
    bring_up(&mut t, &mut cx, ALL, 8);
    put_desc(&mut mem, DESC, 0, 0x8000, 4, 0, 0);
    offer(&mut mem, 8, 0, 0);
    wr(&mut t, &mut cx, reg::QUEUE_NOTIFY, 0);
    t.serve_pending(&mut mem, &mut cx, "vmT");
    assert_ne!(rd(&mut t, reg::INTERRUPT_STATUS), 0);
    let resets_before = t.device.resets;
    wr(&mut t, &mut cx, reg::STATUS, 0);
    assert_eq!(t.device.resets, resets_before + 1);
    assert_eq!(rd(&mut t, reg::STATUS), 0);
    assert_eq!(rd(&mut t, reg::INTERRUPT_STATUS), 0);
    assert_eq!(cx.lines() & (1 << LINE), 0, "line lowered");
    assert_eq!(rd(&mut t, reg::QUEUE_READY), 0);
    assert_eq!(t.negotiated_features(), 0);
    assert_eq!(*t.queue(0).unwrap(), Virtqueue::new(8));
}

#[test]
fn a_notification_is_served_and_the_used_buffer_interrupt_acknowledged() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    let mut mem = VecMemory::new(RAM as usize);
    bring_up(&mut t, &mut cx, ALL, 8);
    mem.write(0x8000, b"ping").unwrap();
    put_desc(&mut mem, DESC, 3, 0x8000, 4, desc_flags::NEXT, 5);
    put_desc(&mut mem, DESC, 5, 0x9000, 16, desc_flags::WRITE, 0);
    offer(&mut mem, 8, 0, 3);
    wr(&mut t, &mut cx, reg::QUEUE_NOTIFY, 0);
    assert!(t.has_pending(), "recorded, not served, by the register write");
    t.serve_pending(&mut mem, &mut cx, "vmT");
    let mut echoed = [0u8; 4];
    mem.read(0x9000, &mut echoed).unwrap();
    assert_eq!(&echoed, b"ping");
    assert_eq!(u16_at(&mem, DEVICE + 2), 1, "used index");
    assert_eq!(mem.read_u32(DEVICE + 4).unwrap(), 3, "used id");
    assert_eq!(mem.read_u32(DEVICE + 8).unwrap(), 4, "used len");
    assert_eq!(rd(&mut t, reg::INTERRUPT_STATUS), irq::USED_BUFFER);
    assert_ne!(cx.lines() & (1 << LINE), 0);
    wr(&mut t, &mut cx, reg::INTERRUPT_ACK, irq::USED_BUFFER);
    assert_eq!(cx.lines() & (1 << LINE), 0, "acknowledged: line low");
}

#[test]
fn a_notification_before_driver_ok_or_for_a_missing_queue_is_dropped() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    wr(&mut t, &mut cx, reg::QUEUE_NOTIFY, 0);
    assert!(!t.has_pending());
    bring_up(&mut t, &mut cx, ALL, 8);
    wr(&mut t, &mut cx, reg::QUEUE_NOTIFY, 1);
    wr(&mut t, &mut cx, reg::QUEUE_NOTIFY, 99);
    assert!(!t.has_pending());
}

#[test]
fn a_malformed_chain_needs_reset_and_the_device_then_serves_nothing() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    let mut mem = VecMemory::new(RAM as usize);
    bring_up(&mut t, &mut cx, ALL, 8);
    // A loop: 0 -> 1 -> 0.
    put_desc(&mut mem, DESC, 0, 0x8000, 4, desc_flags::NEXT, 1);
    put_desc(&mut mem, DESC, 1, 0x8000, 4, desc_flags::NEXT, 0);
    offer(&mut mem, 8, 0, 0);
    wr(&mut t, &mut cx, reg::QUEUE_NOTIFY, 0);
    t.serve_pending(&mut mem, &mut cx, "vmT");
    assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(rd(&mut t, reg::INTERRUPT_STATUS) & irq::CONFIG_CHANGE, irq::CONFIG_CHANGE);
    assert!(!t.is_live());
    wr(&mut t, &mut cx, reg::QUEUE_NOTIFY, 0);
    assert!(!t.has_pending(), "no service until reset");
    // The driver resets and starts again: the device serves again.
    bring_up(&mut t, &mut cx, ALL, 8);
    assert!(t.is_live());
}

#[test]
fn event_idx_the_device_asks_for_the_next_notification_and_interrupts_only_past_used_event() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    let mut mem = VecMemory::new(RAM as usize);
    bring_up(&mut t, &mut cx, ALL, 8);
    let used_event = DRIVER + 4 + 2 * 8;
    let avail_event = DEVICE + 4 + 8 * 8;
    // The driver wants an interrupt only once the used index passes 1.
    mem.write(used_event, &1u16.to_le_bytes()).unwrap();
    for i in 0..2u16 {
        put_desc(&mut mem, DESC, i, 0x8000, 0, 0, 0);
        offer(&mut mem, 8, i, i);
        wr(&mut t, &mut cx, reg::QUEUE_NOTIFY, 0);
        t.serve_pending(&mut mem, &mut cx, "vmT");
        assert_eq!(u16_at(&mem, avail_event), i + 1, "avail_event after buffer {i}");
        let expected = if i == 0 { 0 } else { irq::USED_BUFFER };
        assert_eq!(rd(&mut t, reg::INTERRUPT_STATUS), expected, "after buffer {i}");
    }
}

#[test]
fn without_event_idx_no_interrupt_flag_suppresses_the_interrupt() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    let mut mem = VecMemory::new(RAM as usize);
    bring_up(&mut t, &mut cx, feature::VERSION_1, 8);
    mem.write(DRIVER, &1u16.to_le_bytes()).unwrap();
    put_desc(&mut mem, DESC, 0, 0x8000, 0, 0, 0);
    offer(&mut mem, 8, 0, 0);
    wr(&mut t, &mut cx, reg::QUEUE_NOTIFY, 0);
    t.serve_pending(&mut mem, &mut cx, "vmT");
    assert_eq!(u16_at(&mem, DEVICE + 2), 1, "served");
    assert_eq!(rd(&mut t, reg::INTERRUPT_STATUS), 0);
}

#[test]
fn an_available_index_far_ahead_of_the_device_needs_reset() {
    let (mut t, mut cx) = (transport(), Ctx::new());
    let mut mem = VecMemory::new(RAM as usize);
    bring_up(&mut t, &mut cx, ALL, 8);
    mem.write(DRIVER + 2, &9u16.to_le_bytes()).unwrap();
    wr(&mut t, &mut cx, reg::QUEUE_NOTIFY, 0);
    t.serve_pending(&mut mem, &mut cx, "vmT");
    assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn need_event_matches_the_spec_formula_across_wraparound() {
    assert!(need_event(0, 1, 0));
    assert!(!need_event(1, 1, 0));
    assert!(need_event(0xFFFF, 0, 0xFFFE));
    assert!(!need_event(5, 3, 1));
    assert!(need_event(5, 6, 1));
}

#[test]
fn walker_splits_readable_and_writable_and_refuses_each_malformation() {
    let mut mem = VecMemory::new(RAM as usize);
    put_desc(&mut mem, DESC, 0, 0x100, 16, desc_flags::NEXT, 2);
    put_desc(&mut mem, DESC, 2, 0x200, 512, desc_flags::NEXT | desc_flags::WRITE, 1);
    put_desc(&mut mem, DESC, 1, 0x400, 1, desc_flags::WRITE, 0);
    let c = walk(&mem, DESC, 4, 0).unwrap();
    assert_eq!((c.readable().len(), c.writable().len(), c.readable_len(), c.writable_len()), (1, 2, 16, 513));
    let cases: [(u16, u64, u32, u16, u16, ChainError); 5] = [
        (0, 0x100, 1, desc_flags::NEXT, 7, ChainError::IndexOutOfRange { index: 7, size: 4 }),
        (0, 0x100, 1, desc_flags::NEXT, 0, ChainError::TooLong { size: 4 }),
        (0, RAM - 4, 8, 0, 0, ChainError::OutsideRam { index: 0, addr: RAM - 4, len: 8 }),
        (0, u64::MAX - 3, 8, 0, 0, ChainError::OutsideRam { index: 0, addr: u64::MAX - 3, len: 8 }),
        (0, 0x100, 16, desc_flags::INDIRECT, 0, ChainError::Indirect { index: 0 }),
    ];
    for (i, addr, len, flags, next, expected) in cases {
        put_desc(&mut mem, DESC, i, addr, len, flags, next);
        assert_eq!(walk(&mem, DESC, 4, 0), Err(expected));
    }
    put_desc(&mut mem, DESC, 0, 0x100, 1, desc_flags::NEXT | desc_flags::WRITE, 1);
    put_desc(&mut mem, DESC, 1, 0x100, 1, 0, 0);
    assert_eq!(walk(&mem, DESC, 4, 0), Err(ChainError::ReadableAfterWritable { index: 1 }));
    assert_eq!(walk(&mem, DESC, 4, 4), Err(ChainError::IndexOutOfRange { index: 4, size: 4 }));
}

/// Guest memory that records every access, to check the walker reads the
/// descriptor table only.
struct Watched {
    mem: VecMemory,
    reads: RefCell<Vec<(u64, usize)>>,
}

impl GuestMemory for Watched {
    fn size(&self) -> u64 {
        self.mem.size()
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.reads.borrow_mut().push((gpa, buf.len()));
        self.mem.read(gpa, buf)
    }
    fn write(&mut self, _gpa: u64, _data: &[u8]) -> Result<(), MemError> {
        panic!("the walker wrote guest memory");
    }
    fn zero(&mut self, _gpa: u64, _len: u64) -> Result<(), MemError> {
        panic!("the walker wrote guest memory");
    }
}

/// A descriptor: mostly small indices and addresses near or past the end
/// of RAM, sometimes anything.
fn hostile_desc() -> impl Strategy<Value = (u64, u32, u16, u16)> {
    let addr = prop_oneof![0u64..RAM, (RAM - 64)..(RAM + 64), any::<u64>(), Just(u64::MAX)];
    let len = prop_oneof![0u32..4096, any::<u32>()];
    let flags = prop_oneof![0u16..8, any::<u16>()];
    let next = prop_oneof![0u16..20, any::<u16>()];
    (addr, len, flags, next)
}

proptest! {
    #![proptest_config(crate::proptest_cases::cases(512))]

    #[test]
    fn walker_on_random_tables_never_panics_reads_only_the_table_and_returns_ram_segments(
        size_log in 0u32..9,
        head in prop_oneof![0u16..20, any::<u16>()],
        descs in prop::collection::vec(hostile_desc(), 1..=QUEUE_MAX as usize),
        table in prop_oneof![Just(DESC), Just(RAM - 16 * 256), 0u64..RAM],
    ) {
        let size = 1u16 << size_log;
        let mut mem = VecMemory::new(RAM as usize);
        let table = table & !15;
        for (i, &(addr, len, flags, next)) in descs.iter().enumerate() {
            let at = table + i as u64 * DESC_SIZE;
            if at + DESC_SIZE <= RAM {
                put_desc(&mut mem, table, i as u16, addr, len, flags, next);
            }
        }
        let watched = Watched { mem, reads: RefCell::new(Vec::new()) };
        let result = walk(&watched, table, size, head);
        for &(gpa, len) in watched.reads.borrow().iter() {
            let inside = gpa >= table && gpa + len as u64 <= table + u64::from(size) * DESC_SIZE;
            prop_assert!(inside, "read [{gpa:#x}, +{len}) outside the table at {table:#x} of {size}");
        }
        if let Ok(chain) = result {
            prop_assert!(chain.readable().len() + chain.writable().len() <= usize::from(size));
            for s in chain.readable().iter().chain(chain.writable()) {
                prop_assert!(s.addr.checked_add(u64::from(s.len)).is_some_and(|e| e <= RAM), "{s:?}");
            }
        }
    }

    #[test]
    fn a_queue_driven_by_random_rings_never_panics_and_uses_only_ram(
        descs in prop::collection::vec(hostile_desc(), 8),
        ring in prop::collection::vec(any::<u16>(), 8),
        avail_idx in any::<u16>(),
        used_event in any::<u16>(),
    ) {
        let (mut t, mut cx) = (transport(), Ctx::new());
        let mut mem = VecMemory::new(RAM as usize);
        bring_up(&mut t, &mut cx, ALL, 8);
        for (i, &(addr, len, flags, next)) in descs.iter().enumerate() {
            put_desc(&mut mem, DESC, i as u16, addr, len, flags, next);
        }
        for (i, &head) in ring.iter().enumerate() {
            mem.write(DRIVER + 4 + 2 * i as u64, &head.to_le_bytes()).unwrap();
        }
        mem.write(DRIVER + 2, &avail_idx.to_le_bytes()).unwrap();
        mem.write(DRIVER + 4 + 16, &used_event.to_le_bytes()).unwrap();
        wr(&mut t, &mut cx, reg::QUEUE_NOTIFY, 0);
        t.serve_pending(&mut mem, &mut cx, "vmT");
        let used = u16_at(&mem, DEVICE + 2);
        prop_assert!(used <= 8 && used <= avail_idx.max(used), "used index {used} of avail {avail_idx}");
        prop_assert_eq!(t.status() & status::DEVICE_NEEDS_RESET != 0, avail_idx > 8 || used < avail_idx);
    }
}

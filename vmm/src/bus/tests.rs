//! The buses on their own, with devices that record what reaches them.
use super::*;

/// One access as a device saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Read { base: u64, offset: u64, len: usize },
    Write { base: u64, offset: u64, data: Vec<u8> },
}

/// Answers every read byte with `tag + offset of the byte`, and records.
#[derive(Default)]
struct Recorder {
    tag: u8,
    timer: bool,
    seen: Vec<Seen>,
}

impl BusDevice for Recorder {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8], _cx: &mut Ctx) {
        self.seen.push(Seen::Read { base, offset, len: data.len() });
        read_bytes(offset, data, |at| self.tag.wrapping_add(at as u8));
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8], _cx: &mut Ctx) {
        self.seen.push(Seen::Write { base, offset, data: data.to_vec() });
    }

    fn is_timer(&self) -> bool {
        self.timer
    }
}

#[derive(Default)]
struct Two {
    a: Recorder,
    b: Recorder,
}

fn a(d: &mut Two) -> &mut dyn BusDevice {
    &mut d.a
}

fn b(d: &mut Two) -> &mut dyn BusDevice {
    &mut d.b
}

fn two() -> Two {
    Two { a: Recorder { tag: 0x10, ..Default::default() }, b: Recorder { tag: 0x40, ..Default::default() } }
}

#[test]
fn overlapping_registration_is_refused_naming_both_ranges() {
    let mut bus: PortBus<Two> = PortBus::new();
    bus.register(&[Range::new(0x3F8, 8)], a).unwrap();
    for (range, existing) in [
        (Range::new(0x3F8, 1), Range::new(0x3F8, 8)),
        (Range::new(0x3FF, 2), Range::new(0x3F8, 8)),
        (Range::new(0x3F0, 9), Range::new(0x3F8, 8)),
        (Range::new(0x300, 0x200), Range::new(0x3F8, 8)),
    ] {
        let got = bus.register(&[range], b);
        assert_eq!(got, Err(BusError::Overlap { range, existing }), "registering {range}");
    }
    // Touching is not overlapping.
    assert_eq!(bus.register(&[Range::new(0x3F0, 8), Range::new(0x400, 1)], b), Ok(()));
}

#[test]
fn overlap_between_two_ranges_of_one_device_is_refused() {
    let mut bus: PortBus<Two> = PortBus::new();
    let got = bus.register(&[Range::new(0x20, 2), Range::new(0x21, 1)], a);
    assert_eq!(got, Err(BusError::Overlap { range: Range::new(0x21, 1), existing: Range::new(0x20, 2) }));
}

#[test]
fn refused_registration_leaves_no_range_behind() {
    let mut bus: PortBus<Two> = PortBus::new();
    bus.register(&[Range::new(0x60, 1)], a).unwrap();
    let got = bus.register(&[Range::new(0x40, 4), Range::new(0x60, 1)], b);
    assert!(matches!(got, Err(BusError::Overlap { .. })), "expected an overlap, saw {got:?}");
    let mut d = two();
    let mut cx = Ctx::new();
    let mut data = [0u8; 1];
    bus.read(&mut d, 0x40, &mut data, &mut cx);
    assert_eq!(data, [0xFF], "port 0x40 must have stayed unassigned");
    assert_eq!(d.b.seen, [], "device b must not be reachable");
}

#[test]
fn empty_and_out_of_space_ranges_are_refused() {
    let mut ports: PortBus<Two> = PortBus::new();
    let empty = Range::new(0x100, 0);
    assert_eq!(ports.register(&[empty], a), Err(BusError::Empty(empty)));
    let past = Range::new(0xFFFF, 2);
    assert_eq!(ports.register(&[past], a), Err(BusError::OutOfSpace { range: past, bus_last: 0xFFFF }));
    assert_eq!(ports.register(&[Range::port(0xFFFF)], a), Ok(()), "the last port is a port");
    let mut mmio: MmioBus<Two> = MmioBus::new();
    let wraps = Range::new(u64::MAX, 2);
    assert_eq!(mmio.register(&[wraps], a), Err(BusError::OutOfSpace { range: wraps, bus_last: u64::MAX }));
}

#[test]
fn a_full_bus_refuses_more_ranges() {
    let mut bus: PortBus<Two> = PortBus::new();
    for i in 0..PORT_RANGES as u64 {
        bus.register(&[Range::new(i * 4, 2)], a).unwrap();
    }
    let got = bus.register(&[Range::new(0x1000, 1)], b);
    assert_eq!(got, Err(BusError::Full { capacity: PORT_RANGES }));
}

#[test]
fn a_device_gets_its_whole_part_of_an_access_at_its_offset() {
    let mut bus: PortBus<Two> = PortBus::new();
    bus.register(&[Range::new(0x20, 2), Range::new(0xA0, 2)], a).unwrap();
    let (mut d, mut cx) = (two(), Ctx::new());
    let mut data = [0u8; 2];
    bus.read(&mut d, 0xA0, &mut data, &mut cx);
    assert_eq!(data, [0x10, 0x11]);
    bus.write(&mut d, 0x21, &[0x5A], &mut cx);
    let expected =
        [Seen::Read { base: 0xA0, offset: 0, len: 2 }, Seen::Write { base: 0x20, offset: 1, data: vec![0x5A] }];
    assert_eq!(d.a.seen, expected);
}

#[test]
fn a_wide_access_splits_where_devices_and_holes_begin() {
    let mut bus: PortBus<Two> = PortBus::new();
    bus.register(&[Range::new(0x3F8, 8)], a).unwrap();
    bus.register(&[Range::port(0x401)], b).unwrap();
    let (mut d, mut cx) = (two(), Ctx::new());
    // 0x3FE and 0x3FF: device a; 0x400: nobody; 0x401: device b.
    let mut data = [0u8; 4];
    bus.read(&mut d, 0x3FE, &mut data, &mut cx);
    assert_eq!(data, [0x16, 0x17, 0xFF, 0x40]);
    assert_eq!(d.a.seen, [Seen::Read { base: 0x3F8, offset: 6, len: 2 }]);
    assert_eq!(d.b.seen, [Seen::Read { base: 0x401, offset: 0, len: 1 }]);
    bus.write(&mut d, 0x3FF, &[1, 2, 3, 4], &mut cx);
    assert_eq!(d.a.seen[1], Seen::Write { base: 0x3F8, offset: 7, data: vec![1] });
    assert_eq!(d.b.seen[1], Seen::Write { base: 0x401, offset: 0, data: vec![3] });
    assert_eq!(
        bus.unassigned_ports(),
        &[UnassignedPort { port: 0x400, count: 2 }],
        "each access counts once, at its first unassigned port"
    );
}

#[test]
fn an_access_at_the_last_port_wraps_to_port_zero() {
    let mut bus: PortBus<Two> = PortBus::new();
    bus.register(&[Range::port(0)], a).unwrap();
    let (mut d, mut cx) = (two(), Ctx::new());
    let mut data = [0u8; 2];
    bus.read(&mut d, 0xFFFF, &mut data, &mut cx);
    assert_eq!(data, [0xFF, 0x10]);
    assert_eq!(bus.unassigned_ports(), &[UnassignedPort { port: 0xFFFF, count: 1 }]);
}

#[test]
fn unassigned_tally_keeps_the_first_ports_and_counts_the_rest() {
    let mut bus: PortBus<Two> = PortBus::new();
    let (mut d, mut cx) = (two(), Ctx::new());
    for port in 0x1000..0x1020u16 {
        bus.read(&mut d, port, &mut [0u8; 1], &mut cx);
    }
    assert_eq!(bus.unassigned_accesses(), 32);
    assert_eq!(bus.unassigned_ports().len(), UNASSIGNED_PORT_SLOTS);
    assert_eq!(bus.unassigned_ports()[0], UnassignedPort { port: 0x1000, count: 1 });
}

#[test]
fn mmio_lookup_finds_the_range_and_hands_the_access_whole() {
    let mut bus: MmioBus<Two> = MmioBus::new();
    bus.register(&[Range::new(0xFEE0_0000, 0x1000), Range::new(0xFEC0_0000, 0x1000)], a).unwrap();
    bus.register(&[Range::new(0xFEBF_F000, 0x1000)], b).unwrap();
    assert!(bus.find(0xFEBF_EFFF).is_none());
    assert!(bus.find(0xFEE0_1000).is_none());
    let (mut d, mut cx) = (two(), Ctx::new());
    let m = bus.find(0xFEE0_0030).expect("the LAPIC page is mapped");
    let mut data = [0u8; 8];
    MmioBus::read(m, &mut d, 0xFEE0_0030, &mut data, &mut cx);
    assert_eq!(d.a.seen, [Seen::Read { base: 0xFEE0_0000, offset: 0x30, len: 8 }]);
    let m = bus.find(0xFEBF_FFFF).expect("the info page is mapped");
    MmioBus::write(m, &mut d, 0xFEBF_F008, &[1, 2, 3, 4], &mut cx);
    assert_eq!(d.b.seen, [Seen::Write { base: 0xFEBF_F000, offset: 8, data: vec![1, 2, 3, 4] }]);
}

#[derive(Default)]
struct Many {
    timers: [Recorder; MAX_TIMERS + 1],
}

#[test]
fn wiring_notes_timers_and_refuses_more_than_it_can_keep() {
    let mut d = Many::default();
    for t in &mut d.timers {
        t.timer = true;
    }
    let mut buses: Buses<Many> = Buses::new();
    let mut w = Wiring::new(&mut d, &mut buses);
    let refs: [DeviceRef<Many>; MAX_TIMERS + 1] = [
        |d| &mut d.timers[0],
        |d| &mut d.timers[1],
        |d| &mut d.timers[2],
        |d| &mut d.timers[3],
        |d| &mut d.timers[4],
        |d| &mut d.timers[5],
        |d| &mut d.timers[6],
        |d| &mut d.timers[7],
        |d| &mut d.timers[8],
    ];
    for (i, r) in refs.iter().take(MAX_TIMERS).enumerate() {
        w.ports(&[Range::port(i as u16)], *r).unwrap();
    }
    let last = w.mmio(&[Range::new(0x1000, 1)], refs[MAX_TIMERS]);
    assert_eq!(last, Err(BusError::TooManyTimers { capacity: MAX_TIMERS }));
    assert_eq!(buses.timers().len(), MAX_TIMERS);
    assert!(buses.mmio.find(0x1000).is_none(), "the refused timer must not be on the bus");
}

#[test]
fn ctx_keeps_line_levels_pulses_and_the_first_request() {
    let mut cx = Ctx::new();
    cx.set_irq(4, true);
    cx.set_irq(8, true);
    cx.set_irq(4, false);
    cx.pulse_irq(0);
    assert_eq!(cx.lines(), 1 << 8);
    assert_eq!(cx.take_pulses(), 1);
    assert_eq!(cx.take_pulses(), 0, "pulses are taken once");
    cx.request(BoardEvent::PowerOff);
    cx.request(BoardEvent::Reset);
    assert_eq!(cx.take_event(), Some(BoardEvent::PowerOff));
    assert_eq!(cx.take_event(), None);
    assert!(!cx.take_timers_changed());
    cx.timers_changed();
    assert!(cx.take_timers_changed());
}

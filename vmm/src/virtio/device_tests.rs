//! Host tests of virtio-blk and virtio-console request handling, on a
//! fake guest memory with hand-made rings.
use super::blk::{self, Blk, Image};
use super::chain::{desc_flags, DESC_SIZE};
use super::console::{Console, RECEIVEQ, TRANSMITQ};
use super::queue::{QueueError, Virtqueue};
use super::VirtioDevice;
use guest_x86::mem::{GuestMemory, VecMemory};

const RAM: usize = 1 << 20;
const DESC: u64 = 0x1_0000;
const DRIVER: u64 = 0x2_0000;
const DEVICE: u64 = 0x3_0000;
const HEADER: u64 = 0x4_0000;
const DATA: u64 = 0x5_0000;
const STATUS: u64 = 0x6_0000;

/// A ready queue of 16 entries at DESC/DRIVER/DEVICE.
fn queue() -> Virtqueue {
    let mut q = Virtqueue::new(16);
    (q.size, q.desc, q.driver, q.device, q.ready) = (16, DESC, DRIVER, DEVICE, true);
    q
}

/// Puts a chain of `(addr, len, device-writable)` buffers at descriptors
/// `first..` and makes it the driver's `n`-th available buffer.
fn offer(mem: &mut VecMemory, n: u16, first: u16, buffers: &[(u64, u32, bool)]) {
    for (i, &(addr, len, writable)) in buffers.iter().enumerate() {
        let index = first + i as u16;
        let at = DESC + u64::from(index) * DESC_SIZE;
        let more = if i + 1 < buffers.len() { desc_flags::NEXT } else { 0 };
        let flags = more | if writable { desc_flags::WRITE } else { 0 };
        mem.write_u64(at, addr).unwrap();
        mem.write_u32(at + 8, len).unwrap();
        mem.write(at + 12, &flags.to_le_bytes()).unwrap();
        mem.write(at + 14, &(index + 1).to_le_bytes()).unwrap();
    }
    mem.write(DRIVER + 4 + 2 * u64::from(n % 16), &first.to_le_bytes()).unwrap();
    mem.write(DRIVER + 2, &(n + 1).to_le_bytes()).unwrap();
}

fn header(mem: &mut VecMemory, kind: u32, sector: u64) {
    mem.write_u32(HEADER, kind).unwrap();
    mem.write_u32(HEADER + 4, 0).unwrap();
    mem.write_u64(HEADER + 8, sector).unwrap();
}

/// The used ring's entry `n`: (id, len).
fn used(mem: &VecMemory, n: u64) -> (u32, u32) {
    (mem.read_u32(DEVICE + 4 + 8 * n).unwrap(), mem.read_u32(DEVICE + 8 + 8 * n).unwrap())
}

fn status_byte(mem: &VecMemory) -> u8 {
    let mut b = [0u8];
    mem.read(STATUS, &mut b).unwrap();
    b[0]
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 512) as u8).collect()
}

fn serve(dev: &mut dyn VirtioDevice, q: &mut Virtqueue, mem: &mut VecMemory) -> Result<(), QueueError> {
    dev.serve(0, core::slice::from_mut(q), mem)
}

#[test]
fn blk_reads_sectors_into_buffers_split_anywhere() {
    let disk = pattern(8 * 512);
    let mut d = Blk::new(Image::ReadOnly(&disk), "s");
    let (mut q, mut mem) = (queue(), VecMemory::new(RAM));
    header(&mut mem, blk::req::IN, 2);
    offer(&mut mem, 0, 0, &[(HEADER, 16, false), (DATA, 700, true), (DATA + 0x1000, 324, true), (STATUS, 1, true)]);
    serve(&mut d, &mut q, &mut mem).unwrap();
    assert_eq!(status_byte(&mem), blk::status::OK);
    assert_eq!(used(&mem, 0), (0, 1025), "1024 data bytes and the status");
    let mut got = vec![0u8; 1024];
    mem.read(DATA, &mut got[..700]).unwrap();
    mem.read(DATA + 0x1000, &mut got[700..]).unwrap();
    assert!(got == disk[1024..2048], "sectors 2 and 3");
}

#[test]
fn blk_writes_persist_in_the_image_and_read_back() {
    let mut disk = vec![0u8; 8 * 512];
    let mut d = Blk::new(Image::ReadWrite(&mut disk), "s");
    let (mut q, mut mem) = (queue(), VecMemory::new(RAM));
    let data = pattern(512);
    mem.write(DATA, &data).unwrap();
    header(&mut mem, blk::req::OUT, 5);
    offer(&mut mem, 0, 0, &[(HEADER, 16, false), (DATA, 512, false), (STATUS, 1, true)]);
    serve(&mut d, &mut q, &mut mem).unwrap();
    assert_eq!((status_byte(&mem), used(&mem, 0)), (blk::status::OK, (0, 1)));
    assert!(d.bytes()[5 * 512..6 * 512] == data[..]);
    assert!(d.bytes()[..5 * 512].iter().all(|&b| b == 0), "other sectors untouched");
}

#[test]
fn blk_refuses_bad_requests_with_a_status_and_keeps_serving() {
    let mut disk = pattern(4 * 512);
    let before = disk.clone();
    let ro_copy = disk.clone();
    let cases: [(&str, bool, u32, u64, u32, u8); 6] = [
        ("write to a read-only disk", true, blk::req::OUT, 0, 512, blk::status::IOERR),
        ("read past the end", false, blk::req::IN, 3, 1024, blk::status::IOERR),
        ("sector overflowing bytes", false, blk::req::IN, u64::MAX / 2, 512, blk::status::IOERR),
        ("not whole sectors", false, blk::req::IN, 0, 100, blk::status::IOERR),
        ("write past the end", false, blk::req::OUT, 4, 512, blk::status::IOERR),
        ("unknown type", false, 99, 0, 512, blk::status::UNSUPP),
    ];
    for (what, read_only, kind, sector, len, expected) in cases {
        let mut d = if read_only {
            Blk::new(Image::ReadOnly(&ro_copy), "s")
        } else {
            Blk::new(Image::ReadWrite(&mut disk), "s")
        };
        let (mut q, mut mem) = (queue(), VecMemory::new(RAM));
        header(&mut mem, kind, sector);
        let data_writable = kind == blk::req::IN;
        offer(&mut mem, 0, 0, &[(HEADER, 16, false), (DATA, len, data_writable), (STATUS, 1, true)]);
        serve(&mut d, &mut q, &mut mem).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(status_byte(&mem), expected, "{what}");
        assert_eq!(q.next_used(), 1, "{what}: completed");
    }
    assert_eq!(disk, before, "no refused write changed the disk");
}

#[test]
fn blk_short_header_is_an_io_error_and_a_chain_without_status_needs_reset() {
    let disk = pattern(512);
    let mut d = Blk::new(Image::ReadOnly(&disk), "s");
    let (mut q, mut mem) = (queue(), VecMemory::new(RAM));
    offer(&mut mem, 0, 0, &[(HEADER, 8, false), (STATUS, 1, true)]);
    serve(&mut d, &mut q, &mut mem).unwrap();
    assert_eq!(status_byte(&mem), blk::status::IOERR);
    offer(&mut mem, 1, 2, &[(HEADER, 16, false)]);
    assert_eq!(serve(&mut d, &mut q, &mut mem), Err(QueueError::Device("request without a status byte")));
}

#[test]
fn blk_flush_succeeds_and_get_id_returns_the_serial() {
    let disk = pattern(512);
    let mut d = Blk::new(Image::ReadOnly(&disk), "vm0-disk0");
    let (mut q, mut mem) = (queue(), VecMemory::new(RAM));
    header(&mut mem, blk::req::FLUSH, 0);
    offer(&mut mem, 0, 0, &[(HEADER, 16, false), (STATUS, 1, true)]);
    serve(&mut d, &mut q, &mut mem).unwrap();
    assert_eq!((status_byte(&mem), used(&mem, 0)), (blk::status::OK, (0, 1)));
    header(&mut mem, blk::req::GET_ID, 0);
    offer(&mut mem, 1, 2, &[(HEADER, 16, false), (DATA, 20, true), (STATUS, 1, true)]);
    serve(&mut d, &mut q, &mut mem).unwrap();
    let mut id = [0u8; 9];
    mem.read(DATA, &mut id).unwrap();
    assert_eq!((&id, status_byte(&mem), used(&mem, 1)), (b"vm0-disk0", blk::status::OK, (2, 21)));
}

#[test]
fn blk_config_space_and_features_describe_the_disk() {
    let disk = vec![0u8; 10 * 512 + 100];
    let ro = Blk::new(Image::ReadOnly(&disk), "s");
    let mut cfg = [0u8; 16];
    ro.read_config(0, &mut cfg);
    assert_eq!(u64::from_le_bytes(cfg[..8].try_into().unwrap()), 10, "capacity in whole sectors");
    assert_eq!(u32::from_le_bytes(cfg[12..16].try_into().unwrap()), blk::SEG_MAX);
    let mut past = [0xFFu8; 4];
    ro.read_config(0x200, &mut past);
    assert_eq!(past, [0; 4]);
    assert_eq!(ro.features(), blk::feature::SEG_MAX | blk::feature::FLUSH | blk::feature::RO);
    let mut copy = disk.clone();
    let rw = Blk::new(Image::ReadWrite(&mut copy), "s");
    assert_eq!(rw.features() & blk::feature::RO, 0);
}

#[test]
fn console_output_is_copied_out_at_drain_and_its_buffers_given_back() {
    let mut c = Console::new();
    let (mut q, mut mem) = (queue(), VecMemory::new(RAM));
    mem.write(DATA, b"hello, ").unwrap();
    mem.write(DATA + 0x100, b"hvc0\n").unwrap();
    offer(&mut mem, 0, 0, &[(DATA, 7, false), (DATA + 0x100, 5, false)]);
    let mut queues = [Virtqueue::default(), q];
    c.serve(TRANSMITQ, &mut queues, &mut mem).unwrap();
    assert!(c.has_output(), "a notification marks output");
    assert_eq!(queues[1].next_used(), 0, "nothing copied before the drain");
    q = queues[1];
    let mut out = Vec::new();
    c.drain_output(&mut q, &mut mem, &mut |b| out.extend_from_slice(b)).unwrap();
    assert_eq!(out, b"hello, hvc0\n");
    assert_eq!((q.next_used(), used(&mem, 0)), (1, (0, 0)));
    assert!(!c.has_output());
}

#[test]
fn console_input_waits_for_receive_buffers_and_fills_them_in_order() {
    let mut c = Console::new();
    let (q, mut mem) = (queue(), VecMemory::new(RAM));
    let mut queues = [q, Virtqueue::default()];
    for b in b"ls -l\n" {
        assert!(c.receive(*b));
    }
    c.serve(RECEIVEQ, &mut queues, &mut mem).unwrap();
    assert_eq!(c.input_len(), 6, "no receive buffer yet");
    offer(&mut mem, 0, 0, &[(DATA, 4, true)]);
    offer(&mut mem, 1, 1, &[(DATA + 0x100, 64, true)]);
    c.serve(RECEIVEQ, &mut queues, &mut mem).unwrap();
    assert_eq!(c.input_len(), 0);
    assert_eq!((used(&mem, 0), used(&mem, 1)), ((0, 4), (1, 2)));
    let (mut a, mut b) = ([0u8; 4], [0u8; 2]);
    mem.read(DATA, &mut a).unwrap();
    mem.read(DATA + 0x100, &mut b).unwrap();
    assert_eq!((&a, &b), (b"ls -", b"l\n"));
}

#[test]
fn console_input_past_its_buffer_is_refused_not_lost_silently() {
    let mut c = Console::new();
    let taken = (0..1000).filter(|&i| c.receive(i as u8)).count();
    assert_eq!(taken, super::console::INPUT_BUFFER);
}

proptest::proptest! {
    #![proptest_config(crate::proptest_cases::cases(256))]

    /// Random requests (any type and sector, buffers of any size, in any
    /// mix of directions) on a read-only and a writable disk: never a
    /// panic; each completes with a status inside its chain or is a queue
    /// error; the read-only disk never changes, and a write changes only
    /// the sectors it names.
    #[test]
    fn blk_random_requests_never_panic_and_touch_only_their_sectors(
        kind in proptest::prop_oneof![0u32..10, proptest::prelude::any::<u32>()],
        sector in proptest::prop_oneof![0u64..20, proptest::prelude::any::<u64>()],
        buffers in proptest::collection::vec((0u32..3000, proptest::prelude::any::<bool>()), 0..6),
        read_only in proptest::prelude::any::<bool>(),
    ) {
        let original = pattern(16 * 512);
        let mut image = original.clone();
        let ro_image = original.clone();
        let mut d = if read_only {
            Blk::new(Image::ReadOnly(&ro_image), "p")
        } else {
            Blk::new(Image::ReadWrite(&mut image), "p")
        };
        let (mut q, mut mem) = (queue(), VecMemory::new(RAM));
        mem.write(DATA, &pattern(0x8000)).unwrap();
        header(&mut mem, kind, sector);
        let mut chain = vec![(HEADER, 16, false)];
        let mut at = DATA;
        for &(len, writable) in &buffers {
            chain.push((at, len, writable));
            at += u64::from(len);
        }
        offer(&mut mem, 0, 0, &chain);
        let result = serve(&mut d, &mut q, &mut mem);
        let changed: Vec<usize> = (0..16).filter(|&s| d.bytes()[s * 512..(s + 1) * 512] != original[s * 512..(s + 1) * 512]).collect();
        if read_only {
            proptest::prop_assert!(changed.is_empty(), "the read-only disk changed: sectors {changed:?}");
        }
        if result.is_ok() {
            proptest::prop_assert_eq!(q.next_used(), 1);
        }
        for s in changed {
            proptest::prop_assert!(kind == blk::req::OUT && (s as u64) >= sector, "sector {s} changed by a request of type {kind} at {sector}");
        }
    }
}

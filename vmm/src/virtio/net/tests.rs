//! virtio-net's queues against a port that keeps frames in memory.
use super::*;
use crate::virtio::chain::{desc_flags, DESC_SIZE};
use guest_x86::mem::VecMemory;
use std::collections::VecDeque;
use std::vec::Vec;
use sysabi::SysError;

const RAM: usize = 1 << 20;
const SIZE: u16 = 8;
/// Each queue's areas: descriptor table, driver area, device area.
const AREAS: [(u64, u64, u64); 2] = [(0x1_0000, 0x1_1000, 0x1_2000), (0x2_0000, 0x2_1000, 0x2_2000)];
const MAC: MacAddr = [0x52, 0x54, 0x00, 0x12, 0x34, 0x01];

/// The switch as the device sees it: what was sent, and frames waiting.
#[derive(Default)]
struct Loop {
    sent: Vec<Vec<u8>>,
    inbox: VecDeque<Vec<u8>>,
}

impl NetPort for Loop {
    fn send(&mut self, mem: &dyn GuestMemory, frame: &[GuestSpan]) -> SysResult<()> {
        let mut bytes = Vec::new();
        for s in frame {
            let mut piece = vec![0; s.len as usize];
            mem.read(s.gpa, &mut piece).map_err(|_| SysError::BadGuestAddress)?;
            bytes.extend(piece);
        }
        if bytes.len() < 14 {
            return Err(SysError::BadArgument);
        }
        self.sent.push(bytes);
        Ok(())
    }

    fn recv(&mut self, mem: &mut dyn GuestMemory, into: &[GuestSpan]) -> SysResult<Option<usize>> {
        let Some(f) = self.inbox.pop_front() else { return Ok(None) };
        let mut at = 0;
        for s in into {
            let n = (s.len as usize).min(f.len() - at);
            mem.write(s.gpa, &f[at..at + n]).map_err(|_| SysError::BadGuestAddress)?;
            at += n;
        }
        Ok(Some(f.len()))
    }
}

struct Rig {
    dev: VirtioNet,
    queues: [Virtqueue; 2],
    mem: VecMemory,
    port: Loop,
    /// Chains offered so far, per queue.
    offered: [u16; 2],
}

fn rig() -> Rig {
    let mut queues = [Virtqueue::new(256); 2];
    for (q, &(desc, driver, device)) in queues.iter_mut().zip(&AREAS) {
        (q.size, q.ready, q.event_idx) = (SIZE, true, true);
        (q.desc, q.driver, q.device) = (desc, driver, device);
    }
    Rig { dev: VirtioNet::new(MAC), queues, mem: VecMemory::new(RAM), port: Loop::default(), offered: [0; 2] }
}

impl Rig {
    /// Offers on `queue` a chain of buffers (addr, len, device-writable),
    /// its descriptors starting at `first`.
    fn offer(&mut self, queue: usize, first: u16, bufs: &[(u64, u32, bool)]) {
        let (desc, driver, _) = AREAS[queue];
        for (i, &(addr, len, write)) in bufs.iter().enumerate() {
            let at = desc + u64::from(first + i as u16) * DESC_SIZE;
            let mut flags = if write { desc_flags::WRITE } else { 0 };
            if i + 1 < bufs.len() {
                flags |= desc_flags::NEXT;
            }
            self.mem.write_u64(at, addr).unwrap();
            self.mem.write_u32(at + 8, len).unwrap();
            self.mem.write(at + 12, &flags.to_le_bytes()).unwrap();
            self.mem.write(at + 14, &(first + i as u16 + 1).to_le_bytes()).unwrap();
        }
        let n = self.offered[queue];
        self.mem.write(driver + 4 + 2 * u64::from(n % SIZE), &first.to_le_bytes()).unwrap();
        self.offered[queue] = n + 1;
        self.mem.write(driver + 2, &(n + 1).to_le_bytes()).unwrap();
    }

    fn pump(&mut self) {
        self.dev.pump(&mut self.queues, &mut self.mem, &mut self.port).expect("no queue error");
    }

    /// The used ring of `queue`: (head, len) of each entry so far.
    fn used(&self, queue: usize) -> Vec<(u32, u32)> {
        let device = AREAS[queue].2;
        let mut idx = [0u8; 2];
        self.mem.read(device + 2, &mut idx).unwrap();
        (0..u16::from_le_bytes(idx))
            .map(|i| {
                let at = device + 4 + 8 * u64::from(i % SIZE);
                (self.mem.read_u32(at).unwrap(), self.mem.read_u32(at + 4).unwrap())
            })
            .collect()
    }

    fn bytes(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.mem.read(gpa, &mut b).unwrap();
        b
    }
}

/// A frame of `len` bytes from `seed`.
fn frame(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[test]
fn the_device_is_a_network_card_with_the_ports_mac_and_no_offloads() {
    let dev = VirtioNet::new(MAC);
    assert_eq!((dev.device_id(), dev.features(), dev.queue_max_sizes()), (1, F_MAC, &[256u16, 256][..]));
    let mut config = [0xAAu8; 10];
    dev.read_config(0, &mut config);
    assert_eq!(config, [0x52, 0x54, 0x00, 0x12, 0x34, 0x01, 0, 0, 0, 0], "the MAC, then zeros");
    let mut tail = [0xAAu8; 3];
    dev.read_config(4, &mut tail);
    assert_eq!(tail, [0x34, 0x01, 0]);
}

#[test]
fn a_notified_transmit_chain_goes_to_the_switch_without_its_header_and_is_used_empty() {
    let mut r = rig();
    let f = frame(1, 98);
    r.mem.write(0x4_0000, &[0xEE; HDR_LEN]).unwrap();
    r.mem.write(0x4_1000, &f[..40]).unwrap();
    r.mem.write(0x4_2000, &f[40..]).unwrap();
    r.offer(TX, 0, &[(0x4_0000, HDR_LEN as u32, false), (0x4_1000, 40, false), (0x4_2000, 58, false)]);
    // Header and frame in one buffer, as Linux's any-layout transmit does.
    r.mem.write(0x4_3000, &[[0u8; HDR_LEN].as_slice(), &f].concat()).unwrap();
    r.offer(TX, 3, &[(0x4_3000, (HDR_LEN + f.len()) as u32, false)]);
    r.pump();
    assert!(r.port.sent.is_empty(), "nothing moves before the driver notifies");
    r.dev.serve(TX, &mut r.queues, &mut r.mem).unwrap();
    r.pump();
    assert_eq!(r.port.sent, vec![f.clone(), f], "both frames, headers skipped");
    assert_eq!(r.used(TX), vec![(0, 0), (3, 0)]);
    assert_eq!(r.dev.stats, NicStats::default());
}

#[test]
fn a_transmit_chain_the_switch_refuses_is_used_and_counted() {
    let mut r = rig();
    r.offer(TX, 0, &[(0x4_0000, HDR_LEN as u32 + 6, false)]);
    r.dev.serve(TX, &mut r.queues, &mut r.mem).unwrap();
    r.pump();
    assert!(r.port.sent.is_empty());
    assert_eq!((r.used(TX), r.dev.stats.tx_refused), (vec![(0, 0)], 1));
}

#[test]
fn a_frame_fills_a_posted_receive_chain_after_a_header_with_one_buffer() {
    let mut r = rig();
    r.mem.write(0x5_0000, &[0xEE; 64]).unwrap();
    r.offer(RX, 0, &[(0x5_0000, RX_CHAIN_MIN as u32 + 4, true)]);
    r.pump();
    assert_eq!(r.used(RX), vec![], "no frame yet: the chain waits");
    let f = frame(7, 60);
    r.port.inbox.push_back(f.clone());
    r.pump();
    assert_eq!(r.used(RX), vec![(0, (HDR_LEN + 60) as u32)]);
    let mut hdr = [0u8; HDR_LEN];
    hdr[10] = 1;
    assert_eq!(r.bytes(0x5_0000, HDR_LEN), hdr, "virtio_net_hdr: no offload, num_buffers 1");
    assert_eq!(r.bytes(0x5_0000 + HDR_LEN as u64, 60), f);
}

#[test]
fn frames_wait_at_the_switch_until_the_driver_posts_chains_and_a_header_may_span_buffers() {
    let mut r = rig();
    r.port.inbox.extend([frame(1, 100), frame(2, 1514)]);
    r.pump();
    assert_eq!(r.port.inbox.len(), 2, "no chain: the frames stay at the switch");
    r.offer(RX, 0, &[(0x5_0000, 4, true), (0x5_1000, 1600, true)]);
    r.offer(RX, 2, &[(0x6_0000, RX_CHAIN_MIN as u32, true)]);
    r.pump();
    assert_eq!(r.used(RX), vec![(0, 112), (2, 1526)]);
    assert_eq!(r.bytes(0x5_0000, 4), [0; 4], "the header's first 4 bytes");
    assert_eq!(r.bytes(0x5_1000, 8 + 100), [vec![0, 0, 0, 0, 0, 0, 1, 0], frame(1, 100)].concat());
    assert_eq!(r.bytes(0x6_0000 + HDR_LEN as u64, 1514), frame(2, 1514));
}

#[test]
fn a_receive_chain_too_short_for_a_whole_frame_is_used_empty_and_counted() {
    let mut r = rig();
    r.offer(RX, 0, &[(0x5_0000, RX_CHAIN_MIN as u32 - 1, true)]);
    r.offer(RX, 1, &[(0x6_0000, RX_CHAIN_MIN as u32, true)]);
    r.port.inbox.push_back(frame(3, 60));
    r.pump();
    assert_eq!(r.used(RX), vec![(0, 0), (1, 72)], "the short chain back empty; the frame in the next");
    assert_eq!(r.dev.stats.rx_unusable_chains, 1);
}

#[test]
fn a_receive_chain_in_more_pieces_than_the_device_keeps_is_used_empty_and_counted() {
    let mut r = rig();
    let pieces: Vec<(u64, u32, bool)> = (0..6).map(|i| (0x5_0000 + i * 0x1000, 400, true)).collect();
    r.offer(RX, 0, &pieces);
    r.port.inbox.push_back(frame(3, 60));
    r.pump();
    assert_eq!(
        (r.used(RX), r.dev.stats.rx_unusable_chains),
        (vec![(0, 0)], 1),
        "12 + 2388 bytes, but the frame's in 6 pieces"
    );
    assert_eq!(r.port.inbox.len(), 1, "the frame waits for a chain it fits");
}

#[test]
fn a_reset_forgets_the_waiting_receive_chain_and_the_notification() {
    let mut r = rig();
    r.offer(RX, 0, &[(0x5_0000, RX_CHAIN_MIN as u32, true)]);
    r.offer(TX, 0, &[(0x4_0000, 74, false)]);
    r.dev.serve(TX, &mut r.queues, &mut r.mem).unwrap();
    r.dev.pump(&mut r.queues[..], &mut r.mem, &mut Loop::default()).unwrap();
    assert!(r.dev.rx_chain.is_some(), "a chain waits for a frame");
    r.dev.reset();
    assert!(r.dev.rx_chain.is_none() && !r.dev.tx_kicked);
}

#[test]
fn the_device_is_small_enough_for_a_board_on_a_vmm_threads_stack() {
    // The board, its eight virtio slots among its devices, lives on the
    // VMM thread's stack of 32 KiB (a walked chain alone is 4 KiB).
    let size = core::mem::size_of::<VirtioNet>();
    assert!(size <= 256, "VirtioNet takes {size} bytes");
}

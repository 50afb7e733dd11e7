//! The network between VMs, as a process sees it: one port of the
//! hypervisor's Ethernet switch, granted with the process ([`crate::Grants`]),
//! with a MAC address the hypervisor assigned. Frames move between guest
//! RAM and the switch by guest-physical spans, so the kernel copies them
//! through its checked accessors and the VMM never holds them.

/// A port of the switch. Granted to a process when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetHandle(pub u16);

/// An Ethernet (MAC) address.
pub type MacAddr = [u8; 6];

/// The shortest frame the switch takes: an Ethernet header (destination,
/// source, EtherType), without the frame check sequence.
pub const MIN_FRAME: usize = 14;
/// The longest: the header and a 1500-byte payload (no VLAN tag, no jumbo
/// frames, no FCS).
pub const MAX_FRAME: usize = 1514;
/// The most guest-physical spans one frame may be gathered from or
/// scattered to.
pub const MAX_SPANS: usize = 16;

/// `len` bytes of guest RAM at guest-physical `gpa`: one piece of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuestSpan {
    pub gpa: u64,
    pub len: u32,
}

/// What a port has seen since it was granted. A frame a port sends counts
/// once in `tx_frames` however many ports it floods to; each copy that a
/// destination's queue had no room for counts at that destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetStats {
    /// Frames taken from this port (well-formed, with the port's source MAC).
    pub tx_frames: u64,
    /// Unicast frames from this port to a MAC that no other port has: dropped.
    pub tx_no_port: u64,
    /// Frames from this port whose source MAC was not the port's: dropped.
    pub tx_spoofed: u64,
    /// Frames this port's owner received.
    pub rx_frames: u64,
    /// Frames for this port dropped because its queue was full.
    pub rx_dropped_full: u64,
    /// Frames for this port dropped because their sender already had its
    /// share of the queue.
    pub rx_dropped_share: u64,
}

impl NetStats {
    pub const ZERO: NetStats =
        NetStats { tx_frames: 0, tx_no_port: 0, tx_spoofed: 0, rx_frames: 0, rx_dropped_full: 0, rx_dropped_share: 0 };
}

impl core::fmt::Display for NetStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "sent={} (dropped: no port {}, spoofed {}) received={} (dropped: queue full {}, sender's share {})",
            self.tx_frames,
            self.tx_no_port,
            self.tx_spoofed,
            self.rx_frames,
            self.rx_dropped_full,
            self.rx_dropped_share
        )
    }
}

/// A port's address and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetPortInfo {
    pub mac: MacAddr,
    pub stats: NetStats,
}

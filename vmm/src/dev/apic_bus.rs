//! The interrupt messages that local APICs and the IOAPIC send each other,
//! and how a message finds the local APICs it is for.
//!
//! On an xAPIC system the messages travel on the system bus; here the
//! sending model returns an [`InterruptMessage`], the VMM picks its targets
//! with [`route`] and hands it to each target's [`Lapic::receive`]. The
//! rules are those of Intel SDM vol. 3 §10.6.2 (destination modes, flat and
//! cluster logical destinations, broadcast) and §10.6.2.4 (lowest-priority
//! arbitration), which AMD APM vol. 2 §16.6 repeats for AMD's APIC.
//!
//! [`Lapic::receive`]: super::lapic::Lapic::receive

use super::lapic::Lapic;

/// The destination that reaches every local APIC, in both physical and
/// logical mode.
pub const BROADCAST: u8 = 0xFF;

/// How the receiving local APIC handles a message: the three-bit field of
/// the ICR, of an LVT entry and of an IOAPIC redirection entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Into the IRR, at `vector`.
    Fixed,
    /// Into the IRR of the one target with the lowest arbitration priority.
    LowestPriority,
    /// A system-management interrupt (the vector is ignored).
    Smi,
    /// A non-maskable interrupt (the vector is ignored).
    Nmi,
    /// INIT: the target resets and waits for a start-up IPI.
    Init,
    /// Start-up IPI: a target waiting after INIT starts at `vector << 12`.
    StartUp,
    /// The target asks the 8259 PIC for the vector (virtual wire).
    ExtInt,
}

impl DeliveryMode {
    /// Decodes the three-bit field; `None` for the reserved value 3 (AMD's
    /// "remote read").
    pub const fn from_bits(bits: u32) -> Option<Self> {
        Some(match bits & 7 {
            0 => DeliveryMode::Fixed,
            1 => DeliveryMode::LowestPriority,
            2 => DeliveryMode::Smi,
            4 => DeliveryMode::Nmi,
            5 => DeliveryMode::Init,
            6 => DeliveryMode::StartUp,
            7 => DeliveryMode::ExtInt,
            _ => return None,
        })
    }

    /// The three-bit field.
    pub const fn bits(self) -> u32 {
        match self {
            DeliveryMode::Fixed => 0,
            DeliveryMode::LowestPriority => 1,
            DeliveryMode::Smi => 2,
            DeliveryMode::Nmi => 4,
            DeliveryMode::Init => 5,
            DeliveryMode::StartUp => 6,
            DeliveryMode::ExtInt => 7,
        }
    }

    /// Fixed and lowest-priority messages go through the IRR and ISR and
    /// carry a vector; the others go straight to the processor.
    pub const fn uses_vector(self) -> bool {
        matches!(self, DeliveryMode::Fixed | DeliveryMode::LowestPriority)
    }
}

/// Edge- or level-triggered. A level-triggered fixed interrupt sets the TMR
/// bit of its vector, so that its EOI is broadcast to the IOAPIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Edge,
    Level,
}

impl Trigger {
    /// Bit 15 of the ICR, of an LVT entry and of a redirection entry.
    pub const fn from_bit(level: bool) -> Self {
        if level {
            Trigger::Level
        } else {
            Trigger::Edge
        }
    }
}

/// Whom a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The local APIC whose ID is this, or all of them for [`BROADCAST`].
    Physical(u8),
    /// The local APICs whose logical destination register matches this
    /// message destination address (flat or cluster model, as each
    /// receiver's DFR says).
    Logical(u8),
    /// ICR shorthand 10: every local APIC, the sender's included.
    AllIncludingSelf,
    /// ICR shorthand 11: every local APIC but the sender's.
    AllExcludingSelf,
}

/// One interrupt message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptMessage {
    pub destination: Destination,
    pub delivery: DeliveryMode,
    /// The vector (fixed, lowest priority), the start-up page (start-up),
    /// ignored otherwise.
    pub vector: u8,
    pub trigger: Trigger,
}

/// A set of vCPUs by index, the index being the position of their local
/// APIC in what [`route`] was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(pub u64);

/// How many vCPUs a [`CpuSet`] can name.
pub const MAX_CPUS: usize = 64;

impl CpuSet {
    pub const EMPTY: CpuSet = CpuSet(0);

    pub fn contains(self, index: usize) -> bool {
        index < MAX_CPUS && self.0 & (1 << index) != 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The indices in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_CPUS).filter(move |&i| self.contains(i))
    }

    /// Adds vCPU `index` (an index past [`MAX_CPUS`] is ignored).
    pub fn insert(&mut self, index: usize) {
        if index < MAX_CPUS {
            self.0 |= 1 << index;
        }
    }
}

/// The vCPUs that take `message`: `lapics` lists every vCPU's local APIC
/// in vCPU order (at most [`MAX_CPUS`]), `sender` is the sending vCPU (none
/// for the IOAPIC). A local APIC that is hardware-disabled (IA32_APIC_BASE
/// EN clear) is not on the bus and takes nothing.
///
/// A lowest-priority message goes to the one matching local APIC with the
/// lowest arbitration priority (APR), the lowest index among equals (the
/// SDM leaves the tie to the chipset). Every other message goes to all the
/// matches.
pub fn route<'a>(
    message: &InterruptMessage,
    sender: Option<usize>,
    lapics: impl IntoIterator<Item = &'a Lapic>,
) -> CpuSet {
    let mut set = CpuSet::EMPTY;
    let mut lowest: Option<(u8, usize)> = None;
    for (index, lapic) in lapics.into_iter().enumerate().take(MAX_CPUS) {
        if !lapic.hardware_enabled() {
            continue;
        }
        let matches = match message.destination {
            Destination::Physical(id) => lapic.matches_physical(id),
            Destination::Logical(mda) => lapic.matches_logical(mda),
            Destination::AllIncludingSelf => true,
            Destination::AllExcludingSelf => sender != Some(index),
        };
        if !matches {
            continue;
        }
        if message.delivery == DeliveryMode::LowestPriority {
            let apr = lapic.arbitration_priority();
            if lowest.is_none_or(|(best, _)| apr < best) {
                lowest = Some((apr, index));
            }
        } else {
            set.insert(index);
        }
    }
    if let Some((_, index)) = lowest {
        set.insert(index);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_mode_bits_round_trip_and_three_is_reserved() {
        for bits in 0..8 {
            match DeliveryMode::from_bits(bits) {
                Some(mode) => assert_eq!(mode.bits(), bits, "{mode:?}"),
                None => assert_eq!(bits, 3),
            }
        }
    }

    #[test]
    fn only_fixed_and_lowest_priority_use_the_irr() {
        let with_vector: Vec<_> = (0..8).filter_map(DeliveryMode::from_bits).filter(|m| m.uses_vector()).collect();
        assert_eq!(with_vector, [DeliveryMode::Fixed, DeliveryMode::LowestPriority]);
    }

    #[test]
    fn cpu_set_lists_its_members_in_order_and_ignores_indices_past_64() {
        let mut s = CpuSet::EMPTY;
        for i in [5, 0, 63, 64, 200] {
            s.insert(i);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 5, 63]);
        assert_eq!(s.len(), 3);
        assert!(!s.contains(64));
        assert!(CpuSet::EMPTY.is_empty());
    }
}

//! Register offsets and bit fields of the xAPIC page (Intel SDM vol. 3
//! table 10-1, AMD APM vol. 2 table 16-2), and the 256-bit vector sets
//! behind the ISR, TMR and IRR.

pub const ID: u16 = 0x020;
pub const VERSION: u16 = 0x030;
pub const TPR: u16 = 0x080;
pub const APR: u16 = 0x090;
pub const PPR: u16 = 0x0A0;
pub const EOI: u16 = 0x0B0;
/// AMD's remote read register; reads as 0 (no remote read is ever made).
pub const RRD: u16 = 0x0C0;
pub const LDR: u16 = 0x0D0;
pub const DFR: u16 = 0x0E0;
pub const SVR: u16 = 0x0F0;
pub const ISR: u16 = 0x100;
pub const TMR: u16 = 0x180;
pub const IRR: u16 = 0x200;
pub const ESR: u16 = 0x280;
pub const ICR_LOW: u16 = 0x300;
pub const ICR_HIGH: u16 = 0x310;
pub const LVT_TIMER: u16 = 0x320;
pub const LVT_THERMAL: u16 = 0x330;
pub const LVT_PERF: u16 = 0x340;
pub const LVT_LINT0: u16 = 0x350;
pub const LVT_LINT1: u16 = 0x360;
pub const LVT_ERROR: u16 = 0x370;
pub const TIMER_INITIAL: u16 = 0x380;
pub const TIMER_CURRENT: u16 = 0x390;
pub const TIMER_DIVIDE: u16 = 0x3E0;

/// Each register sits at the start of a 16-byte slot.
pub const SLOT: u64 = 16;
/// The APIC page.
pub const PAGE_SIZE: u64 = 0x1000;

/// Version register: an integrated APIC (0x14, as KVM reports), six LVT
/// entries (max LVT entry 5), no EOI-broadcast suppression, no extended
/// APIC space.
pub const VERSION_VALUE: u32 = 0x0005_0014;

/// The LVT entries, in register order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lvt {
    Timer = 0,
    Thermal = 1,
    Perf = 2,
    Lint0 = 3,
    Lint1 = 4,
    Error = 5,
}

pub const LVT_COUNT: usize = 6;

impl Lvt {
    pub const ALL: [Lvt; LVT_COUNT] = [Lvt::Timer, Lvt::Thermal, Lvt::Perf, Lvt::Lint0, Lvt::Lint1, Lvt::Error];

    /// The entry at register offset `reg`, if it is one.
    pub fn at(reg: u16) -> Option<Lvt> {
        let index = reg.checked_sub(LVT_TIMER)? / 0x10;
        (reg.is_multiple_of(0x10)).then_some(())?;
        Self::ALL.get(usize::from(index)).copied()
    }

    /// The bits software may write: vector and mask everywhere, delivery
    /// mode except in the timer and error entries, polarity and trigger in
    /// the LINT entries, the timer mode in the timer entry (SDM figure
    /// 10-8). Delivery status and remote IRR are read-only.
    pub const fn writable(self) -> u32 {
        match self {
            Lvt::Timer => LVT_VECTOR | LVT_MASKED | TIMER_MODE_MASK,
            Lvt::Thermal | Lvt::Perf => LVT_VECTOR | LVT_DELIVERY | LVT_MASKED,
            Lvt::Lint0 | Lvt::Lint1 => LVT_VECTOR | LVT_DELIVERY | LVT_POLARITY_LOW | LVT_LEVEL | LVT_MASKED,
            Lvt::Error => LVT_VECTOR | LVT_MASKED,
        }
    }
}

pub const LVT_VECTOR: u32 = 0xFF;
pub const LVT_DELIVERY: u32 = 0x700;
pub const LVT_POLARITY_LOW: u32 = 1 << 13;
pub const LVT_REMOTE_IRR: u32 = 1 << 14;
pub const LVT_LEVEL: u32 = 1 << 15;
pub const LVT_MASKED: u32 = 1 << 16;
/// LINT0 as firmware leaves it on the bootstrap processor: ExtINT, unmasked
/// (the 8259 reaches the CPU through it; "virtual wire" mode).
pub const LVT_EXTINT: u32 = 7 << 8;

/// The timer mode field of the LVT timer entry.
pub const TIMER_MODE_MASK: u32 = 3 << 17;
pub const TIMER_PERIODIC: u32 = 1 << 17;
pub const TIMER_TSC_DEADLINE: u32 = 2 << 17;

/// Spurious-interrupt vector register: vector, APIC software enable, focus
/// processor checking (stored, no effect). Bit 12 (EOI-broadcast
/// suppression) is not writable: the version register does not offer it.
pub const SVR_WRITABLE: u32 = 0x3FF;
pub const SVR_ENABLE: u32 = 1 << 8;
pub const SVR_RESET: u32 = 0xFF;

/// DFR: the model in bits 31:28 (1111 flat, 0000 cluster); bits 27:0 read
/// as ones.
pub const DFR_MODEL: u32 = 0xF000_0000;
pub const DFR_RESET: u32 = 0xFFFF_FFFF;

/// LDR and ID: the value sits in bits 31:24.
pub const ID_SHIFT: u32 = 24;

/// ICR low: vector, delivery mode, destination mode, level, trigger,
/// shorthand. Bit 12 (delivery status) is read-only and always idle.
pub const ICR_LOW_WRITABLE: u32 = 0x000C_CFFF;
pub const ICR_LOGICAL: u32 = 1 << 11;
pub const ICR_ASSERT: u32 = 1 << 14;
pub const ICR_LEVEL: u32 = 1 << 15;
pub const ICR_SHORTHAND_SHIFT: u32 = 18;
pub const ICR_HIGH_WRITABLE: u32 = 0xFF00_0000;

/// Divide configuration: bits 0, 1 and 3.
pub const DIVIDE_WRITABLE: u32 = 0xB;

/// Error status register bits (SDM §10.5.3, APM §16.4.6).
pub mod esr {
    pub const SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
    pub const RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
    pub const ILLEGAL_REGISTER: u32 = 1 << 7;
}

/// Vectors 0–15 are reserved: a fixed interrupt with one is an error.
pub const FIRST_LEGAL_VECTOR: u8 = 16;

/// One bit per vector: the ISR, the TMR or the IRR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VectorSet([u32; 8]);

impl VectorSet {
    pub const EMPTY: VectorSet = VectorSet([0; 8]);

    pub fn contains(&self, v: u8) -> bool {
        self.0[usize::from(v >> 5)] & (1 << (v & 31)) != 0
    }

    pub fn insert(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] |= 1 << (v & 31);
    }

    pub fn remove(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] &= !(1 << (v & 31));
    }

    pub fn set(&mut self, v: u8, on: bool) {
        if on {
            self.insert(v);
        } else {
            self.remove(v);
        }
    }

    /// The highest vector in the set.
    pub fn highest(&self) -> Option<u8> {
        let (word, bits) = self.0.iter().enumerate().rev().find(|(_, w)| **w != 0)?;
        Some((word as u8) << 5 | (31 - bits.leading_zeros()) as u8)
    }

    /// Bits `32 * index ..` as the register at slot `index` shows them.
    pub fn word(&self, index: usize) -> u32 {
        self.0[index]
    }
}

/// The priority class of a vector or priority register: bits 7:4.
pub const fn class(v: u8) -> u8 {
    v >> 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_set_highest_finds_the_top_bit_across_words() {
        let mut s = VectorSet::EMPTY;
        assert_eq!(s.highest(), None);
        for v in [0x10, 0x31, 0xFF, 0x80] {
            s.insert(v);
        }
        assert_eq!(s.highest(), Some(0xFF));
        s.remove(0xFF);
        assert_eq!(s.highest(), Some(0x80));
        assert_eq!(s.word(1), 1 << 0x11);
        assert!(s.contains(0x31) && !s.contains(0x30));
    }

    #[test]
    fn lvt_at_maps_the_six_registers_and_nothing_else() {
        let found: Vec<_> = (0x300..0x3A0).step_by(0x10).filter_map(Lvt::at).collect();
        assert_eq!(found, Lvt::ALL);
        assert_eq!(Lvt::at(0x328), None);
        assert_eq!(Lvt::at(0x2F0), None);
    }
}

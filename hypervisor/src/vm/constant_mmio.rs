//! MMIO registers whose read the VMM declared constant: a load of one
//! size from one guest-physical address that always reads the same value
//! and changes nothing. The kernel answers such a load on its
//! nested-page-fault exit without the VMM (`syscall::constant_mmio`; the
//! rule is in docs/exit-path.md, "Which exits the kernel answers").

/// How many constant MMIO reads a VM may declare.
pub const CONSTANT_MMIO: usize = 8;

/// One declared read: `size` bytes at `gpa` read `value`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    gpa: u64,
    /// 1, 2, 4 or 8; 0 for an empty entry.
    size: u8,
    value: u64,
}

/// The constant MMIO reads of one VM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConstantMmio {
    entries: [Entry; CONSTANT_MMIO],
}

impl ConstantMmio {
    /// Declares that a read of `size` bytes (1, 2, 4 or 8) at `gpa` reads
    /// `value`, replacing what was declared for that address and size.
    /// False if `size` or `value` is invalid, the read crosses a page, or
    /// the table is full.
    pub fn declare(&mut self, gpa: u64, size: u8, value: u64) -> bool {
        if !matches!(size, 1 | 2 | 4 | 8) || (size < 8 && value >> (8 * size) != 0) {
            return false;
        }
        if gpa % crate::arch::phys::PAGE + u64::from(size) > crate::arch::phys::PAGE {
            return false;
        }
        let e = &mut self.entries;
        let slot = e.iter().position(|e| e.size == size && e.gpa == gpa).or_else(|| e.iter().position(|e| e.size == 0));
        let Some(i) = slot else {
            return false;
        };
        e[i] = Entry { gpa, size, value };
        true
    }

    /// Something is declared at `gpa`, of whatever size.
    pub fn covers(&self, gpa: u64) -> bool {
        self.entries.iter().any(|e| e.size != 0 && e.gpa == gpa)
    }

    /// What a read of `size` bytes at `gpa` reads, if declared.
    pub fn answer(&self, gpa: u64, size: u8) -> Option<u64> {
        self.entries.iter().find(|e| e.size != 0 && e.size == size && e.gpa == gpa).map(|e| e.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_read_answers_exactly_its_address_and_size() {
        let mut m = ConstantMmio::default();
        assert!(m.declare(0xFEBF_F000, 4, 0x4345_5254));
        assert_eq!(m.answer(0xFEBF_F000, 4), Some(0x4345_5254));
        assert_eq!(m.answer(0xFEBF_F000, 8), None, "a quadword read");
        assert_eq!(m.answer(0xFEBF_F004, 4), None, "another address");
        assert!(m.covers(0xFEBF_F000) && !m.covers(0xFEBF_F004));
        assert_eq!(ConstantMmio::default().answer(0, 0), None, "an empty entry answers nothing");
    }

    #[test]
    fn declarations_are_checked_and_bounded() {
        let mut m = ConstantMmio::default();
        assert!(!m.declare(0x1000, 3, 0), "size 3");
        assert!(!m.declare(0x1000, 2, 0x1_0000), "a word read cannot give 0x10000");
        assert!(!m.declare(0x1FFE, 4, 0), "a read crossing a page");
        for i in 0..CONSTANT_MMIO as u64 {
            assert!(m.declare(0x1000 + 8 * i, 8, u64::MAX), "entry {i}");
        }
        assert!(m.declare(0x1000, 8, 7), "declaring a read again replaces its value");
        assert_eq!(m.answer(0x1000, 8), Some(7));
        assert!(!m.declare(0x2000, 1, 0), "one more than the table holds");
    }
}

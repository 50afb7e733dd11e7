//! ASID allocation with a per-CPU generation.
//!
//! Each CPU hands out ASIDs 1..max in order. When they run out, the CPU
//! starts a new generation: every vCPU that last ran here holds an ASID of an
//! older generation and must take a fresh one, and the first VMRUN of the
//! new generation flushes the whole TLB, so no translation cached under a
//! reused ASID survives (APM vol. 2, §15.16).
//!
//! A vCPU that moves to another CPU also takes a fresh ASID there: TLB
//! entries are per CPU, and its ASID on the old CPU means nothing here.

/// What a vCPU remembers of its last ASID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AsidTag {
    pub asid: u32,
    pub generation: u64,
    pub cpu: usize,
}

/// One CPU's allocator.
#[derive(Debug, Clone)]
pub struct AsidAllocator {
    cpu: usize,
    /// ASIDs are 1..max (0 is the host's).
    max: u32,
    next: u32,
    generation: u64,
}

/// What VMRUN must be told about the TLB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlbAction {
    /// The vCPU keeps its ASID; nothing to flush.
    None,
    /// The vCPU got a fresh ASID that was never used in this generation.
    NewAsid,
    /// A new generation began: flush every ASID's entries on this CPU.
    FlushAll,
}

impl AsidAllocator {
    /// `asids` is CPUID 8000_000Ah EBX: the number of ASIDs, including 0.
    pub fn new(cpu: usize, asids: u32) -> Self {
        AsidAllocator { cpu, max: asids.max(2), next: 1, generation: 1 }
    }

    /// Makes sure `tag` holds a valid ASID for this CPU, renewing it if it
    /// is from another CPU or an older generation.
    pub fn ensure(&mut self, tag: &mut AsidTag) -> TlbAction {
        if tag.asid != 0 && tag.cpu == self.cpu && tag.generation == self.generation {
            return TlbAction::None;
        }
        let mut action = TlbAction::NewAsid;
        if self.next >= self.max {
            self.generation += 1;
            self.next = 1;
            action = TlbAction::FlushAll;
        }
        *tag = AsidTag { asid: self.next, generation: self.generation, cpu: self.cpu };
        self.next += 1;
        action
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn asid_zero_is_never_handed_out() {
        let mut a = AsidAllocator::new(0, 16);
        for _ in 0..100 {
            let mut t = AsidTag::default();
            a.ensure(&mut t);
            assert_ne!(t.asid, 0);
            assert!(t.asid < 16);
        }
    }

    #[test]
    fn a_vcpu_keeps_its_asid_within_a_generation() {
        let mut a = AsidAllocator::new(0, 16);
        let mut t = AsidTag::default();
        assert_eq!(a.ensure(&mut t), TlbAction::NewAsid);
        let first = t;
        assert_eq!(a.ensure(&mut t), TlbAction::None);
        assert_eq!(t, first);
    }

    #[test]
    fn exhaustion_starts_a_generation_and_flushes_everything() {
        let mut a = AsidAllocator::new(0, 4); // ASIDs 1, 2, 3
        let mut tags = [AsidTag::default(); 3];
        for t in &mut tags {
            assert_eq!(a.ensure(t), TlbAction::NewAsid);
        }
        let mut late = AsidTag::default();
        assert_eq!(a.ensure(&mut late), TlbAction::FlushAll);
        assert_eq!(late.asid, 1);
        // Every older vCPU must renew before it runs again.
        assert_eq!(a.ensure(&mut tags[0]), TlbAction::NewAsid);
        assert_eq!(tags[0].asid, 2);
    }

    #[test]
    fn moving_to_another_cpu_takes_a_fresh_asid() {
        let mut a0 = AsidAllocator::new(0, 16);
        let mut a1 = AsidAllocator::new(1, 16);
        let mut t = AsidTag::default();
        a0.ensure(&mut t);
        assert_eq!(a1.ensure(&mut t), TlbAction::NewAsid);
        assert_eq!(t.cpu, 1);
    }

    proptest! {
        /// Within one generation of one CPU, no two vCPUs share an ASID:
        /// sharing would let one guest hit the other's TLB entries.
        #[test]
        fn live_asids_are_unique_within_a_generation(ops in proptest::collection::vec(0usize..8, 1..200), max in 2u32..12) {
            let mut a = AsidAllocator::new(0, max);
            let mut tags = [AsidTag::default(); 8];
            for v in ops {
                a.ensure(&mut tags[v]);
                let g = a.generation();
                let live: Vec<u32> = tags.iter().filter(|t| t.generation == g && t.asid != 0).map(|t| t.asid).collect();
                let mut sorted = live.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), live.len(), "ASID shared in generation {}: {:?}", g, tags);
            }
        }
    }
}

//! Property tests: hostile bytes and tables never panic the decode path.

use super::{cases, FakeRegs};
use crate::decode::emulate::emulate_mmio;
use crate::decode::fetch::fetch;
use crate::decode::insn::{decode, CpuMode, DecodeError, InsnKind, MAX_INSN_LEN};
use crate::decode::walk::{walk, AccessKind, AccessOp, PagingState};
use crate::mem::VecMemory;
use proptest::prelude::*;

fn mode() -> impl Strategy<Value = CpuMode> {
    prop_oneof![Just(CpuMode::Bits16), Just(CpuMode::Bits32), Just(CpuMode::Bits64)]
}

/// Random bytes, biased towards prefixes and the opcodes the decoder
/// knows, so that deep paths are reached often.
fn insn_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => any::<u8>(),
        1 => prop::sample::select(vec![
            0x0f, 0x01, 0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65,
            0x40, 0x41, 0x44, 0x48, 0x4c, 0x4f, 0x88, 0x89, 0x8a, 0x8b, 0xc6, 0xc7, 0x80,
            0x81, 0x83, 0xa0, 0xa3, 0xba, 0xb6, 0xbf, 0x04, 0x05, 0x24, 0x25, 0x44, 0x84,
        ]),
    ];
    prop::collection::vec(byte, 0..=20)
}

proptest! {
    #![proptest_config(cases(10_000))]

    #[test]
    fn decode_never_panics_and_len_fits(bytes in insn_bytes(), mode in mode()) {
        if let Ok(insn) = decode(&bytes, mode) {
            let len = usize::from(insn.len);
            prop_assert!((1..=MAX_INSN_LEN).contains(&len) && len <= bytes.len(), "{insn:?}");
            // The decoder looks at no byte past the instruction...
            prop_assert_eq!(decode(&bytes[..len], mode), Ok(insn));
            // ...and needs every byte before its end.
            for n in 0..len {
                prop_assert_eq!(decode(&bytes[..n], mode), Err(DecodeError::Truncated));
            }
        }
    }

}

proptest! {
    #![proptest_config(cases(5_000))]

    #[test]
    fn emulating_any_decoded_memory_insn_never_panics(
        bytes in insn_bytes(),
        mode in mode(),
        gpr in any::<[u64; 16]>(),
        rflags in any::<u64>(),
        device in any::<u64>(),
    ) {
        if let Ok(insn) = decode(&bytes, mode) {
            if let InsnKind::Mem(m) = insn.kind {
                let mut regs = FakeRegs { gpr, rflags };
                let mut accesses = 0;
                emulate_mmio(&m, &mut regs, &mut |_| { accesses += 1; device });
                prop_assert!((1..=2).contains(&accesses));
                let _ = m.mem.offset(&regs, 0);
            }
        }
    }

}

proptest! {
    #![proptest_config(cases(2_000))]

    #[test]
    fn walking_random_tables_never_panics(
        ram in prop::collection::vec(any::<u64>(), 0..2048),
        cr0 in any::<u64>(),
        cr3 in prop_oneof![any::<u64>(), 0u64..0x4000],
        cr4 in any::<u64>(),
        efer in any::<u64>(),
        phys_addr_bits in any::<u8>(),
        gbpages in any::<bool>(),
        gva in any::<u64>(),
        op in prop_oneof![Just(AccessOp::Read), Just(AccessOp::Write), Just(AccessOp::Fetch)],
        user in any::<bool>(),
        mode in mode(),
    ) {
        let bytes: Vec<u8> = ram.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mem = VecMemory(bytes);
        let cpu = PagingState { cr0, cr3, cr4, efer, phys_addr_bits, gbpages };
        if let Ok(t) = walk(&mem, &cpu, gva, AccessKind { op, user }) {
            prop_assert!(t.page_size.is_power_of_two() && t.page_size >= 4096);
        }
        let mut buf = [0; MAX_INSN_LEN];
        if let Ok(f) = fetch(&mem, &cpu, mode, cr3, gva, user, &mut buf) {
            prop_assert!((1..=MAX_INSN_LEN).contains(&f.len));
            prop_assert_eq!(f.stop.is_none(), f.len == MAX_INSN_LEN);
        }
    }
}

//! Any registers at a VMMCALL: the call returns a result or a documented
//! errno past the VMMCALL, or the caller takes the #PF or #GP its own
//! access would have taken with RIP and RAX left alone; only POWEROFF
//! stops the vCPU. The arguments lean on the guest's interesting pages
//! (kernel-only, unmapped, read-only, past RAM) and on lengths around the
//! limits.
use super::*;
use proptest::prelude::*;

/// The case count: `n`, or `PROPTEST_CASES` when set (the long run).
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n))
}

const ERRNOS: [i64; 7] = [EPERM, ENOENT, E2BIG, EAGAIN, EFAULT, EINVAL, ENOSYS];

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..=12, 1 => any::<u64>(), 1 => (0u64..=12).prop_map(|n| n | 0xFFFF_FFFF_0000_0000)]
}

fn argument() -> impl Strategy<Value = u64> {
    let page = prop::sample::select(vec![BUF, OUTSIDE, KERNEL_PAGE, UNMAPPED, READ_ONLY, 0, 0x1F_F000]);
    prop_oneof![
        3 => (page, -0x40i64..0x40).prop_map(|(p, d)| p.wrapping_add_signed(d)),
        2 => prop::sample::select(vec![0u64, 1, 63, 64, 255, 256, 4095, 4096, 4097]),
        1 => Just(u64::from(crate::fake::VM_ID)),
        1 => any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn any_call_returns_a_result_or_an_errno_or_faults_like_the_caller(
        nr in number(),
        args in prop::array::uniform3(argument()),
        cpl in prop_oneof![Just(0u64), Just(3)],
        wide in any::<bool>(),
    ) {
        let sys = if wide { guest(cpl) } else { protected_mode() };
        sys.state().nrips = Some(CODE + 3);
        let mut lp = vcpu_loop(&sys);
        sys.put(Reg::Rax, nr);
        for (r, v) in [Reg::Rbx, Reg::Rcx, Reg::Rdx].into_iter().zip(args) {
            sys.put(r, v);
        }
        sys.script([VmExit::Vmmcall]);
        sys.take_calls();
        let step = lp.step();
        let calls = sys.take_calls();
        let low = if wide { nr } else { nr & 0xFFFF_FFFF };
        if let Err(stop) = step {
            prop_assert_eq!(low, POWEROFF, "call {:#x} stopped the vCPU: {}", nr, stop);
            return Ok(());
        }
        let completed = calls.iter().any(|c| matches!(c, Call::Complete { .. }));
        let faulted = calls.iter().any(|c| match c {
            Call::Inject(ev) => matches!(ev.vector(), 13 | 14),
            _ => false,
        });
        prop_assert!(completed != faulted, "call {nr:#x} {args:x?}: completed {completed}, faulted {faulted}: {calls:?}");
        let rax = sys.get(Reg::Rax);
        if completed {
            let result = rax as i64;
            prop_assert!(result >= 0 || ERRNOS.contains(&result), "call {nr:#x} {args:x?} returned {result}");
        } else {
            prop_assert_eq!(rax, nr, "a faulting call leaves RAX alone");
            prop_assert!(!calls.iter().any(|c| matches!(c, Call::ChanSend { .. })), "a faulting call has no effect");
        }
    }
}

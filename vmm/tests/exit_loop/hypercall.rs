//! VMMCALL through the hypercall service: every call number, its result in
//! RAX, and the documented errors (docs/hypercalls.md).
use crate::fake::{Call, FakeSys, CHANNEL_DEPTH, TSC_HZ, VM_ID};
use crate::*;
use hvabi::errno::*;
use hvabi::nr::*;
use sysabi::{CpuUsage, NextRipSource, Reg};
use vmm::hypercall::{ABI_VERSION, STATS_RECORDS_SIZE, STATS_SIZE};
use vmm::vcpu::Stop;

mod props;

const VMMCALL: [u8; 3] = [0x0F, 0x01, 0xD9];
/// A guest buffer inside RAM.
const BUF: u64 = 0x8000;
/// A linear address whose page maps guest-physical memory past RAM.
const OUTSIDE: u64 = RAM as u64 + 0x1000;
/// A page only the guest kernel may touch.
const KERNEL_PAGE: u64 = 0x9000;
/// A page that is not mapped.
const UNMAPPED: u64 = 0xA000;
/// A page user code may read but not write.
const READ_ONLY: u64 = 0xB000;
/// Where the guest's page tables live.
const TABLES: u64 = 0x7_0000;

/// A 64-bit guest at CPL `cpl` whose CPU has NRIPS, so VMMCALL completes
/// at RIP + 3 without being fetched. Its tables map the first 2 MiB of
/// linear addresses to the same guest-physical ones, as user pages, except
/// the three pages named above.
fn guest(cpl: u64) -> FakeSys {
    let sys = long_mode();
    sys.put(Reg::Cpl, cpl);
    sys.state().nrips = Some(CODE + 3);
    const P_RW_US: u64 = 0x7;
    let entry = |sys: &FakeSys, at: u64, v: u64| sys.poke(at, &v.to_le_bytes());
    entry(&sys, TABLES, (TABLES + 0x1000) | P_RW_US);
    entry(&sys, TABLES + 0x1000, (TABLES + 0x2000) | P_RW_US);
    entry(&sys, TABLES + 0x2000, (TABLES + 0x3000) | P_RW_US);
    for page in 0..512u64 {
        let flags = match page * 0x1000 {
            KERNEL_PAGE => 0x3,
            UNMAPPED => 0,
            READ_ONLY => 0x5,
            _ => P_RW_US,
        };
        entry(&sys, TABLES + 0x3000 + page * 8, (page * 0x1000) | flags);
    }
    sys.put(Reg::Cr3, TABLES);
    sys
}

/// Makes hypercall `nr` with arguments RBX, RCX, RDX; returns RAX.
fn call(sys: &FakeSys, nr: u64, args: [u64; 3]) -> i64 {
    let mut lp = vcpu_loop(sys);
    sys.put(Reg::Rip, CODE);
    sys.put(Reg::Rax, nr);
    for (r, v) in [Reg::Rbx, Reg::Rcx, Reg::Rdx].into_iter().zip(args) {
        sys.put(r, v);
    }
    sys.script([VmExit::Vmmcall]);
    step_ok(&mut lp);
    sys.get(Reg::Rax) as i64
}

fn check(sys: &FakeSys, nr: u64, args: [u64; 3], expected: i64) {
    let seen = call(sys, nr, args);
    assert_eq!(seen, expected, "call {nr} with {args:x?}: expected {expected}, saw {seen}");
}

#[test]
fn version_and_ping_answer_and_complete_at_the_next_rip() {
    let sys = guest(0);
    check(&sys, VERSION, [0; 3], ABI_VERSION);
    let calls = sys.take_calls();
    let complete = Call::Complete { next_rip: CODE + 3, from: NextRipSource::Nrips };
    assert!(calls.contains(&complete), "expected {complete:?} among {calls:?}");
    check(&sys, PING, [0; 3], 0);
}

#[test]
fn vmmcall_without_nrips_is_decoded_to_find_the_next_rip() {
    let sys = protected_mode();
    sys.poke(CODE, &VMMCALL);
    check(&sys, VERSION, [0; 3], ABI_VERSION);
    let calls = sys.take_calls();
    let complete = Call::Complete { next_rip: CODE + 3, from: NextRipSource::Decoded };
    assert!(calls.contains(&complete), "expected {complete:?} among {calls:?}");
}

#[test]
fn unknown_call_numbers_get_enosys_at_any_cpl() {
    for cpl in [0, 3] {
        for nr in [11, 0x100, u64::MAX] {
            check(&guest(cpl), nr, [0; 3], ENOSYS);
        }
    }
}

#[test]
fn outside_64_bit_mode_only_the_low_32_bits_count() {
    let sys = protected_mode();
    sys.state().nrips = Some(CODE + 3);
    check(&sys, 0xFFFF_FFFF_0000_0000 | VERSION, [0; 3], ABI_VERSION);
    // The same number in 64-bit mode is unknown.
    check(&guest(0), 0xFFFF_FFFF_0000_0000 | VERSION, [0; 3], ENOSYS);
}

#[test]
fn lookup_maps_names_and_reports_enoent_e2big_and_efault() {
    let sys = guest(3);
    sys.poke(BUF, b"chan_send");
    check(&sys, LOOKUP, [BUF, 9, 0], CHAN_SEND as i64);
    check(&sys, LOOKUP, [BUF, 4, 0], ENOENT);
    check(&sys, LOOKUP, [BUF, hvabi::MAX_NAME as u64 + 1, 0], E2BIG);
    check(&sys, LOOKUP, [OUTSIDE, 4, 0], EFAULT);
}

#[test]
fn info_writes_its_64_bytes_or_reports_e2big_and_efault() {
    let sys = guest(3);
    check(&sys, INFO, [BUF, hvabi::info::LEN as u64, 0], hvabi::info::LEN as i64);
    let reply = sys.peek(BUF, hvabi::info::LEN);
    let expected = vmm::hypercall::encode_info(VM_ID, 1, RAM as u64, 0, TSC_HZ);
    assert_eq!(reply, expected, "INFO's reply");
    check(&sys, INFO, [BUF + 0x100, hvabi::info::LEN as u64 - 1, 0], E2BIG);
    assert_eq!(sys.peek(BUF + 0x100, 4), [0; 4], "a refused INFO writes nothing");
    check(&sys, INFO, [OUTSIDE, 64, 0], EFAULT);
    check(&sys, INFO, [RAM as u64 - 63, 64, 0], EFAULT);
}

#[test]
fn stats_writes_the_vcpus_statistics_and_the_vms_cpu_use_or_reports_e2big() {
    let sys = guest(3);
    let cpu = CpuUsage { guest_ns: 5_000_000, vmm_ns: 250_000, elapsed_ns: 10_000_000 };
    sys.state().cpu = cpu;
    check(&sys, STATS, [BUF, 4096, 0], STATS_SIZE as i64);
    let magic = u32::from_le_bytes(sys.peek(BUF, 4).try_into().unwrap());
    assert_eq!(magic, hvabi::stats::MAGIC);
    let u64_at = |at: usize| u64::from_le_bytes(sys.peek(BUF + at as u64, 8).try_into().unwrap());
    let at = STATS_RECORDS_SIZE;
    assert_eq!(sys.peek(BUF + at as u64, 4), b"CVCP", "the CPU section's magic after the records");
    let seen = [u64_at(at + 8), u64_at(at + 16), u64_at(at + 24)];
    assert_eq!(seen, [cpu.guest_ns, cpu.vmm_ns, cpu.elapsed_ns], "guest_ns, vmm_ns, elapsed_ns");
    // A buffer that ends at the records (ABI version 1) gets them alone.
    check(&sys, STATS, [BUF + 0x4000, STATS_SIZE as u64 - 1, 0], STATS_RECORDS_SIZE as i64);
    assert_eq!(sys.peek(BUF + 0x4000 + at as u64, 4), [0; 4], "no CPU section written");
    check(&sys, STATS, [BUF, STATS_RECORDS_SIZE as u64 - 1, 0], E2BIG);
    check(&sys, STATS, [OUTSIDE, 4096, 0], EFAULT);
}

#[test]
fn stats_reset_and_poweroff_are_refused_from_cpl_3() {
    let sys = guest(3);
    check(&sys, STATS_RESET, [0; 3], EPERM);
    check(&sys, POWEROFF, [0; 3], EPERM);
    let calls = sys.take_calls();
    assert!(!calls.contains(&Call::ResetStats), "a refused call has no effect: {calls:?}");
}

#[test]
fn stats_reset_from_cpl_0_resets_the_vcpus_statistics() {
    let sys = guest(0);
    check(&sys, STATS_RESET, [0; 3], 0);
    assert!(sys.take_calls().contains(&Call::ResetStats));
}

#[test]
fn poweroff_from_cpl_0_stops_the_vm() {
    let sys = guest(0);
    let mut lp = vcpu_loop(&sys);
    sys.put(Reg::Rax, POWEROFF);
    sys.script([VmExit::Vmmcall]);
    assert_eq!(lp.step(), Err(Stop::PowerOff));
}

#[test]
fn console_write_takes_the_text_or_reports_e2big_and_efault() {
    let sys = guest(3);
    sys.poke(BUF, b"hello from the guest\n");
    check(&sys, CONSOLE_WRITE, [BUF, 21, 0], 21);
    check(&sys, CONSOLE_WRITE, [BUF, 0, 0], 0);
    check(&sys, CONSOLE_WRITE, [BUF, hvabi::MAX_CONSOLE as u64 + 1, 0], E2BIG);
    check(&sys, CONSOLE_WRITE, [RAM as u64 - 10, 11, 0], EFAULT);
}

#[test]
fn channel_to_itself_carries_messages_and_reports_eagain_e2big_efault_einval() {
    let sys = guest(3);
    let me = u64::from(VM_ID);
    check(&sys, CHAN_RECV, [me, BUF, 64], EAGAIN);
    sys.poke(BUF, b"ping!");
    check(&sys, CHAN_SEND, [me, BUF, 5], 0);
    let calls = sys.take_calls();
    assert!(calls.contains(&Call::ChanSend { peer: VM_ID, msg: b"ping!".to_vec() }), "{calls:?}");
    check(&sys, CHAN_RECV, [me, BUF + 0x100, 4], E2BIG);
    check(&sys, CHAN_RECV, [me, BUF + 0x100, 64], 5);
    assert_eq!(sys.peek(BUF + 0x100, 5), b"ping!");
    check(&sys, CHAN_SEND, [me, BUF, hvabi::MAX_MESSAGE as u64 + 1], E2BIG);
    check(&sys, CHAN_SEND, [me, OUTSIDE, 5], EFAULT);
    check(&sys, CHAN_RECV, [me, OUTSIDE, 5], EFAULT);
    check(&sys, CHAN_SEND, [7, BUF, 5], EINVAL);
    check(&sys, CHAN_SEND, [1 << 40, BUF, 5], EINVAL);
    for _ in 0..CHANNEL_DEPTH {
        check(&sys, CHAN_SEND, [me, BUF, 5], 0);
    }
    check(&sys, CHAN_SEND, [me, BUF, 5], EAGAIN);
}

#[test]
fn yield_gives_up_the_cpu_and_rereads_the_clock_after_others_ran() {
    let sys = guest(3);
    check(&sys, YIELD, [0; 3], 0);
    assert!(sys.take_calls().contains(&Call::Yield));
    sys.state().others_ready = true;
    sys.state().yield_ns = 5_000_000;
    let mut lp = vcpu_loop(&sys);
    sys.put(Reg::Rax, YIELD);
    sys.script([VmExit::Vmmcall]);
    step_ok(&mut lp);
    let now = sys.state().now_ns;
    assert_eq!(lp.now_ns, now, "the exit's guest time after others ran");
}

/// Makes hypercall `nr`, which must fault instead of returning: the guest
/// takes `vector` (with `error_code`, and CR2 for #PF) at the VMMCALL, whose
/// RIP stays, so the call runs again after the guest's handler.
fn check_fault(sys: &FakeSys, nr: u64, args: [u64; 3], vector: u8, error_code: u32, cr2: Option<u64>) {
    sys.take_calls();
    sys.put(Reg::Rax, nr);
    let rax = call(sys, nr, args) as u64;
    assert_eq!(rax, nr, "call {nr} with {args:x?}: RAX must be left alone");
    let calls = sys.take_calls();
    let ev = vmcb::EventInj::exception_with_error(vector, error_code);
    assert!(calls.contains(&Call::Inject(ev)), "expected {ev:?} among {calls:?}");
    assert!(!calls.iter().any(|c| matches!(c, Call::Complete { .. })), "RIP must stay on the VMMCALL: {calls:?}");
    if let Some(cr2) = cr2 {
        assert!(calls.contains(&Call::SetReg(Reg::Cr2, cr2)), "expected CR2 = {cr2:#x} among {calls:?}");
    }
    assert!(!calls.iter().any(|c| matches!(c, Call::ChanSend { .. })), "a faulting call has no effect: {calls:?}");
}

const PF: u8 = 14;
const GP: u8 = 13;
const PF_PRESENT: u32 = 1;
const PF_WRITE: u32 = 2;
const PF_USER: u32 = 4;

#[test]
fn a_user_caller_cannot_name_kernel_memory_and_takes_the_page_fault_it_would_take() {
    let sys = guest(3);
    sys.poke(KERNEL_PAGE, b"secret");
    check_fault(&sys, CONSOLE_WRITE, [KERNEL_PAGE, 6, 0], PF, PF_PRESENT | PF_USER, Some(KERNEL_PAGE));
    check_fault(&sys, CHAN_SEND, [u64::from(VM_ID), KERNEL_PAGE, 6], PF, PF_PRESENT | PF_USER, Some(KERNEL_PAGE));
    check_fault(&sys, INFO, [KERNEL_PAGE, 64, 0], PF, PF_PRESENT | PF_WRITE | PF_USER, Some(KERNEL_PAGE));
    assert_eq!(sys.peek(KERNEL_PAGE, 6), b"secret", "kernel memory is untouched");
    // A buffer that starts in user memory and runs into the kernel's page
    // faults at the kernel page's first byte, and nothing is written.
    check_fault(&sys, STATS, [KERNEL_PAGE - 8, 4096, 0], PF, PF_PRESENT | PF_WRITE | PF_USER, Some(KERNEL_PAGE));
    assert_eq!(sys.peek(KERNEL_PAGE - 8, 8), [0; 8], "a faulting call writes nothing");
    // The guest kernel may use the page.
    check(&guest(0), CONSOLE_WRITE, [KERNEL_PAGE, 6, 0], 6);
}

#[test]
fn unmapped_and_read_only_pages_fault_like_the_callers_own_access() {
    let sys = guest(3);
    check_fault(&sys, LOOKUP, [UNMAPPED + 0x10, 4, 0], PF, PF_USER, Some(UNMAPPED + 0x10));
    sys.poke(READ_ONLY, b"ping");
    check(&sys, LOOKUP, [READ_ONLY, 4, 0], PING as i64);
    check_fault(
        &sys,
        CHAN_RECV,
        [u64::from(VM_ID), READ_ONLY, 64],
        PF,
        PF_PRESENT | PF_WRITE | PF_USER,
        Some(READ_ONLY),
    );
    check_fault(&guest(0), INFO, [UNMAPPED, 64, 0], PF, PF_WRITE, Some(UNMAPPED));
}

#[test]
fn a_message_stays_queued_when_the_receive_buffer_faults() {
    let sys = guest(3);
    let me = u64::from(VM_ID);
    sys.poke(BUF, b"kept");
    check(&sys, CHAN_SEND, [me, BUF, 4], 0);
    check_fault(&sys, CHAN_RECV, [me, UNMAPPED, 64], PF, PF_WRITE | PF_USER, Some(UNMAPPED));
    check(&sys, CHAN_RECV, [me, BUF + 0x200, 64], 4);
    assert_eq!(sys.peek(BUF + 0x200, 4), b"kept");
}

#[test]
fn a_non_canonical_buffer_is_a_general_protection_fault() {
    check_fault(&guest(3), CONSOLE_WRITE, [0x8000_0000_0000, 4, 0], GP, 0, None);
}

#[test]
fn a_written_reply_marks_its_page_accessed_and_dirty() {
    let sys = guest(3);
    let pte = TABLES + 0x3000 + (BUF / 0x1000) * 8;
    check(&sys, INFO, [BUF, 64, 0], 64);
    let flags = u64::from_le_bytes(sys.peek(pte, 8).try_into().unwrap()) & 0x60;
    assert_eq!(flags, 0x60, "INFO wrote the page: A and D must be set");
}

//! `run_guest`: a raw 16-bit image loaded at 0000:7C00, run to its stop,
//! with the ports it probed in vain reported in the log; and the limit on
//! the log lines a guest causes (`vmm::guestlog`), seen in the log.
use crate::fake::{FakeSys, GRANTS, VM};
use crate::*;
use std::sync::Mutex;
use sysabi::Reg;
use vmcb::IoDirection::In;
use vmm::launch::{run_guest, GuestConfig, RAW16_LOAD};
use vmm::vcpu::Stop;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

/// A VM named `name` that runs `image` as a raw 16-bit image, in all of
/// the fake's RAM.
fn raw_guest<'a>(name: &'a str, image: &'a [u8]) -> GuestConfig<'a> {
    GuestConfig {
        name,
        image,
        initrd: None,
        initrd_cmdline: "",
        cmdline: "",
        mem: RAM as u64,
        raw16: true,
        debug_exit: false,
        virtio_console: false,
        vcpus: 1,
        extra_vcpu_cpu: sysabi::ThreadCpu::LeastLoaded,
    }
}

#[test]
fn run_guest_loads_a_raw_image_runs_it_and_reports_unassigned_ports() {
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Info);
    let sys = FakeSys::new(RAM);
    let image = [0xE4, 0x2E, 0xF4]; // in al, 0x2e; hlt
    sys.script([io_exit(0x2E, 1, In, RAW16_LOAD + 2), io_exit(0x4E, 2, In, RAW16_LOAD + 2), VmExit::Shutdown]);
    let cfg = raw_guest("raw", &image);
    let out = run_guest(&sys, GRANTS, &cfg, Default::default(), 0).expect("a raw image that fits is started");
    assert_eq!(out.stop, Stop::TripleFault { rip: RAW16_LOAD + 2 });
    assert_eq!(sys.peek(RAW16_LOAD, 3), image, "the image at 0000:7C00");
    assert_eq!(out.stats.get(sysabi::ExitReason::Io).count, 2);
    assert_eq!(sys.get(Reg::Rip), RAW16_LOAD + 2, "RIP after the two port reads");
    let lines = LINES.lock().unwrap().clone();
    let expected = "raw: ports no device answers: 0x2e=1 0x4e=1 (2 accesses)";
    assert!(lines.iter().any(|l| l == expected), "expected {expected:?} in the log, saw {lines:#?}");
}

#[test]
fn a_flood_of_refused_msrs_logs_a_burst_and_the_count_of_the_rest_at_stop() {
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Info);
    let sys = FakeSys::new(RAM);
    // 10,000 RDMSRs of an MSR the VMM refuses, 1 µs apart: 10 ms of host
    // time, which earns no line back at the budget's rate.
    let floods = 10_000;
    sys.put(Reg::Rcx, 0xC001_DEAD);
    sys.script((0..floods).map(|_| VmExit::Msr(vmcb::MsrExitKind::Rdmsr)).chain([VmExit::Shutdown]));
    let image = [0x0F, 0x32]; // rdmsr
    let cfg = raw_guest("msrflood", &image);
    let out = run_guest(&sys, GRANTS, &cfg, Default::default(), 0).expect("a raw image that fits is started");
    assert_eq!(out.stop, Stop::TripleFault { rip: RAW16_LOAD });
    let lines = LINES.lock().unwrap().clone();
    let refused = lines.iter().filter(|l| l.as_str() == "msrflood: rdmsr 0xc001dead refused (#GP)").count() as u64;
    assert_eq!(refused, vmm::guestlog::BURST_LINES, "refused-MSR lines logged (of {floods})");
    let expected = format!("msrflood: {} log lines suppressed", floods - vmm::guestlog::BURST_LINES);
    assert!(lines.contains(&expected), "expected {expected:?} in the log at stop");
}

#[test]
fn the_count_of_suppressed_lines_is_logged_at_the_first_exit_after_the_limit_lifts() {
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Info);
    let sys = protected_mode();
    let board = Board::new(BoardConfig { rtc_epoch_seconds: 1_700_000_000, ram_size: RAM as u64, vcpus: 1 }, "msrlift")
        .expect("the board's devices are wired without overlaps");
    let shared = crate::one_vcpu_vm(board);
    let mut lp = VcpuLoop::new("msrlift", &sys, GRANTS, (VM, 0), RAM as u64, shared).expect("the fake answers");
    sys.put(Reg::Rcx, 0xC001_DEAD);
    let floods = vmm::guestlog::BURST_LINES + 30;
    sys.script((0..floods).map(|_| VmExit::Msr(vmcb::MsrExitKind::Rdmsr)));
    for _ in 0..floods {
        step_ok(&mut lp);
    }
    let expected = "msrlift: 30 log lines suppressed";
    assert!(!LINES.lock().unwrap().iter().any(|l| l == expected), "not while the limit holds");
    // A second later the guest makes a quiet exit (a read of an unassigned port).
    sys.state().now_ns += 1_000_000_000;
    sys.script([io_exit(0x2E, 1, In, CODE + 2)]);
    step_ok(&mut lp);
    let lines = LINES.lock().unwrap().clone();
    assert_eq!(lines.iter().filter(|l| *l == expected).count(), 1, "expected {expected:?} once in the log");
}

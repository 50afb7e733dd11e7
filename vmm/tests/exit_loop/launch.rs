//! `run_guest`: a raw 16-bit image loaded at 0000:7C00, run to its stop,
//! with the ports it probed in vain reported in the log.
use crate::fake::{FakeSys, GRANTS};
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

#[test]
fn run_guest_loads_a_raw_image_runs_it_and_reports_unassigned_ports() {
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Info);
    let sys = FakeSys::new(RAM);
    let image = [0xE4, 0x2E, 0xF4]; // in al, 0x2e; hlt
    sys.script([io_exit(0x2E, 1, In, RAW16_LOAD + 2), io_exit(0x4E, 2, In, RAW16_LOAD + 2), VmExit::Shutdown]);
    let cfg = GuestConfig {
        name: "raw",
        image: &image,
        initrd: None,
        initrd_cmdline: "",
        cmdline: "",
        mem: RAM as u64,
        raw16: true,
        debug_exit: false,
    };
    let out = run_guest(&sys, GRANTS, &cfg, 0).expect("a raw image that fits is started");
    assert_eq!(out.stop, Stop::TripleFault { rip: RAW16_LOAD + 2 });
    assert_eq!(sys.peek(RAW16_LOAD, 3), image, "the image at 0000:7C00");
    assert_eq!(out.stats.get(sysabi::ExitReason::Io).count, 2);
    assert_eq!(sys.get(Reg::Rip), RAW16_LOAD + 2, "RIP after the two port reads");
    let lines = LINES.lock().unwrap().clone();
    let expected = "raw: ports no device answers: 0x2e=1 0x4e=1 (2 accesses)";
    assert!(lines.iter().any(|l| l == expected), "expected {expected:?} in the log, saw {lines:#?}");
}

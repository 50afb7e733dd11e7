//! Which guests to run, from the boot modules.
//!
//! Each module's command line is `NAME [hv.OPTION=VALUE]... [GUEST ARGS]...`:
//! the first word names the file (QEMU puts its path there), words starting
//! with `hv.` configure the VM, and everything else is the guest's command
//! line. A module holding a kernel image starts a VM; a module that is not a
//! kernel, right after one, is that kernel's initrd.
//!
//! VM options: `hv.mem=SIZE` (RAM, default from `mem=`), `hv.format=raw16`
//! (a flat real-mode binary entered at 0000:7C00), `hv.debug-exit=on`
//! (pass port 0xF4 through), `hv.virtio-console=on` (a virtio console,
//! hvc0), `hv.cpu=N` (run on host CPU N; by default the CPU with the
//! fewest VM threads), `hv.vcpus=N` (N vCPUs, 1 to
//! [`MAX_VCPUS`](vmm::dev::apics::MAX_VCPUS), default 1; a value outside
//! that range is reported and the VM keeps one). The threads of a pinned
//! VM's vCPUs all run on its CPU; an unpinned VM's vCPU 0 starts where the
//! VM does and each other vCPU on the host CPU with the fewest VM threads.
//!
//! A module whose line holds `hv.disk=rw` or `hv.disk=ro` is a disk of the
//! VM of the kernel before it (after its initrd and earlier disks, if
//! any): the first is /dev/vda, the next /dev/vdb, up to [`MAX_DISKS`]. It
//! is never looked at as a kernel.
use super::cmdline::{parse_size, Options, Problems, MAX_GUEST_MEM, MIN_GUEST_MEM};
use super::{bounded, Module, MAX_CMDLINE, MAX_MODULES};
use arrayvec::{ArrayString, ArrayVec};

/// One VM to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPlan {
    /// Index of the kernel module.
    pub kernel: usize,
    /// Index of the initrd module.
    pub initrd: Option<usize>,
    /// The initrd module's command line after its name.
    pub initrd_cmdline: ArrayString<MAX_CMDLINE>,
    pub cmdline: ArrayString<512>,
    pub mem: u64,
    pub raw16: bool,
    pub debug_exit: bool,
    /// The host CPU the VM is pinned to (`hv.cpu=N`).
    pub cpu: Option<usize>,
    pub virtio_console: bool,
    /// vCPUs (`hv.vcpus=N`).
    pub vcpus: usize,
    /// The disk modules, in order, and whether each is writable.
    pub disks: ArrayVec<Disk, MAX_DISKS>,
}

/// Disks per VM: the virtio slots less one for the console.
pub use vmm::launch::MAX_DISKS;

/// A disk module of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    /// Index of the module.
    pub module: usize,
    pub writable: bool,
}

/// `Some(writable)` if the module line's words after the name say
/// `hv.disk=rw` or `hv.disk=ro` (the last such word wins).
fn disk_option(cmdline: &str) -> Option<bool> {
    cmdline.split_ascii_whitespace().skip(1).filter_map(|w| w.strip_prefix("hv.disk=")).last().map(|v| v == "rw")
}

/// Plans the VMs, at most `max_vms` (each kernel past them is refused and
/// reported). `is_kernel(i)` says whether module `i` holds a kernel image
/// the loaders recognise.
pub fn plan(
    modules: &[Module],
    opts: &Options,
    max_vms: usize,
    is_kernel: impl Fn(usize) -> bool,
) -> (ArrayVec<GuestPlan, MAX_MODULES>, Problems) {
    let mut plans: ArrayVec<GuestPlan, MAX_MODULES> = ArrayVec::new();
    let mut problems = Problems::new();
    let mut report = |word: &str, reason: &'static str| problems.report(word, reason);
    for (i, m) in modules.iter().enumerate() {
        let mut words = m.cmdline.split_ascii_whitespace();
        let name = words.next().unwrap_or("");
        if !m.cmdline_whole {
            // The boot log says why (too long, or not UTF-8): the VM would
            // run with a line it was not given.
            report(name, "module command line not taken whole; module refused");
            continue;
        }
        if let Some(writable) = disk_option(&m.cmdline) {
            let bad_value = !m.cmdline.split_ascii_whitespace().any(|w| w == "hv.disk=rw" || w == "hv.disk=ro");
            match plans.last_mut() {
                _ if bad_value => report(name, "hv.disk takes rw or ro; module ignored"),
                None => report(name, "disk module before any kernel; ignored"),
                Some(last) => {
                    if last.disks.try_push(Disk { module: i, writable }).is_err() {
                        report(name, "more disks than a VM takes; ignored");
                    }
                }
            }
            continue;
        }
        let mut p = GuestPlan {
            kernel: i,
            initrd: None,
            initrd_cmdline: ArrayString::new(),
            cmdline: ArrayString::new(),
            mem: opts.guest_mem,
            raw16: false,
            debug_exit: opts.debug_exit_passthrough,
            cpu: None,
            virtio_console: false,
            vcpus: 1,
            disks: ArrayVec::new(),
        };
        let mut guest_words = 0;
        let mut too_long = false;
        for w in words {
            if let Some(opt) = w.strip_prefix("hv.") {
                match opt.split_once('=') {
                    Some(("mem", v)) => match parse_size(v) {
                        Some(s) if (MIN_GUEST_MEM..=MAX_GUEST_MEM).contains(&s) && s % (2 << 20) == 0 => p.mem = s,
                        _ => report(w, "guest memory must be a multiple of 2M between 16M and 3G; ignored"),
                    },
                    Some(("format", "raw16")) => p.raw16 = true,
                    Some(("debug-exit", "on")) => p.debug_exit = true,
                    Some(("debug-exit", "off")) => p.debug_exit = false,
                    Some(("cpu", v)) => match v.parse::<usize>() {
                        Ok(c) if c < crate::thread::MAX_CPUS => p.cpu = Some(c),
                        _ => report(w, "hv.cpu must be a host CPU index below 8; ignored"),
                    },
                    Some(("vcpus", v)) => match v.parse::<usize>() {
                        Ok(n) if (1..=vmm::dev::apics::MAX_VCPUS).contains(&n) => p.vcpus = n,
                        _ => report(w, "hv.vcpus must be a count from 1 to 16; ignored (1 vCPU)"),
                    },
                    Some(("virtio-console", "on")) => p.virtio_console = true,
                    Some(("virtio-console", "off")) => p.virtio_console = false,
                    _ => report(w, "unknown VM option; ignored"),
                }
            } else {
                let sep = if guest_words == 0 { "" } else { " " };
                if p.cmdline.try_push_str(sep).and_then(|_| p.cmdline.try_push_str(w)).is_err() {
                    too_long = true;
                    break;
                }
                guest_words += 1;
            }
        }
        if guest_words == 0 {
            p.cmdline = opts.guest_cmdline;
        }
        if (p.raw16 || is_kernel(i)) && too_long {
            report(name, "guest command line longer than 512 bytes; VM refused");
        } else if (p.raw16 || is_kernel(i)) && plans.len() == max_vms {
            report(name, "more VMs than the hypervisor runs at once; VM refused");
        } else if p.raw16 || is_kernel(i) {
            let _ = plans.try_push(p);
        } else if let Some(last) =
            plans.last_mut().filter(|l| l.initrd.is_none() && l.disks.is_empty() && l.kernel + 1 == i)
        {
            last.initrd = Some(i);
            last.initrd_cmdline = bounded(m.cmdline.split_once(' ').map_or("", |(_, rest)| rest.trim()));
        } else {
            report(name, "module is neither a kernel nor an initrd right after one; ignored");
        }
    }
    (plans, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(cmdline: &str) -> Module {
        Module { start: 0x100000, end: 0x200000, cmdline: bounded(cmdline), cmdline_whole: true }
    }

    #[test]
    fn kernel_then_initrd_make_one_vm_with_its_command_line() {
        let mods = [module("/x/bzImage console=ttyS0 quiet hv.mem=64M"), module("/x/initramfs.cpio")];
        let (plans, problems) = plan(&mods, &Options::default(), 8, |i| i == 0);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].initrd, Some(1));
        assert_eq!(plans[0].initrd_cmdline.as_str(), "");
        assert_eq!(plans[0].cmdline.as_str(), "console=ttyS0 quiet");
        assert_eq!(plans[0].mem, 64 << 20);
    }

    #[test]
    fn two_kernels_make_two_vms() {
        let mods = [module("a.elf mode=npf"), module("b.elf hv.debug-exit=on")];
        let (plans, _) = plan(&mods, &Options::default(), 8, |_| true);
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].cmdline.as_str(), "mode=npf");
        assert!(plans[1].debug_exit);
    }

    #[test]
    fn hv_cpu_pins_a_vm_and_an_index_past_the_cpu_tables_is_reported() {
        let mods = [module("a.elf hv.cpu=1"), module("b.elf hv.cpu=8"), module("c.elf hv.cpu=one")];
        let (plans, problems) = plan(&mods, &Options::default(), 8, |_| true);
        let cpus: Vec<_> = plans.iter().map(|p| p.cpu).collect();
        assert_eq!(cpus, [Some(1), None, None], "pinned CPUs");
        let words: Vec<_> = problems.iter().map(|p| p.word.as_str()).collect();
        assert_eq!(words, ["hv.cpu=8", "hv.cpu=one"], "reported options");
    }

    #[test]
    fn hv_vcpus_sets_the_vcpu_count_and_a_count_out_of_range_is_reported_and_leaves_one() {
        let mods = [
            module("a.elf hv.vcpus=2"),
            module("b.elf"),
            module("c.elf hv.vcpus=0"),
            module("d.elf hv.vcpus=17"),
            module("e.elf hv.vcpus=16"),
            module("f.elf hv.vcpus=two"),
        ];
        let (plans, problems) = plan(&mods, &Options::default(), 8, |_| true);
        let vcpus: Vec<_> = plans.iter().map(|p| p.vcpus).collect();
        assert_eq!(vcpus, [2, 1, 1, 1, 16, 1], "vCPUs per VM");
        let words: Vec<_> = problems.iter().map(|p| p.word.as_str()).collect();
        assert_eq!(words, ["hv.vcpus=0", "hv.vcpus=17", "hv.vcpus=two"], "reported options");
    }

    #[test]
    fn disk_modules_join_the_vm_before_them_in_order_and_are_never_probed_as_kernels() {
        let mods = [
            module("k1 hv.virtio-console=on"),
            module("initrd"),
            module("root.img hv.disk=rw"),
            module("data.img hv.disk=ro"),
            module("k2"),
            module("other.img hv.disk=ro"),
        ];
        let probed = std::cell::RefCell::new(Vec::new());
        let (plans, problems) = plan(&mods, &Options::default(), 8, |i| {
            probed.borrow_mut().push(i);
            i == 0 || i == 4
        });
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].initrd, Some(1));
        assert!(plans[0].virtio_console);
        let disks0: Vec<_> = plans[0].disks.iter().map(|d| (d.module, d.writable)).collect();
        assert_eq!(disks0, [(2, true), (3, false)]);
        assert_eq!(plans[1].disks.iter().map(|d| d.module).collect::<Vec<_>>(), [5]);
        assert!(!plans[1].virtio_console);
        assert!(!probed.borrow().iter().any(|i| [2, 3, 5].contains(i)), "disks probed: {:?}", probed.borrow());
    }

    #[test]
    fn a_disk_before_any_kernel_or_with_a_bad_value_is_reported() {
        let mods = [module("early.img hv.disk=rw"), module("k"), module("x.img hv.disk=maybe")];
        let (plans, problems) = plan(&mods, &Options::default(), 8, |i| i == 1);
        assert!(plans[0].disks.is_empty());
        let seen: Vec<_> = problems.iter().map(|p| (p.word.as_str(), p.reason)).collect();
        assert_eq!(
            seen,
            [
                ("early.img", "disk module before any kernel; ignored"),
                ("x.img", "hv.disk takes rw or ro; module ignored")
            ]
        );
    }

    #[test]
    fn raw16_modules_are_guests_without_detection() {
        let (plans, _) = plan(&[module("g16.bin hv.format=raw16")], &Options::default(), 8, |_| false);
        assert!(plans[0].raw16);
    }

    #[test]
    fn stray_modules_and_bad_options_are_reported() {
        let mods = [module("junk.bin"), module("k hv.mem=1T hv.colour=blue")];
        let (plans, problems) = plan(&mods, &Options::default(), 8, |i| i == 1);
        assert_eq!(plans.len(), 1);
        let words: Vec<_> = problems.iter().map(|p| p.word.as_str()).collect();
        assert_eq!(words, ["junk.bin", "hv.mem=1T", "hv.colour=blue"]);
    }

    #[test]
    fn a_module_whose_line_did_not_arrive_whole_is_refused_not_run() {
        let mut bad = module("linux console=ttyS0");
        bad.cmdline_whole = false;
        let mods = [bad, module("initrd.cpio"), module("other console=ttyS0")];
        let (plans, problems) = plan(&mods, &Options::default(), 8, |i| i != 1);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].kernel, 2);
        let words: Vec<_> = problems.iter().map(|p| (p.word.as_str(), p.reason)).collect();
        assert_eq!(words[0], ("linux", "module command line not taken whole; module refused"));
        // Its initrd has no kernel before it any more, and says so.
        assert_eq!(words[1].0, "initrd.cpio");
    }

    #[test]
    fn a_guest_line_over_512_bytes_refuses_the_vm_rather_than_cutting_it() {
        let long = format!("k {}", "word ".repeat(120));
        let fits = format!("k {}", "w".repeat(512));
        let (plans, problems) = plan(&[module(&long), module(&fits)], &Options::default(), 8, |_| true);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].kernel, 1);
        assert_eq!(plans[0].cmdline.len(), 512);
        assert_eq!(problems[0].reason, "guest command line longer than 512 bytes; VM refused");
    }

    #[test]
    fn an_initrd_line_is_passed_on_whole() {
        let line = format!("initrd {}", "x".repeat(900));
        let (plans, _) = plan(&[module("k"), module(&line)], &Options::default(), 8, |i| i == 0);
        assert_eq!(plans[0].initrd_cmdline.len(), 900);
    }

    #[test]
    fn kernels_past_the_vm_limit_are_refused_by_name() {
        let mods: Vec<Module> = (0..4).map(|i| module(&format!("k{i}"))).collect();
        let (plans, problems) = plan(&mods, &Options::default(), 2, |_| true);
        assert_eq!(plans.iter().map(|p| p.kernel).collect::<Vec<_>>(), [0, 1]);
        let refused: Vec<_> = problems.iter().map(|p| (p.word.as_str(), p.reason)).collect();
        let why = "more VMs than the hypervisor runs at once; VM refused";
        assert_eq!(refused, [("k2", why), ("k3", why)]);
    }
}

//! The VM kvmbench measures in: one vCPU in 64-bit mode with KVM's
//! in-kernel PIC, IOAPIC and LAPIC (KVM_CREATE_IRQCHIP), the CPUID KVM
//! supports, and the guest of guest.rs. This file is the userspace half of
//! the VMM: it answers the exits KVM hands back.

use crate::guest::{self, DONE_PORT};
use crate::kinds::KvmKind;
use crate::kvm::{Exit, GuestMemory, Kvm, Vcpu, Vm};
use crate::kvm_abi::{Regs, EXIT_FAIL_ENTRY, EXIT_INTERNAL_ERROR, EXIT_SHUTDOWN};
use benchkit::Kind;

/// The IOAPIC's data window (KVM's in-kernel IOAPIC sits at 0xFEC0_0000).
const IOAPIC_WINDOW: u64 = 0xFEC0_0010;
/// KVM's IOAPIC version register: 24 pins (0x17 = highest entry), version
/// 0x11 (ioapic_read_indirect in arch/x86/kvm/ioapic.c).
const IOAPIC_VERSION: u64 = 0x0017_0011;
/// An address without memory or in-kernel device, served here. It is where
/// Certivisor's information device sits, which hvctl reads.
const USER_MMIO: u64 = 0xFEBF_F000;
const USER_MMIO_VALUE: u32 = u32::from_le_bytes(*b"KVMB");
/// The port served here, and the byte it reads (as Certivisor's debug port).
const USER_PORT: u16 = 0xE9;
const USER_PORT_VALUE: u8 = 0xE9;
/// How long one probe or timed loop may take. All of kvmbench's default
/// run takes 2 to 6 s in an L1 under QEMU here (icount or plain TCG).
const WATCHDOG_S: u32 = 120;

/// The VM with its one vCPU.
pub struct Machine<'vm> {
    vm: &'vm Vm,
    vcpu: Vcpu<'vm>,
}

/// Makes a VM for up to `max_samples` samples per kind.
pub fn create_vm(kvm: &Kvm, max_samples: usize) -> Result<Vm, String> {
    let size = guest::memory_size(max_samples).ok_or(format!("{max_samples} samples need more than 1 GiB"))?;
    let memory = GuestMemory::new(size).map_err(|e| e.to_string())?;
    for (gpa, entry) in guest::page_table_entries(size) {
        memory.write(gpa as usize, &entry.to_le_bytes());
    }
    memory.write(guest::CODE as usize, guest::code());
    let vm = kvm.create_vm(memory).map_err(|e| e.to_string())?;
    vm.create_irqchip().map_err(|e| e.to_string())?;
    Ok(vm)
}

/// 1 for the kinds whose exit comes to userspace, else 0.
fn exits_served_per_round(kind: KvmKind) -> u64 {
    u64::from(matches!(kind, KvmKind::IoUser | KvmKind::MmioUser))
}

/// Why an exit to userspace was not expected, in words.
fn unexpected(kind: KvmKind, exit: Exit, rip: u64) -> String {
    let what = match exit {
        Exit::IoIn { port, .. } | Exit::IoOut { port, .. } => format!("port {port:#x} reached userspace"),
        Exit::MmioRead { addr, .. } | Exit::MmioWrite { addr, .. } => format!("MMIO at {addr:#x} reached userspace"),
        Exit::Other { reason: EXIT_SHUTDOWN, .. } => "the guest shut down (triple fault)".into(),
        Exit::Other { reason: EXIT_FAIL_ENTRY, detail } => format!("VMRUN failed (hardware reason {detail:#x})"),
        Exit::Other { reason: EXIT_INTERNAL_ERROR, detail } => {
            format!("KVM internal error (suberror {})", detail as u32)
        }
        Exit::Other { reason, .. } => format!("exit reason {reason}"),
    };
    format!("{}: {what} ({exit:?}, guest RIP {rip:#x})", kind.name())
}

impl<'vm> Machine<'vm> {
    pub fn new(kvm: &Kvm, vm: &'vm Vm) -> Result<Machine<'vm>, String> {
        let e = |e: std::io::Error| e.to_string();
        let mut vcpu = vm.create_vcpu(0).map_err(e)?;
        vcpu.set_cpuid(&mut *kvm.supported_cpuid().map_err(e)?).map_err(e)?;
        let sregs = guest::long_mode(vcpu.sregs().map_err(e)?);
        vcpu.set_sregs(sregs).map_err(e)?;
        Ok(Machine { vm, vcpu })
    }

    /// Runs the guest from `entry` with `samples` rounds; returns its
    /// registers at the end and how many exits kvmbench answered.
    fn enter(&mut self, kind: KvmKind, entry: u64, samples: usize) -> Result<(Regs, usize), String> {
        let rbx = match kind {
            KvmKind::MmioKernel => IOAPIC_WINDOW,
            KvmKind::MmioUser => USER_MMIO,
            _ => 0,
        };
        let regs = Regs {
            rip: guest::CODE + entry,
            rdi: guest::SAMPLES,
            rsi: samples as u64,
            rbx,
            r9: 0,
            rflags: 2,
            ..Regs::default()
        };
        self.vcpu.set_regs(regs).map_err(|e| e.to_string())?;
        crate::kvm::watchdog(WATCHDOG_S).map_err(|e| format!("arming the watchdog: {e}"))?;
        let result = self.run_until_done(kind);
        crate::kvm::watchdog(0).map_err(|e| format!("disarming the watchdog: {e}"))?;
        Ok((self.vcpu.regs().map_err(|e| e.to_string())?, result?))
    }

    /// Answers the exits that come to userspace until the guest is done;
    /// returns how many were answered.
    fn run_until_done(&mut self, kind: KvmKind) -> Result<usize, String> {
        let mut served = 0;
        loop {
            let exit = self.vcpu.run().map_err(|e| {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    format!(
                        "{}: KVM_RUN did not come back within {WATCHDOG_S} s (does the kernel know its TSC rate? \
                         `dmesg | grep tsc`; KVM does not run a vCPU without it)",
                        kind.name()
                    )
                } else {
                    e.to_string()
                }
            })?;
            match exit {
                Exit::IoOut { port: DONE_PORT, .. } => break,
                Exit::IoIn { port: USER_PORT, size: 1, count: 1 } if kind == KvmKind::IoUser => {
                    self.vcpu.complete_io_in(&[USER_PORT_VALUE])
                }
                Exit::MmioRead { addr: USER_MMIO, len: 4 } if kind == KvmKind::MmioUser => {
                    self.vcpu.complete_mmio_read(&USER_MMIO_VALUE.to_le_bytes())
                }
                other => return Err(unexpected(kind, other, self.vcpu.regs().map_or(0, |r| r.rip))),
            }
            served += 1;
        }
        Ok(served)
    }

    /// Does the operation once and checks what it returned.
    pub fn probe(&mut self, kind: KvmKind) -> Result<(), String> {
        let (regs, served) = self.enter(kind, guest::entries(kind).0, 1)?;
        let low32 = |v: u64| v & 0xFFFF_FFFF;
        let check = |what: &str, seen: u64, want: u64| {
            if seen == want {
                Ok(())
            } else {
                Err(format!("{}: {what} is {seen:#x}, expected {want:#x}", kind.name()))
            }
        };
        let signature = |r: &Regs| {
            let mut s = Vec::new();
            for v in [r.rbx, r.rcx, r.rdx] {
                s.extend_from_slice(&(v as u32).to_le_bytes());
            }
            s
        };
        match kind {
            KvmKind::Vmmcall => check("RAX after VMMCALL", regs.rax, 0),
            KvmKind::Cpuid if signature(&regs) != b"KVMKVMKVM\0\0\0" => Err(format!(
                "cpuid: leaf 0x40000000 signature is {:?}, expected KVMKVMKVM",
                String::from_utf8_lossy(&signature(&regs))
            )),
            KvmKind::IoUser => check("AL", regs.rax & 0xFF, USER_PORT_VALUE.into()),
            KvmKind::MmioKernel => check("the IOAPIC version register", low32(regs.rcx), IOAPIC_VERSION),
            KvmKind::MmioUser => check("ECX", low32(regs.rcx), USER_MMIO_VALUE.into()),
            _ => Ok(()),
        }?;
        check("the count of exits kvmbench served", served as u64, exits_served_per_round(kind))
    }

    /// Times `samples` round trips; returns the TSC deltas.
    pub fn measure(&mut self, kind: KvmKind, samples: usize) -> Result<Vec<u64>, String> {
        let (_, served) = self.enter(kind, guest::entries(kind).1, samples)?;
        let want = exits_served_per_round(kind) * samples as u64;
        if served as u64 != want {
            return Err(format!(
                "{}: kvmbench served {served} exits in {samples} rounds, expected {want}",
                kind.name()
            ));
        }
        Ok(self.vm.memory().read_u64s(guest::SAMPLES as usize, samples))
    }
}

//! The VMM's exit loop for one vCPU: run, handle the exit, inject.
//!
//! Everything here goes through the kernel's calls ([`Sys`]). The loop ends when the
//! guest resets, powers off, triple-faults or does something the VMM cannot
//! emulate; the returned [`Stop`] says which, and where. A VM with several
//! vCPUs runs one loop per vCPU, each on its own thread, over the board they
//! share ([`shared`]); the first loop to stop ends them all.
//!
//! A vCPU other than the first starts waiting for a start-up IPI, as an
//! application processor after reset (Intel SDM vol. 3 §8.4, AMD APM vol. 2
//! §16.5): INIT puts a vCPU back there, and a start-up IPI with vector V
//! starts it in real mode at V << 8 : 0000 (CS base V << 12). While it
//! waits, and while it is halted, its thread sleeps in the kernel
//! ([`Sys::vcpu_halt`]) until a kick.
use super::dev::lapic::TscClock;
use super::dev::{Board, BoardEvent};
use super::guestmem::VmMemory;
use super::hcbuf::GuestFault;
use super::hvdev::DebugConsole;
use super::hypercall::Reply;
use super::msr::{self, MsrAction};
use crate::virtio::net::SwitchPort;
use core::cell::Cell;
use guest_x86::decode::{self, size_mask, Access, CpuMode, GprAccess, InsnKind, PagingState, WalkLimits, MAX_INSN_LEN};
use log::Level;
use sysabi::{Grants, NextRipSource, Reg, SchedHandle, SegReg, Sys, SysError, VcpuHandle, VmExit, VmHandle, NEVER};
use vmcb::{EventInj, IoAccessSize, IoDirection};

mod cr;
mod nmi;
pub mod shared;
mod startup;
pub use shared::VmShared;
/// The longest a halted vCPU sleeps before it looks at the console again.
const IDLE_POLL_NS: u64 = 10_000_000;
/// How often, in guest time, a running vCPU asks the kernel for typed
/// input: at most this late does a byte reach the guest UART (a halted
/// vCPU looks at every wake-up). Asking at every exit cost a kernel call
/// per exit.
const INPUT_POLL_NS: u64 = 1_000_000;
/// How often, in guest time, a running vCPU asks its switch port for
/// frames when its guest did not notify the NIC: a frame waits at most
/// this long for a busy guest (a halted one looks at every wake-up, and a
/// send kicks its CPU). Asking at every exit cost several kernel calls
/// per exit.
const NET_POLL_NS: u64 = 200_000;

const VEC_UD: u8 = 6;
const VEC_GP: u8 = 13;
const VEC_BP: u8 = 3;
const VEC_PF: u8 = 14;

/// Why a vCPU stopped for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The guest asked for a reset (port 0xCF9, the i8042, a triple fault
    /// is reported separately).
    Reset,
    PowerOff,
    /// HLT with interrupts disabled: the guest stopped itself for good.
    Halted {
        rip: u64,
    },
    /// Shutdown: a fault while delivering a double fault.
    TripleFault {
        rip: u64,
    },
    /// An access to guest-physical memory that is neither RAM nor a device.
    UnhandledNpf {
        gpa: u64,
        rip: u64,
        write: bool,
    },
    /// A nested page fault while the CPU delivered event `vector`: the
    /// guest's IDT, stack or TSS lies outside RAM. KVM stops such a guest
    /// too (KVM_INTERNAL_ERROR_DELIVERY_EV): a delivery through device
    /// memory cannot be emulated as an instruction.
    DeliveryFault {
        gpa: u64,
        vector: u8,
        rip: u64,
    },
    /// An instruction the VMM had to emulate and could not.
    Unemulated {
        rip: u64,
        what: &'static str,
    },
    /// VMRUN refused the guest state: `why` names the field when the check
    /// before VMRUN found it, and is `None` if VMRUN itself refused.
    InvalidState {
        rip: u64,
        why: Option<vmcb::StateError>,
    },
    /// An exit with no handler.
    UnhandledExit {
        code: u64,
        rip: u64,
    },
    /// A kernel call failed: a VMM bug.
    Kernel(SysError),
}

impl core::fmt::Display for Stop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Stop::Reset => f.write_str("the guest requested a reset"),
            Stop::PowerOff => f.write_str("the guest powered off"),
            Stop::Halted { rip } => {
                write!(f, "the guest halted with interrupts disabled at RIP {rip:#x} (powered off)")
            }
            Stop::TripleFault { rip } => write!(f, "triple fault (shutdown) at RIP {rip:#x}"),
            Stop::UnhandledNpf { gpa, rip, write } => write!(
                f,
                "{} of guest-physical {gpa:#x}, which is neither RAM nor a device, at RIP {rip:#x}",
                if write { "write" } else { "read" }
            ),
            Stop::DeliveryFault { gpa, vector, rip } => write!(
                f,
                "delivering vector {vector} touched guest-physical {gpa:#x}, which is not RAM \
                 (an IDT, stack or TSS in device memory), at RIP {rip:#x}"
            ),
            Stop::Unemulated { rip, what } => write!(f, "cannot emulate at RIP {rip:#x}: {what}"),
            Stop::InvalidState { rip, why: Some(e) } => write!(f, "illegal guest state for VMRUN at RIP {rip:#x}: {e}"),
            Stop::InvalidState { rip, why: None } => write!(f, "VMRUN rejected the guest state (RIP {rip:#x})"),
            Stop::UnhandledExit { code, rip } => write!(f, "unhandled exit code {code:#x} at RIP {rip:#x}"),
            Stop::Kernel(e) => write!(f, "kernel error: {e}"),
        }
    }
}

impl Stop {
    /// The guest ended as guests do (reset or power-off), not by a fault.
    pub fn is_clean(&self) -> bool {
        matches!(self, Stop::Reset | Stop::PowerOff | Stop::Halted { .. })
    }
}

impl From<SysError> for Stop {
    fn from(e: SysError) -> Stop {
        Stop::Kernel(e)
    }
}

/// The guest's registers through the kernel's calls, for the emulator.
struct SysRegs<'a, S: Sys> {
    sys: &'a S,
    vcpu: VcpuHandle,
}

impl<S: Sys> GprAccess for SysRegs<'_, S> {
    fn gpr(&self, n: u8) -> u64 {
        Reg::gpr(n).and_then(|r| self.sys.reg(self.vcpu, r).ok()).unwrap_or(0)
    }
    fn set_gpr(&mut self, n: u8, v: u64) {
        if let Some(r) = Reg::gpr(n) {
            let _ = self.sys.set_reg(self.vcpu, r, v);
        }
    }
    fn rflags(&self) -> u64 {
        self.sys.reg(self.vcpu, Reg::Rflags).unwrap_or(2)
    }
    fn set_rflags(&mut self, v: u64) {
        let _ = self.sys.set_reg(self.vcpu, Reg::Rflags, v);
    }
}

/// Where a vCPU is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuState {
    /// It runs the guest.
    Running,
    /// After reset or INIT, an application processor waits for a start-up
    /// IPI.
    WaitForSipi,
    /// HLT with interrupts disabled: only INIT or an NMI wakes it.
    HaltedForGood { rip: u64 },
}

/// One vCPU and the devices it drives.
pub struct VcpuLoop<'a, 'b, S: Sys> {
    pub name: &'a str,
    /// The kernel.
    pub sys: &'a S,
    /// The console, clock and share of the CPU the VMM's process was given.
    pub grants: Grants,
    pub vm: VmHandle,
    pub vcpu: VcpuHandle,
    /// The vCPU's index in its VM (its APIC ID).
    pub index: usize,
    pub state: VcpuState,
    pub mem: VmMemory<'a, S>,
    /// The devices and the other vCPUs.
    pub shared: &'a VmShared<'b>,
    /// The board while this loop holds its lock (taken at the first device
    /// access of an exit, let go before the guest runs or the vCPU sleeps).
    held: Option<spin::MutexGuard<'a, Board<'b>>>,
    /// The VM has this one vCPU.
    solo: bool,
    /// Lines from the console-write hypercall.
    pub hc_console: DebugConsole,
    /// A byte typed on the host console that the guest could not take.
    pub held_input: Option<u8>,
    /// Typed input goes to the virtio console (hvc0) instead of the UART:
    /// the VM has one and its kernel's console is hvc0 (`launch`).
    pub input_to_virtio: bool,
    /// The guest time from which a running vCPU asks for typed input again.
    pub next_input_poll_ns: u64,
    /// When a running vCPU next asks its switch port for frames.
    next_net_poll_ns: u64,
    /// Guest time of the current exit, read once when it happened.
    pub now_ns: u64,
    /// The MSRs the VMM emulates for this vCPU.
    pub msrs: msr::GuestMsrs,
    /// What the vCPU's CPUID tells the guest about its page tables.
    pub walk_limits: WalkLimits,
    /// The vector posted to the vCPU (V_IRQ) that the guest had not taken
    /// at the last exit. Its controller takes it into service only once the
    /// guest has taken it ([`VcpuLoop::note_taken_interrupt`]).
    pub posted: Option<u8>,
    /// The guest's CR8 (V_TPR) as last written: the class of the local
    /// APIC's TPR, which [`VcpuLoop::deliver_interrupts`] keeps it equal to
    /// before each entry, whether the guest wrote the TPR through the APIC
    /// page or through CR8.
    cr8: u8,
    /// The guest's NMI blocking, which the VMM tracks (`vcpu/nmi.rs`).
    nmi: nmi::NmiBlocking,
    /// The last instruction decoded, with the bytes and mode it was decoded
    /// from ([`DecodeMemo`]).
    last_decode: Cell<Option<DecodeMemo>>,
}

/// A decoded instruction and exactly what it was decoded from: the fetched
/// bytes (all of them, up to 15) and the code's mode. Decoding is a
/// function of these alone, so the same bytes in the same mode, fetched
/// afresh at the next exit, decode to the same instruction wherever they
/// are: a guest that changes its code or its page tables changes the
/// bytes fetched, not the memo's validity.
#[derive(Clone, Copy)]
struct DecodeMemo {
    mode: CpuMode,
    len: usize,
    bytes: [u8; MAX_INSN_LEN],
    insn: decode::Insn,
}

impl DecodeMemo {
    /// The instruction `bytes` decode to in `mode`, from the memo if it
    /// was made from them, else decoded (and remembered in `memo`).
    fn decode(
        memo: &Cell<Option<DecodeMemo>>,
        bytes: &[u8; MAX_INSN_LEN],
        len: usize,
        mode: CpuMode,
    ) -> Result<decode::Insn, decode::DecodeError> {
        if let Some(m) = memo.get().filter(|m| m.mode == mode && m.len == len && m.bytes[..len] == bytes[..len]) {
            return Ok(m.insn);
        }
        let insn = decode::decode(&bytes[..len], mode)?;
        memo.set(Some(DecodeMemo { mode, len, bytes: *bytes, insn }));
        Ok(insn)
    }
}

/// The instruction at the guest's RIP, where it is, and the RIP after it.
struct DecodedAtRip {
    insn: decode::Insn,
    rip: u64,
    next_rip: u64,
}

/// The RIP `len` bytes after `rip`, wrapped as code of `mode` wraps it.
fn rip_after(rip: u64, mode: CpuMode, len: u64) -> u64 {
    match mode {
        CpuMode::Bits64 => rip.wrapping_add(len),
        CpuMode::Bits32 => rip.wrapping_add(len) & 0xFFFF_FFFF,
        CpuMode::Bits16 => rip.wrapping_add(len) & 0xFFFF,
    }
}

impl<'a, 'b, S: Sys> VcpuLoop<'a, 'b, S> {
    /// The loop for vCPU `index` of `vm` (whose handle `shared` holds),
    /// whose RAM is `mem_size` bytes from guest-physical 0, driving the board
    /// of `shared`. vCPU 0 runs, the others wait for a start-up IPI. Reads
    /// the clock and the vCPU's CPUID (for its MSRs) once.
    pub fn new(
        name: &'a str,
        sys: &'a S,
        grants: Grants,
        (vm, index): (VmHandle, usize),
        mem_size: u64,
        shared: &'a VmShared<'b>,
    ) -> Result<Self, SysError> {
        let vcpu = shared.vcpu(index).ok_or(SysError::BadArgument)?;
        Ok(VcpuLoop {
            name,
            sys,
            grants,
            vm,
            vcpu,
            index,
            state: if index == 0 { VcpuState::Running } else { VcpuState::WaitForSipi },
            mem: VmMemory { sys, vm, size: mem_size },
            shared,
            held: None,
            solo: shared.vcpus() == 1,
            hc_console: DebugConsole::new(),
            held_input: None,
            input_to_virtio: false,
            next_input_poll_ns: 0,
            next_net_poll_ns: 0,
            now_ns: sys.now_ns(grants.clock)?,
            msrs: msr::GuestMsrs::from_cpuid(|leaf, sub| sys.cpuid(vcpu, leaf, sub).unwrap_or_default()),
            walk_limits: WalkLimits::from_cpuid(|leaf, sub| {
                let r = sys.cpuid(vcpu, leaf, sub).unwrap_or_default();
                [r.eax, r.ebx, r.ecx, r.edx]
            }),
            posted: None,
            cr8: 0,
            nmi: nmi::NmiBlocking::default(),
            last_decode: Cell::new(None),
        })
    }

    /// The board, for this vCPU: taken (locked) at the first call after
    /// [`release_board`](Self::release_board).
    #[inline(always)]
    pub fn board(&mut self) -> &mut Board<'b> {
        hold(&mut self.held, self.shared, self.sys, self.grants.sched, self.index)
    }

    /// Lets go of the board, and kicks the vCPUs the accesses since it was
    /// taken gave an interrupt or event. Called before the guest runs and
    /// before the vCPU sleeps. The one vCPU of a VM keeps it: no other
    /// thread takes it, and its exits save the lock's cost.
    #[inline]
    pub fn release_board(&mut self) {
        if self.solo {
            return;
        }
        if let Some(mut board) = self.held.take() {
            let kicks = board.take_kicks();
            drop(board);
            if !kicks.is_empty() {
                self.shared.kick(self.sys, kicks);
            }
        }
    }

    fn reg(&self, r: Reg) -> Result<u64, Stop> {
        Ok(self.sys.reg(self.vcpu, r)?)
    }

    fn set_reg(&self, r: Reg, v: u64) -> Result<(), Stop> {
        Ok(self.sys.set_reg(self.vcpu, r, v)?)
    }

    fn inject(&self, ev: EventInj) -> Result<(), Stop> {
        Ok(self.sys.inject(self.vcpu, ev)?)
    }

    /// The guest runs 64-bit code now.
    pub fn is_64bit(&self) -> Result<bool, Stop> {
        Ok(self.mode()? == CpuMode::Bits64)
    }

    /// Text from the console-write hypercall, line-buffered into the log
    /// (within the VM's budget of log lines).
    pub fn console_text(&mut self, bytes: &[u8]) {
        let now = self.now_ns;
        let board = hold(&mut self.held, self.shared, self.sys, self.grants.sched, self.index);
        for &b in bytes {
            self.hc_console.put(b, |line| board.log_guest_line(Level::Info, now, format_args!("console: {line}")));
        }
    }

    /// Ends the console-write hypercall's last line.
    pub fn console_flush(&mut self) {
        let now = self.now_ns;
        let board = hold(&mut self.held, self.shared, self.sys, self.grants.sched, self.index);
        self.hc_console.flush(|line| board.log_guest_line(Level::Info, now, format_args!("console: {line}")));
    }

    /// Logs a line about something the guest did, within the VM's budget.
    fn guest_line(&mut self, level: Level, args: core::fmt::Arguments<'_>) {
        let now = self.now_ns;
        self.board().log_guest_line(level, now, args);
    }

    fn mode(&self) -> Result<CpuMode, Stop> {
        let cs = self.sys.seg(self.vcpu, SegReg::Cs)?;
        let a = cs.attributes();
        Ok(CpuMode::from_state(
            self.reg(Reg::Cr0)?,
            self.reg(Reg::Efer)?,
            self.reg(Reg::Rflags)?,
            a.long(),
            a.default_big(),
        ))
    }

    /// The registers that steer the guest's page walks now.
    pub fn paging(&self) -> Result<PagingState, Stop> {
        let mut r = [0; 4];
        self.sys.regs(self.vcpu, &[Reg::Cr0, Reg::Cr3, Reg::Cr4, Reg::Efer], &mut r)?;
        let [cr0, cr3, cr4, efer] = r;
        Ok(self.walk_limits.paging(cr0, cr3, cr4, efer))
    }

    /// Decodes the instruction at the guest's RIP. The registers it needs
    /// come in one kernel call, and CS in another; the paging registers
    /// serve the mode too.
    fn decode_at_rip(&self) -> Result<DecodedAtRip, Stop> {
        let code = match self.sys.code_at_rip(self.vcpu) {
            Ok(code) => code,
            Err(SysError::BadGuestAddress) => {
                let rip = self.reg(Reg::Rip)?;
                return Err(Stop::Unemulated { rip, what: "instruction fetch failed" });
            }
            Err(e) => return Err(e.into()),
        };
        let (rip, len) = (code.rip, usize::from(code.len).min(MAX_INSN_LEN));
        let mode = match code.bits {
            16 => CpuMode::Bits16,
            32 => CpuMode::Bits32,
            _ => CpuMode::Bits64,
        };
        let insn = DecodeMemo::decode(&self.last_decode, &code.bytes, len, mode)
            .map_err(|_| Stop::Unemulated { rip, what: "instruction not decodable" })?;
        Ok(DecodedAtRip { next_rip: rip_after(rip, mode, u64::from(insn.len)), insn, rip })
    }

    /// Completes the intercepted instruction: RIP moves past it (NRIPS
    /// where the CPU has it, else the decoded length), its interrupt shadow
    /// ends, and a single-stepping guest gets its #DB.
    pub fn skip_instruction(&self) -> Result<(), Stop> {
        if let Some(next) = self.sys.next_rip(self.vcpu)? {
            return self.complete(next, NextRipSource::Nrips);
        }
        let at = self.decode_at_rip()?;
        self.complete(at.next_rip, NextRipSource::Decoded)
    }

    fn complete(&self, next_rip: u64, from: NextRipSource) -> Result<(), Stop> {
        Ok(self.sys.complete_instruction(self.vcpu, next_rip, from)?)
    }

    /// Runs the vCPU until it or another vCPU of its VM stops for good;
    /// returns the VM's stop (the first vCPU's to stop).
    pub fn run(&mut self) -> Stop {
        let stop = loop {
            if let Err(stop) = self.step() {
                break stop;
            }
        };
        self.release_board();
        if !self.solo {
            log::info!("{}: vCPU {} stopped: {stop}", self.name, self.index);
        }
        self.shared.end(self.sys, stop)
    }

    /// The guest time of the exit being handled: one reading serves every
    /// device access of the exit.
    fn now(&self) -> u64 {
        self.now_ns
    }

    /// The guest's TSC now and its rate, for the local APIC's TSC-deadline
    /// timer.
    fn tsc_clock(&self) -> Result<TscClock, Stop> {
        Ok(TscClock { tsc: self.sys.guest_tsc(self.grants.clock)?, hz: self.sys.tsc_hz(self.grants.clock)? })
    }

    /// Typed input is to be looked for: a byte is held back or
    /// [`INPUT_POLL_NS`] passed. Typed input goes in through vCPU 0 only, so
    /// that bytes keep their order.
    #[inline(always)]
    fn input_due(&self) -> bool {
        self.index == 0 && (self.held_input.is_some() || self.now_ns >= self.next_input_poll_ns)
    }

    /// Moves console bytes between the host serial port and the guest UART:
    /// output whenever the UART holds some, input when the vCPU idles, a
    /// byte is held back, or [`INPUT_POLL_NS`] of guest time passed since
    /// the last look.
    fn pump_console(&mut self) {
        if self.input_due() {
            self.next_input_poll_ns = self.now_ns.saturating_add(INPUT_POLL_NS);
            self.receive_input();
        }
        let (sys, console) = (self.sys, self.grants.console);
        let board = hold(&mut self.held, self.shared, self.sys, self.grants.sched, self.index);
        if board.has_output() {
            board.drain_output(|b| {
                let _ = sys.console_write(console, &[b]);
            });
        }
        if board.has_virtio_console_output() {
            board.drain_virtio_console(&mut self.mem, |bytes| {
                let _ = sys.console_write(console, bytes);
            });
        }
    }

    /// Moves frames between the virtio NIC and the VM's switch port: at
    /// every wake-up of a halted vCPU, and after an exit when the guest
    /// notified the NIC or [`NET_POLL_NS`] of guest time passed since the
    /// last look (docs/network.md).
    fn pump_net(&mut self) {
        self.next_net_poll_ns = self.now_ns.saturating_add(NET_POLL_NS);
        let mut port = SwitchPort { sys: self.sys, port: self.grants.net, vm: self.vm };
        let board = hold(&mut self.held, self.shared, self.sys, self.grants.sched, self.index);
        board.pump_net(&mut self.mem, &mut port);
    }

    /// Hands typed bytes to the guest UART while it has room.
    fn receive_input(&mut self) {
        // A byte the UART had no room for waits here: the host port has
        // given it up already.
        let (sys, console) = (self.sys, self.grants.console);
        if self.input_to_virtio {
            // Nothing is read from the host while the driver is not up.
            let mut first = self.held_input.take();
            let board = hold(&mut self.held, self.shared, self.sys, self.grants.sched, self.index);
            let held = board.virtio_console_receive(&mut self.mem, || {
                first.take().or_else(|| sys.console_read(console).ok().flatten())
            });
            self.held_input = held.or(first);
            return;
        }
        while let Some(b) = self.held_input.take().or_else(|| sys.console_read(console).ok().flatten()) {
            if !self.board().uart_receive(b) {
                self.held_input = Some(b);
                break;
            }
        }
    }

    /// Keeps the vCPU's posted interrupt equal to the vector the board would
    /// give at an interrupt acknowledge now: a posted vector the board no
    /// longer asks for (the guest re-initialised or masked its controller,
    /// raised its TPR, or a higher-priority request came) is withdrawn, and
    /// the board's vector is posted. Nothing is taken into service here: the
    /// CPU delivers the posted vector when the guest can take it (V_IRQ), and
    /// [`note_taken_interrupt`](Self::note_taken_interrupt) acknowledges it
    /// at the next exit, the way the INTA cycle fixes the vector on a PC.
    fn deliver_interrupts(&mut self) -> Result<(), Stop> {
        let now = self.now();
        let board = hold(&mut self.held, self.shared, self.sys, self.grants.sched, self.index);
        board.update(now);
        if board.has_apic_events() {
            let events = board.take_apic_events();
            self.apic_events(events)?;
            if self.state != VcpuState::Running {
                return Ok(());
            }
        }
        self.deliver_held_nmi()?;
        let board = hold(&mut self.held, self.shared, self.sys, self.grants.sched, self.index);
        let cr8 = board.tpr() >> 4;
        let wanted = board.pending_vector();
        if cr8 != self.cr8 {
            self.set_reg(Reg::Cr8, u64::from(cr8))?;
            self.cr8 = cr8;
        }
        if let Some(posted) = self.posted {
            if wanted == Some(posted) {
                return Ok(());
            }
            let withdrawn = self.sys.withdraw_interrupt(self.vcpu)?;
            self.posted = None;
            if withdrawn != Some(posted) {
                // The last exit saw it pending, and the guest has not run since.
                self.guest_line(Level::Debug, format_args!("withdrew {withdrawn:?}, posted {posted:#04x}"));
            }
        }
        if let Some(v) = wanted {
            self.inject(EventInj::external_interrupt(v))?;
            self.posted = Some(v);
        }
        Ok(())
    }

    /// After an exit: if the guest took the posted interrupt during the run
    /// (the CPU cleared V_IRQ), its controller takes it into service now,
    /// before the exit's device accesses can see the controller.
    fn note_taken_interrupt(&mut self) -> Result<(), Stop> {
        let Some(posted) = self.posted else {
            return Ok(());
        };
        if self.sys.interrupt_pending(self.vcpu)? {
            return Ok(());
        }
        self.posted = None;
        // The vector the guest took, not the board's highest now: with
        // several vCPUs the board changed since it was posted (another
        // vCPU's IPI may be pending above it), and acknowledging that one
        // instead would lose it.
        let acknowledged = self.board().acknowledge_taken(posted);
        if acknowledged != Some(posted) {
            self.guest_line(Level::Debug, format_args!("took {posted:#04x}, acknowledged {acknowledged:?}"));
        }
        Ok(())
    }

    /// Runs the guest to its next exit and handles it: one round of the
    /// loop. `Err` says why the vCPU stopped for good.
    pub fn step(&mut self) -> Result<(), Stop> {
        if self.state != VcpuState::Running || self.shared.stopping() {
            return self.step_not_running();
        }
        self.deliver_interrupts()?;
        if self.state != VcpuState::Running {
            return Ok(());
        }
        // The kernel arms the host timer for the board's next interrupt, so
        // the guest gets it even if it never exits by itself.
        let now = self.now();
        let deadline = self.board().next_deadline_ns(now).unwrap_or(NEVER);
        self.release_board();
        let exit = self.sys.run(self.vcpu, deadline)?;
        self.note_taken_interrupt()?;
        self.now_ns = self.sys.now_ns(self.grants.clock)?;
        match exit {
            VmExit::Io { io, next_rip } => self.handle_io(io, next_rip)?,
            VmExit::Cpuid => {
                let leaf = self.reg(Reg::Rax)? as u32;
                let sub = self.reg(Reg::Rcx)? as u32;
                let r = self.sys.cpuid(self.vcpu, leaf, sub)?;
                self.set_reg(Reg::Rax, u64::from(r.eax))?;
                self.set_reg(Reg::Rbx, u64::from(r.ebx))?;
                self.set_reg(Reg::Rcx, u64::from(r.ecx))?;
                self.set_reg(Reg::Rdx, u64::from(r.edx))?;
                self.skip_instruction()?;
            }
            VmExit::Msr(kind) => self.handle_msr(kind.is_write())?,
            VmExit::Hlt => {
                // HLT with interrupts masked ends only by INIT or an NMI:
                // once every vCPU is there (or waits for a start-up IPI),
                // the guest has stopped itself for good; that is how a guest
                // without ACPI powers off.
                if self.reg(Reg::Rflags)? & guest_x86::regs::rflags::IF == 0 {
                    let rip = self.reg(Reg::Rip)?;
                    if self.shared.fall_asleep() {
                        return Err(Stop::Halted { rip });
                    }
                    self.skip_instruction()?;
                    self.state = VcpuState::HaltedForGood { rip };
                    return Ok(());
                }
                self.skip_instruction()?;
                self.idle()?;
            }
            VmExit::Vmmcall => match super::hypercall::dispatch(self)? {
                Reply::Return(result) => {
                    self.set_reg(Reg::Rax, result as u64)?;
                    self.skip_instruction()?;
                }
                Reply::Fault(GuestFault::Page(pf)) => {
                    self.set_reg(Reg::Cr2, pf.addr)?;
                    self.inject(EventInj::exception_with_error(VEC_PF, pf.error_code.bits()))?;
                }
                Reply::Fault(GuestFault::GeneralProtection) => {
                    self.inject(EventInj::exception_with_error(VEC_GP, 0))?
                }
            },
            VmExit::Npf(f) => self.handle_npf(f.gpa, f.is_write())?,
            VmExit::NpfInDelivery { gpa, vector } => {
                return Err(Stop::DeliveryFault { gpa, vector, rip: self.reg(Reg::Rip)? })
            }
            VmExit::CrWrite { cr, info } => self.handle_cr_write(cr, info)?,
            VmExit::Exception(e) if e.vector == nmi::VEC_DB && self.nmi_step_done()? => {}
            VmExit::Exception(e) => {
                if e.vector == VEC_BP {
                    // INT3 traps: the guest's handler expects RIP after it.
                    let at = self.decode_at_rip()?;
                    self.set_reg(Reg::Rip, at.next_rip)?;
                }
                let ev = match e.error_code {
                    Some(code) => EventInj::exception_with_error(e.vector, code),
                    None => EventInj::exception(e.vector),
                };
                if let Some(cr2) = e.fault_address {
                    self.set_reg(Reg::Cr2, cr2)?;
                }
                self.inject(ev)?;
            }
            VmExit::Shutdown => return Err(Stop::TripleFault { rip: self.reg(Reg::Rip)? }),
            // The board's deadline came: the next round delivers its
            // interrupt. (The kernel has already let other VMs run at the
            // end of the time slice.)
            VmExit::Intr => {}
            VmExit::SvmInstruction(_) => self.inject(EventInj::exception(VEC_UD))?,
            VmExit::Invalid(why) => return Err(Stop::InvalidState { rip: self.reg(Reg::Rip)?, why }),
            VmExit::Other(code) => self.handle_other(code)?,
        }
        // One look at the board for what the exit left to do: console
        // bytes to move, the NIC to serve, a reset or power-off.
        let now = self.now_ns;
        let board = hold(&mut self.held, self.shared, self.sys, self.grants.sched, self.index);
        board.report_lifted_log_limit(now);
        let output = board.has_output() || board.has_virtio_console_output();
        let net = board.net_notified();
        let event = board.take_event();
        if output || self.input_due() {
            self.pump_console();
        }
        if net || now >= self.next_net_poll_ns {
            self.pump_net();
        }
        if let Some(ev) = event {
            return Err(match ev {
                BoardEvent::Reset => Stop::Reset,
                BoardEvent::PowerOff => Stop::PowerOff,
            });
        }
        Ok(())
    }

    /// The VM is ending, or the vCPU waits for a start-up IPI or halted
    /// with interrupts off.
    #[cold]
    fn step_not_running(&mut self) -> Result<(), Stop> {
        if self.shared.stopping() {
            return Err(self.stopped_by_another());
        }
        self.sleep()
    }

    /// HLT: sleep until a device raises an interrupt the guest can take.
    fn idle(&mut self) -> Result<(), Stop> {
        loop {
            self.now_ns = self.sys.now_ns(self.grants.clock)?;
            self.next_input_poll_ns = self.now_ns;
            self.pump_console();
            self.pump_net();
            let now = self.now();
            let posted = self.posted.is_some();
            let board = self.board();
            board.update(now);
            if board.pending_vector().is_some() || board.has_apic_events() || posted {
                return Ok(());
            }
            let deadline = board.next_deadline_ns(now).unwrap_or(u64::MAX).min(now + IDLE_POLL_NS);
            self.release_board();
            if self.shared.stopping() {
                return Err(self.stopped_by_another());
            }
            self.sys.vcpu_halt(self.grants.sched, self.vcpu, deadline)?;
        }
    }

    fn handle_io(&mut self, io: vmcb::IoioInfo, next_rip: u64) -> Result<(), Stop> {
        if io.string {
            return Err(Stop::Unemulated { rip: self.reg(Reg::Rip)?, what: "string I/O (INS/OUTS)" });
        }
        let size: u8 = match io.size {
            IoAccessSize::Byte => 1,
            IoAccessSize::Word => 2,
            IoAccessSize::Dword => 4,
        };
        let now = self.now();
        match io.direction {
            IoDirection::Out => {
                let value = (self.reg(Reg::Rax)? & size_mask(size)) as u32;
                self.board().io_write(io.port, size, value, now);
            }
            IoDirection::In => {
                let value = self.board().io_read(io.port, size, now);
                return Ok(self.sys.complete_in(self.vcpu, size, value, next_rip)?);
            }
        }
        self.complete(next_rip, NextRipSource::IoExitInfo)
    }

    fn handle_msr(&mut self, write: bool) -> Result<(), Stop> {
        let index = self.reg(Reg::Rcx)? as u32;
        let rip = self.reg(Reg::Rip)?;
        if write {
            let value = (self.reg(Reg::Rdx)? << 32) | (self.reg(Reg::Rax)? & 0xFFFF_FFFF);
            self.guest_line(Level::Debug, format_args!("wrmsr {index:#x} <- {value:#x} at {rip:#x}"));
            match self.msrs.write(index, value) {
                MsrAction::Efer => {
                    let efer = self.reg(Reg::Efer)?;
                    // Long mode is switched with paging off (APM vol. 2,
                    // 14.6.1): changing LME with CR0.PG set is #GP.
                    if (efer ^ value) & guest_x86::regs::efer::LME != 0
                        && self.reg(Reg::Cr0)? & guest_x86::regs::cr0::PG != 0
                    {
                        return self.inject(EventInj::exception_with_error(VEC_GP, 0));
                    }
                    // LMA is the CPU's to change: keep the current one.
                    self.set_reg(
                        Reg::Efer,
                        (value & !guest_x86::regs::efer::LMA) | (efer & guest_x86::regs::efer::LMA),
                    )?
                }
                MsrAction::Pat => self.set_reg(Reg::Pat, value)?,
                MsrAction::TscAux => self.set_reg(Reg::TscAux, value)?,
                MsrAction::MiscEnable(v) => self.msrs.misc_enable = v,
                MsrAction::ApicBase => {
                    if self.board().write_apic_base_msr(value).is_err() {
                        self.guest_line(Level::Warn, format_args!("wrmsr IA32_APIC_BASE <- {value:#x} refused (#GP)"));
                        return self.inject(EventInj::exception_with_error(VEC_GP, 0));
                    }
                }
                MsrAction::TscDeadline => {
                    let clock = self.tsc_clock()?;
                    let now = self.now();
                    self.board().write_tsc_deadline_msr(value, now, clock);
                }
                MsrAction::Ignore | MsrAction::Value(_) | MsrAction::Tsc => {}
                MsrAction::Absent => {
                    self.guest_line(Level::Debug, format_args!("wrmsr {index:#x}: not on this virtual CPU (#GP)"));
                    return self.inject(EventInj::exception_with_error(VEC_GP, 0));
                }
                MsrAction::Refuse => {
                    self.guest_line(Level::Warn, format_args!("wrmsr {index:#x} <- {value:#x} refused (#GP)"));
                    return self.inject(EventInj::exception_with_error(VEC_GP, 0));
                }
            }
        } else {
            let value = match self.msrs.read(index) {
                MsrAction::Value(v) | MsrAction::MiscEnable(v) => v,
                MsrAction::Efer => self.reg(Reg::Efer)?,
                MsrAction::Pat => self.reg(Reg::Pat)?,
                MsrAction::Tsc => self.sys.guest_tsc(self.grants.clock)?,
                MsrAction::TscAux => self.reg(Reg::TscAux)?,
                MsrAction::ApicBase => self.board().apic_base_msr(),
                MsrAction::TscDeadline => {
                    let now = self.now();
                    self.board().tsc_deadline_msr(now)
                }
                MsrAction::Ignore => 0,
                MsrAction::Absent => {
                    self.guest_line(Level::Debug, format_args!("rdmsr {index:#x}: not on this virtual CPU (#GP)"));
                    return self.inject(EventInj::exception_with_error(VEC_GP, 0));
                }
                MsrAction::Refuse => {
                    self.guest_line(Level::Warn, format_args!("rdmsr {index:#x} refused (#GP)"));
                    return self.inject(EventInj::exception_with_error(VEC_GP, 0));
                }
            };
            self.guest_line(Level::Debug, format_args!("rdmsr {index:#x} = {value:#x} at {rip:#x}"));
            self.set_reg(Reg::Rax, value & 0xFFFF_FFFF)?;
            self.set_reg(Reg::Rdx, value >> 32)?;
        }
        self.skip_instruction()
    }

    fn handle_npf(&mut self, gpa: u64, write: bool) -> Result<(), Stop> {
        let Some(device) = self.board().mmio_device(gpa) else {
            return Err(Stop::UnhandledNpf { gpa, rip: self.reg(Reg::Rip)?, write });
        };
        let at = self.decode_at_rip()?;
        let InsnKind::Mem(m) = at.insn.kind else {
            return Err(Stop::Unemulated {
                rip: at.rip,
                what: "MMIO access by an instruction the emulator does not handle",
            });
        };
        let mut regs = SysRegs { sys: self.sys, vcpu: self.vcpu };
        let now = self.now_ns;
        let board = hold(&mut self.held, self.shared, self.sys, self.grants.sched, self.index);
        decode::emulate_mmio(&m, &mut regs, &mut |a| match a {
            Access::Read { size } => board.mmio_read(device, gpa, size, now),
            Access::Write { size, value } => {
                board.mmio_write(device, gpa, size, value, now);
                0
            }
        });
        // A virtio queue notification is served in the exit that made it.
        if board.virtio_pending() {
            board.serve_virtio(&mut self.mem);
        }
        self.complete(at.next_rip, NextRipSource::Decoded)
    }

    fn handle_other(&mut self, code: vmcb::ExitCode) -> Result<(), Stop> {
        use vmcb::ExitCode as C;
        let rip = self.reg(Reg::Rip)?;
        match code {
            C::Xsetbv => self.handle_xsetbv(),
            C::Iret => self.nmi_iret(),
            // Hidden by CPUID (MONITOR, MONITORX, RDPRU): the guest gets
            // what a CPU without them gives.
            C::Monitor | C::Mwait | C::MwaitConditional | C::Rdpru => self.inject(EventInj::exception(VEC_UD)),
            // The guest is never in SMM: RSM is #UD, as on the CPU.
            C::Rsm => self.inject(EventInj::exception(VEC_UD)),
            // No performance counters are virtualised: RDPMC faults, as
            // under KVM without a PMU.
            C::Rdpmc => self.inject(EventInj::exception_with_error(VEC_GP, 0)),
            // No caches to write back in a VM: a no-op.
            C::Invd => self.skip_instruction(),
            // Nothing to do: the host has handled its NMI/SMI.
            C::Nmi | C::Smi | C::Init => Ok(()),
            _ => Err(Stop::UnhandledExit { code: code.to_raw(), rip }),
        }
    }
}

/// The board in `held`, locked for vCPU `index` first if it is not held.
/// (A function of the fields, so that the loop can lend its other fields
/// next to the board.) Most calls find it held: the check is inline, the
/// lock out of line.
#[inline(always)]
fn hold<'s, 'a, 'b, S: Sys>(
    held: &'s mut Option<spin::MutexGuard<'a, Board<'b>>>,
    shared: &'a VmShared<'b>,
    sys: &S,
    sched: SchedHandle,
    index: usize,
) -> &'s mut Board<'b> {
    match held {
        Some(board) => board,
        None => held.insert(take_board(shared, sys, sched, index)),
    }
}

#[cold]
#[inline(never)]
fn take_board<'a, 'b, S: Sys>(
    shared: &'a VmShared<'b>,
    sys: &S,
    sched: SchedHandle,
    index: usize,
) -> spin::MutexGuard<'a, Board<'b>> {
    shared.lock_board(sys, sched, index)
}

//! A scripted kernel: implements `sysabi::Sys` with guest registers, guest
//! RAM in a `Vec`, a queue of exits for `run` to return, and a record of
//! the calls the VMM makes.
use guest_x86::decode::{fetch, CpuMode, WalkLimits, MAX_INSN_LEN};
use guest_x86::mem::VecMemory;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use sysabi::{
    ClockHandle, CodeAtRip, ConsoleHandle, CpuUsage, CpuidResult, ExitStats, Grants, GuestFault, GuestSpan, MacAddr,
    NetHandle, NetPortInfo, NetStats, NextRipSource, PathStats, Reg, SchedHandle, SegReg, Sys, SysError, SysResult,
    ThreadCpu, VcpuHandle, VcpuInfo, VmExit, VmHandle,
};
use vmcb::{EventInj, Segment};

pub const VM: VmHandle = VmHandle(3);
pub const VCPU: VcpuHandle = VcpuHandle(5);
pub const GRANTS: Grants =
    Grants { console: ConsoleHandle(1), clock: ClockHandle(2), sched: SchedHandle(4), net: NetHandle(6) };
/// The MAC address of the VM's switch port.
pub const MAC: MacAddr = [0x52, 0x54, 0x00, 0x12, 0x34, 0x07];
/// The VM's id, as INFO reports it and channels name it.
pub const VM_ID: u32 = 0;
pub const TSC_HZ: u64 = 2_000_000_000;
/// Messages a channel holds.
pub const CHANNEL_DEPTH: usize = 8;

/// A call the VMM made that changes something, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Run {
        deadline_ns: u64,
    },
    Complete {
        next_rip: u64,
        from: NextRipSource,
    },
    Inject(EventInj),
    Withdraw,
    ExceptionIntercept {
        vector: u8,
        on: bool,
    },
    IretIntercept(bool),
    SetReg(Reg, u64),
    IdleUntil(u64),
    Yield,
    ResetStats,
    ChanSend {
        peer: u32,
        msg: Vec<u8>,
    },
    /// A frame sent through the switch port, as gathered from guest RAM.
    NetSend(Vec<u8>),
    WriteCr4(u64),
    Kick(VcpuHandle),
    Xsetbv {
        index: u32,
        value: u64,
    },
}

/// The kernel's side of one vCPU.
pub struct State {
    regs: HashMap<String, u64>,
    segs: HashMap<String, Segment>,
    pub ram: Vec<u8>,
    /// What `run` returns next; an empty queue is `SysError::NoExit`.
    pub exits: VecDeque<VmExit>,
    pub calls: Vec<Call>,
    pub now_ns: u64,
    /// Guest time that passes in each `run`.
    pub run_ns: u64,
    /// NRIPS: what `next_rip` answers.
    pub nrips: Option<u64>,
    /// An external interrupt posted and not yet taken by the guest.
    pub posted: Option<u8>,
    pub cpuid: HashMap<(u32, u32), CpuidResult>,
    pub console_in: VecDeque<u8>,
    pub console_out: Vec<u8>,
    /// Messages this VM sent to itself (the loopback channel).
    pub loopback: VecDeque<Vec<u8>>,
    /// Frames waiting at the VM's switch port.
    pub net_in: VecDeque<Vec<u8>>,
    /// What `yield_now` answers: another thread was ready.
    pub others_ready: bool,
    /// Guest time that passes in `yield_now` when another thread ran.
    pub yield_ns: u64,
    pub stats: ExitStats,
    /// What `cpu_usage` answers.
    pub cpu: CpuUsage,
    /// Calls to `idle_until` allowed before the test is taken to hang.
    pub idle_budget: u32,
}

pub struct FakeSys(Mutex<State>);

fn key<T: std::fmt::Debug>(r: T) -> String {
    format!("{r:?}")
}

impl FakeSys {
    /// A vCPU with `ram` bytes of zeroed RAM, in the x86 reset state's
    /// register values (RFLAGS 2, everything else 0) at guest time 1 ms.
    pub fn new(ram: usize) -> Self {
        let mut regs = HashMap::new();
        regs.insert(key(Reg::Rflags), 2);
        FakeSys(Mutex::new(State {
            regs,
            segs: HashMap::new(),
            ram: vec![0; ram],
            exits: VecDeque::new(),
            calls: Vec::new(),
            now_ns: 1_000_000,
            run_ns: 1_000,
            nrips: None,
            posted: None,
            cpuid: HashMap::new(),
            console_in: VecDeque::new(),
            console_out: Vec::new(),
            loopback: VecDeque::new(),
            net_in: VecDeque::new(),
            others_ready: false,
            yield_ns: 0,
            stats: ExitStats::new(),
            cpu: CpuUsage::default(),
            idle_budget: 10_000,
        }))
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().expect("the fake's state")
    }

    /// Queues the exits `run` returns, in order.
    pub fn script(&self, exits: impl IntoIterator<Item = VmExit>) {
        self.state().exits.extend(exits);
    }

    pub fn get(&self, r: Reg) -> u64 {
        self.0.lock().expect("the fake's state").regs.get(&key(r)).copied().unwrap_or(0)
    }

    /// Sets a register as the guest left it (not recorded as a call).
    pub fn put(&self, r: Reg, v: u64) {
        self.state().regs.insert(key(r), v);
    }

    pub fn put_seg(&self, r: SegReg, s: Segment) {
        self.state().segs.insert(key(r), s);
    }

    /// Copies `bytes` into guest RAM at `gpa`.
    pub fn poke(&self, gpa: u64, bytes: &[u8]) {
        let at = gpa as usize;
        self.state().ram[at..at + bytes.len()].copy_from_slice(bytes);
    }

    pub fn peek(&self, gpa: u64, len: usize) -> Vec<u8> {
        let at = gpa as usize;
        self.0.lock().expect("the fake's state").ram[at..at + len].to_vec()
    }

    /// The calls recorded since the last `take_calls`.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state().calls)
    }

    fn record(&self, call: Call) {
        self.state().calls.push(call);
    }
}

impl Sys for FakeSys {
    fn vm_create(&self) -> SysResult<VmHandle> {
        Ok(VM)
    }
    fn vm_destroy(&self, _vm: VmHandle) -> SysResult<()> {
        Ok(())
    }
    fn vcpu_create(&self, _vm: VmHandle) -> SysResult<VcpuHandle> {
        Ok(VCPU)
    }
    fn npt_map(&self, _vm: VmHandle, _gpa: u64, _len: u64) -> SysResult<()> {
        Ok(())
    }

    fn guest_read(&self, vm: VmHandle, gpa: u64, buf: &mut [u8]) -> SysResult<()> {
        assert_eq!(vm, VM, "the VMM named another VM");
        let s = self.0.lock().expect("the fake's state");
        let range = usize::try_from(gpa).ok().and_then(|a| Some(a..a.checked_add(buf.len())?));
        match range.and_then(|r| s.ram.get(r)) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(SysError::BadGuestAddress),
        }
    }

    fn guest_write(&self, vm: VmHandle, gpa: u64, data: &[u8]) -> SysResult<()> {
        assert_eq!(vm, VM, "the VMM named another VM");
        let mut s = self.state();
        let range = usize::try_from(gpa).ok().and_then(|a| Some(a..a.checked_add(data.len())?));
        match range.and_then(|r| s.ram.get_mut(r)) {
            Some(bytes) => {
                bytes.copy_from_slice(data);
                Ok(())
            }
            None => Err(SysError::BadGuestAddress),
        }
    }

    fn vm_ram(&self, _vm: VmHandle) -> SysResult<u64> {
        Ok(self.0.lock().expect("the fake's state").ram.len() as u64)
    }
    fn set_io_intercept(&self, _vm: VmHandle, _port: u16, _intercept: bool) -> SysResult<()> {
        Ok(())
    }

    // The fake kernel answers no exit itself: every port read reaches the VMM.
    fn declare_constant_port(&self, _vm: VmHandle, _port: u16, _size: u8, _value: u32) -> SysResult<()> {
        Ok(())
    }

    // Nor any MMIO read: every one reaches the VMM.
    fn declare_constant_mmio(&self, _vm: VmHandle, _gpa: u64, _size: u8, _value: u64) -> SysResult<()> {
        Ok(())
    }

    fn run(&self, vcpu: VcpuHandle, deadline_ns: u64) -> SysResult<VmExit> {
        assert_eq!(vcpu, VCPU, "the VMM named another vCPU");
        self.record(Call::Run { deadline_ns });
        let mut s = self.state();
        let exit = s.exits.pop_front().ok_or(SysError::NoExit)?;
        s.now_ns += s.run_ns;
        s.stats.count(exit.reason());
        Ok(exit)
    }

    fn next_rip(&self, _vcpu: VcpuHandle) -> SysResult<Option<u64>> {
        Ok(self.0.lock().expect("the fake's state").nrips)
    }

    fn complete_instruction(&self, _vcpu: VcpuHandle, next_rip: u64, from: NextRipSource) -> SysResult<()> {
        self.record(Call::Complete { next_rip, from });
        self.put(Reg::Rip, next_rip);
        Ok(())
    }

    fn inject(&self, _vcpu: VcpuHandle, ev: EventInj) -> SysResult<()> {
        self.record(Call::Inject(ev));
        if ev.event_type() == Some(vmcb::EventType::ExternalInterrupt) {
            let mut s = self.state();
            if s.posted.is_some() {
                return Err(SysError::Busy);
            }
            s.posted = Some(ev.vector());
        }
        Ok(())
    }

    fn interrupt_pending(&self, _vcpu: VcpuHandle) -> SysResult<bool> {
        Ok(self.0.lock().expect("the fake's state").posted.is_some())
    }

    fn withdraw_interrupt(&self, _vcpu: VcpuHandle) -> SysResult<Option<u8>> {
        self.record(Call::Withdraw);
        Ok(self.state().posted.take())
    }

    fn set_exception_intercept(&self, _vcpu: VcpuHandle, vector: u8, intercept: bool) -> SysResult<()> {
        self.record(Call::ExceptionIntercept { vector, on: intercept });
        Ok(())
    }

    fn set_iret_intercept(&self, _vcpu: VcpuHandle, intercept: bool) -> SysResult<()> {
        self.record(Call::IretIntercept(intercept));
        Ok(())
    }

    fn reg(&self, _vcpu: VcpuHandle, r: Reg) -> SysResult<u64> {
        Ok(self.get(r))
    }

    fn set_reg(&self, _vcpu: VcpuHandle, r: Reg, value: u64) -> SysResult<()> {
        self.record(Call::SetReg(r, value));
        self.put(r, value);
        Ok(())
    }

    fn seg(&self, _vcpu: VcpuHandle, r: SegReg) -> SysResult<Segment> {
        Ok(self.0.lock().expect("the fake's state").segs.get(&key(r)).copied().unwrap_or(Segment::real_mode(0)))
    }

    // As the kernel fetches (`syscall::fast::code_at_rip`): through the
    // guest's page tables in the fake's RAM, with the walk limits its CPUID
    // states.
    fn code_at_rip(&self, vcpu: VcpuHandle) -> SysResult<CodeAtRip> {
        let r = |reg| self.get(reg);
        let cs = self.seg(vcpu, SegReg::Cs)?;
        let a = cs.attributes();
        let (cr0, efer, rip) = (r(Reg::Cr0), r(Reg::Efer), r(Reg::Rip));
        let mode = CpuMode::from_state(cr0, efer, r(Reg::Rflags), a.long(), a.default_big());
        let limits = WalkLimits::from_cpuid(|leaf, sub| {
            let c = self.cpuid(vcpu, leaf, sub).unwrap_or_default();
            [c.eax, c.ebx, c.ecx, c.edx]
        });
        let paging = limits.paging(cr0, r(Reg::Cr3), r(Reg::Cr4), efer);
        let mem = VecMemory(self.0.lock().expect("the fake's state").ram.clone());
        let mut bytes = [0; MAX_INSN_LEN];
        let fetched = fetch(&mem, &paging, mode, cs.base, rip, r(Reg::Cpl) == 3, &mut bytes)
            .map_err(|_| SysError::BadGuestAddress)?;
        let bits = match mode {
            CpuMode::Bits16 => 16,
            CpuMode::Bits32 => 32,
            CpuMode::Bits64 => 64,
        };
        Ok(CodeAtRip { rip, bits, len: fetched.len as u8, bytes })
    }

    fn set_seg(&self, _vcpu: VcpuHandle, r: SegReg, s: Segment) -> SysResult<()> {
        self.put_seg(r, s);
        Ok(())
    }

    fn write_cr4(&self, _vcpu: VcpuHandle, value: u64) -> SysResult<Result<(), GuestFault>> {
        self.record(Call::WriteCr4(value));
        Ok(Ok(()))
    }

    fn xsetbv(&self, _vcpu: VcpuHandle, index: u32, value: u64) -> SysResult<Result<(), GuestFault>> {
        self.record(Call::Xsetbv { index, value });
        Ok(if index == 0 { Ok(()) } else { Err(GuestFault::GeneralProtection) })
    }

    fn cpuid(&self, _vcpu: VcpuHandle, leaf: u32, sub: u32) -> SysResult<CpuidResult> {
        Ok(self.0.lock().expect("the fake's state").cpuid.get(&(leaf, sub)).copied().unwrap_or_default())
    }

    fn vcpu_info(&self, _vcpu: VcpuHandle) -> SysResult<VcpuInfo> {
        Ok(VcpuInfo { index: 0, vm_id: VM_ID, vcpus: 1 })
    }

    fn stats(&self, _vcpu: VcpuHandle) -> SysResult<ExitStats> {
        Ok(self.0.lock().expect("the fake's state").stats.clone())
    }

    fn reset_stats(&self, _vcpu: VcpuHandle) -> SysResult<()> {
        self.record(Call::ResetStats);
        self.state().stats = ExitStats::new();
        Ok(())
    }

    fn paths(&self, _vcpu: VcpuHandle) -> SysResult<PathStats> {
        Ok(PathStats::default())
    }

    fn now_ns(&self, clock: ClockHandle) -> SysResult<u64> {
        assert_eq!(clock, GRANTS.clock, "the VMM used a clock it was not granted");
        Ok(self.0.lock().expect("the fake's state").now_ns)
    }

    fn guest_tsc(&self, _clock: ClockHandle) -> SysResult<u64> {
        Ok(self.0.lock().expect("the fake's state").now_ns * (TSC_HZ / 1_000_000_000))
    }

    fn tsc_hz(&self, _clock: ClockHandle) -> SysResult<u64> {
        Ok(TSC_HZ)
    }

    fn yield_now(&self, sched: SchedHandle) -> SysResult<bool> {
        assert_eq!(sched, GRANTS.sched);
        self.record(Call::Yield);
        let mut s = self.state();
        if s.others_ready {
            s.now_ns += s.yield_ns;
        }
        Ok(s.others_ready)
    }

    fn idle_until(&self, sched: SchedHandle, deadline_ns: u64) -> SysResult<()> {
        assert_eq!(sched, GRANTS.sched);
        self.record(Call::IdleUntil(deadline_ns));
        let mut s = self.state();
        assert!(s.idle_budget > 0, "the VMM idled without end (now {} ns)", s.now_ns);
        s.idle_budget -= 1;
        // The CPU sleeps until the deadline.
        s.now_ns = s.now_ns.max(deadline_ns);
        Ok(())
    }

    fn cpu_usage(&self, sched: SchedHandle) -> SysResult<CpuUsage> {
        assert_eq!(sched, GRANTS.sched);
        Ok(self.0.lock().expect("the fake's state").cpu)
    }

    fn console_write(&self, console: ConsoleHandle, bytes: &[u8]) -> SysResult<()> {
        assert_eq!(console, GRANTS.console);
        self.state().console_out.extend_from_slice(bytes);
        Ok(())
    }

    fn console_read(&self, console: ConsoleHandle) -> SysResult<Option<u8>> {
        assert_eq!(console, GRANTS.console);
        Ok(self.state().console_in.pop_front())
    }

    fn chan_send(&self, peer: u32, msg: &[u8]) -> SysResult<()> {
        if peer != VM_ID {
            return Err(SysError::NoSuchObject);
        }
        self.record(Call::ChanSend { peer, msg: msg.to_vec() });
        let mut s = self.state();
        if s.loopback.len() == CHANNEL_DEPTH {
            return Err(SysError::WouldBlock);
        }
        s.loopback.push_back(msg.to_vec());
        Ok(())
    }

    fn chan_recv(&self, peer: u32, buf: &mut [u8]) -> SysResult<usize> {
        if peer != VM_ID {
            return Err(SysError::NoSuchObject);
        }
        let mut s = self.state();
        let msg = s.loopback.front().ok_or(SysError::WouldBlock)?;
        if msg.len() > buf.len() {
            return Err(SysError::TooBig);
        }
        let n = msg.len();
        buf[..n].copy_from_slice(msg);
        s.loopback.pop_front();
        Ok(n)
    }

    fn net_info(&self, port: NetHandle) -> SysResult<NetPortInfo> {
        assert_eq!(port, GRANTS.net);
        Ok(NetPortInfo { mac: MAC, stats: NetStats::default() })
    }

    fn net_send(&self, port: NetHandle, vm: VmHandle, frame: &[GuestSpan]) -> SysResult<()> {
        assert_eq!(port, GRANTS.net);
        let mut bytes = Vec::new();
        for span in frame {
            let mut piece = vec![0; span.len as usize];
            self.guest_read(vm, span.gpa, &mut piece)?;
            bytes.extend_from_slice(&piece);
        }
        self.record(Call::NetSend(bytes));
        Ok(())
    }

    fn net_recv(&self, port: NetHandle, vm: VmHandle, into: &[GuestSpan]) -> SysResult<Option<usize>> {
        assert_eq!(port, GRANTS.net);
        let Some(frame) = self.state().net_in.front().cloned() else { return Ok(None) };
        if frame.len() > into.iter().map(|s| s.len as usize).sum() {
            return Err(SysError::TooBig);
        }
        let mut at = 0;
        for span in into {
            let n = (span.len as usize).min(frame.len() - at);
            self.guest_write(vm, span.gpa, &frame[at..at + n])?;
            at += n;
        }
        self.state().net_in.pop_front();
        Ok(Some(frame.len()))
    }
    fn fork_join(&self, _sched: SchedHandle, extra: &[ThreadCpu], body: &(dyn Fn(usize) + Sync)) -> SysResult<()> {
        assert!(extra.is_empty(), "the fake runs one vCPU");
        body(0);
        Ok(())
    }
    fn vcpu_kick(&self, vcpu: VcpuHandle) -> SysResult<()> {
        self.record(Call::Kick(vcpu));
        Ok(())
    }
    fn vcpu_halt(&self, sched: SchedHandle, _vcpu: VcpuHandle, deadline_ns: u64) -> SysResult<()> {
        self.idle_until(sched, deadline_ns)
    }
}

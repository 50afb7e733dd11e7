//! SVM: enabling it on a CPU, and the world switch.
//!
//! The world switch follows AMD APM vol. 2, §15.5 (VMRUN), §15.6 (#VMEXIT)
//! and §15.17 (GIF): the host's hidden state (FS/GS/TR/LDTR, the SYSCALL
//! MSRs) is saved with VMSAVE and restored with VMLOAD around VMRUN, because
//! VMRUN itself saves only the host's core state (segments, CRs, EFER, RSP,
//! RIP, RAX) into the HSAVE area.
use super::cpu::{msr, rdmsr, wrmsr};
use super::xsave::{self, XsaveArea};
use core::arch::global_asm;
use core::mem::offset_of;
use vmcb::{ControlArea, StateSaveArea, Vmcb};

/// The guest's general registers that the VMCB does not hold (RAX, RSP and
/// RIP live in its state save area).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gprs {
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

/// What the world switch loads before VMRUN and stores after #VMEXIT: the
/// general registers the VMCB lacks and the extended (x87/SSE/AVX...)
/// state, with the XCR0 that goes with it.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct GuestRegs {
    pub gprs: Gprs,
    /// The guest's XCR0 (1, x87 only, after RESET). Changed by
    /// [`Self::set_xcr0`], which accepts only values valid for the host's
    /// XCR0, and by the world switch, which records the XCR0 the CPU held at
    /// #VMEXIT: a value the CPU itself accepted.
    xcr0: u64,
    /// The host's XCR0 while this vCPU does not run; 0 on a CPU without
    /// XSAVE, where the switch uses FXSAVE/FXRSTOR.
    host_xcr0: u64,
    /// Loaded by XRSTOR, which faults in the host on a malformed area: only
    /// the world switch writes it.
    xstate: XsaveArea,
    /// Non-zero on a CPU whose FXRSTOR/XRSTOR leave the x87 error pointers
    /// alone unless an exception is pending (AMD without XSAVEERPTR).
    x87_pointer_fix: u64,
    /// The exits the world switch answers without leaving the guest's context.
    pub in_place: InPlace,
}

impl GuestRegs {
    /// Registers after RESET, for a vCPU that will run on this host.
    pub fn new() -> Self {
        GuestRegs {
            gprs: Gprs::default(),
            xcr0: guest_x86::regs::xcr0::X87,
            host_xcr0: xsave::host_xcr0(),
            xstate: XsaveArea::reset(),
            x87_pointer_fix: u64::from(xsave::needs_x87_pointer_fix()),
            in_place: InPlace::default(),
        }
    }

    pub fn xcr0(&self) -> u64 {
        self.xcr0
    }

    /// Sets the XCR0 the guest runs with. Refuses (false) a value that
    /// XSETBV would reject or that names a component the host does not
    /// switch: the world switch loads it with XSETBV.
    pub fn set_xcr0(&mut self, xcr0: u64) -> bool {
        let ok = xsave::valid_xcr0(xcr0, self.host_xcr0);
        if ok {
            self.xcr0 = xcr0;
        }
        ok
    }
}

impl Default for GuestRegs {
    fn default() -> Self {
        Self::new()
    }
}

const _: () = assert!(offset_of!(GuestRegs, xstate) % 64 == 0);
// The world switch looks at four entries of two words each.
const _: () = assert!(CONSTANT_PORTS == 4 && size_of::<ConstantPorts>() == 64);

/// Where the world switch last saw an intercepted instruction whose length
/// it may take without NRIPS: the guest's CR3 and RIP (64-bit mode, so RIP
/// is the linear address) and the host address of the instruction's bytes
/// in the VM's RAM. `bytes` 0: nothing remembered.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeSite {
    cr3: u64,
    rip: u64,
    bytes: u64,
}

/// The exits the world switch answers itself, right after #VMEXIT and
/// without leaving the guest's context (GIF stays 0; the guest's general
/// registers, hidden segment state, extended state, XCR0, TSC_AUX and
/// DR0-DR3 stay in the CPU): the PING hypercall, a CPUID whose answer the
/// kernel's fast path gave before and which depends on nothing but the
/// leaf and subleaf, and an IN from a port whose value the VMM declared
/// constant ([`ConstantPorts`]). The rules (docs/exit-path.md, "Answered
/// in place"):
///
/// - only in 64-bit mode, with no event in delivery (EXITINTINFO), no
///   posted virtual interrupt (V_IRQ) and no single-stepping (RFLAGS.TF);
///   everything else goes the whole way, to `Vcpu::run` and beyond;
/// - the next RIP is the VMCB's next_rip where the CPU has NRIPS; without
///   it, the instruction's canonical bytes must be at the host address
///   remembered for this CR3 and RIP, which the kernel's fast path found
///   through the guest's page tables ([`CodeSite`]);
/// - the instruction completes as `vm::events::complete_instruction` does
///   (RIP, the interrupt shadow ends), EVENTINJ is emptied as after every
///   exit and TLB_CONTROL becomes "do nothing"; no field the clean bits
///   cover changes, so the clean bits of the last VMRUN stay true;
/// - a host interrupt or NMI that arrives meanwhile is held by GIF=0 and
///   ends the next VMRUN at once (#VMEXIT(INTR) or (NMI)), which is not
///   answered here: the host takes it at STGI as after any exit, and the
///   clock check of the caller runs.
///
/// The exits answered here are counted in `served_*`; `Vcpu::run` adds
/// them to the statistics. Their time counts as guest time.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct InPlace {
    /// The VMCB's address and physical address, set by [`run_vmcb`].
    vmcb: u64,
    vmcb_pa: u64,
    /// Non-zero when the CPU has NRIPS.
    nrips: u64,
    ping: CodeSite,
    cpuid: CodeSite,
    cpuid_leaf: u32,
    cpuid_sub: u32,
    /// Non-zero when `cpuid_answer` holds the answer for leaf and subleaf.
    cpuid_valid: u64,
    /// EAX, EBX, ECX, EDX.
    cpuid_answer: [u32; 4],
    /// Port reads with a constant answer, declared by the VMM.
    ports: ConstantPorts,
    served_pings: u64,
    served_cpuids: u64,
    served_port_reads: u64,
}

/// How many constant ports a VM may declare.
pub const CONSTANT_PORTS: usize = 4;

/// EXITINFO1 of an IOIO exit, the bits that pick out one port read: the
/// port (31:16), the operand size (6:4), string (2) and IN (0) (AMD APM
/// vol. 2, §15.10.2). The address size, segment and REP do not matter to
/// an IN, and 0 is no IN.
const IO_KEY_MASK: u64 = 0xFFFF_0075;

/// Port reads the world switch answers itself: each entry the EXITINFO1
/// bits of one IN ([`IO_KEY_MASK`]; 0 for none) and the value it reads.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConstantPorts {
    entries: [[u64; 2]; CONSTANT_PORTS],
}

impl ConstantPorts {
    /// The EXITINFO1 bits ([`IO_KEY_MASK`]) of an IN of `size` bytes (1, 2
    /// or 4) from `port`.
    fn key(port: u16, size: u8) -> Option<u64> {
        let size_bit = match size {
            1 => 1 << 4,
            2 => 1 << 5,
            4 => 1 << 6,
            _ => return None,
        };
        Some(u64::from(port) << 16 | size_bit | 1)
    }

    /// Declares that an IN of `size` bytes (1, 2 or 4) from `port` reads
    /// `value`, replacing what was declared for that port and size. False
    /// if `size` or `value` is invalid or the table is full.
    pub fn declare(&mut self, port: u16, size: u8, value: u32) -> bool {
        let Some(key) = Self::key(port, size) else {
            return false;
        };
        if size < 4 && value >> (8 * size) != 0 {
            return false;
        }
        let slot =
            self.entries.iter().position(|e| e[0] == key).or_else(|| self.entries.iter().position(|e| e[0] == 0));
        let Some(i) = slot else {
            return false;
        };
        self.entries[i] = [key, u64::from(value)];
        true
    }

    /// What an IN (not INS) of `size` bytes from `port` reads, if declared:
    /// the answer the world switch gives, for the exits it leaves to the
    /// kernel's fast path (outside 64-bit mode, or single-stepping).
    pub fn answer(&self, port: u16, size: u8) -> Option<u32> {
        let key = Self::key(port, size)?;
        self.entries.iter().find(|e| e[0] == key).map(|e| e[1] as u32)
    }
}

/// The two instructions the world switch may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InPlaceInsn {
    Ping,
    Cpuid,
}

impl InPlace {
    /// Whether the CPU provides the next RIP (NRIPS).
    pub fn set_nrips(&mut self, nrips: bool) {
        self.nrips = u64::from(nrips);
    }

    fn site(&mut self, insn: InPlaceInsn) -> &mut CodeSite {
        match insn {
            InPlaceInsn::Ping => &mut self.ping,
            InPlaceInsn::Cpuid => &mut self.cpuid,
        }
    }

    /// `insn` was found at `rip` under `cr3`, in 64-bit mode, its bytes at
    /// host address `bytes` (a VM RAM address that stays valid while the
    /// vCPU lives).
    pub fn remember_site(&mut self, insn: InPlaceInsn, cr3: u64, rip: u64, bytes: u64) {
        *self.site(insn) = CodeSite { cr3, rip, bytes };
    }

    /// Forgets where `insn` was (its bytes were not there).
    pub fn forget_site(&mut self, insn: InPlaceInsn) {
        *self.site(insn) = CodeSite::default();
    }

    /// Forgets every site (the guest's RAM may be mapped elsewhere).
    pub fn forget_sites(&mut self) {
        self.ping = CodeSite::default();
        self.cpuid = CodeSite::default();
    }

    /// CPUID(`leaf`, `sub`) answers `answer` (EAX, EBX, ECX, EDX) whatever
    /// the vCPU's state.
    pub fn remember_cpuid(&mut self, leaf: u32, sub: u32, answer: [u32; 4]) {
        (self.cpuid_leaf, self.cpuid_sub, self.cpuid_answer, self.cpuid_valid) = (leaf, sub, answer, 1);
    }

    /// The port reads the VM declared constant.
    pub fn set_ports(&mut self, ports: &ConstantPorts) {
        self.ports = *ports;
    }

    /// The PINGs, CPUIDs and port reads answered here since the last call.
    pub fn take_served(&mut self) -> Served {
        let served =
            Served { pings: self.served_pings, cpuids: self.served_cpuids, port_reads: self.served_port_reads };
        (self.served_pings, self.served_cpuids, self.served_port_reads) = (0, 0, 0);
        served
    }
}

/// How many exits of each kind the world switch answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    pub pings: u64,
    pub cpuids: u64,
    pub port_reads: u64,
}

impl Served {
    pub fn any(&self) -> bool {
        self.pings | self.cpuids | self.port_reads != 0
    }
}

// The world switch. Called as
//     svm_world_switch(regs: *mut GuestRegs, guest_vmcb_pa: u64, host_save_pa: u64)
// with interrupts disabled (IF=0) and GIF=1. Returns after the next #VMEXIT
// with the guest's registers in `regs` and the exit recorded in the VMCB.
global_asm!(
    ".pushsection .text.svm_world_switch, \"ax\"",
    ".global svm_world_switch",
    "svm_world_switch:",
    // SysV callee-saved registers: the guest will clobber them all.
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rdi", // [rsp+8] after the next push: the GuestRegs pointer
    "push rdx", // [rsp]: the host save area, for VMLOAD after the exit
    // Host hidden state -> host save area (APM 15.5.2: VMRUN does not save it).
    "mov rax, rdx",
    "vmsave rax",
    // GIF=0 holds every interrupt; IF=1 lets a physical interrupt that
    // arrives while the guest runs cause #VMEXIT(INTR) (with V_INTR_MASKING
    // set, the host's IF, saved by VMRUN, gates physical interrupts).
    "clgi",
    // On a CPU that restores FIP/FDP/FOP only with an exception pending,
    // give them values of our own first (what Linux does for its tasks), so
    // that the last x87 pointers of another guest do not survive into this
    // one's FNSTENV.
    "cmp qword ptr [rdi + {x87_pointer_fix}], 0",
    "je 7f",
    "fnclex",
    "emms",
    "fild dword ptr [rdi + {x87_pointer_fix}]",
    "7:",
    // Guest extended state in, after CLGI so that not even an NMI can run
    // host code on it. The host's is dead across this call (SysV: every
    // vector register is caller-saved; MXCSR is reset after the exit).
    // x87 and SSE are always restored, whatever the guest's XCR0 says: SSE
    // works without XCR0.SSE. The restore runs under the host's XCR0 (a
    // superset of the guest's), then XCR0 becomes the guest's.
    "mov r8, [rdi + {host_xcr0}]",
    "test r8, r8",
    "jz 2f",
    "mov rax, [rdi + {xcr0}]",
    "or rax, {x87_sse}",
    "mov rdx, rax",
    "shr rdx, 32",
    "xrstor64 [rdi + {xstate}]",
    "mov rax, [rdi + {xcr0}]",
    "cmp rax, r8",
    "je 3f",
    "mov rdx, rax",
    "shr rdx, 32",
    "xor ecx, ecx",
    "xsetbv",
    "jmp 3f",
    "2:", // no XSAVE: the legacy region only
    "fxrstor64 [rdi + {xstate}]",
    "3:",
    "sti",
    "mov rax, rsi",
    "vmload rax", // guest FS/GS/TR/LDTR and SYSCALL MSRs from the guest VMCB
    "mov rbx, [rdi + {rbx}]",
    "mov rcx, [rdi + {rcx}]",
    "mov rdx, [rdi + {rdx}]",
    "mov rsi, [rdi + {rsi}]",
    "mov rbp, [rdi + {rbp}]",
    "mov r8,  [rdi + {r8}]",
    "mov r9,  [rdi + {r9}]",
    "mov r10, [rdi + {r10}]",
    "mov r11, [rdi + {r11}]",
    "mov r12, [rdi + {r12}]",
    "mov r13, [rdi + {r13}]",
    "mov r14, [rdi + {r14}]",
    "mov r15, [rdi + {r15}]",
    "mov rdi, [rdi + {rdi}]",
    // Run the guest. At #VMEXIT the CPU restores the host's RSP, RIP, RAX
    // (= the guest VMCB address), RFLAGS (IF=1) and segments; GIF is 0.
    "10:",
    "vmrun rax",
    ".global svm_vmexit_rip",
    "svm_vmexit_rip:",
    // Exits answered in place (`InPlace` has the rules). RAX (the VMCB's
    // physical address) is the only register free: PING and CPUID are
    // picked out with it alone, so that other exits pay a few loads.
    "mov rax, [rsp + 8]", // the GuestRegs pointer
    "mov rax, [rax + {ip_vmcb}]",
    "mov rax, [rax + {exit_code}]",
    "cmp rax, {code_vmmcall}",
    "je 14f",
    "cmp rax, {code_cpuid}",
    "je 14f",
    "cmp rax, {code_ioio}",
    "je 14f",
    "15:",
    "mov rax, [rsp + 8]",
    "mov rax, [rax + {ip_vmcb_pa}]",
    "jmp 19f",
    // Beyond this, nothing but these three registers, saved on the stack,
    // and the VMCB changes; a served exit goes straight back to VMRUN,
    // still in the guest's context.
    "14:",
    "push rdi",
    "push rsi",
    "push r8",
    "mov rdi, [rsp + 32]", // the GuestRegs pointer
    "mov rsi, [rdi + {ip_vmcb}]",
    "test dword ptr [rsi + {exit_int_info}], 0x80000000", // an event in delivery
    "jnz 17f",
    "test byte ptr [rsi + {int_control} + 1], 1", // V_IRQ (bit 8): an interrupt posted
    "jnz 17f",
    "test byte ptr [rsi + {rflags} + 1], 1", // TF (bit 8): single-stepping
    "jnz 17f",
    "test byte ptr [rsi + {efer} + 1], 4", // EFER.LMA (bit 10)
    "jz 17f",
    "test byte ptr [rsi + {cs_attrib} + 1], 2", // CS.L (attribute bit 9): 64-bit code
    "jz 17f",
    "mov r8, [rsi + {exit_code}]",
    "cmp r8, {code_vmmcall}",
    "je 12f",
    "cmp r8, {code_ioio}",
    "je 16f",
    // CPUID: the answer for this leaf (EAX) and subleaf (ECX) is known.
    "cmp qword ptr [rdi + {ip_cpuid_valid}], 0",
    "je 17f",
    "cmp ecx, dword ptr [rdi + {ip_cpuid_sub}]",
    "jne 17f",
    "mov r8d, dword ptr [rsi + {rax}]",
    "cmp r8d, dword ptr [rdi + {ip_cpuid_leaf}]",
    "jne 17f",
    "mov r8, [rsi + {next_rip}]",
    "cmp qword ptr [rdi + {ip_nrips}], 0",
    "jne 11f",
    "mov r8, [rdi + {ip_cpuid_site} + {site_bytes}]",
    "test r8, r8",
    "jz 17f",
    "cmp word ptr [r8], 0xA20F", // 0F A2
    "jne 17f",
    "mov r8, [rsi + {cr3}]",
    "cmp r8, [rdi + {ip_cpuid_site} + {site_cr3}]",
    "jne 17f",
    "mov r8, [rsi + {rip}]",
    "cmp r8, [rdi + {ip_cpuid_site} + {site_rip}]",
    "jne 17f",
    "add r8, 2",
    "11:",
    "mov [rsi + {rip}], r8",
    "mov r8d, dword ptr [rdi + {ip_cpuid_answer}]",
    "mov [rsi + {rax}], r8",
    "mov ebx, dword ptr [rdi + {ip_cpuid_answer} + 4]",
    "mov ecx, dword ptr [rdi + {ip_cpuid_answer} + 8]",
    "mov edx, dword ptr [rdi + {ip_cpuid_answer} + 12]",
    "inc qword ptr [rdi + {ip_served_cpuids}]",
    "jmp 18f",
    // PING: RAX = 1 (hvabi::nr::PING) becomes 0.
    "12:",
    "cmp qword ptr [rsi + {rax}], {ping}",
    "jne 17f",
    "mov r8, [rsi + {next_rip}]",
    "cmp qword ptr [rdi + {ip_nrips}], 0",
    "jne 13f",
    "mov r8, [rdi + {ip_ping_site} + {site_bytes}]",
    "test r8, r8",
    "jz 17f",
    "cmp word ptr [r8], 0x010F", // 0F 01 D9
    "jne 17f",
    "cmp byte ptr [r8 + 2], 0xD9",
    "jne 17f",
    "mov r8, [rsi + {cr3}]",
    "cmp r8, [rdi + {ip_ping_site} + {site_cr3}]",
    "jne 17f",
    "mov r8, [rsi + {rip}]",
    "cmp r8, [rdi + {ip_ping_site} + {site_rip}]",
    "jne 17f",
    "add r8, 3",
    "13:",
    "mov [rsi + {rip}], r8",
    "mov qword ptr [rsi + {rax}], 0",
    "inc qword ptr [rdi + {ip_served_pings}]",
    // The instruction is complete: the interrupt shadow ends; EVENTINJ is
    // empty after an exit and no TLB flush is due.
    "18:",
    "and byte ptr [rsi + {int_shadow}], 0xFE",
    "mov qword ptr [rsi + {event_inj}], 0",
    "mov byte ptr [rsi + {tlb_control}], 0",
    "pop r8",
    "pop rsi",
    "pop rdi",
    "mov rax, [rsp + 8]",
    "mov rax, [rax + {ip_vmcb_pa}]",
    "jmp 10b",
    // Not answered here: the whole way out.
    "17:",
    "pop r8",
    "pop rsi",
    "pop rdi",
    "jmp 15b",
    // IN from a port the VMM declared constant (`ConstantPorts`): the value
    // goes into RAX as the CPU would put it (AL, AX, or EAX zero-extended),
    // and the next RIP is in EXITINFO2 on every CPU.
    "16:",
    "mov r8d, dword ptr [rsi + {exit_info1}]",
    "and r8d, {io_key_mask}",
    "cmp r8, [rdi + {ip_ports}]",
    "je 20f",
    "cmp r8, [rdi + {ip_ports} + 16]",
    "je 21f",
    "cmp r8, [rdi + {ip_ports} + 32]",
    "je 22f",
    "cmp r8, [rdi + {ip_ports} + 48]",
    "jne 17b",
    "mov r8, [rdi + {ip_ports} + 56]",
    "jmp 23f",
    "20:",
    "mov r8, [rdi + {ip_ports} + 8]",
    "jmp 23f",
    "21:",
    "mov r8, [rdi + {ip_ports} + 24]",
    "jmp 23f",
    "22:",
    "mov r8, [rdi + {ip_ports} + 40]",
    "23:",
    "test byte ptr [rsi + {exit_info1}], 0x10", // SZ8
    "jz 24f",
    "mov byte ptr [rsi + {rax}], r8b",
    "jmp 26f",
    "24:",
    "test byte ptr [rsi + {exit_info1}], 0x20", // SZ16
    "jz 25f",
    "mov word ptr [rsi + {rax}], r8w",
    "jmp 26f",
    "25:",
    "mov qword ptr [rsi + {rax}], r8", // SZ32: the value's upper half is 0
    "26:",
    "mov r8, [rsi + {exit_info2}]",
    "mov [rsi + {rip}], r8",
    "inc qword ptr [rdi + {ip_served_port_reads}]",
    "jmp 18b",
    "19:",
    "vmsave rax", // guest hidden state back into the guest VMCB
    "push rdi",   // guest RDI; the GuestRegs pointer is now at [rsp+16]
    "mov rdi, [rsp + 16]",
    "mov [rdi + {rbx}], rbx",
    "mov [rdi + {rcx}], rcx",
    "mov [rdi + {rdx}], rdx",
    "mov [rdi + {rsi}], rsi",
    "mov [rdi + {rbp}], rbp",
    "mov [rdi + {r8}],  r8",
    "mov [rdi + {r9}],  r9",
    "mov [rdi + {r10}], r10",
    "mov [rdi + {r11}], r11",
    "mov [rdi + {r12}], r12",
    "mov [rdi + {r13}], r13",
    "mov [rdi + {r14}], r14",
    "mov [rdi + {r15}], r15",
    "pop qword ptr [rdi + {rdi}]",
    // Guest extended state out, still at GIF=0. XCR0 as the guest left it
    // (QEMU's TCG does not intercept XSETBV, so the guest may have changed
    // it without an exit), then the host's XCR0 back, so that XSAVE stores
    // every component the guest can reach.
    "mov r8, [rdi + {host_xcr0}]",
    "test r8, r8",
    "jz 4f",
    "xor ecx, ecx",
    "xgetbv",
    "shl rdx, 32",
    "or rax, rdx",
    "mov [rdi + {xcr0}], rax",
    "cmp rax, r8",
    "je 5f",
    "mov rax, r8",
    "mov rdx, r8",
    "shr rdx, 32",
    "xsetbv",
    "5:",
    "mov rax, [rdi + {xcr0}]",
    "or rax, {x87_sse}",
    "mov rdx, rax",
    "shr rdx, 32",
    "xsave64 [rdi + {xstate}]",
    "jmp 6f",
    "4:",
    "fxsave64 [rdi + {xstate}]",
    "6:",
    // The host's Rust code uses SSE, never x87: only the guest's MXCSR
    // (exception masks, rounding, DAZ/FTZ) must not reach it.
    "push 0x1F80",
    "ldmxcsr [rsp]",
    "add rsp, 8",
    "pop rax",
    "vmload rax", // host hidden state back
    // GIF=1 with IF=1: a physical interrupt that caused the exit (or came
    // in since) is taken here, on its IST stack, by the host's handler.
    "stgi",
    "cli",
    "add rsp, 8", // the GuestRegs pointer
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".popsection",
    rbx = const offset_of!(Gprs, rbx),
    rcx = const offset_of!(Gprs, rcx),
    rdx = const offset_of!(Gprs, rdx),
    rsi = const offset_of!(Gprs, rsi),
    rdi = const offset_of!(Gprs, rdi),
    rbp = const offset_of!(Gprs, rbp),
    r8 = const offset_of!(Gprs, r8),
    r9 = const offset_of!(Gprs, r9),
    r10 = const offset_of!(Gprs, r10),
    r11 = const offset_of!(Gprs, r11),
    r12 = const offset_of!(Gprs, r12),
    r13 = const offset_of!(Gprs, r13),
    r14 = const offset_of!(Gprs, r14),
    r15 = const offset_of!(Gprs, r15),
    xcr0 = const offset_of!(GuestRegs, xcr0),
    host_xcr0 = const offset_of!(GuestRegs, host_xcr0),
    xstate = const offset_of!(GuestRegs, xstate),
    x87_pointer_fix = const offset_of!(GuestRegs, x87_pointer_fix),
    x87_sse = const guest_x86::regs::xcr0::X87 | guest_x86::regs::xcr0::SSE,
    ip_vmcb = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, vmcb),
    ip_vmcb_pa = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, vmcb_pa),
    ip_nrips = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, nrips),
    ip_ping_site = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, ping),
    ip_cpuid_site = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, cpuid),
    ip_cpuid_leaf = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, cpuid_leaf),
    ip_cpuid_sub = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, cpuid_sub),
    ip_cpuid_valid = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, cpuid_valid),
    ip_cpuid_answer = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, cpuid_answer),
    ip_served_pings = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, served_pings),
    ip_served_port_reads = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, served_port_reads),
    ip_ports = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, ports),
    io_key_mask = const IO_KEY_MASK,
    exit_info1 = const offset_of!(Vmcb, control) + offset_of!(ControlArea, exit_info1),
    exit_info2 = const offset_of!(Vmcb, control) + offset_of!(ControlArea, exit_info2),
    code_ioio = const vmcb::ExitCode::Ioio.to_raw(),
    ip_served_cpuids = const offset_of!(GuestRegs, in_place) + offset_of!(InPlace, served_cpuids),
    site_cr3 = const offset_of!(CodeSite, cr3),
    site_rip = const offset_of!(CodeSite, rip),
    site_bytes = const offset_of!(CodeSite, bytes),
    exit_code = const offset_of!(Vmcb, control) + offset_of!(ControlArea, exit_code),
    exit_int_info = const offset_of!(Vmcb, control) + offset_of!(ControlArea, exit_int_info),
    int_control = const INT_CONTROL,
    int_shadow = const offset_of!(Vmcb, control) + offset_of!(ControlArea, interrupt_shadow),
    event_inj = const offset_of!(Vmcb, control) + offset_of!(ControlArea, event_inj),
    tlb_control = const offset_of!(Vmcb, control) + offset_of!(ControlArea, tlb_control),
    next_rip = const offset_of!(Vmcb, control) + offset_of!(ControlArea, next_rip),
    rip = const offset_of!(Vmcb, save) + offset_of!(StateSaveArea, rip),
    rax = const offset_of!(Vmcb, save) + offset_of!(StateSaveArea, rax),
    rflags = const offset_of!(Vmcb, save) + offset_of!(StateSaveArea, rflags),
    cr3 = const offset_of!(Vmcb, save) + offset_of!(StateSaveArea, cr3),
    efer = const offset_of!(Vmcb, save) + offset_of!(StateSaveArea, efer),
    cs_attrib = const offset_of!(Vmcb, save) + offset_of!(StateSaveArea, cs) + offset_of!(vmcb::Segment, attrib),
    code_vmmcall = const vmcb::ExitCode::Vmmcall.to_raw(),
    code_cpuid = const vmcb::ExitCode::Cpuid.to_raw(),
    ping = const hvabi::nr::PING,
);

/// VMCB offset 0x060, the virtual interrupt control (V_IRQ is bit 8; AMD
/// APM vol. 2, Appendix B), which the vmcb crate keeps private.
const INT_CONTROL: usize = 0x60;
const _: () = assert!(offset_of!(ControlArea, interrupt_shadow) == INT_CONTROL + 8);
const _: () = assert!(guest_x86::regs::rflags::TF == 1 << 8 && guest_x86::regs::efer::LMA == 1 << 10);

unsafe extern "C" {
    #[cfg_attr(test, allow(dead_code))]
    fn svm_world_switch(regs: *mut GuestRegs, guest_vmcb_pa: u64, host_save_pa: u64);
    /// The instruction after VMRUN: where the host resumes at #VMEXIT.
    static svm_vmexit_rip: u8;
}

/// The address at which the host resumes after #VMEXIT.
pub fn vmexit_rip() -> u64 {
    core::ptr::addr_of!(svm_vmexit_rip) as u64
}

/// A 4 KiB, 4 KiB-aligned page used by the CPU itself (HSAVE, host save area).
#[repr(C, align(4096))]
pub struct CpuPage(pub [u8; 4096]);

/// Per-CPU SVM pages.
struct SvmPages {
    hsave: CpuPage,
    #[cfg_attr(test, allow(dead_code))] // host tests script the world switch
    host_save: CpuPage,
}

static mut SVM_PAGES: [SvmPages; super::gdt::MAX_CPUS] =
    [const { SvmPages { hsave: CpuPage([0; 4096]), host_save: CpuPage([0; 4096]) } }; super::gdt::MAX_CPUS];

/// Turns SVM on for CPU `cpu`: EFER.SVME and the host save area (VM_HSAVE_PA).
/// The caller has checked CPUID and VM_CR (see `Features::missing`).
pub fn enable(cpu: usize) {
    assert!(cpu < super::gdt::MAX_CPUS);
    // SAFETY: the static lives for the kernel's life, is identity-mapped, and each CPU uses only its own slot.
    // EFER.SVME only enables SVM instructions; VM_HSAVE_PA names a page only the CPU writes.
    unsafe {
        let hsave = core::ptr::addr_of!(SVM_PAGES[cpu].hsave) as u64;
        wrmsr(msr::EFER, rdmsr(msr::EFER) | guest_x86::regs::efer::SVME);
        wrmsr(msr::VM_HSAVE_PA, hsave);
    }
}

/// Runs the guest whose VMCB is `vmcb` on CPU `cpu` (the current one),
/// until its next #VMEXIT. In host tests the world switch is scripted
/// (`arch::sim`).
pub fn run_vmcb(cpu: usize, regs: &mut GuestRegs, vmcb: &mut super::vmspace::GuestVmcb) {
    debug_assert_eq!(cpu, super::cpu::current());
    #[cfg(not(test))]
    {
        // The VMCB is bound to its VmSpace, whose nested page table and permission maps stay allocated while the
        // VMCB exists and let the guest reach only its own RAM, the ports the VMM passed through and the MSRs the
        // switch swaps; `vmcb` keeps the pointers and the intercepts that guard them out of safe code's reach.
        // The exits answered in place read the VMCB through this address and the bytes at the `CodeSite`s, which
        // `InPlace::remember_site`'s callers took from this VM's RAM: mapped for the VM's life, which outlasts the vCPU.
        regs.in_place.vmcb = core::ptr::addr_of_mut!(**vmcb) as u64;
        regs.in_place.vmcb_pa = vmcb.pa();
        // SAFETY: as above; VMRUN checks the rest of the state (VMEXIT_INVALID). The host save page is this CPU's
        // own, SVM was enabled on every CPU at boot, and `&mut` keeps the VMCB off other CPUs.
        unsafe {
            let host_save = core::ptr::addr_of!(SVM_PAGES[cpu].host_save) as u64;
            svm_world_switch(regs, vmcb.pa(), host_save);
        }
    }
    #[cfg(test)]
    super::sim::world_switch(regs, vmcb);
}

/// Invalidates the TLB entries of `asid` for the page at `va` (INVLPGA).
pub fn invlpga(va: u64, asid: u32) {
    // SAFETY: INVLPGA only drops TLB entries; SVM is enabled.
    unsafe { core::arch::asm!("invlpga rax, ecx", in("rax") va, in("ecx") asid, options(nostack, preserves_flags)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_port_answers_exactly_its_in_of_its_size() {
        let mut p = ConstantPorts::default();
        assert!(p.declare(0xE9, 1, 0xE9));
        assert_eq!(p.answer(0xE9, 1), Some(0xE9));
        assert_eq!(p.answer(0xE9, 2), None, "a word read");
        assert_eq!(p.answer(0xEA, 1), None, "another port");
        assert_eq!(ConstantPorts::default().answer(0xE9, 1), None, "an empty table answers nothing");
    }

    #[test]
    fn the_world_switch_mask_picks_out_the_declared_in_from_exitinfo1() {
        // What the assembly compares: EXITINFO1 & IO_KEY_MASK against the key.
        let key = ConstantPorts::key(0xE9, 1).unwrap();
        // `in al, 0xE9` in 64-bit mode: port, SZ8, A64, IN.
        let in_al = 0xE9 << 16 | 1 << 4 | 1 << 9 | 1;
        assert_eq!(in_al & IO_KEY_MASK, key);
        assert_eq!((in_al | 1 << 3) & IO_KEY_MASK, key, "REP does not change an IN");
        assert_ne!((in_al & !1) & IO_KEY_MASK, key, "an OUT");
        assert_ne!((in_al | 1 << 2) & IO_KEY_MASK, key, "INS");
        assert_ne!((0xE9 << 16 | 1 << 5 | 1) & IO_KEY_MASK, key, "a word read");
        assert_ne!(0, key, "an empty entry matches nothing");
    }
}

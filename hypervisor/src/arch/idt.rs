//! The IDT and the host's exception handlers.
//!
//! A host exception is a hypervisor bug: the handler prints the vector, the
//! error code, RIP, CR2 and every general register, then stops; under QEMU
//! it exits with [`ExitStatus::Failure`](super::qemu::ExitStatus).
use super::gdt::{self, KERNEL_CS};
use core::arch::{asm, global_asm};
use core::mem::size_of;

global_asm!(include_str!("exceptions.S"), options(att_syntax));

unsafe extern "C" {
    static exc_stub_table: [u64; 32];
    static irq_stubs: [u8; 224 * 16];
}

/// What the stubs in `exceptions.S` leave on the stack, lowest address first.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ExceptionFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_hi: u32,
    _reserved: u32,
}

const MISSING: Gate =
    Gate { offset_lo: 0, selector: 0, ist: 0, type_attr: 0, offset_mid: 0, offset_hi: 0, _reserved: 0 };

#[repr(C, align(16))]
struct Idt([Gate; 256]);

/// One IDT serves every CPU: the gates name IST slots, and each CPU's TSS
/// supplies its own stacks.
static mut IDT: Idt = Idt([MISSING; 256]);

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

fn gate(handler: u64, ist: u8) -> Gate {
    Gate {
        offset_lo: handler as u16,
        selector: KERNEL_CS,
        ist,
        type_attr: 0x8E, // present, DPL 0, 64-bit interrupt gate
        offset_mid: (handler >> 16) as u16,
        offset_hi: (handler >> 32) as u32,
        _reserved: 0,
    }
}

/// Fills the IDT (on the boot CPU) and loads it.
///
/// # Safety
/// Called on each CPU after [`gdt::init`]; the boot CPU must call it before
/// any other CPU starts.
pub unsafe fn init(boot_cpu: bool) {
    if boot_cpu {
        // SAFETY: the boot CPU fills the table before anyone else loads it.
        let idt = unsafe { &mut *core::ptr::addr_of_mut!(IDT) };
        // SAFETY: the table is fully initialised static data.
        let stubs = unsafe { &*core::ptr::addr_of!(exc_stub_table) };
        for (vector, &handler) in stubs.iter().enumerate() {
            let ist = match vector {
                // No stack switch, so no TSS lookup: a #DB can arrive at the
                // instruction after VMRUN, while TR still holds the guest's
                // TSS (see `is_leaked_single_step`).
                1 => 0,
                2 => gdt::IST_NMI,
                8 => gdt::IST_DOUBLE_FAULT,
                18 => gdt::IST_MACHINE_CHECK,
                _ => gdt::IST_EXCEPTION,
            };
            idt.0[vector] = gate(handler, ist);
        }
        let irq_base = core::ptr::addr_of!(irq_stubs) as u64;
        for vector in 32..256 {
            idt.0[vector] = gate(irq_base + (vector as u64 - 32) * 16, gdt::IST_IRQ);
        }
    }
    let ptr = DescriptorPointer { limit: (size_of::<Idt>() - 1) as u16, base: core::ptr::addr_of!(IDT) as u64 };
    // SAFETY: the IDT is static and every present gate points to a stub.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags)) };
}

const NAMES: [&str; 32] = [
    "divide error (#DE)",
    "debug (#DB)",
    "NMI",
    "breakpoint (#BP)",
    "overflow (#OF)",
    "bound range (#BR)",
    "invalid opcode (#UD)",
    "device not available (#NM)",
    "double fault (#DF)",
    "coprocessor segment overrun",
    "invalid TSS (#TS)",
    "segment not present (#NP)",
    "stack fault (#SS)",
    "general protection (#GP)",
    "page fault (#PF)",
    "reserved",
    "x87 floating point (#MF)",
    "alignment check (#AC)",
    "machine check (#MC)",
    "SIMD floating point (#XM)",
    "virtualization (#VE)",
    "control protection (#CP)",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection (#HV)",
    "VMM communication (#VC)",
    "security (#SX)",
    "reserved",
];

/// A single-step #DB taken in the host at the instruction right after
/// VMRUN. The host never sets RFLAGS.TF, so this is the guest's pending
/// single-step trap carried across #VMEXIT: Bochs 2.7 does that when a
/// guest with TF set runs an intercepted instruction (hardware drops it; the
/// instruction never completed). It is harmless and ignored: the guest gets
/// its #DB from the hypervisor when the instruction is completed.
fn is_leaked_single_step(frame: &ExceptionFrame) -> bool {
    frame.vector == 1 && frame.rip == super::svm::vmexit_rip()
}

#[unsafe(no_mangle)]
extern "C" fn exception_dispatch(frame: &ExceptionFrame) {
    if is_leaked_single_step(frame) {
        static SEEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
        if !SEEN.swap(true, core::sync::atomic::Ordering::Relaxed) {
            // No lock is held at this point of the world switch.
            log::warn!("host: ignored a single-step #DB leaked from a guest across #VMEXIT (an emulator's flaw)");
        }
        return;
    }
    let cr2 = super::cpu::read_cr2();
    let name = NAMES.get(frame.vector as usize).copied().unwrap_or("?");
    super::fatal(format_args!(
        "host exception: vector {} {} error={:#x} rip={:#018x} cr2={:#018x}\n\
         rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n\
         rsi={:#018x} rdi={:#018x} rbp={:#018x} rsp={:#018x}\n\
         r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}\n\
         r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}\n\
         cs={:#x} ss={:#x} rflags={:#x}",
        frame.vector,
        name,
        frame.error_code,
        frame.rip,
        cr2,
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.rsp,
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
        frame.cs,
        frame.ss,
        frame.rflags,
    ));
}

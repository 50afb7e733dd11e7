//! Per-CPU GDT and TSS, with IST stacks for the exception handlers.
//!
//! The precompiled `core` uses the red zone, so an exception must never push
//! its frame onto the interrupted stack: every exception runs on an IST
//! stack of the CPU it happens on.
use core::arch::asm;
use core::mem::size_of;

pub const MAX_CPUS: usize = 8;
pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
const TSS_SEL: u16 = 0x18;

/// IST slots (1-based, as the IDT encodes them).
pub const IST_EXCEPTION: u8 = 1;
pub const IST_DOUBLE_FAULT: u8 = 2;
pub const IST_NMI: u8 = 3;
pub const IST_MACHINE_CHECK: u8 = 4;
pub const IST_IRQ: u8 = 5;
const IST_STACK_SIZE: usize = 16 * 1024;
const IST_STACKS: usize = 5;

#[repr(C, packed(4))]
#[derive(Clone, Copy)]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

#[repr(C, align(16))]
struct CpuTables {
    gdt: [u64; 5],
    tss: Tss,
    stacks: [Stack; IST_STACKS],
}

const EMPTY_TSS: Tss = Tss {
    _reserved0: 0,
    rsp: [0; 3],
    _reserved1: 0,
    ist: [0; 7],
    _reserved2: 0,
    _reserved3: 0,
    iomap_base: size_of::<Tss>() as u16,
};

static mut TABLES: [CpuTables; MAX_CPUS] =
    [const { CpuTables { gdt: [0; 5], tss: EMPTY_TSS, stacks: [const { Stack([0; IST_STACK_SIZE]) }; IST_STACKS] } };
        MAX_CPUS];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// Loads the GDT and TSS of CPU `cpu` (0 is the boot CPU).
///
/// # Safety
/// Must be called once per CPU, on that CPU, before its IDT is loaded, with
/// `cpu < MAX_CPUS` distinct for every CPU.
pub unsafe fn init(cpu: usize) {
    assert!(cpu < MAX_CPUS);
    // SAFETY: each CPU touches only its own slot, and only here, once.
    let t = unsafe { &mut *core::ptr::addr_of_mut!(TABLES[cpu]) };
    for (i, stack) in t.stacks.iter().enumerate() {
        let top = stack.0.as_ptr() as u64 + IST_STACK_SIZE as u64;
        t.tss.ist[i] = top;
    }
    let tss_base = core::ptr::addr_of!(t.tss) as u64;
    let tss_limit = (size_of::<Tss>() - 1) as u64;
    t.gdt[0] = 0;
    t.gdt[1] = 0x00AF_9A00_0000_FFFF; // 64-bit code, DPL 0
    t.gdt[2] = 0x00CF_9200_0000_FFFF; // data, DPL 0
                                      // 64-bit available TSS (type 9), present, spread over two slots.
    t.gdt[3] = (tss_limit & 0xFFFF)
        | ((tss_base & 0xFF_FFFF) << 16)
        | (0x89 << 40)
        | (((tss_limit >> 16) & 0xF) << 48)
        | (((tss_base >> 24) & 0xFF) << 56);
    t.gdt[4] = tss_base >> 32;

    let ptr = DescriptorPointer { limit: (size_of::<[u64; 5]>() - 1) as u16, base: t.gdt.as_ptr() as u64 };
    // SAFETY: the GDT keeps the boot GDT's code and data selectors, so the segment reload below keeps running the same
    // code; the TSS descriptor points to this CPU's static TSS.
    unsafe {
        asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = in(reg) u64::from(KERNEL_CS),
            ds = in(reg) u64::from(KERNEL_DS),
            tss = in(reg) u64::from(TSS_SEL),
            tmp = out(reg) _,
        )
    };
}

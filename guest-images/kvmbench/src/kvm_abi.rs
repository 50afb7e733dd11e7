//! The parts of Linux's KVM API (include/uapi/linux/kvm.h, API version 12)
//! that kvmbench uses: ioctl numbers, the structures they pass, and the
//! offsets of the fields of the shared `struct kvm_run` page. Written here
//! instead of taken from a bindings crate: a dozen numbers and five
//! structures, checked by the tests below against the values the C header
//! gives (`gcc` printing `KVM_RUN`, `sizeof`, `offsetof`).

use std::mem::size_of;

pub const API_VERSION: i32 = 12;

const KVMIO: u64 = 0xAE;
const IOC_NONE: u64 = 0;
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

/// Linux's `_IOC(dir, type, nr, size)` on x86.
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
}

/// The `struct kvm_cpuid2` header (the entries follow it).
#[repr(C)]
struct Cpuid2Header {
    nent: u32,
    padding: u32,
}

pub const GET_API_VERSION: u64 = ioc(IOC_NONE, 0x00, 0);
pub const CREATE_VM: u64 = ioc(IOC_NONE, 0x01, 0);
pub const GET_VCPU_MMAP_SIZE: u64 = ioc(IOC_NONE, 0x04, 0);
pub const GET_SUPPORTED_CPUID: u64 = ioc(IOC_READ | IOC_WRITE, 0x05, size_of::<Cpuid2Header>());
pub const CREATE_VCPU: u64 = ioc(IOC_NONE, 0x41, 0);
pub const SET_USER_MEMORY_REGION: u64 = ioc(IOC_WRITE, 0x46, size_of::<UserspaceMemoryRegion>());
pub const CREATE_IRQCHIP: u64 = ioc(IOC_NONE, 0x60, 0);
pub const RUN: u64 = ioc(IOC_NONE, 0x80, 0);
pub const GET_REGS: u64 = ioc(IOC_READ, 0x81, size_of::<Regs>());
pub const SET_REGS: u64 = ioc(IOC_WRITE, 0x82, size_of::<Regs>());
pub const GET_SREGS: u64 = ioc(IOC_READ, 0x83, size_of::<Sregs>());
pub const SET_SREGS: u64 = ioc(IOC_WRITE, 0x84, size_of::<Sregs>());
pub const SET_CPUID2: u64 = ioc(IOC_WRITE, 0x90, size_of::<Cpuid2Header>());

/// `kvm_run.exit_reason` values.
pub const EXIT_IO: u32 = 2;
pub const EXIT_MMIO: u32 = 6;
pub const EXIT_SHUTDOWN: u32 = 8;
pub const EXIT_FAIL_ENTRY: u32 = 9;
pub const EXIT_INTERNAL_ERROR: u32 = 17;

/// `kvm_run.io.direction`.
pub const EXIT_IO_IN: u8 = 0;

/// Offsets into `struct kvm_run`.
pub mod run {
    pub const EXIT_REASON: usize = 0x08;
    pub const IO_DIRECTION: usize = 0x20;
    pub const IO_SIZE: usize = 0x21;
    pub const IO_PORT: usize = 0x22;
    pub const IO_COUNT: usize = 0x24;
    pub const IO_DATA_OFFSET: usize = 0x28;
    pub const MMIO_PHYS_ADDR: usize = 0x20;
    pub const MMIO_DATA: usize = 0x28;
    pub const MMIO_LEN: usize = 0x30;
    pub const MMIO_IS_WRITE: usize = 0x34;
    /// The first field of the exit's union (e.g. the entry failure reason,
    /// an internal error's suberror).
    pub const DETAIL: usize = 0x20;
}

/// `struct kvm_regs`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

/// `struct kvm_segment`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Segment {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub type_: u8,
    pub present: u8,
    pub dpl: u8,
    pub db: u8,
    pub s: u8,
    pub l: u8,
    pub g: u8,
    pub avl: u8,
    pub unusable: u8,
    pub padding: u8,
}

/// `struct kvm_dtable`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DTable {
    pub base: u64,
    pub limit: u16,
    pub padding: [u16; 3],
}

/// `struct kvm_sregs`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Sregs {
    pub cs: Segment,
    pub ds: Segment,
    pub es: Segment,
    pub fs: Segment,
    pub gs: Segment,
    pub ss: Segment,
    pub tr: Segment,
    pub ldt: Segment,
    pub gdt: DTable,
    pub idt: DTable,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cr8: u64,
    pub efer: u64,
    pub apic_base: u64,
    pub interrupt_bitmap: [u64; 4],
}

/// `struct kvm_userspace_memory_region`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UserspaceMemoryRegion {
    pub slot: u32,
    pub flags: u32,
    pub guest_phys_addr: u64,
    pub memory_size: u64,
    pub userspace_addr: u64,
}

/// `struct kvm_cpuid_entry2`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuidEntry2 {
    pub function: u32,
    pub index: u32,
    pub flags: u32,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
    pub padding: [u32; 3],
}

/// KVM's limit on CPUID entries (KVM_MAX_CPUID_ENTRIES in arch/x86/include/asm/kvm_host.h).
pub const MAX_CPUID_ENTRIES: usize = 256;

/// `struct kvm_cpuid2` with room for every entry KVM may return.
#[repr(C)]
#[derive(Debug, Clone)]
pub struct Cpuid2 {
    pub nent: u32,
    pub padding: u32,
    pub entries: [CpuidEntry2; MAX_CPUID_ENTRIES],
}

impl Cpuid2 {
    pub fn with_room() -> Box<Cpuid2> {
        Box::new(Cpuid2 {
            nent: MAX_CPUID_ENTRIES as u32,
            padding: 0,
            entries: [CpuidEntry2::default(); MAX_CPUID_ENTRIES],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn ioctl_numbers_match_linux_kvm_h() {
        let expected = [
            (GET_API_VERSION, 0xae00, "KVM_GET_API_VERSION"),
            (CREATE_VM, 0xae01, "KVM_CREATE_VM"),
            (GET_VCPU_MMAP_SIZE, 0xae04, "KVM_GET_VCPU_MMAP_SIZE"),
            (GET_SUPPORTED_CPUID, 0xc008ae05, "KVM_GET_SUPPORTED_CPUID"),
            (CREATE_VCPU, 0xae41, "KVM_CREATE_VCPU"),
            (SET_USER_MEMORY_REGION, 0x4020ae46, "KVM_SET_USER_MEMORY_REGION"),
            (CREATE_IRQCHIP, 0xae60, "KVM_CREATE_IRQCHIP"),
            (RUN, 0xae80, "KVM_RUN"),
            (GET_REGS, 0x8090ae81, "KVM_GET_REGS"),
            (SET_REGS, 0x4090ae82, "KVM_SET_REGS"),
            (GET_SREGS, 0x8138ae83, "KVM_GET_SREGS"),
            (SET_SREGS, 0x4138ae84, "KVM_SET_SREGS"),
            (SET_CPUID2, 0x4008ae90, "KVM_SET_CPUID2"),
        ];
        for (seen, want, name) in expected {
            assert_eq!(seen, want, "{name}: expected {want:#x}, computed {seen:#x}");
        }
    }

    #[test]
    fn structures_have_the_c_sizes_and_offsets() {
        assert_eq!(size_of::<Regs>(), 0x90);
        assert_eq!(size_of::<Segment>(), 0x18);
        assert_eq!(size_of::<Sregs>(), 0x138);
        assert_eq!(offset_of!(Sregs, gdt), 0xc0);
        assert_eq!(offset_of!(Sregs, cr0), 0xe0);
        assert_eq!(offset_of!(Sregs, efer), 0x108);
        assert_eq!(size_of::<UserspaceMemoryRegion>(), 0x20);
        assert_eq!(size_of::<CpuidEntry2>(), 0x28);
        assert_eq!(offset_of!(Cpuid2, entries), 8);
    }
}

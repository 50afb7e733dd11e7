/*
 * Boot entry of the hypervisor image: multiboot headers and the 32 -> 64-bit
 * switch.
 *
 * Both multiboot v1 (QEMU -kernel) and multiboot2 (GRUB) enter at _start in
 * 32-bit protected mode with paging off: EAX holds the loader's magic and EBX
 * the physical address of its information structure. We build identity page
 * tables for the first 4 GiB with 2 MiB pages, enter long mode, enable SSE
 * (the precompiled `core` uses XMM registers) and XSAVE where the CPU has
 * it, and call kmain(magic, info).
 */

.set MB1_MAGIC,  0x1BADB002
/* bit 0: page-align modules, bit 1: memory map, bit 16: address fields valid
 * (QEMU refuses a 64-bit ELF without them). */
.set MB1_FLAGS,  (1 << 0) | (1 << 1) | (1 << 16)
.set MB2_MAGIC,  0xE85250D6

.set BOOT_STACK_SIZE, 256 * 1024
/* 2 MiB pages from this index on cover 0xFE00_0000..4 GiB (LAPIC, IOAPIC,
 * firmware): map them uncached (PCD|PWT) so MMIO is right on real hardware. */
.set UNCACHED_FROM, 0xFE000000 >> 21

.section .multiboot_header, "a"
.balign 4
mb1_header:
    .long MB1_MAGIC
    .long MB1_FLAGS
    .long -(MB1_MAGIC + MB1_FLAGS)
    .long mb1_header            /* header_addr */
    .long __image_start         /* load_addr: file is copied from here ... */
    .long __load_end            /* load_end_addr: ... to the end of .data */
    .long __image_end           /* bss_end_addr: zeroed up to here */
    .long _start                /* entry_addr */

.balign 8
mb2_header:
    .long MB2_MAGIC
    .long 0                     /* architecture: i386 protected mode */
    .long mb2_header_end - mb2_header
    .long -(MB2_MAGIC + (mb2_header_end - mb2_header))
    /* end tag */
    .short 0
    .short 0
    .long 8
mb2_header_end:

.section .boot.text, "ax"
.code32
.global _start
_start:
    cli
    cld
    /* Keep the loader's arguments in .data: .bss is zeroed next. */
    mov %eax, boot_magic
    mov %ebx, boot_info

    /* Zero .bss ourselves rather than trust every loader to. */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    mov $boot_stack_top, %esp

    /* Long mode is required: CPUID 0x8000_0001 EDX bit 29. */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    bt $29, %edx
    jnc no_long_mode

    /* PML4[0] -> PDPT; PDPT[0..4] -> four page directories. */
    mov $boot_pdpt, %eax
    or $0x3, %eax               /* present | writable */
    mov %eax, boot_pml4
    mov $boot_pd, %eax
    or $0x3, %eax
    mov $boot_pdpt, %edx
    mov $4, %ecx
1:  mov %eax, (%edx)
    add $4096, %eax
    add $8, %edx
    loop 1b

    /* 2048 PDEs of 2 MiB: identity map of 0..4 GiB. */
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax              /* present | writable | page size */
    cmp $UNCACHED_FROM, %ecx
    jb 3f
    or $0x18, %eax              /* PWT | PCD */
3:  mov %eax, boot_pd(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jb 2b

    /* CR4.PAE, CR3, EFER.LME, then CR0.PG turns long mode on. */
    mov %cr4, %eax
    or $(1 << 5), %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $(1 << 8), %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax        /* PG | PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $long_entry

/* Print a fixed message on COM1 and stop; under QEMU, exit with failure. */
no_long_mode:
    mov $no_long_mode_msg, %esi
4:  lodsb
    test %al, %al
    jz 5f
    mov $0x3F8, %dx
    out %al, %dx
    jmp 4b
5:  mov $0xF4, %dx
    mov $0x11, %eax
    out %eax, %dx
6:  hlt
    jmp 6b

.code64
long_entry:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp

    /* SSE: CR0.EM=0, CR0.MP=1, CR4.OSFXSR|OSXMMEXCPT. */
    mov %cr0, %rax
    and $~(1 << 2), %rax
    or $(1 << 1), %rax
    mov %rax, %cr0
    mov %cr4, %rax
    or $(3 << 9), %rax
    mov %rax, %cr4

    /* XSAVE (CPUID.1:ECX bit 26): CR4.OSXSAVE and XCR0 = x87|SSE, all the
     * host's own code needs. arch::xsave::init widens XCR0 for guests. */
    mov $1, %eax
    xor %ecx, %ecx
    cpuid
    bt $26, %ecx
    jnc 8f
    mov %cr4, %rax
    or $(1 << 18), %rax
    mov %rax, %cr4
    xor %ecx, %ecx
    xor %edx, %edx
    mov $3, %eax
    xsetbv
8:

    mov boot_magic(%rip), %edi
    mov boot_info(%rip), %esi
    xor %ebp, %ebp
    call kmain
7:  cli
    hlt
    jmp 7b

.section .rodata
no_long_mode_msg:
    .asciz "error: cannot run: this CPU has no long mode\n"

.balign 16
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF    /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF    /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

.section .data
.balign 4
boot_magic: .long 0
boot_info:  .long 0

.section .bss
/* The boot stack comes first in .bss, away from the page tables; once mm
 * is up, arch::paging unmaps its lowest page, so an overflow faults. */
.balign 4096
.global boot_stack
boot_stack: .skip BOOT_STACK_SIZE
boot_stack_top:
.balign 4096
.global boot_pml4
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096 * 4

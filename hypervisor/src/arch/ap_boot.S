/*
 * Start-up code of the application processors (APs).
 *
 * A startup IPI starts an AP in real mode at CS:IP = (page << 8):0000, so
 * this code must run from a page below 1 MiB. `arch::smp` copies the bytes
 * between ap_trampoline_start and ap_trampoline_end to such a page and fills
 * the data words at its end before each start-up. The code is position
 * independent: in real mode it addresses its data through CS (DS = CS), the
 * two absolute addresses it needs (the GDT's base and the far jump's target)
 * are patched in by the copier, and the 64-bit part addresses its data
 * RIP-relative.
 *
 * The AP takes the boot CPU's control registers as they are (CR0, CR3, CR4
 * and EFER, read by the copier), so it runs in long mode with the host's
 * page tables from its first 64-bit instruction. Real mode goes to long
 * mode in one step: CR4.PAE and EFER.LME first, then CR0.PE and CR0.PG
 * together, then a far jump to a 64-bit code segment (AMD APM vol. 2,
 * 14.6 "Enabling and Activating Long Mode").
 */

.section .rodata.ap_trampoline, "a"
.balign 16
.global ap_trampoline_start
.global ap_trampoline_end
.code16
ap_trampoline_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl (ap_gdt_ptr - ap_trampoline_start)
    movl (ap_cr4 - ap_trampoline_start), %eax
    mov %eax, %cr4
    movl (ap_cr3 - ap_trampoline_start), %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    movl (ap_efer - ap_trampoline_start), %eax
    movl (ap_efer + 4 - ap_trampoline_start), %edx
    wrmsr
    movl (ap_cr0 - ap_trampoline_start), %eax
    mov %eax, %cr0
    ljmpl *(ap_far_jump - ap_trampoline_start)

.code64
ap_long_mode:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov ap_stack_top(%rip), %rsp
    mov ap_cpu(%rip), %rdi
    mov ap_entry(%rip), %rax
    xor %ebp, %ebp
    call *%rax
1:  cli
    hlt
    jmp 1b

/* Null, 64-bit code (0x08) and data (0x10): the selectors of boot.S's GDT,
 * so the AP's own GDT (arch::gdt) later keeps the same ones. */
.balign 8
ap_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
ap_gdt_end:

/* Filled in by arch::smp: the offsets of these words are its constants. */
.balign 8
.global ap_gdt_ptr
ap_gdt_ptr:
    .short ap_gdt_end - ap_gdt - 1
    .long 0                       /* linear address of ap_gdt */
    .short 0
.global ap_far_jump
ap_far_jump:
    .long 0                       /* linear address of ap_long_mode */
    .short 0x08
    .short 0
.global ap_cr0, ap_cr3, ap_cr4, ap_efer, ap_stack_top, ap_cpu, ap_entry
ap_cr0:       .quad 0
ap_cr3:       .quad 0
ap_cr4:       .quad 0
ap_efer:      .quad 0
ap_stack_top: .quad 0
ap_cpu:       .quad 0
ap_entry:     .quad 0
.global ap_gdt_offset, ap_long_mode_offset
ap_trampoline_end:

/* Where the two patched addresses point, as offsets into the copy. */
.section .rodata
.balign 8
ap_gdt_offset:       .quad ap_gdt - ap_trampoline_start
ap_long_mode_offset: .quad ap_long_mode - ap_trampoline_start

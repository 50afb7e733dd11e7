/*
 * smp32 - test guest for a VM with two vCPUs (hv.vcpus=2).
 *
 * A multiboot v1 ELF32 kernel linked at 1 MiB (multiboot.ld), entered on
 * the bootstrap processor (vCPU 0) in 32-bit protected mode, paging off.
 * The other vCPU waits for a start-up IPI. Checks in order (the first
 * failure prints "FAIL smp32: <tag>" and resets):
 *    1. The BSP's local APIC ID is 0, and CPUID leaf 1 says so.     tags bsp id, bsp cpuid id
 *    2. INIT, INIT de-assert, start-up and a second start-up IPI to
 *       APIC ID 1 (the sequence of Intel SDM vol. 3 §8.4.4.1) start
 *       the AP in real mode at 0800:0000 (a trampoline copied
 *       there), which enters protected mode, enables its local APIC
 *       and reports its APIC ID, from its local APIC and from
 *       CPUID leaf 1 EBX bits 31:24.                                tags ap not started, ap id, ap cpuid id
 *    3. A fixed IPI by physical destination (ID 1) reaches the AP,
 *       whose handler answers with a fixed IPI to ID 0.            tags ping *
 *    4. A fixed IPI with the all-excluding-self shorthand reaches
 *       the AP only (the BSP has no handler for its vector).       tags all-but-self *
 *    5. A fixed IPI by flat logical destination 0x02 (the AP's LDR)
 *       reaches the AP.                                             tags logical *
 *    6. A self IPI on the BSP is taken by the BSP.                 tag self
 * then "PASS smp32" and a reset request (0x06 -> port 0xCF9).
 *
 * Waits are spin loops of at most WAIT iterations with interrupts on, so
 * that a VMM that loses an IPI fails the check instead of hanging.
 * Prints are one OUT to port 0xE9 per byte, from the BSP only.
 */
        .code32

        .set DBG,       0xE9
        .set RESETCTL,  0xCF9
        .set LAPIC,     0xFEE00000
        .set L_ID,      0x20
        .set L_EOI,     0xB0
        .set L_LDR,     0xD0
        .set L_DFR,     0xE0
        .set L_SVR,     0xF0
        .set L_ICR_LO,  0x300
        .set L_ICR_HI,  0x310
        .set TRAMPOLINE, 0x8000         /* start-up page 8 */
        .set V_PONG,    0x40            /* AP -> BSP */
        .set V_PING,    0x41            /* BSP -> AP, physical */
        .set V_ALL,     0x42            /* BSP -> all excluding self */
        .set V_LOGICAL, 0x43            /* BSP -> logical 0x02 */
        .set V_SELF,    0x44            /* BSP -> self */
        .set WAIT,      400000000       /* Bochs runs both vCPUs and the host in one thread */
        .set CODE_SEL,  0x08
        .set DATA_SEL,  0x10

        .section .multiboot, "a"
        .balign 4
        .long   0x1BADB002
        .long   0
        .long   -0x1BADB002

/* FAIL_WITH "tag": print "FAIL smp32: tag" and reset. */
.macro FAIL_WITH tag
        mov     $.Lmsg\@, %esi
        jmp     fail
        .pushsection .rodata
.Lmsg\@: .asciz "\tag"
        .popsection
.endm

/* CHECK jcc, "tag": continue if \ok holds, else FAIL with the tag. */
.macro CHECK ok, tag
        \ok     .Lok\@
        FAIL_WITH "\tag"
.Lok\@:
.endm

/* SEND dest, low: the BSP writes ICR high (destination) then ICR low. */
.macro SEND dest, low
        movl    $(\dest << 24), LAPIC + L_ICR_HI
        movl    $\low, LAPIC + L_ICR_LO
.endm

/* WAIT_FOR var, value, "tag": spin with interrupts on until the dword at
 * \var is \value, at most WAIT times; then FAIL with the tag. */
.macro WAIT_FOR var, value, tag
        mov     $WAIT, %ecx
.Lspin\@:
        cmpl    $\value, \var
        je      .Ldone\@
        pause
        dec     %ecx
        jnz     .Lspin\@
        FAIL_WITH "\tag"
.Ldone\@:
.endm

        .text
        .globl  _start
_start:
        cli
        cld
        mov     $stack_top, %esp
        lgdt    gdt_desc
        ljmp    $CODE_SEL, $1f
1:      mov     $DATA_SEL, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %fs
        mov     %ax, %gs
        mov     %ax, %ss
        call    idt_init
        lidt    idt_desc
        mov     $s_start, %esi
        call    puts

        /* --- 1. the BSP's local APIC: on, flat logical ID 0x01 ------------ */
        movl    $0x1FF, LAPIC + L_SVR
        movl    $0xFFFFFFFF, LAPIC + L_DFR
        movl    $0x01000000, LAPIC + L_LDR
        mov     LAPIC + L_ID, %eax
        shr     $24, %eax
        test    %eax, %eax
        CHECK   jz, "bsp id"
        mov     $1, %eax
        cpuid
        shr     $24, %ebx
        test    %ebx, %ebx
        CHECK   jz, "bsp cpuid id"

        /* --- 2. INIT-SIPI-SIPI ------------------------------------------- */
        mov     $trampoline, %esi
        mov     $TRAMPOLINE, %edi
        mov     $(trampoline_end - trampoline), %ecx
        rep movsb
        SEND    1, 0xC500               /* INIT, level, assert */
        SEND    1, 0x8500               /* INIT, level, de-assert */
        SEND    1, 0x4600 + (TRAMPOLINE >> 12)
        SEND    1, 0x4600 + (TRAMPOLINE >> 12)
        WAIT_FOR ap_alive, 1, "ap not started"
        cmpl    $1, ap_apic_id
        CHECK   je, "ap id"
        cmpl    $1, ap_cpuid_id
        CHECK   je, "ap cpuid id"
        mov     $s_ap_up, %esi
        call    puts
        sti

        /* --- 3. physical destination ------------------------------------- */
        SEND    1, 0x4000 + V_PING
        WAIT_FOR bsp_pongs, 1, "ping no answer"
        cmpl    $1, ap_pings
        CHECK   je, "ping count"

        /* --- 4. all excluding self ---------------------------------------- */
        SEND    0, 0xC4000 + V_ALL
        WAIT_FOR bsp_pongs, 2, "all-but-self no answer"
        cmpl    $1, ap_alls
        CHECK   je, "all-but-self count"

        /* --- 5. flat logical destination ---------------------------------- */
        SEND    0x02, 0x4800 + V_LOGICAL
        WAIT_FOR bsp_pongs, 3, "logical no answer"
        cmpl    $1, ap_logicals
        CHECK   je, "logical count"

        /* --- 6. self ------------------------------------------------------- */
        SEND    0, 0x44000 + V_SELF
        WAIT_FOR bsp_selfs, 1, "self"

        cli
        mov     $s_pass, %esi
        call    puts
reset:
        mov     $RESETCTL, %edx
        mov     $0x06, %al
        out     %al, %dx
2:      cli
        hlt
        jmp     2b

/* fail: print "FAIL smp32: " and the tag at ESI, then reset. */
fail:
        push    %esi
        mov     $s_fail, %esi
        call    puts
        pop     %esi
        call    puts
        mov     $'\n', %al
        out     %al, $DBG
        jmp     reset

/* puts: print the NUL-terminated string at ESI, one OUT per byte. */
puts:
        lodsb
        test    %al, %al
        jz      1f
        out     %al, $DBG
        jmp     puts
1:      ret

/* The AP in protected mode: its own stack, the shared IDT, its local APIC
 * on with flat logical ID 0x02; it reports its APIC ID and waits for IPIs. */
ap_main32:
        mov     $DATA_SEL, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %fs
        mov     %ax, %gs
        mov     %ax, %ss
        mov     $ap_stack_top, %esp
        lidt    idt_desc
        movl    $0x1FF, LAPIC + L_SVR
        movl    $0xFFFFFFFF, LAPIC + L_DFR
        movl    $0x02000000, LAPIC + L_LDR
        mov     LAPIC + L_ID, %eax
        shr     $24, %eax
        mov     %eax, ap_apic_id
        mov     $1, %eax
        cpuid
        shr     $24, %ebx
        mov     %ebx, ap_cpuid_id
        movl    $1, ap_alive
        sti
1:      hlt
        jmp     1b

/* IPI handlers. The AP's count the IPI, end it and answer the BSP. */
.macro AP_HANDLER name, counter
\name:
        incl    \counter
        movl    $0, LAPIC + L_EOI
        movl    $0, LAPIC + L_ICR_HI
        movl    $0x4000 + V_PONG, LAPIC + L_ICR_LO
        iret
.endm
        AP_HANDLER ping_handler, ap_pings
        AP_HANDLER all_handler, ap_alls
        AP_HANDLER logical_handler, ap_logicals

pong_handler:
        incl    bsp_pongs
        movl    $0, LAPIC + L_EOI
        iret

self_handler:
        incl    bsp_selfs
        movl    $0, LAPIC + L_EOI
        iret

/* Any other vector: "FAIL smp32: unexpected vector". */
unexpected:
        mov     $t_unexpected, %esi
        jmp     fail

/* idt_init: every gate -> unexpected, then the IPI vectors. */
idt_init:
        xor     %eax, %eax
        mov     $unexpected, %edx
1:      call    set_gate
        inc     %eax
        cmp     $256, %eax
        jb      1b
        mov     $V_PONG, %eax
        mov     $pong_handler, %edx
        call    set_gate
        mov     $V_PING, %eax
        mov     $ping_handler, %edx
        call    set_gate
        mov     $V_ALL, %eax
        mov     $all_handler, %edx
        call    set_gate
        mov     $V_LOGICAL, %eax
        mov     $logical_handler, %edx
        call    set_gate
        mov     $V_SELF, %eax
        mov     $self_handler, %edx
        call    set_gate
        ret

/* set_gate: IDT[EAX] = 32-bit interrupt gate to CODE_SEL:EDX. */
set_gate:
        mov     %dx, idt(,%eax,8)
        movw    $CODE_SEL, idt + 2(,%eax,8)
        movw    $0x8E00, idt + 4(,%eax,8)
        push    %edx
        shr     $16, %edx
        mov     %dx, idt + 6(,%eax,8)
        pop     %edx
        ret

/* The AP's first code, copied to TRAMPOLINE: real mode at 0800:0000. It
 * loads the GDT (32-bit base, through DS = CS) and jumps to ap_main32. */
        .code16
trampoline:
        cli
        mov     %cs, %ax
        mov     %ax, %ds
        lgdtl   tramp_gdt_desc - trampoline
        mov     %cr0, %eax
        or      $1, %eax
        mov     %eax, %cr0
        ljmpl   $CODE_SEL, $ap_main32
        .balign 4
        .word   0
tramp_gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt
trampoline_end:
        .code32

        .section .rodata
s_start: .asciz "smp32: start\n"
s_ap_up: .asciz "smp32: AP 1 started\n"
s_pass:  .asciz "PASS smp32\n"
s_fail:  .asciz "FAIL smp32: "
t_unexpected: .asciz "unexpected vector"

        .balign 8
gdt:    .quad   0
        .quad   0x00CF9A000000FFFF      /* 0x08: code, 32-bit, base 0, 4 GiB */
        .quad   0x00CF92000000FFFF      /* 0x10: data, base 0, 4 GiB */
gdt_end:
        .balign 4
        .word   0
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt
        .word   0
idt_desc:
        .word   256 * 8 - 1
        .long   idt

        .data
ap_alive:    .long 0
ap_apic_id:  .long 0xFF
ap_cpuid_id: .long 0xFF
ap_pings:    .long 0
ap_alls:     .long 0
ap_logicals: .long 0
bsp_pongs:   .long 0
bsp_selfs:   .long 0

        .bss
        .balign 8
idt:    .skip   256 * 8
        .balign 16
        .skip   4096
stack_top:
        .skip   4096
ap_stack_top:

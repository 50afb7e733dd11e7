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
 * mode=ipibench on the multiboot command line (module line "hv.vcpus=2
 * mode=ipibench iterations=N") replaces checks 3 to 6 by an IPI round-trip
 * benchmark, after the AP has started (check 2). Each round trip is timed
 * by the BSP: LFENCE; RDTSC; LFENCE, a write of the ICR low word (fixed,
 * vector V_BPING, physical destination 1, set once in ICR high), a spin
 * with interrupts on until the AP's answer has been taken, LFENCE; RDTSC.
 * The AP's handler EOIs and writes its ICR low word (fixed, V_BPONG to ID
 * 0); the BSP's handler counts the answer and EOIs. Two variants of
 * BENCH_WARMUP untimed and N timed round trips each (N from iterations=,
 * 1 to BENCH_MAX_N, default BENCH_DEFAULT_N):
 *    ipi         the AP spins with interrupts on (ap_spins set): the IPI
 *                has to pull a vCPU that runs the guest out of it.
 *    ipi_halted  the AP waits in STI; HLT: the IPI wakes a halted vCPU.
 * Before each round trip the BSP waits until the AP is back in its loop
 * (ap_settled), napping in STI; HLT with its local APIC timer armed
 * (one-shot, BENCH_NAP_NS), so that the AP gets its host CPU and settles
 * (spins, or halts) before the ping; for ipi_halted it naps once more
 * after that, so that the AP's HLT has reached the host's halt. Per
 * variant one line
 *    "smp32: bench <variant> n=N min=.. median=.. p99=.. max=.." (TSC
 * cycles, nearest-rank percentiles of the sorted samples), then "PASS
 * smp32 ipibench" and the reset. An answer that does not come within WAIT
 * spins is "FAIL smp32: <variant>: no answer", an AP that does not settle
 * within BENCH_NAPS naps "FAIL smp32: <variant>: ap not settled", a bad
 * iterations= "FAIL smp32: iterations".
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
        .set V_BPONG,   0x45            /* mode=ipibench: AP -> BSP */
        .set V_BPING,   0x46            /* mode=ipibench: BSP -> AP */
        .set V_NAP,     0x47            /* mode=ipibench: the BSP's timer */
        .set L_LVT_TIMER, 0x320
        .set L_TIMER_INIT, 0x380
        .set L_TIMER_DIV, 0x3E0
        .set BENCH_DEFAULT_N, 1000
        .set BENCH_MAX_N, 10000         /* the samples buffer */
        .set BENCH_WARMUP, 10           /* untimed round trips per variant */
        .set BENCH_NAP_NS, 50000        /* one nap: 50 us of guest time */
        .set BENCH_NAPS, 100000         /* at most 5 s of naps for one settle */
        .set WAIT,      400000000       /* Bochs runs both vCPUs and the host in one thread */
        .include "flat32.inc"

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
        mov     %ebx, mb_info
        FLAT32_LOAD
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
        mov     mb_info, %ebx
        testl   $4, (%ebx)              /* flags bit 2: cmdline present */
        jz      1f
        mov     16(%ebx), %esi          /* cmdline (physical address) */
        mov     $k_ipibench, %edi
        call    contains
        jnz     ipibench
1:

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

/* BENCH_FAIL "why": print "FAIL smp32: <variant>: why" and reset. */
.macro BENCH_FAIL why
        mov     $.Lwhy\@, %eax
        jmp     bench_fail
        .pushsection .rodata
.Lwhy\@: .asciz "\why"
        .popsection
.endm

/* mode=ipibench: see the header. Interrupts are on. */
ipibench:
        movl    $BENCH_DEFAULT_N, bench_n
        mov     $k_iterations, %edi
        call    contains                /* ESI is still the cmdline */
        jz      1f
        mov     %eax, %esi
        call    parse_n
        CHECK   jnc, "iterations"
        mov     %eax, bench_n
1:      movl    $0x0B, LAPIC + L_TIMER_DIV      /* divide by 1 */
        movl    $V_NAP, LAPIC + L_LVT_TIMER     /* one-shot, unmasked */
        movl    $(1 << 24), LAPIC + L_ICR_HI    /* every ping goes to ID 1 */
        movl    $1, ap_spins
        movl    $0, bench_nap_after
        mov     $n_ipi, %esi
        call    bench_variant
        movl    $0, ap_spins
        movl    $1, bench_nap_after
        mov     $n_ipi_halted, %esi
        call    bench_variant
        cli
        mov     bench_sent, %eax
        cmp     %eax, ap_bpings
        CHECK   je, "ipibench ping count"
        cmp     %eax, bsp_bpongs
        CHECK   je, "ipibench answer count"
        mov     $s_pass_bench, %esi
        call    puts
        jmp     reset

/* bench_variant: BENCH_WARMUP untimed and bench_n timed round trips, then
 * the variant's line. ESI = the variant's name. The first round trip after
 * a change of ap_spins is a warm-up one, after which the AP is in the new
 * state. */
bench_variant:
        mov     %esi, bench_name
        mov     $BENCH_WARMUP, %ecx
1:      push    %ecx
        call    bench_round
        pop     %ecx
        loop    1b
        mov     $samples, %edi
        mov     bench_n, %ecx
2:      push    %ecx
        call    bench_round
        pop     %ecx
        stosl
        loop    2b
        call    sort_samples
        jmp     print_stats

/* bench_round: wait until the AP has settled after every ping so far, then
 * time one round trip. EAX = TSC cycles (the low 32 bits of the difference).
 * Keeps EDI. */
bench_round:
        mov     bench_sent, %eax
        call    wait_ap_settled
        incl    bench_sent
        mov     bench_sent, %ebp        /* the answer count to wait for */
        lfence
        rdtsc
        lfence
        mov     %eax, %ebx
        movl    $0x4000 + V_BPING, LAPIC + L_ICR_LO
        mov     $WAIT, %ecx
1:      cmp     %ebp, bsp_bpongs
        je      2f
        pause
        dec     %ecx
        jnz     1b
        BENCH_FAIL "no answer"
2:      lfence
        rdtsc
        sub     %ebx, %eax
        ret

/* wait_ap_settled: until ap_settled = EAX, nap: arm the one-shot timer and
 * STI; HLT, at most BENCH_NAPS times; then one nap more if bench_nap_after
 * is set (ipi_halted: the AP stores ap_settled just before its STI; HLT,
 * and the nap gives its HLT time to reach the host's halt). Interrupts are
 * off from the check to the HLT, so the timer cannot fire in between and
 * leave the BSP halted for good. The BSP's halt gives its host CPU to the
 * AP (pinned: the other vCPU's thread; QEMU's single-threaded round robin:
 * the other host CPU). Stops the timer if it was armed. */
wait_ap_settled:
        mov     bench_nap_after, %edx
        mov     $BENCH_NAPS, %ecx
1:      cli
        cmp     %eax, ap_settled
        jne     2f
        test    %edx, %edx              /* settled; a nap still owed? */
        jz      3f
        xor     %edx, %edx
2:      movl    $BENCH_NAP_NS, LAPIC + L_TIMER_INIT
        sti
        hlt
        loop    1b
        BENCH_FAIL "ap not settled"
3:      cmp     $BENCH_NAPS, %ecx
        je      4f
        movl    $0, LAPIC + L_TIMER_INIT
4:      sti
        ret

/* bench_fail: print "FAIL smp32: <variant>: " and the string at EAX. */
bench_fail:
        push    %eax
        mov     $s_fail, %esi
        call    puts
        mov     bench_name, %esi
        call    puts
        mov     $s_colon, %esi
        call    puts
        pop     %esi
        call    puts
        mov     $'\n', %al
        out     %al, $DBG
        jmp     reset

/* sort_samples: insertion sort of the bench_n dwords at samples, unsigned,
 * ascending. */
sort_samples:
        mov     $1, %ecx
1:      cmp     bench_n, %ecx
        jae     4f
        mov     samples(,%ecx,4), %eax
        mov     %ecx, %edx
2:      test    %edx, %edx
        jz      3f
        mov     samples - 4(,%edx,4), %ebx
        cmp     %eax, %ebx
        jbe     3f
        mov     %ebx, samples(,%edx,4)
        dec     %edx
        jmp     2b
3:      mov     %eax, samples(,%edx,4)
        inc     %ecx
        jmp     1b
4:      ret

/* print_stats: "smp32: bench <name> n=N min=.. median=.. p99=.. max=..",
 * from the sorted samples. Nearest rank: the p-th percentile of n samples
 * is the one at rank ceil(p * n / 100), index rank - 1. */
print_stats:
        mov     $s_bench, %esi
        call    puts
        mov     bench_name, %esi
        call    puts
        mov     $s_n, %esi
        call    puts
        mov     bench_n, %eax
        call    putdec
        mov     $s_min, %esi
        call    puts
        mov     samples, %eax
        call    putdec
        mov     $s_median, %esi
        call    puts
        mov     bench_n, %eax
        dec     %eax
        shr     $1, %eax                /* ceil(n / 2) - 1 */
        mov     samples(,%eax,4), %eax
        call    putdec
        mov     $s_p99, %esi
        call    puts
        imul    $99, bench_n, %eax
        add     $99, %eax
        xor     %edx, %edx
        mov     $100, %ecx
        div     %ecx
        mov     samples - 4(,%eax,4), %eax  /* ceil(99 n / 100) - 1 */
        call    putdec
        mov     $s_max, %esi
        call    puts
        mov     bench_n, %eax
        mov     samples - 4(,%eax,4), %eax
        call    putdec
        mov     $'\n', %al
        out     %al, $DBG
        ret

/* putdec: print EAX in decimal. */
putdec:
        push    %ecx
        push    %edx
        push    %ebx
        mov     $10, %ebx
        xor     %ecx, %ecx
1:      xor     %edx, %edx
        div     %ebx
        push    %edx
        inc     %ecx
        test    %eax, %eax
        jnz     1b
2:      pop     %eax
        add     $'0', %al
        out     %al, $DBG
        loop    2b
        pop     %ebx
        pop     %edx
        pop     %ecx
        ret

/* parse_n: EAX = the decimal number at ESI, which ends at a space or the
 * end of the string; CF=1 unless it is 1 to BENCH_MAX_N. */
parse_n:
        xor     %eax, %eax
1:      movzbl  (%esi), %ecx
        sub     $'0', %ecx
        cmp     $9, %ecx
        ja      2f
        imul    $10, %eax, %eax
        add     %ecx, %eax
        cmp     $BENCH_MAX_N, %eax
        ja      3f
        inc     %esi
        jmp     1b
2:      test    %eax, %eax
        jz      3f
        movzbl  (%esi), %ecx
        test    %ecx, %ecx
        jz      4f
        cmp     $' ', %ecx
        je      4f
3:      stc
        ret
4:      clc
        ret

        .include "contains.inc"

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
        FLAT32_SEGMENTS
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
        movl    $0, LAPIC + L_ICR_HI    /* V_BPONG goes to APIC ID 0 */
        movl    $1, ap_alive
        /* fall through */

/* The AP's idle loop: it stores how many bench pings it has handled in
 * ap_settled, with interrupts off, then halts (STI; HLT: STI's interrupt
 * shadow keeps an IPI from being taken between the two, which would leave
 * the AP halted with a stale ap_settled) or, while ap_spins is set, spins
 * with interrupts on until the next bench ping. */
ap_idle:
        cli
        mov     ap_bpings, %eax
        mov     %eax, ap_settled
        cmpl    $0, ap_spins
        jne     2f
        sti
        hlt
        jmp     ap_idle
2:      sti
3:      pause
        cmp     ap_bpings, %eax
        je      3b
        jmp     ap_idle

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

/* mode=ipibench: the AP answers each ping (ICR high is already 0). */
bping_handler:
        incl    ap_bpings
        movl    $0, LAPIC + L_EOI
        movl    $0x4000 + V_BPONG, LAPIC + L_ICR_LO
        iret

bpong_handler:
        incl    bsp_bpongs
        movl    $0, LAPIC + L_EOI
        iret

nap_handler:
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
        mov     $V_BPING, %eax
        mov     $bping_handler, %edx
        call    set_gate
        mov     $V_BPONG, %eax
        mov     $bpong_handler, %edx
        call    set_gate
        mov     $V_NAP, %eax
        mov     $nap_handler, %edx
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
k_ipibench: .asciz "mode=ipibench"
k_iterations: .asciz "iterations="
s_bench: .asciz "smp32: bench "
s_n:     .asciz " n="
s_min:   .asciz " min="
s_median: .asciz " median="
s_p99:   .asciz " p99="
s_max:   .asciz " max="
s_colon: .asciz ": "
s_pass_bench: .asciz "PASS smp32 ipibench\n"
n_ipi:   .asciz "ipi"
n_ipi_halted: .asciz "ipi_halted"

        FLAT32_TABLES

        .data
mb_info:     .long 0
ap_alive:    .long 0
ap_apic_id:  .long 0xFF
ap_cpuid_id: .long 0xFF
ap_pings:    .long 0
ap_alls:     .long 0
ap_logicals: .long 0
bsp_pongs:   .long 0
bsp_selfs:   .long 0
ap_bpings:   .long 0            /* mode=ipibench: pings the AP handled */
ap_settled:  .long 0            /* ap_bpings when the AP last entered ap_idle */
ap_spins:    .long 0            /* nonzero: the AP spins instead of halting */
bsp_bpongs:  .long 0            /* answers the BSP took */
bench_sent:  .long 0            /* pings the BSP sent */
bench_n:     .long 0
bench_nap_after: .long 0        /* nap once after the AP settled */
bench_name:  .long 0

        .bss
        .balign 8
idt:    .skip   256 * 8
samples: .skip  4 * BENCH_MAX_N
        .balign 16
        .skip   4096
stack_top:
        .skip   4096
ap_stack_top:

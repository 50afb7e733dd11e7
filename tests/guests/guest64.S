/*
 * guest64 - long-mode test guest for the Certivisor SVM core.
 *
 * A multiboot v1 ELF32 kernel linked at 1 MiB (multiboot.ld), entered in
 * 32-bit protected mode with paging off. The guest switches itself to long
 * mode: static identity page tables (first 1 GiB as 2 MiB pages, plus the
 * 2 MiB pages 0xFEA0_0000, which holds the MMIO test device, and
 * 0xFEE0_0000, the local APIC's, both uncached),
 * CR4.PAE, EFER.LME by RDMSR/WRMSR, CR0.PG, far jump to a 64-bit code
 * segment. Linear = guest-physical everywhere.
 *
 * Assembler note: the object is ELF32, which has no 64-bit relocations, so
 * 64-bit code addresses memory only RIP-relative (sym(%rip)) and loads
 * addresses as 32-bit immediates (mov $sym, %esi zero-extends). `as` rejects
 * anything else, so a mistake cannot slip through.
 *
 * Checks, in order (the first failure prints "FAIL guest64: <tag>" and ends):
 *    1. "guest64: start" (32-bit), enter long mode, "guest64: long mode".
 *    2. EAX held the multiboot magic at entry.                 tag mb magic
 *    3. CPUID 1 hypervisor bit; CPUID 0x4000_0000 signature;
 *       CPUID 0x8000_0001 ECX bit 2 (SVM) clear.               tags hvbit, sig *, svmbit
 *    4. EFER read shows LMA|LME and no SVME.                   tag efer
 *    5. IN 0xE9 = 0xE9; IN 0x5555 byte/word/dword = all ones.  tags in *
 *    6. VMMCALL PING: RAX = 0, RBX..R15 unchanged (64-bit
 *       sentinels); VERSION: RAX = 1; unknown 0x7FFF: RAX = -38. tags ping*, version, enosys
 *    7. PIC+PIT, STI;HLT woken by IRQ0 through the 64-bit IDT. tag irq0
 *    8. MMIO device through REX-prefixed loads/stores.         tags mmio *
 *    9. INT3 runs our #BP handler once, RIP after the int3.    tags bp *
 *   10. CLGI raises #UD, our handler steps over it.            tag clgi ud
 *   11. Single-step (RFLAGS.TF) over CPUID, IN 0xE9 and VMMCALL
 *       PING: one #DB each, RIP after the instruction, DR6.BS. tags step *
 *   12. CPUID hides MONITOR (1:ECX[3]) and MONITORX
 *       (8000_0001:ECX[29]) (checked on the results of 3.); MONITOR,
 *       MWAIT, MONITORX and MWAITX each raise #UD.             tags monitor bit, monitorx bit, mwait ud
 *   13. MOV to CR4 setting PKE (never shown) raises #GP(0); so
 *       does setting OSXSAVE when CPUID hides XSAVE (else it
 *       succeeds and is undone); CR4 keeps its value. Only
 *       when check 3 saw the Certivisor signature.            tags cr4 certivisor, cr4 pke, cr4 osxsave, cr4 kept
 *   14. CR8 is the local APIC's task priority class: MOV to CR8
 *       (an exit) reads back through MOV from CR8 (none) and as
 *       the TPR at 0xFEE0_0080 (<< 4); a TPR written there reads
 *       back through CR8; a CR8 value with a reserved bit raises
 *       #GP(0) and changes nothing. Only under Certivisor.     tags cr8 read, cr8 tpr, tpr cr8, cr8 reserved, cr8 kept
 * then "PASS guest64" and a reset request (0x06 -> port 0xCF9).
 *
 * Other modes, chosen by the multiboot command line after check 2 (no exit
 * before the choice): mode=dr-keep and mode=dr-other, two VMs checking that
 * their debug registers are their own (debugregs.inc); mode=ni-observe and
 * mode=ni-secret-a / ni-secret-b, the noninterference pair
 * (noninterference.inc); mode=hcfuzz and mode=hcfuzz-10m, random hypercalls
 * from CPL 0 and CPL 3 (hcfuzz.inc); mode=hostile, what a guest must not
 * do to the host (hostile.inc).
 *
 * Exit accounting (see README.md): every IN/OUT is one IOIO exit; prints
 * are one OUT per byte (puts), never a string instruction.
 *
 * Build option: --defsym KEEP_GOING=1 (build --keep-going) makes a failed
 * check print its FAIL line and carry on, for smoke runs on plain QEMU.
 */
        .include "pic_pit.inc"

        .set DBG,      0xE9            /* debug console port */
        .set UNUSED,   0x5555          /* unassigned port: reads all ones */
        .set RESETCTL, 0xCF9           /* reset control register */
        .set MMIO,     0xFEBFF000      /* the hypervisor's MMIO test device */
        .set LAPIC_TPR, 0xFEE00080     /* the local APIC's task priority */
        .set EFER,     0xC0000080
        .set CODE32_SEL, 0x08
        .set DATA_SEL,   0x10
        .set CODE64_SEL, 0x18

/* Multiboot v1 header: magic, flags 0, checksum. ELF32, so no a.out kludge. */
        .section .multiboot, "a"
        .balign 4
        .long   0x1BADB002
        .long   0
        .long   -0x1BADB002

/*
 * CHECK jcc, "tag" (64-bit code only): continue if the condition \ok holds,
 * else report "FAIL guest64: tag". The tag's address is passed on the stack
 * so that a KEEP_GOING fail keeps every register (there is no push imm of a
 * symbol in ELF32, hence the push/lea/xchg).
 */
.macro CHECK ok, tag
        \ok     .Lok\@
        push    %rax                    /* push the tag address, RAX intact */
        lea     .Lmsg\@(%rip), %rax
        xchg    %rax, (%rsp)
        call    fail
        .pushsection .rodata
.Lmsg\@: .asciz "\tag"
        .popsection
.Lok\@:
.endm

/*
 * STEP "tag", insn (64-bit code only): run one instruction with RFLAGS.TF
 * set (by POPF, so the trap comes after the instruction that follows it)
 * and check that exactly one #DB arrived, with RIP right after the
 * instruction and DR6.BS set.
 */
.macro STEP tag, insn:vararg
        movl    $0, db_count(%rip)
        pushf
        orl     $0x100, (%rsp)
        popf
        \insn
.Lafter\@:
        cmpl    $1, db_count(%rip)
        CHECK   je, "\tag count"
        push    %rax
        lea     .Lafter\@(%rip), %rax
        cmp     db_rip(%rip), %rax
        pop     %rax
        CHECK   je, "\tag rip"
        testl   $0x4000, db_dr6(%rip)
        CHECK   jnz, "\tag dr6.bs"
.endm

/* ---------------------------------------------------------------------- */
/* 32-bit part: from the multiboot entry to the far jump into long mode.   */
/* ---------------------------------------------------------------------- */
        .text
        .code32
        .globl  _start
_start:
        cli
        cld
        mov     $stack_top, %esp
        mov     %eax, mb_magic
        mov     %ebx, mb_info

        lgdt    gdt_desc
        ljmp    $CODE32_SEL, $1f
1:      mov     $DATA_SEL, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %fs
        mov     %ax, %gs
        mov     %ax, %ss

        mov     $s_start, %esi          /* "guest64: start\n" = 15 bytes */
2:      lodsb                           /* 32-bit puts, one OUT per byte */
        test    %al, %al
        jz      3f
        out     %al, $DBG
        jmp     2b
3:
        mov     $pml4, %eax
        mov     %eax, %cr3
        mov     %cr4, %eax
        or      $0x20, %eax             /* CR4.PAE */
        mov     %eax, %cr4
        mov     $EFER, %ecx
        rdmsr                           /* MSR exit #1 */
        or      $0x100, %eax            /* EFER.LME */
        wrmsr                           /* MSR exit #2 */
        mov     %cr0, %eax
        or      $0x80000001, %eax       /* CR0.PG (PE is already set) */
        mov     %eax, %cr0              /* long mode is active now */
        ljmp    $CODE64_SEL, $long_entry

/* ---------------------------------------------------------------------- */
/* 64-bit part.                                                            */
/* ---------------------------------------------------------------------- */
        .code64
long_entry:
        mov     $DATA_SEL, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %fs
        mov     %ax, %gs
        mov     %ax, %ss
        mov     $stack_top, %esp        /* zero-extends into RSP */

        call    idt_init
        lidt    idt_desc(%rip)

        mov     $s_lm, %esi             /* "guest64: long mode\n" = 19 bytes */
        call    puts

        /* --- 2. multiboot magic ----------------------------------------- */
        cmpl    $0x2BADB002, mb_magic(%rip)
        CHECK   je, "mb magic"

        /* --- the mode, from the multiboot command line (no exits) ------- */
        mov     mb_info(%rip), %ebx
        testl   $4, (%rbx)              /* flags bit 2: cmdline present */
        jz      1f
        mov     16(%rbx), %esi          /* cmdline (physical address) */
        mov     $k_dr_keep, %edi
        call    contains
        jnz     mode_dr_keep
        mov     $k_dr_other, %edi
        call    contains
        jnz     mode_dr_other
        mov     $k_ni_observe, %edi
        call    contains
        jnz     mode_ni_observe
        mov     $k_ni_secret, %edi
        call    contains
        jnz     mode_ni_secret          /* RSI: the command line */
        mov     $k_hcfuzz, %edi
        call    contains
        jnz     mode_hcfuzz
        mov     $k_hostile, %edi
        call    contains
        jnz     mode_hostile
1:

        /* --- 3. CPUID ---------------------------------------------------- */
        mov     $1, %eax
        cpuid                           /* CPUID exit #1 */
        test    $0x80000000, %ecx
        CHECK   jnz, "hvbit"
        test    $(1 << 3), %ecx         /* MONITOR/MWAIT: not virtualised */
        CHECK   jz, "monitor bit"
        mov     %ecx, leaf1_ecx(%rip)   /* XSAVE (bit 26), for check 12 */
        mov     $0x40000000, %eax
        cpuid                           /* CPUID exit #2 */
        cmp     $0x40000001, %eax
        CHECK   je, "sig max"
        cmp     $0x74726543, %ebx       /* "Cert" */
        CHECK   je, "sig ebx"
        cmp     $0x73695669, %ecx       /* "iVis" */
        CHECK   je, "sig ecx"
        cmp     $0x5648726F, %edx       /* "orHV" */
        CHECK   je, "sig edx"
        cmp     $0x74726543, %ebx       /* the whole signature matched: */
        jne     1f                      /* remember it for check 12 */
        cmp     $0x73695669, %ecx
        jne     1f
        cmp     $0x5648726F, %edx
        jne     1f
        movb    $1, certivisor(%rip)
1:
        mov     $0x80000001, %eax
        cpuid                           /* CPUID exit #3 */
        test    $4, %ecx
        CHECK   jz, "svmbit"
        test    $(1 << 29), %ecx        /* MONITORX/MWAITX: not virtualised */
        CHECK   jz, "monitorx bit"

        /* --- 4. EFER: LMA (bit 10) and LME (bit 8) set, SVME (12) clear -- */
        mov     $EFER, %ecx
        rdmsr                           /* MSR exit #3 */
        and     $0x1500, %eax
        cmp     $0x0500, %eax
        CHECK   je, "efer"

        /* --- 5. port I/O ------------------------------------------------ */
        xor     %eax, %eax
        in      $DBG, %al               /* IOIO exit */
        cmp     $0xE9, %al
        CHECK   je, "in e9"
        mov     $UNUSED, %edx
        xor     %eax, %eax
        in      %dx, %al                /* IOIO exit */
        cmp     $0xFF, %al
        CHECK   je, "in 5555 b"
        xor     %eax, %eax
        in      %dx, %ax                /* IOIO exit */
        cmp     $0xFFFF, %ax
        CHECK   je, "in 5555 w"
        xor     %eax, %eax
        in      %dx, %eax               /* IOIO exit */
        cmp     $0xFFFFFFFF, %eax
        CHECK   je, "in 5555 l"

        /* --- 6. hypercalls with 64-bit results -------------------------- */
        mov     sentinel+0x00(%rip), %rbx
        mov     sentinel+0x08(%rip), %rcx
        mov     sentinel+0x10(%rip), %rdx
        mov     sentinel+0x18(%rip), %rsi
        mov     sentinel+0x20(%rip), %rdi
        mov     sentinel+0x28(%rip), %rbp
        mov     sentinel+0x30(%rip), %r8
        mov     sentinel+0x38(%rip), %r9
        mov     sentinel+0x40(%rip), %r10
        mov     sentinel+0x48(%rip), %r11
        mov     sentinel+0x50(%rip), %r12
        mov     sentinel+0x58(%rip), %r13
        mov     sentinel+0x60(%rip), %r14
        mov     sentinel+0x68(%rip), %r15
        mov     $1, %eax                /* PING (RAX = 1, upper half 0) */
        vmmcall                         /* VMMCALL exit #1 */
        test    %rax, %rax
        CHECK   jz, "ping"
        cmp     sentinel+0x00(%rip), %rbx
        CHECK   je, "ping rbx"
        cmp     sentinel+0x08(%rip), %rcx
        CHECK   je, "ping rcx"
        cmp     sentinel+0x10(%rip), %rdx
        CHECK   je, "ping rdx"
        cmp     sentinel+0x18(%rip), %rsi
        CHECK   je, "ping rsi"
        cmp     sentinel+0x20(%rip), %rdi
        CHECK   je, "ping rdi"
        cmp     sentinel+0x28(%rip), %rbp
        CHECK   je, "ping rbp"
        cmp     sentinel+0x30(%rip), %r8
        CHECK   je, "ping r8"
        cmp     sentinel+0x38(%rip), %r9
        CHECK   je, "ping r9"
        cmp     sentinel+0x40(%rip), %r10
        CHECK   je, "ping r10"
        cmp     sentinel+0x48(%rip), %r11
        CHECK   je, "ping r11"
        cmp     sentinel+0x50(%rip), %r12
        CHECK   je, "ping r12"
        cmp     sentinel+0x58(%rip), %r13
        CHECK   je, "ping r13"
        cmp     sentinel+0x60(%rip), %r14
        CHECK   je, "ping r14"
        cmp     sentinel+0x68(%rip), %r15
        CHECK   je, "ping r15"
        mov     $0, %eax                /* VERSION */
        vmmcall                         /* VMMCALL exit #2 */
        cmp     $2, %rax                /* ABI version 2, all 64 bits */
        CHECK   je, "version"
        mov     $0x7FFF, %eax           /* unknown call number */
        vmmcall                         /* VMMCALL exit #3 */
        cmp     $-38, %rax              /* 0xFFFF_FFFF_FFFF_FFDA */
        CHECK   je, "enosys"

        /* --- 7. HLT woken by IRQ0 --------------------------------------- */
        call    pic_pit_init            /* 13 IOIO exits */
        mov     $1000, %ecx             /* bounded: at most 1000 HLTs */
4:      sti                             /* STI shadow covers the HLT */
        hlt                             /* HLT exit */
        cli
        cmpl    $0, irq0_count(%rip)
        jne     5f
        loop    4b
5:      cmpl    $1, irq0_count(%rip)    /* the handler masks IRQ0: exactly 1 */
        CHECK   je, "irq0"

        /* --- 8. MMIO test device: one NPF exit per access ---------------
         * Encodings (checked in the build output with objdump):
         *   44 8b 08                 mov (%rax),%r9d         REX.R
         *   45 8b 5a 04              mov 0x4(%r10),%r11d     REX.RB, disp8
         *   0f b7 0b                 movzwl (%rbx),%ecx      16-bit access
         *   4d 89 42 08              mov %r8,0x8(%r10)       REX.WRB store
         *   4d 8b 4a 08              mov 0x8(%r10),%r9       REX.WRB load
         *   41 c7 42 08 imm32        movl $0x1234,0x8(%r10)  REX.B, imm store
         *   44 8b 58 08              mov 0x8(%rax),%r11d     REX.R
         *   45 8b 62 10              mov 0x10(%r10),%r12d    REX.RB
         *   44 8b 6b 10              mov 0x10(%rbx),%r13d    REX.R        */
        mov     $MMIO, %eax
        mov     $MMIO, %ebx
        mov     $MMIO, %r10d
        mov     (%rax), %r9d            /* NPF #1: MAGIC */
        cmp     $0x43455254, %r9d
        CHECK   je, "mmio magic"
        mov     4(%r10), %r11d          /* NPF #2: VERSION */
        cmp     $1, %r11d
        CHECK   je, "mmio version"
        movzwl  (%rbx), %ecx            /* NPF #3: MAGIC, low 16 bits */
        cmp     $0x5254, %ecx
        CHECK   je, "mmio magic16"
        movabs  $0x1122334455667788, %r8
        mov     %r8, 8(%r10)            /* NPF #4: SCRATCH, 64-bit write */
        mov     8(%r10), %r9            /* NPF #5: SCRATCH, 64-bit read */
        cmp     %r8, %r9
        CHECK   je, "mmio scratch64"
        movl    $0x1234, 8(%r10)        /* NPF #6: SCRATCH, 32-bit write */
        mov     8(%rax), %r11d          /* NPF #7: SCRATCH, 32-bit read */
        cmp     $0x1234, %r11d
        CHECK   je, "mmio scratch32"
        mov     0x10(%r10), %r12d       /* NPF #8: COUNTER */
        mov     0x10(%rbx), %r13d       /* NPF #9: COUNTER again */
        inc     %r12d
        cmp     %r12d, %r13d
        CHECK   je, "mmio counter"

        /* --- 9. INT3: intercepted and reflected as #BP ------------------- */
        movl    $0, bp_count(%rip)
        int3                            /* #BP exit */
after_int3:
        cmpl    $1, bp_count(%rip)
        CHECK   je, "bp count"
        lea     after_int3(%rip), %rax
        cmp     bp_rip(%rip), %rax      /* trap: RIP is after the int3 */
        CHECK   je, "bp rip"

        /* --- 10. an SVM instruction: #UD --------------------------------- */
        movl    $0, ud_count(%rip)
        clgi                            /* 0F 01 DD */
        cmpl    $1, ud_count(%rip)
        CHECK   je, "clgi ud"

        /* --- 11. single-step over completed instructions ----------------- */
        xor     %eax, %eax
        STEP    "step cpuid", cpuid     /* CPUID exit (fast path) */
        STEP    "step in", in $DBG, %al /* IOIO exit */
        mov     $1, %eax
        STEP    "step ping", vmmcall    /* VMMCALL exit (fast path) */

        /* --- 12. MONITOR, MWAIT, MONITORX, MWAITX: #UD ------------------- */
        lea     monitored(%rip), %rax   /* a valid address, should it arm */
        xor     %ecx, %ecx
        xor     %edx, %edx
        monitor                         /* 0F 01 C8 */
        xor     %eax, %eax
        mwait                           /* 0F 01 C9 */
        lea     monitored(%rip), %rax
        monitorx                        /* 0F 01 FA */
        xor     %eax, %eax
        mwaitx                          /* 0F 01 FB */
        cmpl    $5, ud_count(%rip)
        CHECK   je, "mwait ud"

        /* --- 13. CR4 agrees with CPUID ----------------------------------- */
        /* Only under Certivisor: plain QEMU's TCG spins on such a write. */
        cmpb    $1, certivisor(%rip)
        CHECK   je, "cr4 certivisor"
        cmpb    $1, certivisor(%rip)    /* again: a failed CHECK changes flags */
        jne     10f
        mov     %cr4, %rbx
        movl    $0, gp_count(%rip)
        mov     %rbx, %rax
        or      $(1 << 22), %rax        /* PKE: protection keys are never shown */
        mov     %rax, %cr4              /* CR4-write exit, #GP(0) */
        cmpl    $1, gp_count(%rip)
        CHECK   je, "cr4 pke"
        mov     %rbx, %rax
        or      $(1 << 18), %rax        /* OSXSAVE */
        mov     %rax, %cr4              /* CR4-write exit: #GP(0) iff XSAVE is hidden */
        testl   $(1 << 26), leaf1_ecx(%rip)
        jz      8f
        mov     %rbx, %cr4              /* XSAVE is shown: undo (one more exit) */
        cmpl    $1, gp_count(%rip)
        CHECK   je, "cr4 osxsave"
        jmp     9f
8:      cmpl    $2, gp_count(%rip)
        CHECK   je, "cr4 osxsave"
9:      mov     %cr4, %rax
        cmp     %rbx, %rax
        CHECK   je, "cr4 kept"
10:

        /* --- 14. CR8 is the TPR's class ----------------------------------- */
        cmpb    $1, certivisor(%rip)
        jne     11f
        mov     $5, %eax
        mov     %rax, %cr8              /* CR8-write exit */
        mov     %cr8, %rbx              /* V_TPR: no exit */
        cmp     $5, %rbx
        CHECK   je, "cr8 read"
        mov     $LAPIC_TPR, %esi
        mov     (%rsi), %eax            /* NPF exit: the local APIC */
        cmp     $0x50, %eax
        CHECK   je, "cr8 tpr"
        movl    $0x30, (%rsi)           /* NPF exit */
        mov     %cr8, %rbx
        cmp     $3, %rbx
        CHECK   je, "tpr cr8"
        movl    $0, gp_count(%rip)
        mov     $0x13, %eax             /* bit 4 is reserved */
        mov     %rax, %cr8              /* CR8-write exit, #GP(0) */
        cmpl    $1, gp_count(%rip)
        CHECK   je, "cr8 reserved"
        mov     %cr8, %rbx
        cmp     $3, %rbx
        CHECK   je, "cr8 kept"
        xor     %eax, %eax
        mov     %rax, %cr8              /* CR8-write exit */
11:

        /* --- done --------------------------------------------------------- */
.ifdef KEEP_GOING
        cmpb    $0, failed(%rip)
        je      6f
        mov     $s_end, %esi
        call    puts
        jmp     reset
6:
.endif
        mov     $s_pass, %esi           /* "PASS guest64\n" = 13 bytes */
        call    puts
        /* fall through */

/* Ask the platform to reset: the hypervisor stops the VM here. */
reset:
        mov     $RESETCTL, %edx
        mov     $0x06, %al
        out     %al, %dx                /* IOIO exit (the last one) */
7:      cli
        hlt
        jmp     7b

/* puts: print the NUL-terminated string at RSI, one OUT per byte. */
puts:
        lodsb
        test    %al, %al
        jz      1f
        out     %al, $DBG               /* IOIO exit per byte */
        jmp     puts
1:      ret

/* fail: print "FAIL guest64: <tag>\n" (tag address pushed by the caller),
 * then reset; with KEEP_GOING, return with all registers intact. */
fail:
        push    %rax
        push    %rsi
        mov     $s_fail, %esi
        call    puts
        mov     24(%rsp), %rsi          /* rsi, rax, return RIP, tag */
        call    puts
        mov     $'\n', %al
        out     %al, $DBG
.ifdef KEEP_GOING
        movb    $1, failed(%rip)
        pop     %rsi
        pop     %rax
        ret     $8
.else
        jmp     reset
.endif

/* Program the PICs (base 0x20/0x28, only IRQ0 unmasked) and PIT channel 0
 * (mode 2, divisor 1193 = 1 ms). 10 + 3 = 13 OUTs. */
pic_pit_init:
        PIC_PIT_INIT
        ret

/* idt_init: all 256 gates -> their stub (reports "vec NN"), then the
 * vectors this test uses: #DB, #BP, #UD, #GP, IRQ0. 64-bit interrupt gates, IST 0. */
idt_init:
        xor     %eax, %eax
        mov     $vec_stubs, %edx
1:      call    set_gate
        add     $16, %edx               /* stubs are 16 bytes apart */
        inc     %eax
        cmp     $256, %eax
        jb      1b
        mov     $3, %eax
        mov     $bp_handler, %edx
        call    set_gate
        mov     $6, %eax
        mov     $ud_handler, %edx
        call    set_gate
        mov     $13, %eax
        mov     $gp_handler, %edx
        call    set_gate
        mov     $0x20, %eax
        mov     $irq0_handler, %edx
        call    set_gate
        mov     $1, %eax
        mov     $db_handler, %edx
        call    set_gate
        ret

/* set_gate: IDT[EAX] = 64-bit interrupt gate (P, DPL 0, type 0xE) to
 * CODE64_SEL:EDX (the handlers all lie below 4 GiB). */
set_gate:
        push    %rdx
        mov     %eax, %edi
        shl     $4, %edi
        lea     idt(%rip), %r8
        add     %r8, %rdi
        mov     %dx, (%rdi)
        movw    $CODE64_SEL, 2(%rdi)
        movw    $0x8E00, 4(%rdi)
        shr     $16, %edx
        mov     %dx, 6(%rdi)
        movq    $0, 8(%rdi)             /* offset 63:32 = 0, reserved = 0 */
        pop     %rdx
        ret

/* IRQ0 (vector 0x20). Masks IRQ0 again before the EOI so that exactly one
 * timer interrupt is ever taken (deterministic exit counts): 2 OUTs. */
irq0_handler:
        push    %rax
        mov     $0xFF, %al
        out     %al, $0x21              /* mask everything on the master */
        mov     $0x20, %al
        out     %al, $0x20              /* non-specific EOI */
        incl    irq0_count(%rip)
        pop     %rax
        iretq

/* #BP (vector 3, a trap): record the return RIP, count. If the RIP points
 * at the int3 itself (a fault-style reflection, wrong), step over it anyway
 * so the guest cannot loop on INT3; the main check then reports "bp rip". */
bp_handler:
        pushq   (%rsp)
        popq    bp_rip(%rip)
        incl    bp_count(%rip)
        push    %rax
        lea     after_int3(%rip), %rax
        dec     %rax
        cmp     %rax, 8(%rsp)
        jne     1f
        incq    8(%rsp)
1:      pop     %rax
        iretq

/* #DB (vector 1, a trap here): record RIP and DR6, count, and clear TF in
 * the saved RFLAGS so that the IRETQ ends the single-step. */
db_handler:
        pushq   (%rsp)
        popq    db_rip(%rip)
        push    %rax
        mov     %dr6, %rax
        mov     %eax, db_dr6(%rip)
        pop     %rax
        incl    db_count(%rip)
        andq    $~0x100, 16(%rsp)
        iretq

/* #UD (vector 6): accept only an SVM instruction (0F 01 D8..DF) or
 * MONITOR, MWAIT, MONITORX, MWAITX (0F 01 C8, C9, FA, FB) at the faulting
 * RIP and step over its 3 bytes. Frame: RIP, CS, RFLAGS, RSP, SS. */
ud_handler:
        push    %rax
        push    %rbx
        mov     16(%rsp), %rbx          /* faulting RIP */
        cmpw    $0x010F, (%rbx)
        jne     1f
        mov     2(%rbx), %al
        cmp     $0xC8, %al
        je      2f
        cmp     $0xC9, %al
        je      2f
        cmp     $0xFA, %al
        je      2f
        cmp     $0xFB, %al
        je      2f
        and     $0xF8, %al
        cmp     $0xD8, %al
        jne     1f
2:      addq    $3, 16(%rsp)
        incl    ud_count(%rip)
        pop     %rbx
        pop     %rax
        iretq
1:      pop     %rbx
        pop     %rax
        push    $6
        jmp     unexpected

/* #GP (vector 13): accept only error code 0 and, at the faulting RIP,
 * MOV %rax,%cr4 (0F 22 E0) or MOV %rax,%cr8 (44 0F 22 C0); step over it
 * (3 or 4 bytes). Frame: error code, RIP, CS, RFLAGS, RSP, SS. */
gp_handler:
        cmpq    $0, (%rsp)
        jne     1f
        push    %rbx
        mov     16(%rsp), %rbx          /* faulting RIP */
        cmpl    $0xC0220F44, (%rbx)
        jne     3f
        addq    $4, 16(%rsp)
        jmp     4f
3:      cmpw    $0x220F, (%rbx)
        jne     2f
        cmpb    $0xE0, 2(%rbx)
        jne     2f
        addq    $3, 16(%rsp)
4:      incl    gp_count(%rip)
        pop     %rbx
        add     $8, %rsp                /* the error code */
        iretq
2:      pop     %rbx
1:      add     $8, %rsp
        push    $13
        jmp     unexpected

/* Any other vector: "FAIL guest64: vec NN" and reset. */
unexpected:
        mov     $s_fail, %esi
        call    puts
        mov     $s_vec, %esi
        call    puts
        pop     %rax                    /* vector number pushed by the stub */
        call    puthex8
        mov     $'\n', %al
        out     %al, $DBG
        jmp     reset

/* puthex8: print AL as two hex digits. */
puthex8:
        push    %rax
        shr     $4, %al
        call    1f
        pop     %rax
        and     $0x0F, %al
1:      cmp     $10, %al
        jb      2f
        add     $('a' - '0' - 10), %al
2:      add     $'0', %al
        out     %al, $DBG
        ret

/* contains: ZF=0 (EAX=1) if the NUL-terminated string at RDI occurs in the
 * NUL-terminated string at RSI, else ZF=1 (EAX=0). Keeps RSI, RDI. */
contains:
        push    %rsi
        push    %rcx
1:      xor     %ecx, %ecx
2:      mov     (%rdi,%rcx), %al
        test    %al, %al
        jz      4f                      /* whole needle matched */
        cmp     (%rsi,%rcx), %al
        jne     3f
        inc     %ecx
        jmp     2b
3:      cmpb    $0, (%rsi)
        je      5f                      /* end of haystack */
        inc     %rsi
        jmp     1b
4:      mov     $1, %eax
        jmp     6f
5:      xor     %eax, %eax
6:      pop     %rcx
        pop     %rsi
        test    %eax, %eax
        ret

        .include "debugregs.inc"
        .include "noninterference.inc"
        .include "hcfuzz.inc"
        .include "hostile.inc"

/* 256 stubs, 16 bytes apart: push the vector number, go to unexpected. */
        .balign 16
vec_stubs:
        .set    vec, 0
        .rept   256
        .balign 16
        push    $vec
        jmp     unexpected
        .set    vec, vec + 1
        .endr

        .section .rodata
s_start: .asciz "guest64: start\n"
s_lm:    .asciz "guest64: long mode\n"
s_pass:  .asciz "PASS guest64\n"
s_fail:  .asciz "FAIL guest64: "
s_vec:   .asciz "vec "
.ifdef KEEP_GOING
s_end:   .asciz "END guest64 (keep-going, some checks failed)\n"
.endif

        .balign 8
/* PING must leave every register alone: distinct 64-bit values for
 * RBX, RCX, RDX, RSI, RDI, RBP, R8..R15 (upper halves non-zero). */
sentinel:
        .quad   0xB0B0B0B00B0B0B0B, 0xC1C1C1C11C1C1C1C, 0xD2D2D2D22D2D2D2D
        .quad   0x5353535335353535, 0xD4D4D4D44D4D4D4D, 0xB5B5B5B55B5B5B5B
        .quad   0x0808080880808080, 0x0909090990909090, 0x1010101001010101
        .quad   0x1111111111111111, 0x1212121221212121, 0x1313131331313131
        .quad   0x1414141441414141, 0x1515151551515151

gdt:    .quad   0                       /* null */
        .quad   0x00CF9A000000FFFF      /* 0x08: code, 32-bit, base 0, 4 GiB */
        .quad   0x00CF92000000FFFF      /* 0x10: data, base 0, 4 GiB */
        .quad   0x00AF9A000000FFFF      /* 0x18: code, 64-bit (L=1, D=0) */
        .quad   0x00CFF2000000FFFF      /* 0x20: user data (DPL 3), hcfuzz */
        .quad   0x00AFFA000000FFFF      /* 0x28: user code, 64-bit (DPL 3), hcfuzz */
gdt_tss:.quad   0, 0                    /* 0x30: hcfuzz's TSS, filled at run time */
gdt_end:
        .balign 4
        .word   0
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt
        .word   0
idt_desc:                               /* 64-bit base: two halves */
        .word   256 * 16 - 1
        .long   idt, 0

        .data
/* Page tables (4-level, 2 MiB pages), all static. PTE bits: P=1, RW=2,
 * PWT=8, PCD=0x10, PS=0x80. ELF32 has no 64-bit relocations, so each
 * entry is written as two .long halves. */
        .balign 4096
pml4:   .long   pdpt + 0x3, 0           /* [0]: 0 .. 512 GiB */
        .fill   511, 8, 0
pdpt:   .long   pd0 + 0x3, 0            /* [0]: 0 .. 1 GiB */
        .fill   2, 8, 0
        .long   pd3 + 0x3, 0            /* [3]: 3 .. 4 GiB */
        .fill   508, 8, 0
pd0:                                    /* identity, 512 x 2 MiB = 1 GiB */
        .set    i, 0
        .rept   512
        .long   (i << 21) | 0x83, 0
        .set    i, i + 1
        .endr
pd3:                                    /* only 0xFEA0_0000 (index 501), */
        .fill   501, 8, 0               /* which holds 0xFEBF_F000, */
        .long   0xFEA00000 | 0x9B, 0    /* P|RW|PWT|PCD|PS: uncached */
        .fill   1, 8, 0
        .long   0xFEE00000 | 0x9B, 0    /* and 0xFEE0_0000 (503): the local APIC */
        .fill   8, 8, 0

mb_magic:   .long 0
mb_info:    .long 0
irq0_count: .long 0
bp_count:   .long 0
ud_count:   .long 0
db_count:   .long 0
db_dr6:     .long 0
gp_count:   .long 0
leaf1_ecx:  .long 0
certivisor: .byte 0
monitored:  .quad 0
        .balign 8
bp_rip:     .quad 0
db_rip:     .quad 0
failed:     .byte 0

        .bss
        .balign 16
idt:    .skip   256 * 16
stack:  .skip   8192
stack_top:

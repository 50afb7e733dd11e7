/*
 * guest32 - 32-bit protected-mode test guest for the Certivisor SVM core.
 *
 * A multiboot v1 ELF32 kernel linked at 1 MiB (multiboot.ld). Entered in
 * 32-bit protected mode, paging off, EAX = 0x2BADB002, EBX = multiboot info.
 * It loads its own GDT and IDT at once; paging stays off, so every address
 * below is a guest-physical address.
 *
 * Default mode, checks in order (the first failure prints
 * "FAIL guest32: <tag>" and ends):
 *    1. EAX held the multiboot magic at entry.                 tag mb magic
 *    2. CPUID 1: ECX bit 31 (hypervisor present).              tag hvbit
 *    3. CPUID 0x4000_0000: EAX = 0x4000_0001, "CertiVisorHV".   tags sig *
 *    4. CPUID 0x8000_0001: ECX bit 2 (SVM) clear.              tag svmbit
 *    5. EFER: read has no SVME; write old|NXE|SCE (each only if
 *       CPUID says it exists) and read the same value back.    tags efer *
 *    6. SYSENTER_CS (passed through): write 8, read 8.         tag sysenter_cs
 *    7. RDMSR and WRMSR of 0xC001_DEAD each raise #GP(0); our
 *       #GP handler steps over the 2-byte instruction.         tags gp *
 *    8. IN 0xE9 = 0xE9; IN 0x5555 byte/word/dword = all ones.  tags in *
 *    9. VMMCALL PING = 0 with EBX..EBP unchanged; VERSION = 1;
 *       unknown call 0x7FFF = -38 (0xFFFF_FFDA).               tags ping*, version, enosys
 *   10. PIC+PIT programmed, STI;HLT woken by IRQ0 (vector 0x20). tag irq0
 *   11. MMIO device at 0xFEBF_F000: MAGIC, VERSION, SCRATCH
 *       write/read, COUNTER read twice (+1).                   tags mmio *
 *   12. INT3 runs our #BP handler once, with EIP after the int3. tags bp *
 *   13. VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA:
 *       7 x #UD, each stepped over by our #UD handler.         tag svm ud
 *   14. Single-step (EFLAGS.TF) over instructions the hypervisor
 *       completes for the guest: CPUID, IN 0xE9, VMMCALL PING.
 *       Each raises exactly one #DB, with EIP after it and
 *       DR6.BS set.                                            tags step *
 * then "PASS guest32" and a reset request (0x06 -> port 0xCF9).
 *
 * Other modes, chosen by the multiboot command line (after "guest32: start"):
 *   mode=npf     read GPA 0xC000_0000: the hypervisor must stop the VM.
 *                If the read returns: "FAIL guest32: npf not stopped".
 *   mode=triple  load an IDT with limit 0 and execute INT3: triple fault.
 *                If execution continues: "FAIL guest32: triple not stopped".
 *   mode=spin    print "guest32: spinning", then CLI; JMP . forever.
 *   mode=ticks   PIT at 1 ms, then 100,000 CPUIDs with interrupts off (the
 *                hypervisor answers them without leaving its fast path),
 *                then STI and a spin loop that makes no exit of its own,
 *                until the IRQ0 handler has counted 20 ticks: "PASS
 *                guest32 ticks". A hypervisor that lets the host timer
 *                lapse in the fast path leaves the loop without ticks:
 *                after 400 M iterations "FAIL guest32: no ticks".
 *   mode=work    a fixed amount of work with no exit of its own (50 M
 *                iterations of DEC; JNZ, 100 M instructions), then "PASS
 *                guest32 work tsc=<16 hex digits>", the TSC cycles the work
 *                took (RDTSC is not intercepted). work=long: 10 times as
 *                much.
 *   mode=lapic   the local APIC of the one vCPU (lapic.inc, which lists
 *                the checks): the timer in one-shot, periodic, TSC-deadline
 *                and masked modes; ISR/IRR order, nesting and EOI; TPR and
 *                PPR; NMI, lowest-priority and fixed IPIs; software disable
 *                in the SVR. "PASS guest32 lapic".
 *   mode=flood-<kind>  exits of one kind as fast as it can, in rounds
 *                (below), until VM 1 has come and gone (a CHAN_RECV from
 *                VM 1 after each round says -EAGAIN while it runs, -EINVAL
 *                before and after), then "PASS guest32 flood". If VM 1 has
 *                not come after 10,000 rounds: "FAIL guest32: no vm 1".
 *                The kinds and their rounds:
 *                cpuid (1000 CPUIDs), ping (1000 VMMCALL PINGs), io (1000
 *                INs from port 0x5555), mmio (1000 reads of the MMIO
 *                device's COUNTER), magic (1000 reads of its MAGIC, which
 *                the VMM declares constant and the kernel answers), msr (1000 RDMSRs of 0xC001_DEAD, each
 *                a #GP the handler steps over), console (10 CONSOLE_WRITEs
 *                of 4096 bytes, 32 lines of 127 characters each).
 *
 * Exit accounting (see README.md): every IN/OUT is one IOIO exit; prints
 * are one OUT per byte (puts), never a string instruction.
 *
 * Build option: --defsym KEEP_GOING=1 (build --keep-going) makes a failed
 * check print its FAIL line and carry on, for smoke runs on plain QEMU.
 */
        .include "pic_pit.inc"

        .code32

        .set DBG,      0xE9            /* debug console port */
        .set UNUSED,   0x5555          /* unassigned port: reads all ones */
        .set RESETCTL, 0xCF9           /* reset control register */
        .set MMIO,     0xFEBFF000      /* the hypervisor's MMIO test device */
        .set NOWHERE,  0xC0000000      /* unmapped GPA (fatal NPF) */
        .set EFER,     0xC0000080
        .set SYSENTER_CS, 0x174
        .set BADMSR,   0xC001DEAD
        .set FLOOD_WAIT_ROUNDS, 10000   /* mode=flood-*: rounds to wait for VM 1 */
        .include "flat32.inc"

/* Multiboot v1 header: magic, flags 0, checksum. ELF32, so no a.out kludge. */
        .section .multiboot, "a"
        .balign 4
        .long   0x1BADB002
        .long   0
        .long   -0x1BADB002

/*
 * CHECK jcc, "tag": continue if the condition \ok holds, else report
 * "FAIL guest32: tag". The tag's address is passed on the stack so that a
 * KEEP_GOING fail keeps every register.
 */
.macro CHECK ok, tag
        \ok     .Lok\@
        push    $.Lmsg\@
        call    fail
        .pushsection .rodata
.Lmsg\@: .asciz "\tag"
        .popsection
.Lok\@:
.endm

/*
 * STEP "tag", insn: run one instruction with EFLAGS.TF set (by POPF, so the
 * trap comes after the instruction that follows it) and check that exactly
 * one #DB arrived, with the EIP right after the instruction and DR6.BS set.
 */
.macro STEP tag, insn:vararg
        movl    $0, db_count
        pushf
        orl     $0x100, (%esp)
        popf
        \insn
.Lafter\@:
        cmpl    $1, db_count
        CHECK   je, "\tag count"
        cmpl    $.Lafter\@, db_eip
        CHECK   je, "\tag eip"
        testl   $0x4000, db_dr6
        CHECK   jnz, "\tag dr6.bs"
.endm

        .text
        .globl  _start
_start:
        cli
        cld
        mov     $stack_top, %esp
        mov     %eax, mb_magic
        mov     %ebx, mb_info

        FLAT32_LOAD

        call    idt_init
        lidt    idt_desc

        mov     $s_start, %esi          /* "guest32: start\n" = 15 bytes */
        call    puts

        /* --- 1. multiboot magic; then pick the mode from the cmdline ---- */
        cmpl    $0x2BADB002, mb_magic
        CHECK   je, "mb magic"

        mov     mb_info, %ebx
        testl   $4, (%ebx)              /* flags bit 2: cmdline present */
        jz      default_mode
        mov     16(%ebx), %esi          /* cmdline (physical address) */
        mov     $k_npf, %edi
        call    contains
        jnz     mode_npf
        mov     $k_triple, %edi
        call    contains
        jnz     mode_triple
        mov     $k_spin, %edi
        call    contains
        jnz     mode_spin
        mov     $k_mbinfo, %edi
        call    contains
        jnz     mode_mbinfo
        mov     $k_debugexit, %edi
        call    contains
        jnz     mode_debugexit
        mov     $k_ticks, %edi
        call    contains
        jnz     mode_ticks
        mov     $k_work, %edi
        call    contains
        jnz     mode_work
        mov     $k_lapic, %edi
        call    contains
        jnz     mode_lapic
        mov     $flood_kinds, %ebx      /* {keyword, round body, exits} */
1:      mov     (%ebx), %edi
        test    %edi, %edi
        jz      default_mode
        call    contains
        jnz     mode_flood
        add     $12, %ebx
        jmp     1b

/* mode=work: see the header. */
mode_work:
        mov     $50000000, %ebx
        mov     $k_long, %edi
        call    contains
        jz      1f
        mov     $500000000, %ebx
1:      rdtsc                           /* not intercepted: no exit */
        mov     %eax, work_tsc
        mov     %edx, work_tsc + 4
        mov     %ebx, %ecx
2:      dec     %ecx                    /* no exit in this loop */
        jnz     2b
        rdtsc
        sub     work_tsc, %eax
        sbb     work_tsc + 4, %edx
        mov     %eax, %ebx
        mov     $s_pass_work, %esi
        call    puts
        mov     %edx, %eax
        call    puthex32
        mov     %ebx, %eax
        call    puthex32
        mov     $'\n', %al
        out     %al, $DBG
        jmp     reset

/* mode=flood-<kind>: EBX points at the kind's {keyword, body, exits}. */
mode_flood:
        mov     $s_flood, %esi
        call    puts
        mov     (%ebx), %esi
        call    puts
        mov     $'\n', %al
        out     %al, $DBG
        call    fill_console_page
        movl    $0, flood_rounds
        movb    $0, flood_saw_vm1
2:      mov     8(%ebx), %edi           /* exits per round */
        call    *4(%ebx)
        incl    flood_rounds
        mov     $8, %eax                /* CHAN_RECV(VM 1, buf, 256) */
        push    %ebx
        mov     $1, %ebx
        mov     $chan_buf, %ecx
        mov     $256, %edx
        vmmcall
        pop     %ebx
        cmp     $-11, %eax              /* -EAGAIN: VM 1 runs, no message */
        jne     3f
        movb    $1, flood_saw_vm1
        jmp     2b
3:      cmpb    $0, flood_saw_vm1       /* -EINVAL: VM 1 is gone ... */
        jne     4f
        cmpl    $FLOOD_WAIT_ROUNDS, flood_rounds
        jb      2b                      /* ... or not there yet */
        push    $t_no_vm1
        call    fail
        jmp     reset
4:      mov     $s_pass_flood, %esi
        call    puts
        jmp     reset

/* The flood rounds: EDI exits each; keep EBX. */
flood_cpuid:
        push    %ebx
1:      xor     %eax, %eax
        cpuid                           /* fast-path CPUID exit */
        dec     %edi
        jnz     1b
        pop     %ebx
        ret
flood_ping:
        mov     $1, %eax
        vmmcall                         /* fast-path PING exit */
        dec     %edi
        jnz     flood_ping
        ret
flood_io:
        mov     $UNUSED, %edx
1:      in      %dx, %al                /* IOIO exit */
        dec     %edi
        jnz     1b
        ret
flood_mmio:
        mov     $MMIO, %esi
1:      mov     0x10(%esi), %eax        /* NPF exit, emulated */
        dec     %edi
        jnz     1b
        ret
flood_magic:
        mov     $MMIO, %esi
1:      mov     (%esi), %eax            /* NPF exit, answered by the kernel */
        dec     %edi
        jnz     1b
        ret
flood_msr:
        mov     $BADMSR, %ecx
        rdmsr                           /* MSR exit, refused: #GP */
        dec     %edi
        jnz     flood_msr
        ret
flood_console:
        push    %ebx
1:      mov     $6, %eax                /* CONSOLE_WRITE(page, 4096) */
        mov     $console_page, %ebx
        mov     $4096, %ecx
        vmmcall                         /* VMMCALL exit */
        dec     %edi
        jnz     1b
        pop     %ebx
        ret

/* The console flood's text: 32 lines of 127 characters and a newline. */
fill_console_page:
        mov     $console_page, %edi
        xor     %ecx, %ecx
1:      mov     %cl, %al
        and     $0x7F, %al
        cmp     $0x7F, %al
        jne     2f
        mov     $'\n', %al
        jmp     3f
2:      and     $0x1F, %al
        add     $'A', %al
3:      mov     %al, (%edi,%ecx)
        inc     %ecx
        cmp     $4096, %ecx
        jb      1b
        ret

/* mode=ticks: see the header. */
mode_ticks:
        mov     $0x20, %eax
        mov     $tick_handler, %edx
        call    set_gate
        call    pic_pit_init
        mov     $100000, %esi
1:      xor     %eax, %eax
        cpuid                           /* fast-path CPUID exit */
        dec     %esi
        jnz     1b
        mov     $400000000, %ecx
        sti
2:      cmpl    $20, tick_count         /* no exit in this loop */
        jae     3f
        loop    2b
        cli
        push    $t_noticks
        call    fail
        jmp     reset
3:      cli
        mov     $s_pass_ticks, %esi
        call    puts
        jmp     reset

/* mode=mbinfo: print what the loader passed: the command line, the number
 * of modules, and the first module's string and first bytes. */
mode_mbinfo:
        mov     %esi, %edx              /* the cmdline */
        mov     $s_cmdline, %esi
        call    puts
        mov     %edx, %esi
        call    puts
        mov     $'\n', %al
        out     %al, $DBG
        testl   $8, (%ebx)              /* flags bit 3: modules present */
        jz      1f
        mov     $s_modules, %esi
        call    puts
        mov     20(%ebx), %eax          /* mods_count (< 10 here) */
        add     $'0', %al
        out     %al, $DBG
        mov     $'\n', %al
        out     %al, $DBG
        cmpl    $0, 20(%ebx)
        je      1f
        mov     24(%ebx), %edx          /* mods_addr: first module entry */
        mov     $s_mod0, %esi
        call    puts
        mov     8(%edx), %esi           /* its string */
        call    puts
        mov     $s_mod0data, %esi
        call    puts
        mov     0(%edx), %esi           /* mod_start */
        mov     4(%edx), %ecx           /* mod_end */
        sub     %esi, %ecx
        cmp     $16, %ecx
        jbe     2f
        mov     $16, %ecx
2:      jecxz   3f
        lodsb
        out     %al, $DBG
        loop    2b
3:      mov     $'\n', %al
        out     %al, $DBG
1:      mov     $s_pass, %esi
        call    puts
        jmp     reset

/* mode=debugexit: write 0x21 to QEMU's debug-exit port 0xF4. When the
 * hypervisor passes the port through, QEMU exits with (0x21 << 1) | 1 = 67
 * and this never returns. */
mode_debugexit:
        mov     $0x21, %eax
        out     %eax, $0xF4
        push    $t_debugexit
        call    fail
        jmp     reset

/* mode=npf: touch unmapped guest-physical memory; the VM must not return. */
mode_npf:
        mov     NOWHERE, %eax           /* NPF exit, fatal */
        push    $t_npf
        call    fail
        jmp     reset

/* mode=triple: IDT limit 0, then INT3 -> #BP cannot be delivered ->
 * #GP cannot be delivered -> #DF cannot be delivered -> shutdown. */
mode_triple:
        lidt    idt_null_desc
        int3
        push    $t_triple
        call    fail
        jmp     reset

/* mode=spin: never exit voluntarily again; interrupts off. */
mode_spin:
        mov     $s_spin, %esi           /* "guest32: spinning\n" = 18 bytes */
        call    puts
        cli
        jmp     .

default_mode:
        /* --- 2. CPUID leaf 1: hypervisor-present bit (ECX[31]) ---------- */
        mov     $1, %eax
        cpuid                           /* CPUID exit #1 */
        test    $0x80000000, %ecx
        CHECK   jnz, "hvbit"

        /* --- 3. CPUID 0x4000_0000: max leaf and "CertiVisorHV" ---------- */
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

        /* --- 4. CPUID 0x8000_0001: SVM (ECX[2]) hidden ------------------ */
        mov     $0x80000001, %eax
        cpuid                           /* CPUID exit #3 */
        mov     %edx, ext_edx           /* NX = EDX[20], SYSCALL = EDX[11] */
        test    $4, %ecx
        CHECK   jz, "svmbit"

        /* --- 5. EFER: emulated; SVME never visible ---------------------- */
        mov     $EFER, %ecx
        rdmsr                           /* MSR exit #1 */
        test    $0x1000, %eax
        CHECK   jz, "efer svme"
        mov     %edx, efer_hi
        xor     %ebx, %ebx              /* bits to add */
        testl   $(1 << 20), ext_edx
        jz      1f
        or      $0x800, %ebx            /* EFER.NXE */
1:      testl   $(1 << 11), ext_edx
        jz      2f
        or      $0x001, %ebx            /* EFER.SCE */
2:      or      %ebx, %eax
        mov     %eax, efer_new
        mov     $EFER, %ecx
        wrmsr                           /* MSR exit #2 */
        xor     %eax, %eax
        xor     %edx, %edx
        mov     $EFER, %ecx
        rdmsr                           /* MSR exit #3 */
        cmp     efer_new, %eax
        CHECK   je, "efer readback"
        cmp     efer_hi, %edx
        CHECK   je, "efer readback hi"

        /* --- 6. SYSENTER_CS: passed through, no exit --------------------- */
        mov     $SYSENTER_CS, %ecx
        mov     $CODE_SEL, %eax
        xor     %edx, %edx
        wrmsr                           /* no exit */
        mov     $0xFFFFFFFF, %eax
        mov     %eax, %edx
        mov     $SYSENTER_CS, %ecx
        rdmsr                           /* no exit */
        cmp     $CODE_SEL, %eax
        CHECK   je, "sysenter_cs"
        test    %edx, %edx
        CHECK   jz, "sysenter_cs hi"

        /* --- 7. unknown MSR: #GP(0) on RDMSR and on WRMSR ---------------- */
        movl    $0, gp_count
        movl    $0, gp_errors
        mov     $BADMSR, %ecx
        rdmsr                           /* MSR exit #4 -> #GP injected */
        cmpl    $1, gp_count
        CHECK   je, "gp rdmsr"
        xor     %eax, %eax
        xor     %edx, %edx
        mov     $BADMSR, %ecx
        wrmsr                           /* MSR exit #5 -> #GP injected */
        cmpl    $2, gp_count
        CHECK   je, "gp wrmsr"
        cmpl    $0, gp_errors
        CHECK   je, "gp errcode"

        /* --- 8. port I/O ------------------------------------------------ */
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

        /* --- 9. hypercalls ----------------------------------------------- */
        mov     $1, %eax                /* PING: returns 0, touches nothing */
        mov     $0xB0B0B0B0, %ebx
        mov     $0xC0C0C0C0, %ecx
        mov     $0xD0D0D0D0, %edx
        mov     $0x51515151, %esi
        mov     $0xD1D1D1D1, %edi
        mov     $0xB9B9B9B9, %ebp
        vmmcall                         /* VMMCALL exit #1 */
        test    %eax, %eax
        CHECK   jz, "ping"
        cmp     $0xB0B0B0B0, %ebx
        CHECK   je, "ping ebx"
        cmp     $0xC0C0C0C0, %ecx
        CHECK   je, "ping ecx"
        cmp     $0xD0D0D0D0, %edx
        CHECK   je, "ping edx"
        cmp     $0x51515151, %esi
        CHECK   je, "ping esi"
        cmp     $0xD1D1D1D1, %edi
        CHECK   je, "ping edi"
        cmp     $0xB9B9B9B9, %ebp
        CHECK   je, "ping ebp"
        mov     $0, %eax                /* VERSION */
        vmmcall                         /* VMMCALL exit #2 */
        cmp     $2, %eax                /* ABI version 2 */
        CHECK   je, "version"
        mov     $0x7FFF, %eax           /* unknown call number */
        vmmcall                         /* VMMCALL exit #3 */
        cmp     $0xFFFFFFDA, %eax       /* -38 = -ENOSYS */
        CHECK   je, "enosys"

        /* --- 10. HLT woken by IRQ0 --------------------------------------- */
        call    pic_pit_init            /* 13 IOIO exits */
        mov     $1000, %ecx             /* bounded: at most 1000 HLTs */
3:      sti                             /* STI shadow covers the HLT */
        hlt                             /* HLT exit */
        cli
        cmpl    $0, irq0_count
        jne     4f
        loop    3b
4:      cmpl    $1, irq0_count          /* the handler masks IRQ0: exactly 1 */
        CHECK   je, "irq0"

        /* --- 11. MMIO test device: one NPF exit per access --------------- */
        mov     $MMIO, %ebx
        mov     (%ebx), %eax            /* NPF #1: MAGIC */
        cmp     $0x43455254, %eax
        CHECK   je, "mmio magic"
        mov     4(%ebx), %edx           /* NPF #2: VERSION */
        cmp     $1, %edx
        CHECK   je, "mmio version"
        movl    $0xA5A55A5A, 8(%ebx)    /* NPF #3: SCRATCH write (C7 /0 imm32) */
        mov     8(%ebx), %ecx           /* NPF #4: SCRATCH read */
        cmp     $0xA5A55A5A, %ecx
        CHECK   je, "mmio scratch"
        mov     0x10(%ebx), %esi        /* NPF #5: COUNTER */
        mov     0x10(%ebx), %edi        /* NPF #6: COUNTER again */
        inc     %esi
        cmp     %esi, %edi
        CHECK   je, "mmio counter"

        /* --- 12. INT3: intercepted and reflected as #BP ------------------ */
        movl    $0, bp_count
        int3                            /* #BP exit */
after_int3:
        cmpl    $1, bp_count
        CHECK   je, "bp count"
        cmpl    $after_int3, bp_eip     /* trap: EIP is after the int3 */
        CHECK   je, "bp eip"

        /* --- 13. the 7 SVM instructions: each #UD ------------------------ */
        movl    $0, ud_count
        xor     %eax, %eax
        xor     %ecx, %ecx
        vmrun                           /* 0F 01 D8 */
        vmload                          /* 0F 01 DA */
        vmsave                          /* 0F 01 DB */
        stgi                            /* 0F 01 DC */
        clgi                            /* 0F 01 DD */
        skinit                          /* 0F 01 DE */
        invlpga                         /* 0F 01 DF */
        cmpl    $7, ud_count
        CHECK   je, "svm ud"

        /* --- 14. single-step over completed instructions ----------------- */
        xor     %eax, %eax
        STEP    "step cpuid", cpuid     /* CPUID exit (fast path) */
        STEP    "step in", in $DBG, %al /* IOIO exit */
        mov     $1, %eax
        STEP    "step ping", vmmcall    /* VMMCALL exit (fast path) */

        /* --- done --------------------------------------------------------- */
.ifdef KEEP_GOING
        cmpb    $0, failed
        je      5f
        mov     $s_end, %esi
        call    puts
        jmp     reset
5:
.endif
        mov     $s_pass, %esi           /* "PASS guest32\n" = 13 bytes */
        call    puts
        /* fall through */

/* Ask the platform to reset: the hypervisor stops the VM here. */
reset:
        mov     $RESETCTL, %edx
        mov     $0x06, %al
        out     %al, %dx                /* IOIO exit (the last one) */
6:      cli
        hlt
        jmp     6b

/* puts: print the NUL-terminated string at ESI, one OUT per byte. */
puts:
        lodsb
        test    %al, %al
        jz      1f
        out     %al, $DBG               /* IOIO exit per byte */
        jmp     puts
1:      ret

/* fail: print "FAIL guest32: <tag>\n" (tag address pushed by the caller),
 * then reset; with KEEP_GOING, return with all registers intact. */
fail:
        pusha                           /* 8 dwords; then return EIP, tag */
        mov     $s_fail, %esi
        call    puts
        mov     36(%esp), %esi
        call    puts
        mov     $'\n', %al
        out     %al, $DBG
.ifdef KEEP_GOING
        movb    $1, failed
        popa
        ret     $4
.else
        jmp     reset
.endif

        .include "contains.inc"

/* Program the PICs (base 0x20/0x28, only IRQ0 unmasked) and PIT channel 0
 * (mode 2, divisor 1193 = 1 ms). 10 + 3 = 13 OUTs. */
pic_pit_init:
        PIC_PIT_INIT
        ret

/* idt_init: all 256 gates -> their stub (reports "vec NN"), then the five
 * vectors this test uses: #DB, #BP, #UD, #GP, IRQ0. 32-bit interrupt gates. */
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

/* set_gate: IDT[EAX] = interrupt gate (P, DPL 0, type 0xE) to CS:EDX. */
set_gate:
        push    %edx
        lea     idt(,%eax,8), %edi
        mov     %dx, (%edi)
        movw    $CODE_SEL, 2(%edi)
        movw    $0x8E00, 4(%edi)
        shr     $16, %edx
        mov     %dx, 6(%edi)
        pop     %edx
        ret

/* IRQ0 (vector 0x20). Masks IRQ0 again before the EOI so that exactly one
 * timer interrupt is ever taken (deterministic exit counts): 2 OUTs. */
irq0_handler:
        push    %eax
        mov     $0xFF, %al
        out     %al, $0x21              /* mask everything on the master */
        mov     $0x20, %al
        out     %al, $0x20              /* non-specific EOI */
        incl    irq0_count
        pop     %eax
        iret

/* IRQ0 for mode=ticks: count and EOI, IRQ0 stays open. */
tick_handler:
        push    %eax
        mov     $0x20, %al
        out     %al, $0x20              /* non-specific EOI */
        incl    tick_count
        pop     %eax
        iret

/* #BP (vector 3, a trap): record the return EIP, count. If the EIP points
 * at the int3 itself (a fault-style reflection, wrong), step over it anyway
 * so the guest cannot loop on INT3; the main check then reports "bp eip". */
bp_handler:
        pushl   (%esp)
        popl    bp_eip
        incl    bp_count
        cmpl    $(after_int3 - 1), (%esp)
        jne     1f
        movl    $after_int3, (%esp)
1:      iret

/* #DB (vector 1, a trap here): record EIP and DR6, count, and clear TF in
 * the saved EFLAGS so that the IRET ends the single-step. */
db_handler:
        pushl   (%esp)
        popl    db_eip
        push    %eax
        mov     %dr6, %eax
        mov     %eax, db_dr6
        pop     %eax
        incl    db_count
        andl    $~0x100, 8(%esp)
        iret

/* #UD (vector 6): accept only an SVM instruction (0F 01 D8..DF) at the
 * faulting EIP and step over its 3 bytes. Frame: EIP, CS, EFLAGS. */
ud_handler:
        push    %eax
        push    %ebx
        mov     8(%esp), %ebx           /* faulting EIP */
        cmpw    $0x010F, (%ebx)
        jne     1f
        mov     2(%ebx), %al
        and     $0xF8, %al
        cmp     $0xD8, %al
        jne     1f
        addl    $3, 8(%esp)
        incl    ud_count
        pop     %ebx
        pop     %eax
        iret
1:      pop     %ebx
        pop     %eax
        push    $6
        jmp     unexpected

/* #GP (vector 13): accept only RDMSR (0F 32) or WRMSR (0F 30) at the
 * faulting EIP; OR the error code into gp_errors and skip 2 bytes.
 * Frame: error code, EIP, CS, EFLAGS. */
gp_handler:
        push    %eax
        push    %ebx
        mov     12(%esp), %ebx          /* faulting EIP */
        mov     (%ebx), %ax
        cmp     $0x320F, %ax            /* rdmsr */
        je      1f
        cmp     $0x300F, %ax            /* wrmsr */
        jne     2f
1:      mov     8(%esp), %eax           /* error code */
        or      %eax, gp_errors
        addl    $2, 12(%esp)
        incl    gp_count
        pop     %ebx
        pop     %eax
        add     $4, %esp                /* drop the error code */
        iret
2:      pop     %ebx
        pop     %eax
        push    $13
        jmp     unexpected

/* Any other vector: "FAIL guest32: vec NN" and reset. */
unexpected:
        mov     $s_fail, %esi
        call    puts
        mov     $s_vec, %esi
        call    puts
        pop     %eax                    /* vector number pushed by the stub */
        call    puthex8
        mov     $'\n', %al
        out     %al, $DBG
        jmp     reset

/* puthex8: print AL as two hex digits. */
puthex8:
        push    %eax
        shr     $4, %al
        call    1f
        pop     %eax
        and     $0x0F, %al
1:      cmp     $10, %al
        jb      2f
        add     $('a' - '0' - 10), %al
2:      add     $'0', %al
        out     %al, $DBG
        ret

/* puthex32: print EAX as eight hex digits. */
puthex32:
        push    %ecx
        mov     $4, %ecx
1:      rol     $8, %eax
        push    %eax
        call    puthex8                 /* changes AL */
        pop     %eax
        loop    1b
        pop     %ecx
        ret

        .include "lapic.inc"

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
s_start: .asciz "guest32: start\n"
s_spin:  .asciz "guest32: spinning\n"
s_pass:  .asciz "PASS guest32\n"
s_fail:  .asciz "FAIL guest32: "
s_vec:   .asciz "vec "
t_npf:   .asciz "npf not stopped"
t_triple: .asciz "triple not stopped"
k_npf:   .asciz "mode=npf"
k_triple: .asciz "mode=triple"
k_spin:  .asciz "mode=spin"
k_mbinfo: .asciz "mode=mbinfo"
k_debugexit: .asciz "mode=debugexit"
k_ticks: .asciz "mode=ticks"
s_pass_ticks: .asciz "PASS guest32 ticks\n"
k_work:  .asciz "mode=work"
k_long:  .asciz "work=long"
s_pass_work: .asciz "PASS guest32 work tsc="
s_flood: .asciz "guest32: "
s_pass_flood: .asciz "PASS guest32 flood\n"
k_flood_cpuid: .asciz "mode=flood-cpuid"
k_flood_ping: .asciz "mode=flood-ping"
k_flood_io: .asciz "mode=flood-io"
k_flood_mmio: .asciz "mode=flood-mmio"
k_flood_magic: .asciz "mode=flood-magic"
k_flood_msr: .asciz "mode=flood-msr"
k_flood_console: .asciz "mode=flood-console"
        .balign 4
flood_kinds:                            /* keyword, round body, exits per round */
        .long   k_flood_cpuid, flood_cpuid, 1000
        .long   k_flood_ping, flood_ping, 1000
        .long   k_flood_io, flood_io, 1000
        .long   k_flood_mmio, flood_mmio, 1000
        .long   k_flood_magic, flood_magic, 1000
        .long   k_flood_msr, flood_msr, 1000
        .long   k_flood_console, flood_console, 10
        .long   0
t_noticks: .asciz "no ticks"
t_no_vm1: .asciz "no vm 1"
s_cmdline: .asciz "cmdline: "
s_modules: .asciz "modules: "
s_mod0:  .asciz "module0: "
s_mod0data: .asciz "\nmodule0 data: "
t_debugexit: .asciz "debug-exit port not passed through"
.ifdef KEEP_GOING
s_end:   .asciz "END guest32 (keep-going, some checks failed)\n"
.endif

        FLAT32_TABLES
        .word   0
idt_null_desc:                          /* mode=triple: limit 0 */
        .word   0
        .long   0

        .data
mb_magic:   .long 0
mb_info:    .long 0
ext_edx:    .long 0
efer_hi:    .long 0
efer_new:   .long 0
gp_count:   .long 0
gp_errors:  .long 0
irq0_count: .long 0
tick_count: .long 0
bp_count:   .long 0
bp_eip:     .long 0
ud_count:   .long 0
db_count:   .long 0
db_eip:     .long 0
db_dr6:     .long 0
flood_rounds: .long 0
flood_saw_vm1: .byte 0
        .balign 8
work_tsc:   .quad 0
failed:     .byte 0

        .bss
        .balign 8
idt:    .skip   256 * 8
        .balign 4096
console_page: .skip 4096
chan_buf: .skip 256
        .balign 16
stack:  .skip   8192
stack_top:

/*
 * guest16 - real-mode test guest for the Certivisor SVM core.
 *
 * Loaded as a flat binary at GPA 0x7C00 and entered in real mode at
 * 0000:7C00 (like a boot sector, but there is no BIOS: the IVT is ours).
 * All segment registers are 0, so every address below is a linear address.
 *
 * Checks, in order (the first failure prints "FAIL guest16: <tag>" and ends):
 *   1. CPUID 1: ECX bit 31 (hypervisor present) is set.           tag hvbit
 *   2. CPUID 0x4000_0000: EAX = 0x4000_0001, "CertiVisorHV".       tag sig
 *   3. CPUID 0x8000_0001: ECX bit 2 (SVM) is clear.                tag svmbit
 *   4. IN 0xE9 reads 0xE9; IN 0x5555 (unassigned) reads 0xFF.      tags in e9, in 5555
 *   5. VMMCALL PING (AX=0) and VERSION (AX=1).                     tags ping, version
 *   6. INT 0x40 reaches our IVT handler (software int, no exit).   tag int40
 *   7. PIC+PIT programmed, STI;HLT is woken by IRQ0 (vector 0x20). tag irq0
 *   8. CLGI raises #UD, our IVT[6] handler skips it.               tag clgi ud
 * then "PASS guest16" and a reset request (0x06 -> port 0xCF9).
 *
 * Exit accounting (see README.md): every OUT/IN is one IOIO exit; prints
 * are one OUT per byte (puts below), never a string instruction.
 *
 * Build option: --defsym KEEP_GOING=1 (build --keep-going) makes a failed
 * check print its FAIL line and carry on, for smoke runs on plain QEMU.
 */
        .include "pic_pit.inc"

        .code16
        .text

        .set DBG,      0xE9            /* debug console port */
        .set UNUSED,   0x5555          /* unassigned port: reads all ones */
        .set RESETCTL, 0xCF9           /* reset control register */

/*
 * CHECK jcc, "tag": continue if the condition \ok holds, else report
 * "FAIL guest16: tag". The tag string lives in subsection 1 of .text; its
 * address is passed on the stack so that a KEEP_GOING fail keeps every
 * register.
 */
.macro CHECK ok, tag
        \ok     .Lok\@
        push    $.Lmsg\@
        call    fail
        .pushsection .text, 1
.Lmsg\@: .asciz "\tag"
        .popsection
.Lok\@:
.endm

        .globl  _start
_start:                                 /* 0000:7C00 */
        cli
        cld
        xor     %ax, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $0x7C00, %sp            /* stack grows down below the image */

        /* IVT: every vector -> its stub in vec_stubs (reports "vec NN"). */
        xor     %di, %di
        mov     $vec_stubs, %ax
        mov     $256, %cx
1:      mov     %ax, (%di)              /* offset */
        movw    $0, 2(%di)              /* segment 0 */
        add     $4, %di
        add     $8, %ax                 /* stubs are 8 bytes apart */
        loop    1b
        /* ... and the vectors this test uses. */
        movw    $ud_handler,    6*4
        movw    $irq0_handler,  0x20*4
        movw    $int40_handler, 0x40*4

        mov     $s_start, %si           /* "guest16: start\n" = 15 bytes */
        call    puts

        /* --- 1. CPUID leaf 1: hypervisor-present bit (ECX[31]) ---------- */
        mov     $1, %eax
        cpuid                           /* CPUID exit #1 */
        test    $0x80000000, %ecx
        CHECK   jnz, "hvbit"

        /* --- 2. CPUID 0x4000_0000: max leaf and "CertiVisorHV" ---------- */
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

        /* --- 3. CPUID 0x8000_0001: SVM (ECX[2]) hidden from the guest --- */
        mov     $0x80000001, %eax
        cpuid                           /* CPUID exit #3 */
        test    $4, %ecx
        CHECK   jz, "svmbit"

        /* --- 4. port I/O: debug port readback and an unassigned port --- */
        xor     %ax, %ax
        in      $DBG, %al               /* IOIO exit */
        cmp     $0xE9, %al
        CHECK   je, "in e9"
        xor     %ax, %ax
        mov     $UNUSED, %dx
        in      %dx, %al                /* IOIO exit */
        cmp     $0xFF, %al
        CHECK   je, "in 5555"

        /* --- 5. hypercalls (16-bit operand size: result in AX) ---------- */
        mov     $1, %eax                /* PING */
        vmmcall                         /* VMMCALL exit #1 */
        test    %ax, %ax
        CHECK   jz, "ping"
        mov     $0, %eax                /* VERSION */
        vmmcall                         /* VMMCALL exit #2 */
        cmp     $2, %ax                 /* ABI version 2 */
        CHECK   je, "version"

        /* --- 6. software interrupt through our own IVT (no exit) -------- */
        xor     %dx, %dx
        int     $0x40                   /* handler: count, DX = 0x4040 */
        cmpw    $1, int40_count
        CHECK   je, "int40"
        cmp     $0x4040, %dx
        CHECK   je, "int40 dx"

        /* --- 7. HLT woken by the PIT through the PIC (IRQ0 -> 0x20) ----- */
        call    pic_pit_init            /* 13 IOIO exits */
        mov     $1000, %cx              /* bounded: at most 1000 HLTs */
2:      sti                             /* STI shadow covers the HLT */
        hlt                             /* HLT exit */
        cli
        cmpw    $0, irq0_count
        jne     3f
        loop    2b
3:      cmpw    $1, irq0_count          /* the handler masks IRQ0: exactly 1 */
        CHECK   je, "irq0"

        /* --- 8. an SVM instruction in the guest: #UD, handled by IVT[6] - */
        movw    $0, ud_count
        clgi                            /* 0F 01 DD: #UD (real mode) */
        cmpw    $1, ud_count
        CHECK   je, "clgi ud"

        /* --- done --------------------------------------------------------- */
.ifdef KEEP_GOING
        cmpb    $0, failed
        je      4f
        mov     $s_end, %si
        call    puts
        jmp     reset
4:
.endif
        mov     $s_pass, %si            /* "PASS guest16\n" = 13 bytes */
        call    puts
        /* fall through */

/* Ask the platform to reset: the hypervisor stops the VM here. */
reset:
        mov     $RESETCTL, %dx
        mov     $0x06, %al
        out     %al, %dx                /* IOIO exit (the last one) */
5:      cli
        hlt
        jmp     5b

/* puts: print the NUL-terminated string at DS:SI, one OUT per byte. */
puts:
        lodsb
        test    %al, %al
        jz      1f
        out     %al, $DBG               /* IOIO exit per byte */
        jmp     puts
1:      ret

/* fail: print "FAIL guest16: <tag>\n" (tag address pushed by the caller),
 * then reset; with KEEP_GOING, return with all registers intact. */
fail:
        pusha                           /* 8 words; then return IP, tag */
        mov     %sp, %bp
        mov     $s_fail, %si
        call    puts
        mov     18(%bp), %si
        call    puts
        mov     $'\n', %al
        out     %al, $DBG
.ifdef KEEP_GOING
        movb    $1, failed
        popa
        ret     $2
.else
        jmp     reset
.endif

/* Program the PICs (base 0x20/0x28, only IRQ0 unmasked) and PIT channel 0
 * (mode 2, divisor 1193 = 1 ms). 10 + 3 = 13 OUTs. */
pic_pit_init:
        PIC_PIT_INIT
        ret

/* IVT[0x20]: IRQ0. Masks IRQ0 again before the EOI so that exactly one
 * timer interrupt is ever taken (deterministic exit counts): 2 OUTs. */
irq0_handler:
        push    %ax
        mov     $0xFF, %al
        out     %al, $0x21              /* mask everything on the master */
        mov     $0x20, %al
        out     %al, $0x20              /* non-specific EOI */
        incw    irq0_count
        pop     %ax
        iret

/* IVT[0x40]: software interrupt, never intercepted. */
int40_handler:
        incw    int40_count
        mov     $0x4040, %dx
        iret

/* IVT[6]: #UD. Accept only an SVM instruction (0F 01 D8..DF) at the
 * faulting IP, and step over its 3 bytes. Frame: IP, CS, FLAGS. */
ud_handler:
        push    %bp
        mov     %sp, %bp
        push    %si
        push    %ax
        mov     2(%bp), %si             /* faulting IP (CS = 0) */
        cmpw    $0x010F, (%si)
        jne     1f
        mov     2(%si), %al
        and     $0xF8, %al
        cmp     $0xD8, %al
        jne     1f
        addw    $3, 2(%bp)
        incw    ud_count
        pop     %ax
        pop     %si
        pop     %bp
        iret
1:      pop     %ax
        pop     %si
        pop     %bp
        push    $6
        jmp     unexpected

/* Any other vector: "FAIL guest16: vec NN" and reset. */
unexpected:
        mov     $s_fail, %si
        call    puts
        mov     $s_vec, %si
        call    puts
        pop     %ax                     /* vector number pushed by the stub */
        call    puthex8
        mov     $'\n', %al
        out     %al, $DBG
        jmp     reset

/* puthex8: print AL as two hex digits. */
puthex8:
        push    %ax
        shr     $4, %al
        call    1f
        pop     %ax
        and     $0x0F, %al
1:      cmp     $10, %al
        jb      2f
        add     $('a' - '0' - 10), %al
2:      add     $'0', %al
        out     %al, $DBG
        ret

/* 256 stubs, 8 bytes apart: push the vector number, go to unexpected. */
        .balign 8
vec_stubs:
        .set    vec, 0
        .rept   256
        .balign 8
        push    $vec
        jmp     unexpected
        .set    vec, vec + 1
        .endr

s_start: .asciz "guest16: start\n"
s_pass:  .asciz "PASS guest16\n"
s_fail:  .asciz "FAIL guest16: "
s_vec:   .asciz "vec "
.ifdef KEEP_GOING
s_end:   .asciz "END guest16 (keep-going, some checks failed)\n"
.endif

        .data
int40_count: .word 0
irq0_count:  .word 0
ud_count:    .word 0
failed:      .byte 0

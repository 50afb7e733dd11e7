/*
 * Exception entry stubs. Each stub makes the stack look the same (an error
 * code, real or 0, then the vector) and jumps to exc_common, which saves the
 * general registers into an `ExceptionFrame` and calls Rust.
 */
.macro EXC_NOERR vec
exc_stub_\vec:
    push $0
    push $\vec
    jmp exc_common
.endm

.macro EXC_ERR vec
exc_stub_\vec:
    push $\vec
    jmp exc_common
.endm

.section .text.exceptions, "ax"
.code64
EXC_NOERR 0
EXC_NOERR 1
EXC_NOERR 2
EXC_NOERR 3
EXC_NOERR 4
EXC_NOERR 5
EXC_NOERR 6
EXC_NOERR 7
EXC_ERR   8
EXC_NOERR 9
EXC_ERR   10
EXC_ERR   11
EXC_ERR   12
EXC_ERR   13
EXC_ERR   14
EXC_NOERR 15
EXC_NOERR 16
EXC_ERR   17
EXC_NOERR 18
EXC_NOERR 19
EXC_NOERR 20
EXC_ERR   21
EXC_NOERR 22
EXC_NOERR 23
EXC_NOERR 24
EXC_NOERR 25
EXC_NOERR 26
EXC_NOERR 27
EXC_NOERR 28
EXC_ERR   29
EXC_ERR   30
EXC_NOERR 31

exc_common:
    /* Layout must match `ExceptionFrame` (lowest address first). */
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    /* The frame is 16-byte aligned + 8 after 15 pushes on an aligned IST
     * stack with the 7 hardware/stub words; align for the Rust call. */
    mov %rsp, %rbx
    and $~0xF, %rsp
    cld
    call exception_dispatch
    mov %rbx, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp   /* vector and error code */
    iretq

.section .rodata
.balign 8
.global exc_stub_table
exc_stub_table:
.irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exc_stub_\vec
.endr

/*
 * External interrupt stubs for vectors 32..255, 16 bytes apart, so that the
 * stub of vector v is at irq_stubs + (v - 32) * 16. They save the registers
 * the SysV ABI lets a call clobber and call irq_dispatch(vector).
 */
.section .text.exceptions, "ax"
.balign 16
.global irq_stubs
irq_stubs:
.set irq_vec, 32
.rept 224
    .balign 16
    push $irq_vec
    jmp irq_common
    .set irq_vec, irq_vec + 1
.endr

irq_common:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    mov 72(%rsp), %rdi      /* the vector */
    push %rbp
    mov %rsp, %rbp
    and $~0xF, %rsp
    cld
    call irq_dispatch
    mov %rbp, %rsp
    pop %rbp
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    add $8, %rsp
    iretq

//! Kernel thread contexts and the context switch.
//!
//! A [`Context`] is the saved machine state of one flow of control (a
//! kernel thread) plus, for threads the kernel starts itself, the stack it
//! runs on. The switch saves what the System V ABI says a callee must
//! preserve — rbx, rbp, r12–r15, the MXCSR control bits and the x87
//! control word — on the outgoing stack, stores the stack pointer in the
//! outgoing context, loads the incoming one's, restores the same registers
//! from the incoming stack and returns into it. Everything else is
//! caller-saved, so the Rust code around the call has already spilled it.
//!
//! # Why the interface is safe
//! Resuming a context is only sound if it holds the state of a flow that
//! is suspended, and if that flow resumes exactly once per suspension. Each
//! context therefore carries a state that the switch checks and updates
//! atomically:
//!
//! ```text
//!   EMPTY --prepare--> PREPARING --> SAVED --switch_to (claim)--> RUNNING
//!   EMPTY --adopt_current--> RUNNING                                  |
//!   RUNNING --begin_switch--> SWITCHING --(asm, on the new stack)--> SAVED
//!   RUNNING --begin_exit--> EXITING --(asm, on the new stack)--> EMPTY
//!   RUNNING --leave (adopted flows only)--> EMPTY
//! ```
//!
//! - Only a SAVED context can be resumed, and resuming claims it
//!   (SAVED → RUNNING) with a compare-and-swap, so no two CPUs resume it.
//! - The outgoing context is marked SWITCHING *before* anything makes it
//!   visible to other CPUs (the thread layer does this under its lock), and
//!   it becomes SAVED only after the assembly has stored its stack pointer
//!   and left its stack. A CPU that wants to resume it meanwhile spins; this
//!   closes the SMP window between "enqueued" and "registers saved".
//! - An exiting context becomes EMPTY only once the CPU is off its stack,
//!   and only an EMPTY context can be prepared again, so a stack is never
//!   reused under a running flow.
//! - The outgoing context must be the caller's own: for a context with its
//!   own stack, the current stack pointer must lie in that stack. (For an
//!   adopted flow, whose stack is foreign, the check is only that it is not
//!   on the context's own stack; the thread layer always passes the current
//!   thread of the current CPU.)
//! - A canary at the bottom of each stack is checked at every switch out
//!   of it; an overflow has already corrupted memory, so it panics.
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

/// Bytes of stack for each kernel thread.
pub const STACK_SIZE: usize = 128 * 1024;

/// Written at the lowest address of every prepared stack.
const CANARY: u64 = 0x5354_4143_4b5f_454e; // "NE_KCATS"

const EMPTY: u32 = 0;
const PREPARING: u32 = 1;
const SAVED: u32 = 2;
const RUNNING: u32 = 3;
const SWITCHING: u32 = 4;
const EXITING: u32 = 5;

/// MXCSR with all exceptions masked, round to nearest (the reset value).
const MXCSR_DEFAULT: u64 = 0x1f80;
/// x87 control word: all exceptions masked, 64-bit precision, nearest.
const FCW_DEFAULT: u64 = 0x037f;

/// The lifecycle state of a context (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextState {
    Empty,
    Preparing,
    Saved,
    Running,
    Switching,
    Exiting,
}

/// Why a context operation was refused. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextError {
    /// `prepare`/`adopt_current` on a context that is in use.
    Busy,
    /// The outgoing context is not the calling flow's running context.
    NotCurrentFlow,
    /// The incoming context holds no suspended flow.
    NotResumable,
    /// Switch from a context to itself.
    SameContext,
}

/// A thread's stack, 16-byte aligned as the ABI wants.
#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; STACK_SIZE]>);

/// Saved state of one kernel thread, with its own stack.
///
/// All-zero is a valid EMPTY context, so arrays of them live in .bss.
#[repr(C)]
pub struct Context {
    state: AtomicU32,
    /// Whether the flow runs on `stack` (prepared) or elsewhere (adopted).
    own_stack: AtomicBool,
    /// The saved stack pointer while SAVED.
    rsp: AtomicUsize,
    stack: Stack,
}

// SAFETY: the atomics are Sync; the stack memory is written by Rust code
// only in `prepare`, which first claims the context (EMPTY → PREPARING), so
// no flow runs on the stack then; otherwise only the one flow running on it
// touches it (the canary check in `begin_switch` is made by that flow).
unsafe impl Sync for Context {}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Context {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Context")
            .field("state", &self.state())
            .field("own_stack", &self.own_stack.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The current stack pointer.
fn current_rsp() -> usize {
    let rsp: usize;
    // SAFETY: reads a register; touches no memory and no flags.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}

impl Context {
    /// An EMPTY context.
    pub const fn new() -> Context {
        Context {
            state: AtomicU32::new(EMPTY),
            own_stack: AtomicBool::new(false),
            rsp: AtomicUsize::new(0),
            stack: Stack(UnsafeCell::new([0; STACK_SIZE])),
        }
    }

    pub fn state(&self) -> ContextState {
        match self.state.load(Ordering::Acquire) {
            EMPTY => ContextState::Empty,
            PREPARING => ContextState::Preparing,
            SAVED => ContextState::Saved,
            RUNNING => ContextState::Running,
            SWITCHING => ContextState::Switching,
            _ => ContextState::Exiting,
        }
    }

    fn stack_range(&self) -> (usize, usize) {
        let base = self.stack.0.get() as usize;
        (base, base + STACK_SIZE)
    }

    /// Whether the calling flow runs on this context's own stack.
    pub fn stack_contains_current(&self) -> bool {
        let (lo, hi) = self.stack_range();
        (lo..hi).contains(&current_rsp())
    }

    /// Whether this context is RUNNING and, as far as can be checked, is
    /// the calling flow's context.
    pub fn is_current_flow(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
            && self.own_stack.load(Ordering::Relaxed) == self.stack_contains_current()
    }

    /// Makes the calling flow (running on a stack of its own, e.g. the boot
    /// stack) this context's flow: EMPTY → RUNNING. It can then switch to
    /// other contexts and be resumed like any thread.
    pub fn adopt_current(&self) -> Result<(), ContextError> {
        if self.stack_contains_current() {
            return Err(ContextError::Busy);
        }
        self.state
            .compare_exchange(EMPTY, RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .map_err(|_| ContextError::Busy)?;
        self.own_stack.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// The adopted calling flow stops being this context's flow: RUNNING →
    /// EMPTY. Refused for prepared contexts (a thread on its own stack
    /// leaves through [`Context::begin_exit`]).
    pub fn leave(&self) -> Result<(), ContextError> {
        if self.own_stack.load(Ordering::Relaxed) || !self.is_current_flow() {
            return Err(ContextError::NotCurrentFlow);
        }
        self.state
            .compare_exchange(RUNNING, EMPTY, Ordering::Release, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|_| ContextError::NotCurrentFlow)
    }

    /// Sets up a new flow on this context's stack: when first resumed it
    /// calls `entry(env, arg)`, with default MXCSR and x87 control word.
    /// EMPTY → SAVED; waits if the previous flow is still leaving the stack.
    pub fn prepare<E: Sync + 'static>(
        &self,
        entry: fn(&'static E, usize) -> !,
        env: &'static E,
        arg: usize,
    ) -> Result<(), ContextError> {
        loop {
            match self.state.compare_exchange(EMPTY, PREPARING, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                // Another CPU is switching off this stack: a few instructions.
                Err(EXITING) => core::hint::spin_loop(),
                Err(_) => return Err(ContextError::Busy),
            }
        }
        let (lo, hi) = self.stack_range();
        let start: extern "C" fn(fn(&'static E, usize) -> !, &'static E, usize) -> ! = start::<E>;
        // The frame `certivisor_context_switch` pops (see the assembly),
        // from the lowest address up; the top 16 bytes stay zero so that
        // rsp is 16-byte aligned at the trampoline's `call`.
        let frame: [u64; 8] = [
            MXCSR_DEFAULT | (FCW_DEFAULT << 32),
            0,                                                                  // r15
            arg as u64,                                                         // r14
            env as *const E as u64,                                             // r13
            entry as usize as u64,                                              // r12
            start as usize as u64,                                              // rbx
            0,                                                                  // rbp: ends frame-pointer walks
            certivisor_context_start as unsafe extern "C" fn() as usize as u64, // return address
        ];
        let rsp = hi - 16 - frame.len() * 8;
        // the context is PREPARING, claimed by us, so no flow runs on its stack. `[rsp, hi - 16)` and `[lo, lo + 8)`
        // lie inside the stack; the stack is 16-byte aligned and `rsp` is a multiple of 8 from its top, so the u64
        // writes are aligned.
        // SAFETY: for the reasons just given.
        unsafe {
            core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut u64, frame.len());
            core::ptr::write_bytes((hi - 16) as *mut u8, 0, 16);
            (lo as *mut u64).write(CANARY);
        }
        self.rsp.store(rsp, Ordering::Relaxed);
        self.own_stack.store(true, Ordering::Relaxed);
        // Release: publishes the frame to whoever claims the context.
        self.state.store(SAVED, Ordering::Release);
        Ok(())
    }

    fn check_canary(&self) {
        if !self.own_stack.load(Ordering::Relaxed) {
            return;
        }
        let (lo, _) = self.stack_range();
        // SAFETY: called by the flow running on this stack (checked by the caller), the only one that writes it;
        // aligned 8-byte read inside the stack.
        let word = unsafe { (lo as *const u64).read_volatile() };
        if word != CANARY {
            panic!("kernel thread stack overflow: stack at {lo:#x} lost its canary");
        }
    }

    fn begin(&self, to: u32) -> Result<(), ContextError> {
        if !self.is_current_flow() {
            return Err(ContextError::NotCurrentFlow);
        }
        self.check_canary();
        self.state
            .compare_exchange(RUNNING, to, Ordering::Relaxed, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|_| ContextError::NotCurrentFlow)
    }

    /// First half of a switch away from the calling flow: RUNNING →
    /// SWITCHING. From now on nobody can resume this context until the
    /// switch has saved it; call this while the context is still invisible
    /// to other CPUs (e.g. under the scheduler's lock), then release the
    /// lock and call [`Outgoing::switch_to`].
    pub fn begin_switch(&self) -> Result<Outgoing<'_>, ContextError> {
        self.begin(SWITCHING)?;
        Ok(Outgoing { from: self })
    }

    /// First half of the calling flow's exit: RUNNING → EXITING.
    pub fn begin_exit(&self) -> Result<Exiting<'_>, ContextError> {
        self.begin(EXITING)?;
        Ok(Exiting { from: self })
    }

    /// Claims `self` for resumption: SAVED → RUNNING; spins through the
    /// transient states of a switch or a prepare on another CPU.
    fn claim(&self) -> Result<usize, ContextError> {
        loop {
            match self.state.compare_exchange(SAVED, RUNNING, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(self.rsp.load(Ordering::Relaxed)),
                Err(SWITCHING) | Err(PREPARING) => core::hint::spin_loop(),
                Err(_) => return Err(ContextError::NotResumable),
            }
        }
    }
}

/// A context between [`Context::begin_switch`] and the switch. Dropping it
/// cancels the switch (back to RUNNING).
#[must_use = "the context stays unresumable until the switch is made or cancelled"]
pub struct Outgoing<'a> {
    from: &'a Context,
}

impl Outgoing<'_> {
    /// Saves the calling flow in the outgoing context and resumes `to`.
    /// Returns `Ok` when someone resumes the outgoing context again. On
    /// error nothing happened and the calling flow is RUNNING again.
    pub fn switch_to(self, to: &Context) -> Result<(), ContextError> {
        if core::ptr::eq(self.from, to) {
            return Err(ContextError::SameContext);
        }
        let to_rsp = to.claim()?;
        let from = self.from;
        core::mem::forget(self);
        // `to` was SAVED and we claimed it, so `to_rsp` points at a frame that `certivisor_context_switch` (or
        // `prepare`) left on a stack no flow runs on, and nobody else will resume it. `from` is the calling flow's
        // context in state SWITCHING, so nobody resumes it before the assembly publishes SAVED, which it does only
        // after storing rsp and leaving the stack. The pointers are to atomics that live as long as the contexts,
        // which outlive both flows.
        // SAFETY: for the reasons just given.
        unsafe {
            certivisor_context_switch(from.rsp.as_ptr(), to_rsp, from.state.as_ptr(), SAVED);
        }
        Ok(())
    }
}

impl Drop for Outgoing<'_> {
    fn drop(&mut self) {
        let _ = self.from.state.compare_exchange(SWITCHING, RUNNING, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// A context between [`Context::begin_exit`] and the final switch.
/// Dropping it cancels the exit (back to RUNNING).
#[must_use = "the context stays unusable until the exit is made or cancelled"]
pub struct Exiting<'a> {
    from: &'a Context,
}

impl Exiting<'_> {
    /// Abandons the calling flow and resumes `to`; the outgoing context
    /// becomes EMPTY once the CPU has left its stack. Returns only on error,
    /// in which case the calling flow is RUNNING again.
    pub fn exit_to(self, to: &Context) -> ContextError {
        if core::ptr::eq(self.from, to) {
            return ContextError::SameContext;
        }
        let to_rsp = match to.claim() {
            Ok(rsp) => rsp,
            Err(e) => return e,
        };
        let from = self.from;
        core::mem::forget(self);
        // as in `Outgoing::switch_to`; the state published is EMPTY, after which the outgoing stack may be reused: the
        // calling flow never runs again, and nothing on its stack is referenced from elsewhere (the thread layer keeps
        // no borrows of a thread's stack).
        // SAFETY: for the reasons just given.
        unsafe {
            certivisor_context_switch(from.rsp.as_ptr(), to_rsp, from.state.as_ptr(), EMPTY);
        }
        unreachable!("an exited context was resumed")
    }
}

impl Drop for Exiting<'_> {
    fn drop(&mut self) {
        let _ = self.from.state.compare_exchange(EXITING, RUNNING, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// First Rust code of a new flow: called by `certivisor_context_start`.
///
/// `entry` has the Rust ABI, which the lint flags as not FFI-safe; but the
/// only caller is this file's assembly, which passes back, unchanged, the
/// pointer-sized values `prepare` stored, so the types match exactly.
#[allow(improper_ctypes_definitions)]
extern "C" fn start<E: Sync + 'static>(entry: fn(&'static E, usize) -> !, env: &'static E, arg: usize) -> ! {
    entry(env, arg)
}

extern "C" {
    /// Saves the callee-saved state on the current stack, stores rsp at
    /// `save_rsp`, switches to `load_rsp`, stores `publish` at `state`,
    /// restores the callee-saved state from the new stack and returns there.
    fn certivisor_context_switch(save_rsp: *mut usize, load_rsp: usize, state: *mut u32, publish: u32);
    /// Where a prepared context first returns to: calls `rbx(r12, r13, r14)`.
    fn certivisor_context_start();
}

global_asm!(
    ".text",
    ".p2align 4",
    ".global certivisor_context_switch",
    "certivisor_context_switch:",
    // System V: rdi = save_rsp, rsi = load_rsp, rdx = state, ecx = publish.
    // 1. Push the callee-saved registers of the outgoing flow; its return
    //    address is already on top of its stack from the `call`.
    "    push rbp",
    "    push rbx",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    // 2. MXCSR control/status and the x87 control word are callee-saved
    //    too (ABI §3.2.1); keep them in one 8-byte slot.
    "    sub rsp, 8",
    "    stmxcsr [rsp]",
    "    fnstcw [rsp + 4]",
    // 3. Record where the outgoing state is, and move to the incoming stack.
    "    mov [rdi], rsp",
    "    mov rsp, rsi",
    // 4. Only now, off the outgoing stack, let other CPUs resume (or reuse)
    //    the outgoing context. A plain store is a release store on x86, and
    //    it follows the store of rsp above.
    "    mov dword ptr [rdx], ecx",
    // 5. Restore the incoming flow in the reverse order and return into it.
    "    ldmxcsr [rsp]",
    "    fldcw [rsp + 4]",
    "    add rsp, 8",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbx",
    "    pop rbp",
    "    ret",
    "",
    ".p2align 4",
    ".global certivisor_context_start",
    "certivisor_context_start:",
    // A prepared frame returns here with rsp 16-byte aligned; rbx holds the
    // Rust `start` function and r12..r14 its three arguments.
    "    mov rdi, r12",
    "    mov rsi, r13",
    "    mov rdx, r14",
    "    call rbx",
    // `start` never returns.
    "    ud2",
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Two contexts ping-pong: the test's own flow (adopted) and a thread
    /// on a prepared stack.
    struct PingPong {
        main: Context,
        worker: Context,
        rounds: AtomicU64,
        /// Sum computed by the worker with values kept live across switches.
        worker_sum: AtomicU64,
        worker_mxcsr: AtomicU32,
    }

    static PP: PingPong = PingPong {
        main: Context::new(),
        worker: Context::new(),
        rounds: AtomicU64::new(0),
        worker_sum: AtomicU64::new(0),
        worker_mxcsr: AtomicU32::new(0),
    };

    fn mxcsr() -> u32 {
        let mut v: u32 = 0;
        // SAFETY: stores MXCSR into a local.
        unsafe { asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack)) };
        v
    }

    fn set_mxcsr(v: u32) {
        // SAFETY: loads a valid MXCSR value (exceptions masked).
        unsafe { asm!("ldmxcsr [{}]", in(reg) &v, options(nostack)) };
    }

    fn worker(pp: &'static PingPong, n: usize) -> ! {
        pp.worker_mxcsr.store(mxcsr(), Ordering::SeqCst);
        let (mut a, mut b, mut c) = (n as u64, 7u64, 11u64);
        for i in 0..n as u64 {
            a = a.wrapping_mul(3).wrapping_add(i);
            b ^= a.rotate_left(5);
            c = c.wrapping_add(b);
            pp.rounds.fetch_add(1, Ordering::SeqCst);
            let out = pp.worker.begin_switch().expect("worker is the current flow");
            out.switch_to(&pp.main).expect("main is suspended");
        }
        pp.worker_sum.store(a ^ b ^ c, Ordering::SeqCst);
        let e = pp.worker.begin_exit().expect("worker is the current flow").exit_to(&pp.main);
        panic!("exit failed: {e:?}");
    }

    fn expected_sum(n: u64) -> u64 {
        let (mut a, mut b, mut c) = (n, 7u64, 11u64);
        for i in 0..n {
            a = a.wrapping_mul(3).wrapping_add(i);
            b ^= a.rotate_left(5);
            c = c.wrapping_add(b);
        }
        a ^ b ^ c
    }

    #[test]
    fn two_contexts_ping_pong_on_separate_stacks_and_keep_their_registers() {
        let pp = &PP;
        pp.main.adopt_current().expect("adopt the test's flow");
        const N: usize = 1000;
        // A non-default rounding mode in this flow must survive the switches
        // and must not leak into the worker, which starts with the default.
        let saved_mxcsr = mxcsr();
        set_mxcsr((saved_mxcsr & !0x6000) | 0x6000);
        let my_mxcsr = mxcsr();
        for run in 0..2 {
            pp.rounds.store(0, Ordering::SeqCst);
            pp.worker.prepare(worker, pp, N).expect("prepare an empty context");
            let mut local = 0u64;
            for i in 0..=N as u64 {
                let out = pp.main.begin_switch().expect("main is the current flow");
                out.switch_to(&pp.worker).expect("worker is resumable");
                local = local.wrapping_add(i * 3);
                let r = pp.rounds.load(Ordering::SeqCst);
                assert_eq!(r, (i + 1).min(N as u64), "run {run}: rounds seen after switch {i}");
                assert_eq!(mxcsr(), my_mxcsr, "MXCSR of the main flow after switch {i}");
            }
            assert_eq!(local, 3 * (N as u64) * (N as u64 + 1) / 2, "main's live value");
            assert_eq!(pp.worker.state(), ContextState::Empty, "worker exited");
            let sum = pp.worker_sum.load(Ordering::SeqCst);
            assert_eq!(sum, expected_sum(N as u64), "worker's live values across {N} switches");
            let wm = pp.worker_mxcsr.load(Ordering::SeqCst);
            assert_eq!(wm, MXCSR_DEFAULT as u32, "worker starts with the default MXCSR");
        }
        set_mxcsr(saved_mxcsr);
        pp.main.leave().expect("leave the adopted context");
        assert_eq!(pp.main.state(), ContextState::Empty, "main after leave");
    }

    #[test]
    fn misuse_is_refused_without_switching() {
        static A: Context = Context::new();
        static B: Context = Context::new();
        static C: Context = Context::new();
        fn never(_: &'static (), _: usize) -> ! {
            unreachable!()
        }
        // B is not running: it cannot be switched from.
        assert_eq!(B.begin_switch().err(), Some(ContextError::NotCurrentFlow), "switch from an EMPTY context");
        A.adopt_current().unwrap();
        assert_eq!(A.adopt_current(), Err(ContextError::Busy), "adopt twice");
        // C holds nothing: resuming it is refused and A is RUNNING again.
        let out = A.begin_switch().unwrap();
        assert_eq!(out.switch_to(&C), Err(ContextError::NotResumable), "switch to an EMPTY context");
        assert_eq!(A.state(), ContextState::Running, "A after the refused switch");
        // To itself.
        let out = A.begin_switch().unwrap();
        assert_eq!(out.switch_to(&A), Err(ContextError::SameContext), "switch to itself");
        assert_eq!(A.state(), ContextState::Running, "A after the refused self-switch");
        // A prepared context is not the caller's flow.
        B.prepare(never, &(), 0).unwrap();
        assert_eq!(B.prepare(never, &(), 0), Err(ContextError::Busy), "prepare twice");
        assert_eq!(B.begin_exit().err(), Some(ContextError::NotCurrentFlow), "exit from a SAVED context");
        // A dropped Outgoing cancels.
        drop(A.begin_switch().unwrap());
        assert_eq!(A.state(), ContextState::Running, "A after a dropped Outgoing");
        A.leave().unwrap();
    }
}

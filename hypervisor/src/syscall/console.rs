//! The host console shared by the VMs: one serial port, many guests.
//!
//! Output: every VM's bytes reach the port **prefixed and sanitised**. Each
//! line a guest writes starts with `vmN| `, and the hypervisor's own log
//! lines never do, so a guest cannot forge a log line. Escape sequences
//! and control characters are dropped whole, so a guest cannot drive the
//! operator's terminal (OSC 52 writes the clipboard, for one). When
//! another VM or the log writes while a guest's line is open, the line is
//! ended first and the guest's next byte starts a new, prefixed one.
//!
//! Input: typed bytes go to **one VM at a time**, the one with the input
//! focus (the first VM at start). Ctrl-] starts a command (not Ctrl-A,
//! QEMU's own escape on `-serial mon:stdio`, which `scripts/run` uses):
//! Ctrl-] then a digit N gives the input to vmN, Ctrl-] n to the next VM,
//! Ctrl-] ? lists the VMs, and Ctrl-] Ctrl-] types a Ctrl-]. A VM without
//! the focus reads nothing. Typed bytes are taken from the port only while
//! the focused VM has room for them, so fast typing waits in the port
//! instead of being lost. docs/running.md describes it for users.
//!
//! [`Mux`] is the pure state machine, tested on the host; the kernel keeps
//! one behind [`MUX`] and feeds it the serial port.
use arrayvec::ArrayString;

/// The most consoles: one per process.
pub const SLOTS: usize = crate::proc::MAX_PROCS;
/// Typed bytes held per console until its VM reads them.
const QUEUE: usize = 64;
/// Output held per console while another console's line is open.
const PENDING: usize = 1024;
/// How long an open line may hold back other consoles' whole lines: a
/// prompt waits for typing, and the lines of a VM booting beside it must
/// not wait with it.
pub const HOLD_NS: u64 = 100_000_000;
/// The command key: Ctrl-] (0x1D), as telnet's.
pub const ESCAPE: u8 = 0x1D;
/// An OSC string (ESC ] ... BEL) longer than this is cut off: its
/// remaining bytes show as text again.
const MAX_OSC: u16 = 512;

pub type Name = ArrayString<16>;

/// Where a guest's output stands inside an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    Text,
    /// After ESC.
    Escape,
    /// Inside ESC [ ... (a control sequence), up to its final byte.
    Csi,
    /// Inside ESC ] ... (an operating-system command), up to BEL or ESC \.
    Osc(u16),
    /// ESC inside an OSC: a `\` ends it.
    OscEscape(u16),
    /// After 0xC2, the first byte of a two-byte UTF-8 character that may
    /// be a C1 control (U+0080–U+009F).
    Lead,
}

#[derive(Clone, Copy)]
struct Console {
    name: Name,
    queue: [u8; QUEUE],
    head: usize,
    len: usize,
    filter: Filter,
    /// Output waiting for the terminal (see [`Mux::guest_output`]).
    pending: [u8; PENDING],
    pending_len: usize,
}

impl Console {
    fn new(name: Name) -> Self {
        Console {
            name,
            queue: [0; QUEUE],
            head: 0,
            len: 0,
            filter: Filter::Text,
            pending: [0; PENDING],
            pending_len: 0,
        }
    }

    fn push(&mut self, b: u8) -> bool {
        if self.len == QUEUE {
            return false;
        }
        self.queue[(self.head + self.len) % QUEUE] = b;
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<u8> {
        (self.len > 0).then(|| {
            let b = self.queue[self.head];
            self.head = (self.head + 1) % QUEUE;
            self.len -= 1;
            b
        })
    }

    /// The bytes of `b` that reach the terminal, given what came before.
    fn filter(&mut self, b: u8, mut keep: impl FnMut(u8)) {
        const ESC: u8 = 0x1B;
        const BEL: u8 = 0x07;
        self.filter = match (self.filter, b) {
            (Filter::Text, ESC) => Filter::Escape,
            (Filter::Text, 0xC2) => Filter::Lead,
            (Filter::Text, b) => {
                if is_shown(b) {
                    keep(b);
                }
                Filter::Text
            }
            (Filter::Escape, b'[') => Filter::Csi,
            (Filter::Escape, b']') => Filter::Osc(0),
            // A two-byte sequence (ESC 7, ESC c, ...) ends here.
            (Filter::Escape, _) => Filter::Text,
            (Filter::Csi, 0x40..=0x7E) => Filter::Text,
            (Filter::Csi, 0x20..=0x3F) => Filter::Csi,
            // Anything else aborts the sequence; it is dropped too.
            (Filter::Csi, _) => Filter::Text,
            (Filter::Osc(_), BEL) => Filter::Text,
            (Filter::Osc(n), ESC) => Filter::OscEscape(n),
            (Filter::Osc(n), _) if n >= MAX_OSC => Filter::Text,
            (Filter::Osc(n), _) => Filter::Osc(n + 1),
            (Filter::OscEscape(_), b'\\') => Filter::Text,
            (Filter::OscEscape(n), _) => Filter::Osc(n + 1),
            (Filter::Lead, 0x80..=0x9F) => Filter::Text,
            (Filter::Lead, b) => {
                keep(0xC2);
                self.filter = Filter::Text;
                return self.filter(b, keep);
            }
        };
    }
}

/// Printable ASCII, tab, newline, carriage return, backspace, and the
/// bytes of UTF-8 characters (C1 controls are caught before this).
fn is_shown(b: u8) -> bool {
    matches!(b, 0x20..=0x7E | b'\t' | b'\n' | b'\r' | 0x08 | 0x80..)
}

/// The console multiplexer's state.
pub struct Mux {
    consoles: [Option<Console>; SLOTS],
    focus: Option<usize>,
    /// Ctrl-] was typed: the next byte is a command.
    command: bool,
    /// The console whose line is still open (no newline yet).
    open: Option<usize>,
    /// The time as the caller last gave it ([`Mux::set_now`]), and when
    /// the open line last grew.
    now_ns: u64,
    open_last_ns: u64,
}

impl Mux {
    pub const fn new() -> Self {
        Mux { consoles: [None; SLOTS], focus: None, command: false, open: None, now_ns: 0, open_last_ns: 0 }
    }

    /// Console `slot` now belongs to a VM called `name`. The first console
    /// gets the input focus.
    pub fn attach(&mut self, slot: usize, name: &str) {
        let mut n = Name::new();
        let _ = n.try_push_str(&name[..name.len().min(n.capacity())]);
        self.consoles[slot] = Some(Console::new(n));
        self.focus.get_or_insert(slot);
    }

    /// Console `slot` is given back; its unread input is dropped, and the
    /// focus moves on if it had it.
    pub fn detach(&mut self, slot: usize, out: &mut impl FnMut(&[u8])) {
        self.flush(slot, PENDING, out);
        self.end_line(out);
        self.consoles[slot] = None;
        if self.focus == Some(slot) {
            self.focus = None;
            self.focus_next(slot, out);
        }
    }

    /// Writes a guest's bytes. The VM with the input focus writes through;
    /// another VM's lines wait while someone else's line is open, so that
    /// lines of VMs running side by side stay whole (up to [`PENDING`]
    /// bytes: then they break in).
    pub fn guest_output(&mut self, slot: usize, bytes: &[u8], out: &mut impl FnMut(&[u8])) {
        for &b in bytes {
            let Some(c) = self.consoles[slot].as_mut() else { return };
            let (mut kept, mut n) = ([0u8; 2], 0);
            c.filter(b, |k| {
                kept[n] = k;
                n += 1;
            });
            for &k in &kept[..n] {
                self.put(slot, k, out);
            }
        }
    }

    fn put(&mut self, slot: usize, b: u8, out: &mut impl FnMut(&[u8])) {
        if self.focus == Some(slot) {
            self.flush(slot, PENDING, out);
            self.emit(slot, b, out);
            return;
        }
        let Some(c) = self.consoles[slot].as_mut() else { return };
        c.pending[c.pending_len] = b;
        c.pending_len += 1;
        if c.pending_len == PENDING {
            self.flush(slot, PENDING, out);
        } else if b == b'\n' && self.open.is_none_or(|o| o == slot) {
            self.flush_lines(slot, out);
        }
    }

    /// Writes one byte as console `slot`'s, starting its line if needed.
    fn emit(&mut self, slot: usize, b: u8, out: &mut impl FnMut(&[u8])) {
        if self.open != Some(slot) {
            self.end_line(out);
            let name = self.consoles[slot].map(|c| c.name).unwrap_or_default();
            out(name.as_bytes());
            out(b"| ");
            self.open = Some(slot);
        }
        out(&[b]);
        self.open_last_ns = self.now_ns;
        if b == b'\n' {
            self.open = None;
            // The next waiting console's whole lines, in turn.
            if let Some(next) = (1..SLOTS).map(|i| (slot + i) % SLOTS).find(|&s| self.has_whole_line(s)) {
                self.flush_lines(next, out);
            }
        }
    }

    fn has_whole_line(&self, slot: usize) -> bool {
        self.consoles[slot].is_some_and(|c| c.pending[..c.pending_len].contains(&b'\n'))
    }

    /// Writes console `slot`'s waiting whole lines; a partial line stays.
    fn flush_lines(&mut self, slot: usize, out: &mut impl FnMut(&[u8])) {
        let upto = self.consoles[slot].and_then(|c| c.pending[..c.pending_len].iter().rposition(|&b| b == b'\n'));
        if let Some(last) = upto {
            self.flush(slot, last + 1, out);
        }
    }

    /// Writes the first `upto` waiting bytes of console `slot`.
    fn flush(&mut self, slot: usize, upto: usize, out: &mut impl FnMut(&[u8])) {
        let Some(c) = self.consoles[slot].as_mut() else { return };
        let n = upto.min(c.pending_len);
        if n == 0 {
            return;
        }
        let mut bytes = [0u8; PENDING];
        bytes[..n].copy_from_slice(&c.pending[..n]);
        c.pending.copy_within(n..c.pending_len, 0);
        c.pending_len -= n;
        // The bytes are taken out first: a line they end lets another
        // console's lines out, never this one's again.
        for &b in &bytes[..n] {
            self.emit(slot, b, out);
        }
    }

    /// The time is `now_ns` (nanoseconds, any epoch that only grows).
    pub fn set_now(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
    }

    /// Lets other consoles' whole lines out when the open line has not
    /// grown for [`HOLD_NS`]: the open line is ended (its console goes on
    /// on a new one) and the waiting lines follow in turn.
    pub fn release_held(&mut self, out: &mut impl FnMut(&[u8])) {
        let Some(open) = self.open else { return };
        if self.now_ns.saturating_sub(self.open_last_ns) < HOLD_NS {
            return;
        }
        if let Some(next) = (1..SLOTS).map(|i| (open + i) % SLOTS).find(|&s| self.has_whole_line(s)) {
            self.end_line(out);
            self.flush_lines(next, out);
        }
    }

    /// Before a log line: ends a guest's open line.
    pub fn log_line(&mut self, out: &mut impl FnMut(&[u8])) {
        self.end_line(out);
    }

    fn end_line(&mut self, out: &mut impl FnMut(&[u8])) {
        if self.open.take().is_some() {
            out(b"\r\n");
        }
    }

    /// A host byte may be taken now: the focused VM has room for it, or
    /// it is a command (or no VM would read it, and it is dropped).
    pub fn accepts_input(&self) -> bool {
        self.command || self.focused().is_none_or(|c| c.len < QUEUE)
    }

    /// One byte typed on the host console.
    pub fn input(&mut self, b: u8, out: &mut impl FnMut(&[u8])) {
        if core::mem::take(&mut self.command) {
            self.command(b, out);
        } else if b == ESCAPE {
            self.command = true;
        } else if let Some(slot) = self.focus {
            if let Some(c) = self.consoles[slot].as_mut() {
                c.push(b);
            }
        }
    }

    /// The next byte typed for console `slot`.
    pub fn read(&mut self, slot: usize) -> Option<u8> {
        self.consoles[slot].as_mut()?.pop()
    }

    fn focused(&self) -> Option<&Console> {
        self.consoles[self.focus?].as_ref()
    }

    fn command(&mut self, b: u8, out: &mut impl FnMut(&[u8])) {
        match b {
            ESCAPE => {
                if let Some(c) = self.focus.and_then(|s| self.consoles[s].as_mut()) {
                    c.push(ESCAPE);
                }
            }
            b'0'..=b'9' => {
                let want = [b'v', b'm', b];
                match self.consoles.iter().position(|c| c.is_some_and(|c| c.name.as_bytes() == want)) {
                    Some(slot) => self.set_focus(slot, out),
                    None => self.say(out, &[b"no VM vm", &[b], b" is running"]),
                }
            }
            b'n' => self.focus_next(self.focus.unwrap_or(SLOTS - 1), out),
            b'?' | b'l' => self.list(out),
            _ => self.say(out, &[b"Ctrl-] then: 0-9 input to that VM, n next VM, ? list VMs, Ctrl-] types Ctrl-]"]),
        }
    }

    /// Gives the focus to the first console after `after`, wrapping.
    fn focus_next(&mut self, after: usize, out: &mut impl FnMut(&[u8])) {
        let next = (1..=SLOTS).map(|i| (after + i) % SLOTS).find(|&s| self.consoles[s].is_some());
        match next {
            Some(slot) => self.set_focus(slot, out),
            None => self.focus = None,
        }
    }

    /// Gives `slot` the input and shows what it wrote meanwhile.
    fn set_focus(&mut self, slot: usize, out: &mut impl FnMut(&[u8])) {
        self.focus = Some(slot);
        let name = self.consoles[slot].map(|c| c.name).unwrap_or_default();
        self.say(out, &[b"input goes to ", name.as_bytes()]);
        self.flush(slot, PENDING, out);
    }

    fn list(&mut self, out: &mut impl FnMut(&[u8])) {
        let mut line = ArrayString::<160>::new();
        for (slot, c) in self.consoles.iter().enumerate() {
            if let Some(c) = c {
                let mark = if self.focus == Some(slot) { "*" } else { "" };
                let _ = line.try_push_str(" ");
                let _ = line.try_push_str(c.name.as_str());
                let _ = line.try_push_str(mark);
            }
        }
        self.say(out, &[b"VMs (* has the input):", line.as_bytes()]);
    }

    /// A line from the console itself, marked as the log's are.
    fn say(&mut self, out: &mut impl FnMut(&[u8]), parts: &[&[u8]]) {
        self.end_line(out);
        out(b"[CONS ] console: ");
        for p in parts {
            out(p);
        }
        out(b"\r\n");
    }
}

/// The host console's multiplexer.
pub static MUX: spin::Mutex<Mux> = spin::Mutex::new(Mux::new());

/// Writes the multiplexer's bytes to the host serial port as they are.
fn to_port(bytes: &[u8]) {
    for &b in bytes {
        crate::arch::serial::write_byte(b);
    }
}

/// Takes the console for one log line and ends a guest's open line first.
/// The caller writes its line while it holds the guard.
pub fn for_log_line() -> spin::MutexGuard<'static, Mux> {
    let mut mux = MUX.lock();
    mux.log_line(&mut to_port);
    mux
}

/// The multiplexer at the current time, with the lines an idle open line
/// held back let out.
fn mux_now() -> spin::MutexGuard<'static, Mux> {
    let mut mux = MUX.lock();
    mux.set_now(crate::arch::lapic::now_ns());
    mux.release_held(&mut to_port);
    mux
}

/// Writes a guest's bytes through console `slot`.
pub fn write(slot: usize, bytes: &[u8]) {
    mux_now().guest_output(slot, bytes, &mut to_port);
}

/// The next byte typed for console `slot`: takes what the host port holds
/// while the focused VM has room for it. Every VM asks often, so this is
/// also where held lines are let out in time.
pub fn read(slot: usize) -> Option<u8> {
    let mut mux = mux_now();
    while mux.accepts_input() {
        let Some(b) = crate::arch::serial::try_read_byte() else { break };
        mux.input(b, &mut to_port);
    }
    mux.read(slot)
}

/// Console `slot` belongs to the VM `name` from now on.
pub fn attach(slot: usize, name: &str) {
    MUX.lock().attach(slot, name);
}

/// Console `slot` is free again.
pub fn detach(slot: usize) {
    MUX.lock().detach(slot, &mut to_port);
}

impl Default for Mux {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;

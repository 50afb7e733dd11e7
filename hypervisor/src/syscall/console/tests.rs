use super::*;
use std::string::String;
use std::vec::Vec;

/// A mux with consoles named `names` in slots 0, 1, ... and what it wrote.
struct Term {
    mux: Mux,
    screen: Vec<u8>,
}

impl Term {
    fn new(names: &[&str]) -> Term {
        let mut mux = Mux::new();
        for (slot, n) in names.iter().enumerate() {
            mux.attach(slot, n);
        }
        Term { mux, screen: Vec::new() }
    }

    fn guest(&mut self, slot: usize, bytes: &[u8]) {
        let screen = &mut self.screen;
        self.mux.guest_output(slot, bytes, &mut |b| screen.extend_from_slice(b));
    }

    fn log(&mut self, line: &str) {
        let screen = &mut self.screen;
        self.mux.log_line(&mut |b| screen.extend_from_slice(b));
        screen.extend_from_slice(line.as_bytes());
        screen.extend_from_slice(b"\r\n");
    }

    fn type_(&mut self, bytes: &[u8]) {
        for &b in bytes {
            assert!(self.mux.accepts_input(), "the mux refused typed byte {b:#x}");
            let screen = &mut self.screen;
            self.mux.input(b, &mut |b| screen.extend_from_slice(b));
        }
    }

    fn read_all(&mut self, slot: usize) -> Vec<u8> {
        core::iter::from_fn(|| self.mux.read(slot)).collect()
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(&core::mem::take(&mut self.screen)).into_owned()
    }
}

#[test]
fn every_guest_line_carries_its_vms_prefix() {
    let mut t = Term::new(&["vm0"]);
    t.guest(0, b"hello\r\nworld\r\n# ");
    assert_eq!(t.text(), "vm0| hello\r\nvm0| world\r\nvm0| # ");
}

#[test]
fn a_guest_cannot_forge_a_log_line() {
    let mut t = Term::new(&["vm0"]);
    t.guest(0, b"[INFO ] vm0: stopped cleanly\r\n");
    let text = t.text();
    assert_eq!(text, "vm0| [INFO ] vm0: stopped cleanly\r\n");
    assert!(!text.lines().any(|l| l.starts_with("[INFO ]")), "no line starts as a log line: {text:?}");
}

#[test]
fn a_log_line_ends_an_open_guest_line_and_the_guest_continues_on_a_new_one() {
    let mut t = Term::new(&["vm0"]);
    t.guest(0, b"# ");
    t.log("[INFO ] vm1: starting");
    t.guest(0, b"ls\r\n");
    assert_eq!(t.text(), "vm0| # \r\n[INFO ] vm1: starting\r\nvm0| ls\r\n");
}

#[test]
fn another_vms_lines_wait_until_the_open_line_ends_and_come_out_whole() {
    let mut t = Term::new(&["vm0", "vm1"]);
    t.guest(0, b"CERTIVISOR-GU");
    t.guest(1, b"booting\r\nsecond li");
    t.guest(0, b"EST-READY\r\n");
    assert_eq!(t.text(), "vm0| CERTIVISOR-GUEST-READY\r\nvm1| booting\r\n", "vm1's partial line still waits");
    t.guest(1, b"ne\r\n");
    assert_eq!(t.text(), "vm1| second line\r\n");
}

#[test]
fn the_focused_vm_writes_through_and_a_focus_switch_shows_the_waiting_prompt() {
    let mut t = Term::new(&["vm0", "vm1"]);
    t.guest(0, b"guest:~# ");
    t.guest(1, b"guest:~# ");
    assert_eq!(t.text(), "vm0| guest:~# ", "vm1's prompt waits: vm0's line is open");
    t.type_(b"\x1d1");
    assert_eq!(t.text(), "\r\n[CONS ] console: input goes to vm1\r\nvm1| guest:~# ");
    t.guest(0, b"late\r\n");
    t.guest(1, b"ls\r\n");
    assert_eq!(t.text(), "ls\r\nvm0| late\r\n", "vm0's whole line comes out when vm1's line ends");
}

#[test]
fn lines_held_behind_an_idle_prompt_come_out_after_the_hold_time() {
    let mut t = Term::new(&["vm0", "vm1"]);
    t.mux.set_now(1_000);
    t.guest(0, b"guest:~# ");
    t.guest(1, b"CERTIVISOR-GUEST-READY\r\nBusyBox\r\nguest:~# ");
    t.mux.set_now(1_000 + HOLD_NS - 1);
    t.mux.release_held(&mut |_| panic!("released before the hold time"));
    assert_eq!(t.text(), "vm0| guest:~# ", "vm1's lines wait while vm0's prompt is fresh");
    t.mux.set_now(1_000 + HOLD_NS);
    let screen = &mut t.screen;
    t.mux.release_held(&mut |b| screen.extend_from_slice(b));
    assert_eq!(t.text(), "\r\nvm1| CERTIVISOR-GUEST-READY\r\nvm1| BusyBox\r\n", "whole lines only");
    t.guest(0, b"ls\r\n");
    assert_eq!(t.text(), "vm0| ls\r\n", "vm0 goes on on a new line");
}

#[test]
fn waiting_output_breaks_in_when_its_buffer_is_full() {
    let mut t = Term::new(&["vm0", "vm1"]);
    t.guest(0, b"# ");
    t.guest(1, &[b'x'; PENDING]);
    let text = t.text();
    assert!(text.starts_with("vm0| # \r\nvm1| xxx"), "{text:?}");
    assert_eq!(text.matches('x').count(), PENDING, "nothing is lost");
}

#[test]
fn a_stopping_vm_shows_what_it_still_held() {
    let mut t = Term::new(&["vm0", "vm1"]);
    t.guest(0, b"# ");
    t.guest(1, b"reboot: Power down");
    let screen = &mut t.screen;
    t.mux.detach(1, &mut |b| screen.extend_from_slice(b));
    assert_eq!(t.text(), "vm0| # \r\nvm1| reboot: Power down\r\n");
}

#[test]
fn escape_sequences_are_dropped_whole() {
    let mut t = Term::new(&["vm0"]);
    // OSC 52 (write the clipboard, ended by BEL and by ST), a colour, a
    // cursor move, a two-byte sequence, a C1 CSI in UTF-8, a bare BEL.
    t.guest(0, b"a\x1b]52;c;ZXZpbA==\x07b\x1b]52;c;eA==\x1b\\c\x1b[1;31md\x1b[2Ae\x1b7f\xc2\x9b2Jg\x07h\r\n");
    assert_eq!(t.text(), "vm0| abcdef2Jgh\r\n");
}

#[test]
fn utf8_text_and_backspace_pass() {
    let mut t = Term::new(&["vm0"]);
    t.guest(0, "é ü\u{a0}x\x08y\tz\r\n".as_bytes());
    assert_eq!(t.text(), "vm0| é ü\u{a0}x\x08y\tz\r\n");
}

#[test]
fn a_sequence_split_across_writes_is_still_dropped() {
    let mut t = Term::new(&["vm0"]);
    t.guest(0, b"a\x1b");
    t.guest(0, b"[3");
    t.guest(0, b"1mb\r\n");
    assert_eq!(t.text(), "vm0| ab\r\n");
}

#[test]
fn an_unterminated_osc_is_cut_off_and_text_shows_again() {
    let mut t = Term::new(&["vm0"]);
    let mut bytes = b"\x1b]".to_vec();
    bytes.extend(core::iter::repeat_n(b'x', usize::from(MAX_OSC) + 1));
    bytes.extend_from_slice(b"visible\r\n");
    t.guest(0, &bytes);
    assert_eq!(t.text(), "vm0| visible\r\n");
}

#[test]
fn typed_input_goes_to_the_focused_vm_only() {
    let mut t = Term::new(&["vm0", "vm1"]);
    t.type_(b"ls\r");
    assert_eq!(t.read_all(0), b"ls\r", "the first VM has the focus");
    assert_eq!(t.read_all(1), b"", "the other VM reads nothing");
}

#[test]
fn ctrl_a_digit_moves_the_focus_and_says_so() {
    let mut t = Term::new(&["vm0", "vm1"]);
    t.type_(b"\x1d1");
    assert_eq!(t.text(), "[CONS ] console: input goes to vm1\r\n");
    t.type_(b"pwd\r");
    assert_eq!(t.read_all(1), b"pwd\r");
    assert_eq!(t.read_all(0), b"");
    t.type_(b"\x1d7");
    assert_eq!(t.text(), "[CONS ] console: no VM vm7 is running\r\n");
    t.type_(b"x");
    assert_eq!(t.read_all(1), b"x", "the focus stays where it was");
}

#[test]
fn ctrl_a_n_cycles_and_ctrl_a_question_lists() {
    let mut t = Term::new(&["vm0", "vm1", "vm2"]);
    t.type_(b"\x1dn\x1dn\x1dn");
    assert_eq!(
        t.text(),
        "[CONS ] console: input goes to vm1\r\n[CONS ] console: input goes to vm2\r\n[CONS ] console: input goes to vm0\r\n"
    );
    t.type_(b"\x1d?");
    assert_eq!(t.text(), "[CONS ] console: VMs (* has the input): vm0* vm1 vm2\r\n");
}

#[test]
fn ctrl_a_twice_types_a_ctrl_a_and_other_keys_show_help() {
    let mut t = Term::new(&["vm0"]);
    t.type_(b"\x1d\x1d");
    assert_eq!(t.read_all(0), [ESCAPE]);
    t.type_(b"\x1dz");
    assert!(t.text().contains("Ctrl-] then:"), "help for an unknown command");
    assert_eq!(t.read_all(0), b"", "the command key and its command never reach the guest");
}

#[test]
fn a_console_message_ends_an_open_guest_line() {
    let mut t = Term::new(&["vm0", "vm1"]);
    t.guest(0, b"# ");
    t.type_(b"\x1d1");
    assert_eq!(t.text(), "vm0| # \r\n[CONS ] console: input goes to vm1\r\n");
    t.guest(1, b"x");
    t.guest(0, b"y");
    assert_eq!(t.text(), "vm1| x", "vm0 no longer has the focus: its byte waits");
}

#[test]
fn a_full_queue_holds_input_back_in_the_port() {
    let mut t = Term::new(&["vm0"]);
    t.type_(&[b'k'; QUEUE]);
    assert!(!t.mux.accepts_input(), "no room: the byte stays in the host port");
    assert_eq!(t.mux.read(0), Some(b'k'));
    assert!(t.mux.accepts_input(), "room again after a read");
}

#[test]
fn a_stopped_vms_console_passes_the_focus_on_and_loses_its_input() {
    let mut t = Term::new(&["vm0", "vm1"]);
    t.type_(b"left");
    let screen = &mut t.screen;
    t.mux.detach(0, &mut |b| screen.extend_from_slice(b));
    assert_eq!(t.text(), "[CONS ] console: input goes to vm1\r\n");
    assert_eq!(t.mux.read(0), None);
    t.type_(b"x");
    assert_eq!(t.read_all(1), b"x");
    let screen = &mut t.screen;
    t.mux.detach(1, &mut |b| screen.extend_from_slice(b));
    assert!(t.mux.accepts_input(), "with no VM, typed bytes are taken and dropped");
    t.type_(b"y");
    t.guest(1, b"gone\r\n");
    assert_eq!(t.text(), "", "a detached console writes nothing");
}

//! The host's COM1 16550 UART: the log, and the guest console's backing.
use super::port::Port;

const COM1: u16 = 0x3F8;

/// The UART registers, at offsets from the base port.
struct Uart {
    data: Port<u8>,
    ier: Port<u8>,
    fcr: Port<u8>,
    lcr: Port<u8>,
    mcr: Port<u8>,
    #[cfg_attr(test, allow(dead_code))] // host tests read the simulated console
    lsr: Port<u8>,
}

// SAFETY: COM1 belongs to the hypervisor: the guest only ever sees an
// emulated UART, so nothing else drives these registers.
static COM1_UART: Uart = unsafe {
    Uart {
        data: Port::new(COM1),
        ier: Port::new(COM1 + 1),
        fcr: Port::new(COM1 + 2),
        lcr: Port::new(COM1 + 3),
        mcr: Port::new(COM1 + 4),
        lsr: Port::new(COM1 + 5),
    }
};

#[cfg(not(test))]
const LSR_DATA_READY: u8 = 1 << 0;
#[cfg(not(test))]
const LSR_THR_EMPTY: u8 = 1 << 5;

/// Programs 115200 baud, 8N1, FIFOs on, interrupts off.
pub fn init() {
    let u = &COM1_UART;
    u.ier.write(0);
    u.lcr.write(0x80); // DLAB: the next two ports are the divisor
    u.data.write(1); // 115200 / 1
    u.ier.write(0);
    u.lcr.write(0x03); // 8 bits, no parity, one stop bit
    u.fcr.write(0xC7); // enable and clear FIFOs, 14-byte threshold
    u.mcr.write(0x03); // DTR | RTS
}

/// Sends one byte, waiting a bounded time for room in the transmitter.
#[cfg(not(test))]
pub fn write_byte(b: u8) {
    let u = &COM1_UART;
    for _ in 0..100_000 {
        if u.lsr.read() & LSR_THR_EMPTY != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    u.data.write(b);
}

/// In host tests: onto the simulated console.
#[cfg(test)]
pub fn write_byte(b: u8) {
    super::sim::console_write(b)
}

pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            write_byte(b'\r');
        }
        write_byte(b);
    }
}

/// A byte from the receiver, if one has arrived.
#[cfg(not(test))]
pub fn try_read_byte() -> Option<u8> {
    let u = &COM1_UART;
    (u.lsr.read() & LSR_DATA_READY != 0).then(|| u.data.read())
}

/// In host tests: from the simulated console.
#[cfg(test)]
pub fn try_read_byte() -> Option<u8> {
    super::sim::console_read()
}

//! Typed x86 I/O ports.
use core::arch::asm;
use core::marker::PhantomData;

/// A value that can be moved through an I/O port: `u8`, `u16` or `u32`.
pub trait PortValue: Copy {
    /// Reads the port.
    ///
    /// # Safety
    /// Reading a device register can have side effects the caller must own.
    unsafe fn read_from(port: u16) -> Self;
    /// Writes the port.
    ///
    /// # Safety
    /// Writing a device register can have side effects the caller must own.
    unsafe fn write_to(port: u16, value: Self);
}

macro_rules! port_value {
    ($t:ty, $reg:tt, $in:literal, $out:literal) => {
        impl PortValue for $t {
            unsafe fn read_from(port: u16) -> Self {
                let v: $t;
                // SAFETY: the caller owns the device behind `port`.
                unsafe { asm!($in, out($reg) v, in("dx") port, options(nomem, nostack, preserves_flags)) };
                v
            }
            unsafe fn write_to(port: u16, value: Self) {
                // SAFETY: the caller owns the device behind `port`.
                unsafe { asm!($out, in($reg) value, in("dx") port, options(nomem, nostack, preserves_flags)) };
            }
        }
    };
}
// IN and OUT move data only through AL, AX or EAX.
port_value!(u8, "al", "in al, dx", "out dx, al");
port_value!(u16, "ax", "in ax, dx", "out dx, ax");
port_value!(u32, "eax", "in eax, dx", "out dx, eax");

/// An I/O port that this kernel owns, carrying values of type `T`.
#[derive(Debug, Clone, Copy)]
pub struct Port<T: PortValue> {
    port: u16,
    _t: PhantomData<T>,
}

impl<T: PortValue> Port<T> {
    /// # Safety
    /// The caller asserts that the kernel owns the device at `port` and that
    /// every read and write through this handle is harmless to memory safety.
    pub const unsafe fn new(port: u16) -> Self {
        Port { port, _t: PhantomData }
    }

    pub fn read(&self) -> T {
        // SAFETY: ownership of the port was asserted by `new`.
        unsafe { T::read_from(self.port) }
    }

    pub fn write(&self, value: T) {
        // SAFETY: ownership of the port was asserted by `new`.
        unsafe { T::write_to(self.port, value) }
    }
}

//! Why a call failed, and the faults a guest instruction can raise instead
//! of completing.

/// Why a system call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysError {
    /// The handle names no live object.
    NoSuchObject,
    /// The object belongs to another process.
    NotOwner,
    /// The caller's container has no quota left for the frames this needs.
    OutOfQuota,
    /// Physical memory ran out.
    OutOfMemory,
    /// Every slot of this kind of object is in use.
    NoSlot,
    /// An argument is out of range or misaligned.
    BadArgument,
    /// A guest-physical range is not backed by the VM's RAM.
    BadGuestAddress,
    /// An event is already queued for injection.
    Busy,
    /// There was no exit yet, or the last exit was of another kind.
    NoExit,
    /// The channel is full (send) or empty (receive).
    WouldBlock,
    /// A message or buffer size is out of bounds.
    TooBig,
}

impl core::fmt::Display for SysError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SysError::NoSuchObject => "no such object",
            SysError::NotOwner => "object belongs to another process",
            SysError::OutOfQuota => "out of quota",
            SysError::OutOfMemory => "out of physical memory",
            SysError::NoSlot => "no free slot",
            SysError::BadArgument => "bad argument",
            SysError::BadGuestAddress => "guest-physical address outside the VM's memory",
            SysError::Busy => "an event is already pending",
            SysError::NoExit => "no such exit information",
            SysError::WouldBlock => "the channel is full or empty",
            SysError::TooBig => "message or buffer size out of bounds",
        })
    }
}

pub type SysResult<T> = Result<T, SysError>;

/// The exception a guest instruction raises instead of completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestFault {
    /// #UD.
    InvalidOpcode,
    /// #GP(0).
    GeneralProtection,
}

impl GuestFault {
    pub fn vector(self) -> u8 {
        match self {
            GuestFault::InvalidOpcode => 6,
            GuestFault::GeneralProtection => 13,
        }
    }
}

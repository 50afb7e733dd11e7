//! The one error type of the crate.

use core::fmt;

/// Why a page-table operation was refused. A refused operation changed
/// nothing: neither the mappings nor the table frames in use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NptError {
    /// The frame source had no frame for a table the operation needs.
    OutOfFrames,
    /// The frame source returned a frame that is not 4 KiB aligned or lies
    /// above the 52-bit physical address limit (a bug in the frame source).
    BadFrame,
    /// An address or length is not a multiple of the page size.
    Misaligned,
    /// The range lies outside what the table translates (48-bit
    /// guest-physical, or one canonical half of the virtual space), or the
    /// host-physical range ends above 2^52.
    AddressTooLarge,
    /// The page size is larger than this table was configured to use.
    UnsupportedPageSize,
    /// The permissions lack `READ` (present) or contain unknown bits.
    InvalidPerms,
    /// `map`: some page of the range is already mapped.
    AlreadyMapped,
    /// `unmap`/`protect`: some page of the range is not mapped.
    NotMapped,
}

impl fmt::Display for NptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NptError::OutOfFrames => "no frame left for a page table",
            NptError::BadFrame => "frame source returned an unusable frame",
            NptError::Misaligned => "address or length not aligned to the page size",
            NptError::AddressTooLarge => "address outside the translatable range",
            NptError::UnsupportedPageSize => "page size not enabled for this table",
            NptError::InvalidPerms => "permissions without READ or with unknown bits",
            NptError::AlreadyMapped => "range already (partly) mapped",
            NptError::NotMapped => "range not (fully) mapped",
        })
    }
}

//! Bounds-checked little-endian reads from an image held in a byte slice.
//!
//! Every read names what it was reading, so that a short image turns into a
//! [`LoadError::Truncated`] that says where the image ended.

use super::error::LoadError;

/// The bytes `[offset, offset + len)` of `image`, or `Truncated`.
pub(super) fn slice<'a>(image: &'a [u8], offset: u64, len: u64, what: &'static str) -> Result<&'a [u8], LoadError> {
    let truncated = LoadError::Truncated { what, offset, len, image_len: image.len() as u64 };
    let end = offset.checked_add(len).ok_or(truncated)?;
    if end > image.len() as u64 {
        return Err(truncated);
    }
    // Both bounds are <= image.len(), which fits in usize.
    Ok(&image[offset as usize..end as usize])
}

fn array<const N: usize>(image: &[u8], offset: u64, what: &'static str) -> Result<[u8; N], LoadError> {
    let mut out = [0u8; N];
    out.copy_from_slice(slice(image, offset, N as u64, what)?);
    Ok(out)
}

pub(super) fn u8_at(image: &[u8], offset: u64, what: &'static str) -> Result<u8, LoadError> {
    Ok(array::<1>(image, offset, what)?[0])
}

pub(super) fn u16_at(image: &[u8], offset: u64, what: &'static str) -> Result<u16, LoadError> {
    array(image, offset, what).map(u16::from_le_bytes)
}

pub(super) fn u32_at(image: &[u8], offset: u64, what: &'static str) -> Result<u32, LoadError> {
    array(image, offset, what).map(u32::from_le_bytes)
}

pub(super) fn u64_at(image: &[u8], offset: u64, what: &'static str) -> Result<u64, LoadError> {
    array(image, offset, what).map(u64::from_le_bytes)
}

/// Rounds `x` up to a multiple of `align` (a power of two), or `None` on
/// overflow.
pub(super) fn align_up(x: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// Rounds `x` down to a multiple of `align` (a power of two).
pub(super) fn align_down(x: u64, align: u64) -> u64 {
    debug_assert!(align.is_power_of_two());
    x & !(align - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_little_endian() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(u8_at(&b, 8, "x"), Ok(9));
        assert_eq!(u16_at(&b, 0, "x"), Ok(0x0201));
        assert_eq!(u32_at(&b, 1, "x"), Ok(0x0504_0302));
        assert_eq!(u64_at(&b, 0, "x"), Ok(0x0807_0605_0403_0201));
    }

    #[test]
    fn read_past_end_reports_truncation_with_offset() {
        let b = [0u8; 6];
        assert_eq!(
            u32_at(&b, 4, "field"),
            Err(LoadError::Truncated { what: "field", offset: 4, len: 4, image_len: 6 })
        );
    }

    #[test]
    fn slice_with_overflowing_offset_is_truncation_not_panic() {
        let b = [0u8; 6];
        assert!(matches!(slice(&b, u64::MAX, 2, "x"), Err(LoadError::Truncated { .. })));
        assert!(matches!(slice(&b, 2, u64::MAX, "x"), Err(LoadError::Truncated { .. })));
    }

    #[test]
    fn align_helpers_round_to_power_of_two() {
        assert_eq!(align_up(0x1001, 0x1000), Some(0x2000));
        assert_eq!(align_up(0x1000, 0x1000), Some(0x1000));
        assert_eq!(align_up(u64::MAX, 0x1000), None);
        assert_eq!(align_down(0x1fff, 0x1000), 0x1000);
    }
}

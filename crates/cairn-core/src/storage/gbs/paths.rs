//! Path segments: storage index and share number.

use super::*;

/// Parse a storage-index path segment: exactly 26 lowercase RFC 3548 base32 characters that
/// decode canonically to 16 bytes. `None` means "does not route" (404), as in Tahoe.
pub fn parse_storage_index(segment: &str) -> Option<StorageIndex> {
    if segment.len() != 26
        || !segment
            .bytes()
            .all(|c| matches!(c, b'a'..=b'z' | b'2'..=b'7'))
    {
        return None;
    }
    crate::base32::decode_array::<16>(segment)
        .ok()
        .map(StorageIndex)
}

/// The 26-character form of a storage index (also its directory name on disk).
pub fn storage_index_to_string(si: &StorageIndex) -> String {
    si.to_base32()
}

/// Parse a share-number path segment: unsigned decimal digits (werkzeug's `int(signed=False)`).
/// Returns `None` for anything that does not route (404) and for numbers above 255 (no such
/// share can exist).
pub fn parse_share_number(segment: &str) -> Option<ShareNum> {
    if segment.is_empty() || segment.len() > 20 || !segment.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = segment.parse().ok()?;
    ShareNum::try_from(n).ok()
}

//! `Range` and `Content-Range`, as werkzeug parses them.

use super::*;

/// A half-open byte range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

fn plain_uint(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse a request `Range` header the way Tahoe's `read_range` accepts it: `bytes=a-b`, one
/// range, both ends given, a ≤ b. Anything else → 416.
pub fn parse_range(value: &[u8]) -> Result<ByteRange, GbsError> {
    let unsupported = |why: &str| GbsError::RangeNotSatisfiable(why.to_string());
    let text = std::str::from_utf8(value).map_err(|_| unsupported("Range is not UTF-8"))?;
    let (units, rng) = text
        .split_once('=')
        .ok_or_else(|| unsupported("malformed Range"))?;
    if !units.trim().eq_ignore_ascii_case("bytes") {
        return Err(unsupported("Range units must be bytes"));
    }
    let items: Vec<&str> = rng.split(',').collect();
    if items.len() != 1 {
        return Err(unsupported("only one range is supported"));
    }
    let item = items[0].trim();
    let (a, b) = item
        .split_once('-')
        .ok_or_else(|| unsupported("malformed Range"))?;
    let start = plain_uint(a).ok_or_else(|| unsupported("Range needs an explicit start"))?;
    let last = plain_uint(b).ok_or_else(|| unsupported("Range needs an explicit end"))?;
    if last < start {
        return Err(unsupported("Range end before start"));
    }
    let end = last
        .checked_add(1)
        .ok_or_else(|| unsupported("Range end too large"))?;
    Ok(ByteRange { start, end })
}

/// What a ranged read answers, given the share's data length (`read_range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAnswer {
    /// 206 with `Content-Range: bytes start-(end-1)/*` and the bytes `[start, end)`.
    Partial(ByteRange),
    /// 204: the range starts at or past the end of the data.
    NoContent,
}

/// Clip a requested range to the share length.
pub fn clip_range(requested: ByteRange, share_len: u64) -> ReadAnswer {
    let end = requested.end.min(share_len);
    if requested.start >= end {
        ReadAnswer::NoContent
    } else {
        ReadAnswer::Partial(ByteRange {
            start: requested.start,
            end,
        })
    }
}

/// The `Content-Range` value of a 206 response (and of a PATCH request).
pub fn content_range_header(r: ByteRange) -> String {
    format!("bytes {}-{}/*", r.start, r.end.saturating_sub(1))
}

/// The `Range` request header for `[start, end)`.
pub fn range_header(r: ByteRange) -> String {
    format!("bytes={}-{}", r.start, r.end.saturating_sub(1))
}

/// Parse a `Content-Range` header (werkzeug's `parse_content_range_header`, then Tahoe's
/// requirements: units `bytes` and an explicit range). Missing or invalid → 416.
pub fn parse_content_range(value: Option<&[u8]>) -> Result<ByteRange, GbsError> {
    let unsupported = |why: &str| GbsError::RangeNotSatisfiable(why.to_string());
    let value = value.ok_or_else(|| unsupported("Content-Range is required"))?;
    let text = std::str::from_utf8(value).map_err(|_| unsupported("Content-Range is not UTF-8"))?;
    let text = text.trim();
    let (units, rangedef) = text
        .split_once(|c: char| c.is_ascii_whitespace())
        .ok_or_else(|| unsupported("malformed Content-Range"))?;
    if units != "bytes" {
        return Err(unsupported("Content-Range units must be bytes"));
    }
    let (rng, length) = rangedef
        .trim()
        .split_once('/')
        .ok_or_else(|| unsupported("malformed Content-Range"))?;
    let length = if length == "*" {
        None
    } else {
        Some(plain_uint(length).ok_or_else(|| unsupported("bad Content-Range length"))?)
    };
    let (a, b) = rng
        .split_once('-')
        .ok_or_else(|| unsupported("Content-Range needs a range"))?;
    let start = plain_uint(a).ok_or_else(|| unsupported("bad Content-Range start"))?;
    let last = plain_uint(b).ok_or_else(|| unsupported("bad Content-Range end"))?;
    let end = last
        .checked_add(1)
        .ok_or_else(|| unsupported("Content-Range end too large"))?;
    if start >= end {
        return Err(unsupported("Content-Range end before start"));
    }
    if let Some(len) = length {
        if start >= len {
            return Err(unsupported("Content-Range start past length"));
        }
    }
    Ok(ByteRange { start, end })
}

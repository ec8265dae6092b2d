//! The `Range` header, read as Tahoe reads it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No header, or one Tahoe ignores (other units, a syntax error, last < first).
    Whole,
    /// Inclusive `first..=last`, already clamped to the file.
    Partial(u64, u64),
    /// Starts at or beyond the end: 416.
    Unsatisfiable,
}

/// Python's `int(s)` for the digits Tahoe reads (sign and surrounding space allowed),
/// saturating instead of growing without bound.
pub(super) fn py_int(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = 0;
    for b in digits.bytes() {
        v = v.saturating_mul(10).saturating_add(i128::from(b - b'0'));
    }
    v = v.min(i128::MAX / 4);
    Some(if neg { -v } else { v })
}

pub(crate) fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(h) = header else {
        return RangeRequest::Whole;
    };
    let size_i = i128::from(size);
    let parse = || -> Option<(i128, i128)> {
        let (units, set) = h.split_once('=')?;
        if units != "bytes" {
            return None;
        }
        let mut first_range = None;
        for r in set.split(',') {
            let (first, last) = r.trim().split_once('-')?;
            let (f, l) = if first.is_empty() {
                (size_i - py_int(last)?, size_i - 1)
            } else {
                let f = py_int(first)?;
                let l = if last.is_empty() {
                    size_i - 1
                } else {
                    py_int(last)?
                };
                (f, l)
            };
            if l < f {
                return None;
            }
            first_range.get_or_insert((f, l));
        }
        first_range
    };
    match parse() {
        None => RangeRequest::Whole,
        Some((f, _)) if f >= size_i || size == 0 => RangeRequest::Unsatisfiable,
        Some((f, l)) => {
            let f = f.max(0);
            let l = l.min(size_i - 1);
            RangeRequest::Partial(f as u64, l as u64)
        }
    }
}

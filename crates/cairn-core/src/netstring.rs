//! Netstrings (`<decimal length>:<bytes>,`), as Tahoe uses them in hash tags and the UEB.

/// Append the netstring of `data` to `out`.
pub fn write(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(data);
    out.push(b',');
}

/// The netstring of `data`.
pub fn netstring(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 22);
    write(&mut out, data);
    out
}

/// Why bytes are not the netstring expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NetstringError {
    #[error("netstring at byte {0}: no length")]
    NoLength(usize),
    #[error("netstring at byte {0}: its length runs past the end")]
    Truncated(usize),
    #[error("netstring at byte {0}: no ',' after it")]
    NoComma(usize),
}

/// The netstring starting at `pos` in `data`: its content and the position after its
/// `,`. The length is ASCII digits (leading zeros allowed, as Python's `int` reads
/// them; Tahoe writes none), at most 20 of them.
pub fn split(data: &[u8], pos: usize) -> Result<(&[u8], usize), NetstringError> {
    let rest = data.get(pos..).unwrap_or_default();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 || rest.get(digits) != Some(&b':') {
        return Err(NetstringError::NoLength(pos));
    }
    let len = rest[..digits]
        .iter()
        .try_fold(0usize, |n, d| {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        })
        .ok_or(NetstringError::Truncated(pos))?;
    let start = digits + 1;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= rest.len())
        .ok_or(NetstringError::Truncated(pos))?;
    if rest.get(end) != Some(&b',') {
        return Err(NetstringError::NoComma(pos));
    }
    Ok((&rest[start..end], pos + end + 1))
}

#[cfg(test)]
mod tests {
    use super::{split, NetstringError};

    #[test]
    fn split_reads_back_what_write_wrote() {
        let mut buf = b"xx".to_vec();
        super::write(&mut buf, b"hello");
        super::write(&mut buf, b"");
        let (a, p) = split(&buf, 2).unwrap();
        assert_eq!((a, p), (&b"hello"[..], 10));
        let (b, p) = split(&buf, p).unwrap();
        assert_eq!((b, p), (&b""[..], buf.len()));
        assert_eq!(split(b"003:abc,", 0).unwrap().0, b"abc");
    }

    #[test]
    fn split_refuses_broken_netstrings() {
        assert_eq!(split(b"", 0), Err(NetstringError::NoLength(0)));
        assert_eq!(split(b":a,", 0), Err(NetstringError::NoLength(0)));
        assert_eq!(split(b"+1:a,", 0), Err(NetstringError::NoLength(0)));
        assert_eq!(split(b"5:abc,", 0), Err(NetstringError::Truncated(0)));
        assert_eq!(split(b"3:abcd", 0), Err(NetstringError::NoComma(0)));
        assert_eq!(split(b"3:abc", 0), Err(NetstringError::NoComma(0)));
        assert_eq!(
            split(b"99999999999999999999:", 0),
            Err(NetstringError::Truncated(0))
        );
        assert_eq!(split(b"1:a,", 9), Err(NetstringError::NoLength(9)));
    }

    #[test]
    fn examples() {
        assert_eq!(super::netstring(b""), b"0:,");
        assert_eq!(super::netstring(b"abc"), b"3:abc,");
        assert_eq!(super::netstring(&[7u8; 10])[..3], *b"10:");
    }
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        assert_eq!(super::netstring(b""), b"0:,");
        assert_eq!(super::netstring(b"abc"), b"3:abc,");
        assert_eq!(super::netstring(&[7u8; 10])[..3], *b"10:");
    }
}

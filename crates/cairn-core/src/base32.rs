//! Tahoe-LAFS base32: the RFC 4648 alphabet in lower case, no padding, canonical only.
//!
//! Tahoe (`allmydata/util/base32.py`) encodes `n` bytes in the minimal number of
//! characters, `ceil(8n/5)`, and refuses to decode a string whose length is not such a
//! count or whose last character carries non-zero unused bits. We do the same, so that
//! every byte string has exactly one text form.

use thiserror::Error;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Why a string is not canonical Tahoe base32.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Base32Error {
    #[error("invalid base32 character {ch:?} at position {pos}")]
    BadChar { ch: char, pos: usize },
    #[error("invalid base32 length {0} (no byte string encodes to that many characters)")]
    BadLength(usize),
    #[error("non-canonical base32: the unused low bits of the last character are not zero")]
    NonCanonical,
}

/// Length of the text form of `nbytes` bytes.
pub const fn encoded_len(nbytes: usize) -> usize {
    (nbytes * 8).div_ceil(5)
}

/// Number of bytes a text of `nchars` characters decodes to, or `None` if no byte string
/// has that length of text form.
pub const fn decoded_len(nchars: usize) -> Option<usize> {
    let nbytes = nchars * 5 / 8;
    if encoded_len(nbytes) == nchars {
        Some(nbytes)
    } else {
        None
    }
}

/// Encode bytes to lower-case, unpadded base32.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(encoded_len(data.len()));
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn value(c: u8) -> Option<u8> {
    match c {
        b'a'..=b'z' => Some(c - b'a'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

/// Decode canonical base32: the only text form of its bytes. Capability fields use this,
/// as Tahoe's cap regular expressions accept only canonical text.
pub fn decode(text: &str) -> Result<Vec<u8>, Base32Error> {
    decode_with(text, 0)
}

/// Decode exactly what Tahoe's `base32.a2b` accepts. Its `could_be_base32_encoded`
/// check is one bit looser than canonical: the highest unused bit of the last character
/// may be set (so `"mc"` decodes, to the same byte as the canonical `"ma"`). Use this only
/// where Tahoe itself calls `a2b` on untrusted text and cairn must accept what it accepts.
pub fn decode_tahoe_lenient(text: &str) -> Result<Vec<u8>, Base32Error> {
    decode_with(text, 1)
}

fn decode_with(text: &str, ignored_high_unused_bits: u32) -> Result<Vec<u8>, Base32Error> {
    let bytes = text.as_bytes();
    let nbytes = decoded_len(bytes.len()).ok_or(Base32Error::BadLength(bytes.len()))?;
    let mut out = Vec::with_capacity(nbytes);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for (pos, &c) in bytes.iter().enumerate() {
        let v = value(c).ok_or_else(|| Base32Error::BadChar {
            ch: text[pos..].chars().next().unwrap_or('?'),
            pos,
        })?;
        acc = ((acc << 5) | u32::from(v)) & 0xfff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        let checked_bits = bits.saturating_sub(ignored_high_unused_bits);
        if acc & ((1 << checked_bits) - 1) != 0 {
            return Err(Base32Error::NonCanonical);
        }
    }
    Ok(out)
}

/// Decode a field that must hold exactly `N` bytes.
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], Base32Error> {
    if text.len() != encoded_len(N) {
        return Err(Base32Error::BadLength(text.len()));
    }
    let v = decode(text)?;
    let mut out = [0u8; N];
    out.copy_from_slice(&v);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_lengths() {
        assert_eq!(encoded_len(16), 26);
        assert_eq!(encoded_len(20), 32);
        assert_eq!(encoded_len(32), 52);
        for bad in [1usize, 3, 6, 9] {
            assert_eq!(decoded_len(bad), None, "{bad}");
        }
    }

    #[test]
    fn rejects_noncanonical_and_uppercase() {
        assert_eq!(encode(b"\xff"), "74");
        assert_eq!(decode("75"), Err(Base32Error::NonCanonical));
        assert!(matches!(
            decode("7A"),
            Err(Base32Error::BadChar { pos: 1, .. })
        ));
        assert!(matches!(decode("a"), Err(Base32Error::BadLength(1))));
        assert!(matches!(
            decode("é1"),
            Err(Base32Error::BadLength(_) | Base32Error::BadChar { .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let t = encode(&data);
            prop_assert_eq!(t.len(), encoded_len(data.len()));
            prop_assert_eq!(decode(&t).unwrap(), data);
        }

        #[test]
        fn garbage_never_panics(s in "\\PC{0,64}") {
            if let Ok(v) = decode(&s) {
                prop_assert_eq!(encode(&v), s);
            }
        }
    }
}

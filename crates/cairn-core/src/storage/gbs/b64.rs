//! Standard base64 with padding (what Python's `b64encode` makes; decoding is strict about
//! length and padding, and, as Python's `b64decode`, lets unused trailing bits pass).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

pub fn encode(data: &[u8]) -> String {
    ENGINE.encode(data)
}

/// Strict decode: length a multiple of 4, padding only at the end.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    ENGINE.decode(text).ok()
}

/// Unpadded URL-safe base64 (Python's `urlsafe_b64encode(..).rstrip(b"=")`).
pub fn urlsafe_nopad(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// Python's `base64.urlsafe_b64decode`, non-strict, as Tahoe's web API applies it to a
/// private key field: characters outside the alphabet are skipped, `+`/`/` read as
/// `-`/`_`, input ends at the first `=`, padding may be left out; a lone trailing
/// character (six bits, no byte) is refused.
pub fn urlsafe_decode_lenient(text: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    let clean: Vec<u8> = text
        .bytes()
        .take_while(|&c| c != b'=')
        .filter_map(|c| match c {
            b'+' => Some(b'-'),
            b'/' => Some(b'_'),
            c if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' => Some(c),
            _ => None,
        })
        .collect();
    if clean.len() % 4 == 1 {
        return None;
    }
    LENIENT.decode(&clean).ok()
}

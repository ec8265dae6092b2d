#![no_main]
//! Tahoe base32: decoding is total, and anything accepted re-encodes to the same text.
use cairn_core::base32;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = base32::decode(text) {
            assert_eq!(base32::encode(&bytes), text);
        }
    }
});

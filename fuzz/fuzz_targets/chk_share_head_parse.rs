#![no_main]
//! The CHK share head (layout version and offsets table) of a share's first bytes, as the
//! download machine reads it: parsing never panics, and a parsed head re-encodes to exactly
//! the bytes it came from.
use cairn_core::chk::{share_hash_entries, ShareHead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = ShareHead::parse(data) {
        let bytes = head.to_bytes().expect("parsed fields fit their width");
        assert_eq!(&data[..bytes.len()], &bytes[..], "head does not round-trip");
    }
    let _ = share_hash_entries(data).count();
});

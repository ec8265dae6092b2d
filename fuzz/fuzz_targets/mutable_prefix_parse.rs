#![no_main]
//! The mutable share prefix (signed header and offsets table) of a share's first bytes, as
//! the servermap, retrieve and publish machines see them: parsing never panics, and a
//! parsed prefix re-encodes to exactly the bytes it came from.
use cairn_core::mutable::header::{parse_share_hash_chain, seqnum_of, MdmfOffsets, SdmfOffsets};
use cairn_core::mutable::MutableSharePrefix;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(prefix) = MutableSharePrefix::parse(data) {
        let bytes = prefix.to_bytes();
        assert_eq!(&data[..bytes.len()], &bytes[..], "prefix does not round-trip");
        let _ = prefix.header.params();
    }
    let _ = SdmfOffsets::parse(data);
    let _ = MdmfOffsets::parse(data);
    let _ = seqnum_of(data);
    let _ = parse_share_hash_chain(data);
});

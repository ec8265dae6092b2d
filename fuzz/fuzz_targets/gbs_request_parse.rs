#![no_main]
//! Every GBS request parser is total on arbitrary bytes, and what parses re-encodes to
//! something that parses to the same value.
use cairn_core::storage::gbs::{self, AllocateRequest, CorruptRequest, RtwRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = AllocateRequest::parse(data) {
        assert_eq!(AllocateRequest::parse(&r.encode()).expect("re-encoded parses"), r);
    }
    if let Ok(r) = CorruptRequest::parse(data) {
        assert_eq!(CorruptRequest::parse(&r.encode()).expect("re-encoded parses"), r);
    }
    if let Ok(r) = RtwRequest::parse(data) {
        assert_eq!(RtwRequest::parse(&r.encode()).expect("re-encoded parses"), r);
    }
    let _ = gbs::cbor::decode(data);
    let _ = gbs::parse_range(data);
    let _ = gbs::parse_content_range(Some(data));
    let _ = gbs::parse_secrets(&[data], gbs::SECRETS_RTW);
    let _ = gbs::check_accept(Some(data));
    let _ = gbs::check_content_type(Some(data));
    let _ = gbs::check_authorization(Some(data), b"swissnum");
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = gbs::parse_storage_index(s);
        let _ = gbs::parse_share_number(s);
    }
});

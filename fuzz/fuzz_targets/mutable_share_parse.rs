#![no_main]
//! SDMF/MDMF share parsing is total; a parsed share's consistency checks never panic.
use cairn_core::mutable::MutableShare;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(share) = MutableShare::parse(data) {
        let _ = share.check_consistency();
        let _ = share.signed_prefix();
        let _ = share.segment_salt(0);
        let _ = share.to_bytes();
    }
});

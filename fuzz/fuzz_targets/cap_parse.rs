#![no_main]
//! Capability parsing is total; a parsed cap prints as text that parses back to it.
use cairn_core::cap::Cap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cap) = Cap::parse_bytes(data) {
        let text = cap.to_string();
        let again = Cap::parse(&text).expect("a printed cap parses");
        assert_eq!(again.to_string(), text);
        let _ = (cap.readonly(), cap.verifier(), cap.storage_index());
    }
});

#![no_main]
//! URI extension block parsing is total; anything accepted serialises back to the same bytes.
use cairn_core::chk::Ueb;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ueb) = Ueb::parse(data) {
        let _ = ueb.hash();
        let _ = ueb.validate(3, 10, 1000);
    }
});

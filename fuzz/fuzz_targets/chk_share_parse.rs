#![no_main]
//! Immutable share layouts (v1 and v2) from a server: parsing and verifying never panic
//! and never allocate more than the input justifies.
use cairn_core::chk::{ShareLayout, Ueb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(layout) = ShareLayout::parse(data) {
        let _ = layout.share_hash_entries().count();
        if let Ok(ueb) = Ueb::parse(layout.ueb) {
            let (k, n, size) = (ueb.needed_shares.unwrap_or(3), ueb.total_shares.unwrap_or(10), ueb.size.unwrap_or(0));
            if let Ok(g) = ueb.validate(k, n, size) {
                let _ = layout.check_geometry(&g);
                for seg in 0..g.num_segments.min(64) {
                    let _ = layout.block(&g, seg);
                }
            }
        }
    }
});

#![no_main]
//! Immutable container parsing is total; a parsed container round-trips byte-exactly and
//! its layout, reads and lease updates never panic.
use cairn_core::storage::container::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = ImmutableContainerHeader::parse(data) {
        if let Ok(layout) = h.layout(data.len() as u64) {
            let _ = layout.read_range(u64::from(h.max_size_field), u64::MAX);
            assert_eq!(layout.file_size(), data.len() as u64);
        }
    }
    if let Ok(c) = ImmutableContainer::parse(data) {
        assert_eq!(c.to_bytes(), data);
        let mut leases = c.leases.clone();
        let g = LeaseGrant {
            owner_num: 1,
            renew_secret: [7; 32],
            cancel_secret: [8; 32],
            expiration_secs: u32::MAX,
            nodeid: [0; 20],
        };
        if let Ok(upd) = add_or_renew(&mut leases, c.header.version.secret_form(), &g, Some(72)) {
            let mut file = data.to_vec();
            apply_file_ops(
                &mut file,
                &immutable_lease_update_ops(&c.layout(), &leases, upd),
            );
            let again = ImmutableContainer::parse(&file).expect("updated container parses");
            assert_eq!(again.leases, leases);
        }
    }
});

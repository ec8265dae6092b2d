#![no_main]
//! Mutable container parsing is total; a parsed container round-trips byte-exactly, and
//! planning writes and lease updates on it never panics and yields a parseable container.
use cairn_core::storage::container::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = MutableContainerHeader::parse(data);
    // Let the fuzzer reach the interesting part: splice a valid magic in front.
    let mut with_magic = MUTABLE_MAGIC_V2.to_vec();
    with_magic.extend_from_slice(data.get(32..).unwrap_or(&[]));
    // And a variant whose extra-lease offset and count are consistent with its length.
    let mut fixed = with_magic.clone();
    if fixed.len() >= 472 {
        let n = fixed.len();
        let elo = (n - 4) as u64;
        let dl = u64::from_be_bytes(fixed[84..92].try_into().unwrap()) % (elo - 467);
        fixed[84..92].copy_from_slice(&dl.to_be_bytes());
        fixed[92..100].copy_from_slice(&elo.to_be_bytes());
        fixed[n - 4..].copy_from_slice(&[0; 4]);
    }
    for input in [data, with_magic.as_slice(), fixed.as_slice()] {
        if let Ok(c) = MutableContainer::parse(input) {
            assert_eq!(c.to_bytes(), input);
            let mut header = c.header.clone();
            let block = c.leases.extra_block_bytes();
            let payload = input.get(..input.len().min(64)).unwrap_or(&[]);
            let off = u64::from(input.len() as u16);
            // Bound the size so the in-memory model stays small.
            if let Ok(ops) = plan_mutable_writev(
                &mut header,
                &block,
                [(off, payload)],
                Some(off / 2),
                1 << 20,
            ) {
                let mut file = input.to_vec();
                apply_file_ops(&mut file, &ops);
                let again = MutableContainer::parse(&file).expect("written container parses");
                assert_eq!(again.header, header);
                assert_eq!(again.leases, c.leases);
                let mut leases = again.leases.clone();
                let g = LeaseGrant {
                    owner_num: 1,
                    renew_secret: [7; 32],
                    cancel_secret: [8; 32],
                    expiration_secs: 5,
                    nodeid: [1; 20],
                };
                if let Ok(upd) = leases.add_or_renew(&g, Some(92)) {
                    apply_file_ops(
                        &mut file,
                        &leases.update_ops(header.extra_lease_offset, upd),
                    );
                    let again = MutableContainer::parse(&file).expect("leased container parses");
                    assert_eq!(again.leases, leases);
                }
            }
        }
    }
});

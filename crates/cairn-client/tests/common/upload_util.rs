//! Upload test helpers: reading what the servers of a [`TestGrid`] hold and decoding it.

use cairn_core::cap::{Cap, ChkReadCap};
use cairn_core::storage::container::ImmutableContainer;

use super::grid::TestGrid;

/// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn chk_cap(cap: &str) -> ChkReadCap {
    match Cap::parse(cap).expect("cap parses") {
        Cap::ChkRead(c) => c,
        other => panic!("not a CHK read cap: {other:?}"),
    }
}

/// Every finished share of `si` on every server: `(server, shnum, share data)` (the
/// container's data region, as a downloader reads it).
pub fn shares_on_disk(tg: &TestGrid, si: &[u8; 16]) -> Vec<(usize, u16, Vec<u8>)> {
    let mut out = Vec::new();
    for server in 0..tg.announcements.len() {
        for (shnum, path) in tg.share_files(server, si) {
            let file = std::fs::read(&path).expect("share file readable");
            let c = ImmutableContainer::parse(&file).expect("immutable container parses");
            out.push((server, shnum, c.data));
        }
    }
    out
}

/// Decode the file from the shares on disk (verifying every hash on the way).
pub fn decode_from_disk(tg: &TestGrid, cap: &str) -> Vec<u8> {
    let cap = chk_cap(cap);
    let si = cap.storage_index().0;
    let shares = shares_on_disk(tg, &si);
    let refs: Vec<(u16, &[u8])> = shares.iter().map(|(_, n, d)| (*n, d.as_slice())).collect();
    cairn_core::chk::decode_read_cap(&cap, &refs).expect("shares on disk decode")
}

/// Decode from `k` shares only, each one separately verified: every share alone is good.
pub fn each_share_verifies(tg: &TestGrid, cap: &str) -> usize {
    let cap = chk_cap(cap);
    let si = cap.storage_index().0;
    let shares = shares_on_disk(tg, &si);
    let info = cairn_core::chk::ChkCapInfo::from(&cap);
    for (server, shnum, data) in &shares {
        cairn_core::chk::verify_share(&info, *shnum, data)
            .unwrap_or_else(|e| panic!("share {shnum} on server {server} does not verify: {e:?}"));
    }
    shares.len()
}

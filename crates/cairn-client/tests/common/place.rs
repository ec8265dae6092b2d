//! Put a file's shares on a grid without the uploader: encode in memory with the core
//! and write share i to the i-th server in Tahoe's permuted order (wrapping around), with
//! plain `allocate_buckets` + `write_share_chunk` calls.

use std::collections::BTreeSet;

use cairn_client::gbs_client::{new_upload_secret, LeaseSecrets};
use cairn_client::Grid;
use cairn_core::cap::ChkReadCap;
use cairn_core::chk::{encode_convergent, EncodingParams, Immutable};

/// A file placed on a grid.
pub struct Placed {
    pub cap: ChkReadCap,
    pub storage_index: [u8; 16],
    /// `(shnum, index of the server in the grid's configured list)`.
    pub holders: Vec<(u16, usize)>,
    pub segment_size: u64,
    pub num_segments: u64,
    /// Where share data starts in a share (the layout's data offset).
    pub data_offset: u64,
    pub block_size: u64,
}

impl Placed {
    /// The grid index of the server holding `shnum`.
    pub fn holder(&self, shnum: u16) -> usize {
        self.holders
            .iter()
            .find(|h| h.0 == shnum)
            .expect("placed")
            .1
    }

    /// The share `server` holds (the first, if several).
    pub fn share_on(&self, server: usize) -> u16 {
        self.holders
            .iter()
            .find(|h| h.1 == server)
            .expect("holds a share")
            .0
    }
}

/// Encode `data` (more than 55 bytes) convergently and write every share.
pub async fn place(
    grid: &Grid,
    params: &EncodingParams,
    convergence: &[u8],
    data: &[u8],
) -> Placed {
    let Immutable::Chk(f) = encode_convergent(params, convergence, data).expect("encodes") else {
        panic!("place() needs a CHK-sized file (> 55 bytes)");
    };
    let cap = f.trailer.read_cap();
    let si = cap.storage_index().0;
    let servers = grid.permuted(&si);
    assert!(!servers.is_empty());
    let lease = LeaseSecrets {
        renew: [1; 32],
        cancel: [2; 32],
    };
    let mut holders = Vec::new();
    for (shnum, share) in f.shares.iter().enumerate() {
        let entry = &servers[shnum % servers.len()];
        let secret = new_upload_secret();
        let sh = shnum as u8;
        let alloc = entry
            .client
            .allocate_buckets(
                &si,
                &lease,
                &secret,
                &BTreeSet::from([sh]),
                share.len() as u64,
            )
            .await
            .expect("allocate");
        assert!(
            alloc.allocated.contains(&sh),
            "server {} did not allocate share {shnum}",
            entry.name()
        );
        let mut off = 0usize;
        while off < share.len() {
            let end = (off + (1 << 20)).min(share.len());
            let r = entry
                .client
                .write_share_chunk(&si, sh, &secret, off as u64, share[off..end].to_vec())
                .await
                .expect("write");
            off = end;
            assert_eq!(r.finished, off == share.len());
        }
        holders.push((shnum as u16, entry.index));
    }
    let g = f.trailer.geometry;
    Placed {
        cap,
        storage_index: si,
        holders,
        segment_size: g.segment_size,
        num_segments: g.num_segments,
        data_offset: f.trailer.offsets.data,
        block_size: g.block_size,
    }
}

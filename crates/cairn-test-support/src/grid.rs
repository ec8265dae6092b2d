//! A grid of N in-process storage servers, each with its own identity (and so its own
//! place in Tahoe's permutation), a `cairn_client::Grid` over them, and what they hold
//! on disk: share files, and CHK files decoded or verified from them. [`place`] puts a
//! file's shares on the grid without the uploader.

use std::collections::BTreeSet;
use std::path::PathBuf;

use cairn_client::gbs_client::{new_upload_secret, ClientOptions, LeaseSecrets};
use cairn_client::{Grid, StaticServer};
use cairn_core::cap::{Cap, ChkReadCap};
use cairn_core::chk::{encode_convergent, EncodingParams, Immutable};
use cairn_core::ids::ShareNum;
use cairn_core::storage::container::ImmutableContainer;

use crate::storage_node::{fast_options, StorageServer};

pub struct TestGrid {
    /// Server i is called `server{i}`.
    pub servers: Vec<StorageServer>,
    /// Announcements in server order (index i = servers[i]).
    pub announcements: Vec<StaticServer>,
}

impl TestGrid {
    /// `n` servers, each made by `cairn create-node` (distinct RSA identities).
    pub async fn start(n: usize) -> TestGrid {
        let mut servers = Vec::new();
        let mut announcements = Vec::new();
        for i in 0..n {
            let s = StorageServer::start(&format!("server{i}")).await;
            announcements.push(s.static_server_at(s.addr));
            servers.push(s);
        }
        TestGrid {
            servers,
            announcements,
        }
    }

    /// A client over every server, with short timeouts.
    pub fn client(&self) -> Grid {
        self.client_with(fast_options())
    }

    pub fn client_with(&self, opts: ClientOptions) -> Grid {
        let (grid, skipped) = Grid::new(self.announcements.clone(), opts);
        assert!(skipped.is_empty());
        grid
    }

    /// Tahoe's `private/servers.yaml` listing every server.
    pub fn servers_yaml(&self) -> String {
        let mut y = String::from("storage:\n");
        for s in &self.servers {
            y.push_str(&format!("  {}\n", s.announcement_yaml_at(s.addr)));
        }
        y
    }

    /// Server i's id (`v0-…`), as servers.yaml and `GET /?t=json` name it.
    pub fn server_id(&self, i: usize) -> String {
        self.servers[i].identity.server_id.clone()
    }

    /// Stop server `i` (in-flight uploads aborted, port closed).
    pub async fn stop(&mut self, i: usize) {
        self.servers[i].stop().await;
    }

    /// Start server `i` again on its old port and storage directory.
    pub async fn restart(&mut self, i: usize) {
        self.servers[i].restart().await;
    }

    /// The share files server `i` holds for `storage_index`: `(shnum, path)`.
    pub fn share_files(&self, i: usize, storage_index: &[u8; 16]) -> Vec<(u16, PathBuf)> {
        self.servers[i].share_files(storage_index)
    }

    /// Which servers hold which shares of `storage_index`.
    pub fn share_map(&self, storage_index: &[u8; 16]) -> Vec<Vec<u16>> {
        (0..self.servers.len())
            .map(|i| {
                self.share_files(i, storage_index)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect()
            })
            .collect()
    }

    /// Finished share files on every server.
    pub fn share_count(&self) -> usize {
        self.servers.iter().map(StorageServer::share_count).sum()
    }

    /// Every finished share of `si` on every server: `(server, shnum, share data)` (the
    /// container's data region, as a downloader reads it).
    pub fn shares_on_disk(&self, si: &[u8; 16]) -> Vec<(usize, u16, Vec<u8>)> {
        let mut out = Vec::new();
        for server in 0..self.servers.len() {
            for (shnum, path) in self.share_files(server, si) {
                let file = std::fs::read(&path).expect("share file readable");
                let c = ImmutableContainer::parse(&file).expect("immutable container parses");
                out.push((server, shnum, c.data));
            }
        }
        out
    }

    /// Decode the file from the shares on disk (verifying every hash on the way).
    pub fn decode_from_disk(&self, cap: &str) -> Vec<u8> {
        let cap = chk_cap(cap);
        let si = cap.storage_index().0;
        let shares = self.shares_on_disk(&si);
        let refs: Vec<(ShareNum, &[u8])> = shares
            .iter()
            .map(|(_, n, d)| (share_num(*n), d.as_slice()))
            .collect();
        cairn_core::chk::decode_read_cap(&cap, &refs).expect("shares on disk decode")
    }

    /// Verify every share on disk on its own (each one alone is good); returns how many.
    pub fn each_share_verifies(&self, cap: &str) -> usize {
        let cap = chk_cap(cap);
        let si = cap.storage_index().0;
        let shares = self.shares_on_disk(&si);
        let info = cairn_core::chk::ChkCapInfo::from(&cap);
        for (server, shnum, data) in &shares {
            cairn_core::chk::verify_share(&info, share_num(*shnum), data).unwrap_or_else(|e| {
                panic!("share {shnum} on server {server} does not verify: {e:?}")
            });
        }
        shares.len()
    }
}

/// A share number parsed from a share file's name (the store writes only `0..=255`).
fn share_num(n: u16) -> ShareNum {
    ShareNum::try_from(n).expect("share file number in 0..=255")
}

pub fn chk_cap(cap: &str) -> ChkReadCap {
    match Cap::parse(cap).expect("cap parses") {
        Cap::ChkRead(c) => c,
        other => panic!("not a CHK read cap: {other:?}"),
    }
}

/// A file placed on a grid by [`place`].
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

/// Put a file's shares on `grid` without the uploader: encode `data` (more than 55 bytes)
/// convergently in memory and write share i to the i-th server in Tahoe's permuted order
/// (wrapping around), with plain `allocate_buckets` + `write_share_chunk` calls.
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
    let si = cap.storage_index();
    let servers = grid.permuted(si.as_bytes());
    assert!(!servers.is_empty());
    let lease = LeaseSecrets {
        renew: [1; 32],
        cancel: [2; 32],
    };
    let mut holders = Vec::new();
    for (shnum, share) in f.shares.iter().enumerate() {
        let entry = &servers[shnum % servers.len()];
        let secret = new_upload_secret();
        let sh = cairn_core::ids::ShareNum(shnum as u8);
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
        storage_index: si.0,
        holders,
        segment_size: g.segment_size,
        num_segments: g.num_segments,
        data_offset: f.trailer.offsets.data,
        block_size: g.block_size,
    }
}

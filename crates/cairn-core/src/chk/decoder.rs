//! Verifying CHK decoder (`immutable/downloader/*`, `immutable/checker.py`).
//!
//! Every share is checked before its blocks are used: UEB hash against the cap, UEB
//! consistency, share-hash chain against the UEB's `share_root_hash`, the whole stored block
//! hash tree against the chain's leaf, the stored crypttext hash tree against
//! `crypttext_root_hash`. Then each block is checked against its leaf, and each decoded
//! segment's ciphertext against the crypttext tree. Errors name the share and the reason.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::crypto::AesCtr;
use crate::fec::Fec;
use crate::hashtree::{
    empty_leaf_hash, pair_hash, roundup_pow2, HashTreeError, IncompleteHashTree,
};
use crate::hashutil::{
    block_hash, crypttext_segment_hash, uri_extension_hash, Hash, HASH_LEN, KEY_LEN,
};

use super::layout::{hashes_of, LayoutError, ShareLayout};
use super::params::ChkGeometry;
use super::ueb::{Ueb, UebError};
use super::ChkCapInfo;
use crate::ids::ShareNum;

/// Why a share (or the file) could not be used. Share-specific variants carry `shnum`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("bad cap: {0}")]
    BadCap(String),
    #[error("share {shnum}: malformed: {reason}")]
    MalformedShare {
        shnum: ShareNum,
        reason: LayoutError,
    },
    #[error("share {shnum}: share number out of range (N={total})")]
    ShareNumberOutOfRange { shnum: ShareNum, total: u16 },
    #[error("share {shnum}: UEB hash does not match the cap")]
    BadUebHash { shnum: ShareNum },
    #[error("share {shnum}: UEB refused: {reason}")]
    BadUeb { shnum: ShareNum, reason: UebError },
    #[error("share {shnum}: share hash chain does not lead to the UEB's share root: {reason}")]
    BadShareHashChain {
        shnum: ShareNum,
        reason: HashTreeError,
    },
    #[error(
        "share {shnum}: stored block hash tree is inconsistent or does not match its share hash"
    )]
    BadBlockHashTree { shnum: ShareNum },
    #[error("share {shnum}: stored crypttext hash tree is inconsistent or does not match the UEB")]
    BadCrypttextHashTree { shnum: ShareNum },
    #[error("share {shnum}: block for segment {segment} fails its block hash")]
    BadBlockHash { shnum: ShareNum, segment: u64 },
    #[error("share {shnum}: block for segment {segment} is {got} bytes, expected {expected}")]
    WrongBlockLength {
        shnum: ShareNum,
        segment: u64,
        expected: u64,
        got: u64,
    },
    #[error("share {shnum}: not added to the decoder (or already rejected)")]
    UnknownShare { shnum: ShareNum },
    #[error("share {shnum}: block hash tree nodes refused: {reason}")]
    BadBlockHashNodes {
        shnum: ShareNum,
        reason: HashTreeError,
    },
    #[error("share {shnum}: crypttext hash tree nodes refused: {reason}")]
    BadCrypttextHashNodes {
        shnum: ShareNum,
        reason: HashTreeError,
    },
    #[error("share {shnum}: block hash of segment {segment} not fetched yet")]
    MissingBlockHash { shnum: ShareNum, segment: u64 },
    #[error("crypttext hash of segment {segment} not fetched yet")]
    MissingCrypttextHash { segment: u64 },
    #[error("segment {segment} decodes to ciphertext that fails the crypttext hash tree")]
    BadCrypttextSegment { segment: u64 },
    #[error("segment {segment} out of range ({num_segments} segments)")]
    SegmentOutOfRange { segment: u64, num_segments: u64 },
    #[error("no valid UEB seen yet")]
    NoUeb,
    #[error(
        "not enough good shares: have {have}, need {need}; failures: {}",
        show(failures)
    )]
    NotEnoughShares {
        have: usize,
        need: usize,
        failures: Vec<DecodeError>,
    },
}

fn show(f: &[DecodeError]) -> String {
    if f.is_empty() {
        return "none".into();
    }
    f.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl DecodeError {
    /// The share this error blames, if any.
    pub fn shnum(&self) -> Option<ShareNum> {
        use DecodeError::*;
        match self {
            MalformedShare { shnum, .. }
            | ShareNumberOutOfRange { shnum, .. }
            | BadUebHash { shnum }
            | BadUeb { shnum, .. }
            | BadShareHashChain { shnum, .. }
            | BadBlockHashTree { shnum }
            | BadCrypttextHashTree { shnum }
            | BadBlockHash { shnum, .. }
            | WrongBlockLength { shnum, .. }
            | BadBlockHashNodes { shnum, .. }
            | BadCrypttextHashNodes { shnum, .. }
            | MissingBlockHash { shnum, .. }
            | UnknownShare { shnum } => Some(*shnum),
            _ => None,
        }
    }
}

/// Check that `nodes` is exactly the tree Tahoe's `HashTree` builds over its own leaf row
/// for `num_leaves` real leaves (padding leaves, every parent) and that its root is `root`.
fn full_tree_ok(nodes: &[Hash], num_leaves: u64, root: &Hash) -> bool {
    let Ok(nl) = usize::try_from(num_leaves) else {
        return false;
    };
    let p = roundup_pow2(nl);
    if nodes.len() != 2 * p - 1 || nodes[0] != *root {
        return false;
    }
    let first = p - 1;
    (nl..p).all(|j| nodes[first + j] == empty_leaf_hash(j))
        && (0..first).all(|i| nodes[i] == pair_hash(&nodes[2 * i + 1], &nodes[2 * i + 2]))
}

/// Holds the verified hashes of a file and of its shares; decodes segments from blocks.
/// Use [`ChkDecoder::add_share`] for complete shares, or [`ChkDecoder::add_share_hashes`]
/// when only the hash sections were fetched (ranged reads), then
/// [`ChkDecoder::decode_segment`].
pub struct ChkDecoder {
    cap: ChkCapInfo,
    key: Option<[u8; KEY_LEN]>,
    fec: Fec,
    ueb: Option<(Ueb, ChkGeometry)>,
    /// The verified crypttext hash tree (whole, or the nodes fetched so far).
    crypttext: Option<Tree>,
    /// shnum -> its verified block hash tree (whole, or the nodes fetched so far)
    block_trees: BTreeMap<ShareNum, Tree>,
    /// Verified nodes of the share hash tree (over the N block-tree roots), once a UEB is known.
    share_tree: Option<IncompleteHashTree>,
}

/// A verified segment-indexed hash tree: every leaf (from a whole stored tree), or only
/// the nodes proven so far (ranged downloads fetch just the nodes their segments need).
#[derive(Clone, Debug)]
enum Tree {
    Leaves(Vec<Hash>),
    Partial(IncompleteHashTree),
}

impl Tree {
    fn leaf(&self, segment: u64) -> Option<Hash> {
        let i = usize::try_from(segment).ok()?;
        match self {
            Tree::Leaves(l) => l.get(i).copied(),
            Tree::Partial(t) => t.leaf(i),
        }
    }

    fn needed(&self, leaves: std::ops::Range<u64>, out: &mut BTreeSet<usize>) {
        if let Tree::Partial(t) = self {
            for leaf in leaves {
                let Ok(l) = usize::try_from(leaf) else { return };
                out.extend(t.needed_hashes(l, true));
            }
        }
    }

    /// Add proven nodes; a whole-leaves tree needs none (only equality is checked).
    fn add(&mut self, nodes: &BTreeMap<usize, Hash>) -> Result<(), HashTreeError> {
        match self {
            Tree::Leaves(l) => {
                let first = roundup_pow2(l.len()) - 1;
                for (&i, h) in nodes {
                    if i >= first && i - first < l.len() && l[i - first] != *h {
                        return Err(HashTreeError::BadHash {
                            index: i,
                            len: 2 * first + 1,
                            first_leaf: first,
                        });
                    }
                }
                Ok(())
            }
            Tree::Partial(t) => t.set_hashes(nodes, &BTreeMap::new()),
        }
    }
}

impl ChkDecoder {
    /// `key` is the read key (`None` for verify-only use: segments are then returned as ciphertext).
    pub fn new(cap: ChkCapInfo, key: Option<[u8; KEY_LEN]>) -> Result<Self, DecodeError> {
        let fec = Fec::new(cap.needed as usize, cap.total as usize)
            .map_err(|e| DecodeError::BadCap(e.to_string()))?;
        if cap.size == 0 {
            return Err(DecodeError::BadCap("CHK size 0".into()));
        }
        Ok(ChkDecoder {
            cap,
            key,
            fec,
            ueb: None,
            crypttext: None,
            block_trees: BTreeMap::new(),
            share_tree: None,
        })
    }

    pub fn cap(&self) -> &ChkCapInfo {
        &self.cap
    }

    /// The file's geometry, once a valid UEB was seen.
    pub fn geometry(&self) -> Option<&ChkGeometry> {
        self.ueb.as_ref().map(|(_, g)| g)
    }

    pub fn ueb(&self) -> Option<&Ueb> {
        self.ueb.as_ref().map(|(u, _)| u)
    }

    /// Share numbers whose block hash tree root (at least) is verified.
    pub fn shares(&self) -> impl Iterator<Item = ShareNum> + '_ {
        self.block_trees.keys().copied()
    }

    /// Check a UEB copy from share `shnum` against the cap; the first good one is kept.
    pub fn add_ueb(
        &mut self,
        shnum: ShareNum,
        ueb_bytes: &[u8],
    ) -> Result<&ChkGeometry, DecodeError> {
        if uri_extension_hash(ueb_bytes) != self.cap.ueb_hash {
            return Err(DecodeError::BadUebHash { shnum });
        }
        if self.ueb.is_none() {
            let u =
                Ueb::parse(ueb_bytes).map_err(|reason| DecodeError::BadUeb { shnum, reason })?;
            let g = u
                .validate(self.cap.needed, self.cap.total, self.cap.size)
                .map_err(|reason| DecodeError::BadUeb { shnum, reason })?;
            let mut st = IncompleteHashTree::new(self.cap.total as usize);
            st.set_root(u.share_root_hash)
                .expect("empty tree accepts a root");
            let nseg = usize::try_from(g.num_segments)
                .map_err(|_| DecodeError::BadCap("too many segments".into()))?;
            let mut ct = IncompleteHashTree::new(nseg);
            ct.set_root(u.crypttext_root_hash)
                .expect("empty tree accepts a root");
            self.share_tree = Some(st);
            self.crypttext = Some(Tree::Partial(ct));
            self.ueb = Some((u, g));
        }
        Ok(&self.ueb.as_ref().expect("just set").1)
    }

    /// Verify and keep the hashes of share `shnum`: UEB, share-hash chain, full block hash
    /// tree, full crypttext hash tree (as stored in that share).
    pub fn add_share_hashes(
        &mut self,
        shnum: ShareNum,
        ueb_bytes: &[u8],
        share_hash_chain: impl IntoIterator<Item = (u16, Hash)>,
        block_hash_tree: &[u8],
        crypttext_hash_tree: &[u8],
    ) -> Result<(), DecodeError> {
        if u16::from(shnum) >= self.cap.total {
            return Err(DecodeError::ShareNumberOutOfRange {
                shnum,
                total: self.cap.total,
            });
        }
        let g = *self.add_ueb(shnum, ueb_bytes)?;
        let (share_root, ct_root) = {
            let u = self.ueb().expect("set by add_ueb");
            (u.share_root_hash, u.crypttext_root_hash)
        };
        let tree_len = g.segment_tree_len();
        for (what, region) in [
            ("block hash tree", block_hash_tree),
            ("crypttext hash tree", crypttext_hash_tree),
        ] {
            if region.len() as u64 != tree_len {
                return Err(DecodeError::MalformedShare {
                    shnum,
                    reason: LayoutError::Truncated {
                        what,
                        need: tree_len,
                        have: region.len() as u64,
                    },
                });
            }
        }
        let block_nodes = hashes_of(block_hash_tree);
        // share hash chain -> share_root_hash; its leaf must be this share's block tree root
        let mut st = IncompleteHashTree::new(self.cap.total as usize);
        st.set_root(share_root).expect("empty tree accepts a root");
        let chain = chain_nodes(shnum, share_hash_chain, st.len())?;
        st.set_hashes(&chain, &BTreeMap::new())
            .map_err(|reason| DecodeError::BadShareHashChain { shnum, reason })?;
        let leaf = share_leaf(&st, shnum)?;
        if !full_tree_ok(&block_nodes, g.num_segments, &leaf) {
            return Err(DecodeError::BadBlockHashTree { shnum });
        }
        let first = block_nodes.len() / 2;
        let nseg = g.num_segments as usize;
        let ct_nodes = hashes_of(crypttext_hash_tree);
        // every copy must be intact, so corruption is attributed to the right share
        if !full_tree_ok(&ct_nodes, g.num_segments, &ct_root) {
            return Err(DecodeError::BadCrypttextHashTree { shnum });
        }
        // a verified tree with the same root has the same leaves (and nodes fetched
        // earlier were proven against that root); compared for clarity
        let ct_leaves = ct_nodes[first..first + nseg].to_vec();
        match &self.crypttext {
            Some(Tree::Leaves(leaves)) if ct_leaves != *leaves => {
                return Err(DecodeError::BadCrypttextHashTree { shnum })
            }
            Some(Tree::Leaves(_)) => {}
            Some(Tree::Partial(t))
                if (0..nseg).any(|j| t.leaf(j).is_some_and(|h| h != ct_leaves[j])) =>
            {
                return Err(DecodeError::BadCrypttextHashTree { shnum });
            }
            _ => self.crypttext = Some(Tree::Leaves(ct_leaves)),
        }
        self.block_trees.insert(
            shnum,
            Tree::Leaves(block_nodes[first..first + nseg].to_vec()),
        );
        Ok(())
    }

    /// Parse-level and hash-level checks of a complete share; the blocks are checked later
    /// (per segment) or with [`ChkDecoder::verify_all_blocks`].
    pub fn add_share(
        &mut self,
        shnum: ShareNum,
        layout: &ShareLayout<'_>,
    ) -> Result<(), DecodeError> {
        if u16::from(shnum) >= self.cap.total {
            return Err(DecodeError::ShareNumberOutOfRange {
                shnum,
                total: self.cap.total,
            });
        }
        let g = *self.add_ueb(shnum, layout.ueb)?;
        layout
            .check_geometry(&g)
            .map_err(|reason| DecodeError::MalformedShare { shnum, reason })?;
        self.add_share_hashes(
            shnum,
            layout.ueb,
            layout.share_hash_entries(),
            layout.block_hash_tree,
            layout.crypttext_hash_tree,
        )
    }

    /// Check one block against share `shnum`'s verified block hash tree.
    pub fn verify_block(
        &self,
        shnum: ShareNum,
        segment: u64,
        block: &[u8],
    ) -> Result<(), DecodeError> {
        let g = self.geometry().ok_or(DecodeError::NoUeb)?;
        if segment >= g.num_segments {
            return Err(DecodeError::SegmentOutOfRange {
                segment,
                num_segments: g.num_segments,
            });
        }
        let tree = self
            .block_trees
            .get(&shnum)
            .ok_or(DecodeError::UnknownShare { shnum })?;
        let leaf = tree
            .leaf(segment)
            .ok_or(DecodeError::MissingBlockHash { shnum, segment })?;
        let expected = g.block_len(segment);
        if block.len() as u64 != expected {
            return Err(DecodeError::WrongBlockLength {
                shnum,
                segment,
                expected,
                got: block.len() as u64,
            });
        }
        if block_hash(block) != leaf {
            return Err(DecodeError::BadBlockHash { shnum, segment });
        }
        Ok(())
    }

    /// Check every block of a complete, added share (the verifier's job).
    pub fn verify_all_blocks(
        &self,
        shnum: ShareNum,
        layout: &ShareLayout<'_>,
    ) -> Result<(), DecodeError> {
        let g = *self.geometry().ok_or(DecodeError::NoUeb)?;
        for seg in 0..g.num_segments {
            let block = layout.block(&g, seg).ok_or(DecodeError::MalformedShare {
                shnum,
                reason: LayoutError::Truncated {
                    what: "block",
                    need: g.share_size,
                    have: layout.data.len() as u64,
                },
            })?;
            self.verify_block(shnum, seg, block)?;
        }
        Ok(())
    }

    /// Decode segment `segment` from at least `k` blocks of distinct verified shares (extra
    /// blocks are ignored). Every block used is verified; the ciphertext is checked against
    /// the crypttext hash tree, then decrypted (if the decoder has the key) and appended to
    /// `out`. Returns the number of bytes appended.
    pub fn decode_segment(
        &self,
        segment: u64,
        blocks: &[(ShareNum, &[u8])],
        out: &mut Vec<u8>,
    ) -> Result<usize, DecodeError> {
        let g = *self.geometry().ok_or(DecodeError::NoUeb)?;
        let k = g.needed as usize;
        let mut chosen: Vec<(usize, &[u8])> = Vec::with_capacity(k);
        for &(shnum, block) in blocks {
            if chosen.len() == k {
                break;
            }
            if chosen.iter().any(|(s, _)| *s == shnum.get()) {
                continue;
            }
            self.verify_block(shnum, segment, block)?;
            chosen.push((shnum.get(), block));
        }
        if chosen.len() < k {
            return Err(DecodeError::NotEnoughShares {
                have: chosen.len(),
                need: k,
                failures: Vec::new(),
            });
        }
        self.decode_verified(&g, segment, &chosen, out)
    }

    fn decode_verified(
        &self,
        g: &ChkGeometry,
        segment: u64,
        chosen: &[(usize, &[u8])],
        out: &mut Vec<u8>,
    ) -> Result<usize, DecodeError> {
        let expected = self
            .crypttext_hash(segment)
            .ok_or(DecodeError::MissingCrypttextHash { segment })?;
        decode_blocks(
            &self.fec,
            self.key.as_ref(),
            g,
            segment,
            chosen,
            &expected,
            out,
        )
    }

    // ---- incremental hashes (downloads that read only the hash-tree nodes they need) ----

    /// Verify share `shnum`'s share-hash chain (`(node index, hash)` entries as stored, leaf
    /// included, any order) against the UEB's share root; on success the share's block
    /// hash tree root is known and its nodes can be added with
    /// [`ChkDecoder::add_block_hashes`]. Needs a UEB ([`ChkDecoder::add_ueb`]).
    pub fn add_share_hash_chain(
        &mut self,
        shnum: ShareNum,
        chain: impl IntoIterator<Item = (u16, Hash)>,
    ) -> Result<(), DecodeError> {
        if u16::from(shnum) >= self.cap.total {
            return Err(DecodeError::ShareNumberOutOfRange {
                shnum,
                total: self.cap.total,
            });
        }
        let g = *self.geometry().ok_or(DecodeError::NoUeb)?;
        let st = self.share_tree.as_mut().ok_or(DecodeError::NoUeb)?;
        let mut nodes = chain_nodes(shnum, chain, st.len())?;
        // Only the nodes this share's proof needs are taken (extra entries are ignored).
        let needed =
            IncompleteHashTree::new(self.cap.total as usize).needed_hashes(shnum.get(), true);
        nodes.retain(|i, _| needed.contains(i));
        st.set_hashes(&nodes, &BTreeMap::new())
            .map_err(|reason| DecodeError::BadShareHashChain { shnum, reason })?;
        let leaf = share_leaf(st, shnum)?;
        if let std::collections::btree_map::Entry::Vacant(e) = self.block_trees.entry(shnum) {
            let nseg = usize::try_from(g.num_segments)
                .map_err(|_| DecodeError::BadCap("too many segments".into()))?;
            let mut t = IncompleteHashTree::new(nseg);
            t.set_root(leaf).expect("empty tree accepts a root");
            e.insert(Tree::Partial(t));
        }
        Ok(())
    }

    /// Whether share `shnum`'s block hash tree root is verified.
    pub fn has_share(&self, shnum: ShareNum) -> bool {
        self.block_trees.contains_key(&shnum)
    }

    /// The verified block hash of `segment` in share `shnum`, if known.
    pub fn block_hash(&self, shnum: ShareNum, segment: u64) -> Option<Hash> {
        self.block_trees.get(&shnum)?.leaf(segment)
    }

    /// The verified crypttext hash of `segment`, if known.
    pub fn crypttext_hash(&self, segment: u64) -> Option<Hash> {
        self.crypttext.as_ref()?.leaf(segment)
    }

    /// Node indices of share `shnum`'s block hash tree still needed to verify the blocks
    /// of `segments` (leaves included). Empty for an unknown share.
    pub fn block_hashes_needed(
        &self,
        shnum: ShareNum,
        segments: std::ops::Range<u64>,
    ) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        if let Some(t) = self.block_trees.get(&shnum) {
            t.needed(self.clamp_segments(segments), &mut out);
        }
        out
    }

    /// Node indices of the crypttext hash tree still needed for `segments` (leaves included).
    pub fn crypttext_hashes_needed(&self, segments: std::ops::Range<u64>) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        if let Some(t) = &self.crypttext {
            t.needed(self.clamp_segments(segments), &mut out);
        }
        out
    }

    fn clamp_segments(&self, s: std::ops::Range<u64>) -> std::ops::Range<u64> {
        let n = self.geometry().map_or(0, |g| g.num_segments);
        s.start.min(n)..s.end.min(n)
    }

    /// Add nodes of share `shnum`'s block hash tree (`node index -> hash`, e.g. read from
    /// the share's block-hash region). All or nothing: every node must be proven against
    /// the verified root; on error nothing is kept and the error blames `shnum`.
    pub fn add_block_hashes(
        &mut self,
        shnum: ShareNum,
        nodes: &BTreeMap<usize, Hash>,
    ) -> Result<(), DecodeError> {
        let t = self
            .block_trees
            .get_mut(&shnum)
            .ok_or(DecodeError::UnknownShare { shnum })?;
        t.add(nodes)
            .map_err(|reason| DecodeError::BadBlockHashNodes { shnum, reason })
    }

    /// [`ChkDecoder::add_block_hashes`] from bytes read out of the share's block hash tree
    /// region, starting at node `first_node`: of the nodes in `region`, those in `wanted`
    /// are added (normally [`ChkDecoder::block_hashes_needed`]); a region that lacks a
    /// wanted node is refused as truncated.
    pub fn add_block_hash_region(
        &mut self,
        shnum: ShareNum,
        first_node: usize,
        region: &[u8],
        wanted: &BTreeSet<usize>,
    ) -> Result<(), DecodeError> {
        let nodes = nodes_from_region(first_node, region, wanted)
            .map_err(|reason| DecodeError::MalformedShare { shnum, reason })?;
        self.add_block_hashes(shnum, &nodes)
    }

    /// Add crypttext hash tree nodes (from any share: the tree is the same in all of them).
    /// All or nothing, like [`ChkDecoder::add_block_hashes`]; `shnum` names the share the
    /// nodes came from, for the error.
    pub fn add_crypttext_hashes(
        &mut self,
        shnum: ShareNum,
        nodes: &BTreeMap<usize, Hash>,
    ) -> Result<(), DecodeError> {
        let t = self.crypttext.as_mut().ok_or(DecodeError::NoUeb)?;
        t.add(nodes)
            .map_err(|reason| DecodeError::BadCrypttextHashNodes { shnum, reason })
    }

    /// A `Send + Sync` decoder for segments whose blocks are already verified, to run
    /// off the thread that holds this `ChkDecoder`. Needs a UEB.
    pub fn segment_decoder(&self) -> Option<SegmentDecoder> {
        let g = *self.geometry()?;
        Some(SegmentDecoder {
            fec: self.fec.clone(),
            key: self.key,
            geometry: g,
        })
    }
}

/// Gather the `wanted` nodes out of a region of a flattened hash tree starting at node
/// `first_node`.
pub fn nodes_from_region(
    first_node: usize,
    region: &[u8],
    wanted: &BTreeSet<usize>,
) -> Result<BTreeMap<usize, Hash>, LayoutError> {
    let have = region.len() / HASH_LEN;
    let mut out = BTreeMap::new();
    for &i in wanted {
        if i < first_node {
            continue;
        }
        let j = i - first_node;
        if j >= have {
            return Err(LayoutError::Truncated {
                what: "hash tree region",
                need: ((j + 1) * HASH_LEN) as u64,
                have: region.len() as u64,
            });
        }
        let mut h = [0u8; HASH_LEN];
        h.copy_from_slice(&region[j * HASH_LEN..(j + 1) * HASH_LEN]);
        out.insert(i, h);
    }
    Ok(out)
}

/// Decodes one segment from `k` verified blocks: erasure decoding, the crypttext hash
/// check, decryption. Cheap to clone, `Send + Sync`: made by [`ChkDecoder::segment_decoder`].
#[derive(Clone, Debug)]
pub struct SegmentDecoder {
    fec: Fec,
    key: Option<[u8; KEY_LEN]>,
    geometry: ChkGeometry,
}

impl SegmentDecoder {
    pub fn geometry(&self) -> &ChkGeometry {
        &self.geometry
    }

    /// Decode `segment` from `blocks` (`(shnum, block)`, at least `k` with distinct share
    /// numbers, **already verified** against their block hashes), check the ciphertext
    /// against `crypttext_hash` (the verified leaf) and append the plaintext (or the
    /// ciphertext, without a key) to `out`. Returns the number of bytes appended.
    pub fn decode(
        &self,
        segment: u64,
        blocks: &[(ShareNum, &[u8])],
        crypttext_hash: &Hash,
        out: &mut Vec<u8>,
    ) -> Result<usize, DecodeError> {
        let g = &self.geometry;
        if segment >= g.num_segments {
            return Err(DecodeError::SegmentOutOfRange {
                segment,
                num_segments: g.num_segments,
            });
        }
        let k = g.needed as usize;
        let bl = g.block_len(segment);
        let mut chosen: Vec<(usize, &[u8])> = Vec::with_capacity(k);
        for &(shnum, block) in blocks {
            if chosen.len() == k {
                break;
            }
            if u16::from(shnum) >= g.total || chosen.iter().any(|(s, _)| *s == shnum.get()) {
                continue;
            }
            if block.len() as u64 != bl {
                return Err(DecodeError::WrongBlockLength {
                    shnum,
                    segment,
                    expected: bl,
                    got: block.len() as u64,
                });
            }
            chosen.push((shnum.get(), block));
        }
        if chosen.len() < k {
            return Err(DecodeError::NotEnoughShares {
                have: chosen.len(),
                need: k,
                failures: Vec::new(),
            });
        }
        decode_blocks(
            &self.fec,
            self.key.as_ref(),
            g,
            segment,
            &chosen,
            crypttext_hash,
            out,
        )
    }
}

fn decode_blocks(
    fec: &Fec,
    key: Option<&[u8; KEY_LEN]>,
    g: &ChkGeometry,
    segment: u64,
    chosen: &[(usize, &[u8])],
    expected: &Hash,
    out: &mut Vec<u8>,
) -> Result<usize, DecodeError> {
    let k = g.needed as usize;
    let bl = g.block_len(segment) as usize;
    let seg_len = g.segment_len(segment) as usize;
    let start = out.len();
    out.resize(start + bl * k, 0);
    {
        let mut pieces: Vec<&mut [u8]> = out[start..].chunks_exact_mut(bl.max(1)).take(k).collect();
        if bl > 0 {
            if let Err(e) = fec.decode(chosen, &mut pieces) {
                out.truncate(start);
                return Err(DecodeError::BadCap(format!("erasure decoding failed: {e}")));
            }
        }
    }
    out.truncate(start + seg_len);
    if crypttext_segment_hash(&out[start..]) != *expected {
        out.truncate(start);
        return Err(DecodeError::BadCrypttextSegment { segment });
    }
    if let Some(key) = key {
        AesCtr::at_offset(key, g.segment_offset(segment)).apply(&mut out[start..]);
    }
    Ok(seg_len)
}

/// Decode a whole file from complete shares `(shnum, share data)` gathered from any number
/// of servers (duplicates allowed). Bad shares are skipped and others used instead; if fewer
/// than `k` good shares remain for some segment, the error lists every failure.
/// With `key = None` the ciphertext is returned.
pub fn decode(
    cap: &ChkCapInfo,
    key: Option<[u8; KEY_LEN]>,
    shares: &[(ShareNum, &[u8])],
) -> Result<Vec<u8>, DecodeError> {
    let mut dec = ChkDecoder::new(*cap, key)?;
    let mut failures = Vec::new();
    // shnum -> candidate layouts (several copies possible)
    let mut cands: BTreeMap<ShareNum, Vec<ShareLayout<'_>>> = BTreeMap::new();
    for &(shnum, bytes) in shares {
        let r = ShareLayout::parse(bytes)
            .map_err(|reason| DecodeError::MalformedShare { shnum, reason })
            .and_then(|l| dec.add_share(shnum, &l).map(|_| l));
        match r {
            Ok(l) => cands.entry(shnum).or_default().push(l),
            Err(e) => failures.push(e),
        }
    }
    let k = cap.needed as usize;
    let not_enough = |cands: &BTreeMap<ShareNum, Vec<ShareLayout<'_>>>,
                      failures: &Vec<DecodeError>| {
        DecodeError::NotEnoughShares {
            have: cands.len(),
            need: k,
            failures: failures.clone(),
        }
    };
    if cands.len() < k {
        return Err(not_enough(&cands, &failures));
    }
    let g = *dec.geometry().expect("a share was accepted");
    // k distinct good shares hold >= size bytes (check_geometry), so this is bounded by input
    let mut out = Vec::with_capacity(g.file_size as usize);
    for seg in 0..g.num_segments {
        loop {
            if cands.len() < k {
                return Err(not_enough(&cands, &failures));
            }
            let mut chosen: Vec<(usize, &[u8])> = Vec::with_capacity(k);
            let mut bad: Option<(ShareNum, DecodeError)> = None;
            for (&shnum, copies) in cands.iter() {
                if chosen.len() == k {
                    break;
                }
                let l = &copies[0];
                let r = l
                    .block(&g, seg)
                    .ok_or(DecodeError::WrongBlockLength {
                        shnum,
                        segment: seg,
                        expected: g.block_len(seg),
                        got: 0,
                    })
                    .and_then(|b| dec.verify_block(shnum, seg, b).map(|_| b));
                match r {
                    Ok(b) => chosen.push((shnum.get(), b)),
                    Err(e) => {
                        bad = Some((shnum, e));
                        break;
                    }
                }
            }
            if let Some((shnum, e)) = bad {
                failures.push(e);
                let copies = cands.get_mut(&shnum).expect("present");
                copies.remove(0);
                if copies.is_empty() {
                    cands.remove(&shnum);
                }
                continue;
            }
            dec.decode_verified(&g, seg, &chosen, &mut out)?;
            break;
        }
    }
    Ok(out)
}

/// Fully verify one complete share (Tahoe's verifier): everything `add_share` checks plus
/// every block. Needs no read key.
pub fn verify_share(cap: &ChkCapInfo, shnum: ShareNum, share: &[u8]) -> Result<(), DecodeError> {
    let mut dec = ChkDecoder::new(*cap, None)?;
    let l = ShareLayout::parse(share)
        .map_err(|reason| DecodeError::MalformedShare { shnum, reason })?;
    dec.add_share(shnum, &l)?;
    dec.verify_all_blocks(shnum, &l)
}

/// Share `shnum`'s hash chain as tree nodes, for a share hash tree of `tree_len` nodes;
/// an index given twice with different hashes is a bad chain.
fn chain_nodes(
    shnum: ShareNum,
    chain: impl IntoIterator<Item = (u16, Hash)>,
    tree_len: usize,
) -> Result<BTreeMap<usize, Hash>, DecodeError> {
    let mut nodes = BTreeMap::new();
    for (i, h) in chain {
        if nodes.insert(i as usize, h).is_some_and(|old| old != h) {
            return Err(DecodeError::BadShareHashChain {
                shnum,
                reason: HashTreeError::BadHash {
                    index: i as usize,
                    len: tree_len,
                    first_leaf: tree_len / 2,
                },
            });
        }
    }
    Ok(nodes)
}

/// The share-hash-tree leaf of share `shnum`, once its chain has been set.
fn share_leaf(st: &IncompleteHashTree, shnum: ShareNum) -> Result<Hash, DecodeError> {
    let missing = st.len() / 2 + shnum.get();
    st.leaf(shnum.get()).ok_or(DecodeError::BadShareHashChain {
        shnum,
        reason: HashTreeError::NotEnoughHashes {
            index: missing,
            missing,
        },
    })
}

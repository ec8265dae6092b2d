//! MDMF in-place update: replace a byte range of an MDMF file by rewriting only the
//! affected segments, the block-hash-tree nodes above them, the share hash chain, the
//! signature and the header (Tahoe's `MutableFileVersion.update` → `_do_update_update`,
//! `Publish.update`, `TransformingUploadable`; `mutable/filenode.py`, `mutable/publish.py`).
//!
//! The result is byte for byte what a full [`encode`](super::codec::encode) of the new
//! plaintext writes, given the same salts for untouched segments, the same seqnum and the
//! same signing randomness: untouched segments keep their blocks and salts, so only the
//! affected leaves of each block hash tree change.
//!
//! # Two steps
//! 1. [`plan`]`(old_header, offset, len)` says which segments are affected
//!    ([`UpdatePlan::segments`], including segments a write past the end creates), which
//!    old plaintext the caller must supply ([`UpdatePlan::keep_head`] /
//!    [`UpdatePlan::keep_tail`], read from the old segments [`UpdatePlan::old_segments`]
//!    with any verified ranged read), and which old block-hash-tree nodes to read from
//!    **every** share ([`UpdatePlan::old_block_hash_nodes`], as byte ranges
//!    [`UpdatePlan::block_hash_node_reads`]).
//! 2. [`apply`]`(plan, old shares, new plaintext of the affected segments, their salts,
//!    seqnum, signing key, rng)` returns one write vector per share.
//!
//! Like Tahoe, `offset` must be `<= data_length` (no holes); SDMF files have one segment
//! and are republished whole instead.
//!
//! # What a driver reads, per share
//! Each share's new block-tree root is the leaf of the share hash tree, and **every** root
//! changes (every share holds a block of each affected segment), so the new share hash
//! tree, hence every share's chain and the signed root, needs all N new block-tree roots.
//! Share `s`'s new root needs its own old hashes for the untouched segments, which only
//! share `s` has (rebuilding them from other shares means decoding the whole file). So a
//! driver must read from **all N shares**; if one is unreachable, publish the whole file
//! instead (Tahoe's `Publish.update` also needs every share's block hash tree).
//!
//! From each share (on top of the first bytes the servermap update already read: the
//! 123-byte header with the offsets table, and the share hash chain at
//! `o_share_hash_chain`, which lies inside Tahoe's first 4000-byte read):
//! * in place (the data length does not move the block hash tree): the roots of the
//!   largest subtrees whose leaves are all untouched (the siblings of the affected paths,
//!   at most 2·log2(P) nodes), plus, so that the old hashes can be **verified** against the
//!   signed old root through the old share hash chain, the roots of the largest subtrees
//!   whose leaves are all affected (also ≤ 2·log2(P)). 32 bytes each. The strict minimum
//!   without verification would be the first set only; cairn refuses unverified hashes.
//! * when the file grows so that the share data grows (the block hash tree moves, and is
//!   rewritten whole): every old node whose leaves are all untouched (the whole left part
//!   of the tree, below `first segment`), plus the same verification roots. At most the
//!   whole old block hash tree, 32·(2P−1) bytes.
//!
//! Tahoe itself reads the whole block hash tree and the first and last affected segments
//! of every share. [`apply`] accepts any superset of the listed nodes (e.g. the whole tree).
//!
//! # What an update writes, per share
//! ```text
//! offset  region                              in place        file grows
//!      0  version, seqnum, root_hash (41)     rewritten       rewritten
//!     41  k, N, segsize (10)                  -               rewritten (same bytes)
//!     51  data_length (8)                     -               rewritten
//!     59  offsets, first six (48)             -               -
//!    107  o_block_hash_tree, o_EOF (16)       -               rewritten if they move
//!    123  encrypted private key               -               -
//!         share hash chain (34·log2 N)        rewritten       rewritten
//!         signature (256)                     rewritten       rewritten
//!         verification key, zero gap          -               -
//!   2167  salt‖block of untouched segments    -               -
//!         salt‖block of affected segments     rewritten       rewritten (one run to the
//!                                                             new o_block_hash_tree)
//!         block hash tree                     changed nodes   whole tree, at its new
//!                                             (one run per    offset: everything after
//!                                             tree level)     the first affected block
//! ```
//! In place, per share: the affected blocks with their salts, about log2(P) runs of
//! hashes, 34·log2(N) + 256 + 41 bytes. When the file grows every byte from the first
//! affected block to the new end of share is written; the shares only grow, so no stale
//! bytes remain past the new end.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use rand_core::CryptoRngCore;
use thiserror::Error;

use super::header::{parse_share_hash_chain, MdmfOffsets};
use super::keys::{KeyError, MutableKeys, SigningKey};
use super::layout::{
    ShareHeader, MDMF_CHECKSTRING_LEN, MDMF_HEADER_LEN, MDMF_SHARE_DATA_OFFSET,
    MDMF_SIGNED_PREFIX_LEN, SHARE_HASH_ENTRY_LEN,
};
use super::params::{ParamsError, SegmentParams};
use super::{MutableFormat, SALT_LEN};
use crate::crypto::aes_ctr;
use crate::fec::{Fec, FecError};
use crate::hashtree::{empty_leaf_hash, pair_hash, roundup_pow2, tree_len, HashTree};
use crate::hashutil::{block_hash, ssk_readkey_data_hash, Hash, HASH_LEN};
use crate::ids::ShareNum;

/// Where the offsets of the block hash tree and of the end of the share are (`>QQ` at 107).
const BHT_OFFSET_FIELD: u64 = 107;

/// Why an update could not be planned or applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UpdateError {
    #[error("in-place update needs an MDMF file; republish SDMF whole")]
    NotMdmf,
    #[error("update at offset {offset} is past the end of the {data_length}-byte file")]
    OffsetPastEnd { offset: u64, data_length: u64 },
    #[error("offset + length overflows")]
    TooLarge,
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error("{what}: expected {expected} bytes, got {got}")]
    WrongLength {
        what: &'static str,
        expected: u64,
        got: u64,
    },
    #[error("need {expected} salts, got {got}")]
    WrongSaltCount { expected: usize, got: usize },
    #[error("new seqnum {new} is not above the old {old}")]
    SeqnumNotIncreasing { old: u64, new: u64 },
    #[error("need exactly one old share per share number 0..{n}")]
    WrongShareSet { n: u8 },
    /// The old share is not laid out as Tahoe writes it (or its fields have other sizes
    /// than the new ones): publish the whole file instead.
    #[error("share {shnum}: unsupported layout: {reason}")]
    UnsupportedLayout {
        shnum: ShareNum,
        reason: &'static str,
    },
    #[error("share {shnum}: block hash tree node {index} missing")]
    MissingNode { shnum: ShareNum, index: usize },
    /// The old hashes read from this share do not lead to the signed old root.
    #[error("share {shnum}: {reason}")]
    BadShare {
        shnum: ShareNum,
        reason: &'static str,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Fec(#[from] FecError),
}

/// What an update of `len` bytes at `offset` touches; from [`plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdatePlan {
    /// The version being updated (its signature already verified by the servermap).
    pub old_header: ShareHeader,
    pub old_params: SegmentParams,
    /// Geometry after the update (`data_length = max(old, offset + len)`).
    pub new_params: SegmentParams,
    pub offset: u64,
    pub len: u64,
    /// Segments (of the new file) that are re-encrypted and re-encoded, with a new salt
    /// each. Empty for `len == 0` (then only seqnum, chain and signature are rewritten).
    pub segments: Range<u64>,
    /// Old plaintext kept before the new bytes in the first affected segment.
    pub keep_head: Range<u64>,
    /// Old plaintext kept after the new bytes in the last affected segment.
    pub keep_tail: Range<u64>,
    /// Old segments holding `keep_head` / `keep_tail` (0, 1 or 2), to read from k shares.
    pub old_segments: Vec<u64>,
    /// The share data grows, so the block hash tree moves and is written whole.
    pub rewrites_block_hash_tree: bool,
    /// Old block-hash-tree node indices to read from every share, sorted.
    pub old_block_hash_nodes: Vec<usize>,
}

/// Plan an update of `len` new bytes at `offset` of the MDMF version `header`.
pub fn plan(header: &ShareHeader, offset: u64, len: u64) -> Result<UpdatePlan, UpdateError> {
    if header.format != MutableFormat::Mdmf {
        return Err(UpdateError::NotMdmf);
    }
    let old_params = header.params()?;
    let old_len = header.data_length;
    if offset > old_len {
        return Err(UpdateError::OffsetPastEnd {
            offset,
            data_length: old_len,
        });
    }
    let end_byte = offset.checked_add(len).ok_or(UpdateError::TooLarge)?;
    let new_params = SegmentParams::from_header(
        MutableFormat::Mdmf,
        header.k,
        header.n,
        header.segment_size,
        old_len.max(end_byte),
    )?;
    let segsize = header.segment_size;
    let segments = if len == 0 {
        // from_header refused segsize 0 with data, so this is only 0 for an empty file.
        let s = offset.checked_div(segsize).unwrap_or(0);
        s..s
    } else {
        offset / segsize..(end_byte - 1) / segsize + 1
    };
    let keep_head = if segments.is_empty() {
        offset..offset
    } else {
        segments.start * segsize..offset
    };
    let tail_end = old_len.min(segments.end.saturating_mul(segsize));
    let keep_tail = if segments.is_empty() || tail_end <= end_byte {
        let e = end_byte.min(old_len);
        e..e
    } else {
        end_byte..tail_end
    };
    let mut old_segments = Vec::new();
    if !keep_head.is_empty() {
        old_segments.push(segments.start);
    }
    if !keep_tail.is_empty() && old_segments.last() != Some(&(segments.end - 1)) {
        old_segments.push(segments.end - 1);
    }
    let geo = Geometry::new(&old_params, &new_params, &segments);
    let mut needed = BTreeSet::new();
    let mut record = |i: usize| -> Result<Hash, usize> {
        needed.insert(i);
        Ok([0; HASH_LEN])
    };
    geo.old_root(0, &mut record).expect("recording never fails");
    geo.new_tree(&[], &mut record, false)
        .expect("recording never fails");
    Ok(UpdatePlan {
        old_header: header.clone(),
        old_params,
        new_params,
        offset,
        len,
        segments,
        keep_head,
        keep_tail,
        old_segments,
        rewrites_block_hash_tree: geo.moving,
        old_block_hash_nodes: needed.into_iter().collect(),
    })
}

impl UpdatePlan {
    /// Data length after the update.
    pub fn new_data_length(&self) -> u64 {
        self.new_params.data_length
    }

    /// Number of new salts [`apply`] needs (one per affected segment).
    pub fn num_salts(&self) -> usize {
        (self.segments.end - self.segments.start) as usize
    }

    /// Plaintext bytes of the affected segments in the new file:
    /// `keep_head.len() + len + keep_tail.len()`.
    pub fn segment_plaintext_len(&self) -> u64 {
        self.segments
            .clone()
            .map(|s| self.new_params.segment_data_len(s))
            .sum()
    }

    /// Join the old head, the new bytes and the old tail into the plaintext [`apply`] takes.
    pub fn segment_plaintext(
        &self,
        old_head: &[u8],
        new: &[u8],
        old_tail: &[u8],
    ) -> Result<Vec<u8>, UpdateError> {
        for (what, range_len, got) in [
            (
                "old head",
                self.keep_head.end - self.keep_head.start,
                old_head.len(),
            ),
            ("new data", self.len, new.len()),
            (
                "old tail",
                self.keep_tail.end - self.keep_tail.start,
                old_tail.len(),
            ),
        ] {
            if range_len != got as u64 {
                return Err(UpdateError::WrongLength {
                    what,
                    expected: range_len,
                    got: got as u64,
                });
            }
        }
        Ok([old_head, new, old_tail].concat())
    }

    /// Where the old block hash tree starts in each share (Tahoe's layout).
    pub fn old_block_hash_tree_offset(&self) -> u64 {
        MDMF_SHARE_DATA_OFFSET as u64 + self.old_params.mdmf_share_data_size()
    }

    /// `(offset, length)` reads, in share bytes, of [`Self::old_block_hash_nodes`]
    /// (adjacent nodes merged).
    pub fn block_hash_node_reads(&self) -> Vec<(u64, u64)> {
        let base = self.old_block_hash_tree_offset();
        runs(&self.old_block_hash_nodes)
            .into_iter()
            .map(|r| {
                (
                    base + (r.start * HASH_LEN) as u64,
                    (r.len() * HASH_LEN) as u64,
                )
            })
            .collect()
    }

    /// `(offset, length)` of old segment `seg`'s salt and block in each share.
    pub fn old_segment_read(&self, seg: u64) -> (u64, u64) {
        let p = &self.old_params;
        (
            MDMF_SHARE_DATA_OFFSET as u64 + seg * (p.block_size + SALT_LEN as u64),
            SALT_LEN as u64 + p.block_len(seg),
        )
    }
}

/// What [`apply`] needs from one old share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldShare {
    pub shnum: ShareNum,
    /// The share's first 123 bytes: signed header and offsets table.
    pub prefix: Vec<u8>,
    /// The old share hash chain as stored (from `o_share_hash_chain` to `o_signature`).
    pub share_hash_chain: Vec<(u16, Hash)>,
    /// Old block-hash-tree nodes by index: at least [`UpdatePlan::old_block_hash_nodes`].
    pub block_hash_nodes: BTreeMap<usize, Hash>,
}

impl OldShare {
    /// Take exactly what `plan` says to read out of a whole old share's bytes (for tests,
    /// and drivers that hold whole shares).
    pub fn extract(
        plan: &UpdatePlan,
        shnum: ShareNum,
        share: &[u8],
    ) -> Result<OldShare, UpdateError> {
        OldShare::from_reads(plan, shnum, share, 0, share)
    }

    /// Build from two reads of one share: `head`, its first bytes (at least up to the end
    /// of the share hash chain; the servermap's 4000-byte first read is enough for
    /// Tahoe's keys and N up to 256), and `nodes`, the bytes at share offset `nodes_at`
    /// covering every range of [`UpdatePlan::block_hash_node_reads`].
    pub fn from_reads(
        plan: &UpdatePlan,
        shnum: ShareNum,
        head: &[u8],
        nodes_at: u64,
        nodes: &[u8],
    ) -> Result<OldShare, UpdateError> {
        let short = |what: &'static str, need: u64, got: usize| UpdateError::WrongLength {
            what,
            expected: need,
            got: got as u64,
        };
        let prefix = head.get(..MDMF_HEADER_LEN).ok_or(short(
            "old share's first bytes",
            MDMF_HEADER_LEN as u64,
            head.len(),
        ))?;
        let offsets = MdmfOffsets::parse(prefix).map_err(|_| {
            short(
                "old share's first bytes",
                MDMF_HEADER_LEN as u64,
                head.len(),
            )
        })?;
        let chain = usize::try_from(offsets.share_hash_chain)
            .ok()
            .zip(usize::try_from(offsets.signature).ok())
            .and_then(|(a, b)| head.get(a..b))
            .ok_or(short(
                "old share's first bytes",
                offsets.signature,
                head.len(),
            ))?;
        let share_hash_chain =
            parse_share_hash_chain(chain).map_err(|_| UpdateError::BadShare {
                shnum,
                reason: "share hash chain length is not a multiple of 34",
            })?;
        let base = plan.old_block_hash_tree_offset();
        let mut block_hash_nodes = BTreeMap::new();
        for &i in &plan.old_block_hash_nodes {
            let at = base + (i * HASH_LEN) as u64;
            let h = at
                .checked_sub(nodes_at)
                .and_then(|rel| usize::try_from(rel).ok())
                .and_then(|rel| nodes.get(rel..rel + HASH_LEN))
                .ok_or(short(
                    "old share's block hash tree read",
                    at + HASH_LEN as u64 - nodes_at.min(at),
                    nodes.len(),
                ))?;
            let h = crate::bytes::Reader::new(h)
                .array()
                .map_err(|_| short("old share's block hash tree read", HASH_LEN as u64, h.len()))?;
            block_hash_nodes.insert(i, h);
        }
        Ok(OldShare {
            shnum,
            prefix: prefix.to_vec(),
            share_hash_chain,
            block_hash_nodes,
        })
    }
}

/// Writes for one share: `(offset, bytes)` in order, for one test-and-write request.
pub type WriteVector = Vec<(u64, Vec<u8>)>;

/// What [`apply`] produced: the new version's header (its checkstring is what the
/// publish tests for afterwards) and every share's writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub header: ShareHeader,
    /// `(shnum, writes)` in share-number order.
    pub writes: Vec<(ShareNum, WriteVector)>,
}

/// Encode the affected segments and produce every share's write vector.
///
/// * `old`: one [`OldShare`] for each share number `0..N` (any order);
/// * `segment_plaintext`: the new plaintext of [`UpdatePlan::segments`] (see
///   [`UpdatePlan::segment_plaintext`]); `salts`: one fresh salt per affected segment;
/// * `seqnum`: the new sequence number (above the old); `key`: the file's signing key;
///   `rng`: used only for the signature (PSS salt).
///
/// The old hashes of every share are verified against the signed old root hash first.
/// Returns the new header and `(shnum, writes)` in share-number order.
pub fn apply(
    plan: &UpdatePlan,
    old: &[OldShare],
    segment_plaintext: &[u8],
    salts: &[[u8; SALT_LEN]],
    seqnum: u64,
    key: &SigningKey,
    rng: &mut impl CryptoRngCore,
) -> Result<Update, UpdateError> {
    let oh = &plan.old_header;
    let n = usize::from(oh.n);
    let k = usize::from(oh.k);
    if seqnum <= oh.seqnum {
        return Err(UpdateError::SeqnumNotIncreasing {
            old: oh.seqnum,
            new: seqnum,
        });
    }
    if salts.len() != plan.num_salts() {
        return Err(UpdateError::WrongSaltCount {
            expected: plan.num_salts(),
            got: salts.len(),
        });
    }
    let want = plan.segment_plaintext_len();
    if segment_plaintext.len() as u64 != want {
        return Err(UpdateError::WrongLength {
            what: "segment plaintext",
            expected: want,
            got: segment_plaintext.len() as u64,
        });
    }
    let mut by_shnum: Vec<Option<&OldShare>> = vec![None; n];
    for s in old {
        match by_shnum.get_mut(s.shnum.get()) {
            Some(slot @ None) => *slot = Some(s),
            _ => return Err(UpdateError::WrongShareSet { n: oh.n }),
        }
    }
    let old: Vec<&OldShare> = by_shnum
        .into_iter()
        .collect::<Option<_>>()
        .ok_or(UpdateError::WrongShareSet { n: oh.n })?;

    let geo = Geometry::new(&plan.old_params, &plan.new_params, &plan.segments);
    let chain_entries = roundup_pow2(n).trailing_zeros() as usize;
    let old_offsets = expected_offsets(&plan.old_params);
    let new_offsets = expected_offsets(&plan.new_params);

    // Check each old share's layout and verify its hashes against the signed old root.
    let mut share_offsets = Vec::with_capacity(n);
    for s in &old {
        let shnum = s.shnum;
        let unsupported = |reason| UpdateError::UnsupportedLayout { shnum, reason };
        if s.prefix.len() != MDMF_HEADER_LEN {
            return Err(unsupported("prefix is not the 123-byte header"));
        }
        if s.prefix[..MDMF_SIGNED_PREFIX_LEN] != oh.signed_prefix()[..] {
            return Err(UpdateError::BadShare {
                shnum,
                reason: "header is not the version being updated",
            });
        }
        let o = MdmfOffsets::parse(&s.prefix)
            .map_err(|_| unsupported("prefix is not the 123-byte header"))?;
        if o.enc_privkey != MDMF_HEADER_LEN as u64
            || o.share_data != old_offsets.share_data
            || o.block_hash_tree != old_offsets.block_hash_tree
            || o.eof != old_offsets.eof
        {
            return Err(unsupported("offsets differ from Tahoe's layout"));
        }
        if !(o.enc_privkey <= o.share_hash_chain
            && o.share_hash_chain <= o.signature
            && o.signature <= o.verification_key
            && o.verification_key <= o.verification_key_end
            && o.verification_key_end <= o.share_data)
        {
            return Err(unsupported("offsets out of order"));
        }
        if o.signature - o.share_hash_chain != (chain_entries * SHARE_HASH_ENTRY_LEN) as u64
            || s.share_hash_chain.len() != chain_entries
        {
            return Err(unsupported("share hash chain has another length"));
        }
        let mut get = |i: usize| s.block_hash_nodes.get(&i).copied().ok_or(i);
        let old_bht_root = geo
            .old_root(0, &mut get)
            .map_err(|index| UpdateError::MissingNode { shnum, index })?;
        let root = fold_chain(n, shnum, old_bht_root, &s.share_hash_chain).ok_or(
            UpdateError::BadShare {
                shnum,
                reason: "share hash chain does not hold the expected indices",
            },
        )?;
        if root != oh.root_hash {
            return Err(UpdateError::BadShare {
                shnum,
                reason: "old block hash tree nodes do not lead to the signed root hash",
            });
        }
        share_offsets.push(o);
    }

    // Encrypt and encode the affected segments.
    let keys = MutableKeys::from_signing_key(key);
    let readkey = keys.readkey();
    let fec = Fec::new(k, n)?;
    let np = &plan.new_params;
    let nsegs = plan.num_salts();
    let mut blocks: Vec<Vec<Vec<u8>>> = (0..n).map(|_| Vec::with_capacity(nsegs)).collect();
    let mut leaves: Vec<Vec<Hash>> = (0..n).map(|_| Vec::with_capacity(nsegs)).collect();
    let mut at = 0usize;
    for (seg, salt) in plan.segments.clone().zip(salts) {
        let len = np.segment_data_len(seg) as usize;
        let mut ct = aes_ctr(
            &ssk_readkey_data_hash(salt, readkey),
            &segment_plaintext[at..at + len],
        );
        at += len;
        let piece = np.block_len(seg) as usize;
        ct.resize(piece * k, 0);
        let encoded = if piece == 0 {
            vec![Vec::new(); n]
        } else {
            let pieces: Vec<&[u8]> = ct.chunks_exact(piece).collect();
            fec.encode_all(&pieces)?
        };
        for (sh, block) in encoded.into_iter().enumerate() {
            let mut salted = Vec::with_capacity(SALT_LEN + block.len());
            salted.extend_from_slice(salt);
            salted.extend_from_slice(&block);
            leaves[sh].push(block_hash(&salted));
            blocks[sh].push(salted);
        }
    }

    // New block hash trees and the share hash tree over their roots.
    let mut trees = Vec::with_capacity(n);
    for s in &old {
        let shnum = s.shnum;
        let mut get = |i: usize| s.block_hash_nodes.get(&i).copied().ok_or(i);
        let nodes = geo
            .new_tree(&leaves[shnum.get()], &mut get, true)
            .map_err(|e| match e {
                TreeError::Missing(index) => UpdateError::MissingNode { shnum, index },
                TreeError::Inconsistent => UpdateError::BadShare {
                    shnum,
                    reason: "old block hash tree nodes are inconsistent",
                },
            })?;
        trees.push(nodes);
    }
    let roots: Vec<Hash> = trees
        .iter()
        .map(|t| t[0].expect("the root is always known"))
        .collect();
    let share_tree = HashTree::new(&roots);
    let new_header = ShareHeader {
        seqnum,
        root_hash: share_tree.root(),
        data_length: np.data_length,
        ..oh.clone()
    };
    let signature = key.sign(rng, &new_header.signed_prefix())?;

    let grows = np.data_length != oh.data_length;
    let offsets_move = new_offsets.block_hash_tree != old_offsets.block_hash_tree
        || new_offsets.eof != old_offsets.eof;
    let mut out = Vec::with_capacity(n);
    for (sh, (o, nodes)) in share_offsets.iter().zip(&trees).enumerate() {
        // `old` is in share-number order: old[sh] is share sh.
        let shnum = old[sh].shnum;
        if o.verification_key - o.signature != signature.len() as u64 {
            return Err(UpdateError::UnsupportedLayout {
                shnum,
                reason: "old signature has another length",
            });
        }
        let mut w: WriteVector = Vec::new();
        if !plan.segments.is_empty() {
            w.push((
                plan.old_segment_read(plan.segments.start).0,
                blocks[sh].concat(),
            ));
        }
        if plan.rewrites_block_hash_tree {
            let all: Vec<u8> = nodes
                .iter()
                .flat_map(|h| h.expect("every node is known when the tree moves"))
                .collect();
            w.push((new_offsets.block_hash_tree, all));
        } else {
            let changed: Vec<usize> = (0..nodes.len())
                .filter(|&i| geo.new_affected(i) > 0)
                .collect();
            for r in runs(&changed) {
                let bytes: Vec<u8> = r
                    .clone()
                    .flat_map(|i| nodes[i].expect("changed nodes are computed"))
                    .collect();
                w.push((
                    old_offsets.block_hash_tree + (r.start * HASH_LEN) as u64,
                    bytes,
                ));
            }
        }
        let chain: Vec<u8> = share_tree
            .chain(sh, false)
            .into_iter()
            .flat_map(|(i, h)| {
                let mut e = (i as u16).to_be_bytes().to_vec();
                e.extend_from_slice(&h);
                e
            })
            .collect();
        w.push((o.share_hash_chain, chain));
        w.push((o.signature, signature.clone()));
        let prefix = new_header.signed_prefix();
        let header_len = if grows {
            MDMF_SIGNED_PREFIX_LEN
        } else {
            MDMF_CHECKSTRING_LEN
        };
        w.push((0, prefix[..header_len].to_vec()));
        if offsets_move {
            let mut b = new_offsets.block_hash_tree.to_be_bytes().to_vec();
            b.extend_from_slice(&new_offsets.eof.to_be_bytes());
            w.push((BHT_OFFSET_FIELD, b));
        }
        out.push((shnum, w));
    }
    Ok(Update {
        header: new_header,
        writes: out,
    })
}

/// The offsets that do not depend on the key fields (Tahoe's layout); the others are 0.
fn expected_offsets(p: &SegmentParams) -> MdmfOffsets {
    let share_data = MDMF_SHARE_DATA_OFFSET as u64;
    let block_hash_tree = share_data + p.mdmf_share_data_size();
    MdmfOffsets {
        enc_privkey: MDMF_HEADER_LEN as u64,
        share_hash_chain: 0,
        signature: 0,
        verification_key: 0,
        verification_key_end: 0,
        share_data,
        block_hash_tree,
        eof: block_hash_tree + (tree_len(p.num_segments as usize) * HASH_LEN) as u64,
    }
}

/// Climb the share hash tree from leaf `shnum` (value `leaf`) with `chain`, which must be
/// exactly `needed_hashes(shnum)` sorted; `None` if it is not.
fn fold_chain(n: usize, shnum: ShareNum, leaf: Hash, chain: &[(u16, Hash)]) -> Option<Hash> {
    let map: BTreeMap<usize, Hash> = chain.iter().map(|(i, h)| (usize::from(*i), *h)).collect();
    let mut i = roundup_pow2(n) - 1 + shnum.get();
    let mut h = leaf;
    let mut used = 0;
    while i != 0 {
        let sib = if i % 2 == 1 { i + 1 } else { i - 1 };
        let s = map.get(&sib)?;
        used += 1;
        h = if i % 2 == 1 {
            pair_hash(&h, s)
        } else {
            pair_hash(s, &h)
        };
        i = (i - 1) / 2;
    }
    (used == chain.len() && map.len() == chain.len()).then_some(h)
}

/// Sorted indices into runs of consecutive indices.
fn runs(sorted: &[usize]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for &i in sorted {
        match out.last_mut() {
            Some(r) if r.end == i => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

fn overlap(a: &Range<usize>, b: &Range<usize>) -> usize {
    a.end.min(b.end).saturating_sub(a.start.max(b.start))
}

#[derive(Debug)]
enum TreeError {
    Missing(usize),
    Inconsistent,
}

/// The old and new block hash trees of one share, seen as complete binary trees over
/// leaf slots; leaves are untouched data, affected, or padding.
struct Geometry {
    old_p: usize,
    old_nseg: usize,
    new_p: usize,
    new_nseg: usize,
    /// Affected leaves (segments), in both trees.
    affected: Range<usize>,
    moving: bool,
}

impl Geometry {
    fn new(old: &SegmentParams, new: &SegmentParams, segments: &Range<u64>) -> Geometry {
        let old_nseg = old.num_segments as usize;
        let new_nseg = new.num_segments as usize;
        Geometry {
            old_p: roundup_pow2(old_nseg),
            old_nseg,
            new_p: roundup_pow2(new_nseg),
            new_nseg,
            affected: segments.start as usize..segments.end as usize,
            moving: old.mdmf_share_data_size() != new.mdmf_share_data_size(),
        }
    }

    /// `(height above the leaves, position in its row)` of node `i` in a tree of `p` slots.
    fn pos(p: usize, i: usize) -> (u32, usize) {
        let depth = (i + 1).ilog2();
        (p.trailing_zeros() - depth, i + 1 - (1 << depth))
    }

    fn range(p: usize, i: usize) -> Range<usize> {
        let (h, q) = Self::pos(p, i);
        q << h..(q + 1) << h
    }

    /// Index in the old tree of the node of the new tree `i` (whose leaves exist there).
    fn to_old(&self, i: usize) -> usize {
        let (h, q) = Self::pos(self.new_p, i);
        (self.old_p >> h) - 1 + q
    }

    /// Untouched data leaves under the node's range in a tree with `nseg` data leaves.
    fn untouched(&self, r: &Range<usize>, nseg: usize) -> usize {
        overlap(r, &(0..nseg))
            - overlap(
                r,
                &(self.affected.start.min(nseg)..self.affected.end.min(nseg)),
            )
    }

    fn new_all_untouched(&self, i: usize) -> bool {
        let r = Self::range(self.new_p, i);
        self.untouched(&r, self.new_nseg) == r.len()
    }

    /// Affected leaves under node `i` of the new tree.
    fn new_affected(&self, i: usize) -> usize {
        overlap(&Self::range(self.new_p, i), &self.affected)
    }

    /// Hash of a subtree of the old tree holding only padding leaves.
    fn padding(&self, i: usize) -> Hash {
        let r = Self::range(self.old_p, i);
        if r.len() == 1 {
            empty_leaf_hash(r.start)
        } else {
            pair_hash(&self.padding(2 * i + 1), &self.padding(2 * i + 2))
        }
    }

    /// Old subtree hash of node `i`, from the stored nodes `get` gives: the largest
    /// subtrees that are all untouched or all affected are read, padding is computed.
    fn old_root(
        &self,
        i: usize,
        get: &mut impl FnMut(usize) -> Result<Hash, usize>,
    ) -> Result<Hash, usize> {
        let r = Self::range(self.old_p, i);
        if r.start >= self.old_nseg {
            return Ok(self.padding(i));
        }
        let u = self.untouched(&r, self.old_nseg);
        if u == 0 || u == r.len() {
            return get(i);
        }
        let left = self.old_root(2 * i + 1, get)?;
        let right = self.old_root(2 * i + 2, get)?;
        Ok(pair_hash(&left, &right))
    }

    /// The new tree's nodes. Untouched subtrees come from the old tree (only their tops
    /// unless the tree moves, when all of it is needed and, if `check`, checked);
    /// the rest is computed from `leaves` (of the affected segments) and padding.
    fn new_tree(
        &self,
        leaves: &[Hash],
        get: &mut impl FnMut(usize) -> Result<Hash, usize>,
        check: bool,
    ) -> Result<Vec<Option<Hash>>, TreeError> {
        let len = 2 * self.new_p - 1;
        let mut nodes: Vec<Option<Hash>> = vec![None; len];
        for i in (0..len).rev() {
            let r = Self::range(self.new_p, i);
            if self.new_all_untouched(i) {
                let top = i == 0 || !self.new_all_untouched((i - 1) / 2);
                if self.moving || top {
                    let h = get(self.to_old(i)).map_err(TreeError::Missing)?;
                    if check && self.moving && r.len() > 1 {
                        let (l, rt) = (nodes[2 * i + 1], nodes[2 * i + 2]);
                        if let (Some(l), Some(rt)) = (l, rt) {
                            if pair_hash(&l, &rt) != h {
                                return Err(TreeError::Inconsistent);
                            }
                        }
                    }
                    nodes[i] = Some(h);
                }
            } else if r.len() == 1 {
                let j = r.start;
                nodes[i] = Some(if self.affected.contains(&j) {
                    leaves
                        .get(j - self.affected.start)
                        .copied()
                        .unwrap_or([0; HASH_LEN])
                } else {
                    empty_leaf_hash(j)
                });
            } else {
                let l = nodes[2 * i + 1].expect("child computed or read");
                let rt = nodes[2 * i + 2].expect("child computed or read");
                nodes[i] = Some(pair_hash(&l, &rt));
            }
        }
        Ok(nodes)
    }
}

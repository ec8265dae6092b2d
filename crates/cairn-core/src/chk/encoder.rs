//! Streaming CHK encoder (`immutable/encode.py::Encoder`), one segment at a time.

use crate::crypto::AesCtr;
use crate::fec::Fec;
use crate::hashtree::HashTree;
use crate::hashutil::{tags, Hash, KEY_LEN};
use crate::sha256mb::TaggedLanes;

use super::layout::share_hash_chain;
use super::params::{ChkGeometry, EncodingParams, LayoutVersion, ShareOffsets};
use super::ueb::Ueb;
use super::{ChkCapInfo, ChkError};

/// Bytes encrypted and hashed per inner-loop step (stays in L1/L2 between the passes).
const CHUNK: usize = 16 * 1024;
/// Columns per erasure-coding call: the check blocks of one column chunk are hashed
/// while hot, together with the same columns of the data blocks, all `N` blocks side by
/// side on the multi-buffer SHA-256 ([`crate::sha256mb`]).
const FEC_CHUNK: usize = 8 * 1024;

/// The blocks of one segment, borrowed from the encoder until the next `push_segment`.
#[derive(Debug)]
pub struct SegmentOutput<'a> {
    pub segnum: u64,
    /// Length of each block of this segment.
    pub block_len: usize,
    /// Where every share's block for this segment goes within that share.
    pub share_offset: u64,
    data: &'a [u8],
    checks: &'a [u8],
    k: usize,
}

impl<'a> SegmentOutput<'a> {
    /// Block for share `shnum` (panics if `shnum >= N`).
    pub fn block(&self, shnum: usize) -> &'a [u8] {
        let bl = self.block_len;
        if shnum < self.k {
            &self.data[shnum * bl..(shnum + 1) * bl]
        } else {
            let r = shnum - self.k;
            &self.checks[r * bl..(r + 1) * bl]
        }
    }

    pub fn num_shares(&self) -> usize {
        self.k + self.checks.len() / self.block_len.max(1)
    }

    /// `(shnum, block)` for every share.
    pub fn blocks(&self) -> impl Iterator<Item = (usize, &'a [u8])> + '_ {
        (0..self.num_shares()).map(move |i| (i, self.block(i)))
    }
}

/// What remains after the last segment: everything each share needs after its blocks.
#[derive(Clone, Debug)]
pub struct EncodedTrailer {
    pub geometry: ChkGeometry,
    pub layout: LayoutVersion,
    pub offsets: ShareOffsets,
    /// The header every share starts with (also available up front from the encoder).
    pub header: Vec<u8>,
    /// Offset within each share where its trailer starts (the plaintext hash tree region).
    pub trailer_offset: u64,
    /// Per share: zero region, crypttext tree, block tree, share-hash chain, UEB length, UEB.
    pub trailers: Vec<Vec<u8>>,
    pub ueb: Ueb,
    pub ueb_bytes: Vec<u8>,
    pub ueb_hash: Hash,
    pub key: [u8; KEY_LEN],
    pub crypttext_hash: Hash,
    pub share_root_hash: Hash,
    pub crypttext_root_hash: Hash,
}

impl EncodedTrailer {
    pub fn cap_info(&self) -> ChkCapInfo {
        ChkCapInfo {
            needed: self.geometry.needed,
            total: self.geometry.total,
            size: self.geometry.file_size,
            ueb_hash: self.ueb_hash,
        }
    }

    /// `URI:CHK:<key>:<ueb hash>:<k>:<N>:<size>`.
    pub fn read_cap_string(&self) -> String {
        self.cap_info().read_cap_string(&self.key)
    }

    /// The file's read cap.
    pub fn read_cap(&self) -> crate::cap::ChkReadCap {
        let g = &self.geometry;
        crate::cap::ChkReadCap::new(self.key, self.ueb_hash, g.needed, g.total, g.file_size)
            .expect("k and N were validated by EncodingParams")
    }

    /// The file's verify cap.
    pub fn verify_cap(&self) -> crate::cap::ChkVerifyCap {
        let g = &self.geometry;
        let si = crate::cap::StorageIndex(crate::hashutil::storage_index_hash(&self.key));
        crate::cap::ChkVerifyCap::new(si, self.ueb_hash, g.needed, g.total, g.file_size)
            .expect("k and N were validated by EncodingParams")
    }
}

/// Streaming encoder: feed every segment's plaintext in order with [`Self::push_segment`],
/// write the returned blocks, then [`Self::finish`]. Memory is `O(segment_size × N / k)`
/// plus 32 bytes per segment per share for the hash trees; it never holds the file.
pub struct ChkEncoder {
    geom: ChkGeometry,
    layout: LayoutVersion,
    offsets: ShareOffsets,
    key: [u8; KEY_LEN],
    aes: AesCtr,
    fec: Fec,
    next_segment: u64,
    /// Every hash over segment data, side by side (see [`crate::sha256mb`]): lane
    /// `shnum < N` is that share's block of the current segment, lane `N` the current
    /// segment's crypttext, lane `N + 1` the whole file's crypttext. Lanes `0..=N`
    /// restart at every segment.
    hashers: TaggedLanes,
    /// `0..=N`: the lanes finished at the end of every segment.
    segment_lanes: Vec<usize>,
    segment_hashes: Vec<Hash>,
    /// `[shnum][segnum]`
    block_hashes: Vec<Vec<Hash>>,
    seg_buf: Vec<u8>,
    check_buf: Vec<u8>,
}

impl ChkEncoder {
    /// Encoder for a file of `file_size` bytes (>= 1) under `key`, with Tahoe's layout choice.
    pub fn new(
        params: &EncodingParams,
        key: [u8; KEY_LEN],
        file_size: u64,
    ) -> Result<Self, ChkError> {
        let geom = ChkGeometry::new(params, file_size)?;
        Self::with_layout(params, key, file_size, geom.default_layout())
    }

    /// Like [`Self::new`] with a forced layout (Tahoe's `FORCE_V2` for small files).
    pub fn with_layout(
        params: &EncodingParams,
        key: [u8; KEY_LEN],
        file_size: u64,
        layout: LayoutVersion,
    ) -> Result<Self, ChkError> {
        let geom = ChkGeometry::new(params, file_size)?;
        if !geom.layout_fits(layout) {
            return Err(ChkError::TooLarge);
        }
        let offsets = geom.offsets(layout)?;
        let k = geom.needed as usize;
        let n = geom.total as usize;
        let block_size = usize::try_from(geom.block_size).map_err(|_| ChkError::TooLarge)?;
        let seg_len = block_size.checked_mul(k).ok_or(ChkError::TooLarge)?;
        let check_len = block_size.checked_mul(n - k).ok_or(ChkError::TooLarge)?;
        let nseg = usize::try_from(geom.num_segments).map_err(|_| ChkError::TooLarge)?;
        Ok(ChkEncoder {
            geom,
            layout,
            offsets,
            key,
            aes: AesCtr::new(&key),
            fec: Fec::new(k, n).map_err(ChkError::Fec)?,
            next_segment: 0,
            hashers: TaggedLanes::with_tags(
                &[
                    &vec![tags::BLOCK; n][..],
                    &[tags::CIPHERTEXT_SEGMENT, tags::CIPHERTEXT],
                ]
                .concat(),
            ),
            segment_lanes: (0..=n).collect(),
            segment_hashes: Vec::with_capacity(nseg.min(1 << 20)),
            block_hashes: vec![Vec::with_capacity(nseg.min(1 << 20)); n],
            seg_buf: vec![0; seg_len],
            check_buf: vec![0; check_len],
        })
    }

    pub fn geometry(&self) -> &ChkGeometry {
        &self.geom
    }

    pub fn layout(&self) -> LayoutVersion {
        self.layout
    }

    pub fn offsets(&self) -> &ShareOffsets {
        &self.offsets
    }

    /// The share header (same bytes for every share), known before any segment.
    pub fn header(&self) -> Vec<u8> {
        self.geom
            .header(self.layout)
            .expect("layout checked in constructor")
    }

    /// Bytes each share will have in total.
    pub fn allocated_size(&self) -> u64 {
        self.geom
            .allocated_size(self.layout)
            .expect("checked in constructor")
    }

    /// Index of the segment the next `push_segment` expects.
    pub fn next_segment(&self) -> u64 {
        self.next_segment
    }

    /// Plaintext length the next `push_segment` expects (`None` when all were pushed).
    pub fn next_segment_len(&self) -> Option<usize> {
        (self.next_segment < self.geom.num_segments)
            .then(|| self.geom.segment_len(self.next_segment) as usize)
    }

    /// Encrypt, hash, pad and erasure-code one segment (exactly
    /// [`Self::next_segment_len`] bytes of plaintext) and return its `N` blocks.
    pub fn push_segment(&mut self, plaintext: &[u8]) -> Result<SegmentOutput<'_>, ChkError> {
        let segnum = self.next_segment;
        if segnum >= self.geom.num_segments {
            return Err(ChkError::TooManySegments {
                num_segments: self.geom.num_segments,
            });
        }
        let want = self.geom.segment_len(segnum) as usize;
        if plaintext.len() != want {
            return Err(ChkError::WrongSegmentLength {
                segment: segnum,
                expected: want as u64,
                got: plaintext.len() as u64,
            });
        }
        let k = self.geom.needed as usize;
        let n = self.geom.total as usize;
        let bl = self.geom.block_len(segnum) as usize;
        let padded = bl * k;
        let buf = &mut self.seg_buf[..padded];
        buf[want..].fill(0);
        // Pass 1: copy + encrypt, one cache-hot chunk at a time.
        for (c, p) in buf[..want].chunks_mut(CHUNK).zip(plaintext.chunks(CHUNK)) {
            c.copy_from_slice(p);
            self.aes.apply(c);
        }
        // Pass 2, column chunk by column chunk: the check blocks, then every hash at once
        // while the check columns are hot: the same columns of all N blocks, and the next
        // `k` columns' worth of crypttext for the segment and the flat hash (so these two
        // serial streams share kernel calls with the blocks for a third of their length).
        let checks = &mut self.check_buf[..bl * (n - k)];
        let mut c = 0;
        while c < bl {
            let w = FEC_CHUNK.min(bl - c);
            let pieces: Vec<&[u8]> = (0..k).map(|i| &buf[i * bl + c..i * bl + c + w]).collect();
            let mut outs: Vec<(usize, &mut [u8])> = checks
                .chunks_exact_mut(bl)
                .enumerate()
                .map(|(r, o)| (k + r, &mut o[c..c + w]))
                .collect();
            self.fec.encode(&pieces, &mut outs).map_err(ChkError::Fec)?;
            let crypttext = &buf[(k * c).min(want)..(k * (c + w)).min(want)];
            let mut lanes = pieces;
            lanes.extend(outs.iter().map(|(_, o)| &o[..]));
            lanes.extend([crypttext, crypttext]);
            self.hashers.update_lanes(&lanes);
            c += w;
        }
        let mut hashes = self.hashers.finish_reset_lanes(&self.segment_lanes);
        self.segment_hashes
            .push(hashes.pop().expect("segment lane"));
        for (h, list) in hashes.into_iter().zip(self.block_hashes.iter_mut()) {
            list.push(h);
        }
        self.next_segment += 1;
        Ok(SegmentOutput {
            segnum,
            block_len: bl,
            share_offset: self.offsets.data + segnum * self.geom.block_size,
            data: &self.seg_buf[..padded],
            checks: &self.check_buf[..bl * (n - k)],
            k,
        })
    }

    /// Build the hash trees and the UEB and return every share's remaining bytes.
    pub fn finish(self) -> Result<EncodedTrailer, ChkError> {
        if self.next_segment != self.geom.num_segments {
            return Err(ChkError::MissingSegments {
                pushed: self.next_segment,
                expected: self.geom.num_segments,
            });
        }
        let n = self.geom.total as usize;
        let trailer_len = (self.allocated_size() - self.offsets.plaintext_hash_tree) as usize;
        let crypttext_hash = self.hashers.finish_lanes(&[n + 1])[0];
        let ct_tree = HashTree::new(&self.segment_hashes);
        let block_trees: Vec<HashTree> =
            self.block_hashes.iter().map(|l| HashTree::new(l)).collect();
        let roots: Vec<Hash> = block_trees.iter().map(|t| t.root()).collect();
        let share_tree = HashTree::new(&roots);
        let ueb = Ueb::for_file(
            &self.geom,
            crypttext_hash,
            ct_tree.root(),
            share_tree.root(),
        );
        let ueb_bytes = ueb.to_bytes();
        debug_assert_eq!(ueb_bytes.len() as u64, self.geom.ueb_len);
        let ueb_hash = crate::hashutil::uri_extension_hash(&ueb_bytes);
        let tree_len = self.geom.segment_tree_len() as usize;
        let mut trailers = Vec::with_capacity(n);
        for (shnum, bt) in block_trees.iter().enumerate() {
            let mut t = Vec::with_capacity(trailer_len);
            t.resize(tree_len, 0);
            ct_tree.nodes().iter().for_each(|h| t.extend_from_slice(h));
            bt.nodes().iter().for_each(|h| t.extend_from_slice(h));
            for (i, h) in share_hash_chain(share_tree.nodes(), n, shnum) {
                t.extend_from_slice(&(i as u16).to_be_bytes());
                t.extend_from_slice(&h);
            }
            match self.layout {
                LayoutVersion::V1 => t.extend_from_slice(&(ueb_bytes.len() as u32).to_be_bytes()),
                LayoutVersion::V2 => t.extend_from_slice(&(ueb_bytes.len() as u64).to_be_bytes()),
            }
            t.extend_from_slice(&ueb_bytes);
            debug_assert_eq!(t.len(), trailer_len);
            trailers.push(t);
        }
        Ok(EncodedTrailer {
            geometry: self.geom,
            layout: self.layout,
            offsets: self.offsets,
            header: self.geom.header(self.layout)?,
            trailer_offset: self.offsets.plaintext_hash_tree,
            trailers,
            ueb,
            ueb_bytes,
            ueb_hash,
            key: self.key,
            crypttext_hash,
            share_root_hash: share_tree.root(),
            crypttext_root_hash: ct_tree.root(),
        })
    }
}

/// A whole file encoded in memory (tests, tools, small files).
#[derive(Clone, Debug)]
pub struct EncodedFile {
    pub trailer: EncodedTrailer,
    /// Complete share data for shares `0..N`.
    pub shares: Vec<Vec<u8>>,
}

impl EncodedFile {
    pub fn cap_info(&self) -> ChkCapInfo {
        self.trailer.cap_info()
    }
    pub fn read_cap_string(&self) -> String {
        self.trailer.read_cap_string()
    }
}

/// Encode `plaintext` (>= 1 byte) under `key` into complete shares.
pub fn encode_file(
    params: &EncodingParams,
    key: [u8; KEY_LEN],
    plaintext: &[u8],
    layout: Option<LayoutVersion>,
) -> Result<EncodedFile, ChkError> {
    let size = plaintext.len() as u64;
    let mut enc = match layout {
        Some(l) => ChkEncoder::with_layout(params, key, size, l)?,
        None => ChkEncoder::new(params, key, size)?,
    };
    let alloc = enc.allocated_size() as usize;
    let header = enc.header();
    let mut shares: Vec<Vec<u8>> = (0..params.total)
        .map(|_| {
            let mut s = Vec::with_capacity(alloc);
            s.extend_from_slice(&header);
            s
        })
        .collect();
    let mut pos = 0usize;
    while let Some(len) = enc.next_segment_len() {
        let out = enc.push_segment(&plaintext[pos..pos + len])?;
        for (shnum, block) in out.blocks() {
            debug_assert_eq!(shares[shnum].len() as u64, out.share_offset);
            shares[shnum].extend_from_slice(block);
        }
        pos += len;
    }
    let trailer = enc.finish()?;
    for (s, t) in shares.iter_mut().zip(&trailer.trailers) {
        debug_assert_eq!(s.len() as u64, trailer.trailer_offset);
        s.extend_from_slice(t);
    }
    Ok(EncodedFile { trailer, shares })
}

//! Encoding parameters and the per-file geometry Tahoe derives from them
//! (`upload.py::get_all_encoding_parameters`, `encode.py`, `layout.py`).

use crate::hashtree::roundup_pow2;
use crate::hashutil::HASH_LEN;

use super::ChkError;

/// Tahoe's `DEFAULT_IMMUTABLE_MAX_SEGMENT_SIZE` (1 MiB).
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 1 << 20;
/// Files of at most this many bytes become LIT caps (no shares).
pub const LIT_SIZE_THRESHOLD: u64 = 55;
/// Bytes per share-hash entry in a share: `>H` index + 32-byte hash.
pub const SHARE_HASH_ENTRY_LEN: u64 = 2 + HASH_LEN as u64;
/// Readers refuse UEBs of this length or more (`layout.py`, `RidiculouslyLargeURIExtensionBlock`).
pub const MAX_UEB_LEN: usize = 2000;

/// The user's choice of erasure coding, as in `[client] shares.*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EncodingParams {
    /// `k`: shares needed to read the file.
    pub needed: u16,
    /// Servers-of-happiness threshold for upload (not part of the encoding).
    pub happy: u16,
    /// `N`: shares produced.
    pub total: u16,
    /// Upper bound for the segment size before rounding to a multiple of `k`.
    pub max_segment_size: u64,
}

impl Default for EncodingParams {
    fn default() -> Self {
        EncodingParams {
            needed: 3,
            happy: 7,
            total: 10,
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
        }
    }
}

impl EncodingParams {
    /// Checked constructor: `1 <= k <= N <= 256`, `happy <= N`, `max_segment_size >= 1`.
    pub fn new(
        needed: u16,
        happy: u16,
        total: u16,
        max_segment_size: u64,
    ) -> Result<Self, ChkError> {
        let p = EncodingParams {
            needed,
            happy,
            total,
            max_segment_size,
        };
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<(), ChkError> {
        check_k_n(self.needed, self.total)?;
        if self.happy > self.total {
            return Err(ChkError::BadParams(format!(
                "happy={} > total={}",
                self.happy, self.total
            )));
        }
        if self.max_segment_size == 0 {
            return Err(ChkError::BadParams("max_segment_size must be >= 1".into()));
        }
        Ok(())
    }

    /// `segsize = next_multiple(min(max_segment_size, file_size), k)`: the exact value that goes
    /// into the convergence tag and the UEB.
    pub fn segment_size_for(&self, file_size: u64) -> Result<u64, ChkError> {
        self.validate()?;
        next_multiple(self.max_segment_size.min(file_size), self.needed as u64)
    }
}

pub(crate) fn check_k_n(k: u16, n: u16) -> Result<(), ChkError> {
    if k == 0 || k > n || n > 256 {
        return Err(ChkError::BadParams(format!(
            "need 1 <= k <= N <= 256, got k={k} N={n}"
        )));
    }
    Ok(())
}

fn overflow() -> ChkError {
    ChkError::TooLarge
}

pub(crate) fn next_multiple(x: u64, k: u64) -> Result<u64, ChkError> {
    x.div_ceil(k).checked_mul(k).ok_or_else(overflow)
}

/// Which share layout (`layout.py` `WriteBucketProxy` v1 / `WriteBucketProxy_v2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayoutVersion {
    /// 4-byte fields, header 0x24 bytes.
    V1 = 1,
    /// 8-byte fields, header 0x44 bytes.
    V2 = 2,
}

impl LayoutVersion {
    pub fn header_len(self) -> u64 {
        match self {
            LayoutVersion::V1 => 0x24,
            LayoutVersion::V2 => 0x44,
        }
    }
    /// Width of the offset fields and of the UEB length field.
    pub fn field_len(self) -> u64 {
        match self {
            LayoutVersion::V1 => 4,
            LayoutVersion::V2 => 8,
        }
    }
}

/// Section offsets within one share's data (identical for all shares of a file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShareOffsets {
    pub data: u64,
    /// Unused zero-filled region kept for compatibility.
    pub plaintext_hash_tree: u64,
    pub crypttext_hash_tree: u64,
    pub block_hashes: u64,
    pub share_hashes: u64,
    /// Where the UEB length field starts.
    pub uri_extension: u64,
}

impl ShareOffsets {
    /// The offsets in the order the header stores them (and the sections lie).
    pub fn in_order(&self) -> [u64; 6] {
        [
            self.data,
            self.plaintext_hash_tree,
            self.crypttext_hash_tree,
            self.block_hashes,
            self.share_hashes,
            self.uri_extension,
        ]
    }
}

/// Everything about a CHK file's shape that follows from `(k, N, segment_size, size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChkGeometry {
    pub needed: u16,
    pub total: u16,
    pub file_size: u64,
    /// Rounded segment size (a multiple of `k`).
    pub segment_size: u64,
    pub num_segments: u64,
    /// Real bytes in the last segment (`size % segsize or segsize`).
    pub tail_size: u64,
    /// `tail_size` rounded up to a multiple of `k`.
    pub padded_tail_size: u64,
    pub block_size: u64,
    pub tail_block_size: u64,
    /// Bytes of block data per share: `ceil(size / k)`.
    pub share_size: u64,
    /// Nodes in a block or crypttext hash tree: `2 * next_pow2(num_segments) - 1`.
    pub segment_tree_nodes: u64,
    /// Entries in each share's share-hash chain (leaf included).
    pub share_hash_count: u64,
    /// Length of the UEB Tahoe 1.20 writes for this file.
    pub ueb_len: u64,
}

impl ChkGeometry {
    /// Geometry of a file of `file_size` bytes uploaded with `params` (`file_size >= 1`).
    pub fn new(params: &EncodingParams, file_size: u64) -> Result<Self, ChkError> {
        let segsize = params.segment_size_for(file_size)?;
        Self::from_parts(params.needed, params.total, segsize, file_size)
    }

    /// Geometry from the values a reader has: `k`, `N` and size from the cap, segment size
    /// from the UEB. Needs `segment_size > 0`, a multiple of `k`, and `file_size > 0`.
    pub fn from_parts(
        needed: u16,
        total: u16,
        segment_size: u64,
        file_size: u64,
    ) -> Result<Self, ChkError> {
        check_k_n(needed, total)?;
        let k = needed as u64;
        if file_size == 0 {
            return Err(ChkError::BadParams(
                "CHK files have at least one byte".into(),
            ));
        }
        if segment_size == 0 || !segment_size.is_multiple_of(k) {
            return Err(ChkError::BadParams(format!(
                "segment size {segment_size} is not a positive multiple of k={k}"
            )));
        }
        let num_segments = file_size.div_ceil(segment_size);
        let tail_size = match file_size % segment_size {
            0 => segment_size,
            t => t,
        };
        let padded_tail_size = next_multiple(tail_size, k)?;
        let block_size = segment_size / k;
        let tail_block_size = padded_tail_size / k;
        let share_size = file_size.div_ceil(k);
        let leaves = usize::try_from(num_segments).map_err(|_| overflow())?;
        if leaves > (1usize << 48) {
            return Err(overflow());
        }
        let segment_tree_nodes = (2 * roundup_pow2(leaves) - 1) as u64;
        // len(needed_hashes(0, include_leaf=True)) on a tree of N leaves
        let share_hash_count = roundup_pow2(total as usize).trailing_zeros() as u64 + 1;
        let ueb_len = super::ueb::Ueb::written_len(needed, total, segment_size, file_size) as u64;
        Ok(ChkGeometry {
            needed,
            total,
            file_size,
            segment_size,
            num_segments,
            tail_size,
            padded_tail_size,
            block_size,
            tail_block_size,
            share_size,
            segment_tree_nodes,
            share_hash_count,
            ueb_len,
        })
    }

    /// Bytes of one flattened segment-indexed hash tree.
    pub fn segment_tree_len(&self) -> u64 {
        self.segment_tree_nodes * HASH_LEN as u64
    }

    pub fn share_hashes_len(&self) -> u64 {
        self.share_hash_count * SHARE_HASH_ENTRY_LEN
    }

    /// Real (unpadded) plaintext bytes of segment `segnum`.
    pub fn segment_len(&self, segnum: u64) -> u64 {
        if segnum + 1 == self.num_segments {
            self.tail_size
        } else {
            self.segment_size
        }
    }

    /// Bytes each share holds for segment `segnum`.
    pub fn block_len(&self, segnum: u64) -> u64 {
        if segnum + 1 == self.num_segments {
            self.tail_block_size
        } else {
            self.block_size
        }
    }

    /// Offset of segment `segnum` in the file.
    pub fn segment_offset(&self, segnum: u64) -> u64 {
        segnum * self.segment_size
    }

    /// The layout Tahoe picks: v1 unless a field would not fit in 32 bits.
    pub fn default_layout(&self) -> LayoutVersion {
        match self.offsets(LayoutVersion::V1) {
            Ok(o)
                if self.block_size < 1 << 32
                    && self.share_size < 1 << 32
                    && o.uri_extension < 1 << 32 =>
            {
                LayoutVersion::V1
            }
            _ => LayoutVersion::V2,
        }
    }

    /// Section offsets for `version` (not checked against the 32-bit limit of v1).
    pub fn offsets(&self, version: LayoutVersion) -> Result<ShareOffsets, ChkError> {
        let t = self.segment_tree_len();
        let data = version.header_len();
        let plaintext_hash_tree = data.checked_add(self.share_size).ok_or_else(overflow)?;
        let crypttext_hash_tree = plaintext_hash_tree.checked_add(t).ok_or_else(overflow)?;
        let block_hashes = crypttext_hash_tree.checked_add(t).ok_or_else(overflow)?;
        let share_hashes = block_hashes.checked_add(t).ok_or_else(overflow)?;
        let uri_extension = share_hashes
            .checked_add(self.share_hashes_len())
            .ok_or_else(overflow)?;
        Ok(ShareOffsets {
            data,
            plaintext_hash_tree,
            crypttext_hash_tree,
            block_hashes,
            share_hashes,
            uri_extension,
        })
    }

    /// Whether `version` can represent this file (v1 needs every field < 2^32).
    pub fn layout_fits(&self, version: LayoutVersion) -> bool {
        match version {
            LayoutVersion::V2 => self.allocated_size(LayoutVersion::V2).is_ok(),
            LayoutVersion::V1 => self.default_layout() == LayoutVersion::V1,
        }
    }

    /// Total bytes of one share (what the uploader allocates on each server).
    pub fn allocated_size(&self, version: LayoutVersion) -> Result<u64, ChkError> {
        self.offsets(version)?
            .uri_extension
            .checked_add(version.field_len() + self.ueb_len)
            .ok_or_else(overflow)
    }

    /// The share header (version, block_size, data_size, offsets), identical for every share.
    pub fn header(&self, version: LayoutVersion) -> Result<Vec<u8>, ChkError> {
        if !self.layout_fits(version) {
            return Err(ChkError::TooLarge);
        }
        let offsets = self.offsets(version)?.in_order();
        let fields = [self.block_size, self.share_size]
            .into_iter()
            .chain(offsets);
        let mut out = Vec::with_capacity(version.header_len() as usize);
        out.extend_from_slice(&(version as u32).to_be_bytes());
        for f in fields {
            match version {
                LayoutVersion::V1 => out.extend_from_slice(&(f as u32).to_be_bytes()),
                LayoutVersion::V2 => out.extend_from_slice(&f.to_be_bytes()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_map_example() {
        // 56-byte file, 3-of-10: offsets 36,55,87,119,151,321; allocated 633
        let g = ChkGeometry::new(&EncodingParams::default(), 56).unwrap();
        assert_eq!(g.segment_size, 57);
        assert_eq!(g.ueb_len, 308);
        assert_eq!(g.share_hash_count, 5);
        let o = g.offsets(LayoutVersion::V1).unwrap();
        assert_eq!(
            [
                o.data,
                o.plaintext_hash_tree,
                o.crypttext_hash_tree,
                o.block_hashes,
                o.share_hashes,
                o.uri_extension
            ],
            [36, 55, 87, 119, 151, 321]
        );
        assert_eq!(g.allocated_size(LayoutVersion::V1).unwrap(), 633);
        assert_eq!(g.default_layout(), LayoutVersion::V1);
    }

    #[test]
    fn segsize_rounding() {
        let p = EncodingParams::new(3, 7, 10, 131072).unwrap();
        assert_eq!(p.segment_size_for(10_000_000).unwrap(), 131073);
        let g = ChkGeometry::new(&p, 10_000_000).unwrap();
        assert_eq!(g.num_segments, 77);
        assert_eq!(g.share_size, 3_333_334);
        assert_eq!(
            g.block_size * (g.num_segments - 1) + g.tail_block_size,
            g.share_size
        );
        let huge = ChkGeometry::new(&EncodingParams::default(), 1 << 40).unwrap();
        assert_eq!(huge.default_layout(), LayoutVersion::V2);
        assert!(ChkGeometry::new(&EncodingParams::default(), u64::MAX).is_ok());
        assert!(ChkGeometry::from_parts(3, 10, 3, u64::MAX).is_err());
    }
}

//! Parsing of immutable share data, layouts v1 and v2 (`immutable/layout.py`).
//!
//! [`ShareLayout::parse`] is total: any byte string gives either a typed view borrowing
//! from it or a [`LayoutError`]; nothing is allocated in proportion to values read
//! from the share.

use thiserror::Error;

use crate::bytes::{Reader, Truncated};
use crate::hashutil::{Hash, HASH_LEN};

use super::params::{ChkGeometry, LayoutVersion, ShareOffsets, MAX_UEB_LEN, SHARE_HASH_ENTRY_LEN};

/// Why share bytes could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LayoutError {
    #[error("share is {have} bytes, too short for {what} (need {need})")]
    Truncated {
        what: &'static str,
        need: u64,
        have: u64,
    },
    #[error("unknown share layout version {0} (understand 1 and 2)")]
    UnknownVersion(u32),
    #[error("share offsets out of order or outside the share: {0:?}")]
    BadOffsets(ShareOffsets),
    #[error("{what} region is {len} bytes, not a multiple of {unit}")]
    Ragged {
        what: &'static str,
        len: u64,
        unit: u64,
    },
    #[error("UEB length {0} is ridiculously large (limit {MAX_UEB_LEN})")]
    UebTooLong(u64),
    #[error("share offsets {got:?} differ from those of this file {want:?}")]
    WrongGeometry {
        got: ShareOffsets,
        want: ShareOffsets,
    },
}

/// A parsed share: header fields, offsets, and the sections as slices of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareLayout<'a> {
    pub version: LayoutVersion,
    /// Header `block_size` (readers ignore it, as Tahoe does).
    pub header_block_size: u64,
    /// Header `data_size` (readers ignore it, as Tahoe does).
    pub header_data_size: u64,
    pub offsets: ShareOffsets,
    /// `data .. plaintext_hash_tree`: the concatenated blocks.
    pub data: &'a [u8],
    /// The unused (zero-filled) plaintext hash tree region.
    pub plaintext_hash_tree: &'a [u8],
    /// Flattened crypttext hash tree, a multiple of 32 bytes.
    pub crypttext_hash_tree: &'a [u8],
    /// Flattened block hash tree of this share, a multiple of 32 bytes.
    pub block_hash_tree: &'a [u8],
    /// Share-hash chain entries (`>H` index + hash), a multiple of 34 bytes, in any order.
    pub share_hashes: &'a [u8],
    /// The UEB bytes (after the length field).
    pub ueb: &'a [u8],
}

/// A share's head: the layout version and the header fields (`>LLLLLLLLL` for v1,
/// `>LQQQQQQQQ` for v2), parsed once from its first bytes for every reader (the whole-share
/// parser, the download machine). The offsets are as stored, unchecked: a whole share bounds
/// them by its length ([`ShareLayout::parse`]), a first read compares them with the file's
/// geometry ([`ShareLayout::check_geometry`] or [`ChkGeometry::offsets`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShareHead {
    pub version: LayoutVersion,
    /// Header `block_size` (readers ignore it, as Tahoe does).
    pub block_size: u64,
    /// Header `data_size` (readers ignore it, as Tahoe does).
    pub data_size: u64,
    pub offsets: ShareOffsets,
}

impl From<Truncated> for LayoutError {
    fn from(t: Truncated) -> LayoutError {
        LayoutError::Truncated {
            what: "field",
            need: t.at.saturating_add(t.need) as u64,
            have: t.have as u64,
        }
    }
}

impl ShareHead {
    /// Parse the head from a share's first bytes (0x24 for v1, 0x44 for v2; later bytes are
    /// ignored). Errors: [`LayoutError::Truncated`] naming `"version"` or `"header"`,
    /// [`LayoutError::UnknownVersion`]. Never panics, allocates nothing.
    pub fn parse(share: &[u8]) -> Result<ShareHead, LayoutError> {
        let have = share.len() as u64;
        let mut r = Reader::new(share);
        let version = match r.u32().map_err(|_| LayoutError::Truncated {
            what: "version",
            need: 4,
            have,
        })? {
            1 => LayoutVersion::V1,
            2 => LayoutVersion::V2,
            v => return Err(LayoutError::UnknownVersion(v)),
        };
        let hl = version.header_len();
        if have < hl {
            return Err(LayoutError::Truncated {
                what: "header",
                need: hl,
                have,
            });
        }
        let w = version.field_len() as usize;
        let block_size = r.uint(w)?;
        let data_size = r.uint(w)?;
        let offsets = ShareOffsets {
            data: r.uint(w)?,
            plaintext_hash_tree: r.uint(w)?,
            crypttext_hash_tree: r.uint(w)?,
            block_hashes: r.uint(w)?,
            share_hashes: r.uint(w)?,
            uri_extension: r.uint(w)?,
        };
        Ok(ShareHead {
            version,
            block_size,
            data_size,
            offsets,
        })
    }

    /// The exact bytes of this head (0x24 or 0x44 bytes); `None` if a value does not fit
    /// the version's field width.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let o = &self.offsets;
        let mut out = (self.version as u32).to_be_bytes().to_vec();
        for v in [self.block_size, self.data_size]
            .into_iter()
            .chain(o.in_order())
        {
            match self.version {
                LayoutVersion::V1 => out.extend_from_slice(&u32::try_from(v).ok()?.to_be_bytes()),
                LayoutVersion::V2 => out.extend_from_slice(&v.to_be_bytes()),
            }
        }
        Some(out)
    }
}

/// Share-hash chain entries (`>H32s`: node index, hash) of a region whose length is a
/// multiple of 34, in stored order; a ragged tail is ignored (callers check it first).
pub fn share_hash_entries(region: &[u8]) -> impl Iterator<Item = (u16, Hash)> + '_ {
    let mut r = Reader::new(region);
    std::iter::from_fn(move || {
        if r.remaining() < SHARE_HASH_ENTRY_LEN as usize {
            return None;
        }
        Some((r.u16().ok()?, r.array().ok()?))
    })
}

impl<'a> ShareLayout<'a> {
    /// Parse a complete share (`share data`, i.e. the bytes after the server's container
    /// header). Checks: version 1/2, header present, offsets non-decreasing and inside the
    /// buffer, hash regions whole, UEB length field present and < 2000, UEB inside the buffer.
    /// Trailing bytes after the UEB are ignored.
    pub fn parse(share: &'a [u8]) -> Result<ShareLayout<'a>, LayoutError> {
        let have = share.len() as u64;
        let head = ShareHead::parse(share)?;
        let (version, offsets) = (head.version, head.offsets);
        let hl = version.header_len();
        let w = version.field_len() as usize;
        let o = offsets;
        // the header, then the sections in order
        let mut order = [hl; 7];
        order[1..].copy_from_slice(&o.in_order());
        if order.windows(2).any(|p| p[0] > p[1]) {
            return Err(LayoutError::BadOffsets(offsets));
        }
        let ueb_len_end = o
            .uri_extension
            .checked_add(w as u64)
            .ok_or(LayoutError::BadOffsets(offsets))?;
        if ueb_len_end > have {
            return Err(LayoutError::Truncated {
                what: "UEB length",
                need: ueb_len_end,
                have,
            });
        }
        let ueb_len = Reader::at(share, o.uri_extension as usize).uint(w)?;
        if ueb_len >= MAX_UEB_LEN as u64 {
            return Err(LayoutError::UebTooLong(ueb_len));
        }
        let ueb_end = ueb_len_end + ueb_len;
        if ueb_end > have {
            return Err(LayoutError::Truncated {
                what: "UEB",
                need: ueb_end,
                have,
            });
        }
        let sl = |a: u64, b: u64| &share[a as usize..b as usize];
        let l = ShareLayout {
            version,
            header_block_size: head.block_size,
            header_data_size: head.data_size,
            offsets,
            data: sl(o.data, o.plaintext_hash_tree),
            plaintext_hash_tree: sl(o.plaintext_hash_tree, o.crypttext_hash_tree),
            crypttext_hash_tree: sl(o.crypttext_hash_tree, o.block_hashes),
            block_hash_tree: sl(o.block_hashes, o.share_hashes),
            share_hashes: sl(o.share_hashes, o.uri_extension),
            ueb: sl(ueb_len_end, ueb_end),
        };
        for (what, region, unit) in [
            (
                "crypttext hash tree",
                l.crypttext_hash_tree,
                HASH_LEN as u64,
            ),
            ("block hash tree", l.block_hash_tree, HASH_LEN as u64),
            ("share hashes", l.share_hashes, SHARE_HASH_ENTRY_LEN),
        ] {
            if !(region.len() as u64).is_multiple_of(unit) {
                return Err(LayoutError::Ragged {
                    what,
                    len: region.len() as u64,
                    unit,
                });
            }
        }
        Ok(l)
    }

    /// Require the offsets Tahoe writes for a file of geometry `g` (every section exactly
    /// its size). Needed before blocks or hash trees are indexed by segment.
    pub fn check_geometry(&self, g: &ChkGeometry) -> Result<(), LayoutError> {
        let want = g
            .offsets(self.version)
            .map_err(|_| LayoutError::BadOffsets(self.offsets))?;
        if want != self.offsets {
            return Err(LayoutError::WrongGeometry {
                got: self.offsets,
                want,
            });
        }
        Ok(())
    }

    /// The share-hash chain entries, in stored order.
    pub fn share_hash_entries(&self) -> impl Iterator<Item = (u16, Hash)> + 'a {
        share_hash_entries(self.share_hashes)
    }

    /// Block `segnum` of this share; `None` if outside the data region.
    /// Assumes [`Self::check_geometry`] passed for `g`.
    pub fn block(&self, g: &ChkGeometry, segnum: u64) -> Option<&'a [u8]> {
        if segnum >= g.num_segments {
            return None;
        }
        let start = segnum.checked_mul(g.block_size)?;
        let end = start.checked_add(g.block_len(segnum))?;
        if end > self.data.len() as u64 {
            return None;
        }
        Some(&self.data[start as usize..end as usize])
    }
}

/// Flattened hash tree bytes -> hashes.
pub(crate) fn hashes_of(region: &[u8]) -> Vec<Hash> {
    region
        .chunks_exact(HASH_LEN)
        .map(|c| c.try_into().expect("32-byte chunk"))
        .collect()
}

/// The order in which CPython 3 iterates `s = set(items); s.add(extra)` for small
/// non-negative ints (`setobject.c`: hash(i) == i, linear probing of 9, perturbation,
/// growth at 3/5 fill). Tahoe writes immutable share-hash chains in this order
/// (`encode.py::send_all_share_hash_trees` iterates `HashTree.needed_hashes`).
pub(crate) fn python_set_order(items: impl IntoIterator<Item = usize>) -> Vec<usize> {
    const LINEAR_PROBES: usize = 9;
    fn insert(table: &mut [Option<usize>], key: usize, check_eq: bool) -> bool {
        let mask = table.len() - 1;
        let mut perturb = key;
        let mut i = key & mask;
        loop {
            let probes = if i + LINEAR_PROBES <= mask {
                LINEAR_PROBES
            } else {
                0
            };
            for j in 0..=probes {
                match table[i + j] {
                    None => {
                        table[i + j] = Some(key);
                        return true;
                    }
                    Some(k) if check_eq && k == key => return false,
                    _ => {}
                }
            }
            perturb >>= 5;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb)) & mask;
        }
    }
    let mut table: Vec<Option<usize>> = vec![None; 8];
    let mut used = 0usize;
    for key in items {
        if insert(&mut table, key, true) {
            used += 1;
            let mask = table.len() - 1;
            if used * 5 >= mask * 3 {
                let minused = if used > 50000 { used * 2 } else { used * 4 };
                let mut newsize = 8;
                while newsize <= minused {
                    newsize <<= 1;
                }
                let old = std::mem::replace(&mut table, vec![None; newsize]);
                for k in old.into_iter().flatten() {
                    insert(&mut table, k, false);
                }
            }
        }
    }
    table.into_iter().flatten().collect()
}

/// Share-hash chain of share `shnum` (leaf included) in Tahoe's on-disk order, over a share
/// hash tree whose nodes are `nodes` (root first).
pub(crate) fn share_hash_chain(
    nodes: &[Hash],
    num_leaves: usize,
    shnum: usize,
) -> Vec<(usize, Hash)> {
    let first_leaf = crate::hashtree::roundup_pow2(num_leaves) - 1;
    let leaf = first_leaf + shnum;
    let mut chain = Vec::new();
    let mut here = leaf;
    while here != 0 {
        let sib = if here % 2 == 1 { here + 1 } else { here - 1 };
        chain.push(sib);
        here = (here - 1) / 2;
    }
    chain.push(leaf);
    python_set_order(chain)
        .into_iter()
        .map(|i| (i, nodes[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_order_examples() {
        // CPython 3.11: s = set([16, 8, 4, 2]); s.add(15); list(s)
        assert_eq!(python_set_order([16, 8, 4, 2, 15]), vec![2, 4, 8, 15, 16]);
        // needed_hashes(i, include_leaf=True) for N=256 (leaf 255+i), as CPython lists them
        assert_eq!(
            python_set_order([256, 128, 64, 32, 16, 8, 4, 2, 255]).len(),
            9
        );
        assert_eq!(python_set_order([0usize; 0]), Vec::<usize>::new());
    }

    #[test]
    fn python_order_matches_cpython_for_every_share_tree() {
        // SHA-256 of, for N in 1..=256 and shnum in 0..N, the CPython 3.11 iteration order of
        // `HashTree.needed_hashes(shnum, include_leaf=True)` ("i,j,..;" per share, "\n" per N).
        use sha2::{Digest, Sha256};
        let mut s = String::new();
        for n in 1..=256usize {
            let nodes = vec![[0u8; 32]; 2 * crate::hashtree::roundup_pow2(n) - 1];
            for shnum in 0..n {
                let order: Vec<String> = share_hash_chain(&nodes, n, shnum)
                    .into_iter()
                    .map(|(i, _)| i.to_string())
                    .collect();
                s.push_str(&order.join(","));
                s.push(';');
            }
            s.push('\n');
        }
        let hex: String = Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "2ee938087fe3b17b54ebd1dd411b2c1b1f6aaa16c9c6b321f9f39819f6326801"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 1u32;
        for len in 0..300usize {
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 7) as u8
                })
                .collect();
            if len >= 4 {
                buf[3] = 1 + (len % 2) as u8;
                buf[0..3].fill(0);
            }
            let _ = ShareLayout::parse(&buf);
        }
    }
}

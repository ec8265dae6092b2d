//! The first bytes of a mutable share — signed header and offsets table — parsed once into
//! a typed [`MutableSharePrefix`], for both formats:
//!
//! * SDMF (version 0, 107 bytes): `>BQ32s16sBBQQ` then offsets `>LLLLQQ`;
//! * MDMF (version 1, 123 bytes): `>BQ32sBBQQ` then offsets `>QQQQQQQQ`.
//!
//! Every reader of share bytes starts here: the whole-share parser
//! ([`super::MutableShare::parse`]), the in-place MDMF update, and the servermap, retrieve
//! and publish machines, which see only a share's first bytes. The parse checks the version
//! and the length and nothing else: what counts as a sane offset differs between those
//! readers (a whole share bounds offsets by its length; a first read cannot), so each
//! checks the typed offsets it uses. Byte diagrams: `docs/formats/sdmf-share.md` and
//! `docs/formats/mdmf-share.md`.

use super::layout::{
    LayoutError, ShareHeader, MDMF_HEADER_LEN, MDMF_SIGNED_PREFIX_LEN, SDMF_HEADER_LEN,
    SDMF_SIGNED_PREFIX_LEN, SHARE_HASH_ENTRY_LEN,
};
use super::MutableFormat;
use crate::bytes::{Reader, Truncated};
use crate::hashutil::Hash;

/// The SDMF offsets table (`>LLLLQQ` at 75): where each field starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SdmfOffsets {
    pub signature: u32,
    pub share_hash_chain: u32,
    pub block_hash_tree: u32,
    pub share_data: u32,
    pub enc_privkey: u64,
    pub eof: u64,
}

impl SdmfOffsets {
    /// The offsets table of an SDMF share's first bytes (at 75), whatever its version
    /// byte says: for readers that checked the signed part against a known header already.
    pub fn parse(prefix: &[u8]) -> Result<SdmfOffsets, LayoutError> {
        if prefix.len() < SDMF_HEADER_LEN {
            return Err(LayoutError::TooShort {
                len: prefix.len(),
                need: SDMF_HEADER_LEN,
            });
        }
        Ok(SdmfOffsets::read(&mut Reader::at(
            prefix,
            SDMF_SIGNED_PREFIX_LEN,
        ))?)
    }

    fn read(r: &mut Reader<'_>) -> Result<SdmfOffsets, Truncated> {
        Ok(SdmfOffsets {
            signature: r.u32()?,
            share_hash_chain: r.u32()?,
            block_hash_tree: r.u32()?,
            share_data: r.u32()?,
            enc_privkey: r.u64()?,
            eof: r.u64()?,
        })
    }
}

/// The MDMF offsets table (`>QQQQQQQQ` at 59): where each field starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MdmfOffsets {
    pub enc_privkey: u64,
    pub share_hash_chain: u64,
    pub signature: u64,
    pub verification_key: u64,
    pub verification_key_end: u64,
    pub share_data: u64,
    pub block_hash_tree: u64,
    pub eof: u64,
}

/// A share's offsets table, by format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrefixOffsets {
    Sdmf(SdmfOffsets),
    Mdmf(MdmfOffsets),
}

/// A mutable share's signed header and offsets table, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MutableSharePrefix {
    pub header: ShareHeader,
    pub offsets: PrefixOffsets,
}

/// The parsers check lengths before reading, so a truncation met while reading is a bug in
/// those checks; it is still reported as a short share rather than a panic.
impl From<Truncated> for LayoutError {
    fn from(t: Truncated) -> LayoutError {
        LayoutError::TooShort {
            len: t.have,
            need: t.at.saturating_add(t.need),
        }
    }
}

impl MutableSharePrefix {
    /// Parse the first bytes of a share of either version (dispatching on the first byte,
    /// as `MDMFSlotReadProxy` does). Needs 107 (SDMF) or 123 (MDMF) bytes; later bytes are
    /// ignored. Never panics, allocates nothing.
    pub fn parse(data: &[u8]) -> Result<MutableSharePrefix, LayoutError> {
        match data.first() {
            None => Err(LayoutError::TooShort { len: 0, need: 1 }),
            Some(0) => Self::parse_sdmf(data),
            Some(1) => Self::parse_mdmf(data),
            Some(&v) => Err(LayoutError::UnknownVersion(v)),
        }
    }

    /// Parse an SDMF (version 0) prefix: the length is checked before the version.
    pub fn parse_sdmf(data: &[u8]) -> Result<MutableSharePrefix, LayoutError> {
        if data.len() < SDMF_HEADER_LEN {
            return Err(LayoutError::TooShort {
                len: data.len(),
                need: SDMF_HEADER_LEN,
            });
        }
        let mut r = Reader::new(data);
        Self::read_sdmf(&mut r)
    }

    fn read_sdmf(r: &mut Reader<'_>) -> Result<MutableSharePrefix, LayoutError> {
        let version = r.u8()?;
        if version != 0 {
            return Err(LayoutError::UnknownVersion(version));
        }
        let header = ShareHeader {
            format: MutableFormat::Sdmf,
            seqnum: r.u64()?,
            root_hash: r.array()?,
            iv: Some(r.array()?),
            k: r.u8()?,
            n: r.u8()?,
            segment_size: r.u64()?,
            data_length: r.u64()?,
        };
        let offsets = SdmfOffsets::read(r)?;
        Ok(MutableSharePrefix {
            header,
            offsets: PrefixOffsets::Sdmf(offsets),
        })
    }

    /// Parse an MDMF (version 1) prefix: the length is checked before the version.
    pub fn parse_mdmf(data: &[u8]) -> Result<MutableSharePrefix, LayoutError> {
        if data.len() < MDMF_HEADER_LEN {
            return Err(LayoutError::TooShort {
                len: data.len(),
                need: MDMF_HEADER_LEN,
            });
        }
        let mut r = Reader::new(data);
        Self::read_mdmf(&mut r)
    }

    fn read_mdmf(r: &mut Reader<'_>) -> Result<MutableSharePrefix, LayoutError> {
        let version = r.u8()?;
        if version != 1 {
            return Err(LayoutError::UnknownVersion(version));
        }
        let header = ShareHeader {
            format: MutableFormat::Mdmf,
            seqnum: r.u64()?,
            root_hash: r.array()?,
            iv: None,
            k: r.u8()?,
            n: r.u8()?,
            segment_size: r.u64()?,
            data_length: r.u64()?,
        };
        let offsets = MdmfOffsets::read(r)?;
        Ok(MutableSharePrefix {
            header,
            offsets: PrefixOffsets::Mdmf(offsets),
        })
    }

    /// The MDMF offsets, if this is an MDMF prefix.
    pub fn mdmf(&self) -> Option<&MdmfOffsets> {
        match &self.offsets {
            PrefixOffsets::Mdmf(o) => Some(o),
            PrefixOffsets::Sdmf(_) => None,
        }
    }

    /// The SDMF offsets, if this is an SDMF prefix.
    pub fn sdmf(&self) -> Option<&SdmfOffsets> {
        match &self.offsets {
            PrefixOffsets::Sdmf(o) => Some(o),
            PrefixOffsets::Mdmf(_) => None,
        }
    }

    /// The exact bytes this prefix is stored as (107 or 123 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header.signed_prefix();
        match &self.offsets {
            PrefixOffsets::Sdmf(o) => {
                for v in [
                    o.signature,
                    o.share_hash_chain,
                    o.block_hash_tree,
                    o.share_data,
                ] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                out.extend_from_slice(&o.enc_privkey.to_be_bytes());
                out.extend_from_slice(&o.eof.to_be_bytes());
            }
            PrefixOffsets::Mdmf(o) => {
                for v in o.in_order() {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        out
    }
}

impl MdmfOffsets {
    /// The offsets table of an MDMF share's first bytes (at 59), whatever its version
    /// byte says: for readers that checked the signed part against a known header already.
    pub fn parse(prefix: &[u8]) -> Result<MdmfOffsets, LayoutError> {
        if prefix.len() < MDMF_HEADER_LEN {
            return Err(LayoutError::TooShort {
                len: prefix.len(),
                need: MDMF_HEADER_LEN,
            });
        }
        Ok(MdmfOffsets::read(&mut Reader::at(
            prefix,
            MDMF_SIGNED_PREFIX_LEN,
        ))?)
    }

    fn read(r: &mut Reader<'_>) -> Result<MdmfOffsets, Truncated> {
        Ok(MdmfOffsets {
            enc_privkey: r.u64()?,
            share_hash_chain: r.u64()?,
            signature: r.u64()?,
            verification_key: r.u64()?,
            verification_key_end: r.u64()?,
            share_data: r.u64()?,
            block_hash_tree: r.u64()?,
            eof: r.u64()?,
        })
    }

    /// The eight offsets in their stored order.
    pub fn in_order(&self) -> [u64; 8] {
        [
            self.enc_privkey,
            self.share_hash_chain,
            self.signature,
            self.verification_key,
            self.verification_key_end,
            self.share_data,
            self.block_hash_tree,
            self.eof,
        ]
    }
}

/// The sequence number of a checkstring or share prefix (`>BQ...`) of a known version.
pub fn seqnum_of(prefix: &[u8]) -> Option<u64> {
    let mut r = Reader::new(prefix);
    match r.u8().ok()? {
        0 | 1 => r.u64().ok(),
        _ => None,
    }
}

/// A share hash chain as stored: `>H32s` entries `(node index, hash)`, in stored order.
pub fn parse_share_hash_chain(bytes: &[u8]) -> Result<Vec<(u16, Hash)>, LayoutError> {
    if !bytes.len().is_multiple_of(SHARE_HASH_ENTRY_LEN) {
        return Err(LayoutError::BadShareHashChainLength(bytes.len() as u64));
    }
    let mut r = Reader::new(bytes);
    let mut out = Vec::with_capacity(bytes.len() / SHARE_HASH_ENTRY_LEN);
    while r.remaining() > 0 {
        let entry = r.u16().and_then(|i| Ok((i, r.array()?)));
        out.push(entry?);
    }
    Ok(out)
}

/// Flattened hashes (`32s` each) as stored; `bytes` must be a whole number of hashes.
pub(crate) fn parse_hashes(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(crate::hashutil::HASH_LEN) {
        return None;
    }
    let mut r = Reader::new(bytes);
    let mut out = Vec::with_capacity(bytes.len() / crate::hashutil::HASH_LEN);
    while r.remaining() > 0 {
        out.push(r.array().ok()?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqnum_of_known_versions_only() {
        let mut cs = vec![1u8];
        cs.extend_from_slice(&7u64.to_be_bytes());
        assert_eq!(seqnum_of(&cs), Some(7));
        cs[0] = 2;
        assert_eq!(seqnum_of(&cs), None);
        assert_eq!(seqnum_of(&cs[..5]), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..130usize {
            for first in [0u8, 1, 2] {
                let mut d = vec![0xa5u8; len];
                if let Some(b) = d.first_mut() {
                    *b = first;
                }
                let _ = MutableSharePrefix::parse(&d);
                let _ = parse_share_hash_chain(&d);
            }
        }
    }
}

//! SDMF (version 0) and MDMF (version 1) share layouts (`allmydata/mutable/layout.py`).
//!
//! [`MutableShare::parse`] reads the bytes a storage server holds for one share (the
//! container's data, without the container header) into typed values, checking every
//! offset and size; [`MutableShare::to_bytes`] writes the exact bytes Tahoe's
//! `SDMFSlotWriteProxy` / `MDMFSlotWriteProxy` produce. Byte diagrams:
//! `docs/formats/sdmf-share.md` and `docs/formats/mdmf-share.md`.

use thiserror::Error;

use super::header::{parse_share_hash_chain, MutableSharePrefix};
use super::params::{ParamsError, SegmentParams};
use super::{MutableFormat, SALT_LEN};
use crate::bytes::Reader;
use crate::hashtree::tree_len;
use crate::hashutil::{Hash, HASH_LEN};

/// SDMF signed prefix `>BQ32s16sBBQQ`.
pub const SDMF_SIGNED_PREFIX_LEN: usize = 75;
/// SDMF checkstring `>BQ32s16s` (version, seqnum, root hash, IV).
pub const SDMF_CHECKSTRING_LEN: usize = 57;
/// SDMF header: signed prefix + offsets `>LLLLQQ`.
pub const SDMF_HEADER_LEN: usize = 107;
/// MDMF signed part `>BQ32sBBQQ`.
pub const MDMF_SIGNED_PREFIX_LEN: usize = 59;
/// MDMF checkstring `>BQ32s` (version, seqnum, root hash).
pub const MDMF_CHECKSTRING_LEN: usize = 41;
/// MDMF header: signed part + offsets `>QQQQQQQQ`; the encrypted private key starts here.
pub const MDMF_HEADER_LEN: usize = 123;
/// Space Tahoe reserves for the encrypted private key (`PRIVATE_KEY_SIZE`).
pub const MDMF_PRIVATE_KEY_SIZE: usize = 1220;
/// `SIGNATURE_SIZE`.
pub const MDMF_SIGNATURE_SIZE: usize = 260;
/// `VERIFICATION_KEY_SIZE`.
pub const MDMF_VERIFICATION_KEY_SIZE: usize = 292;
/// `SHARE_HASH_CHAIN_SIZE` = (2 + 32) · ceil(log2(256)).
pub const MDMF_SHARE_HASH_CHAIN_SIZE: usize = 34 * 8;
/// Where MDMF share data starts: 123 + 1220 + 260 + 292 + 272 = 2167. The four variable
/// fields are packed after the header; only their total has to fit below this.
pub const MDMF_SHARE_DATA_OFFSET: usize = MDMF_HEADER_LEN
    + MDMF_PRIVATE_KEY_SIZE
    + MDMF_SIGNATURE_SIZE
    + MDMF_VERIFICATION_KEY_SIZE
    + MDMF_SHARE_HASH_CHAIN_SIZE;
/// One share-hash-chain entry: `>H32s`.
pub const SHARE_HASH_ENTRY_LEN: usize = 2 + HASH_LEN;
/// `MAX_MUTABLE_SHARE_SIZE` (69105 TB): larger offsets are refused.
pub const MAX_MUTABLE_SHARE_SIZE: u64 = 69105 * 1000 * 1000 * 1000 * 1000;

/// Why share bytes could not be read (or a share could not be written).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LayoutError {
    #[error("share is {len} bytes, need at least {need} for the header")]
    TooShort { len: usize, need: usize },
    #[error("unknown mutable share version {0}")]
    UnknownVersion(u8),
    #[error("bad encoding parameters: {0}")]
    Params(#[from] ParamsError),
    #[error("offset of {field} is {value}, outside {min}..={max}")]
    BadOffset {
        field: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("{field} is {len} bytes, expected {expected}")]
    BadLength {
        field: &'static str,
        len: u64,
        expected: u64,
    },
    #[error("share hash chain is {0} bytes, not a multiple of 34")]
    BadShareHashChainLength(u64),
    #[error("MDMF fields need {need} bytes before the share data at {share_data}")]
    MdmfFieldsTooLarge { need: u64, share_data: u64 },
    #[error("inconsistent share: {0}")]
    Inconsistent(&'static str),
}

/// The signed header fields common to both formats.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShareHeader {
    pub format: MutableFormat,
    /// Starts at 1 and grows with every published version.
    pub seqnum: u64,
    /// Root of the share hash tree.
    pub root_hash: Hash,
    /// SDMF only: the file-wide IV (salt). `None` for MDMF, whose salts are per segment.
    pub iv: Option<[u8; SALT_LEN]>,
    /// `k`, shares needed.
    pub k: u8,
    /// `N`, total shares.
    pub n: u8,
    pub segment_size: u64,
    pub data_length: u64,
}

impl ShareHeader {
    /// The bytes the signature covers: 75 bytes (SDMF) or 59 bytes (MDMF).
    pub fn signed_prefix(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SDMF_SIGNED_PREFIX_LEN);
        out.extend_from_slice(&self.checkstring());
        out.push(self.k);
        out.push(self.n);
        out.extend_from_slice(&self.segment_size.to_be_bytes());
        out.extend_from_slice(&self.data_length.to_be_bytes());
        out
    }

    /// The test-vector specimen a writer uses: 57 bytes (SDMF, with IV) or 41 bytes (MDMF).
    pub fn checkstring(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SDMF_CHECKSTRING_LEN);
        out.push(self.format.version_byte());
        out.extend_from_slice(&self.seqnum.to_be_bytes());
        out.extend_from_slice(&self.root_hash);
        if let Some(iv) = &self.iv {
            out.extend_from_slice(iv);
        }
        out
    }

    /// Segment geometry implied by the header (checked).
    pub fn params(&self) -> Result<SegmentParams, ParamsError> {
        SegmentParams::from_header(
            self.format,
            self.k,
            self.n,
            self.segment_size,
            self.data_length,
        )
    }

    fn check_iv(&self) -> Result<(), LayoutError> {
        match (self.format, self.iv.is_some()) {
            (MutableFormat::Sdmf, true) | (MutableFormat::Mdmf, false) => Ok(()),
            (MutableFormat::Sdmf, false) => {
                Err(LayoutError::Inconsistent("SDMF header needs an IV"))
            }
            (MutableFormat::Mdmf, true) => Err(LayoutError::Inconsistent("MDMF header has no IV")),
        }
    }
}

/// One mutable share, typed. Produced by [`MutableShare::parse`] or by the encoder.
///
/// `blocks[i]` is this share's block of segment `i` (SDMF: at most one segment; none for
/// an empty file). `salts[i]` is the MDMF per-segment salt stored before the block; SDMF
/// keeps `salts` empty and uses [`ShareHeader::iv`] (see [`Self::segment_salt`]).
#[derive(Clone, PartialEq, Eq)]
pub struct MutableShare {
    pub header: ShareHeader,
    /// SubjectPublicKeyInfo DER, exactly as stored.
    pub verification_key: Vec<u8>,
    pub signature: Vec<u8>,
    /// `(node index, hash)` as stored (Tahoe writes them sorted, without the leaf).
    pub share_hash_chain: Vec<(u16, Hash)>,
    /// The whole flattened block hash tree, root first.
    pub block_hash_tree: Vec<Hash>,
    pub blocks: Vec<Vec<u8>>,
    pub salts: Vec<[u8; SALT_LEN]>,
    pub enc_privkey: Vec<u8>,
}

impl std::fmt::Debug for MutableShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutableShare")
            .field("header", &self.header)
            .field("verification_key_len", &self.verification_key.len())
            .field("signature_len", &self.signature.len())
            .field(
                "share_hash_chain",
                &self
                    .share_hash_chain
                    .iter()
                    .map(|e| e.0)
                    .collect::<Vec<_>>(),
            )
            .field("block_hash_tree_len", &self.block_hash_tree.len())
            .field(
                "block_lens",
                &self.blocks.iter().map(Vec::len).collect::<Vec<_>>(),
            )
            .field("enc_privkey_len", &self.enc_privkey.len())
            .finish()
    }
}

/// `data[start..end]`; both ends were checked against the length by [`check_offset`], so
/// the error is only a guard against a bug in those checks.
fn region(data: &[u8], start: u64, end: u64) -> Result<&[u8], LayoutError> {
    usize::try_from(start)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(a, b)| data.get(a..b))
        .ok_or(LayoutError::Inconsistent("field outside the share"))
}

/// Offsets must be non-decreasing, within the data and below `MAX_MUTABLE_SHARE_SIZE`.
fn check_offset(field: &'static str, value: u64, min: u64, max: u64) -> Result<u64, LayoutError> {
    if value < min || value > max {
        return Err(LayoutError::BadOffset {
            field,
            value,
            min,
            max,
        });
    }
    Ok(value)
}

fn check_len(field: &'static str, len: u64, expected: u64) -> Result<(), LayoutError> {
    if len != expected {
        return Err(LayoutError::BadLength {
            field,
            len,
            expected,
        });
    }
    Ok(())
}

fn parse_hashes(field: &'static str, bytes: &[u8], count: u64) -> Result<Vec<Hash>, LayoutError> {
    check_len(
        field,
        bytes.len() as u64,
        count.saturating_mul(HASH_LEN as u64),
    )?;
    super::header::parse_hashes(bytes).ok_or(LayoutError::Inconsistent("ragged hash list"))
}

impl MutableShare {
    /// Parse share bytes of either version (dispatching on the first byte, as
    /// `MDMFSlotReadProxy` does). Never panics; allocates at most about the input size.
    /// Bytes after the end-of-share offset are ignored (a server keeps the tail of an
    /// older, longer version of the share).
    pub fn parse(data: &[u8]) -> Result<MutableShare, LayoutError> {
        match data.first() {
            None => Err(LayoutError::TooShort { len: 0, need: 1 }),
            Some(0) => Self::parse_sdmf(data),
            Some(1) => Self::parse_mdmf(data),
            Some(&v) => Err(LayoutError::UnknownVersion(v)),
        }
    }

    /// Parse an SDMF (version 0) share.
    pub fn parse_sdmf(data: &[u8]) -> Result<MutableShare, LayoutError> {
        if data.len() < SDMF_HEADER_LEN {
            return Err(LayoutError::TooShort {
                len: data.len(),
                need: SDMF_HEADER_LEN,
            });
        }
        let prefix = MutableSharePrefix::parse_sdmf(data)?;
        let Some(&o) = prefix.sdmf() else {
            return Err(LayoutError::Inconsistent(
                "version and offsets table disagree",
            ));
        };
        let header = prefix.header;
        let params = header.params()?;
        let max = (data.len() as u64).min(MAX_MUTABLE_SHARE_SIZE);
        let hl = SDMF_HEADER_LEN as u64;
        let o_sig = check_offset("signature", o.signature.into(), hl, max)?;
        let o_shc = check_offset("share_hash_chain", o.share_hash_chain.into(), o_sig, max)?;
        let o_bht = check_offset("block_hash_tree", o.block_hash_tree.into(), o_shc, max)?;
        let o_sd = check_offset("share_data", o.share_data.into(), o_bht, max)?;
        let o_epk = check_offset("enc_privkey", o.enc_privkey, o_sd, max)?;
        let o_eof = check_offset("EOF", o.eof, o_epk, max)?;

        let share_hash_chain = parse_share_hash_chain(region(data, o_shc, o_bht)?)?;
        // One segment (or none) -> a one-node block hash tree.
        let block_hash_tree = parse_hashes("block_hash_tree", region(data, o_bht, o_sd)?, 1)?;
        let share_data = region(data, o_sd, o_epk)?;
        let expected = params.num_segments * params.block_size;
        check_len("share_data", share_data.len() as u64, expected)?;
        let blocks = if params.num_segments == 0 {
            Vec::new()
        } else {
            vec![share_data.to_vec()]
        };
        Ok(MutableShare {
            header,
            verification_key: region(data, hl, o_sig)?.to_vec(),
            signature: region(data, o_sig, o_shc)?.to_vec(),
            share_hash_chain,
            block_hash_tree,
            blocks,
            salts: Vec::new(),
            enc_privkey: region(data, o_epk, o_eof)?.to_vec(),
        })
    }

    /// Parse an MDMF (version 1) share.
    pub fn parse_mdmf(data: &[u8]) -> Result<MutableShare, LayoutError> {
        if data.len() < MDMF_HEADER_LEN {
            return Err(LayoutError::TooShort {
                len: data.len(),
                need: MDMF_HEADER_LEN,
            });
        }
        let prefix = MutableSharePrefix::parse_mdmf(data)?;
        let Some(&o) = prefix.mdmf() else {
            return Err(LayoutError::Inconsistent(
                "version and offsets table disagree",
            ));
        };
        let header = prefix.header;
        let params = header.params()?;
        let max = (data.len() as u64).min(MAX_MUTABLE_SHARE_SIZE);
        let hl = MDMF_HEADER_LEN as u64;
        let o_epk = check_offset("enc_privkey", o.enc_privkey, hl, hl)?;
        let o_shc = check_offset("share_hash_chain", o.share_hash_chain, o_epk, max)?;
        let o_sig = check_offset("signature", o.signature, o_shc, max)?;
        let o_vk = check_offset("verification_key", o.verification_key, o_sig, max)?;
        let o_vke = check_offset("verification_key_end", o.verification_key_end, o_vk, max)?;
        let o_sd = check_offset("share_data", o.share_data, o_vke, max)?;
        let data_size = params.mdmf_share_data_size();
        let bht_at = o_sd.saturating_add(data_size);
        let o_bht = check_offset(
            "block_hash_tree",
            o.block_hash_tree,
            bht_at,
            bht_at.min(max),
        )?;
        let o_eof = check_offset("EOF", o.eof, o_bht, max)?;

        let share_hash_chain = parse_share_hash_chain(region(data, o_shc, o_sig)?)?;
        // num_segments <= data_size / 17 <= len, so tree_len cannot overflow.
        let nodes = tree_len(params.num_segments as usize) as u64;
        let block_hash_tree = parse_hashes("block_hash_tree", region(data, o_bht, o_eof)?, nodes)?;
        let mut blocks = Vec::with_capacity(params.num_segments as usize);
        let mut salts = Vec::with_capacity(params.num_segments as usize);
        let mut segments = Reader::new(region(data, o_sd, o_bht)?);
        for seg in 0..params.num_segments {
            let len = usize::try_from(params.block_len(seg))
                .map_err(|_| LayoutError::Inconsistent("block larger than memory"))?;
            salts.push(segments.array::<SALT_LEN>()?);
            blocks.push(segments.bytes(len)?.to_vec());
        }
        debug_assert_eq!(segments.remaining(), 0);
        Ok(MutableShare {
            header,
            verification_key: region(data, o_vk, o_vke)?.to_vec(),
            signature: region(data, o_sig, o_vk)?.to_vec(),
            share_hash_chain,
            block_hash_tree,
            blocks,
            salts,
            enc_privkey: region(data, o_epk, o_shc)?.to_vec(),
        })
    }

    /// The salt of segment `segment` (SDMF: the IV), if it exists.
    pub fn segment_salt(&self, segment: usize) -> Option<[u8; SALT_LEN]> {
        match self.header.format {
            MutableFormat::Sdmf => self.header.iv,
            MutableFormat::Mdmf => self.salts.get(segment).copied(),
        }
    }

    /// The bytes the signature covers.
    pub fn signed_prefix(&self) -> Vec<u8> {
        self.header.signed_prefix()
    }

    /// Check the signature over the signed prefix with `key`.
    pub fn verify_signature(
        &self,
        key: &super::keys::VerifyingKey,
    ) -> Result<(), super::keys::BadSignature> {
        key.verify(&self.signed_prefix(), &self.signature)
    }

    /// Check that the pieces agree with the header (sizes, counts, IV/salts by format).
    pub fn check_consistency(&self) -> Result<SegmentParams, LayoutError> {
        self.header.check_iv()?;
        let params = self.header.params()?;
        let nseg = params.num_segments;
        check_len("blocks", self.blocks.len() as u64, nseg)?;
        for (i, b) in self.blocks.iter().enumerate() {
            check_len("block", b.len() as u64, params.block_len(i as u64))?;
        }
        let want_salts = match self.header.format {
            MutableFormat::Sdmf => 0,
            MutableFormat::Mdmf => nseg,
        };
        check_len("salts", self.salts.len() as u64, want_salts)?;
        check_len(
            "block_hash_tree",
            self.block_hash_tree.len() as u64,
            tree_len(nseg as usize) as u64,
        )?;
        Ok(params)
    }

    /// The exact bytes Tahoe writes for this share. MDMF share data starts at 2167 with a
    /// zero gap before it (the server zero-fills the hole); SDMF is one contiguous blob.
    pub fn to_bytes(&self) -> Result<Vec<u8>, LayoutError> {
        self.check_consistency()?;
        let mut chain = Vec::with_capacity(self.share_hash_chain.len() * SHARE_HASH_ENTRY_LEN);
        for (i, h) in &self.share_hash_chain {
            chain.extend_from_slice(&i.to_be_bytes());
            chain.extend_from_slice(h);
        }
        let bht: Vec<u8> = self.block_hash_tree.concat();
        match self.header.format {
            MutableFormat::Sdmf => self.sdmf_bytes(&chain, &bht),
            MutableFormat::Mdmf => self.mdmf_bytes(&chain, &bht),
        }
    }

    fn sdmf_bytes(&self, chain: &[u8], bht: &[u8]) -> Result<Vec<u8>, LayoutError> {
        let share_data: &[u8] = self.blocks.first().map_or(&[], |b| &b[..]);
        let o_sig = SDMF_HEADER_LEN + self.verification_key.len();
        let o_shc = o_sig + self.signature.len();
        let o_bht = o_shc + chain.len();
        let o_sd = o_bht + bht.len();
        let o_epk = o_sd + share_data.len();
        let o_eof = o_epk + self.enc_privkey.len();
        let as_u32 = |field, v: usize| {
            u32::try_from(v).map_err(|_| LayoutError::BadOffset {
                field,
                value: v as u64,
                min: 0,
                max: u32::MAX as u64,
            })
        };
        let mut out = Vec::with_capacity(o_eof);
        out.extend_from_slice(&self.header.signed_prefix());
        out.extend_from_slice(&as_u32("signature", o_sig)?.to_be_bytes());
        out.extend_from_slice(&as_u32("share_hash_chain", o_shc)?.to_be_bytes());
        out.extend_from_slice(&as_u32("block_hash_tree", o_bht)?.to_be_bytes());
        out.extend_from_slice(&as_u32("share_data", o_sd)?.to_be_bytes());
        out.extend_from_slice(&(o_epk as u64).to_be_bytes());
        out.extend_from_slice(&(o_eof as u64).to_be_bytes());
        out.extend_from_slice(&self.verification_key);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(chain);
        out.extend_from_slice(bht);
        out.extend_from_slice(share_data);
        out.extend_from_slice(&self.enc_privkey);
        Ok(out)
    }

    fn mdmf_bytes(&self, chain: &[u8], bht: &[u8]) -> Result<Vec<u8>, LayoutError> {
        let o_epk = MDMF_HEADER_LEN;
        let o_shc = o_epk + self.enc_privkey.len();
        let o_sig = o_shc + chain.len();
        let o_vk = o_sig + self.signature.len();
        let o_vke = o_vk + self.verification_key.len();
        let o_sd = MDMF_SHARE_DATA_OFFSET;
        if o_vke > o_sd {
            return Err(LayoutError::MdmfFieldsTooLarge {
                need: o_vke as u64,
                share_data: o_sd as u64,
            });
        }
        let data_size: usize = self.blocks.iter().map(|b| b.len() + SALT_LEN).sum();
        let o_bht = o_sd + data_size;
        let o_eof = o_bht + bht.len();
        let mut out = Vec::with_capacity(o_eof);
        out.extend_from_slice(&self.header.signed_prefix());
        for o in [o_epk, o_shc, o_sig, o_vk, o_vke, o_sd, o_bht, o_eof] {
            out.extend_from_slice(&(o as u64).to_be_bytes());
        }
        out.extend_from_slice(&self.enc_privkey);
        out.extend_from_slice(chain);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.verification_key);
        out.resize(o_sd, 0);
        for (salt, block) in self.salts.iter().zip(&self.blocks) {
            out.extend_from_slice(salt);
            out.extend_from_slice(block);
        }
        out.extend_from_slice(bht);
        Ok(out)
    }
}

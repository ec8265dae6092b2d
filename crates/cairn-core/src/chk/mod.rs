//! Immutable (CHK) files: parameters and geometry, convergent key, streaming encoder, URI
//! extension block, share layouts v1/v2, verifying decoder, LIT for tiny files.
//!
//! Byte-compatible with Tahoe-LAFS 1.20 (`immutable/upload.py`, `encode.py`, `layout.py`,
//! `uri.py`, `checker.py`, `downloader/`). See `docs/formats/chk-share.md` and `docs/formats/ueb.md`.
//!
//! Upload flow: [`ConvergentKeyHasher`] over the plaintext (first pass), then
//! [`ChkEncoder::new`], [`ChkEncoder::header`], [`ChkEncoder::push_segment`] per segment
//! (second pass), [`ChkEncoder::finish`]. Files of at most [`LIT_SIZE_THRESHOLD`] bytes are
//! LIT caps instead ([`is_lit`]). Download: [`decode`] or a [`ChkDecoder`] per file.
//!
//! Fuzzing entry points: [`ueb::Ueb::parse`] and [`layout::ShareLayout::parse`].

pub mod decoder;
pub mod encoder;
pub mod key;
pub mod layout;
pub mod params;
pub mod ueb;

use thiserror::Error;

use crate::hashutil::{Hash, KEY_LEN};

pub use decoder::{decode, verify_share, ChkDecoder, DecodeError, SegmentDecoder};
pub use encoder::{encode_file, ChkEncoder, EncodedFile, EncodedTrailer, SegmentOutput};
pub use key::{convergent_key, ConvergentKeyHasher};
pub use layout::{share_hash_entries, LayoutError, ShareHead, ShareLayout};
pub use params::{
    ChkGeometry, EncodingParams, LayoutVersion, ShareOffsets, DEFAULT_MAX_SEGMENT_SIZE,
    LIT_SIZE_THRESHOLD,
};
pub use ueb::{CodecParams, Ueb, UebError};

/// Errors from encoding-side operations.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChkError {
    #[error("bad encoding parameters: {0}")]
    BadParams(String),
    #[error("file too large for this layout or for this machine's address space")]
    TooLarge,
    #[error("expected {expected} bytes of input, got {got}")]
    WrongInputLength { expected: u64, got: u64 },
    #[error("segment {segment} must be {expected} bytes, got {got}")]
    WrongSegmentLength {
        segment: u64,
        expected: u64,
        got: u64,
    },
    #[error("all {num_segments} segments were already pushed")]
    TooManySegments { num_segments: u64 },
    #[error("finish after {pushed} of {expected} segments")]
    MissingSegments { pushed: u64, expected: u64 },
    #[error("erasure coding: {0}")]
    Fec(crate::fec::FecError),
}

/// The fields of a CHK read or verify cap the decoder needs (`k`, `N`, size, UEB hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChkCapInfo {
    pub needed: u16,
    pub total: u16,
    pub size: u64,
    pub ueb_hash: Hash,
}

impl ChkCapInfo {
    /// `URI:CHK:<b32 key>:<b32 ueb_hash>:<k>:<N>:<size>`.
    pub fn read_cap_string(&self, key: &[u8; KEY_LEN]) -> String {
        format!(
            "URI:CHK:{}:{}:{}:{}:{}",
            crate::base32::encode(key),
            crate::base32::encode(&self.ueb_hash),
            self.needed,
            self.total,
            self.size
        )
    }

    /// `URI:CHK-Verifier:<b32 storage index>:<b32 ueb_hash>:<k>:<N>:<size>`.
    pub fn verify_cap_string(&self, storage_index: &[u8; 16]) -> String {
        format!(
            "URI:CHK-Verifier:{}:{}:{}:{}:{}",
            crate::base32::encode(storage_index),
            crate::base32::encode(&self.ueb_hash),
            self.needed,
            self.total,
            self.size
        )
    }
}

impl From<&crate::cap::ChkReadCap> for ChkCapInfo {
    fn from(c: &crate::cap::ChkReadCap) -> Self {
        ChkCapInfo {
            needed: c.needed(),
            total: c.total(),
            size: c.size(),
            ueb_hash: *c.ueb_hash(),
        }
    }
}

impl From<&crate::cap::ChkVerifyCap> for ChkCapInfo {
    fn from(c: &crate::cap::ChkVerifyCap) -> Self {
        ChkCapInfo {
            needed: c.needed(),
            total: c.total(),
            size: c.size(),
            ueb_hash: *c.ueb_hash(),
        }
    }
}

/// [`decode`] with a read cap: verified plaintext from complete shares.
pub fn decode_read_cap(
    cap: &crate::cap::ChkReadCap,
    shares: &[(crate::ids::ShareNum, &[u8])],
) -> Result<Vec<u8>, DecodeError> {
    decode(&ChkCapInfo::from(cap), Some(*cap.key()), shares)
}

/// Whether Tahoe stores a file of this size as a LIT cap (no shares): size <= 55.
pub fn is_lit(size: u64) -> bool {
    size <= LIT_SIZE_THRESHOLD
}

/// `URI:LIT:<b32 data>` for a file of at most 55 bytes.
pub fn lit_cap_string(data: &[u8]) -> Option<String> {
    is_lit(data.len() as u64).then(|| format!("URI:LIT:{}", crate::base32::encode(data)))
}

/// What uploading a whole in-memory file produces.
#[derive(Clone, Debug)]
pub enum Immutable {
    /// Files of at most 55 bytes: the data itself is the cap.
    Lit(Vec<u8>),
    Chk(Box<EncodedFile>),
}

impl Immutable {
    pub fn cap_string(&self) -> String {
        match self {
            Immutable::Lit(d) => crate::cap::LitCap::new(d.clone()).to_string(),
            Immutable::Chk(f) => f.trailer.read_cap().to_string(),
        }
    }
}

/// Convergent upload of an in-memory file: LIT for <= 55 bytes, otherwise key derivation
/// and encoding with Tahoe's layout choice.
pub fn encode_convergent(
    params: &EncodingParams,
    convergence_secret: &[u8],
    plaintext: &[u8],
) -> Result<Immutable, ChkError> {
    params.validate()?;
    if is_lit(plaintext.len() as u64) {
        return Ok(Immutable::Lit(plaintext.to_vec()));
    }
    let key = convergent_key(params, convergence_secret, plaintext)?;
    Ok(Immutable::Chk(Box::new(encode_file(
        params, key, plaintext, None,
    )?)))
}

//! Mutable files (SDMF and MDMF): keys, signatures, share layouts, encoding and decoding.
//!
//! * [`keys`]: [`SigningKey`] / [`VerifyingKey`] (RSA-2048, PSS-SHA-256, salt 32; room for a
//!   second algorithm), [`MutableKeys`] (writekey → readkey → storage index, fingerprint,
//!   write enablers), encrypted private keys.
//! * [`layout`]: [`MutableShare`] — typed parse of SDMF (version 0) and MDMF (version 1)
//!   share bytes and the exact bytes Tahoe writes.
//! * [`header`]: [`MutableSharePrefix`] — the signed header and offsets table of either
//!   format, parsed once from a share's first bytes for every reader.
//! * [`params`]: segment geometry.
//! * [`codec`]: [`encode`] plaintext into N shares exactly as Tahoe's `Publish` does, and
//!   [`decode`] / [`verify_share`] with signature, fingerprint and hash-tree checks.
//!
//! Everything is pure: salts, signing randomness and keys are passed in.

pub mod codec;
pub mod header;
pub mod keys;
pub mod layout;
pub mod params;
pub mod update;

pub use codec::{
    decode, encode, encode_unsigned, verify_share, BadShare, DecodeError, Decoded, EncodeError,
    Encoding, ShareFault, UnsignedShares,
};
pub use header::MutableSharePrefix;
pub use keys::{
    decrypt_privkey, encrypt_privkey, BadSignature, KeyAlgorithm, KeyError, MutableKeys,
    ReaderKeys, SigningKey, VerifyingKey, WriterKeys,
};
pub use layout::{LayoutError, MutableShare, ShareHeader};
pub use params::{ParamsError, SegmentParams};

/// Salt (IV) length.
pub const SALT_LEN: usize = 16;
/// MDMF segment size before rounding up to a multiple of k
/// (`publish.py::DEFAULT_MUTABLE_MAX_SEGMENT_SIZE`).
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 128 * 1024;

/// The two mutable share formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MutableFormat {
    /// Version byte 0: one segment, one file-wide IV in the signed header.
    Sdmf,
    /// Version byte 1: 128 KiB segments, a salt per segment stored with each block.
    Mdmf,
}

impl MutableFormat {
    /// The share's first byte.
    pub fn version_byte(self) -> u8 {
        match self {
            MutableFormat::Sdmf => 0,
            MutableFormat::Mdmf => 1,
        }
    }

    pub fn from_version_byte(v: u8) -> Option<MutableFormat> {
        match v {
            0 => Some(MutableFormat::Sdmf),
            1 => Some(MutableFormat::Mdmf),
            _ => None,
        }
    }
}

//! Immutable file caps: `URI:LIT:`, `URI:CHK:`, `URI:CHK-Verifier:`.

use core::fmt;

use zeroize::Zeroize;

use super::{CapError, ChkKey, StorageIndex};
use crate::{base32, hashutil};

/// Largest total share count Tahoe's zfec supports.
pub const MAX_SHARES: u16 = 256;

/// `URI:LIT:<b32(data)>`: a small file whose whole content is in the cap
/// (`LiteralFileURI`). May be empty. Has no storage index and no verify cap.
///
/// The data is the file content, so it is treated as a secret: Debug shows only its
/// length, and it is zeroized on drop.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LitCap {
    data: Vec<u8>,
}

impl LitCap {
    /// A LIT cap holding `data`.
    pub fn new(data: Vec<u8>) -> LitCap {
        LitCap { data }
    }

    /// The file content.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// File size (= data length).
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    pub(crate) fn fmt_body(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32::encode(&self.data))
    }
}

impl Drop for LitCap {
    fn drop(&mut self) {
        self.data.zeroize();
    }
}

impl fmt::Display for LitCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("URI:LIT:")?;
        self.fmt_body(f)
    }
}

impl fmt::Debug for LitCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LitCap {{ len: {} }}", self.data.len())
    }
}

/// Check CHK encoding parameters: 1 <= k <= N <= 256.
pub(crate) fn check_params(needed: u64, total: u64) -> Result<(u16, u16), CapError> {
    if total > u64::from(MAX_SHARES) {
        return Err(CapError::TooManyShares { n: total });
    }
    if needed == 0 {
        return Err(CapError::ZeroNeededShares);
    }
    if needed > total {
        return Err(CapError::NeededExceedsTotal {
            k: needed,
            n: total,
        });
    }
    // Both are <= 256 now.
    Ok((needed as u16, total as u16))
}

/// `URI:CHK:<key>:<ueb_hash>:<k>:<N>:<size>`: read cap of an immutable file (`CHKFileURI`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ChkReadCap {
    key: ChkKey,
    ueb_hash: [u8; 32],
    needed: u16,
    total: u16,
    size: u64,
}

impl ChkReadCap {
    /// Build from parts. Fails unless `1 <= needed <= total <= 256`.
    pub fn new(
        key: [u8; 16],
        ueb_hash: [u8; 32],
        needed: u16,
        total: u16,
        size: u64,
    ) -> Result<ChkReadCap, CapError> {
        let (needed, total) = check_params(u64::from(needed), u64::from(total))?;
        Ok(ChkReadCap {
            key: ChkKey::new(key),
            ueb_hash,
            needed,
            total,
            size,
        })
    }

    /// The AES key (secret).
    pub fn key(&self) -> &[u8; 16] {
        self.key.as_bytes()
    }

    /// The AES key as its redacting newtype.
    pub fn chk_key(&self) -> &ChkKey {
        &self.key
    }

    /// Hash of the URI extension block.
    pub fn ueb_hash(&self) -> &[u8; 32] {
        &self.ueb_hash
    }

    /// Shares needed to recover the file (k).
    pub fn needed(&self) -> u16 {
        self.needed
    }

    /// Total shares produced (N).
    pub fn total(&self) -> u16 {
        self.total
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `storage_index_hash(key)`.
    pub fn storage_index(&self) -> StorageIndex {
        StorageIndex(hashutil::storage_index_hash(self.key.as_bytes()))
    }

    /// The verify cap (`get_verify_cap`).
    pub fn verifier(&self) -> ChkVerifyCap {
        ChkVerifyCap {
            storage_index: self.storage_index(),
            ueb_hash: self.ueb_hash,
            needed: self.needed,
            total: self.total,
            size: self.size,
        }
    }

    pub(crate) fn fmt_body(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}:{}",
            self.key.to_base32(),
            base32::encode(&self.ueb_hash),
            self.needed,
            self.total,
            self.size
        )
    }
}

impl fmt::Display for ChkReadCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("URI:CHK:")?;
        self.fmt_body(f)
    }
}

impl fmt::Debug for ChkReadCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChkReadCap")
            .field("key", &self.key)
            .field("storage_index", &self.storage_index())
            .field("ueb_hash", &base32::encode(&self.ueb_hash))
            .field("needed", &self.needed)
            .field("total", &self.total)
            .field("size", &self.size)
            .finish()
    }
}

/// `URI:CHK-Verifier:<si>:<ueb_hash>:<k>:<N>:<size>` (`CHKFileVerifierURI`). Not secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ChkVerifyCap {
    storage_index: StorageIndex,
    ueb_hash: [u8; 32],
    needed: u16,
    total: u16,
    size: u64,
}

impl ChkVerifyCap {
    /// Build from parts. Fails unless `1 <= needed <= total <= 256`.
    pub fn new(
        storage_index: StorageIndex,
        ueb_hash: [u8; 32],
        needed: u16,
        total: u16,
        size: u64,
    ) -> Result<ChkVerifyCap, CapError> {
        let (needed, total) = check_params(u64::from(needed), u64::from(total))?;
        Ok(ChkVerifyCap {
            storage_index,
            ueb_hash,
            needed,
            total,
            size,
        })
    }

    /// The storage index (carried in the cap).
    pub fn storage_index(&self) -> StorageIndex {
        self.storage_index
    }

    /// Hash of the URI extension block.
    pub fn ueb_hash(&self) -> &[u8; 32] {
        &self.ueb_hash
    }

    /// k.
    pub fn needed(&self) -> u16 {
        self.needed
    }

    /// N.
    pub fn total(&self) -> u16 {
        self.total
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn fmt_body(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}:{}",
            self.storage_index,
            base32::encode(&self.ueb_hash),
            self.needed,
            self.total,
            self.size
        )
    }
}

impl fmt::Display for ChkVerifyCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("URI:CHK-Verifier:")?;
        self.fmt_body(f)
    }
}

impl fmt::Debug for ChkVerifyCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChkVerifyCap")
            .field("storage_index", &self.storage_index)
            .field("ueb_hash", &base32::encode(&self.ueb_hash))
            .field("needed", &self.needed)
            .field("total", &self.total)
            .field("size", &self.size)
            .finish()
    }
}

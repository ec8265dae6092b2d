//! Convergent encryption key (`FileHandle._get_encryption_key_convergent`).

use crate::hashutil::{convergence_hasher, TaggedHasher, KEY_LEN};

use super::params::EncodingParams;
use super::ChkError;

/// Streaming hasher for the convergent AES key. The tag binds the convergence secret and
/// `k`, `N` and the *rounded* segment size, so the file size must be known up front.
///
/// Callers feed the whole plaintext (any chunking), then [`Self::finish`]; the encoder
/// needs the key before the first segment, so uploads read the file twice.
#[derive(Clone)]
pub struct ConvergentKeyHasher {
    inner: TaggedHasher,
    expected: u64,
    fed: u64,
}

impl ConvergentKeyHasher {
    pub fn new(
        params: &EncodingParams,
        file_size: u64,
        convergence_secret: &[u8],
    ) -> Result<Self, ChkError> {
        let segsize = params.segment_size_for(file_size)?;
        let inner = convergence_hasher(
            params.needed as usize,
            params.total as usize,
            segsize,
            convergence_secret,
        )
        .map_err(|e| ChkError::BadParams(e.to_string()))?;
        Ok(ConvergentKeyHasher {
            inner,
            expected: file_size,
            fed: 0,
        })
    }

    pub fn update(&mut self, plaintext: &[u8]) {
        self.fed = self.fed.saturating_add(plaintext.len() as u64);
        self.inner.update(plaintext);
    }

    /// The 16-byte key; fails if the bytes fed differ from the announced size.
    pub fn finish(self) -> Result<[u8; KEY_LEN], ChkError> {
        if self.fed != self.expected {
            return Err(ChkError::WrongInputLength {
                expected: self.expected,
                got: self.fed,
            });
        }
        Ok(self.inner.finish_truncated::<KEY_LEN>())
    }
}

/// One-shot convergent key of a whole in-memory file.
pub fn convergent_key(
    params: &EncodingParams,
    convergence_secret: &[u8],
    plaintext: &[u8],
) -> Result<[u8; KEY_LEN], ChkError> {
    let mut h = ConvergentKeyHasher::new(params, plaintext.len() as u64, convergence_secret)?;
    h.update(plaintext);
    h.finish()
}

//! AES-128-CTR exactly as Tahoe uses it: the initial counter block is sixteen zero bytes
//! and the whole 128-bit block is a big-endian counter (`allmydata/crypto/aes.py`).

use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// An AES-128-CTR keystream positioned at some byte offset.
pub struct AesCtr {
    inner: Aes128Ctr,
}

impl AesCtr {
    /// Keystream for `key` starting at byte 0 (zero IV).
    pub fn new(key: &[u8; 16]) -> Self {
        AesCtr {
            inner: Aes128Ctr::new(key.into(), &[0u8; 16].into()),
        }
    }

    /// Keystream with an explicit initial counter block (Tahoe's formats always use
    /// zero; kept for the known-answer tests of counter wrap-around).
    pub fn with_iv(key: &[u8; 16], iv: &[u8; 16]) -> Self {
        AesCtr {
            inner: Aes128Ctr::new(key.into(), iv.into()),
        }
    }

    /// Keystream for `key` starting at byte `offset` of the stream.
    pub fn at_offset(key: &[u8; 16], offset: u64) -> Self {
        let mut c = Self::new(key);
        c.inner.seek(offset);
        c
    }

    /// XOR the next `data.len()` keystream bytes into `data` (encrypts and decrypts).
    pub fn apply(&mut self, data: &mut [u8]) {
        self.inner.apply_keystream(data);
    }
}

/// One-shot encrypt/decrypt of `data` from offset 0.
pub fn aes_ctr(key: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    AesCtr::new(key).apply(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeking_matches_streaming() {
        let key = [7u8; 16];
        let whole = aes_ctr(&key, &[0u8; 100]);
        let mut tail = [0u8; 37];
        AesCtr::at_offset(&key, 63).apply(&mut tail);
        assert_eq!(&whole[63..], &tail[..]);
    }
}

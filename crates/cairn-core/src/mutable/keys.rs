//! Mutable-file keys: the signing key pair and everything Tahoe derives from it.
//!
//! Tahoe 1.20 (`allmydata/crypto/rsa.py`, `mutable/common.py`):
//! * keys are RSA, 2048-bit, e = 65537 when generated; loading a private key refuses any
//!   other modulus size (`create_signing_keypair_from_string`), but *verifying* keys of any
//!   size and exponent are accepted (old pycryptopp-era keys use e = 17);
//! * the private key is serialised as unencrypted PKCS#8 DER, the public key as
//!   SubjectPublicKeyInfo DER;
//! * signatures are RSASSA-PSS with SHA-256, MGF1-SHA-256 and a **32-byte** salt;
//! * `writekey = H16(privkey PKCS#8 DER)`, `readkey = H16(writekey)`,
//!   `storage index = H16(readkey)`, `fingerprint = H(SPKI DER)`,
//!   `encprivkey = AES-128-CTR(writekey, PKCS#8 DER)`.
//!
//! Only RSA exists today; [`SigningKey`], [`VerifyingKey`] and [`KeyAlgorithm`] are enums
//! so that a second algorithm (Ed25519) can be added without changing their users.

use std::fmt;

use rand_core::CryptoRngCore;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Pss, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::aes_ctr;
use crate::hashutil::{
    ssk_pubkey_fingerprint_hash, ssk_readkey_hash, ssk_storage_index_hash, ssk_write_enabler_hash,
    ssk_write_enabler_master_hash, ssk_writekey_hash, Hash,
};

/// RSA modulus size Tahoe creates and insists on when loading a private key.
pub const RSA_KEY_BITS: usize = 2048;
/// Public exponent of keys Tahoe generates.
pub const RSA_PUBLIC_EXPONENT: u32 = 65537;
/// PSS salt length (`allmydata.crypto.rsa.RSA_PSS_SALT_LENGTH`), fixed for compatibility
/// with pycryptopp-era signatures.
pub const RSA_PSS_SALT_LEN: usize = 32;

/// Which signature algorithm a mutable file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// RSA with RSASSA-PSS / SHA-256 / MGF1-SHA-256 / 32-byte salt (SDMF and MDMF).
    RsaPssSha256,
}

/// Errors loading, generating or using keys.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes are not a private key we can read (bad DER/PEM, not RSA, inconsistent numbers).
    #[error("malformed private key: {0}")]
    MalformedPrivateKey(String),
    /// The bytes are not a SubjectPublicKeyInfo we can read.
    #[error("malformed public key: {0}")]
    MalformedPublicKey(String),
    /// A private key whose modulus is not 2048 bits (Tahoe: "Private Key must be 2048 bits").
    #[error("private key must be 2048 bits, got {bits}")]
    WrongKeySize { bits: usize },
    /// PEM with a label other than `RSA PRIVATE KEY` or `PRIVATE KEY`.
    #[error("unsupported PEM label {0:?}")]
    UnsupportedPemLabel(String),
    /// Key generation or signing failed inside the RSA implementation.
    #[error("RSA operation failed: {0}")]
    Rsa(String),
    /// The decrypted private key does not hash to the writekey (`_try_to_validate_privkey`).
    #[error("decrypted private key does not match the writekey")]
    PrivkeyMismatch,
}

/// A signature that does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("bad signature")]
pub struct BadSignature;

// ---------------------------------------------------------------------------------------
// Signing key

/// A private (signing) key of a mutable file. `Debug` never shows key material; the key
/// and its DER encoding are wiped on drop.
#[derive(Clone)]
pub struct SigningKey {
    inner: SigningKeyInner,
}

#[derive(Clone)]
enum SigningKeyInner {
    Rsa {
        key: RsaPrivateKey,
        /// The PKCS#8 DER the writekey is hashed from.
        pkcs8: Zeroizing<Vec<u8>>,
    },
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// A fresh RSA-2048 key with e = 65537 (`client.py::KeyGenerator`). Slow in debug builds.
    pub fn generate_rsa(rng: &mut impl CryptoRngCore) -> Result<SigningKey, KeyError> {
        let key = RsaPrivateKey::new_with_exp(rng, RSA_KEY_BITS, &RSA_PUBLIC_EXPONENT.into())
            .map_err(|e| KeyError::Rsa(e.to_string()))?;
        Self::from_rsa(key)
    }

    fn from_rsa(key: RsaPrivateKey) -> Result<SigningKey, KeyError> {
        let pkcs8 = canonical_pkcs8(&key)?;
        Ok(SigningKey {
            inner: SigningKeyInner::Rsa { key, pkcs8 },
        })
    }

    /// Tahoe's `create_signing_keypair_from_string` followed by `der_string_from_signing_key`:
    /// read PKCS#8 DER, refuse anything but a consistent 2048-bit RSA key, and keep the
    /// re-serialised PKCS#8 form (what Python's `cryptography` writes) as [`Self::pkcs8_der`].
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        let info = rsa::pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
        let key = RsaPrivateKey::try_from(info.clone())
            .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
        check_rsa_private(&key, info.private_key)?;
        Self::from_rsa(key)
    }

    /// Read a PKCS#1 `RSAPrivateKey` DER. The PKCS#8 form is the standard wrapping of it
    /// (the same bytes `cryptography` produces when re-serialising).
    pub fn from_pkcs1_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        let key = RsaPrivateKey::from_pkcs1_der(der)
            .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
        check_rsa_private(&key, der)?;
        Self::from_rsa(key)
    }

    /// Read a PEM private key: `-----BEGIN RSA PRIVATE KEY-----` (PKCS#1) or
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8, unencrypted).
    pub fn from_pem(pem: &str) -> Result<SigningKey, KeyError> {
        let (label, der) = rsa::pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
        let der = Zeroizing::new(der);
        match label {
            "RSA PRIVATE KEY" => Self::from_pkcs1_der(&der),
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            other => Err(KeyError::UnsupportedPemLabel(other.to_string())),
        }
    }

    /// Load a private key decrypted from a share, keeping its exact bytes as
    /// [`Self::pkcs8_der`] (Tahoe re-publishes the encprivkey it read, not a re-encoding).
    /// The writekey check must already have been done on `der`.
    fn from_share_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let info = rsa::pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
        let key = RsaPrivateKey::try_from(info.clone())
            .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
        check_rsa_private(&key, info.private_key)?;
        Ok(SigningKey {
            inner: SigningKeyInner::Rsa {
                key,
                pkcs8: Zeroizing::new(der.to_vec()),
            },
        })
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.inner {
            SigningKeyInner::Rsa { .. } => KeyAlgorithm::RsaPssSha256,
        }
    }

    /// The PKCS#8 DER private key (`der_string_from_signing_key`). Secret.
    pub fn pkcs8_der(&self) -> &[u8] {
        match &self.inner {
            SigningKeyInner::Rsa { pkcs8, .. } => pkcs8,
        }
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) of [`Self::pkcs8_der`].
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let pem = rsa::pkcs8::der::pem::encode_string(
            "PRIVATE KEY",
            rsa::pkcs8::der::pem::LineEnding::LF,
            self.pkcs8_der(),
        )
        .expect("PEM encoding of bytes into a String cannot fail");
        Zeroizing::new(pem)
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        match &self.inner {
            SigningKeyInner::Rsa { key, .. } => {
                let public = key.to_public_key();
                let spki = public
                    .to_public_key_der()
                    .expect("an RSA public key always encodes")
                    .into_vec();
                VerifyingKey {
                    inner: VerifyingKeyInner::Rsa { key: public, spki },
                }
            }
        }
    }

    /// Sign `message` (`rsa.sign_data`): RSASSA-PSS, SHA-256, MGF1-SHA-256. The 32-byte PSS
    /// salt is the first 32 bytes drawn from `rng`; later draws only blind the RSA
    /// operation, so a given salt always gives the same signature.
    pub fn sign(&self, rng: &mut impl CryptoRngCore, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            SigningKeyInner::Rsa { key, .. } => {
                let digest = Sha256::digest(message);
                // "Blinded" here is RSA blinding of the private-key operation (side-channel
                // protection); the signature is the same as without it.
                key.sign_with_rng(
                    rng,
                    Pss::new_blinded_with_salt::<Sha256>(RSA_PSS_SALT_LEN),
                    &digest,
                )
                .map_err(|e| KeyError::Rsa(e.to_string()))
            }
        }
    }
}

/// Tahoe's loading checks: 2048-bit modulus, and (like OpenSSL's `RSA_check_key`) the CRT
/// values stored in the key must be the ones its primes and exponent imply.
fn check_rsa_private(key: &RsaPrivateKey, pkcs1_der: &[u8]) -> Result<(), KeyError> {
    let bits = key.n().bits();
    if bits != RSA_KEY_BITS {
        return Err(KeyError::WrongKeySize { bits });
    }
    let given = rsa::pkcs1::RsaPrivateKey::try_from(pkcs1_der)
        .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
    let canonical = canonical_pkcs8(key)?;
    let info = rsa::pkcs8::PrivateKeyInfo::try_from(&canonical[..])
        .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
    let ours = rsa::pkcs1::RsaPrivateKey::try_from(info.private_key)
        .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
    if given.exponent1 != ours.exponent1
        || given.exponent2 != ours.exponent2
        || given.coefficient != ours.coefficient
    {
        return Err(KeyError::MalformedPrivateKey(
            "inconsistent CRT parameters".into(),
        ));
    }
    Ok(())
}

fn canonical_pkcs8(key: &RsaPrivateKey) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let doc = key
        .to_pkcs8_der()
        .map_err(|e| KeyError::MalformedPrivateKey(e.to_string()))?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

// ---------------------------------------------------------------------------------------
// Verifying key

/// A public (verification) key, kept together with the exact SPKI DER bytes it was read
/// from (the fingerprint is over those bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    inner: VerifyingKeyInner,
}

#[derive(Clone, PartialEq, Eq)]
enum VerifyingKeyInner {
    Rsa { key: RsaPublicKey, spki: Vec<u8> },
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithm", &self.algorithm())
            .field("fingerprint", &crate::base32::encode(&self.fingerprint()))
            .finish()
    }
}

impl VerifyingKey {
    /// Read a SubjectPublicKeyInfo DER (`create_verifying_key_from_string`). Any RSA modulus
    /// size up to 4096 bits and any odd exponent the RSA crate accepts (including e = 17).
    pub fn from_spki_der(der: &[u8]) -> Result<VerifyingKey, KeyError> {
        let key = RsaPublicKey::from_public_key_der(der)
            .map_err(|e| KeyError::MalformedPublicKey(e.to_string()))?;
        Ok(VerifyingKey {
            inner: VerifyingKeyInner::Rsa {
                key,
                spki: der.to_vec(),
            },
        })
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.inner {
            VerifyingKeyInner::Rsa { .. } => KeyAlgorithm::RsaPssSha256,
        }
    }

    /// The SPKI DER (`der_string_from_verifying_key`), as stored in shares.
    pub fn spki_der(&self) -> &[u8] {
        match &self.inner {
            VerifyingKeyInner::Rsa { spki, .. } => spki,
        }
    }

    /// `ssk_pubkey_fingerprint_hash(spki_der)`.
    pub fn fingerprint(&self) -> Hash {
        ssk_pubkey_fingerprint_hash(self.spki_der())
    }

    /// Check a PSS signature over `message` (`rsa.verify_signature`).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), BadSignature> {
        match &self.inner {
            VerifyingKeyInner::Rsa { key, .. } => {
                if signature.len() != key.size() {
                    return Err(BadSignature);
                }
                let digest = Sha256::digest(message);
                key.verify(
                    Pss::new_with_salt::<Sha256>(RSA_PSS_SALT_LEN),
                    &digest,
                    signature,
                )
                .map_err(|_| BadSignature)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Derived keys

/// `encprivkey = AES-128-CTR(writekey, zero IV)(privkey PKCS#8 DER)` (`encrypt_privkey`).
pub fn encrypt_privkey(writekey: &[u8; 16], pkcs8_der: &[u8]) -> Vec<u8> {
    aes_ctr(writekey, pkcs8_der)
}

/// Decrypt an encrypted private key from a share and accept it only if it hashes to
/// `writekey` (`ServermapUpdater._try_to_validate_privkey`), then load it (2048-bit RSA
/// only, as `create_signing_keypair_from_string`). The returned key's
/// [`SigningKey::pkcs8_der`] is exactly the decrypted bytes.
pub fn decrypt_privkey(writekey: &[u8; 16], enc_privkey: &[u8]) -> Result<SigningKey, KeyError> {
    let der = Zeroizing::new(aes_ctr(writekey, enc_privkey));
    if ssk_writekey_hash(&der) != *writekey {
        return Err(KeyError::PrivkeyMismatch);
    }
    SigningKey::from_share_pkcs8(&der)
}

/// The symmetric keys of one mutable file, derived the way Tahoe does. Holds the writekey
/// when known (write caps), always the readkey and storage index, and the public-key
/// fingerprint when known. `Debug` redacts the keys; they are wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct MutableKeys {
    writekey: Option<[u8; 16]>,
    readkey: [u8; 16],
    storage_index: [u8; 16],
    fingerprint: Option<[u8; 32]>,
}

impl Drop for MutableKeys {
    fn drop(&mut self) {
        if let Some(wk) = self.writekey.as_mut() {
            wk.zeroize();
        }
        self.readkey.zeroize();
    }
}

impl ZeroizeOnDrop for MutableKeys {}

impl fmt::Debug for MutableKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutableKeys")
            .field("writekey", &self.writekey.map(|_| "<redacted>"))
            .field("readkey", &"<redacted>")
            .field("storage_index", &crate::base32::encode(&self.storage_index))
            .field(
                "fingerprint",
                &self.fingerprint.map(|f| crate::base32::encode(&f)),
            )
            .finish()
    }
}

impl MutableKeys {
    /// Everything from the key pair (`derive_mutable_keys`): writekey from the PKCS#8 DER,
    /// fingerprint from the SPKI DER.
    pub fn from_signing_key(key: &SigningKey) -> MutableKeys {
        let mut keys = Self::from_writekey(ssk_writekey_hash(key.pkcs8_der()));
        keys.fingerprint = Some(key.verifying_key().fingerprint());
        keys
    }

    /// From a writekey alone (readkey and storage index follow; no fingerprint).
    pub fn from_writekey(writekey: [u8; 16]) -> MutableKeys {
        let readkey = ssk_readkey_hash(&writekey);
        MutableKeys {
            writekey: Some(writekey),
            readkey,
            storage_index: ssk_storage_index_hash(&readkey),
            fingerprint: None,
        }
    }

    /// From a readkey alone (read caps have the fingerprint too: see [`Self::with_fingerprint`]).
    pub fn from_readkey(readkey: [u8; 16]) -> MutableKeys {
        MutableKeys {
            writekey: None,
            readkey,
            storage_index: ssk_storage_index_hash(&readkey),
            fingerprint: None,
        }
    }

    /// Attach the fingerprint a cap carries.
    pub fn with_fingerprint(mut self, fingerprint: [u8; 32]) -> MutableKeys {
        self.fingerprint = Some(fingerprint);
        self
    }

    pub fn writekey(&self) -> Option<&[u8; 16]> {
        self.writekey.as_ref()
    }

    pub fn readkey(&self) -> &[u8; 16] {
        &self.readkey
    }

    pub fn storage_index(&self) -> [u8; 16] {
        self.storage_index
    }

    pub fn fingerprint(&self) -> Option<[u8; 32]> {
        self.fingerprint
    }

    /// `ssk_write_enabler_master_hash(writekey)`; `None` without a writekey.
    pub fn write_enabler_master(&self) -> Option<Hash> {
        self.writekey.map(|wk| ssk_write_enabler_master_hash(&wk))
    }

    /// The write enabler for the server whose 20-byte seed (its Foolscap tubid) is given.
    pub fn write_enabler(&self, server_seed: &[u8; 20]) -> Option<Hash> {
        self.writekey
            .map(|wk| ssk_write_enabler_hash(&wk, server_seed))
    }

    /// `encrypt_privkey(writekey, key.pkcs8_der())`; `None` without a writekey.
    pub fn encrypt_privkey(&self, key: &SigningKey) -> Option<Vec<u8>> {
        self.writekey
            .map(|wk| encrypt_privkey(&wk, key.pkcs8_der()))
    }

    /// [`decrypt_privkey`] with this writekey; `None` without a writekey.
    pub fn decrypt_privkey(&self, enc_privkey: &[u8]) -> Option<Result<SigningKey, KeyError>> {
        self.writekey.map(|wk| decrypt_privkey(&wk, enc_privkey))
    }
}

/// The keys a read cap gives: the readkey, the storage index derived from it and the
/// verification key's fingerprint (every SSK/MDMF cap carries it). Nothing here can write:
/// a reader has no writekey, so no write enabler and no private key, by type.
#[derive(Clone)]
pub struct ReaderKeys {
    readkey: [u8; 16],
    storage_index: [u8; 16],
    fingerprint: [u8; 32],
}

impl ReaderKeys {
    /// From a read cap's readkey and fingerprint.
    pub fn new(readkey: [u8; 16], fingerprint: [u8; 32]) -> ReaderKeys {
        ReaderKeys {
            readkey,
            storage_index: ssk_storage_index_hash(&readkey),
            fingerprint,
        }
    }

    pub fn readkey(&self) -> &[u8; 16] {
        &self.readkey
    }

    pub fn storage_index(&self) -> [u8; 16] {
        self.storage_index
    }

    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }
}

impl Drop for ReaderKeys {
    fn drop(&mut self) {
        self.readkey.zeroize();
    }
}

impl ZeroizeOnDrop for ReaderKeys {}

impl fmt::Debug for ReaderKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReaderKeys")
            .field("readkey", &"<redacted>")
            .field("storage_index", &crate::base32::encode(&self.storage_index))
            .field("fingerprint", &crate::base32::encode(&self.fingerprint))
            .finish()
    }
}

/// The keys a write cap gives: the writekey, and the reader's keys derived from it.
#[derive(Clone)]
pub struct WriterKeys {
    writekey: [u8; 16],
    reader: ReaderKeys,
}

impl WriterKeys {
    /// From a write cap's writekey and fingerprint.
    pub fn new(writekey: [u8; 16], fingerprint: [u8; 32]) -> WriterKeys {
        WriterKeys {
            reader: ReaderKeys::new(ssk_readkey_hash(&writekey), fingerprint),
            writekey,
        }
    }

    /// Everything from the key pair (`derive_mutable_keys`).
    pub fn from_signing_key(key: &SigningKey) -> WriterKeys {
        Self::new(
            ssk_writekey_hash(key.pkcs8_der()),
            key.verifying_key().fingerprint(),
        )
    }

    pub fn writekey(&self) -> &[u8; 16] {
        &self.writekey
    }

    /// What a reader of the same file holds.
    pub fn reader(&self) -> &ReaderKeys {
        &self.reader
    }

    /// The write enabler for the server whose 20-byte seed (its Foolscap tubid) is given.
    pub fn write_enabler(&self, server_seed: &[u8; 20]) -> Hash {
        ssk_write_enabler_hash(&self.writekey, server_seed)
    }

    /// `encrypt_privkey(writekey, key.pkcs8_der())`.
    pub fn encrypt_privkey(&self, key: &SigningKey) -> Vec<u8> {
        encrypt_privkey(&self.writekey, key.pkcs8_der())
    }

    /// [`decrypt_privkey`] with this writekey.
    pub fn decrypt_privkey(&self, enc_privkey: &[u8]) -> Result<SigningKey, KeyError> {
        decrypt_privkey(&self.writekey, enc_privkey)
    }
}

impl Drop for WriterKeys {
    fn drop(&mut self) {
        self.writekey.zeroize();
    }
}

impl ZeroizeOnDrop for WriterKeys {}

impl fmt::Debug for WriterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriterKeys")
            .field("writekey", &"<redacted>")
            .field("reader", &self.reader)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn reader_and_writer_keys_derive_as_mutable_keys_do() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let key = SigningKey::generate_rsa(&mut rng).unwrap();
        let all = MutableKeys::from_signing_key(&key);
        let w = WriterKeys::from_signing_key(&key);
        assert_eq!(Some(w.writekey()), all.writekey());
        assert_eq!(w.reader().readkey(), all.readkey());
        assert_eq!(w.reader().storage_index(), all.storage_index());
        assert_eq!(Some(w.reader().fingerprint()), all.fingerprint());
        assert_eq!(Some(w.write_enabler(&[3; 20])), all.write_enabler(&[3; 20]));
        let enc = w.encrypt_privkey(&key);
        assert_eq!(Some(enc.clone()), all.encrypt_privkey(&key));
        assert_eq!(
            w.decrypt_privkey(&enc).unwrap().pkcs8_der(),
            key.pkcs8_der()
        );
        // A writer rebuilt from its cap's fields is the same writer; a reader from the
        // reader's fields the same reader.
        let again = WriterKeys::new(*w.writekey(), w.reader().fingerprint());
        assert_eq!(again.reader().storage_index(), w.reader().storage_index());
        let r = ReaderKeys::new(*w.reader().readkey(), w.reader().fingerprint());
        assert_eq!(r.storage_index(), all.storage_index());
        assert!(!format!("{w:?}{r:?}").contains(&format!("{:?}", w.writekey())));
    }
}

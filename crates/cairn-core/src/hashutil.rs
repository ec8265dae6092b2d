//! Tahoe's hashes: tagged SHA-256d and every derivation built on it
//! (`allmydata/util/hashutil.py`).
//!
//! A tagged hash is `SHA256(SHA256(netstring(tag) || value))`, optionally truncated to a
//! prefix. Every tag Tahoe uses is a named constant in [`tags`]; a derivation that gets a
//! tag, an argument order or a truncation wrong produces caps no Tahoe node can read, so
//! each function here is checked against known answers produced by Tahoe itself
//! (`vectors/kat.json`).

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::netstring;

/// Length of symmetric keys (AES-128) and of truncated key-like hashes.
pub const KEY_LEN: usize = 16;
/// Length of salts/IVs.
pub const IV_LEN: usize = 16;
/// Length of a full SHA-256d output.
pub const HASH_LEN: usize = 32;

/// A 32-byte SHA-256d output.
pub type Hash = [u8; HASH_LEN];

/// Every hash tag Tahoe-LAFS 1.20 uses, byte for byte.
pub mod tags {
    pub const STORAGE_INDEX: &[u8] = b"allmydata_immutable_key_to_storage_index_v1";
    pub const BLOCK: &[u8] = b"allmydata_encoded_subshare_v1";
    pub const UEB: &[u8] = b"allmydata_uri_extension_v1";
    pub const PLAINTEXT: &[u8] = b"allmydata_plaintext_v1";
    pub const CIPHERTEXT: &[u8] = b"allmydata_crypttext_v1";
    pub const CIPHERTEXT_SEGMENT: &[u8] = b"allmydata_crypttext_segment_v1";
    pub const PLAINTEXT_SEGMENT: &[u8] = b"allmydata_plaintext_segment_v1";
    pub const CONVERGENT_ENCRYPTION: &[u8] =
        b"allmydata_immutable_content_to_key_with_added_secret_v1+";
    pub const CLIENT_RENEWAL: &[u8] = b"allmydata_client_renewal_secret_v1";
    pub const CLIENT_CANCEL: &[u8] = b"allmydata_client_cancel_secret_v1";
    pub const FILE_RENEWAL: &[u8] = b"allmydata_file_renewal_secret_v1";
    pub const FILE_CANCEL: &[u8] = b"allmydata_file_cancel_secret_v1";
    pub const BUCKET_RENEWAL: &[u8] = b"allmydata_bucket_renewal_secret_v1";
    pub const BUCKET_CANCEL: &[u8] = b"allmydata_bucket_cancel_secret_v1";
    pub const MUTABLE_WRITEKEY: &[u8] = b"allmydata_mutable_privkey_to_writekey_v1";
    pub const MUTABLE_WRITE_ENABLER_MASTER: &[u8] =
        b"allmydata_mutable_writekey_to_write_enabler_master_v1";
    pub const MUTABLE_WRITE_ENABLER: &[u8] =
        b"allmydata_mutable_write_enabler_master_and_nodeid_to_write_enabler_v1";
    pub const MUTABLE_PUBKEY: &[u8] = b"allmydata_mutable_pubkey_to_fingerprint_v1";
    pub const MUTABLE_READKEY: &[u8] = b"allmydata_mutable_writekey_to_readkey_v1";
    pub const MUTABLE_DATAKEY: &[u8] = b"allmydata_mutable_readkey_to_datakey_v1";
    pub const MUTABLE_STORAGEINDEX: &[u8] = b"allmydata_mutable_readkey_to_storage_index_v1";
    pub const DIRNODE_CHILD_WRITECAP: &[u8] =
        b"allmydata_mutable_writekey_and_salt_to_dirnode_child_capkey_v1";
    pub const DIRNODE_CHILD_SALT: &[u8] = b"allmydata_dirnode_child_rwcap_to_salt_v1";
    pub const BACKUPDB_DIRHASH: &[u8] = b"allmydata_backupdb_dirhash_v1";
    /// `hashtree.py`: internal node of a Merkle tree.
    pub const MERKLE_INTERNAL_NODE: &[u8] = b"Merkle tree internal node";
    /// `hashtree.py`: padding leaf; the value hashed is the decimal leaf index.
    pub const MERKLE_EMPTY_LEAF: &[u8] = b"Merkle tree empty leaf";
    /// `storage/mutable_schema.py`: magic of the v2 mutable container header.
    pub const MUTABLE_CONTAINER_HEADER: &[u8] = b"allmydata_mutable_container_header";
}

/// Streaming tagged SHA-256d (`tagged_hasher`).
#[derive(Clone)]
pub struct TaggedHasher {
    inner: Sha256,
}

impl TaggedHasher {
    pub fn new(tag: &[u8]) -> Self {
        let mut inner = Sha256::new();
        inner.update(netstring::netstring(tag));
        TaggedHasher { inner }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    pub fn finish(self) -> Hash {
        let h1 = self.inner.finalize();
        Sha256::digest(h1).into()
    }

    /// The first `N` bytes of the digest (Tahoe's `truncate_to`).
    pub fn finish_truncated<const N: usize>(self) -> [u8; N] {
        truncate(&self.finish())
    }
}

fn truncate<const N: usize>(h: &Hash) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&h[..N]);
    out
}

/// `tagged_hash(tag, value)`: SHA256d(netstring(tag) || value).
pub fn tagged_hash(tag: &[u8], value: &[u8]) -> Hash {
    let mut h = TaggedHasher::new(tag);
    h.update(value);
    h.finish()
}

/// `tagged_hash(tag, value, 16)`.
pub fn tagged_hash16(tag: &[u8], value: &[u8]) -> [u8; 16] {
    truncate(&tagged_hash(tag, value))
}

/// `tagged_pair_hash(tag, a, b)`: SHA256d(netstring(tag) || netstring(a) || netstring(b)).
pub fn tagged_pair_hash(tag: &[u8], a: &[u8], b: &[u8]) -> Hash {
    let mut inner = Sha256::new();
    inner.update(netstring::netstring(tag));
    inner.update(netstring::netstring(a));
    inner.update(netstring::netstring(b));
    Sha256::digest(inner.finalize()).into()
}

/// `tagged_pair_hash(tag, a, b, 16)`.
pub fn tagged_pair_hash16(tag: &[u8], a: &[u8], b: &[u8]) -> [u8; 16] {
    truncate(&tagged_pair_hash(tag, a, b))
}

/// Tahoe's `hashutil.hmac`. Not RFC 2104: the key is XORed with 0x36/0x5c byte by byte
/// without being padded to the SHA-256 block size. Kept because dirnode MACs use it.
pub fn tahoe_hmac(key: &[u8], data: &[u8]) -> Hash {
    let ikey: Vec<u8> = key.iter().map(|b| b ^ 0x36).collect();
    let okey: Vec<u8> = key.iter().map(|b| b ^ 0x5c).collect();
    let h1 = Sha256::new()
        .chain_update(&ikey)
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(&okey)
        .chain_update(h1)
        .finalize()
        .into()
}

/// `permute_server_hash`: plain SHA-1(peer_selection_index || seed), orders servers per file.
pub fn permute_server_hash(peer_selection_index: &[u8], seed: &[u8]) -> [u8; 20] {
    Sha1::new()
        .chain_update(peer_selection_index)
        .chain_update(seed)
        .finalize()
        .into()
}

// ---- immutable files ----

pub fn storage_index_hash(key: &[u8; KEY_LEN]) -> [u8; 16] {
    tagged_hash16(tags::STORAGE_INDEX, key)
}

pub fn block_hash(data: &[u8]) -> Hash {
    tagged_hash(tags::BLOCK, data)
}

pub fn uri_extension_hash(data: &[u8]) -> Hash {
    tagged_hash(tags::UEB, data)
}

pub fn plaintext_hash(data: &[u8]) -> Hash {
    tagged_hash(tags::PLAINTEXT, data)
}

pub fn crypttext_hash(data: &[u8]) -> Hash {
    tagged_hash(tags::CIPHERTEXT, data)
}

pub fn crypttext_hasher() -> TaggedHasher {
    TaggedHasher::new(tags::CIPHERTEXT)
}

pub fn crypttext_segment_hash(data: &[u8]) -> Hash {
    tagged_hash(tags::CIPHERTEXT_SEGMENT, data)
}

pub fn plaintext_segment_hash(data: &[u8]) -> Hash {
    tagged_hash(tags::PLAINTEXT_SEGMENT, data)
}

/// Error from [`convergence_hasher`]: Tahoe refuses these parameters with `ValueError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("convergence parameters out of range: k={k}, n={n} (need 1 <= k <= n <= 256)")]
pub struct ConvergenceParamsError {
    pub k: usize,
    pub n: usize,
}

/// The tag of the convergent-encryption hash:
/// `CONVERGENT_ENCRYPTION || netstring(secret) || netstring("k,n,segsize")`.
pub fn convergence_tag(
    k: usize,
    n: usize,
    segment_size: u64,
    convergence_secret: &[u8],
) -> Result<Vec<u8>, ConvergenceParamsError> {
    if k < 1 || n < 1 || k > n || k > 256 || n > 256 {
        return Err(ConvergenceParamsError { k, n });
    }
    let mut tag = tags::CONVERGENT_ENCRYPTION.to_vec();
    netstring::write(&mut tag, convergence_secret);
    netstring::write(&mut tag, format!("{k},{n},{segment_size}").as_bytes());
    Ok(tag)
}

/// Streaming hasher for the convergent key: feed the whole plaintext, then
/// `finish_truncated::<16>()` is the AES key (`convergence_hasher`).
pub fn convergence_hasher(
    k: usize,
    n: usize,
    segment_size: u64,
    convergence_secret: &[u8],
) -> Result<TaggedHasher, ConvergenceParamsError> {
    Ok(TaggedHasher::new(&convergence_tag(
        k,
        n,
        segment_size,
        convergence_secret,
    )?))
}

// ---- leases ----

/// Note the reversed arguments: the client's lease secret is the *tag*.
pub fn my_renewal_secret_hash(my_secret: &[u8]) -> Hash {
    tagged_hash(my_secret, tags::CLIENT_RENEWAL)
}

/// Note the reversed arguments: the client's lease secret is the *tag*.
pub fn my_cancel_secret_hash(my_secret: &[u8]) -> Hash {
    tagged_hash(my_secret, tags::CLIENT_CANCEL)
}

pub fn file_renewal_secret_hash(client_renewal_secret: &[u8], storage_index: &[u8]) -> Hash {
    tagged_pair_hash(tags::FILE_RENEWAL, client_renewal_secret, storage_index)
}

pub fn file_cancel_secret_hash(client_cancel_secret: &[u8], storage_index: &[u8]) -> Hash {
    tagged_pair_hash(tags::FILE_CANCEL, client_cancel_secret, storage_index)
}

/// `peerid` is the server's 20-byte binary tubid.
pub fn bucket_renewal_secret_hash(file_renewal_secret: &[u8], peerid: &[u8; 20]) -> Hash {
    tagged_pair_hash(tags::BUCKET_RENEWAL, file_renewal_secret, peerid)
}

/// `peerid` is the server's 20-byte binary tubid.
pub fn bucket_cancel_secret_hash(file_cancel_secret: &[u8], peerid: &[u8; 20]) -> Hash {
    tagged_pair_hash(tags::BUCKET_CANCEL, file_cancel_secret, peerid)
}

// ---- mutable files ----

/// Writekey from the PKCS#8 DER encoding of the private key.
pub fn ssk_writekey_hash(privkey_pkcs8_der: &[u8]) -> [u8; KEY_LEN] {
    tagged_hash16(tags::MUTABLE_WRITEKEY, privkey_pkcs8_der)
}

pub fn ssk_write_enabler_master_hash(writekey: &[u8]) -> Hash {
    tagged_hash(tags::MUTABLE_WRITE_ENABLER_MASTER, writekey)
}

/// Write enabler for one server; `peerid` is its 20-byte tubid.
pub fn ssk_write_enabler_hash(writekey: &[u8], peerid: &[u8]) -> Hash {
    let wem = ssk_write_enabler_master_hash(writekey);
    tagged_pair_hash(tags::MUTABLE_WRITE_ENABLER, &wem, peerid)
}

/// Fingerprint from the SubjectPublicKeyInfo DER of the public key.
pub fn ssk_pubkey_fingerprint_hash(pubkey_spki_der: &[u8]) -> Hash {
    tagged_hash(tags::MUTABLE_PUBKEY, pubkey_spki_der)
}

pub fn ssk_readkey_hash(writekey: &[u8]) -> [u8; KEY_LEN] {
    tagged_hash16(tags::MUTABLE_READKEY, writekey)
}

/// Per-segment data key; the salt (IV) comes first.
pub fn ssk_readkey_data_hash(salt: &[u8], readkey: &[u8]) -> [u8; KEY_LEN] {
    tagged_pair_hash16(tags::MUTABLE_DATAKEY, salt, readkey)
}

pub fn ssk_storage_index_hash(readkey: &[u8]) -> [u8; 16] {
    tagged_hash16(tags::MUTABLE_STORAGEINDEX, readkey)
}

/// Called by Tahoe with the child's rw_uri, despite its parameter name.
pub fn mutable_rwcap_salt_hash(data: &[u8]) -> [u8; IV_LEN] {
    tagged_hash16(tags::DIRNODE_CHILD_SALT, data)
}

pub fn mutable_rwcap_key_hash(salt: &[u8], writekey: &[u8]) -> [u8; KEY_LEN] {
    tagged_pair_hash16(tags::DIRNODE_CHILD_WRITECAP, salt, writekey)
}

pub fn backupdb_dirhash(contents: &[u8]) -> Hash {
    tagged_hash(tags::BACKUPDB_DIRHASH, contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base32;

    #[test]
    fn hmac_known_answer_from_compat_map() {
        assert_eq!(
            base32::encode(&tahoe_hmac(b"tag", b"")),
            "c54ypfi6pevb3nvo6ba42jtglpkry2kbdopqsi7dgrm4r7tw5sra"
        );
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut h = TaggedHasher::new(b"t");
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish(), tagged_hash(b"t", b"abc"));
    }

    #[test]
    fn convergence_params_checked() {
        assert!(convergence_tag(0, 1, 1, b"").is_err());
        assert!(convergence_tag(4, 3, 1, b"").is_err());
        assert!(convergence_tag(1, 257, 1, b"").is_err());
        assert!(convergence_tag(256, 256, 1, b"").is_ok());
    }
}

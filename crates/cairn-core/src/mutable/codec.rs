//! Encoding plaintext into mutable shares and decoding it back, as Tahoe's
//! `mutable/publish.py::Publish` and `mutable/retrieve.py::Retrieve` do.
//!
//! Encoding, per segment `i` (SDMF: one segment, or none for an empty file):
//! `key = ssk_readkey_data_hash(salt_i, readkey)`, AES-128-CTR from a zero counter,
//! zero-pad the ciphertext to `k · ceil(len / k)`, zfec into N blocks. The block hash leaf
//! is `block_hash(salt || block)` (MDMF) or `block_hash(block)` (SDMF); each share gets
//! the full block hash tree; the share hash tree is over the N block-tree roots, each
//! share gets `needed_hashes(shnum)` without the leaf, sorted; its root goes into the
//! signed header, which is signed with RSASSA-PSS.

use std::collections::BTreeMap;

use rand_core::CryptoRngCore;
use thiserror::Error;

use super::keys::{encrypt_privkey, KeyError, MutableKeys, SigningKey, VerifyingKey};
use super::layout::{LayoutError, MutableShare, ShareHeader};
use super::params::{ParamsError, SegmentParams};
use super::{MutableFormat, DEFAULT_MAX_SEGMENT_SIZE, SALT_LEN};
use crate::crypto::aes_ctr;
use crate::fec::{Fec, FecError};
use crate::hashtree::{pair_hash, roundup_pow2, HashTree};
use crate::hashutil::{block_hash, ssk_readkey_data_hash, Hash};

/// Why shares could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error("need {expected} salts, got {got}")]
    WrongSaltCount { expected: usize, got: usize },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Fec(#[from] FecError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// What identifies the version to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoding {
    pub format: MutableFormat,
    /// Shares needed, `1..=n`.
    pub k: u8,
    /// Total shares, `k..=255`.
    pub n: u8,
    /// Sequence number (1 for a new file, previous highest + 1 after).
    pub seqnum: u64,
    /// MDMF segment size before rounding up to a multiple of k (Tahoe always uses
    /// [`DEFAULT_MAX_SEGMENT_SIZE`]; tests may use smaller). Ignored for SDMF.
    pub max_segment_size: u64,
}

impl Encoding {
    /// Tahoe's parameters: 128 KiB MDMF segments.
    pub fn new(format: MutableFormat, k: u8, n: u8, seqnum: u64) -> Encoding {
        Encoding {
            format,
            k,
            n,
            seqnum,
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
        }
    }
}

/// All N shares of a version, complete except for the signature.
#[derive(Clone, Debug)]
pub struct UnsignedShares {
    header: ShareHeader,
    shares: Vec<MutableShare>,
}

impl UnsignedShares {
    pub fn header(&self) -> &ShareHeader {
        &self.header
    }

    /// The bytes to sign (75 bytes SDMF, 59 bytes MDMF).
    pub fn signed_prefix(&self) -> Vec<u8> {
        self.header.signed_prefix()
    }

    /// Put `signature` (made elsewhere) into every share; index = share number.
    pub fn with_signature(mut self, signature: &[u8]) -> Vec<MutableShare> {
        for s in &mut self.shares {
            s.signature = signature.to_vec();
        }
        self.shares
    }

    /// Sign the prefix with `key` and finish the shares.
    pub fn sign(
        self,
        key: &SigningKey,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<MutableShare>, EncodeError> {
        let sig = key.sign(rng, &self.signed_prefix())?;
        Ok(self.with_signature(&sig))
    }
}

/// Encode `plaintext` into N unsigned shares.
///
/// * `readkey`: the file's readkey (data keys are derived from it and each salt);
/// * `verification_key`: SPKI DER to store; `enc_privkey`: the encrypted private key to store;
/// * `salts`: SDMF exactly one (the IV, needed even for an empty file); MDMF one per
///   segment (none for an empty file) — see [`SegmentParams::num_salts`].
pub fn encode_unsigned(
    encoding: &Encoding,
    readkey: &[u8; 16],
    verification_key: &[u8],
    enc_privkey: &[u8],
    plaintext: &[u8],
    salts: &[[u8; SALT_LEN]],
) -> Result<UnsignedShares, EncodeError> {
    let Encoding {
        format,
        k,
        n,
        seqnum,
        max_segment_size,
    } = *encoding;
    let params = SegmentParams::for_publish_with_max(
        format,
        k,
        n,
        plaintext.len() as u64,
        max_segment_size,
    )?;
    if salts.len() != params.num_salts() {
        return Err(EncodeError::WrongSaltCount {
            expected: params.num_salts(),
            got: salts.len(),
        });
    }
    let fec = Fec::new(usize::from(k), usize::from(n))?;
    let nseg = params.num_segments as usize;
    let n = usize::from(n);
    let mut blocks: Vec<Vec<Vec<u8>>> = (0..n).map(|_| Vec::with_capacity(nseg)).collect();
    let mut leaves: Vec<Vec<Hash>> = (0..n).map(|_| Vec::with_capacity(nseg)).collect();
    let mut start = 0usize;
    for seg in 0..nseg {
        let salt = match format {
            MutableFormat::Sdmf => &salts[0],
            MutableFormat::Mdmf => &salts[seg],
        };
        let len = params.segment_data_len(seg as u64) as usize;
        let key = ssk_readkey_data_hash(salt, readkey);
        let mut ct = aes_ctr(&key, &plaintext[start..start + len]);
        start += len;
        let piece = params.block_len(seg as u64) as usize;
        ct.resize(piece * usize::from(k), 0);
        let pieces: Vec<&[u8]> = ct.chunks_exact(piece.max(1)).take(usize::from(k)).collect();
        let encoded = if piece == 0 {
            vec![Vec::new(); n]
        } else {
            fec.encode_all(&pieces)?
        };
        for (sh, block) in encoded.into_iter().enumerate() {
            let leaf = match format {
                MutableFormat::Sdmf => block_hash(&block),
                MutableFormat::Mdmf => {
                    let mut salted = Vec::with_capacity(SALT_LEN + block.len());
                    salted.extend_from_slice(salt);
                    salted.extend_from_slice(&block);
                    block_hash(&salted)
                }
            };
            leaves[sh].push(leaf);
            blocks[sh].push(block);
        }
    }
    let block_trees: Vec<HashTree> = leaves.iter().map(|l| HashTree::new(l)).collect();
    let roots: Vec<Hash> = block_trees.iter().map(HashTree::root).collect();
    let share_tree = HashTree::new(&roots);
    let header = ShareHeader {
        format,
        seqnum,
        root_hash: share_tree.root(),
        iv: match format {
            MutableFormat::Sdmf => Some(salts[0]),
            MutableFormat::Mdmf => None,
        },
        k,
        n: n as u8,
        segment_size: params.segment_size,
        data_length: params.data_length,
    };
    let shares = blocks
        .into_iter()
        .zip(block_trees)
        .enumerate()
        .map(|(sh, (blocks, tree))| MutableShare {
            header: header.clone(),
            verification_key: verification_key.to_vec(),
            signature: Vec::new(),
            share_hash_chain: share_tree
                .chain(sh, false)
                .into_iter()
                .map(|(i, h)| (i as u16, h))
                .collect(),
            block_hash_tree: tree.nodes().to_vec(),
            blocks,
            salts: match format {
                MutableFormat::Sdmf => Vec::new(),
                MutableFormat::Mdmf => salts.to_vec(),
            },
            enc_privkey: enc_privkey.to_vec(),
        })
        .collect();
    Ok(UnsignedShares { header, shares })
}

/// Encode and sign: everything Tahoe's publisher writes, from the signing key. Returns the
/// N shares in share-number order (serialise each with [`MutableShare::to_bytes`]).
pub fn encode(
    encoding: &Encoding,
    key: &SigningKey,
    plaintext: &[u8],
    salts: &[[u8; SALT_LEN]],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<MutableShare>, EncodeError> {
    let keys = MutableKeys::from_signing_key(key);
    let writekey = keys.writekey().expect("derived from a signing key");
    let enc_privkey = encrypt_privkey(writekey, key.pkcs8_der());
    let spki = key.verifying_key().spki_der().to_vec();
    encode_unsigned(
        encoding,
        keys.readkey(),
        &spki,
        &enc_privkey,
        plaintext,
        salts,
    )?
    .sign(key, rng)
}

// ---------------------------------------------------------------------------------------
// Verification and decoding

/// What is wrong with one share.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ShareFault {
    #[error("verification key does not match the fingerprint")]
    FingerprintMismatch,
    #[error("unreadable verification key: {0}")]
    BadVerificationKey(KeyError),
    #[error("signature does not verify")]
    BadSignature,
    #[error("share number {shnum} out of range for N={n}")]
    ShnumOutOfRange { shnum: u8, n: u8 },
    #[error("malformed share: {0}")]
    Layout(LayoutError),
    #[error("block hash of segment {segment} does not match the block hash tree")]
    BlockHash { segment: usize },
    #[error("block hash tree node {index} is wrong")]
    BlockHashTree { index: usize },
    #[error("share hash chain: {0}")]
    ShareHashChain(&'static str),
    #[error("share number given twice")]
    Duplicate,
}

/// A share that failed verification, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadShare {
    pub shnum: u8,
    pub fault: ShareFault,
}

/// Why no plaintext could be produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("no shares given")]
    NoShares,
    /// Fewer than k good shares of any one version. `needed` is k of the newest version
    /// seen with a good share (0 if none); `bad` names every rejected share.
    #[error("not enough good shares: need {needed}, have {good}; bad shares: {bad:?}")]
    NotEnoughShares {
        needed: u8,
        good: usize,
        bad: Vec<BadShare>,
    },
    #[error(transparent)]
    Fec(#[from] FecError),
}

/// The result of [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub plaintext: Vec<u8>,
    /// Header of the version decoded (the newest recoverable one).
    pub header: ShareHeader,
    /// Share numbers whose blocks were used.
    pub used: Vec<u8>,
    /// Shares that failed verification (the rest were enough).
    pub bad_shares: Vec<BadShare>,
    /// Good shares of other (older, or unrecoverable) versions, ignored.
    pub other_versions: Vec<u8>,
}

/// Verify one share completely on its own: the verification key matches `fingerprint`,
/// the signature covers the header, every block matches the block hash tree, and the
/// block-tree root with the share hash chain (exactly `needed_hashes(shnum)`, sorted)
/// gives the signed root hash. After this, the share's blocks and salts are authentic.
pub fn verify_share(
    shnum: u8,
    share: &MutableShare,
    fingerprint: &[u8; 32],
) -> Result<(), ShareFault> {
    if crate::hashutil::ssk_pubkey_fingerprint_hash(&share.verification_key) != *fingerprint {
        return Err(ShareFault::FingerprintMismatch);
    }
    let vk = VerifyingKey::from_spki_der(&share.verification_key)
        .map_err(ShareFault::BadVerificationKey)?;
    share
        .verify_signature(&vk)
        .map_err(|_| ShareFault::BadSignature)?;
    let header = &share.header;
    if shnum >= header.n {
        return Err(ShareFault::ShnumOutOfRange { shnum, n: header.n });
    }
    share.check_consistency().map_err(ShareFault::Layout)?;

    // Block hash tree: recompute it from the blocks and compare node by node.
    let leaves: Vec<Hash> = share
        .blocks
        .iter()
        .enumerate()
        .map(|(seg, block)| match header.format {
            MutableFormat::Sdmf => block_hash(block),
            MutableFormat::Mdmf => {
                let mut salted = Vec::with_capacity(SALT_LEN + block.len());
                salted.extend_from_slice(&share.salts[seg]);
                salted.extend_from_slice(block);
                block_hash(&salted)
            }
        })
        .collect();
    let tree = HashTree::new(&leaves);
    let first_leaf = tree.num_leaf_slots() - 1;
    if let Some(seg) =
        (0..leaves.len()).find(|&s| share.block_hash_tree[first_leaf + s] != leaves[s])
    {
        return Err(ShareFault::BlockHash { segment: seg });
    }
    if let Some(index) =
        (0..tree.nodes().len()).find(|&i| share.block_hash_tree[i] != tree.nodes()[i])
    {
        return Err(ShareFault::BlockHashTree { index });
    }

    // Share hash chain from leaf `shnum` (whose value is the block-tree root) to the root.
    let leaf_index = roundup_pow2(usize::from(header.n)) - 1 + usize::from(shnum);
    let mut needed = Vec::new();
    let mut i = leaf_index;
    while i != 0 {
        needed.push(if i % 2 == 1 { i + 1 } else { i - 1 });
        i = (i - 1) / 2;
    }
    needed.sort_unstable();
    if share.share_hash_chain.len() != needed.len()
        || share
            .share_hash_chain
            .iter()
            .zip(&needed)
            .any(|((got, _), want)| usize::from(*got) != *want)
    {
        return Err(ShareFault::ShareHashChain("wrong set of hash indices"));
    }
    let chain: BTreeMap<usize, Hash> = share
        .share_hash_chain
        .iter()
        .map(|(i, h)| (usize::from(*i), *h))
        .collect();
    let mut h = tree.root();
    let mut i = leaf_index;
    while i != 0 {
        let sibling = if i % 2 == 1 { i + 1 } else { i - 1 };
        let s = chain[&sibling];
        h = if i % 2 == 1 {
            pair_hash(&h, &s)
        } else {
            pair_hash(&s, &h)
        };
        i = (i - 1) / 2;
    }
    if h != header.root_hash {
        return Err(ShareFault::ShareHashChain(
            "does not lead to the signed root hash",
        ));
    }
    Ok(())
}

/// Verify every share (see [`verify_share`]), pick the newest version (highest seqnum,
/// then root hash, as Tahoe's `best_recoverable_version`) with at least k good shares, and
/// return its plaintext. Shares are `(shnum, share)`; the share number comes from the
/// server's slot, not from the share bytes.
pub fn decode(
    readkey: &[u8; 16],
    fingerprint: &[u8; 32],
    shares: &[(u8, &MutableShare)],
) -> Result<Decoded, DecodeError> {
    if shares.is_empty() {
        return Err(DecodeError::NoShares);
    }
    let mut bad = Vec::new();
    // version (by header) -> shnum -> share
    let mut versions: BTreeMap<(u64, Hash, Vec<u8>), BTreeMap<u8, &MutableShare>> = BTreeMap::new();
    for &(shnum, share) in shares {
        match verify_share(shnum, share, fingerprint) {
            Ok(()) => {
                let key = (
                    share.header.seqnum,
                    share.header.root_hash,
                    share.header.signed_prefix(),
                );
                let slot = versions.entry(key).or_default();
                if slot.contains_key(&shnum) {
                    // Same version, same shnum: an identical copy is harmless, skip it.
                    continue;
                }
                slot.insert(shnum, share);
            }
            Err(fault) => bad.push(BadShare { shnum, fault }),
        }
    }
    let best = versions.iter().rev().find(|(_, s)| {
        s.values()
            .next()
            .is_some_and(|x| s.len() >= usize::from(x.header.k))
    });
    let Some((best_key, good)) = best else {
        let (needed, good) = versions.iter().next_back().map_or((0, 0), |(_, s)| {
            (s.values().next().map_or(0, |x| x.header.k), s.len())
        });
        return Err(DecodeError::NotEnoughShares { needed, good, bad });
    };
    let other_versions: Vec<u8> = versions
        .iter()
        .filter(|(k, _)| *k != best_key)
        .flat_map(|(_, s)| s.keys().copied())
        .collect();
    let first = good.values().next().expect("non-empty");
    let header = first.header.clone();
    let params = first.check_consistency().expect("verified");
    let k = usize::from(header.k);
    let used: Vec<u8> = good.keys().copied().take(k).collect();
    let fec = Fec::new(k, usize::from(header.n))?;
    let mut plaintext = Vec::with_capacity(params.data_length as usize);
    for seg in 0..params.num_segments as usize {
        let blocks: Vec<(usize, &[u8])> = used
            .iter()
            .map(|sh| (usize::from(*sh), &good[sh].blocks[seg][..]))
            .collect();
        let mut ct: Vec<u8> = if params.block_len(seg as u64) == 0 {
            Vec::new()
        } else {
            fec.decode_all(&blocks)?.concat()
        };
        ct.truncate(params.segment_data_len(seg as u64) as usize);
        let salt = first.segment_salt(seg).expect("verified");
        let key = ssk_readkey_data_hash(&salt, readkey);
        crate::crypto::AesCtr::new(&key).apply(&mut ct);
        plaintext.extend_from_slice(&ct);
    }
    Ok(Decoded {
        plaintext,
        header,
        used,
        bad_shares: bad,
        other_versions,
    })
}

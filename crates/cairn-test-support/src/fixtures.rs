//! Keys and mutable versions: the RSA keys of `vectors/mutable_keys/` (made by Tahoe's
//! tests; loading one is fast, generating one is not) and the N encoded shares of a
//! version of a mutable file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use cairn_core::client::mutable::retrieve::RetrieveKeys;
use cairn_core::client::mutable::ShareNum;
use cairn_core::mutable::codec::Encoding;
use cairn_core::mutable::{
    encode, MutableFormat, MutableKeys, SegmentParams, ShareHeader, SigningKey, SALT_LEN,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRngCore, SeedableRng};

/// The repository's `vectors/` directory.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../vectors")
}

/// `vectors/mutable_keys/key{i}.pem`, `i` in 1..=3, loaded once per process.
pub fn vector_key(i: usize) -> &'static SigningKey {
    static KEYS: [OnceLock<SigningKey>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    assert!(
        (1..=3).contains(&i),
        "vectors/mutable_keys has key1..key3, not key{i}"
    );
    KEYS[i - 1].get_or_init(|| {
        let path = vectors_dir().join(format!("mutable_keys/key{i}.pem"));
        SigningKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
    })
}

/// `vectors/mutable_keys/key1.pem`, the key of every mutable machine test.
pub fn key1() -> &'static SigningKey {
    vector_key(1)
}

/// What a retrieve of a file made with [`key1`] needs.
pub fn retrieve_keys() -> RetrieveKeys {
    RetrieveKeys {
        readkey: *MutableKeys::from_signing_key(key1()).readkey(),
        fingerprint: key1().verifying_key().fingerprint(),
    }
}

/// One version of a mutable file: its header, plaintext and the N shares' bytes.
#[derive(Clone, Debug)]
pub struct MutableVersion {
    pub header: ShareHeader,
    pub plaintext: Vec<u8>,
    pub shares: BTreeMap<ShareNum, Vec<u8>>,
}

/// Encode `plaintext` as `encoding` says, signed with [`key1`], salts and padding drawn
/// from `rng`.
pub fn encode_version(
    encoding: &Encoding,
    plaintext: &[u8],
    rng: &mut impl CryptoRngCore,
) -> MutableVersion {
    let nsalts = SegmentParams::for_publish_with_max(
        encoding.format,
        encoding.k,
        encoding.n,
        plaintext.len() as u64,
        encoding.max_segment_size,
    )
    .unwrap()
    .num_salts();
    let salts: Vec<[u8; SALT_LEN]> = (0..nsalts)
        .map(|_| {
            let mut s = [0u8; SALT_LEN];
            rng.fill_bytes(&mut s);
            s
        })
        .collect();
    let shares = encode(encoding, key1(), plaintext, &salts, rng).unwrap();
    MutableVersion {
        header: shares[0].header.clone(),
        plaintext: plaintext.to_vec(),
        shares: shares
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    ShareNum::try_from(i).expect("at most 256 shares"),
                    s.to_bytes().unwrap(),
                )
            })
            .collect(),
    }
}

/// Version `seqnum` of a `k`-of-`n` file holding `plaintext`, its salts drawn from a
/// generator seeded with `seed`; `max_segment_size` None is Tahoe's 128 KiB.
pub fn make_version(
    format: MutableFormat,
    (k, n): (u8, u8),
    max_segment_size: Option<u64>,
    seqnum: u64,
    plaintext: &[u8],
    seed: u64,
) -> MutableVersion {
    let mut encoding = Encoding::new(format, k, n, seqnum);
    if let Some(max) = max_segment_size {
        encoding.max_segment_size = max;
    }
    encode_version(&encoding, plaintext, &mut ChaCha20Rng::seed_from_u64(seed))
}

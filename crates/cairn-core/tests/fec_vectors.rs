//! Byte-exactness of `cairn_core::fec` against the zfec Python package.
//!
//! `vectors/zfec/zfec_vectors.json` is produced by `vectors/zfec/gen_zfec.py`
//! (see `vectors/zfec/README.md`).  Input pieces come from the small generator
//! documented there, replicated by [`gen_bytes`].

use cairn_core::fec::{Fec, Kernel};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct Vectors {
    zfec_version: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    k: usize,
    n: usize,
    piece_len: usize,
    seed: u64,
    decode_from: Vec<usize>,
    /// All n blocks in hex (small cases)...
    hex: Option<Vec<String>>,
    /// ...or their SHA-256 in hex.
    sha256: Option<Vec<String>>,
}

fn load() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../vectors/zfec/zfec_vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("read zfec vectors");
    serde_json::from_str(&text).expect("parse zfec vectors")
}

/// The generator of gen_zfec.py: a 64-bit LCG, top byte of each state.
fn gen_bytes(seed: u64, count: usize) -> Vec<u8> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pieces(case: &Case) -> Vec<Vec<u8>> {
    let data = gen_bytes(case.seed, case.k * case.piece_len);
    if case.piece_len == 0 {
        return vec![Vec::new(); case.k];
    }
    data.chunks(case.piece_len).map(<[u8]>::to_vec).collect()
}

fn check_blocks(case: &Case, blocks: &[Vec<u8>], what: &str) {
    let label = format!("{what}: k={} n={} len={}", case.k, case.n, case.piece_len);
    assert_eq!(blocks.len(), case.n, "{label}");
    match (&case.hex, &case.sha256) {
        (Some(want), _) => {
            for (r, (b, w)) in blocks.iter().zip(want).enumerate() {
                assert_eq!(&hex(b), w, "{label} block {r}");
            }
        }
        (None, Some(want)) => {
            for (r, (b, w)) in blocks.iter().zip(want).enumerate() {
                assert_eq!(&hex(&Sha256::digest(b)), w, "{label} block {r}");
            }
        }
        (None, None) => panic!("{label}: case has no expected blocks"),
    }
}

#[test]
fn vectors_cover_the_required_shapes() {
    let v = load();
    assert!(v.zfec_version.starts_with("1.6"), "{}", v.zfec_version);
    for shape in [
        (1, 1),
        (1, 3),
        (2, 3),
        (3, 10),
        (71, 255),
        (101, 256),
        (256, 256),
        (255, 256),
        (7, 200),
    ] {
        for len in [0, 1, 5, 64, 100, 1000] {
            assert!(
                v.cases
                    .iter()
                    .any(|c| (c.k, c.n, c.piece_len) == (shape.0, shape.1, len)),
                "missing case {shape:?} len {len}"
            );
        }
    }
}

#[test]
fn encode_matches_zfec() {
    for case in load().cases {
        let pieces = pieces(&case);
        let refs: Vec<&[u8]> = pieces.iter().map(|p| &p[..]).collect();
        let fec = Fec::new(case.k, case.n).unwrap();
        check_blocks(&case, &fec.encode_all(&refs).unwrap(), fec.kernel().name());
    }
}

#[test]
fn every_kernel_matches_zfec() {
    // The vectors with hex blocks (small pieces) on every kernel this CPU has;
    // the big ones run once above with the default kernel.
    for case in load()
        .cases
        .into_iter()
        .filter(|c| c.hex.is_some() || c.k * c.n <= 2000)
    {
        let pieces = pieces(&case);
        let refs: Vec<&[u8]> = pieces.iter().map(|p| &p[..]).collect();
        for kernel in Kernel::available() {
            let fec = Fec::with_kernel(case.k, case.n, kernel).unwrap();
            check_blocks(&case, &fec.encode_all(&refs).unwrap(), kernel.name());
        }
    }
}

#[test]
fn decode_matches_zfec_subsets() {
    for case in load().cases {
        let pieces = pieces(&case);
        let refs: Vec<&[u8]> = pieces.iter().map(|p| &p[..]).collect();
        let fec = Fec::new(case.k, case.n).unwrap();
        let blocks = fec.encode_all(&refs).unwrap();
        // The subset zfec was checked to decode, and the last k blocks in reverse.
        let last_k_reversed: Vec<usize> = (case.n - case.k..case.n).rev().collect();
        for shares in [&case.decode_from, &last_k_reversed] {
            let given: Vec<(usize, &[u8])> = shares.iter().map(|&s| (s, &blocks[s][..])).collect();
            assert_eq!(
                fec.decode_all(&given).unwrap(),
                pieces,
                "k={} n={}",
                case.k,
                case.n
            );
        }
    }
}

//! Multi-buffer SHA-256 (`cairn_core::sha256mb`) against `sha2` and `hashutil`, on every
//! kernel this CPU has (each forced in turn) and on the automatic plan.

use cairn_core::hashutil::{block_hash, tagged_hash, tags, TaggedHasher};
use cairn_core::sha256mb::{
    block_hashes, sha256_many, tagged_hash_many, Kernel, Sha256Lanes, TaggedLanes,
};
use cairn_test_support::data;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn reference(msgs: &[Vec<u8>]) -> Vec<[u8; 32]> {
    msgs.iter().map(|m| Sha256::digest(m).into()).collect()
}

/// Hash `msgs` on `kernel` (None = automatic), feeding every lane the same chunk lengths
/// `chunks` in turn (the last chunk of a lane may be short, then empty).
fn lanes_hash(kernel: Option<Kernel>, msgs: &[Vec<u8>], chunks: &[usize]) -> Vec<[u8; 32]> {
    let mut h = match kernel {
        Some(k) => Sha256Lanes::with_kernel(msgs.len(), k).unwrap(),
        None => Sha256Lanes::new(msgs.len()),
    };
    let mut pos = vec![0usize; msgs.len()];
    let mut ci = 0;
    while pos.iter().zip(msgs).any(|(p, m)| *p < m.len()) {
        let c = chunks[ci % chunks.len()].max(1);
        ci += 1;
        let parts: Vec<&[u8]> = msgs
            .iter()
            .zip(pos.iter_mut())
            .map(|(m, p)| {
                let s = &m[*p..(*p + c).min(m.len())];
                *p += s.len();
                s
            })
            .collect();
        h.update_lanes(&parts);
    }
    h.finish()
}

fn kernels() -> Vec<Option<Kernel>> {
    std::iter::once(None)
        .chain(Kernel::available().into_iter().map(Some))
        .collect()
}

const EDGE_LENS: [usize; 14] = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 4099];

#[test]
fn every_kernel_on_edge_lengths() {
    for kernel in kernels() {
        for lanes in [1, 2, 3, 7, 8, 9, 10, 15, 16, 17, 33] {
            for &len in &EDGE_LENS {
                let msgs: Vec<Vec<u8>> = (0..lanes)
                    .map(|i| data::bytes(len, (i * 31 + len) as u64))
                    .collect();
                let want = reference(&msgs);
                assert_eq!(
                    lanes_hash(kernel, &msgs, &[usize::MAX]),
                    want,
                    "{kernel:?} lanes={lanes} len={len}"
                );
                assert_eq!(
                    lanes_hash(kernel, &msgs, &[1, 63, 64, 65, 7]),
                    want,
                    "{kernel:?} chunked lanes={lanes} len={len}"
                );
            }
        }
    }
}

#[test]
fn each_kernel_really_runs_when_available() {
    // The names say which kernels this CPU exercised; at least scalar always runs.
    let avail = Kernel::available();
    eprintln!(
        "sha256mb kernels available: {:?}; best: {:?}",
        avail,
        Kernel::best()
    );
    assert!(avail.contains(&Kernel::Scalar));
    for k in Kernel::ALL {
        assert_eq!(Sha256Lanes::with_kernel(3, k).is_ok(), k.is_available());
    }
}

#[test]
fn unequal_lengths_in_one_call() {
    for kernel in kernels() {
        let lens = [
            0usize, 1, 64, 65, 1000, 3, 128, 4096, 55, 56, 63, 9000, 17, 0, 64, 200, 5000,
        ];
        let msgs: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| data::bytes(l, i as u64))
            .collect();
        assert_eq!(
            lanes_hash(kernel, &msgs, &[usize::MAX]),
            reference(&msgs),
            "{kernel:?}"
        );
        assert_eq!(
            lanes_hash(kernel, &msgs, &[100, 3, 640]),
            reference(&msgs),
            "{kernel:?}"
        );
    }
    let refs: Vec<&[u8]> = [&b""[..], b"abc", &[7u8; 1000]].to_vec();
    let want: Vec<[u8; 32]> = refs.iter().map(|m| Sha256::digest(m).into()).collect();
    assert_eq!(sha256_many(&refs), want);
    assert!(sha256_many(&[]).is_empty());
}

#[test]
fn tagged_lanes_equal_hashutil() {
    for kernel in kernels() {
        for &len in &EDGE_LENS {
            let msgs: Vec<Vec<u8>> = (0..10).map(|i| data::bytes(len, i)).collect();
            let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
            let want: Vec<_> = msgs.iter().map(|m| block_hash(m)).collect();
            let mut h = match kernel {
                Some(k) => TaggedLanes::with_kernel(tags::BLOCK, 10, k).unwrap(),
                None => TaggedLanes::new(tags::BLOCK, 10),
            };
            h.update_lanes(&refs);
            assert_eq!(h.finish(), want, "{kernel:?} len={len}");
            assert_eq!(block_hashes(&refs), want);
            assert_eq!(
                tagged_hash_many(tags::UEB, &refs),
                msgs.iter()
                    .map(|m| tagged_hash(tags::UEB, m))
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn lanes_with_different_tags_stay_in_step() {
    // The encoder's use: segment hash and flat crypttext hash over the same bytes.
    let data = data::bytes(100_000, 5);
    let mut h = TaggedLanes::with_tags(&[tags::CIPHERTEXT_SEGMENT, tags::CIPHERTEXT, b"", b"x"]);
    let mut flat = TaggedHasher::new(tags::CIPHERTEXT);
    for c in data.chunks(16 * 1024 + 7) {
        h.update_lanes(&[c, c, c, c]);
        flat.update(c);
    }
    h.update_lane(1, b"more");
    flat.update(b"more");
    let got = h.finish();
    assert_eq!(got[0], tagged_hash(tags::CIPHERTEXT_SEGMENT, &data));
    assert_eq!(got[1], flat.finish());
    assert_eq!(got[2], tagged_hash(b"", &data));
    assert_eq!(got[3], tagged_hash(b"x", &data));
}

fn arb_case() -> impl Strategy<Value = (usize, Vec<usize>, Vec<usize>, u64)> {
    (1usize..40, 0usize..8).prop_flat_map(|(lanes, kind)| {
        let len = match kind {
            0 => prop_oneof![Just(0usize), Just(55), Just(56), Just(63), Just(64), Just(65)].boxed(),
            1..=3 => (0usize..300).boxed(),
            _ => (0usize..5000).boxed(),
        };
        (
            Just(lanes),
            // equal lengths most of the time (the encoder's case), else independent
            prop_oneof![3 => len.clone().prop_map(move |l| vec![l; lanes]), 1 => proptest::collection::vec(len, lanes)],
            proptest::collection::vec(1usize..2000, 1..6),
            any::<u64>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn prop_all_kernels_match_sha2((lanes, lens, chunks, seed) in arb_case()) {
        let msgs: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &l)| data::bytes(l, seed ^ i as u64)).collect();
        prop_assert_eq!(msgs.len(), lanes);
        let want = reference(&msgs);
        for kernel in kernels() {
            prop_assert_eq!(&lanes_hash(kernel, &msgs, &chunks), &want, "{:?}", kernel);
        }
    }
}

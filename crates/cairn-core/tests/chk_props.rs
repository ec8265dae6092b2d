//! Property tests for CHK: round trips, corruption detection naming the right share,
//! and robustness against truncated or garbage input.

use cairn_core::chk::{
    self, ChkCapInfo, ChkError, DecodeError, EncodingParams, LayoutVersion, ShareLayout, Ueb,
};
use cairn_core::ids::ShareNum;
use proptest::prelude::*;

fn sn(i: usize) -> ShareNum {
    ShareNum::try_from(i).expect("at most 256 shares")
}

#[derive(Debug, Clone)]
struct Case {
    k: u16,
    n: u16,
    max_seg: u64,
    key: [u8; 16],
    data: Vec<u8>,
    v2: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1u16..=8,
        0u16..=6,
        1u64..=3000,
        any::<[u8; 16]>(),
        1usize..=9000,
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(k, extra, max_seg, key, size, seed, v2)| {
            let mut x = seed | 1;
            let data = (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            Case {
                k,
                n: k + extra,
                max_seg,
                key,
                data,
                v2,
            }
        })
}

fn encode(c: &Case) -> chk::EncodedFile {
    let params = EncodingParams::new(c.k, c.k, c.n, c.max_seg).unwrap();
    let layout = if c.v2 {
        LayoutVersion::V2
    } else {
        LayoutVersion::V1
    };
    chk::encode_file(&params, c.key, &c.data, Some(layout)).unwrap()
}

/// Byte ranges of a share whose corruption must be detected: everything except the header's
/// block_size/data_size fields and the unused plaintext-hash-tree region, which Tahoe's
/// readers ignore too.
fn protected(share: &[u8]) -> Vec<std::ops::Range<usize>> {
    let l = ShareLayout::parse(share).unwrap();
    let (ignored_hdr, hl) = match l.version {
        LayoutVersion::V1 => (4..12, 0x24),
        LayoutVersion::V2 => (4..20, 0x44),
    };
    let o = l.offsets;
    vec![
        0..ignored_hdr.start,
        ignored_hdr.end..hl,
        hl..o.plaintext_hash_tree as usize,
        o.crypttext_hash_tree as usize..share.len(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn round_trip(c in case(), pick in any::<u64>()) {
        let f = encode(&c);
        let info = f.cap_info();
        prop_assert_eq!(f.shares.len(), c.n as usize);
        for (i, s) in f.shares.iter().enumerate() {
            prop_assert_eq!(s.len() as u64, f.trailer.geometry.allocated_size(f.trailer.layout).unwrap());
            chk::verify_share(&info, sn(i), s).unwrap();
        }
        // a pseudo-random k-subset, in scrambled order
        let mut idx: Vec<usize> = (0..c.n as usize).collect();
        let mut x = pick | 1;
        for i in (1..idx.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            idx.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let chosen: Vec<(ShareNum, &[u8])> = idx[..c.k as usize].iter().map(|&i| (sn(i), &f.shares[i][..])).collect();
        let got = chk::decode(&info, Some(c.key), &chosen).unwrap();
        prop_assert!(got == c.data);
        // without the key: the ciphertext
        let ct = chk::decode(&info, None, &chosen).unwrap();
        prop_assert_eq!(ct, cairn_core::crypto::aes_ctr(&c.key, &c.data));
        // too few shares
        if c.k > 1 {
            let r = chk::decode(&info, Some(c.key), &chosen[..c.k as usize - 1]);
            let is_not_enough = matches!(r, Err(DecodeError::NotEnoughShares { .. }));
            prop_assert!(is_not_enough);
        }
    }

    #[test]
    fn single_byte_corruption_names_the_share(c in case(), which in any::<u64>(), at in any::<u64>(), bit in 0u8..8) {
        let f = encode(&c);
        let info = f.cap_info();
        let s = (which % c.n as u64) as usize;
        let mut shares = f.shares.clone();
        let ranges = protected(&shares[s]);
        let total: usize = ranges.iter().map(|r| r.len()).sum();
        let mut off = (at % total as u64) as usize;
        let pos = ranges.iter().find_map(|r| if off < r.len() { Some(r.start + off) } else { off -= r.len(); None }).unwrap();
        shares[s][pos] ^= 1 << bit;
        let err = chk::verify_share(&info, sn(s), &shares[s]).unwrap_err();
        prop_assert_eq!(err.shnum(), Some(sn(s)), "byte {} of share {}: {}", pos, s, err);
        for (i, sh) in shares.iter().enumerate() {
            if i != s {
                chk::verify_share(&info, sn(i), sh).unwrap();
            }
        }
        // put the bad share first so the decoder must notice it and fall back
        let mut all: Vec<(ShareNum, &[u8])> = vec![(sn(s), &shares[s][..])];
        all.extend(shares.iter().enumerate().filter(|(i, _)| *i != s).map(|(i, b)| (sn(i), &b[..])));
        match chk::decode(&info, Some(c.key), &all) {
            Ok(got) => {
                prop_assert!(c.n > c.k);
                prop_assert!(got == c.data);
            }
            Err(DecodeError::NotEnoughShares { failures, .. }) => {
                prop_assert_eq!(c.n, c.k);
                prop_assert!(failures.iter().any(|e| e.shnum() == Some(sn(s))));
            }
            Err(e) => prop_assert!(false, "unexpected {}", e),
        }
    }

    #[test]
    fn truncation_and_garbage_never_panic(c in case(), cut in any::<u64>(), garbage in proptest::collection::vec(any::<u8>(), 0..600)) {
        let f = encode(&c);
        let info = f.cap_info();
        let share = &f.shares[0];
        let cut = (cut % share.len() as u64) as usize;
        prop_assert!(chk::verify_share(&info, ShareNum(0), &share[..cut]).is_err());
        let _ = ShareLayout::parse(&garbage);
        let _ = Ueb::parse(&garbage);
        // garbage with a valid-looking version
        let mut g2 = garbage.clone();
        if g2.len() >= 4 { g2[..4].copy_from_slice(&[0, 0, 0, 1 + (cut % 2) as u8]); }
        let _ = ShareLayout::parse(&g2);
        let r = chk::decode(&info, Some(c.key), &[(ShareNum(0), &g2[..]), (ShareNum(1), &garbage[..]), (ShareNum(0), &share[..cut])]);
        prop_assert!(r.is_err());
        // garbage cap values must not cause huge allocations or panics either
        let bogus = ChkCapInfo { needed: c.k, total: c.n, size: u64::MAX, ueb_hash: f.trailer.ueb_hash };
        prop_assert!(chk::decode(&bogus, None, &[(ShareNum(0), &share[..])]).is_err());
    }
}

#[test]
fn ueb_with_hostile_values_is_refused_or_bounded() {
    // authentic-looking UEB claiming an enormous file: validation must not allocate
    let u = Ueb {
        codec_name: Some(b"crs".to_vec()),
        segment_size: 3,
        ..Ueb::default()
    };
    assert!(u.validate(3, 10, u64::MAX).is_err() || u.validate(3, 10, u64::MAX).is_ok());
    assert!(
        u.validate(2, 10, 100).is_err(),
        "segment size not a multiple of k"
    );
    let bytes = u.to_bytes();
    assert_eq!(Ueb::parse(&bytes).unwrap(), u);
}

#[test]
fn streaming_api_misuse_is_an_error() {
    let params = EncodingParams::new(3, 3, 10, 100).unwrap();
    let mut enc = chk::ChkEncoder::new(&params, [1; 16], 250).unwrap();
    assert_eq!(enc.geometry().segment_size, 102);
    assert!(matches!(
        enc.push_segment(&[0; 101]),
        Err(ChkError::WrongSegmentLength { .. })
    ));
    enc.push_segment(&[0; 102]).unwrap();
    assert!(matches!(
        enc.finish(),
        Err(ChkError::MissingSegments {
            pushed: 1,
            expected: 3
        })
    ));
    let mut enc = chk::ChkEncoder::new(&params, [1; 16], 250).unwrap();
    for len in [102, 102, 46] {
        assert_eq!(enc.next_segment_len(), Some(len));
        let out = enc.push_segment(&vec![7; len]).unwrap();
        assert_eq!(out.blocks().count(), 10);
    }
    assert!(matches!(
        enc.push_segment(&[0; 1]),
        Err(ChkError::TooManySegments { .. })
    ));
    assert!(chk::ConvergentKeyHasher::new(&params, 10, b"s")
        .unwrap()
        .finish()
        .is_err());
    assert!(EncodingParams::new(0, 0, 10, 1).is_err());
    assert!(EncodingParams::new(3, 7, 257, 1).is_err());
}

#[test]
fn lit_threshold() {
    let p = EncodingParams::default();
    assert!(matches!(
        chk::encode_convergent(&p, b"s", &[1; 55]).unwrap(),
        chk::Immutable::Lit(_)
    ));
    assert!(matches!(
        chk::encode_convergent(&p, b"s", &[1; 56]).unwrap(),
        chk::Immutable::Chk(_)
    ));
    assert_eq!(
        chk::encode_convergent(&p, b"s", b"").unwrap().cap_string(),
        "URI:LIT:"
    );
}

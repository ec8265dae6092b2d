//! Unit tests of the public `Fec` API (zfec byte-exactness is checked by
//! `tests/fec_vectors.rs`).

use super::*;
use proptest::prelude::*;

fn pieces_for(k: usize, len: usize, salt: u8) -> Vec<Vec<u8>> {
    (0..k)
        .map(|c| {
            (0..len)
                .map(|i| (i as u8).wrapping_mul(13).wrapping_add(c as u8 ^ salt))
                .collect()
        })
        .collect()
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(|x| &x[..]).collect()
}

/// Every k-subset of 0..n, in lexicographic order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut cur: Vec<usize> = (0..k).collect();
    loop {
        out.push(cur.clone());
        let Some(i) = (0..k).rev().find(|&i| cur[i] != i + n - k) else {
            return out;
        };
        cur[i] += 1;
        for j in i + 1..k {
            cur[j] = cur[j - 1] + 1;
        }
    }
}

#[test]
fn decode_from_every_subset_small_n() {
    for n in 1..=7 {
        for k in 1..=n {
            for kernel in Kernel::available() {
                let fec = Fec::with_kernel(k, n, kernel).unwrap();
                let pieces = pieces_for(k, 37, (k * 8 + n) as u8);
                let blocks = fec.encode_all(&refs(&pieces)).unwrap();
                assert_eq!(blocks.len(), n);
                assert_eq!(&blocks[..k], &pieces[..]);
                for subset in subsets(n, k) {
                    // Also in reverse order: the order of the blocks must not matter.
                    let given: Vec<(usize, &[u8])> =
                        subset.iter().rev().map(|&s| (s, &blocks[s][..])).collect();
                    assert_eq!(
                        fec.decode_all(&given).unwrap(),
                        pieces,
                        "k={k} n={n} {subset:?} {kernel:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn encode_subset_of_outputs_and_copies() {
    let fec = Fec::new(3, 10).unwrap();
    let pieces = pieces_for(3, 100, 1);
    let all = fec.encode_all(&refs(&pieces)).unwrap();
    let mut b9 = vec![0u8; 100];
    let mut b1 = vec![0u8; 100];
    let mut b4 = vec![0u8; 100];
    fec.encode(
        &refs(&pieces),
        &mut [(9, &mut b9[..]), (1, &mut b1[..]), (4, &mut b4[..])],
    )
    .unwrap();
    assert_eq!(
        (b9, b1, b4),
        (all[9].clone(), all[1].clone(), all[4].clone())
    );
    fec.encode(&refs(&pieces), &mut []).unwrap();
}

#[test]
fn decode_with_more_than_k_blocks() {
    let fec = Fec::new(4, 9).unwrap();
    let pieces = pieces_for(4, 50, 7);
    let blocks = fec.encode_all(&refs(&pieces)).unwrap();
    let given: Vec<(usize, &[u8])> = [8, 0, 6, 5, 3, 7]
        .iter()
        .map(|&s| (s, &blocks[s][..]))
        .collect();
    assert_eq!(fec.decode_all(&given).unwrap(), pieces);
}

#[test]
fn empty_pieces() {
    let fec = Fec::new(2, 5).unwrap();
    let blocks = fec.encode_all(&[&[], &[]]).unwrap();
    assert_eq!(blocks, vec![Vec::<u8>::new(); 5]);
    assert_eq!(
        fec.decode_all(&[(3, &[]), (4, &[])]).unwrap(),
        vec![Vec::<u8>::new(); 2]
    );
}

#[test]
fn bad_inputs_are_errors() {
    use FecError::*;
    for (k, n) in [(0, 0), (0, 3), (4, 3), (1, 257), (300, 300)] {
        assert_eq!(Fec::new(k, n).unwrap_err(), BadParameters { k, n });
    }
    let fec = Fec::new(2, 4).unwrap();
    let (a, b, short) = ([1u8; 8], [2u8; 8], [3u8; 7]);
    assert!(matches!(
        fec.encode_all(&[&a]),
        Err(WrongCount {
            expected: 2,
            got: 1,
            ..
        })
    ));
    assert!(matches!(
        fec.encode_all(&[&a, &b, &a]),
        Err(WrongCount { .. })
    ));
    assert!(matches!(fec.encode_all(&[]), Err(WrongCount { .. })));
    assert_eq!(
        fec.encode_all(&[&a, &short]),
        Err(UnequalLengths {
            expected: 8,
            got: 7
        })
    );
    let mut o = [0u8; 8];
    let mut o2 = [0u8; 8];
    let mut short_out = [0u8; 7];
    assert_eq!(
        fec.encode(&[&a, &b], &mut [(4, &mut o[..])]),
        Err(ShareOutOfRange { shnum: 4, n: 4 })
    );
    assert_eq!(
        fec.encode(&[&a, &b], &mut [(3, &mut o[..]), (3, &mut o2[..])]),
        Err(DuplicateShare { shnum: 3 })
    );
    assert_eq!(
        fec.encode(&[&a, &b], &mut [(3, &mut short_out[..])]),
        Err(UnequalLengths {
            expected: 8,
            got: 7
        })
    );

    assert!(matches!(fec.decode_all(&[(0, &a)]), Err(WrongCount { .. })));
    assert!(matches!(fec.decode_all(&[]), Err(WrongCount { .. })));
    assert_eq!(
        fec.decode_all(&[(0, &a), (0, &b)]),
        Err(DuplicateShare { shnum: 0 })
    );
    assert_eq!(
        fec.decode_all(&[(0, &a), (9, &b)]),
        Err(ShareOutOfRange { shnum: 9, n: 4 })
    );
    assert_eq!(
        fec.decode_all(&[(0, &a), (3, &short)]),
        Err(UnequalLengths {
            expected: 8,
            got: 7
        })
    );
    let mut x = [0u8; 8];
    assert!(matches!(
        fec.decode(&[(0, &a), (3, &b)], &mut [&mut x[..]]),
        Err(WrongCount { .. })
    ));
    let (mut y, mut z) = ([0u8; 8], [0u8; 9]);
    assert_eq!(
        fec.decode(&[(0, &a), (3, &b)], &mut [&mut y[..], &mut z[..]]),
        Err(UnequalLengths {
            expected: 8,
            got: 9
        })
    );
}

#[test]
fn worst_case_decode_71_of_255() {
    // The shape Tahoe uses for large grids in tests; decode from check blocks only.
    let fec = Fec::new(71, 255).unwrap();
    let pieces = pieces_for(71, 301, 3);
    let blocks = fec.encode_all(&refs(&pieces)).unwrap();
    let given: Vec<(usize, &[u8])> = (184..255).map(|s| (s, &blocks[s][..])).collect();
    assert_eq!(fec.decode_all(&given).unwrap(), pieces);
}

fn shape() -> impl Strategy<Value = (usize, usize)> {
    (1usize..=256).prop_flat_map(|n| (1usize..=n, Just(n)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decode_inverts_encode(
        (k, n) in shape(),
        len in 0usize..200,
        seed in any::<u64>(),
        pick in any::<u64>(),
    ) {
        use rand::{seq::SliceRandom, Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let pieces: Vec<Vec<u8>> = (0..k).map(|_| (0..len).map(|_| rng.gen()).collect()).collect();
        let fec = Fec::new(k, n).unwrap();
        let blocks = fec.encode_all(&refs(&pieces)).unwrap();
        let mut nums: Vec<usize> = (0..n).collect();
        nums.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(pick));
        let given: Vec<(usize, &[u8])> = nums[..k].iter().map(|&s| (s, &blocks[s][..])).collect();
        prop_assert_eq!(fec.decode_all(&given).unwrap(), pieces);
    }

    #[test]
    fn kernels_give_identical_blocks(
        (k, n) in (1usize..=40).prop_flat_map(|n| (1usize..=n, Just(n))),
        len in 0usize..300,
        seed in any::<u64>(),
    ) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let pieces: Vec<Vec<u8>> = (0..k).map(|_| (0..len).map(|_| rng.gen()).collect()).collect();
        let want = Fec::with_kernel(k, n, Kernel::Scalar).unwrap().encode_all(&refs(&pieces)).unwrap();
        for kernel in Kernel::available() {
            let got = Fec::with_kernel(k, n, kernel).unwrap().encode_all(&refs(&pieces)).unwrap();
            prop_assert_eq!(&got, &want, "{:?}", kernel);
        }
    }

    #[test]
    fn arbitrary_calls_never_panic(
        k in 0usize..300,
        n in 0usize..300,
        lens in proptest::collection::vec(0usize..20, 0..12),
        shnums in proptest::collection::vec(0usize..300, 0..12),
        out_lens in proptest::collection::vec(0usize..20, 0..12),
    ) {
        let Ok(fec) = Fec::new(k, n) else {
            prop_assert!(k == 0 || k > n || n > 256);
            return Ok(());
        };
        let data: Vec<Vec<u8>> = lens.iter().map(|&l| vec![7u8; l]).collect();
        let _ = fec.encode_all(&refs(&data));
        let mut outs: Vec<Vec<u8>> = out_lens.iter().map(|&l| vec![0u8; l]).collect();
        let mut pairs: Vec<(usize, &mut [u8])> =
            shnums.iter().copied().zip(outs.iter_mut().map(|o| &mut o[..])).collect();
        let _ = fec.encode(&refs(&data), &mut pairs);
        let blocks: Vec<(usize, &[u8])> = shnums.iter().copied().zip(data.iter().map(|d| &d[..])).collect();
        let _ = fec.decode_all(&blocks);
        let mut outs2: Vec<&mut [u8]> = outs.iter_mut().map(|o| &mut o[..]).collect();
        let _ = fec.decode(&blocks, &mut outs2);
    }
}

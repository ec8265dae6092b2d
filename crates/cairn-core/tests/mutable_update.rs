//! MDMF in-place update (`cairn_core::mutable::update`): applying the write vectors to the
//! old shares gives exactly the shares a full encode of the new plaintext gives (same
//! untouched salts, same seqnum, same signing randomness), they decode to the new
//! plaintext, and the writes stay away from everything the update does not change.

use std::ops::Range;

use cairn_core::ids::ShareNum;
use cairn_core::mutable::codec::Encoding;
use cairn_core::mutable::update::{apply, plan, OldShare, UpdateError, UpdatePlan, WriteVector};
use cairn_core::mutable::{
    decode, encode, MutableFormat, MutableKeys, MutableShare, SegmentParams, SALT_LEN,
};
use cairn_test_support::fixtures::key1;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn random_bytes(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

fn random_salts(rng: &mut ChaCha20Rng, n: usize) -> Vec<[u8; SALT_LEN]> {
    (0..n)
        .map(|_| {
            let mut s = [0u8; SALT_LEN];
            rng.fill_bytes(&mut s);
            s
        })
        .collect()
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start.max(b.start) < a.end.min(b.end)
}

struct Outcome {
    plan: UpdatePlan,
    /// Bytes written to each share.
    written: Vec<u64>,
    /// Size of each updated share.
    share_len: usize,
    /// Bytes of block hash tree read from each share.
    bht_read: u64,
}

struct Old {
    enc: Encoding,
    plaintext: Vec<u8>,
    salts: Vec<[u8; SALT_LEN]>,
    shares: Vec<MutableShare>,
    bytes: Vec<Vec<u8>>,
}

fn make_old(k: u8, n: u8, max_seg: u64, old_len: usize, rng: &mut ChaCha20Rng) -> Old {
    let plaintext = random_bytes(rng, old_len);
    let params =
        SegmentParams::for_publish_with_max(MutableFormat::Mdmf, k, n, old_len as u64, max_seg)
            .unwrap();
    let salts = random_salts(rng, params.num_salts());
    let enc = Encoding {
        format: MutableFormat::Mdmf,
        k,
        n,
        seqnum: 3,
        max_segment_size: max_seg,
    };
    let shares = encode(&enc, key1(), &plaintext, &salts, rng).unwrap();
    let bytes = shares.iter().map(|s| s.to_bytes().unwrap()).collect();
    Old {
        enc,
        plaintext,
        salts,
        shares,
        bytes,
    }
}

/// Run one update of `len` random bytes at `offset` and check it against a full encode.
fn run_case(
    k: u8,
    n: u8,
    max_seg: u64,
    old_len: usize,
    offset: usize,
    len: usize,
    seed: u64,
) -> Outcome {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let old = make_old(k, n, max_seg, old_len, &mut rng);
    let new_data = random_bytes(&mut rng, len);
    let header = &old.shares[0].header;

    let plan = plan(header, offset as u64, len as u64).unwrap();
    let mut new_plain = old.plaintext[..offset].to_vec();
    new_plain.extend_from_slice(&new_data);
    if offset + len < old_len {
        new_plain.extend_from_slice(&old.plaintext[offset + len..]);
    }
    assert_eq!(plan.new_data_length(), new_plain.len() as u64);

    // The caller supplies the old head and tail; together with the new bytes they are the
    // whole plaintext of the affected segments.
    let r = |r: &Range<u64>| r.start as usize..r.end as usize;
    let old_seg_bytes =
        |s: u64| s * header.segment_size..((s + 1) * header.segment_size).min(old_len as u64);
    let within = |inner: &Range<u64>, outer: &Range<u64>| {
        outer.start <= inner.start && inner.end <= outer.end
    };
    if !plan.keep_head.is_empty() {
        assert_eq!(plan.old_segments[0], plan.segments.start);
        assert!(within(&plan.keep_head, &old_seg_bytes(plan.segments.start)));
    }
    if !plan.keep_tail.is_empty() {
        assert_eq!(*plan.old_segments.last().unwrap(), plan.segments.end - 1);
        assert!(within(
            &plan.keep_tail,
            &old_seg_bytes(plan.segments.end - 1)
        ));
    }
    assert!(plan.old_segments.len() <= 2);
    let seg_plain = plan
        .segment_plaintext(
            &old.plaintext[r(&plan.keep_head)],
            &new_data,
            &old.plaintext[r(&plan.keep_tail)],
        )
        .unwrap();
    let segsize = header.segment_size as usize;
    let seg_bytes = plan.segments.start as usize * segsize
        ..(plan.segments.end as usize * segsize).min(new_plain.len());
    if plan.segments.is_empty() {
        assert!(seg_plain.is_empty());
    } else {
        assert_eq!(seg_plain, new_plain[seg_bytes]);
    }

    let new_salts = random_salts(&mut rng, plan.num_salts());
    let new_nseg = plan.new_params.num_segments as usize;
    let all_salts: Vec<[u8; SALT_LEN]> = (0..new_nseg)
        .map(|i| {
            if plan.segments.contains(&(i as u64)) {
                new_salts[i - plan.segments.start as usize]
            } else {
                old.salts[i]
            }
        })
        .collect();

    // Read only what the plan says.
    let olds: Vec<OldShare> = ShareNum::below(n.into())
        .rev()
        .map(|s| OldShare::extract(&plan, s, &old.bytes[s.get()]).unwrap())
        .collect();
    let bht_read: u64 = plan.block_hash_node_reads().iter().map(|r| r.1).sum();
    assert_eq!(bht_read, 32 * plan.old_block_hash_nodes.len() as u64);

    let sign_seed = rng.next_u64();
    let update = apply(
        &plan,
        &olds,
        &seg_plain,
        &new_salts,
        4,
        key1(),
        &mut ChaCha20Rng::seed_from_u64(sign_seed),
    )
    .unwrap();
    let writes: Vec<(ShareNum, WriteVector)> = update.writes;
    assert_eq!(writes.len(), usize::from(n));

    let full = encode(
        &Encoding {
            seqnum: 4,
            ..old.enc
        },
        key1(),
        &new_plain,
        &all_salts,
        &mut ChaCha20Rng::seed_from_u64(sign_seed),
    )
    .unwrap();
    assert_eq!(
        update.header, full[0].header,
        "apply reports the new header"
    );

    // Regions an update never writes: the encrypted private key, the verification key and
    // the gap, untouched segments (before the first affected one; after the last one
    // unless the file grows, when they do not exist).
    let old_p = &plan.old_params;
    let mut written = Vec::new();
    let mut updated_shares = Vec::new();
    for (shnum, w) in &writes {
        let sh = shnum.get();
        let parsed = &old.shares[sh];
        let o_shc = 123 + parsed.enc_privkey.len() as u64;
        let o_vk =
            o_shc + 34 * parsed.share_hash_chain.len() as u64 + parsed.signature.len() as u64;
        let mut protected = vec![123..o_shc, o_vk..2167];
        for seg in 0..old_p.num_segments {
            if !plan.segments.contains(&seg) {
                let (at, l) = plan.old_segment_read(seg);
                protected.push(at..at + l);
            }
        }
        let mut bytes = old.bytes[sh].clone();
        let mut total = 0u64;
        for (at, data) in w {
            let range = *at..*at + data.len() as u64;
            for p in &protected {
                assert!(!overlaps(&range, p), "write {range:?} touches {p:?}");
            }
            let end = range.end as usize;
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[*at as usize..end].copy_from_slice(data);
            total += data.len() as u64;
        }
        assert_eq!(bytes, full[sh].to_bytes().unwrap(), "share {shnum}");
        written.push(total);
        updated_shares.push(MutableShare::parse(&bytes).unwrap());
    }

    let keys = MutableKeys::from_signing_key(key1());
    let fp = key1().verifying_key().fingerprint();
    let refs: Vec<(u8, &MutableShare)> = updated_shares
        .iter()
        .enumerate()
        .skip(usize::from(n - k))
        .map(|(i, s)| (i as u8, s))
        .collect();
    let d = decode(keys.readkey(), &fp, &refs).unwrap();
    assert_eq!(d.plaintext, new_plain);
    assert_eq!(d.header.seqnum, 4);

    Outcome {
        share_len: old.bytes[0].len().max(full[0].to_bytes().unwrap().len()),
        plan,
        written,
        bht_read,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random geometry, file sizes of 0..=5 segments, ranges inside one segment, across
    /// segments, at the end and past it.
    #[test]
    fn update_equals_full_encode(
        k in 1u8..=4,
        extra in 0u8..=3,
        max_seg in 1u64..=40,
        old_frac in 0u64..=1000,
        nseg in 0u64..=5,
        off_frac in 0u64..=1000,
        len_kind in 0u8..4,
        len_raw in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let n = k + extra;
        let segsize = max_seg.div_ceil(u64::from(k)) * u64::from(k);
        let old_len = (nseg * segsize * old_frac / 1000) as usize;
        let offset = (old_len as u64 * off_frac / 1000) as usize;
        let len = match len_kind {
            0 => 0,
            // inside the offset's segment (possibly reaching its end)
            1 => 1 + (len_raw % (segsize - offset as u64 % segsize)) as usize,
            2 => (len_raw % (3 * segsize + 1)) as usize,
            // exactly to the old end, or past it
            _ => (old_len - offset) + (len_raw % 2) as usize * (len_raw % (2 * segsize)) as usize,
        };
        let out = run_case(k, n, max_seg, old_len, offset, len, seed);
        prop_assert_eq!(out.plan.rewrites_block_hash_tree,
            out.plan.new_params.mdmf_share_data_size() != out.plan.old_params.mdmf_share_data_size());
    }
}

/// A one-segment change in a 5-segment file with Tahoe's 128 KiB segments writes one block
/// plus a few hundred bytes per share, and reads a handful of hashes.
#[test]
fn one_segment_of_five_writes_little() {
    let (k, n) = (3u8, 10u8);
    let segsize = 131_073u64; // 128 KiB rounded up to a multiple of 3
    let old_len = 5 * segsize as usize - 1000;
    let out = run_case(k, n, 131_072, old_len, 2 * segsize as usize + 100, 5000, 7);
    assert_eq!(out.plan.segments, 2..3);
    assert!(!out.plan.rewrites_block_hash_tree);
    let block = segsize / u64::from(k) + 16;
    for w in &out.written {
        // block + hashes on the path (4 levels) + chain (4 entries) + signature + checkstring
        assert!(*w <= block + 4 * 32 + 4 * 34 + 256 + 41, "wrote {w}");
        assert!(
            *w * 4 < out.share_len as u64,
            "wrote {w} of {}",
            out.share_len
        );
    }
    // untouched covers plus affected tops: at most 2·log2(8)
    assert!(out.bht_read <= 6 * 32, "read {}", out.bht_read);
}

#[test]
fn append_and_edge_cases() {
    // append at a segment boundary, extend the tail within one block, empty files,
    // whole-file overwrite, a zero-length update (only seqnum, chain, signature change).
    let cases: &[(u8, u8, u64, usize, usize, usize)] = &[
        (3, 10, 30, 90, 90, 30),
        (3, 10, 30, 90, 90, 200),
        (3, 10, 30, 61, 61, 1),
        (3, 10, 30, 62, 10, 53),
        (1, 1, 8, 0, 0, 0),
        (1, 2, 8, 0, 0, 17),
        (2, 3, 8, 40, 0, 40),
        (2, 3, 8, 40, 13, 0),
        (4, 7, 16, 160, 0, 1),
        (4, 7, 16, 160, 159, 1),
        (2, 5, 4, 17, 16, 100),
    ];
    for &(k, n, max_seg, old_len, offset, len) in cases {
        run_case(k, n, max_seg, old_len, offset, len, old_len as u64 ^ 99);
    }
}

#[test]
fn refuses_bad_input() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let old = make_old(2, 4, 10, 45, &mut rng);
    let header = &old.shares[0].header;
    assert!(matches!(
        plan(header, 46, 1),
        Err(UpdateError::OffsetPastEnd { .. })
    ));
    let mut sdmf = header.clone();
    sdmf.format = MutableFormat::Sdmf;
    assert_eq!(plan(&sdmf, 0, 1), Err(UpdateError::NotMdmf));

    let p = plan(header, 12, 3).unwrap();
    assert_eq!(p.segments, 1..2);
    let seg = vec![7u8; p.segment_plaintext_len() as usize];
    let salts = random_salts(&mut rng, 1);
    let olds: Vec<OldShare> = ShareNum::below(4)
        .map(|s| OldShare::extract(&p, s, &old.bytes[s.get()]).unwrap())
        .collect();
    let run = |olds: &[OldShare], seqnum: u64| {
        apply(
            &p,
            olds,
            &seg,
            &salts,
            seqnum,
            key1(),
            &mut ChaCha20Rng::seed_from_u64(1),
        )
    };
    assert!(run(&olds, 4).is_ok());
    assert!(matches!(
        run(&olds, 3),
        Err(UpdateError::SeqnumNotIncreasing { .. })
    ));
    assert!(matches!(
        run(&olds[1..], 4),
        Err(UpdateError::WrongShareSet { .. })
    ));

    // A corrupt old hash in share 2 is caught before anything is written.
    let mut bad = olds.clone();
    let first = *p.old_block_hash_nodes.first().unwrap();
    bad[2].block_hash_nodes.get_mut(&first).unwrap()[0] ^= 1;
    assert!(matches!(
        run(&bad, 4),
        Err(UpdateError::BadShare {
            shnum: ShareNum(2),
            ..
        })
    ));
    // A missing one is named.
    let mut missing = olds.clone();
    missing[1].block_hash_nodes.remove(&first);
    assert_eq!(
        run(&missing, 4),
        Err(UpdateError::MissingNode {
            shnum: ShareNum(1),
            index: first
        })
    );
    // A share of another version.
    let mut other = olds.clone();
    other[0].prefix[1..9].copy_from_slice(&9u64.to_be_bytes());
    assert!(matches!(
        run(&other, 4),
        Err(UpdateError::BadShare {
            shnum: ShareNum(0),
            ..
        })
    ));
}

//! Property tests for the one big-endian reader and the two share-head parsers built on it:
//! values read back as the encoders wrote them; the mutable prefix and the CHK head parsed
//! from real encoder output re-encode to the same bytes; truncated or corrupted input gives
//! an error or a value, never a panic.

use cairn_core::bytes::{Reader, Truncated};
use cairn_core::chk::{self, EncodingParams, LayoutVersion, ShareHead, ShareLayout};
use cairn_core::mutable::codec::Encoding;
use cairn_core::mutable::header::{
    parse_share_hash_chain, seqnum_of, MdmfOffsets, PrefixOffsets, SdmfOffsets,
};
use cairn_core::mutable::layout::{MDMF_HEADER_LEN, SDMF_HEADER_LEN};
use cairn_core::mutable::{
    encode, MutableFormat, MutableShare, MutableSharePrefix, SegmentParams, SALT_LEN,
};
use cairn_test_support::fixtures::key1;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// One field the reader can read, with the bytes it was written as.
#[derive(Clone, Debug)]
enum Field {
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    Bytes(Vec<u8>),
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        any::<u8>().prop_map(Field::U8),
        any::<u16>().prop_map(Field::U16),
        any::<u32>().prop_map(Field::U32),
        any::<u64>().prop_map(Field::U64),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Field::Bytes),
    ]
}

fn write(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        match f {
            Field::U8(v) => out.push(*v),
            Field::U16(v) => out.extend_from_slice(&v.to_be_bytes()),
            Field::U32(v) => out.extend_from_slice(&v.to_be_bytes()),
            Field::U64(v) => out.extend_from_slice(&v.to_be_bytes()),
            Field::Bytes(b) => out.extend_from_slice(b),
        }
    }
    out
}

/// Read `fields` back; `Err` at the first one the input is too short for.
fn read(data: &[u8], fields: &[Field]) -> Result<(), Truncated> {
    let mut r = Reader::new(data);
    for f in fields {
        let before = r.position();
        match f {
            Field::U8(v) => assert_eq!(r.u8()?, *v),
            Field::U16(v) => assert_eq!(r.u16()?, *v),
            Field::U32(v) => {
                let mut again = r;
                assert_eq!(r.u32()?, *v);
                assert_eq!(again.uint(4)?, u64::from(*v));
            }
            Field::U64(v) => {
                let mut again = r;
                assert_eq!(r.u64()?, *v);
                assert_eq!(again.uint(8)?, *v);
            }
            Field::Bytes(b) => assert_eq!(r.bytes(b.len())?, &b[..]),
        }
        assert!(r.position() > before || matches!(f, Field::Bytes(b) if b.is_empty()));
    }
    Ok(())
}

fn mutable_shares(format: MutableFormat, k: u8, n: u8, len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut plaintext = vec![0u8; len];
    rng.fill_bytes(&mut plaintext);
    let max_seg = 700;
    let params = SegmentParams::for_publish_with_max(format, k, n, len as u64, max_seg).unwrap();
    let salts: Vec<[u8; SALT_LEN]> = (0..params.num_salts())
        .map(|_| {
            let mut s = [0u8; SALT_LEN];
            rng.fill_bytes(&mut s);
            s
        })
        .collect();
    let enc = Encoding {
        format,
        k,
        n,
        seqnum: 1 + seed % 9,
        max_segment_size: max_seg,
    };
    encode(&enc, key1(), &plaintext, &salts, &mut rng)
        .unwrap()
        .iter()
        .map(|s| s.to_bytes().unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn reader_reads_what_was_written(fields in proptest::collection::vec(field(), 0..12), cut in any::<prop::sample::Index>()) {
        let data = write(&fields);
        prop_assert_eq!(read(&data, &fields), Ok(()));
        // any shorter input fails with a truncation inside it, never a panic
        if !data.is_empty() {
            let short = &data[..cut.index(data.len())];
            if let Err(t) = read(short, &fields) {
                prop_assert_eq!(t.have, short.len());
                prop_assert!(t.at + t.need > short.len());
            }
        }
    }

    #[test]
    fn mutable_prefix_round_trips_and_agrees_with_the_share_parser(
        mdmf in any::<bool>(),
        k in 1u8..=4,
        extra in 0u8..=3,
        len in 0usize..3000,
        seed in any::<u64>(),
    ) {
        let format = if mdmf { MutableFormat::Mdmf } else { MutableFormat::Sdmf };
        for bytes in mutable_shares(format, k, k + extra, len, seed) {
            let prefix = MutableSharePrefix::parse(&bytes).unwrap();
            let share = MutableShare::parse(&bytes).unwrap();
            prop_assert_eq!(&prefix.header, &share.header);
            let head_len = if mdmf { MDMF_HEADER_LEN } else { SDMF_HEADER_LEN };
            prop_assert_eq!(&prefix.to_bytes()[..], &bytes[..head_len]);
            prop_assert_eq!(MutableSharePrefix::parse(&bytes[..head_len]), Ok(prefix.clone()));
            prop_assert_eq!(seqnum_of(&bytes), Some(share.header.seqnum));
            match prefix.offsets {
                PrefixOffsets::Sdmf(o) => {
                    prop_assert_eq!(SdmfOffsets::parse(&bytes), Ok(o));
                    let chain = &bytes[o.share_hash_chain as usize..o.block_hash_tree as usize];
                    prop_assert_eq!(parse_share_hash_chain(chain).unwrap(), share.share_hash_chain.clone());
                }
                PrefixOffsets::Mdmf(o) => {
                    prop_assert_eq!(MdmfOffsets::parse(&bytes), Ok(o));
                    let chain = &bytes[o.share_hash_chain as usize..o.signature as usize];
                    prop_assert_eq!(parse_share_hash_chain(chain).unwrap(), share.share_hash_chain.clone());
                }
            }
            // every truncation of the head is refused
            for cut in 0..head_len {
                prop_assert!(MutableSharePrefix::parse(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn corrupted_mutable_prefixes_never_panic(
        mdmf in any::<bool>(),
        seed in any::<u64>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let format = if mdmf { MutableFormat::Mdmf } else { MutableFormat::Sdmf };
        let mut bytes = mutable_shares(format, 2, 3, 500, seed).swap_remove(0);
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= v;
        }
        let bytes = &bytes[..cut.index(bytes.len() + 1)];
        let _ = MutableSharePrefix::parse(bytes);
        let _ = SdmfOffsets::parse(bytes);
        let _ = MdmfOffsets::parse(bytes);
        let _ = MutableShare::parse(bytes);
        let _ = parse_share_hash_chain(bytes);
        let _ = seqnum_of(bytes);
    }

    #[test]
    fn chk_head_round_trips_and_agrees_with_the_layout_parser(
        k in 1u16..=4,
        extra in 0u16..=3,
        len in 0usize..5000,
        v2 in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        let mut key = [0u8; 16];
        rng.fill_bytes(&mut key);
        let version = if v2 { LayoutVersion::V2 } else { LayoutVersion::V1 };
        let params = EncodingParams::new(k, k, k + extra, 1000).unwrap();
        let file = chk::encode_file(&params, key, &data, Some(version)).unwrap();
        for share in &file.shares {
            let head = ShareHead::parse(share).unwrap();
            let layout = ShareLayout::parse(share).unwrap();
            prop_assert_eq!(head.version, version);
            prop_assert_eq!(head.offsets, layout.offsets);
            prop_assert_eq!(head.block_size, layout.header_block_size);
            prop_assert_eq!(head.data_size, layout.header_data_size);
            let hl = version.header_len() as usize;
            prop_assert_eq!(head.to_bytes().unwrap(), share[..hl].to_vec());
            for cut in 0..hl {
                prop_assert!(ShareHead::parse(&share[..cut]).is_err());
            }
            prop_assert_eq!(
                layout.share_hash_entries().count() * 34,
                layout.share_hashes.len()
            );
        }
    }

    #[test]
    fn corrupted_chk_heads_never_panic(
        head in proptest::collection::vec(any::<u8>(), 0..80),
        version in 0u8..=3,
    ) {
        let mut head = head;
        if head.len() >= 4 {
            head[..4].copy_from_slice(&[0, 0, 0, version]);
        }
        if let Ok(h) = ShareHead::parse(&head) {
            prop_assert!(head.len() as u64 >= h.version.header_len());
            let _ = h.to_bytes();
        }
        let _ = ShareLayout::parse(&head);
        let _ = chk::share_hash_entries(&head).count();
    }
}

//! `ChkDecoder`'s incremental hashes (what ranged downloads use): the share-hash chain,
//! then only the block and crypttext hash nodes a few segments need, read out of the hash
//! tree regions; blocks verified against them and decoded off-thread by `SegmentDecoder`.

use std::collections::BTreeSet;

use cairn_core::chk::layout::ShareLayout;
use cairn_core::chk::{decode, encode_file, ChkDecoder, DecodeError, EncodingParams};
use cairn_core::ids::ShareNum;

fn file(len: usize) -> (Vec<u8>, cairn_core::chk::EncodedFile) {
    let plain: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    let p = EncodingParams::new(3, 3, 10, 3000).unwrap();
    (
        plain.clone(),
        encode_file(&p, [9; 16], &plain, None).unwrap(),
    )
}

#[test]
fn partial_hashes_verify_and_decode_a_middle_segment() {
    let (plain, f) = file(100_000);
    let info = f.cap_info();
    let g = f.trailer.geometry;
    let mut dec = ChkDecoder::new(info, Some(f.trailer.key)).unwrap();
    let seg = 17u64;
    let mut blocks = Vec::new();
    for shnum in [2, 5, 9].map(ShareNum) {
        let l = ShareLayout::parse(&f.shares[shnum.get()]).unwrap();
        dec.add_ueb(shnum, l.ueb).unwrap();
        dec.add_share_hash_chain(shnum, l.share_hash_entries())
            .unwrap();
        assert!(dec.block_hash(shnum, seg).is_none());
        let need = dec.block_hashes_needed(shnum, seg..seg + 1);
        // a leaf plus one sibling per level
        assert_eq!(need.len(), g.segment_tree_nodes.ilog2() as usize + 1);
        let lo = *need.first().unwrap();
        let region = &l.block_hash_tree[lo * 32..];
        dec.add_block_hash_region(shnum, lo, region, &need).unwrap();
        assert!(dec.block_hash(shnum, seg).is_some());
        let b = l.block(&g, seg).unwrap();
        dec.verify_block(shnum, seg, b).unwrap();
        blocks.push((shnum, b));
    }
    let need = dec.crypttext_hashes_needed(seg..seg + 1);
    let l = ShareLayout::parse(&f.shares[0]).unwrap();
    let nodes =
        cairn_core::chk::decoder::nodes_from_region(0, l.crypttext_hash_tree, &need).unwrap();
    dec.add_crypttext_hashes(ShareNum(0), &nodes).unwrap();
    let sd = dec.segment_decoder().unwrap();
    let mut out = Vec::new();
    sd.decode(seg, &blocks, &dec.crypttext_hash(seg).unwrap(), &mut out)
        .unwrap();
    let a = (seg * g.segment_size) as usize;
    assert_eq!(out, plain[a..a + g.segment_size as usize]);
    // and the same through decode_segment
    let mut out2 = Vec::new();
    dec.decode_segment(seg, &blocks, &mut out2).unwrap();
    assert_eq!(out, out2);
    // segments whose hashes were not fetched are refused, not guessed
    let l2 = ShareLayout::parse(&f.shares[2]).unwrap();
    assert_eq!(
        dec.verify_block(ShareNum(2), 3, l2.block(&g, 3).unwrap()),
        Err(DecodeError::MissingBlockHash {
            shnum: ShareNum(2),
            segment: 3
        })
    );
}

#[test]
fn bad_nodes_are_refused_atomically_and_blamed() {
    let (_plain, f) = file(50_000);
    let info = f.cap_info();
    let mut dec = ChkDecoder::new(info, None).unwrap();
    let l = ShareLayout::parse(&f.shares[4]).unwrap();
    dec.add_ueb(ShareNum(4), l.ueb).unwrap();
    // a chain entry flipped
    let mut chain: Vec<_> = l.share_hash_entries().collect();
    chain[0].1[3] ^= 1;
    assert!(matches!(
        dec.add_share_hash_chain(ShareNum(4), chain),
        Err(DecodeError::BadShareHashChain {
            shnum: ShareNum(4),
            ..
        })
    ));
    dec.add_share_hash_chain(ShareNum(4), l.share_hash_entries())
        .unwrap();
    let need: BTreeSet<usize> = dec.block_hashes_needed(ShareNum(4), 0..5);
    let mut region = l.block_hash_tree.to_vec();
    let last = *need.last().unwrap();
    region[last * 32] ^= 1;
    let e = dec
        .add_block_hash_region(ShareNum(4), 0, &region, &need)
        .unwrap_err();
    assert_eq!(e.shnum(), Some(ShareNum(4)));
    assert!(
        dec.block_hash(ShareNum(4), 0).is_none(),
        "nothing kept from a refused batch"
    );
    // a region too short for the nodes wanted
    let e = dec
        .add_block_hash_region(ShareNum(4), 0, &l.block_hash_tree[..64], &need)
        .unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::MalformedShare {
                shnum: ShareNum(4),
                ..
            }
        ),
        "{e:?}"
    );
    dec.add_block_hash_region(ShareNum(4), 0, l.block_hash_tree, &need)
        .unwrap();
    assert!((0..5).all(|s| dec.block_hash(ShareNum(4), s).is_some()));
}

#[test]
fn whole_share_decoding_is_unchanged() {
    let (plain, f) = file(77_777);
    let refs: Vec<(ShareNum, &[u8])> = f
        .shares
        .iter()
        .enumerate()
        .map(|(i, s)| (ShareNum::try_from(i).unwrap(), s.as_slice()))
        .collect();
    assert_eq!(
        decode(&f.cap_info(), Some(f.trailer.key), &refs[4..7]).unwrap(),
        plain
    );
}

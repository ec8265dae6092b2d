//! Known answers produced by running Tahoe-LAFS 1.20 itself (`vectors/kat.json`, made by
//! `vectors/generate.py`): tagged hashes, every hashutil derivation, HMAC, base32,
//! netstrings, hash trees, AES-CTR, the server permutation hash and the tag strings.

use std::collections::BTreeSet;

use cairn_core::hashutil::{self, tags};
use cairn_core::{base32, crypto, hashtree, netstring};
use serde_json::Value;

fn kat() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../vectors/kat.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vectors/kat.json")).unwrap()
}

fn hex(v: &Value) -> Vec<u8> {
    cairn_test_support::data::hex(v.as_str().expect("hex string"))
}

fn cases<'a>(k: &'a Value, name: &str) -> &'a Vec<Value> {
    let v = k[name]
        .as_array()
        .unwrap_or_else(|| panic!("kat.json has no {name}"));
    assert!(!v.is_empty(), "{name} is empty");
    v
}

fn truncated(h: [u8; 32], t: &Value) -> Vec<u8> {
    match t.as_u64() {
        Some(n) if n > 0 => h[..n as usize].to_vec(),
        _ => h.to_vec(),
    }
}

#[test]
fn tagged_hashes() {
    let k = kat();
    for c in cases(&k, "tagged_hash") {
        let got = truncated(
            hashutil::tagged_hash(&hex(&c["tag"]), &hex(&c["value"])),
            &c["truncate"],
        );
        assert_eq!(got, hex(&c["out"]), "{c}");
    }
    for c in cases(&k, "tagged_pair_hash") {
        let got = truncated(
            hashutil::tagged_pair_hash(&hex(&c["tag"]), &hex(&c["a"]), &hex(&c["b"])),
            &c["truncate"],
        );
        assert_eq!(got, hex(&c["out"]), "{c}");
    }
}

#[test]
fn tahoe_hmac() {
    let k = kat();
    for c in cases(&k, "hmac") {
        assert_eq!(
            hashutil::tahoe_hmac(&hex(&c["key"]), &hex(&c["data"])).to_vec(),
            hex(&c["out"]),
            "{c}"
        );
    }
}

fn arr<const N: usize>(v: &[u8]) -> [u8; N] {
    v.try_into()
        .unwrap_or_else(|_| panic!("expected {N} bytes, got {}", v.len()))
}

#[test]
fn every_derivation() {
    let k = kat();
    let mut fns_seen = BTreeSet::new();
    for c in cases(&k, "derivations") {
        let f = c["fn"].as_str().unwrap();
        fns_seen.insert(f.to_string());
        let a: Vec<Vec<u8>> = c["args"].as_array().unwrap().iter().map(hex).collect();
        let ints: Vec<u64> = c["int_args"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|x| x.as_str().unwrap().parse().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let got: Vec<u8> = match f {
            "storage_index_hash" if a[0].len() == 16 => {
                hashutil::storage_index_hash(&arr(&a[0])).to_vec()
            }
            "storage_index_hash" => hashutil::tagged_hash16(tags::STORAGE_INDEX, &a[0]).to_vec(),
            "block_hash" => hashutil::block_hash(&a[0]).to_vec(),
            "uri_extension_hash" => hashutil::uri_extension_hash(&a[0]).to_vec(),
            "plaintext_hash" => hashutil::plaintext_hash(&a[0]).to_vec(),
            "crypttext_hash" => hashutil::crypttext_hash(&a[0]).to_vec(),
            "crypttext_segment_hash" => hashutil::crypttext_segment_hash(&a[0]).to_vec(),
            "plaintext_segment_hash" => hashutil::plaintext_segment_hash(&a[0]).to_vec(),
            "backupdb_dirhash" => hashutil::backupdb_dirhash(&a[0]).to_vec(),
            "convergence_hash" => {
                let mut h = hashutil::convergence_hasher(
                    ints[0] as usize,
                    ints[1] as usize,
                    ints[2],
                    &a[1],
                )
                .unwrap();
                h.update(&a[0]);
                h.finish_truncated::<16>().to_vec()
            }
            "my_renewal_secret_hash" => hashutil::my_renewal_secret_hash(&a[0]).to_vec(),
            "my_cancel_secret_hash" => hashutil::my_cancel_secret_hash(&a[0]).to_vec(),
            "file_renewal_secret_hash" => hashutil::file_renewal_secret_hash(&a[0], &a[1]).to_vec(),
            "file_cancel_secret_hash" => hashutil::file_cancel_secret_hash(&a[0], &a[1]).to_vec(),
            "bucket_renewal_secret_hash" => {
                hashutil::bucket_renewal_secret_hash(&a[0], &arr(&a[1])).to_vec()
            }
            "bucket_cancel_secret_hash" => {
                hashutil::bucket_cancel_secret_hash(&a[0], &arr(&a[1])).to_vec()
            }
            "hmac" => hashutil::tahoe_hmac(&a[0], &a[1]).to_vec(),
            "mutable_rwcap_key_hash" => hashutil::mutable_rwcap_key_hash(&a[0], &a[1]).to_vec(),
            "mutable_rwcap_salt_hash" => hashutil::mutable_rwcap_salt_hash(&a[0]).to_vec(),
            "ssk_writekey_hash" => hashutil::ssk_writekey_hash(&a[0]).to_vec(),
            "ssk_write_enabler_master_hash" => {
                hashutil::ssk_write_enabler_master_hash(&a[0]).to_vec()
            }
            "ssk_readkey_hash" => hashutil::ssk_readkey_hash(&a[0]).to_vec(),
            "ssk_storage_index_hash" => hashutil::ssk_storage_index_hash(&a[0]).to_vec(),
            "ssk_write_enabler_hash" => hashutil::ssk_write_enabler_hash(&a[0], &a[1]).to_vec(),
            "ssk_pubkey_fingerprint_hash" => hashutil::ssk_pubkey_fingerprint_hash(&a[0]).to_vec(),
            "ssk_readkey_data_hash" => hashutil::ssk_readkey_data_hash(&a[0], &a[1]).to_vec(),
            "permute_server_hash" => hashutil::permute_server_hash(&a[0], &a[1]).to_vec(),
            "tagged_hash" => hashutil::tagged_hash(&a[0], &a[1]).to_vec(),
            "tagged_pair_hash" => hashutil::tagged_pair_hash(&a[0], &a[1], &a[2]).to_vec(),
            other => panic!("kat.json has a derivation cairn does not implement: {other}"),
        };
        assert_eq!(got, hex(&c["out"]), "{c}");
    }
    assert!(
        fns_seen.len() >= 28,
        "expected every hashutil derivation, saw {fns_seen:?}"
    );
}

/// A case's `int_args`: integers given as decimal strings.
fn int_args(c: &Value) -> Vec<u64> {
    c["int_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn convergence_tags_and_errors() {
    let k = kat();
    for c in cases(&k, "convergence_hasher_tag") {
        let i = int_args(c);
        let tag =
            hashutil::convergence_tag(i[0] as usize, i[1] as usize, i[2], &hex(&c["convergence"]))
                .unwrap();
        assert_eq!(tag, hex(&c["tag"]), "{c}");
    }
    for c in cases(&k, "derivation_errors") {
        let i = int_args(c);
        assert!(
            hashutil::convergence_tag(i[0] as usize, i[1] as usize, i[2], b"").is_err(),
            "{c}"
        );
    }
}

#[test]
fn tag_strings() {
    let k = kat();
    let ours: &[(&str, &[u8])] = &[
        ("BACKUPDB_DIRHASH_TAG", tags::BACKUPDB_DIRHASH),
        ("BLOCK_TAG", tags::BLOCK),
        ("BUCKET_CANCEL_TAG", tags::BUCKET_CANCEL),
        ("BUCKET_RENEWAL_TAG", tags::BUCKET_RENEWAL),
        ("CIPHERTEXT_SEGMENT_TAG", tags::CIPHERTEXT_SEGMENT),
        ("CIPHERTEXT_TAG", tags::CIPHERTEXT),
        ("CLIENT_CANCEL_TAG", tags::CLIENT_CANCEL),
        ("CLIENT_RENEWAL_TAG", tags::CLIENT_RENEWAL),
        ("CONVERGENT_ENCRYPTION_TAG", tags::CONVERGENT_ENCRYPTION),
        ("DIRNODE_CHILD_SALT_TAG", tags::DIRNODE_CHILD_SALT),
        ("DIRNODE_CHILD_WRITECAP_TAG", tags::DIRNODE_CHILD_WRITECAP),
        ("FILE_CANCEL_TAG", tags::FILE_CANCEL),
        ("FILE_RENEWAL_TAG", tags::FILE_RENEWAL),
        ("MUTABLE_DATAKEY_TAG", tags::MUTABLE_DATAKEY),
        ("MUTABLE_PUBKEY_TAG", tags::MUTABLE_PUBKEY),
        ("MUTABLE_READKEY_TAG", tags::MUTABLE_READKEY),
        ("MUTABLE_STORAGEINDEX_TAG", tags::MUTABLE_STORAGEINDEX),
        ("MUTABLE_WRITEKEY_TAG", tags::MUTABLE_WRITEKEY),
        (
            "MUTABLE_WRITE_ENABLER_MASTER_TAG",
            tags::MUTABLE_WRITE_ENABLER_MASTER,
        ),
        ("MUTABLE_WRITE_ENABLER_TAG", tags::MUTABLE_WRITE_ENABLER),
        ("PLAINTEXT_SEGMENT_TAG", tags::PLAINTEXT_SEGMENT),
        ("PLAINTEXT_TAG", tags::PLAINTEXT),
        ("STORAGE_INDEX_TAG", tags::STORAGE_INDEX),
        ("UEB_TAG", tags::UEB),
    ];
    let theirs = k["tags"].as_object().unwrap();
    for (name, value) in theirs {
        let mine = ours
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no constant for Tahoe's {name}"));
        assert_eq!(mine.1, value.as_str().unwrap().as_bytes(), "{name}");
    }
    assert_eq!(theirs.len(), ours.len());
    assert_eq!(
        k["other_tags"]["hashtree.empty_leaf_hash"]
            .as_str()
            .unwrap()
            .as_bytes(),
        tags::MERKLE_EMPTY_LEAF
    );
    assert_eq!(
        k["other_tags"]["hashtree.pair_hash"]
            .as_str()
            .unwrap()
            .as_bytes(),
        tags::MERKLE_INTERNAL_NODE
    );
}

#[test]
fn base32_matches_tahoe() {
    let k = kat();
    for c in cases(&k, "base32") {
        let text = c["text"].as_str().unwrap();
        assert_eq!(base32::encode(&hex(&c["bytes"])), text);
        assert_eq!(base32::decode(text).unwrap(), hex(&c["bytes"]));
        assert_eq!(
            base32::decode_tahoe_lenient(text).unwrap(),
            hex(&c["bytes"])
        );
    }
    for c in cases(&k, "base32_invalid") {
        let text = c.as_str().unwrap();
        assert!(base32::decode(text).is_err(), "{text:?} accepted");
        assert!(
            base32::decode_tahoe_lenient(text).is_err(),
            "{text:?} accepted by lenient decoding"
        );
    }
    for c in cases(&k, "base32_valid_edge") {
        let text = c.as_str().unwrap();
        assert!(base32::decode(text).is_ok(), "{text:?} rejected");
    }
    // Tahoe's a2b accepts one non-canonical bit; cap fields (strict regexes) do not.
    for c in cases(&k, "base32_noncanonical_accepted") {
        let text = c["text"].as_str().unwrap();
        assert_eq!(
            base32::decode_tahoe_lenient(text).unwrap(),
            hex(&c["bytes"]),
            "{c}"
        );
        assert!(base32::decode(text).is_err(), "{text:?} is not canonical");
        assert_eq!(
            base32::encode(&hex(&c["bytes"])),
            c["canonical_text"].as_str().unwrap()
        );
    }
}

#[test]
fn netstrings() {
    let k = kat();
    for c in cases(&k, "netstring") {
        assert_eq!(netstring::netstring(&hex(&c["in"])), hex(&c["out"]));
    }
}

#[test]
fn hash_trees() {
    let k = kat();
    for c in cases(&k, "empty_leaf_hash") {
        assert_eq!(
            hashtree::empty_leaf_hash(c["i"].as_u64().unwrap() as usize).to_vec(),
            hex(&c["out"])
        );
    }
    for c in cases(&k, "hashtree") {
        let leaves: Vec<[u8; 32]> = c["leaves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| arr(&hex(h)))
            .collect();
        let tree = hashtree::HashTree::new(&leaves);
        let nodes: Vec<Vec<u8>> = c["nodes"].as_array().unwrap().iter().map(hex).collect();
        assert_eq!(
            tree.nodes().iter().map(|n| n.to_vec()).collect::<Vec<_>>(),
            nodes,
            "{} leaves",
            leaves.len()
        );
        for n in c["needed"].as_array().unwrap() {
            let want: BTreeSet<usize> = n["indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as usize)
                .collect();
            let leaf = n["leaf"].as_u64().unwrap() as usize;
            assert_eq!(
                tree.needed_hashes(leaf, n["include_leaf"].as_bool().unwrap()),
                want,
                "{n}"
            );
        }
    }
}

#[test]
fn aes_ctr() {
    let k = kat();
    let mut checked = 0;
    // Tahoe's formats only use AES-128; the AES-256 answers in the file are not ours to match.
    for c in cases(&k, "aes_ctr")
        .iter()
        .filter(|c| hex(&c["key"]).len() == 16)
    {
        let (key, iv) = (arr(&hex(&c["key"])), arr(&hex(&c["iv"])));
        let mut data = hex(&c["plaintext"]);
        crypto::AesCtr::with_iv(&key, &iv).apply(&mut data);
        assert_eq!(data, hex(&c["ciphertext"]), "{c}");
        if iv == [0u8; 16] {
            assert_eq!(
                crypto::aes_ctr(&key, &hex(&c["plaintext"])),
                hex(&c["ciphertext"]),
                "{c}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 10);
}

#[test]
fn permute_server_hash() {
    let k = kat();
    for c in cases(&k, "permute_server_hash") {
        let got = hashutil::permute_server_hash(&hex(&c["peer_selection_index"]), &hex(&c["seed"]));
        assert_eq!(got.to_vec(), hex(&c["out"]));
    }
}

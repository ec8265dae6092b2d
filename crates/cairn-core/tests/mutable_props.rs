//! Property tests for mutable files: encode/decode round trips for random sizes, k, N and
//! both formats; every single-byte corruption is detected (naming the right share) or
//! provably harmless; garbage and truncated input give errors, never panics.

use std::sync::OnceLock;

use cairn_core::mutable::codec::Encoding;
use cairn_core::mutable::layout::{MDMF_HEADER_LEN, MDMF_SHARE_DATA_OFFSET};
use cairn_core::mutable::{
    decode, decrypt_privkey, encode, verify_share, DecodeError, KeyError, MutableFormat,
    MutableKeys, MutableShare, SegmentParams, SigningKey, VerifyingKey, SALT_LEN,
};
use cairn_test_support::fixtures::{key1, vector_key};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

struct Encoded {
    plaintext: Vec<u8>,
    shares: Vec<Vec<u8>>,
}

fn make(format: MutableFormat, k: u8, n: u8, len: usize, max_seg: u64, seed: u64) -> Encoded {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut plaintext = vec![0u8; len];
    rng.fill_bytes(&mut plaintext);
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
        seqnum: 1 + seed % 5,
        max_segment_size: max_seg,
    };
    let shares = encode(&enc, key1(), &plaintext, &salts, &mut rng).unwrap();
    Encoded {
        plaintext,
        shares: shares.iter().map(|s| s.to_bytes().unwrap()).collect(),
    }
}

fn fmt_strategy() -> impl Strategy<Value = MutableFormat> {
    prop_oneof![Just(MutableFormat::Sdmf), Just(MutableFormat::Mdmf)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_round_trip(
        format in fmt_strategy(),
        k in 1u8..=5,
        extra in 0u8..=4,
        len in prop_oneof![Just(0usize), 1usize..64, 64usize..3000],
        max_seg in prop_oneof![Just(131072u64), 1u64..400],
        seed in any::<u64>(),
        pick in any::<u64>(),
    ) {
        let n = k + extra;
        let e = make(format, k, n, len, max_seg, seed);
        let keys = MutableKeys::from_signing_key(key1());
        let fp = keys.fingerprint().unwrap();
        let parsed: Vec<MutableShare> = e.shares.iter().map(|b| MutableShare::parse(b).unwrap()).collect();
        for (i, (p, b)) in parsed.iter().zip(&e.shares).enumerate() {
            prop_assert_eq!(&p.to_bytes().unwrap(), b);
            prop_assert_eq!(verify_share(i as u8, p, &fp), Ok(()));
            prop_assert_eq!(b[0], format.version_byte());
        }
        // a pseudo-random k-subset, in a pseudo-random order
        let mut idx: Vec<usize> = (0..n as usize).collect();
        let mut r = ChaCha20Rng::seed_from_u64(pick);
        for i in (1..idx.len()).rev() {
            idx.swap(i, (r.next_u32() as usize) % (i + 1));
        }
        let chosen: Vec<(u8, &MutableShare)> = idx[..k as usize].iter().map(|&i| (i as u8, &parsed[i])).collect();
        let d = decode(keys.readkey(), &fp, &chosen).unwrap();
        prop_assert_eq!(d.plaintext, e.plaintext);
        // fewer than k shares are not enough
        if k > 1 {
            let few = decode(keys.readkey(), &fp, &chosen[..k as usize - 1]);
            let not_enough = matches!(few, Err(DecodeError::NotEnoughShares { .. }));
            prop_assert!(not_enough);
        }
    }
}

/// A few fixed share sets for the corruption tests (signing is the slow part).
fn fixtures() -> &'static Vec<Encoded> {
    static F: OnceLock<Vec<Encoded>> = OnceLock::new();
    F.get_or_init(|| {
        vec![
            make(MutableFormat::Sdmf, 3, 5, 200, 131072, 1),
            make(MutableFormat::Sdmf, 2, 3, 0, 131072, 2),
            make(MutableFormat::Mdmf, 3, 5, 200, 131072, 3),
            make(MutableFormat::Mdmf, 2, 4, 300, 64, 4), // 5 segments
            make(MutableFormat::Mdmf, 1, 2, 0, 131072, 5),
            make(MutableFormat::Sdmf, 1, 1, 10, 131072, 6),
        ]
    })
}

/// Where corruption is harmless to a reader, for the original share bytes: MDMF's zero
/// gap before the share data (never read) and the encrypted private key (only a writer
/// reads it, and the writekey check catches any change).
fn harmless_region(share: &[u8], pos: usize) -> &'static str {
    let parsed = MutableShare::parse(share).unwrap();
    let epk = parsed.enc_privkey.len();
    match parsed.header.format {
        MutableFormat::Mdmf => {
            let vk_end = MDMF_HEADER_LEN
                + epk
                + parsed.share_hash_chain.len() * 34
                + parsed.signature.len()
                + parsed.verification_key.len();
            if (vk_end..MDMF_SHARE_DATA_OFFSET).contains(&pos) {
                "gap"
            } else if (MDMF_HEADER_LEN..MDMF_HEADER_LEN + epk).contains(&pos) {
                "encprivkey"
            } else {
                ""
            }
        }
        MutableFormat::Sdmf => {
            if (share.len() - epk..share.len()).contains(&pos) {
                "encprivkey"
            } else {
                ""
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_corrupted_byte_is_detected_or_harmless(
        which in 0usize..6,
        victim in any::<u64>(),
        pos in any::<u64>(),
        mask in 1u8..=255,
    ) {
        let f = &fixtures()[which];
        let n = f.shares.len();
        let victim = (victim % n as u64) as usize;
        let pos = (pos % f.shares[victim].len() as u64) as usize;
        let mut bad = f.shares[victim].clone();
        bad[pos] ^= mask;
        let keys = MutableKeys::from_signing_key(key1());
        let fp = keys.fingerprint().unwrap();
        let Ok(parsed_bad) = MutableShare::parse(&bad) else {
            return Ok(()); // detected while parsing this very share
        };
        let parsed: Vec<MutableShare> = f
            .shares
            .iter()
            .enumerate()
            .map(|(i, b)| if i == victim { parsed_bad.clone() } else { MutableShare::parse(b).unwrap() })
            .collect();
        let all: Vec<(u8, &MutableShare)> = parsed.iter().enumerate().map(|(i, s)| (i as u8, s)).collect();
        let k = parsed[0].header.k as usize;
        match verify_share(victim as u8, &parsed_bad, &fp) {
            Err(_) => {
                // Named as bad; the others still decode (if enough remain).
                match decode(keys.readkey(), &fp, &all) {
                    Ok(d) => {
                        prop_assert!(n > k);
                        prop_assert_eq!(d.plaintext, f.plaintext.clone());
                        prop_assert_eq!(d.bad_shares.len(), 1);
                        prop_assert_eq!(d.bad_shares[0].shnum as usize, victim);
                    }
                    Err(DecodeError::NotEnoughShares { bad, .. }) => {
                        prop_assert_eq!(n, k);
                        prop_assert_eq!(bad.len(), 1);
                        prop_assert_eq!(bad[0].shnum as usize, victim);
                    }
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
            }
            Ok(()) => {
                // Undetected by a reader: the plaintext must still be right, and the byte
                // must be in the gap, or a writer's privkey check must reject the share.
                let d = decode(keys.readkey(), &fp, &all).unwrap();
                prop_assert_eq!(d.plaintext, f.plaintext.clone());
                prop_assert!(d.bad_shares.is_empty());
                let region = harmless_region(&f.shares[victim], pos);
                let privkey_rejected = decrypt_privkey(keys.writekey().unwrap(), &parsed_bad.enc_privkey).is_err();
                prop_assert!(
                    region == "gap" || privkey_rejected,
                    "undetected corruption at {pos} (region {region:?})"
                );
            }
        }
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..3000), v in 0u8..3) {
        let mut data = data;
        if let Some(b) = data.first_mut() { *b = v; }
        if let Ok(s) = MutableShare::parse(&data) {
            let _ = s.to_bytes();
            let _ = verify_share(0, &s, &[0; 32]);
        }
    }

    #[test]
    fn garbage_headers_on_real_shares_never_panic(
        which in 0usize..6,
        patch in proptest::collection::vec((0usize..130, any::<u8>()), 1..12),
    ) {
        let f = &fixtures()[which];
        let mut data = f.shares[0].clone();
        for (p, b) in patch {
            if p < data.len() { data[p] = b; }
        }
        if let Ok(s) = MutableShare::parse(&data) {
            let _ = s.to_bytes();
            let keys = MutableKeys::from_signing_key(key1());
            let _ = decode(keys.readkey(), &keys.fingerprint().unwrap(), &[(0, &s)]);
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    for f in fixtures() {
        for share in &f.shares {
            for len in 0..share.len() {
                assert!(
                    MutableShare::parse(&share[..len]).is_err(),
                    "prefix of {len} bytes parsed"
                );
            }
        }
    }
}

#[test]
fn huge_declared_sizes_are_refused_without_allocating() {
    // MDMF header claiming 2^63 bytes in segments of 1, and an SDMF one with offsets near 2^64.
    let mut m = vec![0u8; 200];
    m[0] = 1;
    m[41] = 1;
    m[42] = 1;
    m[43..51].copy_from_slice(&1u64.to_be_bytes());
    m[51..59].copy_from_slice(&(1u64 << 63).to_be_bytes());
    assert!(MutableShare::parse(&m).is_err());
    let mut s = vec![0u8; 200];
    s[57] = 1;
    s[58] = 1;
    s[59..67].copy_from_slice(&u64::MAX.to_be_bytes());
    s[67..75].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(MutableShare::parse(&s).is_err());
    for b in s[75..107].iter_mut() {
        *b = 0xff;
    }
    s[67..75].copy_from_slice(&10u64.to_be_bytes());
    s[59..67].copy_from_slice(&10u64.to_be_bytes());
    assert!(MutableShare::parse(&s).is_err());
}

#[test]
fn sign_and_verify() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let msg = b"a signed prefix";
    let sig = key1().sign(&mut rng, msg).unwrap();
    assert_eq!(sig.len(), 256);
    let vk1 = key1().verifying_key();
    let vk2 = vector_key(2).verifying_key();
    vk1.verify(msg, &sig).unwrap();
    assert!(
        vk2.verify(msg, &sig).is_err(),
        "another key's verifying key accepts"
    );
    assert!(
        vk1.verify(b"a signed prefiX", &sig).is_err(),
        "modified message accepted"
    );
    let mut bad = sig.clone();
    bad[100] ^= 1;
    assert!(vk1.verify(msg, &bad).is_err());
    assert!(vk1.verify(msg, &sig[1..]).is_err());
    // randomised: two signatures differ, both verify
    let sig2 = key1().sign(&mut rng, msg).unwrap();
    assert_ne!(sig, sig2);
    vk1.verify(msg, &sig2).unwrap();
    // round trip through SPKI
    let again = VerifyingKey::from_spki_der(vk1.spki_der()).unwrap();
    again.verify(msg, &sig).unwrap();
    assert_eq!(again.fingerprint(), vk1.fingerprint());
}

#[test]
fn share_signed_by_another_key_or_with_modified_prefix_fails() {
    let f = &fixtures()[0];
    let keys = MutableKeys::from_signing_key(key1());
    let fp = keys.fingerprint().unwrap();
    let share = MutableShare::parse(&f.shares[0]).unwrap();
    // re-sign with key2 but keep key1's verification key: bad signature
    let mut other = share.clone();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    other.signature = vector_key(2)
        .sign(&mut rng, &share.signed_prefix())
        .unwrap();
    assert!(matches!(
        verify_share(0, &other, &fp),
        Err(cairn_core::mutable::ShareFault::BadSignature)
    ));
    // swap in key2's verification key too: the fingerprint no longer matches
    other.verification_key = vector_key(2).verifying_key().spki_der().to_vec();
    assert!(matches!(
        verify_share(0, &other, &fp),
        Err(cairn_core::mutable::ShareFault::FingerprintMismatch)
    ));
    // a modified prefix (seqnum) fails the signature
    let mut newer = share.clone();
    newer.header.seqnum += 1;
    assert!(newer.verify_signature(&key1().verifying_key()).is_err());
    assert!(matches!(
        verify_share(0, &newer, &fp),
        Err(cairn_core::mutable::ShareFault::BadSignature)
    ));
    // a wrong share number fails the share hash chain
    assert!(matches!(
        verify_share(1, &share, &fp),
        Err(cairn_core::mutable::ShareFault::ShareHashChain(_))
    ));
}

#[test]
fn key_loading_rules() {
    // Tahoe refuses private keys that are not 2048 bits.
    use rsa::pkcs8::EncodePrivateKey;
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let small = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
    let der = small.to_pkcs8_der().unwrap();
    assert_eq!(
        SigningKey::from_pkcs8_der(der.as_bytes()).unwrap_err(),
        KeyError::WrongKeySize { bits: 1024 }
    );
    // ...but its public key still loads and verifies (Tahoe's verifying path has no size check).
    assert!(VerifyingKey::from_spki_der(
        rsa::pkcs8::EncodePublicKey::to_public_key_der(&small.to_public_key())
            .unwrap()
            .as_bytes()
    )
    .is_ok());
    assert!(
        SigningKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .is_err()
    );
    assert!(SigningKey::from_pkcs8_der(b"garbage").is_err());
    assert!(VerifyingKey::from_spki_der(b"garbage").is_err());
    // encprivkey with the wrong writekey is refused
    let keys = MutableKeys::from_signing_key(key1());
    let enc = keys.encrypt_privkey(key1()).unwrap();
    assert_eq!(
        decrypt_privkey(&[0u8; 16], &enc).unwrap_err(),
        KeyError::PrivkeyMismatch
    );
    assert_eq!(
        decrypt_privkey(keys.writekey().unwrap(), &enc)
            .unwrap()
            .pkcs8_der(),
        key1().pkcs8_der()
    );
    // write enablers differ per server seed and need a writekey
    let we1 = keys.write_enabler(&[1u8; 20]).unwrap();
    assert_ne!(we1, keys.write_enabler(&[2u8; 20]).unwrap());
    assert_eq!(
        MutableKeys::from_readkey(*keys.readkey()).write_enabler(&[1u8; 20]),
        None
    );
}

#[test]
#[ignore = "RSA-2048 key generation is slow in debug builds"]
fn generated_keys_work() {
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let sk = SigningKey::generate_rsa(&mut rng).unwrap();
    let again = SigningKey::from_pkcs8_der(sk.pkcs8_der()).unwrap();
    assert_eq!(again.pkcs8_der(), sk.pkcs8_der());
    let sig = sk.sign(&mut rng, b"x").unwrap();
    sk.verifying_key().verify(b"x", &sig).unwrap();
}

#[test]
fn newest_recoverable_version_wins() {
    let keys = MutableKeys::from_signing_key(key1());
    let fp = keys.fingerprint().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let v = |seqnum: u64, text: &[u8], rng: &mut ChaCha20Rng| -> Vec<MutableShare> {
        let enc = Encoding::new(MutableFormat::Mdmf, 2, 4, seqnum);
        encode(&enc, key1(), text, &[[seqnum as u8; 16]], rng).unwrap()
    };
    let old = v(1, b"old contents", &mut rng);
    let new = v(2, b"new contents", &mut rng);
    // shares 0,1 new; 2,3 old: both recoverable, the newer wins
    let mix: Vec<(u8, &MutableShare)> =
        vec![(0, &new[0]), (1, &new[1]), (2, &old[2]), (3, &old[3])];
    let d = decode(keys.readkey(), &fp, &mix).unwrap();
    assert_eq!(d.plaintext, b"new contents");
    assert_eq!(d.header.seqnum, 2);
    assert_eq!(d.other_versions, vec![2, 3]);
    // only one new share: the old version is the newest recoverable one
    let mix: Vec<(u8, &MutableShare)> = vec![(0, &new[0]), (2, &old[2]), (3, &old[3])];
    let d = decode(keys.readkey(), &fp, &mix).unwrap();
    assert_eq!(d.plaintext, b"old contents");
    // the same share twice counts once
    let dup: Vec<(u8, &MutableShare)> = vec![(0, &new[0]), (0, &new[0])];
    assert!(matches!(
        decode(keys.readkey(), &fp, &dup),
        Err(DecodeError::NotEnoughShares {
            needed: 2,
            good: 1,
            ..
        })
    ));
    assert!(matches!(
        decode(keys.readkey(), &fp, &[]),
        Err(DecodeError::NoShares)
    ));
}

//! Mutable files against golden vectors from real Tahoe-LAFS 1.20 (`vectors/`):
//! key derivations for every `mutable_caps.json` case, and for every `mutable_shares.json`
//! case: parse, signature, decode from every k-subset, byte-exact re-encoding.

use std::path::PathBuf;

use cairn_core::base32;
use cairn_core::hashutil::ssk_writekey_hash;
use cairn_core::mutable::codec::{encode_unsigned, Encoding};
use cairn_core::mutable::{
    decode, decrypt_privkey, encrypt_privkey, verify_share, MutableFormat, MutableKeys,
    MutableShare, SegmentParams, SigningKey, VerifyingKey, SALT_LEN,
};
use cairn_test_support::data;
use rand_core::{CryptoRng, RngCore};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../vectors")
}

fn load_json(name: &str) -> Value {
    let text = std::fs::read_to_string(vectors_dir().join(name)).expect("vector file");
    serde_json::from_str(&text).expect("json")
}

use cairn_test_support::data::hex;

use cairn_test_support::data::b64;

fn load_key(file: &str) -> SigningKey {
    let pem = std::fs::read_to_string(vectors_dir().join(file)).unwrap();
    SigningKey::from_pem(&pem).unwrap()
}

/// An RNG that replays given bytes, then continues with ChaCha20: with Tahoe's PSS salt
/// first, our signer reproduces Tahoe's signature exactly (the rest only feeds RSA blinding).
struct Replay(Vec<u8>, usize, rand_chacha::ChaCha20Rng);
impl Replay {
    fn new(bytes: Vec<u8>) -> Replay {
        Replay(
            bytes,
            0,
            <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(99),
        )
    }
}
impl RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            *d = match self.0.get(self.1) {
                Some(b) => *b,
                None => (self.2.next_u32() & 0xff) as u8,
            };
            self.1 += 1;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for Replay {}

#[test]
fn caps_derivations_match_tahoe() {
    let v = load_json("mutable_caps.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for c in cases {
        let key = load_key(c["key_file"].as_str().unwrap());
        let pkcs8 = hex(c["privkey_pkcs8_der_hex"].as_str().unwrap());
        assert_eq!(key.pkcs8_der(), &pkcs8[..], "{}", c["key_file"]);
        let spki = hex(c["pubkey_spki_der_hex"].as_str().unwrap());
        let vk = key.verifying_key();
        assert_eq!(vk.spki_der(), &spki[..]);
        let keys = MutableKeys::from_signing_key(&key);
        let wk = keys.writekey().unwrap();
        assert_eq!(&wk[..], &hex(c["writekey_hex"].as_str().unwrap())[..]);
        assert_eq!(
            &keys.readkey()[..],
            &hex(c["readkey_hex"].as_str().unwrap())[..]
        );
        assert_eq!(
            base32::encode(&keys.storage_index()),
            c["storage_index_b32"].as_str().unwrap()
        );
        assert_eq!(
            &keys.fingerprint().unwrap()[..],
            &hex(c["fingerprint_hex"].as_str().unwrap())[..]
        );
        assert_eq!(vk.fingerprint(), keys.fingerprint().unwrap());
        assert_eq!(
            &keys.write_enabler_master().unwrap()[..],
            &hex(c["write_enabler_master_hex"].as_str().unwrap())[..]
        );
        let enc = hex(c["encprivkey_hex"].as_str().unwrap());
        assert_eq!(keys.encrypt_privkey(&key).unwrap(), enc);
        assert_eq!(encrypt_privkey(wk, &pkcs8), enc);
        let back = decrypt_privkey(wk, &enc).unwrap();
        assert_eq!(back.pkcs8_der(), &pkcs8[..]);
        // From the writekey alone.
        let from_wk = MutableKeys::from_writekey(*wk);
        assert_eq!(from_wk.readkey(), keys.readkey());
        assert_eq!(from_wk.storage_index(), keys.storage_index());
        assert_eq!(from_wk.fingerprint(), None);
        // Reloading the PKCS#8 DER gives the same bytes.
        assert_eq!(
            SigningKey::from_pkcs8_der(&pkcs8).unwrap().pkcs8_der(),
            &pkcs8[..]
        );
        // The caps carry the same keys.
        let writecap = c["writecap"].as_str().unwrap();
        let fields: Vec<&str> = writecap.split(':').collect();
        assert_eq!(base32::decode(fields[2]).unwrap(), wk.to_vec());
        assert_eq!(
            base32::decode(fields[3]).unwrap(),
            keys.fingerprint().unwrap().to_vec()
        );
        let readcap = c["readcap"].as_str().unwrap();
        assert_eq!(
            base32::decode(readcap.split(':').nth(2).unwrap()).unwrap(),
            keys.readkey().to_vec()
        );
    }
}

#[test]
fn pkcs8_pem_and_pkcs1_pem_give_the_same_key() {
    let p1 = load_key("mutable_keys/key1.pem");
    let p8 = load_key("mutable_keys/key1.p8.pem");
    assert_eq!(p1.pkcs8_der(), p8.pkcs8_der());
    assert_eq!(
        ssk_writekey_hash(p1.pkcs8_der()),
        ssk_writekey_hash(p8.pkcs8_der())
    );
    // PEM round trip of our own output.
    assert_eq!(
        SigningKey::from_pem(&p1.to_pkcs8_pem())
            .unwrap()
            .pkcs8_der(),
        p1.pkcs8_der()
    );
    assert!(format!("{p1:?}").contains("redacted"));
    let keys = MutableKeys::from_signing_key(&p1);
    let dbg = format!("{keys:?}");
    assert!(dbg.contains("redacted"));
    assert!(!dbg.contains(&base32::encode(keys.readkey())));
}

struct Case {
    label: String,
    format: MutableFormat,
    k: u8,
    n: u8,
    seqnum: u64,
    key: SigningKey,
    plaintext: Vec<u8>,
    salts: Vec<[u8; SALT_LEN]>,
    pss_salt: Vec<u8>,
    shares: Vec<Vec<u8>>,
    /// EOF offset of each share (shorter than the slot when it keeps a stale tail).
    eofs: Vec<usize>,
}

/// Byte comparison that reports the first difference instead of dumping kilobytes.
#[track_caller]
fn assert_same(ours: &[u8], theirs: &[u8], what: &str) {
    if ours != theirs {
        let at = ours
            .iter()
            .zip(theirs)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(theirs.len()));
        panic!(
            "{what}: lengths {} vs {}, first difference at byte {at}",
            ours.len(),
            theirs.len()
        );
    }
}

fn share_cases() -> Vec<Case> {
    let v = load_json("mutable_shares.json");
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let format = match c["format"].as_str().unwrap() {
                "sdmf" => MutableFormat::Sdmf,
                _ => MutableFormat::Mdmf,
            };
            let k = c["k"].as_u64().unwrap() as u8;
            let n = c["n"].as_u64().unwrap() as u8;
            let size = c["size"].as_u64().unwrap() as usize;
            let plaintext = match c["plaintext_b64"].as_str() {
                Some(p) => b64(p),
                None => {
                    let seed = b64(c["seed_b64"].as_str().unwrap());
                    seed.iter().copied().cycle().take(size).collect()
                }
            };
            assert_eq!(plaintext.len(), size);
            let params = SegmentParams::for_publish(format, k, n, size as u64).unwrap();
            let all_salts: Vec<[u8; 16]> = c["salts_hex"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| hex(s.as_str().unwrap()).try_into().unwrap())
                .collect();
            // The last version's salts are the last ones drawn.
            let salts = all_salts[all_salts.len() - params.num_salts()..].to_vec();
            let pss = c["pss_salts_hex"].as_array().unwrap();
            let shares: Vec<Vec<u8>> = (0..n)
                .map(|i| b64(c["shares"][i.to_string()].as_str().unwrap()))
                .collect();
            let eofs: Vec<usize> = (0..n)
                .map(|i| c["share_eof"][i.to_string()].as_u64().unwrap() as usize)
                .collect();
            let stale = c["slot_has_stale_tail"].as_bool().unwrap();
            for (sh, eof) in eofs.iter().enumerate() {
                assert_eq!(shares[sh].len() > *eof, stale);
            }
            Case {
                label: c["label"].as_str().unwrap().to_string(),
                format,
                k,
                n,
                seqnum: c["seqnum"].as_u64().unwrap(),
                key: load_key(c["key_file"].as_str().unwrap()),
                plaintext,
                salts,
                pss_salt: hex(pss[pss.len() - 1].as_str().unwrap()),
                shares,
                eofs,
            }
        })
        .collect()
}

#[test]
fn tahoe_shares_parse_verify_and_decode() {
    let cases = share_cases();
    assert!(cases.len() >= 10);
    for case in &cases {
        let keys = MutableKeys::from_signing_key(&case.key);
        let fp = keys.fingerprint().unwrap();
        let vk = case.key.verifying_key();
        let parsed: Vec<MutableShare> = case
            .shares
            .iter()
            .map(|b| MutableShare::parse(b).unwrap())
            .collect();
        for (sh, share) in parsed.iter().enumerate() {
            assert_eq!(share.header.format, case.format, "{}", case.label);
            assert_eq!(share.header.seqnum, case.seqnum);
            assert_eq!((share.header.k, share.header.n), (case.k, case.n));
            assert_eq!(share.header.data_length, case.plaintext.len() as u64);
            assert_eq!(share.verification_key, vk.spki_der());
            share.verify_signature(&vk).unwrap();
            let parsed_vk = VerifyingKey::from_spki_der(&share.verification_key).unwrap();
            share.verify_signature(&parsed_vk).unwrap();
            verify_share(sh as u8, share, &fp)
                .unwrap_or_else(|e| panic!("{} share {sh}: {e}", case.label));
            // parse -> to_bytes is the identity on Tahoe's bytes
            assert_same(
                &share.to_bytes().unwrap(),
                &case.shares[sh][..case.eofs[sh]],
                &format!("{} share {sh}", case.label),
            );
            // the encrypted private key decrypts and validates
            let sk = keys.decrypt_privkey(&share.enc_privkey).unwrap().unwrap();
            assert_eq!(sk.pkcs8_der(), case.key.pkcs8_der());
        }
        let big = case.plaintext.len() > 100_000;
        let subs = data::k_subsets(case.n as usize, case.k as usize);
        let subs: Vec<_> = if big {
            subs.into_iter().step_by(17).collect()
        } else {
            subs
        };
        for sub in &subs {
            let chosen: Vec<(u8, &MutableShare)> =
                sub.iter().map(|&i| (i as u8, &parsed[i])).collect();
            let d = decode(keys.readkey(), &fp, &chosen)
                .unwrap_or_else(|e| panic!("{} {sub:?}: {e}", case.label));
            assert_eq!(d.plaintext, case.plaintext, "{} {sub:?}", case.label);
            assert!(d.bad_shares.is_empty());
        }
        // A readcap-only holder decodes too.
        let ro = MutableKeys::from_readkey(*keys.readkey()).with_fingerprint(fp);
        let all: Vec<(u8, &MutableShare)> = parsed
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u8, s))
            .collect();
        assert_eq!(
            decode(ro.readkey(), &fp, &all).unwrap().plaintext,
            case.plaintext
        );
    }
}

#[test]
fn reencoding_with_tahoes_salts_reproduces_tahoes_bytes() {
    for case in share_cases() {
        let keys = MutableKeys::from_signing_key(&case.key);
        let encoding = Encoding::new(case.format, case.k, case.n, case.seqnum);
        let spki = case.key.verifying_key().spki_der().to_vec();
        let enc_privkey = keys.encrypt_privkey(&case.key).unwrap();
        let unsigned = encode_unsigned(
            &encoding,
            keys.readkey(),
            &spki,
            &enc_privkey,
            &case.plaintext,
            &case.salts,
        )
        .unwrap();
        let tahoe0 = MutableShare::parse(&case.shares[0]).unwrap();
        assert_eq!(
            unsigned.signed_prefix(),
            tahoe0.signed_prefix(),
            "{}",
            case.label
        );
        // 1. With Tahoe's signature inserted: every byte equal.
        let ours = unsigned.clone().with_signature(&tahoe0.signature);
        assert_eq!(ours.len(), case.n as usize);
        for (sh, share) in ours.iter().enumerate() {
            assert_same(
                &share.to_bytes().unwrap(),
                &case.shares[sh][..case.eofs[sh]],
                &format!("{} share {sh}", case.label),
            );
        }
        // 2. Our signer, fed Tahoe's PSS salt, makes Tahoe's exact signature.
        let mut replay = Replay::new(case.pss_salt.clone());
        let signed = unsigned.clone().sign(&case.key, &mut replay).unwrap();
        assert_eq!(signed[0].signature, tahoe0.signature, "{}", case.label);
        // 3. With a random PSS salt: everything but the signature equal, and it verifies.
        let mut rng = rand_chacha::ChaCha20Rng::from_seed_u64(7);
        let signed = unsigned.sign(&case.key, &mut rng).unwrap();
        let vk = case.key.verifying_key();
        for (sh, share) in signed.iter().enumerate() {
            share.verify_signature(&vk).unwrap();
            let mut mine = share.clone();
            mine.signature = tahoe0.signature.clone();
            assert_same(
                &mine.to_bytes().unwrap(),
                &case.shares[sh][..case.eofs[sh]],
                &case.label,
            );
        }
        // 4. The one-call encoder agrees.
        let mut replay = Replay::new(case.pss_salt.clone());
        let full = cairn_core::mutable::encode(
            &encoding,
            &case.key,
            &case.plaintext,
            &case.salts,
            &mut replay,
        )
        .unwrap();
        for (sh, share) in full.iter().enumerate() {
            assert_same(
                &share.to_bytes().unwrap(),
                &case.shares[sh][..case.eofs[sh]],
                &format!("{} share {sh}", case.label),
            );
        }
    }
}

trait FromSeedU64 {
    fn from_seed_u64(seed: u64) -> Self;
}
impl FromSeedU64 for rand_chacha::ChaCha20Rng {
    fn from_seed_u64(seed: u64) -> Self {
        <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(seed)
    }
}

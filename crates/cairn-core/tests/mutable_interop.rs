//! Interoperability with pycryptopp-era SDMF shares: the ten shares of
//! `allmydata/test/mutable/test_interoperability.py` (Tahoe-LAFS 1.20), with the old
//! "Tahoe mutable container v1" server header stripped (share data = container bytes
//! 468..468+data_length). Their key has e = 17, a 292-byte SPKI and a 1214-byte PKCS#8.

use base64::Engine;
use cairn_core::base32;
use cairn_core::mutable::codec::{encode_unsigned, Encoding};
use cairn_core::mutable::{
    decode, verify_share, MutableFormat, MutableKeys, MutableShare, VerifyingKey,
};

const CAP: &str =
    "URI:SSK:gmjgofw6gan57gwpsow6gtrz3e:5adm6fayxmu3e4lkmfvt6lkkfix34ai2wop2ioqr4bgvvhiol3kq";
const CONTENTS: &[u8] = b"This is a test file.\n";

/// One base64 share a line (the ten shares of `test_interoperability.py`).
const SHARES: &str = include_str!("../../../vectors/mutable_old_sdmf_shares.txt");

fn shares() -> Vec<Vec<u8>> {
    SHARES
        .lines()
        .map(|s| base64::engine::general_purpose::STANDARD.decode(s).unwrap())
        .collect()
}

fn cap_keys() -> MutableKeys {
    let f: Vec<&str> = CAP.split(':').collect();
    let wk: [u8; 16] = base32::decode_array(f[2]).unwrap();
    let fp: [u8; 32] = base32::decode_array(f[3]).unwrap();
    MutableKeys::from_writekey(wk).with_fingerprint(fp)
}

#[test]
fn old_sdmf_shares_parse_verify_and_decode() {
    let keys = cap_keys();
    let fp = keys.fingerprint().unwrap();
    let raw = shares();
    let parsed: Vec<MutableShare> = raw
        .iter()
        .map(|b| MutableShare::parse(b).unwrap())
        .collect();
    for (i, s) in parsed.iter().enumerate() {
        assert_eq!(s.header.format, MutableFormat::Sdmf);
        assert_eq!(s.verification_key.len(), 292);
        verify_share(i as u8, s, &fp).unwrap();
        assert_eq!(s.to_bytes().unwrap(), raw[i]);
        let vk = VerifyingKey::from_spki_der(&s.verification_key).unwrap();
        s.verify_signature(&vk).unwrap();
    }
    let (k, n) = (parsed[0].header.k as usize, parsed[0].header.n as usize);
    for a in 0..n {
        for b in a + 1..n {
            for c in b + 1..n {
                let mut chosen = vec![
                    (a as u8, &parsed[a]),
                    (b as u8, &parsed[b]),
                    (c as u8, &parsed[c]),
                ];
                chosen.truncate(k);
                assert_eq!(
                    decode(keys.readkey(), &fp, &chosen).unwrap().plaintext,
                    CONTENTS
                );
            }
        }
    }
}

#[test]
fn old_private_key_decrypts_keeps_its_bytes_and_signs() {
    let keys = cap_keys();
    let parsed = MutableShare::parse(&shares()[0]).unwrap();
    let sk = keys.decrypt_privkey(&parsed.enc_privkey).unwrap().unwrap();
    assert_eq!(sk.pkcs8_der().len(), 1214);
    assert_eq!(sk.verifying_key().spki_der(), &parsed.verification_key[..]);
    // A new version signed with the old key (as Tahoe would publish it) verifies, and
    // re-encoding the old version with its own IV gives the old bytes.
    let enc = Encoding::new(
        MutableFormat::Sdmf,
        parsed.header.k,
        parsed.header.n,
        parsed.header.seqnum,
    );
    let unsigned = encode_unsigned(
        &enc,
        keys.readkey(),
        &parsed.verification_key,
        &parsed.enc_privkey,
        CONTENTS,
        &[parsed.header.iv.unwrap()],
    )
    .unwrap();
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(1);
    let signed = unsigned.clone().sign(&sk, &mut rng).unwrap();
    signed[0].verify_signature(&sk.verifying_key()).unwrap();
    let same = unsigned.with_signature(&parsed.signature);
    let raw = shares();
    for (i, s) in same.iter().enumerate() {
        assert_eq!(s.to_bytes().unwrap(), raw[i]);
    }
}

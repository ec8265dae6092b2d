//! CHK golden vectors from real Tahoe-LAFS 1.20 (`vectors/generate.py`):
//! `chk_caps.json` (caps for many sizes/parameters, LIT included) and `chk_shares.json`
//! (complete share bytes, layouts v1 and v2).

use cairn_core::chk::{
    self, ChkCapInfo, EncodingParams, Immutable, LayoutVersion, ShareLayout, Ueb,
};
use cairn_core::hashutil::storage_index_hash;
use cairn_core::ids::ShareNum;
use cairn_test_support::data;
use serde::Deserialize;

/// What a case encodes: parameters, convergence secret and seeded data of `size` bytes.
#[derive(Deserialize)]
struct Encoding {
    k: u16,
    n: u16,
    max_segment_size: u64,
    convergence_b64: String,
    seed_b64: String,
    size: u64,
}

impl Encoding {
    fn params(&self) -> EncodingParams {
        EncodingParams::new(self.k, self.k.min(self.n), self.n, self.max_segment_size).unwrap()
    }

    /// The file: the seed repeated to `size` bytes.
    fn data(&self) -> Vec<u8> {
        stretch(&b64(&self.seed_b64), self.size)
    }
}

#[derive(Deserialize)]
struct CapCase {
    #[serde(flatten)]
    enc: Encoding,
    cap: String,
    #[serde(default)]
    verifycap: Option<String>,
}

#[derive(Deserialize)]
struct ShareCase {
    note: Option<String>,
    #[serde(flatten)]
    enc: Encoding,
    layout_version: u8,
    cap: String,
    shares: std::collections::BTreeMap<String, String>,
    ueb_hex: String,
}

#[derive(Deserialize)]
struct Cases<T> {
    cases: Vec<T>,
}

use cairn_test_support::data::b64;

use cairn_test_support::data::hex;

fn stretch(seed: &[u8], size: u64) -> Vec<u8> {
    seed.iter().copied().cycle().take(size as usize).collect()
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    let dir = std::env::var("CAIRN_VECTORS_DIR")
        .unwrap_or_else(|_| format!("{}/../../vectors", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<Cases<T>>(&text).unwrap().cases
}

/// Streams like an uploader would: key pass in 64 KiB chunks, then segment by segment.
fn cap_of(c: &CapCase) -> (String, Option<String>) {
    let params = c.enc.params();
    let conv = b64(&c.enc.convergence_b64);
    let data = c.enc.data();
    if chk::is_lit(c.enc.size) {
        return (Immutable::Lit(data).cap_string(), None);
    }
    let mut kh = chk::ConvergentKeyHasher::new(&params, c.enc.size, &conv).unwrap();
    for chunk in data.chunks(65536) {
        kh.update(chunk);
    }
    let key = kh.finish().unwrap();
    let mut enc = chk::ChkEncoder::new(&params, key, c.enc.size).unwrap();
    let mut pos = 0;
    while let Some(len) = enc.next_segment_len() {
        enc.push_segment(&data[pos..pos + len]).unwrap();
        pos += len;
    }
    let t = enc.finish().unwrap();
    assert_eq!(t.read_cap().to_string(), t.read_cap_string());
    assert_eq!(
        t.verify_cap().to_string(),
        t.cap_info().verify_cap_string(&storage_index_hash(&key))
    );
    (
        t.read_cap_string(),
        Some(t.cap_info().verify_cap_string(&storage_index_hash(&key))),
    )
}

fn run_caps(filter: impl Fn(&CapCase) -> bool) -> usize {
    let cases: Vec<CapCase> = load("chk_caps.json");
    let mut n = 0;
    for c in cases.iter().filter(|c| filter(c)) {
        let (cap, vcap) = cap_of(c);
        assert_eq!(
            cap, c.cap,
            "k={} n={} S={} size={}",
            c.enc.k, c.enc.n, c.enc.max_segment_size, c.enc.size
        );
        if let (Some(v), Some(_)) = (vcap, &c.verifycap) {
            assert_eq!(
                Some(v),
                c.verifycap,
                "verifycap k={} n={} size={}",
                c.enc.k,
                c.enc.n,
                c.enc.size
            );
        }
        n += 1;
    }
    n
}

const BIG: u64 = 4 << 20;

// Split so the test harness runs them on several threads.
#[test]
fn chk_caps_small() {
    assert!(run_caps(|c| c.enc.size < BIG) > 0);
}

#[test]
fn chk_caps_big_narrow() {
    assert!(run_caps(|c| c.enc.size >= BIG && c.enc.n <= 3) > 0);
}

#[test]
fn chk_caps_big_3_of_10() {
    assert!(run_caps(|c| c.enc.size >= BIG && c.enc.n == 10) > 0);
}

#[test]
fn chk_caps_big_wide() {
    assert!(run_caps(|c| c.enc.size >= BIG && c.enc.n > 10) > 0);
}

fn case_shares(c: &ShareCase) -> Vec<(ShareNum, Vec<u8>)> {
    c.shares
        .iter()
        .map(|(k, v)| (ShareNum(k.parse().unwrap()), b64(v)))
        .collect()
}

#[test]
fn chk_shares_byte_for_byte_and_decode() {
    let cases: Vec<ShareCase> = load("chk_shares.json");
    assert!(!cases.is_empty());
    for c in &cases {
        let what = format!(
            "{:?} k={} n={} size={} v{}",
            c.note, c.enc.k, c.enc.n, c.enc.size, c.layout_version
        );
        let params = c.enc.params();
        let data = c.enc.data();
        let key = chk::convergent_key(&params, &b64(&c.enc.convergence_b64), &data).unwrap();
        let layout = if c.layout_version == 1 {
            LayoutVersion::V1
        } else {
            LayoutVersion::V2
        };
        let f = chk::encode_file(&params, key, &data, Some(layout)).unwrap();
        assert_eq!(f.read_cap_string(), c.cap, "{what}");
        assert_eq!(f.trailer.ueb_bytes, hex(&c.ueb_hex), "{what}");
        let ueb = Ueb::parse(&f.trailer.ueb_bytes).unwrap();
        assert_eq!(ueb.to_bytes(), f.trailer.ueb_bytes);
        let theirs = case_shares(c);
        assert_eq!(theirs.len(), c.enc.n as usize);
        for (shnum, bytes) in &theirs {
            assert_eq!(&f.shares[shnum.get()], bytes, "{what} share {shnum}");
            let l = ShareLayout::parse(bytes).unwrap();
            assert_eq!(l.version, layout);
            assert_eq!(l.ueb, &hex(&c.ueb_hex)[..]);
        }
        let info: ChkCapInfo = f.cap_info();
        let rc = f.trailer.read_cap();
        assert_eq!(rc.to_string(), c.cap);
        assert_eq!(ChkCapInfo::from(&rc), info);
        let all: Vec<(ShareNum, &[u8])> = theirs.iter().map(|(s, b)| (*s, &b[..])).collect();
        assert!(chk::decode_read_cap(&rc, &all).unwrap() == data);
        for (shnum, bytes) in &theirs {
            chk::verify_share(&info, *shnum, bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        // every k-subset for small N, a sample of subsets otherwise
        let subsets = if c.enc.n <= 10 {
            data::k_subsets(c.enc.n as usize, c.enc.k as usize)
        } else {
            let n = c.enc.n as usize;
            let k = c.enc.k as usize;
            vec![
                (0..k).collect(),
                (n - k..n).collect(),
                (0..n)
                    .step_by(2)
                    .take(k)
                    .chain((1..n).step_by(2))
                    .take(k)
                    .collect(),
            ]
        };
        for sub in subsets {
            let chosen: Vec<(ShareNum, &[u8])> = sub
                .iter()
                .map(|&i| (theirs[i].0, &theirs[i].1[..]))
                .collect();
            let got = chk::decode(&info, Some(key), &chosen)
                .unwrap_or_else(|e| panic!("{what} {sub:?}: {e}"));
            assert!(got == data, "{what}: subset {sub:?} decodes wrong");
        }
    }
}

#[test]
fn python_set_order_of_share_hash_chains() {
    // The 71-of-255 case in chk_shares.json has chains in CPython set order, not sorted;
    // check the parsed order is what we write for every share there.
    let cases: Vec<ShareCase> = load("chk_shares.json");
    let c = cases
        .iter()
        .find(|c| c.enc.n == 255)
        .expect("a 255-share case");
    let mut unsorted = 0;
    for (_, bytes) in case_shares(c) {
        let idx: Vec<u16> = ShareLayout::parse(&bytes)
            .unwrap()
            .share_hash_entries()
            .map(|(i, _)| i)
            .collect();
        let mut s = idx.clone();
        s.sort();
        unsorted += (s != idx) as usize;
    }
    assert!(unsorted > 0, "expected some unsorted chains");
}

//! Capabilities: parse/print round trips, derivations, `dump-cap` text and error kinds,
//! checked against Tahoe-LAFS 1.20 itself.
//!
//! Sources of truth:
//! - `vectors/caps.json`, `vectors/mutable_caps.json`, `vectors/chk_caps.json` (generated
//!   from real Tahoe by `vectors/generate.py`);
//! - `INLINE_TAHOE`, below: outputs captured by hand from Tahoe 1.20 (`allmydata.uri` and
//!   the real `tahoe debug dump-cap` CLI), same schema as `caps.json`, covering every kind,
//!   k/N = 256/256, size = 2^64-1, LIT data needing each of `quote_output`'s quoting
//!   styles, `--nodeid`/`--client-secret` dumps, lenient inputs and invalid inputs.

use std::path::PathBuf;

use cairn_core::base32;
use cairn_core::cap::*;
use proptest::prelude::*;
use serde_json::Value;

fn vectors_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../vectors")
        .join(name)
}

/// Load a vectors file; `None` (with a note) if it has not been generated.
fn load_vectors(name: &str) -> Option<Value> {
    let path = vectors_path(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).expect("vectors file is valid JSON")),
        Err(e) => {
            eprintln!("skipping {}: {e}", path.display());
            None
        }
    }
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn opt_s(v: &Value) -> Option<&str> {
    v.as_str()
}

use cairn_test_support::data::hex;

fn arr<const N: usize>(text: &str) -> [u8; N] {
    hex(text).try_into().unwrap()
}

/// Kinds whose Tahoe `get_verify_cap()` is broken (it wraps the inner verify cap in a
/// `DirectoryURIVerifier`, whose `to_string()` then fails an assertion). cairn returns the
/// cap itself, like every other verify cap.
const TAHOE_BROKEN_VERIFIER: &[&str] =
    &["ImmutableDirectoryURIVerifier", "MDMFDirectoryURIVerifier"];

/// One entry of `cases`: parse, print back, derive, dump.
fn check_case(c: &Value) {
    let text = s(&c["cap"]);
    let cap = Cap::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(cap.to_string(), text, "round trip");
    assert_eq!(text.parse::<Cap>().unwrap(), cap, "FromStr");
    assert_eq!(cap.kind_name(), s(&c["kind"]), "{text}");
    let ro = cap.readonly().map(|c| c.to_string());
    assert_eq!(ro.as_deref(), opt_s(&c["readcap"]), "readcap of {text}");
    let vc = cap.verifier().map(|c| c.to_string());
    if TAHOE_BROKEN_VERIFIER.contains(&cap.kind_name()) {
        assert_eq!(
            vc.as_deref(),
            Some(text),
            "verifier of a verifier is itself"
        );
    } else {
        assert_eq!(vc.as_deref(), opt_s(&c["verifycap"]), "verifycap of {text}");
    }
    let si = cap.storage_index().map(|si| si.to_string());
    assert_eq!(
        si.as_deref(),
        opt_s(&c["storage_index_b32"]),
        "SI of {text}"
    );
    assert_eq!(
        cap.is_mutable(),
        c["is_mutable"].as_bool().unwrap(),
        "is_mutable {text}"
    );
    assert_eq!(
        cap.is_readonly(),
        c["is_readonly"].as_bool().unwrap(),
        "is_readonly {text}"
    );
    assert_eq!(dump_cap(&cap), s(&c["dump_cap"]), "dump-cap of {text}");
    // The derived caps are themselves valid and consistent.
    for derived in [cap.readonly(), cap.verifier()].into_iter().flatten() {
        let again = Cap::parse(&derived.to_string()).unwrap();
        assert_eq!(again, derived);
        assert_eq!(derived.storage_index(), cap.storage_index());
    }
    check_debug_redacts(&cap);
}

/// Debug must show no secret: no writekey, readkey, CHK key or LIT data in base32.
fn check_debug_redacts(cap: &Cap) {
    let dbg = format!("{cap:?}");
    for secret in secrets_of(cap) {
        assert!(!dbg.contains(&secret), "Debug {dbg} shows secret {secret}");
    }
}

fn secrets_of(cap: &Cap) -> Vec<String> {
    let mut out = Vec::new();
    match cap {
        Cap::Lit(c) if !c.data().is_empty() => out.push(base32::encode(c.data())),
        Cap::LitDir(c) if !c.filenode_cap().data().is_empty() => {
            out.push(base32::encode(c.filenode_cap().data()))
        }
        Cap::ChkRead(c) => out.push(base32::encode(c.key())),
        Cap::ChkDir(c) => out.push(base32::encode(c.filenode_cap().key())),
        Cap::SdmfWrite(c) => {
            out.push(c.writekey().to_base32());
            out.push(c.readkey().to_base32());
        }
        Cap::MdmfWrite(c) => {
            out.push(c.writekey().to_base32());
            out.push(c.readkey().to_base32());
        }
        Cap::SdmfRead(c) => out.push(c.readkey().to_base32()),
        Cap::MdmfRead(c) => out.push(c.readkey().to_base32()),
        Cap::SdmfDirWrite(c) => {
            out.push(c.filenode_cap().writekey().to_base32());
            out.push(c.filenode_cap().readkey().to_base32());
        }
        Cap::MdmfDirWrite(c) => {
            out.push(c.filenode_cap().writekey().to_base32());
            out.push(c.filenode_cap().readkey().to_base32());
        }
        Cap::SdmfDirRead(c) => out.push(c.filenode_cap().readkey().to_base32()),
        Cap::MdmfDirRead(c) => out.push(c.filenode_cap().readkey().to_base32()),
        _ => {}
    }
    out
}

fn check_dump_with_secrets(c: &Value) {
    let text = s(&c["cap"]);
    let cap = Cap::parse(text).unwrap();
    let nodeid: Option<[u8; 20]> = if let Some(h) = opt_s(&c["nodeid_hex"]) {
        Some(arr(h))
    } else {
        opt_s(&c["nodeid_b32"]).map(|b| {
            // RFC 4648 base32 of 20 bytes (32 chars, no padding) is Tahoe base32 too.
            base32::decode_array::<20>(b).unwrap()
        })
    };
    let secret: Option<Vec<u8>> = if let Some(h) = opt_s(&c["secret_hex"]) {
        Some(hex(h))
    } else {
        opt_s(&c["client_secret_b32"]).map(|b| base32::decode(b).unwrap())
    };
    assert_eq!(
        dump_cap_with(&cap, nodeid.as_ref(), secret.as_deref()),
        s(&c["dump_cap"]),
        "dump-cap with secrets of {text}"
    );
}

/// Tahoe accepts these leniently-formed caps (and prints its normalized form), but cairn
/// deliberately refuses CHK parameters no Tahoe node can produce.
fn cairn_stricter(text: &str) -> Option<CapError> {
    let cap_part = text.trim_start_matches("imm.").trim_start_matches("ro.");
    if !(cap_part.starts_with("URI:CHK") || cap_part.starts_with("URI:DIR2-CHK")) {
        return None;
    }
    let fields: Vec<&str> = cap_part.split(':').collect();
    if fields.len() < 7 {
        return None;
    }
    let k: u64 = fields[4].parse().ok()?;
    let n: u64 = fields[5].parse().ok()?;
    if n > 256 {
        Some(CapError::TooManyShares { n })
    } else if k == 0 {
        Some(CapError::ZeroNeededShares)
    } else if k > n {
        Some(CapError::NeededExceedsTotal { k, n })
    } else {
        None
    }
}

fn check_lenient(c: &Value) {
    let text = s(&c["cap"]);
    let normalized = c
        .get("to_string")
        .or_else(|| c.get("normalized"))
        .map(s)
        .unwrap();
    let class = c
        .get("from_string_class")
        .or_else(|| c.get("kind"))
        .map(s)
        .unwrap();
    if let Some(err) = cairn_stricter(text) {
        assert_eq!(Cap::parse(text), Err(err), "{text:?}");
        return;
    }
    let cap = Cap::parse(text).unwrap_or_else(|e| panic!("Tahoe accepts {text:?}, cairn: {e}"));
    assert_eq!(cap.kind_name(), class, "{text:?}");
    assert_eq!(cap.to_string(), normalized, "{text:?}");
}

/// Tahoe's `from_string` refuses (returns `UnknownURI` for) these; cairn must return the
/// matching kind of error.
fn check_invalid(c: &Value) {
    let text = s(&c["cap"]);
    let err = match Cap::parse(text) {
        Ok(cap) => panic!("{text:?} parsed as {cap:?}"),
        Err(e) => e,
    };
    let class = c.get("error_class").and_then(Value::as_str);
    let msg = c
        .get("error")
        .or_else(|| c.get("error_message"))
        .and_then(Value::as_str)
        .unwrap_or("None");
    let expected_class = class.unwrap_or(if msg.contains("read-only context") {
        "MustBeReadonlyError"
    } else if msg.contains("immutable context") {
        "MustBeDeepImmutableError"
    } else if msg == "None" {
        "none"
    } else {
        "BadURIError"
    });
    match expected_class {
        "MustBeReadonlyError" => assert!(
            matches!(err, CapError::MustBeReadonly { .. }),
            "{text:?}: {err:?}"
        ),
        "MustBeDeepImmutableError" => {
            assert!(
                matches!(err, CapError::MustBeDeepImmutable { .. }),
                "{text:?}: {err:?}"
            )
        }
        "none" => assert!(
            matches!(err, CapError::UnknownPrefix(_)),
            "{text:?}: {err:?}"
        ),
        "BadURIError" => assert!(
            matches!(
                err,
                CapError::BadBase32 { .. }
                    | CapError::WrongFieldCount { .. }
                    | CapError::BadNumber { .. }
            ),
            "{text:?}: {err:?}"
        ),
        other => panic!("unexpected error class {other} for {text:?}"),
    }
    // Error messages never echo secret fields.
    let shown = err.to_string();
    for field in text.split(':').skip(2) {
        if field.len() >= 26 {
            assert!(
                !shown.contains(field),
                "error {shown:?} echoes a field of {text:?}"
            );
        }
    }
}

fn check_file(v: &Value) {
    let cases = v["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        check_case(c);
    }
    // The optional lists of cases, each with its check.
    type Check = fn(&Value);
    let optional: [(&str, Check); 3] = [
        ("dump_cap_with_secrets", check_dump_with_secrets),
        ("lenient", check_lenient),
        ("invalid", check_invalid),
    ];
    for (key, check) in optional {
        for c in v.get(key).and_then(Value::as_array).into_iter().flatten() {
            check(c);
        }
    }
}

#[test]
fn tahoe_vectors_caps_json() {
    let Some(v) = load_vectors("caps.json") else {
        return;
    };
    check_file(&v);
    // Every kind is covered.
    let kinds: std::collections::BTreeSet<&str> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["kind"]))
        .collect();
    assert_eq!(kinds.len(), 18, "{kinds:?}");
}

#[test]
fn inline_tahoe_outputs() {
    let v: Value = serde_json::from_str(INLINE_TAHOE).unwrap();
    check_file(&v);
}

#[test]
fn tahoe_vectors_mutable_caps_json() {
    let Some(v) = load_vectors("mutable_caps.json") else {
        return;
    };
    for c in v["cases"].as_array().unwrap() {
        let wk: [u8; 16] = arr(s(&c["writekey_hex"]));
        let rk: [u8; 16] = arr(s(&c["readkey_hex"]));
        let fp: [u8; 32] = arr(s(&c["fingerprint_hex"]));
        let (w, r, vf, dw, dr, dv) = (
            s(&c["writecap"]),
            s(&c["readcap"]),
            s(&c["verifycap"]),
            s(&c["dir_writecap"]),
            s(&c["dir_readcap"]),
            s(&c["dir_verifycap"]),
        );
        let si = s(&c["storage_index_b32"]);
        // The same checks for both formats: their caps have the same API, not a common trait.
        macro_rules! check_write_caps {
            ($file:ident, $dir:ident) => {{
                let cap = $file::new(wk, fp);
                assert_eq!(cap.to_string(), w);
                assert_eq!(cap.readkey().as_bytes(), &rk);
                assert_eq!(cap.readonly().to_string(), r);
                assert_eq!(cap.verifier().to_string(), vf);
                assert_eq!(cap.readonly().verifier().to_string(), vf);
                assert_eq!(cap.storage_index().to_string(), si);
                let d = $dir::new(cap);
                assert_eq!(d.to_string(), dw);
                assert_eq!(d.readonly().to_string(), dr);
                assert_eq!(d.verifier().to_string(), dv);
                assert_eq!(d.storage_index(), StorageIndex::from_base32(si).unwrap());
            }};
        }
        match s(&c["format"]) {
            "sdmf" => check_write_caps!(SdmfWriteCap, SdmfDirWriteCap),
            "mdmf" => check_write_caps!(MdmfWriteCap, MdmfDirWriteCap),
            other => panic!("unknown format {other}"),
        }
        for text in [w, r, vf, dw, dr, dv] {
            let cap = Cap::parse(text).unwrap();
            assert_eq!(cap.to_string(), text);
            assert_eq!(cap.storage_index().unwrap().to_string(), si);
            assert_eq!(
                cap.verifier().unwrap().storage_index().unwrap().to_string(),
                si
            );
            check_debug_redacts(&cap);
        }
        // The generic path agrees with the typed one.
        let wcap = Cap::parse(w).unwrap();
        assert_eq!(wcap.readonly().unwrap().to_string(), r);
        assert_eq!(wcap.verifier().unwrap().to_string(), vf);
        let dcap = Cap::parse(dw).unwrap();
        assert_eq!(dcap.readonly().unwrap().to_string(), dr);
        assert_eq!(dcap.verifier().unwrap().to_string(), dv);
    }
}

#[test]
fn tahoe_vectors_chk_caps_json() {
    let Some(v) = load_vectors("chk_caps.json") else {
        return;
    };
    for c in v["cases"].as_array().unwrap() {
        let text = s(&c["cap"]);
        let cap = Cap::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(cap.to_string(), text);
        assert_eq!(
            cap.verifier().map(|v| v.to_string()).as_deref(),
            opt_s(&c["verifycap"])
        );
        match &cap {
            Cap::ChkRead(chk) => {
                assert_eq!(u64::from(chk.needed()), c["k"].as_u64().unwrap());
                assert_eq!(u64::from(chk.total()), c["n"].as_u64().unwrap());
                assert_eq!(chk.size(), c["size"].as_u64().unwrap());
                let rebuilt = ChkReadCap::new(
                    *chk.key(),
                    *chk.ueb_hash(),
                    chk.needed(),
                    chk.total(),
                    chk.size(),
                )
                .unwrap();
                assert_eq!(&rebuilt, chk);
                assert_eq!(rebuilt.storage_index(), chk.verifier().storage_index());
            }
            Cap::Lit(lit) => assert_eq!(lit.size(), c["size"].as_u64().unwrap()),
            other => panic!("unexpected kind {}", other.kind_name()),
        }
        if let Some(vc) = opt_s(&c["verifycap"]) {
            let vcap = Cap::parse(vc).unwrap();
            assert_eq!(vcap.to_string(), vc);
            assert_eq!(vcap.storage_index(), cap.storage_index());
        }
        check_debug_redacts(&cap);
    }
}

// ---------------------------------------------------------------------------------------
// Exact error kinds.

const KEY: &str = "67dxahibc7u7d4gosuekxmivde";
const UEB: &str = "yrndybah7teqiwfft55z25rgc4xlmhoyaoahzypxh4ikvcxjo4iq";
const WK: &str = "tgwbna4ubnc5hdqquvgxxwk2iq";
const FP: &str = "h6t64m3u4cd2ubhrqijacvjewv42qybkbujzm7zjcohdojag55ma";

fn chk(k: &str, n: &str, size: &str) -> String {
    format!("URI:CHK:{KEY}:{UEB}:{k}:{n}:{size}")
}

#[test]
fn errors_are_precise() {
    use CapError::*;
    let cases: Vec<(String, CapError)> = vec![
        (String::new(), UnknownPrefix(String::new())),
        ("URI:".into(), UnknownPrefix("URI:".into())),
        (
            format!("URI:FOO:{KEY}:{UEB}"),
            UnknownPrefix("URI:FOO".into()),
        ),
        (format!("uri:CHK:{KEY}"), UnknownPrefix("uri:CHK".into())),
        (
            format!("URI:CHK{KEY}"),
            UnknownPrefix(format!("URI:CHK{KEY}").chars().take(40).collect()),
        ),
        (
            format!("ro.ro.URI:CHK:{KEY}"),
            UnknownPrefix("ro.ro.URI:CHK".into()),
        ),
        (
            format!("URI:CHK:{KEY}:{UEB}:3:10"),
            WrongFieldCount {
                kind: "URI:CHK",
                expected: 5,
                got: 4,
            },
        ),
        (
            format!("URI:CHK:{KEY}:{UEB}:3:10:5:7"),
            WrongFieldCount {
                kind: "URI:CHK",
                expected: 5,
                got: 6,
            },
        ),
        (
            format!("URI:SSK:{WK}:{FP}:extra"),
            WrongFieldCount {
                kind: "URI:SSK",
                expected: 2,
                got: 3,
            },
        ),
        (
            format!("URI:SSK:{WK}"),
            WrongFieldCount {
                kind: "URI:SSK",
                expected: 2,
                got: 1,
            },
        ),
        (
            format!("URI:DIR2:{WK}"),
            WrongFieldCount {
                kind: "URI:DIR2",
                expected: 2,
                got: 1,
            },
        ),
        (
            format!("URI:MDMF:{WK}"),
            WrongFieldCount {
                kind: "URI:MDMF",
                expected: 2,
                got: 1,
            },
        ),
        (
            format!("URI:CHK-Verifier:{KEY}:{UEB}:3:10"),
            WrongFieldCount {
                kind: "URI:CHK-Verifier",
                expected: 5,
                got: 4,
            },
        ),
        (
            chk("x", "10", "5"),
            BadNumber {
                field: "needed shares",
            },
        ),
        (
            chk("-3", "10", "5"),
            BadNumber {
                field: "needed shares",
            },
        ),
        (
            chk("3", "+10", "5"),
            BadNumber {
                field: "total shares",
            },
        ),
        (chk("3", "10", ""), BadNumber { field: "size" }),
        (
            chk("3", "10", "18446744073709551616"),
            NumberOutOfRange { field: "size" },
        ),
        (
            chk("3", "10", "18446744073709551615\n\n"),
            BadNumber { field: "size" },
        ),
        (
            format!("URI:CHK-Verifier:{KEY}:{UEB}:3:10:junk"),
            BadNumber { field: "size" },
        ),
        (chk("11", "10", "5"), NeededExceedsTotal { k: 11, n: 10 }),
        (chk("0", "10", "5"), ZeroNeededShares),
        (chk("3", "257", "5"), TooManyShares { n: 257 }),
        (chk("300", "1000", "5"), TooManyShares { n: 1000 }),
        (
            format!("ro.URI:SSK:{WK}:{FP}"),
            MustBeReadonly {
                kind: "URI:SSK file writecap",
            },
        ),
        // Checked before the fields, as in Tahoe.
        (
            "ro.URI:DIR2-MDMF:garbage".into(),
            MustBeReadonly {
                kind: "URI:DIR2-MDMF directory writecap",
            },
        ),
        (
            format!("imm.URI:MDMF:{WK}:{FP}"),
            MustBeDeepImmutable {
                kind: "URI:MDMF file writecap",
            },
        ),
        (
            format!("imm.URI:DIR2-RO:{WK}:{FP}"),
            MustBeDeepImmutable {
                kind: "URI:DIR2-RO readcap to a mutable directory",
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Cap::parse(&text), Err(want), "{text:?}");
    }
}

#[test]
fn bad_base32_names_the_field() {
    let bad_fields = [
        (
            format!("URI:CHK:{}:{UEB}:3:10:5", KEY.to_uppercase()),
            "key",
        ),
        (format!("URI:CHK:{}1:{UEB}:3:10:5", &KEY[..25]), "key"),
        (format!("URI:CHK:{}r:{UEB}:3:10:5", &KEY[..25]), "key"), // non-canonical last char
        (format!("URI:CHK:{}:{UEB}:3:10:5", &KEY[..25]), "key"),  // short
        (format!("URI:CHK:{KEY}:{}b:3:10:5", &UEB[..51]), "UEB hash"),
        (
            format!("URI:CHK-Verifier:{}r:{UEB}:3:10:5", &KEY[..25]),
            "storage index",
        ),
        (format!("URI:SSK:{WK}:{FP}x"), "fingerprint"),
        (format!("URI:MDMF:{WK}:{FP}x"), "fingerprint"),
        (format!("URI:SSK-RO:{WK}:{FP}\n\n"), "fingerprint"),
        (format!("URI:MDMF-RO:{}:{FP}", &WK[..20]), "readkey"),
        (
            format!("URI:DIR2-MDMF-Verifier:{}z:{FP}", &WK[..25]),
            "storage index",
        ),
        ("URI:LIT:b".to_string(), "data"),
        ("URI:LIT:ab".to_string(), "data"),
        ("URI:LIT:MFRGG".to_string(), "data"),
        ("URI:LIT:mfrgg===".to_string(), "data"),
        ("URI:DIR2-LIT:b".to_string(), "data"),
    ];
    for (text, want_field) in bad_fields {
        match Cap::parse(&text) {
            Err(CapError::BadBase32 { field, .. }) => assert_eq!(field, want_field, "{text:?}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn size_is_checked_before_decoding() {
    let long = format!("URI:LIT:{}", "a".repeat(MAX_CAP_LEN));
    assert_eq!(
        Cap::parse(&long),
        Err(CapError::TooLong {
            len: long.len(),
            max: MAX_CAP_LEN
        })
    );
    assert!(matches!(
        Cap::parse_bytes(long.as_bytes()),
        Err(CapError::TooLong { .. })
    ));
    // The largest accepted LIT cap.
    let n = (MAX_CAP_LEN - "URI:LIT:".len()) * 5 / 8;
    let biggest = LitCap::new(vec![0x5a; n]).to_string();
    assert!(biggest.len() <= MAX_CAP_LEN);
    assert_eq!(Cap::parse(&biggest).unwrap().to_string(), biggest);
    assert_eq!(Cap::parse_bytes(b"URI:LIT:\xff"), Err(CapError::NotUtf8));
}

#[test]
fn prefixes_and_contexts() {
    let chk = chk("3", "10", "1234567");
    for p in ["ro.", "imm."] {
        let cap = Cap::parse(&format!("{p}{chk}")).unwrap();
        assert_eq!(
            cap.to_string(),
            chk,
            "{p} is dropped when printing, as Tahoe does"
        );
    }
    let ssk = format!("URI:SSK:{WK}:{FP}");
    let ro = Cap::parse(&ssk).unwrap().readonly().unwrap().to_string();
    assert!(Cap::parse(&format!("ro.{ro}")).is_ok());
    assert!(matches!(
        Cap::parse(&format!("imm.{ro}")),
        Err(CapError::MustBeDeepImmutable { .. })
    ));
    let vc = Cap::parse(&ssk).unwrap().verifier().unwrap().to_string();
    assert!(Cap::parse(&format!("imm.{vc}")).is_ok());
    // deep-immutable context (children of immutable directories)
    assert!(Cap::parse_deep_immutable(&chk).is_ok());
    assert!(Cap::parse_deep_immutable(&vc).is_ok());
    assert!(Cap::parse_deep_immutable("URI:LIT:").is_ok());
    assert_eq!(
        Cap::parse_deep_immutable(&ssk),
        Err(CapError::MustBeDeepImmutable {
            kind: "URI:SSK file writecap"
        })
    );
    assert_eq!(
        Cap::parse_deep_immutable(&ro),
        Err(CapError::MustBeDeepImmutable {
            kind: "URI:SSK-RO readcap to a mutable file"
        })
    );
}

#[test]
fn lenient_forms_are_normalized() {
    let mdmf = format!("URI:MDMF:{WK}:{FP}");
    for extra in [":3:131073", ":", ":a:b:c", "\n"] {
        assert_eq!(
            Cap::parse(&format!("{mdmf}{extra}")).unwrap().to_string(),
            mdmf
        );
    }
    // Not after an anchored (SSK) cap...
    assert!(Cap::parse(&format!("URI:SSK:{WK}:{FP}:")).is_err());
    // ...but one trailing newline is fine there (Python `$`).
    assert!(Cap::parse(&format!("URI:SSK:{WK}:{FP}\n")).is_ok());
    let v = format!("URI:CHK-Verifier:{KEY}:{UEB}:3:10:1234567");
    for junk in [":trailing-junk", "junk", "\n\n", "  "] {
        assert_eq!(Cap::parse(&format!("{v}{junk}")).unwrap().to_string(), v);
    }
    assert_eq!(
        Cap::parse(&chk("03", "010", "0001234567"))
            .unwrap()
            .to_string(),
        chk("3", "10", "1234567")
    );
    assert_eq!(Cap::parse("URI:LIT:\n").unwrap().to_string(), "URI:LIT:");
    assert_eq!(
        Cap::parse("URI:DIR2-LIT:").unwrap().to_string(),
        "URI:DIR2-LIT:"
    );
}

#[test]
fn typed_api() {
    let key = [7u8; 16];
    let ueb = [9u8; 32];
    let c = ChkReadCap::new(key, ueb, 3, 10, 1000).unwrap();
    assert_eq!(c.key(), &key);
    assert_eq!(c.ueb_hash(), &ueb);
    assert_eq!((c.needed(), c.total(), c.size()), (3, 10, 1000));
    assert_eq!(
        c.storage_index().0,
        cairn_core::hashutil::storage_index_hash(&key)
    );
    assert_eq!(
        c.to_string(),
        format!(
            "URI:CHK:{}:{}:3:10:1000",
            base32::encode(&key),
            base32::encode(&ueb)
        )
    );
    let v = c.verifier();
    assert_eq!(v.storage_index(), c.storage_index());
    assert_eq!(
        v.to_string(),
        format!(
            "URI:CHK-Verifier:{}:{}:3:10:1000",
            c.storage_index(),
            base32::encode(&ueb)
        )
    );
    assert_eq!(
        ChkReadCap::new(key, ueb, 0, 10, 1),
        Err(CapError::ZeroNeededShares)
    );
    assert_eq!(
        ChkReadCap::new(key, ueb, 4, 3, 1),
        Err(CapError::NeededExceedsTotal { k: 4, n: 3 })
    );
    assert_eq!(
        ChkReadCap::new(key, ueb, 3, 257, 1),
        Err(CapError::TooManyShares { n: 257 })
    );
    assert!(ChkReadCap::new(key, ueb, 256, 256, u64::MAX).is_ok());
    assert!(ChkVerifyCap::new(StorageIndex([1; 16]), ueb, 2, 1, 0).is_err());

    let lit = LitCap::new(b"hello".to_vec());
    assert_eq!(lit.to_string(), "URI:LIT:nbswy3dp");
    assert_eq!(lit.data(), b"hello");
    assert_eq!(LitCap::new(Vec::new()).to_string(), "URI:LIT:");

    let wk = [1u8; 16];
    let fp = [2u8; 32];
    let w = SdmfWriteCap::new(wk, fp);
    assert_eq!(
        w.to_string(),
        "URI:SSK:aeaqcaibaeaqcaibaeaqcaibae:aibaeaqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaiba"
    );
    let rk = cairn_core::hashutil::ssk_readkey_hash(&wk);
    assert_eq!(w.readkey().as_bytes(), &rk);
    assert_eq!(w.readonly().readkey().as_bytes(), &rk);
    assert_eq!(
        w.storage_index().0,
        cairn_core::hashutil::ssk_storage_index_hash(&rk)
    );
    assert_eq!(w.verifier().storage_index(), w.storage_index());
    assert_eq!(w.format(), MutableFormat::Sdmf);
    let m = MdmfWriteCap::new(wk, fp);
    assert_eq!(m.storage_index(), w.storage_index());
    assert!(m.to_string().starts_with("URI:MDMF:"));
    assert_eq!(m.readonly().verifier(), m.verifier());
    assert_eq!(
        MdmfDirWriteCap::new(m.clone()).readonly().verifier(),
        MdmfDirWriteCap::new(m).verifier()
    );

    let si = StorageIndex([0xab; 16]);
    let text = si.to_base32();
    assert_eq!(text.len(), 26);
    assert_eq!(si.to_string(), text);
    assert_eq!(format!("{si:?}"), format!("StorageIndex({text})"));
    assert_eq!(StorageIndex::from_base32(&text), Ok(si));
    assert!(matches!(
        StorageIndex::from_base32("abc"),
        Err(CapError::BadBase32 {
            field: "storage index",
            ..
        })
    ));

    assert_eq!(format!("{:?}", WriteKey::new(wk)), "WriteKey(..)");
    assert_eq!(format!("{:?}", ReadKey::new(wk)), "ReadKey(..)");
    assert_eq!(format!("{:?}", ChkKey::new(wk)), "ChkKey(..)");
    assert!(!format!("{:?}", LitCap::new(b"secret data".to_vec())).contains("secret"));
}

#[test]
fn kind_predicates() {
    let w = Cap::from(SdmfDirWriteCap::new(SdmfWriteCap::new([3; 16], [4; 32])));
    assert!(w.is_directory() && w.is_mutable() && !w.is_readonly() && !w.is_verifier());
    assert_eq!(w.mutable_format(), Some(MutableFormat::Sdmf));
    let v = w.verifier().unwrap();
    assert!(v.is_verifier() && !v.is_mutable() && v.is_readonly());
    assert_eq!(v.verifier().unwrap(), v);
    assert_eq!(v.readonly().unwrap(), v);
    let lit = Cap::from(LitDirCap::new(LitCap::new(vec![])));
    assert_eq!(lit.verifier(), None);
    assert_eq!(lit.storage_index(), None);
    assert_eq!(lit.readonly().unwrap(), lit);
}

#[test]
fn litdir_dump_is_unknown_like_tahoe() {
    // Tahoe 1.20's dump_uri_instance has no LiteralDirectoryURI branch.
    assert_eq!(
        dump_cap(&Cap::parse("URI:DIR2-LIT:").unwrap()),
        "\nunknown cap type\n"
    );
}

// ---------------------------------------------------------------------------------------
// Property tests.

fn arb_chk() -> impl Strategy<Value = ChkReadCap> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 32]>(),
        1u16..=256,
        any::<u16>(),
        any::<u64>(),
    )
        .prop_map(|(key, ueb, n, kr, size)| {
            let k = 1 + kr % n;
            ChkReadCap::new(key, ueb, k, n, size).unwrap()
        })
}

fn arb_cap() -> impl Strategy<Value = Cap> {
    let k16 = any::<[u8; 16]>();
    let fp = any::<[u8; 32]>();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(|d| Cap::Lit(LitCap::new(d))),
        proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|d| Cap::LitDir(LitDirCap::new(LitCap::new(d)))),
        arb_chk().prop_map(Cap::ChkRead),
        arb_chk().prop_map(|c| Cap::ChkVerify(c.verifier())),
        arb_chk().prop_map(|c| Cap::ChkDir(ChkDirCap::new(c))),
        arb_chk().prop_map(|c| Cap::ChkDirVerify(ChkDirCap::new(c).verifier())),
        (k16, fp).prop_map(|(k, f)| Cap::SdmfWrite(SdmfWriteCap::new(k, f))),
        (k16, fp).prop_map(|(k, f)| Cap::SdmfRead(SdmfReadCap::new(k, f))),
        (k16, fp).prop_map(|(k, f)| Cap::SdmfVerify(SdmfVerifyCap::new(StorageIndex(k), f))),
        (k16, fp).prop_map(|(k, f)| Cap::MdmfWrite(MdmfWriteCap::new(k, f))),
        (k16, fp).prop_map(|(k, f)| Cap::MdmfRead(MdmfReadCap::new(k, f))),
        (k16, fp).prop_map(|(k, f)| Cap::MdmfVerify(MdmfVerifyCap::new(StorageIndex(k), f))),
        (k16, fp)
            .prop_map(|(k, f)| Cap::SdmfDirWrite(SdmfDirWriteCap::new(SdmfWriteCap::new(k, f)))),
        (k16, fp).prop_map(|(k, f)| Cap::SdmfDirRead(SdmfDirReadCap::new(SdmfReadCap::new(k, f)))),
        (k16, fp).prop_map(
            |(k, f)| Cap::SdmfDirVerify(SdmfDirVerifyCap::new(SdmfVerifyCap::new(
                StorageIndex(k),
                f
            )))
        ),
        (k16, fp)
            .prop_map(|(k, f)| Cap::MdmfDirWrite(MdmfDirWriteCap::new(MdmfWriteCap::new(k, f)))),
        (k16, fp).prop_map(|(k, f)| Cap::MdmfDirRead(MdmfDirReadCap::new(MdmfReadCap::new(k, f)))),
        (k16, fp).prop_map(
            |(k, f)| Cap::MdmfDirVerify(MdmfDirVerifyCap::new(MdmfVerifyCap::new(
                StorageIndex(k),
                f
            )))
        ),
    ]
}

/// Parsing must be total; whatever parses must print to something that parses back to
/// the same cap (printing is canonical).
fn parse_is_total(text: &str) {
    if let Ok(cap) = Cap::parse(text) {
        let printed = cap.to_string();
        assert_eq!(Cap::parse(&printed).as_ref(), Ok(&cap), "{text:?}");
        let _ = dump_cap(&cap);
    }
    let _ = Cap::parse_deep_immutable(text);
    let _ = Cap::parse_bytes(text.as_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_caps_round_trip(cap in arb_cap()) {
        let text = cap.to_string();
        let parsed = Cap::parse(&text).unwrap();
        prop_assert_eq!(&parsed, &cap);
        prop_assert_eq!(parsed.to_string(), text);
        let ro = cap.readonly().unwrap();
        prop_assert!(ro.is_readonly());
        prop_assert_eq!(ro.storage_index(), cap.storage_index());
        if let Some(v) = cap.verifier() {
            prop_assert!(v.is_verifier());
            prop_assert_eq!(v.storage_index(), cap.storage_index());
            prop_assert_eq!(ro.verifier(), Some(v.clone()));
            prop_assert_eq!(Cap::parse(&v.to_string()).unwrap(), v);
        }
        check_debug_redacts(&cap);
        let _ = dump_cap(&cap);
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        parse_is_total(&text);
    }

    #[test]
    fn cap_like_strings_never_panic(text in "(ro\\.|imm\\.)?URI:[A-Z2-]{0,16}:[a-z2-7:0-9\n]{0,160}") {
        parse_is_total(&text);
    }

    #[test]
    fn mutations_never_panic(
        cap in arb_cap(),
        op in 0u8..5,
        pos in any::<prop::sample::Index>(),
        ch in prop::sample::select(vec!['a', 'z', '2', '7', '8', '1', ':', '0', '9', 'A', '\n', '-', 'é', '=']),
        extra in "[a-z0-9]{0,60}",
    ) {
        let text = cap.to_string();
        let i = pos.index(text.len() + 1);
        let mutated = match op {
            0 => text[..i].to_string(),
            1 if i < text.len() => format!("{}{}{}", &text[..i], ch, &text[i + 1..]),
            2 => format!("{}{}{}", &text[..i], ch, &text[i..]),
            3 => format!("{text}:{extra}"),
            _ => format!("{}{}", &text[..i], &text[(i + 1).min(text.len())..]),
        };
        parse_is_total(&mutated);
    }
}

// ---------------------------------------------------------------------------------------
// Captured by hand from Tahoe-LAFS 1.20.0 (`allmydata.uri` + `tahoe debug dump-cap`).
// "cases": same schema as vectors/caps.json; "dump_cap_with_secrets": dump-cap with
// --nodeid and/or --client-secret (hex here); "lenient": inputs Tahoe accepts, with its
// class and to_string(); "invalid": inputs Tahoe's from_string turns into UnknownURI.
const INLINE_TAHOE: &str = include_str!("../../../vectors/caps_inline.json");

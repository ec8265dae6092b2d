//! Directory bodies, sealed write caps and the metadata's JSON against what Tahoe-LAFS 1.20
//! wrote (`vectors/dirnode.json`, made by `vectors/generate_dirnode.py`).

use cairn_core::dirnode::body::{decrypt_rwcapdata, encrypt_rw_uri};
use cairn_core::dirnode::edit::update_metadata;
use cairn_core::dirnode::pyjson::{self, Value as Json};
use cairn_core::dirnode::{Access, DirBody, Entry};
use cairn_test_support::data::hex;
use cairn_test_support::fixtures::vectors_dir;
use serde_json::Value;

fn vectors() -> Value {
    let path = vectors_dir().join("dirnode.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vectors/dirnode.json")).unwrap()
}

fn list<'a>(v: &'a Value, name: &str) -> &'a Vec<Value> {
    let l = v[name].as_array().unwrap_or_else(|| panic!("no {name}"));
    assert!(!l.is_empty(), "{name} is empty");
    l
}

fn key16(v: &Value) -> [u8; 16] {
    hex(v.as_str().expect("hex")).try_into().expect("16 bytes")
}

#[test]
fn floats_are_written_as_python_writes_them() {
    let v = vectors();
    let cases = list(&v, "json_floats");
    assert!(cases.len() > 2000);
    for c in cases {
        let bits: [u8; 8] = hex(c[0].as_str().unwrap()).try_into().unwrap();
        let f = f64::from_be_bytes(bits);
        let want = c[1].as_str().unwrap();
        assert_eq!(pyjson::dumps(&Json::Float(f)), want, "bits {}", c[0]);
        // and read back to the same double
        match pyjson::loads(want.as_bytes()).unwrap() {
            Json::Float(back) => assert_eq!(back.to_bits(), f.to_bits(), "{want}"),
            other => panic!("{want} read as {other:?}"),
        }
    }
}

#[test]
fn json_texts_are_read_and_written_as_python_does() {
    let v = vectors();
    for c in list(&v, "json_values") {
        let (text, want) = (c[0].as_str().unwrap(), c[1].as_str().unwrap());
        let value = pyjson::loads(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(pyjson::dumps(&value), want, "{text}");
    }
}

#[test]
fn write_caps_are_sealed_as_tahoe_seals_them() {
    let v = vectors();
    for c in list(&v, "rwcaps") {
        let key = key16(&c["writekey_hex"]);
        let cap = c["rw_uri"].as_str().unwrap().as_bytes();
        let sealed = hex(c["sealed_hex"].as_str().unwrap());
        assert_eq!(encrypt_rw_uri(&key, cap), sealed);
        assert_eq!(decrypt_rwcapdata(&key, &sealed), cap);
    }
}

#[test]
fn bodies_are_packed_and_read_as_tahoe_does() {
    let v = vectors();
    for set in list(&v, "bodies") {
        let label = set["label"].as_str().unwrap();
        let writekey = set["writekey_hex"]
            .as_str()
            .map(|_| key16(&set["writekey_hex"]));
        let deep = set["deep_immutable"].as_bool().unwrap();
        let want = hex(set["body_hex"].as_str().unwrap());
        let children = set["children"].as_array().unwrap();

        // Packed from the children Tahoe was given.
        let mut dir = DirBody::new();
        for c in children {
            let meta = match pyjson::loads(c["metadata_json"].as_str().unwrap().as_bytes()) {
                Ok(Json::Object(o)) => o,
                other => panic!("{label}: metadata {other:?}"),
            };
            dir.insert(Entry::new(
                c["name"].as_str().unwrap(),
                c["ro_uri"].as_str().unwrap().as_bytes(),
                c["rw_uri"].as_str().unwrap().as_bytes(),
                meta,
            ));
        }
        assert_eq!(dir.len(), children.len(), "{label}");
        assert_eq!(
            dir.to_bytes(writekey.as_ref(), deep),
            want,
            "{label}: packed body differs from Tahoe's"
        );

        // Read back from Tahoe's bytes, as each kind of reader.
        let access = match (&writekey, deep) {
            (Some(k), _) => Access::Writer(k),
            (None, _) => Access::Immutable,
        };
        let read = DirBody::parse(&want, access).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(read.len(), children.len(), "{label}");
        for c in children {
            let name = c["name"].as_str().unwrap();
            let e = read
                .get(name)
                .unwrap_or_else(|| panic!("{label}: {name:?} missing"));
            let stored_ro = cairn_core::dirnode::body::strip_prefix_for_ro(
                c["ro_uri"].as_str().unwrap().as_bytes(),
                deep,
            );
            assert_eq!(e.ro_uri, stored_ro, "{label}: {name:?} ro_uri");
            assert_eq!(
                e.rw_uri,
                c["rw_uri"].as_str().unwrap().as_bytes(),
                "{label}: {name:?} rw_uri"
            );
            assert_eq!(
                pyjson::dumps(&Json::Object(e.metadata.clone())),
                c["metadata_json"].as_str().unwrap(),
                "{label}: {name:?} metadata"
            );
        }
        // Unchanged, it is written back byte for byte.
        assert_eq!(read.to_bytes(writekey.as_ref(), deep), want, "{label}");
        if writekey.is_some() {
            let ro = DirBody::parse(&want, Access::ReadOnly).unwrap();
            assert!(ro.iter().all(|e| e.rw_uri.is_empty()), "{label}");
        }
    }
}

#[test]
fn link_times_are_set_as_tahoe_sets_them() {
    let v = vectors();
    let obj = |x: &Value| {
        x.as_str()
            .map(|t| match pyjson::loads(t.as_bytes()).unwrap() {
                Json::Object(o) => o,
                other => panic!("{other:?}"),
            })
    };
    for c in list(&v, "metadata_updates") {
        let got = update_metadata(
            obj(&c["old"]),
            obj(&c["new"]).as_ref(),
            c["now"].as_f64().unwrap(),
        );
        assert_eq!(
            pyjson::dumps(&Json::Object(got)),
            c["result"].as_str().unwrap(),
            "old {} new {}",
            c["old"],
            c["new"]
        );
    }
}

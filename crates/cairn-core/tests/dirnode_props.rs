//! Property tests for directory bodies and their metadata JSON: any children pack and read
//! back as they were (names NFC, caps, metadata, write caps only for the writer); unchanged
//! bodies re-pack byte for byte; any JSON value writes as ASCII and reads back equal;
//! arbitrary bytes give an error or a value, never a panic.

use cairn_core::dirnode::pyjson::{self, Object, Value};
use cairn_core::dirnode::{Access, DirBody, Entry};
use proptest::prelude::*;
use unicode_normalization::UnicodeNormalization;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Int(i.to_string())),
        // finite floats: NaN never equals itself (its text round trip is in the unit tests)
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        ".{0,12}".prop_map(Value::Str),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((".{0,6}", inner), 0..5).prop_map(|kv| {
                let mut o = Object::new();
                for (k, v) in kv {
                    o.insert(k, v);
                }
                Value::Object(o)
            }),
        ]
    })
}

fn metadata() -> impl Strategy<Value = Object> {
    json_value().prop_map(|v| {
        let mut o = Object::new();
        o.insert("user", v);
        o
    })
}

/// Names with combining marks and characters beyond the BMP, so NFC matters.
fn name() -> impl Strategy<Value = String> {
    "[a-zé\u{301}\u{4e2d}\u{1f600} ._-]{1,12}"
}

fn cap() -> impl Strategy<Value = Vec<u8>> {
    "(URI:[A-Z0-9-]{3,8}:[a-z2-7]{4,30})?".prop_map(String::into_bytes)
}

fn children() -> impl Strategy<Value = Vec<(String, Vec<u8>, Vec<u8>, Object)>> {
    proptest::collection::vec((name(), cap(), cap(), metadata()), 0..8)
}

proptest! {
    #[test]
    fn json_round_trips(v in json_value()) {
        let text = pyjson::dumps(&v);
        prop_assert!(text.is_ascii());
        prop_assert_eq!(pyjson::loads(text.as_bytes()).unwrap(), v);
    }

    #[test]
    fn mutable_bodies_round_trip(kids in children(), key in any::<[u8; 16]>()) {
        let mut dir = DirBody::new();
        for (n, ro, rw, m) in &kids {
            dir.insert(Entry::new(n, ro, rw, m.clone()));
        }
        let body = dir.to_bytes(Some(&key), false);
        let read = DirBody::parse(&body, Access::Writer(&key)).unwrap();
        prop_assert_eq!(read.len(), dir.len());
        for e in dir.iter() {
            let r = read.get(e.name()).unwrap();
            prop_assert_eq!(&r.ro_uri, &e.ro_uri);
            prop_assert_eq!(&r.rw_uri, &e.rw_uri);
            prop_assert_eq!(&r.metadata, &e.metadata);
            prop_assert!(r.is_unchanged());
        }
        // Unchanged, it re-packs byte for byte; through the read cap no write cap shows.
        prop_assert_eq!(read.to_bytes(Some(&key), false), body.clone());
        let ro = DirBody::parse(&body, Access::ReadOnly).unwrap();
        prop_assert!(ro.iter().all(|e| e.rw_uri.is_empty()));
        // Names are stored NFC, whatever form they were given in.
        for e in read.iter() {
            prop_assert_eq!(e.name(), e.name().nfc().collect::<String>());
        }
    }

    #[test]
    fn immutable_bodies_round_trip(kids in children()) {
        let mut dir = DirBody::new();
        for (n, ro, _, m) in &kids {
            dir.insert(Entry::new(n, ro, b"", m.clone()));
        }
        let body = dir.to_bytes(None, true);
        let read = DirBody::parse(&body, Access::Immutable).unwrap();
        prop_assert_eq!(read.len(), dir.len());
        prop_assert_eq!(read.to_bytes(None, true), body);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = DirBody::parse(&data, Access::Writer(&[1; 16]));
        let _ = DirBody::parse(&data, Access::Immutable);
        let _ = pyjson::loads(&data);
    }
}

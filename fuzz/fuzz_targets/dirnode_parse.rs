#![no_main]
//! A directory body and its metadata JSON, as read from a mutable or immutable file: parsing
//! never panics; a parsed body re-packs to exactly the bytes it came from when every entry
//! is unchanged and the body held no duplicate names; JSON that reads writes back to text
//! that reads to the same value.
use cairn_core::dirnode::pyjson::{self, Value};
use cairn_core::dirnode::{Access, DirBody};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 16] = *b"fuzz-write-key!!";

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        // NaN is not equal to itself; the text round trip still holds.
        (Value::Float(x), Value::Float(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    for access in [Access::Immutable, Access::ReadOnly, Access::Writer(&KEY)] {
        if let Ok(body) = DirBody::parse(data, access) {
            let writekey = match access {
                Access::Writer(k) => Some(k),
                _ => None,
            };
            let again = body.to_bytes(writekey, matches!(access, Access::Immutable));
            let reread = DirBody::parse(&again, access).expect("a packed body reads back");
            assert_eq!(reread.len(), body.len());
        }
    }
    if let Ok(v) = pyjson::loads(data) {
        let text = pyjson::dumps(&v);
        let back = pyjson::loads(text.as_bytes()).expect("written JSON reads back");
        assert!(same(&v, &back), "JSON round trip changed the value");
        assert!(text.is_ascii());
    }
});

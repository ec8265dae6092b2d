//! JSON text as Tahoe writes it: Python's `json.dumps(obj, indent=1) + "\n"` (one space
//! per level, `", "`-free item separators, `": "` after keys, non-ASCII escaped as `\uXXXX`).
//! Key order is the order of the struct's fields, as Python keeps dict insertion order.

use serde::Serialize;

/// `json.dumps(value, indent=1) + "\n"`.
pub fn dumps_indent1<T: Serialize + ?Sized>(value: &T) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Serializing plain data into a Vec cannot fail.
    if value.serialize(&mut ser).is_err() {
        return "null\n".into();
    }
    let text = String::from_utf8(buf).unwrap_or_default();
    let mut out = ensure_ascii(&text);
    out.push('\n');
    out
}

/// Python's `ensure_ascii=True`: every non-ASCII character as `\uXXXX` (UTF-16 surrogate
/// pairs above the BMP). Non-ASCII can only occur inside JSON strings, so this is exact.
pub fn ensure_ascii(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct S {
        b: u32,
        a: Option<String>,
        l: Vec<u8>,
        e: Vec<u8>,
    }

    #[test]
    fn like_python() {
        // python3 -c 'import json; print(json.dumps(["x", {"b": 1, "a": None, "l": [1, 2], "e": []}], indent=1))'
        let v = (
            "x",
            S {
                b: 1,
                a: None,
                l: vec![1, 2],
                e: vec![],
            },
        );
        assert_eq!(
            dumps_indent1(&v),
            "[\n \"x\",\n {\n  \"b\": 1,\n  \"a\": null,\n  \"l\": [\n   1,\n   2\n  ],\n  \"e\": []\n }\n]\n"
        );
        // python3 -c 'import json; print(json.dumps("é😀"))'
        assert_eq!(dumps_indent1("é😀"), "\"\\u00e9\\ud83d\\ude00\"\n");
    }
}

//! JSON exactly as Python's `json` module reads (`json.loads`) and writes (`json.dumps`
//! with its defaults) it, for directory entries' metadata.
//!
//! Tahoe stores each child's metadata as `json.dumps(metadata)`, and the cap of an
//! immutable directory is the hash of its body, so the same children only give Tahoe's cap
//! if their metadata is written byte for byte as Python writes it:
//! - `", "` and `": "` as separators, no other whitespace;
//! - object keys in insertion order (a Python dict's), a repeated key keeping its first
//!   position and its last value;
//! - `ensure_ascii`: everything outside `' '..='~'` escaped, `\uXXXX` in lower-case hex,
//!   characters beyond the BMP as a surrogate pair;
//! - integers of any size, as written (Python's ints have no limit), so they are kept as
//!   their decimal text;
//! - floats as Python's `repr` (the shortest digits that read back, in positional notation
//!   for decimal exponents -4 to 15, else `1e+16` / `1.5e-05`), and `NaN`, `Infinity`,
//!   `-Infinity`, which Python also reads.
//!
//! Differences, on purpose: strings with a lone surrogate escape (Python keeps them in a
//! `str`; they cannot be UTF-8) and nesting deeper than [`MAX_DEPTH`] are refused.

use core::fmt::Write;

/// The deepest nesting of arrays and objects accepted (Tahoe's own metadata is 2 deep).
pub const MAX_DEPTH: usize = 64;

/// A JSON value as Python holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// An integer, as its canonical decimal text (`-0` reads as `0`, as in Python).
    Int(String),
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    Object(Object),
}

/// A JSON object with a Python dict's behaviour: unique keys in first-insertion order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Object(Vec<(String, Value)>);

impl Object {
    pub fn new() -> Self {
        Object(Vec::new())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Set `key` to `value`: in place if the key is there (as `dict[key] = value`), else
    /// at the end.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.get_mut(&key) {
            Some(v) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a text is not JSON that cairn reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("not JSON: {what} at byte {at}")]
    Syntax { at: usize, what: &'static str },
    #[error("JSON nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Read `text` as `json.loads` does.
pub fn loads(text: &[u8]) -> Result<Value, JsonError> {
    let mut p = Parser { s: text, at: 0 };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.at != text.len() {
        return Err(p.err("extra data"));
    }
    Ok(v)
}

/// Write `v` as `json.dumps(v)` does.
pub fn dumps(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(digits) => out.push_str(digits),
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, item)) in o.0.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// A string as `json.dumps` writes it with `ensure_ascii=True`.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// A float as Python's `repr` (and so `json.dumps`) writes it.
fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    // Python's repr is David Gay's shortest round-trip digits with ties broken to even;
    // Ryu picks the same digits (Rust's own `{:e}` breaks such ties upwards: 2127895781720481.25
    // is "…481.2" in Python, "…481.3" in Rust). Only the layout differs, so take the digits
    // and the decimal point's place from Ryu's text and lay them out as Python does.
    let mut buf = ryu::Buffer::new();
    let (digits, point) = digits_and_point(buf.format_finite(f.abs()));
    if f.is_sign_negative() {
        out.push('-');
    }
    let n = digits.len() as i32;
    if (-3..=16).contains(&point) {
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else if point < n {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        } else {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (point - n) as usize));
            out.push_str(".0");
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = point - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

/// The significant digits of a non-negative decimal text (`123.45`, `1e16`, `1.5e-5`,
/// `0.0001`) and the place of the decimal point: the value is `0.DIGITS x 10^point`.
/// Zero is `("0", 1)`.
fn digits_and_point(text: &str) -> (String, i32) {
    let (mantissa, exp) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = int.chars().chain(frac.chars()).collect();
    let mut point = int.len() as i32 + exp;
    let lead = all.len() - all.trim_start_matches('0').len();
    point -= lead as i32;
    let digits = all[lead..].trim_end_matches('0');
    if digits.is_empty() {
        return ("0".to_owned(), 1);
    }
    (digits.to_owned(), point)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> JsonError {
        JsonError::Syntax { at: self.at, what }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, word: &[u8]) -> bool {
        if self.s[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => {
                if self.eat(b"-Infinity") {
                    Ok(Value::Float(f64::NEG_INFINITY))
                } else {
                    self.number()
                }
            }
            _ if self.eat(b"null") => Ok(Value::Null),
            _ if self.eat(b"true") => Ok(Value::Bool(true)),
            _ if self.eat(b"false") => Ok(Value::Bool(false)),
            _ if self.eat(b"NaN") => Ok(Value::Float(f64::NAN)),
            _ if self.eat(b"Infinity") => Ok(Value::Float(f64::INFINITY)),
            _ => Err(self.err("expected a value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.at += 1; // '{'
        let mut o = Object::new();
        self.ws();
        if self.eat(b"}") {
            return Ok(Value::Object(o));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let key = self.string()?;
            self.ws();
            if !self.eat(b":") {
                return Err(self.err("expected ':'"));
            }
            self.ws();
            let v = self.value(depth)?;
            o.insert(key, v);
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"}") {
                return Ok(Value::Object(o));
            }
            return Err(self.err("expected ',' or '}'"));
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.at += 1; // '['
        let mut items = Vec::new();
        self.ws();
        if self.eat(b"]") {
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            if self.eat(b",") {
                continue;
            }
            if self.eat(b"]") {
                return Ok(Value::Array(items));
            }
            return Err(self.err("expected ',' or ']'"));
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`: an int without the last two
    /// parts, else a float.
    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while let Some(b'0'..=b'9') = p.peek() {
                p.at += 1;
            }
            p.at - from
        };
        self.eat(b"-");
        let int_start = self.at;
        let n = digits(self);
        if n == 0 {
            return Err(self.err("expected a digit"));
        }
        if n > 1 && self.s[int_start] == b'0' {
            // Python reads "012" as 0 followed by extra data.
            return Err(JsonError::Syntax {
                at: int_start + 1,
                what: "extra data",
            });
        }
        let mut float = false;
        let before_frac = self.at;
        if self.eat(b".") {
            if digits(self) == 0 {
                self.at = before_frac; // "1." is the int 1 and then extra data
            } else {
                float = true;
            }
        }
        let before_exp = self.at;
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if digits(self) == 0 {
                self.at = before_exp;
            } else {
                float = true;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.at]).map_err(|_| JsonError::Syntax {
            at: start,
            what: "bad number",
        })?;
        if float {
            let f: f64 = text.parse().map_err(|_| JsonError::Syntax {
                at: start,
                what: "bad number",
            })?;
            Ok(Value::Float(f))
        } else if text == "-0" {
            Ok(Value::Int("0".into()))
        } else {
            Ok(Value::Int(text.to_owned()))
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.at += 1; // '"'
        let mut out = String::new();
        loop {
            let start = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            let run =
                std::str::from_utf8(&self.s[start..self.at]).map_err(|e| JsonError::Syntax {
                    at: start + e.valid_up_to(),
                    what: "invalid UTF-8",
                })?;
            out.push_str(run);
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.err("unterminated string"));
                    };
                    self.at += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in a string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    /// After `\u`: four hex digits, and a second escape if they are a high surrogate.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&hi) {
            if !self.eat(b"\\u") {
                return Err(self.err("lone surrogate"));
            }
            let lo = self.hex4()?;
            if !(0xdc00..0xe000).contains(&lo) {
                return Err(self.err("lone surrogate"));
            }
            0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.err("lone surrogate"))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self
            .s
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.err("short \\u escape"))?;
        let text = std::str::from_utf8(h).map_err(|_| self.err("bad \\u escape"))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err("bad \\u escape"));
        }
        let v = u32::from_str_radix(text, 16).map_err(|_| self.err("bad \\u escape"))?;
        self.at += 4;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(f: f64) -> String {
        dumps(&Value::Float(f))
    }

    #[test]
    fn floats_as_python_repr() {
        // Each right-hand side is what CPython 3.11 prints for repr(x).
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (123456789012345.0, "123456789012345.0"),
            (1234567890123456.0, "1234567890123456.0"),
            (1e16, "1e+16"),
            (1.2345678901234567e16, "1.2345678901234568e+16"),
            (1733600000.123456, "1733600000.123456"),
            // A tie between two shortest strings: Python rounds to even.
            (f64::from_bits(0x431e_3d3d_60c1_0685), "2127895781720481.2"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ];
        for (f, want) in cases {
            assert_eq!(float(f), want, "repr of {f:e}");
        }
    }

    #[test]
    fn strings_as_ensure_ascii() {
        let s = Value::Str("a\"b\\c\n\t\u{7f}é😀/\u{1}".into());
        assert_eq!(dumps(&s), r#""a\"b\\c\n\t\u007f\u00e9\ud83d\ude00/\u0001""#);
        assert_eq!(loads(dumps(&s).as_bytes()).unwrap(), s);
    }

    #[test]
    fn objects_keep_order_and_python_separators() {
        let text = br#"{"z": 1, "a": [true, false, null], "m": {"x": 1.5}, "z": 2}"#;
        let v = loads(text).unwrap();
        // A repeated key keeps its first place and its last value, as a dict does.
        assert_eq!(
            dumps(&v),
            r#"{"z": 2, "a": [true, false, null], "m": {"x": 1.5}}"#
        );
        assert_eq!(dumps(&loads(b" { } ").unwrap()), "{}");
        assert_eq!(dumps(&loads(b"[ ]").unwrap()), "[]");
    }

    #[test]
    fn integers_of_any_size_are_kept() {
        let text = b"[123456789012345678901234567890, -0, -7, 0]";
        assert_eq!(
            dumps(&loads(text).unwrap()),
            "[123456789012345678901234567890, 0, -7, 0]"
        );
        assert_eq!(dumps(&loads(b"1E3").unwrap()), "1000.0");
        assert_eq!(dumps(&loads(b"-Infinity").unwrap()), "-Infinity");
    }

    #[test]
    fn refuses_what_python_refuses() {
        for bad in [
            &b"012"[..],
            b"1.",
            b"[1,]",
            b"{\"a\" 1}",
            b"\"a\x01\"",
            b"'a'",
            b"\"\\x\"",
            b"[1] x",
            b"",
            b"\"\\ud800\"",
            b"\"\\udc00\"",
            b"\"\xff\"",
        ] {
            assert!(loads(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn depth_is_limited() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(loads(deep.as_bytes()), Err(JsonError::TooDeep));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(loads(ok.as_bytes()).is_ok());
    }
}

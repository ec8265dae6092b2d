//! A strict, bounded CBOR (RFC 8949) reader and a small writer for the values GBS uses.

use super::{bad, GbsError, MAX_CBOR_DEPTH};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Uint(u64),
    /// -1 - n
    Nint(u64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Tag(u64, Box<Value>),
    Bool(bool),
    Null,
    Undefined,
    Float(f64),
    Simple(u8),
}

impl Value {
    pub fn text(s: &str) -> Value {
        Value::Text(s.to_string())
    }
    pub fn bytes(b: &[u8]) -> Value {
        Value::Bytes(b.to_vec())
    }
}

/// Decode exactly one data item filling `input`. Every declared length is checked against
/// the remaining input before anything is allocated, so memory stays O(input).
pub fn decode(input: &[u8]) -> Result<Value, GbsError> {
    let mut r = Reader { buf: input, pos: 0 };
    let v = r.item(0)?;
    if r.pos != input.len() {
        return Err(bad("CBOR: trailing bytes after the data item"));
    }
    Ok(v)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Head {
    Arg(u64),
    Indefinite,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, GbsError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| bad("CBOR: truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], GbsError> {
        if n > self.remaining() as u64 {
            return Err(bad("CBOR: length exceeds the body"));
        }
        let n = n as usize;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn head(&mut self, info: u8) -> Result<Head, GbsError> {
        Ok(match info {
            0..=23 => Head::Arg(info as u64),
            24 => Head::Arg(self.byte()? as u64),
            25 => Head::Arg(u16::from_be_bytes(self.take(2)?.try_into().unwrap_or([0; 2])) as u64),
            26 => Head::Arg(u32::from_be_bytes(self.take(4)?.try_into().unwrap_or([0; 4])) as u64),
            27 => Head::Arg(u64::from_be_bytes(
                self.take(8)?.try_into().unwrap_or([0; 8]),
            )),
            31 => Head::Indefinite,
            _ => return Err(bad("CBOR: reserved additional information")),
        })
    }

    fn is_break(&mut self) -> bool {
        if self.buf.get(self.pos) == Some(&0xff) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn item(&mut self, depth: usize) -> Result<Value, GbsError> {
        if depth > MAX_CBOR_DEPTH {
            return Err(bad("CBOR: nested too deeply"));
        }
        let ib = self.byte()?;
        let major = ib >> 5;
        let info = ib & 0x1f;
        match major {
            0 | 1 => match self.head(info)? {
                Head::Arg(n) => Ok(if major == 0 {
                    Value::Uint(n)
                } else {
                    Value::Nint(n)
                }),
                Head::Indefinite => Err(bad("CBOR: indefinite integer")),
            },
            2 | 3 => {
                let bytes = match self.head(info)? {
                    Head::Arg(n) => self.take(n)?.to_vec(),
                    Head::Indefinite => {
                        let mut out = Vec::new();
                        loop {
                            if self.is_break() {
                                break;
                            }
                            let cb = self.byte()?;
                            if cb >> 5 != major {
                                return Err(bad("CBOR: bad chunk in indefinite string"));
                            }
                            match self.head(cb & 0x1f)? {
                                Head::Arg(n) => out.extend_from_slice(self.take(n)?),
                                Head::Indefinite => {
                                    return Err(bad("CBOR: nested indefinite string"))
                                }
                            }
                        }
                        out
                    }
                };
                if major == 2 {
                    Ok(Value::Bytes(bytes))
                } else {
                    String::from_utf8(bytes)
                        .map(Value::Text)
                        .map_err(|_| bad("CBOR: text is not UTF-8"))
                }
            }
            4 => match self.head(info)? {
                Head::Arg(n) => {
                    // Each item takes at least one byte.
                    if n > self.remaining() as u64 {
                        return Err(bad("CBOR: array length exceeds the body"));
                    }
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(self.item(depth + 1)?);
                    }
                    Ok(Value::Array(items))
                }
                Head::Indefinite => {
                    let mut items = Vec::new();
                    while !self.is_break() {
                        items.push(self.item(depth + 1)?);
                    }
                    Ok(Value::Array(items))
                }
            },
            5 => match self.head(info)? {
                Head::Arg(n) => {
                    if n.saturating_mul(2) > self.remaining() as u64 {
                        return Err(bad("CBOR: map length exceeds the body"));
                    }
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        let k = self.item(depth + 1)?;
                        let v = self.item(depth + 1)?;
                        items.push((k, v));
                    }
                    Ok(Value::Map(items))
                }
                Head::Indefinite => {
                    let mut items = Vec::new();
                    while !self.is_break() {
                        let k = self.item(depth + 1)?;
                        let v = self.item(depth + 1)?;
                        items.push((k, v));
                    }
                    Ok(Value::Map(items))
                }
            },
            6 => match self.head(info)? {
                Head::Arg(tag) => Ok(Value::Tag(tag, Box::new(self.item(depth + 1)?))),
                Head::Indefinite => Err(bad("CBOR: indefinite tag")),
            },
            _ => match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                23 => Ok(Value::Undefined),
                0..=19 => Ok(Value::Simple(info)),
                24 => {
                    let s = self.byte()?;
                    if s < 32 {
                        return Err(bad("CBOR: non-canonical simple value"));
                    }
                    Ok(Value::Simple(s))
                }
                25 => {
                    let h = u16::from_be_bytes(self.take(2)?.try_into().unwrap_or([0; 2]));
                    Ok(Value::Float(half_to_f64(h)))
                }
                26 => {
                    let f = f32::from_be_bytes(self.take(4)?.try_into().unwrap_or([0; 4]));
                    Ok(Value::Float(f as f64))
                }
                27 => {
                    let f = f64::from_be_bytes(self.take(8)?.try_into().unwrap_or([0; 8]));
                    Ok(Value::Float(f))
                }
                _ => Err(bad("CBOR: unexpected break or reserved value")),
            },
        }
    }
}

fn half_to_f64(h: u16) -> f64 {
    let exp = (h >> 10) & 0x1f;
    let mant = (h & 0x3ff) as f64;
    let v = match exp {
        0 => mant * 2f64.powi(-24),
        31 => {
            if mant == 0.0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        }
        e => (mant + 1024.0) * 2f64.powi(e as i32 - 25),
    };
    if h & 0x8000 != 0 {
        -v
    } else {
        v
    }
}

/// Encode a value (definite lengths, shortest heads).
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, v);
    out
}

fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u8::MAX as u64 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn write(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Uint(n) => write_head(out, 0, *n),
        Value::Nint(n) => write_head(out, 1, *n),
        Value::Bytes(b) => {
            write_head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Text(t) => {
            write_head(out, 3, t.len() as u64);
            out.extend_from_slice(t.as_bytes());
        }
        Value::Array(a) => {
            write_head(out, 4, a.len() as u64);
            for i in a {
                write(out, i);
            }
        }
        Value::Map(m) => {
            write_head(out, 5, m.len() as u64);
            for (k, v) in m {
                write(out, k);
                write(out, v);
            }
        }
        Value::Tag(t, inner) => {
            write_head(out, 6, *t);
            write(out, inner);
        }
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Null => out.push(0xf6),
        Value::Undefined => out.push(0xf7),
        Value::Simple(s) => {
            if *s < 24 {
                out.push(0xe0 | s);
            } else {
                out.extend_from_slice(&[0xf8, *s]);
            }
        }
        Value::Float(f) => {
            out.push(0xfb);
            out.extend_from_slice(&f.to_be_bytes());
        }
    }
}

//! The URI extension block (`uri.py::pack_extension/unpack_extension`), its hash, and the
//! consistency checks of `checker.py::ValidatedExtendedURIProxy`.
//!
//! Wire form: for each key in sorted order, `key ":" netstring(value)`; integers are ASCII
//! decimal. Tahoe 1.20 writes exactly eleven keys (see [`Ueb`]).

use thiserror::Error;

use crate::hashutil::{uri_extension_hash, Hash, HASH_LEN};

use super::params::{ChkGeometry, MAX_UEB_LEN};
use super::ChkError;

/// Why UEB bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UebError {
    #[error("UEB is {0} bytes; readers refuse {MAX_UEB_LEN} or more")]
    TooLong(usize),
    #[error("malformed UEB at byte {at}: {what}")]
    Syntax { at: usize, what: &'static str },
    #[error("UEB key {0:?} appears twice")]
    DuplicateKey(String),
    #[error("UEB lacks required key {0}")]
    MissingKey(&'static str),
    #[error("UEB field {key} has a bad value: {what}")]
    BadValue { key: &'static str, what: String },
    #[error("unsupported erasure codec {0:?}")]
    UnsupportedCodec(String),
    #[error("UEB inconsistent with the cap: {0}")]
    Inconsistent(String),
}

/// `"<segsize>-<k>-<N>"` (`codec.py::CRSEncoder.get_serialized_params`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CodecParams {
    pub segment_size: u64,
    pub needed: u16,
    pub total: u16,
}

impl CodecParams {
    fn render(&self) -> String {
        format!("{}-{}-{}", self.segment_size, self.needed, self.total)
    }
}

/// A parsed URI extension block. Fields other than `segment_size`, `crypttext_root_hash`
/// and `share_root_hash` are optional for readers (as in Tahoe); [`Ueb::for_file`] fills
/// them all. Unknown keys are ignored (deprecated `plaintext_hash`, `plaintext_root_hash`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ueb {
    pub codec_name: Option<Vec<u8>>,
    pub codec_params: Option<CodecParams>,
    pub tail_codec_params: Option<CodecParams>,
    pub size: Option<u64>,
    pub segment_size: u64,
    pub num_segments: Option<u64>,
    pub needed_shares: Option<u16>,
    pub total_shares: Option<u16>,
    pub crypttext_hash: Option<Hash>,
    pub crypttext_root_hash: Hash,
    pub share_root_hash: Hash,
}

impl Ueb {
    /// The UEB Tahoe 1.20 writes for a file of this geometry.
    pub fn for_file(
        g: &ChkGeometry,
        crypttext_hash: Hash,
        crypttext_root_hash: Hash,
        share_root_hash: Hash,
    ) -> Ueb {
        Ueb {
            codec_name: Some(b"crs".to_vec()),
            codec_params: Some(CodecParams {
                segment_size: g.segment_size,
                needed: g.needed,
                total: g.total,
            }),
            tail_codec_params: Some(CodecParams {
                segment_size: g.padded_tail_size,
                needed: g.needed,
                total: g.total,
            }),
            size: Some(g.file_size),
            segment_size: g.segment_size,
            num_segments: Some(g.num_segments),
            needed_shares: Some(g.needed),
            total_shares: Some(g.total),
            crypttext_hash: Some(crypttext_hash),
            crypttext_root_hash,
            share_root_hash,
        }
    }

    /// Length of the UEB 1.20 writes for these values (hashes do not change it).
    pub fn written_len(needed: u16, total: u16, segment_size: u64, file_size: u64) -> usize {
        let k = needed as u64;
        let tail = match file_size % segment_size {
            0 => segment_size,
            t => t,
        };
        let padded = tail.div_ceil(k) * k;
        let g = ChkGeometry {
            needed,
            total,
            file_size,
            segment_size,
            num_segments: file_size.div_ceil(segment_size),
            tail_size: tail,
            padded_tail_size: padded,
            block_size: 0,
            tail_block_size: 0,
            share_size: 0,
            segment_tree_nodes: 0,
            share_hash_count: 0,
            ueb_len: 0,
        };
        Ueb::for_file(&g, [0; 32], [0; 32], [0; 32])
            .to_bytes()
            .len()
    }

    /// `pack_extension`: sorted keys, `key:netstring(value)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(320);
        let mut put = |key: &str, value: &[u8]| {
            out.extend_from_slice(key.as_bytes());
            out.push(b':');
            crate::netstring::write(&mut out, value);
        };
        // keys in sorted order
        if let Some(v) = &self.codec_name {
            put("codec_name", v);
        }
        if let Some(p) = &self.codec_params {
            put("codec_params", p.render().as_bytes());
        }
        if let Some(h) = &self.crypttext_hash {
            put("crypttext_hash", h);
        }
        put("crypttext_root_hash", &self.crypttext_root_hash);
        if let Some(v) = self.needed_shares {
            put("needed_shares", v.to_string().as_bytes());
        }
        if let Some(v) = self.num_segments {
            put("num_segments", v.to_string().as_bytes());
        }
        put("segment_size", self.segment_size.to_string().as_bytes());
        put("share_root_hash", &self.share_root_hash);
        if let Some(v) = self.size {
            put("size", v.to_string().as_bytes());
        }
        if let Some(p) = &self.tail_codec_params {
            put("tail_codec_params", p.render().as_bytes());
        }
        if let Some(v) = self.total_shares {
            put("total_shares", v.to_string().as_bytes());
        }
        out
    }

    /// `uri_extension_hash(to_bytes())`.
    pub fn hash(&self) -> Hash {
        uri_extension_hash(&self.to_bytes())
    }

    /// Strict, allocation-bounded `unpack_extension`. Refuses: length >= 2000, keys not
    /// matching `[A-Za-z_-]+`, duplicate keys, non-decimal or overlong numbers, hashes that
    /// are not 32 bytes, and missing `segment_size` / `crypttext_root_hash` / `share_root_hash`.
    /// Unknown keys are skipped. Does not check consistency with a cap: see [`Ueb::validate`].
    pub fn parse(data: &[u8]) -> Result<Ueb, UebError> {
        if data.len() >= MAX_UEB_LEN {
            return Err(UebError::TooLong(data.len()));
        }
        let mut u = Ueb::default();
        let (mut have_seg, mut have_ctr, mut have_srh) = (false, false, false);
        let mut seen: Vec<&[u8]> = Vec::new();
        let mut pos = 0usize;
        while pos < data.len() {
            let key_end = find(data, pos, b':').ok_or(UebError::Syntax {
                at: pos,
                what: "key without ':'",
            })?;
            let key = &data[pos..key_end];
            if key.is_empty()
                || !key
                    .iter()
                    .all(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'-')
            {
                return Err(UebError::Syntax {
                    at: pos,
                    what: "bad key",
                });
            }
            if seen.contains(&key) {
                return Err(UebError::DuplicateKey(
                    String::from_utf8_lossy(key).into_owned(),
                ));
            }
            seen.push(key);
            let len_start = key_end + 1;
            let len_end = find(data, len_start, b':').ok_or(UebError::Syntax {
                at: len_start,
                what: "length without ':'",
            })?;
            let len = parse_dec(&data[len_start..len_end]).ok_or(UebError::Syntax {
                at: len_start,
                what: "bad netstring length",
            })?;
            let v_start = len_end + 1;
            let v_end = usize::try_from(len)
                .ok()
                .and_then(|l| v_start.checked_add(l))
                .filter(|&e| e < data.len())
                .ok_or(UebError::Syntax {
                    at: len_start,
                    what: "netstring runs past the end",
                })?;
            if data[v_end] != b',' {
                return Err(UebError::Syntax {
                    at: v_end,
                    what: "netstring not terminated by ','",
                });
            }
            let value = &data[v_start..v_end];
            pos = v_end + 1;
            match key {
                b"codec_name" => u.codec_name = Some(value.to_vec()),
                b"codec_params" => {
                    u.codec_params = Some(parse_codec_params("codec_params", value)?)
                }
                b"tail_codec_params" => {
                    u.tail_codec_params = Some(parse_codec_params("tail_codec_params", value)?)
                }
                b"size" => u.size = Some(num("size", value)?),
                b"segment_size" => {
                    u.segment_size = num("segment_size", value)?;
                    have_seg = true;
                }
                b"num_segments" => u.num_segments = Some(num("num_segments", value)?),
                b"needed_shares" => u.needed_shares = Some(small("needed_shares", value)?),
                b"total_shares" => u.total_shares = Some(small("total_shares", value)?),
                b"crypttext_hash" => u.crypttext_hash = Some(hash("crypttext_hash", value)?),
                b"crypttext_root_hash" => {
                    u.crypttext_root_hash = hash("crypttext_root_hash", value)?;
                    have_ctr = true;
                }
                b"share_root_hash" => {
                    u.share_root_hash = hash("share_root_hash", value)?;
                    have_srh = true;
                }
                _ => {} // unknown or deprecated (plaintext_hash, plaintext_root_hash): ignored
            }
        }
        if !have_seg {
            return Err(UebError::MissingKey("segment_size"));
        }
        if !have_ctr {
            return Err(UebError::MissingKey("crypttext_root_hash"));
        }
        if !have_srh {
            return Err(UebError::MissingKey("share_root_hash"));
        }
        Ok(u)
    }

    /// `ValidatedExtendedURIProxy._parse_and_validate`: every present field must agree with
    /// the cap's `k`, `N` and size; also requires `segment_size` to be a positive multiple of
    /// `k` (the downloader asserts this). Returns the file geometry.
    pub fn validate(&self, needed: u16, total: u16, size: u64) -> Result<ChkGeometry, UebError> {
        let incons = |s: String| Err(UebError::Inconsistent(s));
        let g = ChkGeometry::from_parts(needed, total, self.segment_size, size).map_err(
            |e| match e {
                ChkError::BadParams(s) => UebError::Inconsistent(s),
                other => UebError::Inconsistent(other.to_string()),
            },
        )?;
        if let Some(name) = &self.codec_name {
            if name != b"crs" {
                return Err(UebError::UnsupportedCodec(
                    String::from_utf8_lossy(name).into_owned(),
                ));
            }
        }
        if let Some(p) = self.codec_params {
            if p != (CodecParams {
                segment_size: g.segment_size,
                needed,
                total,
            }) {
                return incons(format!(
                    "codec_params {} vs segment_size {} k={needed} N={total}",
                    p.render(),
                    g.segment_size
                ));
            }
        }
        if let Some(p) = self.tail_codec_params {
            if p != (CodecParams {
                segment_size: g.padded_tail_size,
                needed,
                total,
            }) {
                return incons(format!(
                    "tail_codec_params {} vs padded tail {}",
                    p.render(),
                    g.padded_tail_size
                ));
            }
        }
        if let Some(n) = self.num_segments {
            if n != g.num_segments {
                return incons(format!("num_segments {n} vs computed {}", g.num_segments));
            }
        }
        if let Some(s) = self.size {
            if s != size {
                return incons(format!("size {s} vs cap size {size}"));
            }
        }
        if let Some(k) = self.needed_shares {
            if k != needed {
                return incons(format!("needed_shares {k} vs cap {needed}"));
            }
        }
        if let Some(n) = self.total_shares {
            if n != total {
                return incons(format!("total_shares {n} vs cap {total}"));
            }
        }
        Ok(g)
    }
}

fn find(data: &[u8], from: usize, b: u8) -> Option<usize> {
    data[from..].iter().position(|&x| x == b).map(|p| p + from)
}

/// ASCII decimal, 1..=20 digits, fits u64.
fn parse_dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add((d - b'0') as u64)
    })
}

fn num(key: &'static str, v: &[u8]) -> Result<u64, UebError> {
    parse_dec(v).ok_or_else(|| UebError::BadValue {
        key,
        what: format!("{:?} is not a decimal u64", String::from_utf8_lossy(v)),
    })
}

fn small(key: &'static str, v: &[u8]) -> Result<u16, UebError> {
    let n = num(key, v)?;
    if n == 0 || n > 256 {
        return Err(UebError::BadValue {
            key,
            what: format!("{n} not in 1..=256"),
        });
    }
    Ok(n as u16)
}

fn hash(key: &'static str, v: &[u8]) -> Result<Hash, UebError> {
    v.try_into().map_err(|_| UebError::BadValue {
        key,
        what: format!("{} bytes, want {HASH_LEN}", v.len()),
    })
}

fn parse_codec_params(key: &'static str, v: &[u8]) -> Result<CodecParams, UebError> {
    let mut it = v.split(|&b| b == b'-');
    let bad = || UebError::BadValue {
        key,
        what: format!("{:?} is not <segsize>-<k>-<N>", String::from_utf8_lossy(v)),
    };
    let (a, b, c) = (
        it.next().ok_or_else(bad)?,
        it.next().ok_or_else(bad)?,
        it.next().ok_or_else(bad)?,
    );
    if it.next().is_some() {
        return Err(bad());
    }
    Ok(CodecParams {
        segment_size: parse_dec(a).ok_or_else(bad)?,
        needed: small(key, b)?,
        total: small(key, c)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chk::params::EncodingParams;

    #[test]
    fn example_from_compat_map() {
        let g = ChkGeometry::new(&EncodingParams::default(), 56).unwrap();
        let u = Ueb::for_file(&g, [1; 32], [2; 32], [3; 32]);
        let b = u.to_bytes();
        assert_eq!(b.len(), 308);
        assert!(b.starts_with(b"codec_name:3:crs,codec_params:7:57-3-10,crypttext_hash:32:"));
        assert!(b.ends_with(b"size:2:56,tail_codec_params:7:57-3-10,total_shares:2:10,"));
        assert_eq!(Ueb::parse(&b).unwrap(), u);
        assert_eq!(u.validate(3, 10, 56).unwrap(), g);
        assert!(u.validate(3, 10, 57).is_err());
        assert!(u.validate(4, 10, 56).is_err());
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            &b"x"[..],
            b"a:1:x",
            b"a:1:xx",
            b"a:99999999999999999999999:x,",
            b":1:x,",
            b"a b:1:x,",
            b"a:-1:x,",
        ] {
            assert!(Ueb::parse(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(Ueb::parse(b""), Err(UebError::MissingKey(_))));
        assert!(matches!(
            Ueb::parse(&[b'a'; 2000]),
            Err(UebError::TooLong(_))
        ));
    }
}

//! The messages of Tahoe's HTTP storage protocol ("Great Black Swamp", GBS) v1, pure.
//!
//! Participants: a storage client (Tahoe's `http_client.py`, later cairn's grid client) and a
//! storage server (Tahoe's `http_server.py`, cairn's `cairn-storage`). This module parses and
//! builds every piece of a request or response that is not I/O:
//!
//! - the path segments (storage index, share number),
//! - the `Authorization: Tahoe-LAFS <b64 swissnum>` header and the
//!   `X-Tahoe-Authorization: <kind> <b64 value>` secrets, with the exact-set rule,
//! - `Range` / `Content-Range` headers as werkzeug parses them,
//! - `Content-Type` / `Accept` negotiation,
//! - the CBOR bodies of every endpoint, both directions, with the limits of Tahoe's CDDL schemas.
//!
//! Untrusted bytes are parsed once into typed values; the CBOR reader checks every declared
//! length against the bytes that remain before allocating, limits nesting, and never panics
//! (`fuzz/fuzz_targets/gbs_request_parse.rs`). See `docs/formats/http-storage-protocol.md`.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

/// Path prefix of every endpoint.
pub const API_PREFIX: &str = "/storage/v1";
/// MIME type of every structured body.
pub const CBOR_MIME_TYPE: &str = "application/cbor";
/// The key of the version response's inner map.
pub const V1_IDENTIFIER: &[u8] = b"http://allmydata.org/tahoe/protocols/storage/v1";
/// CBOR tag Tahoe uses for sets (IANA "finite set").
pub const TAG_SET: u64 = 258;

/// Body limits of Tahoe's server (`read_encoded(max_size=...)`).
pub const MAX_ALLOCATE_BODY: usize = 8192;
pub const MAX_CORRUPT_BODY: usize = 32768;
/// Tahoe allows 2^48 for read-test-write; servers pick their own, lower, limit.
pub const MAX_RTW_BODY_TAHOE: u64 = 1 << 48;
/// Tahoe's CDDL limits.
pub const MAX_ALLOCATE_SHARES: usize = 256;
pub const MAX_RTW_SHARES: usize = 256;
pub const MAX_TEST_VECTORS: usize = 30;
pub const MAX_READ_VECTORS: usize = 30;
pub const MAX_REASON_LEN: usize = 32765;
/// Share numbers are 0..=255 (N ≤ 256). Tahoe's server would accept larger ones; cairn refuses.
pub const MAX_SHARE_NUMBER: u64 = 255;
/// Nesting limit for CBOR bodies; the deepest valid request nests 5 levels.
const MAX_CBOR_DEPTH: usize = 16;

/// A share number, 0..=255.
pub type ShareNumber = u8;

/// Why a request piece was refused; each variant maps to the status Tahoe's server sends.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GbsError {
    /// 400: a header or body that does not parse or violates the schema.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: wrong or missing `Authorization`.
    #[error("wrong Authorization header")]
    Unauthorized,
    /// 415: a body that is not CBOR.
    #[error("unsupported media type {0:?}; send application/cbor")]
    UnsupportedMediaType(String),
    /// 406: the client does not accept CBOR.
    #[error("not acceptable: responses are application/cbor only")]
    NotAcceptable,
    /// 416: a missing or unsupported (Content-)Range.
    #[error("range not satisfiable: {0}")]
    RangeNotSatisfiable(String),
}

impl GbsError {
    /// The HTTP status code Tahoe's server answers with.
    pub fn status(&self) -> u16 {
        match self {
            GbsError::BadRequest(_) => 400,
            GbsError::Unauthorized => 401,
            GbsError::UnsupportedMediaType(_) => 415,
            GbsError::NotAcceptable => 406,
            GbsError::RangeNotSatisfiable(_) => 416,
        }
    }
}

fn bad(msg: impl Into<String>) -> GbsError {
    GbsError::BadRequest(msg.into())
}

// ------------------------------------------------------------------------------------------
// Path segments

/// Parse a storage-index path segment: exactly 26 lowercase RFC 3548 base32 characters that
/// decode canonically to 16 bytes. `None` means "does not route" (404), as in Tahoe.
pub fn parse_storage_index(segment: &str) -> Option<[u8; 16]> {
    if segment.len() != 26
        || !segment
            .bytes()
            .all(|c| matches!(c, b'a'..=b'z' | b'2'..=b'7'))
    {
        return None;
    }
    crate::base32::decode_array::<16>(segment).ok()
}

/// The 26-character form of a storage index (also its directory name on disk).
pub fn storage_index_to_string(si: &[u8; 16]) -> String {
    crate::base32::encode(si)
}

/// Parse a share-number path segment: unsigned decimal digits (werkzeug's `int(signed=False)`).
/// Returns `None` for anything that does not route (404) and for numbers above 255 (no such
/// share can exist).
pub fn parse_share_number(segment: &str) -> Option<ShareNumber> {
    if segment.is_empty() || segment.len() > 20 || !segment.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = segment.parse().ok()?;
    u8::try_from(n).ok()
}

// ------------------------------------------------------------------------------------------
// Authorization and secrets

/// The `Authorization` header value for a swissnum (its ASCII bytes, standard base64).
pub fn authorization_header(swissnum: &[u8]) -> String {
    format!("Tahoe-LAFS {}", b64::encode(swissnum))
}

/// Check the first `Authorization` header against the swissnum, as Tahoe does: exact bytes,
/// compared in constant time. Missing → 401; not UTF-8 → 400; different → 401.
pub fn check_authorization(first_value: Option<&[u8]>, swissnum: &[u8]) -> Result<(), GbsError> {
    let got = first_value.unwrap_or(b"");
    if std::str::from_utf8(got).is_err() {
        return Err(bad("Bad Authorization header"));
    }
    let want = authorization_header(swissnum);
    if constant_time_eq(got, want.as_bytes()) {
        Ok(())
    } else {
        Err(GbsError::Unauthorized)
    }
}

/// Constant-time comparison (length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The kinds of `X-Tahoe-Authorization` secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretKind {
    LeaseRenew,
    LeaseCancel,
    Upload,
    WriteEnabler,
}

impl SecretKind {
    pub const ALL: [SecretKind; 4] = [
        SecretKind::LeaseRenew,
        SecretKind::LeaseCancel,
        SecretKind::Upload,
        SecretKind::WriteEnabler,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::LeaseRenew => "lease-renew-secret",
            SecretKind::LeaseCancel => "lease-cancel-secret",
            SecretKind::Upload => "upload-secret",
            SecretKind::WriteEnabler => "write-enabler",
        }
    }

    fn from_wire(s: &str) -> Option<SecretKind> {
        SecretKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Secrets an endpoint requires.
pub const SECRETS_NONE: &[SecretKind] = &[];
pub const SECRETS_ALLOCATE: &[SecretKind] = &[
    SecretKind::LeaseRenew,
    SecretKind::LeaseCancel,
    SecretKind::Upload,
];
pub const SECRETS_UPLOAD: &[SecretKind] = &[SecretKind::Upload];
pub const SECRETS_LEASE: &[SecretKind] = &[SecretKind::LeaseRenew, SecretKind::LeaseCancel];
pub const SECRETS_RTW: &[SecretKind] = &[
    SecretKind::WriteEnabler,
    SecretKind::LeaseRenew,
    SecretKind::LeaseCancel,
];

/// Parsed `X-Tahoe-Authorization` secrets. Exactly the required ones are present.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    pub lease_renew: Option<[u8; 32]>,
    pub lease_cancel: Option<[u8; 32]>,
    pub upload: Option<Vec<u8>>,
    pub write_enabler: Option<Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never print.
        f.debug_struct("Secrets")
            .field("lease_renew", &self.lease_renew.map(|_| ".."))
            .field("lease_cancel", &self.lease_cancel.map(|_| ".."))
            .field("upload", &self.upload.as_ref().map(|_| ".."))
            .field("write_enabler", &self.write_enabler.as_ref().map(|_| ".."))
            .finish()
    }
}

impl Secrets {
    fn kinds(&self) -> BTreeSet<SecretKind> {
        let mut s = BTreeSet::new();
        if self.lease_renew.is_some() {
            s.insert(SecretKind::LeaseRenew);
        }
        if self.lease_cancel.is_some() {
            s.insert(SecretKind::LeaseCancel);
        }
        if self.upload.is_some() {
            s.insert(SecretKind::Upload);
        }
        if self.write_enabler.is_some() {
            s.insert(SecretKind::WriteEnabler);
        }
        s
    }

    /// Header values (`<kind> <b64>`) for these secrets, as a client sends them.
    pub fn header_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push =
            |k: SecretKind, v: &[u8]| out.push(format!("{} {}", k.as_str(), b64::encode(v)));
        if let Some(v) = &self.lease_renew {
            push(SecretKind::LeaseRenew, v);
        }
        if let Some(v) = &self.lease_cancel {
            push(SecretKind::LeaseCancel, v);
        }
        if let Some(v) = &self.upload {
            push(SecretKind::Upload, v);
        }
        if let Some(v) = &self.write_enabler {
            push(SecretKind::WriteEnabler, v);
        }
        out
    }
}

/// Maximum length of one secret value accepted (Tahoe has none; 32 bytes are used in practice).
pub const MAX_SECRET_LEN: usize = 1024;

/// Parse all `X-Tahoe-Authorization` header values and check they are exactly `required`
/// (`_extract_secrets`): unknown kind, bad base64, empty value, lease secret ≠ 32 bytes, or a
/// set that differs from `required` → 400. A kind given twice keeps the last value, as Tahoe.
pub fn parse_secrets(values: &[&[u8]], required: &[SecretKind]) -> Result<Secrets, GbsError> {
    let mut out = Secrets::default();
    for raw in values {
        let text = std::str::from_utf8(raw).map_err(|_| bad("Bad header value(s): not UTF-8"))?;
        let text = text.trim();
        let (kind, value) = text
            .split_once(' ')
            .ok_or_else(|| bad(format!("Bad header value(s): {text:?}")))?;
        let kind = SecretKind::from_wire(kind)
            .ok_or_else(|| bad(format!("Bad header value(s): unknown secret kind {kind:?}")))?;
        let value = b64::decode(value.trim()).ok_or_else(|| {
            bad(format!(
                "Bad header value(s): bad base64 for {}",
                kind.as_str()
            ))
        })?;
        if value.is_empty() {
            return Err(bad(format!("Failed to decode secret {}", kind.as_str())));
        }
        if value.len() > MAX_SECRET_LEN {
            return Err(bad(format!("secret {} too long", kind.as_str())));
        }
        match kind {
            SecretKind::LeaseRenew | SecretKind::LeaseCancel => {
                let arr: [u8; 32] = value
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad("Lease secrets must be 32 bytes long"))?;
                if kind == SecretKind::LeaseRenew {
                    out.lease_renew = Some(arr);
                } else {
                    out.lease_cancel = Some(arr);
                }
            }
            SecretKind::Upload => out.upload = Some(value),
            SecretKind::WriteEnabler => out.write_enabler = Some(value),
        }
    }
    let want: BTreeSet<SecretKind> = required.iter().copied().collect();
    let got = out.kinds();
    if got != want {
        return Err(bad(format!(
            "Expected {:?} in X-Tahoe-Authorization headers, got {:?}",
            want.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            got.iter().map(|k| k.as_str()).collect::<Vec<_>>()
        )));
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// Content negotiation

/// Check a request's `Content-Type` (first value): absent or empty means CBOR; anything other
/// than `application/cbor` (parameters ignored, case-insensitive) → 415.
pub fn check_content_type(first_value: Option<&[u8]>) -> Result<(), GbsError> {
    let Some(raw) = first_value else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(raw);
    let main = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if main.is_empty() || main == CBOR_MIME_TYPE {
        Ok(())
    } else {
        Err(GbsError::UnsupportedMediaType(main))
    }
}

/// Check the first `Accept` header as Tahoe does (`parse_accept_header(...).best`): absent is
/// fine; otherwise the best-quality media range must be exactly `application/cbor`. So
/// `Accept: */*` gets 406.
pub fn check_accept(first_value: Option<&[u8]>) -> Result<(), GbsError> {
    let Some(raw) = first_value else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(raw);
    let mut best: Option<(u32, u8, String)> = None; // (q*1000, specificity, type)
    for item in text.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let mut q = 1000u32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v
                        .trim()
                        .parse::<f64>()
                        .map(|f| (f.clamp(0.0, 1.0) * 1000.0) as u32)
                        .unwrap_or(0);
                }
            }
        }
        if q == 0 {
            continue;
        }
        let spec = match media.as_str() {
            "*/*" => 0,
            m if m.ends_with("/*") => 1,
            _ => 2,
        };
        let better = match &best {
            None => true,
            Some((bq, bs, _)) => (q, spec) > (*bq, *bs),
        };
        if better {
            best = Some((q, spec, media));
        }
    }
    match best {
        Some((_, _, m)) if m == CBOR_MIME_TYPE => Ok(()),
        _ => Err(GbsError::NotAcceptable),
    }
}

// ------------------------------------------------------------------------------------------
// Ranges

/// A half-open byte range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

fn plain_uint(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse a request `Range` header the way Tahoe's `read_range` accepts it: `bytes=a-b`, one
/// range, both ends given, a ≤ b. Anything else → 416.
pub fn parse_range(value: &[u8]) -> Result<ByteRange, GbsError> {
    let unsupported = |why: &str| GbsError::RangeNotSatisfiable(why.to_string());
    let text = std::str::from_utf8(value).map_err(|_| unsupported("Range is not UTF-8"))?;
    let (units, rng) = text
        .split_once('=')
        .ok_or_else(|| unsupported("malformed Range"))?;
    if !units.trim().eq_ignore_ascii_case("bytes") {
        return Err(unsupported("Range units must be bytes"));
    }
    let items: Vec<&str> = rng.split(',').collect();
    if items.len() != 1 {
        return Err(unsupported("only one range is supported"));
    }
    let item = items[0].trim();
    let (a, b) = item
        .split_once('-')
        .ok_or_else(|| unsupported("malformed Range"))?;
    let start = plain_uint(a).ok_or_else(|| unsupported("Range needs an explicit start"))?;
    let last = plain_uint(b).ok_or_else(|| unsupported("Range needs an explicit end"))?;
    if last < start {
        return Err(unsupported("Range end before start"));
    }
    let end = last
        .checked_add(1)
        .ok_or_else(|| unsupported("Range end too large"))?;
    Ok(ByteRange { start, end })
}

/// What a ranged read answers, given the share's data length (`read_range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAnswer {
    /// 206 with `Content-Range: bytes start-(end-1)/*` and the bytes `[start, end)`.
    Partial(ByteRange),
    /// 204: the range starts at or past the end of the data.
    NoContent,
}

/// Clip a requested range to the share length.
pub fn clip_range(requested: ByteRange, share_len: u64) -> ReadAnswer {
    let end = requested.end.min(share_len);
    if requested.start >= end {
        ReadAnswer::NoContent
    } else {
        ReadAnswer::Partial(ByteRange {
            start: requested.start,
            end,
        })
    }
}

/// The `Content-Range` value of a 206 response (and of a PATCH request).
pub fn content_range_header(r: ByteRange) -> String {
    format!("bytes {}-{}/*", r.start, r.end.saturating_sub(1))
}

/// The `Range` request header for `[start, end)`.
pub fn range_header(r: ByteRange) -> String {
    format!("bytes={}-{}", r.start, r.end.saturating_sub(1))
}

/// Parse a `Content-Range` header (werkzeug's `parse_content_range_header`, then Tahoe's
/// requirements: units `bytes` and an explicit range). Missing or invalid → 416.
pub fn parse_content_range(value: Option<&[u8]>) -> Result<ByteRange, GbsError> {
    let unsupported = |why: &str| GbsError::RangeNotSatisfiable(why.to_string());
    let value = value.ok_or_else(|| unsupported("Content-Range is required"))?;
    let text = std::str::from_utf8(value).map_err(|_| unsupported("Content-Range is not UTF-8"))?;
    let text = text.trim();
    let (units, rangedef) = text
        .split_once(|c: char| c.is_ascii_whitespace())
        .ok_or_else(|| unsupported("malformed Content-Range"))?;
    if units != "bytes" {
        return Err(unsupported("Content-Range units must be bytes"));
    }
    let (rng, length) = rangedef
        .trim()
        .split_once('/')
        .ok_or_else(|| unsupported("malformed Content-Range"))?;
    let length = if length == "*" {
        None
    } else {
        Some(plain_uint(length).ok_or_else(|| unsupported("bad Content-Range length"))?)
    };
    let (a, b) = rng
        .split_once('-')
        .ok_or_else(|| unsupported("Content-Range needs a range"))?;
    let start = plain_uint(a).ok_or_else(|| unsupported("bad Content-Range start"))?;
    let last = plain_uint(b).ok_or_else(|| unsupported("bad Content-Range end"))?;
    let end = last
        .checked_add(1)
        .ok_or_else(|| unsupported("Content-Range end too large"))?;
    if start >= end {
        return Err(unsupported("Content-Range end before start"));
    }
    if let Some(len) = length {
        if start >= len {
            return Err(unsupported("Content-Range start past length"));
        }
    }
    Ok(ByteRange { start, end })
}

// ------------------------------------------------------------------------------------------
// Request bodies

/// `POST /storage/v1/immutable/:si`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocateRequest {
    pub share_numbers: BTreeSet<ShareNumber>,
    pub allocated_size: u64,
}

/// `POST .../:shnum/corrupt`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRequest {
    pub reason: String,
}

// The read-test-write request is the same value the test-and-write semantics take.
pub use super::rtw::{ReadVector, RtwRequest, TestVector, TestWriteVectors, WriteVector};

impl AllocateRequest {
    /// Parse and validate (`allocate_buckets` schema; share numbers ≤ 255).
    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let v = cbor::decode(body)?;
        let mut m = Fields::new(v, "request")?;
        let shares = m.take("share-numbers")?;
        let size = m.take("allocated-size")?;
        m.finish()?;
        let items = expect_set(shares, "share-numbers")?;
        if items.len() > MAX_ALLOCATE_SHARES {
            return Err(bad("share-numbers: at most 256 share numbers"));
        }
        let mut share_numbers = BTreeSet::new();
        for it in items {
            share_numbers.insert(expect_shnum(it, "share-numbers")?);
        }
        Ok(AllocateRequest {
            share_numbers,
            allocated_size: expect_uint(size, "allocated-size")?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        cbor::encode(&V::Map(vec![
            (
                V::text("share-numbers"),
                set_value(self.share_numbers.iter().map(|&s| s as u64)),
            ),
            (V::text("allocated-size"), V::Uint(self.allocated_size)),
        ]))
    }
}

impl CorruptRequest {
    /// Parse and validate (`advise_corrupt_share` schema: `reason` text of 1..32765 bytes).
    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let v = cbor::decode(body)?;
        let mut m = Fields::new(v, "request")?;
        let reason = m.take("reason")?;
        m.finish()?;
        let reason = match reason {
            cbor::Value::Text(t) => t,
            _ => return Err(bad("reason: expected text")),
        };
        if reason.is_empty() || reason.len() > MAX_REASON_LEN {
            return Err(bad("reason: must be 1..32765 bytes"));
        }
        Ok(CorruptRequest { reason })
    }

    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        cbor::encode(&V::Map(vec![(
            V::text("reason"),
            V::Text(self.reason.clone()),
        )]))
    }
}

impl RtwRequest {
    /// Parse and validate (`mutable_read_test_write` schema; share numbers ≤ 255).
    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let v = cbor::decode(body)?;
        let mut m = Fields::new(v, "request")?;
        let twv = m.take("test-write-vectors")?;
        let rv = m.take("read-vector")?;
        m.finish()?;
        let twv = match twv {
            cbor::Value::Map(entries) => entries,
            _ => return Err(bad("test-write-vectors: expected a map")),
        };
        if twv.len() > MAX_RTW_SHARES {
            return Err(bad("test-write-vectors: at most 256 shares"));
        }
        let mut test_write_vectors = BTreeMap::new();
        for (k, v) in twv {
            let shnum = expect_shnum(k, "test-write-vectors key")?;
            let mut f = Fields::new(v, "test-write-vectors entry")?;
            let test = f.take("test")?;
            let write = f.take("write")?;
            let new_length = f.take("new-length")?;
            f.finish()?;
            let test = expect_array(test, "test")?;
            if test.len() > MAX_TEST_VECTORS {
                return Err(bad("test: at most 30 test vectors"));
            }
            let mut tests = Vec::with_capacity(test.len());
            for t in test {
                let mut f = Fields::new(t, "test vector")?;
                let offset = expect_uint(f.take("offset")?, "offset")?;
                let size = expect_uint(f.take("size")?, "size")?;
                let specimen = expect_bytes(f.take("specimen")?, "specimen")?;
                f.finish()?;
                tests.push(TestVector {
                    offset,
                    size,
                    specimen,
                });
            }
            let write = expect_array(write, "write")?;
            let mut writes = Vec::with_capacity(write.len());
            for w in write {
                let mut f = Fields::new(w, "write vector")?;
                let offset = expect_uint(f.take("offset")?, "offset")?;
                let data = expect_bytes(f.take("data")?, "data")?;
                f.finish()?;
                if offset.checked_add(data.len() as u64).is_none() {
                    return Err(bad("write: offset + length overflows"));
                }
                writes.push(WriteVector { offset, data });
            }
            let new_length = match new_length {
                cbor::Value::Null => None,
                other => Some(expect_uint(other, "new-length")?),
            };
            if test_write_vectors
                .insert(
                    u16::from(shnum),
                    TestWriteVectors {
                        test: tests,
                        write: writes,
                        new_length,
                    },
                )
                .is_some()
            {
                return Err(bad("test-write-vectors: duplicate share number"));
            }
        }
        let rv = expect_array(rv, "read-vector")?;
        if rv.len() > MAX_READ_VECTORS {
            return Err(bad("read-vector: at most 30 read vectors"));
        }
        let mut read_vector = Vec::with_capacity(rv.len());
        for r in rv {
            let mut f = Fields::new(r, "read vector")?;
            let offset = expect_uint(f.take("offset")?, "offset")?;
            let size = expect_uint(f.take("size")?, "size")?;
            f.finish()?;
            read_vector.push(ReadVector { offset, size });
        }
        Ok(RtwRequest {
            test_write_vectors,
            read_vector,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        let twv = self
            .test_write_vectors
            .iter()
            .map(|(&k, v)| {
                let test = v
                    .test
                    .iter()
                    .map(|t| {
                        V::Map(vec![
                            (V::text("offset"), V::Uint(t.offset)),
                            (V::text("size"), V::Uint(t.size)),
                            (V::text("specimen"), V::Bytes(t.specimen.clone())),
                        ])
                    })
                    .collect();
                let write = v
                    .write
                    .iter()
                    .map(|w| {
                        V::Map(vec![
                            (V::text("offset"), V::Uint(w.offset)),
                            (V::text("data"), V::Bytes(w.data.clone())),
                        ])
                    })
                    .collect();
                let nl = v.new_length.map(V::Uint).unwrap_or(V::Null);
                (
                    V::Uint(k as u64),
                    V::Map(vec![
                        (V::text("test"), V::Array(test)),
                        (V::text("write"), V::Array(write)),
                        (V::text("new-length"), nl),
                    ]),
                )
            })
            .collect();
        let rv = self
            .read_vector
            .iter()
            .map(|r| {
                V::Map(vec![
                    (V::text("offset"), V::Uint(r.offset)),
                    (V::text("size"), V::Uint(r.size)),
                ])
            })
            .collect();
        cbor::encode(&V::Map(vec![
            (V::text("test-write-vectors"), V::Map(twv)),
            (V::text("read-vector"), V::Array(rv)),
        ]))
    }
}

// ------------------------------------------------------------------------------------------
// Response bodies

/// `GET /storage/v1/version` (keys are CBOR byte strings, as Tahoe sends them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionResponse {
    pub maximum_immutable_share_size: u64,
    pub maximum_mutable_share_size: u64,
    pub available_space: u64,
    pub application_version: Vec<u8>,
}

impl VersionResponse {
    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        cbor::encode(&V::Map(vec![
            (
                V::Bytes(V1_IDENTIFIER.to_vec()),
                V::Map(vec![
                    (
                        V::bytes(b"maximum-immutable-share-size"),
                        V::Uint(self.maximum_immutable_share_size),
                    ),
                    (
                        V::bytes(b"maximum-mutable-share-size"),
                        V::Uint(self.maximum_mutable_share_size),
                    ),
                    (V::bytes(b"available-space"), V::Uint(self.available_space)),
                ]),
            ),
            (
                V::bytes(b"application-version"),
                V::Bytes(self.application_version.clone()),
            ),
        ]))
    }

    /// Parse a server's answer (extra keys ignored, as Tahoe's client does).
    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let v = cbor::decode(body)?;
        let cbor::Value::Map(entries) = v else {
            return Err(bad("version: expected a map"));
        };
        let mut inner = None;
        let mut app = None;
        for (k, v) in entries {
            match k {
                cbor::Value::Bytes(b) if b == V1_IDENTIFIER => inner = Some(v),
                cbor::Value::Bytes(b) if b == b"application-version" => app = Some(v),
                _ => {}
            }
        }
        let cbor::Value::Map(inner) = inner.ok_or_else(|| bad("version: no v1 entry"))? else {
            return Err(bad("version: v1 entry not a map"));
        };
        let get = |key: &[u8]| -> Result<u64, GbsError> {
            for (k, v) in &inner {
                if matches!(k, cbor::Value::Bytes(b) if b == key) {
                    return expect_uint(v.clone(), "version field");
                }
            }
            Err(bad(format!(
                "version: missing {}",
                String::from_utf8_lossy(key)
            )))
        };
        Ok(VersionResponse {
            maximum_immutable_share_size: get(b"maximum-immutable-share-size")?,
            maximum_mutable_share_size: get(b"maximum-mutable-share-size")?,
            available_space: get(b"available-space")?,
            application_version: match app {
                Some(cbor::Value::Bytes(b)) => b,
                _ => Vec::new(),
            },
        })
    }
}

/// Answer to an allocate request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllocateResponse {
    pub already_have: BTreeSet<ShareNumber>,
    pub allocated: BTreeSet<ShareNumber>,
}

impl AllocateResponse {
    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        cbor::encode(&V::Map(vec![
            (
                V::text("already-have"),
                set_value(self.already_have.iter().map(|&s| s as u64)),
            ),
            (
                V::text("allocated"),
                set_value(self.allocated.iter().map(|&s| s as u64)),
            ),
        ]))
    }

    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let mut m = Fields::new(cbor::decode(body)?, "allocate response")?;
        let ah = m.take("already-have")?;
        let al = m.take("allocated")?;
        let mut out = AllocateResponse::default();
        for it in expect_set(ah, "already-have")? {
            out.already_have.insert(expect_shnum(it, "already-have")?);
        }
        for it in expect_set(al, "allocated")? {
            out.allocated.insert(expect_shnum(it, "allocated")?);
        }
        Ok(out)
    }
}

/// Encode a set of share numbers (list-shares answers).
pub fn encode_share_set(shares: &BTreeSet<ShareNumber>) -> Vec<u8> {
    cbor::encode(&set_value(shares.iter().map(|&s| s as u64)))
}

/// Parse a set of share numbers (tag 258 optional on the client side).
pub fn parse_share_set(body: &[u8]) -> Result<BTreeSet<ShareNumber>, GbsError> {
    let v = cbor::decode(body)?;
    let items = match v {
        cbor::Value::Tag(TAG_SET, inner) => expect_array(*inner, "share set")?,
        other => expect_array(other, "share set")?,
    };
    items
        .into_iter()
        .map(|i| expect_shnum(i, "share set"))
        .collect()
}

/// Answer to a PATCH: the ranges still missing, `{"required": [{"begin", "end"}...]}`.
pub fn encode_required_ranges(required: &[ByteRange]) -> Vec<u8> {
    use cbor::Value as V;
    let list = required
        .iter()
        .map(|r| {
            V::Map(vec![
                (V::text("begin"), V::Uint(r.start)),
                (V::text("end"), V::Uint(r.end)),
            ])
        })
        .collect();
    cbor::encode(&V::Map(vec![(V::text("required"), V::Array(list))]))
}

pub fn parse_required_ranges(body: &[u8]) -> Result<Vec<ByteRange>, GbsError> {
    let mut m = Fields::new(cbor::decode(body)?, "patch response")?;
    let list = expect_array(m.take("required")?, "required")?;
    let mut out = Vec::with_capacity(list.len());
    for it in list {
        let mut f = Fields::new(it, "required range")?;
        let start = expect_uint(f.take("begin")?, "begin")?;
        let end = expect_uint(f.take("end")?, "end")?;
        if end < start {
            return Err(bad("required: end before begin"));
        }
        out.push(ByteRange { start, end });
    }
    Ok(out)
}

/// Answer to a read-test-write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtwResponse {
    pub success: bool,
    pub data: BTreeMap<ShareNumber, Vec<Vec<u8>>>,
}

impl RtwResponse {
    pub fn encode(&self) -> Vec<u8> {
        use cbor::Value as V;
        let data = self
            .data
            .iter()
            .map(|(&k, v)| {
                (
                    V::Uint(k as u64),
                    V::Array(v.iter().map(|b| V::Bytes(b.clone())).collect()),
                )
            })
            .collect();
        cbor::encode(&V::Map(vec![
            (V::text("success"), V::Bool(self.success)),
            (V::text("data"), V::Map(data)),
        ]))
    }

    pub fn parse(body: &[u8]) -> Result<Self, GbsError> {
        let mut m = Fields::new(cbor::decode(body)?, "rtw response")?;
        let success = match m.take("success")? {
            cbor::Value::Bool(b) => b,
            _ => return Err(bad("success: expected bool")),
        };
        let cbor::Value::Map(entries) = m.take("data")? else {
            return Err(bad("data: expected map"));
        };
        let mut data = BTreeMap::new();
        for (k, v) in entries {
            let shnum = expect_shnum(k, "data key")?;
            let reads = expect_array(v, "data")?
                .into_iter()
                .map(|b| expect_bytes(b, "data"))
                .collect::<Result<Vec<_>, _>>()?;
            data.insert(shnum, reads);
        }
        Ok(RtwResponse { success, data })
    }
}

// ------------------------------------------------------------------------------------------
// Helpers on decoded values

struct Fields {
    entries: Vec<(cbor::Value, cbor::Value)>,
    what: &'static str,
}

impl Fields {
    fn new(v: cbor::Value, what: &'static str) -> Result<Self, GbsError> {
        match v {
            cbor::Value::Map(entries) => {
                for (i, (k, _)) in entries.iter().enumerate() {
                    if entries[..i].iter().any(|(k2, _)| k2 == k) {
                        return Err(bad(format!("{what}: duplicate key")));
                    }
                }
                Ok(Fields { entries, what })
            }
            _ => Err(bad(format!("{what}: expected a map"))),
        }
    }

    fn take(&mut self, key: &str) -> Result<cbor::Value, GbsError> {
        let pos = self
            .entries
            .iter()
            .position(|(k, _)| matches!(k, cbor::Value::Text(t) if t == key))
            .ok_or_else(|| bad(format!("{}: missing key {key:?}", self.what)))?;
        Ok(self.entries.swap_remove(pos).1)
    }

    /// CDDL maps are closed: unknown keys are a validation failure.
    fn finish(self) -> Result<(), GbsError> {
        if let Some((k, _)) = self.entries.first() {
            return Err(bad(format!("{}: unexpected key {k:?}", self.what)));
        }
        Ok(())
    }
}

fn expect_uint(v: cbor::Value, what: &str) -> Result<u64, GbsError> {
    match v {
        cbor::Value::Uint(n) => Ok(n),
        _ => Err(bad(format!("{what}: expected an unsigned integer"))),
    }
}

fn expect_shnum(v: cbor::Value, what: &str) -> Result<ShareNumber, GbsError> {
    let n = expect_uint(v, what)?;
    u8::try_from(n).map_err(|_| bad(format!("{what}: share number {n} out of range 0..=255")))
}

fn expect_bytes(v: cbor::Value, what: &str) -> Result<Vec<u8>, GbsError> {
    match v {
        cbor::Value::Bytes(b) => Ok(b),
        _ => Err(bad(format!("{what}: expected a byte string"))),
    }
}

fn expect_array(v: cbor::Value, what: &str) -> Result<Vec<cbor::Value>, GbsError> {
    match v {
        cbor::Value::Array(a) => Ok(a),
        _ => Err(bad(format!("{what}: expected an array"))),
    }
}

/// A set: tag 258 around an array (required, as Tahoe's CDDL requires it).
fn expect_set(v: cbor::Value, what: &str) -> Result<Vec<cbor::Value>, GbsError> {
    match v {
        cbor::Value::Tag(TAG_SET, inner) => expect_array(*inner, what),
        _ => Err(bad(format!("{what}: expected a set (CBOR tag 258 array)"))),
    }
}

fn set_value(items: impl Iterator<Item = u64>) -> cbor::Value {
    cbor::Value::Tag(
        TAG_SET,
        Box::new(cbor::Value::Array(items.map(cbor::Value::Uint).collect())),
    )
}

// ------------------------------------------------------------------------------------------

/// A strict, bounded CBOR (RFC 8949) reader and a small writer for the values GBS uses.
pub mod cbor {
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
                25 => {
                    Head::Arg(u16::from_be_bytes(self.take(2)?.try_into().unwrap_or([0; 2])) as u64)
                }
                26 => {
                    Head::Arg(u32::from_be_bytes(self.take(4)?.try_into().unwrap_or([0; 4])) as u64)
                }
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
}

/// Standard base64 with padding (what Python's `b64encode` makes; decoding is strict about
/// length and padding, and, as Python's `b64decode`, lets unused trailing bits pass).
pub mod b64 {
    use base64::alphabet;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::Engine;

    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    );

    pub fn encode(data: &[u8]) -> String {
        ENGINE.encode(data)
    }

    /// Strict decode: length a multiple of 4, padding only at the end.
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        ENGINE.decode(text).ok()
    }

    /// Unpadded URL-safe base64 (Python's `urlsafe_b64encode(..).rstrip(b"=")`).
    pub fn urlsafe_nopad(data: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    }

    /// Python's `base64.urlsafe_b64decode`, non-strict, as Tahoe's web API applies it to a
    /// private key field: characters outside the alphabet are skipped, `+`/`/` read as
    /// `-`/`_`, input ends at the first `=`, padding may be left out; a lone trailing
    /// character (six bits, no byte) is refused.
    pub fn urlsafe_decode_lenient(text: &str) -> Option<Vec<u8>> {
        const LENIENT: GeneralPurpose = GeneralPurpose::new(
            &alphabet::URL_SAFE,
            GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(DecodePaddingMode::RequireNone),
        );
        let clean: Vec<u8> = text
            .bytes()
            .take_while(|&c| c != b'=')
            .filter_map(|c| match c {
                b'+' => Some(b'-'),
                b'/' => Some(b'_'),
                c if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' => Some(c),
                _ => None,
            })
            .collect();
        if clean.len() % 4 == 1 {
            return None;
        }
        LENIENT.decode(&clean).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn allocate_request_as_python_client_sends_it() {
        // cbor2.dumps({"share-numbers": {1, 7}, "allocated-size": 1000})
        let body =
            h("a26d73686172652d6e756d62657273d901028201076e616c6c6f63617465642d73697a651903e8");
        let req = AllocateRequest::parse(&body).unwrap();
        assert_eq!(req.share_numbers, [1u8, 7].into_iter().collect());
        assert_eq!(req.allocated_size, 1000);
        assert_eq!(AllocateRequest::parse(&req.encode()).unwrap(), req);
    }

    #[test]
    fn allocate_request_rejects_schema_violations() {
        // missing tag 258
        let mut no_tag = Vec::new();
        no_tag.extend(h("a26d"));
        no_tag.extend(b"share-numbers");
        no_tag.extend(h("8101"));
        no_tag.extend(h("6e"));
        no_tag.extend(b"allocated-size");
        no_tag.extend(h("01"));
        assert!(AllocateRequest::parse(&no_tag).is_err());
        // extra key
        let v = cbor::Value::Map(vec![
            (
                cbor::Value::text("share-numbers"),
                set_value([1u64].into_iter()),
            ),
            (cbor::Value::text("allocated-size"), cbor::Value::Uint(3)),
            (cbor::Value::text("x"), cbor::Value::Uint(3)),
        ]);
        assert!(AllocateRequest::parse(&cbor::encode(&v)).is_err());
        // share number out of range
        let v = cbor::Value::Map(vec![
            (
                cbor::Value::text("share-numbers"),
                set_value([256u64].into_iter()),
            ),
            (cbor::Value::text("allocated-size"), cbor::Value::Uint(3)),
        ]);
        assert!(AllocateRequest::parse(&cbor::encode(&v)).is_err());
        // huge declared lengths don't allocate
        assert!(cbor::decode(&h("9bffffffffffffffff")).is_err());
        assert!(cbor::decode(&h("5bffffffffffffffff")).is_err());
        assert!(cbor::decode(&h("bbffffffffffffffff")).is_err());
        // deep nesting
        assert!(cbor::decode(&[0x81; 1000]).is_err());
    }

    #[test]
    fn rtw_round_trip() {
        let mut req = RtwRequest::default();
        req.test_write_vectors.insert(
            3,
            TestWriteVectors {
                test: vec![TestVector {
                    offset: 0,
                    size: 1,
                    specimen: vec![],
                }],
                write: vec![WriteVector {
                    offset: 5,
                    data: b"hello".to_vec(),
                }],
                new_length: None,
            },
        );
        req.read_vector.push(ReadVector {
            offset: 0,
            size: 10,
        });
        assert_eq!(RtwRequest::parse(&req.encode()).unwrap(), req);
        // cbor2.dumps of the same request, as Tahoe's client sends it
        let py = h("a272746573742d77726974652d766563746f7273a103a3647465737481a3666f6666736574006473697a65016873706563696d656e4065777269746581a2666f66667365740564646174614568656c6c6f6a6e65772d6c656e677468f66b726561642d766563746f7281a2666f6666736574006473697a650a");
        assert_eq!(RtwRequest::parse(&py).unwrap(), req);
        let mut resp = RtwResponse {
            success: true,
            data: BTreeMap::new(),
        };
        resp.data.insert(3, vec![b"abc".to_vec()]);
        assert_eq!(RtwResponse::parse(&resp.encode()).unwrap(), resp);
    }

    #[test]
    fn version_keys_are_bytes() {
        let v = VersionResponse {
            maximum_immutable_share_size: 10,
            maximum_mutable_share_size: 20,
            available_space: 30,
            application_version: b"cairn/0.1".to_vec(),
        };
        let enc = v.encode();
        assert_eq!(enc[0], 0xa2);
        assert_eq!(enc[1], 0x58); // byte string, 1-byte length
        assert_eq!(VersionResponse::parse(&enc).unwrap(), v);
    }

    #[test]
    fn secrets_exact_set() {
        let renew = format!("lease-renew-secret {}", b64::encode(&[1; 32]));
        let cancel = format!("lease-cancel-secret {}", b64::encode(&[2; 32]));
        let upload = format!("upload-secret {}", b64::encode(b"abc"));
        let vals = [renew.as_bytes(), cancel.as_bytes(), upload.as_bytes()];
        let s = parse_secrets(&vals, SECRETS_ALLOCATE).unwrap();
        assert_eq!(s.upload.as_deref(), Some(&b"abc"[..]));
        assert!(parse_secrets(&vals, SECRETS_LEASE).is_err()); // extra
        assert!(parse_secrets(&vals[..2], SECRETS_ALLOCATE).is_err()); // missing
        let short = format!("lease-renew-secret {}", b64::encode(&[1; 31]));
        assert!(parse_secrets(&[short.as_bytes(), cancel.as_bytes()], SECRETS_LEASE).is_err());
        assert!(parse_secrets(&[b"upload-secret"], SECRETS_UPLOAD).is_err());
        assert!(parse_secrets(&[b"upload-secret !!!!"], SECRETS_UPLOAD).is_err());
        assert!(parse_secrets(&[b"bogus-secret YWJj"], SECRETS_UPLOAD).is_err());
        assert!(parse_secrets(&[], SECRETS_NONE).is_ok());
    }

    #[test]
    fn authorization() {
        let sw = b"abcdefghijklmnopqrstuvwxyz234567";
        let hv = authorization_header(sw);
        assert!(check_authorization(Some(hv.as_bytes()), sw).is_ok());
        assert_eq!(check_authorization(None, sw), Err(GbsError::Unauthorized));
        assert_eq!(
            check_authorization(Some(b"Tahoe-LAFS x"), sw),
            Err(GbsError::Unauthorized)
        );
        assert_eq!(
            check_authorization(Some(&[0xff]), sw).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range(b"bytes=0-9").unwrap(),
            ByteRange { start: 0, end: 10 }
        );
        assert!(parse_range(b"bytes=0-").is_err());
        assert!(parse_range(b"bytes=-5").is_err());
        assert!(parse_range(b"bytes=0-1,3-4").is_err());
        assert!(parse_range(b"items=0-1").is_err());
        assert!(parse_range(b"bytes=5-4").is_err());
        assert_eq!(
            clip_range(ByteRange { start: 5, end: 100 }, 10),
            ReadAnswer::Partial(ByteRange { start: 5, end: 10 })
        );
        assert_eq!(
            clip_range(
                ByteRange {
                    start: 10,
                    end: 100
                },
                10
            ),
            ReadAnswer::NoContent
        );
        assert_eq!(
            content_range_header(ByteRange { start: 5, end: 10 }),
            "bytes 5-9/*"
        );
        assert_eq!(
            parse_content_range(Some(b"bytes 0-99/*")).unwrap(),
            ByteRange { start: 0, end: 100 }
        );
        assert_eq!(
            parse_content_range(Some(b"bytes 10-19/100")).unwrap(),
            ByteRange { start: 10, end: 20 }
        );
        assert!(parse_content_range(None).is_err());
        assert!(parse_content_range(Some(b"bytes */*")).is_err());
        assert!(parse_content_range(Some(b"bytes 5-4/*")).is_err());
        assert!(parse_content_range(Some(b"items 0-4/*")).is_err());
    }

    #[test]
    fn accept_and_content_type() {
        assert!(check_accept(None).is_ok());
        assert!(check_accept(Some(b"application/cbor")).is_ok());
        assert!(check_accept(Some(b"*/*")).is_err());
        assert!(check_accept(Some(b"application/json")).is_err());
        assert!(check_accept(Some(b"application/json;q=0.5, application/cbor")).is_ok());
        assert!(check_content_type(None).is_ok());
        assert!(check_content_type(Some(b"application/cbor; charset=x")).is_ok());
        assert!(check_content_type(Some(b"text/plain")).is_err());
    }

    #[test]
    fn path_segments() {
        let si = [7u8; 16];
        let s = storage_index_to_string(&si);
        assert_eq!(s.len(), 26);
        assert_eq!(parse_storage_index(&s), Some(si));
        assert_eq!(parse_storage_index(&s.to_uppercase()), None);
        assert_eq!(parse_storage_index("../../etc/passwd"), None);
        assert_eq!(parse_share_number("7"), Some(7));
        assert_eq!(parse_share_number("256"), None);
        assert_eq!(parse_share_number("-1"), None);
        assert_eq!(parse_share_number("+1"), None);
        assert_eq!(parse_share_number(""), None);
    }

    #[test]
    fn urlsafe_lenient_decode_as_python_reads_a_key_field() {
        use b64::urlsafe_decode_lenient as d;
        // The reference: the hand-written decoder this replaced (bits accumulated, six-bit
        // remainder refused), over every length and odd characters.
        fn reference(text: &str) -> Option<Vec<u8>> {
            let mut out = Vec::new();
            let (mut acc, mut bits) = (0u32, 0u32);
            for c in text.bytes() {
                let v = match c {
                    b'A'..=b'Z' => c - b'A',
                    b'a'..=b'z' => c - b'a' + 26,
                    b'0'..=b'9' => c - b'0' + 52,
                    b'-' | b'+' => 62,
                    b'_' | b'/' => 63,
                    b'=' => break,
                    _ => continue,
                };
                acc = (acc << 6) | u32::from(v);
                bits += 6;
                if bits >= 8 {
                    bits -= 8;
                    out.push((acc >> bits) as u8);
                    acc &= (1 << bits) - 1;
                }
            }
            (bits < 6).then_some(out)
        }
        for data in [&b""[..], b"a", b"ab", b"abc", b"abcd", &[0xff; 40]] {
            let enc = b64::urlsafe_nopad(data);
            for text in [
                enc.clone(),
                format!("{enc}=="),
                format!(" {}\n", enc.replace('-', "+").replace('_', "/")),
                format!("{enc}x"),
                format!("{enc}=junk"),
            ] {
                assert_eq!(d(&text), reference(&text), "{text:?}");
            }
            assert_eq!(d(&enc).as_deref(), Some(data));
        }
    }

    #[test]
    fn base64_round_trip() {
        for n in 0..40 {
            let d: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(b64::decode(&b64::encode(&d)).unwrap(), d);
        }
        assert_eq!(b64::encode(b"abc"), "YWJj");
        assert_eq!(b64::encode(b"ab"), "YWI=");
        assert!(b64::decode("YWI").is_none());
        assert!(b64::decode("YW=I").is_none());
    }
}

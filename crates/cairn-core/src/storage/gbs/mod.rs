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

pub use crate::ids::{ShareNum, StorageIndex};

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

mod auth;
pub mod b64;
pub mod cbor;
mod messages;
mod negotiation;
mod paths;
mod ranges;

pub use auth::*;
pub use messages::*;
pub use negotiation::*;
pub use paths::*;
pub use ranges::*;

#[cfg(test)]
mod tests {
    use super::messages::set_value;
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
        assert_eq!(
            req.share_numbers,
            [ShareNum(1), ShareNum(7)].into_iter().collect()
        );
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
            ShareNum(3),
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
        resp.data.insert(ShareNum(3), vec![b"abc".to_vec()]);
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
        let si = StorageIndex([7u8; 16]);
        let s = storage_index_to_string(&si);
        assert_eq!(s.len(), 26);
        assert_eq!(parse_storage_index(&s), Some(si));
        assert_eq!(parse_storage_index(&s.to_uppercase()), None);
        assert_eq!(parse_storage_index("../../etc/passwd"), None);
        assert_eq!(parse_share_number("7"), Some(ShareNum(7)));
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

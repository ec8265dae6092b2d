//! Pure pieces of a GBS (HTTP storage protocol) *client*, compat map §5.1–5.3:
//! NURL parsing, the SPKI hash a client pins, and the checks Tahoe's `http_client.py` applies
//! to share-read responses. `cairn-client` does the I/O around them.

use sha2::{Digest, Sha256};

use super::gbs::{parse_content_range, ByteRange};

/// `pb` (TCP) or `pb+tor` NURL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NurlScheme {
    Tcp,
    Tor,
}

/// A storage server's NURL, `pb://<spki-hash>@<host>:<port>/<swissnum>#v=1` (`build_nurl`,
/// `docs/specifications/url.rst`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Nurl {
    pub scheme: NurlScheme,
    /// urlsafe-base64(SHA-256(DER SubjectPublicKeyInfo)), unpadded, 43 characters.
    pub spki_hash: String,
    /// Host name or IP address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// The storage swissnum (ASCII); `Authorization: Tahoe-LAFS <b64(swissnum)>`.
    pub swissnum: String,
}

impl std::fmt::Debug for Nurl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The swissnum is a bearer credential: never print it.
        f.debug_struct("Nurl")
            .field("scheme", &self.scheme)
            .field("spki_hash", &self.spki_hash)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Why a NURL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NurlError {
    #[error("NURL must start with pb:// or pb+tor://")]
    Scheme,
    #[error("NURL has no '@' separating the SPKI hash from the host")]
    NoAt,
    #[error(
        "NURL SPKI hash must be 43 characters of unpadded urlsafe base64 (SHA-256), got {0:?}"
    )]
    SpkiHash(String),
    #[error("NURL host is missing or invalid: {0:?}")]
    Host(String),
    #[error("NURL port is missing or invalid: {0:?}")]
    Port(String),
    #[error("NURL path must be exactly one swissnum segment of [A-Za-z0-9._~-]")]
    Swissnum,
    #[error("NURL must not have a query")]
    Query,
    #[error("NURL fragment must be exactly \"v=1\", got {0:?}")]
    Version(String),
}

impl Nurl {
    /// Parse strictly: scheme `pb` / `pb+tor`, a 43-character SPKI hash that decodes to 32
    /// bytes, a host (DNS name, IPv4, or bracketed IPv6), an explicit port 1..=65535, one
    /// path segment (the swissnum), no query, fragment exactly `v=1`.
    pub fn parse(text: &str) -> Result<Nurl, NurlError> {
        let (scheme, rest) = if let Some(r) = text.strip_prefix("pb://") {
            (NurlScheme::Tcp, r)
        } else if let Some(r) = text.strip_prefix("pb+tor://") {
            (NurlScheme::Tor, r)
        } else {
            return Err(NurlError::Scheme);
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        if fragment != Some("v=1") {
            return Err(NurlError::Version(fragment.unwrap_or("").to_string()));
        }
        if rest.contains('?') {
            return Err(NurlError::Query);
        }
        let (user, rest) = rest.split_once('@').ok_or(NurlError::NoAt)?;
        if spki_hash_bytes(user).is_none() {
            return Err(NurlError::SpkiHash(user.to_string()));
        }
        let (authority, path) = rest.split_once('/').ok_or(NurlError::Swissnum)?;
        if path.is_empty()
            || !path
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'~' | b'-'))
        {
            return Err(NurlError::Swissnum);
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or_else(|| NurlError::Host(authority.to_string()))?;
            if h.parse::<core::net::Ipv6Addr>().is_err() {
                return Err(NurlError::Host(h.to_string()));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| NurlError::Port(after.to_string()))?;
            (h, port)
        } else {
            let (h, p) = authority
                .rsplit_once(':')
                .ok_or_else(|| NurlError::Port(String::new()))?;
            if !valid_host_name(h) {
                return Err(NurlError::Host(h.to_string()));
            }
            (h, p)
        };
        let port_ok =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|c| c.is_ascii_digit());
        let port_num = port
            .parse::<u16>()
            .ok()
            .filter(|&p| port_ok && p != 0)
            .ok_or_else(|| NurlError::Port(port.to_string()))?;
        Ok(Nurl {
            scheme,
            spki_hash: user.to_string(),
            host: host.to_string(),
            port: port_num,
            swissnum: path.to_string(),
        })
    }

    /// `host:port`, IPv6 in brackets (for an `https://` URL or a socket address).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The pinned SPKI hash as its 32 bytes.
    pub fn spki_hash_bytes(&self) -> [u8; 32] {
        spki_hash_bytes(&self.spki_hash).expect("checked by parse")
    }
}

impl std::fmt::Display for Nurl {
    /// The canonical text, as `build_nurl` writes it (includes the swissnum).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            NurlScheme::Tcp => "pb",
            NurlScheme::Tor => "pb+tor",
        };
        write!(
            f,
            "{scheme}://{}@{}/{}#v=1",
            self.spki_hash,
            self.authority(),
            self.swissnum
        )
    }
}

fn valid_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
}

/// Unpadded urlsafe base64 (Python's `urlsafe_b64encode(..).rstrip(b"=")`).
pub fn urlsafe_b64_nopad(data: &[u8]) -> String {
    super::gbs::b64::urlsafe_nopad(data)
}

/// Decode a 43-character SPKI hash to its 32 bytes (canonical encodings only).
pub fn spki_hash_bytes(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    if text.len() != 43 {
        return None;
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?
        .try_into()
        .ok()
}

/// The SPKI hash clients pin: urlsafe-b64(SHA-256(DER SubjectPublicKeyInfo)), unpadded
/// (`http_common.get_spki_hash`).
pub fn spki_hash_of(spki_der: &[u8]) -> String {
    urlsafe_b64_nopad(&Sha256::digest(spki_der))
}

/// The SPKI hash of a DER X.509 certificate (any version, including Tahoe's v1 ones).
pub fn cert_spki_hash(cert_der: &[u8]) -> Option<String> {
    spki_from_cert(cert_der).map(spki_hash_of)
}

/// Find the DER `SubjectPublicKeyInfo` inside a DER X.509 certificate without otherwise
/// validating it (Tahoe's certificates are X.509 v1 and usually expired).
pub fn spki_from_cert(cert: &[u8]) -> Option<&[u8]> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
    //   serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ... } ... }
    let (tag, cert_body, _) = der_item(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, tbs, _) = der_item(cert_body)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, next) = der_item_full(rest)?;
    if tag == 0xa0 {
        rest = next;
    }
    for _ in 0..5 {
        let (_, _, next) = der_item_full(rest)?;
        rest = next;
    }
    let (tag, whole, _) = der_item_full(rest)?;
    (tag == 0x30).then_some(whole)
}

/// (tag, contents, rest)
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = len << 8 | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if end > input.len() {
        return None;
    }
    Some((tag, &input[hdr..end], &input[end..]))
}

fn der_item_full(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (tag, _, rest) = der_item(input)?;
    let used = input.len() - rest.len();
    Some((tag, &input[..used], rest))
}

/// What the body of a share-read response must be, decided from its status and headers
/// before reading it (`http_client.read_share_chunk`, made a little stricter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBody {
    /// 204: no bytes (the range starts at or past the end of the share).
    Empty,
    /// 206: exactly this many bytes, for the range starting at the requested offset.
    Exactly(u64),
}

/// Check a share-read answer to a request for `requested`: 204 → empty; 206 needs
/// `Content-Type: application/octet-stream` and a `Content-Range: bytes a-b/*` with
/// `a` = the requested start and `b+1 ≤` the requested end. Anything else (a 200 included,
/// as in Tahoe) is the server's fault; the `Err` says why. Non-2xx statuses are the
/// caller's to handle before this.
pub fn check_read_response(
    requested: ByteRange,
    status: u16,
    content_type: Option<&[u8]>,
    content_range: Option<&[u8]>,
) -> Result<ReadBody, String> {
    match status {
        204 => Ok(ReadBody::Empty),
        206 => {
            let ct = content_type.map(|c| String::from_utf8_lossy(c).to_ascii_lowercase());
            let base = ct
                .as_deref()
                .map(|c| c.split(';').next().unwrap_or("").trim().to_string());
            if base.as_deref() != Some("application/octet-stream") {
                return Err(format!(
                    "share read: Content-Type {ct:?}, expected application/octet-stream"
                ));
            }
            let got = parse_content_range(content_range).map_err(|e| format!("share read: {e}"))?;
            if got.start != requested.start {
                return Err(format!(
                    "share read: Content-Range starts at {}, requested {}",
                    got.start, requested.start
                ));
            }
            if got.end > requested.end {
                return Err(format!(
                    "share read: server sent more than asked for ({} > {})",
                    got.len(),
                    requested.len()
                ));
            }
            Ok(ReadBody::Exactly(got.len()))
        }
        other => Err(format!(
            "share read: unexpected status {other} (expected 206 or 204)"
        )),
    }
}

/// Whether a response's `Content-Type` is CBOR (parameters ignored, case-insensitive).
pub fn is_cbor_content_type(value: Option<&[u8]>) -> bool {
    let Some(v) = value else { return false };
    let v = String::from_utf8_lossy(v);
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case(super::gbs::CBOR_MIME_TYPE)
}

/// A server's error body as text for an error message: UTF-8 (lossy), control characters
/// replaced, cut to `max_chars` characters.
pub fn error_body_text(body: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(max_chars)
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "rX6lSdgIDGjNDgqvgvf9DyVTXcbfnzE7jeo7lxh8yVU";
    const SW: &str = "ixpyxkkc6vfpmbm6mbyupokcqm6a4tby";

    #[test]
    fn parse_good() {
        let n = Nurl::parse(&format!("pb://{H}@127.0.0.1:3456/{SW}#v=1")).unwrap();
        assert_eq!(n.scheme, NurlScheme::Tcp);
        assert_eq!(
            (n.host.as_str(), n.port, n.swissnum.as_str()),
            ("127.0.0.1", 3456, SW)
        );
        assert_eq!(n.to_string(), format!("pb://{H}@127.0.0.1:3456/{SW}#v=1"));
        assert_eq!(urlsafe_b64_nopad(&n.spki_hash_bytes()), H);
        let n = Nurl::parse(&format!("pb://{H}@[::1]:80/{SW}#v=1")).unwrap();
        assert_eq!(
            (n.host.as_str(), n.authority()),
            ("::1", "[::1]:80".to_string())
        );
        let n = Nurl::parse(&format!("pb+tor://{H}@abcdef.onion:80/{SW}#v=1")).unwrap();
        assert_eq!(n.scheme, NurlScheme::Tor);
        assert!(!format!("{n:?}").contains(SW));
    }

    #[test]
    fn parse_bad() {
        let cases = [
            (format!("http://{H}@h:1/{SW}#v=1"), NurlError::Scheme),
            (
                format!("pb://{H}@h:1/{SW}"),
                NurlError::Version(String::new()),
            ),
            (
                format!("pb://{H}@h:1/{SW}#v=2"),
                NurlError::Version("v=2".into()),
            ),
            (format!("pb://{H}@h:1/{SW}?x=1#v=1"), NurlError::Query),
            (format!("pb://h:1/{SW}#v=1"), NurlError::NoAt),
            (
                format!("pb://abc@h:1/{SW}#v=1"),
                NurlError::SpkiHash("abc".into()),
            ),
            (
                format!("pb://{H}@h/{SW}#v=1"),
                NurlError::Port(String::new()),
            ),
            (
                format!("pb://{H}@h:0/{SW}#v=1"),
                NurlError::Port("0".into()),
            ),
            (
                format!("pb://{H}@h:65536/{SW}#v=1"),
                NurlError::Port("65536".into()),
            ),
            (
                format!("pb://{H}@h:+1/{SW}#v=1"),
                NurlError::Port("+1".into()),
            ),
            (
                format!("pb://{H}@:1/{SW}#v=1"),
                NurlError::Host(String::new()),
            ),
            (
                format!("pb://{H}@a b:1/{SW}#v=1"),
                NurlError::Host("a b".into()),
            ),
            (
                format!("pb://{H}@[zz]:1/{SW}#v=1"),
                NurlError::Host("zz".into()),
            ),
            (format!("pb://{H}@h:1#v=1"), NurlError::Swissnum),
            (format!("pb://{H}@h:1/#v=1"), NurlError::Swissnum),
            (format!("pb://{H}@h:1/a/b#v=1"), NurlError::Swissnum),
            (format!("pb://{H}@h:1/a%20b#v=1"), NurlError::Swissnum),
        ];
        for (text, want) in cases {
            assert_eq!(Nurl::parse(&text), Err(want), "{text}");
        }
        // last character carries 4 data bits and 2 zero bits: non-canonical refused
        let mut h = H.to_string();
        h.pop();
        h.push('V');
        assert_eq!(spki_hash_bytes(&h), None);
    }

    #[test]
    fn read_checks() {
        let req = ByteRange { start: 10, end: 20 };
        let oct = Some(b"application/octet-stream".as_slice());
        assert_eq!(
            check_read_response(req, 204, None, None),
            Ok(ReadBody::Empty)
        );
        assert_eq!(
            check_read_response(req, 206, oct, Some(b"bytes 10-14/*")),
            Ok(ReadBody::Exactly(5))
        );
        assert!(check_read_response(req, 206, oct, Some(b"bytes 10-20/*")).is_err());
        assert!(check_read_response(req, 206, oct, Some(b"bytes 11-14/*")).is_err());
        assert!(check_read_response(req, 206, oct, None).is_err());
        assert!(
            check_read_response(req, 206, Some(b"application/cbor"), Some(b"bytes 10-14/*"))
                .is_err()
        );
        assert!(check_read_response(req, 200, oct, None).is_err());
        assert!(is_cbor_content_type(Some(b"Application/CBOR; charset=x")));
        assert!(!is_cbor_content_type(Some(b"text/plain")));
        assert_eq!(error_body_text(b"abc\x01def", 4), "abc …");
    }
}

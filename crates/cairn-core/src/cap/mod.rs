//! Capabilities: one Rust type per Tahoe-LAFS 1.20 cap kind, and [`Cap`] over all of them
//! (`allmydata/uri.py`).
//!
//! | Kind | Text | Type |
//! |---|---|---|
//! | LIT file | `URI:LIT:<data>` | [`LitCap`] |
//! | CHK read / verify | `URI:CHK:`, `URI:CHK-Verifier:` | [`ChkReadCap`], [`ChkVerifyCap`] |
//! | SDMF write / read / verify | `URI:SSK:`, `URI:SSK-RO:`, `URI:SSK-Verifier:` | [`SdmfWriteCap`], [`SdmfReadCap`], [`SdmfVerifyCap`] |
//! | MDMF write / read / verify | `URI:MDMF:`, `URI:MDMF-RO:`, `URI:MDMF-Verifier:` | [`MdmfWriteCap`], [`MdmfReadCap`], [`MdmfVerifyCap`] |
//! | SDMF dir | `URI:DIR2:`, `URI:DIR2-RO:`, `URI:DIR2-Verifier:` | [`SdmfDirWriteCap`], [`SdmfDirReadCap`], [`SdmfDirVerifyCap`] |
//! | MDMF dir | `URI:DIR2-MDMF:`, `-MDMF-RO:`, `-MDMF-Verifier:` | [`MdmfDirWriteCap`], [`MdmfDirReadCap`], [`MdmfDirVerifyCap`] |
//! | CHK dir | `URI:DIR2-CHK:`, `URI:DIR2-CHK-Verifier:` | [`ChkDirCap`], [`ChkDirVerifyCap`] |
//! | LIT dir | `URI:DIR2-LIT:` | [`LitDirCap`] |
//!
//! Parsing follows Tahoe's `uri.from_string` exactly, including its leniencies, except
//! where noted:
//! - a leading `imm.` or `ro.` (one of them, `imm.` checked first) is stripped; a cap that
//!   the prefix forbids (a write cap under `ro.`, a mutable cap under `imm.`) is an error
//!   ([`CapError::MustBeReadonly`], [`CapError::MustBeDeepImmutable`]), checked before
//!   the rest of the cap, as Tahoe does;
//! - MDMF caps (`URI:MDMF*`, `URI:DIR2-MDMF*`) accept extra `:`-separated fields after the
//!   fingerprint (1.9-era `k:segsize` hints); they are dropped, and printing omits them,
//!   exactly like Tahoe's `to_string`;
//! - `URI:CHK-Verifier:` (and `URI:DIR2-CHK-Verifier:`) accepts any trailing text after the
//!   digits of the size field (Tahoe's regex is not anchored); it is dropped;
//! - caps anchored with `$` in Tahoe's regexes also accept one trailing `"\n"` (Python's
//!   `$` matches before a final newline); it is dropped;
//! - decimal numbers may have leading zeros (Python `int()`); printing is canonical;
//! - **stricter than Tahoe**: CHK parameters must satisfy `1 <= k <= N <= 256` and the size
//!   must fit a `u64` (Tahoe parses any integer; no Tahoe node ever produces such caps);
//!   the whole input may be at most [`MAX_CAP_LEN`] bytes.
//!
//! So `Cap::parse(s)?.to_string() == s` for every cap Tahoe prints; for the inputs above
//! the printed form is Tahoe's normalized `to_string()`.
//!
//! Secret-bearing parts (CHK key, writekey, readkey, LIT data) never appear in `Debug`.

mod dir;
mod dump;
mod immutable;
mod keys;
mod mutable;

use core::fmt;
use core::str::FromStr;

use thiserror::Error;

use crate::base32::{self, Base32Error};

pub use dir::{
    ChkDirCap, ChkDirVerifyCap, LitDirCap, MdmfDirReadCap, MdmfDirVerifyCap, MdmfDirWriteCap,
    SdmfDirReadCap, SdmfDirVerifyCap, SdmfDirWriteCap,
};
pub use dump::{dump_cap, dump_cap_with};
pub use immutable::{ChkReadCap, ChkVerifyCap, LitCap, MAX_SHARES};
pub use keys::{ChkKey, ReadKey, StorageIndex, WriteKey};
pub use mutable::{
    MdmfReadCap, MdmfVerifyCap, MdmfWriteCap, MutableFormat, SdmfReadCap, SdmfVerifyCap,
    SdmfWriteCap,
};

/// Longest cap text accepted by [`Cap::parse`], in bytes. Non-LIT caps are under 200
/// bytes; this bounds `URI:LIT:`/`URI:DIR2-LIT:` data to about 40 KiB (Tahoe itself only
/// makes LIT caps for content of at most 55 bytes).
pub const MAX_CAP_LEN: usize = 64 * 1024;

/// Why a string is not a cap.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CapError {
    /// Longer than [`MAX_CAP_LEN`]; nothing was decoded.
    #[error("cap is {len} bytes long, more than the maximum of {max}")]
    TooLong { len: usize, max: usize },
    /// Not valid UTF-8 (only from [`Cap::parse_bytes`]).
    #[error("cap is not valid UTF-8")]
    NotUtf8,
    /// Does not start with a known cap prefix. Holds at most the first two
    /// `:`-separated parts of the input (so no secret field is echoed back).
    #[error("unknown cap prefix {0:?}")]
    UnknownPrefix(String),
    /// A field is not canonical Tahoe base32 of the right length.
    #[error("bad base32 in {field}: {source}")]
    BadBase32 {
        field: &'static str,
        #[source]
        source: Base32Error,
    },
    /// The cap does not have the number of `:`-separated fields its kind needs.
    #[error("{kind} cap needs {expected} fields after the prefix, got {got}")]
    WrongFieldCount {
        kind: &'static str,
        expected: usize,
        got: usize,
    },
    /// A decimal field is empty or holds something other than ASCII digits.
    #[error("{field} is not a decimal number")]
    BadNumber { field: &'static str },
    /// A decimal field does not fit in 64 bits.
    #[error("{field} is too large")]
    NumberOutOfRange { field: &'static str },
    /// k = 0.
    #[error("needed shares (k) is 0")]
    ZeroNeededShares,
    /// k > N.
    #[error("needed shares k={k} exceeds total shares N={n}")]
    NeededExceedsTotal { k: u64, n: u64 },
    /// N > 256.
    #[error("total shares N={n} exceeds the maximum of 256")]
    TooManyShares { n: u64 },
    /// A write cap behind an `ro.` prefix (Tahoe `MustBeReadonlyError`).
    #[error("{kind} used in a read-only context")]
    MustBeReadonly { kind: &'static str },
    /// A mutable or writable cap behind an `imm.` prefix, or in a deep-immutable context
    /// (Tahoe `MustBeDeepImmutableError`).
    #[error("{kind} used in an immutable context")]
    MustBeDeepImmutable { kind: &'static str },
}

/// `Cap`, with a variant per kind, and `From` each kind's type.
macro_rules! cap_enum {
    ($($variant:ident($ty:ident)),* $(,)?) => {
        /// Any capability.
        #[derive(Clone, PartialEq, Eq, Hash, Debug)]
        pub enum Cap {
            $($variant($ty),)*
        }

        $(impl From<$ty> for Cap {
            fn from(c: $ty) -> Cap {
                Cap::$variant(c)
            }
        })*
    };
}

cap_enum!(
    Lit(LitCap),
    ChkRead(ChkReadCap),
    ChkVerify(ChkVerifyCap),
    SdmfWrite(SdmfWriteCap),
    SdmfRead(SdmfReadCap),
    SdmfVerify(SdmfVerifyCap),
    MdmfWrite(MdmfWriteCap),
    MdmfRead(MdmfReadCap),
    MdmfVerify(MdmfVerifyCap),
    SdmfDirWrite(SdmfDirWriteCap),
    SdmfDirRead(SdmfDirReadCap),
    SdmfDirVerify(SdmfDirVerifyCap),
    MdmfDirWrite(MdmfDirWriteCap),
    MdmfDirRead(MdmfDirReadCap),
    MdmfDirVerify(MdmfDirVerifyCap),
    ChkDir(ChkDirCap),
    ChkDirVerify(ChkDirVerifyCap),
    LitDir(LitDirCap),
);

/// The cap kinds, in the order `uri.from_string` tests them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ChkRead,
    ChkVerify,
    Lit,
    SdmfWrite,
    SdmfRead,
    SdmfVerify,
    MdmfWrite,
    MdmfRead,
    MdmfVerify,
    SdmfDirWrite,
    SdmfDirRead,
    SdmfDirVerify,
    ChkDir,
    ChkDirVerify,
    LitDir,
    MdmfDirWrite,
    MdmfDirRead,
    MdmfDirVerify,
}

/// Prefix -> kind, in `from_string` order (each prefix ends in `:`, so none shadows another).
const PREFIXES: &[(&str, Kind)] = &[
    ("URI:CHK:", Kind::ChkRead),
    ("URI:CHK-Verifier:", Kind::ChkVerify),
    ("URI:LIT:", Kind::Lit),
    ("URI:SSK:", Kind::SdmfWrite),
    ("URI:SSK-RO:", Kind::SdmfRead),
    ("URI:SSK-Verifier:", Kind::SdmfVerify),
    ("URI:MDMF:", Kind::MdmfWrite),
    ("URI:MDMF-RO:", Kind::MdmfRead),
    ("URI:MDMF-Verifier:", Kind::MdmfVerify),
    ("URI:DIR2:", Kind::SdmfDirWrite),
    ("URI:DIR2-RO:", Kind::SdmfDirRead),
    ("URI:DIR2-Verifier:", Kind::SdmfDirVerify),
    ("URI:DIR2-CHK:", Kind::ChkDir),
    ("URI:DIR2-CHK-Verifier:", Kind::ChkDirVerify),
    ("URI:DIR2-LIT:", Kind::LitDir),
    ("URI:DIR2-MDMF:", Kind::MdmfDirWrite),
    ("URI:DIR2-MDMF-RO:", Kind::MdmfDirRead),
    ("URI:DIR2-MDMF-Verifier:", Kind::MdmfDirVerify),
];

impl Kind {
    /// Tahoe's description for a write cap (must not be writable under `ro.`/`imm.`).
    fn writecap_desc(self) -> Option<&'static str> {
        match self {
            Kind::SdmfWrite => Some("URI:SSK file writecap"),
            Kind::MdmfWrite => Some("URI:MDMF file writecap"),
            Kind::SdmfDirWrite => Some("URI:DIR2 directory writecap"),
            Kind::MdmfDirWrite => Some("URI:DIR2-MDMF directory writecap"),
            _ => None,
        }
    }

    /// Tahoe's description for a mutable read cap (forbidden under `imm.`).
    fn mutable_readcap_desc(self) -> Option<&'static str> {
        match self {
            Kind::SdmfRead => Some("URI:SSK-RO readcap to a mutable file"),
            Kind::MdmfRead => Some("URI:MDMF-RO readcap to a mutable file"),
            Kind::SdmfDirRead => Some("URI:DIR2-RO readcap to a mutable directory"),
            Kind::MdmfDirRead => Some("URI:DIR2-MDMF-RO readcap to a mutable directory"),
            _ => None,
        }
    }
}

/// Python's `$` (no MULTILINE): matches at the end or before one final `"\n"`.
fn strip_dollar(s: &str) -> &str {
    s.strip_suffix('\n').unwrap_or(s)
}

fn b32_16(field: &'static str, text: &str) -> Result<[u8; 16], CapError> {
    base32::decode_array::<16>(text).map_err(|source| CapError::BadBase32 { field, source })
}

fn b32_32(field: &'static str, text: &str) -> Result<[u8; 32], CapError> {
    base32::decode_array::<32>(text).map_err(|source| CapError::BadBase32 { field, source })
}

/// `[0-9]+` then Python `int()`; must fit a u64.
fn number(field: &'static str, text: &str) -> Result<u64, CapError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CapError::BadNumber { field });
    }
    text.parse::<u64>()
        .map_err(|_| CapError::NumberOutOfRange { field })
}

fn split_exact<'a, const N: usize>(
    kind: &'static str,
    body: &'a str,
) -> Result<[&'a str; N], CapError> {
    let mut out = [""; N];
    let mut got = 0;
    for part in body.split(':') {
        if got < N {
            out[got] = part;
        }
        got += 1;
    }
    if got != N {
        return Err(CapError::WrongFieldCount {
            kind,
            expected: N,
            got,
        });
    }
    Ok(out)
}

fn count_fields(body: &str) -> usize {
    body.split(':').count()
}

fn chk_fields(k: &str, n: &str, size: &str) -> Result<(u16, u16, u64), CapError> {
    let k = number("needed shares", k)?;
    let n = number("total shares", n)?;
    let size = number("size", size)?;
    let (k, n) = immutable::check_params(k, n)?;
    Ok((k, n, size))
}

fn parse_chk_read(kind: &'static str, body: &str) -> Result<ChkReadCap, CapError> {
    let [key, ueb, k, n, size] = split_exact::<5>(kind, strip_dollar(body))?;
    let key = b32_16("key", key)?;
    let ueb = b32_32("UEB hash", ueb)?;
    let (k, n, size) = chk_fields(k, n, size)?;
    ChkReadCap::new(key, ueb, k, n, size)
}

fn parse_chk_verify(kind: &'static str, body: &str) -> Result<ChkVerifyCap, CapError> {
    // Tahoe's regex has no `$`: after the digits of the size, anything may follow.
    let mut parts = body.splitn(5, ':');
    let fields: [&str; 5] = core::array::from_fn(|_| parts.next().unwrap_or(""));
    let got = count_fields(body);
    if got < 5 {
        return Err(CapError::WrongFieldCount {
            kind,
            expected: 5,
            got,
        });
    }
    let [si, ueb, k, n, rest] = fields;
    let si = b32_16("storage index", si)?;
    let ueb = b32_32("UEB hash", ueb)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (k, n, size) = chk_fields(k, n, &rest[..digits])?;
    ChkVerifyCap::new(StorageIndex(si), ueb, k, n, size)
}

fn parse_lit(body: &str) -> Result<LitCap, CapError> {
    let data = base32::decode(strip_dollar(body)).map_err(|source| CapError::BadBase32 {
        field: "data",
        source,
    })?;
    Ok(LitCap::new(data))
}

/// SSK caps: `<key16>:<fp32>$`.
fn parse_ssk(
    kind: &'static str,
    key_field: &'static str,
    body: &str,
) -> Result<([u8; 16], [u8; 32]), CapError> {
    let [key, fp] = split_exact::<2>(kind, strip_dollar(body))?;
    Ok((b32_16(key_field, key)?, b32_32("fingerprint", fp)?))
}

/// MDMF caps: `<key16>:<fp32>(:|$)` — anything after a further `:` is ignored.
fn parse_mdmf(
    kind: &'static str,
    key_field: &'static str,
    body: &str,
) -> Result<([u8; 16], [u8; 32]), CapError> {
    let mut parts = body.splitn(3, ':');
    let key = parts.next().unwrap_or("");
    let Some(fp) = parts.next() else {
        return Err(CapError::WrongFieldCount {
            kind,
            expected: 2,
            got: 1,
        });
    };
    let fp = if parts.next().is_some() {
        fp
    } else {
        strip_dollar(fp)
    };
    Ok((b32_16(key_field, key)?, b32_32("fingerprint", fp)?))
}

impl Cap {
    /// Parse any cap (Tahoe `uri.from_string`). Never panics.
    pub fn parse(s: &str) -> Result<Cap, CapError> {
        Self::parse_inner(s, false)
    }

    /// Parse a cap met in a deep-immutable context (a child of an immutable directory,
    /// `from_string(s, deep_immutable=True)`): mutable and writable caps are refused.
    pub fn parse_deep_immutable(s: &str) -> Result<Cap, CapError> {
        Self::parse_inner(s, true)
    }

    /// Parse a cap given as bytes (must be UTF-8).
    pub fn parse_bytes(b: &[u8]) -> Result<Cap, CapError> {
        if b.len() > MAX_CAP_LEN {
            return Err(CapError::TooLong {
                len: b.len(),
                max: MAX_CAP_LEN,
            });
        }
        let s = core::str::from_utf8(b).map_err(|_| CapError::NotUtf8)?;
        Self::parse(s)
    }

    fn parse_inner(input: &str, deep_immutable: bool) -> Result<Cap, CapError> {
        if input.len() > MAX_CAP_LEN {
            return Err(CapError::TooLong {
                len: input.len(),
                max: MAX_CAP_LEN,
            });
        }
        let mut can_be_mutable = !deep_immutable;
        let mut can_be_writeable = !deep_immutable;
        let mut s = input;
        if let Some(rest) = s.strip_prefix("imm.") {
            can_be_mutable = false;
            can_be_writeable = false;
            s = rest;
        } else if let Some(rest) = s.strip_prefix("ro.") {
            can_be_writeable = false;
            s = rest;
        }

        let Some(&(prefix, kind)) = PREFIXES.iter().find(|(p, _)| s.starts_with(p)) else {
            return Err(CapError::UnknownPrefix(shown_prefix(input)));
        };
        let body = &s[prefix.len()..];

        let forbidden = if let Some(desc) = kind.writecap_desc() {
            (!can_be_writeable).then_some(desc)
        } else if let Some(desc) = kind.mutable_readcap_desc() {
            (!can_be_mutable).then_some(desc)
        } else {
            None
        };
        if let Some(desc) = forbidden {
            // Tahoe reports the most specific constraint.
            return Err(if !can_be_mutable {
                CapError::MustBeDeepImmutable { kind: desc }
            } else {
                CapError::MustBeReadonly { kind: desc }
            });
        }

        let name = &prefix[..prefix.len() - 1];
        Ok(match kind {
            Kind::ChkRead => Cap::ChkRead(parse_chk_read(name, body)?),
            Kind::ChkVerify => Cap::ChkVerify(parse_chk_verify(name, body)?),
            Kind::Lit => Cap::Lit(parse_lit(body)?),
            Kind::SdmfWrite => {
                let (k, fp) = parse_ssk(name, "writekey", body)?;
                Cap::SdmfWrite(SdmfWriteCap::new(k, fp))
            }
            Kind::SdmfRead => {
                let (k, fp) = parse_ssk(name, "readkey", body)?;
                Cap::SdmfRead(SdmfReadCap::new(k, fp))
            }
            Kind::SdmfVerify => {
                let (k, fp) = parse_ssk(name, "storage index", body)?;
                Cap::SdmfVerify(SdmfVerifyCap::new(StorageIndex(k), fp))
            }
            Kind::MdmfWrite => {
                let (k, fp) = parse_mdmf(name, "writekey", body)?;
                Cap::MdmfWrite(MdmfWriteCap::new(k, fp))
            }
            Kind::MdmfRead => {
                let (k, fp) = parse_mdmf(name, "readkey", body)?;
                Cap::MdmfRead(MdmfReadCap::new(k, fp))
            }
            Kind::MdmfVerify => {
                let (k, fp) = parse_mdmf(name, "storage index", body)?;
                Cap::MdmfVerify(MdmfVerifyCap::new(StorageIndex(k), fp))
            }
            Kind::SdmfDirWrite => {
                let (k, fp) = parse_ssk(name, "writekey", body)?;
                Cap::SdmfDirWrite(SdmfDirWriteCap::new(SdmfWriteCap::new(k, fp)))
            }
            Kind::SdmfDirRead => {
                let (k, fp) = parse_ssk(name, "readkey", body)?;
                Cap::SdmfDirRead(SdmfDirReadCap::new(SdmfReadCap::new(k, fp)))
            }
            Kind::SdmfDirVerify => {
                let (k, fp) = parse_ssk(name, "storage index", body)?;
                Cap::SdmfDirVerify(SdmfDirVerifyCap::new(SdmfVerifyCap::new(
                    StorageIndex(k),
                    fp,
                )))
            }
            Kind::MdmfDirWrite => {
                let (k, fp) = parse_mdmf(name, "writekey", body)?;
                Cap::MdmfDirWrite(MdmfDirWriteCap::new(MdmfWriteCap::new(k, fp)))
            }
            Kind::MdmfDirRead => {
                let (k, fp) = parse_mdmf(name, "readkey", body)?;
                Cap::MdmfDirRead(MdmfDirReadCap::new(MdmfReadCap::new(k, fp)))
            }
            Kind::MdmfDirVerify => {
                let (k, fp) = parse_mdmf(name, "storage index", body)?;
                Cap::MdmfDirVerify(MdmfDirVerifyCap::new(MdmfVerifyCap::new(
                    StorageIndex(k),
                    fp,
                )))
            }
            Kind::ChkDir => Cap::ChkDir(ChkDirCap::new(parse_chk_read(name, body)?)),
            Kind::ChkDirVerify => {
                Cap::ChkDirVerify(ChkDirVerifyCap::new(parse_chk_verify(name, body)?))
            }
            Kind::LitDir => Cap::LitDir(LitDirCap::new(parse_lit(body)?)),
        })
    }

    /// Tahoe's class name for this kind (`CHKFileURI`, `WriteableSSKFileURI`, ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Cap::Lit(_) => "LiteralFileURI",
            Cap::ChkRead(_) => "CHKFileURI",
            Cap::ChkVerify(_) => "CHKFileVerifierURI",
            Cap::SdmfWrite(_) => "WriteableSSKFileURI",
            Cap::SdmfRead(_) => "ReadonlySSKFileURI",
            Cap::SdmfVerify(_) => "SSKVerifierURI",
            Cap::MdmfWrite(_) => "WriteableMDMFFileURI",
            Cap::MdmfRead(_) => "ReadonlyMDMFFileURI",
            Cap::MdmfVerify(_) => "MDMFVerifierURI",
            Cap::SdmfDirWrite(_) => "DirectoryURI",
            Cap::SdmfDirRead(_) => "ReadonlyDirectoryURI",
            Cap::SdmfDirVerify(_) => "DirectoryURIVerifier",
            Cap::MdmfDirWrite(_) => "MDMFDirectoryURI",
            Cap::MdmfDirRead(_) => "ReadonlyMDMFDirectoryURI",
            Cap::MdmfDirVerify(_) => "MDMFDirectoryURIVerifier",
            Cap::ChkDir(_) => "ImmutableDirectoryURI",
            Cap::ChkDirVerify(_) => "ImmutableDirectoryURIVerifier",
            Cap::LitDir(_) => "LiteralDirectoryURI",
        }
    }

    /// The read-only form (`get_readonly`): itself for caps that are already read-only
    /// (including verify caps and LIT). `Some` for every kind; `Option` mirrors Tahoe,
    /// where unknown caps have none.
    pub fn readonly(&self) -> Option<Cap> {
        Some(match self {
            Cap::SdmfWrite(c) => Cap::SdmfRead(c.readonly()),
            Cap::MdmfWrite(c) => Cap::MdmfRead(c.readonly()),
            Cap::SdmfDirWrite(c) => Cap::SdmfDirRead(c.readonly()),
            Cap::MdmfDirWrite(c) => Cap::MdmfDirRead(c.readonly()),
            other => other.clone(),
        })
    }

    /// The verify cap (`get_verify_cap`): itself for verify caps, `None` for LIT files
    /// and LIT directories.
    pub fn verifier(&self) -> Option<Cap> {
        Some(match self {
            Cap::Lit(_) | Cap::LitDir(_) => return None,
            Cap::ChkRead(c) => Cap::ChkVerify(c.verifier()),
            Cap::SdmfWrite(c) => Cap::SdmfVerify(c.verifier()),
            Cap::SdmfRead(c) => Cap::SdmfVerify(c.verifier()),
            Cap::MdmfWrite(c) => Cap::MdmfVerify(c.verifier()),
            Cap::MdmfRead(c) => Cap::MdmfVerify(c.verifier()),
            Cap::SdmfDirWrite(c) => Cap::SdmfDirVerify(c.verifier()),
            Cap::SdmfDirRead(c) => Cap::SdmfDirVerify(c.verifier()),
            Cap::MdmfDirWrite(c) => Cap::MdmfDirVerify(c.verifier()),
            Cap::MdmfDirRead(c) => Cap::MdmfDirVerify(c.verifier()),
            Cap::ChkDir(c) => Cap::ChkDirVerify(c.verifier()),
            Cap::ChkVerify(_)
            | Cap::SdmfVerify(_)
            | Cap::MdmfVerify(_)
            | Cap::SdmfDirVerify(_)
            | Cap::MdmfDirVerify(_)
            | Cap::ChkDirVerify(_) => self.clone(),
        })
    }

    /// The storage index; `None` for LIT files and LIT directories.
    pub fn storage_index(&self) -> Option<StorageIndex> {
        Some(match self {
            Cap::Lit(_) | Cap::LitDir(_) => return None,
            Cap::ChkRead(c) => c.storage_index(),
            Cap::ChkVerify(c) => c.storage_index(),
            Cap::SdmfWrite(c) => c.storage_index(),
            Cap::SdmfRead(c) => c.storage_index(),
            Cap::SdmfVerify(c) => c.storage_index(),
            Cap::MdmfWrite(c) => c.storage_index(),
            Cap::MdmfRead(c) => c.storage_index(),
            Cap::MdmfVerify(c) => c.storage_index(),
            Cap::SdmfDirWrite(c) => c.storage_index(),
            Cap::SdmfDirRead(c) => c.storage_index(),
            Cap::SdmfDirVerify(c) => c.storage_index(),
            Cap::MdmfDirWrite(c) => c.storage_index(),
            Cap::MdmfDirRead(c) => c.storage_index(),
            Cap::MdmfDirVerify(c) => c.storage_index(),
            Cap::ChkDir(c) => c.storage_index(),
            Cap::ChkDirVerify(c) => c.storage_index(),
        })
    }

    /// Tahoe `is_mutable()`: true for mutable write and read caps (files and
    /// directories); false for immutable caps and for every verify cap.
    pub fn is_mutable(&self) -> bool {
        matches!(
            self,
            Cap::SdmfWrite(_)
                | Cap::SdmfRead(_)
                | Cap::MdmfWrite(_)
                | Cap::MdmfRead(_)
                | Cap::SdmfDirWrite(_)
                | Cap::SdmfDirRead(_)
                | Cap::MdmfDirWrite(_)
                | Cap::MdmfDirRead(_)
        )
    }

    /// Tahoe `is_readonly()`: false only for write caps.
    pub fn is_readonly(&self) -> bool {
        !matches!(
            self,
            Cap::SdmfWrite(_) | Cap::MdmfWrite(_) | Cap::SdmfDirWrite(_) | Cap::MdmfDirWrite(_)
        )
    }

    /// Whether this is a directory cap (`URI:DIR2*`).
    pub fn is_directory(&self) -> bool {
        matches!(
            self,
            Cap::SdmfDirWrite(_)
                | Cap::SdmfDirRead(_)
                | Cap::SdmfDirVerify(_)
                | Cap::MdmfDirWrite(_)
                | Cap::MdmfDirRead(_)
                | Cap::MdmfDirVerify(_)
                | Cap::ChkDir(_)
                | Cap::ChkDirVerify(_)
                | Cap::LitDir(_)
        )
    }

    /// Whether this is a verify cap.
    pub fn is_verifier(&self) -> bool {
        matches!(
            self,
            Cap::ChkVerify(_)
                | Cap::SdmfVerify(_)
                | Cap::MdmfVerify(_)
                | Cap::SdmfDirVerify(_)
                | Cap::MdmfDirVerify(_)
                | Cap::ChkDirVerify(_)
        )
    }

    /// The mutable format, for mutable file/directory caps (including their verify caps).
    pub fn mutable_format(&self) -> Option<MutableFormat> {
        match self {
            Cap::SdmfWrite(_)
            | Cap::SdmfRead(_)
            | Cap::SdmfVerify(_)
            | Cap::SdmfDirWrite(_)
            | Cap::SdmfDirRead(_)
            | Cap::SdmfDirVerify(_) => Some(MutableFormat::Sdmf),
            Cap::MdmfWrite(_)
            | Cap::MdmfRead(_)
            | Cap::MdmfVerify(_)
            | Cap::MdmfDirWrite(_)
            | Cap::MdmfDirRead(_)
            | Cap::MdmfDirVerify(_) => Some(MutableFormat::Mdmf),
            _ => None,
        }
    }
}

/// The part of an unparseable input safe to echo in an error: at most its first two
/// `:`-separated parts, at most 40 characters.
fn shown_prefix(input: &str) -> String {
    let end = input
        .match_indices(':')
        .nth(1)
        .map_or(input.len(), |(i, _)| i);
    input[..end].chars().take(40).collect()
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cap::Lit(c) => c.fmt(f),
            Cap::ChkRead(c) => c.fmt(f),
            Cap::ChkVerify(c) => c.fmt(f),
            Cap::SdmfWrite(c) => c.fmt(f),
            Cap::SdmfRead(c) => c.fmt(f),
            Cap::SdmfVerify(c) => c.fmt(f),
            Cap::MdmfWrite(c) => c.fmt(f),
            Cap::MdmfRead(c) => c.fmt(f),
            Cap::MdmfVerify(c) => c.fmt(f),
            Cap::SdmfDirWrite(c) => c.fmt(f),
            Cap::SdmfDirRead(c) => c.fmt(f),
            Cap::SdmfDirVerify(c) => c.fmt(f),
            Cap::MdmfDirWrite(c) => c.fmt(f),
            Cap::MdmfDirRead(c) => c.fmt(f),
            Cap::MdmfDirVerify(c) => c.fmt(f),
            Cap::ChkDir(c) => c.fmt(f),
            Cap::ChkDirVerify(c) => c.fmt(f),
            Cap::LitDir(c) => c.fmt(f),
        }
    }
}

impl FromStr for Cap {
    type Err = CapError;

    fn from_str(s: &str) -> Result<Cap, CapError> {
        Cap::parse(s)
    }
}

#[cfg(test)]
mod tests;

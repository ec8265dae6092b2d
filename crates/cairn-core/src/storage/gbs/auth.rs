//! `Authorization` (the swissnum) and `X-Tahoe-Authorization` (the secrets).

use super::*;

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

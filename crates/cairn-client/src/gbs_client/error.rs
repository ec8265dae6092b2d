//! `GbsClientError`: a failed storage-server request, classified by fault.

use super::*;

/// A failed storage-server request. `server` is `host:port` (never the swissnum).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GbsClientError {
    #[error("storage server {server}: network error: {message}")]
    Network { server: String, message: String },
    #[error("storage server {server}: no complete answer within {after:?}")]
    Timeout { server: String, after: Duration },
    #[error("storage server {server}: TLS certificate does not match the NURL's pin (expected SPKI hash {expected}, got {got})")]
    PinMismatch {
        server: String,
        expected: String,
        got: String,
    },
    #[error("storage server {server}: TLS handshake failed: {message}")]
    Tls { server: String, message: String },
    #[error("storage server {server}: HTTP {status}: {message}")]
    Status {
        server: String,
        status: u16,
        message: String,
    },
    #[error("storage server {server}: malformed response: {message}")]
    Malformed { server: String, message: String },
    #[error("storage server {server}: response body larger than {limit} bytes")]
    TooLarge { server: String, limit: usize },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl GbsClientError {
    pub fn fault(&self) -> Fault {
        match self {
            GbsClientError::Network { .. } | GbsClientError::Timeout { .. } => Fault::Network,
            GbsClientError::PinMismatch { .. } => Fault::Identity,
            GbsClientError::Tls { .. }
            | GbsClientError::Malformed { .. }
            | GbsClientError::TooLarge { .. } => Fault::Server,
            GbsClientError::Status { status, .. } => match status {
                500..=599 => Fault::Server,
                400 | 406 | 413 | 415 | 416 => Fault::Client,
                _ => Fault::Refused,
            },
            GbsClientError::InvalidRequest(_) | GbsClientError::Unsupported(_) => Fault::Client,
        }
    }

    /// The HTTP status the server answered with, if it answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            GbsClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth retrying an idempotent request: network failures, timeouts, 502/503/504.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GbsClientError::Network { .. } | GbsClientError::Timeout { .. }
        ) || matches!(self.status(), Some(502..=504))
    }

    /// 404: no such share / upload / storage index.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// A read-test-write answered 401: the write enabler does not match the existing share.
    pub fn is_bad_write_enabler(&self) -> bool {
        self.status() == Some(401)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults() {
        let s = |status| GbsClientError::Status {
            server: "h:1".into(),
            status,
            message: String::new(),
        };
        assert_eq!(s(500).fault(), Fault::Server);
        assert_eq!(s(400).fault(), Fault::Client);
        assert_eq!(s(409).fault(), Fault::Refused);
        assert!(s(503).is_transient() && !s(500).is_transient() && !s(404).is_transient());
        assert!(s(401).is_bad_write_enabler() && s(404).is_not_found());
        let p = GbsClientError::PinMismatch {
            server: "h:1".into(),
            expected: "a".into(),
            got: "b".into(),
        };
        assert_eq!(p.fault(), Fault::Identity);
        assert!(!p.is_transient());
    }
}

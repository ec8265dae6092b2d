//! A client for one storage server over Tahoe's HTTP storage protocol (compat map §5).
//!
//! Transport, as Tahoe 1.20's `http_client.py` (`StorageClientFactory`, `_TLSContextFactory`):
//! TLS with **no CA, no hostname check and no SNI**; the server's certificate is accepted —
//! expired, not yet valid, self-signed, X.509 v1 — if and only if the SHA-256 of its
//! SubjectPublicKeyInfo equals the NURL's pin. cairn speaks TLS 1.3 only and verifies the
//! handshake signature against the pinned key itself (rustls' webpki cannot parse Tahoe's v1
//! certificates); Tahoe servers (OpenSSL) support TLS 1.3.
//!
//! HTTP/1.1 over a small per-server pool of persistent connections (hyper-util's pool with a
//! pinned-TLS connector). Every request has a timeout covering connect, TLS, headers and
//! body. Idempotent requests (version, list, read) are retried a bounded number of times, with
//! exponential backoff, on network failures, timeouts and 502/503/504; writes (allocate,
//! PATCH, abort, read-test-write, lease, corrupt) are never retried by this layer. Response
//! bodies are capped as in Tahoe: 30 MiB for CBOR, 10 000 bytes for error bodies, and share
//! reads at the length asked for.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cairn_core::storage::gbs::{
    self, AllocateRequest, AllocateResponse, ByteRange, CorruptRequest, RtwRequest, RtwResponse,
    Secrets, ShareNum, VersionResponse, CBOR_MIME_TYPE,
};
use cairn_core::storage::gbs_client_support::{
    check_read_response, error_body_text, is_cbor_content_type, spki_from_cert, spki_hash_of, Nurl,
    NurlScheme, ReadBody,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::Instant;

mod error;
mod immutable;
mod mutable;
mod pool;
mod retry;
mod secrets;
mod send;
mod server;
mod shares;
mod tls;

/// Whose fault a failure is (for scoring servers): defined in the core, with the machines
/// whose failure events carry it.
pub use cairn_core::client::machine::Fault;
pub use cairn_core::ids::StorageIndex;
pub use error::GbsClientError;
pub use immutable::WriteResult;
pub use retry::RetryPolicy;
pub use secrets::{new_upload_secret, LeaseSecrets};
pub use tls::pinned_tls_config;

use pool::*;
use secrets::*;
use send::*;
use tls::*;

/// Tahoe's cap on CBOR response bodies (`limited_content`'s default).
pub const MAX_CBOR_RESPONSE: usize = 30 * 1024 * 1024;
/// Tahoe's cap on error bodies (`StorageClient.request`).
pub const MAX_ERROR_BODY: usize = 10_000;

/// Client settings; the defaults are Tahoe's.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// One attempt of one request: connect + TLS + response headers + body. Tahoe: 60 s.
    pub request_timeout: Duration,
    /// TCP connect + TLS handshake (also bounded by `request_timeout`).
    pub connect_timeout: Duration,
    /// Idle persistent connections kept per server. Tahoe: 10.
    pub max_idle_per_server: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    pub retry: RetryPolicy,
    /// Cap for CBOR response bodies.
    pub max_cbor_response: usize,
    /// Cap for error bodies (longer ones are cut, not refused).
    pub max_error_body: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            max_idle_per_server: 10,
            idle_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            max_cbor_response: MAX_CBOR_RESPONSE,
            max_error_body: MAX_ERROR_BODY,
        }
    }
}

/// Counters, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// TCP connections opened (each then does one TLS handshake).
    pub connections_opened: u64,
    /// Request attempts sent (retries included).
    pub attempts: u64,
    /// Retries made.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    attempts: AtomicU64,
    retries: AtomicU64,
}

/// A client for one storage server (one NURL). Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct GbsClient {
    inner: Arc<Inner>,
}

struct Inner {
    connector: PinnedConnector,
    /// Idle connections, most recently used last.
    idle: Mutex<Vec<(Sender, Instant)>>,
    host_header: HeaderValue,
    server: String,
    auth: HeaderValue,
    opts: ClientOptions,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for GbsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GbsClient")
            .field("server", &self.inner.server)
            .finish_non_exhaustive()
    }
}

impl GbsClient {
    /// A client for the server a NURL names. Needs a Tokio runtime when requests are made,
    /// not here. `pb+tor` NURLs are refused (no Tor support yet).
    pub fn new(nurl: &Nurl, opts: ClientOptions) -> Result<GbsClient, GbsClientError> {
        if nurl.scheme == NurlScheme::Tor {
            return Err(GbsClientError::Unsupported(format!(
                "Tor NURLs (pb+tor://…@{})",
                nurl.authority()
            )));
        }
        let server = nurl.authority();
        let host_header = HeaderValue::from_str(&server)
            .map_err(|e| GbsClientError::InvalidRequest(format!("NURL host {server}: {e}")))?;
        let tls = pinned_tls_config(&nurl.spki_hash)?;
        let counters = Arc::new(Counters::default());
        let server_name = ServerName::try_from(nurl.host.clone())
            // SNI is off and the SPKI pin is the whole check: any name will do.
            .unwrap_or_else(|_| {
                ServerName::from(std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST))
            });
        let connector = PinnedConnector {
            host: nurl.host.clone(),
            port: nurl.port,
            server_name,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            connect_timeout: opts.connect_timeout,
            counters: counters.clone(),
            expected: nurl.spki_hash.clone(),
        };
        let auth = HeaderValue::from_str(&gbs::authorization_header(nurl.swissnum.as_bytes()))
            .map_err(|e| GbsClientError::InvalidRequest(format!("swissnum: {e}")))?;
        Ok(GbsClient {
            inner: Arc::new(Inner {
                connector,
                idle: Mutex::new(Vec::new()),
                host_header,
                server,
                auth,
                opts,
                counters,
            }),
        })
    }

    /// Parse a NURL and make a client for it.
    pub fn from_nurl_str(nurl: &str, opts: ClientOptions) -> Result<GbsClient, GbsClientError> {
        let nurl = Nurl::parse(nurl).map_err(|e| GbsClientError::InvalidRequest(e.to_string()))?;
        Self::new(&nurl, opts)
    }

    /// `host:port` of the server.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            connections_opened: c.connections.load(Ordering::Relaxed),
            attempts: c.attempts.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }
}

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

/// Tahoe's cap on CBOR response bodies (`limited_content`'s default).
pub const MAX_CBOR_RESPONSE: usize = 30 * 1024 * 1024;
/// Tahoe's cap on error bodies (`StorageClient.request`).
pub const MAX_ERROR_BODY: usize = 10_000;

/// Retries of idempotent requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = no retries).
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Default::default()
        }
    }

    fn backoff(&self, retry: u32) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX));
        let base = base.min(self.max_backoff);
        // up to +25 % jitter so that many clients do not retry in lockstep
        let jitter = base.mul_f64(rand::random::<f64>() * 0.25);
        (base + jitter).min(self.max_backoff.max(base))
    }
}

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

/// Whose fault a failure is (for scoring servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The server could not be reached or did not answer in time: maybe transient.
    Network,
    /// The server is not the one the NURL names (SPKI pin mismatch): never trust it.
    Identity,
    /// The server answered wrongly: 5xx, a broken TLS handshake, a response that violates the
    /// protocol or is too large.
    Server,
    /// The server answered correctly and said no (401, 404, 405, 409, …): about this request
    /// and the server's state, not the server's health.
    Refused,
    /// Our request was bad (400, 406, 413, 415, 416, or refused before sending).
    Client,
}

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

/// Answer to a PATCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// 201: the share is complete (the last missing byte arrived).
    pub finished: bool,
    /// Ranges of the share still missing (empty when finished).
    pub required: Vec<ByteRange>,
}

/// The lease secrets sent with allocate, lease and read-test-write requests.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseSecrets {
    pub renew: [u8; 32],
    pub cancel: [u8; 32],
}

/// The request secrets that carry a lease's renew and cancel secrets.
fn lease_secrets(lease: &LeaseSecrets) -> Secrets {
    Secrets {
        lease_renew: Some(lease.renew),
        lease_cancel: Some(lease.cancel),
        ..Default::default()
    }
}

/// The request secrets that carry an upload secret.
fn upload_secrets(upload_secret: &[u8]) -> Secrets {
    Secrets {
        upload: Some(upload_secret.to_vec()),
        ..Default::default()
    }
}

impl std::fmt::Debug for LeaseSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseSecrets(..)")
    }
}

/// A fresh upload secret: 20 random bytes per allocate call, as Tahoe's client makes them.
pub fn new_upload_secret() -> [u8; 20] {
    rand::random()
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

/// What a successful response must look like.
enum Expect {
    /// CBOR body with one of these statuses.
    Cbor(&'static [u16]),
    /// Any (small) body, ignored, with one of these statuses.
    Empty(&'static [u16]),
    /// A share read of this range.
    Read(ByteRange),
}

struct Req {
    method: Method,
    path: String,
    headers: Vec<(HeaderName, String)>,
    body: Bytes,
    cbor_body: bool,
    idempotent: bool,
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

    // ---------------------------------------------------------------------------------
    // General

    /// `GET /storage/v1/version`.
    pub async fn version(&self) -> Result<VersionResponse, GbsClientError> {
        let body = self
            .cbor(Req::get("/storage/v1/version".into()), &[200])
            .await?;
        VersionResponse::parse(&body).map_err(|e| self.malformed(format!("version: {e}")))
    }

    /// `PUT /storage/v1/lease/:si`: add a lease, or renew the one with this renew secret.
    /// 204 → Ok; 404 (no shares at all) is an error (Tahoe's storage client ignores it).
    pub async fn add_or_renew_lease(
        &self,
        si: &[u8; 16],
        lease: &LeaseSecrets,
    ) -> Result<(), GbsClientError> {
        let path = format!("/storage/v1/lease/{}", si_str(si));
        self.put_empty(path, &lease_secrets(lease), &[204]).await
    }

    // ---------------------------------------------------------------------------------
    // Immutable

    /// `POST /storage/v1/immutable/:si`: allocate buckets for `share_numbers` of
    /// `allocated_size` bytes each. Use one fresh upload secret per call
    /// ([`new_upload_secret`]) and the same one for its writes.
    pub async fn allocate_buckets(
        &self,
        si: &[u8; 16],
        lease: &LeaseSecrets,
        upload_secret: &[u8],
        share_numbers: &BTreeSet<ShareNum>,
        allocated_size: u64,
    ) -> Result<AllocateResponse, GbsClientError> {
        check_upload_secret(upload_secret)?;
        let secrets = Secrets {
            upload: Some(upload_secret.to_vec()),
            ..lease_secrets(lease)
        };
        let body = AllocateRequest {
            share_numbers: share_numbers.clone(),
            allocated_size,
        }
        .encode();
        let req = Req::new(
            Method::POST,
            format!("/storage/v1/immutable/{}", si_str(si)),
            false,
        )
        .secrets(&secrets)
        .cbor(body);
        let body = self.cbor(req, &[200]).await?;
        AllocateResponse::parse(&body).map_err(|e| self.malformed(format!("allocate: {e}")))
    }

    /// `PATCH /storage/v1/immutable/:si/:shnum` with `Content-Range: bytes a-b/*`. Not
    /// retried: a caller that retries must know the write is idempotent (identical bytes
    /// at the same offset are accepted again by the server).
    pub async fn write_share_chunk(
        &self,
        si: &[u8; 16],
        shnum: ShareNum,
        upload_secret: &[u8],
        offset: u64,
        data: impl Into<Bytes>,
    ) -> Result<WriteResult, GbsClientError> {
        check_upload_secret(upload_secret)?;
        let data: Bytes = data.into();
        if data.is_empty() {
            return Err(GbsClientError::InvalidRequest("empty share write".into()));
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| GbsClientError::InvalidRequest("write past 2^64".into()))?;
        let secrets = upload_secrets(upload_secret);
        let mut req = Req::new(
            Method::PATCH,
            format!("/storage/v1/immutable/{}/{shnum}", si_str(si)),
            false,
        )
        .secrets(&secrets)
        .header(
            hyper::header::CONTENT_RANGE,
            gbs::content_range_header(ByteRange { start: offset, end }),
        );
        req.body = data;
        let (status, body) = self.send(req, Expect::Cbor(&[200, 201])).await?;
        let required =
            gbs::parse_required_ranges(&body).map_err(|e| self.malformed(format!("write: {e}")))?;
        let finished = status == 201;
        if finished && !required.is_empty() {
            return Err(self.malformed("write: 201 (complete) but ranges still required".into()));
        }
        Ok(WriteResult { finished, required })
    }

    /// `PUT /storage/v1/immutable/:si/:shnum/abort`.
    pub async fn abort_upload(
        &self,
        si: &[u8; 16],
        shnum: ShareNum,
        upload_secret: &[u8],
    ) -> Result<(), GbsClientError> {
        check_upload_secret(upload_secret)?;
        let path = format!("/storage/v1/immutable/{}/{shnum}/abort", si_str(si));
        self.put_empty(path, &upload_secrets(upload_secret), &[200])
            .await
    }

    /// A `PUT` of `path` with `secrets`, no body, answered by one of the `ok` statuses
    /// with none.
    async fn put_empty(
        &self,
        path: String,
        secrets: &Secrets,
        ok: &'static [u16],
    ) -> Result<(), GbsClientError> {
        let req = Req::new(Method::PUT, path, false).secrets(secrets);
        self.send(req, Expect::Empty(ok)).await.map(|_| ())
    }

    /// `GET /storage/v1/immutable/:si/shares`: the finished shares (empty for an unknown SI).
    pub async fn list_immutable_shares(
        &self,
        si: &[u8; 16],
    ) -> Result<BTreeSet<ShareNum>, GbsClientError> {
        self.list_shares("immutable", si).await
    }

    /// `GET /storage/v1/immutable/:si/:shnum` with `Range`: up to `length` bytes at
    /// `offset` (fewer at the end of the share, none past it).
    pub async fn read_immutable(
        &self,
        si: &[u8; 16],
        shnum: ShareNum,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, GbsClientError> {
        self.read_share("immutable", si, shnum, offset, length)
            .await
    }

    /// `POST /storage/v1/immutable/:si/:shnum/corrupt`.
    pub async fn advise_corrupt_immutable(
        &self,
        si: &[u8; 16],
        shnum: ShareNum,
        reason: &str,
    ) -> Result<(), GbsClientError> {
        self.advise_corrupt("immutable", si, shnum, reason).await
    }

    // ---------------------------------------------------------------------------------
    // Mutable

    /// `POST /storage/v1/mutable/:si/read-test-write`. A 401 means the write enabler does
    /// not match ([`GbsClientError::is_bad_write_enabler`]). Never retried.
    pub async fn read_test_write(
        &self,
        si: &[u8; 16],
        write_enabler: &[u8],
        lease: &LeaseSecrets,
        request: &RtwRequest,
    ) -> Result<RtwResponse, GbsClientError> {
        if write_enabler.is_empty() || write_enabler.len() > gbs::MAX_SECRET_LEN {
            return Err(GbsClientError::InvalidRequest(
                "write enabler must be 1..=1024 bytes".into(),
            ));
        }
        if request.read_vector.len() > gbs::MAX_READ_VECTORS
            || request
                .test_write_vectors
                .values()
                .any(|t| t.test.len() > gbs::MAX_TEST_VECTORS)
        {
            return Err(GbsClientError::InvalidRequest(format!(
                "at most {} read vectors and {} test vectors per share",
                gbs::MAX_READ_VECTORS,
                gbs::MAX_TEST_VECTORS
            )));
        }
        let secrets = Secrets {
            write_enabler: Some(write_enabler.to_vec()),
            ..lease_secrets(lease)
        };
        let req = Req::new(
            Method::POST,
            format!("/storage/v1/mutable/{}/read-test-write", si_str(si)),
            false,
        )
        .secrets(&secrets)
        .cbor(request.encode());
        let body = self.cbor(req, &[200]).await?;
        RtwResponse::parse(&body).map_err(|e| self.malformed(format!("read-test-write: {e}")))
    }

    /// `GET /storage/v1/mutable/:si/shares`.
    pub async fn list_mutable_shares(
        &self,
        si: &[u8; 16],
    ) -> Result<BTreeSet<ShareNum>, GbsClientError> {
        self.list_shares("mutable", si).await
    }

    /// `GET /storage/v1/mutable/:si/:shnum` with `Range`.
    pub async fn read_mutable(
        &self,
        si: &[u8; 16],
        shnum: ShareNum,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, GbsClientError> {
        self.read_share("mutable", si, shnum, offset, length).await
    }

    /// `POST /storage/v1/mutable/:si/:shnum/corrupt`.
    pub async fn advise_corrupt_mutable(
        &self,
        si: &[u8; 16],
        shnum: ShareNum,
        reason: &str,
    ) -> Result<(), GbsClientError> {
        self.advise_corrupt("mutable", si, shnum, reason).await
    }

    // ---------------------------------------------------------------------------------

    async fn list_shares(
        &self,
        kind: &str,
        si: &[u8; 16],
    ) -> Result<BTreeSet<ShareNum>, GbsClientError> {
        let body = self
            .cbor(
                Req::get(format!("/storage/v1/{kind}/{}/shares", si_str(si))),
                &[200],
            )
            .await?;
        gbs::parse_share_set(&body).map_err(|e| self.malformed(format!("list shares: {e}")))
    }

    async fn read_share(
        &self,
        kind: &str,
        si: &[u8; 16],
        shnum: ShareNum,
        offset: u64,
        length: u64,
    ) -> Result<Bytes, GbsClientError> {
        if length == 0 {
            return Ok(Bytes::new());
        }
        let end = offset
            .checked_add(length)
            .filter(|&e| e < u64::MAX)
            .ok_or_else(|| GbsClientError::InvalidRequest("read past 2^64".into()))?;
        if length > self.inner.opts.max_cbor_response as u64 {
            return Err(GbsClientError::InvalidRequest(format!(
                "read of {length} bytes exceeds the response limit of {}",
                self.inner.opts.max_cbor_response
            )));
        }
        let range = ByteRange { start: offset, end };
        let req = Req::get(format!("/storage/v1/{kind}/{}/{shnum}", si_str(si)))
            .header(hyper::header::RANGE, gbs::range_header(range));
        self.send(req, Expect::Read(range)).await.map(|(_, b)| b)
    }

    /// `reason` cut (at a character boundary) to the longest a corruption advisory may
    /// carry, [`gbs::MAX_REASON_LEN`] bytes.
    pub fn fit_reason(mut reason: String) -> String {
        if reason.len() > gbs::MAX_REASON_LEN {
            let mut cut = gbs::MAX_REASON_LEN;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        reason
    }

    async fn advise_corrupt(
        &self,
        kind: &str,
        si: &[u8; 16],
        shnum: ShareNum,
        reason: &str,
    ) -> Result<(), GbsClientError> {
        if reason.is_empty() || reason.len() > gbs::MAX_REASON_LEN {
            return Err(GbsClientError::InvalidRequest(format!(
                "reason must be 1..={} bytes",
                gbs::MAX_REASON_LEN
            )));
        }
        let req = Req::new(
            Method::POST,
            format!("/storage/v1/{kind}/{}/{shnum}/corrupt", si_str(si)),
            false,
        )
        .cbor(
            CorruptRequest {
                reason: reason.to_string(),
            }
            .encode(),
        );
        self.send(req, Expect::Empty(&[200])).await.map(|_| ())
    }

    async fn cbor(&self, req: Req, ok: &'static [u16]) -> Result<Bytes, GbsClientError> {
        self.send(req, Expect::Cbor(ok)).await.map(|(_, b)| b)
    }

    fn malformed(&self, message: String) -> GbsClientError {
        GbsClientError::Malformed {
            server: self.inner.server.clone(),
            message,
        }
    }

    /// Send with retries (idempotent requests only).
    async fn send(&self, req: Req, expect: Expect) -> Result<(u16, Bytes), GbsClientError> {
        let policy = self.inner.opts.retry;
        let mut retry = 0;
        loop {
            let result = self.attempt(&req, &expect).await;
            match result {
                Err(e) if req.idempotent && retry < policy.max_retries && e.is_transient() => {
                    tokio::time::sleep(policy.backoff(retry)).await;
                    retry += 1;
                    self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                }
                other => return other,
            }
        }
    }

    async fn attempt(&self, req: &Req, expect: &Expect) -> Result<(u16, Bytes), GbsClientError> {
        let inner = &self.inner;
        inner.counters.attempts.fetch_add(1, Ordering::Relaxed);
        let after = inner.opts.request_timeout;
        match tokio::time::timeout(after, self.attempt_inner(req, expect)).await {
            Ok(Ok((result, mut sender))) => {
                // The whole body was read: once the connection is ready for another request
                // (at once, normally), keep it; after `Connection: close`, drop it.
                if let Ok(Ok(())) =
                    tokio::time::timeout(Duration::from_secs(1), sender.ready()).await
                {
                    self.checkin(sender);
                }
                result
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(GbsClientError::Timeout {
                server: inner.server.clone(),
                after,
            }),
        }
    }

    /// Outer `Err`: the connection is unusable afterwards. `Ok((outcome, sender))`: the
    /// response was read completely (a success, or an error status with its whole body) and
    /// the connection may be reused.
    #[allow(clippy::type_complexity)]
    async fn attempt_inner(
        &self,
        req: &Req,
        expect: &Expect,
    ) -> Result<(Result<(u16, Bytes), GbsClientError>, Sender), GbsClientError> {
        let inner = &self.inner;
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(req.path.as_str())
            .header(hyper::header::HOST, inner.host_header.clone())
            .header(hyper::header::AUTHORIZATION, inner.auth.clone())
            .header(hyper::header::ACCEPT, CBOR_MIME_TYPE);
        if req.cbor_body {
            builder = builder.header(hyper::header::CONTENT_TYPE, CBOR_MIME_TYPE);
        }
        for (k, v) in &req.headers {
            builder = builder.header(k, v.as_str());
        }
        let mut request = builder
            .body(Full::new(req.body.clone()))
            .map_err(|e| GbsClientError::InvalidRequest(format!("building request: {e}")))?;
        // A pooled connection the server has closed fails before the request is written;
        // then (and only then) the same request goes out on a fresh connection.
        let (sender, resp) = loop {
            let (mut sender, reused) = self.checkout().await?;
            match sender.try_send_request(request).await {
                Ok(resp) => break (sender, resp),
                Err(mut e) => match e.take_message() {
                    Some(back) if reused => request = back,
                    _ => return Err(self.classify_hyper(e.error())),
                },
            }
        };
        let resp: Response<Incoming> = resp;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = resp.into_body();
        if !status.is_success() {
            let (bytes, complete) = read_prefix(&mut body, inner.opts.max_error_body).await;
            let message = match error_body_text(&bytes, 500) {
                m if m.is_empty() => status.canonical_reason().unwrap_or("").to_string(),
                m => m,
            };
            let e = GbsClientError::Status {
                server: inner.server.clone(),
                status: status.as_u16(),
                message,
            };
            return if complete {
                Ok((Err(e), sender))
            } else {
                Err(e)
            };
        }
        let code = status.as_u16();
        let result = self
            .check_body(expect, code, status, &headers, &mut body)
            .await?;
        Ok((Ok(result), sender))
    }

    async fn check_body(
        &self,
        expect: &Expect,
        code: u16,
        status: hyper::StatusCode,
        headers: &HeaderMap,
        body: &mut Incoming,
    ) -> Result<(u16, Bytes), GbsClientError> {
        let inner = &self.inner;
        match expect {
            Expect::Cbor(ok) => {
                if !ok.contains(&code) {
                    return Err(self.malformed(format!("unexpected status {status}")));
                }
                if !is_cbor_content_type(
                    headers
                        .get(hyper::header::CONTENT_TYPE)
                        .map(|v| v.as_bytes()),
                ) {
                    return Err(self.malformed(format!(
                        "Content-Type {:?}, expected {CBOR_MIME_TYPE}",
                        headers.get(hyper::header::CONTENT_TYPE)
                    )));
                }
                let limit = inner.opts.max_cbor_response;
                let b = self.read_limited(body, headers, limit).await?;
                Ok((code, b))
            }
            Expect::Empty(ok) => {
                if !ok.contains(&code) {
                    return Err(self.malformed(format!("unexpected status {status}")));
                }
                // Drain a small body so the connection can be reused; ignore its content.
                let _ = self
                    .read_limited(body, headers, inner.opts.max_error_body)
                    .await?;
                Ok((code, Bytes::new()))
            }
            Expect::Read(range) => {
                let want = check_read_response(
                    *range,
                    code,
                    headers
                        .get(hyper::header::CONTENT_TYPE)
                        .map(|v| v.as_bytes()),
                    headers
                        .get(hyper::header::CONTENT_RANGE)
                        .map(|v| v.as_bytes()),
                )
                .map_err(|m| self.malformed(m))?;
                let n = match want {
                    ReadBody::Empty => 0,
                    ReadBody::Exactly(n) => n as usize,
                };
                let b = self
                    .read_limited(body, headers, n)
                    .await
                    .map_err(|e| match e {
                        GbsClientError::TooLarge { .. } => self.malformed(format!(
                            "share read: body longer than Content-Range ({n} bytes)"
                        )),
                        other => other,
                    })?;
                if b.len() != n {
                    return Err(self.malformed(format!(
                        "share read: body has {} bytes, Content-Range says {n}",
                        b.len()
                    )));
                }
                Ok((code, b))
            }
        }
    }

    /// Read a whole body of at most `limit` bytes.
    async fn read_limited(
        &self,
        body: &mut Incoming,
        headers: &HeaderMap,
        limit: usize,
    ) -> Result<Bytes, GbsClientError> {
        let too_large = || GbsClientError::TooLarge {
            server: self.inner.server.clone(),
            limit,
        };
        if let Some(len) = headers.get(hyper::header::CONTENT_LENGTH) {
            let len: u64 = len
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| self.malformed("bad Content-Length".into()))?;
            if len > limit as u64 {
                return Err(too_large());
            }
        }
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.classify_hyper(&e))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    }

    fn connect_error(&self, c: ConnectError) -> GbsClientError {
        let server = self.inner.server.clone();
        match c {
            ConnectError::Network(m) => GbsClientError::Network {
                server,
                message: format!("connect: {m}"),
            },
            ConnectError::Timeout(d) => GbsClientError::Timeout { server, after: d },
            ConnectError::Pin { expected, got } => GbsClientError::PinMismatch {
                server,
                expected,
                got,
            },
            ConnectError::Tls(m) => GbsClientError::Tls { server, message: m },
        }
    }

    /// An idle connection that is still open, or a new one. `true` if reused.
    async fn checkout(&self) -> Result<(Sender, bool), GbsClientError> {
        let inner = &self.inner;
        loop {
            let popped = inner.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match popped {
                Some((s, since))
                    if !s.is_closed()
                        && s.is_ready()
                        && since.elapsed() < inner.opts.idle_timeout =>
                {
                    return Ok((s, true));
                }
                Some(_) => continue, // closed or stale: drop it (its connection task ends)
                None => break,
            }
        }
        let s = inner
            .connector
            .connect()
            .await
            .map_err(|c| self.connect_error(c))?;
        Ok((s, false))
    }

    fn checkin(&self, s: Sender) {
        let inner = &self.inner;
        let mut idle = inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < inner.opts.max_idle_per_server {
            idle.push((s, Instant::now()));
        }
    }

    fn classify_hyper(&self, e: &hyper::Error) -> GbsClientError {
        let server = self.inner.server.clone();
        let mut message = e.to_string();
        if let Some(s) = std::error::Error::source(e) {
            message = format!("{message}: {s}");
        }
        if e.is_parse() || e.is_parse_status() {
            GbsClientError::Malformed {
                server,
                message: format!("HTTP: {message}"),
            }
        } else {
            GbsClientError::Network { server, message }
        }
    }
}

fn si_str(si: &[u8; 16]) -> String {
    gbs::storage_index_to_string(si)
}

fn check_upload_secret(s: &[u8]) -> Result<(), GbsClientError> {
    if s.is_empty() || s.len() > gbs::MAX_SECRET_LEN {
        return Err(GbsClientError::InvalidRequest(
            "upload secret must be 1..=1024 bytes".into(),
        ));
    }
    Ok(())
}

/// Read at most `limit` bytes of a body; `true` if that was all of it (else the rest is
/// left unread, and the connection must not be reused).
async fn read_prefix(body: &mut Incoming, limit: usize) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return (buf, false);
        };
        if let Ok(data) = frame.into_data() {
            let room = limit - buf.len();
            if data.len() > room {
                buf.extend_from_slice(&data[..room]);
                return (buf, false);
            }
            buf.extend_from_slice(&data);
        }
    }
    (buf, true)
}

impl Req {
    fn new(method: Method, path: String, idempotent: bool) -> Req {
        Req {
            method,
            path,
            headers: Vec::new(),
            body: Bytes::new(),
            cbor_body: false,
            idempotent,
        }
    }
    fn get(path: String) -> Req {
        Req::new(Method::GET, path, true)
    }
    fn header(mut self, k: HeaderName, v: String) -> Req {
        self.headers.push((k, v));
        self
    }
    fn secrets(mut self, s: &Secrets) -> Req {
        for v in s.header_values() {
            self.headers
                .push((HeaderName::from_static("x-tahoe-authorization"), v));
        }
        self
    }
    fn cbor(mut self, body: Vec<u8>) -> Req {
        self.body = Bytes::from(body);
        self.cbor_body = true;
        self
    }
}

// -------------------------------------------------------------------------------------
// Pinned TLS

#[derive(Debug)]
struct PinMismatchDetail {
    got: String,
}

impl std::fmt::Display for PinMismatchDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SPKI hash mismatch (got {})", self.got)
    }
}

impl std::error::Error for PinMismatchDetail {}

/// The TLS client configuration of a storage-protocol connection, as Tahoe's client makes
/// it: TLS 1.3, no SNI, ALPN `http/1.1`, and the server's certificate accepted only if the
/// hash of its SubjectPublicKeyInfo equals `spki_hash` (the NURL's pin; nothing else about
/// the certificate is checked).
pub fn pinned_tls_config(spki_hash: &str) -> Result<rustls::ClientConfig, GbsClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| GbsClientError::Unsupported(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpkiPin {
            expected: spki_hash.to_string(),
            provider,
        }))
        .with_no_client_auth();
    tls.enable_sni = false;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// `_TLSContextFactory`'s verification: the certificate's SPKI hash must equal the pin;
/// nothing else about the certificate is checked.
#[derive(Debug)]
struct SpkiPin {
    expected: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for SpkiPin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = spki_from_cert(end_entity.as_ref()).map(spki_hash_of);
        match got {
            Some(h)
                if cairn_core::storage::gbs::constant_time_eq(
                    h.as_bytes(),
                    self.expected.as_bytes(),
                ) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatchDetail {
                    got: other.unwrap_or_else(|| "<no SubjectPublicKeyInfo>".into()),
                })),
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Against the (pinned) key itself: webpki refuses Tahoe's X.509 v1 certificates.
        let spki = spki_from_cert(cert.as_ref())
            .ok_or_else(|| rustls::Error::General("no SPKI in certificate".into()))?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &rustls::pki_types::SubjectPublicKeyInfoDer::from(spki),
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug, Clone)]
enum ConnectError {
    Network(String),
    Timeout(Duration),
    Pin { expected: String, got: String },
    Tls(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Network(m) => write!(f, "connect: {m}"),
            ConnectError::Timeout(d) => write!(f, "connect: timed out after {d:?}"),
            ConnectError::Pin { expected, got } => {
                write!(f, "SPKI pin mismatch: expected {expected}, got {got}")
            }
            ConnectError::Tls(m) => write!(f, "TLS: {m}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Dials the NURL's host and does the pinned handshake.
struct PinnedConnector {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    counters: Arc<Counters>,
    expected: String,
}

type Sender = SendRequest<Full<Bytes>>;

impl PinnedConnector {
    /// TCP connect, pinned TLS handshake, HTTP/1.1 handshake; the connection is driven by a
    /// spawned task that ends when the last sender is dropped or the peer closes.
    async fn connect(&self) -> Result<Sender, ConnectError> {
        let t = self.connect_timeout;
        let work = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| ConnectError::Network(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            self.counters.connections.fetch_add(1, Ordering::Relaxed);
            let tls = self
                .tls
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| tls_error(e, &self.expected))?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tls))
                    .await
                    .map_err(|e| ConnectError::Network(format!("HTTP handshake: {e}")))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(sender)
        };
        tokio::time::timeout(t, work)
            .await
            .map_err(|_| ConnectError::Timeout(t))?
    }
}

fn tls_error(e: std::io::Error, expected: &str) -> ConnectError {
    if let Some(inner) = e.get_ref() {
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
            inner.downcast_ref::<rustls::Error>()
        {
            if let Some(d) = other.0.downcast_ref::<PinMismatchDetail>() {
                return ConnectError::Pin {
                    expected: expected.to_string(),
                    got: d.got.clone(),
                };
            }
        }
        if inner.downcast_ref::<rustls::Error>().is_some() {
            return ConnectError::Tls(e.to_string());
        }
    }
    // I/O failure during the handshake: the peer closed or reset the connection.
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
            ConnectError::Network(format!("connection closed during the TLS handshake: {e}"))
        }
        _ => ConnectError::Tls(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_reason_cuts_at_a_char_boundary() {
        assert_eq!(GbsClient::fit_reason("bad hash".into()), "bad hash");
        let long = format!("{}é", "x".repeat(gbs::MAX_REASON_LEN - 1));
        let cut = GbsClient::fit_reason(long);
        assert_eq!(cut, "x".repeat(gbs::MAX_REASON_LEN - 1));
        let exact = "y".repeat(gbs::MAX_REASON_LEN + 5);
        assert_eq!(GbsClient::fit_reason(exact).len(), gbs::MAX_REASON_LEN);
    }

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

    #[test]
    fn backoff_bounded() {
        let p = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert!(
            p.backoff(0) >= Duration::from_millis(100)
                && p.backoff(0) <= Duration::from_millis(125)
        );
        assert!(p.backoff(40) <= Duration::from_secs(1));
    }
}

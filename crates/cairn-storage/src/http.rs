//! The HTTP storage protocol ("Great Black Swamp") v1 endpoints, as Tahoe-LAFS 1.20's
//! `storage/http_server.py` serves them (status codes included; see
//! `docs/formats/http-storage-protocol.md` for where cairn is stricter).
//!
//! Order of checks per request, as Tahoe: route (storage index and share number must parse,
//! else 404) → `Authorization` (401/400) → `X-Tahoe-Authorization` secrets (400) → `Accept`
//! for CBOR answers (406, checked before any work) → body (415/413/400) → the operation.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use futures_util::StreamExt;

use cairn_core::cap::StorageIndex;
use cairn_core::ids::ShareNum;
use cairn_core::storage::allocate;
use cairn_core::storage::container::{
    expiration_for, hash_lease_secret, LeaseGrant, NodeId, SecretForm, IMMUTABLE_DATA_OFFSET,
    MUTABLE_DATA_OFFSET,
};
use cairn_core::storage::gbs::{self, ByteRange, GbsError, ReadAnswer, Secrets};
use cairn_core::storage::rtw::{RtwContext, RtwSecrets};

use crate::clock::{iso_utc, Clock};
use crate::config::Limits;
use crate::leasedb::{self, AccountId, Lease, LeaseDb, ShareKey};
use crate::store::{self, Store, StoreError};

/// Owner numbers Tahoe writes: 0 for the lease made at allocation, 1 for `add_lease` and
/// mutable writes.
const ALLOCATE_LEASE_OWNER: u32 = 0;
const ADD_LEASE_OWNER: u32 = 1;

/// The storage server's shared state.
pub struct ServerState {
    pub store: Store,
    /// The lease database; its mutex is also the lock that serialises share mutations
    /// (allocation, completion, leases, mutable writes, the crawler and GC).
    pub db: Mutex<LeaseDb>,
    pub swissnum: Vec<u8>,
    pub nodeid: NodeId,
    pub limits: Limits,
    pub reserved_space: u64,
    pub readonly: bool,
    pub app_version: String,
    /// The date, for leases, expiry and records (see `clock`).
    pub clock: Arc<dyn Clock>,
    uploads: Mutex<HashMap<(StorageIndex, ShareNum), Arc<UploadSlot>>>,
}

/// An immutable upload in progress.
struct UploadSlot {
    secret: Vec<u8>,
    allocated: u64,
    lease: Lease,
    last_activity: Mutex<Instant>,
    state: tokio::sync::Mutex<UploadState>,
}

struct UploadState {
    file: Option<Arc<File>>,
    written: RangeSet,
}

/// Sorted, merged, half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        let mut out = Vec::with_capacity(self.0.len() + 1);
        for &(a, b) in &self.0 {
            if b < s || a > e {
                out.push((a, b));
            } else {
                s = s.min(a);
                e = e.max(b);
            }
        }
        out.push((s, e));
        out.sort_unstable();
        self.0 = out;
    }

    /// Parts of `[start, end)` already in the set.
    pub fn overlaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        self.0
            .iter()
            .filter(|&&(a, b)| a < end && b > start)
            .map(|&(a, b)| (a.max(start), b.min(end)))
            .collect()
    }

    /// Parts of `[0, size)` not in the set.
    pub fn missing(&self, size: u64) -> Vec<ByteRange> {
        let mut out = Vec::new();
        let mut pos = 0;
        for &(a, b) in &self.0 {
            if a > pos {
                out.push(ByteRange {
                    start: pos,
                    end: a.min(size),
                });
            }
            pos = pos.max(b);
        }
        if pos < size {
            out.push(ByteRange {
                start: pos,
                end: size,
            });
        }
        out.retain(|r| r.start < r.end);
        out
    }
}

impl ServerState {
    pub fn new(
        store: Store,
        db: LeaseDb,
        swissnum: Vec<u8>,
        limits: Limits,
        reserved_space: u64,
        readonly: bool,
        clock: Arc<dyn Clock>,
    ) -> ServerState {
        ServerState {
            clock,
            nodeid: store.nodeid,
            store,
            db: Mutex::new(db),
            swissnum,
            limits,
            reserved_space,
            readonly,
            app_version: format!(
                "cairn/{} (Tahoe-LAFS 1.20 compatible)",
                env!("CARGO_PKG_VERSION")
            ),
            uploads: Mutex::new(HashMap::new()),
        }
    }

    fn lock_db(&self) -> std::sync::MutexGuard<'_, LeaseDb> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_uploads(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(StorageIndex, ShareNum), Arc<UploadSlot>>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of immutable uploads in progress, and the bytes they hold reserved.
    pub fn uploads_in_progress(&self) -> (usize, u64) {
        let u = self.lock_uploads();
        (u.len(), u.values().map(|s| s.allocated).sum())
    }

    /// Space a new upload may use: free disk less `reserved_space` less what uploads in
    /// progress hold (0 when readonly).
    pub fn available_space(&self) -> u64 {
        if self.readonly {
            return 0;
        }
        let disk = store::disk_available(&self.store.shares_dir, self.reserved_space).unwrap_or(0);
        disk.saturating_sub(self.uploads_in_progress().1)
    }

    /// Abort one upload: forget it, delete its `incoming/` file, release its reservation.
    /// Waits for a write in progress on it to finish first.
    pub async fn abort_upload(self: &Arc<Self>, si: StorageIndex, shnum: ShareNum) -> bool {
        let slot = self.lock_uploads().get(&(si, shnum)).cloned();
        let Some(slot) = slot else { return false };
        let mut st = slot.state.lock().await;
        let removed = {
            let mut u = self.lock_uploads();
            match u.get(&(si, shnum)) {
                Some(s) if Arc::ptr_eq(s, &slot) => u.remove(&(si, shnum)).is_some(),
                _ => false,
            }
        };
        if !removed {
            return false;
        }
        st.file = None;
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.abort_blocking(si, shnum)).await;
        true
    }

    fn abort_blocking(&self, si: StorageIndex, shnum: ShareNum) {
        if let Err(e) = self.store.abort_incoming(&si.0, shnum) {
            tracing::warn!("aborting upload {}/{shnum}: {e}", si.to_base32());
        }
        if let Err(e) = self.lock_db().release(&ShareKey::new(si, shnum)) {
            tracing::warn!("releasing reservation {}/{shnum}: {e}", si.to_base32());
        }
    }

    /// Abort every upload in progress (server shutdown).
    pub async fn abort_all_uploads(self: &Arc<Self>) -> usize {
        let keys: Vec<_> = self.lock_uploads().keys().copied().collect();
        let mut n = 0;
        for (si, shnum) in keys {
            if self.abort_upload(si, shnum).await {
                n += 1;
            }
        }
        n
    }

    /// Abort uploads with no write for longer than the upload timeout. Returns how many.
    pub async fn abort_idle_uploads(self: &Arc<Self>) -> usize {
        let timeout = self.limits.upload_timeout;
        let idle: Vec<_> = self
            .lock_uploads()
            .iter()
            .filter(|(_, s)| {
                s.last_activity
                    .lock()
                    .map(|t| t.elapsed() > timeout)
                    .unwrap_or(false)
            })
            .map(|(k, _)| *k)
            .collect();
        let mut n = 0;
        for (si, shnum) in idle {
            tracing::info!(
                "upload {}/{shnum} idle for {timeout:?}: aborting",
                si.to_base32()
            );
            if self.abort_upload(si, shnum).await {
                n += 1;
            }
        }
        n
    }

    /// Change the share files of `si` with `change_files`, bracketed in the lease database:
    /// a pending change recorded durably before any file is touched, and settled after (the
    /// bucket's rows made to match its files, whatever `change_files` did or failed to do).
    /// A crash in between is settled at the next start, before a connection is accepted
    /// (`leasedb::startup_recovery`). Call with the database locked: `db` is that lock's.
    fn change_bucket<T>(
        &self,
        db: &mut LeaseDb,
        si: &StorageIndex,
        change_files: impl FnOnce() -> Result<T, HttpError>,
    ) -> Result<T, HttpError> {
        let change = db
            .begin_change(si, self.clock.now_secs())
            .map_err(HttpError::internal)?;
        let out = change_files();
        self.settle(db, change);
        out
    }

    /// Settle a pending change now (see [`ServerState::change_bucket`]); on a database error
    /// it stays recorded and is settled at the next start.
    fn settle(&self, db: &mut LeaseDb, change: leasedb::PendingChange) {
        let si = change.storage_index().to_base32();
        match db.settle_change(&self.store.storage_dir, change) {
            Ok(found) => {
                for d in found {
                    tracing::debug!("lease database follows {si}: {d}");
                }
            }
            Err(e) => {
                tracing::warn!("lease database update for {si}: {e} (settled at the next start)")
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Errors and responses

/// An error answer: status and a plain-text reason.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
}

impl HttpError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError {
            status,
            message: message.into(),
        }
    }
    fn not_found() -> Self {
        HttpError::new(StatusCode::NOT_FOUND, "")
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {e}");
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )
    }
}

impl From<GbsError> for HttpError {
    fn from(e: GbsError) -> Self {
        HttpError::new(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            e.to_string(),
        )
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadWriteEnabler(m) => HttpError::new(StatusCode::UNAUTHORIZED, m),
            StoreError::TooLarge(m) => HttpError::new(StatusCode::BAD_REQUEST, m),
            StoreError::NoSpace(m) => HttpError::new(StatusCode::INSUFFICIENT_STORAGE, m),
            StoreError::WrongKind(m) => HttpError::new(StatusCode::CONFLICT, m),
            other => HttpError::internal(other),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}

type HResult = Result<Response, HttpError>;

fn cbor(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, gbs::CBOR_MIME_TYPE)], body).into_response()
}

fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

// ------------------------------------------------------------------------------------------
// Request checks

fn parse_si(s: &str) -> Result<StorageIndex, HttpError> {
    gbs::parse_storage_index(s)
        .map(StorageIndex)
        .ok_or_else(HttpError::not_found)
}

fn parse_shnum(s: &str) -> Result<ShareNum, HttpError> {
    gbs::parse_share_number(s).ok_or_else(HttpError::not_found)
}

fn first(headers: &HeaderMap, name: header::HeaderName) -> Option<&[u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

/// `Authorization` then the exact secret set.
fn authorize(
    st: &ServerState,
    headers: &HeaderMap,
    required: &[gbs::SecretKind],
) -> Result<Secrets, HttpError> {
    gbs::check_authorization(first(headers, header::AUTHORIZATION), &st.swissnum)?;
    let values: Vec<&[u8]> = headers
        .get_all("x-tahoe-authorization")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    Ok(gbs::parse_secrets(&values, required)?)
}

fn check_accept(headers: &HeaderMap) -> Result<(), HttpError> {
    Ok(gbs::check_accept(first(headers, header::ACCEPT))?)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Read a CBOR request body of at most `limit` bytes (415 / 413 / 408 / 400).
async fn read_cbor_body(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    idle: Duration,
) -> Result<Vec<u8>, HttpError> {
    gbs::check_content_type(first(headers, header::CONTENT_TYPE))?;
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        )
    };
    if content_length(headers).is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut buf =
        Vec::with_capacity(content_length(headers).unwrap_or(0).min(limit).min(1 << 20) as usize);
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => {
                return Err(HttpError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body stalled",
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    format!("reading body: {e}"),
                ))
            }
            Ok(Some(Ok(chunk))) => {
                if buf.len() as u64 + chunk.len() as u64 > limit {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
    Ok(buf)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(HttpError::internal)
}

// ------------------------------------------------------------------------------------------
// Router

/// All GBS v1 routes. Unknown paths answer 404, known paths with the wrong method 405.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/storage/v1/version", get(version))
        .route("/storage/v1/immutable/{si}", post(allocate))
        .route("/storage/v1/immutable/{si}/shares", get(list_immutable))
        .route(
            "/storage/v1/immutable/{si}/{shnum}",
            get(read_immutable).patch(write_immutable),
        )
        .route("/storage/v1/immutable/{si}/{shnum}/abort", put(abort))
        .route(
            "/storage/v1/immutable/{si}/{shnum}/corrupt",
            post(corrupt_immutable),
        )
        .route("/storage/v1/lease/{si}", put(add_lease))
        .route(
            "/storage/v1/mutable/{si}/read-test-write",
            post(read_test_write),
        )
        .route("/storage/v1/mutable/{si}/shares", get(list_mutable))
        .route("/storage/v1/mutable/{si}/{shnum}", get(read_mutable))
        .route(
            "/storage/v1/mutable/{si}/{shnum}/corrupt",
            post(corrupt_mutable),
        )
        .fallback(|| async { empty(StatusCode::NOT_FOUND) })
        .with_state(state)
}

type St = State<Arc<ServerState>>;

async fn version(State(st): St, headers: HeaderMap) -> HResult {
    authorize(&st, &headers, gbs::SECRETS_NONE)?;
    check_accept(&headers)?;
    let st2 = st.clone();
    let avail = blocking(move || st2.available_space()).await?;
    let v = gbs::VersionResponse {
        maximum_immutable_share_size: avail.min(st.limits.max_immutable_share_size),
        maximum_mutable_share_size: st.limits.max_mutable_share_size,
        available_space: avail,
        application_version: st.app_version.as_bytes().to_vec(),
    };
    Ok(cbor(StatusCode::OK, v.encode()))
}

async fn allocate(
    State(st): St,
    UrlPath(si): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> HResult {
    let si = parse_si(&si)?;
    let secrets = authorize(&st, &headers, gbs::SECRETS_ALLOCATE)?;
    check_accept(&headers)?;
    let raw = read_cbor_body(
        &headers,
        body,
        gbs::MAX_ALLOCATE_BODY as u64,
        st.limits.body_idle_timeout,
    )
    .await?;
    let req = gbs::AllocateRequest::parse(&raw)?;
    if req.allocated_size == 0 {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "allocated-size must be at least 1",
        ));
    }
    let (renew, cancel, upload) = match (secrets.lease_renew, secrets.lease_cancel, secrets.upload)
    {
        (Some(r), Some(c), Some(u)) => (r, c, u),
        _ => return Err(HttpError::new(StatusCode::BAD_REQUEST, "missing secrets")),
    };
    let now = st.clock.now_secs();
    let expiration = expiration_for(now).map_err(HttpError::internal)?;
    let st2 = st.clone();
    let resp = blocking(move || -> Result<gbs::AllocateResponse, HttpError> {
        let st = st2;
        let mut db = st.lock_db();
        let mut resp = gbs::AllocateResponse::default();
        let existing = st.store.list_share_numbers(&si.0)?;
        let disk = if st.readonly {
            0
        } else {
            store::disk_available(&st.store.shares_dir, st.reserved_space).unwrap_or(0)
        };
        let grant = LeaseGrant {
            owner_num: ALLOCATE_LEASE_OWNER,
            renew_secret: renew,
            cancel_secret: cancel,
            expiration_secs: expiration,
            nodeid: st.nodeid,
        };
        // Renew (or add) our lease on every share already held, and report them all.
        if !existing.is_empty() {
            st.change_bucket(&mut db, &si, || {
                for &shnum in &existing {
                    if let Err(e) = st
                        .store
                        .add_or_renew_lease(&si.0, shnum, &grant, Some(disk))
                    {
                        tracing::warn!("allocate: lease on {}/{shnum}: {e}", si.to_base32());
                    }
                }
                Ok(())
            })?;
        }
        let lease_record = grant.to_record(SecretForm::Hashed, false);
        let db_lease = Lease {
            account: AccountId(ALLOCATE_LEASE_OWNER),
            renew_key: hash_lease_secret(&renew),
            expiration: u64::from(expiration),
        };
        // Which shares to take: a pure decision (`cairn_core::storage::allocate`).
        let uploading: BTreeSet<ShareNum> = st
            .lock_uploads()
            .keys()
            .filter(|k| k.0 == si)
            .map(|k| k.1)
            .collect();
        let (in_progress, held) = st.uploads_in_progress();
        let plan = allocate::plan(
            req.share_numbers.iter().copied(),
            req.allocated_size,
            allocate::AllocateState {
                existing: &existing,
                uploading: &uploading,
                uploads_in_progress: in_progress,
            },
            allocate::AllocateLimits {
                available: disk.saturating_sub(held),
                max_share_size: st.limits.max_immutable_share_size,
                max_concurrent_uploads: st.limits.max_concurrent_uploads,
            },
        );
        resp.already_have = plan.already_have;
        for shnum in plan.allocate {
            let key = ShareKey::new(si, shnum);
            match db.reserve(
                &leasedb::Upload {
                    share: key,
                    account: AccountId(ALLOCATE_LEASE_OWNER),
                    bytes: req.allocated_size,
                },
                now,
            ) {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("allocate {key}: reservation refused: {e}");
                    continue;
                }
            }
            let file =
                match st
                    .store
                    .create_incoming(&si.0, shnum, req.allocated_size, &lease_record)
                {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!("allocate {key}: {e}");
                        let _ = db.release(&key);
                        continue;
                    }
                };
            let slot = Arc::new(UploadSlot {
                secret: upload.clone(),
                allocated: req.allocated_size,
                lease: db_lease,
                last_activity: Mutex::new(Instant::now()),
                state: tokio::sync::Mutex::new(UploadState {
                    file: Some(Arc::new(file)),
                    written: RangeSet::default(),
                }),
            });
            st.lock_uploads().insert((si, shnum), slot);
            resp.allocated.insert(shnum);
        }
        Ok(resp)
    })
    .await??;
    Ok(cbor(StatusCode::OK, resp.encode()))
}

fn upload_slot(
    st: &ServerState,
    si: StorageIndex,
    shnum: ShareNum,
    secret: &[u8],
) -> Result<Arc<UploadSlot>, HttpError> {
    let slot = st
        .lock_uploads()
        .get(&(si, shnum))
        .cloned()
        .ok_or_else(HttpError::not_found)?;
    if !gbs::constant_time_eq(&slot.secret, secret) {
        return Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "wrong upload secret",
        ));
    }
    Ok(slot)
}

/// Size of the pieces a PATCH body is written in.
const WRITE_PIECE: usize = 1 << 20;

async fn write_immutable(
    State(st): St,
    UrlPath((si, shnum)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> HResult {
    let si = parse_si(&si)?;
    let shnum = parse_shnum(&shnum)?;
    let secrets = authorize(&st, &headers, gbs::SECRETS_UPLOAD)?;
    let range = gbs::parse_content_range(first(&headers, header::CONTENT_RANGE))?;
    let secret = secrets.upload.unwrap_or_default();
    let slot = upload_slot(&st, si, shnum, &secret)?;
    check_accept(&headers)?;
    if range.end > slot.allocated {
        return Err(HttpError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!(
                "write of bytes {}..{} exceeds the allocated size {}",
                range.start, range.end, slot.allocated
            ),
        ));
    }
    if range.len() > st.limits.max_patch_body_size {
        return Err(HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PATCH body too large",
        ));
    }
    if let Some(cl) = content_length(&headers) {
        if cl != range.len() {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                "Content-Length differs from the Content-Range length",
            ));
        }
    }
    let mut state = slot.state.lock().await;
    let Some(file) = state.file.clone() else {
        return Err(HttpError::not_found());
    };
    let written = state.written.clone();
    let mut stream = body.into_data_stream();
    let mut pos = range.start;
    // One allocation per piece: growing the buffer chunk by chunk copies the body again on
    // every doubling.
    let piece = (range.len() as usize).min(WRITE_PIECE);
    let mut buf: Vec<u8> = Vec::with_capacity(piece);
    let idle = st.limits.body_idle_timeout;
    loop {
        let next = tokio::time::timeout(idle, stream.next()).await;
        let chunk = match next {
            Err(_) => {
                return Err(HttpError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body stalled",
                ))
            }
            Ok(Some(Err(e))) => {
                return Err(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    format!("reading body: {e}"),
                ))
            }
            Ok(Some(Ok(c))) => Some(c),
            Ok(None) => None,
        };
        let done = chunk.is_none();
        if let Some(c) = chunk {
            if pos + buf.len() as u64 + c.len() as u64 > range.end {
                return Err(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "body longer than the Content-Range",
                ));
            }
            buf.extend_from_slice(&c);
        }
        if buf.len() >= WRITE_PIECE || (done && !buf.is_empty()) {
            let rest = (range.end - pos - buf.len() as u64).min(WRITE_PIECE as u64) as usize;
            let data = std::mem::replace(&mut buf, Vec::with_capacity(rest));
            let (f, w, at) = (file.clone(), written.clone(), pos);
            let len = data.len() as u64;
            blocking(move || write_piece(&f, &w, at, &data)).await??;
            pos += len;
        }
        if done {
            break;
        }
    }
    if pos != range.end {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "body shorter than the Content-Range",
        ));
    }
    state.written.insert(range.start, range.end);
    if let Ok(mut t) = slot.last_activity.lock() {
        *t = Instant::now();
    }
    let missing = state.written.missing(slot.allocated);
    if !missing.is_empty() {
        return Ok(cbor(StatusCode::OK, gbs::encode_required_ranges(&missing)));
    }
    // Complete: make it durable, move it into place, then account for it.
    let st2 = st.clone();
    let lease = slot.lease;
    let res = blocking(move || -> Result<(), HttpError> {
        // The rename into place is a change to the bucket: recorded first, so a crash
        // before the commit below is settled at the next start.
        let change = st2
            .lock_db()
            .begin_change(&si, st2.clock.now_secs())
            .map_err(HttpError::internal)?;
        let finished = st2.store.finish_incoming(&si.0, shnum, &file);
        let mut db = st2.lock_db();
        let size = match finished {
            Ok(size) => size,
            Err(e) => {
                st2.settle(&mut db, change);
                return Err(e.into());
            }
        };
        match db.commit_upload(&ShareKey::new(si, shnum), size, &lease) {
            Ok(_) => {
                if let Err(e) = db.end_change(change) {
                    tracing::warn!("lease database {}/{shnum}: {e}", si.to_base32());
                }
            }
            Err(e) => {
                tracing::warn!("lease database commit {}/{shnum}: {e}", si.to_base32());
                st2.settle(&mut db, change);
            }
        }
        Ok(())
    })
    .await?;
    state.file = None;
    st.lock_uploads().remove(&(si, shnum));
    drop(state);
    if let Err(e) = res {
        let st3 = st.clone();
        let _ = blocking(move || st3.abort_blocking(si, shnum)).await;
        return Err(e);
    }
    Ok(cbor(StatusCode::CREATED, gbs::encode_required_ranges(&[])))
}

/// Write `data` at share offset `at`: bytes over already-written ranges must match (409),
/// the rest is written. Nothing already written is ever overwritten.
fn write_piece(file: &File, written: &RangeSet, at: u64, data: &[u8]) -> Result<(), HttpError> {
    use std::os::unix::fs::FileExt;
    let end = at + data.len() as u64;
    let overlaps = written.overlaps(at, end);
    for &(a, b) in &overlaps {
        let mut have = vec![0u8; (b - a) as usize];
        file.read_exact_at(&mut have, IMMUTABLE_DATA_OFFSET + a)
            .map_err(HttpError::internal)?;
        if have[..] != data[(a - at) as usize..(b - at) as usize] {
            return Err(HttpError::new(
                StatusCode::CONFLICT,
                format!("bytes {a}..{b} differ from data already written"),
            ));
        }
    }
    let mut pos = at;
    for &(a, b) in overlaps.iter().chain(std::iter::once(&(end, end))) {
        if a > pos {
            file.write_all_at(
                &data[(pos - at) as usize..(a - at) as usize],
                IMMUTABLE_DATA_OFFSET + pos,
            )
            .map_err(HttpError::internal)?;
        }
        pos = pos.max(b);
    }
    Ok(())
}

async fn abort(
    State(st): St,
    UrlPath((si, shnum)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> HResult {
    let si = parse_si(&si)?;
    let shnum = parse_shnum(&shnum)?;
    let secrets = authorize(&st, &headers, gbs::SECRETS_UPLOAD)?;
    let secret = secrets.upload.unwrap_or_default();
    match upload_slot(&st, si, shnum, &secret) {
        Ok(_) => {
            st.abort_upload(si, shnum).await;
            Ok(empty(StatusCode::OK))
        }
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            let st2 = st.clone();
            let finished = blocking(move || st2.store.share_path(&si.0, shnum).exists()).await?;
            if finished {
                Err(HttpError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "the upload is already complete",
                ))
            } else {
                Err(e)
            }
        }
        Err(e) => Err(e),
    }
}

async fn list_immutable(
    State(st): St,
    UrlPath(si): UrlPath<String>,
    headers: HeaderMap,
) -> HResult {
    list_shares(st, si, headers).await
}

async fn list_mutable(State(st): St, UrlPath(si): UrlPath<String>, headers: HeaderMap) -> HResult {
    list_shares(st, si, headers).await
}

async fn list_shares(st: Arc<ServerState>, si: String, headers: HeaderMap) -> HResult {
    let si = parse_si(&si)?;
    authorize(&st, &headers, gbs::SECRETS_NONE)?;
    check_accept(&headers)?;
    let st2 = st.clone();
    let shares = blocking(move || st2.store.list_share_numbers(&si.0)).await??;
    Ok(cbor(StatusCode::OK, gbs::encode_share_set(&shares)))
}

async fn read_immutable(
    State(st): St,
    UrlPath((si, shnum)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> HResult {
    let share = open_share(&st, &si, &shnum, &headers, Store::open_immutable).await?;
    ranged_read(&headers, share.file, IMMUTABLE_DATA_OFFSET, share.data_len)
}

async fn read_mutable(
    State(st): St,
    UrlPath((si, shnum)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> HResult {
    let share = open_share(&st, &si, &shnum, &headers, Store::open_mutable).await?;
    ranged_read(
        &headers,
        share.file,
        MUTABLE_DATA_OFFSET,
        share.header.data_length,
    )
}

/// The share a read request names, opened with `open`; 404 if the server has none.
async fn open_share<T: Send + 'static>(
    st: &Arc<ServerState>,
    si: &str,
    shnum: &str,
    headers: &HeaderMap,
    open: fn(&Store, &[u8; 16], ShareNum) -> store::Result<Option<T>>,
) -> Result<T, HttpError> {
    let si = parse_si(si)?;
    let shnum = parse_shnum(shnum)?;
    authorize(st, headers, gbs::SECRETS_NONE)?;
    let st2 = st.clone();
    let share = blocking(move || open(&st2.store, &si.0, shnum)).await??;
    share.ok_or_else(HttpError::not_found)
}

/// `read_range`: no Range → 200 with all the data; `bytes=a-b` → 206 (clipped) or 204.
fn ranged_read(headers: &HeaderMap, file: File, data_offset: u64, data_len: u64) -> HResult {
    let (status, r) = match headers.get(header::RANGE) {
        None => (
            StatusCode::OK,
            ByteRange {
                start: 0,
                end: data_len,
            },
        ),
        Some(v) => match gbs::clip_range(gbs::parse_range(v.as_bytes())?, data_len) {
            ReadAnswer::NoContent => {
                let mut resp = empty(StatusCode::NO_CONTENT);
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                return Ok(resp);
            }
            ReadAnswer::Partial(r) => (StatusCode::PARTIAL_CONTENT, r),
        },
    };
    let file = Arc::new(file);
    const PIECE: u64 = 256 * 1024;
    let stream = futures_util::stream::unfold((file, r.start), move |(file, pos)| async move {
        if pos >= r.end {
            return None;
        }
        let n = (r.end - pos).min(PIECE);
        let f = file.clone();
        let res = tokio::task::spawn_blocking(move || {
            store::read_share_data(&f, data_offset, data_len, pos, n)
        })
        .await;
        let item: Result<Bytes, std::io::Error> = match res {
            Ok(Ok(v)) if v.len() as u64 == n => Ok(Bytes::from(v)),
            Ok(Ok(_)) => Err(std::io::Error::other("share shrank while reading")),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(std::io::Error::other(e)),
        };
        Some((item, (file, pos + n)))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.len()));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&gbs::content_range_header(r)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

async fn add_lease(State(st): St, UrlPath(si): UrlPath<String>, headers: HeaderMap) -> HResult {
    let si = parse_si(&si)?;
    let secrets = authorize(&st, &headers, gbs::SECRETS_LEASE)?;
    let (Some(renew), Some(cancel)) = (secrets.lease_renew, secrets.lease_cancel) else {
        return Err(HttpError::new(StatusCode::BAD_REQUEST, "missing secrets"));
    };
    let expiration = expiration_for(st.clock.now_secs()).map_err(HttpError::internal)?;
    let st2 = st.clone();
    blocking(move || -> Result<(), HttpError> {
        let st = st2;
        let mut db = st.lock_db();
        let shares = st.store.list_share_numbers(&si.0)?;
        if shares.is_empty() {
            return Err(HttpError::not_found());
        }
        let grant = LeaseGrant {
            owner_num: ADD_LEASE_OWNER,
            renew_secret: renew,
            cancel_secret: cancel,
            expiration_secs: expiration,
            nodeid: st.nodeid,
        };
        let avail = if st.readonly {
            0
        } else {
            store::disk_available(&st.store.shares_dir, st.reserved_space).unwrap_or(0)
        };
        st.change_bucket(&mut db, &si, || {
            for shnum in shares {
                st.store
                    .add_or_renew_lease(&si.0, shnum, &grant, Some(avail))?;
            }
            Ok(())
        })
    })
    .await??;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn read_test_write(
    State(st): St,
    UrlPath(si): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> HResult {
    let si = parse_si(&si)?;
    let secrets = authorize(&st, &headers, gbs::SECRETS_RTW)?;
    check_accept(&headers)?;
    let we: [u8; 32] = secrets
        .write_enabler
        .as_deref()
        .and_then(|w| w.try_into().ok())
        .ok_or_else(|| HttpError::new(StatusCode::BAD_REQUEST, "write-enabler must be 32 bytes"))?;
    let (Some(renew), Some(cancel)) = (secrets.lease_renew, secrets.lease_cancel) else {
        return Err(HttpError::new(StatusCode::BAD_REQUEST, "missing secrets"));
    };
    let limit = st.limits.max_rtw_body_size.min(gbs::MAX_RTW_BODY_TAHOE);
    let raw = read_cbor_body(&headers, body, limit, st.limits.body_idle_timeout).await?;
    let req = gbs::RtwRequest::parse(&raw)?;
    drop(raw);
    let rtw_secrets = RtwSecrets {
        write_enabler: we,
        lease_renew: renew,
        lease_cancel: cancel,
    };
    let st2 = st.clone();
    let result = blocking(move || -> Result<store::RtwResult, HttpError> {
        let st = st2;
        let mut db = st.lock_db();
        let avail = if st.readonly {
            0
        } else {
            store::disk_available(&st.store.shares_dir, st.reserved_space).unwrap_or(0)
        };
        let avail = avail.saturating_sub(st.uploads_in_progress().1);
        let mut ctx = RtwContext::new(st.nodeid, st.clock.now_secs(), Some(avail));
        ctx.max_share_size = st.limits.max_mutable_share_size;
        let rtw = || {
            Ok(st
                .store
                .read_test_write(&si.0, &req, &rtw_secrets, &ctx, Some(avail))?)
        };
        if req.test_write_vectors.is_empty() {
            // Reads only (a writer's servermap query): no file can change.
            rtw()
        } else {
            st.change_bucket(&mut db, &si, rtw)
        }
    })
    .await??;
    let resp = gbs::RtwResponse {
        success: result.success,
        data: result.read_data,
    };
    Ok(cbor(StatusCode::OK, resp.encode()))
}

async fn corrupt_immutable(
    State(st): St,
    UrlPath((si, shnum)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> HResult {
    corrupt(st, si, shnum, headers, body, "immutable").await
}

async fn corrupt_mutable(
    State(st): St,
    UrlPath((si, shnum)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> HResult {
    corrupt(st, si, shnum, headers, body, "mutable").await
}

async fn corrupt(
    st: Arc<ServerState>,
    si: String,
    shnum: String,
    headers: HeaderMap,
    body: Body,
    kind: &'static str,
) -> HResult {
    let si = parse_si(&si)?;
    let shnum = parse_shnum(&shnum)?;
    authorize(&st, &headers, gbs::SECRETS_NONE)?;
    let st2 = st.clone();
    let exists = blocking(move || -> Result<bool, StoreError> {
        Ok(if kind == "immutable" {
            st2.store.open_immutable(&si.0, shnum)?.is_some()
        } else {
            st2.store.list_share_numbers(&si.0)?.contains(&shnum)
        })
    })
    .await??;
    if !exists {
        return Err(HttpError::not_found());
    }
    let raw = read_cbor_body(
        &headers,
        body,
        gbs::MAX_CORRUPT_BODY as u64,
        st.limits.body_idle_timeout,
    )
    .await?;
    let req = gbs::CorruptRequest::parse(&raw)?;
    tracing::warn!(
        "client claims corruption in ({kind}) {}-{shnum}: {}",
        si.to_base32(),
        req.reason
    );
    let st2 = st.clone();
    blocking(move || {
        if st2.available_space() > 64 * 1024 {
            st2.store.write_corruption_report(
                kind,
                &si.0,
                shnum,
                &req.reason,
                &iso_utc(st.clock.now()),
            )
        } else {
            Ok(())
        }
    })
    .await??;
    Ok(empty(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set() {
        let mut r = RangeSet::default();
        r.insert(10, 20);
        r.insert(30, 40);
        assert_eq!(
            r.missing(50),
            vec![
                ByteRange { start: 0, end: 10 },
                ByteRange { start: 20, end: 30 },
                ByteRange { start: 40, end: 50 }
            ]
        );
        r.insert(15, 35);
        assert_eq!(r.0, vec![(10, 40)]);
        assert_eq!(r.overlaps(0, 12), vec![(10, 12)]);
        r.insert(0, 10);
        r.insert(40, 50);
        assert!(r.missing(50).is_empty());
    }
}

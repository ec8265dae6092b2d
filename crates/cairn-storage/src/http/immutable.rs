//! Immutable uploads: allocate shares, write pieces with PATCH, abort.

use super::*;

pub(super) async fn allocate(
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
        let existing = st.store.list_share_numbers(&si)?;
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
                    if let Err(e) = st.store.add_or_renew_lease(&si, shnum, &grant, Some(disk)) {
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
            let file = match st
                .store
                .create_incoming(&si, shnum, req.allocated_size, &lease_record)
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

pub(super) fn upload_slot(
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
pub(super) const WRITE_PIECE: usize = 1 << 20;

pub(super) async fn write_immutable(
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
        let finished = st2.store.finish_incoming(&si, shnum, &file);
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
pub(super) fn write_piece(
    file: &File,
    written: &RangeSet,
    at: u64,
    data: &[u8],
) -> Result<(), HttpError> {
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

pub(super) async fn abort(
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
            let finished = blocking(move || st2.store.share_path(&si, shnum).exists()).await?;
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

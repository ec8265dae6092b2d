//! Mutable writes: read-test-write, applied under the store lock and bracketed by the intent log.

use super::*;

pub(super) async fn read_test_write(
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
                .read_test_write(&si, &req, &rtw_secrets, &ctx, Some(avail))?)
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

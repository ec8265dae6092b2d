//! Advisory corruption reports about a share: logged and written to disk beside the shares
//! (when space allows), never acted on.

use super::*;

pub(super) async fn corrupt_immutable(
    State(st): St,
    UrlPath((si, shnum)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> HResult {
    corrupt(st, si, shnum, headers, body, "immutable").await
}

pub(super) async fn corrupt_mutable(
    State(st): St,
    UrlPath((si, shnum)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> HResult {
    corrupt(st, si, shnum, headers, body, "mutable").await
}

pub(super) async fn corrupt(
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
            st2.store.open_immutable(&si, shnum)?.is_some()
        } else {
            st2.store.list_share_numbers(&si)?.contains(&shnum)
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
                &si,
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

//! Reading shares, both kinds: share lists and ranged reads.

use super::*;

pub(super) async fn list_immutable(
    State(st): St,
    UrlPath(si): UrlPath<String>,
    headers: HeaderMap,
) -> HResult {
    list_shares(st, si, headers).await
}

pub(super) async fn list_mutable(
    State(st): St,
    UrlPath(si): UrlPath<String>,
    headers: HeaderMap,
) -> HResult {
    list_shares(st, si, headers).await
}

pub(super) async fn list_shares(st: Arc<ServerState>, si: String, headers: HeaderMap) -> HResult {
    let si = parse_si(&si)?;
    authorize(&st, &headers, gbs::SECRETS_NONE)?;
    check_accept(&headers)?;
    let st2 = st.clone();
    let shares = blocking(move || st2.store.list_share_numbers(&si)).await??;
    Ok(cbor(StatusCode::OK, gbs::encode_share_set(&shares)))
}

pub(super) async fn read_immutable(
    State(st): St,
    UrlPath((si, shnum)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> HResult {
    let share = open_share(&st, &si, &shnum, &headers, Store::open_immutable).await?;
    ranged_read(&headers, share.file, IMMUTABLE_DATA_OFFSET, share.data_len)
}

pub(super) async fn read_mutable(
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
pub(super) async fn open_share<T: Send + 'static>(
    st: &Arc<ServerState>,
    si: &str,
    shnum: &str,
    headers: &HeaderMap,
    open: fn(&Store, &StorageIndex, ShareNum) -> store::Result<Option<T>>,
) -> Result<T, HttpError> {
    let si = parse_si(si)?;
    let shnum = parse_shnum(shnum)?;
    authorize(st, headers, gbs::SECRETS_NONE)?;
    let st2 = st.clone();
    let share = blocking(move || open(&st2.store, &si, shnum)).await??;
    share.ok_or_else(HttpError::not_found)
}

/// `read_range`: no Range → 200 with all the data; `bytes=a-b` → 206 (clipped) or 204.
pub(super) fn ranged_read(
    headers: &HeaderMap,
    file: File,
    data_offset: u64,
    data_len: u64,
) -> HResult {
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

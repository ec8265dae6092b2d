//! Request checks shared by every handler: path parts, `Authorization` and secrets, `Accept`,
//! bounded CBOR bodies, blocking work off the runtime.

use super::*;

pub(super) fn parse_si(s: &str) -> Result<StorageIndex, HttpError> {
    gbs::parse_storage_index(s).ok_or_else(HttpError::not_found)
}

pub(super) fn parse_shnum(s: &str) -> Result<ShareNum, HttpError> {
    gbs::parse_share_number(s).ok_or_else(HttpError::not_found)
}

pub(super) fn first(headers: &HeaderMap, name: header::HeaderName) -> Option<&[u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

/// `Authorization` then the exact secret set.
pub(super) fn authorize(
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

pub(super) fn check_accept(headers: &HeaderMap) -> Result<(), HttpError> {
    Ok(gbs::check_accept(first(headers, header::ACCEPT))?)
}

pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Read a CBOR request body of at most `limit` bytes (415 / 413 / 408 / 400).
pub(super) async fn read_cbor_body(
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

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(HttpError::internal)
}

//! Writing files: `PUT /uri` (a new immutable or mutable file) and `PUT /uri/$WRITECAP` (replace or change a mutable file).

use super::*;

/// `PUT /uri`: create an unlinked file; the answer is its cap.
pub(in crate::gateway) async fn put_uri(
    state: &Arc<GatewayState>,
    args: &Args,
    req: Request<Body>,
) -> Result<Response, WebError> {
    match args.t() {
        "" => {}
        "mkdir" => return Err(WebError::not_implemented(DIRS_UNSUPPORTED)),
        _ => {
            return Err(WebError::bad_request(
                "/uri accepts only PUT, PUT?t=mkdir, POST?t=upload, and POST?t=mkdir",
            ))
        }
    }
    let format = match get_format(args)? {
        "SDMF" => Some(MutableFormat::Sdmf),
        "MDMF" => Some(MutableFormat::Mdmf),
        _ => None,
    };
    if let Some(format) = format {
        // Tahoe's PUTUnlinkedSSK: the whole body, an optional caller-supplied key.
        let key = private_key_arg(args)?;
        let data = read_mutable_body(state, req).await?;
        let (cap, trips) = state.backend.create_mutable(format, data, key).await?;
        let mut r = text_response(StatusCode::OK, "text/plain", cap);
        set_round_trips(&mut r, &trips.header_value());
        return Ok(r);
    }
    let length = content_length(req.headers())?;
    let body = req.into_body();
    let cap = match spool(state, body, length).await? {
        Spooled::Lit(data) => LitCap::new(data.to_vec()).to_string(),
        Spooled::Upload(source) => state.backend.upload(source).await?,
    };
    Ok(text_response(StatusCode::OK, "text/plain", cap))
}

pub(super) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, WebError> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| WebError::bad_request("Content-Length is not a number")),
    }
}

/// Tahoe's `get_keypair`: `private-key=` is URL-safe base64 of an RSA private key's PKCS#8
/// DER (what `tahoe put --private-key-path` sends).
pub(super) fn private_key_arg(args: &Args) -> Result<Option<SigningKey>, WebError> {
    let Some(text) = args.get("private-key") else {
        return Ok(None);
    };
    let der = cairn_core::storage::gbs::b64::urlsafe_decode_lenient(text).ok_or_else(|| {
        WebError::bad_request("invalid private-key= argument: not URL-safe base64")
    })?;
    SigningKey::from_pkcs8_der(&der).map(Some).map_err(|e| {
        WebError::bad_request(format!(
            "invalid private-key= argument: not an RSA private key in PKCS#8 DER: {e}"
        ))
    })
}

/// A mutable file's new contents: the whole body, in memory (the driver encodes the file
/// whole), at most [`GatewayState::mutable_max_body`] bytes (413 beyond).
pub(super) async fn read_mutable_body(
    state: &GatewayState,
    req: Request<Body>,
) -> Result<Bytes, WebError> {
    let limit = state.mutable_max_body;
    let too_large = |n: String| {
        WebError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "FileTooLargeError: mutable files are limited to {limit} bytes on this gateway \
                 (the request body has {n})"
            ),
        )
    };
    let length = content_length(req.headers())?;
    if let Some(n) = length.filter(|&n| n > limit) {
        return Err(too_large(format!("{n} bytes")));
    }
    let mut stream = req.into_body().into_data_stream();
    let mut mem = BytesMut::with_capacity(length.unwrap_or(0) as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(body_error)?;
        if (mem.len() + chunk.len()) as u64 > limit {
            return Err(too_large("more".into()));
        }
        mem.extend_from_slice(&chunk);
    }
    if let Some(n) = length.filter(|&n| n != mem.len() as u64) {
        return Err(WebError::bad_request(format!(
            "the request body ended after {} of {n} bytes",
            mem.len()
        )));
    }
    Ok(mem.freeze())
}

/// `PUT /uri/$FILECAP` (Tahoe's `FileNodeHandler.render_PUT` for a file with no parent):
/// a mutable file's write cap replaces its contents, or with `offset=N` changes the bytes
/// from N (an offset past the end: SDMF appends at the end as Python's slicing does, MDMF
/// refuses; an MDMF change is written in place). The answer is the write cap.
pub(super) async fn put_file(
    state: &Arc<GatewayState>,
    file: FileCap,
    args: &Args,
    req: Request<Body>,
) -> Result<Response, WebError> {
    let t = args.t().to_string();
    let replace = match args.get("replace") {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("only-files") => true,
        Some(v) => args
            .boolean("replace", true)
            .map_err(|_| WebError::bad_request(format!("invalid replace= argument: '{v}'")))?,
    };
    let offset = match args.get("offset") {
        None => None,
        Some(v) => Some(v.trim().parse::<i128>().map_err(|_| {
            WebError::bad_request(format!("invalid offset= argument: '{v}' is not an integer"))
        })?),
    };
    match t.as_str() {
        "" => {}
        "uri" => return Err(WebError::bad_request(
            "PUT /uri/$FILECAP?t=uri needs a directory entry to replace; a file cap alone has none",
        )),
        t => return Err(WebError::bad_request(format!("PUT to a file: bad t={t}"))),
    }
    if !replace {
        return Err(WebError::new(
            StatusCode::CONFLICT,
            "There was already a child by that name, and you asked me to not replace it.",
        ));
    }
    let FileCap::Mutable(cap) = file else {
        if offset.is_some() {
            return Err(WebError::bad_request(
                "PUT to a file: append operation invoked on an immutable cap",
            ));
        }
        return Err(WebError::bad_request(
            "PUT to an immutable file cap: an immutable file cannot be replaced (upload with PUT /uri)",
        ));
    };
    let caps = mutable_caps(&cap);
    if caps.rw_uri.is_none() {
        return Err(WebError::bad_request(
            "PUT to a mutable file: replace or update requested with read-only cap",
        ));
    }
    let offset = match offset {
        None => None,
        Some(o) if o >= 0 => Some(u64::try_from(o).unwrap_or(u64::MAX)),
        Some(_) => {
            return Err(WebError::bad_request(
                "PUT to a mutable file: Invalid offset",
            ))
        }
    };
    let data = read_mutable_body(state, req).await?;
    let trips = match offset {
        None => state.backend.overwrite_mutable(&cap, data).await?,
        // The backend applies Tahoe's rules for an offset past the end with the size its
        // own write-mode servermap update finds: no separate open.
        Some(offset) => state.backend.modify_mutable(&cap, offset, data).await?,
    };
    let mut r = text_response(StatusCode::OK, "text/plain", cap.to_string());
    set_round_trips(&mut r, &trips.header_value());
    Ok(r)
}

//! Streaming a file's bytes (whole or one range) into the response, typed by its name.

use super::*;

/// Content-Type from a file name, as Tahoe guesses it (Python's `mimetypes`; `text/plain`
/// when unknown or unnamed).
pub(super) fn content_type_for(name: Option<&str>) -> &'static str {
    let ext = name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html",
        Some("css") => "text/css",
        Some("js") => "application/javascript",
        Some("json") => "application/json",
        Some("xml") => "text/xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("tar") => "application/x-tar",
        Some("mp3") => "audio/mpeg",
        Some("mp4") => "video/mp4",
        Some("bin" | "exe") => "application/octet-stream",
        _ => "text/plain",
    }
}

pub(super) async fn download(
    state: &Arc<GatewayState>,
    file: Readable,
    args: &Args,
    headers: &HeaderMap,
    head: bool,
    name: Option<String>,
) -> Result<Response, WebError> {
    let size = file.size();
    let filename = args.get("filename").map(str::to_string).or(name);
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, first, len) = match parse_range(range_header, size) {
        RangeRequest::Whole => (StatusCode::OK, 0, size),
        RangeRequest::Partial(f, l) => (StatusCode::PARTIAL_CONTENT, f, l - f + 1),
        RangeRequest::Unsatisfiable => {
            let mut r = WebError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "First beyond end of file",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type_for(filename.as_deref()))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, len.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", first, first + len - 1, size),
        );
    }
    if args.boolean("save", false)? {
        let n = filename
            .as_deref()
            .unwrap_or("unknown")
            .replace(['"', '\r', '\n'], "_");
        builder = builder.header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{n}\""),
        );
    }
    let internal =
        |e: axum::http::Error| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    if head {
        return builder.body(Body::empty()).map_err(internal);
    }
    let body = match file {
        _ if len == 0 => Body::empty(),
        Readable::Lit(c) => {
            let data = Bytes::copy_from_slice(c.data());
            Body::from(data.slice(first as usize..(first + len) as usize))
        }
        Readable::Chk(cap) => stream(state, Source::Chk(cap), first..first + len).await?,
        Readable::Mutable(m) => stream(state, Source::Mutable(m), first..first + len).await?,
    };
    builder.body(body).map_err(internal)
}

/// What [`stream`] reads from.
pub(super) enum Source {
    Chk(ChkReadCap),
    Mutable(Box<dyn MutableReader>),
}

/// Run the download into a pipe and stream the pipe as the response body. An error before
/// the first byte becomes an error answer; one after it cuts the response short (the client
/// sees fewer bytes than Content-Length), as nothing else can be said once headers are out.
pub(super) async fn stream(
    state: &Arc<GatewayState>,
    source: Source,
    range: std::ops::Range<u64>,
) -> Result<Body, WebError> {
    let (mut reader, mut writer) = tokio::io::duplex(DOWNLOAD_PIPE);
    let backend = state.backend.clone();
    let task = tokio::spawn(async move {
        let r = match source {
            Source::Chk(cap) => backend.download(&cap, range, &mut writer).await,
            Source::Mutable(m) => m.read(range, &mut writer).await,
        };
        if r.is_ok() {
            let _ = writer.shutdown().await;
        }
        r
    });
    let mut first = BytesMut::with_capacity(DOWNLOAD_CHUNK);
    let n = reader
        .read_buf(&mut first)
        .await
        .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("download: {e}")))?;
    if n == 0 {
        return match task.await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "download produced no data",
            )),
            Err(e) => Err(WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("download: {e}"),
            )),
        };
    }
    struct St {
        reader: tokio::io::DuplexStream,
        task: Option<tokio::task::JoinHandle<Result<(), WebError>>>,
        first: Option<Bytes>,
    }
    impl Drop for St {
        fn drop(&mut self) {
            // The client went away: stop the download.
            if let Some(t) = self.task.take() {
                t.abort();
            }
        }
    }
    let st = St {
        reader,
        task: Some(task),
        first: Some(first.freeze()),
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if let Some(b) = st.first.take() {
            return Some((Ok(b), st));
        }
        let mut buf = BytesMut::with_capacity(DOWNLOAD_CHUNK);
        match st.reader.read_buf(&mut buf).await {
            Ok(0) => {
                let task = st.task.take()?;
                let err = match task.await {
                    Ok(Ok(())) => return None,
                    Ok(Err(e)) => e.text,
                    Err(e) => e.to_string(),
                };
                tracing::warn!("download failed after the response started: {err}");
                Some((Err(std::io::Error::other(err)), st))
            }
            Ok(_) => Some((Ok(buf.freeze()), st)),
            Err(e) => Some((Err(e), st)),
        }
    });
    Ok(Body::from_stream(stream))
}

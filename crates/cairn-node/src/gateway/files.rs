//! `PUT /uri` (upload; `format=sdmf|mdmf`/`mutable=true`: a new mutable file),
//! `PUT /uri/$WRITECAP` (replace or, with `offset=`, change a mutable file), `GET /uri/$CAP`
//! (download, ranges, `t=json`) for immutable and mutable caps, `GET /uri?uri=`.

use std::io::{Seek, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use cairn_core::cap::{Cap, ChkReadCap, LitCap};
use cairn_core::chk::{ConvergentKeyHasher, LIT_SIZE_THRESHOLD};
use cairn_core::mutable::keys::SigningKey;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::backend::{MutableFormat, MutableReader, UploadSource, ROUND_TRIPS_HEADER};
use super::{get_format, pyjson, text_response, Args, GatewayState, WebError, DIRS_UNSUPPORTED};

/// Upload bodies up to this size are held in memory; larger ones are spooled to a file.
pub const MEMORY_SPOOL_LIMIT: u64 = 1 << 20;

/// Chunks of a download handed to the HTTP connection, and the pipe between the download
/// driver and the response body.
const DOWNLOAD_CHUNK: usize = 256 * 1024;
const DOWNLOAD_PIPE: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// upload

/// `PUT /uri`: create an unlinked file; the answer is its cap.
pub(super) async fn put_uri(
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

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, WebError> {
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
fn private_key_arg(args: &Args) -> Result<Option<SigningKey>, WebError> {
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
async fn read_mutable_body(state: &GatewayState, req: Request<Body>) -> Result<Bytes, WebError> {
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

enum Spooled {
    /// At most 55 bytes: a LIT cap, no server involved.
    Lit(Bytes),
    Upload(UploadSource),
}

fn body_error(e: axum::Error) -> WebError {
    WebError::bad_request(format!("reading the request body: {e}"))
}

/// Take the request body: in memory when small, else into an anonymous file in the node's
/// temp directory, hashing the convergent key on the way when the length is known.
async fn spool(state: &GatewayState, body: Body, length: Option<u64>) -> Result<Spooled, WebError> {
    let mut stream = body.into_data_stream();
    let mut mem = BytesMut::new();
    if length.is_none_or(|n| n <= MEMORY_SPOOL_LIMIT) {
        let limit = length.unwrap_or(MEMORY_SPOOL_LIMIT);
        if let Some(n) = length {
            mem.reserve(n as usize);
        }
        let mut overflow = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(body_error)?;
            if (mem.len() + chunk.len()) as u64 > limit {
                if length.is_some() {
                    return Err(WebError::bad_request(
                        "the request body is longer than its Content-Length",
                    ));
                }
                overflow = Some(chunk);
                break;
            }
            mem.extend_from_slice(&chunk);
        }
        match overflow {
            None => {
                let data = mem.freeze();
                if data.len() as u64 <= LIT_SIZE_THRESHOLD {
                    return Ok(Spooled::Lit(data));
                }
                return Ok(Spooled::Upload(UploadSource::Bytes(data)));
            }
            Some(chunk) => {
                // Unknown length and more than fits in memory: to a file, key computed later.
                let mut file = FileSpool::new(state, None)?;
                file.send(mem.freeze()).await?;
                file.send(chunk).await?;
                while let Some(chunk) = stream.next().await {
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => return file.fail(body_error(e)).await,
                    };
                    file.send(chunk).await?;
                }
                return file.finish().await.map(Spooled::Upload);
            }
        }
    }
    let size = length.unwrap_or(0);
    let hasher =
        ConvergentKeyHasher::new(&state.params, size, &state.convergence).map_err(|e| {
            WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("convergent key: {e}"),
            )
        })?;
    let mut file = FileSpool::new(state, Some(hasher))?;
    let mut got = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return file.fail(body_error(e)).await,
        };
        got += chunk.len() as u64;
        if got > size {
            return file
                .fail(WebError::bad_request(
                    "the request body is longer than its Content-Length",
                ))
                .await;
        }
        file.send(chunk).await?;
    }
    if got != size {
        return file
            .fail(WebError::bad_request(format!(
                "the request body ended after {got} of {size} bytes"
            )))
            .await;
    }
    file.finish().await.map(Spooled::Upload)
}

/// A blocking thread that writes (and hashes) body chunks into an anonymous temp file, so
/// neither disk writes nor SHA-256 run on the async workers.
/// The spooled file (rewound), its length, and the convergent key if it was hashed.
type SpoolResult = std::io::Result<(std::fs::File, u64, Option<[u8; 16]>)>;

struct FileSpool {
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    task: tokio::task::JoinHandle<SpoolResult>,
    tempdir: std::path::PathBuf,
}

impl FileSpool {
    fn new(
        state: &GatewayState,
        hasher: Option<ConvergentKeyHasher>,
    ) -> Result<FileSpool, WebError> {
        let tempdir = state.tempdir.clone();
        let file = tempfile::tempfile_in(&tempdir).map_err(|e| spool_error(&tempdir, e))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let task = tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            let mut n = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
                w.write_all(&chunk)?;
                n += chunk.len() as u64;
            }
            let mut file = w.into_inner().map_err(|e| e.into_error())?;
            file.flush()?;
            file.rewind()?;
            let key = match hasher {
                None => None,
                Some(h) => Some(h.finish().map_err(std::io::Error::other)?),
            };
            Ok((file, n, key))
        });
        Ok(FileSpool {
            tx: Some(tx),
            task,
            tempdir,
        })
    }

    async fn send(&mut self, chunk: Bytes) -> Result<(), WebError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let failed = match &self.tx {
            Some(tx) => tx.send(chunk).await.is_err(),
            None => true,
        };
        if failed {
            // The writer stopped: say why.
            self.tx = None;
            let err = match (&mut self.task).await {
                Ok(Err(e)) => spool_error(&self.tempdir, e),
                _ => WebError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "spooling the upload failed",
                ),
            };
            return Err(err);
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<UploadSource, WebError> {
        self.tx = None;
        match (&mut self.task).await {
            Ok(Ok((file, size, key))) => Ok(UploadSource::File { file, size, key }),
            Ok(Err(e)) => Err(spool_error(&self.tempdir, e)),
            Err(e) => Err(WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("spooling the upload: {e}"),
            )),
        }
    }

    /// Abandon the spool (the writer stops and its file goes) and fail with `err`.
    async fn fail<T>(mut self, err: WebError) -> Result<T, WebError> {
        self.tx = None;
        let _ = (&mut self.task).await;
        Err(err)
    }
}

fn spool_error(dir: &std::path::Path, e: std::io::Error) -> WebError {
    WebError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("spooling the upload to {}: {e}", dir.display()),
    )
}

// ---------------------------------------------------------------------------------------
// GET /uri?uri=

/// `GET /uri?uri=$CAP[&more]`: 302 to `/uri/$CAP[?more]` (Tahoe's `URIHandler.render_GET`).
pub(super) fn get_uri_redirect(
    args: &Args,
    headers: &HeaderMap,
    base: &str,
) -> Result<Response, WebError> {
    let Some(cap) = args.get("uri") else {
        return Err(WebError::bad_request("GET /uri requires uri="));
    };
    if Cap::parse(cap.trim()).is_err() {
        return Err(WebError::bad_request("Invalid capability"));
    }
    let mut location = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}/{base}/{}", quote(cap)),
        None => format!("/{base}/{}", quote(cap)),
    };
    let rest: Vec<(&String, &String)> =
        args.0.iter().filter(|(k, _)| k.as_str() != "uri").collect();
    if !rest.is_empty() {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in rest {
            ser.append_pair(k, v);
        }
        location.push('?');
        location.push_str(&ser.finish());
    }
    let mut r = (StatusCode::FOUND, format!("redirecting to {location}\n")).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=utf-8"),
    );
    Ok(r)
}

/// Python's `urllib.parse.quote(s)` (safe: letters, digits, `_.-~/`).
pub(crate) fn quote(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'_')
        .remove(b'.')
        .remove(b'-')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(s, SET).to_string()
}

// ---------------------------------------------------------------------------------------
// /uri/$CAP

/// Everything under `/uri/$CAP` (and `/file/$CAP/NAME`, with `name`).
pub(super) async fn cap_request(
    state: &Arc<GatewayState>,
    cap_text: &str,
    rest: &[String],
    args: &Args,
    req: Request<Body>,
    name: Option<String>,
) -> Result<Response, WebError> {
    let cap = Cap::parse(cap_text.trim()).map_err(|e| {
        let shown: String = cap_text.chars().take(80).collect();
        let more = if cap_text.chars().count() > 80 {
            "..."
        } else {
            ""
        };
        WebError::bad_request(format!(
            "'{shown}{more}' is not a valid file- or directory- cap: {e}"
        ))
    })?;
    let file = match cap {
        Cap::Lit(c) => FileCap::Lit(c),
        Cap::ChkRead(c) => FileCap::Chk(c),
        c @ (Cap::SdmfWrite(_) | Cap::SdmfRead(_) | Cap::MdmfWrite(_) | Cap::MdmfRead(_)) => {
            FileCap::Mutable(c)
        }
        Cap::ChkVerify(_) | Cap::SdmfVerify(_) | Cap::MdmfVerify(_) => {
            return Err(WebError::bad_request(
                "a verify cap cannot be read (it holds no decryption key)",
            ));
        }
        c if c.is_directory() => return Err(WebError::not_implemented(DIRS_UNSUPPORTED)),
        c => {
            return Err(WebError::bad_request(format!(
                "{} is not a file cap",
                c.kind_name()
            )))
        }
    };
    if let Some(child) = rest.first() {
        return Err(WebError::bad_request(format!(
            "Files have no children named '{child}'"
        )));
    }
    let method = req.method().clone();
    match method {
        Method::GET | Method::HEAD => {
            get_file(
                state,
                file,
                args,
                req.headers(),
                method == Method::HEAD,
                name,
            )
            .await
        }
        Method::PUT => put_file(state, file, args, req).await,
        Method::POST => match args.t() {
            "check" | "stream-deep-check" | "stream-manifest" | "start-deep-stats" => Err(
                WebError::not_implemented(format!("t={} is not supported yet", args.t())),
            ),
            "upload" => Err(WebError::not_implemented(
                "POST (form upload) to a file is not supported yet; use PUT /uri/$WRITECAP",
            )),
            t => Err(WebError::bad_request(format!("POST to file: bad t={t}"))),
        },
        Method::DELETE => Err(WebError::bad_request(
            "DELETE needs a directory entry; a file cap alone cannot be deleted",
        )),
        m => Err(WebError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} is not supported on a file"),
        )),
    }
}

enum FileCap {
    Lit(LitCap),
    Chk(ChkReadCap),
    /// An SSK or MDMF write or read cap.
    Mutable(Cap),
}

/// The caps Tahoe's filenode JSON shows for a mutable file cap: write cap (for a write
/// cap), read cap, verify cap, and the format (from the cap, as Tahoe's `get_version`).
struct MutableCaps {
    rw_uri: Option<String>,
    ro_uri: String,
    verify_uri: String,
    format: MutableFormat,
}

fn mutable_caps(cap: &Cap) -> MutableCaps {
    assert!(
        matches!(
            cap,
            Cap::SdmfWrite(_) | Cap::SdmfRead(_) | Cap::MdmfWrite(_) | Cap::MdmfRead(_)
        ),
        "FileCap::Mutable holds only SSK and MDMF write and read caps"
    );
    let (Some(ro), Some(verify), Some(format)) =
        (cap.readonly(), cap.verifier(), cap.mutable_format())
    else {
        unreachable!("mutable file caps have a read cap, a verify cap and a format")
    };
    MutableCaps {
        rw_uri: (!cap.is_readonly()).then(|| cap.to_string()),
        ro_uri: ro.to_string(),
        verify_uri: verify.to_string(),
        format,
    }
}

fn format_name(f: MutableFormat) -> &'static str {
    match f {
        MutableFormat::Sdmf => "SDMF",
        MutableFormat::Mdmf => "MDMF",
    }
}

/// The filenode JSON of Tahoe's `_file_json_metadata` for a file cap with no parent: keys
/// in Tahoe's order (`get_filenode_metadata`'s, then `ro_uri`, `rw_uri`, `verify_uri`).
#[derive(Serialize)]
struct FileJson {
    mutable: bool,
    format: &'static str,
    /// Left out for a mutable file with no recoverable version (Tahoe's `get_size()` is
    /// then `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    ro_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rw_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify_uri: Option<String>,
}

/// A file ready to be read: its size is known.
enum Readable {
    Lit(LitCap),
    Chk(ChkReadCap),
    Mutable(Box<dyn MutableReader>),
}

impl Readable {
    fn size(&self) -> u64 {
        match self {
            Readable::Lit(c) => c.size(),
            Readable::Chk(c) => c.size(),
            Readable::Mutable(m) => m.info().size,
        }
    }
}

async fn get_file(
    state: &Arc<GatewayState>,
    file: FileCap,
    args: &Args,
    headers: &HeaderMap,
    head: bool,
    name: Option<String>,
) -> Result<Response, WebError> {
    let t = args.t();
    if head && !t.is_empty() {
        return Err(WebError::bad_request(format!("HEAD file: bad t={t}")));
    }
    // Tahoe's ETag for immutable files: "<b32 storage index>-<t>" (not for LIT: no SI;
    // not for mutable files, whose contents change).
    let etag = match &file {
        FileCap::Chk(c) if matches!(t, "" | "json" | "uri" | "readonly-uri") => {
            Some(format!("{}-{}", c.storage_index().to_base32(), t))
        }
        _ => None,
    };
    if let Some(tag) = &etag {
        if let Some(inm) = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
        {
            let quoted = format!("\"{tag}\"");
            if inm
                .split([' ', ','])
                .any(|x| x == "*" || x == tag || x == quoted)
            {
                let mut r = StatusCode::NOT_MODIFIED.into_response();
                set_etag(&mut r, tag);
                return Ok(r);
            }
        }
    }
    let mut r = match t {
        "" => {
            let readable = match file {
                FileCap::Lit(c) => Readable::Lit(c),
                FileCap::Chk(c) => Readable::Chk(c),
                // Tahoe's get_best_readable_version: a read-mode servermap update first.
                FileCap::Mutable(c) => Readable::Mutable(state.backend.open_mutable(&c).await?),
            };
            // A mutable file's reads stream after the headers: only the open is counted.
            let opened = match &readable {
                Readable::Mutable(m) => Some(m.round_trips()),
                _ => None,
            };
            let mut r = download(state, readable, args, headers, head, name).await?;
            if let Some(t) = opened {
                set_round_trips(
                    &mut r,
                    &format!("{} (servermap={})", t.total(), t.servermap),
                );
            }
            r
        }
        "json" => {
            let j = match &file {
                FileCap::Lit(c) => FileJson {
                    mutable: false,
                    format: "CHK",
                    size: Some(c.size()),
                    ro_uri: c.to_string(),
                    rw_uri: None,
                    verify_uri: None,
                },
                FileCap::Chk(c) => FileJson {
                    mutable: false,
                    format: "CHK",
                    size: Some(c.size()),
                    ro_uri: c.to_string(),
                    rw_uri: None,
                    verify_uri: Some(c.verifier().to_string()),
                },
                FileCap::Mutable(c) => {
                    // Tahoe updates the servermap to learn the size; a file with no
                    // recoverable version is described without one.
                    let size = match state.backend.open_mutable(c).await {
                        Ok(m) => Some(m.info().size),
                        Err(e) if e.status == StatusCode::GONE => None,
                        Err(e) => return Err(e),
                    };
                    let caps = mutable_caps(c);
                    FileJson {
                        mutable: true,
                        format: format_name(caps.format),
                        size,
                        ro_uri: caps.ro_uri,
                        rw_uri: caps.rw_uri,
                        verify_uri: Some(caps.verify_uri),
                    }
                }
            };
            text_response(
                StatusCode::OK,
                "text/plain",
                pyjson::dumps_indent1(&("filenode", j)),
            )
        }
        "uri" => text_response(StatusCode::OK, "text/plain", file_uri(&file)),
        "readonly-uri" => {
            let ro = match &file {
                FileCap::Mutable(c) => mutable_caps(c).ro_uri,
                other => file_uri(other),
            };
            text_response(StatusCode::OK, "text/plain", ro)
        }
        "info" => return Err(WebError::not_implemented("t=info is not supported yet")),
        t => return Err(WebError::bad_request(format!("GET file: bad t={t}"))),
    };
    if let Some(tag) = &etag {
        set_etag(&mut r, tag);
    }
    Ok(r)
}

fn file_uri(file: &FileCap) -> String {
    match file {
        FileCap::Lit(c) => c.to_string(),
        FileCap::Chk(c) => c.to_string(),
        FileCap::Mutable(c) => c.to_string(),
    }
}

/// `PUT /uri/$FILECAP` (Tahoe's `FileNodeHandler.render_PUT` for a file with no parent):
/// a mutable file's write cap replaces its contents, or with `offset=N` changes the bytes
/// from N (an offset past the end: SDMF appends at the end as Python's slicing does, MDMF
/// refuses; an MDMF change is written in place). The answer is the write cap.
async fn put_file(
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

/// `X-Cairn-Round-Trips` (see [`super::RoundTripCount::header_value`]).
fn set_round_trips(r: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(ROUND_TRIPS_HEADER, v);
    }
}

fn set_etag(r: &mut Response, tag: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{tag}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
}

/// What a `Range` header asks for, read as Tahoe's `FileDownloader.parse_range_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No header, or one Tahoe ignores (other units, a syntax error, last < first).
    Whole,
    /// Inclusive `first..=last`, already clamped to the file.
    Partial(u64, u64),
    /// Starts at or beyond the end: 416.
    Unsatisfiable,
}

/// Python's `int(s)` for the digits Tahoe reads (sign and surrounding space allowed),
/// saturating instead of growing without bound.
fn py_int(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = 0;
    for b in digits.bytes() {
        v = v.saturating_mul(10).saturating_add(i128::from(b - b'0'));
    }
    v = v.min(i128::MAX / 4);
    Some(if neg { -v } else { v })
}

pub(crate) fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(h) = header else {
        return RangeRequest::Whole;
    };
    let size_i = i128::from(size);
    let parse = || -> Option<(i128, i128)> {
        let (units, set) = h.split_once('=')?;
        if units != "bytes" {
            return None;
        }
        let mut first_range = None;
        for r in set.split(',') {
            let (first, last) = r.trim().split_once('-')?;
            let (f, l) = if first.is_empty() {
                (size_i - py_int(last)?, size_i - 1)
            } else {
                let f = py_int(first)?;
                let l = if last.is_empty() {
                    size_i - 1
                } else {
                    py_int(last)?
                };
                (f, l)
            };
            if l < f {
                return None;
            }
            first_range.get_or_insert((f, l));
        }
        first_range
    };
    match parse() {
        None => RangeRequest::Whole,
        Some((f, _)) if f >= size_i || size == 0 => RangeRequest::Unsatisfiable,
        Some((f, l)) => {
            let f = f.max(0);
            let l = l.min(size_i - 1);
            RangeRequest::Partial(f as u64, l as u64)
        }
    }
}

/// Content-Type from a file name, as Tahoe guesses it (Python's `mimetypes`; `text/plain`
/// when unknown or unnamed).
fn content_type_for(name: Option<&str>) -> &'static str {
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

async fn download(
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
enum Source {
    Chk(ChkReadCap),
    Mutable(Box<dyn MutableReader>),
}

/// Run the download into a pipe and stream the pipe as the response body. An error before
/// the first byte becomes an error answer; one after it cuts the response short (the client
/// sees fewer bytes than Content-Length), as nothing else can be said once headers are out.
async fn stream(
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

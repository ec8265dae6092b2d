//! The node's web gateway: the part of Tahoe-LAFS 1.20's web API (`docs/frontends/webapi.rst`,
//! `allmydata/web/`) that cairn implements so far, with Tahoe's status codes and bodies.
//!
//! | request | answer |
//! |---|---|
//! | `PUT /uri` (body = file; `format=chk`, default) | 200, the cap as `text/plain` |
//! | `PUT /uri?format=sdmf\|mdmf` or `?mutable=true` (SDMF), `&private-key=` | 200, a new mutable file's write cap |
//! | `PUT /uri/$WRITECAP` (`?offset=N`: change bytes from N) | 200, the write cap |
//! | `PUT /uri?t=mkdir` | 501 (not supported yet) |
//! | `GET /uri/$CAP` (`Range: bytes=a-b` → 206, `Content-Range`; beyond the end → 416) | the file (CHK, LIT, SSK, MDMF) |
//! | `HEAD /uri/$CAP` | the headers of the above |
//! | `GET /uri/$CAP?t=json` | `["filenode", {"mutable", "format", "size", "ro_uri", "rw_uri", "verify_uri"}]` |
//! | `GET /uri/$CAP?t=uri`, `?t=readonly-uri` | the cap |
//! | `GET /file/$CAP/NAME`, `/named/$CAP/NAME` | the file, typed by NAME |
//! | `GET /uri?uri=$CAP` | 302 to `/uri/$CAP` |
//! | `GET /?t=json` | `{"introducers": {"statuses": []}, "servers": [...]}` |
//! | `GET /statistics?t=json` | `{"counters": {...}, "stats": {}}`: requests of mutable operations |
//!
//! Mutable file answers carry `X-Cairn-Round-Trips` (see [`RoundTripCount::header_value`]):
//! the storage-server requests the operation sent; on a `GET`, those of the servermap
//! update only (the reads stream after the headers; `/statistics` counts them).
//! Paths are split on `/` and each segment percent-decoded (as Twisted does), so a cap may be
//! sent raw (`/uri/URI:CHK:...`) or quoted (`/uri/URI%3ACHK%3A...`). `/cap` is `/uri`.
//! Errors are a status code and a one-line `text/plain` body.

pub mod backend;
mod files;
mod grid_backend;
pub mod pyjson;
mod root;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_client::Grid;
use cairn_core::chk::EncodingParams;
use percent_encoding::percent_decode_str;

pub use backend::{
    mutable_error, Backend, BoxFuture, MutableFormat, MutableInfo, MutableOp, MutableReader,
    RoundTripCount, UploadSource, MUTABLE_NOT_WIRED, ROUND_TRIPS_HEADER,
};
pub use grid_backend::GridBackend;

use crate::config::{ClientConfig, Secrets};

/// An error answer: a status and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebError {
    pub status: StatusCode,
    pub text: String,
}

impl WebError {
    pub fn new(status: StatusCode, text: impl Into<String>) -> WebError {
        WebError {
            status,
            text: text.into(),
        }
    }
    pub fn bad_request(text: impl Into<String>) -> WebError {
        Self::new(StatusCode::BAD_REQUEST, text)
    }
    pub fn not_implemented(text: impl Into<String>) -> WebError {
        Self::new(StatusCode::NOT_IMPLEMENTED, text)
    }
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.text)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let mut text = self.text.replace(['\r', '\n'], " ");
        text.push('\n');
        let mut r = (self.status, text).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain;charset=utf-8"),
        );
        r
    }
}

/// What every handler shares.
pub struct GatewayState {
    pub grid: Grid,
    pub params: EncodingParams,
    pub(crate) convergence: Vec<u8>,
    /// Where upload bodies are spooled.
    pub tempdir: PathBuf,
    pub nickname: String,
    pub backend: Arc<dyn Backend>,
    /// The largest body accepted for a mutable file (the driver encodes the whole file in
    /// memory): [`MUTABLE_MAX_BODY`] unless changed.
    pub mutable_max_body: u64,
}

/// Default of [`GatewayState::mutable_max_body`]: 64 MiB. A mutable file is encoded in
/// memory, whole (about `1 + N/k` times its size at once); Tahoe has no limit and holds it
/// in memory the same way.
pub const MUTABLE_MAX_BODY: u64 = 64 << 20;

impl GatewayState {
    /// A gateway over `grid`, uploading with the node's parameters and convergence secret.
    pub fn new(config: &ClientConfig, grid: Grid, secrets: Secrets) -> GatewayState {
        let upload = cairn_client::upload::UploadConfig {
            params: config.params,
            convergence: secrets.convergence.clone(),
            lease_secret: Some(secrets.lease.clone()),
        };
        let mut mutable = cairn_client::mutable::MutableOptions::new(
            u8::try_from(config.params.needed).unwrap_or(u8::MAX),
            u8::try_from(config.params.total).unwrap_or(u8::MAX),
            usize::from(config.params.happy),
        );
        mutable.lease_secret = Some(secrets.lease.clone());
        mutable.own_server = own_server(config, &grid);
        let backend = Arc::new(GridBackend::new(grid.clone(), upload).with_mutable(
            mutable,
            config.params.needed <= 255 && config.params.total <= 255,
        ));
        Self::with_backend(config, grid, secrets, backend)
    }

    /// The same, with another implementation of the grid calls.
    pub fn with_backend(
        config: &ClientConfig,
        grid: Grid,
        secrets: Secrets,
        backend: Arc<dyn Backend>,
    ) -> GatewayState {
        GatewayState {
            grid,
            params: config.params,
            convergence: secrets.convergence,
            tempdir: config.tempdir.clone(),
            nickname: config.node.nickname.clone(),
            backend,
            mutable_max_body: MUTABLE_MAX_BODY,
        }
    }
}

/// The index in `grid` of this node's own storage server, when it runs one (`[storage]
/// enabled`) and `servers.yaml` lists it: the mutable driver keeps a copy of a new file's
/// share there (with the encrypted private key). Matched by Foolscap tubid or server id.
fn own_server(config: &ClientConfig, grid: &Grid) -> Option<usize> {
    if !config.node.storage_enabled {
        return None;
    }
    // The storage server was started first, so its identity exists and this only reads it.
    let id = match cairn_config::identity::NodeIdentity::load_or_create(&config.node) {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!("own storage server's identity: {e}");
            return None;
        }
    };
    grid.servers()
        .iter()
        .position(|s| s.info.tubid == id.tubid || s.info.server_id == id.server_id)
}

/// A gateway serving in the background.
pub struct GatewayHandle {
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl GatewayHandle {
    /// Stop accepting, give requests in flight up to `grace`, then drop every connection.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown_tx.send(true);
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            self.task.abort();
            let _ = self.task.await;
        }
    }
}

/// The gateway as an axum router (every path goes to one dispatcher).
pub fn router(state: Arc<GatewayState>) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(state)
}

/// Serve the gateway on `listener` until [`GatewayHandle::shutdown`].
pub fn serve(listener: tokio::net::TcpListener, state: Arc<GatewayState>) -> GatewayHandle {
    let (shutdown_tx, mut rx) = tokio::sync::watch::channel(false);
    let app = router(state);
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!("web gateway: {e}");
        }
    });
    GatewayHandle { shutdown_tx, task }
}

/// Query arguments, first value of each name (Tahoe's `get_arg`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Args(HashMap<String, String>);

impl Args {
    fn parse(query: Option<&str>) -> Args {
        let mut m = HashMap::new();
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                m.entry(k.into_owned()).or_insert_with(|| v.into_owned());
            }
        }
        Args(m)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `t=`, stripped.
    pub(crate) fn t(&self) -> &str {
        self.get("t").map(str::trim).unwrap_or("")
    }

    /// Tahoe's `boolean_of_arg`.
    pub(crate) fn boolean(&self, name: &str, default: bool) -> Result<bool, WebError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "t" | "1" | "on" => Ok(true),
                "false" | "f" | "0" | "off" => Ok(false),
                _ => Err(WebError::bad_request(format!(
                    "invalid boolean argument: b'{v}'"
                ))),
            },
        }
    }
}

/// Tahoe's `get_format(req, "CHK")`: `format=` (CHK, SDMF, MDMF, any case), else
/// `mutable=true` means SDMF.
pub(crate) fn get_format(args: &Args) -> Result<&'static str, WebError> {
    match args.get("format").filter(|f| !f.is_empty()) {
        None => Ok(if args.boolean("mutable", false)? {
            "SDMF"
        } else {
            "CHK"
        }),
        Some(f) => match f.to_ascii_uppercase().as_str() {
            "CHK" => Ok("CHK"),
            "SDMF" => Ok("SDMF"),
            "MDMF" => Ok("MDMF"),
            _ => Err(WebError::bad_request(format!(
                "Unknown format: {f}, I know CHK, SDMF, MDMF"
            ))),
        },
    }
}

pub(crate) const DIRS_UNSUPPORTED: &str =
    "directories are not supported yet (cairn serves files only)";

/// Route a request: split the path into percent-decoded segments, as Twisted does.
async fn dispatch(
    axum::extract::State(state): axum::extract::State<Arc<GatewayState>>,
    req: Request<Body>,
) -> Response {
    let path = req.uri().path().to_string();
    let args = Args::parse(req.uri().query());
    let segments: Vec<String> = path
        .strip_prefix('/')
        .unwrap_or(&path)
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let method = req.method().clone();
    let result = match segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [""] => match method {
            Method::GET | Method::HEAD => root::root(&state, &args, method == Method::HEAD),
            _ => Err(method_not_allowed(&method, "/")),
        },
        ["uri" | "cap"] => match method {
            Method::PUT => files::put_uri(&state, &args, req).await,
            Method::GET | Method::HEAD => {
                files::get_uri_redirect(&args, req.headers(), &segments[0])
            }
            Method::POST => post_uri(&args),
            _ => Err(method_not_allowed(&method, &path)),
        },
        ["uri" | "cap", "", ..] => files::get_uri_redirect(&args, req.headers(), &segments[0]),
        ["uri" | "cap", cap, rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            files::cap_request(&state, cap, &rest, &args, req, None).await
        }
        ["file" | "named", cap, rest @ ..] => {
            if method != Method::GET && method != Method::HEAD {
                Err(WebError::bad_request(format!(
                    "/{} can only be used with GET or HEAD",
                    segments[0]
                )))
            } else {
                // /file/$CAP/NAME: NAME (the last segment) names the download.
                let name = rest.last().map(|s| s.to_string());
                files::cap_request(&state, cap, &[], &args, req, name).await
            }
        }
        ["statistics"] => match method {
            Method::GET | Method::HEAD => root::statistics(&state, &args),
            _ => Err(method_not_allowed(&method, &path)),
        },
        ["file" | "named"] => Err(WebError::new(
            StatusCode::NOT_FOUND,
            "/file must be followed by a file-cap and a name",
        )),
        _ => Err(WebError::new(
            StatusCode::NOT_FOUND,
            format!("No such resource: {path}"),
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn post_uri(args: &Args) -> Result<Response, WebError> {
    match args.t() {
        "mkdir" | "mkdir-with-children" | "mkdir-immutable" => {
            Err(WebError::not_implemented(DIRS_UNSUPPORTED))
        }
        "" | "upload" => Err(WebError::not_implemented(
            "POST /uri (form upload) is not supported yet; upload with PUT /uri",
        )),
        _ => Err(WebError::bad_request(
            "/uri accepts only PUT, PUT?t=mkdir, POST?t=upload, and POST?t=mkdir",
        )),
    }
}

fn method_not_allowed(method: &Method, path: &str) -> WebError {
    WebError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not supported on {path}"),
    )
}

/// Build a response with a text body.
pub(crate) fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

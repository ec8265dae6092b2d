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

mod cap;
mod download;
mod get;
mod range;
mod redirect;
mod spool;
mod upload;

pub(super) use cap::cap_request;
pub(super) use redirect::get_uri_redirect;
pub(super) use upload::put_uri;

use cap::*;
use download::*;
use get::*;
use range::*;
use spool::*;
use upload::*;

/// Upload bodies up to this size are held in memory; larger ones are spooled to a file.
pub const MEMORY_SPOOL_LIMIT: u64 = 1 << 20;

/// Chunks of a download handed to the HTTP connection, and the pipe between the download
/// driver and the response body.
const DOWNLOAD_CHUNK: usize = 256 * 1024;
const DOWNLOAD_PIPE: usize = 1024 * 1024;

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

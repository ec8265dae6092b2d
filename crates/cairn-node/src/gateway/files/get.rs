//! `GET`/`HEAD` of a file: `t=json` (Tahoe's filenode JSON), `t=uri`, ETags, then the download.

use super::*;

/// The filenode JSON of Tahoe's `_file_json_metadata` for a file cap with no parent: keys
/// in Tahoe's order (`get_filenode_metadata`'s, then `ro_uri`, `rw_uri`, `verify_uri`).
#[derive(Serialize)]
pub(super) struct FileJson {
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
pub(super) enum Readable {
    Lit(LitCap),
    Chk(ChkReadCap),
    Mutable(Box<dyn MutableReader>),
}

impl Readable {
    pub(super) fn size(&self) -> u64 {
        match self {
            Readable::Lit(c) => c.size(),
            Readable::Chk(c) => c.size(),
            Readable::Mutable(m) => m.info().size,
        }
    }
}

pub(super) async fn get_file(
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

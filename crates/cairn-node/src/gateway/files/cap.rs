//! Everything under `/uri/$CAP`: which file a cap names, its caps and format, and the dispatch on the method.

use super::*;

/// Everything under `/uri/$CAP` (and `/file/$CAP/NAME`, with `name`).
pub(in crate::gateway) async fn cap_request(
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

pub(super) enum FileCap {
    Lit(LitCap),
    Chk(ChkReadCap),
    /// An SSK or MDMF write or read cap.
    Mutable(Cap),
}

/// The caps Tahoe's filenode JSON shows for a mutable file cap: write cap (for a write
/// cap), read cap, verify cap, and the format (from the cap, as Tahoe's `get_version`).
pub(super) struct MutableCaps {
    pub(super) rw_uri: Option<String>,
    pub(super) ro_uri: String,
    pub(super) verify_uri: String,
    pub(super) format: MutableFormat,
}

pub(super) fn mutable_caps(cap: &Cap) -> MutableCaps {
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

pub(super) fn format_name(f: MutableFormat) -> &'static str {
    match f {
        MutableFormat::Sdmf => "SDMF",
        MutableFormat::Mdmf => "MDMF",
    }
}

pub(super) fn file_uri(file: &FileCap) -> String {
    match file {
        FileCap::Lit(c) => c.to_string(),
        FileCap::Chk(c) => c.to_string(),
        FileCap::Mutable(c) => c.to_string(),
    }
}

//! Talking to a node's web gateway (Tahoe's web API) the way the `tahoe` CLI does
//! (`allmydata/scripts/common_http.py::do_http`): one HTTP/1.1 request per connection,
//! `Connection: close`, always a `Content-Length`, `Accept: text/plain, application/octet-stream`.
//!
//! Finding the gateway follows `tahoe` (`scripts/cli.py::FileStoreOptions`): `--node-url URL`
//! wins; otherwise the URL is read from `NODEDIR/node.url`, where NODEDIR is
//! `-d/--node-directory` or, by default, Tahoe's `~/.tahoe`.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;

/// How long to wait for the TCP connection to the gateway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Error bodies are shown to the user; more than this is cut off.
const ERROR_BODY_MAX_BYTES: usize = 16 << 10;
/// Answers that are a cap or a small JSON document; anything longer is not what was asked for.
pub const SMALL_BODY_MAX_BYTES: usize = 1 << 20;

/// Where to find the gateway: Tahoe's `-d/--node-directory` and `-u/--node-url`. Both
/// the top-level command (as `tahoe -d DIR put`) and `put`/`get` (anywhere among their
/// arguments, as `tahoe put FILE -u URL`) take them; see [`NodeArgs::within`].
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NodeArgs {
    /// The node whose gateway `put` and `get` use; its URL is read from DIR/node.url
    /// (written by `cairn run`, or by `tahoe run`). [default: ~/.tahoe, as tahoe's]
    #[arg(short = 'd', long = "node-directory", value_name = "DIR")]
    pub node_directory: Option<PathBuf>,
    /// The gateway's URL, e.g. http://127.0.0.1:3456 (overrides the node directory's node.url).
    #[arg(short = 'u', long = "node-url", value_name = "URL")]
    pub node_url: Option<String>,
}

impl NodeArgs {
    /// These (a subcommand's) options, each one not given taken from `outer` (the
    /// top-level command's).
    pub fn within(&self, outer: &NodeArgs) -> NodeArgs {
        NodeArgs {
            node_directory: self
                .node_directory
                .clone()
                .or_else(|| outer.node_directory.clone()),
            node_url: self.node_url.clone().or_else(|| outer.node_url.clone()),
        }
    }

    /// The gateway URL these options designate.
    pub fn resolve(&self) -> Result<NodeUrl> {
        if let Some(u) = &self.node_url {
            return NodeUrl::parse(u).context("--node-url");
        }
        let dir = match &self.node_directory {
            Some(d) => d.clone(),
            None => default_node_dir(),
        };
        let file = dir.join("node.url");
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "cannot read {} (is the node running? `cairn run DIR` writes it; \
                 or pass --node-url URL, or -d DIR for another node)",
                file.display()
            )
        })?;
        NodeUrl::parse(text.trim()).with_context(|| format!("{}", file.display()))
    }
}

/// The node directory `tahoe` uses when none is given (`scripts/default_nodedir.py`):
/// `~/.tahoe`, or `.tahoe` when there is no home directory.
pub fn default_node_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Path::new(&h).join(".tahoe"),
        _ => PathBuf::from(".tahoe"),
    }
}

/// A gateway base URL: `http://HOST[:PORT][/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUrl {
    /// As it goes into the `Host` header and to the resolver: a name, an IPv4 address or a
    /// bracketed IPv6 address.
    host: String,
    port: u16,
    /// Path prefix, always ending in `/`.
    prefix: String,
}

impl NodeUrl {
    /// Parse a URL as `tahoe` accepts it (`http(s?)://([^:]*)(:([1-9][0-9]*))?` and an optional
    /// path). Only `http` is supported: a gateway listens on loopback without TLS.
    pub fn parse(text: &str) -> Result<NodeUrl> {
        let text = text.trim();
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                bail!("{text:?}: https gateways are not supported by cairn; use the node's http:// URL")
            }
            _ => bail!(
                "{text:?} is not a gateway URL; expected something like http://127.0.0.1:3456"
            ),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            bail!("{text:?}: credentials in a gateway URL are not supported");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .with_context(|| format!("{text:?}: unclosed '[' in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(p, text)?,
                None if after.is_empty() => 80,
                None => bail!("{text:?}: unexpected {after:?} after the host"),
            };
            (format!("[{addr}]"), port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h.to_string(), parse_port(p, text)?),
                None => (authority.to_string(), 80),
            }
        };
        if host.is_empty() || host == "[]" {
            bail!("{text:?}: no host");
        }
        if path.contains(['?', '#']) {
            bail!("{text:?}: a gateway URL has no query or fragment");
        }
        let mut prefix = path.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(NodeUrl { host, port, prefix })
    }

    /// The full URL of `rel` (a path relative to the gateway root, already escaped).
    pub fn url(&self, rel: &str) -> String {
        format!("http://{}:{}{}{}", self.host, self.port, self.prefix, rel)
    }

    /// The gateway's base URL, with the trailing `/` (as Tahoe writes node.url).
    pub fn base(&self) -> String {
        self.url("")
    }

    fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

fn parse_port(p: &str, text: &str) -> Result<u16> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 && !p.starts_with('0') => Ok(n),
        _ => bail!("{text:?}: bad port {p:?}"),
    }
}

/// `urllib.parse.quote(s)` as the `tahoe` CLI quotes a cap into `/uri/<cap>`: everything
/// but ASCII letters, digits, `_.-~` and `/` is percent-encoded (so `URI:CHK:…` becomes
/// `URI%3ACHK%3A…`).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A response whose body has not been read yet.
pub struct Response {
    pub status: StatusCode,
    pub reason: String,
    pub content_length: Option<u64>,
    pub body: Incoming,
}

impl Response {
    pub fn is_success(&self) -> bool {
        self.status == StatusCode::OK || self.status == StatusCode::CREATED
    }

    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(anyhow::Error::new(e).context("reading the gateway's answer"))
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
    }

    /// The body, up to `max` bytes (an error beyond).
    pub async fn read_small(&mut self, max: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(c) = self.chunk().await? {
            if out.len() + c.len() > max {
                bail!("the gateway's answer is longer than {max} bytes");
            }
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    /// Tahoe's `format_http_error(msg, resp)`: `"<msg>: <status> <reason>"` and the body.
    pub async fn into_error(mut self, msg: &str) -> anyhow::Error {
        let mut body = Vec::new();
        let mut cut = false;
        // A read error ends the body like its end does: the status line still says enough.
        while let Ok(Some(c)) = self.chunk().await {
            let room = ERROR_BODY_MAX_BYTES.saturating_sub(body.len());
            body.extend_from_slice(&c[..c.len().min(room)]);
            if c.len() > room {
                cut = true;
                break;
            }
        }
        let text = String::from_utf8_lossy(&body);
        let text = text.trim_end();
        let mut message = format!("{msg}: {} {}", self.status.as_u16(), self.reason);
        if !text.is_empty() {
            message.push('\n');
            message.push_str(text);
            if cut {
                message.push_str("\n[...]");
            }
        }
        anyhow::Error::msg(GatewayStatusError(message))
    }
}

/// An answer other than 200/201, already formatted as `tahoe` prints it. Printed as is
/// (not behind `cairn: error:`), so the output matches `tahoe`'s.
#[derive(Debug)]
pub struct GatewayStatusError(pub String);

impl std::fmt::Display for GatewayStatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GatewayStatusError {}

/// Send one request. `rel` is the escaped path (and query) below the gateway root;
/// `body` must yield exactly `content_length` bytes.
pub async fn request<B>(
    node: &NodeUrl,
    method: &str,
    rel: &str,
    body: B,
    content_length: u64,
) -> Result<Response>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let url = node.url(rel);
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((node.connect_host(), node.port)),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "Error trying to connect to {url}: no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        )
    })?
    .map_err(|e| anyhow::anyhow!("Error trying to connect to {url}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("talking to {url}"))?;
    tokio::spawn(async move {
        // Its errors also reach the response or the body, where they are reported.
        let _ = conn.await;
    });
    let path = format!("{}{}", node.prefix, rel);
    let req = hyper::Request::builder()
        .method(method)
        .uri(&path)
        .header(hyper::header::HOST, format!("{}:{}", node.host, node.port))
        .header(
            hyper::header::USER_AGENT,
            concat!("cairn/", env!("CARGO_PKG_VERSION"), " (tahoe-client)"),
        )
        .header(
            hyper::header::ACCEPT,
            "text/plain, application/octet-stream",
        )
        .header(hyper::header::CONNECTION, "close")
        .header(hyper::header::CONTENT_LENGTH, content_length)
        .body(body)
        .context("building the request")?;
    let resp = sender
        .send_request(req)
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status();
    let reason = resp
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| status.canonical_reason().map(str::to_string))
        .unwrap_or_default();
    let content_length = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok(Response {
        status,
        reason,
        content_length,
        body: resp.into_body(),
    })
}

/// `GET rel` with an empty body.
pub async fn get(node: &NodeUrl, rel: &str) -> Result<Response> {
    request(node, "GET", rel, http_body_util::Empty::<Bytes>::new(), 0).await
}

/// A request body fed from a channel by a reading thread, so the file is read while the
/// connection sends and at most the channel's few chunks are in memory.
pub struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    remaining: u64,
    on_data: Box<dyn FnMut(usize) + Send>,
}

impl ChannelBody {
    /// `len` is what the sender promises to send; `on_data` sees each chunk's size as it
    /// is handed to the connection.
    pub fn new(
        rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
        len: u64,
        on_data: impl FnMut(usize) + Send + 'static,
    ) -> ChannelBody {
        ChannelBody {
            rx,
            remaining: len,
            on_data: Box::new(on_data),
        }
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(data))) => {
                if data.len() as u64 > self.remaining {
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "the input grew while it was being sent",
                    ))));
                }
                self.remaining -= data.len() as u64;
                (self.on_data)(data.len());
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(Some(Err(std::io::Error::other(format!(
                "the input ended {} bytes early (did it shrink while being sent?)",
                self.remaining
            ))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_urllib() {
        assert_eq!(
            quote("URI:CHK:ab:cd:3:10:1234"),
            "URI%3ACHK%3Aab%3Acd%3A3%3A10%3A1234"
        );
        assert_eq!(quote("a b/c~d"), "a%20b/c~d");
        assert_eq!(quote("é"), "%C3%A9");
    }

    #[test]
    fn node_urls() {
        let u = NodeUrl::parse("http://127.0.0.1:3456/").unwrap();
        assert_eq!(u.url("uri"), "http://127.0.0.1:3456/uri");
        let u = NodeUrl::parse(" http://localhost:8080\n").unwrap();
        assert_eq!(u.base(), "http://localhost:8080/");
        let u = NodeUrl::parse("http://[::1]:3456/tahoe").unwrap();
        assert_eq!(u.url("uri"), "http://[::1]:3456/tahoe/uri");
        assert_eq!(u.connect_host(), "::1");
        assert_eq!(NodeUrl::parse("http://example").unwrap().port, 80);
        for bad in [
            "127.0.0.1:3456",
            "https://127.0.0.1:3456",
            "http://:3456",
            "http://h:0",
            "http://h:99999",
            "http://h:1/?x",
            "ftp://h",
        ] {
            assert!(NodeUrl::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod cli_tests {
    use clap::{CommandFactory, Parser};

    /// The global `-d`/`-u` must not clash with any subcommand's own options.
    #[test]
    fn command_line_is_consistent() {
        crate::Cli::command().debug_assert();
    }

    #[test]
    fn node_options_parse_anywhere() {
        for args in [
            &["cairn", "-d", "D", "put", "F"][..],
            &["cairn", "put", "F", "-d", "D"],
            &["cairn", "put", "--node-directory", "D", "F"],
        ] {
            let cli = crate::Cli::try_parse_from(args).unwrap();
            let crate::Command::Put(put) = &cli.command else {
                panic!("{args:?}")
            };
            let node = put.node.within(&cli.gateway);
            assert_eq!(
                node.node_directory.as_deref(),
                Some(std::path::Path::new("D")),
                "{args:?}"
            );
        }
        let cli = crate::Cli::try_parse_from([
            "cairn",
            "-d",
            "D",
            "get",
            "URI:LIT:aa",
            "-u",
            "http://h:1",
        ])
        .unwrap();
        let crate::Command::Get(get) = &cli.command else {
            panic!()
        };
        let node = get.node.within(&cli.gateway);
        assert_eq!(node.node_url.as_deref(), Some("http://h:1"));
        assert_eq!(
            node.node_directory.as_deref(),
            Some(std::path::Path::new("D"))
        );
        // Only put and get take them.
        assert!(crate::Cli::try_parse_from(["cairn", "grid", "up", "-d", "D"]).is_err());
    }
}

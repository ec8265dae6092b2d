//! `cairn put FILE|- [WRITECAP]`: upload through a node's gateway, as `tahoe put` does
//! (`allmydata/scripts/tahoe_put.py`): `PUT /uri` (or `PUT /uri/$WRITECAP` to replace a
//! mutable file's contents) with `mutable=true`, `format=`, `private-key=` in the query;
//! the answer's body is the cap, printed as the last line of stdout.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use base64::Engine;
use bytes::Bytes;
use cairn_core::mutable::keys::SigningKey;

use crate::http::{self, ChannelBody, NodeArgs};
use crate::input::Content;
use crate::transfer::{runtime, Bar, Summary};

/// Pieces handed to the connection; the reader stays at most `CHANNEL_CHUNKS` ahead.
const CHUNK_BYTES: usize = 256 << 10;
const CHANNEL_CHUNKS: usize = 8;
/// Stdin beyond this is spooled to a temporary file first (the request needs its length).
const STDIN_IN_MEMORY_MAX_BYTES: usize = 1 << 20;

#[derive(clap::Args, Debug)]
pub struct PutArgs {
    /// Create a mutable file instead of an immutable one (like --format=sdmf).
    #[arg(short = 'm', long)]
    pub mutable: bool,
    /// chk (immutable, the default), sdmf or mdmf (mutable); any case.
    #[arg(long, value_enum, ignore_case = true)]
    pub format: Option<PutFormat>,
    /// For a new mutable file only: the RSA-2048 signing key to use (PEM). Handle it as
    /// strictly as the write cap; never use one key for two files.
    #[arg(long, value_name = "PEM_FILE")]
    pub private_key_path: Option<PathBuf>,
    /// Print one JSON object {cap, size, seconds, mib_per_s} instead of the bare cap.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub node: NodeArgs,
    /// The file to upload; `-` or nothing reads stdin.
    pub file: Option<PathBuf>,
    /// A mutable file's write cap (URI:SSK:... or URI:MDMF:...): replace its contents.
    pub to: Option<String>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PutFormat {
    Chk,
    Sdmf,
    Mdmf,
}

impl PutFormat {
    /// The spelling Tahoe's web API uses in `format=` and in its JSON.
    fn query_value(self) -> &'static str {
        match self {
            PutFormat::Chk => "CHK",
            PutFormat::Sdmf => "SDMF",
            PutFormat::Mdmf => "MDMF",
        }
    }
}

/// Run `cairn put`. Gateway errors are printed as `tahoe put` prints them.
pub fn run(args: PutArgs, outer: &NodeArgs) -> Result<ExitCode> {
    let node = args.node.within(outer);
    crate::get::exit_code(put(args, &node))
}

/// The path and query below the gateway root that `args` asks for.
pub fn request_path(args: &PutArgs) -> Result<String> {
    let mut rel = match &args.to {
        None => "uri".to_string(),
        Some(to) if to.starts_with("URI:MDMF:") || to.starts_with("URI:SSK:") => format!("uri/{}", http::quote(to)),
        Some(to) => bail!(
            "{to:?}: the second argument must be a mutable file's write cap (URI:SSK:... or URI:MDMF:...); \
             cairn has no directories or aliases yet"
        ),
    };
    let mut query = Vec::new();
    if args.mutable {
        query.push("mutable=true".to_string());
        if let Some(path) = &args.private_key_path {
            query.push(format!("private-key={}", private_key_param(path)?));
        }
    } else if args.private_key_path.is_some() {
        bail!("--private-key-path is only for mutable files (add --mutable)");
    }
    if let Some(f) = args.format {
        query.push(format!("format={}", f.query_value()));
    }
    if !query.is_empty() {
        rel.push('?');
        rel.push_str(&query.join("&"));
    }
    Ok(rel)
}

/// `tahoe_put.load_private_key`: the key as URL-safe base64 of its PKCS#8 DER.
fn private_key_param(path: &std::path::Path) -> Result<String> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let key = SigningKey::from_pem(&pem)
        .with_context(|| format!("{} is not a usable RSA-2048 private key", path.display()))?;
    Ok(base64::engine::general_purpose::URL_SAFE.encode(key.pkcs8_der()))
}

fn put(args: PutArgs, node: &NodeArgs) -> Result<()> {
    let node = node.resolve()?;
    let rel = request_path(&args)?;
    let from_stdin = args
        .file
        .as_deref()
        .is_none_or(|f| f == std::path::Path::new("-"));
    if from_stdin && std::io::stdin().is_terminal() {
        eprintln!("waiting for file data on stdin..");
    }
    let content = Content::open_spooling_after(args.file.as_deref(), STDIN_IN_MEMORY_MAX_BYTES)?;
    let size = content.size();
    let bar = Bar::new(Some(size), "put");
    let started = Instant::now();
    let outcome = runtime()?.block_on(upload(&node, &rel, content, size, bar.clone()));
    bar.clear();
    let (status, cap) = outcome?;
    let summary = Summary::new(cap, size, started);
    if std::io::stderr().is_terminal() {
        eprintln!("{status}: {}", summary.human());
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).context("encoding JSON")?
        );
    } else {
        println!("{}", summary.cap);
    }
    Ok(())
}

/// Send the content; returns the status line and the cap.
async fn upload(
    node: &http::NodeUrl,
    rel: &str,
    mut content: Content,
    size: u64,
    bar: Bar,
) -> Result<(String, String)> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_CHUNKS);
    let reader = std::thread::spawn(move || {
        let r = content.for_each_chunk(CHUNK_BYTES, |c| {
            tx.blocking_send(Ok(Bytes::copy_from_slice(c)))
                .map_err(|_| anyhow::anyhow!("the connection to the gateway closed"))
        });
        if let Err(e) = r {
            let _ = tx.blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
        }
    });
    let sent = Arc::new(AtomicU64::new(0));
    let body_bar = bar.clone();
    let body = ChannelBody::new(rx, size, move |n| {
        body_bar.inc(n as u64);
        if sent.fetch_add(n as u64, Ordering::Relaxed) + n as u64 == size {
            body_bar.waiting("sent; the gateway is storing the shares");
        }
    });
    if size == 0 {
        bar.waiting("the gateway is storing the file");
    }
    let result = http::request(node, "PUT", rel, body, size).await;
    // The reader ends once the body is sent or dropped.
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    let mut resp = result?;
    if !resp.is_success() {
        return Err(resp.into_error("Error").await);
    }
    let status = format!("{} {}", resp.status.as_u16(), resp.reason);
    let body = resp.read_small(http::SMALL_BODY_MAX_BYTES).await?;
    let cap =
        String::from_utf8(body).context("the gateway answered with a cap that is not UTF-8")?;
    let cap = cap.trim().to_string();
    if cap.is_empty() {
        bail!("the gateway answered {status} with an empty body instead of a cap");
    }
    Ok((status, cap))
}

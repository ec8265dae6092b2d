//! The `cairn` command.

mod get;
mod grid;
mod http;
mod input;
mod node;
mod put;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use base64::Engine;
use cairn_core::cap::{self, Cap};
use cairn_core::chk::{self, ChkEncoder, ConvergentKeyHasher, EncodingParams};
use cairn_core::mutable::keys::SigningKey;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

use input::Content;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "A Tahoe-LAFS compatible storage grid"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    gateway: http::NodeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Print the capability Tahoe-LAFS 1.20 would give this content (offline; no grid needed).
    Cap(CapArgs),
    /// Create a storage node directory (Tahoe's layout: tahoe.cfg, private/, storage/).
    CreateNode(node::CreateNodeArgs),
    /// Create a client node directory (no storage; a web gateway on --webport).
    CreateClient(node::CreateClientArgs),
    /// Run the node in DIR (storage server, web gateway) in the foreground until SIGTERM or Ctrl-C.
    Run {
        /// The node directory.
        dir: PathBuf,
    },
    /// Storage node tools.
    Storage {
        #[command(subcommand)]
        command: node::StorageCommand,
    },
    /// Upload a file (or stdin) through the node's gateway; prints the cap as the last line.
    Put(put::PutArgs),
    /// Download a file through the node's gateway, to OUT or stdout.
    Get(get::GetArgs),
    /// A local grid on 127.0.0.1 (N storage nodes and a client node), for trying cairn and for tests.
    Grid {
        #[command(subcommand)]
        command: grid::GridCommand,
    },
    /// Debugging tools.
    Debug {
        #[command(subcommand)]
        command: DebugCommand,
    },
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Show what a capability holds, as `tahoe debug dump-cap` does.
    DumpCap {
        /// The capability string (URI:...).
        cap: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Chk,
    Sdmf,
    Mdmf,
}

#[derive(clap::Args)]
struct CapArgs {
    /// File format: chk (immutable), sdmf or mdmf (mutable).
    #[arg(long, value_enum, default_value = "chk")]
    format: Format,
    /// Shares needed to rebuild the file (k), as Tahoe's `shares.needed`.
    #[arg(long, default_value_t = 3, value_name = "K")]
    needed: u16,
    /// Shares made (N), as Tahoe's `shares.total`.
    #[arg(long, default_value_t = 10, value_name = "N")]
    total: u16,
    /// Maximum segment size in bytes (Tahoe's `client.max_segment_size`); rounded up to a multiple of k.
    #[arg(long, default_value_t = chk::DEFAULT_MAX_SEGMENT_SIZE, value_name = "BYTES")]
    segment_size: u64,
    /// Convergence secret, base64 (any length). Required for chk.
    #[arg(long, value_name = "B64")]
    convergence_secret_b64: Option<String>,
    /// RSA-2048 private key in PEM (PKCS#1 or PKCS#8). Required for sdmf and mdmf.
    #[arg(long, value_name = "PEM_FILE")]
    key: Option<PathBuf>,
    /// The content; `-` or nothing reads stdin.
    file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cap(args) => cap_command(args).map(|()| ExitCode::SUCCESS),
        Command::Debug {
            command: DebugCommand::DumpCap { cap },
        } => dump_cap_command(&cap).map(|()| ExitCode::SUCCESS),
        Command::CreateNode(args) => node::create_node(args).map(|()| ExitCode::SUCCESS),
        Command::CreateClient(args) => node::create_client(args).map(|()| ExitCode::SUCCESS),
        Command::Run { dir } => node::run(&dir).map(|()| ExitCode::SUCCESS),
        Command::Storage { command } => node::storage(command),
        Command::Put(args) => put::run(args, &cli.gateway),
        Command::Get(args) => get::run(args, &cli.gateway),
        Command::Grid { command } => grid::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dump_cap_command(text: &str) -> Result<()> {
    let cap = Cap::parse(text.trim()).with_context(|| format!("not a capability: {text:?}"))?;
    print!("{}", cap::dump_cap(&cap));
    Ok(())
}

fn cap_command(args: CapArgs) -> Result<()> {
    let (k, n) = (args.needed, args.total);
    if k == 0 || n == 0 || k > n || n > 256 {
        bail!("--needed {k} --total {n}: need 1 <= needed <= total <= 256");
    }
    let cap = match args.format {
        Format::Chk => chk_cap(&args)?,
        Format::Sdmf | Format::Mdmf => mutable_cap(&args)?,
    };
    println!("{cap}");
    Ok(())
}

fn mutable_cap(args: &CapArgs) -> Result<String> {
    if args.total > 255 {
        bail!(
            "--total {}: mutable files hold at most 255 shares",
            args.total
        );
    }
    let path = args
        .key
        .as_ref()
        .context("sdmf and mdmf caps are derived from a key: pass --key PEM_FILE")?;
    if let Some(file) = args
        .file
        .as_deref()
        .filter(|f| *f != std::path::Path::new("-"))
    {
        // The content does not change a mutable cap, but a typo should not pass silently.
        std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    }
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key {}", path.display()))?;
    let key = SigningKey::from_pem(&pem)
        .with_context(|| format!("{} is not a usable RSA-2048 private key", path.display()))?;
    let writekey = cairn_core::hashutil::ssk_writekey_hash(key.pkcs8_der());
    let fingerprint = key.verifying_key().fingerprint();
    Ok(match args.format {
        Format::Sdmf => cap::SdmfWriteCap::new(writekey, fingerprint).to_string(),
        _ => cap::MdmfWriteCap::new(writekey, fingerprint).to_string(),
    })
}

fn chk_cap(args: &CapArgs) -> Result<String> {
    let secret_b64 = args.convergence_secret_b64.as_deref().context(
        "chk caps are convergent: pass --convergence-secret-b64 B64 (the secret a Tahoe node keeps in private/convergence, base64)",
    )?;
    let secret = decode_b64(secret_b64).context("--convergence-secret-b64 is not valid base64")?;
    if args.segment_size == 0 {
        bail!("--segment-size must be at least 1");
    }
    let params = EncodingParams {
        needed: args.needed,
        happy: 1,
        total: args.total,
        max_segment_size: args.segment_size,
    };
    let mut content = Content::open(args.file.as_deref())?;
    let size = content.size();
    if size <= chk::LIT_SIZE_THRESHOLD {
        let mut data = Vec::new();
        content.for_each_chunk(64, |c| {
            data.extend_from_slice(c);
            Ok(())
        })?;
        return Ok(cap::LitCap::new(data).to_string());
    }
    let progress = Progress::new(2 * size);
    // Pass 1: the convergent key depends on the whole plaintext.
    let mut hasher = ConvergentKeyHasher::new(&params, size, &secret)?;
    content.for_each_chunk(1 << 20, |c| {
        hasher.update(c);
        progress.advance(c.len());
        Ok(())
    })?;
    let key = hasher.finish()?;
    // Pass 2: encrypt, erasure-code and hash one segment at a time.
    let mut encoder = ChkEncoder::new(&params, key, size)?;
    let segment_size = encoder.geometry().segment_size as usize;
    content.for_each_chunk(segment_size, |segment| {
        encoder.push_segment(segment)?;
        progress.advance(segment.len());
        Ok(())
    })?;
    let trailer = encoder.finish()?;
    progress.finish();
    Ok(trailer.read_cap_string())
}

fn decode_b64(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let url = [
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .chain(url.iter())
        .find_map(|e| e.decode(s).ok())
        .context("expected standard or URL-safe base64")
}

/// A progress bar on stderr for long inputs, shown only on a terminal.
struct Progress(Option<ProgressBar>);

impl Progress {
    const MIN_BYTES: u64 = 32 << 20;

    fn new(total: u64) -> Progress {
        if total < Self::MIN_BYTES || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress(Some(bar))
    }

    fn advance(&self, n: usize) {
        if let Some(b) = &self.0 {
            b.inc(n as u64);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

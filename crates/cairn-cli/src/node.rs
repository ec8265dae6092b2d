//! `cairn create-node`, `cairn create-client`, `cairn run`, `cairn storage announcement`,
//! `cairn storage audit`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_config::config::NodeConfig;
use cairn_config::create::CreateNodeOptions;
use cairn_config::identity::NodeIdentity;

#[derive(clap::Args)]
pub struct CreateNodeArgs {
    /// Hostname or IP address clients use to reach this node (goes into the NURL).
    #[arg(long)]
    pub hostname: String,
    /// TCP port to listen on (0: pick a free one now).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on (default: the hostname if it is an IP address, else the address it resolves to).
    #[arg(long)]
    pub listen_address: Option<std::net::IpAddr>,
    /// Nickname shown to clients.
    #[arg(long, default_value = "")]
    pub nickname: String,
    /// `[storage] reserved_space`: free space to leave on the disk.
    #[arg(long, default_value = "1G")]
    pub reserved_space: String,
    /// The web gateway's endpoint (`[node] web.port`), e.g. `tcp:3456:interface=127.0.0.1`;
    /// `none` for no gateway. Default: a free port on 127.0.0.1, chosen now.
    #[arg(long, value_name = "ENDPOINT")]
    pub webport: Option<String>,
    /// The node directory to create.
    pub dir: PathBuf,
}

#[derive(clap::Args)]
pub struct CreateClientArgs {
    /// The web gateway's endpoint (`[node] web.port`), e.g. `tcp:3456:interface=127.0.0.1`;
    /// `none` for no gateway. Default: a free port on 127.0.0.1, chosen now (so nodes made on
    /// one machine do not collide).
    #[arg(long, short = 'p', value_name = "ENDPOINT")]
    pub webport: Option<String>,
    /// Nickname of this node.
    #[arg(long, short = 'n', default_value = "")]
    pub nickname: String,
    /// `[client] shares.needed`: shares needed to read a file (k).
    #[arg(long, value_name = "K")]
    pub shares_needed: Option<u16>,
    /// `[client] shares.happy`: servers an upload must place shares on.
    #[arg(long, value_name = "H")]
    pub shares_happy: Option<u16>,
    /// `[client] shares.total`: shares made per file (N).
    #[arg(long, value_name = "N")]
    pub shares_total: Option<u16>,
    /// The node directory to create.
    pub dir: PathBuf,
}

#[derive(clap::Subcommand)]
pub enum StorageCommand {
    /// Print this node's entry for a Tahoe client's private/servers.yaml (paste it under `storage:`).
    Announcement {
        /// The node directory.
        dir: PathBuf,
    },
    /// Recount shares, leases and reservations from the files and compare with the lease database.
    Audit {
        /// The node directory (or its storage directory).
        dir: PathBuf,
        /// Repair the differences found.
        #[arg(long)]
        fix: bool,
    },
}

pub fn create_node(args: CreateNodeArgs) -> Result<()> {
    let opts = CreateNodeOptions {
        hostname: args.hostname,
        port: args.port,
        listen: args.listen_address,
        nickname: args.nickname,
        reserved_space: args.reserved_space,
    };
    let (config, identity) = cairn_node::create_node(&args.dir, &opts, args.webport.as_deref())?;
    println!("Node created in {}", args.dir.display());
    for n in identity.nurls(&config.node.hints) {
        println!("NURL: {n}");
    }
    if let Some(w) = &config.web_port {
        println!("Web gateway: {} (web.port = {})", web_url_hint(w), w.spec);
    }
    println!("Start it with: cairn run {}", args.dir.display());
    Ok(())
}

pub fn create_client(args: CreateClientArgs) -> Result<()> {
    let opts = cairn_node::CreateClientOptions {
        webport: args.webport,
        nickname: args.nickname,
        shares_needed: args.shares_needed,
        shares_happy: args.shares_happy,
        shares_total: args.shares_total,
    };
    let config = cairn_node::create_client(&args.dir, &opts)?;
    println!("Node created in {}", args.dir.display());
    match &config.web_port {
        Some(w) => println!("Web gateway: {} (web.port = {})", web_url_hint(w), w.spec),
        None => println!("No web gateway (web.port is empty)."),
    }
    println!(
        "Storage servers go in {} (Tahoe's format; `cairn storage announcement DIR` prints a server's entry).",
        config.private_path("servers.yaml").display()
    );
    println!("Start it with: cairn run {}", args.dir.display());
    Ok(())
}

/// The URL the gateway will have (a `tcp:0` port is only known once it runs).
fn web_url_hint(w: &cairn_node::WebPort) -> String {
    if w.listener.port == 0 {
        "a free port chosen at each start (see DIR/node.url)".into()
    } else {
        cairn_node::node::web_url_for(std::net::SocketAddr::new(
            w.listener.interface,
            w.listener.port,
        ))
    }
}

pub fn run(dir: &Path) -> Result<()> {
    init_logging();
    cairn_node::memory::limit_arenas();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let stop = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                        exit_by_deadline();
                        return;
                    }
                };
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            exit_by_deadline();
            // A second signal while shutting down: stop now.
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
                eprintln!("cairn run: second signal during shutdown; exiting now");
                std::process::exit(1);
            });
        };
        cairn_node::run(dir, stop).await
    })?;
    // Don't wait for blocking tasks (a slow disk) past the shutdown deadline.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// How long `cairn run` may take to exit after SIGTERM or Ctrl-C, whatever is in flight:
/// the graceful path (the node's grace period, then at most 1 s for blocking tasks) takes
/// about 3 s; this bounds a task that never yields, a stuck disk or a join that hangs.
const EXIT_DEADLINE: std::time::Duration = std::time::Duration::from_millis(4500);

/// From the stop signal on, the process ends within [`EXIT_DEADLINE`]: a watchdog thread
/// (outside the runtime, so no stuck task can hold it up) exits the process when the deadline
/// passes. Nothing is lost by that: the storage server's files and lease database are
/// crash-safe (a crash at any point is settled at the next start).
fn exit_by_deadline() {
    let spawned = std::thread::Builder::new()
        .name("exit-deadline".into())
        .spawn(|| {
            std::thread::sleep(EXIT_DEADLINE);
            eprintln!(
                "cairn run: still shutting down {} s after the signal; exiting now",
                EXIT_DEADLINE.as_secs_f64()
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        eprintln!("cairn run: no shutdown watchdog: {e}");
    }
}

pub fn storage(cmd: StorageCommand) -> Result<ExitCode> {
    match cmd {
        StorageCommand::Announcement { dir } => {
            let config = NodeConfig::load(&dir)
                .with_context(|| format!("{} is not a node directory", dir.display()))?;
            let identity = NodeIdentity::load_or_create(&config)?;
            println!(
                "{}",
                identity.announcement_yaml(&config.nickname, &config.hints)
            );
            Ok(ExitCode::SUCCESS)
        }
        StorageCommand::Audit { dir, fix } => {
            let storage_dir = match NodeConfig::load(&dir) {
                Ok(c) => c.storage_dir,
                Err(_) => cairn_storage::leasedb::resolve_storage_dir(&dir),
            };
            use cairn_storage::clock::Clock;
            let now = cairn_storage::clock::SystemClock.now_secs();
            let report = cairn_storage::leasedb::audit_storage_dir(&storage_dir, fix, now)?;
            print!("{report}");
            Ok(ExitCode::from(report.exit_code().clamp(0, 255) as u8))
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

//! `cairn grid up|down`: a complete local grid (N storage nodes and one client node, each
//! its own `cairn run` process, all on 127.0.0.1) from one command, for trying cairn and
//! for tests.
//!
//! Layout of the grid directory D:
//! - `D/storage01` .. `D/storageNN`: storage node directories (`cairn create-node`, no gateway)
//! - `D/client`: the client node directory (`cairn create-client`), whose
//!   `private/servers.yaml` lists every storage node's announcement
//! - `D/<node>/logs/cairn-run.log`: each node's stdout and stderr
//! - `D/grid.json`: each node's name, directory, NURL, web URL and process id
//!
//! `grid up` reuses the node directories it finds (same identities, ports and shares), so
//! a grid can be stopped and started again. Ports are chosen outside the kernel's ephemeral
//! range and never twice in one grid; a remembered port that something else holds when the
//! grid starts again is replaced by a free one (the node's `tahoe.cfg`, its announcement,
//! the client's `servers.yaml` and `grid.json` follow), with one line saying so. Stopping only ever signals a process whose
//! command line is `cairn run <that node's directory>` (a recorded pid may have been reused).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cairn_config::config::{self as node_config, Listener, NodeConfig};
use cairn_config::create::CreateNodeOptions;
use cairn_config::identity::{self, NodeIdentity};
use cairn_config::ports;

use crate::http::{self, NodeUrl};

/// Storage servers in a new grid: one share per server with Tahoe's default 3-of-10.
pub const DEFAULT_SERVERS: usize = 10;
/// Node directory names have two digits.
const MAX_SERVERS: usize = 99;
/// The grid directory when `--dir` is not given (relative to the working directory).
pub const DEFAULT_DIR: &str = "cairn-grid";
const GRID_FILE: &str = "grid.json";
const CLIENT_NAME: &str = "client";
/// Tahoe's defaults; `shares.happy` is lowered to the number of servers on small grids,
/// since happiness counts distinct servers.
const SHARES_NEEDED: u16 = 3;
const SHARES_HAPPY: u16 = 7;
const SHARES_TOTAL: u16 = 10;
/// Free space each storage node leaves on the disk.
const RESERVED_SPACE: &str = "100M";
/// How often `grid up` looks at the client's gateway while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Log lines shown when a node fails to start.
const LOG_TAIL_LINES: usize = 20;

#[derive(clap::Subcommand, Debug)]
pub enum GridCommand {
    /// Start a local grid: N storage nodes and a client node on 127.0.0.1. Prints the
    /// client's gateway URL once every server is connected, then runs until Ctrl-C or
    /// SIGTERM (or, with --detach, returns and leaves it running).
    Up(UpArgs),
    /// Stop the grid started in DIR (SIGTERM, then SIGKILL after --timeout seconds).
    Down(DownArgs),
}

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Storage nodes [default: 10 for a new grid, else as many as DIR holds].
    #[arg(long, value_name = "N")]
    pub servers: Option<usize>,
    /// The grid directory (created if absent; node directories in it are reused).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Return once the grid is ready and leave it running (stop it with `cairn grid down`).
    #[arg(long)]
    pub detach: bool,
    /// Seconds to wait for every server to be connected.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

#[derive(clap::Args, Debug)]
pub struct DownArgs {
    /// The grid directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,
}

pub fn run(cmd: GridCommand) -> Result<ExitCode> {
    match cmd {
        GridCommand::Up(args) => up(args),
        GridCommand::Down(args) => down(args),
    }
}

/// `D/grid.json`.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct GridFile {
    pub version: u32,
    pub servers: usize,
    /// The client's gateway URL (what `cairn put --node-url` takes).
    pub gateway: String,
    pub nodes: Vec<NodeEntry>,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct NodeEntry {
    pub name: String,
    /// `storage` or `client`.
    pub kind: String,
    pub dir: PathBuf,
    /// A storage node's NURL (its address in the storage protocol).
    pub nurl: Option<String>,
    /// The node's web gateway (the client's).
    pub web_url: Option<String>,
    /// A storage node's server id: its key in servers.yaml, `nodeid` in the gateway's `/?t=json`.
    pub server_id: Option<String>,
    /// The `cairn run` process, while running.
    pub pid: Option<u32>,
    pub log: PathBuf,
}

impl GridFile {
    fn load(dir: &Path) -> Result<Option<GridFile>> {
        let path = dir.join(GRID_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let g = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cairn grid file", path.display()))?;
        Ok(Some(g))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self).context("encoding grid.json")?;
        text.push('\n');
        identity::write_replace(&dir.join(GRID_FILE), text.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", dir.join(GRID_FILE).display()))
    }
}

/// A node of the grid being started.
struct Member {
    entry: NodeEntry,
    child: Option<Child>,
}

fn up(args: UpArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("{}", args.dir.display()))?;

    if let Some(old) = GridFile::load(&dir)? {
        let live: Vec<&NodeEntry> = old
            .nodes
            .iter()
            .filter(|n| n.pid.is_some_and(|p| is_node_process(p, &n.dir)))
            .collect();
        if !live.is_empty() {
            if let Some(n) = args.servers.filter(|n| *n != old.servers) {
                bail!(
                    "the grid in {} runs {} storage nodes, not {n}; stop it with `cairn grid down --dir {}` and use another --dir",
                    dir.display(),
                    old.servers,
                    dir.display()
                );
            }
            if live.len() == old.nodes.len() && args.detach {
                eprintln!("The grid in {} is already running.", dir.display());
                println!("{}", old.gateway);
                return Ok(ExitCode::SUCCESS);
            }
            let names: Vec<String> = live
                .iter()
                .map(|n| format!("{} (pid {})", n.name, n.pid.unwrap_or(0)))
                .collect();
            bail!(
                "the grid in {} is already running: {}; stop it first with `cairn grid down --dir {}`",
                dir.display(),
                names.join(", "),
                dir.display()
            );
        }
    }

    let existing = count_storage_dirs(&dir);
    let n = match (args.servers, existing) {
        (Some(n), 0) => n,
        (Some(n), e) if n == e => n,
        (Some(n), e) => bail!(
            "{} holds a grid of {e} storage nodes, not {n}; use another --dir, or remove this one",
            dir.display()
        ),
        (None, 0) => DEFAULT_SERVERS,
        (None, e) => e,
    };
    if !(1..=MAX_SERVERS).contains(&n) {
        bail!("--servers {n}: a local grid has 1 to {MAX_SERVERS} storage nodes");
    }

    // From here on Ctrl-C and SIGTERM are ours: they stop the nodes started so far.
    let rt = crate::transfer::runtime()?;
    let mut signals = rt.block_on(async { Signals::new() })?;

    let mut members = create_nodes(&dir, n)?;
    let gateway = members
        .last()
        .and_then(|m| m.entry.web_url.clone())
        .context("the client has no gateway")?;
    let mut grid = GridFile {
        version: 1,
        servers: n,
        gateway,
        nodes: Vec::new(),
    };

    let started = Instant::now();
    let exe = std::env::current_exe().context("finding the cairn executable")?;
    let result = (|| {
        for i in 0..members.len() {
            let child = spawn_node(&exe, &members[i].entry)?;
            members[i].entry.pid = Some(child.id());
            members[i].child = Some(child);
            grid.nodes = members.iter().map(|m| m.entry.clone()).collect();
            grid.save(&dir)?; // at once: `grid down` can stop what was started, whatever happens next
        }
        rt.block_on(wait_ready(
            &mut members,
            &grid.gateway,
            Duration::from_secs(args.timeout),
            &mut signals,
        ))
    })();
    if let Err(e) = result {
        stop_members(&mut members, Duration::from_secs(10));
        grid.nodes = members.iter().map(|m| m.entry.clone()).collect();
        let _ = grid.save(&dir);
        return Err(e);
    }
    // The gateway writes node.url once it listens: prefer what it wrote.
    if let Ok(text) = std::fs::read_to_string(dir.join(CLIENT_NAME).join("node.url")) {
        if let Ok(u) = NodeUrl::parse(&text) {
            grid.gateway = u.base();
        }
    }
    grid.nodes = members.iter().map(|m| m.entry.clone()).collect();
    grid.save(&dir)?;

    let client_dir = dir.join(CLIENT_NAME);
    eprintln!(
        "cairn grid: {n} storage nodes and a client ready in {:.1} s ({}).\n  \
         upload:   cairn put -d {} FILE\n  \
         download: cairn get -d {} CAP [OUT]\n  \
         stop:     {}",
        started.elapsed().as_secs_f64(),
        dir.join(GRID_FILE).display(),
        client_dir.display(),
        client_dir.display(),
        if args.detach {
            format!("cairn grid down --dir {}", dir.display())
        } else {
            "Ctrl-C".to_string()
        },
    );
    println!("{}", grid.gateway);
    let _ = std::io::stdout().flush();
    if args.detach {
        return Ok(ExitCode::SUCCESS);
    }

    let code = rt.block_on(supervise(&mut members, &mut signals))?;
    grid.nodes = members.iter().map(|m| m.entry.clone()).collect();
    grid.save(&dir)?;
    Ok(code)
}

/// Storage node directories already in `dir`.
fn count_storage_dirs(dir: &Path) -> usize {
    (1..=MAX_SERVERS)
        .take_while(|i| dir.join(storage_name(*i)).join("tahoe.cfg").exists())
        .count()
}

fn storage_name(i: usize) -> String {
    format!("storage{i:02}")
}

/// Create what is missing (N storage nodes, the client), write the client's servers.yaml.
/// Returns the members in start order: storage nodes, then the client.
fn create_nodes(dir: &Path, n: usize) -> Result<Vec<Member>> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut members = Vec::new();
    // Ports given to this grid's nodes so far: none of them listens yet, so a bind test
    // alone would hand the same port out twice.
    let mut given: HashSet<u16> = HashSet::new();
    let mut servers_yaml =
        String::from("# Written by `cairn grid up`: the storage nodes of this grid.\nstorage:\n");
    for i in 1..=n {
        let name = storage_name(i);
        let node_dir = dir.join(&name);
        if !node_dir.join("tahoe.cfg").exists() {
            let port = ports::pick(loopback, &given).context("choosing a port")?;
            let opts = CreateNodeOptions {
                hostname: loopback.to_string(),
                port,
                listen: Some(loopback),
                nickname: name.clone(),
                reserved_space: RESERVED_SPACE.to_string(),
            };
            cairn_node::create_node(&node_dir, &opts, Some("none"))
                .with_context(|| format!("creating storage node {}", node_dir.display()))?;
        }
        let load = || {
            NodeConfig::load(&node_dir)
                .with_context(|| format!("{} is not a node directory", node_dir.display()))
        };
        let mut config = load()?;
        let moved = keep_ports_free(&name, &node_dir, &config.listeners, &mut given)?;
        if moved {
            config = load()?;
        }
        let ident = NodeIdentity::load_or_create(&config)
            .with_context(|| format!("identity of {}", node_dir.display()))?;
        if moved {
            cairn_config::create::write_announcement(&config, &ident)
                .with_context(|| format!("announcement of {}", node_dir.display()))?;
        }
        servers_yaml.push_str("  ");
        servers_yaml.push_str(&ident.announcement_yaml(&config.nickname, &config.hints));
        servers_yaml.push('\n');
        members.push(Member {
            entry: NodeEntry {
                name,
                kind: "storage".into(),
                nurl: ident.nurls(&config.hints).into_iter().next(),
                web_url: None,
                server_id: Some(ident.server_id.clone()),
                pid: None,
                log: log_path(&node_dir),
                dir: node_dir,
            },
            child: None,
        });
    }

    let client_dir = dir.join(CLIENT_NAME);
    if !client_dir.join("tahoe.cfg").exists() {
        let happy = SHARES_HAPPY.min(n as u16);
        let port = ports::pick(loopback, &given).context("choosing a port")?;
        let opts = cairn_node::CreateClientOptions {
            webport: Some(cairn_node::WebPort::format(loopback, port)),
            nickname: CLIENT_NAME.into(),
            shares_needed: Some(SHARES_NEEDED),
            shares_happy: Some(happy),
            shares_total: Some(SHARES_TOTAL),
        };
        cairn_node::create_client(&client_dir, &opts)
            .with_context(|| format!("creating the client node {}", client_dir.display()))?;
    }
    let load_client = || {
        cairn_node::ClientConfig::load(&client_dir)
            .with_context(|| format!("{} is not a client node directory", client_dir.display()))
    };
    let mut client = load_client()?;
    let web_listener: Vec<Listener> = client.web_port.iter().map(|w| w.listener).collect();
    if keep_ports_free(CLIENT_NAME, &client_dir, &web_listener, &mut given)? {
        client = load_client()?;
    }
    let web = client
        .web_port
        .as_ref()
        .with_context(|| format!("{}: [node] web.port is empty", client_dir.display()))?;
    let host = match web.listener.interface {
        IpAddr::V4(v4) if v4.is_unspecified() => loopback.to_string(),
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let web_url = format!("http://{host}:{}/", web.listener.port);
    let servers_path = client_dir.join("private").join("servers.yaml");
    identity::write_replace(&servers_path, servers_yaml.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", servers_path.display()))?;
    members.push(Member {
        entry: NodeEntry {
            name: CLIENT_NAME.into(),
            kind: "client".into(),
            nurl: None,
            web_url: Some(web_url),
            server_id: None,
            pid: None,
            log: log_path(&client_dir),
            dir: client_dir,
        },
        child: None,
    });
    Ok(members)
}

/// Make sure each of a node's listening ports is free and not given to another node of the
/// grid; a taken one is replaced in the node's `tahoe.cfg` by a newly chosen port, with one
/// line saying so. Returns whether anything moved. Adds the ports kept to `given`.
fn keep_ports_free(
    name: &str,
    node_dir: &Path,
    listeners: &[Listener],
    given: &mut HashSet<u16>,
) -> Result<bool> {
    let cfg_path = node_dir.join(node_config::CONFIG_FILE);
    let mut moved = false;
    for l in listeners {
        let why = if given.contains(&l.port) {
            "given to another node of this grid".to_string()
        } else if !ports::is_free(l.interface, l.port) {
            format!(
                "in use by {}",
                ports::holder(l.port).unwrap_or_else(|| "another process".into())
            )
        } else {
            given.insert(l.port);
            continue;
        };
        let new = ports::pick(l.interface, given)
            .with_context(|| format!("choosing a new port for {name}"))?;
        let text = std::fs::read_to_string(&cfg_path)
            .with_context(|| format!("reading {}", cfg_path.display()))?;
        let Some(text) = node_config::move_port(&text, l.port, new) else {
            bail!(
                "{}: port {} is {why}, and no endpoint in [node] names it to move",
                cfg_path.display(),
                l.port
            );
        };
        identity::write_replace(&cfg_path, text.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", cfg_path.display()))?;
        eprintln!(
            "cairn grid: {name}: port {} is {why}; moved to port {new}",
            l.port
        );
        given.insert(new);
        moved = true;
    }
    Ok(moved)
}

fn log_path(node_dir: &Path) -> PathBuf {
    node_dir.join("logs").join("cairn-run.log")
}

/// `cairn run DIR` in its own process group (a Ctrl-C in the terminal reaches `grid up`,
/// which stops the nodes in order), output appended to the node's log.
fn spawn_node(exe: &Path, node: &NodeEntry) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    if let Some(parent) = node.log.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .with_context(|| format!("opening {}", node.log.display()))?;
    let _ = writeln!(
        log,
        "=== cairn grid up: {} run {}",
        exe.display(),
        node.dir.display()
    );
    let err = log.try_clone().context("log file")?;
    Command::new(exe)
        .arg("run")
        .arg(&node.dir)
        .current_dir(&node.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting `cairn run {}`", node.dir.display()))
}

/// Poll the client's `/?t=json` until every storage node shows as connected.
async fn wait_ready(
    members: &mut [Member],
    gateway: &str,
    timeout: Duration,
    signals: &mut Signals,
) -> Result<()> {
    let url = NodeUrl::parse(gateway)?;
    let deadline = Instant::now() + timeout;
    let last_view = loop {
        for m in members.iter_mut() {
            if let Some(child) = m.child.as_mut() {
                if let Some(status) = child.try_wait().context("waiting for a node")? {
                    m.entry.pid = None;
                    m.child = None;
                    bail!(
                        "{} exited during start-up ({status}); last lines of {}:\n{}",
                        m.entry.name,
                        m.entry.log.display(),
                        log_tail(&m.entry.log)
                    );
                }
            }
        }
        let view = server_view(&url).await;
        if let Ok(v) = &view {
            if not_connected(members, v).is_empty() {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            break view;
        }
        tokio::select! {
            name = signals.recv() => bail!("interrupted by {name} while waiting for the grid; stopping it"),
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    };
    match last_view {
        Err(e) => bail!(
            "the client's gateway {gateway} did not answer within {} s: {e:#}; last lines of {}:\n{}",
            timeout.as_secs(),
            members.last().map(|m| m.entry.log.display().to_string()).unwrap_or_default(),
            members.last().map(|m| log_tail(&m.entry.log)).unwrap_or_default()
        ),
        Ok(view) => {
            let missing = not_connected(members, &view);
            bail!(
                "after {} s the client is not connected to {} of {} storage nodes: {} (logs: DIR/<node>/logs/cairn-run.log)",
                timeout.as_secs(),
                missing.len(),
                members.iter().filter(|m| m.entry.kind == "storage").count(),
                missing.join("; ")
            )
        }
    }
}

/// `(nodeid, connection_status)` of every server the gateway knows (Tahoe's `/?t=json`).
async fn server_view(url: &NodeUrl) -> Result<Vec<(String, String)>> {
    let mut resp = tokio::time::timeout(Duration::from_secs(5), http::get(url, "?t=json"))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 5 s"))??;
    if !resp.is_success() {
        return Err(resp.into_error("GET /?t=json").await);
    }
    let body = resp.read_small(http::SMALL_BODY_MAX_BYTES).await?;
    let json: serde_json::Value =
        serde_json::from_slice(&body).context("GET /?t=json: not JSON")?;
    let servers = json
        .get("servers")
        .and_then(|s| s.as_array())
        .context("GET /?t=json: no `servers` list")?;
    Ok(servers
        .iter()
        .map(|s| {
            let field = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            (field("nodeid"), field("connection_status"))
        })
        .collect())
}

/// Storage nodes not shown as connected, described for the user.
fn not_connected(members: &[Member], view: &[(String, String)]) -> Vec<String> {
    members
        .iter()
        .filter_map(|m| m.entry.server_id.as_deref().map(|id| (&m.entry.name, id)))
        .filter_map(
            |(name, id)| match view.iter().find(|(nodeid, _)| nodeid == id) {
                Some((_, status)) if status.to_ascii_lowercase().starts_with("connected") => None,
                Some((_, status)) => Some(format!("{name} ({id}): {status}")),
                None => Some(format!("{name} ({id}): not known to the client")),
            },
        )
        .collect()
}

/// Run until SIGINT/SIGTERM or until a node exits; then stop every node.
async fn supervise(members: &mut [Member], signals: &mut Signals) -> Result<ExitCode> {
    let exited = async {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = signals.recv() => return Ok(None),
                _ = tick.tick() => {
                    for m in members.iter_mut() {
                        if let Some(c) = m.child.as_mut() {
                            if let Some(status) = c.try_wait().context("waiting for a node")? {
                                m.child = None;
                                m.entry.pid = None;
                                return Ok::<_, anyhow::Error>(Some((m.entry.name.clone(), status, m.entry.log.clone())));
                            }
                        }
                    }
                }
            }
        }
    }
    .await?;
    // A node stopped on purpose (`cairn grid down` from elsewhere) is not a failure.
    let mut failed = false;
    if let Some((name, status, log)) = &exited {
        use std::os::unix::process::ExitStatusExt;
        if status.success() || status.signal() == Some(libc::SIGTERM) {
            eprintln!("cairn grid: {name} stopped ({status}); stopping the grid");
        } else {
            failed = true;
            eprintln!(
                "cairn grid: {name} exited ({status}); stopping the grid. Last lines of {}:\n{}",
                log.display(),
                log_tail(log)
            );
        }
    } else {
        eprintln!("cairn grid: stopping");
    }
    for line in stop_members(members, Duration::from_secs(10)) {
        eprintln!("  {line}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// SIGINT, SIGTERM and SIGHUP, caught (so they stop the grid's nodes rather than just `grid up`).
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must be called inside a runtime.
    fn new() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    /// The next signal's name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// Stop our own children: SIGTERM to all (client first), SIGKILL after `grace`. Returns
/// one line per node.
fn stop_members(members: &mut [Member], grace: Duration) -> Vec<String> {
    let mut report = Vec::new();
    for m in members.iter().rev() {
        if let Some(c) = &m.child {
            signal(c.id(), libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    for m in members.iter_mut().rev() {
        let Some(mut child) = m.child.take() else {
            continue;
        };
        let pid = child.id();
        let mut status = None;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        match status {
            Some(s) => report.push(format!("stopped {} (pid {pid}, {s})", m.entry.name)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                report.push(format!(
                    "killed {} (pid {pid}): still running {} s after SIGTERM",
                    m.entry.name,
                    grace.as_secs()
                ));
            }
        }
        m.entry.pid = None;
    }
    report
}

fn down(args: DownArgs) -> Result<ExitCode> {
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("grid directory {}", args.dir.display()))?;
    let mut grid = GridFile::load(&dir)?.with_context(|| {
        format!(
            "{} has no {GRID_FILE}: not a grid started by `cairn grid up`",
            dir.display()
        )
    })?;
    let grace = Duration::from_secs(args.timeout);
    // Client first: it stops using the servers before they go.
    let mut running: Vec<(usize, u32)> = Vec::new();
    for (i, n) in grid.nodes.iter().enumerate().rev() {
        match n.pid {
            Some(pid) if is_node_process(pid, &n.dir) => {
                signal(pid, libc::SIGTERM);
                running.push((i, pid));
            }
            Some(pid) => println!(
                "{}: not running (pid {pid} is gone or is another program)",
                n.name
            ),
            None => println!("{}: not running", n.name),
        }
    }
    let started = Instant::now();
    let deadline = started + grace;
    let mut left = running.clone();
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(|&(i, pid)| is_node_process(pid, &grid.nodes[i].dir));
        if !left.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for &(i, pid) in &running {
        let n = &grid.nodes[i];
        if left.iter().any(|&(j, _)| j == i) {
            signal(pid, libc::SIGKILL);
            println!(
                "{}: killed (pid {pid}): still running {} s after SIGTERM",
                n.name,
                grace.as_secs()
            );
        } else {
            println!("{}: stopped (pid {pid})", n.name);
        }
    }
    for n in grid.nodes.iter_mut() {
        n.pid = None;
    }
    grid.save(&dir)?;
    println!(
        "cairn grid: {} of {} nodes were running in {}; all stopped",
        running.len(),
        grid.nodes.len(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; pid > 0 names one process.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Whether `pid` is alive (not a zombie) and is `cairn run <node_dir>`: a recorded pid may
/// have been reused by another program, which must never be signalled.
fn is_node_process(pid: u32, node_dir: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if !Path::new("/proc/self").exists() {
        // No procfs: only liveness can be checked.
        let Ok(p) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists.
        return p > 0 && unsafe { libc::kill(p, 0) } == 0;
    }
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("");
    if state == "Z" || state == "X" {
        return false;
    }
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let dir = node_dir.as_os_str().as_encoded_bytes();
    args.windows(2).any(|w| w[0] == b"run" && w[1] == dir)
}

fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(cannot read it: {e})"),
    }
}

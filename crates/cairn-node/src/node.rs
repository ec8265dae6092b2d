//! Starting a node from its directory, and stopping it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::gbs_client::ClientOptions;
use cairn_client::servers::load_servers_yaml;
use cairn_client::Grid;
use cairn_config::identity::{self, NodeIdentity};
#[cfg(feature = "storage")]
use cairn_storage::server::{self, RunningServer, ServerOptions};

use crate::config::{ClientConfig, Secrets};
use crate::create::node_url_path;
use crate::gateway::{self, GatewayHandle, GatewayState};
use crate::NodeError;

/// Built without the `storage` feature, a node runs no storage server: this uninhabited
/// type keeps [`RunningNode::storage`] (then always `None`) and the code around it one shape.
#[cfg(not(feature = "storage"))]
pub enum RunningServer {}

#[cfg(not(feature = "storage"))]
impl RunningServer {
    async fn shutdown(self, _grace: Duration) -> usize {
        match self {}
    }
}

/// How often the client asks every storage server for its version (servers it cannot
/// reach: four times as often), which keeps `GET /?t=json`'s `connection_status` fresh.
/// Tahoe 1.20 asks HTTPS servers every second; every 2 s costs a tenth of the requests on
/// a 10-server grid and still notices a server that died within about 2 s.
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// How long requests in flight get to finish when the node stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running node.
pub struct RunningNode {
    pub config: ClientConfig,
    /// The storage server, when `[storage] enabled`.
    pub storage: Option<RunningServer>,
    /// The storage server's identity, when it runs.
    pub identity: Option<NodeIdentity>,
    /// The grid client, when the gateway runs.
    pub grid: Option<Grid>,
    /// Servers in `private/servers.yaml` the client cannot use, with the reason.
    pub skipped_servers: Vec<String>,
    /// Where the gateway listens, and its URL as written to `DIR/node.url`.
    pub web_addr: Option<SocketAddr>,
    pub web_url: Option<String>,
    gateway: Option<GatewayHandle>,
    health: Option<tokio::task::JoinHandle<()>>,
}

/// The URL Tahoe writes to `node.url`: `http://127.0.0.1:PORT/` for a gateway on the
/// wildcard or loopback address, else the address it listens on (Tahoe writes 127.0.0.1
/// there too, which does not reach it).
pub fn web_url_for(addr: SocketAddr) -> String {
    let ip = addr.ip();
    let host = if ip.is_unspecified() || ip == IpAddr::V4(Ipv4Addr::LOCALHOST) {
        "127.0.0.1".to_string()
    } else if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("http://{host}:{}/", addr.port())
}

/// Start the node in `dir`: the storage server if enabled, then (if `web.port` is set) the
/// grid client and the gateway; `DIR/node.url` is written once the gateway listens.
pub async fn start(dir: &Path) -> Result<RunningNode, NodeError> {
    let config = ClientConfig::load(dir)?;
    let secrets = Secrets::load_or_create(dir)?;

    let (storage, identity) = if config.node.storage_enabled {
        let (s, id) = start_storage(&config).await?;
        (Some(s), Some(id))
    } else {
        (None, None)
    };

    let mut node = RunningNode {
        config,
        storage,
        identity,
        grid: None,
        skipped_servers: Vec::new(),
        web_addr: None,
        web_url: None,
        gateway: None,
        health: None,
    };
    let Some(web_port) = node.config.web_port.clone() else {
        return Ok(node);
    };
    match start_gateway(
        &mut node,
        secrets,
        web_port.listener.interface,
        web_port.listener.port,
    )
    .await
    {
        Ok(()) => Ok(node),
        Err(e) => {
            node.shutdown(Duration::from_millis(100)).await;
            Err(e)
        }
    }
}

#[cfg(feature = "storage")]
async fn start_storage(config: &ClientConfig) -> Result<(RunningServer, NodeIdentity), NodeError> {
    let id = NodeIdentity::load_or_create(&config.node)?;
    server::write_announcement(&config.node, &id)?;
    let opts = ServerOptions::from_node(&config.node, &id)?;
    Ok((server::start(opts).await?, id))
}

#[cfg(not(feature = "storage"))]
async fn start_storage(_config: &ClientConfig) -> Result<(RunningServer, NodeIdentity), NodeError> {
    Err(NodeError::Other(
        "[storage] enabled = true, but this cairn was built without the storage server \
         (cargo feature `storage`); set [storage] enabled = false"
            .into(),
    ))
}

async fn start_gateway(
    node: &mut RunningNode,
    secrets: Secrets,
    ip: IpAddr,
    port: u16,
) -> Result<(), NodeError> {
    let servers_path = node.config.private_path("servers.yaml");
    let servers = load_servers_yaml(&servers_path)?;
    for s in &servers.skipped {
        let msg = format!(
            "{}: server {}: {}",
            servers_path.display(),
            s.server_id,
            s.reason
        );
        tracing::warn!("{msg}");
        node.skipped_servers.push(msg);
    }
    let (grid, unusable) = Grid::new(servers.servers, ClientOptions::default());
    for (s, e) in &unusable {
        let msg = format!("{}: server {}: {}", servers_path.display(), s.server_id, e);
        tracing::warn!("{msg}");
        node.skipped_servers.push(msg);
    }
    std::fs::create_dir_all(&node.config.tempdir).map_err(|source| NodeError::Io {
        what: node.config.tempdir.display().to_string(),
        source,
    })?;
    let state = Arc::new(GatewayState::new(&node.config, grid.clone(), secrets));
    let addr = SocketAddr::new(ip, port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                NodeError::Other(format!(
                    "web.port: cannot listen: {}",
                    cairn_config::ports::in_use_message(addr)
                ))
            } else {
                NodeError::Io {
                    what: format!("web.port: listening on {addr}"),
                    source,
                }
            }
        })?;
    let local = listener.local_addr().map_err(|source| NodeError::Io {
        what: "local address".into(),
        source,
    })?;
    node.gateway = Some(gateway::serve(listener, state));
    node.health = Some(grid.spawn_health_checks(HEALTH_CHECK_INTERVAL));
    node.grid = Some(grid);
    let url = web_url_for(local);
    let url_path = node_url_path(&node.config.basedir);
    identity::write_replace(&url_path, format!("{url}\n").as_bytes(), 0o644)?;
    node.web_addr = Some(local);
    node.web_url = Some(url);
    Ok(())
}

impl RunningNode {
    /// Stop: the gateway takes no new connections and gives requests in flight up to `grace`;
    /// health checks stop; the storage server shuts down (uploads in progress aborted).
    pub async fn shutdown(mut self, grace: Duration) {
        if let Some(h) = self.health.take() {
            h.abort();
        }
        if let Some(g) = self.gateway.take() {
            g.shutdown(grace).await;
        }
        if let Some(s) = self.storage.take() {
            let aborted = s.shutdown(grace).await;
            if aborted > 0 {
                tracing::info!("aborted {aborted} uploads in progress");
            }
        }
    }

    /// What `cairn run` prints once the node is up.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        #[cfg(feature = "storage")]
        if let (Some(s), Some(id)) = (&self.storage, &self.identity) {
            for a in &s.local_addrs {
                out.push_str(&format!("cairn storage node listening on {a}\n"));
            }
            for n in id.nurls(&self.config.node.hints) {
                out.push_str(&format!("NURL: {n}\n"));
            }
            out.push_str(&format!("server id: {}\n", id.server_id));
            out.push_str(&format!(
                "servers.yaml entry: {}\n",
                identity::announcement_file(&self.config.basedir).display()
            ));
        }
        if let (Some(url), Some(grid)) = (&self.web_url, &self.grid) {
            out.push_str(&format!("web gateway: {url}\n"));
            out.push_str(&format!(
                "storage servers: {} from {}{}\n",
                grid.servers().len(),
                self.config.private_path("servers.yaml").display(),
                if self.skipped_servers.is_empty() {
                    String::new()
                } else {
                    format!(" ({} skipped)", self.skipped_servers.len())
                }
            ));
        }
        if self.storage.is_none() && self.web_url.is_none() {
            out.push_str("this node runs neither a storage server ([storage] enabled = false) nor a web gateway ([node] web.port is empty)\n");
        }
        out
    }
}

/// `cairn run DIR`: start, print where everything is, serve until `stop` resolves, then
/// shut down within [`SHUTDOWN_GRACE`].
pub async fn run(dir: &Path, stop: impl std::future::Future<Output = ()>) -> Result<(), NodeError> {
    let node = start(dir).await?;
    print!("{}", node.describe());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    stop.await;
    tracing::info!("shutting down");
    node.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

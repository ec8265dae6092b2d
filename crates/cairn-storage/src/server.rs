//! Running the storage server: TLS listeners, per-connection
//! limits, the background upload-timeout sweeper, lease crawler and garbage collector, and a
//! graceful shutdown that aborts uploads in flight so no reservation or partial file leaks.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Limits, NodeConfig};
use crate::http::{self, ServerState};
use crate::identity::{self, NodeIdentity};
use crate::leasedb::{self, ExpirationPolicy, LeaseDb};
use crate::store::Store;

pub use cairn_config::create::{
    create_storage_node as create_node, write_announcement, CreateNodeOptions,
};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Create(#[from] cairn_config::create::CreateError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    LeaseDb(#[from] leasedb::LeaseDbError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// What a server needs to run, independent of a node directory (tests use this directly).
pub struct ServerOptions {
    pub storage_dir: PathBuf,
    pub listen: Vec<SocketAddr>,
    pub tls: rustls::ServerConfig,
    pub swissnum: Vec<u8>,
    pub nodeid: [u8; 20],
    pub reserved_space: u64,
    pub readonly: bool,
    pub limits: Limits,
    pub expiration: ExpirationPolicy,
    /// The date (the system clock, unless a test sets another).
    pub clock: Arc<dyn Clock>,
}

impl ServerOptions {
    pub fn from_node(
        config: &NodeConfig,
        identity: &NodeIdentity,
    ) -> Result<ServerOptions, ServerError> {
        if config.listeners.is_empty() {
            return Err(ServerError::Other(
                "[node] tub.port has no tcp listener".into(),
            ));
        }
        Ok(ServerOptions {
            storage_dir: config.storage_dir.clone(),
            listen: config
                .listeners
                .iter()
                .map(|l| SocketAddr::new(l.interface, l.port))
                .collect(),
            tls: identity.tls_server_config()?,
            swissnum: identity.swissnum.as_bytes().to_vec(),
            nodeid: identity.tubid,
            reserved_space: config.reserved_space,
            readonly: config.readonly,
            limits: config.limits.clone(),
            expiration: config.expiration,
            clock: Arc::new(SystemClock),
        })
    }
}

/// A running server.
pub struct RunningServer {
    pub state: Arc<ServerState>,
    pub local_addrs: Vec<SocketAddr>,
    shutdown_tx: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Open the storage directory (recovering from a crash: every reservation is released and
/// every partial upload deleted), bind the listeners, and start serving.
pub async fn start(opts: ServerOptions) -> Result<RunningServer, ServerError> {
    let now = opts.clock.now_secs();
    let storage_dir = opts.storage_dir.clone();
    let nodeid = opts.nodeid;
    let (store, db) =
        tokio::task::spawn_blocking(move || -> Result<(Store, LeaseDb), ServerError> {
            let store = Store::open(&storage_dir, nodeid)?;
            let (mut db, rebuilt) = LeaseDb::open_or_rebuild(&storage_dir, now)?;
            if let Some(found) = rebuilt {
                tracing::info!("lease database rebuilt from {} share files", found.len());
            }
            let report = leasedb::startup_recovery(&storage_dir, &mut db)?;
            tracing::info!("{report}");
            store.remove_empty_incoming_dirs();
            Ok((store, db))
        })
        .await
        .map_err(|e| ServerError::Other(e.to_string()))??;
    for w in opts.expiration.warnings() {
        tracing::warn!("{w}");
    }
    let state = Arc::new(ServerState::new(
        store,
        db,
        opts.swissnum,
        opts.limits.clone(),
        opts.reserved_space,
        opts.readonly,
        opts.clock.clone(),
    ));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut local_addrs = Vec::new();
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(opts.tls));
    let app = http::router(state.clone());
    let conn_limit = Arc::new(Semaphore::new(opts.limits.max_connections.max(1)));
    let per_ip: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    for addr in &opts.listen {
        let listener = TcpListener::bind(addr).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                ServerError::Other(format!(
                    "tub.port: cannot listen: {}",
                    crate::ports::in_use_message(*addr)
                ))
            } else {
                ServerError::Io {
                    what: format!("listening on {addr}"),
                    source,
                }
            }
        })?;
        local_addrs.push(listener.local_addr().map_err(|source| ServerError::Io {
            what: "local address".into(),
            source,
        })?);
        tasks.spawn(accept_loop(
            listener,
            tls.clone(),
            app.clone(),
            opts.limits.clone(),
            conn_limit.clone(),
            per_ip.clone(),
            shutdown_rx.clone(),
        ));
    }
    tasks.spawn(background(
        state.clone(),
        opts.expiration,
        shutdown_rx.clone(),
    ));
    Ok(RunningServer {
        state,
        local_addrs,
        shutdown_tx,
        tasks,
    })
}

impl RunningServer {
    /// Stop: no new connections, in-flight requests get up to `grace` to finish, then every
    /// connection is dropped, every upload in progress aborted (partial files deleted,
    /// reservations released). Returns how many uploads were aborted.
    pub async fn shutdown(mut self, grace: Duration) -> usize {
        let _ = self.shutdown_tx.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => {
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        let n = self.state.abort_all_uploads().await;
        let st = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut db = st.db.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = db.release_all_reservations() {
                tracing::warn!("releasing reservations at shutdown: {e}");
            }
        })
        .await;
        n
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    app: axum::Router,
    limits: Limits,
    conn_limit: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let Ok(permit) = conn_limit.clone().try_acquire_owned() else {
            tracing::warn!("connection limit reached; refusing {peer}");
            continue;
        };
        {
            let mut m = per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(peer.ip()).or_insert(0);
            if *n >= limits.max_connections_per_ip {
                tracing::warn!("per-address connection limit reached; refusing {peer}");
                continue;
            }
            *n += 1;
        }
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let app = app.clone();
        let limits = limits.clone();
        let per_ip = per_ip.clone();
        let mut shutdown = shutdown.clone();
        conns.spawn(async move {
            let _permit = permit;
            let _guard = IpGuard {
                map: per_ip,
                ip: peer.ip(),
            };
            let stream = match tokio::time::timeout(limits.header_timeout, tls.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake with {peer}: {e}");
                    return;
                }
                Err(_) => return,
            };
            let service = TowerToHyperService::new(app);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("connection from {peer}: {e}");
                    }
                }
                _ = shutdown.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
        });
    }
    drop(listener);
    // Let connections finish gracefully; the caller aborts us after the grace period.
    while conns.join_next().await.is_some() {}
}

struct IpGuard {
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Upload-timeout sweeper, lease-database crawler, and garbage collection after each full
/// crawl cycle (and at most hourly) when `expire.enabled`.
async fn background(
    state: Arc<ServerState>,
    policy: ExpirationPolicy,
    mut shutdown: watch::Receiver<bool>,
) {
    let crawler = leasedb::Crawler::new(&state.store.storage_dir);
    let sweep_every = (state.limits.upload_timeout / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut sweep = tokio::time::interval(sweep_every);
    let mut crawl =
        tokio::time::interval(state.limits.crawl_interval.max(Duration::from_millis(100)));
    let mut gc = tokio::time::interval(Duration::from_secs(3600));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    crawl.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    gc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = sweep.tick() => {
                state.abort_idle_uploads().await;
            }
            _ = crawl.tick() => {
                let st = state.clone();
                let c = crawler.clone();
                let n = state.limits.crawl_prefixes_per_step;
                let finished = tokio::task::spawn_blocking(move || {
                    let mut db = st.db.lock().unwrap_or_else(|p| p.into_inner());
                    match c.step(&mut db, n, st.clock.now_secs()) {
                        Ok(step) => {
                            for d in &step.discrepancies {
                                tracing::info!("lease crawler: {d}");
                            }
                            step.finished_cycle.is_some()
                        }
                        Err(e) => {
                            tracing::warn!("lease crawler: {e}");
                            false
                        }
                    }
                }).await.unwrap_or(false);
                if finished && policy.enabled {
                    run_gc(&state, &policy).await;
                }
            }
            _ = gc.tick() => {
                if policy.enabled {
                    run_gc(&state, &policy).await;
                }
            }
        }
    }
}

async fn run_gc(state: &Arc<ServerState>, policy: &ExpirationPolicy) {
    let st = state.clone();
    let policy = *policy;
    let _ = tokio::task::spawn_blocking(move || {
        let mut db = st.db.lock().unwrap_or_else(|p| p.into_inner());
        match leasedb::collect_garbage(&st.store.storage_dir, &mut db, &policy, st.clock.now_secs())
        {
            Ok(report) => {
                if !report.removed.is_empty() || !report.errors.is_empty() {
                    tracing::info!("{report}");
                }
            }
            Err(e) => tracing::warn!("garbage collection: {e}"),
        }
    })
    .await;
}

/// `cairn run DIR`: load the node, start, print where it is, serve until `stop` resolves,
/// then shut down within the grace period.
pub async fn run_node(
    dir: &Path,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let config = NodeConfig::load(dir)?;
    if !config.storage_enabled {
        return Err(ServerError::Other(
            "[storage] enabled = false: this node serves no storage".into(),
        ));
    }
    let identity = NodeIdentity::load_or_create(&config)?;
    write_announcement(&config, &identity)?;
    let opts = ServerOptions::from_node(&config, &identity)?;
    let server = start(opts).await?;
    for a in &server.local_addrs {
        println!("cairn storage node listening on {a}");
    }
    for n in identity.nurls(&config.hints) {
        println!("NURL: {n}");
    }
    println!("server id: {}", identity.server_id);
    println!(
        "servers.yaml entry: {}",
        identity::announcement_file(dir).display()
    );
    stop.await;
    tracing::info!("shutting down");
    let aborted = server.shutdown(Duration::from_secs(2)).await;
    if aborted > 0 {
        tracing::info!("aborted {aborted} uploads in progress");
    }
    Ok(())
}

//! One in-process storage server, started the one way every test starts them: a node
//! directory (`cairn create-node`'s, or the one Tahoe-LAFS 1.20 made), `ServerOptions`
//! from it listening on 127.0.0.1, `cairn_storage::server::start`. It can be stopped and
//! started again on the same port and directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_client::gbs_client::{ClientOptions, GbsClient, RetryPolicy};
use cairn_client::servers::parse_servers_yaml;
use cairn_client::StaticServer;
use cairn_core::storage::gbs_client_support::Nurl;
use cairn_storage::config::{LocationHint, NodeConfig};
use cairn_storage::identity::NodeIdentity;
use cairn_storage::server::{self, CreateNodeOptions, RunningServer, ServerOptions};

use crate::gbs_raw::RawClient;

/// `cairn create-node` for a server on 127.0.0.1 (generates an RSA key: slow-ish).
pub fn create_node_dir(dir: &Path, nickname: &str) -> (NodeConfig, NodeIdentity) {
    let opts = CreateNodeOptions {
        hostname: "127.0.0.1".into(),
        port: 0,
        listen: None,
        nickname: nickname.into(),
        reserved_space: "0".into(),
    };
    server::create_node(dir, &opts).expect("create node")
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let dest = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A copy of the node directory Tahoe-LAFS 1.20 made (`vectors/tahoe-node/`): Tahoe's own
/// X.509 v1, expired-within-a-year certificate, and no key generation (fast).
pub fn tahoe_node_dir() -> (tempfile::TempDir, NodeConfig, NodeIdentity) {
    let src = crate::fixtures::vectors_dir().join("tahoe-node");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    let config = NodeConfig::load(dir.path()).expect("Tahoe's tahoe.cfg loads");
    let identity = NodeIdentity::load_or_create(&config).expect("Tahoe's private/ loads");
    (dir, config, identity)
}

/// Short timeouts so failing tests fail fast.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        },
        ..ClientOptions::default()
    }
}

/// A storage server in its own temporary node directory.
pub struct StorageServer {
    pub dir: tempfile::TempDir,
    pub config: NodeConfig,
    pub identity: NodeIdentity,
    pub nickname: String,
    /// Where it listens (kept across a stop, for [`StorageServer::restart`]).
    pub addr: SocketAddr,
    /// `None` while stopped.
    pub server: Option<RunningServer>,
    /// A raw storage-protocol client pinned to this server.
    pub raw: RawClient,
}

impl StorageServer {
    /// A server on a fresh `cairn create-node` directory.
    pub async fn start(nickname: &str) -> StorageServer {
        Self::start_with(nickname, |_| {}).await
    }

    /// [`StorageServer::start`], with the server options changed by `tweak` first.
    pub async fn start_with(
        nickname: &str,
        tweak: impl FnOnce(&mut ServerOptions),
    ) -> StorageServer {
        let dir = tempfile::tempdir().unwrap();
        let (config, identity) = create_node_dir(dir.path(), nickname);
        Self::start_in(dir, config, identity, tweak).await
    }

    /// A server on Tahoe's node directory fixture (fast: no key generation).
    pub async fn start_tahoe() -> StorageServer {
        let (dir, config, identity) = tahoe_node_dir();
        Self::start_in(dir, config, identity, |_| {}).await
    }

    /// Serve the node directory `dir` on 127.0.0.1 (a free port).
    pub async fn start_in(
        dir: tempfile::TempDir,
        config: NodeConfig,
        identity: NodeIdentity,
        tweak: impl FnOnce(&mut ServerOptions),
    ) -> StorageServer {
        let (server, addr) = serve(&config, &identity, "127.0.0.1:0".parse().unwrap(), tweak).await;
        let raw = RawClient::new(addr, &identity.spki_hash, &identity.swissnum);
        StorageServer {
            dir,
            nickname: config.nickname.clone(),
            config,
            identity,
            addr,
            server: Some(server),
            raw,
        }
    }

    /// The running server (panics while stopped).
    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    /// Stop it (in-flight uploads aborted, port closed); the directory stays.
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::from_millis(100)).await;
        }
    }

    /// Start it again on its old port and node directory.
    pub async fn restart(&mut self) {
        assert!(self.server.is_none(), "server is running");
        let config = NodeConfig::load(self.dir.path()).unwrap();
        let identity = NodeIdentity::load_or_create(&config).unwrap();
        let (server, _) = serve(&config, &identity, self.addr, |_| {}).await;
        self.server = Some(server);
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.config.storage_dir.clone()
    }

    /// Bytes the lease database holds reserved for uploads in progress.
    pub fn reserved_bytes(&self) -> u64 {
        let db = self.running().state.db.lock().unwrap();
        db.reserved_bytes().unwrap()
    }

    pub fn nurl_for(&self, addr: SocketAddr) -> Nurl {
        crate::tls::nurl(&self.identity, addr)
    }

    pub fn nurl(&self) -> Nurl {
        self.nurl_for(self.addr)
    }

    /// A pooled client of this server with [`fast_options`].
    pub fn client(&self) -> GbsClient {
        GbsClient::new(&self.nurl(), fast_options()).unwrap()
    }

    /// The `servers.yaml` entry (one line) announcing this server at `addr`.
    pub fn announcement_yaml_at(&self, addr: SocketAddr) -> String {
        let hint = LocationHint::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        };
        self.identity.announcement_yaml(&self.nickname, &[hint])
    }

    /// The `StaticServer` a client reads from servers.yaml for this server at `addr`.
    pub fn static_server_at(&self, addr: SocketAddr) -> StaticServer {
        let yaml = format!("storage:\n  {}\n", self.announcement_yaml_at(addr));
        let mut f = parse_servers_yaml(&yaml).expect("announcement parses");
        assert!(f.skipped.is_empty(), "{:?}", f.skipped);
        f.servers.remove(0)
    }

    /// The share files it holds for `storage_index`: `(shnum, path)`, by share number.
    pub fn share_files(&self, storage_index: &[u8; 16]) -> Vec<(u16, PathBuf)> {
        let si = cairn_core::base32::encode(storage_index);
        let dir = self.storage_dir().join("shares").join(&si[..2]).join(&si);
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if let Some(n) = e.file_name().to_str().and_then(|s| s.parse().ok()) {
                    out.push((n, e.path()));
                }
            }
        }
        out.sort();
        out
    }

    /// How many finished share files it holds (under `shares/`, not `incoming/`).
    pub fn share_count(&self) -> usize {
        fn walk(p: &Path) -> usize {
            let Ok(rd) = std::fs::read_dir(p) else {
                return 0;
            };
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        if p.file_name().is_some_and(|n| n == "incoming") {
                            0
                        } else {
                            walk(&p)
                        }
                    } else {
                        usize::from(
                            p.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.parse::<u16>().is_ok()),
                        )
                    }
                })
                .sum()
        }
        walk(&self.storage_dir().join("shares"))
    }
}

async fn serve(
    config: &NodeConfig,
    identity: &NodeIdentity,
    listen: SocketAddr,
    tweak: impl FnOnce(&mut ServerOptions),
) -> (RunningServer, SocketAddr) {
    let mut opts = ServerOptions::from_node(config, identity).unwrap();
    opts.listen = vec![listen];
    tweak(&mut opts);
    let server = server::start(opts).await.expect("start storage server");
    let addr = server.local_addrs[0];
    (server, addr)
}

//! A grid of in-process cairn storage servers, each with its own identity (and so its own
//! place in Tahoe's permutation), and a `Grid` client over them.

use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_client::gbs_client::ClientOptions;
use cairn_client::servers::parse_servers_yaml;
use cairn_client::{Grid, StaticServer};
use cairn_storage::config::LocationHint;
use cairn_storage::identity::NodeIdentity;
use cairn_storage::server::{self, ServerOptions};

use super::{fast_options, Node};

pub struct TestGrid {
    /// `None` once stopped.
    pub nodes: Vec<Option<Node>>,
    /// Announcements in server order (index i = nodes[i]).
    pub announcements: Vec<StaticServer>,
    /// Address, node directory and storage directory of each server (to restart it on
    /// the same port, and to reach its share files).
    saved: Vec<(SocketAddr, PathBuf, PathBuf)>,
}

/// The `StaticServer` a client would read from servers.yaml for this identity at `addr`.
pub fn static_server(identity: &NodeIdentity, nickname: &str, addr: SocketAddr) -> StaticServer {
    let hint = LocationHint::Tcp {
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    let yaml = format!(
        "storage:\n  {}\n",
        identity.announcement_yaml(nickname, &[hint])
    );
    let mut f = parse_servers_yaml(&yaml).expect("announcement parses");
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    f.servers.remove(0)
}

impl TestGrid {
    /// `n` servers, each made by `cairn create-node` (distinct RSA identities).
    pub async fn start(n: usize) -> TestGrid {
        let mut nodes = Vec::new();
        let mut announcements = Vec::new();
        let mut saved = Vec::new();
        for i in 0..n {
            let mut node = Node::start_fresh().await;
            node.nickname = format!("server{i}");
            announcements.push(static_server(&node.identity, &node.nickname, node.addr));
            let config = cairn_storage::config::NodeConfig::load(node.dir.path()).unwrap();
            saved.push((
                node.addr,
                node.dir.path().to_path_buf(),
                config.storage_dir.clone(),
            ));
            nodes.push(Some(node));
        }
        TestGrid {
            nodes,
            announcements,
            saved,
        }
    }

    /// A client over every server, with short timeouts.
    pub fn client(&self) -> Grid {
        self.client_with(fast_options())
    }

    pub fn client_with(&self, opts: ClientOptions) -> Grid {
        let (grid, skipped) = Grid::new(self.announcements.clone(), opts);
        assert!(skipped.is_empty());
        grid
    }

    /// Stop server `i` (in-flight uploads aborted, port closed).
    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.server
                .shutdown(std::time::Duration::from_millis(100))
                .await;
            // keep the directory alive for restarts
            std::mem::forget(node.dir);
        }
    }

    /// Start server `i` again on its old port and storage directory.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "server {i} is running");
        let (addr, node_dir, _) = self.saved[i].clone();
        let config = cairn_storage::config::NodeConfig::load(&node_dir).unwrap();
        let identity = NodeIdentity::load_or_create(&config).unwrap();
        let mut sopts = ServerOptions::from_node(&config, &identity).unwrap();
        sopts.listen = vec![addr];
        let server = server::start(sopts).await.expect("restart");
        let dir = tempfile::TempDir::new().unwrap(); // placeholder owner; real dir was forgotten
        self.nodes[i] = Some(Node {
            dir,
            identity,
            nickname: format!("server{i}"),
            server,
            addr,
        });
    }

    /// The share files server `i` holds for `storage_index`: `(shnum, path)`.
    pub fn share_files(&self, i: usize, storage_index: &[u8; 16]) -> Vec<(u16, PathBuf)> {
        let si = cairn_core::base32::encode(storage_index);
        let dir = self.saved[i].2.join("shares").join(&si[..2]).join(&si);
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

    /// Which servers hold which shares of `storage_index`.
    pub fn share_map(&self, storage_index: &[u8; 16]) -> Vec<Vec<u16>> {
        (0..self.saved.len())
            .map(|i| {
                self.share_files(i, storage_index)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect()
            })
            .collect()
    }
}

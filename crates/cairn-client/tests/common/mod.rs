//! Test helpers: an in-process cairn storage server, a counting TCP proxy, a stalled
//! listener, and a fake TLS server that answers with canned bytes.

#![allow(dead_code)]

pub mod grid;
pub mod place;
pub mod proxy;
pub mod upload_util;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::gbs_client::{ClientOptions, GbsClient, RetryPolicy};
use cairn_core::storage::gbs_client_support::Nurl;
use cairn_storage::config::NodeConfig;
use cairn_storage::identity::NodeIdentity;
use cairn_storage::server::{self, CreateNodeOptions, RunningServer, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Node {
    pub dir: tempfile::TempDir,
    pub identity: NodeIdentity,
    pub nickname: String,
    pub server: RunningServer,
    pub addr: SocketAddr,
}

pub fn make_identity(dir: &std::path::Path) -> NodeIdentity {
    let opts = CreateNodeOptions {
        hostname: "127.0.0.1".into(),
        port: 0,
        listen: None,
        nickname: "client-test".into(),
        reserved_space: "0".into(),
    };
    server::create_node(dir, &opts).expect("create node").1
}

fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
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
pub fn tahoe_fixture() -> (tempfile::TempDir, NodeConfig, NodeIdentity) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors/tahoe-node");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    let config = NodeConfig::load(dir.path()).expect("Tahoe's tahoe.cfg loads");
    let identity = NodeIdentity::load_or_create(&config).expect("Tahoe's private/ loads");
    (dir, config, identity)
}

impl Node {
    /// A server on Tahoe's node directory fixture (fast: no key generation).
    pub async fn start() -> Node {
        let (dir, config, identity) = tahoe_fixture();
        Self::start_on(dir, config, identity).await
    }

    /// A server on a node directory `cairn create-node` makes (generates an RSA key).
    pub async fn start_fresh() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let opts = CreateNodeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            listen: None,
            nickname: "client-test".into(),
            reserved_space: "0".into(),
        };
        let (config, identity) = server::create_node(dir.path(), &opts).expect("create node");
        Self::start_on(dir, config, identity).await
    }

    async fn start_on(dir: tempfile::TempDir, config: NodeConfig, identity: NodeIdentity) -> Node {
        let mut sopts = ServerOptions::from_node(&config, &identity).unwrap();
        sopts.listen = vec!["127.0.0.1:0".parse().unwrap()];
        let server = server::start(sopts).await.expect("start");
        let addr = server.local_addrs[0];
        Node {
            dir,
            identity,
            nickname: config.nickname.clone(),
            server,
            addr,
        }
    }

    pub fn nurl_for(&self, addr: SocketAddr) -> Nurl {
        nurl(&self.identity, addr)
    }

    pub fn nurl(&self) -> Nurl {
        self.nurl_for(self.addr)
    }

    pub fn client(&self) -> GbsClient {
        GbsClient::new(&self.nurl(), fast_options()).unwrap()
    }
}

pub fn nurl(identity: &NodeIdentity, addr: SocketAddr) -> Nurl {
    Nurl::parse(&format!(
        "pb://{}@{}/{}#v=1",
        identity.spki_hash, addr, identity.swissnum
    ))
    .unwrap()
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

/// A TCP proxy in front of `backend` that counts accepted connections.
pub async fn counting_proxy(backend: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut out) = TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    (addr, count)
}

/// A listener that accepts connections and never answers (keeps them open).
pub async fn stalled_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            held.lock().unwrap().push(s);
        }
    });
    (addr, count)
}

/// A TLS server with `identity`'s certificate that reads one request per connection and
/// answers with `response` (raw bytes), then closes.
pub async fn fake_server(identity: &NodeIdentity, response: Vec<u8>) -> SocketAddr {
    let cfg = Arc::new(identity.tls_server_config().unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let response = Arc::new(response);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let response = response.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // read the head (and ignore any body: the tests send bodiless requests)
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = tls.write_all(&response).await;
                let _ = tls.flush().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

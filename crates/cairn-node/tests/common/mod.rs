//! Test helpers: storage nodes and client nodes made and started through cairn-node's own
//! API (`create_node`/`create_client` + `start`), and a small HTTP/1.1 client.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_node::{CreateClientOptions, RunningNode};
use cairn_storage::server::CreateNodeOptions;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// One storage node directory and, while it runs, the running node.
pub struct StorageNode {
    pub dir: PathBuf,
    pub node: Option<RunningNode>,
}

/// `n` storage nodes on 127.0.0.1 (each with its own identity), running.
pub struct Servers {
    _root: tempfile::TempDir,
    pub nodes: Vec<StorageNode>,
}

impl Servers {
    pub async fn start(n: usize) -> Servers {
        let root = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 0..n {
            let dir = root.path().join(format!("server{i}"));
            let opts = CreateNodeOptions {
                hostname: "127.0.0.1".into(),
                port: 0,
                listen: None,
                nickname: format!("server{i}"),
                reserved_space: "0".into(),
            };
            cairn_node::create_node(&dir, &opts, Some("none")).expect("create storage node");
            let node = cairn_node::start(&dir).await.expect("start storage node");
            assert!(node.storage.is_some() && node.web_url.is_none());
            nodes.push(StorageNode {
                dir,
                node: Some(node),
            });
        }
        Servers { _root: root, nodes }
    }

    /// Tahoe's `private/servers.yaml` listing every server (from the announcements the
    /// nodes wrote when they started).
    pub fn servers_yaml(&self) -> String {
        let mut y = String::from("storage:\n");
        for n in &self.nodes {
            let ann = std::fs::read_to_string(n.dir.join("storage-announcement.yaml")).unwrap();
            y.push_str(&format!("  {}\n", ann.trim()));
        }
        y
    }

    pub fn server_id(&self, i: usize) -> String {
        let ann =
            std::fs::read_to_string(self.nodes[i].dir.join("storage-announcement.yaml")).unwrap();
        ann.split(':').next().unwrap().trim().to_string()
    }

    pub async fn stop(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].node.take() {
            n.shutdown(Duration::from_millis(200)).await;
        }
    }

    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].node.is_none());
        self.nodes[i].node = Some(
            cairn_node::start(&self.nodes[i].dir)
                .await
                .expect("restart"),
        );
    }

    /// Share files of every server under `storage/shares/` (count).
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
        self.nodes
            .iter()
            .map(|n| walk(&n.dir.join("storage").join("shares")))
            .sum()
    }
}

/// A client node directory with `servers_yaml`, its gateway on a free port.
pub fn make_client(dir: &Path, servers_yaml: &str, shares: (u16, u16, u16)) {
    let opts = CreateClientOptions {
        webport: Some("tcp:0:interface=127.0.0.1".into()),
        nickname: "test-client".into(),
        shares_needed: Some(shares.0),
        shares_happy: Some(shares.1),
        shares_total: Some(shares.2),
    };
    cairn_node::create_client(dir, &opts).expect("create client");
    std::fs::write(dir.join("private").join("servers.yaml"), servers_yaml).unwrap();
}

/// Append `key = value` to `[client]` of a node's tahoe.cfg.
pub fn set_client_option(dir: &Path, key: &str, value: &str) {
    let p = dir.join("tahoe.cfg");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        cairn_node::create::set_ini_value(&text, "client", key, value),
    )
    .unwrap();
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request on a fresh connection to `base` (`http://127.0.0.1:PORT/`); `path` starts
/// with `/`. An error while reading the body (a download cut short) is returned as `Err`.
pub async fn try_request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Resp, String> {
    let authority = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority.as_str());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes()
        .to_vec();
    Ok(Resp {
        status,
        headers,
        body,
    })
}

pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    try_request(base, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub async fn get(base: &str, path: &str) -> Resp {
    request(base, "GET", path, &[], Vec::new()).await
}

pub async fn put(base: &str, path: &str, body: Vec<u8>) -> Resp {
    request(base, "PUT", path, &[], body).await
}

/// Wait until `f` holds (polling), or panic with `what`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `connection_status` of each server in `GET /?t=json`, by node id.
pub async fn statuses(base: &str) -> std::collections::BTreeMap<String, String> {
    let j = get(base, "/?t=json").await.json();
    j["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["nodeid"].as_str().unwrap().to_string(),
                s["connection_status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `urllib.parse.quote(cap, safe="")`, as the Tahoe CLI quotes caps into paths.
pub fn quote_all(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

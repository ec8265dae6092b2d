//! A raw client of the storage protocol for tests of the server: one HTTP/1.1 request per
//! connection over TLS pinned to the server's SPKI hash, requests and answers as bytes,
//! secrets as the headers Tahoe sends; and a snapshot of a directory's files (for
//! "nothing touched" checks).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::storage::gbs::{self, b64};
use http_body_util::Full;
use hyper::{HeaderMap, Method, Request, StatusCode};
use rustls::pki_types::ServerName;

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Clone)]
pub struct RawClient {
    pub addr: SocketAddr,
    pub swissnum: String,
    tls: tokio_rustls::TlsConnector,
}

impl RawClient {
    pub fn new(addr: SocketAddr, spki_hash: &str, swissnum: &str) -> RawClient {
        RawClient {
            addr,
            swissnum: swissnum.to_string(),
            tls: crate::tls::pinned_connector(spki_hash),
        }
    }

    pub fn auth(&self) -> (String, String) {
        (
            "authorization".into(),
            gbs::authorization_header(self.swissnum.as_bytes()),
        )
    }

    /// Send one request with the given extra headers (the Authorization header is added
    /// unless `no_auth`).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        no_auth: bool,
    ) -> Resp {
        self.try_raw(method, path, headers, body, no_auth)
            .await
            .expect("request failed")
    }

    /// Like [`RawClient::raw`], reporting transport failures instead of panicking.
    pub async fn try_raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        no_auth: bool,
    ) -> Result<Resp, String> {
        let e = |what: &str| {
            let what = what.to_string();
            move |err: &dyn std::fmt::Display| format!("{what}: {err}")
        };
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|x| e("connect")(&x))?;
        let name = ServerName::try_from("cairn.invalid").unwrap();
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|x| e("TLS")(&x))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|x| e("handshake")(&x))?;
        tokio::spawn(connection);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "cairn");
        if !no_auth {
            let (k, v) = self.auth();
            req = req.header(k, v);
        }
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
            .await
            .map_err(|x| e("timeout")(&x))?
            .map_err(|x| e("request")(&x))?;
        let (status, headers, body) = crate::http::read_response(resp).await?;
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    pub async fn req(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Resp {
        self.raw(method, path, headers, body, false).await
    }

    /// Only the status of [`RawClient::req`]'s answer.
    pub async fn status(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> StatusCode {
        self.req(method, path, headers, body).await.status
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.req(Method::GET, path, &[], vec![]).await
    }

    pub async fn get_range(&self, path: &str, range: &str) -> Resp {
        self.req(Method::GET, path, &[("range".into(), range.into())], vec![])
            .await
    }
}

/// Secret header values.
pub fn secret(kind: &str, value: &[u8]) -> (String, String) {
    (
        "x-tahoe-authorization".into(),
        format!("{kind} {}", b64::encode(value)),
    )
}

pub fn alloc_secrets(renew: &[u8; 32], cancel: &[u8; 32], upload: &[u8]) -> Vec<(String, String)> {
    vec![
        secret("lease-renew-secret", renew),
        secret("lease-cancel-secret", cancel),
        secret("upload-secret", upload),
    ]
}

pub fn rtw_secrets(we: &[u8; 32], renew: &[u8; 32], cancel: &[u8; 32]) -> Vec<(String, String)> {
    vec![
        secret("write-enabler", we),
        secret("lease-renew-secret", renew),
        secret("lease-cancel-secret", cancel),
    ]
}

/// All files under a directory, with their contents (for "nothing touched" checks); the
/// lease database is left out.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let name = p.strip_prefix(base).unwrap().display().to_string();
                if name.starts_with("leasedb") {
                    continue;
                }
                out.push((name, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

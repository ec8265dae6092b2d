//! A small HTTP/1.1 client of a node's web gateway (one request per fresh connection, as
//! `tahoe` and `cairn put`/`get` make them), and quoting caps into paths as the Tahoe CLI
//! does.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

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
    let (status, headers, body) = read_response(resp).await?;
    Ok(Resp {
        status: status.as_u16(),
        headers,
        body,
    })
}

/// A response's status, headers and whole body; `Err("body: …")` if reading the body
/// fails.
pub(crate) async fn read_response(
    resp: hyper::Response<hyper::body::Incoming>,
) -> Result<(hyper::StatusCode, hyper::HeaderMap, Vec<u8>), String> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes()
        .to_vec();
    Ok((status, headers, body))
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

/// `method` (GET or HEAD) with a `Range` header.
pub async fn ranged(base: &str, method: &str, path: &str, range: &str) -> Resp {
    request(base, method, path, &[("range", range)], vec![]).await
}

pub async fn get(base: &str, path: &str) -> Resp {
    request(base, "GET", path, &[], Vec::new()).await
}

pub async fn put(base: &str, path: &str, body: Vec<u8>) -> Resp {
    request(base, "PUT", path, &[], body).await
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

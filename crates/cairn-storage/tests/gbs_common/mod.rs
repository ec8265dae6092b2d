//! A minimal GBS client for tests: HTTP/1.1 over rustls, pinning the server's SPKI hash the
//! way Tahoe's client does (no CA, no hostname check, no SNI), one connection per request.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::storage::gbs::{self, b64};
use cairn_storage::config::NodeConfig;
use cairn_storage::identity::{cert_spki_hash, spki_from_cert, NodeIdentity};
use cairn_storage::server::{self, CreateNodeOptions, RunningServer, ServerOptions};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug)]
struct SpkiPin {
    expected: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for SpkiPin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match cert_spki_hash(end_entity.as_ref()) {
            Some(h) if h == self.expected => Ok(ServerCertVerified::assertion()),
            _ => Err(rustls::Error::General("SPKI hash mismatch".into())),
        }
    }
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The client speaks TLS 1.3 only (see `Client::new`).
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Verify against the pinned key itself, not a parsed certificate: Tahoe's
        // certificates are X.509 version 1, which webpki refuses to parse.
        let spki = spki_from_cert(cert.as_ref())
            .ok_or_else(|| rustls::Error::General("no SPKI in certificate".into()))?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &rustls::pki_types::SubjectPublicKeyInfoDer::from(spki),
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub swissnum: String,
    tls: Arc<rustls::ClientConfig>,
}

impl Client {
    pub fn new(addr: SocketAddr, spki_hash: &str, swissnum: &str) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SpkiPin {
                expected: spki_hash.to_string(),
                provider,
            }))
            .with_no_client_auth();
        cfg.enable_sni = false;
        Client {
            addr,
            swissnum: swissnum.to_string(),
            tls: Arc::new(cfg),
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

    /// Like [`Client::raw`], reporting transport failures instead of panicking.
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
        let conn = tokio_rustls::TlsConnector::from(self.tls.clone());
        let name = ServerName::try_from("cairn.invalid").unwrap();
        let tls = conn.connect(name, tcp).await.map_err(|x| e("TLS")(&x))?;
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
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|x| e("body")(&x))?
            .to_bytes()
            .to_vec();
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

/// A test node: a node directory made by `create_node`, served on 127.0.0.1 (port 0).
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub config: NodeConfig,
    pub identity: NodeIdentity,
    pub server: Option<RunningServer>,
    pub client: Client,
}

pub fn make_node_dir(dir: &Path) -> (NodeConfig, NodeIdentity) {
    let opts = CreateNodeOptions {
        hostname: "127.0.0.1".into(),
        port: 0,
        listen: None,
        nickname: "test".into(),
        reserved_space: "0".into(),
    };
    server::create_node(dir, &opts).expect("create node")
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerOptions)) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let (config, identity) = make_node_dir(dir.path());
        let mut opts = ServerOptions::from_node(&config, &identity).unwrap();
        opts.listen = vec!["127.0.0.1:0".parse().unwrap()];
        tweak(&mut opts);
        let server = server::start(opts).await.expect("start");
        let client = Client::new(
            server.local_addrs[0],
            &identity.spki_hash,
            &identity.swissnum,
        );
        TestNode {
            dir,
            config,
            identity,
            server: Some(server),
            client,
        }
    }

    pub fn storage_dir(&self) -> std::path::PathBuf {
        self.config.storage_dir.clone()
    }

    pub fn reserved_bytes(&self) -> u64 {
        let st = &self.server.as_ref().unwrap().state;
        let db = st.db.lock().unwrap();
        db.reserved_bytes().unwrap()
    }
}

/// All files under a directory, with their contents (for "nothing touched" checks).
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

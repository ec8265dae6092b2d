//! TLS and SPKI helpers: the client side pins a server's SPKI hash with cairn-client's own
//! configuration (`cairn_client::gbs_client::pinned_tls_config`, Tahoe's rules); NURLs
//! from a node identity; and a TLS server with a node's certificate that answers every
//! request with canned bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::storage::gbs_client_support::Nurl;
use cairn_storage::identity::NodeIdentity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A connector that accepts only a server whose SPKI hash is `spki_hash`.
pub fn pinned_connector(spki_hash: &str) -> tokio_rustls::TlsConnector {
    let cfg = cairn_client::gbs_client::pinned_tls_config(spki_hash).expect("TLS setup");
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// The NURL of `identity`'s storage service at `addr`.
pub fn nurl(identity: &NodeIdentity, addr: SocketAddr) -> Nurl {
    Nurl::parse(&format!(
        "pb://{}@{}/{}#v=1",
        identity.spki_hash, addr, identity.swissnum
    ))
    .unwrap()
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

//! The connection pool: dialing with the pinned handshake, checking connections out and in, connection errors.

use super::*;

impl GbsClient {
    fn connect_error(&self, c: ConnectError) -> GbsClientError {
        let server = self.inner.server.clone();
        match c {
            ConnectError::Network(m) => GbsClientError::Network {
                server,
                message: format!("connect: {m}"),
            },
            ConnectError::Timeout(d) => GbsClientError::Timeout { server, after: d },
            ConnectError::Pin { expected, got } => GbsClientError::PinMismatch {
                server,
                expected,
                got,
            },
            ConnectError::Tls(m) => GbsClientError::Tls { server, message: m },
        }
    }

    /// An idle connection that is still open, or a new one. `true` if reused.
    pub(super) async fn checkout(&self) -> Result<(Sender, bool), GbsClientError> {
        let inner = &self.inner;
        loop {
            let popped = inner.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match popped {
                Some((s, since))
                    if !s.is_closed()
                        && s.is_ready()
                        && since.elapsed() < inner.opts.idle_timeout =>
                {
                    return Ok((s, true));
                }
                Some(_) => continue, // closed or stale: drop it (its connection task ends)
                None => break,
            }
        }
        let s = inner
            .connector
            .connect()
            .await
            .map_err(|c| self.connect_error(c))?;
        Ok((s, false))
    }

    pub(super) fn checkin(&self, s: Sender) {
        let inner = &self.inner;
        let mut idle = inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < inner.opts.max_idle_per_server {
            idle.push((s, Instant::now()));
        }
    }

    pub(super) fn classify_hyper(&self, e: &hyper::Error) -> GbsClientError {
        let server = self.inner.server.clone();
        let mut message = e.to_string();
        if let Some(s) = std::error::Error::source(e) {
            message = format!("{message}: {s}");
        }
        if e.is_parse() || e.is_parse_status() {
            GbsClientError::Malformed {
                server,
                message: format!("HTTP: {message}"),
            }
        } else {
            GbsClientError::Network { server, message }
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum ConnectError {
    Network(String),
    Timeout(Duration),
    Pin { expected: String, got: String },
    Tls(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Network(m) => write!(f, "connect: {m}"),
            ConnectError::Timeout(d) => write!(f, "connect: timed out after {d:?}"),
            ConnectError::Pin { expected, got } => {
                write!(f, "SPKI pin mismatch: expected {expected}, got {got}")
            }
            ConnectError::Tls(m) => write!(f, "TLS: {m}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Dials the NURL's host and does the pinned handshake.
pub(super) struct PinnedConnector {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) server_name: ServerName<'static>,
    pub(super) tls: tokio_rustls::TlsConnector,
    pub(super) connect_timeout: Duration,
    pub(super) counters: Arc<Counters>,
    pub(super) expected: String,
}

pub(super) type Sender = SendRequest<Full<Bytes>>;

impl PinnedConnector {
    /// TCP connect, pinned TLS handshake, HTTP/1.1 handshake; the connection is driven by a
    /// spawned task that ends when the last sender is dropped or the peer closes.
    async fn connect(&self) -> Result<Sender, ConnectError> {
        let t = self.connect_timeout;
        let work = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| ConnectError::Network(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            self.counters.connections.fetch_add(1, Ordering::Relaxed);
            let tls = self
                .tls
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| tls_error(e, &self.expected))?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tls))
                    .await
                    .map_err(|e| ConnectError::Network(format!("HTTP handshake: {e}")))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(sender)
        };
        tokio::time::timeout(t, work)
            .await
            .map_err(|_| ConnectError::Timeout(t))?
    }
}

pub(super) fn tls_error(e: std::io::Error, expected: &str) -> ConnectError {
    if let Some(inner) = e.get_ref() {
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
            inner.downcast_ref::<rustls::Error>()
        {
            if let Some(d) = other.0.downcast_ref::<PinMismatchDetail>() {
                return ConnectError::Pin {
                    expected: expected.to_string(),
                    got: d.got.clone(),
                };
            }
        }
        if inner.downcast_ref::<rustls::Error>().is_some() {
            return ConnectError::Tls(e.to_string());
        }
    }
    // I/O failure during the handshake: the peer closed or reset the connection.
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
            ConnectError::Network(format!("connection closed during the TLS handshake: {e}"))
        }
        _ => ConnectError::Tls(e.to_string()),
    }
}

//! The client's view of the grid: every known storage server with a pooled connection and
//! a health record. Servers that fail, time out or send corrupt data are scored down with
//! the reason recorded; uploads and downloads consult the record (a server currently
//! marked bad is tried last) and `/?t=json` reports it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cairn_core::hashutil::{self, Hash};
use cairn_core::storage::gbs::VersionResponse;

use cairn_core::client::machine::ProblemKind;

use crate::gbs_client::{ClientOptions, Fault, GbsClient, GbsClientError, LeaseSecrets};
use crate::servers::StaticServer;

/// Health of one server as the client has seen it.
#[derive(Debug, Clone, Default)]
pub struct ServerHealth {
    /// `Some(true)` after a successful request, `Some(false)` after a network/identity
    /// failure, `None` before the first contact.
    pub connected: Option<bool>,
    /// Starts at 0; every misbehaviour subtracts, every success adds back (capped at 0).
    pub score: i64,
    /// Why the server was last scored down, with when.
    pub last_problem: Option<(SystemTime, String)>,
    /// Last time the server answered anything correctly.
    pub last_ok: Option<SystemTime>,
    /// The server's version answer, once fetched.
    pub version: Option<VersionResponse>,
    /// Counts of problems by kind since start.
    pub errors: u64,
    pub corrupt_shares: u64,
    pub stalls: u64,
}

/// How much a problem counts against a server (the problems are the machines' reports,
/// [`ProblemKind`], one type from the core up).
fn penalty(kind: ProblemKind) -> i64 {
    match kind {
        ProblemKind::Corrupt => 100,
        ProblemKind::Failed(Fault::Identity) => 1000,
        ProblemKind::Failed(Fault::Server) => 20,
        ProblemKind::Failed(Fault::Network) => 10,
        ProblemKind::Stall => 10,
        ProblemKind::Failed(Fault::Refused) | ProblemKind::Failed(Fault::Client) => 0,
        ProblemKind::Changed | ProblemKind::Unsupported => 0,
    }
}

/// One storage server: its announcement, a connection pool and its health.
pub struct ServerEntry {
    /// Position in the configured list (stable for the life of the [`Grid`]).
    pub index: usize,
    pub info: StaticServer,
    pub client: GbsClient,
    health: Mutex<ServerHealth>,
}

impl std::fmt::Debug for ServerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEntry")
            .field("index", &self.index)
            .field("server_id", &self.info.server_id)
            .finish()
    }
}

impl ServerEntry {
    pub fn health(&self) -> ServerHealth {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A short name for messages: Tahoe's 8-character id and `host:port`.
    pub fn name(&self) -> String {
        format!("{} ({})", self.info.short_name(), self.client.server())
    }

    /// Record a success.
    pub fn report_ok(&self) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.connected = Some(true);
        h.last_ok = Some(SystemTime::now());
        h.score = (h.score + 1).min(0);
    }

    /// Record a problem and why. A share that changed under a reader or that it cannot
    /// lay out is not the server's doing: logged, not recorded.
    pub fn report(&self, problem: ProblemKind, reason: impl Into<String>) {
        let reason = reason.into();
        if matches!(problem, ProblemKind::Changed | ProblemKind::Unsupported) {
            tracing::info!(server = %self.name(), %problem, %reason, "share dropped");
            return;
        }
        tracing::warn!(server = %self.name(), ?problem, %reason, "storage server scored down");
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.score -= penalty(problem);
        h.last_problem = Some((SystemTime::now(), reason));
        match problem {
            ProblemKind::Corrupt => h.corrupt_shares += 1,
            ProblemKind::Stall => h.stalls += 1,
            ProblemKind::Changed | ProblemKind::Unsupported => {}
            ProblemKind::Failed(f) => {
                h.errors += 1;
                if matches!(f, Fault::Network | Fault::Identity) {
                    h.connected = Some(false);
                }
            }
        }
    }

    /// Record the outcome of a request (success, or the error's fault).
    pub fn report_result<T>(&self, r: &Result<T, GbsClientError>) {
        match r {
            Ok(_) => self.report_ok(),
            Err(e) => self.report(ProblemKind::Failed(e.fault()), e.to_string()),
        }
    }

    /// Ask the server for its version (and so learn whether it is reachable).
    pub async fn probe(&self) -> Result<VersionResponse, GbsClientError> {
        let r = self.client.version().await;
        self.report_result(&r);
        if let Ok(v) = &r {
            self.health
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .version = Some(v.clone());
        }
        r
    }
}

/// Every server the client knows.
#[derive(Clone, Debug)]
pub struct Grid {
    servers: Arc<Vec<Arc<ServerEntry>>>,
}

impl Grid {
    /// Servers with a usable (non-Tor) NURL become entries; the others are skipped with a
    /// warning (returned so callers can show them).
    pub fn new(
        servers: Vec<StaticServer>,
        opts: ClientOptions,
    ) -> (Grid, Vec<(StaticServer, GbsClientError)>) {
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for info in servers {
            let mut last_err = None;
            let mut client = None;
            for nurl in &info.nurls {
                match GbsClient::new(nurl, opts.clone()) {
                    Ok(c) => {
                        client = Some(c);
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            match client {
                Some(client) => entries.push(Arc::new(ServerEntry {
                    index: entries.len(),
                    info,
                    client,
                    health: Mutex::new(ServerHealth::default()),
                })),
                None => {
                    let e =
                        last_err.unwrap_or_else(|| GbsClientError::Unsupported("no NURL".into()));
                    skipped.push((info, e));
                }
            }
        }
        (
            Grid {
                servers: Arc::new(entries),
            },
            skipped,
        )
    }

    pub fn servers(&self) -> &[Arc<ServerEntry>] {
        &self.servers
    }

    /// Servers in Tahoe's order for this storage index (the order both implementations
    /// place and look for shares in).
    pub fn permuted(&self, storage_index: &[u8]) -> Vec<Arc<ServerEntry>> {
        let seeds: Vec<&[u8]> = self
            .servers
            .iter()
            .map(|s| s.info.permutation_seed.as_slice())
            .collect();
        cairn_core::permute::permuted_indices(storage_index, &seeds)
            .into_iter()
            .map(|i| self.servers[i].clone())
            .collect()
    }

    /// Probe every server now, concurrently.
    pub async fn probe_all(&self) {
        let probes = self.servers.iter().map(|s| {
            let s = s.clone();
            tokio::spawn(async move {
                let _ = s.probe().await;
            })
        });
        for p in probes.collect::<Vec<_>>() {
            let _ = p.await;
        }
    }

    /// Keep connection status fresh: probe every server now and then every `interval`
    /// (servers known to be down are probed every `interval / 4`, so a server that comes
    /// back is noticed quickly). Stops when the returned handle is aborted or dropped with
    /// the runtime.
    pub fn spawn_health_checks(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let grid = self.clone();
        tokio::spawn(async move {
            let fast = interval / 4;
            let mut last_full = None::<tokio::time::Instant>;
            loop {
                let now = tokio::time::Instant::now();
                let full = last_full.is_none_or(|t| now.duration_since(t) >= interval);
                if full {
                    last_full = Some(now);
                }
                let targets: Vec<_> = grid
                    .servers
                    .iter()
                    .filter(|s| full || s.health().connected != Some(true))
                    .cloned()
                    .collect();
                let probes: Vec<_> = targets
                    .into_iter()
                    .map(|s| {
                        tokio::spawn(async move {
                            let _ = s.probe().await;
                        })
                    })
                    .collect();
                for p in probes {
                    let _ = p.await;
                }
                tokio::time::sleep(fast.max(Duration::from_millis(100))).await;
            }
        })
    }
}

/// Tahoe's lease secret chain for one file: the client secret, then the file's storage
/// index (`file_renewal_secret_hash`), then each server's lease seed
/// (`bucket_renewal_secret_hash`). CHK uploads and mutable writes both use it.
#[derive(Clone)]
pub(crate) struct FileLeases {
    renew: Hash,
    cancel: Hash,
}

impl FileLeases {
    pub(crate) fn new(client_secret: &[u8], si: &[u8; 16]) -> Self {
        let renew = hashutil::my_renewal_secret_hash(client_secret);
        let cancel = hashutil::my_cancel_secret_hash(client_secret);
        FileLeases {
            renew: hashutil::file_renewal_secret_hash(&renew, si),
            cancel: hashutil::file_cancel_secret_hash(&cancel, si),
        }
    }

    pub(crate) fn for_server(&self, s: &ServerEntry) -> LeaseSecrets {
        let seed = s.info.lease_seed();
        LeaseSecrets {
            renew: hashutil::bucket_renewal_secret_hash(&self.renew, seed),
            cancel: hashutil::bucket_cancel_secret_hash(&self.cancel, seed),
        }
    }
}

//! CHK download driver: runs [`cairn_core::client::download::DownloadMachine`] against the
//! grid.
//!
//! One task owns the machine. Requests go out concurrently (one Tokio task each, aborted
//! when the machine cancels them); block verification and segment decoding run on
//! blocking threads, at most [`DownloadOptions::cpu_workers`] at once, while the next
//! blocks are already on their way; plaintext goes to the sink in file order through a
//! small bounded channel, so memory stays bounded by a few block runs whatever the file
//! size. Servers are scored in the grid's health record: failed requests by their fault,
//! corrupt shares (and the server is told, as Tahoe's downloader does) and stalls.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_core::cap::ChkReadCap;
use cairn_core::client::download::{
    DownloadConfig, DownloadMachine, DownloadStats, Request, Response, ServerInfo, Work, Worked,
};
use cairn_core::client::machine::{
    Chunk, Failure, Fault, Problem, ProblemKind, RequestId, RunJob, ServerIndex,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};

use crate::driver::{drive, Executor, MachineBroken, Run};
use crate::grid::{Grid, ServerEntry};
use crate::upload::{Phase, Progress, ProgressFn};

pub use cairn_core::client::download::DownloadError as MachineError;

/// How a download behaves. The defaults suit a LAN or loopback grid.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// A request unanswered for this long is abandoned, its server reported as stalling,
    /// and another share holder takes over.
    pub stall_timeout: Duration,
    /// Target size of one block read (consecutive blocks of one share).
    pub read_batch_bytes: u64,
    /// Block reads kept in flight ahead of the output, per share, in units of
    /// `read_batch_bytes`.
    pub pipeline_batches: u64,
    /// Share-list queries outstanding at once (Tahoe: 10).
    pub max_outstanding_lists: usize,
    /// Blocking threads used for hashing and decoding (0: the number of CPUs).
    pub cpu_workers: usize,
    /// Tell servers whose shares fail verification (`advise_corrupt`), as Tahoe does.
    pub advise_corrupt: bool,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        let c = DownloadConfig::default();
        DownloadOptions {
            stall_timeout: Duration::from_millis(c.stall_timeout),
            read_batch_bytes: c.read_batch_bytes,
            pipeline_batches: c.pipeline_batches,
            max_outstanding_lists: c.max_outstanding_lists,
            cpu_workers: 0,
            advise_corrupt: true,
        }
    }
}

/// A server reported during a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProblem {
    /// [`ServerEntry::name`].
    pub server: String,
    /// Tahoe's server id (`v0-...`).
    pub server_id: String,
    pub shnum: Option<u16>,
    pub kind: ProblemKind,
    pub reason: String,
}

/// What a download did.
#[derive(Debug, Clone, Default)]
pub struct DownloadReport {
    /// Plaintext bytes written.
    pub bytes: u64,
    /// Servers that delivered verified blocks ([`ServerEntry::name`]).
    pub servers_used: Vec<String>,
    /// One line per problem: server, share, kind, reason.
    pub problems: Vec<String>,
    /// Shares dropped while in use (a replacement was then sought).
    pub switches: u32,
    /// The problems, structured.
    pub reports: Vec<ServerProblem>,
    /// Request counts and sizes (segments read, blocks requested, ...).
    pub stats: DownloadStats,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Not enough shares, a bad cap, an inconsistent file.
    #[error("{0}")]
    Grid(#[from] MachineError),
    /// Writing the plaintext failed.
    #[error("writing the downloaded data: {0}")]
    Io(#[from] std::io::Error),
    /// A bug: the driver broke the protocol with the machine.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<MachineBroken> for DownloadError {
    fn from(e: MachineBroken) -> DownloadError {
        DownloadError::Internal(e.0)
    }
}

/// (The contract's `Phase` has no download phase; transfer progress is reported under
/// this one.)
const TRANSFER_PHASE: Phase = Phase::Uploading;

/// Download `range` (clamped to the file) of the CHK file `cap` from `grid` into `sink`.
pub async fn download(
    grid: &Grid,
    cap: &ChkReadCap,
    range: Range<u64>,
    sink: &mut (dyn AsyncWrite + Unpin + Send),
    opts: &DownloadOptions,
    progress: Option<ProgressFn>,
) -> Result<DownloadReport, DownloadError> {
    let si = cap.storage_index();
    let servers = grid.permuted(si.as_bytes());
    let infos = servers
        .iter()
        .map(|s| ServerInfo {
            name: s.name(),
            score: s.health().score,
        })
        .collect::<Vec<_>>();
    let defaults = DownloadConfig::default();
    let cfg = DownloadConfig {
        stall_timeout: opts.stall_timeout.as_millis().min(u64::MAX as u128) as u64,
        max_outstanding_lists: opts.max_outstanding_lists,
        read_batch_bytes: opts.read_batch_bytes,
        pipeline_batches: opts.pipeline_batches,
        ..defaults
    };
    let mut machine: DownloadMachine<Bytes> = DownloadMachine::new(cap, infos, range, cfg)?;
    let total = {
        let r = machine.range();
        r.end - r.start
    };
    let workers = match opts.cpu_workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(8);

    let report_progress = |phase, done| {
        if let Some(p) = &progress {
            p(Progress { phase, done, total });
        }
    };
    report_progress(Phase::Locating, 0);

    let mut exec = DownloadRun {
        si,
        servers,
        cpu: Arc::new(Semaphore::new(workers.max(1))),
        advise_corrupt: opts.advise_corrupt,
        reported_ok: HashSet::new(),
        out: out_tx,
    };
    let run = async {
        let r = drive(&mut machine, &mut exec).await;
        drop(exec); // closes the plaintext channel: the writer ends
        r
    };
    let write = async {
        let mut written = 0u64;
        let mut failed = None;
        while let Some(buf) = out_rx.recv().await {
            if let Err(e) = sink.write_all(&buf).await {
                failed = Some(e);
                break;
            }
            written += buf.len() as u64;
            report_progress(TRANSFER_PHASE, written);
        }
        drop(out_rx);
        if failed.is_none() {
            if let Err(e) = sink.flush().await {
                failed = Some(e);
            }
        }
        (written, failed)
    };
    let (result, (written, write_err)) = tokio::join!(run, write);
    if let Some(e) = write_err {
        return Err(DownloadError::Io(e));
    }
    result??;
    report_progress(Phase::Done, written);
    let servers = grid.permuted(si.as_bytes());
    let reports: Vec<ServerProblem> = machine
        .problems()
        .iter()
        .filter_map(|p| {
            let s = servers.get(p.server.get())?;
            Some(ServerProblem {
                server: s.name(),
                server_id: s.info.server_id.clone(),
                shnum: p.shnum.map(u16::from),
                kind: p.kind,
                reason: p.reason.clone(),
            })
        })
        .collect();
    Ok(DownloadReport {
        bytes: written,
        servers_used: machine
            .servers_used()
            .into_iter()
            .filter_map(|i| servers.get(i.get()).map(|s| s.name()))
            .collect(),
        problems: reports.iter().map(problem_line).collect(),
        switches: machine.stats().switches,
        reports,
        stats: machine.stats().clone(),
    })
}

fn problem_line(p: &ServerProblem) -> String {
    let kind = p.kind;
    match p.shnum {
        Some(n) => format!("server {} share {n}: {kind}: {}", p.server, p.reason),
        None => format!("server {}: {kind}: {}", p.server, p.reason),
    }
}

/// Carries out a download's actions (see [`crate::driver`]): share lists and block reads
/// as requests, verification and decoding on blocking threads, plaintext to the writer.
struct DownloadRun {
    si: cairn_core::ids::StorageIndex,
    servers: Vec<Arc<ServerEntry>>,
    cpu: Arc<Semaphore>,
    advise_corrupt: bool,
    reported_ok: HashSet<ServerIndex>,
    out: mpsc::Sender<Vec<u8>>,
}

impl Executor<DownloadMachine<Bytes>> for DownloadRun {
    type Done = Result<(), MachineError>;
    type Error = DownloadError;

    fn send(
        &mut self,
        id: RequestId,
        server: ServerIndex,
        request: Request,
        run: &mut Run<DownloadMachine<Bytes>>,
    ) {
        let Some(entry) = self.servers.get(server.get()).cloned() else {
            let failure = Failure::new(Fault::Client, format!("no server {}", server.0));
            run.spawn(id, async move { Err(failure) });
            return;
        };
        let si = self.si;
        match request {
            Request::ListShares => {
                let first = self.reported_ok.insert(server);
                run.spawn(id, async move {
                    match entry.client.list_immutable_shares(&si).await {
                        Ok(set) => {
                            if first {
                                entry.report_ok();
                            }
                            Ok(Response::Listed(set.into_iter().collect()))
                        }
                        Err(e) => Err(Failure::new(e.fault(), e.to_string())),
                    }
                });
            }
            Request::Read {
                shnum, offset, len, ..
            } => {
                run.spawn(id, async move {
                    match entry.client.read_immutable(&si, shnum, offset, len).await {
                        Ok(data) => Ok(Response::Read(data)),
                        Err(e) => Err(Failure::new(e.fault(), e.to_string())),
                    }
                });
            }
        }
    }

    fn work(&mut self, job: Work<Bytes>, run: &mut Run<DownloadMachine<Bytes>>) {
        match job {
            // Hashing a small read costs less than a trip to a blocking thread.
            Work::Verify(job) if job.len() <= 16 * 1024 => run.worked(Worked::Verified(job.run())),
            job => self.cpu_job(run, job),
        }
    }

    async fn output(&mut self, out: Chunk) -> Result<Option<Self::Done>, DownloadError> {
        if self.out.send(out.data).await.is_err() {
            // the writer failed; its error is returned by the caller
            return Ok(Some(Ok(())));
        }
        Ok(None)
    }

    fn server(&self, server: ServerIndex) -> Option<&ServerEntry> {
        self.servers.get(server.get()).map(|e| &**e)
    }

    fn reported(&mut self, p: &Problem) {
        let (ProblemKind::Corrupt, true, Some(sh)) = (p.kind, self.advise_corrupt, p.shnum) else {
            return;
        };
        let Some(entry) = self.servers.get(p.server.get()).cloned() else {
            return;
        };
        let si = self.si;
        let reason = crate::GbsClient::fit_reason(p.reason.clone());
        // fire and forget, as Tahoe's downloader does
        tokio::spawn(async move {
            if let Err(e) = entry
                .client
                .advise_corrupt_immutable(&si, sh, &reason)
                .await
            {
                tracing::debug!(server = %entry.name(), "advise_corrupt failed: {e}");
            }
        });
    }

    fn finish(&mut self, r: Result<(), MachineError>) -> Result<Self::Done, DownloadError> {
        Ok(r)
    }
}

impl DownloadRun {
    /// A CPU job on a blocking thread (at most `cpu_workers` at once); its result comes
    /// back to the machine.
    fn cpu_job(&self, run: &Run<DownloadMachine<Bytes>>, job: Work<Bytes>) {
        let cpu = self.cpu.clone();
        run.spawn_work(async move {
            let permit = cpu.acquire_owned().await.ok()?;
            tokio::task::spawn_blocking(move || {
                let done = job.run();
                drop(permit);
                done
            })
            .await
            .ok()
        });
    }
}

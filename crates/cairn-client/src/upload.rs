//! CHK upload driver: reads the file, runs [`cairn_core::client::upload::UploadMachine`]
//! (Tahoe's server selection) against the grid, and streams the encoded shares to the
//! chosen servers. Compat map §3.6.
//!
//! ```text
//!  file ──pass 1 (only if no key was given)──> ConvergentKeyHasher ──> key, storage index
//!  servers: probe (version) ─> list shares ─> allocate (rounds, UploadMachine)
//!  file ──pass 2──> [blocking thread] ChkEncoder ──Arc<Batch>──> bounded channel per server
//!                                                                 └─> writer task: PATCH
//! ```
//!
//! * The encoder runs on one blocking thread (CPU work never runs on the runtime, which
//!   stays free for TLS) and copies each share's blocks into owned buffers, batched to
//!   about [`WRITE_BATCH_BYTES`] per share (header and trailer ride along in the first and
//!   last batch, so a small file is one PATCH per share). Every server has its own writer
//!   task fed by a channel of [`PIPELINE_DEPTH`] batches and keeping [`WRITES_IN_FLIGHT`]
//!   PATCHes per share in flight: segment n+1 is encoded while segment n is on the wire,
//!   and the encoder waits for the slowest server. Memory is therefore bounded by
//!   `PIPELINE_DEPTH + WRITES_IN_FLIGHT + 2` batches of `N` share buffers, whatever the file
//!   size ([`UploadReport::peak_buffered_bytes`] measures it).
//! * A server whose write fails is reported to the grid and dropped
//!   ([`UploadMachine::server_lost`]); the upload continues while happiness holds, and
//!   otherwise every bucket is aborted and the upload fails with [`UploadError::Unhappy`].
//! * Shares the servers already hold are not sent; if all are present nothing is sent, but
//!   the file is still encoded, because the cap contains the hash of the URI extension
//!   block, which only encoding the whole file can produce.
//! * Lease secrets as Tahoe derives them: client secret -> `my_*_secret_hash` ->
//!   `file_*_secret_hash(storage index)` -> `bucket_*_secret_hash(server's lease seed)`;
//!   a fresh 20-byte upload secret for every allocation request.
//! * Files of at most 55 bytes are LIT caps and touch no server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cairn_core::chk::{
    self, ChkEncoder, ChkError, ConvergentKeyHasher, EncodedTrailer, EncodingParams,
};
use cairn_core::client::machine::{Failure, RequestId, ServerIndex};
use cairn_core::client::upload::{
    Abort, Candidate, Placement, SelectionParams, SetupError, ShareNum, UploadMachine,
    UploadRequest, UploadResponse, UploadUnhappy,
};
use cairn_core::hashutil;
use cairn_core::ids::StorageIndex;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::driver::{drive, Executor, MachineBroken, Run};
use crate::gbs_client::{new_upload_secret, GbsClientError};
use crate::grid::{FileLeases, Grid, ServerEntry};
use cairn_core::client::machine::ProblemKind;

/// Bytes read and hashed per step of the key pass.
pub const HASH_CHUNK: usize = 1 << 20;
/// Tahoe's timeout for share listing and allocation requests (`timeout_call(..., 15)`).
pub const SELECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// Batches queued for each server's writer: how far the encoder may run ahead of the
/// slowest server.
pub const PIPELINE_DEPTH: usize = 1;
/// PATCH requests in flight per share: the next batch travels while the server writes
/// the previous one.
pub const WRITES_IN_FLIGHT: usize = 2;
/// Target PATCH body per share (at least one block): amortises per-request costs for small
/// segments while keeping `N` such buffers per batch small.
pub const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Time allowed for best-effort bucket aborts after a failed upload.
pub const ABORT_GRACE: Duration = Duration::from_secs(5);

/// What to upload with.
#[derive(Clone)]
pub struct UploadConfig {
    /// `k`, `happy`, `N`, maximum segment size (`[client] shares.*`).
    pub params: EncodingParams,
    /// The convergence secret (`private/convergence`, decoded).
    pub convergence: Vec<u8>,
    /// The client's lease secret (Tahoe's `private/secret`, decoded); `None` = a random one
    /// per upload (leases can then not be renewed or cancelled by this client later).
    pub lease_secret: Option<Vec<u8>>,
}

impl UploadConfig {
    pub fn new(params: EncodingParams, convergence: Vec<u8>) -> Self {
        UploadConfig {
            params,
            convergence,
            lease_secret: None,
        }
    }
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig::new(EncodingParams::default(), Vec::new())
    }
}

impl std::fmt::Debug for UploadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadConfig")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// A progress callback. Called from the runtime and from the encoder's blocking thread;
/// keep it quick.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the file to compute the convergent key.
    Hashing,
    /// Finding servers and allocating space.
    Locating,
    /// Encoding and sending shares (`done` = plaintext bytes encoded).
    Uploading,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    /// Bytes of the file done in this phase.
    pub done: u64,
    pub total: u64,
}

/// What an upload did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// `URI:CHK:…` or `URI:LIT:…`.
    pub cap: String,
    pub size: u64,
    /// `None` for LIT.
    pub storage_index: Option<[u8; 16]>,
    /// Servers of happiness of the shares in place at the end.
    pub happiness: usize,
    /// Distinct share numbers written by this upload.
    pub shares_written: usize,
    /// Distinct share numbers the servers already held (not sent again).
    pub shares_already_present: usize,
    /// share -> server ids (`v0-…`) holding it now (written or present before).
    pub sharemap: BTreeMap<u16, Vec<String>>,
    /// Share bytes the servers accepted (PATCH bodies).
    pub bytes_sent: u64,
    /// Servers asked for their shares.
    pub servers_tried: usize,
    /// Every server problem met, with the server's name and the reason.
    pub problems: Vec<String>,
    /// Most segments whose blocks were held in memory at once.
    pub peak_segments_in_flight: usize,
    /// Most share bytes held in memory at once (encoded, not yet accepted by every server).
    pub peak_buffered_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("bad encoding parameters: {0}")]
    Params(String),
    #[error("no storage server is reachable ({configured} configured){}", list_suffix(.problems))]
    NoServers {
        configured: usize,
        problems: Vec<String>,
    },
    /// Happiness could not be reached or was lost while writing. `message` names how many
    /// servers were asked and reachable, and why the others failed.
    #[error("{message}")]
    Unhappy {
        message: String,
        happiness: usize,
        happy: usize,
        servers_queried: usize,
        servers_reachable: usize,
    },
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding: {0}")]
    Encode(#[from] ChkError),
    #[error("internal error: {0}")]
    Internal(String),
}

fn list_suffix(items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(": {}", items.join("; "))
    }
}

/// Upload `size` bytes of `file`. `key: Some` = the caller already computed the convergent
/// key (the file is then read once); `None` = read it twice (hash pass, encode pass).
pub async fn upload_file(
    grid: &Grid,
    cfg: &UploadConfig,
    file: std::fs::File,
    size: u64,
    key: Option<[u8; 16]>,
    progress: Option<ProgressFn>,
) -> Result<UploadReport, UploadError> {
    check_params(&cfg.params)?;
    let meta_len = file.metadata()?.len();
    if meta_len < size {
        return Err(UploadError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the file has {meta_len} bytes, {size} expected"),
        )));
    }
    let src = Source::File(Arc::new(file));
    if chk::is_lit(size) {
        let data = blocking(move || {
            let mut buf = Vec::new();
            src.segment(0, size as usize, &mut buf).map(|s| s.to_vec())
        })
        .await??;
        return lit_report(&data, &progress)
            .ok_or_else(|| UploadError::Internal("a LIT-sized read gave more bytes".into()));
    }
    let key = match key {
        Some(k) => k,
        None => hash_pass_blocking(&src, cfg, size, &progress).await?,
    };
    upload_chk(grid, cfg, src, size, key, progress).await
}

/// Upload an in-memory file (read in place, never copied whole).
pub async fn upload_bytes(
    grid: &Grid,
    cfg: &UploadConfig,
    data: Bytes,
    progress: Option<ProgressFn>,
) -> Result<UploadReport, UploadError> {
    check_params(&cfg.params)?;
    let size = data.len() as u64;
    if let Some(report) = lit_report(&data, &progress) {
        return Ok(report);
    }
    let src = Source::Bytes(data);
    let key = hash_pass_blocking(&src, cfg, size, &progress).await?;
    upload_chk(grid, cfg, src, size, key, progress).await
}

// -------------------------------------------------------------------------------------
// Input

#[derive(Clone)]
enum Source {
    File(Arc<std::fs::File>),
    Bytes(Bytes),
}

impl Source {
    /// `len` bytes at `offset`: read into `scratch` (files) or borrowed (bytes).
    fn segment<'a>(
        &'a self,
        offset: u64,
        len: usize,
        scratch: &'a mut Vec<u8>,
    ) -> std::io::Result<&'a [u8]> {
        match self {
            Source::Bytes(b) => {
                let start = usize::try_from(offset).map_err(|_| eof())?;
                b.get(start..start.checked_add(len).ok_or_else(eof)?)
                    .ok_or_else(eof)
            }
            Source::File(f) => {
                scratch.resize(len, 0);
                read_exact_at(f, &mut scratch[..len], offset)?;
                Ok(&scratch[..len])
            }
        }
    }
}

fn eof() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the file is shorter than its announced size",
    )
}

#[cfg(unix)]
fn read_exact_at(f: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            eof()
        } else {
            e
        }
    })
}

#[cfg(windows)]
fn read_exact_at(f: &std::fs::File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, offset)? {
            0 => return Err(eof()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

fn check_params(p: &EncodingParams) -> Result<(), UploadError> {
    p.validate().map_err(|e| UploadError::Params(e.to_string()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, UploadError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UploadError::Internal(format!("worker thread: {e}")))
}

fn report_progress(p: &Option<ProgressFn>, phase: Phase, done: u64, total: u64) {
    if let Some(p) = p {
        p(Progress { phase, done, total });
    }
}

/// The report of a LIT file (the data is the cap); `None` when `data` is too long for one.
fn lit_report(data: &[u8], progress: &Option<ProgressFn>) -> Option<UploadReport> {
    let cap = chk::lit_cap_string(data)?;
    let size = data.len() as u64;
    report_progress(progress, Phase::Done, size, size);
    Some(UploadReport {
        cap,
        size,
        ..UploadReport::default()
    })
}

/// [`hash_pass`] on a blocking thread, with the configuration's parameters and
/// convergence secret.
async fn hash_pass_blocking(
    src: &Source,
    cfg: &UploadConfig,
    size: u64,
    progress: &Option<ProgressFn>,
) -> Result<[u8; 16], UploadError> {
    let (src, params, conv, p) = (
        src.clone(),
        cfg.params,
        cfg.convergence.clone(),
        progress.clone(),
    );
    blocking(move || hash_pass(&src, &params, &conv, size, &p)).await?
}

/// Pass 1: the convergent key.
fn hash_pass(
    src: &Source,
    params: &EncodingParams,
    convergence: &[u8],
    size: u64,
    progress: &Option<ProgressFn>,
) -> Result<[u8; 16], UploadError> {
    let mut h = ConvergentKeyHasher::new(params, size, convergence)?;
    let mut scratch = Vec::new();
    let mut pos = 0u64;
    report_progress(progress, Phase::Hashing, 0, size);
    while pos < size {
        let n = (size - pos).min(HASH_CHUNK as u64) as usize;
        h.update(src.segment(pos, n, &mut scratch)?);
        pos += n as u64;
        report_progress(progress, Phase::Hashing, pos, size);
    }
    Ok(h.finish()?)
}

// -------------------------------------------------------------------------------------
// Leases

// -------------------------------------------------------------------------------------
// The CHK upload

/// Everything selection learnt.
struct Selected {
    machine: UploadMachine,
    servers: Vec<Arc<ServerEntry>>,
    /// Upload secret of every bucket allocated.
    secrets: BTreeMap<(ServerIndex, ShareNum), [u8; 20]>,
}

async fn upload_chk(
    grid: &Grid,
    cfg: &UploadConfig,
    src: Source,
    size: u64,
    key: [u8; 16],
    progress: Option<ProgressFn>,
) -> Result<UploadReport, UploadError> {
    let params = cfg.params;
    let si = StorageIndex(hashutil::storage_index_hash(&key));
    let encoder = ChkEncoder::new(&params, key, size)?;
    let allocated_size = encoder.allocated_size();
    report_progress(&progress, Phase::Locating, 0, size);

    let want = (params.total as usize) * cairn_core::client::upload::CANDIDATES_PER_SHARE;
    let (candidates, mut problems) = locate(grid, &si, allocated_size, want).await;
    if candidates.is_empty() {
        return Err(UploadError::NoServers {
            configured: grid.servers().len(),
            problems,
        });
    }
    let client_secret = cfg
        .lease_secret
        .clone()
        .unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec());
    let leases = Arc::new(FileLeases::new(&client_secret, si.as_bytes()));
    let mut sel = select(&candidates, &si, allocated_size, &params, &leases).await?;
    let name = |i: ServerIndex| server_name(&sel.servers, i);
    let placement = match sel.machine.outcome() {
        Some(Ok(p)) => p.clone(),
        Some(Err(u)) => {
            problems.extend(failure_lines(&sel.machine, &name));
            return Err(unhappy_error(u, "server selection failed", &si, &name));
        }
        None => {
            return Err(UploadError::Internal(
                "server selection ended undecided".into(),
            ))
        }
    };
    tracing::debug!(si = %si, writes = ?placement.writes, present = ?placement.present, "placement");

    let outcome = write_shares(&mut sel, &si, encoder, src, size, &placement, &progress).await;
    let name = |i: ServerIndex| server_name(&sel.servers, i);
    problems.extend(failure_lines(&sel.machine, &name));
    let (trailer, stats) = outcome?;
    let placement = match sel.machine.outcome() {
        Some(Ok(p)) => p.clone(),
        _ => {
            return Err(UploadError::Internal(
                "placement lost after a successful write".into(),
            ))
        }
    };
    let sharemap = placement
        .sharemap()
        .into_iter()
        .map(|(sh, servers)| {
            (
                u16::from(sh),
                servers
                    .into_iter()
                    .filter_map(|s| sel.servers.get(s.get()))
                    .map(|s| s.info.server_id.clone())
                    .collect(),
            )
        })
        .collect();
    report_progress(&progress, Phase::Done, size, size);
    Ok(UploadReport {
        cap: trailer.read_cap_string(),
        size,
        storage_index: Some(si.0),
        happiness: placement.happiness,
        shares_written: placement.shares_to_write().len(),
        shares_already_present: placement.present.len(),
        sharemap,
        bytes_sent: stats.bytes_sent,
        servers_tried: sel.servers.len(),
        problems,
        peak_segments_in_flight: stats.peak_segments,
        peak_buffered_bytes: stats.peak_bytes,
    })
}

fn failure_lines(m: &UploadMachine, name: &dyn Fn(ServerIndex) -> String) -> Vec<String> {
    m.failures()
        .iter()
        .map(|f| format!("{} ({}): {}", name(f.server), f.during, f.reason))
        .collect()
}

fn unhappy_error(
    u: &UploadUnhappy,
    what: &str,
    si: &StorageIndex,
    name: &dyn Fn(ServerIndex) -> String,
) -> UploadError {
    let si5: String = si.to_base32().chars().take(5).collect();
    UploadError::Unhappy {
        message: format!("{what} for upload {si5}: {}", u.message(name)),
        happiness: u.unhappiness.effective_happiness,
        happy: u.unhappiness.happy,
        servers_queried: u.servers_queried,
        servers_reachable: u.servers_reachable,
    }
}

/// The first `want` reachable servers in permuted order, each with whether it can take a
/// share of `allocated_size` (Tahoe: connected servers only, `get_servers_for_psi`).
/// Servers not known to be up are asked for their version first, `want` at a time.
async fn locate(
    grid: &Grid,
    si: &StorageIndex,
    allocated_size: u64,
    want: usize,
) -> (Vec<(Arc<ServerEntry>, bool)>, Vec<String>) {
    let permuted = grid.permuted(si.as_bytes());
    let mut chosen = Vec::new();
    let mut problems = Vec::new();
    let mut next = 0;
    while chosen.len() < want && next < permuted.len() {
        let batch: Vec<Arc<ServerEntry>> =
            permuted[next..permuted.len().min(next + want - chosen.len())].to_vec();
        next += batch.len();
        let probes: Vec<_> = batch
            .iter()
            .map(|s| {
                let s = s.clone();
                tokio::spawn(async move {
                    let h = s.health();
                    if let (Some(true), Some(v)) = (h.connected, h.version) {
                        return Ok(v);
                    }
                    match tokio::time::timeout(SELECTION_TIMEOUT, s.probe()).await {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => {
                            let why = format!(
                                "no answer to a version request within {SELECTION_TIMEOUT:?}"
                            );
                            s.report(ProblemKind::Stall, why.clone());
                            Err(why)
                        }
                    }
                })
            })
            .collect();
        for (s, p) in batch.into_iter().zip(probes) {
            match p.await {
                Ok(Ok(v)) => {
                    let writable = v.maximum_immutable_share_size >= allocated_size;
                    chosen.push((s, writable));
                }
                Ok(Err(why)) => problems.push(format!("{} (connecting): {why}", s.name())),
                Err(e) => problems.push(format!("{} (connecting): {e}", s.name())),
            }
        }
    }
    (chosen, problems)
}

/// A candidate's name for messages (the machine's index, should it name no candidate).
fn server_name(servers: &[Arc<ServerEntry>], i: ServerIndex) -> String {
    servers
        .get(i.get())
        .map_or_else(|| format!("server #{i}"), |s| s.name())
}

/// Run the selection machine: list shares, then allocation rounds.
async fn select(
    candidates: &[(Arc<ServerEntry>, bool)],
    si: &StorageIndex,
    allocated_size: u64,
    params: &EncodingParams,
    leases: &Arc<FileLeases>,
) -> Result<Selected, UploadError> {
    let cands: Vec<Candidate> = candidates
        .iter()
        .enumerate()
        .map(|(i, (_, writable))| Candidate {
            server: ServerIndex(i as u32),
            writable: *writable,
        })
        .collect();
    let selection = SelectionParams {
        request_timeout: SELECTION_TIMEOUT.as_millis() as u64,
        ..SelectionParams::from(params)
    };
    let mut machine = UploadMachine::new(&cands, selection).map_err(|e| match e {
        SetupError::NoServers => UploadError::NoServers {
            configured: 0,
            problems: Vec::new(),
        },
        other => UploadError::Params(other.to_string()),
    })?;
    let mut run = SelectionRun {
        servers: candidates.iter().map(|(s, _)| s.clone()).collect(),
        si: *si,
        allocated_size,
        leases: leases.clone(),
        secrets: BTreeMap::new(),
        aborts: Vec::new(),
    };
    drive(&mut machine, &mut run).await?;
    let SelectionRun {
        servers,
        secrets,
        aborts,
        ..
    } = run;
    let sel = Selected {
        machine,
        servers,
        secrets,
    };
    if !aborts.is_empty() {
        run_aborts(&sel, si, aborts, true).await;
    }
    Ok(sel)
}

impl From<MachineBroken> for UploadError {
    fn from(e: MachineBroken) -> Self {
        UploadError::Internal(e.0)
    }
}

/// Carries out server selection's requests (see [`crate::driver`]).
struct SelectionRun {
    servers: Vec<Arc<ServerEntry>>,
    si: StorageIndex,
    allocated_size: u64,
    leases: Arc<FileLeases>,
    /// The upload secret of every share asked of a server (the last request's, which is
    /// the one that allocated it: no share is asked of a server twice).
    secrets: BTreeMap<(ServerIndex, ShareNum), [u8; 20]>,
    /// Aborts the machine asked for: sent once selection is over, so that they are not
    /// cancelled with the run.
    aborts: Vec<Abort>,
}

impl Executor<UploadMachine> for SelectionRun {
    type Done = ();
    type Error = UploadError;

    fn send(
        &mut self,
        id: RequestId,
        server: ServerIndex,
        request: UploadRequest,
        run: &mut Run<UploadMachine>,
    ) {
        let Some(s) = self.servers.get(server.get()).cloned() else {
            let failure = Failure::new(crate::Fault::Client, format!("no server {}", server.0));
            run.spawn(id, async move { Err(failure) });
            return;
        };
        let si = self.si;
        match request {
            UploadRequest::ListShares => run.spawn(id, async move {
                let shares = s
                    .client
                    .list_immutable_shares(&si)
                    .await
                    .map_err(|e| Failure::new(e.fault(), e.to_string()))?;
                s.report_ok();
                Ok(UploadResponse::Listed { shares })
            }),
            UploadRequest::Allocate { shares } => {
                let secret = new_upload_secret();
                for sh in &shares {
                    self.secrets.insert((server, *sh), secret);
                }
                let lease = self.leases.for_server(&s);
                let size = self.allocated_size;
                run.spawn(id, async move {
                    let a = s
                        .client
                        .allocate_buckets(&si, &lease, &secret, &shares, size)
                        .await
                        .map_err(|e| Failure::new(e.fault(), e.to_string()))?;
                    s.report_ok();
                    Ok(UploadResponse::Allocated {
                        already_have: a.already_have,
                        allocated: a.allocated,
                    })
                });
            }
            UploadRequest::Abort { shares } => {
                self.aborts.push(Abort { server, shares });
                run.answer(id, UploadResponse::Aborted);
            }
        }
    }

    fn work(&mut self, job: std::convert::Infallible, _: &mut Run<UploadMachine>) {
        match job {}
    }

    async fn output(&mut self, out: std::convert::Infallible) -> Result<Option<()>, UploadError> {
        match out {}
    }

    fn server(&self, server: ServerIndex) -> Option<&ServerEntry> {
        self.servers.get(server.get()).map(|s| &**s)
    }

    fn finish(&mut self, _: Result<Placement, UploadUnhappy>) -> Result<(), UploadError> {
        // The caller reads the outcome from the machine, which keeps it up to date while
        // shares are written.
        Ok(())
    }
}

/// Send abort requests (best effort); wait for them at most [`ABORT_GRACE`] if `wait`.
async fn run_aborts(sel: &Selected, si: &StorageIndex, aborts: Vec<Abort>, wait: bool) {
    let mut set = JoinSet::new();
    for Abort { server, shares } in aborts {
        let Some(s) = sel.servers.get(server.get()).cloned() else {
            continue;
        };
        for sh in shares {
            let Some(secret) = sel.secrets.get(&(server, sh)).copied() else {
                continue;
            };
            let (s, si) = (s.clone(), *si);
            set.spawn(async move {
                if let Err(e) = s.client.abort_upload(&si, sh, &secret).await {
                    tracing::debug!(server = %s.name(), shnum = sh.0, "abort failed: {e}");
                }
            });
        }
    }
    if wait {
        let _ = tokio::time::timeout(ABORT_GRACE, async {
            while set.join_next().await.is_some() {}
        })
        .await;
    } else {
        set.detach_all();
    }
}

// -------------------------------------------------------------------------------------
// Writing

/// One flush of the encoder: for every share written, the bytes at `offset`.
struct Batch {
    offset: u64,
    /// `(shnum, bytes)`, sorted by share number.
    data: Vec<(ShareNum, Bytes)>,
    /// The share's last bytes (the server must then report it complete).
    last: bool,
    _held: Held,
}

/// Memory accounting for [`UploadReport::peak_segments_in_flight`] and
/// [`UploadReport::peak_buffered_bytes`]: counts a batch until every writer dropped it.
#[derive(Default)]
struct MemStats {
    segments: AtomicUsize,
    bytes: AtomicU64,
    peak_segments: AtomicUsize,
    peak_bytes: AtomicU64,
}

impl MemStats {
    fn add(&self, segments: usize, bytes: u64) {
        let s = self.segments.fetch_add(segments, Ordering::Relaxed) + segments;
        self.peak_segments.fetch_max(s, Ordering::Relaxed);
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak_bytes.fetch_max(b, Ordering::Relaxed);
    }
}

/// Releases a batch's (or the encoder's accumulating buffers') share of [`MemStats`].
struct Held {
    stats: Arc<MemStats>,
    segments: usize,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stats
            .segments
            .fetch_sub(self.segments, Ordering::Relaxed);
        self.stats.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

struct WriteStats {
    bytes_sent: u64,
    peak_segments: usize,
    peak_bytes: u64,
}

/// How a writer task ended.
enum WriterEnd {
    /// Every share complete on the server.
    Complete,
    /// The encoder stopped before the last batch (its error is reported instead).
    Incomplete,
    Failed {
        problem: ProblemKind,
        reason: String,
    },
}

async fn write_shares(
    sel: &mut Selected,
    si: &StorageIndex,
    encoder: ChkEncoder,
    src: Source,
    size: u64,
    placement: &Placement,
    progress: &Option<ProgressFn>,
) -> Result<(EncodedTrailer, WriteStats), UploadError> {
    let mem = Arc::new(MemStats::default());
    let bytes_sent = Arc::new(AtomicU64::new(0));
    let cancel = Arc::new(AtomicBool::new(false));
    let needed: Vec<ShareNum> = placement.shares_to_write().into_iter().collect();

    let mut writers: JoinSet<(ServerIndex, WriterEnd)> = JoinSet::new();
    let mut senders = Vec::new();
    for (&server, shares) in &placement.writes {
        let (tx, rx) = mpsc::channel::<Arc<Batch>>(PIPELINE_DEPTH);
        senders.push(tx);
        let Some(s) = sel.servers.get(server.get()).cloned() else {
            return Err(UploadError::Internal(format!(
                "placement names server {server}, not a candidate"
            )));
        };
        let mine: Vec<(ShareNum, [u8; 20])> = shares
            .iter()
            .filter_map(|sh| sel.secrets.get(&(server, *sh)).map(|sec| (*sh, *sec)))
            .collect();
        let (si, sent) = (*si, bytes_sent.clone());
        writers.spawn(async move { (server, writer(s, si, mine, rx, sent).await) });
    }

    let enc = {
        let (mem, cancel, progress) = (mem.clone(), cancel.clone(), progress.clone());
        tokio::task::spawn_blocking(move || {
            encode_and_send(encoder, src, size, needed, senders, mem, cancel, progress)
        })
    };

    let mut fatal: Option<UploadError> = None;
    while let Some(joined) = writers.join_next().await {
        let (server, end) = match joined {
            Ok(r) => r,
            Err(e) => {
                fatal.get_or_insert(UploadError::Internal(format!("writer task: {e}")));
                break;
            }
        };
        let WriterEnd::Failed { problem, reason } = end else {
            continue;
        };
        let Some(entry) = sel.servers.get(server.get()).cloned() else {
            continue;
        };
        entry.report(problem, reason.clone());
        match sel.machine.server_lost(server, reason) {
            Ok(lost) => {
                tracing::info!(server = %entry.name(), happiness = lost.happiness, "lost a server while uploading; still happy");
                if let Some(a) = lost.abort {
                    run_aborts(sel, si, vec![a], false).await;
                }
            }
            Err(u) => {
                let name = |i: ServerIndex| server_name(&sel.servers, i);
                fatal = Some(unhappy_error(
                    &u,
                    "upload failed while writing shares",
                    si,
                    &name,
                ));
                break;
            }
        }
    }
    if fatal.is_some() {
        cancel.store(true, Ordering::Relaxed);
        writers.abort_all();
        while writers.join_next().await.is_some() {}
    }
    let encoded = enc
        .await
        .map_err(|e| UploadError::Internal(format!("encoder thread: {e}")));
    let result = match (fatal, encoded) {
        (Some(e), _) => Err(e),
        (None, Err(e)) | (None, Ok(Err(e))) => Err(e),
        (None, Ok(Ok(trailer))) => Ok(trailer),
    };
    match result {
        Ok(trailer) => Ok((
            trailer,
            WriteStats {
                bytes_sent: bytes_sent.load(Ordering::Relaxed),
                peak_segments: mem.peak_segments.load(Ordering::Relaxed),
                peak_bytes: mem.peak_bytes.load(Ordering::Relaxed),
            },
        )),
        Err(e) => {
            let aborts = sel.machine.abort_all();
            run_aborts(sel, si, aborts, true).await;
            Err(e)
        }
    }
}

/// The encoder thread: pass 2 over the file, one segment at a time, sending batches to
/// every writer still alive. Returns the trailer (cap, UEB).
#[allow(clippy::too_many_arguments)]
fn encode_and_send(
    mut encoder: ChkEncoder,
    src: Source,
    size: u64,
    needed: Vec<ShareNum>,
    mut senders: Vec<mpsc::Sender<Arc<Batch>>>,
    mem: Arc<MemStats>,
    cancel: Arc<AtomicBool>,
    progress: Option<ProgressFn>,
) -> Result<EncodedTrailer, UploadError> {
    let geom = *encoder.geometry();
    let block = geom.block_size.max(1) as usize;
    let per_batch = (WRITE_BATCH_BYTES / block).max(1);
    // With nothing to send (every share already on the grid) the blocks are not copied;
    // the file is still encoded because the cap needs the UEB hash.
    let header = encoder.header();
    let fresh = |extra: usize| BytesMut::with_capacity(per_batch * block + extra);
    let mut acc: Vec<BytesMut> = needed.iter().map(|_| fresh(header.len())).collect();
    for a in &mut acc {
        a.extend_from_slice(&header);
    }
    let mut acc_offset = 0u64;
    // What `acc` holds, for the memory account.
    let mut held = Held {
        stats: mem.clone(),
        segments: 0,
        bytes: 0,
    };
    let mut scratch = Vec::new();
    let mut pos = 0u64;
    // Time spent waiting for the slowest writer (back-pressure), for the debug log.
    let blocked = std::cell::Cell::new(std::time::Duration::ZERO);

    // Hand the accumulated bytes to every writer still alive, as one batch.
    let flush = |acc: &mut Vec<BytesMut>,
                 acc_offset: &mut u64,
                 held: &mut Held,
                 senders: &mut Vec<mpsc::Sender<Arc<Batch>>>,
                 last: bool| {
        let len = acc.first().map_or(0, |a| a.len());
        let data: Vec<(ShareNum, Bytes)> = needed
            .iter()
            .zip(acc.iter_mut())
            .map(|(sh, a)| (*sh, std::mem::replace(a, fresh(0)).freeze()))
            .collect();
        // The bytes move from the encoder's account to the batch's.
        let moved = Held {
            stats: mem.clone(),
            segments: held.segments,
            bytes: held.bytes,
        };
        held.segments = 0;
        held.bytes = 0;
        let batch = Arc::new(Batch {
            offset: *acc_offset,
            data,
            last,
            _held: moved,
        });
        *acc_offset += len as u64;
        let t = std::time::Instant::now();
        senders.retain(|tx| tx.blocking_send(batch.clone()).is_ok());
        blocked.set(blocked.get() + t.elapsed());
    };

    report_progress(&progress, Phase::Uploading, 0, size);
    while let Some(len) = encoder.next_segment_len() {
        if cancel.load(Ordering::Relaxed) {
            return Err(UploadError::Internal("upload cancelled".into()));
        }
        let plain = src.segment(pos, len, &mut scratch)?;
        let out = encoder.push_segment(plain)?;
        let mut added = 0u64;
        for (sh, a) in needed.iter().zip(acc.iter_mut()) {
            let b = out.block(sh.get());
            a.extend_from_slice(b);
            added += b.len() as u64;
        }
        pos += len as u64;
        held.segments += 1;
        held.bytes += added;
        mem.add(1, added);
        if held.segments >= per_batch && encoder.next_segment_len().is_some() && !needed.is_empty()
        {
            flush(&mut acc, &mut acc_offset, &mut held, &mut senders, false);
        }
        report_progress(&progress, Phase::Uploading, pos, size);
    }
    let trailer = encoder.finish()?;
    tracing::debug!(
        blocked_ms = blocked.get().as_millis() as u64,
        "encoder waited for the share writers"
    );
    if !needed.is_empty() {
        for (sh, a) in needed.iter().zip(acc.iter_mut()) {
            a.extend_from_slice(&trailer.trailers[sh.get()]);
        }
        flush(&mut acc, &mut acc_offset, &mut held, &mut senders, true);
    }
    Ok(trailer)
}

/// What one batch write task returns: the shares it completed (and whether each was
/// closed), or why the server failed.
type BatchResult = Result<Vec<(ShareNum, bool)>, (ProblemKind, String)>;

/// One server's writer: PATCH its shares' bytes from every batch, up to
/// [`WRITES_IN_FLIGHT`] batches at once (the server accepts ranges in any order and
/// reports a share complete on whichever write supplies its last missing byte). A server
/// holding several shares gets their writes concurrently.
async fn writer(
    s: Arc<ServerEntry>,
    si: StorageIndex,
    shares: Vec<(ShareNum, [u8; 20])>,
    mut rx: mpsc::Receiver<Arc<Batch>>,
    sent: Arc<AtomicU64>,
) -> WriterEnd {
    let shares = Arc::new(shares);
    let mut inflight: JoinSet<BatchResult> = JoinSet::new();
    let mut closed = false;
    let mut saw_last = false;
    let mut complete = BTreeSet::new();
    loop {
        tokio::select! {
            biased;
            done = inflight.join_next(), if !inflight.is_empty() => match done {
                Some(Ok(Ok(results))) => {
                    complete.extend(results.into_iter().filter(|(_, fin)| *fin).map(|(sh, _)| sh));
                }
                Some(Ok(Err((problem, reason)))) => return WriterEnd::Failed { problem, reason },
                Some(Err(e)) => {
                    return WriterEnd::Failed { problem: ProblemKind::Failed(crate::Fault::Client), reason: format!("write task: {e}") }
                }
                None => {}
            },
            batch = rx.recv(), if !closed && inflight.len() < WRITES_IN_FLIGHT => match batch {
                Some(batch) => {
                    saw_last |= batch.last;
                    inflight.spawn(write_batch(s.clone(), si, shares.clone(), batch, sent.clone()));
                }
                None => closed = true,
            },
            else => break,
        }
    }
    if !saw_last {
        return WriterEnd::Incomplete;
    }
    let missing: Vec<ShareNum> = shares
        .iter()
        .map(|(sh, _)| *sh)
        .filter(|sh| !complete.contains(sh))
        .collect();
    if !missing.is_empty() {
        return WriterEnd::Failed {
            problem: ProblemKind::Failed(crate::Fault::Server),
            reason: format!(
                "share(s) {missing:?} not reported complete after every byte was written"
            ),
        };
    }
    s.report_ok();
    WriterEnd::Complete
}

/// This server's part of one batch: `(shnum, complete now)` per share, or the first failure.
/// `batch` lives until the writes are done (it carries the memory account).
async fn write_batch(
    s: Arc<ServerEntry>,
    si: StorageIndex,
    shares: Arc<Vec<(ShareNum, [u8; 20])>>,
    batch: Arc<Batch>,
    sent: Arc<AtomicU64>,
) -> Result<Vec<(ShareNum, bool)>, (ProblemKind, String)> {
    let offset = batch.offset;
    let mine: Vec<(ShareNum, [u8; 20], Bytes)> = shares
        .iter()
        .filter_map(|(sh, sec)| {
            batch
                .data
                .binary_search_by_key(sh, |(n, _)| *n)
                .ok()
                .map(|i| (*sh, *sec, batch.data[i].1.clone()))
        })
        .collect();
    let results: Vec<(ShareNum, u64, Result<crate::WriteResult, GbsClientError>)> =
        if let [(sh, sec, data)] = &mine[..] {
            // One share on this server: no task to spawn.
            let len = data.len() as u64;
            let r = write_chunk(&s, &si, *sh, sec, offset, data.clone()).await;
            vec![(*sh, len, r)]
        } else {
            let mut set = JoinSet::new();
            for (sh, sec, data) in mine {
                let s = s.clone();
                let len = data.len() as u64;
                set.spawn(
                    async move { (sh, len, write_chunk(&s, &si, sh, &sec, offset, data).await) },
                );
            }
            let mut out = Vec::new();
            while let Some(r) = set.join_next().await {
                out.push(r.map_err(|e| {
                    (
                        ProblemKind::Failed(crate::Fault::Client),
                        format!("write task: {e}"),
                    )
                })?);
            }
            out
        };
    let mut out = Vec::with_capacity(results.len());
    for (sh, len, r) in results {
        match r {
            Ok(w) => {
                sent.fetch_add(len, Ordering::Relaxed);
                out.push((sh, w.finished));
            }
            Err(e) => {
                return Err((
                    ProblemKind::Failed(e.fault()),
                    format!("writing share {sh} at offset {offset}: {e}"),
                ))
            }
        }
    }
    drop(batch);
    Ok(out)
}

/// One PATCH, retried once on a network error (a write of the same bytes at the same
/// offset is idempotent on the server).
async fn write_chunk(
    s: &ServerEntry,
    si: &StorageIndex,
    sh: ShareNum,
    secret: &[u8; 20],
    offset: u64,
    data: Bytes,
) -> Result<crate::WriteResult, GbsClientError> {
    let r = s
        .client
        .write_share_chunk(si, sh, secret, offset, data.clone())
        .await;
    if matches!(r, Err(GbsClientError::Network { .. })) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        return s
            .client
            .write_share_chunk(si, sh, secret, offset, data)
            .await;
    }
    r
}

//! The real [`Backend`]: `cairn_client::upload` and `cairn_client::download` on the node's
//! grid, and `cairn_client::mutable` for mutable files (keys from the node's [`KeyPool`]).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cairn_client::download::{download, DownloadError, DownloadOptions, MachineError};
use cairn_client::keypool::KeyPool;
use cairn_client::mutable::{self, MutableOptions, Opened};
use cairn_client::upload::{upload_bytes, upload_file, UploadConfig, UploadError};
use cairn_client::Grid;
use cairn_core::cap::{Cap, ChkReadCap};
use cairn_core::mutable::keys::SigningKey;
use tokio::io::AsyncWrite;

use super::backend::{
    mutable_error, Backend, BoxFuture, MutableFormat, MutableInfo, MutableOp, MutableReader,
    RoundTripCount, UploadSource,
};
use super::WebError;
use axum::http::StatusCode;
use bytes::Bytes;

pub struct GridBackend {
    grid: Grid,
    upload: UploadConfig,
    download: DownloadOptions,
    mutable: MutableOptions,
    /// Whether the node's k and N fit a mutable file (at most 255 each).
    mutable_params_ok: bool,
    /// RSA keys for new mutable files, generated ahead of time; started with the node.
    keys: Option<Arc<KeyPool>>,
    /// Requests of every successful mutable operation so far.
    totals: Arc<Totals>,
}

/// [`RoundTripCount`]s added up over the node's life.
#[derive(Default)]
struct Totals {
    servermap: AtomicU64,
    reads: AtomicU64,
    writes: AtomicU64,
}

impl Totals {
    fn add(&self, c: RoundTripCount) {
        self.servermap.fetch_add(c.servermap, Ordering::Relaxed);
        self.reads.fetch_add(c.reads, Ordering::Relaxed);
        self.writes.fetch_add(c.writes, Ordering::Relaxed);
    }

    fn get(&self) -> RoundTripCount {
        RoundTripCount {
            servermap: self.servermap.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }
}

impl GridBackend {
    /// Immutable files only until [`GridBackend::with_mutable`].
    pub fn new(grid: Grid, upload: UploadConfig) -> GridBackend {
        let p = upload.params;
        GridBackend {
            grid,
            download: DownloadOptions::default(),
            mutable: MutableOptions::new(
                u8::try_from(p.needed).unwrap_or(u8::MAX),
                u8::try_from(p.total).unwrap_or(u8::MAX),
                usize::from(p.happy),
            ),
            mutable_params_ok: p.needed <= 255 && p.total <= 255,
            upload,
            keys: None,
            totals: Arc::default(),
        }
    }

    /// Serve mutable files with `opts`, and start the node's key pool (so a create takes
    /// a key made in advance instead of waiting for one). A node with no storage servers
    /// to publish to (a storage-only node with a web port) starts no pool: it would spend
    /// seconds of CPU on keys no create can use.
    pub fn with_mutable(mut self, opts: MutableOptions, params_ok: bool) -> GridBackend {
        self.mutable = opts;
        self.mutable_params_ok = params_ok;
        if self.grid.servers().is_empty() {
            tracing::debug!("mutable files: no storage servers configured; no key pool");
            return self;
        }
        match KeyPool::with_config(Default::default()) {
            Ok(pool) => self.keys = Some(Arc::new(pool)),
            Err(e) => tracing::error!("mutable files: cannot start the key pool: {e}"),
        }
        self
    }

    async fn take_key(&self) -> Result<SigningKey, WebError> {
        if self.keys.is_none() && self.grid.servers().is_empty() {
            // No pool on a node with no servers: make the key here; the publish then
            // says that no storage servers are configured.
            return tokio::task::spawn_blocking(|| {
                SigningKey::generate_rsa(&mut rand::rngs::OsRng)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| {
                WebError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("mutable files: no signing key: {e}"),
                )
            });
        }
        let Some(pool) = &self.keys else {
            return Err(WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "mutable files: this node has no key pool (it failed to start; see the log)",
            ));
        };
        pool.take().await.map_err(|e| {
            WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("mutable files: no signing key: {e}"),
            )
        })
    }

    fn check_params(&self) -> Result<(), WebError> {
        if self.mutable_params_ok {
            return Ok(());
        }
        Err(WebError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "mutable files need shares.needed and shares.total of at most 255 \
                 (they are stored in one byte); this node has {} and {}",
                self.upload.params.needed, self.upload.params.total
            ),
        ))
    }
}

/// Log a publish and return its requests.
fn log_published(what: &str, p: &mutable::Published) -> RoundTripCount {
    for problem in &p.problems {
        tracing::info!(cap = %p.readcap, "{what}: {problem}");
    }
    tracing::debug!(
        seqnum = p.seqnum,
        size = p.size,
        happiness = p.happiness,
        "{what} {}",
        p.readcap
    );
    RoundTripCount::from(&p.round_trips)
}

/// A version found by [`mutable::open`], read on the node's grid.
struct GridMutable {
    grid: Grid,
    opened: Opened,
    totals: Arc<Totals>,
}

impl MutableReader for GridMutable {
    fn info(&self) -> MutableInfo {
        MutableInfo {
            format: self.opened.format(),
            size: self.opened.size(),
            seqnum: self.opened.seqnum(),
        }
    }

    fn round_trips(&self) -> RoundTripCount {
        RoundTripCount::from(self.opened.round_trips())
    }

    fn read<'a>(
        &'a self,
        range: Range<u64>,
        sink: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<(), WebError>> {
        Box::pin(async move {
            let report = self
                .opened
                .read(&self.grid, range, sink)
                .await
                .map_err(|e| mutable_error(MutableOp::Read, e))?;
            self.totals.add(RoundTripCount {
                reads: report.round_trips.reads as u64,
                ..RoundTripCount::default()
            });
            for p in &report.problems {
                tracing::info!("mutable read: {p}");
            }
            if !report.newer_unrecoverable.is_empty() {
                tracing::info!(
                    seqnum = self.opened.seqnum(),
                    newer = ?report.newer_unrecoverable,
                    "mutable read: newer versions were seen but cannot be recovered"
                );
            }
            Ok(())
        })
    }
}

/// Tahoe answers a failed upload with 500 and the exception (`UploadUnhappinessError: ...`);
/// so does cairn, in one line.
fn upload_error(e: UploadError) -> WebError {
    let text = match &e {
        UploadError::NoServers { .. } | UploadError::Unhappy { .. } => {
            format!("UploadUnhappinessError: {e}")
        }
        _ => format!("upload failed: {e}"),
    };
    WebError::new(StatusCode::INTERNAL_SERVER_ERROR, text)
}

/// Tahoe's `humanize_exception`: a file that cannot be recovered is 410 Gone, named
/// `NoSharesError` when no share was found at all, else `NotEnoughSharesError`.
fn download_error(e: DownloadError) -> WebError {
    match &e {
        DownloadError::Grid(MachineError::NotEnoughShares { found: 0, .. }) => WebError::new(
            StatusCode::GONE,
            format!("NoSharesError: no shares could be found: {e}"),
        ),
        DownloadError::Grid(MachineError::NotEnoughShares { .. }) => {
            WebError::new(StatusCode::GONE, format!("NotEnoughSharesError: {e}"))
        }
        DownloadError::Grid(MachineError::Inconsistent(_)) => {
            WebError::new(StatusCode::GONE, format!("UnrecoverableFileError: {e}"))
        }
        DownloadError::Grid(MachineError::BadCap(_)) => WebError::bad_request(e.to_string()),
        DownloadError::Io(_) | DownloadError::Internal(_) => {
            WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

impl Backend for GridBackend {
    fn upload(&self, source: UploadSource) -> BoxFuture<'_, Result<String, WebError>> {
        Box::pin(async move {
            let r = match source {
                UploadSource::Bytes(data) => {
                    upload_bytes(&self.grid, &self.upload, data, None).await
                }
                UploadSource::File { file, size, key } => {
                    upload_file(&self.grid, &self.upload, file, size, key, None).await
                }
            };
            crate::memory::release_free_memory();
            let report = r.map_err(upload_error)?;
            for p in &report.problems {
                tracing::info!(cap = %report.cap, "upload: {p}");
            }
            tracing::debug!(
                size = report.size,
                happiness = report.happiness,
                written = report.shares_written,
                present = report.shares_already_present,
                "uploaded {}",
                report.cap
            );
            Ok(report.cap)
        })
    }

    fn download<'a>(
        &'a self,
        cap: &'a ChkReadCap,
        range: Range<u64>,
        sink: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<(), WebError>> {
        Box::pin(async move {
            let r = download(&self.grid, cap, range, sink, &self.download, None).await;
            crate::memory::release_free_memory();
            let report = r.map_err(download_error)?;
            for p in &report.problems {
                tracing::info!(si = %cap.storage_index(), "download: {p}");
            }
            Ok(())
        })
    }

    fn create_mutable(
        &self,
        format: MutableFormat,
        data: Bytes,
        key: Option<SigningKey>,
    ) -> BoxFuture<'_, Result<(String, RoundTripCount), WebError>> {
        Box::pin(async move {
            self.check_params()?;
            let key = match key {
                Some(k) => k,
                None => self.take_key().await?,
            };
            let p = mutable::create(&self.grid, key, format, &data, &self.mutable)
                .await
                .map_err(|e| mutable_error(MutableOp::Write, e))?;
            let trips = log_published("created", &p);
            self.totals.add(trips);
            Ok((p.writecap, trips))
        })
    }

    fn overwrite_mutable<'a>(
        &'a self,
        writecap: &'a Cap,
        data: Bytes,
    ) -> BoxFuture<'a, Result<RoundTripCount, WebError>> {
        Box::pin(async move {
            let p = mutable::overwrite(&self.grid, writecap, &data, &self.mutable)
                .await
                .map_err(|e| mutable_error(MutableOp::Write, e))?;
            let trips = log_published("overwrote", &p);
            self.totals.add(trips);
            Ok(trips)
        })
    }

    fn modify_mutable<'a>(
        &'a self,
        writecap: &'a Cap,
        offset: u64,
        data: Bytes,
    ) -> BoxFuture<'a, Result<RoundTripCount, WebError>> {
        Box::pin(async move {
            let p = mutable::modify_with(
                &self.grid,
                writecap,
                offset,
                &data,
                mutable::PastEnd::Tahoe,
                &self.mutable,
            )
            .await
            .map_err(|e| mutable_error(MutableOp::Write, e))?;
            let trips = log_published("modified", &p);
            self.totals.add(trips);
            Ok(trips)
        })
    }

    fn open_mutable<'a>(
        &'a self,
        cap: &'a Cap,
    ) -> BoxFuture<'a, Result<Box<dyn MutableReader>, WebError>> {
        Box::pin(async move {
            let opened = mutable::open(&self.grid, cap, &self.mutable)
                .await
                .map_err(|e| mutable_error(MutableOp::Read, e))?;
            self.totals.add(RoundTripCount::from(opened.round_trips()));
            Ok(Box::new(GridMutable {
                grid: self.grid.clone(),
                opened,
                totals: self.totals.clone(),
            }) as Box<dyn MutableReader>)
        })
    }

    fn mutable_round_trips_total(&self) -> Option<RoundTripCount> {
        Some(self.totals.get())
    }
}

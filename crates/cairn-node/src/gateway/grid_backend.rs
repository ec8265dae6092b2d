//! The real [`Backend`]: `cairn_client::upload` and `cairn_client::download` on the node's
//! grid, and `cairn_client::mutable` for mutable files (keys from the node's [`KeyPool`]).

use std::ops::Range;
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
    UploadSource,
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
        }
    }

    /// Serve mutable files with `opts`, and start the node's key pool (so a create takes
    /// a key made in advance instead of waiting for one).
    pub fn with_mutable(mut self, opts: MutableOptions, params_ok: bool) -> GridBackend {
        self.mutable = opts;
        self.mutable_params_ok = params_ok;
        match KeyPool::with_config(Default::default()) {
            Ok(pool) => self.keys = Some(Arc::new(pool)),
            Err(e) => tracing::error!("mutable files: cannot start the key pool: {e}"),
        }
        self
    }

    async fn take_key(&self) -> Result<SigningKey, WebError> {
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

fn log_published(what: &str, p: &mutable::Published) {
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
}

/// A version found by [`mutable::open`], read on the node's grid.
struct GridMutable {
    grid: Grid,
    opened: Opened,
}

impl MutableReader for GridMutable {
    fn info(&self) -> MutableInfo {
        MutableInfo {
            format: self.opened.format(),
            size: self.opened.size(),
            seqnum: self.opened.seqnum(),
        }
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
        DownloadError::Io(_) => WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
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
    ) -> BoxFuture<'_, Result<String, WebError>> {
        Box::pin(async move {
            self.check_params()?;
            let key = match key {
                Some(k) => k,
                None => self.take_key().await?,
            };
            let p = mutable::create(&self.grid, key, format, &data, &self.mutable)
                .await
                .map_err(|e| mutable_error(MutableOp::Write, e))?;
            log_published("created", &p);
            Ok(p.writecap)
        })
    }

    fn overwrite_mutable<'a>(
        &'a self,
        writecap: &'a Cap,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), WebError>> {
        Box::pin(async move {
            let p = mutable::overwrite(&self.grid, writecap, &data, &self.mutable)
                .await
                .map_err(|e| mutable_error(MutableOp::Write, e))?;
            log_published("overwrote", &p);
            Ok(())
        })
    }

    fn modify_mutable<'a>(
        &'a self,
        writecap: &'a Cap,
        offset: u64,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), WebError>> {
        Box::pin(async move {
            let p = mutable::modify(&self.grid, writecap, offset, &data, &self.mutable)
                .await
                .map_err(|e| mutable_error(MutableOp::Write, e))?;
            log_published("modified", &p);
            Ok(())
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
            Ok(Box::new(GridMutable {
                grid: self.grid.clone(),
                opened,
            }) as Box<dyn MutableReader>)
        })
    }
}

//! The real [`Backend`]: `cairn_client::upload` and `cairn_client::download` on the node's grid.

use std::ops::Range;

use cairn_client::download::{download, DownloadError, DownloadOptions, MachineError};
use cairn_client::upload::{upload_bytes, upload_file, UploadConfig, UploadError};
use cairn_client::Grid;
use cairn_core::cap::ChkReadCap;
use tokio::io::AsyncWrite;

use super::backend::{Backend, BoxFuture, UploadSource};
use super::WebError;
use axum::http::StatusCode;

pub struct GridBackend {
    grid: Grid,
    upload: UploadConfig,
    download: DownloadOptions,
}

impl GridBackend {
    pub fn new(grid: Grid, upload: UploadConfig) -> GridBackend {
        GridBackend {
            grid,
            upload,
            download: DownloadOptions::default(),
        }
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
}

//! The two calls the gateway makes into the grid client, behind one small trait so the web
//! layer can be tested on its own (and the grid driver swapped) without changing a handler.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;

use bytes::Bytes;
use cairn_core::cap::ChkReadCap;
use tokio::io::AsyncWrite;

use super::WebError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A spooled upload body.
pub enum UploadSource {
    /// Small bodies, held in memory.
    Bytes(Bytes),
    /// Larger bodies, spooled to an anonymous file in the node's temp directory and rewound.
    /// `key` is the convergent key when it was computed while spooling (the body's length
    /// was known in advance), so the file is read only once more.
    File {
        file: std::fs::File,
        size: u64,
        key: Option<[u8; 16]>,
    },
}

/// Upload and download on the grid.
pub trait Backend: Send + Sync + 'static {
    /// Upload a file (more than 55 bytes: the gateway makes LIT caps itself); return its cap.
    fn upload(&self, source: UploadSource) -> BoxFuture<'_, Result<String, WebError>>;

    /// Write the bytes `range` (already clamped to the file) of the file to `sink`.
    fn download<'a>(
        &'a self,
        cap: &'a ChkReadCap,
        range: Range<u64>,
        sink: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<(), WebError>>;
}

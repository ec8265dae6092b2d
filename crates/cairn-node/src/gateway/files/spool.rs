//! Spooling an upload body: in memory when small, else to an anonymous temp file while hashing the convergent key.

use super::*;

pub(super) enum Spooled {
    /// At most 55 bytes: a LIT cap, no server involved.
    Lit(Bytes),
    Upload(UploadSource),
}

pub(super) fn body_error(e: axum::Error) -> WebError {
    WebError::bad_request(format!("reading the request body: {e}"))
}

/// Take the request body: in memory when small, else into an anonymous file in the node's
/// temp directory, hashing the convergent key on the way when the length is known.
pub(super) async fn spool(
    state: &GatewayState,
    body: Body,
    length: Option<u64>,
) -> Result<Spooled, WebError> {
    let mut stream = body.into_data_stream();
    let mut mem = BytesMut::new();
    if length.is_none_or(|n| n <= MEMORY_SPOOL_LIMIT) {
        let limit = length.unwrap_or(MEMORY_SPOOL_LIMIT);
        if let Some(n) = length {
            mem.reserve(n as usize);
        }
        let mut overflow = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(body_error)?;
            if (mem.len() + chunk.len()) as u64 > limit {
                if length.is_some() {
                    return Err(WebError::bad_request(
                        "the request body is longer than its Content-Length",
                    ));
                }
                overflow = Some(chunk);
                break;
            }
            mem.extend_from_slice(&chunk);
        }
        match overflow {
            None => {
                let data = mem.freeze();
                if data.len() as u64 <= LIT_SIZE_THRESHOLD {
                    return Ok(Spooled::Lit(data));
                }
                return Ok(Spooled::Upload(UploadSource::Bytes(data)));
            }
            Some(chunk) => {
                // Unknown length and more than fits in memory: to a file, key computed later.
                let mut file = FileSpool::new(state, None)?;
                file.send(mem.freeze()).await?;
                file.send(chunk).await?;
                while let Some(chunk) = stream.next().await {
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => return file.fail(body_error(e)).await,
                    };
                    file.send(chunk).await?;
                }
                return file.finish().await.map(Spooled::Upload);
            }
        }
    }
    let size = length.unwrap_or(0);
    let hasher =
        ConvergentKeyHasher::new(&state.params, size, &state.convergence).map_err(|e| {
            WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("convergent key: {e}"),
            )
        })?;
    let mut file = FileSpool::new(state, Some(hasher))?;
    let mut got = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return file.fail(body_error(e)).await,
        };
        got += chunk.len() as u64;
        if got > size {
            return file
                .fail(WebError::bad_request(
                    "the request body is longer than its Content-Length",
                ))
                .await;
        }
        file.send(chunk).await?;
    }
    if got != size {
        return file
            .fail(WebError::bad_request(format!(
                "the request body ended after {got} of {size} bytes"
            )))
            .await;
    }
    file.finish().await.map(Spooled::Upload)
}

/// A blocking thread that writes (and hashes) body chunks into an anonymous temp file, so
/// neither disk writes nor SHA-256 run on the async workers.
/// The spooled file (rewound), its length, and the convergent key if it was hashed.
pub(super) type SpoolResult = std::io::Result<(std::fs::File, u64, Option<[u8; 16]>)>;

pub(super) struct FileSpool {
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    task: tokio::task::JoinHandle<SpoolResult>,
    tempdir: std::path::PathBuf,
}

impl FileSpool {
    fn new(
        state: &GatewayState,
        hasher: Option<ConvergentKeyHasher>,
    ) -> Result<FileSpool, WebError> {
        let tempdir = state.tempdir.clone();
        let file = tempfile::tempfile_in(&tempdir).map_err(|e| spool_error(&tempdir, e))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let task = tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            let mut n = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
                w.write_all(&chunk)?;
                n += chunk.len() as u64;
            }
            let mut file = w.into_inner().map_err(|e| e.into_error())?;
            file.flush()?;
            file.rewind()?;
            let key = match hasher {
                None => None,
                Some(h) => Some(h.finish().map_err(std::io::Error::other)?),
            };
            Ok((file, n, key))
        });
        Ok(FileSpool {
            tx: Some(tx),
            task,
            tempdir,
        })
    }

    async fn send(&mut self, chunk: Bytes) -> Result<(), WebError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let failed = match &self.tx {
            Some(tx) => tx.send(chunk).await.is_err(),
            None => true,
        };
        if failed {
            // The writer stopped: say why.
            self.tx = None;
            let err = match (&mut self.task).await {
                Ok(Err(e)) => spool_error(&self.tempdir, e),
                _ => WebError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "spooling the upload failed",
                ),
            };
            return Err(err);
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<UploadSource, WebError> {
        self.tx = None;
        match (&mut self.task).await {
            Ok(Ok((file, size, key))) => Ok(UploadSource::File { file, size, key }),
            Ok(Err(e)) => Err(spool_error(&self.tempdir, e)),
            Err(e) => Err(WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("spooling the upload: {e}"),
            )),
        }
    }

    /// Abandon the spool (the writer stops and its file goes) and fail with `err`.
    async fn fail<T>(mut self, err: WebError) -> Result<T, WebError> {
        self.tx = None;
        let _ = (&mut self.task).await;
        Err(err)
    }
}

pub(super) fn spool_error(dir: &std::path::Path, e: std::io::Error) -> WebError {
    WebError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("spooling the upload to {}: {e}", dir.display()),
    )
}

//! The calls the gateway makes into the grid client, behind one small trait so the web
//! layer can be tested on its own (and the grid driver swapped) without changing a handler:
//! immutable upload/download, and the mutable file operations (create, overwrite, modify,
//! open + read). [`mutable_error`] turns the mutable driver's errors into Tahoe's answers.
//! Mutable operations report the storage-server requests they sent ([`RoundTripCount`]),
//! which the gateway shows in an `X-Cairn-Round-Trips` header and `/statistics?t=json`.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;

use axum::http::StatusCode;
use bytes::Bytes;
use cairn_client::mutable::MutableError;
pub use cairn_client::mutable::MutableFormat;
use cairn_core::cap::{Cap, ChkReadCap};
use cairn_core::mutable::keys::SigningKey;
use tokio::io::AsyncWrite;

use super::WebError;

/// What a backend without a mutable file driver answers.
pub const MUTABLE_NOT_WIRED: &str = "mutable files: grid driver not wired";

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

    /// Create a mutable file of `format` holding `data`, signed with `key` (Tahoe's
    /// `private-key=`) or else a key of the node's own; return its write cap and the
    /// requests sent.
    fn create_mutable(
        &self,
        format: MutableFormat,
        data: Bytes,
        key: Option<SigningKey>,
    ) -> BoxFuture<'_, Result<(String, RoundTripCount), WebError>> {
        let _ = (format, data, key);
        Box::pin(async { Err(not_wired()) })
    }

    /// Replace the whole contents of the mutable file `writecap` (an SSK or MDMF write cap);
    /// return the requests sent.
    fn overwrite_mutable<'a>(
        &'a self,
        writecap: &'a Cap,
        data: Bytes,
    ) -> BoxFuture<'a, Result<RoundTripCount, WebError>> {
        let _ = (writecap, data);
        Box::pin(async { Err(not_wired()) })
    }

    /// Replace bytes `offset..offset + data.len()` of the mutable file `writecap` with
    /// Tahoe's rules for an offset past the end (SDMF writes at the end, MDMF refuses with
    /// a 400: [`cairn_client::mutable::PastEnd::Tahoe`]); return the requests sent.
    fn modify_mutable<'a>(
        &'a self,
        writecap: &'a Cap,
        offset: u64,
        data: Bytes,
    ) -> BoxFuture<'a, Result<RoundTripCount, WebError>> {
        let _ = (writecap, offset, data);
        Box::pin(async { Err(not_wired()) })
    }

    /// Find the newest recoverable version of the mutable file `cap` (a read or write cap).
    fn open_mutable<'a>(
        &'a self,
        cap: &'a Cap,
    ) -> BoxFuture<'a, Result<Box<dyn MutableReader>, WebError>> {
        let _ = cap;
        Box::pin(async { Err(not_wired()) })
    }

    /// Requests sent by every mutable operation that succeeded since the node started
    /// (`/statistics?t=json`); `None` when the backend does not count them.
    fn mutable_round_trips_total(&self) -> Option<RoundTripCount> {
        None
    }
}

/// Storage-server requests (HTTP requests sent, whatever their answer) of mutable file
/// operations, by kind: the driver's [`cairn_client::mutable::RoundTrips`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundTripCount {
    /// Servermap update: share lists, first reads, follow-up reads.
    pub servermap: u64,
    /// Retrieve reads (of a `GET`, or of the old contents a change keeps).
    pub reads: u64,
    /// Read-test-write requests.
    pub writes: u64,
}

impl RoundTripCount {
    pub fn total(&self) -> u64 {
        self.servermap + self.reads + self.writes
    }

    /// The `X-Cairn-Round-Trips` value: `TOTAL (servermap=A, read=B, write=C)`.
    pub fn header_value(&self) -> String {
        format!(
            "{} (servermap={}, read={}, write={})",
            self.total(),
            self.servermap,
            self.reads,
            self.writes
        )
    }
}

impl std::ops::Add for RoundTripCount {
    type Output = RoundTripCount;
    fn add(self, o: RoundTripCount) -> RoundTripCount {
        RoundTripCount {
            servermap: self.servermap + o.servermap,
            reads: self.reads + o.reads,
            writes: self.writes + o.writes,
        }
    }
}

impl From<&cairn_client::mutable::RoundTrips> for RoundTripCount {
    fn from(r: &cairn_client::mutable::RoundTrips) -> RoundTripCount {
        RoundTripCount {
            servermap: r.servermap as u64,
            reads: r.reads as u64,
            writes: r.writes as u64,
        }
    }
}

/// The response header carrying a mutable operation's [`RoundTripCount`].
pub const ROUND_TRIPS_HEADER: &str = "x-cairn-round-trips";

/// A version of a mutable file, as [`Backend::open_mutable`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MutableInfo {
    pub format: MutableFormat,
    pub size: u64,
    pub seqnum: u64,
}

/// An opened mutable file: its version's facts, and reads of that version.
pub trait MutableReader: Send + Sync + 'static {
    fn info(&self) -> MutableInfo;

    /// The requests the open (its servermap update) sent.
    fn round_trips(&self) -> RoundTripCount {
        RoundTripCount::default()
    }

    /// Write the bytes `range` (already clamped to the size) of this version to `sink`.
    fn read<'a>(
        &'a self,
        range: Range<u64>,
        sink: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<(), WebError>>;
}

fn not_wired() -> WebError {
    WebError::not_implemented(MUTABLE_NOT_WIRED)
}

/// What a mutable operation was doing when it failed (a read and a write that find too
/// few servers fail differently in Tahoe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutableOp {
    Read,
    Write,
}

/// Tahoe's `UnrecoverableFileError` text (`web/common.py::humanize_exception`).
pub const UNRECOVERABLE_TEXT: &str = "UnrecoverableFileError: the directory (or mutable file) \
could not be retrieved, because there were insufficient good shares. This might indicate that \
no servers were connected, insufficient servers were connected, the URI was corrupt, or that \
shares have been lost due to server departure, hard drive failure, or disk corruption. You \
should perform a filecheck on this object to learn more.";

/// Tahoe 1.20's answer for a failed mutable operation, in one line:
///
/// * nothing recoverable (no shares, too few, or too few servers heard when reading):
///   410 Gone with Tahoe's `UnrecoverableFileError` text (Tahoe's servermap finds no
///   recoverable version: `"no recoverable versions"`), cairn's reason appended;
/// * `UncoordinatedWriteError` and `NotEnoughServersError` (a write): Tahoe's
///   `humanize_exception` has no entry for them, so Tahoe answers 500 with the exception;
///   cairn answers 500 with `UncoordinatedWriteError: ...` / `NotEnoughServersError: ...`;
/// * a read cap where a write cap is needed, a cap that is not a mutable file: 400.
pub fn mutable_error(op: MutableOp, e: MutableError) -> WebError {
    let unrecoverable = |e: &MutableError| {
        WebError::new(
            StatusCode::GONE,
            format!("{UNRECOVERABLE_TEXT} The full error message is: {e}"),
        )
    };
    match &e {
        MutableError::UncoordinatedWrite(_) => WebError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("UncoordinatedWriteError: {e}"),
        ),
        MutableError::NotEnoughServers { .. } => match op {
            MutableOp::Read => unrecoverable(&e),
            MutableOp::Write => WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("NotEnoughServersError: {e}"),
            ),
        },
        MutableError::Unrecoverable(_) | MutableError::NoSuchFile { .. } => unrecoverable(&e),
        MutableError::NotWriteable => WebError::bad_request(
            "PUT to a mutable file: replace or update requested with read-only cap",
        ),
        MutableError::BadCap(_) => WebError::bad_request(e.to_string()),
        MutableError::OffsetPastEnd { offset, size } => WebError::bad_request(format!(
            "PUT to a mutable file: offset {offset} is beyond the end of the file \
             ({size} bytes); an MDMF update may start at most at the end"
        )),
        MutableError::Io(_) | MutableError::Internal(_) => {
            WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

//! Share containers exactly as Tahoe-LAFS 1.20 keeps them on a storage server's disk
//! (`storage/shares/<pp>/<si>/<shnum>`), and their leases.
//!
//! - [`immutable`] — `storage/immutable.py::ShareFile` (docs/formats/immutable-container.md)
//! - [`mutable`] — `storage/mutable.py::MutableShareFile` (docs/formats/mutable-container.md)
//! - [`lease`] — lease records, add-or-renew, expiry (docs/formats/leases.md)
//!
//! Everything here is pure. Functions that change a container return the file changes as a
//! list of [`FileOp`]s (applied in order) for the I/O layer to execute; [`apply_file_ops`]
//! applies them to an in-memory file for tests and models.

pub mod immutable;
pub mod lease;
pub mod mutable;

pub use immutable::*;
pub use lease::*;
pub use mutable::*;

use std::borrow::Cow;

/// One change to a container file. Offsets are absolute file offsets. Writing past the end
/// extends the file; any hole left by that reads as zero bytes (as with `seek`+`write`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp<'a> {
    /// Write `data` at `offset`.
    Write { offset: u64, data: Cow<'a, [u8]> },
    /// Write `len` zero bytes at `offset` (never materialise this as one buffer: `len` can
    /// be as large as the share size limit).
    Zero { offset: u64, len: u64 },
    /// Set the file size to `len` (`ftruncate`; Tahoe's `f.truncate(len)`). Bytes past
    /// `len` are discarded; a larger `len` extends with zeros.
    Truncate { len: u64 },
}

impl FileOp<'_> {
    /// The file size needed to hold this change.
    pub fn end(&self) -> u64 {
        match self {
            FileOp::Write { offset, data } => offset.saturating_add(data.len() as u64),
            FileOp::Zero { offset, len } => offset.saturating_add(*len),
            FileOp::Truncate { len } => *len,
        }
    }

    /// A copy that owns its data.
    pub fn into_owned(self) -> FileOp<'static> {
        match self {
            FileOp::Write { offset, data } => FileOp::Write {
                offset,
                data: Cow::Owned(data.into_owned()),
            },
            FileOp::Zero { offset, len } => FileOp::Zero { offset, len },
            FileOp::Truncate { len } => FileOp::Truncate { len },
        }
    }
}

/// Errors parsing or changing a container. Every one is a property of untrusted bytes or
/// requests; none is a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    #[error("container too short: {len} bytes, need {need}")]
    TooShort { len: u64, need: u64 },
    #[error("unknown immutable container version {0}")]
    UnknownImmutableVersion(u32),
    #[error("not a mutable container (unknown magic)")]
    UnknownMutableMagic,
    #[error(
        "{num_leases} leases of {lease_size} bytes do not fit in a {file_size}-byte container"
    )]
    LeasesExceedFile {
        num_leases: u64,
        lease_size: u64,
        file_size: u64,
    },
    #[error("mutable container header inconsistent: {0}")]
    Inconsistent(&'static str),
    #[error("write of {len} bytes at {offset} exceeds the share size limit {max}")]
    DataTooLarge { max: u64, offset: u64, len: u64 },
    #[error("offset arithmetic overflow")]
    Overflow,
    #[error("container has {actual} bytes after the leases, expected {expected}")]
    TrailingBytes { actual: u64, expected: u64 },
}

/// Applies `ops` in order to an in-memory file (test/model helper; allocates the whole
/// file, so only use it with sizes you have bounded).
pub fn apply_file_ops(file: &mut Vec<u8>, ops: &[FileOp<'_>]) {
    for op in ops {
        if let FileOp::Truncate { len } = op {
            file.resize(*len as usize, 0);
            continue;
        }
        let end = op.end() as usize;
        if file.len() < end {
            file.resize(end, 0);
        }
        match op {
            FileOp::Write { offset, data } => {
                let o = *offset as usize;
                file[o..o + data.len()].copy_from_slice(data);
            }
            FileOp::Zero { offset, len } => {
                let o = *offset as usize;
                file[o..o + *len as usize].fill(0);
            }
            FileOp::Truncate { .. } => unreachable!("handled above"),
        }
    }
}

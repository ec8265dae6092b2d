//! Immutable share container (`storage/immutable.py::ShareFile`,
//! `storage/immutable_schema.py`); docs/formats/immutable-container.md.
//!
//! ```text
//! 0x00 >L version (1 or 2)
//! 0x04 >L min(2^32-1, allocated size)   (written, never read)
//! 0x08 >L number of leases n
//! 0x0c    share data
//! end-72n leases, 72 bytes each
//! ```
//! The data length is not stored: it is `file_size − 12 − 72·n`.

use std::borrow::Cow;

use super::lease::{LeaseRecord, LeaseUpdate, SecretForm, IMMUTABLE_LEASE_SIZE};
use super::{ContainerError, FileOp};
use crate::bytes::Reader;

/// Size of the immutable container header.
pub const IMMUTABLE_HEADER_SIZE: u64 = 12;
/// Where share data starts in an immutable container.
pub const IMMUTABLE_DATA_OFFSET: u64 = IMMUTABLE_HEADER_SIZE;
/// File offset of the lease count field.
pub const IMMUTABLE_LEASE_COUNT_OFFSET: u64 = 8;

/// Immutable container versions Tahoe 1.20 reads. New files are [`ImmutableVersion::V2`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImmutableVersion {
    /// Lease secrets in clear text (Tahoe < 1.17 wrote these).
    V1,
    /// Lease secrets stored as blake2b-256 (Tahoe ≥ 1.17).
    V2,
}

impl ImmutableVersion {
    /// The version field value.
    pub fn number(self) -> u32 {
        match self {
            ImmutableVersion::V1 => 1,
            ImmutableVersion::V2 => 2,
        }
    }

    /// Parses the version field.
    pub fn from_number(n: u32) -> Result<Self, ContainerError> {
        match n {
            1 => Ok(ImmutableVersion::V1),
            2 => Ok(ImmutableVersion::V2),
            v => Err(ContainerError::UnknownImmutableVersion(v)),
        }
    }

    /// How leases store secrets in this version.
    pub fn secret_form(self) -> SecretForm {
        match self {
            ImmutableVersion::V1 => SecretForm::Clear,
            ImmutableVersion::V2 => SecretForm::Hashed,
        }
    }
}

/// The 12-byte header of an immutable container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImmutableContainerHeader {
    pub version: ImmutableVersion,
    /// `min(2^32 − 1, allocated_size)` at creation; Tahoe ≥ 1.3 never reads it.
    pub max_size_field: u32,
    pub num_leases: u32,
}

impl ImmutableContainerHeader {
    /// The header Tahoe writes when it creates a share of `allocated_size` bytes
    /// (`_Schema.header(max_size)`: saturating size, zero leases).
    pub fn for_new_share(version: ImmutableVersion, allocated_size: u64) -> Self {
        ImmutableContainerHeader {
            version,
            max_size_field: u32::try_from(allocated_size).unwrap_or(u32::MAX),
            num_leases: 0,
        }
    }

    /// Parses the first 12 bytes of a container (more may be given; they are ignored).
    pub fn parse(bytes: &[u8]) -> Result<Self, ContainerError> {
        if bytes.len() < IMMUTABLE_HEADER_SIZE as usize {
            return Err(ContainerError::TooShort {
                len: bytes.len() as u64,
                need: IMMUTABLE_HEADER_SIZE,
            });
        }
        let mut r = Reader::new(bytes);
        let mut field = || {
            r.u32().map_err(|_| ContainerError::TooShort {
                len: bytes.len() as u64,
                need: IMMUTABLE_HEADER_SIZE,
            })
        };
        Ok(ImmutableContainerHeader {
            version: ImmutableVersion::from_number(field()?)?,
            max_size_field: field()?,
            num_leases: field()?,
        })
    }

    /// The 12 header bytes.
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[0..4].copy_from_slice(&self.version.number().to_be_bytes());
        out[4..8].copy_from_slice(&self.max_size_field.to_be_bytes());
        out[8..12].copy_from_slice(&self.num_leases.to_be_bytes());
        out
    }

    /// Where data and leases sit in a container of `file_size` bytes with this header
    /// (Tahoe: `lease_offset = filesize − n·72`, `length = filesize − 12 − n·72`).
    /// Errors if the leases would overlap the header.
    pub fn layout(&self, file_size: u64) -> Result<ImmutableLayout, ContainerError> {
        let leases = u64::from(self.num_leases) * IMMUTABLE_LEASE_SIZE as u64;
        let data_len = file_size
            .checked_sub(IMMUTABLE_HEADER_SIZE)
            .and_then(|r| r.checked_sub(leases))
            .ok_or(ContainerError::LeasesExceedFile {
                num_leases: u64::from(self.num_leases),
                lease_size: IMMUTABLE_LEASE_SIZE as u64,
                file_size,
            })?;
        Ok(ImmutableLayout {
            num_leases: self.num_leases,
            data_len,
        })
    }
}

/// Positions inside an immutable container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImmutableLayout {
    pub num_leases: u32,
    /// Length of the share data.
    pub data_len: u64,
}

impl ImmutableLayout {
    /// Layout of a share being uploaded: Tahoe puts the leases right after the allocated
    /// data region (`lease_offset = allocated_size + 12`) from the start.
    pub fn for_new_share(allocated_size: u64, num_leases: u32) -> Self {
        ImmutableLayout {
            num_leases,
            data_len: allocated_size,
        }
    }

    /// File offset of the first lease record.
    pub fn lease_offset(&self) -> u64 {
        IMMUTABLE_DATA_OFFSET + self.data_len
    }

    /// File offset of lease record `index` (may be `num_leases`, the next free one).
    pub fn lease_record_offset(&self, index: u32) -> u64 {
        self.lease_offset() + u64::from(index) * IMMUTABLE_LEASE_SIZE as u64
    }

    /// Total file size.
    pub fn file_size(&self) -> u64 {
        self.lease_record_offset(self.num_leases)
    }

    /// Byte range of the lease records (file offset, length).
    pub fn leases_range(&self) -> (u64, u64) {
        (
            self.lease_offset(),
            u64::from(self.num_leases) * IMMUTABLE_LEASE_SIZE as u64,
        )
    }

    /// Clips a read of `len` bytes at data offset `offset` to the share data
    /// (`read_share_data`: reads past the end are truncated, reads starting past the end
    /// are empty). Returns `(file_offset, length)`, length possibly 0.
    pub fn read_range(&self, offset: u64, len: u64) -> (u64, u64) {
        let avail = self.data_len.saturating_sub(offset);
        (IMMUTABLE_DATA_OFFSET.saturating_add(offset), len.min(avail))
    }
}

/// Checks an upload write of `len` bytes at data offset `offset` against the allocated
/// size (`write_share_data`: `offset + len > max_size` → `DataTooLargeError`) and returns
/// the file offset to write at.
pub fn check_immutable_write(
    allocated_size: u64,
    offset: u64,
    len: u64,
) -> Result<u64, ContainerError> {
    let end = offset.checked_add(len).ok_or(ContainerError::Overflow)?;
    if end > allocated_size {
        return Err(ContainerError::DataTooLarge {
            max: allocated_size,
            offset,
            len,
        });
    }
    IMMUTABLE_DATA_OFFSET
        .checked_add(offset)
        .ok_or(ContainerError::Overflow)
}

/// Parses `num_leases` consecutive 72-byte lease records (the bytes at
/// [`ImmutableLayout::leases_range`]).
pub fn parse_immutable_leases(
    version: ImmutableVersion,
    bytes: &[u8],
) -> Result<Vec<LeaseRecord>, ContainerError> {
    if !bytes.len().is_multiple_of(IMMUTABLE_LEASE_SIZE) {
        return Err(ContainerError::TooShort {
            len: bytes.len() as u64,
            need: bytes.len().next_multiple_of(IMMUTABLE_LEASE_SIZE) as u64,
        });
    }
    let form = version.secret_form();
    Ok(bytes
        .chunks_exact(IMMUTABLE_LEASE_SIZE)
        .map(|c| {
            let mut a = [0u8; IMMUTABLE_LEASE_SIZE];
            a.copy_from_slice(c);
            LeaseRecord::from_immutable_bytes(form, &a)
        })
        .collect())
}

/// The writes that store the result of `add_or_renew` (given the leases *after* the
/// update): rewrite the renewed record, or append the new record and bump the count.
/// `layout` is the layout *before* the update.
pub fn immutable_lease_update_ops(
    layout: &ImmutableLayout,
    leases_after: &[LeaseRecord],
    update: LeaseUpdate,
) -> Vec<FileOp<'static>> {
    match update {
        LeaseUpdate::Unchanged { .. } => Vec::new(),
        LeaseUpdate::Renewed { index } | LeaseUpdate::Added { index } => {
            let Some(rec) = leases_after.get(index) else {
                return Vec::new();
            };
            let idx = u32::try_from(index).unwrap_or(u32::MAX);
            let mut ops = vec![FileOp::Write {
                offset: layout.lease_record_offset(idx),
                data: Cow::Owned(rec.to_immutable_bytes().to_vec()),
            }];
            if matches!(update, LeaseUpdate::Added { .. }) {
                ops.push(FileOp::Write {
                    offset: IMMUTABLE_LEASE_COUNT_OFFSET,
                    data: Cow::Owned((leases_after.len() as u32).to_be_bytes().to_vec()),
                });
            }
            ops
        }
    }
}

/// The result of removing leases from an immutable container
/// ([`immutable_remove_leases`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableLeaseRemoval {
    /// The leases left, in their original order.
    pub leases_after: Vec<LeaseRecord>,
    /// How many records were removed.
    pub removed: usize,
    /// The file size after the change (`lease_offset + 72·remaining`).
    pub new_file_size: u64,
    /// The changes, in order: the compacted records, the new count, the truncation.
    /// Empty if nothing was removed.
    pub ops: Vec<FileOp<'static>>,
}

/// Removes the lease records whose index satisfies `remove` (Tahoe's
/// `ShareFile.cancel_lease`, as the lease crawler drives it: the remaining records are
/// rewritten from index 0 in their original order, then the count (`_write_num_leases`),
/// then the file is truncated after the last one (`_truncate_leases`)). If no lease
/// remains Tahoe then unlinks the file; that is the caller's decision.
///
/// `layout` must be the layout the `leases` were read with.
pub fn immutable_remove_leases(
    layout: &ImmutableLayout,
    leases: &[LeaseRecord],
    mut remove: impl FnMut(usize, &LeaseRecord) -> bool,
) -> ImmutableLeaseRemoval {
    let mut first_removed = None;
    let mut leases_after = Vec::with_capacity(leases.len());
    for (i, l) in leases.iter().enumerate() {
        if remove(i, l) {
            first_removed.get_or_insert(i);
        } else {
            leases_after.push(*l);
        }
    }
    let removed = leases.len() - leases_after.len();
    let after = ImmutableLayout {
        num_leases: leases_after.len() as u32,
        data_len: layout.data_len,
    };
    let mut ops = Vec::new();
    if let Some(first) = first_removed {
        // Records before the first removed one are already in place.
        let moved: Vec<u8> = leases_after[first..]
            .iter()
            .flat_map(|l| l.to_immutable_bytes())
            .collect();
        if !moved.is_empty() {
            ops.push(FileOp::Write {
                offset: layout.lease_record_offset(first as u32),
                data: Cow::Owned(moved),
            });
        }
        ops.push(FileOp::Write {
            offset: IMMUTABLE_LEASE_COUNT_OFFSET,
            data: Cow::Owned(after.num_leases.to_be_bytes().to_vec()),
        });
        ops.push(FileOp::Truncate {
            len: after.file_size(),
        });
    }
    ImmutableLeaseRemoval {
        leases_after,
        removed,
        new_file_size: after.file_size(),
        ops,
    }
}

/// A whole immutable container in memory (small shares, tests, fuzzing, tooling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableContainer {
    pub header: ImmutableContainerHeader,
    pub data: Vec<u8>,
    pub leases: Vec<LeaseRecord>,
}

impl ImmutableContainer {
    /// Parses a complete container file.
    pub fn parse(file: &[u8]) -> Result<Self, ContainerError> {
        let header = ImmutableContainerHeader::parse(file)?;
        let layout = header.layout(file.len() as u64)?;
        let lo = layout.lease_offset() as usize;
        let data = file[IMMUTABLE_DATA_OFFSET as usize..lo].to_vec();
        let leases = parse_immutable_leases(header.version, &file[lo..])?;
        Ok(ImmutableContainer {
            header,
            data,
            leases,
        })
    }

    /// The container file bytes (the header's lease count is written as stored in
    /// `header.num_leases`; keep it equal to `leases.len()`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(12 + self.data.len() + self.leases.len() * IMMUTABLE_LEASE_SIZE);
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.data);
        for l in &self.leases {
            out.extend_from_slice(&l.to_immutable_bytes());
        }
        out
    }

    /// The layout of this container.
    pub fn layout(&self) -> ImmutableLayout {
        ImmutableLayout {
            num_leases: self.header.num_leases,
            data_len: self.data.len() as u64,
        }
    }
}

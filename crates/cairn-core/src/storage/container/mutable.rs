//! Mutable share container (`storage/mutable.py::MutableShareFile`,
//! `storage/mutable_schema.py`); docs/formats/mutable-container.md.
//!
//! ```text
//! 0    32  magic (v1 / v2)
//! 32   20  nodeid of the server that created the container
//! 52   32  write enabler (clear)
//! 84   8   data length (>Q)
//! 92   8   extra-lease offset EXO (>Q) = 468 + container data size
//! 100  368 4 lease slots × 92 bytes (owner 0 = empty)
//! 468      container data (share data = first `data length` bytes)
//! EXO  4   number of extra leases (>L), then that many 92-byte leases
//! ```

use std::borrow::Cow;

use super::lease::{
    check_space, ct_eq, renew_at, LeaseError, LeaseGrant, LeaseRecord, LeaseUpdate, NodeId,
    SecretForm, MUTABLE_LEASE_SIZE,
};
use super::{ContainerError, FileOp};
use crate::bytes::Reader;

/// Magic of version-1 mutable containers (clear lease secrets).
pub const MUTABLE_MAGIC_V1: [u8; 32] = *b"Tahoe mutable container v1\n\x75\x09\x44\x03\x8e";
/// Magic of version-2 mutable containers (hashed lease secrets): the human-readable part
/// plus the first 5 bytes of `tagged_hash("allmydata_mutable_container_header", text)`.
pub const MUTABLE_MAGIC_V2: [u8; 32] = *b"Tahoe mutable container v2\n\xc3\x55\x21\x99\x25";
/// Fixed header size, excluding the lease slots.
pub const MUTABLE_HEADER_SIZE: u64 = 100;
/// Number of lease slots inside the header.
pub const MUTABLE_LEASE_SLOTS: usize = 4;
/// Where share data starts (`MutableShareFile.DATA_OFFSET`).
pub const MUTABLE_DATA_OFFSET: u64 =
    MUTABLE_HEADER_SIZE + (MUTABLE_LEASE_SLOTS * MUTABLE_LEASE_SIZE) as u64;
/// File offset of the data-length field.
pub const MUTABLE_DATA_LENGTH_OFFSET: u64 = 84;
/// File offset of the extra-lease-offset field.
pub const MUTABLE_EXTRA_LEASE_OFFSET_OFFSET: u64 = 92;
/// Size of a freshly created container: header, 4 empty slots, extra-lease count 0.
pub const MUTABLE_EMPTY_CONTAINER_SIZE: u64 = MUTABLE_DATA_OFFSET + 4;
/// Largest mutable container data size Tahoe accepts
/// (`mutable/layout.py::MAX_MUTABLE_SHARE_SIZE` = 69105·10^12, "about 69 PB", chosen so
/// that offsets fit comfortably in the share layout's 64-bit fields; also announced as
/// `maximum-mutable-share-size`). A server may impose a lower limit.
pub const MAX_MUTABLE_SHARE_SIZE: u64 = 69_105 * 1_000_000_000_000;

/// Mutable container versions. New containers are [`MutableVersion::V2`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MutableVersion {
    V1,
    V2,
}

impl MutableVersion {
    /// The 32-byte magic.
    pub fn magic(self) -> &'static [u8; 32] {
        match self {
            MutableVersion::V1 => &MUTABLE_MAGIC_V1,
            MutableVersion::V2 => &MUTABLE_MAGIC_V2,
        }
    }

    /// Recognises a magic (Tahoe's `schema_from_header`: prefix match on 32 bytes).
    pub fn from_magic(bytes: &[u8]) -> Option<Self> {
        let m = bytes.get(..32)?;
        if m == MUTABLE_MAGIC_V2 {
            Some(MutableVersion::V2)
        } else if m == MUTABLE_MAGIC_V1 {
            Some(MutableVersion::V1)
        } else {
            None
        }
    }

    /// How leases store secrets in this version.
    pub fn secret_form(self) -> SecretForm {
        match self {
            MutableVersion::V1 => SecretForm::Clear,
            MutableVersion::V2 => SecretForm::Hashed,
        }
    }
}

/// Whether the first bytes of a share file are a mutable container (Tahoe
/// `MutableShareFile.is_valid_header`; the server checks this before the immutable test).
pub fn is_mutable_container(first_bytes: &[u8]) -> bool {
    MutableVersion::from_magic(first_bytes).is_some()
}

/// The write enabler presented did not match the stored one (`BadWriteEnablerError`, HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad write enabler; the stored one was recorded by nodeid {}",
    crate::base32::encode(recorded_by)
)]
pub struct BadWriteEnabler {
    /// Node id that recorded the stored write enabler (helps after share migration).
    pub recorded_by: NodeId,
}

/// The first 100 bytes of a mutable container.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MutableContainerHeader {
    pub version: MutableVersion,
    /// The server that created the container.
    pub nodeid: NodeId,
    /// The write enabler, in clear.
    pub write_enabler: [u8; 32],
    /// Length of the share data.
    pub data_length: u64,
    /// File offset of the extra-lease count (`468 + container data size`).
    pub extra_lease_offset: u64,
}

impl std::fmt::Debug for MutableContainerHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutableContainerHeader")
            .field("version", &self.version)
            .field("nodeid", &crate::base32::encode(&self.nodeid))
            .field("data_length", &self.data_length)
            .field("extra_lease_offset", &self.extra_lease_offset)
            .finish_non_exhaustive()
    }
}

impl MutableContainerHeader {
    /// Header of a new, empty container (`create(my_nodeid, write_enabler)`).
    pub fn new(version: MutableVersion, nodeid: NodeId, write_enabler: [u8; 32]) -> Self {
        MutableContainerHeader {
            version,
            nodeid,
            write_enabler,
            data_length: 0,
            extra_lease_offset: MUTABLE_DATA_OFFSET,
        }
    }

    /// Parses the first 100 bytes (more may be given). Rejects headers whose data would
    /// overlap the extra-lease block (Tahoe never writes those).
    pub fn parse(bytes: &[u8]) -> Result<Self, ContainerError> {
        if bytes.len() < MUTABLE_HEADER_SIZE as usize {
            if MutableVersion::from_magic(bytes).is_none() {
                return Err(ContainerError::UnknownMutableMagic);
            }
            return Err(ContainerError::TooShort {
                len: bytes.len() as u64,
                need: MUTABLE_HEADER_SIZE,
            });
        }
        let version =
            MutableVersion::from_magic(bytes).ok_or(ContainerError::UnknownMutableMagic)?;
        let short = |_| ContainerError::TooShort {
            len: bytes.len() as u64,
            need: MUTABLE_HEADER_SIZE,
        };
        let mut r = Reader::at(bytes, 32);
        let nodeid: [u8; 20] = r.array().map_err(short)?;
        let write_enabler: [u8; 32] = r.array().map_err(short)?;
        let data_length = r.u64().map_err(short)?;
        let extra_lease_offset = r.u64().map_err(short)?;
        if extra_lease_offset < MUTABLE_DATA_OFFSET {
            return Err(ContainerError::Inconsistent(
                "extra-lease offset inside the header",
            ));
        }
        if data_length > extra_lease_offset - MUTABLE_DATA_OFFSET {
            return Err(ContainerError::Inconsistent(
                "data length runs into the extra leases",
            ));
        }
        Ok(MutableContainerHeader {
            version,
            nodeid,
            write_enabler,
            data_length,
            extra_lease_offset,
        })
    }

    /// The 100 header bytes.
    pub fn to_bytes(&self) -> [u8; 100] {
        let mut out = [0u8; 100];
        out[0..32].copy_from_slice(self.version.magic());
        out[32..52].copy_from_slice(&self.nodeid);
        out[52..84].copy_from_slice(&self.write_enabler);
        out[84..92].copy_from_slice(&self.data_length.to_be_bytes());
        out[92..100].copy_from_slice(&self.extra_lease_offset.to_be_bytes());
        out
    }

    /// Constant-time write-enabler check (`check_write_enabler`).
    pub fn check_write_enabler(&self, candidate: &[u8; 32]) -> Result<(), BadWriteEnabler> {
        if ct_eq(&self.write_enabler, candidate) {
            Ok(())
        } else {
            Err(BadWriteEnabler {
                recorded_by: self.nodeid,
            })
        }
    }

    /// Container data size (space reserved for data; ≥ `data_length`, never shrinks).
    pub fn container_size(&self) -> u64 {
        self.extra_lease_offset - MUTABLE_DATA_OFFSET
    }

    /// Clips a read of `len` bytes at data offset `offset` to the data length
    /// (`_read_share_data`). Returns `(file_offset, length)`, length possibly 0.
    pub fn read_range(&self, offset: u64, len: u64) -> (u64, u64) {
        let avail = self.data_length.saturating_sub(offset);
        (MUTABLE_DATA_OFFSET.saturating_add(offset), len.min(avail))
    }

    /// The byte range `(file_offset, length)` of the extra-lease block holding `count`
    /// leases, checked against the file size. Read the 4-byte count at
    /// `extra_lease_offset` first.
    pub fn extra_lease_block_range(
        &self,
        count: u32,
        file_size: u64,
    ) -> Result<(u64, u64), ContainerError> {
        let len = extra_lease_block_len(count);
        let end = self
            .extra_lease_offset
            .checked_add(len)
            .ok_or(ContainerError::Overflow)?;
        if end > file_size {
            return Err(ContainerError::LeasesExceedFile {
                num_leases: u64::from(count),
                lease_size: MUTABLE_LEASE_SIZE as u64,
                file_size,
            });
        }
        Ok((self.extra_lease_offset, len))
    }
}

/// Size of an extra-lease block with `count` leases: `4 + 92·count`.
pub fn extra_lease_block_len(count: u32) -> u64 {
    4 + u64::from(count) * MUTABLE_LEASE_SIZE as u64
}

/// The bytes of a freshly created container (472 bytes: header, 4 zeroed lease slots,
/// extra-lease count 0).
pub fn new_mutable_container(
    version: MutableVersion,
    nodeid: NodeId,
    write_enabler: [u8; 32],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(MUTABLE_EMPTY_CONTAINER_SIZE as usize);
    out.extend_from_slice(&MutableContainerHeader::new(version, nodeid, write_enabler).to_bytes());
    out.resize(MUTABLE_EMPTY_CONTAINER_SIZE as usize, 0);
    out
}

/// All lease records of a mutable container: 4 header slots then the extra leases. Records
/// with owner 0 are empty slots (kept byte-exact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableLeases {
    pub form: SecretForm,
    /// `records[..4]` are the header slots, `records[4..]` the extra leases.
    pub records: Vec<LeaseRecord>,
}

impl MutableLeases {
    /// Four empty slots, no extra leases.
    pub fn empty(form: SecretForm) -> Self {
        let blank = LeaseRecord::from_mutable_bytes(form, &[0u8; MUTABLE_LEASE_SIZE]);
        MutableLeases {
            form,
            records: vec![blank; MUTABLE_LEASE_SLOTS],
        }
    }

    /// Parses the 368 slot bytes (file 100..468) and the extra-lease block (4-byte count +
    /// records, exactly [`extra_lease_block_len`] bytes).
    pub fn parse(
        form: SecretForm,
        slots: &[u8],
        extra_block: &[u8],
    ) -> Result<Self, ContainerError> {
        let slot_len = MUTABLE_LEASE_SLOTS * MUTABLE_LEASE_SIZE;
        if slots.len() != slot_len {
            return Err(ContainerError::TooShort {
                len: slots.len() as u64,
                need: slot_len as u64,
            });
        }
        let count = Reader::new(extra_block)
            .u32()
            .map_err(|_| ContainerError::TooShort {
                len: extra_block.len() as u64,
                need: 4,
            })?;
        let need = extra_lease_block_len(count);
        if extra_block.len() as u64 != need {
            if (extra_block.len() as u64) < need {
                return Err(ContainerError::TooShort {
                    len: extra_block.len() as u64,
                    need,
                });
            }
            return Err(ContainerError::TrailingBytes {
                actual: extra_block.len() as u64,
                expected: need,
            });
        }
        let records = slots
            .chunks_exact(MUTABLE_LEASE_SIZE)
            .chain(extra_block[4..].chunks_exact(MUTABLE_LEASE_SIZE))
            .map(|c| {
                let mut a = [0u8; MUTABLE_LEASE_SIZE];
                a.copy_from_slice(c);
                LeaseRecord::from_mutable_bytes(form, &a)
            })
            .collect();
        Ok(MutableLeases { form, records })
    }

    /// Number of extra leases (records beyond the 4 slots, empty or not).
    pub fn extra_count(&self) -> u32 {
        self.records.len().saturating_sub(MUTABLE_LEASE_SLOTS) as u32
    }

    /// The 368 bytes of the 4 header slots.
    pub fn slot_bytes(&self) -> Vec<u8> {
        self.records
            .iter()
            .take(MUTABLE_LEASE_SLOTS)
            .flat_map(|r| r.to_mutable_bytes())
            .collect()
    }

    /// The extra-lease block (count + records).
    pub fn extra_block_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(extra_lease_block_len(self.extra_count()) as usize);
        out.extend_from_slice(&self.extra_count().to_be_bytes());
        for r in self.records.iter().skip(MUTABLE_LEASE_SLOTS) {
            out.extend_from_slice(&r.to_mutable_bytes());
        }
        out
    }

    /// Live leases (owner ≠ 0) with their record index, in Tahoe's enumeration order.
    pub fn live(&self) -> impl Iterator<Item = (usize, &LeaseRecord)> {
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.owner_num != 0)
    }

    /// `MutableShareFile.add_or_renew_lease`: renew the first live lease whose renew secret
    /// matches (forward only), else fill the first empty slot (header or extra), else
    /// append an extra lease (needs `available_space ≥ 92`, else `NoSpace`).
    pub fn add_or_renew(
        &mut self,
        grant: &LeaseGrant,
        available_space: Option<u64>,
    ) -> Result<LeaseUpdate, LeaseError> {
        if grant.owner_num == 0 {
            return Err(LeaseError::ZeroOwner);
        }
        let found = self
            .live()
            .find(|(_, r)| r.renew_secret.matches(&grant.renew_secret))
            .map(|(i, _)| i);
        if let Some(i) = found {
            return Ok(renew_at(&mut self.records[i], i, grant.expiration_secs));
        }
        let rec = grant.to_record(self.form, true);
        if let Some(i) = self.records.iter().position(|r| r.owner_num == 0) {
            self.records[i] = rec;
            return Ok(LeaseUpdate::Added { index: i });
        }
        check_space(MUTABLE_LEASE_SIZE, available_space)?;
        if self.extra_count() == u32::MAX {
            return Err(LeaseError::TooManyLeases);
        }
        self.records.push(rec);
        Ok(LeaseUpdate::Added {
            index: self.records.len() - 1,
        })
    }

    /// The record Tahoe writes over a cancelled lease (`MutableShareFile.cancel_lease`'s
    /// `blank_lease`: owner 0, expiration 0, zero secrets, zero nodeid). It goes through
    /// the container's serializer, so in a v2 container the stored secrets are
    /// `blake2b(32 zero bytes)`, not zeros (unlike the slots of a new container).
    pub fn cancelled_record(form: SecretForm) -> LeaseRecord {
        LeaseRecord {
            owner_num: 0,
            renew_secret: super::lease::LeaseSecret::store(form, &[0u8; 32]),
            cancel_secret: super::lease::LeaseSecret::store(form, &[0u8; 32]),
            expiration_secs: 0,
            nodeid: Some([0u8; 20]),
        }
    }

    /// Cancels the live leases whose index satisfies `remove` (Tahoe's
    /// `MutableShareFile.cancel_lease`): each record is overwritten in place with
    /// [`MutableLeases::cancelled_record`]; nothing is compacted or truncated
    /// (`_pack_leases` is a no-op), so the extra-lease count and file size stay. Returns
    /// the number of leases cancelled and the writes (in record order). If no live lease
    /// remains Tahoe then unlinks the file; that is the caller's decision.
    pub fn cancel(
        &mut self,
        extra_lease_offset: u64,
        mut remove: impl FnMut(usize, &LeaseRecord) -> bool,
    ) -> (usize, Vec<FileOp<'static>>) {
        let blank = Self::cancelled_record(self.form);
        let mut ops = Vec::new();
        for (i, r) in self.records.iter_mut().enumerate() {
            if r.owner_num != 0 && remove(i, r) {
                *r = blank;
                ops.push(FileOp::Write {
                    offset: Self::record_offset(i, extra_lease_offset),
                    data: Cow::Owned(blank.to_mutable_bytes().to_vec()),
                });
            }
        }
        (ops.len(), ops)
    }

    /// File offset of record `index` given the container's extra-lease offset.
    pub fn record_offset(index: usize, extra_lease_offset: u64) -> u64 {
        if index < MUTABLE_LEASE_SLOTS {
            MUTABLE_HEADER_SIZE + (index * MUTABLE_LEASE_SIZE) as u64
        } else {
            extra_lease_offset + 4 + ((index - MUTABLE_LEASE_SLOTS) * MUTABLE_LEASE_SIZE) as u64
        }
    }

    /// The writes that store `update` (self is the state *after* it): the record, and the
    /// extra-lease count when a record was appended.
    pub fn update_ops(&self, extra_lease_offset: u64, update: LeaseUpdate) -> Vec<FileOp<'static>> {
        let index = match update {
            LeaseUpdate::Unchanged { .. } => return Vec::new(),
            LeaseUpdate::Renewed { index } | LeaseUpdate::Added { index } => index,
        };
        let Some(rec) = self.records.get(index) else {
            return Vec::new();
        };
        let mut ops = Vec::with_capacity(2);
        if index >= MUTABLE_LEASE_SLOTS
            && index + 1 == self.records.len()
            && matches!(update, LeaseUpdate::Added { .. })
        {
            // Tahoe writes the new count first, then the record.
            ops.push(FileOp::Write {
                offset: extra_lease_offset,
                data: Cow::Owned(self.extra_count().to_be_bytes().to_vec()),
            });
        }
        ops.push(FileOp::Write {
            offset: Self::record_offset(index, extra_lease_offset),
            data: Cow::Owned(rec.to_mutable_bytes().to_vec()),
        });
        ops
    }
}

/// Plans `MutableShareFile.writev(datav, new_length)`: applies each write in order exactly
/// as Tahoe does (growing the container moves the extra-lease block and zeroes its old
/// bytes; a write starting past the data end zero-fills the gap; containers never shrink),
/// then truncates the data length if `new_length` is smaller (a larger one does not
/// extend). Updates `header` and returns the file changes in order.
///
/// `extra_block` is the current extra-lease block (count + records). `max_container_size`
/// is the share size limit (at most [`MAX_MUTABLE_SHARE_SIZE`]); Tahoe checks it only when
/// the container must grow, and so does this. Unlike Tahoe (which may fail half-way), the
/// whole plan is rejected before anything is written.
pub fn plan_mutable_writev<'a, I>(
    header: &mut MutableContainerHeader,
    extra_block: &[u8],
    writes: I,
    new_length: Option<u64>,
    max_container_size: u64,
) -> Result<Vec<FileOp<'a>>, ContainerError>
where
    I: IntoIterator<Item = (u64, &'a [u8])>,
{
    let mut ops = Vec::new();
    let original = (header.data_length, header.extra_lease_offset);
    let block_len = extra_block.len() as u64;
    for (offset, data) in writes {
        let len = data.len() as u64;
        let end = offset.checked_add(len).ok_or(ContainerError::Overflow)?;
        let file_end = MUTABLE_DATA_OFFSET
            .checked_add(end)
            .ok_or(ContainerError::Overflow)?;
        if end >= header.data_length {
            if file_end > header.extra_lease_offset {
                // _change_container_size(offset + length)
                if end > max_container_size {
                    return Err(ContainerError::DataTooLarge {
                        max: max_container_size,
                        offset,
                        len,
                    });
                }
                let new_elo = file_end;
                file_end
                    .checked_add(block_len)
                    .ok_or(ContainerError::Overflow)?;
                ops.push(FileOp::Zero {
                    offset: header.extra_lease_offset,
                    len: block_len,
                });
                ops.push(FileOp::Write {
                    offset: new_elo,
                    data: Cow::Owned(extra_block.to_vec()),
                });
                header.extra_lease_offset = new_elo;
            }
            if offset > header.data_length {
                ops.push(FileOp::Zero {
                    offset: MUTABLE_DATA_OFFSET + header.data_length,
                    len: offset - header.data_length,
                });
            }
            header.data_length = end;
        }
        ops.push(FileOp::Write {
            offset: MUTABLE_DATA_OFFSET + offset,
            data: Cow::Borrowed(data),
        });
    }
    if let Some(n) = new_length {
        if n < header.data_length {
            header.data_length = n;
        }
    }
    if (header.data_length, header.extra_lease_offset) != original {
        let mut fields = Vec::with_capacity(16);
        fields.extend_from_slice(&header.data_length.to_be_bytes());
        fields.extend_from_slice(&header.extra_lease_offset.to_be_bytes());
        ops.push(FileOp::Write {
            offset: MUTABLE_DATA_LENGTH_OFFSET,
            data: Cow::Owned(fields),
        });
    }
    Ok(ops)
}

/// A whole mutable container in memory (tests, fuzzing, small shares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableContainer {
    pub header: MutableContainerHeader,
    pub leases: MutableLeases,
    /// Container data: `extra_lease_offset − 468` bytes; the share data is the first
    /// `header.data_length` of them, the rest is stale bytes left by truncation.
    pub container_data: Vec<u8>,
}

impl MutableContainer {
    /// A freshly created container.
    pub fn new(version: MutableVersion, nodeid: NodeId, write_enabler: [u8; 32]) -> Self {
        MutableContainer {
            header: MutableContainerHeader::new(version, nodeid, write_enabler),
            leases: MutableLeases::empty(version.secret_form()),
            container_data: Vec::new(),
        }
    }

    /// Parses a complete container file. The file must end exactly after the extra leases.
    pub fn parse(file: &[u8]) -> Result<Self, ContainerError> {
        let header = MutableContainerHeader::parse(file)?;
        let size = file.len() as u64;
        if size < header.extra_lease_offset.saturating_add(4) {
            return Err(ContainerError::TooShort {
                len: size,
                need: header.extra_lease_offset.saturating_add(4),
            });
        }
        let elo = header.extra_lease_offset as usize;
        let count = Reader::at(file, elo)
            .u32()
            .map_err(|_| ContainerError::TooShort {
                len: size,
                need: header.extra_lease_offset.saturating_add(4),
            })?;
        let (_, block_len) = header.extra_lease_block_range(count, size)?;
        let block_end = elo as u64 + block_len;
        if block_end != size {
            return Err(ContainerError::TrailingBytes {
                actual: size - elo as u64,
                expected: block_len,
            });
        }
        let leases = MutableLeases::parse(
            header.version.secret_form(),
            &file[MUTABLE_HEADER_SIZE as usize..MUTABLE_DATA_OFFSET as usize],
            &file[elo..],
        )?;
        let container_data = file[MUTABLE_DATA_OFFSET as usize..elo].to_vec();
        Ok(MutableContainer {
            header,
            leases,
            container_data,
        })
    }

    /// The container file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.leases.slot_bytes());
        out.extend_from_slice(&self.container_data);
        out.extend_from_slice(&self.leases.extra_block_bytes());
        out
    }

    /// The share data (`container_data[..data_length]`).
    pub fn share_data(&self) -> &[u8] {
        let n = (self.header.data_length as usize).min(self.container_data.len());
        &self.container_data[..n]
    }
}

//! Reading what the lease database needs from a share file (kind, size on disk, leases),
//! through `cairn_core::storage::container`, reading only the header and lease regions.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use cairn_core::storage::container::{
    hash_lease_secret, is_mutable_container, parse_immutable_leases, ContainerError,
    ImmutableContainerHeader, ImmutableLayout, LeaseRecord, LeaseSecret, MutableContainerHeader,
    MutableLeases, IMMUTABLE_HEADER_SIZE, MUTABLE_DATA_OFFSET, MUTABLE_HEADER_SIZE,
};

use super::{AccountId, Lease, ShareKind};

/// Upper bound on lease bytes read from one file (a corrupt count must not make us
/// allocate gigabytes): 1 Mi leases.
const MAX_LEASE_BYTES: u64 = 92 * 1024 * 1024;

/// What the database records about one share file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareInfo {
    pub kind: ShareKind,
    /// File size in bytes (`st_size`, what Tahoe's expirer counts as share bytes).
    pub size: u64,
    /// Live leases (mutable empty slots skipped), one per renew key (a duplicate renew key
    /// keeps the latest expiration), sorted by renew key.
    pub leases: Vec<Lease>,
}

/// Why a share file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ShareInfoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt share container: {source}")]
    Container {
        path: PathBuf,
        #[source]
        source: ContainerError,
    },
}

impl ShareInfoError {
    /// The file does not exist (any more).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ShareInfoError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

impl Lease {
    /// The database form of a container lease record: the renew key is always
    /// blake2b-256 of the renew secret (v2 containers store exactly that; for v1
    /// containers, which store the secret in clear, it is hashed here, so the database
    /// never holds a clear secret). Call with the record as written to the file.
    pub fn from_record(rec: &LeaseRecord) -> Lease {
        let renew_key = match rec.renew_secret {
            LeaseSecret::Hashed(h) => h,
            LeaseSecret::Clear(s) => hash_lease_secret(&s),
        };
        Lease {
            account: AccountId(rec.owner_num),
            renew_key,
            expiration: u64::from(rec.expiration_secs),
        }
    }
}

/// Collapse duplicate renew keys (keep the latest expiration) and sort.
pub(crate) fn normalize_leases(mut leases: Vec<Lease>) -> Vec<Lease> {
    leases.sort_by(|a, b| {
        a.renew_key
            .cmp(&b.renew_key)
            .then(b.expiration.cmp(&a.expiration))
    });
    leases.dedup_by(|later, first| later.renew_key == first.renew_key);
    leases
}

fn read_at(f: &mut File, path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, ShareInfoError> {
    let io = |source| ShareInfoError::Io {
        path: path.to_path_buf(),
        source,
    };
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// The lease records of a share file, as stored (for code that rewrites them).
#[derive(Clone, Debug)]
pub enum ShareRecords {
    Immutable {
        layout: ImmutableLayout,
        leases: Vec<LeaseRecord>,
    },
    Mutable {
        header: MutableContainerHeader,
        leases: MutableLeases,
    },
}

/// Reads a share file's kind, size on disk and lease records.
pub fn read_share_records(path: &Path) -> Result<(ShareKind, u64, ShareRecords), ShareInfoError> {
    let io = |source| ShareInfoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |source| ShareInfoError::Container {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let head_len = size.min(MUTABLE_HEADER_SIZE);
    let head = read_at(&mut f, path, 0, head_len)?;
    if is_mutable_container(&head) {
        let header = MutableContainerHeader::parse(&head).map_err(corrupt)?;
        if size < MUTABLE_DATA_OFFSET {
            return Err(corrupt(ContainerError::TooShort {
                len: size,
                need: MUTABLE_DATA_OFFSET,
            }));
        }
        let slots = read_at(
            &mut f,
            path,
            MUTABLE_HEADER_SIZE,
            MUTABLE_DATA_OFFSET - MUTABLE_HEADER_SIZE,
        )?;
        let need = header.extra_lease_offset.saturating_add(4);
        if size < need {
            return Err(corrupt(ContainerError::TooShort { len: size, need }));
        }
        let count_bytes = read_at(&mut f, path, header.extra_lease_offset, 4)?;
        let count = u32::from_be_bytes([
            count_bytes[0],
            count_bytes[1],
            count_bytes[2],
            count_bytes[3],
        ]);
        let (off, len) = header
            .extra_lease_block_range(count, size)
            .map_err(corrupt)?;
        if len > MAX_LEASE_BYTES {
            return Err(corrupt(ContainerError::Overflow));
        }
        let block = read_at(&mut f, path, off, len)?;
        let leases =
            MutableLeases::parse(header.version.secret_form(), &slots, &block).map_err(corrupt)?;
        Ok((
            ShareKind::Mutable,
            size,
            ShareRecords::Mutable { header, leases },
        ))
    } else {
        let header = ImmutableContainerHeader::parse(
            &head[..head.len().min(IMMUTABLE_HEADER_SIZE as usize)],
        )
        .map_err(corrupt)?;
        let layout = header.layout(size).map_err(corrupt)?;
        let (off, len) = layout.leases_range();
        if len > MAX_LEASE_BYTES {
            return Err(corrupt(ContainerError::Overflow));
        }
        let bytes = read_at(&mut f, path, off, len)?;
        let leases = parse_immutable_leases(header.version, &bytes).map_err(corrupt)?;
        Ok((
            ShareKind::Immutable,
            size,
            ShareRecords::Immutable { layout, leases },
        ))
    }
}

impl ShareRecords {
    /// The live leases, as the database records them.
    pub fn db_leases(&self) -> Vec<Lease> {
        let leases = match self {
            ShareRecords::Immutable { leases, .. } => {
                leases.iter().map(Lease::from_record).collect()
            }
            ShareRecords::Mutable { leases, .. } => {
                leases.live().map(|(_, r)| Lease::from_record(r)).collect()
            }
        };
        normalize_leases(leases)
    }
}

/// Read a share file's kind, size and leases (Tahoe's `get_share_file`: a file that starts
/// with a mutable container magic is mutable, anything else is tried as immutable).
pub fn read_share_info(path: &Path) -> Result<ShareInfo, ShareInfoError> {
    let (kind, size, records) = read_share_records(path)?;
    Ok(ShareInfo {
        kind,
        size,
        leases: records.db_leases(),
    })
}

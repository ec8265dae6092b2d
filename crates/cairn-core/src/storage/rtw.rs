//! Mutable read-test-write, pure (`storage/server.py::slot_testv_and_readv_and_writev`;
//! compat map §4.6).
//!
//! [`evaluate`] takes the parsed existing shares of one storage index, a request and the
//! secrets, and decides everything: the write-enabler check over **all** existing shares,
//! the test vectors (operator `eq` only; missing shares read as empty; data clipped at the
//! share's data length), the read vectors (existing shares only, before any write), and,
//! if the tests pass, a per-share plan (create / update / delete) as [`FileOp`]s including
//! the owner-1 lease add-or-renew Tahoe performs on every written share. The I/O layer
//! executes the plan atomically.

use std::collections::BTreeMap;

use super::container::{
    expiration_for, new_mutable_container, plan_mutable_writev, BadWriteEnabler, ContainerError,
    FileOp, LeaseError, LeaseGrant, LeaseUpdate, MutableContainerHeader, MutableLeases,
    MutableVersion, NodeId, MAX_MUTABLE_SHARE_SIZE,
};

/// Share numbers are [`ShareNum`]s: the HTTP schema allows any uint, cairn refuses above 255
/// where the request is parsed.
pub use crate::ids::ShareNum;

/// Owner number Tahoe puts on leases created by mutable writes (`_make_lease_info`: `ownerid = 1`).
pub const RTW_LEASE_OWNER: u32 = 1;

/// One test: the share bytes at `[offset, offset+size)` (clipped at the data length) must
/// equal `specimen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestVector {
    pub offset: u64,
    pub size: u64,
    pub specimen: Vec<u8>,
}

/// One write of `data` at data offset `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteVector {
    pub offset: u64,
    pub data: Vec<u8>,
}

/// One read of `size` bytes at `offset` (clipped at the data length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadVector {
    pub offset: u64,
    pub size: u64,
}

/// Tests, writes and optional new length for one share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestWriteVectors {
    pub test: Vec<TestVector>,
    pub write: Vec<WriteVector>,
    /// `Some(0)` deletes the share; `Some(n)` with n < data length truncates; larger
    /// values do nothing (they never extend).
    pub new_length: Option<u64>,
}

/// A read-test-write request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtwRequest {
    pub test_write_vectors: BTreeMap<ShareNum, TestWriteVectors>,
    pub read_vector: Vec<ReadVector>,
}

/// The client's secrets for the call.
#[derive(Clone, PartialEq, Eq)]
pub struct RtwSecrets {
    pub write_enabler: [u8; 32],
    pub lease_renew: [u8; 32],
    pub lease_cancel: [u8; 32],
}

impl std::fmt::Debug for RtwSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RtwSecrets(..)")
    }
}

/// Server-side facts the decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtwContext {
    /// This server's node id (recorded in new containers and leases).
    pub nodeid: NodeId,
    /// Current time, seconds since the epoch (lease expiration = now + 31 days).
    pub now_secs: u64,
    /// Free space for lease growth (None = unlimited). Tahoe only checks it when a lease
    /// needs a new extra-lease record.
    pub available_space: Option<u64>,
    /// Largest container data size allowed (≤ [`MAX_MUTABLE_SHARE_SIZE`]).
    pub max_share_size: u64,
    /// Tahoe always passes `renew_leases=True` from both Foolscap and HTTP.
    pub renew_leases: bool,
    /// Version for newly created containers (Tahoe 1.20: V2).
    pub new_container_version: MutableVersion,
}

impl RtwContext {
    /// Tahoe 1.20 defaults: V2 containers, renew leases, `MAX_MUTABLE_SHARE_SIZE`.
    pub fn new(nodeid: NodeId, now_secs: u64, available_space: Option<u64>) -> Self {
        RtwContext {
            nodeid,
            now_secs,
            available_space,
            max_share_size: MAX_MUTABLE_SHARE_SIZE,
            renew_leases: true,
            new_container_version: MutableVersion::V2,
        }
    }
}

/// An existing mutable share as the I/O layer parsed it: the header (bytes 0..100) and the
/// leases (bytes 100..468 plus the extra-lease block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingShare {
    pub header: MutableContainerHeader,
    pub leases: MutableLeases,
}

/// What to do with one share's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareAction<'a> {
    /// Create the file with `initial` (a fresh 472-byte container), then apply `ops`.
    Create {
        initial: Vec<u8>,
        ops: Vec<FileOp<'a>>,
    },
    /// Apply `ops` in order to the existing file (may be empty).
    Update { ops: Vec<FileOp<'a>> },
    /// Delete the file if it exists (`existed` says whether it did), then remove the
    /// bucket directory if it is now empty.
    Delete { existed: bool },
}

/// The plan for one share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePlan<'a> {
    pub shnum: ShareNum,
    pub action: ShareAction<'a>,
    /// The share's header and leases after the plan (None when deleted).
    pub result: Option<ExistingShare>,
    /// What happened to the caller's lease (None when deleted or `renew_leases` is off).
    pub lease_update: Option<LeaseUpdate>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtwOutcome<'a> {
    /// Whether all test vectors passed (the wire `success`).
    pub success: bool,
    /// Read results for every existing share, before writes (the wire `data`).
    pub read_data: BTreeMap<ShareNum, Vec<Vec<u8>>>,
    /// Per-share actions, in share-number order; empty unless `success`.
    pub plan: Vec<SharePlan<'a>>,
}

/// Why the request was refused before any change.
#[derive(Debug, thiserror::Error)]
pub enum RtwError<E> {
    /// Write enabler mismatch on an existing share (HTTP 401).
    #[error("share {shnum}: {source}")]
    BadWriteEnabler {
        shnum: ShareNum,
        source: BadWriteEnabler,
    },
    /// A write exceeds the share size limit, or offsets overflow (Tahoe: DataTooLargeError).
    #[error("share {shnum}: {source}")]
    Container {
        shnum: ShareNum,
        source: ContainerError,
    },
    /// A lease could not be stored (no space) or the clock is out of range.
    #[error("share {shnum}: {source}")]
    Lease { shnum: ShareNum, source: LeaseError },
    /// The caller's share reader failed.
    #[error("reading share {shnum}: {source}")]
    Read { shnum: ShareNum, source: E },
}

/// Decides a read-test-write call.
///
/// `read(shnum, data_offset, len)` must return exactly `len` bytes of share data of an
/// existing share; it is only called with ranges already clipped to that share's data
/// length, and never with `len == 0`.
pub fn evaluate<'a, E, R>(
    existing: &BTreeMap<ShareNum, ExistingShare>,
    request: &'a RtwRequest,
    secrets: &RtwSecrets,
    ctx: &RtwContext,
    mut read: R,
) -> Result<RtwOutcome<'a>, RtwError<E>>
where
    R: FnMut(ShareNum, u64, u64) -> Result<Vec<u8>, E>,
{
    // 1. Write enabler on every existing share.
    for (&shnum, share) in existing {
        share
            .header
            .check_write_enabler(&secrets.write_enabler)
            .map_err(|source| RtwError::BadWriteEnabler { shnum, source })?;
    }

    let mut clipped_read =
        |shnum: ShareNum, offset: u64, size: u64| -> Result<Vec<u8>, RtwError<E>> {
            let Some(share) = existing.get(&shnum) else {
                return Ok(Vec::new());
            };
            let (_, len) = share.header.read_range(offset, size);
            if len == 0 {
                return Ok(Vec::new());
            }
            read(shnum, offset, len).map_err(|source| RtwError::Read { shnum, source })
        };

    // 2. Test vectors.
    let mut success = true;
    'tests: for (&shnum, tw) in &request.test_write_vectors {
        for t in &tw.test {
            let clipped = match existing.get(&shnum) {
                Some(share) => share.header.read_range(t.offset, t.size).1,
                None => 0,
            };
            if clipped != t.specimen.len() as u64
                || clipped_read(shnum, t.offset, t.size)? != t.specimen
            {
                success = false;
                break 'tests;
            }
        }
    }

    // 3. Read vectors on existing shares, before writes.
    let mut read_data = BTreeMap::new();
    for &shnum in existing.keys() {
        let mut v = Vec::with_capacity(request.read_vector.len());
        for r in &request.read_vector {
            v.push(clipped_read(shnum, r.offset, r.size)?);
        }
        read_data.insert(shnum, v);
    }

    if !success {
        return Ok(RtwOutcome {
            success,
            read_data,
            plan: Vec::new(),
        });
    }

    // 4. Plan writes and leases.
    let grant = if ctx.renew_leases {
        let expiration_secs = expiration_for(ctx.now_secs).map_err(|source| RtwError::Lease {
            shnum: request
                .test_write_vectors
                .keys()
                .next()
                .copied()
                .unwrap_or_default(),
            source,
        })?;
        Some(LeaseGrant {
            owner_num: RTW_LEASE_OWNER,
            renew_secret: secrets.lease_renew,
            cancel_secret: secrets.lease_cancel,
            expiration_secs,
            nodeid: ctx.nodeid,
        })
    } else {
        None
    };
    let max = ctx.max_share_size.min(MAX_MUTABLE_SHARE_SIZE);
    let mut plan = Vec::with_capacity(request.test_write_vectors.len());
    for (&shnum, tw) in &request.test_write_vectors {
        if tw.new_length == Some(0) {
            plan.push(SharePlan {
                shnum,
                action: ShareAction::Delete {
                    existed: existing.contains_key(&shnum),
                },
                result: None,
                lease_update: None,
            });
            continue;
        }
        let (mut share, initial) = match existing.get(&shnum) {
            Some(s) => (s.clone(), None),
            None => {
                let v = ctx.new_container_version;
                (
                    ExistingShare {
                        header: MutableContainerHeader::new(v, ctx.nodeid, secrets.write_enabler),
                        leases: MutableLeases::empty(v.secret_form()),
                    },
                    Some(new_mutable_container(v, ctx.nodeid, secrets.write_enabler)),
                )
            }
        };
        let block = share.leases.extra_block_bytes();
        let mut ops = plan_mutable_writev(
            &mut share.header,
            &block,
            tw.write.iter().map(|w| (w.offset, w.data.as_slice())),
            tw.new_length,
            max,
        )
        .map_err(|source| RtwError::Container { shnum, source })?;
        let mut lease_update = None;
        if let Some(g) = &grant {
            let u = share
                .leases
                .add_or_renew(g, ctx.available_space)
                .map_err(|source| RtwError::Lease { shnum, source })?;
            ops.extend(share.leases.update_ops(share.header.extra_lease_offset, u));
            lease_update = Some(u);
        }
        let action = match initial {
            Some(initial) => ShareAction::Create { initial, ops },
            None => ShareAction::Update { ops },
        };
        plan.push(SharePlan {
            shnum,
            action,
            result: Some(share),
            lease_update,
        });
    }
    Ok(RtwOutcome {
        success,
        read_data,
        plan,
    })
}

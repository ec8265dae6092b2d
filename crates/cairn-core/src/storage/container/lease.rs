//! Lease records as Tahoe stores them inside share containers (`storage/lease.py`,
//! `storage/lease_schema.py`), the add-or-renew rule, and expiry checks.
//!
//! A lease record holds two 32-byte secrets. Version-1 containers store them in the clear;
//! version-2 containers (every file Tahoe ≥ 1.17 creates) store `blake2b-256(secret)`
//! (unkeyed, PyNaCl `nacl.hash.blake2b(digest_size=32)`), and comparisons hash the candidate
//! first. See `docs/formats/leases.md`.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

use crate::bytes::Reader;

/// Size of one lease record in an immutable container (`">L32s32sL"`).
pub const IMMUTABLE_LEASE_SIZE: usize = 72;
/// Size of one lease record in a mutable container (`">LL32s32s20s"`).
pub const MUTABLE_LEASE_SIZE: usize = 92;
/// Seconds a granted or renewed lease lasts (`storage/server.py::DEFAULT_RENEWAL_TIME`,
/// 31 days; not configurable in Tahoe 1.20). `grant time = expiration − this`.
pub const DEFAULT_RENEWAL_TIME_SECS: u32 = 31 * 24 * 60 * 60;
/// Length of a lease secret (renew or cancel), clear or hashed.
pub const LEASE_SECRET_LEN: usize = 32;
/// Length of a Tahoe node id (the 20-byte Foolscap tubid).
pub const NODEID_LEN: usize = 20;

/// The 20-byte node id of a storage server (binary tubid).
pub type NodeId = [u8; NODEID_LEN];

/// `blake2b(secret, digest_size=32)`, unkeyed, as Tahoe's v2 containers store lease secrets.
pub fn hash_lease_secret(secret: &[u8; LEASE_SECRET_LEN]) -> [u8; LEASE_SECRET_LEN] {
    let mut h = Blake2b::<U32>::new();
    h.update(secret);
    h.finalize().into()
}

/// Constant-time equality of two equal-length byte strings (Tahoe's `timing_safe_compare`
/// semantics: the result, not the time, depends on the contents).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut acc = 0u8;
    for (x, y) in a.iter().zip(b) {
        acc |= x ^ y;
    }
    acc == 0
}

/// How a container stores lease secrets; fixed by the container version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretForm {
    /// Version-1 containers: secrets in clear text.
    Clear,
    /// Version-2 containers: `blake2b-256(secret)`.
    Hashed,
}

/// A stored lease secret together with the form it is stored in.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseSecret {
    /// The secret itself (v1 containers).
    Clear([u8; LEASE_SECRET_LEN]),
    /// `blake2b-256` of the secret (v2 containers).
    Hashed([u8; LEASE_SECRET_LEN]),
}

impl std::fmt::Debug for LeaseSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets (Tahoe keeps them out of repr too).
        match self {
            LeaseSecret::Clear(_) => f.write_str("LeaseSecret::Clear(..)"),
            LeaseSecret::Hashed(_) => f.write_str("LeaseSecret::Hashed(..)"),
        }
    }
}

impl LeaseSecret {
    /// Stores the clear `secret` in the given form (hashing it for [`SecretForm::Hashed`]).
    pub fn store(form: SecretForm, secret: &[u8; LEASE_SECRET_LEN]) -> Self {
        match form {
            SecretForm::Clear => LeaseSecret::Clear(*secret),
            SecretForm::Hashed => LeaseSecret::Hashed(hash_lease_secret(secret)),
        }
    }

    /// Wraps 32 bytes read from a container of the given form.
    pub fn from_stored(form: SecretForm, stored: [u8; LEASE_SECRET_LEN]) -> Self {
        match form {
            SecretForm::Clear => LeaseSecret::Clear(stored),
            SecretForm::Hashed => LeaseSecret::Hashed(stored),
        }
    }

    /// The 32 bytes as written into the container.
    pub fn stored_bytes(&self) -> &[u8; LEASE_SECRET_LEN] {
        match self {
            LeaseSecret::Clear(b) | LeaseSecret::Hashed(b) => b,
        }
    }

    /// The storage form.
    pub fn form(&self) -> SecretForm {
        match self {
            LeaseSecret::Clear(_) => SecretForm::Clear,
            LeaseSecret::Hashed(_) => SecretForm::Hashed,
        }
    }

    /// Whether the clear `candidate` is this secret (hashing the candidate first when the
    /// stored form is hashed). Constant time in the contents.
    pub fn matches(&self, candidate: &[u8; LEASE_SECRET_LEN]) -> bool {
        match self {
            LeaseSecret::Clear(b) => ct_eq(b, candidate),
            LeaseSecret::Hashed(b) => ct_eq(b, &hash_lease_secret(candidate)),
        }
    }

    /// Whether the already-stored form `stored` equals this one (the internal path the lease
    /// crawler uses to cancel a lease it read: Tahoe's `_HashedCancelSecret`). Never expose
    /// this to clients.
    pub fn matches_stored(&self, stored: &[u8; LEASE_SECRET_LEN]) -> bool {
        ct_eq(self.stored_bytes(), stored)
    }
}

/// One lease as stored in a container.
///
/// `nodeid` is present in mutable containers (the server that accepted the lease) and
/// absent in immutable ones. Serialising a mutable lease with `nodeid: None` writes 20 zero
/// bytes (Tahoe would fail; its leases always carry one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseRecord {
    /// Owner number; in mutable containers 0 marks an empty slot. Tahoe writes 0 for
    /// leases made at immutable upload (`allocate_buckets`) and 1 for `add_lease` and
    /// mutable writes.
    pub owner_num: u32,
    pub renew_secret: LeaseSecret,
    pub cancel_secret: LeaseSecret,
    /// Seconds since the epoch, truncated to an integer (Tahoe writes `int(expiration)`).
    pub expiration_secs: u32,
    pub nodeid: Option<NodeId>,
}

/// A lease a client asks for, with clear secrets (what the server gets over the wire).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    pub owner_num: u32,
    pub renew_secret: [u8; LEASE_SECRET_LEN],
    pub cancel_secret: [u8; LEASE_SECRET_LEN],
    pub expiration_secs: u32,
    /// This server's node id (recorded in mutable-container leases only).
    pub nodeid: NodeId,
}

impl std::fmt::Debug for LeaseGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGrant")
            .field("owner_num", &self.owner_num)
            .field("expiration_secs", &self.expiration_secs)
            .finish_non_exhaustive()
    }
}

/// Errors from lease arithmetic and lease-list updates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Adding a lease record needs `needed` bytes but only `available` are free
    /// (Tahoe's `NoSpace`).
    #[error("no space for a new lease record: need {needed} bytes, {available} available")]
    NoSpace { needed: u64, available: u64 },
    /// `now + 31 days` does not fit the u32 expiration field (after 2106-02-07).
    #[error("lease expiration {0} does not fit in 32 bits")]
    ExpirationOverflow(u64),
    /// The immutable lease count would exceed u32.
    #[error("too many leases")]
    TooManyLeases,
    /// Mutable containers reserve owner number 0 for empty slots.
    #[error("owner number 0 is reserved for empty mutable lease slots")]
    ZeroOwner,
}

/// The expiration Tahoe gives a lease granted or renewed at `now_secs`:
/// `int(now + DEFAULT_RENEWAL_TIME)`.
pub fn expiration_for(now_secs: u64) -> Result<u32, LeaseError> {
    let e = now_secs.saturating_add(u64::from(DEFAULT_RENEWAL_TIME_SECS));
    u32::try_from(e).map_err(|_| LeaseError::ExpirationOverflow(e))
}

impl LeaseGrant {
    /// The record stored for this grant in a container with the given secret form.
    /// `with_nodeid` is true for mutable containers.
    pub fn to_record(&self, form: SecretForm, with_nodeid: bool) -> LeaseRecord {
        LeaseRecord {
            owner_num: self.owner_num,
            renew_secret: LeaseSecret::store(form, &self.renew_secret),
            cancel_secret: LeaseSecret::store(form, &self.cancel_secret),
            expiration_secs: self.expiration_secs,
            nodeid: if with_nodeid { Some(self.nodeid) } else { None },
        }
    }
}

impl LeaseRecord {
    /// Tahoe's `get_grant_renew_time_time`: expiration − 31 days (assumes the fixed duration).
    pub fn grant_renew_time_secs(&self) -> i64 {
        i64::from(self.expiration_secs) - i64::from(DEFAULT_RENEWAL_TIME_SECS)
    }

    /// Age of the lease at `now_secs` (Tahoe's `get_age`), may be negative.
    pub fn age_secs(&self, now_secs: u64) -> i128 {
        i128::from(now_secs) - i128::from(self.grant_renew_time_secs())
    }

    /// Whether the lease's own expiration time has passed (`expiration <= now`; Tahoe counts
    /// a lease as "valid (original)" iff `expiration > now`).
    pub fn is_expired_at(&self, now_secs: u64) -> bool {
        u64::from(self.expiration_secs) <= now_secs
    }

    /// Serialises for an immutable container: `">L32s32sL"`.
    pub fn to_immutable_bytes(&self) -> [u8; IMMUTABLE_LEASE_SIZE] {
        let mut out = [0u8; IMMUTABLE_LEASE_SIZE];
        out[0..4].copy_from_slice(&self.owner_num.to_be_bytes());
        out[4..36].copy_from_slice(self.renew_secret.stored_bytes());
        out[36..68].copy_from_slice(self.cancel_secret.stored_bytes());
        out[68..72].copy_from_slice(&self.expiration_secs.to_be_bytes());
        out
    }

    /// Parses an immutable-container record; `form` comes from the container version.
    pub fn from_immutable_bytes(form: SecretForm, b: &[u8; IMMUTABLE_LEASE_SIZE]) -> Self {
        // The array holds exactly these fields, so no read runs short and the zero
        // fallbacks are never taken.
        let mut r = Reader::new(b);
        LeaseRecord {
            owner_num: r.u32().unwrap_or(0),
            renew_secret: LeaseSecret::from_stored(form, r.array().unwrap_or([0; 32])),
            cancel_secret: LeaseSecret::from_stored(form, r.array().unwrap_or([0; 32])),
            expiration_secs: r.u32().unwrap_or(0),
            nodeid: None,
        }
    }

    /// Serialises for a mutable container: `">LL32s32s20s"`.
    pub fn to_mutable_bytes(&self) -> [u8; MUTABLE_LEASE_SIZE] {
        let mut out = [0u8; MUTABLE_LEASE_SIZE];
        out[0..4].copy_from_slice(&self.owner_num.to_be_bytes());
        out[4..8].copy_from_slice(&self.expiration_secs.to_be_bytes());
        out[8..40].copy_from_slice(self.renew_secret.stored_bytes());
        out[40..72].copy_from_slice(self.cancel_secret.stored_bytes());
        if let Some(n) = &self.nodeid {
            out[72..92].copy_from_slice(n);
        }
        out
    }

    /// Parses a mutable-container record (which may be an empty slot: owner 0).
    pub fn from_mutable_bytes(form: SecretForm, b: &[u8; MUTABLE_LEASE_SIZE]) -> Self {
        // As above: the array holds exactly these fields; the fallbacks are never taken.
        let mut r = Reader::new(b);
        LeaseRecord {
            owner_num: r.u32().unwrap_or(0),
            expiration_secs: r.u32().unwrap_or(0),
            renew_secret: LeaseSecret::from_stored(form, r.array().unwrap_or([0; 32])),
            cancel_secret: LeaseSecret::from_stored(form, r.array().unwrap_or([0; 32])),
            nodeid: Some(r.array::<NODEID_LEN>().unwrap_or([0; NODEID_LEN])),
        }
    }
}

/// What [`add_or_renew`] / `MutableLeases::add_or_renew` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseUpdate {
    /// A lease with the same renew secret existed; its expiration moved forward.
    Renewed { index: usize },
    /// A lease with the same renew secret existed and already expired no earlier than the
    /// requested time; nothing changed (renewal never moves expiration backwards).
    Unchanged { index: usize },
    /// No lease matched; a new one was stored at `index`.
    Added { index: usize },
}

impl LeaseUpdate {
    /// The lease index touched.
    pub fn index(&self) -> usize {
        match *self {
            LeaseUpdate::Renewed { index }
            | LeaseUpdate::Unchanged { index }
            | LeaseUpdate::Added { index } => index,
        }
    }
}

/// Renews the first lease whose renew secret matches `grant` (only moving its expiration
/// forward), or appends a new lease. Immutable-container semantics
/// (`ShareFile.add_or_renew_lease`): every record counts, including owner 0.
///
/// `available_space` is the server's free space (None = unlimited); appending fails with
/// [`LeaseError::NoSpace`] if it is below one record (`IMMUTABLE_LEASE_SIZE`).
pub fn add_or_renew(
    leases: &mut Vec<LeaseRecord>,
    form: SecretForm,
    grant: &LeaseGrant,
    available_space: Option<u64>,
) -> Result<LeaseUpdate, LeaseError> {
    if let Some(i) = leases
        .iter()
        .position(|l| l.renew_secret.matches(&grant.renew_secret))
    {
        return Ok(renew_at(&mut leases[i], i, grant.expiration_secs));
    }
    check_space(IMMUTABLE_LEASE_SIZE, available_space)?;
    if leases.len() >= u32::MAX as usize {
        return Err(LeaseError::TooManyLeases);
    }
    leases.push(grant.to_record(form, false));
    Ok(LeaseUpdate::Added {
        index: leases.len() - 1,
    })
}

pub(crate) fn renew_at(lease: &mut LeaseRecord, index: usize, new_exp: u32) -> LeaseUpdate {
    if new_exp > lease.expiration_secs {
        lease.expiration_secs = new_exp;
        LeaseUpdate::Renewed { index }
    } else {
        LeaseUpdate::Unchanged { index }
    }
}

pub(crate) fn check_space(record: usize, available_space: Option<u64>) -> Result<(), LeaseError> {
    match available_space {
        Some(a) if (record as u64) > a => Err(LeaseError::NoSpace {
            needed: record as u64,
            available: a,
        }),
        _ => Ok(()),
    }
}

/// Garbage-collection policy (`[storage] expire.*`, `storage/expirer.py::process_share`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpirationPolicy {
    /// `expire.mode = age`. With `override_lease_duration = None` Tahoe compares the lease's
    /// age against its *absolute* expiration timestamp, so in practice nothing expires;
    /// reproduced faithfully.
    Age {
        override_lease_duration_secs: Option<u64>,
    },
    /// `expire.mode = cutoff-date`: leases granted/renewed before the cutoff expire.
    CutoffDate { cutoff_secs: u64 },
}

impl ExpirationPolicy {
    /// Whether the crawler at `now_secs` considers `lease` expired under this policy
    /// (before the `expire.immutable` / `expire.mutable` share-type filter).
    pub fn lease_expired(&self, lease: &LeaseRecord, now_secs: u64) -> bool {
        let age = lease.age_secs(now_secs);
        match *self {
            ExpirationPolicy::Age {
                override_lease_duration_secs,
            } => {
                let limit = match override_lease_duration_secs {
                    Some(d) => i128::from(d),
                    None => i128::from(lease.expiration_secs),
                };
                age > limit
            }
            ExpirationPolicy::CutoffDate { cutoff_secs } => {
                i128::from(lease.grant_renew_time_secs()) < i128::from(cutoff_secs)
            }
        }
    }
}

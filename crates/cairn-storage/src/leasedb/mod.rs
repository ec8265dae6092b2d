//! The lease database: an SQLite index of the shares, leases, upload reservations and
//! per-account space usage of one storage server.
//!
//! The share files are the truth (Tahoe keeps leases inside the share containers, and so
//! does cairn); this database is *derived state* that lets usage queries and lease expiry
//! run without scanning the disk. [`reconcile`] brings it back in line with the files (and
//! rebuilds it when the file is missing), [`audit`] recounts every reference and reports
//! (and optionally fixes) each difference, and [`gc`] expires leases and deletes shares as
//! Tahoe's `[storage] expire.*` settings say.
//!
//! Every increment has a named mirror, every operation is one SQLite transaction, and
//! the operations a retry can repeat are idempotent:
//!
//! | increment | mirror |
//! |---|---|
//! | [`LeaseDb::reserve`] | [`LeaseDb::release`] (and [`LeaseDb::release_all_reservations`] at startup) |
//! | [`LeaseDb::commit_upload`] (reservation → share + lease) | [`LeaseDb::remove_share`] |
//! | [`LeaseDb::add_share`] | [`LeaseDb::remove_share`] |
//! | [`LeaseDb::add_or_renew_lease`] | [`LeaseDb::remove_lease`] |
//!
//! Every change to share files is bracketed by a durable intent record
//! ([`LeaseDb::begin_change`] .. [`LeaseDb::end_change`], see `changes.rs`), so a crash
//! between a file change and its database update is settled at the next start, before the
//! server accepts a connection.
//!
//! Time is always a parameter (seconds since the epoch); nothing here reads the clock.
//! See `docs/leases-and-accounting.md` for the design and the server's call sites.

mod accounting;
pub mod audit;
mod changes;
pub mod gc;
pub mod reconcile;
mod schema;
pub mod shareinfo;

use std::fmt;
use std::path::{Path, PathBuf};

use cairn_core::cap::StorageIndex;
use cairn_core::ids::ShareNum;
use rusqlite::Connection;

pub use accounting::{CommitOutcome, Usage};
pub use audit::{audit, audit_storage_dir, resolve_storage_dir, AuditReport};
pub use changes::PendingChange;
pub use gc::{
    collect_garbage, parse_date, parse_duration, ExpirationMode, ExpirationPolicy, ExpiredShare,
    GcReport, LeaseExpiry,
};
pub use reconcile::{
    all_prefixes, reconcile_all, reconcile_bucket, reconcile_prefix, startup_recovery, Crawler,
    Discrepancy, StartupReport,
};
pub use schema::{Migration, MIGRATIONS, SCHEMA_VERSION};
pub use shareinfo::{ShareInfo, ShareInfoError};

/// File name of the lease database inside a storage directory (`STORAGE_DIR/leasedb.sqlite`).
pub const DB_FILE_NAME: &str = "leasedb.sqlite";

/// Where the lease database of a storage directory lives.
pub fn default_db_path(storage_dir: &Path) -> PathBuf {
    storage_dir.join(DB_FILE_NAME)
}

/// Tahoe's `DEFAULT_RENEWAL_TIME`: a lease lasts 31 days from its grant or last renewal.
pub const DEFAULT_RENEWAL_TIME: u64 = 31 * 24 * 60 * 60;

/// An account: the `owner_num` field of Tahoe's lease records, which Tahoe reserved for
/// exactly this ("owner_num ... should be curried into the PersonalStorageServer instance
/// that is dedicated to a particular owner", `storage/server.py`). Tahoe itself writes 0
/// for leases added at immutable allocation and 1 for `add_lease` and mutable writes.
/// Keeping the account in the share file keeps this database rebuildable from disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub u32);

/// One share: a storage index and a share number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareKey {
    pub si: StorageIndex,
    pub shnum: ShareNum,
}

impl ShareKey {
    pub fn new(si: StorageIndex, shnum: ShareNum) -> ShareKey {
        ShareKey { si, shnum }
    }
    /// The 2-character prefix directory (first two base32 characters of the SI).
    pub fn prefix(&self) -> String {
        self.si.to_base32()[..2].to_string()
    }
    /// `shares/<prefix>/<si>/<shnum>` under a storage directory.
    pub fn share_path(&self, storage_dir: &Path) -> PathBuf {
        let si = self.si.to_base32();
        storage_dir
            .join("shares")
            .join(&si[..2])
            .join(&si)
            .join(self.shnum.to_string())
    }
    /// `shares/incoming/<prefix>/<si>/<shnum>` under a storage directory.
    pub fn incoming_path(&self, storage_dir: &Path) -> PathBuf {
        let si = self.si.to_base32();
        storage_dir
            .join("shares")
            .join("incoming")
            .join(&si[..2])
            .join(&si)
            .join(self.shnum.to_string())
    }
}

impl fmt::Display for ShareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.si.to_base32(), self.shnum)
    }
}

impl fmt::Debug for ShareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareKey({self})")
    }
}

/// Which kind of share container a share is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShareKind {
    Immutable,
    Mutable,
}

impl ShareKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareKind::Immutable => "immutable",
            ShareKind::Mutable => "mutable",
        }
    }
    pub(crate) fn from_db(s: &str) -> Result<ShareKind, LeaseDbError> {
        match s {
            "immutable" => Ok(ShareKind::Immutable),
            "mutable" => Ok(ShareKind::Mutable),
            other => Err(LeaseDbError::Corrupt(format!(
                "unknown share kind {other:?}"
            ))),
        }
    }
}

impl fmt::Display for ShareKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One lease as the database records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lease {
    /// The lease's `owner_num`.
    pub account: AccountId,
    /// The renew-secret field exactly as the share container stores it: blake2b-256 of the
    /// secret for v2 containers, the secret itself for v1. It identifies the lease within
    /// its share (Tahoe renews the lease whose renew secret matches).
    pub renew_key: [u8; 32],
    /// Expiration time, seconds since the epoch (Tahoe stores a u32).
    pub expiration: u64,
}

/// An upload in progress, holding a reservation of space. At most one upload per share
/// exists at a time (Tahoe refuses a second writer for the same `incoming/` file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Upload {
    pub share: ShareKey,
    /// The account charged for the reservation (the owner of the lease it will carry).
    pub account: AccountId,
    /// Bytes reserved (the allocated size the client asked for).
    pub bytes: u64,
}

/// Errors of the lease database.
#[derive(Debug, thiserror::Error)]
pub enum LeaseDbError {
    #[error("lease database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("lease database I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "lease database {path} has schema version {found}, newer than the {known} this cairn \
         knows; upgrade cairn (or move the database aside: it is rebuilt from the share files)"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("lease database migration {id} is recorded as {found:?} but this cairn calls it {expected:?}")]
    MigrationMismatch {
        id: i64,
        found: String,
        expected: String,
    },
    #[error("lease database migration {id} ({name}) failed: {source}")]
    MigrationFailed {
        id: i64,
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("upload for share {share} already holds a different reservation")]
    ReservationConflict { share: ShareKey },
    #[error("share {share} is not in the lease database")]
    NoSuchShare { share: ShareKey },
    #[error("lease database is inconsistent: {0}")]
    Corrupt(String),
    #[error("value out of range for the lease database: {0}")]
    Range(&'static str),
}

impl LeaseDbError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> LeaseDbError {
        LeaseDbError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = LeaseDbError> = std::result::Result<T, E>;

/// The lease database. Holds one SQLite connection; `Send` but not `Sync`: a server shares
/// it behind a `Mutex` (all operations are short transactions).
pub struct LeaseDb {
    conn: Connection,
    path: Option<PathBuf>,
}

impl fmt::Debug for LeaseDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseDb").field("path", &self.path).finish()
    }
}

impl LeaseDb {
    /// Open (creating if needed) the database at `path` and apply every migration it has
    /// not yet had, each in its own transaction, recording it with `applied_at = now`.
    /// Refuses a database whose schema is newer than this binary knows.
    pub fn open(path: &Path, now: u64) -> Result<LeaseDb> {
        Self::open_upto(path, MIGRATIONS.len(), now)
    }

    /// A private in-memory database (tests, tools).
    pub fn open_in_memory(now: u64) -> Result<LeaseDb> {
        let conn = Connection::open_in_memory()?;
        let mut db = LeaseDb { conn, path: None };
        db.configure()?;
        schema::migrate(&mut db.conn, "<memory>", MIGRATIONS, MIGRATIONS.len(), now)?;
        Ok(db)
    }

    /// Open applying only the first `upto` migrations: simulates a database written by an
    /// older cairn. For upgrade tests.
    #[doc(hidden)]
    pub fn open_upto(path: &Path, upto: usize, now: u64) -> Result<LeaseDb> {
        Self::open_with_migrations(path, MIGRATIONS, upto, now)
    }

    /// Open with an explicit migration list (for tests of the migration machinery).
    #[doc(hidden)]
    pub fn open_with_migrations(
        path: &Path,
        migrations: &[Migration],
        upto: usize,
        now: u64,
    ) -> Result<LeaseDb> {
        let conn = Connection::open(path)?;
        let mut db = LeaseDb {
            conn,
            path: Some(path.to_path_buf()),
        };
        db.configure()?;
        schema::migrate(
            &mut db.conn,
            &path.display().to_string(),
            migrations,
            upto,
            now,
        )?;
        Ok(db)
    }

    /// Open the database of a storage directory; if its file does not exist, create it and
    /// rebuild it from the share files, returning what the rebuild found (every share is a
    /// "missing row" then). Also use this after deleting a damaged database.
    pub fn open_or_rebuild(
        storage_dir: &Path,
        now: u64,
    ) -> Result<(LeaseDb, Option<Vec<Discrepancy>>)> {
        let path = default_db_path(storage_dir);
        let existed = path.exists();
        let mut db = LeaseDb::open(&path, now)?;
        if existed {
            Ok((db, None))
        } else {
            let found = reconcile_all(storage_dir, &mut db, true)?;
            Ok((db, Some(found)))
        }
    }

    fn configure(&mut self) -> Result<()> {
        self.conn.busy_timeout(std::time::Duration::from_secs(30))?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        if self.path.is_some() {
            // WAL: readers (status pages, audit) never block the server's writes.
            let _mode: String = self
                .conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        Ok(())
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<i64> {
        schema::current_version(&self.conn)
    }

    /// The applied migrations: (id, name, applied_at), in order.
    pub fn applied_migrations(&self) -> Result<Vec<(i64, String, u64)>> {
        schema::applied(&self.conn)
    }

    /// Where this database lives (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Raw SQL access for tests that inject damage.
    #[doc(hidden)]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

pub(crate) fn si_from_blob(blob: Vec<u8>) -> Result<StorageIndex> {
    let arr: [u8; 16] = blob
        .try_into()
        .map_err(|_| LeaseDbError::Corrupt("storage index is not 16 bytes".into()))?;
    Ok(StorageIndex(arr))
}

pub(crate) fn shnum_from_db(n: i64) -> Result<ShareNum> {
    u64::try_from(n)
        .ok()
        .and_then(|n| ShareNum::try_from(n).ok())
        .ok_or_else(|| LeaseDbError::Corrupt(format!("share number {n} is not in 0..=255")))
}

pub(crate) fn key32_from_blob(blob: Vec<u8>) -> Result<[u8; 32]> {
    blob.try_into()
        .map_err(|_| LeaseDbError::Corrupt("renew key is not 32 bytes".into()))
}

pub(crate) fn to_i64(v: u64, what: &'static str) -> Result<i64> {
    i64::try_from(v).map_err(|_| LeaseDbError::Range(what))
}

//! Reconciliation: bring the database in line with the share files (the truth).
//!
//! [`reconcile_prefix`] handles one of Tahoe's 1024 two-character prefix directories, so a
//! server can spread a full pass over time with [`Crawler`] (whose position survives
//! restarts in the database). [`reconcile_all`] does every prefix (and rebuilds a fresh
//! database). [`reconcile_bucket`] does one storage index. [`startup_recovery`] settles the
//! share changes and uploads a crash interrupted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use cairn_core::cap::StorageIndex;
use rusqlite::params;

use super::shareinfo::{read_share_info, ShareInfo};
use cairn_core::ids::ShareNum;

use super::{Lease, LeaseDb, LeaseDbError, Result, ShareKey, ShareKind, Upload};

const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Tahoe's crawler prefixes: the 1024 two-character base32 prefixes, sorted.
pub fn all_prefixes() -> Vec<String> {
    let mut v: Vec<String> = (0..1024)
        .map(|i| {
            let a = B32[i >> 5] as char;
            let b = B32[i & 31] as char;
            format!("{a}{b}")
        })
        .collect();
    v.sort();
    v
}

/// One difference between the database and the disk. `Display` gives one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discrepancy {
    /// A share file with no database row.
    MissingRow {
        share: ShareKey,
        kind: ShareKind,
        size: u64,
        leases: usize,
    },
    /// A database row with no share file.
    ExtraRow {
        share: ShareKey,
        kind: ShareKind,
        size: u64,
    },
    /// The recorded size differs from the file's.
    SizeMismatch { share: ShareKey, db: u64, disk: u64 },
    /// The recorded kind differs from the file's.
    KindMismatch {
        share: ShareKey,
        db: ShareKind,
        disk: ShareKind,
    },
    /// The recorded leases differ from the file's.
    LeaseMismatch {
        share: ShareKey,
        missing: usize,
        extra: usize,
        changed: usize,
    },
    /// A reservation with no upload in `incoming/` behind it.
    OrphanReservation { share: ShareKey, bytes: u64 },
    /// A file in `incoming/` that no reservation accounts for.
    StrayIncoming { path: PathBuf, bytes: u64 },
    /// A share file that could not be parsed (left alone, never deleted).
    Unreadable { path: PathBuf, error: String },
    /// Something in the share tree that is not a share (left alone).
    UnknownEntry { path: PathBuf },
    /// A maintained usage counter differs from the recount of the rows.
    CounterDrift { detail: String },
    /// The database file did not exist.
    DatabaseMissing { path: PathBuf },
}

impl Discrepancy {
    /// Whether `fix` mode repairs this kind of difference.
    pub fn fixable(&self) -> bool {
        !matches!(
            self,
            Discrepancy::Unreadable { .. } | Discrepancy::UnknownEntry { .. }
        )
    }
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discrepancy::MissingRow { share, kind, size, leases } => write!(
                f,
                "missing row: {kind} share {share} ({size} bytes, {leases} leases) is on disk but not in the database"
            ),
            Discrepancy::ExtraRow { share, kind, size } => write!(
                f,
                "extra row: {kind} share {share} ({size} bytes) is in the database but its file is gone"
            ),
            Discrepancy::SizeMismatch { share, db, disk } => {
                write!(f, "size mismatch: share {share} is {disk} bytes on disk, {db} in the database")
            }
            Discrepancy::KindMismatch { share, db, disk } => {
                write!(f, "kind mismatch: share {share} is {disk} on disk, {db} in the database")
            }
            Discrepancy::LeaseMismatch { share, missing, extra, changed } => write!(
                f,
                "lease mismatch: share {share}: {missing} leases missing from the database, {extra} extra, {changed} with a different owner or expiration"
            ),
            Discrepancy::OrphanReservation { share, bytes } => write!(
                f,
                "orphan reservation: {bytes} bytes reserved for {share} with no upload in incoming/"
            ),
            Discrepancy::StrayIncoming { path, bytes } => write!(
                f,
                "stray incoming file: {} ({bytes} bytes) has no reservation",
                path.display()
            ),
            Discrepancy::Unreadable { path, error } => {
                write!(f, "unreadable share (left alone): {}: {error}", path.display())
            }
            Discrepancy::UnknownEntry { path } => {
                write!(f, "not a share (left alone): {}", path.display())
            }
            Discrepancy::CounterDrift { detail } => write!(f, "usage counter drift: {detail}"),
            Discrepancy::DatabaseMissing { path } => {
                write!(f, "lease database {} is missing", path.display())
            }
        }
    }
}

fn io_err(path: &Path, e: std::io::Error) -> LeaseDbError {
    LeaseDbError::io(path, e)
}

/// List a directory; a missing directory is empty.
fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| io_err(dir, e))?;
        let ft = ent.file_type().map_err(|e| io_err(&ent.path(), e))?;
        out.push((
            ent.file_name().to_string_lossy().into_owned(),
            ent.path(),
            ft.is_dir(),
        ));
    }
    out.sort();
    Ok(out)
}

/// Canonical decimal names of share numbers 0..=255; anything else is not a share file
/// (no share above 255 can be uploaded or asked for).
fn parse_shnum(name: &str) -> Option<ShareNum> {
    let n: u16 = name.parse().ok()?;
    (n.to_string() == name).then_some(n)?.try_into().ok()
}

/// Share files under one `<prefix>/` directory (of `shares/` or `shares/incoming/`):
/// (key, path), plus entries that are not shares.
/// Share files found (key, path) and entries that are not shares.
type Walk = (Vec<(ShareKey, PathBuf)>, Vec<PathBuf>);
/// Incoming files found (key, path, size) and entries that are not uploads.
type IncomingWalk = (Vec<(ShareKey, PathBuf, u64)>, Vec<PathBuf>);

fn walk_prefix(prefix_dir: &Path, prefix: &str) -> Result<Walk> {
    let mut shares = Vec::new();
    let mut unknown = Vec::new();
    for (name, path, is_dir) in list_dir(prefix_dir)? {
        let si = match StorageIndex::from_base32(&name) {
            Ok(si) if is_dir && name.len() == 26 && name.starts_with(prefix) => si,
            _ => {
                unknown.push(path);
                continue;
            }
        };
        for (fname, fpath, fdir) in list_dir(&path)? {
            match parse_shnum(&fname) {
                Some(shnum) if !fdir => shares.push((ShareKey::new(si, shnum), fpath)),
                _ => unknown.push(fpath),
            }
        }
    }
    Ok((shares, unknown))
}

fn compare_leases(db: &[Lease], disk: &[Lease]) -> (usize, usize, usize) {
    let dbm: BTreeMap<[u8; 32], &Lease> = db.iter().map(|l| (l.renew_key, l)).collect();
    let dm: BTreeMap<[u8; 32], &Lease> = disk.iter().map(|l| (l.renew_key, l)).collect();
    let missing = dm.keys().filter(|k| !dbm.contains_key(*k)).count();
    let extra = dbm.keys().filter(|k| !dm.contains_key(*k)).count();
    let changed = dm
        .iter()
        .filter(|(k, l)| dbm.get(*k).is_some_and(|d| d != *l))
        .count();
    (missing, extra, changed)
}

/// Compare one share's file with its row; returns the differences and, with `fix`,
/// makes the row match the file.
pub(crate) fn reconcile_share(
    db: &mut LeaseDb,
    key: &ShareKey,
    info: &ShareInfo,
    fix: bool,
) -> Result<Vec<Discrepancy>> {
    let mut out = Vec::new();
    match db.share(key)? {
        None => out.push(Discrepancy::MissingRow {
            share: *key,
            kind: info.kind,
            size: info.size,
            leases: info.leases.len(),
        }),
        Some((kind, size)) => {
            if kind != info.kind {
                out.push(Discrepancy::KindMismatch {
                    share: *key,
                    db: kind,
                    disk: info.kind,
                });
            }
            if size != info.size {
                out.push(Discrepancy::SizeMismatch {
                    share: *key,
                    db: size,
                    disk: info.size,
                });
            }
            let (missing, extra, changed) = compare_leases(&db.leases(key)?, &info.leases);
            if missing + extra + changed > 0 {
                out.push(Discrepancy::LeaseMismatch {
                    share: *key,
                    missing,
                    extra,
                    changed,
                });
            }
        }
    }
    if fix && !out.is_empty() {
        let tx = db
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        super::accounting::tx_add_share(&tx, key, info.kind, info.size)?;
        super::accounting::tx_set_leases(&tx, key, &info.leases)?;
        tx.commit()?;
    }
    Ok(out)
}

/// Reconcile one prefix directory (`shares/<prefix>/`) with the database: every share file
/// is read through the container module and compared with its row and leases; rows with no
/// file are extra. With `fix`, the database is changed to match the disk. Unreadable
/// files are reported and their rows left alone.
///
/// Hold the lock that serialises share mutations while this runs (it is short: one prefix
/// is about 1/1024 of the shares), or a write landing between the read of a file and the
/// fix could be undone until the next pass.
pub fn reconcile_prefix(
    storage_dir: &Path,
    db: &mut LeaseDb,
    prefix: &str,
    fix: bool,
) -> Result<Vec<Discrepancy>> {
    let dir = storage_dir.join("shares").join(prefix);
    let (on_disk, unknown) = walk_prefix(&dir, prefix)?;
    let rows = db.shares_in_prefix(prefix)?;
    reconcile_files(db, on_disk, unknown, rows, fix)
}

/// Reconcile the shares of one storage index (`shares/<prefix>/<si>/`) as
/// [`reconcile_prefix`] does a prefix: what settles a pending change.
pub fn reconcile_bucket(
    storage_dir: &Path,
    db: &mut LeaseDb,
    si: &StorageIndex,
    fix: bool,
) -> Result<Vec<Discrepancy>> {
    let probe = ShareKey::new(*si, ShareNum(0));
    let bucket = probe
        .share_path(storage_dir)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut on_disk = Vec::new();
    let mut unknown = Vec::new();
    for (name, path, is_dir) in list_dir(&bucket)? {
        match parse_shnum(&name) {
            Some(shnum) if !is_dir => on_disk.push((ShareKey::new(*si, shnum), path)),
            _ => unknown.push(path),
        }
    }
    let rows = db.shares_of(si)?;
    reconcile_files(db, on_disk, unknown, rows, fix)
}

/// Compare share files with the rows recorded for the same part of the store.
fn reconcile_files(
    db: &mut LeaseDb,
    on_disk: Vec<(ShareKey, PathBuf)>,
    unknown: Vec<PathBuf>,
    rows: Vec<(ShareKey, ShareKind, u64)>,
    fix: bool,
) -> Result<Vec<Discrepancy>> {
    let mut out: Vec<Discrepancy> = unknown
        .into_iter()
        .map(|path| Discrepancy::UnknownEntry { path })
        .collect();
    let mut seen = BTreeSet::new();
    for (key, path) in on_disk {
        seen.insert(key);
        match read_share_info(&path) {
            Ok(info) => out.extend(reconcile_share(db, &key, &info, fix)?),
            Err(e) if e.is_not_found() => {
                seen.remove(&key); // deleted while we looked: treat as absent
            }
            Err(e) => {
                out.push(Discrepancy::Unreadable {
                    path,
                    error: e.to_string(),
                });
            }
        }
    }
    for (key, kind, size) in rows {
        if seen.contains(&key) {
            continue;
        }
        out.push(Discrepancy::ExtraRow {
            share: key,
            kind,
            size,
        });
        if fix {
            db.remove_share(&key)?;
        }
    }
    Ok(out)
}

/// Reconcile every prefix (and rows whose prefix has no directory).
pub fn reconcile_all(storage_dir: &Path, db: &mut LeaseDb, fix: bool) -> Result<Vec<Discrepancy>> {
    let mut out = Vec::new();
    for p in all_prefixes() {
        out.extend(reconcile_prefix(storage_dir, db, &p, fix)?);
    }
    Ok(out)
}

/// Files under `shares/incoming/`: (key, path, size), plus non-share entries.
pub(crate) fn walk_incoming(storage_dir: &Path) -> Result<IncomingWalk> {
    let inc = storage_dir.join("shares").join("incoming");
    let mut files = Vec::new();
    let mut unknown = Vec::new();
    for (name, path, is_dir) in list_dir(&inc)? {
        if !is_dir || name.len() != 2 {
            unknown.push(path);
            continue;
        }
        let (shares, unk) = walk_prefix(&path, &name)?;
        unknown.extend(unk);
        for (key, p) in shares {
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            files.push((key, p, size));
        }
    }
    Ok((files, unknown))
}

/// Remove a file and then its bucket and prefix directories if they are left empty
/// (never `incoming/` itself).
pub(crate) fn remove_incoming_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path, e)),
    }
    if let Some(bucket) = path.parent() {
        if std::fs::remove_dir(bucket).is_ok() {
            if let Some(prefix) = bucket.parent() {
                let _ = std::fs::remove_dir(prefix);
            }
        }
    }
    Ok(())
}

/// Compare reservations with `incoming/`: a reservation needs an incoming file and an
/// incoming file needs a reservation. With `fix`, orphan reservations are released and
/// stray incoming files deleted. Only meaningful while no upload is between its
/// reservation and the creation of its file (server stopped, or lock held).
pub fn reconcile_incoming(
    storage_dir: &Path,
    db: &mut LeaseDb,
    fix: bool,
) -> Result<Vec<Discrepancy>> {
    let (files, unknown) = walk_incoming(storage_dir)?;
    let mut out: Vec<Discrepancy> = unknown
        .into_iter()
        .map(|path| Discrepancy::UnknownEntry { path })
        .collect();
    let reservations: BTreeMap<ShareKey, Upload> = db
        .reservations()?
        .into_iter()
        .map(|(u, _)| (u.share, u))
        .collect();
    let mut with_file = BTreeSet::new();
    for (key, path, bytes) in files {
        if reservations.contains_key(&key) {
            with_file.insert(key);
            continue;
        }
        if fix {
            remove_incoming_file(&path)?;
        }
        out.push(Discrepancy::StrayIncoming { path, bytes });
    }
    for (key, u) in reservations {
        if with_file.contains(&key) {
            continue;
        }
        out.push(Discrepancy::OrphanReservation {
            share: key,
            bytes: u.bytes,
        });
        if fix {
            db.release(&key)?;
        }
    }
    Ok(out)
}

/// What [`startup_recovery`] cleaned up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartupReport {
    /// Changes to share files a crash interrupted (see `changes.rs`), settled from the files.
    pub settled_changes: usize,
    /// What the database had missed of them (each one fixed).
    pub settled: Vec<Discrepancy>,
    /// Reservations left by the previous run (released).
    pub released_reservations: u64,
    pub released_bytes: u64,
    /// Partial uploads deleted from `incoming/`.
    pub removed_incoming: Vec<PathBuf>,
}

impl fmt::Display for StartupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "startup recovery: settled {} interrupted share changes ({} rows fixed), released {} reservations ({} bytes), removed {} partial uploads",
            self.settled_changes,
            self.settled.len(),
            self.released_reservations,
            self.released_bytes,
            self.removed_incoming.len()
        )?;
        for d in &self.settled {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

/// Call once at server startup, before accepting connections. First every change to share
/// files that a crash interrupted is settled: the rows of its bucket are made to match the
/// files (an upload renamed into place but not yet recorded, a mutable write, a lease
/// renewal, a garbage-collection rewrite). Then, since no upload survives a restart (Tahoe
/// deletes `incoming/` at startup, `_clean_incomplete`), every reservation is released and
/// every partial upload deleted, leaving `incoming/` itself in place. The work is
/// proportional to what was in flight, not to the size of the store.
pub fn startup_recovery(storage_dir: &Path, db: &mut LeaseDb) -> Result<StartupReport> {
    let mut settled = Vec::new();
    let pending = db.pending_changes()?;
    let settled_changes = pending.len();
    for change in pending {
        settled.extend(
            db.settle_change(storage_dir, change)?
                .into_iter()
                .filter(Discrepancy::fixable),
        );
    }
    let (n, bytes) = db.release_all_reservations()?;
    let (files, _unknown) = walk_incoming(storage_dir)?;
    let mut removed = Vec::new();
    for (_, path, _) in files {
        remove_incoming_file(&path)?;
        removed.push(path);
    }
    Ok(StartupReport {
        settled_changes,
        settled,
        released_reservations: n,
        released_bytes: bytes,
        removed_incoming: removed,
    })
}

/// One step of the background crawler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrawlStep {
    /// Prefixes reconciled in this step.
    pub prefixes: Vec<String>,
    /// What was found (and fixed).
    pub discrepancies: Vec<Discrepancy>,
    /// Set when this step finished a full cycle (counters were then also checked and
    /// repaired); the cycle number that finished.
    pub finished_cycle: Option<u64>,
}

/// The background reconciliation crawler: walks the 1024 prefixes a few at a time, fixing
/// the database, and remembers its position in the database (`crawler_state`) so a restart
/// resumes where it stopped. At the end of each cycle it also checks the usage counters
/// against a recount and repairs drift.
#[derive(Clone, Debug)]
pub struct Crawler {
    storage_dir: PathBuf,
    prefixes: Vec<String>,
}

impl Crawler {
    pub fn new(storage_dir: &Path) -> Crawler {
        Crawler {
            storage_dir: storage_dir.to_path_buf(),
            prefixes: all_prefixes(),
        }
    }

    /// (cycle, next prefix index, cycle started at, last cycle finished at).
    pub fn state(&self, db: &LeaseDb) -> Result<(u64, usize, Option<u64>, Option<u64>)> {
        Ok(db.conn.query_row(
            "SELECT cycle, next_prefix, cycle_started_at, last_cycle_finished FROM crawler_state WHERE id = 0",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as usize,
                    r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                    r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                ))
            },
        )?)
    }

    /// Reconcile (and fix) the next `max_prefixes` prefixes. Call with the share-mutation
    /// lock held, e.g. one prefix per second for a full pass in about 17 minutes.
    pub fn step(&self, db: &mut LeaseDb, max_prefixes: usize, now: u64) -> Result<CrawlStep> {
        let (cycle, mut next, started, _) = self.state(db)?;
        let mut step = CrawlStep::default();
        if started.is_none() || next == 0 {
            db.conn.execute(
                "UPDATE crawler_state SET cycle_started_at = ?1 WHERE id = 0",
                [super::to_i64(now, "time")?],
            )?;
        }
        for _ in 0..max_prefixes {
            let p = &self.prefixes[next.min(self.prefixes.len() - 1)];
            step.discrepancies
                .extend(reconcile_prefix(&self.storage_dir, db, p, true)?);
            step.prefixes.push(p.clone());
            next += 1;
            if next >= self.prefixes.len() {
                for detail in db.check_counters()? {
                    step.discrepancies
                        .push(Discrepancy::CounterDrift { detail });
                }
                db.fix_counters()?;
                db.conn.execute(
                    "UPDATE crawler_state SET cycle = ?1, next_prefix = 0, cycle_started_at = NULL,
                     last_cycle_finished = ?2 WHERE id = 0",
                    params![(cycle + 1) as i64, super::to_i64(now, "time")?],
                )?;
                step.finished_cycle = Some(cycle);
                return Ok(step);
            }
        }
        db.conn.execute(
            "UPDATE crawler_state SET next_prefix = ?1 WHERE id = 0",
            [next as i64],
        )?;
        Ok(step)
    }
}

//! `cairn storage audit DIR [--fix]`: recount every reference from the share files and
//! `incoming/`, compare with the database, print each difference, optionally fix it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::reconcile::{reconcile_all, reconcile_incoming, Discrepancy};
use super::{default_db_path, LeaseDb, Result, Usage};

/// The outcome of an audit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub storage_dir: PathBuf,
    /// Every difference found, in the order found.
    pub discrepancies: Vec<Discrepancy>,
    /// Whether fixes were applied.
    pub fixed: bool,
    /// Server totals from the database after the audit (after fixes, if any).
    pub totals: Usage,
}

impl AuditReport {
    /// No difference at all.
    pub fn is_clean(&self) -> bool {
        self.discrepancies.is_empty()
    }

    /// Differences that remain after the audit: all of them without `--fix`; the
    /// unfixable ones (unreadable shares, unknown entries) with it.
    pub fn unresolved(&self) -> usize {
        self.discrepancies
            .iter()
            .filter(|d| !self.fixed || !d.fixable())
            .count()
    }

    /// Exit status for the CLI: 0 clean, 1 differences found and all fixed, 2 differences
    /// remain. (Non-zero whenever anything was found.)
    pub fn exit_code(&self) -> i32 {
        if self.is_clean() {
            0
        } else if self.unresolved() == 0 {
            1
        } else {
            2
        }
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.discrepancies {
            let tag = if self.fixed && d.fixable() {
                "fixed"
            } else {
                "found"
            };
            writeln!(f, "{tag}: {d}")?;
        }
        writeln!(
            f,
            "audit of {}: {} discrepancies{}; {} shares ({} bytes), {} reservations ({} bytes)",
            self.storage_dir.display(),
            self.discrepancies.len(),
            if self.discrepancies.is_empty() {
                String::new()
            } else if self.fixed {
                format!(", {} left unfixed", self.unresolved())
            } else {
                " (run with --fix to repair)".to_string()
            },
            self.totals.shares,
            self.totals.share_bytes,
            self.totals.reservations,
            self.totals.reserved_bytes,
        )
    }
}

/// Audit a storage directory against an open database: usage counters against a recount
/// of the rows, every share file (kind, size, leases) against its row, every row against
/// its file, every reservation against `incoming/` and vice versa. With `fix`, the
/// database is made to match the disk, orphan reservations are released, stray incoming
/// files are deleted, and counters are recounted. Run `fix` with the server stopped: an
/// upload in flight looks like a stray or orphan.
pub fn audit(storage_dir: &Path, db: &mut LeaseDb, fix: bool) -> Result<AuditReport> {
    let mut discrepancies: Vec<Discrepancy> = db
        .check_counters()?
        .into_iter()
        .map(|detail| Discrepancy::CounterDrift { detail })
        .collect();
    discrepancies.extend(reconcile_all(storage_dir, db, fix)?);
    discrepancies.extend(reconcile_incoming(storage_dir, db, fix)?);
    if fix {
        db.fix_counters()?;
    }
    Ok(AuditReport {
        storage_dir: storage_dir.to_path_buf(),
        discrepancies,
        fixed: fix,
        totals: db.totals()?,
    })
}

/// Accept a node directory (with `storage/` inside, Tahoe's default `storage_dir`) or a
/// storage directory (with `shares/` inside).
pub fn resolve_storage_dir(dir: &Path) -> PathBuf {
    if dir.join("shares").is_dir() || dir.join(super::DB_FILE_NAME).exists() {
        dir.to_path_buf()
    } else if dir.join("storage").is_dir() || dir.join("tahoe.cfg").exists() {
        dir.join("storage")
    } else {
        dir.to_path_buf()
    }
}

/// The CLI entry point: resolve `dir`, open its database (`leasedb.sqlite`) and audit.
/// If the database is missing: without `fix`, audit against an empty in-memory database
/// (every share shows as a missing row) and write nothing; with `fix`, create it and
/// rebuild it from the share files. Print the report (`Display`) and exit with
/// [`AuditReport::exit_code`].
pub fn audit_storage_dir(dir: &Path, fix: bool, now: u64) -> Result<AuditReport> {
    let storage_dir = resolve_storage_dir(dir);
    let path = default_db_path(&storage_dir);
    if path.exists() {
        let mut db = LeaseDb::open(&path, now)?;
        return audit(&storage_dir, &mut db, fix);
    }
    let mut db = if fix {
        LeaseDb::open(&path, now)?
    } else {
        LeaseDb::open_in_memory(now)?
    };
    let mut report = audit(&storage_dir, &mut db, fix)?;
    report
        .discrepancies
        .insert(0, Discrepancy::DatabaseMissing { path });
    Ok(report)
}

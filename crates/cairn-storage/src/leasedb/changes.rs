//! Pending changes: the intent log that keeps the share files and the database in
//! agreement across a crash.
//!
//! Every change to share files (an upload moved into place, a mutable write, a lease added
//! or renewed, garbage collection's delete or copy-and-rename) is bracketed:
//!
//! 1. [`LeaseDb::begin_change`] records the storage index in `pending_changes`, durably
//!    (that one commit syncs the write-ahead log, so it survives a power cut, not only a
//!    killed process), *before* any file changes;
//! 2. the files change, and the database is updated as before;
//! 3. [`LeaseDb::end_change`] removes the record (or [`LeaseDb::settle_change`] first makes
//!    the bucket's rows match its files, when the change failed half-way).
//!
//! A crash anywhere between 1 and 3 leaves the record. At the next start, before the server
//! accepts a connection, [`super::startup_recovery`] settles every recorded bucket from its
//! files. The cost is one bucket (a few files) per change that was in flight, never a walk of
//! the store. Settling is idempotent, so a crash during recovery only repeats it.

use std::path::Path;

use cairn_core::cap::StorageIndex;
use rusqlite::params;

use super::reconcile::reconcile_bucket;
use super::{si_from_blob, to_i64, Discrepancy, LeaseDb, Result};

/// A recorded change to the share files of one storage index, not yet followed by the
/// database. End it with [`LeaseDb::end_change`] or [`LeaseDb::settle_change`]; a change
/// dropped without either stays recorded and is settled at the next start.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a change is ended or settled once the files have changed"]
pub struct PendingChange {
    id: i64,
    si: StorageIndex,
}

impl PendingChange {
    pub fn storage_index(&self) -> &StorageIndex {
        &self.si
    }
}

impl LeaseDb {
    /// Record, durably, that the share files of `si` are about to change. Call with the
    /// share-mutation lock held, before touching any file.
    pub fn begin_change(&mut self, si: &StorageIndex, now: u64) -> Result<PendingChange> {
        let durable = self.path.is_some();
        if durable {
            // In WAL mode with `synchronous = NORMAL` a commit reaches the log but not the
            // disk; FULL syncs the log on this commit (and so every commit before it).
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        let inserted = self.conn.execute(
            "INSERT INTO pending_changes (si, started_at) VALUES (?1, ?2)",
            params![&si.0[..], to_i64(now, "time")?],
        );
        let id = self.conn.last_insert_rowid();
        if durable {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        inserted?;
        Ok(PendingChange { id, si: *si })
    }

    /// The files have changed and the database follows them: forget the record.
    pub fn end_change(&mut self, change: PendingChange) -> Result<()> {
        self.conn
            .execute("DELETE FROM pending_changes WHERE id = ?1", [change.id])?;
        Ok(())
    }

    /// Make the rows of the change's bucket match its files (whatever state a failed
    /// change left them in), then forget the record. Returns what differed.
    pub fn settle_change(
        &mut self,
        storage_dir: &Path,
        change: PendingChange,
    ) -> Result<Vec<Discrepancy>> {
        let found = reconcile_bucket(storage_dir, self, &change.si, true)?;
        self.end_change(change)?;
        Ok(found)
    }

    /// Every recorded change, oldest first.
    pub fn pending_changes(&self) -> Result<Vec<PendingChange>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, si FROM pending_changes ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (id, si) = r?;
            out.push(PendingChange {
                id,
                si: si_from_blob(si)?,
            });
        }
        Ok(out)
    }
}

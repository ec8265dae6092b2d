//! The storage server's shared state (`ServerState`: store, lease database, limits, clock) and the immutable uploads in progress.

use super::*;

/// The storage server's shared state.
pub struct ServerState {
    pub store: Store,
    /// The lease database; its mutex is also the lock that serialises share mutations
    /// (allocation, completion, leases, mutable writes, the crawler and GC).
    pub db: Mutex<LeaseDb>,
    pub swissnum: Vec<u8>,
    pub nodeid: NodeId,
    pub limits: Limits,
    pub reserved_space: u64,
    pub readonly: bool,
    pub app_version: String,
    /// The date, for leases, expiry and records (see `clock`).
    pub clock: Arc<dyn Clock>,
    uploads: Mutex<HashMap<(StorageIndex, ShareNum), Arc<UploadSlot>>>,
}

/// An immutable upload in progress.
pub(super) struct UploadSlot {
    pub(super) secret: Vec<u8>,
    pub(super) allocated: u64,
    pub(super) lease: Lease,
    pub(super) last_activity: Mutex<Instant>,
    pub(super) state: tokio::sync::Mutex<UploadState>,
}

pub(super) struct UploadState {
    pub(super) file: Option<Arc<File>>,
    pub(super) written: RangeSet,
}

impl ServerState {
    pub fn new(
        store: Store,
        db: LeaseDb,
        swissnum: Vec<u8>,
        limits: Limits,
        reserved_space: u64,
        readonly: bool,
        clock: Arc<dyn Clock>,
    ) -> ServerState {
        ServerState {
            clock,
            nodeid: store.nodeid,
            store,
            db: Mutex::new(db),
            swissnum,
            limits,
            reserved_space,
            readonly,
            app_version: format!(
                "cairn/{} (Tahoe-LAFS 1.20 compatible)",
                env!("CARGO_PKG_VERSION")
            ),
            uploads: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn lock_db(&self) -> std::sync::MutexGuard<'_, LeaseDb> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn lock_uploads(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(StorageIndex, ShareNum), Arc<UploadSlot>>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of immutable uploads in progress, and the bytes they hold reserved.
    pub fn uploads_in_progress(&self) -> (usize, u64) {
        let u = self.lock_uploads();
        (u.len(), u.values().map(|s| s.allocated).sum())
    }

    /// Space a new upload may use: free disk less `reserved_space` less what uploads in
    /// progress hold (0 when readonly).
    pub fn available_space(&self) -> u64 {
        if self.readonly {
            return 0;
        }
        let disk = store::disk_available(&self.store.shares_dir, self.reserved_space).unwrap_or(0);
        disk.saturating_sub(self.uploads_in_progress().1)
    }

    /// Abort one upload: forget it, delete its `incoming/` file, release its reservation.
    /// Waits for a write in progress on it to finish first.
    pub async fn abort_upload(self: &Arc<Self>, si: StorageIndex, shnum: ShareNum) -> bool {
        let slot = self.lock_uploads().get(&(si, shnum)).cloned();
        let Some(slot) = slot else { return false };
        let mut st = slot.state.lock().await;
        let removed = {
            let mut u = self.lock_uploads();
            match u.get(&(si, shnum)) {
                Some(s) if Arc::ptr_eq(s, &slot) => u.remove(&(si, shnum)).is_some(),
                _ => false,
            }
        };
        if !removed {
            return false;
        }
        st.file = None;
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.abort_blocking(si, shnum)).await;
        true
    }

    pub(super) fn abort_blocking(&self, si: StorageIndex, shnum: ShareNum) {
        if let Err(e) = self.store.abort_incoming(&si, shnum) {
            tracing::warn!("aborting upload {}/{shnum}: {e}", si.to_base32());
        }
        if let Err(e) = self.lock_db().release(&ShareKey::new(si, shnum)) {
            tracing::warn!("releasing reservation {}/{shnum}: {e}", si.to_base32());
        }
    }

    /// Abort every upload in progress (server shutdown).
    pub async fn abort_all_uploads(self: &Arc<Self>) -> usize {
        let keys: Vec<_> = self.lock_uploads().keys().copied().collect();
        let mut n = 0;
        for (si, shnum) in keys {
            if self.abort_upload(si, shnum).await {
                n += 1;
            }
        }
        n
    }

    /// Abort uploads with no write for longer than the upload timeout. Returns how many.
    pub async fn abort_idle_uploads(self: &Arc<Self>) -> usize {
        let timeout = self.limits.upload_timeout;
        let idle: Vec<_> = self
            .lock_uploads()
            .iter()
            .filter(|(_, s)| {
                s.last_activity
                    .lock()
                    .map(|t| t.elapsed() > timeout)
                    .unwrap_or(false)
            })
            .map(|(k, _)| *k)
            .collect();
        let mut n = 0;
        for (si, shnum) in idle {
            tracing::info!(
                "upload {}/{shnum} idle for {timeout:?}: aborting",
                si.to_base32()
            );
            if self.abort_upload(si, shnum).await {
                n += 1;
            }
        }
        n
    }

    /// Change the share files of `si` with `change_files`, bracketed in the lease database:
    /// a pending change recorded durably before any file is touched, and settled after (the
    /// bucket's rows made to match its files, whatever `change_files` did or failed to do).
    /// A crash in between is settled at the next start, before a connection is accepted
    /// (`leasedb::startup_recovery`). Call with the database locked: `db` is that lock's.
    pub(super) fn change_bucket<T>(
        &self,
        db: &mut LeaseDb,
        si: &StorageIndex,
        change_files: impl FnOnce() -> Result<T, HttpError>,
    ) -> Result<T, HttpError> {
        let change = db
            .begin_change(si, self.clock.now_secs())
            .map_err(HttpError::internal)?;
        let out = change_files();
        self.settle(db, change);
        out
    }

    /// Settle a pending change now (see [`ServerState::change_bucket`]); on a database error
    /// it stays recorded and is settled at the next start.
    pub(super) fn settle(&self, db: &mut LeaseDb, change: leasedb::PendingChange) {
        let si = change.storage_index().to_base32();
        match db.settle_change(&self.store.storage_dir, change) {
            Ok(found) => {
                for d in found {
                    tracing::debug!("lease database follows {si}: {d}");
                }
            }
            Err(e) => {
                tracing::warn!("lease database update for {si}: {e} (settled at the next start)")
            }
        }
    }
}

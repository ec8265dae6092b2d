//! Lease expiry and garbage collection under Tahoe's `[storage] expire.*` settings
//! (`storage/expirer.py::LeaseCheckingCrawler.process_share`, `docs/garbage-collection.rst`).
//!
//! A lease's *grant/renew time* is `expiration − 31 days` (Tahoe's fixed-duration guess)
//! and its *age* is `now − grant/renew time`. Under:
//! * `age` mode with `expire.override_lease_duration = D`: expired iff `age > D`;
//! * `age` mode without an override: Tahoe compares the age with the lease's *absolute*
//!   expiration timestamp (`age > expiration`), which for any real timestamp is never true
//!   (a lease would need an expiration before ~1997). cairn copies this on purpose: a
//!   server switched from Tahoe to cairn must not start deleting shares Tahoe kept.
//!   [`ExpirationPolicy::warnings`] says so, for the server to log;
//! * `cutoff-date` mode: expired iff `grant/renew time < cutoff`.
//!
//! Leases of a share type excluded by `expire.immutable = false` / `expire.mutable = false`
//! never expire. A share is deleted when expiration is enabled, it has at least one lease,
//! and all of its leases are expired. Like Tahoe (which deletes a share only by cancelling
//! its last lease), a share with *no* lease records is never deleted; GC reports it.

use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::params;

use cairn_core::storage::container::{immutable_remove_leases, FileOp};

use super::shareinfo::{read_share_records, ShareRecords};
use super::{
    shnum_from_db, si_from_blob, LeaseDb, Result, ShareKey, ShareKind, DEFAULT_RENEWAL_TIME,
};
use crate::store::{rewrite_atomically_in, TMP_DIR};

pub use cairn_config::expire::{
    parse_date, parse_duration, ExpirationMode, ExpirationPolicy, PolicyError,
};

/// How the lease database applies an [`ExpirationPolicy`] (which `cairn_config` parses) to
/// its share kinds and lease records.
pub trait LeaseExpiry {
    /// Whether this share type is subject to expiry at all.
    fn applies_to(&self, kind: ShareKind) -> bool;

    /// `(mult, bound)` such that a lease is expired iff `mult * expiration < bound`.
    fn threshold(&self, now: u64) -> (i128, i128);

    /// Whether a lease with this expiration time is expired at `now` under the configured
    /// mode, ignoring `enabled` but honouring the share-type filter.
    fn lease_expired(&self, kind: ShareKind, expiration: u64, now: u64) -> bool;
}

impl LeaseExpiry for ExpirationPolicy {
    /// Whether this share type is subject to expiry at all.
    fn applies_to(&self, kind: ShareKind) -> bool {
        match kind {
            ShareKind::Immutable => self.immutable,
            ShareKind::Mutable => self.mutable,
        }
    }

    /// `(mult, bound)` such that a lease is expired iff `mult * expiration < bound`.
    fn threshold(&self, now: u64) -> (i128, i128) {
        let m = i128::from(DEFAULT_RENEWAL_TIME);
        let now = i128::from(now);
        match self.mode {
            // now − (exp − M) > D  ⇔  exp < now + M − D
            ExpirationMode::Age {
                override_lease_duration: Some(d),
            } => (1, now + m - i128::from(d)),
            // now − (exp − M) > exp  ⇔  2·exp < now + M
            ExpirationMode::Age {
                override_lease_duration: None,
            } => (2, now + m),
            // exp − M < cutoff  ⇔  exp < cutoff + M
            ExpirationMode::CutoffDate { cutoff } => (1, i128::from(cutoff) + m),
        }
    }

    /// Whether a lease with this expiration time is expired at `now` under the configured
    /// mode, ignoring `enabled` but honouring the share-type filter.
    fn lease_expired(&self, kind: ShareKind, expiration: u64, now: u64) -> bool {
        if !self.applies_to(kind) {
            return false;
        }
        let (mult, bound) = self.threshold(now);
        mult * i128::from(expiration) < bound
    }
}

/// A share whose leases have all expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiredShare {
    pub share: ShareKey,
    pub kind: ShareKind,
    pub size: u64,
}

impl LeaseDb {
    /// Shares that garbage collection would delete at `now`: of a type the policy covers,
    /// with at least one lease, all expired. From the database only (an index scan, not a
    /// disk scan). Ignores `policy.enabled` (so operators can preview).
    pub fn expired_shares(&self, policy: &ExpirationPolicy, now: u64) -> Result<Vec<ExpiredShare>> {
        let Some((k1, k2, mult, bound)) = gc_query_params(policy, now) else {
            return Ok(Vec::new());
        };
        let shares = self.shares_where(
            "s.kind IN (?1, ?2)
               AND EXISTS (SELECT 1 FROM leases AS l WHERE l.si = s.si AND l.shnum = s.shnum)
               AND NOT EXISTS (SELECT 1 FROM leases AS l
                               WHERE l.si = s.si AND l.shnum = s.shnum
                                 AND ?3 * l.expiration >= ?4)",
            params![k1, k2, mult, bound],
        )?;
        Ok(shares
            .into_iter()
            .map(|(share, kind, size)| ExpiredShare { share, kind, size })
            .collect())
    }

    /// Shares of a type the policy covers with at least one expired lease (whether or not
    /// all are): the shares a GC pass deletes or cancels leases from. Ignores
    /// `policy.enabled`.
    pub fn shares_with_expired_leases(
        &self,
        policy: &ExpirationPolicy,
        now: u64,
    ) -> Result<Vec<ShareKey>> {
        let Some((k1, k2, mult, bound)) = gc_query_params(policy, now) else {
            return Ok(Vec::new());
        };
        self.share_keys_where(
            "s.kind IN (?1, ?2)
               AND EXISTS (SELECT 1 FROM leases AS l
                           WHERE l.si = s.si AND l.shnum = s.shnum
                             AND ?3 * l.expiration < ?4)",
            params![k1, k2, mult, bound],
        )
    }

    /// Shares with no lease records at all (never deleted by GC; reported).
    pub fn leaseless_shares(&self) -> Result<Vec<ShareKey>> {
        self.share_keys_where(
            "NOT EXISTS
               (SELECT 1 FROM leases AS l WHERE l.si = s.si AND l.shnum = s.shnum)",
            [],
        )
    }

    /// The keys of the shares (`s`) that match `cond`, in order.
    fn share_keys_where<P: rusqlite::Params>(&self, cond: &str, p: P) -> Result<Vec<ShareKey>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT s.si, s.shnum FROM shares AS s WHERE {cond} ORDER BY s.si, s.shnum"
        ))?;
        let rows = stmt.query_map(p, |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (si, shnum) = r?;
            out.push(ShareKey::new(si_from_blob(si)?, shnum_from_db(shnum)?));
        }
        Ok(out)
    }
}

/// The parameters of the GC queries: the two share kinds the policy covers (the one twice
/// if it covers one; `None` if it covers none) and the lease-expiration test
/// `mult * expiration` against `bound` at `now`.
fn gc_query_params(
    policy: &ExpirationPolicy,
    now: u64,
) -> Option<(&'static str, &'static str, i64, i64)> {
    let mut kinds = Vec::new();
    if policy.immutable {
        kinds.push("immutable");
    }
    if policy.mutable {
        kinds.push("mutable");
    }
    let k1 = *kinds.first()?;
    let k2 = kinds.get(1).copied().unwrap_or(k1);
    let (mult, bound) = policy.threshold(now);
    let bound = bound.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    Some((k1, k2, mult as i64, bound))
}

/// What one garbage-collection pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Shares deleted (file removed, row removed, space returned to the account totals).
    pub removed: Vec<ExpiredShare>,
    /// Bytes freed on disk (sum of the deleted files' sizes).
    pub freed_bytes: u64,
    /// Rows whose file was already gone (removed from the database; no bytes freed).
    pub stale_rows: Vec<ShareKey>,
    /// Shares the database thought expired but whose file holds a live lease: the
    /// database was refreshed from the file and the share kept.
    pub refreshed: Vec<ShareKey>,
    /// Shares kept (they hold a live lease) whose expired leases were cancelled: removed
    /// from the container file (Tahoe's `cancel_lease`) and from the database.
    pub trimmed: Vec<ShareKey>,
    /// Number of expired leases cancelled on kept shares.
    pub cancelled_leases: usize,
    /// Shares with no lease records (kept, as Tahoe keeps them).
    pub leaseless: usize,
    /// Files that could not be read or removed (kept), with the reason.
    pub errors: Vec<(PathBuf, String)>,
}

impl fmt::Display for GcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "garbage collection: {} shares removed, {} bytes freed",
            self.removed.len(),
            self.freed_bytes
        )?;
        for r in &self.removed {
            writeln!(
                f,
                "  removed {} share {} ({} bytes)",
                r.kind, r.share, r.size
            )?;
        }
        for s in &self.stale_rows {
            writeln!(f, "  dropped database row for missing file {s}")?;
        }
        if self.cancelled_leases > 0 {
            writeln!(
                f,
                "  cancelled {} expired leases on {} kept shares",
                self.cancelled_leases,
                self.trimmed.len()
            )?;
        }
        for s in &self.refreshed {
            writeln!(
                f,
                "  kept {s}: its file holds a live lease the database had missed"
            )?;
        }
        if self.leaseless > 0 {
            writeln!(
                f,
                "  {} shares have no lease at all and are kept",
                self.leaseless
            )?;
        }
        for (p, e) in &self.errors {
            writeln!(f, "  error on {}: {e}", p.display())?;
        }
        Ok(())
    }
}

/// Delete every share whose leases have all expired at `now` (when `policy.enabled`),
/// removing the share file, its bucket directory if that is left empty (as Tahoe does for
/// emptied mutable buckets; prefix directories stay, the crawler walks them), and its
/// rows, which returns its space to the totals and account usage.
///
/// A share that keeps a live lease has its expired leases cancelled, as Tahoe's crawler
/// does (`process_share` → `cancel_lease` for each expired lease): an immutable container
/// loses the records and is truncated, a mutable one has them blanked in place. The file is
/// rewritten atomically (a copy in `STORAGE/cairn-tmp/`, `fsync`, rename), then the
/// database gets the new size and exactly the remaining leases. Bytes a truncation frees
/// count in [`GcReport::freed_bytes`].
///
/// The database only nominates candidates: before changing anything, each file's own
/// leases are read and re-checked, so a lease the database missed (a crash between a file
/// write and the database update) keeps the share alive and refreshes the database.
/// Call with the lock that serialises share mutations held (see the docs).
pub fn collect_garbage(
    storage_dir: &Path,
    db: &mut LeaseDb,
    policy: &ExpirationPolicy,
    now: u64,
) -> Result<GcReport> {
    let mut report = GcReport::default();
    if !policy.enabled {
        return Ok(report);
    }
    let all_expired_in_db: std::collections::BTreeSet<ShareKey> = db
        .expired_shares(policy, now)?
        .into_iter()
        .map(|e| e.share)
        .collect();
    let tmp_dir = storage_dir.join(TMP_DIR);
    for share in db.shares_with_expired_leases(policy, now)? {
        // Recorded before the file is touched: a crash before the database follows is
        // settled at the next start (see `changes.rs`).
        let change = db.begin_change(&share.si, now)?;
        'share: {
            let path = share.share_path(storage_dir);
            let (kind, size, records) = match read_share_records(&path) {
                Ok(r) => r,
                Err(e) if e.is_not_found() => {
                    db.remove_share(&share)?;
                    report.stale_rows.push(share);
                    break 'share;
                }
                Err(e) => {
                    report.errors.push((path, e.to_string()));
                    break 'share;
                }
            };
            let leases = records.db_leases();
            let expired = |exp: u32| policy.lease_expired(kind, u64::from(exp), now);
            let any_live = leases
                .iter()
                .any(|l| !policy.lease_expired(kind, l.expiration, now));
            if !leases.is_empty() && !any_live {
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        report.errors.push((path, e.to_string()));
                        break 'share;
                    }
                }
                if let Some(bucket) = path.parent() {
                    // Fails (harmlessly) if other shares remain.
                    let _ = std::fs::remove_dir(bucket);
                }
                db.remove_share(&share)?;
                report.freed_bytes += size;
                report.removed.push(ExpiredShare { share, kind, size });
                break 'share;
            }
            if all_expired_in_db.contains(&share) {
                report.refreshed.push(share);
            }
            // Kept: cancel its expired leases in the file, then record what is left.
            let (cancelled, ops, new_size) = match records {
                ShareRecords::Immutable { layout, leases } => {
                    let r = immutable_remove_leases(&layout, &leases, |_, l| {
                        expired(l.expiration_secs)
                    });
                    (r.removed, r.ops, r.new_file_size)
                }
                ShareRecords::Mutable { header, mut leases } => {
                    let (n, ops) =
                        leases.cancel(header.extra_lease_offset, |_, l| expired(l.expiration_secs));
                    (n, ops, size)
                }
            };
            if cancelled > 0 {
                match rewrite_share(&tmp_dir, &path, &ops) {
                    Ok(()) => {
                        report.freed_bytes += size.saturating_sub(new_size);
                        report.cancelled_leases += cancelled;
                        report.trimmed.push(share);
                    }
                    Err(e) => {
                        report.errors.push((path.clone(), e));
                    }
                }
            }
            // The database follows the file as it now is (re-read: exact, and also right if
            // the rewrite failed).
            let (final_size, leases) = match read_share_records(&path) {
                Ok((_, s, r)) => (s, r.db_leases()),
                Err(e) => {
                    report.errors.push((path, e.to_string()));
                    break 'share;
                }
            };
            db.add_share(&share, kind, final_size)?;
            db.set_leases(&share, &leases)?;
        }
        db.end_change(change)?;
    }
    report.leaseless = db.leaseless_shares()?.len();
    Ok(report)
}

fn rewrite_share(
    tmp_dir: &Path,
    path: &Path,
    ops: &[FileOp<'_>],
) -> std::result::Result<(), String> {
    rewrite_atomically_in(tmp_dir, path, None, ops).map_err(|e| e.to_string())
}

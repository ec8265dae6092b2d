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

/// `expire.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpirationMode {
    /// `age`, with `expire.override_lease_duration` in seconds if set.
    Age {
        override_lease_duration: Option<u64>,
    },
    /// `cutoff-date`, with `expire.cutoff_date` as seconds since the epoch (UTC midnight).
    CutoffDate { cutoff: u64 },
}

/// The `[storage] expire.*` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpirationPolicy {
    /// `expire.enabled` (default false: nothing is ever deleted).
    pub enabled: bool,
    pub mode: ExpirationMode,
    /// `expire.immutable` (default true).
    pub immutable: bool,
    /// `expire.mutable` (default true).
    pub mutable: bool,
}

impl Default for ExpirationPolicy {
    /// Tahoe's defaults: disabled, `age` mode, no override, both share types.
    fn default() -> Self {
        ExpirationPolicy {
            enabled: false,
            mode: ExpirationMode::Age {
                override_lease_duration: None,
            },
            immutable: true,
            mutable: true,
        }
    }
}

/// A bad `expire.*` setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("[storage] {key} = {value:?}: {reason}")]
    Bad {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("[storage] {0} is required when {1}")]
    Missing(&'static str, &'static str),
}

fn parse_bool(key: &'static str, v: &str) -> Result<bool, PolicyError> {
    // Tahoe's `_Config.get_config(..., boolean=True)` (ConfigParser.getboolean).
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(PolicyError::Bad {
            key,
            value: v.into(),
            reason: "not a boolean".into(),
        }),
    }
}

impl ExpirationPolicy {
    /// Build from the `[storage]` section, `get("expire.enabled")` etc. returning the raw
    /// value if set. Mirrors `client.py::get_anonymous_storage_server`: `expire.mode` is
    /// required when enabled (default `age` otherwise); `expire.cutoff_date` is required in
    /// `cutoff-date` mode (even when disabled, as in Tahoe); the override is parsed
    /// whenever present.
    pub fn from_config(get: impl Fn(&str) -> Option<String>) -> Result<Self, PolicyError> {
        let enabled = match get("expire.enabled") {
            Some(v) => parse_bool("expire.enabled", &v)?,
            None => false,
        };
        let mode = match get("expire.mode") {
            Some(m) => m,
            None if enabled => {
                return Err(PolicyError::Missing("expire.mode", "expire.enabled = true"))
            }
            None => "age".to_string(),
        };
        let override_d = match get("expire.override_lease_duration") {
            Some(v) => Some(parse_duration(&v).map_err(|reason| PolicyError::Bad {
                key: "expire.override_lease_duration",
                value: v.clone(),
                reason,
            })?),
            None => None,
        };
        let mode = match mode.as_str() {
            "age" => ExpirationMode::Age {
                override_lease_duration: override_d.map(|d| d.max(0) as u64),
            },
            "cutoff-date" => {
                let v = get("expire.cutoff_date").ok_or(PolicyError::Missing(
                    "expire.cutoff_date",
                    "expire.mode = cutoff-date",
                ))?;
                let cutoff = parse_date(&v).map_err(|reason| PolicyError::Bad {
                    key: "expire.cutoff_date",
                    value: v.clone(),
                    reason,
                })?;
                ExpirationMode::CutoffDate {
                    cutoff: cutoff.max(0) as u64,
                }
            }
            other => {
                return Err(PolicyError::Bad {
                    key: "expire.mode",
                    value: other.into(),
                    reason: "must be 'age' or 'cutoff-date'".into(),
                })
            }
        };
        let immutable = match get("expire.immutable") {
            Some(v) => parse_bool("expire.immutable", &v)?,
            None => true,
        };
        let mutable = match get("expire.mutable") {
            Some(v) => parse_bool("expire.mutable", &v)?,
            None => true,
        };
        Ok(ExpirationPolicy {
            enabled,
            mode,
            immutable,
            mutable,
        })
    }

    /// Things an operator should be told at startup (the server logs them).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.enabled {
            if let ExpirationMode::Age {
                override_lease_duration: None,
            } = self.mode
            {
                w.push(
                    "expire.enabled = true with expire.mode = age but no \
                     expire.override_lease_duration: as in Tahoe-LAFS, this never expires any \
                     lease. Set expire.override_lease_duration = 31 days to expire leases at \
                     their recorded expiration time."
                        .to_string(),
                );
            }
            if !self.immutable && !self.mutable {
                w.push(
                    "expire.immutable and expire.mutable are both false: nothing expires".into(),
                );
            }
        }
        w
    }

    /// Whether this share type is subject to expiry at all.
    pub fn applies_to(&self, kind: ShareKind) -> bool {
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
    pub fn lease_expired(&self, kind: ShareKind, expiration: u64, now: u64) -> bool {
        if !self.applies_to(kind) {
            return false;
        }
        let (mult, bound) = self.threshold(now);
        mult * i128::from(expiration) < bound
    }
}

/// Tahoe's `time_format.parse_duration`: a number and a unit of day(s), month(s)/mo
/// (31 days) or year(s) (365 days), e.g. "31 days", "1 month", "2mo", "1year". Negative
/// numbers are accepted as Tahoe's `int()` does. Returns seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    const DAY: i64 = 24 * 60 * 60;
    let orig = s;
    let mut s = s;
    if let Some(r) = s.strip_suffix('s') {
        s = r;
    }
    let (unit, rest) = if let Some(r) = s.strip_suffix("day") {
        (DAY, r)
    } else if let Some(r) = s.strip_suffix("month") {
        (31 * DAY, r)
    } else if let Some(r) = s.strip_suffix("mo") {
        (31 * DAY, r)
    } else if let Some(r) = s.strip_suffix("year") {
        (365 * DAY, r)
    } else {
        return Err(format!("no unit (like day, month, or year) in '{orig}'"));
    };
    let n: i64 = rest.trim().parse().map_err(|_| {
        format!(
            "not a number of {}: '{orig}'",
            if unit == DAY { "days" } else { "units" }
        )
    })?;
    n.checked_mul(unit)
        .ok_or_else(|| format!("duration too large: '{orig}'"))
}

/// Tahoe's `time_format.parse_date`: `YYYY-MM-DD` → seconds since the epoch of that day's
/// UTC midnight. Like Tahoe's regular expression, text after the date is not allowed to
/// form a time here (Tahoe appends "T00:00:00" itself); day overflow is rejected.
pub fn parse_date(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(format!("not a YYYY-MM-DD date: '{s}'"));
    }
    let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return Err(format!("not a YYYY-MM-DD date: '{s}'"));
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(format!("month or day out of range: '{s}'"));
    }
    Ok(days_from_civil(y, m, d) * 86_400)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

//! Reference counting: shares, leases and reservations, with the usage counters kept in
//! the same transaction as the rows they count.
//!
//! Counting rules (also what [`LeaseDb::recount`] recomputes from the rows):
//! * `totals`: every share once (`shares`, `share_bytes` = bytes on disk), every
//!   reservation once (`reservations`, `reserved_bytes`).
//! * `account_usage`: a share counts once for each account that holds at least one lease
//!   on it; a reservation counts for the account that made it.

use std::collections::BTreeSet;

use cairn_core::cap::StorageIndex;
use rusqlite::{params, OptionalExtension, Transaction};

use super::{
    key32_from_blob, schema, shnum_from_db, si_from_blob, to_i64, AccountId, Lease, LeaseDb,
    LeaseDbError, Result, ShareKey, ShareKind, Upload,
};

/// Usage counters (of one account, or of the whole server).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub shares: u64,
    pub share_bytes: u64,
    pub reservations: u64,
    pub reserved_bytes: u64,
}

impl Usage {
    /// Bytes in use or promised: share bytes plus reserved bytes.
    pub fn total_bytes(&self) -> u64 {
        self.share_bytes + self.reserved_bytes
    }
}

/// What [`LeaseDb::commit_upload`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Bytes of the reservation released (None: there was no reservation, e.g. a retry
    /// after the commit already happened).
    pub released: Option<u64>,
    /// Whether the share row was new.
    pub new_share: bool,
}

/// Signed deltas to apply to a counter row.
#[derive(Clone, Copy, Default)]
struct Delta {
    shares: i64,
    share_bytes: i64,
    reservations: i64,
    reserved_bytes: i64,
}

fn bump_totals(tx: &Transaction<'_>, d: Delta) -> rusqlite::Result<()> {
    // Decrements saturate at zero: a damaged counter must not make the server's normal
    // operations fail. The audit reports (and --fix repairs) any drift.
    tx.execute(
        "UPDATE totals SET
            shares = max(0, shares + ?1), share_bytes = max(0, share_bytes + ?2),
            reservations = max(0, reservations + ?3), reserved_bytes = max(0, reserved_bytes + ?4)
         WHERE id = 0",
        params![d.shares, d.share_bytes, d.reservations, d.reserved_bytes],
    )?;
    Ok(())
}

fn bump_account(tx: &Transaction<'_>, account: AccountId, d: Delta) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO account_usage (account) VALUES (?1) ON CONFLICT (account) DO NOTHING",
        [account.0],
    )?;
    tx.execute(
        "UPDATE account_usage SET
            shares = max(0, shares + ?2), share_bytes = max(0, share_bytes + ?3),
            reservations = max(0, reservations + ?4), reserved_bytes = max(0, reserved_bytes + ?5)
         WHERE account = ?1",
        params![
            account.0,
            d.shares,
            d.share_bytes,
            d.reservations,
            d.reserved_bytes
        ],
    )?;
    Ok(())
}

fn share_row(tx: &Transaction<'_>, key: &ShareKey) -> Result<Option<(ShareKind, u64)>> {
    let row: Option<(String, i64)> = tx
        .query_row(
            "SELECT kind, size FROM shares WHERE si = ?1 AND shnum = ?2",
            params![&key.si.0[..], key.shnum.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        None => Ok(None),
        Some((kind, size)) => Ok(Some((ShareKind::from_db(&kind)?, size as u64))),
    }
}

fn lease_accounts(tx: &Transaction<'_>, key: &ShareKey) -> Result<BTreeSet<AccountId>> {
    let mut stmt =
        tx.prepare_cached("SELECT DISTINCT account FROM leases WHERE si = ?1 AND shnum = ?2")?;
    let rows = stmt.query_map(params![&key.si.0[..], key.shnum.0], |r| r.get::<_, i64>(0))?;
    let mut out = BTreeSet::new();
    for r in rows {
        out.insert(AccountId(r? as u32));
    }
    Ok(out)
}

/// Run a lease mutation and charge/uncharge the share to the accounts that gained/lost
/// their last lease on it.
fn with_lease_accounting<T>(
    tx: &Transaction<'_>,
    key: &ShareKey,
    size: u64,
    f: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let before = lease_accounts(tx, key)?;
    let out = f(tx)?;
    let after = lease_accounts(tx, key)?;
    let size = to_i64(size, "share size")?;
    for a in after.difference(&before) {
        bump_account(
            tx,
            *a,
            Delta {
                shares: 1,
                share_bytes: size,
                ..Delta::default()
            },
        )?;
    }
    for a in before.difference(&after) {
        bump_account(
            tx,
            *a,
            Delta {
                shares: -1,
                share_bytes: -size,
                ..Delta::default()
            },
        )?;
    }
    Ok(out)
}

fn read_leases(tx: &rusqlite::Connection, key: &ShareKey) -> Result<Vec<Lease>> {
    let mut stmt = tx.prepare_cached(
        "SELECT account, renew_key, expiration FROM leases WHERE si = ?1 AND shnum = ?2
         ORDER BY renew_key",
    )?;
    let rows = stmt.query_map(params![&key.si.0[..], key.shnum.0], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (a, k, e) = r?;
        out.push(Lease {
            account: AccountId(a as u32),
            renew_key: key32_from_blob(k)?,
            expiration: e as u64,
        });
    }
    Ok(out)
}

// Internal single-step operations, each inside a caller's transaction.

pub(crate) fn tx_add_share(
    tx: &Transaction<'_>,
    key: &ShareKey,
    kind: ShareKind,
    size: u64,
) -> Result<bool> {
    let size_i = to_i64(size, "share size")?;
    match share_row(tx, key)? {
        Some((old_kind, old_size)) => {
            if old_kind != kind {
                tx.execute(
                    "UPDATE shares SET kind = ?3 WHERE si = ?1 AND shnum = ?2",
                    params![&key.si.0[..], key.shnum.0, kind.as_str()],
                )?;
            }
            if old_size != size {
                let delta = size_i - old_size as i64;
                tx.execute(
                    "UPDATE shares SET size = ?3 WHERE si = ?1 AND shnum = ?2",
                    params![&key.si.0[..], key.shnum.0, size_i],
                )?;
                bump_totals(
                    tx,
                    Delta {
                        share_bytes: delta,
                        ..Delta::default()
                    },
                )?;
                for a in lease_accounts(tx, key)? {
                    bump_account(
                        tx,
                        a,
                        Delta {
                            share_bytes: delta,
                            ..Delta::default()
                        },
                    )?;
                }
            }
            Ok(false)
        }
        None => {
            tx.execute(
                "INSERT INTO shares (si, shnum, prefix, kind, size) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    &key.si.0[..],
                    key.shnum.0,
                    key.prefix(),
                    kind.as_str(),
                    size_i
                ],
            )?;
            bump_totals(
                tx,
                Delta {
                    shares: 1,
                    share_bytes: size_i,
                    ..Delta::default()
                },
            )?;
            Ok(true)
        }
    }
}

pub(crate) fn tx_remove_share(tx: &Transaction<'_>, key: &ShareKey) -> Result<Option<u64>> {
    let Some((_, size)) = share_row(tx, key)? else {
        return Ok(None);
    };
    with_lease_accounting(tx, key, size, |tx| {
        tx.execute(
            "DELETE FROM leases WHERE si = ?1 AND shnum = ?2",
            params![&key.si.0[..], key.shnum.0],
        )?;
        Ok(())
    })?;
    tx.execute(
        "DELETE FROM shares WHERE si = ?1 AND shnum = ?2",
        params![&key.si.0[..], key.shnum.0],
    )?;
    bump_totals(
        tx,
        Delta {
            shares: -1,
            share_bytes: -(size as i64),
            ..Delta::default()
        },
    )?;
    Ok(Some(size))
}

pub(crate) fn tx_add_or_renew_lease(
    tx: &Transaction<'_>,
    key: &ShareKey,
    lease: &Lease,
) -> Result<()> {
    let Some((_, size)) = share_row(tx, key)? else {
        return Err(LeaseDbError::NoSuchShare { share: *key });
    };
    let exp = to_i64(lease.expiration, "lease expiration")?;
    with_lease_accounting(tx, key, size, |tx| {
        // Tahoe's renew only moves the expiration forward.
        tx.execute(
            "INSERT INTO leases (si, shnum, account, renew_key, expiration) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (si, shnum, renew_key) DO UPDATE SET
                account = excluded.account,
                expiration = max(expiration, excluded.expiration)",
            params![&key.si.0[..], key.shnum.0, lease.account.0, &lease.renew_key[..], exp],
        )?;
        Ok(())
    })
}

/// Replace the leases of a share with exactly `leases` (reconciliation from the file).
pub(crate) fn tx_set_leases(tx: &Transaction<'_>, key: &ShareKey, leases: &[Lease]) -> Result<()> {
    let Some((_, size)) = share_row(tx, key)? else {
        return Err(LeaseDbError::NoSuchShare { share: *key });
    };
    with_lease_accounting(tx, key, size, |tx| {
        tx.execute(
            "DELETE FROM leases WHERE si = ?1 AND shnum = ?2",
            params![&key.si.0[..], key.shnum.0],
        )?;
        for l in leases {
            tx.execute(
                "INSERT INTO leases (si, shnum, account, renew_key, expiration) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (si, shnum, renew_key) DO UPDATE SET
                    account = excluded.account, expiration = max(expiration, excluded.expiration)",
                params![
                    &key.si.0[..],
                    key.shnum.0,
                    l.account.0,
                    &l.renew_key[..],
                    to_i64(l.expiration, "lease expiration")?
                ],
            )?;
        }
        Ok(())
    })
}

pub(crate) fn tx_release(tx: &Transaction<'_>, key: &ShareKey) -> Result<Option<u64>> {
    let row: Option<(i64, i64)> = tx
        .query_row(
            "SELECT account, bytes FROM reservations WHERE si = ?1 AND shnum = ?2",
            params![&key.si.0[..], key.shnum.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((account, bytes)) = row else {
        return Ok(None);
    };
    tx.execute(
        "DELETE FROM reservations WHERE si = ?1 AND shnum = ?2",
        params![&key.si.0[..], key.shnum.0],
    )?;
    let d = Delta {
        reservations: -1,
        reserved_bytes: -bytes,
        ..Delta::default()
    };
    bump_totals(tx, d)?;
    bump_account(tx, AccountId(account as u32), d)?;
    Ok(Some(bytes as u64))
}

impl LeaseDb {
    fn write_tx(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    // ---- reservations ---------------------------------------------------------------

    /// Reserve space for an upload in progress (call on allocate, once per new share
    /// writer, before creating its `incoming/` file). Returns `true` if the reservation is
    /// new, `false` if an identical one already exists (a retried call). A *different*
    /// reservation for the same share is an error: one writer per share.
    ///
    /// Mirror: [`LeaseDb::release`] (abort, disconnect, timeout, shutdown) or
    /// [`LeaseDb::commit_upload`] (completion); after a crash,
    /// [`LeaseDb::release_all_reservations`] / [`super::startup_recovery`].
    pub fn reserve(&mut self, upload: &Upload, now: u64) -> Result<bool> {
        let tx = self.write_tx()?;
        let key = upload.share;
        let existing: Option<(i64, i64)> = tx
            .query_row(
                "SELECT account, bytes FROM reservations WHERE si = ?1 AND shnum = ?2",
                params![&key.si.0[..], key.shnum.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((account, bytes)) = existing {
            if account as u32 == upload.account.0 && bytes as u64 == upload.bytes {
                return Ok(false);
            }
            return Err(LeaseDbError::ReservationConflict { share: key });
        }
        let bytes = to_i64(upload.bytes, "reservation size")?;
        tx.execute(
            "INSERT INTO reservations (si, shnum, account, bytes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![&key.si.0[..], key.shnum.0, upload.account.0, bytes, to_i64(now, "time")?],
        )?;
        let d = Delta {
            reservations: 1,
            reserved_bytes: bytes,
            ..Delta::default()
        };
        bump_totals(&tx, d)?;
        bump_account(&tx, upload.account, d)?;
        tx.commit()?;
        Ok(true)
    }

    /// Release an upload's reservation (abort, client disconnect, timeout, shutdown).
    /// Idempotent: returns the bytes released, or `None` if there was no reservation
    /// (already released or committed) — never a negative count.
    pub fn release(&mut self, share: &ShareKey) -> Result<Option<u64>> {
        let tx = self.write_tx()?;
        let out = tx_release(&tx, share)?;
        tx.commit()?;
        Ok(out)
    }

    /// Release every reservation (startup after a crash, and server shutdown once all
    /// writers are gone). Returns (count, bytes). Prefer [`super::startup_recovery`] at
    /// startup: it also clears `incoming/`.
    pub fn release_all_reservations(&mut self) -> Result<(u64, u64)> {
        let tx = self.write_tx()?;
        let (n, bytes): (i64, i64) = tx.query_row(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM reservations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        tx.execute("DELETE FROM reservations", [])?;
        tx.execute(
            "UPDATE account_usage SET reservations = 0, reserved_bytes = 0",
            [],
        )?;
        tx.execute(
            "UPDATE totals SET reservations = 0, reserved_bytes = 0 WHERE id = 0",
            [],
        )?;
        tx.commit()?;
        Ok((n as u64, bytes as u64))
    }

    /// The reservations held, with their creation times: (upload, created_at).
    pub fn reservations(&self) -> Result<Vec<(Upload, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT si, shnum, account, bytes, created_at FROM reservations ORDER BY si, shnum",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (si, shnum, a, b, c) = r?;
            out.push((
                Upload {
                    share: ShareKey::new(si_from_blob(si)?, shnum_from_db(shnum)?),
                    account: AccountId(a as u32),
                    bytes: b as u64,
                },
                c as u64,
            ));
        }
        Ok(out)
    }

    /// Complete an upload (after the `incoming/` file has been renamed into `shares/`):
    /// atomically release its reservation, record the immutable share with its size on
    /// disk, and add or renew its lease. Idempotent: a retry finds no reservation and
    /// re-applies the share and lease unchanged.
    pub fn commit_upload(
        &mut self,
        share: &ShareKey,
        size_on_disk: u64,
        lease: &Lease,
    ) -> Result<CommitOutcome> {
        let tx = self.write_tx()?;
        let released = tx_release(&tx, share)?;
        let new_share = tx_add_share(&tx, share, ShareKind::Immutable, size_on_disk)?;
        tx_add_or_renew_lease(&tx, share, lease)?;
        tx.commit()?;
        Ok(CommitOutcome {
            released,
            new_share,
        })
    }

    // ---- shares -----------------------------------------------------------------------

    /// Record a share, or update its kind and size if it is already recorded (call after
    /// each mutable write with the container's new size on disk; immutable shares come in
    /// through [`LeaseDb::commit_upload`]). Returns `true` if the row is new.
    /// Mirror: [`LeaseDb::remove_share`].
    pub fn add_share(
        &mut self,
        share: &ShareKey,
        kind: ShareKind,
        size_on_disk: u64,
    ) -> Result<bool> {
        let tx = self.write_tx()?;
        let out = tx_add_share(&tx, share, kind, size_on_disk)?;
        tx.commit()?;
        Ok(out)
    }

    /// Forget a share and all its leases (after deleting its file: a mutable write with
    /// new length 0, or garbage collection). Idempotent: returns the share's recorded size,
    /// or `None` if it was not recorded.
    pub fn remove_share(&mut self, share: &ShareKey) -> Result<Option<u64>> {
        let tx = self.write_tx()?;
        let out = tx_remove_share(&tx, share)?;
        tx.commit()?;
        Ok(out)
    }

    /// The recorded kind and size of a share.
    pub fn share(&self, share: &ShareKey) -> Result<Option<(ShareKind, u64)>> {
        let row: Option<(String, i64)> = self
            .conn
            .query_row(
                "SELECT kind, size FROM shares WHERE si = ?1 AND shnum = ?2",
                params![&share.si.0[..], share.shnum.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            None => Ok(None),
            Some((k, s)) => Ok(Some((ShareKind::from_db(&k)?, s as u64))),
        }
    }

    /// All recorded shares (kind and size), in key order.
    pub fn shares(&self) -> Result<Vec<(ShareKey, ShareKind, u64)>> {
        self.shares_where("1 = 1", [])
    }

    pub(crate) fn shares_in_prefix(&self, prefix: &str) -> Result<Vec<(ShareKey, ShareKind, u64)>> {
        self.shares_where("prefix = ?1", [prefix])
    }

    /// The recorded shares of one storage index.
    pub(crate) fn shares_of(&self, si: &StorageIndex) -> Result<Vec<(ShareKey, ShareKind, u64)>> {
        self.shares_where("si = ?1", [&si.0[..]])
    }

    /// The shares (`s`) that match `cond`, in order.
    pub(super) fn shares_where<P: rusqlite::Params>(
        &self,
        cond: &str,
        p: P,
    ) -> Result<Vec<(ShareKey, ShareKind, u64)>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT s.si, s.shnum, s.kind, s.size FROM shares AS s WHERE {cond} ORDER BY s.si, s.shnum"
        ))?;
        let rows = stmt.query_map(p, |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (si, shnum, kind, size) = r?;
            out.push((
                ShareKey::new(si_from_blob(si)?, shnum_from_db(shnum)?),
                ShareKind::from_db(&kind)?,
                size as u64,
            ));
        }
        Ok(out)
    }

    // ---- leases -----------------------------------------------------------------------

    /// Add a lease, or renew the one with the same renew key (expiration only moves
    /// forward, as in Tahoe). Call after the container file has been updated: on
    /// allocate for shares the server already holds, on `add_lease` / renew requests, and
    /// on every successful mutable write. The share must be recorded.
    /// Mirror: [`LeaseDb::remove_lease`].
    pub fn add_or_renew_lease(&mut self, share: &ShareKey, lease: &Lease) -> Result<()> {
        let tx = self.write_tx()?;
        tx_add_or_renew_lease(&tx, share, lease)?;
        tx.commit()?;
        Ok(())
    }

    /// Remove one lease (identified by its renew key). Idempotent: returns whether a lease
    /// was removed. The share stays recorded (deleting a share is [`LeaseDb::remove_share`]).
    pub fn remove_lease(&mut self, share: &ShareKey, renew_key: &[u8; 32]) -> Result<bool> {
        let tx = self.write_tx()?;
        let Some((_, size)) = share_row(&tx, share)? else {
            return Ok(false);
        };
        let n = with_lease_accounting(&tx, share, size, |tx| {
            Ok(tx.execute(
                "DELETE FROM leases WHERE si = ?1 AND shnum = ?2 AND renew_key = ?3",
                params![&share.si.0[..], share.shnum.0, &renew_key[..]],
            )?)
        })?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Replace a share's leases with exactly these (after rewriting a container's lease
    /// list, or from reconciliation).
    pub fn set_leases(&mut self, share: &ShareKey, leases: &[Lease]) -> Result<()> {
        let tx = self.write_tx()?;
        tx_set_leases(&tx, share, leases)?;
        tx.commit()?;
        Ok(())
    }

    /// The leases recorded for a share, ordered by renew key.
    pub fn leases(&self, share: &ShareKey) -> Result<Vec<Lease>> {
        read_leases(&self.conn, share)
    }

    // ---- usage ------------------------------------------------------------------------

    /// Server-wide usage (maintained counters: no scan of the disk or of the tables).
    pub fn totals(&self) -> Result<Usage> {
        Ok(self.conn.query_row(
            "SELECT shares, share_bytes, reservations, reserved_bytes FROM totals WHERE id = 0",
            [],
            usage_from_row,
        )?)
    }

    /// One account's usage (maintained counters). Unknown accounts have zero usage.
    pub fn usage(&self, account: AccountId) -> Result<Usage> {
        Ok(self
            .conn
            .query_row(
                "SELECT shares, share_bytes, reservations, reserved_bytes FROM account_usage
                 WHERE account = ?1",
                [account.0],
                usage_from_row,
            )
            .optional()?
            .unwrap_or_default())
    }

    /// Every account with a counter row, and its usage.
    pub fn all_usage(&self) -> Result<Vec<(AccountId, Usage)>> {
        let mut stmt = self.conn.prepare(
            "SELECT account, shares, share_bytes, reservations, reserved_bytes FROM account_usage
             ORDER BY account",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                AccountId(r.get::<_, i64>(0)? as u32),
                Usage {
                    shares: r.get::<_, i64>(1)? as u64,
                    share_bytes: r.get::<_, i64>(2)? as u64,
                    reservations: r.get::<_, i64>(3)? as u64,
                    reserved_bytes: r.get::<_, i64>(4)? as u64,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Bytes reserved by uploads in progress (Tahoe's `allocated_size()`), subtracted from
    /// free space when deciding whether to accept an allocation.
    pub fn reserved_bytes(&self) -> Result<u64> {
        Ok(self.totals()?.reserved_bytes)
    }

    /// Recompute every counter from the rows (not from the disk): (totals, per-account).
    /// Used by the audit and by tests to check the maintained counters.
    pub fn recount(&self) -> Result<(Usage, Vec<(AccountId, Usage)>)> {
        let totals = self.conn.query_row(
            "SELECT (SELECT count(*) FROM shares), (SELECT coalesce(sum(size), 0) FROM shares),
                    (SELECT count(*) FROM reservations), (SELECT coalesce(sum(bytes), 0) FROM reservations)",
            [],
            usage_from_row,
        )?;
        let mut per: std::collections::BTreeMap<AccountId, Usage> = Default::default();
        let held = "SELECT held.account, count(*), coalesce(sum(s.size), 0)
                    FROM (SELECT DISTINCT si, shnum, account FROM leases) AS held
                    JOIN shares AS s ON s.si = held.si AND s.shnum = held.shnum
                    GROUP BY held.account";
        for (account, n, bytes) in self.per_account_counts(held)? {
            let u = per.entry(account).or_default();
            u.shares = n;
            u.share_bytes = bytes;
        }
        let reserved =
            "SELECT account, count(*), coalesce(sum(bytes), 0) FROM reservations GROUP BY account";
        for (account, n, bytes) in self.per_account_counts(reserved)? {
            let u = per.entry(account).or_default();
            u.reservations = n;
            u.reserved_bytes = bytes;
        }
        Ok((totals, per.into_iter().collect()))
    }

    /// Rows of `(account, count, bytes)` from a `GROUP BY account` query.
    fn per_account_counts(&self, sql: &str) -> Result<Vec<(AccountId, u64, u64)>> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                AccountId(r.get::<_, i64>(0)? as u32),
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Compare the maintained counters with [`LeaseDb::recount`]; returns one line per
    /// difference (empty when exact). Accounts whose counters are all zero are ignored.
    pub fn check_counters(&self) -> Result<Vec<String>> {
        let (totals, per) = self.recount()?;
        let mut out = Vec::new();
        let kept = self.totals()?;
        if kept != totals {
            out.push(format!(
                "server totals are {kept:?}, recount gives {totals:?}"
            ));
        }
        let mut kept_per: std::collections::BTreeMap<AccountId, Usage> = self
            .all_usage()?
            .into_iter()
            .filter(|(_, u)| *u != Usage::default())
            .collect();
        for (a, u) in per {
            let k = kept_per.remove(&a).unwrap_or_default();
            if k != u {
                out.push(format!(
                    "account {} usage is {k:?}, recount gives {u:?}",
                    a.0
                ));
            }
        }
        for (a, k) in kept_per {
            out.push(format!(
                "account {} usage is {k:?}, recount gives {:?}",
                a.0,
                Usage::default()
            ));
        }
        Ok(out)
    }

    /// Reset every counter to the recount (what migration 3 and `audit --fix` do).
    pub fn fix_counters(&mut self) -> Result<()> {
        let tx = self.write_tx()?;
        schema::recount_counters(&tx)?;
        tx.commit()?;
        Ok(())
    }
}

fn usage_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Usage> {
    Ok(Usage {
        shares: r.get::<_, i64>(0)? as u64,
        share_bytes: r.get::<_, i64>(1)? as u64,
        reservations: r.get::<_, i64>(2)? as u64,
        reserved_bytes: r.get::<_, i64>(3)? as u64,
    })
}

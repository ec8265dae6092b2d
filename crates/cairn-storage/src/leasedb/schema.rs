//! Schema version and the ordered list of migrations.
//!
//! Each migration runs in its own transaction together with the row that records it in
//! `schema_migrations(id, name, applied_at)`, so it is applied exactly once per database:
//! either both commit or neither does. The schema version is the highest recorded id. A
//! database whose version is higher than [`SCHEMA_VERSION`] is refused.
//!
//! Rules for adding a migration: append (never reorder, renumber or edit a released one);
//! a migration that repairs damage an older version may have left (like
//! `recount_usage_totals`) is just another entry, and so also runs once and only once.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{LeaseDbError, Result};

/// One schema migration.
#[derive(Clone, Copy)]
pub struct Migration {
    /// 1-based position in the list; recorded in `schema_migrations.id`.
    pub id: i64,
    /// Stable name, recorded alongside the id and checked on open.
    pub name: &'static str,
    /// The change, run inside the migration's transaction.
    pub apply: fn(&Transaction<'_>) -> rusqlite::Result<()>,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Migration({}, {})", self.id, self.name)
    }
}

/// Every migration this cairn knows, in order.
pub static MIGRATIONS: &[Migration] = &[
    Migration {
        id: 1,
        name: "initial_schema",
        apply: m1_initial_schema,
    },
    Migration {
        id: 2,
        name: "crawler_state",
        apply: m2_crawler_state,
    },
    Migration {
        id: 3,
        name: "recount_usage_totals",
        apply: m3_recount_usage_totals,
    },
    Migration {
        id: 4,
        name: "pending_changes",
        apply: m4_pending_changes,
    },
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = 4;

fn m1_initial_schema(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "
        CREATE TABLE shares (
            si     BLOB    NOT NULL CHECK (length(si) = 16),
            shnum  INTEGER NOT NULL CHECK (shnum >= 0 AND shnum < 65536),
            prefix TEXT    NOT NULL,
            kind   TEXT    NOT NULL CHECK (kind IN ('immutable', 'mutable')),
            size   INTEGER NOT NULL CHECK (size >= 0),
            PRIMARY KEY (si, shnum)
        ) WITHOUT ROWID;
        CREATE INDEX shares_by_prefix ON shares (prefix);

        CREATE TABLE leases (
            si         BLOB    NOT NULL,
            shnum      INTEGER NOT NULL,
            account    INTEGER NOT NULL CHECK (account >= 0),
            renew_key  BLOB    NOT NULL CHECK (length(renew_key) = 32),
            expiration INTEGER NOT NULL CHECK (expiration >= 0),
            PRIMARY KEY (si, shnum, renew_key),
            FOREIGN KEY (si, shnum) REFERENCES shares (si, shnum) ON DELETE CASCADE
        ) WITHOUT ROWID;
        CREATE INDEX leases_by_expiration ON leases (expiration);
        CREATE INDEX leases_by_account ON leases (account);

        CREATE TABLE reservations (
            si         BLOB    NOT NULL CHECK (length(si) = 16),
            shnum      INTEGER NOT NULL,
            account    INTEGER NOT NULL CHECK (account >= 0),
            bytes      INTEGER NOT NULL CHECK (bytes >= 0),
            created_at INTEGER NOT NULL,
            PRIMARY KEY (si, shnum)
        ) WITHOUT ROWID;

        -- Maintained counters. account_usage: a share counts once for each account holding
        -- at least one lease on it; reservations count for their account.
        CREATE TABLE account_usage (
            account        INTEGER PRIMARY KEY,
            shares         INTEGER NOT NULL DEFAULT 0 CHECK (shares >= 0),
            share_bytes    INTEGER NOT NULL DEFAULT 0 CHECK (share_bytes >= 0),
            reservations   INTEGER NOT NULL DEFAULT 0 CHECK (reservations >= 0),
            reserved_bytes INTEGER NOT NULL DEFAULT 0 CHECK (reserved_bytes >= 0)
        );
        -- Server-wide counters: every share once, every reservation once.
        CREATE TABLE totals (
            id             INTEGER PRIMARY KEY CHECK (id = 0),
            shares         INTEGER NOT NULL CHECK (shares >= 0),
            share_bytes    INTEGER NOT NULL CHECK (share_bytes >= 0),
            reservations   INTEGER NOT NULL CHECK (reservations >= 0),
            reserved_bytes INTEGER NOT NULL CHECK (reserved_bytes >= 0)
        );
        INSERT INTO totals VALUES (0, 0, 0, 0, 0);
        ",
    )
}

fn m2_crawler_state(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "
        CREATE TABLE crawler_state (
            id                  INTEGER PRIMARY KEY CHECK (id = 0),
            cycle               INTEGER NOT NULL,
            next_prefix         INTEGER NOT NULL,
            cycle_started_at    INTEGER,
            last_cycle_finished INTEGER
        );
        INSERT INTO crawler_state VALUES (0, 0, 0, NULL, NULL);
        ",
    )
}

/// Repair: recompute every counter from the rows. Databases written before the counters
/// were kept in lock-step with the rows (development builds) can carry drift; this
/// recount fixes them once. It is also what `audit --fix` does for counters.
fn m3_recount_usage_totals(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    recount_counters(tx)
}

/// The intent log (`changes.rs`): a storage index whose share files are being changed.
fn m4_pending_changes(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "
        CREATE TABLE pending_changes (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            si         BLOB    NOT NULL CHECK (length(si) = 16),
            started_at INTEGER NOT NULL
        );
        ",
    )
}

/// Recompute `account_usage` and `totals` from `shares`, `leases` and `reservations`.
pub(crate) fn recount_counters(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "
        DELETE FROM account_usage;
        INSERT INTO account_usage (account, shares, share_bytes, reservations, reserved_bytes)
        SELECT account, sum(shares), sum(share_bytes), sum(reservations), sum(reserved_bytes)
        FROM (
            SELECT held.account AS account, count(*) AS shares, coalesce(sum(s.size), 0) AS share_bytes,
                   0 AS reservations, 0 AS reserved_bytes
            FROM (SELECT DISTINCT si, shnum, account FROM leases) AS held
            JOIN shares AS s ON s.si = held.si AND s.shnum = held.shnum
            GROUP BY held.account
            UNION ALL
            SELECT account, 0, 0, count(*), coalesce(sum(bytes), 0)
            FROM reservations GROUP BY account
        )
        GROUP BY account;
        INSERT OR REPLACE INTO totals (id, shares, share_bytes, reservations, reserved_bytes)
        VALUES (0,
            (SELECT count(*) FROM shares),
            (SELECT coalesce(sum(size), 0) FROM shares),
            (SELECT count(*) FROM reservations),
            (SELECT coalesce(sum(bytes), 0) FROM reservations));
        ",
    )
}

const BOOTSTRAP: &str = "
    CREATE TABLE IF NOT EXISTS schema_migrations (
        id         INTEGER PRIMARY KEY,
        name       TEXT    NOT NULL,
        applied_at INTEGER NOT NULL
    );";

pub(crate) fn current_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT coalesce(max(id), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?)
}

pub(crate) fn applied(conn: &Connection) -> Result<Vec<(i64, String, u64)>> {
    let mut stmt =
        conn.prepare("SELECT id, name, applied_at FROM schema_migrations ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)? as u64,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Apply `migrations[..upto]` that are not yet recorded.
pub(crate) fn migrate(
    conn: &mut Connection,
    display_path: &str,
    migrations: &[Migration],
    upto: usize,
    now: u64,
) -> Result<()> {
    conn.execute_batch(BOOTSTRAP)?;
    let known = migrations.len() as i64;
    let found = current_version(conn)?;
    if found > known {
        return Err(LeaseDbError::TooNew {
            path: display_path.to_string(),
            found,
            known,
        });
    }
    let now = super::to_i64(now, "migration time")?;
    for m in migrations.iter().take(upto) {
        // IMMEDIATE: take the write lock before looking, so two processes opening the same
        // database at once cannot both decide to apply the same migration.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let recorded: Option<String> = tx
            .query_row(
                "SELECT name FROM schema_migrations WHERE id = ?1",
                [m.id],
                |r| r.get(0),
            )
            .optional()?;
        match recorded {
            Some(name) if name == m.name => continue,
            Some(name) => {
                return Err(LeaseDbError::MigrationMismatch {
                    id: m.id,
                    found: name,
                    expected: m.name.to_string(),
                })
            }
            None => {}
        }
        (m.apply)(&tx).map_err(|source| LeaseDbError::MigrationFailed {
            id: m.id,
            name: m.name,
            source,
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (id, name, applied_at) VALUES (?1, ?2, ?3)",
            params![m.id, m.name, now],
        )?;
        tx.commit()?;
    }
    Ok(())
}

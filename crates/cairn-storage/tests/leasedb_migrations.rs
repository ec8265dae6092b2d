//! The schema's ordered migrations: each applied exactly once per database.

use cairn_storage::leasedb::{
    AccountId, LeaseDb, LeaseDbError, Migration, ShareKind, Upload, MIGRATIONS, SCHEMA_VERSION,
};
use cairn_test_support::containers::*;

#[test]
fn fresh_database_applies_every_migration_once() {
    let (_t, dir) = tempdir();
    let path = dir.join("leasedb.sqlite");
    let db = LeaseDb::open(&path, 1000).unwrap();
    assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
    let applied = db.applied_migrations().unwrap();
    let names: Vec<_> = applied
        .iter()
        .map(|(id, n, t)| (*id, n.as_str(), *t))
        .collect();
    assert_eq!(
        names,
        vec![
            (1, "initial_schema", 1000),
            (2, "crawler_state", 1000),
            (3, "recount_usage_totals", 1000),
            (4, "pending_changes", 1000)
        ]
    );
    drop(db);
    // Re-opening later applies nothing: the records keep their first applied_at.
    let db = LeaseDb::open(&path, 5000).unwrap();
    assert_eq!(db.applied_migrations().unwrap(), applied);
}

#[test]
fn old_database_gets_exactly_the_later_migrations_and_the_repair_runs_once() {
    let (_t, dir) = tempdir();
    let path = dir.join("leasedb.sqlite");
    // A database written by an older cairn that knew only migrations 1 and 2 ...
    {
        let mut db = LeaseDb::open_upto(&path, 2, 100).unwrap();
        assert_eq!(db.schema_version().unwrap(), 2);
        let k = key(1, 0);
        db.add_share(&k, ShareKind::Immutable, 1000).unwrap();
        db.add_or_renew_lease(&k, &lease(0, 1, 5000)).unwrap();
        db.reserve(
            &Upload {
                share: key(2, 0),
                account: AccountId(0),
                bytes: 77,
            },
            100,
        )
        .unwrap();
        // ... which left damage: an old release path that skipped its decrement.
        db.connection()
            .execute_batch(
                "UPDATE totals SET reserved_bytes = reserved_bytes + 500, share_bytes = 3;
                 UPDATE account_usage SET share_bytes = 42 WHERE account = 0;",
            )
            .unwrap();
        assert!(!db.check_counters().unwrap().is_empty());
    }
    // Upgrading applies migration 3 (the repair) and every later one, once.
    let db = LeaseDb::open(&path, 200).unwrap();
    let applied = db.applied_migrations().unwrap();
    let later = (3..=SCHEMA_VERSION).map(|i| (i, 200));
    assert_eq!(
        applied.iter().map(|(i, _, t)| (*i, *t)).collect::<Vec<_>>(),
        [(1, 100), (2, 100)]
            .into_iter()
            .chain(later)
            .collect::<Vec<_>>()
    );
    assert!(
        db.check_counters().unwrap().is_empty(),
        "{:?}",
        db.check_counters().unwrap()
    );
    assert_eq!(db.totals().unwrap().reserved_bytes, 77);
    assert_eq!(db.usage(AccountId(0)).unwrap().share_bytes, 1000);
    // Damage after the upgrade is NOT silently re-repaired on the next open: the repair
    // ran once and only once (the audit is what finds later drift).
    db.connection()
        .execute("UPDATE totals SET share_bytes = 1", [])
        .unwrap();
    drop(db);
    let db = LeaseDb::open(&path, 300).unwrap();
    assert_eq!(db.applied_migrations().unwrap(), applied);
    assert_eq!(db.totals().unwrap().share_bytes, 1);
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn counting(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tx.execute_batch("CREATE TABLE extra (x INTEGER)")
}

fn failing(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch("CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;")
}

#[test]
fn a_migration_runs_once_and_a_failed_one_leaves_nothing_behind() {
    let (_t, dir) = tempdir();
    let path = dir.join("leasedb.sqlite");
    let mut list: Vec<Migration> = MIGRATIONS.to_vec();
    let next = SCHEMA_VERSION + 1;
    list.push(Migration {
        id: next,
        name: "test_counting",
        apply: counting,
    });
    for now in [1, 2, 3] {
        LeaseDb::open_with_migrations(&path, &list, list.len(), now).unwrap();
    }
    assert_eq!(RUNS.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A failing migration rolls back entirely and is not recorded; the database stays at
    // the previous version.
    list.push(Migration {
        id: next + 1,
        name: "test_failing",
        apply: failing,
    });
    let err = LeaseDb::open_with_migrations(&path, &list, list.len(), 4).unwrap_err();
    assert!(
        matches!(err, LeaseDbError::MigrationFailed { id, .. } if id == next + 1),
        "{err}"
    );
    let db = LeaseDb::open_with_migrations(&path, &list, list.len() - 1, 5).unwrap();
    assert_eq!(db.schema_version().unwrap(), next);
    let n: i64 = db
        .connection()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'half_done'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn newer_database_is_refused_with_a_clear_error() {
    let (_t, dir) = tempdir();
    let path = dir.join("leasedb.sqlite");
    let mut list: Vec<Migration> = MIGRATIONS.to_vec();
    list.push(Migration {
        id: SCHEMA_VERSION + 1,
        name: "from_the_future",
        apply: counting,
    });
    LeaseDb::open_with_migrations(&path, &list, list.len(), 1).unwrap();
    let err = LeaseDb::open(&path, 2).unwrap_err();
    match &err {
        LeaseDbError::TooNew { found, known, .. }
            if *found == SCHEMA_VERSION + 1 && *known == SCHEMA_VERSION => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn renamed_migration_is_detected() {
    let (_t, dir) = tempdir();
    let path = dir.join("leasedb.sqlite");
    LeaseDb::open(&path, 1).unwrap();
    let mut list: Vec<Migration> = MIGRATIONS.to_vec();
    list[1].name = "something_else";
    let err = LeaseDb::open_with_migrations(&path, &list, list.len(), 2).unwrap_err();
    assert!(
        matches!(err, LeaseDbError::MigrationMismatch { id: 2, .. }),
        "{err}"
    );
}

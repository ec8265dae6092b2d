//! Reconciliation, rebuild, crawler and audit against share files on disk.

use cairn_storage::leasedb::shareinfo::read_share_info;
use cairn_storage::leasedb::{
    audit, audit_storage_dir, reconcile_prefix, AccountId, Crawler, Discrepancy, LeaseDb,
    ShareInfo, ShareKind, Upload,
};
use cairn_test_support::containers::*;

/// Three shares (two immutable in one bucket, one mutable) recorded in a database.
fn populated() -> (tempfile::TempDir, std::path::PathBuf, LeaseDb) {
    let (t, dir) = tempdir();
    let (mut db, rebuilt) = LeaseDb::open_or_rebuild(&dir, 0).unwrap();
    assert_eq!(rebuilt, Some(vec![]));
    let a = key(1, 0);
    let b = key(1, 1);
    let c = key(2, 4);
    let sa = put_immutable(&dir, &a, 100, &[record(0, 1, 5000, false)]);
    db.commit_upload(&a, sa, &lease(0, 1, 5000)).unwrap();
    let sb = put_immutable(
        &dir,
        &b,
        100,
        &[record(0, 1, 5000, false), record(1, 2, 6000, false)],
    );
    db.commit_upload(&b, sb, &lease(0, 1, 5000)).unwrap();
    db.add_or_renew_lease(&b, &lease(1, 2, 6000)).unwrap();
    let sc = put_mutable(&dir, &c, 300, &[(1, 3, 7000)]);
    db.add_share(&c, ShareKind::Mutable, sc).unwrap();
    db.add_or_renew_lease(&c, &lease(1, 3, 7000)).unwrap();
    let r = audit(&dir, &mut db, false).unwrap();
    assert!(r.is_clean(), "{r}");
    assert_eq!(r.exit_code(), 0);
    (t, dir, db)
}

#[test]
fn share_info_reads_kind_size_and_leases_through_the_container_module() {
    let (_t, dir) = tempdir();
    let k = key(3, 0);
    let size = put_mutable(
        &dir,
        &k,
        50,
        &[(1, 1, 10), (1, 2, 20), (1, 3, 30), (1, 4, 40), (1, 5, 50)],
    );
    let info: ShareInfo = read_share_info(&k.share_path(&dir)).unwrap();
    assert_eq!(info.kind, ShareKind::Mutable);
    assert_eq!(info.size, size);
    assert_eq!(info.leases.len(), 5, "4 slots + 1 extra lease");
    let k2 = key(3, 1);
    let size2 = put_immutable(&dir, &k2, 633, &[record(0, 9, 1, false)]);
    assert_eq!(size2, 717, "Tahoe's worked example: 12 + 633 + 72");
    let info2 = read_share_info(&k2.share_path(&dir)).unwrap();
    assert_eq!(
        (info2.kind, info2.size, info2.leases.len()),
        (ShareKind::Immutable, 717, 1)
    );
    // The database renew key is the container's stored (hashed) renew secret.
    assert_eq!(info2.leases[0], lease(0, 9, 1));
}

#[test]
fn rebuild_from_scratch_when_the_database_file_is_missing() {
    let (_t, dir, db) = populated();
    let before = (
        db.totals().unwrap(),
        db.all_usage().unwrap(),
        db.shares().unwrap(),
    );
    drop(db);
    std::fs::remove_file(dir.join("leasedb.sqlite")).unwrap();
    let _ = std::fs::remove_file(dir.join("leasedb.sqlite-wal"));
    let _ = std::fs::remove_file(dir.join("leasedb.sqlite-shm"));
    let (db, found) = LeaseDb::open_or_rebuild(&dir, 9).unwrap();
    let found = found.expect("rebuilt");
    assert_eq!(found.len(), 3);
    assert!(
        found
            .iter()
            .all(|d| matches!(d, Discrepancy::MissingRow { .. })),
        "{found:?}"
    );
    assert_eq!(
        (
            db.totals().unwrap(),
            db.all_usage().unwrap(),
            db.shares().unwrap()
        ),
        before
    );
}

#[test]
fn audit_detects_and_fixes_injected_discrepancies() {
    let (_t, dir, mut db) = populated();
    let a = key(1, 0);
    let b = key(1, 1);
    let c = key(2, 4);
    let conn = db.connection();
    // 1. a deleted share row (its leases go with it)
    conn.execute(
        "DELETE FROM shares WHERE si = ?1 AND shnum = 0",
        [&a.si.0[..]],
    )
    .unwrap();
    // 2. a wrong size
    conn.execute(
        "UPDATE shares SET size = 1 WHERE si = ?1 AND shnum = 1",
        [&b.si.0[..]],
    )
    .unwrap();
    // 3. a deleted lease row
    conn.execute(
        "DELETE FROM leases WHERE si = ?1 AND shnum = 4",
        [&c.si.0[..]],
    )
    .unwrap();
    // 4. counter drift
    conn.execute("UPDATE totals SET reserved_bytes = 999", [])
        .unwrap();
    // 5. a share file removed behind the database's back
    let gone = key(5, 0);
    let sg = put_immutable(&dir, &gone, 10, &[record(0, 1, 1, false)]);
    db.commit_upload(&gone, sg, &lease(0, 1, 1)).unwrap();
    std::fs::remove_file(gone.share_path(&dir)).unwrap();
    // 6. a stray incoming file and 7. an orphan reservation
    write_file(&key(6, 0).incoming_path(&dir), b"half an upload");
    db.reserve(
        &Upload {
            share: key(7, 0),
            account: AccountId(0),
            bytes: 40,
        },
        0,
    )
    .unwrap();
    // 8. an unreadable share (reported, left alone)
    write_file(&key(8, 0).share_path(&dir), b"garbage!");

    let report = audit(&dir, &mut db, false).unwrap();
    let text = report.to_string();
    println!("{text}");
    let has = |f: &dyn Fn(&Discrepancy) -> bool| report.discrepancies.iter().any(f);
    assert!(has(
        &|d| matches!(d, Discrepancy::MissingRow { share, .. } if *share == a)
    ));
    assert!(has(
        &|d| matches!(d, Discrepancy::SizeMismatch { share, db: 1, .. } if *share == b)
    ));
    assert!(has(
        &|d| matches!(d, Discrepancy::LeaseMismatch { share, missing: 1, .. } if *share == c)
    ));
    assert!(has(&|d| matches!(d, Discrepancy::CounterDrift { .. })));
    assert!(has(
        &|d| matches!(d, Discrepancy::ExtraRow { share, .. } if *share == gone)
    ));
    assert!(has(&|d| matches!(d, Discrepancy::StrayIncoming { .. })));
    assert!(has(&|d| matches!(
        d,
        Discrepancy::OrphanReservation { bytes: 40, .. }
    )));
    assert!(has(&|d| matches!(d, Discrepancy::Unreadable { .. })));
    assert_eq!(report.exit_code(), 2);
    assert!(
        text.contains("missing row") && text.contains("stray incoming") && text.contains("--fix")
    );
    // Read-only: nothing changed.
    assert!(!audit(&dir, &mut db, false).unwrap().is_clean());
    assert!(key(6, 0).incoming_path(&dir).exists());

    let fixed = audit(&dir, &mut db, true).unwrap();
    assert_eq!(fixed.discrepancies.len(), report.discrepancies.len());
    assert_eq!(fixed.exit_code(), 2, "the unreadable share remains");
    assert!(!key(6, 0).incoming_path(&dir).exists());
    // After the fix only the unfixable remains, and counters match the disk exactly.
    let after = audit(&dir, &mut db, false).unwrap();
    assert_eq!(after.discrepancies.len(), 1, "{after}");
    assert!(matches!(
        after.discrepancies[0],
        Discrepancy::Unreadable { .. }
    ));
    std::fs::remove_file(key(8, 0).share_path(&dir)).unwrap();
    let clean = audit(&dir, &mut db, false).unwrap();
    assert!(clean.is_clean(), "{clean}");
    let t = db.totals().unwrap();
    let disk: u64 = [a, b, c]
        .iter()
        .map(|k| std::fs::metadata(k.share_path(&dir)).unwrap().len())
        .sum();
    assert_eq!(
        (t.shares, t.share_bytes, t.reservations, t.reserved_bytes),
        (3, disk, 0, 0)
    );
    assert!(db.check_counters().unwrap().is_empty());
}

#[test]
fn audit_storage_dir_handles_node_dirs_and_a_missing_database() {
    let (_t, dir, db) = populated();
    drop(db);
    std::fs::remove_file(dir.join("leasedb.sqlite")).unwrap();
    let _ = std::fs::remove_file(dir.join("leasedb.sqlite-wal"));
    let _ = std::fs::remove_file(dir.join("leasedb.sqlite-shm"));
    // Without --fix: nothing is written.
    let r = audit_storage_dir(&dir, false, 0).unwrap();
    assert!(matches!(
        r.discrepancies[0],
        Discrepancy::DatabaseMissing { .. }
    ));
    assert_eq!(r.discrepancies.len(), 4);
    assert!(!dir.join("leasedb.sqlite").exists());
    // With --fix: rebuilt.
    let r = audit_storage_dir(&dir, true, 0).unwrap();
    assert_eq!(r.exit_code(), 1);
    assert!(audit_storage_dir(&dir, false, 0).unwrap().is_clean());
    // A node directory (storage/ inside) resolves to its storage dir.
    let node = tempfile::tempdir().unwrap();
    std::fs::rename(&dir, node.path().join("storage")).unwrap();
    assert!(audit_storage_dir(node.path(), false, 0).unwrap().is_clean());
}

#[test]
fn reconcile_one_prefix_and_the_crawler_resumes() {
    let (_t, dir, mut db) = populated();
    let a = key(1, 0);
    db.connection()
        .execute(
            "UPDATE shares SET size = 2 WHERE si = ?1 AND shnum = 0",
            [&a.si.0[..]],
        )
        .unwrap();
    let other = key(2, 4).prefix();
    assert_ne!(other, a.prefix());
    assert!(reconcile_prefix(&dir, &mut db, &other, true)
        .unwrap()
        .is_empty());
    let found = reconcile_prefix(&dir, &mut db, &a.prefix(), true).unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        found[0].to_string().starts_with("size mismatch"),
        "{}",
        found[0]
    );
    assert!(reconcile_prefix(&dir, &mut db, &a.prefix(), false)
        .unwrap()
        .is_empty());

    // Crawler: damage a counter and a row, run a full cycle in steps across a "restart".
    db.connection()
        .execute("UPDATE totals SET shares = 77", [])
        .unwrap();
    db.connection()
        .execute(
            "DELETE FROM shares WHERE si = ?1 AND shnum = 4",
            [&key(2, 4).si.0[..]],
        )
        .unwrap();
    let crawler = Crawler::new(&dir);
    let s1 = crawler.step(&mut db, 500, 10).unwrap();
    assert_eq!(s1.prefixes.len(), 500);
    assert_eq!(s1.finished_cycle, None);
    assert_eq!(crawler.state(&db).unwrap().1, 500);
    let s2 = crawler.step(&mut db, 1000, 20).unwrap();
    assert_eq!(s2.prefixes.len(), 524);
    assert_eq!(s2.finished_cycle, Some(0));
    let all: Vec<_> = s1.discrepancies.iter().chain(&s2.discrepancies).collect();
    assert!(
        all.iter()
            .any(|d| matches!(d, Discrepancy::MissingRow { .. })),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|d| matches!(d, Discrepancy::CounterDrift { .. })),
        "{all:?}"
    );
    let (cycle, next, _, finished) = crawler.state(&db).unwrap();
    assert_eq!((cycle, next, finished), (1, 0, Some(20)));
    assert!(audit(&dir, &mut db, false).unwrap().is_clean());
}

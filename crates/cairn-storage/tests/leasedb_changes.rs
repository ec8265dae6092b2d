//! The intent log: a crash between a change to share files and the database update that
//! follows it leaves a pending change, and the next start settles it from the files before
//! anything else, so the audit is clean right after a restart. Each test makes the file
//! change the server makes (through `Store`, as the HTTP handlers do), "crashes" by dropping
//! the database before the update, and restarts.

use cairn_core::storage::container::{LeaseGrant, SecretForm};
use cairn_core::storage::rtw::{RtwContext, RtwRequest, RtwSecrets, TestWriteVectors, WriteVector};
use cairn_storage::leasedb::{
    audit, startup_recovery, AccountId, Discrepancy, LeaseDb, ShareKind, Upload,
};
use cairn_storage::store::Store;
use cairn_test_support::containers::*;

const NOW: u64 = 1_000;

fn db_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("leasedb.sqlite")
}

/// Restart: open the database again, recover, and require a clean audit.
fn restart(dir: &std::path::Path) -> (LeaseDb, cairn_storage::leasedb::StartupReport) {
    let mut db = LeaseDb::open(&db_path(dir), NOW + 1).unwrap();
    let report = startup_recovery(dir, &mut db).unwrap();
    let audit = audit(dir, &mut db, false).unwrap();
    assert!(audit.is_clean(), "audit after restart:\n{audit}\n{report}");
    assert!(db.pending_changes().unwrap().is_empty());
    (db, report)
}

fn grant(s: u8, expiration: u32) -> LeaseGrant {
    LeaseGrant {
        owner_num: 1,
        renew_secret: secret(s),
        cancel_secret: [s ^ 0xff; 32],
        expiration_secs: expiration,
        nodeid: NODEID,
    }
}

#[test]
fn an_upload_moved_into_place_but_not_recorded_is_settled_at_start() {
    let (_t, dir) = tempdir();
    let store = Store::open(&dir, NODEID).unwrap();
    let k = key(1, 3);
    {
        let mut db = LeaseDb::open(&db_path(&dir), NOW).unwrap();
        let upload = Upload {
            share: k,
            account: AccountId(0),
            bytes: 100,
        };
        assert!(db.reserve(&upload, NOW).unwrap());
        let rec = grant(1, 5000).to_record(SecretForm::Hashed, false);
        let file = store.create_incoming(&k.si, k.shnum, 100, &rec).unwrap();
        use std::os::unix::fs::FileExt;
        file.write_all_at(&[0x42; 100], 12).unwrap();
        let change = db.begin_change(&k.si, NOW).unwrap();
        store.finish_incoming(&k.si, k.shnum, &file).unwrap();
        // Crash: the commit (and the end of the change) never happens.
        drop(change); // never ended: the process died here
    }
    let (db, report) = restart(&dir);
    assert_eq!(report.settled_changes, 1);
    assert!(
        matches!(report.settled[..], [Discrepancy::MissingRow { share, kind: ShareKind::Immutable, leases: 1, .. }] if share == k),
        "{report}"
    );
    assert_eq!(report.released_reservations, 1);
    let t = db.totals().unwrap();
    assert_eq!((t.shares, t.reservations), (1, 0));
    assert_eq!(db.leases(&k).unwrap().len(), 1);
}

#[test]
fn a_mutable_write_not_recorded_is_settled_at_start() {
    let (_t, dir) = tempdir();
    let store = Store::open(&dir, NODEID).unwrap();
    let si = si(2);
    let write = |db: &mut LeaseDb, byte: u8, len: usize, shares: &[u8]| {
        let mut req = RtwRequest::default();
        for &sh in shares {
            req.test_write_vectors.insert(
                cairn_core::ids::ShareNum(sh),
                TestWriteVectors {
                    test: vec![],
                    write: vec![WriteVector {
                        offset: 0,
                        data: vec![byte; len],
                    }],
                    new_length: None,
                },
            );
        }
        let secrets = RtwSecrets {
            write_enabler: [9; 32],
            lease_renew: secret(1),
            lease_cancel: [0xfe; 32],
        };
        let ctx = RtwContext::new(NODEID, NOW, None);
        let change = db.begin_change(&si, NOW).unwrap();
        let r = store
            .read_test_write(&si, &req, &secrets, &ctx, None)
            .unwrap();
        assert!(r.success);
        change
    };
    {
        let mut db = LeaseDb::open(&db_path(&dir), NOW).unwrap();
        // A first write that the database followed ...
        let c = write(&mut db, 1, 1000, &[0, 1]);
        db.settle_change(&dir, c).unwrap();
        assert_eq!(db.totals().unwrap().shares, 2);
        // ... then one that grows share 1 and creates share 2, and a crash before the update.
        drop(write(&mut db, 2, 5000, &[1, 2])); // never ended
    }
    let (db, report) = restart(&dir);
    assert_eq!(report.settled_changes, 1);
    assert_eq!(report.settled.len(), 2, "{report}"); // share 1's size, share 2's row
    assert_eq!(db.totals().unwrap().shares, 3);
}

#[test]
fn a_lease_renewal_not_recorded_is_settled_at_start() {
    let (_t, dir) = tempdir();
    let store = Store::open(&dir, NODEID).unwrap();
    let k = key(3, 0);
    {
        let mut db = LeaseDb::open(&db_path(&dir), NOW).unwrap();
        let size = put_immutable(&dir, &k, 64, &[record(0, 1, 5000, false)]);
        db.commit_upload(&k, size, &lease(0, 1, 5000)).unwrap();
        let change = db.begin_change(&k.si, NOW).unwrap();
        // A second lease (add_lease) and a renewal of the first, in the file only.
        store
            .add_or_renew_lease(&k.si, k.shnum, &grant(7, 9000), None)
            .unwrap();
        drop(change); // never ended: the process died here
        assert_eq!(db.leases(&k).unwrap().len(), 1);
    }
    let (db, report) = restart(&dir);
    // The lease record appended to the file grew it, too.
    assert!(
        matches!(
            report.settled[..],
            [
                Discrepancy::SizeMismatch { .. },
                Discrepancy::LeaseMismatch { missing: 1, .. }
            ]
        ),
        "{report}"
    );
    assert_eq!(db.leases(&k).unwrap().len(), 2);
}

#[test]
fn a_share_deleted_by_garbage_collection_but_still_recorded_is_settled_at_start() {
    let (_t, dir) = tempdir();
    let k = key(4, 1);
    {
        let mut db = LeaseDb::open(&db_path(&dir), NOW).unwrap();
        let size = put_mutable(&dir, &k, 300, &[(1, 1, 10)]);
        db.add_share(&k, ShareKind::Mutable, size).unwrap();
        db.set_leases(&k, &[lease(1, 1, 10)]).unwrap();
        let change = db.begin_change(&k.si, NOW).unwrap();
        std::fs::remove_file(k.share_path(&dir)).unwrap();
        drop(change); // never ended: the process died here
    }
    let (db, report) = restart(&dir);
    assert!(
        matches!(report.settled[..], [Discrepancy::ExtraRow { share, .. }] if share == k),
        "{report}"
    );
    assert_eq!(db.totals().unwrap().shares, 0);
}

#[test]
fn recovery_reads_only_the_buckets_that_were_changing() {
    let (_t, dir) = tempdir();
    let (changing, elsewhere) = (key(5, 0), key(6, 0));
    {
        let mut db = LeaseDb::open(&db_path(&dir), NOW).unwrap();
        // A share with no row and no pending change (damage from outside cairn): not
        // recovery's business, the crawler and the audit find it.
        put_immutable(&dir, &elsewhere, 10, &[record(0, 1, 5000, false)]);
        // A change recorded whose files had not changed yet when the crash came.
        drop(db.begin_change(&changing.si, NOW).unwrap()); // never ended
    }
    let mut db = LeaseDb::open(&db_path(&dir), NOW + 1).unwrap();
    let report = startup_recovery(&dir, &mut db).unwrap();
    assert_eq!(report.settled_changes, 1);
    assert!(report.settled.is_empty(), "{report}");
    assert!(db.pending_changes().unwrap().is_empty());
    let audit = audit(&dir, &mut db, false).unwrap();
    assert_eq!(audit.unresolved(), 1, "{audit}");
}

#[test]
fn ended_and_settled_changes_leave_nothing_pending() {
    let (_t, dir) = tempdir();
    let mut db = LeaseDb::open(&db_path(&dir), NOW).unwrap();
    let a = db.begin_change(&si(7), NOW).unwrap();
    let b = db.begin_change(&si(7), NOW).unwrap(); // two writers of one bucket
    let c = db.begin_change(&si(8), NOW).unwrap();
    assert_eq!(db.pending_changes().unwrap().len(), 3);
    db.end_change(b).unwrap();
    assert_eq!(
        db.pending_changes()
            .unwrap()
            .iter()
            .map(|p| *p.storage_index())
            .collect::<Vec<_>>(),
        vec![si(7), si(8)]
    );
    db.end_change(a).unwrap();
    assert!(db.settle_change(&dir, c).unwrap().is_empty());
    assert!(db.pending_changes().unwrap().is_empty());
}

//! Reference counting: every path that reserves space releases it, totals stay exact.

use std::collections::BTreeMap;

use cairn_storage::leasedb::{
    audit, startup_recovery, AccountId, LeaseDb, ShareKey, ShareKind, Upload, Usage,
};
use cairn_test_support::containers::*;
use proptest::prelude::*;

const A: AccountId = AccountId(0);

fn upload(k: ShareKey, bytes: u64) -> Upload {
    Upload {
        share: k,
        account: A,
        bytes,
    }
}

/// Reservations zero, counters equal to a recount of the rows, and the rows equal to the
/// disk (a clean read-only audit).
fn assert_exact(dir: &std::path::Path, db: &mut LeaseDb) {
    assert_eq!(db.totals().unwrap().reservations, 0);
    assert_eq!(db.totals().unwrap().reserved_bytes, 0);
    assert!(db.reservations().unwrap().is_empty());
    assert_eq!(db.check_counters().unwrap(), Vec::<String>::new());
    let report = audit(dir, db, false).unwrap();
    assert!(report.is_clean(), "{report}");
}

/// The server's allocate: reserve, then create the incoming file.
fn allocate(dir: &std::path::Path, db: &mut LeaseDb, k: ShareKey, bytes: u64) {
    assert!(db.reserve(&upload(k, bytes), 10).unwrap());
    write_file(&k.incoming_path(dir), b"partial");
}

/// The server's abort / disconnect / timeout: delete the incoming file, release.
fn abort(dir: &std::path::Path, db: &mut LeaseDb, k: ShareKey) -> Option<u64> {
    std::fs::remove_file(k.incoming_path(dir)).unwrap();
    db.release(&k).unwrap()
}

#[test]
fn completion_converts_the_reservation_into_a_share() {
    let (_t, dir) = tempdir();
    let mut db = LeaseDb::open_in_memory(0).unwrap();
    let k = key(1, 3);
    allocate(&dir, &mut db, k, 500);
    assert_eq!(db.totals().unwrap().reserved_bytes, 500);
    assert_eq!(db.usage(A).unwrap().reserved_bytes, 500);
    // Close: rename incoming -> shares (here: write the final container), then commit.
    std::fs::remove_file(k.incoming_path(&dir)).unwrap();
    let size = put_immutable(&dir, &k, 500, &[record(0, 1, 1_000_000, false)]);
    let out = db.commit_upload(&k, size, &lease(0, 1, 1_000_000)).unwrap();
    assert_eq!(out.released, Some(500));
    assert!(out.new_share);
    assert_eq!(
        db.totals().unwrap(),
        Usage {
            shares: 1,
            share_bytes: size,
            reservations: 0,
            reserved_bytes: 0
        }
    );
    assert_eq!(
        db.usage(A).unwrap(),
        Usage {
            shares: 1,
            share_bytes: size,
            ..Usage::default()
        }
    );
    // A retried commit changes nothing.
    let again = db.commit_upload(&k, size, &lease(0, 1, 1_000_000)).unwrap();
    assert_eq!(again.released, None);
    assert!(!again.new_share);
    assert_eq!(db.totals().unwrap().share_bytes, size);
    assert_exact(&dir, &mut db);
}

#[test]
fn abort_disconnect_and_timeout_release_and_double_release_is_a_noop() {
    let (_t, dir) = tempdir();
    let mut db = LeaseDb::open_in_memory(0).unwrap();
    for (i, bytes) in [(1u8, 100u64), (2, 200), (3, 300)] {
        allocate(&dir, &mut db, key(i, 0), bytes);
    }
    assert_eq!(db.totals().unwrap().reserved_bytes, 600);
    // abort
    assert_eq!(abort(&dir, &mut db, key(1, 0)), Some(100));
    // client disconnect
    assert_eq!(abort(&dir, &mut db, key(2, 0)), Some(200));
    // timeout
    assert_eq!(abort(&dir, &mut db, key(3, 0)), Some(300));
    // double release (e.g. timeout firing after disconnect): no-op, never negative
    assert_eq!(db.release(&key(3, 0)).unwrap(), None);
    assert_eq!(db.release(&key(9, 9)).unwrap(), None);
    assert_eq!(db.usage(A).unwrap(), Usage::default());
    assert_exact(&dir, &mut db);
}

#[test]
fn shutdown_releases_uploads_in_flight() {
    let (_t, dir) = tempdir();
    let mut db = LeaseDb::open_in_memory(0).unwrap();
    allocate(&dir, &mut db, key(1, 0), 100);
    allocate(&dir, &mut db, key(1, 1), 100);
    // Graceful shutdown: each writer aborted (file removed, reservation released) ...
    abort(&dir, &mut db, key(1, 0));
    abort(&dir, &mut db, key(1, 1));
    // ... and a final sweep for anything a writer missed is harmless.
    assert_eq!(db.release_all_reservations().unwrap(), (0, 0));
    assert_exact(&dir, &mut db);
}

#[test]
fn crash_then_restart_releases_everything_and_clears_incoming() {
    let (_t, dir) = tempdir();
    let path = dir.join("leasedb.sqlite");
    {
        let mut db = LeaseDb::open(&path, 0).unwrap();
        allocate(&dir, &mut db, key(1, 0), 100);
        allocate(&dir, &mut db, key(2, 5), 250);
        let k = key(3, 0);
        let size = put_immutable(&dir, &k, 10, &[record(0, 1, 99, false)]);
        db.commit_upload(&k, size, &lease(0, 1, 99)).unwrap();
        // crash: dropped with no cleanup
    }
    let mut db = LeaseDb::open(&path, 1).unwrap();
    assert_eq!(db.totals().unwrap().reserved_bytes, 350);
    let report = startup_recovery(&dir, &mut db).unwrap();
    assert_eq!(report.released_reservations, 2);
    assert_eq!(report.released_bytes, 350);
    assert_eq!(report.removed_incoming.len(), 2);
    assert!(
        dir.join("shares/incoming").is_dir(),
        "incoming/ itself stays"
    );
    assert_eq!(
        std::fs::read_dir(dir.join("shares/incoming"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(db.totals().unwrap().shares, 1);
    assert_exact(&dir, &mut db);
}

#[test]
fn conflicting_reservation_is_refused_and_identical_retry_is_idempotent() {
    let mut db = LeaseDb::open_in_memory(0).unwrap();
    let k = key(1, 0);
    assert!(db.reserve(&upload(k, 10), 0).unwrap());
    assert!(!db.reserve(&upload(k, 10), 1).unwrap());
    assert!(db.reserve(&upload(k, 11), 1).is_err());
    assert_eq!(db.totals().unwrap().reserved_bytes, 10);
    db.release(&k).unwrap();
    assert_eq!(db.totals().unwrap(), Usage::default());
}

#[test]
fn mutable_writes_leases_and_removal_are_symmetric() {
    let mut db = LeaseDb::open_in_memory(0).unwrap();
    let k = key(4, 2);
    // First write creates the share with a lease (owner 1, as Tahoe).
    assert!(db.add_share(&k, ShareKind::Mutable, 1000).unwrap());
    db.add_or_renew_lease(&k, &lease(1, 1, 100)).unwrap();
    assert_eq!(db.usage(AccountId(1)).unwrap().share_bytes, 1000);
    // Another write grows it: every holder's usage follows.
    db.add_or_renew_lease(&k, &lease(2, 2, 100)).unwrap();
    assert!(!db.add_share(&k, ShareKind::Mutable, 1500).unwrap());
    assert_eq!(db.usage(AccountId(1)).unwrap().share_bytes, 1500);
    assert_eq!(db.usage(AccountId(2)).unwrap().share_bytes, 1500);
    assert_eq!(db.totals().unwrap().share_bytes, 1500);
    // Renewal only moves forward; a second lease of the same account counts once.
    db.add_or_renew_lease(&k, &lease(1, 1, 50)).unwrap();
    assert_eq!(
        db.leases(&k)
            .unwrap()
            .iter()
            .find(|l| l.account == AccountId(1))
            .unwrap()
            .expiration,
        100
    );
    db.add_or_renew_lease(&k, &lease(1, 3, 100)).unwrap();
    assert_eq!(db.usage(AccountId(1)).unwrap().shares, 1);
    // Removing leases un-charges only when the account's last lease goes.
    assert!(db.remove_lease(&k, &lease(1, 1, 0).renew_key).unwrap());
    assert_eq!(db.usage(AccountId(1)).unwrap().share_bytes, 1500);
    assert!(db.remove_lease(&k, &lease(1, 3, 0).renew_key).unwrap());
    assert_eq!(db.usage(AccountId(1)).unwrap(), Usage::default());
    assert!(!db.remove_lease(&k, &lease(1, 3, 0).renew_key).unwrap());
    // Truncate to zero = delete: everything returns to zero; repeating is a no-op.
    assert_eq!(db.remove_share(&k).unwrap(), Some(1500));
    assert_eq!(db.remove_share(&k).unwrap(), None);
    assert_eq!(db.totals().unwrap(), Usage::default());
    assert_eq!(db.usage(AccountId(2)).unwrap(), Usage::default());
    assert!(db.check_counters().unwrap().is_empty());
    // A lease on an unknown share is an error, not a phantom charge.
    assert!(db.add_or_renew_lease(&k, &lease(1, 1, 1)).is_err());
    assert_eq!(db.usage(AccountId(1)).unwrap(), Usage::default());
}

// ---- property test: random operations, including crashes, against a model ------------

#[derive(Clone, Debug)]
enum Op {
    Reserve {
        s: u8,
        bytes: u64,
        account: u32,
    },
    Commit {
        s: u8,
        size: u64,
        account: u32,
        secret: u8,
        exp: u32,
    },
    Release {
        s: u8,
    },
    MutableWrite {
        s: u8,
        size: u64,
    },
    AddLease {
        s: u8,
        account: u32,
        secret: u8,
        exp: u32,
    },
    RemoveLease {
        s: u8,
        secret: u8,
    },
    RemoveShare {
        s: u8,
    },
    ReleaseAll,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0u8..6;
    let acct = 0u32..3;
    let sec = 0u8..4;
    prop_oneof![
        (s.clone(), 0u64..5000, acct.clone()).prop_map(|(s, bytes, account)| Op::Reserve {
            s,
            bytes,
            account
        }),
        (s.clone(), 0u64..5000, acct.clone(), sec.clone(), 0u32..1000).prop_map(
            |(s, size, account, secret, exp)| Op::Commit {
                s,
                size,
                account,
                secret,
                exp
            }
        ),
        s.clone().prop_map(|s| Op::Release { s }),
        (s.clone(), 0u64..5000).prop_map(|(s, size)| Op::MutableWrite { s, size }),
        (s.clone(), acct, sec.clone(), 0u32..1000).prop_map(|(s, account, secret, exp)| {
            Op::AddLease {
                s,
                account,
                secret,
                exp,
            }
        }),
        (s.clone(), sec).prop_map(|(s, secret)| Op::RemoveLease { s, secret }),
        s.prop_map(|s| Op::RemoveShare { s }),
        Just(Op::ReleaseAll),
        Just(Op::Crash),
    ]
}

/// renew secret -> (account, expiration)
type ModelLeases = BTreeMap<u8, (u32, u32)>;

#[derive(Default)]
struct Model {
    // share -> (size, renew secret -> (account, expiration))
    shares: BTreeMap<u8, (u64, ModelLeases)>,
    reservations: BTreeMap<u8, (u32, u64)>,
}

impl Model {
    fn totals(&self) -> Usage {
        Usage {
            shares: self.shares.len() as u64,
            share_bytes: self.shares.values().map(|s| s.0).sum(),
            reservations: self.reservations.len() as u64,
            reserved_bytes: self.reservations.values().map(|r| r.1).sum(),
        }
    }
    fn usage(&self, a: u32) -> Usage {
        let held: Vec<_> = self
            .shares
            .values()
            .filter(|(_, ls)| ls.values().any(|(acc, _)| *acc == a))
            .collect();
        let res: Vec<_> = self
            .reservations
            .values()
            .filter(|(acc, _)| *acc == a)
            .collect();
        Usage {
            shares: held.len() as u64,
            share_bytes: held.iter().map(|s| s.0).sum(),
            reservations: res.len() as u64,
            reserved_bytes: res.iter().map(|r| r.1).sum(),
        }
    }
}

fn k(s: u8) -> ShareKey {
    key(s, s % 2)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn random_operations_keep_totals_equal_to_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let (_t, dir) = tempdir();
        let path = dir.join("leasedb.sqlite");
        let mut db = Some(LeaseDb::open(&path, 0).unwrap());
        let mut m = Model::default();
        for op in ops {
            let d = db.as_mut().unwrap();
            match op {
                Op::Reserve { s, bytes, account } => {
                    let r = d.reserve(&Upload { share: k(s), account: AccountId(account), bytes }, 1);
                    match m.reservations.get(&s) {
                        None => { r.unwrap(); m.reservations.insert(s, (account, bytes)); }
                        Some(&(a, b)) if a == account && b == bytes => { prop_assert!(!r.unwrap()); }
                        Some(_) => { prop_assert!(r.is_err()); }
                    }
                }
                Op::Commit { s, size, account, secret: sec, exp } => {
                    let out = d.commit_upload(&k(s), size, &lease(account, sec, exp)).unwrap();
                    prop_assert_eq!(out.released, m.reservations.remove(&s).map(|r| r.1));
                    let e = m.shares.entry(s).or_default();
                    e.0 = size;
                    let l = e.1.entry(sec).or_insert((account, exp));
                    *l = (account, l.1.max(exp));
                }
                Op::Release { s } => {
                    prop_assert_eq!(d.release(&k(s)).unwrap(), m.reservations.remove(&s).map(|r| r.1));
                }
                Op::MutableWrite { s, size } => {
                    d.add_share(&k(s), ShareKind::Immutable, size).unwrap();
                    m.shares.entry(s).or_default().0 = size;
                }
                Op::AddLease { s, account, secret: sec, exp } => {
                    let r = d.add_or_renew_lease(&k(s), &lease(account, sec, exp));
                    match m.shares.get_mut(&s) {
                        None => prop_assert!(r.is_err()),
                        Some(e) => {
                            r.unwrap();
                            let l = e.1.entry(sec).or_insert((account, exp));
                            *l = (account, l.1.max(exp));
                        }
                    }
                }
                Op::RemoveLease { s, secret: sec } => {
                    let removed = d.remove_lease(&k(s), &lease(0, sec, 0).renew_key).unwrap();
                    let had = m.shares.get_mut(&s).and_then(|e| e.1.remove(&sec)).is_some();
                    prop_assert_eq!(removed, had);
                }
                Op::RemoveShare { s } => {
                    prop_assert_eq!(d.remove_share(&k(s)).unwrap(), m.shares.remove(&s).map(|e| e.0));
                }
                Op::ReleaseAll => {
                    d.release_all_reservations().unwrap();
                    m.reservations.clear();
                }
                Op::Crash => {
                    // Drop without any cleanup, reopen, run startup recovery.
                    drop(db.take());
                    let mut d = LeaseDb::open(&path, 2).unwrap();
                    startup_recovery(&dir, &mut d).unwrap();
                    m.reservations.clear();
                    db = Some(d);
                }
            }
            let d = db.as_ref().unwrap();
            prop_assert_eq!(d.totals().unwrap(), m.totals());
            for a in 0..3 {
                prop_assert_eq!(d.usage(AccountId(a)).unwrap(), m.usage(a));
            }
            prop_assert!(d.check_counters().unwrap().is_empty());
        }
    }
}

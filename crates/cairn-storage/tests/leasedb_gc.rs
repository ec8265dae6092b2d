//! Lease expiry and garbage collection under Tahoe's expire.* settings.

use cairn_core::storage::container::ExpirationPolicy as CorePolicy;
use cairn_storage::leasedb::{
    audit, collect_garbage, parse_date, parse_duration, AccountId, ExpirationMode,
    ExpirationPolicy, LeaseDb, LeaseExpiry, ShareKey, ShareKind, Usage,
};
use cairn_test_support::containers::*;

const DAY: u64 = 86_400;
const NOW: u64 = 1_700_000_000;

#[test]
fn tahoe_duration_and_date_strings() {
    assert_eq!(parse_duration("31 days").unwrap(), 31 * 86_400);
    assert_eq!(parse_duration("1 day").unwrap(), 86_400);
    assert_eq!(parse_duration("1 month").unwrap(), 31 * 86_400);
    assert_eq!(parse_duration("2mo").unwrap(), 62 * 86_400);
    assert_eq!(parse_duration("3months").unwrap(), 93 * 86_400);
    assert_eq!(parse_duration("1 year").unwrap(), 365 * 86_400);
    assert_eq!(parse_duration("2years").unwrap(), 730 * 86_400);
    assert!(parse_duration("31").is_err());
    assert!(parse_duration("31 weeks").is_err());
    assert!(parse_duration("x days").is_err());
    assert_eq!(parse_date("1970-01-01").unwrap(), 0);
    assert_eq!(parse_date("2009-03-18").unwrap(), 1_237_334_400);
    assert_eq!(parse_date("2000-02-29").unwrap(), 951_782_400);
    assert!(parse_date("2009-3-18").is_err());
    assert!(parse_date("2009-13-01").is_err());
}

#[test]
fn policy_from_config_matches_tahoe_defaults_and_requirements() {
    let cfg = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(a, _)| *a == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let p = ExpirationPolicy::from_config(cfg(&[])).unwrap();
    assert_eq!(p, ExpirationPolicy::default());
    assert!(!p.enabled);
    assert!(
        ExpirationPolicy::from_config(cfg(&[("expire.enabled", "true")])).is_err(),
        "mode required"
    );
    let p =
        ExpirationPolicy::from_config(cfg(&[("expire.enabled", "True"), ("expire.mode", "age")]))
            .unwrap();
    assert_eq!(
        p.mode,
        ExpirationMode::Age {
            override_lease_duration: None
        }
    );
    assert_eq!(
        p.warnings().len(),
        1,
        "age without override never expires: warn"
    );
    let p = ExpirationPolicy::from_config(cfg(&[
        ("expire.enabled", "yes"),
        ("expire.mode", "age"),
        ("expire.override_lease_duration", "2 months"),
        ("expire.mutable", "false"),
    ]))
    .unwrap();
    assert_eq!(
        p.mode,
        ExpirationMode::Age {
            override_lease_duration: Some(62 * DAY)
        }
    );
    assert!(p.immutable && !p.mutable);
    assert!(p.warnings().is_empty());
    let p = ExpirationPolicy::from_config(cfg(&[
        ("expire.enabled", "true"),
        ("expire.mode", "cutoff-date"),
        ("expire.cutoff_date", "2009-03-18"),
    ]))
    .unwrap();
    assert_eq!(
        p.mode,
        ExpirationMode::CutoffDate {
            cutoff: 1_237_334_400
        }
    );
    assert!(ExpirationPolicy::from_config(cfg(&[
        ("expire.enabled", "true"),
        ("expire.mode", "cutoff-date")
    ]))
    .is_err());
    assert!(ExpirationPolicy::from_config(cfg(&[
        ("expire.enabled", "true"),
        ("expire.mode", "size")
    ]))
    .is_err());
}

fn policy(mode: ExpirationMode) -> ExpirationPolicy {
    ExpirationPolicy {
        enabled: true,
        mode,
        immutable: true,
        mutable: true,
    }
}

#[test]
fn lease_expiry_agrees_with_the_container_module() {
    let modes = [
        (
            ExpirationMode::Age {
                override_lease_duration: None,
            },
            CorePolicy::Age {
                override_lease_duration_secs: None,
            },
        ),
        (
            ExpirationMode::Age {
                override_lease_duration: Some(10 * DAY),
            },
            CorePolicy::Age {
                override_lease_duration_secs: Some(10 * DAY),
            },
        ),
        (
            ExpirationMode::CutoffDate {
                cutoff: NOW - 5 * DAY,
            },
            CorePolicy::CutoffDate {
                cutoff_secs: NOW - 5 * DAY,
            },
        ),
    ];
    for (mine, core) in modes {
        let p = policy(mine);
        for exp in [
            0u32,
            1,
            1000,
            (NOW / 2) as u32,
            (NOW - 40 * DAY) as u32,
            (NOW - 21 * DAY) as u32,
            (NOW - 20 * DAY) as u32,
            (NOW - 20 * DAY - 1) as u32,
            (NOW + 26 * DAY) as u32,
            (NOW + 26 * DAY + 1) as u32,
            NOW as u32,
            u32::MAX,
        ] {
            let rec = record(0, 1, exp, false);
            assert_eq!(
                p.lease_expired(ShareKind::Immutable, u64::from(exp), NOW),
                core.lease_expired(&rec, NOW),
                "{mine:?} exp={exp}"
            );
        }
    }
}

/// Shares: A (one lease, 40 days old), B (one lease, 5 days old), C (mutable, both
/// leases old), D (immutable, one old one fresh lease), E (no lease at all).
fn fixture() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    LeaseDb,
    [ShareKey; 5],
) {
    let (t, dir) = tempdir();
    let mut db = LeaseDb::open(&dir.join("leasedb.sqlite"), 0).unwrap();
    let old = (NOW - 40 * DAY + 31 * DAY) as u32; // granted 40 days ago
    let fresh = (NOW - 5 * DAY + 31 * DAY) as u32; // granted 5 days ago
    let ks = [key(1, 0), key(1, 1), key(2, 0), key(3, 0), key(4, 0)];
    put_immutable(&dir, &ks[0], 100, &[record(0, 1, old, false)]);
    put_immutable(&dir, &ks[1], 100, &[record(0, 1, fresh, false)]);
    put_mutable(&dir, &ks[2], 100, &[(1, 1, old), (1, 2, old)]);
    put_immutable(
        &dir,
        &ks[3],
        100,
        &[record(0, 1, old, false), record(0, 2, fresh, false)],
    );
    put_immutable(&dir, &ks[4], 100, &[]);
    let found = audit(&dir, &mut db, true).unwrap();
    assert_eq!(found.discrepancies.len(), 5);
    (t, dir, db, ks)
}

fn run(
    mode: ExpirationMode,
    immutable: bool,
    mutable: bool,
) -> (
    Vec<ShareKey>,
    std::path::PathBuf,
    LeaseDb,
    [ShareKey; 5],
    tempfile::TempDir,
) {
    let (t, dir, mut db, ks) = fixture();
    let p = ExpirationPolicy {
        enabled: true,
        mode,
        immutable,
        mutable,
    };
    let before = db.totals().unwrap();
    let preview: Vec<_> = db
        .expired_shares(&p, NOW)
        .unwrap()
        .into_iter()
        .map(|e| e.share)
        .collect();
    let report = collect_garbage(&dir, &mut db, &p, NOW).unwrap();
    let removed: Vec<_> = report.removed.iter().map(|e| e.share).collect();
    assert_eq!(removed, preview);
    assert_eq!(report.leaseless, 1);
    // Space returned exactly: totals drop by the freed bytes and match the disk.
    let after = db.totals().unwrap();
    assert_eq!(after.share_bytes, before.share_bytes - report.freed_bytes);
    assert_eq!(after.shares, before.shares - removed.len() as u64);
    for k in &removed {
        assert!(!k.share_path(&dir).exists());
    }
    assert!(audit(&dir, &mut db, false).unwrap().is_clean());
    assert!(db.check_counters().unwrap().is_empty());
    (removed, dir, db, ks, t)
}

#[test]
fn age_mode_with_override_removes_shares_whose_leases_all_expired() {
    let (removed, dir, db, ks, _t) = run(
        ExpirationMode::Age {
            override_lease_duration: Some(30 * DAY),
        },
        true,
        true,
    );
    assert_eq!(removed, vec![ks[0], ks[2]]);
    // Bucket 1 still holds B, so its directory stays; bucket 2 emptied and was removed.
    assert!(ks[1].share_path(&dir).exists());
    assert!(!ks[2].share_path(&dir).parent().unwrap().exists());
    assert!(
        ks[2]
            .share_path(&dir)
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .exists(),
        "prefix dir stays"
    );
    // Account 1 held only C: its usage is back to zero.
    assert_eq!(db.usage(AccountId(1)).unwrap(), Usage::default());
}

#[test]
fn age_mode_without_override_expires_nothing_like_tahoe() {
    let (removed, ..) = run(
        ExpirationMode::Age {
            override_lease_duration: None,
        },
        true,
        true,
    );
    assert!(removed.is_empty());
}

#[test]
fn cutoff_date_mode() {
    // Cutoff 20 days ago: leases granted 40 days ago are expired, 5 days ago are not.
    let (removed, _d, _db, ks, _t) = run(
        ExpirationMode::CutoffDate {
            cutoff: NOW - 20 * DAY,
        },
        true,
        true,
    );
    assert_eq!(removed, vec![ks[0], ks[2]]);
    // Cutoff in the future: every lease-bearing share goes (the leaseless one stays).
    let (removed, _d, _db, ks, _t) =
        run(ExpirationMode::CutoffDate { cutoff: NOW + DAY }, true, true);
    assert_eq!(removed, vec![ks[0], ks[1], ks[2], ks[3]]);
}

#[test]
fn share_type_filters() {
    let mode = ExpirationMode::Age {
        override_lease_duration: Some(30 * DAY),
    };
    let (removed, _d, _db, ks, _t) = run(mode, true, false);
    assert_eq!(removed, vec![ks[0]]);
    let (removed, _d, _db, ks, _t) = run(mode, false, true);
    assert_eq!(removed, vec![ks[2]]);
}

#[test]
fn disabled_policy_deletes_nothing_and_stale_database_never_deletes_a_live_share() {
    let (_t, dir, mut db, ks) = fixture();
    let mut p = policy(ExpirationMode::Age {
        override_lease_duration: Some(30 * DAY),
    });
    p.enabled = false;
    assert!(collect_garbage(&dir, &mut db, &p, NOW)
        .unwrap()
        .removed
        .is_empty());
    p.enabled = true;
    // The file of A got a fresh lease the database missed (crash between the file write
    // and the database update): GC must re-check the file and keep it.
    let fresh = (NOW + 26 * DAY) as u32;
    put_immutable(
        &dir,
        &ks[0],
        100,
        &[
            record(0, 1, (NOW - 9 * DAY) as u32, false),
            record(0, 7, fresh, false),
        ],
    );
    let report = collect_garbage(&dir, &mut db, &p, NOW).unwrap();
    assert_eq!(report.refreshed, vec![ks[0]]);
    assert!(ks[0].share_path(&dir).exists());
    assert_eq!(
        report.removed.iter().map(|e| e.share).collect::<Vec<_>>(),
        vec![ks[2]]
    );
    // A row whose file vanished is dropped without counting freed bytes.
    std::fs::remove_file(ks[1].share_path(&dir)).unwrap();
    let p2 = policy(ExpirationMode::CutoffDate { cutoff: NOW + DAY });
    let report = collect_garbage(&dir, &mut db, &p2, NOW).unwrap();
    assert_eq!(report.stale_rows, vec![ks[1]]);
    assert!(audit(&dir, &mut db, false).unwrap().is_clean());
}

#[test]
fn surviving_shares_lose_their_expired_leases_in_file_and_database() {
    use cairn_core::storage::container::{ImmutableContainer, MutableContainer, MutableLeases};
    let (_t, dir) = tempdir();
    let mut db = LeaseDb::open(&dir.join("leasedb.sqlite"), 0).unwrap();
    let old = (NOW - 40 * DAY + 31 * DAY) as u32; // granted 40 days ago: expired
    let fresh = (NOW - 5 * DAY + 31 * DAY) as u32; // granted 5 days ago: live
    let (ki, km) = (key(5, 0), key(6, 0));
    // The expired lease comes first, so the live one has to move down.
    let imm_size = put_immutable(
        &dir,
        &ki,
        100,
        &[record(0, 1, old, false), record(1, 2, fresh, false)],
    );
    let mut_size = put_mutable(&dir, &km, 100, &[(1, 3, old), (2, 4, fresh)]);
    audit(&dir, &mut db, true).unwrap();
    let before = db.totals().unwrap();
    let p = policy(ExpirationMode::Age {
        override_lease_duration: Some(30 * DAY),
    });
    let report = collect_garbage(&dir, &mut db, &p, NOW).unwrap();
    assert!(report.removed.is_empty());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.trimmed, vec![ki, km]);
    assert_eq!(report.cancelled_leases, 2);
    // Immutable: one 72-byte record gone, file truncated, count 1.
    assert_eq!(report.freed_bytes, 72);
    let bytes = std::fs::read(ki.share_path(&dir)).unwrap();
    assert_eq!(bytes.len() as u64, imm_size - 72);
    let c = ImmutableContainer::parse(&bytes).unwrap();
    assert_eq!(c.leases, vec![record(1, 2, fresh, false)]);
    assert_eq!(c.header.num_leases, 1);
    assert_eq!(c.data, vec![0xab; 100]);
    assert_eq!(db.leases(&ki).unwrap(), vec![lease(1, 2, fresh)]);
    assert_eq!(
        db.share(&ki).unwrap(),
        Some((ShareKind::Immutable, imm_size - 72))
    );
    // Mutable: the slot is blanked as Tahoe's cancel_lease does; size unchanged.
    let bytes = std::fs::read(km.share_path(&dir)).unwrap();
    assert_eq!(bytes.len() as u64, mut_size);
    let c = MutableContainer::parse(&bytes).unwrap();
    let live: Vec<_> = c.leases.live().map(|(i, r)| (i, *r)).collect();
    assert_eq!(live, vec![(1, record(2, 4, fresh, true))]);
    assert_eq!(
        c.leases.records[0],
        MutableLeases::cancelled_record(c.leases.form)
    );
    assert_eq!(db.leases(&km).unwrap(), vec![lease(2, 4, fresh)]);
    // Totals follow the disk; the database agrees with the files.
    let after = db.totals().unwrap();
    assert_eq!(after.share_bytes, before.share_bytes - report.freed_bytes);
    assert!(audit(&dir, &mut db, false).unwrap().is_clean());
    assert!(db.check_counters().unwrap().is_empty());
    // A second pass has nothing left to do.
    let again = collect_garbage(&dir, &mut db, &p, NOW).unwrap();
    assert_eq!(again.cancelled_leases, 0);
    assert!(again.trimmed.is_empty() && again.removed.is_empty());
}

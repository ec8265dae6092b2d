//! Property tests for share containers, leases and read-test-write: round trips, totality
//! on arbitrary bytes, lease add/renew invariants, and the write planner against a simple
//! logical model of share data.

use std::collections::BTreeMap;

use cairn_core::storage::container::*;
use cairn_core::storage::rtw::*;
use proptest::prelude::*;

fn grant(tag: u8, exp: u32) -> LeaseGrant {
    LeaseGrant {
        owner_num: 1,
        renew_secret: [tag; 32],
        cancel_secret: [tag ^ 0xff; 32],
        expiration_secs: exp,
        nodeid: [9; 20],
    }
}

fn arb_form() -> impl Strategy<Value = SecretForm> {
    prop_oneof![Just(SecretForm::Clear), Just(SecretForm::Hashed)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn immutable_parse_total_and_exact(data in proptest::collection::vec(any::<u8>(), 0..400), v in 1u32..=2, n in 0u32..5) {
        let _ = ImmutableContainer::parse(&data);
        let mut d = data.clone();
        if d.len() >= 12 {
            d[0..4].copy_from_slice(&v.to_be_bytes());
            d[8..12].copy_from_slice(&n.to_be_bytes());
        }
        match ImmutableContainer::parse(&d) {
            Ok(c) => {
                prop_assert_eq!(c.to_bytes(), d.clone());
                prop_assert_eq!(c.layout().file_size(), d.len() as u64);
            }
            Err(_) => prop_assert!(d.len() < 12 + 72 * n as usize),
        }
    }

    #[test]
    fn mutable_parse_total_and_exact(data in proptest::collection::vec(any::<u8>(), 0..1200), v2 in any::<bool>(),
                                     dl in 0u64..600, cs in 0u64..600, extra in 0u32..4) {
        let _ = MutableContainer::parse(&data);
        // A structurally plausible container with random contents.
        let mut f = data.clone();
        f.resize(468 + cs as usize + 4 + 92 * extra as usize, 0);
        f[0..32].copy_from_slice(if v2 { &MUTABLE_MAGIC_V2 } else { &MUTABLE_MAGIC_V1 });
        f[84..92].copy_from_slice(&dl.min(cs).to_be_bytes());
        f[92..100].copy_from_slice(&(468 + cs).to_be_bytes());
        let elo = 468 + cs as usize;
        f[elo..elo + 4].copy_from_slice(&extra.to_be_bytes());
        let c = MutableContainer::parse(&f).unwrap();
        prop_assert_eq!(c.to_bytes(), f);
        prop_assert_eq!(c.leases.records.len(), 4 + extra as usize);
    }

    #[test]
    fn lease_records_round_trip(b in proptest::array::uniform32(any::<u8>()), owner in any::<u32>(), exp in any::<u32>(),
                                form in arb_form(), nodeid in proptest::array::uniform20(any::<u8>())) {
        let r = LeaseRecord { owner_num: owner, renew_secret: LeaseSecret::from_stored(form, b),
            cancel_secret: LeaseSecret::from_stored(form, [b[0]; 32]), expiration_secs: exp, nodeid: None };
        prop_assert_eq!(LeaseRecord::from_immutable_bytes(form, &r.to_immutable_bytes()), r);
        let m = LeaseRecord { nodeid: Some(nodeid), ..r };
        prop_assert_eq!(LeaseRecord::from_mutable_bytes(form, &m.to_mutable_bytes()), m);
    }

    #[test]
    fn stored_secret_matches_only_its_clear_value(a in proptest::array::uniform32(any::<u8>()),
                                                  b in proptest::array::uniform32(any::<u8>()), form in arb_form()) {
        let s = LeaseSecret::store(form, &a);
        prop_assert!(s.matches(&a));
        prop_assert_eq!(s.matches(&b), a == b);
        if form == SecretForm::Hashed {
            // The hashed form is not accepted as a clear secret.
            prop_assert!(!s.matches(s.stored_bytes()) || hash_lease_secret(&a) == a);
        }
    }

    #[test]
    fn add_or_renew_invariants(ops in proptest::collection::vec((0u8..6, any::<u32>()), 1..40), form in arb_form(),
                               mutable in any::<bool>()) {
        let mut imm: Vec<LeaseRecord> = Vec::new();
        let mut mutl = MutableLeases::empty(form);
        for (tag, exp) in ops {
            let g = grant(tag, exp);
            let (before, after, upd): (Vec<LeaseRecord>, Vec<LeaseRecord>, LeaseUpdate) = if mutable {
                let before = mutl.records.clone();
                let upd = mutl.add_or_renew(&g, None).unwrap();
                (before, mutl.records.clone(), upd)
            } else {
                let before = imm.clone();
                let upd = add_or_renew(&mut imm, form, &g, None).unwrap();
                (before, imm.clone(), upd)
            };
            // Only the touched record changes; expiration never moves backwards.
            for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                if i != upd.index() { prop_assert_eq!(b, a); }
                else if !matches!(upd, LeaseUpdate::Added { .. }) {
                    prop_assert!(a.expiration_secs >= b.expiration_secs);
                    prop_assert_eq!(a.expiration_secs, b.expiration_secs.max(exp));
                    prop_assert_eq!(a.owner_num, b.owner_num);
                }
            }
            prop_assert!(after.len() <= before.len() + 1);
            // Exactly one live lease per renew secret.
            let live = after.iter().filter(|r| !mutable || r.owner_num != 0);
            prop_assert_eq!(live.filter(|r| r.renew_secret.matches(&[tag; 32])).count(), 1);
            prop_assert_eq!(after[upd.index()].renew_secret.form(), form);
        }
        if mutable { prop_assert!(mutl.records.len() >= 4); }
    }

    #[test]
    fn no_space_only_when_growing(n in 0usize..8, avail in 0u64..200) {
        let mut m = MutableLeases::empty(SecretForm::Hashed);
        for i in 0..n { m.add_or_renew(&grant(i as u8, 1), None).unwrap(); }
        let r = m.add_or_renew(&grant(200, 1), Some(avail));
        prop_assert_eq!(r.is_err(), n >= 4 && avail < 92);
        let mut im = Vec::new();
        let r = add_or_renew(&mut im, SecretForm::Hashed, &grant(1, 1), Some(avail));
        prop_assert_eq!(r.is_err(), avail < 72);
    }

    /// The planner against a logical model: share data behaves as a growable byte vector
    /// (gaps read as zero, `new_length` only truncates), leases survive block moves, and
    /// the container never shrinks.
    #[test]
    fn writev_matches_logical_model(
        rounds in proptest::collection::vec(
            (proptest::collection::vec((0u64..700, proptest::collection::vec(any::<u8>(), 0..80)), 0..4),
             proptest::option::of(0u64..900)), 1..6),
        extra in 0u8..7,
    ) {
        let mut c = MutableContainer::new(MutableVersion::V2, [3; 20], [4; 32]);
        let mut file = c.to_bytes();
        for i in 0..extra {
            let mut l = MutableContainer::parse(&file).unwrap();
            let u = l.leases.add_or_renew(&grant(i, 100), None).unwrap();
            apply_file_ops(&mut file, &l.leases.update_ops(l.header.extra_lease_offset, u));
        }
        c = MutableContainer::parse(&file).unwrap();
        let leases = c.leases.clone();
        let mut logical: Vec<u8> = Vec::new();
        let mut size = 0u64;
        for (writes, new_length) in rounds {
            let cur = MutableContainer::parse(&file).unwrap();
            let mut h = cur.header.clone();
            let block = cur.leases.extra_block_bytes();
            let ops = plan_mutable_writev(&mut h, &block, writes.iter().map(|(o, d)| (*o, d.as_slice())), new_length, 1 << 20).unwrap();
            apply_file_ops(&mut file, &ops);
            for (o, d) in &writes {
                let end = *o as usize + d.len();
                if end > logical.len() { logical.resize(end, 0); }
                logical[*o as usize..end].copy_from_slice(d);
            }
            if let Some(n) = new_length { if (n as usize) < logical.len() { logical.truncate(n as usize); } }
            let after = MutableContainer::parse(&file).unwrap();
            prop_assert_eq!(&after.header, &h);
            prop_assert_eq!(after.share_data(), logical.as_slice());
            prop_assert_eq!(&after.leases, &leases);
            prop_assert!(after.header.container_size() >= size);
            size = after.header.container_size();
        }
    }

    /// Read-test-write never panics and obeys its contract on arbitrary small requests.
    #[test]
    fn rtw_contract(
        shares in proptest::collection::btree_map((0u8..4).prop_map(ShareNum), proptest::collection::vec(any::<u8>(), 0..40), 0..3),
        tws in proptest::collection::btree_map((0u8..5).prop_map(ShareNum),
            (proptest::collection::vec((0u64..50, 0u64..50, proptest::collection::vec(any::<u8>(), 0..6)), 0..3),
             proptest::collection::vec((0u64..60, proptest::collection::vec(any::<u8>(), 0..10)), 0..3),
             proptest::option::of(0u64..50)), 0..4),
        reads in proptest::collection::vec((0u64..60, 0u64..60), 0..3),
        good_we in any::<bool>(),
    ) {
        let we = [5u8; 32];
        let nodeid = [6u8; 20];
        let mut files: BTreeMap<ShareNum, Vec<u8>> = BTreeMap::new();
        for (&n, data) in &shares {
            let mut f = new_mutable_container(MutableVersion::V2, nodeid, we);
            let mut h = MutableContainerHeader::parse(&f).unwrap();
            let ops = plan_mutable_writev(&mut h, &[0, 0, 0, 0], [(0u64, data.as_slice())], None, 1 << 20).unwrap();
            apply_file_ops(&mut f, &ops);
            files.insert(n, f);
        }
        let existing: BTreeMap<ShareNum, ExistingShare> = files.iter().map(|(&n, f)| {
            let c = MutableContainer::parse(f).unwrap();
            (n, ExistingShare { header: c.header, leases: c.leases })
        }).collect();
        let req = RtwRequest {
            test_write_vectors: tws.iter().map(|(&n, (t, w, nl))| (n, TestWriteVectors {
                test: t.iter().map(|(o, s, sp)| TestVector { offset: *o, size: *s, specimen: sp.clone() }).collect(),
                write: w.iter().map(|(o, d)| WriteVector { offset: *o, data: d.clone() }).collect(),
                new_length: *nl,
            })).collect(),
            read_vector: reads.iter().map(|(o, s)| ReadVector { offset: *o, size: *s }).collect(),
        };
        let secrets = RtwSecrets { write_enabler: if good_we { we } else { [0; 32] }, lease_renew: [1; 32], lease_cancel: [2; 32] };
        let ctx = RtwContext::new(nodeid, 1_000, None);
        let res = evaluate(&existing, &req, &secrets, &ctx, |n, o, l| {
            let s = (MUTABLE_DATA_OFFSET + o) as usize;
            Ok::<_, ()>(files[&n][s..s + l as usize].to_vec())
        });
        if !good_we && !shares.is_empty() {
            prop_assert!(matches!(res, Err(RtwError::BadWriteEnabler { .. })), "expected bad write enabler");
            return Ok(());
        }
        let out = res.unwrap();
        // Reads: every existing share, clipped, before writes.
        prop_assert_eq!(out.read_data.keys().copied().collect::<Vec<_>>(), shares.keys().copied().collect::<Vec<_>>());
        for (n, v) in &out.read_data {
            for (r, got) in reads.iter().zip(v) {
                let d = &shares[n];
                let s = (r.0 as usize).min(d.len());
                let e = (r.0 + r.1).min(d.len() as u64) as usize;
                prop_assert_eq!(got.as_slice(), &d[s..e.max(s)]);
            }
        }
        // Tests: missing shares are empty; only eq.
        let expect_ok = tws.iter().all(|(n, (t, _, _))| t.iter().all(|(o, s, sp)| {
            let d: &[u8] = shares.get(n).map(|v| v.as_slice()).unwrap_or(&[]);
            let st = (*o as usize).min(d.len());
            let e = ((o + s) as usize).min(d.len()).max(st);
            &d[st..e] == sp.as_slice()
        }));
        prop_assert_eq!(out.success, expect_ok);
        if !out.success { prop_assert!(out.plan.is_empty()); }
        else {
            prop_assert_eq!(out.plan.len(), tws.len());
            for p in &out.plan {
                let nl = tws[&p.shnum].2;
                match &p.action {
                    ShareAction::Delete { existed } => { prop_assert_eq!(nl, Some(0)); prop_assert_eq!(*existed, shares.contains_key(&p.shnum)); }
                    ShareAction::Create { .. } => prop_assert!(!shares.contains_key(&p.shnum)),
                    ShareAction::Update { .. } => prop_assert!(shares.contains_key(&p.shnum)),
                }
                if let Some(r) = &p.result {
                    prop_assert!(r.leases.live().any(|(_, l)| l.renew_secret.matches(&[1; 32])));
                }
            }
        }
    }
}

#[test]
fn write_limits_and_overflow_are_errors() {
    let mut h = MutableContainerHeader::new(MutableVersion::V2, [0; 20], [0; 32]);
    let e = plan_mutable_writev(
        &mut h,
        &[0, 0, 0, 0],
        [(u64::MAX - 1, &b"ab"[..])],
        None,
        MAX_MUTABLE_SHARE_SIZE,
    );
    assert_eq!(e, Err(ContainerError::Overflow));
    let e = plan_mutable_writev(
        &mut h,
        &[0, 0, 0, 0],
        [(MAX_MUTABLE_SHARE_SIZE, &b"a"[..])],
        None,
        MAX_MUTABLE_SHARE_SIZE,
    );
    assert!(matches!(e, Err(ContainerError::DataTooLarge { .. })));
    // A huge gap is a single Zero op, never a buffer.
    let ops = plan_mutable_writev(
        &mut h,
        &[0, 0, 0, 0],
        [(1 << 40, &b"a"[..])],
        None,
        MAX_MUTABLE_SHARE_SIZE,
    )
    .unwrap();
    assert!(ops
        .iter()
        .any(|o| matches!(o, FileOp::Zero { len, .. } if *len == 1 << 40)));
    assert!(check_immutable_write(10, 5, 6).is_err());
    assert!(check_immutable_write(10, u64::MAX, 2).is_err());
    assert_eq!(check_immutable_write(10, 5, 5), Ok(17));
    assert!(expiration_for(u64::from(u32::MAX)).is_err());
}

#[test]
fn expiration_policies() {
    let l = LeaseRecord {
        owner_num: 1,
        renew_secret: LeaseSecret::Hashed([0; 32]),
        cancel_secret: LeaseSecret::Hashed([0; 32]),
        expiration_secs: 1_700_000_000 + DEFAULT_RENEWAL_TIME_SECS,
        nodeid: None,
    };
    let g = 1_700_000_000u64; // grant time
    assert_eq!(l.grant_renew_time_secs(), g as i64);
    let age = ExpirationPolicy::Age {
        override_lease_duration_secs: Some(100),
    };
    assert!(!age.lease_expired(&l, g + 100));
    assert!(age.lease_expired(&l, g + 101));
    // Tahoe quirk: age mode without override compares the age with the absolute
    // expiration timestamp, so a lease expires only ~54 years after its grant.
    let age_none = ExpirationPolicy::Age {
        override_lease_duration_secs: None,
    };
    assert!(!age_none.lease_expired(&l, g + 10 * 365 * 86_400));
    assert!(age_none.lease_expired(&l, g + u64::from(l.expiration_secs) + 1));
    let cut = ExpirationPolicy::CutoffDate { cutoff_secs: g + 1 };
    assert!(cut.lease_expired(&l, 0));
    assert!(!ExpirationPolicy::CutoffDate { cutoff_secs: g }.lease_expired(&l, 0));
    assert!(l.is_expired_at(u64::from(l.expiration_secs)));
    assert!(!l.is_expired_at(u64::from(l.expiration_secs) - 1));
}

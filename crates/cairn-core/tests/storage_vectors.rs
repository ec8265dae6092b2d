//! Share containers and read-test-write against Tahoe-LAFS 1.20 itself.
//!
//! `vectors/containers/{immutable,mutable}.json` are written by
//! `vectors/containers/generate_containers.py`, which drives Tahoe's real `StorageServer`
//! with fixed secrets and a fake clock and records every container file after every
//! operation. Here each operation is replayed on an in-memory model using only cairn's pure
//! API (parse → decide → `FileOp`s → `apply_file_ops`), and every file must come out
//! byte-identical; every response (success flag, read data, write-enabler error) must match.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_core::base32;
use cairn_core::storage::container::*;
use cairn_core::storage::rtw::*;
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../vectors/containers")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hex(v: &Value) -> Vec<u8> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("expected hex string, got {v}"));
    cairn_test_support::data::hex(s)
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    hex(v).try_into().unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected integer, got {v}"))
}

type Files = BTreeMap<String, Vec<u8>>;

fn files_after(step: &Value) -> Files {
    step["files_after"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), hex(v)))
        .collect()
}

fn assert_files(model: &Files, step: &Value, ctx: &str) {
    let expect = files_after(step);
    assert_eq!(
        model.keys().collect::<Vec<_>>(),
        expect.keys().collect::<Vec<_>>(),
        "{ctx}: share set"
    );
    for (k, want) in &expect {
        let got = &model[k];
        if got != want {
            let first = got.iter().zip(want).position(|(a, b)| a != b);
            panic!(
                "{ctx}: share {k} differs (len {} vs {}, first diff at {first:?})",
                got.len(),
                want.len()
            );
        }
    }
}

fn grant(step: &Value, nodeid: NodeId) -> LeaseGrant {
    LeaseGrant {
        owner_num: u(&step["owner_num"]) as u32,
        renew_secret: arr(&step["renew_secret"]),
        cancel_secret: arr(&step["cancel_secret"]),
        expiration_secs: expiration_for(u(&step["now"])).unwrap(),
        nodeid,
    }
}

/// A lease record is the one Tahoe shows: owner, expiration and stored secrets.
fn assert_lease(l: &LeaseRecord, w: &Value) {
    assert_eq!(u64::from(l.owner_num), u(&w["owner_num"]));
    assert_eq!(u64::from(l.expiration_secs), u(&w["expiration"]));
    assert_eq!(
        l.renew_secret.stored_bytes().to_vec(),
        hex(&w["renew_stored"])
    );
    assert_eq!(
        l.cancel_secret.stored_bytes().to_vec(),
        hex(&w["cancel_stored"])
    );
}

/// An immutable container file's header, layout and leases.
fn immutable_leases(file: &[u8]) -> (ImmutableContainerHeader, ImmutableLayout, Vec<LeaseRecord>) {
    let header = ImmutableContainerHeader::parse(file).unwrap();
    let layout = header.layout(file.len() as u64).unwrap();
    let (lo, ll) = layout.leases_range();
    let leases =
        parse_immutable_leases(header.version, &file[lo as usize..(lo + ll) as usize]).unwrap();
    (header, layout, leases)
}

/// A `cancel_lease` step: `cancel` (`immutable_cancel` or `mutable_cancel`) on each share
/// it names frees the bytes it says.
fn replay_cancel(
    model: &mut Files,
    step: &Value,
    ctx: &str,
    cancel: fn(&mut Vec<u8>, &[u8; 32]) -> u64,
) {
    let secret: [u8; 32] = arr(&step["cancel_secret"]);
    for shnum in step["shares"].as_array().unwrap() {
        let f = model.get_mut(shnum.as_str().unwrap()).unwrap();
        let freed = cancel(f, &secret);
        assert_eq!(freed, u(&step["space_freed"]), "{ctx}");
    }
}

/// Tahoe's `add_or_renew_lease` on one immutable container file.
fn immutable_add_or_renew(file: &mut Vec<u8>, g: &LeaseGrant) -> LeaseUpdate {
    let (header, layout, mut leases) = immutable_leases(file);
    let upd = add_or_renew(&mut leases, header.version.secret_form(), g, Some(1 << 40)).unwrap();
    let ops = immutable_lease_update_ops(&layout, &leases, upd);
    apply_file_ops(file, &ops);
    upd
}

/// Tahoe's `add_or_renew_lease` on one mutable container file.
fn mutable_add_or_renew(file: &mut Vec<u8>, g: &LeaseGrant) -> LeaseUpdate {
    let c = MutableContainer::parse(file).unwrap();
    let mut leases = c.leases.clone();
    let upd = leases.add_or_renew(g, Some(1 << 40)).unwrap();
    let ops = leases.update_ops(c.header.extra_lease_offset, upd);
    apply_file_ops(file, &ops);
    upd
}

/// Tahoe's `ShareFile.cancel_lease(cancel_secret)` on one immutable container file
/// (as the lease crawler calls it): returns the bytes freed.
fn immutable_cancel(file: &mut Vec<u8>, cancel: &[u8; 32]) -> u64 {
    let (_, layout, leases) = immutable_leases(file);
    let r = immutable_remove_leases(&layout, &leases, |_, l| l.cancel_secret.matches(cancel));
    assert!(r.removed > 0);
    assert!(r.ops.iter().any(|o| matches!(o, FileOp::Truncate { .. })));
    let before = file.len() as u64;
    apply_file_ops(file, &r.ops);
    assert_eq!(file.len() as u64, r.new_file_size);
    let c = ImmutableContainer::parse(file).unwrap();
    assert_eq!(c.leases, r.leases_after);
    before - r.new_file_size
}

/// Tahoe's `MutableShareFile.cancel_lease(cancel_secret)` on one mutable container file.
fn mutable_cancel(file: &mut Vec<u8>, cancel: &[u8; 32]) -> u64 {
    let c = MutableContainer::parse(file).unwrap();
    let mut leases = c.leases.clone();
    let (n, ops) = leases.cancel(c.header.extra_lease_offset, |_, l| {
        l.cancel_secret.matches(cancel)
    });
    assert!(n > 0);
    let before = file.len() as u64;
    apply_file_ops(file, &ops);
    assert_eq!(MutableContainer::parse(file).unwrap().leases, leases);
    before - file.len() as u64
}

#[test]
fn immutable_vectors_replay() {
    let v = load("immutable.json");
    assert_eq!(v["tahoe_version"], "1.20.0");
    assert_eq!(
        u(&v["default_renewal_time"]),
        u64::from(DEFAULT_RENEWAL_TIME_SECS)
    );
    for hdr in v["new_share_headers"].as_array().unwrap() {
        let h = ImmutableContainerHeader::for_new_share(
            ImmutableVersion::V2,
            u(&hdr["allocated_size"]),
        );
        assert_eq!(h.to_bytes().to_vec(), hex(&hdr["header"]));
        assert_eq!(
            ImmutableContainerHeader::parse(&hex(&hdr["header"])).unwrap(),
            h
        );
    }
    for vec in v["vectors"].as_array().unwrap() {
        let name = vec["name"].as_str().unwrap();
        let nodeid: NodeId = arr(&vec["nodeid"]);
        let mut model: Files = BTreeMap::new();
        for (i, step) in vec["steps"].as_array().unwrap().iter().enumerate() {
            let ctx = format!("{name} step {i} ({})", step["op"]);
            match step["op"].as_str().unwrap() {
                "allocate_write_close" => {
                    let size = u(&step["allocated_size"]);
                    let g = grant(step, nodeid);
                    for (shnum, writes) in step["writes"].as_object().unwrap() {
                        // BucketWriter: create with the header, add the lease at 12+size.
                        let header =
                            ImmutableContainerHeader::for_new_share(ImmutableVersion::V2, size);
                        let mut file = header.to_bytes().to_vec();
                        let layout = ImmutableLayout::for_new_share(size, 0);
                        let mut leases = Vec::new();
                        let upd = add_or_renew(&mut leases, SecretForm::Hashed, &g, None).unwrap();
                        assert_eq!(upd, LeaseUpdate::Added { index: 0 });
                        apply_file_ops(
                            &mut file,
                            &immutable_lease_update_ops(&layout, &leases, upd),
                        );
                        if let Some(inc) = step["incoming_file_before_writes"].get(shnum) {
                            assert_eq!(file, hex(inc), "{ctx}: incoming file");
                        }
                        for w in writes.as_array().unwrap() {
                            let data = hex(&w[1]);
                            let off =
                                check_immutable_write(size, u(&w[0]), data.len() as u64).unwrap();
                            apply_file_ops(
                                &mut file,
                                &[FileOp::Write {
                                    offset: off,
                                    data: data.into(),
                                }],
                            );
                        }
                        assert!(check_immutable_write(size, size, 1).is_err());
                        model.insert(shnum.clone(), file);
                    }
                }
                "add_lease" | "add_or_renew_lease" | "renew_lease" => {
                    let mut g = grant(
                        &{
                            let mut s = step.clone();
                            if s.get("cancel_secret").is_none() {
                                s["cancel_secret"] = Value::String("00".repeat(32));
                                s["owner_num"] = Value::from(1);
                            }
                            s
                        },
                        nodeid,
                    );
                    if step["op"] == "add_or_renew_lease" {
                        g.owner_num = 1;
                    }
                    for file in model.values_mut() {
                        let upd = immutable_add_or_renew(file, &g);
                        if step["op"] == "renew_lease" {
                            assert!(!matches!(upd, LeaseUpdate::Added { .. }), "{ctx}");
                        }
                    }
                }
                "cancel_lease" => replay_cancel(&mut model, step, &ctx, immutable_cancel),
                "file" => {
                    model = files_after(step);
                    let file = &model["0"];
                    let h = ImmutableContainerHeader::parse(file).unwrap();
                    let layout = h.layout(file.len() as u64).unwrap();
                    for r in step["reads"].as_array().unwrap() {
                        let (fo, n) = layout.read_range(u(&r[0]), u(&r[1]));
                        assert_eq!(
                            file[fo as usize..(fo + n) as usize].to_vec(),
                            hex(&r[2]),
                            "{ctx}: read {r}"
                        );
                    }
                }
                op => panic!("unknown op {op}"),
            }
            assert_files(&model, step, &ctx);
        }
        // Decoded view agrees with Tahoe's own ShareFile.
        for (shnum, want) in vec["final_decoded"].as_object().unwrap() {
            let file = &model[shnum];
            let c = ImmutableContainer::parse(file).unwrap();
            assert_eq!(c.to_bytes(), *file);
            assert_eq!(u64::from(c.header.version.number()), u(&want["version"]));
            assert_eq!(
                u64::from(c.header.max_size_field),
                u(&want["max_size_field"])
            );
            assert_eq!(u64::from(c.header.num_leases), u(&want["num_leases"]));
            assert_eq!(c.data.len() as u64, u(&want["data_len"]));
            let wl = want["leases"].as_array().unwrap();
            assert_eq!(c.leases.len(), wl.len());
            for (l, w) in c.leases.iter().zip(wl) {
                assert_lease(l, w);
            }
        }
    }
}

#[test]
fn immutable_v1_sample_reads_and_secrets() {
    let v = load("immutable.json");
    let vec = v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "v1-test-storage-85-bytes")
        .unwrap();
    let file = hex(&vec["steps"][0]["files_after"]["0"]);
    assert_eq!(file.len(), 85);
    let c = ImmutableContainer::parse(&file).unwrap();
    assert_eq!(c.header.version, ImmutableVersion::V1);
    assert_eq!(c.data, b"a");
    let l = &c.leases[0];
    assert!(l.renew_secret.matches(b"THIS LETS ME RENEW YOUR FILE...."));
    assert!(l.cancel_secret.matches(b"THIS LETS ME KILL YOUR FILE HAHA"));
    assert!(!l.renew_secret.matches(b"THIS LETS ME KILL YOUR FILE HAHA"));
    assert_eq!(l.expiration_secs, DEFAULT_RENEWAL_TIME_SECS);
}

fn existing_shares(model: &Files) -> BTreeMap<ShareNum, ExistingShare> {
    model
        .iter()
        .map(|(k, f)| {
            let c = MutableContainer::parse(f).unwrap();
            (
                ShareNum(k.parse().unwrap()),
                ExistingShare {
                    header: c.header,
                    leases: c.leases,
                },
            )
        })
        .collect()
}

fn rtw_request(step: &Value) -> (RtwRequest, RtwSecrets) {
    let s = &step["secrets"];
    let secrets = RtwSecrets {
        write_enabler: arr(&s["write_enabler"]),
        lease_renew: arr(&s["lease_renew"]),
        lease_cancel: arr(&s["lease_cancel"]),
    };
    let r = &step["request"];
    let mut req = RtwRequest::default();
    for (k, tw) in r["test_write_vectors"].as_object().unwrap() {
        req.test_write_vectors.insert(
            ShareNum(k.parse().unwrap()),
            TestWriteVectors {
                test: tw["test"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| TestVector {
                        offset: u(&t["offset"]),
                        size: u(&t["size"]),
                        specimen: hex(&t["specimen"]),
                    })
                    .collect(),
                write: tw["write"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| WriteVector {
                        offset: u(&w["offset"]),
                        data: hex(&w["data"]),
                    })
                    .collect(),
                new_length: tw["new_length"].as_u64(),
            },
        );
    }
    req.read_vector = r["read_vector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| ReadVector {
            offset: u(&x["offset"]),
            size: u(&x["size"]),
        })
        .collect();
    (req, secrets)
}

#[test]
fn mutable_vectors_replay() {
    let v = load("mutable.json");
    assert_eq!(u(&v["max_mutable_share_size"]), MAX_MUTABLE_SHARE_SIZE);
    let mut n_rtw = 0;
    for sc in v["scenarios"].as_array().unwrap() {
        let name = sc["name"].as_str().unwrap();
        let nodeid: NodeId = arr(&sc["nodeid"]);
        let mut model: Files = BTreeMap::new();
        for (i, step) in sc["steps"].as_array().unwrap().iter().enumerate() {
            let ctx = format!("{name} step {i} ({}: {})", step["op"], step["note"]);
            match step["op"].as_str().unwrap() {
                "create_v1" => {
                    let f = new_mutable_container(
                        MutableVersion::V1,
                        arr(&step["nodeid"]),
                        arr(&step["write_enabler"]),
                    );
                    model.insert("0".into(), f);
                }
                "add_lease" => {
                    let g = grant(step, nodeid);
                    for f in model.values_mut() {
                        mutable_add_or_renew(f, &g);
                    }
                }
                "cancel_lease" => replay_cancel(&mut model, step, &ctx, mutable_cancel),
                "rtw" => {
                    n_rtw += 1;
                    let (req, secrets) = rtw_request(step);
                    let existing = existing_shares(&model);
                    let rctx = RtwContext::new(nodeid, u(&step["now"]), Some(1 << 40));
                    let snapshot = model.clone();
                    let res = evaluate(&existing, &req, &secrets, &rctx, |shnum, off, len| {
                        let f = &snapshot[&shnum.to_string()];
                        let s = (MUTABLE_DATA_OFFSET + off) as usize;
                        Ok::<_, std::convert::Infallible>(f[s..s + len as usize].to_vec())
                    });
                    let resp = &step["response"];
                    match res {
                        Err(RtwError::BadWriteEnabler { source, .. }) => {
                            assert_eq!(resp["error"], "BadWriteEnablerError", "{ctx}");
                            let b32 = base32::encode(&source.recorded_by);
                            assert!(
                                resp["message"].as_str().unwrap().contains(&b32),
                                "{ctx}: {b32}"
                            );
                        }
                        Err(e) => panic!("{ctx}: unexpected error {e}"),
                        Ok(out) => {
                            assert_eq!(out.success, resp["success"].as_bool().unwrap(), "{ctx}");
                            let want: BTreeMap<ShareNum, Vec<Vec<u8>>> = resp["data"]
                                .as_object()
                                .unwrap()
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        ShareNum(k.parse().unwrap()),
                                        v.as_array().unwrap().iter().map(hex).collect(),
                                    )
                                })
                                .collect();
                            assert_eq!(out.read_data, want, "{ctx}: read data");
                            if !out.success {
                                assert!(out.plan.is_empty());
                            }
                            for p in &out.plan {
                                let key = p.shnum.to_string();
                                match &p.action {
                                    ShareAction::Create { initial, ops } => {
                                        assert!(!model.contains_key(&key));
                                        let mut f = initial.clone();
                                        apply_file_ops(&mut f, ops);
                                        model.insert(key.clone(), f);
                                    }
                                    ShareAction::Update { ops } => {
                                        apply_file_ops(model.get_mut(&key).unwrap(), ops)
                                    }
                                    ShareAction::Delete { existed } => {
                                        assert_eq!(model.remove(&key).is_some(), *existed);
                                    }
                                }
                                if let Some(r) = &p.result {
                                    // The plan's own view of the result matches the bytes.
                                    let c = MutableContainer::parse(&model[&key]).unwrap();
                                    assert_eq!(&c.header, &r.header, "{ctx}");
                                    assert_eq!(&c.leases, &r.leases, "{ctx}");
                                }
                            }
                        }
                    }
                }
                op => panic!("unknown op {op}"),
            }
            assert_files(&model, step, &ctx);
        }
        for (shnum, want) in sc["final_decoded"].as_object().unwrap() {
            let file = &model[shnum];
            let c = MutableContainer::parse(file).unwrap();
            assert_eq!(&c.to_bytes(), file);
            assert_eq!(c.header.version.magic().to_vec(), hex(&want["magic"]));
            assert_eq!(c.header.nodeid.to_vec(), hex(&want["nodeid"]));
            assert_eq!(c.header.write_enabler.to_vec(), hex(&want["write_enabler"]));
            assert_eq!(c.header.data_length, u(&want["data_length"]));
            assert_eq!(c.header.extra_lease_offset, u(&want["extra_lease_offset"]));
            assert_eq!(
                u64::from(c.leases.extra_count()),
                u(&want["num_extra_leases"])
            );
            assert_eq!(c.share_data().to_vec(), hex(&want["share_data"]));
            let live: Vec<_> = c.leases.live().collect();
            let wl = want["live_leases"].as_array().unwrap();
            assert_eq!(live.len(), wl.len());
            for ((idx, l), w) in live.into_iter().zip(wl) {
                assert_eq!(idx as u64, u(&w["index"]));
                assert_lease(l, w);
                assert_eq!(l.nodeid.unwrap().to_vec(), hex(&w["nodeid"]));
            }
        }
    }
    assert!(n_rtw >= 15);
}

#[test]
fn empty_mutable_containers() {
    let v = load("mutable.json");
    let e = &v["empty_containers"];
    let v2 = hex(&e["v2"]);
    let c = MutableContainer::parse(&v2).unwrap();
    assert_eq!(c.header.version, MutableVersion::V2);
    assert_eq!(
        new_mutable_container(MutableVersion::V2, c.header.nodeid, c.header.write_enabler),
        v2
    );
    let v1 = hex(&e["v1"]);
    let c = MutableContainer::parse(&v1).unwrap();
    assert_eq!(c.header.version, MutableVersion::V1);
    assert_eq!(
        new_mutable_container(MutableVersion::V1, c.header.nodeid, c.header.write_enabler),
        v1
    );
}

#[test]
fn v2_magic_is_derived_as_tahoe_does() {
    let text = b"Tahoe mutable container v2\n";
    let h = cairn_core::hashutil::tagged_hash(
        cairn_core::hashutil::tags::MUTABLE_CONTAINER_HEADER,
        text,
    );
    let mut m = text.to_vec();
    m.extend_from_slice(&h[..5]);
    assert_eq!(m, MUTABLE_MAGIC_V2.to_vec());
}

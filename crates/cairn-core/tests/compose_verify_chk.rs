//! The verify-every-share CHK download (`client::compose::verify_chk`) against simulated
//! servers holding in-memory shares, on virtual time: all shares good; a corrupt block in
//! one share reported against that share (and where) while the file is still recovered;
//! a server that is down or stalls; a share found nowhere; too few shares to recover.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use cairn_core::cap::ChkReadCap;
use cairn_core::chk::{encode_file, DecodeError, EncodedFile, EncodingParams};
use cairn_core::client::compose::verify_chk::{
    Action, ShareStatus, VerifyReport, VerifyingDownload, OWN,
};
use cairn_core::client::download::{self, DownloadConfig, Event, Millis, ServerInfo};
use cairn_core::client::machine::{Failure, Fault, RunJob, ServerIndex, ShareNum};
use cairn_test_support::data;
use cairn_test_support::stepping::bounded;

type Buf = Arc<[u8]>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Behaviour {
    Normal,
    Down,
    /// Never answers a read.
    StallReads,
}

struct SimServer {
    shares: BTreeMap<ShareNum, Vec<u8>>,
    latency: Millis,
    behaviour: Behaviour,
}

struct Run {
    report: VerifyReport,
    data: Vec<u8>,
    ids: Vec<u64>,
    corrupt_reports: Vec<(ServerIndex, Option<ShareNum>)>,
}

fn cfg() -> DownloadConfig {
    DownloadConfig {
        stall_timeout: 1000,
        read_batch_bytes: 8192,
        guessed_segment_size: 4096,
        ..DownloadConfig::default()
    }
}

/// Runs the machine: answers after each server's latency, jobs at once, ticks at the
/// machine's deadlines.
fn run(cap: &ChkReadCap, servers: &[SimServer]) -> Run {
    let infos = (0..servers.len())
        .map(|i| ServerInfo::new(format!("srv{i}")))
        .collect();
    let mut m: VerifyingDownload<Buf> = VerifyingDownload::new(cap, infos, cfg()).unwrap();
    let mut now: Millis = 0;
    let mut queue: BTreeMap<(Millis, u64), Event<Buf>> = BTreeMap::new();
    let mut pending: BTreeMap<u64, (Millis, u64)> = BTreeMap::new();
    let mut seq = 0u64;
    let mut data = Vec::new();
    let mut ids = Vec::new();
    let mut corrupt_reports = Vec::new();
    let mut actions = m.start(now);
    let report = bounded(1_000_000, || {
        let mut done = None;
        for a in actions.drain(..) {
            seq += 1;
            match a {
                Action::Finish(r) => done = Some(r),
                Action::Send {
                    id,
                    server,
                    request: download::Request::ListShares,
                } => {
                    ids.push(id);
                    let s = &servers[server.get()];
                    let ev = match s.behaviour {
                        Behaviour::Down => Event::Failed {
                            id,
                            failure: Failure::new(Fault::Network, "connection refused"),
                        },
                        _ => Event::Answer {
                            id,
                            response: download::Response::Listed(
                                s.shares.keys().copied().collect(),
                            ),
                        },
                    };
                    queue.insert((now + s.latency, seq), ev);
                    pending.insert(id, (now + s.latency, seq));
                }
                Action::Send {
                    id,
                    server,
                    request:
                        download::Request::Read {
                            shnum, offset, len, ..
                        },
                } => {
                    ids.push(id);
                    let s = &servers[server.get()];
                    let ev = match (s.behaviour, s.shares.get(&shnum)) {
                        (Behaviour::StallReads, _) => continue,
                        (Behaviour::Down, _) | (_, None) => Event::Failed {
                            id,
                            failure: Failure::new(Fault::Network, "down"),
                        },
                        (Behaviour::Normal, Some(sh)) => {
                            let a = (offset as usize).min(sh.len());
                            let b = (offset.saturating_add(len) as usize).min(sh.len());
                            Event::Answer {
                                id,
                                response: download::Response::Read(Arc::from(&sh[a..b])),
                            }
                        }
                    };
                    queue.insert((now + s.latency, seq), ev);
                    pending.insert(id, (now + s.latency, seq));
                }
                Action::Cancel { id } => {
                    if let Some(k) = pending.remove(&id) {
                        queue.remove(&k);
                    }
                }
                Action::Work(job) => {
                    queue.insert((now, seq), Event::Worked(job.run()));
                }
                Action::Output(c) => data.extend_from_slice(&c.data),
                Action::Report(p) => {
                    if p.kind == download::ProblemKind::Corrupt {
                        corrupt_reports.push((p.server, p.shnum));
                    }
                }
            }
        }
        if let Some(r) = done {
            assert!(m.is_done());
            return ControlFlow::Break(r);
        }
        let next = queue.keys().next().copied();
        match (next, m.next_deadline()) {
            (Some((t, _)), d) if d.is_none_or(|d| t <= d) => {
                let (key, ev) = queue.pop_first().unwrap();
                pending.retain(|_, v| *v != key);
                now = now.max(t);
                if let Some(id) = ev.request() {
                    assert!(id < OWN || id & OWN != 0);
                }
                actions = m.handle(ev, now);
            }
            (_, Some(d)) => {
                now = now.max(d);
                actions = m.handle(Event::Tick, now);
            }
            _ => panic!("machine waits for nothing and did not finish"),
        }
        ControlFlow::Continue(())
    })
    .expect("no end");
    Run {
        report,
        data,
        ids,
        corrupt_reports,
    }
}

fn encode(len: usize, k: u16, n: u16) -> (Vec<u8>, EncodedFile) {
    let plain = data::bytes(len, len as u64 ^ 0x5eed);
    let params = EncodingParams::new(k, k.min(n), n, 4096).unwrap();
    let f = encode_file(&params, [7u8; 16], &plain, None).unwrap();
    (plain, f)
}

/// Server i holds share i.
fn one_each(f: &EncodedFile) -> Vec<SimServer> {
    f.shares
        .iter()
        .enumerate()
        .map(|(i, s)| SimServer {
            shares: BTreeMap::from([(
                ShareNum::try_from(i).expect("at most 256 shares"),
                s.clone(),
            )]),
            latency: 5 + i as u64,
            behaviour: Behaviour::Normal,
        })
        .collect()
}

/// The key of share `sh` on server `server` in [`statuses`].
fn key(server: u32, sh: u8) -> (ServerIndex, ShareNum) {
    (ServerIndex(server), ShareNum(sh))
}

fn statuses(r: &VerifyReport) -> BTreeMap<(ServerIndex, ShareNum), ShareStatus> {
    r.shares
        .iter()
        .map(|s| ((s.server, s.shnum), s.status.clone()))
        .collect()
}

#[test]
fn all_good_shares_report_good() {
    let (plain, f) = encode(40_000, 3, 10);
    let r = run(&f.trailer.read_cap(), &one_each(&f));
    assert_eq!(r.report.download, Ok(()));
    assert!(r.data == plain);
    assert_eq!(r.report.shares.len(), 10);
    assert!(r
        .report
        .shares
        .iter()
        .all(|s| s.status == ShareStatus::Good && u32::from(s.shnum.0) == s.server.0));
    assert!(r.report.missing.is_empty());
    assert!(r.report.unreachable_servers.is_empty());
    assert_eq!(r.report.good_shares().len(), 10);
    let uniq: BTreeSet<_> = r.ids.iter().collect();
    assert_eq!(uniq.len(), r.ids.len(), "request ids never collide");
}

#[test]
fn a_corrupt_block_is_reported_against_its_share_and_the_file_is_recovered() {
    let (plain, mut f) = encode(40_000, 3, 10);
    let g = f.trailer.geometry;
    // share 7 (a slow server, so the download does not use it): segment 5's block
    let at = (f.trailer.offsets.data + 5 * g.block_size + 10) as usize;
    f.shares[7][at] ^= 0x40;
    let r = run(&f.trailer.read_cap(), &one_each(&f));
    assert_eq!(r.report.download, Ok(()));
    assert!(r.data == plain);
    let st = statuses(&r.report);
    assert_eq!(
        st[&key(7, 7)],
        ShareStatus::Corrupt(DecodeError::BadBlockHash {
            shnum: ShareNum(7),
            segment: 5
        })
    );
    for (key, s) in &st {
        if key.1 != ShareNum(7) {
            assert_eq!(*s, ShareStatus::Good, "{key:?}");
        }
    }
    assert!(r
        .corrupt_reports
        .contains(&(ServerIndex(7), Some(ShareNum(7)))));
    assert_eq!(r.report.good_shares().len(), 9);

    // the same in a share the download does use
    let (plain, mut f) = encode(40_000, 3, 10);
    let at = (f.trailer.offsets.data + 2 * g.block_size) as usize;
    f.shares[0][at] ^= 1;
    let r = run(&f.trailer.read_cap(), &one_each(&f));
    assert_eq!(r.report.download, Ok(()));
    assert!(r.data == plain);
    assert_eq!(
        statuses(&r.report)[&key(0, 0)],
        ShareStatus::Corrupt(DecodeError::BadBlockHash {
            shnum: ShareNum(0),
            segment: 2
        })
    );
}

#[test]
fn down_stalled_and_missing() {
    let (plain, f) = encode(40_000, 3, 10);
    let mut servers = one_each(&f);
    servers[8].behaviour = Behaviour::Down;
    servers[9].behaviour = Behaviour::StallReads;
    // share 5 exists nowhere (its server is empty); share 8's server is down
    servers[5].shares.clear();
    let r = run(&f.trailer.read_cap(), &servers);
    assert_eq!(r.report.download, Ok(()));
    assert!(r.data == plain);
    assert_eq!(r.report.missing, vec![ShareNum(5), ShareNum(8)]);
    assert_eq!(r.report.unreachable_servers.len(), 1);
    assert_eq!(r.report.unreachable_servers[0].0, ServerIndex(8));
    let st = statuses(&r.report);
    assert!(
        matches!(&st[&key(9, 9)], ShareStatus::Unreachable(why) if why.contains("no answer")),
        "{:?}",
        st[&key(9, 9)]
    );
    assert_eq!(st.values().filter(|s| **s == ShareStatus::Good).count(), 7);
}

#[test]
fn too_few_shares_still_reports_each() {
    let (_, f) = encode(40_000, 3, 10);
    let mut servers = one_each(&f);
    for s in &mut servers[2..] {
        s.shares.clear();
    }
    let r = run(&f.trailer.read_cap(), &servers);
    assert!(r.report.download.is_err());
    assert_eq!(r.report.shares.len(), 2);
    // whether the UEB was verified before the download gave up decides whether the two
    // shares could be checked; either way they are not called corrupt
    for s in &r.report.shares {
        assert!(
            matches!(s.status, ShareStatus::Good | ShareStatus::Unchecked(_)),
            "{s:?}"
        );
    }
    assert_eq!(r.report.missing, (2..10).map(ShareNum).collect::<Vec<_>>());
}

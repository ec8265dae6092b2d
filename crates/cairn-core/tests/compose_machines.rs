//! The composite decisions of `client::compose` against the in-memory grid: the
//! in-place-or-whole modify decision for every case it distinguishes, and the collision
//! recovery machine run to its end (nothing to do, republish of the best version, of this
//! writer's data, nothing to republish), with its request ids never colliding across
//! phases and late answers of an earlier phase ignored.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::ControlFlow;

use cairn_core::client::compose::collision::{
    self, Action, CollisionRecovery, Encode, Event, NewVersion, Outcome, RecoveryConfig, Request,
    Response, Source,
};
use cairn_core::client::compose::modify::{
    self, after_setback, kept_reads, AfterSetback, How, KeptReads, ModifyError, PastEnd, Setback,
    WholeReason,
};
use cairn_core::client::machine::{Failure, Fault, Machine, RequestId};
use cairn_core::client::mutable::servermap::{self, Mode, ServerMap, UpdateConfig};
use cairn_core::client::mutable::{publish, retrieve, RetrieveConfig, ServerIndex, ShareNum};
use cairn_core::mutable::codec::Encoding;
use cairn_core::mutable::MutableFormat;
use cairn_test_support::data;
use cairn_test_support::fake_grid::{self, Grid};
use cairn_test_support::fixtures::{self, key1, retrieve_keys, MutableVersion as Version};
use cairn_test_support::stepping::{bounded, MAX_STEPS};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const K: u8 = 3;
const N: u8 = 10;
/// 1026-byte MDMF segments at k=3.
const SMALL_SEGMENT: u64 = 1024;
const SEG: u64 = 1026;

fn version(format: MutableFormat, seqnum: u64, len: usize) -> Version {
    fixtures::make_version(
        format,
        (K, N),
        Some(SMALL_SEGMENT),
        seqnum,
        &data::bytes(len, seqnum),
        seqnum * 13,
    )
}

fn update(grid: &mut Grid, mode: Mode) -> ServerMap {
    let cfg = UpdateConfig::new(mode, K, N, key1().verifying_key().fingerprint());
    fake_grid::update_immediate(grid, cfg)
}

/// Ten servers, share `s - 1` of `v` on server `s`.
fn full_grid(v: &Version) -> Grid {
    Grid::with_version(10, v, 1..11)
}

fn whole(map: &ServerMap, offset: u64, len: u64) -> WholeReason {
    match modify::decide(map, offset, len, PastEnd::FillZeros)
        .unwrap()
        .how
    {
        How::Whole(w) => w,
        How::InPlace(p) => panic!("expected a whole republish, got in place {:?}", p.plan),
    }
}

#[test]
fn mdmf_with_every_share_of_one_version_changes_in_place() {
    let v = version(MutableFormat::Mdmf, 1, 10_000);
    let map = update(&mut full_grid(&v), Mode::Write);
    let d = modify::decide(&map, 2000, 10, PastEnd::FillZeros).unwrap();
    assert_eq!((d.offset, d.size), (2000, 10_000));
    let How::InPlace(p) = d.how else {
        panic!("expected in place")
    };
    assert_eq!(p.seqnum, 2);
    assert_eq!(p.version.seqnum, 1);
    assert_eq!(p.holders.len(), usize::from(N));
    assert_eq!(p.plan.segments, 1..2);
    // at the very end of the file (appending) is still in place
    let d = modify::decide(&map, 10_000, 5, PastEnd::FillZeros).unwrap();
    assert!(matches!(d.how, How::InPlace(_)));
}

#[test]
fn every_whole_republish_case() {
    // SDMF
    let s = version(MutableFormat::Sdmf, 1, 10_000);
    let map = update(&mut full_grid(&s), Mode::Write);
    assert_eq!(whole(&map, 0, 1), WholeReason::Sdmf);

    // one segment
    let one = version(MutableFormat::Mdmf, 1, 1000);
    let map = update(&mut full_grid(&one), Mode::Write);
    assert_eq!(whole(&map, 0, 1), WholeReason::OneSegment);

    let v1 = version(MutableFormat::Mdmf, 1, 10_000);
    // a hole past the end
    let map = update(&mut full_grid(&v1), Mode::Write);
    assert_eq!(whole(&map, 10_001, 1), WholeReason::PastTheEnd);

    // a share missing
    let mut g = Grid::with_version(10, &v1, 1..10);
    let map = update(&mut g, Mode::Write);
    assert_eq!(whole(&map, 0, 1), WholeReason::MissingShares);

    // an older version beside the newest
    let v0 = fixtures::make_version(
        MutableFormat::Mdmf,
        (K, N),
        Some(SMALL_SEGMENT),
        1,
        &data::bytes(10_000, 9),
        99,
    );
    let v2 = version(MutableFormat::Mdmf, 2, 10_000);
    let mut g = full_grid(&v2);
    g.put(ServerIndex(1), ShareNum(9), &v0.shares[&ShareNum(9)]);
    let map = update(&mut g, Mode::Write);
    assert_eq!(map.best_recoverable_version().unwrap().seqnum, 2);
    assert_eq!(whole(&map, 0, 1), WholeReason::OtherVersionsOrBadShares);

    // a newer unrecoverable version above the best
    let mut g = full_grid(&v1);
    g.put(ServerIndex(1), ShareNum(0), &v2.shares[&ShareNum(0)]);
    let map = update(&mut g, Mode::Write);
    assert_eq!(map.best_recoverable_version().unwrap().seqnum, 1);
    assert_eq!(whole(&map, 0, 1), WholeReason::OtherVersionsOrBadShares);

    // a bad share
    let mut g = full_grid(&v1);
    let mut bad = v1.shares[&ShareNum(4)].clone();
    // inside the signed root hash: the signature no longer verifies
    bad[20] ^= 1;
    g.put(ServerIndex(5), ShareNum(4), &bad);
    let map = update(&mut g, Mode::Write);
    assert_eq!(map.bad_shares().len(), 1);
    assert_eq!(whole(&map, 0, 1), WholeReason::OtherVersionsOrBadShares);
}

#[test]
fn offsets_past_the_end() {
    let m = version(MutableFormat::Mdmf, 1, 10_000);
    let map = update(&mut full_grid(&m), Mode::Write);
    assert_eq!(
        modify::decide(&map, 10_001, 1, PastEnd::Tahoe),
        Err(ModifyError::OffsetPastEnd {
            offset: 10_001,
            size: 10_000
        })
    );
    // Tahoe: exactly at the end is allowed
    assert_eq!(
        modify::decide(&map, 10_000, 1, PastEnd::Tahoe)
            .unwrap()
            .offset,
        10_000
    );
    let s = version(MutableFormat::Sdmf, 1, 500);
    let map = update(&mut full_grid(&s), Mode::Write);
    let d = modify::decide(&map, 900, 3, PastEnd::Tahoe).unwrap();
    assert_eq!(d.offset, 500, "SDMF writes at the end");
    let d = modify::decide(&map, 900, 3, PastEnd::FillZeros).unwrap();
    assert_eq!(d.offset, 900);
}

#[test]
fn nothing_recoverable_cannot_be_modified() {
    let v = version(MutableFormat::Mdmf, 1, 10_000);
    let map = update(&mut Grid::with_version(10, &v, 1..3), Mode::Write);
    assert_eq!(
        modify::decide(&map, 0, 1, PastEnd::FillZeros),
        Err(ModifyError::Unrecoverable)
    );
}

#[test]
fn kept_plaintext_reads_at_segment_boundaries() {
    let v = version(MutableFormat::Mdmf, 1, 10_000);
    let map = update(&mut full_grid(&v), Mode::Write);
    let reads = |offset, len| {
        let How::InPlace(p) = modify::decide(&map, offset, len, PastEnd::FillZeros)
            .unwrap()
            .how
        else {
            panic!("expected in place")
        };
        kept_reads(&p.plan)
    };
    // whole segments: nothing kept
    assert_eq!(reads(SEG, SEG), KeptReads::Nothing);
    // starts on a boundary, ends inside: the tail
    assert_eq!(reads(SEG, 10), KeptReads::Tail(SEG + 10..2 * SEG));
    // starts inside, ends on a boundary: the head
    assert_eq!(reads(SEG + 10, SEG - 10), KeptReads::Head(SEG..SEG + 10));
    // inside one segment: one joined read
    assert_eq!(
        reads(SEG + 10, 5),
        KeptReads::Joined {
            range: SEG..2 * SEG,
            head_len: 10,
            tail_from: 15
        }
    );
    // neighbouring segments: still joined
    assert!(matches!(reads(SEG + 10, SEG), KeptReads::Joined { .. }));
    // far apart: two reads
    assert_eq!(
        reads(10, 5 * SEG),
        KeptReads::Both {
            head: 0..10,
            tail: 5 * SEG + 10..6 * SEG
        }
    );
    // past the old end: only the head
    assert_eq!(reads(9990, 100), KeptReads::Head(9 * SEG..9990));
}

#[test]
fn setbacks() {
    assert_eq!(
        after_setback(Setback::OldSharesUnreadable),
        AfterSetback::Whole
    );
    assert_eq!(after_setback(Setback::NotComputable), AfterSetback::Whole);
    assert_eq!(
        after_setback(Setback::TooFewServers),
        AfterSetback::RefreshThenWhole
    );
    assert_eq!(
        after_setback(Setback::OldPlaintextUnreadable),
        AfterSetback::Fail
    );
    assert_eq!(after_setback(Setback::Other), AfterSetback::Fail);
}

// ---------------------------------------------------------------------------------------
// Collision recovery

fn recovery_config(format: MutableFormat) -> RecoveryConfig {
    RecoveryConfig {
        update: UpdateConfig::new(Mode::Check, K, N, key1().verifying_key().fingerprint()),
        retrieve: RetrieveConfig::default(),
        keys: retrieve_keys(),
        happy: 7,
        write_timeout: 30_000,
        format,
        k: K,
        n: N,
    }
}

/// A recovery run: its outcome, every request id it handed out, the versions encoded.
struct Run {
    outcome: Outcome,
    ids: Vec<RequestId>,
    encoded: Vec<NewVersion>,
}

/// Run recovery on `grid`, answering each request as it is sent. With `late`, every
/// check-phase answer is delivered a second time when the read phase starts (or at the
/// end): the machine must drop them.
fn recover(grid: &mut Grid, format: MutableFormat, ours: Option<Vec<u8>>, late: bool) -> Run {
    let mut m = CollisionRecovery::new(recovery_config(format), &grid.order(), ours);
    let mut queue: VecDeque<Action> = Machine::start(&mut m, 0).into();
    let mut ids = Vec::new();
    let mut encoded = Vec::new();
    let mut written: Option<Version> = None;
    let mut replay: Vec<Event> = Vec::new();
    let mut now = 0;
    let outcome = bounded(MAX_STEPS, || {
        let Some(action) = queue.pop_front() else {
            if !m.is_done() {
                // only unanswered (stalled) requests are left: let the timer fire
                now = m.next_deadline().expect("waiting for something");
                queue.extend(m.handle(Event::Tick, now).unwrap());
                return ControlFlow::Continue(());
            }
            for e in replay.drain(..) {
                assert_eq!(m.handle(e, now).unwrap(), Vec::new());
            }
            return ControlFlow::Break(m.outcome().unwrap().clone());
        };
        now += 1;
        let event = match action {
            Action::Send {
                id,
                server,
                request: Request::Check(read),
            } => {
                let (shnum, offset, len) = match read {
                    servermap::Read::Query { len } => (None, 0, len),
                    servermap::Read::Share { shnum, offset, len } => (Some(shnum), offset, len),
                };
                ids.push(id);
                if grid.servers[&server].stalled {
                    return ControlFlow::Continue(());
                }
                let e = answer(id, grid.read(server, shnum, offset, len), Response::Check);
                if late {
                    replay.push(e.clone());
                }
                e
            }
            Action::Send {
                id,
                server,
                request:
                    Request::Read(retrieve::Read {
                        shnum, offset, len, ..
                    }),
            } => {
                // answers of the check phase arriving again now are dropped
                for e in replay.drain(..) {
                    assert_eq!(m.handle(e, now).unwrap(), Vec::new());
                }
                ids.push(id);
                let read = grid
                    .read(server, Some(shnum), offset, len)
                    .and_then(|mut s| s.remove(&shnum).ok_or_else(|| "no such share".into()));
                answer(id, read, Response::Read)
            }
            Action::Work(Encode { data, version }) => {
                encoded.push(version);
                let mut enc = Encoding::new(version.format, version.k, version.n, version.seqnum);
                enc.max_segment_size = SMALL_SEGMENT;
                let v = fixtures::encode_version(&enc, &data, &mut ChaCha20Rng::seed_from_u64(5));
                let header = v.header.clone();
                written = Some(v);
                Event::Worked(Ok(header))
            }
            Action::Send {
                id,
                server,
                request: Request::Publish(publish::Write { shares }),
            } => {
                ids.push(id);
                if grid.servers[&server].stalled {
                    return ControlFlow::Continue(());
                }
                let v = written.as_ref().expect("encoded before publishing");
                let w = grid
                    .test_and_write(server, &shares, v)
                    .map(|(wrote, current)| publish::Written { wrote, current });
                answer(id, w, Response::Publish)
            }
            // bad shares of the check, stalls: the driver's scoring
            Action::Report(_) | Action::Cancel { .. } | Action::Finish(_) => {
                return ControlFlow::Continue(())
            }
            Action::Output(never) => match never {},
        };
        assert!(event.request().is_some() || matches!(event, Event::Worked(_)));
        queue.extend(m.handle(event, now).unwrap());
        ControlFlow::Continue(())
    })
    .expect("recovery did not finish");
    Run {
        outcome,
        ids,
        encoded,
    }
}

/// The event of a fake server's answer (or failure) to request `id`.
fn answer<R>(id: RequestId, r: Result<R, String>, wrap: fn(R) -> Response) -> Event {
    match r {
        Ok(r) => Event::Answer {
            id,
            response: wrap(r),
        },
        Err(message) => Event::Failed {
            id,
            failure: Failure::new(Fault::Network, message),
        },
    }
}

fn assert_unique(ids: &[RequestId]) {
    let set: BTreeSet<_> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "a request id was handed out twice");
}

#[test]
fn newest_recoverable_needs_nothing() {
    let v = version(MutableFormat::Mdmf, 4, 5000);
    let mut g = full_grid(&v);
    let run = recover(&mut g, MutableFormat::Mdmf, Some(b"ours".to_vec()), false);
    assert_eq!(run.outcome, Outcome::NewestRecoverable { seqnum: 4 });
    assert!(run.encoded.is_empty());
    assert!(g.writes.is_empty());
    // a query per server, and a follow-up read of each MDMF share's key and signature
    assert_eq!(run.ids.len(), 20);
    assert_unique(&run.ids);
}

#[test]
fn an_unrecoverable_newer_version_gets_the_best_one_republished_above_it() {
    for format in [MutableFormat::Sdmf, MutableFormat::Mdmf] {
        let v1 = version(format, 1, 5000);
        let v2 = version(format, 2, 5000);
        let mut g = full_grid(&v1);
        // the other writer got two shares of seqnum 2 out (k = 3): not recoverable
        g.put(ServerIndex(1), ShareNum(0), &v2.shares[&ShareNum(0)]);
        g.put(ServerIndex(2), ShareNum(1), &v2.shares[&ShareNum(1)]);
        let run = recover(&mut g, format, Some(b"ours".to_vec()), true);
        assert_eq!(
            run.outcome,
            Outcome::Republished {
                source: Source::Version { seqnum: 1 },
                seqnum: 3
            }
        );
        assert_eq!(
            run.encoded,
            vec![NewVersion {
                format,
                k: K,
                n: N,
                seqnum: 3
            }]
        );
        assert_unique(&run.ids);
        // read back: the newest version is recoverable and holds v1's bytes
        let map = update(&mut g, Mode::Check);
        let best = map.best_recoverable_version().unwrap();
        assert_eq!((best.seqnum, map.highest_seqnum()), (3, 3));
        let holders = g.holders_of(&best.header());
        assert!(holders.len() >= usize::from(K));
        let mut total = 0;
        for (sh, servers) in &holders {
            let s: &ServerIndex = servers.iter().next().unwrap();
            total += g.servers[s].shares[sh].len();
        }
        assert!(total > 0);
        assert_eq!(best.data_length, 5000);
    }
}

#[test]
fn nothing_recoverable_republishes_this_writers_data_or_gives_up() {
    let v1 = version(MutableFormat::Mdmf, 1, 5000);
    let v2 = version(MutableFormat::Mdmf, 2, 5000);
    let grid = || {
        let mut g = Grid::new(10);
        g.put(ServerIndex(1), ShareNum(0), &v1.shares[&ShareNum(0)]);
        g.put(ServerIndex(2), ShareNum(0), &v2.shares[&ShareNum(0)]);
        g
    };
    let mut g = grid();
    let ours = data::bytes(3000, 77);
    let run = recover(&mut g, MutableFormat::Mdmf, Some(ours), false);
    assert_eq!(
        run.outcome,
        Outcome::Republished {
            source: Source::OursNoneRecoverable,
            seqnum: 3
        }
    );
    let map = update(&mut g, Mode::Check);
    assert_eq!(map.best_recoverable_version().unwrap().data_length, 3000);

    let mut g = grid();
    let run = recover(&mut g, MutableFormat::Mdmf, None, false);
    assert_eq!(run.outcome, Outcome::NothingToRepublish { highest: 2 });
    assert!(g.writes.is_empty());
    assert_eq!(
        run.outcome.to_string(),
        "no version is recoverable and this in-place update holds no whole copy to \
         republish (highest seqnum seen 2)"
    );
}

#[test]
fn encoding_failure_and_unknown_ids() {
    let mut m = CollisionRecovery::new(
        recovery_config(MutableFormat::Mdmf),
        &[ServerIndex(1), ServerIndex(2)],
        Some(b"x".to_vec()),
    );
    let actions = m.start(0);
    assert_eq!(actions.len(), 2);
    // an id never handed out in the current phase is a driver bug
    let bogus = collision::routed(1, 99);
    assert!(m
        .handle(
            Event::Failed {
                id: bogus,
                failure: Failure::new(Fault::Network, "x"),
            },
            1
        )
        .is_err());
    // both servers empty: nothing recoverable, our data is encoded
    let mut out = Vec::new();
    for a in actions {
        let Action::Send {
            id,
            request: Request::Check(servermap::Read::Query { .. }),
            ..
        } = a
        else {
            panic!("expected queries")
        };
        out.extend(
            m.handle(
                Event::Answer {
                    id,
                    response: Response::Check(BTreeMap::new()),
                },
                2,
            )
            .unwrap(),
        );
    }
    assert!(matches!(out.last(), Some(Action::Work(Encode { .. }))));
    let out = m.handle(Event::Worked(Err("no RNG".into())), 3).unwrap();
    let Some(Action::Finish(o)) = out.last() else {
        panic!("expected the end")
    };
    assert_eq!(
        o.to_string(),
        "republishing this write's data (no version was recoverable) failed: no RNG"
    );
    assert!(m.is_done());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// On a ten-segment MDMF file with every share of one version: in place exactly when
    /// the change starts inside the file (or at its end), with the next seqnum; the kept
    /// plaintext lies in the affected segments, ends at the offset and starts after the new
    /// bytes, within the old file.
    #[test]
    fn in_place_decisions_and_kept_reads_agree_with_the_geometry(
        offset in 0u64..11_000,
        len in 0u64..4000,
    ) {
        let map = ten_segment_map();
        let d = modify::decide(map, offset, len, PastEnd::FillZeros).unwrap();
        prop_assert_eq!(d.offset, offset);
        match d.how {
            How::Whole(why) => {
                prop_assert!(offset > 10_000);
                prop_assert_eq!(why, WholeReason::PastTheEnd);
            }
            How::InPlace(p) => {
                prop_assert!(offset <= 10_000);
                prop_assert_eq!(p.seqnum, 2);
                let first = p.plan.segments.start * SEG;
                let last_end = (p.plan.segments.end * SEG).min(10_000);
                let (head, tail) = match kept_reads(&p.plan) {
                    KeptReads::Nothing => (offset..offset, 0..0),
                    KeptReads::Head(h) => (h, 0..0),
                    KeptReads::Tail(t) => (offset..offset, t),
                    KeptReads::Joined { range, head_len, tail_from } => {
                        prop_assert!(tail_from >= head_len);
                        (range.start..range.start + head_len,
                         range.start + tail_from..range.end)
                    }
                    KeptReads::Both { head, tail } => (head, tail),
                };
                prop_assert!(head.start >= first.min(offset));
                prop_assert_eq!(head.end, offset);
                if !tail.is_empty() {
                    prop_assert_eq!(tail.start, offset + len);
                    prop_assert!(tail.end <= last_end);
                }
            }
        }
    }
}

fn ten_segment_map() -> &'static ServerMap {
    static MAP: std::sync::OnceLock<ServerMap> = std::sync::OnceLock::new();
    MAP.get_or_init(|| {
        let v = version(MutableFormat::Mdmf, 1, 10_000);
        update(&mut full_grid(&v), Mode::Write)
    })
}

#[test]
fn a_stalled_server_times_out_and_recovery_goes_on() {
    let v1 = version(MutableFormat::Mdmf, 1, 5000);
    let v2 = version(MutableFormat::Mdmf, 2, 5000);
    let mut g = full_grid(&v1);
    g.put(ServerIndex(1), ShareNum(0), &v2.shares[&ShareNum(0)]);
    // server 10 holds share 9 of v1 and never answers: not needed, 9 others hold v1
    g.server(ServerIndex(10)).stalled = true;
    let run = recover(&mut g, MutableFormat::Mdmf, None, false);
    assert_eq!(
        run.outcome,
        Outcome::Republished {
            source: Source::Version { seqnum: 1 },
            seqnum: 3
        }
    );
    assert_unique(&run.ids);
    g.server(ServerIndex(10)).stalled = false;
    let map = update(&mut g, Mode::Check);
    assert_eq!(map.best_recoverable_version().unwrap().seqnum, 3);
    assert_eq!(map.highest_seqnum(), 3);
}

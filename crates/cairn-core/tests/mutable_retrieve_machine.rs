//! The mutable retrieve machine against a small in-memory grid, after a read-mode
//! servermap update: SDMF and multi-segment MDMF round trips, ranged MDMF reads that touch
//! only the segments they need, stale servers answering first, corrupt, failing and
//! stalled share holders, too few shares, a newer version that is not recoverable, and
//! round-trip counts. The randomised run prints its seed and replays from it
//! (`RETRIEVE_SEED=<seed>`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{ControlFlow, Range};
use std::sync::OnceLock;

use cairn_core::client::machine::{Chunk, Failure, Fault, ServerIndex};
use cairn_core::client::mutable::retrieve::{
    self, Event as REvent, ProblemKind, ReadPart, RetrieveConfig, RetrieveError, RetrieveMachine,
    RetrieveOutcome, RetrieveSetupError,
};
use cairn_core::client::mutable::servermap::{Mode, ServerMap, UpdateConfig};
use cairn_core::client::mutable::ShareNum;
use cairn_core::mutable::{MutableFormat, MutableShare, SALT_LEN};
use cairn_test_support::data;
use cairn_test_support::fake_grid::{self, Grid};
use cairn_test_support::fixtures::{self, key1, retrieve_keys as keys, MutableVersion as Version};
use cairn_test_support::stepping::{bounded, MAX_STEPS};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const K: u8 = 3;
const N: u8 = 10;
/// Small MDMF segments (1026 bytes at k=3) so a few KiB make many segments.
const SMALL_SEGMENT: u64 = 1024;

/// A version of this file's test file (3-of-10, small MDMF segments).
fn make_version(format: MutableFormat, seqnum: u64, plaintext: &[u8], seed: u64) -> Version {
    fixtures::make_version(format, (K, N), Some(SMALL_SEGMENT), seqnum, plaintext, seed)
}

/// SDMF, 5000 bytes, seqnum 1.
fn sdmf_v1() -> &'static Version {
    static V: OnceLock<Version> = OnceLock::new();
    V.get_or_init(|| make_version(MutableFormat::Sdmf, 1, &data::bytes(5000, 1), 1))
}

/// MDMF, 10 000 bytes in 10 segments of 1026 bytes, seqnum 1 and 2.
fn mdmf(seqnum: u64) -> &'static Version {
    static V1: OnceLock<Version> = OnceLock::new();
    static V2: OnceLock<Version> = OnceLock::new();
    let cell = if seqnum == 1 { &V1 } else { &V2 };
    cell.get_or_init(|| {
        make_version(
            MutableFormat::Mdmf,
            seqnum,
            &data::bytes(10_000, seqnum * 7),
            seqnum * 11,
        )
    })
}

/// A share read as the retrieve machine sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ReadRecord {
    server: ServerIndex,
    shnum: ShareNum,
    part: ReadPart,
    len: u64,
}

/// Run a read-mode servermap update in rounds (see `fake_grid::update_in_rounds`).
/// Returns the map and the number of rounds.
fn update(grid: &Grid, epsilon: Option<usize>) -> (ServerMap, usize) {
    let mut cfg = UpdateConfig::new(Mode::Read, K, N, key1().verifying_key().fingerprint());
    cfg.epsilon = epsilon;
    fake_grid::update_in_rounds(grid, cfg)
}

/// Everything a retrieve run did.
struct Run {
    result: Result<RetrieveOutcome, RetrieveError>,
    data: Vec<u8>,
    /// Offset of the first output.
    start: Option<u64>,
    reads: Vec<ReadRecord>,
    bytes_read: u64,
    reports: Vec<retrieve::Problem>,
    /// Rounds in which at least one read was sent (the driver sends a round's reads
    /// together and waits for their answers).
    rounds: usize,
    /// The most segments whose blocks were requested but not yet output at any time.
    max_segments_pending: usize,
}

/// Drive a retrieve. `shuffle`: answers of a round come back in an order chosen by this
/// seed instead of the order sent.
fn retrieve(
    grid: &Grid,
    map: &ServerMap,
    cfg: RetrieveConfig,
    range: Option<Range<u64>>,
    shuffle: Option<u64>,
) -> Run {
    let mut m = RetrieveMachine::new(cfg, map, keys(), range).expect("retrieve can start");
    let segsize = m.version().segment_size.max(1);
    let mut rng = ChaCha20Rng::seed_from_u64(shuffle.unwrap_or(0));
    let mut batch = m.start(0);
    let mut run = Run {
        result: Err(RetrieveError::Decode {
            segment: 0,
            reason: "never finished".into(),
        }),
        data: Vec::new(),
        start: None,
        reads: Vec::new(),
        bytes_read: 0,
        reports: Vec::new(),
        rounds: 0,
        max_segments_pending: 0,
    };
    let mut finished = 0;
    let mut sent_parts = BTreeSet::new();
    let mut now = 0;
    bounded(MAX_STEPS, || {
        now += 1;
        let mut events = Vec::new();
        let mut sent = false;
        for action in std::mem::take(&mut batch) {
            match action {
                retrieve::Action::Send {
                    id,
                    server,
                    request:
                        retrieve::Read {
                            shnum,
                            offset,
                            len,
                            part,
                        },
                } => {
                    assert!(
                        sent_parts.insert((server, shnum, part)),
                        "read of {part:?} of share {shnum} on server {} sent twice",
                        server.0
                    );
                    sent = true;
                    run.reads.push(ReadRecord {
                        server,
                        shnum,
                        part,
                        len,
                    });
                    if grid.servers[&server].stalled {
                        continue;
                    }
                    events.push(match grid.read(server, Some(shnum), offset, len) {
                        Ok(mut shares) => {
                            let data = shares.remove(&shnum).unwrap_or_default();
                            run.bytes_read += data.len() as u64;
                            REvent::Answer { id, response: data }
                        }
                        Err(reason) => REvent::Failed {
                            id,
                            failure: fake_grid::down(reason),
                        },
                    });
                }
                retrieve::Action::Cancel { .. } => {}
                retrieve::Action::Work(never) => match never {},
                retrieve::Action::Output(Chunk { offset, data }) => {
                    let expected = run.start.map_or(offset, |s| s + run.data.len() as u64);
                    assert_eq!(offset, expected, "outputs in order, without gaps");
                    run.start.get_or_insert(offset);
                    run.data.extend_from_slice(&data);
                }
                retrieve::Action::Report(p) => run.reports.push(p),
                retrieve::Action::Finish(r) => {
                    finished += 1;
                    run.result = r;
                }
            }
        }
        // Segments with blocks asked for and not yet output.
        let out_pos = run.start.unwrap_or(0) + run.data.len() as u64;
        let next_out = out_pos / segsize;
        let pending: BTreeSet<u64> = run
            .reads
            .iter()
            .filter_map(|r| match r.part {
                ReadPart::Segment(s) if s >= next_out => Some(s),
                _ => None,
            })
            .collect();
        run.max_segments_pending = run.max_segments_pending.max(pending.len());
        run.rounds += usize::from(sent);
        if m.is_done() {
            return ControlFlow::Break(());
        }
        if events.is_empty() {
            now = m.next_deadline().expect("something is outstanding");
            batch.extend(m.handle(REvent::Tick, now).unwrap());
            return ControlFlow::Continue(());
        }
        if shuffle.is_some() {
            events.shuffle(&mut rng);
        }
        for e in events {
            batch.extend(m.handle(e, now).unwrap());
        }
        ControlFlow::Continue(())
    });
    // Anything the last step returned.
    for action in batch {
        match action {
            retrieve::Action::Finish(r) => {
                finished += 1;
                run.result = r;
            }
            retrieve::Action::Report(p) => run.reports.push(p),
            retrieve::Action::Cancel { .. } => {}
            other => panic!("action after the end: {other:?}"),
        }
    }
    assert!(m.is_done(), "retrieve did not finish");
    assert_eq!(finished, 1, "exactly one Finished");
    assert_eq!(m.outstanding(), 0);
    run
}

fn ok(run: &Run) -> &RetrieveOutcome {
    match &run.result {
        Ok(o) => o,
        Err(e) => panic!("retrieve failed: {e}"),
    }
}

fn segment_reads(run: &Run) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for r in &run.reads {
        if let ReadPart::Segment(s) = r.part {
            *m.entry(s).or_default() += 1;
        }
    }
    m
}

#[test]
fn sdmf_round_trip_in_one_round() {
    let v = sdmf_v1();
    let grid = Grid::with_version(10, v, 1..11);
    let (map, map_rounds) = update(&grid, None);
    let run = retrieve(&grid, &map, RetrieveConfig::default(), None, None);
    let outcome = ok(&run);
    assert_eq!(run.data, v.plaintext);
    assert_eq!(outcome.version.header(), v.header);
    assert!(outcome.newer_unrecoverable.is_empty());
    assert!(outcome.problems.is_empty());
    // k reads, one per share, on k different servers.
    assert_eq!(run.reads.len(), K as usize);
    let servers: BTreeSet<_> = run.reads.iter().map(|r| r.server).collect();
    assert_eq!(servers.len(), K as usize);
    assert_eq!(map_rounds, 1);
    assert_eq!(run.rounds, 1);
    println!(
        "SDMF 5000-byte read: servermap {map_rounds} round, retrieve {} round, {} reads, {} bytes",
        run.rounds,
        run.reads.len(),
        run.bytes_read
    );
}

#[test]
fn one_kib_reads_take_one_round_trip_after_the_servermap() {
    for format in [MutableFormat::Sdmf, MutableFormat::Mdmf] {
        let v = make_version(format, 1, &data::bytes(1024, 9), 9);
        let grid = Grid::with_version(10, &v, 1..11);
        let (map, map_rounds) = update(&grid, None);
        let run = retrieve(&grid, &map, RetrieveConfig::default(), None, None);
        ok(&run);
        assert_eq!(run.data, v.plaintext);
        assert_eq!((map_rounds, run.rounds), (1, 1), "{format:?}");
        println!(
            "{format:?} 1 KiB read: servermap {map_rounds} round (6 queries), retrieve {} round \
             ({} reads, {} bytes)",
            run.rounds,
            run.reads.len(),
            run.bytes_read
        );
    }
}

#[test]
fn driver_mistakes_and_late_answers() {
    let v = mdmf(1);
    let mut grid = Grid::with_version(10, v, 1..11);
    let (map, _) = update(&grid, None);
    grid.server(ServerIndex(1)).down = true;
    let mut m = RetrieveMachine::new(RetrieveConfig::default(), &map, keys(), None).unwrap();
    let first = m.start(0);
    let ids: Vec<(u64, ServerIndex)> = first
        .iter()
        .filter_map(|a| match a {
            retrieve::Action::Send { id, server, .. } => Some((*id, *server)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids.len(),
        3 * 4,
        "header, tree and 2 segments from each of 3 shares"
    );
    // An answer to a request never sent is the driver's bug.
    assert!(m
        .handle(
            REvent::Answer {
                id: 999,
                response: vec![]
            },
            1
        )
        .is_err());
    // Server 1 fails one read: its other reads are cancelled, and their late answers
    // (or failures) are ignored.
    let on_1: Vec<u64> = ids
        .iter()
        .filter(|(_, s)| *s == ServerIndex(1))
        .map(|(id, _)| *id)
        .collect();
    let actions = m
        .handle(
            REvent::Failed {
                id: on_1[0],
                failure: Failure::new(Fault::Network, "gone"),
            },
            2,
        )
        .unwrap();
    let cancelled: BTreeSet<u64> = actions
        .iter()
        .filter_map(|a| match a {
            retrieve::Action::Cancel { id } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, on_1[1..].iter().copied().collect());
    assert!(actions
        .iter()
        .any(|a| matches!(a, retrieve::Action::Report(p) if p.server == ServerIndex(1))));
    // A replacement (server 4) is asked at once.
    assert!(actions.iter().any(|a| matches!(
        a,
        retrieve::Action::Send {
            server: ServerIndex(4),
            ..
        }
    )));
    for id in &on_1[1..] {
        let late = m
            .handle(
                REvent::Answer {
                    id: *id,
                    response: vec![0; 10],
                },
                3,
            )
            .unwrap();
        assert!(late.is_empty(), "{late:?}");
    }
    assert!(m
        .handle(
            REvent::Failed {
                id: on_1[0],
                failure: Failure::new(Fault::Network, "again")
            },
            4
        )
        .unwrap()
        .is_empty());
}

#[test]
fn sdmf_empty_file_needs_no_reads() {
    let v = make_version(MutableFormat::Sdmf, 1, b"", 5);
    let grid = Grid::with_version(10, &v, 1..11);
    let (map, _) = update(&grid, None);
    let run = retrieve(&grid, &map, RetrieveConfig::default(), None, None);
    assert_eq!(ok(&run).bytes, 0);
    assert!(run.reads.is_empty());
}

#[test]
fn mdmf_multi_segment_round_trip_with_bounded_window() {
    let v = mdmf(1);
    let params = v.header.params().unwrap();
    assert_eq!(params.num_segments, 10);
    let grid = Grid::with_version(10, v, 1..11);
    let (map, map_rounds) = update(&grid, None);
    for window in [1u64, 2, 4] {
        let cfg = RetrieveConfig {
            segments_in_flight: window,
            ..RetrieveConfig::default()
        };
        let run = retrieve(&grid, &map, cfg, None, None);
        let outcome = ok(&run);
        assert_eq!(run.data, v.plaintext, "window {window}");
        assert_eq!(outcome.bytes, 10_000);
        // Every segment from exactly k shares, nothing else.
        let per_segment = segment_reads(&run);
        assert_eq!(per_segment.len(), 10);
        assert!(per_segment.values().all(|c| *c == K as usize));
        assert!(
            run.max_segments_pending <= window as usize,
            "window {window}: {} segments pending",
            run.max_segments_pending
        );
        // Segments arrive `window` at a time.
        assert_eq!(
            run.rounds,
            10usize.div_ceil(window as usize),
            "window {window}"
        );
        println!(
            "MDMF 10 000 bytes, 10 segments, window {window}: servermap {map_rounds} round, \
             retrieve {} rounds, {} reads, {} bytes read",
            run.rounds,
            run.reads.len(),
            run.bytes_read
        );
    }
}

#[test]
fn mdmf_ranged_read_fetches_only_overlapping_segments() {
    let v = mdmf(1);
    let grid = Grid::with_version(10, v, 1..11);
    let (map, _) = update(&grid, None);
    let full = retrieve(&grid, &map, RetrieveConfig::default(), None, None);
    // Segments are 1026 bytes: 3000..4000 lies in segments 2 (2052..3078) and 3.
    let run = retrieve(
        &grid,
        &map,
        RetrieveConfig::default(),
        Some(3000..4000),
        None,
    );
    ok(&run);
    assert_eq!(run.start, Some(3000));
    assert_eq!(run.data, v.plaintext[3000..4000]);
    let per_segment = segment_reads(&run);
    assert_eq!(
        per_segment,
        BTreeMap::from([(2, K as usize), (3, K as usize)])
    );
    // Per share: the header (2167 bytes), the block hash tree (31 nodes) and two blocks.
    let block = 342 + SALT_LEN as u64;
    assert_eq!(run.bytes_read, u64::from(K) * (2167 + 31 * 32 + 2 * block));
    assert_eq!(run.rounds, 1);
    println!(
        "MDMF ranged read of 1000 bytes: {} reads, {} bytes read (whole file: {} reads, {} \
         bytes), {} round",
        run.reads.len(),
        run.bytes_read,
        full.reads.len(),
        full.bytes_read,
        run.rounds
    );

    // A range inside one segment, one past the end (clipped), and an empty one.
    let run = retrieve(
        &grid,
        &map,
        RetrieveConfig::default(),
        Some(9990..20_000),
        None,
    );
    assert_eq!(run.data, v.plaintext[9990..]);
    assert_eq!(
        segment_reads(&run).keys().copied().collect::<Vec<_>>(),
        vec![9]
    );
    let run = retrieve(&grid, &map, RetrieveConfig::default(), Some(500..500), None);
    assert!(run.data.is_empty() && run.reads.is_empty());
    let bad = RetrieveMachine::new(
        RetrieveConfig::default(),
        &map,
        keys(),
        Some(10_001..10_002),
    );
    assert!(matches!(bad, Err(RetrieveSetupError::BadRange { .. })));
}

/// Servers 1-3 missed the last publish and still hold version 1; 4-10 hold version 2.
/// They come first in permuted order and answer first.
fn stale_grid() -> Grid {
    let (v1, v2) = (mdmf(1), mdmf(2));
    let mut grid = Grid::with_version(10, v2, 4..11);
    for s in 1..=3u32 {
        let sh = ShareNum((s - 1) as u8);
        grid.put(ServerIndex(s), sh, &v1.shares[&sh]);
    }
    grid
}

#[test]
fn stale_servers_answering_first_do_not_roll_back() {
    let grid = stale_grid();
    let (map, map_rounds) = update(&grid, None);
    // The first three answers alone would make version 1 look like the latest.
    assert_eq!(map.recoverable_versions().len(), 2);
    let run = retrieve(&grid, &map, RetrieveConfig::default(), None, None);
    let outcome = ok(&run);
    assert_eq!(outcome.version.seqnum, 2);
    assert_eq!(run.data, mdmf(2).plaintext);
    assert!(outcome.newer_unrecoverable.is_empty());
    assert!(
        run.reads.iter().all(|r| r.server >= ServerIndex(4)),
        "no read of a stale share"
    );
    println!(
        "stale-first read: servermap {map_rounds} round(s), retrieve {} rounds",
        run.rounds
    );
}

#[test]
fn too_few_servers_heard_is_refused() {
    let grid = stale_grid();
    // An update with epsilon 0 stops after the k = 3 stale servers...
    let (map, _) = update(&grid, Some(0));
    assert_eq!(map.reachable_servers().len(), 3);
    assert_eq!(map.best_recoverable_version().unwrap().seqnum, 1);
    // ... and a retrieve that wants k + epsilon (default epsilon = k) refuses it.
    let err = RetrieveMachine::new(RetrieveConfig::default(), &map, keys(), None).unwrap_err();
    assert_eq!(
        err,
        RetrieveSetupError::NotEnoughServersHeard {
            heard: 3,
            needed: 6
        }
    );
    assert!(err.to_string().contains("stale servers"), "{err}");
}

#[test]
fn newer_unrecoverable_version_is_flagged() {
    // Version 2 reached only servers 1-2 (2 shares of 3 needed); version 1 is on 3-10.
    let (v1, v2) = (mdmf(1), mdmf(2));
    let mut grid = Grid::with_version(10, v1, 3..11);
    grid.put(ServerIndex(1), ShareNum(0), &v2.shares[&ShareNum(0)]);
    grid.put(ServerIndex(2), ShareNum(1), &v2.shares[&ShareNum(1)]);
    let (map, _) = update(&grid, None);
    let run = retrieve(&grid, &map, RetrieveConfig::default(), None, None);
    let outcome = ok(&run);
    assert_eq!(outcome.version.seqnum, 1);
    assert_eq!(run.data, v1.plaintext);
    assert_eq!(outcome.newer_unrecoverable.len(), 1);
    assert_eq!(outcome.newer_unrecoverable[0].header(), v2.header);
}

#[test]
fn corrupt_failing_and_stalled_holders_are_switched_away_and_reported() {
    let v = mdmf(1);
    let mut grid = Grid::with_version(10, v, 1..11);
    let (map, _) = update(&grid, None);
    // After the update: server 1's share 0 has a flipped bit in segment 4's block,
    // server 2 is gone, server 3 stalls.
    let at = 2167 + 4 * (342 + 16) + 16 + 100;
    grid.server(ServerIndex(1))
        .shares
        .get_mut(&ShareNum(0))
        .unwrap()[at] ^= 0x40;
    grid.server(ServerIndex(2)).down = true;
    grid.server(ServerIndex(3)).stalled = true;
    let run = retrieve(&grid, &map, RetrieveConfig::default(), None, None);
    let outcome = ok(&run);
    assert_eq!(run.data, v.plaintext);
    let kinds: BTreeMap<ServerIndex, ProblemKind> =
        run.reports.iter().map(|p| (p.server, p.kind)).collect();
    assert_eq!(
        kinds,
        BTreeMap::from([
            (ServerIndex(1), ProblemKind::Corrupt),
            // the fake grid's failure of a server that is down: its fault reaches the report
            (ServerIndex(2), ProblemKind::Failed(Fault::Network)),
            (ServerIndex(3), ProblemKind::Stall)
        ])
    );
    assert_eq!(outcome.problems, run.reports);
    let corrupt = &run
        .reports
        .iter()
        .find(|p| p.server == ServerIndex(1))
        .unwrap()
        .reason;
    assert!(corrupt.contains("segment 4"), "{corrupt}");

    // SDMF: a corrupt share hash chain (server 1) and a corrupt block (server 2).
    let v = sdmf_v1();
    let mut grid = Grid::with_version(10, v, 1..11);
    let (map, _) = update(&grid, None);
    let share = MutableShare::parse(&v.shares[&ShareNum(0)]).unwrap();
    let chain_at = 107 + share.verification_key.len() + share.signature.len() + 5;
    grid.server(ServerIndex(1))
        .shares
        .get_mut(&ShareNum(0))
        .unwrap()[chain_at] ^= 1;
    let len = v.shares[&ShareNum(1)].len();
    grid.server(ServerIndex(2))
        .shares
        .get_mut(&ShareNum(1))
        .unwrap()[len - share.enc_privkey.len() - 1] ^= 1;
    let run = retrieve(&grid, &map, RetrieveConfig::default(), None, None);
    ok(&run);
    assert_eq!(run.data, v.plaintext);
    let bad: BTreeSet<(ServerIndex, ProblemKind)> =
        run.reports.iter().map(|p| (p.server, p.kind)).collect();
    assert_eq!(
        bad,
        BTreeSet::from([
            (ServerIndex(1), ProblemKind::Corrupt),
            (ServerIndex(2), ProblemKind::Corrupt)
        ])
    );
    println!("SDMF with 2 corrupt shares: {} rounds", run.rounds);
}

#[test]
fn a_share_overwritten_after_the_update_is_reported_as_changed() {
    let mut grid = Grid::with_version(10, mdmf(1), 1..11);
    let (map, _) = update(&grid, None);
    grid.put(ServerIndex(1), ShareNum(0), &mdmf(2).shares[&ShareNum(0)]);
    let run = retrieve(&grid, &map, RetrieveConfig::default(), None, None);
    assert_eq!(run.data, mdmf(1).plaintext);
    assert_eq!(run.reports.len(), 1);
    assert_eq!(run.reports[0].kind, ProblemKind::Changed);
    assert!(run.reports[0].reason.contains("mismatched prefix"));
}

#[test]
fn not_enough_shares_names_servers_and_reasons() {
    let v = mdmf(1);
    let mut grid = Grid::with_version(10, v, 1..11);
    let (map, _) = update(&grid, None);
    for s in (1..=8).map(ServerIndex) {
        grid.server(s).down = true;
    }
    let run = retrieve(&grid, &map, RetrieveConfig::default(), None, None);
    let Err(err) = &run.result else {
        panic!("should fail");
    };
    let RetrieveError::NotEnoughShares {
        seqnum,
        k,
        usable,
        problems,
    } = err
    else {
        panic!("{err}");
    };
    assert_eq!((*seqnum, *k), (1, K));
    assert!(*usable < K as usize);
    // The update stopped after k + epsilon = 6 servers, so only those are known holders;
    // once fewer than k holders are left untried-or-working it gives up at once (here
    // after servers 1-4 failed, with the 2 shares on servers 5 and 6 still usable).
    let failed: BTreeSet<ServerIndex> = problems.iter().map(|p| p.server).collect();
    assert_eq!(failed, (1..=4).map(ServerIndex).collect());
    assert_eq!(*usable, 2);
    let msg = err.to_string();
    for s in 1..=4 {
        assert!(
            msg.contains(&format!("server {s} share {}", s - 1)),
            "{msg}"
        );
    }
    assert!(msg.contains("connection lost"), "{msg}");
    println!("{msg}");

    // Before any read: only two shares exist at all.
    let grid = Grid::with_version(10, v, 1..3);
    let (map, _) = update(&grid, None);
    let err = RetrieveMachine::new(RetrieveConfig::default(), &map, keys(), None).unwrap_err();
    assert!(matches!(
        err,
        RetrieveSetupError::NoRecoverableVersion { .. }
    ));
    assert!(
        err.to_string().contains("seqnum 1 has 2 of 3 shares"),
        "{err}"
    );
}

#[test]
fn random_fault_schedules() {
    let seeds: Vec<u64> = match std::env::var("RETRIEVE_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => (0..400).collect(),
    };
    let (mut clean, mut switched, mut gave_up) = (0, 0, 0);
    for seed in seeds {
        println!("seed {seed}");
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let v = if rng.gen_bool(0.5) {
            mdmf(1)
        } else {
            sdmf_v1()
        };
        let mut grid = Grid::with_version(12, v, 1..11);
        // Server 11 holds some share under the wrong number (its share hash chain cannot
        // verify), server 12 an extra copy of a share.
        let (wrong, right) = (ShareNum(rng.gen_range(0..N)), ShareNum(rng.gen_range(0..N)));
        grid.put(ServerIndex(11), wrong, &v.shares[&right].clone());
        let sh = ShareNum(rng.gen_range(0..N));
        grid.put(ServerIndex(12), sh, &v.shares[&sh]);
        let (map, _) = update(&grid, None);
        let holders = map.servers_for(&map.best_recoverable_version().unwrap());
        // Faults after the update.
        let mut broken = BTreeSet::new();
        // Servers whose share may fail verification.
        let mut suspect = BTreeSet::new();
        if wrong != right {
            suspect.insert(ServerIndex(11));
        }
        for s in holders.iter().copied() {
            match rng.gen_range(0..8) {
                0 => grid.server(s).down = true,
                1 => grid.server(s).stalled = true,
                2 => {
                    let share = grid.server(s).shares.values_mut().next().unwrap();
                    let i = rng.gen_range(0..share.len());
                    share[i] ^= 1 << rng.gen_range(0..8);
                    suspect.insert(s);
                    // A flip in the encrypted private key or the MDMF padding is harmless.
                    continue;
                }
                _ => continue,
            }
            broken.insert(s);
        }
        let len = v.plaintext.len() as u64;
        let range = if rng.gen_bool(0.5) {
            let a = rng.gen_range(0..len);
            Some(a..rng.gen_range(a..=len))
        } else {
            None
        };
        let cfg = RetrieveConfig {
            segments_in_flight: rng.gen_range(1..4),
            ..RetrieveConfig::default()
        };
        let run = retrieve(&grid, &map, cfg, range.clone(), Some(seed));
        let want = range.unwrap_or(0..len);
        for p in &run.reports {
            assert!(
                broken.contains(&p.server) || suspect.contains(&p.server),
                "seed {seed}: healthy server reported: {p}"
            );
        }
        // Distinct share numbers on holders with no fault at all: with k of them, the
        // retrieve must succeed.
        let sound: BTreeSet<ShareNum> = map
            .shares()
            .keys()
            .filter(|(s, _)| !broken.contains(s) && !suspect.contains(s))
            .map(|(_, sh)| *sh)
            .collect();
        assert!(
            sound.len() < K as usize || run.result.is_ok(),
            "seed {seed}: {} sound shares, yet {:?}",
            sound.len(),
            run.result
        );
        // Distinct share numbers on healthy holders.
        let healthy: BTreeSet<ShareNum> = map
            .shares()
            .iter()
            .filter(|((s, _), _)| !broken.contains(s))
            .map(|((_, sh), _)| *sh)
            .collect();
        match &run.result {
            Ok(outcome) => {
                if outcome.problems.is_empty() {
                    clean += 1;
                } else {
                    switched += 1;
                }
                assert_eq!(
                    run.data,
                    v.plaintext[want.start as usize..want.end as usize],
                    "seed {seed}"
                );
            }
            Err(e) => {
                gave_up += 1;
                assert!(
                    matches!(e, RetrieveError::NotEnoughShares { .. }),
                    "seed {seed}: {e}"
                );
                // It may give up only once every share it did not drop is in use.
                let corrupt: BTreeSet<(ServerIndex, ShareNum)> = run
                    .reports
                    .iter()
                    .map(|p| (p.server, p.shnum.expect("a share's problem")))
                    .collect();
                let good: BTreeSet<ShareNum> = map
                    .shares()
                    .keys()
                    .filter(|(s, sh)| !broken.contains(s) && !corrupt.contains(&(*s, *sh)))
                    .map(|(_, sh)| *sh)
                    .collect();
                assert!(
                    good.len() < K as usize,
                    "seed {seed}: gave up with {} good shares ({healthy:?}): {e}",
                    good.len()
                );
            }
        }
    }
    println!("fault schedules: {clean} clean, {switched} switched holders, {gave_up} gave up");
}

#[test]
fn shares_under_another_key_are_refused() {
    for v in [sdmf_v1(), mdmf(1)] {
        let grid = Grid::with_version(10, v, 1..11);
        let (map, _) = update(&grid, None);
        let mut wrong = keys();
        wrong.fingerprint[0] ^= 1;
        let mut m = RetrieveMachine::new(RetrieveConfig::default(), &map, wrong, None).unwrap();
        let mut queue: Vec<retrieve::Action> = m.start(0);
        let mut result = None;
        bounded(MAX_STEPS, || {
            let Some(a) = queue.pop() else {
                return ControlFlow::Break(());
            };
            match a {
                retrieve::Action::Send {
                    id,
                    server,
                    request:
                        retrieve::Read {
                            shnum, offset, len, ..
                        },
                } => {
                    let data = grid.read(server, Some(shnum), offset, len).unwrap()[&shnum].clone();
                    queue.extend(m.handle(REvent::Answer { id, response: data }, 1).unwrap());
                }
                retrieve::Action::Output(_) => panic!("output under a wrong key"),
                retrieve::Action::Finish(r) => result = Some(r),
                _ => {}
            }
            ControlFlow::Continue(())
        });
        let Some(Err(e)) = result else {
            panic!("{result:?}")
        };
        assert!(e.to_string().contains("fingerprint"), "{e}");
    }
}

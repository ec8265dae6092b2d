//! The mutable servermap-update and publish machines against a small in-memory grid:
//! the failure of issue 5 (a 3-of-10 file, one share per server on servers 1-10, an extra
//! copy of share 3 on server 11, server 3 lost between the servermap update and the
//! publish) with the failure reported synchronously and asynchronously; genuine
//! collisions with another writer; random server errors; too few servers; and round-trip
//! counts. Randomised runs print their seed and replay from it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::ControlFlow;

use cairn_core::client::machine::{Failure, Fault, Problem, ProblemKind, ServerIndex};
use cairn_core::client::mutable::publish::{
    self, Event as PEvent, PublishConfig, PublishError, PublishMachine, PublishOutcome, Write,
    Written,
};
use cairn_core::client::mutable::servermap::{
    self, Event as SEvent, Mode, ServerMap, ServermapUpdater, UpdateConfig,
};
use cairn_core::client::mutable::ShareNum;
use cairn_core::mutable::{MutableFormat, MutableKeys};
use cairn_test_support::fake_grid::{self, Grid};
use cairn_test_support::fixtures::{self, key1, MutableVersion as Version};
use cairn_test_support::stepping::{bounded, MAX_STEPS};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const K: u8 = 3;
const N: u8 = 10;
const HAPPY: usize = 7;

/// A version of this file's test file (3-of-10, Tahoe's segment size).
fn make_version(format: MutableFormat, seqnum: u64, plaintext: &[u8], seed: u64) -> Version {
    fixtures::make_version(format, (K, N), None, seqnum, plaintext, seed)
}

fn config(mode: Mode) -> UpdateConfig {
    let keys = MutableKeys::from_signing_key(key1());
    let mut cfg = UpdateConfig::new(mode, K, N, key1().verifying_key().fingerprint());
    cfg.writekey = keys.writekey().copied();
    cfg
}

/// Run a servermap update with immediate answers; returns the map.
fn update(grid: &mut Grid, mode: Mode) -> ServerMap {
    fake_grid::update_immediate(grid, config(mode))
}

/// When answers reach the publish machine.
#[derive(Clone, Copy, Debug)]
enum Delivery {
    /// Each request's answer (or failure) is fed back as soon as it is sent, before the
    /// driver sends the rest of the batch: failures arrive synchronously, interleaved.
    Synchronous,
    /// Every request of a batch is sent first; the answers come back afterwards, in an
    /// order shuffled by the seed.
    Asynchronous { seed: u64 },
}

struct PublishRun {
    result: Result<PublishOutcome, PublishError>,
    /// Write requests (not shares) sent to each server.
    requests: BTreeMap<ServerIndex, usize>,
    /// The machine's problem reports, in order.
    reports: Vec<Problem>,
}

fn publish(
    grid: &mut Grid,
    map: &ServerMap,
    servers: &[ServerIndex],
    version: &Version,
    delivery: Delivery,
) -> PublishRun {
    let mut m =
        PublishMachine::new(PublishConfig::new(HAPPY), map, servers, &version.header).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(match delivery {
        Delivery::Asynchronous { seed } => seed,
        Delivery::Synchronous => 0,
    });
    let mut to_send: VecDeque<publish::Action> = m.start(0).into();
    let mut answers: Vec<PEvent> = Vec::new();
    let mut requests: BTreeMap<ServerIndex, usize> = BTreeMap::new();
    let mut finished = None;
    let mut reports = Vec::new();
    let mut now = 0;
    bounded(MAX_STEPS, || {
        now += 1;
        if let Some(action) = to_send.pop_front() {
            match action {
                publish::Action::Send {
                    id,
                    server,
                    request: Write { shares },
                } => {
                    *requests.entry(server).or_default() += 1;
                    if grid.servers[&server].stalled {
                        for sh in shares.keys() {
                            grid.writes.push((server, *sh, version.header.seqnum));
                        }
                        return ControlFlow::Continue(());
                    }
                    let event = match grid.test_and_write(server, &shares, version) {
                        Ok((wrote, current)) => PEvent::Answer {
                            id,
                            response: Written { wrote, current },
                        },
                        Err(reason) => PEvent::Failed {
                            id,
                            failure: Failure::new(Fault::Server, reason),
                        },
                    };
                    match delivery {
                        Delivery::Synchronous => to_send.extend(m.handle(event, now).unwrap()),
                        Delivery::Asynchronous { .. } => answers.push(event),
                    }
                }
                publish::Action::Report(p) => reports.push(p),
                publish::Action::Finish(r) => {
                    assert!(finished.is_none(), "finished twice");
                    finished = Some(r);
                }
                publish::Action::Cancel { .. } => {}
                publish::Action::Work(never) | publish::Action::Output(never) => match never {},
            }
            return ControlFlow::Continue(());
        }
        if answers.is_empty() {
            if m.is_done() {
                return ControlFlow::Break(());
            }
            // Only stalled requests are left: let the timer fire.
            now = m.next_deadline().expect("something is outstanding");
            to_send.extend(m.handle(PEvent::Tick, now).unwrap());
            return ControlFlow::Continue(());
        }
        let i = rng.gen_range(0..answers.len());
        let event = answers.swap_remove(i);
        to_send.extend(m.handle(event, now).unwrap());
        ControlFlow::Continue(())
    });
    assert!(m.is_done(), "publish did not finish");
    assert_eq!(m.outstanding(), 0);
    let result = finished.expect("a Finished action");
    assert_eq!(Some(&result), m.outcome());
    PublishRun {
        result,
        requests,
        reports,
    }
}

/// No server got two writes for the same share and version.
fn assert_no_duplicate_writes(grid: &Grid) {
    let mut seen = BTreeSet::new();
    for w in &grid.writes {
        assert!(
            seen.insert(*w),
            "duplicate write {w:?} in {:?}",
            grid.writes
        );
    }
}

/// The issue's grid: 3-of-10 version 1, share `s % 10` on server `s` for 1..=10, an
/// extra copy of share 3 on server 11, and servers 12-14 empty.
fn issue_grid(v1: &Version) -> Grid {
    let mut grid = Grid::new(14);
    for server in 1..=10u32 {
        let sh = ShareNum((server % 10) as u8);
        grid.put(ServerIndex(server), sh, &v1.shares[&sh]);
    }
    grid.put(ServerIndex(11), ShareNum(3), &v1.shares[&ShareNum(3)]);
    grid
}

fn v1_v2() -> (Version, Version) {
    let v1 = make_version(MutableFormat::Sdmf, 1, b"version one of a small file", 1);
    let v2 = make_version(
        MutableFormat::Sdmf,
        2,
        b"version two, modified by the user",
        2,
    );
    (v1, v2)
}

fn assert_good_publish(run: &PublishRun, grid: &Grid, v2: &Version) -> PublishOutcome {
    let outcome = match &run.result {
        Ok(o) => o.clone(),
        Err(e) => panic!("publish failed: {e}"),
    };
    assert!(outcome.happiness >= HAPPY, "{outcome:?}");
    assert_eq!(outcome.placed.len(), N as usize, "every share placed");
    let on_grid = grid.holders_of(&v2.header);
    assert_eq!(
        on_grid.len(),
        N as usize,
        "every share of v2 is on the grid"
    );
    for (sh, servers) in &outcome.placed {
        assert!(
            servers.is_subset(&on_grid[sh]),
            "share {sh} placed where the grid agrees"
        );
    }
    assert_no_duplicate_writes(grid);
    outcome
}

/// The servermap the issue's scenario starts from: version 1 on servers 1-11.
fn issue_servermap(grid: &mut Grid, v1: &Version) -> ServerMap {
    let map = update(grid, Mode::Write);
    assert_eq!(map.highest_seqnum(), 1);
    let best = map.best_recoverable_version().unwrap();
    assert_eq!(best.header(), v1.header);
    assert_eq!(
        map.servers_for(&best),
        (1..=11).map(ServerIndex).collect::<BTreeSet<_>>()
    );
    assert_eq!(
        map.versions()[&best][&ShareNum(3)],
        BTreeSet::from([ServerIndex(3), ServerIndex(11)])
    );
    assert!(map.privkey().is_some(), "write mode found the private key");
    assert!(map.failures().is_empty());
    map
}

#[test]
fn issue_scenario_server_lost_failure_reported_synchronously() {
    let (v1, v2) = v1_v2();
    let mut grid = issue_grid(&v1);
    let map = issue_servermap(&mut grid, &v1);
    grid.servers.get_mut(&ServerIndex(3)).unwrap().down = true;
    let order = grid.order();
    let run = publish(&mut grid, &map, &order, &v2, Delivery::Synchronous);
    let outcome = assert_good_publish(&run, &grid, &v2);
    assert_eq!(outcome.failures.len(), 1);
    assert_eq!(outcome.failures[0].server.0, 3);
    assert_eq!(
        outcome.placed[&ShareNum(3)],
        BTreeSet::from([ServerIndex(11)])
    );
    assert!(run.requests.values().all(|n| *n == 1), "{:?}", run.requests);
}

#[test]
fn issue_scenario_server_lost_failure_reported_asynchronously() {
    let (v1, v2) = v1_v2();
    for seed in 0..16u64 {
        println!("seed {seed}");
        let mut grid = issue_grid(&v1);
        let map = issue_servermap(&mut grid, &v1);
        grid.servers.get_mut(&ServerIndex(3)).unwrap().down = true;
        let order = grid.order();
        let run = publish(
            &mut grid,
            &map,
            &order,
            &v2,
            Delivery::Asynchronous { seed },
        );
        let outcome = assert_good_publish(&run, &grid, &v2);
        assert_eq!(
            outcome.placed[&ShareNum(3)],
            BTreeSet::from([ServerIndex(11)]),
            "seed {seed}"
        );
        assert!(
            run.requests.values().all(|n| *n == 1),
            "seed {seed}: {:?}",
            run.requests
        );
    }
}

#[test]
fn issue_scenario_server_gone_from_the_connected_list() {
    // The driver already knows server 3 is gone and leaves it out.
    let (v1, v2) = v1_v2();
    let mut grid = issue_grid(&v1);
    let map = issue_servermap(&mut grid, &v1);
    let order: Vec<ServerIndex> = grid
        .order()
        .into_iter()
        .filter(|s| *s != ServerIndex(3))
        .collect();
    let run = publish(&mut grid, &map, &order, &v2, Delivery::Synchronous);
    let outcome = assert_good_publish(&run, &grid, &v2);
    assert!(outcome.failures.is_empty());
    assert!(!run.requests.contains_key(&ServerIndex(3)));
}

#[test]
fn lost_sole_holder_share_moves_to_an_unused_server() {
    // Without the extra copy on server 11, share 3 must find a new home: the first
    // server holding nothing, asked once, testing that the share does not exist.
    let (v1, v2) = v1_v2();
    for delivery in [Delivery::Synchronous, Delivery::Asynchronous { seed: 7 }] {
        let mut grid = issue_grid(&v1);
        grid.servers
            .get_mut(&ServerIndex(11))
            .unwrap()
            .shares
            .clear();
        let map = update(&mut grid, Mode::Write);
        grid.servers.get_mut(&ServerIndex(3)).unwrap().down = true;
        let order = grid.order();
        let run = publish(&mut grid, &map, &order, &v2, delivery);
        let outcome = assert_good_publish(&run, &grid, &v2);
        assert_eq!(
            outcome.placed[&ShareNum(3)],
            BTreeSet::from([ServerIndex(11)]),
            "{delivery:?}"
        );
        assert_eq!(outcome.happiness, 10);
        assert!(run.requests.values().all(|n| *n == 1), "{:?}", run.requests);
    }
}

#[test]
fn genuine_collision_is_an_uncoordinated_write_and_a_version_survives() {
    let (v1, v2) = v1_v2();
    // Another writer publishes its own seqnum 2 to servers 4 and 5 after our update.
    let other = make_version(MutableFormat::Sdmf, 2, b"the other writer's version", 99);
    for delivery in [Delivery::Synchronous, Delivery::Asynchronous { seed: 3 }] {
        let mut grid = issue_grid(&v1);
        let map = issue_servermap(&mut grid, &v1);
        grid.put(ServerIndex(4), ShareNum(4), &other.shares[&ShareNum(4)]);
        grid.put(ServerIndex(5), ShareNum(5), &other.shares[&ShareNum(5)]);
        let order = grid.order();
        let run = publish(&mut grid, &map, &order, &v2, delivery);
        let Err(PublishError::UncoordinatedWrite { collisions, .. }) = &run.result else {
            panic!(
                "{delivery:?}: expected an uncoordinated write, got {:?}",
                run.result
            );
        };
        let at: BTreeSet<ServerIndex> = collisions.iter().map(|c| c.server).collect();
        assert_eq!(
            at,
            BTreeSet::from([ServerIndex(4), ServerIndex(5)]),
            "{delivery:?}"
        );
        assert!(collisions.iter().all(|c| c.found_seqnum == Some(2)));
        assert!(run
            .result
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("uncoordinated write"));
        assert_no_duplicate_writes(&grid);
        // Some complete version is still recoverable.
        let after = update(&mut grid, Mode::Check);
        assert!(after.best_recoverable_version().is_some(), "{delivery:?}");
    }
}

#[test]
fn newer_share_seen_only_in_the_read_vector_is_a_collision() {
    // Server 12 held nothing at update time; another writer then put a share of a newer
    // version there. Our write to server 12 (share 3's new home) fails its test.
    let (v1, v2) = v1_v2();
    let other = make_version(MutableFormat::Sdmf, 5, b"far newer", 5);
    let mut grid = issue_grid(&v1);
    grid.servers
        .get_mut(&ServerIndex(11))
        .unwrap()
        .shares
        .clear();
    let map = update(&mut grid, Mode::Write);
    grid.servers.get_mut(&ServerIndex(3)).unwrap().down = true;
    grid.put(ServerIndex(11), ShareNum(3), &other.shares[&ShareNum(3)]);
    let order = grid.order();
    let run = publish(&mut grid, &map, &order, &v2, Delivery::Synchronous);
    let Err(PublishError::UncoordinatedWrite { collisions, .. }) = &run.result else {
        panic!("expected an uncoordinated write, got {:?}", run.result);
    };
    assert_eq!(collisions[0].server, ServerIndex(11));
    assert_eq!(collisions[0].found_seqnum, Some(5));
}

#[test]
fn random_server_errors_do_not_fail_publish_while_enough_remain() {
    let (v1, v2) = v1_v2();
    for seed in 0..24u64 {
        println!("seed {seed}");
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut grid = issue_grid(&v1);
        let map = update(&mut grid, Mode::Write);
        let mut order = grid.order();
        order.shuffle(&mut rng);
        let faulty = rng.gen_range(1..=3);
        for s in &order[..faulty] {
            let srv = grid.servers.get_mut(s).unwrap();
            if rng.gen_bool(0.5) {
                srv.down = true;
            } else {
                srv.fail_writes = true;
            }
        }
        let order = grid.order();
        let delivery = if seed % 2 == 0 {
            Delivery::Synchronous
        } else {
            Delivery::Asynchronous { seed }
        };
        let run = publish(&mut grid, &map, &order, &v2, delivery);
        let outcome = assert_good_publish(&run, &grid, &v2);
        assert!(outcome.failures.len() <= faulty, "seed {seed}");
        assert!(
            !matches!(run.result, Err(PublishError::UncoordinatedWrite { .. })),
            "seed {seed}"
        );
    }
}

#[test]
fn too_few_servers_names_how_many_were_tried_and_why() {
    let (v1, v2) = v1_v2();
    let mut grid = Grid::new(10);
    for server in 1..=10u32 {
        let sh = ShareNum((server % 10) as u8);
        grid.put(ServerIndex(server), sh, &v1.shares[&sh]);
    }
    let map = update(&mut grid, Mode::Write);
    for s in [1, 2, 3].map(ServerIndex) {
        grid.servers.get_mut(&s).unwrap().down = true;
    }
    for s in [4, 5, 6].map(ServerIndex) {
        grid.servers.get_mut(&s).unwrap().fail_writes = true;
    }
    let order = grid.order();
    let run = publish(
        &mut grid,
        &map,
        &order,
        &v2,
        Delivery::Asynchronous { seed: 1 },
    );
    let Err(
        e @ PublishError::NotEnoughServers {
            tried,
            failures,
            happiness,
            ..
        },
    ) = &run.result
    else {
        panic!("expected NotEnoughServers, got {:?}", run.result);
    };
    assert_eq!(*tried, 10);
    let failed: BTreeSet<ServerIndex> = failures.iter().map(|f| f.server).collect();
    assert_eq!(failed, (1..=6).map(ServerIndex).collect(), "{failures:#?}");
    assert_eq!(*happiness, 4);
    let msg = e.to_string();
    println!("{msg}");
    assert!(msg.contains("tried 10 servers, 6 failed"), "{msg}");
    assert!(msg.contains("connection lost"), "{msg}");
    assert!(msg.contains("remote exception on server 5"), "{msg}");
    assert_no_duplicate_writes(&grid);
}

#[test]
fn round_trips_for_create_and_overwrite() {
    let (_, v2) = v1_v2();
    let v1 = make_version(MutableFormat::Sdmf, 1, b"created", 11);
    let mut grid = Grid::new(12);
    // Create: no servermap, one write per server for the first N servers.
    let order = grid.order();
    let run = publish(
        &mut grid,
        &ServerMap::new(Mode::Write),
        &order,
        &v1,
        Delivery::Synchronous,
    );
    let created = assert_good_publish(&run, &grid, &v1);
    assert!(run.requests.values().all(|n| *n == 1));
    assert_eq!(run.requests.len(), N as usize);
    assert_eq!(created.happiness, N as usize);

    // Overwrite with a fresh servermap: one query per server asked, then one write per
    // server holding a share.
    grid.queries.clear();
    let map = update(&mut grid, Mode::Write);
    assert!(grid.queries.values().all(|n| *n == 1), "{:?}", grid.queries);
    let order = grid.order();
    let run = publish(
        &mut grid,
        &map,
        &order,
        &v2,
        Delivery::Asynchronous { seed: 5 },
    );
    let outcome = assert_good_publish(&run, &grid, &v2);
    assert!(outcome.failures.is_empty());
    assert!(run.requests.values().all(|n| *n == 1), "{:?}", run.requests);
    assert_eq!(run.requests.len(), N as usize);
    println!(
        "round trips: create = {} writes; overwrite = {} queries + {} writes, 1 per server",
        created.requests_per_server.values().sum::<usize>(),
        grid.queries.values().sum::<usize>(),
        run.requests.values().sum::<usize>()
    );

    // Read mode stops after k + epsilon servers answered and a version is recoverable.
    grid.queries.clear();
    let map = update(&mut grid, Mode::Read);
    assert_eq!(map.best_recoverable_version().unwrap().header(), v2.header);
    assert_eq!(grid.queries.values().sum::<usize>(), 2 * K as usize);
}

#[test]
fn mdmf_check_mode_reads_the_prefix_it_lacks_once() {
    // MDMF keeps its signature and key past the 1000 bytes a check-mode query reads: one
    // follow-up read per share, never more.
    let v = make_version(MutableFormat::Mdmf, 1, &[7u8; 5000], 21);
    let mut grid = Grid::new(10);
    for server in 1..=10u32 {
        let sh = ShareNum((server - 1) as u8);
        grid.put(ServerIndex(server), sh, &v.shares[&sh]);
    }
    let map = update(&mut grid, Mode::Check);
    assert_eq!(map.best_recoverable_version().unwrap().header(), v.header);
    assert_eq!(map.shares().len(), 10);
    assert!(grid.queries.values().all(|n| *n == 2), "{:?}", grid.queries);
}

#[test]
fn corrupt_and_foreign_shares_are_bad_not_versions() {
    let (v1, _) = v1_v2();
    let mut grid = issue_grid(&v1);
    // Flip a header byte on server 2 (the signature no longer covers it) and put junk on 12.
    let mut bad = v1.shares[&ShareNum(2)].clone();
    bad[60] ^= 1;
    grid.put(ServerIndex(2), ShareNum(2), &bad);
    grid.put(ServerIndex(12), ShareNum(0), b"\x07 not a share");
    let map = update(&mut grid, Mode::Write);
    assert!(
        map.bad_shares()
            .contains_key(&(ServerIndex(2), ShareNum(2))),
        "{:?}",
        map.bad_shares()
    );
    assert!(map
        .bad_shares()
        .contains_key(&(ServerIndex(12), ShareNum(0))));
    assert_eq!(map.version_on(ServerIndex(2), ShareNum(2)), None);
    assert_eq!(map.highest_seqnum(), 1);
}

#[test]
fn stale_servermap_is_refused_and_unknown_answers_are_misuse() {
    let (v1, _) = v1_v2();
    let mut grid = issue_grid(&v1);
    let map = update(&mut grid, Mode::Write);
    let order = grid.order();
    let err = PublishMachine::new(PublishConfig::new(HAPPY), &map, &order, &v1.header).unwrap_err();
    assert!(
        err.to_string().contains("not above the highest seqnum 1"),
        "{err}"
    );
    let (_, v2) = v1_v2();
    let mut m = PublishMachine::new(PublishConfig::new(HAPPY), &map, &order, &v2.header).unwrap();
    let first = m.start(0);
    let Some(publish::Action::Send { id, .. }) = first.first() else {
        panic!("{first:?}");
    };
    // A server that answers twice: the second answer is ignored.
    let ok = PEvent::Answer {
        id: *id,
        response: Written {
            wrote: true,
            current: BTreeMap::new(),
        },
    };
    assert!(m.handle(ok.clone(), 1).is_ok());
    assert_eq!(m.handle(ok, 2).unwrap(), Vec::new());
    assert_eq!(m.placed().values().map(BTreeSet::len).sum::<usize>(), 1);
    assert!(m
        .handle(
            PEvent::Failed {
                id: 999,
                failure: Failure::new(Fault::Network, "x")
            },
            1
        )
        .is_err());
}

#[test]
fn issue_scenario_server_stalls_instead_of_disconnecting() {
    let (v1, v2) = v1_v2();
    let mut grid = issue_grid(&v1);
    let map = issue_servermap(&mut grid, &v1);
    grid.servers.get_mut(&ServerIndex(3)).unwrap().stalled = true;
    let order = grid.order();
    let run = publish(
        &mut grid,
        &map,
        &order,
        &v2,
        Delivery::Asynchronous { seed: 9 },
    );
    let outcome = assert_good_publish(&run, &grid, &v2);
    assert_eq!(outcome.failures.len(), 1);
    assert!(
        outcome.failures[0].reason.contains("no answer within"),
        "{outcome:?}"
    );
    assert_eq!(
        outcome.placed[&ShareNum(3)],
        BTreeSet::from([ServerIndex(11)])
    );
    // The machine itself reports the stall (the driver no longer guesses it from a cancel).
    let stalls: Vec<&Problem> = run
        .reports
        .iter()
        .filter(|p| p.kind == ProblemKind::Stall)
        .collect();
    assert_eq!(stalls.len(), 1, "{:?}", run.reports);
    assert_eq!(stalls[0].server, ServerIndex(3));
    assert!(stalls[0].reason.contains("no answer within"), "{stalls:?}");
}

#[test]
fn a_failed_writes_fault_reaches_the_problem_report() {
    let (v1, v2) = v1_v2();
    let mut grid = issue_grid(&v1);
    let map = issue_servermap(&mut grid, &v1);
    grid.servers.get_mut(&ServerIndex(3)).unwrap().fail_writes = true;
    let order = grid.order();
    let run = publish(&mut grid, &map, &order, &v2, Delivery::Synchronous);
    assert_good_publish(&run, &grid, &v2);
    let failed: Vec<&Problem> = run
        .reports
        .iter()
        .filter(|p| matches!(p.kind, ProblemKind::Failed(_)))
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", run.reports);
    assert_eq!(failed[0].server, ServerIndex(3));
    assert_eq!(failed[0].kind, ProblemKind::Failed(Fault::Server));
}

#[test]
fn servermap_records_failed_and_stalled_servers_and_still_finishes() {
    let (v1, _) = v1_v2();
    let mut grid = issue_grid(&v1);
    grid.servers.get_mut(&ServerIndex(3)).unwrap().down = true;
    grid.servers.get_mut(&ServerIndex(5)).unwrap().stalled = true;
    let map = update(&mut grid, Mode::Write);
    let failed: BTreeSet<ServerIndex> = map.failures().iter().map(|f| f.server).collect();
    assert_eq!(failed, BTreeSet::from([ServerIndex(3), ServerIndex(5)]));
    assert!(!map.is_reachable(ServerIndex(3)) && !map.is_reachable(ServerIndex(5)));
    let best = map.best_recoverable_version().unwrap();
    assert_eq!(best.header(), v1.header);
    assert_eq!(
        map.versions()[&best].len(),
        9,
        "all shares but 5 (3 is on 11)"
    );
}

#[test]
fn read_mode_keeps_asking_past_stale_servers_answering_first() {
    // Servers 1-4 hold the old version (recoverable on its own), 5-14 the new one. After
    // k + epsilon = 6 answers the new version has 2 shares: newer but unrecoverable, so
    // the update goes on until the new version is recoverable.
    let (v1, v2) = v1_v2();
    let mut grid = Grid::new(14);
    for server in 1..=4u32 {
        let sh = ShareNum((server - 1) as u8);
        grid.put(ServerIndex(server), sh, &v1.shares[&sh]);
    }
    for server in 5..=14u32 {
        let sh = ShareNum((server - 5) as u8);
        grid.put(ServerIndex(server), sh, &v2.shares[&sh]);
    }
    let map = update(&mut grid, Mode::Read);
    assert_eq!(map.best_recoverable_version().unwrap().header(), v2.header);
    assert!(map.unrecoverable_newer_versions().is_empty());
    let asked = grid.queries.values().sum::<usize>();
    assert!((7..=12).contains(&asked), "asked {asked} servers");
}

/// Does some version have at least k distinct shares on the grid?
fn some_version_recoverable(grid: &Grid) -> bool {
    let mut by_version: BTreeMap<Vec<u8>, BTreeSet<ShareNum>> = BTreeMap::new();
    for s in grid.servers.values() {
        for (sh, d) in &s.shares {
            by_version
                .entry(d[..publish::READ_LEN as usize].to_vec())
                .or_default()
                .insert(*sh);
        }
    }
    by_version.values().any(|shares| shares.len() >= K as usize)
}

#[test]
fn simulated_fault_schedules() {
    // Random grids (11-16 servers, shares in random places, a few extra copies), then
    // after the servermap update: up to four servers go down, stall or fail writes, and
    // sometimes another writer puts its own seqnum 2 on one to three servers. Checked
    // after every run: no duplicate write; no uncoordinated-write error without another
    // writer; success whenever enough healthy servers remain; success means every share
    // of the new version is on the grid with happiness >= happy; and some version is
    // always recoverable. A failure names its seed; rerun with only that seed to replay.
    let (v1, v2) = v1_v2();
    let other = make_version(MutableFormat::Sdmf, 2, b"a concurrent writer", 77);
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for seed in 0..300u64 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let count: u32 = rng.gen_range(11..=16);
        let mut grid = Grid::new(count);
        let mut order = grid.order();
        order.shuffle(&mut rng);
        for sh in ShareNum::below(N.into()) {
            grid.put(order[sh.get()], sh, &v1.shares[&sh]);
        }
        for _ in 0..rng.gen_range(0..=2) {
            let sh = ShareNum(rng.gen_range(0..N));
            let server = order[rng.gen_range(0..order.len())];
            grid.put(server, sh, &v1.shares[&sh]);
        }
        let map = update(&mut grid, Mode::Write);

        let faulty = rng.gen_range(0..=4usize);
        order.shuffle(&mut rng);
        for s in &order[..faulty] {
            let srv = grid.servers.get_mut(s).unwrap();
            match rng.gen_range(0..3) {
                0 => srv.down = true,
                1 => srv.stalled = true,
                _ => srv.fail_writes = true,
            }
        }
        let collide = rng.gen_bool(0.2);
        if collide {
            for _ in 0..rng.gen_range(1..=3) {
                let server = order[rng.gen_range(0..order.len())];
                let held: Vec<ShareNum> = grid.servers[&server].shares.keys().copied().collect();
                let sh = held
                    .first()
                    .copied()
                    .unwrap_or(ShareNum(rng.gen_range(0..N)));
                grid.put(server, sh, &other.shares[&sh]);
            }
        }
        let delivery = if rng.gen_bool(0.5) {
            Delivery::Synchronous
        } else {
            Delivery::Asynchronous { seed }
        };
        let servers = grid.order();
        let run = publish(&mut grid, &map, &servers, &v2, delivery);
        let ctx = format!(
            "seed {seed} ({count} servers, {faulty} faulty, collide={collide}, {delivery:?}): {:?}",
            run.result
        );

        let mut seen = BTreeSet::new();
        assert!(
            grid.writes.iter().all(|w| seen.insert(*w)),
            "duplicate write, {ctx}"
        );
        assert!(
            some_version_recoverable(&grid),
            "no recoverable version, {ctx}"
        );
        *tally
            .entry(match &run.result {
                Ok(_) => "ok",
                Err(PublishError::UncoordinatedWrite { .. }) => "uncoordinated write",
                Err(PublishError::NotEnoughServers { .. }) => "not enough servers",
            })
            .or_default() += 1;
        match &run.result {
            Ok(outcome) => {
                assert!(outcome.happiness >= HAPPY, "{ctx}");
                assert_eq!(grid.holders_of(&v2.header).len(), N as usize, "{ctx}");
            }
            Err(PublishError::UncoordinatedWrite { .. }) => {
                assert!(collide, "spurious uncoordinated write, {ctx}");
            }
            Err(PublishError::NotEnoughServers { .. }) => {
                assert!(
                    collide || count as usize - faulty < HAPPY,
                    "gave up with enough healthy servers, {ctx}"
                );
            }
        }
    }
    println!("outcomes over 300 schedules: {tally:?}");
}

#[test]
fn older_share_on_a_server_the_map_never_asked_is_skipped_not_a_collision() {
    // Version 1 on servers 1-10 of 20; server 20 also keeps an old copy of share 3 that
    // the write-mode update never saw (it stopped after three empty servers past 10).
    // Server 3 is lost and 11-19 fail writes, so share 3 is offered to 20, whose test
    // fails on the old share: 20 is skipped and share 3 lands on a server already used.
    let (v1, v2) = v1_v2();
    let mut grid = Grid::new(20);
    for server in 1..=10u32 {
        let sh = ShareNum((server % 10) as u8);
        grid.put(ServerIndex(server), sh, &v1.shares[&sh]);
    }
    let map = update(&mut grid, Mode::Write);
    assert!(
        !map.queried().contains(&ServerIndex(20)),
        "{:?}",
        map.queried()
    );
    grid.put(ServerIndex(20), ShareNum(3), &v1.shares[&ShareNum(3)]);
    grid.servers.get_mut(&ServerIndex(3)).unwrap().down = true;
    for s in (11..=19).map(ServerIndex) {
        grid.servers.get_mut(&s).unwrap().fail_writes = true;
    }
    let order = grid.order();
    let run = publish(&mut grid, &map, &order, &v2, Delivery::Synchronous);
    let outcome = assert_good_publish(&run, &grid, &v2);
    assert_eq!(outcome.stale_shares, vec![(ServerIndex(20), ShareNum(3))]);
    assert_eq!(outcome.placed[&ShareNum(3)].len(), 1);
    assert_eq!(outcome.happiness, 9);
}

#[test]
fn truncated_and_mangled_answers_never_panic() {
    // Every prefix of a real SDMF and MDMF share, and the same with one byte flipped, as a
    // query answer: the update records a version, asks a follow-up read, or marks the
    // share bad, and never panics or asks for more than a bounded read.
    let sdmf = make_version(MutableFormat::Sdmf, 1, b"small", 31);
    let mdmf = make_version(MutableFormat::Mdmf, 1, &[1u8; 3000], 32);
    for v in [&sdmf, &mdmf] {
        let share = &v.shares[&ShareNum(0)];
        for len in (0..share.len().min(2400)).step_by(7) {
            for flip in [None, Some(len / 2)] {
                let mut data = share[..len].to_vec();
                if let Some(at) = flip.filter(|at| *at < data.len()) {
                    data[at] ^= 0x80;
                }
                let mut m = ServermapUpdater::new(config(Mode::Check), &[ServerIndex(1)]).unwrap();
                let start = m.start(0);
                let Some(servermap::Action::Send {
                    id,
                    request: servermap::Read::Query { .. },
                    ..
                }) = start.first()
                else {
                    panic!("{start:?}");
                };
                let response = BTreeMap::from([(ShareNum(0), data)]);
                let actions = m.handle(SEvent::Answer { id: *id, response }, 1).unwrap();
                let map = m.servermap();
                let followed = actions.iter().any(|a| match a {
                    servermap::Action::Send {
                        request: servermap::Read::Share { len, .. },
                        ..
                    } => {
                        assert!(*len <= servermap::MAX_PREFIX_LEN);
                        true
                    }
                    _ => false,
                });
                assert!(
                    followed
                        || map.version_on(ServerIndex(1), ShareNum(0)).is_some()
                        || map
                            .bad_shares()
                            .contains_key(&(ServerIndex(1), ShareNum(0))),
                    "len {len} flip {flip:?}: {actions:?}"
                );
            }
        }
    }
}

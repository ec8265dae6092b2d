//! The CHK upload server-selection machine against a simulated grid: normal placement
//! (equal to Tahoe's `share_placement`), shares that already exist, servers that fail to
//! list or to allocate, full servers, servers lost while writing, and misuse by a driver.
//! Expected message fragments are the ones Tahoe-LAFS 1.20's own tests check
//! (`allmydata/test/test_upload.py`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::ControlFlow;

use cairn_core::client::machine::{Failure, Fault, Problem, ProblemKind, ServerIndex};
use cairn_core::client::upload::{
    Abort, Action, Candidate, Event, MachineError, Request, SelectionParams, SetupError, Stage,
    UploadMachine, UploadRequest, UploadResponse, UploadUnhappy,
};
use cairn_core::ids::ShareNum;
use cairn_core::placement::{servers_of_happiness, share_placement};
use cairn_test_support::stepping::bounded;
use proptest::prelude::*;

/// One simulated server.
#[derive(Clone, Debug, Default)]
struct Sim {
    /// Finished shares it holds.
    holds: BTreeSet<ShareNum>,
    /// How many new buckets it accepts (None = unlimited).
    capacity: Option<usize>,
    fail_list: bool,
    fail_allocate: bool,
    /// Buckets allocated to the upload.
    buckets: BTreeSet<ShareNum>,
    aborted: BTreeSet<ShareNum>,
}

/// A request the machine sent, by server (what the tests check about selection).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Sent {
    ListShares {
        server: ServerIndex,
    },
    Allocate {
        server: ServerIndex,
        shares: BTreeSet<ShareNum>,
    },
    Abort {
        server: ServerIndex,
        shares: BTreeSet<ShareNum>,
    },
}

/// The request an action sends, with its id; `None` for the other actions.
fn sent(a: &Action) -> Option<(u64, Sent)> {
    let Action::Send {
        id,
        server,
        request,
    } = a
    else {
        return None;
    };
    let server = *server;
    Some((
        *id,
        match request {
            UploadRequest::ListShares => Sent::ListShares { server },
            UploadRequest::Allocate { shares } => Sent::Allocate {
                server,
                shares: shares.clone(),
            },
            UploadRequest::Abort { shares } => Sent::Abort {
                server,
                shares: shares.clone(),
            },
        },
    ))
}

fn listed(id: u64, shares: BTreeSet<ShareNum>) -> Event {
    Event::Answer {
        id,
        response: UploadResponse::Listed { shares },
    }
}

fn allocated(id: u64, already_have: BTreeSet<ShareNum>, allocated: BTreeSet<ShareNum>) -> Event {
    Event::Answer {
        id,
        response: UploadResponse::Allocated {
            already_have,
            allocated,
        },
    }
}

struct Run {
    log: Vec<Sent>,
    sims: BTreeMap<ServerIndex, Sim>,
    /// The machine's problem reports.
    reports: Vec<Problem>,
}

fn writable(n: u32) -> Vec<Candidate> {
    (0..n)
        .map(|server| Candidate {
            server: ServerIndex(server),
            writable: true,
        })
        .collect()
}

fn params(needed: u16, happy: u16, total: u16) -> SelectionParams {
    SelectionParams {
        needed,
        happy,
        total,
        request_timeout: 1_000,
    }
}

/// Drive `m` to the end of selection, answering in FIFO order (a bounded number of steps,
/// so a livelock fails instead of hanging).
fn drive(m: &mut UploadMachine, mut sims: BTreeMap<ServerIndex, Sim>) -> Run {
    let mut queue: VecDeque<Action> = m.start(0).into();
    let mut log = Vec::new();
    let mut reports = Vec::new();
    let mut finish = None;
    bounded(10_000, || {
        let Some(a) = queue.pop_front() else {
            return ControlFlow::Break(());
        };
        let (id, a) = match (sent(&a), a) {
            (Some(s), _) => s,
            (None, Action::Report(p)) => {
                reports.push(p);
                return ControlFlow::Continue(());
            }
            (None, Action::Finish(f)) => {
                assert!(finish.is_none(), "finished twice");
                finish = Some(f);
                return ControlFlow::Continue(());
            }
            (None, other) => panic!("unexpected action {other:?}"),
        };
        log.push(a.clone());
        let ev = match a {
            Sent::ListShares { server } => {
                let s = &sims[&server];
                if s.fail_list {
                    Event::Failed {
                        id,
                        failure: Failure::new(Fault::Network, "connection refused"),
                    }
                } else {
                    listed(id, s.holds.clone())
                }
            }
            Sent::Allocate { server, shares } => {
                let s = sims.get_mut(&server).unwrap();
                if s.fail_allocate {
                    Event::Failed {
                        id,
                        failure: Failure::new(Fault::Server, "HTTP 500"),
                    }
                } else {
                    let already_have = s.holds.clone();
                    let mut got = BTreeSet::new();
                    for sh in shares {
                        if s.holds.contains(&sh) || s.buckets.contains(&sh) {
                            continue;
                        }
                        if s.capacity.is_some_and(|c| s.buckets.len() >= c) {
                            continue;
                        }
                        s.buckets.insert(sh);
                        got.insert(sh);
                    }
                    allocated(id, already_have, got)
                }
            }
            Sent::Abort { server, shares } => {
                sims.get_mut(&server).unwrap().aborted.extend(shares);
                return ControlFlow::Continue(());
            }
        };
        queue.extend(m.handle(ev, 1).expect("driver follows the protocol"));
        ControlFlow::Continue(())
    })
    .expect("no progress");
    assert_eq!(m.outstanding(), 0);
    // Selection ends with its outcome, the one the machine keeps.
    match (&finish, m.outcome()) {
        (Some(Ok(f)), Some(Ok(o))) => assert_eq!(f, o, "the Finish action carries the outcome"),
        (Some(Err(f)), Some(Err(o))) => assert_eq!(f, o, "the Finish action carries the outcome"),
        (f, o) => panic!("finished with {f:?}, outcome {o:?}"),
    }
    assert!(m.is_done());
    Run { log, sims, reports }
}

fn sims(n: u32) -> BTreeMap<ServerIndex, Sim> {
    (0..n).map(|i| (ServerIndex(i), Sim::default())).collect()
}

/// No (server, share) allocation and no listing is requested twice.
fn assert_no_repeats(log: &[Sent]) {
    let mut lists = BTreeSet::new();
    let mut allocs = BTreeSet::new();
    for a in log {
        match a {
            Sent::ListShares { server } => {
                assert!(lists.insert(*server), "listed {server} twice")
            }
            Sent::Allocate { server, shares } => {
                for sh in shares {
                    assert!(
                        allocs.insert((*server, *sh)),
                        "asked {server} for share {sh} twice"
                    );
                }
            }
            Sent::Abort { .. } => {}
        }
    }
}

fn unhappy(m: &UploadMachine) -> &UploadUnhappy {
    match m.outcome() {
        Some(Err(u)) => u,
        other => panic!("expected unhappiness, got {other:?}"),
    }
}

#[test]
fn normal_placement_is_tahoes() {
    let mut m = UploadMachine::new(&writable(10), params(3, 7, 10)).unwrap();
    let run = drive(&mut m, sims(10));
    let p = m.outcome().unwrap().unwrap().clone();
    let servers: Vec<ServerIndex> = (0..10).map(ServerIndex).collect();
    let tahoe = share_placement(&servers, &[], &[], 10).unwrap();
    let expected: BTreeMap<ServerIndex, BTreeSet<ShareNum>> = servers
        .iter()
        .map(|s| (*s, tahoe.allocation_for(*s)))
        .collect();
    assert_eq!(p.writes, expected);
    assert!(
        p.writes.values().all(|s| s.len() == 1),
        "one share per server"
    );
    assert!(p.present.is_empty());
    assert_eq!(p.happiness, 10);
    assert_eq!(m.stats().total, 10);
    assert_eq!(m.stats().good, 10);
    assert_no_repeats(&run.log);
    // 10 listings, then 10 allocations, nothing else
    assert_eq!(run.log.len(), 20);
}

#[test]
fn only_first_2n_candidates_are_used() {
    let mut m = UploadMachine::new(&writable(30), params(2, 3, 4)).unwrap();
    assert_eq!(
        m.candidates().collect::<Vec<_>>(),
        (0..8).map(ServerIndex).collect::<Vec<_>>()
    );
    let run = drive(&mut m, sims(30));
    assert!(run
        .log
        .iter()
        .all(|a| !matches!(a, Sent::ListShares { server } if server.0 >= 8)));
    assert_eq!(m.outcome().unwrap().unwrap().happiness, 4);
}

#[test]
fn fewer_shares_than_servers_and_more_shares_than_servers() {
    // 3 servers, N=10: every share gets a home, several per server, happiness 3.
    let mut m = UploadMachine::new(&writable(3), params(2, 3, 10)).unwrap();
    drive(&mut m, sims(3));
    let p = m.outcome().unwrap().unwrap();
    assert_eq!(p.shares_to_write().len(), 10);
    assert_eq!(p.happiness, 3);
}

#[test]
fn shares_already_everywhere_are_not_allocated_again() {
    // A previous upload left share i on server i.
    let mut s = sims(10);
    for i in 0..10u32 {
        s.get_mut(&ServerIndex(i))
            .unwrap()
            .holds
            .insert(ShareNum(i as u8));
    }
    let mut m = UploadMachine::new(&writable(10), params(3, 7, 10)).unwrap();
    let run = drive(&mut m, s);
    let p = m.outcome().unwrap().unwrap();
    assert!(p.writes.is_empty(), "{:?}", p.writes);
    assert_eq!(p.present.len(), 10);
    assert_eq!(p.happiness, 10);
    assert!(run.sims.values().all(|s| s.buckets.is_empty()));
    assert_no_repeats(&run.log);
}

#[test]
fn some_shares_present_only_the_rest_is_allocated() {
    // Servers 0..5 hold shares 0..5; the other five shares need homes.
    let mut s = sims(10);
    for i in 0..5u32 {
        s.get_mut(&ServerIndex(i))
            .unwrap()
            .holds
            .insert(ShareNum(i as u8));
    }
    let mut m = UploadMachine::new(&writable(10), params(3, 7, 10)).unwrap();
    let run = drive(&mut m, s);
    let p = m.outcome().unwrap().unwrap();
    let written = p.shares_to_write();
    assert_eq!(
        written,
        (5..10).map(ShareNum).collect::<BTreeSet<ShareNum>>()
    );
    for (server, shares) in &p.writes {
        assert!(
            *server >= ServerIndex(5),
            "existing holders get no new share: {:?}",
            p.writes
        );
        assert_eq!(shares.len(), 1);
    }
    assert_eq!(p.happiness, 10);
    assert_no_repeats(&run.log);
}

#[test]
fn all_shares_on_one_server_are_spread_out() {
    // Tahoe's test_query_counting third case: every share on the first server.
    let mut s = sims(10);
    s.get_mut(&ServerIndex(0)).unwrap().holds = (0..10).map(ShareNum).collect();
    let mut m = UploadMachine::new(&writable(10), params(3, 7, 10)).unwrap();
    drive(&mut m, s);
    let p = m.outcome().unwrap().unwrap();
    assert!(p.happiness >= 7);
    assert_eq!(p.present.len(), 10);
}

#[test]
fn servers_failing_to_list_are_left_out() {
    let mut s = sims(10);
    s.get_mut(&ServerIndex(2)).unwrap().fail_list = true;
    s.get_mut(&ServerIndex(7)).unwrap().fail_list = true;
    let mut m = UploadMachine::new(&writable(10), params(3, 7, 10)).unwrap();
    let run = drive(&mut m, s);
    let p = m.outcome().unwrap().unwrap();
    assert!(!p.writes.contains_key(&ServerIndex(2)) && !p.writes.contains_key(&ServerIndex(7)));
    assert_eq!(p.happiness, 8);
    assert_eq!(p.shares_to_write().len(), 10);
    // never asked again
    assert!(run
        .log
        .iter()
        .all(|a| !matches!(a, Sent::Allocate { server, .. } if server.0 == 2 || server.0 == 7)));
    // the placement is Tahoe's over the 8 that answered
    let live: Vec<ServerIndex> = (0..10)
        .filter(|i| *i != 2 && *i != 7)
        .map(ServerIndex)
        .collect();
    let tahoe = share_placement(&live, &[], &[], 10).unwrap();
    for s in &live {
        assert_eq!(
            p.writes.get(s).cloned().unwrap_or_default(),
            tahoe.allocation_for(*s)
        );
    }
    assert_eq!(m.failures().len(), 2);
    assert!(m
        .failures()
        .iter()
        .all(|f| f.during == Request::ListShares && f.reason == "connection refused"));
    assert_no_repeats(&run.log);
}

#[test]
fn server_failing_to_allocate_once_happy_is_left_out() {
    // Happiness 9 >= 7 after the first round: like Tahoe, the failed server's share stays
    // homeless and no second round is run.
    let mut s = sims(10);
    s.get_mut(&ServerIndex(4)).unwrap().fail_allocate = true;
    let mut m = UploadMachine::new(&writable(10), params(3, 7, 10)).unwrap();
    let run = drive(&mut m, s);
    let p = m.outcome().unwrap().unwrap();
    assert!(!p.writes.contains_key(&ServerIndex(4)));
    assert_eq!(p.shares_to_write().len(), 9);
    assert_eq!(p.happiness, 9);
    let st = m.stats();
    assert_eq!((st.total, st.good, st.error, st.bad), (10, 9, 1, 1));
    assert_eq!(m.failures()[0].during, Request::Allocate);
    assert_no_repeats(&run.log);
}

#[test]
fn server_failing_to_allocate_has_its_share_placed_elsewhere() {
    // 12 servers, happy = N = 10: the first round leaves two servers without a share; a
    // server that fails sends its share to one of them in a second round.
    let servers: Vec<ServerIndex> = (0..12).map(ServerIndex).collect();
    let first = share_placement(&servers, &[], &[], 10).unwrap();
    let victim = *first.placements.values().next().unwrap();
    let mut s = sims(12);
    s.get_mut(&victim).unwrap().fail_allocate = true;
    let mut m = UploadMachine::new(&writable(12), params(3, 10, 10)).unwrap();
    let run = drive(&mut m, s);
    let p = m.outcome().unwrap().unwrap();
    assert!(!p.writes.contains_key(&victim));
    assert_eq!(
        p.shares_to_write().len(),
        10,
        "the failed server's share found another home"
    );
    assert_eq!(p.happiness, 10);
    let st = m.stats();
    assert_eq!((st.error, st.bad), (1, 1));
    assert_eq!(st.total, 11, "one more request in a second round: {st:?}");
    assert_no_repeats(&run.log);
    // buckets of the first round stayed where they were
    for (server, shares) in &p.writes {
        if *server != victim {
            assert!(first.allocation_for(*server).is_subset(shares));
        }
        for sh in shares {
            assert!(run.sims[server].buckets.contains(sh));
        }
    }
}

#[test]
fn full_servers_become_readonly() {
    // 13 servers, happy = N = 10; three say they can take shares but refuse every
    // allocation: their shares move to the spare servers.
    let mut s = sims(13);
    for i in [0, 4, 8] {
        s.get_mut(&ServerIndex(i)).unwrap().capacity = Some(0);
    }
    let mut m = UploadMachine::new(&writable(13), params(3, 10, 10)).unwrap();
    let run = drive(&mut m, s);
    let p = m.outcome().unwrap().unwrap();
    assert_eq!(p.happiness, 10);
    assert_eq!(p.shares_to_write().len(), 10);
    assert!(p.writes.keys().all(|s| ![0, 4, 8].contains(&s.0)));
    assert!(m.stats().full >= 1);
    assert_eq!(m.stats().error, 0);
    assert_no_repeats(&run.log);
}

#[test]
fn too_few_writable_servers_is_unhappy() {
    // 6 servers can take a share this size, 4 cannot (announced maximum too small).
    let cands: Vec<Candidate> = (0..10)
        .map(|server| Candidate {
            server: ServerIndex(server),
            writable: server < 6,
        })
        .collect();
    let mut m = UploadMachine::new(&cands, params(3, 7, 10)).unwrap();
    let run = drive(&mut m, sims(10));
    let u = unhappy(&m).clone();
    assert_eq!(u.stage, Stage::Selection);
    assert_eq!(u.unhappiness.effective_happiness, 6);
    // read-only servers were asked once (lease renewal), never for shares
    for a in &run.log {
        if let Sent::Allocate { server, shares } = a {
            if server.0 >= 6 {
                assert!(shares.is_empty());
            }
        }
    }
    // every bucket allocated was aborted
    for (i, s) in &run.sims {
        assert_eq!(s.buckets, s.aborted, "server {i}");
    }
    let msg = u.to_string();
    assert!(msg.starts_with(
        "shares could be placed on only 6 server(s) such that any 3 of them have enough shares to recover the \
         file, but we were asked to place shares on at least 7 such servers."
    ), "{msg}");
    assert!(msg.contains("10 of 10 servers reachable"), "{msg}");
}

#[test]
fn four_servers_happy_seven() {
    let mut m = UploadMachine::new(&writable(4), params(3, 7, 10)).unwrap();
    let run = drive(&mut m, sims(4));
    let u = unhappy(&m);
    let names = |i: ServerIndex| format!("srv{}", i.0);
    assert_eq!(
        u.message(&names),
        "shares could be placed on only 4 server(s) such that any 3 of them have enough shares to recover the \
         file, but we were asked to place shares on at least 7 such servers. (placed all 10 shares, want to \
         place shares on at least 7 servers such that any 3 of them have enough shares to recover the file, \
         sent 4 queries to 4 servers, 4 queries placed some shares, 0 placed none (of which 0 placed none due \
         to the server being full and 0 placed none due to an error)); 4 of 4 servers reachable"
    );
    let aborted: usize = run.sims.values().map(|s| s.aborted.len()).sum();
    assert_eq!(aborted, 10);
    // every request was answered: a further answer is the driver's bug
    assert!(m.handle(listed(0, BTreeSet::new()), 2).is_err());
}

#[test]
fn tahoe_readonly_message_counts() {
    // test_exception_messages_during_server_selection, first case: 5 read-only servers.
    let cands: Vec<Candidate> = (0..5)
        .map(|server| Candidate {
            server: ServerIndex(server),
            writable: false,
        })
        .collect();
    let mut m = UploadMachine::new(&cands, params(3, 4, 10)).unwrap();
    drive(&mut m, sims(5));
    let msg = unhappy(&m).to_string();
    assert!(
        msg.contains(
            "placed 0 shares out of 10 total (10 homeless), want to place shares on at least 4 servers such that \
             any 3 of them have enough shares to recover the file, sent 5 queries to 5 servers, 0 queries placed \
             some shares, 5 placed none (of which 5 placed none due to the server being full and 0 placed none \
             due to an error)"
        ),
        "{msg}"
    );
    // test_upper_limit_on_readonly_queries: 10 read-only servers, k=2 happy=4 N=4.
    let cands: Vec<Candidate> = (0..10)
        .map(|server| Candidate {
            server: ServerIndex(server),
            writable: false,
        })
        .collect();
    let mut m = UploadMachine::new(&cands, params(2, 4, 4)).unwrap();
    drive(&mut m, sims(10));
    assert!(unhappy(&m)
        .to_string()
        .contains("sent 8 queries to 8 servers"));
}

#[test]
fn failure_reasons_are_named() {
    let mut s = sims(5);
    s.get_mut(&ServerIndex(1)).unwrap().fail_list = true;
    s.get_mut(&ServerIndex(3)).unwrap().fail_allocate = true;
    let mut m = UploadMachine::new(&writable(5), params(3, 5, 10)).unwrap();
    drive(&mut m, s);
    let u = unhappy(&m);
    assert_eq!(u.servers_queried, 5);
    assert_eq!(u.servers_reachable, 3);
    let msg = u.message(&|i| format!("srv{}", i.0));
    assert!(msg.contains("3 of 5 servers reachable"), "{msg}");
    assert!(
        msg.contains("srv1 (asking for existing shares): connection refused"),
        "{msg}"
    );
    assert!(msg.contains("srv3 (allocating): HTTP 500"), "{msg}");
    assert!(msg.contains("1 placed none due to an error"), "{msg}");
}

#[test]
fn no_servers() {
    assert_eq!(
        UploadMachine::new(&[], params(3, 7, 10)).unwrap_err(),
        SetupError::NoServers
    );
    assert!(matches!(
        UploadMachine::new(&writable(3), params(3, 11, 10)),
        Err(SetupError::BadParams { .. })
    ));
    let dup = [
        Candidate {
            server: ServerIndex(1),
            writable: true,
        },
        Candidate {
            server: ServerIndex(1),
            writable: false,
        },
    ];
    assert_eq!(
        UploadMachine::new(&dup, params(1, 1, 1)).unwrap_err(),
        SetupError::DuplicateServer(ServerIndex(1))
    );
}

#[test]
fn losing_servers_while_writing() {
    let mut m = UploadMachine::new(&writable(10), params(3, 7, 10)).unwrap();
    drive(&mut m, sims(10));
    let p = m.outcome().unwrap().unwrap().clone();
    let order: Vec<ServerIndex> = p.writes.keys().copied().collect();
    for (n, server) in order[..3].iter().enumerate() {
        let lost = m.server_lost(*server, "connection reset").unwrap();
        assert_eq!(lost.happiness, 9 - n);
        assert_eq!(
            lost.abort,
            Some(Abort {
                server: *server,
                shares: p.writes[server].clone()
            })
        );
        // losing it again changes nothing
        assert_eq!(m.server_lost(*server, "again").unwrap().happiness, 9 - n);
    }
    let now = m.outcome().unwrap().unwrap();
    assert_eq!(now.happiness, 7);
    assert_eq!(now.writes.len(), 7);
    let u = m.server_lost(order[3], "broken pipe").unwrap_err();
    assert_eq!(u.stage, Stage::Writing);
    assert_eq!(u.unhappiness.effective_happiness, 6);
    let msg = u.message(&|i| format!("srv{i}"));
    assert!(
        msg.starts_with(&format!(
            "shares could be placed on only 6 server(s) such that any 3 of them have enough shares to recover \
             the file, but we were asked to place shares on at least 7 such servers.: srv{} failed while \
             writing: broken pipe; 6 of 10 servers still reachable",
            order[3]
        )),
        "{msg}"
    );
    // the remaining six servers' buckets are aborted, and those of the server whose loss
    // failed the upload (the three lost before had their aborts handed out already)
    let aborts = m.abort_all();
    assert_eq!(aborts.len(), 7);
    let aborted: BTreeMap<ServerIndex, BTreeSet<ShareNum>> =
        aborts.into_iter().map(|a| (a.server, a.shares)).collect();
    let expected: BTreeMap<ServerIndex, BTreeSet<ShareNum>> = order[3..]
        .iter()
        .map(|s| (*s, p.writes[s].clone()))
        .collect();
    assert_eq!(aborted, expected);
    assert!(matches!(m.outcome(), Some(Err(_))));
    assert!(m.server_lost(order[4], "x").is_err());
}

/// Seed 42 of the CHK upload simulation: when losing a server makes the upload unhappy,
/// its buckets are still aborted (best effort, as Tahoe aborts a removed shareholder's
/// buckets): `server_lost` hands out no abort with its error, so `abort_all` must.
#[test]
fn the_server_whose_loss_fails_the_upload_has_its_buckets_aborted() {
    // 3-of-10, happy 10 on ten servers: losing any one fails the upload
    let mut m = UploadMachine::new(&writable(10), params(3, 10, 10)).unwrap();
    drive(&mut m, sims(10));
    let p = m.outcome().unwrap().unwrap().clone();
    let (&lost, shares) = p.writes.iter().next().unwrap();
    assert!(!shares.is_empty());
    let u = m.server_lost(lost, "connection reset").unwrap_err();
    assert_eq!(u.stage, Stage::Writing);
    let aborts = m.abort_all();
    assert_eq!(aborts.len(), 10, "{aborts:?}");
    assert!(
        aborts.contains(&Abort {
            server: lost,
            shares: shares.clone()
        }),
        "{aborts:?}"
    );
    // losing it again hands out nothing more
    assert!(m.server_lost(lost, "again").is_err());
    assert_eq!(m.abort_all().len(), 10);
}

#[test]
fn losing_a_server_that_held_shares_before() {
    // Shares present on 0..3 (held before the upload), new ones on 3..10.
    let mut s = sims(10);
    for i in 0..3u32 {
        s.get_mut(&ServerIndex(i))
            .unwrap()
            .holds
            .insert(ShareNum(i as u8));
    }
    let mut m = UploadMachine::new(&writable(10), params(3, 7, 10)).unwrap();
    drive(&mut m, s);
    assert_eq!(m.happiness(), 10);
    let lost = m.server_lost(ServerIndex(0), "gone").unwrap();
    assert_eq!(lost.happiness, 9);
    assert_eq!(lost.abort, None, "nothing was allocated there");
    assert!(!m
        .outcome()
        .unwrap()
        .unwrap()
        .present
        .contains_key(&ShareNum(0)));
}

#[test]
fn driver_misuse_is_reported() {
    let mut m = UploadMachine::new(&writable(2), params(1, 1, 2)).unwrap();
    assert_eq!(
        m.handle(listed(0, BTreeSet::new()), 0).unwrap_err(),
        MachineError::UnknownRequest(0),
        "nothing was sent before start"
    );
    let first = m.start(0);
    assert_eq!(first.len(), 2);
    assert!(m.start(0).is_empty(), "start twice sends nothing twice");
    let ids: Vec<(u64, Sent)> = first.iter().filter_map(sent).collect();
    assert_eq!(
        ids.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
        vec![
            Sent::ListShares {
                server: ServerIndex(0)
            },
            Sent::ListShares {
                server: ServerIndex(1)
            }
        ]
    );
    let (id0, id1) = (ids[0].0, ids[1].0);
    assert!(matches!(
        m.handle(allocated(id0, BTreeSet::new(), BTreeSet::new()), 1),
        Err(MachineError::WrongAnswer {
            server: ServerIndex(0),
            ..
        })
    ));
    assert_eq!(
        m.handle(listed(99, BTreeSet::new()), 1).unwrap_err(),
        MachineError::UnknownRequest(99)
    );
    assert!(m
        .handle(listed(id0, BTreeSet::new()), 1)
        .unwrap()
        .is_empty());
    assert_eq!(
        m.handle(listed(id0, BTreeSet::new()), 1).unwrap_err(),
        MachineError::UnknownRequest(id0),
        "an answer is taken once"
    );
    let allocs = m.handle(listed(id1, BTreeSet::new()), 1).unwrap();
    assert_eq!(allocs.len(), 2);
}

#[test]
fn allocating_unasked_shares_is_a_server_failure() {
    let mut m = UploadMachine::new(&writable(2), params(1, 1, 2)).unwrap();
    let ids: Vec<u64> = m
        .start(0)
        .iter()
        .filter_map(sent)
        .map(|(id, _)| id)
        .collect();
    m.handle(listed(ids[0], BTreeSet::new()), 1).unwrap();
    let actions = m.handle(listed(ids[1], BTreeSet::new()), 1).unwrap();
    let mut next = Vec::new();
    for a in actions {
        let Some((id, Sent::Allocate { server, shares })) = sent(&a) else {
            panic!("{a:?}")
        };
        let got = if server == ServerIndex(0) {
            BTreeSet::from([ShareNum(7)])
        } else {
            shares
        };
        next.extend(m.handle(allocated(id, BTreeSet::new(), got), 2).unwrap());
    }
    let p = m.outcome().unwrap().unwrap().clone();
    assert_eq!(
        next,
        vec![Action::Finish(Ok(p.clone()))],
        "happy with server 1 alone"
    );
    assert_eq!(
        p.writes.keys().copied().collect::<Vec<_>>(),
        vec![ServerIndex(1)]
    );
    assert_eq!(p.happiness, 1);
    assert!(m.failures()[0].reason.contains("not asked for"));
}

#[test]
fn a_request_unanswered_by_its_deadline_fails_and_the_upload_goes_on() {
    // Server 2 never answers its share listing: at the deadline the machine reports the
    // stall, cancels the request, takes the server as failed and places shares on the
    // other servers.
    let mut m = UploadMachine::new(&writable(4), params(2, 3, 4)).unwrap();
    let first = m.start(0);
    assert_eq!(m.next_deadline(), Some(1_000));
    let mut silent = None;
    let mut queue: VecDeque<Action> = VecDeque::new();
    for a in &first {
        match sent(a) {
            Some((
                id,
                Sent::ListShares {
                    server: ServerIndex(2),
                },
            )) => silent = Some(id),
            Some((id, Sent::ListShares { .. })) => {
                queue.extend(m.handle(listed(id, BTreeSet::new()), 10).unwrap())
            }
            other => panic!("{other:?}"),
        }
    }
    let silent = silent.unwrap();
    assert!(queue.is_empty(), "still waiting for server 2: {queue:?}");
    // Before the deadline a tick changes nothing.
    assert!(m.handle(Event::Tick, 999).unwrap().is_empty());
    let at_deadline = m.handle(Event::Tick, 1_000).unwrap();
    let stall = Problem {
        server: ServerIndex(2),
        shnum: None,
        kind: ProblemKind::Stall,
        reason: "no answer to the share listing request within 1000 ms".into(),
    };
    assert_eq!(at_deadline[0], Action::Report(stall));
    assert_eq!(at_deadline[1], Action::Cancel { id: silent });
    // The allocation round goes to the three servers that answered.
    let mut finished = None;
    queue.extend(at_deadline.into_iter().skip(2));
    while let Some(a) = queue.pop_front() {
        match (sent(&a), a) {
            (Some((id, Sent::Allocate { server, shares })), _) => {
                assert_ne!(server.0, 2, "a failed server is not asked again");
                queue.extend(
                    m.handle(allocated(id, BTreeSet::new(), shares), 1_001)
                        .unwrap(),
                );
            }
            (None, Action::Finish(f)) => finished = Some(f),
            (_, other) => panic!("{other:?}"),
        }
    }
    let p = finished.expect("selection finished").expect("happy");
    assert_eq!(p.happiness, 3);
    assert!(!p.writes.contains_key(&ServerIndex(2)));
    assert_eq!(m.failures().len(), 1);
    assert_eq!(m.failures()[0].server.0, 2);
    assert_eq!(m.failures()[0].during, Request::ListShares);
    // Its late answer is ignored.
    assert!(m
        .handle(listed(silent, BTreeSet::new()), 1_002)
        .unwrap()
        .is_empty());
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn a_failures_fault_reaches_the_problem_report() {
    let mut s = sims(4);
    s.get_mut(&ServerIndex(1)).unwrap().fail_allocate = true;
    let mut m = UploadMachine::new(&writable(4), params(2, 3, 4)).unwrap();
    let run = drive(&mut m, s);
    assert_eq!(
        run.reports,
        vec![Problem {
            server: ServerIndex(1),
            shnum: None,
            kind: ProblemKind::Failed(Fault::Server),
            reason: "HTTP 500".into(),
        }]
    );
    assert_eq!(m.outcome().unwrap().unwrap().happiness, 3);
}

#[test]
fn happy_zero_still_asks_once() {
    // The repairer's happy=0: the loop runs once.
    let mut m = UploadMachine::new(&writable(3), params(1, 0, 3)).unwrap();
    let run = drive(&mut m, sims(3));
    assert_eq!(
        run.log
            .iter()
            .filter(|a| matches!(a, Sent::Allocate { .. }))
            .count(),
        3
    );
    assert_eq!(m.outcome().unwrap().unwrap().happiness, 3);
}

fn sim_strategy() -> impl Strategy<Value = Sim> {
    (
        proptest::collection::btree_set((0u8..12).prop_map(ShareNum), 0..4),
        proptest::option::of(0usize..3),
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(holds, capacity, fail_list, fail_allocate)| Sim {
            holds,
            capacity,
            fail_list,
            fail_allocate,
            ..Sim::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any grid: selection ends, no request is repeated, the outcome's happiness is the
    /// servers-of-happiness of what the servers really hold and allocated, and a failure
    /// aborts every bucket; losing servers keeps the books straight.
    #[test]
    fn selection_invariants(
        grid in proptest::collection::vec((sim_strategy(), proptest::bool::weighted(0.8)), 1..16),
        k in 1u16..4,
        extra in 0u16..8,
        happy_frac in 0.0f64..=1.0,
        lose in proptest::collection::vec(0u32..16, 0..6),
    ) {
        let n = (k + extra).min(10);
        let happy = ((n as f64) * happy_frac).round() as u16;
        let cands: Vec<Candidate> =
            grid.iter().enumerate().map(|(i, (_, w))| Candidate { server: ServerIndex(i as u32), writable: *w }).collect();
        let sims: BTreeMap<ServerIndex, Sim> =
            grid.iter().enumerate().map(|(i, (s, _))| (ServerIndex(i as u32), s.clone())).collect();
        let mut m = UploadMachine::new(&cands, params(k, happy, n)).unwrap();
        let run = drive(&mut m, sims);
        assert_no_repeats(&run.log);
        // read-only servers are only asked for shares that some server holds, finished or
        // in a bucket this upload allocated in an earlier round (Tahoe's stage 1 may hand one
        // read-only server's share to another, and a server that filled up mid-upload turns
        // read-only with the buckets it took: docs/placement.md)
        let ro_held: BTreeSet<ShareNum> = run
            .sims
            .values()
            .flat_map(|s| s.holds.iter().chain(&s.buckets).chain(&s.aborted).copied())
            .collect();
        for a in &run.log {
            if let Sent::Allocate { server, shares } = a {
                if !cands[server.get()].writable {
                    prop_assert!(shares.is_subset(&ro_held), "{a:?}");
                }
            }
        }
        match m.outcome().unwrap() {
            Ok(p) => {
                prop_assert!(p.happiness >= happy as usize);
                prop_assert_eq!(p.happiness, servers_of_happiness(&p.sharemap()));
                for (server, shares) in &p.writes {
                    prop_assert!(shares.is_subset(&run.sims[server].buckets));
                }
                for (sh, holders) in &p.present {
                    for h in holders {
                        prop_assert!(run.sims[h].holds.contains(sh));
                    }
                }
                let mut m = m.clone();
                for server in lose {
                    let server = ServerIndex(server);
                    match m.server_lost(server, "lost") {
                        Ok(l) => {
                            let p = m.outcome().unwrap().unwrap();
                            prop_assert_eq!(l.happiness, p.happiness);
                            prop_assert!(l.happiness >= happy as usize);
                            prop_assert!(!p.writes.contains_key(&server));
                            prop_assert!(p.present.values().all(|h| !h.contains(&server)));
                            prop_assert_eq!(p.happiness, servers_of_happiness(&p.sharemap()));
                        }
                        Err(u) => {
                            prop_assert_eq!(u.stage, Stage::Writing);
                            prop_assert!(u.unhappiness.effective_happiness < happy as usize);
                            break;
                        }
                    }
                }
            }
            Err(u) => {
                prop_assert_eq!(u.stage, Stage::Selection);
                prop_assert!(u.unhappiness.effective_happiness < happy as usize);
                for s in run.sims.values() {
                    prop_assert_eq!(&s.buckets, &s.aborted);
                }
            }
        }
    }
}

//! A deterministic simulation of CHK downloads under thousands of random fault schedules,
//! on the shared executor of `cairn_test_support::sim` (one seeded queue, virtual time).
//!
//! One schedule = one file (real shares from the core's CHK encoder: 1-of-1 to 5-of-7,
//! layouts v1 and v2, one to many segments) placed on a few servers, then one to three
//! downloads (the whole file or a random range), everything drawn from a ChaCha8 generator
//! seeded by the schedule's `u64`:
//!
//! * placement: each share on zero (missing), one or two servers; with faults, some copies
//!   are damaged on disk (one bit flipped in the header, anywhere, or in the trailer of
//!   hashes and UEB);
//! * per download each server is healthy, slow (answers within the stall timeout), flaky
//!   (a fate per request: answered, twice, lost, remote error, stalled, answered or
//!   delivered after every timeout), down, stalled, or lying (every read answered with one
//!   bit flipped);
//! * a request that stalls fails after the transport's timeout (120 s), as the driver's
//!   does: the machine waits for an overdue share listing as long as it may still come;
//! * verify and decode jobs run as soon as the machine hands them out, their results
//!   coming back interleaved with the answers in flight.
//!
//! Invariants (`Sim::download`):
//! 1. every output is at the next offset and is exactly the file's bytes there (no
//!    unverified byte is ever output, even by a download that fails later);
//! 2. when `k` distinct intact shares sit on servers that answer throughout (healthy or
//!    slow), the download succeeds and its output is exactly the range asked for;
//!    otherwise it succeeds the same way or fails with `NotEnoughShares` (a clear error,
//!    never `Inconsistent` or a bad cap: the uploader was honest);
//! 3. every share reported corrupt is a damaged copy or was read from a lying server
//!    (corruption is reported against the right server and share);
//! 4. no request to a server whose share listing failed, no read of a share after it was
//!    reported corrupt or failing, no identical read sent twice to one server (unless the
//!    share stalled: the machine may try it again as a last resort);
//! 5. the machine finishes (one `Finished`, nothing after it) within the step limit.
//!
//! `SIM_SCHEDULES=<n>` sets the number of schedules, `SIM_SEED=<u64>` replays one; every
//! failure prints its seed and the command that replays it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use cairn_core::chk::params::LayoutVersion;
use cairn_core::client::download::{
    Action, DownloadConfig, DownloadError, DownloadMachine, Event, ProblemKind, Request, Response,
    ServerInfo,
};
use cairn_core::client::machine::{Chunk, Failure, Fault, RequestId, RunJob};
use cairn_core::ids::{ServerIndex, ShareNum};
use cairn_test_support::sim::chk::{chk_file, ChkFile, Shape};
use cairn_test_support::sim::{
    self, Delivery, Faults, Mood, Net, Out, Replay, Schedule, ServerId, Servers, Tally, Wiring,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

type Buf = Arc<[u8]>;

/// Schedules run by default (well under a millisecond of CPU each in the test profile).
const DEFAULT_SCHEDULES: u64 = 6000;
/// (k, N) of the files.
/// The simulation's name for the server at position `i` of the grid.
fn sid(i: usize) -> ServerId {
    ServerIndex::from_position(i).expect("a small grid")
}

const GEOMETRIES: [(u16, u16); 7] = [(1, 1), (1, 3), (2, 3), (2, 5), (3, 6), (3, 10), (5, 7)];
const LENGTHS: [usize; 7] = [56, 1000, 4095, 4096, 4097, 9000, 20_000];
const SEGMENTS: [u64; 3] = [512, 1024, 4096];

#[derive(Clone, Debug)]
enum Req {
    List,
    Read {
        shnum: ShareNum,
        offset: u64,
        len: u64,
    },
}

#[derive(Clone, Debug)]
enum Resp {
    Shares(Vec<ShareNum>),
    Data(Vec<u8>),
}

/// The servers: share number -> bytes on disk, per server.
struct Grid {
    held: Vec<BTreeMap<ShareNum, Vec<u8>>>,
    /// Copies damaged on disk: (server, share).
    damaged: BTreeSet<(ServerId, ShareNum)>,
    /// Reads a lying server altered.
    lies: u64,
}

impl Servers<Req> for Grid {
    type Resp = Resp;

    fn is_write(&self, _: &Req) -> bool {
        false
    }

    fn serve(&mut self, d: Delivery, req: Req, rng: &mut ChaCha8Rng) -> Result<Resp, String> {
        let held = &self.held[d.server.get()];
        match req {
            Req::List => Ok(Resp::Shares(held.keys().copied().collect())),
            Req::Read { shnum, offset, len } => {
                let share = held
                    .get(&shnum)
                    .ok_or_else(|| format!("no share {shnum}"))?;
                let a = (offset as usize).min(share.len());
                let b = (offset.saturating_add(len) as usize).min(share.len());
                let mut data = share[a..b].to_vec();
                if d.mood == Mood::Lying && !data.is_empty() {
                    let i = rng.gen_range(0..data.len());
                    data[i] ^= 1 << rng.gen_range(0..8);
                    self.lies += 1;
                }
                Ok(Resp::Data(data))
            }
        }
    }
}

/// One download on the simulated network, and what it did.
struct Dl {
    m: DownloadMachine<Buf>,
    file: Arc<ChkFile>,
    range: Range<u64>,
    /// What each request asked: (server, share; `None` for a listing).
    sent: BTreeMap<RequestId, (ServerId, Option<ShareNum>)>,
    reads: BTreeSet<(ServerId, ShareNum, u64, u64)>,
    list_failed: BTreeSet<ServerId>,
    /// Shares reported corrupt or failing: (server, share).
    given_up: BTreeSet<(ServerId, ShareNum)>,
    corrupt_reports: Vec<(ServerId, Option<ShareNum>, String)>,
    /// Shares reported stalling (the machine may try them again, as a last resort).
    stalled: BTreeSet<(ServerId, ShareNum)>,
    reports: u64,
    output: Vec<u8>,
    result: Option<Result<(), DownloadError>>,
    violations: Vec<String>,
    /// Every action and answer, when replaying one seed (`SIM_SEED`).
    journal: Option<Vec<String>>,
    /// The machine's `Finish` came.
    done: bool,
}

impl Wiring for Dl {
    type M = DownloadMachine<Buf>;
    type Req = Req;
    type Resp = Resp;
    const NAME: &'static str = "download";

    fn machine(&mut self) -> &mut Self::M {
        &mut self.m
    }

    fn machine_ref(&self) -> &Self::M {
        &self.m
    }

    fn outs(&mut self, actions: Vec<Action<Buf>>, local: &mut Vec<Event<Buf>>) -> Vec<Out<Req>> {
        let mut outs = Vec::new();
        for a in actions {
            if let Some(j) = &mut self.journal {
                if !matches!(a, Action::Output(_)) {
                    j.push(format!("{a:?}").chars().take(160).collect());
                }
            }
            if self.result.is_some() {
                self.violations
                    .push(format!("action after Finished: {a:?}"));
            }
            match a {
                Action::Send {
                    id,
                    server,
                    request: Request::ListShares,
                } => {
                    if self.list_failed.contains(&server) {
                        self.violations.push(format!(
                            "listing sent again to server {} after it failed",
                            server.0
                        ));
                    }
                    self.sent.insert(id, (server, None));
                    outs.push(Out {
                        id,
                        server,
                        req: Req::List,
                    });
                }
                Action::Send {
                    id,
                    server,
                    request:
                        Request::Read {
                            shnum, offset, len, ..
                        },
                } => {
                    if self.list_failed.contains(&server) {
                        self.violations.push(format!(
                            "read of share {shnum} sent to server {}, whose listing failed",
                            server.0
                        ));
                    }
                    if self.given_up.contains(&(server, shnum)) {
                        self.violations.push(format!(
                            "read of share {shnum} sent to server {} after it was \
                             reported bad",
                            server.0
                        ));
                    }
                    if !self.reads.insert((server, shnum, offset, len))
                        && !self.stalled.contains(&(server, shnum))
                    {
                        self.violations.push(format!(
                            "read of share {shnum} at {offset}+{len} sent to server {} twice",
                            server.0
                        ));
                    }
                    self.sent.insert(id, (server, Some(shnum)));
                    outs.push(Out {
                        id,
                        server,
                        req: Req::Read { shnum, offset, len },
                    });
                }
                Action::Cancel { .. } => {}
                Action::Work(job) => local.push(Event::Worked(job.run())),
                Action::Output(Chunk { offset, data }) => {
                    // Invariant 1: in order, and exactly the file's bytes.
                    let at = self.range.start + self.output.len() as u64;
                    let end = offset as usize + data.len();
                    if offset != at
                        || end > self.range.end as usize
                        || data[..] != self.file.plaintext[offset as usize..end]
                    {
                        self.violations.push(format!(
                            "invariant 1: output of {} bytes at {offset} (expected at {at}, \
                             range {:?}) is not the file's bytes",
                            data.len(),
                            self.range
                        ));
                    }
                    self.output.extend_from_slice(&data);
                }
                Action::Report(p) => {
                    self.reports += 1;
                    let server = p.server;
                    let shnum = p.shnum;
                    if let (ProblemKind::Corrupt | ProblemKind::Failed(_), Some(sh)) =
                        (p.kind, shnum)
                    {
                        self.given_up.insert((server, sh));
                    }
                    if let (ProblemKind::Stall, Some(sh)) = (p.kind, shnum) {
                        self.stalled.insert((server, sh));
                    }
                    if p.kind == ProblemKind::Corrupt {
                        self.corrupt_reports.push((server, shnum, p.reason));
                    }
                }
                Action::Finish(r) => {
                    self.done = true;
                    if self.result.is_some() {
                        self.violations.push("Finished twice".into());
                    }
                    self.result = Some(r);
                }
            }
        }
        outs
    }

    fn event(&mut self, id: RequestId, reply: Result<Resp, String>) -> Event<Buf> {
        if let Some(j) = &mut self.journal {
            let what = match &reply {
                Ok(Resp::Shares(s)) => {
                    format!("listed {:?}", s.iter().map(|n| n.0).collect::<Vec<_>>())
                }
                Ok(Resp::Data(d)) => format!("{} bytes", d.len()),
                Err(e) => e.clone(),
            };
            j.push(format!("answer to {id}: {what}"));
        }
        match reply {
            Ok(Resp::Shares(shares)) => Event::Answer {
                id,
                response: Response::Listed(shares),
            },
            Ok(Resp::Data(data)) => Event::Answer {
                id,
                response: Response::Read(Arc::from(data)),
            },
            Err(reason) => {
                if let Some((server, None)) = self.sent.get(&id) {
                    self.list_failed.insert(*server);
                }
                let fault = if reason.starts_with("no share") {
                    Fault::Refused
                } else if reason == "remote error" {
                    Fault::Server
                } else {
                    Fault::Network
                };
                Event::Failed {
                    id,
                    failure: Failure::new(fault, reason),
                }
            }
        }
    }

    fn done(&self) -> bool {
        self.done
    }
}

#[derive(Clone, Debug, Default)]
struct Stats {
    schedules: u64,
    downloads: u64,
    ok: u64,
    ok_ranged: u64,
    not_enough_shares: u64,
    /// Downloads where invariant 2's liveness applied (and so had to succeed).
    liveness_checks: u64,
    /// Succeeded with fewer than `k` shares known good (damaged copies or faults that
    /// happened not to matter).
    ok_beyond_liveness: u64,
    damaged_copies: u64,
    corrupt_reports: u64,
    lies: u64,
    reports: u64,
    switches: u64,
    fates: BTreeMap<&'static str, u64>,
}

impl Tally for Stats {
    fn add(&mut self, o: &Stats) {
        self.schedules += o.schedules;
        self.downloads += o.downloads;
        self.ok += o.ok;
        self.ok_ranged += o.ok_ranged;
        self.not_enough_shares += o.not_enough_shares;
        self.liveness_checks += o.liveness_checks;
        self.ok_beyond_liveness += o.ok_beyond_liveness;
        self.damaged_copies += o.damaged_copies;
        self.corrupt_reports += o.corrupt_reports;
        self.lies += o.lies;
        self.reports += o.reports;
        self.switches += o.switches;
        for (k, v) in &o.fates {
            *self.fates.entry(k).or_default() += v;
        }
    }

    fn coverage(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("successful downloads", self.ok),
            ("successful ranged downloads", self.ok_ranged),
            ("downloads short of shares", self.not_enough_shares),
            ("liveness checks", self.liveness_checks),
            ("damaged copies", self.damaged_copies),
            ("corrupt reports", self.corrupt_reports),
            ("lies", self.lies),
            ("switches", self.switches),
            ("duplicate answers", self.fates["answered twice"]),
            ("late answers", self.fates["answered after the timeout"]),
            ("stalls", self.fates["stalled"]),
            ("lost requests", self.fates["lost before the server"]),
        ]
    }
}

struct Sim {
    net: Net<Req, Resp>,
    grid: Grid,
    file: Arc<ChkFile>,
    order: Vec<ServerId>,
    cfg: DownloadConfig,
    stats: Stats,
    log: Vec<String>,
}

impl Schedule for Sim {
    type Stats = Stats;

    fn run(&mut self) -> Result<(), String> {
        for _ in 0..self.net.rng.gen_range(1..=3) {
            self.download()?;
        }
        Ok(())
    }

    fn trace(&self) -> &[String] {
        &self.log
    }

    fn stats(mut self) -> Stats {
        self.stats.fates = self.net.fates.clone();
        self.stats.lies = self.grid.lies;
        self.stats
    }
}

impl Sim {
    fn new(seed: u64, faults: bool) -> Sim {
        let mut rng = sim::rng(seed);
        let (k, n) = GEOMETRIES[rng.gen_range(0..GEOMETRIES.len())];
        let shape = Shape {
            len: LENGTHS[rng.gen_range(0..LENGTHS.len())],
            k,
            n,
            segment_size: SEGMENTS[rng.gen_range(0..SEGMENTS.len())],
            layout: if rng.gen_bool(0.5) {
                LayoutVersion::V1
            } else {
                LayoutVersion::V2
            },
        };
        let file = chk_file(shape);
        let count = if faults {
            rng.gen_range(n.saturating_sub(2).max(1)..=n + 4)
        } else {
            rng.gen_range(n..=n + 3)
        } as usize;
        let damage_rate = if faults {
            [0.0, 0.05, 0.2][rng.gen_range(0..3)]
        } else {
            0.0
        };
        let mut held: Vec<BTreeMap<ShareNum, Vec<u8>>> = vec![BTreeMap::new(); count];
        let mut damaged = BTreeSet::new();
        let mut placement = Vec::new();
        for (sh, bytes) in file.shares.iter().enumerate() {
            let sh = ShareNum::try_from(sh).expect("at most 256 shares");
            let copies = match rng.gen_range(0..10) {
                0 if faults => 0,
                0..=6 => 1,
                _ => 2,
            };
            for _ in 0..copies {
                let server = rng.gen_range(0..count);
                let mut b = bytes.clone();
                if rng.gen_bool(damage_rate) {
                    let len = b.len();
                    let at = match rng.gen_range(0..4) {
                        0 => rng.gen_range(0..len.min(0x44)),
                        1 => rng.gen_range(len - len / 4..len),
                        _ => rng.gen_range(0..len),
                    };
                    b[at] ^= 1 << rng.gen_range(0..8);
                    damaged.insert((sid(server), sh));
                } else if damaged.contains(&(sid(server), sh)) {
                    // A second copy on the same server replaces the damaged one.
                    damaged.remove(&(sid(server), sh));
                }
                held[server].insert(sh, b);
                placement.push((server, sh));
            }
        }
        let fault_rate = if faults {
            [0.0, 0.1, 0.3, 0.5][rng.gen_range(0..4)]
        } else {
            0.0
        };
        let cfg = DownloadConfig {
            read_batch_bytes: [1024, 4096, 65536][rng.gen_range(0..3)],
            ..DownloadConfig::default()
        };
        let log = vec![format!(
            "{shape:?} on {count} servers: {placement:?}, damaged {damaged:?}, fault rate \
             {fault_rate}, read batch {}",
            cfg.read_batch_bytes
        )];
        let faults = if faults {
            let mut f = Faults::with_rate(fault_rate);
            f.moods.push(Mood::Lying);
            // The machine keeps waiting for a share listing past its stall timeout (as
            // Tahoe's ShareFinder does); the driver's transport is what ends it.
            f.transport_timeout = Some(120_000);
            f
        } else {
            Faults::none()
        };
        let order: Vec<ServerId> = (0..count).map(sid).collect();
        let net = Net::new(rng, order.iter().copied(), faults);
        Sim {
            net,
            grid: Grid {
                held,
                damaged: damaged.clone(),
                lies: 0,
            },
            file,
            order,
            cfg,
            stats: Stats {
                schedules: 1,
                damaged_copies: damaged.len() as u64,
                ..Stats::default()
            },
            log,
        }
    }

    fn download(&mut self) -> Result<(), String> {
        let size = self.file.plaintext.len() as u64;
        let range = if self.net.rng.gen_bool(0.5) {
            0..size
        } else {
            let a = self.net.rng.gen_range(0..size);
            a..self.net.rng.gen_range(a + 1..=size)
        };
        self.net.roll_moods(&self.order);
        let infos = self
            .order
            .iter()
            .map(|s| ServerInfo::new(format!("{}", s.0)))
            .collect();
        let m = DownloadMachine::new(&self.file.cap, infos, range.clone(), self.cfg.clone())
            .map_err(|e| format!("download setup: {e}"))?;
        let mut dl = Dl {
            m,
            file: self.file.clone(),
            range: range.clone(),
            sent: BTreeMap::new(),
            reads: BTreeSet::new(),
            list_failed: BTreeSet::new(),
            given_up: BTreeSet::new(),
            corrupt_reports: Vec::new(),
            stalled: BTreeSet::new(),
            reports: 0,
            output: Vec::new(),
            result: None,
            violations: Vec::new(),
            journal: sim::env_u64("SIM_SEED").map(|_| Vec::new()),
            done: false,
        };
        let start = self.net.now;
        let ran = self.net.run_op(&mut self.grid, &mut dl);
        self.stats.downloads += 1;
        // Distinct shares intact on servers that answered everything on time.
        let good: BTreeSet<ShareNum> = self
            .grid
            .held
            .iter()
            .enumerate()
            .filter(|(s, _)| matches!(self.net.moods[&sid(*s)], Mood::Healthy | Mood::Slow))
            .flat_map(|(s, shares)| shares.keys().map(move |sh| (sid(s), *sh)))
            .filter(|c| !self.grid.damaged.contains(c))
            .map(|(_, sh)| sh)
            .collect();
        self.log.push(format!(
            "t={start}..{} op {} download {range:?} [{}]: good shares {good:?}, {}; corrupt \
             reports {:?}",
            self.net.now,
            self.net.op,
            self.net.moods_note(),
            match &dl.result {
                None => "no result".to_string(),
                Some(Ok(())) => format!("ok, {} bytes", dl.output.len()),
                Some(Err(e)) => e.to_string(),
            },
            dl.corrupt_reports,
        ));
        self.log.extend(dl.journal.take().unwrap_or_default());
        ran?;
        if let Some(v) = dl.violations.first() {
            return Err(v.clone());
        }
        self.stats.reports += dl.reports;
        self.stats.switches += u64::from(dl.m.stats().switches);
        // Invariant 3: corruption is reported against the right server and share.
        for (server, sh, reason) in &dl.corrupt_reports {
            self.stats.corrupt_reports += 1;
            let lying = self.net.moods[server] == Mood::Lying;
            let damaged = match sh {
                Some(sh) => self.grid.damaged.contains(&(*server, *sh)),
                None => self.grid.damaged.iter().any(|(s, _)| s == server),
            };
            if !lying && !damaged {
                return Err(format!(
                    "invariant 3: server {} reported corrupt for share {sh:?} ({reason}), \
                     but it holds an intact copy and does not lie",
                    server.0
                ));
            }
        }
        let result = dl.result.ok_or("the machine is done without a result")?;
        let k = usize::from(self.file.shape.k);
        if good.len() >= k {
            self.stats.liveness_checks += 1;
        }
        match result {
            Ok(()) => {
                if dl.output[..] != self.file.plaintext[range.start as usize..range.end as usize] {
                    return Err(format!(
                        "invariant 2: download of {range:?} succeeded with {} bytes that are not \
                         the file's",
                        dl.output.len()
                    ));
                }
                self.stats.ok += 1;
                if range != (0..self.file.plaintext.len() as u64) {
                    self.stats.ok_ranged += 1;
                }
                if good.len() < k {
                    self.stats.ok_beyond_liveness += 1;
                }
            }
            Err(e @ DownloadError::NotEnoughShares { .. }) => {
                if good.len() >= k {
                    return Err(format!(
                        "invariant 2 (liveness): shares {good:?} were intact on servers that \
                         answered, but the download failed: {e}"
                    ));
                }
                self.stats.not_enough_shares += 1;
            }
            Err(e) => return Err(format!("invariant 2: unclear failure: {e}")),
        }
        Ok(())
    }
}

fn replay(test: &str) -> Replay<'_> {
    Replay {
        target: "chk_download_simulation",
        test,
    }
}

#[test]
fn random_fault_schedules() {
    sim::random_fault_schedules(DEFAULT_SCHEDULES, replay("random_fault_schedules"), |s| {
        Sim::new(s, true)
    });
}

/// Without faults every download succeeds (so the invariants above are not vacuous).
#[test]
fn no_faults_every_download_succeeds() {
    let stats = sim::run_many(
        sim::seeds(200).0,
        replay("no_faults_every_download_succeeds"),
        |s| Sim::new(s, false),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.ok, stats.downloads, "{stats:#?}");
    assert_eq!(stats.reports, 0, "{stats:#?}");
    assert_eq!(stats.liveness_checks, stats.downloads);
}

/// Regression (seeds 2802 and 26313, found by this simulation). Seed 2802: a 1-of-1 file
/// whose only share has a damaged crypttext hash tree node, on healthy servers; the ranged
/// download refuses the share as corrupt (reported against the right server). Seed 26313:
/// the only share's crypttext hash read stalls, is tried again, and the retry fails. Either
/// way the machine was then left with no candidate, nothing in flight and no deadline, and
/// never finished; it now ends with `NotEnoughShares`.
#[test]
fn seeds_2802_26313_download_finishes_after_the_last_share_fails() {
    for seed in [2802, 26313] {
        sim::run_schedule(
            seed,
            replay("seeds_2802_26313_download_finishes_after_the_last_share_fails"),
            |s| Sim::new(s, true),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

//! Publish: placing a new version of a mutable file (Tahoe-LAFS 1.20
//! `mutable/publish.py::Publish`; compat map §4.5-4.6).
//!
//! # Participants and goal
//!
//! The caller has a [`ServerMap`] from a [`Mode::Write`] (or [`Mode::Check`]) update, the
//! connected servers in permuted order, and the new version's N shares, encoded and signed
//! ([`crate::mutable::encode`]; its header has sequence number
//! `servermap.highest_seqnum() + 1`). [`PublishMachine`] decides which share goes to which
//! server and judges the answers. Goal: every share on some server and the new version on
//! at least `happy` servers (servers-of-happiness), or an error saying why not.
//!
//! ```
//! use cairn_core::client::mutable::publish::{
//!     Action, Event, PublishConfig, PublishMachine, Written,
//! };
//! use cairn_core::client::mutable::servermap::{Mode, ServerMap};
//! use cairn_core::ids::ServerIndex;
//! use cairn_core::mutable::{MutableFormat, ShareHeader};
//!
//! // A new file (empty servermap), 2-of-4, happy 3, on four servers.
//! let header = ShareHeader {
//!     format: MutableFormat::Mdmf, seqnum: 1, root_hash: [7; 32], iv: None,
//!     k: 2, n: 4, segment_size: 0, data_length: 0,
//! };
//! let map = ServerMap::new(Mode::Write);
//! let servers = [10, 11, 12, 13].map(ServerIndex);
//! let mut m = PublishMachine::new(PublishConfig::new(3), &map, &servers, &header).unwrap();
//! let mut actions = m.start(0);
//! let mut now = 0;
//! while let Some(action) = actions.pop() {
//!     now += 1;
//!     match action {
//!         // Send one test-and-write: each share's test vector, (0, share bytes), and
//!         // publish::read_vector(); report what the server said.
//!         Action::Send { id, .. } => {
//!             let response = Written { wrote: true, current: Default::default() };
//!             actions.extend(m.handle(Event::Answer { id, response }, now).unwrap());
//!         }
//!         Action::Finish(result) => assert_eq!(result.unwrap().happiness, 4),
//!         _ => {}
//!     }
//! }
//! assert!(m.is_done());
//! ```
//!
//! # Requests
//!
//! [`Write`] is one test-and-write request (`slot_testv_and_readv_and_writev`) to
//! one server for all the shares it gets. For each share the driver sends the test vector
//! [`WriteTest::test_vector`], the write vector `(0, share bytes)`, and for the request the
//! read vector `(0, READ_LEN)`. The answer [`Written`] carries `wrote` (the tests
//! passed) and the bytes read from every share the server held before the write.
//!
//! # Placement (Tahoe's `update_goal`)
//!
//! 1. Every (server, share) the servermap saw, of any version, and every bad share, gets the
//!    new share in place, testing for the old checkstring the servermap recorded.
//! 2. Shares with no home go to the servers with the fewest shares so far, in permuted
//!    order, testing that the share does not exist yet.
//! 3. If a server fails, its shares that have no other live copy go elsewhere the same way;
//!    if happiness of what is placed or in flight drops below `happy`, extra copies go to
//!    servers that hold nothing yet.
//!
//! A write is sent at most once per (server, share); a server whose request failed gets
//! nothing more. With a fresh servermap and healthy servers that is one request per server.
//!
//! # Collisions versus failures
//!
//! A server that errs, disconnects or does not answer within
//! [`PublishConfig::write_timeout`] has *failed*: its shares are placed elsewhere, and that
//! is never an uncoordinated write. A collision ([`PublishError::UncoordinatedWrite`]) is
//! evidence that another writer changed the file: a server reports a share whose
//! checkstring differs from what the servermap recorded for it (its test failed, or the
//! read shows a share the publish did not expect) and which is neither the new version
//! nor, on a server the servermap never heard from, an older version (a stale share the
//! map missed: that server is only skipped). After a collision no further writes are sent;
//! the machine finishes when the outstanding ones are answered. Tahoe raises
//! `UncoordinatedWriteError` for any surprise, including shares on servers it never asked.

use std::collections::{BTreeMap, BTreeSet};

use super::servermap::{Mode, ServerMap, VersionId};
use super::{Inflight, MachineError, Millis, RequestId, SentAt, ServerFailure, ShareNum};
use crate::client::machine::{self, Problem, ProblemKind, ServerIndex};
use crate::mutable::header::seqnum_of;
use crate::mutable::layout::{ShareHeader, SDMF_CHECKSTRING_LEN};
use crate::placement::servers_of_happiness;
use crate::storage::rtw::{ReadVector, TestVector};

/// Bytes read from every share in each write request: the longest checkstring (SDMF).
pub const READ_LEN: u64 = SDMF_CHECKSTRING_LEN as u64;

/// Parameters of one publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishConfig {
    /// `[client] shares.happy`: the new version must be on at least this many servers.
    pub happy: usize,
    /// A write with no answer after this long has failed.
    pub write_timeout: Millis,
}

impl PublishConfig {
    pub fn new(happy: usize) -> PublishConfig {
        PublishConfig {
            happy,
            write_timeout: 30_000,
        }
    }
}

/// The test a share's write carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteTest {
    /// The share must not exist (Tahoe's `(0, 1, b"")`).
    Absent,
    /// The share must start with these bytes: the checkstring the servermap saw.
    Matches(Vec<u8>),
}

impl WriteTest {
    /// The test vector to send.
    pub fn test_vector(&self) -> TestVector {
        match self {
            WriteTest::Absent => TestVector {
                offset: 0,
                size: 1,
                specimen: Vec::new(),
            },
            WriteTest::Matches(cs) => TestVector {
                offset: 0,
                size: cs.len() as u64,
                specimen: cs.clone(),
            },
        }
    }

    /// Would a share whose first bytes are `current` (`None`: no share) pass?
    pub fn passes(&self, current: Option<&[u8]>) -> bool {
        match (self, current) {
            (WriteTest::Absent, None) => true,
            (WriteTest::Absent, Some(c)) => c.is_empty(),
            (WriteTest::Matches(cs), Some(c)) => c.starts_with(cs),
            (WriteTest::Matches(cs), None) => cs.is_empty(),
        }
    }
}

/// The read vector every write request carries.
pub fn read_vector() -> ReadVector {
    ReadVector {
        offset: 0,
        size: READ_LEN,
    }
}

/// One test-and-write request to a server ([`machine::Action::Send`]): for each share, its
/// test and the whole new share at offset 0; plus [`read_vector`]. Answered with
/// [`Written`]; a failed one may or may not have been applied, and the server is not
/// written to again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub shares: BTreeMap<ShareNum, WriteTest>,
}

/// The answer to a [`Write`]: whether the tests passed (and so the writes happened), and
/// the first [`READ_LEN`] bytes of every share the server held before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub wrote: bool,
    pub current: BTreeMap<ShareNum, Vec<u8>>,
}

/// What the driver must do; the publish ends with its result.
pub type Action =
    machine::Action<Write, std::convert::Infallible, Result<PublishOutcome, PublishError>>;

/// What happened; on a tick, writes overdue by [`PublishConfig::write_timeout`] fail
/// (reported as stalls).
pub type Event = machine::Event<Written>;

/// Evidence of another writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collision {
    pub server: ServerIndex,
    pub shnum: ShareNum,
    /// What the servermap recorded there (`None`: no share).
    pub expected: Option<Vec<u8>>,
    /// The first bytes the server reported.
    pub found: Vec<u8>,
    /// The sequence number in `found`, if it parses.
    pub found_seqnum: Option<u64>,
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server {} share {}: ", self.server.0, self.shnum)?;
        match (&self.expected, self.found_seqnum) {
            (Some(e), Some(s)) => write!(
                f,
                "expected seqnum {}, found seqnum {s}",
                seqnum_of(e).map_or("?".into(), |n| n.to_string())
            ),
            (None, Some(s)) => write!(f, "expected no share, found seqnum {s}"),
            (_, None) => write!(f, "found an unreadable checkstring"),
        }
    }
}

/// A successful publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishOutcome {
    pub version: VersionId,
    /// Share -> servers that confirmed the write.
    pub placed: BTreeMap<ShareNum, BTreeSet<ServerIndex>>,
    /// Servers of happiness of `placed`.
    pub happiness: usize,
    /// Write requests sent to each server.
    pub requests_per_server: BTreeMap<ServerIndex, usize>,
    /// Servers that failed (their shares went elsewhere).
    pub failures: Vec<ServerFailure>,
    /// Older shares found on servers the servermap had not heard from: not collisions,
    /// those servers were skipped.
    pub stale_shares: Vec<(ServerIndex, ShareNum)>,
}

/// Why a publish failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Another writer changed the file since the servermap update (Tahoe's
    /// `UncoordinatedWriteError`). Update the servermap (in [`Mode::Check`]) and retry.
    #[error("uncoordinated write: another writer changed the file ({})", list(.collisions))]
    UncoordinatedWrite {
        collisions: Vec<Collision>,
        /// Shares of the new version confirmed before the publish stopped.
        placed: BTreeMap<ShareNum, BTreeSet<ServerIndex>>,
    },
    /// Too few servers left (Tahoe's `NotEnoughServersError`).
    #[error(
        "publish ran out of good servers: the new version is on {happiness} servers, need {happy}{}; tried {tried} servers, {} failed: {}",
        homeless_note(.homeless),
        .failures.iter().map(|f| f.server).collect::<BTreeSet<_>>().len(),
        per_server(.failures)
    )]
    NotEnoughServers {
        tried: usize,
        happiness: usize,
        happy: usize,
        /// Shares no server took.
        homeless: Vec<ShareNum>,
        /// Every failed request, in order (a server may appear more than once).
        failures: Vec<ServerFailure>,
    },
}

/// Bad input to [`PublishMachine::new`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("no storage servers are connected")]
    NoServers,
    #[error("server {} is listed more than once", .0 .0)]
    DuplicateServer(ServerIndex),
    #[error("bad parameters: need 1 <= k <= N and 1 <= happy <= N, got k={k} N={n} happy={happy}")]
    BadParams { k: u8, n: u8, happy: usize },
    #[error("new seqnum {new} is not above the highest seqnum {highest} in the servermap")]
    StaleSeqnum { new: u64, highest: u64 },
    #[error("a publish needs a servermap from a write or check update")]
    WrongMode,
}

impl SentAt for WriteReq {
    fn sent_at(&self) -> Millis {
        self.sent
    }
}

#[derive(Clone, Debug)]
struct WriteReq {
    server: ServerIndex,
    shares: BTreeMap<ShareNum, WriteTest>,
    sent: Millis,
}

/// The publish machine. See the module docs.
#[derive(Debug)]
pub struct PublishMachine {
    cfg: PublishConfig,
    version: VersionId,
    checkstring: Vec<u8>,
    servers: Vec<ServerIndex>,
    map: ServerMap,
    inflight: Inflight<WriteReq>,
    /// Every (server, share) a write was ever sent for.
    sent: BTreeSet<(ServerIndex, ShareNum)>,
    placed: BTreeMap<ShareNum, BTreeSet<ServerIndex>>,
    /// Servers that failed, refused, or hold shares the map missed: never written again.
    bad: BTreeSet<ServerIndex>,
    failures: Vec<ServerFailure>,
    collisions: Vec<Collision>,
    stale: Vec<(ServerIndex, ShareNum)>,
    requests_per_server: BTreeMap<ServerIndex, usize>,
    next_id: RequestId,
    started: bool,
    outcome: Option<Result<PublishOutcome, PublishError>>,
}

impl PublishMachine {
    /// `map`: from a write (or check) update, or [`ServerMap::new`] for a new file;
    /// `servers`: connected servers in permuted order; `new_version`: the header of the
    /// shares to publish.
    pub fn new(
        cfg: PublishConfig,
        map: &ServerMap,
        servers: &[ServerIndex],
        new_version: &ShareHeader,
    ) -> Result<Self, SetupError> {
        let (k, n) = (new_version.k, new_version.n);
        if k == 0 || k > n || cfg.happy == 0 || cfg.happy > usize::from(n) {
            return Err(SetupError::BadParams {
                k,
                n,
                happy: cfg.happy,
            });
        }
        if map.mode() == Mode::Read {
            return Err(SetupError::WrongMode);
        }
        if new_version.seqnum <= map.highest_seqnum() {
            return Err(SetupError::StaleSeqnum {
                new: new_version.seqnum,
                highest: map.highest_seqnum(),
            });
        }
        if servers.is_empty() {
            return Err(SetupError::NoServers);
        }
        let mut seen = BTreeSet::new();
        for s in servers {
            if !seen.insert(*s) {
                return Err(SetupError::DuplicateServer(*s));
            }
        }
        Ok(PublishMachine {
            cfg,
            version: VersionId::from(new_version),
            checkstring: new_version.checkstring(),
            servers: servers.to_vec(),
            map: map.clone(),
            inflight: Inflight::default(),
            sent: BTreeSet::new(),
            placed: BTreeMap::new(),
            bad: BTreeSet::new(),
            failures: Vec::new(),
            collisions: Vec::new(),
            stale: Vec::new(),
            requests_per_server: BTreeMap::new(),
            next_id: 0,
            started: false,
            outcome: None,
        })
    }

    /// The first writes: existing shares in place, the others spread (call once).
    pub fn start(&mut self, now: Millis) -> Vec<Action> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        let connected: BTreeSet<ServerIndex> = self.servers.iter().copied().collect();
        let mut plan: BTreeMap<ServerIndex, BTreeMap<ShareNum, WriteTest>> = BTreeMap::new();
        for ((server, sh), v) in self.map.shares() {
            if connected.contains(server) && sh.0 < self.version.n {
                plan.entry(*server)
                    .or_default()
                    .insert(*sh, WriteTest::Matches(v.checkstring()));
            }
        }
        for ((server, sh), bad) in self.map.bad_shares() {
            if connected.contains(server) && sh.0 < self.version.n && !bad.checkstring.is_empty() {
                plan.entry(*server)
                    .or_default()
                    .entry(*sh)
                    .or_insert_with(|| WriteTest::Matches(bad.checkstring.clone()));
            }
        }
        self.step(plan, now)
    }

    /// Feed one event.
    pub fn handle(&mut self, event: Event, now: Millis) -> Result<Vec<Action>, MachineError> {
        let mut actions = Vec::new();
        match event {
            Event::Tick => {
                for id in self.inflight.overdue(now, self.cfg.write_timeout) {
                    let req = self.inflight.retire(id).expect("listed above");
                    let reason = format!("no answer within {} ms", self.cfg.write_timeout);
                    actions.push(Action::Report(Problem {
                        server: req.server,
                        shnum: None,
                        kind: ProblemKind::Stall,
                        reason: reason.clone(),
                    }));
                    actions.push(Action::Cancel { id });
                    self.server_failed(&req, reason);
                }
            }
            Event::Answer {
                id,
                response: Written { wrote, current },
            } => {
                let Some(req) = self.inflight.take(id)? else {
                    return Ok(actions);
                };
                if wrote {
                    self.on_wrote(&req, &current);
                } else {
                    self.on_refused(&req, &current);
                }
            }
            Event::Failed { id, failure } => {
                let Some(req) = self.inflight.take(id)? else {
                    return Ok(actions);
                };
                actions.push(Action::Report(Problem {
                    server: req.server,
                    shnum: None,
                    kind: ProblemKind::Failed(failure.fault),
                    reason: failure.message.clone(),
                }));
                self.server_failed(&req, failure.message);
            }
            Event::Worked(never) => match never {},
        }
        if self.outcome.is_none() {
            actions.extend(self.step(BTreeMap::new(), now));
        }
        Ok(actions)
    }

    /// Whether [`machine::Action::Finish`] was returned.
    pub fn is_done(&self) -> bool {
        self.outcome.is_some()
    }

    /// `None` while publishing.
    pub fn outcome(&self) -> Option<&Result<PublishOutcome, PublishError>> {
        self.outcome.as_ref()
    }

    /// The version being published.
    pub fn version(&self) -> &VersionId {
        &self.version
    }

    /// Share -> servers that confirmed the write so far.
    pub fn placed(&self) -> &BTreeMap<ShareNum, BTreeSet<ServerIndex>> {
        &self.placed
    }

    /// Write requests sent to each server so far.
    pub fn requests_per_server(&self) -> &BTreeMap<ServerIndex, usize> {
        &self.requests_per_server
    }

    /// Requests sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.inflight.len()
    }

    /// The earliest time at which a [`Event::Tick`] can change anything.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.inflight.next_deadline(self.cfg.write_timeout)
    }

    // ---------------------------------------------------------------------------------

    fn server_failed(&mut self, req: &WriteReq, reason: String) {
        self.bad.insert(req.server);
        self.failures.push(ServerFailure {
            server: req.server,
            shnum: None,
            during: "write",
            reason,
        });
    }

    /// The tests passed: the shares are placed. Other shares the server reported must be
    /// what the servermap saw, ours, or being written by another of our requests.
    fn on_wrote(&mut self, req: &WriteReq, current: &BTreeMap<ShareNum, Vec<u8>>) {
        for sh in req.shares.keys() {
            self.placed.entry(*sh).or_default().insert(req.server);
        }
        for (sh, found) in current {
            if req.shares.contains_key(sh) || self.sent.contains(&(req.server, *sh)) {
                continue;
            }
            self.judge_unexpected(req.server, *sh, found);
        }
    }

    /// The tests failed: nothing was written. Find which share differs and why.
    fn on_refused(&mut self, req: &WriteReq, current: &BTreeMap<ShareNum, Vec<u8>>) {
        let mut mismatched = false;
        let mut stale = Vec::new();
        for (sh, test) in &req.shares {
            let found = current.get(sh).map(Vec::as_slice);
            if test.passes(found) {
                continue;
            }
            mismatched = true;
            let found = found.unwrap_or(&[]);
            if found.starts_with(&self.checkstring) {
                // Our version is already there (a convergent write): as good as placed.
                self.placed.entry(*sh).or_default().insert(req.server);
                continue;
            }
            if let Some(c) = self.classify(req.server, *sh, found) {
                self.collisions.push(c);
            } else {
                stale.push(*sh);
            }
        }
        self.bad.insert(req.server);
        let reason = if !mismatched {
            "refused the write although its tests match".to_string()
        } else if !stale.is_empty() {
            let stale: Vec<u8> = stale.iter().map(|sh| sh.0).collect();
            format!("holds older shares {stale:?} the servermap did not see")
        } else {
            "another writer changed its shares".to_string()
        };
        for sh in &stale {
            self.stale.push((req.server, *sh));
        }
        self.failures.push(ServerFailure {
            server: req.server,
            shnum: None,
            during: "write",
            reason,
        });
    }

    /// A share we did not write and did not expect to change.
    fn judge_unexpected(&mut self, server: ServerIndex, sh: ShareNum, found: &[u8]) {
        if found.starts_with(&self.checkstring) {
            return;
        }
        let recorded = self.recorded(server, sh);
        if recorded.as_ref().is_some_and(|cs| found.starts_with(cs)) {
            return;
        }
        if let Some(c) = self.classify(server, sh, found) {
            self.collisions.push(c);
        } else {
            self.stale.push((server, sh));
        }
    }

    /// What the servermap saw for (server, share).
    fn recorded(&self, server: ServerIndex, sh: ShareNum) -> Option<Vec<u8>> {
        if let Some(v) = self.map.version_on(server, sh) {
            return Some(v.checkstring());
        }
        self.map
            .bad_shares()
            .get(&(server, sh))
            .map(|b| b.checkstring.clone())
    }

    /// A share differs from what the servermap recorded. A collision if the server was
    /// heard from by the servermap (someone wrote since), or if the share is at least as
    /// new as ours; `None` for an older share on a server the map never heard from.
    fn classify(&self, server: ServerIndex, sh: ShareNum, found: &[u8]) -> Option<Collision> {
        let found_seqnum = seqnum_of(found);
        let newer = found_seqnum.is_none_or(|s| s >= self.version.seqnum);
        if !self.map.is_reachable(server) && !newer {
            return None;
        }
        Some(Collision {
            server,
            shnum: sh,
            expected: self.recorded(server, sh),
            found: found.to_vec(),
            found_seqnum,
        })
    }

    /// (server, share) pairs placed or in flight.
    fn live(&self) -> BTreeMap<ShareNum, BTreeSet<ServerIndex>> {
        let mut m = self.placed.clone();
        for r in self.inflight.values() {
            for sh in r.shares.keys() {
                m.entry(*sh).or_default().insert(r.server);
            }
        }
        m
    }

    fn usable(&self, server: ServerIndex) -> bool {
        !self.bad.contains(&server)
    }

    /// Send `plan` plus homes for homeless shares and extra copies for happiness; finish
    /// when nothing is left in flight.
    fn step(
        &mut self,
        mut plan: BTreeMap<ServerIndex, BTreeMap<ShareNum, WriteTest>>,
        now: Millis,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.collisions.is_empty() {
            plan.retain(|s, _| !self.bad.contains(s));
            self.place_homeless(&mut plan);
            self.top_up_happiness(&mut plan);
            for (server, shares) in plan {
                let shares: BTreeMap<ShareNum, WriteTest> = shares
                    .into_iter()
                    .filter(|(sh, _)| self.sent.insert((server, *sh)))
                    .collect();
                if shares.is_empty() {
                    continue;
                }
                let id = self.next_id;
                self.next_id += 1;
                *self.requests_per_server.entry(server).or_default() += 1;
                self.inflight.insert(
                    id,
                    WriteReq {
                        server,
                        shares: shares.clone(),
                        sent: now,
                    },
                );
                actions.push(Action::Send {
                    id,
                    server,
                    request: Write { shares },
                });
            }
        }
        if self.inflight.is_empty() {
            let result = self.conclude();
            self.outcome = Some(result.clone());
            actions.push(Action::Finish(result));
        }
        actions
    }

    fn planned_live(
        &self,
        plan: &BTreeMap<ServerIndex, BTreeMap<ShareNum, WriteTest>>,
    ) -> BTreeMap<ShareNum, BTreeSet<ServerIndex>> {
        let mut m = self.live();
        for (server, shares) in plan {
            for sh in shares.keys() {
                m.entry(*sh).or_default().insert(*server);
            }
        }
        m
    }

    fn test_for(&self, server: ServerIndex, sh: ShareNum) -> WriteTest {
        match self.recorded(server, sh) {
            Some(cs) if !cs.is_empty() => WriteTest::Matches(cs),
            _ => WriteTest::Absent,
        }
    }

    /// Tahoe's `update_goal`: shares with no live copy go to usable servers with the
    /// fewest shares, then in permuted order; never a (server, share) already sent.
    fn place_homeless(&self, plan: &mut BTreeMap<ServerIndex, BTreeMap<ShareNum, WriteTest>>) {
        let live = self.planned_live(plan);
        let mut load: BTreeMap<ServerIndex, usize> = BTreeMap::new();
        for servers in live.values() {
            for s in servers {
                *load.entry(*s).or_default() += 1;
            }
        }
        // Among equally loaded servers, one that is not still awaiting an answer: a
        // server that is down may not have been reported yet.
        let awaiting: BTreeSet<ServerIndex> = self.inflight.values().map(|r| r.server).collect();
        for sh in ShareNum::below(self.version.n.into()) {
            if live.get(&sh).is_some_and(|s| !s.is_empty()) {
                continue;
            }
            let choice = self
                .servers
                .iter()
                .enumerate()
                .filter(|(_, s)| self.usable(**s) && !self.sent.contains(&(**s, sh)))
                .min_by_key(|(i, s)| {
                    (
                        load.get(*s).copied().unwrap_or(0),
                        awaiting.contains(*s),
                        *i,
                    )
                })
                .map(|(_, s)| *s);
            if let Some(server) = choice {
                *load.entry(server).or_default() += 1;
                let test = self.test_for(server, sh);
                plan.entry(server).or_default().insert(sh, test);
            }
        }
    }

    /// If what is placed or in flight cannot reach `happy`, copy shares to usable servers
    /// that hold nothing of the new version yet, where a copy raises happiness.
    fn top_up_happiness(&self, plan: &mut BTreeMap<ServerIndex, BTreeMap<ShareNum, WriteTest>>) {
        let mut live = self.planned_live(plan);
        let mut happiness = servers_of_happiness(&live);
        if happiness >= self.cfg.happy {
            return;
        }
        let holding: BTreeSet<ServerIndex> = live.values().flatten().copied().collect();
        for &server in &self.servers {
            if happiness >= self.cfg.happy {
                break;
            }
            if !self.usable(server) || holding.contains(&server) {
                continue;
            }
            for sh in ShareNum::below(self.version.n.into()) {
                if self.sent.contains(&(server, sh)) {
                    continue;
                }
                live.entry(sh).or_default().insert(server);
                let h = servers_of_happiness(&live);
                if h > happiness {
                    happiness = h;
                    let test = self.test_for(server, sh);
                    plan.entry(server).or_default().insert(sh, test);
                    break;
                }
                if let Some(s) = live.get_mut(&sh) {
                    s.remove(&server);
                }
            }
        }
    }

    fn conclude(&self) -> Result<PublishOutcome, PublishError> {
        if !self.collisions.is_empty() {
            return Err(PublishError::UncoordinatedWrite {
                collisions: self.collisions.clone(),
                placed: self.placed.clone(),
            });
        }
        let happiness = servers_of_happiness(&self.placed);
        let homeless: Vec<ShareNum> = ShareNum::below(self.version.n.into())
            .filter(|sh| self.placed.get(sh).is_none_or(|s| s.is_empty()))
            .collect();
        if homeless.is_empty() && happiness >= self.cfg.happy {
            return Ok(PublishOutcome {
                version: self.version.clone(),
                placed: self.placed.clone(),
                happiness,
                requests_per_server: self.requests_per_server.clone(),
                failures: self.failures.clone(),
                stale_shares: self.stale.clone(),
            });
        }
        Err(PublishError::NotEnoughServers {
            tried: self.requests_per_server.len(),
            happiness,
            happy: self.cfg.happy,
            homeless,
            failures: self.failures.clone(),
        })
    }
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Failures grouped by server, in order of first failure, each reason once.
fn per_server(failures: &[ServerFailure]) -> String {
    let mut order: Vec<ServerIndex> = Vec::new();
    let mut reasons: BTreeMap<ServerIndex, Vec<&str>> = BTreeMap::new();
    for f in failures {
        let r = reasons.entry(f.server).or_default();
        if r.is_empty() {
            order.push(f.server);
        }
        if !r.contains(&f.reason.as_str()) {
            r.push(&f.reason);
        }
    }
    if order.is_empty() {
        return "none".into();
    }
    order
        .iter()
        .map(|s| format!("server {}: {}", s.0, reasons[s].join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn homeless_note(homeless: &[ShareNum]) -> String {
    if homeless.is_empty() {
        String::new()
    } else {
        let homeless: Vec<u8> = homeless.iter().map(|sh| sh.0).collect();
        format!(" and shares {homeless:?} found no server")
    }
}

impl machine::Machine for PublishMachine {
    type Request = Write;
    type Response = Written;
    type Output = std::convert::Infallible;
    type Outcome = Result<PublishOutcome, PublishError>;
    type Job = std::convert::Infallible;
    type Error = MachineError;

    fn start(&mut self, now: Millis) -> Vec<Action> {
        PublishMachine::start(self, now)
    }
    fn handle(&mut self, event: Event, now: Millis) -> Result<Vec<Action>, MachineError> {
        PublishMachine::handle(self, event, now)
    }
    fn next_deadline(&self) -> Option<Millis> {
        PublishMachine::next_deadline(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_test_is_tahoes_empty_specimen() {
        let t = WriteTest::Absent.test_vector();
        assert_eq!((t.offset, t.size, t.specimen.len()), (0, 1, 0));
        assert!(WriteTest::Absent.passes(None));
        assert!(!WriteTest::Absent.passes(Some(b"x")));
        assert!(WriteTest::Matches(b"ab".to_vec()).passes(Some(b"abc")));
        assert!(!WriteTest::Matches(b"ab".to_vec()).passes(None));
    }

    #[test]
    fn messages_print_bare_numbers() {
        // As when the machines held raw integers (not `ServerIndex`'s `#3`, `ShareNum`'s
        // Debug `sh1`).
        assert_eq!(
            SetupError::DuplicateServer(ServerIndex(3)).to_string(),
            "server 3 is listed more than once"
        );
        assert_eq!(
            super::super::servermap::SetupError::DuplicateServer(ServerIndex(3)).to_string(),
            "server 3 is listed more than once"
        );
        let c = Collision {
            server: ServerIndex(3),
            shnum: ShareNum(1),
            expected: None,
            found: Vec::new(),
            found_seqnum: None,
        };
        assert_eq!(
            c.to_string(),
            "server 3 share 1: found an unreadable checkstring"
        );
        let failure = ServerFailure {
            server: ServerIndex(4),
            shnum: None,
            during: "write",
            reason: "gone".into(),
        };
        assert_eq!(per_server(&[failure]), "server 4: gone");
        assert_eq!(
            homeless_note(&[ShareNum(0), ShareNum(2)]),
            " and shares [0, 2] found no server"
        );
    }

    #[test]
    fn seqnum_parses_only_known_versions() {
        let mut cs = vec![0u8; 41];
        cs[8] = 5;
        assert_eq!(seqnum_of(&cs), Some(5));
        cs[0] = 9;
        assert_eq!(seqnum_of(&cs), None);
        assert_eq!(seqnum_of(&[1, 2]), None);
    }
}

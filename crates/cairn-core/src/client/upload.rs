//! Server selection for a CHK upload, and losing servers while the shares are written, as
//! an explicit state machine (Tahoe-LAFS 1.20 `immutable/upload.py`:
//! `Tahoe2ServerSelector.get_shareholders`, `PeerSelector`; `immutable/encode.py`:
//! `Encoder._remove_shareholder`). Compat map §3.6.
//!
//! # Participants and goal
//!
//! The driver (cairn-client) knows the servers, their order for this storage index and
//! whether each can take a share of this size; it sends requests and reports answers. The
//! machine decides which requests to send and, in the end, which shares go where. Goal: a
//! placement whose servers-of-happiness is at least `happy`, chosen exactly as Tahoe chooses
//! it, or an error that says why not.
//!
//! ```
//! use std::collections::BTreeSet;
//! use cairn_core::client::upload::{
//!     Action, Candidate, Event, SelectionParams, UploadMachine, UploadRequest, UploadResponse,
//! };
//! use cairn_core::ids::ServerIndex;
//!
//! let cands: Vec<Candidate> =
//!     (0..4).map(|i| Candidate { server: ServerIndex(i), writable: true }).collect();
//! let params = SelectionParams { needed: 2, happy: 4, total: 4, request_timeout: 15_000 };
//! let mut m = UploadMachine::new(&cands, params).unwrap();
//! let mut actions = m.start(0);                     // ListShares to every candidate
//! let mut placement = None;
//! while let Some(a) = actions.pop() {
//!     let (id, response) = match a {
//!         Action::Send { id, request: UploadRequest::ListShares, .. } => {
//!             (id, UploadResponse::Listed { shares: BTreeSet::new() })
//!         }
//!         Action::Send { id, request: UploadRequest::Allocate { shares }, .. } => {
//!             (id, UploadResponse::Allocated { already_have: BTreeSet::new(), allocated: shares })
//!         }
//!         Action::Finish(outcome) => {
//!             placement = Some(outcome.unwrap());
//!             continue;
//!         }
//!         _ => continue,
//!     };
//!     actions.extend(m.handle(Event::Answer { id, response }, 1).unwrap());
//! }
//! let placement = placement.unwrap();
//! assert_eq!(placement.happiness, 4);
//! assert_eq!(placement.writes.values().map(|s| s.len()).sum::<usize>(), 4);
//! ```
//!
//! # How it runs (Tahoe's steps)
//!
//! 1. Candidates are the first `2N` servers in permuted order (the driver passes only
//!    connected ones, as `get_servers_for_psi` does). A server is *writable* if its
//!    `maximum-immutable-share-size` is at least the share's allocated size; the others are
//!    read-only and are only asked what they hold.
//! 2. Every candidate is asked which shares it holds ([`UploadRequest::ListShares`]). A
//!    server that fails to answer (an error, or no answer within
//!    [`SelectionParams::request_timeout`]: the machine reports the stall and fails the
//!    request itself on a tick) is *bad* and takes no further part (`mark_bad_peer`).
//! 3. Rounds: compute [`crate::placement::share_placement`] from what is known, ask each
//!    server to allocate the shares placed on it ([`UploadRequest::Allocate`]), wait for every
//!    answer. A server that fails or accepts none of the shares asked becomes read-only.
//!    Repeat while happiness < `happy`, some writable server is left, and the last round
//!    both changed the happiness and saw a new failure.
//! 4. The result is the buckets allocated ([`Placement::writes`]) and the shares the servers
//!    already hold ([`Placement::present`], never sent again), with happiness =
//!    servers-of-happiness of both together (`merge_servers`). Below `happy` the upload fails
//!    with [`UploadUnhappy`] and every allocated bucket is aborted.
//! 5. While writing, [`UploadMachine::server_lost`] drops a failed server's shares; the
//!    upload continues while happiness is still at least `happy`.
//!
//! The first round is Tahoe's exactly, so with healthy servers every share lands where
//! Tahoe would put it. Where Tahoe re-sends requests or can trip over itself after
//! failures, cairn differs deliberately:
//! * no request is sent twice: a writable server is only asked for shares it was never
//!   asked for, a read-only server once (and again only for shares it was not asked for;
//!   Tahoe re-asks read-only servers every round, to renew leases that the first request
//!   already renewed), and bad servers are never asked again (Tahoe sends them empty
//!   allocations, which costs another timeout for a server that stalls);
//! * from the second round on, the buckets this upload already holds count as existing
//!   shares for the placement, so a re-plan keeps them where they are (Tahoe's re-plan may
//!   move a share that is already allocated, and then asserts in `set_shareholders`);
//! * a server lost while writing loses all its shares for the happiness count, the ones it
//!   held before the upload too (Tahoe drops only the share whose write failed).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use crate::client::machine::ServerFailure;
use crate::client::machine::{self, Problem, ProblemKind, ServerIndex};
pub use crate::client::machine::{Millis, RequestId};
pub use crate::ids::ShareNum;
use crate::placement::{failure_message, servers_of_happiness, share_placement, UnhappinessError};

/// Tahoe asks at most `2 × N` servers (`all_servers[:(2 * total_shares)]`).
pub const CANDIDATES_PER_SHARE: usize = 2;

/// A server the upload may use, in permuted order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub server: ServerIndex,
    /// `maximum-immutable-share-size >= allocated size`: may be asked to take shares.
    pub writable: bool,
}

/// `k`, `happy` and `N` (`[client] shares.needed / shares.happy / shares.total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectionParams {
    pub needed: u16,
    pub happy: u16,
    pub total: u16,
    /// How long a listing or allocation request may go unanswered before it counts as
    /// failed (a stall).
    pub request_timeout: Millis,
}

/// Tahoe's timeout for share listing and allocation requests (`timeout_call(..., 15)`).
pub const DEFAULT_REQUEST_TIMEOUT: Millis = 15_000;

impl From<&crate::chk::EncodingParams> for SelectionParams {
    fn from(p: &crate::chk::EncodingParams) -> Self {
        SelectionParams {
            needed: p.needed,
            happy: p.happy,
            total: p.total,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// A request the driver must send to a server ([`machine::Action::Send`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadRequest {
    /// Which finished shares of this storage index does the server hold?
    ListShares,
    /// Allocate buckets for `shares` (one fresh upload secret per request). May be empty
    /// for a read-only server: the request renews the leases on what it holds.
    Allocate { shares: BTreeSet<ShareNum> },
    /// Abort these buckets (best effort; the answer, if any, is ignored).
    Abort { shares: BTreeSet<ShareNum> },
}

/// A server's answer to an [`UploadRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadResponse {
    /// To [`UploadRequest::ListShares`].
    Listed { shares: BTreeSet<ShareNum> },
    /// To [`UploadRequest::Allocate`].
    Allocated {
        already_have: BTreeSet<ShareNum>,
        allocated: BTreeSet<ShareNum>,
    },
    /// To [`UploadRequest::Abort`].
    Aborted,
}

/// What the driver must do: selection ends with the placement or why the upload cannot be
/// happy.
pub type Action =
    machine::Action<UploadRequest, std::convert::Infallible, Result<Placement, UploadUnhappy>>;

/// What happened; on a tick, requests unanswered for [`SelectionParams::request_timeout`]
/// fail (reported as stalls).
pub type Event = machine::Event<UploadResponse>;

/// Buckets to abort on a server (best effort), after selection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Abort {
    pub server: ServerIndex,
    pub shares: BTreeSet<ShareNum>,
}

/// A request as the selection rounds decide it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
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

/// An answer or failure, by server (one request per server is outstanding at a time).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reply {
    Listed {
        server: ServerIndex,
        shares: BTreeSet<ShareNum>,
    },
    Allocated {
        server: ServerIndex,
        already_have: BTreeSet<ShareNum>,
        allocated: BTreeSet<ShareNum>,
    },
    Failed {
        server: ServerIndex,
        reason: String,
    },
}

impl Reply {
    fn server(&self) -> ServerIndex {
        match self {
            Reply::Listed { server, .. }
            | Reply::Allocated { server, .. }
            | Reply::Failed { server, .. } => *server,
        }
    }
}

/// Bad input to [`UploadMachine::new`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// Tahoe's `NoServersError`.
    #[error("no storage servers are connected (client gave us zero servers)")]
    NoServers,
    #[error("server {0} is listed more than once")]
    DuplicateServer(ServerIndex),
    #[error("bad share parameters: need 1 <= k <= N <= 256 and happy <= N, got k={needed} happy={happy} N={total}")]
    BadParams { needed: u16, happy: u16, total: u16 },
}

/// The driver broke the protocol with the machine (a bug in the driver, not a server).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error("answer for request {0}, which was never sent")]
    UnknownRequest(RequestId),
    #[error("event for server {0}, which has no request outstanding")]
    NotOutstanding(ServerIndex),
    #[error("server {server}: {got} reported, but the outstanding request is {expected}")]
    WrongAnswer {
        server: ServerIndex,
        expected: &'static str,
        got: &'static str,
    },
    #[error("server selection is over")]
    NotSelecting,
}

/// Which request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    ListShares,
    Allocate,
    /// Writing shares, after placement.
    Write,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Request::ListShares => "asking for existing shares",
            Request::Allocate => "allocating",
            Request::Write => "writing",
        })
    }
}

/// Tahoe's `_QueryStatistics` (allocation requests only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Allocation requests sent.
    pub total: usize,
    /// Requests that placed (or found) some share.
    pub good: usize,
    /// `full + error`.
    pub bad: usize,
    /// Answered, but placed nothing.
    pub full: usize,
    /// Failed.
    pub error: usize,
    /// Allocation requests sent (Tahoe counts this equal to `total`).
    pub contacted: usize,
}

/// Where the shares go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Buckets this upload allocated and must fill: server -> shares. A share may appear
    /// under two servers after a re-plan; both copies are written.
    pub writes: BTreeMap<ServerIndex, BTreeSet<ShareNum>>,
    /// Shares the servers already hold (share -> servers); they are not sent again.
    pub present: BTreeMap<ShareNum, BTreeSet<ServerIndex>>,
    /// Servers of happiness of `writes` and `present` together.
    pub happiness: usize,
}

impl Placement {
    /// `writes` and `present` as one share -> servers map (`merge_servers`).
    pub fn sharemap(&self) -> BTreeMap<ShareNum, BTreeSet<ServerIndex>> {
        let mut m = self.present.clone();
        for (server, shares) in &self.writes {
            for sh in shares {
                m.entry(*sh).or_default().insert(*server);
            }
        }
        m
    }

    /// Every share number that is written to at least one server.
    pub fn shares_to_write(&self) -> BTreeSet<ShareNum> {
        self.writes.values().flatten().copied().collect()
    }
}

/// When happiness was found lacking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Server selection could not reach `happy` (nothing was written).
    Selection,
    /// Too many servers were lost while the shares were written.
    Writing,
}

/// The upload cannot meet `happy` (Tahoe's `UploadUnhappinessError`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadUnhappy {
    pub stage: Stage,
    /// Tahoe's `failure_message` inputs.
    pub unhappiness: UnhappinessError,
    pub total_shares: u16,
    /// Shares that found no home (Tahoe's `homeless_shares`), at selection.
    pub homeless_shares: usize,
    pub stats: QueryStats,
    /// Servers asked for their shares (the candidates).
    pub servers_queried: usize,
    /// Of those, servers that answered and were not lost later.
    pub servers_reachable: usize,
    /// Every server failure, in order.
    pub failures: Vec<ServerFailure<Request>>,
}

impl UploadUnhappy {
    /// The message, naming servers with `name`. Selection stage: Tahoe's
    /// `failure_message (progress message)`, then reachability and each failure.
    /// Writing stage: `failure_message: why`, then the same.
    pub fn message(&self, name: &dyn Fn(ServerIndex) -> String) -> String {
        let u = &self.unhappiness;
        let core = failure_message(
            u.servers_with_shares,
            u.needed_shares,
            u.happy,
            u.effective_happiness,
        );
        let mut msg = match self.stage {
            Stage::Selection => format!("{core} ({})", self.progress_message()),
            Stage::Writing => {
                let why = self
                    .failures
                    .iter()
                    .rev()
                    .find(|f| f.during == Request::Write)
                    .map(|f| format!("{} failed while {}: {}", name(f.server), f.during, f.reason))
                    .unwrap_or_else(|| "a server was lost".into());
                format!("{core}: {why}")
            }
        };
        let verb = if self.stage == Stage::Writing {
            "still reachable"
        } else {
            "reachable"
        };
        msg.push_str(&format!(
            "; {} of {} servers {verb}",
            self.servers_reachable, self.servers_queried
        ));
        if !self.failures.is_empty() {
            let list: Vec<String> = self
                .failures
                .iter()
                .map(|f| format!("{} ({}): {}", name(f.server), f.during, f.reason))
                .collect();
            msg.push_str(&format!("; failures: {}", list.join("; ")));
        }
        msg
    }

    /// Tahoe's `_get_progress_message`.
    fn progress_message(&self) -> String {
        let n = self.total_shares as usize;
        let placed = if self.homeless_shares == 0 {
            format!("placed all {n} shares, ")
        } else {
            format!(
                "placed {} shares out of {n} total ({} homeless), ",
                n.saturating_sub(self.homeless_shares),
                self.homeless_shares
            )
        };
        let s = &self.stats;
        format!(
            "{placed}want to place shares on at least {happy} servers such that any {needed} of them have \
             enough shares to recover the file, sent {q} queries to {c} servers, {g} queries placed some \
             shares, {b} placed none (of which {f} placed none due to the server being full and {e} placed \
             none due to an error)",
            happy = self.unhappiness.happy,
            needed = self.unhappiness.needed_shares,
            q = s.total,
            c = s.contacted,
            g = s.good,
            b = s.bad,
            f = s.full,
            e = s.error,
        )
    }
}

impl fmt::Display for UploadUnhappy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(&|i| format!("server {}", i.0)))
    }
}

impl std::error::Error for UploadUnhappy {}

/// What [`UploadMachine::server_lost`] leaves when the upload can go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    /// Happiness without the lost server (still >= `happy`).
    pub happiness: usize,
    /// Abort the lost server's buckets (best effort).
    pub abort: Option<Abort>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Writable,
    Readonly,
    /// Failed to say what it holds: out of this upload (`mark_bad_peer`).
    Bad,
}

#[derive(Clone, Debug)]
struct Server {
    id: ServerIndex,
    role: Role,
    /// Answered the share listing.
    listed: bool,
    /// Buckets allocated for this upload.
    buckets: BTreeSet<ShareNum>,
    /// Every share ever asked of it.
    asked: BTreeSet<ShareNum>,
    /// Some allocation request was sent (a read-only server's lease renewal).
    renewed: bool,
    /// Some request to it failed.
    failed: bool,
    lost: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pending {
    List,
    Allocate(BTreeSet<ShareNum>),
}

#[derive(Clone, Debug)]
enum Phase {
    Created,
    Listing,
    Allocating,
    Placed(Placement),
    Failed(UploadUnhappy),
}

/// One upload's server selection and share bookkeeping. See the module docs.
#[derive(Clone, Debug)]
pub struct UploadMachine {
    params: SelectionParams,
    /// Candidates in permuted order.
    servers: Vec<Server>,
    /// `mark_readonly_peer` calls, in order.
    readonly_order: Vec<ServerIndex>,
    /// `add_peer_with_share` calls (share listings), in arrival order.
    existing: Vec<(ServerIndex, ShareNum)>,
    /// Buckets allocated, in arrival order (existing shares from the second round on).
    own: Vec<(ServerIndex, ShareNum)>,
    /// Shares servers said they hold (listing or allocation answer).
    present: BTreeMap<ShareNum, BTreeSet<ServerIndex>>,
    /// Tahoe's `serverids_with_shares` (for the failure message).
    with_shares: BTreeSet<ServerIndex>,
    /// Tahoe's `homeless_shares` (for the progress message).
    homeless: BTreeSet<ShareNum>,
    stats: QueryStats,
    failures: Vec<ServerFailure<Request>>,
    pending: BTreeMap<ServerIndex, Pending>,
    phase: Phase,
    round: u32,
    errors_before: usize,
    last_happiness: Option<usize>,
    /// Requests in flight: id -> (server, when sent).
    requests: BTreeMap<RequestId, (ServerIndex, Millis)>,
    /// Requests no longer waited for (timed out, or aborts): their answers are ignored.
    retired: BTreeSet<RequestId>,
    next_id: RequestId,
    /// [`machine::Action::Finish`] was returned.
    finished: bool,
}

impl UploadMachine {
    /// A machine over `candidates` (permuted order; only the first `2N` are used).
    pub fn new(candidates: &[Candidate], params: SelectionParams) -> Result<Self, SetupError> {
        let SelectionParams {
            needed,
            happy,
            total,
            ..
        } = params;
        if needed == 0 || needed > total || total > 256 || happy > total {
            return Err(SetupError::BadParams {
                needed,
                happy,
                total,
            });
        }
        let take = (total as usize).saturating_mul(CANDIDATES_PER_SHARE);
        let cands = &candidates[..candidates.len().min(take)];
        if cands.is_empty() {
            return Err(SetupError::NoServers);
        }
        let mut seen = BTreeSet::new();
        let mut servers = Vec::with_capacity(cands.len());
        for c in cands {
            if !seen.insert(c.server) {
                return Err(SetupError::DuplicateServer(c.server));
            }
            servers.push(Server {
                id: c.server,
                role: if c.writable {
                    Role::Writable
                } else {
                    Role::Readonly
                },
                listed: false,
                buckets: BTreeSet::new(),
                asked: BTreeSet::new(),
                renewed: false,
                failed: false,
                lost: false,
            });
        }
        let readonly_order = cands
            .iter()
            .filter(|c| !c.writable)
            .map(|c| c.server)
            .collect();
        Ok(UploadMachine {
            params,
            servers,
            readonly_order,
            existing: Vec::new(),
            own: Vec::new(),
            present: BTreeMap::new(),
            with_shares: BTreeSet::new(),
            homeless: ShareNum::below(total).collect(),
            stats: QueryStats::default(),
            failures: Vec::new(),
            pending: BTreeMap::new(),
            phase: Phase::Created,
            round: 0,
            errors_before: 0,
            last_happiness: None,
            requests: BTreeMap::new(),
            retired: BTreeSet::new(),
            next_id: 0,
            finished: false,
        })
    }

    /// The candidates in use (at most `2N`), in permuted order.
    pub fn candidates(&self) -> impl Iterator<Item = ServerIndex> + '_ {
        self.servers.iter().map(|s| s.id)
    }

    /// First actions: ask every candidate for its shares. Later calls return nothing.
    pub fn start(&mut self, now: Millis) -> Vec<Action> {
        if !matches!(self.phase, Phase::Created) {
            return Vec::new();
        }
        self.phase = Phase::Listing;
        let outs: Vec<Out> = self
            .servers
            .iter()
            .map(|s| {
                self.pending.insert(s.id, Pending::List);
                Out::ListShares { server: s.id }
            })
            .collect();
        self.emit(outs, now)
    }

    /// Feed one event; returns the requests to send next (possibly none while other
    /// answers are awaited). When selection ends, the last action is
    /// [`machine::Action::Finish`] (and [`Self::outcome`] is `Some`); on failure the
    /// actions before it abort every bucket allocated.
    pub fn handle(&mut self, event: Event, now: Millis) -> Result<Vec<Action>, MachineError> {
        let mut actions = Vec::new();
        let mut outs = Vec::new();
        match event {
            Event::Tick => {
                let timeout = self.params.request_timeout;
                let overdue: Vec<RequestId> = self
                    .requests
                    .iter()
                    .filter(|(_, (_, sent))| now.saturating_sub(*sent) >= timeout)
                    .map(|(id, _)| *id)
                    .collect();
                for id in overdue {
                    let Some((server, _)) = self.requests.remove(&id) else {
                        continue;
                    };
                    self.retired.insert(id);
                    let what = match self.pending.get(&server) {
                        Some(Pending::List) => "share listing",
                        _ => "allocation",
                    };
                    let reason = format!("no answer to the {what} request within {timeout} ms");
                    actions.push(Action::Report(Problem {
                        server,
                        shnum: None,
                        kind: ProblemKind::Stall,
                        reason: reason.clone(),
                    }));
                    actions.push(Action::Cancel { id });
                    outs.extend(self.on_reply(Reply::Failed { server, reason })?);
                }
            }
            Event::Answer { id, response } => {
                let Some(server) = self.take(id)? else {
                    return Ok(actions);
                };
                let reply = match response {
                    UploadResponse::Listed { shares } => Reply::Listed { server, shares },
                    UploadResponse::Allocated {
                        already_have,
                        allocated,
                    } => Reply::Allocated {
                        server,
                        already_have,
                        allocated,
                    },
                    UploadResponse::Aborted => {
                        self.requests.remove(&id);
                        return Ok(actions);
                    }
                };
                outs.extend(self.on_reply(reply)?);
                self.requests.remove(&id);
            }
            Event::Failed { id, failure } => {
                let Some(server) = self.take(id)? else {
                    return Ok(actions);
                };
                actions.push(Action::Report(Problem {
                    server,
                    shnum: None,
                    kind: ProblemKind::Failed(failure.fault),
                    reason: failure.message.clone(),
                }));
                outs.extend(self.on_reply(Reply::Failed {
                    server,
                    reason: failure.message,
                })?);
                self.requests.remove(&id);
            }
            Event::Worked(never) => match never {},
        }
        actions.extend(self.emit(outs, now));
        Ok(actions)
    }

    /// When the earliest request in flight times out.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.requests
            .values()
            .map(|(_, sent)| sent.saturating_add(self.params.request_timeout))
            .min()
    }

    /// Whether [`machine::Action::Finish`] was returned.
    pub fn is_done(&self) -> bool {
        self.finished
    }

    /// The server of request `id`; `None` for one no longer waited for. The request stays
    /// outstanding until its answer is taken (an answer of the wrong kind is refused).
    fn take(&self, id: RequestId) -> Result<Option<ServerIndex>, MachineError> {
        match self.requests.get(&id) {
            Some((server, _)) => Ok(Some(*server)),
            None if self.retired.contains(&id) => Ok(None),
            None => Err(MachineError::UnknownRequest(id)),
        }
    }

    /// The rounds' requests as actions (each with a fresh id), and the end once selection
    /// is decided.
    fn emit(&mut self, outs: Vec<Out>, now: Millis) -> Vec<Action> {
        let mut actions = Vec::with_capacity(outs.len() + 1);
        for out in outs {
            let id = self.next_id;
            self.next_id += 1;
            let (server, request) = match out {
                Out::ListShares { server } => (server, UploadRequest::ListShares),
                Out::Allocate { server, shares } => (server, UploadRequest::Allocate { shares }),
                Out::Abort { server, shares } => {
                    // nobody waits for an abort
                    self.retired.insert(id);
                    (server, UploadRequest::Abort { shares })
                }
            };
            if !matches!(request, UploadRequest::Abort { .. }) {
                self.requests.insert(id, (server, now));
            }
            actions.push(Action::Send {
                id,
                server,
                request,
            });
        }
        if !self.finished {
            let outcome = match &self.phase {
                Phase::Placed(p) => Some(Ok(p.clone())),
                Phase::Failed(u) => Some(Err(u.clone())),
                _ => None,
            };
            if let Some(outcome) = outcome {
                self.finished = true;
                actions.push(Action::Finish(outcome));
            }
        }
        actions
    }

    /// One answer or failure of the outstanding request to its server.
    fn on_reply(&mut self, event: Reply) -> Result<Vec<Out>, MachineError> {
        if !matches!(self.phase, Phase::Listing | Phase::Allocating) {
            return Err(MachineError::NotSelecting);
        }
        let server = event.server();
        let pending = self
            .pending
            .get(&server)
            .ok_or(MachineError::NotOutstanding(server))?;
        match (pending, &event) {
            (Pending::List, Reply::Allocated { .. }) => {
                return Err(MachineError::WrongAnswer {
                    server,
                    expected: "a share listing",
                    got: "an allocation",
                })
            }
            (Pending::Allocate(_), Reply::Listed { .. }) => {
                return Err(MachineError::WrongAnswer {
                    server,
                    expected: "an allocation",
                    got: "a share listing",
                })
            }
            _ => {}
        }
        let pending = self.pending.remove(&server).expect("checked above");
        match pending {
            Pending::List => self.on_listed(event),
            Pending::Allocate(asked) => self.on_allocated(event, asked),
        }
        if !self.pending.is_empty() {
            return Ok(Vec::new());
        }
        Ok(match self.phase {
            Phase::Listing => self.run_rounds(),
            _ => self.after_round(),
        })
    }

    /// `None` while selecting; then the placement (kept up to date by
    /// [`Self::server_lost`]) or why the upload cannot be happy.
    pub fn outcome(&self) -> Option<Result<&Placement, &UploadUnhappy>> {
        match &self.phase {
            Phase::Placed(p) => Some(Ok(p)),
            Phase::Failed(u) => Some(Err(u)),
            _ => None,
        }
    }

    /// Requests sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    pub fn stats(&self) -> QueryStats {
        self.stats
    }

    /// Every server failure so far, in order.
    pub fn failures(&self) -> &[ServerFailure<Request>] {
        &self.failures
    }

    /// Servers of happiness of what is allocated and present now (lost servers excluded).
    pub fn happiness(&self) -> usize {
        servers_of_happiness(&self.merged())
    }

    /// A server failed while its shares were being written: forget its buckets and the
    /// shares it held. `Ok` while happiness is still at least `happy` (with the abort of
    /// its buckets); otherwise the upload has failed (abort everything, this server's
    /// buckets included, with [`Self::abort_all`]). Losing the same server twice changes
    /// nothing.
    // The error is returned at most once per upload, when it fails: not worth a box.
    #[allow(clippy::result_large_err)]
    pub fn server_lost(
        &mut self,
        server: ServerIndex,
        reason: impl Into<String>,
    ) -> Result<Lost, UploadUnhappy> {
        if let Phase::Failed(u) = &self.phase {
            return Err(u.clone());
        }
        let Some(i) = self.position(server) else {
            return Ok(Lost {
                happiness: self.happiness(),
                abort: None,
            });
        };
        if self.servers[i].lost {
            return Ok(Lost {
                happiness: self.happiness(),
                abort: None,
            });
        }
        let s = &mut self.servers[i];
        s.lost = true;
        let buckets = std::mem::take(&mut s.buckets);
        self.failures.push(ServerFailure {
            server,
            shnum: None,
            during: Request::Write,
            reason: reason.into(),
        });
        let abort = (!buckets.is_empty()).then_some(Abort {
            server,
            shares: buckets,
        });
        let merged = self.merged();
        let happiness = servers_of_happiness(&merged);
        if let Phase::Placed(p) = &mut self.phase {
            p.writes.remove(&server);
            for holders in p.present.values_mut() {
                holders.remove(&server);
            }
            p.present.retain(|_, h| !h.is_empty());
            p.happiness = happiness;
        }
        if happiness < self.params.happy as usize && matches!(self.phase, Phase::Placed(_)) {
            let holders: BTreeSet<ServerIndex> = merged.values().flatten().copied().collect();
            let u = self.unhappy(Stage::Writing, holders.len(), happiness);
            self.phase = Phase::Failed(u.clone());
            // Its buckets may still exist: [`Self::abort_all`] aborts them with the rest
            // (best effort), as Tahoe aborts a removed shareholder's buckets.
            if let Some(a) = abort {
                self.servers[i].buckets = a.shares;
            }
            return Err(u);
        }
        Ok(Lost { happiness, abort })
    }

    /// Abort every bucket still allocated (after a failure, or when the caller gives up),
    /// on lost servers too: a lost server whose abort [`Self::server_lost`] did not hand
    /// out (because losing it failed the upload) still holds its buckets, best effort.
    pub fn abort_all(&self) -> Vec<Abort> {
        self.servers
            .iter()
            .filter(|s| !s.buckets.is_empty())
            .map(|s| Abort {
                server: s.id,
                shares: s.buckets.clone(),
            })
            .collect()
    }

    // ---------------------------------------------------------------------------------

    fn position(&self, server: ServerIndex) -> Option<usize> {
        self.servers.iter().position(|s| s.id == server)
    }

    /// `_handle_existing_response` / `_handle_existing_write_response`.
    fn on_listed(&mut self, event: Reply) {
        let i = self
            .position(event.server())
            .expect("pending servers are candidates");
        match event {
            Reply::Listed { server, shares } => {
                let s = &mut self.servers[i];
                s.listed = true;
                let readonly = s.role == Role::Readonly;
                if readonly && !shares.is_empty() {
                    self.with_shares.insert(server);
                }
                for sh in shares {
                    self.existing.push((server, sh));
                    self.present.entry(sh).or_default().insert(server);
                    if readonly {
                        self.homeless.remove(&sh);
                    }
                }
            }
            Reply::Failed { server, reason } => {
                self.servers[i].role = Role::Bad;
                self.servers[i].failed = true;
                self.failures.push(ServerFailure {
                    server,
                    shnum: None,
                    during: Request::ListShares,
                    reason,
                });
            }
            Reply::Allocated { .. } => unreachable!("checked in handle"),
        }
    }

    /// `_buckets_allocated`.
    fn on_allocated(&mut self, event: Reply, asked: BTreeSet<ShareNum>) {
        let server = event.server();
        let i = self
            .position(server)
            .expect("pending servers are candidates");
        let event = match event {
            Reply::Allocated { allocated, .. } if !allocated.is_subset(&asked) => Reply::Failed {
                server,
                reason: format!(
                    "allocated shares it was not asked for ({:?} of {:?})",
                    allocated.difference(&asked).collect::<Vec<_>>(),
                    asked
                ),
            },
            e => e,
        };
        match event {
            Reply::Allocated {
                already_have,
                allocated,
                ..
            } => {
                let mut progress = false;
                for &sh in &already_have {
                    self.present.entry(sh).or_default().insert(server);
                    if self.homeless.remove(&sh) || asked.contains(&sh) {
                        progress = true;
                    }
                }
                if !allocated.is_empty() {
                    let s = &mut self.servers[i];
                    for &sh in &allocated {
                        if s.buckets.insert(sh) {
                            self.own.push((server, sh));
                        }
                    }
                    progress = true;
                }
                if !allocated.is_empty() || !already_have.is_empty() {
                    self.with_shares.insert(server);
                }
                for sh in asked
                    .iter()
                    .filter(|sh| !already_have.contains(sh) && !allocated.contains(sh))
                {
                    self.homeless.insert(*sh);
                }
                if progress {
                    self.stats.good += 1;
                } else {
                    self.stats.full += 1;
                    self.stats.bad += 1;
                    self.make_readonly(i);
                }
            }
            Reply::Failed { server, reason } => {
                self.stats.error += 1;
                self.stats.bad += 1;
                self.homeless.extend(asked.iter().copied());
                self.servers[i].failed = true;
                self.make_readonly(i);
                self.failures.push(ServerFailure {
                    server,
                    shnum: None,
                    during: Request::Allocate,
                    reason,
                });
            }
            Reply::Listed { .. } => unreachable!("checked in handle"),
        }
    }

    fn make_readonly(&mut self, i: usize) {
        let s = &mut self.servers[i];
        if s.role == Role::Writable {
            s.role = Role::Readonly;
            self.readonly_order.push(s.id);
        }
    }

    /// The end of an allocation round (Tahoe's loop tail).
    fn after_round(&mut self) -> Vec<Out> {
        let eff = self.happiness();
        if self.last_happiness == Some(eff) || self.errors_before == self.stats.bad {
            return self.finish();
        }
        self.last_happiness = Some(eff);
        self.run_rounds()
    }

    /// Tahoe's `while effective_happiness < min_happiness and (first or write_trackers)`.
    fn run_rounds(&mut self) -> Vec<Out> {
        if self.round > 0 {
            let writable = self
                .servers
                .iter()
                .any(|s| s.role == Role::Writable && !s.lost);
            if self.happiness() >= self.params.happy as usize || !writable {
                return self.finish();
            }
        }
        self.round += 1;
        self.errors_before = self.stats.bad;
        self.phase = Phase::Allocating;
        let actions = self.ask_round();
        if actions.is_empty() {
            // Nothing to ask: no answer can change anything.
            return self.finish();
        }
        actions
    }

    /// `get_share_placements` and the allocation requests it implies.
    fn ask_round(&mut self) -> Vec<Out> {
        let usable: Vec<ServerIndex> = self
            .servers
            .iter()
            .filter(|s| s.role != Role::Bad && !s.lost)
            .map(|s| s.id)
            .collect();
        let readonly: Vec<ServerIndex> = self
            .readonly_order
            .iter()
            .copied()
            .filter(|id| usable.contains(id))
            .collect();
        let mut existing: Vec<(ServerIndex, ShareNum)> = self
            .existing
            .iter()
            .copied()
            .filter(|(id, _)| usable.contains(id))
            .collect();
        if self.round > 1 {
            existing.extend(self.own.iter().copied().filter(|(id, sh)| {
                usable.contains(id)
                    && self
                        .servers
                        .iter()
                        .any(|s| s.id == *id && s.buckets.contains(sh))
            }));
        }
        // The inputs are consistent by construction; an error would be a bug here, and
        // asking nobody then ends selection with an honest unhappiness error.
        let plan = share_placement(&usable, &readonly, &existing, self.params.total);
        debug_assert!(plan.is_ok(), "{plan:?}");
        let plan = plan.unwrap_or_default();
        let mut actions = Vec::new();
        for s in self
            .servers
            .iter_mut()
            .filter(|s| s.role != Role::Bad && !s.lost)
        {
            let ask = plan.allocation_for(s.id);
            for sh in &ask {
                self.homeless.remove(sh);
            }
            let shares = match s.role {
                Role::Writable => {
                    let delta: BTreeSet<ShareNum> = ask
                        .difference(&s.buckets)
                        .filter(|sh| !s.asked.contains(sh))
                        .copied()
                        .collect();
                    if delta.is_empty() {
                        continue;
                    }
                    delta
                }
                Role::Readonly => {
                    // Tahoe asks every read-only server in every round (the request renews
                    // the leases on what it holds); once, or again for new shares, is enough.
                    if s.renewed && ask.is_subset(&s.asked) {
                        continue;
                    }
                    ask
                }
                Role::Bad => continue,
            };
            s.renewed = true;
            s.asked.extend(shares.iter().copied());
            self.pending.insert(s.id, Pending::Allocate(shares.clone()));
            actions.push(Out::Allocate {
                server: s.id,
                shares,
            });
        }
        self.stats.total += actions.len();
        self.stats.contacted += actions.len();
        actions
    }

    fn finish(&mut self) -> Vec<Out> {
        let merged = self.merged();
        let happiness = servers_of_happiness(&merged);
        if happiness < self.params.happy as usize {
            let u = self.unhappy(Stage::Selection, self.with_shares.len(), happiness);
            self.phase = Phase::Failed(u);
            return self
                .abort_all()
                .into_iter()
                .map(|a| Out::Abort {
                    server: a.server,
                    shares: a.shares,
                })
                .collect();
        }
        let writes = self
            .servers
            .iter()
            .filter(|s| !s.lost && !s.buckets.is_empty())
            .map(|s| (s.id, s.buckets.clone()))
            .collect();
        let present = self.live_present();
        self.phase = Phase::Placed(Placement {
            writes,
            present,
            happiness,
        });
        Vec::new()
    }

    fn live_present(&self) -> BTreeMap<ShareNum, BTreeSet<ServerIndex>> {
        let lost: BTreeSet<ServerIndex> = self
            .servers
            .iter()
            .filter(|s| s.lost)
            .map(|s| s.id)
            .collect();
        self.present
            .iter()
            .map(|(sh, holders)| {
                (
                    *sh,
                    holders.difference(&lost).copied().collect::<BTreeSet<_>>(),
                )
            })
            .filter(|(_, h)| !h.is_empty())
            .collect()
    }

    /// `merge_servers(preexisting, use_trackers)` without lost servers.
    fn merged(&self) -> BTreeMap<ShareNum, BTreeSet<ServerIndex>> {
        let mut m = self.live_present();
        for s in self.servers.iter().filter(|s| !s.lost) {
            for sh in &s.buckets {
                m.entry(*sh).or_default().insert(s.id);
            }
        }
        m
    }

    fn unhappy(&self, stage: Stage, servers_with_shares: usize, happiness: usize) -> UploadUnhappy {
        UploadUnhappy {
            stage,
            unhappiness: UnhappinessError {
                servers_with_shares,
                needed_shares: self.params.needed as usize,
                happy: self.params.happy as usize,
                effective_happiness: happiness,
            },
            total_shares: self.params.total,
            homeless_shares: self.homeless.len(),
            stats: self.stats,
            servers_queried: self.servers.len(),
            servers_reachable: self
                .servers
                .iter()
                .filter(|s| s.listed && !s.failed && !s.lost)
                .count(),
            failures: self.failures.clone(),
        }
    }
}
impl machine::Machine for UploadMachine {
    type Request = UploadRequest;
    type Response = UploadResponse;
    type Output = std::convert::Infallible;
    type Outcome = Result<Placement, UploadUnhappy>;
    type Job = std::convert::Infallible;
    type Error = MachineError;

    fn start(&mut self, now: Millis) -> Vec<Action> {
        UploadMachine::start(self, now)
    }
    fn handle(&mut self, event: Event, now: Millis) -> Result<Vec<Action>, MachineError> {
        UploadMachine::handle(self, event, now)
    }
    fn next_deadline(&self) -> Option<Millis> {
        UploadMachine::next_deadline(self)
    }
}

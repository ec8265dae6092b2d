//! Collision recovery: after a publish ended in an uncoordinated write (another writer's
//! shares were found), make sure some complete version stays recoverable (Tahoe's
//! `Publish._done` leaves this to the next writer; cairn does it at once).
//!
//! A composite [`Machine`] over the existing ones, in phases:
//!
//! 1. **Check**: a [`Mode::Check`] servermap update of every server.
//! 2. **Decide** ([`decide`]): if the best recoverable version is also the newest, nothing
//!    to do. Otherwise republish, above every sequence number seen, the best recoverable
//!    version (read first) or, when none is recoverable or reading it fails, this writer's
//!    own data, if it has the whole of it (an in-place update holds only the changed bytes).
//! 3. **Read**: a whole-file retrieve of the best recoverable version.
//! 4. **Encode**: encoding and signing need the writer's key, fresh salts and CPU time, so
//!    the machine hands the driver an [`Encode`] job ([`Action::Work`]) and the driver
//!    answers with the new header ([`Event::Worked`]).
//! 5. **Publish**: a publish machine over the check-mode map.
//!
//! It speaks the one vocabulary of [`crate::client::machine`]: its [`Request`] and
//! [`Response`] are the sub-machines' own, one variant per phase; shares the check found
//! bad are [`Action::Report`]ed as corrupt. It ends with a typed [`Outcome`]
//! ([`Action::Finish`]). The sub-machines number their requests from 0 each; the request
//! ids this machine hands out carry the phase in their top bits ([`routed`]), so a late
//! answer to an earlier phase never reaches a later machine and no two requests of one
//! run share an id. The places that know the sub-machines' requests and responses are the
//! [`lift`], [`lower`] and [`Response`]'s accessors at the end of this file.

use crate::client::machine::{
    self, ActionOf, Job, Machine, Millis, Problem, ProblemKind, RequestId,
};
use crate::client::mutable::servermap::{
    self, BadShare, Mode, ServerMap, ServermapUpdater, UpdateConfig,
};
use crate::client::mutable::{
    publish, retrieve, MachineError, PublishConfig, PublishError, PublishMachine, RetrieveConfig,
    RetrieveKeys, RetrieveMachine, ServerIndex, VersionId,
};
use crate::mutable::{MutableFormat, ShareHeader};

/// What recovery needs to know.
#[derive(Clone, Debug)]
pub struct RecoveryConfig {
    /// The check-mode update (its mode is forced to [`Mode::Check`]).
    pub update: UpdateConfig,
    /// The read-back of the best version; its epsilon is clamped to what the servers can
    /// give beyond that version's `k` (with every server answering, nothing is hidden).
    pub retrieve: RetrieveConfig,
    pub keys: RetrieveKeys,
    /// Servers of happiness of a republish (capped at the version's `N`, at least 1).
    pub happy: usize,
    /// Write timeout of a republish.
    pub write_timeout: Millis,
    /// The file's format, and `k`/`N` to use when no version is recoverable.
    pub format: MutableFormat,
    pub k: u8,
    pub n: u8,
}

/// A version to encode and publish (the driver encodes it: [`Encode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewVersion {
    pub format: MutableFormat,
    pub k: u8,
    pub n: u8,
    pub seqnum: u64,
}

/// Whose data a republish writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The best recoverable version, read back.
    Version { seqnum: u64 },
    /// This writer's own data, because no version was recoverable.
    OursNoneRecoverable,
    /// This writer's own data, because reading the best version failed.
    OursReadFailed { seqnum: u64, reason: String },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Version { seqnum } => write!(f, "seqnum {seqnum}"),
            Source::OursNoneRecoverable => {
                write!(f, "this write's data (no version was recoverable)")
            }
            Source::OursReadFailed { seqnum, reason } => {
                write!(
                    f,
                    "this write's data (reading seqnum {seqnum} failed: {reason})"
                )
            }
        }
    }
}

/// How recovery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The newest version on the grid is recoverable: nothing to do.
    NewestRecoverable { seqnum: u64 },
    /// `source` was republished as `seqnum`.
    Republished { source: Source, seqnum: u64 },
    /// Nothing recoverable, and no whole copy of this write to republish.
    NothingToRepublish { highest: u64 },
    /// The check-mode update could not run.
    CheckFailed { reason: String },
    /// The driver stopped the machine (a driver bug, not a server's doing).
    Interrupted { reason: String },
    /// The republish of `source` (as `seqnum`, when it got that far) failed.
    RepublishFailed {
        source: Source,
        seqnum: Option<u64>,
        reason: String,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::NewestRecoverable { seqnum } => {
                write!(f, "the newest version (seqnum {seqnum}) is recoverable")
            }
            Outcome::Republished { source, seqnum } => {
                write!(f, "republished {source} as seqnum {seqnum}")
            }
            Outcome::NothingToRepublish { highest } => write!(
                f,
                "no version is recoverable and this in-place update holds no whole copy to \
                 republish (highest seqnum seen {highest})"
            ),
            Outcome::Interrupted { reason } => write!(f, "collision recovery stopped: {reason}"),
            Outcome::CheckFailed { reason } => {
                write!(f, "checking the file afterwards failed: {reason}")
            }
            Outcome::RepublishFailed {
                source,
                seqnum: Some(s),
                reason,
            } => write!(f, "republishing {source} as seqnum {s} failed: {reason}"),
            Outcome::RepublishFailed {
                source,
                seqnum: None,
                reason,
            } => write!(f, "republishing {source} failed: {reason}"),
        }
    }
}

/// What the check-mode map calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    NewestRecoverable {
        seqnum: u64,
    },
    /// Read `best` back, then republish it as `version` (this writer's data if the
    /// read fails).
    RepublishBest {
        best: VersionId,
        version: NewVersion,
    },
    /// Nothing is recoverable: republish this writer's data as `version`, if it has it.
    RepublishOurs {
        version: NewVersion,
    },
}

/// Decide from a check-mode map. `format`, `k`, `n`: the file's, for when no version is
/// recoverable.
pub fn decide(map: &ServerMap, format: MutableFormat, k: u8, n: u8) -> Decision {
    let highest = map.highest_seqnum();
    let seqnum = highest + 1;
    match map.best_recoverable_version() {
        Some(b) if b.seqnum >= highest => Decision::NewestRecoverable { seqnum: b.seqnum },
        Some(b) => Decision::RepublishBest {
            version: NewVersion {
                format,
                k: b.k,
                n: b.n,
                seqnum,
            },
            best: b,
        },
        None => Decision::RepublishOurs {
            version: NewVersion {
                format,
                k,
                n,
                seqnum,
            },
        },
    }
}

/// A request of the recovery machine: the request of the phase's sub-machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Check(servermap::Read),
    Read(retrieve::Read),
    Publish(publish::Write),
}

/// The answer to a [`Request`], of the same phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Check(servermap::Shares),
    Read(Vec<u8>),
    Publish(publish::Written),
}

/// Encode and sign `data` as `version` ([`Action::Work`]); answered with
/// [`Event::Worked`] carrying the new shares' header, or why encoding failed.
///
/// Encoding needs the writer's signing key and fresh random salts, which the machine
/// does not hold: the driver carries the job out with them (its executor's `work`). So
/// it is a [`Job`] but not a [`machine::RunJob`]: nothing can run it without them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encode {
    pub data: Vec<u8>,
    pub version: NewVersion,
}

impl Job for Encode {
    type Done = Result<ShareHeader, String>;
}

/// An action of the recovery machine.
pub type Action = machine::Action<Request, std::convert::Infallible, Outcome, Encode>;

/// An event of the recovery machine.
pub type Event = machine::Event<Response, Result<ShareHeader, String>>;

#[derive(Debug)]
enum Phase {
    Check(ServermapUpdater),
    Read {
        map: ServerMap,
        best: VersionId,
        version: NewVersion,
        machine: Box<RetrieveMachine>,
        data: Vec<u8>,
    },
    Encode {
        map: ServerMap,
        source: Source,
        version: NewVersion,
    },
    Publish {
        machine: Box<PublishMachine>,
        source: Source,
        seqnum: u64,
    },
    Done(Outcome),
}

const CHECK: u64 = 1;
const READ: u64 = 2;
const PUBLISH: u64 = 3;
const PHASE_SHIFT: u32 = 60;

/// The id a sub-machine's request `id` of `phase` has outside.
pub fn routed(phase: u64, id: RequestId) -> RequestId {
    (phase << PHASE_SHIFT) | (id & ((1 << PHASE_SHIFT) - 1))
}

fn phase_of(id: RequestId) -> u64 {
    id >> PHASE_SHIFT
}

fn inner(id: RequestId) -> RequestId {
    id & ((1 << PHASE_SHIFT) - 1)
}

/// The collision recovery machine. See the module docs.
#[derive(Debug)]
pub struct CollisionRecovery {
    cfg: RecoveryConfig,
    servers: Vec<ServerIndex>,
    /// This writer's whole new plaintext, if it has it.
    ours: Option<Vec<u8>>,
    phase: Phase,
}

impl CollisionRecovery {
    /// `servers`: in permuted order; `ours`: the whole plaintext this writer meant to
    /// publish (`None` for an in-place update).
    pub fn new(
        mut cfg: RecoveryConfig,
        servers: &[ServerIndex],
        ours: Option<Vec<u8>>,
    ) -> CollisionRecovery {
        cfg.update.mode = Mode::Check;
        let phase = match ServermapUpdater::new(cfg.update.clone(), servers) {
            Ok(m) => Phase::Check(m),
            Err(e) => Phase::Done(Outcome::CheckFailed {
                reason: e.to_string(),
            }),
        };
        CollisionRecovery {
            cfg,
            servers: servers.to_vec(),
            ours,
            phase,
        }
    }

    /// The final outcome, once done.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.phase {
            Phase::Done(o) => Some(o),
            _ => None,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    fn current(&self) -> u64 {
        match self.phase {
            Phase::Check(_) => CHECK,
            Phase::Read { .. } => READ,
            Phase::Publish { .. } => PUBLISH,
            Phase::Encode { .. } | Phase::Done(_) => 0,
        }
    }

    fn finish(&mut self, o: Outcome, out: &mut Vec<Action>) {
        out.push(Action::Finish(o.clone()));
        self.phase = Phase::Done(o);
    }

    fn after_check(
        &mut self,
        actions: Vec<ActionOf<ServermapUpdater>>,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let mut finished = None;
        for a in actions {
            match a {
                machine::Action::Finish(map) => finished = Some(map),
                other => out.extend(lift(CHECK, other, Request::Check)),
            }
        }
        let Some(map) = finished else {
            return;
        };
        for b in map.bad_shares().values() {
            out.push(Action::Report(bad_share_problem(b)));
        }
        match decide(&map, self.cfg.format, self.cfg.k, self.cfg.n) {
            Decision::NewestRecoverable { seqnum } => {
                self.finish(Outcome::NewestRecoverable { seqnum }, out)
            }
            Decision::RepublishBest { best, version } => {
                let mut rcfg = self.cfg.retrieve.clone();
                let beyond_k = self.servers.len().saturating_sub(usize::from(best.k));
                rcfg.epsilon = rcfg.epsilon.map(|e| e.min(beyond_k));
                match RetrieveMachine::new(rcfg, &map, self.cfg.keys.clone(), None) {
                    Ok(mut machine) => {
                        let a = machine.start(now);
                        self.phase = Phase::Read {
                            map,
                            best,
                            version,
                            machine: Box::new(machine),
                            data: Vec::new(),
                        };
                        self.after_read(a, out);
                    }
                    Err(e) => {
                        let source = Source::OursReadFailed {
                            seqnum: best.seqnum,
                            reason: e.to_string(),
                        };
                        self.republish(map, source, version, out);
                    }
                }
            }
            Decision::RepublishOurs { version } => {
                self.republish(map, Source::OursNoneRecoverable, version, out)
            }
        }
    }

    fn after_read(&mut self, actions: Vec<ActionOf<RetrieveMachine>>, out: &mut Vec<Action>) {
        let Phase::Read { data, .. } = &mut self.phase else {
            return;
        };
        let mut finished = None;
        for a in actions {
            match a {
                machine::Action::Output(chunk) => data.extend_from_slice(&chunk.data),
                machine::Action::Finish(r) => finished = Some(r),
                other => out.extend(lift(READ, other, Request::Read)),
            }
        }
        let Some(r) = finished else {
            return;
        };
        let Phase::Read {
            map,
            best,
            version,
            data,
            ..
        } = std::mem::replace(
            &mut self.phase,
            Phase::Done(Outcome::NothingToRepublish { highest: 0 }),
        )
        else {
            return;
        };
        match r {
            Ok(_) => {
                self.phase = Phase::Encode {
                    map,
                    source: Source::Version {
                        seqnum: best.seqnum,
                    },
                    version,
                };
                out.push(Action::Work(Encode { data, version }));
            }
            Err(e) => {
                let source = Source::OursReadFailed {
                    seqnum: best.seqnum,
                    reason: e.to_string(),
                };
                self.republish(map, source, version, out);
            }
        }
    }

    /// Republish this writer's own data, if it has it.
    fn republish(
        &mut self,
        map: ServerMap,
        source: Source,
        version: NewVersion,
        out: &mut Vec<Action>,
    ) {
        let Some(data) = self.ours.take() else {
            let highest = map.highest_seqnum();
            return self.finish(Outcome::NothingToRepublish { highest }, out);
        };
        self.phase = Phase::Encode {
            map,
            source,
            version,
        };
        out.push(Action::Work(Encode { data, version }));
    }

    fn encoded(&mut self, r: Result<ShareHeader, String>, now: Millis, out: &mut Vec<Action>) {
        let Phase::Encode {
            map,
            source,
            version,
        } = std::mem::replace(
            &mut self.phase,
            Phase::Done(Outcome::NothingToRepublish { highest: 0 }),
        )
        else {
            return;
        };
        let header = match r {
            Ok(h) => h,
            Err(reason) => {
                let o = Outcome::RepublishFailed {
                    source,
                    seqnum: None,
                    reason,
                };
                return self.finish(o, out);
            }
        };
        let happy = self.cfg.happy.min(usize::from(header.n)).max(1);
        let mut pcfg = PublishConfig::new(happy);
        pcfg.write_timeout = self.cfg.write_timeout;
        match PublishMachine::new(pcfg, &map, &self.servers, &header) {
            Ok(mut m) => {
                let a = m.start(now);
                self.phase = Phase::Publish {
                    machine: Box::new(m),
                    source,
                    seqnum: version.seqnum,
                };
                self.after_publish(a, out);
            }
            Err(e) => {
                let o = Outcome::RepublishFailed {
                    source,
                    seqnum: None,
                    reason: e.to_string(),
                };
                self.finish(o, out);
            }
        }
    }

    fn after_publish(&mut self, actions: Vec<ActionOf<PublishMachine>>, out: &mut Vec<Action>) {
        let mut finished = None;
        for a in actions {
            match a {
                machine::Action::Finish(r) => finished = Some(r),
                other => out.extend(lift(PUBLISH, other, Request::Publish)),
            }
        }
        let Some(r) = finished else {
            return;
        };
        let Phase::Publish { source, seqnum, .. } = &self.phase else {
            return;
        };
        let (source, seqnum) = (source.clone(), *seqnum);
        let o = match r {
            Ok(_) => Outcome::Republished { source, seqnum },
            Err(e) => Outcome::RepublishFailed {
                source,
                seqnum: Some(seqnum),
                reason: publish_failure(&e),
            },
        };
        self.finish(o, out);
    }
}

fn publish_failure(e: &PublishError) -> String {
    e.to_string()
}

/// A share the check found bad, as the report the driver scores (and advises the server
/// of, as Tahoe does).
fn bad_share_problem(b: &BadShare) -> Problem {
    Problem {
        server: b.server,
        shnum: Some(b.shnum),
        kind: ProblemKind::Corrupt,
        reason: b.reason.clone(),
    }
}

impl Machine for CollisionRecovery {
    type Request = Request;
    type Response = Response;
    type Output = std::convert::Infallible;
    type Outcome = Outcome;
    type Job = Encode;
    type Error = MachineError;

    fn start(&mut self, now: Millis) -> Vec<Action> {
        let mut out = Vec::new();
        match &mut self.phase {
            Phase::Check(m) => {
                let a = m.start(now);
                self.after_check(a, now, &mut out);
            }
            Phase::Done(o) => out.push(Action::Finish(o.clone())),
            _ => {}
        }
        out
    }

    fn handle(&mut self, event: Event, now: Millis) -> Result<Vec<Action>, MachineError> {
        let mut out = Vec::new();
        match event {
            machine::Event::Tick => match &mut self.phase {
                Phase::Check(m) => {
                    let a = m.handle(machine::Event::Tick, now)?;
                    self.after_check(a, now, &mut out);
                }
                Phase::Read { machine, .. } => {
                    let a = machine.handle(machine::Event::Tick, now)?;
                    self.after_read(a, &mut out);
                }
                Phase::Publish { machine, .. } => {
                    let a = machine.handle(machine::Event::Tick, now)?;
                    self.after_publish(a, &mut out);
                }
                Phase::Encode { .. } | Phase::Done(_) => {}
            },
            machine::Event::Worked(r) => {
                if matches!(self.phase, Phase::Encode { .. }) {
                    self.encoded(r, now, &mut out);
                }
            }
            e @ (machine::Event::Answer { .. } | machine::Event::Failed { .. }) => {
                let Some(id) = e.request() else {
                    return Ok(out);
                };
                let current = self.current();
                if phase_of(id) != current || current == 0 {
                    // A late answer to an earlier phase, or an id never handed out.
                    if current != 0 && phase_of(id) >= current {
                        return Err(MachineError::UnknownRequest(id));
                    }
                    return Ok(out);
                }
                match &mut self.phase {
                    Phase::Check(m) => {
                        let e =
                            lower(e, Response::check).ok_or(MachineError::UnknownRequest(id))?;
                        let a = m.handle(e, now)?;
                        self.after_check(a, now, &mut out);
                    }
                    Phase::Read { machine, .. } => {
                        let e = lower(e, Response::read).ok_or(MachineError::UnknownRequest(id))?;
                        let a = machine.handle(e, now)?;
                        self.after_read(a, &mut out);
                    }
                    Phase::Publish { machine, .. } => {
                        let e =
                            lower(e, Response::publish).ok_or(MachineError::UnknownRequest(id))?;
                        let a = machine.handle(e, now)?;
                        self.after_publish(a, &mut out);
                    }
                    Phase::Encode { .. } | Phase::Done(_) => {}
                }
            }
        }
        Ok(out)
    }

    fn next_deadline(&self) -> Option<Millis> {
        match &self.phase {
            Phase::Check(m) => m.next_deadline(),
            Phase::Read { machine, .. } => machine.next_deadline(),
            Phase::Publish { machine, .. } => machine.next_deadline(),
            Phase::Encode { .. } | Phase::Done(_) => None,
        }
    }
}

/// A sub-machine's request, send, cancel or report, as the recovery machine's: its
/// request id tagged with `phase`, its request wrapped by `wrap`. Its output and its end
/// are the caller's (`None`).
fn lift<Q, O, C>(
    phase: u64,
    a: machine::Action<Q, O, C>,
    wrap: fn(Q) -> Request,
) -> Option<Action> {
    match a {
        machine::Action::Send {
            id,
            server,
            request,
        } => Some(Action::Send {
            id: routed(phase, id),
            server,
            request: wrap(request),
        }),
        machine::Action::Cancel { id } => Some(Action::Cancel {
            id: routed(phase, id),
        }),
        machine::Action::Report(p) => Some(Action::Report(p)),
        machine::Action::Work(never) => match never {},
        machine::Action::Output(_) | machine::Action::Finish(_) => None,
    }
}

/// An answer or failure of the recovery machine as its sub-machine's: the phase tag taken
/// off the id, the response unwrapped by `unwrap` (`None`: a response of another phase).
fn lower<R>(e: Event, unwrap: fn(Response) -> Option<R>) -> Option<machine::Event<R>> {
    match e {
        machine::Event::Answer { id, response } => Some(machine::Event::Answer {
            id: inner(id),
            response: unwrap(response)?,
        }),
        machine::Event::Failed { id, failure } => Some(machine::Event::Failed {
            id: inner(id),
            failure,
        }),
        machine::Event::Worked(_) | machine::Event::Tick => None,
    }
}

/// The sub-machines' responses: with [`Request`]'s variants, the only code that names
/// them.
impl Response {
    fn check(self) -> Option<servermap::Shares> {
        match self {
            Response::Check(s) => Some(s),
            _ => None,
        }
    }
    fn read(self) -> Option<Vec<u8>> {
        match self {
            Response::Read(d) => Some(d),
            _ => None,
        }
    }
    fn publish(self) -> Option<publish::Written> {
        match self {
            Response::Publish(w) => Some(w),
            _ => None,
        }
    }
}

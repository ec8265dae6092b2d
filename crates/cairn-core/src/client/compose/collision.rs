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
//! 4. **Encode**: encoding and signing need fresh salts and CPU time, so the driver does
//!    them ([`Action::Encode`]) and answers with the new header ([`Event::Encoded`]).
//! 5. **Publish**: a publish machine over the check-mode map.
//!
//! It ends with a typed [`Outcome`]. The sub-machines number their requests from 0 each;
//! the request ids this machine hands out carry the phase in their top bits
//! ([`routed`]), so a late answer to an earlier phase never reaches a later machine and
//! no two requests of one run share an id. The places that know the sub-machines'
//! action and event variants are the [`Routed`] implementations at the end of this file.

use crate::client::machine::{Machine, MachineEvent, Millis, RequestId};
use crate::client::mutable::servermap::{
    self, BadShare, Mode, ServerMap, ServermapUpdater, UpdateConfig,
};
use crate::client::mutable::{
    publish, retrieve, MachineError, PublishConfig, PublishError, PublishMachine, RetrieveConfig,
    RetrieveKeys, RetrieveMachine, ServerIdx, VersionId,
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

/// A version to encode and publish (the driver encodes it: [`Action::Encode`]).
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

/// An action of the recovery machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Check(servermap::Action),
    /// Shares the check found bad (for the driver's health scores and `advise_corrupt`).
    BadShares(Vec<BadShare>),
    Read(retrieve::Action),
    /// Encode and sign `data` as `version`; answer with [`Event::Encoded`].
    Encode {
        data: Vec<u8>,
        version: NewVersion,
    },
    Publish(publish::Action),
    Finished(Outcome),
}

/// An event of the recovery machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Check(servermap::Event),
    Read(retrieve::Event),
    /// The header of the shares encoded for [`Action::Encode`], or why encoding failed.
    Encoded(Result<ShareHeader, String>),
    Publish(publish::Event),
    Tick,
}

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
    servers: Vec<ServerIdx>,
    /// This writer's whole new plaintext, if it has it.
    ours: Option<Vec<u8>>,
    phase: Phase,
}

impl CollisionRecovery {
    /// `servers`: in permuted order; `ours`: the whole plaintext this writer meant to
    /// publish (`None` for an in-place update).
    pub fn new(
        mut cfg: RecoveryConfig,
        servers: &[ServerIdx],
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

    pub fn start(&mut self, now: Millis) -> Vec<Action> {
        let mut out = Vec::new();
        match &mut self.phase {
            Phase::Check(m) => {
                let a = m.start(now);
                self.after_check(a, now, &mut out);
            }
            Phase::Done(o) => out.push(Action::Finished(o.clone())),
            _ => {}
        }
        out
    }

    pub fn handle(&mut self, event: Event, now: Millis) -> Result<Vec<Action>, MachineError> {
        let mut out = Vec::new();
        match (event, &mut self.phase) {
            (Event::Tick, Phase::Check(m)) => {
                let a = m.handle(servermap::Event::Tick, now)?;
                self.after_check(a, now, &mut out);
            }
            (Event::Tick, Phase::Read { machine, .. }) => {
                let a = machine.handle(retrieve::Event::Tick, now)?;
                self.after_read(a, &mut out);
            }
            (Event::Tick, Phase::Publish { machine, .. }) => {
                let a = machine.handle(publish::Event::Tick, now)?;
                self.after_publish(a, &mut out);
            }
            (Event::Check(e), Phase::Check(m)) if is_ours(&e, CHECK) => {
                let a = m.handle(e.route(inner), now)?;
                self.after_check(a, now, &mut out);
            }
            (Event::Read(e), Phase::Read { machine, .. }) if is_ours(&e, READ) => {
                let a = machine.handle(e.route(inner), now)?;
                self.after_read(a, &mut out);
            }
            (Event::Publish(e), Phase::Publish { machine, .. }) if is_ours(&e, PUBLISH) => {
                let a = machine.handle(e.route(inner), now)?;
                self.after_publish(a, &mut out);
            }
            (Event::Encoded(r), Phase::Encode { .. }) => self.encoded(r, now, &mut out),
            // A late answer to an earlier phase, or an id never handed out by this one.
            (e, _) => {
                if let Some(id) = e.request() {
                    let current = match self.phase {
                        Phase::Check(_) => CHECK,
                        Phase::Read { .. } => READ,
                        Phase::Publish { .. } => PUBLISH,
                        _ => 0,
                    };
                    if phase_of(id) >= current && current != 0 {
                        return Err(MachineError::UnknownRequest(id));
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn next_deadline(&self) -> Option<Millis> {
        match &self.phase {
            Phase::Check(m) => m.next_deadline(),
            Phase::Read { machine, .. } => machine.next_deadline(),
            Phase::Publish { machine, .. } => machine.next_deadline(),
            Phase::Encode { .. } | Phase::Done(_) => None,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    fn finish(&mut self, o: Outcome, out: &mut Vec<Action>) {
        out.push(Action::Finished(o.clone()));
        self.phase = Phase::Done(o);
    }

    fn after_check(&mut self, actions: Vec<servermap::Action>, now: Millis, out: &mut Vec<Action>) {
        out.extend(
            actions
                .into_iter()
                .map(|a| Action::Check(a.route(|id| routed(CHECK, id)))),
        );
        let Phase::Check(m) = &self.phase else {
            return;
        };
        if !m.is_done() {
            return;
        }
        let map = m.servermap().clone();
        let bad: Vec<BadShare> = map.bad_shares().values().cloned().collect();
        if !bad.is_empty() {
            out.push(Action::BadShares(bad));
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

    fn after_read(&mut self, actions: Vec<retrieve::Action>, out: &mut Vec<Action>) {
        let Phase::Read { data, .. } = &mut self.phase else {
            return;
        };
        let mut finished = None;
        for a in actions {
            match a {
                retrieve::Action::Output { data: d, .. } => data.extend_from_slice(&d),
                retrieve::Action::Finished(r) => finished = Some(r),
                other => out.push(Action::Read(other.route(|id| routed(READ, id)))),
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
                out.push(Action::Encode { data, version });
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
        out.push(Action::Encode { data, version });
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

    fn after_publish(&mut self, actions: Vec<publish::Action>, out: &mut Vec<Action>) {
        let mut finished = None;
        for a in actions {
            match a {
                publish::Action::Finished(r) => finished = Some(r),
                other => out.push(Action::Publish(other.route(|id| routed(PUBLISH, id)))),
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

fn is_ours<E: Routed>(e: &E, phase: u64) -> bool {
    e.id().is_none_or(|id| phase_of(id) == phase)
}

impl MachineEvent for Event {
    fn tick() -> Self {
        Event::Tick
    }
    fn is_tick(&self) -> bool {
        matches!(self, Event::Tick)
    }
    fn request(&self) -> Option<RequestId> {
        match self {
            Event::Check(e) => e.id(),
            Event::Read(e) => e.id(),
            Event::Publish(e) => e.id(),
            Event::Encoded(_) | Event::Tick => None,
        }
    }
}

impl Machine for CollisionRecovery {
    type Event = Event;
    type Action = Action;
    type Error = MachineError;
    fn start(&mut self, now: Millis) -> Vec<Action> {
        CollisionRecovery::start(self, now)
    }
    fn handle(&mut self, event: Event, now: Millis) -> Result<Vec<Action>, MachineError> {
        CollisionRecovery::handle(self, event, now)
    }
    fn next_deadline(&self) -> Option<Millis> {
        CollisionRecovery::next_deadline(self)
    }
    fn is_done(&self) -> bool {
        CollisionRecovery::is_done(self)
    }
}

/// A sub-machine's action or event whose request id a composite rewrites. The only code
/// that names the sub-machines' variants; adapting to a new vocabulary happens here.
pub trait Routed: Sized {
    /// The request id it carries, if any.
    fn id(&self) -> Option<RequestId>;
    /// The same with its request id mapped by `f`.
    fn route(self, f: impl Fn(RequestId) -> RequestId) -> Self;
}

impl Routed for servermap::Action {
    fn id(&self) -> Option<RequestId> {
        match self {
            Self::Query { id, .. } | Self::ReadShare { id, .. } | Self::Cancel { id } => Some(*id),
            Self::Finished => None,
        }
    }
    fn route(mut self, f: impl Fn(RequestId) -> RequestId) -> Self {
        match &mut self {
            Self::Query { id, .. } | Self::ReadShare { id, .. } | Self::Cancel { id } => {
                *id = f(*id)
            }
            Self::Finished => {}
        }
        self
    }
}

impl Routed for servermap::Event {
    fn id(&self) -> Option<RequestId> {
        match self {
            Self::Answer { id, .. } | Self::Failed { id, .. } => Some(*id),
            Self::Tick => None,
        }
    }
    fn route(mut self, f: impl Fn(RequestId) -> RequestId) -> Self {
        match &mut self {
            Self::Answer { id, .. } | Self::Failed { id, .. } => *id = f(*id),
            Self::Tick => {}
        }
        self
    }
}

impl Routed for retrieve::Action {
    fn id(&self) -> Option<RequestId> {
        match self {
            Self::Read { id, .. } | Self::Cancel { id } => Some(*id),
            Self::Output { .. } | Self::Report(_) | Self::Finished(_) => None,
        }
    }
    fn route(mut self, f: impl Fn(RequestId) -> RequestId) -> Self {
        match &mut self {
            Self::Read { id, .. } | Self::Cancel { id } => *id = f(*id),
            Self::Output { .. } | Self::Report(_) | Self::Finished(_) => {}
        }
        self
    }
}

impl Routed for retrieve::Event {
    fn id(&self) -> Option<RequestId> {
        match self {
            Self::Read { id, .. } | Self::Failed { id, .. } => Some(*id),
            Self::Tick => None,
        }
    }
    fn route(mut self, f: impl Fn(RequestId) -> RequestId) -> Self {
        match &mut self {
            Self::Read { id, .. } | Self::Failed { id, .. } => *id = f(*id),
            Self::Tick => {}
        }
        self
    }
}

impl Routed for publish::Action {
    fn id(&self) -> Option<RequestId> {
        match self {
            Self::Write { id, .. } | Self::Cancel { id } => Some(*id),
            Self::Finished(_) => None,
        }
    }
    fn route(mut self, f: impl Fn(RequestId) -> RequestId) -> Self {
        match &mut self {
            Self::Write { id, .. } | Self::Cancel { id } => *id = f(*id),
            Self::Finished(_) => {}
        }
        self
    }
}

impl Routed for publish::Event {
    fn id(&self) -> Option<RequestId> {
        match self {
            Self::Written { id, .. } | Self::Failed { id, .. } => Some(*id),
            Self::Tick => None,
        }
    }
    fn route(mut self, f: impl Fn(RequestId) -> RequestId) -> Self {
        match &mut self {
            Self::Written { id, .. } | Self::Failed { id, .. } => *id = f(*id),
            Self::Tick => {}
        }
        self
    }
}

//! The one shape of the client's protocol machines, so one driver (in `cairn-client`) and
//! one simulated executor can run any of them.
//!
//! The driver calls [`Machine::start`] once, then [`Machine::handle`] with each [`Event`]
//! and the time, and carries out the [`Action`]s returned, until the machine returns
//! [`Action::Finish`]: that action is the one way a machine says it is done, and it carries
//! the machine's typed outcome. Time comes in as [`Millis`] from an origin the driver picks;
//! a machine never reads a clock, and asks for a tick by [`Machine::next_deadline`].
//!
//! One vocabulary for every machine; what differs between machines is only the payload,
//! named by the trait's associated types:
//! - [`Machine::Request`] / [`Machine::Response`]: what is sent to a server
//!   ([`Action::Send`]) and what comes back ([`Event::Answer`]). A request that fails comes
//!   back as [`Event::Failed`] with a [`Failure`]: the driver's [`Fault`] and its message, so
//!   the machine (and its problem reports) know whose fault it was.
//! - [`Machine::Job`]: local work that is not a request to a server (hashing blocks,
//!   decoding a segment), run by the driver on a worker and returned as
//!   [`Event::Worked`]; a job the core can carry out itself is also a [`RunJob`]. It is a pair of its own rather than a request to a pseudo-server
//!   because it can neither fail nor stall, is never cancelled and says nothing about any
//!   server's health; a machine without jobs uses [`std::convert::Infallible`], so its
//!   drivers need no arm for it.
//! - [`Machine::Output`]: data produced along the way ([`Action::Output`], e.g. plaintext
//!   in file order); `Infallible` for machines that only have an outcome.
//! - [`Machine::Outcome`]: what [`Action::Finish`] carries.
//!
//! Every "a server misbehaved" is one [`Problem`] ([`Action::Report`]): a failed request
//! with its [`Fault`], corrupt data, a stall, or a share that is unusable without being the
//! server's fault. A machine that gives up on a request because its deadline passed reports
//! the stall itself (and then cancels the request); the driver does not guess.

use std::convert::Infallible;
use std::fmt;

pub use crate::ids::{ServerIndex, ShareNum};

/// Milliseconds since an origin the driver chooses (only differences matter).
pub type Millis = u64;

/// Identifies one request for the life of a machine.
pub type RequestId = u64;

/// Whose fault a failed request is (the driver classifies its errors; scoring weighs them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// The server could not be reached or did not answer in time: maybe transient.
    Network,
    /// The server is not the one the NURL names (SPKI pin mismatch): never trust it.
    Identity,
    /// The server answered wrongly: 5xx, a broken TLS handshake, a response that violates the
    /// protocol or is too large.
    Server,
    /// The server answered correctly and said no (401, 404, 405, 409, …): about this request
    /// and the server's state, not the server's health.
    Refused,
    /// Our request was bad (400, 406, 413, 415, 416, or refused before sending).
    Client,
}

/// Why a request failed: whose fault, and the driver's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub fault: Fault,
    pub message: String,
}

impl Failure {
    pub fn new(fault: Fault, message: impl Into<String>) -> Failure {
        Failure {
            fault,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a server did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// A request failed; the fault decides how much it counts against the server.
    Failed(Fault),
    /// The share's data or hashes failed verification (advise the server: corrupt share).
    Corrupt,
    /// No answer by the request's deadline; the machine went elsewhere.
    Stall,
    /// The share now holds another version than expected (a writer got in between): not
    /// the server's fault.
    Changed,
    /// The share is laid out in a way this client does not predict (not corrupt, not the
    /// server's fault).
    Unsupported,
}

impl ProblemKind {
    /// Whether the problem counts against the server's health at all.
    pub fn is_servers_fault(self) -> bool {
        match self {
            ProblemKind::Failed(f) => !matches!(f, Fault::Refused | Fault::Client),
            ProblemKind::Corrupt | ProblemKind::Stall => true,
            ProblemKind::Changed | ProblemKind::Unsupported => false,
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::Failed(_) => "error",
            ProblemKind::Corrupt => "corrupt share",
            ProblemKind::Stall => "stalled",
            ProblemKind::Changed => "share changed",
            ProblemKind::Unsupported => "unsupported share",
        })
    }
}

/// A server that misbehaved (or a share of it that could not be used), for health scoring
/// and for the operation's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub server: ServerIndex,
    /// The share concerned, when the request was about one share.
    pub shnum: Option<ShareNum>,
    pub kind: ProblemKind,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server {}", self.server.0)?;
        if let Some(sh) = self.shnum {
            write!(f, " share {sh}")?;
        }
        write!(f, ": {}: {}", self.kind, self.reason)
    }
}

/// A server that failed, and why (the driver's description of the error), as the machines
/// keep it for their outcomes and messages. `during` says what was being done: the mutable
/// machines say it in a word (`"query"`, `"read"`, `"write"`), the upload with its own
/// request kind ([`crate::client::upload::Request`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFailure<D = &'static str> {
    pub server: ServerIndex,
    /// The share the failed request was about, if it was about one share.
    pub shnum: Option<ShareNum>,
    pub during: D,
    pub reason: String,
}

impl<D: fmt::Display> fmt::Display for ServerFailure<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server {} failed during {}", self.server.0, self.during)?;
        if let Some(sh) = self.shnum {
            write!(f, " (share {sh})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Local work a machine hands to its driver ([`Action::Work`]).
pub trait Job {
    /// What carrying it out gives back ([`Event::Worked`]).
    type Done;
}

/// A job that holds everything it needs, so the core itself can carry it out (hashing
/// blocks, decoding a segment): a driver or a test just calls [`RunJob::run`], on
/// whatever thread it likes. A job that needs what only the driver has (a signing key,
/// fresh randomness) is a [`Job`] alone, and the driver's executor carries it out.
pub trait RunJob: Job {
    fn run(self) -> Self::Done;
}

impl Job for Infallible {
    type Done = Infallible;
}

impl RunJob for Infallible {
    fn run(self) -> Infallible {
        match self {}
    }
}

/// What happened: the input of [`Machine::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<Response, Done = Infallible> {
    /// Request `id` was answered.
    Answer { id: RequestId, response: Response },
    /// Request `id` failed (error, refusal, lost connection).
    Failed { id: RequestId, failure: Failure },
    /// A job ([`Action::Work`]) finished.
    Worked(Done),
    /// Time passed (see [`Machine::next_deadline`]).
    Tick,
}

impl<R, D> Event<R, D> {
    pub fn is_tick(&self) -> bool {
        matches!(self, Event::Tick)
    }

    /// The request this event answers or fails, if any (the driver stops tracking it).
    pub fn request(&self) -> Option<RequestId> {
        match self {
            Event::Answer { id, .. } | Event::Failed { id, .. } => Some(*id),
            Event::Worked(_) | Event::Tick => None,
        }
    }
}

/// What the driver must do: the output of [`Machine::start`] and [`Machine::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<Request, Output = Infallible, Outcome = (), J = Infallible> {
    /// Send `request` to `server`; answer with [`Event::Answer`] or [`Event::Failed`]
    /// carrying the same `id`.
    Send {
        id: RequestId,
        server: ServerIndex,
        request: Request,
    },
    /// The answer to request `id` is no longer wanted: abort it if possible.
    Cancel { id: RequestId },
    /// Score a server down (for [`ProblemKind::Corrupt`], advise it of the corrupt share).
    Report(Problem),
    /// Run this job anywhere (a worker thread) and return its result as [`Event::Worked`].
    Work(J),
    /// Data produced along the way.
    Output(Output),
    /// The machine is done; nothing more will be asked. Always the last action.
    Finish(Outcome),
}

/// The event type of machine `M`.
pub type EventOf<M> = Event<<M as Machine>::Response, <<M as Machine>::Job as Job>::Done>;

/// The action type of machine `M`.
pub type ActionOf<M> = Action<
    <M as Machine>::Request,
    <M as Machine>::Output,
    <M as Machine>::Outcome,
    <M as Machine>::Job,
>;

/// Bytes of a file at `offset` (the output of the machines that read files); outputs come
/// in file order, without gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u64,
    pub data: Vec<u8>,
}

/// A protocol machine: events and the time in, actions out; never re-entered.
pub trait Machine {
    /// What is sent to a server.
    type Request;
    /// What a server answers.
    type Response;
    /// Data produced along the way ([`Infallible`] when none).
    type Output;
    /// What [`Action::Finish`] carries.
    type Outcome;
    /// Local work for a worker ([`Infallible`] when none).
    type Job: Job;
    /// The driver broke the protocol with the machine (a driver bug, never a server's).
    type Error: fmt::Display;

    /// The first actions.
    fn start(&mut self, now: Millis) -> Vec<ActionOf<Self>>;
    /// One event; the actions it leads to.
    fn handle(
        &mut self,
        event: EventOf<Self>,
        now: Millis,
    ) -> Result<Vec<ActionOf<Self>>, Self::Error>;
    /// When the machine wants a tick even if nothing else happens.
    fn next_deadline(&self) -> Option<Millis>;
}

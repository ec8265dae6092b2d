//! The one simulated executor: runs any of the core's protocol machines
//! ([`cairn_core::client::machine::Machine`]) against simulated servers, on one thread, with
//! virtual time and seeded faults, so a failing schedule replays exactly from its seed.
//!
//! The pieces, each independent of which machine runs:
//!
//! * [`Wiring`]: one machine on the simulated network (its actions as requests to servers,
//!   the answers as its events); every `Wiring` is a [`Client`], the object-safe face the
//!   loop drives.
//! * [`Servers`]: how the simulated servers answer a request that reaches them (the test's
//!   server model: honest, lying or corrupting, tearing a write).
//! * [`Net`]: the event queue (requests and answers in flight, jobs the machine handed out)
//!   ordered by virtual time, the seeded generator every draw of a schedule comes from, the
//!   per-operation [`Mood`] of each server (healthy, slow, flaky, down, stalled, lying) and
//!   the [`Fate`] of each request (answered, answered twice, lost before or after the server
//!   acted, remote error, stalled before or after acting, answered or delivered after every
//!   timeout, torn). [`Net::run_op`] runs one machine to its end: ticks at
//!   `next_deadline()` when that comes before the next message, a bounded number of steps
//!   (a livelock fails with the seed instead of hanging).
//! * [`run_schedule`] / [`run_many`]: one seeded schedule or many on a few threads, any
//!   failure or panic turned into an error naming the seed, the command that replays it and
//!   the end of the schedule's trace; [`seeds`] reads `SIM_SEED` (replay one) and
//!   `SIM_SCHEDULES` (how many); [`random_fault_schedules`] is every simulation's
//!   random-fault test on top of them (run the seeds, print the counts, check coverage).
//!
//! The machine-specific server models and invariants live in each simulation's test file.

use std::any::Any;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};

use cairn_core::client::machine::{ActionOf, Event, EventOf, Machine, Millis, RequestId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::stepping::bounded;

pub mod chk;

/// A server as the simulation addresses it: the machines' own [`ServerIndex`].
pub type ServerId = cairn_core::client::machine::ServerIndex;

/// How a server behaves during one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mood {
    Healthy,
    /// Answers, slowly, within every timeout.
    Slow,
    /// Picks a [`Fate`] per request.
    Flaky,
    /// Vanished: every request fails before reaching it.
    Down,
    /// Never answers.
    Stalled,
    /// Answers on time, but the [`Servers`] model may alter what it answers.
    Lying,
}

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Normal,
    /// The answer arrives twice.
    Duplicate,
    /// The connection drops before the server saw the request.
    LostBefore,
    /// The server answers with an error, without acting.
    Error,
    /// The server acted; the connection drops before the answer.
    LostAfter,
    /// The server never sees the request, nobody answers.
    StallBefore,
    /// The server acted, nobody answers.
    StallAfter,
    /// The answer arrives after every timeout.
    Late,
    /// The request itself reaches the server after every timeout (then answered).
    SlowRequest,
    /// A write lands in part, then the connection drops (at most once per operation).
    Torn,
}

impl Fate {
    pub fn name(self) -> &'static str {
        match self {
            Fate::Normal => "normal",
            Fate::Duplicate => "answered twice",
            Fate::LostBefore => "lost before the server",
            Fate::Error => "remote error",
            Fate::LostAfter => "lost after the server acted",
            Fate::StallBefore => "stalled",
            Fate::StallAfter => "stalled after acting",
            Fate::Late => "answered after the timeout",
            Fate::Torn => "torn write",
            Fate::SlowRequest => "request arrived after the timeout",
        }
    }
}

/// One request a machine sends.
#[derive(Debug)]
pub struct Out<Q> {
    pub id: RequestId,
    pub server: ServerId,
    pub req: Q,
}

/// One machine on the simulated network: its actions as requests to send, and the answers
/// to them as its events. Every `Wiring` is a [`Client`].
pub trait Wiring {
    type M: Machine;
    type Req;
    type Resp;
    /// The machine's name, in the errors it reports.
    const NAME: &'static str;

    fn machine(&mut self) -> &mut Self::M;
    fn machine_ref(&self) -> &Self::M;
    /// The requests to send for `actions`; work the machine hands out (a verify or decode
    /// job) goes to `local` as the event of its result; everything else is taken in.
    fn outs(
        &mut self,
        actions: Vec<ActionOf<Self::M>>,
        local: &mut Vec<EventOf<Self::M>>,
    ) -> Vec<Out<Self::Req>>;
    /// The event of the answer (or failure) `reply` to request `id`.
    fn event(&mut self, id: RequestId, reply: Result<Self::Resp, String>) -> EventOf<Self::M>;
    /// Whether the machine has finished: its `Finish` action came (the loop stops feeding
    /// it).
    fn done(&self) -> bool;
}

/// The result of work a machine handed out, on its way back to it (machines differ in
/// their event types, and one [`Net`] runs them one after another).
pub type LocalEvent = Box<dyn Any>;

/// What the loop needs of a machine on the network (object safe, so one loop runs any).
pub trait Client {
    type Req;
    type Resp;
    fn start(
        &mut self,
        now: Millis,
        local: &mut Vec<LocalEvent>,
    ) -> Result<Vec<Out<Self::Req>>, String>;
    fn reply(
        &mut self,
        id: RequestId,
        reply: Result<Self::Resp, String>,
        now: Millis,
        local: &mut Vec<LocalEvent>,
    ) -> Result<Vec<Out<Self::Req>>, String>;
    fn local(
        &mut self,
        event: LocalEvent,
        now: Millis,
        local: &mut Vec<LocalEvent>,
    ) -> Result<Vec<Out<Self::Req>>, String>;
    fn tick(
        &mut self,
        now: Millis,
        local: &mut Vec<LocalEvent>,
    ) -> Result<Vec<Out<Self::Req>>, String>;
    fn deadline(&self) -> Option<Millis>;
    fn done(&self) -> bool;
}

fn outs<W: Wiring>(
    w: &mut W,
    actions: Vec<ActionOf<W::M>>,
    local: &mut Vec<LocalEvent>,
) -> Vec<Out<W::Req>>
where
    EventOf<W::M>: 'static,
{
    let mut events = Vec::new();
    let outs = w.outs(actions, &mut events);
    local.extend(events.into_iter().map(|e| Box::new(e) as LocalEvent));
    outs
}

fn handle<W: Wiring>(
    w: &mut W,
    event: EventOf<W::M>,
    now: Millis,
    local: &mut Vec<LocalEvent>,
) -> Result<Vec<Out<W::Req>>, String>
where
    EventOf<W::M>: 'static,
{
    let a = w
        .machine()
        .handle(event, now)
        .map_err(|e| format!("{} machine: {e}", W::NAME))?;
    Ok(outs(w, a, local))
}

impl<W: Wiring> Client for W
where
    EventOf<W::M>: 'static,
{
    type Req = W::Req;
    type Resp = W::Resp;

    fn start(
        &mut self,
        now: Millis,
        local: &mut Vec<LocalEvent>,
    ) -> Result<Vec<Out<W::Req>>, String> {
        let a = self.machine().start(now);
        Ok(outs(self, a, local))
    }

    fn reply(
        &mut self,
        id: RequestId,
        reply: Result<W::Resp, String>,
        now: Millis,
        local: &mut Vec<LocalEvent>,
    ) -> Result<Vec<Out<W::Req>>, String> {
        let event = self.event(id, reply);
        handle(self, event, now, local)
    }

    fn local(
        &mut self,
        event: LocalEvent,
        now: Millis,
        local: &mut Vec<LocalEvent>,
    ) -> Result<Vec<Out<W::Req>>, String> {
        let event = event
            .downcast::<EventOf<W::M>>()
            .map_err(|_| format!("{}: a job result of another machine", W::NAME))?;
        handle(self, *event, now, local)
    }

    fn tick(
        &mut self,
        now: Millis,
        local: &mut Vec<LocalEvent>,
    ) -> Result<Vec<Out<W::Req>>, String> {
        handle(self, Event::Tick, now, local)
    }

    fn deadline(&self) -> Option<Millis> {
        self.machine_ref().next_deadline()
    }

    fn done(&self) -> bool {
        Wiring::done(self)
    }
}

/// A request reaching a server, as the [`Servers`] model sees it.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    pub server: ServerId,
    /// The operation that sent it.
    pub op: u64,
    /// That operation is over (the request landed late, maybe during a later one).
    pub op_over: bool,
    pub fate: Fate,
    pub mood: Mood,
    pub now: Millis,
}

/// The simulated servers: how one answers a request that reaches it.
pub trait Servers<Q> {
    type Resp: Clone;
    /// Whether `req` changes what the server holds (only such requests stall after acting
    /// or tear).
    fn is_write(&self, req: &Q) -> bool;
    /// `req` reaches `d.server` and the server acts on it (its fate is one where the server
    /// acts: `Normal`, `Duplicate`, `SlowRequest`, `Late`, `LostAfter`, `StallAfter`,
    /// `Torn`); the answer, or the error the server answers with. The network then
    /// delivers, duplicates or drops the answer as the fate says.
    fn serve(&mut self, d: Delivery, req: Q, rng: &mut ChaCha8Rng) -> Result<Self::Resp, String>;
}

/// How often each fault happens; the defaults are those of the mutable simulation.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Faults at all (off: every server healthy, every request normal).
    pub on: bool,
    /// The chance a server is not healthy during an operation.
    pub rate: f64,
    /// What an unhealthy server is, drawn uniformly (repeat one to weigh it).
    pub moods: Vec<Mood>,
    /// The delay of an answer (or a request) "after the timeout": beyond every machine's.
    pub late: Millis,
    /// A stalled request fails this long after it reached (or would have reached) the
    /// server, as the driver's transport gives up on it; `None`: it never ends (machines
    /// that time out every request themselves).
    pub transport_timeout: Option<Millis>,
}

impl Faults {
    pub fn none() -> Faults {
        Faults {
            on: false,
            rate: 0.0,
            moods: Vec::new(),
            late: 100_000,
            transport_timeout: None,
        }
    }

    pub fn with_rate(rate: f64) -> Faults {
        Faults {
            on: true,
            rate,
            moods: vec![
                Mood::Slow,
                Mood::Flaky,
                Mood::Flaky,
                Mood::Down,
                Mood::Stalled,
            ],
            late: 100_000,
            transport_timeout: None,
        }
    }
}

enum Msg<Q, R> {
    ToServer {
        op: u64,
        id: RequestId,
        server: ServerId,
        req: Q,
        fate: Fate,
    },
    ToClient {
        op: u64,
        id: RequestId,
        reply: Result<R, String>,
    },
    /// The result of work the machine handed out.
    Local { op: u64, event: LocalEvent },
}

/// The simulated network and clock of one schedule. `rng` is the schedule's one generator:
/// the test draws its own choices from it too, so the seed decides everything.
pub struct Net<Q, R> {
    pub rng: ChaCha8Rng,
    pub faults: Faults,
    pub now: Millis,
    /// Requests still travelling when their operation ends land during later ones
    /// (otherwise before the next operation starts).
    pub cross_op_late: bool,
    /// Steps one operation may take before it counts as a livelock.
    pub max_steps: usize,
    pub moods: BTreeMap<ServerId, Mood>,
    /// The current operation (counted from 1) and whether its machine still runs.
    pub op: u64,
    pub op_open: bool,
    /// How many requests met each fate.
    pub fates: BTreeMap<&'static str, u64>,
    torn_this_op: usize,
    seq: u64,
    queue: BTreeMap<(Millis, u64), Msg<Q, R>>,
}

impl<Q, R: Clone> Net<Q, R> {
    /// A network over `servers` (all healthy), drawing from `rng`.
    pub fn new(
        rng: ChaCha8Rng,
        servers: impl IntoIterator<Item = ServerId>,
        faults: Faults,
    ) -> Self {
        Net {
            rng,
            faults,
            now: 0,
            cross_op_late: false,
            max_steps: 100_000,
            moods: servers.into_iter().map(|s| (s, Mood::Healthy)).collect(),
            op: 0,
            op_open: false,
            fates: BTreeMap::new(),
            torn_this_op: 0,
            seq: 0,
            queue: BTreeMap::new(),
        }
    }

    /// Draw each server's mood for the next operation, in `order`.
    pub fn roll_moods(&mut self, order: &[ServerId]) {
        for s in order {
            let mood = if !self.faults.on || !self.rng.gen_bool(self.faults.rate) {
                Mood::Healthy
            } else {
                self.faults.moods[self.rng.gen_range(0..self.faults.moods.len())]
            };
            self.moods.insert(*s, mood);
        }
    }

    /// The unhealthy servers, for a trace.
    pub fn moods_note(&self) -> String {
        let bad: Vec<String> = self
            .moods
            .iter()
            .filter(|(_, m)| **m != Mood::Healthy)
            .map(|(s, m)| format!("{}:{m:?}", s.0))
            .collect();
        if bad.is_empty() {
            "all healthy".into()
        } else {
            bad.join(" ")
        }
    }

    /// Healthy, slow or lying: answers every request within the timeouts.
    pub fn answers(&self, server: ServerId) -> bool {
        matches!(
            self.moods[&server],
            Mood::Healthy | Mood::Slow | Mood::Lying
        )
    }

    fn fate(&mut self, server: ServerId, write: bool) -> Fate {
        if !self.faults.on {
            return Fate::Normal;
        }
        match self.moods[&server] {
            Mood::Healthy | Mood::Slow | Mood::Lying => {
                if self.rng.gen_bool(0.08) {
                    Fate::Duplicate
                } else {
                    Fate::Normal
                }
            }
            Mood::Down => Fate::LostBefore,
            Mood::Stalled => {
                if write && self.rng.gen_bool(0.5) {
                    Fate::StallAfter
                } else {
                    Fate::StallBefore
                }
            }
            Mood::Flaky => match self.rng.gen_range(0..100) {
                0..25 => Fate::Normal,
                25..30 => Fate::SlowRequest,
                30..40 => Fate::Duplicate,
                40..50 => Fate::LostBefore,
                50..58 => Fate::Error,
                58..66 => Fate::LostAfter,
                66..72 => Fate::StallBefore,
                72..78 => Fate::StallAfter,
                78..88 => Fate::Late,
                _ if write && self.torn_this_op == 0 => {
                    self.torn_this_op += 1;
                    Fate::Torn
                }
                _ => Fate::LostAfter,
            },
        }
    }

    fn leg_delay(&mut self, server: ServerId) -> Millis {
        match self.moods[&server] {
            Mood::Slow => self.rng.gen_range(1000..4500),
            Mood::Flaky => self.rng.gen_range(1..2000),
            _ => self.rng.gen_range(1..200),
        }
    }

    fn push(&mut self, at: Millis, msg: Msg<Q, R>) {
        self.seq += 1;
        self.queue.insert((at, self.seq), msg);
    }

    fn send_all<S: Servers<Q, Resp = R>>(&mut self, servers: &S, outs: Vec<Out<Q>>) {
        for Out { id, server, req } in outs {
            let fate = self.fate(server, servers.is_write(&req));
            *self.fates.entry(fate.name()).or_default() += 1;
            let d = if fate == Fate::SlowRequest {
                self.faults.late
            } else {
                self.leg_delay(server)
            };
            let msg = Msg::ToServer {
                op: self.op,
                id,
                server,
                req,
                fate,
            };
            self.push(self.now + d, msg);
        }
    }

    /// Jobs run "anywhere": their results come back in a few milliseconds, in any order
    /// with the answers in flight.
    fn queue_local(&mut self, local: &mut Vec<LocalEvent>) {
        for event in local.drain(..) {
            let d = self.rng.gen_range(0..3);
            let msg = Msg::Local { op: self.op, event };
            self.push(self.now + d, msg);
        }
    }

    /// A request reaches its server.
    fn at_server<S: Servers<Q, Resp = R>>(
        &mut self,
        servers: &mut S,
        op: u64,
        id: RequestId,
        server: ServerId,
        req: Q,
        fate: Fate,
    ) {
        match fate {
            Fate::LostBefore => {
                let d = self.leg_delay(server);
                let reply = Err("connection lost".into());
                return self.push(self.now + d, Msg::ToClient { op, id, reply });
            }
            Fate::Error => {
                let d = self.leg_delay(server);
                let reply = Err("remote error".into());
                return self.push(self.now + d, Msg::ToClient { op, id, reply });
            }
            Fate::StallBefore => return self.transport_gives_up(op, id),
            _ => {}
        }
        let now = self.now;
        let delivery = Delivery {
            server,
            op,
            op_over: op != self.op || !self.op_open,
            fate,
            mood: self.moods[&server],
            now,
        };
        let resp = servers.serve(delivery, req, &mut self.rng);
        match fate {
            Fate::Normal | Fate::SlowRequest => {
                let d = self.leg_delay(server);
                self.push(
                    now + d,
                    Msg::ToClient {
                        op,
                        id,
                        reply: resp,
                    },
                );
            }
            Fate::Duplicate => {
                let d1 = self.leg_delay(server);
                let d2 = self.leg_delay(server);
                let first = resp.clone();
                self.push(
                    now + d1,
                    Msg::ToClient {
                        op,
                        id,
                        reply: first,
                    },
                );
                self.push(
                    now + d1 + d2,
                    Msg::ToClient {
                        op,
                        id,
                        reply: resp,
                    },
                );
            }
            Fate::Late => {
                let at = now + self.faults.late;
                self.push(
                    at,
                    Msg::ToClient {
                        op,
                        id,
                        reply: resp,
                    },
                );
            }
            Fate::LostAfter | Fate::Torn => {
                let d = self.leg_delay(server);
                let reply = Err("connection lost after the request".into());
                self.push(now + d, Msg::ToClient { op, id, reply });
            }
            Fate::StallAfter => self.transport_gives_up(op, id),
            Fate::LostBefore | Fate::Error | Fate::StallBefore => unreachable!(),
        }
    }

    fn transport_gives_up(&mut self, op: u64, id: RequestId) {
        if let Some(t) = self.faults.transport_timeout {
            let reply = Err("timed out".into());
            self.push(self.now + t, Msg::ToClient { op, id, reply });
        }
    }

    /// One step of the operation in progress: fire the machine's timer, or deliver the
    /// next message in flight.
    fn step_op<S, C>(&mut self, servers: &mut S, client: &mut C) -> Result<(), String>
    where
        S: Servers<Q, Resp = R>,
        C: Client<Req = Q, Resp = R> + ?Sized,
    {
        let mut local = Vec::new();
        let next = self.queue.keys().next().map(|k| k.0);
        match (next, client.deadline()) {
            (None, None) => {
                return Err(format!(
                    "operation {}: machine not done, nothing in flight, no deadline",
                    self.op
                ))
            }
            (t, Some(d)) if t.is_none_or(|t| d <= t) => {
                self.now = self.now.max(d);
                let outs = client.tick(self.now, &mut local)?;
                self.send_all(servers, outs);
            }
            _ => {
                let ((t, _), msg) = self.queue.pop_first().expect("a message is due");
                self.now = self.now.max(t);
                match msg {
                    Msg::ToServer {
                        op,
                        id,
                        server,
                        req,
                        fate,
                    } => self.at_server(servers, op, id, server, req, fate),
                    Msg::ToClient { op, id, reply } => {
                        if op == self.op {
                            let outs = client.reply(id, reply, self.now, &mut local)?;
                            self.send_all(servers, outs);
                        }
                    }
                    Msg::Local { op, event } => {
                        if op == self.op {
                            let outs = client.local(event, self.now, &mut local)?;
                            self.send_all(servers, outs);
                        }
                    }
                }
            }
        }
        self.queue_local(&mut local);
        Ok(())
    }

    /// Run one machine to its end against `servers`. Afterwards its answers go nowhere;
    /// its requests still travelling land now or (with `cross_op_late`) during later
    /// operations.
    pub fn run_op<S, C>(&mut self, servers: &mut S, client: &mut C) -> Result<(), String>
    where
        S: Servers<Q, Resp = R>,
        C: Client<Req = Q, Resp = R> + ?Sized,
    {
        self.op += 1;
        self.op_open = true;
        self.torn_this_op = 0;
        let mut local = Vec::new();
        let outs = client.start(self.now, &mut local)?;
        self.send_all(servers, outs);
        self.queue_local(&mut local);
        let outcome = bounded(self.max_steps, || {
            if client.done() {
                return ControlFlow::Break(Ok(()));
            }
            match self.step_op(servers, client) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(Err(e)),
            }
        });
        match outcome {
            Some(r) => r?,
            None if client.done() => {}
            None => return Err(format!("operation {} did not finish (livelock)", self.op)),
        }
        self.op_open = false;
        let op = self.op;
        self.queue.retain(|_, m| match m {
            Msg::ToClient { op: o, .. } | Msg::Local { op: o, .. } => *o != op,
            Msg::ToServer { .. } => true,
        });
        if !self.cross_op_late {
            let pending: Vec<(Millis, u64)> = self.queue.keys().copied().collect();
            for key in pending {
                let msg = self.queue.remove(&key).expect("listed above");
                if let Msg::ToServer {
                    op,
                    id,
                    server,
                    req,
                    fate,
                } = msg
                {
                    self.now = self.now.max(key.0);
                    self.at_server(servers, op, id, server, req, fate);
                }
            }
            self.queue.clear();
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Seeds

/// The generator of the schedule `seed` (ChaCha8, as every schedule uses).
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Counts a simulation sums over its schedules.
pub trait Tally: Default + Send {
    fn add(&mut self, other: &Self);
    /// The counts a large random-fault run must have made non-zero, each named (the faults
    /// and outcomes the simulation's invariants are about): checked by
    /// [`random_fault_schedules`]. None by default.
    fn coverage(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// One seeded schedule of a simulation.
pub trait Schedule {
    type Stats: Tally;
    /// The whole schedule; a broken invariant is an `Err` saying which and how.
    fn run(&mut self) -> Result<(), String>;
    /// What happened, one line per step, for the failure report.
    fn trace(&self) -> &[String];
    fn stats(self) -> Self::Stats;
}

/// Where a simulation's test lives, for the replay command in its failures.
#[derive(Clone, Copy, Debug)]
pub struct Replay<'a> {
    /// The test target (`--test` name) in `cairn-core`.
    pub target: &'a str,
    /// The test function.
    pub test: &'a str,
}

/// Lines of a failing schedule's trace printed with the failure (`SIM_TRACE_LINES`
/// changes it).
const TRACE_TAIL: usize = 40;

/// Run one schedule; a broken invariant, a livelock or a panic becomes an error naming
/// the seed and the command that replays it.
pub fn run_schedule<S: Schedule>(
    seed: u64,
    replay: Replay<'_>,
    make: impl FnOnce(u64) -> S,
) -> Result<S::Stats, String> {
    let mut sim = None;
    let r = catch_unwind(AssertUnwindSafe(|| {
        let s = sim.insert(make(seed));
        s.run()
    }));
    let (err, log) = match (r, sim) {
        (Ok(Ok(())), Some(s)) => return Ok(s.stats()),
        (Ok(Err(e)), Some(s)) => (e, s.trace().to_vec()),
        (Err(p), s) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            (
                format!("panic: {msg}"),
                s.map(|s| s.trace().to_vec()).unwrap_or_default(),
            )
        }
        (Ok(_), None) => unreachable!("the schedule ran"),
    };
    let lines = env_u64("SIM_TRACE_LINES").map_or(TRACE_TAIL, |n| n as usize);
    let tail = &log[log.len().saturating_sub(lines)..];
    Err(format!(
        "schedule seed {seed} failed: {err}\n  replay: {}\n  trace (newest last):\n    {}",
        replay_command(seed, replay),
        tail.join("\n    ")
    ))
}

/// The command that replays `seed`.
pub fn replay_command(seed: u64, replay: Replay<'_>) -> String {
    format!(
        "SIM_SEED={seed} cargo test -p cairn-core --test {} -- {}",
        replay.target, replay.test
    )
}

/// Run `seeds` on a few threads; the summed counts, or the failure of the lowest failing
/// seed.
pub fn run_many<S: Schedule>(
    seeds: Vec<u64>,
    replay: Replay<'_>,
    make: impl Fn(u64) -> S + Sync,
) -> Result<S::Stats, String> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
        .min(seeds.len().max(1));
    let make = &make;
    let results: Vec<Result<S::Stats, (u64, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<u64> = seeds.iter().copied().skip(t).step_by(threads).collect();
                scope.spawn(move || {
                    let mut total = S::Stats::default();
                    for seed in mine {
                        match run_schedule(seed, replay, make) {
                            Ok(s) => total.add(&s),
                            Err(e) => return Err((seed, e)),
                        }
                    }
                    Ok(total)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a schedule's panic is caught"))
            .collect()
    });
    let mut total = S::Stats::default();
    let mut failures: Vec<(u64, String)> = Vec::new();
    for r in results {
        match r {
            Ok(s) => total.add(&s),
            Err(f) => failures.push(f),
        }
    }
    failures.sort();
    match failures.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(total),
    }
}

/// A `u64` from the environment; a value that is not one fails loudly.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a u64"))
    })
}

/// The seeds to run: `SIM_SEED` alone (a replay: `true`), or `0..SIM_SCHEDULES`
/// (default `default`).
pub fn seeds(default: u64) -> (Vec<u64>, bool) {
    match env_u64("SIM_SEED") {
        Some(seed) => (vec![seed], true),
        None => (
            (0..env_u64("SIM_SCHEDULES").unwrap_or(default)).collect(),
            false,
        ),
    }
}

/// Schedules a random-fault run needs before its coverage is checked: a smaller run (or a
/// replay of one seed) may well miss a rare fault.
pub const COVERAGE_MIN: usize = 500;

/// A simulation's random-fault test: the seeds of [`seeds`] (`SIM_SEED` replays one,
/// `SIM_SCHEDULES` sets how many, default `default`) run by [`run_many`]; a failing schedule
/// panics with its seed, the command that replays it and the end of its trace. Prints how
/// many schedules ran, how long they took and the summed counts. Unless it replayed one seed
/// or ran fewer than [`COVERAGE_MIN`] schedules, every count of [`Tally::coverage`] must be
/// non-zero: the faults and outcomes the invariants are about did happen. Returns the
/// summed counts.
pub fn random_fault_schedules<S: Schedule>(
    default: u64,
    replay: Replay<'_>,
    make: impl Fn(u64) -> S + Sync,
) -> S::Stats
where
    S::Stats: std::fmt::Debug,
{
    let started = std::time::Instant::now();
    let (seeds, replayed) = seeds(default);
    let n = seeds.len();
    let stats = run_many(seeds, replay, make).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{n} schedules in {:.1} s: {stats:#?}",
        started.elapsed().as_secs_f64()
    );
    if replayed || n < COVERAGE_MIN {
        return stats;
    }
    for (what, count) in stats.coverage() {
        assert!(count > 0, "no {what} in {n} schedules: {stats:#?}");
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::client::machine::{Action, ServerIndex};
    use std::convert::Infallible;

    /// A machine that asks each of `servers` once and finishes when all answered or failed,
    /// retrying nothing; with `spin`, it never finishes (a livelock).
    struct Ask {
        servers: Vec<ServerId>,
        open: BTreeMap<RequestId, ServerId>,
        answers: Vec<(ServerId, u32)>,
        failed: Vec<ServerId>,
        spin: bool,
    }

    type AskAction = Action<(), Infallible, ()>;

    impl Ask {
        fn finish(&self) -> Vec<AskAction> {
            if self.open.is_empty() && !self.spin {
                vec![Action::Finish(())]
            } else {
                Vec::new()
            }
        }
    }

    impl Machine for Ask {
        type Request = ();
        type Response = u32;
        type Output = Infallible;
        type Outcome = ();
        type Job = Infallible;
        type Error = String;
        fn start(&mut self, _now: Millis) -> Vec<AskAction> {
            self.servers
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    self.open.insert(i as u64, *s);
                    Action::Send {
                        id: i as u64,
                        server: *s,
                        request: (),
                    }
                })
                .collect()
        }
        fn handle(&mut self, e: Event<u32>, now: Millis) -> Result<Vec<AskAction>, String> {
            match e {
                Event::Answer { id, response } => {
                    if let Some(s) = self.open.remove(&id) {
                        self.answers.push((s, response));
                    }
                }
                Event::Failed { id, .. } => {
                    if let Some(s) = self.open.remove(&id) {
                        self.failed.push(s);
                    }
                }
                Event::Tick => {
                    // Everything still open after the timeout failed.
                    if now >= 10_000 {
                        self.failed
                            .extend(std::mem::take(&mut self.open).into_values());
                    }
                }
                Event::Worked(never) => match never {},
            }
            Ok(self.finish())
        }
        fn next_deadline(&self) -> Option<Millis> {
            if self.spin {
                return Some(1);
            }
            (!self.open.is_empty()).then_some(10_000)
        }
    }

    struct AskWiring(Ask, bool);

    impl Wiring for AskWiring {
        type M = Ask;
        type Req = ();
        type Resp = u32;
        const NAME: &'static str = "ask";
        fn machine(&mut self) -> &mut Ask {
            &mut self.0
        }
        fn machine_ref(&self) -> &Ask {
            &self.0
        }
        fn outs(&mut self, actions: Vec<AskAction>, _: &mut Vec<Event<u32>>) -> Vec<Out<()>> {
            let mut outs = Vec::new();
            for a in actions {
                match a {
                    Action::Send { id, server, .. } => outs.push(Out {
                        id,
                        server,
                        req: (),
                    }),
                    Action::Finish(()) => self.1 = true,
                    Action::Cancel { .. } | Action::Report(_) => {}
                    Action::Work(never) | Action::Output(never) => match never {},
                }
            }
            outs
        }
        fn event(&mut self, id: RequestId, reply: Result<u32, String>) -> Event<u32> {
            match reply {
                Ok(response) => Event::Answer { id, response },
                Err(e) => Event::Failed {
                    id,
                    failure: cairn_core::client::machine::Failure::new(
                        cairn_core::client::machine::Fault::Network,
                        e,
                    ),
                },
            }
        }
        fn done(&self) -> bool {
            self.1
        }
    }

    /// Answers its own number; counts the requests that reached it.
    #[derive(Default)]
    struct Echo {
        served: BTreeMap<ServerId, u32>,
    }

    impl Servers<()> for Echo {
        type Resp = u32;
        fn is_write(&self, _: &()) -> bool {
            false
        }
        fn serve(&mut self, d: Delivery, _: (), _: &mut ChaCha8Rng) -> Result<u32, String> {
            *self.served.entry(d.server).or_default() += 1;
            Ok(d.server.0)
        }
    }

    fn ask(spin: bool) -> AskWiring {
        AskWiring(
            Ask {
                servers: (0..8).map(ServerIndex).collect(),
                open: BTreeMap::new(),
                answers: Vec::new(),
                failed: Vec::new(),
                spin,
            },
            false,
        )
    }

    fn run(seed: u64, faults: Faults) -> (AskWiring, Echo, Result<(), String>, Millis) {
        let mut net: Net<(), u32> = Net::new(rng(seed), (0..8).map(ServerIndex), faults);
        net.roll_moods(&(0..8).map(ServerIndex).collect::<Vec<_>>());
        let mut w = ask(false);
        let mut echo = Echo::default();
        let r = net.run_op(&mut echo, &mut w);
        (w, echo, r, net.now)
    }

    #[test]
    fn healthy_servers_answer_and_time_is_virtual() {
        let (w, echo, r, now) = run(1, Faults::none());
        r.unwrap();
        assert_eq!(w.0.answers.len(), 8);
        assert!(w.0.answers.iter().all(|(s, v)| s.0 == *v));
        assert_eq!(echo.served.len(), 8);
        // Every leg is under 200 ms of virtual time.
        assert!(now < 400, "{now}");
    }

    #[test]
    fn stalled_servers_end_by_the_machines_deadline() {
        let mut faults = Faults::with_rate(1.0);
        faults.moods = vec![Mood::Stalled];
        let (w, echo, r, now) = run(2, faults);
        r.unwrap();
        assert_eq!(w.0.failed.len(), 8);
        assert!(echo.served.is_empty());
        assert_eq!(now, 10_000);
    }

    #[test]
    fn same_seed_same_schedule() {
        let faults = Faults::with_rate(0.5);
        let (a, _, _, ta) = run(7, faults.clone());
        let (b, _, _, tb) = run(7, faults);
        assert_eq!((a.0.answers, a.0.failed, ta), (b.0.answers, b.0.failed, tb));
    }

    #[test]
    fn a_livelock_fails_instead_of_hanging() {
        let mut net: Net<(), u32> = Net::new(rng(3), (0..8).map(ServerIndex), Faults::none());
        net.max_steps = 1000;
        let mut w = ask(true);
        let e = net.run_op(&mut Echo::default(), &mut w).unwrap_err();
        assert!(e.contains("livelock"), "{e}");
    }

    #[derive(Default, Debug)]
    struct Count(u64);
    impl Tally for Count {
        fn add(&mut self, o: &Self) {
            self.0 += o.0;
        }
    }
    struct Sched(u64, Vec<String>);
    impl Schedule for Sched {
        type Stats = Count;
        fn run(&mut self) -> Result<(), String> {
            self.1.push(format!("schedule {}", self.0));
            if self.0 % 5 == 3 {
                return Err("three".into());
            }
            assert!(self.0 != 9, "nine");
            Ok(())
        }
        fn trace(&self) -> &[String] {
            &self.1
        }
        fn stats(self) -> Count {
            Count(1)
        }
    }

    #[test]
    fn failures_name_the_seed_and_the_replay_command() {
        let replay = Replay {
            target: "t",
            test: "f",
        };
        let ok = run_many((0..3).collect(), replay, |s| Sched(s, Vec::new())).unwrap();
        assert_eq!(ok.0, 3);
        let e = run_many((0..20).collect(), replay, |s| Sched(s, Vec::new())).unwrap_err();
        assert!(e.starts_with("schedule seed 3 failed: three"), "{e}");
        assert!(
            e.contains("SIM_SEED=3 cargo test -p cairn-core --test t -- f"),
            "{e}"
        );
        assert!(e.contains("schedule 3"), "{e}");
        let e = run_schedule(9, replay, |s| Sched(s, Vec::new())).unwrap_err();
        assert!(e.contains("panic: nine") && e.contains("SIM_SEED=9"), "{e}");
    }
}

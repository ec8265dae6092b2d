//! The one driver loop for the core's protocol machines ([`Machine`]): a task per request,
//! a channel that brings each answer or failure back as the machine's [`Event`],
//! cancellation, ticks at the machine's deadlines, and health scoring of servers from the
//! machine's own [`Problem`] reports (the machine says when a request stalled or failed and
//! whose fault it was; the driver never guesses). What a request, a job or an output means
//! is the [`Executor`]'s; the loop is the same for every machine, so each new machine
//! (repair, directories) needs only its executor.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use cairn_core::client::machine::{
    Action, Event, EventOf, Failure, Job, Machine, Millis, Problem, ProblemKind, RequestId,
    ServerIndex,
};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::grid::ServerEntry;

/// A machine reported that the driver broke the protocol with it (a bug, not a server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineBroken(pub String);

/// Carries out what is particular to one machine: its requests, jobs and output.
pub trait Executor<M: Machine> {
    /// What a finished run gives.
    type Done;
    type Error: From<MachineBroken>;

    /// Start request `id` to `server`, normally with [`Run::spawn`]; an answer known
    /// without asking ([`Run::answer`]) is fine too.
    fn send(&mut self, id: RequestId, server: ServerIndex, request: M::Request, run: &mut Run<M>);

    /// Start a job ([`Run::spawn_work`] or [`Run::worked`]).
    fn work(&mut self, job: M::Job, run: &mut Run<M>);

    /// Take output; `Some` ends the run early with that result.
    fn output(
        &mut self,
        output: M::Output,
    ) -> impl Future<Output = Result<Option<Self::Done>, Self::Error>> + Send;

    /// The server a machine's index names, for health scoring (`None`: not a server of
    /// this run, nothing is scored).
    fn server(&self, server: ServerIndex) -> Option<&ServerEntry>;

    /// Anything beyond scoring that a report calls for (advising a server of a corrupt
    /// share).
    fn reported(&mut self, _problem: &Problem) {}

    /// The machine finished with `outcome`.
    fn finish(&mut self, outcome: M::Outcome) -> Result<Self::Done, Self::Error>;
}

/// Run `machine` to its [`Action::Finish`] with `executor`.
pub async fn drive<M, X>(machine: &mut M, executor: &mut X) -> Result<X::Done, X::Error>
where
    M: Machine,
    M::Response: Send + 'static,
    <M::Job as Job>::Done: Send + 'static,
    X: Executor<M>,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut run = Run {
        start: Instant::now(),
        tx,
        tasks: HashMap::new(),
    };
    let mut actions = machine.start(run.now());
    loop {
        for a in std::mem::take(&mut actions) {
            match a {
                Action::Send {
                    id,
                    server,
                    request,
                } => executor.send(id, server, request, &mut run),
                Action::Cancel { id } => run.cancel(id),
                Action::Report(p) => {
                    if let Some(entry) = executor.server(p.server) {
                        score(entry, &p);
                    }
                    executor.reported(&p);
                }
                Action::Work(job) => executor.work(job, &mut run),
                Action::Output(out) => {
                    if let Some(done) = executor.output(out).await? {
                        return Ok(done);
                    }
                }
                Action::Finish(outcome) => return executor.finish(outcome),
            }
        }
        let wake = run.wake(machine.next_deadline());
        let ev = tokio::select! {
            biased;
            // `None` cannot happen (the run holds a sender); a tick is harmless.
            ev = rx.recv() => ev.unwrap_or(Event::Tick),
            _ = tokio::time::sleep_until(wake) => Event::Tick,
        };
        if let Some(id) = ev.request() {
            run.tasks.remove(&id);
        }
        actions = machine
            .handle(ev, run.now())
            .map_err(|e| MachineBroken(e.to_string()))?;
    }
}

/// Health scoring from a machine's report: the one place a problem becomes a score.
fn score(entry: &ServerEntry, p: &Problem) {
    let reason = match (p.kind, p.shnum) {
        (ProblemKind::Corrupt, Some(sh)) => format!("share {sh}: {}", p.reason),
        _ => p.reason.clone(),
    };
    entry.report(p.kind, reason);
}

/// One run's requests in flight and its clock, lent to the executor.
pub struct Run<M: Machine> {
    start: Instant,
    tx: mpsc::UnboundedSender<EventOf<M>>,
    tasks: HashMap<RequestId, AbortHandle>,
}

impl<M> Run<M>
where
    M: Machine,
    M::Response: Send + 'static,
    <M::Job as Job>::Done: Send + 'static,
{
    /// Request `id`: `request` runs as its own task and its answer or failure comes back
    /// to the machine.
    pub fn spawn(
        &mut self,
        id: RequestId,
        request: impl Future<Output = Result<M::Response, Failure>> + Send + 'static,
    ) {
        let tx = self.tx.clone();
        let h = tokio::spawn(async move {
            let ev = match request.await {
                Ok(response) => Event::Answer { id, response },
                Err(failure) => Event::Failed { id, failure },
            };
            let _ = tx.send(ev);
        });
        self.tasks.insert(id, h.abort_handle());
    }

    /// The answer to request `id` is already at hand: the machine gets it next.
    pub fn answer(&self, id: RequestId, response: M::Response) {
        let _ = self.tx.send(Event::Answer { id, response });
    }

    /// A job on the driver's side (CPU work on a blocking thread): it runs to the end, not
    /// cancellable, and its result, if any, comes back to the machine.
    pub fn spawn_work(
        &self,
        work: impl Future<Output = Option<<M::Job as Job>::Done>> + Send + 'static,
    ) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            if let Some(done) = work.await {
                let _ = tx.send(Event::Worked(done));
            }
        });
    }

    /// A job's result already at hand (a job small enough to run inline).
    pub fn worked(&self, done: <M::Job as Job>::Done) {
        let _ = self.tx.send(Event::Worked(done));
    }
}

impl<M: Machine> Run<M> {
    /// Abort request `id` (if it is still running).
    pub fn cancel(&mut self, id: RequestId) {
        if let Some(h) = self.tasks.remove(&id) {
            h.abort();
        }
    }

    /// Milliseconds since the run started.
    fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }

    /// When to wake for a tick: the machine's next deadline, at most a second away.
    fn wake(&self, deadline: Option<Millis>) -> Instant {
        let fallback = Instant::now() + Duration::from_secs(1);
        deadline.map_or(fallback, |d| {
            (self.start + Duration::from_millis(d)).min(fallback)
        })
    }
}

impl<M: Machine> Drop for Run<M> {
    fn drop(&mut self) {
        for (_, h) in self.tasks.drain() {
            h.abort();
        }
    }
}

//! The one driver loop for the core's protocol machines ([`Machine`]): a task per request,
//! a channel that brings each answer back as the machine's event, cancellation, and ticks
//! at the machine's deadlines. What an action means (which request to send, what to do
//! with output, how to score a server) is the [`Executor`]'s; the loop is the same for
//! every machine, so each new machine (repair, directories) needs only its executor.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use cairn_core::client::machine::legacy::{Machine, MachineEvent};
use cairn_core::client::machine::{Millis, RequestId};
use cairn_core::client::mutable::ServerIdx;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// A machine reported that the driver broke the protocol with it (a bug, not a server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineBroken(pub String);

/// Carries out one machine's actions.
pub trait Executor<M: Machine> {
    /// What a finished run gives.
    type Done;
    type Error: From<MachineBroken>;

    /// Carry out one action; `Some` ends the run with that result.
    fn execute(
        &mut self,
        action: M::Action,
        run: &mut Run<M::Event>,
    ) -> impl Future<Output = Result<Option<Self::Done>, Self::Error>> + Send;

    /// The result of a machine that finished without an action that ended the run.
    fn finished(&mut self, machine: &M) -> Result<Self::Done, Self::Error>;
}

/// Run `machine` to the end with `executor`.
pub async fn drive<M, X>(machine: &mut M, executor: &mut X) -> Result<X::Done, X::Error>
where
    M: Machine,
    M::Event: Send + 'static,
    X: Executor<M>,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut run = Run {
        start: Instant::now(),
        tx,
        tasks: HashMap::new(),
        ticked: false,
    };
    let mut actions = machine.start(run.now());
    loop {
        for a in std::mem::take(&mut actions) {
            if let Some(done) = executor.execute(a, &mut run).await? {
                return Ok(done);
            }
        }
        if machine.is_done() {
            return executor.finished(machine);
        }
        let wake = run.wake(machine.next_deadline());
        let ev = tokio::select! {
            biased;
            // `None` cannot happen (the run holds a sender); a tick is harmless.
            ev = rx.recv() => ev.unwrap_or_else(M::Event::tick),
            _ = tokio::time::sleep_until(wake) => M::Event::tick(),
        };
        run.ticked = ev.is_tick();
        if let Some(id) = ev.request() {
            run.tasks.remove(&id);
        }
        actions = machine
            .handle(ev, run.now())
            .map_err(|e| MachineBroken(e.to_string()))?;
    }
}

/// One run's requests in flight and its clock, lent to the executor.
pub struct Run<E> {
    start: Instant,
    tx: mpsc::UnboundedSender<E>,
    tasks: HashMap<RequestId, (AbortHandle, ServerIdx)>,
    ticked: bool,
}

impl<E: Send + 'static> Run<E> {
    /// Send request `id` to `server`: `request` runs as its own task and its event comes
    /// back to the machine.
    pub fn spawn(
        &mut self,
        id: RequestId,
        server: ServerIdx,
        request: impl Future<Output = E> + Send + 'static,
    ) {
        let tx = self.tx.clone();
        let h = tokio::spawn(async move {
            let _ = tx.send(request.await);
        });
        self.tasks.insert(id, (h.abort_handle(), server));
    }

    /// Work that is not a request to a server (CPU work on a blocking thread): it runs to
    /// the end, not cancellable, and its event, if any, comes back to the machine.
    pub fn spawn_detached(&self, work: impl Future<Output = Option<E>> + Send + 'static) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            if let Some(ev) = work.await {
                let _ = tx.send(ev);
            }
        });
    }

    /// An event known without asking anyone (data already at hand): the machine gets it next.
    pub fn deliver(&self, event: E) {
        let _ = self.tx.send(event);
    }

    /// Abort request `id`. Returns its server when the request was still running and the
    /// machine cancelled it on a tick, i.e. for a deadline it missed (a stall).
    pub fn cancel(&mut self, id: RequestId) -> Option<ServerIdx> {
        let (h, server) = self.tasks.remove(&id)?;
        h.abort();
        self.ticked.then_some(server)
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

impl<E> Drop for Run<E> {
    fn drop(&mut self) {
        for (_, (h, _)) in self.tasks.drain() {
            h.abort();
        }
    }
}

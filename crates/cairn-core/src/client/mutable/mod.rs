//! Mutable files (SDMF and MDMF) on the grid: the servermap update and publish protocols
//! as explicit state machines (Tahoe-LAFS 1.20 `mutable/servermap.py::ServermapUpdater`,
//! `mutable/publish.py::Publish`; compat map §4.5-4.6).
//!
//! Both machines follow the style of [`crate::client::upload`] and
//! [`crate::client::download`]: the driver calls `start(now)` once, then
//! `handle(event, now)` with each answer, failure or timer tick (`now` in milliseconds from
//! any fixed origin), and carries out the actions returned. One task owns a machine and
//! never re-enters it, so an answer that arrives while the driver is still sending the
//! previous batch (a failure reported synchronously by the send call) is simply the next
//! event: the machine already counts every request of the batch as in flight.
//!
//! - [`servermap`]: ask servers in permuted order what they hold and build a [`ServerMap`]
//!   (which version of which share is where, who failed and why, which versions are
//!   recoverable), with Tahoe's stopping rules for writing, reading and checking.
//! - [`publish`]: given a [`ServerMap`] from a write-mode update and the new version's
//!   header, decide where each share goes and send one test-and-write per server; lose
//!   servers without confusing a disconnect with a concurrent writer.
//!
//! Every request in flight is tracked by (server, share) and each is sent at most once:
//! a servermap query per server, a follow-up read per (server, share, purpose), a write
//! per (server, share) for the new version.

pub mod publish;
pub mod retrieve;
pub mod servermap;

pub use crate::client::machine::{Problem, ProblemKind, ServerFailure};
pub use crate::ids::{ServerIndex, ShareNum};
pub use publish::{PublishConfig, PublishError, PublishMachine, PublishOutcome, WriteTest};
pub use retrieve::{RetrieveConfig, RetrieveError, RetrieveKeys, RetrieveMachine, RetrieveOutcome};
pub use servermap::{Mode, ServerMap, ServermapUpdater, UpdateConfig, VersionId};

pub use crate::client::machine::{Millis, RequestId};

/// The driver broke the protocol with a machine (a bug in the driver, not a server).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    /// (A second answer to a request, or one after it timed out, is ignored instead.)
    #[error("answer for request {0}, which was never sent")]
    UnknownRequest(RequestId),
}

/// A request a machine sent: when, for [`Inflight`]'s timeouts.
pub(crate) trait SentAt {
    fn sent_at(&self) -> Millis;
}

/// The requests a machine has in flight, and those it is done with (answered, cancelled
/// or timed out), whose late answers are ignored. Shared by the three machines.
#[derive(Debug)]
pub(crate) struct Inflight<R> {
    live: std::collections::BTreeMap<RequestId, R>,
    retired: std::collections::BTreeSet<RequestId>,
}

impl<R> Default for Inflight<R> {
    fn default() -> Self {
        Inflight {
            live: Default::default(),
            retired: Default::default(),
        }
    }
}

impl<R: SentAt> Inflight<R> {
    pub(crate) fn insert(&mut self, id: RequestId, r: R) {
        self.live.insert(id, r);
    }

    /// An answer arrived: the request, `None` for a late answer to one already retired,
    /// an error for an id never sent.
    pub(crate) fn take(&mut self, id: RequestId) -> Result<Option<R>, MachineError> {
        if let Some(r) = self.retire(id) {
            return Ok(Some(r));
        }
        if self.retired.contains(&id) {
            return Ok(None);
        }
        Err(MachineError::UnknownRequest(id))
    }

    /// Stop waiting for `id` (cancelled or timed out); its answer will be ignored.
    pub(crate) fn retire(&mut self, id: RequestId) -> Option<R> {
        let r = self.live.remove(&id)?;
        self.retired.insert(id);
        Some(r)
    }

    /// Retire every request for which `pred` holds; their ids, in order.
    pub(crate) fn retire_where(&mut self, pred: impl Fn(&R) -> bool) -> Vec<RequestId> {
        let ids: Vec<RequestId> = self
            .live
            .iter()
            .filter(|(_, r)| pred(r))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.retire(*id);
        }
        ids
    }

    /// Requests with no answer `timeout` ms after they were sent (not retired).
    pub(crate) fn overdue(&self, now: Millis, timeout: Millis) -> Vec<RequestId> {
        self.live
            .iter()
            .filter(|(_, r)| now.saturating_sub(r.sent_at()) >= timeout)
            .map(|(id, _)| *id)
            .collect()
    }

    /// When the earliest live request times out.
    pub(crate) fn next_deadline(&self, timeout: Millis) -> Option<Millis> {
        self.live
            .values()
            .map(|r| r.sent_at().saturating_add(timeout))
            .min()
    }

    pub(crate) fn get(&self, id: RequestId) -> Option<&R> {
        self.live.get(&id)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &R> {
        self.live.values()
    }

    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

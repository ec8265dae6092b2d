//! Reading a version: [`retrieve_into`] runs the core's [`RetrieveMachine`] over a range
//! of the best recoverable version into a sink; [`retrieve_request`] sends one read, or
//! answers it at once from the servermap's first read of the share.

use std::collections::BTreeSet;
use std::ops::Range;

use cairn_core::client::machine::{Chunk, Problem, ProblemKind, ServerIndex};
use cairn_core::client::mutable::retrieve::{
    Read as RetRead, RetrieveError, RetrieveKeys, RetrieveMachine, RetrieveOutcome,
};
use cairn_core::client::mutable::servermap::ServerMap;
use cairn_core::client::mutable::RequestId;
use cairn_core::mutable::keys::ReaderKeys;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::ctx::{not_a_server, Ctx, Kind, Reply};
use super::servermap::{setup_error, unrecoverable};
use super::{clamp_epsilon, retrieve_config, MutableError};
use crate::driver::{drive, Executor, Run};
use crate::grid::ServerEntry;

/// Read `range` (`None`: all) of the best recoverable version of `map` into `sink`.
pub(super) async fn retrieve_into(
    ctx: &Ctx,
    keys: &ReaderKeys,
    map: &ServerMap,
    range: Option<Range<u64>>,
    sink: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<RetrieveOutcome, MutableError> {
    let best = map
        .best_recoverable_version()
        .ok_or_else(|| unrecoverable(ctx, map))?;
    let eps = clamp_epsilon(ctx.opts.epsilon, ctx.grid.servers().len(), best.k);
    let mut m = RetrieveMachine::new(
        retrieve_config(&ctx.opts, eps),
        map,
        RetrieveKeys {
            readkey: *keys.readkey(),
            fingerprint: keys.fingerprint(),
        },
        range,
    )
    .map_err(|e| setup_error(ctx, map, e))?;
    run_retrieve(ctx, &mut m, sink).await
}

pub(super) async fn run_retrieve(
    ctx: &Ctx,
    m: &mut RetrieveMachine,
    sink: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<RetrieveOutcome, MutableError> {
    let r = drive(
        m,
        &mut RetrieveRun {
            ctx,
            sink: &mut *sink,
        },
    )
    .await;
    if r.is_ok() {
        sink.flush().await?;
    }
    r
}

/// Carries out a retrieve's reads and writes its output to the sink.
struct RetrieveRun<'a, 's> {
    ctx: &'a Ctx,
    sink: &'s mut (dyn AsyncWrite + Unpin + Send),
}

impl Executor<RetrieveMachine> for RetrieveRun<'_, '_> {
    type Done = RetrieveOutcome;
    type Error = MutableError;

    fn send(
        &mut self,
        id: RequestId,
        server: ServerIndex,
        request: RetRead,
        run: &mut Run<RetrieveMachine>,
    ) {
        match retrieve_request(self.ctx, server, request) {
            Ok(data) => run.answer(id, data),
            Err(reply) => run.spawn(id, reply),
        }
    }

    fn work(&mut self, job: std::convert::Infallible, _: &mut Run<RetrieveMachine>) {
        match job {}
    }

    async fn output(&mut self, out: Chunk) -> Result<Option<RetrieveOutcome>, MutableError> {
        self.sink.write_all(&out.data).await?;
        Ok(None)
    }

    fn server(&self, server: ServerIndex) -> Option<&ServerEntry> {
        self.ctx.server(server)
    }

    fn reported(&mut self, p: &Problem) {
        if let (ProblemKind::Corrupt, Some(sh)) = (p.kind, p.shnum) {
            self.ctx.advise_corrupt(p.server, sh, &p.reason);
        }
    }

    fn finish(
        &mut self,
        r: Result<RetrieveOutcome, RetrieveError>,
    ) -> Result<RetrieveOutcome, MutableError> {
        let ctx = self.ctx;
        r.map_err(|e| match e {
            RetrieveError::NotEnoughShares {
                seqnum,
                k,
                usable,
                problems,
            } => MutableError::NotEnoughServers {
                what: "reading (good shares of the chosen version)",
                tried: problems
                    .iter()
                    .map(|p| p.server)
                    .collect::<BTreeSet<_>>()
                    .len(),
                needed: usize::from(k),
                got: usable,
                reasons: problems
                    .iter()
                    .map(|p| format!("seqnum {seqnum}: {}: {p}", ctx.name(p.server)))
                    .collect(),
            },
            other => MutableError::Unrecoverable(other.to_string()),
        })
    }
}

/// Send one retrieve read to `server`: `Ok` with the bytes at once when the servermap's
/// first read of the share already holds them, else the read. The retrieve's executor and
/// a composite's both send it.
pub(super) fn retrieve_request(
    ctx: &Ctx,
    server: ServerIndex,
    request: RetRead,
) -> Result<Vec<u8>, Reply<Vec<u8>>> {
    let Some(server) = ctx.grid_index(server) else {
        return Err(Box::pin(async move { Err(not_a_server(server)) }));
    };
    let RetRead {
        shnum, offset, len, ..
    } = request;
    if let Some(data) = ctx.first_reads.get(server, shnum, offset, len) {
        // The servermap's first read of this share already holds it.
        return Ok(data);
    }
    let t = ctx.task(server);
    Err(Box::pin(async move {
        t.count(Kind::Read);
        t.read(shnum, offset, len).await
    }))
}

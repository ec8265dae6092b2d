//! After a publish collided with another writer: [`recover_after_collision`] runs the
//! core's [`CollisionRecovery`] (a check-mode servermap, then perhaps a read-back and a
//! republish), sending its requests with the servermap, retrieve and publish code and
//! encoding the republished version itself.

use std::sync::{Arc, Mutex};

use cairn_core::client::compose::collision::{
    self, CollisionRecovery, Encode, RecoveryConfig, Request as RecRequest, Response as RecResponse,
};
use cairn_core::client::machine::{Problem, ProblemKind, ServerIndex};
use cairn_core::client::mutable::retrieve::RetrieveKeys;
use cairn_core::client::mutable::servermap::{Mode, UpdateConfig};
use cairn_core::client::mutable::RequestId;
use cairn_core::mutable::keys::{SigningKey, WriterKeys};

use super::ctx::{millis, Ctx};
use super::publish::{encode_shares, publish_request, NewVersion, Payload};
use super::retrieve::retrieve_request;
use super::servermap::servermap_request;
use super::{retrieve_config, MutableError, MutableFormat};
use crate::driver::{drive, Executor, Run};
use crate::grid::ServerEntry;

/// After a collision: make sure some complete version is recoverable. The core's
/// [`CollisionRecovery`] decides (a check-mode servermap, then perhaps a read-back and a
/// republish); this runs it. Its outcome goes into the error message.
pub(super) async fn recover_after_collision(
    ctx: &Ctx,
    keys: &WriterKeys,
    privkey: &SigningKey,
    format: MutableFormat,
    our_data: Option<Vec<u8>>,
) -> collision::Outcome {
    let opts = &ctx.opts;
    let fingerprint = keys.reader().fingerprint();
    let mut update = UpdateConfig::new(Mode::Check, opts.k, opts.n.max(opts.k), fingerprint);
    update.query_timeout = millis(opts.query_timeout);
    let cfg = RecoveryConfig {
        update,
        retrieve: retrieve_config(opts, opts.epsilon),
        keys: RetrieveKeys {
            readkey: *keys.reader().readkey(),
            fingerprint,
        },
        happy: opts.happy,
        write_timeout: millis(opts.write_timeout),
        format,
        k: opts.k,
        n: opts.n,
    };
    let mut m = CollisionRecovery::new(cfg, &ctx.permuted(), our_data);
    let mut run = RecoveryRun {
        ctx,
        keys,
        privkey,
        payload: Arc::new(Mutex::new(Arc::new(Payload::Whole(Vec::new())))),
    };
    drive(&mut m, &mut run)
        .await
        .unwrap_or_else(|e| collision::Outcome::Interrupted {
            reason: e.to_string(),
        })
}

/// Carries out a collision recovery's requests (with the servermap, retrieve and publish
/// executors' own code) and its encoding.
struct RecoveryRun<'a> {
    ctx: &'a Ctx,
    keys: &'a WriterKeys,
    privkey: &'a SigningKey,
    /// The shares of the version being republished, once encoded (set by the encoding job
    /// before the machine hears it is done, so before any write is sent).
    payload: Arc<Mutex<Arc<Payload>>>,
}

impl Executor<CollisionRecovery> for RecoveryRun<'_> {
    type Done = collision::Outcome;
    type Error = MutableError;

    fn send(
        &mut self,
        id: RequestId,
        server: ServerIndex,
        request: RecRequest,
        run: &mut Run<CollisionRecovery>,
    ) {
        let ctx = self.ctx;
        match request {
            RecRequest::Check(r) => {
                let reply = servermap_request(ctx, server, r);
                run.spawn(id, async move { reply.await.map(RecResponse::Check) });
            }
            RecRequest::Read(r) => match retrieve_request(ctx, server, r) {
                Ok(data) => run.answer(id, RecResponse::Read(data)),
                Err(reply) => run.spawn(id, async move { reply.await.map(RecResponse::Read) }),
            },
            RecRequest::Publish(w) => {
                let payload = lock(&self.payload).clone();
                let reply = publish_request(ctx, self.keys, &payload, server, w);
                run.spawn(id, async move { reply.await.map(RecResponse::Publish) });
            }
        }
    }

    fn work(&mut self, job: Encode, run: &mut Run<CollisionRecovery>) {
        let Encode { data, version } = job;
        let v = NewVersion {
            format: version.format,
            k: version.k,
            n: version.n,
            seqnum: version.seqnum,
        };
        let key = self.privkey.clone();
        let max_segment_size = self.ctx.opts.max_segment_size;
        let slot = self.payload.clone();
        run.spawn_work(async move {
            let header = match encode_shares(&key, &v, max_segment_size, data).await {
                Ok((header, shares)) => {
                    *lock(&slot) = Arc::new(Payload::Whole(shares));
                    Ok(header)
                }
                Err(e) => Err(e.to_string()),
            };
            Some(header)
        });
    }

    async fn output(
        &mut self,
        out: std::convert::Infallible,
    ) -> Result<Option<collision::Outcome>, MutableError> {
        match out {}
    }

    fn server(&self, server: ServerIndex) -> Option<&ServerEntry> {
        self.ctx.server(server)
    }

    fn reported(&mut self, p: &Problem) {
        // shares the check found bad, as the servermap update's own executor tells them
        if let (ProblemKind::Corrupt, Some(sh)) = (p.kind, p.shnum) {
            self.ctx.advise_corrupt(p.server, sh, &p.reason);
        }
    }

    fn finish(&mut self, o: collision::Outcome) -> Result<collision::Outcome, MutableError> {
        Ok(o)
    }
}

/// The payload slot, whoever held it last (a panic elsewhere leaves the value usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

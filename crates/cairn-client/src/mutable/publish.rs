//! Publishing a version: [`publish_version`] encodes and signs new shares and writes them
//! whole; [`publish_payload`] runs the core's [`PublishMachine`] over whole shares or an
//! in-place update's writes and turns its outcome into [`Published`] (a collision goes to
//! [`recover_after_collision`]); [`retain_privkey`] keeps a share copy on the node's own
//! server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use cairn_core::client::machine::{ProblemKind, ServerIndex};
use cairn_core::client::mutable::publish::{
    self, PublishConfig, PublishError, PublishMachine, PublishOutcome, Write, WriteTest, Written,
};
use cairn_core::client::mutable::servermap::ServerMap;
use cairn_core::client::mutable::RequestId;
use cairn_core::mutable::codec::{encode, Encoding};
use cairn_core::mutable::keys::{SigningKey, WriterKeys};
use cairn_core::mutable::params::SegmentParams;
use cairn_core::mutable::SALT_LEN;
use rand::rngs::OsRng;
use rand::RngCore;

use super::caps::caps;
use super::collision::recover_after_collision;
use super::ctx::{millis, not_a_server, Ctx, Reply};
use super::{internal, MutableError, MutableFormat, MutableOptions, Published};
use crate::driver::{drive, Executor, Run};
use crate::grid::ServerEntry;

/// The version a publish writes.
pub(super) struct NewVersion {
    pub(super) format: MutableFormat,
    pub(super) k: u8,
    pub(super) n: u8,
    pub(super) seqnum: u64,
}

/// The version an overwrite writes: the file's own k and N (as Tahoe keeps them), the next
/// sequence number.
pub(super) fn next_version(
    map: &ServerMap,
    format: MutableFormat,
    opts: &MutableOptions,
) -> NewVersion {
    let (k, n) = map
        .best_recoverable_version()
        .or_else(|| map.shares().values().max().cloned())
        .map_or((opts.k, opts.n), |v| (v.k, v.n));
    NewVersion {
        format,
        k,
        n,
        seqnum: map.highest_seqnum() + 1,
    }
}

/// Encode and sign on a blocking thread: fresh salts (or IV) from the OS RNG.
pub(super) async fn encode_shares(
    key: &SigningKey,
    v: &NewVersion,
    max_segment_size: u64,
    data: Vec<u8>,
) -> Result<(cairn_core::mutable::ShareHeader, Vec<Vec<u8>>), MutableError> {
    let mut encoding = Encoding::new(v.format, v.k, v.n, v.seqnum);
    encoding.max_segment_size = max_segment_size;
    let key = key.clone();
    tokio::task::spawn_blocking(move || {
        let params = SegmentParams::for_publish_with_max(
            encoding.format,
            encoding.k,
            encoding.n,
            data.len() as u64,
            encoding.max_segment_size,
        )
        .map_err(internal)?;
        let mut salts = vec![[0u8; SALT_LEN]; params.num_salts()];
        for s in &mut salts {
            OsRng.fill_bytes(s);
        }
        let shares = encode(&encoding, &key, &data, &salts, &mut OsRng).map_err(internal)?;
        let header = shares
            .first()
            .map(|s| s.header.clone())
            .ok_or_else(|| internal("encoder produced no shares"))?;
        let bytes = shares
            .iter()
            .map(|s| s.to_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        Ok((header, bytes))
    })
    .await
    .map_err(internal)?
}

pub(super) async fn publish_version(
    ctx: &Ctx,
    keys: &WriterKeys,
    privkey: &SigningKey,
    v: NewVersion,
    map: &ServerMap,
    data: Vec<u8>,
) -> Result<Published, MutableError> {
    if ctx.grid.servers().is_empty() {
        return Err(MutableError::NotEnoughServers {
            what: "publishing",
            tried: 0,
            needed: ctx.opts.happy,
            got: 0,
            reasons: vec!["no storage servers are configured".into()],
        });
    }
    let (header, shares) =
        encode_shares(privkey, &v, ctx.opts.max_segment_size, data.clone()).await?;
    let payload = Payload::Whole(shares);
    publish_payload(ctx, keys, privkey, &header, map, payload, Some(data)).await
}

/// What a publish writes into each share.
pub(super) enum Payload {
    /// Whole shares by share number, each written at offset 0.
    Whole(Vec<Vec<u8>>),
    /// An in-place MDMF update: each share's writes, valid only over a share holding the
    /// version with checkstring `old` (the writer refuses any other placement).
    InPlace {
        old: Vec<u8>,
        writes: Vec<cairn_core::mutable::update::WriteVector>,
    },
}

/// Run a publish of `header`'s version and turn its outcome into the operation's result.
/// `data` (the whole new plaintext, when the caller has it) is what a collision recovery
/// republishes if no version is left recoverable.
pub(super) async fn publish_payload(
    ctx: &Ctx,
    keys: &WriterKeys,
    privkey: &SigningKey,
    header: &cairn_core::mutable::ShareHeader,
    map: &ServerMap,
    payload: Payload,
    data: Option<Vec<u8>>,
) -> Result<Published, MutableError> {
    let servers = ctx.permuted();
    let format = header.format;
    let happy = ctx.opts.happy.min(usize::from(header.n)).max(1);
    let mut pcfg = PublishConfig::new(happy);
    pcfg.write_timeout = millis(ctx.opts.write_timeout);
    let mut m = PublishMachine::new(pcfg, map, &servers, header).map_err(|e| match e {
        publish::SetupError::NoServers => MutableError::NotEnoughServers {
            what: "publishing",
            tried: 0,
            needed: happy,
            got: 0,
            reasons: Vec::new(),
        },
        other => internal(other),
    })?;
    let payload = Arc::new(payload);
    let result = run_publish(ctx, keys, &mut m, &payload).await?;
    match result {
        Ok(outcome) => {
            let mut placed: BTreeMap<u8, BTreeSet<usize>> = outcome
                .placed
                .iter()
                .map(|(sh, s)| (sh.0, s.iter().map(|i| i.get()).collect()))
                .collect();
            if let Some(extra) = retain_privkey(ctx, keys, map, &outcome, &payload).await {
                placed.entry(extra.0).or_default().insert(extra.1);
            }
            let (writecap, readcap) = caps(keys, format);
            let (round_trips, _) = ctx.counters.snapshot();
            Ok(Published {
                writecap,
                readcap,
                format,
                seqnum: header.seqnum,
                size: header.data_length,
                happiness: outcome.happiness,
                round_trips,
                written_bytes: ctx.counters.written_bytes.load(Ordering::Relaxed),
                in_place: matches!(*payload, Payload::InPlace { .. }),
                placed,
                problems: outcome
                    .failures
                    .iter()
                    .map(|f| ctx.failure_line(f))
                    .collect(),
            })
        }
        Err(PublishError::NotEnoughServers {
            tried,
            happiness,
            happy,
            homeless,
            failures,
        }) => {
            let mut reasons: Vec<String> = failures.iter().map(|f| ctx.failure_line(f)).collect();
            if !homeless.is_empty() {
                let homeless: Vec<u8> = homeless.iter().map(|sh| sh.0).collect();
                reasons.push(format!("shares {homeless:?} found no server"));
            }
            Err(MutableError::NotEnoughServers {
                what: "publishing (servers of happiness)",
                tried: tried.max(servers.len()),
                needed: happy,
                got: happiness,
                reasons,
            })
        }
        Err(e @ PublishError::UncoordinatedWrite { .. }) => {
            let detail = e.to_string();
            let detail = detail
                .strip_prefix("uncoordinated write: ")
                .unwrap_or(&detail)
                .to_string();
            let note = recover_after_collision(ctx, keys, privkey, format, data).await;
            Err(MutableError::UncoordinatedWrite(format!(
                "{detail}; {note}"
            )))
        }
    }
}

/// Drive one publish machine to its end.
async fn run_publish(
    ctx: &Ctx,
    keys: &WriterKeys,
    m: &mut PublishMachine,
    payload: &Arc<Payload>,
) -> Result<Result<PublishOutcome, PublishError>, MutableError> {
    drive(m, &mut PublishRun { ctx, keys, payload }).await
}

/// Carries out a publish's writes.
struct PublishRun<'a> {
    ctx: &'a Ctx,
    keys: &'a WriterKeys,
    payload: &'a Arc<Payload>,
}

impl Executor<PublishMachine> for PublishRun<'_> {
    type Done = Result<PublishOutcome, PublishError>;
    type Error = MutableError;

    fn send(
        &mut self,
        id: RequestId,
        server: ServerIndex,
        request: Write,
        run: &mut Run<PublishMachine>,
    ) {
        run.spawn(
            id,
            publish_request(self.ctx, self.keys, self.payload, server, request),
        );
    }

    fn work(&mut self, job: std::convert::Infallible, _: &mut Run<PublishMachine>) {
        match job {}
    }

    async fn output(
        &mut self,
        out: std::convert::Infallible,
    ) -> Result<Option<Self::Done>, MutableError> {
        match out {}
    }

    fn server(&self, server: ServerIndex) -> Option<&ServerEntry> {
        self.ctx.server(server)
    }

    fn finish(&mut self, outcome: Self::Done) -> Result<Self::Done, MutableError> {
        Ok(outcome)
    }
}

/// Send one publish write to `server`; the publish's executor and a composite's both send
/// it.
pub(super) fn publish_request(
    ctx: &Ctx,
    keys: &WriterKeys,
    payload: &Arc<Payload>,
    server: ServerIndex,
    request: Write,
) -> Reply<Written> {
    let Some(server) = ctx.grid_index(server) else {
        return Box::pin(async move { Err(not_a_server(server)) });
    };
    let w = ctx.writer(keys, server);
    let payload = payload.clone();
    Box::pin(async move {
        let (wrote, current) = w.write(&request.shares, &payload).await?;
        Ok(Written { wrote, current })
    })
}

/// encrypted private key stays with the writer. Returns (share, server) if it worked.
async fn retain_privkey(
    ctx: &Ctx,
    keys: &WriterKeys,
    map: &ServerMap,
    outcome: &PublishOutcome,
    payload: &Payload,
) -> Option<(u8, usize)> {
    let own = ctx.opts.own_server?;
    // An in-place update rewrites the shares where they are, the own server's included.
    if matches!(payload, Payload::InPlace { .. }) {
        return None;
    }
    let Some(server) = ServerIndex::from_position(own).filter(|_| own < ctx.grid.servers().len())
    else {
        tracing::warn!(own, "own_server is not a server of the grid");
        return None;
    };
    if outcome.placed.values().any(|s| s.contains(&server)) {
        return None;
    }
    if outcome.failures.iter().any(|f| f.server == server) {
        return None;
    }
    // The share with the fewest copies, lowest number first.
    let sh = outcome
        .placed
        .iter()
        .min_by_key(|(sh, s)| (s.len(), **sh))
        .map(|(sh, _)| *sh)?;
    let test = match map.version_on(server, sh) {
        Some(v) => WriteTest::Matches(v.checkstring()),
        None => match map.bad_shares().get(&(server, sh)) {
            Some(b) if !b.checkstring.is_empty() => WriteTest::Matches(b.checkstring.clone()),
            _ => WriteTest::Absent,
        },
    };
    let w = ctx.writer(keys, server);
    let tests = BTreeMap::from([(sh, test)]);
    match tokio::time::timeout(ctx.opts.write_timeout, w.write(&tests, payload)).await {
        Ok(Ok((true, _))) => Some((sh.0, own)),
        Ok(Ok((false, _))) => {
            tracing::warn!(server = %ctx.name(server), sh = sh.0, "own server refused the extra share copy");
            None
        }
        Ok(Err(f)) => {
            tracing::warn!(server = %ctx.name(server), reason = %f, "extra share copy failed");
            w.task.entry.report(ProblemKind::Failed(f.fault), f.message);
            None
        }
        Err(_) => {
            w.task
                .entry
                .report(ProblemKind::Stall, "no answer to the extra share copy");
            None
        }
    }
}

//! The servermap update: which servers hold which versions of the file.
//! [`update_servermap`] runs the core's [`ServermapUpdater`] (its executor sends each
//! query: a share list and a read per share for a reader, one read-test-write for a
//! writer); [`write_servermap`] is a writer's update, which also recovers the private key;
//! and the errors a servermap explains (unrecoverable, too few servers heard).

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_core::client::machine::{Failure, ProblemKind, ServerIndex};
use cairn_core::client::mutable::retrieve::RetrieveSetupError;
use cairn_core::client::mutable::servermap::{
    BadShare, Mode, Read as SmRead, ServerMap, ServermapUpdater, Shares, UpdateConfig,
};
use cairn_core::client::mutable::{RequestId, ShareNum};
use cairn_core::ids::StorageIndex;
use cairn_core::mutable::keys::{SigningKey, WriterKeys};
use cairn_core::storage::gbs::RtwRequest;
use tokio::task::JoinSet;

use super::ctx::{first_read_of_each, millis, not_a_server, Ctx, Kind, Reply, Task, Writer};
use super::{internal, MutableError};
use crate::driver::{drive, Executor, Run};
use crate::grid::ServerEntry;

pub(super) async fn update_servermap(
    ctx: &Ctx,
    cfg: UpdateConfig,
    servers: &[ServerIndex],
) -> Result<ServerMap, MutableError> {
    let mut m = ServermapUpdater::new(cfg, servers).map_err(internal)?;
    let map = drive(&mut m, &mut ServermapRun { ctx }).await?;
    report_bad_shares(ctx, map.bad_shares().values());
    Ok(map)
}

/// Score the holders of shares that failed the servermap's checks and tell them, as
/// Tahoe does.
fn report_bad_shares<'b>(ctx: &Ctx, bad: impl IntoIterator<Item = &'b BadShare>) {
    for b in bad {
        ctx.entry(b.server).report(
            ProblemKind::Corrupt,
            format!("share {}: {}", b.shnum, b.reason),
        );
        ctx.advise_corrupt(b.server, b.shnum, &b.reason);
    }
}

/// Carries out a servermap update's queries and reads.
struct ServermapRun<'a> {
    ctx: &'a Ctx,
}

impl Executor<ServermapUpdater> for ServermapRun<'_> {
    type Done = ServerMap;
    type Error = MutableError;

    fn send(
        &mut self,
        id: RequestId,
        server: ServerIndex,
        request: SmRead,
        run: &mut Run<ServermapUpdater>,
    ) {
        run.spawn(id, servermap_request(self.ctx, server, request));
    }

    fn work(&mut self, job: std::convert::Infallible, _: &mut Run<ServermapUpdater>) {
        match job {}
    }

    async fn output(
        &mut self,
        out: std::convert::Infallible,
    ) -> Result<Option<ServerMap>, MutableError> {
        match out {}
    }

    fn server(&self, server: ServerIndex) -> Option<&ServerEntry> {
        self.ctx.server(server)
    }

    fn finish(&mut self, map: ServerMap) -> Result<ServerMap, MutableError> {
        Ok(map)
    }
}

/// Send one servermap read to `server`.
pub(super) fn servermap_request(ctx: &Ctx, server: ServerIndex, request: SmRead) -> Reply<Shares> {
    let Some(server) = ctx.grid_index(server) else {
        return Box::pin(async move { Err(not_a_server(server)) });
    };
    match request {
        SmRead::Query { len } => match &ctx.write_enablers {
            Some(keys) => Box::pin(query_as_writer(ctx.writer(keys, server), len)),
            None => Box::pin(query(ctx.task(server), len)),
        },
        SmRead::Share { shnum, offset, len } => {
            let t = ctx.task(server);
            Box::pin(async move {
                t.count(Kind::Servermap);
                let data = t.read(shnum, offset, len).await?;
                Ok(BTreeMap::from([(shnum, data)]))
            })
        }
    }
}

/// Tahoe's `slot_readv(si, [], [(0, len)])` over HTTP: list the shares, read each.
async fn query(t: Task, len: u64) -> Result<BTreeMap<ShareNum, Vec<u8>>, Failure> {
    t.count(Kind::Servermap);
    let listed = match t
        .entry
        .client
        .list_mutable_shares(&StorageIndex(t.si))
        .await
    {
        Ok(l) => l,
        Err(e) => return Err(t.failed(&e)),
    };
    let t = Arc::new(t);
    let mut reads = JoinSet::new();
    for sh in listed {
        let t = t.clone();
        reads.spawn(async move {
            t.count(Kind::Servermap);
            let r = t
                .entry
                .client
                .read_mutable(&StorageIndex(t.si), sh, 0, len)
                .await;
            (sh, r)
        });
    }
    let mut shares = BTreeMap::new();
    while let Some(r) = reads.join_next().await {
        let Ok((sh, r)) = r else {
            continue;
        };
        match r {
            Ok(data) => {
                t.first_reads.put(t.server, sh, &data, len);
                shares.insert(sh, data.to_vec());
            }
            // deleted between the list and the read: not there
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(t.failed(&e)),
        }
    }
    t.entry.report_ok();
    Ok(shares)
}

/// A writer's query: one read-test-write with no tests and no writes whose read vector
/// `(0, len)` returns the first bytes of every share the server holds (Tahoe's
/// `slot_testv_and_readv_and_writev` reads all shares and, with nothing to write, changes
/// nothing and touches no lease). One request per server instead of a list and one read
/// per share. The server checks the write enabler against the shares it holds.
async fn query_as_writer(w: Writer, len: u64) -> Result<BTreeMap<ShareNum, Vec<u8>>, Failure> {
    let req = RtwRequest {
        read_vector: vec![cairn_core::storage::gbs::ReadVector {
            offset: 0,
            size: len,
        }],
        ..RtwRequest::default()
    };
    let resp = w.send(Kind::Servermap, &req).await?;
    let shares = first_read_of_each(resp.data);
    for (sh, first) in &shares {
        w.task.first_reads.put(w.task.server, *sh, first, len);
    }
    Ok(shares)
}

/// A write-mode servermap update; the private key it recovered.
pub(super) async fn write_servermap(
    ctx: &Ctx,
    keys: &WriterKeys,
) -> Result<(ServerMap, SigningKey), MutableError> {
    let opts = &ctx.opts;
    let fingerprint = keys.reader().fingerprint();
    let mut cfg = UpdateConfig::new(Mode::Write, opts.k, opts.n.max(opts.k), fingerprint);
    cfg.epsilon = Some(opts.epsilon.max(usize::from(opts.k)));
    cfg.writekey = Some(*keys.writekey());
    cfg.query_timeout = millis(opts.query_timeout);
    let map = update_servermap(ctx, cfg, &ctx.permuted()).await?;
    if map.shares().is_empty() && map.bad_shares().is_empty() {
        if map.reachable_servers().is_empty() && !map.queried().is_empty() {
            return Err(not_heard(ctx, &map, "writing", 1));
        }
        return Err(MutableError::NoSuchFile {
            asked: map.queried().len(),
        });
    }
    let Some(privkey) = map.privkey().cloned() else {
        return Err(MutableError::Unrecoverable(format!(
            "no share yielded the file's private key (the writekey did not decrypt any); {}",
            describe_map(ctx, &map)
        )));
    };
    Ok((map, privkey))
}

fn describe_map(ctx: &Ctx, map: &ServerMap) -> String {
    let mut parts: Vec<String> = map
        .versions()
        .iter()
        .rev()
        .map(|(v, sh)| format!("seqnum {} has {} of {} shares", v.seqnum, sh.len(), v.k))
        .collect();
    if parts.is_empty() {
        parts.push("no good shares".into());
    }
    for ((s, sh), b) in map.bad_shares() {
        parts.push(format!("{} share {sh}: {}", ctx.name(*s), b.reason));
    }
    for f in map.failures() {
        parts.push(ctx.failure_line(f));
    }
    parts.join("; ")
}

pub(super) fn unrecoverable(ctx: &Ctx, map: &ServerMap) -> MutableError {
    MutableError::Unrecoverable(format!(
        "no version has enough shares: {}",
        describe_map(ctx, map)
    ))
}

pub(super) fn not_heard(
    ctx: &Ctx,
    map: &ServerMap,
    what: &'static str,
    needed: usize,
) -> MutableError {
    MutableError::NotEnoughServers {
        what,
        tried: map.queried().len(),
        needed,
        got: map.reachable_servers().len(),
        reasons: map.failures().iter().map(|f| ctx.failure_line(f)).collect(),
    }
}

pub(super) fn setup_error(ctx: &Ctx, map: &ServerMap, e: RetrieveSetupError) -> MutableError {
    match e {
        RetrieveSetupError::NotEnoughServersHeard { needed, .. } => not_heard(
            ctx,
            map,
            "reading (k + epsilon servers must answer)",
            needed,
        ),
        RetrieveSetupError::NoRecoverableVersion { .. } => unrecoverable(ctx, map),
        other => MutableError::Internal(other.to_string()),
    }
}

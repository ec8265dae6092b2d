//! Changing part of a mutable file: [`modify()`] and [`modify_with`] carry out the core's
//! choice ([`cairn_core::client::compose::modify::decide`]): an in-place MDMF update that
//! rewrites only the affected segments, or a whole-file read-modify-write; and the reads
//! each needs (the old plaintext kept around the change, the old shares' headers and hash
//! nodes).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use cairn_core::cap::Cap;
use cairn_core::client::compose::modify::{
    self, after_setback, AfterSetback, How, KeptReads, Setback,
};
use cairn_core::client::machine::ProblemKind;
use cairn_core::client::mutable::servermap::{ServerMap, QUERY_READ_LEN};
use cairn_core::client::mutable::{ServerIndex, ShareNum};
use cairn_core::mutable::keys::{ReaderKeys, SigningKey, WriterKeys};
use cairn_core::mutable::SALT_LEN;
use cairn_core::storage::gbs::RtwRequest;
use rand::rngs::OsRng;
use rand::RngCore;
use tokio::task::JoinSet;

use super::caps::write_keys;
use super::ctx::{Ctx, Kind};
use super::publish::{next_version, publish_payload, publish_version, Payload};
use super::retrieve::retrieve_into;
use super::servermap::{unrecoverable, write_servermap};
use super::{internal, MutableError, MutableFormat, MutableOptions, Published};
use crate::grid::Grid;

/// Replace bytes `[offset, offset + data.len())` of the file (extending it, with zeros
/// between the old end and `offset` if needed).
///
/// An MDMF file of more than one segment, with `offset` inside it, whose newest version is
/// the only one on the grid with every share reachable, is changed in place: only the
/// affected segments, their block-hash-tree nodes, the share hash chain, signature and
/// header are rewritten ([`cairn_core::mutable::update`]). That reads the old plaintext of
/// the first and last affected segment (a ranged retrieve) and, concurrently, the first
/// bytes and the needed hash nodes of every share (one request per server), then sends one
/// write per server. Anything else (SDMF, small files, a hole past the end, other versions
/// or unreachable shares, or an in-place publish that could not reach `happy` servers) is a
/// read-modify-write of the whole file, republished with the next sequence number.
pub async fn modify(
    grid: &Grid,
    writecap: &Cap,
    offset: u64,
    data: &[u8],
    opts: &MutableOptions,
) -> Result<Published, MutableError> {
    modify_with(grid, writecap, offset, data, PastEnd::FillZeros, opts).await
}

/// What [`modify_with`] does with an offset past the end of the file: zeros fill the gap
/// ([`modify()`]), or Tahoe's web API rule (SDMF writes at the end, MDMF refuses with
/// [`MutableError::OffsetPastEnd`]). Decided in the core ([`modify::decide`]).
pub use cairn_core::client::compose::modify::PastEnd;

/// [`modify()`] with a choice of what an offset past the end means; the file's size and
/// format come from the write-mode servermap update the change needs anyway, so there is
/// no separate open. Whether the change is written in place or whole, and what follows an
/// in-place attempt that fell short, is the core's decision
/// ([`cairn_core::client::compose::modify`]).
pub async fn modify_with(
    grid: &Grid,
    writecap: &Cap,
    offset: u64,
    data: &[u8],
    past_end: PastEnd,
    opts: &MutableOptions,
) -> Result<Published, MutableError> {
    let (keys, format) = write_keys(writecap)?;
    let ctx = Ctx::new(grid, Some(&keys), keys.reader(), opts);
    let (map, privkey) = write_servermap(&ctx, &keys).await?;
    let decision = match modify::decide(&map, offset, data.len() as u64, past_end) {
        Ok(d) => d,
        Err(modify::ModifyError::Unrecoverable) => return Err(unrecoverable(&ctx, &map)),
        Err(modify::ModifyError::OffsetPastEnd { offset, size }) => {
            return Err(MutableError::OffsetPastEnd { offset, size })
        }
    };
    let offset = decision.offset;
    let plan = match decision.how {
        How::InPlace(plan) => plan,
        How::Whole(why) => {
            tracing::debug!(
                why = why.describe(),
                "mutable modify: whole-file read-modify-write"
            );
            return modify_whole(&ctx, &keys, &privkey, format, &map, offset, data).await;
        }
    };
    let (setback, err) = match modify_in_place(&ctx, &keys, &privkey, &map, *plan, data).await {
        Ok(r) => return Ok(r),
        Err(e) => e,
    };
    match after_setback(setback) {
        AfterSetback::Fail => Err(err),
        AfterSetback::Whole => {
            tracing::info!(error = %err, "mutable modify: in place not possible; whole-file read-modify-write");
            modify_whole(&ctx, &keys, &privkey, format, &map, offset, data).await
        }
        AfterSetback::RefreshThenWhole => {
            // Some servers took the new version, too few to be happy. A fresh servermap
            // sees which version is now best; if it is ours the change is already in it.
            tracing::warn!(error = %err, "in-place update incomplete; republishing the whole file");
            let (map, privkey) = write_servermap(&ctx, &keys).await?;
            modify_whole(&ctx, &keys, &privkey, format, &map, offset, data).await
        }
    }
}

/// Read the best recoverable version whole, change it, publish it with the next seqnum.
async fn modify_whole(
    ctx: &Ctx,
    keys: &WriterKeys,
    privkey: &SigningKey,
    format: MutableFormat,
    map: &ServerMap,
    offset: u64,
    data: &[u8],
) -> Result<Published, MutableError> {
    let Some(best) = map.best_recoverable_version() else {
        return Err(unrecoverable(ctx, map));
    };
    let end = offset
        .checked_add(data.len() as u64)
        .and_then(|e| usize::try_from(e).ok())
        .ok_or_else(|| MutableError::Internal("offset past the largest file size".into()))?;
    let mut contents = Vec::with_capacity(best.data_length.max(end as u64) as usize);
    retrieve_into(ctx, keys.reader(), map, None, &mut contents).await?;
    if contents.len() < end {
        contents.resize(end, 0);
    }
    contents[offset as usize..end].copy_from_slice(data);
    let version = next_version(map, format, &ctx.opts);
    publish_version(ctx, keys, privkey, version, map, contents).await
}

/// Carry out the in-place MDMF update the core chose ([`modify::InPlace`]). Nothing is
/// written unless every share of the version was read and the update computed. A
/// shortfall comes back as the [`Setback`] the core decides the next step by, with the
/// error to report if that step is to give up.
async fn modify_in_place(
    ctx: &Ctx,
    keys: &WriterKeys,
    privkey: &SigningKey,
    map: &ServerMap,
    chosen: modify::InPlace,
    data: &[u8],
) -> Result<Published, (Setback, MutableError)> {
    use cairn_core::mutable::update;
    let modify::InPlace {
        version: best,
        plan,
        holders,
        seqnum,
    } = chosen;

    // Old plaintext around the change, and the parts of every share the update needs,
    // read concurrently.
    let (old_text, olds) = tokio::join!(
        read_kept_plaintext(ctx, keys.reader(), map, &plan),
        read_old_shares(ctx, keys, &plan, &holders),
    );
    let (head, tail) = old_text.map_err(|e| (Setback::OldPlaintextUnreadable, e))?;
    let olds = olds.map_err(|why| {
        (
            Setback::OldSharesUnreadable,
            internal(format!(
                "in-place update: reading the old shares failed: {why}"
            )),
        )
    })?;
    let seg_plain = plan
        .segment_plaintext(&head, data, &tail)
        .map_err(|e| (Setback::Other, internal(e)))?;
    let key = privkey.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let mut salts = vec![[0u8; SALT_LEN]; plan.num_salts()];
        for s in &mut salts {
            OsRng.fill_bytes(s);
        }
        update::apply(&plan, &olds, &seg_plain, &salts, seqnum, &key, &mut OsRng)
    })
    .await;
    let upd = match computed {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => {
            return Err((
                Setback::NotComputable,
                internal(format!(
                    "the old shares do not allow an in-place update: {e}"
                )),
            ))
        }
        Err(e) => return Err((Setback::Other, internal(e))),
    };
    let mut writes = vec![Vec::new(); usize::from(best.n)];
    for (sh, w) in upd.writes {
        writes[sh.get()] = w;
    }
    let payload = Payload::InPlace {
        old: best.checkstring(),
        writes,
    };
    publish_payload(ctx, keys, privkey, &upd.header, map, payload, None)
        .await
        .map_err(|e| match e {
            e @ MutableError::NotEnoughServers { .. } => (Setback::TooFewServers, e),
            e => (Setback::Other, e),
        })
}

/// The old plaintext an update keeps around the new bytes (`plan.keep_head`,
/// `plan.keep_tail`), read as the core's [`modify::kept_reads`] says: one ranged retrieve
/// when both lie in one segment (or neighbours), else two, concurrently.
async fn read_kept_plaintext(
    ctx: &Ctx,
    keys: &ReaderKeys,
    map: &ServerMap,
    plan: &cairn_core::mutable::update::UpdatePlan,
) -> Result<(Vec<u8>, Vec<u8>), MutableError> {
    match modify::kept_reads(plan) {
        KeptReads::Nothing => Ok((Vec::new(), Vec::new())),
        KeptReads::Head(h) => Ok((read_range(ctx, keys, map, h).await?, Vec::new())),
        KeptReads::Tail(t) => Ok((Vec::new(), read_range(ctx, keys, map, t).await?)),
        KeptReads::Joined {
            range,
            head_len,
            tail_from,
        } => {
            let mut all = read_range(ctx, keys, map, range).await?;
            // read_range returned exactly the range's length, which bounds both offsets.
            let tail = all.split_off(tail_from as usize);
            all.truncate(head_len as usize);
            Ok((all, tail))
        }
        KeptReads::Both { head, tail } => {
            let (a, b) = tokio::join!(
                read_range(ctx, keys, map, head),
                read_range(ctx, keys, map, tail)
            );
            Ok((a?, b?))
        }
    }
}

async fn read_range(
    ctx: &Ctx,
    keys: &ReaderKeys,
    map: &ServerMap,
    range: Range<u64>,
) -> Result<Vec<u8>, MutableError> {
    let want = (range.end - range.start) as usize;
    let mut buf = Vec::with_capacity(want);
    retrieve_into(ctx, keys, map, Some(range), &mut buf).await?;
    if buf.len() != want {
        return Err(internal(format!(
            "a ranged read returned {} bytes, expected {want}",
            buf.len()
        )));
    }
    Ok(buf)
}

/// The first [`QUERY_READ_LEN`] bytes and the span of the old block hash tree the plan
/// needs, of every share: one read-only read-test-write per server holding shares of the
/// version (all its shares share the layout, so one read vector serves them all). A share
/// whose every holder failed makes the whole update fall back to a full publish.
async fn read_old_shares(
    ctx: &Ctx,
    keys: &WriterKeys,
    plan: &cairn_core::mutable::update::UpdatePlan,
    holders: &BTreeMap<ShareNum, BTreeSet<ServerIndex>>,
) -> Result<Vec<cairn_core::mutable::update::OldShare>, String> {
    use cairn_core::mutable::update::OldShare;
    use cairn_core::storage::gbs::ReadVector;
    let reads = plan.block_hash_node_reads();
    let span = match (reads.first(), reads.last()) {
        (Some(f), Some(l)) => (f.0, l.0 + l.1 - f.0),
        _ => (plan.old_block_hash_tree_offset(), 0),
    };
    let servers: BTreeSet<ServerIndex> = holders.values().flatten().copied().collect();
    let mut set = JoinSet::new();
    for server in servers {
        let w = ctx.writer(keys, server);
        let timeout = ctx.opts.query_timeout;
        let req = RtwRequest {
            read_vector: vec![
                ReadVector {
                    offset: 0,
                    size: QUERY_READ_LEN,
                },
                ReadVector {
                    offset: span.0,
                    size: span.1,
                },
            ],
            ..RtwRequest::default()
        };
        set.spawn(async move {
            let r = match tokio::time::timeout(timeout, w.send(Kind::Read, &req)).await {
                Ok(Ok(resp)) => Ok(resp.data),
                Ok(Err(f)) => {
                    w.task
                        .entry
                        .report(ProblemKind::Failed(f.fault), f.message.clone());
                    Err(f.message)
                }
                Err(_) => {
                    w.task
                        .entry
                        .report(ProblemKind::Stall, "no answer to an in-place update read");
                    Err("no answer".to_string())
                }
            };
            (w.task.entry.name(), r)
        });
    }
    let mut out: BTreeMap<ShareNum, OldShare> = BTreeMap::new();
    let mut why = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (name, r) = joined.map_err(|e| e.to_string())?;
        match r {
            Ok(data) => {
                for (sh, parts) in data {
                    if out.contains_key(&sh) || !holders.contains_key(&sh) {
                        continue;
                    }
                    let (head, nodes) = match parts.as_slice() {
                        [h, n] => (h, n),
                        _ => continue,
                    };
                    match OldShare::from_reads(plan, sh, head, span.0, nodes) {
                        Ok(o) => {
                            out.insert(sh, o);
                        }
                        Err(e) => why.push(format!("{name}, share {sh}: {e}")),
                    }
                }
            }
            Err(e) => why.push(format!("{name}: {e}")),
        }
    }
    if out.len() < holders.len() {
        let missing: Vec<u8> = holders
            .keys()
            .filter(|s| !out.contains_key(s))
            .map(|s| s.0)
            .collect();
        return Err(format!("shares {missing:?} not read: {}", why.join("; ")));
    }
    Ok(out.into_values().collect())
}

//! Mutable file driver (SDMF and MDMF): runs the core's servermap update, publish and
//! retrieve machines ([`cairn_core::client::mutable`]) against the grid. Compat map §4.5.
//!
//! * One task owns each machine: it sends every request an action asks for as its own
//!   Tokio task (aborted when the machine cancels it or the operation ends), waits for the
//!   next answer, failure or deadline, and feeds it back as an event with the current time
//!   (milliseconds since the operation started). Answers travel through a channel; no
//!   response callback ever touches a machine. Each action is sent exactly once.
//! * Requests: a servermap query lists the server's mutable shares of the storage index
//!   and then reads the first bytes of each (Tahoe's HTTP `slot_readv`); follow-up and
//!   retrieve reads are one ranged `GET` each; a publish write is one read-test-write per
//!   server carrying all its shares, with the server's write enabler
//!   (`ssk_write_enabler_hash(writekey, tubid)`) and lease secrets (Tahoe's chain
//!   client secret -> file -> server lease seed, the tubid).
//! * Timeouts: the machines time requests out themselves ([`MutableOptions::query_timeout`],
//!   [`MutableOptions::write_timeout`], [`MutableOptions::stall_timeout`]); the driver
//!   wakes at the machine's next deadline. A timed-out server is scored as stalling, a
//!   failed request by its fault, a share failing verification as corrupt (and the server
//!   is told, as Tahoe does).
//! * Encoding and signing run on a blocking thread; salts and the IV come from the OS RNG.
//! * Collisions: a publish that finds another writer's shares returns
//!   [`MutableError::UncoordinatedWrite`] after making sure some complete version stays
//!   recoverable (a fresh check-mode servermap; if the newest version there is not
//!   recoverable, the best recoverable one is republished with a higher seqnum): the
//!   core's composite [`CollisionRecovery`] machine, run by the same driver.
//! * Decisions live in the core ([`cairn_core::client::compose`]): in place or whole for
//!   a change ([`modify::decide`]), first-read reuse ([`CoreFirstReads`]), collision
//!   recovery. This file carries them out.
//!
//! Round trips are counted as HTTP requests sent ([`RoundTrips`]): a servermap query
//! to a server holding one share is two (list, read).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_core::cap::{Cap, MdmfWriteCap, SdmfWriteCap};
use cairn_core::client::compose::collision::{
    self, CollisionRecovery, Encode, RecoveryConfig, Request as RecRequest, Response as RecResponse,
};
use cairn_core::client::compose::first_reads::FirstReads as CoreFirstReads;
use cairn_core::client::compose::modify::{
    self, after_setback, AfterSetback, How, KeptReads, Setback,
};
use cairn_core::client::machine::{Chunk, Failure, Problem, ProblemKind, ServerIndex};
use cairn_core::client::mutable::publish::{
    self, PublishConfig, PublishError, PublishMachine, PublishOutcome, Write, WriteTest, Written,
};
use cairn_core::client::mutable::retrieve::{
    Read as RetRead, RetrieveConfig, RetrieveError, RetrieveKeys, RetrieveMachine, RetrieveOutcome,
    RetrieveSetupError,
};
use cairn_core::client::mutable::servermap::QUERY_READ_LEN;
use cairn_core::client::mutable::servermap::{
    BadShare, Mode, Read as SmRead, ServerMap, ServermapUpdater, Shares, UpdateConfig, VersionId,
};
use cairn_core::client::mutable::{Millis, RequestId, ServerFailure, ServerIdx, ShareNum};
use cairn_core::hashutil::Hash;
use cairn_core::ids::StorageIndex;
use cairn_core::mutable::codec::{encode, Encoding};
use cairn_core::mutable::keys::{ReaderKeys, SigningKey, WriterKeys};
use cairn_core::mutable::params::SegmentParams;
use cairn_core::mutable::{DEFAULT_MAX_SEGMENT_SIZE, SALT_LEN};
use cairn_core::storage::gbs::{RtwRequest, RtwResponse, TestWriteVectors, WriteVector};
use rand::rngs::OsRng;
use rand::RngCore;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::driver::{drive, Executor, MachineBroken, Run};
use crate::gbs_client::LeaseSecrets;
use crate::grid::{FileLeases, Grid, ServerEntry};

pub use cairn_core::mutable::MutableFormat;

/// Default of [`MutableOptions::epsilon`]: one server beyond `k` must answer a read's
/// servermap update, so a single stale (rolled-back) or missing server cannot hide a
/// newer recoverable version, while a read of a `k`-of-`N` file still needs only `k + 1`
/// answers (Tahoe waits for `2k`). Write-mode updates use at least `k`, as Tahoe does.
pub const DEFAULT_EPSILON: usize = 1;

/// How mutable operations behave.
#[derive(Clone)]
pub struct MutableOptions {
    /// Shares needed (`[client] shares.needed`) for new files; an existing file keeps its own.
    pub k: u8,
    /// Total shares (`[client] shares.total`) for new files; an existing file keeps its own.
    pub n: u8,
    /// Servers of happiness a publish must reach (`[client] shares.happy`).
    pub happy: usize,
    /// Servers beyond `k` a read must hear from (rollback resistance); default
    /// [`DEFAULT_EPSILON`]. Clamped to what the grid can give (with every server
    /// answering, nothing can be hidden). Write-mode updates use `max(epsilon, k)`.
    pub epsilon: usize,
    /// Index into `grid.servers()` of this node's own storage server, if it has one: a
    /// publish that placed no share there writes one extra copy there, so the encrypted
    /// private key stays with the writer.
    pub own_server: Option<usize>,
    /// The client's lease secret (Tahoe's `private/secret`, decoded); `None`: a random one
    /// per operation (leases then cannot be renewed by this client later).
    pub lease_secret: Option<Vec<u8>>,
    /// A servermap query or follow-up read with no answer after this long has failed.
    pub query_timeout: Duration,
    /// A publish write with no answer after this long has failed (its shares go elsewhere).
    pub write_timeout: Duration,
    /// A retrieve read with no answer after this long is dropped (another share is used).
    pub stall_timeout: Duration,
    /// MDMF segment size before rounding to a multiple of `k` (Tahoe: 128 KiB).
    pub max_segment_size: u64,
    /// Tell servers whose shares fail verification (`advise_corrupt`), as Tahoe does.
    pub advise_corrupt: bool,
}

impl std::fmt::Debug for MutableOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutableOptions")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("happy", &self.happy)
            .field("epsilon", &self.epsilon)
            .field("own_server", &self.own_server)
            .field("query_timeout", &self.query_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("max_segment_size", &self.max_segment_size)
            .finish_non_exhaustive()
    }
}

impl MutableOptions {
    /// `k`-of-`n`, `happy`; epsilon [`DEFAULT_EPSILON`]; Tahoe's timeouts (10 s queries,
    /// 30 s writes) and segment size.
    pub fn new(k: u8, n: u8, happy: usize) -> Self {
        MutableOptions {
            k,
            n,
            happy,
            epsilon: DEFAULT_EPSILON,
            own_server: None,
            lease_secret: None,
            query_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(10),
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
            advise_corrupt: true,
        }
    }
}

impl Default for MutableOptions {
    /// Tahoe's 3-of-10, happy 7.
    fn default() -> Self {
        MutableOptions::new(3, 10, 7)
    }
}

/// HTTP requests an operation sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundTrips {
    /// Servermap update requests (share lists, first reads, follow-up reads).
    pub servermap: usize,
    /// Retrieve reads.
    pub reads: usize,
    /// Read-test-write requests (publish, extra copies).
    pub writes: usize,
    /// The most requests of all kinds sent to one server.
    pub max_per_server: usize,
    /// The most read-test-write requests sent to one server.
    pub max_writes_per_server: usize,
    /// Distinct servers written to.
    pub servers_written: usize,
}

/// A published version.
#[derive(Clone, Debug)]
pub struct Published {
    pub writecap: String,
    pub readcap: String,
    pub format: MutableFormat,
    pub seqnum: u64,
    pub size: u64,
    /// Servers of happiness of the new version's placement.
    pub happiness: usize,
    pub round_trips: RoundTrips,
    /// Share bytes sent in write requests (all servers): an in-place MDMF update sends
    /// only the affected segments and hashes, a whole publish every share whole.
    pub written_bytes: u64,
    /// The change was written in place (only the affected MDMF segments rewritten).
    pub in_place: bool,
    /// Share number -> grid indices of the servers holding it (the extra copy included).
    pub placed: BTreeMap<u8, BTreeSet<usize>>,
    /// Servers that failed during the operation, one line each.
    pub problems: Vec<String>,
}

/// What a read did.
#[derive(Clone, Debug, Default)]
pub struct ReadReport {
    /// Plaintext bytes written to the sink.
    pub bytes: u64,
    /// `servermap`: the [`open`]'s update; `reads`: this read's requests; `max_per_server`
    /// over both.
    pub round_trips: RoundTrips,
    /// Shares dropped during the read (the data is still correct), one line each.
    pub problems: Vec<String>,
    /// Sequence numbers of newer versions that were seen but are not recoverable.
    pub newer_unrecoverable: Vec<u64>,
}

/// Why a mutable operation failed.
#[derive(thiserror::Error, Debug)]
pub enum MutableError {
    /// Another writer changed the file at the same time (Tahoe's
    /// `UncoordinatedWriteError`). Some complete version has been made recoverable again;
    /// read the file and retry the change if it is still wanted.
    #[error(
        "uncoordinated write: another writer changed this mutable file at the same time ({0})"
    )]
    UncoordinatedWrite(String),
    /// Too few servers answered or accepted shares.
    #[error(
        "not enough storage servers for {what}: needed {needed}, got {got}; tried {tried} servers: {}",
        if .reasons.is_empty() { "no failures (too few servers)".to_string() } else { .reasons.join("; ") }
    )]
    NotEnoughServers {
        what: &'static str,
        tried: usize,
        needed: usize,
        got: usize,
        /// One line per failed server or share: which and why.
        reasons: Vec<String>,
    },
    /// Shares were found, but no version can be rebuilt (or written over).
    #[error("mutable file is unrecoverable: {0}")]
    Unrecoverable(String),
    /// An MDMF change starting past the end of the file (Tahoe's rule; see [`PastEnd`]).
    #[error("offset {offset} is beyond the end of the file ({size} bytes)")]
    OffsetPastEnd { offset: u64, size: u64 },
    /// The cap is read-only.
    #[error("this cap is read-only; writing needs a write cap")]
    NotWriteable,
    /// Every server answered and none holds a share.
    #[error("no shares of this mutable file were found (asked {asked} servers)")]
    NoSuchFile { asked: usize },
    /// Not a mutable file cap (or a verify cap).
    #[error("not a mutable file cap: {0}")]
    BadCap(String),
    /// Writing the plaintext to the sink failed.
    #[error("writing the data: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding failed or a machine was misused (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<MachineBroken> for MutableError {
    fn from(e: MachineBroken) -> MutableError {
        internal(e.0)
    }
}

fn internal(e: impl std::fmt::Display) -> MutableError {
    MutableError::Internal(e.to_string())
}

// -------------------------------------------------------------------------------------
// Public operations

/// Create a mutable file holding `data` with the caller's key (from the node's key pool),
/// sequence number 1.
pub async fn create(
    grid: &Grid,
    key: SigningKey,
    format: MutableFormat,
    data: &[u8],
    opts: &MutableOptions,
) -> Result<Published, MutableError> {
    let keys = WriterKeys::from_signing_key(&key);
    let ctx = Ctx::new(grid, Some(&keys), keys.reader(), opts);
    let map = ServerMap::new(Mode::Write);
    let version = NewVersion {
        format,
        k: opts.k,
        n: opts.n,
        seqnum: 1,
    };
    publish_version(&ctx, &keys, &key, version, &map, data.to_vec()).await
}

/// Replace the whole contents of the mutable file `writecap` with `data`.
pub async fn overwrite(
    grid: &Grid,
    writecap: &Cap,
    data: &[u8],
    opts: &MutableOptions,
) -> Result<Published, MutableError> {
    let (keys, format) = write_keys(writecap)?;
    let ctx = Ctx::new(grid, Some(&keys), keys.reader(), opts);
    let (map, privkey) = write_servermap(&ctx, &keys).await?;
    let version = next_version(&map, format, opts);
    publish_version(&ctx, &keys, &privkey, version, &map, data.to_vec()).await
}

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
/// ([`modify`]), or Tahoe's web API rule (SDMF writes at the end, MDMF refuses with
/// [`MutableError::OffsetPastEnd`]). Decided in the core ([`modify::decide`]).
pub use cairn_core::client::compose::modify::PastEnd;

/// [`modify`] with a choice of what an offset past the end means; the file's size and
/// format come from the write-mode servermap update the change needs anyway, so there is
/// no separate open. Whether the change is written in place or whole, and what follows an
/// in-place attempt that fell short, is the core's decision ([`modify`]).
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
        writes[usize::from(sh)] = w;
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
    holders: &BTreeMap<ShareNum, BTreeSet<ServerIdx>>,
) -> Result<Vec<cairn_core::mutable::update::OldShare>, String> {
    use cairn_core::mutable::update::OldShare;
    use cairn_core::storage::gbs::ReadVector;
    let reads = plan.block_hash_node_reads();
    let span = match (reads.first(), reads.last()) {
        (Some(f), Some(l)) => (f.0, l.0 + l.1 - f.0),
        _ => (plan.old_block_hash_tree_offset(), 0),
    };
    let servers: BTreeSet<ServerIdx> = holders.values().flatten().copied().collect();
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
                for (cairn_core::ids::ShareNum(sh), parts) in data {
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
        let missing: Vec<_> = holders.keys().filter(|s| !out.contains_key(s)).collect();
        return Err(format!("shares {missing:?} not read: {}", why.join("; ")));
    }
    Ok(out.into_values().collect())
}

/// A mutable file found on the grid: its servermap (read mode) and the version chosen.
#[derive(Clone, Debug)]
pub struct Opened {
    map: ServerMap,
    version: VersionId,
    readkey: [u8; 16],
    fingerprint: Hash,
    storage_index: [u8; 16],
    epsilon: usize,
    opts: MutableOptions,
    servermap_trips: RoundTrips,
    per_server: BTreeMap<usize, usize>,
    first_reads: Arc<FirstReads>,
}

/// Find the best recoverable version of the file `cap` (a read or write cap): a read-mode
/// servermap update that must hear from `k + epsilon` servers.
pub async fn open(grid: &Grid, cap: &Cap, opts: &MutableOptions) -> Result<Opened, MutableError> {
    let keys = read_keys(cap)?;
    let fingerprint = keys.fingerprint();
    let ctx = Ctx::new(grid, None, &keys, opts);
    let mut k = opts.k;
    let mut n = opts.n.max(k);
    // Servers known to be down are asked last (the order only decides who is asked first).
    let mut order = ctx.permuted_known_down_last();
    let mut retried_failures = false;
    // At most three passes: the first guesses k; if the file's k is larger, ask again with
    // it so enough servers are heard from; if servers failed so that fewer than k + epsilon
    // answered while others were never asked, ask again with the failed ones last (the
    // servermap machine counts a failed query towards k + epsilon, the retrieve's rollback
    // check counts only answers).
    for _pass in 0..3 {
        let eps = clamp_epsilon(opts.epsilon, grid.servers().len(), k);
        let mut cfg = UpdateConfig::new(Mode::Read, k, n, fingerprint);
        cfg.epsilon = Some(eps);
        cfg.query_timeout = millis(opts.query_timeout);
        let map = update_servermap(&ctx, cfg, &order).await?;
        if map.shares().is_empty() && map.bad_shares().is_empty() {
            if map.reachable_servers().is_empty() && !map.queried().is_empty() {
                return Err(not_heard(&ctx, &map, "reading", usize::from(k) + eps));
            }
            if map.reachable_servers().len() < usize::from(k) + eps
                && map.queried().len() < order.len()
                && !retried_failures
            {
                retried_failures = true;
                order = failed_last(&order, &map);
                continue;
            }
            return Err(MutableError::NoSuchFile {
                asked: map.queried().len(),
            });
        }
        let Some(best) = map.best_recoverable_version() else {
            if !retried_failures && !map.failures().is_empty() && map.queried().len() < order.len()
            {
                retried_failures = true;
                order = failed_last(&order, &map);
                continue;
            }
            return Err(unrecoverable(&ctx, &map));
        };
        let eps = clamp_epsilon(opts.epsilon, grid.servers().len(), best.k);
        let rcfg = retrieve_config(opts, eps);
        let rkeys = RetrieveKeys {
            readkey: *keys.readkey(),
            fingerprint,
        };
        match RetrieveMachine::new(rcfg, &map, rkeys, Some(0..0)) {
            Ok(m) => {
                let version = m.version().clone();
                let (servermap_trips, per_server) = ctx.counters.snapshot();
                return Ok(Opened {
                    map,
                    version,
                    readkey: *keys.readkey(),
                    fingerprint,
                    storage_index: ctx.si,
                    epsilon: eps,
                    opts: opts.clone(),
                    servermap_trips,
                    per_server,
                    first_reads: ctx.first_reads.clone(),
                });
            }
            Err(RetrieveSetupError::NotEnoughServersHeard { needed, .. }) if best.k > k => {
                tracing::debug!(needed, "file's k is larger than guessed; asking again");
                k = best.k;
                n = best.n.max(k);
            }
            Err(RetrieveSetupError::NotEnoughServersHeard { .. })
                if !retried_failures && map.queried().len() < order.len() =>
            {
                tracing::debug!("servers failed during the servermap update; asking others");
                retried_failures = true;
                order = failed_last(&order, &map);
            }
            Err(e) => return Err(setup_error(&ctx, &map, e)),
        }
    }
    Err(MutableError::Internal(
        "servermap update did not settle".into(),
    ))
}

/// `order` with the servers whose query failed in `map` moved to the end.
fn failed_last(order: &[ServerIdx], map: &ServerMap) -> Vec<ServerIdx> {
    let failed: BTreeSet<ServerIdx> = map
        .failures()
        .iter()
        .filter(|f| f.during == "query")
        .map(|f| f.server.0)
        .collect();
    let (mut ok, bad): (Vec<_>, Vec<_>) = order.iter().partition(|s| !failed.contains(s));
    ok.extend(bad);
    ok
}

impl Opened {
    pub fn size(&self) -> u64 {
        self.version.data_length
    }
    pub fn seqnum(&self) -> u64 {
        self.version.seqnum
    }
    pub fn format(&self) -> MutableFormat {
        self.version.format
    }
    pub fn k(&self) -> u8 {
        self.version.k
    }
    pub fn n(&self) -> u8 {
        self.version.n
    }
    /// The version that reads return.
    pub fn version(&self) -> &VersionId {
        &self.version
    }
    /// What the servermap update found.
    pub fn servermap(&self) -> &ServerMap {
        &self.map
    }
    /// Requests the [`open`] sent.
    pub fn round_trips(&self) -> &RoundTrips {
        &self.servermap_trips
    }

    /// Stream bytes `range` (already clamped to [`Self::size`] by the caller) of the chosen
    /// version into `sink`, segment by segment; only the segments overlapping the range
    /// are fetched.
    pub async fn read(
        &self,
        grid: &Grid,
        range: Range<u64>,
        sink: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<ReadReport, MutableError> {
        let ctx = Ctx {
            grid: grid.clone(),
            si: self.storage_index,
            counters: Arc::new(Counters::default()),
            opts: self.opts.clone(),
            leases: FileLeases::new(&[], &self.storage_index),
            write_enablers: None,
            first_reads: self.first_reads.clone(),
        };
        let mut m = RetrieveMachine::new(
            retrieve_config(&self.opts, self.epsilon),
            &self.map,
            RetrieveKeys {
                readkey: self.readkey,
                fingerprint: self.fingerprint,
            },
            Some(range),
        )
        .map_err(|e| setup_error(&ctx, &self.map, e))?;
        if m.version() != &self.version {
            return Err(internal("retrieve chose another version than open"));
        }
        let outcome = run_retrieve(&ctx, &mut m, sink).await?;
        let (reads, per_server) = ctx.counters.snapshot();
        let mut all = self.per_server.clone();
        for (s, c) in per_server {
            *all.entry(s).or_default() += c;
        }
        Ok(ReadReport {
            bytes: outcome.bytes,
            round_trips: RoundTrips {
                servermap: self.servermap_trips.servermap,
                reads: reads.reads,
                max_per_server: all.values().copied().max().unwrap_or(0),
                ..RoundTrips::default()
            },
            problems: outcome
                .problems
                .iter()
                .map(|p| format!("{}: {p}", ctx.name(p.server.0)))
                .collect(),
            newer_unrecoverable: outcome
                .newer_unrecoverable
                .iter()
                .map(|v| v.seqnum)
                .collect(),
        })
    }
}

// -------------------------------------------------------------------------------------
// Caps and keys

fn write_keys(cap: &Cap) -> Result<(WriterKeys, MutableFormat), MutableError> {
    let (wk, fp, format) = match cap {
        Cap::SdmfWrite(c) => (*c.writekey().as_bytes(), *c.fingerprint(), c.format()),
        Cap::MdmfWrite(c) => (*c.writekey().as_bytes(), *c.fingerprint(), c.format()),
        Cap::SdmfRead(_) | Cap::MdmfRead(_) => return Err(MutableError::NotWriteable),
        other => return Err(MutableError::BadCap(other.kind_name().to_string())),
    };
    Ok((WriterKeys::new(wk, fp), format))
}

fn read_keys(cap: &Cap) -> Result<ReaderKeys, MutableError> {
    let (rk, fp) = match cap {
        Cap::SdmfWrite(c) => (*c.readkey().as_bytes(), *c.fingerprint()),
        Cap::MdmfWrite(c) => (*c.readkey().as_bytes(), *c.fingerprint()),
        Cap::SdmfRead(c) => (*c.readkey().as_bytes(), *c.fingerprint()),
        Cap::MdmfRead(c) => (*c.readkey().as_bytes(), *c.fingerprint()),
        other => return Err(MutableError::BadCap(other.kind_name().to_string())),
    };
    Ok(ReaderKeys::new(rk, fp))
}

fn caps(keys: &WriterKeys, format: MutableFormat) -> (String, String) {
    let wk = *keys.writekey();
    let fp = keys.reader().fingerprint();
    match format {
        MutableFormat::Sdmf => {
            let c = SdmfWriteCap::new(wk, fp);
            (c.to_string(), c.readonly().to_string())
        }
        MutableFormat::Mdmf => {
            let c = MdmfWriteCap::new(wk, fp);
            (c.to_string(), c.readonly().to_string())
        }
    }
}

fn millis(d: Duration) -> Millis {
    d.as_millis().min(u128::from(u64::MAX)) as Millis
}

/// `epsilon`, but never more than the grid can answer beyond `k` (when every server
/// answers, no version can be hidden).
fn clamp_epsilon(epsilon: usize, servers: usize, k: u8) -> usize {
    epsilon.min(servers.saturating_sub(usize::from(k)))
}

fn retrieve_config(opts: &MutableOptions, eps: usize) -> RetrieveConfig {
    RetrieveConfig {
        epsilon: Some(eps),
        stall_timeout: millis(opts.stall_timeout),
        ..RetrieveConfig::default()
    }
}

// -------------------------------------------------------------------------------------
// Shared driver state

#[derive(Default)]
struct Counters {
    servermap: AtomicUsize,
    reads: AtomicUsize,
    writes: AtomicUsize,
    written_bytes: std::sync::atomic::AtomicU64,
    per_server: Mutex<BTreeMap<usize, usize>>,
    writes_per_server: Mutex<BTreeMap<usize, usize>>,
}

#[derive(Clone, Copy)]
enum Kind {
    Servermap,
    Read,
    Write,
}

impl Counters {
    fn count(&self, kind: Kind, server: usize) {
        match kind {
            Kind::Servermap => self.servermap.fetch_add(1, Ordering::Relaxed),
            Kind::Read => self.reads.fetch_add(1, Ordering::Relaxed),
            Kind::Write => {
                *self
                    .writes_per_server
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(server)
                    .or_default() += 1;
                self.writes.fetch_add(1, Ordering::Relaxed)
            }
        };
        *self
            .per_server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(server)
            .or_default() += 1;
    }

    fn snapshot(&self) -> (RoundTrips, BTreeMap<usize, usize>) {
        let per = self
            .per_server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let writes = self
            .writes_per_server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        (
            RoundTrips {
                servermap: self.servermap.load(Ordering::Relaxed),
                reads: self.reads.load(Ordering::Relaxed),
                writes: self.writes.load(Ordering::Relaxed),
                max_per_server: per.values().copied().max().unwrap_or(0),
                max_writes_per_server: writes.values().copied().max().unwrap_or(0),
                servers_written: writes.len(),
            },
            per,
        )
    }
}

/// One operation on one file.
struct Ctx {
    grid: Grid,
    si: [u8; 16],
    counters: Arc<Counters>,
    opts: MutableOptions,
    leases: FileLeases,
    /// The writer's keys, for write enablers (`None` for readers).
    write_enablers: Option<WriterKeys>,
    /// The servermap queries' first reads of each share, which a retrieve uses instead of
    /// asking again when they cover what it wants.
    first_reads: Arc<FirstReads>,
}

/// The servermap queries' first reads of each share ([`CoreFirstReads`]), shared by the
/// request tasks that record them and the retrieves that reuse them.
#[derive(Default)]
struct FirstReads(Mutex<CoreFirstReads>);

impl std::fmt::Debug for FirstReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |m| m.len());
        write!(f, "FirstReads({n} shares)")
    }
}

impl FirstReads {
    fn put(&self, server: usize, shnum: ShareNum, data: &[u8], asked: u64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).record(
            server as ServerIdx,
            shnum,
            data,
            asked,
        );
    }

    /// Bytes `offset..offset + len` of the share if the first read determines them.
    fn get(&self, server: ServerIdx, shnum: ShareNum, offset: u64, len: u64) -> Option<Vec<u8>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(server, shnum, offset, len).map(<[u8]>::to_vec)
    }
}

impl Ctx {
    fn new(
        grid: &Grid,
        writer: Option<&WriterKeys>,
        keys: &ReaderKeys,
        opts: &MutableOptions,
    ) -> Ctx {
        let si = keys.storage_index();
        let secret = opts
            .lease_secret
            .clone()
            .unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec());
        Ctx {
            grid: grid.clone(),
            si,
            counters: Arc::new(Counters::default()),
            opts: opts.clone(),
            leases: FileLeases::new(&secret, &si),
            write_enablers: writer.cloned(),
            first_reads: Arc::default(),
        }
    }

    /// The server a machine names, if it is one of the grid's.
    fn server(&self, server: ServerIndex) -> Option<&ServerEntry> {
        self.grid.servers().get(server.get()).map(|e| &**e)
    }

    fn entry(&self, server: ServerIdx) -> Arc<ServerEntry> {
        self.grid.servers()[server as usize].clone()
    }

    /// The grid's index for a machine's server index (`None`: not a server of the grid).
    fn grid_index(&self, server: ServerIndex) -> Option<ServerIdx> {
        self.server(server).map(|_| server.0)
    }

    fn name(&self, server: ServerIdx) -> String {
        self.grid
            .servers()
            .get(server as usize)
            .map_or_else(|| format!("server #{server}"), |s| s.name())
    }

    /// Grid indices in Tahoe's order for this storage index.
    fn permuted(&self) -> Vec<ServerIdx> {
        self.grid
            .permuted(&self.si)
            .iter()
            .map(|s| s.index as ServerIdx)
            .collect()
    }

    /// [`Self::permuted`] with the servers the grid knows to be down moved last.
    fn permuted_known_down_last(&self) -> Vec<ServerIdx> {
        let (mut up, down): (Vec<_>, Vec<_>) = self
            .permuted()
            .into_iter()
            .partition(|s| self.entry(*s).health().connected != Some(false));
        up.extend(down);
        up
    }

    fn failure_line(&self, f: &ServerFailure) -> String {
        let mut s = format!("{} failed during {}", self.name(f.server.0), f.during);
        if let Some(sh) = f.shnum {
            s.push_str(&format!(" (share {sh})"));
        }
        s.push_str(": ");
        s.push_str(&f.reason);
        s
    }

    /// Fire-and-forget `advise_corrupt`, as Tahoe does.
    fn advise_corrupt(&self, server: ServerIdx, shnum: ShareNum, reason: &str) {
        if !self.opts.advise_corrupt {
            return;
        }
        let entry = self.entry(server);
        let si = self.si;
        let reason = crate::GbsClient::fit_reason(if reason.is_empty() {
            "corrupt".to_string()
        } else {
            reason.to_string()
        });
        tokio::spawn(async move {
            if let Err(e) = entry
                .client
                .advise_corrupt_mutable(
                    &StorageIndex(si),
                    cairn_core::ids::ShareNum(shnum),
                    &reason,
                )
                .await
            {
                tracing::debug!(server = %entry.name(), "advise_corrupt failed: {e}");
            }
        });
    }
}

// -------------------------------------------------------------------------------------
// Servermap update

async fn update_servermap(
    ctx: &Ctx,
    cfg: UpdateConfig,
    servers: &[ServerIdx],
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

/// A request to a server index no grid server has (a machine given a bad list).
fn not_a_server(server: ServerIndex) -> Failure {
    Failure::new(
        crate::Fault::Client,
        format!("server {} is not a server of the grid", server.0),
    )
}

/// A server's answer (or failure) to a servermap read; the servermap update's executor
/// and a composite's both send it.
type Reply<T> = Pin<Box<dyn Future<Output = Result<T, Failure>> + Send>>;

/// Send one servermap read to `server`.
fn servermap_request(ctx: &Ctx, server: ServerIndex, request: SmRead) -> Reply<Shares> {
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

/// What a request task needs: the server, the storage index, the counters.
struct Task {
    entry: Arc<ServerEntry>,
    si: [u8; 16],
    counters: Arc<Counters>,
    first_reads: Arc<FirstReads>,
}

impl Ctx {
    fn task(&self, server: ServerIdx) -> Task {
        Task {
            entry: self.entry(server),
            si: self.si,
            counters: self.counters.clone(),
            first_reads: self.first_reads.clone(),
        }
    }
}

impl Task {
    fn count(&self, kind: Kind) {
        self.counters.count(kind, self.entry.index);
    }

    /// A request's failure, as the machine gets it (the machine's report scores it).
    fn failed(&self, e: &crate::GbsClientError) -> Failure {
        Failure::new(e.fault(), e.to_string())
    }

    async fn read(&self, shnum: ShareNum, offset: u64, len: u64) -> Result<Vec<u8>, Failure> {
        match self
            .entry
            .client
            .read_mutable(
                &StorageIndex(self.si),
                cairn_core::ids::ShareNum(shnum),
                offset,
                len,
            )
            .await
        {
            Ok(b) => Ok(b.to_vec()),
            Err(e) => Err(self.failed(&e)),
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
        let Ok((cairn_core::ids::ShareNum(sh), r)) = r else {
            continue;
        };
        match r {
            Ok(data) => {
                t.first_reads.put(t.entry.index, sh, &data, len);
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
        w.task.first_reads.put(w.task.entry.index, *sh, first, len);
    }
    Ok(shares)
}

/// A write-mode servermap update; the private key it recovered.
async fn write_servermap(
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

fn unrecoverable(ctx: &Ctx, map: &ServerMap) -> MutableError {
    MutableError::Unrecoverable(format!(
        "no version has enough shares: {}",
        describe_map(ctx, map)
    ))
}

fn not_heard(ctx: &Ctx, map: &ServerMap, what: &'static str, needed: usize) -> MutableError {
    MutableError::NotEnoughServers {
        what,
        tried: map.queried().len(),
        needed,
        got: map.reachable_servers().len(),
        reasons: map.failures().iter().map(|f| ctx.failure_line(f)).collect(),
    }
}

fn setup_error(ctx: &Ctx, map: &ServerMap, e: RetrieveSetupError) -> MutableError {
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

// -------------------------------------------------------------------------------------
// Publish

struct NewVersion {
    format: MutableFormat,
    k: u8,
    n: u8,
    seqnum: u64,
}

/// The version an overwrite writes: the file's own k and N (as Tahoe keeps them), the next
/// sequence number.
fn next_version(map: &ServerMap, format: MutableFormat, opts: &MutableOptions) -> NewVersion {
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
async fn encode_shares(
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

async fn publish_version(
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
enum Payload {
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
async fn publish_payload(
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
                .map(|(sh, s)| (*sh, s.iter().map(|i| *i as usize).collect()))
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
fn publish_request(
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

/// What a write task needs.
struct Writer {
    task: Task,
    write_enabler: Hash,
    lease: LeaseSecrets,
}

impl Ctx {
    /// What writes to `server` need.
    fn writer(&self, keys: &WriterKeys, server: ServerIdx) -> Writer {
        let entry = self.entry(server);
        Writer {
            write_enabler: keys.write_enabler(entry.info.write_enabler_seed()),
            lease: self.leases.for_server(&entry),
            task: self.task(server),
        }
    }
}

impl Writer {
    /// One read-test-write: each share's test and its writes (`(0, whole share)`, or an
    /// in-place update's vector), plus the publish read vector.
    /// `(tests passed, first bytes of every share held before)`.
    async fn write(
        &self,
        tests: &BTreeMap<ShareNum, WriteTest>,
        payload: &Payload,
    ) -> Result<(bool, BTreeMap<ShareNum, Vec<u8>>), Failure> {
        let mut req = RtwRequest {
            read_vector: vec![publish::read_vector()],
            ..RtwRequest::default()
        };
        let mut bytes = 0u64;
        for (sh, test) in tests {
            let write = match payload {
                Payload::Whole(shares) => {
                    let Some(data) = shares.get(usize::from(*sh)) else {
                        return Err(Failure::new(
                            crate::Fault::Client,
                            format!("no share {sh} was encoded"),
                        ));
                    };
                    vec![WriteVector {
                        offset: 0,
                        data: data.clone(),
                    }]
                }
                Payload::InPlace { old, writes } => {
                    let holds_old = matches!(test, WriteTest::Matches(c) if c == old);
                    let Some(w) = writes.get(usize::from(*sh)).filter(|_| holds_old) else {
                        return Err(Failure::new(
                            crate::Fault::Client,
                            format!(
                                "an in-place update can only rewrite an existing share; share \
                                 {sh} of the version being updated is not on this server"
                            ),
                        ));
                    };
                    w.iter()
                        .map(|(offset, data)| WriteVector {
                            offset: *offset,
                            data: data.clone(),
                        })
                        .collect()
                }
            };
            bytes += write.iter().map(|w| w.data.len() as u64).sum::<u64>();
            req.test_write_vectors.insert(
                cairn_core::ids::ShareNum(*sh),
                TestWriteVectors {
                    test: vec![test.test_vector()],
                    write,
                    new_length: None,
                },
            );
        }
        self.task
            .counters
            .written_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        let resp = self.send(Kind::Write, &req).await?;
        Ok((resp.success, first_read_of_each(resp.data)))
    }

    /// Send one read-test-write, counted as `kind`; the server's health scored by the
    /// outcome.
    async fn send(&self, kind: Kind, req: &RtwRequest) -> Result<RtwResponse, Failure> {
        let t = &self.task;
        t.count(kind);
        match t
            .entry
            .client
            .read_test_write(&StorageIndex(t.si), &self.write_enabler, &self.lease, req)
            .await
        {
            Ok(resp) => {
                t.entry.report_ok();
                Ok(resp)
            }
            Err(e) => Err(t.failed(&e)),
        }
    }
}

/// The first read vector's bytes of every share in a read-test-write answer.
fn first_read_of_each(
    data: BTreeMap<cairn_core::ids::ShareNum, Vec<Vec<u8>>>,
) -> BTreeMap<ShareNum, Vec<u8>> {
    data.into_iter()
        .map(|(sh, reads)| (sh.0, reads.into_iter().next().unwrap_or_default()))
        .collect()
}

/// With an own server that got no share, write one extra copy of a share there so the
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
    if own >= ctx.grid.servers().len() {
        tracing::warn!(own, "own_server is not a server of the grid");
        return None;
    }
    let server = own as ServerIdx;
    if outcome.placed.values().any(|s| s.contains(&server)) {
        return None;
    }
    if outcome.failures.iter().any(|f| f.server.0 == server) {
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
        Ok(Ok((true, _))) => Some((sh, own)),
        Ok(Ok((false, _))) => {
            tracing::warn!(server = %ctx.name(server), sh, "own server refused the extra share copy");
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

/// After a collision: make sure some complete version is recoverable. The core's
/// [`CollisionRecovery`] decides (a check-mode servermap, then perhaps a read-back and a
/// republish); this runs it. Its outcome goes into the error message.
async fn recover_after_collision(
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
            self.ctx.advise_corrupt(p.server.0, sh.0, &p.reason);
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

// -------------------------------------------------------------------------------------
// Retrieve

/// Read `range` (`None`: all) of the best recoverable version of `map` into `sink`.
async fn retrieve_into(
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

async fn run_retrieve(
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
            self.ctx.advise_corrupt(p.server.0, sh.0, &p.reason);
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
                    .map(|p| format!("seqnum {seqnum}: {}: {p}", ctx.name(p.server.0)))
                    .collect(),
            },
            other => MutableError::Unrecoverable(other.to_string()),
        })
    }
}

/// Send one retrieve read to `server`: `Ok` with the bytes at once when the servermap's
/// first read of the share already holds them, else the read. The retrieve's executor and
/// a composite's both send it.
fn retrieve_request(
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

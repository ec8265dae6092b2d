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
//!   core's composite
//!   [`CollisionRecovery`](cairn_core::client::compose::collision::CollisionRecovery)
//!   machine, run by the same driver.
//! * Decisions live in the core ([`cairn_core::client::compose`]): in place or whole for
//!   a change ([`cairn_core::client::compose::modify::decide`]), first-read reuse
//!   ([`cairn_core::client::compose::first_reads::FirstReads`]), collision recovery. This
//!   module carries them out.
//!
//! Round trips are counted as HTTP requests sent ([`RoundTrips`]): a servermap query
//! to a server holding one share is two (list, read).
//!
//! Where things are:
//!
//! * this file: the options, the reports and errors, and the public operations
//!   [`create`], [`overwrite`] and [`open`] (with [`Opened::read`]);
//! * `modify`: [`modify()`] and [`modify_with`], in place or whole, and the reads they need;
//! * `servermap`: the servermap update (its requests, the writer's update) and the errors a
//!   servermap explains;
//! * `publish`: encoding a new version and writing it (whole shares or in-place writes);
//! * `collision`: recovery after a publish collided with another writer;
//! * `retrieve`: reading a range of a version into a sink;
//! * `ctx`: one operation's shared state and the per-server request handles;
//! * `caps`: the keys a cap holds, and the caps of a published file.

mod caps;
mod collision;
mod ctx;
mod modify;
mod publish;
mod retrieve;
mod servermap;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::cap::Cap;
use cairn_core::client::mutable::retrieve::{
    RetrieveConfig, RetrieveKeys, RetrieveMachine, RetrieveSetupError,
};
use cairn_core::client::mutable::servermap::{Mode, ServerMap, UpdateConfig, VersionId};
use cairn_core::client::mutable::ServerIndex;
use cairn_core::hashutil::Hash;
use cairn_core::mutable::keys::{SigningKey, WriterKeys};
use cairn_core::mutable::DEFAULT_MAX_SEGMENT_SIZE;
use tokio::io::AsyncWrite;

use self::caps::{read_keys, write_keys};
use self::ctx::{millis, Counters, Ctx, FirstReads};
use self::publish::{next_version, publish_version, NewVersion};
use self::retrieve::run_retrieve;
use self::servermap::{not_heard, setup_error, unrecoverable, update_servermap, write_servermap};
use crate::driver::MachineBroken;
use crate::grid::{FileLeases, Grid};

pub use self::modify::{modify, modify_with, PastEnd};
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
fn failed_last(order: &[ServerIndex], map: &ServerMap) -> Vec<ServerIndex> {
    let failed: BTreeSet<ServerIndex> = map
        .failures()
        .iter()
        .filter(|f| f.during == "query")
        .map(|f| f.server)
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
                .map(|p| format!("{}: {p}", ctx.name(p.server)))
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

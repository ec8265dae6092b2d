//! CHK download as an explicit state machine (Tahoe-LAFS 1.20 `immutable/downloader/`:
//! `ShareFinder`, `SegmentFetcher`, `Share`, `DownloadNode`). Compat map §3.6.
//!
//! The driver owns one [`DownloadMachine`] per download and never re-enters it. It calls
//! [`DownloadMachine::start`] once, then [`DownloadMachine::handle`] with each [`Event`]
//! (a response, a failure, the outcome of a job, or a `Tick`), passing the current time
//! in milliseconds from any fixed origin. Each call returns the [`Action`]s to carry out:
//! requests to send (`ListShares`, `Read`), requests to abandon (`Cancel`), CPU work to run
//! anywhere (`Verify`, `Decode`: pure, `Send` jobs whose outcome comes back as an event),
//! plaintext to write (`Output`, in file order), misbehaving servers to score (`Report`)
//! and the end (`Finished`).
//!
//! What it does, as Tahoe's downloader does:
//! - **Finding shares**: servers are asked which shares they hold in permuted order, at
//!   most [`DownloadConfig::max_outstanding_lists`] at a time (a query that is overdue no
//!   longer counts), and only while more shares are wanted.
//! - **Choosing shares**: `k` distinct share numbers, preferring servers that answered
//!   fastest, that hold no other share in use, and that have no record of trouble.
//! - **Reading a share**: its header and (at the offsets a file of this size would have,
//!   so usually in the same round trip) its share-hash chain and the UEB. The UEB is checked
//!   against the cap's UEB hash (once per file), the header's offsets against the UEB's
//!   geometry, the chain against the UEB's share root. Then blocks are read in large runs of
//!   consecutive segments, together with just the nodes of the block hash tree and of the
//!   crypttext hash tree those segments need. Every block is verified before use, every
//!   decoded segment against the crypttext tree.
//! - **Ranged reads** touch only the segments that overlap the range.
//! - **Switching**: a share whose read fails, whose data or hashes are corrupt, or that
//!   does not answer within [`DownloadConfig::stall_timeout`] is dropped (its outstanding
//!   reads cancelled) and another share holder takes over from the first segment still
//!   missing; the bad server is reported with the reason. A stalled share may be tried
//!   again once, as a last resort, if nothing else is left.
//! - **Giving up**: when no share is left to try and the file cannot be completed,
//!   [`DownloadError::NotEnoughShares`] says how many servers were asked, what was found and
//!   why each failed.
//!
//! Deterministic: the same events at the same times give the same actions (no hashing
//! with random state, no clock), so downloads can be replayed under simulation.
//!
//! Memory: block data is fetched at most [`DownloadConfig::pipeline_batches`] runs ahead
//! of the output position and dropped once its segment is decoded, so it stays bounded by
//! a small multiple of `read_batch_bytes * k` whatever the file size.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use thiserror::Error;

use crate::bytes::Reader;
use crate::cap::ChkReadCap;
use crate::chk::layout::{share_hash_entries, LayoutError as ChkLayoutError, ShareHead};
use crate::chk::params::{
    ChkGeometry, LayoutVersion, ShareOffsets, DEFAULT_MAX_SEGMENT_SIZE, MAX_UEB_LEN,
    SHARE_HASH_ENTRY_LEN,
};
use crate::chk::{ChkCapInfo, ChkDecoder, DecodeError, SegmentDecoder};
use crate::hashutil::{Hash, HASH_LEN};

use crate::client::machine::{self, Chunk, ServerIndex, ShareNum};
pub use crate::client::machine::{Millis, RequestId};
/// Identifies one verify or decode job.
pub type JobId = u64;

/// Tunables. The defaults suit a LAN or loopback grid and Tahoe 1.20's 1 MiB segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadConfig {
    /// A request with no answer after this long is overdue: its share is dropped (and the
    /// server reported as stalling) and another holder takes over.
    pub stall_timeout: Millis,
    /// Share-list queries outstanding at once (Tahoe: 10).
    pub max_outstanding_lists: usize,
    /// Target size of one block read (consecutive blocks of one share); at least one block.
    pub read_batch_bytes: u64,
    /// How many block runs ahead of the output position are fetched.
    pub pipeline_batches: u64,
    /// Segment size assumed before the UEB is known, to read the share-hash chain and UEB
    /// in the first round trip (Tahoe's default maximum segment size).
    pub guessed_segment_size: u64,
    /// Hash tree nodes are fetched for up to this many segments at once.
    pub hash_lookahead_segments: u64,
    /// While share-list queries are outstanding, a second share on a server already in
    /// use is taken only this long after the first answer (other servers may answer soon,
    /// and reading from more servers is faster).
    pub diversity_wait: Millis,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            stall_timeout: 10_000,
            max_outstanding_lists: 10,
            read_batch_bytes: 1 << 20,
            pipeline_batches: 2,
            guessed_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
            hash_lookahead_segments: 2048,
            diversity_wait: 50,
        }
    }
}

/// A server as the machine knows it: a name for messages and its health score (0 = no
/// record of trouble; below 0, candidates on it are tried after the others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    pub name: String,
    pub score: i64,
}

impl ServerInfo {
    pub fn new(name: impl Into<String>) -> Self {
        ServerInfo {
            name: name.into(),
            score: 0,
        }
    }
}

/// What a read is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadPurpose {
    /// The share header (version and offsets).
    Header,
    /// The share-hash chain, and the UEB if the file's UEB is not known yet.
    ChainAndUeb,
    /// Nodes of this share's block hash tree.
    BlockHashes,
    /// Nodes of the crypttext hash tree.
    CrypttextHashes,
    /// The blocks of these segments.
    Blocks { segments: Range<u64> },
}

pub use crate::client::machine::{Problem, ProblemKind};

/// A request the driver must send to a server ([`machine::Action::Send`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Which shares of the file do you hold? (answer: [`Response::Listed`])
    ListShares,
    /// `len` bytes at `offset` of share `shnum` (answer: [`Response::Read`]; fewer bytes are
    /// fine where the share ends).
    Read {
        shnum: ShareNum,
        offset: u64,
        len: u64,
        purpose: ReadPurpose,
    },
}

/// A server's answer to a [`Request`].
#[derive(Debug)]
pub enum Response<B> {
    Listed(Vec<ShareNum>),
    Read(B),
}

/// Local work: hashing blocks or decoding a segment, on any thread
/// ([`machine::Action::Work`]).
#[derive(Debug)]
pub enum Work<B> {
    Verify(VerifyJob<B>),
    Decode(DecodeJob<B>),
}

/// A job's result ([`machine::Event::Worked`]).
#[derive(Debug)]
pub enum Worked<B> {
    Verified(VerifyOutcome<B>),
    Decoded(DecodeOutcome),
}

impl<B: AsRef<[u8]>> machine::Job for Work<B> {
    type Done = Worked<B>;
}

impl<B: AsRef<[u8]>> machine::RunJob for Work<B> {
    fn run(self) -> Worked<B> {
        match self {
            Work::Verify(j) => Worked::Verified(j.run()),
            Work::Decode(j) => Worked::Decoded(j.run()),
        }
    }
}

/// What the driver must do: requests, cancellations, jobs, plaintext in file order
/// without gaps, reports of misbehaving servers, and the end.
pub type Action<B> = machine::Action<Request, Chunk, Result<(), DownloadError>, Work<B>>;

/// What happened (ticks: see [`DownloadMachine::next_deadline`]).
pub type Event<B> = machine::Event<Response<B>, Worked<B>>;

/// Why a download failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DownloadError {
    #[error("bad cap: {0}")]
    BadCap(String),
    #[error(
        "not enough shares to download the file: asked {asked} of {servers} servers, found {found} distinct shares \
         ({copies} copies) on {holders} servers, need {needed}; {}",
        failures_text(failures)
    )]
    NotEnoughShares {
        servers: usize,
        asked: usize,
        found: usize,
        copies: usize,
        holders: usize,
        needed: usize,
        failures: Vec<String>,
    },
    /// Verified blocks did not decode to verified ciphertext: the uploader wrote an
    /// inconsistent file (no single share is to blame).
    #[error("the file's shares are inconsistent: {0}")]
    Inconsistent(String),
}

fn failures_text(f: &[String]) -> String {
    if f.is_empty() {
        "no failures".into()
    } else {
        format!("failures: {}", f.join("; "))
    }
}

/// Hashing of one block read, to run on any thread.
#[derive(Debug)]
pub struct VerifyJob<B> {
    pub id: JobId,
    pub shnum: ShareNum,
    pub segments: Range<u64>,
    data: B,
    block_size: usize,
    last_len: usize,
    expected: Vec<Hash>,
}

/// The answer to a [`VerifyJob`].
#[derive(Debug)]
pub struct VerifyOutcome<B> {
    pub id: JobId,
    data: B,
    /// Leading blocks that matched their hashes.
    good: u64,
}

impl<B: AsRef<[u8]>> VerifyJob<B> {
    /// Bytes hashed.
    pub fn len(&self) -> usize {
        self.data.as_ref().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hash each block, side by side ([`crate::sha256mb`]: the blocks of a run are
    /// independent and of equal length; 2.8 GB/s against 1.8 GB/s one after another on
    /// SHA-NI, where block hashing was the largest item of a download's CPU profile).
    /// `good` counts the leading blocks that match.
    pub fn run(self) -> VerifyOutcome<B> {
        let d = self.data.as_ref();
        let n = self.expected.len();
        let mut blocks = Vec::with_capacity(n);
        let mut off = 0;
        for i in 0..n {
            let len = if i + 1 == n {
                self.last_len
            } else {
                self.block_size
            };
            match d.get(off..off + len) {
                Some(b) => blocks.push(b),
                None => break,
            }
            off += len;
        }
        let good = crate::sha256mb::block_hashes(&blocks)
            .iter()
            .zip(&self.expected)
            .take_while(|(got, want)| got == want)
            .count() as u64;
        VerifyOutcome {
            id: self.id,
            data: self.data,
            good,
        }
    }
}

/// Erasure decoding, ciphertext check and decryption of one segment, to run on any thread.
#[derive(Debug)]
pub struct DecodeJob<B> {
    pub id: JobId,
    pub segment: u64,
    blocks: Vec<(ShareNum, B, usize, usize)>,
    crypttext_hash: Hash,
    decoder: Arc<SegmentDecoder>,
}

/// The answer to a [`DecodeJob`].
#[derive(Debug)]
pub struct DecodeOutcome {
    pub id: JobId,
    pub segment: u64,
    result: Result<Vec<u8>, DecodeError>,
}

impl<B: AsRef<[u8]>> DecodeJob<B> {
    pub fn run(self) -> DecodeOutcome {
        let blocks: Vec<(ShareNum, &[u8])> = self
            .blocks
            .iter()
            .map(|(s, b, o, l)| (*s, &b.as_ref()[*o..*o + *l]))
            .collect();
        let mut out = Vec::with_capacity(self.decoder.geometry().segment_size as usize);
        let result = self
            .decoder
            .decode(self.segment, &blocks, &self.crypttext_hash, &mut out)
            .map(|_| out);
        DecodeOutcome {
            id: self.id,
            segment: self.segment,
            result,
        }
    }
}

/// Counters for reports and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownloadStats {
    pub list_requests: u64,
    pub reads: u64,
    pub block_reads: u64,
    pub hash_reads: u64,
    /// Blocks asked for (one per segment per share read).
    pub blocks_requested: u64,
    /// Bytes asked for by reads.
    pub bytes_requested: u64,
    /// Bytes received by reads.
    pub bytes_received: u64,
    /// Lowest and highest segment whose blocks were read.
    pub segments_read: Option<(u64, u64)>,
    /// Shares dropped while in use (a replacement was then sought).
    pub switches: u32,
    /// Plaintext bytes output.
    pub bytes_out: u64,
}

// ------------------------------------------------------------------------------------
// internal state

type CandId = usize;

#[derive(Clone, Debug, PartialEq, Eq)]
enum ListState {
    NotAsked,
    Asking,
    Answered,
    Failed,
}

struct ServerState {
    info: ServerInfo,
    list: ListState,
    rtt: Option<Millis>,
    /// A request to it failed or stalled in this download.
    trouble: bool,
    /// It delivered verified blocks.
    used: bool,
    shares: Vec<ShareNum>,
    list_failure: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum CandState {
    Unused,
    Active,
    Failed { retryable: bool },
}

/// One share on one server (Tahoe's `Share`).
struct Cand {
    server: ServerIndex,
    shnum: ShareNum,
    rtt: Millis,
    state: CandState,
    activations: u32,
    failure: Option<String>,
    header: Option<(LayoutVersion, ShareOffsets)>,
    /// Validated against the geometry.
    header_ok: bool,
    header_req: Option<RequestId>,
    /// Chain (+ UEB) bytes read at this offset, waiting for the header or the UEB.
    trailer: Option<(u64, Vec<u8>)>,
    trailer_req: Option<(RequestId, u64)>,
    /// Header checked and chain verified: blocks can be read and verified.
    ready: bool,
    /// Outstanding block reads.
    block_reads: BTreeMap<RequestId, Range<u64>>,
    /// Block data waiting for its hashes.
    stash: Vec<(Range<u64>, usize)>,
    /// Verify jobs in flight.
    verifying: BTreeSet<JobId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TreeKind {
    Block(ShareNum),
    Crypttext,
}

/// Hash-tree nodes for a run of segments, fetched from one share by one or more reads.
struct Fetch {
    cand: CandId,
    tree: TreeKind,
    leaves: Range<u64>,
    wanted: BTreeSet<usize>,
    reqs: BTreeSet<RequestId>,
    got: BTreeMap<usize, Hash>,
}

enum ReqKind {
    List,
    Header,
    Trailer { offset: u64 },
    Hashes { fetch: u64, first_node: usize },
    Blocks { segments: Range<u64> },
}

struct Req {
    server: ServerIndex,
    cand: Option<CandId>,
    sent: Millis,
    overdue: bool,
    kind: ReqKind,
    len: u64,
}

struct Slot<B> {
    /// Verified blocks: (shnum, buffer, start, len).
    blocks: Vec<(ShareNum, B, usize, usize)>,
    /// Shares with a read, stash entry or verify job covering this segment.
    pending: Vec<CandId>,
    decoding: bool,
    output: Option<Vec<u8>>,
}

impl<B> Default for Slot<B> {
    fn default() -> Self {
        Slot {
            blocks: Vec::new(),
            pending: Vec::new(),
            decoding: false,
            output: None,
        }
    }
}

/// Everything the machine knows once the UEB is verified.
struct FileShape {
    g: ChkGeometry,
    /// Segments overlapping the range.
    wanted: Range<u64>,
    batch_segs: u64,
    window_segs: u64,
    decoder: Arc<SegmentDecoder>,
}

/// The download state machine. `B` is the driver's buffer type (cheap to clone: `Bytes`,
/// `Arc<[u8]>`, ...).
pub struct DownloadMachine<B> {
    cfg: DownloadConfig,
    cap: ChkCapInfo,
    range: Range<u64>,
    servers: Vec<ServerState>,
    next_list: usize,
    cands: Vec<Cand>,
    active: Vec<CandId>,
    hungry: bool,
    first_answer: Option<Millis>,
    /// Set while a same-server share is held back (see `DownloadConfig::diversity_wait`).
    diversity_deadline: Option<Millis>,
    decoder: ChkDecoder,
    shape: Option<FileShape>,
    cursor: u64,
    slots: BTreeMap<u64, Slot<B>>,
    /// Block buffers by key (referenced by stash entries).
    buffers: BTreeMap<usize, B>,
    next_buffer: usize,
    reqs: BTreeMap<RequestId, Req>,
    next_id: u64,
    fetches: BTreeMap<u64, Fetch>,
    verify_jobs: BTreeMap<JobId, (CandId, Range<u64>)>,
    decode_jobs: BTreeMap<JobId, u64>,
    problems: Vec<Problem>,
    stats: DownloadStats,
    finished: bool,
    out: Vec<Action<B>>,
}

/// Version and offsets from the first bytes of a share.
fn parse_header(b: &[u8]) -> Result<(LayoutVersion, ShareOffsets), String> {
    match ShareHead::parse(b) {
        Ok(head) => Ok((head.version, head.offsets)),
        Err(ChkLayoutError::Truncated {
            what: "version", ..
        }) => Err(format!("share header truncated ({} bytes)", b.len())),
        Err(ChkLayoutError::Truncated { need, .. }) => Err(format!(
            "share header truncated ({} of {need} bytes)",
            b.len()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Node index ranges covering `nodes`, merging gaps of up to `gap` nodes.
fn coalesce(nodes: &BTreeSet<usize>, gap: usize) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for &i in nodes {
        match out.last_mut() {
            Some(r) if i <= r.end + gap => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// Gaps of up to this many hash nodes (1 KiB) are read rather than split into two reads.
const HASH_MERGE_GAP: usize = 32;

impl<B: AsRef<[u8]> + Clone> DownloadMachine<B> {
    /// A download of `range` (clamped to the file) of the file `cap` names, from `servers`
    /// in permuted order (indices in actions and events refer to this list).
    pub fn new(
        cap: &ChkReadCap,
        servers: Vec<ServerInfo>,
        range: Range<u64>,
        cfg: DownloadConfig,
    ) -> Result<Self, DownloadError> {
        let info = ChkCapInfo::from(cap);
        let decoder = ChkDecoder::new(info, Some(*cap.key()))
            .map_err(|e| DownloadError::BadCap(e.to_string()))?;
        let end = range.end.min(info.size);
        let range = range.start.min(end)..end;
        let servers = servers
            .into_iter()
            .map(|info| ServerState {
                info,
                list: ListState::NotAsked,
                rtt: None,
                trouble: false,
                used: false,
                shares: Vec::new(),
                list_failure: None,
            })
            .collect();
        Ok(DownloadMachine {
            cfg,
            cap: info,
            range,
            servers,
            next_list: 0,
            cands: Vec::new(),
            active: Vec::new(),
            hungry: true,
            first_answer: None,
            diversity_deadline: None,
            decoder,
            shape: None,
            cursor: 0,
            slots: BTreeMap::new(),
            buffers: BTreeMap::new(),
            next_buffer: 0,
            reqs: BTreeMap::new(),
            next_id: 1,
            fetches: BTreeMap::new(),
            verify_jobs: BTreeMap::new(),
            decode_jobs: BTreeMap::new(),
            problems: Vec::new(),
            stats: DownloadStats::default(),
            finished: false,
            out: Vec::new(),
        })
    }

    /// The range actually downloaded (the requested one clamped to the file).
    pub fn range(&self) -> Range<u64> {
        self.range.clone()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn stats(&self) -> &DownloadStats {
        &self.stats
    }

    /// Every server reported so far, with the reason.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Servers that delivered verified blocks.
    pub fn servers_used(&self) -> Vec<ServerIndex> {
        self.servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.used)
            .filter_map(|(i, _)| ServerIndex::from_position(i))
            .collect()
    }

    pub fn server_name(&self, server: ServerIndex) -> &str {
        self.servers
            .get(server.get())
            .map_or("?", |s| s.info.name.as_str())
    }

    /// The file's geometry, once its UEB is verified.
    pub fn geometry(&self) -> Option<&ChkGeometry> {
        self.shape.as_ref().map(|s| &s.g)
    }

    /// When the next [`Event::Tick`] is due (the earliest time a request becomes overdue).
    pub fn next_deadline(&self) -> Option<Millis> {
        let stall = self
            .reqs
            .values()
            .filter(|r| !r.overdue)
            .map(|r| r.sent.saturating_add(self.cfg.stall_timeout))
            .min();
        match (stall, self.diversity_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Begin: the first share-list queries (or, for an empty range, the end).
    pub fn start(&mut self, now: Millis) -> Vec<Action<B>> {
        if self.range.is_empty() {
            self.finish(Ok(()));
        } else {
            self.plan(now);
        }
        std::mem::take(&mut self.out)
    }

    pub fn handle(&mut self, event: Event<B>, now: Millis) -> Vec<Action<B>> {
        if !self.finished {
            match event {
                Event::Answer {
                    id,
                    response: Response::Listed(shares),
                } => self.on_listed(id, shares, now),
                Event::Answer {
                    id,
                    response: Response::Read(data),
                } => self.on_read(id, data),
                Event::Failed { id, failure } => self.on_failed(id, failure),
                Event::Worked(Worked::Verified(o)) => self.on_verified(o),
                Event::Worked(Worked::Decoded(o)) => self.on_decoded(o),
                Event::Tick => self.on_tick(now),
            }
            if !self.finished {
                self.plan(now);
            }
        }
        std::mem::take(&mut self.out)
    }

    // --------------------------------------------------------------------------------
    // requests

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn send_read(
        &mut self,
        c: CandId,
        offset: u64,
        len: u64,
        kind: ReqKind,
        now: Millis,
    ) -> RequestId {
        let id = self.new_id();
        let (server, shnum) = (self.cands[c].server, self.cands[c].shnum);
        let purpose = match &kind {
            ReqKind::Header => ReadPurpose::Header,
            ReqKind::Trailer { .. } => ReadPurpose::ChainAndUeb,
            ReqKind::Hashes { fetch, .. } => match self.fetches.get(fetch).map(|f| f.tree) {
                Some(TreeKind::Crypttext) => ReadPurpose::CrypttextHashes,
                _ => ReadPurpose::BlockHashes,
            },
            ReqKind::Blocks { segments } => ReadPurpose::Blocks {
                segments: segments.clone(),
            },
            ReqKind::List => unreachable!("lists are not reads"),
        };
        self.stats.reads += 1;
        self.stats.bytes_requested += len;
        match &purpose {
            ReadPurpose::Blocks { segments } => {
                self.stats.block_reads += 1;
                self.stats.blocks_requested += segments.end - segments.start;
                let (lo, hi) = self
                    .stats
                    .segments_read
                    .unwrap_or((segments.start, segments.end - 1));
                self.stats.segments_read = Some((lo.min(segments.start), hi.max(segments.end - 1)));
            }
            ReadPurpose::BlockHashes | ReadPurpose::CrypttextHashes => self.stats.hash_reads += 1,
            _ => {}
        }
        self.reqs.insert(
            id,
            Req {
                server,
                cand: Some(c),
                sent: now,
                overdue: false,
                kind,
                len,
            },
        );
        self.out.push(Action::Send {
            id,
            server,
            request: Request::Read {
                shnum,
                offset,
                len,
                purpose,
            },
        });
        id
    }

    fn cancel(&mut self, id: RequestId) {
        if self.reqs.remove(&id).is_some() {
            self.out.push(Action::Cancel { id });
        }
    }

    fn report(
        &mut self,
        server: ServerIndex,
        shnum: Option<ShareNum>,
        kind: ProblemKind,
        reason: String,
    ) {
        let p = Problem {
            server,
            shnum,
            kind,
            reason,
        };
        self.problems.push(p.clone());
        self.out.push(Action::Report(p));
    }

    fn finish(&mut self, result: Result<(), DownloadError>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let ids: Vec<RequestId> = self.reqs.keys().copied().collect();
        for id in ids {
            self.cancel(id);
        }
        self.slots.clear();
        self.buffers.clear();
        self.out.push(Action::Finish(result));
    }

    // --------------------------------------------------------------------------------
    // events

    fn on_listed(&mut self, id: RequestId, shares: Vec<ShareNum>, now: Millis) {
        let Some(req) = self.reqs.remove(&id) else {
            return;
        };
        let s = req.server;
        self.servers[s.get()].list = ListState::Answered;
        self.servers[s.get()].rtt = Some(now.saturating_sub(req.sent));
        self.first_answer.get_or_insert(now);
        let mut shares: Vec<ShareNum> = shares
            .into_iter()
            .filter(|&n| u16::from(n) < self.cap.total)
            .collect();
        shares.sort_unstable();
        shares.dedup();
        for shnum in shares {
            self.servers[s.get()].shares.push(shnum);
            self.cands.push(Cand {
                server: s,
                shnum,
                rtt: now.saturating_sub(req.sent),
                state: CandState::Unused,
                activations: 0,
                failure: None,
                header: None,
                header_ok: false,
                header_req: None,
                trailer: None,
                trailer_req: None,
                ready: false,
                block_reads: BTreeMap::new(),
                stash: Vec::new(),
                verifying: BTreeSet::new(),
            });
        }
    }

    fn on_failed(&mut self, id: RequestId, failure: machine::Failure) {
        let (fault, reason) = (failure.fault, failure.message);
        let Some(req) = self.reqs.remove(&id) else {
            return;
        };
        match req.cand {
            None => {
                let s = req.server;
                self.servers[s.get()].list = ListState::Failed;
                self.servers[s.get()].trouble = true;
                let reason = format!("share list query failed: {reason}");
                self.servers[s.get()].list_failure = Some(reason.clone());
                self.report(s, None, ProblemKind::Failed(fault), reason);
            }
            Some(c) => {
                let what = match req.kind {
                    ReqKind::Header => "header read",
                    ReqKind::Trailer { .. } => "hash chain read",
                    ReqKind::Hashes { .. } => "hash tree read",
                    ReqKind::Blocks { .. } => "block read",
                    ReqKind::List => "query",
                };
                self.fail_cand(
                    c,
                    ProblemKind::Failed(fault),
                    format!("{what} failed: {reason}"),
                    false,
                );
            }
        }
    }

    fn on_tick(&mut self, now: Millis) {
        let due: Vec<RequestId> = self
            .reqs
            .iter()
            .filter(|(_, r)| !r.overdue && now.saturating_sub(r.sent) >= self.cfg.stall_timeout)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let Some(r) = self.reqs.get_mut(&id) else {
                continue;
            };
            r.overdue = true;
            let waited = now.saturating_sub(r.sent);
            match r.cand {
                None => {
                    // Still waited for (Tahoe's ShareFinder does); no longer counts as outstanding.
                    let s = r.server;
                    self.servers[s.get()].trouble = true;
                    self.report(
                        s,
                        None,
                        ProblemKind::Stall,
                        format!("share list query unanswered after {waited} ms"),
                    );
                }
                Some(c) => {
                    let len = r.len;
                    self.fail_cand(
                        c,
                        ProblemKind::Stall,
                        format!("no answer to a {len}-byte read after {waited} ms"),
                        true,
                    );
                }
            }
        }
    }

    fn on_read(&mut self, id: RequestId, data: B) {
        let Some(req) = self.reqs.remove(&id) else {
            return;
        };
        let Some(c) = req.cand else { return };
        self.stats.bytes_received += data.as_ref().len() as u64;
        if !matches!(self.cands[c].state, CandState::Active) {
            return;
        }
        match req.kind {
            ReqKind::List => {}
            ReqKind::Header => {
                self.cands[c].header_req = None;
                match parse_header(data.as_ref()) {
                    Ok(h) => {
                        self.cands[c].header = Some(h);
                        self.advance_head(c);
                    }
                    Err(e) => self.fail_cand(c, ProblemKind::Corrupt, e, false),
                }
            }
            ReqKind::Trailer { offset } => {
                self.cands[c].trailer_req = None;
                self.cands[c].trailer = Some((offset, data.as_ref().to_vec()));
                self.advance_head(c);
            }
            ReqKind::Hashes { fetch, first_node } => {
                self.on_hashes(c, fetch, id, first_node, data.as_ref())
            }
            ReqKind::Blocks { segments } => {
                self.cands[c].block_reads.remove(&id);
                let Some(shape) = &self.shape else { return };
                let want = (segments.start..segments.end)
                    .map(|s| shape.g.block_len(s))
                    .sum::<u64>();
                let got = data.as_ref().len() as u64;
                if got != want {
                    let reason = format!(
                        "read of the blocks of segments {}..{} returned {got} of {want} bytes (share truncated)",
                        segments.start, segments.end
                    );
                    self.fail_cand(c, ProblemKind::Corrupt, reason, false);
                    return;
                }
                let key = self.next_buffer;
                self.next_buffer += 1;
                self.buffers.insert(key, data);
                self.cands[c].stash.push((segments, key));
            }
        }
    }

    fn on_hashes(
        &mut self,
        c: CandId,
        fetch_id: u64,
        req: RequestId,
        first_node: usize,
        data: &[u8],
    ) {
        let Some(f) = self.fetches.get_mut(&fetch_id) else {
            return;
        };
        f.reqs.remove(&req);
        let have = data.len() / HASH_LEN;
        for &i in f.wanted.range(first_node..first_node + have) {
            let j = i - first_node;
            let mut h = [0u8; HASH_LEN];
            h.copy_from_slice(&data[j * HASH_LEN..(j + 1) * HASH_LEN]);
            f.got.insert(i, h);
        }
        if !f.reqs.is_empty() {
            return;
        }
        let f = self.fetches.remove(&fetch_id).expect("present");
        if f.got.len() < f.wanted.len() {
            let miss = f
                .wanted
                .iter()
                .find(|i| !f.got.contains_key(i))
                .copied()
                .unwrap_or(0);
            let what = match f.tree {
                TreeKind::Block(_) => "block hash tree",
                TreeKind::Crypttext => "crypttext hash tree",
            };
            self.fail_cand(
                c,
                ProblemKind::Corrupt,
                format!("{what} region truncated (node {miss} missing)"),
                false,
            );
            return;
        }
        let shnum = self.cands[c].shnum;
        let r = match f.tree {
            TreeKind::Block(s) => self.decoder.add_block_hashes(s, &f.got),
            TreeKind::Crypttext => self.decoder.add_crypttext_hashes(shnum, &f.got),
        };
        if let Err(e) = r {
            self.fail_cand(c, ProblemKind::Corrupt, e.to_string(), false);
        }
    }

    fn on_verified(&mut self, o: VerifyOutcome<B>) {
        let Some((c, segs)) = self.verify_jobs.remove(&o.id) else {
            return;
        };
        self.cands[c].verifying.remove(&o.id);
        if !matches!(self.cands[c].state, CandState::Active) {
            return;
        }
        let Some(shape) = &self.shape else { return };
        let shnum = self.cands[c].shnum;
        let (bs, g) = (shape.g.block_size as usize, shape.g);
        let n = segs.end - segs.start;
        for (i, seg) in (segs.start..segs.end).enumerate() {
            let Some(slot) = self.slots.get_mut(&seg) else {
                continue;
            };
            slot.pending.retain(|&p| p != c);
            if (i as u64) < o.good && !slot.blocks.iter().any(|b| b.0 == shnum) {
                slot.blocks
                    .push((shnum, o.data.clone(), i * bs, g.block_len(seg) as usize));
            }
        }
        if o.good > 0 {
            let s = self.cands[c].server;
            self.servers[s.get()].used = true;
        }
        if o.good < n {
            let seg = segs.start + o.good;
            self.fail_cand(
                c,
                ProblemKind::Corrupt,
                format!("block for segment {seg} fails its block hash"),
                false,
            );
        }
    }

    fn on_decoded(&mut self, o: DecodeOutcome) {
        let Some(seg) = self.decode_jobs.remove(&o.id) else {
            return;
        };
        match o.result {
            Ok(data) => {
                if let Some(slot) = self.slots.get_mut(&seg) {
                    slot.output = Some(data);
                    // the blocks are no longer needed
                    slot.blocks.clear();
                }
                self.emit_outputs();
            }
            Err(e) => self.finish(Err(DownloadError::Inconsistent(format!(
                "segment {seg}: {e}"
            )))),
        }
    }

    fn emit_outputs(&mut self) {
        let Some(shape) = &self.shape else { return };
        let (segsize, wanted_end) = (shape.g.segment_size, shape.wanted.end);
        while let Some(data) = self
            .slots
            .get_mut(&self.cursor)
            .and_then(|s| s.output.take())
        {
            self.slots.remove(&self.cursor);
            let seg_off = self.cursor * segsize;
            let mut data = data;
            let lo = self.range.start.saturating_sub(seg_off) as usize;
            let hi = (self.range.end - seg_off).min(data.len() as u64) as usize;
            data.truncate(hi);
            if lo > 0 {
                data.drain(..lo.min(data.len()));
            }
            self.stats.bytes_out += data.len() as u64;
            self.out.push(Action::Output(Chunk {
                offset: seg_off + lo as u64,
                data,
            }));
            self.cursor += 1;
            // stale buffers of stash entries are dropped with the segments; nothing else to do
        }
        if self.cursor >= wanted_end {
            self.finish(Ok(()));
        }
    }

    // --------------------------------------------------------------------------------
    // share heads: header, chain, UEB

    fn geometry_guess(&self) -> Option<(ChkGeometry, LayoutVersion)> {
        if let Some(s) = &self.shape {
            return Some((s.g, s.g.default_layout()));
        }
        let k = self.cap.needed as u64;
        let seg = self.cfg.guessed_segment_size.min(self.cap.size).max(1);
        let seg = seg.div_ceil(k) * k;
        let g =
            ChkGeometry::from_parts(self.cap.needed, self.cap.total, seg, self.cap.size).ok()?;
        Some((g, g.default_layout()))
    }

    fn start_head(&mut self, c: CandId, now: Millis) {
        let cand = &self.cands[c];
        if cand.ready {
            return;
        }
        if cand.header.is_none() && cand.header_req.is_none() {
            let id = self.send_read(c, 0, LayoutVersion::V2.header_len(), ReqKind::Header, now);
            self.cands[c].header_req = Some(id);
        }
        let cand = &self.cands[c];
        if cand.trailer.is_none() && cand.trailer_req.is_none() {
            let at = match cand.header {
                Some((_, o)) => Some(o.share_hashes),
                None => self
                    .geometry_guess()
                    .and_then(|(g, v)| g.offsets(v).ok())
                    .map(|o| o.share_hashes),
            };
            if let Some(at) = at {
                self.send_trailer_read(c, at, now);
            }
        }
    }

    fn send_trailer_read(&mut self, c: CandId, at: u64, now: Millis) {
        let chain = (self.cap.total as u64).next_power_of_two().trailing_zeros() as u64 + 1;
        let chain_len = chain * SHARE_HASH_ENTRY_LEN;
        let len = match self.shape {
            Some(_) => chain_len,
            None => chain_len + 8 + MAX_UEB_LEN as u64,
        };
        let id = self.send_read(c, at, len, ReqKind::Trailer { offset: at }, now);
        self.cands[c].trailer_req = Some((id, at));
    }

    /// Move a share's head forward as far as the data at hand allows.
    fn advance_head(&mut self, c: CandId) {
        if self.cands[c].ready || !matches!(self.cands[c].state, CandState::Active) {
            return;
        }
        let Some((version, offsets)) = self.cands[c].header else {
            return;
        };
        if let Some(shape) = &self.shape {
            if !self.cands[c].header_ok {
                match shape.g.offsets(version) {
                    Ok(want) if want == offsets => self.cands[c].header_ok = true,
                    _ => {
                        let reason = format!(
                            "share header offsets {offsets:?} do not match the file's geometry"
                        );
                        self.fail_cand(c, ProblemKind::Corrupt, reason, false);
                        return;
                    }
                }
            }
        }
        if let Some((id, at)) = self.cands[c].trailer_req {
            if at != offsets.share_hashes {
                // the guessed offset was wrong: plan() reads where the header says
                self.cancel(id);
                self.cands[c].trailer_req = None;
            }
        }
        let Some((at, _)) = &self.cands[c].trailer else {
            return;
        };
        if *at != offsets.share_hashes {
            // the guess was wrong: read where the header says
            self.cands[c].trailer = None;
            return;
        }
        let (_, data) = self.cands[c].trailer.take().expect("checked");
        let shnum = self.cands[c].shnum;
        let w = version.field_len() as usize;
        let chain_len = offsets.uri_extension.saturating_sub(offsets.share_hashes);
        if chain_len % SHARE_HASH_ENTRY_LEN != 0 || chain_len > 300 * SHARE_HASH_ENTRY_LEN {
            self.fail_cand(
                c,
                ProblemKind::Corrupt,
                format!("share hash region of {chain_len} bytes"),
                false,
            );
            return;
        }
        let chain_len = chain_len as usize;
        if data.len() < chain_len {
            let reason = format!(
                "share hash chain truncated ({} of {chain_len} bytes)",
                data.len()
            );
            self.fail_cand(c, ProblemKind::Corrupt, reason, false);
            return;
        }
        if self.shape.is_none() {
            if data.len() < chain_len + w {
                self.fail_cand(
                    c,
                    ProblemKind::Corrupt,
                    "UEB length field missing (share truncated)".into(),
                    false,
                );
                return;
            }
            let Ok(ueb_len) = Reader::at(&data, chain_len).uint(w) else {
                self.fail_cand(
                    c,
                    ProblemKind::Corrupt,
                    "UEB length field missing (share truncated)".into(),
                    false,
                );
                return;
            };
            if ueb_len >= MAX_UEB_LEN as u64 || data.len() < chain_len + w + ueb_len as usize {
                let reason = format!("UEB of {ueb_len} bytes does not fit in the share");
                self.fail_cand(c, ProblemKind::Corrupt, reason, false);
                return;
            }
            let ueb = &data[chain_len + w..chain_len + w + ueb_len as usize];
            if let Err(e) = self.decoder.add_ueb(shnum, ueb) {
                self.fail_cand(c, ProblemKind::Corrupt, e.to_string(), false);
                return;
            }
            if let Err(e) = self.on_ueb() {
                self.finish(Err(e));
                return;
            }
            // now check the header against the real geometry
            let g = self.shape.as_ref().expect("just set").g;
            match g.offsets(version) {
                Ok(want) if want == offsets => self.cands[c].header_ok = true,
                _ => {
                    let reason = format!(
                        "share header offsets {offsets:?} do not match the file's geometry"
                    );
                    self.fail_cand(c, ProblemKind::Corrupt, reason, false);
                    return;
                }
            }
        }
        let chain = share_hash_entries(&data[..chain_len]);
        if let Err(e) = self.decoder.add_share_hash_chain(shnum, chain) {
            self.fail_cand(c, ProblemKind::Corrupt, e.to_string(), false);
            return;
        }
        self.cands[c].ready = true;
    }

    /// The first verified UEB: the file's shape is known.
    fn on_ueb(&mut self) -> Result<(), DownloadError> {
        let g = *self.decoder.geometry().expect("UEB accepted");
        let decoder = self.decoder.segment_decoder().expect("UEB accepted");
        let wanted = self.range.start / g.segment_size
            ..self.range.end.div_ceil(g.segment_size).min(g.num_segments);
        let batch_segs = (self.cfg.read_batch_bytes / g.block_size.max(1)).max(1);
        let window_segs = batch_segs.saturating_mul(self.cfg.pipeline_batches.max(1));
        self.cursor = wanted.start;
        self.shape = Some(FileShape {
            g,
            wanted,
            batch_segs,
            window_segs,
            decoder: Arc::new(decoder),
        });
        // shares whose header arrived before the UEB are checked as their heads advance
        for c in self.active.clone() {
            if c < self.cands.len() && !self.cands[c].ready && self.cands[c].header.is_some() {
                self.advance_head_deferred(c);
            }
        }
        Ok(())
    }

    fn advance_head_deferred(&mut self, c: CandId) {
        // Only validate the header here; the trailer (if any) is handled by advance_head
        // when this share's own data arrives or in plan().
        let Some((version, offsets)) = self.cands[c].header else {
            return;
        };
        let g = self.shape.as_ref().expect("set").g;
        if self.cands[c].header_ok {
            return;
        }
        match g.offsets(version) {
            Ok(want) if want == offsets => self.cands[c].header_ok = true,
            _ => {
                let reason =
                    format!("share header offsets {offsets:?} do not match the file's geometry");
                self.fail_cand(c, ProblemKind::Corrupt, reason, false);
            }
        }
    }

    // --------------------------------------------------------------------------------
    // failures

    fn fail_cand(&mut self, c: CandId, kind: ProblemKind, reason: String, retryable: bool) {
        if matches!(self.cands[c].state, CandState::Failed { .. }) || self.finished {
            return;
        }
        let was_active = self.cands[c].state == CandState::Active;
        let retryable = retryable && self.cands[c].activations < 2;
        self.cands[c].state = CandState::Failed { retryable };
        self.cands[c].failure = Some(reason.clone());
        self.active.retain(|&a| a != c);
        if was_active {
            self.stats.switches += 1;
        }
        // abandon its requests
        let ids: Vec<RequestId> = self
            .reqs
            .iter()
            .filter(|(_, r)| r.cand == Some(c))
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.cancel(id);
        }
        let cand = &mut self.cands[c];
        cand.header_req = None;
        cand.trailer_req = None;
        cand.block_reads.clear();
        for (_, key) in std::mem::take(&mut cand.stash) {
            self.buffers.remove(&key);
        }
        for j in std::mem::take(&mut cand.verifying) {
            self.verify_jobs.remove(&j);
        }
        self.fetches.retain(|_, f| f.cand != c);
        for slot in self.slots.values_mut() {
            slot.pending.retain(|&p| p != c);
        }
        let (server, shnum) = (self.cands[c].server, self.cands[c].shnum);
        self.servers[server.get()].trouble = true;
        self.report(server, Some(shnum), kind, reason);
    }

    // --------------------------------------------------------------------------------
    // planning

    fn plan(&mut self, now: Millis) {
        self.activate(now);
        self.send_lists(now);
        // heads whose trailer guess was wrong, or that were reactivated
        for c in self.active.clone() {
            self.start_head(c, now);
        }
        if self.shape.is_some() && !self.finished {
            self.plan_blocks(now);
            self.plan_block_hashes(now);
            self.plan_crypttext(now);
            self.start_verifies();
            self.start_decodes();
        }
        if !self.finished {
            self.check_progress();
        }
    }

    fn rank(&self, c: CandId) -> (u32, bool, bool, usize, Millis, ServerIndex, ShareNum) {
        let cand = &self.cands[c];
        let s = &self.servers[cand.server.get()];
        let same_server = self
            .active
            .iter()
            .filter(|&&a| self.cands[a].server == cand.server)
            .count();
        (
            cand.activations,
            s.trouble,
            s.info.score < 0,
            same_server,
            cand.rtt,
            cand.server,
            cand.shnum,
        )
    }

    fn activate(&mut self, now: Millis) {
        let k = self.cap.needed as usize;
        self.hungry = false;
        self.diversity_deadline = None;
        let fresh_lists = self.reqs.values().any(|r| r.cand.is_none() && !r.overdue);
        let wait_until = self
            .first_answer
            .map_or(0, |t| t.saturating_add(self.cfg.diversity_wait));
        let same_server_ok = !fresh_lists || now >= wait_until;
        while self.active.len() < k {
            let in_use: BTreeSet<ShareNum> =
                self.active.iter().map(|&a| self.cands[a].shnum).collect();
            let usable = |c: &Cand| {
                !in_use.contains(&c.shnum)
                    && match c.state {
                        CandState::Unused => true,
                        CandState::Failed { retryable } => retryable,
                        CandState::Active => false,
                    }
            };
            // never-used shares first; stalled ones only as a last resort
            let busy: BTreeSet<ServerIndex> =
                self.active.iter().map(|&a| self.cands[a].server).collect();
            let fresh = (0..self.cands.len())
                .filter(|&c| self.cands[c].state == CandState::Unused && usable(&self.cands[c]));
            let best = fresh.min_by_key(|&c| self.rank(c));
            let best = match best {
                Some(b) if !same_server_ok && busy.contains(&self.cands[b].server) => {
                    self.diversity_deadline = Some(wait_until);
                    break;
                }
                Some(b) => Some(b),
                None => {
                    // ask for more before retrying a stalled share
                    if self.next_list < self.servers.len() || self.lists_pending() {
                        self.hungry = true;
                        break;
                    }
                    (0..self.cands.len())
                        .filter(|&c| usable(&self.cands[c]))
                        .min_by_key(|&c| self.rank(c))
                }
            };
            let Some(c) = best else {
                self.hungry = true;
                break;
            };
            let cand = &mut self.cands[c];
            cand.state = CandState::Active;
            cand.activations += 1;
            self.active.push(c);
            self.start_head(c, now);
        }
    }

    fn lists_pending(&self) -> bool {
        self.servers.iter().any(|s| s.list == ListState::Asking)
    }

    fn send_lists(&mut self, now: Millis) {
        if !self.hungry {
            return;
        }
        loop {
            let outstanding = self
                .reqs
                .values()
                .filter(|r| r.cand.is_none() && !r.overdue)
                .count();
            if outstanding >= self.cfg.max_outstanding_lists.max(1)
                || self.next_list >= self.servers.len()
            {
                return;
            }
            let Some(server) = ServerIndex::from_position(self.next_list) else {
                // A grid of more than 2^32 servers does not exist.
                return;
            };
            self.next_list += 1;
            let id = self.new_id();
            self.servers[server.get()].list = ListState::Asking;
            self.stats.list_requests += 1;
            self.reqs.insert(
                id,
                Req {
                    server,
                    cand: None,
                    sent: now,
                    overdue: false,
                    kind: ReqKind::List,
                    len: 0,
                },
            );
            self.out.push(Action::Send {
                id,
                server,
                request: Request::ListShares,
            });
        }
    }

    /// Distinct share numbers that have, or are fetching, a block for `seg`.
    fn seg_shnums(&self, seg: u64) -> BTreeSet<ShareNum> {
        let mut s = BTreeSet::new();
        if let Some(slot) = self.slots.get(&seg) {
            s.extend(slot.blocks.iter().map(|b| b.0));
            s.extend(slot.pending.iter().map(|&c| self.cands[c].shnum));
        }
        s
    }

    fn seg_needs(&self, seg: u64, c: CandId) -> bool {
        let s = self.seg_shnums(seg);
        if let Some(slot) = self.slots.get(&seg) {
            if slot.output.is_some() || slot.decoding {
                return false;
            }
        }
        s.len() < self.cap.needed as usize && !s.contains(&self.cands[c].shnum)
    }

    fn plan_blocks(&mut self, now: Millis) {
        let shape = self.shape.as_ref().expect("checked");
        let (wanted_end, batch, window) = (shape.wanted.end, shape.batch_segs, shape.window_segs);
        let g = shape.g;
        let window_end = wanted_end.min(self.cursor.saturating_add(window));
        for c in self.active.clone() {
            if !self.cands[c].ready || !self.cands[c].header_ok {
                continue;
            }
            let data_off = self.cands[c].header.expect("ready").1.data;
            let mut s = self.cursor;
            loop {
                while s < window_end && !self.seg_needs(s, c) {
                    s += 1;
                }
                if s >= window_end {
                    break;
                }
                let mut e = s + 1;
                while e < window_end && e - s < batch && self.seg_needs(e, c) {
                    e += 1;
                }
                if !(e - s == batch || e == wanted_end || s < self.cursor + batch) {
                    break;
                }
                let offset = data_off + s * g.block_size;
                let len = (s..e).map(|x| g.block_len(x)).sum::<u64>();
                let id = self.send_read(c, offset, len, ReqKind::Blocks { segments: s..e }, now);
                self.cands[c].block_reads.insert(id, s..e);
                for seg in s..e {
                    self.slots.entry(seg).or_default().pending.push(c);
                }
                s = e;
            }
        }
    }

    fn covered(&self, tree: TreeKind, leaf: u64) -> bool {
        let known = match tree {
            TreeKind::Block(s) => self.decoder.block_hash(s, leaf).is_some(),
            TreeKind::Crypttext => self.decoder.crypttext_hash(leaf).is_some(),
        };
        known
            || self
                .fetches
                .values()
                .any(|f| f.tree == tree && f.leaves.contains(&leaf))
    }

    /// Fetch the nodes of `tree` needed for the uncovered run of leaves starting at `from`.
    fn plan_fetch(&mut self, c: CandId, tree: TreeKind, from: u64, now: Millis) {
        let shape = self.shape.as_ref().expect("checked");
        let limit = shape
            .wanted
            .end
            .min(from.saturating_add(self.cfg.hash_lookahead_segments.max(1)));
        let mut to = from + 1;
        while to < limit && !self.covered(tree, to) {
            to += 1;
        }
        let wanted = match tree {
            TreeKind::Block(s) => self.decoder.block_hashes_needed(s, from..to),
            TreeKind::Crypttext => self.decoder.crypttext_hashes_needed(from..to),
        };
        if wanted.is_empty() {
            return;
        }
        let Some((_, offsets)) = self.cands[c].header else {
            return;
        };
        let base = match tree {
            TreeKind::Block(_) => offsets.block_hashes,
            TreeKind::Crypttext => offsets.crypttext_hash_tree,
        };
        let fid = self.new_id();
        self.fetches.insert(
            fid,
            Fetch {
                cand: c,
                tree,
                leaves: from..to,
                wanted: wanted.clone(),
                reqs: BTreeSet::new(),
                got: BTreeMap::new(),
            },
        );
        for r in coalesce(&wanted, HASH_MERGE_GAP) {
            let offset = base + (r.start * HASH_LEN) as u64;
            let len = (r.len() * HASH_LEN) as u64;
            let id = self.send_read(
                c,
                offset,
                len,
                ReqKind::Hashes {
                    fetch: fid,
                    first_node: r.start,
                },
                now,
            );
            self.fetches
                .get_mut(&fid)
                .expect("inserted")
                .reqs
                .insert(id);
        }
    }

    fn plan_block_hashes(&mut self, now: Millis) {
        for c in self.active.clone() {
            if !self.cands[c].ready {
                continue;
            }
            let tree = TreeKind::Block(self.cands[c].shnum);
            let ranges: Vec<Range<u64>> = self.cands[c]
                .block_reads
                .values()
                .cloned()
                .chain(self.cands[c].stash.iter().map(|(r, _)| r.clone()))
                .collect();
            for r in ranges {
                for leaf in r {
                    if !self.covered(tree, leaf) {
                        self.plan_fetch(c, tree, leaf, now);
                    }
                }
            }
        }
    }

    fn plan_crypttext(&mut self, now: Millis) {
        let shape = self.shape.as_ref().expect("checked");
        let window_end = shape
            .wanted
            .end
            .min(self.cursor.saturating_add(shape.window_segs));
        let Some(&src) = self.active.iter().find(|&&c| self.cands[c].ready) else {
            return;
        };
        for seg in self.cursor..window_end {
            if self.slots.get(&seg).is_some_and(|s| s.output.is_some()) {
                continue;
            }
            if !self.covered(TreeKind::Crypttext, seg) {
                self.plan_fetch(src, TreeKind::Crypttext, seg, now);
            }
        }
    }

    fn start_verifies(&mut self) {
        let shape = self.shape.as_ref().expect("checked");
        let g = shape.g;
        for c in self.active.clone() {
            let shnum = self.cands[c].shnum;
            let stash = std::mem::take(&mut self.cands[c].stash);
            let mut keep = Vec::new();
            for (segs, key) in stash {
                let expected: Option<Vec<Hash>> = (segs.start..segs.end)
                    .map(|s| self.decoder.block_hash(shnum, s))
                    .collect();
                let Some(expected) = expected else {
                    keep.push((segs, key));
                    continue;
                };
                let Some(data) = self.buffers.remove(&key) else {
                    continue;
                };
                let id = self.new_id();
                self.verify_jobs.insert(id, (c, segs.clone()));
                self.cands[c].verifying.insert(id);
                self.out.push(Action::Work(Work::Verify(VerifyJob {
                    id,
                    shnum,
                    segments: segs.clone(),
                    data,
                    block_size: g.block_size as usize,
                    last_len: g.block_len(segs.end - 1) as usize,
                    expected,
                })));
            }
            self.cands[c].stash = keep;
        }
    }

    fn start_decodes(&mut self) {
        let k = self.cap.needed as usize;
        let decoder = self.shape.as_ref().expect("checked").decoder.clone();
        let ready: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.decoding && s.output.is_none() && s.blocks.len() >= k)
            .map(|(&seg, _)| seg)
            .collect();
        for seg in ready {
            let Some(ct) = self.decoder.crypttext_hash(seg) else {
                continue;
            };
            let id = self.new_id();
            let slot = self.slots.get_mut(&seg).expect("listed");
            slot.decoding = true;
            let mut blocks = slot.blocks.clone();
            // primary shares first: they decode by copying
            blocks.sort_by_key(|b| b.0);
            blocks.truncate(k);
            self.decode_jobs.insert(id, seg);
            self.out.push(Action::Work(Work::Decode(DecodeJob {
                id,
                segment: seg,
                blocks,
                crypttext_hash: ct,
                decoder: decoder.clone(),
            })));
        }
    }

    fn check_progress(&mut self) {
        let k = self.cap.needed as usize;
        if self.active.len() >= k
            || self.hungry && (self.next_list < self.servers.len())
            || self.lists_pending()
        {
            return;
        }
        let more = self.cands.iter().any(|c| match c.state {
            CandState::Unused => !self.active.iter().any(|&a| self.cands[a].shnum == c.shnum),
            CandState::Failed { retryable } => retryable,
            CandState::Active => false,
        });
        if more {
            return;
        }
        // Can what is active (plus blocks already verified) still finish every segment?
        let active: BTreeSet<ShareNum> = self.active.iter().map(|&a| self.cands[a].shnum).collect();
        if let Some(shape) = &self.shape {
            let window_end = shape
                .wanted
                .end
                .min(self.cursor.saturating_add(shape.window_segs));
            let beyond_window = window_end < shape.wanted.end;
            // A segment's crypttext hash comes from an active share's crypttext hash
            // tree: with none active and the node not yet verified, enough blocks alone
            // cannot finish it (seeds 2802 and 26313 of the CHK download simulation).
            let all_ok = (self.cursor..window_end).all(|seg| match self.slots.get(&seg) {
                Some(s) if s.output.is_some() || s.decoding => true,
                Some(s) => {
                    s.blocks
                        .iter()
                        .map(|b| b.0)
                        .chain(active.iter().copied())
                        .collect::<BTreeSet<_>>()
                        .len()
                        >= k
                        && (!active.is_empty() || self.covered(TreeKind::Crypttext, seg))
                }
                None => active.len() >= k,
            });
            if all_ok && (!beyond_window || active.len() >= k) {
                return;
            }
        }
        let e = self.not_enough();
        self.finish(Err(e));
    }

    fn not_enough(&self) -> DownloadError {
        let asked = self
            .servers
            .iter()
            .filter(|s| s.list != ListState::NotAsked)
            .count();
        let found: BTreeSet<ShareNum> = self.cands.iter().map(|c| c.shnum).collect();
        let holders = self.servers.iter().filter(|s| !s.shares.is_empty()).count();
        let mut failures = Vec::new();
        let empty: Vec<&str> = self
            .servers
            .iter()
            .filter(|s| s.list == ListState::Answered && s.shares.is_empty())
            .map(|s| s.info.name.as_str())
            .collect();
        if !empty.is_empty() {
            failures.push(format!(
                "{} server(s) have no shares ({})",
                empty.len(),
                empty.join(", ")
            ));
        }
        for s in &self.servers {
            if let Some(f) = &s.list_failure {
                failures.push(format!("server {}: {f}", s.info.name));
            } else if s.list == ListState::Asking {
                failures.push(format!(
                    "server {}: share list query unanswered",
                    s.info.name
                ));
            }
        }
        for c in &self.cands {
            if let Some(f) = &c.failure {
                failures.push(format!(
                    "share {} on server {}: {f}",
                    c.shnum,
                    self.servers[c.server.get()].info.name
                ));
            }
        }
        DownloadError::NotEnoughShares {
            servers: self.servers.len(),
            asked,
            found: found.len(),
            copies: self.cands.len(),
            holders,
            needed: self.cap.needed as usize,
            failures,
        }
    }
}

impl<B: AsRef<[u8]> + Clone> machine::Machine for DownloadMachine<B> {
    type Request = Request;
    type Response = Response<B>;
    type Output = Chunk;
    type Outcome = Result<(), DownloadError>;
    type Job = Work<B>;
    /// The download machine takes any event in any state.
    type Error = std::convert::Infallible;

    fn start(&mut self, now: Millis) -> Vec<Action<B>> {
        DownloadMachine::start(self, now)
    }
    fn handle(&mut self, event: Event<B>, now: Millis) -> Result<Vec<Action<B>>, Self::Error> {
        Ok(DownloadMachine::handle(self, event, now))
    }
    fn next_deadline(&self) -> Option<Millis> {
        DownloadMachine::next_deadline(self)
    }
}

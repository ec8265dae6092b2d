//! Retrieve: read one version of a mutable file from its share holders (Tahoe-LAFS 1.20
//! `mutable/retrieve.py::Retrieve`; compat map §4.5).
//!
//! # Participants and goal
//!
//! The driver has a [`ServerMap`] from a [`super::Mode::Read`] update and the read cap's
//! readkey and fingerprint. [`RetrieveMachine`] picks the version to read, decides which
//! (server, share) to read which bytes from, verifies every byte before use, decodes,
//! decrypts and hands back plaintext in file order.
//!
//! # Which version (rollback resistance)
//!
//! The best recoverable version of the map (highest sequence number, then root hash), and
//! only if at least `k + epsilon` servers answered the update (otherwise
//! [`RetrieveSetupError::NotEnoughServersHeard`]): then one stale server, even one
//! answering first, cannot hide a newer recoverable version. A newer version that is *not* recoverable is
//! not silently skipped: it is listed in [`RetrieveOutcome::newer_unrecoverable`].
//!
//! # Requests
//!
//! Every request reads one range of one share ([`Action::Read`]) and is tracked by
//! (server, share, [`ReadPart`]); none is sent twice. Offsets are predicted from the signed
//! header, because every Tahoe 1.20 (and cairn) writer lays shares out the same way, so a
//! read needs no extra round trip to learn the offsets:
//!
//! * SDMF: one read of `[0, SDMF_PREFIX_ALLOWANCE + block)` per share: header, keys,
//!   share hash chain, the one-node block hash tree and the block.
//! * MDMF: the header and share hash chain `[0, 2167)`, the whole block hash tree, and one
//!   read of `salt || block` per segment wanted, all sent together.
//!
//! The header is then checked against the prediction; a share laid out differently is
//! dropped (reason given) rather than re-read.
//!
//! # Verification
//!
//! The share's signed prefix must equal the version's (whose signature the servermap
//! update checked); the share hash chain must lead from the block-tree root to the signed
//! root hash; the block hash tree must be internally consistent; every block (with its
//! salt for MDMF) must hash to its leaf. Only then is it decoded.
//!
//! # Switching, stalls, giving up
//!
//! A share whose read fails, is short, fails a check, or is not answered within
//! [`RetrieveConfig::stall_timeout`] is dropped: its outstanding reads are cancelled, the
//! server is reported ([`Action::Report`]) and another holder of a share number not in use
//! takes over from the first segment still missing. When fewer than `k` shares are left,
//! [`RetrieveError::NotEnoughShares`] names every server tried and why it failed.
//!
//! # Memory
//!
//! Blocks are requested for at most [`RetrieveConfig::segments_in_flight`] segments from
//! the output position on, and dropped as soon as their segment is decoded. A ranged read
//! requests only the segments overlapping the range (plus the block hash tree of each
//! share used: 32 bytes per node, about 64 bytes per segment).
//!
//! Verification and decoding run inline in [`RetrieveMachine::handle`] (a segment is at
//! most 128 KiB), unlike the CHK download machine, which hands them out as jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use thiserror::Error;

use super::servermap::{ServerMap, VersionId};
use super::{Inflight, MachineError, Millis, RequestId, SentAt, ServerFailure, ShareNum};
use crate::bytes::Reader;
use crate::client::machine::{self, Chunk, ServerIndex};
use crate::crypto::AesCtr;
use crate::fec::Fec;
use crate::hashtree::{tree_len, IncompleteHashTree};
use crate::hashutil::{
    block_hash, ssk_pubkey_fingerprint_hash, ssk_readkey_data_hash, Hash, HASH_LEN,
};
use crate::mutable::header::{
    parse_hashes as parse_hashes_exact, parse_share_hash_chain, MdmfOffsets, SdmfOffsets,
};
use crate::mutable::layout::{
    MDMF_HEADER_LEN, MDMF_SHARE_DATA_OFFSET, MDMF_SIGNED_PREFIX_LEN, SDMF_HEADER_LEN,
    SDMF_SIGNED_PREFIX_LEN,
};
use crate::mutable::{MutableFormat, SegmentParams, SALT_LEN};

/// Room for the verification key, signature, share hash chain and block hash tree of an
/// SDMF share in its first read (Tahoe's RSA-2048 shares need about 830 bytes).
pub const SDMF_PREFIX_ALLOWANCE: u64 = 2048;
/// Default of [`RetrieveConfig::segments_in_flight`].
pub const DEFAULT_SEGMENTS_IN_FLIGHT: u64 = 2;

/// Tunables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrieveConfig {
    /// Servers beyond `k` the servermap update must have heard from; `None` means `k`
    /// (the servermap update's own default).
    pub epsilon: Option<usize>,
    /// A read with no answer after this long has failed; its share is dropped.
    pub stall_timeout: Millis,
    /// Segments (from the output position on) whose blocks are requested at once; at
    /// least 1. Bounds memory to about this many segments.
    pub segments_in_flight: u64,
}

impl Default for RetrieveConfig {
    fn default() -> Self {
        RetrieveConfig {
            epsilon: None,
            stall_timeout: 10_000,
            segments_in_flight: DEFAULT_SEGMENTS_IN_FLIGHT,
        }
    }
}

/// The read cap's secrets the machine needs.
#[derive(Clone)]
pub struct RetrieveKeys {
    pub readkey: [u8; 16],
    /// The public-key fingerprint: must be the one the servermap update checked against.
    pub fingerprint: Hash,
}

impl std::fmt::Debug for RetrieveKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetrieveKeys(..)")
    }
}

/// Which piece of a share a read is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReadPart {
    /// SDMF: the whole share up to the end of its block. MDMF: the header, keys and share
    /// hash chain (everything before the share data).
    Header,
    /// MDMF: the whole block hash tree.
    BlockHashTree,
    /// MDMF: `salt || block` of this segment.
    Segment(u64),
}

pub use crate::client::machine::{Problem, ProblemKind};

/// A read of one share the driver must send ([`machine::Action::Send`]): `[offset, offset
/// + len)` of share `shnum`, answered with those bytes (fewer where the share ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub shnum: ShareNum,
    pub offset: u64,
    pub len: u64,
    pub part: ReadPart,
}

/// What the driver must do: reads, cancellations, reports of dropped shares (for
/// [`ProblemKind::Corrupt`], advise the server of a corrupt share), plaintext at its offset
/// of the file (in order, without gaps, covering exactly the range asked for), and the
/// result.
pub type Action = machine::Action<Read, Chunk, Result<RetrieveOutcome, RetrieveError>>;

/// What happened: a read answered with bytes of the share, a failure, or a tick (reads
/// overdue by [`RetrieveConfig::stall_timeout`] are dropped as stalls).
pub type Event = machine::Event<Vec<u8>>;

/// A successful retrieve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrieveOutcome {
    /// The version read.
    pub version: VersionId,
    /// Versions newer than `version` that were seen but are not recoverable: the data
    /// returned may be older than the latest write (a publish in progress or lost shares).
    pub newer_unrecoverable: Vec<VersionId>,
    /// Plaintext bytes output.
    pub bytes: u64,
    /// Shares dropped on the way (the data is still correct).
    pub problems: Vec<Problem>,
}

/// Why no retrieve can start.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RetrieveSetupError {
    /// Rollback protection: too few servers answered to trust that no newer version is
    /// recoverable.
    #[error(
        "only {heard} servers answered the servermap update; reading needs k + epsilon = \
         {needed} so that stale servers cannot hide a newer version"
    )]
    NotEnoughServersHeard { heard: usize, needed: usize },
    /// No version has `k` distinct shares.
    #[error("no recoverable version: {}; failures: {}", describe_versions(.versions), describe_failures(.failures))]
    NoRecoverableVersion {
        /// (seqnum, distinct shares found, k) of every version seen.
        versions: Vec<(u64, usize, u8)>,
        failures: Vec<ServerFailure>,
    },
    #[error("range {start}..{end} is outside the file of {len} bytes")]
    BadRange { start: u64, end: u64, len: u64 },
    #[error("the version's header is unusable: {0}")]
    BadHeader(String),
    #[error("segments_in_flight must be at least 1")]
    BadConfig,
}

/// Why a retrieve failed after it started.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RetrieveError {
    #[error(
        "not enough good shares of version {seqnum}: need {k}, {usable} usable; {}",
        describe_problems(.problems)
    )]
    NotEnoughShares {
        seqnum: u64,
        k: u8,
        usable: usize,
        problems: Vec<Problem>,
    },
    /// The erasure decoder refused blocks that had verified (a bug, please report).
    #[error("decoding segment {segment} failed: {reason}")]
    Decode { segment: u64, reason: String },
}

fn describe_versions(v: &[(u64, usize, u8)]) -> String {
    if v.is_empty() {
        return "no shares found".into();
    }
    v.iter()
        .map(|(s, have, k)| format!("seqnum {s} has {have} of {k} shares"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_failures(f: &[ServerFailure]) -> String {
    if f.is_empty() {
        return "none".into();
    }
    f.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_problems(p: &[Problem]) -> String {
    if p.is_empty() {
        return "no share failed (too few holders)".into();
    }
    p.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Clone, Debug)]
struct Request {
    server: ServerIndex,
    shnum: ShareNum,
    part: ReadPart,
    /// Bytes asked for (an answer with fewer means the share is short).
    len: u64,
    sent: Millis,
}

impl SentAt for Request {
    fn sent_at(&self) -> Millis {
        self.sent
    }
}

/// One share being read.
#[derive(Debug, Default)]
struct Slot {
    header: Option<Vec<u8>>,
    bht: Option<Vec<u8>>,
    /// The verified block hash tree (every node), once header and tree checked out.
    tree: Option<Vec<Hash>>,
    /// Segment answers that came before the tree was verified.
    early: BTreeMap<u64, Vec<u8>>,
}

/// Why a share is dropped.
#[derive(Debug)]
struct Fault(ProblemKind, String);

/// A share's verified block hash tree (and, for SDMF, its one block, still unchecked).
struct Checked {
    tree: Vec<Hash>,
    sdmf_block: Option<Vec<u8>>,
}

/// A verified block of one segment.
#[derive(Debug)]
struct Block {
    salt: [u8; SALT_LEN],
    data: Vec<u8>,
}

/// The retrieve machine. See the module docs.
#[derive(Debug)]
pub struct RetrieveMachine {
    cfg: RetrieveConfig,
    keys: RetrieveKeys,
    version: VersionId,
    params: SegmentParams,
    newer_unrecoverable: Vec<VersionId>,
    /// Plaintext range to output.
    range: Range<u64>,
    /// Segments to read (empty when `range` is).
    segments: Range<u64>,
    /// Next segment to decode and output.
    next_seg: u64,
    /// Holders of the version not yet tried, in the order to try them.
    candidates: Vec<(ServerIndex, ShareNum)>,
    /// Shares in use: share number -> server.
    active: BTreeMap<ShareNum, ServerIndex>,
    slots: BTreeMap<(ServerIndex, ShareNum), Slot>,
    dropped: BTreeSet<(ServerIndex, ShareNum)>,
    /// Verified blocks: segment -> share number -> block.
    blocks: BTreeMap<u64, BTreeMap<ShareNum, Block>>,
    inflight: Inflight<Request>,
    sent: BTreeSet<(ServerIndex, ShareNum, ReadPart)>,
    problems: Vec<Problem>,
    next_id: RequestId,
    output: u64,
    fec: Option<Fec>,
    done: bool,
}

impl RetrieveMachine {
    /// Choose the version to read from `map` and plan the reads. `range`: plaintext
    /// bytes wanted (`None`: the whole file); its end is clipped at the file's length.
    pub fn new(
        cfg: RetrieveConfig,
        map: &ServerMap,
        keys: RetrieveKeys,
        range: Option<Range<u64>>,
    ) -> Result<RetrieveMachine, RetrieveSetupError> {
        if cfg.segments_in_flight == 0 {
            return Err(RetrieveSetupError::BadConfig);
        }
        let versions = map.versions();
        let Some(version) = map.best_recoverable_version() else {
            return Err(RetrieveSetupError::NoRecoverableVersion {
                versions: versions
                    .iter()
                    .rev()
                    .map(|(v, sh)| (v.seqnum, sh.len(), v.k))
                    .collect(),
                failures: map.failures().to_vec(),
            });
        };
        let k = usize::from(version.k);
        let needed = k + cfg.epsilon.unwrap_or(k);
        let heard = map.reachable_servers().len();
        if heard < needed {
            return Err(RetrieveSetupError::NotEnoughServersHeard { heard, needed });
        }
        let params = version
            .header()
            .params()
            .map_err(|e| RetrieveSetupError::BadHeader(e.to_string()))?;
        let len = version.data_length;
        let range = match range {
            None => 0..len,
            Some(r) if r.start > r.end || r.start > len => {
                return Err(RetrieveSetupError::BadRange {
                    start: r.start,
                    end: r.end,
                    len,
                })
            }
            Some(r) => r.start..r.end.min(len),
        };
        let segments = if range.is_empty() {
            0..0
        } else {
            range.start / params.segment_size..(range.end - 1) / params.segment_size + 1
        };
        let fec = if segments.is_empty() {
            None
        } else {
            Some(
                Fec::new(k, usize::from(version.n))
                    .map_err(|e| RetrieveSetupError::BadHeader(e.to_string()))?,
            )
        };
        // Holders in the order the update asked their servers (permuted order), one share
        // per server first so reads spread over as many servers as possible.
        let order: BTreeMap<ServerIndex, usize> = map
            .queried()
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i))
            .collect();
        let mut holders: Vec<(ServerIndex, ShareNum)> = versions
            .get(&version)
            .into_iter()
            .flat_map(|m| m.iter())
            .flat_map(|(sh, servers)| servers.iter().map(move |s| (*s, *sh)))
            .collect();
        holders.sort_by_key(|(s, sh)| (order.get(s).copied().unwrap_or(usize::MAX), *s, *sh));
        let mut firsts = Vec::new();
        let mut rest = Vec::new();
        let mut seen = BTreeSet::new();
        for h in holders {
            if seen.insert(h.0) {
                firsts.push(h);
            } else {
                rest.push(h);
            }
        }
        firsts.extend(rest);
        let newer_unrecoverable = map
            .unrecoverable_newer_versions()
            .into_iter()
            .rev()
            .collect();
        Ok(RetrieveMachine {
            next_seg: segments.start,
            cfg,
            keys,
            version,
            params,
            newer_unrecoverable,
            range,
            segments,
            candidates: firsts,
            active: BTreeMap::new(),
            slots: BTreeMap::new(),
            dropped: BTreeSet::new(),
            blocks: BTreeMap::new(),
            inflight: Inflight::default(),
            sent: BTreeSet::new(),
            problems: Vec::new(),
            next_id: 0,
            output: 0,
            fec,
            done: false,
        })
    }

    /// The first reads (call once).
    pub fn start(&mut self, now: Millis) -> Vec<Action> {
        let mut actions = Vec::new();
        self.pump(now, &mut actions);
        actions
    }

    /// Feed one event.
    pub fn handle(&mut self, event: Event, now: Millis) -> Result<Vec<Action>, MachineError> {
        let mut actions = Vec::new();
        match event {
            Event::Tick => {
                for id in self.inflight.overdue(now, self.cfg.stall_timeout) {
                    // An earlier drop in this loop may have cancelled it already.
                    if let Some(req) = self.inflight.get(id).cloned() {
                        let reason = format!("no answer after {} ms", now - req.sent);
                        self.drop_share(
                            req.server,
                            req.shnum,
                            ProblemKind::Stall,
                            reason,
                            &mut actions,
                        );
                    }
                }
            }
            Event::Answer { id, response: data } => {
                if let Some(req) = self.inflight.take(id)? {
                    self.on_read(req, data, &mut actions);
                }
            }
            Event::Failed { id, failure } => {
                if let Some(req) = self.inflight.take(id)? {
                    let reason = format!("read of {:?} failed: {failure}", req.part);
                    self.drop_share(
                        req.server,
                        req.shnum,
                        ProblemKind::Failed(failure.fault),
                        reason,
                        &mut actions,
                    );
                }
            }
            Event::Worked(never) => match never {},
        }
        if !self.done {
            self.pump(now, &mut actions);
        }
        Ok(actions)
    }

    /// Whether [`machine::Action::Finish`] was returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The version being read.
    pub fn version(&self) -> &VersionId {
        &self.version
    }

    /// Plaintext range being output.
    pub fn range(&self) -> Range<u64> {
        self.range.clone()
    }

    /// Reads sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.inflight.len()
    }

    /// The earliest time at which an [`Event::Tick`] can change anything.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.inflight.next_deadline(self.cfg.stall_timeout)
    }

    // ---------------------------------------------------------------------------------

    fn send(
        &mut self,
        server: ServerIndex,
        shnum: ShareNum,
        part: ReadPart,
        now: Millis,
        actions: &mut Vec<Action>,
    ) {
        let (offset, len) = self.location(part);
        if !self.sent.insert((server, shnum, part)) {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.inflight.insert(
            id,
            Request {
                server,
                shnum,
                part,
                len,
                sent: now,
            },
        );
        actions.push(Action::Send {
            id,
            server,
            request: Read {
                shnum,
                offset,
                len,
                part,
            },
        });
    }

    /// Where a part of a share is, as every Tahoe 1.20 writer lays it out.
    fn location(&self, part: ReadPart) -> (u64, u64) {
        match (part, self.is_mdmf()) {
            (ReadPart::Header, true) => (0, MDMF_SHARE_DATA_OFFSET as u64),
            (ReadPart::Header, false) => (0, SDMF_PREFIX_ALLOWANCE + self.params.block_len(0)),
            (ReadPart::BlockHashTree, _) => self.mdmf_bht(),
            (ReadPart::Segment(seg), _) => self.mdmf_segment(seg),
        }
    }

    fn is_mdmf(&self) -> bool {
        self.version.format == MutableFormat::Mdmf
    }

    /// Predicted offset of the MDMF block hash tree, and its length.
    fn mdmf_bht(&self) -> (u64, u64) {
        let at = MDMF_SHARE_DATA_OFFSET as u64 + self.params.mdmf_share_data_size();
        let len = tree_len(self.params.num_segments as usize) as u64 * HASH_LEN as u64;
        (at, len)
    }

    fn mdmf_segment(&self, seg: u64) -> (u64, u64) {
        let at = MDMF_SHARE_DATA_OFFSET as u64 + seg * (self.params.block_size + SALT_LEN as u64);
        (at, self.params.block_len(seg) + SALT_LEN as u64)
    }

    /// Decode what is ready, keep `k` shares busy, request the blocks of the window.
    fn pump(&mut self, now: Millis, actions: &mut Vec<Action>) {
        if self.done {
            return;
        }
        if let Err(e) = self.decode_ready(actions) {
            return self.finish(Err(e), actions);
        }
        if self.next_seg >= self.segments.end {
            let outcome = RetrieveOutcome {
                version: self.version.clone(),
                newer_unrecoverable: self.newer_unrecoverable.clone(),
                bytes: self.output,
                problems: self.problems.clone(),
            };
            return self.finish(Ok(outcome), actions);
        }
        let k = usize::from(self.version.k);
        while self.active.len() < k {
            let pos = self.candidates.iter().position(|(s, sh)| {
                !self.active.contains_key(sh) && !self.dropped.contains(&(*s, *sh))
            });
            let Some(pos) = pos else { break };
            let (server, shnum) = self.candidates.remove(pos);
            self.active.insert(shnum, server);
            self.slots.entry((server, shnum)).or_default();
        }
        if self.active.len() < k {
            let err = RetrieveError::NotEnoughShares {
                seqnum: self.version.seqnum,
                k: self.version.k,
                usable: self.active.len(),
                problems: self.problems.clone(),
            };
            return self.finish(Err(err), actions);
        }
        let window_end = self
            .segments
            .end
            .min(self.next_seg.saturating_add(self.cfg.segments_in_flight));
        let active: Vec<(ShareNum, ServerIndex)> =
            self.active.iter().map(|(a, b)| (*a, *b)).collect();
        for (shnum, server) in active {
            // SDMF: the header read holds the one block too.
            self.send(server, shnum, ReadPart::Header, now, actions);
            if !self.is_mdmf() {
                continue;
            }
            self.send(server, shnum, ReadPart::BlockHashTree, now, actions);
            for seg in self.next_seg..window_end {
                let have = self
                    .blocks
                    .get(&seg)
                    .is_some_and(|b| b.contains_key(&shnum));
                if !have {
                    self.send(server, shnum, ReadPart::Segment(seg), now, actions);
                }
            }
        }
    }

    /// Decode and output every segment, in order, that has `k` verified blocks.
    fn decode_ready(&mut self, actions: &mut Vec<Action>) -> Result<(), RetrieveError> {
        let k = usize::from(self.version.k);
        while self.next_seg < self.segments.end {
            let seg = self.next_seg;
            if self.blocks.get(&seg).is_none_or(|b| b.len() < k) {
                return Ok(());
            }
            let blocks = self.blocks.remove(&seg).expect("checked");
            let used: Vec<(&ShareNum, &Block)> = blocks.iter().take(k).collect();
            let salt = used[0].1.salt;
            let input: Vec<(usize, &[u8])> =
                used.iter().map(|(sh, b)| (sh.get(), &b.data[..])).collect();
            let fec = self.fec.as_ref().expect("made when there are segments");
            let mut ct = fec
                .decode_all(&input)
                .map_err(|e| RetrieveError::Decode {
                    segment: seg,
                    reason: e.to_string(),
                })?
                .concat();
            ct.truncate(self.params.segment_data_len(seg) as usize);
            let key = ssk_readkey_data_hash(&salt, &self.keys.readkey);
            AesCtr::new(&key).apply(&mut ct);
            let seg_start = seg * self.params.segment_size;
            let from = self.range.start.max(seg_start);
            let to = self.range.end.min(seg_start + ct.len() as u64).max(from);
            let data = ct[(from - seg_start) as usize..(to - seg_start) as usize].to_vec();
            self.output += data.len() as u64;
            actions.push(Action::Output(Chunk { offset: from, data }));
            self.next_seg += 1;
        }
        Ok(())
    }

    fn on_read(&mut self, req: Request, data: Vec<u8>, actions: &mut Vec<Action>) {
        let key = (req.server, req.shnum);
        if self.dropped.contains(&key) || !self.slots.contains_key(&key) {
            return;
        }
        if (data.len() as u64) < req.len && req.part != ReadPart::Header {
            let reason = format!(
                "share is short: {:?} read returned {} of {} bytes",
                req.part,
                data.len(),
                req.len
            );
            return self.drop_share(req.server, req.shnum, ProblemKind::Corrupt, reason, actions);
        }
        if data.len() as u64 > req.len {
            let reason = format!("answered {} bytes to a read of {}", data.len(), req.len);
            return self.drop_share(
                req.server,
                req.shnum,
                ProblemKind::Failed(machine::Fault::Server),
                reason,
                actions,
            );
        }
        let slot = self.slots.get_mut(&key).expect("checked");
        match req.part {
            ReadPart::Header => slot.header = Some(data),
            ReadPart::BlockHashTree => slot.bht = Some(data),
            ReadPart::Segment(seg) => {
                if slot.tree.is_none() {
                    slot.early.insert(seg, data);
                    return;
                }
                if let Err(Fault(kind, reason)) = self.accept_segment(key, seg, &data) {
                    return self.drop_share(req.server, req.shnum, kind, reason, actions);
                }
                return;
            }
        }
        let slot = &self.slots[&key];
        let ready =
            slot.tree.is_none() && slot.header.is_some() && (slot.bht.is_some() || !self.is_mdmf());
        if !ready {
            return;
        }
        if let Err(Fault(kind, reason)) = self.validate(key) {
            self.drop_share(req.server, req.shnum, kind, reason, actions);
        }
    }

    /// Check the header and hash trees of a share whose first reads are all in; then its
    /// buffered blocks.
    fn validate(&mut self, key: (ServerIndex, ShareNum)) -> Result<(), Fault> {
        let slot = self
            .slots
            .get_mut(&key)
            .expect("validated shares have slots");
        let header = slot.header.take().expect("ready");
        let bht = slot.bht.take();
        let checked = if self.is_mdmf() {
            self.check_mdmf(key.1, &header, &bht.unwrap_or_default())?
        } else {
            self.check_sdmf(key.1, &header)?
        };
        let Checked { tree, sdmf_block } = checked;
        let slot = self
            .slots
            .get_mut(&key)
            .expect("validated shares have slots");
        slot.tree = Some(tree);
        let early = std::mem::take(&mut slot.early);
        if let Some(block) = sdmf_block {
            if self.segments.contains(&0) {
                self.accept_block(key, 0, None, block)?;
            }
        }
        for (seg, data) in early {
            self.accept_segment(key, seg, &data)?;
        }
        Ok(())
    }

    /// MDMF: header and offsets as predicted, share hash chain to the signed root, block
    /// hash tree consistent with its root. Returns the tree's nodes.
    fn check_mdmf(&self, shnum: ShareNum, data: &[u8], bht: &[u8]) -> Result<Checked, Fault> {
        if data.len() < MDMF_SHARE_DATA_OFFSET {
            return Err(Fault(
                ProblemKind::Corrupt,
                format!("share is short: header read returned {} bytes", data.len()),
            ));
        }
        self.check_prefix(&data[..MDMF_SIGNED_PREFIX_LEN])?;
        let o = MdmfOffsets::parse(data).map_err(|e| Fault(ProblemKind::Corrupt, e.to_string()))?;
        let (o_epk, o_shc, o_sig, o_vk, o_vke) = (
            o.enc_privkey,
            o.share_hash_chain,
            o.signature,
            o.verification_key,
            o.verification_key_end,
        );
        let (o_sd, o_bht, o_eof) = (o.share_data, o.block_hash_tree, o.eof);
        let (bht_at, bht_len) = self.mdmf_bht();
        if o_epk != MDMF_HEADER_LEN as u64
            || o_sd != MDMF_SHARE_DATA_OFFSET as u64
            || o_bht != bht_at
            || o_eof != bht_at + bht_len
        {
            return Err(Fault(
                ProblemKind::Unsupported,
                format!(
                    "offsets (share data {o_sd}, block hash tree {o_bht}, end {o_eof}) differ \
                     from Tahoe's layout ({MDMF_SHARE_DATA_OFFSET}, {bht_at}, {})",
                    bht_at + bht_len
                ),
            ));
        }
        if !(o_epk <= o_shc && o_shc <= o_sig && o_sig <= o_vk && o_vk <= o_vke && o_vke <= o_sd) {
            return Err(Fault(ProblemKind::Corrupt, "offsets out of order".into()));
        }
        self.check_fingerprint(&data[o_vk as usize..o_vke as usize])?;
        let chain = &data[o_shc as usize..o_sig as usize];
        let nodes = parse_hashes(bht, tree_len(self.params.num_segments as usize))?;
        self.check_chain(shnum, chain, nodes[0])?;
        check_tree(&nodes, self.params.num_segments as usize)?;
        Ok(Checked {
            tree: nodes,
            sdmf_block: None,
        })
    }

    /// SDMF: header, share hash chain, one-node block tree; returns it and the block.
    fn check_sdmf(&self, shnum: ShareNum, data: &[u8]) -> Result<Checked, Fault> {
        if data.len() < SDMF_HEADER_LEN {
            return Err(Fault(
                ProblemKind::Corrupt,
                format!("share is short: {} bytes", data.len()),
            ));
        }
        self.check_prefix(&data[..SDMF_SIGNED_PREFIX_LEN])?;
        let o = SdmfOffsets::parse(data).map_err(|e| Fault(ProblemKind::Corrupt, e.to_string()))?;
        let (o_sig, o_shc, o_bht, o_sd) = (
            u64::from(o.signature),
            u64::from(o.share_hash_chain),
            u64::from(o.block_hash_tree),
            u64::from(o.share_data),
        );
        let o_epk = o.enc_privkey;
        let block_len = self.params.block_len(0);
        if !(SDMF_HEADER_LEN as u64 <= o_sig && o_sig <= o_shc && o_shc <= o_bht && o_bht <= o_sd) {
            return Err(Fault(ProblemKind::Corrupt, "offsets out of order".into()));
        }
        if o_sd.checked_add(block_len) != Some(o_epk) {
            return Err(Fault(
                ProblemKind::Corrupt,
                format!(
                    "share data is {} bytes, expected {block_len}",
                    o_epk.wrapping_sub(o_sd)
                ),
            ));
        }
        if o_epk > data.len() as u64 {
            let (kind, why) = if o_epk > SDMF_PREFIX_ALLOWANCE + block_len {
                (
                    ProblemKind::Unsupported,
                    "keys and hashes are larger than predicted",
                )
            } else {
                (ProblemKind::Corrupt, "share is short")
            };
            return Err(Fault(
                kind,
                format!("{why}: block ends at {o_epk}, have {} bytes", data.len()),
            ));
        }
        self.check_fingerprint(&data[SDMF_HEADER_LEN..o_sig as usize])?;
        let nodes = parse_hashes(&data[o_bht as usize..o_sd as usize], 1)?;
        self.check_chain(shnum, &data[o_shc as usize..o_bht as usize], nodes[0])?;
        let block = data[o_sd as usize..o_epk as usize].to_vec();
        Ok(Checked {
            tree: nodes,
            sdmf_block: Some(block),
        })
    }

    /// The share's verification key must be the cap's (the servermap update checked the
    /// signature with the key of the share it read; this share's key is checked here, so
    /// a map from another file cannot be fed in unnoticed).
    fn check_fingerprint(&self, vk: &[u8]) -> Result<(), Fault> {
        if ssk_pubkey_fingerprint_hash(vk) != self.keys.fingerprint {
            return Err(Fault(
                ProblemKind::Corrupt,
                "verification key does not match the cap's fingerprint".into(),
            ));
        }
        Ok(())
    }

    /// The share's signed prefix must be the version's (whose signature was checked).
    fn check_prefix(&self, prefix: &[u8]) -> Result<(), Fault> {
        if prefix != self.version.header().signed_prefix() {
            let seq = Reader::at(prefix, 1).u64().unwrap_or(0);
            return Err(Fault(
                ProblemKind::Changed,
                format!(
                    "share holds another version (seqnum {seq}) than the servermap saw \
                     (seqnum {}): mismatched prefix",
                    self.version.seqnum
                ),
            ));
        }
        Ok(())
    }

    /// The share hash chain must prove `root` (this share's block-tree root) as leaf
    /// `shnum` of the tree whose root the version signed.
    fn check_chain(&self, shnum: ShareNum, chain: &[u8], root: Hash) -> Result<(), Fault> {
        let entries = parse_share_hash_chain(chain).map_err(|_| {
            Fault(
                ProblemKind::Corrupt,
                format!("share hash chain is {} bytes", chain.len()),
            )
        })?;
        let hashes: BTreeMap<usize, Hash> = entries
            .into_iter()
            .map(|(i, h)| (usize::from(i), h))
            .collect();
        let mut tree = IncompleteHashTree::new(usize::from(self.version.n));
        tree.set_root(self.version.root_hash)
            .and_then(|()| tree.set_hashes(&hashes, &BTreeMap::from([(shnum.get(), root)])))
            .map_err(|e| Fault(ProblemKind::Corrupt, format!("share hash chain: {e}")))
    }

    /// A `salt || block` answer for `seg` of a share whose tree is verified.
    fn accept_segment(
        &mut self,
        key: (ServerIndex, ShareNum),
        seg: u64,
        data: &[u8],
    ) -> Result<(), Fault> {
        if !self.segments.contains(&seg) || seg < self.next_seg {
            return Ok(());
        }
        let (_, len) = self.mdmf_segment(seg);
        if data.len() as u64 != len {
            return Err(Fault(
                ProblemKind::Corrupt,
                format!("segment {seg}: {} bytes, expected {len}", data.len()),
            ));
        }
        let salt: [u8; SALT_LEN] = data[..SALT_LEN].try_into().expect("16 bytes");
        self.accept_block(key, seg, Some(salt), data[SALT_LEN..].to_vec())
    }

    /// Check a block against the share's verified block hash tree and keep it.
    fn accept_block(
        &mut self,
        key: (ServerIndex, ShareNum),
        seg: u64,
        salt: Option<[u8; SALT_LEN]>,
        block: Vec<u8>,
    ) -> Result<(), Fault> {
        let tree = self.slots[&key].tree.as_ref().expect("verified first");
        let leaf = match salt {
            Some(s) => {
                let mut salted = Vec::with_capacity(SALT_LEN + block.len());
                salted.extend_from_slice(&s);
                salted.extend_from_slice(&block);
                block_hash(&salted)
            }
            None => block_hash(&block),
        };
        let first_leaf = tree.len().div_ceil(2) - 1;
        if tree.get(first_leaf + seg as usize) != Some(&leaf) {
            return Err(Fault(
                ProblemKind::Corrupt,
                format!("block of segment {seg} does not match the block hash tree"),
            ));
        }
        let salt = salt.or(self.version.iv).expect("SDMF has an IV");
        self.blocks
            .entry(seg)
            .or_default()
            .entry(key.1)
            .or_insert(Block { salt, data: block });
        Ok(())
    }

    fn drop_share(
        &mut self,
        server: ServerIndex,
        shnum: ShareNum,
        kind: ProblemKind,
        reason: String,
        actions: &mut Vec<Action>,
    ) {
        if !self.dropped.insert((server, shnum)) {
            return;
        }
        if self.active.get(&shnum) == Some(&server) {
            self.active.remove(&shnum);
        }
        self.slots.remove(&(server, shnum));
        for id in self
            .inflight
            .retire_where(|r| r.server == server && r.shnum == shnum)
        {
            actions.push(Action::Cancel { id });
        }
        let problem = Problem {
            server,
            shnum: Some(shnum),
            kind,
            reason,
        };
        self.problems.push(problem.clone());
        actions.push(Action::Report(problem));
    }

    fn finish(
        &mut self,
        result: Result<RetrieveOutcome, RetrieveError>,
        actions: &mut Vec<Action>,
    ) {
        if self.done {
            return;
        }
        self.done = true;
        for id in self.inflight.retire_where(|_| true) {
            actions.push(Action::Cancel { id });
        }
        self.blocks.clear();
        self.slots.clear();
        actions.push(Action::Finish(result));
    }
}

fn parse_hashes(bytes: &[u8], count: usize) -> Result<Vec<Hash>, Fault> {
    if bytes.len() != count * HASH_LEN {
        return Err(Fault(
            ProblemKind::Corrupt,
            format!(
                "block hash tree is {} bytes, expected {}",
                bytes.len(),
                count * HASH_LEN
            ),
        ));
    }
    // the length was checked just above
    parse_hashes_exact(bytes).ok_or(Fault(ProblemKind::Corrupt, "ragged hash list".into()))
}

/// Every node of a flattened block hash tree must be the hash of its children.
fn check_tree(nodes: &[Hash], num_leaves: usize) -> Result<(), Fault> {
    let mut tree = IncompleteHashTree::new(num_leaves);
    let all: BTreeMap<usize, Hash> = nodes.iter().copied().enumerate().collect();
    tree.set_root(nodes[0])
        .and_then(|()| tree.set_hashes(&all, &BTreeMap::new()))
        .map_err(|e| Fault(ProblemKind::Corrupt, format!("block hash tree: {e}")))
}

impl machine::Machine for RetrieveMachine {
    type Request = Read;
    type Response = Vec<u8>;
    type Output = Chunk;
    type Outcome = Result<RetrieveOutcome, RetrieveError>;
    type Job = std::convert::Infallible;
    type Error = MachineError;

    fn start(&mut self, now: Millis) -> Vec<Action> {
        RetrieveMachine::start(self, now)
    }
    fn handle(&mut self, event: Event, now: Millis) -> Result<Vec<Action>, MachineError> {
        RetrieveMachine::handle(self, event, now)
    }
    fn next_deadline(&self) -> Option<Millis> {
        RetrieveMachine::next_deadline(self)
    }
}

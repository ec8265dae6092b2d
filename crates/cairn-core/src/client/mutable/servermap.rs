//! Servermap update: which version of which share is on which server (Tahoe-LAFS 1.20
//! `mutable/servermap.py::ServermapUpdater`, `ServerMap`; compat map §4.5).
//!
//! # Participants and goal
//!
//! The driver knows the connected servers in permuted order for the storage index and
//! sends the requests; [`ServermapUpdater`] decides whom to ask and when it knows enough.
//! The result is a [`ServerMap`]: for every (server, share) found, the [`VersionId`] it
//! holds (checked: its verification key matches the cap's fingerprint and the signature
//! over the header verifies), shares that failed those checks, servers that failed and
//! why, and, in [`Mode::Write`] with a writekey, the file's private key.
//!
//! # Requests
//!
//! * [`Read::Query`]: read `[0, len)` of every share the server holds for the storage
//!   index (`slot_readv(si, [], [(0, len)])`): 4000 bytes, 1000 in [`Mode::Check`].
//! * [`Read::Share`]: a follow-up read of one share, when the verification key and
//!   signature (an MDMF share read with 1000 bytes) or the encrypted private key (an SDMF
//!   share larger than the first read) lie beyond what the query returned.
//!
//! A query is sent at most once per server, a follow-up at most once per (server, share,
//! purpose); a request without an answer after [`UpdateConfig::query_timeout`] counts as
//! failed ([`Event::Tick`]): the machine reports the stall and cancels it.
//!
//! # When it stops (Tahoe's `_check_for_done`)
//!
//! * [`Mode::Check`]: every server is asked at once; done when all have answered or failed.
//! * [`Mode::Read`]: at least `k + epsilon` servers answered, a version is recoverable,
//!   and no unrecoverable version has a higher sequence number.
//! * [`Mode::Write`]: a version is recoverable, and after the last server holding a share
//!   (in permuted order) `epsilon` servers in a row answered with no share, and every
//!   server before that boundary answered (and the private key is known, if wanted).
//!   First `N + epsilon` servers are asked.
//! * Any mode: nothing in flight and nobody left to ask.
//!
//! While not done, up to [`MAX_IN_FLIGHT`] servers are kept busy, except that in
//! [`Mode::Read`] only as many queries as answers are still missing before `k + epsilon`
//! are kept in flight (Tahoe keeps five busy and so asks more servers than it needs).
//! `epsilon` defaults to `k`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::{Inflight, MachineError, Millis, RequestId, SentAt, ServerFailure, ShareNum};
use crate::client::machine::{self, Failure, Problem, ProblemKind, ServerIndex};
use crate::hashutil::{ssk_pubkey_fingerprint_hash, Hash};
use crate::mutable::header::{MutableSharePrefix, PrefixOffsets};
use crate::mutable::keys::{decrypt_privkey, SigningKey, VerifyingKey};
use crate::mutable::layout::{
    LayoutError, ShareHeader, MAX_MUTABLE_SHARE_SIZE, SDMF_CHECKSTRING_LEN, SDMF_HEADER_LEN,
};
use crate::mutable::{MutableFormat, SALT_LEN};

/// First read in [`Mode::Read`] and [`Mode::Write`] (`ServermapUpdater._read_size`).
pub const QUERY_READ_LEN: u64 = 4000;
/// First read in [`Mode::Check`].
pub const CHECK_READ_LEN: u64 = 1000;
/// Servers kept busy while more answers are needed (Tahoe's `MAX_IN_FLIGHT`).
pub const MAX_IN_FLIGHT: usize = 5;
/// Largest verification key, signature or encrypted private key accepted from a share
/// (RSA-2048 needs about 300, 256 and 1220 bytes). Bounds follow-up reads, whose offsets
/// come from untrusted headers.
pub const MAX_KEY_FIELD_LEN: u64 = 8192;
/// A share whose verification key and signature end beyond this is refused rather than
/// re-read (Tahoe's writers put them below 2167 bytes).
pub const MAX_PREFIX_LEN: u64 = 64 * 1024;

/// How hard the update works (Tahoe's `MODE_WRITE`, `MODE_READ`, `MODE_CHECK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Before a publish: find every share so all of them are replaced.
    Write,
    /// Before a retrieve: enough to find the newest recoverable version.
    Read,
    /// Check, repair, or a retried write after a collision: ask every server.
    Check,
}

/// Parameters of one update.
#[derive(Clone, Debug)]
pub struct UpdateConfig {
    pub mode: Mode,
    /// `k` and `N` of the file as far as known (Tahoe guesses 3 and 10).
    pub k: u8,
    pub n: u8,
    /// Extra servers to hear from beyond `k` (read) or `N` (write); `None` means `k`.
    pub epsilon: Option<usize>,
    /// The cap's public-key fingerprint: shares whose verification key does not hash to
    /// it are rejected.
    pub fingerprint: Hash,
    /// With a writekey in [`Mode::Write`], the encrypted private key is fetched and
    /// checked against it ([`ServerMap::privkey`]).
    pub writekey: Option<[u8; 16]>,
    /// A request with no answer after this long has failed.
    pub query_timeout: Millis,
}

impl UpdateConfig {
    pub fn new(mode: Mode, k: u8, n: u8, fingerprint: Hash) -> UpdateConfig {
        UpdateConfig {
            mode,
            k,
            n,
            epsilon: None,
            fingerprint,
            writekey: None,
            query_timeout: 10_000,
        }
    }

    fn epsilon(&self) -> usize {
        self.epsilon.unwrap_or(usize::from(self.k))
    }
}

/// One version of the file: every field of the signed header. Ordered like Tahoe's
/// `verinfo` tuples (sequence number first, then root hash), so the greatest recoverable
/// version is the best one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId {
    pub seqnum: u64,
    pub root_hash: Hash,
    /// SDMF's IV; `None` for MDMF.
    pub iv: Option<[u8; SALT_LEN]>,
    pub segment_size: u64,
    pub data_length: u64,
    pub k: u8,
    pub n: u8,
    pub format: MutableFormat,
}

impl VersionId {
    /// The signed header this version was read from.
    pub fn header(&self) -> ShareHeader {
        ShareHeader {
            format: self.format,
            seqnum: self.seqnum,
            root_hash: self.root_hash,
            iv: self.iv,
            k: self.k,
            n: self.n,
            segment_size: self.segment_size,
            data_length: self.data_length,
        }
    }

    /// The test-vector specimen for a share of this version (57 bytes SDMF, 41 MDMF).
    pub fn checkstring(&self) -> Vec<u8> {
        self.header().checkstring()
    }
}

impl From<&ShareHeader> for VersionId {
    fn from(h: &ShareHeader) -> VersionId {
        VersionId {
            seqnum: h.seqnum,
            root_hash: h.root_hash,
            iv: h.iv,
            segment_size: h.segment_size,
            data_length: h.data_length,
            k: h.k,
            n: h.n,
            format: h.format,
        }
    }
}

/// A share that was found but failed a check; a publish overwrites it (testing for
/// exactly the bytes seen).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadShare {
    pub server: ServerIndex,
    pub shnum: ShareNum,
    /// The share's first bytes as seen (its checkstring when the header parsed).
    pub checkstring: Vec<u8>,
    pub reason: String,
}

/// What the update found (Tahoe's `ServerMap`).
#[derive(Clone, Debug)]
pub struct ServerMap {
    mode: Mode,
    shares: BTreeMap<(ServerIndex, ShareNum), VersionId>,
    reachable: BTreeSet<ServerIndex>,
    queried: Vec<ServerIndex>,
    failures: Vec<ServerFailure>,
    bad_shares: BTreeMap<(ServerIndex, ShareNum), BadShare>,
    privkey: Option<SigningKey>,
}

/// Two maps are equal when they record the same things (the private key compared by its
/// encoding: `SigningKey` has no equality, so no code compares keys by accident).
impl PartialEq for ServerMap {
    fn eq(&self, other: &ServerMap) -> bool {
        self.mode == other.mode
            && self.shares == other.shares
            && self.reachable == other.reachable
            && self.queried == other.queried
            && self.failures == other.failures
            && self.bad_shares == other.bad_shares
            && self.privkey.as_ref().map(SigningKey::pkcs8_der)
                == other.privkey.as_ref().map(SigningKey::pkcs8_der)
    }
}

impl Eq for ServerMap {}

impl ServerMap {
    /// An empty map (the "servermap" of a file being created).
    pub fn new(mode: Mode) -> ServerMap {
        ServerMap {
            mode,
            shares: BTreeMap::new(),
            reachable: BTreeSet::new(),
            queried: Vec::new(),
            failures: Vec::new(),
            bad_shares: BTreeMap::new(),
            privkey: None,
        }
    }

    /// The mode of the update that made this map.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every good share found: (server, share number) -> version.
    pub fn shares(&self) -> &BTreeMap<(ServerIndex, ShareNum), VersionId> {
        &self.shares
    }

    /// The version of `shnum` on `server`, if the update saw one.
    pub fn version_on(&self, server: ServerIndex, shnum: ShareNum) -> Option<&VersionId> {
        self.shares.get(&(server, shnum))
    }

    /// Version -> share number -> servers holding it.
    pub fn versions(&self) -> BTreeMap<VersionId, BTreeMap<ShareNum, BTreeSet<ServerIndex>>> {
        let mut m: BTreeMap<VersionId, BTreeMap<ShareNum, BTreeSet<ServerIndex>>> = BTreeMap::new();
        for ((server, sh), v) in &self.shares {
            m.entry(v.clone())
                .or_default()
                .entry(*sh)
                .or_default()
                .insert(*server);
        }
        m
    }

    /// Servers holding some share of `version`.
    pub fn servers_for(&self, version: &VersionId) -> BTreeSet<ServerIndex> {
        self.shares
            .iter()
            .filter(|(_, v)| *v == version)
            .map(|((s, _), _)| *s)
            .collect()
    }

    /// The highest sequence number seen (0 when no share was found).
    pub fn highest_seqnum(&self) -> u64 {
        self.shares.values().map(|v| v.seqnum).max().unwrap_or(0)
    }

    /// Versions with at least `k` distinct share numbers.
    pub fn recoverable_versions(&self) -> BTreeSet<VersionId> {
        self.versions()
            .into_iter()
            .filter(|(v, shares)| shares.len() >= usize::from(v.k.max(1)))
            .map(|(v, _)| v)
            .collect()
    }

    /// Versions with some shares, but fewer than `k` distinct ones.
    pub fn unrecoverable_versions(&self) -> BTreeSet<VersionId> {
        self.versions()
            .into_iter()
            .filter(|(v, shares)| shares.len() < usize::from(v.k.max(1)))
            .map(|(v, _)| v)
            .collect()
    }

    /// The greatest recoverable version (highest sequence number, then root hash).
    pub fn best_recoverable_version(&self) -> Option<VersionId> {
        self.recoverable_versions().into_iter().next_back()
    }

    /// Unrecoverable versions newer than the best recoverable one.
    pub fn unrecoverable_newer_versions(&self) -> BTreeSet<VersionId> {
        let best = self.best_recoverable_version().map_or(0, |v| v.seqnum);
        self.unrecoverable_versions()
            .into_iter()
            .filter(|v| v.seqnum > best)
            .collect()
    }

    /// Did `server` answer its query (so the map knows what it held)?
    pub fn is_reachable(&self, server: ServerIndex) -> bool {
        self.reachable.contains(&server)
    }

    pub fn reachable_servers(&self) -> &BTreeSet<ServerIndex> {
        &self.reachable
    }

    /// Servers asked, in the order asked.
    pub fn queried(&self) -> &[ServerIndex] {
        &self.queried
    }

    /// Every failed request, in order.
    pub fn failures(&self) -> &[ServerFailure] {
        &self.failures
    }

    /// Shares found that failed a check.
    pub fn bad_shares(&self) -> &BTreeMap<(ServerIndex, ShareNum), BadShare> {
        &self.bad_shares
    }

    /// The private key, found and checked against the writekey ([`Mode::Write`]).
    pub fn privkey(&self) -> Option<&SigningKey> {
        self.privkey.as_ref()
    }
}

/// A read the driver must send to a server ([`machine::Action::Send`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// Read `[0, len)` of every share the server holds (answer: one entry per share; an
    /// empty map if it holds none).
    Query { len: u64 },
    /// Read `[offset, offset + len)` of share `shnum` (answer: that share alone; fewer
    /// bytes where the share ends).
    Share {
        shnum: ShareNum,
        offset: u64,
        len: u64,
    },
}

/// A server's answer to a [`Read`]: share number -> bytes read.
pub type Shares = BTreeMap<ShareNum, Vec<u8>>;

/// What the driver must do; [`machine::Action::Finish`] carries the final [`ServerMap`].
pub type Action = machine::Action<Read, std::convert::Infallible, ServerMap>;

/// What happened: an answer ([`Shares`]), a failure, or a tick (requests overdue by
/// [`UpdateConfig::query_timeout`] fail, reported as stalls).
pub type Event = machine::Event<Shares>;

/// Bad input to [`ServermapUpdater::new`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("server {} is listed more than once", .0 .0)]
    DuplicateServer(ServerIndex),
    #[error("bad share parameters: need 1 <= k <= N, got k={k} N={n}")]
    BadParams { k: u8, n: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Purpose {
    Query,
    /// Verification key and signature of one share.
    Prefix,
    /// Encrypted private key of one share.
    Privkey,
}

impl SentAt for Request {
    fn sent_at(&self) -> Millis {
        self.sent
    }
}

#[derive(Clone, Debug)]
struct Request {
    server: ServerIndex,
    shnum: Option<ShareNum>,
    purpose: Purpose,
    sent: Millis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answered {
    WithShares,
    Empty,
    Failed,
}

/// The servermap update machine. See the module docs.
#[derive(Debug)]
pub struct ServermapUpdater {
    cfg: UpdateConfig,
    servers: Vec<ServerIndex>,
    /// Index in `servers` of the next server not yet asked.
    next: usize,
    answered: BTreeMap<ServerIndex, Answered>,
    /// Requests in flight; a late answer to one retired (answered, failed or cancelled)
    /// is ignored.
    inflight: Inflight<Request>,
    /// Every (server, share, purpose) ever sent: nothing is sent twice.
    sent: BTreeSet<(ServerIndex, Option<ShareNum>, Purpose)>,
    /// Signature checks already made: (version, key, signature) -> ok.
    checked: BTreeMap<(VersionId, Vec<u8>, Vec<u8>), bool>,
    /// The checkstring each prefix re-read started from: if the re-read fails, the share
    /// is recorded as bad with it, so a publish overwrites it (testing for it) instead of
    /// meeting it as an unexpected share (Tahoe's `_got_corrupt_share` path).
    prefix_checkstrings: BTreeMap<(ServerIndex, ShareNum), Vec<u8>>,
    completed_queries: usize,
    next_id: RequestId,
    map: ServerMap,
    done: bool,
}

impl ServermapUpdater {
    /// `servers`: the connected servers in permuted order for the storage index.
    pub fn new(cfg: UpdateConfig, servers: &[ServerIndex]) -> Result<Self, SetupError> {
        if cfg.k == 0 || cfg.k > cfg.n {
            return Err(SetupError::BadParams { k: cfg.k, n: cfg.n });
        }
        let mut seen = BTreeSet::new();
        for s in servers {
            if !seen.insert(*s) {
                return Err(SetupError::DuplicateServer(*s));
            }
        }
        Ok(ServermapUpdater {
            map: ServerMap::new(cfg.mode),
            cfg,
            servers: servers.to_vec(),
            next: 0,
            answered: BTreeMap::new(),
            inflight: Inflight::default(),
            sent: BTreeSet::new(),
            checked: BTreeMap::new(),
            prefix_checkstrings: BTreeMap::new(),
            completed_queries: 0,
            next_id: 0,
            done: false,
        })
    }

    /// The first queries (call once).
    pub fn start(&mut self, now: Millis) -> Vec<Action> {
        let initial = match self.cfg.mode {
            Mode::Check => self.servers.len(),
            Mode::Write => usize::from(self.cfg.n) + self.cfg.epsilon(),
            Mode::Read => usize::from(self.cfg.k) + self.cfg.epsilon(),
        };
        let mut actions = Vec::new();
        while self.next < self.servers.len() && self.next < initial {
            self.query_next(now, &mut actions);
        }
        self.check_done(now, &mut actions);
        actions
    }

    /// Feed one event.
    pub fn handle(&mut self, event: Event, now: Millis) -> Result<Vec<Action>, MachineError> {
        let mut actions = Vec::new();
        match event {
            Event::Tick => self.on_tick(now, &mut actions),
            Event::Answer {
                id,
                response: shares,
            } => {
                let Some(req) = self.inflight.take(id)? else {
                    return Ok(actions);
                };
                self.on_answer(req, shares, now, &mut actions);
            }
            Event::Failed { id, failure } => {
                let Some(req) = self.inflight.take(id)? else {
                    return Ok(actions);
                };
                actions.push(Action::Report(self.problem(&req, failure.clone())));
                self.on_failed(req, failure.message);
            }
            Event::Worked(never) => match never {},
        }
        if !self.done {
            self.check_done(now, &mut actions);
        }
        Ok(actions)
    }

    /// Whether [`machine::Action::Finish`] was returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// What is known so far (final once [`machine::Action::Finish`] was returned).
    pub fn servermap(&self) -> &ServerMap {
        &self.map
    }

    pub fn into_servermap(self) -> ServerMap {
        self.map
    }

    /// Requests sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.inflight.len()
    }

    /// The earliest time at which a [`Event::Tick`] can change anything.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.inflight.next_deadline(self.cfg.query_timeout)
    }

    // ---------------------------------------------------------------------------------

    fn send(
        &mut self,
        server: ServerIndex,
        shnum: Option<ShareNum>,
        purpose: Purpose,
        range: Range<u64>,
        now: Millis,
        actions: &mut Vec<Action>,
    ) {
        if !self.sent.insert((server, shnum, purpose)) {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.inflight.insert(
            id,
            Request {
                server,
                shnum,
                purpose,
                sent: now,
            },
        );
        let request = match shnum {
            None => Read::Query { len: range.end },
            Some(shnum) => Read::Share {
                shnum,
                offset: range.start,
                len: range.end - range.start,
            },
        };
        actions.push(Action::Send {
            id,
            server,
            request,
        });
    }

    fn query_next(&mut self, now: Millis, actions: &mut Vec<Action>) {
        let server = self.servers[self.next];
        self.next += 1;
        self.map.queried.push(server);
        let len = match self.cfg.mode {
            Mode::Check => CHECK_READ_LEN,
            _ => QUERY_READ_LEN,
        };
        self.send(server, None, Purpose::Query, 0..len, now, actions);
    }

    fn on_tick(&mut self, now: Millis, actions: &mut Vec<Action>) {
        for id in self.inflight.overdue(now, self.cfg.query_timeout) {
            let req = self.inflight.retire(id).expect("listed above");
            let reason = format!("no answer within {} ms", self.cfg.query_timeout);
            actions.push(Action::Report(Problem {
                server: req.server,
                shnum: req.shnum,
                kind: ProblemKind::Stall,
                reason: reason.clone(),
            }));
            actions.push(Action::Cancel { id });
            self.on_failed(req, reason);
        }
    }

    /// The report of a failed request.
    fn problem(&self, req: &Request, failure: Failure) -> Problem {
        Problem {
            server: req.server,
            shnum: req.shnum,
            kind: ProblemKind::Failed(failure.fault),
            reason: failure.message,
        }
    }

    fn on_failed(&mut self, req: Request, reason: String) {
        let during = match req.purpose {
            Purpose::Query => "query",
            Purpose::Prefix | Purpose::Privkey => "read",
        };
        self.map.failures.push(ServerFailure {
            server: req.server,
            shnum: req.shnum,
            during,
            reason,
        });
        if req.purpose == Purpose::Query {
            self.completed_queries += 1;
            self.answered.insert(req.server, Answered::Failed);
            self.map.reachable.remove(&req.server);
        }
        // A failed prefix re-read leaves that share unverified: it is bad, with the
        // checkstring its first read showed, so a publish replaces it in place rather than
        // taking it for another writer's. A failed private-key read leaves the key to be
        // found elsewhere. The server's other answers stand.
        if req.purpose == Purpose::Prefix {
            if let Some(shnum) = req.shnum {
                let cs = self
                    .prefix_checkstrings
                    .remove(&(req.server, shnum))
                    .unwrap_or_default();
                let reason = format!(
                    "re-reading its key and signature failed: {}",
                    self.map
                        .failures
                        .last()
                        .map(|f| f.reason.clone())
                        .unwrap_or_default()
                );
                self.bad_share(req.server, shnum, cs, reason);
            }
        }
    }

    fn on_answer(
        &mut self,
        req: Request,
        shares: BTreeMap<ShareNum, Vec<u8>>,
        now: Millis,
        actions: &mut Vec<Action>,
    ) {
        let server = req.server;
        match req.purpose {
            Purpose::Query => {
                self.completed_queries += 1;
                self.map.reachable.insert(server);
                let state = if shares.is_empty() {
                    Answered::Empty
                } else {
                    Answered::WithShares
                };
                self.answered.insert(server, state);
                for (shnum, data) in shares {
                    self.on_share_data(server, shnum, &data, now, actions);
                }
            }
            Purpose::Prefix => {
                let shnum = req.shnum.expect("follow-ups name a share");
                // Only the share asked for counts; anything else in the answer is ignored.
                if let Some(data) = shares.get(&shnum) {
                    self.on_share_data(server, shnum, data, now, actions);
                } else {
                    self.bad_share(server, shnum, Vec::new(), "share vanished".into());
                }
            }
            Purpose::Privkey => {
                let shnum = req.shnum.expect("follow-ups name a share");
                if let Some(data) = shares.get(&shnum) {
                    self.try_privkey(server, shnum, data);
                }
            }
        }
    }

    /// The first bytes of one share (from a query or a prefix re-read).
    fn on_share_data(
        &mut self,
        server: ServerIndex,
        shnum: ShareNum,
        data: &[u8],
        now: Millis,
        actions: &mut Vec<Action>,
    ) {
        let prefix = match parse_prefix(data) {
            Ok(p) => p,
            Err(e) => {
                let seen = data[..data.len().min(SDMF_CHECKSTRING_LEN)].to_vec();
                self.bad_share(server, shnum, seen, format!("unreadable header: {e}"));
                return;
            }
        };
        let checkstring = prefix.header.checkstring();
        let need = prefix.vk.end.max(prefix.sig.end);
        if need > MAX_PREFIX_LEN {
            let reason = format!("key and signature end at {need}, past {MAX_PREFIX_LEN}");
            self.bad_share(server, shnum, checkstring, reason);
            return;
        }
        if need > data.len() as u64 {
            if self.sent.contains(&(server, Some(shnum), Purpose::Prefix)) {
                // The re-read came back short: the share ends before its own fields.
                self.bad_share(server, shnum, checkstring, "share is truncated".into());
            } else {
                self.prefix_checkstrings
                    .insert((server, shnum), checkstring);
                self.send(server, Some(shnum), Purpose::Prefix, 0..need, now, actions);
            }
            return;
        }
        let vk = slice(data, &prefix.vk);
        let sig = slice(data, &prefix.sig);
        let version = VersionId::from(&prefix.header);
        if let Err(reason) = self.check_signature(&prefix.header, &version, vk, sig) {
            self.bad_share(server, shnum, checkstring, reason);
            return;
        }
        self.map.shares.insert((server, shnum), version);
        if self.wants_privkey() {
            if prefix.enc_privkey.end <= data.len() as u64 {
                self.try_privkey(server, shnum, slice(data, &prefix.enc_privkey));
            } else {
                self.send(
                    server,
                    Some(shnum),
                    Purpose::Privkey,
                    prefix.enc_privkey.clone(),
                    now,
                    actions,
                );
            }
        }
    }

    fn check_signature(
        &mut self,
        header: &ShareHeader,
        version: &VersionId,
        vk: &[u8],
        sig: &[u8],
    ) -> Result<(), String> {
        if ssk_pubkey_fingerprint_hash(vk) != self.cfg.fingerprint {
            return Err("verification key does not match the cap's fingerprint".into());
        }
        let key = (version.clone(), vk.to_vec(), sig.to_vec());
        if let Some(ok) = self.checked.get(&key) {
            return if *ok {
                Ok(())
            } else {
                Err("bad signature".into())
            };
        }
        let ok = VerifyingKey::from_spki_der(vk)
            .ok()
            .is_some_and(|k| k.verify(&header.signed_prefix(), sig).is_ok());
        self.checked.insert(key, ok);
        if ok {
            Ok(())
        } else {
            Err("bad signature".into())
        }
    }

    fn wants_privkey(&self) -> bool {
        self.cfg.mode == Mode::Write && self.cfg.writekey.is_some() && self.map.privkey.is_none()
    }

    fn try_privkey(&mut self, server: ServerIndex, shnum: ShareNum, enc: &[u8]) {
        let Some(writekey) = self.cfg.writekey else {
            return;
        };
        if self.map.privkey.is_some() {
            return;
        }
        match decrypt_privkey(&writekey, enc) {
            Ok(key) => self.map.privkey = Some(key),
            Err(e) => {
                let cs = self
                    .map
                    .shares
                    .remove(&(server, shnum))
                    .map(|v| v.checkstring())
                    .unwrap_or_default();
                self.bad_share(server, shnum, cs, format!("bad encrypted private key: {e}"));
            }
        }
    }

    fn bad_share(
        &mut self,
        server: ServerIndex,
        shnum: ShareNum,
        checkstring: Vec<u8>,
        reason: String,
    ) {
        self.map.bad_shares.insert(
            (server, shnum),
            BadShare {
                server,
                shnum,
                checkstring,
                reason,
            },
        );
    }

    fn servers_busy(&self) -> BTreeSet<ServerIndex> {
        self.inflight.values().map(|r| r.server).collect()
    }

    fn send_more(&mut self, target: usize, now: Millis, actions: &mut Vec<Action>) {
        let mut busy = self.servers_busy().len();
        while busy < target && self.next < self.servers.len() {
            self.query_next(now, actions);
            busy += 1;
        }
    }

    /// Tahoe's `_check_for_done`.
    fn check_done(&mut self, now: Millis, actions: &mut Vec<Action>) {
        let followups = self.inflight.values().any(|r| r.purpose != Purpose::Query);
        if self.inflight.is_empty() && self.next >= self.servers.len() {
            return self.finish(actions);
        }
        match self.cfg.mode {
            Mode::Check => {
                if self.inflight.is_empty() {
                    self.finish(actions);
                }
            }
            Mode::Read => {
                let need = usize::from(self.cfg.k) + self.cfg.epsilon();
                let best = self.map.best_recoverable_version();
                let newer = !self.map.unrecoverable_newer_versions().is_empty();
                // Servers that answered, not queries completed: Tahoe counts failed queries
                // too, but retrieve needs k + epsilon answers (rollback resistance), so a
                // failed server is replaced by another rather than counted.
                let heard = self
                    .answered
                    .values()
                    .filter(|a| !matches!(a, Answered::Failed))
                    .count();
                if heard < need {
                    // Tahoe keeps MAX_IN_FLIGHT busy here, asking more servers than it
                    // needs; cairn asks only for the answers still missing.
                    let busy_queries = self
                        .inflight
                        .values()
                        .filter(|r| r.purpose == Purpose::Query)
                        .count();
                    let missing = need - heard;
                    if busy_queries < missing {
                        let target = self.servers_busy().len() + missing - busy_queries;
                        self.send_more(target, now, actions);
                    }
                } else if best.is_none() || newer {
                    self.send_more(MAX_IN_FLIGHT, now, actions);
                } else if !followups {
                    self.finish(actions);
                }
            }
            Mode::Write => self.check_done_write(followups, now, actions),
        }
    }

    fn check_done_write(&mut self, followups: bool, now: Millis, actions: &mut Vec<Action>) {
        if self.map.recoverable_versions().is_empty() {
            return self.send_more(MAX_IN_FLIGHT, now, actions);
        }
        let eps = self.cfg.epsilon();
        let mut last_found = None;
        let mut not_found = 0usize;
        let mut unanswered_before = 0usize;
        let mut boundary = false;
        for (i, s) in self.servers.iter().enumerate() {
            match self.answered.get(s) {
                Some(Answered::Failed) => {}
                Some(Answered::Empty) => {
                    if last_found.is_some() {
                        not_found += 1;
                        if not_found >= eps {
                            boundary = true;
                            break;
                        }
                    }
                }
                Some(Answered::WithShares) => {
                    last_found = Some(i);
                    not_found = 0;
                }
                None => unanswered_before += 1,
            }
        }
        if boundary && unanswered_before == 0 {
            if self.wants_privkey() {
                if !followups {
                    self.send_more(MAX_IN_FLIGHT, now, actions);
                }
                return;
            }
            if !followups {
                self.finish(actions);
            }
            return;
        }
        let target = if boundary {
            unanswered_before
        } else {
            MAX_IN_FLIGHT
        };
        self.send_more(target, now, actions);
    }

    fn finish(&mut self, actions: &mut Vec<Action>) {
        if self.done {
            return;
        }
        self.done = true;
        for id in self.inflight.retire_where(|_| true) {
            actions.push(Action::Cancel { id });
        }
        actions.push(Action::Finish(self.map.clone()));
    }
}

/// Where the verification key, signature and encrypted private key of a share are.
struct Prefix {
    header: ShareHeader,
    vk: Range<u64>,
    sig: Range<u64>,
    enc_privkey: Range<u64>,
}

fn slice<'a>(data: &'a [u8], r: &Range<u64>) -> &'a [u8] {
    &data[r.start as usize..r.end as usize]
}

fn field(name: &'static str, start: u64, end: u64) -> Result<Range<u64>, LayoutError> {
    if end < start || end > MAX_MUTABLE_SHARE_SIZE {
        return Err(LayoutError::BadOffset {
            field: name,
            value: end,
            min: start,
            max: MAX_MUTABLE_SHARE_SIZE,
        });
    }
    if end - start > MAX_KEY_FIELD_LEN {
        return Err(LayoutError::BadLength {
            field: name,
            len: end - start,
            expected: MAX_KEY_FIELD_LEN,
        });
    }
    Ok(start..end)
}

/// Parse the header and the offsets of a share's first bytes (which need not hold the
/// whole share, unlike [`crate::mutable::MutableShare::parse`]). Never panics; ranges are
/// bounded by [`MAX_KEY_FIELD_LEN`] so follow-up reads stay small.
fn parse_prefix(data: &[u8]) -> Result<Prefix, LayoutError> {
    let MutableSharePrefix { header, offsets } = MutableSharePrefix::parse(data)?;
    let prefix = match offsets {
        PrefixOffsets::Sdmf(o) => Prefix {
            header,
            vk: field(
                "verification_key",
                SDMF_HEADER_LEN as u64,
                o.signature.into(),
            )?,
            sig: field("signature", o.signature.into(), o.share_hash_chain.into())?,
            enc_privkey: field("enc_privkey", o.enc_privkey, o.eof)?,
        },
        PrefixOffsets::Mdmf(o) => Prefix {
            header,
            vk: field(
                "verification_key",
                o.verification_key,
                o.verification_key_end,
            )?,
            sig: field("signature", o.signature, o.verification_key)?,
            enc_privkey: field("enc_privkey", o.enc_privkey, o.share_hash_chain)?,
        },
    };
    prefix.header.params()?;
    Ok(prefix)
}

impl machine::Machine for ServermapUpdater {
    type Request = Read;
    type Response = Shares;
    type Output = std::convert::Infallible;
    type Outcome = ServerMap;
    type Job = std::convert::Infallible;
    type Error = MachineError;

    fn start(&mut self, now: Millis) -> Vec<Action> {
        ServermapUpdater::start(self, now)
    }
    fn handle(&mut self, event: Event, now: Millis) -> Result<Vec<Action>, MachineError> {
        ServermapUpdater::handle(self, event, now)
    }
    fn next_deadline(&self) -> Option<Millis> {
        ServermapUpdater::next_deadline(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_prefixes_are_errors_not_panics() {
        for len in 0..200usize {
            for first in [0u8, 1, 2] {
                let mut d = vec![0xffu8; len];
                if let Some(b) = d.first_mut() {
                    *b = first;
                }
                let _ = parse_prefix(&d);
            }
        }
        assert!(matches!(
            parse_prefix(&[7]),
            Err(LayoutError::UnknownVersion(7))
        ));
    }

    #[test]
    fn far_offsets_are_refused_not_read() {
        // An MDMF header claiming its verification key sits a terabyte into the share.
        let mut d = vec![0u8; 123];
        d[0] = 1;
        d[41] = 1; // k
        d[42] = 1; // n
        for (at, v) in [
            (59, 123u64),
            (67, 123),
            (75, 123),
            (83, 1 << 40),
            (91, (1 << 40) + 300),
        ] {
            d[at..at + 8].copy_from_slice(&v.to_be_bytes());
        }
        let mut m = ServermapUpdater::new(
            UpdateConfig::new(Mode::Check, 1, 1, [0; 32]),
            &[ServerIndex(5)],
        )
        .unwrap();
        let actions = m.start(0);
        let Some(Action::Send {
            id,
            request: Read::Query { .. },
            ..
        }) = actions.first()
        else {
            panic!("{actions:?}");
        };
        let response = BTreeMap::from([(ShareNum(0), d)]);
        let actions = m.handle(Event::Answer { id: *id, response }, 1).unwrap();
        assert_eq!(actions, vec![Action::Finish(m.servermap().clone())]);
        assert!(m
            .servermap()
            .bad_shares()
            .contains_key(&(ServerIndex(5), ShareNum(0))));
    }

    #[test]
    fn version_order_is_seqnum_first() {
        let a = VersionId {
            seqnum: 2,
            root_hash: [0; 32],
            iv: None,
            segment_size: 0,
            data_length: 0,
            k: 1,
            n: 1,
            format: MutableFormat::Mdmf,
        };
        let b = VersionId {
            seqnum: 1,
            root_hash: [9; 32],
            ..a.clone()
        };
        assert!(a > b);
    }
}

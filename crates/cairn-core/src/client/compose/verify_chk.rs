//! Verify-every-share CHK download: the file is downloaded as usual (the inner
//! [`DownloadMachine`], `k` shares per segment, its output passed through), and besides,
//! every server is asked which shares it holds and every share found is read whole and
//! verified block by block against the cap ([`crate::chk::verify_share`]: UEB, share hash
//! chain, block hash tree, every block). The outcome is a per-share report (good, corrupt
//! and where, unreachable) with the download's own result, which is what check, verify and
//! repair build on.
//!
//! Shape: the download's requests, responses, output and jobs ([`download::Request`],
//! [`download::Response`], [`Chunk`], [`download::Work`]), ending with a
//! [`VerifyReport`] instead, so a driver that runs a download runs this with only its end
//! changed. The inner machine numbers its requests from 1; this machine's own requests
//! carry a tag in the top bits ([`OWN`]), which is how an answer finds its machine.
//!
//! Whole shares are read once the file's geometry is known (from the inner download's
//! verified UEB), at most [`MAX_SHARE_READS`] at a time, each share's length being the
//! v2 layout's allocated size (a v1 share answers shorter, which servers do where a share
//! ends). Memory is bounded by that many shares. If the download fails before the
//! geometry is known, the shares found are reported [`ShareStatus::Unchecked`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::cap::ChkReadCap;
use crate::chk::params::LayoutVersion;
use crate::chk::{verify_share, ChkCapInfo, DecodeError};
use crate::client::download::{
    self, DownloadConfig, DownloadError, DownloadMachine, Millis, ProblemKind, ReadPurpose,
    RequestId, ServerInfo,
};
use crate::client::machine::{self, Chunk, Machine, Problem, ServerIndex, ShareNum};

/// Tag of this machine's own request ids (the inner download's are small counters).
pub const OWN: RequestId = 1 << 60;
/// Whole-share reads in flight at once.
pub const MAX_SHARE_READS: usize = 4;

/// What was found about one share on one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShareStatus {
    /// Every block and hash verified.
    Good,
    /// It failed verification; the error says where (which block or tree).
    Corrupt(DecodeError),
    /// Listed, but reading it failed or stalled.
    Unreachable(String),
    /// Listed, but not checked: the file's geometry never became known.
    Unchecked(String),
}

/// One share on one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareReport {
    /// Index in the server list given to [`VerifyingDownload::new`].
    pub server: ServerIndex,
    pub shnum: ShareNum,
    pub status: ShareStatus,
}

/// The outcome of a verify-every-share download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// The download's own result (the file recovered, or why not).
    pub download: Result<(), DownloadError>,
    /// Every share found, by (server, share number).
    pub shares: Vec<ShareReport>,
    /// Servers whose share list could not be had, and why.
    pub unreachable_servers: Vec<(ServerIndex, String)>,
    /// Share numbers `0..N` found on no server.
    pub missing: Vec<ShareNum>,
}

impl VerifyReport {
    /// Share numbers with at least one good copy.
    pub fn good_shares(&self) -> BTreeSet<ShareNum> {
        self.shares
            .iter()
            .filter(|s| s.status == ShareStatus::Good)
            .map(|s| s.shnum)
            .collect()
    }
}

/// An action: one of the download vocabulary (the inner download's, or this machine's own
/// list and read requests), or the end with the report.
pub type Action<B> = machine::Action<download::Request, Chunk, VerifyReport, download::Work<B>>;

/// An event: the download's.
pub type Event<B> = download::Event<B>;

#[derive(Debug)]
enum Req {
    List {
        server: ServerIndex,
        sent: Millis,
    },
    Share {
        server: ServerIndex,
        shnum: ShareNum,
        sent: Millis,
    },
}

/// The verify-every-share download machine. See the module docs.
pub struct VerifyingDownload<B> {
    inner: DownloadMachine<B>,
    cap: ChkCapInfo,
    stall_timeout: Millis,
    servers: usize,
    next_id: RequestId,
    reqs: BTreeMap<RequestId, Req>,
    /// Shares listed and not yet read.
    queue: VecDeque<(ServerIndex, ShareNum)>,
    share_len: Option<u64>,
    download: Option<Result<(), DownloadError>>,
    shares: BTreeMap<(ServerIndex, ShareNum), ShareStatus>,
    unreachable: Vec<(ServerIndex, String)>,
    lists_done: usize,
    done: bool,
}

impl<B: AsRef<[u8]> + Clone> VerifyingDownload<B> {
    /// A whole-file download of `cap` from `servers` (in permuted order) that also verifies
    /// every share found.
    pub fn new(
        cap: &ChkReadCap,
        servers: Vec<ServerInfo>,
        cfg: DownloadConfig,
    ) -> Result<Self, DownloadError> {
        let info = ChkCapInfo::from(cap);
        let stall_timeout = cfg.stall_timeout;
        let count = servers.len();
        let inner = DownloadMachine::new(cap, servers, 0..info.size, cfg)?;
        Ok(VerifyingDownload {
            inner,
            cap: info,
            stall_timeout,
            servers: count,
            next_id: 0,
            reqs: BTreeMap::new(),
            queue: VecDeque::new(),
            share_len: None,
            download: None,
            shares: BTreeMap::new(),
            unreachable: Vec::new(),
            lists_done: 0,
            done: false,
        })
    }

    pub fn start(&mut self, now: Millis) -> Vec<Action<B>> {
        let mut out = Vec::new();
        for server in (0..self.servers).filter_map(ServerIndex::from_position) {
            let id = self.own_id();
            self.reqs.insert(id, Req::List { server, sent: now });
            out.push(Action::Send {
                id,
                server,
                request: download::Request::ListShares,
            });
        }
        let a = self.inner.start(now);
        self.inner_actions(a, &mut out);
        self.progress(now, &mut out);
        out
    }

    pub fn handle(&mut self, event: download::Event<B>, now: Millis) -> Vec<Action<B>> {
        let mut out = Vec::new();
        match event.request() {
            Some(id) if id & OWN != 0 => self.own_event(id, event, &mut out),
            _ => {
                let tick = event.is_tick();
                let a = self.inner.handle(event, now);
                self.inner_actions(a, &mut out);
                if tick {
                    self.overdue(now, &mut out);
                }
            }
        }
        self.progress(now, &mut out);
        out
    }

    pub fn next_deadline(&self) -> Option<Millis> {
        let own = self
            .reqs
            .values()
            .map(|r| match r {
                Req::List { sent, .. } | Req::Share { sent, .. } => {
                    sent.saturating_add(self.stall_timeout)
                }
            })
            .min();
        match (own, self.inner.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The inner download (its stats, problems, servers used).
    pub fn download(&self) -> &DownloadMachine<B> {
        &self.inner
    }

    fn own_id(&mut self) -> RequestId {
        self.next_id += 1;
        OWN | self.next_id
    }

    /// The inner download's actions pass through, except its end, which is kept.
    fn inner_actions(&mut self, actions: Vec<download::Action<B>>, out: &mut Vec<Action<B>>) {
        for a in actions {
            match a {
                machine::Action::Finish(r) => self.download = Some(r),
                machine::Action::Send {
                    id,
                    server,
                    request,
                } => out.push(Action::Send {
                    id,
                    server,
                    request,
                }),
                machine::Action::Cancel { id } => out.push(Action::Cancel { id }),
                machine::Action::Report(p) => out.push(Action::Report(p)),
                machine::Action::Work(j) => out.push(Action::Work(j)),
                machine::Action::Output(c) => out.push(Action::Output(c)),
            }
        }
        if self.share_len.is_none() {
            self.share_len = self
                .inner
                .geometry()
                .and_then(|g| g.allocated_size(LayoutVersion::V2).ok());
        }
    }

    fn own_event(&mut self, id: RequestId, event: download::Event<B>, out: &mut Vec<Action<B>>) {
        // A late answer to a request already given up on.
        let Some(req) = self.reqs.remove(&id) else {
            return;
        };
        match (req, event) {
            (
                Req::List { server, .. },
                machine::Event::Answer {
                    response: download::Response::Listed(shares),
                    ..
                },
            ) => {
                self.lists_done += 1;
                let uniq: BTreeSet<ShareNum> = shares.into_iter().collect();
                for sh in uniq {
                    if self.shares.contains_key(&(server, sh)) {
                        continue;
                    }
                    self.queue.push_back((server, sh));
                    self.shares
                        .insert((server, sh), ShareStatus::Unchecked("not read yet".into()));
                }
            }
            (Req::List { server, .. }, machine::Event::Failed { failure, .. }) => {
                self.lists_done += 1;
                self.unreachable.push((server, failure.message));
            }
            (
                Req::Share { server, shnum, .. },
                machine::Event::Answer {
                    response: download::Response::Read(data),
                    ..
                },
            ) => {
                let status = match verify_share(&self.cap, shnum, data.as_ref()) {
                    Ok(()) => ShareStatus::Good,
                    Err(e) => {
                        out.push(Action::Report(Problem {
                            server,
                            shnum: Some(shnum),
                            kind: ProblemKind::Corrupt,
                            reason: e.to_string(),
                        }));
                        ShareStatus::Corrupt(e)
                    }
                };
                self.shares.insert((server, shnum), status);
            }
            (Req::Share { server, shnum, .. }, machine::Event::Failed { failure, .. }) => {
                self.shares
                    .insert((server, shnum), ShareStatus::Unreachable(failure.message));
            }
            // An answer of the wrong kind (a driver bug): the request is given up.
            (Req::List { server, .. }, _) => {
                self.lists_done += 1;
                self.unreachable
                    .push((server, "unexpected answer to a share list".into()));
            }
            (Req::Share { server, shnum, .. }, _) => {
                self.shares.insert(
                    (server, shnum),
                    ShareStatus::Unreachable("unexpected answer to a share read".into()),
                );
            }
        }
    }

    /// Own requests past the stall timeout are given up and cancelled.
    fn overdue(&mut self, now: Millis, out: &mut Vec<Action<B>>) {
        let late: Vec<RequestId> = self
            .reqs
            .iter()
            .filter(|(_, r)| match r {
                Req::List { sent, .. } | Req::Share { sent, .. } => {
                    now.saturating_sub(*sent) >= self.stall_timeout
                }
            })
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let reason = format!("no answer within {} ms", self.stall_timeout);
            match self.reqs.remove(&id) {
                Some(Req::List { server, .. }) => {
                    self.lists_done += 1;
                    self.unreachable.push((server, reason.clone()));
                }
                Some(Req::Share { server, shnum, .. }) => {
                    self.shares
                        .insert((server, shnum), ShareStatus::Unreachable(reason.clone()));
                }
                None => continue,
            }
            out.push(Action::Cancel { id });
        }
    }

    /// Start share reads while there is room; finish when everything is settled.
    fn progress(&mut self, now: Millis, out: &mut Vec<Action<B>>) {
        if self.done {
            return;
        }
        if let Some(len) = self.share_len {
            let in_flight = |reqs: &BTreeMap<RequestId, Req>| {
                reqs.values()
                    .filter(|r| matches!(r, Req::Share { .. }))
                    .count()
            };
            while in_flight(&self.reqs) < MAX_SHARE_READS {
                let Some((server, shnum)) = self.queue.pop_front() else {
                    break;
                };
                let id = self.own_id();
                self.reqs.insert(
                    id,
                    Req::Share {
                        server,
                        shnum,
                        sent: now,
                    },
                );
                out.push(Action::Send {
                    id,
                    server,
                    request: download::Request::Read {
                        shnum,
                        offset: 0,
                        len,
                        purpose: ReadPurpose::Blocks {
                            segments: 0..u64::MAX,
                        },
                    },
                });
            }
        }
        let Some(download) = &self.download else {
            return;
        };
        let lists_settled = self.lists_done == self.servers;
        // Without a geometry nothing queued can ever be read.
        let reads_settled =
            self.reqs.is_empty() && (self.queue.is_empty() || self.share_len.is_none());
        if !(lists_settled && reads_settled) {
            return;
        }
        self.done = true;
        let found: BTreeSet<ShareNum> = self.shares.keys().map(|(_, sh)| *sh).collect();
        let report = VerifyReport {
            download: download.clone(),
            shares: self
                .shares
                .iter()
                .map(|((server, shnum), status)| ShareReport {
                    server: *server,
                    shnum: *shnum,
                    status: match status {
                        ShareStatus::Unchecked(_) => ShareStatus::Unchecked(
                            "the file's geometry never became known (no valid UEB)".into(),
                        ),
                        s => s.clone(),
                    },
                })
                .collect(),
            unreachable_servers: self.unreachable.clone(),
            missing: ShareNum::below(self.cap.total)
                .filter(|sh| !found.contains(sh))
                .collect(),
        };
        out.push(Action::Finish(report));
    }
}

impl<B: AsRef<[u8]> + Clone> Machine for VerifyingDownload<B> {
    type Request = download::Request;
    type Response = download::Response<B>;
    type Output = Chunk;
    type Outcome = VerifyReport;
    type Job = download::Work<B>;
    /// Like the download, it takes any event in any state.
    type Error = std::convert::Infallible;

    fn start(&mut self, now: Millis) -> Vec<Action<B>> {
        VerifyingDownload::start(self, now)
    }
    fn handle(&mut self, event: Event<B>, now: Millis) -> Result<Vec<Action<B>>, Self::Error> {
        Ok(VerifyingDownload::handle(self, event, now))
    }
    fn next_deadline(&self) -> Option<Millis> {
        VerifyingDownload::next_deadline(self)
    }
}

//! One operation's shared state ([`Ctx`]: the grid, the file's storage index, the options,
//! lease and write-enabler secrets, the request [`Counters`], the servermap's
//! [`FirstReads`]) and the per-server request handles every machine's requests go through:
//! [`Task`] for reads, [`Writer`] for read-test-writes.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_core::client::compose::first_reads::FirstReads as CoreFirstReads;
use cairn_core::client::machine::{Failure, ServerIndex};
use cairn_core::client::mutable::publish::{self, WriteTest};
use cairn_core::client::mutable::{Millis, ServerFailure, ShareNum};
use cairn_core::hashutil::Hash;
use cairn_core::ids::StorageIndex;
use cairn_core::mutable::keys::{ReaderKeys, WriterKeys};
use cairn_core::storage::gbs::{RtwRequest, RtwResponse, TestWriteVectors, WriteVector};

use super::publish::Payload;
use super::{MutableOptions, RoundTrips};
use crate::gbs_client::LeaseSecrets;
use crate::grid::{FileLeases, Grid, ServerEntry};

pub(super) fn millis(d: Duration) -> Millis {
    d.as_millis().min(u128::from(u64::MAX)) as Millis
}

#[derive(Default)]
pub(super) struct Counters {
    servermap: AtomicUsize,
    reads: AtomicUsize,
    writes: AtomicUsize,
    pub(super) written_bytes: std::sync::atomic::AtomicU64,
    per_server: Mutex<BTreeMap<usize, usize>>,
    writes_per_server: Mutex<BTreeMap<usize, usize>>,
}

#[derive(Clone, Copy)]
pub(super) enum Kind {
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

    pub(super) fn snapshot(&self) -> (RoundTrips, BTreeMap<usize, usize>) {
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
pub(super) struct Ctx {
    pub(super) grid: Grid,
    pub(super) si: [u8; 16],
    pub(super) counters: Arc<Counters>,
    pub(super) opts: MutableOptions,
    pub(super) leases: FileLeases,
    /// The writer's keys, for write enablers (`None` for readers).
    pub(super) write_enablers: Option<WriterKeys>,
    /// The servermap queries' first reads of each share, which a retrieve uses instead of
    /// asking again when they cover what it wants.
    pub(super) first_reads: Arc<FirstReads>,
}

/// The servermap queries' first reads of each share ([`CoreFirstReads`]), shared by the
/// request tasks that record them and the retrieves that reuse them.
#[derive(Default)]
pub(super) struct FirstReads(Mutex<CoreFirstReads>);

impl std::fmt::Debug for FirstReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |m| m.len());
        write!(f, "FirstReads({n} shares)")
    }
}

impl FirstReads {
    pub(super) fn put(&self, server: ServerIndex, shnum: ShareNum, data: &[u8], asked: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(server, shnum, data, asked);
    }

    /// Bytes `offset..offset + len` of the share if the first read determines them.
    pub(super) fn get(
        &self,
        server: ServerIndex,
        shnum: ShareNum,
        offset: u64,
        len: u64,
    ) -> Option<Vec<u8>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(server, shnum, offset, len).map(<[u8]>::to_vec)
    }
}

impl Ctx {
    pub(super) fn new(
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
    pub(super) fn server(&self, server: ServerIndex) -> Option<&ServerEntry> {
        self.grid.servers().get(server.get()).map(|e| &**e)
    }

    pub(super) fn entry(&self, server: ServerIndex) -> Arc<ServerEntry> {
        self.grid.servers()[server.get()].clone()
    }

    /// The grid's index for a machine's server index (`None`: not a server of the grid).
    pub(super) fn grid_index(&self, server: ServerIndex) -> Option<ServerIndex> {
        self.server(server).map(|_| server)
    }

    pub(super) fn name(&self, server: ServerIndex) -> String {
        self.grid
            .servers()
            .get(server.get())
            .map_or_else(|| format!("server #{}", server.0), |s| s.name())
    }

    /// Grid indices in Tahoe's order for this storage index.
    pub(super) fn permuted(&self) -> Vec<ServerIndex> {
        self.grid
            .permuted(&self.si)
            .iter()
            // (no grid has more than u32::MAX servers)
            .filter_map(|s| ServerIndex::from_position(s.index))
            .collect()
    }

    /// [`Self::permuted`] with the servers the grid knows to be down moved last.
    pub(super) fn permuted_known_down_last(&self) -> Vec<ServerIndex> {
        let (mut up, down): (Vec<_>, Vec<_>) = self
            .permuted()
            .into_iter()
            .partition(|s| self.entry(*s).health().connected != Some(false));
        up.extend(down);
        up
    }

    pub(super) fn failure_line(&self, f: &ServerFailure) -> String {
        let mut s = format!("{} failed during {}", self.name(f.server), f.during);
        if let Some(sh) = f.shnum {
            s.push_str(&format!(" (share {sh})"));
        }
        s.push_str(": ");
        s.push_str(&f.reason);
        s
    }

    /// Fire-and-forget `advise_corrupt`, as Tahoe does.
    pub(super) fn advise_corrupt(&self, server: ServerIndex, shnum: ShareNum, reason: &str) {
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
                .advise_corrupt_mutable(&StorageIndex(si), shnum, &reason)
                .await
            {
                tracing::debug!(server = %entry.name(), "advise_corrupt failed: {e}");
            }
        });
    }
}

// -------------------------------------------------------------------------------------

/// A request to a server index no grid server has (a machine given a bad list).
pub(super) fn not_a_server(server: ServerIndex) -> Failure {
    Failure::new(
        crate::Fault::Client,
        format!("server {} is not a server of the grid", server.0),
    )
}

/// A server's answer (or failure) to one request, still to come: what the request senders
/// of `servermap`, `publish` and `retrieve` return, for their own machine's executor and
/// the collision recovery's.
pub(super) type Reply<T> = Pin<Box<dyn Future<Output = Result<T, Failure>> + Send>>;

/// What a request task needs: the server, the storage index, the counters.
pub(super) struct Task {
    /// The server as the machines number it (its position in the grid's list).
    pub(super) server: ServerIndex,
    pub(super) entry: Arc<ServerEntry>,
    pub(super) si: [u8; 16],
    counters: Arc<Counters>,
    pub(super) first_reads: Arc<FirstReads>,
}

impl Ctx {
    pub(super) fn task(&self, server: ServerIndex) -> Task {
        Task {
            server,
            entry: self.entry(server),
            si: self.si,
            counters: self.counters.clone(),
            first_reads: self.first_reads.clone(),
        }
    }
}

impl Task {
    pub(super) fn count(&self, kind: Kind) {
        self.counters.count(kind, self.entry.index);
    }

    /// A request's failure, as the machine gets it (the machine's report scores it).
    pub(super) fn failed(&self, e: &crate::GbsClientError) -> Failure {
        Failure::new(e.fault(), e.to_string())
    }

    pub(super) async fn read(
        &self,
        shnum: ShareNum,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Failure> {
        match self
            .entry
            .client
            .read_mutable(&StorageIndex(self.si), shnum, offset, len)
            .await
        {
            Ok(b) => Ok(b.to_vec()),
            Err(e) => Err(self.failed(&e)),
        }
    }
}

/// What a write task needs.
pub(super) struct Writer {
    pub(super) task: Task,
    write_enabler: Hash,
    lease: LeaseSecrets,
}

impl Ctx {
    /// What writes to `server` need.
    pub(super) fn writer(&self, keys: &WriterKeys, server: ServerIndex) -> Writer {
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
    pub(super) async fn write(
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
                    let Some(data) = shares.get(sh.get()) else {
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
                    let Some(w) = writes.get(sh.get()).filter(|_| holds_old) else {
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
                *sh,
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
    pub(super) async fn send(&self, kind: Kind, req: &RtwRequest) -> Result<RtwResponse, Failure> {
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
pub(super) fn first_read_of_each(
    data: BTreeMap<cairn_core::ids::ShareNum, Vec<Vec<u8>>>,
) -> BTreeMap<ShareNum, Vec<u8>> {
    data.into_iter()
        .map(|(sh, reads)| (sh, reads.into_iter().next().unwrap_or_default()))
        .collect()
}

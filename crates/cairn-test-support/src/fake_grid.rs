//! The in-memory grid the core's mutable machine tests drive: servers numbered from 1,
//! each holding share bytes by share number, that can be down, stalled or refuse writes;
//! Tahoe's test-and-write on them; and the two servermap-update drivers the tests run on
//! it (answers fed back one at a time as they come, or a round of requests at a time).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::{ControlFlow, Range};

use cairn_core::client::machine::{Failure, Fault};
use cairn_core::client::mutable::publish::{self, WriteTest};
use cairn_core::client::mutable::servermap::{
    self, Event as SEvent, ServerMap, ServermapUpdater, UpdateConfig,
};
use cairn_core::client::mutable::{RequestId, ServerIndex, ShareNum};
use cairn_core::mutable::ShareHeader;

use crate::fixtures::MutableVersion;
use crate::stepping::{bounded, MAX_STEPS};

#[derive(Clone, Debug, Default)]
pub struct FakeServer {
    pub shares: BTreeMap<ShareNum, Vec<u8>>,
    /// Every request fails: the connection is gone.
    pub down: bool,
    /// Writes fail with a remote exception; reads work.
    pub fail_writes: bool,
    /// Requests are never answered (the driver's timer has to notice).
    pub stalled: bool,
}

/// A write as sent: (server, share, seqnum of the version written).
pub type WriteRecord = (ServerIndex, ShareNum, u64);

#[derive(Clone, Debug, Default)]
pub struct Grid {
    pub servers: BTreeMap<ServerIndex, FakeServer>,
    /// Every share write sent, in order (see [`Grid::test_and_write`]).
    pub writes: Vec<WriteRecord>,
    /// Read requests each server got from [`update_immediate`].
    pub queries: BTreeMap<ServerIndex, usize>,
}

impl Grid {
    /// Servers `1..=count`, empty.
    pub fn new(count: u32) -> Grid {
        Grid {
            servers: (1..=count)
                .map(|s| (ServerIndex(s), FakeServer::default()))
                .collect(),
            ..Grid::default()
        }
    }

    /// Share `s - 1` of `v` on server `s`, for each server in `servers`.
    pub fn with_version(count: u32, v: &MutableVersion, servers: Range<u32>) -> Grid {
        let mut g = Grid::new(count);
        for s in servers {
            let sh = ShareNum::try_from(s - 1).expect("at most 256 shares");
            g.put(ServerIndex(s), sh, &v.shares[&sh]);
        }
        g
    }

    /// Every server, in number order.
    pub fn order(&self) -> Vec<ServerIndex> {
        self.servers.keys().copied().collect()
    }

    pub fn put(&mut self, server: ServerIndex, shnum: ShareNum, bytes: &[u8]) {
        self.server(server).shares.insert(shnum, bytes.to_vec());
    }

    pub fn server(&mut self, s: ServerIndex) -> &mut FakeServer {
        self.servers.get_mut(&s).unwrap()
    }

    /// `len` bytes at `offset` of share `shnum` (every share when None), clipped at each
    /// share's end; an error when the server is down.
    pub fn read(
        &self,
        server: ServerIndex,
        shnum: Option<ShareNum>,
        offset: u64,
        len: u64,
    ) -> Result<BTreeMap<ShareNum, Vec<u8>>, String> {
        let s = &self.servers[&server];
        if s.down {
            return Err("connection lost".into());
        }
        Ok(s.shares
            .iter()
            .filter(|(sh, _)| shnum.is_none_or(|want| want == **sh))
            .map(|(sh, data)| {
                let start = (offset as usize).min(data.len());
                let end = (offset.saturating_add(len) as usize).min(data.len());
                (*sh, data[start..end].to_vec())
            })
            .collect())
    }

    /// Tahoe's `slot_testv_and_readv_and_writev` for one request: all tests (operator
    /// `eq`, data clipped at the share's length, missing shares empty), reads before
    /// writes, writes only if every test passed. Every share of the request is recorded
    /// in [`Grid::writes`], answered or not.
    pub fn test_and_write(
        &mut self,
        server: ServerIndex,
        tests: &BTreeMap<ShareNum, WriteTest>,
        version: &MutableVersion,
    ) -> Result<(bool, BTreeMap<ShareNum, Vec<u8>>), String> {
        for sh in tests.keys() {
            self.writes.push((server, *sh, version.header.seqnum));
        }
        let s = self.server(server);
        if s.down {
            return Err("connection lost".into());
        }
        if s.fail_writes {
            return Err(format!("remote exception on server {}", server.0));
        }
        let rv = publish::read_vector();
        let current: BTreeMap<ShareNum, Vec<u8>> = s
            .shares
            .iter()
            .map(|(sh, d)| (*sh, d[..(rv.size as usize).min(d.len())].to_vec()))
            .collect();
        let pass = tests.iter().all(|(sh, t)| {
            let tv = t.test_vector();
            let data = s.shares.get(sh).map(Vec::as_slice).unwrap_or(&[]);
            let start = (tv.offset as usize).min(data.len());
            let end = ((tv.offset + tv.size) as usize).min(data.len());
            data[start..end] == tv.specimen[..]
        });
        if pass {
            for sh in tests.keys() {
                s.shares.insert(*sh, version.shares[sh].clone());
            }
        }
        Ok((pass, current))
    }

    /// Share numbers of the version `header` names on the grid, and the servers holding
    /// each.
    pub fn holders_of(&self, header: &ShareHeader) -> BTreeMap<ShareNum, BTreeSet<ServerIndex>> {
        let cs = header.checkstring();
        let mut m: BTreeMap<ShareNum, BTreeSet<ServerIndex>> = BTreeMap::new();
        for (server, s) in &self.servers {
            for (sh, d) in &s.shares {
                if d.starts_with(&cs) {
                    m.entry(*sh).or_default().insert(*server);
                }
            }
        }
        m
    }
}

/// Run a servermap update over every server of `grid` with immediate answers: each
/// request is answered as it is sent and the actions it causes queue behind the rest;
/// stalled servers never answer, so when only they are left the timer fires. Counts the
/// requests in [`Grid::queries`].
pub fn update_immediate(grid: &mut Grid, cfg: UpdateConfig) -> ServerMap {
    let servers = grid.order();
    let mut m = ServermapUpdater::new(cfg, &servers).unwrap();
    let mut queue: VecDeque<servermap::Action> = m.start(0).into();
    let mut now = 0;
    bounded(MAX_STEPS, || {
        let Some(action) = queue.pop_front() else {
            if m.is_done() {
                return ControlFlow::Break(());
            }
            // Only stalled requests are left: let the timer fire.
            now = m.next_deadline().expect("something is outstanding");
            queue.extend(m.handle(SEvent::Tick, now).unwrap());
            return ControlFlow::Continue(());
        };
        now += 1;
        let (id, server, r) = match read_request(&action) {
            Some((_, server, ..)) if grid.servers[&server].stalled => {
                return ControlFlow::Continue(());
            }
            Some((id, server, shnum, offset, len)) => {
                (id, server, grid.read(server, shnum, offset, len))
            }
            None if matches!(action, servermap::Action::Finish(_)) => return ControlFlow::Break(()),
            None => return ControlFlow::Continue(()),
        };
        *grid.queries.entry(server).or_default() += 1;
        let event = match r {
            Ok(response) => SEvent::Answer { id, response },
            Err(reason) => SEvent::Failed {
                id,
                failure: down(reason),
            },
        };
        queue.extend(m.handle(event, now).unwrap());
        ControlFlow::Continue(())
    });
    assert!(m.is_done(), "servermap update did not finish");
    m.into_servermap()
}

/// A servermap read request: its id, its server, and what it reads (the share, all of
/// them for a query, and the range, as [`Grid::read`] takes them); `None` for the other
/// actions.
fn read_request(
    action: &servermap::Action,
) -> Option<(RequestId, ServerIndex, Option<ShareNum>, u64, u64)> {
    match *action {
        servermap::Action::Send {
            id,
            server,
            request: servermap::Read::Query { len },
        } => Some((id, server, None, 0, len)),
        servermap::Action::Send {
            id,
            server,
            request: servermap::Read::Share { shnum, offset, len },
        } => Some((id, server, Some(shnum), offset, len)),
        _ => None,
    }
}

/// The failure a request to a server that is down gets (the connection is gone).
pub fn down(reason: impl Into<String>) -> Failure {
    Failure::new(Fault::Network, reason)
}

/// Run a servermap update in rounds: every request of a round is sent, then the answers
/// come back in the order sent (so the first servers in permuted order answer first);
/// stalled servers never answer. Returns the map and the number of rounds.
pub fn update_in_rounds(grid: &Grid, cfg: UpdateConfig) -> (ServerMap, usize) {
    let mut m = ServermapUpdater::new(cfg, &grid.order()).unwrap();
    let mut batch = m.start(0);
    let mut now = 0;
    let mut rounds = 0;
    bounded(MAX_STEPS, || {
        if m.is_done() {
            return ControlFlow::Break(());
        }
        now += 1;
        let mut events = Vec::new();
        let mut sent = false;
        for action in std::mem::take(&mut batch) {
            let Some((id, server, shnum, offset, len)) = read_request(&action) else {
                continue;
            };
            sent = true;
            if grid.servers[&server].stalled {
                continue;
            }
            let r = grid.read(server, shnum, offset, len);
            events.push(match r {
                Ok(response) => SEvent::Answer { id, response },
                Err(reason) => SEvent::Failed {
                    id,
                    failure: down(reason),
                },
            });
        }
        rounds += usize::from(sent);
        if events.is_empty() && !sent {
            now = m.next_deadline().expect("something is outstanding");
            batch.extend(m.handle(SEvent::Tick, now).unwrap());
            return ControlFlow::Continue(());
        }
        for e in events {
            batch.extend(m.handle(e, now).unwrap());
        }
        ControlFlow::Continue(())
    });
    assert!(m.is_done(), "servermap update did not finish");
    (m.into_servermap(), rounds)
}

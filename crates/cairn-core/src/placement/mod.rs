//! Servers-of-happiness share placement for immutable uploads (Tahoe-LAFS 1.20
//! `allmydata/immutable/happiness_upload.py`, `allmydata/util/happinessutil.py`,
//! `PeerSelector` in `allmydata/immutable/upload.py`).
//!
//! * [`servers_of_happiness`]: the size of a maximum matching between shares and servers
//!   (`happinessutil.servers_of_happiness`). Order-independent by nature.
//! * [`share_placement`]: `happiness_upload.share_placement` reproduced step by step, so that
//!   for the same inputs cairn and Tahoe assign every share to the same server.
//! * [`failure_message`] / [`UnhappinessError`]: the text Tahoe puts into
//!   `UploadUnhappinessError`.
//!
//! # Determinism
//!
//! Tahoe's placement iterates Python sets and dicts, and the outcome (which share goes to
//! which server, and in rare layouts even the happiness reached) depends on that order.
//! Dicts iterate in insertion order; sets of `int` iterate in an order fixed by CPython's
//! hash table (`hash(n) == n`); sets of server ids (`bytes`) iterate in an order that
//! depends on the per-process random string-hash key, so a real Tahoe node is *not*
//! deterministic here. cairn pins the one reading that can be reproduced exactly: servers
//! are identified by small integers ([`ServerIndex`], normally the position in the permuted
//! server list; `StorageFarmBroker.get_servers_for_psi`) and every set is treated as the CPython 3.11 set of those integers that
//! Tahoe would build from the same sequence of `PeerSelector` calls. The private `pyset`
//! module models CPython's set table bit for bit; see docs/placement.md.
//!
//! The maximum-flow part (Edmonds-Karp with a BFS over adjacency lists, rebuilt residual
//! network, `_servermap_flow_graph`'s shared-list quirk) is transcribed literally: the
//! matching it returns is one of many maximum matchings and is chosen by list order.

#[cfg(test)]
mod props;
mod pyset;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use pyset::PySet;

pub use crate::ids::{ServerIndex, ShareNum};

/// The result of [`share_placement`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PlacementPlan {
    /// Which server each share goes to (`share_placement`'s dict). A share mapped to a server
    /// that already holds it means "renew / re-announce", otherwise "allocate". Contains
    /// every share in `0..total_shares` when at least one writable server exists (and is
    /// empty when none does, exactly like Tahoe); may also contain share numbers
    /// `>= total_shares` found on read-only servers, as Tahoe's does.
    pub placements: BTreeMap<ShareNum, ServerIndex>,
    /// Shares the servers said they already hold (`PeerSelector.existing_shares`).
    pub existing: BTreeMap<ServerIndex, BTreeSet<ShareNum>>,
    /// Number of distinct servers in `placements` (`calculate_happiness`); equal to
    /// `servers_of_happiness` of [`PlacementPlan::sharemap`].
    pub happiness: usize,
}

impl PlacementPlan {
    /// Shares to ask `server` for in `allocate_buckets` (`Tahoe2ServerSelector._allocation_for`).
    pub fn allocation_for(&self, server: ServerIndex) -> BTreeSet<ShareNum> {
        self.placements
            .iter()
            .filter(|(_, s)| **s == server)
            .map(|(sh, _)| *sh)
            .collect()
    }

    /// Whether `server` already reported holding `share`.
    pub fn already_holds(&self, server: ServerIndex, share: ShareNum) -> bool {
        self.existing
            .get(&server)
            .is_some_and(|s| s.contains(&share))
    }

    /// The placement as `share -> {server}`, the shape [`servers_of_happiness`] takes.
    pub fn sharemap(&self) -> BTreeMap<ShareNum, BTreeSet<ServerIndex>> {
        self.placements
            .iter()
            .map(|(sh, s)| (*sh, BTreeSet::from([*s])))
            .collect()
    }

    /// Servers that will hold or already hold some share of this file.
    pub fn servers(&self) -> BTreeSet<ServerIndex> {
        self.placements.values().copied().collect()
    }

    /// Fail like Tahoe's `UploadUnhappinessError` if this plan's happiness is below `happy`.
    pub fn check_happy(&self, needed_shares: usize, happy: usize) -> Result<(), UnhappinessError> {
        if self.happiness >= happy {
            return Ok(());
        }
        let mut with_shares = self.servers();
        with_shares.extend(
            self.existing
                .iter()
                .filter(|(_, s)| !s.is_empty())
                .map(|(k, _)| *k),
        );
        Err(UnhappinessError {
            servers_with_shares: with_shares.len(),
            needed_shares,
            happy,
            effective_happiness: self.happiness,
        })
    }
}

/// Invalid input to [`share_placement`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementInputError {
    #[error("server {} is listed more than once", .0.0)]
    DuplicateServer(ServerIndex),
    #[error("read-only server {} is not in the server list", .0.0)]
    UnknownReadonlyServer(ServerIndex),
    #[error("server {} reported shares but is not in the server list", .0.0)]
    UnknownServerWithShares(ServerIndex),
    #[error("total_shares {0} is out of range 0..=256")]
    TooManyShares(u16),
}

/// Happiness could not be met (Tahoe's `UploadUnhappinessError`). `Display` is
/// `happinessutil.failure_message`, the core of Tahoe's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", failure_message(*servers_with_shares, *needed_shares, *happy, *effective_happiness))]
pub struct UnhappinessError {
    /// Servers on which shares could be placed or were found (Tahoe's `peer_count`,
    /// `len(serverids_with_shares)`).
    pub servers_with_shares: usize,
    /// `k`.
    pub needed_shares: usize,
    /// The `happy` threshold asked for.
    pub happy: usize,
    /// The servers-of-happiness value actually reached.
    pub effective_happiness: usize,
}

/// `happinessutil.failure_message(peer_count, k, happy, effective_happy)`, byte for byte.
pub fn failure_message(
    peer_count: usize,
    k: usize,
    happy: usize,
    effective_happy: usize,
) -> String {
    if peer_count < k {
        format!(
            "shares could be placed or found on only {peer_count} server(s). We were asked to \
             place shares on at least {happy} server(s) such that any {k} of them have enough \
             shares to recover the file."
        )
    } else if effective_happy < k {
        format!(
            "shares could be placed or found on {peer_count} server(s), but they are not spread \
             out evenly enough to ensure that any {k} of these servers would have enough shares \
             to recover the file. We were asked to place shares on at least {happy} servers such \
             that any {k} of them have enough shares to recover the file."
        )
    } else {
        format!(
            "shares could be placed on only {effective_happy} server(s) such that any {k} of them \
             have enough shares to recover the file, but we were asked to place shares on at \
             least {happy} such servers."
        )
    }
}

/// `happinessutil.servers_of_happiness(sharemap)`: the size of a maximum matching in the
/// bipartite graph share—server. The value of a maximum matching does not depend on the
/// order in which Tahoe's Edmonds-Karp explores the graph, so a plain augmenting-path
/// (Kuhn) matching gives the same number.
pub fn servers_of_happiness(placements: &BTreeMap<ShareNum, BTreeSet<ServerIndex>>) -> usize {
    let shares: Vec<&BTreeSet<ServerIndex>> = placements.values().collect();
    let mut owner: BTreeMap<ServerIndex, usize> = BTreeMap::new(); // server -> share index
    fn augment(
        sh: usize,
        shares: &[&BTreeSet<ServerIndex>],
        owner: &mut BTreeMap<ServerIndex, usize>,
        seen: &mut BTreeSet<ServerIndex>,
    ) -> bool {
        for &srv in shares[sh] {
            if !seen.insert(srv) {
                continue;
            }
            let free = match owner.get(&srv) {
                None => true,
                Some(&other) => augment(other, shares, owner, seen),
            };
            if free {
                owner.insert(srv, sh);
                return true;
            }
        }
        false
    }
    let mut size = 0;
    for sh in 0..shares.len() {
        if augment(sh, &shares, &mut owner, &mut BTreeSet::new()) {
            size += 1;
        }
    }
    size
}

/// Compute Tahoe's share placement.
///
/// The arguments are the `PeerSelector` calls `Tahoe2ServerSelector.get_shareholders` makes,
/// in order:
/// * `servers`: `add_peer(id)` for every candidate, in permuted-list order;
/// * `readonly`: `mark_readonly_peer(id)` for each server that cannot take a share of this
///   size (full / too old), in the order given;
/// * `existing`: `add_peer_with_share(id, shnum)` for every share a server reported in its
///   `get_buckets` answer, in arrival order (repeats are harmless);
/// * `total_shares`: N, giving `shares = set(range(N))`.
///
/// The result is `PeerSelector.get_share_placements()`.
pub fn share_placement(
    servers: &[ServerIndex],
    readonly: &[ServerIndex],
    existing: &[(ServerIndex, ShareNum)],
    total_shares: u16,
) -> Result<PlacementPlan, PlacementInputError> {
    if total_shares > 256 {
        return Err(PlacementInputError::TooManyShares(total_shares));
    }
    let mut peers = PySet::new();
    let mut known = BTreeSet::new();
    for &s in servers {
        if !known.insert(s) {
            return Err(PlacementInputError::DuplicateServer(s));
        }
        peers.add(u64::from(s.0));
    }
    let mut readonly_peers = PySet::new();
    for &s in readonly {
        if !known.contains(&s) {
            return Err(PlacementInputError::UnknownReadonlyServer(s));
        }
        if readonly_peers.contains(u64::from(s.0)) {
            // Tahoe's second mark_readonly_peer raises KeyError.
            return Err(PlacementInputError::DuplicateServer(s));
        }
        readonly_peers.add(u64::from(s.0));
        peers.discard(u64::from(s.0));
    }
    let mut peers_to_shares: Dict<PySet> = Dict::default();
    let mut existing_map: BTreeMap<ServerIndex, BTreeSet<ShareNum>> = BTreeMap::new();
    for &(s, sh) in existing {
        if !known.contains(&s) {
            return Err(PlacementInputError::UnknownServerWithShares(s));
        }
        existing_map.entry(s).or_default().insert(sh);
        match peers_to_shares.get_mut(u64::from(s.0)) {
            Some(set) => set.add(u64::from(sh)),
            None => peers_to_shares.insert(u64::from(s.0), PySet::from_iter_adds([u64::from(sh)])),
        }
    }
    let shares = PySet::from_iter_adds(0..u64::from(total_shares));

    let mapping = tahoe_share_placement(&peers, &readonly_peers, &shares, &peers_to_shares);
    let placements: BTreeMap<ShareNum, ServerIndex> = mapping
        .into_iter()
        .map(|(sh, s)| {
            // Keys come from reported share numbers or range(total_shares <= 256), values
            // from the server list: both fit.
            (ShareNum(sh as u8), ServerIndex(s as u32))
        })
        .collect();
    let happiness = placements.values().collect::<BTreeSet<_>>().len();
    Ok(PlacementPlan {
        placements,
        existing: existing_map,
        happiness,
    })
}

// ---------------------------------------------------------------------------------------
// A literal transcription of happiness_upload.py. Python objects map as follows: sets of
// ints -> PySet, dicts -> Dict (insertion-ordered), lists -> Vec, None -> Option::None.
// ---------------------------------------------------------------------------------------

/// An insertion-ordered dict with int keys (Python 3.7+ dict semantics for what we use).
#[derive(Clone, Debug)]
struct Dict<V> {
    items: Vec<(u64, V)>,
}

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Dict { items: Vec::new() }
    }
}

impl<V> Dict<V> {
    fn position(&self, k: u64) -> Option<usize> {
        self.items.iter().position(|(key, _)| *key == k)
    }
    fn get(&self, k: u64) -> Option<&V> {
        self.position(k).map(|i| &self.items[i].1)
    }
    fn get_mut(&mut self, k: u64) -> Option<&mut V> {
        self.position(k).map(move |i| &mut self.items[i].1)
    }
    fn contains(&self, k: u64) -> bool {
        self.position(k).is_some()
    }
    /// `d[k] = v`: replaces in place, or appends.
    fn insert(&mut self, k: u64, v: V) {
        match self.position(k) {
            Some(i) => self.items[i].1 = v,
            None => self.items.push((k, v)),
        }
    }
    fn pop(&mut self, k: u64) -> Option<V> {
        self.position(k).map(|i| self.items.remove(i).1)
    }
    fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.items.iter().map(|(k, _)| *k)
    }
    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    fn sorted_keys(&self) -> Vec<u64> {
        let mut k: Vec<u64> = self.keys().collect();
        k.sort_unstable();
        k
    }
}

/// share -> Some(peer) | None, in Python dict order (`_convert_mappings` output; the
/// `set([peer])` values always hold exactly one peer).
type Mappings = Dict<Option<u64>>;

/// `share_placement(peers, readonly_peers, shares, peers_to_shares)`.
fn tahoe_share_placement(
    peers: &PySet,
    readonly_peers: &PySet,
    shares: &PySet,
    peers_to_shares: &Dict<PySet>,
) -> Vec<(u64, u64)> {
    if peers.is_empty() {
        return Vec::new();
    }

    // Stage 1: read-only servers' existing shares.
    let mut readonly_shares = PySet::new();
    let mut readonly_map: Dict<PySet> = Dict::default();
    for peer in peers_to_shares.sorted_keys() {
        if readonly_peers.contains(peer) {
            let held = peers_to_shares.get(peer).expect("key from dict");
            if !readonly_map.contains(peer) {
                readonly_map.insert(peer, held.clone());
            }
            for share in held.iter() {
                readonly_shares.add(share);
            }
        }
    }
    let readonly_mappings =
        calculate_mappings(readonly_peers, &readonly_shares, Some(&readonly_map));
    let (used_peers, used_shares) = extract_ids(&readonly_mappings);

    // Stage 2: writable servers' existing shares.
    let mut new_peers = PySet::copy_of(peers).difference(&used_peers);
    let mut new_shares = shares.difference(&used_shares);

    let mut servermap: Dict<PySet> = peers_to_shares.clone();
    for peer in peers_to_shares.sorted_keys() {
        if used_peers.contains(peer) {
            servermap.pop(peer);
        } else {
            let left =
                PySet::copy_of(servermap.get(peer).expect("present")).difference(&used_shares);
            let empty = left.is_empty();
            servermap.insert(peer, left);
            if empty {
                servermap.pop(peer);
                new_peers.discard(peer); // `try: new_peers.remove(peer) except KeyError: pass`
            }
        }
    }
    let existing_mappings = calculate_mappings(&new_peers, &new_shares, Some(&servermap));
    let (existing_peers, existing_shares) = extract_ids(&existing_mappings);

    // Stage 3: new shares on servers not used so far.
    new_peers = new_peers
        .difference(&existing_peers)
        .difference(&used_peers);
    new_shares = new_shares
        .difference(&existing_shares)
        .difference(&used_shares);
    let new_mappings = calculate_mappings(&new_peers, &new_shares, None);

    // dict(list(a.items()) + list(b.items()) + list(c.items()))
    let mut mappings: Mappings = Dict::default();
    for m in [&readonly_mappings, &existing_mappings, &new_mappings] {
        for (k, v) in &m.items {
            mappings.insert(*k, *v);
        }
    }
    let mut homeless_shares = PySet::new();
    for (share, v) in &mappings.items {
        if v.is_none() {
            homeless_shares.add(*share);
        }
    }
    if !homeless_shares.is_empty() {
        let mut writable_map: Dict<PySet> = Dict::default();
        for (k, v) in &peers_to_shares.items {
            if !readonly_peers.contains(*k) {
                writable_map.insert(*k, v.clone());
            }
        }
        distribute_homeless_shares(&mut mappings, &homeless_shares, &writable_map);
    }

    // Anything still None goes round-robin over the writable servers.
    let rr: Vec<u64> = peers.difference(readonly_peers).to_vec();
    let mut next = 0usize;
    let mut out = Vec::with_capacity(mappings.items.len());
    for (k, v) in &mappings.items {
        let peer = match v {
            Some(p) => *p,
            None => {
                // `peers - readonly_peers` is `peers` itself (PeerSelector keeps them
                // disjoint) and `peers` is non-empty here, so this never spins.
                let p = rr[next % rr.len()];
                next += 1;
                p
            }
        };
        out.push((*k, peer));
    }
    out
}

/// `_extract_ids(mappings)` -> (peers, shares) as Python sets.
fn extract_ids(mappings: &Mappings) -> (PySet, PySet) {
    let mut shares = PySet::new();
    let mut peers = PySet::new();
    for (share, v) in &mappings.items {
        if let Some(p) = v {
            shares.add(*share);
            peers.add(*p);
        }
    }
    (peers, shares)
}

/// `_distribute_homeless_shares(mappings, homeless_shares, peers_to_shares)`.
fn distribute_homeless_shares(
    mappings: &mut Mappings,
    homeless_shares: &PySet,
    peers_to_shares: &Dict<PySet>,
) {
    let servermap_peerids = PySet::from_iter_adds(peers_to_shares.keys());
    let mut servermap_shareids = PySet::new();
    for key in peers_to_shares.sorted_keys() {
        for share in peers_to_shares.get(key).expect("present").iter() {
            servermap_shareids.add(share);
        }
    }
    // First see whether leases can be renewed: first holder in dict order wins.
    let mut to_distribute = PySet::new();
    for share in homeless_shares.iter() {
        if servermap_shareids.contains(share) {
            for (peerid, held) in &peers_to_shares.items {
                if held.contains(share) {
                    mappings.insert(share, Some(*peerid));
                    break;
                }
            }
        } else {
            to_distribute.add(share);
        }
    }
    // Priority = number of shares each existing-share holder now has in `mappings`.
    let mut priority: Dict<usize> = Dict::default();
    for peerid in servermap_peerids.iter() {
        if !priority.contains(peerid) {
            priority.insert(peerid, 0);
        }
    }
    for (_, v) in &mappings.items {
        if let Some(p) = v {
            if servermap_peerids.contains(*p) {
                *priority.get_mut(*p).expect("initialised above") += 1;
            }
        }
    }
    if priority.is_empty() {
        return;
    }
    // queue.PriorityQueue of (count, peerid) tuples: always pops the smallest tuple.
    let mut queue: BinaryHeap<Reverse<(usize, u64)>> = priority
        .items
        .iter()
        .map(|(p, c)| Reverse((*c, *p)))
        .collect();
    for share in to_distribute.iter() {
        let Reverse((count, peer)) = queue.pop().expect("queue never shrinks");
        mappings.insert(share, Some(peer));
        queue.push(Reverse((count + 1, peer)));
    }
}

/// `_calculate_mappings(peers, shares, servermap)`; `servermap` None or `{}` takes the
/// "every peer can take every share" branch, exactly like Python's `if servermap:`.
fn calculate_mappings(peers: &PySet, shares: &PySet, servermap: Option<&Dict<PySet>>) -> Mappings {
    let peer_list = peers.to_vec(); // _reindex(peers, 1): peer i -> index 1 + i
    let share_list = shares.to_vec(); // _reindex(shares, len(peers) + 1)
    let p = peer_list.len();
    let share_index = |s: u64| share_list.iter().position(|x| *x == s).map(|i| p + 1 + i);
    let share_indices: Vec<usize> = (0..share_list.len()).map(|i| p + 1 + i).collect();

    // Adjacency of every peer node. `_servermap_flow_graph` appends to ONE list object
    // (`indexedShares`) for all peers and inserts that same object for each of them, so
    // every peer ends up adjacent to the concatenation of all peers' (known) shares.
    // `_flow_network` likewise gives every peer the full share index list.
    let peer_adj: Vec<usize> = match servermap {
        Some(map) if !map.is_empty() => {
            let mut indexed = Vec::new();
            for peer in &peer_list {
                if let Some(held) = map.get(*peer) {
                    for s in held.iter() {
                        if let Some(idx) = share_index(s) {
                            indexed.push(idx);
                        }
                    }
                }
            }
            indexed
        }
        _ => share_indices.clone(),
    };
    let sink = p + share_list.len() + 1;
    let mut graph: Vec<Vec<usize>> = Vec::with_capacity(sink + 1);
    graph.push((1..=p).collect());
    for _ in 0..p {
        graph.push(peer_adj.clone());
    }
    for _ in 0..share_list.len() {
        graph.push(vec![sink]);
    }
    graph.push(Vec::new());

    let max_graph = compute_maximum_graph(&graph, &share_indices);
    let mut out: Mappings = Dict::default();
    for (share_idx, peer_idx) in max_graph {
        let share = share_list[share_idx - p - 1];
        if !out.contains(share) {
            out.insert(share, peer_idx.map(|pi| peer_list[pi - 1]));
        }
    }
    out
}

/// `_compute_maximum_graph(graph, shareIndices)`: Edmonds-Karp, then read each share's
/// partner off the final residual network. Returns (shareIndex, Some(peerIndex) | None) in
/// `shareIndices` order.
fn compute_maximum_graph(
    graph: &[Vec<usize>],
    share_indices: &[usize],
) -> Vec<(usize, Option<usize>)> {
    let dim = graph.len();
    let mut flow = vec![vec![0i32; dim]; dim];
    let (mut residual_graph, mut residual_fn) = residual_network(graph, &flow);
    while let Some(path) = augmenting_path_for(&residual_graph) {
        let delta = path
            .iter()
            .map(|&(u, v)| residual_fn[u][v])
            .min()
            .expect("path is never empty");
        for &(u, v) in &path {
            flow[u][v] += delta;
            flow[v][u] -= delta;
        }
        (residual_graph, residual_fn) = residual_network(graph, &flow);
    }
    share_indices
        .iter()
        .map(|&si| {
            let adj = &residual_graph[si];
            if adj.len() == 1 && adj[0] == dim - 1 {
                (si, None)
            } else {
                // A share node's residual list is either [sink] or starts with its partner.
                (si, Some(adj[0]))
            }
        })
        .collect()
}

/// `residual_network(graph, f)`.
fn residual_network(graph: &[Vec<usize>], f: &[Vec<i32>]) -> (Vec<Vec<usize>>, Vec<Vec<i32>>) {
    let n = graph.len();
    let mut new_graph = vec![Vec::new(); n];
    let mut cf = vec![vec![0i32; n]; n];
    for (i, adj) in graph.iter().enumerate() {
        for &v in adj {
            if f[i][v] == 1 {
                new_graph[v].push(i);
                cf[v][i] = 1;
                cf[i][v] = -1;
            } else {
                new_graph[i].push(v);
                cf[i][v] = 1;
                cf[v][i] = -1;
            }
        }
    }
    (new_graph, cf)
}

/// `augmenting_path_for(graph)`: BFS from node 0 to the last node.
fn augmenting_path_for(graph: &[Vec<usize>]) -> Option<Vec<(usize, usize)>> {
    let pred = bfs(graph, 0);
    let sink = graph.len() - 1;
    // Python: `if bfs_tree[sink]:` (None and 0 are both false)
    match pred[sink] {
        Some(x) if x != 0 => {}
        _ => return None,
    }
    let mut path = Vec::new();
    let mut n = sink;
    while n != 0 {
        let p = pred[n].expect("BFS tree reaches the source");
        path.push((p, n));
        n = p;
    }
    path.reverse();
    Some(path)
}

/// `bfs(graph, s)`: predecessor table of a breadth-first search.
fn bfs(graph: &[Vec<usize>], s: usize) -> Vec<Option<usize>> {
    let mut seen = vec![false; graph.len()];
    let mut pred = vec![None; graph.len()];
    let mut queue = VecDeque::from([s]);
    seen[s] = true;
    while let Some(n) = queue.pop_front() {
        for &v in &graph[n] {
            if !seen[v] {
                seen[v] = true;
                pred[v] = Some(n);
                queue.push_back(v);
            }
        }
    }
    pred
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docstring_example() {
        // happinessutil.servers_of_happiness docstring layout: happiness 5.
        let mut m: BTreeMap<ShareNum, BTreeSet<ServerIndex>> = BTreeMap::new();
        for (srv, shs) in [
            (1u32, vec![1u8, 2, 3, 4]),
            (2, vec![6]),
            (3, vec![3]),
            (4, vec![4]),
            (5, vec![2]),
        ] {
            for sh in shs {
                m.entry(ShareNum(sh)).or_default().insert(ServerIndex(srv));
            }
        }
        assert_eq!(servers_of_happiness(&m), 5);
        assert_eq!(servers_of_happiness(&BTreeMap::new()), 0);
    }

    #[test]
    fn all_readonly_places_nothing() {
        let plan = share_placement(
            &[ServerIndex(0), ServerIndex(1)],
            &[ServerIndex(0), ServerIndex(1)],
            &[(ServerIndex(0), ShareNum(0))],
            3,
        )
        .unwrap();
        assert!(plan.placements.is_empty());
        assert_eq!(plan.happiness, 0);
    }
}

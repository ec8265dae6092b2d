//! Property tests for the placement module.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

/// (servers in permuted order, read-only subset in marking order, observations, N)
type Layout = (
    Vec<ServerIndex>,
    Vec<ServerIndex>,
    Vec<(ServerIndex, ShareNum)>,
    u16,
);

fn layout() -> impl Strategy<Value = Layout> {
    (
        1u16..=20,
        proptest::sample::subsequence((0u32..60).collect::<Vec<_>>(), 1..=25),
    )
        .prop_flat_map(|(n, ids)| {
            let ids: Vec<ServerIndex> = ids.into_iter().map(ServerIndex).collect();
            let servers = Just(ids.clone()).prop_shuffle();
            let ro = proptest::sample::subsequence(ids.clone(), 0..=ids.len()).prop_shuffle();
            let obs = proptest::collection::vec(
                (
                    proptest::sample::select(ids.clone()),
                    (0..(n as u8 + 2)).prop_map(ShareNum),
                ),
                0..30,
            );
            (servers, ro, obs, Just(n))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plan_happiness_is_servers_of_happiness((servers, ro, obs, n) in layout()) {
        let plan = share_placement(&servers, &ro, &obs, n).unwrap();
        prop_assert_eq!(plan.happiness, servers_of_happiness(&plan.sharemap()));
        // allocation_for partitions the placement
        let total: usize = plan.servers().iter().map(|s| plan.allocation_for(*s).len()).sum();
        prop_assert_eq!(total, plan.placements.len());
        for s in plan.placements.values() {
            prop_assert!(servers.contains(s));
        }
    }

    #[test]
    fn every_share_placed_when_a_writable_server_exists((servers, ro, obs, n) in layout()) {
        let plan = share_placement(&servers, &ro, &obs, n).unwrap();
        let writable = servers.iter().filter(|s| !ro.contains(s)).count();
        if writable == 0 {
            prop_assert!(plan.placements.is_empty());
        } else {
            for sh in 0..n {
                prop_assert!(plan.placements.contains_key(&ShareNum(sh as u8)));
            }
            // With nothing on the grid yet, the plan is as happy as any placement of 0..N on
            // writable servers could be. Not with shares already placed: Tahoe's algorithm
            // keeps existing shares where they are and can fall short of the optimum (its
            // vectors hold such a layout, case 12: happiness 4 where 5 was possible), and
            // cairn reproduces Tahoe's plan, so only the weaker bound holds there.
            if obs.is_empty() {
                prop_assert!(plan.happiness >= writable.min(n as usize));
            } else {
                prop_assert!(plan.happiness >= 1);
            }
        }
    }

    #[test]
    fn fresh_upload_is_spread_evenly(
        ids in proptest::sample::subsequence((0u32..200).map(ServerIndex).collect::<Vec<_>>(), 1..=25).prop_shuffle(),
        n in 1u16..=40,
    ) {
        let plan = share_placement(&ids, &[], &[], n).unwrap();
        let w = ids.len();
        prop_assert_eq!(plan.happiness, w.min(n as usize));
        prop_assert_eq!(plan.placements.len(), n as usize);
        let per = (n as usize).div_ceil(w);
        for s in &ids {
            prop_assert!(plan.allocation_for(*s).len() <= per);
        }
        // and the happiness does not depend on the server order
        let mut rev = ids.clone();
        rev.reverse();
        prop_assert_eq!(share_placement(&rev, &[], &[], n).unwrap().happiness, plan.happiness);
    }

    #[test]
    fn repeated_observations_are_irrelevant((servers, ro, obs, n) in layout(), dup in proptest::collection::vec(any::<proptest::sample::Index>(), 0..10)) {
        // Re-reporting a (server, share) pair that was already reported changes nothing:
        // Tahoe adds it to a set that already has it.
        let plan = share_placement(&servers, &ro, &obs, n).unwrap();
        if !obs.is_empty() {
            let mut more = obs.clone();
            for d in dup {
                more.push(obs[d.index(obs.len())]);
            }
            prop_assert_eq!(share_placement(&servers, &ro, &more, n).unwrap(), plan.clone());
        }
        // Each share maps to exactly one server; a server never gets the same share twice.
        let sm = plan.sharemap();
        prop_assert!(sm.values().all(|s| s.len() == 1));
    }

    #[test]
    fn servers_of_happiness_is_order_free_and_bounded(
        map in proptest::collection::btree_map(
            any::<u8>().prop_map(ShareNum),
            proptest::collection::btree_set((0u32..30).prop_map(ServerIndex), 1..5),
            0..25,
        ),
        shift in 1u32..1000,
    ) {
        let h = servers_of_happiness(&map);
        let servers: BTreeSet<ServerIndex> = map.values().flatten().copied().collect();
        prop_assert!(h <= map.len().min(servers.len()));
        // relabelling servers (reversing their order) keeps the value
        let relabelled: BTreeMap<ShareNum, BTreeSet<ServerIndex>> = map
            .iter()
            .map(|(k, v)| (*k, v.iter().map(|s| ServerIndex(shift + 1000 - s.0)).collect()))
            .collect();
        prop_assert_eq!(servers_of_happiness(&relabelled), h);
        // at least as large as a greedy matching
        let mut used = BTreeSet::new();
        let greedy = map.values().filter(|v| v.iter().find(|s| !used.contains(*s)).map(|s| used.insert(*s)).is_some()).count();
        prop_assert!(h >= greedy);
    }
}

fn srv(ids: &[u32]) -> Vec<ServerIndex> {
    ids.iter().copied().map(ServerIndex).collect()
}

#[test]
fn input_errors() {
    assert_eq!(
        share_placement(&srv(&[1, 1]), &[], &[], 3),
        Err(PlacementInputError::DuplicateServer(ServerIndex(1)))
    );
    assert_eq!(
        share_placement(&srv(&[1]), &srv(&[2]), &[], 3),
        Err(PlacementInputError::UnknownReadonlyServer(ServerIndex(2)))
    );
    assert_eq!(
        share_placement(&srv(&[1]), &srv(&[1, 1]), &[], 3),
        Err(PlacementInputError::DuplicateServer(ServerIndex(1)))
    );
    assert_eq!(
        share_placement(&srv(&[1]), &[], &[(ServerIndex(2), ShareNum(0))], 3),
        Err(PlacementInputError::UnknownServerWithShares(ServerIndex(2)))
    );
    assert_eq!(
        share_placement(&srv(&[1]), &[], &[], 257),
        Err(PlacementInputError::TooManyShares(257))
    );
}

#[test]
fn unhappiness_error() {
    let plan = share_placement(&srv(&[0, 1]), &[], &[], 10).unwrap();
    assert_eq!(plan.happiness, 2);
    assert!(plan.check_happy(3, 2).is_ok());
    let err = plan.check_happy(3, 7).unwrap_err();
    assert_eq!(err.servers_with_shares, 2);
    assert_eq!(
        err.to_string(),
        "shares could be placed or found on only 2 server(s). We were asked to place shares on \
         at least 7 server(s) such that any 3 of them have enough shares to recover the file."
    );
}

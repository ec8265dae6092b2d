//! Per-file server permutation (`StorageFarmBroker.get_servers_for_psi`, compat map §3.6).
//!
//! Every upload, download, check and repair visits servers in the order of
//! `SHA-1(storage index || permutation seed)` ([`crate::hashutil::permute_server_hash`]),
//! smallest first. Tahoe sorts by the key `(not preferred, hash)` with Python's stable sort,
//! so servers with equal keys keep their input order (the broker's: server id order for
//! static servers).
//!
//! **Preferred peers are dead in Tahoe 1.20**: `[client] peers.preferred` reaches the broker as
//! `str` but is compared with the server's `bytes` long name, so it never matches and every
//! server is "unpreferred". To order servers exactly as a Tahoe 1.20 client does, use
//! [`permuted_indices`] (no preferences). [`permuted_indices_with_preferred`] implements the
//! intended rule (preferred servers first, each group in permuted order) for callers that want
//! it. Both are checked against orders computed by Tahoe's own code
//! (`vectors/permute/generate.py`).
//!
//! The permutation seed of a server is *not* always its key: see the announcement parsing in
//! `cairn-client` (`servers`), which derives it exactly as `_parse_announcement` does.

use crate::hashutil::permute_server_hash;

/// The sort key Tahoe uses for one server: `(not preferred, SHA-1(si || seed))`.
pub fn permutation_key(storage_index: &[u8], seed: &[u8], preferred: bool) -> (bool, [u8; 20]) {
    (!preferred, permute_server_hash(storage_index, seed))
}

/// Indices into `seeds`, in the order a Tahoe 1.20 client visits those servers for the file
/// with this storage index (peer selection index). Stable for equal seeds.
pub fn permuted_indices<S: AsRef<[u8]>>(storage_index: &[u8], seeds: &[S]) -> Vec<usize> {
    let mut keyed: Vec<([u8; 20], usize)> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| (permute_server_hash(storage_index, s.as_ref()), i))
        .collect();
    // The index as second key makes the unstable sort behave like Python's stable sort.
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Like [`permuted_indices`], with preferred servers first (the rule Tahoe intends for
/// `peers.preferred`; Tahoe 1.20 never applies it, see the module docs). `preferred` is
/// indexed like `seeds`; missing entries count as not preferred.
pub fn permuted_indices_with_preferred<S: AsRef<[u8]>>(
    storage_index: &[u8],
    seeds: &[S],
    preferred: &[bool],
) -> Vec<usize> {
    let mut keyed: Vec<((bool, [u8; 20]), usize)> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = preferred.get(i).copied().unwrap_or(false);
            (permutation_key(storage_index, s.as_ref(), p), i)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Reorder `items` into permuted order, reading each item's seed with `seed`.
pub fn permute<T>(storage_index: &[u8], items: Vec<T>, seed: impl Fn(&T) -> &[u8]) -> Vec<T> {
    let order = permuted_indices(storage_index, &items.iter().map(&seed).collect::<Vec<_>>());
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i].take().expect("each index once"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use cairn_test_support::data::hex;

    /// Orders computed by Tahoe 1.20's `StorageFarmBroker.get_servers_for_psi`.
    #[test]
    fn matches_tahoe_get_servers_for_psi() {
        let text = include_str!("../../../vectors/permute/permute.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["tahoe_version"], "1.20.0");
        let mut checked = 0;
        for case in v["cases"].as_array().unwrap() {
            let servers = case["servers"].as_array().unwrap();
            let ids: Vec<&str> = servers
                .iter()
                .map(|s| s["server_id"].as_str().unwrap())
                .collect();
            let seeds: Vec<Vec<u8>> = servers
                .iter()
                .map(|s| hex(s["permutation_seed"].as_str().unwrap()))
                .collect();
            let effective: Vec<&str> = case["preferred_effective"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            let preferred: Vec<bool> = ids.iter().map(|id| effective.contains(id)).collect();
            for si_case in case["storage_indexes"].as_array().unwrap() {
                let si = crate::base32::decode(si_case["storage_index"].as_str().unwrap()).unwrap();
                let want: Vec<&str> = si_case["order"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect();
                for (id, seed) in ids.iter().zip(&seeds) {
                    let h = si_case["permute_hashes"][*id].as_str().unwrap();
                    assert_eq!(permute_server_hash(&si, seed).to_vec(), hex(h));
                }
                let got: Vec<&str> = permuted_indices_with_preferred(&si, &seeds, &preferred)
                    .into_iter()
                    .map(|i| ids[i])
                    .collect();
                assert_eq!(got, want);
                if effective.is_empty() {
                    let got: Vec<&str> = permuted_indices(&si, &seeds)
                        .into_iter()
                        .map(|i| ids[i])
                        .collect();
                    assert_eq!(got, want);
                    let items: Vec<(&str, &[u8])> = ids
                        .iter()
                        .copied()
                        .zip(seeds.iter().map(|s| s.as_slice()))
                        .collect();
                    let got: Vec<&str> = permute(&si, items, |t| t.1)
                        .into_iter()
                        .map(|t| t.0)
                        .collect();
                    assert_eq!(got, want);
                }
                checked += 1;
            }
        }
        assert!(checked >= 40, "only {checked} orders checked");
    }

    #[test]
    fn equal_seeds_keep_input_order() {
        let seeds = [b"same".as_slice(), b"same", b"same"];
        assert_eq!(permuted_indices(b"0123456789abcdef", &seeds), vec![0, 1, 2]);
        assert_eq!(
            permuted_indices_with_preferred(b"si", &seeds, &[false, true]),
            vec![1, 0, 2]
        );
        assert!(permuted_indices::<&[u8]>(b"si", &[]).is_empty());
    }
}

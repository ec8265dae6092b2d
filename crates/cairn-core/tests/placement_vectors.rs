//! Servers-of-happiness placement against Tahoe-LAFS 1.20 itself.
//!
//! `vectors/placement/placement.json` is written by `vectors/placement/generate_placement.py`,
//! which drives Tahoe's own `PeerSelector` / `happiness_upload.share_placement`,
//! `happinessutil.servers_of_happiness` and `happinessutil.failure_message`. Every case must
//! come out identical here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cairn_core::placement::*;
use serde_json::Value;

fn load() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../vectors/placement/placement.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected integer, got {v}"))
}

fn ids(v: &Value) -> Vec<ServerIndex> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| ServerIndex(u(x) as u32))
        .collect()
}

#[test]
fn share_placement_matches_tahoe() {
    let v = load();
    let cases = v["placement"].as_array().unwrap();
    assert!(cases.len() >= 300, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in cases {
        let servers = ids(&c["servers"]);
        let readonly = ids(&c["readonly"]);
        let existing: Vec<(ServerIndex, ShareNum)> = c["existing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (ServerIndex(u(&p[0]) as u32), ShareNum(u(&p[1]) as u8)))
            .collect();
        let n = u(&c["total_shares"]) as u16;
        let want: BTreeMap<ShareNum, ServerIndex> = c["placements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (ShareNum(u(&p[0]) as u8), ServerIndex(u(&p[1]) as u32)))
            .collect();
        let plan = share_placement(&servers, &readonly, &existing, n).unwrap();
        if plan.placements != want || plan.happiness as u64 != u(&c["happiness"]) {
            failures.push(format!(
                "case {}: got {:?} (happiness {}), want {:?} (happiness {})",
                c["id"], plan.placements, plan.happiness, want, c["happiness"]
            ));
        }
        assert_eq!(
            servers_of_happiness(&plan.sharemap()) as u64,
            u(&c["servers_of_happiness"])
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn servers_of_happiness_matches_tahoe() {
    let v = load();
    let cases = v["servers_of_happiness"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        let map: BTreeMap<ShareNum, BTreeSet<ServerIndex>> = c["sharemap"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (ShareNum(u(&p[0]) as u8), ids(&p[1]).into_iter().collect()))
            .collect();
        assert_eq!(
            servers_of_happiness(&map) as u64,
            u(&c["servers_of_happiness"]),
            "case {}",
            c["id"]
        );
    }
}

#[test]
fn failure_message_matches_tahoe() {
    let v = load();
    let cases = v["failure_message"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        let (p, k, h, e) = (
            u(&c["peer_count"]) as usize,
            u(&c["k"]) as usize,
            u(&c["happy"]) as usize,
            u(&c["effective_happy"]) as usize,
        );
        assert_eq!(failure_message(p, k, h, e), c["message"].as_str().unwrap());
        let err = UnhappinessError {
            servers_with_shares: p,
            needed_shares: k,
            happy: h,
            effective_happiness: e,
        };
        assert_eq!(err.to_string(), c["message"].as_str().unwrap());
    }
}

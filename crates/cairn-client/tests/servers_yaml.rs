//! `private/servers.yaml`: what `cairn storage announcement` prints, Tahoe's own format, and
//! seeds / orders against values computed by Tahoe 1.20 (`vectors/permute/`).

use cairn_client::gbs_client::GbsClient;
use cairn_client::servers::{parse_servers_yaml, AnnouncementError, StaticServer};
use cairn_core::base32;
use cairn_core::storage::gbs_client_support::NurlScheme;
use cairn_storage::config::LocationHint;
use cairn_test_support::storage_node::{fast_options, StorageServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcement_from_cairn_storage_parses_and_connects() {
    let node = StorageServer::start("client-test").await;
    let hints = vec![LocationHint::Tcp {
        host: "127.0.0.1".into(),
        port: node.addr.port(),
    }];
    let line = node.identity.announcement_yaml(&node.nickname, &hints);
    let text = format!("# pasted from `cairn storage announcement`\nstorage:\n  {line}\n");
    let file = parse_servers_yaml(&text).unwrap();
    assert!(file.skipped.is_empty(), "{:?}", file.skipped);
    assert_eq!(file.servers.len(), 1);
    let s = &file.servers[0];
    assert_eq!(s.server_id, node.identity.server_id);
    assert_eq!(s.nickname, node.nickname);
    assert_eq!(s.tubid, node.identity.tubid);
    assert_eq!(s.lease_seed(), &node.identity.tubid);
    assert_eq!(
        s.permutation_seed,
        base32::decode(&node.identity.permutation_seed_base32).unwrap()
    );
    // a fresh server's seed is the ASCII text of its key (Tahoe's quirk)
    assert_eq!(
        s.permutation_seed,
        node.identity.server_id.as_bytes()[3..].to_vec()
    );
    assert_eq!(s.nurls.len(), 1);
    assert_eq!(s.nurls[0].spki_hash, node.identity.spki_hash);
    let c = GbsClient::new(&s.nurls[0], fast_options()).unwrap();
    c.version().await.unwrap();
}

const TAHOE_STYLE: &str = r#"
# Tahoe's configuration.rst "Static Server Definitions" layout, block style
storage:
  v0-cnuetxo5pwwmrxnxxgtpkhxrhuxyzo6w2asxdjlvajpkx2lfhpaq:
    ann:
      nickname: alice
      anonymous-storage-FURL: pb://YQ4FA6SOWP5EXLN2UDPQ3T2ZMTAKLXS6@tcp:10.0.0.2:44801/ixpyxkkc6vfpmbm6mbyupokcqm6a4tby
      anonymous-storage-NURLs:
        - pb://rX6lSdgIDGjNDgqvgvf9DyVTXcbfnzE7jeo7lxh8yVU@10.0.0.2:44801/ixpyxkkc6vfpmbm6mbyupokcqm6a4tby#v=1
        - pb+tor://rX6lSdgIDGjNDgqvgvf9DyVTXcbfnzE7jeo7lxh8yVU@abcdef.onion:44801/ixpyxkkc6vfpmbm6mbyupokcqm6a4tby#v=1
        - not a nurl
      permutation-seed-base32: mnxhkzlumv4gk33onzsxg5dtmvzhs4dtnfzgk3lbmfwhc6lbnzsxg5dtmvzhs4dtnfzgk3lbmfwhc6lbnzsq
      my-version: tahoe-lafs/1.20.0
      storage-options: []
    connections:
      tcp: tor
  v0-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:
    ann:
      anonymous-storage-FURL: pb://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@tcp:h:1/x
      anonymous-storage-NURLs: ["pb://rX6lSdgIDGjNDgqvgvf9DyVTXcbfnzE7jeo7lxh8yVU@h:1/x#v=1"]
  foolscap-only:
    ann:
      anonymous-storage-FURL: pb://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@tcp:h:1/x
  no-furl:
    ann:
      anonymous-storage-NURLs: ["pb://rX6lSdgIDGjNDgqvgvf9DyVTXcbfnzE7jeo7lxh8yVU@h:1/x#v=1"]
  bad-seed:
    ann:
      anonymous-storage-FURL: pb://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@tcp:h:1/x
      anonymous-storage-NURLs: ["pb://rX6lSdgIDGjNDgqvgvf9DyVTXcbfnzE7jeo7lxh8yVU@h:1/x#v=1"]
      permutation-seed-base32: NOT-BASE32
  no-ann: {}
  42:
    ann: {}
"#;

#[test]
fn tahoe_format() {
    let f = parse_servers_yaml(TAHOE_STYLE).unwrap();
    let ids: Vec<&str> = f.servers.iter().map(|s| s.server_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "v0-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "v0-cnuetxo5pwwmrxnxxgtpkhxrhuxyzo6w2asxdjlvajpkx2lfhpaq"
        ]
    );
    let alice = &f.servers[1];
    assert_eq!(alice.nickname, "alice");
    assert_eq!(alice.short_name(), "cnuetxo5");
    // upper-case tubid accepted (Tahoe lower-cases it)
    assert_eq!(
        alice.tubid.to_vec(),
        base32::decode("yq4fa6sowp5exln2udpq3t2zmtaklxs6").unwrap()
    );
    assert_eq!(alice.nurls.len(), 2);
    assert_eq!(alice.nurls[0].host, "10.0.0.2");
    assert_eq!(alice.nurls[1].scheme, NurlScheme::Tor);
    assert_eq!(alice.invalid_nurls.len(), 1);
    assert_eq!(alice.permutation_seed.len(), 52);
    // no permutation-seed-base32 and a v0- id: the 32 key bytes
    assert_eq!(f.servers[0].permutation_seed, vec![0u8; 32]);

    let skipped: Vec<(&str, &AnnouncementError)> = f
        .skipped
        .iter()
        .map(|s| (s.server_id.as_str(), &s.reason))
        .collect();
    assert_eq!(
        skipped,
        vec![
            ("42", &AnnouncementError::ServerIdNotString),
            ("bad-seed", &AnnouncementError::BadSeed("NOT-BASE32".into())),
            ("foolscap-only", &AnnouncementError::NoNurls),
            ("no-ann", &AnnouncementError::NoAnn),
            ("no-furl", &AnnouncementError::NoFurl),
        ]
    );

    assert!(parse_servers_yaml("").unwrap().servers.is_empty());
    assert!(parse_servers_yaml("other: 1\n").unwrap().servers.is_empty());
    assert!(parse_servers_yaml("storage: [1]\n").is_err());
    assert!(parse_servers_yaml("storage: {a: [}\n").is_err());
    assert!(
        cairn_client::servers::load_servers_yaml(std::path::Path::new("/nonexistent/servers.yaml"))
            .unwrap()
            .servers
            .is_empty()
    );
}

use cairn_test_support::data::hex;

/// Announcements from `vectors/permute/permute.json`, rendered as a servers.yaml (block
/// style, as a person would write it): seeds, lease seeds and per-file orders must be those
/// Tahoe 1.20 computed.
#[test]
fn seeds_and_orders_match_tahoe() {
    let text = include_str!("../../../vectors/permute/permute.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let dummy_nurl = "pb://rX6lSdgIDGjNDgqvgvf9DyVTXcbfnzE7jeo7lxh8yVU@127.0.0.1:1/x#v=1";
    let mut orders = 0;
    for case in v["cases"].as_array().unwrap() {
        let mut yaml = String::from("storage:\n");
        for s in case["servers"].as_array().unwrap() {
            yaml.push_str(&format!(
                "  {}:\n    ann:\n",
                s["server_id"].as_str().unwrap()
            ));
            for (k, val) in s["ann"].as_object().unwrap() {
                match val {
                    serde_json::Value::String(t) => yaml.push_str(&format!("      {k}: {t}\n")),
                    serde_json::Value::Array(items) => {
                        yaml.push_str(&format!("      {k}:\n"));
                        for it in items {
                            yaml.push_str(&format!("        - {}\n", it.as_str().unwrap()));
                        }
                    }
                    other => panic!("{other}"),
                }
            }
            if s["ann"].get("anonymous-storage-NURLs").is_none() {
                // cairn needs a NURL; it does not change the seeds
                yaml.push_str(&format!(
                    "      anonymous-storage-NURLs: [\"{dummy_nurl}\"]\n"
                ));
            }
        }
        let f = parse_servers_yaml(&yaml).unwrap();
        assert!(f.skipped.is_empty(), "{:?}", f.skipped);
        for s in case["servers"].as_array().unwrap() {
            let got = f
                .servers
                .iter()
                .find(|x| x.server_id == s["server_id"].as_str().unwrap())
                .unwrap();
            assert_eq!(
                got.permutation_seed,
                hex(s["permutation_seed"].as_str().unwrap()),
                "{}",
                got.server_id
            );
            assert_eq!(
                got.lease_seed().to_vec(),
                hex(s["lease_seed"].as_str().unwrap()),
                "{}",
                got.server_id
            );
        }
        if !case["preferred_effective"].as_array().unwrap().is_empty() {
            continue;
        }
        for si_case in case["storage_indexes"].as_array().unwrap() {
            let si = base32::decode(si_case["storage_index"].as_str().unwrap()).unwrap();
            let want: Vec<&str> = si_case["order"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
                .collect();
            let got: Vec<&str> = StaticServer::permuted(&si, &f.servers)
                .iter()
                .map(|s| s.server_id.as_str())
                .collect();
            assert_eq!(got, want);
            orders += 1;
        }
    }
    assert!(orders >= 30, "{orders}");
}

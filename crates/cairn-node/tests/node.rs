//! Whole nodes, started from their directories as `cairn run` starts them: storage nodes and
//! a client node whose gateway talks to them. `node.url`, `GET /?t=json` with connected and
//! disconnected servers, uploads through the gateway onto the servers, mutable files (create,
//! read, overwrite, offset updates), shutdown.

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_core::chk::{convergent_key, encode_file, EncodingParams};
use cairn_node::config::Secrets;
use cairn_node::CreateClientOptions;
use cairn_test_support::data;
use cairn_test_support::grid::TestGrid;
use cairn_test_support::http::{get, put, quote_all, ranged};

/// A client node directory with `servers_yaml`, its gateway on a free port.
pub fn make_client(dir: &Path, servers_yaml: &str, shares: (u16, u16, u16)) {
    let opts = CreateClientOptions {
        webport: Some("tcp:0:interface=127.0.0.1".into()),
        nickname: "test-client".into(),
        shares_needed: Some(shares.0),
        shares_happy: Some(shares.1),
        shares_total: Some(shares.2),
    };
    cairn_node::create_client(dir, &opts).expect("create client");
    std::fs::write(dir.join("private").join("servers.yaml"), servers_yaml).unwrap();
}

/// Append `key = value` to `[client]` of a node's tahoe.cfg.
/// A client node of `servers` with `shares` (needed, happy, total), started: its
/// directory, the node and its web URL.
async fn start_client(
    servers: &TestGrid,
    shares: (u16, u16, u16),
) -> (tempfile::TempDir, cairn_node::RunningNode, String) {
    let dir = tempfile::tempdir().unwrap();
    let client_dir = dir.path().join("client");
    make_client(&client_dir, &servers.servers_yaml(), shares);
    let node = cairn_node::start(&client_dir).await.unwrap();
    let url = node.web_url.clone().unwrap();
    (dir, node, url)
}

/// `cairn create-node` options for a storage node on 127.0.0.1, any port, no reserve.
fn storage_node_options(nickname: &str) -> cairn_config::create::CreateNodeOptions {
    cairn_config::create::CreateNodeOptions {
        hostname: "127.0.0.1".into(),
        port: 0,
        listen: None,
        nickname: nickname.into(),
        reserved_space: "0".into(),
    }
}

/// A PUT of `len` bytes to `path` through a client (2-of-4, happy 3) of only `servers`
/// servers fails with a one-line `kind` error.
async fn put_with_too_few_servers(servers: usize, path: &str, len: usize, kind: &str) {
    let servers = TestGrid::start(servers).await;
    let (_dir, node, url) = start_client(&servers, (2, 3, 4)).await;
    let r = put(&url, path, data::bytes(len, 1)).await;
    assert_one_line_error(&r, kind);
    node.shutdown(Duration::from_secs(1)).await;
}

/// A 500 whose body is one line naming Tahoe's exception `kind`.
fn assert_one_line_error(r: &cairn_test_support::http::Resp, kind: &str) {
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().starts_with(&format!("{kind}: ")), "{}", r.text());
    assert_eq!(r.text().trim_end().lines().count(), 1);
}

pub fn set_client_option(dir: &Path, key: &str, value: &str) {
    let p = dir.join("tahoe.cfg");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        cairn_node::create::set_ini_value(&text, "client", key, value),
    )
    .unwrap();
}

/// Wait until `f` holds (polling), or panic with `what`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `connection_status` of each server in `GET /?t=json`, by node id.
pub async fn statuses(base: &str) -> std::collections::BTreeMap<String, String> {
    let j = get(base, "/?t=json").await.json();
    j["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["nodeid"].as_str().unwrap().to_string(),
                s["connection_status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Wait (up to 20 s) until the node at `url` shows `n` servers connected.
async fn wait_for_connected(url: &str, n: usize) {
    wait_for("servers connected", Duration::from_secs(20), || async {
        statuses(url)
            .await
            .values()
            .filter(|s| s.starts_with("Connected"))
            .count()
            == n
    })
    .await;
}

#[tokio::test]
async fn node_url_and_root_json_follow_the_servers() {
    let mut servers = TestGrid::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let client_dir = dir.path().join("client");
    // Besides the three servers: one that is down from the start.
    let mut yaml = servers.servers_yaml();
    let dead = {
        let extra = tempfile::tempdir().unwrap();
        let opts = cairn_config::create::CreateNodeOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            listen: None,
            nickname: "never-up".into(),
            reserved_space: "0".into(),
        };
        let (cfg, id) = cairn_node::create_node(extra.path(), &opts, Some("none")).unwrap();
        yaml.push_str(&format!(
            "  {}\n",
            id.announcement_yaml("never-up", &cfg.node.hints)
        ));
        id.server_id.clone()
        // the node is never started: its port refuses connections
    };
    make_client(&client_dir, &yaml, (2, 3, 4));
    let node = cairn_node::start(&client_dir).await.unwrap();
    assert!(
        node.storage.is_none(),
        "a client node runs no storage server"
    );
    let url = node.web_url.clone().unwrap();
    let port = node.web_addr.unwrap().port();
    assert_eq!(url, format!("http://127.0.0.1:{port}/"));
    // node.url as Tahoe writes it.
    assert_eq!(
        std::fs::read_to_string(client_dir.join("node.url")).unwrap(),
        format!("{url}\n")
    );
    assert!(node.describe().contains(&format!("web gateway: {url}")));
    assert!(node.describe().contains("storage servers: 4"));

    let ids: Vec<String> = (0..3).map(|i| servers.server_id(i)).collect();
    let connected = |st: &std::collections::BTreeMap<String, String>, id: &str| {
        st.get(id)
            .is_some_and(|s| s.to_lowercase().starts_with("connected"))
    };
    // Before the first answer a server is "Trying to connect"; then connected, or a failure.
    wait_for(
        "three servers connected, one failed",
        Duration::from_secs(20),
        || async {
            let st = statuses(&url).await;
            ids.iter().all(|id| connected(&st, id)) && st[&dead].starts_with("failure: ")
        },
    )
    .await;

    let r = get(&url, "/?t=json").await;
    assert_eq!(
        r.header("content-type").unwrap(),
        "application/json; charset=utf-8"
    );
    let j = r.json();
    assert_eq!(j["introducers"], serde_json::json!({"statuses": []}));
    let list = j["servers"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    for s in list {
        // Tahoe 1.20's _describe_server keys, no more, no fewer.
        let mut keys: Vec<&str> = s.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "available_space",
                "connection_status",
                "last_received_data",
                "nickname",
                "nodeid",
                "version"
            ]
        );
        let id = s["nodeid"].as_str().unwrap();
        if let Some(i) = ids.iter().position(|x| x == id) {
            let addr = servers.servers[i].running().local_addrs[0];
            assert_eq!(
                s["connection_status"],
                format!("Connected to tcp:{addr} via tcp")
            );
            assert_eq!(s["nickname"], format!("server{i}"));
            assert!(s["available_space"].as_u64().is_some(), "{s}");
            assert!(s["version"].as_str().is_some_and(|v| !v.is_empty()), "{s}");
            let t = s["last_received_data"].as_f64().unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            assert!(
                (now - t).abs() < 30.0,
                "last_received_data {t} vs now {now}"
            );
        } else {
            assert_eq!(id, dead);
            assert_eq!(s["nickname"], "never-up");
            assert!(
                s["connection_status"]
                    .as_str()
                    .unwrap()
                    .starts_with("failure: "),
                "{s}"
            );
            assert!(
                s["last_received_data"].is_null()
                    && s["version"].is_null()
                    && s["available_space"].is_null()
            );
        }
    }
    // The body is Python's json.dumps(..., indent=1) + "\n".
    assert!(r.text().starts_with(
        "{\n \"introducers\": {\n  \"statuses\": []\n },\n \"servers\": [\n  {\n   \"nodeid\": "
    ));
    assert!(r.text().ends_with("]\n}\n"));

    // A server that goes away is reported within a few health-check rounds; the others stay.
    servers.stop(1).await;
    wait_for("server 1 seen as down", Duration::from_secs(15), || async {
        let st = statuses(&url).await;
        st[&ids[1]].starts_with("failure: ") && connected(&st, &ids[0]) && connected(&st, &ids[2])
    })
    .await;
    servers.restart(1).await;
    wait_for("server 1 seen as back", Duration::from_secs(15), || async {
        connected(&statuses(&url).await, &ids[1])
    })
    .await;

    // The welcome page is HTML with the same information.
    let html = get(&url, "/").await;
    assert!(html
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(
        html.text().contains("Connected to 3 of 4"),
        "{}",
        html.text()
    );

    node.shutdown(Duration::from_secs(1)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the gateway stopped listening"
    );
}

#[tokio::test]
async fn uploads_go_to_the_servers() {
    let servers = TestGrid::start(4).await;
    let dir = tempfile::tempdir().unwrap();
    let client_dir = dir.path().join("client");
    make_client(&client_dir, &servers.servers_yaml(), (2, 3, 4));
    // Small segments so a modest file has many of them.
    set_client_option(
        &client_dir,
        "shares._max_immutable_segment_size_for_testing",
        "4096",
    );
    let node = cairn_node::start(&client_dir).await.unwrap();
    let url = node.web_url.clone().unwrap();
    wait_for_connected(&url, 4).await;
    let secrets = Secrets::load_or_create(&client_dir).unwrap();
    let params = EncodingParams::new(2, 3, 4, 4096).unwrap();

    // LIT: no server involved.
    let r = put(&url, "/uri", b"tiny".to_vec()).await;
    assert_eq!((r.status, r.text()), (200, "URI:LIT:oruw46i".to_string()));
    assert_eq!(servers.share_count(), 0);

    for (size, seed) in [(56usize, 1u64), (100_000, 2), (1_500_000, 3)] {
        let body = data::bytes(size, seed);
        let r = put(&url, "/uri", body.clone()).await;
        assert_eq!(r.status, 200, "size {size}: {}", r.text());
        // The cap the same secret and parameters give offline (and so in Tahoe).
        let key = convergent_key(&params, &secrets.convergence, &body).unwrap();
        let expected = encode_file(&params, key, &body, None)
            .unwrap()
            .read_cap_string();
        assert_eq!(r.text(), expected, "size {size}");
        let j = get(&url, &format!("/uri/{}?t=json", quote_all(&expected)))
            .await
            .json();
        assert_eq!(j[1]["size"], size as u64);
    }
    assert_eq!(
        servers.share_count(),
        3 * 4,
        "four shares of each of the three CHK files"
    );

    // The same file again: same cap, shares already there.
    let again = put(&url, "/uri", data::bytes(100_000, 2)).await;
    assert_eq!(again.status, 200);
    assert_eq!(servers.share_count(), 12);
    node.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn upload_without_enough_servers_is_a_clear_error() {
    put_with_too_few_servers(2, "/uri", 10_000, "UploadUnhappinessError").await;
}

#[tokio::test]
async fn a_storage_node_without_a_gateway() {
    // `create-node` with no web port: `start` runs the storage server and no gateway, and
    // writes the announcement a client's servers.yaml takes.
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("server");
    let opts = storage_node_options("server0");
    let (_, id) = cairn_node::create_node(&node_dir, &opts, Some("none")).expect("create");
    let node = cairn_node::start(&node_dir)
        .await
        .expect("start storage node");
    assert!(node.storage.is_some() && node.web_url.is_none());
    let ann = std::fs::read_to_string(node_dir.join("storage-announcement.yaml")).unwrap();
    assert_eq!(ann.split(':').next().unwrap().trim(), id.server_id);
    node.shutdown(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_storage_node_with_a_gateway() {
    let servers = TestGrid::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("full");
    let opts = storage_node_options("full");
    cairn_node::create_node(&node_dir, &opts, None).unwrap();
    std::fs::write(
        node_dir.join("private/servers.yaml"),
        servers.servers_yaml(),
    )
    .unwrap();
    let node = cairn_node::start(&node_dir).await.unwrap();
    assert!(node.storage.is_some() && node.web_url.is_some());
    let d = node.describe();
    assert!(
        d.contains("NURL: pb://") && d.contains("web gateway: http://127.0.0.1:"),
        "{d}"
    );
    let url = node.web_url.clone().unwrap();
    wait_for("server connected", Duration::from_secs(20), || async {
        statuses(&url)
            .await
            .values()
            .all(|s| s.starts_with("Connected"))
    })
    .await;
    node.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn unusable_servers_yaml_entries_are_skipped_with_a_reason() {
    let servers = TestGrid::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let client_dir = dir.path().join("client");
    let mut yaml = servers.servers_yaml();
    yaml.push_str("  v0-nofurl: {ann: {nickname: x}}\n");
    make_client(&client_dir, &yaml, (1, 1, 1));
    let node = cairn_node::start(&client_dir).await.unwrap();
    assert_eq!(node.grid.as_ref().unwrap().servers().len(), 1);
    assert_eq!(node.skipped_servers.len(), 1);
    assert!(
        node.skipped_servers[0].contains("v0-nofurl") && node.skipped_servers[0].contains("FURL")
    );
    assert!(node.describe().contains("(1 skipped)"));
    node.shutdown(Duration::from_secs(1)).await;

    // A servers.yaml that is not YAML at all stops the node from starting, as in Tahoe.
    std::fs::write(client_dir.join("private/servers.yaml"), "storage: [").unwrap();
    let e = cairn_node::start(&client_dir).await.err().expect("refused");
    assert!(e.to_string().contains("servers.yaml"), "{e}");
}

#[tokio::test]
async fn bad_config_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let client_dir = dir.path().join("client");
    make_client(&client_dir, "", (3, 7, 10));
    set_client_option(&client_dir, "shares.happy", "12");
    let e = cairn_node::start(&client_dir).await.err().expect("refused");
    assert!(e.to_string().contains("shares.happy = 12"), "{e}");
    let e = cairn_node::start(&dir.path().join("missing"))
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("tahoe.cfg"), "{e}");
}

#[tokio::test]
async fn mutable_files_on_the_servers() {
    let servers = TestGrid::start(4).await;
    let (_dir, node, url) = start_client(&servers, (2, 3, 4)).await;
    wait_for_connected(&url, 4).await;

    for (format, prefix, size) in [
        ("SDMF", "URI:SSK:", 1000usize),
        ("MDMF", "URI:MDMF:", 300_000),
    ] {
        let body = data::bytes(size, 11);
        let before = mutable_trips(&url).await;
        let r = put(&url, &format!("/uri?format={format}"), body.clone()).await;
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        // A new file: no servermap, one write to each of the 4 servers (one share each).
        assert_eq!(
            r.header("x-cairn-round-trips").unwrap(),
            "4 (servermap=0, read=0, write=4)"
        );
        let after_create = mutable_trips(&url).await;
        assert_eq!(delta(before, after_create), [0, 0, 4]);
        let w = r.text();
        assert!(w.starts_with(prefix), "{w}");
        let r = get(&url, &format!("/uri/{}", quote_all(&w))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body == body, "{format}: read back differs");
        // The header has the open's servermap requests (a list and a read per server
        // asked, at least k = 2 servers); the statistics add the reads (k per segment,
        // none for a small file whose shares the servermap's first reads hold).
        let opened = r.header("x-cairn-round-trips").unwrap();
        let [sm, reads, writes] = delta(after_create, mutable_trips(&url).await);
        assert_eq!(opened, format!("{sm} (servermap={sm})"));
        assert!((4..=8).contains(&sm) && sm % 2 == 0, "{opened}");
        let expect_reads = if size <= 1000 { 0..=0 } else { 2..=u64::MAX };
        assert!(
            expect_reads.contains(&reads) && writes == 0,
            "{reads} reads, {writes} writes"
        );
        let j = get(&url, &format!("/uri/{w}?t=json")).await.json();
        assert_eq!(j[0], "filenode");
        assert_eq!(j[1]["mutable"], true);
        assert_eq!(j[1]["format"], format);
        assert_eq!(j[1]["size"], size as u64);
        assert_eq!(j[1]["rw_uri"], w.as_str());
        let ro = j[1]["ro_uri"].as_str().unwrap().to_string();

        // Ranged reads through the read cap.
        let r = ranged(&url, "GET", &format!("/uri/{ro}"), "bytes=100-199").await;
        assert_eq!(r.status, 206, "{}", r.text());
        assert!(r.body == body[100..200]);

        // Overwrite, then change bytes in place.
        let v2 = data::bytes(size / 2 + 7, 12);
        let before = mutable_trips(&url).await;
        let r = put(&url, &format!("/uri/{w}"), v2.clone()).await;
        assert_eq!((r.status, r.text()), (200, w.clone()));
        // A write-mode servermap (every server asked once, or twice when the key lies
        // beyond the first read) and one write to each of the 4 servers.
        let [sm, reads, writes] = delta(before, mutable_trips(&url).await);
        assert_eq!(
            r.header("x-cairn-round-trips").unwrap(),
            format!("{} (servermap={sm}, read=0, write=4)", sm + 4)
        );
        assert!(
            (4..=8).contains(&sm) && reads == 0 && writes == 4,
            "{sm} {reads} {writes}"
        );
        assert!(get(&url, &format!("/uri/{ro}")).await.body == v2);
        // The change's servermap (no separate open), reads of the old contents (none
        // for a small SDMF file: the servermap's first reads hold it), writes to the 4
        // servers: as the statistics counted them.
        let before = mutable_trips(&url).await;
        let r = put(&url, &format!("/uri/{w}?offset=5"), b"patched".to_vec()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let [sm, reads, writes] = delta(before, mutable_trips(&url).await);
        assert_eq!(
            r.header("x-cairn-round-trips").unwrap(),
            format!(
                "{} (servermap={sm}, read={reads}, write={writes})",
                sm + reads + writes
            )
        );
        let expect_reads = if size <= 1000 { 0..=0 } else { 2..=u64::MAX };
        assert!(
            writes == 4 && expect_reads.contains(&reads) && (4..=8).contains(&sm),
            "{sm} servermap, {reads} reads, {writes} writes"
        );
        let mut v3 = v2.clone();
        v3[5..12].copy_from_slice(b"patched");
        assert!(get(&url, &format!("/uri/{ro}")).await.body == v3);

        // The read cap cannot write.
        let r = put(&url, &format!("/uri/{ro}"), b"nope".to_vec()).await;
        assert_eq!(r.status, 400, "{}", r.text());
    }

    // A mutable file nobody stored.
    let ghost = cairn_core::cap::SdmfWriteCap::new([3; 16], [4; 32]).to_string();
    let r = get(&url, &format!("/uri/{ghost}")).await;
    assert_eq!(r.status, 410, "{}", r.text());
    assert!(
        r.text().starts_with("UnrecoverableFileError: "),
        "{}",
        r.text()
    );
    let j = get(&url, &format!("/uri/{ghost}?t=json")).await.json();
    assert!(j[1].get("size").is_none(), "{j}");
    node.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn mutable_create_without_enough_servers_is_a_clear_error() {
    put_with_too_few_servers(1, "/uri?format=SDMF", 1000, "NotEnoughServersError").await;
}

fn delta(a: [u64; 3], b: [u64; 3]) -> [u64; 3] {
    [b[0] - a[0], b[1] - a[1], b[2] - a[2]]
}

/// `[servermap, read, write]` of the node's `/statistics?t=json` counters.
async fn mutable_trips(url: &str) -> [u64; 3] {
    let j = get(url, "/statistics?t=json").await.json();
    let c = &j["counters"];
    ["servermap", "read", "write"].map(|k| {
        c[format!("cairn.mutable.round_trips.{k}")]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} counter in {j}"))
    })
}

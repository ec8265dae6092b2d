//! `cairn run` on a node directory that Tahoe-LAFS 1.20 created (vectors/tahoe-node/, made
//! by `tahoe create-node` and one start; see vectors/tahoe-node/README.md): cairn keeps
//! Tahoe's identity — its X.509 v1 certificate, tubid, swissnum, server id, permutation
//! seed — and serves TLS with it.

mod gbs_common;

use std::path::Path;

use cairn_storage::config::NodeConfig;
use cairn_storage::identity::NodeIdentity;
use cairn_storage::server::{self, ServerOptions};
use gbs_common::Client;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn fixture() -> (tempfile::TempDir, NodeConfig, NodeIdentity) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors/tahoe-node");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    let config = NodeConfig::load(dir.path()).expect("Tahoe's tahoe.cfg loads");
    let identity = NodeIdentity::load_or_create(&config).expect("Tahoe's private/ loads");
    (dir, config, identity)
}

#[test]
fn keeps_tahoes_identity() {
    let (dir, _config, identity) = fixture();
    let read = |p: &str| {
        std::fs::read_to_string(dir.path().join(p))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        cairn_core::base32::encode(&identity.tubid),
        read("my_nodeid")
    );
    assert_eq!(identity.storage_furl, read("private/storage.furl"));
    assert!(read("private/storage.furl").ends_with(&format!("/{}", identity.swissnum)));
    assert_eq!(format!("pub-{}", identity.server_id), read("node.pubkey"));
    assert_eq!(identity.permutation_seed_base32, read("permutation-seed"));
    // Nothing of Tahoe's was rewritten.
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors/tahoe-node/private/node.pem");
    assert_eq!(
        std::fs::read(src).unwrap(),
        std::fs::read(dir.path().join("private/node.pem")).unwrap()
    );
}

#[tokio::test]
async fn serves_tls_with_tahoes_version_1_certificate() {
    let (_dir, config, identity) = fixture();
    let mut opts =
        ServerOptions::from_node(&config, &identity).expect("server options from Tahoe's node dir");
    opts.listen = vec!["127.0.0.1:0".parse().unwrap()];
    let running = server::start(opts)
        .await
        .expect("a server on Tahoe's certificate starts");
    let client = Client::new(
        running.local_addrs[0],
        &identity.spki_hash,
        &identity.swissnum,
    );
    let resp = client.get("/storage/v1/version").await;
    assert_eq!(
        resp.status, 200,
        "version over TLS pinned to Tahoe's certificate"
    );
    running.shutdown(std::time::Duration::from_secs(5)).await;
}

//! `cairn run` on a node directory that Tahoe-LAFS 1.20 created (vectors/tahoe-node/, made
//! by `tahoe create-node` and one start; see vectors/tahoe-node/README.md): cairn keeps
//! Tahoe's identity — its X.509 v1 certificate, tubid, swissnum, server id, permutation
//! seed — and serves TLS with it.

use std::path::Path;

use cairn_test_support::storage_node::{tahoe_node_dir, StorageServer};

#[test]
fn keeps_tahoes_identity() {
    let (dir, _config, identity) = tahoe_node_dir();
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
    // Server options from Tahoe's node directory, and a server on its certificate.
    let mut n = StorageServer::start_tahoe().await;
    let resp = n.raw.get("/storage/v1/version").await;
    assert_eq!(
        resp.status, 200,
        "version over TLS pinned to Tahoe's certificate"
    );
    n.stop().await;
}

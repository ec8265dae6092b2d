//! The server reads the date only from the clock it is given (`ServerOptions::clock`): a
//! server started with a stopped clock grants leases, renews them and records corruption
//! advisories at that date, whatever the machine's clock says.

use std::sync::Arc;

use cairn_core::storage::gbs;
use cairn_storage::clock::{Clock, ManualClock};
use cairn_storage::leasedb::{ShareKey, DEFAULT_RENEWAL_TIME};
use cairn_test_support::gbs_raw::*;
use cairn_test_support::storage_node::StorageServer;
use hyper::{Method, StatusCode};

const DAY: u64 = 86_400;

#[tokio::test]
async fn leases_and_advisories_follow_the_servers_clock() {
    let start = 1_500_000_000; // 2017-07-14
    let clock = Arc::new(ManualClock::new(start));
    let c2 = clock.clone();
    let node = StorageServer::start_with("test", move |o| o.clock = c2).await;
    let c = &node.raw;
    let si = [0x42u8; 16];
    let path = format!(
        "/storage/v1/immutable/{}",
        gbs::storage_index_to_string(&gbs::StorageIndex(si))
    );

    // Upload one share: its lease runs 31 days from the server's date.
    let req = gbs::AllocateRequest {
        share_numbers: [cairn_core::ids::ShareNum(3)].into(),
        allocated_size: 10,
    };
    let r = c
        .req(
            Method::POST,
            &path,
            &alloc_secrets(&[1; 32], &[2; 32], b"up"),
            req.encode(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let h = vec![
        secret("upload-secret", b"up"),
        ("content-range".into(), "bytes 0-9/*".into()),
    ];
    let r = c
        .req(Method::PATCH, &format!("{path}/3"), &h, vec![7; 10])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let leases = |node: &StorageServer| {
        let db = node.running().state.db.lock().unwrap();
        db.leases(&ShareKey::new(
            cairn_core::cap::StorageIndex(si),
            cairn_core::ids::ShareNum(3),
        ))
        .unwrap()
    };
    let l = leases(&node);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].expiration, start + DEFAULT_RENEWAL_TIME);

    // Ten days later a renewal (same secrets) moves the expiration with the clock.
    clock.advance(10 * DAY);
    let lease_path = format!(
        "/storage/v1/lease/{}",
        gbs::storage_index_to_string(&gbs::StorageIndex(si))
    );
    let h = vec![
        secret("lease-renew-secret", &[1; 32]),
        secret("lease-cancel-secret", &[2; 32]),
    ];
    let r = c.req(Method::PUT, &lease_path, &h, vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let l = leases(&node);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].expiration, start + 10 * DAY + DEFAULT_RENEWAL_TIME);

    // A corruption advisory is named by the server's date.
    let body = gbs::CorruptRequest {
        reason: "test".into(),
    }
    .encode();
    let r = c
        .req(Method::POST, &format!("{path}/3/corrupt"), &[], body)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let dir = node.storage_dir().join("corruption-advisories");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("2017-07-24T"), "{names:?}");
    assert_eq!(clock.now_secs(), start + 10 * DAY);
}

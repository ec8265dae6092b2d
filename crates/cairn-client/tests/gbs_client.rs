//! The GBS client against an in-process cairn storage server, and against misbehaving
//! servers.

use cairn_core::ids::{ShareNum, StorageIndex};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cairn_client::gbs_client::{
    ClientOptions, Fault, GbsClient, GbsClientError, LeaseSecrets, RetryPolicy,
};
use cairn_core::storage::gbs::{
    ByteRange, ReadVector, RtwRequest, TestVector, TestWriteVectors, VersionResponse, WriteVector,
};
use cairn_core::storage::gbs_client_support::Nurl;
use cairn_test_support::proxy::{counting_proxy, stalled_listener};
use cairn_test_support::storage_node::{fast_options, tahoe_node_dir, StorageServer};
use cairn_test_support::tls::{fake_server, nurl};

fn lease(n: u8) -> LeaseSecrets {
    LeaseSecrets {
        renew: [n; 32],
        cancel: [n.wrapping_add(100); 32],
    }
}

fn set(v: &[u8]) -> BTreeSet<ShareNum> {
    v.iter().copied().map(ShareNum).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_round_trip() {
    let node = StorageServer::start_tahoe().await;
    let c = node.client();

    let v = c.version().await.unwrap();
    assert!(
        v.maximum_immutable_share_size > 0 && v.available_space > 0,
        "{v:?}"
    );

    // ---- immutable
    let si = StorageIndex([7u8; 16]);
    let upload = cairn_client::gbs_client::new_upload_secret();
    let alloc = c
        .allocate_buckets(&si, &lease(1), &upload, &set(&[0, 1, 2]), 100)
        .await
        .unwrap();
    assert_eq!(alloc.allocated, set(&[0, 1, 2]));
    assert!(alloc.already_have.is_empty());

    let data: Vec<u8> = (0..100u8).collect();
    let w = c
        .write_share_chunk(&si, ShareNum(0), &upload, 0, data[..60].to_vec())
        .await
        .unwrap();
    assert!(!w.finished);
    assert_eq!(
        w.required,
        vec![ByteRange {
            start: 60,
            end: 100
        }]
    );
    let w = c
        .write_share_chunk(&si, ShareNum(0), &upload, 60, data[60..].to_vec())
        .await
        .unwrap();
    assert!(w.finished && w.required.is_empty());

    // wrong upload secret on an in-progress bucket → 401 (Refused)
    let e = c
        .write_share_chunk(&si, ShareNum(2), b"wrong secret", 0, vec![1u8; 10])
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.fault()), (Some(401), Fault::Refused), "{e}");

    c.abort_upload(&si, ShareNum(1), &upload).await.unwrap();
    let e = c
        .write_share_chunk(&si, ShareNum(1), &upload, 0, vec![0u8; 10])
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");

    assert_eq!(c.list_immutable_shares(&si).await.unwrap(), set(&[0]));
    assert_eq!(
        c.list_immutable_shares(&StorageIndex([9u8; 16]))
            .await
            .unwrap(),
        set(&[])
    );
    assert_eq!(
        &c.read_immutable(&si, ShareNum(0), 0, 10).await.unwrap()[..],
        &data[..10]
    );
    assert_eq!(
        &c.read_immutable(&si, ShareNum(0), 95, 10).await.unwrap()[..],
        &data[95..]
    );
    assert!(c
        .read_immutable(&si, ShareNum(0), 100, 10)
        .await
        .unwrap()
        .is_empty()); // 204
    assert!(c
        .read_immutable(&si, ShareNum(0), 5, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(c
        .read_immutable(&si, ShareNum(5), 0, 10)
        .await
        .unwrap_err()
        .is_not_found());

    let again = c
        .allocate_buckets(
            &si,
            &lease(2),
            &cairn_client::gbs_client::new_upload_secret(),
            &set(&[0, 3]),
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        (again.already_have, again.allocated),
        (set(&[0]), set(&[3]))
    );

    c.advise_corrupt_immutable(&si, ShareNum(0), "bad hash")
        .await
        .unwrap();
    assert!(c
        .advise_corrupt_immutable(&si, ShareNum(9), "bad hash")
        .await
        .unwrap_err()
        .is_not_found());

    c.add_or_renew_lease(&si, &lease(3)).await.unwrap();
    c.add_or_renew_lease(&si, &lease(3)).await.unwrap();
    assert!(c
        .add_or_renew_lease(&StorageIndex([1u8; 16]), &lease(3))
        .await
        .unwrap_err()
        .is_not_found());

    // ---- mutable
    let msi = StorageIndex([8u8; 16]);
    let we = [42u8; 32];
    let mut tw = BTreeMap::new();
    tw.insert(
        ShareNum(0),
        TestWriteVectors {
            test: vec![],
            write: vec![WriteVector {
                offset: 0,
                data: b"hello mutable world".to_vec(),
            }],
            new_length: None,
        },
    );
    let req = RtwRequest {
        test_write_vectors: tw,
        read_vector: vec![ReadVector { offset: 0, size: 5 }],
    };
    let r = c.read_test_write(&msi, &we, &lease(4), &req).await.unwrap();
    assert!(r.success);
    assert_eq!(c.list_mutable_shares(&msi).await.unwrap(), set(&[0]));
    assert_eq!(
        &c.read_mutable(&msi, ShareNum(0), 6, 7).await.unwrap()[..],
        b"mutable"
    );
    assert_eq!(
        &c.read_mutable(&msi, ShareNum(0), 14, 100).await.unwrap()[..],
        b"world"
    );
    assert!(c
        .read_mutable(&msi, ShareNum(0), 19, 5)
        .await
        .unwrap()
        .is_empty());

    // failing test vector: no write, reads returned
    let mut tw = BTreeMap::new();
    tw.insert(
        ShareNum(0),
        TestWriteVectors {
            test: vec![TestVector {
                offset: 0,
                size: 5,
                specimen: b"HELLO".to_vec(),
            }],
            write: vec![WriteVector {
                offset: 0,
                data: b"XXXXX".to_vec(),
            }],
            new_length: None,
        },
    );
    let req = RtwRequest {
        test_write_vectors: tw,
        read_vector: vec![ReadVector { offset: 0, size: 5 }],
    };
    let r = c.read_test_write(&msi, &we, &lease(4), &req).await.unwrap();
    assert!(!r.success);
    assert_eq!(r.data.get(&ShareNum(0)).unwrap(), &vec![b"hello".to_vec()]);

    // wrong write enabler → 401
    let e = c
        .read_test_write(&msi, &[1u8; 32], &lease(4), &req)
        .await
        .unwrap_err();
    assert!(e.is_bad_write_enabler(), "{e}");
    assert_eq!(e.fault(), Fault::Refused);

    c.advise_corrupt_mutable(&msi, ShareNum(0), "bad signature")
        .await
        .unwrap();
    assert!(c
        .advise_corrupt_mutable(&msi, ShareNum(3), "x")
        .await
        .unwrap_err()
        .is_not_found());
    c.add_or_renew_lease(&msi, &lease(5)).await.unwrap();

    // client-side refusals, nothing sent
    assert_eq!(
        c.advise_corrupt_mutable(&msi, ShareNum(0), "")
            .await
            .unwrap_err()
            .fault(),
        Fault::Client
    );
    assert_eq!(
        c.write_share_chunk(&si, ShareNum(3), &upload, 0, Vec::<u8>::new())
            .await
            .unwrap_err()
            .fault(),
        Fault::Client
    );

    // wrong swissnum → 401
    let mut n = node.nurl();
    n.swissnum = "wrongswissnum".into();
    let bad = GbsClient::new(&n, fast_options()).unwrap();
    let e = bad.version().await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert_eq!(bad.stats().retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spki_mismatch_is_refused() {
    // Tahoe's own (X.509 v1) certificate on one side, a cairn-made one on the other
    let node = StorageServer::start_tahoe().await;
    let fresh = StorageServer::start("client-test").await;
    let other_id = &fresh.identity;
    fresh.client().version().await.unwrap();
    // the right address and swissnum, another server's pin
    let mut n = node.nurl();
    n.spki_hash = other_id.spki_hash.clone();
    let c = GbsClient::new(&n, fast_options()).unwrap();
    let e = c.version().await.unwrap_err();
    match &e {
        GbsClientError::PinMismatch { expected, got, .. } => {
            assert_eq!(expected, &other_id.spki_hash);
            assert_eq!(got, &node.identity.spki_hash);
        }
        other => panic!("expected a pin mismatch, got {other:?}"),
    }
    assert_eq!(e.fault(), Fault::Identity);
    assert_eq!(c.stats().attempts, 1, "a pin mismatch is not retried");
    // a correct pin works against the same server
    node.client().version().await.unwrap();
    // the SPKI hash cairn-core computes is the one the server announces
    assert_eq!(
        cairn_core::storage::gbs_client_support::cert_spki_hash(node.identity.cert_der.as_ref())
            .unwrap(),
        node.identity.spki_hash
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused() {
    let node = StorageServer::start_tahoe().await;
    let (proxy, accepts) = counting_proxy(node.addr).await;
    let c = GbsClient::new(&node.nurl_for(proxy), fast_options()).unwrap();
    let si = StorageIndex([3u8; 16]);
    for _ in 0..10 {
        c.version().await.unwrap();
        c.list_immutable_shares(&si).await.unwrap();
        c.add_or_renew_lease(&si, &lease(1)).await.unwrap_err(); // 404 keeps the connection
    }
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        1,
        "30 sequential requests on one connection"
    );
    assert_eq!(c.stats().connections_opened, 1);

    // concurrency opens more connections, bounded by the concurrency, and they are pooled
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                c.version().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = accepts.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&n),
        "{n} connections for 4 concurrent streams"
    );
    assert_eq!(c.stats().connections_opened as usize, n);
    for _ in 0..5 {
        c.version().await.unwrap();
    }
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        n,
        "idle pooled connections reused"
    );
}

fn stall_options(timeout_ms: u64, retries: u32) -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_millis(timeout_ms),
        connect_timeout: Duration::from_millis(timeout_ms),
        retry: RetryPolicy {
            max_retries: retries,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        },
        ..ClientOptions::default()
    }
}

fn fake_nurl(identity: &cairn_storage::identity::NodeIdentity, addr: std::net::SocketAddr) -> Nurl {
    nurl(identity, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_server_times_out_and_retries_are_bounded() {
    let (_dir, _config, id) = tahoe_node_dir();
    let (addr, accepts) = stalled_listener().await;

    // no retries: one timeout, bounded time
    let c = GbsClient::new(&fake_nurl(&id, addr), stall_options(500, 0)).unwrap();
    let t0 = Instant::now();
    let e = c.version().await.unwrap_err();
    assert!(matches!(e, GbsClientError::Timeout { .. }), "{e:?}");
    assert_eq!(e.fault(), Fault::Network);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(accepts.load(Ordering::SeqCst), 1);

    // idempotent request: 1 + 2 retries, then the timeout
    let c = GbsClient::new(&fake_nurl(&id, addr), stall_options(200, 2)).unwrap();
    let before = accepts.load(Ordering::SeqCst);
    let t0 = Instant::now();
    let e = c
        .list_immutable_shares(&StorageIndex([1; 16]))
        .await
        .unwrap_err();
    assert!(matches!(e, GbsClientError::Timeout { .. }), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let s = c.stats();
    assert_eq!((s.attempts, s.retries), (3, 2));
    assert_eq!(accepts.load(Ordering::SeqCst) - before, 3);

    // writes are never retried
    let before = accepts.load(Ordering::SeqCst);
    let e = c
        .write_share_chunk(
            &StorageIndex([1; 16]),
            ShareNum(0),
            b"secret",
            0,
            vec![1u8; 10],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, GbsClientError::Timeout { .. }), "{e:?}");
    let e = c
        .read_test_write(
            &StorageIndex([1; 16]),
            &[1; 32],
            &lease(1),
            &RtwRequest::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, GbsClientError::Timeout { .. }), "{e:?}");
    assert_eq!(accepts.load(Ordering::SeqCst) - before, 2);
    assert_eq!(c.stats().retries, 2);

    // connection refused: a network error, retried the bounded number of times
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let c = GbsClient::new(&fake_nurl(&id, closed), stall_options(500, 2)).unwrap();
    let e = c.version().await.unwrap_err();
    assert!(matches!(e, GbsClientError::Network { .. }), "{e:?}");
    assert_eq!(c.stats().attempts, 3);
}

fn http_response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_responses_are_errors() {
    let (_dir, _config, id) = tahoe_node_dir();
    let good_version = VersionResponse {
        maximum_immutable_share_size: 1,
        maximum_mutable_share_size: 1,
        available_space: 1,
        application_version: b"x".to_vec(),
    }
    .encode();
    let required =
        cairn_core::storage::gbs::encode_required_ranges(&[ByteRange { start: 1, end: 5 }]);
    let cl = |n: usize| ("Content-Length", n.to_string());
    let cbor = ("Content-Type", "application/cbor".to_string());
    let oct = ("Content-Type", "application/octet-stream".to_string());
    let opts = ClientOptions {
        max_cbor_response: 4096,
        ..stall_options(2000, 0)
    };

    // (response, request kind, check)
    type Check = fn(&GbsClientError) -> bool;
    let malformed: Check = |e| matches!(e, GbsClientError::Malformed { .. });
    let too_large: Check = |e| matches!(e, GbsClientError::TooLarge { .. });
    let chunked_big = {
        let mut body = Vec::new();
        for _ in 0..10 {
            body.extend_from_slice(format!("{:x}\r\n", 1000).as_bytes());
            body.extend_from_slice(&[0x61; 1000]);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        http_response(
            "200 OK",
            &[cbor.clone(), ("Transfer-Encoding", "chunked".into())],
            &body,
        )
    };
    let cases: Vec<(&str, Vec<u8>, &str, Check)> = vec![
        (
            "wrong content type",
            http_response(
                "200 OK",
                &[
                    ("Content-Type", "text/plain".into()),
                    cl(good_version.len()),
                ],
                &good_version,
            ),
            "version",
            malformed,
        ),
        (
            "missing content type",
            http_response("200 OK", &[cl(good_version.len())], &good_version),
            "version",
            malformed,
        ),
        (
            "garbage CBOR",
            http_response("200 OK", &[cbor.clone(), cl(4)], b"\xff\xfe\x00\x01"),
            "version",
            malformed,
        ),
        (
            "truncated CBOR",
            http_response("200 OK", &[cbor.clone(), cl(5)], &good_version[..5]),
            "version",
            malformed,
        ),
        (
            "wrong CBOR shape",
            http_response("200 OK", &[cbor.clone(), cl(1)], b"\x01"),
            "list",
            malformed,
        ),
        (
            "huge Content-Length",
            http_response("200 OK", &[cbor.clone(), cl(31 * 1024 * 1024)], b""),
            "version",
            too_large,
        ),
        (
            "chunked body over the limit",
            chunked_big,
            "version",
            too_large,
        ),
        (
            "not HTTP",
            b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(),
            "version",
            malformed,
        ),
        (
            "unexpected 2xx status",
            http_response(
                "202 Accepted",
                &[cbor.clone(), cl(good_version.len())],
                &good_version,
            ),
            "version",
            malformed,
        ),
        (
            "200 to a ranged read",
            http_response("200 OK", &[oct.clone(), cl(10)], &[0; 10]),
            "read",
            malformed,
        ),
        (
            "Content-Range past request",
            http_response(
                "206 Partial Content",
                &[
                    oct.clone(),
                    ("Content-Range", "bytes 0-19/*".into()),
                    cl(20),
                ],
                &[0; 20],
            ),
            "read",
            malformed,
        ),
        (
            "Content-Range elsewhere",
            http_response(
                "206 Partial Content",
                &[oct.clone(), ("Content-Range", "bytes 3-5/*".into()), cl(3)],
                &[0; 3],
            ),
            "read",
            malformed,
        ),
        (
            "no Content-Range",
            http_response("206 Partial Content", &[oct.clone(), cl(3)], &[0; 3]),
            "read",
            malformed,
        ),
        (
            "body shorter than Content-Range",
            http_response(
                "206 Partial Content",
                &[oct.clone(), ("Content-Range", "bytes 0-9/*".into()), cl(4)],
                &[0; 4],
            ),
            "read",
            malformed,
        ),
        (
            "body longer than Content-Range",
            http_response(
                "206 Partial Content",
                &[oct.clone(), ("Content-Range", "bytes 0-1/*".into()), cl(8)],
                &[0; 8],
            ),
            "read",
            malformed,
        ),
        (
            "read with CBOR type",
            http_response(
                "206 Partial Content",
                &[cbor.clone(), ("Content-Range", "bytes 0-1/*".into()), cl(2)],
                &[0; 2],
            ),
            "read",
            malformed,
        ),
        (
            "201 with ranges still required",
            http_response(
                "201 Created",
                &[cbor.clone(), cl(required.len())],
                &required,
            ),
            "write",
            malformed,
        ),
    ];
    for (name, resp, kind, check) in cases {
        let addr = fake_server(&id, resp).await;
        let c = GbsClient::new(&fake_nurl(&id, addr), opts.clone()).unwrap();
        let r = match kind {
            "version" => c.version().await.map(|_| ()),
            "list" => c
                .list_mutable_shares(&StorageIndex([0; 16]))
                .await
                .map(|_| ()),
            "read" => c
                .read_immutable(&StorageIndex([0; 16]), ShareNum(0), 0, 10)
                .await
                .map(|_| ()),
            "write" => c
                .write_share_chunk(&StorageIndex([0; 16]), ShareNum(0), b"s", 0, vec![1u8])
                .await
                .map(|_| ()),
            _ => unreachable!(),
        };
        let e = r.expect_err(name);
        assert!(check(&e), "{name}: {e:?}");
        assert_eq!(e.fault(), Fault::Server, "{name}: {e:?}");
    }

    // an error status with a huge body: the server's message, cut
    let big = vec![b'x'; 1_000_000];
    let addr = fake_server(
        &id,
        http_response("500 Internal Server Error", &[cl(big.len())], &big),
    )
    .await;
    let c = GbsClient::new(&fake_nurl(&id, addr), opts.clone()).unwrap();
    let e = c.version().await.unwrap_err();
    match &e {
        GbsClientError::Status {
            status: 500,
            message,
            ..
        } => assert!(message.len() < 1000 && message.starts_with("xxx")),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.fault(), Fault::Server);

    // a 400 with the server's explanation
    let addr = fake_server(
        &id,
        http_response("400 Bad Request", &[cl(13)], b"bad share num"),
    )
    .await;
    let c = GbsClient::new(&fake_nurl(&id, addr), opts.clone()).unwrap();
    let e = c.version().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("storage server {addr}: HTTP 400: bad share num")
    );
    assert_eq!(e.fault(), Fault::Client);

    // the server closes right after the handshake: network error, not a panic
    let addr = fake_server(&id, Vec::new()).await;
    let c = GbsClient::new(&fake_nurl(&id, addr), opts.clone()).unwrap();
    // (the fake server waits for a request head first, then closes without answering)
    let e = c.version().await.unwrap_err();
    assert_eq!(e.fault(), Fault::Network, "{e:?}");

    // a 503 on an idempotent request is retried, and reported after the bound. The fake
    // server answers one request per connection, so it says so (`Connection: close`):
    // otherwise the pool may send the retry down the closing connection and the last
    // attempt ends in a network error instead of the 503 (a flaky failure under load).
    let close = ("Connection", "close".to_string());
    let addr = fake_server(
        &id,
        http_response("503 Service Unavailable", &[cl(4), close], b"busy"),
    )
    .await;
    let c = GbsClient::new(
        &fake_nurl(&id, addr),
        ClientOptions {
            retry: RetryPolicy {
                max_retries: 2,
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(10),
            },
            ..opts.clone()
        },
    )
    .unwrap();
    let e = c.version().await.unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert_eq!(c.stats().attempts, 3);
}

#[test]
fn tor_nurls_are_refused_and_bad_nurls_explained() {
    let h = "rX6lSdgIDGjNDgqvgvf9DyVTXcbfnzE7jeo7lxh8yVU";
    let e = GbsClient::from_nurl_str(
        &format!("pb+tor://{h}@x.onion:80/abc#v=1"),
        ClientOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, GbsClientError::Unsupported(_)), "{e}");
    let e = GbsClient::from_nurl_str(&format!("pb://{h}@host:80/abc"), ClientOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("v=1"), "{e}");
}

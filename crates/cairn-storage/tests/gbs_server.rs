//! The storage server over real TLS on 127.0.0.1: every GBS endpoint and its error codes,
//! container bytes on disk, limits, shutdown, and shares written by Tahoe served back.

use std::collections::BTreeSet;

use cairn_core::ids::ShareNum;
use cairn_core::storage::container::hash_lease_secret;
use cairn_core::storage::gbs::{
    self, ByteRange, RtwRequest, RtwResponse, TestVector, TestWriteVectors, WriteVector,
};
use cairn_test_support::gbs_raw::*;
use cairn_test_support::storage_node::{create_node_dir, StorageServer};
use hyper::{Method, StatusCode};

const SI_A: [u8; 16] = [1; 16];

fn si_path(si: &[u8; 16]) -> String {
    gbs::storage_index_to_string(&gbs::StorageIndex(*si))
}

async fn allocate(
    c: &RawClient,
    si: &[u8; 16],
    shares: &[u8],
    size: u64,
    upload: &[u8],
) -> gbs::AllocateResponse {
    let req = gbs::AllocateRequest {
        share_numbers: shares.iter().copied().map(ShareNum).collect(),
        allocated_size: size,
    };
    let r = c
        .req(
            Method::POST,
            &format!("/storage/v1/immutable/{}", si_path(si)),
            &alloc_secrets(&[7; 32], &[8; 32], upload),
            req.encode(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.headers["content-type"], "application/cbor");
    gbs::AllocateResponse::parse(&r.body).unwrap()
}

async fn patch(
    c: &RawClient,
    si: &[u8; 16],
    shnum: u8,
    upload: &[u8],
    offset: u64,
    data: &[u8],
) -> Resp {
    let cr = gbs::content_range_header(ByteRange {
        start: offset,
        end: offset + data.len() as u64,
    });
    let mut h = vec![
        secret("upload-secret", upload),
        ("content-range".to_string(), cr),
    ];
    h.push(("content-type".into(), "application/octet-stream".into()));
    c.req(
        Method::PATCH,
        &format!("/storage/v1/immutable/{}/{shnum}", si_path(si)),
        &h,
        data.to_vec(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn version_and_authorization() {
    let n = StorageServer::start("test").await;
    let c = &n.raw;
    let r = c.get("/storage/v1/version").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/cbor");
    let v = gbs::VersionResponse::parse(&r.body).unwrap();
    assert!(v.available_space > 0);
    // No / wrong Authorization → 401.
    let r = c
        .raw(Method::GET, "/storage/v1/version", &[], vec![], true)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = c
        .raw(
            Method::GET,
            "/storage/v1/version",
            &[("authorization".into(), "Tahoe-LAFS d3Jvbmc=".into())],
            vec![],
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A secret the endpoint does not take → 400.
    let r = c
        .req(
            Method::GET,
            "/storage/v1/version",
            &[secret("upload-secret", b"x")],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Accept */* → 406.
    let r = c
        .req(
            Method::GET,
            "/storage/v1/version",
            &[("accept".into(), "*/*".into())],
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    // Unknown path → 404; wrong method → 405.
    assert_eq!(
        c.get("/storage/v1/nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.status(Method::DELETE, "/storage/v1/version", &[], vec![])
            .await,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn immutable_upload_in_pieces_and_reads() {
    let n = StorageServer::start("test").await;
    let c = &n.raw;
    let up = b"upload-secret-1";
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let a = allocate(c, &SI_A, &[0, 1, 2], 1000, up).await;
    assert_eq!(
        a.allocated,
        [0u8, 1, 2]
            .map(ShareNum)
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
    assert!(a.already_have.is_empty());
    assert!(n.reserved_bytes() >= 3000);

    // Missing Content-Range → 416; wrong secret → 401; no such upload → 404; past the end → 416.
    let p = format!("/storage/v1/immutable/{}/0", si_path(&SI_A));
    let r = c
        .req(
            Method::PATCH,
            &p,
            &[secret("upload-secret", up)],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        patch(c, &SI_A, 0, b"wrong", 0, &data[..10]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        patch(c, &SI_A, 9, up, 0, &data[..10]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        patch(c, &SI_A, 0, up, 995, &data[..10]).await.status,
        StatusCode::RANGE_NOT_SATISFIABLE
    );

    // Pieces, with an identical overlap and a conflicting one.
    let r = patch(c, &SI_A, 0, up, 0, &data[..400]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(required(&r), [(400, 1000)]);
    let r = patch(c, &SI_A, 0, up, 300, &data[300..600]).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut bad = data[500..700].to_vec();
    bad[50] ^= 1;
    let before = std::fs::read(share_file(&n, "shares/incoming", &SI_A, 0)).unwrap();
    let r = patch(c, &SI_A, 0, up, 500, &bad).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let after = std::fs::read(share_file(&n, "shares/incoming", &SI_A, 0)).unwrap();
    assert_eq!(
        before[..12 + 600],
        after[..12 + 600],
        "written data untouched by a conflicting write"
    );
    let r = patch(c, &SI_A, 0, up, 800, &data[800..]).await;
    assert_eq!(required(&r), [(600, 800)]);
    let r = patch(c, &SI_A, 0, up, 600, &data[600..800]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.headers["content-type"], "application/cbor");
    assert!(gbs::parse_required_ranges(&r.body).unwrap().is_empty());
    // After completion the upload is gone.
    assert_eq!(
        patch(c, &SI_A, 0, up, 0, &data[..10]).await.status,
        StatusCode::NOT_FOUND
    );

    // Container bytes: v2 header, data, one owner-0 lease with hashed secrets.
    let share = std::fs::read(share_file(&n, "shares", &SI_A, 0)).unwrap();
    assert_eq!(share.len(), 12 + 1000 + 72);
    assert_eq!(&share[..12], &[0, 0, 0, 2, 0, 0, 0x03, 0xe8, 0, 0, 0, 1]);
    assert_eq!(&share[12..1012], &data[..]);
    let lease = &share[1012..];
    assert_eq!(&lease[..4], &[0, 0, 0, 0]);
    assert_eq!(&lease[4..36], &hash_lease_secret(&[7; 32]));
    assert_eq!(&lease[36..68], &hash_lease_secret(&[8; 32]));

    // Listing and reads.
    let r = c
        .get(&format!("/storage/v1/immutable/{}/shares", si_path(&SI_A)))
        .await;
    assert_eq!(
        gbs::parse_share_set(&r.body).unwrap(),
        [ShareNum(0)].into_iter().collect()
    );
    assert_eq!(r.body[..3], [0xd9, 0x01, 0x02], "tag 258");
    let r = c.get_range(&p, "bytes=10-19").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers["content-range"], "bytes 10-19/*");
    assert_eq!(r.body, &data[10..20]);
    let r = c.get_range(&p, "bytes=990-2000").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers["content-range"], "bytes 990-999/*");
    assert_eq!(r.body, &data[990..]);
    assert_eq!(
        c.get_range(&p, "bytes=1000-1010").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.get_range(&p, "bytes=0-").await.status,
        StatusCode::RANGE_NOT_SATISFIABLE
    );
    assert_eq!(
        c.get_range(&p, "bytes=0-1,4-5").await.status,
        StatusCode::RANGE_NOT_SATISFIABLE
    );
    let r = c.get(&p).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 1000));
    assert_eq!(
        c.get(&format!("/storage/v1/immutable/{}/7", si_path(&SI_A)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // A second allocation reports what we have and renews its lease.
    let a = allocate(c, &SI_A, &[0, 5], 1000, b"other").await;
    assert_eq!(a.already_have, [ShareNum(0)].into_iter().collect());
    assert_eq!(a.allocated, [ShareNum(5)].into_iter().collect());

    // Abort: in progress → 200, then 404; complete → 405; wrong secret → 401.
    let ab = |shnum: u8| format!("/storage/v1/immutable/{}/{shnum}/abort", si_path(&SI_A));
    let other: &[u8] = b"other";
    for (shnum, upload_secret, want) in [
        (1, &b"bad"[..], StatusCode::UNAUTHORIZED),
        (1, &up[..], StatusCode::OK),
        (1, &up[..], StatusCode::NOT_FOUND),
        (0, &up[..], StatusCode::METHOD_NOT_ALLOWED),
        (2, &up[..], StatusCode::OK),
        (5, other, StatusCode::OK),
    ] {
        let auth = [secret("upload-secret", upload_secret)];
        let got = c.status(Method::PUT, &ab(shnum), &auth, vec![]).await;
        assert_eq!(got, want, "abort share {shnum}");
    }
    assert_eq!(n.reserved_bytes(), 0);
    assert!(!n
        .storage_dir()
        .join("shares/incoming")
        .join(&si_path(&SI_A)[..2])
        .exists());

    // Corruption advisory.
    let cp = format!("/storage/v1/immutable/{}/0/corrupt", si_path(&SI_A));
    let body = gbs::CorruptRequest {
        reason: "bad".into(),
    }
    .encode();
    assert_eq!(
        c.status(Method::POST, &cp, &[], body.clone()).await,
        StatusCode::OK
    );
    let cp9 = format!("/storage/v1/immutable/{}/9/corrupt", si_path(&SI_A));
    assert_eq!(
        c.status(Method::POST, &cp9, &[], body).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        std::fs::read_dir(n.storage_dir().join("corruption-advisories"))
            .unwrap()
            .count(),
        1
    );
}

fn rtw_body(
    shnum: u8,
    tests: Vec<TestVector>,
    writes: Vec<WriteVector>,
    new_length: Option<u64>,
    reads: &[(u64, u64)],
) -> Vec<u8> {
    let mut r = RtwRequest::default();
    r.test_write_vectors.insert(
        shnum.into(),
        TestWriteVectors {
            test: tests,
            write: writes,
            new_length,
        },
    );
    r.read_vector = reads
        .iter()
        .map(|&(offset, size)| gbs::ReadVector { offset, size })
        .collect();
    r.encode()
}

/// Where the server keeps share `shnum` of `si` in `area` (`shares`, or `shares/incoming`
/// while uploading): Tahoe's layout, `<area>/<2 chars>/<si>/<n>`.
fn share_file(n: &StorageServer, area: &str, si: &[u8; 16], shnum: u8) -> std::path::PathBuf {
    let si = si_path(si);
    n.storage_dir()
        .join(area)
        .join(&si[..2])
        .join(&si)
        .join(shnum.to_string())
}

/// The byte ranges an upload answer says are still required, as (start, end).
fn required(r: &Resp) -> Vec<(u64, u64)> {
    let ranges = gbs::parse_required_ranges(&r.body).unwrap();
    ranges.into_iter().map(|b| (b.start, b.end)).collect()
}

fn tv(offset: u64, size: u64, specimen: Vec<u8>) -> TestVector {
    TestVector {
        offset,
        size,
        specimen,
    }
}

fn wv(offset: u64, data: Vec<u8>) -> WriteVector {
    WriteVector { offset, data }
}

/// A test-and-write body that only writes `data` at `offset` of share `shnum`.
fn rtw_write(shnum: u8, offset: u64, data: Vec<u8>) -> Vec<u8> {
    rtw_body(shnum, vec![], vec![wv(offset, data)], None, &[])
}

async fn rtw(c: &RawClient, si: &[u8; 16], we: &[u8; 32], body: Vec<u8>) -> Resp {
    c.req(
        Method::POST,
        &format!("/storage/v1/mutable/{}/read-test-write", si_path(si)),
        &rtw_secrets(we, &[3; 32], &[4; 32]),
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn mutable_read_test_write() {
    let n = StorageServer::start("test").await;
    let c = &n.raw;
    let si = [9u8; 16];
    let we = [5u8; 32];
    // Create.
    let r = rtw(
        c,
        &si,
        &we,
        rtw_body(
            0,
            vec![tv(0, 1, vec![])],
            vec![wv(0, b"hello world".to_vec())],
            None,
            &[(0, 5)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let resp = RtwResponse::parse(&r.body).unwrap();
    assert!(resp.success);
    assert!(resp.data.is_empty());
    let path = share_file(&n, "shares", &si, 0);
    let file = std::fs::read(&path).unwrap();
    assert_eq!(
        &file[..32],
        b"Tahoe mutable container v2\n\xc3\x55\x21\x99\x25"
    );
    assert_eq!(&file[32..52], &n.identity.tubid);
    assert_eq!(&file[52..84], &we);
    assert_eq!(&file[468..479], b"hello world");
    // Overwrite with a passing test.
    let r = rtw(
        c,
        &si,
        &we,
        rtw_body(
            0,
            vec![tv(0, 5, b"hello".to_vec())],
            vec![wv(6, b"there".to_vec())],
            None,
            &[(0, 11)],
        ),
    )
    .await;
    let resp = RtwResponse::parse(&r.body).unwrap();
    assert!(resp.success);
    assert_eq!(resp.data[&ShareNum(0)], vec![b"hello world".to_vec()]);
    // Failing test: nothing written.
    let before = std::fs::read(&path).unwrap();
    let r = rtw(
        c,
        &si,
        &we,
        rtw_body(
            0,
            vec![tv(0, 5, b"HELLO".to_vec())],
            vec![wv(0, b"XXXXX".to_vec())],
            None,
            &[],
        ),
    )
    .await;
    assert!(!RtwResponse::parse(&r.body).unwrap().success);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Bad write enabler → 401, nothing written.
    let r = rtw(c, &si, &[6; 32], rtw_write(0, 0, b"evil".to_vec())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Reads.
    let p = format!("/storage/v1/mutable/{}/0", si_path(&si));
    let r = c.get_range(&p, "bytes=0-100").await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &b"hello there"[..])
    );
    assert_eq!(r.headers["content-range"], "bytes 0-10/*");
    assert_eq!(
        c.get_range(&p, "bytes=11-20").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.get(&format!("/storage/v1/mutable/{}/3", si_path(&si)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = c
        .get(&format!("/storage/v1/mutable/{}/shares", si_path(&si)))
        .await;
    assert_eq!(
        gbs::parse_share_set(&r.body).unwrap(),
        [ShareNum(0)].into_iter().collect()
    );
    // Truncate.
    let r = rtw(c, &si, &we, rtw_body(0, vec![], vec![], Some(5), &[])).await;
    assert!(RtwResponse::parse(&r.body).unwrap().success);
    assert_eq!(c.get_range(&p, "bytes=0-100").await.body, b"hello");
    // Delete (new length 0) removes the file and the bucket directory.
    let r = rtw(c, &si, &we, rtw_body(0, vec![], vec![], Some(0), &[])).await;
    assert!(RtwResponse::parse(&r.body).unwrap().success);
    assert!(!path.exists());
    assert!(!path.parent().unwrap().exists());
    // Write-enabler of the wrong length → 400.
    let h = vec![
        secret("write-enabler", b"short"),
        secret("lease-renew-secret", &[3; 32]),
        secret("lease-cancel-secret", &[4; 32]),
    ];
    let r = c
        .req(
            Method::POST,
            &format!("/storage/v1/mutable/{}/read-test-write", si_path(&si)),
            &h,
            rtw_body(0, vec![], vec![], None, &[]),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn lease_renewal() {
    let n = StorageServer::start("test").await;
    let c = &n.raw;
    let up = b"u";
    allocate(c, &SI_A, &[0], 10, up).await;
    assert_eq!(
        patch(c, &SI_A, 0, up, 0, b"0123456789").await.status,
        StatusCode::CREATED
    );
    let lp = format!("/storage/v1/lease/{}", si_path(&SI_A));
    let h = vec![
        secret("lease-renew-secret", &[1; 32]),
        secret("lease-cancel-secret", &[2; 32]),
    ];
    assert_eq!(
        c.status(Method::PUT, &lp, &h, vec![]).await,
        StatusCode::NO_CONTENT
    );
    let share = std::fs::read(share_file(&n, "shares", &SI_A, 0)).unwrap();
    assert_eq!(share.len(), 12 + 10 + 2 * 72);
    assert_eq!(&share[8..12], &[0, 0, 0, 2]);
    assert_eq!(
        &share[22 + 72..22 + 76],
        &[0, 0, 0, 1],
        "owner 1 for add_lease"
    );
    // Renewing the same lease adds nothing.
    assert_eq!(
        c.status(Method::PUT, &lp, &h, vec![]).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        std::fs::metadata(share_file(&n, "shares", &SI_A, 0))
            .unwrap()
            .len(),
        12 + 10 + 144
    );
    // Unknown storage index → 404; short lease secret → 400.
    assert_eq!(
        c.status(
            Method::PUT,
            &format!("/storage/v1/lease/{}", si_path(&[2; 16])),
            &h,
            vec![]
        )
        .await,
        StatusCode::NOT_FOUND
    );
    let bad = vec![
        secret("lease-renew-secret", &[1; 31]),
        secret("lease-cancel-secret", &[2; 32]),
    ];
    assert_eq!(
        c.status(Method::PUT, &lp, &bad, vec![]).await,
        StatusCode::BAD_REQUEST
    );
    // The lease database agrees.
    let st = &n.server.as_ref().unwrap().state;
    let leases = st
        .db
        .lock()
        .unwrap()
        .leases(&cairn_storage::leasedb::ShareKey::new(
            cairn_core::cap::StorageIndex(SI_A),
            ShareNum(0),
        ))
        .unwrap();
    assert_eq!(leases.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_touches_nothing() {
    let n = StorageServer::start("test").await;
    let c = &n.raw;
    allocate(c, &SI_A, &[0], 10, b"u").await;
    assert_eq!(
        patch(c, &SI_A, 0, b"u", 0, b"0123456789").await.status,
        StatusCode::CREATED
    );
    let before = snapshot(&n.storage_dir());
    let s = alloc_secrets(&[7; 32], &[8; 32], b"u");
    // Path tricks and bad storage indexes → 404.
    for p in [
        "/storage/v1/immutable/../../../etc/passwd",
        "/storage/v1/immutable/%2e%2e%2f%2e%2e",
        "/storage/v1/immutable/AAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/storage/v1/immutable/aaaaaaaaaaaaaaaaaaaaaaaaa",
        "/storage/v1/immutable/aaaaaaaaaaaaaaaaaaaaaaaaab",
    ] {
        let r = c
            .req(
                Method::POST,
                p,
                &s,
                gbs::AllocateRequest {
                    share_numbers: [ShareNum(1)].into(),
                    allocated_size: 5,
                }
                .encode(),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
    }
    let p = format!("/storage/v1/immutable/{}", si_path(&SI_A));
    for (sh, shnum) in [("-1", "neg"), ("256", "too big"), ("1a", "junk")] {
        let r = c.get(&format!("{p}/{sh}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{shnum}");
    }
    // Malformed CBOR, schema violations, share numbers out of range → 400.
    for body in [vec![0xff, 0x00], vec![0xa1], b"not cbor".to_vec(), {
        let v = gbs::cbor::Value::Map(vec![
            (
                gbs::cbor::Value::text("share-numbers"),
                gbs::cbor::Value::Tag(
                    258,
                    Box::new(gbs::cbor::Value::Array(vec![gbs::cbor::Value::Uint(300)])),
                ),
            ),
            (
                gbs::cbor::Value::text("allocated-size"),
                gbs::cbor::Value::Uint(5),
            ),
        ]);
        gbs::cbor::encode(&v)
    }] {
        let r = c.req(Method::POST, &p, &s, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(!r.body.is_empty(), "a message says why");
    }
    // Wrong content type → 415; too large → 413.
    let mut h = s.clone();
    h.push(("content-type".into(), "application/json".into()));
    assert_eq!(
        c.status(Method::POST, &p, &h, b"{}".to_vec()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        c.status(Method::POST, &p, &s, vec![0; 9000]).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // RTW with garbage → 400.
    let r = rtw(c, &[3; 16], &[1; 32], vec![0xa0]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // RTW onto an immutable storage index → 4xx.
    let r = rtw(c, &SI_A, &[1; 32], rtw_write(0, 0, b"x".to_vec())).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(snapshot(&n.storage_dir()), before, "stored data untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn limits() {
    // reserved_space larger than the disk: nothing can be allocated, available-space is 0.
    let n = StorageServer::start_with("test", |o| o.reserved_space = u64::MAX / 2).await;
    let v = gbs::VersionResponse::parse(&n.raw.get("/storage/v1/version").await.body).unwrap();
    assert_eq!(v.available_space, 0);
    let a = allocate(&n.raw, &SI_A, &[0, 1], 100, b"u").await;
    assert!(a.allocated.is_empty());
    assert_eq!(n.reserved_bytes(), 0);
    // RTW that needs space → 507, nothing written.
    let r = rtw(&n.raw, &[4; 16], &[1; 32], rtw_write(0, 0, b"x".to_vec())).await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE);

    // Concurrent uploads, share size and body limits.
    let n = StorageServer::start_with("test", |o| {
        o.limits.max_concurrent_uploads = 2;
        o.limits.max_immutable_share_size = 1000;
        o.limits.max_rtw_body_size = 1000;
    })
    .await;
    let a = allocate(&n.raw, &SI_A, &[0, 1, 2], 100, b"u").await;
    assert_eq!(a.allocated.len(), 2);
    let a = allocate(&n.raw, &[2; 16], &[0], 1001, b"u").await;
    assert!(a.allocated.is_empty());
    let big = rtw_write(0, 0, vec![1; 2000]);
    assert_eq!(
        rtw(&n.raw, &[4; 16], &[1; 32], big).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let v = gbs::VersionResponse::parse(&n.raw.get("/storage/v1/version").await.body).unwrap();
    assert_eq!(v.maximum_immutable_share_size, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_releases_reservations_and_partial_uploads() {
    let mut n = StorageServer::start("test").await;
    allocate(&n.raw, &SI_A, &[0, 1], 100, b"u").await;
    assert_eq!(
        patch(&n.raw, &SI_A, 0, b"u", 0, &[1; 50]).await.status,
        StatusCode::OK
    );
    assert_eq!(n.reserved_bytes(), 200);
    let server = n.server.take().unwrap();
    let state = server.state.clone();
    let t = std::time::Instant::now();
    let aborted = server.shutdown(std::time::Duration::from_secs(2)).await;
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(aborted, 2);
    assert_eq!(state.db.lock().unwrap().reserved_bytes().unwrap(), 0);
    let incoming = n.storage_dir().join("shares/incoming");
    assert_eq!(
        std::fs::read_dir(&incoming).unwrap().count(),
        0,
        "no partial upload left"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_uploads_time_out() {
    let n = StorageServer::start_with("test", |o| {
        o.limits.upload_timeout = std::time::Duration::from_millis(300)
    })
    .await;
    allocate(&n.raw, &SI_A, &[0], 100, b"u").await;
    assert_eq!(n.reserved_bytes(), 100);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(n.reserved_bytes(), 0);
    assert_eq!(
        patch(&n.raw, &SI_A, 0, b"u", 0, &[1; 10]).await.status,
        StatusCode::NOT_FOUND
    );
}

use cairn_test_support::data::hex;

/// Containers written by Tahoe-LAFS 1.20 (vectors/containers/) are served byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn serves_containers_tahoe_wrote() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors/containers");
    let imm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("immutable.json")).unwrap())
            .unwrap();
    let mutv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("mutable.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, identity) = create_node_dir(dir.path(), "test");
    let shares = config.storage_dir.join("shares");
    let mut expected: Vec<([u8; 16], u8, bool, Vec<u8>)> = Vec::new();
    let mut place =
        |si: [u8; 16], files: &serde_json::Map<String, serde_json::Value>, mutable: bool| {
            let s = gbs::storage_index_to_string(&gbs::StorageIndex(si));
            let b = shares.join(&s[..2]).join(&s);
            std::fs::create_dir_all(&b).unwrap();
            for (shnum, file) in files {
                let bytes = hex(file.as_str().unwrap());
                std::fs::write(b.join(shnum), &bytes).unwrap();
                let data = if mutable {
                    let len = u64::from_be_bytes(bytes[84..92].try_into().unwrap()) as usize;
                    bytes[468..468 + len].to_vec()
                } else {
                    let nl = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
                    bytes[12..bytes.len() - nl * 72].to_vec()
                };
                expected.push((si, shnum.parse().unwrap(), mutable, data));
            }
        };
    for (i, v) in imm["vectors"].as_array().unwrap().iter().enumerate() {
        let si: [u8; 16] = match v["storage_index"].as_str() {
            Some(h) => hex(h).try_into().unwrap(),
            None => [0x40 + i as u8; 16],
        };
        let last = v["steps"].as_array().unwrap().last().unwrap();
        place(si, last["files_after"].as_object().unwrap(), false);
    }
    for s in mutv["scenarios"].as_array().unwrap() {
        let si: [u8; 16] = hex(s["storage_index"].as_str().unwrap())
            .try_into()
            .unwrap();
        let last = s["steps"].as_array().unwrap().last().unwrap();
        place(si, last["files_after"].as_object().unwrap(), true);
    }
    assert!(expected.len() >= 4);
    let before = snapshot(&shares);
    let mut n = StorageServer::start_in(dir, config, identity, |_| {}).await;
    let c = n.raw.clone();
    for (si, shnum, mutable, data) in &expected {
        let kind = if *mutable { "mutable" } else { "immutable" };
        let r = c
            .get(&format!("/storage/v1/{kind}/{}/shares", si_path(si)))
            .await;
        assert!(gbs::parse_share_set(&r.body)
            .unwrap()
            .contains(&ShareNum(*shnum)));
        let r = c
            .get_range(
                &format!("/storage/v1/{kind}/{}/{shnum}", si_path(si)),
                &format!("bytes=0-{}", data.len() + 100),
            )
            .await;
        if data.is_empty() {
            assert_eq!(r.status, StatusCode::NO_CONTENT);
        } else {
            assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
            assert_eq!(&r.body, data, "{kind} {}/{shnum}", si_path(si));
        }
    }
    assert_eq!(snapshot(&shares), before, "reading changes nothing");
    n.stop().await;
}

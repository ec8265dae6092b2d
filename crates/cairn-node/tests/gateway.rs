//! The web layer of the gateway over HTTP, with the grid replaced by an in-memory backend
//! that encodes with cairn-core (so caps are real CHK caps): spooling and the convergent key
//! computed on the way, LIT, caps raw and percent-encoded, `t=json`, ranges, HEAD, ETags,
//! and Tahoe's error codes; mutable files (create, overwrite, offset updates, reads, JSON,
//! errors) on an in-memory mutable store with real SSK/MDMF caps.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use cairn_client::mutable::MutableError;
use cairn_core::cap::ChkReadCap;
use cairn_core::cap::{Cap, MdmfWriteCap, SdmfWriteCap};
use cairn_core::chk::{convergent_key, encode_file, EncodingParams};
use cairn_core::mutable::keys::{MutableKeys, SigningKey};
use cairn_node::config::{ClientConfig, Secrets};
use cairn_node::gateway::{
    self, mutable_error, Backend, BoxFuture, GatewayHandle, GatewayState, MutableFormat,
    MutableInfo, MutableOp, MutableReader, RoundTripCount, UploadSource, WebError,
};
use cairn_test_support::data;
use cairn_test_support::data::b64;
use cairn_test_support::http::{get, put, quote_all, ranged, request, try_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, PartialEq, Eq)]
struct UploadSeen {
    in_memory: bool,
    size: u64,
    key_given: bool,
}

/// An in-memory grid: files by cap.
struct MemoryBackend {
    params: EncodingParams,
    convergence: Vec<u8>,
    files: Mutex<HashMap<String, Vec<u8>>>,
    uploads: Mutex<Vec<UploadSeen>>,
    /// Fail a download after this many bytes were written.
    fail_after: Mutex<Option<u64>>,
    /// Mutable files by read cap: format, contents, seqnum.
    mutables: Mutex<HashMap<String, MutableFile>>,
    /// Mutable write calls seen, in order.
    mutable_calls: Mutex<Vec<MutableCall>>,
    /// The next mutable write fails with this error (as the driver would).
    fail_next_write: Mutex<Option<fn() -> MutableError>>,
    /// Files made so far (for fresh caps without generating RSA keys).
    counter: Mutex<u8>,
}

#[derive(Debug, Clone)]
struct MutableFile {
    format: MutableFormat,
    data: Vec<u8>,
    seqnum: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MutableCall {
    Create {
        format: MutableFormat,
        len: usize,
        key_given: bool,
    },
    Overwrite {
        len: usize,
    },
    Modify {
        offset: u64,
        len: usize,
    },
}

/// The read cap string of an SSK/MDMF write or read cap.
fn readcap_of(cap: &Cap) -> String {
    match cap {
        Cap::SdmfWrite(c) => c.readonly().to_string(),
        Cap::MdmfWrite(c) => c.readonly().to_string(),
        Cap::SdmfRead(_) | Cap::MdmfRead(_) => cap.to_string(),
        other => panic!("the gateway passed a non-mutable cap: {other:?}"),
    }
}

impl MemoryBackend {
    fn new(params: EncodingParams, convergence: Vec<u8>) -> MemoryBackend {
        MemoryBackend {
            params,
            convergence,
            files: Mutex::default(),
            uploads: Mutex::default(),
            fail_after: Mutex::default(),
            mutables: Mutex::default(),
            mutable_calls: Mutex::default(),
            fail_next_write: Mutex::default(),
            counter: Mutex::default(),
        }
    }

    fn injected_failure(&self) -> Result<(), WebError> {
        match self.fail_next_write.lock().unwrap().take() {
            Some(f) => Err(mutable_error(MutableOp::Write, f())),
            None => Ok(()),
        }
    }

    fn writable(&self, cap: &Cap) -> Result<String, WebError> {
        if matches!(cap, Cap::SdmfRead(_) | Cap::MdmfRead(_)) {
            return Err(mutable_error(MutableOp::Write, MutableError::NotWriteable));
        }
        let ro = readcap_of(cap);
        if !self.mutables.lock().unwrap().contains_key(&ro) {
            return Err(mutable_error(
                MutableOp::Write,
                MutableError::NoSuchFile { asked: 10 },
            ));
        }
        Ok(ro)
    }
}

struct MemoryMutable {
    file: MutableFile,
    fail_after: Option<u64>,
}

/// Requests the in-memory backend claims for each operation (distinct numbers, so the
/// gateway's sums can be checked): an open 8, a create 4 writes, an overwrite 8 + 4, a
/// modify 8 + 2 reads + 4.
const fn trips(servermap: u64, reads: u64, writes: u64) -> RoundTripCount {
    RoundTripCount {
        servermap,
        reads,
        writes,
    }
}
const OPEN_TRIPS: RoundTripCount = trips(8, 0, 0);
const CREATE_TRIPS: RoundTripCount = trips(0, 0, 4);
const OVERWRITE_TRIPS: RoundTripCount = trips(8, 0, 4);
const MODIFY_TRIPS: RoundTripCount = trips(8, 2, 4);

impl MutableReader for MemoryMutable {
    fn info(&self) -> MutableInfo {
        MutableInfo {
            format: self.file.format,
            size: self.file.data.len() as u64,
            seqnum: self.file.seqnum,
        }
    }

    fn round_trips(&self) -> RoundTripCount {
        OPEN_TRIPS
    }

    fn read<'a>(
        &'a self,
        range: Range<u64>,
        sink: &'a mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<(), WebError>> {
        Box::pin(async move {
            assert!(
                range.end <= self.file.data.len() as u64 && range.start < range.end,
                "{range:?}"
            );
            let mut written = 0u64;
            for piece in self.file.data[range.start as usize..range.end as usize].chunks(10_000) {
                if self.fail_after.is_some_and(|f| written >= f) {
                    return Err(mutable_error(
                        MutableOp::Read,
                        MutableError::Unrecoverable("shares vanished".into()),
                    ));
                }
                sink.write_all(piece)
                    .await
                    .map_err(|e| WebError::new(axum_status(500), e.to_string()))?;
                written += piece.len() as u64;
            }
            Ok(())
        })
    }
}

impl Backend for MemoryBackend {
    fn upload(&self, source: UploadSource) -> BoxFuture<'_, Result<String, WebError>> {
        Box::pin(async move {
            let (bytes, seen, key) = match source {
                UploadSource::Bytes(b) => {
                    let n = b.len() as u64;
                    (
                        b.to_vec(),
                        UploadSeen {
                            in_memory: true,
                            size: n,
                            key_given: false,
                        },
                        None,
                    )
                }
                UploadSource::File {
                    mut file,
                    size,
                    key,
                } => {
                    use std::io::Read;
                    let mut v = Vec::new();
                    file.read_to_end(&mut v).unwrap();
                    assert_eq!(
                        v.len() as u64,
                        size,
                        "spooled file has the announced size, rewound"
                    );
                    (
                        v,
                        UploadSeen {
                            in_memory: false,
                            size,
                            key_given: key.is_some(),
                        },
                        key,
                    )
                }
            };
            assert!(bytes.len() > 55, "the gateway makes LIT caps itself");
            let expected = convergent_key(&self.params, &self.convergence, &bytes).unwrap();
            if let Some(k) = key {
                assert_eq!(
                    k, expected,
                    "the key hashed while spooling is the convergent key"
                );
            }
            let cap = encode_file(&self.params, expected, &bytes, None)
                .unwrap()
                .read_cap_string();
            self.files.lock().unwrap().insert(cap.clone(), bytes);
            self.uploads.lock().unwrap().push(seen);
            Ok(cap)
        })
    }

    fn download<'a>(
        &'a self,
        cap: &'a ChkReadCap,
        range: Range<u64>,
        sink: &'a mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<(), WebError>> {
        Box::pin(async move {
            let data = self.files.lock().unwrap().get(&cap.to_string()).cloned();
            let Some(data) = data else {
                return Err(WebError::new(
                    axum_status(410),
                    "NoSharesError: no shares could be found",
                ));
            };
            assert!(
                range.end <= data.len() as u64 && range.start < range.end,
                "{range:?}"
            );
            let fail_after = *self.fail_after.lock().unwrap();
            let mut written = 0u64;
            for piece in data[range.start as usize..range.end as usize].chunks(10_000) {
                if fail_after.is_some_and(|f| written >= f) {
                    return Err(WebError::new(
                        axum_status(410),
                        "NotEnoughSharesError: ran out of shares",
                    ));
                }
                sink.write_all(piece)
                    .await
                    .map_err(|e| WebError::new(axum_status(500), e.to_string()))?;
                written += piece.len() as u64;
            }
            Ok(())
        })
    }

    fn create_mutable(
        &self,
        format: MutableFormat,
        data: bytes::Bytes,
        key: Option<SigningKey>,
    ) -> BoxFuture<'_, Result<(String, RoundTripCount), WebError>> {
        Box::pin(async move {
            self.mutable_calls
                .lock()
                .unwrap()
                .push(MutableCall::Create {
                    format,
                    len: data.len(),
                    key_given: key.is_some(),
                });
            self.injected_failure()?;
            let (writekey, fingerprint) = match &key {
                Some(k) => {
                    let keys = MutableKeys::from_signing_key(k);
                    (*keys.writekey().unwrap(), keys.fingerprint().unwrap())
                }
                None => {
                    let mut c = self.counter.lock().unwrap();
                    *c += 1;
                    ([*c; 16], [*c ^ 0x5a; 32])
                }
            };
            let (w, r) = match format {
                MutableFormat::Sdmf => {
                    let c = SdmfWriteCap::new(writekey, fingerprint);
                    (c.to_string(), c.readonly().to_string())
                }
                MutableFormat::Mdmf => {
                    let c = MdmfWriteCap::new(writekey, fingerprint);
                    (c.to_string(), c.readonly().to_string())
                }
            };
            self.mutables.lock().unwrap().insert(
                r,
                MutableFile {
                    format,
                    data: data.to_vec(),
                    seqnum: 1,
                },
            );
            Ok((w, CREATE_TRIPS))
        })
    }

    fn overwrite_mutable<'a>(
        &'a self,
        writecap: &'a Cap,
        data: bytes::Bytes,
    ) -> BoxFuture<'a, Result<RoundTripCount, WebError>> {
        Box::pin(async move {
            self.mutable_calls
                .lock()
                .unwrap()
                .push(MutableCall::Overwrite { len: data.len() });
            self.injected_failure()?;
            let ro = self.writable(writecap)?;
            let mut m = self.mutables.lock().unwrap();
            let f = m.get_mut(&ro).unwrap();
            f.data = data.to_vec();
            f.seqnum += 1;
            Ok(OVERWRITE_TRIPS)
        })
    }

    fn modify_mutable<'a>(
        &'a self,
        writecap: &'a Cap,
        offset: u64,
        data: bytes::Bytes,
    ) -> BoxFuture<'a, Result<RoundTripCount, WebError>> {
        Box::pin(async move {
            self.mutable_calls
                .lock()
                .unwrap()
                .push(MutableCall::Modify {
                    offset,
                    len: data.len(),
                });
            self.injected_failure()?;
            let ro = self.writable(writecap)?;
            let mut m = self.mutables.lock().unwrap();
            let f = m.get_mut(&ro).unwrap();
            // Tahoe's rules (the driver's PastEnd::Tahoe): SDMF writes at the end, MDMF
            // refuses an offset past the end.
            let size = f.data.len() as u64;
            let offset = match f.format {
                MutableFormat::Sdmf => offset.min(size),
                MutableFormat::Mdmf if offset > size => {
                    return Err(cairn_node::gateway::mutable_error(
                        cairn_node::gateway::MutableOp::Write,
                        MutableError::OffsetPastEnd { offset, size },
                    ))
                }
                MutableFormat::Mdmf => offset,
            };
            let end = offset as usize + data.len();
            if f.data.len() < end {
                f.data.resize(end, 0);
            }
            f.data[offset as usize..end].copy_from_slice(&data);
            f.seqnum += 1;
            Ok(MODIFY_TRIPS)
        })
    }

    fn open_mutable<'a>(
        &'a self,
        cap: &'a Cap,
    ) -> BoxFuture<'a, Result<Box<dyn MutableReader>, WebError>> {
        Box::pin(async move {
            let file = self.mutables.lock().unwrap().get(&readcap_of(cap)).cloned();
            match file {
                Some(file) => Ok(Box::new(MemoryMutable {
                    file,
                    fail_after: *self.fail_after.lock().unwrap(),
                }) as Box<dyn MutableReader>),
                None => Err(mutable_error(
                    MutableOp::Read,
                    MutableError::NoSuchFile { asked: 10 },
                )),
            }
        })
    }
}

fn axum_status(code: u16) -> axum::http::StatusCode {
    axum::http::StatusCode::from_u16(code).unwrap()
}

struct Gw {
    _dir: tempfile::TempDir,
    url: String,
    backend: Arc<MemoryBackend>,
    handle: Option<GatewayHandle>,
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            drop(h);
        }
    }
}

/// A gateway over an in-memory backend; `convergence` (base32) replaces the node's secret.
async fn gateway_with(convergence_b32: Option<&str>) -> Gw {
    gateway_opts(convergence_b32, None).await
}

/// The same, with another limit on mutable file bodies.
async fn gateway_opts(convergence_b32: Option<&str>, mutable_max_body: Option<u64>) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("client");
    let opts = cairn_node::CreateClientOptions {
        webport: Some("tcp:0:interface=127.0.0.1".into()),
        ..Default::default()
    };
    cairn_node::create_client(&node, &opts).unwrap();
    if let Some(c) = convergence_b32 {
        std::fs::write(node.join("private/convergence"), format!("{c}\n")).unwrap();
    }
    let config = ClientConfig::load(&node).unwrap();
    std::fs::create_dir_all(&config.tempdir).unwrap();
    let secrets = Secrets::load_or_create(&node).unwrap();
    let backend = Arc::new(MemoryBackend::new(
        config.params,
        secrets.convergence.clone(),
    ));
    let (grid, _) = cairn_client::Grid::new(vec![], Default::default());
    let mut state = GatewayState::with_backend(&config, grid, secrets, backend.clone());
    if let Some(limit) = mutable_max_body {
        state.mutable_max_body = limit;
    }
    let state = Arc::new(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let handle = gateway::serve(listener, state);
    Gw {
        _dir: dir,
        url,
        backend,
        handle: Some(handle),
    }
}

async fn gateway() -> Gw {
    gateway_with(None).await
}

#[tokio::test]
async fn same_caps_as_tahoe_for_the_same_secret() {
    // vectors/chk_caps.json: caps Tahoe 1.20's uploader gave, k=3 N=10 with 1 MiB segments
    // (Tahoe's defaults), convergence secret 16 × 'a'.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../vectors/chk_caps.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let gw = gateway_with(Some("mfqwcylbmfqwcylbmfqwcylbme")).await;
    let mut checked = 0;
    for c in v["cases"].as_array().unwrap() {
        let (k, n, seg, size) = (
            c["k"].as_u64().unwrap(),
            c["n"].as_u64().unwrap(),
            c["max_segment_size"].as_u64().unwrap(),
            c["size"].as_u64().unwrap(),
        );
        if (k, n, seg) != (3, 10, 1 << 20)
            || c["convergence_b64"] != "YWFhYWFhYWFhYWFhYWFhYQ=="
            || size > 3 << 20
        {
            continue;
        }
        let seed = b64(c["seed_b64"].as_str().unwrap());
        let body: Vec<u8> = seed.iter().cycle().take(size as usize).copied().collect();
        let r = put(&gw.url, "/uri", body.clone()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), c["cap"].as_str().unwrap(), "size {size}");
        let back = get(&gw.url, &format!("/uri/{}", quote_all(&r.text()))).await;
        assert_eq!(back.status, 200);
        assert!(back.body == body, "size {size}: download differs");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} vectors matched the filter");
    // Bodies of known length over 1 MiB were spooled to disk with the key computed on the
    // way (read once more, not twice); smaller ones were held in memory.
    for u in gw.backend.uploads.lock().unwrap().iter() {
        if u.size > 1 << 20 {
            assert!(!u.in_memory && u.key_given, "{u:?}");
        } else {
            assert!(u.in_memory, "{u:?}");
        }
    }
}

#[tokio::test]
async fn lit_files_never_reach_the_grid() {
    let gw = gateway().await;
    for size in [0usize, 1, 55] {
        let body = data::bytes(size, 7);
        let r = put(&gw.url, "/uri", body.clone()).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), cairn_core::chk::lit_cap_string(&body).unwrap());
        let back = get(&gw.url, &format!("/uri/{}", r.text())).await;
        assert_eq!((back.status, back.body), (200, body));
        let j = get(&gw.url, &format!("/uri/{}?t=json", quote_all(&r.text()))).await;
        assert_eq!(
            j.text(),
            format!("[\n \"filenode\",\n {{\n  \"mutable\": false,\n  \"format\": \"CHK\",\n  \"size\": {size},\n  \"ro_uri\": \"{}\"\n }}\n]\n", r.text())
        );
    }
    assert!(gw.backend.uploads.lock().unwrap().is_empty());
    let r = get(&gw.url, "/uri/URI:LIT:nbswy3dpeb3w64tmmq").await;
    assert_eq!(r.text(), "hello world");
    let r = ranged(
        &gw.url,
        "GET",
        "/uri/URI:LIT:nbswy3dpeb3w64tmmq",
        "bytes=6-",
    )
    .await;
    assert_eq!(
        (r.status, r.text(), r.header("content-range").unwrap()),
        (206, "world".into(), "bytes 6-10/11".into())
    );
}

#[tokio::test]
async fn caps_raw_and_percent_encoded() {
    let gw = gateway().await;
    let body = data::bytes(5000, 1);
    let cap = put(&gw.url, "/uri", body.clone()).await.text();
    assert!(cap.starts_with("URI:CHK:"));
    let partly = cap.replace(':', "%3A");
    let lower = cap.replacen(':', "%3a", 1);
    for path in [
        format!("/uri/{cap}"),
        format!("/uri/{}", quote_all(&cap)),
        format!("/uri/{partly}"),
        format!("/uri/{lower}"),
        format!("/cap/{cap}"),
        format!("/file/{}/report.pdf", quote_all(&cap)),
        format!("/named/{cap}/x.txt"),
    ] {
        let r = get(&gw.url, &path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.body == body, "{path}");
        assert_eq!(r.header("content-length").unwrap(), "5000");
        assert_eq!(r.header("accept-ranges").unwrap(), "bytes");
    }
    // Content-Type from the name (/file/$CAP/NAME or ?filename=), text/plain otherwise.
    for (path, want) in [
        (format!("/file/{cap}/report.pdf"), "application/pdf"),
        (format!("/uri/{cap}?filename=a.png"), "image/png"),
        (format!("/uri/{cap}"), "text/plain"),
    ] {
        let r = get(&gw.url, &path).await;
        assert_eq!(r.header("content-type").as_deref(), Some(want), "{path}");
    }
    let r = get(&gw.url, &format!("/uri/{cap}?save=true&filename=a.bin")).await;
    assert_eq!(
        r.header("content-disposition").unwrap(),
        "attachment; filename=\"a.bin\""
    );

    // GET /uri?uri=CAP redirects to /uri/CAP (other arguments kept).
    let r = get(&gw.url, &format!("/uri?uri={}&t=json", quote_all(&cap))).await;
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap();
    assert!(
        loc.ends_with(&format!("/uri/{}?t=json", cap.replace(':', "%3A"))),
        "{loc}"
    );
    assert_eq!(get(&gw.url, "/uri").await.status, 400);
    assert_eq!(get(&gw.url, "/uri?uri=URI:NOPE:x").await.status, 400);
}

#[tokio::test]
async fn t_json_uri_head_and_etag() {
    let gw = gateway().await;
    let body = data::bytes(100_000, 2);
    let cap = put(&gw.url, "/uri", body.clone()).await.text();
    let parsed = match cairn_core::cap::Cap::parse(&cap).unwrap() {
        cairn_core::cap::Cap::ChkRead(c) => c,
        other => panic!("{other:?}"),
    };
    let j = get(&gw.url, &format!("/uri/{}?t=json", quote_all(&cap))).await;
    assert_eq!(j.status, 200);
    // Tahoe's _file_json_metadata for an immutable file without a parent, as
    // json.dumps(..., indent=1) + "\n" writes it.
    let expected = format!(
        "[\n \"filenode\",\n {{\n  \"mutable\": false,\n  \"format\": \"CHK\",\n  \"size\": 100000,\n  \"ro_uri\": \"{cap}\",\n  \"verify_uri\": \"{}\"\n }}\n]\n",
        parsed.verifier()
    );
    assert_eq!(j.text(), expected);
    assert_eq!(get(&gw.url, &format!("/uri/{cap}?t=uri")).await.text(), cap);
    assert_eq!(
        get(&gw.url, &format!("/uri/{cap}?t=readonly-uri"))
            .await
            .text(),
        cap
    );
    assert_eq!(
        get(&gw.url, &format!("/uri/{cap}?t=bogus")).await.status,
        400
    );

    // HEAD: the headers of GET, no body.
    let h = request(&gw.url, "HEAD", &format!("/uri/{cap}"), &[], vec![]).await;
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length").unwrap(), "100000");
    assert!(h.body.is_empty());
    let h = ranged(&gw.url, "HEAD", &format!("/uri/{cap}"), "bytes=10-19").await;
    assert_eq!(
        (h.status, h.header("content-length").unwrap()),
        (206, "10".into())
    );

    // Tahoe's ETag: "<storage index>-<t>"; a matching If-None-Match is a 304.
    let r = get(&gw.url, &format!("/uri/{cap}")).await;
    let etag = r.header("etag").unwrap();
    assert_eq!(etag, format!("\"{}-\"", parsed.storage_index().to_base32()));
    let r = request(
        &gw.url,
        "GET",
        &format!("/uri/{cap}"),
        &[("if-none-match", &etag)],
        vec![],
    )
    .await;
    assert_eq!((r.status, r.body.len()), (304, 0));
    let r = get(&gw.url, &format!("/uri/{cap}?t=json")).await;
    assert_eq!(
        r.header("etag").unwrap(),
        format!("\"{}-json\"", parsed.storage_index().to_base32())
    );
}

#[tokio::test]
async fn ranges_as_tahoe_reads_them() {
    let gw = gateway().await;
    let body = data::bytes(300_001, 3);
    let cap = put(&gw.url, "/uri", body.clone()).await.text();
    let size = body.len();
    let path = format!("/uri/{}", quote_all(&cap));
    type Case = (&'static str, u16, Option<(usize, usize)>);
    let cases: &[Case] = &[
        ("bytes=0-0", 206, Some((0, 0))),
        ("bytes=0-99", 206, Some((0, 99))),
        ("bytes=150000-", 206, Some((150_000, size - 1))),
        ("bytes=-10", 206, Some((size - 10, size - 1))),
        ("bytes=-999999999", 206, Some((0, size - 1))),
        ("bytes=299990-999999999", 206, Some((299_990, size - 1))),
        ("bytes=5-9,20-29", 206, Some((5, 9))), // several ranges: the first, as Tahoe
        ("bytes= 7-8", 206, Some((7, 8))),
        ("bytes=300000-300000", 206, Some((300_000, 300_000))),
        ("bytes=10-5", 200, None),          // last < first: header ignored
        ("items=0-5", 200, None),           // other units: ignored
        ("bytes=abc", 200, None),           // syntax error: ignored
        ("bytes=300001-", 200, None), // open range past the end: last < first, ignored (as Tahoe)
        ("bytes=300001-400000", 416, None), // first beyond the end
        (
            "bytes=99999999999999999999999-999999999999999999999999",
            416,
            None,
        ),
    ];
    for &(range, status, part) in cases {
        let r = ranged(&gw.url, "GET", &path, range).await;
        assert_eq!(
            r.status,
            status,
            "{range}: {}",
            String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
        );
        match (status, part) {
            (206, Some((a, b))) => {
                assert!(r.body == body[a..=b], "{range}");
                assert_eq!(
                    r.header("content-range").unwrap(),
                    format!("bytes {a}-{b}/{size}"),
                    "{range}"
                );
                assert_eq!(r.header("content-length").unwrap(), (b - a + 1).to_string());
            }
            (200, _) => assert!(r.body == body, "{range}"),
            (416, _) => {
                assert_eq!(
                    r.header("content-range").unwrap(),
                    format!("bytes */{size}")
                );
                assert!(r.text().contains("First beyond end of file"));
            }
            _ => unreachable!(),
        }
    }
}

#[tokio::test]
async fn tahoe_error_codes() {
    let gw = gateway().await;
    let sdmf =
        "URI:SSK:vdk4ul6k3rtzgd6kbybqoqjvxm:j5ph3tgnvx3kwgrmeosv3wj4dgjg7txfnqj36xagjw5smo6tw4va";
    let dir =
        "URI:DIR2:vdk4ul6k3rtzgd6kbybqoqjvxm:j5ph3tgnvx3kwgrmeosv3wj4dgjg7txfnqj36xagjw5smo6tw4va";
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("PUT", "/uri?format=SDMF".into(), 200, "URI:SSK:"),
        ("PUT", "/uri?format=mdmf".into(), 200, "URI:MDMF:"),
        ("PUT", "/uri?mutable=true".into(), 200, "URI:SSK:"),
        (
            "PUT",
            "/uri?format=chk&mutable=true".into(),
            200,
            "URI:CHK:",
        ),
        (
            "PUT",
            "/uri?format=xyz".into(),
            400,
            "Unknown format: xyz, I know CHK, SDMF, MDMF",
        ),
        (
            "PUT",
            "/uri?mutable=maybe".into(),
            400,
            "invalid boolean argument",
        ),
        (
            "PUT",
            "/uri?t=mkdir".into(),
            501,
            "directories are not supported yet",
        ),
        ("PUT", "/uri?t=nonsense".into(), 400, "/uri accepts only"),
        ("POST", "/uri?t=mkdir".into(), 501, "directories"),
        (
            "GET",
            "/uri/URI:NOPE:abc".into(),
            400,
            "is not a valid file- or directory- cap",
        ),
        (
            "GET",
            "/uri/URI%3ACHK%3Aabc".into(),
            400,
            "is not a valid file- or directory- cap",
        ),
        (
            "GET",
            "/uri/not-a-cap-at-all".into(),
            400,
            "is not a valid file- or directory- cap",
        ),
        ("GET", format!("/uri/{sdmf}"), 410, "UnrecoverableFileError"),
        (
            "GET",
            format!("/uri/{dir}"),
            501,
            "directories are not supported yet",
        ),
        (
            "GET",
            "/uri/URI:LIT:nbswy3dpeb3w64tmmq/child".into(),
            400,
            "Files have no children named 'child'",
        ),
        (
            "PUT",
            "/uri/URI:LIT:nbswy3dpeb3w64tmmq".into(),
            400,
            "immutable",
        ),
        ("GET", "/nowhere".into(), 404, "No such resource"),
        ("DELETE", "/".into(), 405, "not supported"),
        ("GET", "/?t=bogus".into(), 400, "Unknown t=bogus"),
    ];
    for (method, path, status, text) in cases {
        let r = request(&gw.url, method, &path, &[], b"0123456789".repeat(10)).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert!(
            r.text().contains(text),
            "{method} {path}: {:?} lacks {text:?}",
            r.text()
        );
        if status >= 400 {
            assert!(
                r.header("content-type").unwrap().starts_with("text/plain"),
                "{method} {path}"
            );
            assert_eq!(
                r.text().trim_end().lines().count(),
                1,
                "one-line error body: {:?}",
                r.text()
            );
        }
    }
    // A verify cap has no key.
    let cap = put(&gw.url, "/uri", data::bytes(1000, 9)).await.text();
    let vcap = match cairn_core::cap::Cap::parse(&cap).unwrap() {
        cairn_core::cap::Cap::ChkRead(c) => c.verifier().to_string(),
        _ => unreachable!(),
    };
    let r = get(&gw.url, &format!("/uri/{vcap}")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // A CHK cap whose shares are nowhere: the backend's 410 with its message, before any byte.
    let other = cap.replace(":3:10:1000", ":3:10:1001");
    let r = get(&gw.url, &format!("/uri/{other}")).await;
    assert_eq!(r.status, 410, "{}", r.text());
    assert!(r.text().contains("NoSharesError"));
}

#[tokio::test]
async fn a_download_that_fails_midway_is_cut_short() {
    let gw = gateway().await;
    let body = data::bytes(200_000, 4);
    let cap = put(&gw.url, "/uri", body).await.text();
    *gw.backend.fail_after.lock().unwrap() = Some(50_000);
    // Headers (200, full Content-Length) are out when the failure comes: the body ends early
    // and the client sees an incomplete message rather than wrong bytes.
    let r = try_request(&gw.url, "GET", &format!("/uri/{cap}"), &[], vec![]).await;
    assert!(
        r.is_err(),
        "expected a truncated body, got {:?}",
        r.map(|r| (r.status, r.body.len()))
    );
    // Failing before the first byte is an ordinary error answer.
    *gw.backend.fail_after.lock().unwrap() = Some(0);
    let r = get(&gw.url, &format!("/uri/{cap}")).await;
    assert_eq!(r.status, 410);
    assert!(r.text().contains("NotEnoughSharesError"));
}

/// Send a request with a chunked body over a raw socket (the test client always sends a
/// Content-Length) and return (status, body).
async fn chunked_put(url: &str, body: &[u8], chunk: usize) -> (u16, String) {
    chunked_put_to(url, "/uri", body, chunk).await
}

/// The same to another path; write errors after the answer came early are ignored.
async fn chunked_put_to(url: &str, path: &str, body: &[u8], chunk: usize) -> (u16, String) {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("PUT {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    if path != "/uri" {
        let mut wire = Vec::new();
        for c in body.chunks(chunk) {
            wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let _ = s.write_all(&wire).await;
        let mut resp = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            resp.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&resp).into_owned();
        let status: u16 = text[9..12].parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        return (status, body);
    }
    for c in body.chunks(chunk) {
        s.write_all(format!("{:x}\r\n", c.len()).as_bytes())
            .await
            .unwrap();
        s.write_all(c).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status: u16 = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn chunked_uploads_without_a_length() {
    let gw = gateway().await;
    for (size, seed) in [
        (30usize, 1u64),
        (70_000, 2),
        ((1 << 20) + 12_345, 3),
        (3 << 20, 4),
    ] {
        let body = data::bytes(size, seed);
        let (status, cap) = chunked_put(&gw.url, &body, 65_536).await;
        assert_eq!(status, 200, "{cap}");
        let back = get(&gw.url, &format!("/uri/{cap}")).await;
        assert!(back.body == body, "size {size}");
    }
    let ups = gw.backend.uploads.lock().unwrap().clone();
    assert_eq!(ups.len(), 3, "the 30-byte file is LIT");
    assert!(ups[0].in_memory);
    // Unknown length past the memory limit: spooled to disk, key left to the uploader.
    assert!(!ups[1].in_memory && !ups[1].key_given);
    assert!(!ups[2].in_memory && !ups[2].key_given);
}

#[tokio::test]
async fn spooled_files_leave_nothing_behind() {
    let gw = gateway().await;
    let body = data::bytes(2 << 20, 5);
    let r = put(&gw.url, "/uri", body).await;
    assert_eq!(r.status, 200);
    let tmp = gw._dir.path().join("client").join("tmp");
    assert!(tmp.is_dir());
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "anonymous temp files only"
    );
    // A body shorter than its Content-Length (client gives up): no answer is possible, but
    // the gateway stays up and keeps nothing.
    let addr = gw.url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PUT /uri HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&vec![7u8; 1_500_000]).await.unwrap();
    drop(s);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(get(&gw.url, "/?t=json").await.status, 200);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------------------
// mutable files

/// Tahoe's `_file_json_metadata` text for a mutable file cap with no parent.
fn mutable_json(
    format: &str,
    size: Option<u64>,
    ro: &str,
    rw: Option<&str>,
    verify: &str,
) -> String {
    let mut s =
        format!("[\n \"filenode\",\n {{\n  \"mutable\": true,\n  \"format\": \"{format}\",\n");
    if let Some(n) = size {
        s.push_str(&format!("  \"size\": {n},\n"));
    }
    s.push_str(&format!("  \"ro_uri\": \"{ro}\",\n"));
    if let Some(w) = rw {
        s.push_str(&format!("  \"rw_uri\": \"{w}\",\n"));
    }
    s.push_str(&format!("  \"verify_uri\": \"{verify}\"\n }}\n]\n"));
    s
}

fn ro_and_verify(writecap: &str) -> (String, String) {
    match Cap::parse(writecap).unwrap() {
        Cap::SdmfWrite(c) => (c.readonly().to_string(), c.verifier().to_string()),
        Cap::MdmfWrite(c) => (c.readonly().to_string(), c.verifier().to_string()),
        other => panic!("not a mutable write cap: {other:?}"),
    }
}

#[tokio::test]
async fn mutable_create_read_overwrite_and_json() {
    let gw = gateway().await;
    for (query, format, prefix) in [
        ("format=SDMF", MutableFormat::Sdmf, "URI:SSK:"),
        ("format=sdmf", MutableFormat::Sdmf, "URI:SSK:"),
        ("mutable=true", MutableFormat::Sdmf, "URI:SSK:"),
        ("mutable=true&format=MDMF", MutableFormat::Mdmf, "URI:MDMF:"),
        ("format=mDmF", MutableFormat::Mdmf, "URI:MDMF:"),
    ] {
        gw.backend.mutable_calls.lock().unwrap().clear();
        // Small bodies too: mutable files are never LIT.
        let body = data::bytes(300, 1);
        let r = put(&gw.url, &format!("/uri?{query}"), body.clone()).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert_eq!(r.header("content-type").unwrap(), "text/plain");
        let w = r.text();
        assert!(w.starts_with(prefix), "{query}: {w}");
        assert_eq!(
            r.header("x-cairn-round-trips").unwrap(),
            "4 (servermap=0, read=0, write=4)"
        );
        assert_eq!(
            *gw.backend.mutable_calls.lock().unwrap(),
            vec![MutableCall::Create {
                format,
                len: 300,
                key_given: false
            }]
        );
        let (ro, verify) = ro_and_verify(&w);
        let fmt = if prefix == "URI:SSK:" { "SDMF" } else { "MDMF" };

        // Read through the write cap and the read cap, raw and quoted.
        for cap in [w.clone(), ro.clone(), quote_all(&w), quote_all(&ro)] {
            let r = get(&gw.url, &format!("/uri/{cap}")).await;
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.body, body);
            assert_eq!(r.header("content-length").unwrap(), "300");
            assert_eq!(r.header("accept-ranges").unwrap(), "bytes");
            assert!(r.header("etag").is_none(), "no ETag for mutable files");
            // The open only: the reads stream after the headers.
            assert_eq!(r.header("x-cairn-round-trips").unwrap(), "8 (servermap=8)");
        }
        let r = request(&gw.url, "HEAD", &format!("/uri/{w}"), &[], vec![]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length").unwrap(), "300");
        assert!(r.body.is_empty());
        let r = get(&gw.url, &format!("/file/{ro}/notes.txt")).await;
        assert_eq!(r.body, body);

        // t=json in Tahoe's shape and key order; the read cap has no rw_uri.
        let r = get(&gw.url, &format!("/uri/{w}?t=json")).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.text(),
            mutable_json(fmt, Some(300), &ro, Some(&w), &verify)
        );
        let r = get(&gw.url, &format!("/uri/{ro}?t=json")).await;
        assert_eq!(r.text(), mutable_json(fmt, Some(300), &ro, None, &verify));
        // t=uri: the cap itself; t=readonly-uri: the read cap.
        assert_eq!(get(&gw.url, &format!("/uri/{w}?t=uri")).await.text(), w);
        assert_eq!(
            get(&gw.url, &format!("/uri/{w}?t=readonly-uri"))
                .await
                .text(),
            ro
        );
        assert_eq!(get(&gw.url, &format!("/uri/{ro}?t=uri")).await.text(), ro);

        // Overwrite: the answer is the write cap; shorter and longer contents.
        for len in [10usize, 0, 5000] {
            let new = data::bytes(len, len as u64 + 7);
            let r = put(&gw.url, &format!("/uri/{}", quote_all(&w)), new.clone()).await;
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.text(), w);
            assert_eq!(
                r.header("x-cairn-round-trips").unwrap(),
                "12 (servermap=8, read=0, write=4)"
            );
            let r = get(&gw.url, &format!("/uri/{ro}")).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.body, new);
            assert_eq!(r.header("content-length").unwrap(), len.to_string());
        }
        assert_eq!(
            gw.backend.mutable_calls.lock().unwrap()[1..],
            [
                MutableCall::Overwrite { len: 10 },
                MutableCall::Overwrite { len: 0 },
                MutableCall::Overwrite { len: 5000 }
            ]
        );
    }

    // An empty mutable file.
    let w = put(&gw.url, "/uri?format=MDMF", vec![]).await.text();
    assert!(w.starts_with("URI:MDMF:"), "{w}");
    let r = get(&gw.url, &format!("/uri/{w}")).await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length").unwrap(), "0");
    // Tahoe: `bytes=0-` on an empty file has last < first and is ignored; `0-5` is beyond.
    let r = ranged(&gw.url, "GET", &format!("/uri/{w}"), "bytes=0-").await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = ranged(&gw.url, "GET", &format!("/uri/{w}"), "bytes=0-5").await;
    assert_eq!(r.status, 416);
    let (ro, verify) = ro_and_verify(&w);
    assert_eq!(
        get(&gw.url, &format!("/uri/{w}?t=json")).await.text(),
        mutable_json("MDMF", Some(0), &ro, Some(&w), &verify)
    );
}

#[tokio::test]
async fn mutable_ranges_as_for_immutable_files() {
    let gw = gateway().await;
    let body = data::bytes(100_000, 3);
    let w = put(&gw.url, "/uri?format=MDMF", body.clone()).await.text();
    let (ro, _) = ro_and_verify(&w);
    type Span = Option<(usize, usize)>;
    let cases: Vec<(&str, u16, Span)> = vec![
        ("bytes=0-9", 206, Some((0, 9))),
        ("bytes=99990-", 206, Some((99_990, 99_999))),
        ("bytes=-5", 206, Some((99_995, 99_999))),
        ("bytes=50000-200000", 206, Some((50_000, 99_999))),
        ("bytes=10-20,30-40", 206, Some((10, 20))),
        ("bytes=20-10", 200, None),
        ("items=0-9", 200, None),
        ("bytes=100000-", 200, None),
        ("bytes=100000-100001", 416, None),
    ];
    for (range, status, span) in cases {
        let r = ranged(&gw.url, "GET", &format!("/uri/{ro}"), range).await;
        assert_eq!(r.status, status, "{range}: {}", r.text());
        match (status, span) {
            (206, Some((a, b))) => {
                assert_eq!(r.body, &body[a..=b], "{range}");
                assert_eq!(
                    r.header("content-range").unwrap(),
                    format!("bytes {a}-{b}/100000")
                );
            }
            (200, _) => assert_eq!(r.body, body, "{range}"),
            (416, _) => {
                assert_eq!(r.header("content-range").unwrap(), "bytes */100000");
                assert!(r.text().contains("First beyond end of file"));
            }
            _ => unreachable!(),
        }
    }
    // A read that fails after the first bytes is cut short, as for CHK.
    *gw.backend.fail_after.lock().unwrap() = Some(20_000);
    let r = try_request(&gw.url, "GET", &format!("/uri/{w}"), &[], vec![]).await;
    assert!(
        r.is_err(),
        "a mutable read that fails midway must not look complete"
    );
}

#[tokio::test]
async fn mutable_offset_updates_as_tahoe_does() {
    let gw = gateway().await;
    let sdmf = put(&gw.url, "/uri?format=SDMF", b"0123456789".to_vec())
        .await
        .text();
    let mdmf = put(&gw.url, "/uri?format=MDMF", b"0123456789".to_vec())
        .await
        .text();
    let read = |cap: String| {
        let url = gw.url.clone();
        async move { get(&url, &format!("/uri/{cap}")).await.text() }
    };
    for w in [&sdmf, &mdmf] {
        let r = put(&gw.url, &format!("/uri/{w}?offset=3"), b"abc".to_vec()).await;
        assert_eq!((r.status, r.text()), (200, w.clone()));
        // The modify's own requests only: the gateway does not open the file first.
        assert_eq!(
            r.header("x-cairn-round-trips").unwrap(),
            "14 (servermap=8, read=2, write=4)"
        );
        assert_eq!(read(w.clone()).await, "012abc6789");
        // At the end: an append.
        let r = put(&gw.url, &format!("/uri/{w}?offset=10"), b"XY".to_vec()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(read(w.clone()).await, "012abc6789XY");
        // Across the end.
        let r = put(&gw.url, &format!("/uri/{w}?offset=11"), b"###".to_vec()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(read(w.clone()).await, "012abc6789X###");
        let r = put(&gw.url, &format!("/uri/{w}?offset=0"), vec![]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(read(w.clone()).await, "012abc6789X###");
    }
    // Beyond the end: SDMF appends at the end (Tahoe's old[:offset] + data, no gap) ...
    gw.backend.mutable_calls.lock().unwrap().clear();
    let r = put(&gw.url, &format!("/uri/{sdmf}?offset=100"), b"!".to_vec()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(read(sdmf.clone()).await, "012abc6789X###!");
    assert_eq!(
        *gw.backend.mutable_calls.lock().unwrap(),
        vec![MutableCall::Modify {
            offset: 100,
            len: 1
        }]
    );
    // ... MDMF refuses (Tahoe asserts offset <= size).
    let r = put(&gw.url, &format!("/uri/{mdmf}?offset=100"), b"!".to_vec()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("beyond the end of the file (14 bytes)"),
        "{}",
        r.text()
    );
    assert_eq!(read(mdmf.clone()).await, "012abc6789X###");

    let (sdmf_ro, _) = ro_and_verify(&sdmf);
    let chk = put(&gw.url, "/uri", data::bytes(1000, 5)).await.text();
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!("/uri/{sdmf}?offset=-1"),
            400,
            "PUT to a mutable file: Invalid offset",
        ),
        (
            format!("/uri/{sdmf}?offset=abc"),
            400,
            "invalid offset= argument",
        ),
        (
            format!("/uri/{sdmf_ro}"),
            400,
            "PUT to a mutable file: replace or update requested with read-only cap",
        ),
        (
            format!("/uri/{sdmf_ro}?offset=1"),
            400,
            "PUT to a mutable file: replace or update requested with read-only cap",
        ),
        (
            format!("/uri/{chk}?offset=1"),
            400,
            "PUT to a file: append operation invoked on an immutable cap",
        ),
        (
            format!("/uri/{chk}"),
            400,
            "immutable file cannot be replaced",
        ),
        (
            format!("/uri/{sdmf}?replace=false"),
            409,
            "There was already a child by that name, and you asked me to not replace it.",
        ),
        (
            format!("/uri/{sdmf}?replace=maybe"),
            400,
            "invalid replace= argument: 'maybe'",
        ),
        (
            format!("/uri/{sdmf}?t=bogus"),
            400,
            "PUT to a file: bad t=bogus",
        ),
        (format!("/uri/{sdmf}?t=uri"), 400, "needs a directory entry"),
    ];
    for (path, status, text) in cases {
        let r = put(&gw.url, &path, b"zzz".to_vec()).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(
            r.text().contains(text),
            "{path}: {:?} lacks {text:?}",
            r.text()
        );
        assert_eq!(r.text().trim_end().lines().count(), 1, "{}", r.text());
    }
    // replace=only-files and replace=true replace, as in Tahoe.
    for q in ["replace=only-files", "replace=true"] {
        let r = put(&gw.url, &format!("/uri/{sdmf}?{q}"), b"new".to_vec()).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text());
    }
    assert_eq!(read(sdmf).await, "new");
}

#[tokio::test]
async fn mutable_errors_are_tahoes() {
    let gw = gateway_opts(None, Some(1000)).await;
    let w = put(&gw.url, "/uri?format=SDMF", b"first".to_vec())
        .await
        .text();

    // Collisions and too few servers: Tahoe's exception names, 500 (Tahoe's web layer has
    // no status of its own for them).
    *gw.backend.fail_next_write.lock().unwrap() =
        Some(|| MutableError::UncoordinatedWrite("shares changed under us".into()));
    let r = put(&gw.url, &format!("/uri/{w}"), b"second".to_vec()).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().starts_with("UncoordinatedWriteError: "),
        "{}",
        r.text()
    );
    assert!(r.text().contains("shares changed under us"));
    *gw.backend.fail_next_write.lock().unwrap() = Some(|| MutableError::NotEnoughServers {
        what: "publishing",
        tried: 2,
        needed: 7,
        got: 2,
        reasons: vec!["server a: connection refused".into()],
    });
    let r = put(&gw.url, "/uri?format=MDMF", b"x".to_vec()).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().starts_with("NotEnoughServersError: "),
        "{}",
        r.text()
    );
    assert!(r.text().contains("connection refused"));
    assert_eq!(r.text().trim_end().lines().count(), 1);
    assert_eq!(get(&gw.url, &format!("/uri/{w}")).await.text(), "first");

    // A mutable file nobody stored: 410 with Tahoe's UnrecoverableFileError text, for GET,
    // HEAD, ranges and overwrites; t=json describes it without a size (as Tahoe does).
    let ghost = SdmfWriteCap::new([9; 16], [8; 32]);
    let ghost_w = ghost.to_string();
    let ghost_ro = ghost.readonly().to_string();
    for (method, path) in [
        ("GET", format!("/uri/{ghost_w}")),
        ("GET", format!("/uri/{ghost_ro}")),
        ("HEAD", format!("/uri/{ghost_ro}")),
        ("PUT", format!("/uri/{ghost_w}")),
        ("PUT", format!("/uri/{ghost_w}?offset=0")),
    ] {
        let r = request(
            &gw.url,
            method,
            &path,
            &[("range", "bytes=0-1")],
            b"x".to_vec(),
        )
        .await;
        assert_eq!(r.status, 410, "{method} {path}: {}", r.text());
        if method != "HEAD" {
            assert!(
                r.text().starts_with("UnrecoverableFileError: the directory (or mutable file) could not be retrieved"),
                "{}",
                r.text()
            );
        }
    }
    let r = get(&gw.url, &format!("/uri/{ghost_w}?t=json")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        mutable_json(
            "SDMF",
            None,
            &ghost_ro,
            Some(&ghost_w),
            &ghost.verifier().to_string()
        )
    );

    // Bodies beyond the gateway's limit: 413, nothing written.
    let calls = gw.backend.mutable_calls.lock().unwrap().len();
    let r = put(&gw.url, "/uri?format=SDMF", vec![1; 1001]).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().starts_with("FileTooLargeError: "), "{}", r.text());
    let r = put(&gw.url, &format!("/uri/{w}"), vec![1; 1001]).await;
    assert_eq!(r.status, 413, "{}", r.text());
    let (status, _) = chunked_put_to(&gw.url, "/uri?format=MDMF", &[2; 3000], 500).await;
    assert_eq!(status, 413);
    assert_eq!(gw.backend.mutable_calls.lock().unwrap().len(), calls);
    // At the limit it is fine, with or without a length.
    assert_eq!(
        put(&gw.url, "/uri?format=SDMF", vec![1; 1000]).await.status,
        200
    );
    let (status, cap) = chunked_put_to(&gw.url, "/uri?format=MDMF", &[2; 900], 100).await;
    assert_eq!(status, 200, "{cap}");
    assert_eq!(
        get(&gw.url, &format!("/uri/{}", cap.trim())).await.body,
        vec![2; 900]
    );

    // Verify caps cannot be read; unknown formats are refused.
    let r = get(&gw.url, &format!("/uri/{}", ghost.verifier())).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = put(&gw.url, "/uri?format=XDMF", b"x".to_vec()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "Unknown format: XDMF, I know CHK, SDMF, MDMF\n");
    // Form uploads are not there yet.
    let r = request(&gw.url, "POST", &format!("/uri/{w}?t=upload"), &[], vec![]).await;
    assert_eq!(r.status, 501, "{}", r.text());
}

#[tokio::test]
async fn mutable_private_key_gives_the_keys_caps() {
    let gw = gateway().await;
    // vectors/mutable_caps.json: the caps Tahoe 1.20 derived from vectors/mutable_keys/key1.pem.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../vectors/");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{root}mutable_caps.json")).unwrap())
            .unwrap();
    let case = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key_file"] == "mutable_keys/key1.pem" && c["format"] == "sdmf")
        .unwrap();
    let pem = std::fs::read_to_string(format!("{root}mutable_keys/key1.pem")).unwrap();
    let key = SigningKey::from_pem(&pem).unwrap();
    // Tahoe's CLI: urlsafe_b64encode(PKCS#8 DER), with its '=' padding, '-' and '_'.
    let b64 = urlsafe_b64(key.pkcs8_der());
    let r = put(
        &gw.url,
        &format!("/uri?mutable=true&private-key={b64}"),
        b"keyed".to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), case["writecap"].as_str().unwrap());
    assert_eq!(
        gw.backend.mutable_calls.lock().unwrap()[0],
        MutableCall::Create {
            format: MutableFormat::Sdmf,
            len: 5,
            key_given: true
        }
    );
    for bad in ["AAAA", "not*base64*at*all!", "QUJD"] {
        let r = put(
            &gw.url,
            &format!("/uri?mutable=true&private-key={bad}"),
            b"x".to_vec(),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(
            r.text().contains("invalid private-key= argument"),
            "{}",
            r.text()
        );
    }
}

fn urlsafe_b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A backend with only the immutable calls: mutable requests get the trait's 501.
struct ImmutableOnly;

impl Backend for ImmutableOnly {
    fn upload(&self, _: UploadSource) -> BoxFuture<'_, Result<String, WebError>> {
        Box::pin(async { Err(WebError::new(axum_status(500), "unused")) })
    }
    fn download<'a>(
        &'a self,
        _: &'a ChkReadCap,
        _: Range<u64>,
        _: &'a mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<(), WebError>> {
        Box::pin(async { Err(WebError::new(axum_status(500), "unused")) })
    }
}

#[tokio::test]
async fn a_backend_without_mutable_support_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("client");
    cairn_node::create_client(
        &node,
        &cairn_node::CreateClientOptions {
            webport: Some("tcp:0:interface=127.0.0.1".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let config = ClientConfig::load(&node).unwrap();
    let secrets = Secrets::load_or_create(&node).unwrap();
    let (grid, _) = cairn_client::Grid::new(vec![], Default::default());
    let state = Arc::new(GatewayState::with_backend(
        &config,
        grid,
        secrets,
        Arc::new(ImmutableOnly),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let _h = gateway::serve(listener, state);
    let w = SdmfWriteCap::new([1; 16], [2; 32]).to_string();
    for (method, path) in [
        ("PUT", "/uri?format=SDMF".to_string()),
        ("PUT", format!("/uri/{w}")),
        ("GET", format!("/uri/{w}")),
    ] {
        let r = request(&url, method, &path, &[], b"x".to_vec()).await;
        assert_eq!(r.status, 501, "{method} {path}");
        assert_eq!(r.text(), "mutable files: grid driver not wired\n");
    }
    // No counts to show.
    let r = get(&url, "/statistics?t=json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "{\n \"counters\": {},\n \"stats\": {}\n}\n");
}

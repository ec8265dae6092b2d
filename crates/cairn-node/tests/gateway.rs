//! The web layer of the gateway over HTTP, with the grid replaced by an in-memory backend
//! that encodes with cairn-core (so caps are real CHK caps): spooling and the convergent key
//! computed on the way, LIT, caps raw and percent-encoded, `t=json`, ranges, HEAD, ETags,
//! and Tahoe's error codes.

mod common;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use base64_free::b64decode;
use cairn_core::cap::ChkReadCap;
use cairn_core::chk::{convergent_key, encode_file, EncodingParams};
use cairn_node::config::{ClientConfig, Secrets};
use cairn_node::gateway::{
    self, Backend, BoxFuture, GatewayHandle, GatewayState, UploadSource, WebError,
};
use common::{data, get, put, quote_all, request, try_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Tiny base64 decoder for the vector file (no extra dependency).
mod base64_free {
    pub fn b64decode(s: &str) -> Vec<u8> {
        let val = |c: u8| -> u32 {
            match c {
                b'A'..=b'Z' => (c - b'A') as u32,
                b'a'..=b'z' => (c - b'a' + 26) as u32,
                b'0'..=b'9' => (c - b'0' + 52) as u32,
                b'+' => 62,
                b'/' => 63,
                _ => panic!("bad base64"),
            }
        };
        let s: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
        let mut out = Vec::new();
        for chunk in s.chunks(4) {
            let mut acc = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                acc |= val(c) << (18 - 6 * i);
            }
            let n = chunk.len() * 6 / 8;
            for i in 0..n {
                out.push((acc >> (16 - 8 * i)) as u8);
            }
        }
        out
    }
}

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
    let backend = Arc::new(MemoryBackend {
        params: config.params,
        convergence: secrets.convergence.clone(),
        files: Mutex::default(),
        uploads: Mutex::default(),
        fail_after: Mutex::default(),
    });
    let (grid, _) = cairn_client::Grid::new(vec![], Default::default());
    let state = Arc::new(GatewayState::with_backend(
        &config,
        grid,
        secrets,
        backend.clone(),
    ));
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
        let seed = b64decode(c["seed_b64"].as_str().unwrap());
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
        let body = data(size, 7);
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
    let r = request(
        &gw.url,
        "GET",
        "/uri/URI:LIT:nbswy3dpeb3w64tmmq",
        &[("range", "bytes=6-")],
        vec![],
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
    let body = data(5000, 1);
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
    assert_eq!(
        get(&gw.url, &format!("/file/{cap}/report.pdf"))
            .await
            .header("content-type")
            .unwrap(),
        "application/pdf"
    );
    assert_eq!(
        get(&gw.url, &format!("/uri/{cap}?filename=a.png"))
            .await
            .header("content-type")
            .unwrap(),
        "image/png"
    );
    assert_eq!(
        get(&gw.url, &format!("/uri/{cap}"))
            .await
            .header("content-type")
            .unwrap(),
        "text/plain"
    );
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
    let body = data(100_000, 2);
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
    let h = request(
        &gw.url,
        "HEAD",
        &format!("/uri/{cap}"),
        &[("range", "bytes=10-19")],
        vec![],
    )
    .await;
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
    let body = data(300_001, 3);
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
        let r = request(&gw.url, "GET", &path, &[("range", range)], vec![]).await;
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
        (
            "PUT",
            "/uri?format=SDMF".into(),
            501,
            "mutable files are not supported yet",
        ),
        (
            "PUT",
            "/uri?format=mdmf".into(),
            501,
            "mutable files are not supported yet",
        ),
        (
            "PUT",
            "/uri?mutable=true".into(),
            501,
            "mutable files are not supported yet",
        ),
        ("PUT", "/uri?format=chk&mutable=true".into(), 200, "URI:"),
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
        (
            "GET",
            format!("/uri/{sdmf}"),
            501,
            "mutable files are not supported yet",
        ),
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
    let cap = put(&gw.url, "/uri", data(1000, 9)).await.text();
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
    let body = data(200_000, 4);
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
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("PUT /uri HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
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
        let body = data(size, seed);
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
    let body = data(2 << 20, 5);
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

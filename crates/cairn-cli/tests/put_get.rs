//! `cairn put` / `cairn get` against a fake gateway: the HTTP requests they send (Tahoe's
//! web API as `tahoe put`/`tahoe get` use it), finding the node, output, errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use cairn_test_support::cli::*;
use cairn_test_support::data;

const CHK_CAP: &str = "URI:CHK:bq3pqpf5ut6ipxixzdjn2yfh5u:2gkwzh4kuloz5ryydwvzyeeoosmlj6aaqc3un3nkvkcoxkehdpfq:3:10:100000";
const MDMF_WRITECAP: &str =
    "URI:MDMF:u5r6zqqpnvhz34dplwhxs3a5nq:2xpbbt6jqnzhfdyslixxwgkfbiwxdmrdmgbj5svggrk2pyqfovsa";

/// A gateway that answers every PUT with `cap` (201) and every GET with `content`.
fn gateway(cap: &'static str, content: Vec<u8>) -> FakeGateway {
    FakeGateway::start(move |req| match req.method.as_str() {
        "PUT" => Reply::status(201, "Created", cap),
        "GET" => Reply::ok(content.clone()),
        _ => Reply::status(405, "Method Not Allowed", "no"),
    })
}

#[test]
fn put_sends_tahoes_request_and_prints_the_cap_last() {
    let gw = gateway(CHK_CAP, vec![]);
    let tmp = tempfile::tempdir().unwrap();
    let data = data::bytes(300_001, 1);
    let file = tmp.path().join("in.bin");
    std::fs::write(&file, &data).unwrap();
    let o = run(
        &["put", "--node-url", &gw.url(), file.to_str().unwrap()],
        None,
    );
    assert_ok(&o);
    assert_eq!(stdout(&o).lines().last(), Some(CHK_CAP));
    assert!(
        o.stderr.is_empty(),
        "quiet when stderr is not a terminal: {}",
        stderr(&o)
    );
    let reqs = gw.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.target, "/uri");
    assert_eq!(r.header("content-length"), Some("300001"));
    assert_eq!(
        r.header("accept"),
        Some("text/plain, application/octet-stream")
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        r.header("transfer-encoding").is_none(),
        "a body with Content-Length, not chunked"
    );
    assert!(r.body == data, "the body is the file");
}

#[test]
fn node_options_go_before_or_after_the_arguments() {
    let gw = gateway(CHK_CAP, b"hello".to_vec());
    let tmp = tempfile::tempdir().unwrap();
    let node = gw.node_dir(tmp.path());
    let file = tmp.path().join("f");
    std::fs::write(&file, b"some content").unwrap();
    let (f, n, u) = (file.to_str().unwrap(), node.to_str().unwrap(), gw.url());
    let forms: Vec<Vec<&str>> = vec![
        vec!["-d", n, "put", f],
        vec!["--node-directory", n, "put", f],
        vec!["put", f, "-d", n],
        vec!["put", "--node-directory", n, f],
        vec!["--node-url", &u, "put", f],
        vec!["put", f, "-u", &u],
        vec!["put", f, "--node-url", &u],
        // --node-url wins over a node directory, as in tahoe.
        vec!["-d", "/nonexistent", "put", f, "-u", &u],
    ];
    for args in &forms {
        let o = run(args, None);
        assert_ok(&o);
        assert_eq!(stdout(&o).trim(), CHK_CAP, "{args:?}");
    }
    for args in [
        vec!["-d", n, "get", CHK_CAP],
        vec!["get", CHK_CAP, "-d", n],
        vec!["get", CHK_CAP, "-", "-u", &u],
    ] {
        let o = run(&args, None);
        assert_ok(&o);
        assert_eq!(o.stdout, b"hello", "{args:?}");
    }
    assert_eq!(gw.requests().len(), forms.len() + 3);
}

#[test]
fn node_url_is_found_as_tahoe_finds_it() {
    let gw = gateway(CHK_CAP, vec![]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    // Default: ~/.tahoe/node.url
    let home = tmp.path().join("home");
    let dot_tahoe = home.join(".tahoe");
    std::fs::create_dir_all(&dot_tahoe).unwrap();
    std::fs::write(dot_tahoe.join("node.url"), format!("{}/\n", gw.url())).unwrap();
    let o = run_cmd(
        cairn()
            .env("HOME", &home)
            .args(["put", file.to_str().unwrap()]),
        None,
    );
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), CHK_CAP);

    // A node.url with a path prefix and no trailing slash.
    let prefixed = tmp.path().join("prefixed");
    std::fs::create_dir_all(&prefixed).unwrap();
    std::fs::write(prefixed.join("node.url"), format!("{}/gw", gw.url())).unwrap();
    let o = run(
        &[
            "put",
            "-d",
            prefixed.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_ok(&o);
    assert_eq!(gw.requests().last().unwrap().target, "/gw/uri");

    // No node.url: the error names the file and the ways out.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = run(
        &["put", "-d", empty.to_str().unwrap(), file.to_str().unwrap()],
        None,
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{}", empty.join("node.url").display())),
        "{err}"
    );
    assert!(err.contains("--node-url"), "{err}");

    for bad in [
        "127.0.0.1:3456",
        "https://127.0.0.1:3456",
        "http://127.0.0.1:0",
    ] {
        let o = run(&["put", "-u", bad, file.to_str().unwrap()], None);
        assert!(!o.status.success(), "{bad}");
        assert!(stderr(&o).contains("--node-url"), "{bad}: {}", stderr(&o));
    }
}

#[test]
fn put_query_for_mutable_formats_and_write_caps() {
    let gw = gateway("URI:SSK:aaaa:bbbb", vec![]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, b"mutable content").unwrap();
    let (f, u) = (file.to_str().unwrap(), gw.url());
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["put", "--mutable", f], "/uri?mutable=true".into()),
        (vec!["put", "-m", f], "/uri?mutable=true".into()),
        (
            vec!["put", "--format", "mdmf", f],
            "/uri?format=MDMF".into(),
        ),
        (
            vec!["put", "--mutable", "--format=SDMF", f],
            "/uri?mutable=true&format=SDMF".into(),
        ),
        (vec!["put", "--format", "chk", f], "/uri?format=CHK".into()),
        (
            vec!["put", f, MDMF_WRITECAP],
            format!("/uri/{}", MDMF_WRITECAP.replace(':', "%3A")),
        ),
        (
            vec!["put", "-", MDMF_WRITECAP, "--mutable"],
            format!("/uri/{}?mutable=true", MDMF_WRITECAP.replace(':', "%3A")),
        ),
    ];
    for (args, want) in &cases {
        let mut args = args.clone();
        args.extend(["-u", &u]);
        let o = run(&args, Some(b"mutable content"));
        assert_ok(&o);
        assert_eq!(stdout(&o).trim(), "URI:SSK:aaaa:bbbb");
        let r = gw.requests().pop().unwrap();
        assert_eq!(&r.target, want, "{args:?}");
        assert_eq!(r.body, b"mutable content");
    }
    // Not a mutable write cap: refused before anything is sent.
    let before = gw.requests().len();
    for args in [
        vec!["put", f, "tahoe:foo", "-u", &u],
        vec!["put", f, "--format", "xyz", "-u", &u],
        vec!["put", f, "--private-key-path", f, "-u", &u],
    ] {
        let o = run(&args, None);
        assert!(!o.status.success(), "{args:?}");
    }
    assert_eq!(gw.requests().len(), before);
}

#[test]
fn put_private_key_goes_into_the_query_as_tahoe_sends_it() {
    let gw = gateway("URI:SSK:aaaa:bbbb", vec![]);
    let tmp = tempfile::tempdir().unwrap();
    // A real RSA-2048 key (PKCS#8 PEM), from the repository's vectors if there is one.
    let key = find_pem_key();
    let file = tmp.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let o = run(
        &[
            "put",
            "--mutable",
            "--private-key-path",
            key.to_str().unwrap(),
            file.to_str().unwrap(),
            "-u",
            &gw.url(),
        ],
        None,
    );
    assert_ok(&o);
    let r = gw.requests().pop().unwrap();
    let q = r
        .target
        .strip_prefix("/uri?mutable=true&private-key=")
        .unwrap_or_else(|| panic!("{}", r.target));
    use base64::Engine;
    let der = base64::engine::general_purpose::URL_SAFE
        .decode(q)
        .expect("URL-safe base64");
    assert_eq!(der[0], 0x30, "DER SEQUENCE");
    assert!(der.len() > 1000, "an RSA-2048 PKCS#8 key");
}

fn find_pem_key() -> std::path::PathBuf {
    let vectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors");
    let mut stack = vec![vectors];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pem")
                && std::fs::read_to_string(&p).is_ok_and(|t| t.contains("PRIVATE KEY"))
            {
                return p;
            }
        }
    }
    panic!("no PEM private key under vectors/");
}

#[test]
fn put_from_stdin_sends_content_length() {
    let gw = gateway(CHK_CAP, vec![]);
    let data = data::bytes(1_000_003, 2);
    for args in [
        vec!["put", "-u", &gw.url()],
        vec!["put", "-", "-u", &gw.url()],
    ] {
        let o = run(&args, Some(&data));
        assert_ok(&o);
        assert_eq!(stdout(&o).lines().last(), Some(CHK_CAP));
        let r = gw.requests().pop().unwrap();
        assert_eq!(r.header("content-length"), Some("1000003"));
        assert!(r.body == data);
    }
    // Empty stdin is an empty file.
    let o = run(&["put", "-u", &gw.url()], Some(b""));
    assert_ok(&o);
    let r = gw.requests().pop().unwrap();
    assert_eq!(r.header("content-length"), Some("0"));
}

#[test]
fn json_output() {
    let content = data::bytes(70_000, 3);
    let gw = gateway(CHK_CAP, content.clone());
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, &content).unwrap();
    let o = run(
        &["put", "--json", file.to_str().unwrap(), "-u", &gw.url()],
        None,
    );
    assert_ok(&o);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["cap"], CHK_CAP);
    assert_eq!(j["size"], 70_000);
    assert!(j["seconds"].as_f64().unwrap() >= 0.0);
    assert!(j["mib_per_s"].as_f64().unwrap() >= 0.0);

    // get --json to a file: JSON on stdout.
    let out_file = tmp.path().join("out");
    let o = run(
        &[
            "get",
            "--json",
            CHK_CAP,
            out_file.to_str().unwrap(),
            "-u",
            &gw.url(),
        ],
        None,
    );
    assert_ok(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["cap"], CHK_CAP);
    assert_eq!(j["size"], 70_000);
    assert_eq!(std::fs::read(&out_file).unwrap(), content);
    // get --json to stdout: the content on stdout, JSON on stderr.
    let o = run(&["get", "--json", CHK_CAP, "-u", &gw.url()], None);
    assert_ok(&o);
    assert!(o.stdout == content);
    let j: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(j["size"], 70_000);
}

#[test]
fn get_sends_the_cap_percent_encoded_and_writes_the_file() {
    let content = data::bytes(2_500_000, 4);
    let gw = gateway(CHK_CAP, content.clone());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.bin");
    let o = run(
        &["get", CHK_CAP, out.to_str().unwrap(), "-u", &gw.url()],
        None,
    );
    assert_ok(&o);
    assert!(o.stdout.is_empty(), "the content goes to the file only");
    assert!(
        o.stderr.is_empty(),
        "quiet when stderr is not a terminal: {}",
        stderr(&o)
    );
    assert!(std::fs::read(&out).unwrap() == content);
    let r = gw.requests().pop().unwrap();
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, format!("/uri/{}", CHK_CAP.replace(':', "%3A")));
    assert_eq!(r.header("content-length"), Some("0"));
    // Only the output file: no temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("out.bin")]);
    // Overwrites an existing file.
    std::fs::write(&out, b"old").unwrap();
    assert_ok(&run(
        &["get", CHK_CAP, out.to_str().unwrap(), "-u", &gw.url()],
        None,
    ));
    assert!(std::fs::read(&out).unwrap() == content);
    // A path below a directory cap is escaped and appended, as tahoe does.
    let o = run(
        &["get", "URI:DIR2:aa:bb/sub dir/f.txt", "-u", &gw.url()],
        None,
    );
    assert_ok(&o);
    assert_eq!(
        gw.requests().pop().unwrap().target,
        "/uri/URI%3ADIR2%3Aaa%3Abb/sub%20dir/f.txt"
    );
    // Not a cap: refused before anything is sent.
    let before = gw.requests().len();
    let o = run(&["get", "tahoe:foo", "-u", &gw.url()], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a capability"), "{}", stderr(&o));
    assert_eq!(gw.requests().len(), before);
}

#[test]
fn gateway_errors_are_reported_as_tahoe_does() {
    let gw = FakeGateway::start(|req| match req.method.as_str() {
        "PUT" => Reply::status(
            500,
            "Internal Server Error",
            "UploadUnhappinessError: shares could be placed on only 2 server(s)",
        ),
        _ => Reply::status(410, "Gone", "NoSharesError: no shares could be found."),
    });
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, b"data").unwrap();
    let o = run(&["put", file.to_str().unwrap(), "-u", &gw.url()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o).trim(),
        "Error: 500 Internal Server Error\nUploadUnhappinessError: shares could be placed on only 2 server(s)"
    );
    let out = tmp.path().join("out");
    let o = run(
        &["get", CHK_CAP, out.to_str().unwrap(), "-u", &gw.url()],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "Error during GET: 410 Gone\nNoSharesError: no shares could be found."
    );
    assert!(!out.exists(), "no output file on error");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "nothing but the input"
    );
}

#[test]
fn interrupted_download_leaves_no_file() {
    let gw = FakeGateway::start(|_| Reply {
        status: 200,
        reason: "OK",
        body: data::bytes(500_000, 5),
        content_length: Some(1_000_000),
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run(
        &["get", CHK_CAP, out.to_str().unwrap(), "-u", &gw.url()],
        None,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the temporary file is removed"
    );
}

#[test]
fn unreachable_gateway() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let o = run(&["get", CHK_CAP, "-u", &url], None);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("Error trying to connect to {url}/uri/")),
        "{}",
        stderr(&o)
    );
}

// ---- a stand-in for a node's gateway that records every request -----------------------

/// A request as the fake gateway received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target as sent (path and query, still percent-encoded).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake gateway answers.
pub struct Reply {
    pub status: u16,
    pub reason: &'static str,
    pub body: Vec<u8>,
    /// Announce this length instead of the body's (to cut a download short).
    pub content_length: Option<usize>,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            reason: "OK",
            body: body.into(),
            content_length: None,
        }
    }
    pub fn status(status: u16, reason: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            reason,
            body: body.into(),
            content_length: None,
        }
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

pub struct FakeGateway {
    pub port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeGateway {
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (reqs, handler) = (reqs.clone(), handler.clone());
                std::thread::spawn(move || serve(conn, &reqs, &*handler));
            }
        });
        FakeGateway { port, requests }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// A node directory whose node.url points here (as Tahoe writes it: trailing slash, newline).
    pub fn node_dir(&self, parent: &Path) -> std::path::PathBuf {
        let d = parent.join("node");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("node.url"), format!("{}/\n", self.url())).unwrap();
        d
    }
}

fn serve(conn: TcpStream, reqs: &Mutex<Vec<Recorded>>, handler: &Handler) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let rec = Recorded {
        method,
        target,
        headers,
        body,
    };
    let reply = handler(&rec);
    reqs.lock().unwrap().push(rec);
    let mut w = conn;
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.reason,
        reply.content_length.unwrap_or(reply.body.len())
    );
    let _ = w.write_all(head.as_bytes());
    let _ = w.write_all(&reply.body);
    let _ = w.flush();
    let _ = w.shutdown(std::net::Shutdown::Both);
}

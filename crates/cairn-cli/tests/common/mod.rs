//! Helpers of the CLI tests: running the `cairn` binary, and a tiny HTTP server standing in
//! for a node's gateway that records every request it gets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

pub fn cairn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    // No node directory from the environment of whoever runs the tests.
    c.env("HOME", "/nonexistent-cairn-test-home");
    c.stdin(Stdio::null());
    c
}

/// Run `cairn ARGS` with `stdin` as its input.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    run_cmd(cairn().args(args), stdin)
}

pub fn run_cmd(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting cairn");
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    child.wait_with_output().expect("waiting for cairn")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails with the command's output when it did not exit 0.
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "cairn failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

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

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---- local grids (`cairn grid up`) ----------------------------------------------------

pub fn grid_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("grid.json")).unwrap()).unwrap()
}

pub fn pids(g: &serde_json::Value) -> Vec<u32> {
    g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["pid"].as_u64())
        .map(|p| p as u32)
        .collect()
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !matches!(
                s.rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next()),
                Some("Z" | "X")
            )
        })
        .unwrap_or(false)
}

/// Stops the grid whatever happens to the test.
pub struct Down<'a>(pub &'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = run(&["grid", "down", "--dir", self.0.to_str().unwrap()], None);
    }
}

pub fn up_detached(d: &str, servers: Option<&str>) -> std::process::Output {
    let mut args = vec!["grid", "up", "--dir", d, "--detach", "--timeout", "30"];
    if let Some(n) = servers {
        args.extend(["--servers", n]);
    }
    run(&args, None)
}

/// The port of a NURL `pb://…@tcp:HOST:PORT/…`.
pub fn nurl_port(nurl: &str) -> u16 {
    nurl.rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The port of a URL `http://HOST:PORT/`.
pub fn url_port(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

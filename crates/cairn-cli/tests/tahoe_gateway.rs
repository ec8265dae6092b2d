//! `cairn put` / `cairn get` against a REAL Tahoe-LAFS 1.20 client node's gateway (over
//! cairn storage servers): the CLI speaks Tahoe's web API as `tahoe put`/`tahoe get` do, and
//! the caps agree with `tahoe put` and with `cairn cap`.
//!
//! Needs a venv with tahoe-lafs 1.20 (`scripts/setup-tahoe-venv.sh`; found at $TAHOE_VENV,
//! `<repo>/.venv-tahoe` or /tmp/tahoe-venv). Without one the test says so and passes, unless
//! CAIRN_REQUIRE_TAHOE=1.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_test_support::cli::*;
use cairn_test_support::data;

const SERVERS: usize = 2;
/// 2-of-4, happy 2: two servers hold two shares each.
const NEEDED: u16 = 2;
const HAPPY: u16 = 2;
const TOTAL: u16 = 4;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn tahoe_venv() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TAHOE_VENV").map(PathBuf::from),
        Some(repo().join(".venv-tahoe")),
        Some("/tmp/tahoe-venv".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|v| v.join("bin/tahoe").exists() && v.join("bin/python").exists())
}

/// Processes stopped (SIGTERM to the group, SIGKILL after 5 s) when dropped.
struct Procs(Vec<Child>);

impl Procs {
    fn start(&mut self, cmd: &mut Command, log: &Path) {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("starting a node");
        self.0.push(child);
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &self.0 {
            // SAFETY: kill(2) on a process group we created.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for c in &mut self.0 {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out.split_once("\r\n\r\n")?.1.to_string())
}

fn must(cmd: &mut Command) -> String {
    let o = cmd.output().expect("running a command");
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn put_and_get_through_a_real_tahoe_gateway() {
    let Some(venv) = tahoe_venv() else {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_TAHOE").is_none(),
            "CAIRN_REQUIRE_TAHOE is set but no tahoe venv was found"
        );
        eprintln!(
            "SKIPPED: no tahoe-lafs venv (run scripts/setup-tahoe-venv.sh, or set TAHOE_VENV)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut procs = Procs(Vec::new());
    let cairn_bin = env!("CARGO_BIN_EXE_cairn");

    // cairn storage servers.
    let mut announcements = String::from("storage:\n");
    for i in 0..SERVERS {
        let dir = tmp.path().join(format!("storage{i}"));
        must(
            Command::new(cairn_bin)
                .args(["create-node", "--hostname", "127.0.0.1"])
                .arg(&dir),
        );
        announcements.push_str(&format!(
            "  {}\n",
            must(
                Command::new(cairn_bin)
                    .args(["storage", "announcement"])
                    .arg(&dir)
            )
            .trim()
        ));
        procs.start(
            Command::new(cairn_bin).arg("run").arg(&dir),
            &tmp.path().join(format!("storage{i}.log")),
        );
    }

    // A Tahoe client node with a static server list.
    let client = tmp.path().join("client");
    let web_port = free_port();
    must(
        Command::new(venv.join("bin/tahoe"))
            .args(["create-client", "-n", "client", "--webport"])
            .arg(format!("tcp:{web_port}:interface=127.0.0.1"))
            .args([
                "--shares-needed",
                &NEEDED.to_string(),
                "--shares-happy",
                &HAPPY.to_string(),
                "--shares-total",
                &TOTAL.to_string(),
            ])
            .arg(&client),
    );
    std::fs::write(client.join("private/servers.yaml"), &announcements).unwrap();
    procs.start(
        Command::new(venv.join("bin/python"))
            .arg(repo().join("tests/interop/tahoe_launcher.py"))
            .arg(&client),
        &tmp.path().join("client.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let status = http_get(web_port, "/?t=json");
        let connected = status
            .as_deref()
            .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
            .map(|j| {
                j["servers"].as_array().map_or(0, |s| {
                    s.iter()
                        .filter(|s| {
                            s["connection_status"]
                                .as_str()
                                .is_some_and(|c| c.to_ascii_lowercase().starts_with("connected"))
                        })
                        .count()
                })
            })
            .unwrap_or(0);
        if connected == SERVERS && client.join("node.url").exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Tahoe client did not connect to {SERVERS} servers: {status:?}; its log:\n{}",
            std::fs::read_to_string(tmp.path().join("client.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let d = client.to_str().unwrap();

    // An immutable multi-segment file: the cap is what `cairn cap` computes offline with the
    // client's convergence secret, and what `tahoe put` prints.
    let data = data::bytes((1 << 20) + 12_345, 11);
    let file = tmp.path().join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let f = file.to_str().unwrap();
    let o = run(&["put", "-d", d, f], None);
    assert_ok(&o);
    let cap = stdout(&o).lines().last().unwrap().to_string();
    assert!(cap.starts_with("URI:CHK:"), "{cap}");
    let secret = cairn_core::base32::decode_tahoe_lenient(
        std::fs::read_to_string(client.join("private/convergence"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let offline = offline_cap_of_file(cairn_bin, &b64, &file);
    assert_eq!(offline, cap, "the gateway's cap equals cairn's offline cap");
    let tahoe_cap = must(Command::new(venv.join("bin/tahoe")).args(["-d", d, "put", f]));
    assert_eq!(tahoe_cap.trim(), cap, "tahoe put gives the same cap");

    // Read back: to a file and to stdout; the node found by --node-url too.
    let out = tmp.path().join("out.bin");
    assert_ok(&run(&["get", &cap, out.to_str().unwrap(), "-d", d], None));
    assert!(std::fs::read(&out).unwrap() == data, "file round trip");
    let url = std::fs::read_to_string(client.join("node.url")).unwrap();
    let o = run(&["--node-url", url.trim(), "get", &cap], None);
    assert_ok(&o);
    assert!(o.stdout == data, "stdout round trip");

    // Stdin gives the same cap; --json reports it.
    let o = run(&["put", "--json", "-d", d], Some(&data));
    assert_ok(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["cap"], cap.as_str());
    assert_eq!(j["size"], data.len() as u64);

    // A small file is a LIT cap (no server involved) and reads back.
    let o = run(&["put", "-d", d], Some(b"tiny content"));
    assert_ok(&o);
    let lit = stdout(&o).trim().to_string();
    assert!(lit.starts_with("URI:LIT:"), "{lit}");
    assert_eq!(run(&["get", &lit, "-d", d], None).stdout, b"tiny content");

    // Mutable: --mutable prints a write cap; putting to the write cap replaces the contents.
    let o = run(&["put", "--mutable", "-d", d], Some(b"version one"));
    assert_ok(&o);
    let sdmf = stdout(&o).trim().to_string();
    assert!(sdmf.starts_with("URI:SSK:"), "{sdmf}");
    assert_eq!(run(&["get", &sdmf, "-d", d], None).stdout, b"version one");
    let o = run(&["put", "-", &sdmf, "-d", d], Some(b"version two, longer"));
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), sdmf);
    assert_eq!(
        run(&["get", &sdmf, "-d", d], None).stdout,
        b"version two, longer"
    );
    let o = run(&["put", "--format", "MDMF", "-d", d], Some(b"an mdmf file"));
    assert_ok(&o);
    let mdmf = stdout(&o).trim().to_string();
    assert!(mdmf.starts_with("URI:MDMF:"), "{mdmf}");
    assert_eq!(run(&["get", &mdmf, "-d", d], None).stdout, b"an mdmf file");

    // A cap nobody stored: Tahoe's error, status and body, exit 1, no output file.
    let missing = offline_cap_of(cairn_bin, &b64, &data::bytes(1000, 99), tmp.path());
    let out2 = tmp.path().join("missing.bin");
    let o = run(&["get", &missing, out2.to_str().unwrap(), "-d", d], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with("Error during GET: 410 Gone\n"), "{err}");
    assert!(
        err.contains("NoSharesError") || err.contains("NotEnoughSharesError"),
        "{err}"
    );
    assert!(!out2.exists());
}

fn offline_cap_of(cairn_bin: &str, b64: &str, data: &[u8], dir: &Path) -> String {
    let f = dir.join("never-uploaded");
    std::fs::write(&f, data).unwrap();
    offline_cap_of_file(cairn_bin, b64, &f)
}

/// What `cairn cap` computes offline for file `f` with convergence secret `b64`.
fn offline_cap_of_file(cairn_bin: &str, b64: &str, f: &Path) -> String {
    must(
        Command::new(cairn_bin)
            .args([
                "cap",
                "--needed",
                &NEEDED.to_string(),
                "--total",
                &TOTAL.to_string(),
                "--convergence-secret-b64",
                b64,
            ])
            .arg(f),
    )
    .trim()
    .to_string()
}

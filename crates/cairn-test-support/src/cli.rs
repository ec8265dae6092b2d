//! Running the `cairn` binary from the CLI's tests (its output, failing with it), and
//! reading what `cairn grid up` leaves: `grid.json`, node processes, ports in NURLs and URLs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `cairn` binary Cargo built for the running test: it sits in the target directory,
/// one level above the test executable in `deps/` (an integration test of cairn-cli
/// gets it built first).
pub fn cairn_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().expect("in deps/");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("target directory")
    } else {
        dir
    };
    let bin = dir.join(format!("cairn{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not built (run the tests of cairn-cli)",
        bin.display()
    );
    bin
}

/// `cairn`, with no node directory from the environment of whoever runs the tests.
pub fn cairn() -> Command {
    let mut c = Command::new(cairn_exe());
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

/// A grid directory (`g`) in a fresh temporary directory; the grid in it is brought down
/// when this is dropped, whatever happens to the test.
pub struct TempGrid {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl TempGrid {
    pub fn new() -> TempGrid {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("g");
        TempGrid { tmp, dir }
    }

    /// The grid directory, as `--dir` takes it.
    pub fn d(&self) -> &str {
        self.dir.to_str().unwrap()
    }
}

impl Default for TempGrid {
    fn default() -> TempGrid {
        TempGrid::new()
    }
}

impl Drop for TempGrid {
    fn drop(&mut self) {
        let _down = Down(&self.dir);
    }
}

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

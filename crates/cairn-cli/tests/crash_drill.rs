//! An operator's crash drill on a local grid of real `cairn run` processes: immutable uploads
//! and SDMF creates and overwrites through the gateway while one storage server after another
//! is killed with SIGKILL and started again. After each restart every storage server's audit
//! must be clean (the lease database agrees with the share files); at the end every
//! acknowledged file reads back byte for byte. Then, with the load still running and a
//! server dead (the client reconnecting to it), SIGTERM must stop the client and a storage
//! server within 5 seconds.
//!
//! The seed is printed; `CAIRN_DRILL_SEED=<n>` replays the same schedule of sizes, kills and
//! pauses (the timing of the processes themselves is not replayable).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_test_support::cli::*;
use cairn_test_support::data;
use rand::{Rng, SeedableRng};

/// 8 servers: with one down, the 7 left still meet the grid's happiness (7).
const SERVERS: usize = 8;
const KILLS: usize = 12;
/// SIGTERM to exit, as `cairn run` promises.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

/// Pauses the load: workers take a slot before each request and give it back after;
/// `pause` waits until no request is in flight.
#[derive(Default)]
struct Load {
    paused: AtomicBool,
    stop: AtomicBool,
    in_flight: AtomicUsize,
}

impl Load {
    /// Take a slot; `false` once stopped.
    fn enter(&self) -> bool {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            if !self.paused.load(Ordering::SeqCst) {
                return true;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    fn pause(&self, seed: u64) {
        self.paused.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "seed {seed}: a request did not finish within 120 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

/// What the workers were told succeeded.
#[derive(Default)]
struct Acked {
    /// Immutable caps and their contents.
    immutable: Vec<(String, Vec<u8>)>,
    /// Each SDMF write cap and the contents it may hold: the last acknowledged one, plus any
    /// later overwrite that failed (it may have landed).
    mutable: BTreeMap<String, Vec<Vec<u8>>>,
    failures: usize,
}

/// Storage servers started by this test (after a kill): killed when the test ends.
struct Restarted(Vec<Child>);

impl Drop for Restarted {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Server {
    dir: PathBuf,
    log: PathBuf,
    port: u16,
    pid: u32,
}

fn kill(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; pid names a node of this test.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

fn wait_gone(pid: u32, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if !alive(pid) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn start_server(s: &Server) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.log)
        .unwrap();
    let err = log.try_clone().unwrap();
    cairn()
        .arg("run")
        .arg(&s.dir)
        .stdout(log)
        .stderr(err)
        .spawn()
        .expect("starting cairn run")
}

fn wait_listening(port: u16, seed: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: restarted server on port {port} does not listen"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn audit_all(servers: &[Server], seed: u64, after: &str) {
    for s in servers {
        let o = run(&["storage", "audit", s.dir.to_str().unwrap()], None);
        assert!(
            o.status.success(),
            "seed {seed}: audit of {} {after} is not clean:\n{}{}",
            s.dir.display(),
            stdout(&o),
            stderr(&o)
        );
    }
}

fn worker_immutable(client: PathBuf, load: Arc<Load>, acked: Arc<Mutex<Acked>>, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x1111);
    let c = client.to_str().unwrap();
    while load.enter() {
        let data = data::bytes(rng.gen_range(1..96 * 1024), rng.gen());
        let o = run(&["put", "-d", c, "-"], Some(&data));
        let stopped = load.stop.load(Ordering::SeqCst);
        load.leave();
        let mut a = acked.lock().unwrap();
        match stdout(&o).lines().last() {
            Some(cap) if o.status.success() && !stopped => {
                a.immutable.push((cap.to_string(), data))
            }
            _ => a.failures += 1,
        }
    }
}

fn worker_mutable(client: PathBuf, load: Arc<Load>, acked: Arc<Mutex<Acked>>, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x2222);
    let c = client.to_str().unwrap();
    let mut caps: Vec<String> = Vec::new();
    while load.enter() {
        let data = data::bytes(rng.gen_range(1..4000), rng.gen());
        let target = (caps.len() >= 3 || (!caps.is_empty() && rng.gen_bool(0.7)))
            .then(|| caps[rng.gen_range(0..caps.len())].clone());
        let o = match &target {
            Some(cap) => run(&["put", "-d", c, "-", cap], Some(&data)),
            None => run(&["put", "--mutable", "-d", c, "-"], Some(&data)),
        };
        load.leave();
        let ok = o.status.success();
        let mut a = acked.lock().unwrap();
        match target {
            Some(cap) => {
                let possible = a.mutable.get_mut(&cap).expect("known cap");
                if ok {
                    *possible = vec![data];
                } else {
                    possible.push(data);
                    a.failures += 1;
                }
            }
            None => match stdout(&o).lines().last() {
                Some(cap) if ok => {
                    caps.push(cap.to_string());
                    a.mutable.insert(cap.to_string(), vec![data]);
                }
                _ => a.failures += 1,
            },
        }
    }
}

#[test]
fn storage_servers_killed_under_load_lose_nothing_and_audit_clean() {
    let seed: u64 = std::env::var("CAIRN_DRILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("crash drill seed: {seed} (replay with CAIRN_DRILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let t0 = Instant::now();

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("g");
    let d = dir.to_str().unwrap();
    let _down = Down(&dir);
    assert_ok(&up_detached(d, Some(&SERVERS.to_string())));
    let g = grid_json(&dir);
    let nodes = g["nodes"].as_array().unwrap();
    let mut servers: Vec<Server> = nodes[..SERVERS]
        .iter()
        .map(|n| Server {
            dir: PathBuf::from(n["dir"].as_str().unwrap()),
            log: PathBuf::from(n["log"].as_str().unwrap()),
            port: nurl_port(n["nurl"].as_str().unwrap()),
            pid: n["pid"].as_u64().unwrap() as u32,
        })
        .collect();
    let client_pid = nodes[SERVERS]["pid"].as_u64().unwrap() as u32;
    let client = dir.join("client");
    let mut restarted = Restarted(Vec::new());

    let load = Arc::new(Load::default());
    let acked = Arc::new(Mutex::new(Acked::default()));
    let workers: Vec<_> = [
        worker_immutable as fn(PathBuf, Arc<Load>, Arc<Mutex<Acked>>, u64),
        worker_mutable,
    ]
    .into_iter()
    .map(|w| {
        let (c, l, a) = (client.clone(), load.clone(), acked.clone());
        std::thread::spawn(move || w(c, l, a, seed))
    })
    .collect();

    for _ in 0..KILLS {
        load.resume();
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..1200)));
        let victim = rng.gen_range(0..SERVERS);
        kill(servers[victim].pid, libc::SIGKILL);
        assert!(
            wait_gone(servers[victim].pid, Duration::from_secs(10)).is_some(),
            "seed {seed}: SIGKILL did not stop storage server {victim}"
        );
        restarted.0.iter_mut().for_each(|c| {
            let _ = c.try_wait();
        });
        // The load goes on while it is down: the client reconnects, uploads go elsewhere.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..400)));
        load.pause(seed);
        let child = start_server(&servers[victim]);
        servers[victim].pid = child.id();
        restarted.0.push(child);
        wait_listening(servers[victim].port, seed);
        // Right after the restart (recovery runs before the server listens), with no
        // request in flight: every server's database agrees with its files.
        audit_all(&servers, seed, "right after a restart");
    }

    // Nothing lost: every acknowledged upload and the latest (or a later, unacknowledged)
    // version of every mutable file read back byte for byte.
    load.pause(seed);
    let c = client.to_str().unwrap();
    let (immutable, mutable, failures) = {
        let a = acked.lock().unwrap();
        (a.immutable.clone(), a.mutable.clone(), a.failures)
    };
    for (cap, data) in &immutable {
        let o = run(&["get", "-d", c, cap], None);
        assert!(
            o.status.success() && &o.stdout == data,
            "seed {seed}: acknowledged upload {cap} lost or changed: {}",
            stderr(&o)
        );
    }
    for (cap, possible) in &mutable {
        let o = run(&["get", "-d", c, cap], None);
        assert!(
            o.status.success() && possible.contains(&o.stdout),
            "seed {seed}: mutable file {cap} holds none of its {} possible versions: {}",
            possible.len(),
            stderr(&o)
        );
    }
    println!(
        "{KILLS} kills: {} uploads and {} mutable files intact, {failures} requests failed during kills",
        immutable.len(),
        mutable.len()
    );
    assert!(
        !immutable.is_empty() && !mutable.is_empty(),
        "seed {seed}: the load made no progress"
    );

    // SIGTERM under load, with a dead server the client keeps reconnecting to.
    load.resume();
    let dead = rng.gen_range(0..SERVERS);
    kill(servers[dead].pid, libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(rng.gen_range(300..1000)));
    let live = (dead + 1) % SERVERS;
    kill(client_pid, libc::SIGTERM);
    kill(servers[live].pid, libc::SIGTERM);
    for (what, pid) in [
        ("client", client_pid),
        ("storage server", servers[live].pid),
    ] {
        let took = wait_gone(pid, EXIT_WITHIN);
        assert!(
            took.is_some(),
            "seed {seed}: the {what} (pid {pid}) still runs {} s after SIGTERM",
            EXIT_WITHIN.as_secs()
        );
        println!(
            "{what} exited {:.2} s after SIGTERM",
            took.unwrap_or_default().as_secs_f64()
        );
    }
    load.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    println!("crash drill: {:.1} s", t0.elapsed().as_secs_f64());
}

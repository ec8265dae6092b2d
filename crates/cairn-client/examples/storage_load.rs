//! Load generator for ONE storage server over Tahoe's HTTPS storage protocol ("Great Black
//! Swamp"), built on `cairn_client::gbs_client`; it drives a cairn storage server and a
//! Tahoe-LAFS 1.20 storage node alike. `bench/storage/run.sh` runs it; by hand:
//!
//! ```text
//! cargo run --release -p cairn-client --example storage_load -- --nurl NURL \
//!     [--clients 50] [--uploads 40] [--share-size 64KiB] [--chunk-size 16KiB] \
//!     [--write] [--read] [--seed N] [--threads 2] [--timeout 60]
//! ```
//!
//! `--clients` tasks, each its own `GbsClient` (its own pinned TLS connection), first check
//! the server with `GET /storage/v1/version` (untimed), then start together. `--write`: each
//! makes `--uploads` immutable uploads one after the other; an upload is one share (number
//! 0) of `--share-size` bytes under a fresh storage index: allocate (`POST
//! /storage/v1/immutable/:si`), then `PATCH`es of `--chunk-size` bytes until the server
//! answers 201 (complete). `--read`: each reads back the shares that `--write` with the
//! same `--seed`, `--clients`, `--uploads` and `--share-size` made, in `--chunk-size`
//! ranges, and compares every byte. With both, the reads start when every upload is done.
//! Storage indexes, secrets and data come from `--seed`, so a later run with `--read` alone
//! finds what an earlier `--write` stored.
//!
//! Nothing is retried (`RetryPolicy::none()`): every failed request is an error. Prints one
//! JSON object on stdout: per phase the operations, errors, bytes, wall time, operations/s,
//! MiB/s, latency per operation (p50, p90, p99, max, mean, ms; an upload's latency runs from
//! its allocate to its last PATCH's answer, a read's over all its ranges), HTTP requests and
//! this process's CPU time. Exit status 0 when there was no error, 1 otherwise, 2 for bad
//! arguments or a server that does not answer `version`.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_client::gbs_client::{ClientOptions, GbsClient, LeaseSecrets, RetryPolicy};
use cairn_core::ids::{ShareNum, StorageIndex};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::Barrier;

const MIB: f64 = (1 << 20) as f64;
/// Error messages kept for the report (the count is always exact).
const MAX_ERROR_SAMPLES: usize = 10;

struct Args {
    nurl: String,
    clients: usize,
    uploads: usize,
    share_size: usize,
    chunk_size: usize,
    write: bool,
    read: bool,
    seed: u64,
    threads: usize,
    timeout: Duration,
}

const USAGE: &str = "usage: storage_load --nurl NURL [--clients 50] [--uploads 40] \
[--share-size 64KiB] [--chunk-size 16KiB] [--write] [--read] [--seed N] [--threads 2] \
[--timeout SECS]   (neither --write nor --read: both)";

fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mul) = [
        ("kib", 1usize << 10),
        ("mib", 1 << 20),
        ("k", 1 << 10),
        ("m", 1 << 20),
    ]
    .iter()
    .find_map(|(suf, m)| lower.strip_suffix(suf).map(|n| (n.to_string(), *m)))
    .unwrap_or((lower.clone(), 1));
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("bad size {s:?}"))
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        nurl: String::new(),
        clients: 50,
        uploads: 40,
        share_size: 64 << 10,
        chunk_size: 16 << 10,
        write: false,
        read: false,
        seed: rand::random::<u32>() as u64,
        threads: 2,
        timeout: Duration::from_secs(60),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("bad number {v:?}"));
        match flag.as_str() {
            "--nurl" => a.nurl = val()?,
            "--clients" => a.clients = num(val()?)? as usize,
            "--uploads" => a.uploads = num(val()?)? as usize,
            "--share-size" => a.share_size = parse_size(&val()?)?,
            "--chunk-size" => a.chunk_size = parse_size(&val()?)?,
            "--seed" => a.seed = num(val()?)?,
            "--threads" => a.threads = num(val()?)? as usize,
            "--timeout" => a.timeout = Duration::from_secs(num(val()?)?),
            "--write" => a.write = true,
            "--read" => a.read = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.nurl.is_empty() {
        return Err(format!("--nurl is required\n{USAGE}"));
    }
    if a.clients == 0 || a.uploads == 0 || a.share_size == 0 || a.chunk_size == 0 || a.threads == 0
    {
        return Err(
            "--clients, --uploads, --share-size, --chunk-size, --threads must be > 0".into(),
        );
    }
    if a.share_size < 16 {
        return Err(
            "--share-size must be at least 16 bytes (the storage index is stamped in)".into(),
        );
    }
    if !a.write && !a.read {
        a.write = true;
        a.read = true;
    }
    Ok(a)
}

/// What one client stores, all derived from the seed and the client's number.
struct Plan {
    lease: LeaseSecrets,
    /// The share's bytes, except the first 16, which are each upload's storage index.
    base: Vec<u8>,
    sis: Vec<StorageIndex>,
}

impl Plan {
    fn new(seed: u64, client: usize, uploads: usize, share_size: usize) -> Plan {
        let mut rng =
            StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(client as u64));
        let lease = LeaseSecrets {
            renew: rng.gen(),
            cancel: rng.gen(),
        };
        let mut base = vec![0u8; share_size];
        rng.fill_bytes(&mut base);
        let sis = (0..uploads).map(|_| StorageIndex(rng.gen())).collect();
        Plan { lease, base, sis }
    }

    fn share(&self, i: usize) -> Bytes {
        let mut d = self.base.clone();
        d[..16].copy_from_slice(self.sis[i].as_bytes());
        Bytes::from(d)
    }
}

#[derive(Default)]
struct Phase {
    latencies: Vec<Duration>,
    errors: u64,
    error_samples: Vec<String>,
}

impl Phase {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < MAX_ERROR_SAMPLES {
            self.error_samples.push(what);
        }
    }
}

async fn upload_one(c: &GbsClient, plan: &Plan, i: usize, chunk: usize) -> Result<(), String> {
    let si = &plan.sis[i];
    let data = plan.share(i);
    let secret = cairn_client::gbs_client::new_upload_secret();
    let shares: BTreeSet<ShareNum> = [ShareNum(0)].into_iter().collect();
    let alloc = c
        .allocate_buckets(si, &plan.lease, &secret, &shares, data.len() as u64)
        .await
        .map_err(|e| format!("allocate: {e}"))?;
    if !alloc.allocated.contains(&ShareNum(0)) {
        return Err(format!("allocate: share 0 not allocated ({alloc:?})"));
    }
    let mut off = 0;
    while off < data.len() {
        let end = (off + chunk).min(data.len());
        let r = c
            .write_share_chunk(si, ShareNum(0), &secret, off as u64, data.slice(off..end))
            .await
            .map_err(|e| format!("PATCH {off}..{end}: {e}"))?;
        let last = end == data.len();
        if r.finished != last {
            return Err(format!(
                "PATCH {off}..{end}: finished={} after {} of {} bytes",
                r.finished,
                end,
                data.len()
            ));
        }
        off = end;
    }
    Ok(())
}

async fn read_one(c: &GbsClient, plan: &Plan, i: usize, chunk: usize) -> Result<(), String> {
    let si = &plan.sis[i];
    let want = plan.share(i);
    let mut off = 0;
    while off < want.len() {
        let got = c
            .read_immutable(si, ShareNum(0), off as u64, chunk as u64)
            .await
            .map_err(|e| format!("read {off}+{chunk}: {e}"))?;
        let end = (off + chunk).min(want.len());
        if got[..] != want[off..end] {
            return Err(format!(
                "read {off}..{end}: {} bytes differ from what was written",
                got.len()
            ));
        }
        off = end;
    }
    Ok(())
}

/// User + system CPU time of this process, in seconds (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // fields 14 and 15 of the whole line (utime, stime) are 11 and 12 after the ')'
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // nearest rank
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn report(phases: Vec<Phase>, a: &Args, wall: Duration, requests: u64, cpu: f64) -> (Value, u64) {
    let mut lat: Vec<Duration> = Vec::new();
    let mut errors = 0;
    let mut samples = Vec::new();
    for p in phases {
        lat.extend(p.latencies);
        errors += p.errors;
        samples.extend(p.error_samples);
    }
    samples.truncate(MAX_ERROR_SAMPLES);
    lat.sort();
    let ok = lat.len() as u64;
    let secs = wall.as_secs_f64();
    let bytes = ok * a.share_size as u64;
    let mean = if lat.is_empty() {
        f64::NAN
    } else {
        lat.iter().map(|d| d.as_secs_f64()).sum::<f64>() / lat.len() as f64 * 1000.0
    };
    let v = json!({
        "ops": ok + errors,
        "ok": ok,
        "errors": errors,
        "error_samples": samples,
        "bytes": bytes,
        "seconds": secs,
        "ops_per_s": ok as f64 / secs,
        "mib_per_s": bytes as f64 / MIB / secs,
        "latency_ms": {
            "p50": percentile(&lat, 50.0),
            "p90": percentile(&lat, 90.0),
            "p99": percentile(&lat, 99.0),
            "max": lat.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN),
            "mean": mean,
        },
        "http_requests": requests,
        "client_cpu_s": cpu,
    });
    (v, errors)
}

fn attempts(clients: &[GbsClient]) -> u64 {
    clients.iter().map(|c| c.stats().attempts).sum()
}

async fn run(a: Arc<Args>) -> Result<(Value, u64), String> {
    let opts = ClientOptions {
        request_timeout: a.timeout,
        retry: RetryPolicy::none(),
        max_idle_per_server: 2,
        ..Default::default()
    };
    let mut clients = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        clients.push(GbsClient::from_nurl_str(&a.nurl, opts.clone()).map_err(|e| e.to_string())?);
    }
    let plans: Vec<Arc<Plan>> = (0..a.clients)
        .map(|i| Arc::new(Plan::new(a.seed, i, a.uploads, a.share_size)))
        .collect();

    // Every client opens its connection and checks the server, untimed.
    let mut checks = Vec::new();
    for c in &clients {
        let c = c.clone();
        checks.push(tokio::spawn(async move { c.version().await }));
    }
    let mut server_version = Value::Null;
    for h in checks {
        let v = h
            .await
            .map_err(|e| format!("task: {e}"))?
            .map_err(|e| format!("version: {e}"))?;
        server_version = json!({
            "maximum_immutable_share_size": v.maximum_immutable_share_size,
            "available_space": v.available_space,
        });
    }

    let mut out = json!({
        "server": clients[0].server(),
        "clients": a.clients,
        "uploads_per_client": a.uploads,
        "share_size": a.share_size,
        "chunk_size": a.chunk_size,
        "seed": a.seed,
        "threads": a.threads,
        "version": server_version,
    });
    let mut total_errors = 0;
    let mut phases = Vec::new();
    if a.write {
        phases.push("write");
    }
    if a.read {
        phases.push("read");
    }
    for phase in phases {
        let before = attempts(&clients);
        let cpu0 = cpu_seconds();
        let barrier = Arc::new(Barrier::new(a.clients + 1));
        let mut tasks = Vec::new();
        for (c, plan) in clients.iter().zip(&plans) {
            let (c, plan, a, barrier) = (c.clone(), plan.clone(), a.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let mut p = Phase::default();
                barrier.wait().await;
                for i in 0..a.uploads {
                    let t = Instant::now();
                    let r = if phase == "write" {
                        upload_one(&c, &plan, i, a.chunk_size).await
                    } else {
                        read_one(&c, &plan, i, a.chunk_size).await
                    };
                    match r {
                        Ok(()) => p.latencies.push(t.elapsed()),
                        Err(e) => p.error(format!("{phase} {i}: {e}")),
                    }
                }
                p
            }));
        }
        barrier.wait().await;
        let start = Instant::now();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.map_err(|e| format!("task: {e}"))?);
        }
        let wall = start.elapsed();
        let (v, errors) = report(
            results,
            &a,
            wall,
            attempts(&clients) - before,
            cpu_seconds() - cpu0,
        );
        total_errors += errors;
        out[phase] = v;
    }
    let stats: Vec<_> = clients.iter().map(|c| c.stats()).collect();
    out["connections_opened"] = json!(stats.iter().map(|s| s.connections_opened).sum::<u64>());
    out["retries"] = json!(stats.iter().map(|s| s.retries).sum::<u64>());
    out["errors"] = json!(total_errors);
    Ok((out, total_errors))
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(a)) {
        Ok((v, errors)) => {
            println!("{v}");
            if errors == 0 {
                ExitCode::SUCCESS
            } else {
                eprintln!("storage_load: {errors} errors");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("storage_load: {e}");
            ExitCode::from(2)
        }
    }
}

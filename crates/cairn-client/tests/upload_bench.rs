//! Upload throughput through the whole stack (client, TLS, 10 in-process storage servers
//! writing to disk), for profiling. Ignored by default; run with
//! `cargo test --release -p cairn-client --test upload_bench -- --ignored --nocapture`
//! (`CAIRN_BENCH_MIB` sets the size, default 100).

use std::io::Write;
use std::time::Instant;

use cairn_client::upload::{upload_file, UploadConfig};
use cairn_core::chk::EncodingParams;
use cairn_test_support::data;
use cairn_test_support::grid::TestGrid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn upload_throughput() {
    let mib: u64 = std::env::var("CAIRN_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let tg = TestGrid::start(10).await;
    let grid = tg.client();
    grid.probe_all().await;
    let size = mib << 20;
    let mut f = tempfile::tempfile().unwrap();
    let chunk = data::bytes(1 << 20, 42);
    for i in 0..mib {
        let mut c = chunk.clone();
        c[..8].copy_from_slice(&i.to_le_bytes());
        f.write_all(&c).unwrap();
    }
    let cfg = UploadConfig::new(EncodingParams::default(), b"bench".to_vec());
    for (label, key) in [
        ("two passes (key computed)", None),
        ("one pass (key given)", Some([9u8; 16])),
    ] {
        let cpu0 = cpu_seconds();
        let t = Instant::now();
        let t0 = t;
        let last = std::sync::Mutex::new(None::<cairn_client::upload::Phase>);
        let progress: cairn_client::upload::ProgressFn =
            std::sync::Arc::new(move |p: cairn_client::upload::Progress| {
                let mut l = last.lock().unwrap();
                if *l != Some(p.phase)
                    || (p.phase == cairn_client::upload::Phase::Uploading && p.done == p.total)
                {
                    println!("  {:>6.3} s: {:?}", t0.elapsed().as_secs_f64(), p.phase);
                    *l = Some(p.phase);
                }
            });
        let r = upload_file(
            &grid,
            &cfg,
            f.try_clone().unwrap(),
            size,
            key,
            Some(progress),
        )
        .await
        .unwrap();
        let s = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        println!(
            "{label}: {mib} MiB in {s:.2} s = {:.1} MiB/s (process CPU {cpu:.2} s = {:.0} %); happiness {}, {} bytes sent, peak {} segments / {:.1} MiB buffered",
            mib as f64 / s,
            100.0 * cpu / s,
            r.happiness,
            r.bytes_sent,
            r.peak_segments_in_flight,
            r.peak_buffered_bytes as f64 / (1 << 20) as f64
        );
    }
}

/// User + system CPU time of this process (Linux), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

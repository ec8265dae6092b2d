//! Download throughput through the whole stack (TLS, HTTP, in-process cairn servers,
//! verification, decoding, decryption): `cargo test --release -p cairn-client --test
//! download_bench -- --ignored --nocapture`. `CAIRN_BENCH_MIB` sets the size (default 100).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts live heap bytes of the whole process (client and in-process servers), to show
/// that a download's memory does not grow with the file.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

use cairn_client::download::{download, DownloadOptions};
use cairn_core::chk::EncodingParams;
use cairn_test_support::data;
use cairn_test_support::grid::place;
use cairn_test_support::grid::TestGrid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn download_throughput() {
    let mib: u64 = std::env::var("CAIRN_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let size = mib << 20;
    let tg = TestGrid::start(10).await;
    let grid = tg.client();
    let data = data::bytes(size as usize, 1);
    let p = place(&grid, &EncodingParams::default(), b"bench", &data).await;
    drop(data);
    for round in 0..3 {
        let mut sink = tokio::io::sink();
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t = Instant::now();
        let r = download(
            &grid,
            &p.cap,
            0..size,
            &mut sink,
            &DownloadOptions::default(),
            None,
        )
        .await
        .unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(r.bytes, size);
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        println!(
            "round {round}: {mib} MiB in {secs:.3} s = {:.1} MiB/s ({} block reads, {} hash reads), \
             peak heap above baseline {:.1} MiB (client and servers)",
            mib as f64 / secs,
            r.stats.block_reads,
            r.stats.hash_reads,
            peak as f64 / (1 << 20) as f64
        );
    }
}

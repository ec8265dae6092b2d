//! CHK downloads from a grid of in-process cairn storage servers: round trips of many
//! sizes, ranged reads that fetch only their segments, a corrupt share, every server but
//! k down, a stalling server, and too few shares.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cairn_client::download::{
    download, DownloadError, DownloadOptions, DownloadReport, MachineError,
};
use cairn_client::Grid;
use cairn_core::chk::EncodingParams;
use cairn_core::client::download::ProblemKind;
use cairn_core::storage::container::immutable::IMMUTABLE_DATA_OFFSET;
use cairn_test_support::data;
use cairn_test_support::grid::TestGrid;
use cairn_test_support::grid::{place, Placed};
use cairn_test_support::proxy::{Mode, Proxy};
use cairn_test_support::storage_node::fast_options;

const SECRET: &[u8] = b"download tests convergence secret";

fn params(k: u16, n: u16, max_segment_size: u64) -> EncodingParams {
    EncodingParams {
        needed: k,
        happy: k,
        total: n,
        max_segment_size,
    }
}

async fn get(
    grid: &Grid,
    p: &Placed,
    range: std::ops::Range<u64>,
    opts: &DownloadOptions,
) -> (Vec<u8>, DownloadReport) {
    let mut out = Vec::new();
    let report = download(grid, &p.cap, range, &mut out, opts, None)
        .await
        .expect("download succeeds");
    assert_eq!(report.bytes, out.len() as u64);
    (out, report)
}

/// A client over `tg` in which the servers listed reach their server through a proxy.
fn grid_via(tg: &TestGrid, proxied: &[(usize, SocketAddr)]) -> Grid {
    let mut anns = tg.announcements.clone();
    for &(i, addr) in proxied {
        let n = &tg.servers[i];
        anns[i] = n.static_server_at(addr);
    }
    let (grid, skipped) = Grid::new(anns, fast_options());
    assert!(skipped.is_empty());
    grid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_of_many_sizes() {
    let tg = TestGrid::start(5).await;
    let grid = tg.client();
    let mib = 1u64 << 20;
    let cases: Vec<(EncodingParams, u64)> = vec![
        (EncodingParams::default(), 56),
        (EncodingParams::default(), 1000),
        (EncodingParams::default(), mib), // exactly one (default 1 MiB) segment
        (EncodingParams::default(), mib + 3), // one byte over a segment boundary (segsize = 1 MiB + 2)
        (EncodingParams::default(), 3 * mib + 12345),
        (params(2, 4, 128 * 1024), 128 * 1024 * 5 + 1),
        (params(1, 1, 4096), 40_000),
        (params(5, 8, 64 * 1024), 700_001),
    ];
    for (prm, size) in cases {
        let data = data::bytes(size as usize, size);
        let p = place(&grid, &prm, SECRET, &data).await;
        let (out, report) = get(&grid, &p, 0..size, &DownloadOptions::default()).await;
        assert!(out == data, "size {size}: downloaded bytes differ");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.switches, 0);
        assert_eq!(report.stats.segments_read, Some((0, p.num_segments - 1)));
        assert_eq!(
            report.stats.blocks_requested,
            p.num_segments * prm.needed as u64,
            "size {size}"
        );
        assert!(!report.servers_used.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_reads_fetch_only_the_segments_they_need() {
    let tg = TestGrid::start(4).await;
    let grid = tg.client();
    let prm = params(3, 4, 64 * 1024);
    let size = 10 * 65538 + 777;
    let data = data::bytes(size as usize, 99);
    let p = place(&grid, &prm, SECRET, &data).await;
    let seg = p.segment_size;
    assert_eq!(seg, 65538);
    for range in [
        0..1,
        size - 1..size,
        3 * seg + 5..3 * seg + 6,
        4 * seg - 1..4 * seg + 1,
        2 * seg..5 * seg,
        seg + 1..9 * seg - 1,
        0..size,
    ] {
        let (out, report) = get(&grid, &p, range.clone(), &DownloadOptions::default()).await;
        assert!(
            out == data[range.start as usize..range.end as usize],
            "{range:?}"
        );
        let (first, last) = (range.start / seg, (range.end - 1) / seg);
        assert_eq!(report.stats.segments_read, Some((first, last)), "{range:?}");
        assert_eq!(
            report.stats.blocks_requested,
            3 * (last - first + 1),
            "{range:?}"
        );
        // block bytes read: exactly those segments' blocks from 3 shares
        assert!(
            report.stats.bytes_requested < 3 * (last - first + 1) * p.block_size + 64 * 1024,
            "{range:?}"
        );
    }
    // an empty range touches nothing
    let mut out = Vec::new();
    let r = download(
        &grid,
        &p.cap,
        5..5,
        &mut out,
        &DownloadOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!((r.bytes, r.stats.list_requests, r.stats.reads), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_share_is_reported_and_the_others_are_used() {
    let tg = TestGrid::start(4).await;
    let prm = params(3, 4, 128 * 1024);
    let data = data::bytes(5 * 128 * 1024 + 10, 5);
    let p = place(&tg.client(), &prm, SECRET, &data).await;
    // the holder of share 3 is slow to answer, so shares 0, 1, 2 are chosen first
    let spare = p.holder(3);
    let proxy = Proxy::start(
        tg.servers[spare].addr,
        Mode::Delay(Duration::from_millis(400)),
    )
    .await;
    let grid = grid_via(&tg, &[(spare, proxy.addr)]);
    // flip a byte of segment 2's block in share 1, on disk
    let bad = p.holder(1);
    let files = tg.share_files(bad, &p.storage_index);
    let (shnum, path) = &files[0];
    assert_eq!(*shnum, 1);
    let mut bytes = std::fs::read(path).unwrap();
    let at = (IMMUTABLE_DATA_OFFSET + p.data_offset + 2 * p.block_size + 17) as usize;
    bytes[at] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();

    let (out, report) = get(&grid, &p, 0..data.len() as u64, &DownloadOptions::default()).await;
    assert!(out == data);
    let bad_name = grid.servers()[bad].name();
    let corrupt: Vec<_> = report
        .reports
        .iter()
        .filter(|r| r.kind == ProblemKind::Corrupt)
        .collect();
    assert_eq!(corrupt.len(), 1, "{:?}", report.problems);
    assert_eq!(corrupt[0].server, bad_name);
    assert_eq!(corrupt[0].shnum, Some(1));
    assert!(
        corrupt[0].reason.contains("segment 2"),
        "{}",
        corrupt[0].reason
    );
    assert!(
        report.problems[0].contains(&bad_name) && report.problems[0].contains("share 1"),
        "{:?}",
        report.problems
    );
    assert_eq!(report.switches, 1);
    assert!(report.servers_used.contains(&grid.servers()[spare].name()));
    // the grid's health record has it
    let h = grid.servers()[bad].health();
    assert_eq!(h.corrupt_shares, 1);
    assert!(h.score < 0);
    assert!(
        h.last_problem
            .as_ref()
            .is_some_and(|(_, why)| why.contains("share 1")),
        "{:?}",
        h.last_problem
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_but_k_down() {
    let mut tg = TestGrid::start(10).await;
    let grid = tg.client();
    let data = data::bytes(2 * 1024 * 1024 + 5, 10);
    let p = place(&grid, &EncodingParams::default(), SECRET, &data).await;
    let keep = [p.holder(2), p.holder(5), p.holder(9)];
    for i in 0..10 {
        if !keep.contains(&i) {
            tg.stop(i).await;
        }
    }
    let started = Instant::now();
    let (out, report) = get(&grid, &p, 0..data.len() as u64, &DownloadOptions::default()).await;
    assert!(out == data);
    let mut used = report.servers_used.clone();
    used.sort();
    let mut want: Vec<String> = keep.iter().map(|&i| grid.servers()[i].name()).collect();
    want.sort();
    assert_eq!(used, want);
    // the stopped servers' list queries may still be retrying when the download ends (they
    // are then abandoned); any problem reported is about one of them
    let kept: Vec<String> = keep.iter().map(|&i| grid.servers()[i].name()).collect();
    assert!(
        report
            .reports
            .iter()
            .all(|r| matches!(r.kind, ProblemKind::Failed(_)) && !kept.contains(&r.server)),
        "{:?}",
        report.problems
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_server_is_left_within_a_bounded_time() {
    let tg = TestGrid::start(4).await;
    let prm = params(3, 4, 256 * 1024);
    let data = data::bytes(8 * 256 * 1024 + 3, 7);
    let p = place(&tg.client(), &prm, SECRET, &data).await;
    // share 0's holder answers the share list and the small header reads, then stops
    // sending; share 3's holder is slow to answer, so it is the spare
    let staller = p.holder(0);
    let spare = p.holder(3);
    let stall = Proxy::start(tg.servers[staller].addr, Mode::StallAfter(24 * 1024)).await;
    let slow = Proxy::start(
        tg.servers[spare].addr,
        Mode::Delay(Duration::from_millis(400)),
    )
    .await;
    let grid = grid_via(&tg, &[(staller, stall.addr), (spare, slow.addr)]);
    let opts = DownloadOptions {
        stall_timeout: Duration::from_millis(1500),
        ..DownloadOptions::default()
    };
    let started = Instant::now();
    let mut out = Vec::new();
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        download(&grid, &p.cap, 0..data.len() as u64, &mut out, &opts, None),
    )
    .await
    .expect("the download does not hang")
    .expect("the download succeeds");
    let took = started.elapsed();
    eprintln!(
        "stall test: {took:?}, switches {}, problems {:?}",
        report.switches, report.problems
    );
    assert!(out == data);
    let name = grid.servers()[staller].name();
    let stalls: Vec<_> = report
        .reports
        .iter()
        .filter(|r| r.kind == ProblemKind::Stall)
        .collect();
    assert!(
        stalls.iter().any(|r| r.server == name),
        "{:?}",
        report.problems
    );
    assert!(!report.servers_used.contains(&name) || report.switches >= 1);
    assert!(grid.servers()[staller].health().stalls >= 1);
    // one stall timeout plus the transfer; generous for a loaded machine
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_than_k_shares_is_a_clear_error() {
    let mut tg = TestGrid::start(5).await;
    let grid = tg.client();
    let prm = params(3, 5, 128 * 1024);
    let data = data::bytes(300_000, 3);
    let p = place(&grid, &prm, SECRET, &data).await;
    for sh in [0, 2, 4] {
        tg.stop(p.holder(sh)).await;
    }
    let mut out = Vec::new();
    let e = download(
        &grid,
        &p.cap,
        0..data.len() as u64,
        &mut out,
        &DownloadOptions::default(),
        None,
    )
    .await
    .expect_err("only 2 of 3 needed shares are reachable");
    let DownloadError::Grid(MachineError::NotEnoughShares {
        servers,
        asked,
        found,
        holders,
        needed,
        ref failures,
        ..
    }) = e
    else {
        panic!("{e:?}")
    };
    assert_eq!((servers, asked, found, holders, needed), (5, 5, 2, 2, 3));
    assert_eq!(failures.len(), 3, "{failures:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("asked 5 of 5 servers")
            && msg.contains("found 2 distinct shares")
            && msg.contains("need 3"),
        "{msg}"
    );
    for sh in [0, 2, 4] {
        let name = grid.servers()[p.holder(sh)].name();
        assert!(
            msg.contains(&format!("server {name}: share list query failed")),
            "{msg}"
        );
    }
    assert!(out.is_empty());
}

/// The gateway boxes the download future as `Send`.
#[allow(dead_code)]
fn download_future_is_send(
    grid: &Grid,
    cap: &cairn_core::cap::ChkReadCap,
    sink: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
) {
    fn is_send<T: Send>(_: &T) {}
    let opts = DownloadOptions::default();
    let f = download(grid, cap, 0..1, sink, &opts, None);
    is_send(&f);
}

//! CHK uploads against a grid of in-process cairn storage servers: what lands on disk
//! decodes to the file under the cap the core computes, shares go where Tahoe would put
//! them, a file already on the grid is not sent again, servers dying mid-upload are
//! survived while happiness holds and reported clearly when it does not, and memory stays
//! bounded for large files.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cairn_client::upload::{
    upload_bytes, upload_file, Phase, Progress, ProgressFn, UploadConfig, UploadError,
    PIPELINE_DEPTH, WRITES_IN_FLIGHT, WRITE_BATCH_BYTES,
};
use cairn_client::Grid;
use cairn_core::chk::{self, EncodingParams, Immutable};
use cairn_core::placement::share_placement;
use cairn_test_support::data;
use cairn_test_support::grid::chk_cap;
use cairn_test_support::grid::TestGrid;

fn config(params: EncodingParams, convergence: &[u8]) -> UploadConfig {
    UploadConfig {
        params,
        convergence: convergence.to_vec(),
        lease_secret: Some(vec![7; 32]),
    }
}

/// 3-of-10, happy 7, with small segments so a few MiB make many segments.
fn small_segments() -> EncodingParams {
    EncodingParams {
        max_segment_size: 128 * 1024,
        ..EncodingParams::default()
    }
}

fn server_index(tg: &TestGrid, server_id: &str) -> usize {
    tg.announcements
        .iter()
        .position(|a| a.server_id == server_id)
        .expect("known server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_decodes_from_disk_with_the_cores_cap_and_tahoes_placement() {
    let tg = TestGrid::start(10).await;
    let grid = tg.client();
    let params = small_segments();
    let data = data::bytes(1_000_003, 1);
    let cfg = config(params, b"secret one");
    let report = upload_bytes(&grid, &cfg, Bytes::from(data.clone()), None)
        .await
        .unwrap();

    // The cap is the one the core's in-memory encoder gives for the same secret.
    let Immutable::Chk(expected) = chk::encode_convergent(&params, b"secret one", &data).unwrap()
    else {
        panic!("not CHK")
    };
    assert_eq!(report.cap, expected.read_cap_string());
    let si = report.storage_index.unwrap();
    assert_eq!(chk_cap(&report.cap).storage_index().0, si);

    // What is on disk decodes to the file; every share verifies alone and is byte-identical
    // to the share the core's encoder produces.
    assert_eq!(tg.decode_from_disk(&report.cap), data);
    assert_eq!(tg.each_share_verifies(&report.cap), 10);
    for (_, shnum, bytes) in tg.shares_on_disk(&si) {
        assert!(
            bytes == expected.shares[shnum as usize],
            "share {shnum} differs from the core's"
        );
    }

    // Placement: Tahoe's share_placement over the permuted server list, one share each.
    let permuted = grid.permuted(&si);
    let plan = share_placement(
        &(0..10)
            .map(cairn_core::ids::ServerIndex)
            .collect::<Vec<_>>(),
        &[],
        &[],
        10,
    )
    .unwrap();
    let map = tg.share_map(&si);
    for (shnum, pos) in &plan.placements {
        let server = permuted[pos.get()].index;
        assert_eq!(
            map[server],
            vec![u16::from(*shnum)],
            "share {shnum} should be on server {server}: {map:?}"
        );
    }
    for (shnum, holders) in &report.sharemap {
        assert_eq!(holders.len(), 1);
        assert_eq!(map[server_index(&tg, &holders[0])], vec![*shnum]);
    }

    assert_eq!(report.happiness, 10);
    assert_eq!(report.shares_written, 10);
    assert_eq!(report.shares_already_present, 0);
    assert_eq!(report.servers_tried, 10);
    assert_eq!(report.bytes_sent, 10 * expected.shares[0].len() as u64);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(grid.servers().iter().all(|s| s.health().score == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reupload_sends_no_share_data() {
    let tg = TestGrid::start(10).await;
    let grid = tg.client();
    let data = Bytes::from(data::bytes(700_000, 2));
    let cfg = config(small_segments(), b"again");
    let first = upload_bytes(&grid, &cfg, data.clone(), None).await.unwrap();
    assert_eq!(first.shares_written, 10);

    // A second client, another lease secret: same cap, nothing sent.
    let other = UploadConfig {
        lease_secret: None,
        ..cfg.clone()
    };
    let second = upload_bytes(&tg.client(), &other, data.clone(), None)
        .await
        .unwrap();
    assert_eq!(second.cap, first.cap);
    assert_eq!(second.bytes_sent, 0);
    assert_eq!(second.shares_written, 0);
    assert_eq!(second.shares_already_present, 10);
    assert_eq!(second.happiness, 10);
    assert_eq!(second.sharemap, first.sharemap);
    assert_eq!(tg.decode_from_disk(&second.cap), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_upload_with_and_without_a_key() {
    let tg = TestGrid::start(5).await;
    let grid = tg.client();
    let params = EncodingParams {
        needed: 2,
        happy: 4,
        total: 5,
        max_segment_size: 64 * 1024,
    };
    let data = data::bytes(300_001, 3);
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(&data).unwrap();
    let cfg = config(params, b"file");

    let phases = Arc::new(Mutex::new(Vec::new()));
    let p2 = phases.clone();
    let progress: ProgressFn = Arc::new(move |p: Progress| p2.lock().unwrap().push(p));
    let r1 = upload_file(
        &grid,
        &cfg,
        f.try_clone().unwrap(),
        data.len() as u64,
        None,
        Some(progress),
    )
    .await
    .unwrap();
    assert_eq!(tg.decode_from_disk(&r1.cap), data);

    // progress: hashing, locating, uploading, done; bytes never go backwards within a phase
    let seen = phases.lock().unwrap().clone();
    let order: Vec<Phase> = seen.iter().map(|p| p.phase).fold(Vec::new(), |mut v, p| {
        if v.last() != Some(&p) {
            v.push(p);
        }
        v
    });
    assert_eq!(
        order,
        vec![
            Phase::Hashing,
            Phase::Locating,
            Phase::Uploading,
            Phase::Done
        ]
    );
    for w in seen.windows(2) {
        if w[0].phase == w[1].phase {
            assert!(w[0].done <= w[1].done);
        }
    }
    assert_eq!(seen.last().unwrap().done, data.len() as u64);

    // The caller knows the key (as the gateway does): same cap, file read once.
    let key = chk::convergent_key(&params, b"file", &data).unwrap();
    let r2 = upload_file(
        &grid,
        &cfg,
        f.try_clone().unwrap(),
        data.len() as u64,
        Some(key),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r2.cap, r1.cap);
    assert_eq!(r2.bytes_sent, 0);

    // A file shorter than announced is an I/O error, before any server is contacted.
    let err = upload_file(&grid, &cfg, f, data.len() as u64 + 1, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, UploadError::Io(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_are_lit_and_touch_no_server() {
    let (empty_grid, _) = Grid::new(Vec::new(), Default::default());
    let cfg = config(EncodingParams::default(), b"");
    for len in [0usize, 1, 55] {
        let data = data::bytes(len, 4);
        let r = upload_bytes(&empty_grid, &cfg, Bytes::from(data.clone()), None)
            .await
            .unwrap();
        assert_eq!(r.cap, chk::lit_cap_string(&data).unwrap());
        assert_eq!(
            (r.storage_index, r.bytes_sent, r.servers_tried),
            (None, 0, 0)
        );
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let r = upload_file(&empty_grid, &cfg, f, len as u64, None, None)
            .await
            .unwrap();
        assert_eq!(r.cap, chk::lit_cap_string(&data).unwrap());
    }
    let err = upload_bytes(&empty_grid, &cfg, Bytes::from(vec![1u8; 56]), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, UploadError::NoServers { configured: 0, .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_servers_cannot_make_happy_seven() {
    let tg = TestGrid::start(4).await;
    let grid = tg.client();
    let data = Bytes::from(data::bytes(200_000, 5));
    let cfg = config(small_segments(), b"four");
    let err = upload_bytes(&grid, &cfg, data.clone(), None)
        .await
        .unwrap_err();
    let UploadError::Unhappy {
        message,
        happiness,
        happy,
        servers_queried,
        servers_reachable,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(
        (*happiness, *happy, *servers_queried, *servers_reachable),
        (4, 7, 4, 4)
    );
    assert!(
        message.starts_with("server selection failed for upload "),
        "{message}"
    );
    assert!(
        message.contains(
            "shares could be placed on only 4 server(s) such that any 3 of them have enough shares to recover the \
             file, but we were asked to place shares on at least 7 such servers."
        ),
        "{message}"
    );
    assert!(message.contains("sent 4 queries to 4 servers"), "{message}");
    assert!(message.contains("4 of 4 servers reachable"), "{message}");
    let si = chk_cap(
        &match chk::encode_convergent(&small_segments(), b"four", &data).unwrap() {
            Immutable::Chk(f) => f.read_cap_string(),
            Immutable::Lit(_) => unreachable!(),
        },
    )
    .storage_index()
    .0;
    assert!(tg.shares_on_disk(&si).is_empty());

    // The buckets were aborted: the same file with happy 4 can allocate every share now.
    let ok_cfg = config(
        EncodingParams {
            happy: 4,
            ..small_segments()
        },
        b"four",
    );
    let r = upload_bytes(&grid, &ok_cfg, data.clone(), None)
        .await
        .unwrap();
    assert_eq!((r.happiness, r.shares_written), (4, 10));
    assert_eq!(tg.decode_from_disk(&r.cap), data);
}

/// A progress callback that, the first time the encoder passes `at` bytes, signals the
/// test and waits (on the encoder's thread) until the test lets it go on.
fn pause_at(
    at: u64,
) -> (
    ProgressFn,
    tokio::sync::oneshot::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (hit_tx, hit_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let hit_tx = Mutex::new(Some(hit_tx));
    let go_rx = Mutex::new(go_rx);
    let fired = AtomicBool::new(false);
    let f: ProgressFn = Arc::new(move |p: Progress| {
        if p.phase == Phase::Uploading && p.done >= at && !fired.swap(true, Ordering::SeqCst) {
            if let Some(tx) = hit_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            let _ = go_rx.lock().unwrap().recv();
        }
    });
    (f, hit_rx, go_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_die_mid_upload_and_happiness_holds() {
    let mut tg = TestGrid::start(10).await;
    let grid = tg.client();
    let data = Bytes::from(data::bytes(6 << 20, 6));
    let cfg = config(small_segments(), b"die");
    let (progress, hit, go) = pause_at(data.len() as u64 / 4);
    let task = {
        let (grid, cfg, data) = (grid.clone(), cfg.clone(), data.clone());
        tokio::spawn(async move { upload_bytes(&grid, &cfg, data, Some(progress)).await })
    };
    hit.await.unwrap();
    tg.stop(2).await;
    tg.stop(7).await;
    go.send(()).unwrap();
    let report = task.await.unwrap().unwrap();

    assert_eq!(report.happiness, 8);
    assert_eq!(report.shares_written, 8);
    let dead: BTreeSet<usize> = [2, 7].into();
    for holders in report.sharemap.values() {
        assert!(
            holders
                .iter()
                .all(|h| !dead.contains(&server_index(&tg, h))),
            "{:?}",
            report.sharemap
        );
    }
    for i in dead {
        let name = grid.servers()[i].name();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.starts_with(&name) && p.contains("writing")),
            "{:?}",
            report.problems
        );
        let h = grid.servers()[i].health();
        assert!(
            h.score < 0 && h.last_problem.is_some(),
            "server {i} scored down: {h:?}"
        );
    }
    // The eight complete shares decode.
    assert_eq!(tg.decode_from_disk(&report.cap), data);
    assert_eq!(tg.each_share_verifies(&report.cap), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_servers_die_mid_upload() {
    let mut tg = TestGrid::start(10).await;
    let grid = tg.client();
    let data = Bytes::from(data::bytes(4 << 20, 7));
    let cfg = config(small_segments(), b"die more");
    let (progress, hit, go) = pause_at(data.len() as u64 / 4);
    let task = {
        let (grid, cfg, data) = (grid.clone(), cfg.clone(), data.clone());
        tokio::spawn(async move { upload_bytes(&grid, &cfg, data, Some(progress)).await })
    };
    hit.await.unwrap();
    for i in [0, 3, 5, 9] {
        tg.stop(i).await;
    }
    go.send(()).unwrap();
    let err = task.await.unwrap().unwrap_err();
    let UploadError::Unhappy {
        message,
        happiness,
        servers_reachable,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*happiness, *servers_reachable), (6, 6));
    assert!(
        message.starts_with("upload failed while writing shares for upload "),
        "{message}"
    );
    assert!(
        message.contains(
            "shares could be placed on only 6 server(s) such that any 3 of them have enough shares to recover the \
             file, but we were asked to place shares on at least 7 such servers."
        ),
        "{message}"
    );
    assert!(
        message.contains("6 of 10 servers still reachable"),
        "{message}"
    );
    for i in [0, 3, 5, 9] {
        assert!(
            message.contains(&grid.servers()[i].name()),
            "names server {i}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_before_the_upload_is_left_out() {
    let mut tg = TestGrid::start(10).await;
    let grid = tg.client();
    grid.probe_all().await; // the client believes every server is up
    tg.stop(4).await;
    let data = Bytes::from(data::bytes(500_000, 8));
    let report = upload_bytes(
        &grid,
        &config(small_segments(), b"down"),
        data.clone(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.happiness, 9);
    assert_eq!(report.servers_tried, 10);
    let name = grid.servers()[4].name();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.starts_with(&name) && p.contains("existing shares")),
        "{:?}",
        report.problems
    );
    assert!(tg.share_map(&report.storage_index.unwrap())[4].is_empty());
    assert_eq!(tg.decode_from_disk(&report.cap), data);

    // A fresh client probes first and does not ask it at all.
    let fresh = tg.client();
    let data2 = Bytes::from(data::bytes(500_000, 9));
    let r2 = upload_bytes(&fresh, &config(small_segments(), b"down"), data2, None)
        .await
        .unwrap();
    assert_eq!((r2.servers_tried, r2.happiness), (9, 9));
    assert!(
        r2.problems
            .iter()
            .any(|p| p.starts_with(&name) && p.contains("connecting")),
        "{:?}",
        r2.problems
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_for_a_large_file() {
    let tg = TestGrid::start(10).await;
    let grid = tg.client();
    let size: u64 = 64 << 20;
    let f = tempfile::tempfile().unwrap();
    f.set_len(size).unwrap(); // sparse: reads as zeros
    let params = EncodingParams::default(); // Tahoe's 1 MiB segments
    let report = upload_file(&grid, &config(params, b"big"), f, size, None, None)
        .await
        .unwrap();
    assert_eq!(report.happiness, 10);

    let g = chk::ChkGeometry::new(&params, size).unwrap();
    let per_batch = (WRITE_BATCH_BYTES / g.block_size as usize).max(1) as u64;
    // Held at once, at most: WRITES_IN_FLIGHT batches being written, PIPELINE_DEPTH
    // queued, one being handed over, one accumulating.
    let max_segments = (PIPELINE_DEPTH as u64 + WRITES_IN_FLIGHT as u64 + 2) * per_batch;
    assert!(report.peak_segments_in_flight >= 1);
    assert!(
        report.peak_segments_in_flight as u64 <= max_segments,
        "{} segments held at once, bound {max_segments} (of {} segments)",
        report.peak_segments_in_flight,
        g.num_segments
    );
    let bound = max_segments * g.block_size * 10;
    assert!(
        report.peak_buffered_bytes <= bound,
        "{} bytes held, bound {bound}",
        report.peak_buffered_bytes
    );
    assert!(bound < 24 << 20);
    // Every share is complete and carries the whole file.
    let shares = tg.shares_on_disk(&report.storage_index.unwrap());
    assert_eq!(shares.len(), 10);
    let alloc = g.allocated_size(g.default_layout()).unwrap() as usize;
    assert!(shares.iter().all(|(_, _, d)| d.len() == alloc));
    assert_eq!(report.bytes_sent, 10 * alloc as u64);
}

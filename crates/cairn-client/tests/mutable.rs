//! Mutable files (SDMF and MDMF) through `cairn_client::mutable` against in-process cairn
//! storage servers: create/read round trips, overwrite, modify, ranged reads, servers that
//! are down or stall during a publish, too few servers, a stale server seen by a reader,
//! the own-server private-key copy, and the round trips each operation takes.

use std::time::Duration;

use cairn_client::mutable::{
    self, create, modify, open, overwrite, MutableError, MutableFormat, MutableOptions, Opened,
    PastEnd, Published,
};
use cairn_client::Grid;
use cairn_core::cap::Cap;
use cairn_core::mutable::keys::SigningKey;
use cairn_test_support::data;
use cairn_test_support::grid::TestGrid;
use cairn_test_support::proxy::{Mode, Proxy};
use cairn_test_support::storage_node::fast_options;

const SEG: usize = 128 * 1024;

/// The i-th test key: the three RSA-2048 keys in `vectors/mutable_keys/`, then fresh ones.
async fn key(i: usize) -> SigningKey {
    if (1..=3).contains(&i) {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../vectors/mutable_keys/key{i}.pem"));
        return SigningKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap();
    }
    tokio::task::spawn_blocking(|| SigningKey::generate_rsa(&mut rand::rngs::OsRng).unwrap())
        .await
        .unwrap()
}

fn cap(s: &str) -> Cap {
    Cap::parse(s).expect("cap parses")
}

fn si(p: &Published) -> [u8; 16] {
    cap(&p.writecap).storage_index().unwrap().0
}

async fn read_all(grid: &Grid, c: &str, opts: &MutableOptions) -> (Opened, Vec<u8>) {
    let o = open(grid, &cap(c), opts).await.expect("open");
    let mut out = Vec::new();
    let r = o.read(grid, 0..o.size(), &mut out).await.expect("read");
    assert_eq!(r.bytes, out.len() as u64);
    (o, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdmf_and_mdmf_create_read_round_trips() {
    let tg = TestGrid::start(5).await;
    let grid = tg.client();
    let opts = MutableOptions::new(3, 5, 4);
    let cases: Vec<(MutableFormat, usize)> = vec![
        (MutableFormat::Sdmf, 0),
        (MutableFormat::Sdmf, 1),
        (MutableFormat::Sdmf, 100_000),
        (MutableFormat::Mdmf, 0),
        (MutableFormat::Mdmf, 1),
        (MutableFormat::Mdmf, 3 * SEG + 5),
    ];
    for (i, (format, size)) in cases.into_iter().enumerate() {
        let data = data::bytes(size, 7 + i as u64);
        let p = create(&grid, key(i + 1).await, format, &data, &opts)
            .await
            .expect("create");
        assert_eq!((p.seqnum, p.size, p.format), (1, size as u64, format));
        assert_eq!(p.happiness, 5);
        // a fresh file on 5 healthy servers: one write per server, nothing else
        assert_eq!(p.round_trips.writes, 5, "{:?}", p.round_trips);
        assert_eq!(p.round_trips.servers_written, 5);
        assert_eq!(p.round_trips.max_writes_per_server, 1);
        assert_eq!(p.round_trips.servermap, 0);
        assert_eq!(p.round_trips.max_per_server, 1);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let (o, out) = read_all(&grid, &p.readcap, &opts).await;
        assert!(out == data, "{format:?} {size}: read back differs");
        assert_eq!(
            (o.seqnum(), o.size(), o.format(), o.k(), o.n()),
            (1, size as u64, format, 3, 5)
        );
        // and through the write cap
        let (_, out) = read_all(&grid, &p.writecap, &opts).await;
        assert!(out == data);
        // A small file's shares fit in the servermap's 4000-byte first reads: reading it
        // sends nothing more.
        let mut again = Vec::new();
        let r = o.read(&grid, 0..o.size(), &mut again).await.unwrap();
        assert!(again == data);
        if size <= 1 {
            assert_eq!(
                r.round_trips.reads, 0,
                "{format:?} {size}: {:?}",
                r.round_trips
            );
        } else {
            assert!(
                r.round_trips.reads >= 3,
                "{format:?} {size}: {:?}",
                r.round_trips
            );
        }
        let prefix = match format {
            MutableFormat::Sdmf => ("URI:SSK:", "URI:SSK-RO:"),
            MutableFormat::Mdmf => ("URI:MDMF:", "URI:MDMF-RO:"),
        };
        assert!(p.writecap.starts_with(prefix.0) && p.readcap.starts_with(prefix.1));
        println!(
            "create {format:?} {size} B: {:?}; open: {:?}",
            p.round_trips,
            o.round_trips()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_is_one_write_per_server_and_reads_see_it() {
    let tg = TestGrid::start(5).await;
    let grid = tg.client();
    let opts = MutableOptions::new(3, 5, 4);
    for (i, format) in [MutableFormat::Sdmf, MutableFormat::Mdmf]
        .into_iter()
        .enumerate()
    {
        let v1 = data::bytes(2 * SEG + 17, 1);
        let p = create(&grid, key(i + 1).await, format, &v1, &opts)
            .await
            .unwrap();
        let before = open(&grid, &cap(&p.readcap), &opts).await.unwrap();
        assert_eq!(before.seqnum(), 1);

        let v2 = data::bytes(SEG + 3, 2);
        let q = overwrite(&grid, &cap(&p.writecap), &v2, &opts)
            .await
            .expect("overwrite");
        assert_eq!((q.seqnum, q.size), (2, v2.len() as u64));
        assert_eq!((&q.writecap, &q.readcap), (&p.writecap, &p.readcap));
        assert_eq!(q.happiness, 5);
        // fresh servermap, healthy servers: exactly one write round trip per server
        assert_eq!(q.round_trips.writes, 5, "{:?}", q.round_trips);
        assert_eq!(q.round_trips.max_writes_per_server, 1);
        assert_eq!(q.round_trips.servers_written, 5);
        // servermap: a writer's query is one read-test-write (no writes) per server, so
        // an MDMF overwrite is one query and one write per server; SDMF keeps the
        // encrypted private key after the data, beyond the first 4000 bytes, so the
        // machine reads it from each share whose answer came before the key was known
        // (1 to 5 more reads)
        match format {
            MutableFormat::Mdmf => {
                assert_eq!(q.round_trips.servermap, 5, "{:?}", q.round_trips);
                assert_eq!(q.round_trips.max_per_server, 2);
            }
            MutableFormat::Sdmf => {
                assert!(
                    (6..=10).contains(&q.round_trips.servermap),
                    "{:?}",
                    q.round_trips
                );
                assert!(q.round_trips.max_per_server <= 3);
            }
        }

        let (o, out) = read_all(&grid, &p.readcap, &opts).await;
        assert_eq!(o.seqnum(), 2);
        assert!(out == v2, "{format:?}: read after overwrite differs");
        let mut out = Vec::new();
        let r = o.read(&grid, 0..o.size(), &mut out).await.unwrap();
        println!(
            "{format:?} overwrite: {:?}; open: {:?}; read: {:?}",
            q.round_trips,
            o.round_trips(),
            r.round_trips
        );
        // read mode asks only k + epsilon = 4 servers (a list and a read each)
        assert_eq!(o.round_trips().servermap, 8, "{:?}", o.round_trips());
        assert_eq!(r.round_trips.servermap, 8);
        let blocks_per_share = match format {
            MutableFormat::Sdmf => 1,
            // block hash tree, 2 segments (the header comes from the servermap's first read)
            MutableFormat::Mdmf => 3,
        };
        assert_eq!(r.round_trips.reads, 3 * blocks_per_share);

        // An Opened made before the overwrite still names version 1 (by design it reads
        // the version it chose); a fresh open sees version 2.
        assert_eq!(before.seqnum(), 1);
        let third = data::bytes(10, 3);
        let q3 = overwrite(&grid, &cap(&p.writecap), &third, &opts)
            .await
            .unwrap();
        assert_eq!(q3.seqnum, 3);
        let (o, out) = read_all(&grid, &p.readcap, &opts).await;
        assert_eq!((o.seqnum(), out), (3, third));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modify_replaces_a_range_and_extends() {
    let tg = TestGrid::start(4).await;
    let grid = tg.client();
    let opts = MutableOptions::new(2, 4, 3);
    for (i, format) in [MutableFormat::Mdmf, MutableFormat::Sdmf]
        .into_iter()
        .enumerate()
    {
        let mut model = data::bytes(3 * SEG + 100, 11);
        let p = create(&grid, key(i + 1).await, format, &model, &opts)
            .await
            .unwrap();
        let w = cap(&p.writecap);

        // across a segment boundary
        let patch = data::bytes(5000, 12);
        let at = SEG - 2500;
        let q = modify(&grid, &w, at as u64, &patch, &opts)
            .await
            .expect("modify");
        model[at..at + patch.len()].copy_from_slice(&patch);
        assert_eq!((q.seqnum, q.size), (2, model.len() as u64));
        assert_eq!(q.in_place, format == MutableFormat::Mdmf);
        let (_, out) = read_all(&grid, &p.readcap, &opts).await;
        assert!(out == model, "{format:?}: modify in the middle");

        // overlapping the end: extends
        let tail = data::bytes(300, 13);
        let at = model.len() - 100;
        let q = modify(&grid, &w, at as u64, &tail, &opts).await.unwrap();
        model.truncate(at);
        model.extend_from_slice(&tail);
        assert_eq!((q.seqnum, q.size), (3, model.len() as u64));
        assert_eq!(
            q.in_place,
            format == MutableFormat::Mdmf,
            "growing MDMF in place"
        );
        let (_, out) = read_all(&grid, &p.readcap, &opts).await;
        assert!(out == model, "{format:?}: modify overlapping the end");

        // past the end: zeros in between
        let far = b"far away".to_vec();
        let at = model.len() + 10;
        let q = modify(&grid, &w, at as u64, &far, &opts).await.unwrap();
        model.resize(at, 0);
        model.extend_from_slice(&far);
        assert_eq!(q.seqnum, 4);
        assert!(!q.in_place, "a hole past the end is a whole republish");
        let (o, out) = read_all(&grid, &p.readcap, &opts).await;
        assert_eq!(o.seqnum(), 4);
        assert!(out == model, "{format:?}: modify past the end");
    }
}

/// Tahoe's web rules for an offset past the end: SDMF writes at the end, MDMF refuses
/// (and nothing is written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tahoe_offset_rules_past_the_end() {
    let tg = TestGrid::start(4).await;
    let grid = tg.client();
    let opts = MutableOptions::new(2, 4, 3);
    let s = create(&grid, key(1).await, MutableFormat::Sdmf, b"hello", &opts)
        .await
        .unwrap();
    let q = mutable::modify_with(
        &grid,
        &cap(&s.writecap),
        99,
        b" world",
        PastEnd::Tahoe,
        &opts,
    )
    .await
    .unwrap();
    assert_eq!((q.seqnum, q.size), (2, 11));
    assert_eq!(read_all(&grid, &s.readcap, &opts).await.1, b"hello world");

    let m = create(&grid, key(2).await, MutableFormat::Mdmf, b"hello", &opts)
        .await
        .unwrap();
    let err = mutable::modify_with(&grid, &cap(&m.writecap), 6, b"x", PastEnd::Tahoe, &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MutableError::OffsetPastEnd { offset: 6, size: 5 }),
        "{err}"
    );
    let q = mutable::modify_with(&grid, &cap(&m.writecap), 5, b"!", PastEnd::Tahoe, &opts)
        .await
        .unwrap();
    assert_eq!((q.seqnum, q.size), (2, 6));
    assert_eq!(read_all(&grid, &m.readcap, &opts).await.1, b"hello!");
}

/// A 4 KiB change in a 16-segment MDMF file on 10 servers rewrites one segment and a few
/// hashes per share: the bytes sent are a small fraction of a whole publish, the requests
/// are counted, and the result reads back (whole and ranged) with the new seqnum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdmf_modify_rewrites_only_the_affected_segment() {
    let mut tg = TestGrid::start(10).await;
    let grid = tg.client();
    let opts = MutableOptions::new(3, 10, 7);
    let mut model = data::bytes(16 * SEG, 41);
    let p = create(&grid, key(1).await, MutableFormat::Mdmf, &model, &opts)
        .await
        .unwrap();
    let whole_publish = p.written_bytes;
    assert!(whole_publish > (16 * SEG / 3 * 10) as u64);
    let w = cap(&p.writecap);
    let patch = data::bytes(4096, 42);
    let at = 7 * SEG + 1000;
    let q = modify(&grid, &w, at as u64, &patch, &opts).await.unwrap();
    model[at..at + patch.len()].copy_from_slice(&patch);
    assert!(q.in_place);
    assert_eq!(q.seqnum, 2);
    // per share: one salted block (a third of a segment), a few hashes, chain, signature
    let block = (SEG as u64).div_ceil(3) + 16;
    assert!(
        q.written_bytes < 10 * (block + 2048),
        "in place wrote {} bytes (a whole publish: {whole_publish})",
        q.written_bytes
    );
    let rt = &q.round_trips;
    assert_eq!((rt.writes, rt.servers_written), (10, 10), "{rt:?}");
    assert_eq!(rt.servermap, 10, "{rt:?}");
    // old segment from k = 3 shares (hashes, block; the header is in the servermap's first
    // read) + one read from every server
    assert_eq!(rt.reads, 3 * 2 + 10, "{rt:?}");
    println!("in-place 4 KiB modify of a 2 MiB MDMF file, 3-of-10: {rt:?}, {} bytes written (whole publish {whole_publish})", q.written_bytes);
    let (o, out) = read_all(&grid, &p.readcap, &opts).await;
    assert_eq!(o.seqnum(), 2);
    assert!(out == model);

    // A change across a segment boundary that grows the file, then a second client.
    let patch = data::bytes(SEG + 500, 43);
    let at = model.len() - 200;
    let q = modify(&grid, &w, at as u64, &patch, &opts).await.unwrap();
    assert!(q.in_place);
    model.truncate(at);
    model.extend_from_slice(&patch);
    let (o, out) = read_all(&tg.client(), &p.readcap, &opts).await;
    assert_eq!((o.seqnum(), o.size()), (3, model.len() as u64));
    assert!(out == model);

    // One server down: not every share is reachable, so the change is a whole publish.
    let down = grid.permuted(&si(&p))[0].index;
    tg.stop(down).await;
    let patch = data::bytes(100, 44);
    let q = modify(&grid, &w, 5, &patch, &opts).await.unwrap();
    assert!(!q.in_place);
    model[5..105].copy_from_slice(&patch);
    let (o, out) = read_all(&grid, &p.readcap, &opts).await;
    assert_eq!(o.seqnum(), 4);
    assert!(out == model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_mdmf_reads_fetch_only_overlapping_segments() {
    let tg = TestGrid::start(4).await;
    let grid = tg.client();
    let opts = MutableOptions::new(3, 4, 3);
    let data = data::bytes(5 * SEG + 999, 21);
    let p = create(&grid, key(1).await, MutableFormat::Mdmf, &data, &opts)
        .await
        .unwrap();
    let o = open(&grid, &cap(&p.readcap), &opts).await.unwrap();
    // MDMF segments: 128 KiB rounded up to a multiple of k = 3
    let seg = (SEG as u64).div_ceil(3) * 3;
    let size = data.len() as u64;
    for range in [
        0..1,
        size - 1..size,
        2 * seg + 10..2 * seg + 20,
        seg - 1..seg + 1,
        seg..4 * seg,
        0..size,
    ] {
        let mut out = Vec::new();
        let r = o.read(&grid, range.clone(), &mut out).await.unwrap();
        assert!(
            out == data[range.start as usize..range.end as usize],
            "{range:?}"
        );
        let segments = (range.end - 1) / seg - range.start / seg + 1;
        // per share used (k = 3): block hash tree + one read per segment (the header is in
        // the servermap's first read)
        assert_eq!(r.round_trips.reads as u64, 3 * (1 + segments), "{range:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_survives_a_down_server_and_a_stalled_one() {
    let mut tg = TestGrid::start(6).await;
    let grid = tg.client();
    let opts = MutableOptions::new(3, 6, 4);
    let data = data::bytes(50_000, 31);
    let p = create(&grid, key(1).await, MutableFormat::Mdmf, &data, &opts)
        .await
        .unwrap();
    // the first server in this file's order goes down
    let first = grid.permuted(&si(&p))[0].index;
    tg.stop(first).await;
    let v2 = data::bytes(70_000, 32);
    let q = match overwrite(&grid, &cap(&p.writecap), &v2, &opts).await {
        Ok(q) => q,
        Err(e) => panic!("overwrite with one server down failed: {e}"),
    };
    assert_eq!(q.seqnum, 2);
    assert!(q.happiness >= 4);
    assert!(!q.placed.values().any(|s| s.contains(&first)));
    assert_eq!(q.placed.len(), 6, "every share placed somewhere");
    let (o, out) = read_all(&grid, &p.readcap, &opts).await;
    assert_eq!(o.seqnum(), 2);
    assert!(out == v2);
    assert!(grid.servers()[first].health().score < 0);
    // a client that does not know yet that the first server is down: its query fails,
    // fewer than k + epsilon answer, and the update asks the others
    let (o, out) = read_all(&tg.client(), &p.readcap, &opts).await;
    assert_eq!(o.seqnum(), 2);
    assert!(out == v2);

    // A server that accepts connections and never answers: the publish drops it after
    // the write timeout and places its share elsewhere.
    let node = &tg.servers[(first + 1) % 6];
    let stalled = (first + 1) % 6;
    let proxy = Proxy::start(node.addr, Mode::StallAfter(0)).await;
    let mut anns = tg.announcements.clone();
    anns[stalled] = node.static_server_at(proxy.addr);
    let (grid2, _) = Grid::new(anns, fast_options());
    let mut fast = opts.clone();
    fast.write_timeout = Duration::from_secs(1);
    fast.query_timeout = Duration::from_secs(1);
    let data = data::bytes(1000, 33);
    let started = std::time::Instant::now();
    let r = create(&grid2, key(2).await, MutableFormat::Sdmf, &data, &fast)
        .await
        .expect("create with a stalled server and one down");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(!r
        .placed
        .values()
        .any(|s| s.contains(&stalled) || s.contains(&first)));
    assert!(r.problems.len() >= 2, "{:?}", r.problems);
    assert!(grid2.servers()[stalled].health().stalls >= 1);
    let (_, out) = read_all(&grid, &r.readcap, &opts).await;
    assert!(out == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_servers_is_a_clear_error() {
    let mut tg = TestGrid::start(2).await;
    let grid = tg.client();
    let opts = MutableOptions::new(3, 5, 4);
    let err = create(&grid, key(1).await, MutableFormat::Sdmf, b"x", &opts)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            MutableError::NotEnoughServers {
                needed: 4,
                got: 2,
                tried: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        msg.contains("needed 4") && msg.contains("got 2") && msg.contains("tried 2"),
        "{msg}"
    );

    // every server down: reading and writing say how many were tried and why
    let ok = MutableOptions::new(1, 2, 2);
    let p = create(&grid, key(2).await, MutableFormat::Mdmf, b"hello", &ok)
        .await
        .unwrap();
    tg.stop(0).await;
    tg.stop(1).await;
    let err = open(&grid, &cap(&p.readcap), &ok).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            MutableError::NotEnoughServers {
                tried: 2,
                got: 0,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        msg.contains("tried 2 servers") && msg.contains("failed during query"),
        "{msg}"
    );
    let err = overwrite(&grid, &cap(&p.writecap), b"new", &ok)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MutableError::NotEnoughServers {
                tried: 2,
                got: 0,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_with_a_stale_server_gets_the_newest_version() {
    let mut tg = TestGrid::start(5).await;
    let grid = tg.client();
    let opts = MutableOptions::new(2, 5, 3);
    let v1 = data::bytes(40_000, 41);
    let p = create(&grid, key(1).await, MutableFormat::Sdmf, &v1, &opts)
        .await
        .unwrap();
    // the server asked first keeps version 1 while version 2 is published elsewhere
    let first = grid.permuted(&si(&p))[0].index;
    tg.stop(first).await;
    let v2 = data::bytes(40_000, 42);
    let q = overwrite(&grid, &cap(&p.writecap), &v2, &opts)
        .await
        .unwrap();
    assert_eq!(q.seqnum, 2);
    tg.restart(first).await;
    let fresh = tg.client();
    let (o, out) = read_all(&fresh, &p.readcap, &opts).await;
    assert_eq!(o.seqnum(), 2);
    assert!(out == v2, "reader got the stale version");
    assert!(o
        .servermap()
        .shares()
        .iter()
        .any(|((s, _), v)| s.get() == first && v.seqnum == 1));
    // the next write replaces the stale share too
    let q = overwrite(&fresh, &cap(&p.writecap), b"three", &opts)
        .await
        .unwrap();
    assert_eq!(q.seqnum, 3);
    assert!(q.placed.values().any(|s| s.contains(&first)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_server_keeps_a_copy_of_a_share() {
    let tg = TestGrid::start(6).await;
    let grid = tg.client();
    let mut opts = MutableOptions::new(2, 4, 3);
    let k = key(1).await;
    let si = cairn_core::mutable::keys::MutableKeys::from_signing_key(&k).storage_index();
    // the last server in this file's order gets no share of a 4-share file
    let own = grid.permuted(&si)[5].index;
    opts.own_server = Some(own);
    let p = create(&grid, k, MutableFormat::Mdmf, b"keep my key", &opts)
        .await
        .unwrap();
    assert!(
        p.placed.values().any(|s| s.contains(&own)),
        "{:?}",
        p.placed
    );
    assert_eq!(tg.share_map(&si)[own].len(), 1);
    assert_eq!(p.round_trips.writes, 5);
    // the copy is a valid share of the version: an overwrite finds and replaces it
    let q = overwrite(&grid, &cap(&p.writecap), b"still mine", &opts)
        .await
        .unwrap();
    assert!(q.placed.values().any(|s| s.contains(&own)));
    let (_, out) = read_all(&grid, &p.readcap, &opts).await;
    assert_eq!(out, b"still mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_errors() {
    let tg = TestGrid::start(3).await;
    let grid = tg.client();
    let opts = MutableOptions::new(1, 3, 2);
    let p = create(&grid, key(1).await, MutableFormat::Sdmf, b"abc", &opts)
        .await
        .unwrap();
    let err = overwrite(&grid, &cap(&p.readcap), b"x", &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, MutableError::NotWriteable), "{err:?}");
    let err = modify(&grid, &cap(&p.readcap), 0, b"x", &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, MutableError::NotWriteable), "{err:?}");
    let verifier = cap(&p.readcap).verifier().unwrap();
    let err = open(&grid, &verifier, &opts).await.unwrap_err();
    assert!(matches!(err, MutableError::BadCap(_)), "{err:?}");
    // a key never published: no such file
    let other = key(2).await;
    let keys = cairn_core::mutable::keys::MutableKeys::from_signing_key(&other);
    let c =
        cairn_core::cap::SdmfWriteCap::new(*keys.writekey().unwrap(), keys.fingerprint().unwrap());
    let err = open(&grid, &cap(&c.to_string()), &opts).await.unwrap_err();
    assert!(
        matches!(err, MutableError::NoSuchFile { asked: 3 }),
        "{err:?}"
    );
    let err = overwrite(&grid, &cap(&c.to_string()), b"x", &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, MutableError::NoSuchFile { .. }), "{err:?}");
    let _ = mutable::DEFAULT_EPSILON;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_collide_and_leave_a_recoverable_version() {
    let tg = TestGrid::start(5).await;
    let grid = tg.client();
    let opts = MutableOptions::new(2, 5, 3);
    let p = create(&grid, key(1).await, MutableFormat::Sdmf, b"v1", &opts)
        .await
        .unwrap();
    let w = cap(&p.writecap);
    let mut collisions = 0;
    for round in 0..4u64 {
        let a = data::bytes(2000, 100 + round);
        let b = data::bytes(2000, 200 + round);
        let (ra, rb) = tokio::join!(
            overwrite(&grid, &w, &a, &opts),
            overwrite(&grid, &w, &b, &opts)
        );
        for r in [&ra, &rb] {
            match r {
                Ok(_) => {}
                Err(e @ MutableError::UncoordinatedWrite(_)) => {
                    collisions += 1;
                    assert!(e.to_string().contains("another writer"), "{e}");
                }
                Err(e) => panic!("round {round}: unexpected error {e:?}"),
            }
        }
        // whatever happened, a complete version is readable and is one of the two writes
        let (_, out) = read_all(&grid, &p.readcap, &opts).await;
        assert!(out == a || out == b, "round {round}: read neither write");
    }
    println!("collisions seen: {collisions} of 8 writes");
}

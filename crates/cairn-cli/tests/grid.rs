//! `cairn grid up|down` end to end: a 3-server grid of real `cairn run` processes, files
//! put and got through its gateway, stopped, started again on the same directories; mutable
//! files (`put --mutable`, `--format mdmf`, `put FILE WRITECAP`) through the same gateway.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_test_support::cli::*;
use cairn_test_support::data;

#[test]
fn grid_up_put_get_down_and_up_again() {
    let t0 = Instant::now();
    let grid = TempGrid::new();
    let (tmp, dir, d) = (&grid.tmp, &grid.dir, grid.d());

    let o = up_detached(d, Some("3"));
    assert_ok(&o);
    let url = stdout(&o).lines().last().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // grid.json: 3 storage nodes with NURLs and server ids, a client with the gateway URL;
    // every recorded process alive.
    let g = grid_json(dir);
    assert_eq!(g["servers"], 3);
    assert_eq!(g["gateway"], url.as_str());
    let nodes = g["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    for n in &nodes[..3] {
        assert_eq!(n["kind"], "storage");
        assert!(n["nurl"].as_str().unwrap().starts_with("pb://"), "{n}");
        assert!(n["server_id"].as_str().unwrap().starts_with("v0-"), "{n}");
        assert!(Path::new(n["dir"].as_str().unwrap())
            .join("tahoe.cfg")
            .exists());
    }
    assert_eq!(nodes[3]["kind"], "client");
    assert_eq!(nodes[3]["web_url"], url.as_str());
    let first_pids = pids(&g);
    assert_eq!(first_pids.len(), 4);
    assert!(first_pids.iter().all(|p| alive(*p)));
    let node_url = std::fs::read_to_string(dir.join("client/node.url")).unwrap();
    assert_eq!(node_url.trim(), url);

    // Put and get through the grid's client.
    let client = dir.join("client");
    let c = client.to_str().unwrap();
    let data = data::bytes(3 * (1 << 20) + 777, 21);
    let file = tmp.path().join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let o = run(&["put", "-d", c, file.to_str().unwrap()], None);
    assert_ok(&o);
    let cap = stdout(&o).lines().last().unwrap().to_string();
    assert!(
        cap.starts_with("URI:CHK:") && cap.ends_with(":3:10:3146505"),
        "{cap}"
    );
    let out = tmp.path().join("out.bin");
    assert_ok(&run(
        &["get", &cap, out.to_str().unwrap(), "-u", &url],
        None,
    ));
    assert!(std::fs::read(&out).unwrap() == data);
    // Shares are on all three servers (10 shares, happy = 3 on a 3-server grid).
    for i in 1..=3 {
        let shares = dir.join(format!("storage{i:02}/storage/shares"));
        assert!(count_files(&shares) > 0, "no share on storage{i:02}");
    }

    // `grid up` again while it runs: says so, same URL.
    let o = run(&["grid", "up", "--dir", d, "--detach"], None);
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), url);
    assert!(stderr(&o).contains("already running"), "{}", stderr(&o));
    // A different size for an existing grid is refused.
    let o = run(
        &["grid", "up", "--dir", d, "--servers", "5", "--detach"],
        None,
    );
    assert!(!o.status.success());

    // Down: every process stops, grid.json keeps no pid.
    let o = run(&["grid", "down", "--dir", d], None);
    assert_ok(&o);
    assert!(
        stdout(&o).contains("4 of 4 nodes were running"),
        "{}",
        stdout(&o)
    );
    assert!(
        first_pids.iter().all(|p| !alive(*p)),
        "a node survived grid down"
    );
    assert!(pids(&grid_json(dir)).is_empty());
    let o = run(&["grid", "down", "--dir", d], None);
    assert_ok(&o);
    assert!(
        stdout(&o).contains("0 of 4 nodes were running"),
        "{}",
        stdout(&o)
    );

    // Up again, in the foreground this time: same directories, so the same servers and the
    // file stored before reads back. SIGTERM stops it and its nodes.
    let mut fg = cairn()
        .args(["grid", "up", "--dir", d, "--timeout", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(fg.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), url, "the client keeps its web port");
    let g2 = grid_json(dir);
    for i in 0..3 {
        assert_eq!(g2["nodes"][i]["server_id"], g["nodes"][i]["server_id"]);
        assert_eq!(g2["nodes"][i]["nurl"], g["nodes"][i]["nurl"]);
    }
    let o = run(&["get", &cap, "-d", c], None);
    assert_ok(&o);
    assert!(
        o.stdout == data,
        "the file stored before the restart reads back"
    );
    let second_pids = pids(&g2);
    assert_eq!(second_pids.len(), 4);
    unsafe { libc::kill(fg.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = fg.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "grid up did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(
        second_pids.iter().all(|p| !alive(*p)),
        "a node survived the foreground grid's SIGTERM"
    );
    assert!(pids(&grid_json(dir)).is_empty());
    eprintln!("grid test: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn grid_up_names_the_node_that_failed() {
    let grid = TempGrid::new();
    let (dir, d) = (&grid.dir, grid.d());
    // Create the grid, stop it, then put a file where storage02's share directory belongs:
    // that node cannot start again.
    assert_ok(&up_detached(d, Some("2")));
    assert_ok(&run(&["grid", "down", "--dir", d], None));
    let storage = dir.join("storage02/storage");
    std::fs::remove_dir_all(&storage).unwrap();
    std::fs::write(&storage, b"not a directory").unwrap();
    let o = run(
        &["grid", "up", "--dir", d, "--detach", "--timeout", "20"],
        None,
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("storage02"), "{err}");
    // Nothing left running.
    let g = grid_json(dir);
    assert!(pids(&g).is_empty(), "{g}");
}

#[test]
fn grid_up_moves_a_remembered_port_that_was_taken() {
    let grid = TempGrid::new();
    let (dir, d) = (&grid.dir, grid.d());
    assert_ok(&up_detached(d, Some("2")));
    let g = grid_json(dir);
    assert_ok(&run(&["grid", "down", "--dir", d], None));
    let nodes = g["nodes"].as_array().unwrap();
    let storage_port = nurl_port(nodes[1]["nurl"].as_str().unwrap());
    let web_port = url_port(nodes[2]["web_url"].as_str().unwrap());
    // Every port of the grid outside the kernel's ephemeral range, none given twice.
    let eph = cairn_config::ports::ephemeral_range();
    let all = [
        nurl_port(nodes[0]["nurl"].as_str().unwrap()),
        storage_port,
        web_port,
    ];
    for p in all {
        assert!(!eph.contains(&p), "port {p} in the ephemeral range {eph:?}");
    }
    assert_eq!(
        all.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );

    // storage02's port held by a listener. The client's web port: a port that an outgoing
    // connection holds as its source (as a browser's or a download's connection would, on
    // a port inside the ephemeral range that an older cairn remembered): the kernel picks
    // that connection's port, and the client's tahoe.cfg is made to name it.
    let _listener = std::net::TcpListener::bind(("127.0.0.1", storage_port)).unwrap();
    let peer = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let outgoing = std::net::TcpStream::connect(peer.local_addr().unwrap()).unwrap();
    let taken_web = outgoing.local_addr().unwrap().port();
    let cfg_path = dir.join("client/tahoe.cfg");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let cfg = cairn_config::config::move_port(&cfg, web_port, taken_web).unwrap();
    std::fs::write(&cfg_path, cfg).unwrap();
    let web_port = taken_web;

    let o = up_detached(d, None);
    assert_ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "storage02: port {storage_port} is in use by pid {}",
            std::process::id()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "client: port {web_port} is in use by pid {}",
            std::process::id()
        )),
        "{err}"
    );
    assert_eq!(err.matches("moved to port").count(), 2, "{err}");

    // grid.json, the node's config and the client's server list name the new ports, and the
    // grid works: a file goes in and comes back.
    let g2 = grid_json(dir);
    let nodes2 = g2["nodes"].as_array().unwrap();
    let new_storage = nurl_port(nodes2[1]["nurl"].as_str().unwrap());
    let new_web = url_port(g2["gateway"].as_str().unwrap());
    assert_ne!(new_storage, storage_port);
    assert_ne!(new_web, web_port);
    assert_eq!(
        nurl_port(nodes2[0]["nurl"].as_str().unwrap()),
        all[0],
        "storage01 kept its port"
    );
    let cfg = std::fs::read_to_string(dir.join("storage02/tahoe.cfg")).unwrap();
    assert!(
        cfg.contains(&format!("tub.port = tcp:{new_storage}:interface=127.0.0.1")),
        "{cfg}"
    );
    let yaml = std::fs::read_to_string(dir.join("client/private/servers.yaml")).unwrap();
    assert!(yaml.contains(&format!(":{new_storage}/")), "{yaml}");
    let client = dir.join("client");
    let o = run(
        &["put", "-d", client.to_str().unwrap(), "-"],
        Some(b"moved ports"),
    );
    assert_ok(&o);
    let cap = stdout(&o).lines().last().unwrap().to_string();
    let o = run(&["get", "-d", client.to_str().unwrap(), &cap], None);
    assert_ok(&o);
    assert_eq!(o.stdout, b"moved ports");
}

#[test]
fn run_names_the_port_taken_and_its_holder() {
    let grid = TempGrid::new();
    let (dir, d) = (&grid.dir, grid.d());
    assert_ok(&up_detached(d, Some("1")));
    let g = grid_json(dir);
    assert_ok(&run(&["grid", "down", "--dir", d], None));
    let port = nurl_port(g["nodes"][0]["nurl"].as_str().unwrap());
    let _listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let t0 = Instant::now();
    let o = run(&["run", dir.join("storage01").to_str().unwrap()], None);
    assert!(!o.status.success());
    assert!(t0.elapsed() < Duration::from_secs(20));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "port {port} on 127.0.0.1 is already in use by pid {}",
            std::process::id()
        )),
        "{err}"
    );
}

#[test]
fn grid_up_and_down_thirty_times() {
    let grid = TempGrid::new();
    let d = grid.d();
    let t0 = Instant::now();
    for i in 0..30 {
        let o = up_detached(d, Some("2"));
        assert!(
            o.status.success(),
            "start {i} failed:\n{}\n{}",
            stdout(&o),
            stderr(&o)
        );
        assert_ok(&run(&["grid", "down", "--dir", d], None));
    }
    eprintln!("30 starts: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn grid_mutable_put_overwrite_get() {
    let grid = TempGrid::new();
    let (tmp, dir, d) = (&grid.tmp, &grid.dir, grid.d());
    let o = up_detached(d, Some("3"));
    assert_ok(&o);
    let client = dir.join("client");
    let c = client.to_str().unwrap();

    // SDMF (`--mutable`), from a file: the write cap is printed; get reads it back.
    let v1 = data::bytes(5000, 31);
    let file = tmp.path().join("v1.bin");
    std::fs::write(&file, &v1).unwrap();
    let o = run(&["put", "--mutable", "-d", c, file.to_str().unwrap()], None);
    assert_ok(&o);
    let sdmf = stdout(&o).lines().last().unwrap().to_string();
    assert!(sdmf.starts_with("URI:SSK:"), "{sdmf}");
    let o = run(&["get", &sdmf, "-d", c], None);
    assert_ok(&o);
    assert!(o.stdout == v1);

    // Overwrite through the write cap (stdin), as `tahoe put - WRITECAP`: same cap printed.
    let v2 = data::bytes(300, 32);
    let o = run(&["put", "-", &sdmf, "-d", c], Some(&v2));
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), sdmf);
    let out = tmp.path().join("v2.out");
    assert_ok(&run(&["get", &sdmf, out.to_str().unwrap(), "-d", c], None));
    assert!(std::fs::read(&out).unwrap() == v2);

    // MDMF, several segments, with --json; the read cap reads it too.
    let v3 = data::bytes(400_000, 33);
    let o = run(&["put", "--format", "mdmf", "--json", "-d", c], Some(&v3));
    assert_ok(&o);
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let mdmf = j["cap"].as_str().unwrap().to_string();
    assert!(mdmf.starts_with("URI:MDMF:"), "{mdmf}");
    assert_eq!(j["size"], 400_000);
    let ro = match cairn_core::cap::Cap::parse(&mdmf).unwrap() {
        cairn_core::cap::Cap::MdmfWrite(w) => w.readonly().to_string(),
        other => panic!("{other:?}"),
    };
    let o = run(&["get", &ro, "-d", c], None);
    assert_ok(&o);
    assert!(o.stdout == v3);

    // A read cap is no target (refused before sending, as by `tahoe put`): exit 1.
    let o = run(&["put", "-", &ro, "-d", c], Some(b"x"));
    assert!(!o.status.success());
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

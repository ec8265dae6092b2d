"""Side-by-side benchmark: a 10-server Tahoe-LAFS 1.20 grid and a 10-server cairn grid on
this machine, each node its own process, both 3-of-10 with happy 7.

Run it through bench/grid/run.sh (builds cairn, sets up the Tahoe venv).  Directly:

    <tahoe venv>/bin/python bench/grid/run.py --cairn target/release/cairn [--sizes 1,10,100]
        [--runs 3] [--tahoe-modes https,foolscap] [--big-mib 1024] [--json OUT]

For every grid and size it uploads fresh random data through the client node's web
gateway (`curl -T FILE -X PUT $URL/uri`, as the Tahoe baseline does), downloads it back
(`curl -o OUT $URL/uri/$CAP`) and compares SHA-256.  MiB/s = size / curl time_total;
each figure is the median of --runs runs (min and max shown).  The client node's peak RSS
(VmHWM, reset through /proc/PID/clear_refs before each transfer) is reported beside.
With --big-mib, cairn's client also uploads one file of that size and its peak RSS is
reported (the memory target is for a 1 GiB upload).
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "interop"))

import harness as H  # noqa: E402

MiB = 1 << 20


def log(msg):
    print(msg, flush=True)


def write_random(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                return h.hexdigest()
            h.update(b)


def reset_hwm(pid):
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
    except OSError:
        pass


def read_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # MiB
    return float("nan")


def curl(args, what):
    r = subprocess.run(["curl", "-sS", "--fail-with-body", "-w", "\n%{http_code} %{time_total}"] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
    if r.returncode != 0:
        H.fail("%s: curl exit %d: %s %s" % (what, r.returncode, r.stderr.decode()[-500:], r.stdout.decode()[-500:]))
    body, _, tail = r.stdout.decode().rpartition("\n")
    code, secs = tail.split()
    return body, int(code), float(secs)


def measure(client, workdir, size_mib, runs, label):
    url = "http://127.0.0.1:%d" % client.web_port
    pid = client.proc.pid
    up, down, up_rss, down_rss = [], [], [], []
    src = os.path.join(workdir, "src.bin")
    out = os.path.join(workdir, "out.bin")
    for i in range(runs):
        write_random(src, size_mib * MiB)
        want = sha256_file(src)
        reset_hwm(pid)
        body, code, secs = curl(["-T", src, "-X", "PUT", url + "/uri"], "%s upload %d MiB" % (label, size_mib))
        cap = body.strip()
        H.check(code in (200, 201) and cap.startswith("URI:CHK:"), "%s: PUT /uri gave %d %r" % (label, code, cap[:100]))
        up.append(size_mib / secs)
        up_rss.append(read_status(pid, "VmHWM"))
        reset_hwm(pid)
        _, code, secs = curl(["-o", out, url + "/uri/" + H.quote_cap(cap)], "%s download %d MiB" % (label, size_mib))
        H.check(code == 200, "%s: GET gave %d" % (label, code))
        H.check(sha256_file(out) == want, "%s: downloaded %d MiB differ from the upload" % (label, size_mib))
        down.append(size_mib / secs)
        down_rss.append(read_status(pid, "VmHWM"))
        log("  %-16s %4d MiB run %d: up %7.1f MiB/s  down %7.1f MiB/s  peak RSS up %.0f / down %.0f MiB"
            % (label, size_mib, i + 1, up[-1], down[-1], up_rss[-1], down_rss[-1]))
    os.unlink(src)
    os.unlink(out)
    return {"up": up, "down": down, "up_rss": up_rss, "down_rss": down_rss}


def big_upload(client, workdir, size_mib, label):
    url = "http://127.0.0.1:%d" % client.web_port
    pid = client.proc.pid
    src = os.path.join(workdir, "big.bin")
    write_random(src, size_mib * MiB)
    base = read_status(pid, "VmRSS")
    reset_hwm(pid)
    body, code, secs = curl(["-T", src, "-X", "PUT", url + "/uri"], "%s upload %d MiB" % (label, size_mib))
    H.check(code in (200, 201) and body.strip().startswith("URI:CHK:"), "%s: big PUT gave %d" % (label, code))
    peak = read_status(pid, "VmHWM")
    os.unlink(src)
    log("  %-16s %4d MiB upload: %.1f MiB/s, client RSS before %.0f MiB, peak %.0f MiB"
        % (label, size_mib, size_mib / secs, base, peak))
    return {"mib_s": size_mib / secs, "rss_before": base, "peak_rss": peak}


def set_force_foolscap(node_dir, on):
    cfg = os.path.join(node_dir, "tahoe.cfg")
    lines = [l for l in open(cfg).read().splitlines() if not l.strip().replace(" ", "").startswith("force_foolscap=")]
    out = []
    for l in lines:
        out.append(l)
        if l.strip() == "[client]" and on:
            out.append("force_foolscap = true")
    open(cfg, "w").write("\n".join(out) + "\n")


def med(xs):
    return statistics.median(xs)


def fmt(xs):
    return "%.1f (%.1f..%.1f)" % (med(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cairn", required=True)
    ap.add_argument("--sizes", default="1,10,100")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--servers", type=int, default=10)
    ap.add_argument("--tahoe-modes", default="https,foolscap", help="comma list of https,foolscap; empty = skip Tahoe")
    ap.add_argument("--big-mib", type=int, default=1024, help="cairn-only big upload for peak memory (0 = skip)")
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",") if s]
    modes = [m for m in a.tahoe_modes.split(",") if m]
    workdir = a.workdir or tempfile.mkdtemp(prefix="cairn-bench-")
    os.makedirs(workdir, exist_ok=True)
    h = H.Harness(workdir, os.path.abspath(a.cairn))
    h.shares = (3, 7, 10)
    results = {"machine": {"nproc": os.cpu_count()}, "sizes": sizes, "runs": a.runs, "grids": {}}
    ok = False
    try:
        grids = []
        if modes:
            servers = [h.new_storage("tahoe", "tahoe-s%d" % i) for i in range(a.servers)]
            t0 = time.monotonic()
            tg = h.build_grid("tahoe", servers)
            log("Tahoe grid (%d servers + client) up in %.1fs" % (a.servers, time.monotonic() - t0))
            for m in modes:
                if m == "foolscap":
                    tg.client.stop()
                    set_force_foolscap(tg.client.dir, True)
                    tg.client.start()
                    tg.client.wait_web()
                    tg.client.wait_connected()
                grids.append(("tahoe-" + m, tg.client))
                results["grids"]["tahoe-" + m] = {}
                for s in sizes:
                    results["grids"]["tahoe-" + m][s] = measure(tg.client, workdir, s, a.runs, "tahoe-" + m)
            for n in tg.nodes():
                n.stop()
        servers = [h.new_storage("cairn", "cairn-s%d" % i) for i in range(a.servers)]
        t0 = time.monotonic()
        cg = h.build_grid("cairn", servers, client_kind="cairn")
        log("cairn grid (%d servers + client) up in %.1fs" % (a.servers, time.monotonic() - t0))
        results["grids"]["cairn"] = {}
        for s in sizes:
            results["grids"]["cairn"][s] = measure(cg.client, workdir, s, a.runs, "cairn")
        if a.big_mib:
            results["cairn_big_upload"] = big_upload(cg.client, workdir, a.big_mib, "cairn")
        ok = True
    finally:
        h.procs.stop_all()
        if ok and not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            log("node directories and logs kept in %s" % workdir)

    log("")
    log("MiB/s, median of %d runs (min..max); ratio = cairn / best Tahoe mode" % a.runs)
    names = list(results["grids"])
    log("| size | op | " + " | ".join(names) + " | ratio |")
    log("|---|---|" + "---|" * len(names) + "---|")
    for s in sizes:
        for op in ("up", "down"):
            cells = [fmt(results["grids"][n][s][op]) for n in names]
            tahoe_best = max([med(results["grids"][n][s][op]) for n in names if n.startswith("tahoe")] or [float("nan")])
            ratio = med(results["grids"]["cairn"][s][op]) / tahoe_best
            ratio_s = "-" if ratio != ratio else "%.1fx" % ratio  # nan: no Tahoe run
            log("| %d MiB | %s | %s | %s |" % (s, {"up": "upload", "down": "download"}[op], " | ".join(cells), ratio_s))
    log("")
    log("client peak RSS (MiB, median): " + "; ".join(
        "%s %d MiB up %.0f / down %.0f" % (n, s, med(results["grids"][n][s]["up_rss"]), med(results["grids"][n][s]["down_rss"]))
        for n in names for s in sizes))
    if "cairn_big_upload" in results:
        b = results["cairn_big_upload"]
        log("cairn client, %d MiB upload: %.1f MiB/s, peak RSS %.0f MiB (before: %.0f MiB)"
            % (a.big_mib, b["mib_s"], b["peak_rss"], b["rss_before"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

"""Mutable files, side by side: a 10-server Tahoe-LAFS 1.20 grid and a 10-server cairn grid
on this machine, each node its own process, both 3-of-10 with happy 7.

Run it through bench/mutable/run.sh (builds cairn, sets up the Tahoe venv).  Directly:

    <tahoe venv>/bin/python bench/mutable/run.py --cairn target/release/cairn [--runs 20]
        [--big-runs 5] [--tahoe-modes https,foolscap] [--create-gap 1.0] [--burst 20]
        [--json OUT] [--workdir DIR] [--keep]

Grids are built by tests/interop/harness.py as in bench/grid/run.py (whose helpers this
imports): Tahoe's client first over the HTTPS storage protocol, then restarted with
`force_foolscap = true`; then the Tahoe grid is stopped and a cairn grid (cairn storage
nodes, cairn client) started.  Operations, all through the client's web gateway with curl:

  create       `PUT /uri?format=SDMF|MDMF`, 1 KiB of fresh random data
  overwrite    `PUT /uri/$WRITECAP`, a fresh 1 KiB, on a 1 KiB file
  read         `GET /uri/$WRITECAP` of a 1 KiB file
  read 10 MiB  `GET` of a 10 MiB MDMF file (also MiB/s)
  modify 4 KiB `PUT /uri/$WRITECAP?offset=N`, 4 KiB into the middle of that file (N from
               5 MiB + 1000, 8 KiB further each run: inside one 128 KiB segment)
  burst        --burst creates (SDMF) back to back, no pause

Latency = curl's `time_total` (a new TCP connection per request, as the Tahoe baseline in
/work/shared/tahoe-baseline.md measured it), same for every grid; median of --runs (small
operations) or --big-runs (10 MiB operations), min and max beside.  Every result is checked:
a create or overwrite is read back and compared, every read is compared with what was
written, and after the modify runs the whole 10 MiB file is read back once (untimed) and its
SHA-256 compared with the expected bytes.  Creates are --create-gap seconds apart: cairn takes
each new file's RSA key from a pool filled in the background (one generator thread, about
0.2-0.5 s a key on this machine), Tahoe generates it during the request; the burst row shows
what happens when creates come faster than keys are made.  Before each series every node
process of the grid is left to go idle (each under 10% of a core for 0.5 s): a new cairn
grid is busy for half a minute, as every cairn node with a web port (`cairn create-node`
gives storage nodes one too) first fills its key pool.

Round trips = requests that reached (or, for cairn, were sent to) the storage servers
during one operation, measured on one separate, untimed run of each operation (0.3 s after
the answer, so stragglers are in):
  * Tahoe: counted at the 10 storage servers.  Each is started with a web port (this
    benchmark only) and through tahoe_counting_launcher.py, which counts every HTTPS storage
    protocol request (`storage_server.http.METHOD.KIND` in `/statistics?t=json`).  The sum
    of the changes over the 10 servers, background `version` polls left out, is the
    HTTPS figure.  Over Foolscap the figure is the change of Tahoe's own operation
    counters (`storage_server.readv`, `.writev`, `.allocate`, `.write`, `.close`, `.read`,
    `.get`, `.add-lease`, `.renew`), one per remote call.  Counters, not the latency samples
    (`add_latency`), because those keep only the last 1000 per kind.
  * cairn: the client counts the HTTP requests it sends (cairn_client::mutable::RoundTrips)
    and the gateway shows the running totals at `/statistics?t=json`
    (`cairn.mutable.round_trips.*`) and each write's own count in `X-Cairn-Round-Trips`;
    the figure is the change of the totals, checked against the header on writes.  cairn's
    storage servers do not count requests.
"""

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("grid_bench", os.path.join(HERE, "..", "grid", "run.py"))
G = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(G)  # puts tests/interop on sys.path and imports the harness
H = G.H
log = G.log

KiB = 1024
MiB = 1 << 20
COUNTING_LAUNCHER = os.path.join(HERE, "tahoe_counting_launcher.py")
FOOLSCAP_OPS = ("readv", "writev", "allocate", "write", "close", "read", "get", "add-lease", "renew", "abort")


class CountingTahoeStorage(H.TahoeStorageNode):
    """A Tahoe storage node with a web port on 127.0.0.1 (for `/statistics?t=json`), run by
    tahoe_counting_launcher.py.  The interop tests' nodes keep `--webport=none`."""

    def __init__(self, h, name, node_dir, port):
        H.TahoeStorageNode.__init__(self, h, name, node_dir, port)
        self.web_port = h.ports.take()

    def after_create(self):
        H.TahoeStorageNode.after_create(self)
        cfg = os.path.join(self.dir, "tahoe.cfg")
        text = open(cfg).read()
        text, n = re.subn(r"(?m)^web\.port\s*=.*$", "web.port = tcp:%d:interface=%s" % (self.web_port, H.LOOPBACK), text)
        H.check(n == 1, "%s: no web.port line in tahoe.cfg" % self.label)
        open(cfg, "w").write(text)

    def start(self):
        H.check(H.port_is_free(self.port), "port %d for %s is already in use" % (self.port, self.label))
        self.proc = self.h.procs.start(self.name, [H.VENV_PY, COUNTING_LAUNCHER, self.dir], self.logfile,
                                       cwd=self.dir, marker=self.dir)

    def wait_ready(self, timeout=60):
        H.TahoeStorageNode.wait_ready(self, timeout)
        H.wait_until("web port of %s" % self.label, lambda: H.port_accepts(self.web_port), timeout,
                     alive=self.alive_check)

    def counters(self):
        return get_json(self.web_port, "/statistics?t=json")["counters"]


def get_json(port, path):
    with urllib.request.urlopen("http://%s:%d%s" % (H.LOOPBACK, port, path), timeout=30) as r:
        return json.loads(r.read())


# ------------------------------------------------------------------------------------------
# round-trip counters

class TahoeCounter:
    def __init__(self, servers, mode):
        self.servers, self.mode = servers, mode

    def snapshot(self):
        total = {}
        for s in self.servers:
            for k, v in s.counters().items():
                if k.startswith("storage_server.") and isinstance(v, (int, float)):
                    total[k] = total.get(k, 0) + v
        return total

    def delta(self, before, after):
        d = {k[len("storage_server."):]: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
        d = {k: v for k, v in d.items() if v and k != "bytes_added"}
        if self.mode == "https":
            parts = {k[len("http."):]: v for k, v in d.items() if k.startswith("http.") and not k.endswith(".version")}
            short = {}
            for k, v in parts.items():  # GET.mutable-list -> list, POST.mutable-rtw -> rtw
                name = k.split(".", 1)[1].replace("mutable-", "")
                short[name] = short.get(name, 0) + v
        else:
            short = {k: v for k, v in d.items() if k in FOOLSCAP_OPS}
        return {"total": sum(short.values()), "by_kind": dict(sorted(short.items())), "raw": dict(sorted(d.items()))}


class CairnCounter:
    def __init__(self, client):
        self.client = client

    def snapshot(self):
        c = get_json(self.client.web_port, "/statistics?t=json")["counters"]
        return {k: c["cairn.mutable.round_trips." + k] for k in ("servermap", "read", "write")}

    def delta(self, before, after):
        d = {k: after[k] - before[k] for k in after}
        return {"total": sum(d.values()), "by_kind": d, "raw": d}


# ------------------------------------------------------------------------------------------
# requests

class Gateway:
    def __init__(self, label, client, servers, counter, workdir):
        self.label, self.client, self.counter = label, client, counter
        self.nodes = [client] + list(servers)
        self.url = "http://%s:%d" % (H.LOOPBACK, client.web_port)
        self.workdir = workdir
        self.hdr = os.path.join(workdir, "headers.txt")
        self.src = os.path.join(workdir, "body.bin")
        self.out = os.path.join(workdir, "out.bin")

    def _curl(self, args, what):
        cmd = ["-H", "Expect:", "-D", self.hdr] + args
        try:
            body, code, secs = G.curl(cmd, "%s %s" % (self.label, what))
        except H.TestFailure as e:
            H.fail("%s\n  command: curl %s\n  response headers: %s" % (e, " ".join(cmd), self.headers_text()))
        return body, code, secs

    def headers_text(self):
        try:
            return open(self.hdr, errors="replace").read().strip().replace("\r\n", " | ")
        except OSError:
            return "(none)"

    def round_trip_header(self):
        m = re.search(r"(?im)^x-cairn-round-trips:\s*(.+?)\s*$", open(self.hdr, errors="replace").read())
        return m.group(1) if m else None

    def put(self, path, data, what):
        with open(self.src, "wb") as f:
            f.write(data)
        body, code, secs = self._curl(["-X", "PUT", "--data-binary", "@" + self.src, self.url + path], what)
        H.check(code == 200, "%s %s: HTTP %d %r (command: PUT %s)" % (self.label, what, code, body[:300], path))
        return body.strip(), secs

    def create(self, fmt, data):
        cap, secs = self.put("/uri?format=" + fmt, data, "create %s %d bytes" % (fmt, len(data)))
        prefix = {"SDMF": "URI:SSK:", "MDMF": "URI:MDMF:"}[fmt]
        H.check(cap.startswith(prefix), "%s: PUT /uri?format=%s gave %r, not a %s cap" % (self.label, fmt, cap[:200], prefix))
        return cap, secs

    def overwrite(self, cap, data, offset=None):
        q = "" if offset is None else "?offset=%d" % offset
        what = "%s of %s (%d bytes)" % ("overwrite" if offset is None else "offset=%d change" % offset, H.short(cap), len(data))
        body, secs = self.put("/uri/" + H.quote_cap(cap) + q, data, what)
        H.check(body == cap, "%s %s: answer %r is not the write cap" % (self.label, what, body[:200]))
        return secs

    def get(self, cap, want_sha, size):
        _, code, secs = self._curl(["-o", self.out, self.url + "/uri/" + H.quote_cap(cap)], "GET %s" % H.short(cap))
        H.check(code == 200, "%s GET %s: HTTP %d" % (self.label, H.short(cap), code))
        got_size = os.path.getsize(self.out)
        got = G.sha256_file(self.out)
        H.check(got == want_sha, "%s GET %s: content differs from what was written (%d bytes, expected %d; "
                                 "sha256 %s, expected %s)" % (self.label, H.short(cap), got_size, size, got, want_sha))
        return secs

    def verify(self, cap, data):
        self.get(cap, hashlib.sha256(data).hexdigest(), len(data))

    def counted(self, fn):
        """Run fn() once; the storage-server requests it caused, and X-Cairn-Round-Trips."""
        before = self.counter.snapshot()
        fn()
        header = self.round_trip_header()
        time.sleep(0.3)
        trips = self.counter.delta(before, self.counter.snapshot())
        if header is not None:
            trips["header"] = header
            h_total = int(header.split()[0])
            if "servermap=" in header and "write=" in header and h_total != trips["total"]:
                log("  WARNING %s: X-Cairn-Round-Trips %r but /statistics counted %d" % (self.label, header, trips["total"]))
                trips["header_mismatch"] = True
        return trips


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(nodes, what, limit=0.10, timeout=120):
    """Wait until every node process used under `limit` of a core for 0.5 s.  A fresh
    cairn node with a web port fills its RSA key pool (8 keys) first, and `cairn
    create-node` gives storage nodes a web port too, so a new cairn grid is busy for a while."""
    t0 = time.monotonic()
    pids = [n.proc.pid for n in nodes]
    while time.monotonic() - t0 < timeout:
        c0 = [cpu_seconds(p) for p in pids]
        time.sleep(0.5)
        if all((cpu_seconds(p) - c) / 0.5 < limit for p, c in zip(pids, c0)):
            return time.monotonic() - t0
    log("  (%s: some node still busy after %ds; going on)" % (what, timeout))
    return timeout


def summary(samples_ms, **extra):
    d = {"samples_ms": [round(x, 3) for x in samples_ms], "median_ms": statistics.median(samples_ms),
         "min_ms": min(samples_ms), "max_ms": max(samples_ms)}
    d.update(extra)
    return d


# ------------------------------------------------------------------------------------------
# the operations

def bench(gw, a):
    res = {}
    ms = lambda secs: secs * 1000.0  # noqa: E731
    idle = lambda: wait_idle(gw.nodes, gw.label)  # noqa: E731

    log("  %-15s every node idle after %.1f s" % (gw.label, idle()))
    for fmt in ("SDMF", "MDMF"):  # warm-up: connections, code paths
        d = os.urandom(KiB)
        cap, _ = gw.create(fmt, d)
        gw.verify(cap, d)

    for fmt in ("SDMF", "MDMF"):
        idle()
        xs = []
        for _ in range(a.runs):
            time.sleep(a.create_gap)
            d = os.urandom(KiB)
            cap, secs = gw.create(fmt, d)
            gw.verify(cap, d)
            xs.append(ms(secs))
        time.sleep(a.create_gap)
        d = os.urandom(KiB)
        trips = gw.counted(lambda: gw.create(fmt, d))
        res["create " + fmt] = summary(xs, round_trips=trips)
        log("  %-15s create %s 1 KiB: median %.1f ms (%.1f..%.1f), round trips %s"
            % (gw.label, fmt, statistics.median(xs), min(xs), max(xs), trips["total"]))

    for fmt in ("SDMF", "MDMF"):
        d = os.urandom(KiB)
        cap, _ = gw.create(fmt, d)
        idle()
        xs = []
        for _ in range(a.runs):
            d = os.urandom(KiB)
            xs.append(ms(gw.overwrite(cap, d)))
            gw.verify(cap, d)
        d = os.urandom(KiB)
        trips = gw.counted(lambda: gw.overwrite(cap, d))
        gw.verify(cap, d)
        res["overwrite " + fmt] = summary(xs, round_trips=trips)
        log("  %-15s overwrite %s 1 KiB: median %.1f ms (%.1f..%.1f), round trips %s"
            % (gw.label, fmt, statistics.median(xs), min(xs), max(xs), trips["total"]))

    for fmt in ("SDMF", "MDMF"):
        d = os.urandom(KiB)
        cap, _ = gw.create(fmt, d)
        sha = hashlib.sha256(d).hexdigest()
        idle()
        xs = [ms(gw.get(cap, sha, KiB)) for _ in range(a.runs)]
        trips = gw.counted(lambda: gw.get(cap, sha, KiB))
        res["read " + fmt] = summary(xs, round_trips=trips)
        log("  %-15s read %s 1 KiB: median %.1f ms (%.1f..%.1f), round trips %s"
            % (gw.label, fmt, statistics.median(xs), min(xs), max(xs), trips["total"]))

    big = bytearray(os.urandom(10 * MiB))
    idle()
    holder = {}

    def create_big():
        holder["cap"], holder["secs"] = gw.create("MDMF", bytes(big))

    trips = gw.counted(create_big)
    cap = holder["cap"]
    res["create MDMF 10 MiB (1 run)"] = summary([ms(holder["secs"])], round_trips=trips)
    log("  %-15s create MDMF 10 MiB: %.0f ms, round trips %s" % (gw.label, ms(holder["secs"]), trips["total"]))
    sha = hashlib.sha256(big).hexdigest()
    idle()
    xs = [ms(gw.get(cap, sha, len(big))) for _ in range(a.big_runs)]
    trips = gw.counted(lambda: gw.get(cap, sha, len(big)))
    res["read MDMF 10 MiB"] = summary(xs, round_trips=trips, mib_s=[10 * 1000.0 / x for x in xs])
    log("  %-15s read MDMF 10 MiB: median %.0f ms = %.1f MiB/s, round trips %s"
        % (gw.label, statistics.median(xs), 10 * 1000.0 / statistics.median(xs), trips["total"]))

    idle()
    xs = []
    for i in range(a.big_runs + 1):
        off = 5 * MiB + 1000 + i * 8 * KiB
        d = os.urandom(4 * KiB)
        if i < a.big_runs:
            xs.append(ms(gw.overwrite(cap, d, offset=off)))
        else:
            trips = gw.counted(lambda: gw.overwrite(cap, d, offset=off))
        big[off:off + len(d)] = d
    gw.get(cap, hashlib.sha256(big).hexdigest(), len(big))  # once, after every change
    res["modify MDMF 10 MiB, 4 KiB at offset"] = summary(xs, round_trips=trips)
    log("  %-15s modify 4 KiB of MDMF 10 MiB: median %.1f ms (%.1f..%.1f), round trips %s; content verified"
        % (gw.label, statistics.median(xs), min(xs), max(xs), trips["total"]))

    if a.burst:
        idle()
        xs, datas = [], []
        for _ in range(a.burst):
            d = os.urandom(KiB)
            cap, secs = gw.create("SDMF", d)
            datas.append((cap, d))
            xs.append(ms(secs))
        for cap, d in datas:
            gw.verify(cap, d)
        res["create SDMF, %d back to back" % a.burst] = summary(xs)
        log("  %-15s %d SDMF creates back to back: median %.1f ms (%.1f..%.1f)"
            % (gw.label, a.burst, statistics.median(xs), min(xs), max(xs)))
    return res


# ------------------------------------------------------------------------------------------

TARGETS = (("create SDMF", 5.0), ("create MDMF", 5.0), ("overwrite SDMF", 3.0), ("overwrite MDMF", 3.0))


def report(results, runs, big_runs):
    grids = results["grids"]
    names = list(grids)
    tahoe = [n for n in names if n.startswith("tahoe")]
    ops = []
    for n in names:
        for op in grids[n]:
            if op not in ops:
                ops.append(op)
    lines = ["Latency in ms, median (min..max) of %d runs (%d for the 10 MiB operations); "
             "ratio = the faster Tahoe mode's median / cairn's; round trips = storage-server "
             "requests of one operation." % (runs, big_runs), ""]
    lines.append("| operation | " + " | ".join("%s ms" % n for n in names) + " | ratio | "
                 + " | ".join("%s round trips" % n for n in names) + " |")
    lines.append("|---|" + "---|" * (2 * len(names) + 1))
    ratios = {}
    for op in ops:
        cells, trips = [], []
        for n in names:
            r = grids[n].get(op)
            if r is None:
                cells.append("-")
                trips.append("-")
                continue
            cell = "%.1f (%.1f..%.1f)" % (r["median_ms"], r["min_ms"], r["max_ms"]) if len(r["samples_ms"]) > 1 \
                else "%.1f" % r["median_ms"]
            if "mib_s" in r:
                cell += " = %.1f MiB/s" % statistics.median(r["mib_s"])
            cells.append(cell)
            trips.append(str(r["round_trips"]["total"]) if "round_trips" in r else "-")
        best = min([grids[n][op]["median_ms"] for n in tahoe if op in grids[n]] or [float("nan")])
        ratio = best / grids["cairn"][op]["median_ms"] if "cairn" in grids and op in grids["cairn"] else float("nan")
        ratios[op] = ratio
        lines.append("| %s | %s | %s | %s |" % (op, " | ".join(cells), "-" if ratio != ratio else "%.1fx" % ratio,
                                               " | ".join(trips)))
    lines += ["", "Round trips by kind (Tahoe HTTPS: HTTP requests by kind; Foolscap: remote calls; "
              "cairn: requests of its servermap update, retrieve reads, writes):", ""]
    lines.append("| operation | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for op in ops:
        cells = []
        for n in names:
            r = grids[n].get(op, {}).get("round_trips")
            cells.append("-" if r is None else ", ".join("%s %d" % kv for kv in r["by_kind"].items() if kv[1]) or "0")
        lines.append("| %s | %s |" % (op, " | ".join(cells)))
    if "cairn" in grids:
        lines += ["", "Targets (cairn, medians):", ""]
        for op, limit in TARGETS:
            if op in grids["cairn"]:
                m = grids["cairn"][op]["median_ms"]
                r = ratios.get(op, float("nan"))
                vs = "no Tahoe run" if r != r else "%.1fx the faster Tahoe (target >= 15x: %s)" % (
                    r, "met" if r >= 15 else "NOT met")
                lines.append("- %s: %.2f ms (target < %.0f ms: %s); %s"
                             % (op, m, limit, "met" if m < limit else "NOT met", vs))
    return "\n".join(lines)


def git_state():
    """The commit the cairn binary was built from, and the files changed on top of it."""
    root = os.path.join(HERE, "..", "..")
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
    except OSError:
        return None
    return {"head": head, "changed": [l[3:] for l in dirty.splitlines()]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cairn", required=True)
    ap.add_argument("--runs", type=int, default=20, help="runs of each 1 KiB operation")
    ap.add_argument("--big-runs", type=int, default=5, help="runs of each 10 MiB operation")
    ap.add_argument("--servers", type=int, default=10)
    ap.add_argument("--tahoe-modes", default="https,foolscap", help="comma list of https,foolscap; empty = skip Tahoe")
    ap.add_argument("--create-gap", type=float, default=1.0, help="seconds between timed creates")
    ap.add_argument("--burst", type=int, default=20, help="SDMF creates back to back (0 = skip)")
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    modes = [m for m in a.tahoe_modes.split(",") if m]
    workdir = a.workdir or tempfile.mkdtemp(prefix="cairn-bench-mutable-")
    os.makedirs(workdir, exist_ok=True)
    h = H.Harness(workdir, os.path.abspath(a.cairn))
    h.shares = (3, 7, 10)
    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": {
        "nproc": os.cpu_count(), "platform": platform.platform(), "loadavg_start": os.getloadavg()},
        "args": vars(a), "git": git_state(), "grids": {}}
    ok = False
    try:
        if modes:
            servers = []
            for i in range(a.servers):
                name = "tahoe-s%d" % i
                servers.append(CountingTahoeStorage(h, name, h.node_dir(name), h.ports.take()))
            t0 = time.monotonic()
            tg = h.build_grid("tahoe", servers)
            log("Tahoe grid (%d servers with web ports + client) up in %.1fs" % (a.servers, time.monotonic() - t0))
            for m in modes:
                if m == "foolscap":
                    tg.client.stop()
                    G.set_force_foolscap(tg.client.dir, True)
                    tg.client.start()
                    tg.client.wait_web()
                    tg.client.wait_connected()
                label = "tahoe-" + m
                gw = Gateway(label, tg.client, servers, TahoeCounter(servers, m), workdir)
                results["grids"][label] = bench(gw, a)
            for n in tg.nodes():
                n.stop()
        servers = [h.new_storage("cairn", "cairn-s%d" % i) for i in range(a.servers)]
        t0 = time.monotonic()
        cg = h.build_grid("cairn", servers, client_kind="cairn")
        log("cairn grid (%d servers + client) up in %.1fs" % (a.servers, time.monotonic() - t0))
        gw = Gateway("cairn", cg.client, servers, CairnCounter(cg.client), workdir)
        results["grids"]["cairn"] = bench(gw, a)
        ok = True
    finally:
        h.procs.stop_all()
        if ok and not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            log("node directories and logs kept in %s" % workdir)
    results["machine"]["loadavg_end"] = os.getloadavg()
    log("")
    text = report(results, a.runs, a.big_runs)
    log(text)
    results["report_markdown"] = text
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

"""One storage server under load, and one cairn storage server beside one Tahoe-LAFS 1.20
storage node, over the same HTTPS storage protocol ("Great Black Swamp"), on this machine.

Run it through bench/storage/run.sh (builds cairn and the load generator, sets up the Tahoe
venv).  Directly:

    <tahoe venv>/bin/python bench/storage/run.py --cairn target/release/cairn \
        --load target/release/examples/storage_load [--quick] [--runs 5] [--json OUT]
        [--workdir DIR] [--keep]

The load generator is crates/cairn-client/examples/storage_load.rs: N concurrent clients,
each its own `cairn_client::gbs_client::GbsClient` (its own pinned TLS connection), each
making M immutable uploads one after the other (one share of S bytes under a fresh storage
index: allocate, then PATCHes of C bytes until the server answers 201), or reading those
shares back in C-byte ranges and comparing every byte.  It prints JSON; nothing is
retried, every failed request counts as an error.  Everything runs on 127.0.0.1; ports are
picked below the kernel's ephemeral range (tests/interop/harness.py `Ports`).

1. Load: a cairn storage node (`cairn create-node --hostname 127.0.0.1 --port P
   --webport none DIR`, run as `cairn run DIR`, its own process), --load-clients clients x
   --load-uploads uploads of --load-share-size bytes in --load-chunk-size PATCHes.  Reports
   uploads, uploads/s, MiB/s, p50/p99 latency per upload, errors, the server's and the
   client's CPU time; then SIGTERM to the server (its exit status and how long it took) and
   `cairn storage audit DIR`, whose verdict must be clean.
2. Side by side: a second cairn node and one Tahoe storage node (`tahoe create-node` as the
   interop harness makes them, `--webport=none`, reserved_space 0; its NURL is built from
   the node directory as Tahoe's client/announcement does, harness.tahoe_announcement), both
   up at once.  For each workload and each of --runs runs, on each server in turn (the
   order alternates from run to run): a write pass with a fresh seed, then a read pass of
   what it wrote, each a separate run of the load generator; the server's CPU time
   (/proc/PID/stat) is read around each pass.  Figures are medians over the runs
   (min..max); ratio = cairn median / Tahoe median.  The cairn node is then stopped and
   audited too.

Exits non-zero if any request failed, a server did not stop cleanly on SIGTERM, or an audit
was not clean.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "interop"))

import harness as H  # noqa: E402

KiB = 1024
MiB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")

# (name, clients, uploads per client, share size, chunk size) of the side-by-side workloads
WORKLOADS = {
    "full": [("64KiB-x50", 50, 20, 64 * KiB, 16 * KiB), ("1MiB-x8", 8, 32, MiB, 256 * KiB)],
    "quick": [("64KiB-x50", 50, 4, 64 * KiB, 16 * KiB), ("1MiB-x8", 8, 4, MiB, 256 * KiB)],
}


def log(msg):
    print(msg, flush=True)


class CairnStorage(H.CairnStorageNode):
    """A cairn storage node without a web gateway (Tahoe's is made with --webport=none too)."""

    def create_args(self):
        return [self.h.cairn_bin(), "create-node", "--hostname", H.LOOPBACK, "--port", str(self.port),
                "--webport", "none", self.dir]


def cpu_seconds(pid):
    """utime + stime of a process (and its reaped children, none here), seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def nurl_of(node):
    _, ann = node.announcement()
    nurls = ann["anonymous-storage-NURLs"]
    H.check(nurls and H.nurl_port(ann) == node.port,
            "%s announces %r, expected a NURL on 127.0.0.1:%d" % (node.label, nurls, node.port))
    return nurls[0]


def run_load(load_bin, nurl, server, clients, uploads, share_size, chunk_size, phase, seed, threads, what):
    """One run of the load generator; returns its JSON with the server's CPU seconds added."""
    args = [load_bin, "--nurl", nurl, "--clients", str(clients), "--uploads", str(uploads),
            "--share-size", str(share_size), "--chunk-size", str(chunk_size), "--" + phase,
            "--seed", str(seed), "--threads", str(threads)]
    server.alive_check()
    cpu0 = cpu_seconds(server.proc.pid)
    try:
        r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=600)
    except subprocess.TimeoutExpired:
        H.fail("%s: load generator timed out after 600 s: %s" % (what, " ".join(args)))
    cpu1 = cpu_seconds(server.proc.pid)
    err = r.stderr.decode("utf-8", "replace")
    if r.returncode not in (0, 1):  # 1 = ran, with errors (reported below)
        H.fail("%s: load generator exit %d: %s\n%s" % (what, r.returncode, " ".join(args), err[-3000:]))
    try:
        out = json.loads(r.stdout)
    except ValueError:
        H.fail("%s: load generator printed no JSON (exit %d): %r\n%s" % (what, r.returncode, r.stdout[-500:], err[-2000:]))
    res = out[phase]
    res["server_cpu_s"] = cpu1 - cpu0
    res["connections_opened"] = out["connections_opened"]
    if res["errors"]:
        log("  %s: %d errors, e.g.:\n    %s" % (what, res["errors"], "\n    ".join(res["error_samples"][:5])))
    return res


def stop_and_audit(h, node):
    """SIGTERM the cairn node; then `cairn storage audit DIR`.  Returns a dict."""
    rc, took = node.stop(timeout=15)
    r = subprocess.run([h.cairn_bin(), "storage", "audit", node.dir], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    out = r.stdout.decode("utf-8", "replace").strip()
    lines = out.splitlines()
    verdict = lines[-1] if lines else "(no output) " + r.stderr.decode("utf-8", "replace")[-500:]
    clean = r.returncode == 0 and " 0 discrepancies;" in verdict
    return {"exit_code_after_sigterm": rc, "seconds_to_exit": took, "audit_exit_code": r.returncode,
            "audit_output": out, "audit_verdict": verdict, "audit_clean": clean}


def med(xs):
    return statistics.median(xs)


def fmt(xs, spec="%.1f"):
    return (spec + " (" + spec + ".." + spec + ")") % (med(xs), min(xs), max(xs))


def load_benchmark(h, a, results):
    node = CairnStorage(h, "cairn-load", h.node_dir("cairn-load"), h.ports.take())
    h.create([node])
    node.start()
    node.wait_ready()
    nurl = nurl_of(node)
    log("load: cairn storage node %s; %d clients x %d uploads of %d bytes (PATCHes of %d bytes)"
        % (node.label, a.load_clients, a.load_uploads, a.load_share_size, a.load_chunk_size))
    res = run_load(a.load, nurl, node, a.load_clients, a.load_uploads, a.load_share_size, a.load_chunk_size,
                   "write", int.from_bytes(os.urandom(4), "big"), a.threads, "load")
    log("  %d uploads (%d HTTP requests) in %.2f s: %.1f uploads/s, %.1f MiB/s, latency p50 %.1f ms, p99 %.1f ms, "
        "errors %d; CPU: server %.2f s, client %.2f s"
        % (res["ops"], res["http_requests"], res["seconds"], res["ops_per_s"], res["mib_per_s"],
           res["latency_ms"]["p50"], res["latency_ms"]["p99"], res["errors"], res["server_cpu_s"],
           res["client_cpu_s"]))
    res["stop"] = stop_and_audit(h, node)
    s = res["stop"]
    log("  SIGTERM: exit %s after %.2f s; audit: %s" % (s["exit_code_after_sigterm"], s["seconds_to_exit"],
                                                      s["audit_verdict"]))
    results["load"] = res


def side_by_side(h, a, results):
    cairn = CairnStorage(h, "cairn-sbs", h.node_dir("cairn-sbs"), h.ports.take())
    tahoe = h.new_storage("tahoe", "tahoe-sbs")
    h.create([cairn, tahoe])
    h.start_servers([cairn, tahoe])
    servers = [("cairn", cairn, nurl_of(cairn)), ("tahoe", tahoe, nurl_of(tahoe))]
    for name, node, nurl in servers:
        log("side by side: %s %s, NURL %s" % (name, node.label, nurl))
    sbs = results["side_by_side"] = {}
    for wname, clients, uploads, size, chunk in WORKLOADS["quick" if a.quick else "full"]:
        w = sbs[wname] = {"clients": clients, "uploads_per_client": uploads, "share_size": size,
                          "chunk_size": chunk, "runs": {"cairn": [], "tahoe": []}}
        log("workload %s: %d clients x %d uploads of %d bytes (PATCHes and reads of %d bytes), %d runs"
            % (wname, clients, uploads, size, chunk, a.runs))
        for i in range(a.runs):
            order = servers if i % 2 == 0 else servers[::-1]
            for name, node, nurl in order:
                seed = int.from_bytes(os.urandom(4), "big")
                what = "%s %s run %d" % (wname, name, i + 1)
                wr = run_load(a.load, nurl, node, clients, uploads, size, chunk, "write", seed, a.threads,
                              what + " write")
                rd = run_load(a.load, nurl, node, clients, uploads, size, chunk, "read", seed, a.threads,
                              what + " read")
                w["runs"][name].append({"seed": seed, "write": wr, "read": rd})
                log("  %-6s run %d: write %7.1f MiB/s (%6.1f up/s, p50 %6.1f ms, p99 %6.1f ms, server CPU %5.2f s)"
                    "  read %7.1f MiB/s (p50 %6.1f ms, server CPU %5.2f s)"
                    % (name, i + 1, wr["mib_per_s"], wr["ops_per_s"], wr["latency_ms"]["p50"],
                       wr["latency_ms"]["p99"], wr["server_cpu_s"], rd["mib_per_s"], rd["latency_ms"]["p50"],
                       rd["server_cpu_s"]))
        summary = w["summary"] = {}
        for op in ("write", "read"):
            m = {n: med([r[op]["mib_per_s"] for r in w["runs"][n]]) for n in ("cairn", "tahoe")}
            summary[op] = {"cairn_mib_s": m["cairn"], "tahoe_mib_s": m["tahoe"], "ratio": m["cairn"] / m["tahoe"]}
    tahoe.stop()
    results["side_by_side_cairn_stop"] = stop_and_audit(h, cairn)
    s = results["side_by_side_cairn_stop"]
    log("side-by-side cairn node: SIGTERM: exit %s after %.2f s; audit: %s"
        % (s["exit_code_after_sigterm"], s["seconds_to_exit"], s["audit_verdict"]))


def report(results, a):
    lines = []
    if "load" in results:
        r = results["load"]
        s = r["stop"]
        lines += [
            "Load: one cairn storage server, %d clients x %d uploads of %d KiB (allocate + %d KiB PATCHes), one run"
            % (a.load_clients, a.load_uploads, a.load_share_size // KiB, a.load_chunk_size // KiB),
            "",
            "| uploads | HTTP requests | seconds | uploads/s | MiB/s | p50 ms | p99 ms | errors | server CPU s | client CPU s | audit after SIGTERM |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            "| %d | %d | %.2f | %.1f | %.1f | %.1f | %.1f | %d | %.2f | %.2f | %s (exit %s in %.2f s) |" % (
                r["ops"], r["http_requests"], r["seconds"], r["ops_per_s"], r["mib_per_s"], r["latency_ms"]["p50"],
                r["latency_ms"]["p99"], r["errors"], r["server_cpu_s"], r["client_cpu_s"],
                "clean" if s["audit_clean"] else "NOT CLEAN", s["exit_code_after_sigterm"], s["seconds_to_exit"]),
            "",
            "audit: `%s`" % s["audit_verdict"],
            "",
        ]
    if "side_by_side" in results:
        lines += [
            "Side by side: one cairn storage server vs one Tahoe-LAFS 1.20 storage node, same client, "
            "MiB/s, median of %d runs (min..max); ratio = cairn / Tahoe" % a.runs,
            "",
            "| workload | op | cairn MiB/s | Tahoe MiB/s | ratio | cairn p50 / p99 ms | Tahoe p50 / p99 ms | CPU s per run, cairn server / Tahoe server / client |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for wname, w in results["side_by_side"].items():
            for op in ("write", "read"):
                rc, rt = w["runs"]["cairn"], w["runs"]["tahoe"]

                def col(runs, key):
                    return [r[op][key] for r in runs]

                def lat(runs):
                    return "%.1f / %.1f" % (med([r[op]["latency_ms"]["p50"] for r in runs]),
                                            med([r[op]["latency_ms"]["p99"] for r in runs]))
                lines.append("| %s (%d x %d x %d KiB, %d KiB requests) | %s | %s | %s | %.1fx | %s | %s | %.2f / %.2f / %.2f |" % (
                    wname, w["clients"], w["uploads_per_client"], w["share_size"] // KiB, w["chunk_size"] // KiB, op,
                    fmt(col(rc, "mib_per_s")), fmt(col(rt, "mib_per_s")), w["summary"][op]["ratio"], lat(rc), lat(rt),
                    med(col(rc, "server_cpu_s")), med(col(rt, "server_cpu_s")),
                    med(col(rc, "client_cpu_s") + col(rt, "client_cpu_s"))))
        s = results.get("side_by_side_cairn_stop")
        if s:
            lines += ["", "side-by-side cairn node after SIGTERM (exit %s in %.2f s): `%s`"
                      % (s["exit_code_after_sigterm"], s["seconds_to_exit"], s["audit_verdict"])]
    return "\n".join(lines)


def problems(results):
    out = []
    if "load" in results:
        r = results["load"]
        if r["errors"]:
            out.append("load: %d errors" % r["errors"])
    for wname, w in results.get("side_by_side", {}).items():
        for name, runs in w["runs"].items():
            for i, run in enumerate(runs):
                for op in ("write", "read"):
                    if run[op]["errors"]:
                        out.append("%s %s run %d %s: %d errors" % (wname, name, i + 1, op, run[op]["errors"]))
    stops = []
    if "load" in results:
        stops.append(("load", results["load"]["stop"]))
    if "side_by_side_cairn_stop" in results:
        stops.append(("side-by-side", results["side_by_side_cairn_stop"]))
    for what, s in stops:
        if not s["audit_clean"]:
            out.append("%s: audit of the cairn node not clean: %s" % (what, s["audit_output"][-2000:]))
        if s["exit_code_after_sigterm"] != 0:
            out.append("%s: cairn exited with %s after SIGTERM" % (what, s["exit_code_after_sigterm"]))
    return out


def git_state():
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
    ap.add_argument("--load", required=True, help="the storage_load example binary")
    ap.add_argument("--quick", action="store_true", help="fewer uploads and 2 runs (about 20 s)")
    ap.add_argument("--runs", type=int, help="side-by-side runs per server and workload (default 5, quick 2)")
    ap.add_argument("--load-clients", type=int, default=50)
    ap.add_argument("--load-uploads", type=int, help="uploads per client (default 40, quick 10)")
    ap.add_argument("--load-share-size", type=int, default=64 * KiB)
    ap.add_argument("--load-chunk-size", type=int, default=16 * KiB)
    ap.add_argument("--threads", type=int, default=2, help="the load generator's Tokio worker threads")
    ap.add_argument("--skip", default="", help="comma list of load,side-by-side to leave out")
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.runs is None:
        a.runs = 2 if a.quick else 5
    if a.load_uploads is None:
        a.load_uploads = 10 if a.quick else 40
    skip = set(s for s in a.skip.split(",") if s)
    a.load = os.path.abspath(a.load)
    workdir = a.workdir or tempfile.mkdtemp(prefix="cairn-bench-storage-")
    os.makedirs(workdir, exist_ok=True)
    h = H.Harness(workdir, os.path.abspath(a.cairn))
    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": {
        "nproc": os.cpu_count(), "platform": platform.platform(), "loadavg_start": os.getloadavg()},
        "args": vars(a), "git": git_state()}
    t0 = time.monotonic()
    ok = False
    try:
        if "load" not in skip:
            load_benchmark(h, a, results)
        if "side-by-side" not in skip:
            side_by_side(h, a, results)
        ok = True
    finally:
        h.procs.stop_all()
        if ok and not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log("node directories and logs kept in %s" % workdir)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["seconds"] = time.monotonic() - t0
    log("")
    text = report(results, a)
    log(text)
    results["report_markdown"] = text
    bad = problems(results)
    results["problems"] = bad
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    log("")
    if bad:
        log("FAILED:\n  " + "\n  ".join(bad))
        sys.exit(1)
    log("OK: no errors, audits clean (%.0f s)" % results["seconds"])


if __name__ == "__main__":
    main()

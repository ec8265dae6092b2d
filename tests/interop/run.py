"""cairn <-> Tahoe-LAFS 1.20 interop suite.

Run it through scripts/interop.sh (builds cairn, sets up the venv).  Directly:

    <tahoe venv>/bin/python tests/interop/run.py --cairn target/release/cairn [-k NAME] [--backends tahoe,cairn]

Each scenario runs once per backend:
  tahoe/...  every storage server is a real Tahoe-LAFS 1.20 node: this is the control that
             proves the harness itself (it must always pass)
  cairn/...  the storage servers under test are cairn nodes (`cairn run`); the clients are
             always real Tahoe-LAFS 1.20 client nodes driven through their web API

Scenarios: immutable, sdmf, mdmf, lease, restart, mixed (2 servers under test + 2 Tahoe
servers), reverse (real Tahoe storage nodes write shares, then the backend serves their
directories), forward (the backend writes shares, then real Tahoe storage nodes serve them)
and client (the cairn grid client node, `cairn run` of a `cairn create-client` directory, next
to a Tahoe client node on the same servers: each downloads what the other uploaded, byte for
byte, with equal caps; ranged reads and `?t=json` compared with Tahoe's), and client_mutable
(the same pair with SDMF and MDMF files: each creates, overwrites and modifies in place what
the other reads, whole and ranged).
The last line printed is `N passed, N failed`.  Node directories and logs stay in the work
directory when anything fails.
"""

import argparse
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as H  # noqa: E402
from harness import TestFailure, assert_same, check, fail, log  # noqa: E402

MiB = 1 << 20
DAY = 86400


class Interrupted(BaseException):
    """The whole suite must stop (signal, suite time limit)."""


class TestTimeout(BaseException):
    """The running test took longer than its limit."""


GRID4 = "grid %s4 (4 %s storage servers + Tahoe client)"
GRID_TAHOE4 = GRID4 % ("tahoe", "tahoe")


# --------------------------------------------------------------------------------------
# fixtures: grids built on first use, shared by the scenarios of one backend
# --------------------------------------------------------------------------------------
class Suite:
    def __init__(self, h):
        self.h = h
        self.cache = {}
        self.touched = []  # grids/nodes used by the running test (for log tails on failure)
        self.current = None  # name of the running test

    def fixture(self, key, build):
        if key not in self.cache:
            t0 = time.monotonic()
            log("setting up %s ..." % key)
            try:
                self.cache[key] = ("ok", build())
                log("%s ready in %.1fs" % (key, time.monotonic() - t0))
            except TestFailure as e:
                self.cache[key] = ("err", self.current, str(e))
                fail("setting up %s failed: %s" % (key, e))
            except BaseException as e:  # time limit, interruption: don't try to build it again
                self.cache[key] = ("err", self.current, "%s: %s" % (type(e).__name__, e))
                raise
        entry = self.cache[key]
        if entry[0] == "err":
            fail("%s could not be set up (details under %s above): %s" % (key, entry[1], entry[2].splitlines()[0]))
        val = entry[1]
        for n in val.nodes():  # a server that died in an earlier test fails this one clearly
            n.alive_check()
        return val

    def grid4(self, kind):
        """4 storage servers of `kind` and a Tahoe client."""
        def build():
            servers = [self.h.new_storage(kind, "%s4-s%d" % (kind, i)) for i in range(4)]
            self.touched.extend(servers)
            g = self.h.build_grid("%s4" % kind, servers)
            self.touched.append(g.client)
            check_loopback_only(g.nodes())
            return g
        g = self.fixture(GRID4 % (kind, kind), build)
        self.touched.extend(g.nodes())
        return g

    def cairn_client(self, kind):
        """A cairn client node over the 4 servers of grid4(kind) (same convergence secret
        as the Tahoe client there)."""
        def build():
            g4 = self.grid4(kind)
            g = self.h.build_grid("cairnclient-%s" % kind, g4.servers, client_name="cairnclient-%s" % kind,
                                  client_kind="cairn")
            self.touched.append(g.client)
            check_loopback_only([g.client])
            return g
        g = self.fixture("cairn client over grid %s4" % kind, build)
        self.touched.extend(g.nodes())
        return g

    def mixed(self, kind):
        """A new Tahoe client over 2 new servers of `kind` + 2 servers of the Tahoe grid."""
        def build():
            tahoe = self.grid4("tahoe").servers[:2]
            own = [self.h.new_storage(kind, "mixed-%s-s%d" % (kind, i)) for i in range(2)]
            self.touched.extend(own)
            g = self.h.build_grid("mixed-%s" % kind, own + tahoe, client_name="mixed-%s-client" % kind)
            self.touched.append(g.client)
            return g
        g = self.fixture("grid mixed-%s (2 %s + 2 tahoe servers, new Tahoe client)" % (kind, kind), build)
        self.touched.extend(g.nodes())
        return g


def check_loopback_only(nodes):
    pids = [n.proc.pid for n in nodes if getattr(n, "proc", None) is not None]
    bad = non_loopback_listeners(pids)
    check(not bad, "listeners not on 127.0.0.1: %s" % ", ".join(bad))


def non_loopback_listeners(pids):
    inodes = {}
    for pid in pids:
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes[link[8:-1]] = pid
        except OSError:
            pass
    bad = []
    for fn, fam in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = open(fn).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, st, inode = parts[1], parts[3], parts[9]
            if st != "0A" or inode not in inodes:  # 0A = LISTEN
                continue
            addr, port = local.split(":")
            raw = bytes.fromhex(addr)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            ip = socket.inet_ntop(fam, raw)
            if ip not in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
                bad.append("pid %d on %s:%d" % (inodes[inode], ip, int(port, 16)))
    return bad


# --------------------------------------------------------------------------------------
# helpers used by the scenarios
# --------------------------------------------------------------------------------------
def timed(what, fn, *a, **kw):
    t0 = time.monotonic()
    r = fn(*a, **kw)
    log("%s (%.2fs)" % (what, time.monotonic() - t0))
    return r


def storage_index(client, cap):
    """Base32 storage index of a file cap (Tahoe's own derivation, allmydata.uri)."""
    from allmydata import uri
    from allmydata.storage.common import si_b2a
    si = si_b2a(uri.from_string(cap).get_storage_index()).decode()
    check(len(si) == 26, "storage index of %s: %r" % (H.short(cap), si))
    return si


def check_shares_on(servers, si, what, mutable, expect_total=H.SHARES_TOTAL):
    """Every server holds at least one finished share of `si`, the container format is
    Tahoe's, and the total is `expect_total`.  Returns {node name: {shnum: path}}."""
    layout = {s.name: s.shares(si) for s in servers}
    desc = ", ".join("%s:%s" % (n, sorted(v)) for n, v in layout.items())
    empty = [s.label for s in servers if not layout[s.name]]
    check(not empty, "%s (SI %s): no share under storage/shares/ on %s; layout %s" % (what, si, ", ".join(empty), desc))
    total = sum(len(v) for v in layout.values())
    check(total >= expect_total, "%s: %d shares on disk, expected %d; layout %s" % (what, total, expect_total, desc))
    for s in servers:
        for shnum, path in layout[s.name].items():
            with open(path, "rb") as f:
                head = f.read(32)
            is_mut = head.startswith(H.MUTABLE_MAGIC_PREFIX)
            check(is_mut == mutable, "%s: share %s on %s is %s a mutable container (first bytes %r)"
                  % (what, shnum, s.label, "" if is_mut else "not", head[:32]))
            try:
                leases = H.read_leases(path)
            except ValueError as e:
                fail("%s: share %d on %s is not a Tahoe container: %s" % (what, shnum, s.label, e))
            check(leases, "%s: share %d on %s has no lease" % (what, shnum, s.label))
    log("%s: shares on disk %s" % (what, desc))
    return layout


def round_trip(client, data, fmt, label):
    cap = timed("upload %s, %d bytes" % (label, len(data)), client.upload, data, fmt)
    got = timed("download %s" % label, client.download, cap)
    assert_same(got, data, "download of %s" % label)
    return cap


def check_ranged(client, cap, data, lo, hi, label):
    got = client.download(cap, rng=(lo, hi))
    assert_same(got, data[lo:hi + 1], "%s Range bytes=%d-%d" % (label, lo, hi))
    log("%s: Range bytes=%d-%d -> 206, %d bytes ok" % (label, lo, hi, len(got)))


def check_healthy(res, what, expect_good=H.SHARES_TOTAL):
    r = res.get("results", {})
    good = r.get("count-shares-good")
    check(r.get("healthy") is True and good == expect_good,
          "%s: check says healthy=%s count-shares-good=%s (expected %d): %s"
          % (what, r.get("healthy"), good, expect_good, res.get("summary") or r.get("summary")))


# --------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------
def t_immutable(suite, kind):
    g = suite.grid4(kind)
    c = g.client
    # LIT: small enough to live in the cap, no shares
    lit = os.urandom(40)
    cap = round_trip(c, lit, None, "LIT file")
    check(cap.startswith("URI:LIT:"), "40-byte upload gave %s, expected a URI:LIT: cap" % cap)
    for label, size in (("1 MiB file", MiB), ("multi-segment 3 MiB+12345 file", 3 * MiB + 12345)):
        data = os.urandom(size)
        cap = round_trip(c, data, None, label)
        check(cap.startswith("URI:CHK:"), "%s: got %s, expected URI:CHK:" % (label, H.short(cap)))
        si = storage_index(c, cap)
        check_shares_on(g.servers, si, label, mutable=False)
        check_ranged(c, cap, data, 131000, 400000, label)
    if kind != "tahoe":
        compare_with_tahoe_shares(suite, g, data, cap)
    # same content again: convergent encryption gives the same cap, servers report already-have
    cap2 = timed("re-upload of the 3 MiB file (servers already have the shares)", c.upload, data)
    check(cap2 == cap, "re-upload of identical data gave a different cap: %s vs %s" % (H.short(cap2), H.short(cap)))
    assert_same(c.download(cap2), data, "download after re-upload")
    check_healthy(timed("check --verify of the 3 MiB file", c.check_file, cap, verify=True), "verify 3 MiB file")


def compare_with_tahoe_shares(suite, g, data, cap):
    """Upload the same file to the all-Tahoe grid (same convergence secret, so the same
    shares) and compare cairn's share containers with Tahoe's, share by share: same
    container version, same share data bytes (leases differ by nature)."""
    entry = suite.cache.get(GRID_TAHOE4)
    if not entry or entry[0] != "ok":
        log("(no Tahoe control grid in this run: share files not compared with Tahoe's)")
        return
    t = entry[1]
    cap_t = t.client.upload(data)
    check(cap_t == cap, "same file, same convergence secret, different caps: %s vs %s" % (cap_t, cap))
    si = storage_index(g.client, cap)
    mine = {shnum: (s, path) for s in g.servers for shnum, path in s.shares(si).items()}
    theirs = {shnum: (s, path) for s in t.servers for shnum, path in s.shares(si).items()}
    check(sorted(mine) == sorted(theirs), "share numbers differ: %s here, %s on Tahoe" % (sorted(mine), sorted(theirs)))
    for shnum in sorted(mine):
        (s, p), (_, tp) = mine[shnum], theirs[shnum]
        v, d = H.immutable_share_parts(p)
        tv, td = H.immutable_share_parts(tp)
        check(v == tv, "share %d: container version %d on %s, %d on Tahoe" % (shnum, v, s.label, tv))
        assert_same(d, td, "share %d data in %s vs Tahoe's %s" % (shnum, p, tp))
    log("share containers byte-identical to Tahoe's (data part, %d shares, container v%d)" % (len(mine), v))


def t_sdmf(suite, kind):
    g = suite.grid4(kind)
    c = g.client
    v1 = os.urandom(60000)
    cap = round_trip(c, v1, "SDMF", "SDMF v1")
    check(cap.startswith("URI:SSK:"), "SDMF upload gave %s, expected URI:SSK:" % H.short(cap))
    info = c.info(cap)
    check(info.get("format") == "SDMF" and info.get("mutable") is True, "SDMF t=json: %r" % info)
    ro = info.get("ro_uri")
    check(ro and ro.startswith("URI:SSK-RO:"), "SDMF t=json has no SSK-RO readcap: %r" % ro)
    si = storage_index(c, cap)
    check_shares_on(g.servers, si, "SDMF file", mutable=True)
    v2 = os.urandom(90000)
    timed("overwrite SDMF with %d bytes" % len(v2), c.overwrite, cap, v2)
    assert_same(timed("download SDMF v2 (writecap)", c.download, cap), v2, "SDMF v2 via writecap")
    assert_same(timed("download SDMF v2 (readcap)", c.download, ro), v2, "SDMF v2 via readcap")
    v3 = os.urandom(20000)
    timed("overwrite SDMF with a shorter %d bytes" % len(v3), c.overwrite, cap, v3)
    assert_same(c.download(cap), v3, "SDMF v3")
    check_ranged(c, cap, v3, 1000, 15000, "SDMF v3")
    check_healthy(timed("check --verify of the SDMF file", c.check_file, cap, verify=True), "verify SDMF")


def t_mdmf(suite, kind):
    g = suite.grid4(kind)
    c = g.client
    v1 = os.urandom(400000)  # > 3 segments of 128 KiB
    cap = round_trip(c, v1, "MDMF", "MDMF v1")
    check(cap.startswith("URI:MDMF:"), "MDMF upload gave %s, expected URI:MDMF:" % H.short(cap))
    info = c.info(cap)
    check(info.get("format") == "MDMF" and info.get("mutable") is True, "MDMF t=json: %r" % info)
    ro = info.get("ro_uri")
    check(ro and ro.startswith("URI:MDMF-RO:"), "MDMF t=json has no MDMF-RO readcap: %r" % ro)
    si = storage_index(c, cap)
    check_shares_on(g.servers, si, "MDMF file", mutable=True)
    v2 = os.urandom(300000)
    timed("overwrite MDMF with %d bytes" % len(v2), c.overwrite, cap, v2)
    assert_same(timed("download MDMF v2", c.download, cap), v2, "MDMF v2")
    # partial update in the middle, across a segment boundary
    patch = os.urandom(100000)
    off = 100000
    timed("MDMF in-place update: %d bytes at offset %d" % (len(patch), off), c.update, cap, off, patch)
    v3 = v2[:off] + patch + v2[off + len(patch):]
    assert_same(timed("download MDMF v3", c.download, cap), v3, "MDMF after in-place update")
    # append at the end
    tail_ = os.urandom(70000)
    timed("MDMF append: %d bytes at offset %d" % (len(tail_), len(v3)), c.update, cap, len(v3), tail_)
    v4 = v3 + tail_
    assert_same(c.download(cap), v4, "MDMF after append")
    assert_same(timed("download MDMF v4 (readcap)", c.download, ro), v4, "MDMF v4 via readcap")
    check_ranged(c, cap, v4, 130000, 265000, "MDMF v4")
    check_ranged(c, ro, v4, len(v4) - 5000, len(v4) - 1, "MDMF v4 readcap tail")
    check_healthy(timed("check --verify of the MDMF file", c.check_file, cap, verify=True), "verify MDMF")


def cairn_audit(h, nodes, what):
    """`cairn storage audit DIR` must exit 0 and report no discrepancy (lease database vs
    the share files on disk)."""
    import re
    for n in nodes:
        r = H.subprocess.run([h.cairn_bin(), "storage", "audit", n.dir], stdin=H.subprocess.DEVNULL,
                             capture_output=True, timeout=60)
        out = (r.stdout + r.stderr).decode("utf-8", "replace").strip()
        m = re.search(r"(\d+) discrepanc", out)
        check(r.returncode == 0 and not (m and int(m.group(1))),
              "%s: `cairn storage audit %s` exit %d:\n%s" % (what, n.dir, r.returncode, out[-3000:]))
    log("%s: `cairn storage audit` clean on %d nodes (%s)" % (what, len(nodes), out.splitlines()[-1][:120] if out else ""))


def lease_snapshot(servers, si):
    """{(node name, shnum): [expirations]}"""
    snap = {}
    for s in servers:
        for shnum, path in s.shares(si).items():
            try:
                snap[(s.name, shnum)] = sorted(l["expiration"] for l in H.read_leases(path))
            except ValueError as e:
                fail("share %d on %s: %s" % (shnum, s.label, e))
    return snap


def t_lease(suite, kind):
    g = suite.grid4(kind)
    c = g.client
    files = [("immutable", os.urandom(300000), None), ("SDMF", os.urandom(20000), "SDMF"),
             ("MDMF", os.urandom(200000), "MDMF")]
    caps = {}
    before = {}
    for label, data, fmt in files:
        caps[label] = cap = c.upload(data, fmt)
        si = storage_index(c, cap)
        snap = lease_snapshot(g.servers, si)
        check(len(snap) >= H.SHARES_TOTAL, "%s: only %d shares on disk: %s" % (label, len(snap), sorted(snap)))
        now = time.time()
        for k, exps in snap.items():
            check(exps, "%s share %s has no lease after upload" % (label, k))
            check(now + 30 * DAY < max(exps) <= now + 32 * DAY,
                  "%s share %s: lease expires at %d, now is %d: not about 31 days ahead" % (label, k, max(exps), now))
        before[label] = (si, snap)
    # expiration times have a resolution of one second; make sure "now" moves on
    time.sleep(2.2)
    for label, _, _ in files:
        res = timed("check --add-lease of the %s file" % label, c.check_file, caps[label], add_lease=True)
        check_healthy(res, "%s check --add-lease" % label)
    problems = []
    for label, (si, snap) in before.items():
        after = lease_snapshot(g.servers, si)
        moved = []
        for k, exps in snap.items():
            a = after.get(k)
            if a is None:
                problems.append("%s share %s disappeared" % (label, k))
                continue
            if max(a) < max(exps) + 2:
                problems.append("%s share %s on disk: lease expiration %s -> %s (not renewed)" % (label, k, exps, a))
            if len(a) != len(exps):
                problems.append("%s share %s: %d lease(s) before, %d after (the same client renews, it does "
                                "not add)" % (label, k, len(exps), len(a)))
            moved.append(max(a) - max(exps))
        log("%s: lease expiration moved forward by %s s on %d shares" % (label, sorted(set(moved)), len(moved)))
    if kind == "cairn" and not problems:
        cairn_audit(suite.h, g.servers, "after lease renewal")
    if problems:
        msg = "\n".join(problems)
        if kind == "cairn":
            for s in g.servers:
                r = H.subprocess.run([suite.h.cairn_bin(), "storage", "audit", s.dir], capture_output=True, timeout=60)
                msg += "\n--- cairn storage audit %s (exit %d)\n%s%s" % (
                    s.dir, r.returncode, r.stdout.decode("utf-8", "replace")[-2000:],
                    r.stderr.decode("utf-8", "replace")[-1000:])
        fail(msg)


def t_restart(suite, kind):
    """Stop every server of the grid (each must exit within 5 s of SIGTERM), start them again
    on the same directories, and read back / modify what was stored before."""
    g = suite.grid4(kind)
    c = g.client
    files = {}
    for label, size, fmt in (("immutable", 600000, None), ("SDMF", 40000, "SDMF"), ("MDMF", 300000, "MDMF")):
        data = os.urandom(size)
        files[label] = (c.upload(data, fmt), data)
    log("uploaded %d files" % len(files))
    codes, slowest = set(), 0.0
    for s in g.servers:
        rc, took = s.stop(timeout=15)
        check(took <= 5.5, "%s took %.1fs to exit after SIGTERM (the limit is 5 s)" % (s.label, took))
        codes.add(rc)
        slowest = max(slowest, took)
    log("all 4 servers exited after SIGTERM within %.2fs (exit codes %s)" % (slowest, sorted(codes)))
    for s in g.servers:
        s.wait_port_free()
    c.wait_disconnected(list(c.servers), timeout=30)
    t0 = time.monotonic()
    for s in g.servers:
        s.start()
    for s in g.servers:
        s.wait_ready()
    c.wait_connected(timeout=60)
    log("restarted on the same directories; client reconnected (%.2fs)" % (time.monotonic() - t0))
    check_loopback_only(g.servers)
    for label, (cap, data) in files.items():
        assert_same(c.download(cap), data, "%s after restart" % label)
    cap, data = files["MDMF"]
    patch = os.urandom(1000)
    c.update(cap, 1000, patch)
    assert_same(c.download(cap), data[:1000] + patch + data[2000:], "MDMF updated after restart")
    cap, _ = files["SDMF"]
    v2 = os.urandom(1234)
    c.overwrite(cap, v2)
    assert_same(c.download(cap), v2, "SDMF overwritten after restart")
    check_healthy(c.check_file(files["immutable"][0], verify=True), "verify immutable after restart")
    log("all files read back, mutable files modified after the restart")


def t_mixed(suite, kind):
    g = suite.mixed(kind)
    c = g.client
    for label, size, fmt in (("immutable 1 MiB", MiB, None), ("SDMF", 30000, "SDMF"), ("MDMF", 300000, "MDMF")):
        data = os.urandom(size)
        cap = round_trip(c, data, fmt, label)
        check_shares_on(g.servers, storage_index(c, cap), label, mutable=fmt is not None)
        if fmt == "MDMF":
            patch = os.urandom(5000)
            c.update(cap, 140000, patch)
            data = data[:140000] + patch + data[145000:]
            assert_same(timed("download MDMF after in-place update", c.download, cap), data, "mixed MDMF update")
        check_healthy(c.check_file(cap, verify=True), "verify %s" % label)


def t_reverse(suite, kind):
    h = suite.h
    servers = [h.new_storage("tahoe", "rev-%s-s%d" % (kind, i)) for i in range(4)]
    suite.touched.extend(servers)
    g = h.build_grid("rev-%s" % kind, servers)
    suite.touched.append(g.client)
    c = g.client
    files = {}
    for label, size, fmt in (("immutable 1 MiB", MiB, None), ("immutable 2.5 MiB", 5 * MiB // 2, None),
                             ("SDMF", 50000, "SDMF"), ("MDMF", 400000, "MDMF")):
        data = os.urandom(size)
        cap = c.upload(data, fmt)
        info = c.info(cap)
        files[label] = {"data": data, "cap": cap, "ro": info.get("ro_uri") or cap, "fmt": fmt,
                        "si": storage_index(c, cap)}
        check_shares_on(servers, files[label]["si"], label + " (written by Tahoe)", mutable=fmt is not None)
    log("uploaded %d files through Tahoe storage nodes" % len(files))
    old_ids = list(c.servers)

    t0 = time.monotonic()
    for s in servers:
        rc, took = s.stop()
        check(took < 15, "%s took %.1fs to stop" % (s.label, took))
    for s in servers:
        s.wait_port_free()
    log("stopped the 4 Tahoe storage nodes (%.2fs)" % (time.monotonic() - t0))
    c.wait_disconnected(old_ids, timeout=30)

    # the same directories and ports, now served by the backend under test
    cls = {"tahoe": H.TahoeStorageNode, "cairn": H.CairnStorageNode}[kind]
    repl = [cls(h, s.name + "-as-" + kind, s.dir, s.port) for s in servers]
    suite.touched.extend(repl)
    sid_of = {id(s): sid for sid, s in c.servers.items()}
    c.servers = {sid_of[id(s)]: r for s, r in zip(servers, repl)}
    t0 = time.monotonic()
    for r in repl:
        r.start()
    for r in repl:
        r.wait_ready()
    c.wait_connected(timeout=60)
    log("%s serving the Tahoe node directories; client reconnected (%.2fs)" % (kind, time.monotonic() - t0))
    check_loopback_only(repl)

    for label, f in files.items():
        assert_same(timed("download %s from %s" % (label, kind), c.download, f["cap"]), f["data"], label)
        if f["ro"] != f["cap"]:
            assert_same(c.download(f["ro"]), f["data"], label + " via readcap")
    imm = files["immutable 2.5 MiB"]
    check_ranged(c, imm["cap"], imm["data"], 1000000, 1500000, "immutable 2.5 MiB")
    for label in ("immutable 1 MiB", "SDMF", "MDMF"):
        check_healthy(timed("check --verify of %s" % label, c.check_file, files[label]["cap"], verify=True),
                      "verify %s served by %s" % (label, kind))

    # modify the mutable files written by Tahoe (write enablers must match) and add a new file
    sd = files["SDMF"]
    v2 = os.urandom(70000)
    timed("overwrite the Tahoe-written SDMF file", c.overwrite, sd["cap"], v2)
    assert_same(c.download(sd["cap"]), v2, "SDMF after overwrite")
    assert_same(c.download(sd["ro"]), v2, "SDMF after overwrite via readcap")
    md = files["MDMF"]
    patch = os.urandom(150000)
    timed("in-place update of the Tahoe-written MDMF file", c.update, md["cap"], 200000, patch)
    want = md["data"][:200000] + patch + md["data"][350000:]
    assert_same(c.download(md["cap"]), want, "MDMF after in-place update")
    new = os.urandom(700000)
    round_trip(c, new, None, "new immutable file")

    for r in repl:
        rc, took = r.stop(timeout=15)
        check(took <= 5.5, "%s took %.1fs to exit after SIGTERM (the limit is 5 s)" % (r.label, took))
    log("%s servers exited after SIGTERM" % kind)
    if kind == "cairn":
        cairn_audit(h, repl, "Tahoe node dirs after cairn served them")

    if kind == "cairn":
        # what cairn would announce for a Tahoe node dir must be what Tahoe announced
        for s in servers:
            _, tahoe_ann = H.tahoe_announcement(s.dir)
            sid, ann = H.CairnStorageNode(h, s.name, s.dir, s.port).announcement()
            diffs = []
            if set(ann["anonymous-storage-NURLs"]) != set(tahoe_ann["anonymous-storage-NURLs"]):
                diffs.append("NURLs %s vs Tahoe's %s" % (ann["anonymous-storage-NURLs"],
                                                         tahoe_ann["anonymous-storage-NURLs"]))
            tub = lambda a: a["anonymous-storage-FURL"][5:].split("@")[0]  # noqa: E731
            if tub(ann) != tub(tahoe_ann):
                diffs.append("FURL tubid %s vs Tahoe's %s (lease/write-enabler seed)" % (tub(ann), tub(tahoe_ann)))
            if ann["permutation-seed-base32"] != tahoe_ann["permutation-seed-base32"]:
                diffs.append("permutation-seed-base32 %s vs Tahoe's %s" % (ann["permutation-seed-base32"],
                                                                         tahoe_ann["permutation-seed-base32"]))
            check(not diffs, "`cairn storage announcement %s` differs from the Tahoe node's own announcement:\n  %s"
                  % (s.dir, "\n  ".join(diffs)))
        log("`cairn storage announcement` on the Tahoe node dirs matches Tahoe's announcements")


def mutable_seqnums(servers, si):
    """{(node name, shnum): (share version byte, seqnum)} read from mutable containers: the
    share data starts after the 468-byte container header with >BQ (0 = SDMF, 1 = MDMF)."""
    out = {}
    for s in servers:
        for shnum, path in s.shares(si).items():
            with open(path, "rb") as f:
                f.seek(468)
                head = f.read(9)
            check(len(head) == 9, "mutable share %d on %s: no share data after the header" % (shnum, s.label))
            out[(s.name, shnum)] = H.struct.unpack(">BQ", head)
    return out


def mdmf_segment_on_disk(servers, si, seg):
    """{(node name, shnum): salt and block of segment `seg`} of every MDMF share
    of `si`, read from the containers (share data after the 468-byte container header;
    MDMF header >BQ32sBBQQ, offsets table of eight >Q at 59, the sixth is the share data)."""
    out = {}
    for s in servers:
        for shnum, path in s.shares(si).items():
            with open(path, "rb") as f:
                f.seek(468)
                head = f.read(123)
                check(len(head) == 123 and head[0] == 1, "share %d on %s is not MDMF" % (shnum, s.label))
                _, seqnum, _, k, _, segsize, _ = H.struct.unpack(">BQ32sBBQQ", head[:59])
                share_data = H.struct.unpack(">8Q", head[59:123])[5]
                block = 16 + segsize // k
                f.seek(468 + share_data + seg * block)
                out[(s.name, shnum)] = f.read(block)
    check(out, "no MDMF share of %s on disk" % si)
    return out


def check_seqnum(servers, si, version, seqnum, what):
    got = mutable_seqnums(servers, si)
    check(len(got) >= H.SHARES_TOTAL, "%s: only %d shares on disk" % (what, len(got)))
    bad = {k: v for k, v in got.items() if v != (version, seqnum)}
    check(not bad, "%s: expected share version %d seqnum %d in every share, got %s"
          % (what, version, seqnum, sorted(bad.items())))


class ServeTahoeNode(H.TahoeStorageNode):
    """A real Tahoe storage node run on a directory another backend wrote; its `tahoe run`
    output goes to the work dir, not into the node directory it serves."""

    def __init__(self, h, name, node_dir, port, logfile):
        super().__init__(h, name, node_dir, port)
        self._logfile = logfile

    @property
    def logfile(self):
        return self._logfile


# identity of a storage node: with these a Tahoe node has the same server id (node.privkey,
# node.pubkey), TLS key and so tubid / NURL SPKI hash (node.pem), swissnum (storage.furl) and
# permutation seed.  The tubid is the "lease seed" the client derives mutable write enablers
# and lease renew secrets from: a node without it could read the shares but not modify them
# (BadWriteEnablerError "The write enabler was recorded by nodeid ...").
IDENTITY_FILES = ("private/node.pem", "private/node.privkey", "node.pubkey", "private/storage.furl",
                  "permutation-seed")


def t_forward(suite, kind):
    """The backend writes an immutable multi-segment, an SDMF and an MDMF file (mutable ones
    modified once: seqnum 2); its servers are stopped and real Tahoe storage nodes serve those
    share files (on the backend's node directories if `tahoe run` accepts them, else on fresh
    Tahoe node dirs that take over the share trees); the Tahoe client reads, verifies,
    modifies and leases everything."""
    h = suite.h
    servers = [h.new_storage(kind, "fwd-%s-s%d" % (kind, i)) for i in range(4)]
    suite.touched.extend(servers)
    g = h.build_grid("fwd-%s" % kind, servers)
    suite.touched.append(g.client)
    c = g.client
    files = {}
    for label, size, fmt in (("immutable 2 MiB+4321", 2 * MiB + 4321, None), ("SDMF", 40000, "SDMF"),
                             ("MDMF", 450000, "MDMF")):
        data = os.urandom(size)
        cap = timed("upload %s to %s" % (label, kind), c.upload, data, fmt)
        info = c.info(cap)
        files[label] = {"data": data, "cap": cap, "ro": info.get("ro_uri") or cap, "fmt": fmt,
                        "si": storage_index(c, cap)}
    sd, md, imm = files["SDMF"], files["MDMF"], files["immutable 2 MiB+4321"]
    check(imm["cap"].startswith("URI:CHK:"), "immutable upload gave %s" % H.short(imm["cap"]))
    sd["data"] = os.urandom(55000)
    timed("overwrite SDMF (seqnum 2) on %s" % kind, c.overwrite, sd["cap"], sd["data"])
    patch = os.urandom(140000)
    timed("MDMF in-place update across segments (seqnum 2) on %s" % kind, c.update, md["cap"], 120000, patch)
    md["data"] = md["data"][:120000] + patch + md["data"][260000:]
    for label, f in files.items():
        assert_same(c.download(f["cap"]), f["data"], "%s on %s" % (label, kind))
        check_shares_on(servers, f["si"], "%s (written by %s)" % (label, kind), mutable=f["fmt"] is not None)
    check_seqnum(servers, sd["si"], 0, 2, "SDMF written by %s" % kind)
    check_seqnum(servers, md["si"], 1, 2, "MDMF written by %s" % kind)
    if kind == "cairn":
        cairn_audit(h, servers, "before handing the shares to Tahoe")

    old_ids = list(c.servers)
    codes, slowest = set(), 0.0
    for s in servers:
        rc, took = s.stop(timeout=15)
        check(took <= 5.5, "%s took %.1fs to exit after SIGTERM (the limit is 5 s)" % (s.label, took))
        codes.add(rc)
        slowest = max(slowest, took)
    for s in servers:
        s.wait_port_free()
    log("stopped the 4 %s servers: exited within %.2fs of SIGTERM (exit codes %s)" % (kind, slowest, sorted(codes)))
    c.wait_disconnected(old_ids, timeout=30)

    # 1. real Tahoe directly on the backend's node directory (same keys, same port)
    def tahoe_on(s, node_dir, suffix):
        return ServeTahoeNode(h, "%s-%s" % (s.name, suffix), node_dir, s.port,
                              os.path.join(h.workdir, "%s-%s-tahoe-run.log" % (s.name, suffix)))

    t0 = time.monotonic()
    probe = tahoe_on(servers[0], servers[0].dir, "tahoe")
    suite.touched.append(probe)
    probe.start()
    up = H.wait_until("`tahoe run` on %s to listen or exit" % servers[0].dir,
                      lambda: "exited" if probe.proc.poll() is not None else
                      ("up" if H.port_accepts(probe.port) else None), 60, interval=0.2)
    if up == "up":
        repl = [probe] + [tahoe_on(s, s.dir, "tahoe") for s in servers[1:]]
        suite.touched.extend(repl[1:])
        for r in repl[1:]:
            r.start()
        for r in repl:
            r.wait_ready()
        mode = "direct"
        sid_of = {id(s): sid for sid, s in c.servers.items()}
        c.servers = {sid_of[id(s)]: r for s, r in zip(servers, repl)}
        c.wait_connected(timeout=60)
        log("Tahoe-on-%s-dir: YES: `tahoe run` serves the %s node directories as they are (same ports, keys, "
            "servers.yaml); client reconnected (%.2fs)" % (kind, kind, time.monotonic() - t0))
    else:
        rc = probe.proc.returncode
        why = [l for l in (H.tail(probe.logfile, 10) or "").splitlines() if l.strip() and not l.startswith("===")]
        tacs = [n for n in os.listdir(servers[0].dir) if n.endswith(".tac")]
        hint = ""
        if any("not a recognizable node directory" in l for l in why) and not tacs:
            hint = (" (`tahoe run` identifies a node directory by a tahoe-client.tac or tahoe-introducer.tac "
                    "file, which `tahoe create-node` writes and this directory lacks)")
        log("Tahoe-on-%s-dir: NO: `tahoe run %s` exited with code %s: %s%s"
            % (kind, servers[0].dir, rc, " | ".join(why[-3:]) or "(no output)", hint))
        probe.proc = None
        # 2. fallback: fresh Tahoe node dirs on the same ports take over the share trees
        #    (moved) and the node identity (copied; see IDENTITY_FILES), servers.yaml rewritten
        repl = [H.TahoeStorageNode(h, "fwd-%s-t%d" % (kind, i), h.node_dir("fwd-%s-t%d" % (kind, i)), s.port)
                for i, s in enumerate(servers)]
        suite.touched.extend(repl)
        h.create(repl)
        for s, r in zip(servers, repl):
            for rel in IDENTITY_FILES:
                shutil.copy2(os.path.join(s.dir, rel), os.path.join(r.dir, rel))
            os.makedirs(os.path.join(r.dir, "storage"), exist_ok=True)
            shutil.rmtree(os.path.join(r.dir, "storage", "shares"), ignore_errors=True)
            os.rename(os.path.join(s.dir, "storage", "shares"), os.path.join(r.dir, "storage", "shares"))
        for r in repl:
            r.start()
        for r in repl:
            r.wait_ready()
        entries = [(r,) + tuple(r.announcement()) for r in repl]
        same = sorted(old_ids) == sorted(sid for _, sid, _ in entries)
        c.stop()
        H.wait_until("web port %d of %s to be released" % (c.web_port, c.name),
                     lambda: H.port_is_free(c.web_port), 15)
        c.set_servers(entries)
        c.start()
        c.wait_web()
        c.wait_connected(timeout=60)
        mode = "fallback"
        log("fallback: 4 fresh Tahoe node dirs on the same ports hold the moved %s share trees and copies of "
            "the node identity files; servers.yaml "
            "rewritten (server ids %s), client restarted and connected (%.2fs)"
            % (kind, "unchanged" if same else "CHANGED", time.monotonic() - t0))
    check_loopback_only(repl)

    # everything the backend wrote, read and verified by Tahoe's own storage server code
    for label, f in files.items():
        assert_same(timed("download %s (Tahoe serving %s's shares)" % (label, kind), c.download, f["cap"]),
                    f["data"], label)
        if f["ro"] != f["cap"]:
            assert_same(c.download(f["ro"]), f["data"], label + " via readcap")
    check_ranged(c, imm["cap"], imm["data"], 900000, 1700000, "immutable")
    for label, f in files.items():
        check_healthy(timed("check --verify of %s" % label, c.check_file, f["cap"], verify=True),
                      "verify %s (written by %s, served by Tahoe)" % (label, kind))

    # modify both mutable files again (seqnum 3): write enablers recorded by the backend
    v3 = os.urandom(30000)
    timed("overwrite SDMF (seqnum 3) through Tahoe", c.overwrite, sd["cap"], v3)
    assert_same(c.download(sd["cap"]), v3, "SDMF after overwrite through Tahoe")
    assert_same(c.download(sd["ro"]), v3, "SDMF after overwrite through Tahoe, via readcap")
    patch = os.urandom(100000)
    timed("MDMF in-place update (seqnum 3) through Tahoe", c.update, md["cap"], 300000, patch)
    want = md["data"][:300000] + patch + md["data"][400000:]
    assert_same(c.download(md["cap"]), want, "MDMF after in-place update through Tahoe")
    assert_same(c.download(md["ro"]), want, "MDMF after in-place update through Tahoe, via readcap")
    check_seqnum(repl, sd["si"], 0, 3, "SDMF after the Tahoe-served update")
    check_seqnum(repl, md["si"], 1, 3, "MDMF after the Tahoe-served update")

    # add a lease: the renew secrets the backend recorded must match, so Tahoe renews them
    before = {label: lease_snapshot(repl, f["si"]) for label, f in files.items()}
    time.sleep(2.2)  # expirations have a resolution of one second
    for label, f in files.items():
        check_healthy(timed("check --add-lease of %s" % label, c.check_file, f["cap"], add_lease=True),
                      "%s check --add-lease" % label)
    problems = []
    for label, snap in before.items():
        after = lease_snapshot(repl, files[label]["si"])
        moved = []
        for k, exps in snap.items():
            a = after.get(k)
            if not a or not exps:
                problems.append("%s share %s: leases %s before, %s after" % (label, k, exps, a))
                continue
            if max(a) < max(exps) + 2:
                problems.append("%s share %s: lease expiration %s -> %s (not renewed)" % (label, k, exps, a))
            if len(a) != len(exps):
                problems.append("%s share %s: %d lease(s) before, %d after (renew secret of the lease the "
                                "backend recorded does not match)" % (label, k, len(exps), len(a)))
            moved.append(max(a) - max(exps))
        log("%s: lease renewed by Tahoe, expiration +%s s on %d shares" % (label, sorted(set(moved)), len(moved)))
    check(not problems, "\n".join(problems))

    for r in repl:
        rc, took = r.stop(timeout=15)
        check(took < 15, "%s took %.1fs to stop" % (r.label, took))
    log("Tahoe served what %s wrote (%s mode); Tahoe servers stopped" % (kind, mode))


def t_client(suite, kind):
    """The cairn client node against `kind` storage servers, side by side with a Tahoe
    client over the same servers: files either one uploaded download with the other, byte
    for byte, and the same data gives the same cap from both (shared convergence secret,
    same parameters)."""
    tahoe = suite.grid4(kind)
    cairn = suite.cairn_client(kind)
    tc, cc = tahoe.client, cairn.client
    # Tahoe uploads, cairn downloads (LIT, one segment, several segments, ranges)
    for label, size in (("LIT file", 40), ("1 KiB file", 1024), ("multi-segment 1 MiB+7 file", MiB + 7)):
        data = os.urandom(size)
        cap = timed("Tahoe client uploads %s" % label, tc.upload, data)
        got = timed("cairn client downloads it", cc.download, cap)
        assert_same(got, data, "cairn download of Tahoe-uploaded %s" % label)
        if size > 300000:
            check_ranged(cc, cap, data, 131000, 400000, "cairn client, Tahoe-uploaded " + label)
            check_ranged(cc, cap, data, size - 10, size - 1, "cairn client, Tahoe-uploaded " + label)
            ti, ci = tc.info(cap), cc.info(cap)
            for key in ("ro_uri", "verify_uri", "size", "mutable", "format"):
                check(ti.get(key) == ci.get(key), "t=json %s: Tahoe %r, cairn %r" % (key, ti.get(key), ci.get(key)))
    # cairn uploads, Tahoe downloads; the same data uploaded by Tahoe gives the same cap
    for label, size in (("1 KiB file", 1024), ("multi-segment 2 MiB+3 file", 2 * MiB + 3)):
        data = os.urandom(size)
        cap = timed("cairn client uploads %s" % label, cc.upload, data)
        check(cap.startswith("URI:CHK:"), "cairn upload of %s gave %s" % (label, H.short(cap)))
        si = storage_index(tc, cap)
        check_shares_on(tahoe.servers, si, "cairn upload of %s" % label, mutable=False)
        got = timed("Tahoe client downloads it", tc.download, cap)
        assert_same(got, data, "Tahoe download of cairn-uploaded %s" % label)
        cap_t = timed("Tahoe client uploads the same data", tc.upload, data)
        check(cap_t == cap, "same data, same secret: Tahoe's cap %s, cairn's %s" % (H.short(cap_t), H.short(cap)))
        check_healthy(tc.check_file(cap, verify=True), "Tahoe verify of cairn-uploaded %s" % label)
    # the other direction of dedupe: cairn re-uploads what Tahoe stored
    data = os.urandom(300000)
    cap_t = tc.upload(data)
    cap_c = timed("cairn client re-uploads a file Tahoe stored", cc.upload, data)
    check(cap_c == cap_t, "cairn's cap %s differs from Tahoe's %s" % (H.short(cap_c), H.short(cap_t)))
    st = cc.status_json()
    check(st is not None and len(st.get("servers", [])) == len(tahoe.servers),
          "cairn /?t=json lists %s servers, expected %d" % (len((st or {}).get("servers", [])), len(tahoe.servers)))


def t_client_mutable(suite, kind):
    """Mutable files between the cairn client node and a Tahoe client over the same `kind`
    servers, SDMF and MDMF, both ways: whatever one creates, overwrites or modifies in
    place, the other reads byte for byte (whole and ranged) and writes in turn."""
    tahoe = suite.grid4(kind)
    cairn = suite.cairn_client(kind)
    tc, cc = tahoe.client, cairn.client
    for fmt, size, prefix in (("SDMF", 60000, "URI:SSK:"), ("MDMF", 800000, "URI:MDMF:")):
        for (wname, w), (rname, r) in ((("cairn", cc), ("Tahoe", tc)), (("Tahoe", tc), ("cairn", cc))):
            what = "%s file created by %s" % (fmt, wname)
            v1 = os.urandom(size)
            cap = timed("%s client creates a %d-byte %s file" % (wname, size, fmt), w.upload, v1, fmt)
            check(cap.startswith(prefix), "%s create of %s gave %s" % (wname, fmt, H.short(cap)))
            assert_same(timed("%s client reads it" % rname, r.download, cap), v1, "%s read of %s" % (rname, what))
            ri, wi = r.info(cap), w.info(cap)
            for key in ("ro_uri", "verify_uri", "size", "mutable", "format"):
                check(ri.get(key) == wi.get(key),
                      "t=json %s of %s: %s %r, %s %r" % (key, what, rname, ri.get(key), wname, wi.get(key)))
            ro = wi.get("ro_uri")
            check(ro and ro.startswith(prefix.replace(":SSK:", ":SSK-RO:").replace(":MDMF:", ":MDMF-RO:")),
                  "%s t=json ro_uri: %r" % (what, ro))
            # the reader overwrites, the writer reads the new version back (and via the readcap)
            v2 = os.urandom(size // 2 + 1234)
            timed("%s client overwrites it (%d bytes)" % (rname, len(v2)), r.overwrite, cap, v2)
            assert_same(timed("%s client reads the overwrite" % wname, w.download, cap), v2,
                        "%s read of %s after %s overwrote it" % (wname, what, rname))
            assert_same(w.download(ro), v2, "%s read of %s via its readcap" % (wname, what))
            if fmt == "MDMF":
                check_ranged(r, cap, v2, 130000, 200000, "%s client, %s" % (rname, what))
                check_ranged(w, ro, v2, len(v2) - 100, len(v2) - 1, "%s client, %s tail" % (wname, what))
                # in-place modification across a segment boundary (segments 0 and 1 of 4),
                # then an append
                si = storage_index(tc, cap)
                untouched = mdmf_segment_on_disk(tahoe.servers, si, 2)
                patch = os.urandom(50000)
                off = 120000
                timed("%s client modifies %d bytes at %d" % (wname, len(patch), off), w.update, cap, off, patch)
                check(mdmf_segment_on_disk(tahoe.servers, si, 2) == untouched,
                      "%s modify of %s rewrote segment 2, which the change does not touch" % (wname, what))
                check(all(v != untouched[k] for k, v in mdmf_segment_on_disk(tahoe.servers, si, 0).items()),
                      "%s modify of %s left segment 0 as it was" % (wname, what))
                log("  segment 2 of every share unchanged on disk, segment 0 rewritten: an in-place update")
                v3 = v2[:off] + patch + v2[off + len(patch):]
                assert_same(timed("%s client reads the modification" % rname, r.download, cap), v3,
                            "%s read of %s after %s modified it" % (rname, what, wname))
                tail_ = os.urandom(30000)
                timed("%s client appends %d bytes" % (rname, len(tail_)), r.update, cap, len(v3), tail_)
                assert_same(w.download(cap), v3 + tail_, "%s read of %s after %s appended" % (wname, what, rname))
            else:
                check_ranged(r, cap, v2, 1000, 15000, "%s client, %s" % (rname, what))
            check_healthy(tc.check_file(cap, verify=True), "Tahoe verify of %s" % what)


SCENARIOS = [
    ("immutable", t_immutable),
    ("sdmf", t_sdmf),
    ("mdmf", t_mdmf),
    ("lease", t_lease),
    ("restart", t_restart),
    ("mixed", t_mixed),
    ("reverse", t_reverse),
    ("forward", t_forward),
    ("client", t_client),
    ("client_mutable", t_client_mutable),
]


# --------------------------------------------------------------------------------------
# runner
# --------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cairn", default="", help="path of the cairn binary")
    ap.add_argument("--cairn-error", default=None, help="why there is no cairn binary (reported by cairn tests)")
    ap.add_argument("--backends", default=os.environ.get("INTEROP_BACKENDS", "tahoe,cairn"),
                    help="comma-separated: tahoe (control), cairn (default: both)")
    ap.add_argument("-k", action="append", default=[], help="run only tests whose name contains this (repeatable)")
    ap.add_argument("--workdir", default=None, help="node directories and logs (default: a new temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory even if everything passed")
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("INTEROP_TIMEOUT", 420)),
                    help="limit for the whole suite in seconds (default 420)")
    ap.add_argument("--test-timeout", type=float, default=float(os.environ.get("INTEROP_TEST_TIMEOUT", 150)),
                    help="limit for one test, its grid set-up included (default 150)")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("--summary-file", default=None, help="also write the final `N passed, N failed` line here")
    args = ap.parse_args()

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in ("tahoe", "cairn"):
            ap.error("unknown backend %r" % b)
    tests = [("%s/%s" % (b, name), fn, b) for b in backends for name, fn in SCENARIOS]
    if args.k:
        tests = [t for t in tests if any(k in t[0] for k in args.k)]
    if args.list:
        for t in tests:
            print(t[0])
        return 0

    workdir = args.workdir or tempfile.mkdtemp(prefix="cairn-interop-")
    os.makedirs(workdir, exist_ok=True)
    h = H.Harness(workdir, os.path.abspath(args.cairn) if args.cairn else "", args.cairn_error)
    suite = Suite(h)

    def on_signal(signum, frame):
        raise Interrupted("signal %d" % signum)

    suite_deadline = time.monotonic() + args.timeout
    test_deadline = [suite_deadline]

    def on_alarm(signum, frame):
        if time.monotonic() >= suite_deadline - 1:
            raise Interrupted("suite time limit of %.0fs reached" % args.timeout)
        raise TestTimeout("test time limit of %.0fs reached" % args.test_timeout)

    def arm(limit):
        test_deadline[0] = min(suite_deadline, time.monotonic() + limit)
        signal.setitimer(signal.ITIMER_REAL, max(0.5, test_deadline[0] - time.monotonic()))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)

    print("interop: %d tests, work dir %s" % (len(tests), workdir))
    print("interop: Tahoe venv %s, cairn %s" % (sys.prefix, args.cairn or "(none: %s)" % args.cairn_error))
    sys.stdout.flush()
    results = []
    t_suite = time.monotonic()
    interrupted = None
    try:
        for i, (name, fn, kind) in enumerate(tests):
            print("\n=== [%d/%d] %s" % (i + 1, len(tests), name))
            sys.stdout.flush()
            suite.touched = []
            suite.current = name
            t0 = time.monotonic()
            err = None
            try:
                arm(args.test_timeout)
                fn(suite, kind)
            except TestFailure as e:
                err = str(e)
            except TestTimeout as e:
                err = "%s (a wait without its own limit? see the logs below)\n%s" % (e, traceback.format_exc(limit=-4))
            except Interrupted as e:
                err = "interrupted: %s" % e
                interrupted = e
            except Exception:  # noqa: BLE001 - a harness bug is a failure too
                err = "unexpected error:\n" + traceback.format_exc()
            signal.setitimer(signal.ITIMER_REAL, 0)
            dt = time.monotonic() - t0
            if err is None:
                print("--- PASS %s (%.1fs)" % (name, dt))
            else:
                print("--- FAIL %s (%.1fs)\n%s" % (name, dt, indent(err)))
                seen = set()
                for node in suite.touched:
                    if id(node) in seen:
                        continue
                    seen.add(id(node))
                    n = 60 if isinstance(node, H.CairnStorageNode) else 20
                    print(indent("===== log of %s\n%s" % (node.label, node.log_tail(n))))
            sys.stdout.flush()
            results.append((name, err is None, dt))
            if interrupted:
                break
    except Interrupted as e:
        interrupted = e
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        t0 = time.monotonic()
        h.procs.stop_all()
        print("\nstopped all node processes (%.1fs)" % (time.monotonic() - t0))
    done = {r[0] for r in results}
    for name, _, _ in tests:
        if name not in done:
            results.append((name, False, 0.0))
            print("--- FAIL %s (not run: %s)" % (name, interrupted))
    passed = sum(1 for r in results if r[1])
    failed = len(results) - passed
    print("\n== interop summary (%.1fs)" % (time.monotonic() - t_suite))
    for name, ok, dt in results:
        print("  %-4s %-20s %6.1fs" % ("PASS" if ok else "FAIL", name, dt))
    if failed or args.keep:
        print("node directories and logs kept in %s" % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    line = "%d passed, %d failed" % (passed, failed)
    if args.summary_file:
        with open(args.summary_file, "w") as f:
            f.write(line + "\n")
    print(line)
    sys.stdout.flush()
    return 1 if failed else 0


def indent(text, pre="    "):
    return "\n".join(pre + l for l in str(text).splitlines())


if __name__ == "__main__":
    sys.exit(main())

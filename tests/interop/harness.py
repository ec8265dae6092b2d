"""Process, node and web-API plumbing for the cairn <-> Tahoe-LAFS 1.20 interop tests.

Runs under the Python of the tahoe-lafs venv (scripts/setup-tahoe-venv.sh), so PyYAML and
cryptography are importable.  Everything listens on 127.0.0.1 only, on ports picked free
at run time.  Every process is started in its own process group and registered, and
`Procs.stop_all()` ends all of them (SIGTERM to the group, SIGKILL after a grace period).
Every wait is bounded and fails with a message that says what it waited for.
"""

import base64
import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

import yaml

LOOPBACK = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = os.path.join(HERE, "tahoe_launcher.py")
VENV_PY = sys.executable
TAHOE = os.path.join(os.path.dirname(sys.executable), "tahoe")

# shares.needed / happy / total for every client: fits grids of 4 servers
SHARES_NEEDED, SHARES_HAPPY, SHARES_TOTAL = 2, 3, 4


class TestFailure(Exception):
    """A check failed; the message says what and why."""


def log(msg):
    sys.stdout.write("    %s\n" % msg)
    sys.stdout.flush()


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


# Twisted's per-connection chatter in Tahoe logs, left out of log tails
NOISE = re.compile(rb"_HTTP11ClientFactory|Starting factory|Stopping factory|Note to developers|"
                   rb"flogtool tail|read docs/logging.rst")


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 512 * 1024))
            lines = [l for l in f.read().splitlines() if not NOISE.search(l)][-n:]
    except OSError:
        return None
    return "\n".join(l.decode("utf-8", "replace") for l in lines)


def strip_html(body, limit=1500):
    """Tahoe's web API error pages are HTML (or text with a traceback); keep the gist."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = re.sub(r"(?s)<(script|style).*?</\1>", "", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n\s*\n+", "\n", text).strip()
    return text if len(text) <= limit else text[:limit] + " ..."


def wait_until(what, fn, timeout, interval=0.1, on_timeout=None, alive=None):
    """Poll fn() until it returns a true value; return it.  Fails after `timeout` seconds
    with "timed out after Ns waiting for <what>" (+ on_timeout() details).  `alive` is an
    optional callable that raises TestFailure when a process we depend on has died."""
    t0 = time.monotonic()
    last_exc = None
    while True:
        if alive is not None:
            alive()
        try:
            r = fn()
            if r:
                return r
        except Exception as e:  # noqa: BLE001 - retried; the last one is reported on timeout
            last_exc = e
        if time.monotonic() - t0 > timeout:
            detail = ""
            if on_timeout is not None:
                try:
                    detail = on_timeout()
                except Exception as e:  # noqa: BLE001
                    detail = "(could not describe state: %s)" % e
            if last_exc is not None:
                detail += "\nlast error: %s: %s" % (type(last_exc).__name__, last_exc)
            fail("timed out after %.0fs waiting for %s%s" % (timeout, what, ("\n" + detail) if detail else ""))
        time.sleep(interval)


# --------------------------------------------------------------------------------------
# processes and ports
# --------------------------------------------------------------------------------------
class Procs:
    """Registry of every process the suite starts.  Each runs in its own session (so its
    own process group); the pid file lets scripts/interop.sh clean up even if Python dies."""

    def __init__(self, pidfile):
        self.pidfile = pidfile
        self.procs = []  # (name, Popen, marker)
        self.lock = threading.Lock()

    def start(self, name, args, logpath, cwd=None, marker=None, env=None):
        os.makedirs(os.path.dirname(logpath), exist_ok=True)
        logf = open(logpath, "ab")
        logf.write(("\n=== %s: %s\n" % (time.strftime("%H:%M:%S"), " ".join(args))).encode())
        logf.flush()
        # no interruption (suite time limit, SIGTERM) between starting and registering
        blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGALRM}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                 cwd=cwd, env=env, start_new_session=True, close_fds=True,
                                 # the child must not inherit the blocked signals
                                 preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, old))
            with self.lock:
                self.procs.append((name, p, marker or ""))
                self._write_pidfile()
        finally:
            logf.close()
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return p

    def _write_pidfile(self):
        tmp = self.pidfile + ".tmp"
        with open(tmp, "w") as f:
            for name, p, marker in self.procs:
                if p.returncode is None:
                    f.write("%d %s\n" % (p.pid, marker))
        os.replace(tmp, self.pidfile)

    @staticmethod
    def _signal_group(p, sig):
        try:
            os.killpg(p.pid, sig)  # start_new_session: pgid == pid
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, p, timeout=10.0):
        """SIGTERM the process group, SIGKILL it after `timeout` s.  Returns the exit code."""
        if p.poll() is None:
            self._signal_group(p, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(p, signal.SIGKILL)
                p.wait(5)
        # the group may have members left (e.g. a child of the node): kill them too
        self._signal_group(p, signal.SIGKILL)
        with self.lock:
            self._write_pidfile()
        return p.returncode

    def stop_all(self, timeout=10.0):
        with self.lock:
            live = [p for _, p, _ in self.procs if p.poll() is None]
        for p in live:
            self._signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in live:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for name, p, _ in list(self.procs):
            if p.poll() is None:
                log("%s (pid %d) still running %.0fs after SIGTERM: SIGKILL" % (name, p.pid, timeout))
            self._signal_group(p, signal.SIGKILL)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        with self.lock:
            self._write_pidfile()


def ephemeral_port_range():
    """The kernel's range for the source ports of outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


class Ports:
    """Free loopback TCP ports, never the same one twice in a run, chosen below the
    ephemeral range: a port picked there (by binding to port 0) can be taken as the source
    port of some outgoing connection before the node that is to listen on it starts."""

    def __init__(self):
        self.given = set()
        lo, _ = ephemeral_port_range()
        self.low, self.high = (10000, lo - 1) if lo > 12000 else (1024, 9999)
        self.rng = random.Random()

    def take(self):
        for _ in range(500):
            port = self.rng.randint(self.low, self.high)
            if port not in self.given and port_is_free(port):
                self.given.add(port)
                return port
        fail("could not find a free port on %s in %d..%d" % (LOOPBACK, self.low, self.high))


def port_accepts(port, timeout=0.3):
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_is_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def run_cmd(args, timeout=120, what=None, cwd=None):
    """Run a short command; fail with its output if it exits non-zero or hangs."""
    try:
        r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, cwd=cwd, start_new_session=True)
    except subprocess.TimeoutExpired:
        fail("%s: timed out after %ds: %s" % (what or "command", timeout, " ".join(args)))
    except OSError as e:
        fail("%s: cannot run %s: %s" % (what or "command", args[0], e))
    if r.returncode != 0:
        fail("%s failed (exit %d): %s\nstdout: %s\nstderr: %s" % (
            what or "command", r.returncode, " ".join(args),
            r.stdout.decode("utf-8", "replace")[-2000:], r.stderr.decode("utf-8", "replace")[-3000:]))
    return r


def run_parallel(cmds, timeout=120, what="command", width=4):
    """Run several short commands, `width` at a time; fail on the first failure."""
    pending = list(cmds)
    running = []
    errors = []
    t0 = time.monotonic()
    while pending or running:
        while pending and len(running) < width:
            c = pending.pop(0)
            running.append((c, subprocess.Popen(c, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT, start_new_session=True)))
        c, p = running.pop(0)
        try:
            out = p.communicate(timeout=max(1, timeout - (time.monotonic() - t0)))[0]
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            errors.append("timed out after %ds: %s" % (timeout, " ".join(c)))
            continue
        if p.returncode != 0:
            errors.append("exit %d: %s\n%s" % (p.returncode, " ".join(c), out.decode("utf-8", "replace")[-3000:]))
    if errors:
        more = ""
        if len(errors) > 1:
            more = "\n(%d more failed the same way or similar:\n%s)" % (
                len(errors) - 1, "\n".join(e.splitlines()[0] for e in errors[1:]))
        fail("%s failed:\n%s%s" % (what, errors[0], more))


# --------------------------------------------------------------------------------------
# on-disk shares and leases (Tahoe's container formats, compat map section 6)
# --------------------------------------------------------------------------------------
MUTABLE_MAGIC_PREFIX = b"Tahoe mutable container v"


def share_dir(node_dir, si):
    return os.path.join(node_dir, "storage", "shares", si[:2], si)


def share_files(node_dir, si):
    """{shnum: path} of the finished shares of storage index `si` held in node_dir."""
    d = share_dir(node_dir, si)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return {}
    return {int(n): os.path.join(d, n) for n in names if n.isdigit()}


def immutable_share_parts(path):
    """(header version, data bytes) of an immutable share container (leases left out)."""
    with open(path, "rb") as f:
        data = f.read()
    version, _, n = struct.unpack(">LLL", data[:12])
    return version, data[12:len(data) - 72 * n]


def read_leases(path):
    """Leases in a share container: list of dicts {expiration, owner}.  Raises ValueError
    if the file does not look like a Tahoe container."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(MUTABLE_MAGIC_PREFIX):
        if len(data) < 468:
            raise ValueError("mutable container shorter than its 468-byte header (%d bytes)" % len(data))
        leases = []
        extra_off = struct.unpack(">Q", data[92:100])[0]
        recs = [data[100 + 92 * i:100 + 92 * (i + 1)] for i in range(4)]
        if extra_off + 4 <= len(data):
            (n_extra,) = struct.unpack(">L", data[extra_off:extra_off + 4])
            for i in range(n_extra):
                recs.append(data[extra_off + 4 + 92 * i:extra_off + 4 + 92 * (i + 1)])
        for r in recs:
            if len(r) == 92 and r != b"\x00" * 92:
                owner, exp = struct.unpack(">LL", r[:8])
                leases.append({"owner": owner, "expiration": exp})
        return leases
    if len(data) < 12:
        raise ValueError("immutable container shorter than its 12-byte header (%d bytes)" % len(data))
    version, _, n = struct.unpack(">LLL", data[:12])
    if version not in (1, 2):
        raise ValueError("immutable container version %d (expected 1 or 2)" % version)
    if 12 + 72 * n > len(data):
        raise ValueError("immutable container claims %d leases but is only %d bytes" % (n, len(data)))
    leases = []
    start = len(data) - 72 * n
    for i in range(n):
        owner, _renew, _cancel, exp = struct.unpack(">L32s32sL", data[start + 72 * i:start + 72 * (i + 1)])
        leases.append({"owner": owner, "expiration": exp})
    return leases


# --------------------------------------------------------------------------------------
# storage nodes
# --------------------------------------------------------------------------------------
class StorageNode:
    kind = "?"

    def __init__(self, h, name, node_dir, port):
        self.h, self.name, self.dir, self.port = h, name, node_dir, port
        self.proc = None

    @property
    def label(self):
        return "%s (%s, port %d)" % (self.name, self.kind, self.port)

    def log_paths(self):
        return [self.logfile]

    def alive_check(self):
        if self.proc is not None and self.proc.poll() is not None:
            fail("%s exited with code %s; log tail:\n%s" % (self.label, self.proc.returncode, self.log_tail(30)))

    def log_tail(self, n=40):
        parts = []
        for p in self.log_paths():
            t = tail(p, n)
            if t is not None:
                parts.append("--- %s (last %d lines)\n%s" % (p, n, t))
        return "\n".join(parts) or "(no log files)"

    def stop(self, timeout=10.0):
        if self.proc is not None:
            t0 = time.monotonic()
            rc = self.h.procs.stop(self.proc, timeout)
            took = time.monotonic() - t0
            self.proc = None
            return rc, took
        return None, 0.0

    def wait_port_free(self, timeout=15):
        wait_until("port %d of %s to be released" % (self.port, self.name),
                   lambda: port_is_free(self.port), timeout)

    def shares(self, si):
        return share_files(self.dir, si)


class TahoeStorageNode(StorageNode):
    kind = "tahoe"

    @property
    def logfile(self):
        return os.path.join(self.dir, "tahoe-run.log")

    def log_paths(self):
        return [self.logfile, os.path.join(self.dir, "logs", "twistd.log")]

    def create_args(self):
        p = self.port
        return [TAHOE, "create-node", "--listen=tcp", "--port=tcp:%d:interface=%s" % (p, LOOPBACK),
                "--location=tcp:%s:%d" % (LOOPBACK, p), "--webport=none", "-n", self.name,
                "--shares-needed", str(SHARES_NEEDED), "--shares-happy", str(SHARES_HAPPY),
                "--shares-total", str(SHARES_TOTAL), self.dir]

    def after_create(self):
        # don't let a small /tmp make the server read-only (Tahoe's default reserve is 1G)
        cfg = os.path.join(self.dir, "tahoe.cfg")
        text = open(cfg).read()
        text = re.sub(r"(?m)^reserved_space = .*$", "reserved_space = 0", text)
        open(cfg, "w").write(text)

    def start(self):
        check(port_is_free(self.port), "port %d for %s is already in use" % (self.port, self.label))
        self.proc = self.h.procs.start(self.name, [VENV_PY, LAUNCHER, self.dir], self.logfile,
                                       cwd=self.dir, marker=self.dir)

    def wait_ready(self, timeout=60):
        furl = os.path.join(self.dir, "private", "storage.furl")
        seed = os.path.join(self.dir, "permutation-seed")
        wait_until("%s to write private/storage.furl and listen" % self.label,
                   lambda: os.path.getsize(furl) > 0 and os.path.exists(seed) and port_accepts(self.port),
                   timeout, alive=self.alive_check)

    def announcement(self):
        """(server id, ann) for a client's servers.yaml, built from the node dir the way
        allmydata/client.py::init_storage builds the real announcement."""
        return tahoe_announcement(self.dir)


def tahoe_announcement(node_dir):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    furl = open(os.path.join(node_dir, "private", "storage.furl")).read().strip()
    m = re.match(r"^pb://([a-z2-7]+)@([^/]+)/(.+)$", furl)
    check(m, "unexpected storage.furl in %s: %r" % (node_dir, furl))
    swissnum = m.group(3)
    cert = x509.load_pem_x509_certificate(open(os.path.join(node_dir, "private", "node.pem"), "rb").read())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    spki_hash = base64.urlsafe_b64encode(hashlib.sha256(spki).digest()).rstrip(b"=").decode()
    cfg = open(os.path.join(node_dir, "tahoe.cfg")).read()
    loc = re.search(r"(?m)^tub\.location\s*=\s*(.+)$", cfg).group(1).strip()
    nurls = []
    for hint in loc.split(","):
        hm = re.match(r"^tcp:([^:]+):(\d+)$", hint.strip())
        if hm:
            nurls.append("pb://%s@%s:%s/%s#v=1" % (spki_hash, hm.group(1), hm.group(2), swissnum))
    check(nurls, "no tcp: hint in tub.location %r of %s" % (loc, node_dir))
    pub = open(os.path.join(node_dir, "node.pubkey")).read().strip()
    check(pub.startswith("pub-v0-"), "unexpected node.pubkey in %s: %r" % (node_dir, pub))
    server_id = pub[len("pub-"):]
    seed = open(os.path.join(node_dir, "permutation-seed")).read().strip()
    nick = re.search(r"(?m)^nickname\s*=\s*(.*)$", cfg)
    ann = {
        "anonymous-storage-FURL": furl,
        "anonymous-storage-NURLs": nurls,
        "permutation-seed-base32": seed,
        "nickname": nick.group(1).strip() if nick else "",
    }
    return server_id, ann


class CairnStorageNode(StorageNode):
    kind = "cairn"

    @property
    def logfile(self):
        return os.path.join(self.dir, "cairn-run.log")

    def create_args(self):
        return [self.h.cairn_bin(), "create-node", "--hostname", LOOPBACK, "--port", str(self.port), self.dir]

    def after_create(self):
        pass

    def start(self):
        check(port_is_free(self.port), "port %d for %s is already in use" % (self.port, self.label))
        self.proc = self.h.procs.start(self.name, [self.h.cairn_bin(), "run", self.dir], self.logfile,
                                       cwd=self.dir, marker=self.dir,
                                       env=dict(os.environ, RUST_BACKTRACE="1"))

    def wait_ready(self, timeout=30):
        wait_until("%s to listen on 127.0.0.1:%d" % (self.label, self.port),
                   lambda: port_accepts(self.port), timeout, alive=self.alive_check)

    def announcement(self):
        r = run_cmd([self.h.cairn_bin(), "storage", "announcement", self.dir], timeout=30,
                    what="cairn storage announcement %s" % self.dir)
        out = r.stdout.decode("utf-8", "replace")
        try:
            entry = yaml.safe_load(out)
        except yaml.YAMLError as e:
            fail("`cairn storage announcement` printed invalid YAML (%s):\n%s" % (e, out))
        check(isinstance(entry, dict) and len(entry) == 1,
              "`cairn storage announcement` must print exactly one `<server id>: {ann: {...}}` entry, got:\n%s" % out)
        (server_id, val), = entry.items()
        check(isinstance(val, dict) and isinstance(val.get("ann"), dict),
              "announcement entry for %r has no `ann` mapping:\n%s" % (server_id, out))
        ann = val["ann"]
        validate_announcement(str(server_id), ann, out)
        return str(server_id), ann


def validate_announcement(server_id, ann, raw=""):
    """The things a Tahoe 1.20 client silently drops a static server for (compat map 5.5)."""
    problems = []
    furl = ann.get("anonymous-storage-FURL")
    if not isinstance(furl, str) or not re.match(r"^pb://[a-z2-7]{32}@", furl):
        problems.append("anonymous-storage-FURL must be pb://<32-char base32 tubid>@... (got %r)" % (furl,))
    nurls = ann.get("anonymous-storage-NURLs")
    if not isinstance(nurls, list) or not nurls:
        problems.append("anonymous-storage-NURLs must be a non-empty list (got %r)" % (nurls,))
    else:
        for n in nurls:
            if not re.match(r"^pb://[A-Za-z0-9_-]{43}@127\.0\.0\.1:\d+/[^#]+#v=1$", str(n)):
                problems.append("NURL %r is not pb://<43-char SPKI hash>@127.0.0.1:PORT/<swissnum>#v=1" % (n,))
    if not isinstance(ann.get("permutation-seed-base32"), str):
        problems.append("permutation-seed-base32 missing")
    if problems:
        fail("announcement of %s unusable by a Tahoe client:\n  %s\n%s" % (server_id, "\n  ".join(problems), raw))


def nurl_port(ann):
    m = re.search(r"@127\.0\.0\.1:(\d+)/", ann["anonymous-storage-NURLs"][0])
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------------------
# Tahoe client node and its web API
# --------------------------------------------------------------------------------------
class HTTPResult:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def quote_cap(cap):
    return urllib.parse.quote(cap, safe="")


class TahoeClient:
    def __init__(self, h, name, node_dir, web_port):
        self.h, self.name, self.dir, self.web_port = h, name, node_dir, web_port
        self.proc = None
        self.servers = {}  # server id -> (StorageNode, ann)

    @property
    def label(self):
        return "%s (tahoe client, web port %d)" % (self.name, self.web_port)

    @property
    def logfile(self):
        return os.path.join(self.dir, "tahoe-run.log")

    def log_paths(self):
        return [self.logfile, os.path.join(self.dir, "logs", "twistd.log")]

    def log_tail(self, n=40):
        parts = []
        for p in self.log_paths():
            t = tail(p, n)
            if t is not None:
                parts.append("--- %s (last %d lines)\n%s" % (p, n, t))
        return "\n".join(parts) or "(no log files)"

    def create_args(self):
        k, happy, n = self.h.shares
        return [TAHOE, "create-client", "-n", self.name,
                "--webport", "tcp:%d:interface=%s" % (self.web_port, LOOPBACK),
                "--shares-needed", str(k), "--shares-happy", str(happy),
                "--shares-total", str(n), self.dir]

    def after_create(self):
        # one convergence secret for every client of the run: the same file then gives the
        # same shares on any grid, so cairn's share files can be compared with Tahoe's
        from allmydata.util import base32
        with open(os.path.join(self.dir, "private", "convergence"), "wb") as f:
            f.write(base32.b2a(self.h.convergence) + b"\n")

    def set_servers(self, entries):
        """entries: list of (StorageNode, server_id, ann).  Writes private/servers.yaml."""
        storage = {}
        self.servers = {}
        for node, sid, ann in entries:
            check(sid not in storage, "two servers announce the same server id %s" % sid)
            storage[sid] = {"ann": ann}
            self.servers[sid] = node
        with open(os.path.join(self.dir, "private", "servers.yaml"), "w") as f:
            yaml.safe_dump({"storage": storage}, f, default_flow_style=False)

    def start(self):
        check(port_is_free(self.web_port), "web port %d for %s is already in use" % (self.web_port, self.name))
        self.proc = self.h.procs.start(self.name, [VENV_PY, LAUNCHER, self.dir], self.logfile,
                                       cwd=self.dir, marker=self.dir)

    def alive_check(self):
        if self.proc is not None and self.proc.poll() is not None:
            fail("%s exited with code %s; log tail:\n%s" % (self.label, self.proc.returncode, self.log_tail(30)))

    def stop(self):
        if self.proc is not None:
            self.h.procs.stop(self.proc)
            self.proc = None

    # ---- web API -------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=90):
        conn = http.client.HTTPConnection(LOOPBACK, self.web_port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if body is not None:
                hdrs.setdefault("Content-Length", str(len(body)))
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return HTTPResult(r.status, r.getheaders(), data)
        except socket.timeout:
            fail("%s %s to %s: no answer within %ds" % (method, path[:120], self.name, timeout))
        except OSError as e:
            self.alive_check()
            fail("%s %s to %s: %s" % (method, path[:120], self.name, e))
        finally:
            conn.close()

    def expect(self, res, statuses, what):
        if res.status not in statuses:
            fail("%s: HTTP %d (expected %s)\n%s" % (what, res.status, "/".join(map(str, statuses)),
                                                    strip_html(res.body)))
        return res

    def status_json(self, timeout=3):
        r = self.request("GET", "/?t=json", timeout=timeout)
        if r.status != 200:
            return None
        return json.loads(r.body)

    def connection_statuses(self):
        j = self.status_json()
        return {s["nodeid"]: str(s.get("connection_status", "")) for s in (j or {}).get("servers", [])}

    def connected_ids(self):
        return {k for k, v in self.connection_statuses().items() if v.lower().startswith("connected")}

    def describe_servers(self):
        try:
            st = self.connection_statuses()
        except Exception as e:  # noqa: BLE001
            return "client web API not answering: %s" % e
        lines = []
        for sid, node in self.servers.items():
            s = st.get(sid)
            lines.append("  %s %s: %s" % (node.label, sid[:16] + "...",
                                           s if s is not None else "NOT KNOWN TO THE CLIENT (announcement rejected?)"))
        return "client's view of its servers:\n" + "\n".join(lines)

    def wait_connected(self, ids=None, timeout=60):
        want = set(ids if ids is not None else self.servers)

        def ok():
            return want <= self.connected_ids()

        def alive():
            self.alive_check()
            for sid in want:
                n = self.servers.get(sid)
                if n is not None and n.proc is not None:
                    n.alive_check()

        wait_until("client %s to connect to %d servers" % (self.name, len(want)), ok, timeout,
                   interval=0.2, on_timeout=self.describe_servers, alive=alive)

    def wait_disconnected(self, ids, timeout=30):
        want = set(ids)
        wait_until("client %s to notice %d servers went away" % (self.name, len(want)),
                   lambda: not (want & self.connected_ids()), timeout, interval=0.2,
                   on_timeout=self.describe_servers, alive=self.alive_check)

    def wait_web(self, timeout=60):
        wait_until("web API of %s" % self.label, lambda: self.status_json(timeout=2) is not None, timeout,
                   interval=0.1, alive=self.alive_check)

    # file operations
    def upload(self, data, fmt=None):
        q = "" if fmt is None else "?format=%s" % fmt
        r = self.expect(self.request("PUT", "/uri" + q, body=data), (200, 201),
                        "upload of %d bytes (PUT /uri%s)" % (len(data), q))
        cap = r.body.decode().strip()
        check(cap.startswith("URI:"), "PUT /uri%s returned %r, not a cap" % (q, cap[:200]))
        return cap

    def overwrite(self, cap, data):
        self.expect(self.request("PUT", "/uri/" + quote_cap(cap), body=data), (200, 201),
                    "overwrite of %s with %d bytes" % (short(cap), len(data)))

    def update(self, cap, offset, data):
        self.expect(self.request("PUT", "/uri/%s?offset=%d" % (quote_cap(cap), offset), body=data), (200, 201),
                    "in-place update of %s at offset %d (%d bytes)" % (short(cap), offset, len(data)))

    def download(self, cap, rng=None):
        hdrs = {"Range": "bytes=%d-%d" % rng} if rng else {}
        want = (206,) if rng else (200,)
        r = self.expect(self.request("GET", "/uri/" + quote_cap(cap), headers=hdrs), want,
                        "download of %s%s" % (short(cap), " range %d-%d" % rng if rng else ""))
        return r.body

    def info(self, cap):
        r = self.expect(self.request("GET", "/uri/%s?t=json" % quote_cap(cap)), (200,), "t=json of %s" % short(cap))
        j = json.loads(r.body)
        check(j[0] == "filenode", "t=json of %s: not a filenode: %r" % (short(cap), j[0]))
        return j[1]

    def check_file(self, cap, add_lease=False, verify=False):
        q = "t=check&output=JSON" + ("&add-lease=true" if add_lease else "") + ("&verify=true" if verify else "")
        r = self.expect(self.request("POST", "/uri/%s?%s" % (quote_cap(cap), q)), (200,),
                        "check of %s (%s)" % (short(cap), q))
        return json.loads(r.body)


class CairnClient(TahoeClient):
    """A cairn client node (`cairn create-client` + `cairn run`): the same web API as a
    Tahoe client node, so every TahoeClient method works on it."""

    kind = "cairn"

    @property
    def label(self):
        return "%s (cairn client, web port %d)" % (self.name, self.web_port)

    @property
    def logfile(self):
        return os.path.join(self.dir, "cairn-run.log")

    def log_paths(self):
        return [self.logfile]

    def create_args(self):
        return [self.h.cairn_bin(), "create-client", "--webport",
                "tcp:%d:interface=%s" % (self.web_port, LOOPBACK), self.dir]

    def after_create(self):
        set_client_shares(self.dir, self.h.shares)
        TahoeClient.after_create(self)

    def start(self):
        check(port_is_free(self.web_port), "web port %d for %s is already in use" % (self.web_port, self.name))
        self.proc = self.h.procs.start(self.name, [self.h.cairn_bin(), "run", self.dir], self.logfile,
                                       cwd=self.dir, marker=self.dir,
                                       env=dict(os.environ, RUST_BACKTRACE="1"))


def set_client_shares(node_dir, shares):
    """Write [client] shares.needed/happy/total into a node's tahoe.cfg (text edit)."""
    cfg = os.path.join(node_dir, "tahoe.cfg")
    lines = open(cfg).read().splitlines()
    keys = dict(zip(("shares.needed", "shares.happy", "shares.total"), map(str, shares)))
    out, section, done = [], None, False
    for line in lines:
        st = line.strip()
        if st.startswith("[") and st.endswith("]"):
            if section == "client" and not done:
                out.extend("%s = %s" % kv for kv in keys.items())
                done = True
            section = st[1:-1].strip()
        elif section == "client" and st.split("=")[0].strip() in keys:
            continue
        out.append(line)
    if not done:
        if section != "client":
            out.append("[client]")
        out.extend("%s = %s" % kv for kv in keys.items())
    open(cfg, "w").write("\n".join(out) + "\n")


def short(cap):
    return cap if len(cap) < 40 else cap[:24] + "..." + cap[-8:]


def assert_same(got, want, what):
    if got == want:
        return
    n = min(len(got), len(want))
    first = next((i for i in range(n) if got[i] != want[i]), n)
    fail("%s: content differs: got %d bytes, expected %d; first difference at offset %d"
         % (what, len(got), len(want), first))


# --------------------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------------------
class Grid:
    """Some storage nodes plus one Tahoe client that knows them from a static servers.yaml."""

    def __init__(self, name, servers, client):
        self.name, self.servers, self.client = name, servers, client

    def nodes(self):
        return list(self.servers) + [self.client]

    def log_tails(self, n=25):
        out = []
        for node in self.nodes():
            out.append("===== %s\n%s" % (node.label, node.log_tail(n)))
        return "\n".join(out)


class Harness:
    def __init__(self, workdir, cairn, cairn_error=None):
        self.workdir = workdir
        self._cairn = cairn
        self.cairn_error = cairn_error
        self.procs = Procs(os.path.join(workdir, "pids"))
        os.environ["TAHOE_VENV_PY"] = VENV_PY  # for tests/interop/fake_cairn.py
        self.ports = Ports()
        self.names = set()
        self.convergence = os.urandom(32)
        # shares.needed / happy / total of every client made from now on
        self.shares = (SHARES_NEEDED, SHARES_HAPPY, SHARES_TOTAL)

    def cairn_bin(self):
        if not self._cairn or not os.access(self._cairn, os.X_OK):
            fail("no cairn binary: %s" % (self.cairn_error or "not built (%r)" % self._cairn))
        return self._cairn

    def node_dir(self, name):
        check(name not in self.names, "node name %s used twice" % name)
        self.names.add(name)
        return os.path.join(self.workdir, name)

    def new_storage(self, kind, name):
        cls = {"tahoe": TahoeStorageNode, "cairn": CairnStorageNode}[kind]
        return cls(self, name, self.node_dir(name), self.ports.take())

    def new_client(self, name, kind="tahoe"):
        cls = {"tahoe": TahoeClient, "cairn": CairnClient}[kind]
        return cls(self, name, self.node_dir(name), self.ports.take())

    def create(self, nodes):
        """Create node directories (several at a time)."""
        run_parallel([n.create_args() for n in nodes], timeout=120, what="creating nodes", width=4)
        for n in nodes:
            check(os.path.exists(os.path.join(n.dir, "tahoe.cfg")), "%s: no tahoe.cfg after create" % n.label)
            n.after_create()

    def start_servers(self, servers):
        for s in servers:
            s.start()
        for s in servers:
            s.wait_ready()

    def build_grid(self, name, servers, client_name=None, start_servers=True, client_kind="tahoe"):
        """Create (if needed) and start `servers`, then a new client (Tahoe's or cairn's)
        over them; wait until the client is connected to all of them."""
        client = self.new_client(client_name or name + "-client", client_kind)
        fresh = [s for s in servers if not os.path.exists(os.path.join(s.dir, "tahoe.cfg"))]
        self.create(fresh + [client])
        if start_servers:
            self.start_servers([s for s in servers if s.proc is None])
        entries = []
        for s in servers:
            sid, ann = s.announcement()
            if isinstance(s, CairnStorageNode):
                p = nurl_port(ann)
                check(p == s.port, "%s announces NURL port %s, created with --port %d" % (s.label, p, s.port))
            entries.append((s, sid, ann))
        client.set_servers(entries)
        client.start()
        client.wait_web()
        client.wait_connected()
        statuses = sorted(set(re.sub(r"\d+(\.\d+)?", "N", v) for v in client.connection_statuses().values()))
        log("%s: client connected to %d servers (%s)" % (name, len(servers), "; ".join(statuses)))
        return Grid(name, servers, client)

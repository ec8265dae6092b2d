#!/usr/bin/env bash
# End-to-end checks of the `cairn` binary against golden vectors from real Tahoe-LAFS:
# caps for CHK (stdin and file input), SDMF and MDMF, dump-cap output, and clear errors.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p cairn-cli
export CAIRN=target/release/cairn
python3 - <<'PY'
import base64, json, os, subprocess, sys, tempfile
cairn = os.environ["CAIRN"]
fails = 0
def run(args, data=None):
    return subprocess.run([cairn] + args, input=data, capture_output=True)
def check(name, ok, detail=""):
    global fails
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else "  " + detail))
    fails += not ok

chk = json.load(open("vectors/chk_caps.json"))["cases"]
picked = [c for c in chk if c["size"] in (1, 56, 131073, 1048577) and (c["k"], c["n"]) in ((3, 10), (1, 1), (71, 255))][:12]
for i, c in enumerate(picked):
    seed = base64.b64decode(c["seed_b64"])
    data = (seed * (c["size"] // len(seed) + 1))[: c["size"]]
    args = ["cap", "--needed", str(c["k"]), "--total", str(c["n"]), "--segment-size", str(c["max_segment_size"]),
            "--convergence-secret-b64", c["convergence_b64"]]
    if i % 2:
        with tempfile.NamedTemporaryFile() as f:
            f.write(data); f.flush()
            r = run(args + [f.name])
    else:
        r = run(args + ["-"], data)
    got = r.stdout.decode().strip()
    check(f"cap chk k={c['k']} n={c['n']} size={c['size']} seg={c['max_segment_size']}", got == c["cap"], f"{got!r} != {c['cap']!r} {r.stderr!r}")

for c in json.load(open("vectors/mutable_caps.json"))["cases"]:
    r = run(["cap", "--format", c["format"], "--key", os.path.join("vectors", c["key_file"])], b"")
    check(f"cap {c['format']} {c['key_file']}", r.stdout.decode().strip() == c["writecap"], repr(r.stdout + r.stderr))

for c in json.load(open("vectors/caps.json"))["cases"]:
    if not c.get("dump_cap") or "unknown cap type" in c["dump_cap"]:
        continue
    r = run(["debug", "dump-cap", c["cap"]])
    check(f"dump-cap {c['kind']}", r.returncode == 0 and r.stdout.decode() == c["dump_cap"], repr(r.stdout.decode()[:300]) + " vs " + repr(c["dump_cap"][:300]))

# Bad input: a non-zero exit and a message that names the problem.
for args, data, expect in [
    (["cap", "-"], b"x" * 100, "convergence"),
    (["cap", "--needed", "4", "--total", "3", "--convergence-secret-b64", "YQ==", "-"], b"x" * 100, "needed"),
    (["cap", "--total", "300", "--convergence-secret-b64", "YQ==", "-"], b"x" * 100, "256"),
    (["cap", "--convergence-secret-b64", "!!!", "-"], b"x" * 100, "base64"),
    (["cap", "--convergence-secret-b64", "YQ==", "/nonexistent/file"], b"", "/nonexistent/file"),
    (["cap", "--format", "sdmf"], b"", "--key"),
    (["cap", "--format", "mdmf", "--key", "README.md"], b"", "key"),
    (["debug", "dump-cap", "URI:NOPE:abc"], b"", "prefix"),
    (["debug", "dump-cap", "URI:CHK:aaaa:bbbb:3:10:5"], b"", "URI:CHK"),
]:
    r = run(args, data)
    err = r.stderr.decode()
    check(f"error: cairn {' '.join(args)}", r.returncode != 0 and expect.lower() in err.lower(), f"rc={r.returncode} stderr={err!r}")

print(f"cli smoke: {fails} failed")
sys.exit(1 if fails else 0)
PY

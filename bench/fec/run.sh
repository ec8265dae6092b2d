#!/usr/bin/env bash
# Side-by-side erasure-coding throughput: cairn (criterion bench `fec`, kernel
# chosen by Fec::new) vs the zfec Python package, same shapes and segment sizes.
# MB/s = 10^6 bytes of segment data (k * piece_len) per second, medians.
#
# Usage: bench/fec/run.sh            (needs a Python with zfec 1.6: $PYTHON,
#                                     else /tmp/tahoe-venv/bin/python, else python3)
#        ZFEC_RUNS=9 bench/fec/run.sh
#        bench/fec/run.sh --kernels  (cairn only: every kernel this CPU supports)
# Extra arguments go to criterion, e.g. bench/fec/run.sh --measurement-time 5
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x /tmp/tahoe-venv/bin/python ]; then py=/tmp/tahoe-venv/bin/python; else py=python3; fi
fi
if ! "$py" -c 'import zfec' 2>/dev/null; then
  echo "run.sh: $py cannot import zfec; set PYTHON to a Python with 'pip install zfec==1.6.0.0'" >&2
  exit 1
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
target="$(cargo metadata --format-version 1 --no-deps | "$py" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

if [ "${1:-}" = "--kernels" ]; then
  shift
  echo "== cairn kernels: cargo bench -p cairn-core --bench fec -- '^kernels/' $*" >&2
  cargo bench -p cairn-core --bench fec -- '^kernels/' "$@" >&2
  "$py" - "$target/criterion" <<'PY'
import json, os, sys
rows = {}
kernels = []
for dirpath, _, files in os.walk(sys.argv[1]):
    if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
        continue
    meta = json.load(open(os.path.join(dirpath, "benchmark.json")))
    if meta.get("group_id") != "kernels":
        continue
    est = json.load(open(os.path.join(dirpath, "estimates.json")))
    mbps = meta["throughput"]["Bytes"] / est["median"]["point_estimate"] * 1e3
    rows.setdefault(meta["function_id"], {})[meta["value_str"]] = mbps
    if meta["value_str"] not in kernels:
        kernels.append(meta["value_str"])
order = ["scalar", "ssse3", "avx2", "gfni-avx2", "gfni-avx512"]
kernels.sort(key=lambda k: order.index(k) if k in order else 99)
print()
print("%-26s" % "median MB/s" + "".join("%13s" % k for k in kernels))
for name in sorted(rows, key=lambda s: (s.split("/")[1], s.split("/")[2], s.split("/")[0])):
    print("%-26s" % name + "".join("%13.1f" % rows[name][k] if k in rows[name] else "%13s" % "-" for k in kernels))
PY
  exit 0
fi

echo "== cairn: cargo bench -p cairn-core --bench fec -- '^fec/' $*" >&2
cargo bench -p cairn-core --bench fec -- '^fec/' "$@" >&2

echo "== zfec: $py bench/fec/zfec_bench.py --json --runs ${ZFEC_RUNS:-7}" >&2
"$py" "$here/zfec_bench.py" --json --runs "${ZFEC_RUNS:-7}" > "$out/zfec.jsonl"

"$py" - "$target/criterion" "$out/zfec.jsonl" <<'PY'
import json, os, sys
crit_dir, zfec_path = sys.argv[1], sys.argv[2]
cairn = {}
for dirpath, _, files in os.walk(crit_dir):
    if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
        continue
    meta = json.load(open(os.path.join(dirpath, "benchmark.json")))
    if meta.get("group_id") != "fec":
        continue
    est = json.load(open(os.path.join(dirpath, "estimates.json")))
    nbytes = meta["throughput"]["Bytes"]
    median_ns = est["median"]["point_estimate"]
    cairn[meta["function_id"]] = nbytes / median_ns * 1e3  # bytes/ns -> MB/s
zfec = {}
for line in open(zfec_path):
    r = json.loads(line)
    zfec[r["bench"]] = r["mbps"]
print()
print("%-26s %14s %14s %9s" % ("median MB/s", "cairn", "zfec 1.6", "ratio"))
for name in sorted(zfec, key=lambda s: (s.split("/")[1], s.split("/")[2], s.split("/")[0])):
    c = cairn.get(name)
    z = zfec[name]
    if c is None:
        print("%-26s %14s %14.1f %9s" % (name, "-", z, "-"))
    else:
        print("%-26s %14.1f %14.1f %8.1fx" % (name, c, z, c / z))
PY

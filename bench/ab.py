"""Same-run A/B of cairn builds: the grid or mutable benchmark, cairn only, run for each
build in turn, round after round (so drift and noise of a shared machine fall on every
build alike), then the median of every operation over all rounds per build.

    <tahoe venv>/bin/python bench/ab.py grid    OLD=/path/to/cairn NEW=target/release/cairn
    <tahoe venv>/bin/python bench/ab.py mutable OLD=... NEW=... [--rounds 2] [--json OUT]

A build of an older commit: `git worktree add /tmp/old REV && (cd /tmp/old &&
cargo build --release -p cairn-cli)`. Figures from different days are not comparable on a
shared VM (bench/grid/RESULTS.md shows the same binary 30% apart); this is what to use to
say whether a change made cairn slower.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = {
    "grid": ["--tahoe-modes", "", "--sizes", "1,10", "--runs", "5", "--big-mib", "0"],
    "mutable": ["--tahoe-modes", "", "--runs", "20", "--big-runs", "3", "--burst", "20"],
}


def samples(bench, result):
    """operation -> list of samples from one run's JSON (MiB/s for grid, ms for mutable)."""
    cairn = result["grids"]["cairn"]
    out = {}
    if bench == "grid":
        for size, r in cairn.items():
            for op in ("up", "down"):
                out["%s MiB %s (MiB/s)" % (size, "upload" if op == "up" else "download")] = r[op]
    else:
        for op, r in cairn.items():
            if isinstance(r, dict) and "samples_ms" in r:
                out[op + " (ms)"] = r["samples_ms"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", choices=sorted(ARGS))
    ap.add_argument("builds", nargs="+", metavar="LABEL=PATH")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    builds = [b.split("=", 1) for b in args.builds]
    acc = {label: {} for label, _ in builds}
    with tempfile.TemporaryDirectory(prefix="cairn-ab-") as tmp:
        for rnd in range(1, args.rounds + 1):
            for label, path in builds:
                out = os.path.join(tmp, "%s-%d.json" % (label, rnd))
                cmd = [sys.executable, "-u", os.path.join(HERE, args.bench, "run.py"),
                       "--cairn", path, "--json", out] + ARGS[args.bench]
                print("round %d: %s" % (rnd, label), flush=True)
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                with open(out) as f:
                    for op, xs in samples(args.bench, json.load(f)).items():
                        acc[label].setdefault(op, []).extend(xs)
    ops = list(acc[builds[0][0]])
    print("\n| operation | " + " | ".join(l for l, _ in builds) + " |")
    print("|---" * (len(builds) + 1) + "|")
    for op in ops:
        cells = []
        for label, _ in builds:
            xs = acc[label].get(op, [])
            cells.append("%.1f (%.1f..%.1f)" % (statistics.median(xs), min(xs), max(xs)) if xs else "-")
        print("| %s | %s |" % (op, " | ".join(cells)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bench": args.bench, "rounds": args.rounds,
                       "builds": dict(builds), "samples": acc}, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Throughput of the zfec Python package on the shapes of cairn's `fec` bench.

Usage: python bench/fec/zfec_bench.py [--runs N] [--json]

For each shape (3-of-10, 71-of-255) and segment size (128 KiB, 1 MiB):
  encode: zfec.Encoder(k, n).encode(pieces)            (computes the n-k check blocks)
  decode: zfec.Decoder(k, n).decode(last k blocks, nums) (worst case: fewest pieces)
Pieces are ceil(segsize / k) bytes.  Reports MB/s (10^6 bytes/s) of segment
data, k * piece_len bytes per call: the median over --runs runs, each run
timing enough calls to take about 0.2 s.
"""
import argparse
import json
import os
import statistics
import sys
import time

import zfec

SHAPES = [(3, 10), (71, 255)]
SEGMENTS = [(128 * 1024, "128KiB"), (1024 * 1024, "1MiB")]


def timed(fn, min_time=0.2):
    """Seconds per call, from a batch of calls lasting at least min_time."""
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return dt / calls
        calls = max(calls * 2, int(calls * min_time / max(dt, 1e-9)) + 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = ap.parse_args()
    if not args.json:
        print("zfec %s (%s)" % (zfec.__version__, os.path.dirname(zfec.__file__)))
        print("%-28s %10s %10s %10s" % ("bench", "median", "min", "max"))
    for (k, n) in SHAPES:
        enc = zfec.Encoder(k, n)
        dec = zfec.Decoder(k, n)
        for (segsize, seglabel) in SEGMENTS:
            piece_len = -(-segsize // k)
            pieces = [os.urandom(piece_len) for _ in range(k)]
            blocks = enc.encode(pieces)
            nums = list(range(n - k, n))
            given = [blocks[i] for i in nums]
            assert [bytes(b) for b in dec.decode(given, nums)] == pieces
            data = k * piece_len
            for (op, fn) in (("encode", lambda: enc.encode(pieces)),
                             ("decode", lambda: dec.decode(given, nums))):
                rates = [data / timed(fn) / 1e6 for _ in range(args.runs)]
                name = "%s/%d-of-%d/%s" % (op, k, n, seglabel)
                med = statistics.median(rates)
                if args.json:
                    print(json.dumps({"bench": name, "mbps": med, "min": min(rates), "max": max(rates)}))
                else:
                    print("%-28s %10.1f %10.1f %10.1f" % (name, med, min(rates), max(rates)))
                sys.stdout.flush()


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Storage-server benchmark over Tahoe's HTTPS storage protocol, on this machine, 127.0.0.1 only:
#  1. load: one cairn storage node (its own process), 50 concurrent clients x 40 immutable
#     uploads of 64 KiB (allocate + 16 KiB PATCHes); uploads/s, MiB/s, p50/p99, errors (must
#     be 0), then SIGTERM and `cairn storage audit` (must be clean);
#  2. one cairn storage node beside one Tahoe-LAFS 1.20 storage node, the same Rust client
#     (crates/cairn-client/examples/storage_load.rs) driving both: write and read MiB/s,
#     median of 5 runs, ratio cairn / Tahoe.
#   bash bench/storage/run.sh --json bench/storage/results-$(date +%F).json   # 4-6 minutes
#   bash bench/storage/run.sh --quick                                          # about 20 s
# Arguments go to bench/storage/run.py.  Exits non-zero on any error or an unclean audit.
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p cairn-cli
cargo build --release -q -p cairn-client --example storage_load
VENV=$(bash scripts/setup-tahoe-venv.sh)
exec "$VENV/bin/python" -u bench/storage/run.py --cairn "$TARGET/release/cairn" \
  --load "$TARGET/release/examples/storage_load" "$@"

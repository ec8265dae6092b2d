#!/usr/bin/env bash
# Side-by-side benchmark of a 10-server Tahoe-LAFS 1.20 grid and a 10-server cairn grid on
# this machine (every node its own process, 3-of-10, happy 7): upload and download of 1, 10
# and 100 MiB of fresh random data through each client's web gateway, MiB/s and the ratio,
# and the client's peak memory; then a 1 GiB upload through cairn for its peak memory.
#   bash bench/grid/run.sh                    # everything (about 10 minutes)
#   bash bench/grid/run.sh --tahoe-modes https --sizes 10 --runs 1 --big-mib 0   # quick
# Arguments go to bench/grid/run.py.  Needs curl.  Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p cairn-cli
VENV=$(bash scripts/setup-tahoe-venv.sh)
exec "$VENV/bin/python" -u bench/grid/run.py --cairn target/release/cairn "$@"

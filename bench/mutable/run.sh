#!/usr/bin/env bash
# Side-by-side benchmark of mutable files on a 10-server Tahoe-LAFS 1.20 grid (HTTPS storage
# protocol, then Foolscap) and a 10-server cairn grid on this machine (every node its own
# process, 3-of-10, happy 7), through each client's web gateway: 1 KiB SDMF/MDMF create,
# overwrite and read, 10 MiB MDMF read, 4 KiB in-place change of the 10 MiB file; latency
# and the storage-server requests of each operation.
#   bash bench/mutable/run.sh --json bench/mutable/results-$(date +%F).json   # about 10 minutes
#   bash bench/mutable/run.sh --tahoe-modes https --runs 5 --big-runs 2 --burst 0   # quick
# Arguments go to bench/mutable/run.py.  Needs curl.  Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p cairn-cli
VENV=$(bash scripts/setup-tahoe-venv.sh)
exec "$VENV/bin/python" -u bench/mutable/run.py --cairn target/release/cairn "$@"

#!/usr/bin/env bash
# Runs every cairn test. Sets up what the tests need by itself.
#   bash scripts/test.sh                  # everything: purity check, unit/property/golden-vector
#                                         # tests, CLI smoke, interop with real Tahoe-LAFS 1.20, fuzz smoke
#   FUZZ_SECONDS=0 bash scripts/test.sh   # skip the fuzz smoke run
#   INTEROP=0 bash scripts/test.sh        # skip the interop suite (it needs PyPI for tahoe-lafs once)
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-10}"
INTEROP="${INTEROP:-1}"

step() { printf '\n== %s\n' "$*"; }

step "core purity check"
bash scripts/check-core-purity.sh

# CI builds once from clean: incremental caches would only cost disk (4 GB of it).
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

step "build"
# Test binaries in the test profile (what the next step runs, so nothing is built
# twice), and a type check of the benches so they cannot rot.
cargo test --workspace --locked --no-run
cargo check --workspace --benches --locked

step "tests (unit, property, golden vectors from Tahoe-LAFS 1.20)"
# The summary line of this run is the one CI reads.
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
summary=$(grep -E '^test result:' target/test-output.txt | awk '{p+=$4; f+=$6; i+=$8} END {print p" passed, "f" failed, "i" skipped"}')

step "CLI smoke: cairn cap matches a golden vector"
bash scripts/cli-smoke.sh

if [ "$INTEROP" != 0 ]; then
  step "interop with real Tahoe-LAFS 1.20 nodes (sets up its venv)"
  bash scripts/interop.sh 2>&1 | tee target/interop-output.txt
  interop=$(grep -E '^[0-9]+ passed, [0-9]+ failed' target/interop-output.txt | tail -1)
  summary=$(printf '%s\n%s\n' "$summary" "$interop" | awk -F'[ ,]+' '{p+=$1; f+=$3; if ($5 != "") s+=$5} END {print p" passed, "f" failed, "s+0" skipped"}')
fi

if [ "$FUZZ_SECONDS" != 0 ]; then
  step "fuzz smoke: each parser's fuzz target for ${FUZZ_SECONDS}s"
  bash scripts/fuzz.sh "$FUZZ_SECONDS"
fi

step "summary"
echo "$summary"

#!/usr/bin/env bash
# Runs every fuzz target for a short time (default 15 s each), seeded from the golden vectors.
#   bash scripts/fuzz.sh [SECONDS]
# Needs cargo-fuzz (installed here if missing). The machine has one stable toolchain;
# RUSTC_BOOTSTRAP=1 lets it accept the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-15}"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (once per machine)"
  cargo install cargo-fuzz --locked --quiet
fi
python3 scripts/fuzz_seeds.py fuzz/corpus
targets=$(cd fuzz && cargo fuzz list)
(cd fuzz && cargo fuzz build --release $targets >/dev/null 2>&1) || (cd fuzz && cargo fuzz build --release)
for t in $targets; do
  mkdir -p "fuzz/corpus/$t"
  echo "fuzz: $t for ${secs}s"
  (cd fuzz && cargo fuzz run --release "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 2>&1 \
     | grep -E 'stat::number_of_executed_units|Done|ERROR|panicked|SUMMARY' ) || { echo "fuzz target $t failed"; exit 1; }
done

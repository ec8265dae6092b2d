#!/usr/bin/env bash
# The README's first command. On a fresh clone: builds cairn, starts a local grid (storage
# servers and a client node, each its own process, on 127.0.0.1 only), uploads a file of
# fresh random bytes through the client's gateway, downloads it back, checks it byte for byte
# (SHA-256), prints the cap and the throughput, and stops the grid.
#   bash scripts/demo.sh                              # 64 MiB over 10 servers, 3-of-10 encoding
#   DEMO_MIB=256 DEMO_SERVERS=5 bash scripts/demo.sh  # other sizes
#   DEMO_KEEP=1 bash scripts/demo.sh                  # keep the grid directory (logs, shares)
set -euo pipefail
cd "$(dirname "$0")/.."

MIB="${DEMO_MIB:-64}"
SERVERS="${DEMO_SERVERS:-10}"
case "$MIB$SERVERS" in *[!0-9]*) echo "DEMO_MIB and DEMO_SERVERS must be numbers" >&2; exit 2 ;; esac

if command -v sha256sum >/dev/null; then sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null; then sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else echo "need sha256sum or shasum" >&2; exit 2; fi
command -v cargo >/dev/null || { echo "need cargo (https://rustup.rs)" >&2; exit 2; }

step() { printf '\n== %s\n' "$*"; }

step "build: cargo build --release"
cargo build --release --locked -p cairn-cli
CAIRN="$PWD/target/release/cairn"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-demo.XXXXXX")
GRID="$WORK/grid"
cleanup() {
  if [ -f "$GRID/grid.json" ]; then
    "$CAIRN" grid down --dir "$GRID" >/dev/null || true
  fi
  if [ "${DEMO_KEEP:-0}" != 0 ]; then
    echo "kept $WORK (grid: $GRID)"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "start a local grid: $SERVERS storage servers and a client node on 127.0.0.1"
gateway=$("$CAIRN" grid up --servers "$SERVERS" --dir "$GRID" --detach)
echo "gateway: $gateway"

step "upload $MIB MiB of fresh random data (cairn put)"
head -c "$((MIB * 1048576))" /dev/urandom > "$WORK/random.bin"
put_json=$("$CAIRN" put --json -d "$GRID/client" "$WORK/random.bin")
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" <<<"$2"; }
cap=$(field cap "$put_json")
[ -n "$cap" ] || { echo "no cap in: $put_json" >&2; exit 1; }

step "download it back (cairn get)"
get_json=$("$CAIRN" get --json -d "$GRID/client" "$cap" "$WORK/back.bin")

sum_in=$(sha256 "$WORK/random.bin")
sum_out=$(sha256 "$WORK/back.bin")

step "result"
echo "cap:      $cap"
printf 'upload:   %s MiB in %s s = %s MiB/s\n' "$MIB" "$(field seconds "$put_json")" "$(field mib_per_s "$put_json")"
printf 'download: %s MiB in %s s = %s MiB/s\n' "$MIB" "$(field seconds "$get_json")" "$(field mib_per_s "$get_json")"
if [ "$sum_in" != "$sum_out" ]; then
  echo "sha256:   MISMATCH: uploaded $sum_in, downloaded $sum_out" >&2
  exit 1
fi
echo "sha256:   $sum_in (identical after the round trip)"

step "stop the grid (cairn grid down)"
"$CAIRN" grid down --dir "$GRID" | tail -1

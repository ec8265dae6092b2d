#!/usr/bin/env bash
# Interop tests against real Tahoe-LAFS 1.20: Tahoe client nodes over cairn storage servers
# (immutable, SDMF, MDMF, leases, mixed grids), cairn serving directories written by real
# Tahoe storage nodes, and real Tahoe storage nodes serving the shares cairn wrote.  Every
# scenario also runs with real Tahoe storage servers as a control.
#   bash scripts/interop.sh                      # everything; last line: "N passed, N failed"
#   bash scripts/interop.sh -k cairn/mdmf        # only matching tests (args go to tests/interop/run.py)
#   INTEROP_BACKENDS=cairn bash scripts/interop.sh   # skip the Tahoe-only control runs
#   INTEROP_KEEP=1 ...                           # keep node dirs/logs even when all passed
#   CAIRN_BIN=path/to/cairn ...                  # use this binary instead of building one
# Sets up what it needs: builds cairn (release) and a venv with tahoe-lafs 1.20.0 (PyPI).
# Only 127.0.0.1 is used; every process started is stopped at the end, also on failure.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
LIMIT=${INTEROP_TIMEOUT:-420}   # seconds for the Python suite; it stops itself then

summary() { echo "$1 passed, $2 failed"; }

WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/cairn-interop.XXXXXX")
PYPID=
# Safety net: the suite stops its own processes; if it could not (killed, crashed), stop
# every process it recorded -- by process group, and only if its command line still names
# our work dir (guards against pid reuse).
cleanup() {
  local pid marker left=0
  if [ -n "$PYPID" ] && kill -0 "$PYPID" 2>/dev/null; then
    kill -TERM "$PYPID" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$PYPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PYPID" 2>/dev/null
  fi
  if [ -f "$WORKDIR/pids" ]; then
    while read -r pid marker; do
      [ -n "$pid" ] || continue
      if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$WORKDIR"; then
        kill -TERM -- "-$pid" 2>/dev/null; left=$((left + 1))
      fi
    done < "$WORKDIR/pids"
    if [ "$left" -gt 0 ]; then
      echo "interop.sh: stopped $left leftover node process group(s)" >&2
      sleep 2
      while read -r pid marker; do
        [ -n "$pid" ] || continue
        if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$WORKDIR"; then kill -KILL -- "-$pid" 2>/dev/null; fi
      done < "$WORKDIR/pids"
    fi
  fi
}
SUMMARY=$WORKDIR.summary
interrupted() {
  cleanup
  local last
  last=$(cat "$SUMMARY" 2>/dev/null); rm -f "$SUMMARY"
  echo "interop: interrupted"
  if [ -n "$last" ] && [[ "$last" != *" 0 failed"* ]]; then echo "$last"; else summary 0 1; fi
  exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

CAIRN_ERR=
if [ -n "${CAIRN_BIN:-}" ]; then
  CAIRN=$CAIRN_BIN   # a prebuilt binary: no build
  echo "== interop: cairn binary $CAIRN (CAIRN_BIN, not rebuilt)"
else
  echo "== interop: build cairn (release)"
  CAIRN=$REPO/target/release/cairn
  t0=$(date +%s)
  cargo build --release -p cairn-cli > "$WORKDIR.build" 2>&1
  brc=$?
  tail -n 40 "$WORKDIR.build"
  rm -f "$WORKDIR.build"
  if [ "$brc" != 0 ] || [ ! -x "$CAIRN" ]; then
    CAIRN_ERR="cargo build --release -p cairn-cli failed (exit $brc, see its output above)"
    echo "interop: $CAIRN_ERR; cairn tests will fail, Tahoe control tests still run"
  fi
  echo "   ($(( $(date +%s) - t0 ))s)"
fi

echo "== interop: Tahoe-LAFS 1.20 venv"
t0=$(date +%s)
if ! VENV=$(bash scripts/setup-tahoe-venv.sh); then
  echo "interop: could not set up the tahoe-lafs venv"
  summary 0 1
  exit 1
fi
echo "   $VENV ($(( $(date +%s) - t0 ))s)"

echo "== interop: scenarios"
KEEP=()
[ -n "${INTEROP_KEEP:-}" ] && KEEP=(--keep)
"$VENV/bin/python" -u tests/interop/run.py --cairn "$CAIRN" ${CAIRN_ERR:+--cairn-error "$CAIRN_ERR"} \
  --workdir "$WORKDIR" --timeout "$LIMIT" --summary-file "$SUMMARY" "${KEEP[@]}" "$@" 2>&1 &
PYPID=$!
# a hard limit above the suite's own, in case it cannot stop itself
( sleep $((LIMIT + 60)); kill -TERM "$PYPID" 2>/dev/null ) >/dev/null 2>&1 &
WATCHDOG=$!
wait "$PYPID"
rc=$?
kill "$WATCHDOG" 2>/dev/null; wait "$WATCHDOG" 2>/dev/null
PYPID=
leftovers=$(cleanup 2>&1)
last=$(cat "$SUMMARY" 2>/dev/null)
rm -f "$SUMMARY"
[ -d "$WORKDIR" ] && [ -z "$(ls -A "$WORKDIR" 2>/dev/null)" ] && rmdir "$WORKDIR"
if [ -z "$last" ]; then
  echo "interop: the suite ended without a summary (exit $rc)${leftovers:+; $leftovers}"
  summary 0 1
  exit 1
fi
if [ "$rc" != 0 ] && [[ "$last" == *" 0 failed"* ]]; then
  echo "interop: the suite exited $rc${leftovers:+; $leftovers}"
  summary 0 1
  exit 1
fi
if [ -n "$leftovers" ]; then
  # the suite's summary was its last line; keep it last after this note
  echo "interop: $leftovers"
  echo "$last"
fi
exit "$rc"

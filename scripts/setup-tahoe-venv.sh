#!/usr/bin/env bash
# Creates (once) a Python venv with tahoe-lafs 1.20.0 for the interop tests and prints its path
# on stdout (progress goes to stderr).  Idempotent and fast when the venv is already there.
#   bash scripts/setup-tahoe-venv.sh            # venv at ${TAHOE_VENV:-<repo>/.venv-tahoe}
#   PYTHON=python3.12 bash scripts/setup-tahoe-venv.sh   # pick the interpreter (3.9 .. 3.12)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${TAHOE_VENV:-$REPO/.venv-tahoe}
WANT=1.20.0
CONSTRAINTS=$REPO/tests/interop/tahoe-constraints.txt
CREATING=.cairn-venv-creating   # marker: a venv this script started and did not finish

say() { printf '[setup-tahoe-venv] %s\n' "$*" >&2; }

# tahoe-lafs version installed in $VENV ("" if none); does not import tahoe (fast)
installed_version() {
  [ -x "$VENV/bin/python" ] || return 0
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("tahoe-lafs"))' 2>/dev/null || true
}

ready() { [ ! -e "$VENV/$CREATING" ] && [ "$(installed_version)" = "$WANT" ] && [ -x "$VENV/bin/tahoe" ]; }

if ready; then echo "$VENV"; exit 0; fi

mkdir -p "$(dirname "$VENV")"
LOCK=${TMPDIR:-/tmp}/cairn-tahoe-venv-$(printf '%s' "$VENV" | sha1sum | cut -c1-12).lock
exec 9>"$LOCK"
if ! flock -w 600 9; then say "timed out waiting for another setup of $VENV (lock $LOCK)"; exit 1; fi
if ready; then echo "$VENV"; exit 0; fi   # someone else finished it while we waited

pick_python() {
  local c v
  for c in ${PYTHON:-} python3.11 python3.12 python3.10 python3.9 python3; do
    command -v "$c" >/dev/null 2>&1 || continue
    v=$("$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
    case "$v" in 3.9|3.10|3.11|3.12) echo "$c"; return 0 ;; esac
  done
  return 1
}

if [ -e "$VENV" ] && { [ -e "$VENV/$CREATING" ] || [ -z "$(ls -A "$VENV")" ]; }; then
  say "removing unfinished venv $VENV"
  rm -rf "$VENV"
fi
if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
  say "$VENV exists and is not a venv; set TAHOE_VENV elsewhere or remove it"
  exit 1
fi
if [ ! -e "$VENV" ]; then
  PY=$(pick_python) || { say "need Python 3.9..3.12 for tahoe-lafs $WANT (set PYTHON=...)"; exit 1; }
  say "creating venv $VENV with $PY ($("$PY" --version 2>&1))"
  "$PY" -m venv "$VENV"
  touch "$VENV/$CREATING"
fi
t0=$(date +%s)
say "installing tahoe-lafs==$WANT (a minute or so)"
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" >&2; }
if ! pip_install -c "$CONSTRAINTS" "tahoe-lafs==$WANT"; then
  say "install with pinned constraints failed; retrying without them"
  pip_install "tahoe-lafs==$WANT"
fi
rm -f "$VENV/$CREATING"
ready || { say "tahoe-lafs $WANT is not usable in $VENV after install"; exit 1; }
"$VENV/bin/tahoe" --version >/dev/null 2>&1 || { say "'$VENV/bin/tahoe --version' fails"; exit 1; }
say "ready in $(( $(date +%s) - t0 ))s: $VENV"
echo "$VENV"

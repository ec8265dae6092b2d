#!/usr/bin/env bash
# Fails if cairn-core gains I/O, a clock, an async runtime or global randomness.
# The core crate holds pure protocol logic; I/O crates drive it (see ARCHITECTURE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

# 1. No dependency (direct or transitive, normal edges only) that brings a runtime,
#    sockets, files, a database or a clock.
banned_crates='^(tokio|tokio-[a-z-]+|async-std|async-io|async-executor|smol|mio|futures-executor|hyper|hyper-util|reqwest|socket2|rustls|tokio-rustls|tempfile|walkdir|notify|chrono|time|rusqlite|libsqlite3-sys|tracing-subscriber|env_logger|memmap2) v'
deps=$(cargo tree -p cairn-core -e normal --prefix none --offline 2>/dev/null || cargo tree -p cairn-core -e normal --prefix none)
if bad=$(printf '%s\n' "$deps" | grep -E "$banned_crates" | sort -u) && [ -n "$bad" ]; then
  echo "cairn-core depends on crates that do I/O or keep time:" >&2
  printf '  %s\n' $bad >&2
  status=1
fi

# 2. No use of the standard library's I/O, clock, threads or environment, and no
#    ambient randomness, in the crate's own source (tests and benches may use them).
banned_api='std::(fs|net|io::std|time|thread|process|env)\b|SystemTime|Instant::now|thread_rng|OsRng|rand::random|getrandom|tokio::|async fn|\.await'
if hits=$(grep -rnE "$banned_api" crates/cairn-core/src | grep -vE '^\S+:\s*//' ) && [ -n "$hits" ]; then
  echo "cairn-core source uses I/O, a clock, threads or ambient randomness:" >&2
  printf '%s\n' "$hits" >&2
  status=1
fi

if [ $status -eq 0 ]; then
  echo "core purity: ok (no I/O, clock, runtime or global RNG in cairn-core)"
fi
exit $status

#!/usr/bin/env bash
# sqlite3-shell suite: loads target/debug/liboversqlite with `.load` (no entry point
# named), checks captured writes, including writes made by a sqlite3 without the
# extension, the error format on stderr, and the README example.
# Usage (from anywhere): bash tests/shell/run.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

if [[ ! -f target/debug/liboversqlite.so ]]; then
  echo "FAIL: target/debug/liboversqlite.so missing; run: cargo build -p oversqlite" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
db="$tmp/app.db"
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

{
  sqlite3 "$db" < "$here/local.sql" 2> "$tmp/session1.err"
  sqlite3 "$db" < "$here/plain_writes.sql"
  sqlite3 "$db" < "$here/read_pending.sql"
} > "$tmp/out.txt" || true

if diff -u "$here/local.expected" "$tmp/out.txt"; then
  pass "captured rows across three sessions (one without the extension)"
else
  fail "captured rows across three sessions (diff above)"
fi

for want in \
  'oversqlite_enable_sync: invalid_config: table "nope" does not exist in the main database' \
  'oversqlite_init: invalid_argument: argument 1 (server_url) must be TEXT, got INTEGER'; do
  if grep -qF "$want" "$tmp/session1.err"; then
    pass "stderr has: $want"
  else
    fail "stderr lacks: $want"; cat "$tmp/session1.err"
  fi
done
if [[ "$(grep -c . "$tmp/session1.err")" == 2 ]]; then
  pass "exactly the two expected errors"
else
  fail "unexpected stderr lines"; cat "$tmp/session1.err"
fi

example_out="$(sqlite3 :memory: '.read sql/examples/local_capture.sql' 2>&1)"
if [[ "$example_out" == "$(cat "$here/local_capture.expected")" ]]; then
  pass "sql/examples/local_capture.sql"
else
  fail "sql/examples/local_capture.sql"; diff -u "$here/local_capture.expected" <(echo "$example_out") || true
fi

echo "$passed passed, $failed failed"
[[ "$failed" == 0 ]]

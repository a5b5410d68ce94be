#!/usr/bin/env bash
# sqlite3-shell sync suite: starts oversqlite-server on a free loopback port, then two
# database files (two devices of one user) write, sync and see each other's rows, all
# through `.load` and SQL in the stock sqlite3 shell.
# Server binary: $OVERSQLITE_SERVER_BIN (default target/debug/oversqlite-server).
# Usage (from anywhere): bash tests/shell/sync.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
server_bin="${OVERSQLITE_SERVER_BIN:-target/debug/oversqlite-server}"

for f in target/debug/liboversqlite.so "$server_bin"; do
  if [[ ! -f "$f" ]]; then
    echo "FAIL: $f missing; run: cargo build -p oversqlite && cargo build -p oversqlite-server" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
done

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill -9 "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The configuration shared with the e2e, Python and Node suites (users, notes, ...).
cp tests/server-config.toml "$tmp/server.toml"

mkfifo "$tmp/banner"
"$server_bin" serve --config "$tmp/server.toml" --listen 127.0.0.1:0 --data "$tmp/server.db" \
  --jwt-secret shell-sync-secret --enable-test-endpoints --shutdown-grace-ms 0 \
  > "$tmp/banner" 2>/dev/null &
server_pid=$!
read -r -t 20 banner < "$tmp/banner"
url="${banner##* }"
if [[ "$url" != http://127.0.0.1:* ]]; then
  echo "FAIL: unexpected server banner: $banner"; echo "0 passed, 1 failed"; exit 1
fi
token="$(curl -sf -X POST -H 'Content-Type: application/json' -d '{"user":"alice","password":"x"}' "$url/dummy-signin" \
  | sed -E 's/.*"token":"([^"]+)".*/\1/')"

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

# Runs SQL on a device database with the extension loaded, configured, opened, token set
# and attached; output in list mode. The token never appears in output.
device() {
  local db="$1"; shift
  sqlite3 -batch "$tmp/$db.db" <<SQL
.load ./target/debug/liboversqlite
.mode list
.output /dev/null
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL REFERENCES users(id), body TEXT, score REAL, data BLOB);
SELECT oversqlite_init('$url', 'main');
SELECT oversqlite_enable_sync('users');
SELECT oversqlite_enable_sync('notes');
SELECT oversqlite_open();
SELECT oversqlite_set_token('$token');
SELECT oversqlite_attach('alice');
.output stdout
$*
SQL
}

# Both devices attach while the scope is still empty.
out="$(device a "SELECT json_extract(oversqlite_status(), '\$.pending.pending_row_count');
SELECT count(*) FROM users;" 2>&1)$(device b "SELECT count(*) FROM users;" 2>&1)"
if [[ "$out" == $'0\n00' ]]; then pass "both devices attach to an empty scope"; else fail "attach: $out"; fi

out="$(device a "INSERT INTO users VALUES ('u1', 'Ada');
INSERT INTO notes (id, user_id, body) VALUES ('n1', 'u1', 'from the shell');
SELECT count(*) FROM oversqlite_pending;
SELECT json_extract(oversqlite_sync(), '\$.push_outcome');
SELECT count(*) FROM oversqlite_pending;" 2>&1)"
if [[ "$out" == $'2\ncommitted\n0' ]]; then pass "device A pushes two captured rows"; else fail "device A push: $out"; fi

out="$(device b "SELECT json_extract(oversqlite_sync(), '\$.remote_outcome');
SELECT id || '|' || name FROM users;
SELECT id || '|' || user_id || '|' || body FROM notes;" 2>&1)"
if [[ "$out" == $'applied_incremental\nu1|Ada\nn1|u1|from the shell' ]]; then pass "device B sees device A's rows"; else fail "device B pull: $out"; fi

out="$(device b "UPDATE notes SET body = 'edited on B' WHERE id = 'n1';
INSERT INTO users VALUES ('u2', 'Grace');
SELECT json_extract(oversqlite_sync(), '\$.push_outcome');" 2>&1)"
if [[ "$out" == "committed" ]]; then pass "device B pushes an update and an insert"; else fail "device B push: $out"; fi

out="$(device a "SELECT json_extract(oversqlite_sync(), '\$.remote_outcome');
SELECT group_concat(id || '|' || name, ',') FROM (SELECT * FROM users ORDER BY id);
SELECT body FROM notes WHERE id = 'n1';" 2>&1)"
if [[ "$out" == $'applied_incremental\nu1|Ada,u2|Grace\nedited on B' ]]; then pass "device A sees device B's changes"; else fail "device A pull: $out"; fi

# One statement per line: an error ends the rest of its line, but not the next lines.
out="$(device a "BEGIN;
INSERT INTO users VALUES ('u3', 'Linus');
SELECT oversqlite_sync();
COMMIT;" 2>&1 || true)"
if [[ "$out" == *"oversqlite_sync: transaction_open: "* && "$out" != *"$token"* ]]; then
  pass "sync inside a transaction fails with transaction_open"
else
  fail "sync inside a transaction: $out"
fi

out="$(device a "SELECT json_extract(oversqlite_sync_then_detach(), '\$.is_success');
SELECT count(*) FROM users;" 2>&1)"
if [[ "$out" == $'1\n0' ]]; then pass "sync_then_detach uploads the last row and empties device A"; else fail "sync_then_detach: $out"; fi

out="$(device b "SELECT json_extract(oversqlite_sync(), '\$.remote_outcome'); SELECT count(*) FROM users;" 2>&1)"
if [[ "$out" == $'applied_incremental\n3' ]]; then pass "device B receives the row uploaded before detach"; else fail "device B final pull: $out"; fi

echo "$passed passed, $failed failed"
[[ "$failed" == 0 ]]

#!/usr/bin/env bash
# make demo: two devices of one user ("phone" and "laptop") syncing one table through
# oversqlite-server, told step by step with the SQL each device runs. Every claim the
# story makes is checked against the rows; any mismatch ends the demo with status 1.
#
# Builds nothing: `make demo` builds the release extension and server first.
#   OVERSQLITE_EXTENSION  liboversqlite.so to load   (default target/release/liboversqlite.so)
#   OVERSQLITE_SERVER_BIN oversqlite-server binary   (default target/release/oversqlite-server)
#   SQLITE3               sqlite3 shell               (default sqlite3)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXT=${OVERSQLITE_EXTENSION:-$ROOT/target/release/liboversqlite.so}
SERVER_BIN=${OVERSQLITE_SERVER_BIN:-$ROOT/target/release/oversqlite-server}
SQLITE3=${SQLITE3:-sqlite3}
CONFIG=$ROOT/scripts/demo-server.toml
USER_ID=alice

die() { printf '\ndemo FAILED: %s\n' "$*" >&2; exit 1; }
[[ -f $EXT ]] || die "extension $EXT not found (cargo build --release -p oversqlite, or set OVERSQLITE_EXTENSION)"
[[ -x $SERVER_BIN ]] || die "server $SERVER_BIN not found (cargo build --release -p oversqlite-server, or set OVERSQLITE_SERVER_BIN)"
command -v "$SQLITE3" >/dev/null || die "no sqlite3 shell ($SQLITE3)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/oversqlite-demo.XXXXXX")
SERVER_PID=""
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- presentation -----------------------------------------------------------------
if [[ -t 1 ]]; then BOLD=$'\033[1m' GREEN=$'\033[32m' PLAIN=$'\033[0m'; else BOLD="" GREEN="" PLAIN=""; fi
STEP=0
step() { STEP=$((STEP + 1)); printf '\n%s%d. %s%s\n' "$BOLD" "$STEP" "$1" "$PLAIN"; }
say() { printf '   %s\n' "$@"; }
ok() { printf '   %scheck:%s %s\n' "$GREEN" "$PLAIN" "$1"; }

# Shows a JSON report readably (python3 when present; the compact text otherwise).
pretty() {
  if [[ -x /usr/bin/python3 ]]; then
    /usr/bin/python3 -c 'import json,sys
for line in sys.stdin:
    line = line.strip()
    if not line: continue
    try: print(json.dumps(json.loads(line), indent=2))
    except ValueError: print(line)' | sed 's/^/      /'
  else
    sed 's/^/      /'
  fi
}

# ---- the devices ------------------------------------------------------------------
# Every sqlite3 invocation is one "app launch": load the extension, then (once set up)
# oversqlite_open() and oversqlite_attach(user), which resumes the stored binding
# without any network request. The token comes from OVERSQLITE_TOKEN_FILE, so it never
# appears in SQL or in this output.
LAUNCH=""
launch_sql() {
  printf '.load %s\n' "${EXT%.so}"
  if [[ -n $LAUNCH ]]; then
    printf '.output /dev/null\n%s\n.output stdout\n' "$LAUNCH"
  fi
}

# run DEVICE SQL: print the SQL, run it on DEVICE's database, print the output.
run() {
  local device=$1 sql=$2 out
  printf '%s\n' "$sql" | sed "s/^/   $device> /"
  out=$( { launch_sql; printf '%s\n' "$sql"; } | (cd "$ROOT" && "$SQLITE3" -batch -bail "$WORK/$device.db") 2>&1) \
    || die "$device: $out"
  [[ -z $out ]] || printf '%s\n' "$out" | sed 's/^/      /'
}

# report DEVICE CALL: run a function returning a JSON report and show it pretty.
report() {
  local device=$1 call=$2 out
  printf '   %s> SELECT %s;\n' "$device" "$call"
  out=$( { launch_sql; printf 'SELECT %s;\n' "$call"; } | "$SQLITE3" -batch -bail "$WORK/$device.db" 2>&1) \
    || die "$device: $out"
  LAST_REPORT=$out
  printf '%s\n' "$out" | pretty
}

# q DEVICE SQL: the output only (for checks), nothing printed.
q() {
  { launch_sql; printf '%s\n' "$2"; } | "$SQLITE3" -batch -bail -noheader -list "$WORK/$1.db" 2>&1 \
    || die "$1: query failed: $2"
}

# expect WHAT EXPECTED ACTUAL
expect() {
  [[ $2 == "$3" ]] || die "$1: expected [$2], got [$3]"
  ok "$1"
}

json_field() { # json_field JSON PATH → value via SQLite's own json_extract
  "$SQLITE3" -batch :memory: "SELECT json_extract('$(printf '%s' "$1" | sed "s/'/''/g")', '$2');"
}

# ---- the story --------------------------------------------------------------------
printf '%soversqlite demo: one user, two devices, one server%s\n' "$BOLD" "$PLAIN"
say "Alice uses a notes app on her phone and her laptop. Each device keeps its own SQLite" \
    "database and works offline; oversqlite syncs them through the server."

step "Start the sync server"
export OVERSQLITE_JWT_SECRET="demo-$$-$RANDOM$RANDOM"
"$SERVER_BIN" serve --config "$CONFIG" --listen 127.0.0.1:0 --data "$WORK/server.db" \
  --shutdown-grace-ms 0 >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 100); do
  URL=$(grep -o 'http://[0-9.:]*' "$WORK/server.out" 2>/dev/null || true)
  [[ -n $URL ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || die "server exited: $(cat "$WORK/server.err")"
  sleep 0.1
done
[[ -n $URL ]] || die "server did not start within 10 s"
say "oversqlite-server listens on $URL (a free loopback port, a throw-away store)." \
    "Its config (scripts/demo-server.toml) registers one synced table: demo.person."
"$SERVER_BIN" token --config "$CONFIG" --user "$USER_ID" >"$WORK/token"
export OVERSQLITE_TOKEN_FILE=$WORK/token
say "A bearer token for user '$USER_ID' was minted (oversqlite-server token) and handed to" \
    "the extension through OVERSQLITE_TOKEN_FILE; it is never stored in a database."

step "Set up both devices (what an app's migration does once)"
say "Create the table, tell oversqlite where the server is and which table to sync, then" \
    "oversqlite_open() installs the change-capture triggers and the _sync_* bookkeeping."
for device in phone laptop; do
  run $device ".parameter set @server_url \"'$URL'\"
.read sql/examples/demo_setup.sql"
done
say "(sql/examples/demo_setup.sql holds these statements:)"
grep -v -e '^--' -e '^$' "$ROOT/sql/examples/demo_setup.sql" | sed 's/^/      | /'
expect "both devices manage table person" "person|person" \
  "$(q phone "SELECT table_name FROM _sync_managed_tables;")|$(q laptop "SELECT table_name FROM _sync_managed_tables;")"

step "Sign both devices in as $USER_ID"
say "oversqlite_attach(user) binds the database to the user. The first device finds an" \
    "empty account; the second one joins it."
report phone "oversqlite_attach('$USER_ID')"
PHONE_ATTACH=$(json_field "$LAST_REPORT" '$.outcome')
report laptop "oversqlite_attach('$USER_ID')"
LAPTOP_ATTACH=$(json_field "$LAST_REPORT" '$.outcome')
expect "phone attached (outcome $PHONE_ATTACH)" "attached|$USER_ID" \
  "$(q phone "SELECT binding_state || '|' || attached_user_id FROM oversqlite_source_info;")"
expect "laptop attached (outcome $LAPTOP_ATTACH)" "attached|$USER_ID" \
  "$(q laptop "SELECT binding_state || '|' || attached_user_id FROM oversqlite_source_info;")"
say "From now on every launch of a device runs oversqlite_open() and" \
    "oversqlite_attach('$USER_ID') first; for an attached database that costs no request."
LAUNCH="SELECT oversqlite_open(); SELECT oversqlite_attach('$USER_ID');"

step "Write on the phone (offline-first: plain SQL, no network)"
run phone "INSERT INTO person VALUES ('p1', 'Ada Lovelace', 'ada@example.com');
INSERT INTO person VALUES ('p2', 'Alan Turing', 'alan@example.com');"
say "The triggers recorded both rows as pending changes:"
run phone ".mode column
SELECT table_name, key_json, op FROM oversqlite_pending;"
expect "two pending changes on the phone" "2" "$(q phone "SELECT count(*) FROM oversqlite_pending;")"

step "Sync the phone, then the laptop"
say "oversqlite_sync() pushes local changes as one bundle, then pulls what others wrote."
report phone "oversqlite_sync()"
expect "phone pushed its bundle" "committed" "$(json_field "$LAST_REPORT" '$.push_outcome')"
report laptop "oversqlite_sync()"
expect "laptop pulled it" "applied_incremental" "$(json_field "$LAST_REPORT" '$.remote_outcome')"
say "The rows arrived on the laptop:"
run laptop ".mode column
SELECT id, name, email FROM person ORDER BY id;"
expect "laptop has the phone's rows" "p1|Ada Lovelace|ada@example.com p2|Alan Turing|alan@example.com" \
  "$(q laptop "SELECT id || '|' || name || '|' || email FROM person ORDER BY id;" | tr '\n' ' ' | sed 's/ $//')"
expect "nothing left to push on the phone" "0" "$(q phone "SELECT count(*) FROM oversqlite_pending;")"

step "A conflict: both devices edit Ada while offline"
run phone "UPDATE person SET name = 'Ada, Countess of Lovelace' WHERE id = 'p1';"
run laptop "UPDATE person SET name = 'Augusta Ada King' WHERE id = 'p1';"
say "The phone syncs first, so its edit becomes the server's version of the row."
report phone "oversqlite_sync()"
expect "phone's edit committed" "committed" "$(json_field "$LAST_REPORT" '$.push_outcome')"
say "The laptop's push carries an edit based on the old row version: the server answers" \
    "with a conflict. The default policy is 'server wins': the laptop takes the server's" \
    "row and drops its own edit (oversqlite_set_conflict_resolver('client_wins') would" \
    "re-send the local edit instead)."
report laptop "oversqlite_push_pending()"
expect "the laptop resolved one conflict" "1" "$(json_field "$LAST_REPORT" '$.conflicts_resolved')"
expect "the laptop already holds the server's row" "Ada, Countess of Lovelace" \
  "$(q laptop "SELECT name FROM person WHERE id = 'p1';")"
say "The next sync pulls the phone's bundle too, which brings the laptop up to date with" \
    "the server's history (last_bundle_seq_seen 2)."
report laptop "oversqlite_sync()"
expect "laptop caught up" "applied_incremental" "$(json_field "$LAST_REPORT" '$.remote_outcome')"

step "Both devices agree"
report phone "oversqlite_sync()"
run laptop ".mode column
SELECT id, name FROM person ORDER BY id;"
expect "laptop shows the server's (phone's) version" "Ada, Countess of Lovelace" \
  "$(q laptop "SELECT name FROM person WHERE id = 'p1';")"
expect "phone and laptop hold identical rows" "$(q phone "SELECT id, name, email FROM person ORDER BY id;")" \
  "$(q laptop "SELECT id, name, email FROM person ORDER BY id;")"
expect "no pending changes on either device" "0|0" \
  "$(q phone "SELECT count(*) FROM oversqlite_pending;")|$(q laptop "SELECT count(*) FROM oversqlite_pending;")"

step "Stop the server"
kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
say "Done. The device databases and the server store were temporary and are removed."
printf '\n%sdemo passed: every step checked%s\n' "$GREEN" "$PLAIN"

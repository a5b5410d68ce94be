#!/usr/bin/python3
"""Local runtime through Python's stdlib sqlite3 (run with /usr/bin/python3, whose
sqlite3 module can load extensions): configure, open, write, read oversqlite_pending,
errors, and capture by a connection that never loaded the extension.

Prints one line per check and a final `N passed, N failed`; exits non-zero on failure.
"""
import json
import os
import sqlite3
import sys
import tempfile
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTENSION = os.environ.get("OVERSQLITE_EXTENSION", os.path.join(ROOT, "target", "debug", "liboversqlite.so"))

results = {"passed": 0, "failed": 0}


def check(name):
    def run(fn):
        try:
            fn()
            results["passed"] += 1
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - every failure is reported, none aborts the run
            results["failed"] += 1
            print(f"FAIL {name}")
            traceback.print_exc()
        return fn
    return run


def connect(path=":memory:"):
    conn = sqlite3.connect(path, isolation_level=None)  # autocommit: we manage transactions
    conn.enable_load_extension(True)
    conn.load_extension(EXTENSION[: -len(".so")] if EXTENSION.endswith(".so") else EXTENSION)
    conn.enable_load_extension(False)
    return conn


def scalar(conn, sql, *params):
    return conn.execute(sql, params).fetchone()[0]


def expect_error(conn, sql, prefix, fragment):
    try:
        conn.execute(sql).fetchall()
    except sqlite3.Error as e:
        msg = str(e)
        assert msg.startswith(prefix), f"{msg!r} does not start with {prefix!r}"
        assert fragment in msg, f"{msg!r} lacks {fragment!r}"
        return
    raise AssertionError(f"{sql} did not fail")


SCHEMA = """
CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE files (id BLOB PRIMARY KEY NOT NULL, owner_id TEXT REFERENCES users(id), data BLOB);
"""


def configured(path=":memory:"):
    conn = connect(path)
    conn.executescript(SCHEMA)
    scalar(conn, "SELECT oversqlite_init(?, ?)", "https://sync.example.com", "main")
    scalar(conn, "SELECT oversqlite_enable_sync('files')")
    scalar(conn, "SELECT oversqlite_enable_sync('users')")
    return conn


@check("extension loads by file name and reports its version")
def _():
    if not os.path.isfile(EXTENSION):
        raise AssertionError(f"{EXTENSION} missing: run `cargo build -p oversqlite` first")
    conn = connect()
    version = scalar(conn, "SELECT oversqlite_version()")
    assert version.count(".") == 2, version


@check("configure, open, write and read oversqlite_pending")
def _():
    conn = configured()
    report = json.loads(scalar(conn, "SELECT oversqlite_open()"))
    assert report["managed_tables"] == ["users", "files"], report
    assert report["first_open"] is True
    conn.execute("INSERT INTO users VALUES ('u1', 'Ada')")
    conn.execute("INSERT INTO files VALUES (?, 'u1', x'deadbeef')", (bytes(range(16)),))
    conn.execute("UPDATE users SET name = 'Ada L' WHERE id = 'u1'")
    rows = conn.execute(
        "SELECT table_name, key_json, op, base_row_version, payload, state, ordinal FROM oversqlite_pending"
    ).fetchall()
    assert rows == [
        ("users", '{"id":"u1"}', "INSERT", 0, '{"id":"u1","name":"Ada L"}', "dirty", 1),
        ("files", '{"id":"000102030405060708090a0b0c0d0e0f"}', "INSERT", 0,
         '{"id":"000102030405060708090a0b0c0d0e0f","owner_id":"u1","data":"deadbeef"}', "dirty", 2),
    ], rows


@check("oversqlite_source_info shows the bound source")
def _():
    conn = configured()
    report = json.loads(scalar(conn, "SELECT oversqlite_open()"))
    row = conn.execute("SELECT * FROM oversqlite_source_info").fetchone()
    assert row == (report["source_id"], 0, 0, None, "anonymous", "", 0), row
    assert len(row[0]) == 36 and row[0] == row[0].lower()


@check("oversqlite_config returns the persisted configuration")
def _():
    conn = configured()
    cfg = json.loads(scalar(conn, "SELECT oversqlite_config()"))
    assert cfg["server_url"] == "https://sync.example.com"
    assert cfg["schema"] == "main"
    assert cfg["tables"] == [{"table": "files", "sync_key_column": "id"}, {"table": "users", "sync_key_column": "id"}]
    assert cfg["active_tables"] is None


@check("errors name the function, the code and what to do")
def _():
    conn = connect()
    conn.execute("CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER)")
    expect_error(conn, "SELECT oversqlite_enable_sync('counters')", "oversqlite_enable_sync: invalid_config: ",
                 "TEXT PRIMARY KEY or BLOB PRIMARY KEY")
    expect_error(conn, "SELECT oversqlite_enable_sync('missing')", "oversqlite_enable_sync: invalid_config: ",
                 "does not exist")
    expect_error(conn, "SELECT oversqlite_init('https://x')", "oversqlite_init: invalid_argument: ",
                 "expected 2 argument(s), got 1")
    expect_error(conn, "SELECT oversqlite_open()", "oversqlite_open: not_configured: ", "oversqlite_init")
    expect_error(conn, "SELECT * FROM oversqlite_pending", "oversqlite_pending: not_open: ", "oversqlite_open()")


@check("writes from a connection without the extension are captured")
def _():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "app.db")
        conn = configured(path)
        scalar(conn, "SELECT oversqlite_open()")
        conn.close()
        plain = sqlite3.connect(path, isolation_level=None)
        plain.execute("INSERT INTO users VALUES ('u2', 'Bob')")
        plain.execute("DELETE FROM users WHERE id = 'u2'")
        plain.close()
        conn = connect(path)
        rows = conn.execute("SELECT table_name, key_json, op, payload FROM oversqlite_pending").fetchall()
        assert rows == [("users", '{"id":"u2"}', "DELETE", None)], rows
        conn.close()


@check("an internal panic reaches Python as an error, not a crash")
def _():
    conn = configured()
    os.environ["OVERSQLITE_TEST_FAULT"] = "panic:oversqlite_open"
    try:
        expect_error(conn, "SELECT oversqlite_open()", "oversqlite_open: internal_error: ", "unexpected panic")
    finally:
        del os.environ["OVERSQLITE_TEST_FAULT"]
    assert scalar(conn, "SELECT COUNT(*) FROM sqlite_master WHERE name = '_sync_dirty_rows'") == 0
    json.loads(scalar(conn, "SELECT oversqlite_open()"))


print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)

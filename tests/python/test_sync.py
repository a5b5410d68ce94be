#!/usr/bin/python3
"""Sync core flow through Python's stdlib sqlite3 (run with /usr/bin/python3, whose
sqlite3 module can load extensions) against a real oversqlite-server on a free
loopback port: two database files as two devices of one user write, sync and see
each other's rows; errors keep the documented format.

The server binary is $OVERSQLITE_SERVER_BIN (default target/debug/oversqlite-server),
the extension $OVERSQLITE_EXTENSION (default target/debug/liboversqlite.so).
Prints one line per check and a final `N passed, N failed`; exits non-zero on failure.
"""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import traceback
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTENSION = os.environ.get("OVERSQLITE_EXTENSION", os.path.join(ROOT, "target", "debug", "liboversqlite.so"))
SERVER_BIN = os.environ.get("OVERSQLITE_SERVER_BIN", os.path.join(ROOT, "target", "debug", "oversqlite-server"))

# The configuration shared with the e2e, shell and Node suites (users, notes, ...).
with open(os.path.join(ROOT, "tests", "server-config.toml"), encoding="utf-8") as f:
    SERVER_CONFIG = f.read()

SCHEMA = """
CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL REFERENCES users(id),
                    body TEXT, score REAL, data BLOB);
"""

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


class Server:
    """oversqlite-server on 127.0.0.1 port 0 with a temporary store."""

    def __init__(self, workdir):
        config = os.path.join(workdir, "server.toml")
        with open(config, "w") as f:
            f.write(SERVER_CONFIG)
        self.proc = subprocess.Popen(
            [SERVER_BIN, "serve", "--config", config, "--listen", "127.0.0.1:0",
             "--data", os.path.join(workdir, "server.db"), "--jwt-secret", "python-sync-secret",
             "--enable-test-endpoints", "--shutdown-grace-ms", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        banner = self.proc.stdout.readline().strip()
        self.url = banner.rsplit(" ", 1)[-1]
        if not self.url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"unexpected server banner {banner!r}")

    def token(self, user):
        req = urllib.request.Request(
            self.url + "/dummy-signin", data=json.dumps({"user": user, "password": "x"}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)["token"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def connect(path, check_same_thread=True):
    # autocommit: sync refuses open transactions
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    conn.enable_load_extension(True)
    conn.load_extension(EXTENSION[: -len(".so")] if EXTENSION.endswith(".so") else EXTENSION)
    conn.enable_load_extension(False)
    return conn


def scalar(conn, sql, *params):
    return conn.execute(sql, params).fetchone()[0]


def report(conn, sql, *params):
    return json.loads(scalar(conn, sql, *params))


def device(server, workdir, name, user="alice"):
    conn = connect(os.path.join(workdir, f"{name}.db"))
    conn.executescript(SCHEMA)
    scalar(conn, "SELECT oversqlite_init(?, 'main')", server.url)
    scalar(conn, "SELECT oversqlite_enable_sync('users')")
    scalar(conn, "SELECT oversqlite_enable_sync('notes')")
    scalar(conn, "SELECT oversqlite_open()")
    scalar(conn, "SELECT oversqlite_set_token(?)", server.token(user))
    report(conn, "SELECT oversqlite_attach(?)", user)
    return conn


def rows(conn, table):
    return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def expect_error(conn, sql, prefix):
    try:
        conn.execute(sql).fetchall()
    except sqlite3.Error as e:
        assert str(e).startswith(prefix), f"{str(e)!r} does not start with {prefix!r}"
        return str(e)
    raise AssertionError(f"{sql} did not fail")


def main():
    for path, what in ((EXTENSION, "cargo build -p oversqlite"), (SERVER_BIN, "cargo build -p oversqlite-server")):
        if not os.path.isfile(path):
            print(f"FAIL {path} missing: run `{what}` first")
            print("0 passed, 1 failed")
            return 1
    with tempfile.TemporaryDirectory() as workdir:
        server = Server(workdir)
        try:
            run_checks(server, workdir)
        finally:
            server.stop()
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


def run_checks(server, workdir):
    a = device(server, workdir, "device_a")
    b = device(server, workdir, "device_b")

    @check("a row written on device A reaches device B")
    def _():
        a.execute("INSERT INTO users VALUES ('u1', 'Ada')")
        a.execute("INSERT INTO notes VALUES ('n1', 'u1', 'hello', 1.5, x'00ff10')")
        assert scalar(a, "SELECT count(*) FROM oversqlite_pending") == 2
        sync = report(a, "SELECT oversqlite_sync()")
        assert sync["push_outcome"] == "committed", sync
        assert sync["status"]["pending"]["pending_row_count"] == 0, sync
        assert scalar(a, "SELECT count(*) FROM oversqlite_pending") == 0
        pulled = report(b, "SELECT oversqlite_sync()")
        assert pulled["remote_outcome"] == "applied_incremental", pulled
        assert pulled["changed_tables"] == ["notes", "users"], pulled
        assert rows(b, "users") == [("u1", "Ada")]
        assert rows(b, "notes") == [("n1", "u1", "hello", 1.5, b"\x00\xff\x10")]

    @check("updates and deletes from device B reach device A")
    def _():
        b.execute("UPDATE users SET name = 'Ada L.' WHERE id = 'u1'")
        b.execute("DELETE FROM notes WHERE id = 'n1'")
        b.execute("INSERT INTO notes VALUES ('n2', 'u1', NULL, NULL, NULL)")
        assert report(b, "SELECT oversqlite_sync()")["push_outcome"] == "committed"
        report(a, "SELECT oversqlite_sync()")
        assert rows(a, "users") == [("u1", "Ada L.")]
        assert rows(a, "notes") == [("n2", "u1", None, None, None)]
        assert rows(a, "notes") == rows(b, "notes")

    @check("sync inside an open transaction fails with transaction_open and changes nothing")
    def _():
        a.execute("BEGIN")
        a.execute("INSERT INTO users VALUES ('u2', 'Grace')")
        expect_error(a, "SELECT oversqlite_sync()", "oversqlite_sync: transaction_open: ")
        a.execute("COMMIT")
        assert scalar(a, "SELECT count(*) FROM oversqlite_pending") == 1
        assert report(a, "SELECT oversqlite_sync()")["push_outcome"] == "committed"
        report(b, "SELECT oversqlite_sync()")
        assert rows(b, "users") == [("u1", "Ada L."), ("u2", "Grace")]

    @check("detach is blocked by unsynced rows; sync_then_detach empties the device")
    def _():
        b.execute("INSERT INTO users VALUES ('u3', 'Linus')")
        detach = report(b, "SELECT oversqlite_detach()")
        assert detach["outcome"] == "blocked_unsynced_data", detach
        done = report(b, "SELECT oversqlite_sync_then_detach()")
        assert done["is_success"] is True, done
        assert rows(b, "users") == []
        report(a, "SELECT oversqlite_sync()")
        assert [r[0] for r in rows(a, "users")] == ["u1", "u2", "u3"]

    @check("a sync call before attach names the fix")
    def _():
        c = connect(os.path.join(workdir, "device_c.db"))
        c.executescript(SCHEMA)
        scalar(c, "SELECT oversqlite_init(?, 'main')", server.url)
        scalar(c, "SELECT oversqlite_enable_sync('users')")
        scalar(c, "SELECT oversqlite_enable_sync('notes')")
        scalar(c, "SELECT oversqlite_open()")
        expect_error(c, "SELECT oversqlite_sync()", "oversqlite_sync: attach_required: ")

    @check("a token from the host function oversqlite_auth_token() serves a multi-chunk push")
    def _():
        # Python's sqlite3 connection is serialized: the extension must ask for the
        # token on the calling thread (a helper thread asking for it would wait for the
        # connection mutex forever). 2,500 rows: several upload chunks and committed pages.
        import threading
        d = connect(os.path.join(workdir, "device_d.db"), check_same_thread=False)
        d.executescript(SCHEMA)
        scalar(d, "SELECT oversqlite_init(?, 'main')", server.url)
        scalar(d, "SELECT oversqlite_enable_sync('users')")
        scalar(d, "SELECT oversqlite_enable_sync('notes')")
        scalar(d, "SELECT oversqlite_open()")
        token = server.token("dora")
        asked = []
        def host_token():
            asked.append(threading.get_ident())
            return token
        d.create_function("oversqlite_auth_token", 0, host_token)
        report(d, "SELECT oversqlite_attach('dora')")
        d.executemany("INSERT INTO users VALUES (?, ?)", [(f"d{i:04}", "x") for i in range(2500)])
        asked.clear()  # attach asked on this thread; the push must ask on its own
        outcome = {}
        def push():
            try:
                outcome["report"] = report(d, "SELECT oversqlite_push_pending()")
            except Exception as e:  # reported below
                outcome["error"] = repr(e)
        caller = threading.Thread(target=push, daemon=True)
        caller.start()
        caller.join(60)
        assert not caller.is_alive(), "oversqlite_push_pending() did not return within 60 s (deadlock)"
        assert "error" not in outcome, outcome
        assert outcome["report"]["row_count"] == 2500, outcome
        assert asked and set(asked) == {caller.ident}, "token asked on another thread"
        assert scalar(d, "SELECT count(*) FROM _sync_dirty_rows") == 0
        d.close()

    @check("conn.interrupt() from another thread stops a sync against a stalled server (interrupted, SQLITE_INTERRUPT)")
    def _():
        # A server that accepts and never answers; the host interrupts after 0.4 s.
        import socket
        import threading
        import time
        stalled = socket.socket()
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(8)
        held = []
        threading.Thread(target=lambda: [held.append(stalled.accept()) for _ in range(8)], daemon=True).start()
        e = device(server, workdir, "device_i", user="ivan")
        e.execute("INSERT INTO users VALUES ('i1', 'Ivan')")
        stalled_url = "http://127.0.0.1:%d" % stalled.getsockname()[1]
        scalar(e, "SELECT oversqlite_init(?, 'main')", stalled_url)
        timer = threading.Timer(0.4, e.interrupt)
        timer.start()
        started = time.monotonic()
        try:
            e.execute("SELECT oversqlite_sync()").fetchall()
            raise AssertionError("the sync against a stalled server returned")
        except sqlite3.Error as err:
            elapsed = time.monotonic() - started
            assert str(err).startswith("oversqlite_sync: interrupted: "), str(err)
            code = getattr(err, "sqlite_errorcode", sqlite3.SQLITE_INTERRUPT)
            assert code == sqlite3.SQLITE_INTERRUPT, code
        timer.join()
        assert elapsed < 5, f"the interrupt took {elapsed:.1f} s"
        # Back on the real server the row goes up once.
        scalar(e, "SELECT oversqlite_init(?, 'main')", server.url)
        r = report(e, "SELECT oversqlite_sync()")
        assert r["push_outcome"] == "committed", r
        assert rows(e, "users") == [("i1", "Ivan")]
        e.close()
        stalled.close()

    @check("auto sync with a host token function: the worker never calls it, a busy host neither deadlocks nor stalls it")
    def _():
        import threading
        import time
        path = os.path.join(workdir, "device_e.db")
        e = connect(path, check_same_thread=False)
        e.executescript(SCHEMA)
        scalar(e, "SELECT oversqlite_init(?, 'main')", server.url)
        scalar(e, "SELECT oversqlite_enable_sync('users')")
        scalar(e, "SELECT oversqlite_enable_sync('notes')")
        scalar(e, "SELECT oversqlite_open()")
        good = server.token("erin")
        current = {"token": good}
        asked = []
        def host_token():
            asked.append(threading.get_ident())
            return current["token"]
        e.create_function("oversqlite_auth_token", 0, host_token)
        report(e, "SELECT oversqlite_attach('erin')")
        checker = device(server, workdir, "device_e_checker", user="erin")
        def on_server(ids):
            report(checker, "SELECT oversqlite_sync()")
            have = {r[0] for r in rows(checker, "users")}
            return set(ids) <= have
        def wait_for(what, limit, fn):
            start = time.monotonic()
            while not fn():
                assert time.monotonic() - start < limit, f"timed out waiting for {what}"
                time.sleep(0.05)
        started = report(e, """SELECT oversqlite_auto_sync_start('{"debounce_ms": 100, "interval_ms": 3600000, "min_backoff_ms": 100, "max_backoff_ms": 500}')""")
        assert started["running"] is True, started
        # The host keeps its connection busy in a write transaction for 2 s: the worker
        # (its own connection) waits on the lock, backs off, and catches up afterwards.
        e.execute("BEGIN IMMEDIATE")
        e.execute("INSERT INTO users VALUES ('e1', 'written in a long host transaction')")
        time.sleep(2.0)
        e.execute("COMMIT")
        wait_for("e1 on the server", 20, lambda: on_server(["e1"]))
        # A token the server refuses: the worker waits for another one instead of retrying.
        current["token"] = "not.a.token"
        report(e, "SELECT oversqlite_auto_sync_status()")  # refreshes the worker's copy
        e.execute("INSERT INTO users VALUES ('e2', 'needs a fresh token')")
        wait_for("waiting_for_token", 10,
                 lambda: report(e, "SELECT oversqlite_auto_sync_status()")["state"] == "waiting_for_token")
        status = report(e, "SELECT oversqlite_auto_sync_status()")
        assert "oversqlite_set_token" in status["advice"], status
        current["token"] = good
        report(e, "SELECT oversqlite_auto_sync_status()")  # the host function answers a good one again
        wait_for("e2 on the server", 20, lambda: on_server(["e1", "e2"]))
        assert set(asked) == {threading.get_ident()}, "the host function ran on another thread"
        log = [r[0] for r in e.execute("SELECT error_message FROM oversqlite_sync_log WHERE error_message IS NOT NULL")]
        assert all(good not in m and "not.a.token" not in m for m in log), log
        def worker_threads():
            names = []
            for t in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{t}/comm") as f:
                        names.append(f.read().strip())
                except OSError:
                    pass  # the thread ended meanwhile
            return [n for n in names if n.startswith(("oversqlite-auto", "oversqlite-watc"))]
        assert len(worker_threads()) == 2, worker_threads()  # the worker and its watch reader
        started = time.monotonic()
        e.close()
        assert time.monotonic() - started < 5, "closing took too long"
        # This server sends a heartbeat only every 25 s: the reader is woken by
        # cancelling its stream, not by the next line.
        wait_for("no worker thread left", 3, lambda: worker_threads() == [])
        checker.close()

    a.close()
    b.close()


if __name__ == "__main__":
    sys.exit(main())

"""sync_python.py VERSION: two devices of one user syncing through oversqlite-server,
using only what `pip install oversqlite-<VERSION>-*.whl` put into this venv; then the
installed `oversqlite` command-line tool continues both files (same on-disk state).

Run by tests/packaging/run.sh with the venv's python, from a directory outside the
repository and with a scrubbed environment, so nothing of the repository can stand in
for the installed package: the library must come from the venv's site-packages and the
server from the venv's bin directory.
"""

import json
import os
import platform
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import oversqlite

SERVER_CONFIG = """
app_name = "packaging-test"
schema_version = 1

[[tables]]
schema = "demo"
table = "person"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text", nullable = false },
]
"""
ELF_MACHINES = {"x86_64": 62, "aarch64": 183}


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"sync_python: {message}")


def elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    check(head[:4] == b"\x7fELF", f"{path} is not an ELF file")
    return int.from_bytes(head[18:20], "little")


def check_installation(version: str) -> tuple:
    """The package's files are the venv's own, for this architecture; returns the server
    and the command-line tool."""
    venv = Path(sys.prefix).resolve()
    check(oversqlite.__version__ == version, f"__version__ {oversqlite.__version__}, expected {version}")
    library = Path(oversqlite.loadable_path())
    check(venv in library.parents, f"library {library} is not inside the venv {venv}")
    found = shutil.which("oversqlite-server")
    check(found is not None, "oversqlite-server is not on PATH")
    server = Path(found).resolve()
    check(server.parent == venv / "bin", f"oversqlite-server {server} is not the venv's")
    found = shutil.which("oversqlite")
    check(found is not None, "oversqlite (the command-line tool) is not on PATH")
    cli = Path(found).resolve()
    check(cli.parent == venv / "bin", f"oversqlite {cli} is not the venv's")
    shown = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    check(shown == f"oversqlite {version}", f"oversqlite --version printed {shown!r}")
    for binary in (library, server, cli):
        machine = elf_machine(binary)
        check(machine == ELF_MACHINES[platform.machine()], f"{binary}: ELF machine {machine} on {platform.machine()}")

    class NoExtensionLoading:  # what a pyenv sqlite3.Connection looks like
        pass

    try:
        oversqlite.load(NoExtensionLoading())
        check(False, "load() accepted a connection that cannot load extensions")
    except oversqlite.ExtensionLoadingUnavailable as error:
        check("--enable-loadable-sqlite-extensions" in str(error), f"the error names no fix: {error}")
    check_test_faults_are_ignored()
    return server, cli


# The shipped binaries are built without the `test-faults` feature: OVERSQLITE_TEST_FAULT
# must do nothing (no injected exit, abort or panic). (This replaced the check that an
# injected panic comes back as an SQL error through zig's unwinder: the shipped library
# can no longer be told to panic. The panic guard itself is covered by the test builds.)
FAULT_PROBE = """
import json, sqlite3, oversqlite
conn = sqlite3.connect(":memory:", isolation_level=None)
oversqlite.load(conn)
config = json.loads(conn.execute("SELECT oversqlite_init('http://127.0.0.1:9', 'demo')").fetchone()[0])
print(config["server_url"])
print(conn.execute("SELECT 'host alive'").fetchone()[0])
"""


def check_test_faults_are_ignored() -> None:
    for spec in ("exit:*", "abort:*", "panic:oversqlite_init"):
        env = dict(os.environ, OVERSQLITE_TEST_FAULT=spec)
        probe = subprocess.run([sys.executable, "-c", FAULT_PROBE], env=env, capture_output=True, text=True)
        check(probe.returncode == 0 and "http://127.0.0.1:9" in probe.stdout and "host alive" in probe.stdout,
              f"the shipped library honoured OVERSQLITE_TEST_FAULT={spec}: status {probe.returncode}, {probe.stdout}{probe.stderr}")


def start_server(server: Path, work: Path, env: dict) -> tuple:
    """oversqlite-server on a free loopback port (port 0); returns (process, url)."""
    out = open(work / "server.out", "w")
    process = subprocess.Popen(
        [server, "serve", "--config", work / "server.toml", "--listen", "127.0.0.1:0",
         "--data", work / "server.db", "--shutdown-grace-ms", "0"],
        stdout=out, env=env,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for word in (work / "server.out").read_text().split():
            if word.startswith("http://"):
                return process, word
        check(process.poll() is None, f"oversqlite-server exited with status {process.returncode}")
        time.sleep(0.05)
    process.kill()
    check(False, "oversqlite-server printed no address within 15 s")


def one(conn: sqlite3.Connection, sql: str, *args):
    return conn.execute(sql, args).fetchone()[0]


def device(path: Path, url: str, token: str) -> sqlite3.Connection:
    # Autocommit: the sync functions refuse to run inside an open transaction.
    conn = sqlite3.connect(path, isolation_level=None)
    oversqlite.load(conn)
    conn.execute("CREATE TABLE person (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL)")
    one(conn, "SELECT oversqlite_init(?, 'demo')", url)
    one(conn, "SELECT oversqlite_enable_sync('person')")
    one(conn, "SELECT oversqlite_open()")
    one(conn, "SELECT oversqlite_set_token(?)", token)
    attach = json.loads(one(conn, "SELECT oversqlite_attach('alice')"))
    check(attach["status"] == "connected", f"attach: {attach}")
    return conn


def rows(conn: sqlite3.Connection) -> list:
    return conn.execute("SELECT id, name FROM person ORDER BY id").fetchall()


def sync(conn: sqlite3.Connection) -> dict:
    return json.loads(one(conn, "SELECT oversqlite_sync()"))


def cli_run(cli: Path, db: Path, command: str, token: str) -> subprocess.CompletedProcess:
    """`oversqlite --db DB --json COMMAND` with the token in OVERSQLITE_TOKEN."""
    env = dict(os.environ, OVERSQLITE_TOKEN=token)
    return subprocess.run([cli, "--db", db, "--json", command], env=env, capture_output=True, text=True)


def plain_rows(path: Path) -> list:
    conn = sqlite3.connect(path)
    try:
        return rows(conn)
    finally:
        conn.close()


def sync_with_cli(cli: Path, work: Path, token: str) -> None:
    """The laptop's next change goes up with the installed CLI, the phone pulls it with
    the CLI; both files were synced by the extension before."""
    conn = sqlite3.connect(work / "laptop.db", isolation_level=None)  # no extension: triggers capture
    conn.execute("INSERT INTO person VALUES ('p3', 'Grace Hopper')")
    conn.close()
    done = cli_run(cli, work / "laptop.db", "sync", token)
    check(done.returncode == 0, f"oversqlite sync: status {done.returncode}: {done.stderr}")
    check(json.loads(done.stdout)["push_outcome"] == "committed", f"oversqlite sync: {done.stdout}")
    check(token not in done.stdout + done.stderr, "oversqlite printed the token")
    done = cli_run(cli, work / "phone.db", "pull", token)
    check(done.returncode == 0, f"oversqlite pull: status {done.returncode}: {done.stderr}")
    check(plain_rows(work / "phone.db") == plain_rows(work / "laptop.db") == [
        ("p1", "Ada Lovelace"), ("p2", "Alan Turing"), ("p3", "Grace Hopper")],
        f"after the CLI: phone {plain_rows(work / 'phone.db')}, laptop {plain_rows(work / 'laptop.db')}")


def check_cli_retry_later(cli: Path, work: Path, token: str) -> None:
    """With the server stopped, a sync with a change to send exits 75 (retry later)."""
    conn = sqlite3.connect(work / "laptop.db", isolation_level=None)
    conn.execute("INSERT INTO person VALUES ('p4', 'Barbara Liskov')")
    conn.close()
    done = cli_run(cli, work / "laptop.db", "sync", token)
    check(done.returncode == 75, f"oversqlite sync against a stopped server: status {done.returncode}: {done.stderr}")
    check(json.loads(done.stderr)["error"]["retry_later"] is True, f"oversqlite sync: {done.stderr}")


def sync_two_devices(server: Path, cli: Path, work: Path) -> None:
    (work / "server.toml").write_text(SERVER_CONFIG)
    env = dict(os.environ, OVERSQLITE_JWT_SECRET=secrets.token_hex(16))
    process, url = start_server(server, work, env)
    try:
        token = subprocess.run(
            [server, "token", "--config", work / "server.toml", "--user", "alice"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()
        phone = device(work / "phone.db", url, token)
        laptop = device(work / "laptop.db", url, token)

        phone.execute("INSERT INTO person VALUES ('p1', 'Ada Lovelace')")
        check(sync(phone)["push_outcome"] == "committed", "the phone's push was not committed")
        check(sync(laptop)["remote_outcome"] == "applied_incremental", "the laptop pulled nothing")
        check(rows(laptop) == [("p1", "Ada Lovelace")], f"laptop rows {rows(laptop)}")

        laptop.execute("INSERT INTO person VALUES ('p2', 'Alan Turing')")
        check(sync(laptop)["push_outcome"] == "committed", "the laptop's push was not committed")
        sync(phone)
        check(rows(phone) == rows(laptop) == [("p1", "Ada Lovelace"), ("p2", "Alan Turing")],
              f"devices differ: phone {rows(phone)}, laptop {rows(laptop)}")
        phone.close()
        laptop.close()
        print(f"python: two devices synced through the installed oversqlite-server at {url}")
        sync_with_cli(cli, work, token)
        print("python: the installed oversqlite CLI continued both files (sync, pull)")
    finally:
        process.terminate()
        process.wait(timeout=15)
    check_cli_retry_later(cli, work, token)
    print("python: the installed oversqlite CLI exits 75 while the server is down")


def main(version: str) -> None:
    server, cli = check_installation(version)
    with tempfile.TemporaryDirectory(prefix="oversqlite-wheel-") as work:
        sync_two_devices(server, cli, Path(work))


if __name__ == "__main__":
    main(sys.argv[1])

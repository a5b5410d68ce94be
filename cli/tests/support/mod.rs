//! Shared by the CLI suites: the built `oversqlite` binary run as a user would (a clean
//! environment: no token, no database unless the test gives one), and devices, i.e.
//! database files configured for sync by the extension (`oversqlite_init`,
//! `oversqlite_enable_sync`, `oversqlite_open`) against a real `oversqlite-server`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use oversqlite_tests::host;
use oversqlite_tests::server::{TestServer, CLIENT_DDL, SCHEMA};
use rusqlite::Connection;
use serde_json::Value;

/// What one run of the binary left behind.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as the JSON object `--json` prints.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?} / {:?}",
                self.stdout, self.stderr
            )
        })
    }

    /// stderr as the JSON error object `--json` prints.
    pub fn error_json(&self) -> Value {
        serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {:?}", self.stderr))
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout {:?} stderr {:?}",
            self.stdout, self.stderr
        );
        self
    }
}

/// `oversqlite <args>` with only `env` set among the variables the tool reads.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oversqlite"));
    cmd.args(args);
    for var in ["OVERSQLITE_TOKEN", "OVERSQLITE_TOKEN_FILE", "OVERSQLITE_DB"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run oversqlite");
    Run {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `oversqlite --db <db> <args>` with the bearer token of `user` in `OVERSQLITE_TOKEN`.
pub fn cli_as(server: &TestServer, user: &str, db: &Path, args: &[&str]) -> Run {
    let token = server.token(user);
    let mut all = vec!["--db", db.to_str().unwrap()];
    all.extend_from_slice(args);
    cli(&all, &[("OVERSQLITE_TOKEN", &token)])
}

/// A fresh file path unique to this test process and `tag`.
pub fn db_path(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oversqlite-cli-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}.db"));
    for suffix in ["", "-journal", "-wal", "-shm", "-oversqlite.lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// A database file with `users` and `posts`, configured for sync with `server` and opened
/// by the extension, as an app's migration and first launch leave it (not attached).
pub fn device(server: &TestServer, tag: &str) -> PathBuf {
    let path = db_path(tag);
    let conn = host::file(&path);
    conn.execute_batch(CLIENT_DDL).unwrap();
    host::call(
        &conn,
        "SELECT oversqlite_init(?1, ?2)",
        &[&server.url, &SCHEMA],
    )
    .unwrap();
    for t in ["users", "posts"] {
        host::call(&conn, "SELECT oversqlite_enable_sync(?1)", &[&t]).unwrap();
    }
    host::open(&conn).unwrap();
    path
}

/// A plain connection (no extension: the capture triggers are plain SQL).
pub fn plain(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn
}

/// `users` as sorted `(id, name)` pairs.
pub fn users(path: &Path) -> Vec<(String, String)> {
    let conn = plain(path);
    let mut stmt = conn
        .prepare("SELECT id, name FROM users ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows
}

pub fn insert_user(path: &Path, id: &str, name: &str) {
    plain(path)
        .execute("INSERT INTO users(id, name) VALUES (?1, ?2)", [id, name])
        .unwrap();
}

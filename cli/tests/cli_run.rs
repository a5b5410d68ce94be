//! `oversqlite run`: the sidecar keeps a file in sync with no other command (local writes
//! by another process go up, other devices' bundles come down), survives a server
//! restart without losing or duplicating a row, journals its runs with trigger `cli`,
//! and on SIGTERM stops cleanly and exits 0.
mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use oversqlite_tests::server::TestServer;
use support::{cli, cli_as, device, insert_user, plain, users};

/// A running `oversqlite run`, killed if a test fails before stopping it.
struct Sidecar {
    child: Child,
    stderr: PathBuf,
}

impl Sidecar {
    fn start(db: &Path, token_file: &Path, extra: &[&str]) -> Sidecar {
        let stderr = PathBuf::from(format!("{}.run-stderr", db.display()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oversqlite"));
        cmd.args(["--db", db.to_str().unwrap(), "--token-file"])
            .arg(token_file)
            .arg("run")
            .args(extra);
        for var in ["OVERSQLITE_TOKEN", "OVERSQLITE_TOKEN_FILE", "OVERSQLITE_DB"] {
            cmd.env_remove(var);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("start oversqlite run");
        Sidecar { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `kill -TERM`, then the exit status within `bound`.
    fn terminate(&mut self, bound: Duration) -> (ExitStatus, Duration) {
        self.signal("-TERM", bound)
    }

    /// `kill <signal>`, then the exit status within `bound`.
    fn signal(&mut self, signal: &str, bound: Duration) -> (ExitStatus, Duration) {
        let sent = Instant::now();
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, sent.elapsed());
            }
            assert!(
                sent.elapsed() < bound,
                "oversqlite run still running {bound:?} after SIGTERM; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stdout(&mut self) -> String {
        let mut out = String::new();
        use std::io::Read;
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[track_caller]
fn wait_until(bound: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < bound, "not within {bound:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A token file next to `db` (the CLI re-reads it on every request).
fn token_file(server: &TestServer, db: &Path) -> PathBuf {
    let path = PathBuf::from(format!("{}.token", db.display()));
    std::fs::write(&path, server.token("alice")).unwrap();
    path
}

fn attached(server: &TestServer, tag: &str) -> PathBuf {
    let db = device(server, tag);
    cli_as(server, "alice", &db, &["attach", "--user", "alice"]).ok();
    db
}

/// (operation, trigger, outcome) of the journal, oldest first.
fn journal(db: &Path) -> Vec<(String, String, String)> {
    let conn = plain(db);
    let mut stmt = conn
        .prepare("SELECT operation, trigger, outcome FROM _oversqlite_sync_log ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows
}

fn server_ids(server: &TestServer) -> Vec<String> {
    server
        .rows("users", "alice", "id")
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect()
}

fn ids(db: &Path) -> Vec<String> {
    users(db).into_iter().map(|(id, _)| id).collect()
}

#[test]
fn run_keeps_a_file_in_sync_both_ways_and_stops_on_sigterm_with_exit_0() {
    let server = TestServer::start();
    let a = attached(&server, "run-a");
    let b = attached(&server, "run-b");
    let tokens = token_file(&server, &a);
    let mut sidecar = Sidecar::start(
        &a,
        &tokens,
        &["--interval-ms", "60000", "--debounce-ms", "100"],
    );

    // The first run is a sync at start; then the watch stream is held.
    wait_until(Duration::from_secs(10), "the start-up sync", || {
        sidecar.stderr().contains(" sync ok ")
    });
    wait_until(Duration::from_secs(10), "the watch stream", || {
        server.watch_subscribers("alice") >= 1
    });

    // Rows written by another process (plain SQL: the capture triggers do the rest) go up
    // after the debounce; device B sees them with one CLI sync.
    insert_user(&a, "u1", "Ada");
    insert_user(&a, "u2", "Grace");
    let token = server.token("alice");
    wait_until(Duration::from_secs(10), "A's rows on device B", || {
        cli_as(&server, "alice", &b, &["sync"]).ok();
        ids(&b) == ["u1", "u2"]
    });

    // B's row comes down to A through the watch stream, with no command run on A.
    insert_user(&b, "u3", "Edsger");
    cli_as(&server, "alice", &b, &["push"]).ok();
    wait_until(Duration::from_secs(10), "B's row on device A", || {
        ids(&a) == ["u1", "u2", "u3"]
    });

    let (status, took) = sidecar.terminate(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr: {}", sidecar.stderr());
    assert!(took < Duration::from_secs(5));
    let out = sidecar.stdout();
    assert!(out.starts_with("stopped after "), "{out:?}");

    // Every run is journaled with trigger cli; the log has one line per run, no token.
    // The first row is `oversqlite attach`; the sidecar's start with the worker resuming
    // the binding (attach, no request).
    let rows = journal(&a);
    assert_eq!(rows[0].0, "attach");
    let runs = &rows[1..];
    assert_eq!(runs[0].0, "attach", "{rows:?}");
    assert!(runs.iter().all(|r| r.1 == "cli" && r.2 == "ok"), "{rows:?}");
    assert!(runs.iter().any(|r| r.0 == "push"), "{rows:?}");
    assert!(runs.iter().any(|r| r.0 == "pull"), "{rows:?}");
    let log = sidecar.stderr();
    assert_eq!(log.lines().count(), runs.len(), "{log}\n{rows:?}");
    assert!(
        log.lines().any(|l| l.contains(" push ok up 2 down 0")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains(" pull ok up 0 down 1")),
        "{log}"
    );
    assert!(!log.contains(&token) && !out.contains(&token));
    assert_eq!(server_ids(&server), ["u1", "u2", "u3"]);
}

#[test]
fn run_backs_off_while_the_server_is_down_and_catches_up_after_a_restart() {
    let mut server = TestServer::start();
    let a = attached(&server, "run-down");
    let tokens = token_file(&server, &a);
    let mut sidecar = Sidecar::start(
        &a,
        &tokens,
        &[
            "--json",
            "--interval-ms",
            "60000",
            "--debounce-ms",
            "100",
            "--max-backoff-ms",
            "400",
        ],
    );
    insert_user(&a, "u1", "Ada");
    wait_until(Duration::from_secs(10), "u1 on the server", || {
        server_ids(&server) == ["u1"]
    });

    server.kill9();
    insert_user(&a, "u2", "Grace");
    insert_user(&a, "u3", "Barbara");
    wait_until(Duration::from_secs(10), "failed runs journaled", || {
        journal(&a).iter().filter(|r| r.2 == "error").count() >= 2
    });
    server.restart();
    wait_until(Duration::from_secs(15), "the catch-up", || {
        server.is_running() && server_ids(&server) == ["u1", "u2", "u3"]
    });
    assert_eq!(server.bundle_count("alice"), 2, "u2 and u3 went up once");

    let (status, _) = sidecar.terminate(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr: {}", sidecar.stderr());
    let final_status: serde_json::Value = serde_json::from_str(sidecar.stdout().trim()).unwrap();
    assert_eq!(final_status["state"], "stopped");
    assert_eq!(final_status["running"], false);

    // JSON lines: one object per run, the failures with the engine's error code.
    let lines: Vec<serde_json::Value> = sidecar
        .stderr()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["event"] == "run"), "{lines:?}");
    assert!(lines.iter().all(|l| l["run"]["trigger"] == "cli"));
    assert!(lines
        .iter()
        .any(|l| l["run"]["outcome"] == "error" && l["run"]["error_code"] == "network_error"));
    assert_eq!(lines.last().unwrap()["run"]["outcome"], "ok", "{lines:?}");
    let rows = journal(&a);
    assert!(rows.iter().all(|r| r.1 == "cli"), "{rows:?}");
    assert_eq!(
        cli(&["--db", a.to_str().unwrap(), "--json", "pending"], &[])
            .ok()
            .json()["pending_row_count"],
        0
    );
}

#[test]
fn run_waits_for_a_new_token_in_the_token_file_stops_on_sigint_and_refuses_an_unattached_file() {
    let server = TestServer::start();
    let a = attached(&server, "run-token");
    let tokens = token_file(&server, &a);
    std::fs::write(&tokens, server.bad_token("alice")).unwrap();
    let mut sidecar = Sidecar::start(&a, &tokens, &["--debounce-ms", "100"]);
    insert_user(&a, "u1", "Ada");
    wait_until(Duration::from_secs(10), "the token refused", || {
        sidecar
            .stderr()
            .contains("oversqlite run: waiting_for_token: ")
    });
    assert!(server_ids(&server).is_empty());

    // The file is re-read: a good token there resumes the worker.
    std::fs::write(&tokens, server.token("alice")).unwrap();
    wait_until(Duration::from_secs(10), "u1 on the server", || {
        server_ids(&server) == ["u1"]
    });
    // SIGINT (Ctrl-C) stops it as SIGTERM does.
    let (status, _) = sidecar.signal("-INT", Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr: {}", sidecar.stderr());

    // A file never attached: exit 78 at once.
    let fresh = device(&server, "run-unattached");
    let r = cli_as(&server, "alice", &fresh, &["run"]);
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(r.stderr.starts_with("oversqlite run: attach_required: "));
}

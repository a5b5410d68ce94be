//! Exit codes: 75 ("retry later") for a server that is down or answering 5xx and for a
//! locked database; 77/78/64/66 ("fix something") for tokens, configuration, usage and a
//! missing file. Errors are `oversqlite <cmd>: <code>: <message>` on stderr, a JSON
//! object with `--json`, and never contain the token.
mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oversqlite_tests::server::TestServer;
use support::{cli, cli_as, db_path, device, insert_user, plain, users};

fn attached(server: &TestServer, tag: &str) -> std::path::PathBuf {
    let db = device(server, tag);
    cli_as(server, "alice", &db, &["attach", "--user", "alice"]).ok();
    db
}

/// A loopback HTTP server answering every request with `503`.
fn unavailable_server() -> String {
    slow_unavailable_server(Duration::ZERO)
}

/// [`unavailable_server`], answering each request only after `delay`.
fn slow_unavailable_server(delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            read_request(&mut s);
            std::thread::sleep(delay);
            let _ = s.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 56\r\nConnection: close\r\n\r\n{\"error\":\"unavailable\",\"message\":\"down for maintenance\"}",
            );
        }
    });
    url
}

/// Reads one request (headers, then a `Content-Length` body) so that answering it does
/// not reset the connection under the client.
fn read_request(s: &mut std::net::TcpStream) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let Ok(n) = s.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return;
            }
        }
    }
}

#[test]
fn a_stopped_server_is_retry_later_and_nothing_is_lost() {
    let mut server = TestServer::start();
    let db = attached(&server, "down");
    insert_user(&db, "u1", "Ada");
    let token = server.token("alice");
    server.kill9();

    let args = ["--db", db.to_str().unwrap(), "--json", "sync"];
    let r = cli(&args, &[("OVERSQLITE_TOKEN", &token)]);
    assert_eq!(r.code, 75, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let e = r.error_json();
    assert_eq!(e["command"], "sync");
    assert_eq!(e["error"]["code"], "network_error", "{e}");
    assert_eq!(e["error"]["exit_code"], 75);
    assert_eq!(e["error"]["retry_later"], true);
    assert!(!r.stderr.contains(&token));

    let r = cli(
        &["--db", db.to_str().unwrap(), "push"],
        &[("OVERSQLITE_TOKEN", &token)],
    );
    assert_eq!(r.code, 75, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("oversqlite push: network_error: "),
        "{}",
        r.stderr
    );

    // Retrying later succeeds, and the row arrives once.
    server.restart();
    cli(&args, &[("OVERSQLITE_TOKEN", &token)]).ok();
    assert_eq!(server.rows("users", "alice", "id, name").len(), 1);
    let j = cli(&["--db", db.to_str().unwrap(), "--json", "pending"], &[])
        .ok()
        .json();
    assert_eq!(j["pending_row_count"], 0);
}

#[test]
fn a_server_answering_503_is_retry_later_and_the_configured_url_is_kept() {
    let server = TestServer::start();
    let db = attached(&server, "unavailable");
    insert_user(&db, "u1", "Ada");
    let down = unavailable_server();
    let r = cli_as(&server, "alice", &db, &["--server", &down, "push"]);
    assert_eq!(r.code, 75, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("oversqlite push: http_error: "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("503"), "{}", r.stderr);

    // --server overrode the URL for that run only: the file still names the real server,
    // where a plain run delivers the row.
    let j = cli(&["--db", db.to_str().unwrap(), "--json", "status"], &[])
        .ok()
        .json();
    assert_eq!(j["server_url"], server.url.as_str());
    cli_as(&server, "alice", &db, &["push"]).ok();
    assert_eq!(server.rows("users", "alice", "id").len(), 1);

    // A bad override is a configuration error, not a retry.
    let r = cli_as(
        &server,
        "alice",
        &db,
        &["--server", "ftp://example", "push"],
    );
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("oversqlite push: invalid_config: "),
        "{}",
        r.stderr
    );
}

#[test]
fn token_problems_are_fix_something_and_the_token_is_never_printed() {
    let server = TestServer::start();
    let db = attached(&server, "tokens");
    insert_user(&db, "u1", "Ada");
    let dbs = db.to_str().unwrap();

    // No token at all: refused before any request.
    let r = cli(&["--db", dbs, "push"], &[]);
    assert_eq!(r.code, 77, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("oversqlite push: token_unavailable: "),
        "{}",
        r.stderr
    );

    // A token the server refuses (signed with another secret): 401.
    let bad = server.bad_token("alice");
    let r = cli(
        &["--db", dbs, "--json", "push"],
        &[("OVERSQLITE_TOKEN", &bad)],
    );
    assert_eq!(r.code, 77, "{}", r.stderr);
    let e = r.error_json();
    assert_eq!(e["error"]["code"], "authentication_failed", "{e}");
    assert_eq!(e["error"]["retry_later"], false);
    assert!(!r.stderr.contains(&bad) && !r.stdout.contains(&bad));

    // The same refused token from --token-file.
    let file = db_path("tokens-file").with_extension("token");
    std::fs::write(&file, format!("{bad}\n")).unwrap();
    let r = cli(
        &["--db", dbs, "--token-file", file.to_str().unwrap(), "push"],
        &[],
    );
    assert_eq!(r.code, 77, "{}", r.stderr);
    assert!(!r.stderr.contains(&bad));

    // A token for another user is refused before attach sends anything.
    let other = device(&server, "tokens-other");
    let r = cli_as(&server, "bob", &other, &["attach", "--user", "alice"]);
    assert_eq!(r.code, 77, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("oversqlite attach: token_user_mismatch: "),
        "{}",
        r.stderr
    );

    // --token-file with a good token wins over a bad OVERSQLITE_TOKEN, and nothing
    // printed contains it.
    let good = server.token("alice");
    std::fs::write(&file, &good).unwrap();
    let r = cli(
        &[
            "--db",
            dbs,
            "--token-file",
            file.to_str().unwrap(),
            "--json",
            "push",
        ],
        &[("OVERSQLITE_TOKEN", &bad)],
    )
    .ok();
    assert_eq!(r.json()["outcome"], "committed");
    assert!(!r.stdout.contains(&good) && !r.stderr.contains(&good));

    // OVERSQLITE_TOKEN_FILE works too.
    insert_user(&db, "u2", "Grace");
    cli(
        &["--db", dbs, "push"],
        &[("OVERSQLITE_TOKEN_FILE", file.to_str().unwrap())],
    )
    .ok();
    assert_eq!(server.rows("users", "alice", "id").len(), 2);

    // A missing token file is an authentication problem, named without any content.
    insert_user(&db, "u3", "Linus");
    let r = cli(
        &["--db", dbs, "--token-file", "/nonexistent/token", "push"],
        &[],
    );
    assert_eq!(r.code, 77, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cannot read --token-file /nonexistent/token"),
        "{}",
        r.stderr
    );
}

#[test]
fn configuration_usage_and_missing_files_are_fix_something() {
    let server = TestServer::start();
    let token = server.token("alice");
    let env = [("OVERSQLITE_TOKEN", token.as_str())];

    // A SQLite file never configured for sync.
    let bare = db_path("bare");
    plain(&bare).execute_batch("CREATE TABLE t(x)").unwrap();
    let r = cli(&["--db", bare.to_str().unwrap(), "--json", "sync"], &env);
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert_eq!(r.error_json()["error"]["code"], "not_configured");

    // Configured but never attached.
    let db = device(&server, "unattached");
    let r = cli(&["--db", db.to_str().unwrap(), "push"], &env);
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("oversqlite push: attach_required: "),
        "{}",
        r.stderr
    );

    // A missing file is not created.
    let missing = db_path("missing");
    let r = cli(&["--db", missing.to_str().unwrap(), "sync"], &env);
    assert_eq!(r.code, 66, "{}", r.stderr);
    assert!(!missing.exists());

    // Usage errors: no --db, unknown option, attach without --user, bad user id.
    assert_eq!(cli(&["sync"], &env).code, 64);
    let r = cli(
        &["--db", db.to_str().unwrap(), "--json", "sync", "--bogus"],
        &env,
    );
    assert_eq!(r.code, 64);
    assert_eq!(r.error_json()["error"]["code"], "invalid_argument");
    assert_eq!(
        cli(&["--db", db.to_str().unwrap(), "attach"], &env).code,
        64
    );
    let r = cli(
        &["--db", db.to_str().unwrap(), "attach", "--user", " "],
        &env,
    );
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("oversqlite attach: invalid_argument: "),
        "{}",
        r.stderr
    );

    // --help documents the exit codes; --version prints the version.
    let help = cli(&["--help"], &[]).ok().stdout;
    assert!(
        help.contains("75  retry later") && help.contains("77  authentication"),
        "{help}"
    );
    let v = cli(&["--version"], &[]).ok().stdout;
    assert_eq!(
        v.trim(),
        format!("oversqlite {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_locked_database_is_retry_later() {
    let server = TestServer::start();
    let db = attached(&server, "locked");
    insert_user(&db, "u1", "Ada");
    // Another connection holds the write lock for the whole run.
    let holder = plain(&db);
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let r = cli_as(
        &server,
        "alice",
        &db,
        &["--busy-timeout-ms", "200", "--json", "sync"],
    );
    assert_eq!(r.code, 75, "{}", r.stderr);
    let e = r.error_json();
    assert_eq!(e["error"]["code"], "sqlite_error", "{e}");
    assert_eq!(e["error"]["retry_later"], true);
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    cli_as(&server, "alice", &db, &["sync"]).ok();
    assert_eq!(users(&db).len(), 1);
    assert_eq!(server.rows("users", "alice", "id").len(), 1);
}

#[test]
fn no_write_lock_is_held_while_a_request_is_in_flight() {
    let server = TestServer::start();
    let db = attached(&server, "in-flight");
    insert_user(&db, "u1", "Ada");
    let slow = slow_unavailable_server(Duration::from_millis(700));
    let token = server.token("alice");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oversqlite"))
        .args(["--db", db.to_str().unwrap(), "--server", &slow, "push"])
        .env("OVERSQLITE_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While the CLI waits for the server, the app writes without waiting at all.
    std::thread::sleep(Duration::from_millis(400));
    let app = rusqlite::Connection::open(&db).unwrap();
    app.busy_timeout(Duration::ZERO).unwrap();
    let mut writes = 0;
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(20) {
        app.execute(
            "INSERT INTO users(id, name) VALUES (?1, 'w')",
            [format!("w{writes}")],
        )
        .expect("a write while the CLI's request is in flight");
        writes += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(75));
    assert!(writes >= 5, "only {writes} writes happened during the run");
    // Everything written meanwhile is pending, nothing lost; the real server takes it all.
    drop(app);
    cli_as(&server, "alice", &db, &["sync"]).ok();
    assert_eq!(server.rows("users", "alice", "id").len(), 1 + writes);
}

#[test]
fn a_table_the_server_does_not_know_is_fix_something() {
    let server = TestServer::start();
    let db = device(&server, "schema-mismatch");
    // The app enables a table the server's schema lacks.
    let conn = oversqlite_tests::host::file(&db);
    conn.execute_batch("CREATE TABLE gadgets (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL)")
        .unwrap();
    oversqlite_tests::host::call(&conn, "SELECT oversqlite_enable_sync('gadgets')", &[]).unwrap();
    drop(conn);
    cli_as(&server, "alice", &db, &["attach", "--user", "alice"]).ok();
    plain(&db)
        .execute("INSERT INTO gadgets(id, name) VALUES ('g1', 'x')", [])
        .unwrap();
    let r = cli_as(&server, "alice", &db, &["--json", "sync"]);
    // The server rejects the staged row: fix something (the rows stay pending).
    assert_eq!(r.code, 65, "{}", r.stderr);
    let e = r.error_json();
    assert_eq!(e["error"]["code"], "push_rejected", "{e}");
    assert_eq!(e["error"]["http_status"], 400);
    assert_eq!(e["error"]["server_code"], "push_chunk_invalid");
    assert_eq!(e["error"]["retry_later"], false);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("gadgets"),
        "{e}"
    );
    // The refused row stays pending locally.
    let j = cli(&["--db", db.to_str().unwrap(), "--json", "pending"], &[])
        .ok()
        .json();
    assert_eq!(j["pending_row_count"], 1);
    assert_eq!(j["changes"][0]["table"], "gadgets");
}

#[test]
fn a_second_sync_of_the_same_file_is_retry_later() {
    let server = TestServer::start();
    let db = attached(&server, "concurrent");
    insert_user(&db, "u1", "Ada");
    let slow = slow_unavailable_server(Duration::from_millis(700));
    let token = server.token("alice");
    let mut first = Command::new(env!("CARGO_BIN_EXE_oversqlite"))
        .args(["--db", db.to_str().unwrap(), "--server", &slow, "push"])
        .env("OVERSQLITE_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let r = cli_as(&server, "alice", &db, &["--json", "sync"]);
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended too early for the test"
    );
    assert_eq!(r.code, 75, "{}", r.stderr);
    let e = r.error_json();
    assert_eq!(e["error"]["code"], "sync_in_progress", "{e}");
    assert_eq!(e["error"]["retry_later"], true);
    assert_eq!(first.wait().unwrap().code(), Some(75));
    // Once the first run is over, the retry goes through.
    cli_as(&server, "alice", &db, &["sync"]).ok();
    assert_eq!(server.rows("users", "alice", "id").len(), 1);
}

/// `--timeout-ms` bounds a command against a server that never answers, and SIGINT
/// (Ctrl-C) stops one: both exit 75 (retry later) with `timeout` / `interrupted`, the
/// change still pending, and the next sync against the real server sends it once.
#[test]
fn a_stalled_server_is_bounded_by_timeout_ms_and_interrupted_by_sigint() {
    let server = TestServer::start();
    let db = device(&server, "stalled");
    cli_as(&server, "alice", &db, &["attach", "--user", "alice"]).ok();
    insert_user(&db, "s1", "Stalled");
    let stalled_server = oversqlite_tests::stalled::StalledServer::start();
    let stalled = stalled_server.url.clone();

    let started = std::time::Instant::now();
    let r = cli_as(
        &server,
        "alice",
        &db,
        &[
            "--server",
            &stalled,
            "--timeout-ms",
            "600",
            "--json",
            "sync",
        ],
    );
    let elapsed = started.elapsed();
    assert_eq!(r.code, 75, "{}", r.stderr);
    assert_eq!(r.error_json()["error"]["code"], "timeout", "{}", r.stderr);
    assert!(
        elapsed >= std::time::Duration::from_millis(600)
            && elapsed < std::time::Duration::from_secs(5),
        "{elapsed:?}"
    );

    let token = server.token("alice");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_oversqlite"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "--server",
            &stalled,
            "--json",
            "sync",
        ])
        .env("OVERSQLITE_TOKEN", &token)
        .env_remove("OVERSQLITE_TOKEN_FILE")
        .env_remove("OVERSQLITE_DB")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let sent = std::time::Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        assert!(
            sent.elapsed() < std::time::Duration::from_secs(5),
            "the sync did not stop within 5 s of SIGINT"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    let err: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stderr).trim()).unwrap();
    assert_eq!(err["error"]["code"], "interrupted", "{err}");

    // Nothing lost, nothing sent twice.
    cli_as(&server, "alice", &db, &["sync"]).ok();
    assert_eq!(server.rows("users", "alice", "id").len(), 1);
}

/// `status` of a file configured by the app but never opened (no runtime tables yet)
/// reports that and the way on, instead of failing with advice the CLI cannot follow.
#[test]
fn status_of_a_configured_file_never_opened_reports_it_and_the_way_on() {
    let server = TestServer::start();
    let db = db_path("never-opened");
    let conn = oversqlite_tests::host::file(&db);
    conn.execute_batch("CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL)")
        .unwrap();
    oversqlite_tests::host::call(&conn, "SELECT oversqlite_init(?1, 'main')", &[&server.url])
        .unwrap();
    oversqlite_tests::host::call(&conn, "SELECT oversqlite_enable_sync('users')", &[]).unwrap();
    drop(conn);
    let path = db.to_str().unwrap();
    let j = cli(&["--db", path, "--json", "status"], &[]).ok().json();
    assert_eq!(j["opened"], false, "{j}");
    assert_eq!(j["tables"], serde_json::json!(["users"]), "{j}");
    let text = cli(&["--db", path, "status"], &[]).ok().stdout;
    assert!(text.contains("not opened for sync yet"), "{text}");
    assert!(text.contains("oversqlite attach --user USER"), "{text}");
}

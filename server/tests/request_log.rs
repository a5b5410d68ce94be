//! Request logging (#10 item 9): one line per request with method, route template, status,
//! user and duration; each refused token's reason; never a token; level from `--log-level`,
//! `OVERSQLITE_LOG` or `RUST_LOG`.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::json;

/// Starts the binary with `flags` and `env`, its stderr going to `log`; returns it and its URL.
fn start_logging(dir: &Path, log: &Path, flags: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .arg("--config")
        .arg(config_path())
        .args(["--listen", "127.0.0.1:0", "--jwt-secret", SECRET])
        .arg("--data")
        .arg(dir.join("store.db"))
        .args(flags)
        .env_remove("RUST_LOG")
        .env_remove("OVERSQLITE_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(File::create(log).unwrap()));
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(base.starts_with("http://"), "{line}");
    (child, base)
}

fn stop(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn token(user: &str, secret: &str, ttl: i64) -> String {
    let out = Command::new(BIN)
        .arg("token")
        .arg("--config")
        .arg(config_path())
        .args(["--user", user, "--jwt-secret", secret, "--ttl-seconds"])
        .arg(ttl.to_string())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn get_with_token(base: &str, path: &str, token: &str) -> u16 {
    request(
        &format!("{base}{path}"),
        "GET",
        &[
            ("Authorization", format!("Bearer {token}")),
            ("Oversync-Source-ID", "dev-a".to_string()),
        ],
        None,
    )
    .0
}

#[test]
fn requests_are_logged_without_tokens_and_refused_tokens_with_their_reason() {
    let dir = TempDir::new();
    let log = dir.0.join("server.log");
    let (child, base) = start_logging(&dir.0, &log, &["--log-level", "info"], &[]);
    let good = token("alice", SECRET, 3600);
    let expired = token("alice", SECRET, -120);
    let forged = token("alice", "another-secret", 3600);
    let malformed = "not.a.jwt-token-text";
    assert_eq!(get_with_token(&base, "/sync/capabilities", &good), 200);
    let (status, _) = request(
        &format!("{base}/sync/push-sessions/p-123/chunks"),
        "POST",
        &[
            ("Authorization", format!("Bearer {good}")),
            ("Oversync-Source-ID", "dev-a".to_string()),
        ],
        Some(&json!({"start_row_ordinal": 0, "rows": []}).to_string()),
    );
    assert_eq!(status, 400);
    assert_eq!(get_with_token(&base, "/sync/pull", &expired), 401);
    assert_eq!(get_with_token(&base, "/sync/pull", &forged), 401);
    assert_eq!(get_with_token(&base, "/sync/pull", malformed), 401);
    stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let request_line = |route: &str, status: u16| {
        lines
            .iter()
            .find(|l| {
                l.contains(" request ")
                    && l.contains(&format!("route={route} "))
                    && l.contains(&format!("status={status} "))
            })
            .unwrap_or_else(|| panic!("no request line for {route} {status}:\n{text}"))
            .to_string()
    };
    let line = request_line("/sync/capabilities", 200);
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("method=GET"), "{line}");
    assert!(line.contains("user=\"alice\""), "{line}");
    assert!(line.contains("duration_ms="), "{line}");
    // The route template, not the path.
    let line = request_line("/sync/push-sessions/{push_id}/chunks", 400);
    assert!(
        line.contains("method=POST") && line.contains("user=\"alice\""),
        "{line}"
    );
    assert!(!text.contains("p-123"), "{text}");
    let refused = request_line("/sync/pull", 401);
    assert!(refused.contains("user=\"-\""), "{refused}");
    for reason in ["expired", "bad signature", "malformed"] {
        assert!(
            lines.iter().any(|l| l.contains("bearer token refused")
                && l.contains("route=/sync/pull")
                && l.contains(&format!("reason=\"{reason}\""))),
            "no refusal with reason {reason}:\n{text}"
        );
    }
    // No token, nor any of its three parts, appears in the output.
    for secret_text in [good.as_str(), expired.as_str(), forged.as_str(), malformed] {
        for part in secret_text.split('.').filter(|p| p.len() > 3) {
            assert!(!text.contains(part), "token text {part} logged:\n{text}");
        }
    }
    assert!(
        !text.contains("Authorization") && !text.contains("Bearer"),
        "{text}"
    );
}

#[test]
fn log_level_comes_from_the_flag_then_oversqlite_log_then_rust_log() {
    let dir = TempDir::new();
    let good = token("alice", SECRET, 3600);
    let run = |flags: &[&str], env: &[(&str, &str)]| {
        let log = dir.0.join("level.log");
        let (child, base) = start_logging(&dir.0, &log, flags, env);
        assert_eq!(get_with_token(&base, "/sync/capabilities", &good), 200);
        assert_eq!(get_with_token(&base, "/sync/pull", "garbage"), 401);
        stop(child);
        let text = std::fs::read_to_string(&log).unwrap();
        (
            text.contains("route=/sync/capabilities status=200"),
            text.contains("reason=\"malformed\""),
        )
    };
    // Default info: both.
    assert_eq!(run(&[], &[]), (true, true));
    // warn: refusals only.
    assert_eq!(run(&[], &[("OVERSQLITE_LOG", "warn")]), (false, true));
    assert_eq!(run(&[], &[("RUST_LOG", "warn")]), (false, true));
    // OVERSQLITE_LOG wins over RUST_LOG, the flag over both.
    assert_eq!(
        run(&[], &[("OVERSQLITE_LOG", "error"), ("RUST_LOG", "info")]),
        (false, false)
    );
    assert_eq!(
        run(&["--log-level", "info"], &[("OVERSQLITE_LOG", "error")]),
        (true, true)
    );
    // An invalid environment value warns once and logs at info.
    assert_eq!(run(&[], &[("OVERSQLITE_LOG", "nonsense")]), (true, true));
    let warned = std::fs::read_to_string(dir.0.join("level.log")).unwrap();
    assert_eq!(
        warned.matches("warning: OVERSQLITE_LOG").count(),
        1,
        "{warned}"
    );
    assert!(warned.contains("logging at info"), "{warned}");
    assert_eq!(run(&[], &[("RUST_LOG", "wran")]), (true, true));
    // A bad --log-level stops start-up with exit status 2, naming the valid levels; a
    // typo must not parse as a target name and silently turn logging off.
    for bad in ["loud==", "wran", "nonsense", "info,wran"] {
        let out = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(config_path())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--jwt-secret",
                SECRET,
                "--log-level",
                bad,
            ])
            .arg("--data")
            .arg(dir.0.join("bad.db"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("invalid log level"), "{stderr}");
        assert!(
            stderr.contains("off, error, warn, info, debug, trace"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "never started: {bad}");
    }
}

//! `--foreign-key-errors`: a push commit that violates a foreign key is `400
//! push_commit_invalid` by default (`ours`), and with `reference` the
//! `500 push_session_commit_failed` go-oversync answers for PostgreSQL's SQLSTATE 23503, so
//! client suites can check they never lean on our 400. Either way nothing is committed.

mod common;

use common::*;
use serde_json::{json, Value};

fn post_row(op: &str, id: &str, author: &str, base: i64) -> Value {
    json!({"schema":"business","table":"posts","key":{"id":id},"op":op,"base_row_version":base,
           "payload":{"id":id,"title":"t","content":"c","author_id":author,
                      "created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}})
}

/// Both kinds of violation (a child whose parent is missing, and the NO ACTION deletion
/// of a referenced parent) answer `(status, code)`; the source sequence does not move.
fn assert_violations_answer(flags: &[&str], status: u16, code: &str) -> Vec<Value> {
    let server = Server::start(flags);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    alice.push_ok(
        1,
        &[
            user_row("INSERT", "u1", "Ada", 0),
            post_row("INSERT", "p1", "u1", 0),
        ],
    );
    let orphan = assert_error(
        alice.push(2, &[post_row("INSERT", "p2", "u-missing", 0)]),
        status,
        code,
    );
    // posts.author_id is NO ACTION (business-text-keys.toml): u1 cannot go while p1 references it.
    let referenced = assert_error(
        alice.push(2, &[user_row("DELETE", "u1", "", 1)]),
        status,
        code,
    );
    let (s, pulled) = alice.pull(0);
    assert_eq!(s, 200, "{pulled}");
    assert_eq!(pulled["stable_bundle_seq"], 1, "nothing was committed");
    assert_eq!(
        alice.create(2, 1).1["status"],
        "staging",
        "sequence unchanged"
    );
    // The test route is ours, not go-oversync's commit: its violations stay 400.
    let (s, body) = server.post_test(
        "/test/server-bundle",
        json!({"user_id":"alice","rows":[post_row("INSERT", "p3", "u-missing", 0)]}),
    );
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("push_commit_invalid")),
        "{body}"
    );
    vec![orphan, referenced]
}

#[test]
fn ours_answers_a_foreign_key_violation_400_push_commit_invalid() {
    for flags in [&[][..], &["--foreign-key-errors", "ours"][..]] {
        for body in assert_violations_answer(flags, 400, "push_commit_invalid") {
            assert_eq!(
                body,
                json!({"error":"push_commit_invalid",
                       "message":"bundle violates a foreign key: a referenced row does not exist in this scope"})
            );
        }
    }
}

#[test]
fn reference_answers_a_foreign_key_violation_like_go_oversync() {
    let flags = ["--foreign-key-errors", "reference"];
    for body in assert_violations_answer(&flags, 500, "push_session_commit_failed") {
        // go-oversync: fmt.Sprintf("Database error [%s]: %s", pgErr.SQLState(), pgErr.Message).
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("Database error [23503]: ")
                && message.contains("violates foreign key constraint"),
            "{body}"
        );
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }
}

#[test]
fn an_unknown_foreign_key_errors_mode_is_refused_at_start() {
    let out = std::process::Command::new(BIN)
        .args(["serve", "--foreign-key-errors", "postgres", "--config"])
        .arg(config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("postgres") && stderr.contains("reference"),
        "{stderr}"
    );
}

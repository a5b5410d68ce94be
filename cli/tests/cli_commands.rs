//! Every subcommand against a real server, in text and `--json` form: attach (seed and
//! hydrate), pending, push, sync, pull, status, detach (blocked and discarding).
mod support;

use oversqlite_tests::server::TestServer;
use support::{cli, cli_as, device, insert_user, users};

#[test]
fn attach_push_pull_sync_status_pending_detach() {
    let server = TestServer::start();
    let a = device(&server, "cmd-a");
    let b = device(&server, "cmd-b");
    insert_user(&a, "u1", "Ada");

    // A seeds the server from its local row.
    let r = cli_as(
        &server,
        "alice",
        &a,
        &["--json", "attach", "--user", "alice"],
    )
    .ok();
    let j = r.json();
    assert_eq!(j["outcome"], "seeded_from_local", "{j}");
    assert_eq!(j["status"]["pending"]["pending_row_count"], 1);

    // pending lists the captured row, in both forms.
    insert_user(&a, "u2", "Grace");
    let j = cli_as(&server, "alice", &a, &["--json", "pending"])
        .ok()
        .json();
    assert_eq!(j["pending_row_count"], 2, "{j}");
    let tables: Vec<&str> = j["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["table"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["users", "users"]);
    let keys: Vec<String> = j["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"]["id"].as_str().unwrap().to_string())
        .collect();
    assert!(keys.contains(&"u1".to_string()) && keys.contains(&"u2".to_string()));
    assert_eq!(j["changes"][0]["op"], "INSERT");
    let text = cli_as(&server, "alice", &a, &["pending"]).ok().stdout;
    assert!(text.contains("users {\"id\":\"u2\"}"), "{text}");
    assert!(text.trim_end().ends_with("2 pending rows"), "{text}");

    // push uploads both rows as one bundle.
    let j = cli_as(&server, "alice", &a, &["--json", "push"])
        .ok()
        .json();
    assert_eq!(j["outcome"], "committed", "{j}");
    assert_eq!(j["row_count"], 2);
    assert_eq!(j["status"]["pending"]["pending_row_count"], 0);
    assert_eq!(
        server.rows("users", "alice", "id, name").len(),
        2,
        "server rows after push"
    );
    let text = cli_as(&server, "alice", &a, &["pending"]).ok().stdout;
    assert_eq!(text.trim(), "0 pending rows");

    // B hydrates from the server on attach.
    let r = cli_as(&server, "alice", &b, &["attach", "--user", "alice"]).ok();
    assert!(
        r.stdout.starts_with("attached as alice: used_remote_state"),
        "{}",
        r.stdout
    );
    assert_eq!(users(&b), users(&a));

    // B writes and syncs; A pulls.
    insert_user(&b, "u3", "Linus");
    let j = cli_as(&server, "alice", &b, &["--json", "sync"])
        .ok()
        .json();
    assert_eq!(j["push_outcome"], "committed", "{j}");
    assert_eq!(j["pending_row_count"], 0);
    let r = cli_as(&server, "alice", &a, &["pull"]).ok();
    assert!(
        r.stdout
            .starts_with("pull: applied_incremental; 1 bundles applied"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("changed: users"), "{}", r.stdout);
    assert_eq!(users(&a), users(&b));
    assert_eq!(users(&a).len(), 3);

    // pull refuses to run past unsent changes; sync goes beside them.
    insert_user(&a, "u4", "Barbara");
    let r = cli_as(&server, "alice", &a, &["pull"]);
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("oversqlite pull: pending_local_changes: "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("oversqlite sync"), "{}", r.stderr);
    let r = cli_as(&server, "alice", &a, &["sync"]).ok();
    assert!(
        r.stdout.starts_with("push: committed, pull: "),
        "{}",
        r.stdout
    );
    // No progress drawing when stderr is not a terminal.
    assert!(r.stderr.is_empty(), "{:?}", r.stderr);
    assert!(r.stdout.contains("pending rows 0"), "{}", r.stdout);

    // status: local state in both forms.
    let j = cli(&["--db", a.to_str().unwrap(), "--json", "status"], &[])
        .ok()
        .json();
    assert_eq!(j["source"]["binding_state"], "attached", "{j}");
    assert_eq!(j["source"]["attached_user_id"], "alice");
    assert_eq!(j["server_url"], server.url.as_str());
    assert_eq!(j["schema"], "main");
    assert_eq!(j["tables"], serde_json::json!(["users", "posts"]));
    assert_eq!(j["status"]["pending"]["pending_row_count"], 0);
    assert_eq!(j["status"]["authority"], "authoritative_materialized");
    assert!(j["status"]["last_bundle_seq_seen"].as_i64().unwrap() >= 3);
    let text = cli(&["--db", a.to_str().unwrap(), "status"], &[])
        .ok()
        .stdout;
    assert!(text.contains("binding:     attached as alice"), "{text}");
    assert!(text.contains("pending:     0 rows"), "{text}");

    // detach is blocked by an unsent change (exit 65), then forced.
    insert_user(&a, "u5", "Edsger");
    let r = cli_as(&server, "alice", &a, &["--json", "detach"]);
    assert_eq!(r.code, 65, "{}", r.stderr);
    let e = r.error_json();
    assert_eq!(e["command"], "detach");
    assert_eq!(e["error"]["code"], "blocked_unsynced_data");
    assert_eq!(e["error"]["pending_row_count"], 1);
    assert_eq!(e["error"]["retry_later"], false);
    assert_eq!(users(&a).len(), 5, "a blocked detach changes nothing");
    let j = cli_as(
        &server,
        "alice",
        &a,
        &["--json", "detach", "--discard-local-changes"],
    )
    .ok()
    .json();
    assert_eq!(j["outcome"], "detached", "{j}");
    assert!(users(&a).is_empty(), "detach empties the managed tables");
    let j = cli(&["--db", a.to_str().unwrap(), "--json", "status"], &[])
        .ok()
        .json();
    assert_eq!(j["source"]["binding_state"], "anonymous", "{j}");

    // A detached database needs attach before any sync: a "fix something" code.
    let r = cli_as(&server, "alice", &a, &["sync"]);
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("oversqlite sync: attach_required: "),
        "{}",
        r.stderr
    );

    // The discarded row never reached the server; the others did, once each.
    let ids: Vec<String> = server
        .rows("users", "alice", "id")
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["u1", "u2", "u3", "u4"]);
}

//! A commit that was answered 200 survives `kill -9`: after a restart on the same store the
//! retried (source, source_bundle_id) is recognised as already committed.

mod common;

use common::*;
use serde_json::json;

#[test]
fn committed_bundle_survives_kill_and_replays_as_already_committed() {
    let mut server = Server::start(&[]);
    let alice = server.client("alice", "dev-a");
    alice.connect(false);
    let first = alice.push_ok(1, &[user_row("INSERT", "u1", "Ann", 0)]);
    let rows: Vec<_> = (0..50)
        .map(|i| user_row("INSERT", &format!("bulk{i}"), "b", 0))
        .collect();
    let second = alice.push_ok(2, &rows);
    // A staged, uncommitted session must not survive as a committed bundle.
    let (_, staged) = alice.create(3, 1);
    let push_id = staged["push_id"].as_str().unwrap().to_string();
    assert_eq!(
        alice
            .chunk(&push_id, 0, &[user_row("INSERT", "u-staged", "s", 0)])
            .0,
        200
    );

    server.kill_and_restart();
    let alice = Client {
        base: server.base.clone(),
        ..alice
    };
    for (id, original) in [(1, &first), (2, &second)] {
        let (status, replay) = alice.create(id, 1);
        assert_eq!(status, 200, "{replay}");
        assert_eq!(replay["status"], "already_committed");
        assert_eq!(replay["bundle_seq"], original["bundle_seq"]);
        assert_eq!(replay["bundle_hash"], original["bundle_hash"]);
        assert_eq!(replay["row_count"], original["row_count"]);
    }
    // The staging session survived too (it is durable state), and can still be committed.
    assert_eq!(alice.commit(&push_id).1["bundle_seq"], 3);
    let (status, pulled) = alice.pull(0);
    assert_eq!(status, 200);
    assert_eq!(pulled["stable_bundle_seq"], 3);
    assert_eq!(pulled["bundles"][1]["rows"].as_array().unwrap().len(), 50);
    assert_eq!(
        alice.connect(false),
        json!({"resolution": "remote_authoritative"})
    );
    // Kill again right after a commit with no further traffic.
    let fourth = alice.push_ok(4, &[user_row("UPDATE", "u1", "Ann2", 1)]);
    server.kill_and_restart();
    let alice = Client {
        base: server.base.clone(),
        ..alice
    };
    let replay = alice.create(4, 1).1;
    assert_eq!(
        (
            &replay["status"],
            &replay["bundle_seq"],
            &replay["bundle_hash"]
        ),
        (
            &json!("already_committed"),
            &fourth["bundle_seq"],
            &fourth["bundle_hash"]
        )
    );
    assert_eq!(alice.create(5, 1).1["status"], "staging");
}

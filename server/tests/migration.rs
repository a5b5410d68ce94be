//! Schema changes of the server: a v1 store started with a v2 config (an added column, an
//! added NOT NULL column with a default, an added table with a cascading foreign key) is
//! migrated in place, keeps its data, and serves v1 and v2 clients as specified; a
//! non-additive config is refused with every difference; `migrate --dry-run` changes
//! nothing; a failing migration leaves the store as it was.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{start_with_config, Client, TempDir, BIN};
use serde_json::{json, Value};

const V1: &str = r#"
schema_version = 1
[[tables]]
schema = "demo"
table = "person"
key = "id"
columns = [{ name = "id", type = "text", nullable = false }, { name = "name", type = "text" }]
"#;

const V2: &str = r#"
schema_version = 2
[[tables]]
schema = "demo"
table = "person"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text" },
  { name = "email", type = "text" },
  { name = "rank", type = "integer", nullable = false, default = 7 },
]
[[tables]]
schema = "demo"
table = "pet"
key = "id"
columns = [{ name = "id", type = "text", nullable = false }, { name = "owner", type = "text" }]
foreign_keys = [{ column = "owner", references = "person", on_delete = "cascade" }]
"#;

/// Retypes `name` and makes it NOT NULL, adds a NOT NULL column without a default and
/// changes the key: each must be refused and listed.
const BROKEN: &str = r#"
[[tables]]
schema = "demo"
table = "person"
key = "nick"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "integer", nullable = false },
  { name = "nick", type = "text", nullable = false },
]
"#;

struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = TempDir::new();
        for (name, text) in [("v1.toml", V1), ("v2.toml", V2), ("broken.toml", BROKEN)] {
            std::fs::write(dir.0.join(name), text).unwrap();
        }
        Setup { dir }
    }
    fn config(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }
    fn data(&self) -> PathBuf {
        self.dir.0.join("store.db")
    }
    /// A v1 store holding one person of alice, written through a v1 server.
    fn v1_store(&self) {
        let server = start_with_config(&self.config("v1.toml"), &self.data());
        let alice = server.client("alice", "device-a");
        alice.connect(false);
        alice.push_ok(
            1,
            &[person(
                "INSERT",
                "p1",
                json!({"id": "p1", "name": "Ann"}),
                0,
            )],
        );
    }
    fn migrate(&self, config: &str, extra: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(["migrate", "--config"])
            .arg(self.config(config))
            .arg("--data")
            .arg(self.data())
            .args(extra)
            .output()
            .unwrap()
    }
}

fn person(op: &str, id: &str, payload: Value, base: i64) -> Value {
    json!({"schema": "demo", "table": "person", "key": {"id": id}, "op": op,
           "base_row_version": base, "payload": payload})
}

/// The after-images of committed bundle `seq`, by key.
fn committed_payloads(client: &Client, seq: i64) -> Vec<Value> {
    let (status, page) = client.get(&format!("/sync/committed-bundles/{seq}/rows"));
    assert_eq!(status, 200, "{page}");
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["payload"].clone())
        .collect()
}

/// The store's schema text and every registered row: what "unchanged" compares.
fn store_dump(data: &Path) -> String {
    let conn = rusqlite::Connection::open(data).unwrap();
    let mut out = String::new();
    let mut stmt = conn
        .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let schema: Vec<String> = stmt
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    out.push_str(&schema.join("\n"));
    let rows: String = conn
        .query_row(
            "SELECT group_concat(_sync_scope_id || ':' || id || ':' || coalesce(name, 'NULL'), ';') FROM \"demo.person\"",
            [],
            |r| r.get(0),
        )
        .unwrap();
    out.push_str(&rows);
    out
}

#[test]
fn a_v1_store_started_with_a_v2_config_is_migrated_and_serves_both_clients() {
    let setup = Setup::new();
    setup.v1_store();
    let server = start_with_config(&setup.config("v2.toml"), &setup.data());
    let new_app = server.client("alice", "device-new");
    let old_app = server.client("alice", "device-old");
    new_app.connect(true);
    old_app.connect(true);
    assert_eq!(new_app.get("/sync/capabilities").1["schema_version"], 2);

    // The v1 row is kept; the added columns hold NULL and the default.
    let conn = rusqlite::Connection::open(setup.data()).unwrap();
    let kept: (String, Option<String>, i64) = conn
        .query_row(
            "SELECT name, email, rank FROM \"demo.person\" WHERE id = 'p1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(kept, ("Ann".to_string(), None, 7));

    // A v2 client writes the new column; a v1 client's UPDATE (no email, no rank) keeps it.
    new_app.push_ok(
        1,
        &[person(
            "UPDATE",
            "p1",
            json!({"id": "p1", "name": "Ann", "email": "ann@x", "rank": 3}),
            1,
        )],
    );
    old_app.push_ok(
        1,
        &[person(
            "UPDATE",
            "p1",
            json!({"id": "p1", "name": "Anne"}),
            2,
        )],
    );
    assert_eq!(
        committed_payloads(&old_app, 3),
        [json!({"id": "p1", "name": "Anne", "email": "ann@x", "rank": 3})],
        "an old device's edit never erases a new column"
    );
    // A v1 client's INSERT takes the defaults (NULL without one).
    old_app.push_ok(
        2,
        &[person("INSERT", "p2", json!({"id": "p2", "name": "Bo"}), 0)],
    );
    assert_eq!(
        committed_payloads(&old_app, 4),
        [json!({"id": "p2", "name": "Bo", "email": null, "rank": 7})]
    );

    // The added table works, its cascade included.
    let pet = json!({"schema": "demo", "table": "pet", "key": {"id": "d1"}, "op": "INSERT",
                     "base_row_version": 0, "payload": {"id": "d1", "owner": "p2"}});
    new_app.push_ok(2, &[pet]);
    new_app.push_ok(
        3,
        &[
            json!({"schema": "demo", "table": "person", "key": {"id": "p2"},
                                "op": "DELETE", "base_row_version": 4}),
        ],
    );
    let (status, pulled) = new_app.pull(6);
    assert_eq!(status, 200, "{pulled}");
    let cascade = &pulled["bundles"][0]["rows"][0];
    assert_eq!(
        (cascade["table"].as_str(), cascade["op"].as_str()),
        (Some("pet"), Some("DELETE"))
    );
}

#[test]
fn a_column_the_server_lacks_is_refused_naming_the_side_to_migrate() {
    let setup = Setup::new();
    setup.v1_store();
    let server = start_with_config(&setup.config("v1.toml"), &setup.data());
    let new_app = server.client("alice", "device-new");
    new_app.connect(true);
    let (status, push) = new_app.create(1, 1);
    assert_eq!(status, 200, "{push}");
    let row = person(
        "UPDATE",
        "p1",
        json!({"id": "p1", "name": "A", "email": "a@x"}),
        1,
    );
    let (status, body) = new_app.chunk(push["push_id"].as_str().unwrap(), 0, &[row]);
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("unknown column \"email\"") && message.contains("server's config"),
        "{message}"
    );
}

#[test]
fn a_non_additive_config_is_refused_listing_every_difference() {
    let setup = Setup::new();
    setup.v1_store();
    let before = store_dump(&setup.data());
    let out = setup.migrate("broken.toml", &[]);
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    for difference in [
        "column demo.person.name changes type from TEXT to INTEGER",
        "column demo.person.name changes from nullable to NOT NULL",
        "column demo.person.nick is added NOT NULL without a default",
        "table demo.person changes its key from id to nick",
        "Only additive changes migrate in place",
    ] {
        assert!(
            message.contains(difference),
            "missing {difference:?} in {message}"
        );
    }
    // The server refuses the same config at start-up, and the store is untouched.
    let serve = Command::new(BIN)
        .args([
            "serve",
            "--jwt-secret",
            "s",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(setup.config("broken.toml"))
        .arg("--data")
        .arg(setup.data())
        .output()
        .unwrap();
    assert!(!serve.status.success());
    assert!(String::from_utf8_lossy(&serve.stderr).contains("cannot be migrated"));
    assert_eq!(store_dump(&setup.data()), before);

    // A table dropped from the config is refused too.
    std::fs::write(setup.config("v1.toml"), V1.replace("person", "people")).unwrap();
    let out = setup.migrate("v1.toml", &[]);
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("table demo.person is in the store but not in the config"),
        "{message}"
    );
}

#[test]
fn migrate_dry_run_changes_nothing_and_migrate_applies_it_once() {
    let setup = Setup::new();
    setup.v1_store();
    let before = store_dump(&setup.data());
    let out = setup.migrate("v2.toml", &["--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("would migrate")
            && said.contains("add column demo.person.email")
            && said.contains("create table demo.pet"),
        "{said}"
    );
    assert_eq!(store_dump(&setup.data()), before);

    let out = setup.migrate("v2.toml", &[]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("migrated the store"),
        "{said}"
    );
    assert_ne!(store_dump(&setup.data()), before);
    let again = setup.migrate("v2.toml", &[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to migrate"));
}

#[test]
fn a_migration_that_fails_midway_leaves_the_store_as_it_was() {
    // An object already holding the new table's name makes CREATE TABLE fail after the
    // ALTER of demo.person ran: the whole migration must roll back with it. (A real
    // failure, no test-only code path: the migration is one SQLite transaction.)
    let setup = Setup::new();
    setup.v1_store();
    {
        let conn = rusqlite::Connection::open(setup.data()).unwrap();
        conn.execute_batch("CREATE INDEX \"demo.pet\" ON \"demo.person\" (name)")
            .unwrap();
    }
    let before = store_dump(&setup.data());
    let out = setup.migrate("v2.toml", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the store is unchanged"));
    assert_eq!(
        store_dump(&setup.data()),
        before,
        "no column added, nothing changed"
    );
    // Still a working v1 store.
    let server = start_with_config(&setup.config("v1.toml"), &setup.data());
    let alice = server.client("alice", "device-a");
    alice.connect(false);
}

#[test]
fn a_kill_during_migration_leaves_a_store_that_starts() {
    // SIGKILL at whatever point `migrate` has reached: before, inside or after its one
    // transaction. Whichever it was, the store must start with the v2 config and keep
    // every row (WAL + one transaction: all of the migration or none of it).
    let setup = Setup::new();
    setup.v1_store();
    for delay_ms in [0u64, 2, 5, 10, 20] {
        let mut child = Command::new(BIN)
            .args(["migrate", "--config"])
            .arg(setup.config("v2.toml"))
            .arg("--data")
            .arg(setup.data())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
    }
    let server = start_with_config(&setup.config("v2.toml"), &setup.data());
    let alice = server.client("alice", "device-a");
    alice.connect(false);
    let (status, pulled) = alice.pull(0);
    assert_eq!(status, 200, "{pulled}");
    assert_eq!(pulled["bundles"][0]["rows"][0]["payload"]["name"], "Ann");
}

//! Issue #13, the device side end to end: an additive schema change (a nullable `email` on
//! `person`, a new table `pet`) rolled out through a real oversqlite-server restarted on a
//! new config, with devices migrated before the server, after it, and never. Each test
//! asserts rows on every device and on the server, the JSON reports and the error texts.
//! The local steps are the README's "Changing the schema": `ALTER TABLE … ADD COLUMN`,
//! `CREATE TABLE` + `oversqlite_enable_sync`, then `oversqlite_open()`.
//!
//! Needs `cargo build -p oversqlite` and `cargo build -p oversqlite-server`.
mod e2e_support;

use e2e_support::*;
use oversqlite_tests::server::TestServer;
use serde_json::Value;

const SERVER_V1: &str = r#"
app_name = "oversqlite-e2e-schema-change"
schema_version = 1

[[tables]]
schema = "main"
table = "person"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text" },
]
"#;

const SERVER_V2: &str = r#"
app_name = "oversqlite-e2e-schema-change"
schema_version = 2

[[tables]]
schema = "main"
table = "person"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text" },
  { name = "email", type = "text" },
]

[[tables]]
schema = "main"
table = "pet"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "owner", type = "text" },
]
foreign_keys = [{ column = "owner", references = "person", on_delete = "cascade" }]
"#;

/// A device before the change.
const V1: Schema = Schema {
    ddl: "CREATE TABLE IF NOT EXISTS person (id TEXT PRIMARY KEY NOT NULL, name TEXT);",
    tables: &[("person", &[Col::Plain("id"), Col::Plain("name")])],
};

/// A device created after the change (or migrated: same tables).
const V2: Schema = Schema {
    ddl: "CREATE TABLE IF NOT EXISTS person (id TEXT PRIMARY KEY NOT NULL, name TEXT, email TEXT);
          CREATE TABLE IF NOT EXISTS pet (id TEXT PRIMARY KEY NOT NULL,
              owner TEXT REFERENCES person(id) ON DELETE CASCADE);",
    tables: V2_TABLES,
};

/// A device that only added the column.
const V2_PERSON: Schema = Schema {
    ddl: "CREATE TABLE IF NOT EXISTS person (id TEXT PRIMARY KEY NOT NULL, name TEXT, email TEXT);",
    tables: &[(
        "person",
        &[Col::Plain("id"), Col::Plain("name"), Col::Plain("email")],
    )],
};

const V2_TABLES: &[Table] = &[
    (
        "person",
        &[Col::Plain("id"), Col::Plain("name"), Col::Plain("email")],
    ),
    ("pet", &[Col::Plain("id"), Col::Plain("owner")]),
];

const USER: &str = "schema-user";

/// The README's local migration: new column, new table enabled, then open.
fn migrate(d: &mut Device) {
    d.exec(
        "ALTER TABLE person ADD COLUMN email TEXT;
         CREATE TABLE pet (id TEXT PRIMARY KEY NOT NULL,
             owner TEXT REFERENCES person(id) ON DELETE CASCADE);",
    );
    d.sql("SELECT oversqlite_enable_sync('pet')");
    d.sql("SELECT oversqlite_open()");
    d.schema = &V2;
}

/// Only the new column (no new table).
fn add_email(d: &mut Device) {
    d.exec("ALTER TABLE person ADD COLUMN email TEXT;");
    d.sql("SELECT oversqlite_open()");
    d.schema = &V2_PERSON;
}

/// Rewrites the server's config and restarts it on the same store: `serve` migrates it.
fn migrate_server(server: &mut TestServer) {
    std::fs::write(server.config_path(), SERVER_V2).unwrap();
    server.restart();
}

fn trigger_sql(d: &Device, table: &str) -> Vec<String> {
    let mut stmt = d
        .conn
        .prepare(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1 ORDER BY name",
        )
        .unwrap();
    let rows = stmt
        .query_map([table], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows
}

fn checkpoint(d: &Device) -> i64 {
    d.count("SELECT last_bundle_seq_seen FROM oversqlite_source_info")
}

fn pending_rows(d: &Device) -> Vec<(String, String, String, Option<String>)> {
    let mut stmt = d
        .conn
        .prepare("SELECT table_name, key_json, op, payload FROM oversqlite_pending ORDER BY state, ordinal")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows
}

fn person_rows(d: &Device) -> Vec<String> {
    dump_tables(&d.conn, &d.schema.tables[..1]).remove(0).1
}

fn server_person(server: &TestServer, columns: &str) -> Vec<Vec<Value>> {
    server.rows("person", USER, columns)
}

/// A new device of the migrated schema, attached (hydrates from the server).
fn fresh_v2(server: &TestServer, tag: &str) -> Device {
    let (d, _) = Device::attached_with(&db_path(tag), server, USER, &V2);
    d
}

fn sync_ok(d: &Device) -> Value {
    let r = d.sync();
    assert!(r.is_object(), "{r}");
    r
}

#[test]
fn local_add_column_rewrites_triggers_and_recaptures_nothing() {
    let mut server = TestServer::start_with(SERVER_V1, &[]);
    let (mut d, _) = Device::attached_with(&db_path("addcol-d"), &server, USER, &V1);
    d.exec("INSERT INTO person VALUES ('p1', 'Ada'), ('p2', 'Grace')");
    sync_ok(&d);
    // The server migrates first; with nothing new, the old device still syncs.
    migrate_server(&mut server);
    sync_ok(&d);
    assert_eq!(d.pending(), 0);
    let before = trigger_sql(&d, "person");
    assert!(!before.is_empty(), "no capture triggers on person");
    assert!(before.iter().all(|t| !t.contains("email")), "{before:?}");
    let seq = checkpoint(&d);

    add_email(&mut d);
    let after = trigger_sql(&d, "person");
    assert_eq!(after.len(), before.len(), "{after:?}");
    let with_email: Vec<&String> = after.iter().filter(|t| t.contains("email")).collect();
    assert!(
        !with_email.is_empty(),
        "triggers do not mention email after oversqlite_open(): {after:?}"
    );
    assert_eq!(
        d.pending(),
        0,
        "open re-captured rows: {:?}",
        pending_rows(&d)
    );
    assert_eq!(checkpoint(&d), seq);
    assert_eq!(
        person_rows(&d),
        vec![
            "'p1'|'Ada'|NULL".to_string(),
            "'p2'|'Grace'|NULL".to_string()
        ]
    );

    // An email update is captured with the new column and syncs.
    d.exec("UPDATE person SET email = 'ada@example.com' WHERE id = 'p1'");
    let pending = pending_rows(&d);
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].0, "person");
    assert_eq!(pending[0].2, "UPDATE");
    let payload: Value = serde_json::from_str(pending[0].3.as_deref().unwrap()).unwrap();
    assert_eq!(payload["email"], "ada@example.com", "{payload}");
    sync_ok(&d);
    assert_eq!(d.pending(), 0);
    assert_eq!(
        server_person(&server, "id, name, email"),
        vec![
            vec![
                Value::from("p1"),
                Value::from("Ada"),
                Value::from("ada@example.com")
            ],
            vec![Value::from("p2"), Value::from("Grace"), Value::Null],
        ]
    );
    // Exactly one bundle row for p1's UPDATE: nothing else was re-captured.
    assert_eq!(bundle_row_count(&server, USER, "person", "p1", "UPDATE"), 1);
    let fresh = fresh_v2(&server, "addcol-fresh");
    assert_converged(&server, USER, &[&d, &fresh]);
}

#[test]
fn new_table_enabled_later_captures_existing_rows_once() {
    let mut server = TestServer::start_with(SERVER_V1, &[]);
    let (mut d, _) = Device::attached_with(&db_path("newtab-d"), &server, USER, &V1);
    d.exec("INSERT INTO person VALUES ('p1', 'Ada')");
    sync_ok(&d);
    migrate_server(&mut server);
    // The app's migration creates and fills the table before enabling it.
    d.exec(
        "ALTER TABLE person ADD COLUMN email TEXT;
         CREATE TABLE pet (id TEXT PRIMARY KEY NOT NULL,
             owner TEXT REFERENCES person(id) ON DELETE CASCADE);
         INSERT INTO pet VALUES ('k1', 'p1'), ('k2', 'p1'), ('k3', NULL);",
    );
    assert_eq!(d.pending(), 0);
    d.sql("SELECT oversqlite_enable_sync('pet')");
    d.sql("SELECT oversqlite_open()");
    d.schema = &V2;
    let pending = pending_rows(&d);
    let pets: Vec<_> = pending.iter().filter(|p| p.0 == "pet").collect();
    assert_eq!(pets.len(), 3, "{pending:?}");
    assert!(pets.iter().all(|p| p.2 == "INSERT"), "{pending:?}");
    assert_eq!(pending.len(), 3, "person rows re-captured: {pending:?}");
    // A second open captures nothing again.
    d.sql("SELECT oversqlite_open()");
    assert_eq!(d.pending(), 3, "{:?}", pending_rows(&d));

    sync_ok(&d);
    assert_eq!(d.pending(), 0);
    assert_eq!(
        server.rows("pet", USER, "id, owner"),
        vec![
            vec![Value::from("k1"), Value::from("p1")],
            vec![Value::from("k2"), Value::from("p1")],
            vec![Value::from("k3"), Value::Null],
        ]
    );
    for k in ["k1", "k2", "k3"] {
        assert_eq!(
            bundle_row_count(&server, USER, "pet", k, "INSERT"),
            1,
            "{k}"
        );
    }
    // Opening again after the push captures nothing either.
    d.sql("SELECT oversqlite_open()");
    assert_eq!(d.pending(), 0);
    let fresh = fresh_v2(&server, "newtab-fresh");
    assert_converged(&server, USER, &[&d, &fresh]);
}

/// Changes captured before the local migration (old triggers, payload without `email`),
/// then the migration, then a sync: against a server already at v2 (migrated while the
/// changes were pending). The pre-migration images are pushed as captured (no email):
/// the server's partial UPDATE keeps the email another device wrote, its INSERT gives
/// email its default.
#[test]
fn pending_changes_made_before_local_migration_push_after_it() {
    let mut server = TestServer::start_with(SERVER_V1, &[]);
    let (mut d, _) = Device::attached_with(&db_path("pend2-d"), &server, USER, &V1);
    d.exec("INSERT INTO person VALUES ('p1', 'Ada'), ('p2', 'Grace')");
    sync_ok(&d);
    migrate_server(&mut server);
    // Another, already migrated device writes p1's email.
    let other = fresh_v2(&server, "pend2-other");
    other.exec("UPDATE person SET email = 'ada@example.com' WHERE id = 'p1'");
    sync_ok(&other);
    // Pending before the migration: an insert, an update, a delete.
    d.exec(
        "INSERT INTO person VALUES ('p3', 'Linus');
         UPDATE person SET name = 'Ada L.' WHERE id = 'p1';
         DELETE FROM person WHERE id = 'p2';",
    );
    let captured = pending_rows(&d);
    assert_eq!(captured.len(), 3, "{captured:?}");
    migrate(&mut d);
    // The captured images are kept as they were (no email), nothing added.
    assert_eq!(pending_rows(&d), captured);
    // A row changed only before the migration gets an email after it, one changed after.
    d.exec("UPDATE person SET email = 'linus@example.com' WHERE id = 'p3'");
    let after = pending_rows(&d);
    assert_eq!(after.len(), 3, "{after:?}");
    let p3 = after.iter().find(|p| p.1.contains("p3")).unwrap();
    assert_eq!(p3.2, "INSERT");
    let p3_payload: Value = serde_json::from_str(p3.3.as_deref().unwrap()).unwrap();
    assert_eq!(p3_payload["email"], "linus@example.com", "{p3_payload}");
    let p1 = after.iter().find(|p| p.1.contains("p1")).unwrap();
    let p1_payload: Value = serde_json::from_str(p1.3.as_deref().unwrap()).unwrap();
    assert!(p1_payload.get("email").is_none(), "{p1_payload}");

    // p1's pending UPDATE conflicts with the other device's email: server_wins (the
    // default) keeps the server's row, email included.
    let r = sync_ok(&d);
    assert_eq!(r["complete"], true, "{r}");
    assert_eq!(d.pending(), 0);
    assert_eq!(
        server_person(&server, "id, name, email"),
        vec![
            vec![
                Value::from("p1"),
                Value::from("Ada"),
                Value::from("ada@example.com")
            ],
            vec![
                Value::from("p3"),
                Value::from("Linus"),
                Value::from("linus@example.com")
            ],
        ]
    );
    sync_ok(&other);
    let fresh = fresh_v2(&server, "pend2-fresh");
    assert_converged(&server, USER, &[&d, &other, &fresh]);
}

/// The same, against a server still at v1: pre-migration changes carry no `email`, but a
/// row changed after the migration does, so the push is refused as a whole until the
/// server migrates; then the same sync pushes everything.
#[test]
fn pending_changes_made_before_local_migration_push_after_server_migrates() {
    let mut server = TestServer::start_with(SERVER_V1, &[]);
    let (mut d, _) = Device::attached_with(&db_path("pend1-d"), &server, USER, &V1);
    d.exec("INSERT INTO person VALUES ('p1', 'Ada'), ('p2', 'Grace')");
    sync_ok(&d);
    d.exec(
        "INSERT INTO person VALUES ('p3', 'Linus');
         UPDATE person SET name = 'Ada L.' WHERE id = 'p1';",
    );
    add_email(&mut d);
    // Only pre-migration images pending (no email in them): a v1 server takes them.
    let r = sync_ok(&d);
    assert_eq!(d.pending(), 0, "{r}");
    assert_eq!(
        server_person(&server, "id, name"),
        vec![
            vec![Value::from("p1"), Value::from("Ada L.")],
            vec![Value::from("p2"), Value::from("Grace")],
            vec![Value::from("p3"), Value::from("Linus")],
        ]
    );
    // A change captured after the migration carries email: refused, stays pending.
    d.exec("UPDATE person SET name = 'Grace H.' WHERE id = 'p2'");
    let seq = checkpoint(&d);
    let err = d.try_sql("SELECT oversqlite_sync()").unwrap_err();
    assert!(err.contains("unknown column \"email\""), "{err}");
    assert!(err.contains("main.person"), "{err}");
    assert!(
        err.contains("the device's schema is newer than the server's"),
        "{err}"
    );
    assert!(err.contains("oversqlite-server migrate"), "{err}");
    assert_eq!(d.pending(), 1, "{:?}", pending_rows(&d));
    assert_eq!(checkpoint(&d), seq);
    migrate_server(&mut server);
    sync_ok(&d);
    assert_eq!(d.pending(), 0);
    assert_eq!(
        server_person(&server, "id, name, email"),
        vec![
            vec![Value::from("p1"), Value::from("Ada L."), Value::Null],
            vec![Value::from("p2"), Value::from("Grace H."), Value::Null],
            vec![Value::from("p3"), Value::from("Linus"), Value::Null],
        ]
    );
    let fresh = Device::attached_with(&db_path("pend1-fresh"), &server, USER, &V2).0;
    assert_converged(&server, USER, &[&d, &fresh]);
}

fn assert_refused_pull(err: &str) {
    assert!(err.contains(": schema_mismatch: "), "{err}");
    assert!(
        err.contains("payload for person has column(s) email that the local table person lacks"),
        "{err}"
    );
    assert!(err.contains("the server's schema is newer"), "{err}");
    assert!(err.contains("ALTER TABLE person ADD COLUMN"), "{err}");
    assert!(err.contains("SELECT oversqlite_open()"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
}

/// Server first: a v1 store restarted on the v2 config; D_new migrates after it, D_old
/// never (until the end).
#[test]
fn server_first_then_devices() {
    let mut server = TestServer::start_with(SERVER_V1, &[]);
    let (mut d_new, _) = Device::attached_with(&db_path("sf-new"), &server, USER, &V1);
    let (mut d_old, _) = Device::attached_with(&db_path("sf-old"), &server, USER, &V1);
    d_new.exec("INSERT INTO person VALUES ('p1', 'Ada'), ('p2', 'Grace')");
    sync_ok(&d_new);
    sync_ok(&d_old);
    assert_converged(&server, USER, &[&d_new, &d_old]);

    migrate_server(&mut server);
    assert_eq!(
        server_person(&server, "id, name, email"),
        vec![
            vec![Value::from("p1"), Value::from("Ada"), Value::Null],
            vec![Value::from("p2"), Value::from("Grace"), Value::Null],
        ]
    );
    // Nothing new on the server: the old device still syncs.
    sync_ok(&d_old);

    migrate(&mut d_new);
    assert_eq!(d_new.pending(), 0);
    d_new.exec(
        "UPDATE person SET email = 'ada@example.com' WHERE id = 'p1';
         INSERT INTO pet VALUES ('k1', 'p1');",
    );
    sync_ok(&d_new);
    assert_eq!(d_new.pending(), 0);

    // The old device: its pull of a row with email is refused, nothing applied.
    let seq = checkpoint(&d_old);
    let before = d_old.dump();
    let err = d_old.try_sql("SELECT oversqlite_sync()").unwrap_err();
    assert_refused_pull(&err);
    assert_eq!(checkpoint(&d_old), seq);
    assert_eq!(d_old.dump(), before);

    // Its edit of that row (name only, client_wins over the conflict) keeps the email.
    d_old.json("SELECT oversqlite_set_conflict_resolver('client_wins')");
    d_old.exec("UPDATE person SET name = 'Ada L.' WHERE id = 'p1'");
    // The push commits on the server (the UPDATE names only id and name, so the
    // server keeps the email), but replaying the committed after-image, which carries
    // email, is refused like a pull: the change stays in the outbox until D_old migrates.
    let err = d_old.try_sql("SELECT oversqlite_sync()").unwrap_err();
    assert_refused_pull(&err);
    assert_eq!(
        server_person(&server, "id, name, email"),
        vec![
            vec![
                Value::from("p1"),
                Value::from("Ada L."),
                Value::from("ada@example.com")
            ],
            vec![Value::from("p2"), Value::from("Grace"), Value::Null],
        ]
    );
    assert_eq!(
        pending_rows(&d_old),
        vec![(
            "person".to_string(),
            "{\"id\":\"p1\"}".to_string(),
            "UPDATE".to_string(),
            Some("{\"id\":\"p1\",\"name\":\"Ada L.\"}".to_string())
        )]
    );
    assert_eq!(checkpoint(&d_old), seq);

    // After the old device migrates, the same sync finishes: its committed bundle is
    // verified and replayed (email from the server), the pull applies D_new's bundle.
    migrate(&mut d_old);
    let r = sync_ok(&d_old);
    assert_eq!(r["push_outcome"], "committed", "{r}");
    assert_eq!(r["complete"], true, "{r}");
    assert_eq!(d_old.pending(), 0);
    sync_ok(&d_new);
    let fresh = fresh_v2(&server, "sf-fresh");
    assert_converged(&server, USER, &[&d_new, &d_old, &fresh]);
    assert_eq!(
        server_person(&server, "id, name, email"),
        vec![
            vec![
                Value::from("p1"),
                Value::from("Ada L."),
                Value::from("ada@example.com")
            ],
            vec![Value::from("p2"), Value::from("Grace"), Value::Null],
        ]
    );
    assert_eq!(
        server.rows("pet", USER, "id, owner"),
        vec![vec![Value::from("k1"), Value::from("p1")]]
    );
}

/// Devices first: a device migrated before the server pushes email to the v1 server,
/// which refuses naming the server as the side to migrate; after the server migrates the
/// same sync goes through. D_old never migrates until the end, as above.
#[test]
fn devices_first_then_server() {
    let mut server = TestServer::start_with(SERVER_V1, &[]);
    let (mut d_new, _) = Device::attached_with(&db_path("df-new"), &server, USER, &V1);
    let (mut d_old, _) = Device::attached_with(&db_path("df-old"), &server, USER, &V1);
    d_new.exec("INSERT INTO person VALUES ('p1', 'Ada'), ('p2', 'Grace')");
    sync_ok(&d_new);
    sync_ok(&d_old);

    migrate(&mut d_new);
    // Nothing pending: a migrated device still syncs with the old server.
    sync_ok(&d_new);
    // An old device's change reaches the migrated one (email NULL).
    d_old.exec("INSERT INTO person VALUES ('p3', 'Linus')");
    sync_ok(&d_old);
    sync_ok(&d_new);
    assert_eq!(
        person_rows(&d_new),
        vec![
            "'p1'|'Ada'|NULL".to_string(),
            "'p2'|'Grace'|NULL".to_string(),
            "'p3'|'Linus'|NULL".to_string(),
        ]
    );

    d_new.exec("UPDATE person SET email = 'ada@example.com' WHERE id = 'p1'");
    let seq = checkpoint(&d_new);
    let err = d_new.try_sql("SELECT oversqlite_sync()").unwrap_err();
    assert!(
        err.contains("payload for main.person contains unknown column \"email\""),
        "{err}"
    );
    assert!(
        err.contains("the device's schema is newer than the server's"),
        "{err}"
    );
    assert!(
        err.contains("add the column to the server's config"),
        "{err}"
    );
    assert_eq!(checkpoint(&d_new), seq);
    assert_eq!(d_new.pending(), 1, "{:?}", pending_rows(&d_new));
    assert_eq!(
        server_person(&server, "id, name"),
        vec![
            vec![Value::from("p1"), Value::from("Ada")],
            vec![Value::from("p2"), Value::from("Grace")],
            vec![Value::from("p3"), Value::from("Linus")],
        ]
    );

    migrate_server(&mut server);
    sync_ok(&d_new);
    assert_eq!(d_new.pending(), 0);
    assert_eq!(
        server_person(&server, "id, name, email"),
        vec![
            vec![
                Value::from("p1"),
                Value::from("Ada"),
                Value::from("ada@example.com")
            ],
            vec![Value::from("p2"), Value::from("Grace"), Value::Null],
            vec![Value::from("p3"), Value::from("Linus"), Value::Null],
        ]
    );

    // The never-migrated device is refused, then converges once migrated.
    let seq = checkpoint(&d_old);
    let before = d_old.dump();
    let err = d_old.try_sql("SELECT oversqlite_sync()").unwrap_err();
    assert_refused_pull(&err);
    assert_eq!(checkpoint(&d_old), seq);
    assert_eq!(d_old.dump(), before);
    migrate(&mut d_old);
    sync_ok(&d_old);
    let fresh = fresh_v2(&server, "df-fresh");
    assert_converged(&server, USER, &[&d_new, &d_old, &fresh]);
}

/// A change captured before the local migration, kept by `client_wins` over another
/// device's email: the kept change does not erase the email it never saw. The kept
/// image names no `email`, so the server's value fills it (ops/conflict_apply.rs).
#[test]
fn client_wins_over_a_pre_migration_change_keeps_the_new_column() {
    let mut server = TestServer::start_with(SERVER_V1, &[]);
    let (mut d, _) = Device::attached_with(&db_path("cw-d"), &server, USER, &V1);
    d.exec("INSERT INTO person VALUES ('p1', 'Ada')");
    sync_ok(&d);
    migrate_server(&mut server);
    let other = fresh_v2(&server, "cw-other");
    other.exec("UPDATE person SET email = 'ada@example.com' WHERE id = 'p1'");
    sync_ok(&other);
    d.exec("UPDATE person SET name = 'Ada L.' WHERE id = 'p1'");
    add_email(&mut d);
    d.json("SELECT oversqlite_set_conflict_resolver('client_wins')");
    sync_ok(&d);
    assert_eq!(
        server_person(&server, "id, name, email"),
        vec![vec![
            Value::from("p1"),
            Value::from("Ada L."),
            Value::from("ada@example.com")
        ]]
    );
    sync_ok(&other);
    assert_converged(&server, USER, &[&d, &other]);
}

/// A device that added the column but not the new table pulls a bundle with a `pet` row:
/// refused, naming the table and the local migration, with nothing applied and the
/// checkpoint where it was; after the migration the same sync applies it.
#[test]
fn a_remote_table_the_device_lacks_is_refused_naming_the_table() {
    let mut server = TestServer::start_with(SERVER_V1, &[]);
    migrate_server(&mut server);
    let writer = fresh_v2(&server, "rt-writer");
    let (mut d, _) = Device::attached_with(&db_path("rt-d"), &server, USER, &V1);
    add_email(&mut d);
    writer.exec(
        "INSERT INTO person VALUES ('p1', 'Ada', NULL); INSERT INTO pet VALUES ('k1', 'p1');",
    );
    sync_ok(&writer);

    let seq = checkpoint(&d);
    let before = d.dump();
    let err = d.try_sql("SELECT oversqlite_sync()").unwrap_err();
    assert!(err.starts_with("oversqlite_sync: schema_mismatch: the server sent rows of table \"pet\", which this database does not sync (its synced tables: person)"), "{err}");
    assert!(err.contains("the server's schema is newer"), "{err}");
    assert!(
        err.contains("SELECT oversqlite_enable_sync('pet')"),
        "{err}"
    );
    assert!(err.contains("SELECT oversqlite_open()"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
    assert_eq!(checkpoint(&d), seq);
    assert_eq!(d.dump(), before);
    migrate_pet(&mut d);
    sync_ok(&d);
    assert_converged(&server, USER, &[&writer, &d]);
}

/// The new table only (the column is already there).
fn migrate_pet(d: &mut Device) {
    d.exec(
        "CREATE TABLE pet (id TEXT PRIMARY KEY NOT NULL,
             owner TEXT REFERENCES person(id) ON DELETE CASCADE);",
    );
    d.sql("SELECT oversqlite_enable_sync('pet')");
    d.sql("SELECT oversqlite_open()");
    d.schema = &V2;
}

const SERVER_RANK: &str = r#"
app_name = "oversqlite-e2e-schema-change"
schema_version = 2

[[tables]]
schema = "main"
table = "person"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text" },
  { name = "rank", type = "integer", nullable = false, default = 0 },
]
"#;

const V_RANK: Schema = Schema {
    ddl: "CREATE TABLE IF NOT EXISTS person (id TEXT PRIMARY KEY NOT NULL, name TEXT, rank INTEGER NOT NULL DEFAULT 0);",
    tables: &[(
        "person",
        &[Col::Plain("id"), Col::Plain("name"), Col::Plain("rank")],
    )],
};

/// Devices first with a NOT NULL column (SQLite requires it to have a default): rows
/// from the server, which lacks the column, keep syncing — a new row takes the local
/// default, an existing row keeps its value — and once the server has the column, the
/// device's own value goes up. The bundles committed before the server's migration
/// never carry the column, so a device migrated later (or never pulling them before)
/// depends on this too: refusing such rows would leave it stuck for good.
#[test]
fn a_not_null_column_added_on_the_device_first_keeps_syncing() {
    let mut server = TestServer::start_with(SERVER_V1, &[]);
    let (mut d_new, _) = Device::attached_with(&db_path("nn-new"), &server, USER, &V1);
    let (d_old, _) = Device::attached_with(&db_path("nn-old"), &server, USER, &V1);
    d_old.exec("INSERT INTO person VALUES ('p1', 'Ada')");
    sync_ok(&d_old);
    sync_ok(&d_new);
    d_new.exec("ALTER TABLE person ADD COLUMN rank INTEGER NOT NULL DEFAULT 0;");
    d_new.sql("SELECT oversqlite_open()");
    d_new.schema = &V_RANK;
    // Rows without the column: the existing one keeps its value, a new one takes the
    // default (NOT NULL holds).
    d_old.exec(
        "UPDATE person SET name = 'Ada L.' WHERE id = 'p1';
         INSERT INTO person VALUES ('p2', 'Grace');",
    );
    sync_ok(&d_old);
    sync_ok(&d_new);
    assert_eq!(
        person_rows(&d_new),
        vec!["'p1'|'Ada L.'|0".to_string(), "'p2'|'Grace'|0".to_string()]
    );

    std::fs::write(server.config_path(), SERVER_RANK).unwrap();
    server.restart();
    d_new.exec("UPDATE person SET rank = 3 WHERE id = 'p2'");
    sync_ok(&d_new);
    assert_eq!(
        server.rows("person", USER, "id, name, rank"),
        vec![
            vec![Value::from("p1"), Value::from("Ada L."), Value::from(0)],
            vec![Value::from("p2"), Value::from("Grace"), Value::from(3)],
        ]
    );
    // A device created on the new schema hydrates the server's rows.
    let (fresh, _) = Device::attached_with(&db_path("nn-fresh"), &server, USER, &V_RANK);
    assert_eq!(
        person_rows(&fresh),
        vec!["'p1'|'Ada L.'|0".to_string(), "'p2'|'Grace'|3".to_string()]
    );
}

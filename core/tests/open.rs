//! `open` on bundled SQLite: idempotence, FK ordering, state helpers, transactions.
mod common;

use oversqlite_core::model::ColumnKind;
use oversqlite_core::store::{BindingState, OperationKind, OutboxState};
use oversqlite_core::validate::{order_by_dependencies, validate_tables, TableRegistration};
use oversqlite_core::{config, keys, open, pending, state, table_info, tx, ErrorCode, KeyKind};
use rusqlite::types::Value;

fn dump(conn: &rusqlite::Connection) -> Vec<String> {
    let mut out = Vec::new();
    for table in oversqlite_core::ddl::RUNTIME_TABLES {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get::<_, Value>(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap();
        for row in rows {
            out.push(format!("{table}: {}", row.unwrap()));
        }
    }
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    for row in stmt
        .query_map([], |r| {
            Ok(format!(
                "{:?}",
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?
                )
            ))
        })
        .unwrap()
    {
        out.push(row.unwrap());
    }
    out
}

fn users_posts() -> rusqlite::Connection {
    let conn = common::memory();
    conn.execute_batch(
        "CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
         CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL, user_id TEXT REFERENCES users(id), title TEXT);
         INSERT INTO users VALUES ('u1', 'Ada');",
    )
    .unwrap();
    config::init(&conn, "https://sync.test", "main").unwrap();
    config::enable_sync(&conn, "posts", &[]).unwrap();
    config::enable_sync(&conn, "users", &[]).unwrap();
    conn
}

#[test]
fn open_is_idempotent() {
    let conn = users_posts();
    let (cfg, first) = open::open(&conn).unwrap();
    assert!(first.first_open);
    assert_eq!(first.captured_rows, 1);
    assert_eq!(first.triggers_written, 12);
    assert_eq!(
        cfg.tables
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["users", "posts"]
    );
    let before = dump(&conn);
    for _ in 0..3 {
        let (_, again) = open::open(&conn).unwrap();
        assert!(!again.first_open);
        assert_eq!(again.triggers_written, 0);
        assert_eq!(again.source_id, first.source_id);
        assert_eq!(dump(&conn), before);
    }
}

#[test]
fn fk_order_is_parents_first_and_cycles_follow_config_order() {
    let conn = common::memory();
    conn.execute_batch(
        "CREATE TABLE a (id TEXT PRIMARY KEY, b_id TEXT REFERENCES b(id));
         CREATE TABLE b (id TEXT PRIMARY KEY, a_id TEXT REFERENCES a(id));
         CREATE TABLE c (id TEXT PRIMARY KEY, parent TEXT REFERENCES c(id), a_id TEXT REFERENCES a);
         CREATE TABLE d (id TEXT PRIMARY KEY);",
    )
    .unwrap();
    let regs = ["c", "b", "a", "d"].map(|t| TableRegistration::new(t, "id"));
    let tables = validate_tables(&conn, "main", &regs).unwrap();
    // Kahn's algorithm (§4 step 8): only d ever becomes ready; a/b form a cycle and c hangs
    // off it, so all three are appended in configuration order (c, b, a).
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["d", "c", "b", "a"]);
    let chain = ["c", "b", "a"].map(|t| TableRegistration::new(t, "id"));
    conn.execute_batch("DROP TABLE c; DROP TABLE b; DROP TABLE a;
        CREATE TABLE a (id TEXT PRIMARY KEY); CREATE TABLE b (id TEXT PRIMARY KEY, a_id TEXT REFERENCES a(id));
        CREATE TABLE c (id TEXT PRIMARY KEY, parent TEXT REFERENCES c(id), a_id TEXT REFERENCES a);").unwrap();
    let tables = validate_tables(&conn, "main", &chain).unwrap();
    // Without a cycle parents come first; ties keep configuration order (c before b);
    // the self-reference of c is ignored; the implicit FK target resolves to a's key.
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "c", "b"]);
    let c = tables.iter().find(|t| t.name == "c").unwrap();
    assert!(c
        .foreign_keys
        .iter()
        .any(|f| f.parent_table == "a" && f.parent_column == "id"));
    assert_eq!(order_by_dependencies(vec![]).len(), 0);
}

#[test]
fn column_kinds_follow_declared_types() {
    assert_eq!(table_info::classify("BLOB", false), ColumnKind::Blob);
    assert_eq!(table_info::classify("blob", true), ColumnKind::UuidBlob);
    assert_eq!(
        table_info::classify("DOUBLE PRECISION", false),
        ColumnKind::Real
    );
    assert_eq!(table_info::classify("FLOAT", false), ColumnKind::Real);
    assert_eq!(table_info::classify("BIGINT", false), ColumnKind::Integer);
    assert_eq!(table_info::classify("", false), ColumnKind::Text);
    assert_eq!(table_info::classify("VARCHAR(20)", false), ColumnKind::Text);
    let conn = common::memory();
    conn.execute_batch(
        "CREATE TABLE files (id BLOB PRIMARY KEY, data BLOB, size INTEGER, score REAL);
         CREATE TABLE reviews (id TEXT PRIMARY KEY, file_id BLOB REFERENCES files(id));",
    )
    .unwrap();
    let tables = validate_tables(
        &conn,
        "main",
        &[
            TableRegistration::new("files", "id"),
            TableRegistration::new("reviews", "id"),
        ],
    )
    .unwrap();
    let kinds: Vec<ColumnKind> = tables[0].columns.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ColumnKind::UuidBlob,
            ColumnKind::Blob,
            ColumnKind::Integer,
            ColumnKind::Real
        ]
    );
    assert_eq!(tables[0].key_kind, KeyKind::UuidBlob);
    assert_eq!(
        tables[1].column("FILE_ID").unwrap().kind,
        ColumnKind::UuidBlob
    );
}

#[test]
fn key_json_matches_trigger_output() {
    let conn = common::memory();
    conn.execute_batch("CREATE TABLE files (id BLOB PRIMARY KEY NOT NULL, name TEXT); CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL);").unwrap();
    config::init(&conn, "http://localhost:8080", "main").unwrap();
    config::enable_sync(&conn, "files", &[]).unwrap();
    config::enable_sync(&conn, "notes", &[]).unwrap();
    let (cfg, _) = open::open(&conn).unwrap();
    let blob = vec![0xab_u8; 16];
    conn.execute("INSERT INTO files VALUES (?1, 'x')", [&blob])
        .unwrap();
    conn.execute("INSERT INTO notes VALUES ('a<b>&\"/\u{2028}')", [])
        .unwrap();
    let stored: Vec<String> = conn
        .prepare("SELECT key_json FROM _sync_dirty_rows ORDER BY dirty_ordinal")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let files = cfg.table("files").unwrap();
    let notes = cfg.table("notes").unwrap();
    assert_eq!(
        keys::key_json(&conn, files, &Value::Blob(blob)).unwrap(),
        stored[0]
    );
    assert_eq!(
        keys::key_json(&conn, notes, &Value::Text("a<b>&\"/\u{2028}".into())).unwrap(),
        stored[1]
    );
    assert_eq!(
        keys::key_json_from_local_text(&conn, files, &"ab".repeat(16)).unwrap(),
        stored[0]
    );
    assert_eq!(
        keys::key_json(&conn, files, &Value::Blob(vec![1, 2]))
            .unwrap_err()
            .code,
        ErrorCode::InvalidArgument
    );
}

#[test]
fn state_helpers_round_trip() {
    let conn = users_posts();
    let (_, report) = open::open(&conn).unwrap();
    tx::write_tx(&conn, |c| {
        let mut a = state::read_attachment(c)?;
        a.binding_state = BindingState::Attached;
        a.attached_user_id = "user-1".into();
        a.last_bundle_seq_seen = 3;
        state::write_attachment(c, &a)?;
        let mut o = state::OperationState::none();
        o.kind = OperationKind::SourceRecovery;
        o.reason = "history_pruned".into();
        state::write_operation(c, &o)?;
        let mut b = state::OutboxBundle::none();
        b.state = OutboxState::Prepared;
        b.source_bundle_id = 1;
        state::write_outbox_bundle(c, &b)?;
        let mut s = state::read_source(c, &report.source_id)?.unwrap();
        s.next_source_bundle_id = 2;
        state::write_source(c, &s)?;
        state::set_apply_mode(c, true)?;
        Ok(())
    })
    .unwrap();
    assert!(state::apply_mode(&conn).unwrap());
    assert_eq!(
        state::read_outbox_bundle(&conn).unwrap().state,
        OutboxState::Prepared
    );
    assert_eq!(
        state::read_source(&conn, &report.source_id)
            .unwrap()
            .unwrap()
            .next_source_bundle_id,
        2
    );
    let info = state::source_info(&conn).unwrap();
    assert!(info.rebuild_required && info.source_recovery_required);
    assert_eq!(
        info.source_recovery_reason.as_deref(),
        Some("history_pruned")
    );
    assert_eq!(info.attached_user_id, "user-1");
    assert_eq!(pending::pending_count(&conn).unwrap(), 1);
    open::open(&conn).unwrap();
    assert!(!state::apply_mode(&conn).unwrap(), "open resets apply_mode");
}

#[test]
fn write_tx_rolls_back_on_error_and_nests_as_savepoint() {
    let conn = common::memory();
    conn.execute_batch("CREATE TABLE t (x)").unwrap();
    let err = tx::write_tx(&conn, |c| {
        c.execute("INSERT INTO t VALUES (1)", [])?;
        Err::<(), _>(oversqlite_core::Error::argument("boom"))
    })
    .unwrap_err();
    assert_eq!(err.message, "boom");
    conn.execute_batch("BEGIN; INSERT INTO t VALUES (2);")
        .unwrap();
    let _ = tx::write_tx(&conn, |c| {
        c.execute("INSERT INTO t VALUES (3)", [])?;
        Err::<(), _>(oversqlite_core::Error::argument("inner"))
    });
    tx::write_tx(&conn, |c| Ok(c.execute("INSERT INTO t VALUES (4)", [])?)).unwrap();
    assert!(!conn.is_autocommit(), "caller's transaction still open");
    conn.execute_batch("COMMIT").unwrap();
    let xs: Vec<i64> = conn
        .prepare("SELECT x FROM t ORDER BY x")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(xs, [2, 4]);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = tx::write_tx(&conn, |c| -> oversqlite_core::Result<()> {
            c.execute("INSERT INTO t VALUES (5)", [])?;
            panic!("mid-transaction");
        });
    }));
    assert!(panicked.is_err());
    assert!(conn.is_autocommit(), "panic rolled back");
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM t WHERE x = 5", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn rejected_enable_writes_nothing() {
    let conn = common::memory();
    conn.execute_batch("CREATE TABLE counters (id INTEGER PRIMARY KEY)")
        .unwrap();
    let err = config::enable_sync(&conn, "counters", &[]).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidConfig);
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '\\_oversqlite%' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        config::load(&conn).unwrap_err().code,
        ErrorCode::NotConfigured
    );
}

#[test]
fn enabling_a_table_later_captures_its_existing_rows() {
    let conn = users_posts();
    let (_, first) = open::open(&conn).unwrap();
    assert_eq!(first.captured_rows, 1);
    conn.execute_batch(
        "CREATE TABLE tags (id TEXT PRIMARY KEY NOT NULL, label TEXT);
         INSERT INTO tags VALUES ('t2', 'two'), ('t1', 'one');
         INSERT INTO _sync_row_state(schema_name, table_name, key_json, row_version, deleted) VALUES ('main', 'tags', '{\"id\":\"t2\"}', 5, 0);",
    )
    .unwrap();
    config::enable_sync(&conn, "tags", &[]).unwrap();
    let (_, report) = open::open(&conn).unwrap();
    assert!(!report.first_open);
    assert_eq!(report.captured_rows, 2);
    let rows: Vec<(String, String, i64, i64)> = conn
        .prepare("SELECT key_json, op, base_row_version, dirty_ordinal FROM _sync_dirty_rows WHERE table_name = 'tags' ORDER BY dirty_ordinal")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            ("{\"id\":\"t1\"}".into(), "INSERT".into(), 0, 2),
            ("{\"id\":\"t2\"}".into(), "UPDATE".into(), 5, 3)
        ]
    );
    // Already-managed tables are not captured again.
    let (_, again) = open::open(&conn).unwrap();
    assert_eq!(again.captured_rows, 0);
}

#[test]
fn changing_the_remote_schema_moves_tables_once_nothing_is_pending() {
    let conn = users_posts();
    open::open(&conn).unwrap();
    config::init(&conn, "https://sync.test", "business").unwrap();
    let err = open::open(&conn).unwrap_err();
    assert_eq!(err.code, ErrorCode::StateConflict, "{err}");
    assert!(err.message.contains("waiting for upload"), "{err}");
    // Once the pending row is gone (uploaded), the tables move to the new schema and their
    // rows are queued again under it.
    conn.execute_batch("DELETE FROM _sync_dirty_rows").unwrap();
    let (_, report) = open::open(&conn).unwrap();
    assert_eq!(report.schema, "business");
    assert_eq!(report.captured_rows, 1);
    let managed: Vec<(String, String)> = conn
        .prepare("SELECT schema_name, table_name FROM _sync_managed_tables ORDER BY 1, 2")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        managed,
        vec![
            ("business".into(), "posts".into()),
            ("business".into(), "users".into())
        ]
    );
    conn.execute_batch("INSERT INTO users VALUES ('u2', 'Bob')")
        .unwrap();
    let schemas: Vec<String> = conn
        .prepare("SELECT DISTINCT schema_name FROM _sync_dirty_rows")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(schemas, vec!["business".to_string()]);
}

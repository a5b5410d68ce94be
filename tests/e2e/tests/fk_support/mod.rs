//! Shared by the foreign-key race suites (`fk_races`, `fk_random`, issue #15): the
//! users/posts and teams/team_members schema, servers in both foreign-key error modes,
//! sync reports' `foreign_key_resolutions`, and the final check every race ends with
//! (devices quiet, equal to the server and to a freshly hydrated device, nothing pending,
//! no change committed twice).
#![allow(dead_code)]

use oversqlite_tests::server::TestServer;
use serde_json::Value;

use crate::e2e_support::*;

/// posts.author_id → users is NO ACTION on the server (as in server/config/business.toml and
/// the reference example):
/// deleting a referenced user fails the commit. team_members.team_id → teams cascades.
pub const FK_CONFIG: &str = r#"
app_name = "oversqlite-fk-races"
schema_version = 1

[[tables]]
schema = "main"
table = "users"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text", nullable = false },
]

[[tables]]
schema = "main"
table = "posts"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "author_id", type = "text", nullable = false },
  { name = "title", type = "text", nullable = false },
]
foreign_keys = [{ column = "author_id", references = "users" }]

[[tables]]
schema = "main"
table = "teams"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "name", type = "text", nullable = false },
]

[[tables]]
schema = "main"
table = "team_members"
key = "id"
columns = [
  { name = "id", type = "text", nullable = false },
  { name = "team_id", type = "text", nullable = false },
  { name = "name", type = "text", nullable = false },
]
foreign_keys = [{ column = "team_id", references = "teams", on_delete = "cascade" }]
"#;

const FK_TABLES: &[Table] = &[
    ("users", &[Col::Plain("id"), Col::Plain("name")]),
    (
        "posts",
        &[
            Col::Plain("id"),
            Col::Plain("author_id"),
            Col::Plain("title"),
        ],
    ),
    ("teams", &[Col::Plain("id"), Col::Plain("name")]),
    (
        "team_members",
        &[Col::Plain("id"), Col::Plain("team_id"), Col::Plain("name")],
    ),
];

/// Devices whose posts cascade locally when their author is deleted (what an app declares
/// to delete a user with their posts in one statement). Both schemas run in WAL with
/// `synchronous = NORMAL`, as mobile apps usually do: a commit then needs no fsync, which
/// makes these suites about 5x faster than the rollback journal's fsyncs per transaction.
pub const LOCAL_CASCADE: Schema = Schema {
    ddl: "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL,
    author_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE, title TEXT NOT NULL);
CREATE TABLE teams (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE team_members (id TEXT PRIMARY KEY NOT NULL,
    team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE, name TEXT NOT NULL);
",
    tables: FK_TABLES,
};

/// Devices with a plain reference from posts to users, as on the server: the app deletes
/// a user's posts itself before the user.
pub const LOCAL_PLAIN: Schema = Schema {
    ddl: "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE posts (id TEXT PRIMARY KEY NOT NULL,
    author_id TEXT NOT NULL REFERENCES users(id), title TEXT NOT NULL);
CREATE TABLE teams (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
CREATE TABLE team_members (id TEXT PRIMARY KEY NOT NULL,
    team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE, name TEXT NOT NULL);
",
    tables: FK_TABLES,
};

/// How the server answers a commit that violates a foreign key (`--foreign-key-errors`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// `400 push_commit_invalid`.
    Ours,
    /// `500 push_session_commit_failed`, as go-oversync: the client cannot tell it from a
    /// transient fault, so it must not rely on the 400.
    Reference,
}

pub const MODES: [Mode; 2] = [Mode::Ours, Mode::Reference];

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Ours => "ours",
            Mode::Reference => "reference",
        }
    }

    pub fn start_server(self) -> TestServer {
        TestServer::start_with(FK_CONFIG, &["--foreign-key-errors", self.name()])
    }
}

/// One `foreign_key_resolutions` entry: `(table, key id, action, parent_table, parent key
/// id, policy)`, `table`/`key` naming the child row of the incident and `parent_*` the row
/// it references.
pub type Resolution = (String, String, String, String, String, String);

pub fn res(
    table: &str,
    key: &str,
    action: &str,
    parent_table: &str,
    parent_key: &str,
    policy: &str,
) -> Resolution {
    let s = |v: &str| v.to_string();
    (
        s(table),
        s(key),
        s(action),
        s(parent_table),
        s(parent_key),
        s(policy),
    )
}

/// A key as reported: an object `{"id": ...}`, its JSON text, or the bare id (the
/// contract names the field, not its form); the id text, or the value as JSON.
fn key_id(key: &Value) -> String {
    let parsed = match key {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| key.clone()),
        other => other.clone(),
    };
    match &parsed["id"] {
        Value::String(id) => id.clone(),
        _ => match parsed {
            Value::String(id) => id,
            other => other.to_string(),
        },
    }
}

/// The report's `foreign_key_resolutions`, sorted; panics when the field is missing.
pub fn resolutions(report: &Value) -> Vec<Resolution> {
    let entries = report["foreign_key_resolutions"]
        .as_array()
        .unwrap_or_else(|| panic!("no foreign_key_resolutions array in the sync report {report}"));
    let text = |e: &Value, f: &str| {
        e[f].as_str()
            .unwrap_or_else(|| panic!("{f} in {e}"))
            .to_string()
    };
    let mut out: Vec<Resolution> = entries
        .iter()
        .map(|e| {
            (
                text(e, "table"),
                key_id(&e["key"]),
                text(e, "action"),
                text(e, "parent_table"),
                key_id(&e["parent_key"]),
                text(e, "policy"),
            )
        })
        .collect();
    out.sort();
    out
}

/// A sync that returned normally with nothing left pending, as the report says.
#[track_caller]
pub fn assert_complete(report: &Value) {
    assert_eq!(report["complete"], true, "complete: {report}");
    assert_eq!(
        report["pending_row_count"], 0,
        "pending_row_count: {report}"
    );
}

/// `oversqlite_sync()` on `d`, or its error text.
pub fn try_sync(d: &Device) -> Result<Value, String> {
    let text = d.try_sql("SELECT oversqlite_sync()")?;
    let text = text.ok_or("oversqlite_sync() returned NULL")?;
    serde_json::from_str(&text).map_err(|e| format!("report is not JSON ({e}): {text}"))
}

/// Whether a sync report changed anything (pushed, pulled or touched an app table).
pub fn changed(report: &Value) -> bool {
    report["push_outcome"] != "no_change"
        || report["remote_outcome"] != "already_at_target"
        || report["changed_tables"]
            .as_array()
            .is_none_or(|t| !t.is_empty())
}

/// One line for a step log: outcomes, changed tables and FK resolutions of a report.
pub fn summary(report: &Value) -> String {
    format!(
        "push={} remote={} changed={} fk={}",
        report["push_outcome"],
        report["remote_outcome"],
        report["changed_tables"],
        report["foreign_key_resolutions"]
    )
}

/// Every device syncs in turn until a whole round changes nothing (at most `rounds`
/// rounds); each sync is passed to `log`. Errors name the device (its position in
/// `devices`) and the round.
pub fn settle(
    devices: &[&Device],
    rounds: usize,
    log: &mut dyn FnMut(String),
) -> Result<(), String> {
    for round in 0..rounds {
        let mut any = false;
        for (i, d) in devices.iter().enumerate() {
            let report = try_sync(d).map_err(|e| {
                log(format!("quiet {round} d{i} sync FAILED: {e}"));
                format!("quiet round {round}: device {i} sync failed: {e}")
            })?;
            log(format!("quiet {round} d{i} sync: {}", summary(&report)));
            let pending = d.pending();
            if pending != 0 {
                return Err(format!(
                    "quiet round {round}: device {i} sync left {pending} rows pending: {report}"
                ));
            }
            any |= changed(&report);
        }
        if !any {
            return Ok(());
        }
    }
    Err(format!(
        "devices still changing after {rounds} quiet rounds"
    ))
}

/// The end state every race must reach: every device equal to the server (and so to each
/// other), a freshly attached device hydrating the same rows, nothing pending, and no
/// change committed twice. `fresh` names the hydrated device's database file.
pub fn check_final_state(
    server: &TestServer,
    user: &str,
    devices: &[&Device],
    fresh: &str,
) -> Result<(), String> {
    let tables = devices[0].schema.tables;
    let expected = dump_server_tables(server, user, tables);
    for (i, d) in devices.iter().enumerate() {
        let pending = d.pending();
        if pending != 0 {
            return Err(format!("device {i}: {pending} rows pending"));
        }
        let dump = d.dump();
        if dump != expected {
            return Err(format!(
                "device {i} differs from the server\n device: {dump:?}\n server: {expected:?}"
            ));
        }
    }
    let path = db_path(fresh);
    let (hydrated, _) = Device::attached_with(&path, server, user, devices[0].schema);
    let dump = hydrated.dump();
    hydrated.close();
    remove_db(&path);
    if dump != expected {
        return Err(format!(
            "a freshly hydrated device differs from the server\n hydrated: {dump:?}\n server: {expected:?}"
        ));
    }
    let repeated = repeated_bundle_rows(server, user);
    if !repeated.is_empty() {
        return Err(format!("changes committed twice: {repeated:?}"));
    }
    Ok(())
}

//! A host SQLite connection with the built extension loaded, as an application would do.
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

/// `$OVERSQLITE_EXTENSION`, else `target/debug/liboversqlite.so` of this workspace.
/// Panics with the build command when it is missing.
pub fn extension_path() -> PathBuf {
    let path = match std::env::var("OVERSQLITE_EXTENSION") {
        Ok(p) => PathBuf::from(p),
        Err(_) => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/liboversqlite.so")
        }
    };
    assert!(
        path.is_file(),
        "extension not found at {}: build it first with `cargo build -p oversqlite --features test-faults` (or set OVERSQLITE_EXTENSION)",
        path.display()
    );
    path
}

/// Loads the extension into `conn` through its default entry point (no name given).
pub fn load_extension(conn: &Connection) {
    let path = extension_path();
    // SAFETY: loading our own extension build; loading is disabled again right after.
    unsafe {
        conn.load_extension_enable().unwrap();
        conn.load_extension(path.with_extension(""), None::<&str>)
            .unwrap_or_else(|e| panic!("load {}: {e}", path.display()));
    }
    conn.load_extension_disable().unwrap();
}

pub fn memory() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    load_extension(&conn);
    conn
}

pub fn file(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    load_extension(&conn);
    conn
}

/// `SELECT <expr>` returning TEXT (or NULL), as an error string on failure.
pub fn call(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Option<String>, String> {
    conn.query_row(sql, params, |r| r.get::<_, Option<String>>(0))
        .optional()
        .map(|o| o.flatten())
        .map_err(|e| e.to_string())
}

/// Applies a fixture-style config (`{"schema", "syncTables":[{"tableName","syncKeyColumnName"}]}`)
/// through the SQL API, without opening.
pub fn configure(conn: &Connection, config: &Value) -> Result<(), String> {
    let schema = config["schema"].as_str().unwrap();
    call(
        conn,
        "SELECT oversqlite_init('https://sync.test', ?1)",
        &[&schema],
    )?;
    for t in config["syncTables"].as_array().unwrap() {
        let table = t["tableName"].as_str().unwrap();
        let mut keys: Vec<String> = Vec::new();
        if let Some(k) = t["syncKeyColumnName"].as_str() {
            keys.push(k.to_string());
        }
        for k in t["syncKeyColumns"].as_array().into_iter().flatten() {
            keys.push(k.as_str().unwrap().to_string());
        }
        let placeholders: String = (0..keys.len()).map(|i| format!(", ?{}", i + 2)).collect();
        let sql = format!("SELECT oversqlite_enable_sync(?1{placeholders})");
        let mut params: Vec<&dyn rusqlite::ToSql> = vec![&table];
        for k in &keys {
            params.push(k);
        }
        call(conn, &sql, &params)?;
    }
    Ok(())
}

/// `SELECT oversqlite_open()` parsed as JSON.
pub fn open(conn: &Connection) -> Result<Value, String> {
    let text =
        call(conn, "SELECT oversqlite_open()", &[])?.ok_or("oversqlite_open returned NULL")?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// A fresh temporary database file path (removed first if left over).
pub fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oversqlite-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.db"));
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

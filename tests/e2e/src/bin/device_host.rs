//! A device process for the crash-safety suites: opens one database file with the built
//! extension loaded, runs the SQL statements given as arguments in order, and prints one
//! JSON line per statement (`{"i":N,"rows":[[...]]}` or `{"i":N,"error":"..."}`; the
//! statement text is never echoed because it may carry a token). Exits 1 at the first
//! failing statement. With `OVERSQLITE_TEST_FAULT=abort:<point>` the extension ends this
//! process at that point, like `kill -9`.
//!
//! Usage: `device_host DB_PATH SQL...`
use std::io::Write;

use rusqlite::types::ValueRef;
use serde_json::{json, Value};

fn cell(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => {
            json!({ "blob": b.iter().map(|x| format!("{x:02x}")).collect::<String>() })
        }
    }
}

fn run(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare(sql)?;
    let n = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(
            (0..n)
                .map(|i| row.get_ref(i).map(cell))
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    Ok(out)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let db = args.next().expect("usage: device_host DB_PATH SQL...");
    let conn = oversqlite_tests::host::file(std::path::Path::new(&db));
    // Another device process may hold the write lock for a moment.
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let stdout = std::io::stdout();
    for (i, sql) in args.enumerate() {
        let line = match run(&conn, &sql) {
            Ok(rows) => json!({ "i": i, "rows": rows }),
            Err(e) => json!({ "i": i, "error": e.to_string() }),
        };
        let failed = line.get("error").is_some();
        let mut out = stdout.lock();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
        if failed {
            std::process::exit(1);
        }
    }
}

//! Opening the database file: it must exist (a typo must not create an empty file),
//! with a busy timeout so a write by the app waits instead of failing at once. Nothing
//! here holds a transaction: the engine opens its own short ones between requests.
use std::path::Path;
use std::time::Duration;

use oversqlite_engine::SyncClient;
use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use crate::exit::Exit;
use crate::failure::Failure;

pub fn open_file(path: &Path, busy_timeout: Duration) -> Result<Connection, Failure> {
    if !path.is_file() {
        return Err(Failure::new(
            "database_not_found",
            Exit::NoInput,
            format!(
                "{} does not exist; pass the database configured with oversqlite_init and oversqlite_enable_sync",
                path.display()
            ),
        ));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    Ok(conn)
}

/// What `oversqlite_open()` does at every launch of an app: install or update the runtime
/// tables and capture triggers for the configured tables (local, one short transaction).
pub fn start_runtime(conn: &Connection) -> Result<(), Failure> {
    oversqlite_core::open::open(conn)?;
    Ok(())
}

/// Connects `client` to the user the database is attached to (the engine's attach
/// resumes a persisted binding without any request, or finishes an interrupted
/// hydrate). Returns that user.
pub fn resume(client: &mut SyncClient, conn: &Connection) -> Result<String, Failure> {
    let info = client.source_info(conn)?;
    if info.binding_state != "attached" || info.attached_user_id.is_empty() {
        return Err(Failure::new(
            "attach_required",
            Exit::Config,
            "this database is not attached to a user; run `oversqlite attach --user USER` first",
        ));
    }
    let report = client.attach(conn, &info.attached_user_id)?;
    if let Some(secs) = report.retry_after_seconds {
        return Err(retry_later(secs));
    }
    Ok(info.attached_user_id)
}

/// The server's initialisation lease is held by another device.
pub fn retry_later(secs: i64) -> Failure {
    Failure::new(
        "retry_later",
        Exit::TempFail,
        format!("another device is initialising this user's data; retry after {secs} s"),
    )
    .with("retry_after_seconds", json!(secs))
}

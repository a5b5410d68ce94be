//! `_sync_apply_state`: capture suppression while the runtime writes application rows.

use rusqlite::Connection;

use crate::error::Result;

pub fn apply_mode(conn: &Connection) -> Result<bool> {
    let v: i64 = conn.query_row(
        "SELECT apply_mode FROM _sync_apply_state WHERE singleton_key = 1",
        [],
        |r| r.get(0),
    )?;
    Ok(v != 0)
}

/// Turns capture suppression on/off. Runtime writes to app tables set it to `true` for the
/// duration of one transaction; `open` always resets it.
pub fn set_apply_mode(conn: &Connection, on: bool) -> Result<()> {
    conn.execute(
        "UPDATE _sync_apply_state SET apply_mode = ?1 WHERE singleton_key = 1",
        [on as i64],
    )?;
    Ok(())
}

/// Capture off for the rest of the caller's transaction.
pub fn enter(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_apply_state SET apply_mode = 1 WHERE singleton_key = 1",
        [],
    )?;
    Ok(())
}

/// Capture back on (before the caller's commit).
pub fn leave(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _sync_apply_state SET apply_mode = 0 WHERE singleton_key = 1",
        [],
    )?;
    Ok(())
}

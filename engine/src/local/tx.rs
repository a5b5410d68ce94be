//! Short write transactions over a borrowed connection (the extension only has
//! `&Connection`). `BEGIN IMMEDIATE` takes the write lock up front so a concurrent
//! writer fails fast instead of deadlocking on lock upgrade; a guard rolls back on
//! every early return, so `apply_mode` can never leak past a failure (§9).

use rusqlite::Connection;

use crate::error::{ErrorKind, Result, SyncError};
use oversqlite_core::store::apply;

pub struct ImmediateTx<'c> {
    conn: &'c Connection,
    done: bool,
}

impl<'c> ImmediateTx<'c> {
    pub fn begin(conn: &'c Connection) -> Result<Self> {
        if !conn.is_autocommit() {
            return Err(SyncError::new(
                ErrorKind::InTransaction,
                "a transaction is already open on this connection; commit or roll it back first",
            ));
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(ImmediateTx { conn, done: false })
    }

    pub fn conn(&self) -> &'c Connection {
        self.conn
    }

    pub fn commit(self) -> Result<()> {
        self.commit_or_explain(|_| None)
    }

    /// Commits; when the COMMIT fails on a deferred foreign-key violation, the
    /// transaction is still open (SQLite keeps it so the caller can repair), and
    /// `explain` may inspect it and replace SQLite's bare message before the rollback.
    pub fn commit_or_explain(
        mut self,
        explain: impl FnOnce(&Connection) -> Option<SyncError>,
    ) -> Result<()> {
        self.done = true;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let fk = matches!(
                &e,
                rusqlite::Error::SqliteFailure(f, _)
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            );
            let explained = if fk && !self.conn.is_autocommit() {
                explain(self.conn)
            } else {
                None
            };
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(explained.unwrap_or_else(|| e.into()));
        }
        Ok(())
    }
}

impl Drop for ImmediateTx<'_> {
    fn drop(&mut self) {
        if !self.done && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Runs `f` in one IMMEDIATE transaction.
pub fn write_tx<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let tx = ImmediateTx::begin(conn)?;
    let out = f(tx.conn())?;
    tx.commit()?;
    Ok(out)
}

/// Runs `f` in one IMMEDIATE transaction with deferred foreign keys and capture
/// suppressed (`apply_mode = 1`); `apply_mode` is reset to 0 before the commit, and a
/// rollback restores it too because it is a row of the same database.
pub fn apply_tx<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let tx = ImmediateTx::begin(conn)?;
    let c = tx.conn();
    c.execute_batch("PRAGMA defer_foreign_keys = ON")?;
    apply::enter(c)?;
    let out = f(c)?;
    apply::leave(c)?;
    tx.commit()?;
    Ok(out)
}

//! Short write transactions over a borrowed connection (the extension only has
//! `&Connection`). `BEGIN IMMEDIATE` takes the write lock up front so a concurrent
//! writer fails fast instead of deadlocking on lock upgrade; a guard rolls back on
//! every early return, so `apply_mode` can never leak past a failure (§9).

use rusqlite::Connection;

use crate::error::{ErrorKind, Result, SyncError};

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
    c.execute(
        "UPDATE _sync_apply_state SET apply_mode = 1 WHERE singleton_key = 1",
        [],
    )?;
    let out = f(c)?;
    c.execute(
        "UPDATE _sync_apply_state SET apply_mode = 0 WHERE singleton_key = 1",
        [],
    )?;
    tx.commit()?;
    Ok(out)
}

/// Runs `f` with `PRAGMA foreign_keys` off when `off` and the host enabled it.
///
/// The row a resolution writes (the server's row, or a merge of it) may reference a
/// parent that exists on the server but has not been pulled to this device yet; it
/// arrives with the next pull (sync pulls right after the push). With enforcement on,
/// the deferred check would fail the resolution at commit, the outbox would stay
/// `prepared`, and every later push would conflict and fail the same way, with pull,
/// rebuild and detach all refused over the pending changes. The pragma cannot change
/// inside a transaction; every engine step starts in autocommit, so it is set around
/// this one transaction and restored by a guard, whether `f` returns, fails or panics
/// (a host connection must never be left with enforcement silently off).
pub(crate) fn without_fk_enforcement_if<T>(
    conn: &Connection,
    off: bool,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let enforced: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    if !off || enforced == 0 || !conn.is_autocommit() {
        return f();
    }
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let guard = ForeignKeysBackOn { conn };
    let out = f();
    let restored = guard.restore();
    let out = out?;
    restored?;
    Ok(out)
}

/// Turns `PRAGMA foreign_keys` back on when dropped (also while unwinding a panic).
struct ForeignKeysBackOn<'c> {
    conn: &'c Connection,
}

impl ForeignKeysBackOn<'_> {
    /// Restores now, reporting a failure (the drop then has nothing left to do).
    fn restore(self) -> Result<()> {
        let r = self.conn.execute_batch("PRAGMA foreign_keys = ON");
        std::mem::forget(self);
        Ok(r?)
    }
}

impl Drop for ForeignKeysBackOn<'_> {
    fn drop(&mut self) {
        let _ = self.conn.execute_batch("PRAGMA foreign_keys = ON");
    }
}

//! Write transactions that also work inside the caller's own transaction.
//!
//! Outside a transaction we use `BEGIN IMMEDIATE` (take the write lock up front, so a
//! concurrent writer fails fast instead of deadlocking on upgrade); inside one we use a
//! savepoint, so a failure undoes only our work. A guard rolls back on error and on panic.
use rusqlite::Connection;

use crate::error::Result;

const SAVEPOINT: &str = "oversqlite_write";

struct Guard<'c> {
    conn: &'c Connection,
    nested: bool,
    finished: bool,
}

impl Guard<'_> {
    fn rollback(&mut self) {
        self.finished = true;
        let sql = if self.nested {
            format!("ROLLBACK TO {SAVEPOINT}; RELEASE {SAVEPOINT}")
        } else {
            "ROLLBACK".to_string()
        };
        // A failed rollback means SQLite already rolled back (e.g. after SQLITE_FULL).
        let _ = self.conn.execute_batch(&sql);
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.rollback();
        }
    }
}

/// Runs `f` in a write transaction (or savepoint when one is already open); commits on
/// `Ok`, rolls back on `Err` or panic.
pub fn write_tx<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let nested = !conn.is_autocommit();
    conn.execute_batch(if nested {
        "SAVEPOINT oversqlite_write"
    } else {
        "BEGIN IMMEDIATE"
    })?;
    let mut guard = Guard {
        conn,
        nested,
        finished: false,
    };
    match f(conn) {
        Ok(value) => {
            guard.finished = true;
            let commit = if nested {
                format!("RELEASE {SAVEPOINT}")
            } else {
                "COMMIT".to_string()
            };
            if let Err(e) = conn.execute_batch(&commit) {
                guard.finished = false;
                return Err(e.into());
            }
            Ok(value)
        }
        Err(e) => {
            guard.rollback();
            Err(e)
        }
    }
}

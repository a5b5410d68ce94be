//! The one wrapper every journaled operation runs in ([`recorded`]): it registers the
//! operation's live progress ([`crate::progress`]) for its duration and, once it has
//! returned, appends one row to the sync journal (`_oversqlite_sync_log`, core's
//! `store::sync_log`) with the caller's trigger, the outcome and the counters.
//!
//! The journal row is written after the operation, in a short transaction of its own,
//! and only when the connection is in autocommit mode: a caller holding a transaction
//! gets no row (writing inside its transaction would make our row part of its commit or
//! rollback, and the operation itself refuses to run there anyway). A journal write
//! that fails (busy, read-only file, full disk) is dropped: it never fails the
//! operation it describes. Calls refused for bad arguments, or on a database without
//! the runtime, are not journaled either: bad input changes nothing.
use rusqlite::Connection;

use oversqlite_core::store::sync_log::{self, LogEntry};

use crate::error::{ErrorKind, Result, SyncError};
use crate::progress::{now_millis, Tracking};
use crate::remote::redact::scrub_credentials;
use crate::report::{
    AttachOutcome, AttachReport, DetachReport, PullReport, PushReport, SyncReport,
    SyncThenDetachReport,
};

/// Who started the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A SQL function call.
    Sql,
    /// The background worker (`oversqlite_auto_sync_start`).
    Auto,
    /// The command-line tool.
    Cli,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Sql => "sql",
            Trigger::Auto => "auto",
            Trigger::Cli => "cli",
        }
    }
}

/// How a successful operation ended, as the journal's `outcome` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// It returned normally but left work (a sync that stopped with changes pending).
    Incomplete,
    /// A paused direction skipped it.
    Skipped,
    /// The server asked to retry later (attach).
    RetryLater,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Incomplete => "incomplete",
            Outcome::Skipped => "skipped",
            Outcome::RetryLater => "retry_later",
        }
    }
}

/// A report's journal outcome.
pub trait Journaled {
    fn outcome(&self) -> Outcome {
        Outcome::Ok
    }
}

impl Journaled for PushReport {}
impl Journaled for PullReport {}
impl Journaled for DetachReport {
    /// A detach refused because local changes are unsent returns normally but did not
    /// detach: the journal must not call it `ok`.
    fn outcome(&self) -> Outcome {
        if self.outcome == crate::report::DetachOutcome::BlockedUnsyncedData {
            Outcome::Incomplete
        } else {
            Outcome::Ok
        }
    }
}
impl Journaled for SyncReport {
    fn outcome(&self) -> Outcome {
        if self.complete {
            Outcome::Ok
        } else {
            Outcome::Incomplete
        }
    }
}
impl Journaled for SyncThenDetachReport {
    fn outcome(&self) -> Outcome {
        if self.is_success {
            Outcome::Ok
        } else {
            Outcome::Incomplete
        }
    }
}
impl Journaled for AttachReport {
    fn outcome(&self) -> Outcome {
        if self.outcome == AttachOutcome::RetryLater {
            Outcome::RetryLater
        } else {
            Outcome::Ok
        }
    }
}
impl<A: Journaled, B> Journaled for (A, B) {
    fn outcome(&self) -> Outcome {
        self.0.outcome()
    }
}

/// Errors that leave no journal row (see the module docs).
fn unjournaled(e: &SyncError) -> bool {
    matches!(
        e.kind,
        ErrorKind::InvalidArgument
            | ErrorKind::InTransaction
            | ErrorKind::NotOpen
            | ErrorKind::NotConfigured
    )
}

/// Runs `op` as operation `operation` started by `trigger`, with live progress, then
/// journals it (keeping the newest `keep` rows) with `outcome_of` for a success.
pub fn recorded_with<T>(
    conn: &Connection,
    operation: &'static str,
    trigger: Trigger,
    keep: i64,
    op: impl FnOnce() -> Result<T>,
    outcome_of: impl FnOnce(&T) -> Outcome,
) -> Result<T> {
    let tracking = Tracking::begin(conn, operation, trigger.as_str());
    let started_at = tracking.entry().started_at.clone();
    let result = op();
    let totals = tracking.entry().totals();
    drop(tracking);
    let (outcome, error_code, error_message) = match &result {
        Ok(v) => (outcome_of(v).as_str(), None, None),
        Err(e) if unjournaled(e) => return result,
        Err(e) => (
            "error",
            Some(e.code().to_string()),
            Some(scrub_credentials(&e.message)),
        ),
    };
    let entry = LogEntry {
        id: 0,
        operation: operation.to_string(),
        trigger: trigger.as_str().to_string(),
        started_at,
        finished_at: oversqlite_protocol::values::rfc3339::format_millis(now_millis()),
        outcome: outcome.to_string(),
        rows_up: totals.rows_up,
        rows_down: totals.rows_down,
        bytes_up: totals.bytes_up,
        bytes_down: totals.bytes_down,
        error_code,
        error_message,
    };
    append_best_effort(conn, &entry, keep);
    result
}

/// [`recorded_with`] for the engine's reports.
pub fn recorded<T: Journaled>(
    conn: &Connection,
    operation: &'static str,
    trigger: Trigger,
    keep: i64,
    op: impl FnOnce() -> Result<T>,
) -> Result<T> {
    recorded_with(conn, operation, trigger, keep, op, |r| r.outcome())
}

/// Appends unless the caller holds a transaction; a busy database gets a few short
/// retries (another connection's sync step is brief), then the row is dropped.
fn append_best_effort(conn: &Connection, entry: &LogEntry, keep: i64) {
    for attempt in 0..5u64 {
        if !conn.is_autocommit() {
            // The caller holds a transaction (or the op left one open by mistake):
            // never write into it.
            return;
        }
        match sync_log::append(conn, entry, keep) {
            Ok(_) => return,
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20 * (attempt + 1)));
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_failure_and_skipped_calls_are_journaled_as_such() {
        let conn = Connection::open_in_memory().unwrap();
        let ok: Result<PushReport> = Err(SyncError::new(
            ErrorKind::AuthenticationFailed,
            "401: token Bearer eyJa.eyJb.c rejected",
        ));
        assert!(recorded(&conn, "push", Trigger::Auto, 10, || ok).is_err());
        let bad: Result<PushReport> = Err(SyncError::new(ErrorKind::InvalidArgument, "bad"));
        assert!(recorded(&conn, "push", Trigger::Sql, 10, || bad).is_err());
        let v = recorded_with(
            &conn,
            "sync",
            Trigger::Cli,
            10,
            || Ok(7),
            |_| Outcome::Skipped,
        )
        .unwrap();
        assert_eq!(v, 7);
        let rows = sync_log::recent(&conn, 10).unwrap();
        assert_eq!(rows.len(), 2, "the invalid-argument call left no row");
        assert_eq!(
            (
                rows[0].operation.as_str(),
                rows[0].trigger.as_str(),
                rows[0].outcome.as_str()
            ),
            ("sync", "cli", "skipped")
        );
        assert_eq!(rows[1].outcome, "error");
        assert_eq!(rows[1].error_code.as_deref(), Some("authentication_failed"));
        let msg = rows[1].error_message.as_deref().unwrap();
        assert!(!msg.contains("eyJa"), "{msg}");
    }

    #[test]
    fn no_row_inside_the_callers_transaction() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("BEGIN").unwrap();
        recorded_with(&conn, "sync", Trigger::Sql, 10, || Ok(()), |_| Outcome::Ok).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        assert!(sync_log::recent(&conn, 10).unwrap().is_empty());
    }
}

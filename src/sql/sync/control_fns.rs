//! Per-connection settings: the bearer token, conflict policies, and pausing a direction.
//! None of it is persisted; it lasts as long as the connection.
use std::sync::atomic::Ordering;

use oversqlite_engine::{ErrorKind, SyncError};
use rusqlite::Connection;
use serde_json::json;

use super::host_fn::{check_function_name, is_registered};
use super::ops_fns::{text, to_json};
use super::resolver::Policy;
use super::state::ConnSync;
use crate::sql::args::Args;

/// `oversqlite_set_token(token)`: NULL (or blank) clears. The answer never echoes it.
pub fn set_token(s: &ConnSync, _conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(1, 1, "oversqlite_set_token(token)")?;
    let token = args.opt_text(0, "token")?;
    s.tokens.explicit.set(token);
    text(json!({"token_set": s.tokens.explicit.get().is_some()}))
}

/// Longest call timeout accepted: a day (a larger value is a unit mistake).
const MAX_CALL_TIMEOUT_MS: i64 = 86_400_000;

/// `oversqlite_set_call_timeout(ms)`: every later network call on this connection fails
/// with `timeout` once it has run `ms` milliseconds; NULL or 0 removes the bound.
pub fn set_call_timeout(
    s: &ConnSync,
    _conn: &Connection,
    args: &Args,
) -> Result<String, SyncError> {
    args.expect_count(1, 1, "oversqlite_set_call_timeout(ms)")?;
    let ms = args.opt_integer(0, "ms")?.unwrap_or(0);
    if !(0..=MAX_CALL_TIMEOUT_MS).contains(&ms) {
        return Err(SyncError::new(
            ErrorKind::InvalidArgument,
            format!(
                "ms must be between 0 (no timeout) and {MAX_CALL_TIMEOUT_MS} (a day), got {ms}"
            ),
        ));
    }
    s.call_timeout_ms.store(ms as u64, Ordering::SeqCst);
    text(json!({"call_timeout_ms": if ms == 0 { None } else { Some(ms) }}))
}

/// `oversqlite_set_conflict_resolver(policy [, table [, function_name]])`; table NULL sets
/// the client default, policy NULL removes a table's override. Answers the policies in force.
pub fn set_conflict_resolver(
    s: &ConnSync,
    conn: &Connection,
    args: &Args,
) -> Result<String, SyncError> {
    let usage = "oversqlite_set_conflict_resolver(policy [, table [, function_name]]) with policy 'server_wins', 'client_wins' or 'custom'";
    args.expect_count(1, 3, usage)?;
    let table = args.opt_text(1, "table")?;
    if args.is_null(0) {
        // NULL policy for a table: drop its override, the client default applies again.
        let Some(t) = table else {
            return Err(SyncError::new(
                ErrorKind::InvalidArgument,
                format!("policy NULL needs a table (it removes that table's override); {usage}"),
            ));
        };
        if args.len() > 2 && !args.is_null(2) {
            return Err(SyncError::new(
                ErrorKind::InvalidArgument,
                "function_name is only used with the 'custom' policy",
            ));
        }
        let mut policies = s
            .resolver
            .policies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        policies.tables.remove(&t.to_ascii_lowercase());
        return text(to_json(&*policies)?);
    }
    let policy_name = args.text(0, "policy")?;
    let function = args.opt_text(2, "function_name")?;
    let policy = match (policy_name.trim().to_ascii_lowercase().as_str(), function) {
        ("server_wins", None) => Policy::ServerWins,
        ("client_wins", None) => Policy::ClientWins,
        ("server_wins" | "client_wins", Some(_)) => {
            return Err(SyncError::new(ErrorKind::InvalidArgument, "function_name is only used with the 'custom' policy"))
        }
        ("custom", None) => {
            return Err(SyncError::new(
                ErrorKind::InvalidArgument,
                "the 'custom' policy needs function_name: a SQL function f(table, key_json, server_row_json, local_payload_json)",
            ))
        }
        ("custom", Some(f)) => {
            check_function_name(&f)?;
            if !is_registered(conn, &f, 4)? {
                return Err(SyncError::new(
                    ErrorKind::InvalidArgument,
                    format!("no SQL function {f}(table, key_json, server_row_json, local_payload_json) with 4 arguments is registered on this connection"),
                ));
            }
            Policy::Custom { function: f }
        }
        (other, _) => return Err(SyncError::new(ErrorKind::InvalidArgument, format!("unknown policy {other:?}; {usage}"))),
    };
    if let Some(t) = &table {
        let settings = oversqlite_core::config::read_settings(conn)?;
        if !settings
            .tables
            .iter()
            .any(|s| s.table.eq_ignore_ascii_case(t))
        {
            return Err(SyncError::new(
                ErrorKind::InvalidArgument,
                format!("table {t:?} is not enabled for sync; call oversqlite_enable_sync({t:?}) first or pass NULL for every table"),
            ));
        }
    }
    let mut policies = s
        .resolver
        .policies
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match table {
        Some(t) => {
            policies.tables.insert(t.to_ascii_lowercase(), policy);
        }
        None => policies.default = policy,
    }
    text(to_json(&*policies)?)
}

fn pause_report(s: &ConnSync) -> Result<String, SyncError> {
    text(json!({"uploads_paused": s.uploads_paused(), "downloads_paused": s.downloads_paused()}))
}

pub fn pause_uploads(s: &ConnSync, _conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_pause_uploads()")?;
    s.uploads_paused.store(true, Ordering::SeqCst);
    pause_report(s)
}

pub fn resume_uploads(s: &ConnSync, _conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_resume_uploads()")?;
    s.uploads_paused.store(false, Ordering::SeqCst);
    pause_report(s)
}

pub fn pause_downloads(s: &ConnSync, _conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_pause_downloads()")?;
    s.downloads_paused.store(true, Ordering::SeqCst);
    pause_report(s)
}

pub fn resume_downloads(
    s: &ConnSync,
    _conn: &Connection,
    args: &Args,
) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_resume_downloads()")?;
    s.downloads_paused.store(false, Ordering::SeqCst);
    pause_report(s)
}

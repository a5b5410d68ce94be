//! The one-shot calls of the earlier SQLiteNow API, mapped onto the bundle protocol:
//!
//! * `oversqlite_upload_once()` = one push that settles a refused commit like
//!   `oversqlite_sync()` does (pull beside the local changes, foreign-key races by
//!   policy, push again). The bundle commits atomically, so `applied` is every
//!   uploaded row or none; `conflict` counts conflicts and foreign-key races the
//!   policies settled (listed in `foreign_key_resolutions`). A refusal nothing settles
//!   (or any refusal while downloads are paused) is reported, not raised: `invalid` =
//!   the pending rows kept locally, `invalid_reasons` = `{server_code: rows}`,
//!   `first_error_message` = what was refused and why. `materialize_error` is always 0
//!   (rows are applied in the same transaction that records them).
//! * `oversqlite_download_once([limit [, include_self [, until]]])` (defaults 1000, 0,
//!   0 as documented by SQLiteNow) = one pull to the server's stable bundle (or to
//!   bundle `until` when `until` > 0, refused where it would split a cascade) fetching
//!   at most `limit` bundles per request. Bundles are atomic, so a call applies whole
//!   bundles and `applied` (changes, i.e. rows) may exceed `limit`; because every call
//!   goes to the stable bundle, the documented loop `more = applied == limit` still
//!   ends with every change applied once. `include_self` decides only whether this
//!   device's own bundles, met again when another device's bundle came first, count
//!   in `applied`/`bundles_applied`: they are applied either way, writing the rows this
//!   device already has (skipping them would leave the checkpoint behind them).
//! * `oversqlite_sync_once([limit [, include_self]])` = upload_once, then a download of
//!   at most `limit` bundles per request applied beside any local change written
//!   meanwhile (as `oversqlite_sync()` does), unless the upload left refused rows;
//!   `downloaded` counts changes as `download_once`'s `applied` does.
use oversqlite_engine::report::{PullReport, PushOutcome};
use oversqlite_engine::{ErrorKind, SyncError};
use rusqlite::Connection;
use serde_json::{json, Value};

use super::ops_fns::{text, BOTH_PAUSED, DOWNLOADS_PAUSED, UPLOADS_PAUSED};
use super::state::ConnSync;
use crate::sql::args::Args;

fn upload_report(
    total: i64,
    applied: i64,
    conflict: i64,
    invalid: i64,
    reasons: Value,
    first_error: Option<String>,
) -> Value {
    json!({
        "total": total, "applied": applied, "conflict": conflict, "invalid": invalid,
        "materialize_error": 0, "invalid_reasons": reasons, "first_error_message": first_error,
        "foreign_key_resolutions": [],
    })
}

fn with_skipped(mut v: Value, why: &str) -> Value {
    v["skipped"] = json!(why);
    v
}

fn upload(s: &ConnSync, conn: &Connection) -> Result<Value, SyncError> {
    if s.uploads_paused() {
        return Ok(with_skipped(
            upload_report(0, 0, 0, 0, json!({}), None),
            UPLOADS_PAUSED,
        ));
    }
    // A refused commit is settled by pulling beside the local changes, which needs
    // downloads; with them paused the refusal is only reported.
    let pushed = if s.downloads_paused() {
        s.with_client(|c| c.push_pending(conn))
            .map(|r| (r, Vec::new()))
    } else {
        s.with_client(|c| c.push_settling(conn))
    };
    match pushed {
        Ok((r, settled)) => {
            let applied = if r.outcome == PushOutcome::Committed {
                r.row_count
            } else {
                0
            };
            let mut report = upload_report(
                r.row_count,
                applied,
                r.conflicts_resolved as i64 + settled.len() as i64,
                0,
                json!({}),
                None,
            );
            report["foreign_key_resolutions"] = serde_json::to_value(&settled)
                .map_err(|e| SyncError::new(ErrorKind::Internal, e.to_string()))?;
            Ok(report)
        }
        Err(e)
            if matches!(
                e.kind,
                ErrorKind::PushCommitRefused | ErrorKind::PushRejected
            ) =>
        {
            let kept = oversqlite_engine::sync_status(conn)?
                .pending
                .pending_row_count;
            let code = e
                .server_code
                .clone()
                .unwrap_or_else(|| "http_400".to_string());
            Ok(upload_report(
                kept,
                0,
                0,
                kept,
                json!({ code: kept }),
                Some(e.message),
            ))
        }
        Err(e) => Err(e),
    }
}

/// SQLiteNow's default `limit` for both one-shot downloads.
const DEFAULT_LIMIT: i64 = 1000;

/// `(changes, bundles)` a pull applied, this device's own re-met bundles counted only
/// with `include_self`.
fn applied_counts(report: &PullReport, include_self: bool) -> (i64, i64) {
    let c = report.counts;
    if include_self {
        (c.rows, report.bundles_applied)
    } else {
        (c.rows - c.own_rows, report.bundles_applied - c.own_bundles)
    }
}

struct DownloadArgs {
    limit: i64,
    include_self: bool,
    until: i64,
}

fn download(s: &ConnSync, conn: &Connection, a: &DownloadArgs) -> Result<Value, SyncError> {
    if s.downloads_paused() {
        let seen = s.with_client(|c| c.source_info(conn))?.last_bundle_seq_seen;
        return Ok(with_skipped(
            json!({"applied": 0, "bundles_applied": 0, "next_seq": seen}),
            DOWNLOADS_PAUSED,
        ));
    }
    let report = s.with_client(|c| {
        let saved = c.settings.download_max_bundles;
        c.settings.download_max_bundles = a.limit;
        let result = c.pull_until(conn, a.until);
        c.settings.download_max_bundles = saved;
        result
    })?;
    let (applied, bundles) = applied_counts(&report, a.include_self);
    Ok(json!({
        "applied": applied,
        "bundles_applied": bundles,
        "next_seq": report.status.last_bundle_seq_seen,
    }))
}

/// `limit`: NULL or absent = 1000; otherwise at least 1 (bundles per pull request).
fn limit_arg(args: &Args, i: usize) -> Result<i64, SyncError> {
    match args.opt_integer(i, "limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if n < 1 => Err(SyncError::new(
            ErrorKind::InvalidArgument,
            format!("limit must be at least 1 (bundles per pull request), got {n}"),
        )),
        Some(n) => Ok(n),
    }
}

/// `include_self`: NULL or absent = 0 (SQLiteNow's `false`); otherwise 0 or 1.
fn include_self_arg(args: &Args, i: usize) -> Result<bool, SyncError> {
    match args.opt_integer(i, "include_self")? {
        None | Some(0) => Ok(false),
        Some(1) => Ok(true),
        Some(n) => Err(SyncError::new(
            ErrorKind::InvalidArgument,
            format!("include_self must be 0 or 1, got {n}"),
        )),
    }
}

/// `until`: NULL, absent or 0 = no limit (SQLiteNow's "0 = no limit"); otherwise the
/// bundle sequence to stop at.
fn until_arg(args: &Args, i: usize) -> Result<i64, SyncError> {
    match args.opt_integer(i, "until")? {
        None => Ok(0),
        Some(n) if n < 0 => Err(SyncError::new(
            ErrorKind::InvalidArgument,
            format!("until must be 0 (no limit) or a bundle sequence, got {n}"),
        )),
        Some(n) => Ok(n),
    }
}

pub fn upload_once(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_upload_once()")?;
    text(upload(s, conn)?)
}

pub fn download_once(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(
        0,
        3,
        "oversqlite_download_once([limit [, include_self [, until]]])",
    )?;
    let a = DownloadArgs {
        limit: limit_arg(args, 0)?,
        include_self: include_self_arg(args, 1)?,
        until: until_arg(args, 2)?,
    };
    text(download(s, conn, &a)?)
}

pub fn sync_once(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 2, "oversqlite_sync_once([limit [, include_self]])")?;
    let limit = limit_arg(args, 0)?;
    let include_self = include_self_arg(args, 1)?;
    let upload = upload(s, conn)?;
    let mut out = json!({"upload": upload, "downloaded": 0, "downloaded_bundles": 0});
    match (s.uploads_paused(), s.downloads_paused()) {
        (true, true) => out["skipped"] = json!(BOTH_PAUSED),
        (_, true) => out["skipped"] = json!(DOWNLOADS_PAUSED),
        (paused_up, false) => {
            if paused_up {
                out["skipped"] = json!(UPLOADS_PAUSED);
            }
            if out["upload"]["invalid"].as_i64().unwrap_or(0) > 0 {
                out["download_skipped"] = json!("pending_local_changes");
            } else {
                // Beside local changes written since the upload, like oversqlite_sync():
                // a busy app must not fail its sync_once for writing.
                let (pull, settled) = s.with_client(|c| {
                    let saved = c.settings.download_max_bundles;
                    c.settings.download_max_bundles = limit;
                    let result = c.pull_beside(conn);
                    c.settings.download_max_bundles = saved;
                    result
                })?;
                let (rows, bundles) = applied_counts(&pull, include_self);
                out["downloaded"] = json!(rows);
                out["downloaded_bundles"] = json!(bundles);
                if let Some(list) = out["upload"]["foreign_key_resolutions"].as_array_mut() {
                    list.extend(settled.iter().filter_map(|r| serde_json::to_value(r).ok()));
                }
            }
        }
    }
    text(out)
}

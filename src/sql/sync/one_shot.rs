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
//! * `oversqlite_download_once(limit [, include_self [, until]])` = one `pull_to_stable`
//!   with at most `limit` bundles per pull request; `applied` = bundles applied,
//!   `next_seq` = the bundle checkpoint the next download starts after.
//!   `include_self` (0/1) has no effect: a device's own bundles are already applied when
//!   they commit. `until` must be NULL: a download always stops at the server's stable
//!   bundle, never between bundles.
//! * `oversqlite_sync_once([limit])` = upload_once, then a download of at most `limit`
//!   bundles per request applied beside any local change written meanwhile (as
//!   `oversqlite_sync()` does), unless the upload left refused rows.
use oversqlite_engine::report::PushOutcome;
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
        Err(e) if e.kind == ErrorKind::PushCommitRefused => {
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

fn download(s: &ConnSync, conn: &Connection, limit: Option<i64>) -> Result<Value, SyncError> {
    if s.downloads_paused() {
        let seen = s.with_client(|c| c.source_info(conn))?.last_bundle_seq_seen;
        return Ok(with_skipped(
            json!({"applied": 0, "next_seq": seen}),
            DOWNLOADS_PAUSED,
        ));
    }
    let report = s.with_client(|c| {
        let saved = c.settings.download_max_bundles;
        if let Some(limit) = limit {
            c.settings.download_max_bundles = limit;
        }
        let result = c.pull_to_stable(conn);
        c.settings.download_max_bundles = saved;
        result
    })?;
    Ok(json!({"applied": report.bundles_applied, "next_seq": report.status.last_bundle_seq_seen}))
}

fn positive_limit(args: &Args, i: usize) -> Result<Option<i64>, SyncError> {
    match args.opt_integer(i, "limit")? {
        Some(n) if n < 1 => Err(SyncError::new(
            ErrorKind::InvalidArgument,
            format!("limit must be at least 1 bundle, got {n}"),
        )),
        other => Ok(other),
    }
}

pub fn upload_once(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 0, "oversqlite_upload_once()")?;
    text(upload(s, conn)?)
}

pub fn download_once(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(
        1,
        3,
        "oversqlite_download_once(limit [, include_self [, until]])",
    )?;
    let limit = positive_limit(args, 0)?.ok_or_else(|| {
        SyncError::new(
            ErrorKind::InvalidArgument,
            "limit must be a positive INTEGER (bundles per pull request)",
        )
    })?;
    if let Some(flag) = args.opt_integer(1, "include_self")? {
        if flag != 0 && flag != 1 {
            return Err(SyncError::new(
                ErrorKind::InvalidArgument,
                "include_self must be 0 or 1",
            ));
        }
    }
    if args.len() > 2 && !args.is_null(2) {
        return Err(SyncError::new(
            ErrorKind::InvalidArgument,
            "until must be NULL: a download always applies whole bundles up to the server's stable bundle",
        ));
    }
    text(download(s, conn, Some(limit))?)
}

pub fn sync_once(s: &ConnSync, conn: &Connection, args: &Args) -> Result<String, SyncError> {
    args.expect_count(0, 1, "oversqlite_sync_once([limit])")?;
    let limit = positive_limit(args, 0)?;
    let upload = upload(s, conn)?;
    let mut out = json!({"upload": upload, "downloaded": 0});
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
                    if let Some(limit) = limit {
                        c.settings.download_max_bundles = limit;
                    }
                    let result = c.pull_beside(conn);
                    c.settings.download_max_bundles = saved;
                    result
                })?;
                out["downloaded"] = json!(pull.bundles_applied);
                if let Some(list) = out["upload"]["foreign_key_resolutions"].as_array_mut() {
                    list.extend(settled.iter().filter_map(|r| serde_json::to_value(r).ok()));
                }
            }
        }
    }
    text(out)
}

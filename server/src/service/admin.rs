//! Operational routes (`/syncx/status`, `/syncx/health`) and the test hooks that reset the
//! store or move a user's retention floor.

use rusqlite::{params, Connection, TransactionBehavior};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::error::{ApiError, ServiceResult};
use crate::state::AppState;
use crate::store::BOOKKEEPING_TABLES;

/// `GET /syncx/status` body (swagger `StatusResponse`).
#[derive(Serialize, Debug)]
pub struct StatusResponse {
    pub status: &'static str,
    pub version: String,
    pub app_name: String,
    pub lifecycle: &'static str,
    pub accepting_operations: bool,
    pub inflight_operations: i64,
    pub registered_tables: Vec<String>,
    pub features: BTreeMap<String, bool>,
    pub user_state_retention_floor_ahead_count: i64,
    pub latest_bundle_seq_max: i64,
    pub retained_bundle_floor_min: i64,
    pub retained_bundle_floor_max: i64,
    pub retained_bundle_window_min: i64,
    pub retained_bundle_window_max: i64,
    pub history_pruned_error_count: i64,
    pub accepted_push_replay_count: i64,
    pub rejected_registered_write_count: i64,
    pub committed_bundle_count: i64,
    pub committed_bundle_bytes: i64,
}

pub fn status(app: &AppState, conn: &mut Connection) -> ServiceResult<StatusResponse> {
    let tx = conn.transaction()?;
    let (ahead, latest_max, floor_min, floor_max, window_min, window_max): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = tx.query_row(
        "SELECT COALESCE(SUM(retained_bundle_floor > next_bundle_seq - 1), 0),
                COALESCE(MAX(next_bundle_seq - 1), 0),
                COALESCE(MIN(retained_bundle_floor), 0), COALESCE(MAX(retained_bundle_floor), 0),
                COALESCE(MIN(next_bundle_seq - 1 - retained_bundle_floor), 0),
                COALESCE(MAX(next_bundle_seq - 1 - retained_bundle_floor), 0)
         FROM _oversync_user_state",
        [],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    )?;
    let (bundle_count, bundle_bytes): (i64, i64) = tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(byte_count), 0) FROM _oversync_bundle_log",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let draining = app.shutting_down.load(Ordering::Relaxed);
    Ok(StatusResponse {
        status: "healthy",
        version: env!("CARGO_PKG_VERSION").to_string(),
        app_name: app.registry.app_name.clone(),
        lifecycle: if draining { "shutting_down" } else { "running" },
        accepting_operations: !draining,
        // Minus this status query itself.
        inflight_operations: (app.inflight.load(Ordering::Relaxed) - 1).max(0),
        registered_tables: app
            .registry
            .tables
            .iter()
            .map(|t| t.qualified.clone())
            .collect(),
        features: super::features::features(app),
        user_state_retention_floor_ahead_count: ahead,
        latest_bundle_seq_max: latest_max,
        retained_bundle_floor_min: floor_min,
        retained_bundle_floor_max: floor_max,
        retained_bundle_window_min: window_min,
        retained_bundle_window_max: window_max,
        history_pruned_error_count: app.counters.history_pruned.load(Ordering::Relaxed),
        accepted_push_replay_count: app.counters.accepted_push_replay.load(Ordering::Relaxed),
        rejected_registered_write_count: 0,
        committed_bundle_count: bundle_count,
        committed_bundle_bytes: bundle_bytes,
    })
}

/// Removes every user's data: registered tables and all bookkeeping.
pub fn reset(app: &AppState, conn: &mut Connection) -> ServiceResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("PRAGMA defer_foreign_keys = ON")?;
    crate::store::open_write_context(&tx)?;
    for table in &app.registry.tables {
        tx.execute(&format!("DELETE FROM {}", table.sql_name()), [])?;
    }
    for table in BOOKKEEPING_TABLES {
        tx.execute(&format!("DELETE FROM {table}"), [])?;
    }
    tx.commit()?;
    app.counters.history_pruned.store(0, Ordering::Relaxed);
    app.counters
        .accepted_push_replay
        .store(0, Ordering::Relaxed);
    Ok(())
}

/// Sets a user's retained floor (history at or below it answers `history_pruned`).
pub fn set_retention_floor(conn: &mut Connection, user: &str, floor: i64) -> ServiceResult<()> {
    let changed = conn.execute(
        "UPDATE _oversync_user_state SET retained_bundle_floor = ?2 WHERE user_id = ?1",
        params![user, floor],
    )?;
    if changed == 0 {
        return Err(ApiError::new(
            404,
            "user_state_not_found",
            "no sync user_state row exists for user_id",
        )
        .into());
    }
    Ok(())
}

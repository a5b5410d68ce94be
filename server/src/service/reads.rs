//! Read paths: `GET /sync/committed-bundles/{seq}/rows` (§2.7, §10.5) and `GET /sync/pull`
//! (§2.8, §10.6). Each runs in one read transaction, so a page is internally consistent.

use oversqlite_protocol::{codes, Op};
use rusqlite::{params, Connection, OptionalExtension};

use super::raw_rows::{
    raw_payload, text_column, JsonBody, RawBundle, RawBundleRow, RawCommittedRowsResponse,
    RawPullResponse, WireKey,
};
use super::scope::{load_user, require_initialized};
use crate::config::TableSpec;
use crate::error::{ApiError, Fail, ServiceResult};
use crate::state::{AppState, Counters, MAX_ROWS_PER_CHUNK};
use crate::timefmt::now_ms;

struct BundleMeta {
    source_id: String,
    source_bundle_id: i64,
    row_count: i64,
    bundle_hash: String,
}

fn load_meta(
    conn: &Connection,
    user: &str,
    bundle_seq: i64,
) -> rusqlite::Result<Option<BundleMeta>> {
    conn.query_row(
        "SELECT source_id, source_bundle_id, row_count, bundle_hash FROM _oversync_bundle_log WHERE user_id = ?1 AND bundle_seq = ?2",
        params![user, bundle_seq],
        |r| Ok(BundleMeta { source_id: r.get(0)?, source_bundle_id: r.get(1)?, row_count: r.get(2)?, bundle_hash: r.get(3)? }),
    )
    .optional()
}

/// Stored rows of one bundle with logical ordinal > `after`, at most `limit`, payloads
/// passed through as stored.
fn load_rows<'a>(
    app: &'a AppState,
    conn: &Connection,
    user: &str,
    bundle_seq: i64,
    after: i64,
    limit: i64,
) -> ServiceResult<Vec<RawBundleRow<'a>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT table_name, key, op, payload FROM _oversync_bundle_rows
         WHERE user_id = ?1 AND bundle_seq = ?2 AND row_ordinal > ?3 ORDER BY row_ordinal LIMIT ?4",
    )?;
    let mut raw = stmt.query(params![user, bundle_seq, after, limit])?;
    let mut rows = Vec::new();
    // Consecutive rows are usually of the same table: remember the last lookup.
    let mut last: Option<&TableSpec> = None;
    while let Some(r) = raw.next()? {
        let table_name = text_column(r, 0)?;
        let spec = match last {
            Some(spec) if spec.qualified == table_name => spec,
            _ => {
                let (schema, table) = table_name.split_once('.').unwrap_or(("", table_name));
                app.registry.table(schema, table).ok_or_else(|| {
                    Fail::Internal(format!("bundle row of unregistered table {table_name}"))
                })?
            }
        };
        last = Some(spec);
        let op = text_column(r, 2)?;
        rows.push(RawBundleRow {
            schema: &spec.schema,
            table: &spec.table,
            key: WireKey {
                key_column: &spec.key_column,
                key: r.get(1)?,
            },
            op: Op::from_wire(op).ok_or_else(|| Fail::Internal(format!("stored op {op:?}")))?,
            row_version: bundle_seq,
            payload: r
                .get::<_, Option<String>>(3)?
                .map(raw_payload)
                .transpose()?,
        });
    }
    Ok(rows)
}

pub fn committed_rows(
    app: &AppState,
    conn: &mut Connection,
    user: &str,
    bundle_seq: i64,
    after_row_ordinal: Option<i64>,
    max_rows: i64,
) -> ServiceResult<JsonBody> {
    let invalid = |m: &str| {
        Fail::from(ApiError::bad_request(
            codes::COMMITTED_BUNDLE_CHUNK_INVALID,
            m,
        ))
    };
    if bundle_seq <= 0 {
        return Err(invalid("bundle_seq must be > 0"));
    }
    if after_row_ordinal.is_some_and(|a| a < 0) {
        return Err(invalid("after_row_ordinal must be >= 0"));
    }
    if max_rows <= 0 {
        return Err(invalid("max_rows must be > 0"));
    }
    let limit = max_rows.min(MAX_ROWS_PER_CHUNK);
    let tx = conn.transaction()?;
    let floor = load_user(&tx, user)?.map(|s| s.retained_floor).unwrap_or(0);
    if bundle_seq <= floor {
        Counters::bump(&app.counters.history_pruned);
        return Err(ApiError::conflict(
            codes::HISTORY_PRUNED,
            format!("bundle {bundle_seq} is at or below the retained floor {floor}"),
        )
        .into());
    }
    let meta = load_meta(&tx, user, bundle_seq)?.ok_or_else(|| {
        ApiError::new(
            404,
            codes::COMMITTED_BUNDLE_NOT_FOUND,
            format!("committed bundle {bundle_seq} not found"),
        )
    })?;
    let logical_after = after_row_ordinal.unwrap_or(-1);
    let mut rows = load_rows(app, &tx, user, bundle_seq, logical_after, limit + 1)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_row_ordinal = if rows.is_empty() {
        after_row_ordinal.unwrap_or(0)
    } else {
        logical_after + rows.len() as i64
    };
    JsonBody::encode(&RawCommittedRowsResponse {
        bundle_seq,
        source_id: meta.source_id,
        source_bundle_id: meta.source_bundle_id,
        row_count: meta.row_count,
        bundle_hash: meta.bundle_hash,
        rows,
        next_row_ordinal,
        has_more,
    })
}

pub fn pull(
    app: &AppState,
    conn: &mut Connection,
    user: &str,
    after_bundle_seq: i64,
    max_bundles: i64,
    target_bundle_seq: i64,
) -> ServiceResult<JsonBody> {
    let tx = conn.transaction()?;
    let state = load_user(&tx, user)?;
    require_initialized(state.as_ref(), now_ms())?;
    let state = state.expect("initialized scope has a user row");
    let floor = state.retained_floor;
    if (after_bundle_seq > 0 && after_bundle_seq <= floor)
        || (target_bundle_seq > 0 && target_bundle_seq <= floor)
    {
        Counters::bump(&app.counters.history_pruned);
        return Err(ApiError::conflict(
            codes::HISTORY_PRUNED,
            format!(
                "requested history at or below the retained floor {floor}; rebuild from a snapshot"
            ),
        )
        .into());
    }
    let stable = if target_bundle_seq > 0 {
        target_bundle_seq
    } else {
        state.latest_bundle_seq()
    };
    if stable > 0 && stable <= floor {
        // Everything up to the ceiling is gone (e.g. the floor was moved past the head).
        Counters::bump(&app.counters.history_pruned);
        return Err(ApiError::conflict(
            codes::HISTORY_PRUNED,
            format!("stable bundle {stable} is at or below the retained floor {floor}; rebuild from a snapshot"),
        )
        .into());
    }
    if after_bundle_seq >= stable {
        return JsonBody::encode(&RawPullResponse {
            stable_bundle_seq: stable,
            bundles: Vec::new(),
            has_more: false,
        });
    }
    let metas: Vec<(i64, BundleMeta)> = {
        let mut stmt = tx.prepare(
            "SELECT bundle_seq, source_id, source_bundle_id, row_count, bundle_hash FROM _oversync_bundle_log
             WHERE user_id = ?1 AND bundle_seq > ?2 AND bundle_seq <= ?3 ORDER BY bundle_seq LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![user, after_bundle_seq.max(floor), stable, max_bundles + 1],
            |r| {
                Ok((
                    r.get(0)?,
                    BundleMeta {
                        source_id: r.get(1)?,
                        source_bundle_id: r.get(2)?,
                        row_count: r.get(3)?,
                        bundle_hash: r.get(4)?,
                    },
                ))
            },
        )?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let has_more = metas.len() as i64 > max_bundles;
    let mut bundles = Vec::new();
    for (bundle_seq, meta) in metas.into_iter().take(max_bundles as usize) {
        let rows = load_rows(app, &tx, user, bundle_seq, -1, i64::MAX)?;
        bundles.push(RawBundle {
            bundle_seq,
            source_id: meta.source_id,
            source_bundle_id: meta.source_bundle_id,
            row_count: meta.row_count,
            bundle_hash: meta.bundle_hash,
            rows,
        });
    }
    JsonBody::encode(&RawPullResponse {
        stable_bundle_seq: stable,
        bundles,
        has_more,
    })
}

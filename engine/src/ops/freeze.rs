//! Freezing dirty rows into the single outbox bundle (§7.4 "Freeze"), and reloading
//! a persisted outbox with its integrity checks.

use oversqlite_protocol::{canonical_json, canonical_request_hash, Op, PushRequestRow, SyncKey};
use rusqlite::Connection;
use serde_json::Value;

use crate::client::Ctx;
use crate::codec::{
    local_key_from_key_json, local_key_to_wire, local_payload_to_wire, parse_object,
};
use crate::error::{Result, SyncError};
use crate::state::{self, OutboxBundle, OutboxRow};
use crate::tx::write_tx;

/// A loaded outbox: the singleton, its rows, and the push rows built from the stored
/// wire texts (never recomputed from local data).
pub struct Outbox {
    pub bundle: OutboxBundle,
    pub rows: Vec<OutboxRow>,
    pub push_rows: Vec<PushRequestRow>,
}

struct Candidate {
    table_order: usize,
    op: Op,
    dirty_ordinal: i64,
    schema: String,
    table: String,
    key_json: String,
    base_row_version: i64,
    payload: Option<String>,
}

/// Freezes the dirty rows into a `prepared` outbox in ONE `BEGIN IMMEDIATE`
/// transaction (read and write together, so no capture can slip in between).
/// Returns `None` when nothing is left to upload. If another connection froze an
/// outbox first, that one is returned instead.
pub(crate) fn freeze(ctx: &Ctx) -> Result<Option<Outbox>> {
    write_tx(ctx.conn, |conn| {
        let existing = state::outbox(conn)?;
        if existing.state != "none" {
            return load(conn, ctx).map(Some);
        }
        let att = state::attachment(conn)?;
        let source = state::source_row(conn, &att.current_source_id)?.ok_or_else(|| {
            SyncError::state(
                "the current source has no _sync_source_state row; call oversqlite_open",
            )
        })?;
        let source_bundle_id = source.next_source_bundle_id;

        let mut stmt = conn.prepare(
            "SELECT d.schema_name, d.table_name, d.key_json, d.base_row_version, d.payload, d.dirty_ordinal,
                    CASE WHEN rs.key_json IS NULL THEN 0 ELSE 1 END AS state_exists,
                    COALESCE(rs.deleted, 0) AS state_deleted
             FROM _sync_dirty_rows AS d
             LEFT JOIN _sync_row_state AS rs
               ON rs.schema_name = d.schema_name AND rs.table_name = d.table_name AND rs.key_json = d.key_json
             ORDER BY d.dirty_ordinal, d.table_name, d.key_json",
        )?;
        let read = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)? != 0,
                    r.get::<_, i64>(7)? != 0,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        drop(stmt);

        let mut consumed = Vec::with_capacity(read.len());
        let mut candidates = Vec::new();
        for (schema, table, key_json, base, payload, ordinal, state_exists, state_deleted) in read {
            consumed.push((schema.clone(), table.clone(), key_json.clone()));
            let live_state = state_exists && !state_deleted;
            let op = match &payload {
                None if !live_state => continue, // deleting something the server never had: no-op
                None => Op::Delete,
                Some(_) if live_state => Op::Update,
                Some(_) => Op::Insert,
            };
            candidates.push(Candidate {
                table_order: ctx.table_order(&table),
                op,
                dirty_ordinal: ordinal,
                schema,
                table,
                key_json,
                base_row_version: base,
                payload,
            });
        }
        // Upserts parents-first, then deletes children-first; ties keep capture order.
        candidates.sort_by(|a, b| {
            let a_del = a.op == Op::Delete;
            let b_del = b.op == Op::Delete;
            a_del.cmp(&b_del).then_with(|| {
                let order = if a_del {
                    b.table_order.cmp(&a.table_order)
                } else {
                    a.table_order.cmp(&b.table_order)
                };
                order.then(a.dirty_ordinal.cmp(&b.dirty_ordinal))
            })
        });

        let mut rows = Vec::with_capacity(candidates.len());
        let mut push_rows = Vec::with_capacity(candidates.len());
        for (i, c) in candidates.into_iter().enumerate() {
            let table = ctx.table(&c.table).map_err(|_| {
                SyncError::state(format!(
                    "dirty row for {:?} names a table that is not managed any more",
                    c.table
                ))
            })?;
            let local_key = local_key_from_key_json(table, &c.key_json)?;
            let mut key = SyncKey::new();
            key.insert(
                table.key_json_name.clone(),
                local_key_to_wire(table, &local_key.json_value)?,
            );
            let wire_payload = match (&c.payload, c.op) {
                (Some(p), op) if op != Op::Delete => Some(local_payload_to_wire(
                    table,
                    &parse_object(p, "dirty payload")?,
                )?),
                _ => None,
            };
            let wire_key_json =
                canonical_json(&serde_json::to_value(&key).expect("key serialises"));
            let wire_payload_text = wire_payload
                .as_ref()
                .map(|p| canonical_json(&Value::Object(p.clone())));
            rows.push(OutboxRow {
                source_bundle_id,
                row_ordinal: i as i64,
                schema_name: c.schema.clone(),
                table_name: c.table.clone(),
                key_json: c.key_json.clone(),
                wire_key_json,
                op: c.op.as_str().to_string(),
                base_row_version: c.base_row_version,
                local_payload: if c.op == Op::Delete {
                    None
                } else {
                    c.payload.clone()
                },
                wire_payload: wire_payload_text,
            });
            push_rows.push(PushRequestRow {
                schema: c.schema,
                table: c.table,
                key,
                op: c.op,
                base_row_version: c.base_row_version,
                payload: wire_payload,
            });
        }

        for (schema, table, key_json) in &consumed {
            crate::rows::delete_dirty(conn, schema, table, key_json)?;
        }
        if rows.is_empty() {
            return Ok(None);
        }
        conn.execute("DELETE FROM _sync_outbox_rows", [])?;
        for r in &rows {
            state::insert_outbox_row(conn, r)?;
        }
        let bundle = OutboxBundle {
            state: "prepared".into(),
            source_id: att.current_source_id.clone(),
            source_bundle_id,
            initialization_id: att.pending_initialization_id.clone(),
            canonical_request_hash: canonical_request_hash(&push_rows),
            row_count: rows.len() as i64,
            remote_bundle_hash: String::new(),
            remote_bundle_seq: 0,
        };
        state::write_outbox(conn, &bundle)?;
        Ok(Some(Outbox {
            bundle,
            rows,
            push_rows,
        }))
    })
}

fn push_row_of(r: &OutboxRow) -> Result<PushRequestRow> {
    let key: SyncKey = serde_json::from_str(&r.wire_key_json).map_err(|e| {
        SyncError::state(format!(
            "outbox row {} has an invalid wire_key_json: {e}",
            r.row_ordinal
        ))
    })?;
    let op = Op::from_wire(&r.op).ok_or_else(|| {
        SyncError::state(format!("outbox row {} has op {:?}", r.row_ordinal, r.op))
    })?;
    let payload = match (&r.wire_payload, op) {
        (_, Op::Delete) => None,
        (Some(p), _) => Some(parse_object(p, "outbox wire_payload")?),
        (None, _) => {
            return Err(SyncError::state(format!(
                "outbox row {} ({op}) has no wire_payload",
                r.row_ordinal
            )))
        }
    };
    Ok(PushRequestRow {
        schema: r.schema_name.clone(),
        table: r.table_name.clone(),
        key,
        op,
        base_row_version: r.base_row_version,
        payload,
    })
}

/// Reloads a persisted outbox and verifies it is intact (§7.4).
pub(crate) fn load(conn: &Connection, _ctx: &Ctx) -> Result<Outbox> {
    let bundle = state::outbox(conn)?;
    let rows = state::outbox_rows(conn)?;
    let corrupt =
        |why: &str| SyncError::state(format!("the persisted outbox is inconsistent: {why}"));
    if rows.is_empty() {
        return Err(corrupt("no outbox rows"));
    }
    if rows.len() as i64 != bundle.row_count {
        return Err(corrupt(&format!(
            "{} rows stored, row_count {}",
            rows.len(),
            bundle.row_count
        )));
    }
    if rows
        .iter()
        .any(|r| r.source_bundle_id != bundle.source_bundle_id)
    {
        return Err(corrupt("rows carry another source_bundle_id"));
    }
    if bundle.state == "committed_remote"
        && (bundle.remote_bundle_seq <= 0 || bundle.remote_bundle_hash.is_empty())
    {
        return Err(corrupt("committed_remote without remote bundle metadata"));
    }
    let push_rows = rows.iter().map(push_row_of).collect::<Result<Vec<_>>>()?;
    if canonical_request_hash(&push_rows) != bundle.canonical_request_hash {
        return Err(corrupt(
            "canonical_request_hash does not match the stored rows",
        ));
    }
    Ok(Outbox {
        bundle,
        rows,
        push_rows,
    })
}

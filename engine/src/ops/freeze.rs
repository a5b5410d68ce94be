//! Freezing dirty rows into the single outbox bundle (§7.4 "Freeze"), reloading a
//! persisted outbox with its integrity checks, and reading it back page by page.
//!
//! Memory stays bounded by one row (freeze, verification) or one page (upload,
//! committed-rows comparison, replay): the rows live in the outbox rows only and
//! are streamed from there, so a 100k-row bundle never exists in memory as a whole.

use oversqlite_protocol::canonical::write_string;
use oversqlite_protocol::{canonical_json, Op, Payload, PushRequestRow, RequestHasher, SyncKey};
use rusqlite::Connection;
use serde_json::Value;

use crate::error::{Result, SyncError};
use crate::local::schema::ManagedTable;
use crate::local::state::OutboxState;
use crate::local::state::{self, OutboxBundle, OutboxRow};
use crate::local::tx::write_tx;
use crate::ops::bundle_cut::CutPoints;
use crate::sync_client::Ctx;
use crate::values::codec::{
    local_key_from_key_json, local_key_to_wire, local_payload_to_wire, parse_object,
};
use crate::wording::counted;
use oversqlite_core::store::dirty_rows::{self, FreezeRead};
use oversqlite_core::store::outbox::{self, RowWriter};
use oversqlite_core::store::source;

/// The bundle order of the dirty rows not yet frozen, kept across the freezes of one
/// push (see [`freeze`]).
pub(crate) struct FreezeOrder {
    rowids: std::collections::VecDeque<i64>,
    /// `PRAGMA data_version` when the order was taken.
    data_version: i64,
}

fn data_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
}

/// A fully loaded outbox: the singleton, its rows, and the push rows built from them.
/// Only the conflict path needs every row at once (it requeues the whole bundle and
/// looks the conflicting row up by key); the normal push streams instead.
pub struct Outbox {
    pub bundle: OutboxBundle,
    pub rows: Vec<OutboxRow>,
    pub push_rows: Vec<PushRequestRow>,
}

/// Up to `limit` outbox rows of `source_bundle_id` after `after_ordinal` (`None`:
/// from the first), in `row_ordinal` order (keyset paging, see the store).
pub(crate) fn outbox_page(
    conn: &Connection,
    source_bundle_id: i64,
    after_ordinal: Option<i64>,
    limit: usize,
) -> Result<Vec<OutboxRow>> {
    Ok(outbox::page(conn, source_bundle_id, after_ordinal, limit)?)
}

/// Freezes dirty rows into a `prepared` outbox in ONE `BEGIN IMMEDIATE` transaction
/// (read and write together, so no capture can slip in between). Each row is
/// converted, inserted into the outbox rows and fed to the request hasher as it is
/// read. Returns `None` when nothing is left to upload. If another connection froze an
/// outbox first, that one is verified and returned instead.
///
/// At most about [`Ctx::bundle_rows_cap`] rows go into one bundle: the rest stay dirty
/// for the next bundle, so the write lock is held for a bounded time however large the
/// backlog (issue #16). The bundle ends at the first row past the cap where
/// [`CutPoints`] allows it; inside a foreign-key cycle it runs on.
///
/// `order` carries the bundle order of the dirty rows from one freeze of a push to the
/// next: sorting a large backlog means reading all of it, which per bundle made a
/// 100,000-row push 18% slower. It is kept only while `PRAGMA data_version` says no
/// other connection committed (then the remaining dirty rows are exactly the rows not
/// yet frozen, in the same order); the push drops it after anything of its own that
/// puts rows back (a conflict, a refusal).
pub(crate) fn freeze(ctx: &Ctx, order: &mut Option<FreezeOrder>) -> Result<Option<OutboxBundle>> {
    let cap = ctx.bundle_rows_cap();
    let cuts = CutPoints::new(&ctx.config.tables);
    write_tx(ctx.conn, |conn| {
        let existing = state::outbox(conn)?;
        if existing.state != OutboxState::None {
            return verify(conn).map(Some);
        }
        let att = state::attachment(conn)?;
        let source = state::source_row(conn, &att.current_source_id)?
            .ok_or_else(|| SyncError::state(source::MISSING_CURRENT_SOURCE))?;
        let source_bundle_id = source.next_source_bundle_id;

        let data_version = data_version(conn)?;
        let reuse = cap.is_some()
            && order
                .as_ref()
                .is_some_and(|o| o.data_version == data_version && !o.rowids.is_empty());
        if !reuse {
            let tables: Vec<(String, usize)> = ctx
                .config
                .tables
                .iter()
                .map(|t| (t.name.clone(), ctx.table_order(&t.name)))
                .collect();
            *order = Some(FreezeOrder {
                rowids: dirty_rows::bundle_order(conn, &tables)?.into(),
                data_version,
            });
        }
        let rowids = &mut order.as_mut().expect("set above").rowids;
        let mut hasher = RequestHasher::new();
        let mut batch = RowWriter::default();
        let mut count = 0i64;
        // The dirty rows read so far, deleted below unless every dirty row was read.
        let mut consumed: Vec<i64> = Vec::new();
        let mut last_table = String::new();
        let mut cut_short = false;
        // Rows are read a bundle at a time: the cap and the row after it usually end
        // the bundle; a cycle running on past the cap reads further batches.
        let step = cap.map_or(usize::MAX, |c| c as usize + 1);
        while !cut_short && !rowids.is_empty() {
            let take = step.min(rowids.len());
            let slice: Vec<i64> = rowids.iter().take(take).copied().collect();
            let done = dirty_rows::read_in_order(conn, &slice, |d| -> Result<bool> {
                if cap.is_some_and(|cap| count >= cap)
                    && cuts.may_cut_between(&last_table, &d.table)
                {
                    cut_short = true;
                    return Ok(false);
                }
                consumed.push(d.rowid);
                let op = match (&d.payload, d.live_state) {
                    (None, false) => return Ok(true), // deleting something the server never had: no-op
                    (None, true) => Op::Delete,
                    (Some(_), true) => Op::Update,
                    (Some(_), false) => Op::Insert,
                };
                if count == 0 {
                    // Left-overs of an earlier bundle go only when a new one replaces them.
                    outbox::delete_rows(conn)?;
                }
                last_table.clone_from(&d.table);
                let row = freeze_row(ctx, &mut hasher, source_bundle_id, count, op, d)?;
                batch.push(conn, row)?;
                count += 1;
                Ok(true)
            })?;
            rowids.drain(..done);
        }
        batch.flush(conn)?;
        if cut_short || reuse {
            dirty_rows::delete_rowids(conn, &consumed)?;
        } else {
            // The order was taken inside this write transaction and read to its end, so
            // every dirty row is consumed (uploaded or dropped as a no-op delete).
            dirty_rows::delete_all(conn)?;
        }
        if count == 0 {
            return Ok(None);
        }
        let bundle = OutboxBundle {
            state: OutboxState::Prepared,
            source_id: att.current_source_id.clone(),
            source_bundle_id,
            initialization_id: att.pending_initialization_id.clone(),
            canonical_request_hash: hasher.finish(),
            row_count: count,
            remote_bundle_hash: String::new(),
            remote_bundle_seq: 0,
        };
        state::write_outbox(conn, &bundle)?;
        Ok(Some(bundle))
    })
}

/// Converts one dirty row to its outbox row and feeds the hasher.
fn freeze_row(
    ctx: &Ctx,
    hasher: &mut RequestHasher,
    source_bundle_id: i64,
    ordinal: i64,
    op: Op,
    d: FreezeRead,
) -> Result<OutboxRow> {
    let table = ctx.table(&d.table).map_err(|_| {
        SyncError::state(format!(
            "dirty row for {:?} names a table that is not managed any more",
            d.table
        ))
    })?;
    let local_key = local_key_from_key_json(table, &d.key_json)?;
    let mut key = SyncKey::new();
    key.insert(
        table.key_json_name.clone(),
        local_key_to_wire(table, &local_key.json_value)?,
    );
    let local_payload = if op == Op::Delete { None } else { d.payload };
    let wire_payload = match &local_payload {
        Some(p) => Some(local_payload_to_wire(
            table,
            &parse_object(p, "dirty payload")?,
        )?),
        None => None,
    };
    // The stored wire text is the canonical form, so it is hashed as it is rather
    // than formatted a second time.
    let wire_payload = wire_payload.map(payload_text);
    hasher.push_parts_with_canonical_payload(
        &d.schema,
        &d.table,
        &key,
        op,
        d.base_row_version,
        wire_payload.as_deref(),
    );
    Ok(OutboxRow {
        source_bundle_id,
        row_ordinal: ordinal,
        wire_key_json: wire_key_text(&key),
        op: op.as_str().to_string(),
        base_row_version: d.base_row_version,
        wire_payload,
        local_payload,
        schema_name: d.schema,
        table_name: d.table,
        key_json: d.key_json,
    })
}

/// Canonical text of a wire key (one string member), as `canonical_json` writes it.
fn wire_key_text(key: &SyncKey) -> String {
    let mut out = String::with_capacity(64);
    out.push('{');
    for (i, (k, v)) in key.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(&mut out, k);
        out.push(':');
        write_string(&mut out, v);
    }
    out.push('}');
    out
}

/// Canonical text of a wire payload, without copying the map.
fn payload_text(payload: Payload) -> String {
    canonical_json(&Value::Object(payload))
}

/// The wire payload to upload for an outbox row: converted from the stored local
/// payload, exactly as the freeze converted it (integers beyond 2^53 stay exact, which
/// the canonical `wire_payload` text cannot promise); the stored wire text is the
/// fallback for rows that carry no local payload.
pub(crate) fn upload_payload(table: &ManagedTable, r: &OutboxRow) -> Result<Option<Payload>> {
    let op = row_op(r)?;
    if op == Op::Delete {
        return Ok(None);
    }
    match (&r.local_payload, &r.wire_payload) {
        (Some(local), _) => Ok(Some(local_payload_to_wire(
            table,
            &parse_object(local, "outbox local_payload")?,
        )?)),
        (None, Some(wire)) => Ok(Some(parse_object(wire, "outbox wire_payload")?)),
        (None, None) => Err(SyncError::state(format!(
            "outbox row {} ({op}) has no wire_payload",
            r.row_ordinal
        ))),
    }
}

pub(crate) fn row_op(r: &OutboxRow) -> Result<Op> {
    Op::from_wire(&r.op)
        .ok_or_else(|| SyncError::state(format!("outbox row {} has op {:?}", r.row_ordinal, r.op)))
}

pub(crate) fn wire_key_of(r: &OutboxRow) -> Result<SyncKey> {
    serde_json::from_str(&r.wire_key_json).map_err(|e| {
        SyncError::state(format!(
            "outbox row {} has an invalid wire_key_json: {e}",
            r.row_ordinal
        ))
    })
}

/// The push row as stored: key and payload from the persisted wire texts (never
/// recomputed from local data), which is what `canonical_request_hash` covers.
fn stored_push_row(r: &OutboxRow) -> Result<PushRequestRow> {
    let key = wire_key_of(r)?;
    let op = row_op(r)?;
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

/// The push row to upload: the stored key, the payload from [`upload_payload`].
pub(crate) fn upload_row(ctx: &Ctx, r: &OutboxRow) -> Result<PushRequestRow> {
    let op = row_op(r)?;
    let payload = match op {
        Op::Delete => None,
        _ => match ctx.config.table(&r.table_name) {
            Some(table) => upload_payload(table, r)?,
            // Not managed any more: upload what was frozen; the server decides.
            None => stored_push_row(r)?.payload,
        },
    };
    Ok(PushRequestRow {
        schema: r.schema_name.clone(),
        table: r.table_name.clone(),
        key: wire_key_of(r)?,
        op,
        base_row_version: r.base_row_version,
        payload,
    })
}

/// Whether a canonical JSON text may hold an integer the canonical form rounded: any
/// run of 16+ digits (2^53 has 16). Strings with long digit runs are caught too, which
/// only costs the exact (slower) path.
pub(crate) fn may_be_rounded(text: &str) -> bool {
    let mut run = 0;
    for b in text.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 16 {
            return true;
        }
    }
    false
}

/// Appends one upload row (a `PushRequestRow` object) to a chunk body, straight from
/// the stored texts: the canonical wire key and payload are valid JSON for exactly the
/// values [`upload_row`] would serialise, except where rounding is possible, and there
/// the payload is converted from the local payload instead. A DELETE has no payload.
pub(crate) fn write_upload_row(ctx: &Ctx, r: &OutboxRow, out: &mut String) -> Result<()> {
    let op = row_op(r)?;
    out.push_str("{\"schema\":");
    write_string(out, &r.schema_name);
    out.push_str(",\"table\":");
    write_string(out, &r.table_name);
    out.push_str(",\"key\":");
    out.push_str(&wire_key_text(&wire_key_of(r)?));
    out.push_str(",\"op\":\"");
    out.push_str(op.as_str());
    out.push_str("\",\"base_row_version\":");
    out.push_str(&r.base_row_version.to_string());
    if op != Op::Delete {
        out.push_str(",\"payload\":");
        match r.wire_payload.as_deref() {
            Some(text) if !may_be_rounded(text) => out.push_str(text),
            _ => {
                let payload = upload_row(ctx, r)?.payload;
                out.push_str(&serde_json::to_string(&payload).expect("a JSON map serialises"));
            }
        }
    }
    out.push('}');
    Ok(())
}

fn corrupt(why: &str) -> SyncError {
    SyncError::state(format!("the persisted outbox is inconsistent: {why}"))
}

/// Verifies a persisted outbox (§7.4) in one streaming pass over its rows: count,
/// `source_bundle_id`, and `canonical_request_hash` recomputed from the stored wire
/// texts. Returns the singleton.
pub(crate) fn verify(conn: &Connection) -> Result<OutboxBundle> {
    let bundle = state::outbox(conn)?;
    let mut hasher = RequestHasher::new();
    let mut count = 0i64;
    let mut foreign_bundle = false;
    outbox::for_each_row(conn, |row| -> Result<()> {
        foreign_bundle |= row.source_bundle_id != bundle.source_bundle_id;
        hasher.push(&stored_push_row(&row)?);
        count += 1;
        Ok(())
    })?;
    if count == 0 {
        return Err(corrupt("no outbox rows"));
    }
    if count != bundle.row_count {
        return Err(corrupt(&format!(
            "{} stored, row_count {}",
            counted(count, "row", "rows"),
            bundle.row_count
        )));
    }
    if foreign_bundle {
        return Err(corrupt("rows carry another source_bundle_id"));
    }
    if bundle.state == OutboxState::CommittedRemote
        && (bundle.remote_bundle_seq <= 0 || bundle.remote_bundle_hash.is_empty())
    {
        return Err(corrupt("committed_remote without remote bundle metadata"));
    }
    if hasher.finish() != bundle.canonical_request_hash {
        return Err(corrupt(
            "canonical_request_hash does not match the stored rows",
        ));
    }
    Ok(bundle)
}

/// Verifies and loads the whole outbox (conflict resolution only).
pub(crate) fn load_full(conn: &Connection) -> Result<Outbox> {
    let bundle = verify(conn)?;
    let rows = state::outbox_rows(conn)?;
    let push_rows = rows
        .iter()
        .map(stored_push_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Outbox {
        bundle,
        rows,
        push_rows,
    })
}

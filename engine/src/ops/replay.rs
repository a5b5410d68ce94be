//! Committed replay (§7.4 "Replay"): apply the authoritative committed rows while
//! preserving local intent captured after the freeze, in one apply-mode transaction.
//!
//! The rows are the device's own, just verified against the outbox, so for nearly
//! every row the plan is "accept" with nothing captured since the freeze. The replay
//! therefore runs in two streaming passes over the outbox rows:
//! 1. plan: one set-based query per table finds the rows that are NOT that easy case
//!    (a dirty row exists, the live row is gone, differs from the upload, or — for a
//!    DELETE — came back); only those get the full per-row plan, and only they are kept
//!    in memory;
//! 2. write: every row in bundle order — accepted rows write the committed values (read
//!    from the outbox, or the server's own payload where it was not exactly the
//!    upload), preserved rows requeue their intent rebased on the committed version.
//!
//! the row state gets one set-based upsert when the bundle's rows share one
//! `row_version` (the protocol says they all carry the bundle's seq), else one per row.

use std::collections::{BTreeMap, BTreeSet};

use oversqlite_protocol::Op;
use rusqlite::Connection;

use crate::error::{Result, SyncError};
use crate::local::schema::{ColumnKind, KeyKind, ManagedTable};
use crate::local::state::{self, OutboxBundle, OutboxRow};
use crate::local::tx::apply_tx;
use crate::ops::committed::CommittedRows;
use crate::ops::freeze::{self, row_op};
use crate::remote::validate::CommittedMeta;
use crate::report::ChangedTables;
use crate::sync_client::Ctx;
use crate::values::codec::{
    local_key_from_key_json, parse_object, payloads_equivalent, wire_payload_to_row, LocalKey,
    PayloadForm,
};
use crate::values::rows::{self};
use oversqlite_core::store::{attachment, outbox, row_state, source};

/// Rows read per step of the plan pass's per-row fallback.
const PAGE_ROWS: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
enum Plan {
    /// Write the committed row; `had_dirty` when a dirty row must also be dropped.
    Accept { had_dirty: bool },
    /// Keep the local row; requeue `(op, payload)` rebased on the committed version.
    Preserve(Op, Option<String>),
}

/// The easy case, implied for every row the plan pass does not list.
const ACCEPT_CLEAN: Plan = Plan::Accept { had_dirty: false };

fn equivalent_local(ctx: &Ctx, table: &str, a: &str, b: &str) -> Result<bool> {
    let t = ctx.table(table)?;
    let (a, b) = (
        parse_object(a, "local payload")?,
        parse_object(b, "local payload")?,
    );
    Ok(payloads_equivalent(
        t,
        &a,
        PayloadForm::Local,
        &b,
        PayloadForm::Local,
        false,
    ))
}

/// The full plan of one row (§7.4): what was captured since the freeze decides.
fn plan_row(ctx: &Ctx, conn: &Connection, row: &OutboxRow) -> Result<Plan> {
    let table = ctx.table(&row.table_name)?;
    let key = local_key_from_key_json(table, &row.key_json)?;
    let live = rows::live_row_json(conn, table, &key)?;
    let dirty = rows::dirty_row(conn, &row.schema_name, &row.table_name, &row.key_json)?;
    let had_dirty = dirty.is_some();
    if row.op == "DELETE" {
        return Ok(match live {
            Some(payload) => Plan::Preserve(Op::Insert, Some(payload)),
            None => Plan::Accept { had_dirty },
        });
    }
    let Some(live) = live else {
        return Ok(Plan::Preserve(Op::Delete, None));
    };
    let uploaded = row.local_payload.as_deref().unwrap_or("{}");
    if let Some(d) = dirty {
        let same = d.op == row.op
            && matches!(&d.payload, Some(p) if equivalent_local(ctx, &row.table_name, p, uploaded)?);
        if !same {
            return Ok(Plan::Preserve(Op::Update, Some(live)));
        }
    }
    if !equivalent_local(ctx, &row.table_name, &live, uploaded)? {
        return Ok(Plan::Preserve(Op::Update, Some(live)));
    }
    Ok(Plan::Accept { had_dirty })
}

/// JSON path of a text key member, when it can be written without escaping.
fn key_path(table: &ManagedTable) -> Option<String> {
    let name = &table.key_json_name;
    let plain = !name.is_empty() && !name.contains(['"', '\\']);
    (table.key_kind == KeyKind::Text && plain).then(|| format!("$.\"{name}\""))
}

/// Ordinals of `table`'s outbox rows that are not the easy case: a dirty row exists,
/// or the live row is absent / not byte-identical to the uploaded local payload (a
/// DELETE: present). Byte-identical texts come from the same `json_object` expression
/// as the capture triggers, so they are equivalent in the typed sense the per-row
/// plan uses; every row listed here gets that per-row plan.
fn unusual_rows(
    conn: &Connection,
    table: &ManagedTable,
    path: &str,
    source_bundle_id: i64,
) -> Result<Vec<i64>> {
    Ok(outbox::unusual_ordinals(
        conn,
        table,
        path,
        source_bundle_id,
    )?)
}

fn outbox_row_at(conn: &Connection, source_bundle_id: i64, ordinal: i64) -> Result<OutboxRow> {
    let page = freeze::outbox_page(conn, source_bundle_id, Some(ordinal - 1), 1)?;
    page.into_iter()
        .next()
        .filter(|r| r.row_ordinal == ordinal)
        .ok_or_else(|| SyncError::state(format!("outbox row {ordinal} vanished during replay")))
}

/// Result of the plan pass.
struct Plans {
    /// Plans of the rows that are not [`ACCEPT_CLEAN`], by `row_ordinal`.
    unusual: BTreeMap<i64, Plan>,
    /// Every table the bundle touches.
    tables: Vec<String>,
    /// Tables planned set-based that write back exactly what they hold
    /// ([`round_trips_exactly`]): their clean accepted rows need no write at all.
    exact: BTreeSet<String>,
}

impl Plans {
    fn all_exact(&self) -> bool {
        self.tables.iter().all(|t| self.exact.contains(t))
    }
}

/// SQLite's column affinity of a declared type (datatype3 §3.1, first rule wins).
fn affinity(declared: &str) -> char {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        'I'
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        'T'
    } else if t.is_empty() || t.contains("BLOB") {
        'B'
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        'R'
    } else {
        'N'
    }
}

/// Whether local → wire → local is the identity for every value this table can hold
/// once its rows froze: TEXT-affinity text columns hold only text (`json_object`
/// refuses BLOBs) and INTEGER-affinity integer columns only integers (anything else
/// fails the freeze's conversion). For such a table, an accepted row whose live
/// `json_object` text equals the uploaded payload and whose committed payload is
/// exactly the uploaded one already holds the committed values: rewriting it would
/// store the same values again. REAL (`json_object` prints 15 digits), BLOB and
/// NUMERIC/untyped columns may not round-trip and are always rewritten.
fn round_trips_exactly(table: &ManagedTable) -> bool {
    table.columns.iter().all(|c| {
        matches!(
            (c.kind, affinity(&c.declared_type)),
            (ColumnKind::Text, 'T') | (ColumnKind::Integer, 'I')
        )
    })
}

/// Pass 1: the plan of every row that is not [`ACCEPT_CLEAN`]. Computed for all rows
/// before anything is written, as the per-row plan always was.
fn plan_all(ctx: &Ctx, conn: &Connection, outbox: &OutboxBundle) -> Result<Plans> {
    let sbid = outbox.source_bundle_id;
    let mut unusual = BTreeMap::new();
    let tables = outbox::tables(conn, sbid)?;
    let mut exact = BTreeSet::new();
    for name in &tables {
        let fast = ctx
            .config
            .table(name)
            .and_then(|t| key_path(t).map(|p| (t, p)));
        if let Some((table, path)) = fast {
            if round_trips_exactly(table) {
                exact.insert(name.clone());
            }
            for ordinal in unusual_rows(conn, table, &path, sbid)? {
                let row = outbox_row_at(conn, sbid, ordinal)?;
                unusual.insert(ordinal, plan_row(ctx, conn, &row)?);
            }
            continue;
        }
        // BLOB keys (or unusual key names): the per-row plan for every row.
        let mut after = None;
        loop {
            let page = freeze::outbox_page(conn, sbid, after, PAGE_ROWS)?;
            let Some(last) = page.last() else { break };
            after = Some(last.row_ordinal);
            for row in page.iter().filter(|r| &r.table_name == name) {
                let plan = plan_row(ctx, conn, row)?;
                if plan != ACCEPT_CLEAN {
                    unusual.insert(row.row_ordinal, plan);
                }
            }
        }
    }
    Ok(Plans {
        unusual,
        tables,
        exact,
    })
}

/// Where the replay of one row takes its committed values from.
struct Source<'a> {
    row: &'a OutboxRow,
    /// The server's payload when it was not exactly the uploaded one.
    replaced: Option<&'a String>,
    version: i64,
}

/// Writes an accepted row: the committed values (or the deletion) into the app table.
fn accept(conn: &Connection, table: &ManagedTable, key: &LocalKey, src: &Source) -> Result<()> {
    // Statement texts built once per table (rows.rs cache), not once per row.
    let sql = rows::table_sql(table);
    let row = src.row;
    if row_op(row)? == Op::Delete {
        conn.prepare_cached(&sql.delete)?.execute([&key.sql])?;
        return Ok(());
    }
    let text = match (src.replaced, &row.wire_payload) {
        (Some(committed), _) => committed,
        (None, Some(uploaded)) => uploaded,
        (None, None) => {
            return Err(SyncError::protocol(format!(
                "committed {} row for {} has no payload",
                row.op, row.table_name
            )))
        }
    };
    let payload = serde_json::from_str(text)
        .map_err(|e| SyncError::protocol(format!("committed payload is not an object: {e}")))?;
    rows::upsert_row(conn, table, wire_payload_to_row(table, &payload)?)
}

/// Writes one row according to its plan.
fn write_row(
    ctx: &Ctx,
    conn: &Connection,
    plans: &Plans,
    src: &Source,
    per_row_state: bool,
) -> Result<()> {
    let schema = &ctx.config.schema;
    let row = src.row;
    let plan = plans.unusual.get(&row.row_ordinal).unwrap_or(&ACCEPT_CLEAN);
    let table = ctx.table(&row.table_name)?;
    let deleted = row_op(row)? == Op::Delete;
    if per_row_state {
        rows::upsert_row_state(
            conn,
            schema,
            &table.name,
            &row.key_json,
            src.version,
            deleted,
        )?;
    }
    match plan {
        Plan::Accept { had_dirty } => {
            // A clean accepted row already holds the committed state: a DELETE found no
            // live row, an upsert of an exact table holds the very same values.
            // (Only rows the set-based plan passed: their live text is the upload's.)
            let planned_clean = !plans.unusual.contains_key(&row.row_ordinal);
            let noop = *plan == ACCEPT_CLEAN
                && src.replaced.is_none()
                && (deleted || (planned_clean && plans.exact.contains(&table.name)));
            if !noop {
                let key = local_key_from_key_json(table, &row.key_json)?;
                accept(conn, table, &key, src)?;
            }
            if *had_dirty {
                rows::delete_dirty(conn, schema, &table.name, &row.key_json)?;
            }
        }
        Plan::Preserve(op, payload) => {
            rows::upsert_dirty(
                conn,
                schema,
                &table.name,
                &row.key_json,
                op.as_str(),
                src.version,
                payload.as_deref(),
            )?;
        }
    }
    Ok(())
}

/// Pass 2: writes in bundle order. With one `row_version` for the whole bundle and
/// only exactly round-tripping tables, just the unusual and server-changed rows need
/// a write (`sparse`); otherwise every row is visited.
fn write_all(
    ctx: &Ctx,
    conn: &Connection,
    outbox: &OutboxBundle,
    committed: &CommittedRows,
    plans: &Plans,
    version: Option<i64>,
) -> Result<()> {
    let sbid = outbox.source_bundle_id;
    if let (Some(version), true) = (version, plans.all_exact()) {
        let needed: BTreeSet<i64> = plans
            .unusual
            .keys()
            .chain(committed.replaced.keys())
            .copied()
            .collect();
        for ordinal in needed {
            let row = outbox_row_at(conn, sbid, ordinal)?;
            let src = Source {
                row: &row,
                replaced: committed.replaced.get(&ordinal),
                version,
            };
            write_row(ctx, conn, plans, &src, false)?;
        }
        return Ok(());
    }
    let per_row_state = version.is_none();
    let mut after = None;
    let mut position = 0usize;
    loop {
        let page = freeze::outbox_page(conn, sbid, after, PAGE_ROWS)?;
        let Some(last) = page.last() else { break };
        after = Some(last.row_ordinal);
        for row in &page {
            let row_version = *committed.versions.get(position).ok_or_else(|| {
                SyncError::state("the outbox holds more rows than the committed bundle")
            })?;
            position += 1;
            let src = Source {
                row,
                replaced: committed.replaced.get(&row.row_ordinal),
                version: row_version,
            };
            write_row(ctx, conn, plans, &src, per_row_state)?;
        }
    }
    if position != committed.versions.len() {
        return Err(SyncError::state(
            "the outbox holds fewer rows than the committed bundle",
        ));
    }
    Ok(())
}

/// The one `row_version` every committed row carries, if they all carry the same.
fn uniform_version(versions: &[i64]) -> Option<i64> {
    let first = *versions.first()?;
    versions.iter().all(|v| *v == first).then_some(first)
}

/// Records the committed version of every outbox row in one statement (accepted and
/// preserved rows alike get the committed version and the committed op's tombstone).
fn upsert_row_states(conn: &Connection, schema: &str, sbid: i64, version: i64) -> Result<()> {
    Ok(row_state::upsert_from_outbox(conn, schema, sbid, version)?)
}

/// After the writes, exactly the preserved rows must have a dirty row.
fn check_dirty_state(conn: &Connection, sbid: i64, plans: &BTreeMap<i64, Plan>) -> Result<()> {
    let preserved: BTreeSet<i64> = plans
        .iter()
        .filter(|(_, p)| matches!(p, Plan::Preserve(..)))
        .map(|(o, _)| *o)
        .collect();
    let dirty: BTreeSet<i64> = outbox::ordinals_with_dirty_rows(conn, sbid)?
        .into_iter()
        .collect();
    if let Some(ordinal) = preserved.symmetric_difference(&dirty).next() {
        let key_json = outbox::key_json_at(conn, sbid, *ordinal)?;
        return Err(SyncError::state(format!(
            "committed replay left inconsistent dirty state for {key_json}"
        )));
    }
    Ok(())
}

/// Replays the committed bundle (already verified against the outbox, same order).
pub(crate) fn replay_committed(
    ctx: &Ctx,
    outbox: &OutboxBundle,
    committed: &CommittedRows,
    meta: &CommittedMeta,
    changed: &mut ChangedTables,
) -> Result<()> {
    let sbid = outbox.source_bundle_id;
    let touched = apply_tx(ctx.conn, |conn| {
        let plans = plan_all(ctx, conn, outbox)?;
        let version = uniform_version(&committed.versions);
        write_all(ctx, conn, outbox, committed, &plans, version)?;
        if let Some(v) = version {
            upsert_row_states(conn, &ctx.config.schema, sbid, v)?;
        }
        check_dirty_state(conn, sbid, &plans.unusual)?;
        source::raise_next_bundle_id(conn, &outbox.source_id, outbox.source_bundle_id + 1)?;
        // Only a contiguous bundle may move the checkpoint: other sources' bundles in
        // a gap have not been pulled yet (§7.4 step 4).
        attachment::advance_checkpoint_if_next(conn, meta.bundle_seq)?;
        // The seed bundle is committed: the lease has done its job (§7.3).
        attachment::clear_pending_initialization(conn)?;
        state::clear_outbox(conn)?;
        oversqlite_core::fault::point("push.mid_replay");
        Ok(plans.tables)
    })?;
    changed.extend(touched);
    Ok(())
}

//! Applying remote bundles beside unsent local changes, and settling the foreign-key
//! races that meet there.
//!
//! A pull used to refuse to run while any local change was unsent (§7.6), so an app
//! that kept writing could fail every sync (issue #16). In this mode a bundle is
//! applied next to the local changes instead:
//!
//! * **Shadowing.** A remote row for a key with an unsent local change does not touch
//!   the application row; only the row state advances. The local change keeps its
//!   base version, so its push conflicts with the newer server row and the table's
//!   resolver decides, exactly as if the pull had come after the push.
//! * **Foreign-key races** (issue #15) appear when a remote row and an unsent local
//!   change disagree about a parent: a remote deletion of a parent that a local child
//!   references, or a remote child of a parent whose deletion is pending locally.
//!   Each is put to the child's or the parent's resolver with a [`ForeignKeyContext`]
//!   and settled inside the bundle's transaction, or, when the server's row of a key
//!   is needed, by rolling the bundle back and asking the caller to restore that row
//!   first ([`Flow::Restore`]).
//!
//! The sets below are read once per bundle transaction, inside it: capture cannot add
//! a dirty row while the transaction holds the write lock.

use std::collections::{HashMap, HashSet};

use oversqlite_protocol::{BundleRow, Op, Payload, SyncKey};
use rusqlite::{params, OptionalExtension};
use serde_json::{Map, Value};

use crate::conflict::{ConflictContext, ForeignKeyContext, ForeignKeyRace, Resolution};
use crate::error::{ErrorKind, Result, SyncError};
use crate::local::schema::{ColumnKind, ManagedTable};
use crate::report::{ChangedTables, ForeignKeyAction, ForeignKeyResolution};
use crate::sync_client::Ctx;
use crate::values::codec::{
    local_key_from_key_json, local_key_to_wire, local_payload_to_wire, parse_object,
    wire_payload_to_row, LocalKey,
};
use crate::values::rows;
use oversqlite_core::store::{dirty_rows, row_state};
use oversqlite_protocol::values::{hex_encode, parse_canonical_uuid};

/// `(table, key_json)`.
pub(crate) type RowId = (String, String);

/// An unsent local INSERT/UPDATE that references a parent.
#[derive(Debug, Clone)]
struct ChildRef {
    child: RowId,
    /// The referencing column's JSON name.
    column: String,
}

/// The unsent local changes a bundle is applied beside.
pub(crate) struct LocalIntent {
    /// Every key with a dirty row: remote rows for these are shadowed.
    dirty: HashSet<RowId>,
    /// Keys whose local deletion is unsent.
    deleted: HashSet<RowId>,
    /// Unsent local children by the parent they reference.
    children: HashMap<RowId, Vec<ChildRef>>,
}

/// What the caller must do after a row.
pub(crate) enum Flow {
    Continue,
    /// Roll the bundle back, restore a key from the server's row, then pull again.
    Restore(PendingRestore),
}

/// A local row that must take the server's row before the bundle can apply.
#[derive(Debug, Clone)]
pub(crate) struct PendingRestore {
    /// The row to restore (the parent for `ParentRestored`, the child for `Reverted`).
    pub id: RowId,
    /// What the report will say once it is restored.
    pub report: ForeignKeyResolution,
}

/// A settled race, named by its child and parent rows, with the deciding policy
/// (that of the table whose resolver was asked).
pub(crate) fn race(
    ctx: &Ctx,
    child: (&str, &SyncKey),
    action: ForeignKeyAction,
    parent: (&str, &SyncKey),
    asked: &str,
) -> ForeignKeyResolution {
    ForeignKeyResolution {
        table: child.0.to_string(),
        key: key_value(child.1),
        action,
        parent_table: parent.0.to_string(),
        parent_key: key_value(parent.1),
        policy: ctx.resolver.policy(asked),
    }
}

/// The parent's `key_json`, built by SQLite like the capture triggers build it.
fn key_json_of(conn: &rusqlite::Connection, parent: &ManagedTable, value: &str) -> Result<String> {
    Ok(conn
        .prepare_cached("SELECT json_object(?1, ?2)")?
        .query_row(params![parent.key_json_name, value], |r| r.get(0))?)
}

impl LocalIntent {
    /// The local intent, or `None` when nothing is pending (the fast path).
    pub(crate) fn load(ctx: &Ctx) -> Result<Option<LocalIntent>> {
        let conn = ctx.conn;
        let schema = &ctx.config.schema;
        let mut dirty = HashSet::new();
        let mut deleted = HashSet::new();
        for (table, key_json, is_delete) in dirty_rows::keys(conn, schema)? {
            let id: RowId = (table, key_json);
            if is_delete {
                deleted.insert(id.clone());
            }
            dirty.insert(id);
        }
        if dirty.is_empty() {
            return Ok(None);
        }
        let mut children: HashMap<RowId, Vec<ChildRef>> = HashMap::new();
        for table in &ctx.config.tables {
            for fk in &table.foreign_keys {
                let Some(column) = table.column(&fk.from_column) else {
                    continue;
                };
                let Ok(parent) = ctx.table(&fk.parent_table) else {
                    continue;
                };
                let path = format!("$.{}", column.json_name);
                let refs = dirty_rows::parent_refs(
                    conn,
                    schema,
                    &table.name,
                    &path,
                    &parent.key_json_name,
                )?;
                for (child, parent_key) in refs {
                    children
                        .entry((parent.name.clone(), parent_key))
                        .or_default()
                        .push(ChildRef {
                            child: (table.name.clone(), child),
                            column: column.json_name.clone(),
                        });
                }
            }
        }
        Ok(Some(LocalIntent {
            dirty,
            deleted,
            children,
        }))
    }
}

/// Applies one validated bundle row beside the local intent.
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply_row_beside(
    ctx: &Ctx,
    intent: &mut LocalIntent,
    row: &BundleRow,
    table: &ManagedTable,
    key: &LocalKey,
    values: Option<crate::values::codec::RowValues>,
    updated_at: &str,
    touched: &mut ChangedTables,
    settled: &mut Vec<ForeignKeyResolution>,
    newer: &NewerChildren,
) -> Result<Flow> {
    let conn = ctx.conn;
    let schema = &ctx.config.schema;
    let key_json = rows::key_json(conn, table, key)?;
    let id: RowId = (table.name.clone(), key_json);
    let deleted = values.is_none();
    if intent.dirty.contains(&id) {
        // Shadowed: the unsent local change stays; its push meets the newer version.
        rows::advance_row_state(
            conn,
            schema,
            table,
            key,
            row.row_version,
            deleted,
            updated_at,
        )?;
        return Ok(Flow::Continue);
    }
    if let Some(values) = &values {
        if let Some(flow) = remote_child_of_deleted_parent(ctx, intent, row, table, &id, settled)? {
            return Ok(flow);
        }
        if !rows::advance_row_state(conn, schema, table, key, row.row_version, false, updated_at)? {
            return Ok(Flow::Continue);
        }
        rows::upsert_row(conn, table, values.clone())?;
    } else {
        if newer.supersedes_delete(&id, row.row_version) {
            rows::advance_row_state(conn, schema, table, key, row.row_version, true, updated_at)?;
            return Ok(Flow::Continue);
        }
        if intent.children.contains_key(&id) {
            if let Some(flow) =
                remote_delete_of_referenced_parent(ctx, intent, row, table, key, &id, settled)?
            {
                return Ok(flow);
            }
            if intent.dirty.contains(&id) {
                // The parent was recreated locally: the deletion is shadowed.
                touched.insert(table.name.clone());
                return Ok(Flow::Continue);
            }
        }
        if !rows::advance_row_state(conn, schema, table, key, row.row_version, true, updated_at)? {
            return Ok(Flow::Continue);
        }
        rows::delete_row(conn, table, key)?;
    }
    touched.insert(table.name.clone());
    Ok(Flow::Continue)
}

/// The wire key of a local row id.
pub(crate) fn wire_key(table: &ManagedTable, key_json: &str) -> Result<SyncKey> {
    let local = local_key_from_key_json(table, key_json)?;
    let mut key = SyncKey::new();
    key.insert(
        table.key_json_name.clone(),
        local_key_to_wire(table, &local.json_value)?,
    );
    Ok(key)
}

fn key_value(key: &SyncKey) -> Value {
    serde_json::to_value(key).unwrap_or(Value::Null)
}

/// The referenced parent's key in its local JSON form, from a wire payload.
fn fk_local_value(column_kind: ColumnKind, wire: &Value) -> Option<String> {
    let text = wire.as_str()?;
    match column_kind {
        ColumnKind::UuidBlob => parse_canonical_uuid(text).map(|b| hex_encode(&b)),
        _ => Some(text.to_string()),
    }
}

/// A remote INSERT/UPDATE of a child whose parent this device has deleted but not yet
/// pushed. `AcceptServer`: the local deletion is undone with the server's parent row
/// (a restore, so the bundle is retried afterwards). `KeepLocal`: the deletion extends
/// to the remote child, which becomes a local DELETE of its own.
fn remote_child_of_deleted_parent(
    ctx: &Ctx,
    intent: &mut LocalIntent,
    row: &BundleRow,
    table: &ManagedTable,
    id: &RowId,
    settled: &mut Vec<ForeignKeyResolution>,
) -> Result<Option<Flow>> {
    if intent.deleted.is_empty() || table.foreign_keys.is_empty() {
        return Ok(None);
    }
    let Some(payload) = &row.payload else {
        return Ok(None);
    };
    for fk in &table.foreign_keys {
        let Some((parent, parent_key_json, column)) = parent_of(ctx, table, fk, payload)? else {
            continue;
        };
        let parent_id: RowId = (parent.name.clone(), parent_key_json);
        if !intent.deleted.contains(&parent_id) {
            continue;
        }
        let dirty = rows::dirty_row(ctx.conn, &ctx.config.schema, &parent.name, &parent_id.1)?;
        let question = ConflictContext {
            schema: ctx.config.schema.clone(),
            table: parent.name.clone(),
            key: wire_key(parent, &parent_id.1)?,
            local_op: Op::Delete,
            local_payload: None,
            base_row_version: dirty.map(|d| d.base_row_version).unwrap_or(0),
            server_row_version: 0,
            server_row_deleted: false,
            server_row: None,
            foreign_key: Some(ForeignKeyContext {
                race: ForeignKeyRace::ChildAddedRemotely,
                column,
                other_table: table.name.clone(),
                other_key: row.key.clone(),
            }),
        };
        match ctx.resolver.resolve(&question) {
            Resolution::AcceptServer => {
                return Ok(Some(Flow::Restore(PendingRestore {
                    id: parent_id,
                    report: race(
                        ctx,
                        (&table.name, &row.key),
                        ForeignKeyAction::ParentRestored,
                        (&parent.name, &question.key),
                        &parent.name,
                    ),
                })))
            }
            Resolution::KeepLocal => {
                // The remote child is recorded at its server version and deleted by a
                // local DELETE based on it; its own children follow the same rule.
                rows::upsert_row_state(
                    ctx.conn,
                    &ctx.config.schema,
                    &table.name,
                    &id.1,
                    row.row_version,
                    false,
                )?;
                rows::upsert_dirty(
                    ctx.conn,
                    &ctx.config.schema,
                    &table.name,
                    &id.1,
                    "DELETE",
                    row.row_version,
                    None,
                )?;
                intent.dirty.insert(id.clone());
                intent.deleted.insert(id.clone());
                settled.push(race(
                    ctx,
                    (&table.name, &row.key),
                    ForeignKeyAction::ChildDeleted,
                    (&parent.name, &question.key),
                    &parent.name,
                ));
                return Ok(Some(Flow::Continue));
            }
            Resolution::KeepMerged(_) => {
                return Err(SyncError::new(
                    ErrorKind::InvalidConflictResolution,
                    format!(
                        "a merged row cannot answer the pending local DELETE of {} {} (the server added {} {} referencing it); answer 'server' or 'local'; local changes are kept",
                        parent.name,
                        key_value(&question.key),
                        table.name,
                        key_value(&row.key)
                    ),
                ))
            }
        }
    }
    Ok(None)
}

/// What each local child of a remotely deleted parent asked for.
enum ChildAnswer {
    GiveWay,
    KeepParent,
    Merged(Map<String, Value>),
}

/// A remote DELETE of a parent that unsent local children reference. Each child's
/// resolver decides: `KeepLocal` recreates the parent from this device's values (a
/// local INSERT over the server's tombstone), `AcceptServer` lets the child give way
/// (dropped if the server never had it, else restored from the server), a merged row
/// replaces the child. Returns `Some(flow)` when the row needs no further handling.
#[allow(clippy::too_many_arguments)]
fn remote_delete_of_referenced_parent(
    ctx: &Ctx,
    intent: &mut LocalIntent,
    row: &BundleRow,
    table: &ManagedTable,
    key: &LocalKey,
    id: &RowId,
    settled: &mut Vec<ForeignKeyResolution>,
) -> Result<Option<Flow>> {
    let conn = ctx.conn;
    let schema = &ctx.config.schema;
    let children = intent.children.get(id).cloned().unwrap_or_default();
    let mut answers = Vec::with_capacity(children.len());
    for c in &children {
        let Some(dirty) = rows::dirty_row(conn, schema, &c.child.0, &c.child.1)? else {
            continue;
        };
        let Some(payload) = dirty.payload.as_deref() else {
            continue;
        };
        let local = parse_object(payload, "dirty payload")?;
        // Still a reference to this parent? (The sets are per bundle; an earlier row
        // of the bundle may have settled the child already.)
        let child_table = ctx.table(&c.child.0)?;
        let live = rows::row_state_version(conn, schema, &child_table.name, &c.child.1)?;
        let question = ConflictContext {
            schema: schema.clone(),
            table: child_table.name.clone(),
            key: wire_key(child_table, &c.child.1)?,
            local_op: if live.is_some() {
                Op::Update
            } else {
                Op::Insert
            },
            local_payload: Some(local),
            base_row_version: dirty.base_row_version,
            server_row_version: 0,
            server_row_deleted: false,
            server_row: None,
            foreign_key: Some(ForeignKeyContext {
                race: ForeignKeyRace::ParentDeletedRemotely,
                column: c.column.clone(),
                other_table: table.name.clone(),
                other_key: row.key.clone(),
            }),
        };
        let answer = match ctx.resolver.resolve(&question) {
            Resolution::AcceptServer => ChildAnswer::GiveWay,
            Resolution::KeepLocal => ChildAnswer::KeepParent,
            Resolution::KeepMerged(m) => ChildAnswer::Merged(m),
        };
        answers.push((c.clone(), question, answer));
    }
    let keep_parent = answers
        .iter()
        .any(|(_, _, a)| matches!(a, ChildAnswer::KeepParent));
    if keep_parent {
        if let Some(values) = rows::live_row_json(conn, table, key)? {
            // Recreated: the server's tombstone is recorded and a local INSERT based
            // on it carries this device's last values of the parent.
            rows::upsert_row_state(conn, schema, &table.name, &id.1, row.row_version, true)?;
            rows::upsert_dirty(
                conn,
                schema,
                &table.name,
                &id.1,
                "INSERT",
                row.row_version,
                Some(&values),
            )?;
            intent.dirty.insert(id.clone());
            for (c, question, answer) in &answers {
                if matches!(answer, ChildAnswer::KeepParent) {
                    settled.push(race(
                        ctx,
                        (&c.child.0, &question.key),
                        ForeignKeyAction::ParentRecreated,
                        (&table.name, &row.key),
                        &c.child.0,
                    ));
                }
            }
            // The other children keep referencing the recreated parent.
            return Ok(None);
        }
    }
    // The parent goes: every child that did not merge gives way.
    for (c, question, answer) in answers {
        let child_table = ctx.table(&c.child.0)?;
        match answer {
            ChildAnswer::Merged(m) => {
                let references_parent = m
                    .get(&c.column)
                    .and_then(|v| v.as_str())
                    .map(|v| key_json_of(conn, table, v))
                    .transpose()?
                    .is_some_and(|k| k == id.1);
                if references_parent {
                    return Err(SyncError::new(
                        ErrorKind::InvalidConflictResolution,
                        format!(
                            "the merged row for {} {} still references the deleted {} {}; local changes are kept",
                            child_table.name,
                            key_value(&question.key),
                            table.name,
                            key_value(&row.key)
                        ),
                    ));
                }
                let wire: Payload = local_payload_to_wire(child_table, &m)?;
                let values = wire_payload_to_row(child_table, &wire)?;
                rows::upsert_row(conn, child_table, values)?;
                let child_key = local_key_from_key_json(child_table, &c.child.1)?;
                let live = rows::live_row_json(conn, child_table, &child_key)?;
                let dirty = rows::dirty_row(conn, schema, &child_table.name, &c.child.1)?;
                let (op, base) = dirty
                    .map(|d| (d.op, d.base_row_version))
                    .unwrap_or_else(|| ("UPDATE".to_string(), 0));
                rows::upsert_dirty(
                    conn,
                    schema,
                    &child_table.name,
                    &c.child.1,
                    &op,
                    base,
                    live.as_deref(),
                )?;
                settled.push(race(
                    ctx,
                    (&child_table.name, &question.key),
                    ForeignKeyAction::Merged,
                    (&table.name, &row.key),
                    &child_table.name,
                ));
            }
            ChildAnswer::GiveWay | ChildAnswer::KeepParent => {
                if let Some(flow) = give_way(ctx, intent, &c.child, table, &row.key, settled)? {
                    return Ok(Some(flow));
                }
            }
        }
    }
    Ok(None)
}

/// A local child gives way to its parent's remote deletion: a child the server never
/// had is dropped with its change (and, in turn, its own unsent children); one the
/// server has must take the server's row, which needs a request: [`Flow::Restore`].
fn give_way(
    ctx: &Ctx,
    intent: &mut LocalIntent,
    child: &RowId,
    parent: &ManagedTable,
    parent_key: &SyncKey,
    settled: &mut Vec<ForeignKeyResolution>,
) -> Result<Option<Flow>> {
    let conn = ctx.conn;
    let schema = &ctx.config.schema;
    let mut work = vec![(child.clone(), parent.name.clone(), parent_key.clone())];
    while let Some((id, parent_name, parent_key)) = work.pop() {
        let table = ctx.table(&id.0)?;
        let on_server = rows::row_state_version(conn, schema, &table.name, &id.1)?.is_some()
            && !row_state_deleted(conn, schema, &table.name, &id.1)?;
        if on_server {
            let report = race(
                ctx,
                (&table.name, &wire_key(table, &id.1)?),
                ForeignKeyAction::Reverted,
                (&parent_name, &parent_key),
                &table.name,
            );
            return Ok(Some(Flow::Restore(PendingRestore { id, report })));
        }
        let key = local_key_from_key_json(table, &id.1)?;
        let wire = wire_key(table, &id.1)?;
        for grandchild in intent.children.get(&id).cloned().unwrap_or_default() {
            if intent.dirty.contains(&grandchild.child) {
                work.push((grandchild.child, table.name.clone(), wire.clone()));
            }
        }
        rows::delete_row(conn, table, &key)?;
        rows::delete_dirty(conn, schema, &table.name, &id.1)?;
        intent.dirty.remove(&id);
        settled.push(race(
            ctx,
            (&table.name, &wire),
            ForeignKeyAction::Dropped,
            (&parent_name, &parent_key),
            &table.name,
        ));
    }
    Ok(None)
}

fn row_state_deleted(
    conn: &rusqlite::Connection,
    schema: &str,
    table: &str,
    key_json: &str,
) -> Result<bool> {
    Ok(row_state::is_deleted(conn, schema, table, key_json)?)
}

/// True when a remote INSERT/UPDATE of a child references a parent that this device
/// already holds as deleted at a *later* version: the device's own bundle (or one it
/// pulled) deleted the parent after this row was written, and since the server only
/// deletes a referenced parent by cascading to its children, the row is dead in the
/// server's later history (the cascade bundle deletes it). Applying it would break the
/// local foreign key between the two bundles. Only asked after a bundle failed its
/// foreign-key check, so the per-row lookups stay off the normal pull path.
pub(crate) fn superseded_by_parent_delete(
    ctx: &Ctx,
    row: &BundleRow,
    table: &ManagedTable,
) -> Result<bool> {
    let Some(payload) = &row.payload else {
        return Ok(false);
    };
    for fk in &table.foreign_keys {
        let Some((parent, key_json, _)) = parent_of(ctx, table, fk, payload)? else {
            continue;
        };
        let later_delete = row_state::deleted_after(
            ctx.conn,
            &ctx.config.schema,
            &parent.name,
            &key_json,
            row.row_version,
        )?;
        if later_delete == Some(true) {
            let local = local_key_from_key_json(parent, &key_json)?;
            if rows::live_row_json(ctx.conn, parent, &local)?.is_none() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Parents that rows this device already holds at a *newer* version reference: rows
/// its own commits wrote after the checkpoint the pull starts from. A pulled DELETE
/// of such a parent older than the child is superseded in the server's history: the
/// server accepted the child later, so the parent existed again by then (a later
/// bundle of this pull recreates it). Applying the deletion would make a local
/// `ON DELETE CASCADE` silently remove the device's own committed child, or break a
/// plain reference; the deletion is recorded in the row state only.
#[derive(Default)]
pub(crate) struct NewerChildren(HashMap<RowId, i64>);

impl NewerChildren {
    pub(crate) fn load(ctx: &Ctx, after: i64) -> Result<NewerChildren> {
        let mut map: HashMap<RowId, i64> = HashMap::new();
        let fk_tables: Vec<&ManagedTable> = ctx
            .config
            .tables
            .iter()
            .filter(|t| !t.foreign_keys.is_empty())
            .collect();
        if fk_tables.is_empty() {
            return Ok(NewerChildren(map));
        }
        let conn = ctx.conn;
        let newer = row_state::committed_live_after(conn, &ctx.config.schema, after)?;
        for (table_name, key_json, version) in newer {
            let Some(table) = fk_tables.iter().find(|t| t.name == table_name) else {
                continue;
            };
            let key = local_key_from_key_json(table, &key_json)?;
            for fk in &table.foreign_keys {
                let (Some(column), Ok(parent)) =
                    (table.column(&fk.from_column), ctx.table(&fk.parent_table))
                else {
                    continue;
                };
                let value = match column.kind {
                    ColumnKind::UuidBlob | ColumnKind::Blob => {
                        format!("lower(hex({}))", rows::quote_ident(&column.name))
                    }
                    _ => rows::quote_ident(&column.name),
                };
                let sql = format!(
                    "SELECT json_object(?1, {value}) FROM {} WHERE {} = ?2 AND {} IS NOT NULL",
                    rows::quote_ident(&table.name),
                    rows::quote_ident(&table.key_column),
                    rows::quote_ident(&column.name)
                );
                let parent_key: Option<String> = conn
                    .prepare_cached(&sql)?
                    .query_row(params![parent.key_json_name, key.sql], |r| r.get(0))
                    .optional()?;
                if let Some(parent_key) = parent_key {
                    let entry = map.entry((parent.name.clone(), parent_key)).or_insert(0);
                    *entry = (*entry).max(version);
                }
            }
        }
        Ok(NewerChildren(map))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when a DELETE of `parent` at `version` is superseded (see the type docs).
    pub(crate) fn supersedes_delete(&self, parent: &RowId, version: i64) -> bool {
        self.0.get(parent).is_some_and(|v| *v > version)
    }
}

/// The parent a row's foreign key names in a wire payload: `(parent table, parent
/// key_json, referencing column)`, or `None` when the reference is NULL.
pub(crate) fn parent_of<'t>(
    ctx: &'t Ctx,
    table: &ManagedTable,
    fk: &crate::local::schema::ForeignKey,
    payload: &Payload,
) -> Result<Option<(&'t ManagedTable, String, String)>> {
    let Some(column) = table.column(&fk.from_column) else {
        return Ok(None);
    };
    let Some(value) = payload
        .get(&column.json_name)
        .and_then(|v| fk_local_value(column.kind, v))
    else {
        return Ok(None);
    };
    let parent = ctx.table(&fk.parent_table)?;
    let key_json = key_json_of(ctx.conn, parent, &value)?;
    Ok(Some((parent, key_json, column.json_name.clone())))
}

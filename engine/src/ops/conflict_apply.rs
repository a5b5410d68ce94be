//! Executing a conflict resolution (§7.5 steps 3–5) in one apply-mode transaction:
//! the conflicting row follows the plan, every other outbox row goes back to the
//! dirty set unchanged, and the outbox is cleared.

use oversqlite_protocol::{Op, PushConflictDetails};
use rusqlite::Connection;

use crate::client::Ctx;
use crate::codec::{
    local_key_from_key_json, local_payload_to_wire, parse_object, wire_payload_to_row,
};
use crate::conflict::{
    plan, Authoritative, ConflictContext, ConflictPlan, ForeignKeyContext, ForeignKeyRace,
    Resolution, RowAction, RowStateAction,
};
use crate::error::{ErrorKind, Result, SyncError};
use crate::ops::freeze::Outbox;
use crate::ops::pull::beside::{race, wire_key, RowId};
use crate::report::ChangedTables;
use crate::report::{ForeignKeyAction, ForeignKeyResolution};
use crate::rows;
use crate::state::{self, OutboxRow};
use crate::tx::{apply_tx, without_fk_enforcement_if};

/// Puts an outbox row of the refused bundle back into the dirty set. A dirty row that
/// already exists for the key was captured after the freeze (a local write made while
/// the bundle was in flight): it is newer intent and is kept as it is. Its op and base
/// were computed by the capture trigger from the same `_sync_row_state` the outbox row
/// was frozen against (the refused bundle changed no row state), so it stands on its
/// own; overwriting it would push the stale frozen value first and need another round.
fn requeue_unchanged(conn: &Connection, r: &OutboxRow) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO _sync_dirty_rows(schema_name, table_name, key_json, op, base_row_version, payload, dirty_ordinal, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT COALESCE(MAX(dirty_ordinal), 0) + 1 FROM _sync_dirty_rows),
                 strftime('%Y-%m-%dT%H:%M:%fZ','now'))
         ON CONFLICT(schema_name, table_name, key_json) DO NOTHING",
    )?
    .execute(rusqlite::params![
        r.schema_name,
        r.table_name,
        r.key_json,
        r.op,
        r.base_row_version,
        r.local_payload.as_deref()
    ])?;
    Ok(())
}

pub(crate) fn apply_conflict(
    ctx: &Ctx,
    outbox: &Outbox,
    details: &PushConflictDetails,
    changed: &mut ChangedTables,
    settled: &mut Vec<ForeignKeyResolution>,
) -> Result<()> {
    let index = outbox
        .push_rows
        .iter()
        .position(|p| {
            p.schema == details.schema && p.table == details.table && p.key == details.key
        })
        .ok_or_else(|| {
            SyncError::protocol(format!(
                "push conflict names {}.{} {:?}, which is not in the uploaded bundle",
                details.schema, details.table, details.key
            ))
        })?;
    let conflicting = &outbox.rows[index];
    let local_op = outbox.push_rows[index].op;
    let table = ctx.table(&conflicting.table_name)?;
    let local_payload = conflicting
        .local_payload
        .as_deref()
        .map(|t| parse_object(t, "outbox local_payload"))
        .transpose()?;
    let context = ConflictContext {
        schema: details.schema.clone(),
        table: details.table.clone(),
        key: details.key.clone(),
        local_op,
        local_payload: local_payload.clone(),
        base_row_version: conflicting.base_row_version,
        server_row_version: details.server_row_version,
        server_row_deleted: details.server_row_deleted,
        server_row: details.server_row.clone(),
        foreign_key: None,
    };
    let resolution = ctx.resolver.resolve(&context);
    let auth = Authoritative::of(
        &details.server_row,
        details.server_row_deleted,
        details.server_row_version,
    );
    let columns: Vec<String> = table.columns.iter().map(|c| c.json_name.clone()).collect();
    let mut planned = plan(
        &resolution,
        local_op,
        local_payload.as_ref(),
        &auth,
        &columns,
    );
    // Accepting the server's deletion of a parent that unsent local children still
    // reference is a foreign-key race (README, race A): each child's policy decides.
    let mut children_give_way = Vec::new();
    if let Ok(p) = &planned {
        if p.row == RowAction::Delete {
            let race = children_of_deleted_parent(ctx, table, conflicting, details)?;
            match (race.keep_parent, local_payload.as_ref()) {
                (Some(report), Some(local)) => {
                    // Recreated from this device's values: an INSERT over the tombstone.
                    planned = Ok(ConflictPlan {
                        row: RowAction::UpsertLocal(local.clone()),
                        row_state: RowStateAction::Set {
                            version: details.server_row_version,
                            deleted: true,
                        },
                        requeue: Some((Op::Insert, details.server_row_version)),
                    });
                    settled.extend(report);
                }
                _ => children_give_way = race.give_way,
            }
        }
    }

    // Decode everything before writing so a bad server row changes nothing.
    let key = local_key_from_key_json(table, &conflicting.key_json)?;
    let values = match &planned {
        Ok(ConflictPlan {
            row: RowAction::UpsertServer(p),
            ..
        }) => Some(wire_payload_to_row(table, p)?),
        Ok(ConflictPlan {
            row: RowAction::UpsertLocal(p),
            ..
        }) => Some(wire_payload_to_row(
            table,
            &local_payload_to_wire(table, p)?,
        )?),
        _ => None,
    };
    let values = match (&planned, values) {
        (
            Ok(ConflictPlan {
                row: RowAction::UpsertLocal(p),
                ..
            }),
            None,
        ) => Some(wire_payload_to_row(
            table,
            &local_payload_to_wire(table, p)?,
        )?),
        (_, v) => v,
    };
    let schema = ctx.config.schema.clone();
    // Enforcement is off for deletions too: local rows may still reference a parent
    // whose deletion is accepted here, either children this device has not yet seen
    // the server delete (the sync's pull right after removes them), or unsent
    // children the server has (settled by the next push's refusal sweep). With it on,
    // a plain local reference failed the resolution with a bare SQLite error.
    without_fk_enforcement_if(ctx.conn, true, || {
        apply_tx(ctx.conn, |conn| {
            for (i, r) in outbox.rows.iter().enumerate() {
                if i != index || planned.is_err() {
                    requeue_unchanged(conn, r)?;
                }
            }
            for c in children_give_way.iter().filter(|c| !c.on_server) {
                let child_table = ctx.table(&c.id.0)?;
                let key = local_key_from_key_json(child_table, &c.id.1)?;
                rows::delete_row(conn, child_table, &key)?;
                rows::delete_dirty(conn, &schema, &child_table.name, &c.id.1)?;
            }
            if let Ok(p) = &planned {
                let key_json = &conflicting.key_json;
                match &p.row {
                    RowAction::Delete => rows::delete_row(conn, table, &key)?,
                    _ => rows::upsert_row(conn, table, values.clone().unwrap_or_default())?,
                }
                match p.row_state {
                    RowStateAction::Remove => {
                        rows::delete_row_state(conn, &schema, &table.name, key_json)?
                    }
                    RowStateAction::Set { version, deleted } => rows::upsert_row_state(
                        conn,
                        &schema,
                        &table.name,
                        key_json,
                        version,
                        deleted,
                    )?,
                }
                match p.requeue {
                    None => rows::delete_dirty(conn, &schema, &table.name, key_json)?,
                    Some((op, base)) => {
                        let payload = if op == Op::Delete {
                            None
                        } else {
                            rows::live_row_json(conn, table, &key)?
                        };
                        rows::upsert_dirty(
                            conn,
                            &schema,
                            &table.name,
                            key_json,
                            op.as_str(),
                            base,
                            payload.as_deref(),
                        )?;
                    }
                }
            }
            // The refused bundle was not committed, so the next freeze must reuse its
            // source_bundle_id. Normally the counter still equals it; a rotated rebuild
            // advances the new source to 2 while the carried bundle 1 is unsent, and
            // freezing 2 next would be `source_sequence_out_of_order` (rotating again).
            conn.execute(
                "UPDATE _sync_source_state SET next_source_bundle_id = ?2 WHERE source_id = ?1 AND next_source_bundle_id > ?2",
                rusqlite::params![outbox.bundle.source_id, outbox.bundle.source_bundle_id],
            )?;
            oversqlite_core::fault::point("push.mid_conflict_apply");
            state::clear_outbox(conn)
        })
    })?;
    for c in children_give_way.iter().filter(|c| !c.on_server) {
        changed.insert(c.id.0.clone());
        settled.push(c.report.clone());
    }
    match planned {
        Ok(_) => {
            changed.insert(table.name.clone());
            Ok(())
        }
        Err(why) => Err(SyncError::new(
            ErrorKind::InvalidConflictResolution,
            format!("{why}; the rejected bundle was restored as local changes"),
        )),
    }
}

#[cfg(test)]
mod fk_guard_tests {
    use super::*;

    fn fk(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn enforcement_is_off_inside_and_back_on_after_an_error() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let err = without_fk_enforcement_if(&conn, true, || -> Result<()> {
            assert_eq!(fk(&conn), 0);
            Err(SyncError::state("resolution failed"))
        })
        .unwrap_err();
        assert_eq!(err.code(), SyncError::state("x").code());
        assert_eq!(fk(&conn), 1);
    }

    #[test]
    fn enforcement_is_back_on_after_a_panic() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = without_fk_enforcement_if(&conn, true, || -> Result<()> {
                panic!("resolver panicked")
            });
        }));
        assert!(caught.is_err());
        assert_eq!(fk(&conn), 1);
    }
}

/// An unsent local child of a parent whose server deletion a resolution accepts.
struct GiveWay {
    id: RowId,
    /// The server has the child: it is settled by the next push (its refusal's sweep
    /// restores the server's row); otherwise it is dropped here.
    on_server: bool,
    report: ForeignKeyResolution,
}

struct ChildrenRace {
    /// Set when a child's policy keeps the parent: the reports of those children.
    keep_parent: Option<Vec<ForeignKeyResolution>>,
    give_way: Vec<GiveWay>,
}

/// Asks the policy of every unsent local child that references the conflicting row
/// whether the parent's deletion wins (`AcceptServer`) or the parent is kept.
fn children_of_deleted_parent(
    ctx: &Ctx,
    table: &crate::schema::ManagedTable,
    conflicting: &OutboxRow,
    details: &PushConflictDetails,
) -> Result<ChildrenRace> {
    let mut out = ChildrenRace {
        keep_parent: None,
        give_way: Vec::new(),
    };
    let parent_id: RowId = (table.name.clone(), conflicting.key_json.clone());
    let mut keep = Vec::new();
    for (child, column, payload, base) in unsent_children(ctx, &parent_id)? {
        let child_table = ctx.table(&child.0)?;
        let on_server = ctx
            .conn
            .query_row(
                "SELECT deleted = 0 FROM _sync_row_state WHERE schema_name = ?1 AND table_name = ?2 AND key_json = ?3",
                rusqlite::params![ctx.config.schema, child.0, child.1],
                |r| r.get::<_, bool>(0),
            )
            .unwrap_or(false);
        let child_key = wire_key(child_table, &child.1)?;
        let question = ConflictContext {
            schema: ctx.config.schema.clone(),
            table: child_table.name.clone(),
            key: child_key.clone(),
            local_op: if on_server { Op::Update } else { Op::Insert },
            local_payload: Some(parse_object(&payload, "local payload")?),
            base_row_version: base,
            server_row_version: 0,
            server_row_deleted: false,
            server_row: None,
            foreign_key: Some(ForeignKeyContext {
                race: ForeignKeyRace::ParentDeletedRemotely,
                column,
                other_table: table.name.clone(),
                other_key: details.key.clone(),
            }),
        };
        let parent = (table.name.as_str(), &details.key);
        match ctx.resolver.resolve(&question) {
            Resolution::KeepLocal => keep.push(race(
                ctx,
                (&child_table.name, &child_key),
                ForeignKeyAction::ParentRecreated,
                parent,
                &child_table.name,
            )),
            // A merge cannot help a child whose parent is gone for good here: it gives
            // way like AcceptServer (the merge is offered again if it is pushed).
            Resolution::AcceptServer | Resolution::KeepMerged(_) => out.give_way.push(GiveWay {
                id: child.clone(),
                on_server,
                report: race(
                    ctx,
                    (&child_table.name, &child_key),
                    ForeignKeyAction::Dropped,
                    parent,
                    &child_table.name,
                ),
            }),
        }
    }
    if !keep.is_empty() {
        out.keep_parent = Some(keep);
    }
    Ok(out)
}

/// The unsent local INSERT/UPDATE rows that reference `parent`: the other rows of the
/// refused bundle (about to go back among the local changes) and the dirty rows
/// captured meanwhile. `(child, column, local payload, base version)`.
fn unsent_children(ctx: &Ctx, parent: &RowId) -> Result<Vec<(RowId, String, String, i64)>> {
    let mut out: Vec<(RowId, String, String, i64)> = Vec::new();
    let Ok(parent_table) = ctx.table(&parent.0) else {
        return Ok(out);
    };
    for table in &ctx.config.tables {
        for fk in table
            .foreign_keys
            .iter()
            .filter(|fk| fk.parent_table == parent.0)
        {
            let Some(column) = table.column(&fk.from_column) else {
                continue;
            };
            let path = format!("$.{}", column.json_name);
            for sql in [
                "SELECT key_json, payload, base_row_version FROM _sync_dirty_rows
                 WHERE schema_name = ?1 AND table_name = ?2 AND payload IS NOT NULL
                   AND json_object(?4, json_extract(payload, ?3)) = ?5",
                "SELECT key_json, local_payload, base_row_version FROM _sync_outbox_rows
                 WHERE schema_name = ?1 AND table_name = ?2 AND local_payload IS NOT NULL
                   AND json_object(?4, json_extract(local_payload, ?3)) = ?5",
            ] {
                let found: Vec<(String, String, i64)> = ctx
                    .conn
                    .prepare_cached(sql)?
                    .query_map(
                        rusqlite::params![
                            ctx.config.schema,
                            table.name,
                            path,
                            parent_table.key_json_name,
                            parent.1
                        ],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )?
                    .collect::<rusqlite::Result<_>>()?;
                for (key_json, payload, base) in found {
                    let id: RowId = (table.name.clone(), key_json);
                    // A dirty row captured after the freeze is the newer intent.
                    if !out.iter().any(|(c, ..)| *c == id) {
                        out.push((id, column.json_name.clone(), payload, base));
                    }
                }
            }
        }
    }
    Ok(out)
}

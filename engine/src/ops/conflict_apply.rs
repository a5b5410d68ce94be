//! Executing a conflict resolution (§7.5 steps 3–5) in one apply-mode transaction:
//! the conflicting row follows the plan, every other outbox row goes back to the
//! dirty set unchanged, and the outbox is cleared.

use oversqlite_protocol::{Op, Payload, PushConflictDetails};
use rusqlite::Connection;

use crate::conflict::{
    plan, Authoritative, ConflictContext, ConflictPlan, ForeignKeyContext, ForeignKeyRace,
    Resolution, RowAction, RowStateAction,
};
use crate::error::{ErrorKind, Result, SyncError};
use crate::local::schema::ManagedTable;
use crate::local::state::{self, OutboxRow};
use crate::local::tx::{apply_tx, without_fk_enforcement_if};
use crate::ops::beside::{race, wire_key, RowId};
use crate::ops::freeze::Outbox;
use crate::report::ChangedTables;
use crate::report::{ForeignKeyAction, ForeignKeyResolution};
use crate::sync_client::Ctx;
use crate::values::codec::{
    local_key_from_key_json, local_payload_to_wire, parse_object, wire_payload_to_row,
};
use crate::values::rows;
use oversqlite_core::store::{dirty_rows, row_state, source};

/// Puts an outbox row of the refused bundle back into the dirty set. A dirty row that
/// already exists for the key was captured after the freeze (a local write made while
/// the bundle was in flight): it is newer intent and is kept as it is. Its op and base
/// were computed by the capture trigger from the same the row state the outbox row
/// was frozen against (the refused bundle changed no row state), so it stands on its
/// own; overwriting it would push the stale frozen value first and need another round.
fn requeue_unchanged(conn: &Connection, r: &OutboxRow) -> Result<()> {
    Ok(dirty_rows::insert_unless_present(
        conn,
        &r.schema_name,
        &r.table_name,
        &r.key_json,
        &r.op,
        r.base_row_version,
        r.local_payload.as_deref(),
    )?)
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
        }) => {
            let kept = local_payload_to_wire(table, p)?;
            let merged = kept_over_server_row(table, kept, details.server_row.as_ref());
            Some(wire_payload_to_row(table, &merged)?)
        }
        _ => None,
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
            source::lower_next_bundle_id(
                conn,
                &outbox.bundle.source_id,
                outbox.bundle.source_bundle_id,
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
    table: &crate::local::schema::ManagedTable,
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
        let on_server = row_state::is_live(ctx.conn, &ctx.config.schema, &child.0, &child.1);
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
            let unsent = dirty_rows::children_of(
                ctx.conn,
                &ctx.config.schema,
                &table.name,
                &path,
                &parent_table.key_json_name,
                &parent.1,
            )?;
            for found in unsent {
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

/// The row a kept local image (or a resolver's merged payload) writes: the image's own
/// columns, and the server's values for the columns it does not name. An image captured
/// before a local migration lacks the new columns; writing them as NULL and pushing the
/// whole row would erase values other devices gave those columns, which the kept change
/// never touched (the server's own partial update keeps them). Server columns this
/// table lacks are left out, as a pulled row's would be refused.
fn kept_over_server_row(
    table: &ManagedTable,
    mut kept: Payload,
    server_row: Option<&Payload>,
) -> Payload {
    for (column, value) in server_row.into_iter().flatten() {
        let local = table
            .columns
            .iter()
            .any(|c| c.json_name.eq_ignore_ascii_case(column));
        if local && !kept.keys().any(|k| k.eq_ignore_ascii_case(column)) {
            kept.insert(column.clone(), value.clone());
        }
    }
    kept
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

//! `on_delete = "cascade"` foreign keys. Clients verify a committed bundle against their
//! outbox position by position (§7.4), so rows a cascade removes can never join the pushed
//! bundle: they are committed as a separate server-originated bundle (§10.11) from
//! [`CASCADE_SOURCE_ID`], right after the bundle whose deletes caused them.

use rusqlite::{params, Connection};

use crate::config::quote_ident;
use crate::error::ServiceResult;
use crate::state::AppState;

/// Server-side source id of the bundles holding cascaded deletes (own contiguous
/// `source_bundle_id` per user, like any source). It starts with a space: header values
/// lose surrounding whitespace (HTTP and the request guard trim them) and so does
/// `source_replacement.new_source_id`, so no client can ever write under this id or be
/// handed it, while `server-cascade` itself stays an ordinary client id as in the
/// reference, which has no reserved ids.
pub const CASCADE_SOURCE_ID: &str = " server-cascade";

/// Deletes, depth first and children in key order, every row that still references one of
/// `roots` (`(qualified table, key)` in the order given) through a cascading foreign key.
/// Returns the deleted rows in delete order. Rows already gone (e.g. deleted by the bundle
/// itself) are not found, so each row appears at most once.
pub fn cascade_deletes(
    app: &AppState,
    conn: &Connection,
    user: &str,
    roots: &[(String, String)],
) -> ServiceResult<Vec<(String, String)>> {
    let mut deleted = Vec::new();
    for (table, key) in roots {
        delete_children(app, conn, user, table, key, &mut deleted)?;
    }
    Ok(deleted)
}

fn delete_children(
    app: &AppState,
    conn: &Connection,
    user: &str,
    table: &str,
    key: &str,
    deleted: &mut Vec<(String, String)>,
) -> ServiceResult<()> {
    let scope = quote_ident(oversqlite_protocol::HIDDEN_SCOPE_COLUMN);
    for (child, fk) in app.registry.cascades_from(table) {
        let child_key = quote_ident(&child.key_column);
        let select = format!(
            "SELECT {child_key} FROM {} WHERE {scope} = ?1 AND {} = ?2 ORDER BY {child_key}",
            child.sql_name(),
            quote_ident(&fk.column)
        );
        let keys: Vec<String> = conn
            .prepare(&select)?
            .query_map(params![user, key], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let delete = format!(
            "DELETE FROM {} WHERE {scope} = ?1 AND {child_key} = ?2",
            child.sql_name()
        );
        for child_row in keys {
            // A self-referencing table can reach a row twice through one recursion.
            if conn.execute(&delete, params![user, child_row])? > 0 {
                deleted.push((child.qualified.clone(), child_row.clone()));
                delete_children(app, conn, user, &child.qualified, &child_row, deleted)?;
            }
        }
    }
    Ok(())
}

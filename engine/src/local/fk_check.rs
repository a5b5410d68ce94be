//! Naming the rows behind a foreign-key failure. SQLite reports a deferred violation
//! only as "FOREIGN KEY constraint failed"; a sync must instead say which rows of
//! which tables reference what (issue #15), so the user can act on it.

use rusqlite::Connection;

use crate::local::schema::Config;

/// At most this many violations are named in one message.
const NAMED: usize = 5;

/// Describes the violations that `PRAGMA foreign_key_check` finds in the managed
/// tables, e.g. `posts {"id":"p1"}.author_id references users "u9", which does not
/// exist on this device`. Empty when none is found (or the check itself fails).
pub fn describe_violations(conn: &Connection, config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for table in config.tables.iter().filter(|t| !t.foreign_keys.is_empty()) {
        let Ok(found) = violations_of(conn, &table.name, &table.key_column) else {
            continue;
        };
        out.extend(found);
        if out.len() >= NAMED {
            out.truncate(NAMED);
            break;
        }
    }
    out
}

fn violations_of(
    conn: &Connection,
    table: &str,
    key_column: &str,
) -> rusqlite::Result<Vec<String>> {
    let quoted = oversqlite_core::sql_text::quote_ident(table);
    let check = format!("PRAGMA foreign_key_check({quoted})");
    let mut stmt = conn.prepare(&check)?;
    let found: Vec<(i64, String, i64)> = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Option<i64>>(1)?.unwrap_or(-1),
                r.get(2)?,
                r.get(3)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut list = conn.prepare(&format!("PRAGMA foreign_key_list({quoted})"))?;
    let fks: Vec<(i64, String)> = list
        .query_map([], |r| Ok((r.get(0)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (rowid, parent, fkid) in found.into_iter().take(NAMED) {
        let column = fks
            .iter()
            .find(|(id, _)| *id == fkid)
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        let (key, value): (String, String) = conn
            .query_row(
                &format!(
                    "SELECT quote({}), quote({}) FROM {quoted} WHERE rowid = ?1",
                    oversqlite_core::sql_text::quote_ident(key_column),
                    oversqlite_core::sql_text::quote_ident(&column)
                ),
                [rowid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or_else(|_| ("?".into(), "?".into()));
        out.push(format!(
            "{table} {key_column}={key}: {column}={value} references {parent}, which has no such row on this device"
        ));
    }
    Ok(out)
}

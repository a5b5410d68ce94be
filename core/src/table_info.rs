//! Reads an application table's shape from SQLite's catalog pragmas.
use rusqlite::Connection;

use crate::error::Result;
use crate::model::ColumnKind;

#[derive(Debug, Clone)]
pub struct RawColumn {
    pub name: String,
    pub declared_type: String,
    pub not_null: bool,
    pub pk: i64,
    pub has_default: bool,
}

#[derive(Debug, Clone)]
pub struct RawForeignKey {
    pub id: i64,
    pub seq: i64,
    pub parent_table: String,
    pub from_column: String,
    pub to_column: Option<String>,
}

/// True when `name` is an ordinary table of the main database.
pub fn table_exists(conn: &Connection, name: &str) -> Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM main.sqlite_master WHERE type = 'table' AND lower(name) = lower(?1)",
        [name],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

pub fn columns(conn: &Connection, table: &str) -> Result<Vec<RawColumn>> {
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", pk, dflt_value IS NOT NULL FROM pragma_table_info(?1, 'main') ORDER BY cid",
    )?;
    let rows = stmt.query_map([table], |r| {
        Ok(RawColumn {
            name: r.get(0)?,
            declared_type: r.get(1)?,
            not_null: r.get::<_, i64>(2)? != 0,
            pk: r.get(3)?,
            has_default: r.get::<_, i64>(4)? != 0,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn foreign_keys(conn: &Connection, table: &str) -> Result<Vec<RawForeignKey>> {
    let mut stmt = conn.prepare("SELECT id, seq, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1, 'main') ORDER BY id, seq")?;
    let rows = stmt.query_map([table], |r| {
        Ok(RawForeignKey {
            id: r.get(0)?,
            seq: r.get(1)?,
            parent_table: r.get(2)?,
            from_column: r.get(3)?,
            to_column: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Column kind from the declared type (case-insensitive substring rules, first match wins).
/// `uuid_capable` marks the primary key or an FK column: a BLOB there holds a 16-byte UUID.
pub fn classify(declared_type: &str, uuid_capable: bool) -> ColumnKind {
    let t = declared_type.to_ascii_lowercase();
    if t.contains("blob") {
        if uuid_capable {
            ColumnKind::UuidBlob
        } else {
            ColumnKind::Blob
        }
    } else if t.contains("real") || t.contains("float") || t.contains("double") {
        ColumnKind::Real
    } else if t.contains("int") {
        ColumnKind::Integer
    } else {
        ColumnKind::Text
    }
}

//! Managed-table validation (protocol digest §4). Messages contain the fragments pinned by
//! `local-schema/config-validation.json`, and each says what to change.
use std::collections::{BTreeSet, HashMap, HashSet};

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::model::{Column, ColumnKind, ForeignKey, KeyKind, ManagedTable};
use crate::table_info;

/// One table registration as configured (names not yet normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRegistration {
    pub table_name: String,
    /// Explicit sync key columns; exactly one is supported.
    pub sync_key_columns: Vec<String>,
}

impl TableRegistration {
    pub fn new(table_name: &str, key: &str) -> Self {
        TableRegistration {
            table_name: table_name.to_string(),
            sync_key_columns: vec![key.to_string()],
        }
    }
}

pub fn validate_schema_name(schema: &str) -> Result<()> {
    if schema.trim().is_empty() {
        return Err(Error::config("config.schema must be provided: pass the server schema name (e.g. 'main') to oversqlite_init"));
    }
    if schema.len() > MAX_SCHEMA_NAME_BYTES {
        return Err(Error::config(format!(
            "config.schema is {} bytes long; at most {MAX_SCHEMA_NAME_BYTES} bytes are accepted",
            schema.len()
        )));
    }
    if schema.contains('\0') {
        return Err(Error::config("config.schema must not contain NUL bytes"));
    }
    Ok(())
}

/// Longest accepted remote schema name, in bytes.
pub const MAX_SCHEMA_NAME_BYTES: usize = 256;

/// Trimmed, lowercased table name; rejects schema qualifiers and non-identifiers
/// (the name is embedded in trigger names).
pub fn normalize_table_name(raw: &str) -> Result<String> {
    let name = raw.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(Error::config("sync table name must be provided"));
    }
    if name.contains('.') {
        let bare = name.rsplit('.').next().unwrap_or("");
        return Err(Error::config(format!(
            "sync table \"{raw}\" must not include a schema qualifier; register it as \"{bare}\""
        )));
    }
    let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !plain {
        return Err(Error::config(format!(
            "sync table name \"{raw}\" must be a plain identifier (letters, digits, underscore)"
        )));
    }
    if name.starts_with("_sync_") || name.starts_with("_oversqlite_") || name.starts_with("sqlite_")
    {
        return Err(Error::config(format!(
            "table \"{name}\" is reserved and cannot be synced"
        )));
    }
    Ok(name)
}

/// Trimmed, case-insensitively de-duplicated key column list, exactly one entry.
fn single_key_column(table: &str, keys: &[String]) -> Result<String> {
    let mut seen = HashSet::new();
    let keys: Vec<String> = keys
        .iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty() && seen.insert(k.to_ascii_lowercase()))
        .collect();
    match keys.len() {
        0 => Err(Error::config(format!(
            "table \"{table}\" must declare syncKeyColumnName or syncKeyColumns explicitly; name its TEXT or BLOB primary key column"
        ))),
        1 => Ok(keys[0].clone()),
        _ => Err(Error::config(format!(
            "table \"{table}\" must declare exactly one sync key column (got {}); composite sync keys are not supported",
            keys.join(", ")
        ))),
    }
}

/// Validates one table on its own (every rule of §4 except FK closure and ordering).
pub fn validate_table(conn: &Connection, reg: &TableRegistration) -> Result<ManagedTable> {
    let name = normalize_table_name(&reg.table_name)?;
    let key = single_key_column(&name, &reg.sync_key_columns)?;
    if !table_info::table_exists(conn, &name)? {
        return Err(Error::config(format!(
            "table \"{name}\" does not exist in the main database; create it before enabling sync"
        )));
    }
    let raw = table_info::columns(conn, &name)?;
    if raw
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case("_sync_scope_id"))
    {
        return Err(Error::config(format!(
            "table \"{name}\" must not declare reserved server column _sync_scope_id; rename or drop that column"
        )));
    }
    let Some(key_col) = raw.iter().find(|c| c.name.eq_ignore_ascii_case(&key)) else {
        return Err(Error::config(format!(
            "table \"{name}\" does not contain configured primary key column {key}"
        )));
    };
    let pk_count = raw.iter().filter(|c| c.pk > 0).count();
    if pk_count != 1 {
        return Err(Error::config(format!(
            "table \"{name}\" must declare exactly one local SQLite PRIMARY KEY column (it has {pk_count}); composite or missing primary keys are not supported"
        )));
    }
    if key_col.pk == 0 {
        return Err(Error::config(format!(
            "sync key column {name}.{} must be the table's PRIMARY KEY column",
            key_col.name
        )));
    }
    let key_kind = match table_info::classify(&key_col.declared_type, true) {
        ColumnKind::Text => KeyKind::Text,
        ColumnKind::UuidBlob => KeyKind::UuidBlob,
        _ => {
            return Err(Error::config(format!(
                "sync key column {name}.{} must be TEXT PRIMARY KEY or BLOB PRIMARY KEY (declared type \"{}\"); use a TEXT or 16-byte BLOB UUID key",
                key_col.name, key_col.declared_type
            )))
        }
    };
    let raw_fks = table_info::foreign_keys(conn, &name)?;
    let fk_columns: HashSet<String> = raw_fks
        .iter()
        .map(|f| f.from_column.to_ascii_lowercase())
        .collect();
    let columns = raw
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            json_name: c.name.to_ascii_lowercase(),
            declared_type: c.declared_type.clone(),
            kind: table_info::classify(
                &c.declared_type,
                c.pk > 0 || fk_columns.contains(&c.name.to_ascii_lowercase()),
            ),
            not_null: c.not_null,
            primary_key_position: c.pk,
            has_default: c.has_default,
        })
        .collect();
    let foreign_keys = raw_fks
        .iter()
        .filter(|f| f.seq == 0)
        .map(|f| ForeignKey {
            from_column: f.from_column.clone(),
            parent_table: f.parent_table.to_ascii_lowercase(),
            parent_column: f.to_column.clone().unwrap_or_default(),
        })
        .collect();
    Ok(ManagedTable {
        name,
        key_column: key_col.name.clone(),
        key_json_name: key_col.name.to_ascii_lowercase(),
        key_kind,
        columns,
        foreign_keys,
    })
}

/// Validates the whole registration list and returns the tables in FK order (parents first).
pub fn validate_tables(
    conn: &Connection,
    schema: &str,
    regs: &[TableRegistration],
) -> Result<Vec<ManagedTable>> {
    validate_schema_name(schema)?;
    let mut seen = HashSet::new();
    for reg in regs {
        let name = normalize_table_name(&reg.table_name)?;
        if !seen.insert(name.clone()) {
            return Err(Error::config(format!(
                "duplicate sync table registration for \"{name}\"; register each table once"
            )));
        }
    }
    let mut tables = Vec::with_capacity(regs.len());
    for reg in regs {
        tables.push(validate_table(conn, reg)?);
    }
    check_foreign_keys(conn, &mut tables)?;
    Ok(order_by_dependencies(tables))
}

/// Rejects composite FKs and FKs to unmanaged tables; fills in implicit parent columns.
fn check_foreign_keys(conn: &Connection, tables: &mut [ManagedTable]) -> Result<()> {
    let managed: HashMap<String, String> = tables
        .iter()
        .map(|t| (t.name.clone(), t.key_column.clone()))
        .collect();
    let mut composite = BTreeSet::new();
    for t in tables.iter() {
        for fk in table_info::foreign_keys(conn, &t.name)? {
            if fk.seq > 0 {
                composite.insert(format!(
                    "{} -> {}",
                    t.name,
                    fk.parent_table.to_ascii_lowercase()
                ));
            }
        }
    }
    if !composite.is_empty() {
        return Err(Error::config(format!(
            "managed tables contain unsupported composite foreign keys: {}; use single-column foreign keys",
            composite.into_iter().collect::<Vec<_>>().join("; ")
        )));
    }
    let mut open_edges = BTreeSet::new();
    for t in tables.iter_mut() {
        for fk in t.foreign_keys.iter_mut() {
            if fk.parent_column.is_empty() {
                fk.parent_column = match managed.get(&fk.parent_table) {
                    Some(k) => k.clone(),
                    None => parent_primary_key(conn, &fk.parent_table)?,
                };
            }
            if !managed.contains_key(&fk.parent_table) {
                open_edges.insert(format!(
                    "{}.{} -> {}.{}",
                    t.name, fk.from_column, fk.parent_table, fk.parent_column
                ));
            }
        }
    }
    if !open_edges.is_empty() {
        return Err(Error::config(format!(
            "managed tables are not FK-closed: {}; enable sync for the referenced tables too",
            open_edges.into_iter().collect::<Vec<_>>().join("; ")
        )));
    }
    Ok(())
}

fn parent_primary_key(conn: &Connection, parent: &str) -> Result<String> {
    let cols = table_info::columns(conn, parent)?;
    Ok(cols
        .into_iter()
        .find(|c| c.pk == 1)
        .map(|c| c.name)
        .unwrap_or_else(|| "rowid".into()))
}

/// Kahn's algorithm over managed FK edges; ties and cycles resolved by configuration order.
pub fn order_by_dependencies(tables: Vec<ManagedTable>) -> Vec<ManagedTable> {
    let index: HashMap<&str, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let n = tables.len();
    let mut parents: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut children: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (i, t) in tables.iter().enumerate() {
        for fk in &t.foreign_keys {
            if let Some(&p) = index.get(fk.parent_table.as_str()) {
                if p != i {
                    parents[i].insert(p);
                    children[p].insert(i);
                }
            }
        }
    }
    let mut indegree: Vec<usize> = parents.iter().map(|p| p.len()).collect();
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    while let Some(&i) = ready.iter().next() {
        ready.remove(&i);
        placed[i] = true;
        order.push(i);
        for &c in &children[i] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.insert(c);
            }
        }
    }
    order.extend((0..n).filter(|&i| !placed[i]));
    let mut slots: Vec<Option<ManagedTable>> = tables.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i].take().expect("each table placed once"))
        .collect()
}

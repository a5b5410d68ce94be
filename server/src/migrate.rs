//! Additive schema migration of the store. go-oversync reads its tables' columns from
//! PostgreSQL at start-up, so there an ordinary migration plus a restart is the whole story;
//! here the config is the schema, so the store is brought to the config's shape: added
//! tables and added columns (nullable, or with a default) are applied, anything else is
//! refused with every difference listed. Clients rely on the store never losing a column
//! or changing what a column means, which no in-place change other than these preserves.

use std::collections::BTreeSet;

use rusqlite::Connection;

use crate::config::{quote_ident, Registry, TableSpec};

/// One additive change, in the order it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A table registered in the config but absent from the store (with its guards).
    CreateTable { table: String },
    /// A column registered in the config but absent from its store table.
    AddColumn {
        table: String,
        column: String,
        definition: String,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::CreateTable { table } => write!(f, "create table {table}"),
            Step::AddColumn {
                table,
                column,
                definition,
            } => write!(f, "add column {table}.{column} ({definition})"),
        }
    }
}

/// What bringing a store to the config's shape takes.
#[derive(Debug, Default)]
pub struct Plan {
    /// The store has no bookkeeping yet: every table is created, nothing is migrated.
    pub fresh: bool,
    pub steps: Vec<Step>,
}

impl Plan {
    /// The statements of the additive steps (run inside the caller's transaction).
    pub fn ddl(&self, registry: &Registry) -> String {
        let mut sql = String::new();
        for step in &self.steps {
            match step {
                Step::CreateTable { table } => {
                    let spec = registry.tables.iter().find(|t| &t.qualified == table);
                    let spec = spec.expect("planned tables are registered");
                    sql.push_str(&spec.create_table_sql());
                }
                Step::AddColumn {
                    table, definition, ..
                } => sql.push_str(&format!(
                    "ALTER TABLE {} ADD COLUMN {definition}",
                    quote_ident(table)
                )),
            }
            sql.push_str(";\n");
        }
        sql
    }

    /// One line per step, for the operator ("nothing to migrate" when there is none).
    /// `done` says whether the steps were applied or only planned (`--dry-run`).
    pub fn describe(&self, done: bool) -> String {
        let verb = if done {
            "migrated"
        } else {
            "dry run, nothing changed; would migrate"
        };
        if self.fresh {
            return format!("new store: {} tables to create", self.steps.len());
        }
        if self.steps.is_empty() {
            return "store matches the config; nothing to migrate".into();
        }
        let lines: Vec<String> = self.steps.iter().map(|s| format!("  {s}")).collect();
        format!("{verb} the store:\n{}", lines.join("\n"))
    }
}

const WAY_FORWARD: &str = "Only additive changes migrate in place: new tables, and new columns that are \
nullable or have a default. Put the config back for everything listed (a column or table the app no \
longer uses can stay registered), ship the change as an added column or table instead, or start a new \
--data store (every client then rebuilds from its local data).";

/// Compares the store with the config: the additive steps, or every difference that is
/// not additive.
pub fn plan(conn: &Connection, registry: &Registry) -> Result<Plan, String> {
    let fresh = !has_table(conn, "_oversync_user_state")?;
    let mut plan = Plan {
        fresh,
        steps: Vec::new(),
    };
    let mut refusals = Vec::new();
    for spec in &registry.tables {
        if has_table(conn, &spec.qualified)? {
            compare_table(conn, spec, &mut plan.steps, &mut refusals)?;
        } else {
            plan.steps.push(Step::CreateTable {
                table: spec.qualified.clone(),
            });
        }
    }
    for stored in registered_tables(conn)? {
        if !registry.tables.iter().any(|t| t.qualified == stored) {
            refusals.push(format!(
                "table {stored} is in the store but not in the config (removed or renamed)"
            ));
        }
    }
    if refusals.is_empty() {
        Ok(plan)
    } else {
        Err(format!(
            "the store's schema differs from the config in ways that cannot be migrated:\n  - {}\n{WAY_FORWARD}",
            refusals.join("\n  - ")
        ))
    }
}

/// One column as the store declares it.
struct StoredColumn {
    name: String,
    sqlite_type: String,
    not_null: bool,
    default: Option<String>,
    pk: i64,
}

fn compare_table(
    conn: &Connection,
    spec: &TableSpec,
    steps: &mut Vec<Step>,
    refusals: &mut Vec<String>,
) -> Result<(), String> {
    let table = &spec.qualified;
    let scope = oversqlite_protocol::HIDDEN_SCOPE_COLUMN;
    let stored = stored_columns(conn, table)?;
    for column in stored.iter().filter(|c| c.name != scope) {
        if spec.column(&column.name).is_none() {
            refusals.push(format!(
                "column {table}.{} is in the store but not in the config (dropped or renamed)",
                column.name
            ));
        }
    }
    for column in &spec.columns {
        let Some(found) = stored.iter().find(|c| c.name == column.name) else {
            if !column.nullable && column.default.is_none() {
                refusals.push(format!(
                    "column {table}.{} is added NOT NULL without a default: existing rows would have no value (give it a default or make it nullable)",
                    column.name
                ));
            } else if column.default.as_deref() == Some(crate::config::NOW_DEFAULT_SQL) {
                refusals.push(format!(
                    "column {table}.{} is added with default now(): SQLite cannot add a column whose default is not a constant to an existing table (add it nullable without a default)",
                    column.name
                ));
            } else {
                steps.push(Step::AddColumn {
                    table: table.clone(),
                    column: column.name.clone(),
                    definition: column.definition_sql(),
                });
            }
            continue;
        };
        let wanted_type = column.column_type.sqlite_type();
        if !found.sqlite_type.eq_ignore_ascii_case(wanted_type) {
            refusals.push(format!(
                "column {table}.{} changes type from {} to {wanted_type}",
                column.name, found.sqlite_type
            ));
        }
        if found.not_null == column.nullable && column.name != spec.key_column {
            let (from, to) = if found.not_null {
                ("NOT NULL", "nullable")
            } else {
                ("nullable", "NOT NULL")
            };
            refusals.push(format!(
                "column {table}.{} changes from {from} to {to}",
                column.name
            ));
        }
        if found.default != column.default {
            refusals.push(format!(
                "column {table}.{} changes its default from {} to {}",
                column.name,
                found.default.as_deref().unwrap_or("none"),
                column.default.as_deref().unwrap_or("none")
            ));
        }
    }
    let mut stored_key: Vec<&StoredColumn> = stored.iter().filter(|c| c.pk > 0).collect();
    stored_key.sort_by_key(|c| c.pk);
    let stored_key: Vec<&str> = stored_key.iter().map(|c| c.name.as_str()).collect();
    if stored_key != [scope, spec.key_column.as_str()] {
        refusals.push(format!(
            "table {table} changes its key from {} to {}",
            stored_key.last().copied().unwrap_or("none"),
            spec.key_column
        ));
    }
    let stored_fks = stored_foreign_keys(conn, table)?;
    let wanted_fks: BTreeSet<(String, String)> = spec
        .foreign_keys
        .iter()
        .map(|fk| (fk.column.clone(), fk.target.clone()))
        .collect();
    for (column, target) in stored_fks.symmetric_difference(&wanted_fks) {
        let change = if wanted_fks.contains(&(column.clone(), target.clone())) {
            "adds"
        } else {
            "removes"
        };
        refusals.push(format!(
            "table {table} {change} the foreign key {column} -> {target} (foreign keys of an existing table cannot change in place)"
        ));
    }
    Ok(())
}

fn stored_columns(conn: &Connection, table: &str) -> Result<Vec<StoredColumn>, String> {
    let mut stmt = conn
        .prepare("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([table], |r| {
            Ok(StoredColumn {
                name: r.get(0)?,
                sqlite_type: r.get(1)?,
                not_null: r.get(2)?,
                default: r.get(3)?,
                pk: r.get(4)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("read columns of {table}: {e}"));
    rows
}

/// `(column, referenced table)` of the store table's foreign keys (the hidden owner column
/// that every one of them includes left out).
fn stored_foreign_keys(
    conn: &Connection,
    table: &str,
) -> Result<BTreeSet<(String, String)>, String> {
    let mut stmt = conn
        .prepare("SELECT \"from\", \"table\" FROM pragma_foreign_key_list(?1) WHERE \"from\" <> ?2")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([table, oversqlite_protocol::HIDDEN_SCOPE_COLUMN], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("read foreign keys of {table}: {e}"));
    rows
}

/// Store tables that are registered tables (`"schema.table"`; bookkeeping is `_oversync_*`).
fn registered_tables(conn: &Connection) -> Result<Vec<String>, String> {
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND instr(name, '.') > 0
               AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("list store tables: {e}"));
    rows
}

fn has_table(conn: &Connection, name: &str) -> Result<bool, String> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )
    .map_err(|e| format!("read store schema: {e}"))
}

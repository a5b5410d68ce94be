//! Server configuration file (TOML): application name, schema version and the registered
//! tables with their columns. Loaded once at start-up and validated completely, so every
//! later lookup can assume a consistent registry.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

/// Logical column type; decides both the SQLite storage class and the wire encoding (§1.4).
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// JSON string, stored as TEXT.
    Text,
    /// JSON integer number, stored as INTEGER.
    Integer,
    /// JSON number, stored as REAL.
    Real,
    /// Standard base64 (with padding) on the wire, stored as BLOB.
    Blob,
    /// Canonical dashed lowercase UUID text on the wire and in the store.
    Uuid,
    /// Timestamp text, stored and sent verbatim.
    Timestamp,
}

impl ColumnType {
    pub fn sqlite_type(self) -> &'static str {
        match self {
            ColumnType::Text | ColumnType::Uuid | ColumnType::Timestamp => "TEXT",
            ColumnType::Integer => "INTEGER",
            ColumnType::Real => "REAL",
            ColumnType::Blob => "BLOB",
        }
    }
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    #[serde(default = "default_nullable")]
    pub nullable: bool,
    /// Value a row gets when an INSERT does not name the column, and what existing rows
    /// get when a migration adds it (a NOT NULL column can only be added with one).
    #[serde(default)]
    pub default: Option<toml::Value>,
}

fn default_nullable() -> bool {
    true
}

/// What deleting a referenced row does to the rows that reference it.
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// The delete fails at commit while referencing rows remain (deferred check).
    #[default]
    NoAction,
    /// Referencing rows are deleted too, and the deletes are part of the committed bundle.
    Cascade,
}

/// `column` references the sync key of `references` ("schema.table", or "table" in the same
/// schema). Enforced as a deferred foreign key that includes the owner column.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ForeignKeyConfig {
    pub column: String,
    pub references: String,
    #[serde(default)]
    pub on_delete: OnDelete,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    #[serde(default)]
    pub schema: String,
    pub table: String,
    pub key: String,
    pub columns: Vec<ColumnConfig>,
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKeyConfig>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default = "default_app_name")]
    pub app_name: String,
    #[serde(default = "default_schema_version")]
    pub schema_version: i64,
    /// Optional HS256 secret; `--jwt-secret` / `OVERSQLITE_JWT_SECRET` take precedence.
    #[serde(default)]
    pub jwt_secret: Option<String>,
    pub tables: Vec<TableConfig>,
}

fn default_app_name() -> String {
    "oversqlite-server".to_string()
}

fn default_schema_version() -> i64 {
    1
}

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub column_type: ColumnType,
    pub nullable: bool,
    /// The column's `DEFAULT` as the store declares it (`pragma_table_info.dflt_value`): an
    /// SQL literal, or [`NOW_DEFAULT_SQL`] for a timestamp column's `default = "now()"`.
    pub default: Option<String>,
}

/// `default = "now()"` of a timestamp column (PostgreSQL's `DEFAULT now()` in the reference
/// example): the insert time as RFC 3339 text in UTC, like PostgreSQL's `to_jsonb` of a
/// `timestamptz` (`2026-03-24T18:42:11.123+00:00`, millisecond precision).
pub const NOW_DEFAULT_SQL: &str = "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')";

#[derive(Clone, Debug)]
pub struct ForeignKey {
    pub column: String,
    pub target: String,
    pub target_key_column: String,
    pub on_delete: OnDelete,
}

/// One registered table, names normalised to lowercase.
#[derive(Clone, Debug)]
pub struct TableSpec {
    pub schema: String,
    pub table: String,
    /// `"schema.table"`; also the SQLite table name in the store (quoted).
    pub qualified: String,
    pub key_column: String,
    pub columns: Vec<Column>,
    pub foreign_keys: Vec<ForeignKey>,
    /// Statement texts of the per-row hot paths, built once at start-up.
    pub sql: TableSql,
}

/// SQL text of the per-row statements on one registered table. Writes say `OR FAIL`: they
/// change one row, and any error rolls the whole bundle transaction back, so SQLite need
/// not keep a statement journal (a copy of every page touched) to undo a half statement. Building them per row
/// (`format!` + `quote_ident`) and re-preparing them cost a large share of commit time;
/// built once, they are looked up in each connection's prepared-statement cache.
#[derive(Clone, Debug, Default)]
pub struct TableSql {
    /// Visible columns (in `columns` order) of one row: `?1` owner, `?2` key.
    pub select_row: String,
    /// Deletes one row: `?1` owner, `?2` key.
    pub delete_row: String,
    /// Inserts one row with every column: `?1` owner, then `columns` in order from `?2`.
    /// Used when the payload carries every column; a shorter payload names only its own
    /// columns, so the others take their defaults.
    pub insert_row: String,
    /// Updates every non-key column: `?1` owner, `?2` key, then the non-key `columns` in
    /// order from `?3`. Used when the payload carries every
    /// column.
    pub update_all: String,
    /// Live rows of one owner with their row version, in key order (snapshot): `?1`
    /// owner, `?2` qualified table name; the visible columns, then `bundle_seq`, then key.
    pub snapshot_rows: String,
    /// Indexes into `columns`, sorted by column name: the order of a payload's JSON object.
    pub name_order: Vec<usize>,
}

impl TableSql {
    fn new(spec: &TableSpec) -> TableSql {
        let table = spec.sql_name();
        let scope = quote_ident(oversqlite_protocol::HIDDEN_SCOPE_COLUMN);
        let key = quote_ident(&spec.key_column);
        let names: Vec<String> = spec.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let marks: Vec<String> = (0..=names.len()).map(|i| format!("?{}", i + 1)).collect();
        let mut sets = vec![format!("{key} = ?2")];
        let non_key = spec.columns.iter().filter(|c| c.name != spec.key_column);
        sets.extend(
            non_key
                .enumerate()
                .map(|(i, c)| format!("{} = ?{}", quote_ident(&c.name), i + 3)),
        );
        let prefixed: Vec<String> = names.iter().map(|n| format!("t.{n}")).collect();
        let mut name_order: Vec<usize> = (0..spec.columns.len()).collect();
        name_order.sort_by(|a, b| spec.columns[*a].name.cmp(&spec.columns[*b].name));
        TableSql {
            select_row: format!(
                "SELECT {} FROM {table} WHERE {scope} = ?1 AND {key} = ?2",
                names.join(", ")
            ),
            delete_row: format!("DELETE FROM {table} WHERE {scope} = ?1 AND {key} = ?2"),
            insert_row: format!(
                "INSERT OR FAIL INTO {table} ({scope}, {}) VALUES ({})",
                names.join(", "),
                marks.join(", "),
            ),
            update_all: format!(
                "UPDATE OR FAIL {table} SET {} WHERE {scope} = ?1 AND {key} = ?2",
                sets.join(", "),
            ),
            snapshot_rows: format!(
                "SELECT {cols}, rs.bundle_seq, t.{key} FROM {table} t JOIN _oversync_row_state rs
                   ON rs.user_id = t.{scope} AND rs.table_name = ?2 AND rs.key = t.{key}
                 WHERE t.{scope} = ?1 AND rs.deleted = 0 ORDER BY t.{key}",
                cols = prefixed.join(", "),
            ),
            name_order,
        }
    }
}

impl Column {
    /// The column's definition in `CREATE TABLE` and `ALTER TABLE ADD COLUMN`.
    pub fn definition_sql(&self) -> String {
        let mut sql = format!(
            "{} {}",
            quote_ident(&self.name),
            self.column_type.sqlite_type()
        );
        if !self.nullable {
            sql.push_str(" NOT NULL");
        }
        if let Some(default) = &self.default {
            // An expression default takes parentheses; SQLite reports it without them.
            if default == NOW_DEFAULT_SQL {
                sql.push_str(&format!(" DEFAULT ({default})"));
            } else {
                sql.push_str(" DEFAULT ");
                sql.push_str(default);
            }
        }
        sql
    }
}

impl TableSpec {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn key_type(&self) -> ColumnType {
        self.column(&self.key_column)
            .map(|c| c.column_type)
            .unwrap_or(ColumnType::Text)
    }

    pub fn sql_name(&self) -> String {
        quote_ident(&self.qualified)
    }

    /// `CREATE TABLE IF NOT EXISTS` for the store: visible columns plus the hidden owner.
    pub fn create_table_sql(&self) -> String {
        let mut parts = vec![format!(
            "{} TEXT NOT NULL",
            quote_ident(oversqlite_protocol::HIDDEN_SCOPE_COLUMN)
        )];
        for column in &self.columns {
            parts.push(column.definition_sql());
        }
        parts.push(format!(
            "PRIMARY KEY ({}, {})",
            quote_ident(oversqlite_protocol::HIDDEN_SCOPE_COLUMN),
            quote_ident(&self.key_column)
        ));
        for fk in &self.foreign_keys {
            parts.push(format!(
                "FOREIGN KEY ({scope}, {col}) REFERENCES {target} ({scope}, {target_key}) DEFERRABLE INITIALLY DEFERRED",
                scope = quote_ident(oversqlite_protocol::HIDDEN_SCOPE_COLUMN),
                col = quote_ident(&fk.column),
                target = quote_ident(&fk.target),
                target_key = quote_ident(&fk.target_key_column),
            ));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  {}\n)",
            self.sql_name(),
            parts.join(",\n  ")
        )
    }
}

impl TableSpec {
    /// Triggers rejecting writes that do not come from the server's own bundle transactions
    /// (the reference rejects registered-table writes outside a sync-bundle context): such a
    /// write would never reach clients. The server marks its transactions with a row in
    /// `_oversync_write_context`, inserted and removed inside the same transaction.
    pub fn write_guard_sql(&self) -> String {
        let mut sql = String::new();
        for event in ["INSERT", "UPDATE", "DELETE"] {
            let trigger = quote_ident(&format!(
                "_oversync_guard_{}_{}",
                self.qualified,
                event.to_lowercase()
            ));
            // Re-created at every start, so stores made by older versions get this body.
            // RAISE(FAIL), not ABORT: the guard fires before the first row changes, so
            // nothing is left to roll back either way, but an ABORT anywhere in a trigger
            // makes SQLite keep a statement journal for every write to the table — a copy
            // of each page the server's per-row statements touch.
            sql.push_str(&format!(
                "DROP TRIGGER IF EXISTS {trigger};\n\
                 CREATE TRIGGER {trigger} BEFORE {event} ON {table}\n\
                 WHEN NOT EXISTS (SELECT 1 FROM _oversync_write_context)\n\
                 BEGIN SELECT RAISE(FAIL, 'oversqlite-server: {qualified} is a registered sync table; write through a sync bundle (push, or POST /test/server-bundle)'); END;\n",
                table = self.sql_name(),
                qualified = self.qualified,
            ));
        }
        sql
    }
}

/// Validated configuration: tables sorted by `"schema.table"` (byte-wise), which is also
/// the reference's `table_id` order used for snapshots.
#[derive(Clone, Debug)]
pub struct Registry {
    pub app_name: String,
    pub schema_version: i64,
    pub jwt_secret: Option<String>,
    pub tables: Vec<TableSpec>,
}

impl Registry {
    pub fn load(path: &Path) -> Result<Registry, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Registry::parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Registry, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Registry::from_file(file)
    }

    fn from_file(file: ConfigFile) -> Result<Registry, String> {
        if file.tables.is_empty() {
            return Err("at least one [[tables]] entry is required".into());
        }
        let mut by_name: BTreeMap<String, TableSpec> = BTreeMap::new();
        let mut pending_fks: Vec<(String, ForeignKeyConfig)> = Vec::new();
        for table in file.tables {
            let schema = normalise_name(if table.schema.trim().is_empty() {
                "public"
            } else {
                &table.schema
            });
            let name = normalise_name(&table.table);
            check_identifier("schema", &schema)?;
            check_identifier("table", &name)?;
            let qualified = format!("{schema}.{name}");
            let mut seen = HashSet::new();
            let mut columns = Vec::new();
            for column in table.columns {
                let column_name = normalise_name(&column.name);
                check_identifier(&format!("column of {qualified}"), &column_name)?;
                if column_name == oversqlite_protocol::HIDDEN_SCOPE_COLUMN {
                    return Err(format!(
                        "{qualified}: column name {column_name} is reserved"
                    ));
                }
                if !seen.insert(column_name.clone()) {
                    return Err(format!("{qualified}: duplicate column {column_name}"));
                }
                let default = column
                    .default
                    .as_ref()
                    .map(|v| default_literal(column.column_type, v))
                    .transpose()
                    .map_err(|e| format!("{qualified}: default of column {column_name}: {e}"))?;
                columns.push(Column {
                    name: column_name,
                    column_type: column.column_type,
                    nullable: column.nullable,
                    default,
                });
            }
            let key_column = normalise_name(&table.key);
            let key = columns
                .iter_mut()
                .find(|c| c.name == key_column)
                .ok_or_else(|| {
                    format!("{qualified}: key column {key_column} is not among its columns")
                })?;
            if !matches!(key.column_type, ColumnType::Text | ColumnType::Uuid) {
                return Err(format!(
                    "{qualified}: key column {key_column} must have type text or uuid"
                ));
            }
            key.nullable = false;
            for fk in table.foreign_keys {
                pending_fks.push((qualified.clone(), fk));
            }
            let spec = TableSpec {
                schema,
                table: name,
                qualified: qualified.clone(),
                key_column,
                columns,
                foreign_keys: Vec::new(),
                sql: TableSql::default(),
            };
            let spec = TableSpec {
                sql: TableSql::new(&spec),
                ..spec
            };
            if by_name.insert(qualified.clone(), spec).is_some() {
                return Err(format!("table {qualified} is registered twice"));
            }
        }
        for (owner, fk) in pending_fks {
            let owner_schema = by_name[&owner].schema.clone();
            let reference = normalise_name(&fk.references);
            let target = if reference.contains('.') {
                reference
            } else {
                format!("{owner_schema}.{reference}")
            };
            let target_spec = by_name.get(&target).ok_or_else(|| {
                format!("{owner}: foreign key references unregistered table {target}")
            })?;
            let target_key_column = target_spec.key_column.clone();
            let target_key_type = target_spec.key_type();
            let column = normalise_name(&fk.column);
            let owner_spec = by_name.get_mut(&owner).expect("owner registered above");
            let from = owner_spec.column(&column).ok_or_else(|| {
                format!("{owner}: foreign key column {column} is not among its columns")
            })?;
            if from.column_type != target_key_type {
                return Err(format!("{owner}: foreign key column {column} must have the type of {target}.{target_key_column}"));
            }
            owner_spec.foreign_keys.push(ForeignKey {
                column,
                target,
                target_key_column,
                on_delete: fk.on_delete,
            });
        }
        Ok(Registry {
            app_name: file.app_name,
            schema_version: file.schema_version,
            jwt_secret: file.jwt_secret.filter(|s| !s.is_empty()),
            tables: by_name.into_values().collect(),
        })
    }

    /// `(referencing table, foreign key)` pairs that cascade deletes of `target` rows.
    pub fn cascades_from<'a>(
        &'a self,
        target: &'a str,
    ) -> impl Iterator<Item = (&'a TableSpec, &'a ForeignKey)> + 'a {
        self.tables.iter().flat_map(move |t| {
            t.foreign_keys
                .iter()
                .filter(move |fk| fk.target == target && fk.on_delete == OnDelete::Cascade)
                .map(move |fk| (t, fk))
        })
    }

    pub fn table(&self, schema: &str, table: &str) -> Option<&TableSpec> {
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.table == table)
    }

    pub fn schemas(&self) -> Vec<String> {
        let mut schemas: Vec<String> = self.tables.iter().map(|t| t.schema.clone()).collect();
        schemas.sort();
        schemas.dedup();
        schemas
    }
}

/// The SQL literal of a configured default, checked against the column type (a default
/// is stored and sent like any value of the column, so it must be one).
fn default_literal(column_type: ColumnType, value: &toml::Value) -> Result<String, String> {
    let text = |s: &str| format!("'{}'", s.replace('\'', "''"));
    match (column_type, value) {
        (ColumnType::Integer, toml::Value::Integer(i)) => Ok(i.to_string()),
        (ColumnType::Integer, toml::Value::Boolean(b)) => Ok(i64::from(*b).to_string()),
        (ColumnType::Real, toml::Value::Float(f)) if f.is_finite() => Ok(format!("{f:?}")),
        (ColumnType::Real, toml::Value::Integer(i)) => Ok(format!("{:?}", *i as f64)),
        (ColumnType::Timestamp, toml::Value::String(s)) if s == "now()" => {
            Ok(NOW_DEFAULT_SQL.to_string())
        }
        (ColumnType::Text | ColumnType::Timestamp, toml::Value::String(s)) => Ok(text(s)),
        (ColumnType::Uuid, toml::Value::String(s)) => {
            oversqlite_protocol::values::parse_canonical_uuid(s)
                .map(|_| text(s))
                .ok_or_else(|| format!("{s:?} is not a canonical lowercase dashed UUID"))
        }
        (ColumnType::Blob, _) => Err("blob columns take no default".into()),
        (t, v) => Err(format!("{v:?} is not a value of type {t:?}")),
    }
}

fn normalise_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Same identifier rule as the reference server (`^[a-z0-9_]+$` after lowercasing).
pub fn is_valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_identifier(what: &str, name: &str) -> Result<(), String> {
    if is_valid_identifier(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name {name:?} (allowed: a-z, 0-9, _)"
        ))
    }
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_business_config_is_valid() {
        let registry = Registry::parse(include_str!("../config/business.toml")).unwrap();
        let names: Vec<&str> = registry
            .tables
            .iter()
            .map(|t| t.qualified.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "business.categories",
                "business.file_reviews",
                "business.files",
                "business.posts",
                "business.team_members",
                "business.teams",
                "business.typed_rows",
                "business.users"
            ]
        );
        // The reference example's types: uuid keys everywhere, timestamps defaulting to now().
        assert!(registry
            .tables
            .iter()
            .all(|t| t.key_type() == ColumnType::Uuid));
        let users = registry.table("business", "users").unwrap();
        let created_at = users.column("created_at").unwrap();
        assert!(created_at.nullable);
        assert_eq!(created_at.default.as_deref(), Some(NOW_DEFAULT_SQL));
        assert_eq!(
            created_at.definition_sql(),
            format!("\"created_at\" TEXT DEFAULT ({NOW_DEFAULT_SQL})")
        );
        let reviews = registry.table("business", "file_reviews").unwrap();
        assert_eq!(reviews.key_type(), ColumnType::Uuid);
        assert_eq!(reviews.foreign_keys[0].target, "business.files");
        assert_eq!(reviews.foreign_keys[0].on_delete, OnDelete::Cascade);
        let cascading: Vec<&str> = registry
            .cascades_from("business.teams")
            .map(|(t, _)| t.qualified.as_str())
            .collect();
        assert_eq!(cascading, ["business.team_members"]);
        assert_eq!(
            registry.cascades_from("business.users").count(),
            0,
            "posts.author_id is NO ACTION"
        );
    }

    #[test]
    fn rejects_bad_configs() {
        let bad_key = r#"
            [[tables]]
            schema = "s"
            table = "t"
            key = "id"
            columns = [{ name = "id", type = "integer" }]
        "#;
        assert!(Registry::parse(bad_key)
            .unwrap_err()
            .contains("text or uuid"));
        let bad_fk = r#"
            [[tables]]
            table = "t"
            key = "id"
            columns = [{ name = "id", type = "text" }, { name = "p", type = "text" }]
            foreign_keys = [{ column = "p", references = "missing" }]
        "#;
        assert!(Registry::parse(bad_fk)
            .unwrap_err()
            .contains("unregistered table public.missing"));
        assert!(Registry::parse("tables = []").is_err());
    }
}

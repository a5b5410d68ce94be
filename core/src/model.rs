//! The validated configuration the runtime and the sync engine work from.
use serde::Serialize;

/// How a column's values are stored locally and shown on the wire (§4, §6 of the protocol digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Text,
    Integer,
    Real,
    /// Non-key binary column: lowercase hex locally, base64 on the wire.
    Blob,
    /// 16-byte UUID (BLOB primary key or BLOB foreign-key column): hex locally, dashed UUID on the wire.
    UuidBlob,
}

/// Kind of the single sync key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Text,
    UuidBlob,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Declared name, as `PRAGMA table_info` reports it (used quoted in SQL).
    pub name: String,
    /// Lowercase name: the JSON member name in payloads and keys.
    pub json_name: String,
    pub declared_type: String,
    pub kind: ColumnKind,
    pub not_null: bool,
    /// 1-based position in the primary key, 0 when not part of it.
    pub primary_key_position: i64,
    /// The column has a `DEFAULT` (every column added NOT NULL by `ALTER TABLE` has
    /// one): a pulled row that does not name it leaves it to the table.
    #[serde(skip)]
    pub has_default: bool,
}

/// A single-column foreign key of a managed table (composite ones are rejected).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignKey {
    pub from_column: String,
    /// Lowercase parent table name.
    pub parent_table: String,
    /// Parent column (the parent's primary key when the FK names none).
    pub parent_column: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedTable {
    /// Lowercase table name (also the name used on the wire and in `_sync_*` rows).
    pub name: String,
    /// Declared name of the sync key column.
    pub key_column: String,
    /// Lowercase key column name: the member of `key_json` / the wire key.
    pub key_json_name: String,
    pub key_kind: KeyKind,
    /// Every column in `PRAGMA table_info` order.
    pub columns: Vec<Column>,
    pub foreign_keys: Vec<ForeignKey>,
}

impl ManagedTable {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
    pub fn key(&self) -> &Column {
        self.column(&self.key_column)
            .expect("validated table has its key column")
    }
}

/// Validated sync configuration; `tables` are in FK order (parents first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub server_url: String,
    /// Remote (server) schema name, stored in every `_sync_*.schema_name`.
    pub schema: String,
    pub tables: Vec<ManagedTable>,
}

impl Config {
    pub fn table(&self, name: &str) -> Option<&ManagedTable> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }
}

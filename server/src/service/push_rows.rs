//! Validation of pushed rows (§2.4), shared by push chunks and the server-bundle test hook.
//! A valid row is normalised (lowercase names, key injected into the payload) and can be
//! applied later without further checks.

use std::collections::HashSet;

use oversqlite_protocol::{Op, Payload, HIDDEN_SCOPE_COLUMN};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::codec::{key_from_wire, wire_to_sql};
use crate::config::{is_valid_identifier, Registry, TableSpec};

/// A pushed row as decoded from JSON. Like the reference's decoder, absent members take
/// their zero value; `payload` keeps "absent" apart from an explicit `null`.
#[derive(Deserialize, Debug, Clone)]
pub struct RawPushRow {
    #[serde(default)]
    pub schema: String,
    #[serde(default)]
    pub table: String,
    #[serde(default)]
    pub key: Option<Map<String, Value>>,
    #[serde(default)]
    pub op: String,
    #[serde(default)]
    pub base_row_version: i64,
    #[serde(default, deserialize_with = "present")]
    pub payload: Option<Value>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// A validated row, ready to stage or apply.
#[derive(Debug, Clone)]
pub struct StagedRow {
    /// `"schema.table"`.
    pub table: String,
    pub key: String,
    pub op: Op,
    pub base_row_version: i64,
    /// Present for INSERT/UPDATE, lowercase column names, key column included.
    pub payload: Option<Payload>,
}

/// One staged row as stored in a chunk: `[table, key, op, base_row_version, payload]`.
type StoredRow = (String, String, String, i64, Option<Payload>);

/// The stored text of one uploaded chunk's validated rows (a JSON array, one element per
/// row). A chunk is staged as one row of `_oversync_push_chunks` rather than one store row
/// per pushed row: staging, reading back and deleting 100k tiny B-tree rows was a large
/// part of a push's server time.
pub fn encode_chunk(rows: &[StagedRow]) -> serde_json::Result<String> {
    let stored: Vec<(&str, &str, &str, i64, Option<&Payload>)> = rows
        .iter()
        .map(|r| {
            (
                r.table.as_str(),
                r.key.as_str(),
                r.op.as_str(),
                r.base_row_version,
                r.payload.as_ref(),
            )
        })
        .collect();
    serde_json::to_string(&stored)
}

/// Decodes [`encode_chunk`] text.
pub fn decode_chunk(text: &str) -> Result<Vec<StagedRow>, String> {
    let stored: Vec<StoredRow> =
        serde_json::from_str(text).map_err(|e| format!("stored push chunk: {e}"))?;
    stored
        .into_iter()
        .map(|(table, key, op, base_row_version, payload)| {
            let op = Op::from_wire(&op).ok_or_else(|| format!("stored op {op:?}"))?;
            Ok(StagedRow {
                table,
                key,
                op,
                base_row_version,
                payload,
            })
        })
        .collect()
}

/// Validates a batch of rows; `seen` carries `(table, key)` targets across calls so a
/// duplicate target is rejected wherever it appears.
/// The rows are consumed: their payload values move into the validated rows uncopied.
pub fn validate_rows(
    registry: &Registry,
    rows: Vec<RawPushRow>,
    seen: &mut HashSet<(String, String)>,
) -> Result<Vec<StagedRow>, String> {
    rows.into_iter()
        .map(|row| validate_row(registry, row, seen))
        .collect()
}

fn validate_row(
    registry: &Registry,
    row: RawPushRow,
    seen: &mut HashSet<(String, String)>,
) -> Result<StagedRow, String> {
    let mut schema = row.schema.trim().to_lowercase();
    if schema.is_empty() {
        schema = "public".into();
    }
    let table_name = row.table.trim().to_lowercase();
    if !is_valid_identifier(&schema) {
        return Err(format!("invalid schema name {:?}", row.schema));
    }
    if !is_valid_identifier(&table_name) {
        return Err(format!("invalid table name {:?}", row.table));
    }
    let table = registry
        .table(&schema, &table_name)
        .ok_or_else(|| format!("table {schema}.{table_name} is not registered"))?;
    let op = Op::from_wire(&row.op.trim().to_uppercase())
        .ok_or_else(|| format!("invalid op {:?}", row.op))?;
    let key_object = Value::Object(row.key.unwrap_or_default());
    let key = key_from_wire(table, &key_object)?;
    if !seen.insert((table.qualified.clone(), key.clone())) {
        return Err(format!(
            "duplicate target row in push request: {} {key}",
            table.qualified
        ));
    }
    let payload = match (op, row.payload) {
        (Op::Delete, Some(_)) => {
            return Err(format!(
                "DELETE for {} must not include payload",
                table.qualified
            ))
        }
        (Op::Delete, None) => None,
        (_, None) => return Err(format!("{op} for {} requires payload", table.qualified)),
        (_, Some(value)) => Some(validate_payload(table, op, &key, value)?),
    };
    Ok(StagedRow {
        table: table.qualified.clone(),
        key,
        op,
        base_row_version: row.base_row_version,
        payload,
    })
}

fn validate_payload(table: &TableSpec, op: Op, key: &str, value: Value) -> Result<Payload, String> {
    let qualified = &table.qualified;
    let Value::Object(object) = value else {
        return Err(format!("payload for {qualified} must be a JSON object"));
    };
    if object.contains_key(HIDDEN_SCOPE_COLUMN) {
        return Err(format!(
            "payload for {qualified} must not include hidden scope column {HIDDEN_SCOPE_COLUMN:?}"
        ));
    }
    let mut payload = Payload::new();
    for (name, column_value) in object {
        let lower = name.to_lowercase();
        if lower == HIDDEN_SCOPE_COLUMN {
            return Err(format!("payload for {qualified} must not include hidden scope column {HIDDEN_SCOPE_COLUMN:?}"));
        }
        if !is_valid_identifier(&lower) {
            return Err(format!(
                "payload for {qualified} contains invalid column {name:?}"
            ));
        }
        let column = table
            .column(&lower)
            .ok_or_else(|| format!(
                "payload for {qualified} contains unknown column {name:?}: the device's schema is newer than the server's; \
                 add the column to the server's config (nullable or with a default) and restart it or run `oversqlite-server migrate`"
            ))?;
        wire_to_sql(column, &column_value).map_err(|e| format!("payload for {qualified}: {e}"))?;
        if payload.insert(lower, column_value).is_some() {
            return Err(format!("payload for {qualified} repeats column {name:?}"));
        }
    }
    match payload.get(&table.key_column) {
        Some(Value::String(s)) if s == key => {}
        Some(_) => {
            return Err(format!(
                "payload key {qualified}.{} must match request key",
                table.key_column
            ))
        }
        None => {
            payload.insert(table.key_column.clone(), Value::String(key.to_string()));
        }
    }
    if op == Op::Insert {
        if let Some(missing) = table
            .columns
            .iter()
            .find(|c| !c.nullable && c.default.is_none() && !payload.contains_key(&c.name))
        {
            return Err(format!(
                "INSERT for {qualified} must include non-null column {:?}",
                missing.name
            ));
        }
    }
    Ok(payload)
}

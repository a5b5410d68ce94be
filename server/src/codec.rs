//! Wire values (§1.4) ⇄ SQLite values for the registered tables, and sync-key
//! normalisation. Everything the server sends is produced from what is stored, so a value
//! read back is exactly what pull, snapshot and conflict bodies carry.

use oversqlite_protocol::values::{
    decode_base64, encode_base64, integer_of, is_canonical_uuid, normalize_uuid, real_of,
    real_value,
};
use rusqlite::types::Value as SqlValue;
use serde_json::Value;

use crate::config::{Column, ColumnType, TableSpec};

/// Converts one wire payload value to the value stored in `column`, or explains why not.
pub fn wire_to_sql(column: &Column, value: &Value) -> Result<SqlValue, String> {
    let name = &column.name;
    match (column.column_type, value) {
        (_, Value::Null) if column.nullable => Ok(SqlValue::Null),
        (_, Value::Null) => Err(format!("column {name} must not be null")),
        (ColumnType::Text | ColumnType::Timestamp, Value::String(s)) => {
            Ok(SqlValue::Text(s.clone()))
        }
        // Lenient on purpose (any form the `uuid` crate parses), stored canonically.
        (ColumnType::Uuid, Value::String(s)) => normalize_uuid(s)
            .map(SqlValue::Text)
            .ok_or_else(|| format!("column {name} must be a UUID string")),
        (ColumnType::Integer, Value::Number(n)) => integer_of(n)
            .map(SqlValue::Integer)
            .ok_or_else(|| format!("column {name} must be a 64-bit integer")),
        (ColumnType::Integer, Value::Bool(b)) => Ok(SqlValue::Integer(i64::from(*b))),
        (ColumnType::Real, Value::Number(n)) => real_of(n)
            .map(SqlValue::Real)
            .ok_or_else(|| format!("column {name} must be a number")),
        (ColumnType::Blob, Value::String(s)) => decode_base64(s)
            .map(SqlValue::Blob)
            .ok_or_else(|| format!("payload binary field {name} must be valid base64")),
        (ColumnType::Blob, _) => Err(format!(
            "payload binary field {name} must be a base64 string"
        )),
        (ColumnType::Text | ColumnType::Timestamp | ColumnType::Uuid, _) => {
            Err(format!("column {name} must be a string"))
        }
        (ColumnType::Integer, _) => Err(format!("column {name} must be an integer")),
        (ColumnType::Real, _) => Err(format!("column {name} must be a number")),
    }
}

/// Converts a stored value back to its wire form.
pub fn sql_to_wire(column: &Column, value: SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) if column.column_type == ColumnType::Real => real_value(i as f64),
        SqlValue::Integer(i) => Value::Number(i.into()),
        SqlValue::Real(f) => real_value(f),
        SqlValue::Text(s) => Value::String(s),
        SqlValue::Blob(b) => Value::String(encode_base64(&b)),
    }
}

/// Extracts and validates the sync-key string from a wire key object.
pub fn key_from_wire(table: &TableSpec, key: &Value) -> Result<String, String> {
    let qualified = &table.qualified;
    let column = &table.key_column;
    let object = key
        .as_object()
        .ok_or_else(|| format!("row key for {qualified} must be a JSON object"))?;
    let value = object
        .get(column)
        .ok_or_else(|| format!("row key for {qualified} must include {column:?}"))?;
    let text = value
        .as_str()
        .ok_or_else(|| format!("row key {qualified}.{column} must be a string"))?;
    // Strict for keys (`8-4-4-4-12` lowercase hex, the only UUID key form the reference accepts).
    if table.key_type() == ColumnType::Uuid && !is_canonical_uuid(text) {
        return Err(format!(
            "row key {qualified}.{column} must use canonical dashed lowercase UUID text"
        ));
    }
    if text.is_empty() {
        return Err(format!("row key {qualified}.{column} must not be empty"));
    }
    Ok(text.to_string())
}

/// The wire key object `{"<key column>": "<key>"}`.
pub fn wire_key(table: &TableSpec, key: &str) -> oversqlite_protocol::SyncKey {
    [(table.key_column.clone(), key.to_string())]
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn column(column_type: ColumnType, nullable: bool) -> Column {
        Column {
            name: "c".into(),
            column_type,
            nullable,
            default: None,
        }
    }

    #[test]
    fn round_trips_each_type() {
        let cases = [
            (ColumnType::Text, json!("R&D")),
            (ColumnType::Timestamp, json!("2026-03-24T20:42:11+02:00")),
            (
                ColumnType::Uuid,
                json!("3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10"),
            ),
            (ColumnType::Integer, json!(-42)),
            (ColumnType::Real, json!(1.5)),
            (ColumnType::Blob, json!("3q2+7w==")),
        ];
        for (ty, value) in cases {
            let col = column(ty, true);
            let stored = wire_to_sql(&col, &value).unwrap();
            assert_eq!(sql_to_wire(&col, stored), value, "{ty:?}");
        }
        assert_eq!(
            wire_to_sql(&column(ColumnType::Blob, true), &json!("3q2+7w==")).unwrap(),
            SqlValue::Blob(vec![0xde, 0xad, 0xbe, 0xef])
        );
        assert_eq!(
            wire_to_sql(
                &column(ColumnType::Uuid, true),
                &json!("3F1C0B0E-8D52-4A7E-9A51-0C6C3F1B2A10")
            )
            .unwrap(),
            SqlValue::Text("3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10".into())
        );
    }

    #[test]
    fn rejects_wrong_types_and_nulls() {
        assert!(wire_to_sql(&column(ColumnType::Integer, true), &json!(1.5)).is_err());
        assert!(wire_to_sql(&column(ColumnType::Integer, true), &json!(1e30)).is_err());
        assert_eq!(
            wire_to_sql(&column(ColumnType::Integer, true), &json!(1e3)).unwrap(),
            SqlValue::Integer(1000)
        );
        assert!(wire_to_sql(&column(ColumnType::Integer, true), &json!("1")).is_err());
        assert!(wire_to_sql(&column(ColumnType::Text, true), &json!(1)).is_err());
        assert!(wire_to_sql(&column(ColumnType::Blob, true), &json!("not base64!")).is_err());
        assert!(wire_to_sql(&column(ColumnType::Uuid, true), &json!("nope")).is_err());
        assert!(wire_to_sql(&column(ColumnType::Text, false), &Value::Null).is_err());
        assert_eq!(
            wire_to_sql(&column(ColumnType::Text, true), &Value::Null).unwrap(),
            SqlValue::Null
        );
    }
}

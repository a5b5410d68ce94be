//! Value codecs between the three representations of a row (§6):
//! * local JSON — what the capture triggers store (`json_object`, BLOBs as hex);
//! * wire JSON — what the server speaks (BLOBs base64, UUID BLOBs dashed);
//! * SQLite values — what is bound when the runtime writes application rows.
//!
//! Wire decoding is strict (fail closed on anything the server should not send);
//! local decoding is tolerant because it reads what this database itself wrote.

use oversqlite_protocol::values::{
    canonical_real, decode_base64, encode_base64, hex_decode, hex_encode, integer_of,
    parse_canonical_uuid, real_of, rfc3339, uuid_text,
};
use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Value};

use crate::error::{ErrorKind, Result, SyncError};
use crate::local::schema::{ColumnKind, KeyKind, ManagedTable};

fn column_error(table: &str, column: &str, what: impl std::fmt::Display) -> SyncError {
    SyncError::protocol(format!("column {table}.{column}: {what}"))
}

// ---------- local → wire (push) ----------

/// Converts one local JSON value to its wire form (§6.2).
pub fn local_value_to_wire(
    table: &str,
    column: &str,
    kind: ColumnKind,
    v: &Value,
) -> Result<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match kind {
        ColumnKind::Text => Ok(Value::String(match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(column_error(
                    table,
                    column,
                    format!("unsupported local TEXT value {other}"),
                ))
            }
        })),
        ColumnKind::Integer => match v {
            Value::Bool(b) => Ok(Value::from(*b as i64)),
            Value::Number(n) => integer_of(n).map(Value::from).ok_or_else(|| {
                column_error(
                    table,
                    column,
                    format!("local value {n} is not a 64-bit integer"),
                )
            }),
            other => Err(column_error(
                table,
                column,
                format!("local value {other} is not an integer"),
            )),
        },
        ColumnKind::Real => match v {
            Value::Number(n) => canonical_real(n).ok_or_else(|| {
                column_error(
                    table,
                    column,
                    format!("local value {n} is not a finite number"),
                )
            }),
            other => Err(column_error(
                table,
                column,
                format!("local value {other} is not a number"),
            )),
        },
        ColumnKind::Blob => {
            let bytes = local_blob_bytes(v, false)
                .ok_or_else(|| column_error(table, column, "local BLOB value is not hex"))?;
            Ok(Value::String(encode_base64(&bytes)))
        }
        ColumnKind::UuidBlob => {
            let bytes = local_blob_bytes(v, true)
                .ok_or_else(|| column_error(table, column, "local UUID value is not 16 bytes"))?;
            Ok(Value::String(uuid_text(&bytes).ok_or_else(|| {
                column_error(table, column, "local UUID value is not 16 bytes")
            })?))
        }
    }
}

/// Tolerant local BLOB parsing: hex (optionally `\x`-prefixed); for UUID columns
/// also UUID text or 16-byte base64.
fn local_blob_bytes(v: &Value, uuid: bool) -> Option<Vec<u8>> {
    let s = v.as_str()?;
    let hex = s.strip_prefix("\\x").unwrap_or(s);
    if let Some(b) = hex_decode(&hex.to_ascii_lowercase()) {
        if !uuid || b.len() == 16 {
            return Some(b);
        }
    }
    if uuid {
        if let Some(b) = parse_canonical_uuid(&s.to_ascii_lowercase()) {
            return Some(b.to_vec());
        }
    }
    let b = decode_base64(s)?;
    (!uuid || b.len() == 16).then_some(b)
}

/// Converts a local payload to the wire payload. The key column must be present; a
/// column the payload lacks was added to the table after the change was captured (the
/// capture triggers are rewritten by `oversqlite_open()` after `ALTER TABLE … ADD
/// COLUMN`) and is left out: the server keeps its stored value on an UPDATE and gives
/// it its default on an INSERT, so a change captured before a local migration never
/// erases a value another device wrote into the new column.
pub fn local_payload_to_wire(
    table: &ManagedTable,
    local: &Map<String, Value>,
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for col in &table.columns {
        let Some(v) = lookup(local, &col.json_name, &col.name) else {
            if col.primary_key_position > 0 {
                return Err(SyncError::state(format!(
                    "local payload for {} is missing column {}",
                    table.name, col.json_name
                )));
            }
            continue;
        };
        out.insert(
            col.json_name.clone(),
            local_value_to_wire(&table.name, &col.json_name, col.kind, v)?,
        );
    }
    Ok(out)
}

fn lookup<'a>(m: &'a Map<String, Value>, json_name: &str, declared: &str) -> Option<&'a Value> {
    m.get(json_name).or_else(|| m.get(declared))
}

/// The local key value (the text inside `key_json`: TEXT as is, BLOB as lowercase hex)
/// → the wire key string.
pub fn local_key_to_wire(table: &ManagedTable, local: &str) -> Result<String> {
    match table.key_kind {
        KeyKind::Text => Ok(local.to_string()),
        KeyKind::UuidBlob => hex_decode(local)
            .and_then(|b| uuid_text(&b))
            .ok_or_else(|| {
                SyncError::state(format!(
                    "local key {local:?} of {} is not a 16-byte BLOB",
                    table.name
                ))
            }),
    }
}

// ---------- wire → local (apply) ----------

/// Strictly decodes one wire value for binding into a column of `kind` (§6.3).
pub fn wire_value_to_sql(
    table: &str,
    column: &str,
    kind: ColumnKind,
    v: &Value,
) -> Result<SqlValue> {
    if v.is_null() {
        return Ok(SqlValue::Null);
    }
    match kind {
        ColumnKind::Text => Ok(SqlValue::Text(match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(column_error(
                    table,
                    column,
                    format!("wire value {other} is not a scalar"),
                ))
            }
        })),
        ColumnKind::Integer => match v {
            Value::Bool(b) => Ok(SqlValue::Integer(*b as i64)),
            Value::Number(n) => integer_of(n).map(SqlValue::Integer).ok_or_else(|| {
                column_error(
                    table,
                    column,
                    format!("wire value {n} is not a 64-bit integer"),
                )
            }),
            other => Err(column_error(
                table,
                column,
                format!("wire value {other} is not an integer"),
            )),
        },
        ColumnKind::Real => match v {
            Value::Number(n) => real_of(n)
                .map(SqlValue::Real)
                .ok_or_else(|| column_error(table, column, "wire number out of range")),
            other => Err(column_error(
                table,
                column,
                format!("wire value {other} is not a number"),
            )),
        },
        ColumnKind::Blob => v
            .as_str()
            .and_then(decode_base64)
            .map(SqlValue::Blob)
            .ok_or_else(|| column_error(table, column, "wire BLOB value is not canonical base64")),
        ColumnKind::UuidBlob => v
            .as_str()
            .and_then(parse_canonical_uuid)
            .map(|b| SqlValue::Blob(b.to_vec()))
            .ok_or_else(|| {
                column_error(
                    table,
                    column,
                    "wire UUID value is not a canonical lowercase dashed UUID",
                )
            }),
    }
}

/// A row decoded from a wire payload: its values in table column order, and which
/// columns the payload did not name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowValues {
    /// One value per table column (`NULL` where the payload named none).
    pub values: Vec<SqlValue>,
    /// Indexes of the columns the payload did not name; empty for a full row (the
    /// usual case, written by the prepared full-row upsert).
    pub absent: Vec<usize>,
}

/// Decodes a wire payload into SQLite values in table column order.
///
/// Schema changes roll out one side at a time, so the two sides' columns may differ:
/// * a payload column the local table lacks is refused (the server is ahead): applying the
///   row without it would drop its data. The caller's transaction rolls back, so nothing
///   is applied and no checkpoint moves; the message names the local migration to run.
/// * a local column the payload lacks (this database is ahead of the server, or the row
///   was committed before the server added the column, so every older bundle lacks it)
///   is left to the table, as the server's own partial INSERT and UPDATE do: a new row
///   takes the column's default (NULL without one), an existing row keeps its value. A
///   NOT NULL column without a default cannot be left out of a new row and is refused.
pub fn wire_payload_to_row(
    table: &ManagedTable,
    payload: &Map<String, Value>,
) -> Result<RowValues> {
    let unknown: Vec<&str> = payload
        .keys()
        .filter(|k| {
            !table
                .columns
                .iter()
                .any(|c| c.json_name.eq_ignore_ascii_case(k))
        })
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(SyncError::new(ErrorKind::SchemaMismatch, format!(
            "payload for {t} has column(s) {cols} that the local table {t} lacks: the server's schema is newer. \
             Migrate this database: ALTER TABLE {t} ADD COLUMN <column> <type> for each, then SELECT oversqlite_open(); \
             nothing was applied",
            t = table.name,
            cols = unknown.join(", ")
        )));
    }
    let value_of = |col: &oversqlite_core::Column| {
        payload
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&col.json_name))
            .map(|(_, v)| v)
    };
    let required: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| {
            ((c.not_null && !c.has_default) || c.primary_key_position > 0) && value_of(c).is_none()
        })
        .map(|c| c.json_name.as_str())
        .collect();
    if !required.is_empty() {
        return Err(SyncError::new(ErrorKind::SchemaMismatch, format!(
            "payload for {t} must contain every table column: it lacks NOT NULL column(s) {cols} without a default; the server's schema for {t} is older than this database's. \
             Migrate the server (add the column(s) to its config, with a default), or give the local column(s) a DEFAULT; nothing was applied",
            t = table.name,
            cols = required.join(", ")
        )));
    }
    let mut absent = Vec::new();
    let values = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, col)| match value_of(col) {
            Some(v) => wire_value_to_sql(&table.name, &col.json_name, col.kind, v),
            None => {
                absent.push(i);
                Ok(SqlValue::Null)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RowValues { values, absent })
}

/// A row key in its local forms.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalKey {
    /// The value inside `key_json` (TEXT key as is, BLOB key as lowercase hex).
    pub json_value: String,
    /// The value bound when addressing the application row.
    pub sql: SqlValue,
}

/// Maps a wire key (`{"<key>": "<string>"}`) to the local key of `table`.
pub fn wire_key_to_local(
    table: &ManagedTable,
    key: &std::collections::BTreeMap<String, String>,
) -> Result<LocalKey> {
    let value = key
        .get(&table.key_json_name)
        .or_else(|| key.get(&table.key_column))
        .ok_or_else(|| {
            SyncError::protocol(format!(
                "key for {} must contain {}",
                table.name, table.key_json_name
            ))
        })?;
    if key.len() != 1 {
        return Err(SyncError::protocol(format!(
            "key for {} must contain exactly one column",
            table.name
        )));
    }
    match table.key_kind {
        KeyKind::Text => Ok(LocalKey {
            json_value: value.clone(),
            sql: SqlValue::Text(value.clone()),
        }),
        KeyKind::UuidBlob => {
            let bytes = parse_canonical_uuid(value).ok_or_else(|| {
                SyncError::protocol(format!(
                    "key {value:?} for {} is not a canonical lowercase dashed UUID",
                    table.name
                ))
            })?;
            Ok(LocalKey {
                json_value: hex_encode(&bytes),
                sql: SqlValue::Blob(bytes.to_vec()),
            })
        }
    }
}

/// The local key from a stored `key_json` text.
pub fn local_key_from_key_json(table: &ManagedTable, key_json: &str) -> Result<LocalKey> {
    let parsed: Map<String, Value> = serde_json::from_str(key_json)
        .map_err(|e| SyncError::state(format!("stored key_json {key_json:?} is invalid: {e}")))?;
    let value = parsed
        .get(&table.key_json_name)
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            SyncError::state(format!(
                "stored key_json {key_json:?} lacks {}",
                table.key_json_name
            ))
        })?;
    match table.key_kind {
        KeyKind::Text => Ok(LocalKey {
            json_value: value.to_string(),
            sql: SqlValue::Text(value.to_string()),
        }),
        KeyKind::UuidBlob => {
            let bytes = hex_decode(value).filter(|b| b.len() == 16).ok_or_else(|| {
                SyncError::state(format!("stored key {value:?} is not 16-byte hex"))
            })?;
            Ok(LocalKey {
                json_value: value.to_string(),
                sql: SqlValue::Blob(bytes),
            })
        }
    }
}

// ---------- typed equivalence (§6.4) ----------

#[derive(Debug, Clone, PartialEq)]
enum Typed {
    Null,
    Text(String),
    Int(i64),
    Real(f64),
    Blob(Vec<u8>),
}

fn typed_from_sql(v: SqlValue) -> Typed {
    match v {
        SqlValue::Null => Typed::Null,
        SqlValue::Text(s) => Typed::Text(s),
        SqlValue::Integer(i) => Typed::Int(i),
        SqlValue::Real(f) => Typed::Real(if f == 0.0 { 0.0 } else { f }),
        SqlValue::Blob(b) => Typed::Blob(b),
    }
}

/// Which representation a payload is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadForm {
    Local,
    Wire,
}

fn typed_value(
    table: &ManagedTable,
    kind: ColumnKind,
    column: &str,
    v: &Value,
    form: PayloadForm,
) -> Option<Typed> {
    match form {
        PayloadForm::Wire => wire_value_to_sql(&table.name, column, kind, v)
            .ok()
            .map(typed_from_sql),
        PayloadForm::Local => {
            if v.is_null() {
                return Some(Typed::Null);
            }
            match kind {
                ColumnKind::Blob | ColumnKind::UuidBlob => {
                    local_blob_bytes(v, kind == ColumnKind::UuidBlob).map(Typed::Blob)
                }
                _ => {
                    let wire = local_value_to_wire(&table.name, column, kind, v).ok()?;
                    wire_value_to_sql(&table.name, column, kind, &wire)
                        .ok()
                        .map(typed_from_sql)
                }
            }
        }
    }
}

fn same_value(a: &Typed, b: &Typed, rfc3339_rule: bool) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Typed::Text(x), Typed::Text(y)) if rfc3339_rule => {
            match (rfc3339::parse(x), rfc3339::parse(y)) {
                (Some(p), Some(q)) => p == q,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Typed equivalence of two payloads of `table`: every member of either must be a column
/// of the table, the key column must be in both, and every column in both must decode to
/// equal typed values. With `rfc3339_rule` two texts that are the same RFC 3339 instant
/// also match. A column that only one side carries is not compared when the other side
/// is a local image: it was captured before the column was added (`ALTER TABLE … ADD
/// COLUMN` then `oversqlite_open()`), and the server's after-image of such an upload
/// holds the value the server kept. A wire payload lacking a column the other side
/// carries differs.
pub fn payloads_equivalent(
    table: &ManagedTable,
    a: &Map<String, Value>,
    a_form: PayloadForm,
    b: &Map<String, Value>,
    b_form: PayloadForm,
    rfc3339_rule: bool,
) -> bool {
    let known = |m: &Map<String, Value>| {
        m.len()
            == table
                .columns
                .iter()
                .filter(|c| lookup(m, &c.json_name, &c.name).is_some())
                .count()
    };
    if !known(a) || !known(b) {
        return false;
    }
    table.columns.iter().all(|col| {
        match (
            lookup(a, &col.json_name, &col.name),
            lookup(b, &col.json_name, &col.name),
        ) {
            (Some(va), Some(vb)) => match (
                typed_value(table, col.kind, &col.json_name, va, a_form),
                typed_value(table, col.kind, &col.json_name, vb, b_form),
            ) {
                (Some(x), Some(y)) => same_value(&x, &y, rfc3339_rule),
                _ => false,
            },
            // A local image may predate the column; a wire image (the server's
            // after-image holds every server column) lacking it is a real difference.
            (None, Some(_)) => col.primary_key_position == 0 && a_form == PayloadForm::Local,
            (Some(_), None) => col.primary_key_position == 0 && b_form == PayloadForm::Local,
            (None, None) => col.primary_key_position == 0,
        }
    })
}

/// Parses a stored JSON object text (payload columns).
pub fn parse_object(text: &str, what: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(SyncError::state(format!(
            "stored {what} is not a JSON object"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uuid_text_is_strict_and_canonical() {
        let bytes = hex_decode("00112233445566778899aabbccddeeff").unwrap();
        assert_eq!(
            uuid_text(&bytes).unwrap(),
            "00112233-4455-6677-8899-aabbccddeeff"
        );
        assert_eq!(
            parse_canonical_uuid("00112233-4455-6677-8899-aabbccddeeff").map(|b| b.to_vec()),
            Some(bytes)
        );
        assert_eq!(
            parse_canonical_uuid("00112233-4455-6677-8899-AABBCCDDEEFF"),
            None
        );
        assert_eq!(
            parse_canonical_uuid("00112233445566778899aabbccddeeff"),
            None
        );
        assert_eq!(uuid_text(&[1, 2, 3]), None);
    }

    #[test]
    fn local_values_become_wire_values_by_column_kind() {
        let w = |k, v: Value| local_value_to_wire("t", "c", k, &v).unwrap();
        assert_eq!(w(ColumnKind::Blob, json!("deadbeef")), json!("3q2+7w=="));
        assert_eq!(w(ColumnKind::Real, json!(1.0)), json!(1));
        assert_eq!(w(ColumnKind::Real, json!(1.5)), json!(1.5));
        assert_eq!(w(ColumnKind::Integer, json!(42)), json!(42));
        assert_eq!(w(ColumnKind::Text, json!(42)), json!("42"));
        assert_eq!(
            w(
                ColumnKind::UuidBlob,
                json!("00112233445566778899aabbccddeeff")
            ),
            json!("00112233-4455-6677-8899-aabbccddeeff")
        );
        assert_eq!(w(ColumnKind::Blob, Value::Null), Value::Null);
        assert!(local_value_to_wire("t", "c", ColumnKind::Integer, &json!(1.5)).is_err());
        assert!(local_value_to_wire("t", "c", ColumnKind::UuidBlob, &json!("0011")).is_err());
    }

    #[test]
    fn wire_values_decode_strictly() {
        let d = |k, v: Value| wire_value_to_sql("t", "c", k, &v);
        assert_eq!(
            d(ColumnKind::Integer, json!(true)).unwrap(),
            SqlValue::Integer(1)
        );
        assert_eq!(
            d(ColumnKind::Blob, json!("")).unwrap(),
            SqlValue::Blob(vec![])
        );
        assert_eq!(
            d(ColumnKind::Blob, json!("3q2+7w==")).unwrap(),
            SqlValue::Blob(vec![0xde, 0xad, 0xbe, 0xef])
        );
        assert!(
            d(ColumnKind::Blob, json!("3q2+7w")).is_err(),
            "unpadded base64 does not round-trip"
        );
        assert!(d(ColumnKind::Integer, json!("7")).is_err());
        assert!(d(
            ColumnKind::UuidBlob,
            json!("00112233445566778899aabbccddeeff")
        )
        .is_err());
        assert_eq!(
            d(ColumnKind::Text, json!(1.25)).unwrap(),
            SqlValue::Text("1.25".into())
        );
        assert_eq!(d(ColumnKind::Real, json!(3)).unwrap(), SqlValue::Real(3.0));
    }

    /// `person(id TEXT PRIMARY KEY, name TEXT, email TEXT)`, `email` added by a migration.
    fn person() -> ManagedTable {
        let col = |name: &str, pk: i64| oversqlite_core::Column {
            name: name.into(),
            json_name: name.into(),
            declared_type: "TEXT".into(),
            kind: ColumnKind::Text,
            not_null: pk > 0,
            primary_key_position: pk,
            has_default: false,
        };
        ManagedTable {
            name: "person".into(),
            key_column: "id".into(),
            key_json_name: "id".into(),
            key_kind: oversqlite_core::KeyKind::Text,
            columns: vec![col("id", 1), col("name", 0), col("email", 0)],
            foreign_keys: vec![],
        }
    }

    #[test]
    fn a_payload_captured_before_a_column_was_added_leaves_it_out() {
        let t = person();
        let old = json!({"id": "p1", "name": "Ada"});
        let wire = local_payload_to_wire(&t, old.as_object().unwrap()).unwrap();
        assert_eq!(
            Value::Object(wire),
            old,
            "no email: the server keeps its value"
        );
        let keyless = json!({"name": "Ada"});
        let err = local_payload_to_wire(&t, keyless.as_object().unwrap()).unwrap_err();
        assert!(err.message.contains("missing column id"), "{}", err.message);
    }

    /// A pulled row without `email` (committed before the column existed): a new row
    /// takes the local default, an existing row keeps its value; a NOT NULL column
    /// without a default cannot be left out.
    #[test]
    fn a_row_without_a_local_column_leaves_it_to_the_table() {
        let mut t = person();
        t.columns[2].not_null = true;
        t.columns[2].has_default = true;
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE person (id TEXT PRIMARY KEY NOT NULL, name TEXT, email TEXT NOT NULL DEFAULT 'none');
             INSERT INTO person VALUES ('p1', 'Ada', 'ada@x');",
        )
        .unwrap();
        for (id, name) in [("p1", "Ada L."), ("p2", "Grace")] {
            let payload = json!({"id": id, "name": name});
            let row = wire_payload_to_row(&t, payload.as_object().unwrap()).unwrap();
            assert_eq!(row.absent, vec![2]);
            crate::values::rows::upsert_row(&conn, &t, row).unwrap();
        }
        let rows: Vec<String> = conn
            .prepare("SELECT id || '|' || name || '|' || email FROM person ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, vec!["p1|Ada L.|ada@x", "p2|Grace|none"]);
        let full = json!({"id": "p3", "name": "Linus", "email": "l@x"});
        assert!(wire_payload_to_row(&t, full.as_object().unwrap())
            .unwrap()
            .absent
            .is_empty());
        t.columns[2].has_default = false;
        let err = wire_payload_to_row(&t, json!({"id": "p4"}).as_object().unwrap()).unwrap_err();
        assert!(
            err.message
                .contains("lacks NOT NULL column(s) email without a default"),
            "{}",
            err.message
        );
    }

    #[test]
    fn equivalence_compares_the_columns_both_payloads_carry() {
        let t = person();
        let eq = |a: Value, b: Value| {
            payloads_equivalent(
                &t,
                a.as_object().unwrap(),
                PayloadForm::Local,
                b.as_object().unwrap(),
                PayloadForm::Wire,
                true,
            )
        };
        let full = json!({"id": "p1", "name": "Ada", "email": "a@x"});
        // The server's after-image of a pre-migration upload carries the kept email.
        assert!(eq(json!({"id": "p1", "name": "Ada"}), full.clone()));
        assert!(eq(full.clone(), full.clone()));
        assert!(!eq(json!({"id": "p1", "name": "Ada L."}), full.clone()));
        assert!(!eq(
            json!({"id": "p1", "name": "Ada", "email": "b@x"}),
            full.clone()
        ));
        // A member the table lacks, or no key, is never equivalent.
        assert!(!eq(
            json!({"id": "p1", "name": "Ada", "rank": 1}),
            json!({"id": "p1", "name": "Ada", "rank": 1})
        ));
        assert!(!eq(json!({"name": "Ada"}), json!({"name": "Ada"})));
    }
}

//! Response bodies of the row-carrying read endpoints (pull, committed rows) with each
//! row's payload passed through as the JSON text the store holds. (Snapshot chunks go one
//! step further: `snapshot.rs` stores whole wire rows.)
//!
//! Payloads are stored as `serde_json::to_string(&Payload)`; decoding that text into a
//! `Payload` only to encode it again produced the very same bytes (sorted members,
//! shortest round-tripping numbers, serde_json's string escapes), and cost most of the
//! server's time on these endpoints. The structs below mirror the member order and the
//! omission rules of the protocol types they stand in for (`PullResponse`, `Bundle`,
//! `BundleRow`, `CommittedBundleRowsResponse`), so the wire bytes are unchanged. The stored
//! text is still validated as JSON before it is sent (fail closed on a corrupt store).

use oversqlite_protocol::Op;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::{Fail, ServiceResult};

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// An encoded JSON response body. The row-carrying responses borrow the registry, so they
/// are encoded where they are built (on the blocking pool, not the async runtime).
pub struct JsonBody(pub Vec<u8>);

impl JsonBody {
    pub fn encode<T: Serialize>(value: &T) -> ServiceResult<JsonBody> {
        Ok(JsonBody(serde_json::to_vec(value)?))
    }
}

/// A stored payload text, validated as one JSON value.
pub fn raw_payload(text: String) -> ServiceResult<Box<RawValue>> {
    RawValue::from_string(text)
        .map_err(|e| Fail::Internal(format!("stored payload is not valid JSON: {e}")))
}

/// Column `i` of `row` as text, borrowed from the statement (no copy).
pub fn text_column<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The wire key object `{"<key column>": "<key>"}` without building a map.
pub struct WireKey<'a> {
    pub key_column: &'a str,
    pub key: String,
}

impl Serialize for WireKey<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.key_column, &self.key)?;
        map.end()
    }
}

/// `BundleRow` on the wire.
#[derive(Serialize)]
pub struct RawBundleRow<'a> {
    pub schema: &'a str,
    pub table: &'a str,
    pub key: WireKey<'a>,
    pub op: Op,
    pub row_version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
}

/// `Bundle` on the wire (`row_count`/`bundle_hash` are `omitempty` in the reference; a
/// committed bundle always has both).
#[derive(Serialize)]
pub struct RawBundle<'a> {
    pub bundle_seq: i64,
    pub source_id: String,
    pub source_bundle_id: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub row_count: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bundle_hash: String,
    pub rows: Vec<RawBundleRow<'a>>,
}

/// `PullResponse` on the wire.
#[derive(Serialize)]
pub struct RawPullResponse<'a> {
    pub stable_bundle_seq: i64,
    pub bundles: Vec<RawBundle<'a>>,
    pub has_more: bool,
}

/// `CommittedBundleRowsResponse` on the wire.
#[derive(Serialize)]
pub struct RawCommittedRowsResponse<'a> {
    pub bundle_seq: i64,
    pub source_id: String,
    pub source_bundle_id: i64,
    pub row_count: i64,
    pub bundle_hash: String,
    pub rows: Vec<RawBundleRow<'a>>,
    pub next_row_ordinal: i64,
    pub has_more: bool,
}

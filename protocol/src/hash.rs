//! `bundle_hash`, `byte_count` (PROTOCOL.md §8.1) and the local `canonical_request_hash`
//! (§8.4).

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical::{ecmascript_number_to_string, write_object, write_string, write_value};
use crate::types::{BundleRow, Op, Payload, PushRequestRow, SyncKey};

/// Hash and size of a committed bundle's canonical row stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleDigest {
    /// Lowercase hex SHA-256 of the canonical text.
    pub bundle_hash: String,
    /// Length in bytes of the canonical text.
    pub byte_count: usize,
}

/// Streams the canonical text of a canonical row array (`[`, one object per row, `]`)
/// into SHA-256 without ever holding more than one row's text: a 100k-row bundle is
/// hashed in constant memory, and the rows never need to be collected first.
struct CanonicalArrayHasher {
    sha: Sha256,
    buf: String,
    bytes: usize,
    rows: i64,
}

impl CanonicalArrayHasher {
    fn new() -> Self {
        Self {
            sha: Sha256::new(),
            buf: String::with_capacity(512),
            bytes: 0,
            rows: 0,
        }
    }

    /// Hashes the next row's canonical object (preceded by `[` or `,`).
    fn push_row(
        &mut self,
        version: Version,
        schema: &str,
        table: &str,
        key: &SyncKey,
        op: Op,
        payload: PayloadRef,
    ) {
        self.buf.clear();
        self.buf.push(if self.rows == 0 { '[' } else { ',' });
        write_row(
            &mut self.buf,
            version,
            self.rows,
            schema,
            table,
            key,
            op,
            payload,
        );
        self.rows += 1;
        self.sha.update(self.buf.as_bytes());
        self.bytes += self.buf.len();
    }

    fn finish(mut self) -> BundleDigest {
        // An empty array is `[]`; otherwise the rows opened it.
        let tail: &[u8] = if self.rows == 0 { b"[]" } else { b"]" };
        self.sha.update(tail);
        self.bytes += tail.len();
        BundleDigest {
            bundle_hash: hex(&self.sha.finalize()),
            byte_count: self.bytes,
        }
    }
}

/// Incremental `bundle_hash` / `byte_count` (§8.1): feed the committed rows in bundle
/// order; `row_ordinal` is the 0-based count of rows fed so far.
pub struct BundleHasher(CanonicalArrayHasher);

impl Default for BundleHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl BundleHasher {
    pub fn new() -> Self {
        Self(CanonicalArrayHasher::new())
    }

    /// Adds the next row of the bundle.
    pub fn push(&mut self, row: &BundleRow) {
        self.push_parts(
            &row.schema,
            &row.table,
            &row.key,
            row.op,
            row.row_version,
            row.payload.as_ref(),
        );
    }

    /// Adds the next row from its parts (callers that do not hold a [`BundleRow`]).
    pub fn push_parts(
        &mut self,
        schema: &str,
        table: &str,
        key: &SyncKey,
        op: Op,
        row_version: i64,
        payload: Option<&Payload>,
    ) {
        let version = Version::Row(row_version);
        self.0
            .push_row(version, schema, table, key, op, PayloadRef::Map(payload));
    }

    /// Rows fed so far.
    pub fn row_count(&self) -> i64 {
        self.0.rows
    }

    pub fn finish(self) -> BundleDigest {
        self.0.finish()
    }
}

/// Incremental `canonical_request_hash` (§8.4): feed the outbox rows in `row_ordinal` order.
pub struct RequestHasher(CanonicalArrayHasher);

impl Default for RequestHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestHasher {
    pub fn new() -> Self {
        Self(CanonicalArrayHasher::new())
    }

    /// Adds the next outbox row.
    pub fn push(&mut self, row: &PushRequestRow) {
        self.push_parts(
            &row.schema,
            &row.table,
            &row.key,
            row.op,
            row.base_row_version,
            row.payload.as_ref(),
        );
    }

    /// Adds the next outbox row from its parts.
    pub fn push_parts(
        &mut self,
        schema: &str,
        table: &str,
        key: &SyncKey,
        op: Op,
        base_row_version: i64,
        payload: Option<&Payload>,
    ) {
        let version = Version::Base(base_row_version);
        self.0
            .push_row(version, schema, table, key, op, PayloadRef::Map(payload));
    }

    /// Adds the next outbox row whose payload the caller already holds as canonical
    /// text (exactly what [`crate::canonical_json`] writes for the payload object), so
    /// it is not formatted a second time.
    pub fn push_parts_with_canonical_payload(
        &mut self,
        schema: &str,
        table: &str,
        key: &SyncKey,
        op: Op,
        base_row_version: i64,
        canonical_payload: Option<&str>,
    ) {
        let version = Version::Base(base_row_version);
        let payload = PayloadRef::Canonical(canonical_payload);
        self.0.push_row(version, schema, table, key, op, payload);
    }

    /// Lowercase hex SHA-256 of the rows fed.
    pub fn finish(self) -> String {
        self.0.finish().bundle_hash
    }
}

/// `bundle_hash` and `byte_count` of a committed bundle (rows in bundle order, complete).
pub fn bundle_digest(rows: &[BundleRow]) -> BundleDigest {
    let mut hasher = BundleHasher::new();
    rows.iter().for_each(|row| hasher.push(row));
    hasher.finish()
}

/// `bundle_hash` of a committed bundle.
pub fn bundle_hash(rows: &[BundleRow]) -> String {
    bundle_digest(rows).bundle_hash
}

/// `byte_count` of a committed bundle.
pub fn byte_count(rows: &[BundleRow]) -> usize {
    bundle_digest(rows).byte_count
}

/// Canonical text hashed for a committed bundle: one object per row in bundle order, with
/// `row_ordinal` = 0-based position and DELETE payloads as `null`. For inspection and
/// tests; hashing streams ([`BundleHasher`]) and never builds this text. Built through
/// `serde_json::Value` and the generic canonicaliser, independently of the streaming
/// writer, so each checks the other.
pub fn committed_bundle_canonical_text(rows: &[BundleRow]) -> String {
    reference_text(rows.iter().map(|r| {
        let v = Version::Row(r.row_version);
        (
            v,
            r.schema.as_str(),
            r.table.as_str(),
            &r.key,
            r.op,
            r.payload.as_ref(),
        )
    }))
}

/// Canonical text behind `canonical_request_hash`: one object per outbox row with
/// `row_ordinal`, `schema`, `table`, `key`, `op`, `base_row_version`, `payload` (or `null`).
/// For inspection and tests; hashing streams ([`RequestHasher`]).
pub fn canonical_request_text(rows: &[PushRequestRow]) -> String {
    reference_text(rows.iter().map(|r| {
        let v = Version::Base(r.base_row_version);
        (
            v,
            r.schema.as_str(),
            r.table.as_str(),
            &r.key,
            r.op,
            r.payload.as_ref(),
        )
    }))
}

type RowParts<'a> = (
    Version,
    &'a str,
    &'a str,
    &'a SyncKey,
    Op,
    Option<&'a Payload>,
);

fn reference_text<'a>(rows: impl Iterator<Item = RowParts<'a>>) -> String {
    let items = rows
        .enumerate()
        .map(|(ordinal, (version, schema, table, key, op, payload))| {
            let mut obj = serde_json::Map::new();
            match version {
                Version::Base(v) => obj.insert("base_row_version".into(), Value::from(v)),
                Version::Row(v) => obj.insert("row_version".into(), Value::from(v)),
            };
            obj.insert("key".into(), key_value(key));
            obj.insert("op".into(), Value::from(op.as_str()));
            obj.insert("payload".into(), hashed_payload(op, payload));
            obj.insert("row_ordinal".into(), Value::from(ordinal as i64));
            obj.insert("schema".into(), Value::from(schema));
            obj.insert("table".into(), Value::from(table));
            Value::Object(obj)
        })
        .collect();
    let mut out = String::new();
    write_value(&mut out, &Value::Array(items));
    out
}

/// `canonical_request_hash` stored with a frozen outbox (KMP formula, §8.4).
pub fn canonical_request_hash(rows: &[PushRequestRow]) -> String {
    let mut hasher = RequestHasher::new();
    rows.iter().for_each(|row| hasher.push(row));
    hasher.finish()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for byte in digest.iter() {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0xf) as usize] as char);
    }
    out
}

/// The version member of a canonical row: the one place where a committed bundle row
/// (`row_version`) and an outbox request row (`base_row_version`) differ.
#[derive(Clone, Copy)]
enum Version {
    Base(i64),
    Row(i64),
}

/// One row's canonical object. Members in byte order: base_row_version, key, op,
/// payload, row_ordinal, row_version, schema, table (only one version member occurs).
#[allow(clippy::too_many_arguments)]
fn write_row(
    out: &mut String,
    version: Version,
    ordinal: i64,
    schema: &str,
    table: &str,
    key: &SyncKey,
    op: Op,
    payload: PayloadRef,
) {
    out.push('{');
    if let Version::Base(v) = version {
        out.push_str("\"base_row_version\":");
        out.push_str(&ecmascript_number_to_string(v as f64));
        out.push(',');
    }
    out.push_str("\"key\":");
    write_key(out, key);
    out.push_str(",\"op\":\"");
    out.push_str(op.as_str());
    out.push_str("\",\"payload\":");
    write_payload(out, op, payload);
    out.push_str(",\"row_ordinal\":");
    out.push_str(&ecmascript_number_to_string(ordinal as f64));
    if let Version::Row(v) = version {
        out.push_str(",\"row_version\":");
        out.push_str(&ecmascript_number_to_string(v as f64));
    }
    out.push_str(",\"schema\":");
    write_string(out, schema);
    out.push_str(",\"table\":");
    write_string(out, table);
    out.push('}');
}

fn write_key(out: &mut String, key: &SyncKey) {
    // BTreeMap<String, _> iterates in byte order of the keys: already canonical.
    out.push('{');
    for (i, (k, v)) in key.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, k);
        out.push(':');
        write_string(out, v);
    }
    out.push('}');
}

/// A row's payload as the hasher receives it.
#[derive(Clone, Copy)]
enum PayloadRef<'a> {
    Map(Option<&'a Payload>),
    /// Already canonical text of the payload object.
    Canonical(Option<&'a str>),
}

fn write_payload(out: &mut String, op: Op, payload: PayloadRef) {
    match (op, payload) {
        (Op::Delete, _) | (_, PayloadRef::Map(None) | PayloadRef::Canonical(None)) => {
            out.push_str("null")
        }
        (_, PayloadRef::Map(Some(map))) => write_object(out, map),
        (_, PayloadRef::Canonical(Some(text))) => out.push_str(text),
    }
}

fn key_value(key: &SyncKey) -> Value {
    Value::Object(
        key.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn hashed_payload(op: Op, payload: Option<&Payload>) -> Value {
    match (op, payload) {
        (Op::Delete, _) | (_, None) => Value::Null,
        (_, Some(map)) => Value::Object(map.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_a_single_insert() {
        let rows: Vec<BundleRow> = serde_json::from_str(
            r#"[{"schema":"main","table":"users","key":{"id":"user-1"},"op":"INSERT","row_version":1,
                 "payload":{"id":"user-1","name":"Ada"}}]"#,
        )
        .unwrap();
        let text = committed_bundle_canonical_text(&rows);
        assert_eq!(
            text,
            r#"[{"key":{"id":"user-1"},"op":"INSERT","payload":{"id":"user-1","name":"Ada"},"row_ordinal":0,"row_version":1,"schema":"main","table":"users"}]"#
        );
        let digest = bundle_digest(&rows);
        assert_eq!(digest.byte_count, 142);
        assert_eq!(byte_count(&rows), 142);
        assert_eq!(
            digest.bundle_hash,
            "d01868c80bc7b55a07137bc81d8382388e82d693216aad65d97bdd4b277ee06a"
        );
        assert_eq!(bundle_hash(&rows), digest.bundle_hash);
    }

    #[test]
    fn example_b_numbers_base64_html_escaping_and_delete() {
        let rows: Vec<BundleRow> = serde_json::from_str(
            r#"[{"schema":"business","table":"typed_rows","key":{"id":"3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10"},"op":"UPDATE","row_version":42,
  "payload":{"rating":1.50,"name":"R&D <ops>","id":"3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10","data":"3q2+7w==","count_value":1e3,"enabled_flag":true,"note":null}},
 {"schema":"business","table":"users","key":{"id":"9b2e4c1a-0000-4000-8000-000000000001"},"op":"DELETE","row_version":42}]"#,
        )
        .unwrap();
        let text = committed_bundle_canonical_text(&rows);
        assert_eq!(
            text,
            r#"[{"key":{"id":"3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10"},"op":"UPDATE","payload":{"count_value":1000,"data":"3q2+7w==","enabled_flag":true,"id":"3f1c0b0e-8d52-4a7e-9a51-0c6c3f1b2a10","name":"R\u0026D \u003cops\u003e","note":null,"rating":1.5},"row_ordinal":0,"row_version":42,"schema":"business","table":"typed_rows"},{"key":{"id":"9b2e4c1a-0000-4000-8000-000000000001"},"op":"DELETE","payload":null,"row_ordinal":1,"row_version":42,"schema":"business","table":"users"}]"#
        );
        let digest = bundle_digest(&rows);
        assert_eq!(digest.byte_count, 467);
        assert_eq!(
            digest.bundle_hash,
            "f341380bee6d2e6b6b791020aee51c2fcc30f25734665af875800fa63f248a04"
        );
    }

    #[test]
    fn delete_with_explicit_null_payload_hashes_like_absent() {
        let absent: Vec<BundleRow> = serde_json::from_str(
            r#"[{"schema":"s","table":"t","key":{"id":"k"},"op":"DELETE","row_version":3}]"#,
        )
        .unwrap();
        let null: Vec<BundleRow> = serde_json::from_str(
            r#"[{"schema":"s","table":"t","key":{"id":"k"},"op":"DELETE","row_version":3,"payload":null}]"#,
        )
        .unwrap();
        assert_eq!(bundle_hash(&absent), bundle_hash(&null));
        assert_ne!(bundle_hash(&absent), bundle_hash(&[]));
    }

    #[test]
    fn canonical_request_hash_example() {
        let rows: Vec<PushRequestRow> = serde_json::from_str(
            r#"[{"schema":"main","table":"users","key":{"id":"user-1"},"op":"INSERT","base_row_version":0,
                 "payload":{"id":"user-1","name":"Ada"}}]"#,
        )
        .unwrap();
        assert_eq!(
            canonical_request_text(&rows),
            r#"[{"base_row_version":0,"key":{"id":"user-1"},"op":"INSERT","payload":{"id":"user-1","name":"Ada"},"row_ordinal":0,"schema":"main","table":"users"}]"#
        );
        assert_eq!(
            canonical_request_hash(&rows),
            "97733d59af0ff8c666b77a7e2205895bcb861397df23aed534478e3ee0ec45f3"
        );
    }

    #[test]
    fn streaming_hashers_match_the_canonical_text() {
        let rows: Vec<BundleRow> = serde_json::from_str(
            r#"[{"schema":"b","table":"t","key":{"z":"1","a":"<2>"},"op":"INSERT","row_version":9007199254740993,
                 "payload":{"n":1.50,"s":"\u2028&","o":{"y":[1,null,true],"x":-0.0},"a":null}},
                {"schema":"b","table":"t","key":{"id":"k"},"op":"DELETE","row_version":2,"payload":{"ignored":1}},
                {"schema":"b","table":"u","key":{"id":"é"},"op":"UPDATE","row_version":3,"payload":{}}]"#,
        )
        .unwrap();
        for n in 0..=rows.len() {
            let text = committed_bundle_canonical_text(&rows[..n]);
            let digest = bundle_digest(&rows[..n]);
            assert_eq!(digest.byte_count, text.len(), "rows {n}");
            assert_eq!(digest.bundle_hash, sha256_hex(text.as_bytes()), "rows {n}");
        }
        let requests: Vec<PushRequestRow> = rows
            .iter()
            .map(|r| PushRequestRow {
                schema: r.schema.clone(),
                table: r.table.clone(),
                key: r.key.clone(),
                op: r.op,
                base_row_version: r.row_version - 1,
                payload: r.payload.clone(),
            })
            .collect();
        for n in 0..=requests.len() {
            assert_eq!(
                canonical_request_hash(&requests[..n]),
                sha256_hex(canonical_request_text(&requests[..n]).as_bytes()),
                "rows {n}"
            );
        }
        assert_eq!(sha256_hex(b"[]"), bundle_hash(&[]));
        let mut from_text = RequestHasher::new();
        for r in &requests {
            let text = r
                .payload
                .as_ref()
                .map(|p| crate::canonical_json(&Value::Object(p.clone())));
            from_text.push_parts_with_canonical_payload(
                &r.schema,
                &r.table,
                &r.key,
                r.op,
                r.base_row_version,
                text.as_deref(),
            );
        }
        assert_eq!(from_text.finish(), canonical_request_hash(&requests));
    }
}

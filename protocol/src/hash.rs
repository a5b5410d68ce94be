//! `bundle_hash`, `byte_count` (PROTOCOL.md §8.1) and the local `canonical_request_hash`
//! (§8.4).

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical::canonical_json;
use crate::types::{BundleRow, Op, Payload, PushRequestRow, SyncKey};

/// Hash and size of a committed bundle's canonical row stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleDigest {
    /// Lowercase hex SHA-256 of the canonical text.
    pub bundle_hash: String,
    /// Length in bytes of the canonical text.
    pub byte_count: usize,
}

/// Canonical text hashed for a committed bundle: one object per row in bundle order, with
/// `row_ordinal` = 0-based position and DELETE payloads as `null`.
pub fn committed_bundle_canonical_text(rows: &[BundleRow]) -> String {
    let items: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(ordinal, row)| {
            json!({
                "key": key_value(&row.key),
                "op": row.op.as_str(),
                "payload": hashed_payload(row.op, row.payload.as_ref()),
                "row_ordinal": ordinal as i64,
                "row_version": row.row_version,
                "schema": row.schema,
                "table": row.table,
            })
        })
        .collect();
    canonical_json(&Value::Array(items))
}

/// `bundle_hash` and `byte_count` of a committed bundle (rows in bundle order, complete).
pub fn bundle_digest(rows: &[BundleRow]) -> BundleDigest {
    let text = committed_bundle_canonical_text(rows);
    BundleDigest {
        bundle_hash: sha256_hex(text.as_bytes()),
        byte_count: text.len(),
    }
}

/// `bundle_hash` of a committed bundle.
pub fn bundle_hash(rows: &[BundleRow]) -> String {
    bundle_digest(rows).bundle_hash
}

/// `byte_count` of a committed bundle.
pub fn byte_count(rows: &[BundleRow]) -> usize {
    committed_bundle_canonical_text(rows).len()
}

/// Canonical text behind `canonical_request_hash`: one object per outbox row with
/// `row_ordinal`, `schema`, `table`, `key`, `op`, `base_row_version`, `payload` (or `null`).
pub fn canonical_request_text(rows: &[PushRequestRow]) -> String {
    let items: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(ordinal, row)| {
            json!({
                "base_row_version": row.base_row_version,
                "key": key_value(&row.key),
                "op": row.op.as_str(),
                "payload": hashed_payload(row.op, row.payload.as_ref()),
                "row_ordinal": ordinal as i64,
                "schema": row.schema,
                "table": row.table,
            })
        })
        .collect();
    canonical_json(&Value::Array(items))
}

/// `canonical_request_hash` stored with a frozen outbox (KMP formula, §8.4).
pub fn canonical_request_hash(rows: &[PushRequestRow]) -> String {
    sha256_hex(canonical_request_text(rows).as_bytes())
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest.iter() {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0xf) as usize] as char);
    }
    out
}

fn key_value(key: &SyncKey) -> Value {
    Value::Object(
        key.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
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
}

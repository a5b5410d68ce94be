//! Client-side validation of server responses (§2). Every check fails closed with a
//! protocol error whose message names the offending value; the substrings pinned by
//! the fixtures (`pull-snapshot/basic.json`) are reproduced exactly.

use oversqlite_protocol::{
    BundleRow, CommittedBundleRowsResponse, Op, Payload, PushConflictDetails,
    SnapshotChunkResponse, SnapshotRow, SnapshotSessionCreateResponse, SyncKey,
};

use crate::error::{Result, SyncError};
use crate::wording::counted;
use oversqlite_protocol::values::rfc3339;

pub use oversqlite_protocol::HIDDEN_SCOPE_COLUMN;

fn fail<T>(msg: String) -> Result<T> {
    Err(SyncError::protocol(msg))
}

pub fn validate_key(what: &str, key: &SyncKey) -> Result<()> {
    if key.is_empty() {
        return fail(format!("{what} key must not be empty"));
    }
    for (k, v) in key {
        if k.trim().is_empty() {
            return fail(format!("{what} key has an empty column name"));
        }
        if k.eq_ignore_ascii_case(HIDDEN_SCOPE_COLUMN) {
            return fail(format!("{what} key must not contain {HIDDEN_SCOPE_COLUMN}"));
        }
        if v.is_empty() {
            return fail(format!("{what} key value for {k} must not be empty"));
        }
    }
    Ok(())
}

pub fn validate_payload(what: &str, payload: &Payload) -> Result<()> {
    if payload
        .keys()
        .any(|k| k.eq_ignore_ascii_case(HIDDEN_SCOPE_COLUMN))
    {
        return fail(format!(
            "{what} payload must not contain hidden server column {HIDDEN_SCOPE_COLUMN}"
        ));
    }
    Ok(())
}

fn validate_target(what: &str, schema: &str, table: &str) -> Result<()> {
    if schema.trim().is_empty() {
        return fail(format!("{what} schema must not be empty"));
    }
    if table.trim().is_empty() {
        return fail(format!("{what} table must not be empty"));
    }
    Ok(())
}

/// A row of a pulled or committed bundle.
pub fn validate_bundle_row(row: &BundleRow) -> Result<()> {
    validate_target("bundle row", &row.schema, &row.table)?;
    validate_key("bundle row", &row.key)?;
    if row.row_version <= 0 {
        return fail(format!(
            "bundle row row_version {} must be positive",
            row.row_version
        ));
    }
    match (&row.op, &row.payload) {
        (Op::Delete, Some(p)) => validate_payload("bundle row", p),
        (Op::Delete, None) => Ok(()),
        (_, Some(p)) => validate_payload("bundle row", p),
        (op, None) => fail(format!(
            "bundle row {op} for {}.{} must carry an object payload",
            row.schema, row.table
        )),
    }
}

/// A pulled bundle's own members, relative to the previous bundle of the page and the
/// page's `stable_bundle_seq` (rows are checked separately).
pub fn validate_bundle_head(
    bundle_seq: i64,
    source_id: &str,
    source_bundle_id: i64,
    previous: i64,
    stable: i64,
) -> Result<()> {
    if bundle_seq <= previous {
        return fail(format!(
            "bundle_seq {bundle_seq} is not above previous bundle_seq {previous}"
        ));
    }
    if bundle_seq > stable {
        return fail(format!(
            "bundle_seq {bundle_seq} exceeds stable_bundle_seq {stable}"
        ));
    }
    if source_id.trim().is_empty() {
        return fail(format!("bundle {bundle_seq} has an empty source_id"));
    }
    if source_bundle_id <= 0 {
        return fail(format!(
            "bundle {bundle_seq} source_bundle_id {source_bundle_id} must be positive"
        ));
    }
    Ok(())
}

/// The page-level members of a `GET /sync/pull` page (§2.8), relative to the
/// requested `after_bundle_seq`.
pub fn validate_pull_head(
    stable_bundle_seq: i64,
    has_bundles: bool,
    after_bundle_seq: i64,
) -> Result<()> {
    if stable_bundle_seq < 0 {
        return fail(format!(
            "stable_bundle_seq {stable_bundle_seq} must be non-negative"
        ));
    }
    if stable_bundle_seq < after_bundle_seq {
        return fail(format!(
            "stable_bundle_seq {stable_bundle_seq} is behind requested after_bundle_seq {after_bundle_seq}"
        ));
    }
    if has_bundles && stable_bundle_seq <= 0 {
        return fail("missing stable_bundle_seq for non-empty bundle list".to_string());
    }
    Ok(())
}

/// A pulled bundle's advertised `row_count` and `bundle_hash` (sent by the reference
/// server though the swagger omits them; checked when present) against the rows
/// actually received, as counted and hashed (§8.1) while reading them.
pub fn validate_bundle_digest(
    bundle_seq: i64,
    row_count: Option<i64>,
    bundle_hash: Option<&str>,
    rows: i64,
    computed_hash: &str,
) -> Result<()> {
    if let Some(expected) = row_count {
        if expected != rows {
            return fail(format!(
                "bundle {bundle_seq} row_count {expected} does not match the {} received",
                counted(rows, "row", "rows")
            ));
        }
    }
    if let Some(expected) = bundle_hash {
        if !expected.eq_ignore_ascii_case(computed_hash) {
            return fail(format!(
                "bundle {bundle_seq} bundle_hash {expected} does not match the rows received ({computed_hash})"
            ));
        }
    }
    Ok(())
}

/// `POST /sync/snapshot-sessions` response (§2.9).
pub fn validate_snapshot_session(s: &SnapshotSessionCreateResponse) -> Result<()> {
    if s.snapshot_id.trim().is_empty() {
        return fail("snapshot session snapshot_id must not be empty".to_string());
    }
    if s.snapshot_bundle_seq < 0 {
        return fail(format!(
            "snapshot_bundle_seq {} must be non-negative",
            s.snapshot_bundle_seq
        ));
    }
    if s.row_count < 0 {
        return fail(format!(
            "snapshot session row_count {} must be non-negative",
            s.row_count
        ));
    }
    if s.row_count > 0 && s.snapshot_bundle_seq <= 0 {
        return fail("missing snapshot_bundle_seq for non-empty row set".to_string());
    }
    if s.byte_count < 0 {
        return fail(format!(
            "snapshot session byte_count {} must be non-negative",
            s.byte_count
        ));
    }
    if s.expires_at.trim().is_empty() || rfc3339::parse(s.expires_at.trim()).is_none() {
        return fail(format!(
            "snapshot session expires_at {:?} must be an RFC3339/ISO-8601 instant",
            s.expires_at
        ));
    }
    Ok(())
}

pub fn validate_snapshot_row(row: &SnapshotRow) -> Result<()> {
    validate_target("snapshot row", &row.schema, &row.table)?;
    validate_key("snapshot row", &row.key)?;
    if row.row_version <= 0 {
        return fail(format!(
            "snapshot row row_version {} must be positive",
            row.row_version
        ));
    }
    validate_payload("snapshot row", &row.payload)
}

/// `GET /sync/snapshot-sessions/{id}` page (§2.10), 1-based ordinals.
pub fn validate_snapshot_chunk(
    c: &SnapshotChunkResponse,
    snapshot_id: &str,
    snapshot_bundle_seq: i64,
    after_row_ordinal: i64,
) -> Result<()> {
    if c.snapshot_id != snapshot_id {
        return fail(format!(
            "snapshot chunk snapshot_id {:?} does not match session {snapshot_id:?}",
            c.snapshot_id
        ));
    }
    if c.snapshot_bundle_seq != snapshot_bundle_seq {
        return fail(format!(
            "snapshot chunk snapshot_bundle_seq {} does not match session {snapshot_bundle_seq}",
            c.snapshot_bundle_seq
        ));
    }
    if !c.rows.is_empty() && c.snapshot_bundle_seq <= 0 {
        return fail("missing snapshot_bundle_seq for non-empty row set".to_string());
    }
    let expected = after_row_ordinal + c.rows.len() as i64;
    if c.next_row_ordinal != expected {
        return fail(format!(
            "snapshot chunk next_row_ordinal {} does not match expected {expected}",
            c.next_row_ordinal
        ));
    }
    if c.has_more && c.rows.is_empty() {
        return fail("snapshot chunk has_more=true must include at least one row".to_string());
    }
    c.rows.iter().try_for_each(|row| {
        validate_snapshot_row(row)?;
        // A snapshot at seq S holds each row as of S: no row can be newer.
        if row.row_version > c.snapshot_bundle_seq {
            return fail(format!(
                "snapshot row row_version {} is above snapshot_bundle_seq {}",
                row.row_version, c.snapshot_bundle_seq
            ));
        }
        Ok(())
    })
}

/// The metadata a committed-rows page must repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedMeta {
    pub bundle_seq: i64,
    pub source_id: String,
    pub source_bundle_id: i64,
    pub row_count: i64,
    pub bundle_hash: String,
}

/// `GET /sync/committed-bundles/{seq}/rows` page (§2.7); `after` is the requested
/// `after_row_ordinal` or `None` for the first page (0-based ordinals).
pub fn validate_committed_page(
    p: &CommittedBundleRowsResponse,
    meta: &CommittedMeta,
    after: Option<i64>,
) -> Result<()> {
    if p.bundle_seq != meta.bundle_seq
        || p.source_id != meta.source_id
        || p.source_bundle_id != meta.source_bundle_id
        || p.row_count != meta.row_count
        || p.bundle_hash != meta.bundle_hash
    {
        return fail(format!(
            "committed bundle page metadata (seq {}, source {}, source bundle {}, rows {}, bundle_hash {}) does not match committed bundle (seq {}, source {}, source bundle {}, rows {}, bundle_hash {})",
            p.bundle_seq, p.source_id, p.source_bundle_id, p.row_count, p.bundle_hash,
            meta.bundle_seq, meta.source_id, meta.source_bundle_id, meta.row_count, meta.bundle_hash
        ));
    }
    let base = after.unwrap_or(-1);
    // An empty page echoes the supplied `after_row_ordinal`; for an empty first page
    // the Go server says 0 and the KMP validator -1, so both are accepted there.
    let ok = if p.rows.is_empty() {
        match after {
            Some(a) => p.next_row_ordinal == a,
            None => p.next_row_ordinal == 0 || p.next_row_ordinal == -1,
        }
    } else {
        p.next_row_ordinal == base + p.rows.len() as i64
    };
    let expected = if p.rows.is_empty() {
        after.unwrap_or(0)
    } else {
        base + p.rows.len() as i64
    };
    if !ok {
        return fail(format!(
            "committed bundle next_row_ordinal {} does not match expected {expected}",
            p.next_row_ordinal
        ));
    }
    if p.has_more && p.rows.is_empty() {
        return fail(
            "committed bundle page has_more=true must include at least one row".to_string(),
        );
    }
    p.rows.iter().try_for_each(validate_bundle_row)
}

/// The `conflict` member of a `409 push_conflict` (§2.5).
pub fn validate_conflict(c: &PushConflictDetails) -> Result<()> {
    validate_target("push conflict", &c.schema, &c.table)?;
    validate_key("push conflict", &c.key)?;
    if c.base_row_version < 0 || c.server_row_version < 0 {
        return fail(format!(
            "push conflict versions (base {}, server {}) must be non-negative",
            c.base_row_version, c.server_row_version
        ));
    }
    if let Some(row) = &c.server_row {
        validate_payload("push conflict server_row", row)?;
    }
    Ok(())
}

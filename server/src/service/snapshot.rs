//! Snapshot sessions (§2.9–§2.11, §10.8): a frozen copy of every live row of the user,
//! optionally together with a source replacement (rotated rebuild).

use oversqlite_protocol::values::{encode_base64, normalize_uuid};
use oversqlite_protocol::{
    codes, SnapshotSessionCreateRequest, SnapshotSessionCreateResponse, SourceReplacement,
};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

#[cfg(doc)]
use super::commit::row_to_payload;
use super::raw_rows::{text_column, JsonBody};
use super::scope::{
    load_source, load_user, require_initialized, SOURCE_ACTIVE, SOURCE_RESERVED, SOURCE_RETIRED,
};
use crate::config::{ColumnType, TableSpec};
use crate::error::{ApiError, Fail, ServiceResult};
use crate::state::{AppState, MAX_ROWS_PER_CHUNK};
use crate::timefmt::{deadline_ms, now_ms, rfc3339_from_ms};

fn invalid(message: &str) -> ApiError {
    ApiError::bad_request(codes::SNAPSHOT_SESSION_INVALID, message)
}

/// Shape checks of `source_replacement` (400 `snapshot_session_invalid`), trimmed.
fn validate_replacement(source: &str, r: &SourceReplacement) -> ServiceResult<SourceReplacement> {
    let previous = r.previous_source_id.trim().to_string();
    let new = r.new_source_id.trim().to_string();
    let reason = r.reason.trim().to_string();
    if previous != source {
        return Err(invalid(
            "source_replacement.previous_source_id must match the Oversync-Source-ID header",
        )
        .into());
    }
    if new.is_empty() || new == previous {
        return Err(invalid(
            "source_replacement.new_source_id must be non-empty and differ from previous_source_id",
        )
        .into());
    }
    if !codes::is_recovery_reason(&reason) {
        return Err(invalid("source_replacement.reason is not a supported recovery reason").into());
    }
    Ok(SourceReplacement {
        previous_source_id: previous,
        new_source_id: new,
        reason,
    })
}

fn apply_replacement(conn: &Connection, user: &str, r: &SourceReplacement) -> ServiceResult<()> {
    let previous = load_source(conn, user, &r.previous_source_id)?;
    let reserve_new = || {
        conn.execute(
            "INSERT INTO _oversync_source_state (user_id, source_id, state, max_committed_source_bundle_id) VALUES (?1, ?2, 'reserved', 0)",
            params![user, r.new_source_id],
        )
    };
    if let Some(prev) = previous.as_ref().filter(|p| p.state == SOURCE_RETIRED) {
        if prev.replaced_by.as_deref() != Some(r.new_source_id.as_str()) {
            return Err(
                ApiError::source_retired(&r.previous_source_id, prev.replaced_by.clone()).into(),
            );
        }
        return match load_source(conn, user, &r.new_source_id)? {
            None => {
                reserve_new()?;
                Ok(())
            }
            Some(s) if s.state == SOURCE_RESERVED || s.state == SOURCE_ACTIVE => Ok(()),
            Some(_) => Err(ApiError::conflict(
                codes::SOURCE_REPLACEMENT_INVALID,
                "replacement source is itself retired",
            )
            .into()),
        };
    }
    if load_source(conn, user, &r.new_source_id)?.is_some() {
        return Err(ApiError::conflict(
            codes::SOURCE_REPLACEMENT_INVALID,
            format!("source {} is already known", r.new_source_id),
        )
        .into());
    }
    reserve_new()?;
    conn.execute(
        "INSERT INTO _oversync_source_state (user_id, source_id, state, max_committed_source_bundle_id, replaced_by_source_id, retirement_reason)
         VALUES (?1, ?2, 'retired', 0, ?3, ?4)
         ON CONFLICT (user_id, source_id) DO UPDATE SET state = 'retired',
             replaced_by_source_id = excluded.replaced_by_source_id, retirement_reason = excluded.retirement_reason",
        params![user, r.previous_source_id, r.new_source_id, r.reason],
    )?;
    Ok(())
}

pub fn create(
    app: &AppState,
    conn: &mut Connection,
    user: &str,
    source: &str,
    request: Option<SnapshotSessionCreateRequest>,
) -> ServiceResult<SnapshotSessionCreateResponse> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "DELETE FROM _oversync_snapshot_blocks WHERE snapshot_id IN (SELECT snapshot_id FROM _oversync_snapshot_sessions WHERE expires_at_ms <= ?1)",
        [now],
    )?;
    tx.execute(
        "DELETE FROM _oversync_snapshot_sessions WHERE expires_at_ms <= ?1",
        [now],
    )?;
    let state = load_user(&tx, user)?;
    require_initialized(state.as_ref(), now)?;
    let snapshot_bundle_seq = state
        .expect("initialized scope has a user row")
        .latest_bundle_seq();
    // Like the reference, the replacement is validated only once the scope is known usable.
    let replacement = request
        .and_then(|r| r.source_replacement)
        .map(|r| validate_replacement(source, &r))
        .transpose()?;
    if let Some(r) = &replacement {
        apply_replacement(&tx, user, r)?;
    }
    let snapshot_id = uuid::Uuid::new_v4().to_string();
    let (row_count, byte_count) = materialise(app, &tx, user, &snapshot_id)?;
    let expires_at = deadline_ms(now, app.settings.snapshot_session_ttl_secs);
    tx.execute(
        "INSERT INTO _oversync_snapshot_sessions (snapshot_id, user_id, snapshot_bundle_seq, row_count, byte_count, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![snapshot_id, user, snapshot_bundle_seq, row_count, byte_count, expires_at],
    )?;
    tx.commit()?;
    Ok(SnapshotSessionCreateResponse {
        snapshot_id,
        snapshot_bundle_seq,
        row_count,
        byte_count,
        expires_at: rfc3339_from_ms(expires_at),
    })
}

/// Rows per stored snapshot block, at most.
const BLOCK_ROWS: i64 = 1000;
/// Bytes of row text per stored block, about: a block is closed before a row would take
/// it past this, so a block of large rows never approaches SQLite's 1 GB value limit
/// (a row larger than this is a block of its own) and building one stays small.
const BLOCK_BYTES: usize = 4 << 20;

/// Copies every live row, ordered by (table, key), into the session; ordinals from 1.
///
/// The frozen rows are stored in blocks of up to [`BLOCK_ROWS`] rows and about
/// [`BLOCK_BYTES`] bytes: one store row holds the rows' wire JSON objects (exactly what a chunk response carries for them), one per line
/// (compact JSON never contains a raw newline). Writing and reading one store row per
/// snapshot row, and re-encoding each row per chunk, was most of a hydrate's server time.
fn materialise(
    app: &AppState,
    conn: &Connection,
    user: &str,
    snapshot_id: &str,
) -> ServiceResult<(i64, i64)> {
    let (mut row_count, mut byte_count) = (0i64, 0i64);
    let limits = &app.settings;
    let mut block = SnapshotBlock::new(snapshot_id);
    let mut payload = Vec::new();
    for table in &app.registry.tables {
        let mut stmt = conn.prepare_cached(&table.sql.snapshot_rows)?;
        let n = table.columns.len();
        let mut rows = stmt.query(params![user, table.qualified])?;
        while let Some(r) = rows.next()? {
            payload_text(table, r, &mut payload)?;
            row_count += 1;
            byte_count += payload.len() as i64;
            if (limits.max_rows_per_snapshot_session > 0
                && row_count > limits.max_rows_per_snapshot_session)
                || (limits.max_bytes_per_snapshot_session > 0
                    && byte_count > limits.max_bytes_per_snapshot_session)
            {
                return Err(Fail::Internal(
                    "snapshot exceeds the per-session row or byte limit".into(),
                ));
            }
            if block.text.len() + payload.len() > BLOCK_BYTES {
                block.store(conn)?;
            }
            block.push_row(table, text_column(r, n + 1)?, r.get::<_, i64>(n)?, &payload)?;
            if block.rows == BLOCK_ROWS || block.text.len() >= BLOCK_BYTES {
                block.store(conn)?;
            }
        }
    }
    block.store(conn)?;
    Ok((row_count, byte_count))
}

/// The block being filled by [`materialise`].
struct SnapshotBlock<'a> {
    snapshot_id: &'a str,
    /// Ordinal of the block's first row.
    first: i64,
    rows: i64,
    text: Vec<u8>,
}

impl<'a> SnapshotBlock<'a> {
    fn new(snapshot_id: &'a str) -> Self {
        SnapshotBlock {
            snapshot_id,
            first: 1,
            rows: 0,
            text: Vec::new(),
        }
    }

    /// Appends one row's `SnapshotRow` wire object (members in the protocol type's order).
    fn push_row(
        &mut self,
        table: &TableSpec,
        key: &str,
        row_version: i64,
        payload: &[u8],
    ) -> ServiceResult<()> {
        let out = &mut self.text;
        if self.rows > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(b"{\"schema\":");
        serde_json::to_writer(&mut *out, &table.schema)?;
        out.extend_from_slice(b",\"table\":");
        serde_json::to_writer(&mut *out, &table.table)?;
        out.extend_from_slice(b",\"key\":{");
        serde_json::to_writer(&mut *out, &table.key_column)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, key)?;
        out.extend_from_slice(b"},\"row_version\":");
        serde_json::to_writer(&mut *out, &row_version)?;
        out.extend_from_slice(b",\"payload\":");
        out.extend_from_slice(payload);
        out.push(b'}');
        self.rows += 1;
        Ok(())
    }

    /// Stores the block (if it holds rows) and starts the next one.
    fn store(&mut self, conn: &Connection) -> ServiceResult<()> {
        if self.rows == 0 {
            return Ok(());
        }
        // serde_json writes UTF-8 only, and the payload text came from it too.
        let text = std::str::from_utf8(&self.text).map_err(|e| Fail::Internal(e.to_string()))?;
        conn.prepare_cached(
            "INSERT INTO _oversync_snapshot_blocks (snapshot_id, first_row_ordinal, row_count, rows)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![self.snapshot_id, self.first, self.rows, text])?;
        self.first += self.rows;
        self.rows = 0;
        self.text.clear();
        Ok(())
    }
}

/// Writes the payload JSON of the row's leading `table.columns` values into `out`: exactly
/// `serde_json::to_string` of the `Payload` that [`row_to_payload`] builds (members in
/// name order, the same value conversions as `sql_to_wire`), without building it.
fn payload_text(table: &TableSpec, r: &rusqlite::Row<'_>, out: &mut Vec<u8>) -> ServiceResult<()> {
    out.clear();
    out.push(b'{');
    for (n, &i) in table.sql.name_order.iter().enumerate() {
        let column = &table.columns[i];
        if n > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, &column.name)?;
        out.push(b':');
        // serde_json writes a non-finite float as `null`, as `sql_to_wire` maps it.
        match r.get_ref(i)? {
            ValueRef::Null => out.extend_from_slice(b"null"),
            ValueRef::Integer(v) if column.column_type == ColumnType::Real => {
                serde_json::to_writer(&mut *out, &(v as f64))?
            }
            ValueRef::Integer(v) => serde_json::to_writer(&mut *out, &v)?,
            ValueRef::Real(v) => serde_json::to_writer(&mut *out, &v)?,
            ValueRef::Text(t) => serde_json::to_writer(&mut *out, &String::from_utf8_lossy(t))?,
            ValueRef::Blob(b) => serde_json::to_writer(&mut *out, &encode_base64(b))?,
        }
    }
    out.push(b'}');
    Ok(())
}

struct SessionInfo {
    snapshot_id: String,
    snapshot_bundle_seq: i64,
}

fn load_session(
    conn: &Connection,
    snapshot_id: &str,
    user: &str,
    check_expiry: bool,
) -> ServiceResult<SessionInfo> {
    let not_found = || {
        ApiError::new(
            404,
            codes::SNAPSHOT_SESSION_NOT_FOUND,
            format!("snapshot session {snapshot_id} not found"),
        )
    };
    if normalize_uuid(snapshot_id.trim()).is_none() {
        return Err(not_found().into());
    }
    let row = conn
        .query_row(
            "SELECT snapshot_id, user_id, snapshot_bundle_seq, expires_at_ms FROM _oversync_snapshot_sessions WHERE snapshot_id = ?1",
            [snapshot_id.trim().to_lowercase()],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)),
        )
        .optional()?;
    let (id, owner, snapshot_bundle_seq, expires_at) = row.ok_or_else(not_found)?;
    if owner != user {
        return Err(ApiError::new(
            403,
            codes::SNAPSHOT_SESSION_FORBIDDEN,
            format!("snapshot session {snapshot_id} belongs to another user"),
        )
        .into());
    }
    if check_expiry && expires_at <= now_ms() {
        return Err(ApiError::new(
            410,
            codes::SNAPSHOT_SESSION_EXPIRED,
            format!("snapshot session {snapshot_id} has expired"),
        )
        .into());
    }
    Ok(SessionInfo {
        snapshot_id: id,
        snapshot_bundle_seq,
    })
}

pub fn chunk(
    conn: &mut Connection,
    user: &str,
    snapshot_id: &str,
    after_row_ordinal: i64,
    max_rows: i64,
) -> ServiceResult<JsonBody> {
    if after_row_ordinal < 0 {
        return Err(ApiError::bad_request(
            codes::SNAPSHOT_CHUNK_INVALID,
            "after_row_ordinal must be >= 0",
        )
        .into());
    }
    if max_rows <= 0 {
        return Err(
            ApiError::bad_request(codes::SNAPSHOT_CHUNK_INVALID, "max_rows must be > 0").into(),
        );
    }
    let limit = max_rows.min(MAX_ROWS_PER_CHUNK);
    let tx = conn.transaction()?;
    let session = load_session(&tx, snapshot_id, user, true)?;
    // Blocks holding ordinals after `after_row_ordinal`, until `limit + 1` rows are seen
    // (the extra one only tells whether more remain).
    let mut stmt = tx.prepare_cached(
        "SELECT first_row_ordinal, row_count, rows FROM _oversync_snapshot_blocks
         WHERE snapshot_id = ?1 AND first_row_ordinal + row_count - 1 > ?2
         ORDER BY first_row_ordinal",
    )?;
    let mut blocks = stmt.query(params![session.snapshot_id, after_row_ordinal])?;
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(b"{\"snapshot_id\":");
    serde_json::to_writer(&mut body, &session.snapshot_id)?;
    body.extend_from_slice(b",\"snapshot_bundle_seq\":");
    serde_json::to_writer(&mut body, &session.snapshot_bundle_seq)?;
    body.extend_from_slice(b",\"rows\":[");
    let (mut taken, mut has_more) = (0i64, false);
    'blocks: while let Some(block) = blocks.next()? {
        let first: i64 = block.get(0)?;
        let count: i64 = block.get(1)?;
        let text = text_column(block, 2)?;
        let lines = text.split('\n');
        let mut seen = 0i64;
        for (ordinal, line) in (first..).zip(lines) {
            seen += 1;
            if ordinal <= after_row_ordinal {
                continue;
            }
            if taken == limit {
                has_more = true;
                break 'blocks;
            }
            if taken > 0 {
                body.push(b',');
            }
            body.extend_from_slice(line.as_bytes());
            taken += 1;
        }
        if seen != count {
            return Err(Fail::Internal(format!(
                "snapshot block at {first} holds {seen} rows, not {count}"
            )));
        }
    }
    body.extend_from_slice(b"],\"next_row_ordinal\":");
    serde_json::to_writer(&mut body, &(after_row_ordinal + taken))?;
    body.extend_from_slice(b",\"has_more\":");
    body.extend_from_slice(if has_more { b"true" } else { b"false" });
    body.push(b'}');
    Ok(JsonBody(body))
}

pub fn delete(conn: &mut Connection, user: &str, snapshot_id: &str) -> ServiceResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let session = load_session(&tx, snapshot_id, user, false)?;
    tx.execute(
        "DELETE FROM _oversync_snapshot_blocks WHERE snapshot_id = ?1",
        [&session.snapshot_id],
    )?;
    tx.execute(
        "DELETE FROM _oversync_snapshot_sessions WHERE snapshot_id = ?1",
        [&session.snapshot_id],
    )?;
    tx.commit()?;
    Ok(())
}

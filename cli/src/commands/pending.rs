//! `oversqlite pending`: the local changes not uploaded yet, in upload order (frozen
//! outbox first, then captured dirty rows); read only, no request.
use oversqlite_core::pending::pending_changes;
use serde_json::{json, Value};

use super::{Ctx, Outcome};
use crate::failure::Failure;

/// A JSON text column as JSON (it is always valid JSON when written by the triggers).
fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

pub fn run(ctx: &Ctx) -> Result<Outcome, Failure> {
    let conn = ctx.connection()?;
    let changes = pending_changes(&conn)?;
    let rows: Vec<Value> = changes
        .iter()
        .map(|c| {
            json!({
                "table": c.table_name,
                "key": parsed(&c.key_json),
                "op": c.op,
                "state": c.state,
                "base_row_version": c.base_row_version,
                "payload": c.payload.as_deref().map(parsed),
            })
        })
        .collect();
    let mut text: String = changes
        .iter()
        .map(|c| {
            format!(
                "{:<6} {:<6} {} {}\n",
                c.state, c.op, c.table_name, c.key_json
            )
        })
        .collect();
    text.push_str(&format!("{} pending rows", changes.len()));
    Ok(Outcome {
        json: json!({"pending_row_count": changes.len(), "changes": rows}),
        text,
    })
}

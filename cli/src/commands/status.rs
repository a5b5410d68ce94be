//! `oversqlite status`: the local sync state, read without any request or write (safe
//! while the app or another sync runs): configuration, binding, last bundle, pending rows.
use oversqlite_core::config;
use serde_json::json;

use super::{to_json, Ctx, Outcome};
use crate::failure::Failure;

pub fn run(ctx: &Ctx) -> Result<Outcome, Failure> {
    let conn = ctx.connection()?;
    let settings = config::read_settings(&conn)?;
    let tables: Vec<&str> = settings.tables.iter().map(|t| t.table.as_str()).collect();
    let source = match oversqlite_core::state::source_info(&conn) {
        Ok(s) => s,
        // Configured but never opened (no runtime tables yet): a state to report, not
        // an error; the way on is an attach (which opens it), or the app's open.
        Err(e) if Failure::from(e.clone()).code == "not_open" => {
            let json = json!({
                "database": ctx.label(),
                "server_url": settings.server_url,
                "schema": settings.schema,
                "tables": tables,
                "opened": false,
            });
            let text = format!(
                "database:    {}\nserver:      {}\nschema:      {}\ntables:      {}\nnot opened for sync yet: run `oversqlite attach --user USER` (it opens the file) or open it from the app (SELECT oversqlite_open())",
                ctx.label(),
                settings.server_url.as_deref().unwrap_or("(not configured)"),
                settings.schema.as_deref().unwrap_or("(not configured)"),
                tables.join(", "),
            );
            return Ok(Outcome { json, text });
        }
        Err(e) => return Err(e.into()),
    };
    let status = oversqlite_engine::sync_status(&conn)?;
    let json = json!({
        "database": ctx.label(),
        "server_url": settings.server_url,
        "schema": settings.schema,
        "tables": tables,
        "source": to_json(&source)?,
        "status": to_json(&status)?,
        "opened": true,
    });
    let user = if source.binding_state == "attached" {
        format!("attached as {}", source.attached_user_id)
    } else {
        "not attached".to_string()
    };
    let mut text = format!(
        "database:    {}\nserver:      {}\nschema:      {}\ntables:      {}\nbinding:     {user}\nsource:      {}\nauthority:   {}\nlast bundle: {}\npending:     {} rows",
        ctx.label(),
        settings.server_url.as_deref().unwrap_or("(not configured)"),
        settings.schema.as_deref().unwrap_or("(not configured)"),
        tables.join(", "),
        source.current_source_id,
        json["status"]["authority"].as_str().unwrap_or_default(),
        status.last_bundle_seq_seen,
        status.pending.pending_row_count,
    );
    if source.rebuild_required {
        text.push_str("\nrebuild required");
    }
    if source.source_recovery_required {
        text.push_str("\nsource recovery required");
    }
    Ok(Outcome { json, text })
}

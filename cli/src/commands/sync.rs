//! `oversqlite sync`: push, then pull beside anything written meanwhile, exactly as
//! `oversqlite_sync()` does. JSON: the engine's sync report (the same object
//! `oversqlite_sync()` returns).
use super::{changed_text, recorded, to_json, Ctx, Outcome};
use crate::failure::Failure;
use crate::progress::Progress;

pub fn run(ctx: &Ctx) -> Result<Outcome, Failure> {
    let (conn, mut client) = ctx.online()?;
    let report = {
        let _p = Progress::start(format!("syncing {}", ctx.label()), &ctx.db);
        recorded(&conn, "sync", &mut client, |c| c.sync(&conn))?
    };
    let json = to_json(&report)?;
    let text = format!(
        "push: {}, pull: {}; last bundle {}; pending rows {}{}",
        json["push_outcome"].as_str().unwrap_or_default(),
        json["remote_outcome"].as_str().unwrap_or_default(),
        report.status.last_bundle_seq_seen,
        report.pending_row_count,
        changed_text(&report.changed_tables)
    );
    Ok(Outcome { json, text })
}

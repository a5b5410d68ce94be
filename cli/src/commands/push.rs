//! `oversqlite push`: upload the pending local changes as one bundle
//! (`oversqlite_push_pending()`). JSON: the engine's push report.
use super::{changed_text, recorded, to_json, Ctx, Outcome};
use crate::failure::Failure;
use crate::progress::Progress;

pub fn run(ctx: &Ctx) -> Result<Outcome, Failure> {
    let (conn, mut client) = ctx.online()?;
    let report = {
        let _p = Progress::start(format!("pushing {}", ctx.label()), &ctx.db);
        recorded(&conn, "push", &mut client, |c| c.push_pending(&conn))?
    };
    let json = to_json(&report)?;
    let bundle = report
        .bundle_seq
        .map(|s| format!(" as bundle {s}"))
        .unwrap_or_default();
    let text = format!(
        "push: {}{bundle}; {} rows, {} conflicts resolved; pending rows {}{}",
        json["outcome"].as_str().unwrap_or_default(),
        report.row_count,
        report.conflicts_resolved,
        report.status.pending.pending_row_count,
        changed_text(&report.changed_tables)
    );
    Ok(Outcome { json, text })
}

//! `oversqlite detach [--discard-local-changes]` (`oversqlite_detach`). A detach blocked
//! by unsent changes is exit 65 `blocked_unsynced_data`: a script that detaches must
//! not go on as if it had. JSON: the engine's detach report.
use oversqlite_engine::report::DetachOutcome;
use serde_json::json;

use super::{changed_text, recorded, to_json, Ctx, Outcome};
use crate::args::DetachArgs;
use crate::exit::Exit;
use crate::failure::Failure;

pub fn run(ctx: &Ctx, args: &DetachArgs) -> Result<Outcome, Failure> {
    let (conn, mut client) = ctx.started()?;
    let report = recorded(&conn, "detach", &mut client, |c| {
        if args.discard_local_changes {
            c.detach_discarding_local_changes(&conn)
        } else {
            c.detach(&conn)
        }
    })?;
    if report.outcome == DetachOutcome::BlockedUnsyncedData {
        return Err(Failure::new(
            "blocked_unsynced_data",
            Exit::DataErr,
            format!(
                "{} local changes are not uploaded yet; run `oversqlite sync` first, or pass --discard-local-changes to drop them",
                report.pending_row_count
            ),
        )
        .with("pending_row_count", json!(report.pending_row_count)));
    }
    let json = to_json(&report)?;
    let text = format!("detached{}", changed_text(&report.changed_tables));
    Ok(Outcome { json, text })
}

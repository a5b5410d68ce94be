//! `oversqlite pull`: download to the server's stable bundle (`oversqlite_pull_to_stable()`);
//! refused with `pending_local_changes` while local changes are unsent (`sync` pulls
//! beside them). JSON: the engine's pull report.
use super::{changed_text, recorded, to_json, Ctx, Outcome};
use crate::failure::Failure;
use crate::progress::Progress;

pub fn run(ctx: &Ctx) -> Result<Outcome, Failure> {
    let (conn, mut client) = ctx.online()?;
    let report = {
        let _p = Progress::start(format!("pulling into {}", ctx.label()), &ctx.db);
        recorded(&conn, "pull", &mut client, |c| c.pull_to_stable(&conn)).map_err(|mut e| {
            if e.kind == oversqlite_engine::ErrorKind::PendingLocalChanges {
                e.message = format!(
                    "{}; run `oversqlite sync` (it pulls beside them) or `oversqlite push` first",
                    e.message.split("; call").next().unwrap_or(&e.message)
                );
            }
            e
        })?
    };
    let json = to_json(&report)?;
    let text = format!(
        "pull: {}; {} bundles applied; last bundle {}{}",
        json["outcome"].as_str().unwrap_or_default(),
        report.bundles_applied,
        report.status.last_bundle_seq_seen,
        changed_text(&report.changed_tables)
    );
    Ok(Outcome { json, text })
}

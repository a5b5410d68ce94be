//! `oversqlite attach --user USER`: bind the database to a user (`oversqlite_attach`).
//! A server asking to wait (another device holds the initialisation lease) is exit 75
//! `retry_later` with `retry_after_seconds`. JSON: the engine's attach report.
use super::{changed_text, recorded, to_json, Ctx, Outcome};
use crate::args::AttachArgs;
use crate::db::retry_later;
use crate::failure::Failure;
use crate::progress::Progress;

pub fn run(ctx: &Ctx, args: &AttachArgs) -> Result<Outcome, Failure> {
    let (conn, mut client) = ctx.started()?;
    let report = {
        let _p = Progress::start(
            format!("attaching {} as {}", ctx.label(), args.user),
            &ctx.db,
        );
        recorded(&conn, "attach", &mut client, |c| {
            c.attach(&conn, &args.user)
        })?
    };
    if let Some(secs) = report.retry_after_seconds {
        return Err(retry_later(secs));
    }
    let json = to_json(&report)?;
    let restored = report
        .restore
        .map(|r| format!("; restored {} rows at bundle {}", r.row_count, r.bundle_seq))
        .unwrap_or_default();
    let text = format!(
        "attached as {}: {}{restored}{}",
        args.user.trim(),
        json["outcome"].as_str().unwrap_or_default(),
        changed_text(&report.changed_tables)
    );
    Ok(Outcome { json, text })
}
